//! The dashboards' queries: pushdown aggregates only (GROUP BY in ClickHouse), never raw rows.
//!
//! Same rules as `vigil_store::queries`: one dialect for ClickHouse 18.16 and 26.x, fully
//! qualified tables, event tables read with `FINAL`, every column cast to its Rust field's type
//! and aliased to the field's name.
//!
//! Queries over every inference in the range (versions, traffic, latency, fairness, feature
//! presence, extent) read the per-minute rollups (`vigil_store::rollup`, read with `FINAL`) for
//! the whole minutes the compactor has finished (`Range::rolled_until`) and the raw table with
//! `FINAL` for the rest (the partial first minute, and the tail after the watermark), `UNION
//! ALL`, summed. With `rolled_until = 0` they are the plain raw-table queries.

pub mod llm;

use crate::roi::{ArmTotals, RoiConfig};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use vigil_store::queries::{TimeBucket, VersionCount};
use vigil_store::rollup::{histogram_quantile, log_bin_sql};
use vigil_store::{sql_string, Store, StoreError};

/// A half-open time range `[since, until)` in unix seconds and the bucket width for charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub since: u32,
    pub until: u32,
    pub bucket: u32,
    /// Minutes before this (unix seconds, a minute boundary) are answered by the rollups;
    /// 0 = read only the raw table.
    pub rolled_until: u32,
}

impl Range {
    fn sql(&self, col: &str) -> String {
        format!(
            "{col} >= toDateTime({}) AND {col} < toDateTime({})",
            self.since, self.until
        )
    }

    /// The whole minutes `[lo, hi)` of the range the rollups answer; `None` when none, or when
    /// `by_bucket` and a chart bucket would split a minute.
    fn rolled(&self, by_bucket: bool) -> Option<(u32, u32)> {
        if by_bucket && !self.bucket.is_multiple_of(60) {
            return None;
        }
        let lo = u64::from(self.since).div_ceil(60) * 60;
        let hi = u64::from(self.until / 60 * 60).min(u64::from(self.rolled_until));
        (lo < hi).then_some((lo as u32, hi as u32))
    }

    /// The earliest `ts` the raw rows of [`Range::raw_sql`] can have: the end of the rolled-up
    /// minutes when they start the range, else the range's start.
    fn raw_since(&self, rolled: Option<(u32, u32)>) -> u32 {
        match rolled {
            Some((lo, hi)) if lo <= self.since => hi,
            _ => self.since,
        }
    }

    /// The filter for the raw rows the rollups do not answer.
    fn raw_sql(&self, rolled: Option<(u32, u32)>) -> String {
        match rolled {
            None => self.sql("ts"),
            Some((lo, hi)) => format!(
                "((ts >= toDateTime({}) AND ts < toDateTime({lo})) OR (ts >= toDateTime({hi}) AND ts < toDateTime({})))",
                self.since, self.until
            ),
        }
    }
}

/// `raw UNION ALL rolled` as one `FROM` source (just `raw` when nothing is rolled up).
fn union(raw: String, rolled: Option<String>) -> String {
    match rolled {
        Some(r) => format!("({raw} UNION ALL {r})"),
        None => format!("({raw})"),
    }
}

fn minutes_sql((lo, hi): (u32, u32)) -> String {
    format!("minute >= toDateTime({lo}) AND minute < toDateTime({hi})")
}

