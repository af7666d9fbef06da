//! Kafka source: a consumer group member that reads inference/outcome/exposure topics.
//!
//! Exactly-once as far as queries can tell: the store, not Kafka, says where to resume. On every
//! partition assignment the consumer looks up `ingest_offsets` (written by the writer only after
//! the rows themselves) and starts there; Kafka commits happen after the store write and only feed
//! lag dashboards. A crash between the row insert and the progress insert replays a few rows,
//! which the ReplacingMergeTree keys and `FINAL` queries collapse.

use crate::config::KafkaConfig;
use crate::decode::decode_into;
use crate::metrics::Metrics;
use crate::writer::{OffsetMark, WriterHandle};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_store::event::{EventKind, EventTime, Limits};
use vigil_store::rows::{RowBatch, SourceCoord};
use vigil_store::Store;

#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("kafka source needs `kafka.brokers`")]
    NoBrokers,
}

/// Resumes partitions from the store and reports lag.
struct StoreResumeContext {
    store: Store,
    group: String,
    runtime: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
}

impl ClientContext for StoreResumeContext {
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                if *p >= 0 && part.consumer_lag >= 0 {
                    self.metrics.set_lag(topic, *p, part.consumer_lag);
                }
            }
        }
    }
}

impl StoreResumeContext {
    /// Offsets the store holds for this group, retried briefly; `None` if the store is down.
    fn stored_offsets(&self) -> Option<HashMap<(String, i32), i64>> {
        for attempt in 0..5 {
            let q = vigil_store::queries::stored_offsets(&self.store, &self.group);
            match self.runtime.block_on(q) {
                Ok(rows) => {
                    return Some(
                        rows.into_iter()
                            .map(|r| ((r.topic, r.partition), r.next_offset))
                            .collect(),
                    )
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "cannot read stored offsets");
                    std::thread::sleep(Duration::from_millis(500 * (attempt + 1)));
                }
            }
        }
        None
    }
}

impl ConsumerContext for StoreResumeContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let stored = self.stored_offsets();
                let elements: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                for (topic, partition) in &elements {
                    let offset = match &stored {
                        Some(map) => match map.get(&(topic.clone(), *partition)) {
                            Some(next) => Offset::Offset(*next),
                            // Nothing stored yet for this partition: Kafka's committed offset (never
                            // ahead of the store) or auto.offset.reset.
                            None => Offset::Stored,
                        },
                        None => {
                            tracing::warn!(topic, partition, "store unreachable during rebalance; resuming from Kafka's committed offset (duplicates are de-duplicated)");
                            Offset::Stored
                        }
                    };
                    if let Err(e) = tpl.set_partition_offset(topic, *partition, offset) {
                        tracing::error!(topic, partition, error = %e, "cannot set resume offset");
                    }
                }
                tracing::info!(partitions = ?elements, "partitions assigned; resuming from the store's offsets");
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!(error = %e, "assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!("partitions revoked");
                if let Err(e) = consumer.unassign() {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => tracing::error!(error = ?other, "rebalance error"),
        }
    }
}

