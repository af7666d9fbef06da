//! Rollups of `inference_events` for the dashboards (migrations 7 and 8), and their compactor.
//!
//! - per minute: counts, sums and a latency histogram per version (`inference_rollup_1m`),
//!   fairness counts per attribute value (`inference_groups_1m`), feature presence
//!   (`inference_features_1m`), and a bottom-k sample of the minute's events by hash of their
//!   id (`inference_sample_rank_1m`, [`sample_select`]) for the drift page's distributions;
//! - per hour: per-unit sums for the ROI page (`inference_units_1h`), since ROI is per unit and
//!   a unit served every few minutes would make per-minute unit rows as many as the events.
//!
//! Rollup rows are never incremented: a minute is always *recomputed* from the raw table with
//! `FINAL` (`INSERT INTO rollup SELECT … FROM inference_events FINAL WHERE ts in that minute`,
//! run inside ClickHouse), and the tables are `ReplacingMergeTree(computed_ms)` read with
//! `FINAL`, so the newest recomputation of a minute is the one readers see. A duplicate
//! (producer retry, Kafka replay after a crash) re-inserted into an already rolled-up minute makes
//! that minute dirty; recomputing it still counts the event once. Recomputing a minute that did
//! not change writes the same numbers again: the compactor is idempotent and safe to re-run.
//!
//! Which minutes are recomputed: the closed ones (ended at least `lag_secs` ago) that hold rows
//! ingested since the previous pass (`ingested_at`, looked at `overlap_secs` further back
//! because the writer stamps rows before their batch is stored), the ones not yet compacted at
//! all, and the ones whose inferences got outcomes since the previous pass (fairness counts
//! labels). The unit rows follow a few minutes behind (see `compact_units`): the open hour
//! is extended minute by minute, other hours are recomputed when they change.
//! `rollup_state.compacted_until` then says: every minute before it is in the rollups; readers
//! take the rollups before it and the raw table (with `FINAL`) after it.

use crate::{Store, StoreError};
use serde::Deserialize;
use std::time::{SystemTime, UNIX_EPOCH};

/// The row of `rollup_state` this compactor owns. Renamed whenever the set of rollup tables
/// grows or one is replaced (migration 8 added the samples and unit rollups, 13 the unit days,
/// 14 re-keyed the samples under a new name): a store upgraded from an older
/// version then reads watermark 0, pages fall back to the raw table, and the first pass
/// recomputes every minute into every rollup.
const STATE_NAME: &str = "inference.v5";

/// Events sampled per model and minute for the drift page's distributions
/// (`inference_sample_rank_1m`).
pub const SAMPLE_PER_MINUTE: u16 = 1000;

/// The bottom-`k` sample of `raw`'s events matching `filter` (SQL over the raw columns, e.g. a
/// model and a time range), per model and minute: the `k` events with the smallest
/// `cityHash64(event_id)`, their rank (1 = smallest), the number of events in the minute, and
/// their features. The compactor stores it with `k = SAMPLE_PER_MINUTE`; readers run it for
/// the minutes not rolled up, so both pick the same events (the first `r` of a minute's sample
/// are its bottom-`r` sample).
pub fn sample_select(raw: &str, filter: &str, k: u16) -> String {
    // The picked hashes become rows (hash, rank) and the events are joined to them by
    // (model, minute, hash): the join emits only sampled events. Joining each event to its
    // minute's array of picked hashes instead and searching it (`indexOf`) copied that array
    // into every event's row: a 10-minute compactor chunk of two models took 4.1-4.4 s instead
    // of 0.30-0.35 s on ClickHouse 18.16, 0.65-0.86 s instead of 0.13 s on chDB, and a
    // 60-minute chunk 4.7 s and 1.08 GB resident instead of 0.61 s and 0.38 GB on chDB, the
    // same rows either way. Nothing after the ARRAY JOIN may name `picked` itself, or it is
    // copied into each of its k rows (`picked[r - 1]` did: 1.8 GB for that chunk).
    // A hash picked twice (one event_id stored under two versions or timestamps) keeps its
    // first rank, as `indexOf` gave it, and both events.
    format!(
        "SELECT model, minute, rank, n AS minute_events, ts,
                num_names, num_values, cat_names, cat_values
         FROM (
             SELECT model, toDateTime(intDiv(toUInt32(ts), 60) * 60) AS minute,
                    cityHash64(event_id) AS h, ts, num_names, num_values, cat_names, cat_values
             FROM {raw} FINAL WHERE {filter}
         ) AS e ALL INNER JOIN (
             SELECT model, minute, n, h, toUInt16(r) AS rank
             FROM (
                 SELECT model, toDateTime(intDiv(toUInt32(ts), 60) * 60) AS minute,
                        toUInt64(count()) AS n,
                        arraySlice(arraySort(groupArray(cityHash64(event_id))), 1, {k}) AS picked
                 FROM {raw} FINAL WHERE {filter}
                 GROUP BY model, minute
             ) ARRAY JOIN picked AS h, arrayEnumerate(picked) AS r,
                          arrayEnumerateUniq(picked) AS seen
             WHERE seen = 1
         ) AS s USING (model, minute, h)"
    )
}

/// Latency histogram bin of `latency_ms` (SQL): `floor(ln(1 + ms) * 50)`, about 2 % wide, so a
/// quantile read from it is within ±1 % of the exact one; 65535 = no latency.
pub const LATENCY_BIN_SQL: &str = "if(isNull(latency_ms), toUInt16(65535), toUInt16(least(65534, floor(log(1 + greatest(0, assumeNotNull(latency_ms))) * 50))))";

/// The same log bin as [`LATENCY_BIN_SQL`] for a non-null value of another column (the LLM
/// rollup's TTFT and output tokens/s): `floor(ln(1 + x) * 50)`, capped at 65534.
pub fn log_bin_sql(col: &str) -> String {
    format!("toUInt16(least(65534, floor(log(1 + greatest(0, assumeNotNull({col}))) * 50)))")
}

/// A generative (LLM) inference: one with any of these fields (a failed request may have
/// none). The LLM page's definition, shared with its rollup.
pub const GENERATIVE_SQL: &str = "(isNotNull(ttft_ms) OR isNotNull(completion_tokens) \
                                  OR isNotNull(prompt_tokens) OR finish_reason != '')";

