//! Rows as stored in ClickHouse, and the conversion from validated events.
//!
//! Every table keeps the source coordinates of each row (`source`, `src_partition`, `src_offset`):
//! for Kafka they are what the collector resumes from; for HTTP and files they locate the request
//! or line in the dead letters.

use crate::event::{Event, EventKind, ExposureEvent, FeatureValue, InferenceEvent, OutcomeEvent};
use serde::Serialize;

/// A row type that can be inserted: its table and its columns in RowBinary order.
pub trait TableRow: Serialize + Send + Sync + 'static {
    const TABLE: &'static str;
    const COLUMNS: &'static [&'static str];
}

/// Where a row came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SourceCoord {
    /// `kafka:<topic>`, `http`, `file:<path>`, `demo`.
    pub source: String,
    /// Kafka partition (or -1).
    pub partition: i32,
    /// Kafka offset, or line number for files, or item index for HTTP.
    pub offset: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InferenceRow {
    pub event_id: String,
    pub ts: u32,
    pub ts_ms: u64,
    pub model: String,
    pub version: String,
    pub unit_id: String,
    pub num_names: Vec<String>,
    pub num_values: Vec<f64>,
    pub cat_names: Vec<String>,
    pub cat_values: Vec<String>,
    pub score: Option<f64>,
    pub label: Option<String>,
    pub latency_ms: Option<f64>,
    pub cost: Option<f64>,
    pub attr_names: Vec<String>,
    pub attr_values: Vec<String>,
    pub experiment: String,
    pub variant: String,
    pub input: String,
    pub source: String,
    pub src_partition: i32,
    pub src_offset: i64,
    pub ingested_at: u32,
    /// Generative fields (migration 9; `generation` in the event contract): the response
    /// text, tokens, time to first token, output tokens per second, finish reason and whether
    /// the response was streamed. The prompt is `input`.
    pub output: String,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    /// 1 when the token counts were counted by vigil because the server reported no usage.
    pub tokens_estimated: u8,
    pub ttft_ms: Option<f64>,
    pub output_tps: Option<f64>,
    pub finish_reason: String,
    pub streamed: u8,
}

impl TableRow for InferenceRow {
    const TABLE: &'static str = "inference_events";
    const COLUMNS: &'static [&'static str] = &[
        "event_id",
        "ts",
        "ts_ms",
        "model",
        "version",
        "unit_id",
        "num_names",
        "num_values",
        "cat_names",
        "cat_values",
        "score",
        "label",
        "latency_ms",
        "cost",
        "attr_names",
        "attr_values",
        "experiment",
        "variant",
        "input",
        "source",
        "src_partition",
        "src_offset",
        "ingested_at",
        "output",
        "prompt_tokens",
        "completion_tokens",
        "tokens_estimated",
        "ttft_ms",
        "output_tps",
        "finish_reason",
        "streamed",
    ];
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeRow {
    pub event_id: String,
    pub ts: u32,
    pub ts_ms: u64,
    pub unit_id: String,
    pub model: String,
    pub inference_id: String,
    pub name: String,
    pub value: f64,
    pub source: String,
    pub src_partition: i32,
    pub src_offset: i64,
    pub ingested_at: u32,
}

impl TableRow for OutcomeRow {
    const TABLE: &'static str = "outcome_events";
    const COLUMNS: &'static [&'static str] = &[
        "event_id",
        "ts",
        "ts_ms",
        "unit_id",
        "model",
        "inference_id",
        "name",
        "value",
        "source",
        "src_partition",
        "src_offset",
        "ingested_at",
    ];
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExposureRow {
    pub event_id: String,
    pub ts: u32,
    pub ts_ms: u64,
    pub experiment: String,
    pub variant: String,
    pub unit_id: String,
    pub model: String,
    pub version: String,
    pub attr_names: Vec<String>,
    pub attr_values: Vec<String>,
    pub source: String,
    pub src_partition: i32,
    pub src_offset: i64,
    pub ingested_at: u32,
}

