//! vigil-collector: gets events from Kafka, HTTP and files into the store, exactly once.
//!
//! ```text
//! sources (kafka.rs, http.rs, file.rs) ─► decode.rs (validate; rejects → dead letters)
//!        └─► writer.rs (bounded queue, batching by size/age, retry, progress) ─► vigil_store::Store
//! ```
//!
//! Every source goes through the one [`writer`]: it is the only buffer (bounded), the only place
//! that talks to the store, and the only place that records Kafka progress, after the rows.
//!
//! ```no_run
//! # async fn run(store: vigil_store::Store) {
//! use std::sync::Arc;
//! use vigil_collector::{config::CollectorConfig, metrics::Metrics, writer::spawn_writer};
//! let (writer, task) = spawn_writer(store, &CollectorConfig::default(), Arc::new(Metrics::new()));
//! // hand `writer` to sources; dropping every handle drains the queue and ends `task`.
//! drop(writer);
//! task.await.unwrap();
//! # }
//! ```

pub mod config;
pub mod decode;
pub mod file;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod simulate;
pub mod writer;
