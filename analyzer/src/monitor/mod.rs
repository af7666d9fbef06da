//! Continuous monitors: the one part of the analyzer that touches the store.
//!
//! A monitor compares the latest complete window of a model's traffic (e.g. the last full hour)
//! with a reference period, column by column, using the same drift statistics as `vigil drift`.
//! ClickHouse reduces each column to distinct values with counts ([`pushdown`]); the pure
//! functions in [`crate::drift`] judge them; every run writes one `monitor_results` row per
//! column plus one dataset-level row (`column = "*"`). A side with fewer than `min_rows` values
//! is reported as `insufficient_data` instead of judged, so quiet hours do not page anyone.

pub mod config;
pub mod health;
pub mod pushdown;
pub mod report;
pub mod snapshot;
pub mod text;

use serde::Serialize;
use vigil_store::rows::MonitorResultRow;
use vigil_store::{sql_string, Store, StoreError};

pub use config::{validate_monitors, ColumnRef, MonitorConfig, Period, ReferenceConfig};
use pushdown::{column_counts, PushdownError, Reduction, Scope};
pub use text::TextMonitoring;

use crate::drift::{column_drift, dataset_drift};
use crate::AnalyzerError;

/// `column` value of the dataset-level result row.
pub const DATASET_COLUMN: &str = "*";

/// Errors of a monitor run. Messages say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("invalid monitor configuration: {0}")]
    Config(String),
    #[error("no monitor named `{0}` in [[monitors]]")]
    UnknownMonitor(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("monitor `{monitor}`, column `{column}`: {source}")]
    Statistic {
        monitor: String,
        column: String,
        source: AnalyzerError,
    },
}

/// An [`AnalyzerError`] outside a column's statistic comes from the configuration (an unknown
/// or inapplicable method name), so it is reported as such.
impl From<AnalyzerError> for MonitorError {
    fn from(e: AnalyzerError) -> Self {
        MonitorError::Config(e.to_string())
    }
}

/// What a column (or the dataset) was judged to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Drift,
    Ok,
    InsufficientData,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Drift => "drift",
            Verdict::Ok => "ok",
            Verdict::InsufficientData => "insufficient_data",
        }
    }
}

/// The verdict on one column in one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnResult {
    pub column: String,
    pub verdict: Verdict,
    /// Empty when the column was not judged.
    pub method: String,
    pub score: f64,
    pub threshold: f64,
    pub reference_rows: u64,
    pub current_rows: u64,
    pub reduction: Reduction,
}

/// One evaluation of one monitor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorRun {
    pub monitor: String,
    pub model: String,
    pub version: String,
    pub run_at: u32,
    pub window_start: u32,
    pub window_end: u32,
    pub reference: Period,
    /// Dataset verdict: drift when the share of drifted judged columns reaches `drift_share`.
    pub verdict: Verdict,
    pub drift_share: f64,
    pub drift_share_threshold: f64,
    pub columns: Vec<ColumnResult>,
    /// A health monitor's run: a `drift` verdict means a check breached its limit.
    pub health: bool,
    /// A text monitor's example texts of this window (stored in `monitor_examples`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<text::TextExample>,
}

impl MonitorRun {
    /// The rows stored for this run: one per column, then the dataset row.
    pub fn to_rows(&self) -> Vec<MonitorResultRow> {
        let dataset_drift = u8::from(self.verdict == Verdict::Drift);
        let row = |column: &str, method: &str, score, threshold, verdict: Verdict, r, c| {
            MonitorResultRow {
                run_at: self.run_at,
                monitor: self.monitor.clone(),
                model: self.model.clone(),
                version: self.version.clone(),
                window_start: self.window_start,
                window_end: self.window_end,
                column: column.to_string(),
                method: method.to_string(),
                score,
                threshold,
                drift: u8::from(verdict == Verdict::Drift),
                verdict: verdict.as_str().to_string(),
                reference_rows: r,
                current_rows: c,
                dataset_drift,
                drift_share: self.drift_share,
            }
        };
        let mut rows: Vec<MonitorResultRow> = self
            .columns
            .iter()
            .map(|c| {
                row(
                    &c.column,
                    &c.method,
                    c.score,
                    c.threshold,
                    c.verdict,
                    c.reference_rows,
                    c.current_rows,
                )
            })
            .collect();
        let max_of = |f: fn(&ColumnResult) -> u64| self.columns.iter().map(f).max().unwrap_or(0);
        rows.push(row(
            DATASET_COLUMN,
            "share",
            self.drift_share,
            self.drift_share_threshold,
            self.verdict,
            max_of(|c| c.reference_rows),
            max_of(|c| c.current_rows),
        ));
        rows
    }
}

