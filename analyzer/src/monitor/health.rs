//! Health monitors: the service-level side of a model, per window — p95 latency, error rate,
//! ingest lag, missing feature values, accuracy on labelled outcomes and the fairness gap.
//!
//! A monitor with a `health` table in `[[monitors]]` is a health monitor. Each configured check
//! becomes one `monitor_results` row per window (`column` = the check, `method` = `max` or
//! `min`: which side of `threshold` breaches), so the alert engine, the history and the
//! dashboards treat it like any other monitor. ClickHouse reduces the window to a handful of
//! numbers ([`HealthStats`], one or three queries, read with `FINAL` so replayed events count
//! once); [`judge`] is a pure function of those numbers.
//!
//! ```toml
//! [[monitors]]
//! name = "churn-health"
//! model = "churn"
//! window = "5m"
//! min_rows = 50                        # fewer events in the window: insufficient_data
//! columns = ["monthly_spend", "plan"]  # features whose missing share is checked
//! health = { latency_p95_ms = 250, error_rate = 0.02, ingest_lag_p95 = "2m",
//!            missing_share = 0.05, accuracy_min = 0.8, label_outcome = "label",
//!            fairness_gap = 0.1, sensitive_attribute = "gender" }
//! ```
//!
//! Definitions (docs/alerting.md § Health monitors):
//! - **error rate**: the share of inference events without a prediction (neither `score` nor
//!   `label`): what the gateway records for a request no backend answered, and what a serving
//!   system logs with `"error": "…"` instead of a prediction;
//! - **ingest lag**: `ingested_at − ts` (seconds), p95 — how far behind the store is;
//! - **accuracy**: labelled predictions (an outcome named `label_outcome` pointing at the
//!   inference by `inference_id`) whose numeric label equals the outcome value;
//! - **fairness gap**: the largest difference in selection rate (label `1`/`true`/`yes`, or
//!   score ≥ 0.5 without a label) between groups of `sensitive_attribute` with at least
//!   `min_rows` events each (demographic parity difference, as Fairlearn defines it).

use serde::{Deserialize, Serialize};
use vigil_store::{sql_string, Store};

use super::config::parse_duration;
use super::pushdown::Reduction;
use super::{ColumnResult, MonitorConfig, MonitorError, MonitorRun, Period, Verdict};

/// The `health` table of a `[[monitors]]` entry; every check is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthChecks {
    /// Breach when the window's p95 latency (ms) exceeds this.
    #[serde(default)]
    pub latency_p95_ms: Option<f64>,
    /// Breach when the share of failed inferences exceeds this (0–1).
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// Breach when p95 of `ingested_at − ts` exceeds this duration (e.g. `"2m"`).
    #[serde(default)]
    pub ingest_lag_p95: Option<String>,
    /// Breach when any of the monitor's `columns` is missing in more than this share of events.
    #[serde(default)]
    pub missing_share: Option<f64>,
    /// Breach when accuracy on labelled outcomes falls below this (0–1).
    #[serde(default)]
    pub accuracy_min: Option<f64>,
    /// Outcome name that carries the true label (default `label`).
    #[serde(default)]
    pub label_outcome: Option<String>,
    /// Breach when the selection-rate gap between groups exceeds this (0–1).
    #[serde(default)]
    pub fairness_gap: Option<f64>,
    /// Attribute whose values form the groups of `fairness_gap`.
    #[serde(default)]
    pub sensitive_attribute: Option<String>,
}

/// Check names as stored in `monitor_results.column`.
pub const LATENCY: &str = "latency_p95_ms";
pub const ERROR_RATE: &str = "error_rate";
pub const INGEST_LAG: &str = "ingest_lag_p95_s";
pub const ACCURACY: &str = "accuracy";
/// `missing_share:<feature>`.
pub const MISSING_PREFIX: &str = "missing_share:";
/// `fairness_gap:<attribute>`.
pub const FAIRNESS_PREFIX: &str = "fairness_gap:";

/// Breach side of a check, stored as `method`.
pub const ABOVE: &str = "max";
pub const BELOW: &str = "min";

