//! Hypothesis tests on aligned category (or distinct-value) counts: Pearson's chi-square
//! and the two-proportion Z-test, as Evidently defines them.

use super::sample::BinnedCounts;
use crate::special::{chi2_sf, normal_cdf};

/// Chi-square goodness of fit of current counts against reference frequencies scaled to the
/// current size (Evidently's `chisquare`). Returns (statistic, p-value).
pub fn chi_square(bins: &BinnedCounts) -> (f64, f64) {
    let n_ref = bins.reference_total() as f64;
    let n_cur = bins.current_total() as f64;
    let k_norm = n_cur / n_ref;
    let stat: f64 = bins
        .reference
        .iter()
        .zip(&bins.current)
        .map(|(&r, &c)| {
            let e = r as f64 * k_norm;
            let d = c as f64 - e;
            d * d / e
        })
        .sum();
    let df = bins.reference.len() as f64 - 1.0;
    (stat, chi2_sf(stat, df))
}

/// Two-proportion Z-test of "first key" vs "all other keys" (keys in sorted order), as
/// Evidently's `z` test; p = 2·(1 − Φ(|z|)). Returns (z, p-value).
pub fn z_test(bins: &BinnedCounts) -> (f64, f64) {
    let ref_keys = bins.reference.iter().filter(|&&c| c > 0).count();
    let cur_keys = bins.current.iter().filter(|&&c| c > 0).count();
    if ref_keys == 1 && cur_keys == 1 {
        let same = bins
            .reference
            .iter()
            .zip(&bins.current)
            .any(|(&r, &c)| r > 0 && c > 0);
        if same {
            return (0.0, 1.0);
        }
    }
    let n1 = bins.reference_total() as f64;
    let n2 = bins.current_total() as f64;
    let first_r = bins.reference.first().copied().unwrap_or(0) as f64;
    let first_c = bins.current.first().copied().unwrap_or(0) as f64;
    let p1 = (n1 - first_r) / n1;
    let p2 = (n2 - first_c) / n2;
    let pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    (z, 2.0 * (1.0 - normal_cdf(z.abs())))
}
