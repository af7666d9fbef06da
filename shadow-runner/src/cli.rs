//! `vigil shadow …`: run replays, show reports, evaluate retraining triggers, export training
//! sets. The binary parses [`ShadowCommand`] and calls [`run`].

use std::fmt::Write as _;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use vigil_store::rows::{ShadowMetricRow, ShadowRunRow};
use vigil_store::Store;

use crate::accumulate::Summary;
use crate::config::{parse_duration, ShadowConfig};
use crate::device::{device_name, select_device};
use crate::error::{Error, Result};
use crate::replay::{self, source::Filters, Models, ReplayOptions, RunReport};
use crate::retrain::{self, Delivery, TriggerOutcome};

/// Output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Human-readable table.
    #[default]
    Table,
    /// JSON.
    Json,
}

/// `vigil shadow …`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ShadowCommand {
    /// Replay captured traffic (inference events with input text) against the candidates and
    /// compare them with production; results go to the store (shadow_runs, shadow_metrics).
    Run(RunArgs),
    /// Live shadow: replay inference events from a Kafka topic as they arrive (checkpointed
    /// with the topic offsets; `--resume` continues exactly where it stopped).
    Live(LiveArgs),
    /// Show a run's comparison (default: the latest run).
    Report(ReportArgs),
    /// Evaluate the [[shadow.triggers]] once: file and deliver retraining requests.
    Triggers(FormatArgs),
    /// Export the training set of a retraining request (JSONL).
    Export(ExportArgs),
    /// Compare the answers the gateway mirrored to shadow candidates (shadow_responses) with
    /// the answers production served for the same requests.
    Mirrored(MirroredArgs),
    /// Close a retraining request (a new one for the same model and reason may then be filed).
    Close {
        /// Request id.
        #[arg(long)]
        request: String,
    },
}

/// What a run replays (`vigil shadow run` and `vigil shadow live`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ScopeArgs {
    /// Model name (default: the only model with a production version in [[shadow.models]]).
    #[arg(long)]
    pub model: Option<String>,
    /// Candidate version(s) to run (default: every candidate of the model).
    #[arg(long)]
    pub candidate: Vec<String>,
    /// Sampling rate (0 < R <= 1; default: [shadow] sample_rate).
    #[arg(long)]
    pub sample: Option<f64>,
    /// Only events served by this version.
    #[arg(long)]
    pub version: Option<String>,
    /// Only events with this attribute value, KEY=VALUE (repeatable).
    #[arg(long = "attr")]
    pub attrs: Vec<String>,
}

impl ScopeArgs {
    /// The sample rate (checked), filters and candidates these flags ask for.
    fn resolve(
        &self,
        cfg: &ShadowConfig,
        limit: Option<u64>,
    ) -> Result<(f64, Filters, Vec<String>)> {
        let sample_rate = self.sample.unwrap_or(cfg.sample_rate);
        if !(sample_rate > 0.0 && sample_rate <= 1.0) {
            return Err(Error::Config(format!(
                "--sample {sample_rate} must be in (0, 1]"
            )));
        }
        let filters = Filters {
            version: self.version.clone(),
            attributes: parse_attrs(&self.attrs)?,
            limit,
        };
        Ok((sample_rate, filters, self.candidate.clone()))
    }
}

/// The sample rate, filters and candidate versions a stored job was started with.
/// What a run covers — (since, until, sample rate, filters, candidate versions): a resumed
/// job's stored scope, or the command line's window and scope.
type RunScope = (u32, u32, f64, Filters, Vec<String>);

fn run_scope(
    args: &RunArgs,
    cfg: &ShadowConfig,
    resumed: Option<&vigil_store::rows::ShadowRunRow>,
) -> Result<RunScope> {
    Ok(match resumed {
        Some(job) => {
            if job.status == "done" {
                return Err(Error::Config(format!(
                    "run {} is already done: see `vigil shadow report --run {}`",
                    job.job_id, job.job_id
                )));
            }
            let (sample_rate, filters, cands) = job_scope(job);
            (job.since, job.until, sample_rate, filters, cands)
        }
        None => {
            let until = match &args.until {
                Some(u) => parse_time(u)?,
                None => now_secs().saturating_add(1),
            };
            let since = match (&args.since, &args.window) {
                (Some(s), _) => parse_time(s)?,
                (None, Some(w)) => until.saturating_sub(parse_duration(w)?),
                (None, None) => 0,
            };
            if since >= until {
                return Err(Error::Config(format!(
                    "empty window: since {since} is not before until {until}"
                )));
            }
            let (sample_rate, filters, candidates) = args.scope.resolve(cfg, args.limit)?;
            (since, until, sample_rate, filters, candidates)
        }
    })
}

