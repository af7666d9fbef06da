//! Distance-type drift scores: PSI, KL divergence, Jensen–Shannon distance, Hellinger
//! distance and Wasserstein distance normed by the reference standard deviation.

use super::binning::{category_bins, histogram, shares, sturges_edges};
use super::sample::{merge_numeric, BinnedCounts, CategoryCounts, NumericCounts};

/// `x * ln(x / y)` with SciPy's `rel_entr` conventions.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// Population stability index over floored shares: Σ (r − c)·ln(r / c).
pub fn psi(bins: &BinnedCounts) -> f64 {
    let r = shares(&bins.reference, true);
    let c = shares(&bins.current, true);
    r.iter().zip(&c).map(|(r, c)| (r - c) * (r / c).ln()).sum()
}

/// Kullback–Leibler divergence KL(reference ‖ current) over floored shares, renormalised
/// to sum to 1 as `scipy.stats.entropy` does.
pub fn kl_divergence(bins: &BinnedCounts) -> f64 {
    let r = shares(&bins.reference, true);
    let c = shares(&bins.current, true);
    let sr: f64 = r.iter().sum();
    let sc: f64 = c.iter().sum();
    r.iter()
        .zip(&c)
        .map(|(p, q)| rel_entr(p / sr, q / sc))
        .sum()
}

/// Jensen–Shannon distance (natural log): sqrt of the JS divergence of the raw shares.
pub fn jensen_shannon(bins: &BinnedCounts) -> f64 {
    let r = shares(&bins.reference, false);
    let c = shares(&bins.current, false);
    let sr: f64 = r.iter().sum();
    let sc: f64 = c.iter().sum();
    let p: Vec<f64> = r.iter().map(|x| x / sr).collect();
    let q: Vec<f64> = c.iter().map(|x| x / sc).collect();
    let mut left = 0.0;
    let mut right = 0.0;
    for (a, b) in p.iter().zip(&q) {
        let m = (a + b) / 2.0;
        left += rel_entr(*a, m);
        right += rel_entr(*b, m);
    }
    ((left + right) / 2.0).sqrt()
}

/// Hellinger distance of two categorical samples (raw shares over the union of categories).
pub fn hellinger_categorical(reference: &CategoryCounts, current: &CategoryCounts) -> f64 {
    let bins = category_bins(reference, current);
    hellinger_from_counts(&bins)
}

fn hellinger_from_counts(bins: &BinnedCounts) -> f64 {
    let r = shares(&bins.reference, false);
    let c = shares(&bins.current, false);
    let s: f64 = r.iter().zip(&c).map(|(p, q)| (p * q).sqrt()).sum();
    (1.0 - s.clamp(0.0, 1.0)).sqrt()
}

/// Hellinger distance of two numerical samples as Evidently computes it: Sturges edges over
/// the *distinct* values of reference ∪ current (whatever their number), density
/// histograms, Σ sqrt(h1·h2)·width.
pub fn hellinger_numerical(reference: &NumericCounts, current: &NumericCounts) -> f64 {
    let merged = merge_numeric(reference, current);
    let (Some(first), Some(last)) = (merged.first(), merged.last()) else {
        return f64::NAN;
    };
    let integer = reference.integer_typed() && current.integer_typed();
    let edges = sturges_edges(first.0, last.0, merged.len() as u64, integer);
    let h1 = density(&histogram(reference, &edges), &edges);
    let h2 = density(&histogram(current, &edges), &edges);
    let emax = edges.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let emin = edges.iter().copied().fold(f64::INFINITY, f64::min);
    let width = (emax - emin) / (edges.len() - 1) as f64;
    let s: f64 = h1
        .iter()
        .zip(&h2)
        .map(|(a, b)| (a * b).sqrt() * width)
        .sum();
    (1.0 - s.clamp(0.0, 1.0)).sqrt()
}

/// `numpy.histogram(..., density=True)`: counts / bin width / total.
fn density(counts: &[u64], edges: &[f64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .enumerate()
        .map(|(i, &c)| c as f64 / (edges[i + 1] - edges[i]) / total as f64)
        .collect()
}

/// First Wasserstein distance between the two empirical distributions
/// (`scipy.stats.wasserstein_distance`).
pub fn wasserstein(reference: &NumericCounts, current: &NumericCounts) -> f64 {
    let merged = merge_numeric(reference, current);
    let (n1, n2) = (reference.total() as f64, current.total() as f64);
    let (mut c1, mut c2) = (0u64, 0u64);
    let mut total = 0.0;
    for w in merged.windows(2) {
        c1 += w[0].1;
        c2 += w[0].2;
        let diff = (c1 as f64 / n1 - c2 as f64 / n2).abs();
        total += diff * (w[1].0 - w[0].0);
    }
    total
}

/// Wasserstein distance divided by max(std(reference), 0.001) (Evidently's
/// `wasserstein_distance_norm`).
pub fn wasserstein_normed(reference: &NumericCounts, current: &NumericCounts) -> f64 {
    let norm = reference.std().max(0.001);
    wasserstein(reference, current) / norm
}
