//! Bayesian analysis with a Gaussian model of the effect (gbstats `EffectBayesianABTest`).
//!
//! The lift's sampling distribution is approximated as normal with the delta-method variance;
//! with a flat (improper) prior the posterior is that same normal, so the credible interval
//! equals the z-interval. What the Bayesian view adds is the language product owners ask for:
//! the chance that the treatment is better, and the expected loss (risk) of shipping it or
//! keeping control if that call turns out wrong.

use serde::{Deserialize, Serialize};

use super::dist::{norm_cdf, norm_pdf, norm_ppf, norm_sf};
use super::moments::{summarize_pair, ArmStats, ArmSummary};
use super::{check_alpha, lift_and_variance, DifferenceType, NotEstimable, StatsError};

/// A Gaussian prior on the relative lift. `None` in [`BayesianConfig::prior`] means flat.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaussianPrior {
    /// Prior mean of the relative lift.
    pub mean: f64,
    /// Prior variance of the relative lift (GrowthBook's default stddev is 0.3 → 0.09).
    pub variance: f64,
}

/// Settings of a Bayesian comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BayesianConfig {
    /// The credible interval has mass `1 - alpha`.
    pub alpha: f64,
    /// A metric where lower is better (latency, cost): chance to win is `P(lift < 0)` and the
    /// two risks swap.
    pub inverse: bool,
    pub difference: DifferenceType,
    /// Proper prior on the relative lift, or `None` for gbstats' default flat prior.
    pub prior: Option<GaussianPrior>,
}

impl Default for BayesianConfig {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            inverse: false,
            difference: DifferenceType::Relative,
            prior: None,
        }
    }
}

/// Expected loss of each decision, in the units of the lift.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// Expected loss of keeping control if the treatment is in fact better.
    pub control: f64,
    /// Expected loss of shipping the treatment if it is in fact worse.
    pub treatment: f64,
}

/// Posterior summary of one treatment against control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BayesianResult {
    /// Probability that the treatment is better (respecting `inverse`).
    pub chance_to_win: f64,
    /// Posterior mean of the lift.
    pub expected: f64,
    /// Posterior standard deviation of the lift.
    pub stddev: f64,
    /// Equal-tailed credible interval `[lower, upper]`.
    pub ci: [f64; 2],
    pub risk: Risk,
    pub not_estimable: Option<NotEstimable>,
    pub control: ArmSummary,
    pub treatment: ArmSummary,
}

/// Compares `treatment` with `control`.
pub fn analyze(
    control: &ArmStats,
    treatment: &ArmStats,
    config: &BayesianConfig,
) -> Result<BayesianResult, StatsError> {
    check_alpha(config.alpha)?;
    if let Some(p) = config.prior {
        if !(p.variance > 0.0 && p.variance.is_finite() && p.mean.is_finite()) {
            return Err(StatsError::OutOfRange {
                what: "prior variance",
                range: "(0, ∞) with a finite mean",
                value: p.variance,
            });
        }
    }
    // gbstats' Bayesian engine keeps the regression-adjusted statistics even when theta is 0.
    let pair = summarize_pair(control, treatment, false)?;
    Ok(posterior(&pair.control, &pair.treatment, config))
}

/// The Bayesian comparison on already summarised arms.
pub fn posterior(a: &ArmSummary, b: &ArmSummary, config: &BayesianConfig) -> BayesianResult {
    let relative = config.difference == DifferenceType::Relative;
    let reason = if relative && (a.mean == 0.0 || a.unadjusted_mean == 0.0) {
        Some(NotEstimable::ZeroBaseline)
    } else if a.n == 0.0 || b.n == 0.0 {
        Some(NotEstimable::NoUnits)
    } else if a.has_zero_variance() || b.has_zero_variance() {
        Some(NotEstimable::ZeroVariance)
    } else {
        None
    };
    if let Some(reason) = reason {
        return BayesianResult {
            chance_to_win: 0.5,
            expected: 0.0,
            stddev: 0.0,
            ci: [0.0, 0.0],
            risk: Risk {
                control: 0.0,
                treatment: 0.0,
            },
            not_estimable: Some(reason),
            control: *a,
            treatment: *b,
        };
    }
    let (data_mean, data_variance) = lift_and_variance(a, b, config.difference);
    // The prior is stated on the relative lift; rescale it for an absolute analysis.
    let prior = config.prior.map(|p| {
        if relative {
            p
        } else {
            GaussianPrior {
                mean: p.mean * a.unadjusted_mean.abs(),
                variance: p.variance * a.unadjusted_mean.powi(2),
            }
        }
    });
    let (mean, precision) = match prior {
        None => (data_mean, 1.0 / data_variance),
        Some(p) => {
            let precision = 1.0 / data_variance + 1.0 / p.variance;
            (
                (data_mean / data_variance + p.mean / p.variance) / precision,
                precision,
            )
        }
    };
    let sd = (1.0 / precision).sqrt();
    let ctw = if config.inverse {
        norm_cdf(-mean / sd)
    } else {
        norm_sf(-mean / sd)
    };
    let z = norm_ppf(1.0 - config.alpha / 2.0);
    let lower = mean + sd * norm_ppf(config.alpha / 2.0);
    let upper = mean + sd * z;
    let (risk_control, risk_treatment) = risks(mean, sd);
    let risk = if config.inverse {
        Risk {
            control: risk_treatment,
            treatment: risk_control,
        }
    } else {
        Risk {
            control: risk_control,
            treatment: risk_treatment,
        }
    };
    BayesianResult {
        chance_to_win: ctw,
        expected: mean,
        stddev: sd,
        ci: [lower, upper],
        risk,
        not_estimable: None,
        control: *a,
        treatment: *b,
    }
}

