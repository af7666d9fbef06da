//! Records exposures, inferences and shadow responses without touching the request path.
//!
//! Requests hand rows to a bounded queue with `try_send` (never waiting; a full queue drops the
//! row and counts it in `vigil_gateway_records_dropped_total`). One task batches the rows and
//! hands each batch to the collector's writer, waiting for room there: one writer submission per
//! batch instead of one per request keeps the writer's small submission queue free for ingest.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use vigil_collector::writer::WriterHandle;
use vigil_store::rows::{ExposureRow, InferenceRow, RowBatch, ShadowResponseRow};

use super::metrics::GatewayMetrics;

/// Rows handed to the writer together at most.
const BATCH_ROWS: usize = 5000;
/// Longest a row waits in the recorder before its batch is handed over.
const BATCH_WAIT: Duration = Duration::from_millis(1000);

/// One row bound for the store.
// Unboxed on purpose: every record is moved once into the queue, and most are inferences.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Record {
    Exposure(ExposureRow),
    Inference(InferenceRow),
    Shadow(ShadowResponseRow),
}

/// Cheap, cloneable sender side.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Record>,
    metrics: Arc<GatewayMetrics>,
}

impl Recorder {
    /// Starts the batching task. It ends, after a last flush of what is queued, when every
    /// `Recorder` is dropped or when `close` fires (shutdown must not depend on every clone of
    /// the HTTP state being gone: the task holds a writer handle, and the writer drains only
    /// once every handle is dropped).
    pub fn start(
        writer: WriterHandle,
        capacity: usize,
        metrics: Arc<GatewayMetrics>,
    ) -> (Recorder, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (close, closed) = oneshot::channel();
        let task = tokio::spawn(run(writer, rx, closed));
        (Recorder { tx, metrics }, close, task)
    }

    /// Queues a row, or drops and counts it when the queue is full. Never waits.
    pub fn record(&self, r: Record) {
        if self.tx.try_send(r).is_err() {
            self.metrics.records_dropped.fetch_add(1, Relaxed);
        }
    }
}

async fn run(
    writer: WriterHandle,
    mut rx: mpsc::Receiver<Record>,
    mut closed: oneshot::Receiver<()>,
) {
    let mut closing = false;
    while !closing {
        let first = tokio::select! {
            next = rx.recv() => next,
            _ = &mut closed => None,
        };
        let mut batch = RowBatch::default();
        match first {
            Some(r) => push(&mut batch, r),
            None => closing = true,
        }
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while !closing && batch.len() < BATCH_ROWS {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(r) => push(&mut batch, r),
                    None => closing = true,
                },
                _ = &mut closed => closing = true,
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if closing {
            // Last flush: whatever is already queued.
            while let Ok(r) = rx.try_recv() {
                push(&mut batch, r);
            }
        }
        if batch.is_empty() {
            continue;
        }
        // Waiting here is fine: requests only ever `try_send` into our queue.
        if let Err(e) = writer.submit(batch, Vec::new()).await {
            tracing::warn!(error = %e, "gateway records not stored: the writer has stopped");
            return;
        }
    }
}

fn push(batch: &mut RowBatch, r: Record) {
    match r {
        Record::Exposure(e) => batch.exposures.push(e),
        Record::Inference(i) => batch.inference.push(i),
        Record::Shadow(s) => batch.shadow_responses.push(s),
    }
}
