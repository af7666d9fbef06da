//! `vigil bench pages`: how long every dashboard page takes on a store of N events — the first
//! request after the server starts, R requests after it, and requests while the rollup
//! compactor runs — so anyone can reproduce the page table of docs/benchmarks.md.
//!
//! Every step is the command users run, in its own process, in this order:
//! 1. `vigil bench ingest --source http --events N --no-raw` loads the events (the bench's
//!    streaming generator through HTTP ingest, writer and store: bounded memory for any N);
//! 2. `vigil rollup` runs the first compaction;
//! 3. `vigil sql` reads the events' time span (for the backfill trigger below);
//! 4. `vigil serve --no-kafka` serves the pages, with its own compactor every 30 s.
//!
//! The server is a child process, not started in this one, because that is what users get: a
//! fresh process whose first requests meet a cold store and the compactor's first pass (`vigil
//! serve` starts it before it listens), with the bench's own CPU and memory outside it. On the
//! embedded store it must be another process anyway: chDB holds one storage path per process
//! and never lets go of it, so the loading and compacting processes have to end before the
//! server can open the store.
//!
//! "While the compactor runs": the bench makes the server's compactor work, then times pages
//! (round-robin) until the pass ends, and keeps the requests that overlapped it (the pass's
//! start and end come from the server's log line `rollup pass done … ms=`):
//! - `backfill`: one late event in every minute of the stored span (at most the last 24 h),
//!   through HTTP ingest: every minute and every unit hour is recomputed — the pass that follows
//!   a large load or a restart right after one;
//! - `live`: one more minute of events at the load's rate (1 000/s), just closed: the pass that
//!   runs every 30 s under live traffic.
//!
//! A page counts as answered only with status 200 and the page itself: the HTML frame with the
//! page's `<title>`, its navigation entry marked current, no error banner, complete to
//! `</html>`; anything else is an error, reported and not timed. The server logs every store
//! query with its time (`vigil_store=debug`, which includes the wait for the embedded store's
//! one connection); the report names the slowest queries of each page from that log.
//!
//! Nothing here asserts a timing.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Seek};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};
use vigil_collector::simulate::TrafficSimulator;

/// A compaction pass the bench makes the server's compactor run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compaction {
    /// One late event in every minute of the stored span (≤ 24 h): everything is recomputed.
    Backfill,
    /// A minute of fresh events (1 000/s), as under live traffic.
    Live,
    /// No timing during compaction.
    None,
}

#[derive(clap::Args, Debug)]
pub struct BenchPagesArgs {
    /// Events to load (the generator of `vigil bench ingest`, 1 ms apart, ending now).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Do not load: measure the store named by `--store` as it is (e.g. one kept by `--keep`).
    #[arg(long)]
    pub no_load: bool,
    /// Keep the temporary directory (store, config, server log) and print how to reuse it.
    #[arg(long)]
    pub keep: bool,
    /// Requests per page and range after the first one.
    #[arg(long, default_value_t = 20)]
    pub requests: usize,
    /// Time ranges (`range=` of the pages; `default` sends none, which the pages read as 24h).
    #[arg(long, value_delimiter = ',', default_value = "24h")]
    pub ranges: Vec<String>,
    /// Compaction passes to time the pages during (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Compaction::Backfill])]
    pub compaction: Vec<Compaction>,
    /// Passes of each kind.
    #[arg(long, default_value_t = 2)]
    pub compaction_rounds: usize,
    /// Longest wait for one page.
    #[arg(long, default_value = "600s", value_parser = crate::bench_llm::parse_duration)]
    pub timeout: Duration,
    /// `[http] workers` of the server (default: `vigil serve`'s).
    #[arg(long)]
    pub workers: Option<usize>,
    #[arg(long, value_enum, default_value_t = crate::Format::Table)]
    pub format: crate::Format,
}

// ---------------------------------------------------------------------------------------------
// Pages

/// A page of the dashboards' router.
#[derive(Clone, Debug)]
struct Page {
    /// Path under `/ui/` (`""`: the overview).
    path: &'static str,
    /// Its navigation label.
    label: &'static str,
}

impl Page {
    fn name(&self) -> &'static str {
        if self.path.is_empty() {
            "overview"
        } else {
            self.path
        }
    }
}

/// Every page the router serves: the navigation of the page frame.
fn pages() -> Vec<Page> {
    vigil_dashboards::html::NAV
        .iter()
        .map(|(path, label)| Page { path, label })
        .collect()
}

/// The `<title>` a page's builder gives it (escaped as in the HTML), for the pages known here;
/// a page added to the router later is still checked for a title, its navigation entry and
/// the absence of an error banner.
fn expected_title(path: &str) -> Option<&'static str> {
    Some(match path {
        "" => "Overview",
        "roi" => "ROI",
        "drift" => "Drift &amp; quality",
        "fairness" => "Fairness",
        "experiments" => "Experiments",
        "llm" => "LLM",
        "alerts" => "Alerts",
        "shadow" => "Shadow runs &amp; retraining",
        _ => return None,
    })
}

