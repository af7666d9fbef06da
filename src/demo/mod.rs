//! `vigil demo`: every user's story on one machine, in one process, on the embedded store.
//!
//! The demo starts what a deployment has around vigil — model backends (v1, v2 and a shadow
//! candidate per model), an SMTP relay and a webhook receiver, all on loopback — writes a
//! complete `vigil.toml` for them (gateway, experiments, monitors, alert routes and rules,
//! value model, retraining trigger), and runs vigil on it exactly as `vigil serve` does. Its
//! users' requests go through the gateway, outcomes follow over HTTP ingest, drift is injected
//! after a while, and the demo prints each milestone as the product reaches it: the first
//! alert, its e-mail, each experiment's decision, the shadow answers, the retraining request.

mod backends;
mod milestones;
mod models;
mod setup;
mod smtp;
mod traffic;

use crate::config::VigilConfig;
use crate::serve::{open_store, start_http_on};
use anyhow::{Context, Result};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_collector::metrics::Metrics;
use vigil_collector::writer::spawn_writer;
use vigil_store::StoreUrl;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// How long to send traffic, in seconds (0: until Ctrl-C).
    #[arg(long, default_value_t = 90)]
    pub duration: u64,
    /// Address of the gateway, HTTP ingest and dashboards (port 0: any free port, printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Prediction requests per second (both models together).
    #[arg(long, default_value_t = 400)]
    pub rate: u32,
    /// Seconds before input drift is injected.
    #[arg(long, default_value_t = 20)]
    pub drift_after: u64,
    /// Seconds between status lines.
    #[arg(long, default_value_t = 5)]
    pub every: u64,
    /// After the traffic ends, keep the gateway and pages up until Ctrl-C (promote, roll back,
    /// acknowledge alerts on the finished run).
    #[arg(long)]
    pub keep_serving: bool,
    /// Also replay captured text traffic against the shadow runner's models (installed by
    /// `bash scripts/models/fetch.sh`).
    #[arg(long)]
    pub with_models: bool,
}

/// The embedded store's database a demo run writes to (emptied at the start of each run).
pub const DEMO_DATABASE: &str = "vigil_demo";