/// A failed inference: no prediction (no score, no label; a finished generation's label is
/// its finish reason), as everywhere else in vigil.
pub const FAILED_SQL: &str = "(isNull(score) AND isNull(label))";

/// What the LLM page counts as a request's answer: its finish reason, else its label (`''`
/// for neither); failed requests are counted apart.
pub const ANSWER_SQL: &str = "if(finish_reason != '', finish_reason, ifNull(label, ''))";

/// The generative columns of `raw`'s events matching `filter`, per model, version and minute,
/// for the models with a generative event there (`inference_llm_1m`, migration 12).
pub fn llm_rollup_select(raw: &str, filter: &str) -> String {
    let ttft = log_bin_sql("ttft_ms");
    let tps = log_bin_sql("output_tps");
    format!(
        "SELECT model, version, minute, toUInt64(sum(g)) AS generative, toUInt64(sum(st)) AS streamed,
                toUInt64(sum(pn)) AS prompt_n, toUInt64(sum(ps)) AS prompt_sum,
                toUInt64(sum(cn)) AS completion_n, toUInt64(sum(cs)) AS completion_sum,
                toUInt64(sum(tn)) AS tokens_n, toUInt64(sum(est)) AS estimated,
                CAST(tupleElement(sumMap(tk, tv), 1) AS Array(UInt16)) AS ttft_bins,
                CAST(tupleElement(sumMap(tk, tv), 2) AS Array(UInt64)) AS ttft_counts,
                CAST(tupleElement(sumMap(pk, pv), 1) AS Array(UInt16)) AS tps_bins,
                CAST(tupleElement(sumMap(pk, pv), 2) AS Array(UInt64)) AS tps_counts,
                CAST(groupArrayIf(answer, NOT failed) AS Array(String)) AS reasons,
                CAST(groupArrayIf(n, NOT failed) AS Array(UInt64)) AS reason_counts
         FROM (
             SELECT model, version, toDateTime(intDiv(toUInt32(ts), 60) * 60) AS minute,
                    toUInt8({FAILED_SQL}) AS failed, if(failed = 1, '', {ANSWER_SQL}) AS answer,
                    toUInt64(count()) AS n,
                    toUInt64(sum({GENERATIVE_SQL})) AS g, toUInt64(sum(streamed)) AS st,
                    toUInt64(sum(isNotNull(prompt_tokens))) AS pn,
                    toUInt64(sum(ifNull(prompt_tokens, 0))) AS ps,
                    toUInt64(sum(isNotNull(completion_tokens))) AS cn,
                    toUInt64(sum(ifNull(completion_tokens, 0))) AS cs,
                    toUInt64(sum(isNotNull(prompt_tokens) OR isNotNull(completion_tokens))) AS tn,
                    toUInt64(sum(tokens_estimated)) AS est,
                    tupleElement(sumMapIf([{ttft}], [toUInt64(1)], isNotNull(ttft_ms)), 1) AS tk,
                    tupleElement(sumMapIf([{ttft}], [toUInt64(1)], isNotNull(ttft_ms)), 2) AS tv,
                    tupleElement(sumMapIf([{tps}], [toUInt64(1)], isNotNull(output_tps)), 1) AS pk,
                    tupleElement(sumMapIf([{tps}], [toUInt64(1)], isNotNull(output_tps)), 2) AS pv
             FROM {raw} FINAL
             WHERE {filter} AND model IN (SELECT model FROM {raw} WHERE {filter} AND {GENERATIVE_SQL})
             GROUP BY model, version, minute, failed, answer
         ) GROUP BY model, version, minute"
    )
}

/// Bins per unit of `ln(1 + ms)` in [`LATENCY_BIN_SQL`].
pub const LATENCY_BINS_PER_LN: f64 = 50.0;

/// The latency a bin stands for: the middle of the bin on the log scale.
pub fn latency_of_bin(bin: u16) -> f64 {
    ((f64::from(bin) + 0.5) / LATENCY_BINS_PER_LN).exp() - 1.0
}

/// The `q` quantile (0..=1) of a latency histogram: the bin holding the ⌈q·n⌉-th smallest value
/// (at least the first). `None` when the histogram is empty.
pub fn histogram_quantile(bins: &[(u16, u64)], q: f64) -> Option<f64> {
    let total: u64 = bins.iter().map(|b| b.1).sum();
    if total == 0 {
        return None;
    }
    let mut sorted: Vec<(u16, u64)> = bins.to_vec();
    sorted.sort_unstable_by_key(|b| b.0);
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0u64;
    for (bin, n) in &sorted {
        seen += n;
        if seen >= rank {
            return Some(latency_of_bin(*bin));
        }
    }
    sorted.last().map(|b| latency_of_bin(b.0))
}

/// How a compaction pass chooses its minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactOptions {
    /// A minute is closed once it ended this many seconds ago; later minutes stay raw.
    pub lag_secs: u32,
    /// Rows ingested this long before the previous pass are looked at again: the writer stamps
    /// `ingested_at` when it decodes a row, a little before its batch is stored.
    pub overlap_secs: u32,
    /// Recompute every closed minute, not only the dirty ones (after a store outage longer than
    /// `overlap_secs`, or to rebuild).
    pub full: bool,
    /// At most this many minutes per statement, so one statement stays short (on the embedded
    /// store, pages wait while it runs).
    pub chunk_minutes: u32,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            lag_secs: 30,
            overlap_secs: 120,
            full: false,
            chunk_minutes: 60,
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompactReport {
    /// Minutes that needed a recomputation.
    pub dirty_minutes: u64,
    /// `INSERT … SELECT` ranges run (each covers up to `chunk_minutes`).
    pub chunks: u64,
    /// Hours whose unit rows were recomputed whole, and hours extended by new minutes only.
    pub unit_hours_recomputed: u64,
    pub unit_hours_extended: u64,
    /// Days whose unit rows were recomputed from all their hours, and days extended by what
    /// arrived since their rows were written.
    pub unit_days_recomputed: u64,
    pub unit_days_extended: u64,
    /// The watermark before and after the pass (unix seconds, a minute boundary).
    pub compacted_until_before: u32,
    pub compacted_until: u32,
}

