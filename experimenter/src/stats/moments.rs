//! Per-arm sufficient statistics and the summaries the engines consume.
//!
//! Everything is a sum that a database can compute in one pass (`count()`, `sum(x)`,
//! `sum(x*x)`, `sum(x*y)`), so arms can be merged by addition and an analysis never needs the
//! raw rows. Variances follow gbstats exactly, including its one asymmetry: a proportion's
//! variance is `p (1 - p)` (no Bessel correction), a mean's is the sample variance (`n - 1`).

use serde::{Deserialize, Serialize};

use super::StatsError;

/// Sum and sum of squares of a numeric per-unit metric (revenue, latency, clicks).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampleMoments {
    /// Number of units.
    pub n: u64,
    /// Σ x over units.
    pub sum: f64,
    /// Σ x² over units.
    pub sum_squares: f64,
}

impl SampleMoments {
    /// Accumulates raw values (for the offline CLI and tests).
    pub fn from_values(values: &[f64]) -> Self {
        let (sum, sum_squares) = values
            .iter()
            .fold((0.0, 0.0), |(s, q), &x| (s + x, q + x * x));
        Self {
            n: values.len() as u64,
            sum,
            sum_squares,
        }
    }

    /// Sample mean (0 with no units, as gbstats).
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }

    /// Unbiased sample variance (`n - 1`); 0 with fewer than two units.
    pub fn variance(&self) -> f64 {
        if self.n <= 1 {
            return 0.0;
        }
        let n = self.n as f64;
        (self.sum_squares - self.sum.powi(2) / n) / (n - 1.0)
    }
}

/// Number of units that converted out of `n` (a binomial metric).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProportionMoments {
    /// Number of units.
    pub n: u64,
    /// Number of units with the event (the sum of a 0/1 metric).
    pub successes: f64,
}

impl ProportionMoments {
    /// Conversion rate (0 with no units).
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.successes / self.n as f64
        }
    }

    /// Bernoulli variance `p (1 - p)` — gbstats uses no `n / (n - 1)` factor here.
    pub fn variance(&self) -> f64 {
        let p = self.mean();
        p * (1.0 - p)
    }
}

/// A numeric or binomial component: the value of a metric, a ratio's numerator or denominator,
/// or a CUPED covariate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Moments {
    Mean(SampleMoments),
    Proportion(ProportionMoments),
}

impl Moments {
    pub fn n(&self) -> u64 {
        match self {
            Moments::Mean(m) => m.n,
            Moments::Proportion(p) => p.n,
        }
    }
    pub fn sum(&self) -> f64 {
        match self {
            Moments::Mean(m) => m.sum,
            Moments::Proportion(p) => p.successes,
        }
    }
    /// Σ x²; for a 0/1 metric this equals Σ x.
    pub fn sum_squares(&self) -> f64 {
        match self {
            Moments::Mean(m) => m.sum_squares,
            Moments::Proportion(p) => p.successes,
        }
    }
    pub fn mean(&self) -> f64 {
        match self {
            Moments::Mean(m) => m.mean(),
            Moments::Proportion(p) => p.mean(),
        }
    }
    pub fn variance(&self) -> f64 {
        match self {
            Moments::Mean(m) => m.variance(),
            Moments::Proportion(p) => p.variance(),
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Moments::Mean(_) => "mean",
            Moments::Proportion(_) => "proportion",
        }
    }
    /// The pooled component over two arms with `n` units in all (gbstats
    /// `create_joint_statistic`), used to estimate CUPED's theta.
    pub(crate) fn joint(&self, other: &Moments, n: u64) -> Result<Moments, StatsError> {
        match (self, other) {
            (Moments::Mean(a), Moments::Mean(b)) => Ok(Moments::Mean(SampleMoments {
                n,
                sum: a.sum + b.sum,
                sum_squares: a.sum_squares + b.sum_squares,
            })),
            (Moments::Proportion(a), Moments::Proportion(b)) => {
                Ok(Moments::Proportion(ProportionMoments {
                    n,
                    successes: a.successes + b.successes,
                }))
            }
            _ => Err(StatsError::MismatchedKinds {
                control: self.kind(),
                treatment: other.kind(),
            }),
        }
    }
    fn validate(&self, what: &'static str) -> Result<(), StatsError> {
        finite(what, self.sum())?;
        finite(what, self.sum_squares())
    }
}

/// A ratio metric `Σ numerator / Σ denominator` over units (clicks per session, revenue per
/// order) whose variance comes from the delta method, so it needs the cross product Σ m·d.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RatioMoments {
    /// Number of randomisation units (users), the `n` of the delta method.
    pub n: u64,
    pub numerator: Moments,
    pub denominator: Moments,
    /// Σ numerator·denominator over units.
    pub cross_sum: f64,
}

