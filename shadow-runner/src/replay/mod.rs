//! Replay jobs: page through captured traffic in the store, run production and every candidate
//! on the same inputs, accumulate the comparison, checkpoint after every page, and write the
//! time series (`shadow_metrics`) and the job's state (`shadow_runs`).
//!
//! Memory is bounded by one page of events plus the accumulators' reservoirs, whatever the
//! window's size. A job killed at any point resumes from its last checkpoint (`--resume JOB`):
//! the cursor `(ts, event_id)` and the accumulated state are stored together, and metric rows
//! are keyed so that re-writing a bucket after a crash replaces it.

pub mod live;
pub mod mirrored;
pub mod source;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use vigil_store::rows::{ShadowMetricRow, ShadowRunRow};
use vigil_store::{sql_string, Store, StoreError};

use crate::accumulate::{Accumulator, Observation, Summary, BUCKET_SAMPLE, TOTAL_SAMPLE};
use crate::compare::ShadowPolicy;
use crate::encoder::SentenceEncoder;
use crate::error::{Error, Result};
use crate::head::{LinearHead, Prediction};
use crate::registry::{ModelSpec, Registry};
use source::{Filters, Scope};

/// What to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    /// Model name (production and candidates come from the registry).
    pub model: String,
    /// Only these candidate versions (default: all).
    pub candidates: Vec<String>,
    /// Window start (unix seconds).
    pub since: u32,
    /// Window end (exclusive).
    pub until: u32,
    /// Share of events replayed.
    pub sample_rate: f64,
    /// Filters and limit.
    pub filters: Filters,
    /// Events per page.
    pub page_size: usize,
    /// Width of a time-series bucket in seconds.
    pub bucket_secs: u32,
    /// Outcome name prefix of ground-truth labels.
    pub label_prefix: String,
    /// Labelled inputs needed before accuracy enters a verdict.
    pub min_labelled: u64,
    /// Verdict thresholds.
    pub policy: ShadowPolicy,
}

/// The accumulated state a checkpoint saves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReplayState {
    /// Whole-window accumulator per candidate (`name@version`).
    pub totals: BTreeMap<String, Accumulator>,
    /// Start of the bucket being accumulated.
    pub bucket: Option<u32>,
    /// That bucket's accumulator per candidate.
    pub buckets: BTreeMap<String, Accumulator>,
    /// Live runs: the next Kafka offset to read per partition (the checkpoint's position in
    /// the topic, saved with the accumulators so a resumed run counts nothing twice).
    #[serde(default)]
    pub kafka_next: BTreeMap<i32, i64>,
}

/// A finished (or stopped) replay.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Job id.
    pub job_id: String,
    /// `name@version` of production.
    pub production: String,
    /// Replayed window.
    pub since: u32,
    /// End of the window (exclusive).
    pub until: u32,
    /// Events replayed (over all resumptions).
    pub processed: u64,
    /// Events replayed by this invocation, and how long it took.
    pub this_run: u64,
    /// Wall seconds of this invocation.
    pub wall_secs: f64,
    /// Per candidate `name@version`: the comparison over the whole window.
    pub candidates: Vec<(String, Summary)>,
}

impl RunReport {
    /// The report of a run of `job` that started at `started` with `start_processed` events
    /// already replayed by earlier runs.
    pub(crate) fn of(
        job: &ShadowRunRow,
        start_processed: u64,
        started: std::time::Instant,
        candidates: Vec<(String, Summary)>,
    ) -> Self {
        RunReport {
            job_id: job.job_id.clone(),
            production: job.production.clone(),
            since: job.since,
            until: job.until,
            processed: job.processed,
            this_run: job.processed - start_processed,
            wall_secs: started.elapsed().as_secs_f64(),
            candidates,
        }
    }
}

struct Slot {
    spec: ModelSpec,
    encoder: usize,
    head: LinearHead,
}

/// Production and candidates loaded, sharing encoders that live in the same directory.
pub struct Models {
    encoders: Vec<(PathBuf, SentenceEncoder)>,
    production: Slot,
    candidates: Vec<Slot>,
}

fn id(spec: &ModelSpec) -> String {
    format!("{}@{}", spec.name, spec.version)
}

