//! Semantic shadow comparison of LLM candidates served by OpenAI-compatible endpoints
//! (`[[shadow.candidates]] kind = "openai"`).
//!
//! A replay pages captured generative events of a model (prompt = `input`, production's logged
//! answer = `output`) out of the store, sends every prompt to each candidate
//! (`POST {base_url}/chat/completions`, streamed with `stream = true` for the time to first token, rate-limited and with bounded
//! concurrency), and compares the candidate's answer with production's: semantic similarity
//! (cosine of the two answers' sentence embeddings, MiniLM), its distribution and a Student-t
//! interval for the mean, length and token ratios, latency and cost deltas, empty and refusal
//! rates, and the similarity on prompts whose production answer got positive or negative
//! feedback. The job is checkpointed per page in `shadow_runs` exactly like a classifier replay
//! (cursor + accumulators), so an interrupted run resumes without re-sending a prompt, and the
//! whole-window comparison lands in `shadow_metrics` (`llm` column, JSON; docs/shadow.md).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};
use vigil_store::rows::{ShadowMetricRow, ShadowRunRow};
use vigil_store::{sql_string, Store, StoreError};

use crate::encoder::SentenceEncoder;
use crate::error::{Error, Result};
use crate::replay::source::{Filters, Scope};
use crate::stats::{quantiles, Reservoir};

/// Similarities kept for quantiles (exact below this many answers).
pub const SIMILARITY_SAMPLE: usize = 20_000;

/// `production` of an LLM job: production's logged answers are the reference.
pub const LOGGED: &str = "logged";

/// One `[[shadow.candidates]]` entry: a candidate LLM behind an OpenAI-compatible endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmCandidate {
    /// Model (as in inference events) whose traffic the candidate is compared on.
    pub name: String,
    /// Candidate version (its id is `name@version`).
    pub version: String,
    /// `openai` (the only kind).
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Base URL including `/v1`, e.g. `http://llm.internal:8000/v1`.
    pub base_url: String,
    /// `model` field of the requests.
    pub model: String,
    /// Environment variable holding a bearer token (none: no `Authorization` header).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// `max_tokens` of the requests (none: the server's default).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature (default 0: as deterministic as the server allows).
    #[serde(default)]
    pub temperature: f64,
    /// Stream the answers (`"stream": true`, server-sent events) to measure the candidate's
    /// time to first token next to production's; off: one JSON answer, latency only.
    #[serde(default)]
    pub stream: bool,
    /// Requests per second, at most (none: unlimited).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Requests in flight, at most.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Price per 1,000 prompt tokens (cost of the candidate's answers).
    #[serde(default)]
    pub prompt_price_per_1k: f64,
    /// Price per 1,000 completion tokens.
    #[serde(default)]
    pub completion_price_per_1k: f64,
    /// Per-request timeout, e.g. `"60s"`.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Optional system message sent before the prompt.
    #[serde(default)]
    pub system_prompt: Option<String>,
}

fn default_kind() -> String {
    "openai".into()
}
fn default_concurrency() -> usize {
    4
}
fn default_timeout() -> String {
    "60s".into()
}

impl LlmCandidate {
    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// Checks what needs no network.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| {
            Err(Error::Config(format!(
                "[[shadow.candidates]] {}: {m}",
                self.id()
            )))
        };
        if self.kind != "openai" {
            return bad(format!(
                "kind = {:?}: only \"openai\" is supported",
                self.kind
            ));
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return bad(format!(
                "base_url = {:?} must be an http(s) URL",
                self.base_url
            ));
        }
        if self.model.trim().is_empty() || self.name.trim().is_empty() {
            return bad("`name` and `model` are required".into());
        }
        if self.concurrency == 0 {
            return bad("concurrency must be at least 1".into());
        }
        if self.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
            return bad("rate must be > 0 requests/s".into());
        }
        crate::config::parse_duration(&self.timeout)?;
        Ok(())
    }
}

/// `[shadow.llm_policy]`: thresholds of the LLM verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmPolicy {
    /// `equivalent` needs the similarity interval's lower bound at or above this; below it an
    /// answer counts as disagreeing (`agreement`).
    pub min_similarity: f64,
    /// Confidence level of the similarity interval.
    pub level: f64,
    /// Largest tolerated increase of the empty and refusal rates (candidate − production).
    pub max_rate_increase: f64,
    /// Largest tolerated share of failed requests.
    pub max_error_rate: f64,
    /// Answers needed before a verdict other than `inconclusive`.
    pub min_answers: u64,
    /// Outcome (value 1 = positive, 0 = negative) that labels production's answers.
    pub feedback_outcome: String,
}

impl Default for LlmPolicy {
    fn default() -> Self {
        Self {
            min_similarity: 0.8,
            level: 0.95,
            max_rate_increase: 0.05,
            max_error_rate: 0.05,
            min_answers: 10,
            feedback_outcome: "thumbs_up".into(),
        }
    }
}

/// One captured generative request.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Deserialize)]
pub struct LlmEvent {
    /// Inference event id.
    pub event_id: String,
    /// Unix seconds.
    pub ts: u32,
    /// The prompt.
    pub input: String,
    /// Production's answer.
    pub output: String,
    /// Production's completion tokens (-1: unknown).
    pub completion_tokens: i64,
    /// Production's latency in ms (-1: unknown).
    pub latency_ms: f64,
    /// Production's time to first token in ms (-1: unknown).
    pub ttft_ms: f64,
    /// Production's cost (-1: unknown).
    pub cost: f64,
}

