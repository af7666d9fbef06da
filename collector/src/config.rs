//! Collector configuration: the `[collector]`, `[kafka]` and `[http]` sections of `vigil.toml`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vigil_store::event::Limits;

/// Batching and back-pressure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// A batch never grows beyond this many rows.
    pub batch_max_rows: usize,
    /// A batch of at least this many rows is written as soon as no more input is queued
    /// (ClickHouse wants inserts of ≥ 10k rows, not many small ones)…
    pub batch_min_rows: usize,
    /// …and a smaller one when its oldest row has waited this long.
    pub batch_max_wait_ms: u64,
    /// Submissions (HTTP requests, Kafka chunks) queued for the writer before sources are told
    /// to wait (Kafka, files) or answered 429 (HTTP). Bounds memory.
    pub queue_capacity: usize,
    /// First and longest pause between retries of a failed insert.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// Per-event limits (payload size, feature count, name length, clock skew).
    pub limits: Limits,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            batch_max_rows: 200_000,
            batch_min_rows: 10_000,
            batch_max_wait_ms: 1000,
            queue_capacity: 64,
            retry_initial_ms: 200,
            retry_max_ms: 5000,
            limits: Limits::default(),
        }
    }
}

/// Kafka source. Topic names map to event kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list; empty disables the Kafka source.
    pub brokers: String,
    pub group_id: String,
    pub inference_topic: String,
    pub outcome_topic: String,
    pub exposure_topic: String,
    /// Messages handed to the writer at a time.
    pub chunk_rows: usize,
    /// Extra librdkafka properties (e.g. `"session.timeout.ms" = 6000`; strings, numbers and
    /// booleans are all accepted and passed to librdkafka as text).
    #[serde(deserialize_with = "scalar_map")]
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            group_id: "vigil-collector".into(),
            inference_topic: "vigil.inference".into(),
            outcome_topic: "vigil.outcomes".into(),
            exposure_topic: "vigil.exposures".into(),
            chunk_rows: 10_000,
            properties: BTreeMap::new(),
        }
    }
}

fn scalar_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::S(s) => s,
                Scalar::I(i) => i.to_string(),
                Scalar::F(f) => f.to_string(),
                Scalar::B(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// HTTP ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub bind: String,
    /// Largest request body; larger requests get 413.
    pub max_body_bytes: usize,
    /// How long a request waits for its events to be durable before answering 503.
    pub ack_timeout_ms: u64,
    pub workers: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: "127.0.0.1:8080".into(),
            max_body_bytes: 64 << 20,
            ack_timeout_ms: 30_000,
            workers: 2,
        }
    }
}