pub async fn run(config: VigilConfig, store_override: Option<&str>, args: DemoArgs) -> Result<()> {
    let url = config.store_url(store_override)?;
    // On the embedded store each run starts from an empty database of its own (`vigil_demo`,
    // emptied here), so a second run does not open alerts and decide experiments at t = 5 s
    // from the first run's data; the store's own database is never touched. A database named
    // with `?database=`, and a server, are used as given.
    let (store_url, data_dir, fresh) = match &url {
        StoreUrl::Embedded { path, database } => {
            let fresh = database == vigil_store::DEFAULT_DATABASE;
            let db = if fresh { DEMO_DATABASE } else { database };
            let s = format!("chdb://{}?database={db}", path.display());
            (s, path.clone(), fresh)
        }
        StoreUrl::Server { .. } => (
            store_override.unwrap_or(&config.store.url).to_string(),
            std::env::current_dir()?.join("vigil-demo"),
            false,
        ),
    };
    if fresh {
        let store = vigil_store::Store::open(&store_url).await?;
        store
            .execute(&format!("DROP DATABASE IF EXISTS `{DEMO_DATABASE}`"))
            .await
            .context("emptying the demo's database")?;
    }
    let demo_dir = data_dir.join("demo");
    std::fs::create_dir_all(&demo_dir)
        .with_context(|| format!("cannot create {}", demo_dir.display()))?;
    let mailbox = demo_dir.join("mailbox");
    let hooks_file = demo_dir.join("webhooks.jsonl");

    // What runs around vigil in production, here on loopback.
    let smtp = smtp::SmtpSink::start(&mailbox)
        .await
        .context("starting the demo's SMTP sink")?;
    let backends = backends::Backends::start(hooks_file.clone())?;

    // A server's schema first: on a cluster the migrations take seconds (`ON CLUSTER` DDL, ~20 s
    // for a new database), which must not eat the drift monitors' reference period below.
    if matches!(url, StoreUrl::Server { .. }) {
        open_store(&config, store_override).await?;
    }
    // Bound before the configuration is written so that `--bind 127.0.0.1:0` works: the links
    // the demo writes (alert e-mails' dashboard URL) name the port it really serves on.
    let listener = std::net::TcpListener::bind(&args.bind)
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let bound = listener.local_addr()?.to_string();
    let started_at = chrono::Utc::now().timestamp();
    let plan = setup::DemoPlan {
        backends: backends.addr,
        smtp: smtp.addr,
        store_url,
        store_cluster: match &url {
            StoreUrl::Server { .. } => config.store.cluster.clone(),
            StoreUrl::Embedded { .. } => None,
        },
        bind: bound.clone(),
        started: started_at,
        drift_at: started_at + args.drift_after as i64,
    };
    let config_path = demo_dir.join("vigil.toml");
    let with_models = args.with_models && models::installed();
    let mut toml = setup::demo_toml(&plan);
    if with_models {
        toml.push_str(models::SHADOW_MODELS);
    }
    std::fs::write(&config_path, toml)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let mut demo_config = VigilConfig::load(Some(&config_path))
        .with_context(|| format!("the demo's configuration {}", config_path.display()))?;
    // The user's own store, collector and auth settings still apply.
    if demo_config.store.cluster.is_some() {
        demo_config.store.insert_quorum = config.store.insert_quorum;
        demo_config.store.insert_quorum_timeout_ms = config.store.insert_quorum_timeout_ms;
    }
    demo_config.collector = config.collector.clone();
    demo_config.collector.batch_max_wait_ms = demo_config.collector.batch_max_wait_ms.min(500);
    demo_config.auth = config.auth.clone();
    demo_config.http.workers = config.http.workers;

    let store = open_store(&demo_config, None).await?;
    let metrics = Arc::new(Metrics::new());
    let (writer, writer_task) = spawn_writer(store.clone(), &demo_config.collector, metrics);
    let server = start_http_on(&demo_config, writer.clone(), listener, Some(store.clone()))?;
    drop(writer);
    let base = format!("http://{}", server.addr);
    let monitors = crate::monitor_task::spawn(
        store.clone(),
        demo_config.monitors.clone(),
        demo_config.alert_context(),
        Some(crate::monitor_task::Retraining::from_config(&demo_config)),
    );
    let delivery =
        vigil_analyzer::alerting::spawn_delivery(store.clone(), demo_config.alert_context());
    let rollups = crate::rollup_task::spawn(store.clone());

    print_tour(
        &base,
        &store.describe(),
        &config_path,
        &mailbox,
        &hooks_file,
        &args,
    );
    let replay = with_models.then(|| {
        let (store, shadow, base) = (store.clone(), demo_config.shadow.clone(), base.clone());
        // The replay's future holds a progress callback that is not `Send`: it runs on a
        // blocking thread of its own, driven by the runtime's handle.
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            match rt.block_on(models::replay(store, shadow, base)) {
                Ok(table) => println!("  >> model replay (intent: production l6+logreg vs candidates)  → /ui/shadow\n{table}"),
                Err(e) => eprintln!("  >> model replay failed: {e:#}"),
            }
        })
    });

    // The assistant's offline shadow run, once its traffic has built up: its captured prompts
    // against the v3 fine-tune, compared with the served answers (needs the sentence encoder).
    let llm_replay = if models::llm_encoder_installed(&demo_config.shadow) {
        let (store, shadow) = (store.clone(), demo_config.shadow.clone());
        let delay = Duration::from_secs(args.drift_after + 10);
        let rt = tokio::runtime::Handle::current();
        Some(tokio::task::spawn_blocking(move || {
            std::thread::sleep(delay);
            match rt.block_on(models::llm_replay(store, shadow)) {
                Ok(table) => println!("  >> LLM shadow run (assistant: served v1/v2 vs fine-tune v3, {} prompts)  → /ui/shadow, /ui/llm\n{table}", models::LLM_REQUESTS),
                Err(e) => eprintln!("  >> LLM shadow run failed: {e:#}"),
            }
        }))
    } else {
        println!(
            "  (no LLM shadow run: its sentence encoder is not installed at {}; run `bash scripts/models/fetch.sh`)",
            demo_config.shadow.llm_encoder_dir().display()
        );
        None
    };

    let stats = Arc::new(traffic::TrafficStats::default());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()?;
    let started = Instant::now();
    let mut traffic_task = tokio::spawn(traffic::run(
        client,
        traffic::TrafficPlan {
            base: base.clone(),
            run_id: format!("demo{}", chrono::Utc::now().timestamp_millis()),
            rate: args.rate,
            drift_after: args.drift_after,
            duration: args.duration,
        },
        stats.clone(),
    ));
    let mut watch = milestones::Milestones::new(
        store.clone(),
        demo_config.experiments.clone(),
        mailbox.clone(),
        hooks_file.clone(),
        args.drift_after,
    );

    let mut ticker = tokio::time::interval(Duration::from_secs(args.every.max(1)));
    ticker.tick().await;
    let stop = crate::serve::shutdown_signal();
    tokio::pin!(stop);
    let mut interrupted = false;
    let mut traffic_done = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut traffic_task, if !traffic_done => { traffic_done = true; }
            _ = &mut stop => { interrupted = true; break; }
        }
        if traffic_done {
            break;
        }
        let t = started.elapsed().as_secs();
        status_line(t, &args, &stats);
        watch.check(t).await;
    }
    if !traffic_done {
        traffic_task.abort();
    }
    for (what, r) in [("model replay", replay), ("LLM shadow run", llm_replay)] {
        let Some(mut r) = r else { continue };
        if !interrupted && !r.is_finished() {
            println!("waiting for the {what} to finish…");
            // Milestones keep printing at their own time meanwhile.
            loop {
                tokio::select! {
                    _ = &mut r => break,
                    _ = ticker.tick() => watch.check(started.elapsed().as_secs()).await,
                    _ = &mut stop => { interrupted = true; break; }
                }
            }
        }
    }
    // Let the last rows and verdicts land, then say where everything is.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = started.elapsed().as_secs();
    status_line(t, &args, &stats);
    watch.final_check(t).await;
    watch.summary();
    if args.keep_serving && !interrupted {
        println!(
            "\ntraffic finished; the gateway and the pages stay up on {base}/ui/ until Ctrl-C"
        );
        crate::serve::shutdown_signal().await;
    }
    for task in [monitors, delivery].into_iter().flatten() {
        task.abort();
    }
    rollups.abort();
    server.stop().await;
    writer_task.await.context("writer task")?;
    backends.stop().await;
    smtp.stop();
    println!(
        "\nstopped. The data stays in {}; see the pages again with\n  vigil --config {} serve --no-kafka",
        store.describe(),
        config_path.display()
    );
    Ok(())
}

