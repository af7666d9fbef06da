//! The `[gateway]` section of `vigil.toml`: which models the gateway serves, where each version's
//! backend is, which version is the control, which candidates get mirrored traffic, and how
//! failures are handled. Experiments stay in `[[experiments]]`; an experiment's `model` key links
//! it to a gateway model.
//!
//! ```toml
//! [gateway]
//! timeout_ms = 2000          # default backend timeout
//! shadow_queue = 1024        # mirrored requests waiting to be sent; more are dropped (counted)
//! shadow_concurrency = 32    # mirrored requests in flight
//! record_queue = 65536       # exposure/inference/shadow rows waiting for the writer
//! max_body_bytes = 1048576
//!
//! [gateway.breaker]
//! failures = 5               # consecutive failures that open a backend's circuit
//! cooldown_ms = 10000        # then one probe request (half-open) after this long
//!
//! [[gateway.models]]
//! name = "ranker"
//! control = "ranker@1.4"
//! fallback_to_control = true
//! versions = [
//!   { version = "ranker@1.4", url = "http://10.0.0.1:8080/predict" },
//!   { version = "ranker@2.0", url = "http://10.0.0.2:8080/predict" },
//!   { version = "ranker@3.0-rc", url = "http://10.0.0.3:8080/predict" },
//! ]
//! shadows = [{ version = "ranker@3.0-rc", share = 0.1 }]
//!
//! # An LLM behind OpenAI-compatible servers (vLLM, llama.cpp, TGI, Ollama): clients call
//! # POST /v1/chat/completions with "model": "assistant"; `url` is the server's /v1 base.
//! [[gateway.models]]
//! name = "assistant"
//! api = "openai"
//! control = "qwen-ft-1"
//! versions = [
//!   { version = "qwen-ft-1", url = "http://10.0.0.4:8000/v1", backend_model = "qwen2.5-7b-ft-1",
//!     price_input_per_1k = 0.0002, price_output_per_1k = 0.0006 },
//!   { version = "qwen-ft-2", url = "http://10.0.0.5:8000/v1", backend_model = "qwen2.5-7b-ft-2",
//!     price_input_per_1k = 0.0002, price_output_per_1k = 0.0006, stream_options = false },
//! ]
//!
//! [gateway.llm]
//! store_text = true          # record prompts and responses (false: tokens and times only)
//! text_cap_bytes = 16384     # longest prompt / response text kept per request
//! ```

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

use crate::experiment::Experiment;

/// The whole `[gateway]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Backend timeout for models that do not set their own.
    pub timeout_ms: u64,
    /// Capacity of the mirror queue; when full, mirrored copies are dropped and counted so that
    /// shadow traffic can never slow down or block served traffic.
    pub shadow_queue: usize,
    /// Mirrored requests sent at the same time.
    pub shadow_concurrency: usize,
    /// Capacity of the queue of rows (exposures, inferences, shadow responses) bound for the
    /// store; when full, rows are dropped and counted rather than delaying requests.
    pub record_queue: usize,
    /// Largest request body forwarded.
    pub max_body_bytes: usize,
    pub breaker: BreakerConfig,
    pub models: Vec<ModelConfig>,
    /// How often the gateway re-reads `deployments` (promotions made elsewhere: the CLI, another
    /// gateway) and advances ramps.
    pub deployment_poll_ms: u64,
    pub ramp: RampConfig,
    /// What the OpenAI-compatible routes record of LLM requests.
    pub llm: LlmConfig,
}

/// `[gateway.llm]`: what is recorded of a request to an `api = "openai"` model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Record the prompt (messages rendered to text) and the response text; `false` keeps
    /// tokens, times, cost and finish reason only (prompts may hold personal data).
    pub store_text: bool,
    /// Longest prompt and response kept per request, in bytes (cut at a character boundary).
    pub text_cap_bytes: usize,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            store_text: true,
            text_cap_bytes: 16 * 1024,
        }
    }
}

/// The protocol a gateway model's backends speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelApi {
    /// `POST /v1/predict/{model}`: a JSON body forwarded to the version's `url`, whose answer
    /// has a `score` and/or `label`.
    #[default]
    Predict,
    /// OpenAI-compatible (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`): the
    /// version's `url` is the server's `/v1` base URL.
    Openai,
}

/// `[gateway.ramp]`: how a promotion with a ramp rolls out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RampConfig {
    /// Shares of the model's traffic, in order; the last must be 1.
    pub stages: Vec<f64>,
    /// Minimum time on a stage before advancing.
    pub step_seconds: u64,
    /// Requests the new version must have served on a stage before its guardrails are judged.
    pub min_requests: u64,
    /// Significance level of the (always-valid) latency guardrail.
    pub alpha: f64,
}

