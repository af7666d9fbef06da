//! LLM: generative models behind the gateway's OpenAI-compatible routes (or events sent with
//! `generation`), per model and version: requests, time to first token, output tokens per
//! second, tokens, cost, errors and positive feedback with their 95 % intervals, finish
//! reasons, streamed share; TTFT p95 over time; the decisions of the model's experiments;
//! shadow candidates against the served version on the same mirrored requests.
//!
//! A model is an LLM when one of its requests in the range carries a generative field (time to
//! first token, tokens or a finish reason): the dashboards do not read the gateway's config.
//! The version table, finish reasons and TTFT chart read the rollups for the compacted minutes
//! and the raw table for the rest (`crate::data::llm`); feedback, experiment arms and shadow
//! pairs join events, so they read the raw tables of the shown model only, bounded by the range.

use super::shared::{empty_state, experiment_link, f, tabs, DocsSection, DOCS_EXPERIMENT_ANALYSIS};
use super::{Ctx, Dataset, PageOut};
use crate::data::llm::{self as llm_data, ReasonCount, TtftBucket, VersionStats};
use crate::data::Range;
use crate::html::{self, esc, int};
use crate::svg::{self, LineChart, Series};
use crate::{DashboardError, DashboardState};
use maud::html;
use serde::Deserialize;
use std::collections::BTreeMap;
use vigil_store::rollup::FAILED_SQL;
use vigil_store::{sql_string, Store, StoreError};

/// How a SQL builder names a table (`Store::table`).
pub(crate) type Tables<'a> = &'a dyn Fn(&str) -> String;

/// Where the empty state sends people: the section below in docs/dashboards.md.
pub(crate) const DOCS_LLM: DocsSection = ("dashboards.md#llm-page", "Dashboards § LLM page");

/// z for a two-sided 95 % interval.
const Z95: f64 = 1.959963984540054;

/// Feedback linked to an inference counts when it arrives up to this long after the range
/// ends (and from an hour before it starts: producers' clocks differ).
const FEEDBACK_LAG_S: u32 = 7 * 86400;

// ---------------------------------------------------------------- queries

/// Outcome names linked to inferences (`inference_id`) of `model`, most frequent first.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Deserialize)]
pub(crate) struct NameCount {
    pub name: String,
    pub n: u64,
}

pub(crate) fn feedback_names_sql(t: Tables, model: &str, r: Range) -> String {
    format!(
        "SELECT toString(name) AS name, toUInt64(count()) AS n
         FROM {} FINAL
         WHERE model = {} AND inference_id != '' AND {}
         GROUP BY name ORDER BY n DESC, name LIMIT 20",
        t("outcome_events"),
        sql_string(model),
        feedback_window(r)
    )
}

fn feedback_window(r: Range) -> String {
    format!(
        "ts >= toDateTime({}) AND ts < toDateTime({})",
        r.since
            .saturating_sub(vigil_store::rollup::OUTCOME_LEAD_SECS),
        r.until.saturating_add(FEEDBACK_LAG_S)
    )
}

/// Per version of one model: answered requests, those with feedback `name`, and those with a
/// positive one (value > 0), from one statement over the same rows.
#[derive(Debug, Clone, Default, PartialEq, clickhouse::Row, Deserialize)]
pub(crate) struct Feedback {
    pub version: String,
    pub answered: u64,
    pub rated: u64,
    pub positive: u64,
}

pub(crate) fn feedback_sql(t: Tables, model: &str, name: &str, r: Range) -> String {
    let m = sql_string(model);
    format!(
        "SELECT toString(version) AS version, toUInt64(count()) AS answered,
                toUInt64(sum(rated)) AS rated, toUInt64(sum(pos)) AS positive
         FROM (
             SELECT version, event_id FROM {inf} FINAL
             WHERE model = {m} AND ts >= toDateTime({since}) AND ts < toDateTime({until})
               AND NOT {FAILED_SQL}
         ) AS served ANY LEFT JOIN (
             SELECT inference_id AS event_id, toUInt64(1) AS rated, toUInt64(max(value) > 0) AS pos
             FROM {out} FINAL
             WHERE model = {m} AND name = {n} AND inference_id != '' AND {window}
             GROUP BY inference_id
         ) AS feedback USING event_id
         GROUP BY version ORDER BY version",
        inf = t("inference_events"),
        out = t("outcome_events"),
        n = sql_string(name),
        since = r.since,
        until = r.until,
        window = feedback_window(r),
    )
}

