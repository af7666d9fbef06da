//! Retraining requests: read the evidence (analyzer verdicts, shadow-run totals), evaluate the
//! `[[shadow.triggers]]`, file at most one open request per model and reason, deliver it
//! (webhook POST, Kafka topic), and export its training set as JSONL.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_store::rows::RetrainingRequestRow;
use vigil_store::{sql_string, Store, StoreError};

use crate::config::{parse_duration, ShadowConfig};
use crate::error::{Error, Result};
use crate::replay::latest_totals;
use crate::replay::source::Filters;
use crate::triggers::{evaluate, request_id, DriftEvidence, Evidence, Fired, RunEvidence};

/// Where requests are delivered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delivery {
    /// POST the request (JSON) here.
    pub webhook_url: Option<String>,
    /// Produce it (JSON, key = request id) to this topic ...
    pub kafka_topic: Option<String>,
    /// ... on these brokers.
    pub kafka_brokers: Option<String>,
}

impl Delivery {
    /// From `[shadow]`, with `[kafka] brokers` as the default brokers.
    pub fn from_config(cfg: &ShadowConfig, default_brokers: &str) -> Self {
        let brokers = cfg
            .kafka_brokers
            .clone()
            .filter(|b| !b.trim().is_empty())
            .or_else(|| Some(default_brokers.to_string()).filter(|b| !b.trim().is_empty()));
        Self {
            webhook_url: cfg.webhook_url.clone().filter(|u| !u.trim().is_empty()),
            kafka_topic: cfg.kafka_topic.clone().filter(|t| !t.trim().is_empty()),
            kafka_brokers: brokers,
        }
    }
}

/// What one evaluation of the rules did, per rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TriggerOutcome {
    /// The rule did not fire.
    Quiet {
        /// Rule name.
        rule: String,
    },
    /// It fired and a request was filed (and delivered as configured).
    Filed {
        /// Rule name.
        rule: String,
        /// The request as stored after delivery.
        request: Box<RetrainingRequestRow>,
    },
    /// It fired but an open request for the same model and reason exists.
    AlreadyOpen {
        /// Rule name.
        rule: String,
        /// The open request.
        request_id: String,
    },
    /// It fired on evidence whose request was already filed and closed (handled): only new
    /// evidence (a later window or run) files a new request.
    AlreadyHandled {
        /// Rule name.
        rule: String,
        /// The closed request.
        request_id: String,
    },
}

/// Why [`file_request`] filed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotFiled {
    /// An open request for the same model and reason exists.
    Open(String),
    /// A request for the same evidence exists and was closed.
    Closed(String),
}

#[derive(clickhouse::Row, Deserialize)]
struct DatasetRow {
    monitor: String,
    window_start: u32,
    window_end: u32,
    dataset_drift: u8,
    drift_share: f64,
}

#[derive(clickhouse::Row, Deserialize)]
struct DriftedColumn {
    column: String,
}

/// The evidence the rules of `model` look at: each monitor's latest dataset verdict and each
/// candidate's latest shadow-run total.
pub async fn gather_evidence(store: &Store, model: &str) -> Result<Evidence> {
    let table = store.table("monitor_results");
    let latest = store
        .fetch::<DatasetRow>(&format!(
            "SELECT toString(l_monitor) AS monitor, toUInt32(l_start) AS window_start,
                    toUInt32(l_end) AS window_end, toUInt8(l_drift) AS dataset_drift,
                    toFloat64(l_share) AS drift_share
             FROM (SELECT monitor AS l_monitor, max(window_end) AS l_end,
                          argMax(window_start, window_end) AS l_start,
                          argMax(dataset_drift, window_end) AS l_drift,
                          argMax(drift_share, window_end) AS l_share
                   FROM {table} FINAL WHERE model = {m} AND `column` = '*'
                   GROUP BY monitor)
             ORDER BY monitor",
            m = sql_string(model)
        ))
        .await?;
    let mut drift = Vec::new();
    for d in latest {
        let columns = if d.dataset_drift != 0 {
            store
                .fetch::<DriftedColumn>(&format!(
                    "SELECT toString(`column`) AS `column` FROM {table} FINAL
                     WHERE monitor = {} AND model = {} AND window_end = toDateTime({})
                           AND `column` != '*' AND drift = 1
                     ORDER BY `column`",
                    sql_string(&d.monitor),
                    sql_string(model),
                    d.window_end
                ))
                .await?
                .into_iter()
                .map(|c| c.column)
                .collect()
        } else {
            Vec::new()
        };
        drift.push(DriftEvidence {
            monitor: d.monitor,
            window_start: d.window_start,
            window_end: d.window_end,
            drift: d.dataset_drift != 0,
            drift_share: d.drift_share,
            columns,
        });
    }
    let runs = latest_totals(store, model)
        .await?
        .into_iter()
        .map(|r| RunEvidence {
            job_id: r.job_id,
            candidate: r.candidate,
            since: r.bucket_start,
            until: r.bucket_end,
            labelled: r.labelled,
            prod_accuracy: r.prod_accuracy,
            accuracy_delta: r.accuracy_delta,
            accuracy_delta_low: r.accuracy_delta_low,
            accuracy_delta_high: r.accuracy_delta_high,
            llm: llm_evidence(&r.llm),
        })
        .collect();
    Ok(Evidence { drift, runs })
}

