//! `vigil demo`: the whole ingest path on a laptop. Embedded store, HTTP ingest on localhost, a
//! traffic simulator posting to it over real HTTP (two models × two versions, drift injected
//! after a while, a trickle of malformed events), and live counts read back from the store.

use crate::config::VigilConfig;
use crate::serve::{open_store, start_http};
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_collector::metrics::Metrics;
use vigil_collector::simulate::TrafficSimulator;
use vigil_collector::writer::spawn_writer;
use vigil_store::queries;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// How long to run, in seconds (0: until Ctrl-C).
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Address for the HTTP ingest API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Simulated inferences per second.
    #[arg(long, default_value_t = 2000)]
    pub rate: u32,
    /// Seconds before input drift is injected.
    #[arg(long, default_value_t = 20)]
    pub drift_after: u64,
    /// Seconds between live count prints.
    #[arg(long, default_value_t = 5)]
    pub every: u64,
}

pub async fn run(config: VigilConfig, store_override: Option<&str>, args: DemoArgs) -> Result<()> {
    let store = open_store(&config, store_override).await?;
    println!("vigil demo — store: {}", store.describe());
    let metrics = Arc::new(Metrics::new());
    let mut collector = config.collector.clone();
    collector.batch_max_wait_ms = collector.batch_max_wait_ms.min(500);
    let (writer, writer_task) = spawn_writer(store.clone(), &collector, metrics.clone());
    let server = start_http(&config, writer.clone(), &args.bind, Some(store.clone()))?;
    drop(writer);
    // The dashboards read rollups as under `vigil serve`.
    let rollups = crate::rollup_task::spawn(store.clone());
    let base = format!("http://{}", server.addr);
    println!("HTTP ingest on {base}  (try: curl -s {base}/metrics | grep vigil_rows)");
    println!("dashboards on {base}/ui/  (afterwards: `vigil serve --no-kafka` on the same store)");
    println!(
        "simulating {} inferences/s for models churn and fraud (v1, v2); drift injected after {} s\n",
        args.rate, args.drift_after
    );

    let started = Instant::now();
    let since = chrono::Utc::now().timestamp() as u32;
    let run_id = format!("demo{}", chrono::Utc::now().timestamp_millis());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let sim_task = tokio::spawn(simulate(
        client,
        base.clone(),
        run_id,
        args.rate,
        args.drift_after,
        args.duration,
    ));

    let mut ticker = tokio::time::interval(Duration::from_secs(args.every.max(1)));
    ticker.tick().await;
    let stop = crate::serve::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut stop => break,
        }
        print_counts(&store, since, started.elapsed().as_secs(), args.drift_after).await;
        if args.duration > 0 && started.elapsed().as_secs() >= args.duration {
            break;
        }
    }
    sim_task.abort();
    rollups.abort();
    server.stop().await;
    writer_task.await.context("writer task")?;
    println!("\nfinal counts (de-duplicated, read back from the store):");
    print_counts(&store, since, started.elapsed().as_secs(), args.drift_after).await;
    let dead = queries::dead_letter_summary(&store).await?;
    if !dead.is_empty() {
        println!("\ndead letters (rejected input, kept with the reason):");
        for d in dead.iter().take(8) {
            println!(
                "  {:>6}  {:<9} {:<8} {:<22} {}",
                d.count,
                d.kind,
                d.source,
                d.field,
                truncate(&d.example_reason, 70)
            );
        }
    }
    println!(
        "\ndata is in {}; run `vigil status` to see it again",
        store.describe()
    );
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "…"
    }
}

async fn print_counts(store: &vigil_store::Store, since: u32, elapsed: u64, drift_after: u64) {
    let until = chrono::Utc::now().timestamp() as u32 + 3600;
    match (
        queries::counts_by_version(store, since, until).await,
        queries::table_counts(store).await,
    ) {
        (Ok(rows), Ok(totals)) => {
            let phase = if elapsed >= drift_after {
                "DRIFT INJECTED"
            } else {
                "baseline"
            };
            println!(
                "t={elapsed:>4}s [{phase}] inferences={} outcomes={} dead_letters={}",
                totals.inference, totals.outcomes, totals.dead_letters
            );
            for r in rows {
                println!(
                    "    {:<6} {:<3} events={:<8} mean_score={:.3} mean_latency={:.1}ms",
                    r.model, r.version, r.events, r.mean_score, r.mean_latency_ms
                );
            }
        }
        (Err(e), _) | (_, Err(e)) => eprintln!("cannot read counts: {e}"),
    }
}

/// Posts batches of simulated events every 100 ms.
async fn simulate(
    client: reqwest::Client,
    base: String,
    run_id: String,
    rate: u32,
    drift_after: u64,
    duration: u64,
) {
    let mut sim = TrafficSimulator::new(42, &run_id);
    // About 0.5 % of requests time out, so the overview's error counts and health checks
    // have something to show.
    sim.set_failure_every(199);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let per_tick = (rate as usize / 10).max(1);
    let mut n = 0usize;
    let mut tick_no = 0u64;
    let mut hostile_no = 0usize;
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    loop {
        tick.tick().await;
        if duration > 0 && started.elapsed().as_secs() >= duration {
            return;
        }
        if !sim.drifting() && started.elapsed().as_secs() >= drift_after {
            sim.set_drift(true);
        }
        let now = chrono::Utc::now().timestamp_millis();
        let mut events = String::with_capacity(per_tick * 330);
        let mut outcomes = String::new();
        let mut events_bytes: Vec<u8> = Vec::new();
        for _ in 0..per_tick {
            let inf = sim.inference(now);
            events.push_str(&inf.json);
            events.push('\n');
            // One outcome per four inferences, for both models (the simulator alternates
            // models, so `n % 4 == 0` would only ever pick one of them).
            if matches!(n % 8, 0 | 5) {
                outcomes.push_str(&sim.outcome(&inf, now));
                outcomes.push('\n');
            }
            n += 1;
        }
        // A few malformed events, as real producers send: they land in dead_letters. Sent in a
        // request of their own: some (invalid UTF-8, …) make the whole body a dead letter, which
        // would take the good events of the same request with them.
        let mut hostile = Vec::new();
        if tick_no % 10 == 5 {
            let bad = sim.hostile(hostile_no, now);
            hostile_no += 1;
            if bad.len() < 4096 && !bad.contains(&b'\n') {
                hostile.extend_from_slice(&bad);
                hostile.push(b'\n');
            }
        }
        tick_no += 1;
        events_bytes.extend_from_slice(events.as_bytes());
        let events = std::mem::take(&mut events_bytes);
        let outcomes = outcomes.into_bytes();
        // Requests are answered once durable (up to one batch interval): send them concurrently
        // so the simulated rate does not depend on the store's flush interval.
        for (path, body, rejection_expected) in [
            ("/v1/events", hostile, true),
            ("/v1/events", events, false),
            ("/v1/outcomes", outcomes, false),
        ] {
            if body.is_empty() {
                continue;
            }
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let req = client
                .post(format!("{base}{path}"))
                .header("content-type", "application/x-ndjson")
                .body(body);
            tokio::spawn(async move {
                match req.send().await {
                    Ok(r) if r.status().is_success() || r.status().as_u16() == 207 => {}
                    Ok(r) if rejection_expected && r.status().is_client_error() => {}
                    Ok(r) => eprintln!("ingest answered {}", r.status()),
                    Err(e) => eprintln!("ingest request failed: {e}"),
                }
                drop(permit);
            });
        }
    }
}
