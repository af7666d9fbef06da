//! CUPED (Controlled-experiment Using Pre-Experiment Data): analyse `Y - θ X` instead of `Y`,
//! where `X` is the unit's pre-period value. `θ = cov(Y, X) / var(X)` is estimated on both arms
//! of a comparison pooled, so it is the same for both and the adjusted difference stays
//! unbiased (randomisation makes `E[X]` equal across arms) while its variance shrinks by
//! roughly `1 - corr(Y, X)²`.
//!
//! gbstats pools over the *pair* being compared (control + one treatment), not over all arms of
//! a multi-arm test; so does this module, to give the same numbers.

use super::moments::CupedMoments;
use super::StatsError;

/// gbstats `compute_theta`: `cov(Y, X) / var(X)` on the pooled pair; 0 when the pooled metric
/// or covariate has no variance (the engines then skip the adjustment).
pub fn pooled_theta(a: &CupedMoments, b: &CupedMoments) -> Result<f64, StatsError> {
    let n = a.n + b.n;
    let post = a.metric.joint(&b.metric, n)?;
    let pre = a.covariate.joint(&b.covariate, n)?;
    if pre.variance() == 0.0 || post.variance() == 0.0 {
        return Ok(0.0);
    }
    let joint = CupedMoments {
        n,
        metric: post,
        covariate: pre,
        cross_sum: a.cross_sum + b.cross_sum,
    };
    Ok(joint.covariance() / pre.variance())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::moments::{Moments, SampleMoments};

    fn cuped(y: &[f64], x: &[f64]) -> CupedMoments {
        CupedMoments {
            n: y.len() as u64,
            metric: Moments::Mean(SampleMoments::from_values(y)),
            covariate: Moments::Mean(SampleMoments::from_values(x)),
            cross_sum: y.iter().zip(x).map(|(a, b)| a * b).sum(),
        }
    }

    #[test]
    fn theta_is_the_pooled_regression_slope() {
        // Y = 2 X exactly: theta = 2 and the adjusted variance is 0.
        let a = cuped(&[2.0, 4.0, 6.0], &[1.0, 2.0, 3.0]);
        let b = cuped(&[8.0, 10.0], &[4.0, 5.0]);
        let theta = pooled_theta(&a, &b).expect("same kinds");
        assert!((theta - 2.0).abs() < 1e-12);
        assert!(a.adjusted(theta).variance.abs() < 1e-9);
    }

    #[test]
    fn constant_covariate_gives_zero_theta() {
        let a = cuped(&[1.0, 3.0], &[1.0, 1.0]);
        let b = cuped(&[2.0, 5.0], &[1.0, 1.0]);
        assert_eq!(pooled_theta(&a, &b), Ok(0.0));
    }
}