/// The LLM part of a total row (`shadow_metrics.llm`, JSON; empty for classifier candidates).
fn llm_evidence(json: &str) -> Option<crate::triggers::LlmEvidence> {
    if json.trim().is_empty() {
        return None;
    }
    let v: crate::llm::LlmSummaryView = serde_json::from_str(json).ok()?;
    Some(crate::triggers::LlmEvidence {
        verdict: v.verdict,
        answered: v.answered,
        similarity_mean: v.similarity_mean,
        similarity_low: v.similarity_low,
        similarity_high: v.similarity_high,
        reasons: v.reasons,
    })
}

fn request_columns() -> &'static str {
    "toString(request_id) AS request_id, toString(l_model) AS model, toString(l_reason) AS reason,
     toString(l_rule) AS rule, toString(l_evidence) AS evidence,
     toUInt32(l_since) AS dataset_since, toUInt32(l_until) AS dataset_until,
     toString(l_filters) AS dataset_filters, toString(l_status) AS status,
     toUInt32(l_created) AS created_at, toString(l_webhook) AS webhook_status,
     toString(l_kafka) AS kafka_status, toString(l_email) AS email_status,
     toUInt64(l_updated) AS updated_ms"
}

fn requests_sql(store: &Store, filter: &str) -> String {
    format!(
        "SELECT {cols} FROM (
           SELECT request_id, argMax(model, updated_ms) AS l_model,
                  argMax(reason, updated_ms) AS l_reason, argMax(rule, updated_ms) AS l_rule,
                  argMax(evidence, updated_ms) AS l_evidence,
                  argMax(dataset_since, updated_ms) AS l_since,
                  argMax(dataset_until, updated_ms) AS l_until,
                  argMax(dataset_filters, updated_ms) AS l_filters,
                  argMax(status, updated_ms) AS l_status,
                  argMax(created_at, updated_ms) AS l_created,
                  argMax(webhook_status, updated_ms) AS l_webhook,
                  argMax(kafka_status, updated_ms) AS l_kafka,
                  argMax(email_status, updated_ms) AS l_email,
                  max(updated_ms) AS l_updated
           FROM {table} GROUP BY request_id)
         {filter}
         ORDER BY created_at DESC, request_id",
        cols = request_columns(),
        table = store.table("retraining_requests"),
    )
}

/// Every request's latest state, newest first; `status` filters (`open`, `closed`).
pub async fn list_requests(
    store: &Store,
    status: Option<&str>,
) -> Result<Vec<RetrainingRequestRow>, StoreError> {
    let filter = status
        .map(|s| format!("WHERE l_status = {}", sql_string(s)))
        .unwrap_or_default();
    store
        .fetch::<RetrainingRequestRow>(&requests_sql(store, &filter))
        .await
}

