//! `[[monitors]]` in `vigil.toml`: what to watch, against which reference, how often.
//!
//! ```toml
//! [[monitors]]
//! name = "churn-inputs"
//! model = "churn"
//! # version = "v2"                  # default: every version of the model
//! columns = ["monthly_spend", "plan", "prediction.score", "outcome.churned"]
//! window = "1h"                     # the current window; windows are aligned to the epoch
//! min_rows = 200                    # fewer rows on either side: "insufficient_data"
//! # drift_share = 0.5               # share of drifted columns that makes the dataset drift
//! reference = { trailing = "24h" }  # or { from = "2026-11-01T00:00:00Z", to = "2026-11-08T00:00:00Z" }
//! # Tests and thresholds, Evidently's options (default: Evidently's choice per column, and the
//! # test's own threshold). Per column beats per type beats every column, for the test and,
//! # separately, for the threshold; `method` / `threshold` are older names of the first two.
//! # stattest = "psi"                          # every column
//! # stattest_threshold = 0.2
//! # num_stattest = "wasserstein"              # numerical columns
//! # num_stattest_threshold = 0.15
//! # cat_stattest = "jensenshannon"            # categorical columns
//! # cat_stattest_threshold = 0.1
//! # per_column_stattest = { plan = "psi", "prediction.score" = "ks" }
//! # per_column_stattest_threshold = { plan = 0.25 }
//! ```
//!
//! A **text monitor** adds `texts = ["input"]` (and/or `"output"`) with `sample_size`,
//! `encoder` and `embedding_method` / `embedding_*` options (see `monitor::text`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::MonitorError;
use crate::drift::{ColumnKind, ColumnStattest, Stattest, StattestOptions, DEFAULT_DRIFT_SHARE};

/// Numerical columns with more distinct values than this (over reference ∪ current) are
/// rounded to [`DEFAULT_FINE_BINS`] equal-width bins in SQL instead of counted exactly, so a
/// continuous feature never ships millions of `(value, count)` pairs out of ClickHouse.
pub const DEFAULT_MAX_DISTINCT: u64 = 20_000;
/// Number of fine bins used when a column exceeds its distinct-value budget.
pub const DEFAULT_FINE_BINS: u64 = 10_000;

/// One monitor as configured.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    pub name: String,
    pub model: String,
    /// Empty or absent: every version of the model.
    #[serde(default)]
    pub version: Option<String>,
    /// Feature names, `prediction.score`, or `outcome.NAME` (outcome events of the model). For a
    /// health monitor: the features whose missing share is checked.
    #[serde(default)]
    pub columns: Vec<String>,
    /// The period compared against (drift monitors; a health monitor has none).
    #[serde(default)]
    pub reference: ReferenceConfig,
    /// Length of the current window, e.g. `"1h"`, `"15m"`, `"1d"`.
    pub window: String,
    /// Rows needed on each side of a column before it is judged.
    #[serde(default = "default_min_rows")]
    pub min_rows: u64,
    /// Drift test for every column (default: Evidently's choice per column); `method` is the
    /// older key.
    #[serde(default, alias = "method", skip_serializing_if = "Option::is_none")]
    pub stattest: Option<String>,
    /// Threshold for every column (default: the test's); `threshold` is the older key.
    #[serde(default, alias = "threshold", skip_serializing_if = "Option::is_none")]
    pub stattest_threshold: Option<f64>,
    /// Test for numerical columns (over `stattest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_stattest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_stattest_threshold: Option<f64>,
    /// Test for categorical columns (over `stattest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cat_stattest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cat_stattest_threshold: Option<f64>,
    /// Test per column (over every other), keys from `columns`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_column_stattest: BTreeMap<String, String>,
    /// Threshold per column (over every other), keys from `columns`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_column_stattest_threshold: BTreeMap<String, f64>,
    #[serde(default = "default_drift_share")]
    pub drift_share: f64,
    /// Distinct numerical values above which counts are binned in SQL.
    #[serde(default = "default_max_distinct")]
    pub max_distinct: u64,
    /// Present: a health monitor (latency, errors, ingest lag, missing values, accuracy,
    /// fairness) instead of a drift monitor. See `monitor::health`.
    #[serde(default)]
    pub health: Option<super::health::HealthChecks>,
    /// Text columns judged by their embeddings and descriptors (a **text monitor**): `input`
    /// (the prompt) and/or `output` (the LLM gateway's response). See `monitor::text`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<String>,
    /// Texts sampled per side and window (default [`super::text::DEFAULT_SAMPLE_SIZE`]): the
    /// events with the smallest `cityHash64(event_id)`, so a window always gets the same sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_size: Option<u64>,
    /// Sentence-transformers model directory (default: all-MiniLM-L6-v2 in the models cache of
    /// `scripts/models/fetch.sh`, as `vigil drift --encoder`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<String>,
    /// Embedding drift method and Evidently's options for it, named as `vigil drift
    /// --embedding-*` (default method for monitors: `distance`; see docs/analyzer.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_dist: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub embedding_bootstrap: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_quantile_probability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_pca_components: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_component_stattest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_component_stattest_threshold: Option<f64>,
}