/// The next page of generative events (with an answer) after the cursor.
pub async fn page(
    store: &Store,
    scope: &Scope<'_>,
    cursor: (u32, &str),
    page: usize,
) -> std::result::Result<Vec<LlmEvent>, StoreError> {
    let after = if cursor.0 == 0 && cursor.1.is_empty() {
        String::new()
    } else {
        format!(
            " AND (ts > toDateTime({ts}) OR (ts = toDateTime({ts}) AND event_id > {id}))",
            ts = cursor.0,
            id = sql_string(cursor.1)
        )
    };
    store
        .fetch::<LlmEvent>(&format!(
            "SELECT toString(event_id) AS event_id, toUInt32(ts) AS ts,
                    toString(input) AS input, toString(output) AS output,
                    toInt64(ifNull(toInt64(completion_tokens), -1)) AS completion_tokens,
                    toFloat64(ifNull(toFloat64(latency_ms), -1)) AS latency_ms,
                    toFloat64(ifNull(toFloat64(ttft_ms), -1)) AS ttft_ms,
                    toFloat64(ifNull(toFloat64(cost), -1)) AS cost
             FROM {} FINAL
             WHERE {} AND output != ''{after}
             ORDER BY ts, event_id
             LIMIT {page}",
            store.table("inference_events"),
            scope.where_clause()
        ))
        .await
}

/// Events in scope with an answer.
pub async fn count(store: &Store, scope: &Scope<'_>) -> std::result::Result<u64, StoreError> {
    #[derive(clickhouse::Row, Deserialize)]
    struct N {
        n: u64,
    }
    let rows = store
        .fetch::<N>(&format!(
            "SELECT toUInt64(count()) AS n FROM {} FINAL WHERE {} AND output != ''",
            store.table("inference_events"),
            scope.where_clause()
        ))
        .await?;
    Ok(rows.first().map_or(0, |r| r.n))
}

/// Feedback on production's answers: event id → latest value of `outcome` (1 positive).
async fn feedback(
    store: &Store,
    model: &str,
    outcome: &str,
    ids: &[&str],
) -> std::result::Result<HashMap<String, f64>, StoreError> {
    #[derive(clickhouse::Row, Deserialize)]
    struct F {
        inference_id: String,
        value: f64,
    }
    if ids.is_empty() || outcome.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<String> = ids.iter().map(|i| sql_string(i)).collect();
    let rows = store
        .fetch::<F>(&format!(
            "SELECT toString(l_id) AS inference_id, toFloat64(l_value) AS value
             FROM (SELECT inference_id AS l_id, argMax(value, ts_ms) AS l_value
                   FROM {} FINAL
                   WHERE model = {} AND name = {} AND inference_id IN ({})
                   GROUP BY inference_id)",
            store.table("outcome_events"),
            sql_string(model),
            sql_string(outcome),
            ids.join(",")
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.inference_id, r.value))
        .collect())
}

/// One candidate answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The answer text (`choices[0].message.content`).
    pub text: String,
    /// `usage.prompt_tokens` (None: not reported).
    pub prompt_tokens: Option<u64>,
    /// `usage.completion_tokens`.
    pub completion_tokens: Option<u64>,
    /// Request to full answer, ms.
    pub latency_ms: f64,
    /// Request to the first non-empty content delta, ms (streamed replays only).
    pub ttft_ms: Option<f64>,
}

/// A client of one candidate endpoint with its rate limiter and concurrency bound.
pub struct Client {
    spec: LlmCandidate,
    http: reqwest::Client,
    key: Option<String>,
    slots: Arc<tokio::sync::Semaphore>,
    next: Arc<tokio::sync::Mutex<Instant>>,
}

impl Client {
    /// A client for `spec` (reads the API key from its environment variable).
    pub fn new(spec: &LlmCandidate) -> Result<Self> {
        let timeout = crate::config::parse_duration(&spec.timeout)?;
        let key = match &spec.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                Error::Config(format!(
                    "{}: api_key_env = {var:?} is not set in the environment",
                    spec.id()
                ))
            })?),
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(u64::from(timeout.max(1))))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            spec: spec.clone(),
            http,
            key,
            slots: Arc::new(tokio::sync::Semaphore::new(spec.concurrency.max(1))),
            next: Arc::new(tokio::sync::Mutex::new(Instant::now())),
        })
    }

    /// Waits for a rate-limit slot (`1/rate` seconds after the previous one).
    async fn pace(&self) {
        let Some(rate) = self.spec.rate else {
            return;
        };
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + Duration::from_secs_f64(1.0 / rate);
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }

    /// Sends one prompt; an error is the reason the request failed.
    pub async fn ask(&self, prompt: &str) -> std::result::Result<Answer, String> {
        let _permit = self.slots.acquire().await.map_err(|e| e.to_string())?;
        self.pace().await;
        let mut messages = Vec::new();
        if let Some(system) = &self.spec.system_prompt {
            messages.push(serde_json::json!({"role": "system", "content": system}));
        }
        messages.push(serde_json::json!({"role": "user", "content": prompt}));
        let mut body = serde_json::json!({
            "model": self.spec.model,
            "messages": messages,
            "temperature": self.spec.temperature,
            "stream": self.spec.stream,
        });
        if self.spec.stream {
            // The final chunk then carries `usage` (vLLM, llama.cpp, OpenAI; others omit it).
            body["stream_options"] = serde_json::json!({"include_usage": true});
        }
        if let Some(m) = self.spec.max_tokens {
            body["max_tokens"] = m.into();
        }
        let url = format!(
            "{}/chat/completions",
            self.spec.base_url.trim_end_matches('/')
        );
        let started = Instant::now();
        let mut req = self.http.post(&url).json(&body);
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status();
        if self.spec.stream && status.is_success() {
            return read_stream(resp, started)
                .await
                .map_err(|e| format!("POST {url}: {e}"));
        }
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| format!("POST {url}: HTTP {status}, unreadable body: {e}"))?;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if !status.is_success() {
            return Err(format!("POST {url}: HTTP {status}: {v}"));
        }
        let text = v
            .pointer("/choices/0/message/content")
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_string();
        Ok(Answer {
            text,
            prompt_tokens: v.pointer("/usage/prompt_tokens").and_then(|t| t.as_u64()),
            completion_tokens: v
                .pointer("/usage/completion_tokens")
                .and_then(|t| t.as_u64()),
            latency_ms,
            ttft_ms: None,
        })
    }

    /// Cost of an answer at the configured prices (None: no prices configured, or the server
    /// reported no usage).
    fn cost(&self, a: &Answer) -> Option<f64> {
        if self.spec.prompt_price_per_1k == 0.0 && self.spec.completion_price_per_1k == 0.0 {
            return None;
        }
        Some(
            (a.prompt_tokens? as f64 * self.spec.prompt_price_per_1k
                + a.completion_tokens? as f64 * self.spec.completion_price_per_1k)
                / 1000.0,
        )
    }
}

