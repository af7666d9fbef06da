//! The gateway: routes live prediction traffic between model versions by experiment
//! assignment, mirrors a share to shadow candidates, falls back to the control version when a
//! backend fails, and records exposures and inferences — all without adding store latency to a
//! request.
//!
//! ```text
//! GET  /v1/assign?experiment=KEY&unit=ID[&ATTR=VALUE…]   (viewer)  same answer as `vigil assign`
//! POST /v1/predict/{model}   unit in `x-vigil-unit` or body `unit_id`   (ingest)
//!        → backend of the assigned version (fallback: control) → its response, plus
//!          `x-vigil-variant`, `x-vigil-model-version`, `x-vigil-request-id` headers
//! POST /v1/chat/completions, /v1/completions, /v1/embeddings; GET /v1/models   (ingest)
//!        OpenAI-compatible routes for `api = "openai"` models (module [`llm`]): the body's
//!        `model` names the vigil model, `user` (or `x-vigil-unit`) is the unit; streams pass
//!        through chunk by chunk; the reply carries `x-vigil-event-id`
//! POST /v1/admin/reload      re-read vigil.toml (admin); SIGHUP does the same
//! GET  /metrics/gateway      Prometheus text
//! ```
//!
//! Modules: [`config`] (the `[gateway]` section), [`routing`] (compiled table, swapped whole on
//! reload), [`breaker`] (per-backend circuit breaker), [`recorder`] (rows → collector writer),
//! [`shadow`] (bounded mirror queue), [`metrics`], [`http`] (handlers).

pub mod breaker;
pub mod config;
pub mod deploy;
pub mod http;
pub mod llm;
pub mod metrics;
pub mod ramp;
pub mod recorder;
pub mod routing;
pub mod shadow;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::web;
use vigil_collector::writer::WriterHandle;
use vigil_store::auth::Authenticator;

pub use config::{
    BreakerConfig, GatewayConfig, GatewayConfigError, LlmConfig, ModelApi, ModelConfig, RampConfig,
    ShadowConfig, VersionConfig,
};
pub use metrics::GatewayMetrics;
pub use routing::Routing;

use crate::experiment::Experiment;
use crate::mlflow::MlflowConfig;
use crate::promotion::DeploymentState;
use recorder::Recorder;
use shadow::Mirror;
use vigil_store::Store;

/// Re-reads the configuration for a reload: the `[gateway]` section and `[[experiments]]`.
pub type Reloader =
    Box<dyn Fn() -> Result<(Option<GatewayConfig>, Vec<Experiment>), String> + Send + Sync>;

/// Why the gateway could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] GatewayConfigError),
    #[error("cannot build the HTTP client for backends: {0}")]
    Client(String),
    #[error("reload failed, the previous routing stays in effect: {0}")]
    Reload(String),
    #[error(
        "reload is not available: the gateway was started without a configuration file to re-read"
    )]
    NoReloader,
}

/// Everything the handlers share.
pub struct GatewayState {
    routing: RwLock<Arc<Routing>>,
    reloader: Option<Reloader>,
    client: reqwest::Client,
    recorder: Recorder,
    mirror: Mirror,
    pub metrics: Arc<GatewayMetrics>,
    auth: Authenticator,
    /// Where promotions are recorded; `None` (no store) turns the promotion endpoints off.
    pub(crate) store: Option<Store>,
    pub(crate) mlflow: Option<MlflowConfig>,
    /// One promotion, rollback or ramp step at a time.
    pub(crate) deploy_lock: tokio::sync::Mutex<()>,
}

impl GatewayState {
    /// The current routing table. Requests keep the `Arc` they started with, so a reload never
    /// changes the table under an in-flight request.
    pub fn routing(&self) -> Arc<Routing> {
        match self.routing.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the configuration and swaps the routing table; on any error the old table stays.
    pub fn reload(&self) -> Result<Arc<Routing>, GatewayError> {
        let result = self.try_reload();
        match &result {
            Ok(r) => {
                self.metrics.reloads_ok.fetch_add(1, Relaxed);
                tracing::info!(
                    models = r.models.len(),
                    experiments = r.experiments.len(),
                    "gateway routing reloaded"
                );
            }
            Err(e) => {
                self.metrics.reloads_failed.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "gateway reload rejected");
            }
        }
        result
    }

    fn try_reload(&self) -> Result<Arc<Routing>, GatewayError> {
        let reloader = self.reloader.as_ref().ok_or(GatewayError::NoReloader)?;
        let (config, experiments) = reloader().map_err(GatewayError::Reload)?;
        let config = config.ok_or_else(|| {
            GatewayError::Reload("the configuration no longer has a [gateway] section; restart to turn the gateway off".into())
        })?;
        let deployments = self.routing().deployments.clone();
        let routing = Arc::new(
            Routing::build_with(config, experiments, deployments)
                .map_err(|e| GatewayError::Reload(e.to_string()))?,
        );
        self.swap(routing.clone());
        Ok(routing)
    }

