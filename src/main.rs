//! `vigil`: one binary for monitoring and A/B testing ML models in production.
//!
//! Thin glue: parses the command line, loads `vigil.toml`, and calls into the crates.
//! Exit codes: 0 success, 1 failure, 2 usage error.

mod bench;
mod bench_llm;
mod bench_pages;
mod config;
mod demo;
mod kpi;
mod monitor_task;
mod rollup_task;
mod serve;
mod ui;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use config::VigilConfig;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::Arc;

// Ingest allocates many small strings on one thread and frees them on another; glibc's malloc
// spent a third of the Kafka pipeline's CPU on that (perf, docs/benchmarks.md). mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "vigil",
    version,
    about = "Continuous monitoring and A/B experimentation for ML models in production"
)]
struct Cli {
    /// Configuration file (default: ./vigil.toml when present). Keys can be overridden with
    /// VIGIL_<SECTION>__<KEY> environment variables.
    #[arg(long, global = true, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
    /// Store URL, overriding the config: clickhouse://host:port/db or chdb:///path.
    #[arg(long, global = true, env = "VIGIL_STORE")]
    store: Option<String>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Table,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole ingest path on the embedded store with simulated traffic.
    Demo(demo::DemoArgs),
    /// Run the collector: HTTP ingest and (when configured) the Kafka source.
    Serve {
        /// Do not start HTTP ingest.
        #[arg(long)]
        no_http: bool,
        /// Do not start the Kafka source even if brokers are configured.
        #[arg(long)]
        no_kafka: bool,
    },
    /// Create or upgrade the store's schema.
    Migrate,
    /// Compact the dashboards' rollups once (per minute and per unit-hour; `vigil serve` and `vigil demo` do it every 30 s).
    Rollup(rollup_task::RollupArgs),
    /// Ingest an NDJSON file (one event per line).
    Ingest {
        /// The file to read.
        #[arg(long)]
        file: PathBuf,
        /// Which kind of event the file holds.
        #[arg(long, default_value = "inference")]
        kind: vigil_store::event::EventKind,
    },
    /// Show what the store holds.
    Status {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Run one SQL statement against the store and print the result (`USE`-free: name tables
    /// as `vigil.inference_events`).
    Sql {
        /// The statement.
        query: String,
        /// ClickHouse output format.
        #[arg(long, default_value = "PrettyCompactMonoBlock")]
        output: String,
    },
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Test every column of CUR against REF for drift (Evidently-compatible defaults).
    Drift(vigil_analyzer::cli::DriftArgs),
    /// Fairness metrics of a scored dataset (Fairlearn definitions).
    Fairness(vigil_analyzer::cli::FairnessArgs),
    /// Run the [[monitors]] whose latest complete window has no results yet, once.
    Analyze(vigil_analyzer::monitor::report::AnalyzeArgs),
    /// A/B test statistics.
    #[command(subcommand)]
    Ab(AbCommand),
    /// Business KPIs per model version and time bucket (volume, conversion, revenue, cost).
    Kpi(kpi::KpiArgs),
    /// Assign a unit to an experiment arm (GrowthBook-compatible hashing).
    Assign(vigil_experimenter::AssignArgs),
    /// Make an experiment's winning version its model's production version (audited; sets the
    /// MLflow alias when [mlflow] is configured).
    Promote(vigil_experimenter::promote_cli::PromoteArgs),
    /// Restore a model's previous production version.
    Rollback(vigil_experimenter::promote_cli::RollbackArgs),
    /// Alerts: test a route, list, acknowledge, silence, evaluate, deliver (docs/alerting.md).
    #[command(subcommand)]
    Alerts(vigil_analyzer::alerting::cli::AlertsCommand),
    /// Shadow runs: replay captured traffic against candidate models, compare with production,
    /// retraining triggers and training-set export.
    #[command(subcommand)]
    Shadow(vigil_shadow_runner::cli::ShadowCommand),
}

#[derive(Subcommand, Debug)]
enum AbCommand {
    /// Compare every arm with the control from a per-unit CSV (frequentist, sequential,
    /// Bayesian, CUPED with --covariate-column; SRM check), gbstats-compatible.
    Analyze(vigil_experimenter::ab_cli::AbAnalyzeArgs),
    /// Plan an experiment: the minimum detectable effect at a sample size (and the power at a
    /// given lift).
    Power(vigil_experimenter::ab_cli::AbPowerArgs),
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate the configuration (file plus VIGIL_… overrides); errors name the line.
    Check,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// End-to-end ingest throughput (HTTP or Kafka) next to the raw insert speed.
    Ingest(bench::BenchIngestArgs),
    /// OpenAI-compatible gateway routes vs the backend directly: added time to first token and
    /// per-chunk latency, concurrent streams and memory, chunks/s through one core.
    Llm(bench_llm::BenchLlmArgs),
    /// Every dashboard page's time on a store of N events: load, compact, start `vigil serve`,
    /// then the first request, p50/p95/max of R more, and while the compactor runs.
    Pages(bench_pages::BenchPagesArgs),
}

/// `default_level`: without `VIGIL_LOG`, the level of vigil's own logs (the demo prints its own
/// story and keeps only warnings and errors of the components).
fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{default_level},librdkafka=warn,rdkafka=warn,actix_server=warn"
        ))
    });
    // Colours only on a terminal: a log redirected to a file (a service's log, a test's) is
    // read by people and programs that would see escape codes.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

