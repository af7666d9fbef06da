//! The dashboards' rollup compactor (`vigil_store::rollup`): `vigil serve` runs a pass every
//! [`EVERY`], and `vigil rollup` runs one on demand (after `vigil bench ingest`, in tests, or
//! with `--full` after a store outage longer than the overlap).

use std::time::Duration;
use vigil_store::rollup::{self, CompactOptions};
use vigil_store::Store;

/// Between passes. Pages read the raw table after the watermark, so this bounds how much raw
/// data a page scans (about `EVERY + lag + 1 min`), not how fresh the numbers are.
pub const EVERY: Duration = Duration::from_secs(30);

fn now_secs() -> u32 {
    chrono::Utc::now().timestamp().clamp(0, u32::MAX as i64) as u32
}

/// `vigil rollup` options.
#[derive(clap::Args, Debug)]
pub struct RollupArgs {
    /// Recompute every closed minute, not only the ones with rows ingested since the last pass.
    #[arg(long)]
    pub full: bool,
    /// A minute is compacted once it ended this many seconds ago.
    #[arg(long, default_value_t = CompactOptions::default().lag_secs)]
    pub lag_secs: u32,
}

/// One pass; prints what it did.
pub async fn run_once(store: &Store, args: &RollupArgs) -> anyhow::Result<()> {
    let opts = CompactOptions {
        full: args.full,
        lag_secs: args.lag_secs,
        ..CompactOptions::default()
    };
    let started = std::time::Instant::now();
    let report = rollup::compact(store, &opts, now_secs()).await?;
    println!(
        "rollup: {} minute(s) recomputed in {} statement range(s), unit hours {} recomputed and {} extended, unit days {} recomputed and {} extended, {:.1} s; compacted until {}",
        report.dirty_minutes,
        report.chunks,
        report.unit_hours_recomputed,
        report.unit_hours_extended,
        report.unit_days_recomputed,
        report.unit_days_extended,
        started.elapsed().as_secs_f64(),
        chrono::DateTime::from_timestamp(i64::from(report.compacted_until), 0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| report.compacted_until.to_string())
    );
    Ok(())
}

/// Minutes per compactor statement on the embedded store (60 on a server).
const EMBEDDED_CHUNK_MINUTES: u32 = 5;

/// Starts the periodic compactor. Errors are logged and retried on the next tick: a store
/// outage only lets the raw tail grow (pages stay correct, just slower).
pub fn spawn(store: Store) -> tokio::task::JoinHandle<()> {
    tracing::info!(every_secs = EVERY.as_secs(), "dashboard rollups scheduled");
    // On the embedded store the compactor shares one connection with the pages: its statements
    // yield to readers, and are cut to a few minutes of events each so that a page that arrives
    // while one runs waits less (issue #17).
    let store = store.background();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let opts = CompactOptions {
            chunk_minutes: if store.is_embedded() {
                EMBEDDED_CHUNK_MINUTES
            } else {
                CompactOptions::default().chunk_minutes
            },
            ..CompactOptions::default()
        };
        loop {
            interval.tick().await;
            let started = std::time::Instant::now();
            match rollup::compact(&store, &opts, now_secs()).await {
                Ok(r) if r.dirty_minutes > 0 => tracing::info!(
                    minutes = r.dirty_minutes,
                    unit_hours_recomputed = r.unit_hours_recomputed,
                    unit_hours_extended = r.unit_hours_extended,
                    unit_days_recomputed = r.unit_days_recomputed,
                    unit_days_extended = r.unit_days_extended,
                    compacted_until = r.compacted_until,
                    ms = started.elapsed().as_millis() as u64,
                    "rollup pass done"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "rollup pass failed; retrying next tick"),
            }
        }
    })
}