impl Models {
    /// Loads production and the selected candidates of `model` onto `device` in `dtype`.
    pub fn load(
        registry: &Registry,
        model: &str,
        only: &[String],
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let prod = registry.production(model).ok_or_else(|| {
            Error::Config(format!(
                "no production version of model `{model}` in [[shadow.models]]"
            ))
        })?;
        let cands: Vec<&ModelSpec> = registry
            .candidates(model)
            .filter(|c| only.is_empty() || only.contains(&c.version))
            .collect();
        if cands.is_empty() {
            return Err(Error::Config(format!(
                "no candidate of model `{model}` to replay{}",
                if only.is_empty() {
                    String::new()
                } else {
                    format!(" (asked for {})", only.join(", "))
                }
            )));
        }
        let mut encoders: Vec<(PathBuf, SentenceEncoder)> = Vec::new();
        let mut slot = |spec: &ModelSpec| -> Result<Slot> {
            let encoder = match encoders.iter().position(|(p, _)| *p == spec.path) {
                Some(i) => i,
                None => {
                    let mut e = SentenceEncoder::load_with_dtype(&spec.path, device, dtype)?;
                    if let Some(b) = spec.batch_size {
                        e = e.with_batch_size(b);
                    }
                    encoders.push((spec.path.clone(), e));
                    encoders.len() - 1
                }
            };
            let h = spec.head.as_ref().ok_or_else(|| {
                Error::Config(format!(
                    "{} has no head: a shadow run compares labels, give it `head = {{ path, labels, kind }}`",
                    id(spec)
                ))
            })?;
            let head = LinearHead::load(&h.path, &h.labels, h.kind, device)?;
            if head.dim() != encoders[encoder].1.dim() {
                return Err(Error::InvalidFile {
                    path: h.path.clone(),
                    message: format!(
                        "head expects {}-dimensional embeddings, encoder gives {}",
                        head.dim(),
                        encoders[encoder].1.dim()
                    ),
                });
            }
            Ok(Slot {
                spec: spec.clone(),
                encoder,
                head,
            })
        };
        let production = slot(prod)?;
        let candidates = cands.into_iter().map(&mut slot).collect::<Result<_>>()?;
        Ok(Self {
            encoders,
            production,
            candidates,
        })
    }

    /// `name@version` of production.
    pub fn production_id(&self) -> String {
        id(&self.production.spec)
    }

    /// `name@version` of the candidates.
    pub fn candidate_ids(&self) -> Vec<String> {
        self.candidates.iter().map(|c| id(&c.spec)).collect()
    }
}

/// Per model on one page: predictions, embeddings and seconds spent (encoder + head).
struct PageOutputs {
    predictions: Vec<Prediction>,
    embeddings: Tensor,
    secs: f64,
}

fn run_page(models: &Models, texts: &[&str]) -> Result<(PageOutputs, Vec<PageOutputs>)> {
    let mut encoded: Vec<Option<(Tensor, f64)>> = vec![None; models.encoders.len()];
    let mut run = |slot: &Slot| -> Result<PageOutputs> {
        let (emb, enc_secs) = match &encoded[slot.encoder] {
            Some(e) => e.clone(),
            None => {
                let start = Instant::now();
                let e = models.encoders[slot.encoder].1.encode_tensor(texts)?;
                let r = (e, start.elapsed().as_secs_f64());
                encoded[slot.encoder] = Some(r.clone());
                r
            }
        };
        let start = Instant::now();
        let predictions = slot.head.predict(&emb)?;
        Ok(PageOutputs {
            predictions,
            embeddings: emb,
            secs: enc_secs + start.elapsed().as_secs_f64(),
        })
    };
    let prod = run(&models.production)?;
    let cands = models
        .candidates
        .iter()
        .map(&mut run)
        .collect::<Result<Vec<_>>>()?;
    Ok((prod, cands))
}

/// Row-wise cosine of two sets of unit vectors; None when the dimensions differ.
fn cosines(a: &Tensor, b: &Tensor) -> Result<Option<Vec<f32>>> {
    if a.dims() != b.dims() {
        return Ok(None);
    }
    Ok(Some((a * b)?.sum(1)?.to_vec1::<f32>()?))
}

pub(crate) fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