/// The compactor's progress (`rollup_state`); zeros before the first pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clickhouse::Row, Deserialize)]
pub struct RollupState {
    /// Every minute before this (unix seconds) is in the rollups.
    pub compacted_until: u32,
    /// Rows ingested up to here were looked at.
    pub ingest_mark: u32,
}

/// Reads the watermark. Zeros when no pass has run yet.
pub async fn state(store: &Store) -> Result<RollupState, StoreError> {
    let rows: Vec<RollupState> = store
        .fetch(&format!(
            "SELECT toUInt32(argMax(compacted_until, updated_ms)) AS compacted_until,
                    toUInt32(argMax(ingest_mark, updated_ms)) AS ingest_mark
             FROM {} WHERE name = {}",
            store.table("rollup_state"),
            crate::sql_string(STATE_NAME)
        ))
        .await?;
    Ok(rows.into_iter().next().unwrap_or_default())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(clickhouse::Row, Deserialize)]
struct Minute {
    minute: u32,
}

/// Groups sorted minutes into `[start, end)` ranges of at most `max` minutes; a gap of up to 30
/// clean minutes is recomputed along (cheaper than another statement, and harmless).
pub fn chunks(minutes: &[u32], max: u32) -> Vec<(u32, u32)> {
    const GAP: u32 = 30 * 60;
    let max = max.max(1) * 60;
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &m in minutes {
        match out.last_mut() {
            Some((_, end)) if m < *end => {}
            Some((start, end)) if m - *end <= GAP && m + 60 - *start <= max => *end = m + 60,
            _ => out.push((m, m + 60)),
        }
    }
    out
}

/// One compaction pass at wall-clock `now` (unix seconds); see the module docs.
pub async fn compact(
    store: &Store,
    opts: &CompactOptions,
    now: u32,
) -> Result<CompactReport, StoreError> {
    let before = state(store).await?;
    let closed_until = now.saturating_sub(opts.lag_secs) / 60 * 60;
    let raw = store.table("inference_events");
    let mark = before.ingest_mark.saturating_sub(opts.overlap_secs);
    let closed = format!("ts < toDateTime({closed_until})");
    let dirty_sql = if opts.full {
        format!(
            "SELECT DISTINCT toUInt32(intDiv(toUInt32(ts), 60) * 60) AS minute FROM {raw} WHERE {closed}"
        )
    } else {
        // Rows stamped since the previous pass started; the ones stamped a little before it
        // (the overlap) are checked by `changed_in_overlap` instead of recomputed blindly.
        format!(
            "SELECT DISTINCT toUInt32(intDiv(toUInt32(ts), 60) * 60) AS minute FROM {raw}
             WHERE {closed} AND (ingested_at >= toDateTime({fresh}) OR ts >= toDateTime({cu})
                   OR event_id IN (SELECT inference_id FROM {out}
                                   WHERE ingested_at >= toDateTime({mark}) AND inference_id != ''))",
            fresh = before.ingest_mark,
            cu = before.compacted_until,
            out = store.table("outcome_events"),
        )
    };
    let mut minutes: Vec<u32> = store
        .fetch::<Minute>(&dirty_sql)
        .await?
        .into_iter()
        .map(|m| m.minute)
        .collect();
    minutes.sort_unstable();
    if !opts.full && before.ingest_mark > 0 {
        let changed = changed_in_overlap(store, &before, opts, &closed, &minutes).await?;
        minutes.extend(changed);
        minutes.sort_unstable();
    }
    let ranges = chunks(&minutes, opts.chunk_minutes);
    if !ranges.is_empty() {
        tracing::info!(
            dirty_minutes = minutes.len(),
            statements = ranges.len(),
            "rollup: recomputing minutes"
        );
    }
    for (i, (start, end)) in ranges.iter().enumerate() {
        recompute(store, *start, *end).await?;
        tracing::info!(
            from = *start,
            until = *end,
            done = i + 1,
            of = ranges.len(),
            "rollup: minutes recomputed"
        );
    }
    let compacted_until = closed_until.max(before.compacted_until);
    let units = compact_units(store, opts, now, compacted_until, &minutes).await?;
    store
        .execute(&format!(
            "INSERT INTO {} (name, compacted_until, ingest_mark, updated_ms)
             SELECT {}, toDateTime({compacted_until}), toDateTime({now}), toUInt64({})",
            store.table("rollup_state"),
            crate::sql_string(STATE_NAME),
            now_ms()
        ))
        .await?;
    Ok(CompactReport {
        dirty_minutes: minutes.len() as u64,
        unit_hours_recomputed: units.hours_recomputed,
        unit_hours_extended: units.hours_extended,
        unit_days_recomputed: units.days_recomputed,
        unit_days_extended: units.days_extended,
        chunks: ranges.len() as u64,
        compacted_until_before: before.compacted_until,
        compacted_until,
    })
}