/// The compactor's watermark (0 when the rollups do not exist yet or were never compacted).
pub async fn rolled_until(store: &Store) -> Result<u32, StoreError> {
    if !table_exists(store, "rollup_state").await? {
        return Ok(0);
    }
    Ok(vigil_store::rollup::state(store).await?.compacted_until)
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

/// First and last inference time in `[since, until)` (n = 0 when none; n counts the raw part's
/// physical rows, so it is only good for "any?").
pub async fn extent(
    store: &Store,
    since: u32,
    until: u32,
    rolled_until: u32,
) -> Result<Extent, StoreError> {
    let r = Range {
        since,
        until,
        bucket: 60,
        rolled_until,
    };
    extent_of(store, r, None).await
}

/// First and last inference of `model` in the range (as [`extent`]).
pub async fn model_extent(store: &Store, model: &str, r: Range) -> Result<Extent, StoreError> {
    extent_of(store, r, Some(model)).await
}

async fn extent_of(store: &Store, r: Range, model: Option<&str>) -> Result<Extent, StoreError> {
    let rolled = r.rolled(false);
    let of_model = model
        .map(|m| format!("model = {} AND ", sql_string(m)))
        .unwrap_or_default();
    let raw = format!(
        "SELECT toUInt32(min(ts)) AS l, toUInt32(max(ts)) AS h, toUInt64(count()) AS c
         FROM {} WHERE {of_model}{}",
        store.table("inference_events"),
        r.raw_sql(rolled)
    );
    let roll = rolled.map(|m| {
        format!(
            "SELECT toUInt32(min(min_ts)) AS l, toUInt32(max(max_ts)) AS h, toUInt64(sum(events)) AS c
             FROM {} FINAL WHERE {of_model}{}",
            store.table("inference_rollup_1m"),
            minutes_sql(m)
        )
    });
    let rows: Vec<Extent> = store
        .fetch(&format!(
            "SELECT toUInt32(minIf(l, c > 0)) AS lo, toUInt32(maxIf(h, c > 0)) AS hi,
                    toUInt64(sum(c)) AS n
             FROM {}",
            union(raw, roll)
        ))
        .await?;
    Ok(rows.into_iter().next().unwrap_or(Extent {
        lo: r.since,
        hi: r.until,
        n: 0,
    }))
}

/// Additive sums behind the means of [`versions`] and [`traffic`], over raw rows (Nullable
/// values summed through `ifNull`: 18.16 keeps sums of Nullable Nullable) …
const RAW_SUMS: &str = "toUInt64(count()) AS n,
    toUInt64(sum(isNull(score) AND isNull(label))) AS fl, toUInt64(sum(isNotNull(score))) AS sn,
    toFloat64(sum(ifNull(score, 0))) AS ss, toUInt64(sum(isNotNull(latency_ms))) AS lat_n,
    toFloat64(sum(ifNull(latency_ms, 0))) AS lat_s";
/// … the same sums over rollup rows …
const ROLLUP_SUMS: &str = "toUInt64(sum(events)) AS n, toUInt64(sum(failed)) AS fl,
    toUInt64(sum(score_n)) AS sn,
    toFloat64(sum(score_sum)) AS ss, toUInt64(sum(latency_n)) AS lat_n,
    toFloat64(sum(latency_sum)) AS lat_s";
/// … and the means from the sums of both (0 without values, as `ifNull(avg(x), 0)`).
const MEANS: &str = "toUInt64(sum(n)) AS events,
    toFloat64(if(sum(sn) > 0, sum(ss) / sum(sn), 0)) AS mean_score,
    toFloat64(if(sum(lat_n) > 0, sum(lat_s) / sum(lat_n), 0)) AS mean_latency_ms";

/// Per model and version: events, mean score and latency, last event (as
/// `vigil_store::queries::counts_by_version`, from the rollups where they answer).
pub async fn versions(store: &Store, r: Range) -> Result<Vec<VersionCount>, StoreError> {
    let rolled = r.rolled(false);
    let raw = format!(
        "SELECT model, version, {RAW_SUMS}, toUInt32(max(ts)) AS last_
         FROM {} FINAL WHERE {} GROUP BY model, version",
        store.table("inference_events"),
        r.raw_sql(rolled)
    );
    let roll = rolled.map(|m| {
        format!(
            "SELECT model, version, {ROLLUP_SUMS}, toUInt32(max(max_ts)) AS last_
             FROM {} FINAL WHERE {} GROUP BY model, version",
            store.table("inference_rollup_1m"),
            minutes_sql(m)
        )
    });
    store
        .fetch(&format!(
            "SELECT toString(model) AS model, toString(version) AS version, {MEANS},
                    toUInt32(max(last_)) AS last_ts, toUInt64(sum(fl)) AS failed
             FROM {} GROUP BY model, version ORDER BY model, version",
            union(raw, roll)
        ))
        .await
}

/// Events, mean score and latency per version of `model` and chart bucket (as
/// `vigil_store::queries::time_buckets`, from the rollups where they answer).
pub async fn traffic(store: &Store, model: &str, r: Range) -> Result<Vec<TimeBucket>, StoreError> {
    let b = r.bucket.max(1);
    let m = sql_string(model);
    let rolled = r.rolled(true);
    let raw = format!(
        "SELECT toUInt32(intDiv(toUInt32(ts), {b}) * {b}) AS bucket, version, {RAW_SUMS}
         FROM {} FINAL WHERE model = {m} AND {} GROUP BY bucket, version",
        store.table("inference_events"),
        r.raw_sql(rolled)
    );
    let roll = rolled.map(|mins| {
        format!(
            "SELECT toUInt32(intDiv(toUInt32(minute), {b}) * {b}) AS bucket, version, {ROLLUP_SUMS}
             FROM {} FINAL WHERE model = {m} AND {} GROUP BY bucket, version",
            store.table("inference_rollup_1m"),
            minutes_sql(mins)
        )
    });
    store
        .fetch(&format!(
            "SELECT toUInt32(bucket) AS bucket, toString({m}) AS model, toString(version) AS version,
                    {MEANS}
             FROM {} GROUP BY bucket, version ORDER BY bucket, version",
            union(raw, roll)
        ))
        .await
}

/// Whether a table exists (tables of migrations other crates add).
///
/// A table found once is remembered for the process (by store and table): vigil's tables are
/// only ever added by migrations while it runs, and every page asks for one or two of them
/// (a `system.tables` query each, 3–4 ms on chDB). A missing one is asked for again.
pub async fn table_exists(store: &Store, table: &str) -> Result<bool, StoreError> {
    static FOUND: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let key = format!("{} {}", store.describe(), store.table(table));
    let found = FOUND.get_or_init(Default::default);
    if found.lock().is_ok_and(|f| f.contains(&key)) {
        return Ok(true);
    }
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
    let exists = rows.first().is_some_and(|r| r.n > 0);
    if exists {
        if let Ok(mut f) = found.lock() {
            f.insert(key);
        }
    }
    Ok(exists)
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

/// Latency p50/p95 per version and bucket, from the latency histogram
/// (`vigil_store::rollup::log_bin_sql`, bins about 2 % wide): the rollups carry it per
/// minute, the raw part is binned the same way, so both paths give the same numbers.
pub async fn latency_buckets(
    store: &Store,
    model: &str,
    r: Range,
) -> Result<Vec<LatencyBucket>, StoreError> {
    let hists = bucket_histograms(
        store,
        model,
        r,
        "latency_ms",
        ("inference_rollup_1m", "latency_bins", "latency_counts"),
    )
    .await?;
    Ok(hists
        .into_iter()
        .filter_map(|(bucket, version, bins)| {
            Some(LatencyBucket {
                bucket,
                version,
                events: bins.iter().map(|b| b.1).sum(),
                p50: histogram_quantile(&bins, 0.5)?,
                p95: histogram_quantile(&bins, 0.95)?,
            })
        })
        .collect())
}

/// Per chart bucket and version of one model: the log histogram (`rollup::log_bin_sql`) of
/// `column`'s non-null values, as (bin, count) pairs. Rolled-up minutes come from the histogram
/// arrays `(table, bins, counts)` of a minute rollup, the rest is binned the same way from the
/// raw table, so both paths give the same histograms (latency, time to first token).
pub(crate) async fn bucket_histograms(
    store: &Store,
    model: &str,
    r: Range,
    column: &str,
    (rollup, bins_col, counts_col): (&str, &str, &str),
) -> Result<Vec<(u32, String, Vec<(u16, u64)>)>, StoreError> {
    #[derive(clickhouse::Row, Deserialize)]
    struct Hist {
        bucket: u32,
        version: String,
        bins: Vec<u16>,
        counts: Vec<u64>,
    }
    let b = r.bucket.max(1);
    let m = sql_string(model);
    let rolled = r.rolled(true);
    let raw = format!(
        "SELECT toUInt32(intDiv(toUInt32(ts), {b}) * {b}) AS bucket, version, {} AS bin,
                toUInt64(count()) AS c1
         FROM {} FINAL WHERE model = {m} AND {} AND isNotNull({column})
         GROUP BY bucket, version, bin",
        log_bin_sql(column),
        store.table("inference_events"),
        r.raw_sql(rolled)
    );
    let roll = rolled.map(|mins| {
        format!(
            "SELECT toUInt32(intDiv(toUInt32(minute), {b}) * {b}) AS bucket, version, bin,
                    toUInt64(sum(hc)) AS c1
             FROM {} FINAL ARRAY JOIN {bins_col} AS bin, {counts_col} AS hc
             WHERE model = {m} AND {}
             GROUP BY bucket, version, bin",
            store.table(rollup),
            minutes_sql(mins)
        )
    });
    let hists: Vec<Hist> = store
        .fetch(&format!(
            "SELECT toUInt32(bucket) AS bucket, toString(version) AS version,
                    CAST(groupArray(bin) AS Array(UInt16)) AS bins,
                    CAST(groupArray(c) AS Array(UInt64)) AS counts
             FROM (SELECT bucket, version, bin, sum(c1) AS c FROM {} GROUP BY bucket, version, bin)
             GROUP BY bucket, version ORDER BY bucket, version",
            union(raw, roll)
        ))
        .await?;
    Ok(hists
        .into_iter()
        .map(|h| {
            (
                h.bucket,
                h.version,
                h.bins.into_iter().zip(h.counts).collect(),
            )
        })
        .collect())
}

/// Per model, version and bucket: the ROI sums of units first seen in that bucket.
#[derive(Debug, Clone, clickhouse::Row, Deserialize, serde::Serialize)]
pub struct RoiBucket {
    pub model: String,
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
    format!("toFloat64(value) * {}", worth_per_unit(cfg, "name"))
}

/// The worth of one unit of the outcome named by the SQL expression `name`.
fn worth_per_unit(cfg: &RoiConfig, name: &str) -> String {
    let mut arms = String::new();
    for (outcome, worth) in &cfg.value_per_outcome {
        arms.push_str(&format!(
            "{name} = {}, toFloat64({worth:?}), ",
            sql_string(outcome)
        ));
    }
    format!("multiIf({arms}toFloat64(0))")
}

/// The worth of outcome sums stored per name (`names`, `values`: parallel arrays) under the
/// value model, as SQL.
fn worth_of_arrays(cfg: &RoiConfig, names: &str, values: &str) -> String {
    if cfg.value_per_outcome.is_empty() {
        return "toFloat64(0)".into();
    }
    format!(
        "arraySum(arrayMap((o, x) -> x * {}, {names}, {values}))",
        worth_per_unit(cfg, "o")
    )
}

/// Where the ROI page's numbers start: the hour holding `r.since`, or its UTC day when the
/// range spans a day or more. ROI counts whole hours and days so that the unit rollups can
/// answer it: per hour (`inference_units_1h`), and per day (`inference_units_daily`), which keeps
/// a range of days at one row per unit and day however many hours the unit was served in.
pub fn roi_since(r: Range) -> u32 {
    if roi_by_day(r) {
        r.since / 86_400 * 86_400
    } else {
        r.since / 3600 * 3600
    }
}

/// Whether ROI over `r` counts whole days (a range of 24 h or more), else whole hours.
pub fn roi_by_day(r: Range) -> bool {
    r.until.saturating_sub(r.since) >= 86_400
}

/// How far the daily and the hourly unit rows reach (`covered_until` of the newest rows), for
/// a range ending at `until`. The compactor writes a period's rows (one insert) before it
/// moves on, so these, not the watermark, are where the next part must start for no event to
/// count twice. Both trail the watermark by minutes (the daily rows reach where the hourly
/// rows do, a pass writing them right after), and periods more than a day before the
/// watermark are complete (every pass extends them from the frontier on), so only the last
/// day is looked at; both in one statement.
async fn unit_coverage(store: &Store, since: u32, r: Range) -> Result<(u32, u32), StoreError> {
    if r.rolled_until == 0 {
        return Ok((0, 0));
    }
    #[derive(clickhouse::Row, Deserialize)]
    struct Cov {
        day: u32,
        hour: u32,
    }
    let hour_before = (r.rolled_until / 3600 * 3600).saturating_sub(86_400);
    let day_before = (r.rolled_until / 86_400 * 86_400).saturating_sub(86_400);
    if r.until <= day_before {
        return Ok((day_before, hour_before));
    }
    let newest = |table: &str, period: &str, from: u32| {
        format!(
            "(SELECT toUInt32(max(covered_until)) FROM {} WHERE {period} >= toDateTime({from})
              AND {period} < toDateTime({}))",
            store.table(table),
            r.until
        )
    };
    let cov = store
        .fetch::<Cov>(&format!(
            "SELECT toUInt32({}) AS day, toUInt32({}) AS hour",
            newest(
                vigil_store::rollup::UNIT_DAYS,
                "day",
                since.max(day_before) / 86_400 * 86_400
            ),
            newest("inference_units_1h", "hour", since.max(hour_before)),
        ))
        .await?
        .first()
        .map_or((0, 0), |c| (c.day, c.hour));
    Ok((cov.0.max(day_before), cov.1.max(hour_before)))
}

/// Where each part of an ROI read lies: days `[since, day_end)`, hours `[hour_from,
/// hour_end)`, and raw events over `raw` (one or two ranges, the last ending at `until`).
#[derive(Debug, PartialEq, Eq)]
struct RoiParts {
    day_end: u32,
    hour_from: u32,
    hour_end: u32,
    raw: Vec<(u32, u32)>,
}

impl RoiParts {
    /// From the unit rows' coverage (`(day, hour)`, 0 for none). A range ending before a
    /// coverage uses the whole periods before its end.
    fn new(since: u32, by_day: bool, (day_cov, hour_cov): (u32, u32), until: u32) -> Self {
        let day_end = if !by_day || day_cov == 0 {
            since
        } else if until >= day_cov {
            day_cov.max(since)
        } else {
            (until / 86_400 * 86_400).max(since)
        };
        let hour_end = if hour_cov == 0 {
            day_end
        } else if until >= hour_cov {
            hour_cov.max(day_end)
        } else {
            (until / 3600 * 3600).max(day_end)
        };
        // The daily rows reach the hourly rows' coverage, usually inside the open hour; that
        // hour's hourly rows also hold its part before `day_end`, so hours start on the next
        // hour and what lies between is read raw (the moment of a pass between its hourly and
        // its daily rows, or a day that fell behind).
        let hour_from = day_end.div_ceil(3600) * 3600;
        let raw = if hour_from < hour_end {
            let mut raw = Vec::new();
            if day_end < hour_from {
                raw.push((day_end, hour_from));
            }
            raw.push((hour_end, until));
            raw
        } else {
            vec![(day_end, until)]
        };
        RoiParts {
            day_end,
            hour_from,
            hour_end: hour_end.max(hour_from),
            raw,
        }
    }
}

/// ROI sums per model, version and bucket, over `[roi_since(r), until)`, every model in one
/// query. A unit is (model, version, unit id): its value is the worth of the outcomes linked
/// to the inferences that version served it in the range (`inference_id`), and it belongs to
/// the bucket of its first inference in the range.
///
/// The range is read in consecutive parts, each giving per-unit sums: days from
/// `inference_units_daily` (ranges of a day or more; the last day up to where the compactor
/// reached, inside the open hour), then hours from `inference_units_1h`, then the raw tables
/// from where the unit rows end. Units are summed across parts before
/// they are bucketed. Units are keyed by `cityHash64(model, version, unit_id)` on every path
/// (the rollups store only the hash) and carry `cityHash64(model, version)`, named only in
/// the few result rows: groups by UInt64s rather than by strings are what keep the page fast
/// on 200 k units.
pub async fn roi_buckets(
    store: &Store,
    cfg: &RoiConfig,
    r: Range,
) -> Result<Vec<RoiBucket>, StoreError> {
    let since = roi_since(r);
    let by_day = roi_by_day(r);
    let (day_cov, hour_cov) = unit_coverage(store, since, r).await?;
    let RoiParts {
        day_end,
        hour_from,
        hour_end,
        raw: raw_ranges,
    } = RoiParts::new(since, by_day, (day_cov, hour_cov), r.until);
    let raw_from = raw_ranges[0].0;
    let inf = store.table("inference_events");
    let raw_range = raw_ranges
        .iter()
        .map(|(a, b)| format!("(ts >= toDateTime({a}) AND ts < toDateTime({b}))"))
        .collect::<Vec<_>>()
        .join(" OR ");
    // Every part gives rows of (mv, unit_key, f, n, c, k, v) at its own grain (an event, a
    // unit's hour, a unit's day); one GROUP BY over all of them makes the units (grouping
    // each part first measured 20 % slower at 100 M events).
    // Outcomes are read only when they are worth something, and only those that count for
    // the tail's inferences (stamped at most `OUTCOME_LEAD_SECS` before them).
    let served = format!(
        "SELECT model, version, cityHash64(model, version, unit_id) AS unit_key, ts,
                toUInt32(ts) AS i_ts, event_id,
                toFloat64(ifNull(cost, 0)) AS c1, toUInt64(isNotNull(cost)) AS k1
         FROM {inf} FINAL
         WHERE {raw_range}"
    );
    let raw = if cfg.value_per_outcome.is_empty() {
        format!(
            "SELECT cityHash64(model, version) AS mv, unit_key, toUInt32(ts) AS f, toUInt64(1) AS n,
                    c1 AS c, k1 AS k, toFloat64(0) AS v
             FROM ({served}) AS served"
        )
    } else {
        format!(
            "SELECT cityHash64(model, version) AS mv, unit_key, toUInt32(ts) AS f, toUInt64(1) AS n,
                    c1 AS c, k1 AS k, toFloat64({worth}) AS v
             FROM (
                 SELECT model, version, unit_key, ts, c1, k1, {linked}
                 FROM ({served}) AS served ANY LEFT JOIN ({outcomes}) AS results
                 USING (model, event_id)
             ) AS linked",
            linked = vigil_store::rollup::linked_outcomes_sql("names", "vals"),
            outcomes = vigil_store::rollup::outcomes_of(store, &raw_range, raw_from),
            worth = worth_of_arrays(cfg, "names", "vals"),
        )
    };
    let units = |table: &str, period: &str, lo: u32, hi: u32| {
        format!(
            "SELECT cityHash64(model, version) AS mv, unit_key, toUInt32(first_ts) AS f,
                    toUInt64(inferences) AS n, toFloat64(cost) AS c, toUInt64(costed) AS k,
                    toFloat64({worth}) AS v
             FROM {units} FINAL
             WHERE {period} >= toDateTime({lo}) AND {period} < toDateTime({hi})",
            units = store.table(table),
            worth = worth_of_arrays(cfg, "outcome_names", "outcome_values"),
        )
    };
    let mut rolled = Vec::new();
    if day_end > since {
        rolled.push(units(vigil_store::rollup::UNIT_DAYS, "day", since, day_end));
    }
    if hour_end > hour_from {
        rolled.push(units("inference_units_1h", "hour", hour_from, hour_end));
    }
    let roll = (!rolled.is_empty()).then(|| rolled.join(" UNION ALL "));
    // The names of the (model, version) hashes: every pair served in the range is in the
    // minute rollup (the compactor writes a pass's minutes before its units) or in the raw
    // tail. Carrying one UInt64 instead of two strings through the per-unit groups is what
    // keeps those groups cheap over 200 k units. The names are a second, small query joined
    // here: as a `JOIN` in the sums' statement they cost it ~10 % at 100 M events.
    #[derive(clickhouse::Row, Deserialize)]
    struct Name {
        mv: u64,
        model: String,
        version: String,
    }
    let names: HashMap<u64, (String, String)> = store
        .fetch::<Name>(&format!(
            "SELECT toUInt64(cityHash64(m, v)) AS mv, toString(any(m)) AS model,
                    toString(any(v)) AS version
             FROM (
                 SELECT model AS m, version AS v FROM {rollup}
                 WHERE minute >= toDateTime({since}) AND minute < toDateTime({until})
                 GROUP BY model, version
                 UNION ALL
                 SELECT model AS m, version AS v FROM {inf} WHERE {raw_range}
                 GROUP BY model, version
             ) AS served
             GROUP BY mv",
            rollup = store.table("inference_rollup_1m"),
            until = r.until,
        ))
        .await?
        .into_iter()
        .map(|n| (n.mv, (n.model, n.version)))
        .collect();
    #[derive(clickhouse::Row, Deserialize)]
    struct Sums {
        mv: u64,
        bucket: u32,
        units: u64,
        value_sum: f64,
        value_sumsq: f64,
        inferences: u64,
        cost: f64,
        costed: u64,
    }
    let sums: Vec<Sums> = store
        .fetch(&format!(
            "SELECT toUInt64(mv) AS mv, toUInt32(bucket) AS bucket, toUInt64(units) AS units,
                    toFloat64(value_sum) AS value_sum, toFloat64(value_sumsq) AS value_sumsq,
                    toUInt64(inferences) AS inferences, toFloat64(cost) AS cost,
                    toUInt64(costed) AS costed
             FROM (
                 SELECT mv, intDiv(f, {b}) * {b} AS bucket, count() AS units,
                        sum(v) AS value_sum, sum(v * v) AS value_sumsq, sum(n) AS inferences,
                        sum(c) AS cost, sum(k) AS costed
                 FROM (
                     SELECT any(mv) AS mv, unit_key, min(f) AS f,
                            sum(n) AS n, sum(c) AS c, sum(k) AS k, sum(v) AS v
                     FROM {parts} AS parts
                     GROUP BY unit_key
                 ) AS per_unit
                 GROUP BY mv, bucket
             ) AS sums",
            b = r.bucket,
            parts = union(raw, roll),
        ))
        .await?;
    let mut buckets: Vec<RoiBucket> = sums
        .into_iter()
        .map(|s| {
            let (model, version) = names.get(&s.mv).cloned().unwrap_or_default();
            RoiBucket {
                model,
                bucket: s.bucket,
                version,
                units: s.units,
                value_sum: s.value_sum,
                value_sumsq: s.value_sumsq,
                inferences: s.inferences,
                cost: s.cost,
                costed: s.costed,
            }
        })
        .collect();
    buckets.sort_by(|a, b| (&a.model, a.bucket, &a.version).cmp(&(&b.model, b.bucket, &b.version)));
    Ok(buckets)
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
    // The names of the fullest of the first 1,000 events in range (the `LIMIT` stops the scan
    // early): any single row could be a failed inference, which carries only an `error`
    // attribute and no features, and which row a scan meets first depends on the parts.
    let rows: Vec<FeatureNames> = store
        .fetch(&format!(
            "SELECT CAST(num_names AS Array(String)) AS num, CAST(cat_names AS Array(String)) AS cat,
                    CAST(attr_names AS Array(String)) AS attrs
             FROM (SELECT num_names, cat_names, attr_names FROM {} WHERE model = {} AND {} LIMIT 1000)
             ORDER BY length(num_names) + length(cat_names)
                      + length(arrayFilter(a -> a != 'error', attr_names)) DESC
             LIMIT 1",
            store.table("inference_events"),
            sql_string(model),
            r.sql("ts")
        ))
        .await?;
    let mut names = rows.into_iter().next().unwrap_or(FeatureNames {
        num: vec![],
        cat: vec![],
        attrs: vec![],
    });
    // `error` marks a failed inference (docs/events.md), not a group to compare.
    names.attrs.retain(|a| a != "error");
    Ok(names)
}

/// Counts of values (or bins) in the reference and current periods.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct BinCount {
    pub bin: String,
    pub current: u8,
    /// Estimated rows: the sampled events weighted by their minute's events per sampled event.
    pub n: u64,
    /// Sampled events behind the estimate.
    pub sampled: u64,
}