/// End of the latest complete window at `at`: windows are aligned to multiples of their
/// length since the epoch (as `intDiv(toUInt32(ts), N) * N` buckets are).
pub fn latest_window_end(at: u32, window_secs: u32) -> u32 {
    at / window_secs.max(1) * window_secs.max(1)
}

/// Evaluates `monitor` on the window `[window_end - window, window_end)`. Writes nothing.
/// A text monitor needs an encoder: use [`evaluate_with`].
pub async fn evaluate(
    store: &Store,
    monitor: &MonitorConfig,
    window_end: u32,
    run_at: u32,
) -> Result<MonitorRun, MonitorError> {
    evaluate_with(
        store,
        monitor,
        window_end,
        run_at,
        &TextMonitoring::without_encoder(),
    )
    .await
}

/// [`evaluate`] with the encoder and embedding cache text monitors use.
pub async fn evaluate_with(
    store: &Store,
    monitor: &MonitorConfig,
    window_end: u32,
    run_at: u32,
    texts: &TextMonitoring,
) -> Result<MonitorRun, MonitorError> {
    monitor.validate()?;
    if let Some(checks) = &monitor.health {
        return health::evaluate(store, monitor, checks, window_end, run_at).await;
    }
    let window = monitor.window_secs()?;
    let current = Period {
        from: window_end.saturating_sub(window),
        to: window_end,
    };
    let reference = monitor.reference_period(current.from)?;
    let stattests = monitor.stattests()?;
    let scope = Scope {
        model: &monitor.model,
        version: monitor.version_filter(),
    };
    let snapshot = match &monitor.reference.file {
        Some(path) => Some(snapshot::Snapshot::read(std::path::Path::new(path))?),
        None => None,
    };
    let mut columns = Vec::with_capacity(monitor.columns.len());
    let mut judged = Vec::new();
    for name in &monitor.columns {
        let column = ColumnRef::parse(name);
        let mut counts = column_counts(
            store,
            &scope,
            &column,
            reference,
            current,
            // A file reference is compared with exact counts (see `snapshot`).
            if snapshot.is_some() {
                u64::MAX
            } else {
                monitor.max_distinct
            },
            config::DEFAULT_FINE_BINS,
        )
        .await
        .map_err(|e| match e {
            PushdownError::Store(s) => MonitorError::Store(s),
            PushdownError::Analyzer(a) => statistic(monitor, name, a),
        })?;
        if let Some(snap) = &snapshot {
            counts.reference = snap.sample(name, &counts.current)?;
        }
        let (r, c) = (counts.reference.total(), counts.current.total());
        // The column's type is the data's, so its test and threshold are resolved here.
        let kind = counts.reference.kind();
        if r < monitor.min_rows.max(1) || c < monitor.min_rows.max(1) {
            let chosen = stattests.resolve(name, kind);
            columns.push(ColumnResult {
                column: name.clone(),
                verdict: Verdict::InsufficientData,
                method: chosen
                    .test
                    .map(|m| m.name().to_string())
                    .unwrap_or_default(),
                score: 0.0,
                threshold: chosen.threshold.unwrap_or(0.0),
                reference_rows: r,
                current_rows: c,
                reduction: counts.reduction,
            });
            continue;
        }
        let chosen = monitor.column_stattest(&stattests, name, kind)?;
        let d = column_drift(
            name,
            &counts.reference,
            &counts.current,
            chosen.test,
            chosen.threshold,
        )
        .map_err(|e| statistic(monitor, name, e))?;
        columns.push(ColumnResult {
            column: name.clone(),
            verdict: if d.drift { Verdict::Drift } else { Verdict::Ok },
            method: d.method.name().to_string(),
            score: d.score,
            threshold: d.threshold,
            reference_rows: r,
            current_rows: c,
            reduction: counts.reduction,
        });
        judged.push(d);
    }
    let text = text::evaluate_texts(
        store,
        monitor,
        &scope,
        reference,
        current,
        &stattests,
        snapshot.as_ref(),
        texts,
    )
    .await?;
    columns.extend(text.columns);
    judged.extend(text.judged);
    let (verdict, share) = if judged.is_empty() && text.embedding_drift.is_empty() {
        (Verdict::InsufficientData, 0.0)
    } else {
        // Embedding rows count in the share like any judged column.
        let total = judged.len() + text.embedding_drift.len();
        let drifted = judged.iter().filter(|d| d.drift).count()
            + text.embedding_drift.iter().filter(|d| **d).count();
        let share = drifted as f64 / total as f64;
        let ds = dataset_drift(judged, monitor.drift_share);
        let drift = if text.embedding_drift.is_empty() {
            ds.dataset_drift
        } else {
            share >= monitor.drift_share
        };
        let v = if drift { Verdict::Drift } else { Verdict::Ok };
        (v, share)
    };
    Ok(MonitorRun {
        monitor: monitor.name.clone(),
        model: monitor.model.clone(),
        version: monitor.version_filter().unwrap_or_default().to_string(),
        run_at,
        window_start: current.from,
        window_end,
        reference,
        verdict,
        drift_share: share,
        drift_share_threshold: monitor.drift_share,
        columns,
        health: false,
        examples: text.examples,
    })
}

