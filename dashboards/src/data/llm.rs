//! The LLM page's queries over every inference in the range: per-version sums and quantiles,
//! answers (finish reasons) and the TTFT chart. Rolled-up minutes come from
//! `inference_llm_1m` (migration 12, the generative columns) and `inference_rollup_1m`
//! (requests, failures, cost); the rest from the raw table, binned the same way, so both paths
//! give the same numbers (tests/rollups.rs). TTFT and output tokens/s quantiles are read from
//! the log histogram of `vigil_store::rollup::log_bin_sql` (bins about 2 % wide).

use super::{bucket_histograms, minutes_sql, union, Range};
use serde::Deserialize;
use vigil_store::rollup::{
    histogram_quantile, log_bin_sql, ANSWER_SQL, FAILED_SQL, GENERATIVE_SQL,
};
use vigil_store::{sql_string, Store, StoreError};

/// Per model and version, over the range: the sums and quantiles behind the version table.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct VersionStats {
    pub model: String,
    pub version: String,
    pub requests: u64,
    /// Requests with a generative field.
    pub generative: u64,
    pub failed: u64,
    pub ttft_n: u64,
    /// TTFT p50 and p95 (ms); 0 without values.
    pub ttft_p50: f64,
    pub ttft_p95: f64,
    pub tps_n: u64,
    /// Median output tokens per second.
    pub tps_p50: f64,
    pub prompt_n: u64,
    pub prompt_sum: u64,
    pub completion_n: u64,
    pub completion_sum: u64,
    /// Requests with a token count, and those whose counts vigil estimated.
    pub tokens_n: u64,
    pub estimated: u64,
    pub cost_n: u64,
    pub cost_sum: f64,
    pub streamed: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct VersionSums {
    model: String,
    version: String,
    requests: u64,
    generative: u64,
    failed: u64,
    prompt_n: u64,
    prompt_sum: u64,
    completion_n: u64,
    completion_sum: u64,
    tokens_n: u64,
    estimated: u64,
    cost_n: u64,
    cost_sum: f64,
    streamed: u64,
    ttft_bins: Vec<u16>,
    ttft_counts: Vec<u64>,
    tps_bins: Vec<u16>,
    tps_counts: Vec<u64>,
}

/// `(n, p50, p95)` of a histogram's (bin, count) pairs (zeros when empty).
fn quantiles(h: &[(u16, u64)]) -> (u64, f64, f64) {
    let n = h.iter().map(|b| b.1).sum();
    let q = |p| histogram_quantile(h, p).unwrap_or(0.0);
    (n, q(0.5), q(0.95))
}

/// The version table's numbers for every model and version with requests in the range.
pub async fn version_stats(store: &Store, r: Range) -> Result<Vec<VersionStats>, StoreError> {
    let rolled = r.rolled(false);
    let (ttft, tps) = (log_bin_sql("ttft_ms"), log_bin_sql("output_tps"));
    let raw = format!(
        "SELECT model, version, toUInt64(count()) AS rq,
                toUInt64(sum({GENERATIVE_SQL})) AS gn, toUInt64(sum({FAILED_SQL})) AS fl,
                toUInt64(sum(isNotNull(prompt_tokens))) AS pn,
                toUInt64(sum(ifNull(prompt_tokens, 0))) AS ps,
                toUInt64(sum(isNotNull(completion_tokens))) AS cn,
                toUInt64(sum(ifNull(completion_tokens, 0))) AS cs,
                toUInt64(sum(isNotNull(prompt_tokens) OR isNotNull(completion_tokens))) AS tn,
                toUInt64(sum(tokens_estimated)) AS es,
                toUInt64(sum(isNotNull(cost))) AS kn, toFloat64(sum(ifNull(cost, 0))) AS ks,
                toUInt64(sum(streamed)) AS st,
                CAST(tupleElement(sumMapIf([{ttft}], [toUInt64(1)], isNotNull(ttft_ms)), 1) AS Array(UInt16)) AS tb,
                CAST(tupleElement(sumMapIf([{ttft}], [toUInt64(1)], isNotNull(ttft_ms)), 2) AS Array(UInt64)) AS tc,
                CAST(tupleElement(sumMapIf([{tps}], [toUInt64(1)], isNotNull(output_tps)), 1) AS Array(UInt16)) AS pb,
                CAST(tupleElement(sumMapIf([{tps}], [toUInt64(1)], isNotNull(output_tps)), 2) AS Array(UInt64)) AS pc
         FROM {} FINAL WHERE {}
         GROUP BY model, version",
        store.table("inference_events"),
        r.raw_sql(rolled)
    );
    // Requests, failures and cost from the minute rollup; the generative columns from the LLM
    // rollup (which has rows only for models with generative events).
    let roll = rolled.map(|mins| {
        let w = minutes_sql(mins);
        format!(
            "SELECT model, version, toUInt64(events) AS rq, toUInt64(0) AS gn,
                    toUInt64(failed) AS fl, toUInt64(0) AS pn, toUInt64(0) AS ps,
                    toUInt64(0) AS cn, toUInt64(0) AS cs, toUInt64(0) AS tn,
                    toUInt64(0) AS es, toUInt64(cost_n) AS kn, toFloat64(cost_sum) AS ks,
                    toUInt64(0) AS st, emptyArrayUInt16() AS tb, emptyArrayUInt64() AS tc,
                    emptyArrayUInt16() AS pb, emptyArrayUInt64() AS pc
             FROM {} FINAL WHERE {w}
             UNION ALL
             SELECT model, version, toUInt64(0), toUInt64(generative), toUInt64(0), toUInt64(prompt_n),
                    toUInt64(prompt_sum), toUInt64(completion_n), toUInt64(completion_sum),
                    toUInt64(tokens_n), toUInt64(estimated), toUInt64(0), toFloat64(0), toUInt64(streamed),
                    ttft_bins, ttft_counts, tps_bins, tps_counts
             FROM {} FINAL WHERE {w}",
            store.table("inference_rollup_1m"),
            store.table("inference_llm_1m"),
        )
    });
    let rows: Vec<VersionSums> = store
        .fetch(&format!(
            "SELECT toString(model) AS model, toString(version) AS version,
                    toUInt64(sum(rq)) AS requests, toUInt64(sum(gn)) AS generative,
                    toUInt64(sum(fl)) AS failed, toUInt64(sum(pn)) AS prompt_n,
                    toUInt64(sum(ps)) AS prompt_sum, toUInt64(sum(cn)) AS completion_n,
                    toUInt64(sum(cs)) AS completion_sum, toUInt64(sum(tn)) AS tokens_n,
                    toUInt64(sum(es)) AS estimated, toUInt64(sum(kn)) AS cost_n,
                    toFloat64(sum(ks)) AS cost_sum, toUInt64(sum(st)) AS streamed,
                    CAST(tupleElement(sumMap(tb, tc), 1) AS Array(UInt16)) AS ttft_bins,
                    CAST(tupleElement(sumMap(tb, tc), 2) AS Array(UInt64)) AS ttft_counts,
                    CAST(tupleElement(sumMap(pb, pc), 1) AS Array(UInt16)) AS tps_bins,
                    CAST(tupleElement(sumMap(pb, pc), 2) AS Array(UInt64)) AS tps_counts
             FROM {} GROUP BY model, version ORDER BY model, version",
            union(raw, roll)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|s| {
            let zip = |b: Vec<u16>, c: Vec<u64>| b.into_iter().zip(c).collect::<Vec<_>>();
            let (ttft_n, ttft_p50, ttft_p95) = quantiles(&zip(s.ttft_bins, s.ttft_counts));
            let (tps_n, tps_p50, _) = quantiles(&zip(s.tps_bins, s.tps_counts));
            VersionStats {
                model: s.model,
                version: s.version,
                requests: s.requests,
                generative: s.generative,
                failed: s.failed,
                ttft_n,
                ttft_p50,
                ttft_p95,
                tps_n,
                tps_p50,
                prompt_n: s.prompt_n,
                prompt_sum: s.prompt_sum,
                completion_n: s.completion_n,
                completion_sum: s.completion_sum,
                tokens_n: s.tokens_n,
                estimated: s.estimated,
                cost_n: s.cost_n,
                cost_sum: s.cost_sum,
                streamed: s.streamed,
            }
        })
        .collect())
}