impl Default for RampConfig {
    fn default() -> Self {
        RampConfig {
            stages: vec![0.05, 0.25, 0.5, 1.0],
            step_seconds: 3600,
            min_requests: 200,
            alpha: 0.01,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            timeout_ms: 2000,
            shadow_queue: 1024,
            shadow_concurrency: 32,
            record_queue: 65_536,
            max_body_bytes: 1 << 20,
            breaker: BreakerConfig::default(),
            models: Vec::new(),
            deployment_poll_ms: 2000,
            ramp: RampConfig::default(),
            llm: LlmConfig::default(),
        }
    }
}

/// Circuit-breaker thresholds, per backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures (timeouts, 5xx, connection errors) that open the circuit.
    pub failures: u32,
    /// How long an open circuit refuses requests before letting one probe through.
    pub cooldown_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            cooldown_ms: 10_000,
        }
    }
}

/// One served model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The model name in `POST /v1/predict/{name}` and in events.
    pub name: String,
    /// The production version: served outside experiments and used as the fallback.
    pub control: String,
    /// Retry a failed request (timeout, 5xx, connection error, open circuit) on `control`.
    #[serde(default = "yes")]
    pub fallback_to_control: bool,
    /// Backend timeout for this model (default: `[gateway] timeout_ms`).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    pub versions: Vec<VersionConfig>,
    /// Candidates that receive a copy of a share of the requests; their answers are stored in
    /// `shadow_responses`, never returned.
    #[serde(default)]
    pub shadows: Vec<ShadowConfig>,
    /// The protocol of the backends (`predict`, the default, or `openai`).
    #[serde(default)]
    pub api: ModelApi,
}

fn yes() -> bool {
    true
}

/// A model version and its backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionConfig {
    pub version: String,
    /// Full URL the request body is POSTed to, e.g. `http://10.0.0.2:8080/predict`; for an
    /// `api = "openai"` model the server's base URL, e.g. `http://10.0.0.4:8000/v1`.
    pub url: String,
    /// OpenAI-compatible models: the name the server knows this version by (the request's
    /// `model` is rewritten to it); default: `version`.
    #[serde(default)]
    pub backend_model: Option<String>,
    /// Price per 1,000 prompt tokens, for the recorded cost of a request.
    #[serde(default)]
    pub price_input_per_1k: Option<f64>,
    /// Price per 1,000 completion tokens.
    #[serde(default)]
    pub price_output_per_1k: Option<f64>,
    /// Whether the server accepts `stream_options` (TGI does not): when it does, a streamed
    /// request that did not ask for usage gets `include_usage` upstream and the extra usage
    /// chunk is removed from what the client receives; when not, tokens are counted.
    #[serde(default = "yes")]
    pub stream_options: bool,
}

/// A shadow candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    /// A version listed in the model's `versions`.
    pub version: String,
    /// Fraction of requests mirrored to it, in `[0, 1]`.
    pub share: f64,
}

/// Why a `[gateway]` section is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GatewayConfigError {
    #[error("[[gateway.models]] #{0} has an empty `name`")]
    EmptyModelName(usize),
    #[error("gateway model `{0}` is defined twice; model names must be unique")]
    DuplicateModel(String),
    #[error("gateway model `{0}` lists no `versions`; add at least the control version with its backend `url`")]
    NoVersions(String),
    #[error("gateway model `{model}`: version `{version}` is listed twice")]
    DuplicateVersion { model: String, version: String },
    #[error("gateway model `{model}`, version `{version}`: `{url}` is not an http:// URL")]
    BadUrl {
        model: String,
        version: String,
        url: String,
    },
    #[error("gateway model `{model}`: control `{control}` is not one of its `versions`")]
    UnknownControl { model: String, control: String },
    #[error("gateway model `{model}`: shadow `{version}` is not one of its `versions`; list it there with its backend url")]
    UnknownShadow { model: String, version: String },
    #[error("gateway model `{model}`: shadow `{version}` has share {share}; it must be in [0, 1]")]
    ShadowShare {
        model: String,
        version: String,
        share: f64,
    },
    #[error("experiment `{experiment}` (model `{model}`): arm `{arm}` serves `{version}`, which is not a version of gateway model `{model}`; add it to that model's `versions`")]
    UnknownArmVersion {
        experiment: String,
        model: String,
        arm: String,
        version: String,
    },
    #[error("[gateway] {0} must be at least 1")]
    Zero(&'static str),
    #[error("gateway model `{model}`, version `{version}`: {field} is {value}; prices must be finite and not negative")]
    BadPrice {
        model: String,
        version: String,
        field: &'static str,
        value: f64,
    },
}