fn job_scope(job: &vigil_store::rows::ShadowRunRow) -> (f64, Filters, Vec<String>) {
    (
        job.sample_rate,
        serde_json::from_str(&job.filters).unwrap_or_default(),
        job.candidates
            .split(',')
            .filter_map(|c| c.split_once('@').map(|(_, v)| v.to_string()))
            .collect(),
    )
}

/// `vigil shadow run`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Model, candidates, sample and filters.
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Window start: RFC 3339 or unix seconds (default: the beginning).
    #[arg(long)]
    pub since: Option<String>,
    /// Window end, exclusive: RFC 3339 or unix seconds (default: now).
    #[arg(long)]
    pub until: Option<String>,
    /// Window ending at --until (or now), e.g. 24h, 7d; instead of --since.
    #[arg(long, conflicts_with = "since")]
    pub window: Option<String>,
    /// Replay at most this many events.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Resume this job from its checkpoint (its window, sample and filters are kept).
    #[arg(long)]
    pub resume: Option<String>,
    /// Stop after this many pages, leaving the job resumable.
    #[arg(long, hide = true)]
    pub pages: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `vigil shadow live`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LiveArgs {
    /// Model, candidates, sample and filters.
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Topic of inference events (default: `[kafka] inference_topic`).
    #[arg(long)]
    pub topic: Option<String>,
    /// Brokers (default: `[kafka] brokers`).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Start a new run at the end of the topic (only new events) instead of its beginning.
    #[arg(long)]
    pub from_latest: bool,
    /// Stop after this many replayed events (default: until --idle-exit or Ctrl-C).
    #[arg(long)]
    pub max_events: Option<u64>,
    /// Stop after this long without a message, e.g. 30s (default: never).
    #[arg(long)]
    pub idle_exit: Option<String>,
    /// Replay a page this long after its first event even when it is not full.
    #[arg(long, default_value = "2s")]
    pub batch_wait: String,
    /// Resume this live job from its checkpoint (its topic position, sample and filters).
    #[arg(long)]
    pub resume: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `vigil shadow report`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ReportArgs {
    /// Job id (default: the latest run).
    #[arg(long)]
    pub run: Option<String>,
    /// Include the per-bucket time series.
    #[arg(long)]
    pub buckets: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Just a format.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FormatArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `vigil shadow mirrored`.
#[derive(clap::Args, Debug, Clone)]
pub struct MirroredArgs {
    /// Model name.
    #[arg(long)]
    pub model: String,
    /// Window start: RFC 3339 or unix seconds (default: 24 hours before --until).
    #[arg(long)]
    pub since: Option<String>,
    /// Window end, exclusive (default: now).
    #[arg(long)]
    pub until: Option<String>,
    /// LLM answers: compare the mirrored texts with the served ones semantically (sentence
    /// encoder similarity, length/token ratios, latency/cost deltas, empty/refusal rates).
    #[arg(long)]
    pub semantic: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `vigil shadow export`.
#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// Retraining request id.
    #[arg(long)]
    pub request: String,
    /// Output file (`.jsonl`).
    #[arg(long)]
    pub out: PathBuf,
}

/// Parses RFC 3339 or unix seconds.
pub fn parse_time(text: &str) -> Result<u32> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u32>() {
        return Ok(secs);
    }
    let dt = chrono::DateTime::parse_from_rfc3339(t).map_err(|e| {
        Error::Config(format!(
            "`{text}` is not a time ({e}): write RFC 3339 (2026-11-22T10:00:00Z) or unix seconds"
        ))
    })?;
    u32::try_from(dt.timestamp()).map_err(|_| Error::Config(format!("`{text}` is out of range")))
}

fn now_secs() -> u32 {
    chrono::Utc::now().timestamp().clamp(0, i64::from(u32::MAX)) as u32
}

/// What a shadow command needs from the rest of `vigil.toml`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// `[kafka] brokers` (default brokers of `[shadow] kafka_topic` and of `vigil shadow live`).
    pub default_brokers: &'a str,
    /// `[kafka] inference_topic` (default topic of `vigil shadow live`).
    pub inference_topic: &'a str,
    /// `[[alert_routes]]` (e-mail of retraining requests via `[shadow] alert_route`).
    pub alert_routes: &'a [vigil_analyzer::alerting::RouteConfig],
}

