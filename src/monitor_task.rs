//! `vigil serve` runs the `[[monitors]]` on schedule: a tokio interval that evaluates every
//! monitor whose latest complete window has no results yet (the same `run_due` as
//! `vigil analyze`), so a window is judged once, shortly after it closes.

use std::time::Duration;
use vigil_analyzer::alerting::AlertContext;
use vigil_analyzer::monitor::{self, MonitorConfig};
use vigil_store::Store;

/// How often to look for due windows: a quarter of the shortest window, between 1 s and 5 min,
/// so a window's verdict lands soon after it closes without polling the store needlessly.
fn tick(monitors: &[MonitorConfig]) -> Duration {
    let shortest = monitors
        .iter()
        .filter_map(|m| m.window_secs().ok())
        .min()
        .unwrap_or(3600);
    Duration::from_secs(u64::from(shortest / 4).clamp(1, 300))
}

/// What text monitors (`texts = ["input"]`) need: the shadow runner's sentence encoder, loaded
/// on first use (a configuration without text monitors never loads it) and the in-process
/// embedding cache, shared by every monitor and pass of this process.
pub fn text_monitoring() -> std::sync::Arc<monitor::TextMonitoring> {
    std::sync::Arc::new(monitor::TextMonitoring::new(Box::new(|dir| {
        let encoder =
            vigil_shadow_runner::encoder::load_text_encoder(dir.map(std::path::Path::new))
                .map_err(|e| format!("{e:#}"))?;
        tracing::info!(
            encoder = %vigil_analyzer::cli::TextEncoder::name(&encoder),
            device = %vigil_shadow_runner::device_name(encoder.device()),
            "text monitors: sentence encoder ready"
        );
        Ok(std::sync::Arc::new(encoder) as monitor::text::SharedEncoder)
    })))
}

/// A window is judged this long after it closes: events are acknowledged to producers within
/// about a second of arriving (writer and gateway batches), so a window judged the instant it
/// closes would miss its last second.
const SETTLE_SECS: u32 = 2;

/// The retraining triggers (`[[shadow.triggers]]`) evaluated after each monitor run, so a
/// drifted window files its retraining request without anyone running `vigil shadow triggers`.
pub struct Retraining {
    config: vigil_shadow_runner::config::ShadowConfig,
    delivery: vigil_shadow_runner::retrain::Delivery,
    routes: Vec<vigil_analyzer::alerting::RouteConfig>,
}

impl Retraining {
    pub fn from_config(c: &crate::config::VigilConfig) -> Retraining {
        Retraining {
            config: c.shadow.clone(),
            delivery: vigil_shadow_runner::retrain::Delivery::from_config(
                &c.shadow,
                &c.kafka.brokers,
            ),
            routes: c.alert_routes.clone(),
        }
    }

    async fn evaluate(&self, store: &Store) {
        if self.config.triggers.is_empty() {
            return;
        }
        match vigil_shadow_runner::retrain::evaluate_triggers(
            store,
            &self.config,
            &self.delivery,
            &self.routes,
        )
        .await
        {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "retraining triggers failed; retrying next window")
            }
        }
    }
}

/// Starts the schedule; `None` when no monitors are configured. Errors are logged and retried
/// on the next tick: a store outage must not stop monitoring for good.
///
/// After a run that evaluated a window, the alert rules run on the new results (their
/// notifications go to the outbox; `alerting::spawn_delivery` sends them).
pub fn spawn(
    store: Store,
    monitors: Vec<MonitorConfig>,
    alerts: AlertContext,
    retraining: Option<Retraining>,
) -> Option<tokio::task::JoinHandle<()>> {
    if monitors.is_empty() {
        return None;
    }
    let every = tick(&monitors);
    tracing::info!(
        monitors = monitors.len(),
        every_secs = every.as_secs(),
        "monitors scheduled"
    );
    let texts = text_monitoring();
    Some(tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let now = chrono::Utc::now().timestamp().clamp(0, u32::MAX as i64) as u32;
            let at = now.saturating_sub(SETTLE_SECS);
            match monitor::run_due_with(&store, &monitors, None, at, now, &texts).await {
                Ok(outcomes) => {
                    let mut ran = false;
                    for o in outcomes {
                        if let monitor::DueOutcome::Ran(run) = o {
                            ran = true;
                            tracing::info!(monitor = %run.monitor, window_end = run.window_end,
                                verdict = run.verdict.as_str(), drift_share = run.drift_share,
                                "monitor evaluated");
                        }
                    }
                    if ran {
                        if let Err(e) =
                            vigil_analyzer::alerting::evaluate::evaluate(&store, &alerts).await
                        {
                            tracing::warn!(error = %e, "alert evaluation failed; retrying next window");
                        }
                        if let Some(r) = &retraining {
                            r.evaluate(&store).await;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "monitor run failed; retrying next tick"),
            }
        }
    }))
}