impl TableRow for ExposureRow {
    const TABLE: &'static str = "exposure_events";
    const COLUMNS: &'static [&'static str] = &[
        "event_id",
        "ts",
        "ts_ms",
        "experiment",
        "variant",
        "unit_id",
        "model",
        "version",
        "attr_names",
        "attr_values",
        "source",
        "src_partition",
        "src_offset",
        "ingested_at",
    ];
}

/// An input that could not be accepted, kept with its raw payload and the reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterRow {
    pub received_at: u32,
    pub kind: String,
    pub source: String,
    pub src_partition: i32,
    pub src_offset: i64,
    pub field: String,
    pub reason: String,
    /// `utf8` when `payload` is the payload itself, `base64` when the payload was not UTF-8.
    pub payload_encoding: String,
    pub payload: String,
    /// Size of the original payload; `payload` holds at most [`DEAD_LETTER_MAX_PAYLOAD`] bytes of it.
    pub payload_bytes: u64,
}

/// Dead letters keep up to this many bytes of a payload (the rest is counted, not stored).
pub const DEAD_LETTER_MAX_PAYLOAD: usize = 2 << 20;

impl TableRow for DeadLetterRow {
    const TABLE: &'static str = "dead_letters";
    const COLUMNS: &'static [&'static str] = &[
        "received_at",
        "kind",
        "source",
        "src_partition",
        "src_offset",
        "field",
        "reason",
        "payload_encoding",
        "payload",
        "payload_bytes",
    ];
}

/// Progress of one Kafka partition: everything below `next_offset` is in the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestOffsetRow {
    pub consumer_group: String,
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
    pub written_at: u32,
}

impl TableRow for IngestOffsetRow {
    const TABLE: &'static str = "ingest_offsets";
    const COLUMNS: &'static [&'static str] = &[
        "consumer_group",
        "topic",
        "partition",
        "next_offset",
        "written_at",
    ];
}

/// A shadow candidate's answer to a mirrored request, kept for offline comparison with the
/// version that served the request (the gateway writes these; nothing reads them on a hot path).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ShadowResponseRow {
    /// The gateway's id of the mirrored request (also in the served inference row's `event_id`).
    pub request_id: String,
    pub ts: u32,
    pub ts_ms: u64,
    pub model: String,
    /// The candidate version that answered.
    pub version: String,
    /// The version that served the original request.
    pub served_version: String,
    pub unit_id: String,
    /// The candidate's response body (JSON as text; not parsed, so any output shape is kept).
    pub output: String,
    pub latency_ms: f64,
    /// HTTP status, or 0 when no response arrived (timeout, connection refused).
    pub status: u16,
    /// Transport error text when `status` is 0.
    pub error: String,
    /// An LLM answer's text (the first choice), tokens and cost (migration 9); empty/NULL for
    /// other models.
    pub text: String,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    pub cost: Option<f64>,
}

impl TableRow for ShadowResponseRow {
    const TABLE: &'static str = "shadow_responses";
    const COLUMNS: &'static [&'static str] = &[
        "request_id",
        "ts",
        "ts_ms",
        "model",
        "version",
        "served_version",
        "unit_id",
        "output",
        "latency_ms",
        "status",
        "error",
        "text",
        "prompt_tokens",
        "completion_tokens",
        "cost",
    ];
}

/// One verdict of a continuous monitor: a column (or `*`, the dataset) in one window.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct MonitorResultRow {
    pub run_at: u32,
    pub monitor: String,
    pub model: String,
    /// Empty when the monitor covers every version of the model.
    pub version: String,
    pub window_start: u32,
    pub window_end: u32,
    /// Column name, or `*` for the dataset-level row.
    pub column: String,
    /// Drift method (`wasserstein`, `jensenshannon`, …); `share` on the dataset row.
    pub method: String,
    pub score: f64,
    pub threshold: f64,
    pub drift: u8,
    /// `drift`, `ok` or `insufficient_data`.
    pub verdict: String,
    pub reference_rows: u64,
    pub current_rows: u64,
    pub dataset_drift: u8,
    pub drift_share: f64,
}