/// A running Kafka source.
pub struct KafkaSource {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KafkaSource {
    /// Subscribes and starts consuming on a dedicated thread.
    pub fn start(
        config: &KafkaConfig,
        limits: Limits,
        store: Store,
        writer: WriterHandle,
        runtime: tokio::runtime::Handle,
    ) -> Result<KafkaSource, KafkaSourceError> {
        if config.brokers.trim().is_empty() {
            return Err(KafkaSourceError::NoBrokers);
        }
        let context = StoreResumeContext {
            store,
            group: config.group_id.clone(),
            runtime,
            metrics: writer.metrics().clone(),
        };
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", "5000")
            .set("max.poll.interval.ms", "900000");
        for (k, v) in &config.properties {
            cc.set(k, v);
        }
        let consumer: BaseConsumer<StoreResumeContext> = cc.create_with_context(context)?;
        let topics = [
            (config.inference_topic.as_str(), EventKind::Inference),
            (config.outcome_topic.as_str(), EventKind::Outcome),
            (config.exposure_topic.as_str(), EventKind::Exposure),
        ];
        let names: Vec<&str> = topics
            .iter()
            .map(|t| t.0)
            .filter(|t| !t.is_empty())
            .collect();
        consumer.subscribe(&names)?;
        let kinds: HashMap<String, EventKind> =
            topics.iter().map(|(t, k)| (t.to_string(), *k)).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let worker = ConsumeLoop {
            consumer: Arc::new(consumer),
            kinds,
            limits,
            writer,
            group: config.group_id.clone(),
            chunk_rows: config.chunk_rows.max(1),
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("vigil-kafka".into())
            .spawn(move || worker.run())
            .map_err(|e| {
                KafkaSourceError::Kafka(rdkafka::error::KafkaError::Subscription(e.to_string()))
            })?;
        Ok(KafkaSource {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops consuming, hands the last chunk to the writer and waits for the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

struct ConsumeLoop {
    consumer: Arc<BaseConsumer<StoreResumeContext>>,
    kinds: HashMap<String, EventKind>,
    limits: Limits,
    writer: WriterHandle,
    group: String,
    chunk_rows: usize,
    stop: Arc<AtomicBool>,
}

/// A chunk handed to the writer: its durability ack and the offsets to commit to Kafka after it.
type PendingChunk = (
    tokio::sync::oneshot::Receiver<()>,
    BTreeMap<(String, i32), i64>,
);

/// Messages copied out of librdkafka, in consumption order, for the decode stage.
struct RawChunk {
    /// (topic index, partition, offset, payload)
    messages: Vec<(usize, i32, i64, Vec<u8>)>,
    /// (topic, partition, next offset) for the partitions this chunk touched; a handful, so a
    /// linear scan beats hashing.
    next: Vec<(String, i32, i64)>,
}

struct TopicState {
    kind: EventKind,
    coord: SourceCoord,
    received: u64,
    rejected: u64,
}

/// The consumer is two threads: this one polls and copies payloads (cheap, keeps librdkafka
/// drained), the decode thread validates, builds rows and hands them to the writer. Chunks flow
/// through a small bounded channel in order, so offsets are still recorded in order, and the
/// two halves use two cores.
impl ConsumeLoop {
    fn run(self) {
        let topic_names: Vec<String> = self
            .kinds
            .keys()
            .filter(|t| !t.is_empty())
            .cloned()
            .collect();
        let states: Vec<TopicState> = topic_names
            .iter()
            .map(|t| TopicState {
                kind: self.kinds[t],
                coord: SourceCoord {
                    source: format!("kafka:{t}"),
                    partition: -1,
                    offset: -1,
                },
                received: 0,
                rejected: 0,
            })
            .collect();
        let (tx, rx) = std::sync::mpsc::sync_channel::<RawChunk>(4);
        let decoder = Decoder {
            consumer: self.consumer.clone(),
            writer: self.writer.clone(),
            limits: self.limits.clone(),
            group: self.group.clone(),
            states,
        };
        let decode_thread = match std::thread::Builder::new()
            .name("vigil-kafka-decode".into())
            .spawn(move || decoder.run(rx))
        {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the decode thread");
                return;
            }
        };
        let max_age = Duration::from_millis(200);
        let mut chunk = RawChunk {
            messages: Vec::with_capacity(self.chunk_rows),
            next: Vec::new(),
        };
        let mut started: Option<Instant> = None;
        while !self.stop.load(Ordering::Relaxed) {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(msg)) => {
                    let Some(ix) = topic_names.iter().position(|t| t == msg.topic()) else {
                        continue;
                    };
                    let (partition, offset) = (msg.partition(), msg.offset());
                    chunk.messages.push((
                        ix,
                        partition,
                        offset,
                        msg.payload().unwrap_or(&[]).to_vec(),
                    ));
                    match chunk
                        .next
                        .iter_mut()
                        .find(|(t, p, _)| *p == partition && t == msg.topic())
                    {
                        Some(entry) => entry.2 = offset + 1,
                        None => chunk
                            .next
                            .push((msg.topic().to_string(), partition, offset + 1)),
                    }
                    started.get_or_insert_with(Instant::now);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "kafka poll error"),
                None => {}
            }
            let due = chunk.messages.len() >= self.chunk_rows
                || started.is_some_and(|s| s.elapsed() >= max_age);
            if due && !chunk.messages.is_empty() {
                let full = std::mem::replace(
                    &mut chunk,
                    RawChunk {
                        messages: Vec::with_capacity(self.chunk_rows),
                        next: Vec::new(),
                    },
                );
                started = None;
                if tx.send(full).is_err() {
                    tracing::error!("decode stage stopped; stopping the kafka source");
                    break;
                }
            }
        }
        if !chunk.messages.is_empty() {
            let _ = tx.send(chunk);
        }
        drop(tx);
        let _ = decode_thread.join();
    }
}

struct Decoder {
    consumer: Arc<BaseConsumer<StoreResumeContext>>,
    writer: WriterHandle,
    limits: Limits,
    group: String,
    states: Vec<TopicState>,
}

impl Decoder {
    fn run(mut self, rx: std::sync::mpsc::Receiver<RawChunk>) {
        let metrics = self.writer.metrics().clone();
        let mut pending: VecDeque<PendingChunk> = VecDeque::new();
        loop {
            let chunk = match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(c) => c,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    self.commit_durable(&mut pending);
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut rows = RowBatch::default();
            let now = EventTime::now();
            for (ix, partition, offset, payload) in &chunk.messages {
                let state = &mut self.states[*ix];
                state.coord.partition = *partition;
                state.coord.offset = *offset;
                state.received += 1;
                if decode_into(
                    &mut rows,
                    state.kind,
                    payload,
                    &state.coord,
                    &self.limits,
                    now,
                )
                .is_err()
                {
                    state.rejected += 1;
                }
            }
            for state in &mut self.states {
                metrics.received(
                    &state.coord.source,
                    state.kind.as_str(),
                    std::mem::take(&mut state.received),
                );
                metrics.rejected(
                    &state.coord.source,
                    state.kind.as_str(),
                    std::mem::take(&mut state.rejected),
                );
            }
            let next: BTreeMap<(String, i32), i64> = chunk
                .next
                .into_iter()
                .map(|(t, p, n)| ((t, p), n))
                .collect();
            let marks = next
                .iter()
                .map(|((topic, partition), n)| OffsetMark {
                    group: self.group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    next_offset: *n,
                })
                .collect();
            match self.writer.blocking_submit(rows, marks) {
                Ok(ack) => pending.push_back((ack, next)),
                Err(e) => {
                    tracing::error!(error = %e, "writer gone; stopping the kafka source");
                    return;
                }
            }
            self.commit_durable(&mut pending);
        }
        // Wait for the writer so the final commit reflects what is stored.
        while let Some((ack, offsets)) = pending.pop_front() {
            if ack.blocking_recv().is_ok() {
                self.commit(&offsets);
            }
        }
    }

    fn commit_durable(&self, pending: &mut VecDeque<PendingChunk>) {
        while let Some((rx, _)) = pending.front_mut() {
            match rx.try_recv() {
                Ok(()) => {
                    if let Some((_, offsets)) = pending.pop_front() {
                        self.commit(&offsets);
                    }
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => break,
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    pending.pop_front();
                }
            }
        }
    }

    /// Commits to Kafka for lag monitoring only (resume points come from the store).
    fn commit(&self, offsets: &BTreeMap<(String, i32), i64>) {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in offsets {
            if tpl
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .is_err()
            {
                return;
            }
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(error = %e, "kafka commit failed (lag metrics only; resume uses the store)");
        }
    }
}