/// gbstats `get_risk` for a lift ~ N(mu, sigma²):
/// risk of control = E[max(lift, 0)] = P(lift > 0)·E[lift | lift > 0],
/// risk of treatment = E[max(-lift, 0)] = -P(lift < 0)·E[lift | lift < 0].
/// Both are written with the truncated-normal means so neither subtracts nearly equal numbers
/// when |mu| ≫ sigma.
pub fn risks(mu: f64, sigma: f64) -> (f64, f64) {
    let z = mu / sigma;
    // E[max(X, 0)] = sigma (z Φ(z) + φ(z)); for z ≪ 0 use the Mills-ratio form to keep digits.
    let positive_part = |z: f64| -> f64 {
        if z > -5.0 {
            sigma * (z * norm_cdf(z) + norm_pdf(z))
        } else {
            // z Φ(z) + φ(z) = φ(z) (1 + z · Φ(z)/φ(z)) with Φ(z)/φ(z) = erfcx-like Mills ratio.
            let mills = mills_ratio(-z); // Φ(z)/φ(z) = (1 - Φ(-z))/φ(-z)
            sigma * norm_pdf(z) * (1.0 + z * mills)
        }
    };
    (positive_part(z), positive_part(-z))
}

/// Mills ratio `R(x) = (1 - Φ(x)) / φ(x)` for x ≥ 5, by its continued fraction (accurate to
/// machine precision there, where the direct quotient would lose digits to underflow).
fn mills_ratio(x: f64) -> f64 {
    // Lentz evaluation of R(x) = 1/(x + 1/(x + 2/(x + 3/(x + ...)))).
    let mut f = x;
    let tiny = 1e-300;
    let mut c = f;
    let mut d = 0.0;
    for k in 1..200 {
        let a = k as f64;
        d = x + a * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = x + a / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    1.0 / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risks_of_a_centred_effect_are_equal() {
        let (c, t) = risks(0.0, 1.0);
        let expected = 1.0 / (2.0 * std::f64::consts::PI).sqrt();
        assert!((c - expected).abs() < 1e-15 && (t - expected).abs() < 1e-15);
    }

    #[test]
    fn risks_stay_accurate_far_in_the_tail() {
        // E[max(X,0)] - E[max(-X,0)] = mu for every mu.
        for &mu in &[-12.0, -6.0, -1.0, 0.3, 4.0, 9.0] {
            let (c, t) = risks(mu, 1.0);
            assert!((c - t - mu).abs() < 1e-12, "mu={mu}");
            assert!(c >= 0.0 && t >= 0.0);
        }
        // Direct reference at z = -8: sigma (z Φ(z) + φ(z)) from high-precision values.
        let (c, _) = risks(-8.0, 1.0);
        let reference = 7.550_262_411_946_499e-17; // mpmath: z·Φ(z) + φ(z) at z = -8
        assert!((c - reference).abs() / reference < 1e-6, "{c}");
    }

    #[test]
    fn mills_ratio_matches_asymptotics() {
        let x: f64 = 20.0;
        let approx = 1.0 / x - 1.0 / x.powi(3) + 3.0 / x.powi(5) - 15.0 / x.powi(7);
        assert!((mills_ratio(x) - approx).abs() / approx < 1e-8);
    }
}
