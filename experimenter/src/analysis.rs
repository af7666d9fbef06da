//! The analysis of one experiment, from per-arm sufficient statistics to a decision.
//!
//! Pure: the store query ([`crate::warehouse`]) reduces exposures and outcomes to
//! [`MetricAggregates`] (per arm: units, Σy, Σy², and Σx, Σx², Σxy where `x` is the CUPED
//! covariate or a ratio's denominator), and [`analyze`] runs every engine on them, corrects the
//! two-sided p-values across metrics × arms, and turns the primary metric plus the guardrails
//! into a [`Decision`] per treatment arm.
//!
//! What the analysis of an experiment measures is part of its configuration:
//!
//! ```toml
//! [[experiments]]
//! key = "checkout-ranker"
//! model = "ranker"
//! arms = [{ name = "control", model_version = "ranker@1" }, { name = "v2", model_version = "ranker@2" }]
//! [experiments.analysis]
//! primary = { metric = "revenue", type = "mean" }          # outcome name; mean | proportion | ratio
//! guardrails = [{ metric = "latency" }]                       # `latency` = the served requests' latency
//! # built-ins (per request, from the inference rows; see BUILTIN_METRICS): latency, accuracy,
//! # ttft, cost, output_tokens, tokens_per_s, error_rate
//! conversion_window_hours = 72   # outcomes count when they arrive within this long after the first exposure
//! cuped_pre_period_hours = 168   # CUPED covariate: the same metric in this long before the first exposure (0 = off)
//! min_units_per_arm = 1000       # no call before this many units in the smallest arm
//! engine = "sequential"          # always-valid: safe to look at continuously (or "frequentist")
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stats::{
    self, ArmStats, BayesianConfig, CupedMoments, Decision, DecisionInput, FrequentistConfig,
    FrequentistResult, GuardrailInput, Moments, MultipleCorrection, ProportionMoments,
    RatioMoments, SampleMoments, SequentialConfig, SrmCheck, StatsError, Verdict,
};

/// The name of the built-in metric "latency of the requests the unit was served" (per unit:
/// Σ latency / number of requests, a ratio metric).
pub const LATENCY: &str = "latency";

/// The name of the built-in metric "accuracy on labelled outcomes": per unit, correct
/// predictions / predictions with a label, where the label is the outcome named
/// `label_outcome` (default `label`) linked to the inference by `inference_id`, and a prediction
/// is correct when its label, read as a number, equals the outcome's value.
pub const ACCURACY: &str = "accuracy";

/// Built-in LLM metric: time to first token in ms, per request with a `ttft_ms`.
pub const TTFT: &str = "ttft";

/// Built-in metric: cost per request with a known `cost`.
pub const COST: &str = "cost";

/// Built-in LLM metric: completion (output) tokens per request with a `completion_tokens`.
pub const OUTPUT_TOKENS: &str = "output_tokens";

/// Built-in LLM metric: output tokens per second, per request with an `output_tps`.
pub const TOKENS_PER_S: &str = "tokens_per_s";

/// Built-in metric: the share of the unit's requests that failed (neither `score` nor
/// `label`, as the health monitors' error rate), over all its requests.
pub const ERROR_RATE: &str = "error_rate";

/// Where a built-in metric's per-request values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinSource {
    /// The experiment's rows of `inference_events`: one value per request, `value` (a SQL
    /// expression over the table's columns), for the requests where `filter` holds (every
    /// request when `None`). Per unit: Σ value / number of those requests.
    Requests {
        value: &'static str,
        filter: Option<&'static str>,
    },
    /// The experiment's predictions joined to their true labels (outcomes named
    /// `label_outcome`, linked by `inference_id`): 1 when right, 0 when wrong. Per unit:
    /// correct / labelled predictions.
    LabelledPredictions,
}

/// A metric computed from the experiment's inference rows rather than from outcomes: always a
/// per-request ratio (Σ value / Σ requests per unit, delta method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinMetric {
    /// The name used as `metric = "…"`.
    pub name: &'static str,
    pub source: BuiltinSource,
    /// The default of `higher_is_worse` when the metric is a guardrail.
    pub higher_is_worse: bool,
}

/// Every built-in metric. A metric spec naming one of these reads inference rows, never
/// outcomes of that name.
pub const BUILTIN_METRICS: &[BuiltinMetric] = &[
    BuiltinMetric {
        name: LATENCY,
        source: BuiltinSource::Requests {
            value: "ifNull(latency_ms, 0)",
            filter: Some("isNotNull(latency_ms)"),
        },
        higher_is_worse: true,
    },
    BuiltinMetric {
        name: ACCURACY,
        source: BuiltinSource::LabelledPredictions,
        higher_is_worse: false,
    },
    BuiltinMetric {
        name: TTFT,
        source: BuiltinSource::Requests {
            value: "ifNull(ttft_ms, 0)",
            filter: Some("isNotNull(ttft_ms)"),
        },
        higher_is_worse: true,
    },
    BuiltinMetric {
        name: COST,
        source: BuiltinSource::Requests {
            value: "ifNull(cost, 0)",
            filter: Some("isNotNull(cost)"),
        },
        higher_is_worse: true,
    },
    BuiltinMetric {
        name: OUTPUT_TOKENS,
        source: BuiltinSource::Requests {
            value: "ifNull(completion_tokens, 0)",
            filter: Some("isNotNull(completion_tokens)"),
        },
        // More output is neither good nor bad in general: as a guardrail, say which.
        higher_is_worse: false,
    },
    BuiltinMetric {
        name: TOKENS_PER_S,
        source: BuiltinSource::Requests {
            value: "ifNull(output_tps, 0)",
            filter: Some("isNotNull(output_tps)"),
        },
        higher_is_worse: false,
    },
    BuiltinMetric {
        name: ERROR_RATE,
        source: BuiltinSource::Requests {
            value: "isNull(score) AND isNull(label)",
            filter: None,
        },
        higher_is_worse: true,
    },
];

