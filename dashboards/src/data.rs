//! The dashboards' queries: pushdown aggregates only (GROUP BY in ClickHouse), never raw rows.
//!
//! Same rules as `vigil_store::queries`: one dialect for ClickHouse 18.16 and 26.x, fully
//! qualified tables, event tables read with `FINAL`, every column cast to its Rust field's type
//! and aliased to the field's name.

use crate::roi::{ArmTotals, RoiConfig};
use serde::Deserialize;
use vigil_store::{sql_string, Store, StoreError};

/// A half-open time range `[since, until)` in unix seconds and the bucket width for charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub since: u32,
    pub until: u32,
    pub bucket: u32,
}

impl Range {
    fn sql(&self, col: &str) -> String {
        format!(
            "{col} >= toDateTime({}) AND {col} < toDateTime({})",
            self.since, self.until
        )
    }
}

/// A bucket width giving about `n` buckets over `[lo, hi]`, at a round number of seconds.
pub fn bucket_for(lo: u32, hi: u32, n: u32) -> u32 {
    const STEPS: &[u32] = &[
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
        604800,
    ];
    let span = hi.saturating_sub(lo).max(1);
    STEPS
        .iter()
        .copied()
        .find(|s| span / s <= n.max(1))
        .unwrap_or(604800)
}

#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
pub struct Extent {
    pub lo: u32,
    pub hi: u32,
    pub n: u64,
}

/// First and last inference time in `[since, until)` (n = 0 when none).
pub async fn extent(store: &Store, since: u32, until: u32) -> Result<Extent, StoreError> {
    let rows: Vec<Extent> = store
        .fetch(&format!(
            "SELECT toUInt32(min(ts)) AS lo, toUInt32(max(ts)) AS hi, toUInt64(count()) AS n
             FROM {} WHERE ts >= toDateTime({since}) AND ts < toDateTime({until})",
            store.table("inference_events")
        ))
        .await?;
    Ok(rows.into_iter().next().unwrap_or(Extent {
        lo: since,
        hi: until,
        n: 0,
    }))
}

/// Whether a table exists (tables of migrations other crates add).
pub async fn table_exists(store: &Store, table: &str) -> Result<bool, StoreError> {
    #[derive(clickhouse::Row, Deserialize)]
    struct N {
        n: u64,
    }
    let rows: Vec<N> = store
        .fetch(&format!(
            "SELECT toUInt64(count()) AS n FROM system.tables WHERE database = {} AND name = {}",
            sql_string(store.database()),
            sql_string(table)
        ))
        .await?;
    Ok(rows.first().map(|r| r.n > 0).unwrap_or(false))
}

/// Latency percentiles per version and bucket.
#[derive(Debug, Clone, clickhouse::Row, Deserialize, serde::Serialize)]
pub struct LatencyBucket {
    pub bucket: u32,
    pub version: String,
    pub events: u64,
    pub p50: f64,
    pub p95: f64,
}

pub async fn latency_buckets(
    store: &Store,
    model: &str,
    r: Range,
) -> Result<Vec<LatencyBucket>, StoreError> {
    store
        .fetch(&format!(
            "SELECT toUInt32(intDiv(toUInt32(ts), {b}) * {b}) AS bucket, toString(version) AS version,
                    toUInt64(count()) AS events,
                    toFloat64(quantile(0.5)(assumeNotNull(latency_ms))) AS p50,
                    toFloat64(quantile(0.95)(assumeNotNull(latency_ms))) AS p95
             FROM {t} FINAL
             WHERE model = {m} AND {range} AND isNotNull(latency_ms)
             GROUP BY bucket, version ORDER BY bucket, version",
            b = r.bucket,
            t = store.table("inference_events"),
            m = sql_string(model),
            range = r.sql("ts"),
        ))
        .await
}

