//! `vigil bench llm`: what the OpenAI-compatible gateway routes cost a streamed generation,
//! measured side by side against calling the backend directly, in the same run.
//!
//! The gateway is the real `vigil serve --no-kafka` in a child process (this binary, a generated
//! `vigil.toml`, an embedded chDB store in a temporary directory unless `--store` names one,
//! an ingest token, and an A/B experiment over two versions, so every request is routed,
//! exposed and recorded as in production). Running it as a child keeps the client's and the
//! backends' memory and CPU out of the gateway's RSS and CPU figures, which are read from
//! `/proc/PID/status` and `/proc/PID/stat`. The backends run in this process:
//! `vigil_experimenter::simulated_llm` (vLLM flavour) and, for the per-chunk measurement, a
//! minimal OpenAI-compatible route whose every content chunk is the time it was sent, served by
//! one actix server with TCP_NODELAY like vLLM's (`--backend-nagle` leaves Nagle's algorithm on,
//! as `simulated_llm::spawn` does: small chunks then wait for delayed ACKs, up to 40 ms).
//!
//! Phases (all by default, `--phases` picks):
//! - `ttft`: time to first token (first content chunk read by the client) over `--requests`
//!   sequential streams per path, direct and through alternating (so load drift hits both).
//! - `chunk`: per-chunk latency = receipt time − send time stamped in the chunk by the backend,
//!   same clock (both ends are in this process). The difference between the two paths is the
//!   delay the gateway adds to each chunk. (Inter-chunk gaps cannot measure that: a constant
//!   per-chunk delay cancels out of every gap; they are reported from the `ttft` streams as
//!   jitter only.)
//! - `streams`: `--streams` concurrent streams through the gateway for `--duration` (clients
//!   open a new stream when one ends), the gateway's RSS sampled every `--sample-every`.
//! - `throughput`: chunks/s through a gateway with `[http] workers = 1` pinned to one CPU
//!   (`taskset`), backends emitting without delay; also the gateway's CPU time per chunk.
//!
//! Nothing here asserts a timing.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use vigil_experimenter::simulated_llm::{self, SimulatedModel, UsageFlavour};

const TOKEN: &str = "bench-ingest-secret";

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Ttft,
    Chunk,
    Streams,
    Throughput,
}

#[derive(clap::Args, Debug)]
pub struct BenchLlmArgs {
    /// Phases to run (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Phase::Ttft, Phase::Chunk, Phase::Streams, Phase::Throughput])]
    pub phases: Vec<Phase>,
    /// ttft: sequential streamed requests per path.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// chunk: sequential streams per path whose chunks carry their send time.
    #[arg(long, default_value_t = 200)]
    pub chunk_requests: usize,
    /// ttft/chunk: backend delay before the first content chunk, ms.
    #[arg(long, default_value_t = 20)]
    pub first_token_ms: u64,
    /// ttft/chunk: backend delay between content chunks, ms.
    #[arg(long, default_value_t = 5)]
    pub chunk_ms: u64,
    /// ttft/chunk: content chunks (tokens) per stream.
    #[arg(long, default_value_t = 64)]
    pub tokens: u32,
    /// streams: concurrent streams through the gateway.
    #[arg(long, default_value_t = 2000)]
    pub streams: usize,
    /// streams: how long to hold them ("600s", "10m", "90").
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub duration: Duration,
    /// streams: backend delay between chunks, ms.
    #[arg(long, default_value_t = 50)]
    pub stream_chunk_ms: u64,
    /// streams: tokens of the longest generation (each request asks for 50–100% of it, so
    /// streams end at different times).
    #[arg(long, default_value_t = 1200)]
    pub stream_tokens: u32,
    /// streams: RSS sampling interval.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub sample_every: Duration,
    /// streams: time over which the streams are opened.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub ramp: Duration,
    /// throughput: concurrent streams.
    #[arg(long, default_value_t = 64)]
    pub throughput_streams: usize,
    /// throughput: tokens per stream (emitted without delay).
    #[arg(long, default_value_t = 1000)]
    pub throughput_tokens: u32,
    /// throughput: measured window per path (after a 3 s warm-up).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub throughput_duration: Duration,
    /// throughput: the CPU the gateway is pinned to with taskset (-1: not pinned).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub throughput_cpu: i32,
    /// `[http] workers` of the gateway for the ttft, chunk and streams phases.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Serve the simulated backends without TCP_NODELAY (the OS default), to
    /// see what Nagle's algorithm does to a direct stream.
    #[arg(long)]
    pub backend_nagle: bool,
    /// chunk: also measure a bare relay process (no parsing or recording) on the same path, as
    /// the floor of what any HTTP relay hop adds on this machine.
    #[arg(long)]
    pub null_relay: bool,
    /// Run the gateway with `[gateway.llm] store_text = false` (no prompt or response text is
    /// kept in the recorded rows), to tell text retention apart from other memory growth.
    #[arg(long)]
    pub no_store_text: bool,
    /// Internal: run as the null relay in front of this upstream URL.
    #[arg(long, hide = true, requires = "null_relay_port")]
    pub null_relay_upstream: Option<String>,
    /// Internal: the null relay's port.
    #[arg(long, hide = true)]
    pub null_relay_port: Option<u16>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Keep the temporary directory (configs, gateway logs, chDB data).
    #[arg(long)]
    pub keep: bool,
}

/// "600s", "10m", "1h", "250ms" or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (600s, 10m, 250ms)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("`{s}` is not a duration"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

// ---------------------------------------------------------------------------------------------
// Report

#[derive(serde::Serialize, Clone, Copy, Default, Debug)]
pub struct Pcts {
    pub n: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
}