/// Runs a shadow command; returns what to print.
pub async fn run(
    cmd: &ShadowCommand,
    cfg: &ShadowConfig,
    store: &Store,
    ctx: Context<'_>,
) -> Result<String> {
    cfg.validate()?;
    match cmd {
        ShadowCommand::Run(args) => {
            if let Some(report) = run_llm_replay(args, cfg, store).await? {
                return Ok(match args.format {
                    Format::Json => to_json(&report)?,
                    Format::Table => render_llm_run(&report),
                });
            }
            let report = run_replay(args, cfg, store).await?;
            Ok(match args.format {
                Format::Json => to_json(&report)?,
                Format::Table => render_run(&report),
            })
        }
        ShadowCommand::Live(args) => {
            let report = run_live(args, cfg, store, ctx).await?;
            Ok(match args.format {
                Format::Json => to_json(&report)?,
                Format::Table => render_run(&report),
            })
        }
        ShadowCommand::Report(args) => {
            let job = match &args.run {
                Some(id) => replay::load_job(store, id).await?,
                None => replay::list_jobs(store, 1).await?.into_iter().next(),
            }
            .ok_or_else(|| {
                Error::NotFound(match &args.run {
                    Some(id) => format!("no shadow run `{id}`"),
                    None => "no shadow run yet: start one with `vigil shadow run`".into(),
                })
            })?;
            let totals = replay::job_metrics(store, &job.job_id, Some("total")).await?;
            let buckets = if args.buckets || args.format == Format::Json {
                replay::job_metrics(store, &job.job_id, Some("bucket")).await?
            } else {
                Vec::new()
            };
            Ok(match args.format {
                Format::Json => to_json(&serde_json::json!({
                    "run": run_json(&job),
                    "totals": totals,
                    "buckets": buckets,
                }))?,
                Format::Table => render_report(&job, &totals, &buckets),
            })
        }
        ShadowCommand::Triggers(args) => {
            let delivery = Delivery::from_config(cfg, ctx.default_brokers);
            let outcomes =
                retrain::evaluate_triggers(store, cfg, &delivery, ctx.alert_routes).await?;
            Ok(match args.format {
                Format::Json => to_json(&outcomes)?,
                Format::Table => render_triggers(&outcomes),
            })
        }
        ShadowCommand::Export(args) => {
            let ext = args
                .out
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default();
            if ext.eq_ignore_ascii_case("parquet") {
                return Err(Error::Config(
                    "Parquet export is not built: write JSONL (--out FILE.jsonl)".into(),
                ));
            }
            let (rows, labelled) =
                retrain::export_jsonl(store, &args.request, &cfg.label_outcome_prefix, &args.out)
                    .await?;
            Ok(format!(
                "wrote {rows} rows ({labelled} with a ground-truth label) to {}\n",
                args.out.display()
            ))
        }
        ShadowCommand::Mirrored(args) => {
            let until = match &args.until {
                Some(u) => parse_time(u)?,
                None => now_secs().saturating_add(1),
            };
            let since = match &args.since {
                Some(s) => parse_time(s)?,
                None => until.saturating_sub(86_400),
            };
            if args.semantic {
                set_threads(cfg);
                let device = select_device(cfg.device)?;
                let dir = cfg.llm_encoder_dir();
                let encoder = tokio::task::block_in_place(|| {
                    crate::encoder::SentenceEncoder::load_with_dtype(&dir, &device, cfg.dtype()?)
                        .map(|e| e.with_batch_size(cfg.batch_size))
                })?;
                let rows = crate::llm::compare_mirrored_llm(
                    store,
                    &args.model,
                    (since, until),
                    &encoder,
                    &cfg.llm_policy,
                )
                .await?;
                return Ok(match args.format {
                    Format::Json => to_json(&rows)?,
                    Format::Table => {
                        let mut out = format!(
                            "mirrored LLM answers of {} vs served answers, [{since}, {until})\n",
                            args.model
                        );
                        let view: Vec<(String, crate::llm::LlmSummaryView)> = rows
                            .iter()
                            .filter_map(|(c, s)| {
                                Some((
                                    c.clone(),
                                    serde_json::from_value(serde_json::to_value(s).ok()?).ok()?,
                                ))
                            })
                            .collect();
                        if view.is_empty() {
                            out.push_str("no mirrored LLM answers in the window\n");
                        } else {
                            render_llm_table(&mut out, &view);
                        }
                        out
                    }
                });
            }
            let rows = replay::mirrored::compare_mirrored(store, &args.model, since, until).await?;
            Ok(match args.format {
                Format::Json => to_json(&rows)?,
                Format::Table => {
                    let mut out = format!(
                        "{:<20} {:>9} {:>9} {:>9} {:>9} {:>10} {:>14} {:>14}\n",
                        "candidate",
                        "mirrored",
                        "answered",
                        "matched",
                        "agree",
                        "score Δ",
                        "p50/p95 ms",
                        "served p50 ms"
                    );
                    for r in &rows {
                        let _ = writeln!(
                            out,
                            "{:<20} {:>9} {:>9} {:>9} {:>9} {:>+10.3} {:>14} {:>14.1}",
                            r.candidate,
                            r.requests,
                            r.answered,
                            r.matched,
                            pct(r.agreement),
                            r.score_delta_mean,
                            format!("{:.1}/{:.1}", r.cand_latency_p50, r.cand_latency_p95),
                            r.served_latency_p50
                        );
                    }
                    if rows.is_empty() {
                        out.push_str("no mirrored responses in the window\n");
                    }
                    out
                }
            })
        }
        ShadowCommand::Close { request } => {
            let r = retrain::close_request(store, request).await?;
            Ok(format!("closed {}\n", r.request_id))
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|e| Error::Config(format!("cannot render JSON: {e}")))
}

/// A run without its checkpoint, for reports and the API.
pub fn run_json(job: &ShadowRunRow) -> serde_json::Value {
    serde_json::json!({
        "job_id": job.job_id,
        "model": job.model,
        "production": job.production,
        "candidates": job.candidates.split(',').filter(|c| !c.is_empty()).collect::<Vec<_>>(),
        "since": job.since,
        "until": job.until,
        "sample_rate": job.sample_rate,
        "filters": serde_json::from_str::<serde_json::Value>(&job.filters).unwrap_or_default(),
        "status": job.status,
        "processed": job.processed,
        "skipped": job.skipped,
        "cursor": {"ts": job.cursor_ts, "event_id": job.cursor_event_id},
        "started_at": job.started_at,
        "updated_ms": job.updated_ms,
        "error": job.error,
    })
}

fn set_threads(cfg: &ShadowConfig) {
    if let Some(t) = cfg.threads {
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            // Read by candle's CPU kernels when the first model runs.
            std::env::set_var("RAYON_NUM_THREADS", t.to_string());
        }
    }
}

