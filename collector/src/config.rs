//! Collector configuration: the `[collector]`, `[kafka]` and `[http]` sections of `vigil.toml`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vigil_store::event::Limits;

/// Batching and back-pressure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// A batch is written when it holds this many rows (ClickHouse wants ≥ 10k-row inserts)…
    pub batch_max_rows: usize,
    /// …or when its oldest row has waited this long.
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
            batch_max_rows: 100_000,
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
    /// Extra librdkafka properties (e.g. `"session.timeout.ms" = "6000"`).
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
