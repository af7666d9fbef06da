//! Evidently's `mmd` embedding drift: the unbiased squared maximum mean discrepancy with an
//! RBF kernel whose bandwidth is the median reference–current distance, and its bootstrap.

use super::matrix::{sq_dist, Matrix};
use super::nprandom::{median, percentile, RandomState};
use super::{finite, Decision, MmdOptions, N_BOOTSTRAP};
use crate::error::AnalyzerError;

/// Rows per side Evidently uses to pick the bandwidth (`DataFrame.sample(min(n, 1000))`).
const BANDWIDTH_SAMPLE: usize = 1000;

/// Rows of `x` that `x.sample(min(rows, 1000), random_state=0)` keeps. Below 1000 rows all
/// of them (the order does not matter to a median).
fn bandwidth_sample(x: &Matrix) -> Vec<usize> {
    if x.rows() <= BANDWIDTH_SAMPLE {
        (0..x.rows()).collect()
    } else {
        RandomState::new(0).sample_without_replacement(x.rows(), BANDWIDTH_SAMPLE)
    }
}

fn rbf_gamma(median_distance: f64) -> Result<f64, AnalyzerError> {
    finite(
        1.0 / (median_distance * median_distance),
        "the MMD kernel bandwidth",
    )
}

pub(super) fn mmd(r: &Matrix, c: &Matrix, o: &MmdOptions) -> Result<Decision, AnalyzerError> {
    let (m, n) = (r.rows(), c.rows());
    let xs = bandwidth_sample(r);
    let ys = bandwidth_sample(c);
    let mut dists = Vec::with_capacity(xs.len() * ys.len());
    for &a in &xs {
        for &b in &ys {
            dists.push(sq_dist(r.row(a), c.row(b)).sqrt());
        }
    }
    let gamma = rbf_gamma(median(&mut dists))?;
    let k = |a: &[f64], b: &[f64]| (-gamma * sq_dist(a, b)).exp();
    let (mut kxx, mut kyy, mut kxy) = (0.0, 0.0, 0.0);
    for a in 0..m {
        for b in a + 1..m {
            kxx += k(r.row(a), r.row(b));
        }
        for b in 0..n {
            kxy += k(r.row(a), c.row(b));
        }
    }
    for a in 0..n {
        for b in a + 1..n {
            kyy += k(c.row(a), c.row(b));
        }
    }
    let (mf, nf) = (m as f64, n as f64);
    let mmd2u =
        2.0 * kxx / (mf * (mf - 1.0)) + 2.0 * kyy / (nf * (nf - 1.0)) - 2.0 * kxy / (mf * nf);
    let value = mmd2u.max(0.0);
    if !o.bootstrap {
        return Ok((value, o.threshold, mmd2u > o.threshold, false));
    }
    let perc = mmd_bootstrap_percentile(r, c.rows(), &xs, o.quantile_probability)?;
    Ok((value, perc, mmd2u > perc, true))
}

/// Evidently's MMD bootstrap: the kernel is re-fitted on the reference alone (bandwidth = the
/// median of all pairwise reference distances, zeros on the diagonal included), and each of
/// 100 repetitions draws two samples with replacement from the reference, of sizes
/// ⌊m²/(m+n)⌋ and ⌊mn/(m+n)⌋ (at least 1).
fn mmd_bootstrap_percentile(
    r: &Matrix,
    n: usize,
    xs: &[usize],
    quantile: f64,
) -> Result<f64, AnalyzerError> {
    let m = r.rows();
    let mut dists = Vec::with_capacity(xs.len() * xs.len());
    for &a in xs {
        for &b in xs {
            dists.push(if a == b {
                0.0
            } else {
                sq_dist(r.row(a), r.row(b)).sqrt()
            });
        }
    }
    let gamma = rbf_gamma(median(&mut dists))?;
    let (mf, nf) = (m as f64, n as f64);
    let x_size = ((mf * mf / (mf + nf)) as usize).max(1);
    let y_size = ((mf * nf / (mf + nf)) as usize).max(1);
    if x_size < 2 || y_size < 2 {
        return Err(AnalyzerError::InvalidInput(
            "the MMD bootstrap needs larger samples (its subsamples would hold one row)".into(),
        ));
    }
    // Multiplicity of every reference row in every repetition's two samples: sums over
    // K[idx][:, idx] become cᵀKc, so K is evaluated once, row by row.
    let mut cx = vec![vec![0.0f64; m]; N_BOOTSTRAP as usize];
    let mut cy = vec![vec![0.0f64; m]; N_BOOTSTRAP as usize];
    for i in 0..N_BOOTSTRAP as usize {
        let mut rs = RandomState::new(i as u32);
        for a in rs.choice(m, x_size) {
            cx[i][a] += 1.0;
        }
        for a in rs.choice(m, y_size) {
            cy[i][a] += 1.0;
        }
    }
    let (mut sxx, mut syy, mut sxy) = (
        vec![0.0; N_BOOTSTRAP as usize],
        vec![0.0; N_BOOTSTRAP as usize],
        vec![0.0; N_BOOTSTRAP as usize],
    );
    let mut krow = vec![0.0; m];
    for a in 0..m {
        let used = (0..N_BOOTSTRAP as usize).any(|i| cx[i][a] > 0.0 || cy[i][a] > 0.0);
        if !used {
            continue;
        }
        for (b, kb) in krow.iter_mut().enumerate() {
            *kb = if a == b {
                1.0
            } else {
                (-gamma * sq_dist(r.row(a), r.row(b))).exp()
            };
        }
        for i in 0..N_BOOTSTRAP as usize {
            let (xa, ya) = (cx[i][a], cy[i][a]);
            if xa == 0.0 && ya == 0.0 {
                continue;
            }
            let kcx: f64 = krow.iter().zip(&cx[i]).map(|(k, c)| k * c).sum();
            let kcy: f64 = krow.iter().zip(&cy[i]).map(|(k, c)| k * c).sum();
            sxx[i] += xa * kcx;
            syy[i] += ya * kcy;
            sxy[i] += xa * kcy;
        }
    }
    let (xs_f, ys_f) = (x_size as f64, y_size as f64);
    let stats: Vec<f64> = (0..N_BOOTSTRAP as usize)
        .map(|i| {
            (sxx[i] - xs_f) / (xs_f * (xs_f - 1.0)) + (syy[i] - ys_f) / (ys_f * (ys_f - 1.0))
                - 2.0 / (xs_f * ys_f) * sxy[i]
        })
        .collect();
    Ok(percentile(&stats, quantile))
}
