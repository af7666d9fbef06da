//! Prometheus metrics for ingest, rendered as text at `/metrics`.
//!
//! A handful of fixed series does not justify a metrics framework: counters are atomics, labelled
//! series live in small maps, and `render` writes the exposition format directly.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};

/// Upper bounds (seconds) of the insert latency histogram.
const INSERT_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
pub struct Metrics {
    /// (source, kind) → events received.
    received: Mutex<BTreeMap<(String, String), u64>>,
    /// (source, kind) → events rejected (written to dead letters).
    rejected: Mutex<BTreeMap<(String, String), u64>>,
    /// table → rows written.
    written: Mutex<BTreeMap<String, u64>>,
    pub batches: AtomicU64,
    /// Rows in all written batches (`vigil_batch_rows_total`).
    pub batch_rows: AtomicU64,
    pub batch_rows_max: AtomicU64,
    pub insert_errors: AtomicU64,
    insert_seconds_buckets: [AtomicU64; INSERT_BUCKETS.len()],
    insert_seconds_count: AtomicU64,
    insert_micros_sum: AtomicU64,
    pub http_throttled: AtomicU64,
    pub http_unavailable: AtomicU64,
    /// (topic, partition) → consumer lag in messages, from librdkafka statistics.
    lag: Mutex<BTreeMap<(String, i32), i64>>,
    /// 1 while the store is accepting writes, 0 while inserts are failing.
    pub store_up: AtomicU64,
    /// The store written to, for its nodes (set by the writer).
    store: OnceLock<vigil_store::Store>,
}

fn bump(map: &Mutex<BTreeMap<(String, String), u64>>, source: &str, kind: &str, n: u64) {
    if n == 0 {
        return;
    }
    if let Ok(mut m) = map.lock() {
        *m.entry((source.to_string(), kind.to_string())).or_default() += n;
    }
}

impl Metrics {
    pub fn new() -> Self {
        let m = Metrics::default();
        m.store_up.store(1, Relaxed);
        m
    }
    /// The store whose nodes `/metrics` reports (a ClickHouse server store only).
    pub fn set_store(&self, store: vigil_store::Store) {
        let _ = self.store.set(store);
    }
    pub fn received(&self, source: &str, kind: &str, n: u64) {
        bump(&self.received, source, kind, n)
    }
    pub fn rejected(&self, source: &str, kind: &str, n: u64) {
        bump(&self.rejected, source, kind, n)
    }
    pub fn written(&self, table: &str, n: u64) {
        if let Ok(mut m) = self.written.lock() {
            *m.entry(table.to_string()).or_default() += n;
        }
    }
    pub fn received_total(&self) -> u64 {
        self.received.lock().map(|m| m.values().sum()).unwrap_or(0)
    }
    pub fn written_total(&self) -> u64 {
        self.written.lock().map(|m| m.values().sum()).unwrap_or(0)
    }
    pub fn batch(&self, rows: u64, seconds: f64) {
        self.batches.fetch_add(1, Relaxed);
        self.batch_rows.fetch_add(rows, Relaxed);
        self.batch_rows_max.fetch_max(rows, Relaxed);
        for (i, b) in INSERT_BUCKETS.iter().enumerate() {
            if seconds <= *b {
                self.insert_seconds_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.insert_seconds_count.fetch_add(1, Relaxed);
        self.insert_micros_sum
            .fetch_add((seconds * 1e6) as u64, Relaxed);
    }
    /// Seconds spent writing batches so far.
    pub fn insert_seconds_total(&self) -> f64 {
        self.insert_micros_sum.load(Relaxed) as f64 / 1e6
    }
    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        if let Ok(mut m) = self.lag.lock() {
            m.insert((topic.to_string(), partition), lag);
        }
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let labelled = |out: &mut String,
                        name: &str,
                        help: &str,
                        map: &Mutex<BTreeMap<(String, String), u64>>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            if let Ok(m) = map.lock() {
                for ((source, kind), v) in m.iter() {
                    let _ = writeln!(
                        out,
                        "{name}{{source=\"{}\",kind=\"{}\"}} {v}",
                        esc(source),
                        esc(kind)
                    );
                }
            }
        };
        labelled(
            &mut out,
            "vigil_events_received_total",
            "Events received, by source and kind.",
            &self.received,
        );
        labelled(
            &mut out,
            "vigil_events_rejected_total",
            "Events rejected into dead_letters, by source and kind.",
            &self.rejected,
        );
        let _ = writeln!(out, "# HELP vigil_rows_written_total Rows written to the store, by table.\n# TYPE vigil_rows_written_total counter");
        if let Ok(m) = self.written.lock() {
            for (t, v) in m.iter() {
                let _ = writeln!(out, "vigil_rows_written_total{{table=\"{}\"}} {v}", esc(t));
            }
        }
        let simple = |out: &mut String, name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        simple(
            &mut out,
            "vigil_batches_total",
            "counter",
            "Batches written to the store.",
            self.batches.load(Relaxed),
        );
        simple(
            &mut out,
            "vigil_batch_rows_total",
            "counter",
            "Rows in all written batches (divide by vigil_batches_total for the mean size).",
            self.batch_rows.load(Relaxed),
        );
        simple(
            &mut out,
            "vigil_batch_rows_max",
            "gauge",
            "Largest batch written, in rows.",
            self.batch_rows_max.load(Relaxed),
        );
        simple(
            &mut out,
            "vigil_insert_errors_total",
            "counter",
            "Failed insert attempts (each is retried).",
            self.insert_errors.load(Relaxed),
        );
        simple(
            &mut out,
            "vigil_http_throttled_total",
            "counter",
            "HTTP ingest requests answered 429 (queue full).",
            self.http_throttled.load(Relaxed),
        );
        simple(
            &mut out,
            "vigil_http_unavailable_total",
            "counter",
            "HTTP ingest requests answered 503 (store down).",
            self.http_unavailable.load(Relaxed),
        );
        simple(
            &mut out,
            "vigil_store_up",
            "gauge",
            "1 while store writes succeed, 0 while they are being retried.",
            self.store_up.load(Relaxed),
        );
        let _ = writeln!(out, "# HELP vigil_insert_seconds Time to write one batch (all tables).\n# TYPE vigil_insert_seconds histogram");
        for (i, b) in INSERT_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "vigil_insert_seconds_bucket{{le=\"{b}\"}} {}",
                self.insert_seconds_buckets[i].load(Relaxed)
            );
        }
        let count = self.insert_seconds_count.load(Relaxed);
        let _ = writeln!(out, "vigil_insert_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "vigil_insert_seconds_sum {}",
            self.insert_micros_sum.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "vigil_insert_seconds_count {count}");
        let _ = writeln!(out, "# HELP vigil_consumer_lag Messages behind the partition's high watermark.\n# TYPE vigil_consumer_lag gauge");
        if let Ok(m) = self.lag.lock() {
            for ((t, p), v) in m.iter() {
                let _ = writeln!(
                    out,
                    "vigil_consumer_lag{{topic=\"{}\",partition=\"{p}\"}} {v}",
                    esc(t)
                );
            }
        }
        if let Some(nodes) = self.store.get().and_then(|s| s.nodes()) {
            render_nodes(&mut out, &nodes);
        }
        out
    }
}

