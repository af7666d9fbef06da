//! Microbenchmark of the per-event CPU cost on the ingest path: JSON validation into rows, and
//! RowBinary encoding. `cargo run --release -p vigil-collector --example parse_speed`
use std::time::Instant;
use vigil_collector::decode::decode_into;
use vigil_collector::simulate::TrafficSimulator;
use vigil_store::event::{EventKind, EventTime, Limits};
use vigil_store::rows::{RowBatch, SourceCoord};
fn main() {
    let now = chrono::Utc::now().timestamp_millis();
    let mut sim = TrafficSimulator::new(1, "x");
    let events: Vec<String> = (0..500_000).map(|_| sim.inference(now).json).collect();
    let limits = Limits::default();
    let coord = SourceCoord {
        source: "kafka:t".into(),
        partition: 0,
        offset: 0,
    };
    let t = Instant::now();
    let mut batch = RowBatch::default();
    for e in &events {
        let _ = decode_into(
            &mut batch,
            EventKind::Inference,
            e.as_bytes(),
            &coord,
            &limits,
            EventTime::now(),
        );
    }
    let parse = t.elapsed();
    let t = Instant::now();
    let mut buf = Vec::new();
    for r in &batch.inference {
        vigil_store::rowbinary::encode(r, &mut buf).unwrap();
    }
    println!(
        "decode {:.0}/s, encode {:.0}/s ({} bytes/row)",
        500_000.0 / parse.as_secs_f64(),
        500_000.0 / t.elapsed().as_secs_f64(),
        buf.len() / 500_000
    );
}
