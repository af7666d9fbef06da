//! Typed queries shared by the collector, the CLI and later the analyzer and dashboards.
//!
//! Each query reads through `FINAL`, so a row delivered twice (a producer retry, or a replay after
//! a crash) is counted once even before ClickHouse merges parts. Every selected column is cast
//! explicitly: ClickHouse 18.16 returns narrower or Nullable types than 26.x for some expressions.

use crate::{sql_string, Store, StoreError};
use serde::Deserialize;

/// How many events each table holds, de-duplicated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableCounts {
    pub inference: u64,
    pub outcomes: u64,
    pub exposures: u64,
    pub dead_letters: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct Count {
    n: u64,
}

/// Counts rows of `table` as queries see them (de-duplicated with `FINAL`).
pub async fn count_events(store: &Store, table: &str) -> Result<u64, StoreError> {
    let rows = store
        .fetch::<Count>(&format!(
            "SELECT toUInt64(count()) AS n FROM {} FINAL",
            store.table(table)
        ))
        .await?;
    Ok(rows.first().map(|r| r.n).unwrap_or(0))
}

/// Counts physical rows, duplicates included (diagnostics and tests only).
pub async fn count_physical_rows(store: &Store, table: &str) -> Result<u64, StoreError> {
    let rows = store
        .fetch::<Count>(&format!(
            "SELECT toUInt64(count()) AS n FROM {}",
            store.table(table)
        ))
        .await?;
    Ok(rows.first().map(|r| r.n).unwrap_or(0))
}

/// Counts distinct event ids in `table`.
pub async fn count_distinct_events(store: &Store, table: &str) -> Result<u64, StoreError> {
    let rows = store
        .fetch::<Count>(&format!(
            "SELECT toUInt64(uniqExact(event_id)) AS n FROM {}",
            store.table(table)
        ))
        .await?;
    Ok(rows.first().map(|r| r.n).unwrap_or(0))
}

pub async fn table_counts(store: &Store) -> Result<TableCounts, StoreError> {
    Ok(TableCounts {
        inference: count_events(store, "inference_events").await?,
        outcomes: count_events(store, "outcome_events").await?,
        exposures: count_events(store, "exposure_events").await?,
        dead_letters: count_physical_rows(store, "dead_letters").await?,
    })
}

/// Inference volume and latency per model version.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Deserialize, serde::Serialize)]
pub struct VersionCount {
    pub model: String,
    pub version: String,
    pub events: u64,
    pub mean_score: f64,
    pub mean_latency_ms: f64,
    pub last_ts: u32,
    /// Failed inferences: events without a prediction (docs/events.md).
    pub failed: u64,
}

/// Per model and version: events, mean score and latency in `[since, until)` (unix seconds).
pub async fn counts_by_version(
    store: &Store,
    since: u32,
    until: u32,
) -> Result<Vec<VersionCount>, StoreError> {
    store
        .fetch::<VersionCount>(&format!(
            "SELECT toString(model) AS model, toString(version) AS version,
                    toUInt64(count()) AS events,
                    toFloat64(ifNull(avg(score), 0)) AS mean_score,
                    toFloat64(ifNull(avg(latency_ms), 0)) AS mean_latency_ms,
                    toUInt32(max(ts)) AS last_ts,
                    toUInt64(countIf(isNull(score) AND isNull(label))) AS failed
             FROM {} FINAL
             WHERE ts >= toDateTime({since}) AND ts < toDateTime({until})
             GROUP BY model, version
             ORDER BY model, version",
            store.table("inference_events")
        ))
        .await
}

/// One time bucket of one model version.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Deserialize, serde::Serialize)]
pub struct TimeBucket {
    /// Bucket start, unix seconds (a multiple of the bucket width).
    pub bucket: u32,
    pub model: String,
    pub version: String,
    pub events: u64,
    pub mean_score: f64,
    pub mean_latency_ms: f64,
}

/// Events per `bucket_secs` bucket per version of `model` in `[since, until)`.
/// Uses `intDiv(toUInt32(ts), N) * N` because 18.16 lacks `toStartOfInterval`.
pub async fn time_buckets(
    store: &Store,
    model: &str,
    bucket_secs: u32,
    since: u32,
    until: u32,
) -> Result<Vec<TimeBucket>, StoreError> {
    if bucket_secs == 0 {
        return Err(StoreError::Query {
            sql: String::new(),
            message: "bucket width must be at least 1 second".into(),
        });
    }
    store
        .fetch::<TimeBucket>(&format!(
            "SELECT toUInt32(intDiv(toUInt32(ts), {bucket_secs}) * {bucket_secs}) AS bucket,
                    toString(model) AS model, toString(version) AS version,
                    toUInt64(count()) AS events,
                    toFloat64(ifNull(avg(score), 0)) AS mean_score,
                    toFloat64(ifNull(avg(latency_ms), 0)) AS mean_latency_ms
             FROM {} FINAL
             WHERE model = {} AND ts >= toDateTime({since}) AND ts < toDateTime({until})
             GROUP BY bucket, model, version
             ORDER BY bucket, version",
            store.table("inference_events"),
            sql_string(model)
        ))
        .await
}