/// One request's latest state.
pub async fn get_request(store: &Store, id: &str) -> Result<Option<RetrainingRequestRow>> {
    let filter = format!("WHERE request_id = {}", sql_string(id));
    Ok(store
        .fetch::<RetrainingRequestRow>(&requests_sql(store, &filter))
        .await?
        .into_iter()
        .next())
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

/// Files `fired` unless an open request for the same model and reason exists, or the same
/// evidence was already filed and closed. The new request is stored before any delivery.
pub async fn file_request(
    store: &Store,
    fired: &Fired,
    filters: &Filters,
    delivery: &Delivery,
    email: bool,
) -> Result<std::result::Result<RetrainingRequestRow, NotFiled>> {
    let open = list_requests(store, Some("open")).await?;
    if let Some(r) = open
        .iter()
        .find(|r| r.model == fired.model && r.reason == fired.reason)
    {
        return Ok(Err(NotFiled::Open(r.request_id.clone())));
    }
    if let Some(r) = get_request(store, &request_id(fired)).await? {
        return Ok(Err(NotFiled::Closed(r.request_id)));
    }
    let off_or_pending = |on: bool| if on { "pending" } else { "off" }.to_string();
    let row = RetrainingRequestRow {
        request_id: request_id(fired),
        model: fired.model.clone(),
        reason: fired.reason.clone(),
        rule: fired.rule.clone(),
        evidence: fired.evidence.to_string(),
        dataset_since: fired.since,
        dataset_until: fired.until,
        dataset_filters: serde_json::to_string(filters).unwrap_or_else(|_| "{}".into()),
        status: "open".into(),
        created_at: (now_ms() / 1000) as u32,
        webhook_status: off_or_pending(delivery.webhook_url.is_some()),
        kafka_status: off_or_pending(delivery.kafka_topic.is_some()),
        email_status: off_or_pending(email),
        updated_ms: now_ms(),
    };
    store.insert(std::slice::from_ref(&row)).await?;
    Ok(Ok(row))
}

/// The JSON a webhook receives and a Kafka consumer reads.
pub fn request_payload(r: &RetrainingRequestRow) -> serde_json::Value {
    let evidence: serde_json::Value =
        serde_json::from_str(&r.evidence).unwrap_or(serde_json::Value::String(r.evidence.clone()));
    let filters: serde_json::Value = serde_json::from_str(&r.dataset_filters)
        .unwrap_or(serde_json::Value::String(r.dataset_filters.clone()));
    serde_json::json!({
        "type": "vigil.retraining_request",
        "request_id": r.request_id,
        "model": r.model,
        "reason": r.reason,
        "rule": r.rule,
        "evidence": evidence,
        "dataset": {
            "since": r.dataset_since,
            "until": r.dataset_until,
            "filters": filters,
            "export": format!("vigil shadow export --request {} --out train.jsonl", r.request_id),
        },
        "status": r.status,
        "created_at": r.created_at,
    })
}

/// POSTs the request to the webhook.
pub async fn post_webhook(url: &str, r: &RetrainingRequestRow) -> Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::Delivery(format!("webhook client: {e}")))?;
    let resp = client
        .post(url)
        .header("x-vigil-request-id", &r.request_id)
        .json(&request_payload(r))
        .send()
        .await
        .map_err(|e| Error::Delivery(format!("webhook {url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(Error::Delivery(format!(
            "webhook {url} answered {}",
            resp.status()
        )));
    }
    Ok(())
}

/// Produces the request to `topic` (key = request id) and waits for the broker's ack.
pub async fn produce_kafka(brokers: &str, topic: &str, r: &RetrainingRequestRow) -> Result<()> {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("message.timeout.ms", "15000")
        .create()
        .map_err(|e| Error::Delivery(format!("Kafka producer for {brokers}: {e}")))?;
    let payload = request_payload(r).to_string();
    producer
        .send(
            FutureRecord::to(topic)
                .key(r.request_id.as_str())
                .payload(payload.as_str()),
            Duration::from_secs(15),
        )
        .await
        .map_err(|(e, _)| Error::Delivery(format!("Kafka topic {topic} on {brokers}: {e}")))?;
    Ok(())
}

/// Delivers every channel of `r` still `pending` (or `failed: …`), stores the new state, and
/// returns it. A failed channel is retried on the next evaluation.
pub async fn deliver(
    store: &Store,
    mut r: RetrainingRequestRow,
    delivery: &Delivery,
) -> Result<RetrainingRequestRow> {
    let due = |s: &str| s == "pending" || s.starts_with("failed");
    let mut changed = false;
    if due(&r.webhook_status) {
        if let Some(url) = &delivery.webhook_url {
            r.webhook_status = match post_webhook(url, &r).await {
                Ok(()) => "delivered".into(),
                Err(e) => format!("failed: {e}"),
            };
            changed = true;
        }
    }
    if due(&r.kafka_status) {
        if let (Some(topic), Some(brokers)) = (&delivery.kafka_topic, &delivery.kafka_brokers) {
            r.kafka_status = match produce_kafka(brokers, topic, &r).await {
                Ok(()) => "delivered".into(),
                Err(e) => format!("failed: {e}"),
            };
            changed = true;
        } else if delivery.kafka_topic.is_some() {
            r.kafka_status =
                "failed: no brokers (set [shadow] kafka_brokers or [kafka] brokers)".into();
            changed = true;
        }
    }
    if changed {
        r.updated_ms = now_ms().max(r.updated_ms + 1);
        store.insert(std::slice::from_ref(&r)).await?;
    }
    Ok(r)
}