/// Per version and bucket: the ROI sums of units first seen in that bucket.
#[derive(Debug, Clone, clickhouse::Row, Deserialize, serde::Serialize)]
pub struct RoiBucket {
    pub bucket: u32,
    pub version: String,
    pub units: u64,
    pub value_sum: f64,
    pub value_sumsq: f64,
    pub inferences: u64,
    pub cost: f64,
    pub costed: u64,
}

impl RoiBucket {
    pub fn totals(&self) -> ArmTotals {
        ArmTotals {
            units: self.units,
            value_sum: self.value_sum,
            value_sumsq: self.value_sumsq,
            inferences: self.inferences,
            cost: self.cost,
            costed: self.costed,
        }
    }
}

/// The SQL expression worth of an outcome row (`name`, `value`) under the value model.
pub fn value_expr(cfg: &RoiConfig) -> String {
    if cfg.value_per_outcome.is_empty() {
        return "toFloat64(0)".into();
    }
    let mut arms = String::new();
    for (name, worth) in &cfg.value_per_outcome {
        arms.push_str(&format!(
            "name = {}, toFloat64({worth:?}), ",
            sql_string(name)
        ));
    }
    format!("toFloat64(value) * multiIf({arms}toFloat64(0))")
}

/// ROI sums of `model` per version and bucket. A unit is (version, unit id): its value is the
/// worth of the outcomes linked to the inferences that version served it (`inference_id`), and
/// it belongs to the bucket of its first inference.
pub async fn roi_buckets(
    store: &Store,
    cfg: &RoiConfig,
    model: &str,
    r: Range,
) -> Result<Vec<RoiBucket>, StoreError> {
    store
        .fetch(&format!(
            "SELECT toUInt32(b) AS bucket, toString(version) AS version, toUInt64(count()) AS units,
                    toFloat64(sum(v)) AS value_sum, toFloat64(sum(v * v)) AS value_sumsq,
                    toUInt64(sum(n)) AS inferences, toFloat64(sum(c)) AS cost, toUInt64(sum(k)) AS costed
             FROM (
                 SELECT version, unit_id, intDiv(toUInt32(min(ts)), {b}) * {b} AS b,
                        sum(val) AS v, count() AS n, sum(c1) AS c, sum(k1) AS k
                 FROM (
                     SELECT version, unit_id, ts, event_id, toFloat64(ifNull(cost, 0)) AS c1,
                            toUInt64(isNotNull(cost)) AS k1
                     FROM {inf} FINAL
                     WHERE model = {m} AND {range}
                 ) AS served ANY LEFT JOIN (
                     SELECT inference_id AS event_id, toFloat64(sum({worth})) AS val
                     FROM {out} FINAL
                     WHERE model = {m} AND inference_id != ''
                     GROUP BY inference_id
                 ) AS results USING event_id
                 GROUP BY version, unit_id
             ) AS per_unit
             GROUP BY bucket, version ORDER BY bucket, version",
            b = r.bucket,
            inf = store.table("inference_events"),
            out = store.table("outcome_events"),
            m = sql_string(model),
            range = r.sql("ts"),
            worth = value_expr(cfg),
        ))
        .await
}

/// Units, value sums per experiment arm and bucket of first exposure (ROI per experiment).
#[derive(Debug, Clone, clickhouse::Row, Deserialize, serde::Serialize)]
pub struct ArmBucket {
    pub bucket: u32,
    pub arm: String,
    pub units: u64,
    pub value_sum: f64,
    pub value_sumsq: f64,
}