/// The built-in metric named `metric`, if it is one.
pub fn builtin(metric: &str) -> Option<&'static BuiltinMetric> {
    BUILTIN_METRICS.iter().find(|b| b.name == metric)
}

/// Whether `metric` is computed from the experiment's inference rows (a per-request ratio).
pub fn is_builtin(metric: &str) -> bool {
    builtin(metric).is_some()
}

/// How a metric turns a unit's events into numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Σ of the outcome's values within the window, per unit (revenue per user); 0 without one.
    #[default]
    Mean,
    /// 1 when the unit has an outcome with a positive value within the window (conversion).
    Proportion,
    /// Σ outcome / Σ `denominator` outcome, delta method (clicks per session).
    Ratio,
}

/// One metric of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// Outcome name in `outcome_events.name`, or a built-in metric ([`BUILTIN_METRICS`]:
    /// `latency`, `accuracy`, `ttft`, `cost`, `output_tokens`, `tokens_per_s`, `error_rate`).
    pub metric: String,
    #[serde(default, rename = "type")]
    pub kind: MetricKind,
    /// For `type = "ratio"`: the outcome summed in the denominator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denominator: Option<String>,
    /// Whether a higher value is better (the primary metric; default true). Guardrails use
    /// `higher_is_worse` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub higher_is_better: Option<bool>,
    /// For guardrails: whether a higher value is harm (latency, errors, cost; default true;
    /// the built-ins `accuracy`, `output_tokens` and `tokens_per_s` default to false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub higher_is_worse: Option<bool>,
    /// For `accuracy`: the outcome holding the true label (default `label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_outcome: Option<String>,
}

impl MetricSpec {
    /// The metric's kind as analysed: the built-ins are per-request ratios.
    pub fn effective_kind(&self) -> MetricKind {
        if is_builtin(&self.metric) {
            MetricKind::Ratio
        } else {
            self.kind
        }
    }

    /// Whether a higher value is harm when the metric is a guardrail: `higher_is_worse`, else
    /// the built-in's default, else true.
    pub fn guardrail_higher_is_worse(&self) -> bool {
        self.higher_is_worse
            .unwrap_or_else(|| builtin(&self.metric).is_none_or(|b| b.higher_is_worse))
    }
}

/// Which engine the decision is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// Always-valid confidence sequences: looking every minute does not inflate errors.
    #[default]
    Sequential,
    /// Fixed-horizon Welch test: only valid when read once, at the planned sample.
    Frequentist,
}

/// `[experiments.analysis]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    pub primary: MetricSpec,
    #[serde(default)]
    pub guardrails: Vec<MetricSpec>,
    #[serde(default = "default_window")]
    pub conversion_window_hours: u32,
    #[serde(default)]
    pub cuped_pre_period_hours: u32,
    #[serde(default = "default_min_units")]
    pub min_units_per_arm: u64,
    /// With the sequential engine, an experiment that shows no effect by this many units per arm
    /// is called inconclusive instead of running on (default: 20 × `min_units_per_arm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_units_per_arm: Option<u64>,
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    #[serde(default)]
    pub engine: Engine,
    /// Correction of the two-sided p-values across metrics × arms.
    #[serde(default = "default_correction")]
    pub correction: MultipleCorrection,
    /// Total sample size at which the sequential intervals are tightest (gbstats default 5000).
    #[serde(default = "default_tuning")]
    pub sequential_tuning: f64,
}

fn default_window() -> u32 {
    72
}
fn default_min_units() -> u64 {
    100
}
fn default_alpha() -> f64 {
    0.05
}
fn default_correction() -> MultipleCorrection {
    MultipleCorrection::HolmBonferroni
}
fn default_tuning() -> f64 {
    5000.0
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            primary: MetricSpec {
                metric: "conversion".into(),
                kind: MetricKind::Proportion,
                denominator: None,
                higher_is_better: None,
                higher_is_worse: None,
                label_outcome: None,
            },
            guardrails: vec![],
            conversion_window_hours: default_window(),
            cuped_pre_period_hours: 0,
            min_units_per_arm: default_min_units(),
            max_units_per_arm: None,
            alpha: default_alpha(),
            engine: Engine::default(),
            correction: default_correction(),
            sequential_tuning: default_tuning(),
        }
    }
}

/// Why an analysis configuration is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisConfigError {
    #[error("metric `{0}` has type = \"ratio\" but no `denominator` outcome; add denominator = \"<outcome name>\"")]
    RatioWithoutDenominator(String),
    #[error("metric `{0}`: `denominator` only applies to type = \"ratio\"")]
    DenominatorWithoutRatio(String),
    #[error("metric `{0}` is built in (per request, from the experiment's inference rows: Σ value / requests per unit) and takes no `denominator`; remove it")]
    BuiltinWithDenominator(String),
    #[error("metric names must not be empty")]
    EmptyMetric,
    #[error("alpha must be in (0, 1), got {0}")]
    Alpha(f64),
    #[error(
        "the CUPED pre-period only applies to mean and proportion primary metrics, not ratios"
    )]
    CupedOnRatio,
}

