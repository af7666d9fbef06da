//! Multiple-testing corrections across metrics × arms.
//!
//! An experiment with 10 metrics and 3 treatments makes 30 comparisons; at alpha = 0.05 about
//! one and a half "significant" results appear by chance alone. gbstats 0.8.0 has no
//! correction (GrowthBook applies it in its TypeScript back end), so these follow statsmodels'
//! `multipletests` definitions exactly (`method="holm"` and `method="fdr_bh"`), which the golden
//! tests check: adjusted p-values, monotone in the raw order, capped at 1.
//!
//! - Holm–Bonferroni controls the family-wise error rate (chance of *any* false positive):
//!   right for guardrails and for ship decisions on a few primary metrics.
//! - Benjamini–Hochberg controls the false discovery rate (expected share of false positives
//!   among the significant ones): right when scanning many secondary metrics.

use serde::{Deserialize, Serialize};

use super::StatsError;

/// Which correction to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultipleCorrection {
    None,
    HolmBonferroni,
    BenjaminiHochberg,
}

impl MultipleCorrection {
    /// Adjusted p-values, in the input order.
    pub fn adjust(self, p_values: &[f64]) -> Result<Vec<f64>, StatsError> {
        match self {
            MultipleCorrection::None => {
                validate(p_values)?;
                Ok(p_values.to_vec())
            }
            MultipleCorrection::HolmBonferroni => holm_bonferroni(p_values),
            MultipleCorrection::BenjaminiHochberg => benjamini_hochberg(p_values),
        }
    }
}

fn validate(p_values: &[f64]) -> Result<(), StatsError> {
    for &p in p_values {
        if !(0.0..=1.0).contains(&p) {
            return Err(StatsError::OutOfRange {
                what: "p-value",
                range: "[0, 1]",
                value: p,
            });
        }
    }
    Ok(())
}

/// Indices that sort `p` ascending; ties keep input order (statsmodels uses a stable argsort
/// too, so ties get the same adjusted values).
fn ascending_order(p: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    idx
}

/// Holm's step-down adjustment: `p̃(i) = max_{j ≤ i} min(1, (m - j + 1) p(j))` over the sorted
/// p-values, returned in input order.
pub fn holm_bonferroni(p_values: &[f64]) -> Result<Vec<f64>, StatsError> {
    validate(p_values)?;
    let m = p_values.len();
    let order = ascending_order(p_values);
    let mut out = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        let raw = p_values[i] * (m - rank) as f64;
        running = running.max(raw);
        out[i] = running.min(1.0);
    }
    Ok(out)
}

/// Benjamini–Hochberg step-up adjustment: `p̃(i) = min_{j ≥ i} min(1, m p(j) / j)` over the
/// sorted p-values, returned in input order.
pub fn benjamini_hochberg(p_values: &[f64]) -> Result<Vec<f64>, StatsError> {
    validate(p_values)?;
    let m = p_values.len();
    let order = ascending_order(p_values);
    let mut out = vec![0.0; m];
    let mut running = f64::INFINITY;
    for (rank, &i) in order.iter().enumerate().rev() {
        let raw = p_values[i] * m as f64 / (rank + 1) as f64;
        running = running.min(raw);
        out[i] = running.min(1.0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_by_hand() {
        // sorted 0.01, 0.02, 0.04 → 0.03, 0.04, 0.04 (monotone).
        let adj = holm_bonferroni(&[0.04, 0.01, 0.02]).expect("valid");
        let want = [0.04, 0.03, 0.04];
        for (a, w) in adj.iter().zip(want) {
            assert!((a - w).abs() < 1e-15, "{adj:?}");
        }
    }

    #[test]
    fn bh_by_hand() {
        // sorted 0.01, 0.02, 0.04 → min(0.03, ...) = 0.03, 0.03, 0.04.
        let adj = benjamini_hochberg(&[0.04, 0.01, 0.02]).expect("valid");
        let want = [0.04, 0.03, 0.03];
        for (a, w) in adj.iter().zip(want) {
            assert!((a - w).abs() < 1e-15, "{adj:?}");
        }
    }

    #[test]
    fn empty_and_invalid() {
        assert_eq!(holm_bonferroni(&[]), Ok(vec![]));
        assert!(benjamini_hochberg(&[0.5, f64::NAN]).is_err());
    }
}