/// About how many sampled events a distribution reads: the per-minute sample is cut to
/// `max(1, min(SAMPLE_PER_MINUTE, DISTRIBUTION_BUDGET / minutes with events))` per minute.
pub const DISTRIBUTION_BUDGET: u32 = 40_000;

/// Histogram bins of a numerical feature.
const NUMERICAL_BINS: usize = 20;
/// Values shown of a categorical feature (the most frequent).
const TOP_VALUES: usize = 20;

#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct Count {
    n: u64,
}

/// Histogram of a numerical feature (20 equal bins over both periods' sampled range) or value
/// shares of a categorical one (the 20 most frequent), for `[since, split)` (reference) and
/// `[split, until)` (current): [`distribution_between`] with those two periods.
pub async fn distribution(
    store: &Store,
    model: &str,
    column: &str,
    numerical: bool,
    r: Range,
    split: u32,
    budget: u32,
) -> Result<Vec<BinCount>, StoreError> {
    let reference = Range {
        until: split.clamp(r.since, r.until),
        ..r
    };
    let current = Range {
        since: split.clamp(r.since, r.until),
        ..r
    };
    distribution_between(store, model, column, numerical, reference, current, budget).await
}

/// Minutes with events of `model` in the range: how much of each minute's sample to read.
async fn minutes_with_events(
    store: &Store,
    model: &str,
    periods: &[Range],
) -> Result<u64, StoreError> {
    let m = sql_string(model);
    // Every period's raw and rolled-up parts in one statement (one round trip, and on the
    // embedded store one place in its statement queue).
    let mut parts = Vec::new();
    for r in periods.iter().filter(|r| r.since < r.until) {
        let rolled = r.rolled(false);
        parts.push(format!(
            "SELECT toUInt64(uniqExact(intDiv(toUInt32(ts), 60))) AS n FROM {} WHERE model = {m} AND {}",
            store.table("inference_events"),
            r.raw_sql(rolled)
        ));
        if let Some(mm) = rolled {
            parts.push(format!(
                "SELECT toUInt64(count()) AS n FROM {} FINAL
                 WHERE model = {m} AND {} AND rank = 1",
                store.table("inference_sample_rank_1m"),
                minutes_sql(mm)
            ));
        }
    }
    if parts.is_empty() {
        return Ok(0);
    }
    Ok(store
        .fetch::<Count>(&format!(
            "SELECT toUInt64(sum(n)) AS n FROM ({}) AS parts",
            parts.join(" UNION ALL ")
        ))
        .await?
        .first()
        .map_or(0, |x| x.n))
}

