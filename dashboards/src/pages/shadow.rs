//! Shadow & retraining: mirrored traffic answered by shadow candidates, shadow runs with
//! their agreement per bucket and totals (for a classifier run) or their semantic comparison
//! with production's answers (for an LLM run), retraining requests.

use super::shared::{empty_state, f, DOCS_GATEWAY, DOCS_SHADOW};
use super::{Ctx, Dataset, PageOut};
use crate::data;
use crate::html::{self, esc, int, num, pct};
use crate::svg::{self, LineChart, Series};
use crate::{DashboardError, DashboardState};
use std::collections::BTreeMap;
use vigil_shadow_runner::llm::LlmSummaryView;
use vigil_store::sql_string;

#[derive(clickhouse::Row, serde::Deserialize)]
struct ModelName {
    model: String,
}

#[derive(clickhouse::Row, serde::Deserialize)]
/// A `shadow_metrics` row of the shown run.
struct Metric {
    candidate: String,
    kind: String,
    bucket_start: u32,
    n: u64,
    agreement: f64,
    accuracy_delta: f64,
    accuracy_delta_low: f64,
    accuracy_delta_high: f64,
    cand_ms_per_input: f64,
    verdict: String,
    /// The LLM comparison (JSON, `vigil_shadow_runner::llm::LlmSummary`); empty for a
    /// classifier run.
    llm: String,
}

pub(super) async fn page(st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
    let mut p = PageOut::new("Shadow runs & retraining");
    let r = c.range;
    // Each candidate's mirrored answers against the answer production served for the same
    // request (joined in the store by request id), per model that has any.
    let models: Vec<String> = st
        .store
        .fetch::<ModelName>(&format!(
            "SELECT DISTINCT toString(model) AS model FROM {}
             WHERE ts >= toDateTime({}) AND ts < toDateTime({}) ORDER BY model",
            st.store.table("shadow_responses"),
            r.since,
            r.until
        ))
        .await?
        .into_iter()
        .map(|m| m.model)
        .collect();
    let mut rows = Vec::new();
    for m in &models {
        rows.extend(
            vigil_shadow_runner::replay::mirrored::compare_mirrored(&st.store, m, r.since, r.until)
                .await?,
        );
    }
    p.body
        .push_str("<h2>Mirrored traffic: shadow candidates against what production served</h2>");
    p.table(
        "shadow-responses",
        &[
            "model",
            "candidate",
            "mirrored requests",
            "answered",
            "same label as served",
            "score Δ (candidate − served)",
            "latency p50 / p95 (ms)",
            "served p50 (ms)",
        ],
        rows.iter().map(|s| {
            vec![
                esc(&s.model),
                esc(&s.candidate),
                int(s.requests),
                html::share(s.answered as f64 / s.requests.max(1) as f64, 1),
                if s.matched == 0 {
                    "n/a".into()
                } else {
                    format!(
                        "{} <small>of {}</small>",
                        html::share(s.agreement, 1),
                        int(s.matched)
                    )
                },
                format!(
                    "<span class=\"effect\">{}</span>",
                    html::signed(s.score_delta_mean, 4)
                ),
                format!("{} / {}", num(s.cand_latency_p50), num(s.cand_latency_p95)),
                num(s.served_latency_p50),
            ]
        }),
    );
    if rows.is_empty() {
        p.push(empty_state(
            "No mirrored requests in this time range.",
            "Mirror a share of a gateway model's traffic to a candidate with `shadows = [{ version = …, share = … }]` in [gateway].",
            DOCS_GATEWAY,
        ));
    }
    if !data::table_exists(&st.store, "shadow_runs").await? {
        p.push(empty_state(
            "Shadow runs and retraining requests are not in this store yet (schema migration 6).",
            "Run `vigil migrate` with a vigil that includes the shadow runner, then configure [shadow].",
            DOCS_SHADOW,
        ));
        return Ok(p);
    }
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Run {
        job_id: String,
        model: String,
        production: String,
        candidates: String,
        status: String,
        processed: u64,
        skipped: u64,
        started_at: u32,
        error: String,
    }
    let runs: Vec<Run> = st
        .store
        .fetch(&format!(
            "SELECT * FROM (
                SELECT toString(job_id) AS job_id, toString(argMax(model, updated_ms)) AS model,
                       toString(argMax(production, updated_ms)) AS production,
                       toString(argMax(candidates, updated_ms)) AS candidates,
                       toString(argMax(status, updated_ms)) AS status,
                       toUInt64(argMax(processed, updated_ms)) AS processed,
                       toUInt64(argMax(skipped, updated_ms)) AS skipped,
                       toUInt32(argMax(started_at, updated_ms)) AS started_at,
                       toString(argMax(error, updated_ms)) AS error
                FROM {} GROUP BY job_id
             ) AS latest
             WHERE started_at >= toDateTime({}) AND started_at < toDateTime({})
             ORDER BY started_at DESC LIMIT 50",
            st.store.table("shadow_runs"),
            r.since,
            r.until
        ))
        .await?;
    p.body
        .push_str("<h2>Shadow runs (replays of captured traffic against candidates)</h2>");
    p.table(
        "shadow-runs",
        &[
            "job",
            "model",
            "production",
            "candidates",
            "status",
            "processed",
            "skipped",
            "started (UTC)",
            "error",
        ],
        runs.iter().map(|x| {
            vec![
                html::link(&c.link("shadow", &[("job", &x.job_id)]), &x.job_id),
                esc(&x.model),
                esc(&x.production),
                esc(&x.candidates),
                esc(&x.status),
                int(x.processed),
                int(x.skipped),
                html::time(x.started_at),
                esc(&x.error),
            ]
        }),
    );
    if runs.is_empty() {
        p.push(empty_state(
            "No shadow runs in this time range.",
            "Replay captured traffic against candidate models with `vigil shadow run` (models from `bash scripts/models/fetch.sh`; `vigil demo --with-models` runs one).",
            DOCS_SHADOW,
        ));
    }
    if let Some(job) = c
        .get("job")
        .map(str::to_string)
        .or_else(|| runs.first().map(|x| x.job_id.clone()))
    {
        let metrics: Vec<Metric> = st
            .store
            .fetch(&format!(
                "SELECT toString(candidate) AS candidate, toString(kind) AS kind, toUInt32(bucket_start) AS bucket_start,
                        toUInt64(n) AS n, toFloat64(agreement) AS agreement, toFloat64(accuracy_delta) AS accuracy_delta,
                        toFloat64(accuracy_delta_low) AS accuracy_delta_low, toFloat64(accuracy_delta_high) AS accuracy_delta_high,
                        toFloat64(cand_ms_per_input) AS cand_ms_per_input, toString(verdict) AS verdict,
                        toString(llm) AS llm
                 FROM {} FINAL WHERE job_id = {} ORDER BY candidate, bucket_start LIMIT 5000",
                st.store.table("shadow_metrics"),
                sql_string(&job)
            ))
            .await?;
        let llm: Vec<(String, LlmSummaryView)> = metrics
            .iter()
            .filter(|m| m.kind == "total" && !m.llm.is_empty())
            .filter_map(|m| Some((m.candidate.clone(), serde_json::from_str(&m.llm).ok()?)))
            .collect();
        if !llm.is_empty() {
            llm_totals(&mut p, &job, &llm);
        } else {
            classifier_metrics(&mut p, c, &job, &metrics);
        }
    }
    retraining_requests(st, c, &mut p).await?;
    Ok(p)
}