/// The model of a run: the resumed job's, `--model`, or the registry's only production model.
fn pick_model(
    registry: &crate::registry::Registry,
    resumed: Option<&vigil_store::rows::ShadowRunRow>,
    asked: Option<&str>,
) -> Result<String> {
    let args_model = asked.map(str::to_string);
    Ok(match (resumed, &args_model) {
        (Some(job), _) => job.model.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => {
            let mut names: Vec<&str> = registry
                .models
                .iter()
                .filter(|m| m.role == crate::Role::Production)
                .map(|m| m.name.as_str())
                .collect();
            names.dedup();
            match names.as_slice() {
                [one] => one.to_string(),
                [] => {
                    return Err(Error::Config(
                        "no production model in [[shadow.models]] of vigil.toml".into(),
                    ))
                }
                _ => {
                    return Err(Error::Config(format!(
                        "several models ({}): pick one with --model",
                        names.join(", ")
                    )))
                }
            }
        }
    })
}

/// `--attr KEY=VALUE` filters.
fn parse_attrs(attrs: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    let mut attributes = std::collections::BTreeMap::new();
    for a in attrs {
        let (k, v) = a.split_once('=').ok_or_else(|| {
            Error::Config(format!(
                "--attr {a}: write KEY=VALUE, e.g. --attr region=eu"
            ))
        })?;
        attributes.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(attributes)
}

fn load_models(
    cfg: &ShadowConfig,
    registry: &crate::registry::Registry,
    model: &str,
    candidates: &[String],
    device: &candle_core::Device,
) -> Result<Models> {
    let dtype = cfg.dtype()?;
    tokio::task::block_in_place(|| Models::load(registry, model, candidates, device, dtype))
}

fn replay_options(
    cfg: &ShadowConfig,
    model: &str,
    candidates: Vec<String>,
    (since, until): (u32, u32),
    sample_rate: f64,
    filters: &Filters,
) -> Result<ReplayOptions> {
    Ok(ReplayOptions {
        model: model.to_string(),
        candidates,
        since,
        until,
        sample_rate,
        filters: filters.clone(),
        page_size: cfg.page_size,
        bucket_secs: parse_duration(&cfg.bucket)?,
        label_prefix: cfg.label_outcome_prefix.clone(),
        min_labelled: cfg.min_labelled,
        policy: cfg.policy.clone(),
    })
}

async fn run_live(
    args: &LiveArgs,
    cfg: &ShadowConfig,
    store: &Store,
    ctx: Context<'_>,
) -> Result<RunReport> {
    set_threads(cfg);
    let registry = cfg.registry()?;
    let resumed = match &args.resume {
        Some(id) => {
            let job = replay::load_job(store, id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("no shadow run `{id}` to resume")))?;
            if job.status == "done" {
                return Err(Error::Config(format!(
                    "run {id} is already done: see `vigil shadow report --run {id}`"
                )));
            }
            Some(job)
        }
        None => None,
    };
    let model = pick_model(&registry, resumed.as_ref(), args.scope.model.as_deref())?;
    let (sample_rate, filters, candidates) = match &resumed {
        Some(job) => job_scope(job),
        None => args.scope.resolve(cfg, None)?,
    };
    let brokers = args.brokers.as_deref().unwrap_or(ctx.default_brokers);
    let topic = args.topic.as_deref().unwrap_or(ctx.inference_topic);
    if brokers.trim().is_empty() || topic.trim().is_empty() {
        return Err(Error::Config(
            "live shadow needs brokers and a topic: --brokers/--topic or [kafka] brokers and inference_topic".into(),
        ));
    }
    let live = replay::live::LiveOptions {
        brokers: brokers.to_string(),
        topic: topic.to_string(),
        from_latest: args.from_latest,
        max_events: args.max_events,
        idle_exit: args
            .idle_exit
            .as_deref()
            .map(parse_duration)
            .transpose()?
            .map(|s| std::time::Duration::from_secs(u64::from(s))),
        batch_wait: std::time::Duration::from_secs(u64::from(parse_duration(&args.batch_wait)?)),
    };
    let device = select_device(cfg.device)?;
    let models = load_models(cfg, &registry, &model, &candidates, &device)?;
    // A live job's window grows with the events it sees (0 until the first one).
    let opts = replay_options(cfg, &model, candidates, (0, 0), sample_rate, &filters)?;
    let job = match resumed {
        Some(job) => job,
        None => replay::new_job(&opts, &models, &replay::new_job_id(&model)),
    };
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} events ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(format!(
        "live shadow {} ({}) on {} from {topic}",
        job.job_id,
        models.candidate_ids().join(", "),
        device_name(&device)
    ));
    pb.set_position(job.processed);
    tracing::info!(job = %job.job_id, topic, brokers, device = %device_name(&device), "live shadow");
    let pb2 = pb.clone();
    let mut progress = move |done: u64| pb2.set_position(done);
    let report = replay::live::run_live(store, &models, &opts, &live, job, &mut progress).await;
    pb.finish_and_clear();
    report
}