/// Requests per experiment arm (as recorded on the inferences) of one model.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Deserialize)]
pub(crate) struct ArmTraffic {
    pub experiment: String,
    pub variant: String,
    pub version: String,
    pub n: u64,
}

pub(crate) fn arm_traffic_sql(t: Tables, model: &str, r: Range) -> String {
    format!(
        "SELECT toString(experiment) AS experiment, toString(variant) AS variant,
                toString(version) AS version, toUInt64(count()) AS n
         FROM {} FINAL
         WHERE model = {} AND ts >= toDateTime({}) AND ts < toDateTime({}) AND experiment != ''
         GROUP BY experiment, variant, version ORDER BY experiment, variant, version",
        t("inference_events"),
        sql_string(model),
        r.since,
        r.until
    )
}

/// A shadow candidate of one model against the version that served the same requests.
/// Latency, tokens and cost compare pairs: mirrored requests the candidate answered whose
/// served inference has the value too.
#[derive(Debug, Clone, Default, PartialEq, clickhouse::Row, Deserialize)]
pub(crate) struct ShadowLlm {
    pub candidate: String,
    pub served_version: String,
    pub mirrored: u64,
    pub answered: u64,
    pub latency_pairs: u64,
    pub cand_latency_p50: f64,
    pub served_latency_p50: f64,
    pub token_pairs: u64,
    pub cand_completion_mean: f64,
    pub served_completion_mean: f64,
    pub cost_pairs: u64,
    pub cand_cost_sum: f64,
    pub served_cost_sum: f64,
}

pub(crate) fn shadow_sql(t: Tables, model: &str, r: Range) -> String {
    let m = sql_string(model);
    format!(
        "SELECT toString(s_version) AS candidate, toString(s_served) AS served_version,
                toUInt64(count()) AS mirrored, toUInt64(sum(s_ok)) AS answered,
                toUInt64(sum(s_ok * i_found * i_has_latency)) AS latency_pairs,
                toFloat64(if(sum(s_ok * i_found * i_has_latency) = 0, 0,
                    quantileIf(0.5)(s_latency, s_ok * i_found * i_has_latency = 1))) AS cand_latency_p50,
                toFloat64(if(sum(s_ok * i_found * i_has_latency) = 0, 0,
                    quantileIf(0.5)(i_latency, s_ok * i_found * i_has_latency = 1))) AS served_latency_p50,
                toUInt64(sum(s_ok * s_has_ct * i_found * i_has_ct)) AS token_pairs,
                toFloat64(if(sum(s_ok * s_has_ct * i_found * i_has_ct) = 0, 0,
                    sumIf(s_ct, s_ok * s_has_ct * i_found * i_has_ct = 1) / sum(s_ok * s_has_ct * i_found * i_has_ct))) AS cand_completion_mean,
                toFloat64(if(sum(s_ok * s_has_ct * i_found * i_has_ct) = 0, 0,
                    sumIf(i_ct, s_ok * s_has_ct * i_found * i_has_ct = 1) / sum(s_ok * s_has_ct * i_found * i_has_ct))) AS served_completion_mean,
                toUInt64(sum(s_ok * s_has_cost * i_found * i_has_cost)) AS cost_pairs,
                toFloat64(sumIf(s_cost, s_ok * s_has_cost * i_found * i_has_cost = 1)) AS cand_cost_sum,
                toFloat64(sumIf(i_cost, s_ok * s_has_cost * i_found * i_has_cost = 1)) AS served_cost_sum
         FROM (
             SELECT version AS s_version, served_version AS s_served, request_id AS event_id,
                    toUInt64(status >= 200 AND status < 300) AS s_ok, toFloat64(latency_ms) AS s_latency,
                    toUInt64(isNotNull(completion_tokens)) AS s_has_ct,
                    toFloat64(ifNull(completion_tokens, 0)) AS s_ct,
                    toUInt64(isNotNull(cost)) AS s_has_cost, toFloat64(ifNull(cost, 0)) AS s_cost
             FROM {responses}
             WHERE model = {m} AND ts >= toDateTime({since}) AND ts < toDateTime({until})
         ) AS mirrored ANY LEFT JOIN (
             SELECT event_id, toUInt64(1) AS i_found,
                    toUInt64(isNotNull(latency_ms)) AS i_has_latency,
                    toFloat64(ifNull(latency_ms, 0)) AS i_latency,
                    toUInt64(isNotNull(completion_tokens)) AS i_has_ct,
                    toFloat64(ifNull(completion_tokens, 0)) AS i_ct,
                    toUInt64(isNotNull(cost)) AS i_has_cost, toFloat64(ifNull(cost, 0)) AS i_cost
             FROM {inference} FINAL
             WHERE model = {m} AND ts >= toDateTime({since_pad}) AND ts < toDateTime({until_pad})
         ) AS served USING event_id
         GROUP BY s_version, s_served ORDER BY s_version, s_served",
        responses = t("shadow_responses"),
        inference = t("inference_events"),
        since = r.since,
        until = r.until,
        // A served inference is logged within seconds of its mirror (as `compare_mirrored`).
        since_pad = r.since.saturating_sub(3600),
        until_pad = r.until.saturating_add(3600),
    )
}

