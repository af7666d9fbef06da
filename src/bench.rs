//! `vigil bench ingest`: end-to-end ingest throughput, next to the raw insert speed of the same
//! rows, so the cost of the pipeline (parsing, validation, batching, HTTP or Kafka) is visible.

use crate::config::VigilConfig;
use crate::serve::{open_store, start_http};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_collector::kafka::KafkaSource;
use vigil_collector::metrics::Metrics;
use vigil_collector::simulate::TrafficSimulator;
use vigil_collector::writer::spawn_writer;
use vigil_store::event::{parse_event, EventKind, EventTime, Limits};
use vigil_store::rows::{RowBatch, SourceCoord};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchSource {
    Http,
    Kafka,
}

#[derive(clap::Args, Debug)]
pub struct BenchIngestArgs {
    /// Where events come from.
    #[arg(long, value_enum)]
    pub source: BenchSource,
    /// Events to ingest.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Kafka brokers (for --source kafka).
    #[arg(long, default_value = "127.0.0.1:19092")]
    pub brokers: String,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Events per HTTP request.
    #[arg(long, default_value_t = 5000)]
    pub request_events: usize,
    /// Kafka partitions of the bench topic.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Skip the raw-insert comparison.
    #[arg(long)]
    pub no_raw: bool,
    /// Collectors in the consumer group (--source kafka): each with its own Kafka consumer,
    /// writer and store connection, as several `vigil serve` processes would have.
    #[arg(long, default_value_t = 1)]
    pub collectors: usize,
}

#[derive(serde::Serialize)]
struct BenchReport {
    source: &'static str,
    store: String,
    events: usize,
    end_to_end_secs: f64,
    end_to_end_events_per_sec: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    after_first_event_events_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    produce_events_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_insert_rows_per_sec: Option<f64>,
    /// Collectors in the consumer group (Kafka).
    #[serde(skip_serializing_if = "Option::is_none")]
    collectors: Option<usize>,
    batches: u64,
    mean_batch_rows: f64,
    writer_busy_secs: f64,
}

impl BenchReport {
    fn with_writer_stats(mut self, m: &Metrics) -> Self {
        self.batches = m.batches.load(Ordering::Relaxed);
        self.mean_batch_rows =
            m.batch_rows.load(Ordering::Relaxed) as f64 / self.batches.max(1) as f64;
        self.writer_busy_secs = m.insert_seconds_total();
        self
    }
}

