//! `vigil assign`: print the deterministic assignment of one unit.
//!
//! ```text
//! vigil assign --seed SEED --unit ID [--hash-version 1|2] [--weights 0.5,0.5] [--coverage 1.0] [--format json|table]
//!   → {"hash": 0.4821, "variation": 0, "in_experiment": true}
//! vigil assign --experiment KEY --unit ID [--attr country=DE]... [--format json|table]
//!   → {"hash": 0.4821, "variation": 0, "in_experiment": true, "arm": "control", "model_version": "ranker@1.4"}
//! ```
//! `variation` is `-1` when the unit is not in the experiment.

use std::fmt::Write as _;

use chrono::Utc;
use serde::Serialize;

use crate::bucket::{bucket_ranges, choose_variation, WEIGHT_SUM_TOLERANCE};
use crate::experiment::{find_experiment, Experiment};
use crate::hash::{hash, HashVersion};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// One JSON object.
    #[default]
    Json,
    /// Aligned `field  value` lines.
    Table,
}

/// Arguments of `vigil assign`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct AssignArgs {
    /// Experiment key from the `[[experiments]]` of vigil.toml (instead of --seed and friends).
    #[arg(long, conflicts_with_all = ["seed", "hash_version", "weights", "coverage"])]
    pub experiment: Option<String>,
    /// Hash seed of an ad-hoc experiment (GrowthBook: the experiment's seed, or its key).
    #[arg(long, required_unless_present = "experiment")]
    pub seed: Option<String>,
    /// Unit id to assign (user id, session id, …).
    #[arg(long)]
    pub unit: String,
    /// GrowthBook hash version: 1 (the SDK's default) or 2. [default: 1]
    #[arg(long, value_parser = parse_hash_version)]
    pub hash_version: Option<HashVersion>,
    /// Comma-separated arm weights summing to 1. [default: 0.5,0.5]
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub weights: Option<Vec<f64>>,
    /// Fraction of units enrolled, in [0, 1]. [default: 1.0]
    #[arg(long)]
    pub coverage: Option<f64>,
    /// Unit attribute for the experiment's targeting, as NAME=VALUE (repeatable).
    #[arg(long = "attr", value_name = "NAME=VALUE", value_parser = parse_attribute)]
    pub attributes: Vec<(String, String)>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    pub format: OutputFormat,
}

fn parse_hash_version(s: &str) -> Result<HashVersion, String> {
    let v: i64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a hash version: use 1 or 2"))?;
    HashVersion::try_from(v).map_err(|e| e.to_string())
}

fn parse_attribute(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not NAME=VALUE")),
    }
}

/// Errors of `vigil assign` (usage errors: the arguments are at fault).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AssignError {
    #[error("no experiment `{key}` in the configuration; known experiments: {known}")]
    UnknownExperiment { key: String, known: String },
    #[error("pass --seed SEED (ad-hoc experiment) or --experiment KEY (from vigil.toml)")]
    MissingSeed,
    #[error("--weights must list at least one weight, e.g. --weights 0.5,0.5")]
    EmptyWeights,
    #[error(
        "--weights {weights} must be finite, >= 0 and sum to 1 (within 0.99..=1.01, as GrowthBook)"
    )]
    InvalidWeights { weights: String },
    #[error("--coverage {0} is outside [0, 1]")]
    InvalidCoverage(f64),
}

#[derive(Serialize)]
struct SeedOutput {
    hash: f64,
    variation: i32,
    in_experiment: bool,
}

#[derive(Serialize)]
struct ExperimentOutput<'a> {
    hash: f64,
    variation: i32,
    in_experiment: bool,
    arm: &'a str,
    model_version: &'a str,
}

/// Runs `vigil assign` and returns what to print (no trailing newline).
pub fn run_assign(args: &AssignArgs, experiments: &[Experiment]) -> anyhow::Result<String> {
    if let Some(key) = &args.experiment {
        let experiment = find_experiment(experiments, key).ok_or_else(|| {
            let known: Vec<&str> = experiments.iter().map(Experiment::key).collect();
            AssignError::UnknownExperiment {
                key: key.clone(),
                known: if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                },
            }
        })?;
        let a = experiment.assign(&args.unit, &args.attributes[..], Utc::now());
        let out = ExperimentOutput {
            hash: a.hash,
            variation: a.variation,
            in_experiment: a.in_experiment,
            arm: a.arm,
            model_version: a.model_version,
        };
        return render(&out, args.format);
    }

    let seed = args.seed.as_deref().ok_or(AssignError::MissingSeed)?;
    let weights = args.weights.clone().unwrap_or_else(|| vec![0.5, 0.5]);
    if weights.is_empty() {
        return Err(AssignError::EmptyWeights.into());
    }
    let sum: f64 = weights.iter().sum();
    if weights.iter().any(|w| !w.is_finite() || *w < 0.0)
        || !(WEIGHT_SUM_TOLERANCE.0..=WEIGHT_SUM_TOLERANCE.1).contains(&sum)
    {
        let weights = weights
            .iter()
            .map(f64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        return Err(AssignError::InvalidWeights { weights }.into());
    }
    let coverage = args.coverage.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&coverage) {
        return Err(AssignError::InvalidCoverage(coverage).into());
    }
    let n = hash(seed, &args.unit, args.hash_version.unwrap_or_default());
    // An empty unit id is never in an experiment (GrowthBook: missing hash attribute).
    let variation = if args.unit.is_empty() {
        -1
    } else {
        choose_variation(
            n,
            &bucket_ranges(weights.len(), Some(coverage), Some(&weights)),
        )
    };
    let out = SeedOutput {
        hash: n,
        variation,
        in_experiment: variation >= 0,
    };
    render(&out, args.format)
}

/// Output in field order, for both formats.
trait Fields: Serialize {
    fn fields(&self) -> Vec<(&'static str, String)>;
}

impl Fields for SeedOutput {
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("hash", self.hash.to_string()),
            ("variation", self.variation.to_string()),
            ("in_experiment", self.in_experiment.to_string()),
        ]
    }
}

impl Fields for ExperimentOutput<'_> {
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("hash", self.hash.to_string()),
            ("variation", self.variation.to_string()),
            ("in_experiment", self.in_experiment.to_string()),
            ("arm", self.arm.to_owned()),
            ("model_version", self.model_version.to_owned()),
        ]
    }
}

fn render<T: Fields>(out: &T, format: OutputFormat) -> anyhow::Result<String> {
    match format {
        OutputFormat::Json => Ok(serde_json::to_string(out)?),
        OutputFormat::Table => {
            let fields = out.fields();
            let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            let mut s = String::new();
            for (k, v) in &fields {
                let _ = writeln!(s, "{k:<width$}  {v}");
            }
            Ok(s.trim_end().to_owned())
        }
    }
}