/// Requests per answer (finish reason, else label; `(failed)` for failed requests) and version
/// of one model.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Deserialize, serde::Serialize)]
pub struct ReasonCount {
    pub version: String,
    pub reason: String,
    pub n: u64,
}

/// What a failed request counts as among the answers.
pub const FAILED_REASON: &str = "(failed)";

pub async fn finish_reasons(
    store: &Store,
    model: &str,
    r: Range,
) -> Result<Vec<ReasonCount>, StoreError> {
    let m = sql_string(model);
    let rolled = r.rolled(false);
    let raw = format!(
        "SELECT version, if({FAILED_SQL}, {failed}, {ANSWER_SQL}) AS reason, toUInt64(count()) AS c
         FROM {} FINAL WHERE model = {m} AND {}
         GROUP BY version, reason",
        store.table("inference_events"),
        r.raw_sql(rolled),
        failed = sql_string(FAILED_REASON),
    );
    let roll = rolled.map(|mins| {
        let w = minutes_sql(mins);
        format!(
            "SELECT version, {failed} AS reason, toUInt64(sum(failed)) AS c
             FROM {} FINAL WHERE model = {m} AND {w} GROUP BY version
             UNION ALL
             SELECT version, reason, toUInt64(sum(rc)) AS c
             FROM {} FINAL ARRAY JOIN reasons AS reason, reason_counts AS rc
             WHERE model = {m} AND {w} GROUP BY version, reason",
            store.table("inference_rollup_1m"),
            store.table("inference_llm_1m"),
            failed = sql_string(FAILED_REASON),
        )
    });
    store
        .fetch(&format!(
            "SELECT toString(version) AS version, toString(reason) AS reason, toUInt64(sum(c)) AS n
             FROM {} GROUP BY version, reason HAVING n > 0 ORDER BY version, n DESC, reason",
            union(raw, roll)
        ))
        .await
}

/// TTFT p50 and p95 per version and chart bucket of one model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TtftBucket {
    pub bucket: u32,
    pub version: String,
    pub n: u64,
    pub p50: f64,
    pub p95: f64,
}

pub async fn ttft_buckets(
    store: &Store,
    model: &str,
    r: Range,
) -> Result<Vec<TtftBucket>, StoreError> {
    let hists = bucket_histograms(
        store,
        model,
        r,
        "ttft_ms",
        ("inference_llm_1m", "ttft_bins", "ttft_counts"),
    )
    .await?;
    Ok(hists
        .into_iter()
        .filter_map(|(bucket, version, bins)| {
            let (n, p50, p95) = quantiles(&bins);
            (n > 0).then_some(TtftBucket {
                bucket,
                version,
                n,
                p50,
                p95,
            })
        })
        .collect())
}