async fn run_replay(args: &RunArgs, cfg: &ShadowConfig, store: &Store) -> Result<RunReport> {
    set_threads(cfg);
    let registry = cfg.registry()?;
    let resumed = match &args.resume {
        Some(id) => Some(
            replay::load_job(store, id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("no shadow run `{id}` to resume")))?,
        ),
        None => None,
    };
    let model = pick_model(&registry, resumed.as_ref(), args.scope.model.as_deref())?;
    let (since, until, sample_rate, filters, candidates) = run_scope(args, cfg, resumed.as_ref())?;
    let device = select_device(cfg.device)?;
    let models = load_models(cfg, &registry, &model, &candidates, &device)?;
    let opts = replay_options(
        cfg,
        &model,
        candidates,
        (since, until),
        sample_rate,
        &filters,
    )?;
    let job = match resumed {
        Some(job) => job,
        None => replay::new_job(&opts, &models, &replay::new_job_id(&model)),
    };
    let scope = replay::source::Scope {
        model: &model,
        since,
        until,
        sample_rate,
        filters: &filters,
    };
    let in_scope = replay::source::count(store, &scope).await?;
    let total = filters.limit.map_or(in_scope, |l| l.min(in_scope));
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(format!(
        "shadow {} ({}) on {}",
        job.job_id,
        models.candidate_ids().join(", "),
        device_name(&device)
    ));
    pb.set_position(job.processed);
    tracing::info!(job = %job.job_id, events = total, device = %device_name(&device), "shadow replay");
    let pb2 = pb.clone();
    let mut progress = move |done: u64| pb2.set_position(done);
    let report = replay::run_job(store, &models, &opts, job, &mut progress, args.pages).await;
    pb.finish_and_clear();
    report
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", x * 100.0)
    } else {
        "-".into()
    }
}

