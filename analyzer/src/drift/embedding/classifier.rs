//! The domain classifier of Evidently's `model` method, ported from scikit-learn 1.9 so that
//! vigil's ROC AUC equals Evidently's rather than approximating it:
//!
//! - `train_test_split(test_size=0.5, random_state=42, shuffle=True)`: a
//!   `RandomState(42).permutation` of the stacked rows; the first ⌈N/2⌉ are the test set;
//! - `SGDClassifier(loss="log_loss", random_state=42)`: plain SGD on the unscaled features,
//!   L2 penalty α = 1e-4, "optimal" learning rate η = 1/(α(t₀ + t − 1)), intercept, up to
//!   1000 epochs, each epoch reshuffling the sample order with scikit-learn's xorshift
//!   `our_rand_r` from a seed drawn from `RandomState(42)`, stopping after 5 epochs without
//!   the mean objective improving by `tol = 1e-3`;
//! - `roc_auc_score(y_test, predict_proba[:, 1])`, ties counting one half.
//!
//! The weight vector keeps scikit-learn's lazy scale (`wscale`) and its loss formulas so the
//! arithmetic, and with it the stopping epoch, follows the original step for step.

use super::matrix::Matrix;
use super::nprandom::RandomState;
use crate::error::AnalyzerError;

const ALPHA: f64 = 1e-4;
const MAX_ITER: usize = 1000;
const TOL: f64 = 1e-3;
const N_ITER_NO_CHANGE: usize = 5;
const SEED: u32 = 42;
const I32_MAX: i64 = i32::MAX as i64;

/// `log(1 + exp(x))` as scikit-learn's `log1pexp`.
fn log1pexp(x: f64) -> f64 {
    if x <= -37.0 {
        x.exp()
    } else if x <= -2.0 {
        x.exp().ln_1p()
    } else if x <= 18.0 {
        (1.0 + x.exp()).ln()
    } else if x <= 33.3 {
        x + (-x).exp()
    } else {
        x
    }
}

/// Half binomial loss `log1pexp(p) − y·p` and its gradient `expit(p) − y` (y ∈ {0, 1}).
fn loss(y: f64, p: f64) -> f64 {
    log1pexp(p) - y * p
}

fn gradient(y: f64, p: f64) -> f64 {
    if p > -37.0 {
        let e = (-p).exp();
        ((1.0 - y) - y * e) / (1.0 + e)
    } else {
        p.exp() - y
    }
}

/// scikit-learn's `our_rand_r` (xorshift32, reduced to [0, 2^31)).
fn our_rand_r(seed: &mut u32) -> u32 {
    if *seed == 0 {
        *seed = 1;
    }
    *seed ^= *seed << 13;
    *seed ^= *seed >> 17;
    *seed ^= *seed << 5;
    *seed % (i32::MAX as u32 + 1)
}

/// Fit `SGDClassifier(loss="log_loss", random_state=42)` on rows `x` with labels in {0, 1}.
/// Returns (weights, intercept).
pub fn fit_sgd_log_loss(x: &Matrix, y: &[f64]) -> Result<(Vec<f64>, f64), AnalyzerError> {
    let (n, d) = (x.rows(), x.cols());
    let mut rs = RandomState::new(SEED);
    let _dataset_seed = rs.randint(1, I32_MAX); // make_dataset draws first (used only by SAG)
    let shuffle_seed = rs.randint(0, I32_MAX) as u32;

    let mut w = vec![0.0; d];
    let mut wscale = 1.0;
    let mut sq_norm: f64 = 0.0;
    let mut intercept = 0.0;
    let typw = (1.0 / ALPHA.sqrt()).sqrt();
    let initial_eta0 = typw / gradient(1.0, -typw).max(1.0);
    let optimal_init = 1.0 / (initial_eta0 * ALPHA);
    let mut t = 1.0;
    let mut index: Vec<usize> = (0..n).collect();
    let mut best_objective = f64::INFINITY;
    let mut no_improvement = 0;

    for _epoch in 0..MAX_ITER {
        let mut objective_sum = 0.0;
        let mut seed = shuffle_seed;
        for i in 0..n.saturating_sub(1) {
            let j = i + (our_rand_r(&mut seed) % (n - i) as u32) as usize;
            index.swap(i, j);
        }
        for &s in &index {
            let row = x.row(s);
            let yi = y[s];
            let mut dot = 0.0;
            for (wj, xj) in w.iter().zip(row) {
                dot += wj * xj;
            }
            let p = dot * wscale + intercept;
            let eta = 1.0 / (ALPHA * (optimal_init + t - 1.0));
            objective_sum += loss(yi, p);
            let norm = sq_norm.sqrt();
            objective_sum += ALPHA * (0.5 * (norm * norm) + 0.0);
            let dloss = gradient(yi, p).clamp(-1e12, 1e12);
            let update = -eta * dloss;
            // L2 weight decay, lazily through the scale.
            let c = (1.0 - eta * ALPHA).max(0.0);
            wscale *= c;
            sq_norm *= c * c;
            if wscale < 1e-9 {
                w.iter_mut().for_each(|v| *v *= wscale);
                wscale = 1.0;
            }
            if update != 0.0 {
                let mut acc = 0.0;
                for (wj, xj) in w.iter_mut().zip(row) {
                    *wj += xj * (update / wscale);
                    acc += *wj * *wj;
                }
                sq_norm = acc * (wscale * wscale);
                intercept += update;
            }
            t += 1.0;
        }
        if !intercept.is_finite() || w.iter().any(|v| !v.is_finite()) {
            return Err(AnalyzerError::InvalidInput(
                "the domain classifier diverged (floating-point overflow); scale the embeddings"
                    .into(),
            ));
        }
        let objective = objective_sum / n as f64;
        if objective > best_objective - TOL {
            no_improvement += 1;
        } else {
            no_improvement = 0;
        }
        if objective < best_objective {
            best_objective = objective;
        }
        if no_improvement >= N_ITER_NO_CHANGE {
            break;
        }
    }
    w.iter_mut().for_each(|v| *v *= wscale);
    Ok((w, intercept))
}