fn tables(st: &DashboardState) -> impl Fn(&str) -> String + '_ {
    move |n| st.store.table(n)
}

/// Which of the tables have the generative columns of migration 9.
async fn generative_columns(store: &Store) -> Result<(bool, bool), StoreError> {
    #[derive(clickhouse::Row, Deserialize)]
    struct T {
        tbl: String,
        n: u64,
    }
    let rows: Vec<T> = store
        .fetch(&format!(
            "SELECT toString(table) AS tbl, toUInt64(count()) AS n FROM system.columns
             WHERE database = {} AND table IN ('inference_events', 'shadow_responses')
               AND name IN ('ttft_ms', 'output_tps', 'prompt_tokens', 'completion_tokens', 'cost')
             GROUP BY tbl",
            sql_string(store.database())
        ))
        .await?;
    let n = |t: &str| rows.iter().find(|r| r.tbl == t).map_or(0, |r| r.n);
    // inference_events: the four new columns and `cost`; shadow_responses: tokens and cost.
    Ok((n("inference_events") >= 5, n("shadow_responses") >= 3))
}

// ---------------------------------------------------------------- numbers for people

/// `k / n` with its 95 % Wilson interval, e.g. `5.00 % (2.15 – 11.18 %)`; `–` without requests.
pub(crate) fn rate_cell(k: u64, n: u64) -> String {
    if n == 0 {
        return "–".into();
    }
    let (lo, hi) = vigil_analyzer::fairness::wilson_interval(k, n, Z95);
    let p = k as f64 / n as f64;
    format!(
        "<span class=\"rate\" data-value=\"{}\" data-ci-low=\"{}\" data-ci-high=\"{}\">{}</span> <small>({} – {})</small>",
        f(p),
        f(lo),
        f(hi),
        html::share(p, 2),
        html::fixed(lo.clamp(0.0, 1.0) * 100.0, 2),
        html::share(hi, 2)
    )
}

/// `sum / n` when there is anything to divide.
fn mean(sum: f64, n: u64) -> Option<f64> {
    (n > 0).then(|| sum / n as f64)
}

fn opt(x: Option<f64>, fmt: impl Fn(f64) -> String) -> String {
    x.filter(|x| x.is_finite()).map_or_else(|| "–".into(), fmt)
}

/// Raw value for CSV: empty when unknown.
fn raw(x: Option<f64>) -> String {
    x.filter(|x| x.is_finite()).map(f).unwrap_or_default()
}

/// The numbers of one version row, derived from its sums (`None`: no value to show).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VersionView {
    pub ttft_p50: Option<f64>,
    pub ttft_p95: Option<f64>,
    pub tps_p50: Option<f64>,
    pub prompt_mean: Option<f64>,
    pub completion_mean: Option<f64>,
    pub estimated_share: Option<f64>,
    /// Cost per 1,000 requests with a known cost.
    pub cost_per_1k: Option<f64>,
    pub streamed_share: Option<f64>,
}

impl VersionView {
    pub(crate) fn of(s: &VersionStats) -> Self {
        VersionView {
            ttft_p50: (s.ttft_n > 0).then_some(s.ttft_p50),
            ttft_p95: (s.ttft_n > 0).then_some(s.ttft_p95),
            tps_p50: (s.tps_n > 0).then_some(s.tps_p50),
            prompt_mean: mean(s.prompt_sum as f64, s.prompt_n),
            completion_mean: mean(s.completion_sum as f64, s.completion_n),
            estimated_share: mean(s.estimated as f64, s.tokens_n),
            cost_per_1k: mean(s.cost_sum * 1000.0, s.cost_n),
            streamed_share: mean(s.streamed as f64, s.requests),
        }
    }
}

/// `KeepRunning` → `keep running` (a verdict's name, for people).
fn words(name: &str) -> String {
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.extend(ch.to_lowercase());
    }
    out
}