pub(crate) fn metric_row(
    job: &ShadowRunRow,
    candidate: &str,
    kind: &str,
    (start, end): (u32, u32),
    s: &Summary,
) -> ShadowMetricRow {
    let f = |x: f64| if x.is_finite() { x } else { 0.0 };
    ShadowMetricRow {
        job_id: job.job_id.clone(),
        model: job.model.clone(),
        production: job.production.clone(),
        candidate: candidate.to_string(),
        kind: kind.to_string(),
        bucket_start: start,
        bucket_end: end,
        n: s.n,
        agreement: f(s.agreement),
        replay_agreement: f(s.replay_agreement),
        score_delta_mean: f(s.score_delta_mean),
        score_delta_p05: f(s.score_delta_q[0]),
        score_delta_p50: f(s.score_delta_q[1]),
        score_delta_p95: f(s.score_delta_q[2]),
        cosine_mean: f(s.cosine_mean),
        cosine_p05: f(s.cosine_p05),
        top_shift_label: s.top_shift.0.clone(),
        top_shift: f(s.top_shift.1),
        labelled: s.labelled,
        prod_accuracy: f(s.accuracy.0),
        cand_accuracy: f(s.accuracy.1),
        accuracy_delta: f(s.accuracy_delta.delta),
        accuracy_delta_low: f(s.accuracy_delta.low),
        accuracy_delta_high: f(s.accuracy_delta.high),
        prod_f1: f(s.f1.0),
        cand_f1: f(s.f1.1),
        f1_delta: f(s.f1_delta.delta),
        f1_delta_low: f(s.f1_delta.low),
        f1_delta_high: f(s.f1_delta.high),
        prod_ms_per_input: f(s.ms_per_input.0),
        cand_ms_per_input: f(s.ms_per_input.1),
        cand_inputs_per_sec: f(s.cand_inputs_per_sec),
        verdict: s.verdict.clone(),
        reasons: serde_json::to_string(&s.reasons).unwrap_or_else(|_| "[]".into()),
        written_at: (now_ms() / 1000) as u32,
        llm: String::new(),
    }
}

/// A new job id: `shadow-<model>-<unix ms>`.
pub fn new_job_id(model: &str) -> String {
    format!("shadow-{model}-{}", now_ms())
}

/// Starts a new job row (status `running`, cursor at the window start).
pub fn new_job(opts: &ReplayOptions, models: &Models, job_id: &str) -> ShadowRunRow {
    ShadowRunRow {
        job_id: job_id.to_string(),
        model: opts.model.clone(),
        production: models.production_id(),
        candidates: models.candidate_ids().join(","),
        since: opts.since,
        until: opts.until,
        sample_rate: opts.sample_rate,
        filters: serde_json::to_string(&opts.filters).unwrap_or_else(|_| "{}".into()),
        status: "running".into(),
        cursor_ts: 0,
        cursor_event_id: String::new(),
        processed: 0,
        skipped: 0,
        started_at: (now_ms() / 1000) as u32,
        updated_ms: now_ms(),
        error: String::new(),
        state: String::new(),
    }
}

/// Progress callback: events done so far.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

/// The checkpointed state of `job`, with an accumulator for every candidate.
pub(crate) fn resume_state(job: &ShadowRunRow, cand_ids: &[String]) -> Result<ReplayState> {
    let mut state: ReplayState = if job.state.is_empty() {
        ReplayState::default()
    } else {
        serde_json::from_str(&job.state).map_err(|e| {
            Error::Config(format!(
                "job {} has an unreadable checkpoint ({e}); start a new run",
                job.job_id
            ))
        })?
    };
    for (i, c) in cand_ids.iter().enumerate() {
        let seed = 0x5EED ^ i as u64;
        state
            .totals
            .entry(c.clone())
            .or_insert_with(|| Accumulator::new(TOTAL_SAMPLE, seed));
    }
    Ok(state)
}

