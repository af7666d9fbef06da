//! Pure statistics of shadow comparisons: quantiles, a bounded reservoir sample, paired
//! accuracy deltas (Wald interval on paired differences + McNemar's test) and paired-bootstrap
//! macro-F1 deltas. No I/O; deterministic for a given seed.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// Quantile `q` (0..=1) of sorted data with linear interpolation between order statistics
/// (numpy's default, "type 7"). NaN for empty data.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let q = q.clamp(0.0, 1.0);
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Quantiles of unsorted data (sorts a copy; NaNs are dropped).
pub fn quantiles(values: &[f64], qs: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    qs.iter().map(|&q| quantile_sorted(&v, q)).collect()
}

/// splitmix64: a tiny deterministic generator (state in, next value out).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform sample of at most `cap` items of a stream (Algorithm R), so quantiles and bootstrap
/// resamples of an arbitrarily long replay use bounded memory. Exact while `seen <= cap`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservoir<T> {
    cap: usize,
    seen: u64,
    rng: u64,
    items: Vec<T>,
}

impl<T> Reservoir<T> {
    /// An empty reservoir keeping at most `cap` items (at least 1).
    pub fn new(cap: usize, seed: u64) -> Self {
        Self {
            cap: cap.max(1),
            seen: 0,
            rng: seed,
            items: Vec::new(),
        }
    }

    /// Offers one item.
    pub fn push(&mut self, item: T) {
        self.seen += 1;
        if self.items.len() < self.cap {
            self.items.push(item);
        } else {
            let j = splitmix64(&mut self.rng) % self.seen;
            if (j as usize) < self.cap {
                self.items[j as usize] = item;
            }
        }
    }

    /// The kept items.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// Items offered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }
}

/// Two models' correctness on the same labelled inputs (McNemar's table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairedCounts {
    /// Both right.
    pub both_right: u64,
    /// Production right, candidate wrong.
    pub prod_only: u64,
    /// Candidate right, production wrong.
    pub cand_only: u64,
    /// Both wrong.
    pub both_wrong: u64,
}

impl PairedCounts {
    /// Adds one labelled input.
    pub fn add(&mut self, prod_right: bool, cand_right: bool) {
        match (prod_right, cand_right) {
            (true, true) => self.both_right += 1,
            (true, false) => self.prod_only += 1,
            (false, true) => self.cand_only += 1,
            (false, false) => self.both_wrong += 1,
        }
    }

    /// Adds another table.
    pub fn merge(&mut self, o: &PairedCounts) {
        self.both_right += o.both_right;
        self.prod_only += o.prod_only;
        self.cand_only += o.cand_only;
        self.both_wrong += o.both_wrong;
    }

    /// Labelled inputs.
    pub fn n(&self) -> u64 {
        self.both_right + self.prod_only + self.cand_only + self.both_wrong
    }

    /// Production's accuracy (NaN without labels).
    pub fn prod_accuracy(&self) -> f64 {
        (self.both_right + self.prod_only) as f64 / self.n() as f64
    }

    /// The candidate's accuracy (NaN without labels).
    pub fn cand_accuracy(&self) -> f64 {
        (self.both_right + self.cand_only) as f64 / self.n() as f64
    }
}

/// A difference (candidate − production) with a two-sided confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeltaCi {
    /// Point estimate.
    pub delta: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// Paired observations.
    pub n: u64,
    /// Confidence level of the interval, e.g. 0.95.
    pub level: f64,
    /// Two-sided p-value of "no difference" (McNemar for accuracy; bootstrap for F1).
    pub p_value: f64,
}

impl DeltaCi {
    /// The interval excludes zero from above: the candidate is better with confidence.
    pub fn better(&self, margin: f64) -> bool {
        self.n > 0 && self.low > margin
    }

    /// The interval lies below `-margin`: the candidate is worse with confidence.
    pub fn worse(&self, margin: f64) -> bool {
        self.n > 0 && self.high < -margin
    }
}

fn z_for(level: f64) -> f64 {
    let level = level.clamp(0.5, 0.999_999);
    Normal::new(0.0, 1.0)
        .map(|n| n.inverse_cdf(0.5 + level / 2.0))
        .unwrap_or(1.959_964)
}