/// Reads a streamed chat completion (server-sent events: `data: {chunk}` lines, `data: [DONE]`)
/// into one answer: the content deltas joined, `usage` from the chunk that has it, the time to
/// the first non-empty content delta, and the time to the end of the stream.
async fn read_stream(
    mut resp: reqwest::Response,
    started: Instant,
) -> std::result::Result<Answer, String> {
    let mut answer = Answer {
        text: String::new(),
        prompt_tokens: None,
        completion_tokens: None,
        latency_ms: 0.0,
        ttft_ms: None,
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut done = false;
    while !done {
        let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("reading the stream: {e}"))?
        else {
            break;
        };
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim().strip_prefix("data:") else {
                continue; // blank separators, `event:`/`id:` fields, comments
            };
            let data = data.trim();
            if data == "[DONE]" {
                done = true;
                break;
            }
            let v: serde_json::Value = serde_json::from_str(data)
                .map_err(|e| format!("unreadable stream chunk {data:?}: {e}"))?;
            if let Some(err) = v.get("error") {
                return Err(format!("error in the stream: {err}"));
            }
            if let Some(delta) = v
                .pointer("/choices/0/delta/content")
                .and_then(|c| c.as_str())
            {
                if !delta.is_empty() && answer.ttft_ms.is_none() {
                    answer.ttft_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                }
                answer.text.push_str(delta);
            }
            if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
                answer.prompt_tokens = u.get("prompt_tokens").and_then(|t| t.as_u64());
                answer.completion_tokens = u.get("completion_tokens").and_then(|t| t.as_u64());
            }
        }
    }
    answer.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(answer)
}

/// A running mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Mean {
    /// Values added.
    pub n: u64,
    /// Their sum.
    pub sum: f64,
}

impl Mean {
    fn add(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
    }
    fn get(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            self.sum / self.n as f64
        }
    }
}

/// What one candidate's answers add up to (the checkpointed state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmAccumulator {
    /// Prompts sent.
    pub requests: u64,
    /// Requests that failed (transport, HTTP status, body).
    pub errors: u64,
    /// First error message seen.
    pub first_error: String,
    /// Answers compared.
    pub answered: u64,
    /// Sum and sum of squares of the similarity (exact mean and variance).
    pub sim_sum: f64,
    /// Sum of squared similarities.
    pub sim_sq: f64,
    /// Similarity sample for quantiles.
    pub sims: Reservoir<f64>,
    /// Answers whose similarity is at least `min_similarity`.
    pub agree: u64,
    /// Empty answers (candidate, production).
    pub empty: (u64, u64),
    /// Refusal-like answers (candidate, production).
    pub refusal: (u64, u64),
    /// Characters (candidate, production) over compared answers.
    pub chars: (u64, u64),
    /// Completion tokens (candidate, production) over answers where both are known.
    pub tokens: (u64, u64),
    /// Latency ms (candidate, production).
    pub latency: (Mean, Mean),
    /// Production's time to first token.
    pub prod_ttft: Mean,
    /// The candidate's time to first token (streamed replays only).
    #[serde(default)]
    pub cand_ttft: Mean,
    /// Cost per answer where both are known (candidate, production).
    pub cost: (Mean, Mean),
    /// Similarity on prompts whose production answer got positive / negative feedback.
    pub feedback: (Mean, Mean),
}

/// One candidate answer next to production's (negative numbers: unknown).
#[derive(Debug, Clone, Copy)]
pub struct Pair<'a> {
    /// The candidate's answer.
    pub cand_text: &'a str,
    /// Production's answer.
    pub prod_text: &'a str,
    /// Cosine of their embeddings (0 for an empty candidate answer).
    pub similarity: f64,
    /// Completion tokens (candidate, production).
    pub tokens: (i64, i64),
    /// Latency ms (candidate, production).
    pub latency_ms: (f64, f64),
    /// Production's time to first token, ms.
    pub prod_ttft_ms: f64,
    /// The candidate's time to first token, ms (negative: not streamed).
    pub cand_ttft_ms: f64,
    /// Cost (candidate, production).
    pub cost: (f64, f64),
    /// Feedback on production's answer (1 positive, 0 negative).
    pub feedback: Option<f64>,
}