fn main() {
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Demo(_));
    // The demo prints each drifted window's consequences (incident, retraining request) itself.
    init_logging(
        cli.log_format,
        if quiet {
            "warn,vigil_analyzer::monitor=error,vigil_analyzer::alerting::evaluate=error,vigil_shadow_runner::retrain=error"
        } else {
            "info"
        },
    );
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<vigil_experimenter::AssignError>()
                .is_some()
            {
                2
            } else {
                1
            }
        }
    };
    // Not a plain return: with the embedded store loaded, libchdb's exit-time destructors can
    // deadlock, and everything is durable by now (see vigil_store::backend::chdb).
    vigil_store::backend::chdb::exit_process(code)
}

fn run(cli: Cli) -> Result<()> {
    // Pure offline commands need no config or runtime.
    match &cli.command {
        Command::Drift(args) => {
            // --text-column: the shadow runner's sentence encoder turns texts into embeddings.
            let encoder = match args.embeddings.text_columns.is_empty() {
                true => None,
                false => Some(
                    vigil_shadow_runner::encoder::load_text_encoder(
                        args.embeddings.encoder.as_deref(),
                    )
                    .context("loading the sentence encoder for --text-column (install it with `bash scripts/models/fetch.sh`, or pass --encoder DIR)")?,
                ),
            };
            if let Some(e) = &encoder {
                eprintln!(
                    "vigil drift: texts are encoded by {} on {}",
                    vigil_analyzer::cli::TextEncoder::name(e),
                    vigil_shadow_runner::device_name(e.device())
                );
            }
            let encoder = encoder
                .as_ref()
                .map(|e| e as &dyn vigil_analyzer::cli::TextEncoder);
            println!("{}", vigil_analyzer::cli::run_drift_with(args, encoder)?);
            return Ok(());
        }
        Command::Fairness(args) => {
            println!("{}", vigil_analyzer::cli::run_fairness(args)?);
            return Ok(());
        }
        Command::Ab(AbCommand::Power(args)) => {
            println!("{}", vigil_experimenter::ab_cli::run_ab_power(args)?);
            return Ok(());
        }
        Command::Ab(AbCommand::Analyze(args)) if args.experiment.is_none() => {
            println!("{}", vigil_experimenter::ab_cli::run_ab_analyze(args)?);
            return Ok(());
        }
        _ => {}
    }
    let config = VigilConfig::load(cli.config.as_deref())?;
    let store = cli.store.as_deref();
    match cli.command {
        Command::Assign(args) => {
            println!(
                "{}",
                vigil_experimenter::run_assign(&args, &config.experiments)?
            );
            Ok(())
        }
        Command::Config(ConfigCommand::Check) => {
            let url = config.store_url(store)?;
            println!(
                "configuration OK (store: {url}; {} experiment(s); {} token(s); {} monitor(s))",
                config.experiments.len(),
                config.auth.tokens.len(),
                config.monitors.len()
            );
            Ok(())
        }
        command => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(run_async(command, config, store))
        }
    }
}