fn ms(x: f64) -> String {
    if x.abs() >= 100.0 {
        html::int(x.round().max(0.0) as u64)
    } else {
        html::fixed(x, 1)
    }
}

fn money4(x: f64) -> String {
    html::fixed(x, 4)
}

// ---------------------------------------------------------------- the page

pub(super) async fn page(st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
    let mut p = PageOut::new("LLM");
    let r = c.range;
    let (inference_ok, shadow_ok) = generative_columns(&st.store).await?;
    if !inference_ok {
        p.push(empty_state(
            "This store has no generative columns yet (schema migration 9).",
            "Run `vigil migrate` with a vigil that includes the LLM gateway.",
            DOCS_LLM,
        ));
        return Ok(p);
    }
    let stats: Vec<VersionStats> = llm_data::version_stats(&st.store, r).await?;
    let mut per_model: BTreeMap<String, Vec<VersionStats>> = BTreeMap::new();
    for s in stats {
        per_model.entry(s.model.clone()).or_default().push(s);
    }
    let requested = c.get("model").map(str::to_string);
    let models: Vec<String> = per_model
        .iter()
        .filter(|(m, v)| {
            v.iter().any(|s| s.generative > 0) || requested.as_deref() == Some(m.as_str())
        })
        .map(|(m, _)| m.clone())
        .collect();
    let Some(model) = requested.or_else(|| models.first().cloned()) else {
        p.push(empty_state(
            "No LLM traffic in this time range.",
            "Put the gateway in front of an OpenAI-compatible server (vLLM, llama.cpp, TGI, Ollama): a [[gateway.models]] entry with api = \"openai\" and the server's /v1 base URL per version, then point clients at the gateway's /v1/chat/completions with the vigil model name as `model` (or send inference events with `generation`). Or widen the range.",
            DOCS_LLM,
        ));
        return Ok(p);
    };
    if models.len() > 1 || !models.contains(&model) {
        p.body
            .push_str(&tabs(c, "llm", &[], "model", &models, &model, ""));
    }
    let Some(versions) = per_model.get(&model).filter(|v| !v.is_empty()) else {
        p.push(empty_state(
            &format!("No requests of model `{model}` in this time range."),
            "Pick another model or widen the range.",
            DOCS_LLM,
        ));
        return Ok(p);
    };
    let production = st.controls.get(&model);

    // Feedback: the outcome name asked for, else the most frequent one linked to inferences.
    let names: Vec<NameCount> = st
        .store
        .fetch(&feedback_names_sql(&tables(st), &model, r))
        .await?;
    let feedback_name = c
        .get("feedback")
        .map(str::to_string)
        .or_else(|| names.first().map(|n| n.name.clone()));
    let feedback: Vec<Feedback> = match &feedback_name {
        Some(name) => {
            st.store
                .fetch(&feedback_sql(&tables(st), &model, name, r))
                .await?
        }
        None => Vec::new(),
    };

    // Per version.
    p.push(html! {
        h2 id="llm-title" { (model) ": per version" }
        p.hint {
            "Over the requests in range: TTFT = time to the first token; tokens/s = completion tokens per second after it; "
            "cost per 1,000 requests with a known cost (from the version's token prices); errors = requests that got no answer. "
            "Intervals are 95 % Wilson intervals."
        }
    });
    if let Some(name) = &feedback_name {
        let mut list: Vec<String> = names.iter().map(|n| n.name.clone()).collect();
        if !list.contains(name) {
            list.push(name.clone());
        }
        p.body.push_str(&tabs(
            c,
            "llm",
            &[("model", &model)],
            "feedback",
            &list,
            name,
            "feedback: ",
        ));
    }
    let mut rows = Vec::new();
    let mut data = Vec::new();
    for s in versions {
        let v = VersionView::of(s);
        let fb = feedback.iter().find(|x| x.version == s.version);
        let tag = if production == Some(&s.version) {
            " <span class=\"tag\">production</span>"
        } else {
            ""
        };
        rows.push(vec![
            format!(
                "<span id=\"llm-{}-{}\" data-requests=\"{}\">{}</span>{tag}",
                esc(&model),
                esc(&s.version),
                s.requests,
                esc(&s.version)
            ),
            int(s.requests),
            format!("{} / {}", opt(v.ttft_p50, ms), opt(v.ttft_p95, ms)),
            opt(v.tps_p50, |x| html::fixed(x, 1)),
            format!(
                "{} / {}",
                opt(v.prompt_mean, |x| html::fixed(x, 1)),
                opt(v.completion_mean, |x| html::fixed(x, 1))
            ),
            opt(v.estimated_share, |x| html::share(x, 1)),
            opt(v.cost_per_1k, money4),
            rate_cell(s.failed, s.requests),
            match fb {
                Some(x) => format!(
                    "{} <small>{} rated</small>",
                    rate_cell(x.positive, x.answered),
                    int(x.rated)
                ),
                None => "–".into(),
            },
            opt(v.streamed_share, |x| html::share(x, 1)),
        ]);
        let (elo, ehi) = ci(s.failed, s.requests);
        let (flo, fhi) = fb.map_or((None, None), |x| ci(x.positive, x.answered));
        data.push(vec![
            model.clone(),
            s.version.clone(),
            s.requests.to_string(),
            s.failed.to_string(),
            raw(mean(s.failed as f64, s.requests)),
            raw(elo),
            raw(ehi),
            raw(v.ttft_p50),
            raw(v.ttft_p95),
            raw(v.tps_p50),
            raw(v.prompt_mean),
            raw(v.completion_mean),
            raw(v.estimated_share),
            raw(v.cost_per_1k),
            raw(v.streamed_share),
            feedback_name.clone().unwrap_or_default(),
            fb.map(|x| x.answered.to_string()).unwrap_or_default(),
            fb.map(|x| x.rated.to_string()).unwrap_or_default(),
            fb.map(|x| x.positive.to_string()).unwrap_or_default(),
            raw(fb.and_then(|x| mean(x.positive as f64, x.answered))),
            raw(flo),
            raw(fhi),
        ]);
    }
    p.table_with_csv(
        &[
            "version",
            "requests",
            "TTFT p50 / p95 (ms)",
            "output tokens/s (median)",
            "mean prompt / completion tokens",
            "tokens estimated",
            "cost per 1k requests",
            "error rate (95 %)",
            "positive feedback (95 %)",
            "streamed",
        ],
        rows,
        Dataset::new(
            "llm-versions",
            &[
                "model",
                "version",
                "requests",
                "failed",
                "error_rate",
                "error_ci_low",
                "error_ci_high",
                "ttft_p50_ms",
                "ttft_p95_ms",
                "output_tps_p50",
                "mean_prompt_tokens",
                "mean_completion_tokens",
                "tokens_estimated_share",
                "cost_per_1k",
                "streamed_share",
                "feedback",
                "answered",
                "rated",
                "positive",
                "feedback_rate",
                "feedback_ci_low",
                "feedback_ci_high",
            ],
            data,
        ),
    );
    if feedback_name.is_none() {
        p.push(html! {
            p.hint id="feedback-none" {
                "No feedback linked to this model's requests: post outcome events (e.g. "
                code { "thumbs_up" } ", value 1 or 0) with "
                code { "inference_id" } " = the reply's " code { "x-vigil-event-id" } " header."
            }
        });
    }

    // Finish reasons per version.
    let reasons: Vec<ReasonCount> = llm_data::finish_reasons(&st.store, &model, r).await?;
    let mut order: BTreeMap<&str, u64> = BTreeMap::new();
    for x in &reasons {
        *order.entry(&x.reason).or_default() += x.n;
    }
    let mut columns: Vec<(&str, u64)> = order.into_iter().collect();
    columns.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut head: Vec<String> = vec!["version".into()];
    head.extend(columns.iter().map(|(reason, _)| {
        if reason.is_empty() {
            "(none)".to_string()
        } else {
            reason.to_string()
        }
    }));
    let reason_rows: Vec<Vec<String>> = versions
        .iter()
        .map(|s| {
            let total: u64 = reasons
                .iter()
                .filter(|x| x.version == s.version)
                .map(|x| x.n)
                .sum();
            let mut row = vec![esc(&s.version)];
            for (reason, _) in &columns {
                let n = reasons
                    .iter()
                    .find(|x| x.version == s.version && x.reason == *reason)
                    .map_or(0, |x| x.n);
                row.push(if total == 0 {
                    "–".into()
                } else {
                    format!(
                        "{} <small>{}</small>",
                        html::share(n as f64 / total as f64, 1),
                        int(n)
                    )
                });
            }
            row
        })
        .collect();
    p.body.push_str("<h2>Finish reasons</h2>");
    let head_refs: Vec<&str> = head.iter().map(String::as_str).collect();
    p.table_with_csv(
        &head_refs,
        reason_rows,
        Dataset::new(
            "llm-finish-reasons",
            &["version", "finish_reason", "requests"],
            reasons
                .iter()
                .map(|x| vec![x.version.clone(), x.reason.clone(), x.n.to_string()]),
        ),
    );

    // TTFT p95 over time.
    let ttft: Vec<TtftBucket> = llm_data::ttft_buckets(&st.store, &model, r).await?;
    let mut series: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for b in &ttft {
        series
            .entry(&b.version)
            .or_default()
            .push((b.bucket as f64, b.p95));
    }
    let id = format!("llm-ttft-{model}");
    p.chart(
        "llm",
        c,
        svg::line_chart(&LineChart {
            id: id.clone(),
            title: format!("{model}: time to first token, p95 (ms)"),
            y_label: "ms".into(),
            x_time: true,
            series: series
                .into_iter()
                .map(|(v, pts)| Series {
                    name: format!("{v} p95"),
                    points: pts,
                    band: vec![],
                })
                .collect(),
            hlines: vec![],
        }),
        Dataset::new(
            id,
            &[
                "bucket",
                "version",
                "requests",
                "ttft_p50_ms",
                "ttft_p95_ms",
            ],
            ttft.iter().map(|b| {
                vec![
                    b.bucket.to_string(),
                    b.version.clone(),
                    b.n.to_string(),
                    f(b.p50),
                    f(b.p95),
                ]
            }),
        ),
    );

    experiments(st, c, &mut p, &model).await?;
    if shadow_ok {
        shadow(st, &mut p, &model, r).await?;
    }
    Ok(p)
}