impl HealthChecks {
    /// Checks the values; the error says which key is wrong.
    pub fn validate(&self, columns: &[String]) -> Result<(), MonitorError> {
        let share = |key: &str, v: Option<f64>| match v {
            Some(x) if !(x.is_finite() && (0.0..=1.0).contains(&x)) => Err(MonitorError::Config(
                format!("health.{key} = {x} must be a share between 0 and 1"),
            )),
            _ => Ok(()),
        };
        share("error_rate", self.error_rate)?;
        share("missing_share", self.missing_share)?;
        share("accuracy_min", self.accuracy_min)?;
        share("fairness_gap", self.fairness_gap)?;
        if let Some(ms) = self.latency_p95_ms {
            if !(ms.is_finite() && ms > 0.0) {
                return Err(MonitorError::Config(format!(
                    "health.latency_p95_ms = {ms} must be a positive number of milliseconds"
                )));
            }
        }
        if let Some(lag) = &self.ingest_lag_p95 {
            parse_duration(lag)
                .map_err(|e| MonitorError::Config(format!("health.ingest_lag_p95: {e}")))?;
        }
        if self.missing_share.is_some() && columns.is_empty() {
            return Err(MonitorError::Config(
                "health.missing_share needs `columns`: the features whose missing share is checked"
                    .into(),
            ));
        }
        if self.fairness_gap.is_some()
            != self
                .sensitive_attribute
                .as_deref()
                .is_some_and(|a| !a.trim().is_empty())
        {
            return Err(MonitorError::Config(
                "health.fairness_gap and health.sensitive_attribute go together".into(),
            ));
        }
        let any = self.latency_p95_ms.is_some()
            || self.error_rate.is_some()
            || self.ingest_lag_p95.is_some()
            || self.missing_share.is_some()
            || self.accuracy_min.is_some()
            || self.fairness_gap.is_some();
        if !any {
            return Err(MonitorError::Config(
                "`health` sets no check; give latency_p95_ms, error_rate, ingest_lag_p95, \
                 missing_share, accuracy_min or fairness_gap"
                    .into(),
            ));
        }
        Ok(())
    }

    fn lag_secs(&self) -> Option<f64> {
        self.ingest_lag_p95
            .as_deref()
            .and_then(|l| parse_duration(l).ok())
            .map(f64::from)
    }
}

/// What ClickHouse reduces one window to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HealthStats {
    /// Inference events in the window (after dedup).
    pub rows: u64,
    /// Of them, without a prediction.
    pub errors: u64,
    /// Of them, with a latency.
    pub timed: u64,
    pub latency_p95_ms: f64,
    pub ingest_lag_p95_s: f64,
    /// Per configured column: events in which the feature is absent.
    pub missing: Vec<(String, u64)>,
    /// Predictions with a true label, and how many were right.
    pub labelled: u64,
    pub correct: u64,
    /// Per group of the sensitive attribute: (value, events, selected).
    pub groups: Vec<(String, u64, u64)>,
}

fn check(
    column: String,
    method: &str,
    score: f64,
    threshold: f64,
    rows: u64,
    min_rows: u64,
) -> ColumnResult {
    let verdict = if rows < min_rows.max(1) {
        Verdict::InsufficientData
    } else if (method == ABOVE && score > threshold) || (method == BELOW && score < threshold) {
        Verdict::Drift
    } else {
        Verdict::Ok
    };
    ColumnResult {
        column,
        verdict,
        method: method.to_string(),
        score: if verdict == Verdict::InsufficientData {
            0.0
        } else {
            score
        },
        threshold,
        reference_rows: 0,
        current_rows: rows,
        reduction: Reduction::Exact,
    }
}