/// Accuracy difference of two models on the same inputs: the mean of the paired differences
/// `d_i = cand_right_i − prod_right_i` with the Wald interval `d ± z·SE`,
/// `SE = sqrt(b + c − (c − b)²/n) / n` (b = production-only right, c = candidate-only right),
/// and McNemar's χ² test with continuity correction for the p-value.
pub fn paired_accuracy_delta(counts: &PairedCounts, level: f64) -> DeltaCi {
    let n = counts.n();
    if n == 0 {
        return DeltaCi {
            delta: f64::NAN,
            low: f64::NAN,
            high: f64::NAN,
            n: 0,
            level,
            p_value: f64::NAN,
        };
    }
    let (b, c, nf) = (counts.prod_only as f64, counts.cand_only as f64, n as f64);
    let delta = (c - b) / nf;
    let se = ((b + c) - (c - b).powi(2) / nf).max(0.0).sqrt() / nf;
    let z = z_for(level);
    let p_value = if b + c == 0.0 {
        1.0
    } else {
        let stat = ((c - b).abs() - 1.0).max(0.0).powi(2) / (b + c);
        ChiSquared::new(1.0)
            .map(|d| 1.0 - d.cdf(stat))
            .unwrap_or(f64::NAN)
    };
    DeltaCi {
        delta,
        low: delta - z * se,
        high: delta + z * se,
        n,
        level,
        p_value,
    }
}

/// Macro-averaged F1 over the classes present in `truth` or `pred` (scikit-learn's
/// `f1_score(average="macro")`; a class with no true and no predicted instance never appears,
/// one with zero precision and recall scores 0). `idx` selects the rows (for resampling).
fn macro_f1_idx(truth: &[u32], pred: &[u32], idx: impl Iterator<Item = usize>) -> f64 {
    let mut tp: HashMap<u32, u64> = HashMap::new();
    let mut fp: HashMap<u32, u64> = HashMap::new();
    let mut fneg: HashMap<u32, u64> = HashMap::new();
    let mut classes = BTreeSet::new();
    for i in idx {
        let (t, p) = (truth[i], pred[i]);
        classes.insert(t);
        classes.insert(p);
        if t == p {
            *tp.entry(t).or_default() += 1;
        } else {
            *fp.entry(p).or_default() += 1;
            *fneg.entry(t).or_default() += 1;
        }
    }
    if classes.is_empty() {
        return f64::NAN;
    }
    let total: f64 = classes
        .iter()
        .map(|c| {
            let tp = *tp.get(c).unwrap_or(&0) as f64;
            let denom =
                2.0 * tp + *fp.get(c).unwrap_or(&0) as f64 + *fneg.get(c).unwrap_or(&0) as f64;
            if denom == 0.0 {
                0.0
            } else {
                2.0 * tp / denom
            }
        })
        .sum();
    total / classes.len() as f64
}

/// Macro F1 of `pred` against `truth` (class ids), as scikit-learn computes it.
pub fn macro_f1(truth: &[u32], pred: &[u32]) -> f64 {
    macro_f1_idx(truth, pred, 0..truth.len().min(pred.len()))
}

