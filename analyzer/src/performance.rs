//! Model performance: classification (accuracy, precision, recall, F1, ROC AUC, log loss,
//! Brier score, expected calibration error), regression (MAE, RMSE, MAPE) and serving
//! (latency percentiles, error rate). Definitions follow scikit-learn and numpy.

use serde::Serialize;

use crate::error::AnalyzerError;

/// Number of equal-width bins on [0, 1] for the expected calibration error.
pub const ECE_BINS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationMetrics {
    pub count: u64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub roc_auc: f64,
    pub log_loss: f64,
    pub brier: f64,
    pub ece: f64,
}

/// Binary classification metrics from labels and positive-class scores in [0, 1];
/// a score at or above `threshold` is a positive prediction. Precision, recall and F1 are 0
/// when undefined (scikit-learn's `zero_division` default); ROC AUC is NaN with one class.
pub fn classification(
    labels: &[bool],
    scores: &[f64],
    threshold: f64,
) -> Result<ClassificationMetrics, AnalyzerError> {
    if labels.len() != scores.len() {
        return Err(AnalyzerError::LengthMismatch(labels.len(), scores.len()));
    }
    if labels.is_empty() {
        return Err(AnalyzerError::EmptySample);
    }
    if let Some(s) = scores.iter().find(|s| !(0.0..=1.0).contains(*s)) {
        return Err(AnalyzerError::InvalidInput(format!(
            "score {s} is outside [0, 1]"
        )));
    }
    let n = labels.len() as f64;
    let (mut tp, mut fp, mut tn, mut fn_) = (0u64, 0u64, 0u64, 0u64);
    let eps = f64::EPSILON;
    let (mut ll, mut brier) = (0.0, 0.0);
    for (&y, &s) in labels.iter().zip(scores) {
        match (y, s >= threshold) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
            (true, false) => fn_ += 1,
        }
        let p = s.clamp(eps, 1.0 - eps);
        ll -= if y { p.ln() } else { (1.0 - p).ln() };
        let t = if y { 1.0 } else { 0.0 };
        brier += (s - t) * (s - t);
    }
    let div = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision = div(tp, tp + fp);
    let recall = div(tp, tp + fn_);
    let f1 = div(2 * tp, 2 * tp + fp + fn_);
    Ok(ClassificationMetrics {
        count: labels.len() as u64,
        accuracy: (tp + tn) as f64 / n,
        precision,
        recall,
        f1,
        roc_auc: roc_auc(labels, scores),
        log_loss: ll / n,
        brier: brier / n,
        ece: expected_calibration_error(labels, scores, ECE_BINS),
    })
}

/// Area under the ROC curve via the rank-sum (ties get average ranks).
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let n_pos = labels.iter().filter(|&&y| y).count() as f64;
    let n_neg = labels.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return f64::NAN;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum += avg_rank;
            }
        }
        i = j + 1;
    }
    (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

/// Expected calibration error with `bins` equal-width bins on [0, 1] (bin i holds scores
/// in (i/bins, (i+1)/bins], the first also 0): Σ |mean(label) − mean(score)| · n_bin / n.
pub fn expected_calibration_error(labels: &[bool], scores: &[f64], bins: usize) -> f64 {
    let edges: Vec<f64> = crate::drift::binning::linspace(0.0, 1.0, bins + 1);
    let mut cnt = vec![0u64; bins];
    let mut sum_y = vec![0.0; bins];
    let mut sum_s = vec![0.0; bins];
    for (&y, &s) in labels.iter().zip(scores) {
        let i = edges
            .partition_point(|&e| e < s)
            .saturating_sub(1)
            .min(bins - 1);
        cnt[i] += 1;
        sum_y[i] += if y { 1.0 } else { 0.0 };
        sum_s[i] += s;
    }
    let n = labels.len() as f64;
    (0..bins)
        .filter(|&i| cnt[i] > 0)
        .map(|i| {
            let c = cnt[i] as f64;
            c / n * (sum_y[i] / c - sum_s[i] / c).abs()
        })
        .sum()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegressionMetrics {
    pub count: u64,
    pub mae: f64,
    pub rmse: f64,
    /// Mean absolute percentage error as a fraction (scikit-learn: |y| floored at machine epsilon).
    pub mape: f64,
}

pub fn regression(labels: &[f64], predictions: &[f64]) -> Result<RegressionMetrics, AnalyzerError> {
    if labels.len() != predictions.len() {
        return Err(AnalyzerError::LengthMismatch(
            labels.len(),
            predictions.len(),
        ));
    }
    if labels.is_empty() {
        return Err(AnalyzerError::EmptySample);
    }
    let n = labels.len() as f64;
    let (mut ae, mut se, mut ape) = (0.0, 0.0, 0.0);
    for (&y, &p) in labels.iter().zip(predictions) {
        let e = (y - p).abs();
        ae += e;
        se += e * e;
        ape += e / y.abs().max(f64::EPSILON);
    }
    Ok(RegressionMetrics {
        count: labels.len() as u64,
        mae: ae / n,
        rmse: (se / n).sqrt(),
        mape: ape / n,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServingMetrics {
    pub requests: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub error_rate: f64,
}

/// Percentile with linear interpolation (numpy's default) of unsorted data.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable_by(f64::total_cmp);
    percentile_sorted(&v, q)
}

fn percentile_sorted(v: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    let frac = pos - lo as f64;
    v[lo] + (v[hi] - v[lo]) * frac
}

/// Latency percentiles and the share of failed requests.
pub fn serving(latencies_ms: &[f64], errors: u64) -> ServingMetrics {
    let mut v: Vec<f64> = latencies_ms
        .iter()
        .copied()
        .filter(|x| !x.is_nan())
        .collect();
    v.sort_unstable_by(f64::total_cmp);
    let p = |q| {
        if v.is_empty() {
            f64::NAN
        } else {
            percentile_sorted(&v, q)
        }
    };
    let requests = latencies_ms.len() as u64;
    ServingMetrics {
        requests,
        p50_ms: p(50.0),
        p95_ms: p(95.0),
        p99_ms: p(99.0),
        error_rate: if requests == 0 {
            0.0
        } else {
            errors as f64 / requests as f64
        },
    }
}
