//! vigil-experimenter: deterministic, GrowthBook-compatible assignment of units (users,
//! sessions, requests) to the model versions under test in an A/B experiment.
//!
//! Assignment is a pure function of the experiment definition and the unit id: the same unit
//! always gets the same arm, on every machine, and exactly the arm GrowthBook's SDKs would give
//! it for the same experiment (FNV-1a 32-bit over UTF-16 code units, hash versions 1 and 2,
//! GrowthBook's bucket ranges, coverage and namespaces). Nothing here does I/O.
//!
//! - module [`hash`]: GrowthBook's `hash(seed, value, version)`.
//! - module [`bucket`]: `getBucketRanges`, `chooseVariation`, `getEqualWeights`.
//! - module [`namespace`]: `inNamespace`.
//! - module [`experiment`]: the [`Experiment`] read from `[[experiments]]` in `vigil.toml`,
//!   its validation and [`Experiment::assign`].
//! - module [`cli`]: `vigil assign`.
//! - module [`gateway`]: the HTTP gateway (routing by assignment, shadow mirroring, fallback,
//!   hot reload). The only module that does I/O.
//!
//! ```
//! use vigil_experimenter::{Experiment, NoAttributes};
//!
//! let experiment: Experiment = serde_json::from_str(r#"{
//!     "key": "ranker-v2",
//!     "hash_version": 2,
//!     "arms": [
//!         {"name": "control",   "model_version": "ranker@1.4", "weight": 0.5},
//!         {"name": "treatment", "model_version": "ranker@2.0", "weight": 0.5}
//!     ]
//! }"#).expect("valid experiment");
//!
//! let a = experiment.assign("user-42", &NoAttributes, chrono::Utc::now());
//! assert!(a.in_experiment);
//! // Deterministic: the same unit always gets the same arm.
//! assert_eq!(a, experiment.assign("user-42", &NoAttributes, chrono::Utc::now()));
//! assert_eq!(vigil_experimenter::hash::hash("ranker-v2", "user-42", vigil_experimenter::HashVersion::V2), a.hash);
//! ```

pub mod ab_cli;
pub mod analysis;
pub mod bucket;
pub mod cli;
pub mod experiment;
pub mod gateway;
pub mod hash;
pub mod mlflow;
pub mod namespace;
pub mod promote_cli;
pub mod promotion;
/// A simulated OpenAI-compatible LLM server for the gateway's demo, tests and benchmarks.
pub mod simulated_llm;
pub mod stats;
pub mod warehouse;

pub use bucket::{bucket_ranges, choose_variation, equal_weights, BucketRange};
pub use cli::{run_assign, AssignArgs, AssignError, OutputFormat};
pub use experiment::{
    find_experiment, validate_experiments, Arm, Assignment, Attributes, Condition, Experiment,
    ExperimentConfig, ExperimentError, NoAttributes, Reason, Status,
};
pub use hash::{HashVersion, UnknownHashVersion};
pub use namespace::{in_namespace, Namespace};