impl TableRow for MonitorResultRow {
    const TABLE: &'static str = "monitor_results";
    const COLUMNS: &'static [&'static str] = &[
        "run_at",
        "monitor",
        "model",
        "version",
        "window_start",
        "window_end",
        "`column`",
        "method",
        "score",
        "threshold",
        "drift",
        "verdict",
        "reference_rows",
        "current_rows",
        "dataset_drift",
        "drift_share",
    ];
}

/// An example text of a text monitor's window (migration 10): the reference and current
/// texts nearest their side's mean embedding and the current texts farthest from the
/// reference's, so the drift page can show what changed.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct MonitorExampleRow {
    pub run_at: u32,
    pub monitor: String,
    pub model: String,
    pub version: String,
    pub window_start: u32,
    pub window_end: u32,
    /// The text column (`input`, `output`).
    pub column: String,
    /// `reference_central`, `current_central` or `most_changed`.
    pub kind: String,
    /// 1 = nearest (central kinds) or farthest (`most_changed`).
    pub rank: u16,
    pub event_id: String,
    /// The text, cut to a few hundred characters.
    pub text: String,
    /// Euclidean distance of its embedding to the centroid it was ranked by.
    pub distance: f64,
}

impl TableRow for MonitorExampleRow {
    const TABLE: &'static str = "monitor_examples";
    const COLUMNS: &'static [&'static str] = &[
        "run_at",
        "monitor",
        "model",
        "version",
        "window_start",
        "window_end",
        "`column`",
        "kind",
        "rank",
        "event_id",
        "text",
        "distance",
    ];
}

/// An alert incident's state (migration 5): one row per state change, latest `updated_ms` wins.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct AlertIncidentRow {
    /// `rule:monitor:model:version:first_window_end`: the same firing never opens twice.
    pub id: String,
    pub rule: String,
    pub monitor: String,
    pub model: String,
    pub version: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// `firing`, `acknowledged` or `resolved`.
    pub state: String,
    /// 1 when a silence matched when it fired (no notification was sent).
    pub silenced: u8,
    pub opened_at: u32,
    pub first_window_end: u32,
    pub last_window_end: u32,
    /// Consecutive clear windows seen while open (hysteresis for resolving).
    pub clear_windows: u32,
    /// Drifted columns with scores and thresholds, JSON.
    pub columns_json: String,
    pub acked_by: String,
    pub acked_at: u32,
    pub resolved_at: u32,
    pub updated_ms: u64,
}

impl TableRow for AlertIncidentRow {
    const TABLE: &'static str = "alert_incidents";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "rule",
        "monitor",
        "model",
        "version",
        "severity",
        "state",
        "silenced",
        "opened_at",
        "first_window_end",
        "last_window_end",
        "clear_windows",
        "columns_json",
        "acked_by",
        "acked_at",
        "resolved_at",
        "updated_ms",
    ];
}

/// One notification in the alerting outbox (migration 5): written before delivery, updated
/// (new row, larger `updated_ms`) after each attempt.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct AlertNotificationRow {
    /// Unique per notification and channel: a retry or a restart never sends it twice.
    pub idempotency_key: String,
    pub incident_id: String,
    /// `fired`, `resolved`, `test` or `custom`.
    pub kind: String,
    pub route: String,
    /// `email` or `webhook`.
    pub channel: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Webhook body (JSON), empty for e-mail.
    pub body_json: String,
    /// Inline chart (PNG, base64) referenced by the HTML part, or empty.
    pub attachment_b64: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: u32,
    pub created_at: u32,
    pub delivered_at: u32,
    pub last_error: String,
    pub updated_ms: u64,
}