fn ci(d: f64, lo: f64, hi: f64, n: u64) -> String {
    if n == 0 || !d.is_finite() {
        "-".into()
    } else {
        format!("{:+.1} [{:+.1}, {:+.1}]", d * 100.0, lo * 100.0, hi * 100.0)
    }
}

fn render_run(r: &RunReport) -> String {
    let mut out = String::new();
    let rate = if r.wall_secs > 0.0 {
        r.this_run as f64 / r.wall_secs
    } else {
        0.0
    };
    let _ = writeln!(
        out,
        "shadow run {}: {} events replayed ({} now in {:.1} s, {:.0} events/s end to end); production {}",
        r.job_id, r.processed, r.this_run, r.wall_secs, rate, r.production
    );
    let _ = writeln!(
        out,
        "{:<28} {:>7} {:>9} {:>9} {:>22} {:>8} {:>22} {:>24} {:>24} {:>9}  verdict",
        "candidate",
        "inputs",
        "agree",
        "replay",
        "score Δ p50 [p05,p95]",
        "cosine",
        "top shift",
        "accuracy Δ pts [95% CI]",
        "macro-F1 Δ pts [95% CI]",
        "ms/input"
    );
    for (cand, s) in &r.candidates {
        write_summary_row(&mut out, cand, s);
    }
    for (cand, s) in &r.candidates {
        for reason in &s.reasons {
            let _ = writeln!(out, "  {cand}: {reason}");
        }
    }
    out
}

fn write_summary_row(out: &mut String, cand: &str, s: &Summary) {
    let _ = writeln!(
        out,
        "{:<28} {:>7} {:>9} {:>9} {:>22} {:>8} {:>22} {:>24} {:>24} {:>9.2}  {}",
        cand,
        s.n,
        pct(s.agreement),
        pct(s.replay_agreement),
        format!(
            "{:+.3} [{:+.3},{:+.3}]",
            s.score_delta_q[1], s.score_delta_q[0], s.score_delta_q[2]
        ),
        if s.cosine_mean.is_finite() {
            format!("{:.4}", s.cosine_mean)
        } else {
            "-".into()
        },
        format!("{} {:+.1}pts", s.top_shift.0, s.top_shift.1 * 100.0),
        ci(
            s.accuracy_delta.delta,
            s.accuracy_delta.low,
            s.accuracy_delta.high,
            s.accuracy_delta.n
        ),
        ci(
            s.f1_delta.delta,
            s.f1_delta.low,
            s.f1_delta.high,
            s.f1_delta.n
        ),
        s.ms_per_input.1,
        s.verdict
    );
}

fn render_report(
    job: &ShadowRunRow,
    totals: &[ShadowMetricRow],
    buckets: &[ShadowMetricRow],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "shadow run {} ({}): model {}, production {}, window [{}, {}), {} events",
        job.job_id, job.status, job.model, job.production, job.since, job.until, job.processed
    );
    let llm: Vec<(String, crate::llm::LlmSummaryView)> = totals
        .iter()
        .filter(|t| !t.llm.is_empty())
        .filter_map(|t| Some((t.candidate.clone(), serde_json::from_str(&t.llm).ok()?)))
        .collect();
    if !llm.is_empty() {
        render_llm_table(&mut out, &llm);
        return out;
    }
    let _ = writeln!(
        out,
        "{:<28} {:>7} {:>9} {:>9} {:>10} {:>8} {:>22} {:>8} {:>24} {:>24} {:>9}  verdict",
        "candidate",
        "inputs",
        "agree",
        "replay",
        "score Δ",
        "cosine",
        "top shift",
        "labelled",
        "accuracy Δ pts [95% CI]",
        "macro-F1 Δ pts [95% CI]",
        "ms/input"
    );
    for t in totals {
        let _ = writeln!(
            out,
            "{:<28} {:>7} {:>9} {:>9} {:>+10.3} {:>8.4} {:>22} {:>8} {:>24} {:>24} {:>9.2}  {}",
            t.candidate,
            t.n,
            pct(t.agreement),
            pct(t.replay_agreement),
            t.score_delta_p50,
            t.cosine_mean,
            format!("{} {:+.1}pts", t.top_shift_label, t.top_shift * 100.0),
            t.labelled,
            ci(
                t.accuracy_delta,
                t.accuracy_delta_low,
                t.accuracy_delta_high,
                t.labelled
            ),
            ci(t.f1_delta, t.f1_delta_low, t.f1_delta_high, t.labelled),
            t.cand_ms_per_input,
            t.verdict
        );
    }
    for t in totals {
        let reasons: Vec<String> = serde_json::from_str(&t.reasons).unwrap_or_default();
        for r in reasons {
            let _ = writeln!(out, "  {}: {r}", t.candidate);
        }
    }
    if !buckets.is_empty() {
        let _ = writeln!(out, "time series ({} bucket rows):", buckets.len());
        for b in buckets {
            let _ = writeln!(
                out,
                "  {} {:<28} n={:<6} agree={:<7} verdict={}",
                b.bucket_start,
                b.candidate,
                b.n,
                pct(b.agreement),
                b.verdict
            );
        }
    }
    out
}

