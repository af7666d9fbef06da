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

#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
        let (attr_names, attr_values) = split_scalars(e.attributes.0);
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
            label: e.prediction.label.map(|l| l.0),
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