impl TableRow for AlertNotificationRow {
    const TABLE: &'static str = "alert_notifications";
    const COLUMNS: &'static [&'static str] = &[
        "idempotency_key",
        "incident_id",
        "kind",
        "route",
        "channel",
        "subject",
        "text",
        "html",
        "body_json",
        "attachment_b64",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
        "delivered_at",
        "last_error",
        "updated_ms",
    ];
}

/// A silence (migration 5): no notification for matching incidents until `ends_at`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct AlertSilenceRow {
    pub id: String,
    pub model: String,
    /// Empty: every monitor of the model.
    pub monitor: String,
    pub starts_at: u32,
    pub ends_at: u32,
    pub reason: String,
    pub created_by: String,
    pub created_at: u32,
}

impl TableRow for AlertSilenceRow {
    const TABLE: &'static str = "alert_silences";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "model",
        "monitor",
        "starts_at",
        "ends_at",
        "reason",
        "created_by",
        "created_at",
    ];
}

/// Alert history (migration 5): fired, acknowledged, resolved, silenced, with the actor.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct AlertEventRow {
    pub at: u32,
    pub at_ms: u64,
    pub incident_id: String,
    pub event: String,
    pub actor: String,
    pub model: String,
    pub monitor: String,
    pub detail: String,
}

impl TableRow for AlertEventRow {
    const TABLE: &'static str = "alert_events";
    const COLUMNS: &'static [&'static str] = &[
        "at",
        "at_ms",
        "incident_id",
        "event",
        "actor",
        "model",
        "monitor",
        "detail",
    ];
}

/// A change of a model's production version (migration 4): a promotion, a rollback or a step of
/// a ramp. Append-only; the current production version is the replay of these rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct DeploymentRow {
    pub id: String,
    pub ts: u32,
    pub ts_ms: u64,
    pub model: String,
    /// `promote`, `rollback`, `ramp` (a ramp advanced) or `ramp_rollback` (a guardrail failed).
    pub action: String,
    pub experiment: String,
    pub arm: String,
    pub from_version: String,
    pub to_version: String,
    /// Share of the model's traffic `to_version` serves after this change (1 = all of it).
    pub rollout_share: f64,
    /// Who: the token name or the CLI user.
    pub actor: String,
    pub reason: String,
    /// JSON snapshot of the analysis that justified the change.
    pub evidence: String,
    /// What happened in MLflow (`alias champion -> 3`, an error, or empty when not configured).
    pub mlflow: String,
}

impl TableRow for DeploymentRow {
    const TABLE: &'static str = "deployments";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "ts",
        "ts_ms",
        "model",
        "action",
        "experiment",
        "arm",
        "from_version",
        "to_version",
        "rollout_share",
        "actor",
        "reason",
        "evidence",
        "mlflow",
    ];
}

/// One state change of a shadow replay job (migration 6); readers take the latest `updated_ms`
/// per `job_id`. The checkpoint is `(cursor_ts, cursor_event_id)` plus the serialized
/// accumulator `state`, so a resumed job continues exactly where the last page ended.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct ShadowRunRow {
    pub job_id: String,
    pub model: String,
    /// `name@version` of production.
    pub production: String,
    /// Candidate versions, comma-separated.
    pub candidates: String,
    pub since: u32,
    pub until: u32,
    pub sample_rate: f64,
    /// Filters of the replayed events, JSON.
    pub filters: String,
    /// `running`, `done` or `failed`.
    pub status: String,
    pub cursor_ts: u32,
    pub cursor_event_id: String,
    pub processed: u64,
    pub skipped: u64,
    pub started_at: u32,
    pub updated_ms: u64,
    pub error: String,
    /// Accumulated comparison state (JSON) at the checkpoint.
    pub state: String,
}