impl RatioMoments {
    /// `Σ m / Σ d` (0 when the denominator sums to 0, as gbstats).
    pub fn mean(&self) -> f64 {
        let d = self.denominator.sum();
        if d == 0.0 {
            0.0
        } else {
            self.numerator.sum() / d
        }
    }

    /// Sample covariance of numerator and denominator.
    pub fn covariance(&self) -> f64 {
        if self.n <= 1 {
            return 0.0;
        }
        let n = self.n as f64;
        (self.cross_sum - self.numerator.sum() * self.denominator.sum() / n) / (n - 1.0)
    }

    /// Per-unit delta-method variance of the ratio (multiply by `1/n` for the estimator's).
    pub fn variance(&self) -> f64 {
        let md = self.denominator.mean();
        if md == 0.0 || self.n <= 1 {
            return 0.0;
        }
        let mm = self.numerator.mean();
        self.numerator.variance() / md.powi(2) - 2.0 * self.covariance() * mm / md.powi(3)
            + mm.powi(2) * self.denominator.variance() / md.powi(4)
    }
}

/// A metric with its pre-experiment value for the same unit (CUPED / regression adjustment).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CupedMoments {
    /// Number of units.
    pub n: u64,
    /// The metric during the experiment.
    pub metric: Moments,
    /// The same metric (or any pre-period covariate) before the experiment.
    pub covariate: Moments,
    /// Σ metric·covariate over units.
    pub cross_sum: f64,
}

impl CupedMoments {
    /// Sample covariance of metric and covariate.
    pub fn covariance(&self) -> f64 {
        if self.n <= 1 {
            return 0.0;
        }
        let n = self.n as f64;
        (self.cross_sum - self.metric.sum() * self.covariate.sum() / n) / (n - 1.0)
    }

    /// Summary of `metric - theta * covariate` (gbstats `RegressionAdjustedStatistic`).
    pub fn adjusted(&self, theta: f64) -> ArmSummary {
        let variance = if self.n <= 1 {
            0.0
        } else {
            self.metric.variance() + theta.powi(2) * self.covariate.variance()
                - 2.0 * theta * self.covariance()
        };
        ArmSummary {
            n: self.n as f64,
            mean: self.metric.mean() - theta * self.covariate.mean(),
            unadjusted_mean: self.metric.mean(),
            variance,
        }
    }
}

/// One arm's sufficient statistics for one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ArmStats {
    /// A numeric metric averaged per unit (revenue per user).
    Mean(SampleMoments),
    /// A conversion rate.
    Proportion(ProportionMoments),
    /// A ratio of two per-unit sums (clicks per session), delta method.
    Ratio(RatioMoments),
    /// A metric with a pre-period covariate, analysed with CUPED.
    Cuped(CupedMoments),
}

impl ArmStats {
    /// Short name of the kind, for error messages and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            ArmStats::Mean(_) => "mean",
            ArmStats::Proportion(_) => "proportion",
            ArmStats::Ratio(_) => "ratio",
            ArmStats::Cuped(_) => "cuped",
        }
    }

    /// Number of units in the arm (users; for SRM and minimum-sample checks).
    pub fn units(&self) -> u64 {
        match self {
            ArmStats::Mean(m) => m.n,
            ArmStats::Proportion(p) => p.n,
            ArmStats::Ratio(r) => r.n,
            ArmStats::Cuped(c) => c.n,
        }
    }

    /// Rejects NaN and infinite sums, which would otherwise poison every downstream number.
    pub fn validate(&self) -> Result<(), StatsError> {
        match self {
            ArmStats::Mean(m) => {
                finite("sum", m.sum)?;
                finite("sum_squares", m.sum_squares)
            }
            ArmStats::Proportion(p) => {
                finite("successes", p.successes)?;
                if p.successes < 0.0 || p.successes > p.n as f64 {
                    return Err(StatsError::OutOfRange {
                        what: "successes",
                        range: "[0, n]",
                        value: p.successes,
                    });
                }
                Ok(())
            }
            ArmStats::Ratio(r) => {
                r.numerator.validate("numerator")?;
                r.denominator.validate("denominator")?;
                finite("cross_sum", r.cross_sum)
            }
            ArmStats::Cuped(c) => {
                c.metric.validate("metric")?;
                c.covariate.validate("covariate")?;
                finite("cross_sum", c.cross_sum)
            }
        }
    }

    /// The summary of a non-CUPED arm (CUPED arms need their pair: see [`summarize_pair`]).
    fn plain_summary(&self) -> Option<ArmSummary> {
        let (n, mean, variance) = match self {
            ArmStats::Mean(m) => (m.n, m.mean(), m.variance()),
            ArmStats::Proportion(p) => (p.n, p.mean(), p.variance()),
            ArmStats::Ratio(r) => (r.n, r.mean(), r.variance()),
            ArmStats::Cuped(_) => return None,
        };
        Some(ArmSummary {
            n: n as f64,
            mean,
            unadjusted_mean: mean,
            variance,
        })
    }
}