impl Default for MonitorConfig {
    /// The serde defaults, with empty `name`, `model` and `window` (fill them in).
    fn default() -> Self {
        MonitorConfig {
            name: String::new(),
            model: String::new(),
            version: None,
            columns: Vec::new(),
            reference: ReferenceConfig::default(),
            window: String::new(),
            min_rows: default_min_rows(),
            stattest: None,
            stattest_threshold: None,
            num_stattest: None,
            num_stattest_threshold: None,
            cat_stattest: None,
            cat_stattest_threshold: None,
            per_column_stattest: BTreeMap::new(),
            per_column_stattest_threshold: BTreeMap::new(),
            drift_share: default_drift_share(),
            max_distinct: default_max_distinct(),
            health: None,
            texts: Vec::new(),
            sample_size: None,
            encoder: None,
            embedding_method: None,
            embedding_dist: None,
            embedding_threshold: None,
            embedding_bootstrap: false,
            embedding_quantile_probability: None,
            embedding_pca_components: None,
            embedding_component_stattest: None,
            embedding_component_stattest_threshold: None,
        }
    }
}

fn default_min_rows() -> u64 {
    100
}
fn default_drift_share() -> f64 {
    DEFAULT_DRIFT_SHARE
}
fn default_max_distinct() -> u64 {
    DEFAULT_MAX_DISTINCT
}

/// The period current windows are compared against.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceConfig {
    /// Fixed period start (RFC 3339), with `to`.
    #[serde(default)]
    pub from: Option<String>,
    /// Fixed period end (RFC 3339, exclusive).
    #[serde(default)]
    pub to: Option<String>,
    /// Trailing period right before each window, e.g. `"24h"`.
    #[serde(default)]
    pub trailing: Option<String>,
    /// A training snapshot: CSV with a header row naming the monitored columns (path relative
    /// to the working directory). See `monitor::snapshot`.
    #[serde(default)]
    pub file: Option<String>,
}

/// Where a monitored column's values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnRef {
    /// A feature of the inference events (numerical or categorical, decided by the data).
    Feature(String),
    /// `prediction.score`.
    Score,
    /// `outcome.NAME`: values of outcome events named NAME for the model.
    Outcome(String),
}

impl ColumnRef {
    pub fn parse(column: &str) -> ColumnRef {
        if column == "prediction.score" {
            ColumnRef::Score
        } else if let Some(name) = column.strip_prefix("outcome.") {
            ColumnRef::Outcome(name.to_string())
        } else {
            ColumnRef::Feature(column.to_string())
        }
    }
}

/// A reference period resolved for one window, unix seconds `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    pub from: u32,
    pub to: u32,
}