impl TableRow for ShadowRunRow {
    const TABLE: &'static str = "shadow_runs";
    const COLUMNS: &'static [&'static str] = &[
        "job_id",
        "model",
        "production",
        "candidates",
        "since",
        "until",
        "sample_rate",
        "filters",
        "status",
        "cursor_ts",
        "cursor_event_id",
        "processed",
        "skipped",
        "started_at",
        "updated_ms",
        "error",
        "state",
    ];
}

/// Comparison of one candidate with production over one time bucket (`kind = 'bucket'`) or the
/// whole replayed window (`kind = 'total'`) of a shadow run (migration 6).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct ShadowMetricRow {
    pub job_id: String,
    pub model: String,
    pub production: String,
    pub candidate: String,
    pub kind: String,
    pub bucket_start: u32,
    pub bucket_end: u32,
    pub n: u64,
    /// Share of inputs where the candidate's label equals production's.
    pub agreement: f64,
    /// Share of inputs where the re-run production model reproduces the logged label.
    pub replay_agreement: f64,
    /// Candidate minus production winning-class score.
    pub score_delta_mean: f64,
    pub score_delta_p05: f64,
    pub score_delta_p50: f64,
    pub score_delta_p95: f64,
    /// Cosine of the two models' embeddings of the same input (NaN-free: 0 when dims differ).
    pub cosine_mean: f64,
    pub cosine_p05: f64,
    pub top_shift_label: String,
    pub top_shift: f64,
    /// Inputs with a ground-truth label (outcome).
    pub labelled: u64,
    pub prod_accuracy: f64,
    pub cand_accuracy: f64,
    pub accuracy_delta: f64,
    pub accuracy_delta_low: f64,
    pub accuracy_delta_high: f64,
    pub prod_f1: f64,
    pub cand_f1: f64,
    pub f1_delta: f64,
    pub f1_delta_low: f64,
    pub f1_delta_high: f64,
    pub prod_ms_per_input: f64,
    pub cand_ms_per_input: f64,
    pub cand_inputs_per_sec: f64,
    /// `acceptable`, `rejected` or `better`.
    pub verdict: String,
    /// Reasons of the verdict, JSON list.
    pub reasons: String,
    pub written_at: u32,
    /// LLM candidates (migration 11): the semantic comparison as a JSON object (docs/shadow.md);
    /// empty for classifier candidates.
    pub llm: String,
}

impl TableRow for ShadowMetricRow {
    const TABLE: &'static str = "shadow_metrics";
    const COLUMNS: &'static [&'static str] = &[
        "job_id",
        "model",
        "production",
        "candidate",
        "kind",
        "bucket_start",
        "bucket_end",
        "n",
        "agreement",
        "replay_agreement",
        "score_delta_mean",
        "score_delta_p05",
        "score_delta_p50",
        "score_delta_p95",
        "cosine_mean",
        "cosine_p05",
        "top_shift_label",
        "top_shift",
        "labelled",
        "prod_accuracy",
        "cand_accuracy",
        "accuracy_delta",
        "accuracy_delta_low",
        "accuracy_delta_high",
        "prod_f1",
        "cand_f1",
        "f1_delta",
        "f1_delta_low",
        "f1_delta_high",
        "prod_ms_per_input",
        "cand_ms_per_input",
        "cand_inputs_per_sec",
        "verdict",
        "reasons",
        "written_at",
        "llm",
    ];
}

/// One state change of a retraining request (migration 6); latest `updated_ms` per id wins.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct RetrainingRequestRow {
    pub request_id: String,
    pub model: String,
    /// `drift`, `performance`, `candidate_better` or `llm_candidate`.
    pub reason: String,
    /// The trigger rule that fired.
    pub rule: String,
    /// What made it fire, JSON.
    pub evidence: String,
    /// The training set to export: inference events of `model` in `[since, until)` + filters.
    pub dataset_since: u32,
    pub dataset_until: u32,
    pub dataset_filters: String,
    /// `open` or `closed`.
    pub status: String,
    pub created_at: u32,
    /// Delivery state per channel: `pending`, `delivered`, `failed: …` or `off`.
    pub webhook_status: String,
    pub kafka_status: String,
    pub email_status: String,
    pub updated_ms: u64,
}

