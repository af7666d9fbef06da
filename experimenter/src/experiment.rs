//! Experiment definitions (read from `[[experiments]]` in `vigil.toml`), their validation, and
//! deterministic assignment of units to arms.
//!
//! # Semantics (GrowthBook's `runExperiment`, restricted to what vigil needs)
//!
//! A unit is *in the experiment* only when, in this order: the experiment is `running` and
//! `now` is inside its optional `[start, stop)` window; the unit id is non-empty; the unit is in
//! the experiment's namespace slice (if any); every targeting condition holds; and its hash falls
//! in one arm's bucket range (coverage). Otherwise the unit is **not in the experiment**:
//! `variation` is `-1`, `in_experiment` is `false`, and it is **served the control arm** (the
//! first arm), exactly like GrowthBook, whose result for such units is variation 0 with
//! `inExperiment: false`. vigil reports `-1` rather than `0` so that exposures of non-enrolled
//! units can never be mistaken for control exposures in the analysis; the arm and model version
//! to serve are in [`Assignment::arm`] / [`Assignment::model_version`].
//!
//! `paused` and `stopped` experiments therefore send everyone to control. (GrowthBook has no
//! `paused`; it behaves like GrowthBook's `draft`/inactive, and `stopped` like its `stopped`.)
//!
//! `hash` is always the unit's position on this experiment's hash line (`hash(seed, unit,
//! hash_version)`), even when the unit is not enrolled, so the CLI can show it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::bucket::{bucket_ranges, choose_variation, BucketRange, WEIGHT_SUM_TOLERANCE};
use crate::hash::{fnv1a32, hash, hash_v2_after_seed, HashVersion};
use crate::namespace::Namespace;

/// Lifecycle state of an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Units are assigned by hash.
    #[default]
    Running,
    /// Temporarily off: everyone is served control, nobody is in the experiment.
    Paused,
    /// Finished: everyone is served control, nobody is in the experiment.
    Stopped,
}

/// One arm: a name and the model version it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Arm name, unique within the experiment (e.g. `control`, `treatment`).
    pub name: String,
    /// Model version served to units in this arm.
    pub model_version: String,
    /// Share of enrolled units; give every arm a weight (summing to 1) or none (equal split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

/// A targeting condition on one string attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The attribute must equal this value (TOML: `country = "DE"`).
    Equals(String),
    /// The attribute must be one of these values (TOML: `plan = ["pro", "team"]`).
    In(Vec<String>),
}

impl Condition {
    /// Whether an attribute value (or its absence) satisfies the condition. A missing attribute
    /// never does.
    #[inline]
    pub fn matches(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (_, None) => false,
            (Condition::Equals(want), Some(v)) => want == v,
            (Condition::In(list), Some(v)) => list.iter().any(|w| w == v),
        }
    }
}

