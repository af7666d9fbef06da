//! Power and minimum detectable effect (MDE) for a relative lift, before an experiment starts.
//!
//! gbstats 0.8.0 has no power module, so this is the standard two-sample normal approximation
//! written with the *same* delta-method variance the frequentist engine uses, so that "80 %
//! power at +2 %" means what the later analysis will actually test:
//!
//! `V(δ) = σ_b² / (μ_a² n_b) + σ_a² μ_b² / (μ_a⁴ n_a)` with `μ_b = μ_a (1 + δ)`,
//! `power(δ) = Φ(|δ|/√V − z_{1−α/2}) + Φ(−|δ|/√V − z_{1−α/2})`.
//!
//! For a mean metric σ_b = σ_a (the treatment is assumed to shift, not reshape, the metric);
//! for a conversion rate σ² = p (1 − p) at each arm's own rate. The golden tests check both
//! against a scipy closed form (`scripts/golden/experimenter/generate.py`).

use serde::{Deserialize, Serialize};

use super::dist::{norm_cdf, norm_ppf};
use super::{check_alpha, StatsError};

/// The metric being planned for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PowerMetric {
    /// A numeric metric with the control's mean and per-unit variance (from past data).
    Mean { mean: f64, variance: f64 },
    /// A conversion rate in (0, 1).
    Proportion { rate: f64 },
}

/// The planned experiment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerScenario {
    pub metric: PowerMetric,
    /// Units in the control arm.
    pub control_units: f64,
    /// Units in the treatment arm.
    pub treatment_units: f64,
    /// Two-sided significance level.
    pub alpha: f64,
}

impl PowerScenario {
    fn validate(&self) -> Result<(), StatsError> {
        check_alpha(self.alpha)?;
        for (what, v) in [
            ("control units", self.control_units),
            ("treatment units", self.treatment_units),
        ] {
            if !(v > 1.0 && v.is_finite()) {
                return Err(StatsError::OutOfRange {
                    what,
                    range: "(1, ∞)",
                    value: v,
                });
            }
        }
        match self.metric {
            PowerMetric::Mean { mean, variance } => {
                if !(mean != 0.0 && mean.is_finite()) {
                    return Err(StatsError::OutOfRange {
                        what: "control mean",
                        range: "finite and non-zero (a relative lift needs a baseline)",
                        value: mean,
                    });
                }
                if !(variance > 0.0 && variance.is_finite()) {
                    return Err(StatsError::OutOfRange {
                        what: "variance",
                        range: "(0, ∞)",
                        value: variance,
                    });
                }
            }
            PowerMetric::Proportion { rate } => {
                if !(rate > 0.0 && rate < 1.0) {
                    return Err(StatsError::OutOfRange {
                        what: "conversion rate",
                        range: "(0, 1)",
                        value: rate,
                    });
                }
            }
        }
        Ok(())
    }

    /// Standard error of the estimated relative lift when the true lift is `lift`.
    pub fn lift_stddev(&self, lift: f64) -> f64 {
        let (na, nb) = (self.control_units, self.treatment_units);
        let (ma, va, mb, vb) = match self.metric {
            PowerMetric::Mean { mean, variance } => (mean, variance, mean * (1.0 + lift), variance),
            PowerMetric::Proportion { rate } => {
                let rb = rate * (1.0 + lift);
                (rate, rate * (1.0 - rate), rb, rb * (1.0 - rb))
            }
        };
        (vb / (ma.powi(2) * nb) + va * mb.powi(2) / (ma.powi(4) * na)).sqrt()
    }

    /// Largest positive lift the metric allows (a rate cannot exceed 1).
    fn max_lift(&self) -> f64 {
        match self.metric {
            PowerMetric::Mean { .. } => f64::INFINITY,
            PowerMetric::Proportion { rate } => 1.0 / rate - 1.0,
        }
    }
}

/// Probability that a two-sided test at `scenario.alpha` is significant when the true
/// relative lift is `lift`.
pub fn power(scenario: &PowerScenario, lift: f64) -> Result<f64, StatsError> {
    scenario.validate()?;
    if !lift.is_finite() || lift <= -1.0 || lift > scenario.max_lift() {
        return Err(StatsError::OutOfRange {
            what: "lift",
            range: "(-1, max lift) (a rate must stay in [0, 1])",
            value: lift,
        });
    }
    let z = norm_ppf(1.0 - scenario.alpha / 2.0);
    let effect = lift.abs() / scenario.lift_stddev(lift);
    Ok(norm_cdf(effect - z) + norm_cdf(-effect - z))
}

/// The smallest positive relative lift detected with probability `target_power`. Errors when
/// no lift the metric allows reaches it (too few units).
pub fn minimum_detectable_effect(
    scenario: &PowerScenario,
    target_power: f64,
) -> Result<f64, StatsError> {
    scenario.validate()?;
    if !(target_power > scenario.alpha && target_power < 1.0) {
        return Err(StatsError::OutOfRange {
            what: "target power",
            range: "(alpha, 1)",
            value: target_power,
        });
    }
    // power(δ) rises monotonically for δ > 0 (δ/√V(δ) has a positive derivative), so bisect.
    let mut hi = scenario.max_lift().min(1.0);
    while power(scenario, hi)? < target_power {
        if hi >= scenario.max_lift() || hi > 1e12 {
            return Err(StatsError::Invalid(format!(
                "no lift reaches {target_power} power with {} control and {} treatment units; \
                 add units or accept lower power",
                scenario.control_units, scenario.treatment_units
            )));
        }
        hi = (hi * 2.0).min(scenario.max_lift());
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if power(scenario, mid)? < target_power {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-15 * hi {
            break;
        }
    }
    Ok(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(n: f64) -> PowerScenario {
        PowerScenario {
            metric: PowerMetric::Proportion { rate: 0.1 },
            control_units: n,
            treatment_units: n,
            alpha: 0.05,
        }
    }

    #[test]
    fn power_at_zero_lift_is_alpha() {
        let p = power(&scenario(1000.0), 0.0).expect("valid");
        assert!((p - 0.05).abs() < 1e-12, "{p}");
    }

    #[test]
    fn mde_inverts_power() {
        let s = scenario(20_000.0);
        let mde = minimum_detectable_effect(&s, 0.8).expect("reachable");
        assert!((power(&s, mde).expect("valid") - 0.8).abs() < 1e-9);
        // Rule of thumb: (2.8)² · 2 · p(1-p) / (p δ)² ≈ n  →  δ ≈ 0.084 here.
        assert!(mde > 0.07 && mde < 0.1, "{mde}");
    }

    #[test]
    fn unreachable_power_is_an_error() {
        let s = PowerScenario {
            metric: PowerMetric::Mean {
                mean: 1.0,
                variance: 100.0,
            },
            control_units: 4.0,
            treatment_units: 4.0,
            alpha: 0.05,
        };
        assert!(minimum_detectable_effect(&s, 0.9).is_err());
    }
}