impl TableRow for RetrainingRequestRow {
    const TABLE: &'static str = "retraining_requests";
    const COLUMNS: &'static [&'static str] = &[
        "request_id",
        "model",
        "reason",
        "rule",
        "evidence",
        "dataset_since",
        "dataset_until",
        "dataset_filters",
        "status",
        "created_at",
        "webhook_status",
        "kafka_status",
        "email_status",
        "updated_ms",
    ];
}

fn now_secs() -> u32 {
    chrono::Utc::now().timestamp().clamp(0, u32::MAX as i64) as u32
}

impl DeadLetterRow {
    pub fn new(
        kind: EventKind,
        coord: &SourceCoord,
        field: &str,
        reason: &str,
        payload: &[u8],
    ) -> Self {
        let kept = &payload[..payload.len().min(DEAD_LETTER_MAX_PAYLOAD)];
        let (payload_encoding, text) = match std::str::from_utf8(kept) {
            Ok(s) => ("utf8", s.to_owned()),
            Err(e) if e.error_len().is_none() && payload.len() > kept.len() => {
                // Cut inside a multi-byte character: keep the valid prefix.
                let valid = e.valid_up_to();
                ("utf8", String::from_utf8_lossy(&kept[..valid]).into_owned())
            }
            Err(_) => ("base64", base64_encode(kept)),
        };
        DeadLetterRow {
            received_at: now_secs(),
            kind: kind.as_str().to_owned(),
            source: coord.source.clone(),
            src_partition: coord.partition,
            src_offset: coord.offset,
            field: field.to_owned(),
            reason: reason.to_owned(),
            payload_encoding: payload_encoding.to_owned(),
            payload: text,
            payload_bytes: payload.len() as u64,
        }
    }
}

/// Standard base64 with padding (dead letters only; not a hot path).
pub fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

fn split_ts(ms: i64) -> (u32, u64) {
    let ms = ms.max(0) as u64;
    ((ms / 1000).min(u32::MAX as u64) as u32, ms)
}

fn split_scalars(fields: Vec<(String, crate::event::Scalar)>) -> (Vec<String>, Vec<String>) {
    fields.into_iter().map(|(k, v)| (k, v.0)).unzip()
}

impl InferenceRow {
    pub fn from_event(e: InferenceEvent, coord: &SourceCoord) -> Self {
        let (ts, ts_ms) = split_ts(e.ts.millis());
        let mut num_names = Vec::new();
        let mut num_values = Vec::new();
        let mut cat_names = Vec::new();
        let mut cat_values = Vec::new();
        for (name, value) in e.features.0 {
            match value {
                FeatureValue::Number(x) => {
                    num_names.push(name);
                    num_values.push(x);
                }
                FeatureValue::Text(s) => {
                    cat_names.push(name);
                    cat_values.push(s);
                }
            }
        }
        let (mut attr_names, mut attr_values) = split_scalars(e.attributes.0);
        if let Some(err) = e.error {
            // No column of its own: the failure is the missing prediction; its reason rides
            // along as an attribute (an `error` attribute given explicitly wins).
            if !attr_names.iter().any(|n| n == "error") {
                attr_names.push("error".into());
                attr_values.push(err);
            }
        }
        let g = *e.generation.unwrap_or_default();
        InferenceRow {
            event_id: e.event_id,
            ts,
            ts_ms,
            model: e.model,
            version: e.version,
            unit_id: e.unit_id,
            num_names,
            num_values,
            cat_names,
            cat_values,
            score: e.prediction.score,
            // A finished generation's label is its finish reason (see `validate_inference`).
            label: e
                .prediction
                .label
                .map(|l| l.0)
                .or_else(|| g.finish_reason.clone()),
            latency_ms: e.latency_ms,
            cost: e.cost,
            attr_names,
            attr_values,
            experiment: e.experiment.unwrap_or_default(),
            variant: e.variant.unwrap_or_default(),
            input: e.input.unwrap_or_default(),
            source: coord.source.clone(),
            src_partition: coord.partition,
            src_offset: coord.offset,
            ingested_at: now_secs(),
            output: g.output.unwrap_or_default(),
            prompt_tokens: g.prompt_tokens,
            completion_tokens: g.completion_tokens,
            tokens_estimated: u8::from(g.tokens_estimated),
            ttft_ms: g.ttft_ms,
            output_tps: g.output_tokens_per_s,
            finish_reason: g.finish_reason.unwrap_or_default(),
            streamed: u8::from(g.streamed),
        }
    }
}

