//! Model specifications (from TOML) and loaded models that turn texts into outputs.

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::encoder::SentenceEncoder;
use crate::error::{Error, Result};
use crate::head::{HeadKind, LinearHead, Prediction};

/// Whether a model serves traffic or is evaluated in the shadow of the one that does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Serves live traffic; the reference of a shadow comparison.
    Production,
    /// Replayed in the shadow of production.
    Candidate,
}

/// An optional linear head on top of a sentence encoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSpec {
    /// safetensors with `weight` `[classes, dim]` and `bias` `[classes]`.
    pub path: PathBuf,
    /// JSON list of label names (or `{"labels": [...]}`), in weight-row order.
    pub labels: PathBuf,
    /// `softmax` (logistic regression) or `decision_scores` (LinearSVC).
    pub kind: HeadKind,
}

/// One model version: an encoder directory, an optional head and its role.
///
/// ```toml
/// [[model]]
/// name = "intent"
/// version = "minilm-l6+logreg"
/// role = "production"
/// path = "all-MiniLM-L6-v2"
/// head = { path = "intent-heads/logistic_regression.safetensors", labels = "intent-heads/labels.json", kind = "softmax" }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Model name (the same for production and its candidates).
    pub name: String,
    /// Version label.
    pub version: String,
    /// Directory with `config.json`, `tokenizer.json`, `model.safetensors`.
    pub path: PathBuf,
    /// Optional classification head.
    #[serde(default)]
    pub head: Option<HeadSpec>,
    /// `production` or `candidate`.
    pub role: Role,
    /// Sentences per forward pass (default 32).
    #[serde(default)]
    pub batch_size: Option<usize>,
}

impl ModelSpec {
    /// Parses one spec from a TOML table.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Registry(e.to_string()))
    }

    /// Makes relative paths relative to `base` (e.g. the models cache or the config file's folder).
    pub fn resolve_paths(mut self, base: &Path) -> Self {
        let join = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        self.path = join(&self.path);
        if let Some(head) = self.head.as_mut() {
            head.path = join(&head.path);
            head.labels = join(&head.labels);
        }
        self
    }
}

/// A set of model specs: `[[model]]` tables in TOML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// The models, in file order.
    #[serde(rename = "model", default)]
    pub models: Vec<ModelSpec>,
}

impl Registry {
    /// Parses `[[model]]` tables; relative paths are resolved against `base`. Checks that
    /// (name, version) pairs are unique and that each name has at most one production model.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self> {
        let parsed: Registry = toml::from_str(text).map_err(|e| Error::Registry(e.to_string()))?;
        Self::new(parsed.models, base)
    }

    /// Builds a registry from specs (e.g. `[[shadow.models]]` of `vigil.toml`), with the same
    /// path resolution and checks as [`Self::from_toml`].
    pub fn new(models: Vec<ModelSpec>, base: &Path) -> Result<Self> {
        let models: Vec<ModelSpec> = models.into_iter().map(|m| m.resolve_paths(base)).collect();
        for (i, m) in models.iter().enumerate() {
            for other in &models[..i] {
                if other.name == m.name && other.version == m.version {
                    return Err(Error::Registry(format!(
                        "model {} version {} is listed twice",
                        m.name, m.version
                    )));
                }
                if other.name == m.name
                    && other.role == Role::Production
                    && m.role == Role::Production
                {
                    return Err(Error::Registry(format!(
                        "model {} has two production versions ({} and {}): mark one `candidate`",
                        m.name, other.version, m.version
                    )));
                }
            }
        }
        Ok(Self { models })
    }

    /// The production spec of `name`.
    pub fn production(&self, name: &str) -> Option<&ModelSpec> {
        self.models
            .iter()
            .find(|m| m.name == name && m.role == Role::Production)
    }

    /// The candidate specs of `name`.
    pub fn candidates<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ModelSpec> + 'a {
        self.models
            .iter()
            .filter(move |m| m.name == name && m.role == Role::Candidate)
    }
}

/// Where `scripts/models/fetch.sh` installs models:
/// `${VIGIL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}/models`.
pub fn default_models_dir() -> PathBuf {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let root = non_empty("VIGIL_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| non_empty("XDG_CACHE_HOME").map(|x| PathBuf::from(x).join("vigil")))
        .or_else(|| non_empty("HOME").map(|h| PathBuf::from(h).join(".cache").join("vigil")))
        .unwrap_or_else(|| PathBuf::from(".cache").join("vigil"));
    root.join("models")
}

/// What a model produced for a list of inputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelOutputs {
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// One unit-length embedding per input.
    pub embeddings: Vec<Vec<f32>>,
    /// One prediction per input when the model has a head.
    pub predictions: Option<Vec<Prediction>>,
}

/// A spec loaded onto a device, ready to run.
#[derive(Debug)]
pub struct LoadedModel {
    spec: ModelSpec,
    encoder: SentenceEncoder,
    head: Option<LinearHead>,
}