fn statistic(monitor: &MonitorConfig, column: &str, source: AnalyzerError) -> MonitorError {
    MonitorError::Statistic {
        monitor: monitor.name.clone(),
        column: column.to_string(),
        source,
    }
}

/// Evaluates the window and stores its rows.
pub async fn evaluate_and_store(
    store: &Store,
    monitor: &MonitorConfig,
    window_end: u32,
    run_at: u32,
) -> Result<MonitorRun, MonitorError> {
    evaluate_and_store_with(
        store,
        monitor,
        window_end,
        run_at,
        &TextMonitoring::without_encoder(),
    )
    .await
}

/// [`evaluate_and_store`] with the encoder and embedding cache text monitors use. A text
/// monitor's example texts are stored before its results, so a page that sees the window's
/// verdict also finds its examples.
pub async fn evaluate_and_store_with(
    store: &Store,
    monitor: &MonitorConfig,
    window_end: u32,
    run_at: u32,
    texts: &TextMonitoring,
) -> Result<MonitorRun, MonitorError> {
    let run = evaluate_with(store, monitor, window_end, run_at, texts).await?;
    if !run.examples.is_empty() {
        let rows: Vec<_> = run.examples.iter().map(|e| e.to_row(&run)).collect();
        store.insert(&rows).await?;
    }
    store.insert(&run.to_rows()).await?;
    Ok(run)
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct LastEnd {
    last: u32,
}

/// End of the newest window stored for `monitor` (0 when none).
pub async fn last_window_end(store: &Store, monitor: &str) -> Result<u32, StoreError> {
    let rows = store
        .fetch::<LastEnd>(&format!(
            "SELECT toUInt32(max(window_end)) AS last FROM {} WHERE monitor = {}",
            store.table("monitor_results"),
            sql_string(monitor)
        ))
        .await?;
    Ok(rows.first().map(|r| r.last).unwrap_or(0))
}

/// What [`run_due`] did with one monitor.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DueOutcome {
    /// Evaluated and stored.
    Ran(MonitorRun),
    /// Its latest complete window already has results.
    UpToDate { monitor: String, window_end: u32 },
}

/// Runs every monitor (or only `only`) whose latest complete window at `at` has no results
/// yet, and stores the results. Only the latest window is evaluated: a monitor that was down
/// for a day does not replay 24 windows of alerts on restart.
pub async fn run_due(
    store: &Store,
    monitors: &[MonitorConfig],
    only: Option<&str>,
    at: u32,
    run_at: u32,
) -> Result<Vec<DueOutcome>, MonitorError> {
    run_due_with(
        store,
        monitors,
        only,
        at,
        run_at,
        &TextMonitoring::without_encoder(),
    )
    .await
}

