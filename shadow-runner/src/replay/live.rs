//! Live shadow: the replay pipeline fed from a Kafka topic of inference events instead of the
//! store, so candidates are compared on traffic as it happens.
//!
//! The consumer is assigned every partition of the topic (no group rebalancing: one live run
//! owns its position). The position is part of the checkpoint: after each page the job row is
//! stored with the accumulators *and* the next offset per partition, in one insert, so a
//! resumed run (`--resume JOB`) seeks to exactly where the last checkpoint stood and counts no
//! event twice or never. Events are the collector's contract (docs/events.md); an event that
//! does not parse, belongs to another model, has no `input`, or fails the filters or the
//! sample is skipped (counted in the job's `skipped`), never an error. Stopping (`--max-events`,
//! `--idle-exit`, Ctrl-C) stores a snapshot of the open bucket and the totals and leaves the
//! job `stopped`; resuming continues the same accumulators, and the next snapshot replaces
//! those rows.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use vigil_store::event::{parse_event, Event, EventKind, EventTime, Limits};
use vigil_store::rows::ShadowRunRow;
use vigil_store::Store;

use super::source::{Filters, ReplayEvent};
use super::{checkpoint, process_events, resume_state, snapshot, Models, ReplayOptions, RunReport};
use super::{Progress, ReplayState};
use crate::error::{Error, Result};

/// Where and how long to listen.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveOptions {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Topic of inference events.
    pub topic: String,
    /// Where a new run starts in each partition: the beginning, or only new events.
    pub from_latest: bool,
    /// Stop after this many replayed events (default: run until idle or Ctrl-C).
    pub max_events: Option<u64>,
    /// Stop after this long without a message (default: never).
    pub idle_exit: Option<Duration>,
    /// A page is replayed when it is full (`page_size`) or this long after its first event.
    pub batch_wait: Duration,
}

/// FNV-1a of the event id mapped to [0, 1): the live sample is deterministic per event, so a
/// resumed run keeps exactly the events the first run would have kept.
fn sample_point(event_id: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in event_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % 1_000_000) as f64 / 1_000_000.0
}

/// The replayable part of one message, or `None` when it is out of scope.
pub fn replay_event(
    payload: &[u8],
    model: &str,
    sample_rate: f64,
    filters: &Filters,
    now: EventTime,
) -> Option<ReplayEvent> {
    let Ok(Event::Inference(e)) =
        parse_event(EventKind::Inference, payload, &Limits::default(), now)
    else {
        return None;
    };
    if e.model != model {
        return None;
    }
    let input = e.input.filter(|i| !i.is_empty())?;
    if filters.version.as_ref().is_some_and(|v| *v != e.version) {
        return None;
    }
    for (k, v) in &filters.attributes {
        if !e.attributes.0.iter().any(|(n, x)| n == k && x.0 == *v) {
            return None;
        }
    }
    if sample_rate < 1.0 && sample_point(&e.event_id) >= sample_rate {
        return None;
    }
    Some(ReplayEvent {
        ts: u32::try_from(e.ts.0.div_euclid(1000)).unwrap_or(0),
        version: e.version,
        input,
        label: e.prediction.label.map(|l| l.0).unwrap_or_default(),
        event_id: e.event_id,
    })
}

fn consumer(live: &LiveOptions, job_id: &str, state: &ReplayState) -> Result<StreamConsumer> {
    let kafka = |what: &str, e: rdkafka::error::KafkaError| {
        Error::Config(format!(
            "live shadow on topic {} at {}: {what}: {e}",
            live.topic, live.brokers
        ))
    };
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &live.brokers)
        // Offsets live in the checkpoint, not in Kafka; the group id only names the client.
        .set("group.id", format!("vigil-shadow-{job_id}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .map_err(|e| kafka("cannot create a consumer", e))?;
    let meta = c
        .fetch_metadata(Some(&live.topic), Duration::from_secs(15))
        .map_err(|e| kafka("cannot read the topic's partitions", e))?;
    let partitions: Vec<i32> = meta
        .topics()
        .iter()
        .filter(|t| t.name() == live.topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(Error::Config(format!(
            "topic {} has no partitions at {} (does it exist?)",
            live.topic, live.brokers
        )));
    }
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let offset = match state.kafka_next.get(&p) {
            Some(next) => Offset::Offset(*next),
            None if live.from_latest => Offset::End,
            None => Offset::Beginning,
        };
        tpl.add_partition_offset(&live.topic, p, offset)
            .map_err(|e| kafka("bad partition offset", e))?;
    }
    c.assign(&tpl)
        .map_err(|e| kafka("cannot assign partitions", e))?;
    Ok(c)
}