#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct NumSample {
    x: f64,
    cur: u8,
    w: f64,
}

#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct CatSample {
    x: String,
    cur: u8,
    w: f64,
}

/// Histogram of a numerical feature (20 equal bins over both periods' sampled range) or value
/// shares of a categorical one (the 20 most frequent) in a `reference` and a `current` period
/// (any two ranges: adjacent, apart, a monitor's fixed reference), estimated from the
/// per-minute samples (`vigil_store::rollup::sample_select`): rolled-up minutes from
/// `inference_sample_rank_1m`, the rest sampled from the raw table the same way, so both give the
/// same events. Both periods read the same share of each minute's sample, about `budget`
/// sampled events in all.
pub async fn distribution_between(
    store: &Store,
    model: &str,
    column: &str,
    numerical: bool,
    reference: Range,
    current: Range,
    budget: u32,
) -> Result<Vec<BinCount>, StoreError> {
    use vigil_store::rollup::{sample_select, SAMPLE_PER_MINUTE};
    let minutes = minutes_with_events(store, model, &[reference, current]).await?;
    if minutes == 0 {
        return Ok(Vec::new());
    }
    let per_minute = (u64::from(budget) / minutes).clamp(1, u64::from(SAMPLE_PER_MINUTE));
    let raw_t = store.table("inference_events");
    let sample_t = store.table("inference_sample_rank_1m");
    let (m, c) = (sql_string(model), sql_string(column));
    let (names, values) = if numerical {
        ("num_names", "num_values")
    } else {
        ("cat_names", "cat_values")
    };
    let cols = "ts, minute_events, num_names, num_values, cat_names, cat_values";
    // Both periods in one statement (`cur` 0 = reference, 1 = current): their reads run
    // side by side in one query instead of queueing one after the other.
    let mut selects = Vec::new();
    for (cur, p) in [(0u8, reference), (1u8, current)] {
        if p.since >= p.until {
            continue;
        }
        let rolled = p.rolled(false);
        let raw_filter = format!("model = {m} AND {}", p.raw_sql(rolled));
        let raw = format!(
            "SELECT {cols} FROM ({}) AS s",
            sample_select(&raw_t, &raw_filter, per_minute as u16)
        );
        let roll = rolled.map(|mm| {
            format!(
                "SELECT {cols} FROM {sample_t} FINAL
                 WHERE model = {m} AND {} AND rank <= {per_minute}",
                minutes_sql(mm)
            )
        });
        selects.push(format!(
            "SELECT {cast}({values}[indexOf({names}, {c})]) AS x, toUInt8({cur}) AS cur,
                    toFloat64(minute_events) / toFloat64(least({per_minute}, minute_events)) AS w
             FROM {parts} AS parts WHERE has({names}, {c})",
            cast = if numerical { "toFloat64" } else { "toString" },
            parts = union(raw, roll),
        ));
    }
    let sql = selects.join(" UNION ALL ");
    let (mut num_points, mut cat_points) = (Vec::new(), Vec::new());
    if numerical {
        let points: Vec<NumSample> = store.fetch(&sql).await?;
        num_points.extend(points.into_iter().map(|p| (p.x, p.cur, p.w)));
    } else {
        let points: Vec<CatSample> = store.fetch(&sql).await?;
        cat_points.extend(points.into_iter().map(|p| (p.x, p.cur, p.w)));
    }
    Ok(if numerical {
        histogram(num_points)
    } else {
        top_values(cat_points)
    })
}