impl LoadedModel {
    /// Loads the encoder (and head) of `spec` onto `device`.
    pub fn load(spec: &ModelSpec, device: &Device) -> Result<Self> {
        let mut encoder = SentenceEncoder::load(&spec.path, device)?;
        if let Some(batch) = spec.batch_size {
            encoder = encoder.with_batch_size(batch);
        }
        let head = match &spec.head {
            Some(h) => {
                let head = LinearHead::load(&h.path, &h.labels, h.kind, device)?;
                if head.dim() != encoder.dim() {
                    return Err(Error::InvalidFile {
                        path: h.path.clone(),
                        message: format!(
                            "head expects {}-dimensional embeddings, encoder {} gives {}",
                            head.dim(),
                            spec.path.display(),
                            encoder.dim()
                        ),
                    });
                }
                Some(head)
            }
            None => None,
        };
        Ok(Self {
            spec: spec.clone(),
            encoder,
            head,
        })
    }

    /// The spec it was loaded from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The encoder.
    pub fn encoder(&self) -> &SentenceEncoder {
        &self.encoder
    }

    /// The head, if any.
    pub fn head(&self) -> Option<&LinearHead> {
        self.head.as_ref()
    }

    /// Encodes `texts` (in batches) and applies the head.
    pub fn run<S: AsRef<str>>(&self, texts: &[S]) -> Result<ModelOutputs> {
        let embeddings = self.encoder.encode_tensor(texts)?;
        let predictions = match &self.head {
            Some(head) => Some(head.predict(&embeddings)?),
            None => None,
        };
        Ok(ModelOutputs {
            model: self.spec.name.clone(),
            version: self.spec.version.clone(),
            embeddings: embeddings.to_vec2::<f32>()?,
            predictions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
[[model]]
name = "intent"
version = "l6+logreg"
role = "production"
path = "all-MiniLM-L6-v2"
head = { path = "intent-heads/logistic_regression.safetensors", labels = "intent-heads/labels.json", kind = "softmax" }

[[model]]
name = "intent"
version = "l6+svc"
role = "candidate"
path = "/abs/all-MiniLM-L6-v2"
batch_size = 8
[model.head]
path = "intent-heads/linear_svc.safetensors"
labels = "intent-heads/labels.json"
kind = "decision_scores"
"#;

    #[test]
    fn parses_registry_and_resolves_paths() {
        let reg = Registry::from_toml(TOML, Path::new("/cache/models")).expect("parse");
        assert_eq!(reg.models.len(), 2);
        let prod = reg.production("intent").expect("production");
        assert_eq!(prod.path, Path::new("/cache/models/all-MiniLM-L6-v2"));
        let head = prod.head.as_ref().expect("head");
        assert_eq!(head.kind, HeadKind::Softmax);
        assert_eq!(
            head.labels,
            Path::new("/cache/models/intent-heads/labels.json")
        );
        let cands: Vec<_> = reg.candidates("intent").collect();
        assert_eq!(cands.len(), 1);
        assert_eq!(cands[0].path, Path::new("/abs/all-MiniLM-L6-v2"));
        assert_eq!(cands[0].batch_size, Some(8));
        assert_eq!(
            cands[0].head.as_ref().map(|h| h.kind),
            Some(HeadKind::DecisionScores)
        );
    }

    #[test]
    fn single_spec_from_toml() {
        let spec = ModelSpec::from_toml(
            "name = \"m\"\nversion = \"1\"\nrole = \"candidate\"\npath = \"dir\"\n",
        )
        .expect("spec");
        assert_eq!(spec.role, Role::Candidate);
        assert!(spec.head.is_none());
    }

    #[test]
    fn rejects_bad_registries() {
        let two_prod = TOML.replace("\"candidate\"", "\"production\"");
        let err = Registry::from_toml(&two_prod, Path::new("/")).expect_err("two production");
        assert!(err.to_string().contains("two production"), "{err}");
        let bad_role = TOML.replace("\"candidate\"", "\"canary\"");
        assert!(Registry::from_toml(&bad_role, Path::new("/")).is_err());
        let unknown = format!(
            "{TOML}\n[[model]]\nname='x'\nversion='1'\nrole='candidate'\npath='p'\ncolour='red'\n"
        );
        assert!(Registry::from_toml(&unknown, Path::new("/")).is_err());
    }

    #[test]
    fn missing_model_files_point_to_fetch_script() {
        let spec = ModelSpec::from_toml(
            "name = \"m\"\nversion = \"1\"\nrole = \"candidate\"\npath = \"/nonexistent/dir\"\n",
        )
        .expect("spec");
        let err = LoadedModel::load(&spec, &Device::Cpu).expect_err("missing");
        assert!(
            err.to_string().contains("bash scripts/models/fetch.sh"),
            "{err}"
        );
    }
}