/// Runs production and every candidate on one page of events and adds the observations to
/// the whole-run and current-bucket accumulators (flushing a bucket when a later one starts).
pub(crate) async fn process_events(
    store: &Store,
    models: &Models,
    opts: &ReplayOptions,
    job: &ShadowRunRow,
    state: &mut ReplayState,
    events: &[source::ReplayEvent],
) -> Result<()> {
    let cand_ids = models.candidate_ids();
    let bucket_secs = opts.bucket_secs.max(1);
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let truth = source::truth(store, &opts.model, &opts.label_prefix, &ids).await?;
    let texts: Vec<&str> = events.iter().map(|e| e.input.as_str()).collect();
    let (prod, cands) = tokio::task::block_in_place(|| run_page(models, &texts))?;
    let cos: Vec<Option<Vec<f32>>> = cands
        .iter()
        .map(|c| cosines(&prod.embeddings, &c.embeddings))
        .collect::<Result<_>>()?;
    let n = events.len();
    for (ci, cid) in cand_ids.iter().enumerate() {
        if let Some(acc) = state.totals.get_mut(cid) {
            acc.add_time(prod.secs, cands[ci].secs, n as u64);
        }
    }
    for (row, event) in events.iter().enumerate() {
        let bucket = event.ts / bucket_secs * bucket_secs;
        // Only a later bucket closes the open one: a live stream's partitions interleave
        // slightly out of order, and a late event counts in the open bucket rather than
        // reopening (and overwriting) a flushed one.
        if state.bucket.is_some_and(|b| bucket > b) {
            flush_bucket(store, job, state, bucket_secs, opts).await?;
        }
        if state.bucket.is_none() {
            state.bucket = Some(bucket);
        }
        let p = &prod.predictions[row];
        for (ci, cid) in cand_ids.iter().enumerate() {
            let c = &cands[ci].predictions[row];
            let o = Observation {
                prod: (&p.label, p.score),
                cand: (&c.label, c.score),
                logged: &event.label,
                truth: truth.get(&event.event_id).map(String::as_str),
                cosine: cos[ci].as_ref().map(|v| f64::from(v[row])),
            };
            if let Some(acc) = state.totals.get_mut(cid) {
                acc.observe(&o);
            }
            state
                .buckets
                .entry(cid.clone())
                .or_insert_with(|| Accumulator::new(BUCKET_SAMPLE, 0xB0C ^ ci as u64))
                .observe(&o);
        }
    }
    Ok(())
}

/// Saves the checkpoint: the job row with the serialised state (latest `updated_ms` wins).
pub(crate) async fn checkpoint(
    store: &Store,
    job: &mut ShadowRunRow,
    state: &ReplayState,
) -> Result<()> {
    job.updated_ms = now_ms();
    job.state = serde_json::to_string(state)
        .map_err(|e| Error::Config(format!("cannot serialise the checkpoint: {e}")))?;
    store.insert(std::slice::from_ref(job)).await?;
    Ok(())
}

/// Ends a job: flushes the open bucket, stores the whole-run comparison per candidate and
/// marks the job done. Returns the per-candidate summaries.
pub(crate) async fn finish(
    store: &Store,
    opts: &ReplayOptions,
    job: &mut ShadowRunRow,
    state: &mut ReplayState,
) -> Result<Vec<(String, Summary)>> {
    flush_bucket(store, job, state, opts.bucket_secs.max(1), opts).await?;
    let mut summaries = Vec::new();
    let mut rows = Vec::new();
    for (cid, acc) in &state.totals {
        let s = acc.summary(&opts.policy, opts.min_labelled);
        rows.push(metric_row(job, cid, "total", (job.since, job.until), &s));
        summaries.push((cid.clone(), s));
    }
    store.insert(&rows).await?;
    job.status = "done".into();
    checkpoint(store, job, state).await?;
    Ok(summaries)
}

/// Stores what a live run has seen so far without closing anything: the open bucket's rows and
/// the whole-run rows (both replace earlier snapshots of the same bucket/total), and the job as
/// `stopped`, resumable. Returns the per-candidate summaries.
pub(crate) async fn snapshot(
    store: &Store,
    opts: &ReplayOptions,
    job: &mut ShadowRunRow,
    state: &ReplayState,
) -> Result<Vec<(String, Summary)>> {
    let mut rows = Vec::new();
    if let Some(start) = state.bucket {
        let end = start.saturating_add(opts.bucket_secs.max(1));
        for (cid, acc) in &state.buckets {
            let s = acc.summary(&opts.policy, opts.min_labelled);
            rows.push(metric_row(job, cid, "bucket", (start, end), &s));
        }
    }
    let mut summaries = Vec::new();
    for (cid, acc) in &state.totals {
        let s = acc.summary(&opts.policy, opts.min_labelled);
        rows.push(metric_row(job, cid, "total", (job.since, job.until), &s));
        summaries.push((cid.clone(), s));
    }
    store.insert(&rows).await?;
    job.status = "stopped".into();
    checkpoint(store, job, state).await?;
    Ok(summaries)
}