impl LlmAccumulator {
    /// Adds one compared answer.
    pub fn observe(
        &mut self,
        p: &Pair<'_>,
        policy: &LlmPolicy,
        text_opts: &vigil_analyzer::text::TextOptions,
    ) {
        let sim = p.similarity.clamp(-1.0, 1.0);
        let cand_empty = p.cand_text.trim().is_empty();
        self.answered += 1;
        self.sim_sum += sim;
        self.sim_sq += sim * sim;
        self.sims.push(sim);
        if sim >= policy.min_similarity {
            self.agree += 1;
        }
        self.empty.0 += u64::from(cand_empty);
        self.empty.1 += u64::from(p.prod_text.trim().is_empty());
        self.refusal.0 += u64::from(is_refusal(p.cand_text, text_opts));
        self.refusal.1 += u64::from(is_refusal(p.prod_text, text_opts));
        self.chars.0 += p.cand_text.chars().count() as u64;
        self.chars.1 += p.prod_text.chars().count() as u64;
        if p.tokens.0 >= 0 && p.tokens.1 >= 0 {
            self.tokens.0 += p.tokens.0 as u64;
            self.tokens.1 += p.tokens.1 as u64;
        }
        if p.latency_ms.0 >= 0.0 {
            self.latency.0.add(p.latency_ms.0);
        }
        if p.latency_ms.1 >= 0.0 {
            self.latency.1.add(p.latency_ms.1);
        }
        if p.prod_ttft_ms >= 0.0 {
            self.prod_ttft.add(p.prod_ttft_ms);
        }
        if p.cand_ttft_ms >= 0.0 {
            self.cand_ttft.add(p.cand_ttft_ms);
        }
        if p.cost.0 >= 0.0 && p.cost.1 >= 0.0 {
            self.cost.0.add(p.cost.0);
            self.cost.1.add(p.cost.1);
        }
        match p.feedback {
            Some(v) if v > 0.0 => self.feedback.0.add(sim),
            Some(_) => self.feedback.1.add(sim),
            None => {}
        }
    }

    /// Counts a failed request.
    pub fn fail(&mut self, error: &str) {
        self.errors += 1;
        if self.first_error.is_empty() {
            self.first_error = error.chars().take(300).collect();
        }
    }

    /// An empty accumulator.
    pub fn new(seed: u64) -> Self {
        Self {
            requests: 0,
            errors: 0,
            first_error: String::new(),
            answered: 0,
            sim_sum: 0.0,
            sim_sq: 0.0,
            sims: Reservoir::new(SIMILARITY_SAMPLE, seed),
            agree: 0,
            empty: (0, 0),
            refusal: (0, 0),
            chars: (0, 0),
            tokens: (0, 0),
            latency: (Mean::default(), Mean::default()),
            prod_ttft: Mean::default(),
            cand_ttft: Mean::default(),
            cost: (Mean::default(), Mean::default()),
            feedback: (Mean::default(), Mean::default()),
        }
    }

    /// The summary and verdict under `policy`.
    pub fn summary(&self, policy: &LlmPolicy) -> LlmSummary {
        let n = self.answered;
        let rate = |k: u64, of: u64| {
            if of == 0 {
                f64::NAN
            } else {
                k as f64 / of as f64
            }
        };
        let mean = if n == 0 {
            f64::NAN
        } else {
            self.sim_sum / n as f64
        };
        let sd = if n < 2 {
            f64::NAN
        } else {
            ((self.sim_sq - n as f64 * mean * mean) / (n - 1) as f64)
                .max(0.0)
                .sqrt()
        };
        let (low, high) = if n < 2 {
            (f64::NAN, f64::NAN)
        } else {
            let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
                .map(|d| d.inverse_cdf(0.5 + policy.level / 2.0))
                .unwrap_or(1.96);
            let half = t * sd / (n as f64).sqrt();
            ((mean - half).max(-1.0), (mean + half).min(1.0))
        };
        let q = quantiles(self.sims.items(), &[0.05, 0.10, 0.50, 0.90]);
        let ratio = |(c, p): (u64, u64)| {
            if p == 0 {
                f64::NAN
            } else {
                c as f64 / p as f64
            }
        };
        let (cl, pl) = (self.latency.0.get(), self.latency.1.get());
        let (cc, pc) = (self.cost.0.get(), self.cost.1.get());
        let mut s = LlmSummary {
            requests: self.requests,
            errors: self.errors,
            error_rate: rate(self.errors, self.requests),
            first_error: self.first_error.clone(),
            answered: n,
            similarity_mean: mean,
            similarity_sd: sd,
            similarity_low: low,
            similarity_high: high,
            similarity_p05: q[0],
            similarity_p10: q[1],
            similarity_p50: q[2],
            similarity_p90: q[3],
            agreement: rate(self.agree, n),
            length_ratio: ratio(self.chars),
            token_ratio: ratio(self.tokens),
            cand_latency_ms: cl,
            prod_latency_ms: pl,
            latency_delta_ms: cl - pl,
            prod_ttft_ms: self.prod_ttft.get(),
            cand_ttft_ms: self.cand_ttft.get(),
            ttft_delta_ms: self.cand_ttft.get() - self.prod_ttft.get(),
            cand_cost: cc,
            prod_cost: pc,
            cost_delta: cc - pc,
            cand_empty_rate: rate(self.empty.0, n),
            prod_empty_rate: rate(self.empty.1, n),
            cand_refusal_rate: rate(self.refusal.0, n),
            prod_refusal_rate: rate(self.refusal.1, n),
            feedback_positive: self.feedback.0.n,
            feedback_negative: self.feedback.1.n,
            similarity_on_positive: self.feedback.0.get(),
            similarity_on_negative: self.feedback.1.get(),
            verdict: String::new(),
            reasons: Vec::new(),
        };
        s.judge(policy);
        s
    }
}