/// Parses `"90s"`, `"15m"`, `"1h"`, `"7d"` (or a bare number of seconds) into seconds.
pub fn parse_duration(text: &str) -> Result<u32, MonitorError> {
    let t = text.trim();
    let bad = || {
        MonitorError::Config(format!(
            "`{text}` is not a duration; write e.g. \"90s\", \"15m\", \"1h\" or \"7d\""
        ))
    };
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(mult).ok_or_else(bad)?;
    if secs == 0 || secs > u32::MAX as u64 {
        return Err(bad());
    }
    Ok(secs as u32)
}

fn parse_time(field: &str, text: &str) -> Result<u32, MonitorError> {
    let t = chrono::DateTime::parse_from_rfc3339(text.trim()).map_err(|e| {
        MonitorError::Config(format!(
            "{field} = \"{text}\" is not an RFC 3339 time ({e}); write e.g. 2026-11-01T00:00:00Z"
        ))
    })?;
    u32::try_from(t.timestamp())
        .map_err(|_| MonitorError::Config(format!("{field} = \"{text}\" is out of range")))
}

impl MonitorConfig {
    /// Checks everything that can be checked without data; the error names the monitor.
    pub fn validate(&self) -> Result<(), MonitorError> {
        let ctx = |e: MonitorError| {
            let e = match e {
                MonitorError::Config(m) => m,
                other => other.to_string(),
            };
            MonitorError::Config(format!("monitor `{}`: {e}", self.name))
        };
        if self.name.trim().is_empty() {
            return Err(MonitorError::Config("a monitor needs a `name`".into()));
        }
        if self.model.trim().is_empty() {
            return Err(ctx(MonitorError::Config("`model` is empty".into())));
        }
        if let Some(h) = &self.health {
            if !self.texts.is_empty() || self.has_text_options() {
                return Err(ctx(MonitorError::Config(
                    "a health monitor has no `texts`; put text drift in a monitor of its own"
                        .into(),
                )));
            }
            self.window_secs().map_err(ctx)?;
            h.validate(&self.columns).map_err(ctx)?;
            if self.reference != ReferenceConfig::default() {
                return Err(ctx(MonitorError::Config(
                    "a health monitor has no `reference`; its checks are absolute thresholds"
                        .into(),
                )));
            }
            return Ok(());
        }
        if self.columns.is_empty() && self.texts.is_empty() {
            return Err(ctx(MonitorError::Config(
                "`columns` is empty; list feature names, prediction.score or outcome.NAME (or `texts = [\"input\"]` for a text monitor)".into(),
            )));
        }
        if self.texts.is_empty() && self.has_text_options() {
            return Err(ctx(MonitorError::Config(
                "sample_size, encoder and embedding_* apply to text monitors; add `texts = [\"input\"]` (or \"output\")".into(),
            )));
        }
        super::text::validate(self).map_err(ctx)?;
        self.window_secs().map_err(ctx)?;
        self.reference_period(u32::MAX).map_err(ctx)?;
        let stattests = self.stattests().map_err(ctx)?;
        let descriptor_columns = super::text::descriptor_columns(&self.texts);
        stattests
            .check_columns(
                self.columns
                    .iter()
                    .map(String::as_str)
                    .chain(descriptor_columns.iter().map(String::as_str)),
                |l, t| l.key(t).to_string(),
            )
            .map_err(|e| ctx(MonitorError::Config(e)))?;
        if !(self.drift_share > 0.0 && self.drift_share <= 1.0) {
            return Err(ctx(MonitorError::Config(format!(
                "drift_share {} must be in (0, 1]",
                self.drift_share
            ))));
        }
        if self.max_distinct < 2 {
            return Err(ctx(MonitorError::Config(
                "max_distinct must be at least 2".into(),
            )));
        }
        Ok(())
    }

    /// Whether any text-monitor key other than `texts` is set.
    pub fn has_text_options(&self) -> bool {
        self.sample_size.is_some()
            || self.encoder.is_some()
            || self.embedding_method.is_some()
            || self.embedding_dist.is_some()
            || self.embedding_threshold.is_some()
            || self.embedding_bootstrap
            || self.embedding_quantile_probability.is_some()
            || self.embedding_pca_components.is_some()
            || self.embedding_component_stattest.is_some()
            || self.embedding_component_stattest_threshold.is_some()
    }