/// Runs (or resumes) `job` to the end of its window and returns the report. `stop_after_pages`
/// stops early after that many pages, leaving the job resumable (used by tests and `--pages`).
pub async fn run_job(
    store: &Store,
    models: &Models,
    opts: &ReplayOptions,
    mut job: ShadowRunRow,
    progress: Progress<'_>,
    stop_after_pages: Option<usize>,
) -> Result<RunReport> {
    let started = Instant::now();
    let mut state = resume_state(&job, &models.candidate_ids())?;
    let scope = Scope {
        model: &opts.model,
        since: opts.since,
        until: opts.until,
        sample_rate: opts.sample_rate,
        filters: &opts.filters,
    };
    let limit = opts.filters.limit.unwrap_or(u64::MAX);
    job.status = "running".into();
    job.updated_ms = now_ms();
    store.insert(std::slice::from_ref(&job)).await?;
    let start_processed = job.processed;
    let mut pages = 0usize;
    loop {
        if job.processed >= limit || stop_after_pages.is_some_and(|p| pages >= p) {
            break;
        }
        let want = (opts.page_size as u64).min(limit - job.processed) as usize;
        let events =
            source::page(store, &scope, (job.cursor_ts, &job.cursor_event_id), want).await?;
        if events.is_empty() {
            break;
        }
        process_events(store, models, opts, &job, &mut state, &events).await?;
        let n = events.len();
        if let Some(last) = events.last() {
            job.cursor_ts = last.ts;
            job.cursor_event_id = last.event_id.clone();
        }
        job.processed += n as u64;
        checkpoint(store, &mut job, &state).await?;
        progress(job.processed);
        pages += 1;
        if n < want {
            break;
        }
    }
    let finished = stop_after_pages.is_none_or(|p| pages < p) || job.processed >= limit;
    let summaries = if finished {
        finish(store, opts, &mut job, &mut state).await?
    } else {
        state
            .totals
            .iter()
            .map(|(cid, acc)| (cid.clone(), acc.summary(&opts.policy, opts.min_labelled)))
            .collect()
    };
    Ok(RunReport::of(&job, start_processed, started, summaries))
}

async fn flush_bucket(
    store: &Store,
    job: &ShadowRunRow,
    state: &mut ReplayState,
    bucket_secs: u32,
    opts: &ReplayOptions,
) -> Result<()> {
    let Some(start) = state.bucket.take() else {
        return Ok(());
    };
    let rows: Vec<ShadowMetricRow> = std::mem::take(&mut state.buckets)
        .iter()
        .map(|(cid, acc)| {
            let s = acc.summary(&opts.policy, opts.min_labelled);
            metric_row(
                job,
                cid,
                "bucket",
                (start, start.saturating_add(bucket_secs)),
                &s,
            )
        })
        .collect();
    if !rows.is_empty() {
        store.insert(&rows).await?;
    }
    Ok(())
}

/// `(column, cast)` of `shadow_runs`, in `ShadowRunRow` order (without `state`).
const RUN_FIELDS: &[(&str, &str)] = &[
    ("model", "toString"),
    ("production", "toString"),
    ("candidates", "toString"),
    ("since", "toUInt32"),
    ("until", "toUInt32"),
    ("sample_rate", "toFloat64"),
    ("filters", "toString"),
    ("status", "toString"),
    ("cursor_ts", "toUInt32"),
    ("cursor_event_id", "toString"),
    ("processed", "toUInt64"),
    ("skipped", "toUInt64"),
    ("started_at", "toUInt32"),
    ("updated_ms", "toUInt64"),
    ("error", "toString"),
];

/// The latest state per job: `argMax(…, updated_ms)` in a subquery whose aliases (`l_…`) cannot
/// capture the column names the aggregates read.
fn latest_runs_sql(store: &Store, filter: &str, with_state: bool, tail: &str) -> String {
    let inner: Vec<String> = RUN_FIELDS
        .iter()
        .map(|(c, _)| format!("argMax({c}, updated_ms) AS l_{c}"))
        .collect();
    let outer: Vec<String> = RUN_FIELDS
        .iter()
        .map(|(c, cast)| format!("{cast}(l_{c}) AS {c}"))
        .collect();
    let inner_state = if with_state {
        "argMax(state, updated_ms)"
    } else {
        "''"
    };
    format!(
        "SELECT toString(l_job_id) AS job_id, {outer}, toString(l_state) AS state
         FROM (SELECT job_id AS l_job_id, {inner}, {inner_state} AS l_state
               FROM {table} {filter} GROUP BY job_id) {tail}",
        outer = outer.join(", "),
        inner = inner.join(", "),
        table = store.table("shadow_runs"),
    )
}