/// Whether an answer is the page itself; `Err` says what it is instead.
fn check_page(page: &Page, status: u16, content_type: &str, body: &str) -> Result<(), String> {
    let snippet = || {
        let text = body
            .find("id=\"page-error\">")
            .map(|i| &body[i + 16..])
            .unwrap_or(body);
        let end = text.find('<').unwrap_or(text.len()).min(200);
        text[..end].trim().to_string()
    };
    if status != 200 {
        return Err(format!("status {status}: {}", snippet()));
    }
    if !content_type.starts_with("text/html") {
        return Err(format!("content type `{content_type}`, not HTML"));
    }
    if !body.trim_end().ends_with("</html>") {
        return Err(format!("incomplete HTML ({} bytes)", body.len()));
    }
    if body.contains("id=\"page-error\"") {
        return Err(format!("error page: {}", snippet()));
    }
    let title = match expected_title(page.path) {
        Some(t) => format!("<title>{t} · vigil</title>"),
        None => " · vigil</title>".to_string(),
    };
    if !body.contains(&title) {
        return Err(format!("no `{title}` in the page"));
    }
    let current = format!(
        "aria-current=\"page\">{}</a>",
        vigil_dashboards::html::esc(page.label)
    );
    if !body.contains(&current) {
        return Err(format!(
            "the navigation does not mark `{}` as the current page",
            page.label
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Samples and the report

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    First,
    /// Index into `ranges`.
    Steady(usize),
    /// Round-robin (first range) while the compactor catches up after the start, or around
    /// a triggered pass: counted where they overlap a pass.
    Busy,
}

#[derive(Clone, Debug)]
struct Sample {
    page: usize,
    phase: Phase,
    start: SystemTime,
    end: SystemTime,
    ms: f64,
    error: Option<String>,
}

#[derive(serde::Serialize, Clone, Debug, Default)]
struct Stats {
    /// Answered pages timed.
    n: usize,
    p50_ms: f64,
    p95_ms: f64,
    max_ms: f64,
    errors: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

/// Nearest-rank percentiles of the answered samples.
fn stats<'a>(samples: impl Iterator<Item = &'a Sample>) -> Stats {
    let mut ms = Vec::new();
    let mut s = Stats::default();
    for x in samples {
        match &x.error {
            None => ms.push(x.ms),
            Some(e) => {
                s.errors += 1;
                s.first_error.get_or_insert_with(|| e.clone());
            }
        }
    }
    if ms.is_empty() {
        return s;
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    s.n = ms.len();
    s.p50_ms = at(0.50);
    s.p95_ms = at(0.95);
    s.max_ms = ms[ms.len() - 1];
    s
}

#[derive(serde::Serialize, Debug)]
struct SlowQuery {
    /// Times it ran during this page's requests of the phase.
    n: usize,
    mean_ms: f64,
    max_ms: f64,
    /// The start of the statement as the server logs it.
    sql: String,
}

#[derive(serde::Serialize, Debug)]
struct PageReport {
    page: String,
    url_path: String,
    /// The first request after the server answered /healthz (pages in this order, first range).
    first: Stats,
    /// Per range: the requests after the first ones.
    steady: BTreeMap<String, Stats>,
    /// Requests (first range, after the first) that overlapped a compactor pass, by what
    /// caused the pass: `startup` (the server's first passes, which redo a load ingested in the
    /// last 2 minutes), `backfill`, `live` (the pass after the bench's events, and the ones that
    /// redo them while they are within the 2-minute ingest overlap).
    during_compaction: BTreeMap<String, Stats>,
    /// The queries of the first request, slowest first (time includes waiting for the store).
    first_queries: Vec<SlowQuery>,
    /// The costliest queries of the steady requests of the first range (by total time).
    slow_queries: Vec<SlowQuery>,
    /// Same, during compaction passes.
    slow_queries_during_compaction: Vec<SlowQuery>,
}

#[derive(serde::Serialize, Debug, Default)]
struct PassReport {
    kind: String,
    minutes: u64,
    unit_hours_recomputed: u64,
    unit_hours_extended: u64,
    unit_days_recomputed: u64,
    unit_days_extended: u64,
    ms: u64,
    /// Seconds after /healthz it ended.
    ended_after_ready_secs: f64,
    /// Page requests that overlapped it.
    requests: usize,
}

#[derive(serde::Serialize, Debug, Default)]
struct LoadReport {
    events: usize,
    secs: f64,
    events_per_sec: f64,
}

#[derive(serde::Serialize, Debug, Default)]
struct Report {
    store: String,
    /// Rows in `inference_events` (before the compaction triggers added theirs) and their span.
    stored_rows: u64,
    span_secs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    load: Option<LoadReport>,
    rollup_secs: f64,
    rollup_output: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    store_bytes: Option<u64>,
    http_workers: usize,
    requests_per_page: usize,
    ranges: Vec<String>,
    load_average_start: String,
    load_average_end: String,
    /// From spawning `vigil serve` to its first 200 on /healthz.
    server_ready_secs: f64,
    /// When the compactor first found nothing to recompute, counted from /healthz (the
    /// steady requests start then).
    #[serde(skip_serializing_if = "Option::is_none")]
    settled_after_ready_secs: Option<f64>,
    /// Every compactor pass that recomputed minutes while the server ran.
    passes: Vec<PassReport>,
    pages: Vec<PageReport>,
    /// Pages whose p95 (steady, any range, or during compaction) or first request exceeds 300 ms.
    over_300ms: Vec<String>,
    notes: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Child processes

fn exe() -> Result<PathBuf> {
    std::env::current_exe().context("path of the vigil binary")
}

/// `vigil --config CONFIG ARGS…` with only the bench's settings.
fn vigil(config: &Path) -> Result<tokio::process::Command> {
    let mut c = tokio::process::Command::new(exe()?);
    c.arg("--config").arg(config);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("VIGIL_")
            && k != "VIGIL_CHDB_LIB"
            && k != "VIGIL_CACHE_DIR"
        {
            c.env_remove(k);
        }
    }
    c.env("VIGIL_LOG", "warn").stdin(Stdio::null());
    Ok(c)
}

/// Runs a child to its end and returns its standard output; its standard error goes to ours
/// (its progress, and why it failed). Not `Command::output`: tokio's pipes both streams
/// whatever was set, and a failed load then said only "exit status: 1".
async fn run_child(mut c: tokio::process::Command, what: &str) -> Result<String> {
    let out = c
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {what}"))?
        .wait_with_output()
        .await
        .with_context(|| format!("waiting for {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({})", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The running `vigil serve`; SIGTERM (then SIGKILL) when stopped or dropped.
struct Server {
    child: tokio::process::Child,
    base: String,
    log: PathBuf,
}

impl Server {
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            if tokio::time::timeout(Duration::from_secs(60), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| dir_bytes(&e.path())).sum())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The server's log (JSON lines)

struct LogLine {
    at: SystemTime,
    message: String,
    fields: serde_json::Value,
}

fn parse_log_line(line: &str) -> Option<LogLine> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let at = chrono::DateTime::parse_from_rfc3339(v.get("timestamp")?.as_str()?).ok()?;
    let at =
        SystemTime::UNIX_EPOCH + Duration::from_micros(u64::try_from(at.timestamp_micros()).ok()?);
    let fields = v.get("fields")?.clone();
    let message = fields.get("message")?.as_str()?.to_string();
    Some(LogLine {
        at,
        message,
        fields,
    })
}

/// Reads the lines appended to the log since the last call.
struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogTail {
    fn new(path: &Path) -> LogTail {
        LogTail {
            path: path.to_path_buf(),
            offset: 0,
            partial: String::new(),
        }
    }

    fn poll(&mut self) -> Vec<LogLine> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        if f.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = String::new();
        let Ok(n) = f.read_to_string(&mut buf) else {
            return Vec::new();
        };
        self.offset += n as u64;
        self.partial.push_str(&buf);
        let Some(last) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let complete: String = self.partial.drain(..=last).collect();
        // Only the compactor's lines are kept (the log holds every store query too).
        complete
            .lines()
            .filter(|l| l.contains("rollup") || l.contains("SELECT DISTINCT"))
            .filter_map(parse_log_line)
            .filter(|l| l.message == PASS_DONE || l.message == PASS_STARTED || is_dirty_query(l))
            .collect()
    }
}

const PASS_DONE: &str = "rollup pass done";
const PASS_STARTED: &str = "rollup: recomputing minutes";

fn pass_of(line: &LogLine, kind: &str, ready: SystemTime) -> PassReport {
    let u = |k: &str| line.fields.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    PassReport {
        kind: kind.to_string(),
        minutes: u("minutes"),
        unit_hours_recomputed: u("unit_hours_recomputed"),
        unit_hours_extended: u("unit_hours_extended"),
        unit_days_recomputed: u("unit_days_recomputed"),
        unit_days_extended: u("unit_days_extended"),
        ms: u("ms"),
        ended_after_ready_secs: secs_between(ready, line.at),
        requests: 0,
    }
}

/// A pass that recomputed minutes, as the log shows it.
struct Pass {
    start: SystemTime,
    end: SystemTime,
    report: PassReport,
}

/// The server's compactor, followed through its log.
struct Compactor {
    tail: LogTail,
    /// Its lines, in order: dirty-minute queries, pass starts and ends.
    lines: Vec<LogLine>,
    passes: Vec<Pass>,
    /// What passes ending from now on are attributed to.
    cause: String,
    ready: SystemTime,
}

impl Compactor {
    fn poll(&mut self) {
        for l in self.tail.poll() {
            if l.message == PASS_DONE {
                self.passes.push(Pass {
                    start: pass_start(&l),
                    end: l.at,
                    report: pass_of(&l, &self.cause, self.ready),
                });
            }
            self.lines.push(l);
        }
    }

    /// When a pass that started after `after` found no minute to recompute (its dirty-minute
    /// query is not followed by "recomputing minutes"), if one did.
    fn idle_after(&self, after: SystemTime) -> Option<SystemTime> {
        let now = SystemTime::now();
        self.lines.iter().enumerate().find_map(|(i, l)| {
            if !is_dirty_query(l) || l.at <= after {
                return None;
            }
            match self.lines.get(i + 1) {
                Some(next) if next.message == PASS_STARTED => None,
                Some(_) => Some(l.at),
                // "recomputing minutes" follows the query at once when there is work.
                None => (secs_between(l.at, now) > 2.0).then_some(l.at),
            }
        })
    }

    /// The first pass that started at or after `t`.
    fn pass_started_after(&self, t: SystemTime) -> Option<&Pass> {
        self.passes
            .iter()
            .find(|p| p.start + Duration::from_millis(20) >= t)
    }
}

/// The compactor's query for dirty minutes (`vigil_store::rollup::compact`): its log line
/// means the pass found its work (or none).
fn is_dirty_query(line: &LogLine) -> bool {
    line.message == "query"
        && line
            .fields
            .get("sql")
            .and_then(|s| s.as_str())
            .is_some_and(|s| s.starts_with("SELECT DISTINCT") && s.contains(" AS minute FROM"))
}

// ---------------------------------------------------------------------------------------------
// Requests

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn url(&self, page: &Page, range: &str) -> String {
        match range {
            "default" => format!("{}/ui/{}", self.base, page.path),
            r => format!("{}/ui/{}?range={r}", self.base, page.path),
        }
    }

    async fn get(&self, pages: &[Page], page: usize, range: &str, phase: Phase) -> Sample {
        let p = &pages[page];
        let start = SystemTime::now();
        let started = Instant::now();
        let result = async {
            let resp = self
                .http
                .get(self.url(p, range))
                .send()
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = resp.status().as_u16();
            let ct = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = resp
                .text()
                .await
                .map_err(|e| format!("reading the page failed: {e}"))?;
            check_page(p, status, &ct, &body)
        }
        .await;
        Sample {
            page,
            phase,
            start,
            end: SystemTime::now(),
            ms: started.elapsed().as_secs_f64() * 1000.0,
            error: result.err(),
        }
    }

    /// Posts NDJSON events; 429/503 are retried.
    async fn ingest(&self, body: String) -> Result<()> {
        let url = format!("{}/v1/events", self.base);
        for _ in 0..600 {
            let resp = self.http.post(&url).body(body.clone()).send().await?;
            match resp.status().as_u16() {
                200 => return Ok(()),
                429 | 503 => tokio::time::sleep(Duration::from_millis(100)).await,
                s => bail!(
                    "ingest answered {s}: {}",
                    resp.text().await.unwrap_or_default()
                ),
            }
        }
        bail!("ingest kept answering 429/503 for a minute")
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The events that make the compactor work (see the module docs), as NDJSON bodies of at most
/// 5 000 events.
fn trigger_events(kind: Compaction, span: (u64, u64), round: usize) -> Vec<String> {
    let now = unix(SystemTime::now());
    let run = format!("benchpages{}-{round}", now);
    let mut sim = TrafficSimulator::new(7 + round as u64, &run);
    let ts: Vec<i64> = match kind {
        Compaction::Backfill => {
            // Closed minutes only: the compactor leaves the last 30 s raw.
            // (A span that ended less than 90 s ago still gets its first minute, compacted
            // once it closes.)
            let lo = span.0 / 60 * 60;
            let hi = (span.1.min(now.saturating_sub(90)) / 60 * 60).max(lo);
            let lo = lo.max(hi.saturating_sub(86_400));
            (lo..=hi)
                .step_by(60)
                .map(|m| (m as i64) * 1000 + 30_000)
                .collect()
        }
        Compaction::Live => {
            let end = (now.saturating_sub(30) as i64) * 1000;
            (0..60_000).map(|i| end - 60_000 + i).collect()
        }
        Compaction::None => Vec::new(),
    };
    ts.chunks(5000)
        .map(|c| {
            let mut body = String::with_capacity(c.len() * 330);
            for t in c {
                body.push_str(&sim.inference(*t).json);
                body.push('\n');
            }
            body
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The run

pub async fn run(
    section: &crate::config::StoreSection,
    store_override: Option<&str>,
    args: BenchPagesArgs,
) -> Result<()> {
    if !args.no_load && args.events == 0 {
        bail!("--events must be at least 1 (or --no-load with --store)");
    }
    if args.no_load && store_override.is_none() {
        bail!("--no-load measures an existing store: name it with --store (e.g. the chdb:// path a --keep run printed)");
    }
    if args.ranges.is_empty() {
        bail!("--ranges needs at least one range");
    }
    let dir = std::env::temp_dir().join(format!("vigil-bench-pages-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = match store_override {
        Some(s) => s.to_owned(),
        None => format!("chdb://{}", dir.join("data").display()),
    };
    // A cluster's settings travel with the store (the loader, compactor and server all need them).
    let mut cluster = String::new();
    if let Some(name) = &section.cluster {
        cluster.push_str(&format!(
            "cluster = {}\n",
            toml::Value::String(name.clone())
        ));
        if let Some(q) = section.insert_quorum {
            cluster.push_str(&format!("insert_quorum = {q}\n"));
        }
        if let Some(ms) = section.insert_quorum_timeout_ms {
            cluster.push_str(&format!("insert_quorum_timeout_ms = {ms}\n"));
        }
    }
    let result = bench(&dir, &store, &cluster, &args).await;
    let keep_dir = args.keep || result.is_err();
    if keep_dir {
        eprintln!("kept {} (config, server log, store)", dir.display());
        if store_override.is_none() && result.is_ok() {
            eprintln!("measure this store again: vigil --store {store} bench pages --no-load");
        }
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let report = result?;
    match args.format {
        crate::Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        crate::Format::Table => print!("{}", render(&report)),
    }
    Ok(())
}

async fn bench(dir: &Path, store: &str, cluster: &str, args: &BenchPagesArgs) -> Result<Report> {
    let port = free_port()?;
    let workers = args
        .workers
        .unwrap_or_else(|| vigil_collector::config::HttpConfig::default().workers);
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = {}\n{cluster}\n[http]\nbind = \"127.0.0.1:{port}\"\nworkers = {workers}\n",
            toml::Value::String(store.to_string())
        ),
    )?;
    let mut report = Report {
        store: store.to_string(),
        http_workers: workers,
        requests_per_page: args.requests,
        ranges: args.ranges.clone(),
        load_average_start: load_average(),
        ..Report::default()
    };

    // 1. Load.
    if !args.no_load {
        eprintln!(
            "loading {} events: vigil bench ingest --source http --no-raw",
            args.events
        );
        let mut c = vigil(&config)?;
        c.args([
            "bench", "ingest", "--source", "http", "--no-raw", "--events",
        ])
        .arg(args.events.to_string());
        let out = run_child(c, "vigil bench ingest").await?;
        let v: serde_json::Value = serde_json::from_str(&out)
            .with_context(|| format!("vigil bench ingest printed no report: {out}"))?;
        let f = |k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
        report.load = Some(LoadReport {
            events: args.events,
            secs: f("end_to_end_secs"),
            events_per_sec: f("end_to_end_events_per_sec"),
        });
    }

    // 2. The first compaction, as `vigil rollup` does it.
    eprintln!("compacting: vigil rollup");
    let started = Instant::now();
    report.rollup_output = run_child(
        {
            let mut c = vigil(&config)?;
            c.arg("rollup");
            c
        },
        "vigil rollup",
    )
    .await?
    .trim()
    .to_string();
    report.rollup_secs = started.elapsed().as_secs_f64();

    // 3. What the store holds: rows and their span (the backfill trigger covers it).
    let url: vigil_store::StoreUrl = store.parse()?;
    let db = match &url {
        vigil_store::StoreUrl::Server { database, .. }
        | vigil_store::StoreUrl::Embedded { database, .. } => database.clone(),
    };
    let sql = format!(
        "SELECT count(), toUInt32(min(ts)), toUInt32(max(ts)) FROM `{}`.inference_events",
        db.replace('`', "\\`")
    );
    let out = run_child(
        {
            let mut c = vigil(&config)?;
            c.args(["sql", &sql, "--output", "TabSeparated"]);
            c
        },
        "vigil sql",
    )
    .await?;
    let nums: Vec<u64> = out
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [rows, lo, hi] = nums[..] else {
        bail!("unexpected answer to `{sql}`: {out}");
    };
    if rows == 0 {
        bail!("the store holds no inference events: load some (drop --no-load)");
    }
    report.stored_rows = rows;
    report.span_secs = hi.saturating_sub(lo);
    if let vigil_store::StoreUrl::Embedded { path, .. } = &url {
        report.store_bytes = Some(dir_bytes(path));
    }

    // 4. The server.
    let log = dir.join("serve.log");
    let mut c = vigil(&config)?;
    c.args(["--log-format", "json", "serve", "--no-kafka"])
        .env(
            "VIGIL_LOG",
            "info,vigil_store=debug,librdkafka=warn,rdkafka=warn,actix_server=warn",
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true);
    eprintln!("starting vigil serve --no-kafka");
    let spawned = (Instant::now(), SystemTime::now());
    let child = c.spawn().context("starting vigil serve")?;
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
    };
    let measured = measure(&server, spawned, (lo, hi), args, &mut report).await;
    let tail = server.log_tail();
    server.stop().await;
    report.load_average_end = load_average();
    let samples = match measured {
        Ok(s) => s,
        Err(e) => bail!("{e:#}\nserver log (last lines):\n{tail}"),
    };
    attribute_queries(&dir.join("serve.log"), &mut report, &samples)?;
    Ok(report)
}

/// Everything measured against the running server; samples go into `report`.
async fn measure(
    server: &Server,
    spawned: (Instant, SystemTime),
    span: (u64, u64),
    args: &BenchPagesArgs,
    report: &mut Report,
) -> Result<Vec<Sample>> {
    let pages = pages();
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(args.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        base: server.base.clone(),
    };
    // Ready: /healthz answers (the store is open and migrated, the compactor has started).
    let ready = loop {
        if spawned.0.elapsed() > Duration::from_secs(600) {
            bail!("vigil serve did not answer /healthz within 10 minutes");
        }
        if let Ok(r) = client
            .http
            .get(format!("{}/healthz", client.base))
            .send()
            .await
        {
            if r.status().is_success() {
                break SystemTime::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    report.server_ready_secs = spawned.0.elapsed().as_secs_f64();
    let mut compactor = Compactor {
        tail: LogTail::new(&server.log),
        lines: Vec::new(),
        passes: Vec::new(),
        cause: "startup".into(),
        ready,
    };
    let first_range = args.ranges[0].clone();
    let mut samples: Vec<Sample> = Vec::new();
    let mut next = 0usize;
    let deadline = |secs: u64| Instant::now() + Duration::from_secs(secs);

    // The first request of every page, in navigation order.
    eprintln!("first requests");
    for i in 0..pages.len() {
        samples.push(client.get(&pages, i, &first_range, Phase::First).await);
    }

    // Until the compactor has caught up (after a load, every pass within the 2-minute ingest
    // overlap recomputes what was loaded), pages round-robin.
    eprintln!("pages until the compactor finds nothing to recompute");
    let until = deadline(1800);
    loop {
        compactor.poll();
        if let Some(at) = compactor.idle_after(spawned.1) {
            report.settled_after_ready_secs = Some(secs_between(ready, at));
            break;
        }
        if Instant::now() > until {
            report
                .notes
                .push("the compactor still recomputed minutes 30 minutes after the start".into());
            break;
        }
        samples.push(
            client
                .get(&pages, next % pages.len(), &first_range, Phase::Busy)
                .await,
        );
        next += 1;
    }

    // Steady: R rounds over every page, per range.
    for (ri, range) in args.ranges.iter().enumerate() {
        eprintln!("{} requests per page, range {range}", args.requests);
        for _ in 0..args.requests {
            for i in 0..pages.len() {
                samples.push(client.get(&pages, i, range, Phase::Steady(ri)).await);
            }
        }
    }

    // Compaction passes the bench causes; pages round-robin until each pass ends, and
    // before the next one, until the compactor has caught up again.
    let kinds: Vec<Compaction> = args
        .compaction
        .iter()
        .copied()
        .filter(|k| *k != Compaction::None)
        .collect();
    let mut last_pass_end: Option<SystemTime> = None;
    for kind in &kinds {
        let name = format!("{kind:?}").to_lowercase();
        for round in 0..args.compaction_rounds {
            if let Some(after) = last_pass_end {
                eprintln!("pages until the compactor finds nothing to recompute");
                let until = deadline(1800);
                loop {
                    compactor.poll();
                    if compactor.idle_after(after).is_some() {
                        break;
                    }
                    if Instant::now() > until {
                        bail!("the compactor still recomputed minutes 30 minutes after the last {name} pass");
                    }
                    samples.push(
                        client
                            .get(&pages, next % pages.len(), &first_range, Phase::Busy)
                            .await,
                    );
                    next += 1;
                }
            }
            eprintln!(
                "{name} compaction {}/{}: its events, then pages until its pass ends",
                round + 1,
                args.compaction_rounds
            );
            compactor.cause = name.clone();
            for body in trigger_events(*kind, span, round) {
                client.ingest(body).await?;
            }
            let sent = SystemTime::now();
            let until = deadline(1800);
            loop {
                compactor.poll();
                if let Some(p) = compactor.pass_started_after(sent) {
                    last_pass_end = Some(p.end);
                    break;
                }
                if Instant::now() > until {
                    bail!("no compactor pass within 30 minutes of the {name} events");
                }
                samples.push(
                    client
                        .get(&pages, next % pages.len(), &first_range, Phase::Busy)
                        .await,
                );
                next += 1;
            }
        }
    }
    compactor.poll();

    // Which requests overlapped which pass.
    let mut during: Vec<Option<String>> = vec![None; samples.len()];
    for p in &mut compactor.passes {
        for (i, s) in samples.iter().enumerate() {
            if s.start <= p.end && s.end >= p.start {
                p.report.requests += 1;
                if s.phase == Phase::Busy || s.phase == Phase::Steady(0) {
                    during[i].get_or_insert_with(|| p.report.kind.clone());
                }
            }
        }
    }
    let mut causes: Vec<String> = Vec::new();
    for p in &compactor.passes {
        if !causes.contains(&p.report.kind) {
            causes.push(p.report.kind.clone());
        }
    }
    for (i, p) in pages.iter().enumerate() {
        let of = |ph: Phase| samples.iter().filter(move |s| s.page == i && s.phase == ph);
        report.pages.push(PageReport {
            page: p.name().to_string(),
            url_path: format!("/ui/{}", p.path),
            first: stats(of(Phase::First)),
            steady: args
                .ranges
                .iter()
                .enumerate()
                .map(|(ri, r)| (r.clone(), stats(of(Phase::Steady(ri)))))
                .collect(),
            during_compaction: causes
                .iter()
                .map(|c| {
                    let hit = samples
                        .iter()
                        .zip(&during)
                        .filter(|(s, d)| s.page == i && d.as_deref() == Some(c.as_str()))
                        .map(|(s, _)| s);
                    (c.clone(), stats(hit))
                })
                .collect(),
            first_queries: Vec::new(),
            slow_queries: Vec::new(),
            slow_queries_during_compaction: Vec::new(),
        });
    }
    for p in &report.pages {
        let worst = [p.first.max_ms]
            .into_iter()
            .chain(p.steady.values().map(|s| s.p95_ms))
            .chain(p.during_compaction.values().map(|s| s.p95_ms))
            .fold(0.0, f64::max);
        if worst > 300.0 {
            report.over_300ms.push(p.page.clone());
        }
    }
    report.passes = compactor.passes.into_iter().map(|p| p.report).collect();
    // Phase::Busy samples outside passes are not reported; mark the ones inside for the
    // query attribution.
    for (s, d) in samples.iter_mut().zip(&during) {
        if s.phase == Phase::Busy && d.is_none() {
            s.page = usize::MAX;
        }
    }
    Ok(samples)
}

fn pass_start(done: &LogLine) -> SystemTime {
    let ms = done.fields.get("ms").and_then(|v| v.as_u64()).unwrap_or(0);
    done.at - Duration::from_millis(ms)
}

fn secs_between(a: SystemTime, b: SystemTime) -> f64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

// ---------------------------------------------------------------------------------------------
// Which queries made each page slow (the server's query log)

/// Queries the compactor runs itself (`vigil_store::rollup`); the pages share only the
/// watermark query with it.
fn compactor_sql(sql: &str) -> bool {
    (sql.starts_with("SELECT DISTINCT")
        && (sql.contains(" AS minute FROM") || sql.contains(" AS period FROM")))
        || sql.starts_with("SELECT toUInt32(max(covered_until)) AS until")
        || sql.starts_with("SELECT toUInt32(hour) AS hour, toUInt32(max(covered_until))")
}

#[derive(Default)]
struct Agg {
    n: usize,
    sum: f64,
    max: f64,
}

fn top(m: BTreeMap<String, Agg>, k: usize) -> Vec<SlowQuery> {
    let mut v: Vec<SlowQuery> = m
        .into_iter()
        .map(|(sql, a)| SlowQuery {
            n: a.n,
            mean_ms: a.sum / a.n.max(1) as f64,
            max_ms: a.max,
            sql,
        })
        .collect();
    // By total time: what costs the page most over its requests (a query that ran once while
    // the page waited for the compactor does not outrank one that runs every time).
    v.sort_by(|a, b| (b.mean_ms * b.n as f64).total_cmp(&(a.mean_ms * a.n as f64)));
    v.truncate(k);
    v
}

/// Attributes every logged store query to the page request it ran during (requests are
/// sequential) and keeps the costliest per page and phase.
fn attribute_queries(log: &Path, report: &mut Report, samples: &[Sample]) -> Result<()> {
    let mut order: Vec<&Sample> = samples.iter().collect();
    order.sort_by_key(|s| s.start);
    // (page, 0 first / 1 steady first range / 2 compaction) → sql → times
    let mut per: BTreeMap<(usize, u8), BTreeMap<String, Agg>> = BTreeMap::new();
    let f = std::fs::File::open(log).with_context(|| format!("reading {}", log.display()))?;
    for line in std::io::BufReader::new(f).lines() {
        let line = line?;
        if !line.contains("\"query\"") {
            continue;
        }
        let Some(l) = parse_log_line(&line) else {
            continue;
        };
        if l.message != "query" {
            continue;
        }
        let ms = l.fields.get("ms").and_then(|v| v.as_f64()).unwrap_or(0.0);
        let sql = l
            .fields
            .get("sql")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let at = order.partition_point(|s| s.start <= l.at);
        let Some(s) = at.checked_sub(1).map(|i| order[i]) else {
            continue;
        };
        if l.at > s.end || s.page == usize::MAX {
            continue;
        }
        let phase = match s.phase {
            Phase::First => 0,
            Phase::Steady(0) => 1,
            Phase::Steady(_) => continue,
            Phase::Busy => 2,
        };
        let sql = if compactor_sql(&sql) {
            format!("(compactor) {sql}")
        } else {
            sql
        };
        let a = per
            .entry((s.page, phase))
            .or_default()
            .entry(sql)
            .or_default();
        a.n += 1;
        a.sum += ms;
        a.max = a.max.max(ms);
    }
    for (i, p) in report.pages.iter_mut().enumerate() {
        p.first_queries = top(per.remove(&(i, 0)).unwrap_or_default(), 5);
        p.slow_queries = top(per.remove(&(i, 1)).unwrap_or_default(), 3);
        p.slow_queries_during_compaction = top(per.remove(&(i, 2)).unwrap_or_default(), 3);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Table

fn fmt_ms(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

fn cells(s: &Stats, with_n: bool) -> Vec<String> {
    let mut v = Vec::new();
    if with_n {
        v.push(s.n.to_string());
    }
    if s.n == 0 {
        v.extend(["–".to_string(), "–".to_string(), "–".to_string()]);
    } else {
        v.extend([fmt_ms(s.p50_ms), fmt_ms(s.p95_ms), fmt_ms(s.max_ms)]);
    }
    v
}

fn render(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "vigil bench pages — store {}", r.store);
    if let Some(l) = &r.load {
        let _ = writeln!(
            out,
            "load: {} events in {:.1} s ({:.0} events/s, HTTP ingest)",
            l.events, l.secs, l.events_per_sec
        );
    }
    let _ = writeln!(
        out,
        "store: {} inference rows over {:.1} h{}; `vigil rollup` {:.1} s: {}",
        r.stored_rows,
        r.span_secs as f64 / 3600.0,
        r.store_bytes
            .map(|b| format!(", {:.0} MiB on disk", b as f64 / 1048576.0))
            .unwrap_or_default(),
        r.rollup_secs,
        r.rollup_output
    );
    let _ = writeln!(
        out,
        "server: vigil serve --no-kafka, {} HTTP workers, /healthz after {:.1} s; load average {} → {}",
        r.http_workers, r.server_ready_secs, r.load_average_start, r.load_average_end
    );
    match r.settled_after_ready_secs {
        Some(t) => {
            let _ = writeln!(
                out,
                "compactor: first pass with nothing to recompute {t:.1} s after /healthz (steady requests start then)"
            );
        }
        None => {
            let _ = writeln!(out, "compactor: did not settle (see notes)");
        }
    }
    for p in &r.passes {
        let _ = writeln!(
            out,
            "  pass ({}): {} minutes, unit hours {} recomputed / {} extended, unit days {} / {}, {:.1} s, ended {:.1} s after /healthz, {} page request(s) during it",
            p.kind,
            p.minutes,
            p.unit_hours_recomputed,
            p.unit_hours_extended,
            p.unit_days_recomputed,
            p.unit_days_extended,
            p.ms as f64 / 1000.0,
            p.ended_after_ready_secs,
            p.requests
        );
    }
    let _ = writeln!(out);
    // Columns.
    let mut head = vec!["page".to_string(), "first".to_string()];
    for range in &r.ranges {
        for c in ["p50", "p95", "max"] {
            head.push(format!("{range} {c}"));
        }
    }
    let kinds: Vec<String> = r
        .pages
        .first()
        .map(|p| p.during_compaction.keys().cloned().collect())
        .unwrap_or_default();
    for k in &kinds {
        for c in ["n", "p50", "p95", "max"] {
            head.push(format!("{k} {c}"));
        }
    }
    head.push("errors".into());
    let mut rows = vec![head];
    for p in &r.pages {
        let mut row = vec![p.page.clone()];
        row.push(if p.first.n == 1 {
            fmt_ms(p.first.max_ms)
        } else {
            "error".into()
        });
        for range in &r.ranges {
            row.extend(cells(&p.steady[range], false));
        }
        for k in &kinds {
            row.extend(cells(&p.during_compaction[k], true));
        }
        let errors = p.first.errors
            + p.steady.values().map(|s| s.errors).sum::<usize>()
            + p.during_compaction
                .values()
                .map(|s| s.errors)
                .sum::<usize>();
        row.push(errors.to_string());
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c == 0 {
                    format!("{v:<w$}", w = widths[c])
                } else {
                    format!("{v:>w$}", w = widths[c])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "over 300 ms (first request, a p95, or during compaction): {}",
        if r.over_300ms.is_empty() {
            "none".to_string()
        } else {
            r.over_300ms.join(", ")
        }
    );
    for p in &r.pages {
        let errs: Vec<&String> = std::iter::once(&p.first)
            .chain(p.steady.values())
            .chain(p.during_compaction.values())
            .filter_map(|s| s.first_error.as_ref())
            .collect();
        if let Some(e) = errs.first() {
            let _ = writeln!(out, "{} errors, e.g.: {e}", p.page);
        }
    }
    let _ = writeln!(
        out,
        "\ncostliest store queries per page (total time; as logged by the server, waiting for the store included):"
    );
    let short = |s: &str| s.chars().take(110).collect::<String>();
    for p in &r.pages {
        let _ = writeln!(out, "{}:", p.page);
        for (what, list, k) in [
            ("first", &p.first_queries, 2),
            ("steady", &p.slow_queries, 2),
            ("compaction", &p.slow_queries_during_compaction, 1),
        ] {
            for q in list.iter().take(k) {
                let _ = writeln!(
                    out,
                    "  {what:<10} {:>9} mean, {:>9} max, ×{:<3} {}",
                    fmt_ms(q.mean_ms),
                    fmt_ms(q.max_ms),
                    q.n,
                    short(&q.sql)
                );
            }
        }
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(path: &'static str) -> Page {
        pages().into_iter().find(|p| p.path == path).unwrap()
    }

    #[test]
    fn every_page_of_the_router_has_its_title_here() {
        for p in pages() {
            assert!(
                expected_title(p.path).is_some(),
                "no title for /ui/{}",
                p.path
            );
        }
    }

    #[test]
    fn only_the_page_itself_passes() {
        let roi = page("roi");
        let good = "<!doctype html><html><head><title>ROI · vigil</title></head><body><nav>\
                    <a href=\"/ui/roi?range=24h\" aria-current=\"page\">ROI</a></nav></body></html>";
        assert_eq!(
            check_page(&roi, 200, "text/html; charset=utf-8", good),
            Ok(())
        );
        assert!(check_page(&roi, 503, "text/html", good)
            .unwrap_err()
            .starts_with("status 503"));
        assert!(check_page(&roi, 200, "application/json", good).is_err());
        assert!(check_page(&roi, 200, "text/html", "").is_err());
        assert!(check_page(&roi, 200, "text/html", &good[..good.len() - 7]).is_err());
        // Another page, or the frame of an error page, is not this page.
        assert!(check_page(&page("drift"), 200, "text/html", good).is_err());
        let error = good.replace(
            "</nav>",
            "</nav><p class=\"banner error\" id=\"page-error\">store down</p>",
        );
        assert_eq!(
            check_page(&roi, 200, "text/html", &error),
            Err("error page: store down".into())
        );
        let drift = "<html><title>Drift &amp; quality · vigil</title>\
                     <a aria-current=\"page\">Drift &amp; quality</a></html>";
        assert_eq!(check_page(&page("drift"), 200, "text/html", drift), Ok(()));
    }

    #[test]
    fn percentiles_leave_errors_out() {
        let t = SystemTime::UNIX_EPOCH;
        let s = |ms: f64, error: Option<&str>| Sample {
            page: 0,
            phase: Phase::First,
            start: t,
            end: t,
            ms,
            error: error.map(str::to_string),
        };
        let mut v: Vec<Sample> = (1..=20).map(|i| s(i as f64, None)).collect();
        v.push(s(5000.0, Some("status 503")));
        let st = stats(v.iter());
        assert_eq!((st.n, st.errors), (20, 1));
        assert_eq!((st.p50_ms, st.p95_ms, st.max_ms), (10.0, 19.0, 20.0));
        assert_eq!(st.first_error.as_deref(), Some("status 503"));
    }

    #[test]
    fn log_lines_of_the_json_format_parse() {
        let l = parse_log_line(r#"{"timestamp":"2026-12-03T07:50:01.123456Z","level":"INFO","fields":{"message":"rollup pass done","minutes":3,"ms":1500},"target":"vigil::rollup_task"}"#).unwrap();
        assert_eq!(l.message, PASS_DONE);
        assert_eq!(pass_of(&l, "x", l.at).ms, 1500);
        let end = unix(l.at);
        assert_eq!(unix(pass_start(&l)), end - 2);
    }

    #[test]
    fn backfill_puts_one_event_in_every_closed_minute() {
        let now = unix(SystemTime::now());
        let bodies = trigger_events(Compaction::Backfill, (now - 3600, now), 0);
        let n: usize = bodies.iter().map(|b| b.lines().count()).sum();
        assert!((58..=61).contains(&n), "{n}");
        let fresh = trigger_events(Compaction::Backfill, (now - 2, now), 0);
        assert_eq!(fresh.iter().map(|b| b.lines().count()).sum::<usize>(), 1);
        assert_eq!(trigger_events(Compaction::Live, (0, 0), 0).len(), 12);
    }
}