/// An embedded store belongs to one process: while `vigil serve` runs on it, promote through it.
const SERVER_HINT: &str = "cannot open the store to record the change; if `vigil serve` is running on an embedded (chdb://) store, go through it: --server http://HOST:PORT with VIGIL_TOKEN set to an admin token";

/// The store for `vigil promote`/`rollback`, unless they go through a running server.
async fn store_unless_server(
    config: &VigilConfig,
    store: Option<&str>,
    server: &Option<String>,
) -> Result<Option<vigil_store::Store>> {
    match server {
        Some(_) => Ok(None),
        None => Ok(Some(
            serve::open_store(config, store)
                .await
                .context(SERVER_HINT)?,
        )),
    }
}

async fn run_async(command: Command, config: VigilConfig, store: Option<&str>) -> Result<()> {
    match command {
        Command::Demo(args) => demo::run(config, store, args).await,
        Command::Serve { no_http, no_kafka } => {
            serve::serve(config, store, !no_http, !no_kafka).await
        }
        Command::Migrate => {
            let url = config.store_url(store)?;
            let s = vigil_store::Store::open_url(&url).await?;
            let applied = s.migrate(config.store.cluster.as_deref()).await?;
            println!(
                "{}: schema version {} ({} migration(s) applied now)",
                s.describe(),
                s.schema_version().await?,
                applied.len()
            );
            Ok(())
        }
        Command::Rollup(args) => {
            let s = serve::open_store(&config, store).await?;
            rollup_task::run_once(&s, &args).await
        }
        Command::Ingest { file, kind } => ingest_file(config, store, file, kind).await,
        Command::Status { format } => {
            let s = serve::open_store(&config, store).await?;
            let totals = vigil_store::queries::table_counts(&s).await?;
            let versions = vigil_store::queries::counts_by_version(&s, 0, u32::MAX).await?;
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({"store": s.describe(), "totals": totals, "versions": versions})
                ),
                Format::Table => {
                    println!("{}", s.describe());
                    println!(
                        "inferences {}  outcomes {}  exposures {}  dead letters {}",
                        totals.inference, totals.outcomes, totals.exposures, totals.dead_letters
                    );
                    for v in versions {
                        println!(
                            "  {:<16} {:<8} {:>10} events  mean score {:.3}",
                            v.model, v.version, v.events, v.mean_score
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Sql { query, output } => {
            let url = config.store_url(store)?;
            let s = vigil_store::Store::open_url(&url).await?;
            let out = s.query_formatted(&query, &output).await?;
            use std::io::Write;
            std::io::stdout().write_all(&out)?;
            Ok(())
        }
        Command::Bench(BenchCommand::Ingest(args)) => bench::run(config, store, args).await,
        Command::Bench(BenchCommand::Llm(args)) => bench_llm::run(store, args).await,
        Command::Bench(BenchCommand::Pages(args)) => {
            bench_pages::run(&config.store, store, args).await
        }
        Command::Kpi(args) => {
            let s = serve::open_store(&config, store).await?;
            println!("{}", kpi::run(&s, &args).await?);
            Ok(())
        }
        Command::Analyze(args) => {
            use vigil_analyzer::monitor;
            let now = chrono::Utc::now().timestamp().clamp(0, u32::MAX as i64) as u32;
            let at = args.at_secs(now)?;
            let s = serve::open_store(&config, store).await?;
            let outcomes = monitor::run_due_with(
                &s,
                &config.monitors,
                args.monitor.as_deref(),
                at,
                now,
                &monitor_task::text_monitoring(),
            )
            .await?;
            print!("{}", monitor::report::render(&outcomes, args.format)?);
            // Alert rules run on what was just stored; due notifications go out once (a
            // failed one stays in the outbox for `vigil serve` or the next run).
            let ctx = config.alert_context();
            let r = vigil_analyzer::alerting::evaluate::evaluate(&s, &ctx).await?;
            let d = vigil_analyzer::alerting::outbox::deliver_due(
                &s,
                &ctx.alerting,
                &ctx.routes,
                None,
                false,
            )
            .await?;
            tracing::info!(
                fired = r.fired.len(),
                resolved = r.resolved.len(),
                delivered = d.delivered.len(),
                retrying = d.retrying.len(),
                "alerts evaluated"
            );
            Ok(())
        }
        Command::Shadow(cmd) => {
            let s = serve::open_store(&config, store).await?;
            let ctx = vigil_shadow_runner::cli::Context {
                default_brokers: &config.kafka.brokers,
                inference_topic: &config.kafka.inference_topic,
                alert_routes: &config.alert_routes,
            };
            let out = vigil_shadow_runner::cli::run(&cmd, &config.shadow, &s, ctx).await?;
            print!("{out}");
            Ok(())
        }
        Command::Alerts(cmd) => {
            let s = serve::open_store(&config, store).await?;
            let ctx = config.alert_context();
            print!(
                "{}",
                vigil_analyzer::alerting::cli::run(&s, &ctx, &cmd).await?
            );
            Ok(())
        }
        Command::Ab(AbCommand::Analyze(args)) => {
            let s = serve::open_store(&config, store).await?;
            println!(
                "{}",
                vigil_experimenter::promote_cli::run_ab_store(&s, &config.experiments, &args)
                    .await?
            );
            Ok(())
        }
        Command::Promote(args) => {
            let s = store_unless_server(&config, store, &args.server).await?;
            print!(
                "{}",
                vigil_experimenter::promote_cli::run_promote(
                    s.as_ref(),
                    &config.experiments,
                    config.gateway.as_ref(),
                    config.mlflow.as_ref(),
                    &args
                )
                .await?
            );
            Ok(())
        }
        Command::Rollback(args) => {
            let s = store_unless_server(&config, store, &args.server).await?;
            print!(
                "{}",
                vigil_experimenter::promote_cli::run_rollback(
                    s.as_ref(),
                    config.mlflow.as_ref(),
                    &args
                )
                .await?
            );
            Ok(())
        }
        Command::Drift(_)
        | Command::Fairness(_)
        | Command::Ab(AbCommand::Power(_))
        | Command::Assign(_)
        | Command::Config(_) => {
            unreachable!("handled before the runtime starts")
        }
    }
}

async fn ingest_file(
    config: VigilConfig,
    store: Option<&str>,
    file: PathBuf,
    kind: vigil_store::event::EventKind,
) -> Result<()> {
    let size = std::fs::metadata(&file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    let s = serve::open_store(&config, store).await?;
    let metrics = Arc::new(vigil_collector::metrics::Metrics::new());
    let (writer, task) =
        vigil_collector::writer::spawn_writer(s.clone(), &config.collector, metrics);
    let pb = ProgressBar::new(size);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(format!("ingesting {}", file.display()));
    let limits = config.collector.limits.clone();
    let pb2 = pb.clone();
    let report = tokio::task::spawn_blocking(move || {
        let r = vigil_collector::file::ingest_file(&file, kind, &limits, &writer, 20_000, |b| {
            pb2.set_position(b)
        });
        drop(writer);
        r
    })
    .await??;
    task.await?;
    pb.finish_and_clear();
    println!(
        "{} lines: {} stored, {} rejected (kept in dead_letters with the reason; `vigil status` shows totals)",
        report.lines, report.accepted, report.rejected
    );
    Ok(())
}
