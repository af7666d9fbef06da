//! Text monitors: `[[monitors]]` with `texts = ["input"]` (the prompt) and/or `"output"` (the
//! LLM gateway's response) judge a model's texts window after window.
//!
//! Per window and text column:
//! - a **sample** of at most `sample_size` (default [`DEFAULT_SAMPLE_SIZE`]) events per side,
//!   the ones with the smallest `cityHash64(event_id)` (`ORDER BY cityHash64(event_id),
//!   event_id LIMIT n`, ClickHouse 18.16 and chDB alike): deterministic, so a re-run window and
//!   a fixed reference read the same events every time;
//! - the sampled texts are **encoded** through [`TextEncoder`] (the binary passes the shadow
//!   runner's sentence encoder; this crate runs no model) and judged with Evidently's
//!   embedding drift method (`embedding_method`, default `distance`) — one `monitor_results`
//!   row with `column` = the text column (`input`) and `method` = `embedding:<method>`;
//! - the same texts' **descriptors** ([`crate::text::descriptors`]: length, words, …, and the
//!   out-of-vocabulary share against the encoder's vocabulary) are judged as numerical
//!   columns `input:chars`, `input:words`, … `input:oov_percent` with the monitor's numerical test;
//! - **examples** for the drift page: the reference and current texts nearest their side's
//!   mean embedding and the current texts farthest from the reference's ("most changed"),
//!   stored in `monitor_examples`.
//!
//! Embeddings are cached in process ([`TextMonitoring`]): an LRU keyed by (encoder, column,
//! event id), so a text is encoded once however many monitors and passes use it. The encoder
//! is loaded on first use (only when a text monitor runs) and logged once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use vigil_store::rows::MonitorExampleRow;
use vigil_store::{sql_string, Store};

use super::config::{MonitorConfig, Period};
use super::pushdown::{Reduction, Scope};
use super::{ColumnResult, MonitorError, Verdict};
use crate::cli::{EmbeddingArgs, EmbeddingMethodArg, TextEncoder};
use crate::drift::embedding::{embedding_drift, EmbeddingMethod, Matrix};
use crate::drift::{
    column_drift, ColumnDrift, ColumnKind, ColumnSample, NumericCounts, StattestOptions,
};

/// Texts sampled per side and window unless `sample_size` says otherwise: enough for
/// `distance` and `mmd` to separate a topic shift from sampling noise (tests/text_drift.rs:
/// 400 texts give 0.075 vs 0.27 for `distance`), small enough to encode in seconds on a CPU.
pub const DEFAULT_SAMPLE_SIZE: u64 = 500;
/// Largest `sample_size`: `mmd` evaluates (m + n)² kernel pairs.
pub const MAX_SAMPLE_SIZE: u64 = 20_000;
/// Embeddings kept by the in-process cache (384 floats each for MiniLM: ≈ 77 MB when full).
pub const DEFAULT_CACHE_CAPACITY: usize = 50_000;
/// The text columns an inference event has.
pub const TEXT_COLUMNS: [&str; 2] = ["input", "output"];
/// Examples stored per window, column and kind.
pub const EXAMPLES_PER_KIND: usize = 3;
/// Characters of an example text kept in `monitor_examples`.
pub const EXAMPLE_CHARS: usize = 400;
/// The example kinds, in the order the drift page shows them.
pub const EXAMPLE_KINDS: [&str; 3] = ["reference_central", "current_central", "most_changed"];

/// An encoder shared by the monitor schedule and the blocking threads that run it.
pub type SharedEncoder = Arc<dyn TextEncoder + Send + Sync>;
/// Loads the encoder named by a monitor's `encoder` key (`None`: the default model).
pub type EncoderLoader = Box<dyn Fn(Option<&str>) -> Result<SharedEncoder, String> + Send + Sync>;

/// The `column` names of a text monitor's descriptor rows, e.g. `input:chars`.
pub fn descriptor_columns(texts: &[String]) -> Vec<String> {
    texts
        .iter()
        .flat_map(|t| crate::text::descriptor_names().map(move |d| format!("{t}:{d}")))
        .collect()
}