    fn swap(&self, routing: Arc<Routing>) {
        match self.routing.write() {
            Ok(mut r) => *r = routing,
            Err(poisoned) => *poisoned.into_inner() = routing,
        }
    }

    /// Recompiles the routing with a new deployment history (after a promotion, a rollback or a
    /// ramp step, here or elsewhere). Breakers are reset, as on reload.
    pub fn apply_deployments(
        &self,
        deployments: DeploymentState,
    ) -> Result<Arc<Routing>, GatewayError> {
        let routing = Arc::new(self.routing().rebuild(Arc::new(deployments))?);
        self.swap(routing.clone());
        tracing::info!(
            production = ?routing.models.values().map(|m| (m.name.as_str(), m.control.as_str())).collect::<Vec<_>>(),
            "gateway routing follows the deployment history"
        );
        Ok(routing)
    }

    /// Re-reads `deployments` and recompiles when it changed.
    pub async fn refresh_deployments(&self) -> Result<bool, GatewayError> {
        let Some(store) = &self.store else {
            return Ok(false);
        };
        let state = crate::promotion::load_state(store)
            .await
            .map_err(|e| GatewayError::Reload(e.to_string()))?;
        if *self.routing().deployments == state {
            return Ok(false);
        }
        self.apply_deployments(state)?;
        Ok(true)
    }
}

/// A started gateway: mount it with [`Gateway::configure`], stop it with [`Gateway::shutdown`].
pub struct Gateway {
    pub state: web::Data<GatewayState>,
    close_recorder: tokio::sync::oneshot::Sender<()>,
    recorder_task: tokio::task::JoinHandle<()>,
    sighup_task: Option<tokio::task::JoinHandle<()>>,
    deployments_task: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Builds the routing table and starts the recorder and mirror tasks (call inside a Tokio
    /// runtime). With a `reloader`, SIGHUP reloads the routing.
    pub fn start(
        config: GatewayConfig,
        experiments: Vec<Experiment>,
        auth: Authenticator,
        writer: WriterHandle,
        reloader: Option<Reloader>,
        store: Option<Store>,
        mlflow: Option<MlflowConfig>,
    ) -> Result<Gateway, GatewayError> {
        let routing = Routing::build(config, experiments)?;
        let metrics = Arc::new(GatewayMetrics::default());
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| GatewayError::Client(e.to_string()))?;
        let (recorder, close_recorder, recorder_task) =
            Recorder::start(writer, routing.config.record_queue, metrics.clone());
        let mirror = Mirror::start(
            client.clone(),
            recorder.clone(),
            routing.config.shadow_queue,
            routing.config.shadow_concurrency,
            metrics.clone(),
        );
        let has_reloader = reloader.is_some();
        let state = web::Data::new(GatewayState {
            routing: RwLock::new(Arc::new(routing)),
            reloader,
            client,
            recorder,
            mirror,
            metrics,
            auth,
            store,
            mlflow,
            deploy_lock: tokio::sync::Mutex::new(()),
        });
        let deployments_task = state
            .store
            .is_some()
            .then(|| tokio::spawn(ramp::poll_deployments(state.clone())));
        let sighup_task = if has_reloader {
            spawn_sighup(state.clone())
        } else {
            None
        };
        Ok(Gateway {
            state,
            close_recorder,
            recorder_task,
            sighup_task,
            deployments_task,
        })
    }

    /// Mounts the gateway routes.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        http::configure(cfg, self.state.clone());
    }

    /// Stops reacting to SIGHUP, lets in-flight mirrored copies finish (up to the backend
    /// timeout), and waits until the recorded rows are handed to the writer. Call after the HTTP
    /// server has stopped.
    pub async fn shutdown(self) {
        if let Some(t) = self.sighup_task {
            t.abort();
        }
        if let Some(t) = self.deployments_task {
            t.abort();
        }
        let grace = self.state.routing().config.timeout_ms;
        let mirror = self.state.mirror.clone();
        drop(self.state);
        mirror.drained(Duration::from_millis(grace)).await;
        let _ = self.close_recorder.send(());
        let mut task = self.recorder_task;
        if tokio::time::timeout(Duration::from_secs(10), &mut task)
            .await
            .is_err()
        {
            tracing::warn!("gateway recorder still busy after 10 s; giving up on its last rows");
            task.abort();
        }
    }
}

#[cfg(unix)]
fn spawn_sighup(state: web::Data<GatewayState>) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => Some(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = state.reload();
            }
        })),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /v1/admin/reload");
            None
        }
    }
}

#[cfg(not(unix))]
fn spawn_sighup(_: web::Data<GatewayState>) -> Option<tokio::task::JoinHandle<()>> {
    None
}