/// Per arm (first exposure) and bucket: units and the worth of their outcomes after exposure.
pub async fn experiment_value_buckets(
    store: &Store,
    cfg: &RoiConfig,
    experiment: &str,
    model: Option<&str>,
    r: Range,
) -> Result<Vec<ArmBucket>, StoreError> {
    let model_filter = model
        .map(|m| format!("AND model = {}", sql_string(m)))
        .unwrap_or_default();
    store
        .fetch(&format!(
            "SELECT toUInt32(b) AS bucket, toString(arm) AS arm, toUInt64(count()) AS units,
                    toFloat64(sum(v)) AS value_sum, toFloat64(sum(v * v)) AS value_sumsq
             FROM (
                 SELECT unit_id, arm, intDiv(toUInt32(first_ts), {b}) * {b} AS b,
                        sum(if(o_ts >= first_ts, o_val, 0)) AS v
                 FROM (
                     SELECT unit_id, argMin(variant, ts) AS arm, min(ts) AS first_ts
                     FROM {exp} FINAL
                     WHERE experiment = {e} AND {range}
                     GROUP BY unit_id
                 ) AS exposed ALL LEFT JOIN (
                     SELECT unit_id, ts AS o_ts, {worth} AS o_val
                     FROM {out} FINAL
                     WHERE ts >= toDateTime({since}) {model_filter}
                 ) AS results USING unit_id
                 GROUP BY unit_id, arm, first_ts
             ) AS per_unit
             GROUP BY bucket, arm ORDER BY bucket, arm",
            b = r.bucket,
            exp = store.table("exposure_events"),
            out = store.table("outcome_events"),
            e = sql_string(experiment),
            range = r.sql("ts"),
            since = r.since,
            worth = value_expr(cfg),
        ))
        .await
}

/// Exposure counts per arm.
#[derive(Debug, Clone, clickhouse::Row, Deserialize, serde::Serialize)]
pub struct Exposures {
    pub experiment: String,
    pub arm: String,
    pub units: u64,
    pub exposures: u64,
    pub last_ts: u32,
}

pub async fn exposures(store: &Store, r: Range) -> Result<Vec<Exposures>, StoreError> {
    store
        .fetch(&format!(
            "SELECT toString(experiment) AS experiment, toString(variant) AS arm,
                    toUInt64(uniqExact(unit_id)) AS units, toUInt64(count()) AS exposures,
                    toUInt32(max(ts)) AS last_ts
             FROM {} FINAL WHERE {}
             GROUP BY experiment, variant ORDER BY experiment, variant",
            store.table("exposure_events"),
            r.sql("ts")
        ))
        .await
}

/// One row of `monitor_results`.
#[derive(Debug, Clone, clickhouse::Row, Deserialize, serde::Serialize)]
pub struct MonitorRow {
    pub monitor: String,
    pub version: String,
    pub window_start: u32,
    pub window_end: u32,
    pub column: String,
    pub method: String,
    pub score: f64,
    pub threshold: f64,
    pub drift: u8,
    pub verdict: String,
    pub reference_rows: u64,
    pub current_rows: u64,
}

/// Monitor verdicts of `model` whose window ends in the range (at most 20 000).
pub async fn monitor_rows(
    store: &Store,
    model: &str,
    r: Range,
) -> Result<Vec<MonitorRow>, StoreError> {
    store
        .fetch(&format!(
            "SELECT toString(monitor) AS monitor, toString(version) AS version,
                    toUInt32(window_start) AS window_start, toUInt32(window_end) AS window_end,
                    toString(`column`) AS `column`, toString(method) AS method,
                    toFloat64(score) AS score, toFloat64(threshold) AS threshold,
                    toUInt8(drift) AS drift, toString(verdict) AS verdict,
                    toUInt64(reference_rows) AS reference_rows, toUInt64(current_rows) AS current_rows
             FROM {} FINAL
             WHERE model = {} AND window_end > toDateTime({}) AND window_start < toDateTime({})
             ORDER BY monitor, `column`, window_end LIMIT 20000",
            store.table("monitor_results"),
            sql_string(model),
            r.since,
            r.until
        ))
        .await
}

/// Feature names of a model (from one event: features are the same across a model's events).
#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
pub struct FeatureNames {
    pub num: Vec<String>,
    pub cat: Vec<String>,
    pub attrs: Vec<String>,
}

