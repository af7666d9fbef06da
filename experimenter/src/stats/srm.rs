//! Sample ratio mismatch: are the observed unit counts per arm consistent with the configured
//! weights? A mismatch means assignment or logging is broken (bot filtering in one arm, a
//! redirect that drops users, a crash in one model version), and then no metric comparison can
//! be trusted — so the decision helper refuses to call a winner while it fails.
//!
//! χ² goodness of fit with `arms - 1` degrees of freedom, as gbstats `check_srm`, flagged at
//! p < 0.001 (GrowthBook's default threshold: SRM checks run on every look, so a strict
//! threshold keeps false alarms rare).

use serde::{Deserialize, Serialize};

use super::dist::chi2_sf;
use super::StatsError;

/// GrowthBook's default p-value below which a sample ratio mismatch is reported.
pub const SRM_P_THRESHOLD: f64 = 0.001;

/// Outcome of the SRM check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SrmCheck {
    pub p_value: f64,
    /// `p_value < threshold`.
    pub mismatch: bool,
}

/// gbstats `check_srm`: the χ² p-value of `users` against `weights` (any positive scale).
/// Arms with weight ≤ 0 are left out of the statistic but still count in the degrees of
/// freedom, exactly as gbstats does. With no users at all the p-value is 1.
pub fn srm_p_value(users: &[u64], weights: &[f64]) -> Result<f64, StatsError> {
    if users.len() != weights.len() {
        return Err(StatsError::LengthMismatch {
            what: "SRM weights (one per arm)",
            expected: users.len(),
            got: weights.len(),
        });
    }
    if users.len() < 2 {
        return Err(StatsError::Invalid(format!(
            "an SRM check needs at least two arms, got {}",
            users.len()
        )));
    }
    for &w in weights {
        if !w.is_finite() || w < 0.0 {
            return Err(StatsError::OutOfRange {
                what: "arm weight",
                range: "[0, ∞)",
                value: w,
            });
        }
    }
    let total_weight: f64 = weights.iter().sum();
    if total_weight <= 0.0 {
        return Err(StatsError::Invalid(
            "arm weights sum to 0; give at least one arm a positive weight".into(),
        ));
    }
    let total: f64 = users.iter().map(|&u| u as f64).sum();
    if total == 0.0 {
        return Ok(1.0);
    }
    let x: f64 = users
        .iter()
        .zip(weights)
        .filter(|(_, &w)| w > 0.0)
        .map(|(&o, &w)| {
            let e = w / total_weight * total;
            (o as f64 - e).powi(2) / e
        })
        .sum();
    Ok(chi2_sf(x, (users.len() - 1) as f64))
}

/// Runs the SRM check with a threshold (use [`SRM_P_THRESHOLD`] unless you have a reason).
pub fn check_srm(users: &[u64], weights: &[f64], threshold: f64) -> Result<SrmCheck, StatsError> {
    let p_value = srm_p_value(users, weights)?;
    Ok(SrmCheck {
        p_value,
        mismatch: p_value < threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_split_has_p_one() {
        assert_eq!(srm_p_value(&[500, 500], &[0.5, 0.5]), Ok(1.0));
    }

    #[test]
    fn two_arm_statistic_by_hand() {
        // x = (450-500)²/500 · 2 = 10, χ²₁ sf(10) = 0.001565402258002549.
        let p = srm_p_value(&[450, 550], &[1.0, 1.0]).expect("valid");
        assert!((p - 0.001_565_402_258_002_549).abs() < 1e-12, "{p}");
        let c = check_srm(&[450, 550], &[1.0, 1.0], SRM_P_THRESHOLD).expect("valid");
        assert!(!c.mismatch);
    }

    #[test]
    fn wrong_lengths_are_an_error() {
        assert!(srm_p_value(&[1, 2, 3], &[1.0, 1.0]).is_err());
    }
}