/// Macro-F1 difference (candidate − production) on the same labelled inputs with a paired
/// percentile-bootstrap interval: `resamples` resamples of the rows (the same rows for both
/// models), seeded, so a report is reproducible. The p-value is twice the smaller tail share of
/// resampled deltas on either side of zero.
pub fn paired_f1_delta(
    truth: &[u32],
    prod: &[u32],
    cand: &[u32],
    level: f64,
    resamples: usize,
    seed: u64,
) -> DeltaCi {
    let n = truth.len().min(prod.len()).min(cand.len());
    if n == 0 {
        return DeltaCi {
            delta: f64::NAN,
            low: f64::NAN,
            high: f64::NAN,
            n: 0,
            level,
            p_value: f64::NAN,
        };
    }
    let delta = macro_f1(&truth[..n], &cand[..n]) - macro_f1(&truth[..n], &prod[..n]);
    let mut rng = seed;
    let mut deltas = Vec::with_capacity(resamples.max(1));
    let mut idx = vec![0usize; n];
    for _ in 0..resamples.max(1) {
        for slot in idx.iter_mut() {
            *slot = (splitmix64(&mut rng) % n as u64) as usize;
        }
        let c = macro_f1_idx(truth, cand, idx.iter().copied());
        let p = macro_f1_idx(truth, prod, idx.iter().copied());
        deltas.push(c - p);
    }
    deltas.sort_by(f64::total_cmp);
    let alpha = (1.0 - level.clamp(0.5, 0.999_999)) / 2.0;
    let below = deltas.iter().filter(|d| **d <= 0.0).count() as f64 / deltas.len() as f64;
    let above = deltas.iter().filter(|d| **d >= 0.0).count() as f64 / deltas.len() as f64;
    DeltaCi {
        delta,
        low: quantile_sorted(&deltas, alpha),
        high: quantile_sorted(&deltas, 1.0 - alpha),
        n: n as u64,
        level,
        p_value: (2.0 * below.min(above)).min(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy() {
        // numpy.quantile([1, 2, 3, 4], [0, 0.25, 0.5, 0.9, 1]) = [1, 1.75, 2.5, 3.7, 4]
        let q = quantiles(&[4.0, 1.0, 3.0, 2.0], &[0.0, 0.25, 0.5, 0.9, 1.0]);
        let want = [1.0, 1.75, 2.5, 3.7, 4.0];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{q:?}");
        }
        assert!(quantile_sorted(&[], 0.5).is_nan());
    }

    #[test]
    fn reservoir_is_exact_until_full_then_bounded_and_uniform() {
        let mut r = Reservoir::new(100, 1);
        for i in 0..50 {
            r.push(i);
        }
        assert_eq!(r.items(), (0..50).collect::<Vec<_>>().as_slice());
        let mut r = Reservoir::new(1000, 7);
        for i in 0..100_000u32 {
            r.push(i);
        }
        assert_eq!(r.items().len(), 1000);
        assert_eq!(r.seen(), 100_000);
        // A uniform sample of 0..100000 has mean ~50000 (sd of the mean ~ 913).
        let mean = r.items().iter().map(|&x| f64::from(x)).sum::<f64>() / 1000.0;
        assert!((mean - 50_000.0).abs() < 4_000.0, "{mean}");
    }

    #[test]
    fn paired_accuracy_wald_interval_and_mcnemar() {
        let counts = PairedCounts {
            both_right: 120,
            prod_only: 10,
            cand_only: 30,
            both_wrong: 40,
        };
        let d = paired_accuracy_delta(&counts, 0.95);
        assert_eq!(d.n, 200);
        assert!((d.delta - 0.1).abs() < 1e-12);
        // SE = sqrt(40 - 400/200)/200 = 0.0308221; z = 1.959964
        let se = 38f64.sqrt() / 200.0;
        assert!((d.low - (0.1 - 1.959_964 * se)).abs() < 1e-6, "{d:?}");
        assert!((d.high - (0.1 + 1.959_964 * se)).abs() < 1e-6, "{d:?}");
        // McNemar with continuity correction: (|30-10|-1)^2/40 = 9.025 -> p = 0.002663
        assert!((d.p_value - 0.002_663).abs() < 2e-5, "{}", d.p_value);
        assert!(d.better(0.0) && !d.worse(0.0));
        assert!((counts.prod_accuracy() - 0.65).abs() < 1e-12);
        assert!((counts.cand_accuracy() - 0.75).abs() < 1e-12);
        let none = paired_accuracy_delta(&PairedCounts::default(), 0.95);
        assert!(none.delta.is_nan() && !none.better(0.0) && !none.worse(0.0));
    }

    #[test]
    fn identical_models_have_a_zero_delta() {
        let counts = PairedCounts {
            both_right: 80,
            prod_only: 0,
            cand_only: 0,
            both_wrong: 20,
        };
        let d = paired_accuracy_delta(&counts, 0.95);
        assert_eq!((d.delta, d.low, d.high, d.p_value), (0.0, 0.0, 0.0, 1.0));
    }

    #[test]
    fn macro_f1_matches_scikit_learn() {
        // sklearn.metrics.f1_score([0,1,2,0,1,2], [0,2,1,0,0,1], average="macro") = 0.26666...
        let f1 = macro_f1(&[0, 1, 2, 0, 1, 2], &[0, 2, 1, 0, 0, 1]);
        assert!((f1 - 0.266_666_666_666_666_7).abs() < 1e-12, "{f1}");
        // A predicted class absent from the truth counts with F1 0:
        // f1_score([0,0,1,1], [0,2,1,1], average="macro") = (0.6667 + 1 + 0) / 3
        let f1 = macro_f1(&[0, 0, 1, 1], &[0, 2, 1, 1]);
        assert!((f1 - (2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-12, "{f1}");
    }

    #[test]
    fn bootstrap_f1_interval_contains_the_estimate_and_detects_a_clear_loss() {
        // Production right on 90% of 400 inputs, candidate on 50%, both over 4 classes.
        let truth: Vec<u32> = (0..400).map(|i| i % 4).collect();
        let prod: Vec<u32> = truth
            .iter()
            .enumerate()
            .map(|(i, &t)| if i % 10 == 0 { (t + 1) % 4 } else { t })
            .collect();
        let cand: Vec<u32> = truth
            .iter()
            .enumerate()
            .map(|(i, &t)| if i % 2 == 0 { (t + 1) % 4 } else { t })
            .collect();
        let d = paired_f1_delta(&truth, &prod, &cand, 0.95, 500, 42);
        assert!(d.low <= d.delta && d.delta <= d.high, "{d:?}");
        assert!(d.worse(0.0), "{d:?}");
        assert!(d.p_value < 0.01, "{d:?}");
        let same = paired_f1_delta(&truth, &prod, &prod, 0.95, 200, 42);
        assert_eq!((same.delta, same.low, same.high), (0.0, 0.0, 0.0));
        // Deterministic for a seed.
        assert_eq!(d, paired_f1_delta(&truth, &prod, &cand, 0.95, 500, 42));
    }
}
