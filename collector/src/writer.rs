//! The single writer between every source and the store.
//!
//! Sources hand it [`Submission`]s through a bounded queue (the only buffer, so memory is
//! bounded and a slow store slows sources down instead of piling up rows). It merges submissions
//! into batches by size and age (a batch of at least `batch_min_rows` is written as soon as the
//! queue is momentarily empty; smaller ones wait up to `batch_max_wait_ms` for more), writes each batch table by table, then records Kafka progress in
//! `ingest_offsets`, then acknowledges. A failed insert is retried with backoff until it succeeds:
//! rows are never dropped, and a replay after a crash is de-duplicated by the tables' keys.

use crate::config::CollectorConfig;
use crate::metrics::Metrics;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use vigil_store::rows::{IngestOffsetRow, RowBatch};
use vigil_store::Store;

/// Kafka progress carried with a submission: everything below `next_offset` is in it or earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetMark {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
}

/// Rows from one source, acknowledged once durable.
pub struct Submission {
    pub rows: RowBatch,
    pub offsets: Vec<OffsetMark>,
    pub ack: Option<oneshot::Sender<()>>,
}

/// Why a submission was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    #[error("ingest queue is full; retry shortly")]
    QueueFull,
    #[error("the store is not accepting writes; retry later")]
    StoreDown,
    #[error("the collector is shutting down")]
    Closed,
}

/// A cheap, cloneable handle for sources.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Submission>,
    metrics: Arc<Metrics>,
}

/// A submission and the receiver its acknowledgement arrives on.
fn submission(rows: RowBatch, offsets: Vec<OffsetMark>) -> (Submission, oneshot::Receiver<()>) {
    let (ack, done) = oneshot::channel();
    (
        Submission {
            rows,
            offsets,
            ack: Some(ack),
        },
        done,
    )
}

