//! Histogram binning exactly as numpy (`histogram_bin_edges(..., "sturges")`, `histogram`)
//! and Evidently's `get_binned_data` (shares per bin, empty bins floored).

use super::sample::{merge_categories, merge_numeric, BinnedCounts, CategoryCounts, NumericCounts};

/// Numerical columns with more distinct reference values than this are binned with
/// Sturges' rule; others get one bin per distinct value (Evidently's rule).
pub const MAX_DISTINCT_FOR_VALUE_BINS: usize = 20;

/// Bin edges of `numpy.histogram_bin_edges(a, bins="sturges")` for data with the given
/// minimum, maximum and size. `integer_typed` reproduces numpy's clamp of the bin width to
/// at least 1 for integer arrays.
pub fn sturges_edges(min: f64, max: f64, size: u64, integer_typed: bool) -> Vec<f64> {
    let ptp = max - min;
    let (mut first, mut last) = (min, max);
    if first == last {
        first -= 0.5;
        last += 0.5;
    }
    let n_bins = if size == 0 {
        1
    } else {
        let mut width = ptp / ((size as f64).log2() + 1.0);
        if width != 0.0 {
            if integer_typed && width < 1.0 {
                width = 1.0;
            }
            ((last - first) / width).ceil() as usize
        } else {
            1
        }
    };
    linspace(first, last, n_bins + 1)
}

/// `numpy.linspace(start, stop, num, endpoint=True)`.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    if num == 1 {
        return vec![start];
    }
    let div = (num - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut y: Vec<f64> = if step == 0.0 {
        (0..num).map(|i| i as f64 / div * delta + start).collect()
    } else {
        (0..num).map(|i| i as f64 * step + start).collect()
    };
    y[num - 1] = stop;
    y
}

/// Index of the bin holding `x` under numpy's rule: `[e_i, e_{i+1})`, last bin closed.
/// `None` when `x` lies outside the edges.
pub fn bin_index(edges: &[f64], x: f64) -> Option<usize> {
    let nb = edges.len().checked_sub(1)?;
    if nb == 0 || x < edges[0] || x > edges[nb] {
        return None;
    }
    let i = edges.partition_point(|&e| e <= x);
    Some(i.saturating_sub(1).min(nb - 1))
}

/// `numpy.histogram(a, bins=edges)[0]` from value counts.
pub fn histogram(sample: &NumericCounts, edges: &[f64]) -> Vec<u64> {
    let mut out = vec![0u64; edges.len().saturating_sub(1)];
    for (&v, &c) in sample.values().iter().zip(sample.counts()) {
        if let Some(i) = bin_index(edges, v) {
            out[i] += c;
        }
    }
    out
}

/// Aligned counts used by Evidently's `get_binned_data` for a numerical column.
pub fn numeric_bins(reference: &NumericCounts, current: &NumericCounts) -> BinnedCounts {
    if reference.distinct() > MAX_DISTINCT_FOR_VALUE_BINS {
        let min = reference
            .min()
            .unwrap_or(0.0)
            .min(current.min().unwrap_or(f64::INFINITY));
        let max = reference
            .max()
            .unwrap_or(0.0)
            .max(current.max().unwrap_or(f64::NEG_INFINITY));
        let integer = reference.integer_typed() && current.integer_typed();
        let edges = sturges_edges(min, max, reference.total() + current.total(), integer);
        BinnedCounts {
            reference: histogram(reference, &edges),
            current: histogram(current, &edges),
        }
    } else {
        per_value_bins(reference, current)
    }
}

/// One bin per distinct value of reference ∪ current.
pub fn per_value_bins(reference: &NumericCounts, current: &NumericCounts) -> BinnedCounts {
    let merged = merge_numeric(reference, current);
    BinnedCounts {
        reference: merged.iter().map(|m| m.1).collect(),
        current: merged.iter().map(|m| m.2).collect(),
    }
}

/// One bin per category of reference ∪ current (sorted by category).
pub fn category_bins(reference: &CategoryCounts, current: &CategoryCounts) -> BinnedCounts {
    let merged = merge_categories(reference, current);
    BinnedCounts {
        reference: merged.iter().map(|m| m.1).collect(),
        current: merged.iter().map(|m| m.2).collect(),
    }
}

/// Shares per bin (count / sample size). With `floor_empty`, empty bins get
/// `min(non-zero share) / 1e6` when that minimum is <= 1e-4, else `1e-4` (Evidently's
/// `feel_zeroes`), applied to each side separately.
pub fn shares(counts: &[u64], floor_empty: bool) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    let n = total as f64;
    let mut out: Vec<f64> = counts.iter().map(|&c| c as f64 / n).collect();
    if floor_empty {
        let min_nonzero = out
            .iter()
            .copied()
            .filter(|&p| p != 0.0)
            .fold(f64::INFINITY, f64::min);
        if min_nonzero.is_finite() {
            let fill = if min_nonzero <= 0.0001 {
                min_nonzero / 1e6
            } else {
                0.0001
            };
            for p in out.iter_mut() {
                if *p == 0.0 {
                    *p = fill;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sturges_matches_numpy() {
        // numpy.histogram_bin_edges(np.arange(100.), "sturges") has 9 edges (8 bins)
        let e = sturges_edges(0.0, 99.0, 100, false);
        assert_eq!(e.len(), 9);
        assert_eq!(e[0], 0.0);
        assert_eq!(e[8], 99.0);
        assert_eq!(e[1], 12.375);
    }

    #[test]
    fn last_bin_is_closed() {
        let e = [0.0, 1.0, 2.0];
        assert_eq!(bin_index(&e, 0.0), Some(0));
        assert_eq!(bin_index(&e, 1.0), Some(1));
        assert_eq!(bin_index(&e, 2.0), Some(1));
        assert_eq!(bin_index(&e, 2.5), None);
    }

    #[test]
    fn floors_empty_bins() {
        let s = shares(&[0, 5, 5], true);
        assert_eq!(s, vec![0.0001, 0.5, 0.5]);
    }
}