impl GatewayConfig {
    /// The backend timeout of `model`.
    /// A model's backend timeout. For an `api = "openai"` model it bounds the time to the
    /// response headers and each gap between streamed chunks (a non-streamed answer: the whole
    /// answer), and without its own `timeout_ms` it is at least 60 s: generations are long.
    pub fn timeout_of(&self, model: &ModelConfig) -> std::time::Duration {
        let ms = match (model.timeout_ms, model.api) {
            (Some(ms), _) => ms,
            (None, ModelApi::Openai) => self.timeout_ms.max(60_000),
            (None, ModelApi::Predict) => self.timeout_ms,
        };
        std::time::Duration::from_millis(ms.max(1))
    }

    /// Checks the section on its own and against the experiments that name its models.
    pub fn validate(&self, experiments: &[Experiment]) -> Result<(), GatewayConfigError> {
        use GatewayConfigError as E;
        for (name, v) in [
            ("shadow_queue", self.shadow_queue),
            ("shadow_concurrency", self.shadow_concurrency),
            ("record_queue", self.record_queue),
            ("max_body_bytes", self.max_body_bytes),
        ] {
            if v == 0 {
                return Err(E::Zero(name));
            }
        }
        let mut names = HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            if m.name.trim().is_empty() {
                return Err(E::EmptyModelName(i));
            }
            if !names.insert(m.name.as_str()) {
                return Err(E::DuplicateModel(m.name.clone()));
            }
            if m.versions.is_empty() {
                return Err(E::NoVersions(m.name.clone()));
            }
            let mut versions = HashSet::new();
            for v in &m.versions {
                if !versions.insert(v.version.as_str()) {
                    return Err(E::DuplicateVersion {
                        model: m.name.clone(),
                        version: v.version.clone(),
                    });
                }
                for (field, price) in [
                    ("price_input_per_1k", v.price_input_per_1k),
                    ("price_output_per_1k", v.price_output_per_1k),
                ] {
                    if let Some(p) = price.filter(|p| !p.is_finite() || *p < 0.0) {
                        return Err(E::BadPrice {
                            model: m.name.clone(),
                            version: v.version.clone(),
                            field,
                            value: p,
                        });
                    }
                }
                if reqwest::Url::parse(&v.url)
                    .map(|u| u.scheme() != "http" && u.scheme() != "https")
                    .unwrap_or(true)
                {
                    return Err(E::BadUrl {
                        model: m.name.clone(),
                        version: v.version.clone(),
                        url: v.url.clone(),
                    });
                }
            }
            if !versions.contains(m.control.as_str()) {
                return Err(E::UnknownControl {
                    model: m.name.clone(),
                    control: m.control.clone(),
                });
            }
            for s in &m.shadows {
                if !versions.contains(s.version.as_str()) {
                    return Err(E::UnknownShadow {
                        model: m.name.clone(),
                        version: s.version.clone(),
                    });
                }
                if !(0.0..=1.0).contains(&s.share) {
                    return Err(E::ShadowShare {
                        model: m.name.clone(),
                        version: s.version.clone(),
                        share: s.share,
                    });
                }
            }
            for e in experiments
                .iter()
                .filter(|e| e.config().model.as_deref() == Some(m.name.as_str()))
            {
                for arm in e.arms() {
                    if !versions.contains(arm.model_version.as_str()) {
                        return Err(E::UnknownArmVersion {
                            experiment: e.key().to_owned(),
                            model: m.name.clone(),
                            arm: arm.name.clone(),
                            version: arm.model_version.clone(),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GatewayConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    const BASE: &str = r#"
[[models]]
name = "ranker"
control = "a"
versions = [{ version = "a", url = "http://127.0.0.1:1/p" }, { version = "b", url = "http://127.0.0.1:2/p" }]
shadows = [{ version = "b", share = 0.5 }]
"#;

    #[test]
    fn parses_and_validates() {
        let g = parse(BASE).unwrap();
        assert!(g.models[0].fallback_to_control);
        g.validate(&[]).unwrap();
        assert!(parse(&format!("{BASE}\ntypo = 1\n")).is_err());
    }

    #[test]
    fn rejects_unknown_versions() {
        let mut g = parse(BASE).unwrap();
        g.models[0].control = "z".into();
        assert!(matches!(
            g.validate(&[]),
            Err(GatewayConfigError::UnknownControl { .. })
        ));
        let g = parse(BASE).unwrap();
        let e: Experiment = serde_json::from_str(
            r#"{"key":"x","model":"ranker","arms":[{"name":"c","model_version":"a"},{"name":"t","model_version":"nope"}]}"#,
        )
        .unwrap();
        let err = g.validate(&[e]).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let mut g = parse(BASE).unwrap();
        g.models[0].versions[1].url = "ftp://x".into();
        assert!(matches!(
            g.validate(&[]),
            Err(GatewayConfigError::BadUrl { .. })
        ));
    }
}