/// Checks the text keys of a monitor (called by [`MonitorConfig::validate`]).
pub fn validate(m: &MonitorConfig) -> Result<(), MonitorError> {
    let err = |s: String| Err(MonitorError::Config(s));
    if m.texts.is_empty() {
        return Ok(());
    }
    for (i, t) in m.texts.iter().enumerate() {
        if !TEXT_COLUMNS.contains(&t.as_str()) {
            return err(format!(
                "texts: `{t}` is not a text column; use \"input\" (the prompt) or \"output\" (the response)"
            ));
        }
        if m.texts[..i].contains(t) {
            return err(format!("texts: `{t}` is listed twice"));
        }
        if m.columns.contains(t) {
            return err(format!(
                "`{t}` is in both `columns` and `texts`; a text column belongs in `texts` only"
            ));
        }
    }
    let n = m.sample_size();
    if !(2..=MAX_SAMPLE_SIZE).contains(&n) {
        return err(format!(
            "sample_size {n} must be between 2 and {MAX_SAMPLE_SIZE}"
        ));
    }
    embedding_method(m, n as usize)?;
    Ok(())
}

impl MonitorConfig {
    /// Texts sampled per side and window.
    pub fn sample_size(&self) -> u64 {
        self.sample_size.unwrap_or(DEFAULT_SAMPLE_SIZE)
    }
}

/// `--embedding-dist` → `embedding_dist`: the monitor's key for a `vigil drift` flag.
fn flags_to_keys(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find("--embedding-") {
        out.push_str(&rest[..i]);
        let flag = &rest[i + 2..];
        let end = flag
            .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
            .unwrap_or(flag.len());
        out.push_str(&flag[..end].replace('-', "_"));
        rest = &flag[end..];
    }
    out.push_str(rest);
    out
}

/// The monitor's embedding method, with Evidently's defaults for every option not given. The
/// options are parsed by the same code as `vigil drift --embedding-*`; the default method is
/// `distance` (Evidently's own default, `model`, is a coin toss on small windows: see
/// docs/analyzer.md, compatibility note 10).
pub fn embedding_method(
    m: &MonitorConfig,
    reference_rows: usize,
) -> Result<EmbeddingMethod, MonitorError> {
    let method = match m.embedding_method.as_deref().map(str::trim) {
        None | Some("") => EmbeddingMethodArg::Distance,
        Some(name) => EmbeddingMethodArg::from_str(name, true).map_err(|_| {
            MonitorError::Config(format!(
                "embedding_method `{name}`: use distance, ratio, mmd or model"
            ))
        })?,
    };
    let args = EmbeddingArgs {
        embedding_method: Some(method),
        embedding_dist: m.embedding_dist.clone(),
        embedding_threshold: m.embedding_threshold,
        embedding_bootstrap: m.embedding_bootstrap,
        embedding_quantile_probability: m.embedding_quantile_probability,
        embedding_pca_components: m.embedding_pca_components,
        embedding_component_stattest: m.embedding_component_stattest.clone(),
        embedding_component_stattest_threshold: m.embedding_component_stattest_threshold,
        ..EmbeddingArgs::default()
    };
    args.method(reference_rows)
        .map_err(|e| MonitorError::Config(flags_to_keys(&e.to_string())))
}

/// One sampled text.
#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
pub struct TextSample {
    pub event_id: String,
    pub text: String,
}

/// The sampled texts of `column` in `period`: at most `n` events with the smallest
/// `cityHash64(event_id)`, deduplicated (`FINAL`). `input` needs a non-empty prompt; `output`
/// takes every generation that finished or answered (an empty answer is a fact for the
/// `empty` descriptor).
pub async fn sample_texts(
    store: &Store,
    scope: &Scope<'_>,
    column: &str,
    period: Period,
    n: u64,
) -> Result<Vec<TextSample>, MonitorError> {
    let filter = match column {
        "output" => "(output != '' OR finish_reason != '')",
        _ => "input != ''",
    };
    let column_expr = if column == "output" {
        "output"
    } else {
        "input"
    };
    let mut scope_filter = format!("model = {}", sql_string(scope.model));
    if let Some(v) = scope.version {
        scope_filter.push_str(&format!(" AND version = {}", sql_string(v)));
    }
    let sql = format!(
        "SELECT toString(event_id) AS event_id, toString({column_expr}) AS text
         FROM {table} FINAL
         WHERE {scope_filter} AND ts >= toDateTime({from}) AND ts < toDateTime({to}) AND {filter}
         ORDER BY cityHash64(event_id), event_id
         LIMIT {n}",
        table = store.table("inference_events"),
        from = period.from,
        to = period.to,
    );
    Ok(store.fetch::<TextSample>(&sql).await?)
}