pub async fn feature_names(
    store: &Store,
    model: &str,
    r: Range,
) -> Result<FeatureNames, StoreError> {
    let rows: Vec<FeatureNames> = store
        .fetch(&format!(
            "SELECT CAST(any(num_names) AS Array(String)) AS num, CAST(any(cat_names) AS Array(String)) AS cat,
                    CAST(any(attr_names) AS Array(String)) AS attrs
             FROM {} WHERE model = {} AND {}",
            store.table("inference_events"),
            sql_string(model),
            r.sql("ts")
        ))
        .await?;
    Ok(rows.into_iter().next().unwrap_or(FeatureNames {
        num: vec![],
        cat: vec![],
        attrs: vec![],
    }))
}

/// Counts of values (or bins) in the reference and current periods.
#[derive(Debug, Clone, clickhouse::Row, Deserialize, serde::Serialize)]
pub struct BinCount {
    pub bin: String,
    pub current: u8,
    pub n: u64,
}

#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct MinMax {
    lo: f64,
    hi: f64,
    n: u64,
}

/// Histogram of a numerical feature (20 equal bins over both periods) or value counts of a
/// categorical one (top 20), for `[since, split)` (reference) and `[split, until)` (current).
pub async fn distribution(
    store: &Store,
    model: &str,
    column: &str,
    numerical: bool,
    since: u32,
    split: u32,
    until: u32,
) -> Result<Vec<BinCount>, StoreError> {
    let t = store.table("inference_events");
    let (m, c) = (sql_string(model), sql_string(column));
    let range = format!("ts >= toDateTime({since}) AND ts < toDateTime({until})");
    if !numerical {
        return store
            .fetch(&format!(
                "SELECT toString(x) AS bin, toUInt8(cur) AS current, toUInt64(count()) AS n
                 FROM (SELECT cat_values[indexOf(cat_names, {c})] AS x, ts >= toDateTime({split}) AS cur
                       FROM {t} FINAL WHERE model = {m} AND has(cat_names, {c}) AND {range})
                 GROUP BY bin, current ORDER BY n DESC LIMIT 40"
            ))
            .await;
    }
    let mm: Vec<MinMax> = store
        .fetch(&format!(
            "SELECT toFloat64(min(x)) AS lo, toFloat64(max(x)) AS hi, toUInt64(count()) AS n
             FROM (SELECT num_values[indexOf(num_names, {c})] AS x
                   FROM {t} FINAL WHERE model = {m} AND has(num_names, {c}) AND {range})"
        ))
        .await?;
    let Some(mm) = mm.into_iter().next().filter(|m| m.n > 0) else {
        return Ok(Vec::new());
    };
    let w = ((mm.hi - mm.lo) / 20.0).max(1e-9);
    let rows: Vec<BinCount> = store
        .fetch(&format!(
            "SELECT toString(bin) AS bin, toUInt8(cur) AS current, toUInt64(count()) AS n
             FROM (SELECT least(19, greatest(0, toInt32(floor((num_values[indexOf(num_names, {c})] - ({lo:?})) / ({w:?}))))) AS bin,
                          ts >= toDateTime({split}) AS cur
                   FROM {t} FINAL WHERE model = {m} AND has(num_names, {c}) AND {range})
             GROUP BY bin, current ORDER BY bin",
            lo = mm.lo
        ))
        .await?;
    // Order bins numerically, then label them by their lower edge.
    let mut rows = rows;
    rows.sort_by_key(|r| r.bin.parse::<i64>().unwrap_or(0));
    Ok(rows
        .into_iter()
        .map(|r| {
            let i: f64 = r.bin.parse().unwrap_or(0.0);
            BinCount {
                bin: crate::svg::axis_label(mm.lo + i * w),
                ..r
            }
        })
        .collect())
}