/// An LLM run: per candidate, the similarity of its answers to production's (mean with its
/// interval, quantiles, share at or above the policy's threshold), length and token ratios,
/// latency, TTFT and cost differences, empty and refusal rates, the verdict and why.
fn llm_totals(p: &mut PageOut, job: &str, rows: &[(String, LlmSummaryView)]) {
    let dash = || "–".to_string();
    let n3 = |x: Option<f64>| {
        x.filter(|v| v.is_finite())
            .map_or_else(dash, |v| html::fixed(v, 3))
    };
    let ratio = |x: Option<f64>| {
        x.filter(|v| v.is_finite())
            .map_or_else(dash, |v| format!("{} ×", html::fixed(v, 2)))
    };
    let rate = |x: Option<f64>| {
        x.filter(|v| v.is_finite())
            .map_or_else(dash, |v| html::share(v, 1))
    };
    // A difference with the two values it is taken between (`prod → cand`).
    let delta = |d: Option<f64>, prod: Option<f64>, cand: Option<f64>, decimals: usize| match (
        d.filter(|v| v.is_finite()),
        prod.filter(|v| v.is_finite()),
        cand.filter(|v| v.is_finite()),
    ) {
        (Some(d), Some(a), Some(b)) => format!(
            "<span class=\"effect\">{}</span> <small>({} → {})</small>",
            html::signed(d, decimals),
            html::fixed(a, decimals),
            html::fixed(b, decimals)
        ),
        (_, Some(a), None) => format!(
            "– <small>({} → not measured)</small>",
            html::fixed(a, decimals)
        ),
        _ => dash(),
    };
    p.body.push_str(&format!(
        "<h3>run {}: candidate answers against production's logged answers</h3>",
        esc(job)
    ));
    p.push(maud::html! {
        p.hint {
            "Similarity = cosine similarity of the two answers' sentence embeddings (all-MiniLM-L6-v2), mean with its 95 % interval; "
            "agreement = answers at or above the policy's threshold; ratios and differences are candidate against production "
            "(TTFT only when the replay streamed; tokens and cost only when the server reported usage)."
        }
    });
    p.table_with_csv(
        &[
            "candidate",
            "answers",
            "errors",
            "similarity (95 %)",
            "p10 / p50 / p90",
            "agreement",
            "length",
            "tokens",
            "latency Δ ms",
            "TTFT Δ ms",
            "cost Δ per answer",
            "empty (cand / prod)",
            "refusals (cand / prod)",
            "verdict",
        ],
        rows.iter().map(|(cand, s)| {
            vec![
                esc(cand),
                int(s.answered),
                int(s.errors),
                format!(
                    "{} <small>({} – {})</small>",
                    n3(s.similarity_mean),
                    n3(s.similarity_low),
                    n3(s.similarity_high)
                ),
                format!(
                    "{} / {} / {}",
                    n3(s.similarity_p10),
                    n3(s.similarity_p50),
                    n3(s.similarity_p90)
                ),
                rate(s.agreement),
                ratio(s.length_ratio),
                ratio(s.token_ratio),
                delta(s.latency_delta_ms, s.prod_latency_ms, s.cand_latency_ms, 0),
                delta(s.ttft_delta_ms, s.prod_ttft_ms, s.cand_ttft_ms, 0),
                s.cost_delta
                    .filter(|v| v.is_finite())
                    .map_or_else(dash, |v| {
                        format!("<span class=\"effect\">{}</span>", html::signed(v, 6))
                    }),
                format!("{} / {}", rate(s.cand_empty_rate), rate(s.prod_empty_rate)),
                format!(
                    "{} / {}",
                    rate(s.cand_refusal_rate),
                    rate(s.prod_refusal_rate)
                ),
                format!(
                    "<strong>{}</strong><br><small>{}</small>",
                    esc(&s.verdict),
                    esc(&s.reasons.join("; "))
                ),
            ]
        }),
        Dataset::new(
            format!("shadow-llm-{job}"),
            &[
                "candidate",
                "answers",
                "errors",
                "similarity_mean",
                "similarity_low",
                "similarity_high",
                "similarity_p10",
                "similarity_p50",
                "similarity_p90",
                "agreement",
                "length_ratio",
                "token_ratio",
                "prod_latency_ms",
                "cand_latency_ms",
                "prod_ttft_ms",
                "cand_ttft_ms",
                "cost_delta",
                "verdict",
            ],
            rows.iter().map(|(cand, s)| {
                let o = |x: Option<f64>| x.filter(|v| v.is_finite()).map_or_else(String::new, f);
                vec![
                    cand.clone(),
                    s.answered.to_string(),
                    s.errors.to_string(),
                    o(s.similarity_mean),
                    o(s.similarity_low),
                    o(s.similarity_high),
                    o(s.similarity_p10),
                    o(s.similarity_p50),
                    o(s.similarity_p90),
                    o(s.agreement),
                    o(s.length_ratio),
                    o(s.token_ratio),
                    o(s.prod_latency_ms),
                    o(s.cand_latency_ms),
                    o(s.prod_ttft_ms),
                    o(s.cand_ttft_ms),
                    o(s.cost_delta),
                    s.verdict.clone(),
                ]
            }),
        ),
    );
}