/// The closed, already compacted minutes (not in `dirty`, sorted) with rows stamped in the overlap
/// before the previous pass — `[ingest_mark − overlap_secs, ingest_mark)` — whose rolled-up
/// event count no longer equals the raw table's. The writer stamps `ingested_at` before its
/// batch is stored, so such a row may have been stored after the previous pass looked; but most
/// were seen by it, and recomputing all of them made every pass in the two minutes after a bulk
/// load redo the load (issue #17: 52 s passes at 10 M events, pages waiting behind them).
/// Counting a minute's events is one read of its rows; recomputing it is five statements.
async fn changed_in_overlap(
    store: &Store,
    before: &RollupState,
    opts: &CompactOptions,
    closed: &str,
    dirty: &[u32],
) -> Result<Vec<u32>, StoreError> {
    let raw = store.table("inference_events");
    let mark = before.ingest_mark;
    let from = mark.saturating_sub(opts.overlap_secs);
    let candidates: Vec<u32> = store
        .fetch::<Minute>(&format!(
            "SELECT DISTINCT toUInt32(intDiv(toUInt32(ts), 60) * 60) AS minute FROM {raw}
             WHERE {closed} AND ts < toDateTime({cu})
               AND ingested_at >= toDateTime({from}) AND ingested_at < toDateTime({mark})",
            cu = before.compacted_until,
        ))
        .await?
        .into_iter()
        .map(|m| m.minute)
        .filter(|m| dirty.binary_search(m).is_err())
        .collect();
    let (Some(lo), Some(hi)) = (candidates.iter().min(), candidates.iter().max()) else {
        return Ok(Vec::new());
    };
    let list = candidates
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let changed: Vec<u32> = store
        .fetch::<Minute>(&format!(
            "SELECT minute FROM (
                 SELECT toUInt32(intDiv(toUInt32(ts), 60) * 60) AS minute, toUInt64(count()) AS n
                 FROM {raw} FINAL
                 WHERE ts >= toDateTime({lo}) AND ts < toDateTime({end})
                   AND toUInt32(intDiv(toUInt32(ts), 60) * 60) IN ({list})
                 GROUP BY minute
             ) AS r ANY LEFT JOIN (
                 SELECT toUInt32(minute) AS minute, toUInt64(sum(events)) AS rolled
                 FROM {roll} FINAL
                 WHERE minute >= toDateTime({lo}) AND minute < toDateTime({end})
                 GROUP BY minute
             ) AS c USING (minute)
             WHERE n != rolled",
            end = hi + 60,
            roll = store.table("inference_rollup_1m"),
        ))
        .await?
        .into_iter()
        .map(|m| m.minute)
        .collect();
    tracing::debug!(
        checked = candidates.len(),
        changed = changed.len(),
        "rollup: minutes stamped in the overlap"
    );
    Ok(changed)
}

/// Recomputes the rollups of every minute in `[start, end)` from the raw tables, in ClickHouse.
async fn recompute(store: &Store, start: u32, end: u32) -> Result<(), StoreError> {
    let raw = store.table("inference_events");
    let range = format!("ts >= toDateTime({start}) AND ts < toDateTime({end})");
    let ms = now_ms();
    // Per (model, version, minute, latency bin) first, so the histogram is a by-product of the
    // same scan; every sum is over non-Nullable values (18.16 keeps sums of Nullable Nullable).
    store
        .execute(&format!(
            "INSERT INTO {roll} (model, version, minute, events, failed, score_n, score_sum, latency_n,
                                 latency_sum, cost_n, cost_sum, min_ts, max_ts, latency_bins,
                                 latency_counts, computed_ms)
             SELECT model, version, minute, toUInt64(sum(n)), toUInt64(sum(fl)), toUInt64(sum(sn)), toFloat64(sum(ss)),
                    toUInt64(sum(lat_n)), toFloat64(sum(lat_s)), toUInt64(sum(cn)), toFloat64(sum(cs)),
                    min(lo), max(hi),
                    CAST(groupArrayIf(bin, bin != 65535) AS Array(UInt16)),
                    CAST(groupArrayIf(n, bin != 65535) AS Array(UInt64)),
                    toUInt64({ms})
             FROM (
                 SELECT model, version, toDateTime(intDiv(toUInt32(ts), 60) * 60) AS minute,
                        {bin} AS bin, toUInt64(count()) AS n,
                        toUInt64(sum(isNull(score) AND isNull(label))) AS fl,
                        toUInt64(sum(isNotNull(score))) AS sn, toFloat64(sum(ifNull(score, 0))) AS ss,
                        toUInt64(sum(isNotNull(latency_ms))) AS lat_n,
                        toFloat64(sum(ifNull(latency_ms, 0))) AS lat_s,
                        toUInt64(sum(isNotNull(cost))) AS cn, toFloat64(sum(ifNull(cost, 0))) AS cs,
                        min(ts) AS lo, max(ts) AS hi
                 FROM {raw} FINAL WHERE {range}
                 GROUP BY model, version, minute, bin
             ) GROUP BY model, version, minute",
            roll = store.table("inference_rollup_1m"),
            bin = LATENCY_BIN_SQL,
        ))
        .await?;
    // Feature presence, as the drift page's data-quality table counts it.
    store
        .execute(&format!(
            "INSERT INTO {feats} (model, version, minute, name, present, computed_ms)
             SELECT model, version, toDateTime(intDiv(toUInt32(ts), 60) * 60) AS minute, f,
                    toUInt64(count()), toUInt64({ms})
             FROM {raw} FINAL ARRAY JOIN arrayConcat(num_names, cat_names) AS f
             WHERE {range}
             GROUP BY model, version, minute, f",
            feats = store.table("inference_features_1m"),
        ))
        .await?;
    // The drift page's sample.
    store
        .execute(&format!(
            "INSERT INTO {sample} (model, minute, rank, minute_events, ts, num_names, num_values,
                                   cat_names, cat_values, computed_ms)
             SELECT model, minute, rank, minute_events, ts, num_names, num_values, cat_names,
                    cat_values, toUInt64({ms})
             FROM ({select}) AS picked",
            sample = store.table("inference_sample_rank_1m"),
            select = sample_select(&raw, &range, SAMPLE_PER_MINUTE),
        ))
        .await?;
    // The LLM page's generative columns (models with a generative event in the range only).
    store
        .execute(&format!(
            "INSERT INTO {llm} (model, version, minute, generative, streamed, prompt_n, prompt_sum,
                                completion_n, completion_sum, tokens_n, estimated, ttft_bins,
                                ttft_counts, tps_bins, tps_counts, reasons, reason_counts, computed_ms)
             SELECT *, toUInt64({ms}) FROM ({select}) AS generated",
            llm = store.table("inference_llm_1m"),
            select = llm_rollup_select(&raw, &range),
        ))
        .await?;
    // Fairness: the same definitions as the dashboards' per-attribute query, for every
    // attribute at once; outcomes as stored now (a later outcome re-dirties the minute).
    store
        .execute(&format!(
            "INSERT INTO {groups} (model, attr, grp, minute, n, selected, labelled, positives,
                                   true_pos, false_pos, computed_ms)
             SELECT model, a, g, minute, toUInt64(count()), toUInt64(sum(pred)),
                    toUInt64(sum(has_out)), toUInt64(sum(pos)), toUInt64(sum(pred * pos)),
                    toUInt64(sum(pred * has_out * (1 - pos))), toUInt64({ms})
             FROM (
                 SELECT model, a, g, minute, pred, {linked}
                 FROM (
                     SELECT model, event_id, toUInt32(ts) AS i_ts,
                            toDateTime(intDiv(toUInt32(ts), 60) * 60) AS minute, a, g,
                            toUInt64(if(isNull(label), ifNull(score, 0) >= 0.5, ifNull(label, '') IN ('positive', '1', 'true'))) AS pred
                     FROM {raw} FINAL ARRAY JOIN attr_names AS a, attr_values AS g
                     WHERE {range}
                 ) AS served ANY LEFT JOIN ({outcomes}) AS results USING (model, event_id)
             )
             GROUP BY model, a, g, minute",
            groups = store.table("inference_groups_1m"),
            linked = labelled_sql(),
            outcomes = outcomes_of(store, &range, start),
        ))
        .await
}