/// The comparison of one LLM candidate with production's logged answers (the `llm` JSON of a
/// `shadow_metrics` row; NaN is written as null).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmSummary {
    /// Prompts sent.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// errors / requests.
    pub error_rate: f64,
    /// First failure, for the operator.
    pub first_error: String,
    /// Answers compared.
    pub answered: u64,
    /// Mean cosine similarity of candidate and production answers (MiniLM embeddings).
    pub similarity_mean: f64,
    /// Its standard deviation.
    pub similarity_sd: f64,
    /// Lower bound of the Student-t interval of the mean (`level`).
    pub similarity_low: f64,
    /// Upper bound.
    pub similarity_high: f64,
    /// 5th percentile.
    pub similarity_p05: f64,
    /// 10th percentile.
    pub similarity_p10: f64,
    /// Median.
    pub similarity_p50: f64,
    /// 90th percentile.
    pub similarity_p90: f64,
    /// Share of answers with similarity ≥ `min_similarity`.
    pub agreement: f64,
    /// Candidate characters / production characters (totals).
    pub length_ratio: f64,
    /// Candidate completion tokens / production's (totals over answers where both are known).
    pub token_ratio: f64,
    /// Mean candidate latency (ms, measured by the replay).
    pub cand_latency_ms: f64,
    /// Mean production latency (ms, as logged).
    pub prod_latency_ms: f64,
    /// cand − prod latency.
    pub latency_delta_ms: f64,
    /// Mean production time to first token (ms, as logged).
    pub prod_ttft_ms: f64,
    /// Mean candidate time to first token (ms, measured by a streamed replay; NaN otherwise).
    pub cand_ttft_ms: f64,
    /// cand − prod time to first token.
    pub ttft_delta_ms: f64,
    /// Mean candidate cost per answer (configured prices × usage).
    pub cand_cost: f64,
    /// Mean production cost per answer (as logged).
    pub prod_cost: f64,
    /// cand − prod cost per answer.
    pub cost_delta: f64,
    /// Share of empty candidate answers.
    pub cand_empty_rate: f64,
    /// Share of empty production answers.
    pub prod_empty_rate: f64,
    /// Share of refusal-like candidate answers.
    pub cand_refusal_rate: f64,
    /// Share of refusal-like production answers.
    pub prod_refusal_rate: f64,
    /// Prompts whose production answer got positive feedback.
    pub feedback_positive: u64,
    /// ... negative feedback.
    pub feedback_negative: u64,
    /// Mean similarity on those with positive feedback.
    pub similarity_on_positive: f64,
    /// ... negative feedback.
    pub similarity_on_negative: f64,
    /// `equivalent`, `different`, `rejected` or `inconclusive`.
    pub verdict: String,
    /// Why.
    pub reasons: Vec<String>,
}

impl LlmSummary {
    fn judge(&mut self, p: &LlmPolicy) {
        let mut rejected = Vec::new();
        if self.requests > 0 && self.error_rate > p.max_error_rate {
            rejected.push(format!(
                "error rate {:.1}% > {:.1}% ({})",
                self.error_rate * 100.0,
                p.max_error_rate * 100.0,
                self.first_error
            ));
        }
        for (what, c, pr) in [
            ("empty", self.cand_empty_rate, self.prod_empty_rate),
            ("refusal", self.cand_refusal_rate, self.prod_refusal_rate),
        ] {
            if c.is_finite() && c - pr.max(0.0) > p.max_rate_increase {
                rejected.push(format!(
                    "{what} rate {:.1}% vs production {:.1}% (more than +{:.1} pts)",
                    c * 100.0,
                    pr * 100.0,
                    p.max_rate_increase * 100.0
                ));
            }
        }
        let interval = format!(
            "similarity {:.3} [{:.3}, {:.3}]",
            self.similarity_mean, self.similarity_low, self.similarity_high
        );
        self.verdict = if !rejected.is_empty() {
            self.reasons = rejected;
            if self.similarity_high < p.min_similarity {
                self.reasons
                    .push(format!("{interval} below {}", p.min_similarity));
            }
            "rejected".into()
        } else if self.answered < p.min_answers.max(2) {
            self.reasons.push(format!(
                "{} answers, fewer than min_answers = {}",
                self.answered, p.min_answers
            ));
            "inconclusive".into()
        } else if self.similarity_low >= p.min_similarity {
            self.reasons.push(format!(
                "{interval}: lower bound at or above {}",
                p.min_similarity
            ));
            "equivalent".into()
        } else if self.similarity_high < p.min_similarity {
            self.reasons.push(format!(
                "{interval}: upper bound below {}",
                p.min_similarity
            ));
            "different".into()
        } else {
            self.reasons.push(format!(
                "{interval}: interval contains {}",
                p.min_similarity
            ));
            "inconclusive".into()
        };
    }
}

/// An [`LlmSummary`] read back from its JSON (NaN was written as null).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
#[allow(missing_docs)]
pub struct LlmSummaryView {
    pub requests: u64,
    pub errors: u64,
    pub answered: u64,
    pub similarity_mean: Option<f64>,
    pub similarity_low: Option<f64>,
    pub similarity_high: Option<f64>,
    pub similarity_p10: Option<f64>,
    pub similarity_p50: Option<f64>,
    pub similarity_p90: Option<f64>,
    pub agreement: Option<f64>,
    pub length_ratio: Option<f64>,
    pub token_ratio: Option<f64>,
    pub cand_latency_ms: Option<f64>,
    pub prod_latency_ms: Option<f64>,
    pub latency_delta_ms: Option<f64>,
    pub cand_ttft_ms: Option<f64>,
    pub prod_ttft_ms: Option<f64>,
    pub ttft_delta_ms: Option<f64>,
    pub cost_delta: Option<f64>,
    pub cand_empty_rate: Option<f64>,
    pub prod_empty_rate: Option<f64>,
    pub cand_refusal_rate: Option<f64>,
    pub prod_refusal_rate: Option<f64>,
    pub similarity_on_positive: Option<f64>,
    pub similarity_on_negative: Option<f64>,
    pub verdict: String,
    pub reasons: Vec<String>,
}

/// The checkpointed state of an LLM job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LlmState {
    /// Accumulator per candidate id.
    pub totals: BTreeMap<String, LlmAccumulator>,
}

/// A finished (or stopped) LLM replay.
#[derive(Debug, Clone, Serialize)]
pub struct LlmRunReport {
    /// Job id.
    pub job_id: String,
    /// Model.
    pub model: String,
    /// Job status.
    pub status: String,
    /// Prompts replayed over all resumptions.
    pub processed: u64,
    /// ... by this invocation.
    pub this_run: u64,
    /// Wall seconds of this invocation.
    pub wall_secs: f64,
    /// Per candidate.
    pub candidates: Vec<(String, LlmSummary)>,
}

