//! Group fairness with Fairlearn's definitions: per group count, selection rate, true and
//! false positive rates; demographic parity, equalized odds and equal opportunity as
//! between-group differences (max − min) and ratios (min / max); Wilson intervals; the
//! four-fifths rule.
//!
//! Works from per-group confusion counts ([`GroupCounts`]), which a database can return
//! directly, or from raw arrays ([`fairness_from_rows`]).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::AnalyzerError;

/// z for a two-sided 95% interval (`scipy.special.ndtri(0.975)`).
pub const Z_95: f64 = 1.959963984540054;
/// Groups smaller than this are reported but excluded from the between-group metrics
/// unless the caller says otherwise.
pub const DEFAULT_MIN_GROUP_SIZE: u64 = 30;
/// Four-fifths (80%) rule: a selection-rate ratio below this flags adverse impact.
pub const FOUR_FIFTHS: f64 = 0.8;

/// Confusion counts of one group (positive = label / prediction 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GroupCounts {
    pub true_positives: u64,
    pub false_positives: u64,
    pub true_negatives: u64,
    pub false_negatives: u64,
}

impl GroupCounts {
    pub fn add(&mut self, label: bool, prediction: bool) {
        match (label, prediction) {
            (true, true) => self.true_positives += 1,
            (false, true) => self.false_positives += 1,
            (false, false) => self.true_negatives += 1,
            (true, false) => self.false_negatives += 1,
        }
    }
    pub fn count(&self) -> u64 {
        self.true_positives + self.false_positives + self.true_negatives + self.false_negatives
    }
    pub fn predicted_positive(&self) -> u64 {
        self.true_positives + self.false_positives
    }
    /// Share predicted positive.
    pub fn selection_rate(&self) -> f64 {
        ratio_or_zero(self.predicted_positive(), self.count())
    }
    /// Recall; 0 when the group has no positive labels (scikit-learn's `confusion_matrix`
    /// with `normalize="true"`, which Fairlearn uses).
    pub fn true_positive_rate(&self) -> f64 {
        ratio_or_zero(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }
    /// Fall-out; 0 when the group has no negative labels.
    pub fn false_positive_rate(&self) -> f64 {
        ratio_or_zero(
            self.false_positives,
            self.false_positives + self.true_negatives,
        )
    }
}

fn ratio_or_zero(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Wilson score interval for k successes out of n (no continuity correction), as
/// `scipy.stats.binomtest(k, n).proportion_ci(method="wilson")`.
pub fn wilson_interval(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (kf, nf) = (k as f64, n as f64);
    let p = kf / nf;
    let q = 1.0 - p;
    let denom = 2.0 * (nf + z * z);
    let center = (2.0 * nf * p + z * z) / denom;
    let delta = z / denom * (4.0 * nf * p * q + z * z).sqrt();
    let lo = if k == 0 { 0.0 } else { center - delta };
    let hi = if k == n { 1.0 } else { center + delta };
    (lo, hi)
}

/// Metrics of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupFairness {
    pub count: u64,
    pub selection_rate: f64,
    pub tpr: f64,
    pub fpr: f64,
    pub selection_rate_ci_low: f64,
    pub selection_rate_ci_high: f64,
    /// Positive labels in the group.
    pub positives: u64,
    /// Negative labels in the group.
    pub negatives: u64,
    /// False when the group is smaller than the minimum size and so left out of the
    /// between-group metrics.
    pub judged: bool,
}

/// Fairness over all groups.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FairnessReport {
    pub groups: BTreeMap<String, GroupFairness>,
    pub demographic_parity_difference: f64,
    pub demographic_parity_ratio: f64,
    pub equalized_odds_difference: f64,
    pub equalized_odds_ratio: f64,
    pub equal_opportunity_difference: f64,
    pub equal_opportunity_ratio: f64,
    /// True when the selection-rate ratio of the judged groups is below 0.8.
    pub four_fifths_rule_violated: bool,
    pub min_group_size: u64,
    pub judged_groups: u64,
}

