//! vigil-dashboards: the web UI, served by `vigil serve` under `/ui`.
//!
//! - Server-rendered HTML with server-side SVG charts ([`svg`]); one small CSS and one small JS
//!   file are embedded in the binary (`include_str!`): no front-end server, no internet.
//! - Pages: Overview, ROI, Drift & quality, Fairness, Experiments, LLM (time to first token,
//!   tokens, cost, feedback per model version), Alerts, Shadow & retraining
//!   ([`pages`]); every chart's data as CSV (`/ui/{page}/csv?chart=ID`, same query string).
//! - Login with the `[auth]` role tokens → server-side session ([`session`]): cookie
//!   `HttpOnly; SameSite=Strict; Path=/ui`, a CSRF token in every form, roles checked on the
//!   server for every mutating route (viewer → 403).
//! - The ROI value model (`[roi]`, [`roi::RoiConfig`]) and its computation ([`roi`]).
//! - Actions that belong to other crates (promotion, rollback, alert acknowledgement, silences)
//!   are injected through [`Actions`]; this crate never re-implements them.
//! - Grafana dashboards for the same tables live in `dashboards/grafana/` ([`grafana`]).

pub mod data;
pub mod grafana;
pub mod html;
pub mod pages;
pub mod roi;
pub mod session;
pub mod svg;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use vigil_analyzer::monitor::MonitorConfig;
use vigil_experimenter::experiment::ExperimentConfig;
use vigil_store::auth::Authenticator;
use vigil_store::Store;

pub use roi::RoiConfig;

/// The result of an injected action: a message for people, or why it failed.
pub type ActionFuture = Pin<Box<dyn Future<Output = Result<String, String>>>>;

/// Mutations owned by other crates, wired in by the binary (`src/serve.rs`).
pub trait Actions: Send + Sync + 'static {
    /// Promotes `arm` (default: the analysis' winner) of `experiment` to production.
    fn promote(
        &self,
        experiment: &str,
        arm: Option<&str>,
        actor: &str,
        reason: &str,
    ) -> ActionFuture;
    /// Rolls `model` back to its previous production version.
    fn rollback(&self, model: &str, actor: &str, reason: &str) -> ActionFuture;
    /// Acknowledges an alert incident.
    fn ack_alert(&self, incident: &str, actor: &str) -> ActionFuture;
    /// Silences alerts of `model` (and `monitor`, empty = all) for `minutes`.
    fn silence(
        &self,
        model: &str,
        monitor: &str,
        minutes: u64,
        actor: &str,
        reason: &str,
    ) -> ActionFuture;
}

/// Used when the binary wires no implementation: every action says it is not available.
pub struct Unavailable;

fn unavailable(what: &str) -> ActionFuture {
    let msg = format!(
        "{what} is not available in this vigil build (no implementation wired into `vigil serve`)"
    );
    Box::pin(async move { Err(msg) })
}

impl Actions for Unavailable {
    fn promote(&self, _: &str, _: Option<&str>, _: &str, _: &str) -> ActionFuture {
        unavailable("promotion")
    }
    fn rollback(&self, _: &str, _: &str, _: &str) -> ActionFuture {
        unavailable("rollback")
    }
    fn ack_alert(&self, _: &str, _: &str) -> ActionFuture {
        unavailable("acknowledging alerts")
    }
    fn silence(&self, _: &str, _: &str, _: u64, _: &str, _: &str) -> ActionFuture {
        unavailable("silencing alerts")
    }
}

/// Errors of the dashboards (rendered as an error page; never a panic).
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(transparent)]
    Store(#[from] vigil_store::StoreError),
    #[error("{0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
}

/// What the dashboards need; shared by every worker of the HTTP server.
pub struct DashboardState {
    pub store: Store,
    pub auth: Authenticator,
    pub roi: RoiConfig,
    pub experiments: Vec<ExperimentConfig>,
    /// `[[monitors]]`: the drift page compares distributions against a monitor's reference
    /// period when one is configured for the model (empty: the earliest data in range).
    pub monitors: Vec<MonitorConfig>,
    /// Configured production version per gateway model (`[[gateway.models]] control`), shown
    /// until the deployment audit trail says otherwise.
    pub controls: std::collections::BTreeMap<String, String>,
    pub actions: Arc<dyn Actions>,
    pub sessions: session::Sessions,
    /// CSRF token used when auth is off (no tokens configured: local demo).
    pub open_csrf: String,
}

impl DashboardState {
    pub fn new(
        store: Store,
        auth: Authenticator,
        roi: RoiConfig,
        experiments: Vec<ExperimentConfig>,
        actions: Arc<dyn Actions>,
    ) -> Self {
        DashboardState {
            store,
            auth,
            roi,
            experiments,
            monitors: Vec::new(),
            controls: Default::default(),
            actions,
            sessions: session::Sessions::new(Duration::from_secs(12 * 3600)),
            open_csrf: session::random_token(),
        }
    }

    /// The `[[monitors]]` whose reference periods the drift page draws.
    pub fn with_monitors(mut self, monitors: Vec<MonitorConfig>) -> Self {
        self.monitors = monitors;
        self
    }

    /// The gateway's configured production version per model.
    pub fn with_controls(mut self, controls: std::collections::BTreeMap<String, String>) -> Self {
        self.controls = controls;
        self
    }
}

/// Mounts the UI under `/ui`.
pub fn configure(cfg: &mut actix_web::web::ServiceConfig, state: Arc<DashboardState>) {
    pages::configure(cfg, actix_web::web::Data::from(state));
}
