//! The `[shadow]` section of `vigil.toml`.
//!
//! ```toml
//! [shadow]
//! models_dir = "/var/cache/vigil/models"   # default: the cache of scripts/models/fetch.sh
//! device = "auto"                          # auto | cpu | cuda
//! dtype = "f32"                            # f32 | f16 | bf16 (half precision: GPUs)
//! threads = 2                              # CPU threads (RAYON_NUM_THREADS); default: all cores
//! batch_size = 32
//! page_size = 1024                         # events read from the store per page
//! sample_rate = 1.0
//! bucket = "1h"                            # time-series bucket of shadow_metrics
//! label_outcome_prefix = "label:"          # outcome `label:<class>` = ground truth
//! webhook_url = "http://retrain.internal/hooks/vigil"
//! kafka_topic = "vigil.retraining"         # brokers: kafka_brokers, else [kafka] brokers
//! alert_route = "ml-team"                  # e-mail through the alerting routes (when built)
//!
//! [[shadow.models]]
//! name = "intent"
//! version = "l6+logreg"
//! role = "production"
//! path = "all-MiniLM-L6-v2"
//! head = { path = "intent-heads/logistic_regression.safetensors", labels = "intent-heads/labels.json", kind = "softmax" }
//!
//! [[shadow.triggers]]
//! name = "intent-drift"
//! model = "intent"
//! kind = "drift"
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use crate::compare::ShadowPolicy;
use crate::device::DevicePreference;
use crate::error::{Error, Result};
use crate::registry::{default_models_dir, ModelSpec, Registry};
use crate::triggers::TriggerRule;

/// `[shadow]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShadowConfig {
    /// Base of relative model paths (default: [`default_models_dir`]).
    pub models_dir: Option<PathBuf>,
    /// The model registry.
    pub models: Vec<ModelSpec>,
    /// Device preference.
    pub device: DevicePreference,
    /// `f32`, `f16` or `bf16`.
    pub dtype: String,
    /// CPU threads for the models (sets `RAYON_NUM_THREADS` before the first model loads).
    pub threads: Option<usize>,
    /// Sentences per forward pass.
    pub batch_size: usize,
    /// Events per store page.
    pub page_size: usize,
    /// Default sampling rate of a replay (0 < r <= 1; deterministic by event id).
    pub sample_rate: f64,
    /// Bucket width of the metrics time series (`"1h"`, `"15m"`, ...).
    pub bucket: String,
    /// Outcome events named `<prefix><class>` give an input's true label.
    pub label_outcome_prefix: String,
    /// Labelled inputs needed before accuracy enters a verdict.
    pub min_labelled: u64,
    /// Thresholds of the verdicts.
    pub policy: ShadowPolicy,
    /// Retraining trigger rules.
    pub triggers: Vec<TriggerRule>,
    /// POST retraining requests here (JSON).
    pub webhook_url: Option<String>,
    /// Produce retraining requests to this Kafka topic.
    pub kafka_topic: Option<String>,
    /// Brokers for `kafka_topic` (default: `[kafka] brokers`).
    pub kafka_brokers: Option<String>,
    /// Alerting route for e-mail of retraining requests.
    pub alert_route: Option<String>,
    /// LLM candidates served by OpenAI-compatible endpoints (`[[shadow.candidates]]`).
    pub candidates: Vec<crate::llm::LlmCandidate>,
    /// Thresholds of the LLM verdicts (`[shadow.llm_policy]`).
    pub llm_policy: crate::llm::LlmPolicy,
    /// Sentence encoder of the LLM similarity (default: `all-MiniLM-L6-v2` under `models_dir`).
    pub llm_encoder: Option<PathBuf>,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        Self {
            models_dir: None,
            models: Vec::new(),
            device: DevicePreference::Auto,
            dtype: "f32".into(),
            threads: None,
            batch_size: crate::encoder::DEFAULT_BATCH_SIZE,
            page_size: 1024,
            sample_rate: 1.0,
            bucket: "1h".into(),
            label_outcome_prefix: "label:".into(),
            min_labelled: 100,
            policy: ShadowPolicy::default(),
            triggers: Vec::new(),
            webhook_url: None,
            kafka_topic: None,
            kafka_brokers: None,
            alert_route: None,
            candidates: Vec::new(),
            llm_policy: crate::llm::LlmPolicy::default(),
            llm_encoder: None,
        }
    }
}