fn diff_and_ratio(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // 0/0 is NaN as in pandas; Fairlearn reports that as nan too
    (max - min, min / max)
}

/// Fairness from per-group confusion counts. Groups with fewer than `min_group_size` rows
/// are reported but not judged.
pub fn fairness_from_counts(
    groups: &BTreeMap<String, GroupCounts>,
    min_group_size: u64,
) -> FairnessReport {
    let mut out = BTreeMap::new();
    let (mut sel, mut tpr, mut fpr) = (Vec::new(), Vec::new(), Vec::new());
    for (name, g) in groups {
        let judged = g.count() >= min_group_size;
        let (lo, hi) = wilson_interval(g.predicted_positive(), g.count(), Z_95);
        let gf = GroupFairness {
            count: g.count(),
            selection_rate: g.selection_rate(),
            tpr: g.true_positive_rate(),
            fpr: g.false_positive_rate(),
            selection_rate_ci_low: lo,
            selection_rate_ci_high: hi,
            positives: g.true_positives + g.false_negatives,
            negatives: g.true_negatives + g.false_positives,
            judged,
        };
        if judged {
            sel.push(gf.selection_rate);
            tpr.push(gf.tpr);
            fpr.push(gf.fpr);
        }
        out.insert(name.clone(), gf);
    }
    let (dpd, dpr) = diff_and_ratio(&sel);
    let (tprd, tprr) = diff_and_ratio(&tpr);
    let (fprd, fprr) = diff_and_ratio(&fpr);
    FairnessReport {
        groups: out,
        demographic_parity_difference: dpd,
        demographic_parity_ratio: dpr,
        equalized_odds_difference: nan_max(tprd, fprd),
        equalized_odds_ratio: nan_min(tprr, fprr),
        equal_opportunity_difference: tprd,
        equal_opportunity_ratio: tprr,
        four_fifths_rule_violated: dpr < FOUR_FIFTHS,
        min_group_size,
        judged_groups: sel.len() as u64,
    }
}

// Python's max()/min() over [a, b] as Fairlearn uses them: NaN handling follows the
// comparison order (a NaN first element wins, a NaN second element is skipped).
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() {
        a
    } else if b > a {
        b
    } else {
        a
    }
}
fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() {
        a
    } else if b < a {
        b
    } else {
        a
    }
}

/// Fairness from rows: one sensitive value, label and prediction per row.
pub fn fairness_from_rows<S: AsRef<str>>(
    sensitive: &[S],
    labels: &[bool],
    predictions: &[bool],
    min_group_size: u64,
) -> Result<FairnessReport, AnalyzerError> {
    if sensitive.len() != labels.len() {
        return Err(AnalyzerError::LengthMismatch(sensitive.len(), labels.len()));
    }
    if labels.len() != predictions.len() {
        return Err(AnalyzerError::LengthMismatch(
            labels.len(),
            predictions.len(),
        ));
    }
    let mut groups: BTreeMap<String, GroupCounts> = BTreeMap::new();
    for ((s, &y), &p) in sensitive.iter().zip(labels).zip(predictions) {
        let s = s.as_ref();
        if let Some(g) = groups.get_mut(s) {
            g.add(y, p);
        } else {
            let mut g = GroupCounts::default();
            g.add(y, p);
            groups.insert(s.to_string(), g);
        }
    }
    Ok(fairness_from_counts(&groups, min_group_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_groups_are_reported_not_judged() {
        let s = ["a", "a", "b"];
        let r = fairness_from_rows(&s, &[true, false, true], &[true, false, false], 2).unwrap();
        assert_eq!(r.groups.len(), 2);
        assert!(!r.groups["b"].judged);
        assert_eq!(r.judged_groups, 1);
        assert_eq!(r.demographic_parity_difference, 0.0);
    }

    #[test]
    fn wilson_edges() {
        assert_eq!(wilson_interval(0, 10, Z_95).0, 0.0);
        assert_eq!(wilson_interval(10, 10, Z_95).1, 1.0);
    }
}