    pub fn window_secs(&self) -> Result<u32, MonitorError> {
        parse_duration(&self.window)
    }

    /// The test and threshold options, parsed and checked (names, thresholds, per-type tests;
    /// not yet the per-column keys against `columns`, which [`MonitorConfig::validate`] does).
    pub fn stattests(&self) -> Result<StattestOptions, MonitorError> {
        let parse = |key: &str, name: &str| {
            Stattest::parse(name).map_err(|e| MonitorError::Config(format!("{key}: {e}")))
        };
        let opt = |key: &str, name: &Option<String>| -> Result<Option<Stattest>, MonitorError> {
            match name.as_deref().map(str::trim) {
                // an empty `stattest` is no choice at all, as before
                None | Some("") => Ok(None),
                Some(n) => parse(key, n).map(Some),
            }
        };
        let mut per_column = BTreeMap::new();
        for (col, name) in &self.per_column_stattest {
            per_column.insert(
                col.clone(),
                parse(&format!("per_column_stattest.{col}"), name)?,
            );
        }
        let options = StattestOptions {
            stattest: opt("stattest", &self.stattest)?.filter(|s| *s != Stattest::Auto),
            stattest_threshold: self.stattest_threshold,
            num_stattest: opt("num_stattest", &self.num_stattest)?,
            num_stattest_threshold: self.num_stattest_threshold,
            cat_stattest: opt("cat_stattest", &self.cat_stattest)?,
            cat_stattest_threshold: self.cat_stattest_threshold,
            per_column_stattest: per_column,
            per_column_stattest_threshold: self.per_column_stattest_threshold.clone(),
        };
        options
            .check(|l, t| l.key(t).to_string())
            .map_err(MonitorError::Config)?;
        Ok(options)
    }

    /// The test and threshold of `column`, whose data turned out to be of type `kind`, under
    /// `options` (from [`MonitorConfig::stattests`]). A test the type cannot take is a
    /// configuration error naming the monitor, the column, the test and the key that chose it.
    pub fn column_stattest(
        &self,
        options: &StattestOptions,
        column: &str,
        kind: ColumnKind,
    ) -> Result<ColumnStattest, MonitorError> {
        options.resolve_checked(column, kind).map_err(|e| {
            MonitorError::Config(format!(
                "monitor `{}`: {}",
                self.name,
                e.message(e.from.key(false))
            ))
        })
    }

    /// The version filter: `None` for every version.
    pub fn version_filter(&self) -> Option<&str> {
        self.version.as_deref().filter(|v| !v.trim().is_empty())
    }

    /// The reference period for a current window starting at `window_start`.
    pub fn reference_period(&self, window_start: u32) -> Result<Period, MonitorError> {
        let r = &self.reference;
        if r.file.is_some() {
            if r.from.is_some() || r.to.is_some() || r.trailing.is_some() {
                return Err(MonitorError::Config(
                    "reference.file cannot be combined with from/to or trailing".into(),
                ));
            }
            // The reference comes from the file; no period of events is read for it.
            return Ok(Period { from: 0, to: 0 });
        }
        match (&r.from, &r.to, &r.trailing) {
            (Some(from), Some(to), None) => {
                let (from, to) = (
                    parse_time("reference.from", from)?,
                    parse_time("reference.to", to)?,
                );
                if from >= to {
                    return Err(MonitorError::Config(
                        "reference.from must be before reference.to".into(),
                    ));
                }
                Ok(Period { from, to })
            }
            (None, None, Some(trailing)) => {
                let len = parse_duration(trailing)?;
                Ok(Period {
                    from: window_start.saturating_sub(len),
                    to: window_start,
                })
            }
            _ => Err(MonitorError::Config(
                "reference needs `from` and `to` (RFC 3339), `trailing` (e.g. \"24h\") or `file` (CSV snapshot)"
                    .into(),
            )),
        }
    }
}