/// What the engines need from one arm: its size, its (possibly CUPED-adjusted) mean, its
/// unadjusted mean (the base of a relative lift) and its per-unit variance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ArmSummary {
    pub n: f64,
    pub mean: f64,
    pub unadjusted_mean: f64,
    pub variance: f64,
}

impl ArmSummary {
    /// Standard deviation as gbstats reports it (0 for a non-positive variance).
    pub fn stddev(&self) -> f64 {
        if self.variance <= 0.0 {
            0.0
        } else {
            self.variance.sqrt()
        }
    }
    pub(crate) fn has_zero_variance(&self) -> bool {
        // `!(v > 0)` also catches NaN.
        self.variance.is_nan() || self.variance <= 0.0
    }
}

/// Summaries of a control/treatment pair plus the CUPED theta used (`None` when not CUPED).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairSummary {
    pub control: ArmSummary,
    pub treatment: ArmSummary,
    pub theta: Option<f64>,
}

/// Summarises a pair of arms. CUPED's theta is estimated on the pair pooled (gbstats
/// `compute_theta`). When theta is 0 (no variance in the pooled metric or covariate), gbstats'
/// frequentist engine falls back to the unadjusted metric statistics, while its Bayesian engine
/// keeps the regression-adjusted ones with theta 0; `fallback_to_metric` picks which.
pub(crate) fn summarize_pair(
    control: &ArmStats,
    treatment: &ArmStats,
    fallback_to_metric: bool,
) -> Result<PairSummary, StatsError> {
    control.validate()?;
    treatment.validate()?;
    if std::mem::discriminant(control) != std::mem::discriminant(treatment) {
        return Err(StatsError::MismatchedKinds {
            control: control.kind(),
            treatment: treatment.kind(),
        });
    }
    if let (ArmStats::Cuped(a), ArmStats::Cuped(b)) = (control, treatment) {
        let theta = super::cuped::pooled_theta(a, b)?;
        if theta == 0.0 && fallback_to_metric {
            let plain = |c: &CupedMoments| {
                let m = c.metric;
                ArmSummary {
                    n: m.n() as f64,
                    mean: m.mean(),
                    unadjusted_mean: m.mean(),
                    variance: m.variance(),
                }
            };
            return Ok(PairSummary {
                control: plain(a),
                treatment: plain(b),
                theta: Some(0.0),
            });
        }
        return Ok(PairSummary {
            control: a.adjusted(theta),
            treatment: b.adjusted(theta),
            theta: Some(theta),
        });
    }
    match (control.plain_summary(), treatment.plain_summary()) {
        (Some(c), Some(t)) => Ok(PairSummary {
            control: c,
            treatment: t,
            theta: None,
        }),
        _ => Err(StatsError::Invalid(
            "internal: CUPED arms must be summarised as a pair".into(),
        )),
    }
}

fn finite(what: &'static str, value: f64) -> Result<(), StatsError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(StatsError::NotFinite { what, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_moments_match_direct_formulas() {
        let m = SampleMoments::from_values(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m.mean(), 2.5);
        assert!((m.variance() - 5.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn proportion_variance_has_no_bessel_factor() {
        let p = ProportionMoments {
            n: 10,
            successes: 3.0,
        };
        assert!((p.variance() - 0.21).abs() < 1e-12);
    }

    #[test]
    fn ratio_with_constant_denominator_is_a_mean() {
        // Denominator always 2: ratio = mean(m) / 2, variance = var(m) / 4.
        let values = [1.0, 5.0, 2.0, 8.0];
        let m = SampleMoments::from_values(&values);
        let r = RatioMoments {
            n: 4,
            numerator: Moments::Mean(m),
            denominator: Moments::Mean(SampleMoments {
                n: 4,
                sum: 8.0,
                sum_squares: 16.0,
            }),
            cross_sum: 2.0 * m.sum,
        };
        assert!((r.mean() - m.mean() / 2.0).abs() < 1e-12);
        assert!((r.variance() - m.variance() / 4.0).abs() < 1e-12);
    }

    #[test]
    fn mismatched_kinds_are_an_error() {
        let a = ArmStats::Mean(SampleMoments {
            n: 3,
            sum: 1.0,
            sum_squares: 1.0,
        });
        let b = ArmStats::Proportion(ProportionMoments {
            n: 3,
            successes: 1.0,
        });
        assert!(matches!(
            summarize_pair(&a, &b, true),
            Err(StatsError::MismatchedKinds { .. })
        ));
    }

    #[test]
    fn nan_sums_are_rejected() {
        let a = ArmStats::Mean(SampleMoments {
            n: 3,
            sum: f64::NAN,
            sum_squares: 1.0,
        });
        assert!(matches!(a.validate(), Err(StatsError::NotFinite { .. })));
    }
}