/// Runs (or resumes) a live job until `max_events`, `idle_exit` or Ctrl-C, then finishes it.
pub async fn run_live(
    store: &Store,
    models: &Models,
    opts: &ReplayOptions,
    live: &LiveOptions,
    mut job: ShadowRunRow,
    progress: Progress<'_>,
) -> Result<RunReport> {
    let started = Instant::now();
    let mut state = resume_state(&job, &models.candidate_ids())?;
    let consumer = consumer(live, &job.job_id, &state)?;
    job.status = "running".into();
    checkpoint(store, &mut job, &state).await?;
    let start_processed = job.processed;
    let limit = live.max_events.unwrap_or(u64::MAX);
    let mut last_message = Instant::now();
    let mut page: Vec<ReplayEvent> = Vec::new();
    let mut page_started: Option<Instant> = None;
    let mut dirty = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut stopping = false;
    while job.processed < limit && !stopping {
        let want = (opts.page_size as u64).min(limit - job.processed) as usize;
        let deadline = page_started.map(|t| t + live.batch_wait);
        let wait = deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(500))
            .min(Duration::from_millis(500));
        tokio::select! {
            _ = &mut ctrl_c => { stopping = true; }
            msg = tokio::time::timeout(wait, consumer.recv()) => match msg {
                Ok(Ok(m)) => {
                    last_message = Instant::now();
                    state.kafka_next.insert(m.partition(), m.offset() + 1);
                    dirty = true;
                    let now = EventTime(chrono::Utc::now().timestamp_millis());
                    match m.payload().and_then(|p| {
                        replay_event(p, &opts.model, opts.sample_rate, &opts.filters, now)
                    }) {
                        Some(e) => {
                            page_started.get_or_insert_with(Instant::now);
                            page.push(e);
                        }
                        None => job.skipped += 1,
                    }
                }
                Ok(Err(e)) => {
                    return Err(Error::Config(format!(
                        "live shadow on topic {} at {}: {e}",
                        live.topic, live.brokers
                    )));
                }
                Err(_) => {}
            }
        }
        let full = page.len() >= want;
        let due = page_started.is_some_and(|t| t.elapsed() >= live.batch_wait);
        let idle = live.idle_exit.is_some_and(|d| last_message.elapsed() >= d);
        if !page.is_empty() && (full || due || idle || stopping) {
            process_events(store, models, opts, &job, &mut state, &page).await?;
            job.processed += page.len() as u64;
            let (lo, hi) = page
                .iter()
                .fold((u32::MAX, 0), |(lo, hi), e| (lo.min(e.ts), hi.max(e.ts)));
            // The window starts at the first page's oldest event and stays there: the
            // whole-run rows are keyed by it, so a later snapshot replaces the earlier one.
            if job.since == 0 {
                job.since = lo;
            }
            job.until = job.until.max(hi.saturating_add(1));
            page.clear();
            page_started = None;
            checkpoint(store, &mut job, &state).await?;
            dirty = false;
            progress(job.processed);
        } else if dirty && (idle || stopping) {
            // Only skipped messages since the last page: keep their offsets too.
            checkpoint(store, &mut job, &state).await?;
            dirty = false;
        }
        if idle && page.is_empty() {
            break;
        }
    }
    // A live run is never "done": stopping stores a snapshot and leaves it resumable.
    let summaries = snapshot(store, opts, &mut job, &state).await?;
    Ok(RunReport::of(&job, start_processed, started, summaries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, model: &str, input: Option<&str>, region: &str) -> Vec<u8> {
        let input = input.map_or(String::new(), |i| format!(r#","input":"{i}""#));
        format!(
            r#"{{"event_id":"{id}","ts":1790000000250,"model":"{model}","version":"v1","unit_id":"u",
               "prediction":{{"label":"refund"}},"attributes":{{"region":"{region}"}}{input}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn scope_sample_and_filters() {
        let now = EventTime(1_790_000_100_000);
        let all = Filters::default();
        let e = replay_event(
            &event("a", "intent", Some("hi"), "eu"),
            "intent",
            1.0,
            &all,
            now,
        )
        .expect("in scope");
        assert_eq!(
            (e.ts, e.label.as_str(), e.input.as_str()),
            (1_790_000_000, "refund", "hi")
        );
        assert!(replay_event(
            &event("a", "other", Some("hi"), "eu"),
            "intent",
            1.0,
            &all,
            now
        )
        .is_none());
        assert!(
            replay_event(&event("a", "intent", None, "eu"), "intent", 1.0, &all, now).is_none()
        );
        assert!(replay_event(b"{not json", "intent", 1.0, &all, now).is_none());
        let eu = Filters {
            attributes: [("region".to_string(), "eu".to_string())].into(),
            ..Filters::default()
        };
        assert!(replay_event(
            &event("a", "intent", Some("hi"), "us"),
            "intent",
            1.0,
            &eu,
            now
        )
        .is_none());
        assert!(replay_event(
            &event("a", "intent", Some("hi"), "eu"),
            "intent",
            1.0,
            &eu,
            now
        )
        .is_some());
        // The sample keeps about the share asked for, and the same ids every time.
        let kept = (0..10_000)
            .filter(|i| sample_point(&format!("evt-{i}")) < 0.25)
            .count();
        assert!((2_300..2_700).contains(&kept), "{kept}");
        assert_eq!(sample_point("evt-7"), sample_point("evt-7"));
    }
}
