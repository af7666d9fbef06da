//! The second replay source: answers of shadow candidates that the gateway mirrored live traffic
//! to (`shadow_responses`, migration 2), compared with the answer production served for the same
//! request (`inference_events`, joined on `request_id = event_id`). Computed in ClickHouse
//! (pushdown), so any window size costs one small result set.

use serde::{Deserialize, Serialize};
use vigil_store::{sql_string, Store, StoreError};

/// One candidate version's mirrored answers against production's, in a window.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Deserialize, Serialize)]
pub struct MirroredComparison {
    /// Model.
    pub model: String,
    /// Candidate version that answered the mirrored requests.
    pub candidate: String,
    /// Mirrored requests.
    pub requests: u64,
    /// ... answered with HTTP 2xx.
    pub answered: u64,
    /// ... whose served inference is in the store (comparable).
    pub matched: u64,
    /// Share of matched answers whose `label` equals the served label.
    pub agreement: f64,
    /// Mean candidate − served `score` over matched answers with both scores.
    pub score_delta_mean: f64,
    /// Median and 95th percentile of the candidate's latency (ms).
    pub cand_latency_p50: f64,
    /// 95th percentile of the candidate's latency (ms).
    pub cand_latency_p95: f64,
    /// Median latency of the served answers (ms).
    pub served_latency_p50: f64,
}

/// Compares the mirrored answers of `model`'s candidates in `[since, until)` with production's.
/// A candidate's answer is the JSON body it returned; its `label` and `score` fields (top level)
/// are compared with the served inference's. Mirrored LLM answers (OpenAI `choices`) have
/// neither and are compared on the LLM page instead (text, tokens, latency, cost).
pub async fn compare_mirrored(
    store: &Store,
    model: &str,
    since: u32,
    until: u32,
) -> Result<Vec<MirroredComparison>, StoreError> {
    store
        .fetch::<MirroredComparison>(&format!(
            "SELECT toString(s_model) AS model, toString(s_version) AS candidate,
                    toUInt64(count()) AS requests,
                    toUInt64(countIf(s_status >= 200 AND s_status < 300)) AS answered,
                    toUInt64(countIf(i_found = 1)) AS matched,
                    toFloat64(if(countIf(i_found = 1 AND s_status >= 200 AND s_status < 300) = 0, 0,
                        countIf(i_found = 1 AND s_status >= 200 AND s_status < 300 AND s_label = i_label)
                        / countIf(i_found = 1 AND s_status >= 200 AND s_status < 300))) AS agreement,
                    toFloat64(if(countIf(i_found = 1 AND i_has_score = 1
                        AND s_status >= 200 AND s_status < 300) = 0, 0,
                        avgIf(s_score - i_score, i_found = 1 AND i_has_score = 1
                        AND s_status >= 200 AND s_status < 300))) AS score_delta_mean,
                    toFloat64(quantile(0.5)(s_latency)) AS cand_latency_p50,
                    toFloat64(quantile(0.95)(s_latency)) AS cand_latency_p95,
                    toFloat64(ifNull(quantileIf(0.5)(i_latency, i_found = 1), 0)) AS served_latency_p50
             FROM (
                 SELECT model AS s_model, version AS s_version, request_id AS event_id,
                        toUInt32(status) AS s_status, latency_ms AS s_latency,
                        visitParamExtractString(output, 'label') AS s_label,
                        visitParamExtractFloat(output, 'score') AS s_score
                 FROM {responses}
                 WHERE model = {m} AND ts >= toDateTime({since}) AND ts < toDateTime({until})
                   AND NOT visitParamHas(output, 'choices')
             ) AS mirrored ANY LEFT JOIN (
                 SELECT event_id, toUInt8(1) AS i_found, ifNull(label, '') AS i_label,
                        toFloat64(ifNull(score, 0)) AS i_score,
                        toUInt8(isNotNull(score)) AS i_has_score,
                        toFloat64(ifNull(latency_ms, 0)) AS i_latency
                 FROM {inference} FINAL
                 WHERE model = {m} AND ts >= toDateTime({since_pad}) AND ts < toDateTime({until_pad})
             ) AS served USING event_id
             GROUP BY s_model, s_version
             ORDER BY s_version",
            responses = store.table("shadow_responses"),
            inference = store.table("inference_events"),
            m = sql_string(model),
            // A served inference is logged within seconds of its mirror.
            since_pad = since.saturating_sub(3600),
            until_pad = until.saturating_add(3600),
        ))
        .await
}
