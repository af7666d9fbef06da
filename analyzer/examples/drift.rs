//! `cargo run --release -p vigil-analyzer --example drift -- --reference REF.csv --current CUR.csv`
//! Runs the same code as `vigil drift` (used by scripts/golden/analyzer/bench_drift.sh).

use clap::Parser;
use vigil_analyzer::cli::{run_drift, DriftArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    drift: DriftArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    print!("{}", run_drift(&cli.drift)?);
    Ok(())
}
