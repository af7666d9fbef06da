//! Wiring for long-running work: the writer, the HTTP server and the Kafka source.

use crate::config::VigilConfig;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use vigil_collector::http::IngestState;
use vigil_collector::kafka::KafkaSource;
use vigil_collector::metrics::Metrics;
use vigil_collector::writer::{spawn_writer, WriterHandle};
use vigil_experimenter::gateway::{Gateway, GatewayConfig, Reloader};
use vigil_store::auth::Authenticator;
use vigil_store::Store;

/// Opens the store named by the config (or `--store`) and applies migrations.
pub async fn open_store(config: &VigilConfig, store_override: Option<&str>) -> Result<Store> {
    let url = config.store_url(store_override)?;
    let store = Store::open_url(&url).await?;
    store
        .migrate(config.store.cluster.as_deref())
        .await
        .context("applying schema migrations")?;
    Ok(store)
}

/// A started HTTP ingest server.
pub struct HttpServer {
    pub addr: std::net::SocketAddr,
    pub handle: actix_web::dev::ServerHandle,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The prediction gateway, mounted on the same server when `[gateway]` is configured.
    pub gateway: Option<Gateway>,
}

impl HttpServer {
    /// Stops accepting, lets in-flight requests finish, and waits for the server task.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        if let Ok(Err(e)) = self.task.await {
            tracing::warn!(error = %e, "HTTP server ended with an error");
        }
        if let Some(g) = self.gateway {
            g.shutdown().await;
        }
    }
}

/// Starts the HTTP server: ingest, and with `store` also the alerts and shadow APIs, the web UI
/// (`/ui`) and the gateway's promotion endpoints (which answer 503 without a store).
pub fn start_http(
    config: &VigilConfig,
    writer: WriterHandle,
    bind: &str,
    store: Option<Store>,
) -> Result<HttpServer> {
    let listener =
        std::net::TcpListener::bind(bind).with_context(|| format!("cannot listen on {bind}"))?;
    start_http_on(config, writer, listener, store)
}

/// [`start_http`] on a socket the caller already bound: the demo binds first so that the
/// address it writes into its configuration (links in alert e-mails) is the one it serves on,
/// port 0 included.
pub fn start_http_on(
    config: &VigilConfig,
    writer: WriterHandle,
    listener: std::net::TcpListener,
    store: Option<Store>,
) -> Result<HttpServer> {
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let auth = Authenticator::from_config(&config.auth.tokens)?;
    if auth.is_open() {
        tracing::warn!("no [auth] tokens configured: HTTP ingest accepts unauthenticated requests (fine for a local demo, not for production)");
    }
    let (auth_for_gateway, writer_for_gateway) = (auth.clone(), writer.clone());
    // The alerts API (GET /v1/alerts, POST /v1/alerts/{id}/ack, POST /v1/silences) needs the store.
    let alerts_state = store.clone().map(|s| {
        actix_web::web::Data::new(vigil_analyzer::alerting::http::AlertApi {
            store: s,
            auth: auth.clone(),
        })
    });
    // The shadow API (GET /v1/shadow/runs[/{id}], GET /v1/retraining-requests) reads the store.
    let shadow_state = store.clone().map(|s| {
        actix_web::web::Data::new(vigil_shadow_runner::api::ApiState {
            store: s,
            auth: auth.clone(),
        })
    });
    let state = actix_web::web::Data::new(IngestState {
        writer,
        auth,
        limits: config.collector.limits.clone(),
        max_body_bytes: config.http.max_body_bytes,
        ack_timeout: Duration::from_millis(config.http.ack_timeout_ms),
    });
    let gateway = match &config.gateway {
        Some(g) => Some(start_gateway(
            config,
            g.clone(),
            auth_for_gateway,
            writer_for_gateway,
            store.clone(),
        )?),
        None => None,
    };
    let gateway_state = gateway.as_ref().map(|g| g.state.clone());
    // The web UI (`/ui`) reads the store, so it is mounted whenever there is one.
    let ui = match &store {
        Some(s) => Some(crate::ui::dashboard_state(
            config,
            s.clone(),
            gateway_state.clone(),
        )?),
        None => None,
    };
    let server = actix_web::HttpServer::new(move || {
        let state = state.clone();
        let gateway_state = gateway_state.clone();
        let alerts_state = alerts_state.clone();
        let shadow_state = shadow_state.clone();
        let ui = ui.clone();
        actix_web::App::new()
            .configure(move |cfg| vigil_collector::http::configure(cfg, state))
            .configure(move |cfg| {
                if let Some(s) = shadow_state {
                    vigil_shadow_runner::api::configure(cfg, s);
                }
            })
            .configure(move |cfg| {
                if let Some(a) = alerts_state {
                    vigil_analyzer::alerting::http::configure(cfg, a);
                }
            })
            .configure(move |cfg| {
                if let Some(g) = gateway_state {
                    vigil_experimenter::gateway::http::configure(cfg, g);
                }
            })
            .configure(move |cfg| {
                if let Some(ui) = ui {
                    vigil_dashboards::configure(cfg, ui);
                }
            })
    })
    .workers(config.http.workers.max(1))
    // Streamed answers (LLM tokens, SSE) are many small writes: with Nagle's algorithm (the OS
    // default, which actix keeps) a chunk written while the previous one is unacknowledged
    // waits for the client's delayed ACK, up to 40 ms on Linux.
    .tcp_nodelay(true)
    .listen(listener)
    .with_context(|| format!("cannot serve on {bound}"))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .context("server bound to no address")?;
    let server = server.disable_signals().run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(HttpServer {
        addr,
        handle,
        task,
        gateway,
    })
}