impl OutcomeRow {
    pub fn from_event(e: OutcomeEvent, coord: &SourceCoord) -> Self {
        let (ts, ts_ms) = split_ts(e.ts.millis());
        OutcomeRow {
            event_id: e.event_id,
            ts,
            ts_ms,
            unit_id: e.unit_id,
            model: e.model,
            inference_id: e.inference_id.unwrap_or_default(),
            name: e.name,
            value: e.value,
            source: coord.source.clone(),
            src_partition: coord.partition,
            src_offset: coord.offset,
            ingested_at: now_secs(),
        }
    }
}

impl ExposureRow {
    pub fn from_event(e: ExposureEvent, coord: &SourceCoord) -> Self {
        let (ts, ts_ms) = split_ts(e.ts.millis());
        let (attr_names, attr_values) = split_scalars(e.attributes.0);
        ExposureRow {
            event_id: e.event_id,
            ts,
            ts_ms,
            experiment: e.experiment,
            variant: e.variant,
            unit_id: e.unit_id,
            model: e.model.unwrap_or_default(),
            version: e.version.unwrap_or_default(),
            attr_names,
            attr_values,
            source: coord.source.clone(),
            src_partition: coord.partition,
            src_offset: coord.offset,
            ingested_at: now_secs(),
        }
    }
}

/// Rows bound for the store, grouped by table. The unit of one write.
#[derive(Debug, Default, Clone)]
pub struct RowBatch {
    pub inference: Vec<InferenceRow>,
    pub outcomes: Vec<OutcomeRow>,
    pub exposures: Vec<ExposureRow>,
    pub dead_letters: Vec<DeadLetterRow>,
    pub shadow_responses: Vec<ShadowResponseRow>,
}

impl RowBatch {
    pub fn len(&self) -> usize {
        self.inference.len()
            + self.outcomes.len()
            + self.exposures.len()
            + self.dead_letters.len()
            + self.shadow_responses.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Adds a validated event.
    pub fn push_event(&mut self, event: Event, coord: &SourceCoord) {
        match event {
            Event::Inference(e) => self.inference.push(InferenceRow::from_event(e, coord)),
            Event::Outcome(e) => self.outcomes.push(OutcomeRow::from_event(e, coord)),
            Event::Exposure(e) => self.exposures.push(ExposureRow::from_event(e, coord)),
        }
    }
    pub fn append(&mut self, other: &mut RowBatch) {
        self.inference.append(&mut other.inference);
        self.outcomes.append(&mut other.outcomes);
        self.exposures.append(&mut other.exposures);
        self.dead_letters.append(&mut other.dead_letters);
        self.shadow_responses.append(&mut other.shadow_responses);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(&[0xff, 0xfe]), "//4=");
    }

    #[test]
    fn dead_letter_keeps_invalid_utf8_losslessly() {
        let coord = SourceCoord {
            source: "http".into(),
            partition: -1,
            offset: 3,
        };
        let d = DeadLetterRow::new(EventKind::Inference, &coord, "$", "bad", &[0xff, b'a']);
        assert_eq!(d.payload_encoding, "base64");
        assert_eq!(d.payload, "/2E=");
        assert_eq!(d.payload_bytes, 2);
    }
}