/// A classifier run: agreement per bucket and the totals with the accuracy difference.
fn classifier_metrics(p: &mut PageOut, c: &Ctx, job: &str, metrics: &[Metric]) {
    {
        let mut series: BTreeMap<String, Series> = BTreeMap::new();
        for m in metrics.iter().filter(|m| m.kind != "total") {
            let s = series.entry(m.candidate.clone()).or_insert_with(|| Series {
                name: m.candidate.clone(),
                ..Series::default()
            });
            s.points.push((m.bucket_start as f64, m.agreement * 100.0));
        }
        let id = format!("shadow-agreement-{job}");
        p.chart(
            "shadow",
            c,
            svg::line_chart(&LineChart {
                id: id.clone(),
                title: format!("run {job}: agreement with production per bucket"),
                y_label: "% same answer".into(),
                x_time: true,
                series: series.into_values().collect(),
                hlines: vec![],
            }),
            Dataset::new(
                id,
                &[
                    "candidate",
                    "kind",
                    "bucket_start",
                    "n",
                    "agreement",
                    "accuracy_delta",
                    "accuracy_delta_low",
                    "accuracy_delta_high",
                    "cand_ms_per_input",
                    "verdict",
                ],
                metrics.iter().map(|m| {
                    vec![
                        m.candidate.clone(),
                        m.kind.clone(),
                        m.bucket_start.to_string(),
                        m.n.to_string(),
                        f(m.agreement),
                        f(m.accuracy_delta),
                        f(m.accuracy_delta_low),
                        f(m.accuracy_delta_high),
                        f(m.cand_ms_per_input),
                        m.verdict.clone(),
                    ]
                }),
            ),
        );
        p.table(
            "shadow-totals",
            &[
                "candidate",
                "inputs",
                "agreement",
                "accuracy vs production (95 %)",
                "ms per input",
                "verdict",
            ],
            metrics.iter().filter(|m| m.kind == "total").map(|m| {
                vec![
                    esc(&m.candidate),
                    int(m.n),
                    html::share(m.agreement, 2),
                    // A signed difference (class `effect`), not a share.
                    format!(
                        "<span class=\"effect\">{} ({} to {})</span>",
                        pct(m.accuracy_delta),
                        pct(m.accuracy_delta_low),
                        pct(m.accuracy_delta_high)
                    ),
                    num(m.cand_ms_per_input),
                    esc(&m.verdict),
                ]
            }),
        );
    }
}