/// Starts the gateway; reloads (SIGHUP, `POST /v1/admin/reload`) re-read the file `config`
/// came from, with the same `VIGIL_…` overrides.
fn start_gateway(
    config: &VigilConfig,
    gateway: GatewayConfig,
    auth: Authenticator,
    writer: WriterHandle,
    store: Option<Store>,
) -> Result<Gateway> {
    let reloader: Option<Reloader> = config.source_path.clone().map(|path| {
        Box::new(move || {
            VigilConfig::load(Some(&path))
                .map(|c| (c.gateway, c.experiments))
                .map_err(|e| format!("{e:#}"))
        }) as Reloader
    });
    let g = Gateway::start(
        gateway,
        config.experiments.clone(),
        auth,
        writer,
        reloader,
        store,
        config.mlflow.clone(),
    )?;
    tracing::info!(
        models = g.state.routing().models.len(),
        "gateway routes mounted (GET /v1/assign, POST /v1/predict/{{model}}, POST /v1/admin/reload, POST /v1/experiments/{{key}}/promote, POST /v1/models/{{model}}/rollback, GET /v1/experiments/{{key}}/analysis, GET /v1/deployments, GET /metrics/gateway)"
    );
    Ok(g)
}

/// `vigil serve`: HTTP ingest and, when `[kafka] brokers` is set, the Kafka source (plus the
/// `[[monitors]]` on schedule), until SIGINT/SIGTERM; then drains the queue.
pub async fn serve(
    config: VigilConfig,
    store_override: Option<&str>,
    http: bool,
    kafka: bool,
) -> Result<()> {
    let store = open_store(&config, store_override).await?;
    tracing::info!(store = %store.describe(), "store ready");
    let monitors = crate::monitor_task::spawn(
        store.clone(),
        config.monitors.clone(),
        config.alert_context(),
        Some(crate::monitor_task::Retraining::from_config(&config)),
    );
    let alert_delivery =
        vigil_analyzer::alerting::spawn_delivery(store.clone(), config.alert_context());
    let rollups = crate::rollup_task::spawn(store.clone());
    let metrics = Arc::new(Metrics::new());
    let (writer, writer_task) = spawn_writer(store.clone(), &config.collector, metrics.clone());
    // SIGINT/SIGTERM from here on stop the server cleanly, the warm-up included.
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut stopping = false;
    if http {
        // Build every page before listening, until the store answers as fast as it will, so
        // the first reader after a restart gets a warm store (at most 10 s: a slow store
        // delays listening no longer than that; the pages are correct either way).
        let t = std::time::Instant::now();
        let st = crate::ui::dashboard_state(&config, store.clone(), None)?;
        tokio::select! {
            warmed = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                vigil_dashboards::pages::warm(&st),
            ) => match warmed {
                Ok(w) => tracing::info!(
                    pages = w.built,
                    failed = w.failed,
                    rounds = ?w.round_ms,
                    ms = t.elapsed().as_millis() as u64,
                    "dashboards warmed up"
                ),
                Err(_) => tracing::warn!("dashboards warm-up stopped after 10 s"),
            },
            _ = &mut stop => stopping = true,
        }
    }
    let http_server = if http && !stopping {
        let s = start_http(
            &config,
            writer.clone(),
            &config.http.bind,
            Some(store.clone()),
        )?;
        tracing::info!(addr = %s.addr, "HTTP ingest listening (POST /v1/events, /v1/outcomes, /v1/exposures; GET /metrics)");
        Some(s)
    } else {
        None
    };
    let kafka_source = if !stopping && kafka && !config.kafka.brokers.trim().is_empty() {
        let src = KafkaSource::start(
            &config.kafka,
            config.collector.limits.clone(),
            store.clone(),
            writer.clone(),
            tokio::runtime::Handle::current(),
        )?;
        tracing::info!(brokers = %config.kafka.brokers, group = %config.kafka.group_id, "Kafka source consuming");
        Some(src)
    } else {
        None
    };
    drop(writer);
    if !stopping {
        stop.await;
    }
    if let Some(m) = monitors {
        m.abort();
    }
    if let Some(d) = alert_delivery {
        d.abort();
    }
    rollups.abort();
    tracing::info!("shutting down: finishing in-flight batches");
    if let Some(s) = http_server {
        s.stop().await;
    }
    if let Some(k) = kafka_source {
        tokio::task::spawn_blocking(move || k.stop()).await?;
    }
    writer_task.await?;
    tracing::info!(rows = metrics.written_total(), "stopped");
    Ok(())
}

pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