/// How long before the inference it names an outcome may be stamped and still count for it
/// (ROI, fairness, KPIs). Outcomes come after their inference; this allows for the clocks of
/// whoever sends outcomes and of the model server. An outcome stamped earlier than this is
/// taken for a wrong id or clock and counted nowhere, and in return every read of outcomes
/// starts at its inferences' range minus this instead of at the first outcome ever stored
/// (at 30 M outcomes, linking a few minutes of inferences read them all: 1.8–2.1 s).
pub const OUTCOME_LEAD_SECS: u32 = 3600;

/// The outcomes linked to the inferences matching `filter` (SQL over `inference_events`, all
/// with `ts ≥ from`), per (model, inference): their times and values as parallel arrays
/// (`o_ts`, `o_names`, `o_vals`), for [`labelled_sql`] and [`linked_outcomes_sql`] to keep
/// the ones within [`OUTCOME_LEAD_SECS`] of the inference (`i_ts` beside them after the join).
pub fn outcomes_of(store: &Store, filter: &str, from: u32) -> String {
    format!(
        "SELECT model, inference_id AS event_id,
                CAST(groupArray(toUInt32(ts)) AS Array(UInt32)) AS o_ts,
                CAST(groupArray(name) AS Array(String)) AS o_names,
                CAST(groupArray(value) AS Array(Float64)) AS o_vals
         FROM {out} FINAL
         WHERE inference_id != '' AND ts >= toDateTime({lo})
           AND inference_id IN (SELECT event_id FROM {inf} WHERE {filter})
         GROUP BY model, inference_id",
        out = store.table("outcome_events"),
        inf = store.table("inference_events"),
        lo = from.saturating_sub(OUTCOME_LEAD_SECS),
    )
}

/// Whether an outcome stamped at `t` counts for the inference at `x` (SQL, inside a lambda
/// over the outcomes' arrays and [`I_TS_PER_OUTCOME`]).
pub fn counts_sql(t: &str, x: &str) -> String {
    format!("{t} + {OUTCOME_LEAD_SECS} >= {x}")
}

/// The inference's time (`i_ts`) once per outcome, for lambdas over the outcomes' arrays:
/// ClickHouse 18.16 does not see a column captured inside a lambda as one the joined
/// subquery must give ("Unknown identifier: i_ts"), so it is passed as an array argument.
pub const I_TS_PER_OUTCOME: &str = "arrayResize([i_ts], length(o_ts), i_ts)";

/// Fairness's view of an inference's outcomes (after [`outcomes_of`]): `has_out` (labelled)
/// and `pos` (a positive value), over the outcomes that count for it.
pub fn labelled_sql() -> String {
    format!(
        "toUInt64(arrayExists((t, x) -> {c}, o_ts, {I_TS_PER_OUTCOME})) AS has_out,
         toUInt64(arrayExists((t, v, x) -> {c} AND v > 0, o_ts, o_vals, {I_TS_PER_OUTCOME})) AS pos",
        c = counts_sql("t", "x")
    )
}

/// The names and values of the outcomes that count for the inference (after
/// [`outcomes_of`]), as `names_as` and `vals_as`.
pub fn linked_outcomes_sql(names_as: &str, vals_as: &str) -> String {
    format!(
        "arrayFilter((n, t, x) -> {c}, o_names, o_ts, {I_TS_PER_OUTCOME}) AS {names_as},
         arrayFilter((v, t, x) -> {c}, o_vals, o_ts, {I_TS_PER_OUTCOME}) AS {vals_as}",
        c = counts_sql("t", "x")
    )
}

/// Events reaching the store more than this long after their `ts` (on top of the overlap)
/// are late for the unit rollups: the hour they fall in is recomputed whole, not extended.
pub const UNIT_DELAY_SECS: u32 = 60;

/// The daily unit rows (partitioned by day, see `schema` migration 15), read by the ROI page
/// over a day or more.
pub const UNIT_DAYS: &str = "inference_units_daily";

/// What the unit rollups' part of a pass did.
#[derive(Debug, Default, Clone, Copy)]
struct UnitWork {
    hours_recomputed: u64,
    hours_extended: u64,
    days_recomputed: u64,
    days_extended: u64,
}