/// What an LLM replay needs.
pub struct LlmReplay<'a> {
    /// Model name.
    pub model: &'a str,
    /// Window, sample, filters.
    pub scope: Scope<'a>,
    /// Prompts per page (one checkpoint per page).
    pub page_size: usize,
    /// Verdict thresholds.
    pub policy: &'a LlmPolicy,
    /// The candidates' clients.
    pub clients: &'a [Client],
    /// The similarity encoder.
    pub encoder: &'a SentenceEncoder,
}

fn is_refusal(text: &str, opts: &vigil_analyzer::text::TextOptions) -> bool {
    vigil_analyzer::text::describe(text, opts).refusal
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

/// Candidate ids of the clients.
pub fn candidate_ids(clients: &[Client]) -> Vec<String> {
    clients.iter().map(|c| c.spec.id()).collect()
}

/// A new LLM job row.
pub fn new_job(r: &LlmReplay<'_>, filters: &Filters, job_id: &str) -> ShadowRunRow {
    let now = crate::replay::now_ms();
    ShadowRunRow {
        job_id: job_id.to_string(),
        model: r.model.to_string(),
        production: format!("{}@{LOGGED}", r.model),
        candidates: candidate_ids(r.clients).join(","),
        since: r.scope.since,
        until: r.scope.until,
        sample_rate: r.scope.sample_rate,
        filters: serde_json::to_string(filters).unwrap_or_else(|_| "{}".into()),
        status: "running".into(),
        cursor_ts: 0,
        cursor_event_id: String::new(),
        processed: 0,
        skipped: 0,
        started_at: (now / 1000) as u32,
        updated_ms: now,
        error: String::new(),
        state: String::new(),
    }
}

async fn process_page(
    store: &Store,
    r: &LlmReplay<'_>,
    state: &mut LlmState,
    events: &[LlmEvent],
) -> Result<()> {
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let fb = feedback(store, r.model, &r.policy.feedback_outcome, &ids).await?;
    let text_opts = vigil_analyzer::text::TextOptions::default();
    let prod_texts: Vec<&str> = events.iter().map(|e| e.output.as_str()).collect();
    let prod_emb = tokio::task::block_in_place(|| r.encoder.encode(&prod_texts))?;
    for (ci, client) in r.clients.iter().enumerate() {
        let cid = client.spec.id();
        // Every prompt of the page in flight at once, bounded by the client's semaphore and
        // paced by its rate limiter; answers come back in page order.
        let answers: Vec<std::result::Result<Answer, String>> =
            futures_join(events.iter().map(|e| client.ask(&e.input))).await;
        let ok: Vec<(usize, &Answer)> = answers
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.as_ref().ok().map(|a| (i, a)))
            .collect();
        let cand_texts: Vec<&str> = ok.iter().map(|(_, a)| a.text.as_str()).collect();
        let cand_emb = if cand_texts.is_empty() {
            Vec::new()
        } else {
            tokio::task::block_in_place(|| r.encoder.encode(&cand_texts))?
        };
        let acc = state
            .totals
            .entry(cid)
            .or_insert_with(|| LlmAccumulator::new(0x11A ^ ci as u64));
        for a in &answers {
            acc.requests += 1;
            if let Err(e) = a {
                acc.fail(e);
            }
        }
        for (k, (i, a)) in ok.iter().enumerate() {
            let e = &events[*i];
            let sim = if a.text.trim().is_empty() {
                0.0
            } else {
                dot(&cand_emb[k], &prod_emb[*i])
            };
            acc.observe(
                &Pair {
                    cand_text: &a.text,
                    prod_text: &e.output,
                    similarity: sim,
                    tokens: (
                        a.completion_tokens.map(|t| t as i64).unwrap_or(-1),
                        e.completion_tokens,
                    ),
                    latency_ms: (a.latency_ms, e.latency_ms),
                    prod_ttft_ms: e.ttft_ms,
                    cand_ttft_ms: a.ttft_ms.unwrap_or(-1.0),
                    cost: (client.cost(a).unwrap_or(-1.0), e.cost),
                    feedback: fb.get(&e.event_id).copied(),
                },
                r.policy,
                &text_opts,
            );
        }
    }
    Ok(())
}