impl AnalysisConfig {
    pub fn validate(&self) -> Result<(), AnalysisConfigError> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(AnalysisConfigError::Alpha(self.alpha));
        }
        for m in std::iter::once(&self.primary).chain(&self.guardrails) {
            if m.metric.trim().is_empty() {
                return Err(AnalysisConfigError::EmptyMetric);
            }
            match (m.effective_kind(), &m.denominator, is_builtin(&m.metric)) {
                (_, Some(_), true) => {
                    return Err(AnalysisConfigError::BuiltinWithDenominator(
                        m.metric.clone(),
                    ))
                }
                (MetricKind::Ratio, None, false) => {
                    return Err(AnalysisConfigError::RatioWithoutDenominator(
                        m.metric.clone(),
                    ))
                }
                (k, Some(_), _) if k != MetricKind::Ratio => {
                    return Err(AnalysisConfigError::DenominatorWithoutRatio(
                        m.metric.clone(),
                    ))
                }
                _ => {}
            }
        }
        if self.cuped_pre_period_hours > 0 && self.primary.effective_kind() == MetricKind::Ratio {
            return Err(AnalysisConfigError::CupedOnRatio);
        }
        Ok(())
    }

    fn max_units(&self) -> u64 {
        self.max_units_per_arm
            .unwrap_or(self.min_units_per_arm.saturating_mul(20))
    }
}

/// One arm's sums for one metric, as the store computes them. `x` is the CUPED covariate
/// (mean/proportion metrics with a pre-period) or the denominator (ratio metrics).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ArmSums {
    pub n: u64,
    pub sum_y: f64,
    pub sum_y2: f64,
    pub sum_x: f64,
    pub sum_x2: f64,
    pub sum_xy: f64,
}

impl ArmSums {
    fn metric(&self, kind: MetricKind) -> Moments {
        match kind {
            MetricKind::Proportion => Moments::Proportion(ProportionMoments {
                n: self.n,
                successes: self.sum_y,
            }),
            _ => Moments::Mean(SampleMoments {
                n: self.n,
                sum: self.sum_y,
                sum_squares: self.sum_y2,
            }),
        }
    }

    fn x(&self) -> Moments {
        Moments::Mean(SampleMoments {
            n: self.n,
            sum: self.sum_x,
            sum_squares: self.sum_x2,
        })
    }

    /// The engines' input for this arm.
    pub fn stats(&self, kind: MetricKind) -> ArmStats {
        match (kind, self.metric(kind)) {
            (MetricKind::Ratio, numerator) => ArmStats::Ratio(RatioMoments {
                n: self.n,
                numerator,
                denominator: self.x(),
                cross_sum: self.sum_xy,
            }),
            (_, Moments::Mean(m)) => ArmStats::Mean(m),
            (_, Moments::Proportion(p)) => ArmStats::Proportion(p),
        }
    }

    /// The CUPED input (metric with its pre-period covariate).
    pub fn cuped(&self, kind: MetricKind) -> ArmStats {
        ArmStats::Cuped(CupedMoments {
            n: self.n,
            metric: self.metric(kind),
            covariate: self.x(),
            cross_sum: self.sum_xy,
        })
    }
}

/// One metric's sums for every arm, keyed by arm name.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricAggregates {
    pub arms: BTreeMap<String, ArmSums>,
}

/// An arm of the experiment as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmInfo {
    pub name: String,
    pub model_version: String,
    /// Configured share of enrolled units.
    pub weight: f64,
}

/// Two-sided result as reported (`vigil ab analyze` contract), plus the corrected p-value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestSummary {
    pub expected: f64,
    pub ci: [f64; 2],
    pub p_value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjusted_p_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub theta: Option<f64>,
    /// Why the data cannot support an estimate (gbstats' message), when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_estimable: Option<String>,
}

impl TestSummary {
    fn from(r: &FrequentistResult, theta: Option<f64>) -> Self {
        TestSummary {
            expected: r.expected,
            ci: r.ci,
            p_value: r.p_value,
            adjusted_p_value: None,
            theta,
            not_estimable: r.not_estimable.map(|n| n.gbstats_message().to_owned()),
        }
    }
}

/// Bayesian result as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BayesianSummary {
    pub expected: f64,
    pub ci: [f64; 2],
    pub chance_to_win: f64,
    /// Expected loss of [keeping control, shipping the treatment].
    pub risk: [f64; 2],
}

/// One treatment arm against control on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub units: u64,
    pub control_mean: f64,
    pub mean: f64,
    pub frequentist: TestSummary,
    pub sequential: TestSummary,
    pub bayesian: BayesianSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuped: Option<TestSummary>,
}

/// Whether a metric is the primary one or a guardrail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricRole {
    Primary,
    Guardrail,
}

/// One metric across every treatment arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricReport {
    pub metric: String,
    pub role: MetricRole,
    #[serde(rename = "type")]
    pub kind: MetricKind,
    pub comparisons: BTreeMap<String, Comparison>,
    /// Guardrails only: the p-value of "the treatment is worse" per arm (the always-valid
    /// p-value on the harmful side with the sequential engine, 1 on the other side; the
    /// one-sided fixed-horizon p-value with the frequentist engine).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub harm_p_values: BTreeMap<String, f64>,
}