/// FNV-1a, 64 bits: a stable hash (the same in every process and release).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The reference texts of a training snapshot file (`reference = { file = "…" }`): the file's
/// column named like the text column (non-empty cells, trimmed); above `n` texts, the `n` rows
/// with the smallest hash of their row number, so every pass takes the same rows. A row's
/// cache key carries the file, the row and a hash of its text, so an edited file is encoded
/// afresh.
pub fn file_sample(
    snapshot: &super::snapshot::Snapshot,
    path: &str,
    column: &str,
    n: u64,
) -> Result<Vec<TextSample>, MonitorError> {
    let texts = snapshot.texts(column).ok_or_else(|| {
        MonitorError::Config(format!(
            "reference file {path} has no column `{column}`; a text monitor's snapshot needs a column named like each of its `texts`"
        ))
    })?;
    let mut rows: Vec<(u64, usize)> = (0..texts.len())
        .map(|i| (fnv1a(&(i as u64).to_le_bytes()), i))
        .collect();
    rows.sort_unstable();
    rows.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    rows.sort_unstable_by_key(|r| r.1);
    Ok(rows
        .into_iter()
        .map(|(_, i)| TextSample {
            event_id: format!("file:{path}#{i}:{:016x}", fnv1a(texts[i].as_bytes())),
            text: texts[i].clone(),
        })
        .collect())
}

/// How often the cache answered and how many texts were encoded (process lifetime).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub encoded: u64,
    pub cached: usize,
}

/// A least-recently-used map of embeddings.
struct Lru {
    capacity: usize,
    tick: u64,
    map: HashMap<String, (Arc<[f32]>, u64)>,
    order: BTreeMap<u64, String>,
}

impl Lru {
    fn new(capacity: usize) -> Lru {
        Lru {
            capacity: capacity.max(1),
            tick: 0,
            map: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    fn get(&mut self, key: &str) -> Option<Arc<[f32]>> {
        self.tick += 1;
        let tick = self.tick;
        let (v, t) = self.map.get_mut(key)?;
        self.order.remove(t);
        *t = tick;
        self.order.insert(tick, key.to_string());
        Some(v.clone())
    }

    fn insert(&mut self, key: String, value: Arc<[f32]>) {
        self.tick += 1;
        if let Some((_, t)) = self.map.insert(key.clone(), (value, self.tick)) {
            self.order.remove(&t);
        }
        self.order.insert(self.tick, key);
        while self.map.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&oldest);
        }
    }
}

/// What text monitors need from the process: the encoder (loaded on first use) and the
/// embedding cache. One per process, shared by every monitor and pass.
pub struct TextMonitoring {
    loader: Option<EncoderLoader>,
    encoders: Mutex<BTreeMap<String, SharedEncoder>>,
    cache: Mutex<Lru>,
    hits: AtomicU64,
    encoded: AtomicU64,
}

impl std::fmt::Debug for TextMonitoring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextMonitoring")
            .field("encoder", &self.loader.is_some())
            .field("stats", &self.stats())
            .finish()
    }
}

impl TextMonitoring {
    /// Text monitors load their encoder with `loader` (called at most once per `encoder` key).
    pub fn new(loader: EncoderLoader) -> TextMonitoring {
        TextMonitoring::with_capacity(Some(loader), DEFAULT_CACHE_CAPACITY)
    }

