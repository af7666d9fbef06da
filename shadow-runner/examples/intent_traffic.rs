//! Writes simulated traffic of the `intent` model as NDJSON for `vigil ingest`: requests from
//! `vigil_shadow_runner::traffic` with production's real answers (all-MiniLM-L6-v2 +
//! LogisticRegression head, computed here, so "logged outputs" are production's), and a
//! ground-truth outcome (`label:<intent>`) for a share of them. Needs `bash scripts/models/fetch.sh`.
//!
//!     cargo run --release -p vigil-shadow-runner --example intent_traffic -- \
//!         N OUT_DIR [START_UNIX_SECS] [SPAN_SECS] [LABELLED_SHARE]
//!
//! Writes OUT_DIR/inference.ndjson and OUT_DIR/outcomes.ndjson; events are spread evenly over
//! `[START, START + SPAN)` (default: the last 24 hours).

use std::io::Write;

use vigil_shadow_runner::traffic::{inference_json, truth_json, IntentTraffic};
use vigil_shadow_runner::{default_models_dir, Device, LoadedModel, ModelSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args
        .first()
        .ok_or("usage: intent_traffic N OUT_DIR [START] [SPAN] [LABELLED_SHARE]")?
        .parse()?;
    let out = std::path::PathBuf::from(args.get(1).ok_or("OUT_DIR missing")?);
    let now = chrono::Utc::now().timestamp();
    let span: i64 = args
        .get(3)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(86_400);
    let start: i64 = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(now - span);
    let share: f64 = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(0.3);
    std::fs::create_dir_all(&out)?;
    let spec = ModelSpec::from_toml(
        r#"name = "intent"
version = "l6+logreg"
role = "production"
path = "all-MiniLM-L6-v2"
head = { path = "intent-heads/logistic_regression.safetensors", labels = "intent-heads/labels.json", kind = "softmax" }
"#,
    )?
    .resolve_paths(&default_models_dir());
    let production = LoadedModel::load(&spec, &Device::Cpu)?;
    let mut traffic = IntentTraffic::new(42);
    let mut inf = std::io::BufWriter::new(std::fs::File::create(out.join("inference.ndjson"))?);
    let mut outc = std::io::BufWriter::new(std::fs::File::create(out.join("outcomes.ndjson"))?);
    let started = std::time::Instant::now();
    let mut labelled = 0usize;
    for chunk_start in (0..n).step_by(256) {
        let len = 256.min(n - chunk_start);
        let reqs: Vec<_> = (0..len).map(|_| traffic.next_request()).collect();
        let texts: Vec<&str> = reqs.iter().map(|r| r.text.as_str()).collect();
        let outputs = production.run(&texts)?;
        let preds = outputs.predictions.ok_or("production has no head")?;
        for (k, (req, pred)) in reqs.iter().zip(&preds).enumerate() {
            let i = chunk_start + k;
            let ts_ms = start * 1000 + (i as i64 * span * 1000) / n.max(1) as i64;
            let id = format!("intent-{i:06}");
            let unit = format!("user-{}", i % 997);
            writeln!(
                inf,
                "{}",
                inference_json(
                    &id,
                    ts_ms,
                    "intent",
                    "l6+logreg",
                    &unit,
                    req,
                    (&pred.label, pred.score),
                    8.0 + (i % 7) as f64
                )
            )?;
            // A deterministic share gets a ground-truth label.
            if ((i as u64).wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0 < share {
                writeln!(
                    outc,
                    "{}",
                    truth_json(&id, ts_ms + 60_000, "intent", &unit, req.intent)
                )?;
                labelled += 1;
            }
        }
        eprint!("\r{} / {n} events", chunk_start + len);
    }
    inf.flush()?;
    outc.flush()?;
    eprintln!(
        "\nwrote {n} inference events and {labelled} ground-truth outcomes to {} in {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