fn render_triggers(outcomes: &[TriggerOutcome]) -> String {
    let mut out = String::new();
    if outcomes.is_empty() {
        out.push_str("no [[shadow.triggers]] configured\n");
    }
    for o in outcomes {
        let _ = match o {
            TriggerOutcome::Quiet { rule } => writeln!(out, "{rule}: quiet"),
            TriggerOutcome::Filed { rule, request } => writeln!(
                out,
                "{rule}: FILED {} (model {}, reason {}, dataset [{}, {})); webhook {}, kafka {}",
                request.request_id,
                request.model,
                request.reason,
                request.dataset_since,
                request.dataset_until,
                request.webhook_status,
                request.kafka_status
            ),
            TriggerOutcome::AlreadyOpen { rule, request_id } => {
                writeln!(out, "{rule}: fired, request {request_id} already open")
            }
            TriggerOutcome::AlreadyHandled { rule, request_id } => writeln!(
                out,
                "{rule}: fired on evidence already handled by closed request {request_id}"
            ),
        };
    }
    out
}

/// An LLM replay when the run's candidates are `[[shadow.candidates]]` (OpenAI-compatible
/// endpoints): a resumed LLM job, or a model with LLM candidates and no classifier candidate
/// (or `--candidate` naming only LLM versions). None: a classifier replay.
async fn run_llm_replay(
    args: &RunArgs,
    cfg: &ShadowConfig,
    store: &Store,
) -> Result<Option<crate::llm::LlmRunReport>> {
    let resumed = match &args.resume {
        Some(id) => Some(
            replay::load_job(store, id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("no shadow run `{id}` to resume")))?,
        ),
        None => None,
    };
    let registry = cfg.registry()?;
    let model = match (&resumed, &args.scope.model) {
        (Some(job), _) => job.model.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => {
            let mut names: Vec<&str> = cfg.candidates.iter().map(|c| c.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            let has_prod = registry
                .models
                .iter()
                .any(|m| m.role == crate::Role::Production);
            match names.as_slice() {
                [one] if !has_prod => one.to_string(),
                _ => return Ok(None),
            }
        }
    };
    let llm_job = match &resumed {
        Some(job) => job
            .production
            .ends_with(&format!("@{}", crate::llm::LOGGED)),
        None => {
            let llm_versions: Vec<&str> = cfg
                .candidates
                .iter()
                .filter(|c| c.name == model)
                .map(|c| c.version.as_str())
                .collect();
            !llm_versions.is_empty()
                && if args.scope.candidate.is_empty() {
                    registry.candidates(&model).next().is_none()
                } else {
                    args.scope
                        .candidate
                        .iter()
                        .all(|c| llm_versions.contains(&c.as_str()))
                }
        }
    };
    if !llm_job {
        return Ok(None);
    }
    let (since, until, sample_rate, filters, candidates) = run_scope(args, cfg, resumed.as_ref())?;
    let clients = cfg
        .candidates
        .iter()
        .filter(|c| c.name == model && (candidates.is_empty() || candidates.contains(&c.version)))
        .map(crate::llm::Client::new)
        .collect::<Result<Vec<_>>>()?;
    if clients.is_empty() {
        return Err(Error::Config(format!(
            "no [[shadow.candidates]] of model `{model}` to replay"
        )));
    }
    set_threads(cfg);
    let device = select_device(cfg.device)?;
    let dir = cfg.llm_encoder_dir();
    let encoder = tokio::task::block_in_place(|| {
        crate::encoder::SentenceEncoder::load_with_dtype(&dir, &device, cfg.dtype()?)
            .map(|e| e.with_batch_size(cfg.batch_size))
    })?;
    let r = crate::llm::LlmReplay {
        model: &model,
        scope: replay::source::Scope {
            model: &model,
            since,
            until,
            sample_rate,
            filters: &filters,
        },
        page_size: cfg.page_size,
        policy: &cfg.llm_policy,
        clients: &clients,
        encoder: &encoder,
    };
    let job = match resumed {
        Some(job) => job,
        None => crate::llm::new_job(&r, &filters, &replay::new_job_id(&model)),
    };
    let in_scope = crate::llm::count(store, &r.scope).await?;
    let total = filters.limit.map_or(in_scope, |l| l.min(in_scope));
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(format!(
        "LLM shadow {} ({})",
        job.job_id,
        crate::llm::candidate_ids(&clients).join(", ")
    ));
    pb.set_position(job.processed);
    tracing::info!(job = %job.job_id, prompts = total, encoder = %dir.display(),
        device = %device_name(&device), "LLM shadow replay");
    let pb2 = pb.clone();
    let mut progress = move |done: u64| pb2.set_position(done);
    let report = crate::llm::run_job(store, &r, job, &mut progress, args.pages).await;
    pb.finish_and_clear();
    report.map(Some)
}