/// Weighted (estimate, sampled) per key and period, summed in a fixed order so the same
/// points always give the same numbers.
fn tally<K: Ord + Clone>(mut points: Vec<(K, u8, f64)>) -> BTreeMap<(K, u8), (f64, u64)> {
    points.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)).then(a.2.total_cmp(&b.2)));
    let mut out: BTreeMap<(K, u8), (f64, u64)> = BTreeMap::new();
    for (k, cur, w) in points {
        let e = out.entry((k, cur)).or_default();
        e.0 += w;
        e.1 += 1;
    }
    out
}

fn bin_count(bin: String, current: u8, (n, sampled): (f64, u64)) -> BinCount {
    BinCount {
        bin,
        current,
        n: n.round() as u64,
        sampled,
    }
}

/// 20 equal bins over the points' range, labelled by their lower edge; empty bins left out.
fn histogram(points: Vec<(f64, u8, f64)>) -> Vec<BinCount> {
    let finite: Vec<(f64, u8, f64)> = points.into_iter().filter(|p| p.0.is_finite()).collect();
    let lo = finite.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = finite.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    if finite.is_empty() {
        return Vec::new();
    }
    let w = ((hi - lo) / NUMERICAL_BINS as f64).max(1e-9);
    let binned = finite
        .into_iter()
        .map(|(x, cur, wt)| {
            let i = ((x - lo) / w)
                .floor()
                .clamp(0.0, (NUMERICAL_BINS - 1) as f64) as usize;
            (i, cur, wt)
        })
        .collect();
    tally(binned)
        .into_iter()
        .map(|((i, cur), t)| bin_count(crate::svg::axis_label(lo + i as f64 * w), cur, t))
        .collect()
}