/// Parses `"90s"`, `"15m"`, `"1h"`, `"7d"`, `"2w"` (or bare seconds) into seconds: the
/// analyzer's parser (one duration syntax across `vigil.toml`), with this crate's error.
pub fn parse_duration(text: &str) -> Result<u32> {
    vigil_analyzer::monitor::config::parse_duration(text).map_err(|e| match e {
        vigil_analyzer::monitor::MonitorError::Config(m) => Error::Config(m),
        other => Error::Config(other.to_string()),
    })
}

impl ShadowConfig {
    /// The registry with paths resolved against `models_dir`.
    pub fn registry(&self) -> Result<Registry> {
        let base = self.models_dir.clone().unwrap_or_else(default_models_dir);
        let mut models = self.models.clone();
        for m in &mut models {
            if m.batch_size.is_none() {
                m.batch_size = Some(self.batch_size);
            }
        }
        Registry::new(models, &base)
    }

    /// The sentence encoder directory of the LLM similarity.
    pub fn llm_encoder_dir(&self) -> PathBuf {
        let base = self.models_dir.clone().unwrap_or_else(default_models_dir);
        match &self.llm_encoder {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => base.join(p),
            None => base.join("all-MiniLM-L6-v2"),
        }
    }

    /// The model dtype.
    pub fn dtype(&self) -> Result<candle_core::DType> {
        match self.dtype.trim().to_ascii_lowercase().as_str() {
            "f32" | "" => Ok(candle_core::DType::F32),
            "f16" | "fp16" => Ok(candle_core::DType::F16),
            "bf16" => Ok(candle_core::DType::BF16),
            other => Err(Error::Config(format!(
                "shadow.dtype = {other:?}: use f32, f16 or bf16"
            ))),
        }
    }

    /// Checks everything that needs no model files and no store.
    pub fn validate(&self) -> Result<()> {
        self.registry()?;
        self.dtype()?;
        parse_duration(&self.bucket)?;
        if self.batch_size == 0 || self.page_size == 0 {
            return Err(Error::Config(
                "shadow.batch_size and shadow.page_size must be at least 1".into(),
            ));
        }
        if !(self.sample_rate > 0.0 && self.sample_rate <= 1.0) {
            return Err(Error::Config(format!(
                "shadow.sample_rate = {} must be in (0, 1]",
                self.sample_rate
            )));
        }
        if self.threads == Some(0) {
            return Err(Error::Config("shadow.threads must be at least 1".into()));
        }
        for c in &self.candidates {
            c.validate()?;
        }
        for t in &self.triggers {
            t.validate().map_err(Error::Config)?;
            if let Some(w) = &t.dataset_window {
                parse_duration(w)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_section() {
        let c: ShadowConfig = toml::from_str(
            r#"
models_dir = "/m"
threads = 1
bucket = "15m"
webhook_url = "http://127.0.0.1:1/hook"
[policy]
min_agreement = 0.7
[[models]]
name = "intent"
version = "a"
role = "production"
path = "all-MiniLM-L6-v2"
[[models]]
name = "intent"
version = "b"
role = "candidate"
path = "/abs/l3"
[[triggers]]
name = "t"
model = "intent"
kind = "candidate_better"
margin = 0.02
"#,
        )
        .expect("parse");
        c.validate().expect("valid");
        let reg = c.registry().expect("registry");
        assert_eq!(
            reg.production("intent").map(|m| m.path.clone()),
            Some(PathBuf::from("/m/all-MiniLM-L6-v2"))
        );
        assert_eq!(reg.models[1].batch_size, Some(32));
        assert_eq!(c.policy.min_agreement, 0.7);
        assert_eq!(c.policy.max_label_shift, 0.1);
        assert_eq!(parse_duration(&c.bucket).ok(), Some(900));
    }

    #[test]
    fn rejects_bad_values() {
        let bad = |text: &str| toml::from_str::<ShadowConfig>(text).map(|c| c.validate());
        assert!(matches!(bad("sample_rate = 0.0"), Ok(Err(_))));
        assert!(matches!(bad("bucket = \"soon\""), Ok(Err(_))));
        assert!(matches!(bad("dtype = \"int4\""), Ok(Err(_))));
        assert!(bad("colour = 1").is_err());
    }
}
