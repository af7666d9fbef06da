//! Sequential testing: always-valid confidence sequences (Waudby-Smith et al. 2023, eq. 9) and
//! the matching always-valid p-value (eq. 155), as in gbstats `SequentialTwoSidedTTest`.
//!
//! Peeking at a fixed-horizon test every day inflates false positives far above alpha; these
//! intervals stay valid at every look, at the price of being wider. The tuning parameter is
//! the sample size at which the sequence is tightest (GrowthBook's default: 5000).

use serde::{Deserialize, Serialize};

use super::frequentist::{not_estimable, welch_dof, FrequentistResult};
use super::moments::{summarize_pair, ArmStats, ArmSummary};
use super::{check_alpha, lift_and_variance, DifferenceType, StatsError};

/// Settings of a sequential test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequentialConfig {
    pub alpha: f64,
    pub test_value: f64,
    pub difference: DifferenceType,
    /// Total sample size (both arms) at which the confidence sequence is tightest.
    pub tuning_parameter: f64,
}

impl Default for SequentialConfig {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            test_value: 0.0,
            difference: DifferenceType::Relative,
            tuning_parameter: 5000.0,
        }
    }
}

/// Compares `treatment` with `control` with an always-valid two-sided test.
pub fn analyze(
    control: &ArmStats,
    treatment: &ArmStats,
    config: &SequentialConfig,
) -> Result<FrequentistResult, StatsError> {
    check_alpha(config.alpha)?;
    if !(config.tuning_parameter > 0.0 && config.tuning_parameter.is_finite()) {
        return Err(StatsError::OutOfRange {
            what: "sequential tuning parameter",
            range: "(0, ∞)",
            value: config.tuning_parameter,
        });
    }
    let pair = summarize_pair(control, treatment, true)?;
    Ok(test(&pair.control, &pair.treatment, config))
}

/// The mixture parameter ρ (eq. 161) that makes the sequence tightest at the tuning size.
pub fn rho(alpha: f64, tuning_parameter: f64) -> f64 {
    ((-2.0 * alpha.ln() + (-2.0 * alpha.ln() + 1.0).ln()) / tuning_parameter).sqrt()
}

/// The sequential test on already summarised arms.
pub fn test(a: &ArmSummary, b: &ArmSummary, config: &SequentialConfig) -> FrequentistResult {
    if let Some(reason) = not_estimable(a, b) {
        return FrequentistResult::uninformative(reason, *a, *b);
    }
    let (lift, variance) = lift_and_variance(a, b, config.difference);
    let n = a.n + b.n;
    let rho = rho(config.alpha, config.tuning_parameter);
    let rho2 = rho * rho;
    let s2 = variance * n;
    let width = s2.sqrt()
        * ((2.0 * (n * rho2 + 1.0)) * ((n * rho2 + 1.0).sqrt() / config.alpha).ln()
            / (n * rho).powi(2))
        .sqrt();
    let st2 = (lift - config.test_value).powi(2) * n / variance;
    let tr2p1 = n * rho2 + 1.0;
    // 1 / e-value, computed in logs so that a huge e-value underflows to 0 instead of inf/inf.
    let log_evalue = rho2 * st2 / (2.0 * tr2p1) - 0.5 * tr2p1.ln();
    let p_value = (-log_evalue).exp().min(1.0);
    FrequentistResult {
        expected: lift,
        ci: [lift - width, lift + width],
        p_value,
        stddev: variance.sqrt(),
        dof: welch_dof(a, b),
        not_estimable: None,
        control: *a,
        treatment: *b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rho_at_default_tuning() {
        // -2 ln 0.05 = 5.991464547107979; ln(6.991464547107979) = 1.944691...
        let r = rho(0.05, 5000.0);
        let expected = ((5.991464547107979f64 + 6.991464547107979f64.ln()) / 5000.0).sqrt();
        assert!((r - expected).abs() < 1e-15);
    }
}