/// Which ClickHouse node of the store URL is in use (1) and which are not (0), and failovers.
fn render_nodes(out: &mut String, nodes: &vigil_store::StoreNodes) {
    let _ = writeln!(out, "# HELP vigil_store_node_in_use 1 for the ClickHouse node of the store URL that requests go to, 0 for the others.\n# TYPE vigil_store_node_in_use gauge");
    for e in &nodes.endpoints {
        let _ = writeln!(
            out,
            "vigil_store_node_in_use{{node=\"{}\"}} {}",
            esc(e),
            u8::from(*e == nodes.in_use)
        );
    }
    let _ = writeln!(out, "# HELP vigil_store_failovers_total Times store requests moved to the next node of the store URL because the one in use could not be reached.\n# TYPE vigil_store_failovers_total counter\nvigil_store_failovers_total {}", nodes.failovers);
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_prometheus_text() {
        let m = super::Metrics::new();
        m.received("http", "inference", 5);
        m.rejected("http", "inference", 1);
        m.written("inference_events", 4);
        m.batch(4, 0.02);
        m.set_lag("t", 0, 7);
        let text = m.render();
        assert!(text.contains("vigil_events_received_total{source=\"http\",kind=\"inference\"} 5"));
        assert!(text.contains("vigil_rows_written_total{table=\"inference_events\"} 4"));
        assert!(text.contains("vigil_insert_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("vigil_insert_seconds_bucket{le=\"0.01\"} 0"));
        assert!(text.contains("vigil_consumer_lag{topic=\"t\",partition=\"0\"} 7"));
        assert!(text.contains("vigil_batch_rows_total 4"));
        let mut out = String::new();
        super::render_nodes(
            &mut out,
            &vigil_store::StoreNodes {
                endpoints: vec!["http://a:8123".into(), "http://b:8123".into()],
                in_use: "http://b:8123".into(),
                failovers: 1,
            },
        );
        assert!(out.contains("vigil_store_node_in_use{node=\"http://a:8123\"} 0\n"));
        assert!(out.contains("vigil_store_node_in_use{node=\"http://b:8123\"} 1\n"));
        assert!(out.contains("vigil_store_failovers_total 1\n"));
    }
}