impl Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Condition::Equals(v) => s.serialize_str(v),
            Condition::In(list) => list.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Condition;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (equality) or a list of strings (one of)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Condition, E> {
                Ok(Condition::Equals(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Condition, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<String>()? {
                    out.push(v);
                }
                Ok(Condition::In(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// An experiment as written in configuration, before validation. Unknown keys are rejected so
/// that a typo cannot silently change who gets which model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Unique experiment key.
    pub key: String,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The model whose traffic this experiment splits (used by the gateway, not by assignment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Hash seed; defaults to `key` (as GrowthBook: an empty seed also means `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// Arms in order; the first is the control, served to units not in the experiment.
    pub arms: Vec<Arm>,
    /// Fraction of units enrolled, in `[0, 1]` (default 1).
    #[serde(default = "default_coverage")]
    pub coverage: f64,
    /// GrowthBook hash version, 1 or 2. Defaults to 1 like the GrowthBook SDK; prefer 2 for new
    /// experiments (unbiased, and independent across experiments).
    #[serde(default)]
    pub hash_version: HashVersion,
    /// Mutually exclusive experiments: `namespace = { id = "ranking", range = [0.0, 0.5] }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Namespace>,
    /// `running` (default), `paused` or `stopped`.
    #[serde(default)]
    pub status: Status,
    /// No enrolment before this instant (RFC 3339 string, e.g. `"2025-06-01T00:00:00Z"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    /// No enrolment from this instant on (RFC 3339 string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<DateTime<Utc>>,
    /// Conditions on string attributes, all of which must hold:
    /// `targeting = { country = "DE", plan = ["pro", "team"] }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub targeting: BTreeMap<String, Condition>,
    /// How to analyse the experiment from the store (`[experiments.analysis]`); see
    /// [`crate::analysis`]. Not used by assignment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<crate::analysis::AnalysisConfig>,
}

fn default_coverage() -> f64 {
    1.0
}

/// Why an experiment configuration is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExperimentError {
    #[error("experiment key is empty: give every [[experiments]] entry a unique, non-empty `key`")]
    EmptyKey,
    #[error("experiment `{key}` has no arms: add at least one [[experiments.arms]] entry (the first one is the control)")]
    NoArms { key: String },
    #[error("experiment `{key}`: arm #{index} has an empty `name`")]
    EmptyArmName { key: String, index: usize },
    #[error("experiment `{key}`: arm `{arm}` has an empty `model_version`; name the model version it serves")]
    EmptyModelVersion { key: String, arm: String },
    #[error("experiment `{key}`: arm `{arm}` is defined twice; arm names must be unique")]
    DuplicateArm { key: String, arm: String },
    #[error("experiment `{key}`: arms {missing} have no `weight`; give every arm a weight or none (equal split)")]
    MixedWeights { key: String, missing: String },
    #[error(
        "experiment `{key}`: arm `{arm}` has weight {weight}; weights must be finite and >= 0"
    )]
    InvalidWeight {
        key: String,
        arm: String,
        weight: f64,
    },
    #[error("experiment `{key}`: arm weights sum to {sum}; they must sum to 1 (within 0.99..=1.01, as GrowthBook)")]
    WeightSum { key: String, sum: f64 },
    #[error("experiment `{key}`: coverage {coverage} is outside [0, 1]; it is the fraction of units enrolled")]
    Coverage { key: String, coverage: f64 },
    #[error("experiment `{key}`: namespace id is empty; name the namespace shared by mutually exclusive experiments")]
    EmptyNamespaceId { key: String },
    #[error(
        "experiment `{key}`: namespace range [{start}, {end}) must satisfy 0 <= start <= end <= 1"
    )]
    NamespaceRange { key: String, start: f64, end: f64 },
    #[error("experiment `{key}`: stop ({stop}) must be after start ({start})")]
    TimeWindow {
        key: String,
        start: DateTime<Utc>,
        stop: DateTime<Utc>,
    },
    #[error("experiment `{key}`: targeting on `{attribute}` lists no values, so nobody could match; remove it or add values")]
    EmptyCondition { key: String, attribute: String },
    #[error("experiment `{key}` is defined more than once; experiment keys must be unique")]
    DuplicateKey { key: String },
    #[error("experiment `{key}`, [experiments.analysis]: {reason}")]
    Analysis { key: String, reason: String },
}

impl ExperimentConfig {
    /// Checks the configuration; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        let key = || self.key.clone();
        if self.key.trim().is_empty() {
            return Err(ExperimentError::EmptyKey);
        }
        if self.arms.is_empty() {
            return Err(ExperimentError::NoArms { key: key() });
        }
        if let Some(a) = &self.analysis {
            a.validate().map_err(|e| ExperimentError::Analysis {
                key: key(),
                reason: e.to_string(),
            })?;
        }
        for (index, arm) in self.arms.iter().enumerate() {
            if arm.name.trim().is_empty() {
                return Err(ExperimentError::EmptyArmName { key: key(), index });
            }
            if arm.model_version.trim().is_empty() {
                return Err(ExperimentError::EmptyModelVersion {
                    key: key(),
                    arm: arm.name.clone(),
                });
            }
            if self.arms[..index].iter().any(|a| a.name == arm.name) {
                return Err(ExperimentError::DuplicateArm {
                    key: key(),
                    arm: arm.name.clone(),
                });
            }
            if let Some(weight) = arm.weight {
                if !weight.is_finite() || weight < 0.0 {
                    return Err(ExperimentError::InvalidWeight {
                        key: key(),
                        arm: arm.name.clone(),
                        weight,
                    });
                }
            }
        }
        let missing: Vec<&str> = self
            .arms
            .iter()
            .filter(|a| a.weight.is_none())
            .map(|a| a.name.as_str())
            .collect();
        if !missing.is_empty() && missing.len() != self.arms.len() {
            return Err(ExperimentError::MixedWeights {
                key: key(),
                missing: missing.join(", "),
            });
        }
        if missing.is_empty() {
            let sum = self
                .arms
                .iter()
                .fold(0.0, |s, a| s + a.weight.unwrap_or(0.0));
            if !(WEIGHT_SUM_TOLERANCE.0..=WEIGHT_SUM_TOLERANCE.1).contains(&sum) {
                return Err(ExperimentError::WeightSum { key: key(), sum });
            }
        }
        if !(0.0..=1.0).contains(&self.coverage) {
            return Err(ExperimentError::Coverage {
                key: key(),
                coverage: self.coverage,
            });
        }
        if let Some(ns) = &self.namespace {
            if ns.id.is_empty() {
                return Err(ExperimentError::EmptyNamespaceId { key: key() });
            }
            let (start, end) = ns.range;
            if !(0.0 <= start && start <= end && end <= 1.0) {
                return Err(ExperimentError::NamespaceRange {
                    key: key(),
                    start,
                    end,
                });
            }
        }
        if let (Some(start), Some(stop)) = (self.start, self.stop) {
            if stop <= start {
                return Err(ExperimentError::TimeWindow {
                    key: key(),
                    start,
                    stop,
                });
            }
        }
        for (attribute, cond) in &self.targeting {
            if matches!(cond, Condition::In(list) if list.is_empty()) {
                return Err(ExperimentError::EmptyCondition {
                    key: key(),
                    attribute: attribute.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Why a unit got the assignment it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Enrolled by hash.
    InExperiment,
    /// The experiment is paused.
    Paused,
    /// The experiment is stopped.
    Stopped,
    /// `now` is before the experiment's `start`.
    NotStarted,
    /// `now` is at or after the experiment's `stop`.
    Ended,
    /// The unit id is empty (GrowthBook: missing hash attribute).
    MissingUnitId,
    /// The unit is outside the experiment's namespace slice.
    Namespace,
    /// A targeting condition does not hold.
    Targeting,
    /// The unit's hash is outside every arm's range (coverage < 1, or weights < 1).
    Coverage,
}

/// The outcome of [`Experiment::assign`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Assignment<'a> {
    /// The unit's position on the experiment's hash line, in `[0, 1)`.
    pub hash: f64,
    /// Index of the arm the unit is enrolled in, `-1` when not in the experiment.
    pub variation: i32,
    /// Whether the unit is enrolled (and its exposure counts in the analysis).
    pub in_experiment: bool,
    /// Arm to serve: the enrolled arm, or the control arm when not in the experiment.
    pub arm: &'a str,
    /// Model version to serve (that of `arm`).
    pub model_version: &'a str,
    /// Why.
    pub reason: Reason,
}

/// Read access to a unit's string attributes, for targeting.
pub trait Attributes {
    /// The value of attribute `name`, if the unit has it.
    fn attribute(&self, name: &str) -> Option<&str>;
}

/// A unit without attributes (any targeting condition then fails).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAttributes;

impl Attributes for NoAttributes {
    fn attribute(&self, _: &str) -> Option<&str> {
        None
    }
}

impl<S: BuildHasher> Attributes for HashMap<String, String, S> {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Attributes for BTreeMap<String, String> {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Attributes for [(K, V)] {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Attributes for [(K, V); N] {
    fn attribute(&self, name: &str) -> Option<&str> {
        self[..].attribute(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Attributes for Vec<(K, V)> {
    fn attribute(&self, name: &str) -> Option<&str> {
        self[..].attribute(name)
    }
}

impl<T: Attributes + ?Sized> Attributes for &T {
    fn attribute(&self, name: &str) -> Option<&str> {
        (**self).attribute(name)
    }
}

/// A validated experiment. Deserializing one validates it, so an invalid `[[experiments]]`
/// entry fails to load with an [`ExperimentError`] message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ExperimentConfig", into = "ExperimentConfig")]
pub struct Experiment {
    config: ExperimentConfig,
    /// Bucket ranges, one per arm, computed once.
    ranges: Vec<BucketRange>,
    /// `fnv1a32(seed)`: hash version 2 hashes `seed + unit`, so the seed is hashed once.
    seed_state: u32,
}

impl TryFrom<ExperimentConfig> for Experiment {
    type Error = ExperimentError;
    fn try_from(config: ExperimentConfig) -> Result<Self, ExperimentError> {
        Self::new(config)
    }
}

impl From<Experiment> for ExperimentConfig {
    fn from(e: Experiment) -> Self {
        e.config
    }
}

impl Experiment {
    /// Validates `config` and precomputes its bucket ranges.
    pub fn new(config: ExperimentConfig) -> Result<Self, ExperimentError> {
        config.validate()?;
        let weights: Option<Vec<f64>> = config.arms.iter().map(|a| a.weight).collect();
        let ranges = bucket_ranges(config.arms.len(), Some(config.coverage), weights.as_deref());
        let mut experiment = Self {
            config,
            ranges,
            seed_state: 0,
        };
        experiment.seed_state = fnv1a32(experiment.seed());
        Ok(experiment)
    }

    /// The configuration this experiment was built from.
    pub fn config(&self) -> &ExperimentConfig {
        &self.config
    }

    /// The experiment key.
    pub fn key(&self) -> &str {
        &self.config.key
    }

    /// The hash seed: `seed`, or the key when no (or an empty) seed is given.
    pub fn seed(&self) -> &str {
        match self.config.seed.as_deref() {
            Some(s) if !s.is_empty() => s,
            _ => &self.config.key,
        }
    }

    /// The arms, control first.
    pub fn arms(&self) -> &[Arm] {
        &self.config.arms
    }

    /// The control arm (served to units not in the experiment).
    pub fn control(&self) -> &Arm {
        // `new` guarantees at least one arm.
        &self.config.arms[0]
    }

    /// One bucket range per arm, as GrowthBook's `getBucketRanges`.
    pub fn ranges(&self) -> &[BucketRange] {
        &self.ranges
    }

    /// Assigns `unit_id` deterministically (see the module docs for the rules). Pure and
    /// allocation-free.
    pub fn assign<A: Attributes + ?Sized>(
        &self,
        unit_id: &str,
        attributes: &A,
        now: DateTime<Utc>,
    ) -> Assignment<'_> {
        let c = &self.config;
        let n = match c.hash_version {
            HashVersion::V2 => hash_v2_after_seed(self.seed_state, unit_id),
            HashVersion::V1 => hash(self.seed(), unit_id, HashVersion::V1),
        };
        let excluded = |reason| {
            let control = self.control();
            Assignment {
                hash: n,
                variation: -1,
                in_experiment: false,
                arm: &control.name,
                model_version: &control.model_version,
                reason,
            }
        };
        match c.status {
            Status::Running => {}
            Status::Paused => return excluded(Reason::Paused),
            Status::Stopped => return excluded(Reason::Stopped),
        }
        if c.start.is_some_and(|start| now < start) {
            return excluded(Reason::NotStarted);
        }
        if c.stop.is_some_and(|stop| now >= stop) {
            return excluded(Reason::Ended);
        }
        if unit_id.is_empty() {
            return excluded(Reason::MissingUnitId);
        }
        if let Some(ns) = &c.namespace {
            if !ns.contains(unit_id) {
                return excluded(Reason::Namespace);
            }
        }
        if !c.targeting.is_empty()
            && !c
                .targeting
                .iter()
                .all(|(name, cond)| cond.matches(attributes.attribute(name)))
        {
            return excluded(Reason::Targeting);
        }
        let variation = choose_variation(n, &self.ranges);
        let Some(arm) = usize::try_from(variation).ok().and_then(|i| c.arms.get(i)) else {
            return excluded(Reason::Coverage);
        };
        Assignment {
            hash: n,
            variation,
            in_experiment: true,
            arm: &arm.name,
            model_version: &arm.model_version,
            reason: Reason::InExperiment,
        }
    }
}

/// Checks that experiment keys are unique.
pub fn validate_experiments(experiments: &[Experiment]) -> Result<(), ExperimentError> {
    for (i, e) in experiments.iter().enumerate() {
        if experiments[..i].iter().any(|o| o.key() == e.key()) {
            return Err(ExperimentError::DuplicateKey {
                key: e.key().to_owned(),
            });
        }
    }
    Ok(())
}

/// The experiment with this key, if any.
pub fn find_experiment<'a>(experiments: &'a [Experiment], key: &str) -> Option<&'a Experiment> {
    experiments.iter().find(|e| e.key() == key)
}