/// Dead letters grouped by kind, source and field.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Deserialize, serde::Serialize)]
pub struct DeadLetterSummary {
    pub kind: String,
    pub source: String,
    pub field: String,
    pub count: u64,
    pub example_reason: String,
}

/// One example reason per group: the smallest, so every backend and cluster shows the same one.
pub async fn dead_letter_summary(store: &Store) -> Result<Vec<DeadLetterSummary>, StoreError> {
    store
        .fetch::<DeadLetterSummary>(&format!(
            "SELECT toString(kind) AS kind, toString(source) AS source, toString(field) AS field,
                    toUInt64(count()) AS count, toString(min(reason)) AS example_reason
             FROM {}
             GROUP BY kind, source, field
             ORDER BY count DESC, kind, source, field",
            store.table("dead_letters")
        ))
        .await
}

/// Where a consumer group resumes: for each partition, the offset after the last stored message.
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Deserialize, serde::Serialize)]
pub struct StoredOffset {
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
}

pub async fn stored_offsets(store: &Store, group: &str) -> Result<Vec<StoredOffset>, StoreError> {
    store
        .fetch::<StoredOffset>(&format!(
            "SELECT toString(topic) AS topic, toInt32(partition) AS partition,
                    toInt64(max(next_offset)) AS next_offset
             FROM {}
             WHERE consumer_group = {}
             GROUP BY topic, partition
             ORDER BY topic, partition",
            store.table("ingest_offsets"),
            sql_string(group)
        ))
        .await
}

/// Raw business counts of one model version in one time bucket (see `vigil_analyzer::kpi`).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Deserialize, serde::Serialize)]
pub struct KpiCounts {
    pub bucket: u32,
    pub model: String,
    pub version: String,
    /// Inferences served.
    pub inferences: u64,
    /// Distinct units served.
    pub units: u64,
    /// Distinct units with a positive conversion outcome linked to one of their inferences.
    pub converted_units: u64,
    /// Sum of revenue outcomes linked to the bucket's inferences.
    pub revenue: f64,
    /// Sum of the inferences' `cost`.
    pub cost: f64,
}

/// Volume, conversions, revenue and cost per model version and `bucket_secs` bucket in
/// `[since, until)`. Outcomes count for the inference they name (`inference_id`), so a
/// conversion is credited to the version that served it; an outcome stamped more than
/// `rollup::OUTCOME_LEAD_SECS` before its inference does not count (as on the ROI page), so
/// the outcomes read start near the range. (Joined subqueries carry aliases:
/// ClickHouse 26 requires them, 18.16 accepts them.)
pub async fn kpi_counts(
    store: &Store,
    model: Option<&str>,
    bucket_secs: u32,
    since: u32,
    until: u32,
    conversion_outcome: &str,
    revenue_outcome: &str,
) -> Result<Vec<KpiCounts>, StoreError> {
    if bucket_secs == 0 {
        return Err(StoreError::Query {
            sql: String::new(),
            message: "bucket width must be at least 1 second".into(),
        });
    }
    let model_filter = model
        .map(|m| format!("AND model = {}", sql_string(m)))
        .unwrap_or_default();
    store
        .fetch::<KpiCounts>(&format!(
            "SELECT toUInt32(bucket) AS bucket, toString(model) AS model, toString(version) AS version,
                    toUInt64(count()) AS inferences,
                    toUInt64(uniqExact(unit_id)) AS units,
                    toUInt64(uniqExactIf(unit_id, converted > 0)) AS converted_units,
                    toFloat64(sum(revenue)) AS revenue,
                    toFloat64(sum(cost)) AS cost
             FROM (
                 SELECT bucket, model, version, unit_id, cost,
                        arrayExists((n, v, t, x) -> n = {conv} AND v > 0 AND {counts}, o_names, o_vals, o_ts, {its}) AS converted,
                        arraySum(arrayMap((n, v, t, x) -> if(n = {rev} AND {counts}, v, 0), o_names, o_vals, o_ts, {its})) AS revenue
                 FROM (
                     SELECT intDiv(toUInt32(ts), {bucket_secs}) * {bucket_secs} AS bucket, model, version,
                            unit_id, toFloat64(ifNull(cost, 0)) AS cost, event_id, toUInt32(ts) AS i_ts
                     FROM {inference} FINAL
                     WHERE ts >= toDateTime({since}) AND ts < toDateTime({until}) {model_filter}
                 ) AS served ANY LEFT JOIN ({outcomes}) AS results USING (model, event_id)
             )
             GROUP BY bucket, model, version
             ORDER BY bucket, model, version",
            inference = store.table("inference_events"),
            outcomes = crate::rollup::outcomes_of(
                store,
                &format!("ts >= toDateTime({since}) AND ts < toDateTime({until}) {model_filter}"),
                since
            ),
            counts = crate::rollup::counts_sql("t", "x"),
            its = crate::rollup::I_TS_PER_OUTCOME,
            conv = sql_string(conversion_outcome),
            rev = sql_string(revenue_outcome),
        ))
        .await
}