/// The unit rollups' part of a pass: the hourly rows, then the daily rows merged from them.
///
/// Unit rows cover each hour up to the *stable* point `now − overlap − UNIT_DELAY_SECS`
/// (capped by the watermark), a few minutes behind the minute rollups: rows with a `ts` before
/// it are (almost always) stored and outside the ingest overlap, so the next pass does not
/// mark their minutes dirty again, and the open hour can be *extended* by the minutes that
/// became stable instead of being recomputed from all of its events (at 1 k events/s the open
/// hour reaches 3.6 M rows: seconds per recomputation, and on the embedded store pages wait
/// while it runs). An hour is recomputed whole when a dirty minute lies inside what its rows
/// already cover (late events or outcomes), on `--full`, or when it has no rows yet; an hour
/// without events has nothing to compute and is left (it has no rows, so it would otherwise
/// look new on every pass). Readers take the raw table from the rows' `covered_until` on, so
/// nothing counts twice.
async fn compact_units(
    store: &Store,
    opts: &CompactOptions,
    now: u32,
    compacted_until: u32,
    dirty_minutes: &[u32],
) -> Result<UnitWork, StoreError> {
    let stable =
        (now.saturating_sub(opts.overlap_secs + UNIT_DELAY_SECS) / 60 * 60).min(compacted_until);
    // Hours with dirty minutes, plus every hour from the current frontier (the newest
    // coverage) up to the stable point: they may have events that became stable.
    let frontier = units_frontier(store, compacted_until).await?;
    let mut hours: Vec<u32> = dirty_minutes.iter().map(|m| m / 3600 * 3600).collect();
    if frontier > 0 {
        let mut h = frontier / 3600 * 3600;
        while h < stable {
            hours.push(h);
            h += 3600;
        }
    }
    hours.sort_unstable();
    hours.dedup();
    hours.retain(|h| *h < stable);
    let covered = units_covered(store, "inference_units_1h", "hour", &hours).await?;
    let with_events = periods_with_events(store, &hours, stable, 3600).await?;
    let mut work = UnitWork::default();
    let mut recomputed_hours = Vec::new();
    for (i, hour) in hours.iter().enumerate() {
        let end = (*hour + 3600).min(stable);
        let cov = covered.get(hour).copied().unwrap_or(0);
        if cov == 0 && !with_events.contains(hour) {
            continue;
        }
        let stale = opts.full
            || cov <= *hour
            || dirty_minutes
                .iter()
                .any(|m| m / 3600 * 3600 == *hour && *m < cov);
        let action = if stale {
            recompute_units(store, *hour, end).await?;
            work.hours_recomputed += 1;
            recomputed_hours.push(*hour);
            "recomputed"
        } else if end > cov {
            extend_units(store, *hour, cov, end).await?;
            work.hours_extended += 1;
            "extended"
        } else {
            continue;
        };
        tracing::info!(
            hour = *hour,
            until = end,
            action,
            done = i + 1,
            of = hours.len(),
            "rollup: unit hour"
        );
    }
    // Days reach the stable point too, as the hours just written do.
    let (recomputed, extended) =
        compact_unit_days(store, opts, stable, &hours, &recomputed_hours).await?;
    work.days_recomputed = recomputed;
    work.days_extended = extended;
    Ok(work)
}

/// The periods (hours or days, `secs` long) from the first of `starts` up to `until` that hold
/// compacted events, from the minute rollups (an hour or a day without events has no unit
/// rows, so its coverage alone cannot tell it from one not computed yet).
async fn periods_with_events(
    store: &Store,
    starts: &[u32],
    until: u32,
    secs: u32,
) -> Result<std::collections::HashSet<u32>, StoreError> {
    let Some(first) = starts.first() else {
        return Ok(Default::default());
    };
    #[derive(clickhouse::Row, Deserialize)]
    struct Period {
        period: u32,
    }
    // The alias must not be `minute`: ClickHouse would put the alias's expression (the
    // period's start) in place of the column in WHERE, and a day with events only after
    // `until` would count as one with events before it (then recomputed on every pass).
    let rows: Vec<Period> = store
        .fetch(&format!(
            "SELECT DISTINCT toUInt32(intDiv(toUInt32(minute), {secs}) * {secs}) AS period
             FROM {} WHERE minute >= toDateTime({first}) AND minute < toDateTime({until})",
            store.table("inference_rollup_1m")
        ))
        .await?;
    Ok(rows.into_iter().map(|p| p.period).collect())
}

/// The daily unit rows ([`UNIT_DAYS`]): each day holds its units' sums up to `stable` (the
/// point this pass's hourly rows reach), so the ROI page over a day or more reads one row per
/// unit and day, the open hour included, instead of merging the open hour's hourly rows (which
/// hold a version of a unit for every pass that served it) on every request. `hours` are the
/// hours this pass looked at, `recomputed_hours` the ones it recomputed.
///
/// A day is extended by what arrived since its rows were written, when anything did: its
/// stored rows plus the sums of `[covered_until, stable)` (see [`since_coverage`]); it is
/// recomputed from all of its hourly rows when one of the hours it holds was recomputed (late
/// events or outcomes), on `--full`, or when it has no rows yet. Returns (days recomputed,
/// days extended).
async fn compact_unit_days(
    store: &Store,
    opts: &CompactOptions,
    stable: u32,
    hours: &[u32],
    recomputed_hours: &[u32],
) -> Result<(u64, u64), StoreError> {
    let day_of = |t: u32| t / 86_400 * 86_400;
    // The days of this pass's hours, and every day from the current frontier on.
    let mut days: Vec<u32> = hours.iter().map(|h| day_of(*h)).collect();
    let frontier = days_frontier(store, stable).await?;
    if frontier > 0 {
        let mut d = day_of(frontier);
        while d < stable {
            days.push(d);
            d += 86_400;
        }
    }
    days.sort_unstable();
    days.dedup();
    let covered = units_covered(store, UNIT_DAYS, "day", &days).await?;
    // Minutes with events, from the days' first on: a day is written only when some of its
    // minutes have events (any when new, after its coverage when extended).
    let with_events = periods_with_events(store, &days, stable, 60).await?;
    let has_events = |from: u32, to: u32| with_events.iter().any(|m| *m >= from && *m < to);
    let (mut recomputed, mut extended) = (0u64, 0u64);
    for day in &days {
        let end = (*day + 86_400).min(stable);
        let cov = covered.get(day).copied().unwrap_or(0);
        if cov == 0 && !has_events(*day, end) {
            continue;
        }
        let stale = opts.full
            || cov <= *day
            || recomputed_hours
                .iter()
                .any(|h| day_of(*h) == *day && *h < cov);

        let action = if stale {
            let hours = format!("hour >= toDateTime({day}) AND hour < toDateTime({end})");
            let by_name = stored_units_by_name(store, "inference_units_1h", &hours, true);
            write_units(store, UNIT_DAYS, "day", *day, end, &by_name).await?;
            recomputed += 1;
            "recomputed"
        } else if end > cov && has_events(cov, end) {
            let stored =
                stored_units_by_name(store, UNIT_DAYS, &format!("day = toDateTime({day})"), false);
            let by_name = format!("{stored} UNION ALL {}", since_coverage(store, cov, end));
            write_units(store, UNIT_DAYS, "day", *day, end, &by_name).await?;
            extended += 1;
            "extended"
        } else {
            continue;
        };
        merge_day(store, *day).await;
        tracing::info!(day = *day, until = end, action, "rollup: unit day");
    }
    Ok((recomputed, extended))
}

