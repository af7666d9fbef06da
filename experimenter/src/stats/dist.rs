//! The few distribution functions the engines need, wrapped so that the rest of the module
//! never sees statrs' panicking constructors, and refined where statrs is not accurate enough
//! to match scipy to 1e-6 (the Student t quantile).

use statrs::distribution::{ChiSquared, ContinuousCDF, Continuous, Normal, StudentsT};
use statrs::function::erf::erfc;

/// Standard normal CDF, accurate in both tails.
pub(crate) fn norm_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// Standard normal survival function `1 - Φ(x)`, accurate in the upper tail.
pub(crate) fn norm_sf(x: f64) -> f64 {
    0.5 * erfc(x / std::f64::consts::SQRT_2)
}

/// Standard normal density.
pub(crate) fn norm_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Standard normal quantile.
pub(crate) fn norm_ppf(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let Ok(normal) = Normal::new(0.0, 1.0) else {
        return f64::NAN;
    };
    // statrs' erfc_inv is good to ~1e-11; two Newton steps in the accurate tail bring it to
    // machine precision, which keeps z-based CIs identical to scipy's.
    let mut x = normal.inverse_cdf(p);
    for _ in 0..2 {
        let pdf = norm_pdf(x);
        if !(pdf > 0.0) || !x.is_finite() {
            break;
        }
        let err = if p > 0.5 { (1.0 - p) - norm_sf(x) } else { norm_cdf(x) - p };
        x -= err / pdf;
    }
    x
}

fn students_t(dof: f64) -> Option<StudentsT> {
    StudentsT::new(0.0, 1.0, dof).ok()
}

/// Student t CDF with `dof` degrees of freedom (NaN for an invalid `dof`).
pub(crate) fn t_cdf(x: f64, dof: f64) -> f64 {
    students_t(dof).map_or(f64::NAN, |t| t.cdf(x))
}

/// Student t survival function `1 - F(x)`, computed without cancellation.
pub(crate) fn t_sf(x: f64, dof: f64) -> f64 {
    students_t(dof).map_or(f64::NAN, |t| t.sf(x))
}

/// Student t quantile. statrs inverts the incomplete beta function to about 1e-8, so polish
/// the result with Newton steps on the CDF.
pub(crate) fn t_ppf(p: f64, dof: f64) -> f64 {
    let Some(t) = students_t(dof) else {
        return f64::NAN;
    };
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let mut x = t.inverse_cdf(p);
    for _ in 0..3 {
        let pdf = t.pdf(x);
        if !(pdf > 0.0) || !x.is_finite() {
            break;
        }
        // Work in the tail that keeps precision.
        let err = if p > 0.5 { (1.0 - p) - t.sf(x) } else { t.cdf(x) - p };
        let step = err / pdf;
        x -= step;
        if step.abs() <= 1e-15 * x.abs().max(1.0) {
            break;
        }
    }
    x
}

/// χ² survival function with `k` degrees of freedom.
pub(crate) fn chi2_sf(x: f64, k: f64) -> f64 {
    ChiSquared::new(k).map_or(f64::NAN, |c| c.sf(x))
}