/// Nearest-rank percentiles of `v` (ms).
fn pcts(v: &mut [f64]) -> Pcts {
    if v.is_empty() {
        return Pcts::default();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Pcts {
        n: v.len(),
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        mean_ms: v.iter().sum::<f64>() / v.len() as f64,
        max_ms: v[v.len() - 1],
    }
}

#[derive(serde::Serialize, Debug)]
struct Added {
    p50_ms: f64,
    p99_ms: f64,
}

fn added(direct: &Pcts, through: &Pcts) -> Added {
    Added {
        p50_ms: through.p50_ms - direct.p50_ms,
        p99_ms: through.p99_ms - direct.p99_ms,
    }
}

#[derive(serde::Serialize, Debug)]
struct TtftReport {
    requests_per_path: usize,
    first_token_ms: u64,
    chunk_ms: u64,
    tokens: u32,
    direct: Pcts,
    through: Pcts,
    added: Added,
    /// Inter-chunk gaps (consecutive content chunks of one stream): jitter, not added latency.
    gap_direct: Pcts,
    gap_through: Pcts,
    /// Streams that did not end with `[DONE]` or lacked content (should be 0).
    failed: usize,
}

#[derive(serde::Serialize, Debug)]
struct ChunkReport {
    streams_per_path: usize,
    chunks_per_path: usize,
    /// Receipt − send time of every content chunk.
    direct: Pcts,
    through: Pcts,
    added: Added,
    /// The control (`--null-relay`): a bare HTTP relay process on the same path.
    #[serde(skip_serializing_if = "Option::is_none")]
    null_relay: Option<Pcts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    relay_added: Option<Added>,
    /// The first content chunk alone (its relay delay is part of the added TTFT).
    first_direct: Pcts,
    first_through: Pcts,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_null_relay: Option<Pcts>,
    failed: usize,
}

#[derive(serde::Serialize, Debug, Clone)]
struct RssSample {
    t_s: f64,
    rss_mib: f64,
    open_streams: i64,
    /// Streams the backend is still generating: fewer than `open_streams` means clients are
    /// behind (the rest of those streams sits in socket and relay buffers).
    backend_in_flight: i64,
    gateway_cpu_pct: f64,
    chunks_per_s: f64,
}

#[derive(serde::Serialize, Debug)]
struct StreamsReport {
    target_streams: usize,
    duration_s: f64,
    /// From the first stream opened to the stop (ramp + wait + duration).
    elapsed_s: f64,
    chunk_ms: u64,
    max_tokens: u32,
    workers: usize,
    rss_idle_mib: f64,
    rss_after_ramp_mib: f64,
    rss_max_mib: f64,
    rss_end_mib: f64,
    rss_after_close_mib: f64,
    /// End − the first sample taken after the ramp plus two of the longest generations (at
    /// most half the run): by then streams have ended and restarted, and the store's rows
    /// are flowing.
    rss_growth_mib: f64,
    /// Least-squares slope of RSS over the samples after that point.
    rss_slope_mib_per_min: f64,
    /// Median RSS of the samples in each quarter of the holding period: a cache or buffer that
    /// fills and stays full shows as quarters that level off; a leak keeps climbing.
    rss_median_by_quarter_mib: [f64; 4],
    /// Least-squares slope over the second half of the holding period.
    rss_second_half_slope_mib_per_min: f64,
    max_open_streams: i64,
    min_open_after_ramp: i64,
    streams_opened: u64,
    streams_completed: u64,
    streams_failed: u64,
    streams_open_at_stop: i64,
    failure_reasons: std::collections::BTreeMap<String, u64>,
    chunks: u64,
    mean_chunks_per_s: f64,
    gateway_cpu_s: f64,
    samples: Vec<RssSample>,
}

#[derive(serde::Serialize, Debug)]
struct ThroughputReport {
    streams: usize,
    tokens_per_stream: u32,
    window_s: f64,
    pinned_cpu: Option<i32>,
    through_chunks_per_s: f64,
    direct_chunks_per_s: f64,
    /// Gateway CPU time / wall time in the through window (1.0 = one core saturated).
    gateway_cpu_utilisation: f64,
    /// Chunks per second of gateway CPU time: the one-core capacity if the core were the limit.
    chunks_per_gateway_cpu_s: f64,
    gateway_cpu_us_per_chunk: f64,
    through_streams_completed: u64,
    failed: u64,
    failure_reasons: std::collections::BTreeMap<String, u64>,
}

#[derive(serde::Serialize, Debug)]
struct Report {
    store: String,
    /// The backends' accepted sockets have TCP_NODELAY (not with --backend-nagle).
    backend_nodelay: bool,
    /// `[gateway.llm] store_text` of the gateway (false with --no-store-text).
    store_text: bool,
    load_average_start: String,
    load_average_end: String,
    ttft: Option<TtftReport>,
    chunk: Option<ChunkReport>,
    streams: Option<StreamsReport>,
    throughput: Option<ThroughputReport>,
}

// ---------------------------------------------------------------------------------------------
// Clock shared by the stamped backend and the client (both in this process).

static EPOCH: OnceLock<Instant> = OnceLock::new();

fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

// ---------------------------------------------------------------------------------------------
// The stamped backend: OpenAI-compatible chat streams (vLLM's shape, usage when asked) whose
// content chunks are " <send time in ns>".

mod stamped {
    use super::now_ns;
    use actix_web::body::{BodySize, MessageBody};
    use actix_web::web::{self, Bytes};
    use actix_web::{App, HttpResponse, HttpServer};
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    #[derive(Clone, Copy)]
    pub struct Shape {
        pub first_token_ms: u64,
        pub chunk_ms: u64,
        pub tokens: u32,
    }

    pub struct ChannelBody(pub tokio::sync::mpsc::Receiver<Bytes>);

    impl MessageBody for ChannelBody {
        type Error = std::convert::Infallible;
        fn size(&self) -> BodySize {
            BodySize::Stream
        }
        fn poll_next(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Bytes, Self::Error>>> {
            self.get_mut().0.poll_recv(cx).map(|o| o.map(Ok))
        }
    }

    const HEAD: &str = r#"{"id":"chatcmpl-stamped","object":"chat.completion.chunk","created":0,"model":"stamped","choices":["#;

    fn chunk(content: &str, finish: Option<&str>, usage_null: bool) -> Bytes {
        let finish = finish.map_or("null".to_owned(), |f| format!("\"{f}\""));
        let usage = if usage_null { r#","usage":null"# } else { "" };
        Bytes::from(format!(
            "data: {HEAD}{{\"index\":0,\"delta\":{content},\"logprobs\":null,\"finish_reason\":{finish}}}]{usage}}}\n\n"
        ))
    }

    async fn chat(shape: web::Data<Shape>, body: Bytes) -> HttpResponse {
        let usage = body
            .windows(br#""include_usage":true"#.len())
            .any(|w| w == br#""include_usage":true"#);
        let shape = *shape.get_ref();
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        actix_web::rt::spawn(async move {
            let role = chunk(r#"{"role":"assistant","content":""}"#, None, usage);
            if tx.send(role).await.is_err() {
                return;
            }
            for i in 0..shape.tokens {
                let ms = if i == 0 {
                    shape.first_token_ms
                } else {
                    shape.chunk_ms
                };
                if ms > 0 {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                let last = i + 1 == shape.tokens;
                let c = chunk(
                    &format!("{{\"content\":\" {}\"}}", now_ns()),
                    last.then_some("stop"),
                    usage,
                );
                if tx.send(c).await.is_err() {
                    return;
                }
            }
            if usage {
                let n = shape.tokens;
                let u = format!(
                    "data: {HEAD}],\"usage\":{{\"prompt_tokens\":8,\"completion_tokens\":{n},\"total_tokens\":{}}}}}\n\n",
                    n + 8
                );
                if tx.send(Bytes::from(u)).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
        });
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("Cache-Control", "no-cache"))
            .body(ChannelBody(rx))
    }

    /// Serves the simulated models (`/{name}/v1/...`, see `simulated_llm`) and
    /// `POST /stamped/v1/chat/completions` on 127.0.0.1:0 from a background thread (its own actix
    /// system, 2 workers like `simulated_llm::spawn`); returns the base URL. With `nodelay`,
    /// accepted sockets get TCP_NODELAY, as vLLM's server (uvicorn/asyncio) sets it.
    pub fn spawn(
        shape: Shape,
        llm: std::sync::Arc<vigil_experimenter::simulated_llm::SimulatedLlm>,
        nodelay: bool,
    ) -> std::io::Result<String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("bench-backends".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let server = HttpServer::new(move || {
                        let llm = llm.clone();
                        App::new()
                            .app_data(web::Data::new(shape))
                            .route("/stamped/v1/chat/completions", web::post().to(chat))
                            .configure(move |cfg| llm.configure(cfg))
                    })
                    .workers(2)
                    .tcp_nodelay(nodelay)
                    .disable_signals()
                    .listen(listener);
                    match server {
                        Ok(s) => {
                            let s = s.run();
                            let _ = tx.send(Ok(()));
                            let _ = s.await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                })
            })?;
        rx.recv()
            .map_err(|_| std::io::Error::other("backend server thread exited"))??;
        Ok(url)
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway child process.

struct GatewayProc {
    child: Child,
    base: String,
    log: PathBuf,
}

impl GatewayProc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss_mib(&self) -> f64 {
        proc_rss_kib(self.pid()).map_or(f64::NAN, |k| k as f64 / 1024.0)
    }

    fn cpu_s(&self) -> f64 {
        proc_cpu_ticks(self.pid()).map_or(f64::NAN, |t| t as f64 / clock_ticks())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, then up to 30 s for the store to drain, then SIGKILL.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a process, in clock ticks.
fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state(3) ... utime(14) stime(15), i.e. indices 11 and 12 here.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One gateway model with two versions (an experiment's arms) on the same backend.
fn model_toml(name: &str, url: &str, backend_model: &str) -> String {
    format!(
        r#"
[[experiments]]
key = "bench-{name}"
model = "{name}"
hash_version = 2
arms = [{{ name = "control", model_version = "v1" }}, {{ name = "treatment", model_version = "v2" }}]

[[gateway.models]]
name = "{name}"
api = "openai"
control = "v1"
versions = [
  {{ version = "v1", url = "{url}", backend_model = "{backend_model}", price_input_per_1k = 0.5, price_output_per_1k = 1.5 }},
  {{ version = "v2", url = "{url}", backend_model = "{backend_model}", price_input_per_1k = 0.5, price_output_per_1k = 1.5 }},
]
"#
    )
}

/// Writes the config and starts `vigil serve --no-kafka` (pinned to `cpu` with taskset when
/// given); waits for /healthz.
async fn start_gateway(
    dir: &Path,
    name: &str,
    store: &str,
    workers: usize,
    cpu: Option<i32>,
    store_text: bool,
    models: &[(&str, String, &str)],
) -> Result<GatewayProc> {
    let port = free_port()?;
    let mut text = format!(
        r#"[store]
url = "{store}"

[http]
bind = "127.0.0.1:{port}"
workers = {workers}

[[auth.tokens]]
name = "bench"
role = "ingest"
token = "{TOKEN}"

[gateway]
timeout_ms = 30000

[gateway.llm]
store_text = {store_text}
"#
    );
    // [[experiments]] and [[gateway.models]] are arrays of tables: they may follow [gateway].
    for (model, url, backend) in models {
        text.push_str(&model_toml(model, url, backend));
    }
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, text)?;
    let log = dir.join(format!("{name}.log"));
    let exe = std::env::current_exe().context("path of the vigil binary")?;
    let mut cmd = match cpu {
        Some(c) => {
            let mut c2 = Command::new("taskset");
            c2.args(["-c", &c.to_string()]).arg(&exe);
            c2
        }
        None => Command::new(&exe),
    };
    cmd.arg("--config")
        .arg(&config)
        .args(["serve", "--no-kafka"])
        .env_remove("VIGIL_STORE")
        .env_remove("VIGIL_CONFIG")
        .env("VIGIL_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    let child = cmd
        .spawn()
        .context("starting `vigil serve` for the gateway")?;
    let mut g = GatewayProc {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(status)) = g.child.try_wait() {
            bail!("the gateway exited ({status}); log:\n{}", g.log_tail());
        }
        if let Ok(r) = client.get(format!("{}/healthz", g.base)).send().await {
            if r.status().is_success() {
                break;
            }
        }
        if Instant::now() > deadline {
            let tail = g.log_tail();
            g.stop();
            bail!("the gateway did not become healthy in 120 s; log:\n{tail}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(g)
}

// ---------------------------------------------------------------------------------------------
// Client side.

/// Where a stream goes and with what body.
#[derive(Clone)]
struct Target {
    url: String,
    /// The body's `model`: the gateway's model name, or the backend's own name when direct.
    model: String,
    auth: bool,
}

impl Target {
    fn body(&self, unit: &str, prompt_no: usize, max_tokens: Option<u32>) -> String {
        let max = max_tokens.map_or(String::new(), |m| format!(",\"max_tokens\":{m}"));
        format!(
            r#"{{"model":"{}","stream":true,"user":"{unit}","messages":[{{"role":"system","content":"You are a helpful assistant."}},{{"role":"user","content":"Summarise support ticket {prompt_no} in one paragraph."}}]{max}}}"#,
            self.model
        )
    }

    fn request(&self, client: &reqwest::Client, body: String) -> reqwest::RequestBuilder {
        let r = client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if self.auth {
            r.bearer_auth(TOKEN)
        } else {
            r
        }
    }
}

/// Splits SSE bytes into events across reads.
#[derive(Default)]
struct Events {
    buf: Vec<u8>,
}

#[derive(Debug, PartialEq)]
enum Ev {
    /// A chunk with non-empty content; the stamp when the content is a number.
    Content(Option<u64>),
    Done,
    /// An error event (`data: {"error": ...}`), as the gateway sends when the backend fails.
    Error(String),
    Other,
}

const CONTENT_KEY: &[u8] = br#""content":""#;

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn classify(event: &[u8]) -> Ev {
    if find(event, b"data: [DONE]").is_some() {
        return Ev::Done;
    }
    if event.starts_with(br#"data: {"error""#) {
        let text = String::from_utf8_lossy(&event[6..]);
        return Ev::Error(text.chars().take(200).collect());
    }
    let Some(at) = find(event, CONTENT_KEY) else {
        return Ev::Other;
    };
    let rest = &event[at + CONTENT_KEY.len()..];
    if rest.first() == Some(&b'"') {
        return Ev::Other; // empty content (the role chunk)
    }
    let digits: Vec<u8> = rest
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    let stamp = std::str::from_utf8(&digits)
        .ok()
        .and_then(|d| d.parse().ok());
    Ev::Content(stamp)
}

impl Events {
    fn push(&mut self, bytes: &[u8], mut on: impl FnMut(Ev)) {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(i) = find(&self.buf[start..], b"\n\n") {
            on(classify(&self.buf[start..start + i]));
            start += i + 2;
        }
        self.buf.drain(..start);
    }
}

/// One stream read to its end: the request's send time, each content chunk's receipt time
/// (and stamp), whether `[DONE]` came.
#[derive(Default)]
struct Observed {
    sent: Option<Instant>,
    /// (received, stamp receipt − send ns if stamped)
    chunks: Vec<(Instant, Option<f64>)>,
    done: bool,
}

async fn observe(client: &reqwest::Client, t: &Target, body: String) -> Result<Observed> {
    let req = t.request(client, body);
    let mut o = Observed::default();
    let sent = Instant::now();
    o.sent = Some(sent);
    let mut resp = req.send().await?;
    if !resp.status().is_success() {
        bail!(
            "{} answered {}: {}",
            t.url,
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let mut ev = Events::default();
    while let Some(b) = resp.chunk().await? {
        let at = Instant::now();
        let ns = now_ns();
        ev.push(&b, |e| match e {
            Ev::Content(stamp) => o
                .chunks
                .push((at, stamp.map(|s| ns.saturating_sub(s) as f64 / 1e6))),
            Ev::Done => o.done = true,
            Ev::Error(_) | Ev::Other => {}
        });
    }
    Ok(o)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn progress(msg: &str) {
    eprintln!("[bench llm] {msg}");
}

// ---------------------------------------------------------------------------------------------
// Phases.

async fn phase_ttft(
    args: &BenchLlmArgs,
    client: &reqwest::Client,
    direct: &Target,
    through: &Target,
) -> Result<TtftReport> {
    let n = args.requests;
    let (mut d, mut t) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut gd, mut gt) = (Vec::new(), Vec::new());
    let mut failed = 0;
    // Warm-up: connections, pools, the gateway's first requests.
    for i in 0..50 {
        observe(client, direct, direct.body(&format!("warm-{i}"), i, None)).await?;
        observe(client, through, through.body(&format!("warm-{i}"), i, None)).await?;
    }
    let started = Instant::now();
    for i in 0..n {
        let unit = format!("user-{i}");
        let order: [(&Target, bool); 2] = if i % 2 == 0 {
            [(direct, true), (through, false)]
        } else {
            [(through, false), (direct, true)]
        };
        for (target, is_direct) in order {
            let o = observe(client, target, target.body(&unit, i, None)).await?;
            let (ttfts, gaps) = if is_direct {
                (&mut d, &mut gd)
            } else {
                (&mut t, &mut gt)
            };
            match (o.sent, o.chunks.first()) {
                (Some(s), Some((first, _))) if o.done => {
                    ttfts.push(ms(*first - s));
                    gaps.extend(o.chunks.windows(2).map(|w| ms(w[1].0 - w[0].0)));
                }
                _ => failed += 1,
            }
        }
        if (i + 1) % 500 == 0 {
            progress(&format!(
                "ttft: {}/{n} pairs ({:.0} s)",
                i + 1,
                started.elapsed().as_secs_f64()
            ));
        }
    }
    let (direct_p, through_p) = (pcts(&mut d), pcts(&mut t));
    Ok(TtftReport {
        requests_per_path: n,
        first_token_ms: args.first_token_ms,
        chunk_ms: args.chunk_ms,
        tokens: args.tokens,
        added: added(&direct_p, &through_p),
        direct: direct_p,
        through: through_p,
        gap_direct: pcts(&mut gd),
        gap_through: pcts(&mut gt),
        failed,
    })
}

async fn phase_chunk(
    args: &BenchLlmArgs,
    client: &reqwest::Client,
    direct: &Target,
    through: &Target,
    relay: Option<&Target>,
) -> Result<ChunkReport> {
    let n = args.chunk_requests;
    // Per path (direct, through, null relay): every chunk's latency, the first chunk's.
    let mut all: [Vec<f64>; 3] = Default::default();
    let mut first: [Vec<f64>; 3] = Default::default();
    let mut failed = 0;
    let mut paths = vec![direct, through];
    paths.extend(relay);
    for i in 0..20 {
        for t in &paths {
            observe(client, t, t.body("warm", i, None)).await?;
        }
    }
    for i in 0..n {
        let unit = format!("user-{i}");
        // Rotate the order so no path always runs right after another.
        for k in 0..paths.len() {
            let p = (i + k) % paths.len();
            let target = paths[p];
            let o = observe(client, target, target.body(&unit, i, None)).await?;
            let lat: Vec<f64> = o.chunks.iter().filter_map(|c| c.1).collect();
            if !o.done || lat.len() != o.chunks.len() || lat.is_empty() {
                failed += 1;
                continue;
            }
            first[p].push(lat[0]);
            all[p].extend(lat);
        }
    }
    let [mut ad, mut at, mut ar] = all;
    let [mut fd, mut ft, mut fr] = first;
    let (dp, tp) = (pcts(&mut ad), pcts(&mut at));
    let relay_p = relay.map(|_| pcts(&mut ar));
    Ok(ChunkReport {
        streams_per_path: n,
        chunks_per_path: dp.n,
        added: added(&dp, &tp),
        relay_added: relay_p.as_ref().map(|r| added(&dp, r)),
        direct: dp,
        through: tp,
        null_relay: relay_p,
        first_direct: pcts(&mut fd),
        first_through: pcts(&mut ft),
        first_null_relay: relay.map(|_| pcts(&mut fr)),
        failed,
    })
}

// ---------------------------------------------------------------------------------------------
// The null relay: a control for the chunk phase. A child process (`vigil bench llm
// --null-relay-upstream URL --null-relay-port PORT`) with an actix server like the gateway's
// (same workers, TCP_NODELAY) that forwards each read of the upstream stream as it comes: no
// parsing, routing, recording or auth. Its added latency is the floor of any HTTP relay hop
// on this machine.

async fn serve_null_relay(upstream: String, port: u16, workers: usize) -> Result<()> {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .build()?;
    let upstream = Arc::new(upstream);
    let server = HttpServer::new(move || {
        let (client, upstream) = (client.clone(), upstream.clone());
        App::new().route(
            "/v1/chat/completions",
            web::post().to(move |body: web::Bytes| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move {
                    let resp = client
                        .post(upstream.as_str())
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body)
                        .send()
                        .await;
                    let Ok(mut resp) = resp else {
                        return HttpResponse::BadGateway().finish();
                    };
                    let (tx, rx) = tokio::sync::mpsc::channel(8);
                    actix_web::rt::spawn(async move {
                        while let Ok(Some(b)) = resp.chunk().await {
                            if tx.send(b).await.is_err() {
                                return;
                            }
                        }
                    });
                    HttpResponse::Ok()
                        .content_type("text/event-stream")
                        .body(stamped::ChannelBody(rx))
                }
            }),
        )
    })
    .workers(workers.max(1))
    .tcp_nodelay(true)
    .disable_signals()
    .bind(("127.0.0.1", port))?
    .run();
    server.await?;
    Ok(())
}

struct NullRelay {
    child: Child,
    base: String,
}

impl Drop for NullRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_null_relay(upstream: &str, workers: usize) -> Result<NullRelay> {
    let port = free_port()?;
    let child = Command::new(std::env::current_exe()?)
        .args(["bench", "llm", "--null-relay-upstream", upstream])
        .args(["--null-relay-port", &port.to_string()])
        .args(["--workers", &workers.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the null relay")?;
    let relay = NullRelay {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("the null relay did not listen within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(relay)
}

#[derive(Default)]
struct LoadCounters {
    opened: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    open: AtomicI64,
    max_open: AtomicI64,
    chunks: AtomicU64,
    /// Why streams failed, counted.
    reasons: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl LoadCounters {
    fn fail(&self, reason: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut r = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        *r.entry(reason).or_default() += 1;
    }

    fn reasons(&self) -> std::collections::BTreeMap<String, u64> {
        self.reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn request_error(e: reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connect"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    let e = e.without_url();
    let mut msg = format!("{kind} error: {e}");
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg.chars().take(200).collect()
}

/// One client: streams one request after another until stopped (its task is aborted).
async fn stream_loop(
    client: reqwest::Client,
    target: Target,
    id: usize,
    max_tokens: u32,
    c: Arc<LoadCounters>,
) {
    let mut n = 0usize;
    loop {
        n += 1;
        // 50–100% of max_tokens, so streams end (and restart) at different times.
        let lo = max_tokens.div_ceil(2);
        let tokens = lo + (rand::random::<u32>() % (max_tokens - lo + 1));
        let body = target.body(&format!("user-{id}"), id * 1_000 + n, Some(tokens));
        let resp = match target.request(&client, body).send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                let status = r.status();
                let text: String = r
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(160)
                    .collect();
                c.fail(format!("HTTP {status}: {text}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => {
                c.fail(request_error(e));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        c.opened.fetch_add(1, Ordering::Relaxed);
        let open = c.open.fetch_add(1, Ordering::Relaxed) + 1;
        c.max_open.fetch_max(open, Ordering::Relaxed);
        // Decrements `open` however this stream ends, including the task's abort.
        struct Open(Arc<LoadCounters>);
        impl Drop for Open {
            fn drop(&mut self) {
                self.0.open.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let _open = Open(c.clone());
        let mut resp = resp;
        let mut ev = Events::default();
        let (mut done, mut error) = (false, None);
        let end = loop {
            match resp.chunk().await {
                Ok(Some(b)) => ev.push(&b, |e| match e {
                    Ev::Content(_) => {
                        c.chunks.fetch_add(1, Ordering::Relaxed);
                    }
                    Ev::Done => done = true,
                    Ev::Error(e) => error = Some(e),
                    Ev::Other => {}
                }),
                Ok(None) => break None,
                Err(e) => break Some(request_error(e)),
            }
        };
        let failure = match (end, error, done) {
            (Some(e), _, _) => Some(e),
            (None, Some(e), _) => Some(format!("error event: {e}")),
            (None, None, false) => Some("the stream ended without [DONE]".to_owned()),
            (None, None, true) => None,
        };
        match failure {
            None => {
                c.completed.fetch_add(1, Ordering::Relaxed);
            }
            Some(f) => {
                c.fail(f);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Raises the soft open-files limit to the hard one when `need` is more than it allows.
fn ensure_fd_limit(need: u64) -> Result<()> {
    fn limits() -> Option<(u64, String)> {
        let s = std::fs::read_to_string("/proc/self/limits").ok()?;
        let l = s.lines().find(|l| l.starts_with("Max open files"))?;
        let f: Vec<&str> = l.split_whitespace().collect();
        Some((f.get(3)?.parse().ok()?, f.get(4)?.to_string()))
    }
    let Some((soft, hard)) = limits() else {
        return Ok(());
    };
    if soft >= need {
        return Ok(());
    }
    let pid = std::process::id().to_string();
    let ok = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={hard}:{hard}")])
        .status()
        .is_ok_and(|s| s.success());
    let now = limits().map_or(0, |l| l.0);
    if !ok || now < need {
        bail!("{need} open files are needed but the limit is {now} (hard {hard}): raise it (`ulimit -n {need}`) and run again");
    }
    progress(&format!("open-files limit raised from {soft} to {now}"));
    Ok(())
}

async fn phase_streams(
    args: &BenchLlmArgs,
    gw: &GatewayProc,
    through: &Target,
    llm: &simulated_llm::SimulatedLlm,
) -> Result<StreamsReport> {
    let n = args.streams;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(n)
        .tcp_nodelay(true)
        .build()?;
    let c = Arc::new(LoadCounters::default());
    let rss_idle = gw.rss_mib();
    let cpu0 = gw.cpu_s();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    let gap = args.ramp.as_secs_f64() / n.max(1) as f64;
    progress(&format!(
        "streams: opening {n} streams over {:.0} s, holding them for {:.0} s",
        args.ramp.as_secs_f64(),
        args.duration.as_secs_f64()
    ));
    for i in 0..n {
        let at = started + Duration::from_secs_f64(gap * i as f64);
        tokio::time::sleep_until(at.into()).await;
        tasks.push(tokio::spawn(stream_loop(
            client.clone(),
            through.clone(),
            i,
            args.stream_tokens,
            c.clone(),
        )));
    }
    let ramp_done = started.elapsed();
    // Wait until every stream is open (or 30 s), then sample.
    let wait_until = Instant::now() + Duration::from_secs(30);
    while c.open.load(Ordering::Relaxed) < n as i64 && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_after_ramp = gw.rss_mib();
    progress(&format!(
        "streams: {} open after {:.1} s; gateway RSS idle {rss_idle:.1} MiB, now {rss_after_ramp:.1} MiB",
        c.open.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    ));
    let end = started + ramp_done + args.duration;
    let mut samples = Vec::new();
    let (mut last_t, mut last_cpu, mut last_chunks) = (
        started.elapsed().as_secs_f64(),
        gw.cpu_s(),
        c.chunks.load(Ordering::Relaxed),
    );
    let mut min_open = i64::MAX;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        tokio::time::sleep(args.sample_every.min(end - now)).await;
        let t = started.elapsed().as_secs_f64();
        let cpu = gw.cpu_s();
        let chunks = c.chunks.load(Ordering::Relaxed);
        let open = c.open.load(Ordering::Relaxed);
        min_open = min_open.min(open);
        let sim = llm.stats("long").unwrap_or_default();
        let s = RssSample {
            t_s: t,
            rss_mib: gw.rss_mib(),
            open_streams: open,
            backend_in_flight: sim.streams_started as i64
                - sim.streams_completed as i64
                - sim.streams_cancelled as i64,
            gateway_cpu_pct: 100.0 * (cpu - last_cpu) / (t - last_t).max(1e-9),
            chunks_per_s: (chunks - last_chunks) as f64 / (t - last_t).max(1e-9),
        };
        progress(&format!(
            "streams: t={:.0}s RSS {:.1} MiB, open {} (backend in flight {}), gateway CPU {:.0}%, {:.0} chunks/s, opened {} completed {} failed {}",
            s.t_s,
            s.rss_mib,
            s.open_streams,
            s.backend_in_flight,
            s.gateway_cpu_pct,
            s.chunks_per_s,
            c.opened.load(Ordering::Relaxed),
            c.completed.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed)
        ));
        (last_t, last_cpu, last_chunks) = (t, cpu, chunks);
        samples.push(s);
    }
    let rss_end = gw.rss_mib();
    let open_at_stop = c.open.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_total = gw.cpu_s() - cpu0;
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    drop(client);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_after_close = gw.rss_mib();
    // Growth is judged from a point after the first generations have ended and restarted.
    let longest = args.stream_tokens as f64 * args.stream_chunk_ms as f64 / 1000.0;
    let settle = ramp_done.as_secs_f64() + (2.0 * longest).min(args.duration.as_secs_f64() / 2.0);
    let later: Vec<&RssSample> = samples.iter().filter(|s| s.t_s >= settle).collect();
    let (growth, slope) = match later.first() {
        Some(first) => (rss_end - first.rss_mib, slope_per_min(&later)),
        None => (f64::NAN, f64::NAN),
    };
    // Quarters of the holding period (after the ramp).
    let hold_start = ramp_done.as_secs_f64();
    let hold = (samples.last().map_or(hold_start, |s| s.t_s) - hold_start).max(1e-9);
    let quarter = |q: usize| -> Vec<&RssSample> {
        samples
            .iter()
            .filter(|s| {
                let f = (s.t_s - hold_start) / hold;
                f >= q as f64 / 4.0 && (f < (q + 1) as f64 / 4.0 || (q == 3 && f <= 1.0))
            })
            .collect()
    };
    let median = |v: Vec<&RssSample>| -> f64 {
        let mut x: Vec<f64> = v.iter().map(|s| s.rss_mib).collect();
        x.sort_by(f64::total_cmp);
        match x.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => x[n / 2],
            n => (x[n / 2 - 1] + x[n / 2]) / 2.0,
        }
    };
    let by_quarter = [
        median(quarter(0)),
        median(quarter(1)),
        median(quarter(2)),
        median(quarter(3)),
    ];
    let second_half: Vec<&RssSample> = samples
        .iter()
        .filter(|s| s.t_s >= hold_start + hold / 2.0)
        .collect();
    let second_half_slope = slope_per_min(&second_half);
    let rss_max = samples
        .iter()
        .map(|s| s.rss_mib)
        .chain([rss_after_ramp, rss_end])
        .fold(f64::NAN, f64::max);
    let chunks = c.chunks.load(Ordering::Relaxed);
    Ok(StreamsReport {
        target_streams: n,
        duration_s: args.duration.as_secs_f64(),
        elapsed_s: elapsed,
        chunk_ms: args.stream_chunk_ms,
        max_tokens: args.stream_tokens,
        workers: args.workers,
        rss_idle_mib: rss_idle,
        rss_after_ramp_mib: rss_after_ramp,
        rss_max_mib: rss_max,
        rss_end_mib: rss_end,
        rss_after_close_mib: rss_after_close,
        rss_growth_mib: growth,
        rss_slope_mib_per_min: slope,
        rss_median_by_quarter_mib: by_quarter,
        rss_second_half_slope_mib_per_min: second_half_slope,
        max_open_streams: c.max_open.load(Ordering::Relaxed),
        min_open_after_ramp: if min_open == i64::MAX { 0 } else { min_open },
        streams_opened: c.opened.load(Ordering::Relaxed),
        streams_completed: c.completed.load(Ordering::Relaxed),
        streams_failed: c.failed.load(Ordering::Relaxed),
        streams_open_at_stop: open_at_stop,
        failure_reasons: c.reasons(),
        chunks,
        mean_chunks_per_s: chunks as f64 / elapsed,
        gateway_cpu_s: cpu_total,
        samples,
    })
}

fn slope_per_min(s: &[&RssSample]) -> f64 {
    if s.len() < 2 {
        return f64::NAN;
    }
    let n = s.len() as f64;
    let mx = s.iter().map(|x| x.t_s).sum::<f64>() / n;
    let my = s.iter().map(|x| x.rss_mib).sum::<f64>() / n;
    let sxy: f64 = s.iter().map(|x| (x.t_s - mx) * (x.rss_mib - my)).sum();
    let sxx: f64 = s.iter().map(|x| (x.t_s - mx).powi(2)).sum();
    if sxx == 0.0 {
        f64::NAN
    } else {
        sxy / sxx * 60.0
    }
}

/// Runs `streams` clients against `target` for warm-up + `window`; returns (chunks/s in the
/// window, gateway CPU seconds in the window, streams completed, failure reasons).
async fn saturate(
    target: &Target,
    streams: usize,
    tokens: u32,
    window: Duration,
    gw: Option<&GatewayProc>,
) -> Result<(f64, f64, u64, std::collections::BTreeMap<String, u64>)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(streams)
        .tcp_nodelay(true)
        .build()?;
    let c = Arc::new(LoadCounters::default());
    let tasks: Vec<_> = (0..streams)
        .map(|i| {
            tokio::spawn(stream_loop(
                client.clone(),
                target.clone(),
                i,
                tokens,
                c.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (c0, cpu0, t0) = (
        c.chunks.load(Ordering::Relaxed),
        gw.map_or(0.0, GatewayProc::cpu_s),
        Instant::now(),
    );
    tokio::time::sleep(window).await;
    let (c1, cpu1, secs) = (
        c.chunks.load(Ordering::Relaxed),
        gw.map_or(0.0, GatewayProc::cpu_s),
        t0.elapsed().as_secs_f64(),
    );
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok((
        (c1 - c0) as f64 / secs,
        cpu1 - cpu0,
        c.completed.load(Ordering::Relaxed),
        c.reasons(),
    ))
}

// ---------------------------------------------------------------------------------------------

pub async fn run(store_override: Option<&str>, args: BenchLlmArgs) -> Result<()> {
    if let (Some(up), Some(port)) = (&args.null_relay_upstream, args.null_relay_port) {
        return serve_null_relay(up.clone(), port, args.workers).await;
    }
    EPOCH.get_or_init(Instant::now);
    if args.tokens == 0 || args.stream_tokens == 0 || args.throughput_tokens == 0 {
        bail!("token counts must be at least 1");
    }
    let has = |p: Phase| args.phases.contains(&p);
    let dir = std::env::temp_dir().join(format!("vigil-bench-llm-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store_for = |name: &str| match store_override {
        Some(s) => s.to_owned(),
        None => format!("chdb://{}", dir.join(format!("{name}-data")).display()),
    };
    if has(Phase::Streams) {
        // Each stream holds a client socket and the backend's accepted socket in this process.
        ensure_fd_limit(2 * args.streams as u64 + 1024)?;
    }
    let sim_model = |name: &str, first: u64, chunk: u64, tokens: u32| SimulatedModel {
        first_token_ms: first,
        chunk_ms: chunk,
        max_tokens_default: tokens,
        style: "bench".into(),
        ..SimulatedModel::new(name, &format!("{name}-llm"), UsageFlavour::Vllm)
    };
    let llm = simulated_llm::SimulatedLlm::new(vec![
        sim_model("m", args.first_token_ms, args.chunk_ms, args.tokens),
        sim_model(
            "long",
            args.first_token_ms,
            args.stream_chunk_ms,
            args.stream_tokens,
        ),
        sim_model("fast", 0, 0, args.throughput_tokens),
    ]);
    let shape = stamped::Shape {
        first_token_ms: args.first_token_ms,
        chunk_ms: args.chunk_ms,
        tokens: args.tokens,
    };
    let sim = stamped::spawn(shape, llm.clone(), !args.backend_nagle)
        .context("starting the simulated backends")?;
    let stamp = sim.clone();
    let models = vec![
        ("bench", format!("{sim}/m/v1"), "m-llm"),
        ("stamped", format!("{stamp}/stamped/v1"), "stamped"),
        ("long", format!("{sim}/long/v1"), "long-llm"),
        ("fast", format!("{sim}/fast/v1"), "fast-llm"),
    ];
    let direct = |path: &str, model: &str| Target {
        url: format!("{path}/chat/completions"),
        model: model.to_owned(),
        auth: false,
    };
    let through = |gw: &GatewayProc, model: &str| Target {
        url: format!("{}/v1/chat/completions", gw.base),
        model: model.to_owned(),
        auth: true,
    };
    let mut report = Report {
        store: store_override.map_or("chdb (temporary directory)".into(), str::to_owned),
        backend_nodelay: !args.backend_nagle,
        store_text: !args.no_store_text,
        load_average_start: load_average(),
        load_average_end: String::new(),
        ttft: None,
        chunk: None,
        streams: None,
        throughput: None,
    };
    let result: Result<()> = async {
        if has(Phase::Ttft) || has(Phase::Chunk) {
            let gw = start_gateway(
                &dir,
                "latency",
                &store_for("latency"),
                args.workers,
                None,
                !args.no_store_text,
                &models,
            )
            .await?;
            let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
            let r = async {
                if has(Phase::Ttft) {
                    progress(&format!(
                        "ttft: {} streamed requests per path",
                        args.requests
                    ));
                    report.ttft = Some(
                        phase_ttft(
                            &args,
                            &client,
                            &direct(&models[0].1, "m-llm"),
                            &through(&gw, "bench"),
                        )
                        .await?,
                    );
                }
                if has(Phase::Chunk) {
                    progress(&format!(
                        "chunk: {} stamped streams per path",
                        args.chunk_requests
                    ));
                    let stamped = direct(&models[1].1, "stamped");
                    let relay = match args.null_relay {
                        true => Some(start_null_relay(&stamped.url, args.workers).await?),
                        false => None,
                    };
                    let relay_target = relay.as_ref().map(|r| Target {
                        url: format!("{}/v1/chat/completions", r.base),
                        model: "stamped".into(),
                        auth: false,
                    });
                    report.chunk = Some(
                        phase_chunk(
                            &args,
                            &client,
                            &stamped,
                            &through(&gw, "stamped"),
                            relay_target.as_ref(),
                        )
                        .await?,
                    );
                }
                Ok::<(), anyhow::Error>(())
            }
            .await;
            let tail = gw.log_tail();
            gw.stop();
            r.with_context(|| format!("gateway log tail:\n{tail}"))?;
        }
        if has(Phase::Streams) && args.streams > 0 {
            let gw = start_gateway(
                &dir,
                "streams",
                &store_for("streams"),
                args.workers,
                None,
                !args.no_store_text,
                &models,
            )
            .await?;
            let r = phase_streams(&args, &gw, &through(&gw, "long"), &llm).await;
            let tail = gw.log_tail();
            gw.stop();
            report.streams = Some(r.with_context(|| format!("gateway log tail:\n{tail}"))?);
        }
        if has(Phase::Throughput) {
            let cpu = (args.throughput_cpu >= 0).then_some(args.throughput_cpu);
            let cpu = cpu.filter(|_| {
                let ok = Command::new("taskset").arg("-V").output().is_ok();
                if !ok {
                    progress("throughput: taskset not found, the gateway is not pinned");
                }
                ok
            });
            let gw = start_gateway(
                &dir,
                "throughput",
                &store_for("throughput"),
                1,
                cpu,
                !args.no_store_text,
                &models,
            )
            .await?;
            progress(&format!(
                "throughput: {} streams, chunk_ms 0, {} tokens each, {:.0} s per path",
                args.throughput_streams,
                args.throughput_tokens,
                args.throughput_duration.as_secs_f64()
            ));
            let r = async {
                let (through_rate, cpu_s, completed, reasons) = saturate(
                    &through(&gw, "fast"),
                    args.throughput_streams,
                    args.throughput_tokens,
                    args.throughput_duration,
                    Some(&gw),
                )
                .await?;
                let (direct_rate, _, _, _) = saturate(
                    &direct(&models[3].1, "fast-llm"),
                    args.throughput_streams,
                    args.throughput_tokens,
                    args.throughput_duration,
                    None,
                )
                .await?;
                let window = args.throughput_duration.as_secs_f64();
                let chunks = through_rate * window;
                Ok::<_, anyhow::Error>(ThroughputReport {
                    streams: args.throughput_streams,
                    tokens_per_stream: args.throughput_tokens,
                    window_s: window,
                    pinned_cpu: cpu,
                    through_chunks_per_s: through_rate,
                    direct_chunks_per_s: direct_rate,
                    gateway_cpu_utilisation: cpu_s / window,
                    chunks_per_gateway_cpu_s: chunks / cpu_s.max(1e-9),
                    gateway_cpu_us_per_chunk: cpu_s * 1e6 / chunks.max(1.0),
                    through_streams_completed: completed,
                    failed: reasons.values().sum(),
                    failure_reasons: reasons,
                })
            }
            .await;
            let tail = gw.log_tail();
            gw.stop();
            report.throughput = Some(r.with_context(|| format!("gateway log tail:\n{tail}"))?);
        }
        Ok(())
    }
    .await;
    report.load_average_end = load_average();
    if args.keep {
        progress(&format!("kept {}", dir.display()));
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report, &args));
    }
    Ok(())
}

fn row(name: &str, p: &Pcts) -> String {
    format!(
        "  {name:<22} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}\n",
        p.p50_ms, p.p90_ms, p.p99_ms, p.mean_ms, p.max_ms
    )
}

fn render(r: &Report, args: &BenchLlmArgs) -> String {
    let mut out = String::new();
    let head = format!(
        "  {:<22} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "ms", "p50", "p90", "p99", "mean", "max"
    );
    out.push_str(&format!(
        "LLM gateway benchmark: gateway = `vigil serve --no-kafka` child process ({}, store_text = {}), backends in this process ({}); load average {} → {}\n",
        r.store,
        r.store_text,
        if r.backend_nodelay { "TCP_NODELAY" } else { "Nagle on" },
        r.load_average_start,
        r.load_average_end
    ));
    if let Some(t) = &r.ttft {
        out.push_str(&format!(
            "\n(a) time to first token: {} sequential streams per path, alternating; simulated vLLM, first token {} ms, {} ms/chunk, {} tokens; [http] workers = {}\n",
            t.requests_per_path, t.first_token_ms, t.chunk_ms, t.tokens, args.workers
        ));
        out.push_str(&head);
        out.push_str(&row("direct", &t.direct));
        out.push_str(&row("through the gateway", &t.through));
        out.push_str(&format!(
            "  added TTFT: p50 {:+.3} ms (target ≤ 1 ms), p99 {:+.3} ms (target ≤ 3 ms); failed streams {}\n",
            t.added.p50_ms, t.added.p99_ms, t.failed
        ));
        out.push_str(
            "  inter-chunk gaps (jitter only: a constant per-chunk delay cancels out of a gap)\n",
        );
        out.push_str(&row("gap direct", &t.gap_direct));
        out.push_str(&row("gap through", &t.gap_through));
    }
    if let Some(c) = &r.chunk {
        out.push_str(&format!(
            "\n(b) per-chunk latency = client receipt − backend send time stamped in the chunk (one clock): {} streams × {} chunks per path\n",
            c.streams_per_path,
            c.chunks_per_path.checked_div(c.streams_per_path).unwrap_or(0)
        ));
        out.push_str(&head);
        out.push_str(&row("direct", &c.direct));
        out.push_str(&row("through the gateway", &c.through));
        if let Some(r) = &c.null_relay {
            out.push_str(&row("null relay (control)", r));
        }
        out.push_str(&row("first chunk, direct", &c.first_direct));
        out.push_str(&row("first chunk, through", &c.first_through));
        if let Some(r) = &c.first_null_relay {
            out.push_str(&row("first chunk, null relay", r));
        }
        out.push_str(&format!(
            "  added per-chunk latency: p50 {:+.3} ms (target ≤ 0.2 ms), p99 {:+.3} ms; failed streams {}\n",
            c.added.p50_ms, c.added.p99_ms, c.failed
        ));
        if let Some(a) = &c.relay_added {
            out.push_str(&format!(
                "  a bare relay process (no parsing, routing or recording; TCP_NODELAY) adds p50 {:+.3} ms, p99 {:+.3} ms: the cost of the extra hop itself\n",
                a.p50_ms, a.p99_ms
            ));
        }
    }
    if let Some(s) = &r.streams {
        out.push_str(&format!(
            "\n(c) {} concurrent streams through the gateway for {:.0} s ({} ms/chunk, ≤ {} tokens per generation, new stream when one ends); gateway RSS = VmRSS of the child process\n",
            s.target_streams, s.duration_s, s.chunk_ms, s.max_tokens
        ));
        out.push_str(&format!(
            "  RSS MiB: idle {:.1}, all streams open {:.1}, max {:.1}, end {:.1} (growth after settling {:+.1}, slope {:+.2} MiB/min), after closing {:.1}\n",
            s.rss_idle_mib, s.rss_after_ramp_mib, s.rss_max_mib, s.rss_end_mib, s.rss_growth_mib, s.rss_slope_mib_per_min, s.rss_after_close_mib
        ));
        let q = s.rss_median_by_quarter_mib;
        out.push_str(&format!(
            "  RSS median per quarter of the hold: {:.1} / {:.1} / {:.1} / {:.1} MiB; slope over the second half {:+.2} MiB/min\n",
            q[0], q[1], q[2], q[3], s.rss_second_half_slope_mib_per_min
        ));
        out.push_str(&format!(
            "  streams: max open {}, min open after the ramp {}, opened {}, completed {}, failed {}, open at stop {}; {} chunks ({:.0}/s); gateway CPU {:.0} s ({:.0}% of one core)\n",
            s.max_open_streams, s.min_open_after_ramp, s.streams_opened, s.streams_completed, s.streams_failed,
            s.streams_open_at_stop, s.chunks, s.mean_chunks_per_s, s.gateway_cpu_s,
            100.0 * s.gateway_cpu_s / s.elapsed_s.max(1e-9)
        ));
        for (why, n) in &s.failure_reasons {
            out.push_str(&format!("  failed {n}×: {why}\n"));
        }
        out.push_str(
            "  samples (t s: RSS MiB / streams open at the client / still generating at the backend):",
        );
        for (i, x) in s.samples.iter().enumerate() {
            if i % 5 == 0 {
                out.push_str("\n   ");
            }
            out.push_str(&format!(
                " {:.0}: {:.1}/{}/{}",
                x.t_s, x.rss_mib, x.open_streams, x.backend_in_flight
            ));
        }
        out.push('\n');
    }
    if let Some(t) = &r.throughput {
        out.push_str(&format!(
            "\n(d) throughput: {} concurrent streams of {} chunks emitted without delay; gateway [http] workers = 1{}\n",
            t.streams,
            t.tokens_per_stream,
            t.pinned_cpu.map_or(", not pinned".to_owned(), |c| format!(", pinned to CPU {c} (taskset)"))
        ));
        out.push_str(&format!(
            "  through the gateway {:.0} chunks/s, gateway CPU {:.0}% of one core → {:.0} chunks per gateway CPU-second ({:.1} µs/chunk); backend direct {:.0} chunks/s; streams completed {}, failed {}\n",
            t.through_chunks_per_s, 100.0 * t.gateway_cpu_utilisation, t.chunks_per_gateway_cpu_s,
            t.gateway_cpu_us_per_chunk, t.direct_chunks_per_s, t.through_streams_completed, t.failed
        ));
        for (why, n) in &t.failure_reasons {
            out.push_str(&format!("  failed {n}×: {why}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_reads_and_classify() {
        let mut e = Events::default();
        let mut seen = Vec::new();
        e.push(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"\",\"role\":\"assistant\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\" 12",
            |x| seen.push(x),
        );
        e.push(b"34\"}}]}\n\ndata: [DONE]\n\n", |x| seen.push(x));
        assert_eq!(seen, vec![Ev::Other, Ev::Content(Some(1234)), Ev::Done]);
        let mut e = Events::default();
        let mut seen = Vec::new();
        e.push(b"data: {\"delta\":{\"content\":\" word\"}}\n\n", |x| {
            seen.push(x)
        });
        assert_eq!(seen, vec![Ev::Content(None)]);
    }

    #[test]
    fn percentiles_and_durations() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = pcts(&mut v);
        assert_eq!((p.p50_ms, p.p99_ms, p.max_ms), (50.0, 99.0, 100.0));
        assert_eq!(parse_duration("600s"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("x").is_err());
    }
}