/// Retraining requests filed in the range (by the shadow runner's triggers or the monitors).
async fn retraining_requests(
    st: &DashboardState,
    c: &Ctx,
    p: &mut PageOut,
) -> Result<(), DashboardError> {
    let r = c.range;
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Req {
        request_id: String,
        model: String,
        reason: String,
        rule: String,
        status: String,
        created_at: u32,
        notified: String,
    }
    let reqs: Vec<Req> = st
        .store
        .fetch(&format!(
            "SELECT * FROM (
                SELECT toString(request_id) AS request_id, toString(argMax(model, updated_ms)) AS model,
                       toString(argMax(reason, updated_ms)) AS reason, toString(argMax(rule, updated_ms)) AS rule,
                       toString(argMax(status, updated_ms)) AS status,
                       toUInt32(argMax(created_at, updated_ms)) AS created_at,
                       toString(concat('webhook ', argMax(webhook_status, updated_ms), ', kafka ',
                                       argMax(kafka_status, updated_ms), ', e-mail ', argMax(email_status, updated_ms))) AS notified
                FROM {} GROUP BY request_id
             ) AS latest
             WHERE created_at >= toDateTime({}) AND created_at < toDateTime({})
             ORDER BY created_at DESC LIMIT 50",
            st.store.table("retraining_requests"),
            r.since,
            r.until
        ))
        .await?;
    p.body.push_str("<h2>Retraining requests</h2>");
    p.table(
        "retraining-requests",
        &[
            "created (UTC)",
            "model",
            "reason",
            "rule",
            "status",
            "notifications",
            "request",
        ],
        reqs.iter().map(|x| {
            vec![
                html::time(x.created_at),
                esc(&x.model),
                esc(&x.reason),
                esc(&x.rule),
                esc(&x.status),
                esc(&x.notified),
                esc(&x.request_id),
            ]
        }),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_llm_run_shows_its_comparison_and_says_what_was_not_measured() {
        // As `shadow_metrics.llm` stores it: a streamed candidate whose server sent no usage
        // (no tokens, no cost), NaN written as null.
        let json = r#"{"requests":120,"errors":0,"answered":120,"similarity_mean":0.44,
            "similarity_low":0.418,"similarity_high":0.462,"similarity_p10":0.26,
            "similarity_p50":0.45,"similarity_p90":0.59,"agreement":0.0,"length_ratio":1.03,
            "token_ratio":null,"cand_latency_ms":287.0,"prod_latency_ms":304.0,
            "latency_delta_ms":-17.0,"cand_ttft_ms":73.0,"prod_ttft_ms":92.0,"ttft_delta_ms":-19.0,
            "cost_delta":null,"cand_empty_rate":0.0,"prod_empty_rate":0.0,
            "verdict":"different","reasons":["similarity 0.440 [0.418, 0.462]: upper bound below 0.8"]}"#;
        let view: LlmSummaryView = serde_json::from_str(json).expect("view");
        let mut p = PageOut::new("Shadow");
        llm_totals(&mut p, "job-1", &[("assistant@v3".into(), view)]);
        let b = &p.body;
        assert!(b.contains("0.440 <small>(0.418 – 0.462)</small>"), "{b}");
        assert!(b.contains("1.03 ×"), "{b}");
        assert!(b.contains("(92 → 73)") && b.contains("(304 → 287)"), "{b}");
        assert!(b.contains("upper bound below 0.8"), "{b}");
        // Tokens and cost were not reported: a dash, never 0 or NaN; nothing about accuracy.
        assert!(!b.contains("NaN") && !b.contains("accuracy"), "{b}");
        let row = b.split("assistant@v3").nth(1).expect("row");
        assert!(row.contains("<td>–</td>"), "{row}");
        assert_eq!(p.data[0].rows[0][11], "", "token ratio in the CSV: empty");
    }
}