/// How many events of a version carry each feature (data quality: missing values).
#[derive(Debug, Clone, clickhouse::Row, Deserialize, serde::Serialize)]
pub struct Presence {
    pub version: String,
    pub name: String,
    pub present: u64,
}

pub async fn presence(store: &Store, model: &str, r: Range) -> Result<Vec<Presence>, StoreError> {
    store
        .fetch(&format!(
            "SELECT toString(version) AS version, toString(f) AS name, toUInt64(count()) AS present
             FROM {} FINAL ARRAY JOIN arrayConcat(num_names, cat_names) AS f
             WHERE model = {} AND {}
             GROUP BY version, name ORDER BY version, name",
            store.table("inference_events"),
            sql_string(model),
            r.sql("ts")
        ))
        .await
}

/// Fairness counts per group of one attribute and bucket.
#[derive(Debug, Clone, clickhouse::Row, Deserialize, serde::Serialize)]
pub struct GroupBucket {
    pub bucket: u32,
    pub grp: String,
    /// Inferences.
    pub n: u64,
    /// Predicted positive (`label = 'positive'`, or score ≥ 0.5 without a label).
    pub selected: u64,
    /// Inferences with an outcome linked (labelled).
    pub labelled: u64,
    /// Labelled with a positive outcome.
    pub positives: u64,
    /// Labelled positive and predicted positive.
    pub true_pos: u64,
    /// Labelled negative and predicted positive.
    pub false_pos: u64,
}

pub async fn fairness_buckets(
    store: &Store,
    model: &str,
    attribute: &str,
    r: Range,
) -> Result<Vec<GroupBucket>, StoreError> {
    let (m, a) = (sql_string(model), sql_string(attribute));
    store
        .fetch(&format!(
            "SELECT toUInt32(b) AS bucket, toString(g) AS grp, toUInt64(count()) AS n,
                    toUInt64(sum(pred)) AS selected, toUInt64(sum(has_out)) AS labelled,
                    toUInt64(sum(pos)) AS positives, toUInt64(sum(pred * pos)) AS true_pos,
                    toUInt64(sum(pred * has_out * (1 - pos))) AS false_pos
             FROM (
                 SELECT intDiv(toUInt32(ts), {bw}) * {bw} AS b, attr_values[indexOf(attr_names, {a})] AS g,
                        toUInt64(if(isNull(label), ifNull(score, 0) >= 0.5, ifNull(label, '') IN ('positive', '1', 'true'))) AS pred,
                        event_id
                 FROM {inf} FINAL
                 WHERE model = {m} AND has(attr_names, {a}) AND {range}
             ) AS served ANY LEFT JOIN (
                 SELECT inference_id AS event_id, toUInt64(1) AS has_out, toUInt64(max(value) > 0) AS pos
                 FROM {out} FINAL WHERE model = {m} AND inference_id != ''
                 GROUP BY inference_id
             ) AS results USING event_id
             GROUP BY bucket, grp ORDER BY bucket, grp",
            bw = r.bucket,
            inf = store.table("inference_events"),
            out = store.table("outcome_events"),
            range = r.sql("ts"),
        ))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_round() {
        assert_eq!(bucket_for(0, 60, 60), 1);
        assert_eq!(bucket_for(0, 3600, 60), 60);
        assert_eq!(bucket_for(0, 86400, 60), 1800);
        assert_eq!(bucket_for(10, 10, 60), 1);
    }

    #[test]
    fn value_expression_quotes_names() {
        let mut cfg = RoiConfig::default();
        assert_eq!(value_expr(&cfg), "toFloat64(0)");
        cfg.value_per_outcome.insert("it's".into(), -1.5);
        cfg.value_per_outcome.insert("revenue".into(), 1.0);
        assert_eq!(
            value_expr(&cfg),
            "toFloat64(value) * multiIf(name = 'it\\'s', toFloat64(-1.5), name = 'revenue', toFloat64(1.0), toFloat64(0))"
        );
    }
}