fn share(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Judges one window's numbers against the checks: one result per configured check, in a
/// fixed order. A check with fewer than `min_rows` events behind it is `insufficient_data`.
pub fn judge(checks: &HealthChecks, stats: &HealthStats, min_rows: u64) -> Vec<ColumnResult> {
    let mut out = Vec::new();
    if let Some(t) = checks.latency_p95_ms {
        out.push(check(
            LATENCY.into(),
            ABOVE,
            stats.latency_p95_ms,
            t,
            stats.timed,
            min_rows,
        ));
    }
    if let Some(t) = checks.error_rate {
        out.push(check(
            ERROR_RATE.into(),
            ABOVE,
            share(stats.errors, stats.rows),
            t,
            stats.rows,
            min_rows,
        ));
    }
    if let Some(t) = checks.lag_secs() {
        out.push(check(
            INGEST_LAG.into(),
            ABOVE,
            stats.ingest_lag_p95_s,
            t,
            stats.rows,
            min_rows,
        ));
    }
    if let Some(t) = checks.missing_share {
        for (name, missing) in &stats.missing {
            out.push(check(
                format!("{MISSING_PREFIX}{name}"),
                ABOVE,
                share(*missing, stats.rows),
                t,
                stats.rows,
                min_rows,
            ));
        }
    }
    if let Some(t) = checks.accuracy_min {
        out.push(check(
            ACCURACY.into(),
            BELOW,
            share(stats.correct, stats.labelled),
            t,
            stats.labelled,
            min_rows,
        ));
    }
    if let (Some(t), Some(attr)) = (checks.fairness_gap, checks.sensitive_attribute.as_deref()) {
        let rates: Vec<f64> = stats
            .groups
            .iter()
            .filter(|(_, n, _)| *n >= min_rows.max(1))
            .map(|(_, n, k)| share(*k, *n))
            .collect();
        let judged: u64 = stats
            .groups
            .iter()
            .filter(|(_, n, _)| *n >= min_rows.max(1))
            .map(|(_, n, _)| n)
            .sum();
        let gap = match (
            rates.iter().copied().reduce(f64::max),
            rates.iter().copied().reduce(f64::min),
        ) {
            (Some(hi), Some(lo)) => hi - lo,
            _ => 0.0,
        };
        // Two groups are needed for a gap: with one, the check has nothing to compare.
        let rows = if rates.len() >= 2 { judged } else { 0 };
        out.push(check(
            format!("{FAIRNESS_PREFIX}{attr}"),
            ABOVE,
            gap,
            t,
            rows,
            min_rows,
        ));
    }
    out
}

/// The window's rows as a [`MonitorRun`]: the dataset verdict is `drift` when any check
/// breaches, `insufficient_data` when none could be judged.
pub fn run_of(
    monitor: &MonitorConfig,
    checks: &HealthChecks,
    stats: &HealthStats,
    current: Period,
    run_at: u32,
) -> MonitorRun {
    let columns = judge(checks, stats, monitor.min_rows);
    let judged = columns
        .iter()
        .filter(|c| c.verdict != Verdict::InsufficientData)
        .count();
    let breached = columns
        .iter()
        .filter(|c| c.verdict == Verdict::Drift)
        .count();
    let verdict = if judged == 0 {
        Verdict::InsufficientData
    } else if breached > 0 {
        Verdict::Drift
    } else {
        Verdict::Ok
    };
    MonitorRun {
        monitor: monitor.name.clone(),
        model: monitor.model.clone(),
        version: monitor.version_filter().unwrap_or_default().to_string(),
        run_at,
        window_start: current.from,
        window_end: current.to,
        reference: current,
        verdict,
        drift_share: share(breached as u64, judged as u64),
        // Any breached check makes the window unhealthy.
        drift_share_threshold: f64::MIN_POSITIVE,
        columns,
        health: true,
        examples: Vec::new(),
    }
}

#[derive(clickhouse::Row, Deserialize)]
struct ServingRow {
    rows: u64,
    errors: u64,
    timed: u64,
    latency_p95: f64,
    lag_p95: f64,
    missing: Vec<u64>,
}

#[derive(clickhouse::Row, Deserialize)]
struct AccuracyRow {
    labelled: u64,
    correct: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct GroupRow {
    g: String,
    n: u64,
    selected: u64,
}

/// Reads the window's numbers from the store (inference events read with `FINAL`).
pub async fn window_stats(
    store: &Store,
    monitor: &MonitorConfig,
    checks: &HealthChecks,
    current: Period,
) -> Result<HealthStats, MonitorError> {
    let table = store.table("inference_events");
    let mut filter = format!(
        "model = {} AND ts >= toDateTime({}) AND ts < toDateTime({})",
        sql_string(&monitor.model),
        current.from,
        current.to
    );
    if let Some(v) = monitor.version_filter() {
        filter.push_str(&format!(" AND version = {}", sql_string(v)));
    }
    let missing_cols: &[String] = if checks.missing_share.is_some() {
        &monitor.columns
    } else {
        &[]
    };
    let missing = if missing_cols.is_empty() {
        "emptyArrayUInt64()".to_string()
    } else {
        let items: Vec<String> = missing_cols
            .iter()
            .map(|c| {
                let q = sql_string(c);
                format!("toUInt64(countIf(NOT has(num_names, {q}) AND NOT has(cat_names, {q})))")
            })
            .collect();
        format!("[{}]", items.join(", "))
    };
    // `if(…)` keeps an empty window's quantile (NaN) out of the row: JSON has no NaN.
    let sql = format!(
        "SELECT toUInt64(count()) AS rows, \
         toUInt64(countIf(isNull(score) AND isNull(label))) AS errors, \
         toUInt64(countIf(isNotNull(latency_ms))) AS timed, \
         toFloat64(if(countIf(isNotNull(latency_ms)) = 0, 0., \
             quantileExactIf(0.95)(ifNull(latency_ms, 0.), isNotNull(latency_ms)))) AS latency_p95, \
         toFloat64(if(count() = 0, 0., quantileExact(0.95)( \
             toFloat64(toInt64(toUInt32(ingested_at)) - toInt64(toUInt32(ts)))))) AS lag_p95, \
         {missing} AS missing \
         FROM {table} FINAL WHERE {filter}"
    );
    let row = store
        .fetch::<ServingRow>(&sql)
        .await?
        .into_iter()
        .next()
        .unwrap_or(ServingRow {
            rows: 0,
            errors: 0,
            timed: 0,
            latency_p95: 0.0,
            lag_p95: 0.0,
            missing: vec![],
        });
    let mut stats = HealthStats {
        rows: row.rows,
        errors: row.errors,
        timed: row.timed,
        latency_p95_ms: row.latency_p95,
        ingest_lag_p95_s: row.lag_p95.max(0.0),
        missing: missing_cols
            .iter()
            .cloned()
            .zip(row.missing.iter().copied().chain(std::iter::repeat(0)))
            .collect(),
        ..HealthStats::default()
    };
    if checks.accuracy_min.is_some() {
        let label = checks.label_outcome.as_deref().unwrap_or("label");
        // Same definition as the experimenter's `accuracy` metric: a numeric predicted label
        // equal to the outcome's value. Only the labels of the window's inferences are grouped
        // (`inference_id IN`), not every label the model ever had: a monitor runs every window.
        let sql = format!(
            "SELECT toUInt64(count()) AS labelled, \
             toUInt64(countIf(p_label != '' AND toFloat64OrZero(p_label) = truth)) AS correct FROM ( \
               SELECT event_id AS inference_id, ifNull(label, '') AS p_label FROM {table} FINAL \
               WHERE {filter} AND isNotNull(label) \
             ) AS i ALL INNER JOIN ( \
               SELECT inference_id, toFloat64(any(value)) AS truth FROM {} FINAL \
               WHERE model = {} AND name = {} AND inference_id != '' \
                 AND inference_id IN (SELECT event_id FROM {table} WHERE {filter} AND isNotNull(label)) \
               GROUP BY inference_id \
             ) AS l USING inference_id",
            store.table("outcome_events"),
            sql_string(&monitor.model),
            sql_string(label)
        );
        if let Some(a) = store.fetch::<AccuracyRow>(&sql).await?.into_iter().next() {
            stats.labelled = a.labelled;
            stats.correct = a.correct;
        }
    }
    if let Some(attr) = checks
        .sensitive_attribute
        .as_deref()
        .filter(|_| checks.fairness_gap.is_some())
    {
        let q = sql_string(attr);
        let sql = format!(
            "SELECT g, toUInt64(count()) AS n, toUInt64(countIf(selected)) AS selected FROM ( \
               SELECT attr_values[indexOf(attr_names, {q})] AS g, \
                 if(isNotNull(label), lower(ifNull(label, '')) IN ('1', 'true', 'yes', '1.0'), \
                    ifNull(score, 0.) >= 0.5) AS selected \
               FROM {table} FINAL WHERE {filter} AND has(attr_names, {q}) \
                 AND (isNotNull(label) OR isNotNull(score)) \
             ) GROUP BY g ORDER BY g"
        );
        stats.groups = store
            .fetch::<GroupRow>(&sql)
            .await?
            .into_iter()
            .map(|r| (r.g, r.n, r.selected))
            .collect();
    }
    Ok(stats)
}

/// Evaluates a health monitor on `[window_end − window, window_end)`. Writes nothing.
pub async fn evaluate(
    store: &Store,
    monitor: &MonitorConfig,
    checks: &HealthChecks,
    window_end: u32,
    run_at: u32,
) -> Result<MonitorRun, MonitorError> {
    let window = monitor.window_secs()?;
    let current = Period {
        from: window_end.saturating_sub(window),
        to: window_end,
    };
    let stats = window_stats(store, monitor, checks, current).await?;
    Ok(run_of(monitor, checks, &stats, current, run_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks() -> HealthChecks {
        HealthChecks {
            latency_p95_ms: Some(250.0),
            error_rate: Some(0.02),
            ingest_lag_p95: Some("2m".into()),
            missing_share: Some(0.05),
            accuracy_min: Some(0.8),
            label_outcome: None,
            fairness_gap: Some(0.1),
            sensitive_attribute: Some("gender".into()),
        }
    }

    fn stats() -> HealthStats {
        HealthStats {
            rows: 1000,
            errors: 10,
            timed: 1000,
            latency_p95_ms: 120.0,
            ingest_lag_p95_s: 30.0,
            missing: vec![("plan".into(), 20), ("spend".into(), 0)],
            labelled: 400,
            correct: 360,
            groups: vec![("f".into(), 500, 250), ("m".into(), 480, 264)],
        }
    }

    #[test]
    fn healthy_window_is_ok_on_every_check() {
        let r = judge(&checks(), &stats(), 50);
        let names: Vec<&str> = r.iter().map(|c| c.column.as_str()).collect();
        assert_eq!(
            names,
            [
                "latency_p95_ms",
                "error_rate",
                "ingest_lag_p95_s",
                "missing_share:plan",
                "missing_share:spend",
                "accuracy",
                "fairness_gap:gender"
            ]
        );
        assert!(r.iter().all(|c| c.verdict == Verdict::Ok), "{r:?}");
        assert!((r[1].score - 0.01).abs() < 1e-12);
        assert!((r[5].score - 0.9).abs() < 1e-12);
        assert!((r[6].score - (0.55 - 0.5)).abs() < 1e-12);
        assert_eq!(r[2].threshold, 120.0);
    }

    #[test]
    fn each_check_breaches_on_its_own_side() {
        let mut s = stats();
        s.latency_p95_ms = 400.0;
        s.errors = 50;
        s.ingest_lag_p95_s = 300.0;
        s.missing[1].1 = 100;
        s.correct = 200;
        s.groups[1].2 = 400;
        let r = judge(&checks(), &s, 50);
        let breached: Vec<&str> = r
            .iter()
            .filter(|c| c.verdict == Verdict::Drift)
            .map(|c| c.column.as_str())
            .collect();
        assert_eq!(
            breached,
            [
                "latency_p95_ms",
                "error_rate",
                "ingest_lag_p95_s",
                "missing_share:spend",
                "accuracy",
                "fairness_gap:gender"
            ]
        );
        assert_eq!(r[5].method, BELOW);
        // Exactly at the threshold is not a breach.
        s.latency_p95_ms = 250.0;
        assert_eq!(judge(&checks(), &s, 50)[0].verdict, Verdict::Ok);
    }

    #[test]
    fn thin_windows_are_insufficient_not_healthy() {
        let mut s = stats();
        s.rows = 10;
        s.timed = 10;
        s.labelled = 3;
        s.groups = vec![("f".into(), 500, 250), ("m".into(), 3, 3)];
        let r = judge(&checks(), &s, 50);
        assert!(r.iter().all(|c| c.verdict == Verdict::InsufficientData));
        let m = MonitorConfig {
            name: "h".into(),
            model: "churn".into(),
            version: None,
            columns: vec![],
            reference: Default::default(),
            window: "5m".into(),
            min_rows: 50,
            stattest: None,
            stattest_threshold: None,
            num_stattest: None,
            num_stattest_threshold: None,
            cat_stattest: None,
            cat_stattest_threshold: None,
            per_column_stattest: Default::default(),
            per_column_stattest_threshold: Default::default(),
            drift_share: 0.5,
            max_distinct: 2,
            health: Some(checks()),
            ..Default::default()
        };
        let run = run_of(&m, &checks(), &s, Period { from: 0, to: 300 }, 400);
        assert_eq!(run.verdict, Verdict::InsufficientData);
        let run = run_of(&m, &checks(), &stats(), Period { from: 0, to: 300 }, 400);
        assert_eq!(run.verdict, Verdict::Ok);
        let rows = run.to_rows();
        assert_eq!(rows.last().map(|r| r.column.as_str()), Some("*"));
        assert_eq!(rows[0].window_end, 300);
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = checks();
        c.error_rate = Some(2.0);
        assert!(c
            .validate(&["plan".into()])
            .unwrap_err()
            .to_string()
            .contains("error_rate"));
        let mut c = checks();
        c.sensitive_attribute = None;
        assert!(c
            .validate(&["plan".into()])
            .unwrap_err()
            .to_string()
            .contains("sensitive"));
        assert!(checks()
            .validate(&[])
            .unwrap_err()
            .to_string()
            .contains("columns"));
        assert!(HealthChecks::default().validate(&[]).is_err());
        checks().validate(&["plan".into()]).expect("valid");
    }
}
