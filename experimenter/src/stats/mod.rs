//! A/B test statistics over per-arm sufficient statistics.
//!
//! Every engine here takes counts, sums, sums of squares and cross products — never raw rows —
//! so the same code serves the offline CLI (sums over a CSV) and ClickHouse pushdown (`count()`,
//! `sum(x)`, `sum(x*x)`, `sum(x*y)` per arm). The formulas follow GrowthBook's `gbstats` 0.8.0
//! line by line, and `tests/stats_golden.rs` checks every number against it to 1e-6 relative
//! (see `scripts/golden/experimenter/generate.py`).
//!
//! - [`moments`]: the sufficient statistics ([`ArmStats`]: means, proportions, ratio metrics,
//!   CUPED) and the per-arm [`ArmSummary`] (mean, variance) the engines consume.
//! - [`frequentist`]: Welch t-test on the relative (or absolute) lift, two- and one-sided.
//! - [`sequential`]: always-valid confidence sequences and p-values (Waudby-Smith et al.).
//! - [`bayesian`]: Gaussian effect model with a flat (or proper) prior: chance to win, risk, CI.
//! - [`cuped`]: regression adjustment with a pre-period covariate (theta pooled over the pair).
//! - [`srm`]: sample ratio mismatch, χ² goodness of fit against the configured weights.
//! - [`multiple`]: Holm–Bonferroni and Benjamini–Hochberg adjusted p-values.
//! - [`power`]: power and minimum detectable effect for a relative lift.
//! - [`decision`]: turns results into Ship / Rollback / KeepRunning / Inconclusive.

pub mod bayesian;
pub mod cuped;
pub mod decision;
mod dist;
pub mod frequentist;
pub mod moments;
pub mod multiple;
pub mod power;
pub mod sequential;
pub mod srm;

pub use bayesian::{BayesianConfig, BayesianResult, GaussianPrior, Risk};
pub use decision::{decide, Decision, DecisionInput, GuardrailInput, Verdict};
pub use frequentist::{Alternative, FrequentistConfig, FrequentistResult};
pub use moments::{
    ArmStats, ArmSummary, CupedMoments, Moments, PairSummary, ProportionMoments, RatioMoments,
    SampleMoments,
};
pub use multiple::{benjamini_hochberg, holm_bonferroni, MultipleCorrection};
pub use power::{minimum_detectable_effect, power, PowerMetric, PowerScenario};
pub use sequential::SequentialConfig;
pub use srm::{check_srm, srm_p_value, SrmCheck, SRM_P_THRESHOLD};

use serde::{Deserialize, Serialize};

/// Why an input cannot be analysed at all. Degenerate-but-valid data (zero variance, a zero
/// baseline) is not an error: the engines return gbstats' uninformative result with a
/// [`NotEstimable`] reason instead, so one bad metric never aborts a whole report.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("control and treatment use different metric types ({control} vs {treatment}); give both arms the same kind of sufficient statistics")]
    MismatchedKinds {
        control: &'static str,
        treatment: &'static str,
    },
    #[error("{what} must be finite, got {value}; check the aggregates fed to the analysis")]
    NotFinite { what: &'static str, value: f64 },
    #[error("{what} must be in {range}, got {value}")]
    OutOfRange {
        what: &'static str,
        range: &'static str,
        value: f64,
    },
    #[error("{what}: expected {expected} values, got {got}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Which effect the engines estimate: the relative lift `(mean_b - mean_a) / mean_a` (what
/// GrowthBook shows by default) or the absolute difference `mean_b - mean_a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceType {
    #[default]
    Relative,
    Absolute,
}

/// Why a comparison returned gbstats' uninformative default (`expected = 0`, `ci = [0, 0]`,
/// `p = 1` or `chance to win = 0.5`). Mirrors gbstats' error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotEstimable {
    /// The control mean is zero, so a relative lift is undefined (`ZERO_NEGATIVE_BASELINE_VARIATION`).
    ZeroBaseline,
    /// An arm has zero (or numerically negative) variance (`ZERO_NEGATIVE_VARIANCE`).
    ZeroVariance,
    /// An arm has no units (`NO_UNITS_IN_VARIATION`; gbstats' Bayesian engine only).
    NoUnits,
}

impl NotEstimable {
    /// gbstats' message string for this reason.
    pub fn gbstats_message(self) -> &'static str {
        match self {
            NotEstimable::ZeroBaseline => "ZERO_NEGATIVE_BASELINE_VARIATION",
            NotEstimable::ZeroVariance => "ZERO_NEGATIVE_VARIANCE",
            NotEstimable::NoUnits => "NO_UNITS_IN_VARIATION",
        }
    }
}

pub(crate) fn check_alpha(alpha: f64) -> Result<(), StatsError> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(StatsError::OutOfRange {
            what: "alpha",
            range: "(0, 1)",
            value: alpha,
        });
    }
    Ok(())
}

/// The effect estimate shared by the engines: point estimate and its (delta-method) variance.
pub(crate) fn lift_and_variance(
    a: &ArmSummary,
    b: &ArmSummary,
    difference: DifferenceType,
) -> (f64, f64) {
    match difference {
        DifferenceType::Relative => {
            // gbstats `frequentist_diff`: adjusted means in the numerator, the *unadjusted*
            // control mean in the denominator (matters for CUPED).
            let denom = if a.unadjusted_mean != 0.0 {
                a.unadjusted_mean
            } else {
                a.mean
            };
            let lift = (b.mean - a.mean) / denom;
            // gbstats `frequentist_variance`: delta method for (mean_b / mean_a - 1), with the
            // unadjusted means and the (possibly adjusted) variances.
            let ma = a.unadjusted_mean;
            let mb = b.unadjusted_mean;
            let var =
                b.variance / (ma.powi(2) * b.n) + a.variance * mb.powi(2) / (ma.powi(4) * a.n);
            (lift, var)
        }
        DifferenceType::Absolute => (b.mean - a.mean, b.variance / b.n + a.variance / a.n),
    }
}
