//! Shadow mirroring: copies of a share of requests go to candidate versions in the background.
//!
//! The request path only `try_send`s a job into a bounded queue (full: the copy is dropped and
//! counted), so a slow or dead candidate can never delay or fail served traffic. A worker sends
//! up to `shadow_concurrency` copies at once and records each answer (or the failure) as a
//! `shadow_responses` row.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use tokio::sync::{mpsc, Semaphore};
use vigil_store::rows::ShadowResponseRow;

use super::metrics::GatewayMetrics;
use super::recorder::{Record, Recorder};

/// One mirrored copy.
#[derive(Debug)]
pub struct ShadowJob {
    pub request_id: String,
    pub model: String,
    pub version: String,
    pub served_version: String,
    pub unit_id: String,
    pub url: String,
    pub body: Bytes,
    pub content_type: Option<String>,
    pub timeout: Duration,
    /// An OpenAI-compatible copy: its text, tokens and cost are read from the answer.
    pub llm: Option<LlmShadow>,
}

/// What reading a mirrored LLM answer needs.
#[derive(Debug)]
pub struct LlmShadow {
    pub endpoint: super::llm::protocol::Endpoint,
    pub backend: Arc<super::routing::Backend>,
}

/// Sender side of the mirror queue.
#[derive(Clone)]
pub struct Mirror {
    tx: mpsc::Sender<ShadowJob>,
    metrics: Arc<GatewayMetrics>,
    /// Copies queued or being sent (for a clean shutdown).
    pending: Arc<AtomicUsize>,
}

impl Mirror {
    /// Starts the worker; it ends when every `Mirror` is dropped and the queue is empty.
    pub fn start(
        client: reqwest::Client,
        recorder: Recorder,
        capacity: usize,
        concurrency: usize,
        metrics: Arc<GatewayMetrics>,
    ) -> Mirror {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let pending = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(
            client,
            recorder,
            rx,
            concurrency.max(1),
            metrics.clone(),
            pending.clone(),
        ));
        Mirror {
            tx,
            metrics,
            pending,
        }
    }

    /// Queues a copy, or drops and counts it. Never waits.
    pub fn send(&self, job: ShadowJob) {
        self.pending.fetch_add(1, Relaxed);
        if self.tx.try_send(job).is_err() {
            self.pending.fetch_sub(1, Relaxed);
            self.metrics.shadow_dropped.fetch_add(1, Relaxed);
        }
    }

    /// Waits until every queued copy is answered and recorded, or `limit` passes.
    pub async fn drained(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.pending.load(Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn run(
    client: reqwest::Client,
    recorder: Recorder,
    mut rx: mpsc::Receiver<ShadowJob>,
    concurrency: usize,
    metrics: Arc<GatewayMetrics>,
    pending: Arc<AtomicUsize>,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    while let Some(job) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (client, recorder, metrics) = (client.clone(), recorder.clone(), metrics.clone());
        let pending = pending.clone();
        tokio::spawn(async move {
            let row = send(&client, job).await;
            metrics.shadow(&row.model, &row.version, row.status);
            recorder.record(Record::Shadow(row));
            pending.fetch_sub(1, Relaxed);
            drop(permit);
        });
    }
}

async fn send(client: &reqwest::Client, job: ShadowJob) -> ShadowResponseRow {
    let started = Instant::now();
    let mut req = client.post(&job.url).timeout(job.timeout).body(job.body);
    if let Some(ct) = &job.content_type {
        req = req.header(reqwest::header::CONTENT_TYPE, ct);
    }
    let (status, output, error) = match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.text().await {
                Ok(text) => (status, text, String::new()),
                Err(e) => (status, String::new(), e.to_string()),
            }
        }
        Err(e) => (0, String::new(), e.to_string()),
    };
    let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let (mut text, mut prompt_tokens, mut completion_tokens, mut cost) =
        (String::new(), None, None, None);
    if let Some(llm) = job.llm.as_ref().filter(|_| (200..300).contains(&status)) {
        let (t, _, usage) = super::llm::protocol::read_response(llm.endpoint, output.as_bytes());
        if let Some(u) = usage {
            prompt_tokens = Some(u.prompt_tokens);
            completion_tokens = Some(u.completion_tokens);
            cost = llm.backend.cost(u.prompt_tokens, u.completion_tokens);
        }
        text = t;
    }
    ShadowResponseRow {
        request_id: job.request_id,
        ts: (now / 1000).min(u32::MAX as u64) as u32,
        ts_ms: now,
        model: job.model,
        version: job.version,
        served_version: job.served_version,
        unit_id: job.unit_id,
        output,
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        status,
        error,
        text,
        prompt_tokens,
        completion_tokens,
        cost,
    }
}