/// Queues the e-mail (and any webhook) of `route` for request `r` in the alerting outbox; the
/// alerting delivery loop (`vigil serve`, `vigil alerts deliver`) sends it, once per request.
pub async fn enqueue_email(
    store: &Store,
    routes: &[vigil_analyzer::alerting::RouteConfig],
    route: &str,
    r: &RetrainingRequestRow,
) -> String {
    let payload = request_payload(r);
    let text = format!(
        "vigil filed retraining request {} for model {} (reason: {}, rule {}).\n\nEvidence: {}\n\nTraining window: [{}, {}). Export it with:\n  vigil shadow export --request {} --out train.jsonl\n",
        r.request_id, r.model, r.reason, r.rule, r.evidence, r.dataset_since, r.dataset_until, r.request_id
    );
    let html = format!(
        "<pre>{}</pre>",
        text.replace('&', "&amp;").replace('<', "&lt;")
    );
    let n = vigil_analyzer::alerting::render::Notification {
        subject: format!("[vigil] retraining requested: {} ({})", r.model, r.reason),
        text,
        html,
        chart_png: None,
        json: Some(payload),
        idempotency_key: format!("retrain:{}", r.request_id),
    };
    match vigil_analyzer::alerting::outbox::enqueue(
        store,
        routes,
        route,
        &r.request_id,
        "custom",
        &n,
    )
    .await
    {
        Ok(keys) if keys.is_empty() => "queued (already)".into(),
        Ok(keys) => format!("queued: {}", keys.join(", ")),
        Err(e) => format!("failed: {e}"),
    }
}

/// Evaluates every rule once: files what fired (one open request per model and reason) and
/// (re)delivers open requests with pending or failed channels. With `[shadow] alert_route`,
/// a new request is also queued for e-mail through that alerting route.
pub async fn evaluate_triggers(
    store: &Store,
    cfg: &ShadowConfig,
    delivery: &Delivery,
    routes: &[vigil_analyzer::alerting::RouteConfig],
) -> Result<Vec<TriggerOutcome>> {
    let mut evidence: BTreeMap<String, Evidence> = BTreeMap::new();
    let mut out = Vec::new();
    for rule in &cfg.triggers {
        if !evidence.contains_key(&rule.model) {
            let ev = gather_evidence(store, &rule.model).await?;
            evidence.insert(rule.model.clone(), ev);
        }
        let window = rule
            .dataset_window
            .as_deref()
            .map(parse_duration)
            .transpose()?;
        let fired = evidence
            .get(&rule.model)
            .and_then(|ev| evaluate(rule, ev, window));
        let Some(fired) = fired else {
            out.push(TriggerOutcome::Quiet {
                rule: rule.name.clone(),
            });
            continue;
        };
        let email = cfg.alert_route.is_some();
        match file_request(store, &fired, &Filters::default(), delivery, email).await? {
            Ok(row) => {
                tracing::warn!(request = %row.request_id, model = %row.model, reason = %row.reason,
                    "retraining request filed");
                let mut row = deliver(store, row, delivery).await?;
                if let Some(route) = &cfg.alert_route {
                    row.email_status = enqueue_email(store, routes, route, &row).await;
                    row.updated_ms = now_ms().max(row.updated_ms + 1);
                    store.insert(std::slice::from_ref(&row)).await?;
                }
                out.push(TriggerOutcome::Filed {
                    rule: rule.name.clone(),
                    request: Box::new(row),
                });
            }
            Err(NotFiled::Open(existing)) => {
                if let Some(r) = get_request(store, &existing).await? {
                    deliver(store, r, delivery).await?;
                }
                out.push(TriggerOutcome::AlreadyOpen {
                    rule: rule.name.clone(),
                    request_id: existing,
                });
            }
            Err(NotFiled::Closed(existing)) => out.push(TriggerOutcome::AlreadyHandled {
                rule: rule.name.clone(),
                request_id: existing,
            }),
        }
    }
    Ok(out)
}