/// ROC AUC of scores against labels (1 = positive), ties counting one half.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> Result<f64, AnalyzerError> {
    let positives = labels.iter().filter(|l| **l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(AnalyzerError::InvalidInput(
            "ROC AUC needs both reference and current rows in the test split; pass more rows"
                .into(),
        ));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of positive ranks with mid-ranks for ties (Mann–Whitney U).
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        let pos_in_tie = order[i..=j].iter().filter(|&&k| labels[k]).count();
        rank_sum += mid_rank * pos_in_tie as f64;
        i = j + 1;
    }
    let (p, q) = (positives as f64, negatives as f64);
    Ok((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
}

/// Evidently's `model` statistic: reference rows labelled 1, current 0, split in half,
/// classifier fitted on one half and its ROC AUC measured on the other. Returns the AUC and
/// the test labels (for the random-AUC bootstrap).
pub fn domain_classifier_auc(
    reference: &Matrix,
    current: &Matrix,
) -> Result<(f64, Vec<bool>), AnalyzerError> {
    let data = reference.stack(current);
    let total = data.rows();
    let labels: Vec<bool> = (0..total).map(|i| i < reference.rows()).collect();
    let n_test = total.div_ceil(2);
    let perm = RandomState::new(SEED).permutation(total);
    let (test_idx, train_idx) = perm.split_at(n_test);
    let train_labels: Vec<f64> = train_idx
        .iter()
        .map(|&i| if labels[i] { 1.0 } else { 0.0 })
        .collect();
    if train_labels.iter().all(|&l| l == 1.0) || train_labels.iter().all(|&l| l == 0.0) {
        return Err(AnalyzerError::InvalidInput(
            "the classifier's training half holds only one side; pass more rows".into(),
        ));
    }
    let (w, b) = fit_sgd_log_loss(&data.select_rows(train_idx), &train_labels)?;
    let mut scores = Vec::with_capacity(test_idx.len());
    let mut test_labels = Vec::with_capacity(test_idx.len());
    for &i in test_idx {
        let z: f64 = w.iter().zip(data.row(i)).map(|(a, x)| a * x).sum::<f64>() + b;
        scores.push(1.0 / (1.0 + (-z).exp()));
        test_labels.push(labels[i]);
    }
    let auc = roc_auc(&test_labels, &scores)?;
    Ok((auc, test_labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_half() {
        let labels = [true, true, false, false];
        assert_eq!(roc_auc(&labels, &[0.9, 0.8, 0.1, 0.2]).unwrap(), 1.0);
        assert_eq!(roc_auc(&labels, &[0.1, 0.2, 0.9, 0.8]).unwrap(), 0.0);
        assert_eq!(roc_auc(&labels, &[0.5, 0.5, 0.5, 0.5]).unwrap(), 0.5);
        assert!(roc_auc(&[true, true], &[0.1, 0.2]).is_err());
    }

    #[test]
    fn loss_pieces_match_closed_forms() {
        for p in [-40.0, -5.0, 0.3, 20.0, 40.0] {
            let exact = f64::exp(p).ln_1p();
            assert!((log1pexp(p) - exact).abs() <= 1e-12 * exact.max(1e-300));
            let expit = 1.0 / (1.0 + (-p).exp());
            assert!((gradient(1.0, p) - (expit - 1.0)).abs() < 1e-12);
        }
    }
}
