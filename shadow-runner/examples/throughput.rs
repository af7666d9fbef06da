//! Encoder throughput (sentences/s) at batch 1, 32 and 128 on the CPU (or CUDA with `--features
//! cuda`), on the same 256 sentences as `scripts/models/bench_st.py` (sentence-transformers).
//! Needs `bash scripts/models/fetch.sh`. Results go to docs/benchmarks.md by hand.
//!
//!     cargo run -p vigil-shadow-runner --example throughput -- [MODEL_DIR_NAME] [ROUNDS]

use std::time::Instant;

use vigil_shadow_runner::{
    default_models_dir, device_name, select_device, DevicePreference, SentenceEncoder,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The device choice logs why it fell back to the CPU (`RUST_LOG=info`, the default here).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .unwrap_or_else(|| "all-MiniLM-L6-v2".to_string());
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(3);
    let queries_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/queries.txt");
    let queries: Vec<String> = std::fs::read_to_string(queries_path)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    // 256 sentences, cycling through the captured-traffic stand-in.
    let texts: Vec<&str> = queries
        .iter()
        .cycle()
        .take(256)
        .map(String::as_str)
        .collect();
    let device = select_device(DevicePreference::Auto)?;
    let dir = default_models_dir().join(&model);
    println!(
        "model {model}, device {}, {} sentences, best of {rounds}",
        device_name(&device),
        texts.len()
    );
    for batch in [1usize, 32, 128] {
        let encoder = SentenceEncoder::load(&dir, &device)?.with_batch_size(batch);
        encoder.encode(&texts[..batch.min(texts.len())])?; // warm-up
        let mut best = f64::INFINITY;
        for _ in 0..rounds {
            let start = Instant::now();
            let out = encoder.encode(&texts)?;
            best = best.min(start.elapsed().as_secs_f64());
            assert_eq!(out.len(), texts.len());
        }
        println!(
            "batch {batch:>3}: {:8.1} sentences/s",
            texts.len() as f64 / best
        );
    }
    Ok(())
}