impl WriterHandle {
    /// Queues without waiting (HTTP): fails fast when the queue is full or the store is down.
    pub fn try_submit(&self, rows: RowBatch) -> Result<oneshot::Receiver<()>, Busy> {
        if self.metrics.store_up.load(Relaxed) == 0 {
            return Err(Busy::StoreDown);
        }
        let (sub, done) = submission(rows, Vec::new());
        self.tx.try_send(sub).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Busy::QueueFull,
            mpsc::error::TrySendError::Closed(_) => Busy::Closed,
        })?;
        Ok(done)
    }

    /// Queues, waiting for room (async sources).
    pub async fn submit(
        &self,
        rows: RowBatch,
        offsets: Vec<OffsetMark>,
    ) -> Result<oneshot::Receiver<()>, Busy> {
        let (sub, done) = submission(rows, offsets);
        self.tx.send(sub).await.map_err(|_| Busy::Closed)?;
        Ok(done)
    }

    /// Queues, blocking the calling (non-async) thread for room: Kafka and file readers.
    pub fn blocking_submit(
        &self,
        rows: RowBatch,
        offsets: Vec<OffsetMark>,
    ) -> Result<oneshot::Receiver<()>, Busy> {
        let (sub, done) = submission(rows, offsets);
        self.tx.blocking_send(sub).map_err(|_| Busy::Closed)?;
        Ok(done)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

/// Starts the writer task. It ends when every handle is dropped and the queue is drained.
pub fn spawn_writer(
    store: Store,
    config: &CollectorConfig,
    metrics: Arc<Metrics>,
) -> (WriterHandle, tokio::task::JoinHandle<()>) {
    metrics.set_store(store.clone());
    let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
    let handle = WriterHandle {
        tx,
        metrics: metrics.clone(),
    };
    let task = tokio::spawn(run_writer(store, config.clone(), metrics, rx));
    (handle, task)
}

async fn run_writer(
    store: Store,
    config: CollectorConfig,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Submission>,
) {
    let max_wait = Duration::from_millis(config.batch_max_wait_ms);
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut batch = RowBatch::default();
        let mut offsets: BTreeMap<(String, String, i32), i64> = BTreeMap::new();
        let mut acks = Vec::new();
        let mut absorb =
            |s: Submission, batch: &mut RowBatch, acks: &mut Vec<oneshot::Sender<()>>| {
                let mut rows = s.rows;
                batch.append(&mut rows);
                for m in s.offsets {
                    let e = offsets
                        .entry((m.group, m.topic, m.partition))
                        .or_insert(m.next_offset);
                    *e = (*e).max(m.next_offset);
                }
                acks.extend(s.ack);
            };
        absorb(first, &mut batch, &mut acks);
        loop {
            // Take everything already queued (it piled up during the previous insert)…
            while batch.len() < config.batch_max_rows {
                match rx.try_recv() {
                    Ok(s) => absorb(s, &mut batch, &mut acks),
                    Err(_) => break,
                }
            }
            // …and write now if that is a worthwhile insert; otherwise wait for more, up to the
            // batch's age limit. Waiting only when the batch is small keeps acknowledgement
            // latency low under load and inserts large when traffic is light.
            if batch.len() >= config.batch_min_rows.max(1) || batch.len() >= config.batch_max_rows {
                break;
            }
            tokio::select! {
                next = rx.recv() => match next {
                    Some(s) => absorb(s, &mut batch, &mut acks),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let marks: Vec<IngestOffsetRow> = offsets
            .into_iter()
            .map(|((group, topic, partition), next_offset)| IngestOffsetRow {
                consumer_group: group,
                topic,
                partition,
                next_offset,
                written_at: chrono::Utc::now().timestamp().clamp(0, u32::MAX as i64) as u32,
            })
            .collect();
        write_until_done(&store, &config, &metrics, &batch, &marks).await;
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// Writes one batch, retrying with capped exponential backoff until it succeeds.
async fn write_until_done(
    store: &Store,
    config: &CollectorConfig,
    metrics: &Metrics,
    batch: &RowBatch,
    marks: &[IngestOffsetRow],
) {
    let mut pause = Duration::from_millis(config.retry_initial_ms.max(1));
    let max_pause = Duration::from_millis(config.retry_max_ms.max(config.retry_initial_ms));
    // Tables already written in this batch are not written again on retry.
    let mut done = Written::default();
    let mut attempt = 0u32;
    loop {
        let started = Instant::now();
        match write_once(store, batch, marks, &mut done, metrics).await {
            Ok(()) => {
                metrics.batch(batch.len() as u64, started.elapsed().as_secs_f64());
                if metrics.store_up.swap(1, Relaxed) == 0 {
                    tracing::info!(attempt, "store writes succeed again");
                }
                return;
            }
            Err(e) => {
                attempt += 1;
                metrics.insert_errors.fetch_add(1, Relaxed);
                metrics.store_up.store(0, Relaxed);
                tracing::warn!(attempt, rows = batch.len(), error = %e, "insert failed; retrying in {:?}", pause);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(max_pause);
            }
        }
    }
}

/// Tables of one batch already written, so a retry does not write them again.
#[derive(Default)]
struct Written {
    dead_letters: bool,
    inference: bool,
    outcomes: bool,
    exposures: bool,
    shadow_responses: bool,
    progress: bool,
}

/// Inserts `rows` into their table unless `done`; then marks it done.
async fn write_table<R: vigil_store::rows::TableRow>(
    store: &Store,
    rows: &[R],
    done: &mut bool,
    metrics: &Metrics,
) -> Result<(), vigil_store::StoreError> {
    if !*done {
        store.insert(rows).await?;
        metrics.written(R::TABLE, rows.len() as u64);
        *done = true;
    }
    Ok(())
}

async fn write_once(
    store: &Store,
    batch: &RowBatch,
    marks: &[IngestOffsetRow],
    done: &mut Written,
    metrics: &Metrics,
) -> Result<(), vigil_store::StoreError> {
    // Dead letters first: if we crash between tables, a replay rewrites events (de-duplicated)
    // but the reasons for rejects are already safe.
    write_table(store, &batch.dead_letters, &mut done.dead_letters, metrics).await?;
    write_table(store, &batch.inference, &mut done.inference, metrics).await?;
    write_table(store, &batch.outcomes, &mut done.outcomes, metrics).await?;
    write_table(store, &batch.exposures, &mut done.exposures, metrics).await?;
    // The gateway's mirrored responses.
    write_table(
        store,
        &batch.shadow_responses,
        &mut done.shadow_responses,
        metrics,
    )
    .await?;
    // Progress last: it may only claim what is already stored. (Not counted as written rows.)
    if !done.progress {
        store.insert(marks).await?;
        done.progress = true;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(capacity: usize) -> (WriterHandle, mpsc::Receiver<Submission>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            WriterHandle {
                tx,
                metrics: Arc::new(Metrics::new()),
            },
            rx,
        )
    }

    #[test]
    fn http_submissions_fail_fast_instead_of_queueing_without_bound() {
        let (h, mut rx) = handle(1);
        assert!(h.try_submit(RowBatch::default()).is_ok());
        assert_eq!(
            h.try_submit(RowBatch::default()).err(),
            Some(Busy::QueueFull)
        );
        rx.try_recv().expect("first submission queued");
        h.metrics.store_up.store(0, Relaxed);
        assert_eq!(
            h.try_submit(RowBatch::default()).err(),
            Some(Busy::StoreDown)
        );
        h.metrics.store_up.store(1, Relaxed);
        drop(rx);
        assert_eq!(h.try_submit(RowBatch::default()).err(), Some(Busy::Closed));
    }
}