fn num(x: Option<f64>, prec: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.prec$}"),
        _ => "-".into(),
    }
}

fn render_llm_table(out: &mut String, rows: &[(String, crate::llm::LlmSummaryView)]) {
    let _ = writeln!(
        out,
        "{:<20} {:>7} {:>7} {:>24} {:>20} {:>7} {:>7} {:>7} {:>16} {:>16} {:>16} {:>13} {:>13} {:>11}  verdict",
        "candidate",
        "answers",
        "errors",
        "similarity mean [95% CI]",
        "p10 / p50 / p90",
        "agree",
        "len ×",
        "tok ×",
        "latency Δ ms",
        "TTFT Δ ms",
        "cost Δ /answer",
        "empty c/p",
        "refusal c/p",
        "fb +/- sim"
    );
    for (cand, s) in rows {
        let _ = writeln!(
            out,
            "{:<20} {:>7} {:>7} {:>24} {:>20} {:>7} {:>7} {:>7} {:>16} {:>16} {:>16} {:>13} {:>13} {:>11}  {}",
            cand,
            s.answered,
            s.errors,
            format!(
                "{} [{}, {}]",
                num(s.similarity_mean, 3),
                num(s.similarity_low, 3),
                num(s.similarity_high, 3)
            ),
            format!(
                "{} / {} / {}",
                num(s.similarity_p10, 2),
                num(s.similarity_p50, 2),
                num(s.similarity_p90, 2)
            ),
            s.agreement.map_or("-".into(), pct),
            num(s.length_ratio, 2),
            num(s.token_ratio, 2),
            format!(
                "{:>+.0} ({}→{})",
                s.latency_delta_ms.unwrap_or(f64::NAN),
                num(s.prod_latency_ms, 0),
                num(s.cand_latency_ms, 0)
            ),
            // Only streamed replays (`stream = true`) measure the candidate's TTFT.
            match s.ttft_delta_ms.filter(|d| d.is_finite()) {
                Some(d) => format!(
                    "{d:>+.0} ({}→{})",
                    num(s.prod_ttft_ms, 0),
                    num(s.cand_ttft_ms, 0)
                ),
                None => format!("- ({}→-)", num(s.prod_ttft_ms, 0)),
            },
            s.cost_delta
                .filter(|c| c.is_finite())
                .map_or("-".into(), |c| format!("{c:+.6}")),
            format!(
                "{}/{}",
                s.cand_empty_rate.map_or("-".into(), pct),
                s.prod_empty_rate.map_or("-".into(), pct)
            ),
            format!(
                "{}/{}",
                s.cand_refusal_rate.map_or("-".into(), pct),
                s.prod_refusal_rate.map_or("-".into(), pct)
            ),
            format!(
                "{}/{}",
                num(s.similarity_on_positive, 2),
                num(s.similarity_on_negative, 2)
            ),
            s.verdict
        );
    }
    for (cand, s) in rows {
        for r in &s.reasons {
            let _ = writeln!(out, "  {cand}: {r}");
        }
    }
}

fn render_llm_run(r: &crate::llm::LlmRunReport) -> String {
    let mut out = format!(
        "LLM shadow run {} ({}): model {}, {} prompts replayed ({} now in {:.1} s) against production's logged answers\n",
        r.job_id, r.status, r.model, r.processed, r.this_run, r.wall_secs
    );
    let rows: Vec<(String, crate::llm::LlmSummaryView)> = r
        .candidates
        .iter()
        .filter_map(|(c, s)| {
            Some((
                c.clone(),
                serde_json::from_value(serde_json::to_value(s).ok()?).ok()?,
            ))
        })
        .collect();
    render_llm_table(&mut out, &rows);
    out
}