/// The per-name unit sums of `[from, end)` for extending a day, read where they are cheapest:
/// whole hours and the hour `end` falls in from their hourly rows (which this pass wrote up to
/// `end`), and the rest of the hour `from` falls in, when `from` is not on the hour, from the
/// raw events (its hourly rows also hold the part before `from`, which the day already has).
/// Under live traffic that is the minute or so since the last pass; after a stop, at most an
/// hour of raw events.
fn since_coverage(store: &Store, from: u32, end: u32) -> String {
    let next_hour = from.div_ceil(3600) * 3600;
    let mut parts = Vec::new();
    if from < next_hour {
        parts.push(units_by_name_from_raw(store, from, next_hour.min(end)));
    }
    if next_hour < end {
        let hours = format!("hour >= toDateTime({next_hour}) AND hour < toDateTime({end})");
        parts.push(stored_units_by_name(
            store,
            "inference_units_1h",
            &hours,
            true,
        ));
    }
    parts.join(" UNION ALL ")
}

/// Merges the day's partition of [`UNIT_DAYS`] into one part, so the day holds one row per
/// unit again: every write above adds a version of each unit row it touches, and the ROI page
/// reads days with `FINAL`, which merges versions on every request until the background
/// merges do (2.4–3 versions per unit and day measured; `FINAL` over one part costs about
/// what a plain read does). The cost is the day's rows, once per write. A failure costs read
/// time only, not correctness, so it is logged and the pass goes on.
///
/// Not on a cluster: there it would be `OPTIMIZE … ON CLUSTER` of the local tables, a
/// distributed DDL task that waits for every node (180 s when one is down, and ClickHouse
/// 18.16's DDL worker was seen to stop for good after a ZooKeeper race), in every pass; the
/// servers' background merges do it there.
async fn merge_day(store: &Store, day: u32) {
    if store.cluster().is_some() {
        return;
    }
    let sql = format!(
        "OPTIMIZE TABLE {} PARTITION {} FINAL",
        store.table(UNIT_DAYS),
        day / 86_400
    );
    let started = std::time::Instant::now();
    match store.execute(&sql).await {
        Ok(()) => tracing::debug!(
            day,
            ms = started.elapsed().as_millis() as u64,
            "rollup: unit day merged"
        ),
        Err(e) => tracing::warn!(day, error = %e, "rollup: merging the unit day's rows failed"),
    }
}

/// The newest `covered_until` of the unit rows (0 when there are none). Only the last day
/// before the watermark is looked at, so a pass does not scan the whole table: the frontier
/// moves with every pass, and after a longer stop the hours with events since are dirty
/// anyway (every minute after the old watermark is).
async fn units_frontier(store: &Store, compacted_until: u32) -> Result<u32, StoreError> {
    let from = (compacted_until / 3600 * 3600).saturating_sub(86_400);
    newest_coverage(store, "inference_units_1h", "hour", from).await
}

/// The newest `covered_until` of the daily unit rows of the last two days before `stable`
/// (0 when there are none): after a longer stop the days with events since have recomputed
/// hours, which bring their days along.
async fn days_frontier(store: &Store, stable: u32) -> Result<u32, StoreError> {
    let from = (stable / 86_400 * 86_400).saturating_sub(86_400);
    newest_coverage(store, UNIT_DAYS, "day", from).await
}

async fn newest_coverage(
    store: &Store,
    table: &str,
    period: &str,
    from: u32,
) -> Result<u32, StoreError> {
    #[derive(clickhouse::Row, Deserialize)]
    struct F {
        until: u32,
    }
    let rows: Vec<F> = store
        .fetch(&format!(
            "SELECT toUInt32(max(covered_until)) AS until FROM {} WHERE {period} >= toDateTime({from})",
            store.table(table)
        ))
        .await?;
    Ok(rows.first().map_or(0, |f| f.until))
}

#[derive(clickhouse::Row, Deserialize)]
struct Covered {
    period: u32,
    until: u32,
}