/// Awaits every future concurrently (on this task), results in order.
async fn futures_join<F, T>(futs: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<T>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Mirrored LLM answers read per call at most (the first ones of the window, by version and id).
pub const MIRRORED_LIMIT: usize = 20_000;

/// One mirrored LLM answer next to the answer production served for the same request.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Deserialize)]
struct MirroredPair {
    version: String,
    event_id: String,
    status: u16,
    error: String,
    cand_text: String,
    prod_text: String,
    cand_tokens: i64,
    prod_tokens: i64,
    cand_latency_ms: f64,
    prod_latency_ms: f64,
    prod_ttft_ms: f64,
    cand_cost: f64,
    prod_cost: f64,
}

/// The semantic comparison of the gateway's mirrored LLM answers (`shadow_responses`) of
/// `model` in `[since, until)` with the answers production served for the same requests (an
/// inference event with an `output`): per candidate version, the same measures and verdict as
/// an LLM replay. Non-2xx mirrors count as errors. At most [`MIRRORED_LIMIT`] answers.
pub async fn compare_mirrored_llm(
    store: &Store,
    model: &str,
    (since, until): (u32, u32),
    encoder: &SentenceEncoder,
    policy: &LlmPolicy,
) -> Result<Vec<(String, LlmSummary)>> {
    let pairs = store
        .fetch::<MirroredPair>(&format!(
            "SELECT toString(s_version) AS version, toString(event_id) AS event_id,
                    toUInt16(s_status) AS status, toString(s_error) AS error,
                    toString(s_text) AS cand_text, toString(i_output) AS prod_text,
                    toInt64(s_ct) AS cand_tokens, toInt64(i_ct) AS prod_tokens,
                    toFloat64(s_latency) AS cand_latency_ms, toFloat64(i_latency) AS prod_latency_ms,
                    toFloat64(i_ttft) AS prod_ttft_ms, toFloat64(s_cost) AS cand_cost,
                    toFloat64(i_cost) AS prod_cost
             FROM (
                 SELECT version AS s_version, request_id AS event_id, status AS s_status,
                        error AS s_error, text AS s_text,
                        toInt64(ifNull(toInt64(completion_tokens), -1)) AS s_ct,
                        toFloat64(latency_ms) AS s_latency,
                        toFloat64(ifNull(toFloat64(cost), -1)) AS s_cost
                 FROM {responses}
                 WHERE model = {m} AND ts >= toDateTime({since}) AND ts < toDateTime({until})
             ) AS mirrored ANY LEFT JOIN (
                 SELECT event_id, toUInt8(1) AS i_found, output AS i_output,
                        toInt64(ifNull(toInt64(completion_tokens), -1)) AS i_ct,
                        toFloat64(ifNull(toFloat64(latency_ms), -1)) AS i_latency,
                        toFloat64(ifNull(toFloat64(ttft_ms), -1)) AS i_ttft,
                        toFloat64(ifNull(toFloat64(cost), -1)) AS i_cost
                 FROM {inference} FINAL
                 WHERE model = {m} AND output != ''
                   AND ts >= toDateTime({since_pad}) AND ts < toDateTime({until_pad})
             ) AS served USING event_id
             WHERE i_found = 1
             ORDER BY version, event_id
             LIMIT {MIRRORED_LIMIT}",
            responses = store.table("shadow_responses"),
            inference = store.table("inference_events"),
            m = sql_string(model),
            since_pad = since.saturating_sub(3600),
            until_pad = until.saturating_add(3600),
        ))
        .await?;
    // (ANY LEFT JOIN + i_found rather than ANY INNER JOIN: recent ClickHouse versions make ANY
    // INNER JOIN keep one row per key on both sides, i.e. one candidate per request.)
    let text_opts = vigil_analyzer::text::TextOptions::default();
    let mut accs: BTreeMap<String, LlmAccumulator> = BTreeMap::new();
    for chunk in pairs.chunks(256) {
        let answered: Vec<&MirroredPair> = chunk
            .iter()
            .filter(|p| (200..300).contains(&p.status))
            .collect();
        let texts: Vec<&str> = answered
            .iter()
            .flat_map(|p| [p.cand_text.as_str(), p.prod_text.as_str()])
            .collect();
        let emb = if texts.is_empty() {
            Vec::new()
        } else {
            tokio::task::block_in_place(|| encoder.encode(&texts))?
        };
        for p in chunk {
            let n = accs.len() as u64;
            let acc = accs
                .entry(p.version.clone())
                .or_insert_with(|| LlmAccumulator::new(0x31A ^ n));
            acc.requests += 1;
            if !(200..300).contains(&p.status) {
                acc.fail(&format!("HTTP {} {}", p.status, p.error));
            }
        }
        for (k, p) in answered.iter().enumerate() {
            let sim = if p.cand_text.trim().is_empty() {
                0.0
            } else {
                dot(&emb[2 * k], &emb[2 * k + 1])
            };
            if let Some(acc) = accs.get_mut(&p.version) {
                acc.observe(
                    &Pair {
                        cand_text: &p.cand_text,
                        prod_text: &p.prod_text,
                        similarity: sim,
                        tokens: (p.cand_tokens, p.prod_tokens),
                        latency_ms: (p.cand_latency_ms, p.prod_latency_ms),
                        prod_ttft_ms: p.prod_ttft_ms,
                        // Mirrors are read whole by the gateway: no time to first token.
                        cand_ttft_ms: -1.0,
                        cost: (p.cand_cost, p.prod_cost),
                        feedback: None,
                    },
                    policy,
                    &text_opts,
                );
            }
        }
    }
    Ok(accs
        .into_iter()
        .map(|(v, a)| (v, a.summary(policy)))
        .collect())
}

fn llm_metric_row(job: &ShadowRunRow, cid: &str, s: &LlmSummary) -> ShadowMetricRow {
    let f = |x: f64| if x.is_finite() { x } else { 0.0 };
    ShadowMetricRow {
        job_id: job.job_id.clone(),
        model: job.model.clone(),
        production: job.production.clone(),
        candidate: cid.to_string(),
        kind: "total".into(),
        bucket_start: job.since,
        bucket_end: job.until,
        n: s.answered,
        agreement: f(s.agreement),
        replay_agreement: 0.0,
        score_delta_mean: 0.0,
        score_delta_p05: 0.0,
        score_delta_p50: 0.0,
        score_delta_p95: 0.0,
        cosine_mean: f(s.similarity_mean),
        cosine_p05: f(s.similarity_p05),
        top_shift_label: String::new(),
        top_shift: 0.0,
        labelled: 0,
        prod_accuracy: 0.0,
        cand_accuracy: 0.0,
        accuracy_delta: 0.0,
        accuracy_delta_low: 0.0,
        accuracy_delta_high: 0.0,
        prod_f1: 0.0,
        cand_f1: 0.0,
        f1_delta: 0.0,
        f1_delta_low: 0.0,
        f1_delta_high: 0.0,
        prod_ms_per_input: f(s.prod_latency_ms),
        cand_ms_per_input: f(s.cand_latency_ms),
        cand_inputs_per_sec: 0.0,
        verdict: s.verdict.clone(),
        reasons: serde_json::to_string(&s.reasons).unwrap_or_else(|_| "[]".into()),
        written_at: (crate::replay::now_ms() / 1000) as u32,
        llm: serde_json::to_string(s).unwrap_or_default(),
    }
}

async fn checkpoint(store: &Store, job: &mut ShadowRunRow, state: &LlmState) -> Result<()> {
    job.updated_ms = crate::replay::now_ms();
    job.state = serde_json::to_string(state)
        .map_err(|e| Error::Config(format!("cannot serialise the checkpoint: {e}")))?;
    store.insert(std::slice::from_ref(job)).await?;
    Ok(())
}

/// Runs (or resumes) an LLM job to the end of its window. `stop_after_pages` leaves it
/// resumable after that many pages.
pub async fn run_job(
    store: &Store,
    r: &LlmReplay<'_>,
    mut job: ShadowRunRow,
    progress: &mut dyn FnMut(u64),
    stop_after_pages: Option<usize>,
) -> Result<LlmRunReport> {
    let started = Instant::now();
    let mut state: LlmState = if job.state.is_empty() {
        LlmState::default()
    } else {
        serde_json::from_str(&job.state).map_err(|e| {
            Error::Config(format!(
                "job {} has an unreadable checkpoint ({e}); start a new run",
                job.job_id
            ))
        })?
    };
    for (i, c) in candidate_ids(r.clients).into_iter().enumerate() {
        state
            .totals
            .entry(c)
            .or_insert_with(|| LlmAccumulator::new(0x11A ^ i as u64));
    }
    let limit = r.scope.filters.limit.unwrap_or(u64::MAX);
    job.status = "running".into();
    job.updated_ms = crate::replay::now_ms();
    store.insert(std::slice::from_ref(&job)).await?;
    let start_processed = job.processed;
    let mut pages = 0usize;
    loop {
        if job.processed >= limit || stop_after_pages.is_some_and(|p| pages >= p) {
            break;
        }
        let want = (r.page_size as u64).min(limit - job.processed) as usize;
        let events = page(store, &r.scope, (job.cursor_ts, &job.cursor_event_id), want).await?;
        if events.is_empty() {
            break;
        }
        process_page(store, r, &mut state, &events).await?;
        if let Some(last) = events.last() {
            job.cursor_ts = last.ts;
            job.cursor_event_id = last.event_id.clone();
        }
        job.processed += events.len() as u64;
        checkpoint(store, &mut job, &state).await?;
        progress(job.processed);
        pages += 1;
        if events.len() < want {
            break;
        }
    }
    let finished = stop_after_pages.is_none_or(|p| pages < p) || job.processed >= limit;
    let summaries: Vec<(String, LlmSummary)> = state
        .totals
        .iter()
        .map(|(c, a)| (c.clone(), a.summary(r.policy)))
        .collect();
    if finished {
        let rows: Vec<ShadowMetricRow> = summaries
            .iter()
            .map(|(c, s)| llm_metric_row(&job, c, s))
            .collect();
        store.insert(&rows).await?;
        job.status = "done".into();
    } else {
        job.status = "stopped".into();
    }
    checkpoint(store, &mut job, &state).await?;
    Ok(LlmRunReport {
        job_id: job.job_id.clone(),
        model: job.model.clone(),
        status: job.status.clone(),
        processed: job.processed,
        this_run: job.processed - start_processed,
        wall_secs: started.elapsed().as_secs_f64(),
        candidates: summaries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc_with(sims: &[f64]) -> LlmAccumulator {
        let mut a = LlmAccumulator::new(1);
        for &s in sims {
            a.requests += 1;
            a.answered += 1;
            a.sim_sum += s;
            a.sim_sq += s * s;
            a.sims.push(s);
        }
        a
    }

    #[test]
    fn identical_answers_are_equivalent_and_unrelated_ones_different() {
        let p = LlmPolicy::default();
        let same = acc_with(&[1.0; 20]).summary(&p);
        assert_eq!(same.verdict, "equivalent", "{:?}", same.reasons);
        assert!((same.similarity_low - 1.0).abs() < 1e-9);
        let far =
            acc_with(&[0.1, 0.2, 0.15, 0.05, 0.3, 0.2, 0.1, 0.12, 0.18, 0.2, 0.22]).summary(&p);
        assert_eq!(far.verdict, "different", "{:?}", far.reasons);
        assert!(far.similarity_high < 0.8);
        let few = acc_with(&[1.0; 3]).summary(&p);
        assert_eq!(few.verdict, "inconclusive");
    }

    #[test]
    fn t_interval_matches_a_hand_computation() {
        // mean 0.5, sd 0.1 over 4 values: t(0.975, 3) = 3.182446 → half-width 0.159122.
        let s = acc_with(&[0.4, 0.6, 0.4, 0.6]).summary(&LlmPolicy::default());
        let sd = (0.04f64 / 3.0).sqrt();
        let half = 3.182_446_305_284_263 * sd / 2.0;
        assert!(
            (s.similarity_low - (0.5 - half)).abs() < 1e-6,
            "{}",
            s.similarity_low
        );
        assert!((s.similarity_high - (0.5 + half)).abs() < 1e-6);
    }

    #[test]
    fn more_refusals_reject() {
        let mut a = acc_with(&[0.95; 20]);
        a.refusal = (10, 0);
        let s = a.summary(&LlmPolicy::default());
        assert_eq!(s.verdict, "rejected");
        assert!(
            s.reasons[0].contains("refusal rate 50.0%"),
            "{:?}",
            s.reasons
        );
    }

    #[test]
    fn candidate_config_is_checked() {
        let c: LlmCandidate = toml::from_str(
            "name = \"assistant\"\nversion = \"ft-2\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:8000/v1\"\nmodel = \"ft-2\"\nrate = 5.0",
        )
        .expect("parse");
        c.validate().expect("valid");
        assert_eq!(c.concurrency, 4);
        assert_eq!(c.temperature, 0.0);
        let bad = LlmCandidate {
            kind: "anthropic".into(),
            ..c.clone()
        };
        assert!(bad.validate().is_err());
        let bad = LlmCandidate {
            rate: Some(0.0),
            ..c
        };
        assert!(bad.validate().is_err());
    }
}
