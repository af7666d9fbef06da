//! Alerting: drift and health alerts that on-call engineers can trust (docs/alerting.md).
//!
//! - [`config`]: `[alerting]`, `[[alert_routes]]`, `[[alert_rules]]` and the default rules;
//! - [`engine`]: pure evaluation of monitor results into incident transitions (persistence,
//!   grouping, Benjamini–Hochberg, learned thresholds, hysteresis, cooldown);
//! - [`evaluate`]: runs the engine over `monitor_results` and persists incidents;
//! - [`outbox`]: the durable notification outbox and its delivery loop;
//! - [`smtp`] (lettre) and [`webhook`] (reqwest): the channels;
//! - [`render`] and [`chart`]: subjects, plain-text and HTML parts, the PNG chart;
//! - [`cli`]: `vigil alerts …`; [`http`]: `GET /v1/alerts`, `POST /v1/alerts/{id}/ack`,
//!   `POST /v1/silences`.

pub mod chart;
pub mod cli;
pub mod config;
pub mod db;
pub mod engine;
pub mod evaluate;
pub mod http;
pub mod outbox;
pub mod render;
pub mod smtp;
pub mod webhook;

use std::time::Duration;

pub use config::{AlertingConfig, RouteConfig, RuleConfig};
use vigil_store::{Store, StoreError};

use crate::monitor::{MonitorConfig, MonitorError};

/// Errors of alerting. Messages say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("invalid alerting configuration: {0}")]
    Config(String),
    #[error("no alert route named `{0}`; define it as [[alert_routes]] name = \"{0}\"")]
    UnknownRoute(String),
    #[error("no incident `{0}`; `vigil alerts list` shows their ids")]
    UnknownIncident(String),
    #[error("incident `{0}` is resolved; nothing to acknowledge")]
    AlreadyResolved(String),
    #[error("delivery failed: {0}")]
    Delivery(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Monitor(#[from] MonitorError),
}

/// Everything alerting needs from `vigil.toml`.
#[derive(Debug, Clone, Default)]
pub struct AlertContext {
    pub alerting: AlertingConfig,
    pub routes: Vec<RouteConfig>,
    pub rules: Vec<RuleConfig>,
    pub monitors: Vec<MonitorConfig>,
}

/// Enqueues a free-form notification through a route (other crates: e.g. the shadow runner
/// e-mailing a retraining request). Delivered by `vigil serve`'s loop like any alert; the
/// same `idempotency_key` is never enqueued twice.
pub async fn notify(
    store: &Store,
    routes: &[RouteConfig],
    route_name: &str,
    notification: &render::Notification,
) -> Result<Vec<String>, AlertError> {
    outbox::enqueue(store, routes, route_name, "", "custom", notification).await
}

/// `vigil serve`'s delivery loop: every `deliver_every`, send what is due. Errors (store
/// down) are logged and retried on the next tick; nothing is lost, the outbox is in the store.
pub fn spawn_delivery(store: Store, ctx: AlertContext) -> Option<tokio::task::JoinHandle<()>> {
    if ctx.routes.is_empty() {
        return None;
    }
    let every = ctx
        .alerting
        .secs("deliver_every", &ctx.alerting.deliver_every)
        .unwrap_or(5)
        .max(1);
    tracing::info!(
        routes = ctx.routes.len(),
        every_secs = every,
        "alert delivery scheduled"
    );
    Some(tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(u64::from(every)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(e) =
                outbox::deliver_due(&store, &ctx.alerting, &ctx.routes, None, false).await
            {
                tracing::warn!(error = %e, "alert delivery pass failed; retrying next tick");
            }
        }
    }))
}