/// The latest state of job `job_id` (with its checkpoint), or None.
pub async fn load_job(store: &Store, job_id: &str) -> Result<Option<ShadowRunRow>, StoreError> {
    let sql = latest_runs_sql(
        store,
        &format!("WHERE job_id = {}", sql_string(job_id)),
        true,
        "",
    );
    Ok(store.fetch::<ShadowRunRow>(&sql).await?.into_iter().next())
}

/// Every job's latest state (checkpoints left out), newest first.
pub async fn list_jobs(store: &Store, limit: u32) -> Result<Vec<ShadowRunRow>, StoreError> {
    let sql = latest_runs_sql(
        store,
        "",
        false,
        &format!("ORDER BY started_at DESC, job_id DESC LIMIT {limit}"),
    );
    store.fetch::<ShadowRunRow>(&sql).await
}

const METRIC_SELECT: &str = "toString(job_id) AS job_id, toString(model) AS model,
    toString(production) AS production, toString(candidate) AS candidate, toString(kind) AS kind,
    toUInt32(bucket_start) AS bucket_start, toUInt32(bucket_end) AS bucket_end, toUInt64(n) AS n,
    toFloat64(agreement) AS agreement, toFloat64(replay_agreement) AS replay_agreement,
    toFloat64(score_delta_mean) AS score_delta_mean, toFloat64(score_delta_p05) AS score_delta_p05,
    toFloat64(score_delta_p50) AS score_delta_p50, toFloat64(score_delta_p95) AS score_delta_p95,
    toFloat64(cosine_mean) AS cosine_mean, toFloat64(cosine_p05) AS cosine_p05,
    toString(top_shift_label) AS top_shift_label, toFloat64(top_shift) AS top_shift,
    toUInt64(labelled) AS labelled, toFloat64(prod_accuracy) AS prod_accuracy,
    toFloat64(cand_accuracy) AS cand_accuracy, toFloat64(accuracy_delta) AS accuracy_delta,
    toFloat64(accuracy_delta_low) AS accuracy_delta_low,
    toFloat64(accuracy_delta_high) AS accuracy_delta_high, toFloat64(prod_f1) AS prod_f1,
    toFloat64(cand_f1) AS cand_f1, toFloat64(f1_delta) AS f1_delta,
    toFloat64(f1_delta_low) AS f1_delta_low, toFloat64(f1_delta_high) AS f1_delta_high,
    toFloat64(prod_ms_per_input) AS prod_ms_per_input,
    toFloat64(cand_ms_per_input) AS cand_ms_per_input,
    toFloat64(cand_inputs_per_sec) AS cand_inputs_per_sec, toString(verdict) AS verdict,
    toString(reasons) AS reasons, toUInt32(written_at) AS written_at, toString(llm) AS llm";

/// Metric rows of a job (`kind` = `total` or `bucket`; None: both), de-duplicated (`FINAL`).
pub async fn job_metrics(
    store: &Store,
    job_id: &str,
    kind: Option<&str>,
) -> Result<Vec<ShadowMetricRow>, StoreError> {
    let kind = kind
        .map(|k| format!(" AND kind = {}", sql_string(k)))
        .unwrap_or_default();
    store
        .fetch::<ShadowMetricRow>(&format!(
            "SELECT {METRIC_SELECT} FROM {} FINAL WHERE job_id = {}{kind}
             ORDER BY kind DESC, candidate, bucket_start",
            store.table("shadow_metrics"),
            sql_string(job_id)
        ))
        .await
}

/// The latest `total` row per candidate of `model` (for trigger rules).
pub async fn latest_totals(store: &Store, model: &str) -> Result<Vec<ShadowMetricRow>, StoreError> {
    let rows = store
        .fetch::<ShadowMetricRow>(&format!(
            "SELECT {METRIC_SELECT} FROM {} FINAL WHERE model = {} AND kind = 'total'
             ORDER BY written_at DESC, job_id DESC",
            store.table("shadow_metrics"),
            sql_string(model)
        ))
        .await?;
    let mut seen = std::collections::BTreeSet::new();
    Ok(rows
        .into_iter()
        .filter(|r| seen.insert(r.candidate.clone()))
        .collect())
}