/// The whole analysis of an experiment: what `vigil ab analyze --experiment` prints, what the
/// dashboards show and what promotion records as its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentReport {
    pub experiment: String,
    pub control: String,
    pub engine: Engine,
    pub arms: Vec<ArmReport>,
    pub srm_p_value: f64,
    pub srm_mismatch: bool,
    /// The primary metric's comparisons (the `vigil ab analyze` contract).
    pub comparisons: BTreeMap<String, Comparison>,
    pub metrics: Vec<MetricReport>,
    pub decisions: BTreeMap<String, Decision>,
    /// The arm to ship: the `ship` arm with the largest primary lift, if any.
    pub winner: Option<String>,
}

/// Units and configured weight of one arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    pub name: String,
    pub model_version: String,
    pub weight: f64,
    pub units: u64,
}

/// Why an experiment cannot be analysed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    #[error("experiment `{0}` has no exposures yet; nothing to analyse")]
    NoExposures(String),
    #[error("experiment `{experiment}`: no units of the control arm `{control}` yet")]
    NoControl { experiment: String, control: String },
    #[error("experiment `{experiment}`: exposures name arm `{arm}`, which is not configured; fix the exposure logging or the [[experiments]] entry")]
    UnknownArm { experiment: String, arm: String },
    #[error(transparent)]
    Config(#[from] AnalysisConfigError),
    #[error(transparent)]
    Stats(#[from] StatsError),
}

/// Analyses an experiment. `metrics[0]` holds the primary metric's sums, then one entry per
/// guardrail in configuration order. Arms without units count as 0 in the SRM check.
pub fn analyze(
    experiment: &str,
    arms: &[ArmInfo],
    config: &AnalysisConfig,
    metrics: &[MetricAggregates],
) -> Result<ExperimentReport, AnalysisError> {
    config.validate()?;
    let specs: Vec<(&MetricSpec, MetricRole)> =
        std::iter::once((&config.primary, MetricRole::Primary))
            .chain(config.guardrails.iter().map(|g| (g, MetricRole::Guardrail)))
            .collect();
    if metrics.len() != specs.len() {
        return Err(StatsError::LengthMismatch {
            what: "metric aggregates",
            expected: specs.len(),
            got: metrics.len(),
        }
        .into());
    }
    let control = arms
        .first()
        .ok_or_else(|| AnalysisError::NoExposures(experiment.to_owned()))?;
    let primary = &metrics[0];
    if primary.arms.values().all(|a| a.n == 0) {
        return Err(AnalysisError::NoExposures(experiment.to_owned()));
    }
    if let Some(unknown) = primary
        .arms
        .keys()
        .find(|k| !arms.iter().any(|a| &a.name == *k))
    {
        return Err(AnalysisError::UnknownArm {
            experiment: experiment.to_owned(),
            arm: unknown.clone(),
        });
    }
    let units = |m: &MetricAggregates, arm: &str| m.arms.get(arm).map(|s| s.n).unwrap_or(0);
    if units(primary, &control.name) == 0 {
        return Err(AnalysisError::NoControl {
            experiment: experiment.to_owned(),
            control: control.name.clone(),
        });
    }
    let arm_units: Vec<u64> = arms.iter().map(|a| units(primary, &a.name)).collect();
    let weights: Vec<f64> = arms.iter().map(|a| a.weight).collect();
    let srm: SrmCheck = stats::check_srm(&arm_units, &weights, stats::SRM_P_THRESHOLD)?;

    let freq = FrequentistConfig {
        alpha: config.alpha,
        ..Default::default()
    };
    let seq = SequentialConfig {
        alpha: config.alpha,
        tuning_parameter: config.sequential_tuning,
        ..Default::default()
    };
    let treatments: Vec<&ArmInfo> = arms[1..]
        .iter()
        .filter(|a| units(primary, &a.name) > 0)
        .collect();

    let mut reports = Vec::new();
    // Raw results the decision needs: (metric index, arm) → two-sided result used for decisions.
    let mut decision_results: BTreeMap<(usize, String), FrequentistResult> = BTreeMap::new();
    let mut guardrail_inputs: BTreeMap<String, Vec<GuardrailInput>> = BTreeMap::new();
    for (mi, ((spec, role), sums)) in specs.iter().zip(metrics).enumerate() {
        let kind = spec.effective_kind();
        let lower_is_better = match role {
            MetricRole::Primary => spec.higher_is_better == Some(false),
            MetricRole::Guardrail => spec.guardrail_higher_is_worse(),
        };
        let bayes = BayesianConfig {
            alpha: config.alpha,
            inverse: lower_is_better,
            ..Default::default()
        };
        let c_sums = sums.arms.get(&control.name).copied().unwrap_or_default();
        let c_stats = c_sums.stats(kind);
        let mut comparisons = BTreeMap::new();
        let mut harm = BTreeMap::new();
        for t in &treatments {
            let t_sums = sums.arms.get(&t.name).copied().unwrap_or_default();
            if t_sums.n == 0 || c_sums.n == 0 {
                continue;
            }
            let t_stats = t_sums.stats(kind);
            let f = stats::frequentist::analyze(&c_stats, &t_stats, &freq)?;
            let s = stats::sequential::analyze(&c_stats, &t_stats, &seq)?;
            let b = stats::bayesian::analyze(&c_stats, &t_stats, &bayes)?;
            let cuped = if *role == MetricRole::Primary && config.cuped_pre_period_hours > 0 {
                let (cc, tc) = (c_sums.cuped(kind), t_sums.cuped(kind));
                let theta = match (&cc, &tc) {
                    (ArmStats::Cuped(a), ArmStats::Cuped(b)) => stats::cuped::pooled_theta(a, b)?,
                    _ => 0.0,
                };
                let r = stats::frequentist::analyze(&cc, &tc, &freq)?;
                Some((r, theta))
            } else {
                None
            };
            if *role == MetricRole::Guardrail {
                let g = match config.engine {
                    // Looked at continuously, a fixed-horizon one-sided test would flag a
                    // harmless guardrail in about alpha of the looks; the always-valid sequence
                    // does not. Harm = the sequence excludes 0 on the harmful side.
                    Engine::Sequential => {
                        let harmful_side = (s.expected > 0.0) == lower_is_better;
                        let mut result = s;
                        result.p_value = if harmful_side { s.p_value } else { 1.0 };
                        GuardrailInput {
                            name: spec.metric.clone(),
                            result,
                        }
                    }
                    Engine::Frequentist => GuardrailInput::evaluate(
                        spec.metric.clone(),
                        &c_stats,
                        &t_stats,
                        lower_is_better,
                        config.alpha,
                    )?,
                };
                harm.insert(t.name.clone(), g.result.p_value);
                guardrail_inputs.entry(t.name.clone()).or_default().push(g);
            }
            let chosen = match (config.engine, &cuped) {
                (Engine::Sequential, _) => s,
                (Engine::Frequentist, Some((r, _))) => *r,
                (Engine::Frequentist, None) => f,
            };
            decision_results.insert((mi, t.name.clone()), chosen);
            comparisons.insert(
                t.name.clone(),
                Comparison {
                    units: t_sums.n,
                    control_mean: c_stats_mean(&c_stats),
                    mean: c_stats_mean(&t_stats),
                    frequentist: TestSummary::from(&f, None),
                    sequential: TestSummary::from(&s, None),
                    bayesian: BayesianSummary {
                        expected: b.expected,
                        ci: b.ci,
                        chance_to_win: b.chance_to_win,
                        risk: [b.risk.control, b.risk.treatment],
                    },
                    cuped: cuped.map(|(r, theta)| TestSummary::from(&r, Some(theta))),
                },
            );
        }
        reports.push(MetricReport {
            metric: spec.metric.clone(),
            role: *role,
            kind,
            comparisons,
            harm_p_values: harm,
        });
    }

    // Correct the decision p-values across metrics × arms, then write them back.
    let keys: Vec<(usize, String)> = decision_results.keys().cloned().collect();
    let raw: Vec<f64> = keys.iter().map(|k| decision_results[k].p_value).collect();
    let adjusted = config.correction.adjust(&raw)?;
    for (k, p) in keys.iter().zip(&adjusted) {
        if let Some(r) = decision_results.get_mut(k) {
            r.p_value = *p;
        }
        if let Some(c) = reports[k.0].comparisons.get_mut(&k.1) {
            let target = match (config.engine, c.cuped.as_mut()) {
                (Engine::Sequential, _) => &mut c.sequential,
                (Engine::Frequentist, Some(cu)) => cu,
                (Engine::Frequentist, None) => &mut c.frequentist,
            };
            target.adjusted_p_value = Some(*p);
        }
    }

    let smallest = arm_units
        .iter()
        .copied()
        .filter(|n| *n > 0)
        .min()
        .unwrap_or(0);
    let mut decisions = BTreeMap::new();
    for t in &treatments {
        let Some(primary_result) = decision_results.get(&(0, t.name.clone())) else {
            continue;
        };
        let input = DecisionInput {
            primary: *primary_result,
            primary_higher_is_better: config.primary.higher_is_better != Some(false),
            guardrails: guardrail_inputs.remove(&t.name).unwrap_or_default(),
            srm,
            smallest_arm_units: smallest,
            min_units_per_arm: config.min_units_per_arm,
            alpha: config.alpha,
        };
        let mut d = stats::decide(&input);
        // A sequential test stays valid at every look: "not significant yet" means keep
        // collecting until the maximum sample, not "inconclusive".
        if config.engine == Engine::Sequential
            && d.verdict == Verdict::Inconclusive
            && !srm.mismatch
            && primary_result.not_estimable.is_none()
            && smallest < config.max_units()
        {
            d.verdict = Verdict::KeepRunning;
            d.reasons.push(format!(
                "the sequential test may keep running up to {} units per arm",
                config.max_units()
            ));
        }
        decisions.insert(t.name.clone(), d);
    }
    let winner = decisions
        .iter()
        .filter(|(_, d)| d.verdict == Verdict::Ship)
        .max_by(|a, b| {
            let lift = |arm: &str| {
                decision_results
                    .get(&(0, arm.to_owned()))
                    .map(|r| r.expected)
                    .unwrap_or(f64::NEG_INFINITY)
            };
            let (la, lb) = (lift(a.0), lift(b.0));
            if config.primary.higher_is_better == Some(false) {
                lb.total_cmp(&la)
            } else {
                la.total_cmp(&lb)
            }
        })
        .map(|(arm, _)| arm.clone());

    Ok(ExperimentReport {
        experiment: experiment.to_owned(),
        control: control.name.clone(),
        engine: config.engine,
        arms: arms
            .iter()
            .zip(&arm_units)
            .map(|(a, n)| ArmReport {
                name: a.name.clone(),
                model_version: a.model_version.clone(),
                weight: a.weight,
                units: *n,
            })
            .collect(),
        srm_p_value: srm.p_value,
        srm_mismatch: srm.mismatch,
        comparisons: reports[0].comparisons.clone(),
        metrics: reports,
        decisions,
        winner,
    })
}

fn c_stats_mean(s: &ArmStats) -> f64 {
    match s {
        ArmStats::Mean(m) => m.mean(),
        ArmStats::Proportion(p) => p.mean(),
        ArmStats::Ratio(r) => r.mean(),
        ArmStats::Cuped(c) => c.metric.mean(),
    }
}

/// Renders a report as a table for people.
pub fn render_table(r: &ExperimentReport) -> String {
    let mut out = format!(
        "experiment {} — control {} — engine {:?}\nSRM p = {:.4}{}\n",
        r.experiment,
        r.control,
        r.engine,
        r.srm_p_value,
        if r.srm_mismatch {
            "  SAMPLE RATIO MISMATCH: do not trust the results"
        } else {
            ""
        }
    );
    for a in &r.arms {
        out.push_str(&format!(
            "  arm {:<14} {:<18} weight {:.2}  units {}\n",
            a.name, a.model_version, a.weight, a.units
        ));
    }
    for m in &r.metrics {
        out.push_str(&format!(
            "\n{} ({:?}, {:?})\n{:<16} {:>12} {:>12} {:>10} {:>26} {:>10} {:>8}\n",
            m.metric,
            m.role,
            m.kind,
            "arm",
            "control",
            "arm mean",
            "lift",
            "CI (decision engine)",
            "p",
            "P(win)"
        ));
        for (arm, c) in &m.comparisons {
            let t = match r.engine {
                Engine::Sequential => &c.sequential,
                Engine::Frequentist => c.cuped.as_ref().unwrap_or(&c.frequentist),
            };
            out.push_str(&format!(
                "{:<16} {:>12.4} {:>12.4} {:>+9.2}% [{:>+9.2}%, {:>+9.2}%] {:>10.4} {:>7.1}%\n",
                arm,
                c.control_mean,
                c.mean,
                100.0 * t.expected,
                100.0 * t.ci[0],
                100.0 * t.ci[1],
                t.adjusted_p_value.unwrap_or(t.p_value),
                100.0 * c.bayesian.chance_to_win
            ));
        }
    }
    out.push('\n');
    for (arm, d) in &r.decisions {
        out.push_str(&format!("decision for {arm}: {:?}\n", d.verdict));
        for reason in &d.reasons {
            out.push_str(&format!("  - {reason}\n"));
        }
    }
    if let Some(w) = &r.winner {
        out.push_str(&format!(
            "winner: {w} (promote with `vigil promote --experiment {}`)\n",
            r.experiment
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arms() -> Vec<ArmInfo> {
        vec![
            ArmInfo {
                name: "control".into(),
                model_version: "m@1".into(),
                weight: 0.5,
            },
            ArmInfo {
                name: "v2".into(),
                model_version: "m@2".into(),
                weight: 0.5,
            },
        ]
    }

    /// Sums of `n` units with mean `mean` and standard deviation `sd` (exact moments).
    fn sums(n: u64, mean: f64, sd: f64) -> ArmSums {
        let nf = n as f64;
        ArmSums {
            n,
            sum_y: nf * mean,
            sum_y2: (nf - 1.0) * sd * sd + nf * mean * mean,
            ..Default::default()
        }
    }

    fn agg(c: ArmSums, t: ArmSums) -> MetricAggregates {
        MetricAggregates {
            arms: [("control".to_string(), c), ("v2".to_string(), t)].into(),
        }
    }

    fn revenue() -> AnalysisConfig {
        AnalysisConfig {
            primary: MetricSpec {
                metric: "revenue".into(),
                kind: MetricKind::Mean,
                denominator: None,
                higher_is_better: None,
                higher_is_worse: None,
                label_outcome: None,
            },
            min_units_per_arm: 1000,
            ..Default::default()
        }
    }

    #[test]
    fn five_percent_lift_ships_and_matches_the_engines() {
        let c = sums(5000, 10.0, 3.0);
        let t = sums(5000, 10.5, 3.0);
        let r = analyze("e", &arms(), &revenue(), &[agg(c, t)]).unwrap();
        assert_eq!(r.decisions["v2"].verdict, Verdict::Ship, "{r:?}");
        assert_eq!(r.winner.as_deref(), Some("v2"));
        let seq = stats::sequential::analyze(
            &c.stats(MetricKind::Mean),
            &t.stats(MetricKind::Mean),
            &SequentialConfig::default(),
        )
        .unwrap();
        assert_eq!(r.comparisons["v2"].sequential.expected, seq.expected);
        assert!((r.comparisons["v2"].sequential.expected - 0.05).abs() < 1e-12);
    }

    #[test]
    fn no_difference_keeps_running_then_is_inconclusive() {
        let c = sums(5000, 10.0, 3.0);
        let r = analyze("e", &arms(), &revenue(), &[agg(c, c)]).unwrap();
        assert_eq!(r.decisions["v2"].verdict, Verdict::KeepRunning);
        assert!(r.winner.is_none());
        let big = sums(40_000, 10.0, 3.0);
        let r = analyze("e", &arms(), &revenue(), &[agg(big, big)]).unwrap();
        assert_eq!(r.decisions["v2"].verdict, Verdict::Inconclusive);
    }

    #[test]
    fn harmed_latency_guardrail_rolls_back() {
        let mut cfg = revenue();
        cfg.guardrails.push(MetricSpec {
            metric: LATENCY.into(),
            kind: MetricKind::Mean,
            denominator: None,
            higher_is_better: None,
            higher_is_worse: None,
            label_outcome: None,
        });
        // Per unit: Σ latency (y) over 2 requests (x = 2); 20 ms vs 30 ms per request.
        let lat = |n: u64, per: f64| ArmSums {
            n,
            sum_y: n as f64 * 2.0 * per,
            sum_y2: n as f64 * (4.0 * per * per + 25.0),
            sum_x: 2.0 * n as f64,
            sum_x2: 4.0 * n as f64,
            sum_xy: n as f64 * 4.0 * per,
        };
        let r = analyze(
            "e",
            &arms(),
            &cfg,
            &[
                agg(sums(5000, 10.0, 3.0), sums(5000, 10.5, 3.0)),
                agg(lat(5000, 20.0), lat(5000, 30.0)),
            ],
        )
        .unwrap();
        assert_eq!(
            r.decisions["v2"].verdict,
            Verdict::Rollback,
            "{:?}",
            r.decisions
        );
        assert!(r.metrics[1].harm_p_values["v2"] < 1e-6);
        assert!(r.winner.is_none());
    }

    #[test]
    fn srm_blocks_the_call() {
        let r = analyze(
            "e",
            &arms(),
            &revenue(),
            &[agg(sums(5000, 10.0, 3.0), sums(4000, 11.0, 3.0))],
        )
        .unwrap();
        assert!(r.srm_mismatch);
        assert_eq!(r.decisions["v2"].verdict, Verdict::Inconclusive);
    }

    #[test]
    fn zero_variance_is_reported_not_nan() {
        let flat = ArmSums {
            n: 2000,
            sum_y: 2000.0,
            sum_y2: 2000.0,
            ..Default::default()
        };
        let r = analyze("e", &arms(), &revenue(), &[agg(flat, flat)]).unwrap();
        let c = &r.comparisons["v2"];
        assert_eq!(
            c.frequentist.not_estimable.as_deref(),
            Some("ZERO_NEGATIVE_VARIANCE")
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("NaN"), "{json}");
        assert_eq!(r.decisions["v2"].verdict, Verdict::Inconclusive);
    }

    #[test]
    fn unknown_arm_and_empty_control_are_errors() {
        let mut a = agg(sums(100, 1.0, 1.0), sums(100, 1.0, 1.0));
        a.arms.insert("ghost".into(), sums(10, 1.0, 1.0));
        assert!(matches!(
            analyze("e", &arms(), &revenue(), &[a]),
            Err(AnalysisError::UnknownArm { .. })
        ));
        let only_t = MetricAggregates {
            arms: [("v2".to_string(), sums(100, 1.0, 1.0))].into(),
        };
        assert!(matches!(
            analyze("e", &arms(), &revenue(), &[only_t]),
            Err(AnalysisError::NoControl { .. })
        ));
    }

    #[test]
    fn builtin_table_names_and_default_directions() {
        let names: Vec<&str> = BUILTIN_METRICS.iter().map(|b| b.name).collect();
        assert_eq!(
            names,
            [
                LATENCY,
                ACCURACY,
                TTFT,
                COST,
                OUTPUT_TOKENS,
                TOKENS_PER_S,
                ERROR_RATE
            ]
        );
        assert_eq!(
            [
                "latency",
                "accuracy",
                "ttft",
                "cost",
                "output_tokens",
                "tokens_per_s",
                "error_rate"
            ],
            names.as_slice()
        );
        for b in BUILTIN_METRICS {
            assert!(is_builtin(b.name));
            assert_eq!(builtin(b.name), Some(b));
        }
        assert!(!is_builtin("revenue") && !is_builtin("thumbs_up") && !is_builtin(""));
        assert_eq!(
            builtin(ACCURACY).map(|b| b.source),
            Some(BuiltinSource::LabelledPredictions)
        );

        let spec = |metric: &str, higher_is_worse: Option<bool>| MetricSpec {
            metric: metric.into(),
            kind: MetricKind::Mean,
            denominator: None,
            higher_is_better: None,
            higher_is_worse,
            label_outcome: None,
        };
        let defaults: Vec<(&str, bool)> = names
            .iter()
            .map(|n| (*n, spec(n, None).guardrail_higher_is_worse()))
            .collect();
        assert_eq!(
            defaults,
            [
                ("latency", true),
                ("accuracy", false),
                ("ttft", true),
                ("cost", true),
                ("output_tokens", false),
                ("tokens_per_s", false),
                ("error_rate", true)
            ]
        );
        // Outcomes default to "higher is worse"; an explicit setting always wins.
        assert!(spec("errors", None).guardrail_higher_is_worse());
        assert!(spec(OUTPUT_TOKENS, Some(true)).guardrail_higher_is_worse());
        assert!(!spec(TTFT, Some(false)).guardrail_higher_is_worse());
        for n in &names {
            assert_eq!(spec(n, None).effective_kind(), MetricKind::Ratio, "{n}");
        }
    }

    #[test]
    fn llm_builtins_validate_like_latency() {
        let cfg: AnalysisConfig = toml::from_str(
            r#"
primary = { metric = "thumbs_up", type = "proportion" }
guardrails = [{ metric = "ttft" }, { metric = "error_rate" }, { metric = "cost" },
              { metric = "output_tokens", higher_is_worse = true }, { metric = "tokens_per_s" }]
"#,
        )
        .unwrap();
        cfg.validate().unwrap();
        // A built-in is a ratio without a `denominator`; its `type` is ignored as for latency.
        let typed: AnalysisConfig = toml::from_str(
            r#"
primary = { metric = "ttft", type = "proportion", higher_is_better = false }
guardrails = [{ metric = "error_rate", type = "mean" }]
"#,
        )
        .unwrap();
        typed.validate().unwrap();
        assert_eq!(typed.primary.effective_kind(), MetricKind::Ratio);
        for name in [LATENCY, ACCURACY, TTFT, COST, ERROR_RATE] {
            let bad: AnalysisConfig = toml::from_str(&format!(
                r#"primary = {{ metric = "{name}", type = "ratio", denominator = "requests" }}"#
            ))
            .unwrap();
            assert_eq!(
                bad.validate(),
                Err(AnalysisConfigError::BuiltinWithDenominator(name.into()))
            );
        }
        // A ratio built-in as primary rules out CUPED, as latency does.
        let cuped: AnalysisConfig =
            toml::from_str("primary = { metric = \"cost\" }\ncuped_pre_period_hours = 24").unwrap();
        assert_eq!(cuped.validate(), Err(AnalysisConfigError::CupedOnRatio));
    }

    #[test]
    fn slower_ttft_and_more_errors_roll_back_faster_tokens_do_not() {
        let mut cfg = revenue();
        for metric in [TTFT, ERROR_RATE, TOKENS_PER_S, OUTPUT_TOKENS] {
            cfg.guardrails.push(MetricSpec {
                metric: metric.into(),
                kind: MetricKind::Mean,
                denominator: None,
                higher_is_better: None,
                higher_is_worse: None,
                label_outcome: None,
            });
        }
        // Per unit: 2 requests, value `per` each with a little noise.
        let per_request = |n: u64, per: f64| ArmSums {
            n,
            sum_y: n as f64 * 2.0 * per,
            sum_y2: n as f64 * (4.0 * per * per + 0.01 * per * per),
            sum_x: 2.0 * n as f64,
            sum_x2: 4.0 * n as f64,
            sum_xy: n as f64 * 4.0 * per,
        };
        let primary = agg(sums(5000, 10.0, 3.0), sums(5000, 10.5, 3.0));
        let r = analyze(
            "e",
            &arms(),
            &cfg,
            &[
                primary.clone(),
                // ttft 200 → 300 ms: harm.
                agg(per_request(5000, 200.0), per_request(5000, 300.0)),
                // error rate unchanged.
                agg(per_request(5000, 0.02), per_request(5000, 0.02)),
                // tokens/s 40 → 60: better, not harm.
                agg(per_request(5000, 40.0), per_request(5000, 60.0)),
                // output tokens 100 → 150: not harm by default.
                agg(per_request(5000, 100.0), per_request(5000, 150.0)),
            ],
        )
        .unwrap();
        assert_eq!(r.decisions["v2"].verdict, Verdict::Rollback, "{r:?}");
        let reasons = r.decisions["v2"].reasons.join("\n");
        assert!(reasons.contains("guardrail ttft got worse"), "{reasons}");
        assert!(!reasons.contains("error_rate"), "{reasons}");
        assert!(!reasons.contains("tokens_per_s"), "{reasons}");
        assert!(!reasons.contains("output_tokens"), "{reasons}");
        assert!(r.metrics[1].harm_p_values["v2"] < 1e-6);
        assert_eq!(r.metrics[3].harm_p_values["v2"], 1.0);
        assert_eq!(r.metrics[4].harm_p_values["v2"], 1.0);
        assert!((r.metrics[1].comparisons["v2"].mean - 300.0).abs() < 1e-9);
        assert!((r.metrics[1].comparisons["v2"].control_mean - 200.0).abs() < 1e-9);

        // Fewer tokens per second is harm; so is an error rate that doubles.
        let r = analyze(
            "e",
            &arms(),
            &cfg,
            &[
                primary,
                agg(per_request(5000, 200.0), per_request(5000, 200.0)),
                agg(per_request(5000, 0.02), per_request(5000, 0.04)),
                agg(per_request(5000, 40.0), per_request(5000, 30.0)),
                agg(per_request(5000, 100.0), per_request(5000, 100.0)),
            ],
        )
        .unwrap();
        let reasons = r.decisions["v2"].reasons.join("\n");
        assert_eq!(r.decisions["v2"].verdict, Verdict::Rollback, "{reasons}");
        assert!(
            reasons.contains("guardrail error_rate got worse"),
            "{reasons}"
        );
        assert!(
            reasons.contains("guardrail tokens_per_s got worse"),
            "{reasons}"
        );
        assert!(!reasons.contains("guardrail ttft"), "{reasons}");
    }

    #[test]
    fn config_parses_from_toml_and_validates() {
        let cfg: AnalysisConfig = toml::from_str(
            r#"
primary = { metric = "clicks", type = "ratio", denominator = "sessions" }
guardrails = [{ metric = "latency" }]
cuped_pre_period_hours = 0
engine = "frequentist"
correction = "benjamini_hochberg"
"#,
        )
        .unwrap();
        cfg.validate().unwrap();
        let bad: AnalysisConfig =
            toml::from_str(r#"primary = { metric = "clicks", type = "ratio" }"#).unwrap();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("denominator"));
    }
}
