//! The few distribution functions the engines need, wrapped so that the rest of the module
//! never sees statrs' panicking constructors, and refined where statrs is not accurate enough
//! to match scipy to 1e-6 (the Student t quantile).

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};
use statrs::function::erf::erfc;
use statrs::function::gamma::ln_gamma;

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
        if pdf.is_nan() || pdf <= 0.0 || !x.is_finite() {
            break;
        }
        let err = if p > 0.5 {
            (1.0 - p) - norm_sf(x)
        } else {
            norm_cdf(x) - p
        };
        x -= err / pdf;
    }
    x
}

fn students_t(dof: f64) -> Option<StudentsT> {
    StudentsT::new(0.0, 1.0, dof).ok()
}

/// `ln Γ(a + 1/2) − ln Γ(a)`, without the catastrophic cancellation of subtracting two huge
/// log-gammas when `a` is large (Welch degrees of freedom reach 10⁷ with big experiments).
fn ln_gamma_half_ratio(a: f64) -> f64 {
    if a >= 100.0 {
        let a2 = a * a;
        0.5 * a.ln() - 1.0 / (8.0 * a) + 1.0 / (192.0 * a * a2) + 1.0 / (640.0 * a * a2 * a2)
            - 17.0 / (14336.0 * a * a2 * a2 * a2)
    } else {
        ln_gamma(a + 0.5) - ln_gamma(a)
    }
}

/// Continued fraction for the incomplete beta function (modified Lentz), run to convergence:
/// it needs O(√max(a, b)) terms, far more than statrs' fixed 140 when the dof is in millions.
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..1_000_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// Student t survival function `P(T > x)` with `dof` degrees of freedom, accurate in the upper
/// tail and for any dof: `½ I_{ν/(ν+x²)}(ν/2, ½)` with every logarithm taken without
/// cancellation.
pub(crate) fn t_sf(x: f64, dof: f64) -> f64 {
    if x.is_nan() || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if x < 0.0 {
        return 1.0 - t_sf(-x, dof);
    }
    if x == 0.0 {
        return 0.5;
    }
    if x.is_infinite() {
        return 0.0;
    }
    if dof.is_infinite() {
        return norm_sf(x);
    }
    if dof >= 1e6 {
        // The continued fraction below loses about ν·ε relative (its terms cancel near
        // x = 1), so for huge ν use Fisher's expansion around the normal (A&S 26.7.5); the
        // next term is O(x¹¹/ν³), below 1e-11 relative wherever the value exceeds 1e-300.
        let (x3, x5, x7) = (x.powi(3), x.powi(5), x.powi(7));
        return norm_sf(x)
            + norm_pdf(x)
                * ((x3 + x) / (4.0 * dof)
                    + (3.0 * x7 + 19.0 * x5 + 17.0 * x3 - 15.0 * x) / (96.0 * dof * dof));
    }
    let (a, b) = (0.5 * dof, 0.5);
    let x2 = x * x;
    let ln_x = -(x2 / dof).ln_1p(); // ln(ν/(ν+x²))
    let ln_1mx = 2.0 * x.ln() - (dof + x2).ln(); // ln(x²/(ν+x²))
    let xb = ln_x.exp();
    // ln B(a, ½) = ln Γ(a) + ln Γ(½) − ln Γ(a + ½)
    let ln_beta = 0.5 * std::f64::consts::PI.ln() - ln_gamma_half_ratio(a);
    let front = (a * ln_x + b * ln_1mx - ln_beta).exp();
    let ib = if xb < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, xb) / a
    } else {
        1.0 - front * beta_cf(b, a, ln_1mx.exp()) / b
    };
    0.5 * ib
}

/// Student t CDF.
pub(crate) fn t_cdf(x: f64, dof: f64) -> f64 {
    if x <= 0.0 {
        t_sf(-x, dof)
    } else {
        1.0 - t_sf(x, dof)
    }
}

/// Student t density.
fn t_pdf(x: f64, dof: f64) -> f64 {
    if dof.is_infinite() {
        return norm_pdf(x);
    }
    let a = 0.5 * dof;
    (ln_gamma_half_ratio(a)
        - 0.5 * (dof * std::f64::consts::PI).ln()
        - (a + 0.5) * (x * x / dof).ln_1p())
    .exp()
}

/// Student t quantile: a starting point (statrs for small dof, the Cornish–Fisher expansion
/// around the normal quantile for large dof, where statrs' beta inversion stalls), polished by
/// Newton steps on [`t_sf`] / [`t_cdf`] in the tail that keeps precision.
pub(crate) fn t_ppf(p: f64, dof: f64) -> f64 {
    if dof.is_nan() || dof <= 0.0 || p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let mut x = if dof < 1000.0 {
        match students_t(dof) {
            Some(t) => t.inverse_cdf(p),
            None => return f64::NAN,
        }
    } else {
        let z = norm_ppf(p);
        let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
        z + (z3 + z) / (4.0 * dof)
            + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * dof * dof)
            + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * dof.powi(3))
    };
    for _ in 0..8 {
        let pdf = t_pdf(x, dof);
        if pdf.is_nan() || pdf <= 0.0 || !x.is_finite() {
            break;
        }
        let err = if p > 0.5 {
            (1.0 - p) - t_sf(x, dof)
        } else {
            t_cdf(x, dof) - p
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    // References: scipy.stats.t (Boost), printed with repr().
    #[test]
    fn student_t_matches_scipy_for_small_and_huge_dof() {
        let cases = [
            (2.0, 3.0, 0.069_662_984_279_421_52),
            (2.0, 1e3, 0.022_885_173_246_625_83),
            (2.0, 4e7, 0.022_750_135_322_614_655),
            (2.0, 9.9e5, 0.022_750_268_289_069_14),
            (3.0, 1.2e6, 0.001_349_925_730_833_859_4),
            (6.0, 4e7, 9.865_960_753_561_795e-10),
            (0.3, 10.0, 0.385_160_303_782_899_3),
        ];
        for (x, dof, want) in cases {
            let got = t_sf(x, dof);
            assert!(
                (got - want).abs() / want < 1e-9,
                "sf({x}, {dof}) = {got:e}, want {want:e}"
            );
        }
        let q = t_ppf(0.975, 4e7);
        assert!((t_sf(q, 4e7) - 0.025).abs() < 1e-15, "{q}");
        let q = t_ppf(0.975, 2.5);
        assert!((t_sf(q, 2.5) - 0.025).abs() < 1e-15, "{q}");
    }
}