pub async fn run(
    config: VigilConfig,
    store_override: Option<&str>,
    args: BenchIngestArgs,
) -> Result<()> {
    if args.events == 0 {
        bail!("--events must be at least 1");
    }
    let store = open_store(&config, store_override).await?;
    eprintln!("store: {}", store.describe());
    let now = chrono::Utc::now().timestamp_millis();
    let run_id = format!("bench{now}");
    // Events are generated while they are sent (bounded memory for any --events); the same
    // seed and run id give the same events again for the raw-insert comparison.
    let events = EventGen::new(&run_id, now, args.events);
    let metrics = Arc::new(Metrics::new());
    let mut report = match args.source {
        BenchSource::Http => bench_http(&config, &store, &events, &args, metrics.clone()).await?,
        BenchSource::Kafka => {
            bench_kafka(
                &config,
                store_override,
                &store,
                &events,
                &args,
                &run_id,
                metrics.clone(),
            )
            .await?
        }
    }
    .with_writer_stats(&metrics);
    if !args.no_raw {
        report.raw_insert_rows_per_sec = Some(raw_insert(&store, &events).await?);
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// The bench's events in a fixed order, generated on demand: `iter()` starts them again from the
/// first, identical (same seed, same run id, same timestamps), so nothing holds them all.
#[derive(Clone)]
struct EventGen {
    run_id: String,
    now_ms: i64,
    total: usize,
}

impl EventGen {
    fn new(run_id: &str, now_ms: i64, total: usize) -> EventGen {
        EventGen {
            run_id: run_id.to_owned(),
            now_ms,
            total,
        }
    }

    fn len(&self) -> usize {
        self.total
    }

    /// The events as JSON lines, one millisecond apart, ending now.
    fn iter(&self) -> impl Iterator<Item = String> {
        let mut sim = TrafficSimulator::new(1, &self.run_id);
        let (now, total) = (self.now_ms, self.total);
        (0..total).map(move |i| sim.inference(now - (total - i) as i64).json)
    }
}

fn bar(n: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(n as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

async fn bench_http(
    config: &VigilConfig,
    store: &vigil_store::Store,
    events: &EventGen,
    args: &BenchIngestArgs,
    metrics: Arc<Metrics>,
) -> Result<BenchReport> {
    // One thread builds request bodies ahead of the clients, at most two per client: memory
    // stays bounded whatever --events is.
    let per = args.request_events.max(1);
    let clients = args.clients.max(1);
    let (body_tx, body_rx) =
        tokio::sync::mpsc::channel::<(actix_web::web::Bytes, usize)>(2 * clients);
    let gen = events.clone();
    let generator = std::thread::Builder::new()
        .name("bench-events".into())
        .spawn(move || {
            let mut it = gen.iter().peekable();
            while it.peek().is_some() {
                let mut body = String::with_capacity(per * 330);
                let mut n = 0;
                for e in it.by_ref().take(per) {
                    body.push_str(&e);
                    body.push('\n');
                    n += 1;
                }
                if body_tx.blocking_send((body.into(), n)).is_err() {
                    return; // the clients stopped (an error): nothing more to build
                }
            }
        })
        .context("starting the event generator thread")?;
    let body_rx = Arc::new(tokio::sync::Mutex::new(body_rx));
    let (writer, writer_task) = spawn_writer(store.clone(), &config.collector, metrics.clone());
    let server = start_http(config, writer, "127.0.0.1:0", None)?;
    let url = format!("http://{}/v1/events", server.addr);
    // With `[[auth.tokens]]` configured, ingest needs one: the bench posts as the first token
    // that may ingest (an `ingest` or `admin` one).
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(h) = vigil_store::auth::Authenticator::from_config(&config.auth.tokens)?
        .header_for(vigil_store::auth::Role::Ingest)
    {
        headers.insert(reqwest::header::AUTHORIZATION, h.parse()?);
    } else if !config.auth.tokens.is_empty() {
        bail!(
            "[[auth.tokens]] has no token with role ingest or admin: the bench cannot post events"
        );
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .default_headers(headers)
        .build()?;
    let pb = bar(events.len(), "HTTP ingest");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (body_rx, client, url, pb) = (body_rx.clone(), client.clone(), url.clone(), pb.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = body_rx.lock().await.recv().await;
                let Some((body, n)) = next else {
                    return Ok::<(), anyhow::Error>(());
                };
                loop {
                    let resp = client.post(&url).body(body.clone()).send().await?;
                    match resp.status().as_u16() {
                        200 => break,
                        429 | 503 => tokio::time::sleep(Duration::from_millis(50)).await,
                        s => bail!(
                            "ingest answered {s}: {}",
                            resp.text().await.unwrap_or_default()
                        ),
                    }
                }
                pb.inc(n as u64);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let _ = generator.join();
    let secs = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    server.stop().await;
    writer_task.await?;
    Ok(BenchReport {
        source: "http",
        store: store.describe(),
        events: events.len(),
        end_to_end_secs: secs,
        end_to_end_events_per_sec: events.len() as f64 / secs,
        after_first_event_events_per_sec: None,
        produce_events_per_sec: None,
        raw_insert_rows_per_sec: None,
        collectors: None,
        batches: 0,
        mean_batch_rows: 0.0,
        writer_busy_secs: 0.0,
    })
}

async fn bench_kafka(
    config: &VigilConfig,
    store_override: Option<&str>,
    store: &vigil_store::Store,
    events: &EventGen,
    args: &BenchIngestArgs,
    run_id: &str,
    metrics: Arc<Metrics>,
) -> Result<BenchReport> {
    let topic = format!("vigil-bench-{run_id}");
    create_topic(&args.brokers, &topic, args.partitions).await?;
    let produce_rate = produce(&args.brokers, &topic, events)?;
    let mut kafka = config.kafka.clone();
    kafka.brokers = args.brokers.clone();
    kafka.group_id = format!("bench-{run_id}");
    kafka.inference_topic = topic;
    kafka.outcome_topic = String::new();
    kafka.exposure_topic = String::new();
    kafka
        .properties
        .entry("session.timeout.ms".into())
        .or_insert_with(|| "6000".into());
    kafka
        .properties
        .entry("heartbeat.interval.ms".into())
        .or_insert_with(|| "500".into());
    if args.collectors == 0 {
        bail!("--collectors must be at least 1");
    }
    let pb = bar(events.len(), "Kafka → store");
    let started = Instant::now();
    let mut collectors = Vec::new();
    for _ in 0..args.collectors {
        let store = open_store(config, store_override).await?;
        let (writer, writer_task) = spawn_writer(store.clone(), &config.collector, metrics.clone());
        let source = KafkaSource::start(
            &kafka,
            Limits::default(),
            store,
            writer,
            tokio::runtime::Handle::current(),
        )?;
        collectors.push((source, writer_task));
    }
    let mut first: Option<Instant> = None;
    loop {
        let written = metrics.written_total() as usize;
        if first.is_none() && metrics.received_total() > 0 {
            first = Some(Instant::now());
        }
        pb.set_position(written as u64);
        if written >= events.len() {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!(
                "only {written} of {} events arrived within 10 minutes",
                events.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let after_first = first.map(|f| events.len() as f64 / f.elapsed().as_secs_f64());
    pb.finish_and_clear();
    for (source, writer_task) in collectors {
        tokio::task::spawn_blocking(move || source.stop()).await?;
        writer_task.await?;
    }
    Ok(BenchReport {
        source: "kafka",
        store: store.describe(),
        events: events.len(),
        end_to_end_secs: secs,
        end_to_end_events_per_sec: events.len() as f64 / secs,
        after_first_event_events_per_sec: after_first,
        produce_events_per_sec: Some(produce_rate),
        raw_insert_rows_per_sec: None,
        collectors: Some(args.collectors),
        batches: 0,
        mean_batch_rows: 0.0,
        writer_busy_secs: 0.0,
    })
}

/// Creates a topic (idempotent: an existing topic is fine).
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("kafka admin client")?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let res = admin
        .create_topics(
            &[new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .with_context(|| format!("cannot create topic {topic} on {brokers}"))?;
    for r in res {
        if let Err((t, code)) = r {
            if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                bail!("cannot create topic {t}: {code}");
            }
        }
    }
    Ok(())
}

/// Produces every event (acks=all) and returns the produce rate.
fn produce(brokers: &str, topic: &str, events: &EventGen) -> Result<f64> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .context("kafka producer")?;
    let pb = bar(events.len(), "producing");
    let started = Instant::now();
    for (i, e) in events.iter().enumerate() {
        let key = i.to_string();
        let mut record = BaseRecord::to(topic).payload(e.as_str()).key(key.as_str());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => bail!("produce failed: {e}"),
            }
        }
        if i % 10_000 == 0 {
            pb.set_position(i as u64);
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .context("flushing producer")?;
    pb.finish_and_clear();
    Ok(events.len() as f64 / started.elapsed().as_secs_f64())
}

/// Times `Store::insert` of the same events as rows, 100,000 at a time; generating and parsing
/// each chunk is not timed.
async fn raw_insert(store: &vigil_store::Store, events: &EventGen) -> Result<f64> {
    let now = EventTime::now();
    let limits = Limits::default();
    let coord = SourceCoord {
        source: "bench-raw".into(),
        partition: -1,
        offset: 0,
    };
    let pb = bar(events.len(), "raw insert");
    let mut it = events.iter().peekable();
    let mut timed = Duration::ZERO;
    while it.peek().is_some() {
        let mut batch = RowBatch::default();
        for e in it.by_ref().take(100_000) {
            let ev = parse_event(EventKind::Inference, e.as_bytes(), &limits, now)?;
            batch.push_event(ev, &coord);
        }
        let started = Instant::now();
        store.insert(batch.inference.as_slice()).await?;
        timed += started.elapsed();
        pb.inc(batch.inference.len() as u64);
    }
    pb.finish_and_clear();
    Ok(events.len() as f64 / timed.as_secs_f64().max(1e-9))
}
