//! Bucket ranges and variation choice, exactly as GrowthBook's JavaScript SDK computes them.
//!
//! A unit's hash `n ∈ [0, 1)` falls in variation `i` when `start_i <= n < end_i`. Variation `i`
//! owns `[cum_i, cum_i + coverage · w_i)` where `cum_i` is the sum of the earlier weights, so
//! lowering coverage shrinks every range from its right end and raising it later never moves a
//! unit from one variation to another.

/// A half-open interval `[start, end)` of the hash line.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BucketRange {
    pub start: f64,
    pub end: f64,
}

impl BucketRange {
    /// GrowthBook's `inRange`: `start <= n < end`.
    #[inline]
    pub fn contains(&self, n: f64) -> bool {
        n >= self.start && n < self.end
    }
}

/// Weights sums GrowthBook accepts (inclusive); outside it falls back to equal weights.
pub const WEIGHT_SUM_TOLERANCE: (f64, f64) = (0.99, 1.01);

/// GrowthBook's `getEqualWeights`: `n` weights of `1/n`, empty for `n <= 0`.
pub fn equal_weights(n: i64) -> Vec<f64> {
    if n <= 0 {
        return Vec::new();
    }
    let n_usize = usize::try_from(n).unwrap_or(usize::MAX);
    vec![1.0 / n as f64; n_usize]
}

/// GrowthBook's coverage clamping: missing → 1, below 0 → 0, above 1 → 1 (NaN → 0).
#[inline]
pub fn clamp_coverage(coverage: Option<f64>) -> f64 {
    match coverage {
        None => 1.0,
        Some(c) if c.is_nan() || c < 0.0 => 0.0,
        Some(c) if c > 1.0 => 1.0,
        Some(c) => c,
    }
}

/// Whether GrowthBook would use these weights for `num_variations` variations rather than
/// replace them by equal weights (same length, sum within [`WEIGHT_SUM_TOLERANCE`]).
pub fn weights_usable(num_variations: usize, weights: &[f64]) -> bool {
    if weights.len() != num_variations {
        return false;
    }
    // Same summation order as the SDK's `reduce`.
    let total: f64 = weights.iter().fold(0.0, |sum, w| sum + w);
    total >= WEIGHT_SUM_TOLERANCE.0 && total <= WEIGHT_SUM_TOLERANCE.1
}

/// GrowthBook's `getBucketRanges(numVariations, coverage, weights)`, including its
/// normalisation: coverage clamped to `[0, 1]`; missing weights, weights of the wrong length or
/// weights whose sum is outside `[0.99, 1.01]` replaced by equal weights.
pub fn bucket_ranges(
    num_variations: usize,
    coverage: Option<f64>,
    weights: Option<&[f64]>,
) -> Vec<BucketRange> {
    let coverage = clamp_coverage(coverage);
    let equal;
    let weights = match weights {
        Some(w) if weights_usable(num_variations, w) => w,
        _ => {
            equal = equal_weights(i64::try_from(num_variations).unwrap_or(i64::MAX));
            &equal[..]
        }
    };
    ranges_from_weights(coverage, weights.iter().copied()).collect()
}

/// The ranges for already-normalised weights, lazily (no allocation). Same arithmetic, in the
/// same order, as the SDK: `start = cum; cum += w; end = start + coverage * w`.
pub fn ranges_from_weights<I>(coverage: f64, weights: I) -> impl Iterator<Item = BucketRange>
where
    I: IntoIterator<Item = f64>,
{
    let mut cumulative = 0.0;
    weights.into_iter().map(move |w| {
        let start = cumulative;
        cumulative += w;
        BucketRange {
            start,
            end: start + coverage * w,
        }
    })
}

/// GrowthBook's `chooseVariation`: the index of the first range containing `n`, or `-1`.
#[inline]
pub fn choose_variation(n: f64, ranges: &[BucketRange]) -> i32 {
    ranges
        .iter()
        .position(|r| r.contains(n))
        .and_then(|i| i32::try_from(i).ok())
        .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_shrinks_ranges_from_the_right() {
        let r = bucket_ranges(2, Some(0.5), None);
        assert_eq!(
            r[1],
            BucketRange {
                start: 0.5,
                end: 0.75
            }
        );
    }

    #[test]
    fn invalid_weights_fall_back_to_equal() {
        assert_eq!(
            bucket_ranges(2, None, Some(&[0.9, 0.9])),
            bucket_ranges(2, None, None)
        );
        assert_eq!(
            bucket_ranges(3, None, Some(&[0.5, 0.5])),
            bucket_ranges(3, None, None)
        );
    }

    #[test]
    fn nan_coverage_is_zero() {
        assert!(bucket_ranges(2, Some(f64::NAN), None)
            .iter()
            .all(|r| r.start == r.end));
    }

    #[test]
    fn empty_ranges_choose_nothing() {
        assert_eq!(choose_variation(0.3, &[]), -1);
        assert!(equal_weights(-3).is_empty());
    }
}