fn ci(k: u64, n: u64) -> (Option<f64>, Option<f64>) {
    if n == 0 {
        return (None, None);
    }
    let (lo, hi) = vigil_analyzer::fairness::wilson_interval(k, n, Z95);
    (Some(lo), Some(hi))
}

/// The model's configured experiments with their decisions over the range (the experimenter's
/// analysis, as on the Experiments page), and the requests each arm served.
async fn experiments(
    st: &DashboardState,
    c: &Ctx,
    p: &mut PageOut,
    model: &str,
) -> Result<(), DashboardError> {
    use vigil_experimenter::warehouse::{self, TimeRange};
    let r = c.range;
    let traffic: Vec<ArmTraffic> = st
        .store
        .fetch(&arm_traffic_sql(&tables(st), model, r))
        .await?;
    let configured: Vec<_> = st
        .experiments
        .iter()
        .filter(|e| e.model.as_deref() == Some(model))
        .collect();
    let mut keys: Vec<String> = configured.iter().map(|e| e.key.clone()).collect();
    for t in &traffic {
        if !keys.contains(&t.experiment) {
            keys.push(t.experiment.clone());
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    let requests = |key: &str, arm: &str| -> u64 {
        traffic
            .iter()
            .filter(|t| t.experiment == key && t.variant == arm)
            .map(|t| t.n)
            .sum()
    };
    let mut rows = Vec::new();
    for key in &keys {
        let Some(exp) = configured.iter().find(|e| &e.key == key) else {
            let arms: Vec<String> = traffic
                .iter()
                .filter(|t| &t.experiment == key)
                .map(|t| {
                    format!(
                        "{} → {}: {} requests",
                        esc(&t.variant),
                        esc(&t.version),
                        int(t.n)
                    )
                })
                .collect();
            rows.push(vec![
                esc(key),
                "not configured".into(),
                arms.join("<br>"),
                String::new(),
            ]);
            continue;
        };
        let range = TimeRange {
            since: Some(r.since),
            until: Some(r.until),
        };
        let (arms, decision) = match warehouse::analyze_experiment(&st.store, exp, None, range)
            .await
        {
            Ok(rep) => {
                let arms: Vec<String> = rep
                    .arms
                    .iter()
                    .map(|a| {
                        format!(
                            "{} → {}: {} units, {} requests",
                            esc(&a.name),
                            esc(&a.model_version),
                            int(a.units),
                            int(requests(key, &a.name))
                        )
                    })
                    .collect();
                let mut d: Vec<String> = rep
                    .decisions
                    .iter()
                    .map(|(arm, d)| {
                        let verdict = format!("{:?}", d.verdict);
                        format!(
                            "<span class=\"verdict\" id=\"llm-decision-{}-{}\" data-verdict=\"{}\">{}: {}</span>",
                            esc(key),
                            esc(arm),
                            esc(&verdict.to_lowercase()),
                            esc(arm),
                            esc(&words(&verdict))
                        )
                    })
                    .collect();
                if rep.srm_mismatch {
                    d.push(format!(
                        "<span class=\"banner error\">sample ratio mismatch (p = {})</span>",
                        html::p_value(rep.srm_p_value)
                    ));
                }
                (arms, d.join("<br>"))
            }
            Err(warehouse::WarehouseError::Store(e)) => return Err(e.into()),
            Err(e) => {
                let arms: Vec<String> = exp
                    .arms
                    .iter()
                    .map(|a| {
                        format!(
                            "{} → {}: {} requests",
                            esc(&a.name),
                            esc(&a.model_version),
                            int(requests(key, &a.name))
                        )
                    })
                    .collect();
                (arms, esc(&e.to_string()))
            }
        };
        rows.push(vec![
            experiment_link(c, key),
            esc(&format!("{:?}", exp.status).to_lowercase()),
            arms.join("<br>"),
            decision,
        ]);
    }
    p.body.push_str("<h2>Experiments on this model</h2>");
    p.table(
        "llm-experiments",
        &[
            "experiment",
            "status",
            "arms",
            "decision (details on Experiments)",
        ],
        rows,
    );
    if configured.is_empty() {
        p.push(empty_state(
            "Requests name an experiment that is not configured here, so there is no decision to show.",
            "Configure it in [[experiments]] with this model.",
            DOCS_EXPERIMENT_ANALYSIS,
        ));
    }
    Ok(())
}

/// Shadow candidates against the served version on the same mirrored requests.
async fn shadow(
    st: &DashboardState,
    p: &mut PageOut,
    model: &str,
    r: Range,
) -> Result<(), DashboardError> {
    let rows: Vec<ShadowLlm> = st.store.fetch(&shadow_sql(&tables(st), model, r)).await?;
    if rows.is_empty() {
        return Ok(());
    }
    p.body
        .push_str("<h2>Shadow candidates against the served version (same requests)</h2>");
    let vs = |cand: Option<f64>, served: Option<f64>, fmt: &dyn Fn(f64) -> String| {
        format!("{} <small>vs {}</small>", opt(cand, fmt), opt(served, fmt))
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            let lat = s.latency_pairs > 0;
            let tok = s.token_pairs > 0;
            let cost = mean(s.cand_cost_sum * 1000.0, s.cost_pairs);
            let served_cost = mean(s.served_cost_sum * 1000.0, s.cost_pairs);
            vec![
                esc(&s.candidate),
                esc(&s.served_version),
                int(s.mirrored),
                html::share(s.answered as f64 / s.mirrored.max(1) as f64, 1),
                vs(
                    lat.then_some(s.cand_latency_p50),
                    lat.then_some(s.served_latency_p50),
                    &ms,
                ),
                vs(
                    tok.then_some(s.cand_completion_mean),
                    tok.then_some(s.served_completion_mean),
                    &|x| html::fixed(x, 1),
                ),
                vs(cost, served_cost, &money4),
            ]
        })
        .collect();
    p.table_with_csv(
        &[
            "candidate",
            "served version",
            "mirrored requests",
            "answered",
            "median latency (ms), vs served",
            "mean completion tokens, vs served",
            "cost per 1k requests, vs served",
        ],
        cells,
        Dataset::new(
            "llm-shadow",
            &[
                "candidate",
                "served_version",
                "mirrored",
                "answered",
                "latency_pairs",
                "cand_latency_p50_ms",
                "served_latency_p50_ms",
                "token_pairs",
                "cand_completion_mean",
                "served_completion_mean",
                "cost_pairs",
                "cand_cost_per_1k",
                "served_cost_per_1k",
            ],
            rows.iter().map(|s| {
                let (lat, tok) = (s.latency_pairs > 0, s.token_pairs > 0);
                vec![
                    s.candidate.clone(),
                    s.served_version.clone(),
                    s.mirrored.to_string(),
                    s.answered.to_string(),
                    s.latency_pairs.to_string(),
                    raw(lat.then_some(s.cand_latency_p50)),
                    raw(lat.then_some(s.served_latency_p50)),
                    s.token_pairs.to_string(),
                    raw(tok.then_some(s.cand_completion_mean)),
                    raw(tok.then_some(s.served_completion_mean)),
                    s.cost_pairs.to_string(),
                    raw(mean(s.cand_cost_sum * 1000.0, s.cost_pairs)),
                    raw(mean(s.served_cost_sum * 1000.0, s.cost_pairs)),
                ]
            }),
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_carry_a_wilson_interval_and_no_signed_zero() {
        assert_eq!(rate_cell(0, 0), "–");
        let cell = rate_cell(5, 100);
        assert!(
            cell.contains(">5.00 %</span> <small>(2.15 – 11.18 %)</small>"),
            "{cell}"
        );
        assert!(cell.contains("data-value=\"0.05\""), "{cell}");
        let (lo, hi) = ci(5, 100);
        assert!((lo.unwrap() - 0.021543).abs() < 1e-5, "{lo:?}");
        assert!((hi.unwrap() - 0.111752).abs() < 1e-5, "{hi:?}");
        // None failed: the interval starts at exactly zero, printed unsigned.
        let none = rate_cell(0, 40);
        assert!(
            none.contains(">0.00 %</span> <small>(0.00 – 8.76 %)</small>"),
            "{none}"
        );
        assert!(!none.contains("-0"), "{none}");
        let all = rate_cell(3, 3);
        assert!(all.contains("(43.85 – 100.00 %)"), "{all}");
        assert_eq!(ci(1, 0), (None, None));
    }

    #[test]
    fn version_numbers_come_from_the_sums_and_unknowns_stay_unknown() {
        let s = VersionStats {
            model: "assistant".into(),
            version: "v1".into(),
            requests: 10,
            generative: 9,
            failed: 1,
            ttft_n: 8,
            ttft_p50: 120.0,
            ttft_p95: 480.0,
            tps_n: 8,
            tps_p50: 42.5,
            prompt_n: 9,
            prompt_sum: 900,
            completion_n: 9,
            completion_sum: 450,
            tokens_n: 9,
            estimated: 3,
            cost_n: 9,
            cost_sum: 0.009,
            streamed: 5,
        };
        let v = VersionView::of(&s);
        assert_eq!(v.ttft_p50, Some(120.0));
        assert_eq!(v.ttft_p95, Some(480.0));
        assert_eq!(v.tps_p50, Some(42.5));
        assert_eq!(v.prompt_mean, Some(100.0));
        assert_eq!(v.completion_mean, Some(50.0));
        assert!((v.estimated_share.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert!((v.cost_per_1k.unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(v.streamed_share, Some(0.5));
        // No TTFT, no prices, no tokens: shown as "–", not as 0.
        let empty = VersionView::of(&VersionStats {
            requests: 4,
            ..VersionStats::default()
        });
        assert_eq!(empty.ttft_p95, None);
        assert_eq!(empty.tps_p50, None);
        assert_eq!(empty.cost_per_1k, None);
        assert_eq!(opt(empty.prompt_mean, |x| html::fixed(x, 1)), "–");
        assert_eq!(raw(empty.cost_per_1k), "");
        assert_eq!(raw(Some(f64::NAN)), "");
        assert_eq!(opt(Some(-0.0), money4), "0.0000");
        assert_eq!(ms(1234.4), "1,234");
        assert_eq!(ms(85.26), "85.3");
        assert_eq!(ms(-0.0), "0.0");
        assert_eq!(words("KeepRunning"), "keep running");
        assert_eq!(words("Ship"), "ship");
    }

    #[test]
    fn queries_are_bounded_by_the_range_and_read_event_tables_with_final() {
        let t = |n: &str| format!("`vigil`.{n}");
        let r = Range {
            since: 1000,
            until: 5000,
            bucket: 60,
            rolled_until: 0,
        };
        let all = [
            feedback_names_sql(&t, "a'b", r),
            feedback_sql(&t, "a'b", "thumbs_up", r),
            arm_traffic_sql(&t, "a'b", r),
            shadow_sql(&t, "a'b", r),
        ];
        for sql in &all {
            assert!(sql.contains("GROUP BY"), "{sql}");
            // Event tables are read with FINAL (shadow_responses is a plain MergeTree).
            for table in ["inference_events", "outcome_events"] {
                let named = sql.matches(&format!("`vigil`.{table}")).count();
                let final_ = sql.matches(&format!("`vigil`.{table} FINAL")).count();
                assert_eq!(named, final_, "{sql}");
            }
            // Inside the dialect both engines speak: no window functions, no DateTime64.
            assert!(
                !sql.contains(" OVER") && !sql.contains("DateTime64"),
                "{sql}"
            );
            // Names are quoted.
            assert!(!sql.contains("'a'b'"), "{sql}");
        }
        // Inferences bounded by the range; feedback from an hour before it to 7 days after.
        assert!(all[2].contains("ts >= toDateTime(1000) AND ts < toDateTime(5000)"));
        assert!(all[0].contains("ts >= toDateTime(0) AND ts < toDateTime(609800)"));
        assert!(
            all[3].contains("ts < toDateTime(8600)"),
            "served rows padded by an hour"
        );
    }
}