/// How far each period's (hour's or day's) unit rows reach (`covered_until` of its newest
/// computation); periods without rows are left out.
async fn units_covered(
    store: &Store,
    table: &str,
    period: &str,
    starts: &[u32],
) -> Result<std::collections::HashMap<u32, u32>, StoreError> {
    if starts.is_empty() {
        return Ok(Default::default());
    }
    let list = starts
        .iter()
        .map(|h| format!("toDateTime({h})"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows: Vec<Covered> = store
        .fetch(&format!(
            "SELECT toUInt32({period}) AS period, toUInt32(max(covered_until)) AS until
             FROM {} WHERE {period} IN ({list}) GROUP BY {period}",
            store.table(table)
        ))
        .await?;
    Ok(rows.into_iter().map(|c| (c.period, c.until)).collect())
}

/// Per (model, version, unit, outcome name) sums of the raw events in `[start, end)` and the
/// outcomes that count for them ([`OUTCOME_LEAD_SECS`]): first inference `f`, inferences `n`,
/// costed `k`, cost `c`, outcome value `v`. An inference's own
/// counts are taken from its first row only (`o_i <= 1`: its first outcome, or 0 when it has
/// none), so summing the rows of a unit counts each inference once.
fn units_by_name_from_raw(store: &Store, start: u32, end: u32) -> String {
    let raw = store.table("inference_events");
    let range = format!("ts >= toDateTime({start}) AND ts < toDateTime({end})");
    format!(
        "SELECT model, version, unit_key, o_name, min(ts) AS f,
                toUInt64(sum(o_i <= 1)) AS n, toUInt64(sum(if(o_i <= 1, k1, 0))) AS k,
                toFloat64(sum(if(o_i <= 1, c1, 0))) AS c, toFloat64(sum(o_val)) AS v,
                toUInt8(1) AS fresh
         FROM (
             SELECT model, version, cityHash64(model, version, unit_id) AS unit_key, ts, c1, k1,
                    {linked}
             FROM (
                 SELECT model, event_id, version, unit_id, ts, toUInt32(ts) AS i_ts,
                        toFloat64(ifNull(cost, 0)) AS c1, toUInt64(isNotNull(cost)) AS k1
                 FROM {raw} FINAL WHERE {range}
             ) AS served ANY LEFT JOIN ({outcomes}) AS results USING (model, event_id)
         ) AS linked
         LEFT ARRAY JOIN names AS o_name, vals AS o_val, arrayEnumerate(names) AS o_i
         GROUP BY model, version, unit_key, o_name",
        linked = linked_outcomes_sql("names", "vals"),
        outcomes = outcomes_of(store, &range, start),
    )
}

/// Stored unit rows of `table` (hourly or daily) matching `filter`, split back into the
/// per-name sums of [`units_by_name_from_raw`] (a unit's own counts on its first name's row).
/// `fresh`: whether these rows bring new sums (hourly rows merged into a day) or are the
/// rows being extended (see [`write_units`]).
fn stored_units_by_name(store: &Store, table: &str, filter: &str, fresh: bool) -> String {
    format!(
        "SELECT model, version, unit_key, o_name, first_ts AS f,
                if(o_i <= 1, inferences, toUInt64(0)) AS n, if(o_i <= 1, costed, toUInt64(0)) AS k,
                if(o_i <= 1, cost, toFloat64(0)) AS c, o_val AS v, toUInt8({fresh}) AS fresh
         FROM {units} FINAL
         LEFT ARRAY JOIN outcome_names AS o_name, outcome_values AS o_val,
                         arrayEnumerate(outcome_names) AS o_i
         WHERE {filter}",
        units = store.table(table),
        fresh = u8::from(fresh),
    )
}

/// Writes the unit rows of `table` for the period (`period` column: `hour` or `day`) starting
/// at `start`, covering `[start, end)`, from per-name sums (`by_name`, the columns of
/// [`units_by_name_from_raw`]). Only units with a `fresh` part are written: an extension
/// rewrites the units that had events in the new range, and a unit without any keeps its
/// stored row (still exact: nothing of it changed). So an open hour extended every 30 s gains
/// a copy of its active units only, not of all of them, and the readers' `FINAL` has fewer
/// copies to collapse.
async fn write_units(
    store: &Store,
    table: &str,
    period: &str,
    start: u32,
    end: u32,
    by_name: &str,
) -> Result<(), StoreError> {
    store
        .execute(&format!(
            "INSERT INTO {units} (model, version, unit_key, {period}, first_ts, inferences, costed,
                                  cost, outcome_names, outcome_values, covered_until, computed_ms)
             SELECT model, version, unit_key, toDateTime({start}), min(f), toUInt64(sum(n)),
                    toUInt64(sum(k)), toFloat64(sum(c)),
                    CAST(groupArrayIf(o_name, o_name != '') AS Array(String)),
                    CAST(groupArrayIf(v, o_name != '') AS Array(Float64)),
                    toDateTime({end}), toUInt64({ms})
             FROM (
                 SELECT model, version, unit_key, o_name, min(f) AS f, sum(n) AS n, sum(k) AS k,
                        sum(c) AS c, sum(v) AS v, max(fresh) AS fresh
                 FROM ({by_name}) AS parts
                 GROUP BY model, version, unit_key, o_name
             ) AS per_name
             GROUP BY model, version, unit_key
             HAVING max(fresh) = 1",
            units = store.table(table),
            ms = now_ms(),
        ))
        .await
}

/// Recomputes the unit rows of the hour starting at `hour` from the events in `[hour, end)`,
/// with the outcomes linked to them as stored now.
async fn recompute_units(store: &Store, hour: u32, end: u32) -> Result<(), StoreError> {
    let by_name = units_by_name_from_raw(store, hour, end);
    write_units(store, "inference_units_1h", "hour", hour, end, &by_name).await
}

/// Extends the unit rows of `hour`, which cover `[hour, from)`, by the events in `[from, end)`:
/// the stored rows (split back into per-name sums) plus the new events' sums. Exact because
/// the two time ranges hold different events; the extension is itself a new computation
/// (newer `computed_ms`, `covered_until = end`), so a pass that fails halfway and runs again
/// extends from what is stored, never twice.
async fn extend_units(store: &Store, hour: u32, from: u32, end: u32) -> Result<(), StoreError> {
    let stored = stored_units_by_name(
        store,
        "inference_units_1h",
        &format!("hour = toDateTime({hour})"),
        false,
    );
    let fresh = units_by_name_from_raw(store, from, end);
    let by_name = format!("{stored} UNION ALL {fresh}");
    write_units(store, "inference_units_1h", "hour", hour, end, &by_name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_merge_small_gaps_and_cap_length() {
        assert!(chunks(&[], 60).is_empty());
        assert_eq!(chunks(&[60, 120, 180], 60), vec![(60, 240)]);
        // A 30-minute gap is recomputed along; a longer one starts a new range.
        assert_eq!(chunks(&[0, 1860], 60), vec![(0, 1920)]);
        assert_eq!(chunks(&[0, 1920], 60), vec![(0, 60), (1920, 1980)]);
        // At most `max` minutes per range.
        let m: Vec<u32> = (0..5).map(|i| i * 60).collect();
        assert_eq!(chunks(&m, 2), vec![(0, 120), (120, 240), (240, 300)]);
    }

    #[test]
    fn quantiles_from_the_histogram() {
        assert_eq!(histogram_quantile(&[], 0.5), None);
        let h = [(200u16, 90u64), (100, 10)];
        let p05 = histogram_quantile(&h, 0.05).unwrap();
        let p95 = histogram_quantile(&h, 0.95).unwrap();
        assert!((p05 - latency_of_bin(100)).abs() < 1e-12);
        assert!((p95 - latency_of_bin(200)).abs() < 1e-12);
        // A bin is about 2 % wide: its middle is within 1 % of any value in it.
        let ms: f64 = 250.0;
        let bin = ((1.0 + ms).ln() * LATENCY_BINS_PER_LN).floor() as u16;
        assert!((latency_of_bin(bin) / ms - 1.0).abs() < 0.011);
    }
}