/// Marks a request closed (a new one for the same model and reason can then be filed).
pub async fn close_request(store: &Store, id: &str) -> Result<RetrainingRequestRow> {
    let mut r = get_request(store, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no retraining request `{id}`")))?;
    r.status = "closed".into();
    r.updated_ms = now_ms().max(r.updated_ms + 1);
    store.insert(std::slice::from_ref(&r)).await?;
    Ok(r)
}

#[derive(clickhouse::Row, Deserialize)]
struct ExportEvent {
    event_id: String,
    ts: u32,
    version: String,
    input: String,
    label: String,
    num_names: Vec<String>,
    num_values: Vec<f64>,
    cat_names: Vec<String>,
    cat_values: Vec<String>,
}

/// Writes the training set of request `id` to `out` as JSONL, one inference event per line:
/// `{"event_id","ts","version","input","features","prediction","label"}`, where `label` is the
/// ground truth (outcome `<label_prefix><class>`) when one exists, else null. Pages through the
/// window with keyset pagination; returns (rows, labelled rows).
pub async fn export_jsonl(
    store: &Store,
    id: &str,
    label_prefix: &str,
    out: &Path,
) -> Result<(u64, u64)> {
    let r = get_request(store, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no retraining request `{id}` (see `vigil shadow triggers` or GET /v1/retraining-requests)")))?;
    let filters: Filters = serde_json::from_str(&r.dataset_filters).unwrap_or_default();
    let scope = crate::replay::source::Scope {
        model: &r.model,
        since: r.dataset_since,
        until: r.dataset_until,
        sample_rate: 1.0,
        filters: &filters,
    };
    // Every event of the window, with or without input text (drift requests may be tabular).
    let mut where_clause = scope.where_clause().replace(" AND input != ''", "");
    if where_clause.is_empty() {
        where_clause = "1".into();
    }
    let write_err = |source| Error::Write {
        path: out.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(out).map_err(write_err)?;
    let mut w = std::io::BufWriter::new(file);
    let (mut rows, mut labelled) = (0u64, 0u64);
    let mut cursor: (u32, String) = (0, String::new());
    loop {
        let after = if cursor.1.is_empty() {
            String::new()
        } else {
            format!(
                " AND (ts > toDateTime({ts}) OR (ts = toDateTime({ts}) AND event_id > {id}))",
                ts = cursor.0,
                id = sql_string(&cursor.1)
            )
        };
        let page = store
            .fetch::<ExportEvent>(&format!(
                "SELECT toString(event_id) AS event_id, toUInt32(ts) AS ts,
                        toString(version) AS version, toString(input) AS input,
                        toString(ifNull(label, '')) AS label,
                        CAST(num_names AS Array(String)) AS num_names,
                        CAST(num_values AS Array(Float64)) AS num_values,
                        CAST(cat_names AS Array(String)) AS cat_names,
                        CAST(cat_values AS Array(String)) AS cat_values
                 FROM {} FINAL WHERE {where_clause}{after}
                 ORDER BY ts, event_id LIMIT 5000",
                store.table("inference_events")
            ))
            .await?;
        if page.is_empty() {
            break;
        }
        let ids: Vec<&str> = page.iter().map(|e| e.event_id.as_str()).collect();
        let truth = crate::replay::source::truth(store, &r.model, label_prefix, &ids).await?;
        for e in &page {
            let mut features = serde_json::Map::new();
            for (k, v) in e.num_names.iter().zip(&e.num_values) {
                features.insert(k.clone(), serde_json::json!(v));
            }
            for (k, v) in e.cat_names.iter().zip(&e.cat_values) {
                features.insert(k.clone(), serde_json::json!(v));
            }
            let label = truth.get(&e.event_id);
            labelled += u64::from(label.is_some());
            let line = serde_json::json!({
                "event_id": e.event_id,
                "ts": e.ts,
                "version": e.version,
                "input": e.input,
                "features": features,
                "prediction": if e.label.is_empty() { serde_json::Value::Null } else { serde_json::json!(e.label) },
                "label": label,
            });
            writeln!(w, "{line}").map_err(write_err)?;
            rows += 1;
        }
        if let Some(last) = page.last() {
            cursor = (last.ts, last.event_id.clone());
        }
    }
    w.flush().map_err(write_err)?;
    Ok((rows, labelled))
}