fn print_tour(
    base: &str,
    store: &str,
    config: &std::path::Path,
    mailbox: &std::path::Path,
    hooks: &std::path::Path,
    args: &DemoArgs,
) {
    let d = args.drift_after;
    let w = setup::WINDOW_SECS as u64;
    println!("vigil demo — store: {store}");
    println!(
        "configuration: {}  (gateway, experiments, monitors, alerts, ROI; read it)",
        config.display()
    );
    println!(
        "\n{} requests/s from simulated users go through the gateway on {base}/v1/predict/{{churn,fraud}}",
        args.rate
    );
    println!("to model backends v1 and v2 (A/B tests churn-v2 and fraud-v2; 25 % of churn copied to shadow candidate v3).");
    println!(
        "A tenth as many chat requests go to the support assistant, an LLM, on {base}/v1/chat/completions"
    );
    println!("(OpenAI-compatible, mostly streamed; A/B test assistant-v2; a fifth copied to shadow fine-tune v3).");
    println!("Outcomes follow over HTTP ingest; churn v2 really keeps more customers, fraud v2 is no better,");
    println!("users like assistant v2's answers more (42 % vs 30 % thumbs up).\n");
    println!("What happens when:");
    println!("  t = 0 s        traffic starts; the first {d} s are the drift monitors' reference");
    println!("  t ≈ 15–30 s    churn-v2 reaches its minimum sample (1,000 units per arm): expect `ship`; fraud-v2 stays `keep_running`");
    println!(
        "  t ≈ 20–40 s    assistant-v2 (300 users per arm) finds the liked answers: expect `ship`"
    );
    println!("  t = {d} s       input drift is injected (churn: spend, plan, tickets; fraud: amount, distance)");
    println!(
        "  t ≈ {}–{} s    one drift incident per model (2 of 3 drifted {w}-s windows), e-mailed and posted to the webhook; churn drift files a retraining request",
        d + 2 * w,
        d + 3 * w + 5
    );
    println!("\nPages ({base}/ui/…):");
    println!("  /ui/            overview: versions in production, traffic, open incidents, running experiments");
    println!("  /ui/roi         ROI per model version in EUR, with 95 % intervals");
    println!("  /ui/drift       drift heat map per monitor window, distributions, data quality");
    println!("  /ui/fairness    selection rates per region");
    println!("  /ui/experiments A/B results, decision, promote / roll back");
    println!("  /ui/llm         the assistant per version: time to first token, tokens/s, cost, errors, feedback");
    println!("  /ui/alerts      incidents and their notifications");
    println!("  /ui/shadow      mirrored shadow answers, retraining requests");
    println!(
        "E-mails: {}   webhooks: {}",
        mailbox.display(),
        hooks.display()
    );
    if args.with_models && models::installed() {
        println!("Model replay: on (text model `intent`: its captured requests replayed against two candidate models)");
    } else if args.with_models {
        println!(
            "Model replay: the shadow runner's models are not installed; run `bash scripts/models/fetch.sh` first"
        );
    } else {
        println!(
            "Model replay: off (install the models with `bash scripts/models/fetch.sh`, then `vigil demo --with-models`)"
        );
    }
    if args.duration > 0 {
        println!(
            "\nRunning for {} s (Ctrl-C stops earlier).\n",
            args.duration
        );
    } else {
        println!("\nRunning until Ctrl-C.\n");
    }
}

fn status_line(t: u64, args: &DemoArgs, s: &traffic::TrafficStats) {
    let phase = if t >= args.drift_after {
        "drifting"
    } else {
        "baseline"
    };
    println!(
        "t={t:>4}s [{phase}] requests={} answered={} failed={} outcomes={}",
        s.requests.load(Relaxed),
        s.answered.load(Relaxed),
        s.failed.load(Relaxed),
        s.outcomes.load(Relaxed),
    );
}