    /// No encoder: a text monitor fails with an error saying so (other monitors run).
    pub fn without_encoder() -> TextMonitoring {
        TextMonitoring::with_capacity(None, 1)
    }

    pub fn with_capacity(loader: Option<EncoderLoader>, capacity: usize) -> TextMonitoring {
        TextMonitoring {
            loader,
            encoders: Mutex::new(BTreeMap::new()),
            cache: Mutex::new(Lru::new(capacity)),
            hits: AtomicU64::new(0),
            encoded: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            encoded: self.encoded.load(Ordering::Relaxed),
            cached: self.cache.lock().map(|c| c.map.len()).unwrap_or(0),
        }
    }

    /// The encoder for a monitor's `encoder` key, loaded (and logged) on first use.
    fn encoder(&self, spec: Option<&str>) -> Result<(String, SharedEncoder), MonitorError> {
        let key = spec.unwrap_or("").to_string();
        let mut encoders = self
            .encoders
            .lock()
            .map_err(|_| MonitorError::Config("the encoder registry is poisoned".into()))?;
        if let Some(e) = encoders.get(&key) {
            return Ok((key, e.clone()));
        }
        let loader = self.loader.as_ref().ok_or_else(|| {
            MonitorError::Config(
                "text monitors need the sentence encoder, which `vigil analyze` and `vigil serve` load; this caller has none".into(),
            )
        })?;
        let e = loader(spec).map_err(|e| {
            MonitorError::Config(format!(
                "loading the sentence encoder {}for text monitors: {e} (install it with `bash scripts/models/fetch.sh`, or set `encoder` to a model directory)",
                spec.map(|s| format!("`{s}` ")).unwrap_or_default()
            ))
        })?;
        tracing::info!(encoder = %e.name(), "text monitors: sentence encoder loaded");
        encoders.insert(key.clone(), e.clone());
        Ok((key, e))
    }