/// [`run_due`] with the encoder and embedding cache text monitors use (`vigil analyze` and
/// `vigil serve` pass the shadow runner's encoder, loaded on first use).
pub async fn run_due_with(
    store: &Store,
    monitors: &[MonitorConfig],
    only: Option<&str>,
    at: u32,
    run_at: u32,
    texts: &TextMonitoring,
) -> Result<Vec<DueOutcome>, MonitorError> {
    if let Some(name) = only {
        if !monitors.iter().any(|m| m.name == name) {
            return Err(MonitorError::UnknownMonitor(name.to_string()));
        }
    }
    let mut out = Vec::new();
    for m in monitors.iter().filter(|m| only.is_none_or(|n| n == m.name)) {
        let end = latest_window_end(at, m.window_secs()?);
        if last_window_end(store, &m.name).await? >= end {
            out.push(DueOutcome::UpToDate {
                monitor: m.name.clone(),
                window_end: end,
            });
            continue;
        }
        let run = evaluate_and_store_with(store, m, end, run_at, texts).await?;
        if run.verdict == Verdict::Drift && run.health {
            tracing::warn!(monitor = %run.monitor, model = %run.model, window_end = run.window_end,
                breached = ?run.columns.iter().filter(|c| c.verdict == Verdict::Drift)
                    .map(|c| c.column.as_str()).collect::<Vec<_>>(), "health check breached");
        } else if run.verdict == Verdict::Drift {
            tracing::warn!(monitor = %run.monitor, model = %run.model, window_end = run.window_end,
                drift_share = run.drift_share, "dataset drift");
        }
        out.push(DueOutcome::Ran(run));
    }
    Ok(out)
}

/// Stored results of `monitor` for windows ending in `[from_end, to_end]`, de-duplicated
/// (`FINAL`: a re-run window keeps its latest verdict), ordered by window and column.
pub async fn stored_results(
    store: &Store,
    monitor: &str,
    from_end: u32,
    to_end: u32,
) -> Result<Vec<MonitorResultRow>, StoreError> {
    store
        .fetch::<MonitorResultRow>(&format!(
            "SELECT toUInt32(run_at) AS run_at, toString(monitor) AS monitor,
                    toString(model) AS model, toString(version) AS version,
                    toUInt32(window_start) AS window_start, toUInt32(window_end) AS window_end,
                    toString(`column`) AS `column`, toString(method) AS method,
                    toFloat64(score) AS score, toFloat64(threshold) AS threshold,
                    toUInt8(drift) AS drift, toString(verdict) AS verdict,
                    toUInt64(reference_rows) AS reference_rows,
                    toUInt64(current_rows) AS current_rows,
                    toUInt8(dataset_drift) AS dataset_drift, toFloat64(drift_share) AS drift_share
             FROM {} FINAL
             WHERE monitor = {} AND window_end >= toDateTime({from_end})
                   AND window_end <= toDateTime({to_end})
             ORDER BY window_end, `column`",
            store.table("monitor_results"),
            sql_string(monitor)
        ))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_epoch() {
        assert_eq!(latest_window_end(7_199, 3600), 3600);
        assert_eq!(latest_window_end(7_200, 3600), 7200);
    }

    #[test]
    fn rows_include_the_dataset_row() {
        let run = MonitorRun {
            monitor: "m".into(),
            model: "churn".into(),
            version: String::new(),
            run_at: 10,
            window_start: 0,
            window_end: 3600,
            reference: Period { from: 0, to: 1 },
            verdict: Verdict::InsufficientData,
            drift_share: 0.0,
            drift_share_threshold: 0.5,
            columns: vec![ColumnResult {
                column: "plan".into(),
                verdict: Verdict::InsufficientData,
                method: String::new(),
                score: 0.0,
                threshold: 0.0,
                reference_rows: 5,
                current_rows: 2,
                reduction: Reduction::Categories,
            }],
            health: false,
            examples: vec![],
        };
        let rows = run.to_rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].column, DATASET_COLUMN);
        assert_eq!(rows[1].verdict, "insufficient_data");
        assert_eq!((rows[1].reference_rows, rows[1].current_rows), (5, 2));
    }
}