/// Checks a set of monitors: each valid, names unique.
pub fn validate_monitors(monitors: &[MonitorConfig]) -> Result<(), MonitorError> {
    let mut seen = std::collections::BTreeSet::new();
    for m in monitors {
        m.validate()?;
        if !seen.insert(m.name.as_str()) {
            return Err(MonitorError::Config(format!(
                "two monitors are named `{}`; names must be unique",
                m.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor(toml_text: &str) -> Result<MonitorConfig, String> {
        toml_from(toml_text)
    }

    fn toml_from(text: &str) -> Result<MonitorConfig, String> {
        // The analyzer has no TOML dependency; JSON exercises the same serde attributes.
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert_eq!(parse_duration("15m").unwrap(), 900);
        assert_eq!(parse_duration("1h").unwrap(), 3600);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        assert_eq!(parse_duration("60").unwrap(), 60);
        assert!(parse_duration("0h").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("1 fortnight").is_err());
    }

    #[test]
    fn columns_parse() {
        assert_eq!(ColumnRef::parse("prediction.score"), ColumnRef::Score);
        assert_eq!(
            ColumnRef::parse("outcome.churned"),
            ColumnRef::Outcome("churned".into())
        );
        assert_eq!(ColumnRef::parse("plan"), ColumnRef::Feature("plan".into()));
    }

    #[test]
    fn reference_periods_and_validation() {
        let m = monitor(
            r#"{"name":"m","model":"churn","columns":["plan"],"window":"1h",
                "reference":{"trailing":"24h"}}"#,
        )
        .unwrap();
        m.validate().unwrap();
        assert_eq!(m.min_rows, 100);
        assert_eq!(
            m.reference_period(100_000).unwrap(),
            Period {
                from: 13_600,
                to: 100_000
            }
        );
        let fixed = monitor(
            r#"{"name":"m","model":"churn","columns":["plan"],"window":"1h",
                "reference":{"from":"2026-11-01T00:00:00Z","to":"2026-11-02T00:00:00Z"}}"#,
        )
        .unwrap();
        let p = fixed.reference_period(0).unwrap();
        assert_eq!(p.to - p.from, 86_400);
        let both = monitor(
            r#"{"name":"m","model":"churn","columns":["plan"],"window":"1h",
                "reference":{"from":"2026-11-01T00:00:00Z","trailing":"1h"}}"#,
        )
        .unwrap();
        assert!(both
            .validate()
            .unwrap_err()
            .to_string()
            .contains("monitor `m`"));
        let bad_method = monitor(
            r#"{"name":"m","model":"churn","columns":["plan"],"window":"1h","method":"magic",
                "reference":{"trailing":"1h"}}"#,
        )
        .unwrap();
        assert!(bad_method.validate().is_err());
        assert!(monitor(
            r#"{"name":"m","model":"c","columns":[],"window":"1h","reference":{},"oops":1}"#
        )
        .is_err());
        let dup = vec![m.clone(), m];
        assert!(validate_monitors(&dup)
            .unwrap_err()
            .to_string()
            .contains("unique"));
    }

    fn drift_monitor(extra: &str) -> Result<MonitorConfig, String> {
        monitor(&format!(
            r#"{{"name":"m","model":"churn","columns":["spend","plan","prediction.score"],
                "window":"1h","reference":{{"trailing":"24h"}}{extra}}}"#
        ))
    }

    #[test]
    fn stattest_keys_and_their_old_names() {
        use crate::drift::DriftTest;
        // `method` / `threshold` are the older names of `stattest` / `stattest_threshold`
        let old = drift_monitor(r#","method":"psi","threshold":0.2"#).unwrap();
        let new = drift_monitor(r#","stattest":"psi","stattest_threshold":0.2"#).unwrap();
        assert_eq!(old, new);
        assert_eq!(old.stattest.as_deref(), Some("psi"));
        let o = old.stattests().unwrap();
        assert_eq!(o.stattest, Some(Stattest::Test(DriftTest::Psi)));
        assert_eq!(o.stattest_threshold, Some(0.2));
        // both names at once is one key given twice
        assert!(drift_monitor(r#","method":"psi","stattest":"ks""#).is_err());
        // `auto` (or nothing) for every column is Evidently's choice
        assert_eq!(
            drift_monitor(r#","stattest":"auto""#)
                .unwrap()
                .stattests()
                .unwrap(),
            StattestOptions::default()
        );
        let m = drift_monitor(
            r#","stattest":"hellinger","stattest_threshold":0.3,
                "num_stattest":"wasserstein","num_stattest_threshold":0.15,
                "cat_stattest":"kl_div",
                "per_column_stattest":{"prediction.score":"ks","plan":"auto"},
                "per_column_stattest_threshold":{"plan":0.05}"#,
        )
        .unwrap();
        m.validate().unwrap();
        let o = m.stattests().unwrap();
        let num = ColumnKind::Numerical;
        let cat = ColumnKind::Categorical;
        let spend = m.column_stattest(&o, "spend", num).unwrap();
        assert_eq!(
            (spend.test, spend.threshold),
            (Some(DriftTest::WassersteinNormed), Some(0.15))
        );
        let score = m.column_stattest(&o, "prediction.score", num).unwrap();
        assert_eq!(
            (score.test, score.threshold),
            (Some(DriftTest::KolmogorovSmirnov), Some(0.15))
        );
        let plan = m.column_stattest(&o, "plan", cat).unwrap();
        assert_eq!((plan.test, plan.threshold), (None, Some(0.05)));
        // a feature whose data is categorical, but whose per-column test is numerical-only
        let e = m
            .column_stattest(&o, "prediction.score", cat)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("monitor `m`")
                && e.contains("`prediction.score`")
                && e.contains("`ks`")
                && e.contains("per_column_stattest"),
            "{e}"
        );
        // a global numerical-only test reaching a categorical column
        let m = drift_monitor(r#","stattest":"ks""#).unwrap();
        m.validate().unwrap();
        let o = m.stattests().unwrap();
        let e = m.column_stattest(&o, "plan", cat).unwrap_err().to_string();
        assert!(e.contains("`plan`") && e.contains("from stattest"), "{e}");
    }

    #[test]
    fn stattest_keys_are_checked_at_load() {
        let err = |extra: &str| {
            drift_monitor(extra)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        let e = err(r#","per_column_stattest":{"spnd":"psi"}"#);
        assert!(
            e.contains("monitor `m`") && e.contains("per_column_stattest") && e.contains("`spnd`"),
            "{e}"
        );
        assert!(e.contains("plan, prediction.score, spend"), "{e}");
        let e = err(r#","per_column_stattest_threshold":{"outcome.x":0.1}"#);
        assert!(
            e.contains("per_column_stattest_threshold names column `outcome.x`"),
            "{e}"
        );
        let e = err(r#","num_stattest":"chisquare""#);
        assert!(
            e.contains("num_stattest `chisquare`") && e.contains("numerical"),
            "{e}"
        );
        let e = err(r#","cat_stattest":"wasserstein""#);
        assert!(e.contains("cat_stattest `wasserstein`"), "{e}");
        let e = err(r#","cat_stattest":"magic""#);
        assert!(e.contains("cat_stattest") && e.contains("`magic`"), "{e}");
        let e = err(r#","per_column_stattest":{"plan":"magic"}"#);
        assert!(e.contains("per_column_stattest.plan"), "{e}");
        let e = err(r#","per_column_stattest_threshold":{"plan":-0.1}"#);
        assert!(
            e.contains("per_column_stattest_threshold for `plan`"),
            "{e}"
        );
        let e = err(r#","threshold":-1"#);
        assert!(e.contains("stattest_threshold") && e.contains("-1"), "{e}");
        let e = err(r#","num_stattest_threshold":-2"#);
        assert!(e.contains("num_stattest_threshold"), "{e}");
    }
}