    /// Embeddings of `samples`' texts, from the cache where it has them; the rest are encoded
    /// in one call on a blocking thread.
    async fn embed(
        &self,
        encoder_id: &str,
        encoder: &SharedEncoder,
        column: &str,
        samples: &[&TextSample],
    ) -> Result<Vec<Arc<[f32]>>, MonitorError> {
        let key = |s: &TextSample| format!("{encoder_id}\u{1f}{column}\u{1f}{}", s.event_id);
        let mut out: Vec<Option<Arc<[f32]>>> = Vec::with_capacity(samples.len());
        let mut missing: Vec<usize> = Vec::new();
        {
            let mut cache = self
                .cache
                .lock()
                .map_err(|_| MonitorError::Config("the embedding cache is poisoned".into()))?;
            for (i, s) in samples.iter().enumerate() {
                let hit = cache.get(&key(s));
                if hit.is_none() {
                    missing.push(i);
                }
                out.push(hit);
            }
        }
        self.hits
            .fetch_add((samples.len() - missing.len()) as u64, Ordering::Relaxed);
        if !missing.is_empty() {
            let texts: Vec<String> = missing.iter().map(|&i| samples[i].text.clone()).collect();
            let enc = encoder.clone();
            let name = encoder.name();
            let vectors = tokio::task::spawn_blocking(move || enc.encode(&texts))
                .await
                .map_err(|e| MonitorError::Config(format!("encoding texts of `{column}`: {e}")))?
                .map_err(|e| {
                    MonitorError::Config(format!("encoding texts of `{column}` with {name}: {e}"))
                })?;
            if vectors.len() != missing.len() {
                return Err(MonitorError::Config(format!(
                    "the encoder returned {} embeddings for {} texts",
                    vectors.len(),
                    missing.len()
                )));
            }
            self.encoded
                .fetch_add(missing.len() as u64, Ordering::Relaxed);
            let mut cache = self
                .cache
                .lock()
                .map_err(|_| MonitorError::Config("the embedding cache is poisoned".into()))?;
            for (&i, v) in missing.iter().zip(vectors) {
                let v: Arc<[f32]> = v.into();
                cache.insert(key(samples[i]), v.clone());
                out[i] = Some(v);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

/// One example text of a window (see [`EXAMPLE_KINDS`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextExample {
    pub column: String,
    pub kind: &'static str,
    pub rank: u16,
    pub event_id: String,
    pub text: String,
    pub distance: f64,
}

impl TextExample {
    pub fn to_row(&self, run: &super::MonitorRun) -> MonitorExampleRow {
        MonitorExampleRow {
            run_at: run.run_at,
            monitor: run.monitor.clone(),
            model: run.model.clone(),
            version: run.version.clone(),
            window_start: run.window_start,
            window_end: run.window_end,
            column: self.column.clone(),
            kind: self.kind.to_string(),
            rank: self.rank,
            event_id: self.event_id.clone(),
            text: self.text.clone(),
            distance: self.distance,
        }
    }
}

/// What the text columns of one window added to a run.
#[derive(Debug, Default)]
pub struct TextOutcome {
    pub columns: Vec<ColumnResult>,
    /// Judged descriptor columns (they count towards the dataset's drift share).
    pub judged: Vec<ColumnDrift>,
    /// Drift of each judged embedding row (counted in the drift share too).
    pub embedding_drift: Vec<bool>,
    pub examples: Vec<TextExample>,
}

fn to_matrix(vectors: &[Arc<[f32]>]) -> Result<Matrix, MonitorError> {
    let dim = vectors.first().map_or(0, |v| v.len());
    let mut data = Vec::with_capacity(vectors.len() * dim);
    for v in vectors {
        if v.len() != dim {
            return Err(MonitorError::Config(format!(
                "the encoder returned vectors of different lengths ({dim} and {})",
                v.len()
            )));
        }
        data.extend(v.iter().map(|&x| f64::from(x)));
    }
    Matrix::from_row_major(vectors.len(), dim, data)
        .map_err(|e| MonitorError::Config(e.to_string()))
}

fn centroid(m: &Matrix) -> Vec<f64> {
    m.column_means()
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(EXAMPLE_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// The `k` texts with the smallest (`nearest`) or largest distance to `to`, one per distinct
/// text (templated traffic repeats itself; repeats would crowd out the variety on-call needs).
fn pick(
    column: &str,
    kind: &'static str,
    samples: &[&TextSample],
    m: &Matrix,
    to: &[f64],
    nearest: bool,
) -> Vec<TextExample> {
    let mut d: Vec<(f64, usize)> = (0..m.rows()).map(|i| (distance(m.row(i), to), i)).collect();
    d.sort_by(|a, b| {
        let o = a.0.total_cmp(&b.0);
        if nearest { o } else { o.reverse() }
            .then(samples[a.1].event_id.cmp(&samples[b.1].event_id))
    });
    let mut out: Vec<TextExample> = Vec::new();
    for (dist, i) in d {
        if out.len() == EXAMPLES_PER_KIND {
            break;
        }
        let text = cut(&samples[i].text);
        if out.iter().any(|e| e.text == text) {
            continue;
        }
        out.push(TextExample {
            column: column.to_string(),
            kind,
            rank: out.len() as u16 + 1,
            event_id: samples[i].event_id.clone(),
            text,
            distance: dist,
        });
    }
    out
}

/// Judges every text column of `monitor` on `[current)` against `[reference)`.
#[allow(clippy::too_many_arguments)]
pub async fn evaluate_texts(
    store: &Store,
    monitor: &MonitorConfig,
    scope: &Scope<'_>,
    reference: Period,
    current: Period,
    stattests: &StattestOptions,
    snapshot: Option<&super::snapshot::Snapshot>,
    text: &TextMonitoring,
) -> Result<TextOutcome, MonitorError> {
    let mut out = TextOutcome::default();
    if monitor.texts.is_empty() {
        return Ok(out);
    }
    let n = monitor.sample_size();
    let min_rows = monitor.min_rows.clamp(2, n);
    let reduction = Reduction::Sampled { size: n };
    let mut options = crate::text::TextOptions::default();
    let mut encoder: Option<(String, SharedEncoder)> = None;
    for column in &monitor.texts {
        let ref_s = match (snapshot, &monitor.reference.file) {
            (Some(snap), Some(path)) => file_sample(snap, path, column, n)?,
            _ => sample_texts(store, scope, column, reference, n).await?,
        };
        let cur_s = sample_texts(store, scope, column, current, n).await?;
        // A window that is judged needs the encoder anyway (embeddings); its vocabulary gives
        // the out-of-vocabulary descriptor.
        if encoder.is_none() && ref_s.len() as u64 >= min_rows && cur_s.len() as u64 >= min_rows {
            let loaded = text.encoder(monitor.encoder.as_deref())?;
            options.vocabulary = loaded.1.vocabulary();
            encoder = Some(loaded);
        }
        // Descriptors: every sampled text, empty ones included.
        let describe = |s: &[TextSample]| -> Vec<crate::text::TextDescriptors> {
            s.iter()
                .map(|t| crate::text::describe(&t.text, &options))
                .collect()
        };
        let (ref_d, cur_d) = (describe(&ref_s), describe(&cur_s));
        for (name, integer, f) in crate::text::descriptors(&options).iter() {
            let col = format!("{column}:{name}");
            let (r, c) = (ref_d.len() as u64, cur_d.len() as u64);
            let chosen_default = stattests.resolve(&col, ColumnKind::Numerical);
            if r < min_rows || c < min_rows {
                out.columns.push(ColumnResult {
                    column: col,
                    verdict: Verdict::InsufficientData,
                    method: chosen_default
                        .test
                        .map(|m| m.name().to_string())
                        .unwrap_or_default(),
                    score: 0.0,
                    threshold: chosen_default.threshold.unwrap_or(0.0),
                    reference_rows: r,
                    current_rows: c,
                    reduction,
                });
                continue;
            }
            let counts = |d: &[crate::text::TextDescriptors]| {
                let v: Vec<f64> = d.iter().map(f).collect();
                NumericCounts::from_values(&v)
                    .map(|n| ColumnSample::Numerical(n.with_integer_type(*integer)))
            };
            let stat = |e| super::statistic(monitor, &col, e);
            let (rs, cs) = (counts(&ref_d).map_err(stat)?, counts(&cur_d).map_err(stat)?);
            let chosen = monitor.column_stattest(stattests, &col, ColumnKind::Numerical)?;
            let d = column_drift(&col, &rs, &cs, chosen.test, chosen.threshold).map_err(stat)?;
            out.columns.push(ColumnResult {
                column: col.clone(),
                verdict: if d.drift { Verdict::Drift } else { Verdict::Ok },
                method: d.method.name().to_string(),
                score: d.score,
                threshold: d.threshold,
                reference_rows: r,
                current_rows: c,
                reduction,
            });
            out.judged.push(d);
        }
        // Embeddings: the non-empty texts.
        let ref_t: Vec<&TextSample> = ref_s.iter().filter(|t| !t.text.trim().is_empty()).collect();
        let cur_t: Vec<&TextSample> = cur_s.iter().filter(|t| !t.text.trim().is_empty()).collect();
        let (r, c) = (ref_t.len() as u64, cur_t.len() as u64);
        let method_name = |m: &str| format!("embedding:{m}");
        if r < min_rows || c < min_rows {
            let m = embedding_method(monitor, r as usize)?;
            out.columns.push(ColumnResult {
                column: column.clone(),
                verdict: Verdict::InsufficientData,
                method: method_name(m.name()),
                score: 0.0,
                threshold: 0.0,
                reference_rows: r,
                current_rows: c,
                reduction,
            });
            continue;
        }
        if encoder.is_none() {
            encoder = Some(text.encoder(monitor.encoder.as_deref())?);
        }
        let Some((enc_id, enc)) = &encoder else {
            continue;
        };
        let rm = to_matrix(&text.embed(enc_id, enc, column, &ref_t).await?)?;
        let cm = to_matrix(&text.embed(enc_id, enc, column, &cur_t).await?)?;
        let method = embedding_method(monitor, rm.rows())?;
        let result = {
            let (rm, cm, method) = (rm.clone(), cm.clone(), method.clone());
            // `mmd` and `model` take seconds on large samples: off the async threads.
            tokio::task::spawn_blocking(move || embedding_drift(&rm, &cm, &method))
                .await
                .map_err(|e| MonitorError::Config(format!("embedding drift of `{column}`: {e}")))?
                .map_err(|e| super::statistic(monitor, column, e))?
        };
        out.columns.push(ColumnResult {
            column: column.clone(),
            verdict: if result.drifted {
                Verdict::Drift
            } else {
                Verdict::Ok
            },
            method: method_name(result.method),
            score: result.value,
            threshold: result.threshold,
            reference_rows: r,
            current_rows: c,
            reduction,
        });
        out.embedding_drift.push(result.drifted);
        let (rc, cc) = (centroid(&rm), centroid(&cm));
        out.examples
            .extend(pick(column, EXAMPLE_KINDS[0], &ref_t, &rm, &rc, true));
        out.examples
            .extend(pick(column, EXAMPLE_KINDS[1], &cur_t, &cm, &cc, true));
        out.examples
            .extend(pick(column, EXAMPLE_KINDS[2], &cur_t, &cm, &rc, false));
    }
    Ok(out)
}

/// Example texts of `model`'s text monitors for the newest window ending at or before
/// `until` (optionally one `column`), ordered by monitor, column, kind and rank. Empty when
/// the table does not exist yet (a store migrated before migration 10).
pub async fn latest_examples(
    store: &Store,
    model: &str,
    column: Option<&str>,
    until: u32,
) -> Result<Vec<MonitorExampleRow>, vigil_store::StoreError> {
    #[derive(clickhouse::Row, Deserialize)]
    struct N {
        n: u64,
    }
    let exists = store
        .fetch::<N>(&format!(
            "SELECT toUInt64(count()) AS n FROM system.tables WHERE database = {} AND name = 'monitor_examples'",
            sql_string(store.database())
        ))
        .await?;
    if exists.first().is_none_or(|r| r.n == 0) {
        return Ok(Vec::new());
    }
    let col = column
        .map(|c| format!(" AND `column` = {}", sql_string(c)))
        .unwrap_or_default();
    let t = store.table("monitor_examples");
    store
        .fetch::<MonitorExampleRow>(&format!(
            "SELECT toUInt32(run_at) AS run_at, toString(monitor) AS monitor,
                    toString(model) AS model, toString(version) AS version,
                    toUInt32(window_start) AS window_start, toUInt32(window_end) AS window_end,
                    toString(`column`) AS `column`, toString(kind) AS kind,
                    toUInt16(rank) AS rank, toString(event_id) AS event_id,
                    toString(text) AS text, toFloat64(distance) AS distance
             FROM {t} FINAL
             WHERE model = {m}{col} AND window_end = (
                 SELECT max(window_end) FROM {t}
                 WHERE model = {m}{col} AND window_end <= toDateTime({until}))
             ORDER BY monitor, `column`, kind, rank",
            m = sql_string(model),
        ))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_monitor(extra: &str) -> Result<MonitorConfig, String> {
        let texts = if extra.contains("\"texts\"") {
            ""
        } else {
            r#","texts":["input"]"#
        };
        serde_json::from_str(&format!(
            r#"{{"name":"prompts","model":"assistant","window":"1h",
                "reference":{{"trailing":"24h"}}{texts}{extra}}}"#
        ))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_text_monitor_validates_its_keys() {
        let m = text_monitor("").unwrap();
        m.validate().unwrap();
        assert_eq!(m.sample_size(), DEFAULT_SAMPLE_SIZE);
        assert_eq!(embedding_method(&m, 500).unwrap().name(), "distance");
        let m = text_monitor(r#","embedding_method":"mmd","embedding_bootstrap":true"#).unwrap();
        m.validate().unwrap();
        assert_eq!(embedding_method(&m, 500).unwrap().name(), "mmd");
        let e = |extra: &str| {
            text_monitor(extra)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        let msg = e(r#","embedding_method":"ratio","embedding_dist":"cosine""#);
        assert!(
            msg.contains("embedding_dist does not apply to embedding_method ratio")
                && msg.contains("monitor `prompts`"),
            "{msg}"
        );
        assert!(e(r#","embedding_method":"magic""#).contains("distance, ratio, mmd or model"));
        assert!(e(r#","texts":["prompt"]"#).contains("\"input\""));
        assert!(e(r#","texts":["input","input"]"#).contains("twice"));
        assert!(e(r#","sample_size":1"#).contains("sample_size"));
        // per-column keys may name descriptor columns
        text_monitor(r#","per_column_stattest":{"input:chars":"psi"}"#)
            .unwrap()
            .validate()
            .unwrap();
        // text keys without texts
        let m: MonitorConfig = serde_json::from_str(
            r#"{"name":"m","model":"churn","columns":["plan"],"window":"1h",
                "reference":{"trailing":"24h"},"sample_size":100}"#,
        )
        .unwrap();
        assert!(m.validate().unwrap_err().to_string().contains("texts"));
    }

    #[test]
    fn a_snapshot_file_gives_a_fixed_sample_of_its_text_column() {
        let dir = std::env::temp_dir().join(format!("vigil-text-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("train.csv");
        let mut csv = String::from("input,other\n");
        for i in 0..50 {
            csv.push_str(&format!("\"prompt number {i}, please\",x\n"));
        }
        std::fs::write(&path, csv).unwrap();
        let snap = super::super::snapshot::Snapshot::read(&path).unwrap();
        let p = path.display().to_string();
        let a = file_sample(&snap, &p, "input", 10).unwrap();
        let b = file_sample(&snap, &p, "input", 10).unwrap();
        assert_eq!(a.len(), 10);
        assert_eq!(
            a.iter().map(|s| &s.event_id).collect::<Vec<_>>(),
            b.iter().map(|s| &s.event_id).collect::<Vec<_>>()
        );
        assert!(a[0].text.starts_with("prompt number"));
        assert_eq!(file_sample(&snap, &p, "input", 500).unwrap().len(), 50);
        let e = file_sample(&snap, &p, "output", 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no column `output`"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn flags_become_keys() {
        assert_eq!(
            flags_to_keys(
                "--embedding-component-stattest does not apply to --embedding-method mmd"
            ),
            "embedding_component_stattest does not apply to embedding_method mmd"
        );
    }

    #[test]
    fn the_lru_evicts_the_least_recently_used() {
        let mut l = Lru::new(2);
        let v = |x: f32| -> Arc<[f32]> { vec![x].into() };
        l.insert("a".into(), v(1.0));
        l.insert("b".into(), v(2.0));
        assert!(l.get("a").is_some()); // a is now newer than b
        l.insert("c".into(), v(3.0));
        assert!(l.get("b").is_none());
        assert!(l.get("a").is_some() && l.get("c").is_some());
        assert_eq!(l.map.len(), 2);
        assert_eq!(l.order.len(), 2);
    }

    #[test]
    fn examples_are_nearest_and_farthest_distinct_texts() {
        let samples: Vec<TextSample> = ["a", "a", "b", "c", "d"]
            .iter()
            .enumerate()
            .map(|(i, t)| TextSample {
                event_id: format!("e{i}"),
                text: t.to_string(),
            })
            .collect();
        let refs: Vec<&TextSample> = samples.iter().collect();
        let m = Matrix::from_rows(&[
            vec![0.0, 0.0],
            vec![0.0, 0.0],
            vec![1.0, 0.0],
            vec![2.0, 0.0],
            vec![5.0, 0.0],
        ])
        .unwrap();
        let near = pick("input", "current_central", &refs, &m, &[0.0, 0.0], true);
        let texts: Vec<&str> = near.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c"]);
        assert_eq!(near[0].rank, 1);
        let far = pick("input", "most_changed", &refs, &m, &[0.0, 0.0], false);
        assert_eq!(far[0].text, "d");
        assert_eq!(far[0].distance, 5.0);
        assert_eq!(
            cut(&"x".repeat(EXAMPLE_CHARS + 5)).chars().count(),
            EXAMPLE_CHARS + 1
        );
    }
}