/// The 20 most frequent values over both periods (ties by value), most frequent first.
fn top_values(points: Vec<(String, u8, f64)>) -> Vec<BinCount> {
    let t = tally(points);
    let mut totals: BTreeMap<&String, f64> = BTreeMap::new();
    for ((v, _), (n, _)) in &t {
        *totals.entry(v).or_default() += n;
    }
    let mut order: Vec<(&String, f64)> = totals.into_iter().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let mut out = Vec::new();
    for (v, _) in order.into_iter().take(TOP_VALUES) {
        for cur in [0u8, 1] {
            if let Some(x) = t.get(&(v.clone(), cur)) {
                out.push(bin_count(v.clone(), cur, *x));
            }
        }
    }
    out
}

/// Per version: its inferences, and how many of them carry each feature (data quality:
/// missing values). Both counts come from one statement over the same rows, so a feature is
/// never present in more inferences than the version has: on the raw rows they come from one
/// scan (every event counts once under the name `''`, which no feature can have), on rolled-up
/// minutes from the rollups one recomputation of a minute writes together. (The page used to
/// divide by the inferences of [`versions`], read seconds earlier while the range's open end
/// kept filling: shares of missing values came out negative.)
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct Presence {
    pub version: String,
    /// Inferences of the version in the range.
    pub events: u64,
    /// Inferences that carry each feature, by feature name.
    pub present: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct PresenceRow {
    version: String,
    name: String,
    n: u64,
}

pub async fn presence(store: &Store, model: &str, r: Range) -> Result<Vec<Presence>, StoreError> {
    let m = sql_string(model);
    let rolled = r.rolled(false);
    let raw = format!(
        "SELECT version, f, toUInt64(count()) AS c
         FROM {} FINAL ARRAY JOIN arrayConcat([''], num_names, cat_names) AS f
         WHERE model = {m} AND {}
         GROUP BY version, f",
        store.table("inference_events"),
        r.raw_sql(rolled)
    );
    let roll = rolled.map(|mins| {
        format!(
            "SELECT version, name AS f, toUInt64(sum(present)) AS c
             FROM {} FINAL WHERE model = {m} AND {mins} GROUP BY version, f
             UNION ALL
             SELECT version, '' AS f, toUInt64(sum(events)) AS c
             FROM {} FINAL WHERE model = {m} AND {mins} GROUP BY version",
            store.table("inference_features_1m"),
            store.table("inference_rollup_1m"),
            mins = minutes_sql(mins),
        )
    });
    let rows: Vec<PresenceRow> = store
        .fetch(&format!(
            "SELECT toString(version) AS version, toString(f) AS name, toUInt64(sum(c)) AS n
             FROM {} GROUP BY version, f ORDER BY version, name",
            union(raw, roll)
        ))
        .await?;
    Ok(presence_from_rows(rows))
}

/// Groups `(version, name, n)` rows per version; name `''` is the version's inference count.
fn presence_from_rows(rows: Vec<PresenceRow>) -> Vec<Presence> {
    let mut out: Vec<Presence> = Vec::new();
    for row in rows {
        if out.last().is_none_or(|p| p.version != row.version) {
            out.push(Presence {
                version: row.version.clone(),
                events: 0,
                present: BTreeMap::new(),
            });
        }
        let Some(p) = out.last_mut() else { continue };
        if row.name.is_empty() {
            p.events = row.n;
        } else {
            p.present.insert(row.name, row.n);
        }
    }
    out
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

/// Fairness counts of `model`'s groups of `attribute` per bucket: the minute rollups
/// (`inference_groups_1m`) before the watermark, the raw events after it, with the outcomes
/// that count for them (`vigil_store::rollup::outcomes_of`: linked to those inferences and
/// stamped at most `OUTCOME_LEAD_SECS` before them, so the read starts near the range, not at
/// the first outcome ever stored).
pub async fn fairness_buckets(
    store: &Store,
    model: &str,
    attribute: &str,
    r: Range,
) -> Result<Vec<GroupBucket>, StoreError> {
    let (m, a) = (sql_string(model), sql_string(attribute));
    // Whole minutes, so that the rollups answer from the start and the raw part (the one
    // joined with outcomes) is only the tail after the watermark.
    let r = Range {
        since: r.since / 60 * 60,
        ..r
    };
    let bw = r.bucket.max(1);
    let rolled = r.rolled(true);
    let raw = format!(
        "SELECT toUInt32(b) AS bucket, toString(g) AS grp, toUInt64(count()) AS n_,
                toUInt64(sum(pred)) AS sel_, toUInt64(sum(has_out)) AS lab_,
                toUInt64(sum(pos)) AS pos_, toUInt64(sum(pred * pos)) AS tp_,
                toUInt64(sum(pred * has_out * (1 - pos))) AS fp_
         FROM (
             SELECT b, g, pred, {labelled}
             FROM (
                 SELECT model, intDiv(toUInt32(ts), {bw}) * {bw} AS b,
                        attr_values[indexOf(attr_names, {a})] AS g,
                        toUInt64(if(isNull(label), ifNull(score, 0) >= 0.5, ifNull(label, '') IN ('positive', '1', 'true'))) AS pred,
                        event_id, toUInt32(ts) AS i_ts
                 FROM {inf} FINAL
                 WHERE model = {m} AND has(attr_names, {a}) AND {range}
             ) AS served ANY LEFT JOIN ({outcomes}) AS results USING (model, event_id)
         )
         GROUP BY bucket, grp",
        inf = store.table("inference_events"),
        range = r.raw_sql(rolled),
        labelled = vigil_store::rollup::labelled_sql(),
        outcomes = vigil_store::rollup::outcomes_of(
            store,
            &format!("model = {m} AND {}", r.raw_sql(rolled)),
            r.raw_since(rolled),
        ),
    );
    let roll = rolled.map(|mins| {
        format!(
            "SELECT toUInt32(intDiv(toUInt32(minute), {bw}) * {bw}) AS bucket, toString(grp) AS grp,
                    toUInt64(sum(n)) AS n_, toUInt64(sum(selected)) AS sel_,
                    toUInt64(sum(labelled)) AS lab_, toUInt64(sum(positives)) AS pos_,
                    toUInt64(sum(true_pos)) AS tp_, toUInt64(sum(false_pos)) AS fp_
             FROM {} FINAL WHERE model = {m} AND attr = {a} AND {}
             GROUP BY bucket, grp",
            store.table("inference_groups_1m"),
            minutes_sql(mins)
        )
    });
    store
        .fetch(&format!(
            "SELECT toUInt32(bucket) AS bucket, toString(grp) AS grp, toUInt64(sum(n_)) AS n,
                    toUInt64(sum(sel_)) AS selected, toUInt64(sum(lab_)) AS labelled,
                    toUInt64(sum(pos_)) AS positives, toUInt64(sum(tp_)) AS true_pos,
                    toUInt64(sum(fp_)) AS false_pos
             FROM {} GROUP BY bucket, grp ORDER BY bucket, grp",
            union(raw, roll)
        ))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roi_parts_meet_without_gaps_or_overlaps() {
        const D: u32 = 86_400 * 20_000; // a UTC midnight
        const H: u32 = 3600;
        let parts = |day_end, hour_from, hour_end, raw: &[(u32, u32)]| RoiParts {
            day_end,
            hour_from,
            hour_end,
            raw: raw.to_vec(),
        };
        // Days and hours reach the same point inside the open hour (after a pass): days, then
        // raw; no hourly rows (they would count the open hour's first half twice).
        let cov = D + 14 * H + 1800;
        assert_eq!(
            RoiParts::new(D - 86_400, true, (cov, cov), D + 14 * H + 1900),
            parts(cov, D + 15 * H, D + 15 * H, &[(cov, D + 14 * H + 1900)])
        );
        // The hourly rows a minute ahead (a pass between its two writes): still raw from the
        // days' end.
        assert_eq!(
            RoiParts::new(D - 86_400, true, (cov, cov + 60), D + 14 * H + 1900),
            parts(cov, D + 15 * H, D + 15 * H, &[(cov, D + 14 * H + 1900)])
        );
        // Days hours behind: raw to the next hour, whole hours, raw after the hours' end.
        let hours = D + 17 * H + 600;
        assert_eq!(
            RoiParts::new(D - 86_400, true, (cov, hours), hours + 100),
            parts(
                cov,
                D + 15 * H,
                hours,
                &[(cov, D + 15 * H), (hours, hours + 100)]
            )
        );
        // Days ending on the hour: hours from there, no raw lead.
        assert_eq!(
            RoiParts::new(D - 86_400, true, (D + 14 * H, hours), hours + 100),
            parts(D + 14 * H, D + 14 * H, hours, &[(hours, hours + 100)])
        );
        // A range ending inside a day before the coverage: whole days, whole hours, raw.
        assert_eq!(
            RoiParts::new(D - 86_400, true, (cov, cov), D + 5 * H + 7),
            parts(D, D, D + 5 * H, &[(D + 5 * H, D + 5 * H + 7)])
        );
        // Ranges under a day: hours from the start; nothing rolled up: raw only.
        assert_eq!(
            RoiParts::new(D + 10 * H, false, (cov, cov), cov + 5),
            parts(D + 10 * H, D + 10 * H, cov, &[(cov, cov + 5)])
        );
        assert_eq!(
            RoiParts::new(D + 10 * H, true, (0, 0), cov),
            parts(D + 10 * H, D + 10 * H, D + 10 * H, &[(D + 10 * H, cov)])
        );
    }

    #[test]
    fn buckets_are_round() {
        assert_eq!(bucket_for(0, 60, 60), 1);
        assert_eq!(bucket_for(0, 3600, 60), 60);
        assert_eq!(bucket_for(0, 86400, 60), 1800);
        assert_eq!(bucket_for(10, 10, 60), 1);
    }

    #[test]
    fn presence_takes_each_versions_inferences_from_the_same_rows() {
        let row = |version: &str, name: &str, n: u64| PresenceRow {
            version: version.into(),
            name: name.into(),
            n,
        };
        let p = presence_from_rows(vec![
            row("v1", "", 100),
            row("v1", "plan", 97),
            row("v1", "tenure", 100),
            row("v2", "", 3),
        ]);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].version.as_str(), p[0].events), ("v1", 100));
        assert_eq!(p[0].present.get("plan"), Some(&97));
        assert_eq!((p[1].version.as_str(), p[1].events), ("v2", 3));
        assert!(
            p[1].present.is_empty(),
            "inferences without features still count"
        );
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
