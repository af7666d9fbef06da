//! Following the deployment history, and ramping a promoted version up stage by stage.
//!
//! Every `deployment_poll_ms` the gateway re-reads `deployments` (a promotion or rollback made
//! by the CLI or another gateway takes effect here within one poll) and, for a model with a
//! ramp in progress, decides with [`ramp_step`] (pure) whether to advance to the next stage,
//! wait, or roll back: the new version's per-request latency is compared with the production
//! version's over the current stage with an always-valid (sequential) test, so judging it at
//! every poll does not inflate false alarms, and a significant slowdown aborts the ramp.

use std::time::Duration;

use actix_web::web;
use serde::Deserialize;
use vigil_store::{sql_string, Store, StoreError};

use super::config::RampConfig;
use super::GatewayState;
use crate::promotion::{self, Rollout};
use crate::stats::{sequential, ArmStats, SampleMoments, SequentialConfig};

/// What to do with a ramp now.
#[derive(Debug, Clone, PartialEq)]
pub enum RampStep {
    Wait(String),
    Advance(f64),
    Abort(String),
}

/// Per-request latency moments of one version over the current stage.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize, clickhouse::Row)]
pub struct LatencyMoments {
    pub n: u64,
    pub sum: f64,
    pub sum_squares: f64,
}

/// Decides a ramp's next step from the time on the stage and the latency of both versions.
pub fn ramp_step(
    rollout: &Rollout,
    now_ms: u64,
    config: &RampConfig,
    new_version: LatencyMoments,
    production: LatencyMoments,
) -> RampStep {
    if new_version.n >= config.min_requests.max(2) && production.n >= 2 {
        let stats = |m: LatencyMoments| {
            ArmStats::Mean(SampleMoments {
                n: m.n,
                sum: m.sum,
                sum_squares: m.sum_squares,
            })
        };
        // Judged at every poll, so with an always-valid test: a fixed-horizon test looked at
        // every few seconds would abort harmless ramps.
        let seq = SequentialConfig {
            alpha: config.alpha,
            ..Default::default()
        };
        if let Ok(r) = sequential::analyze(&stats(production), &stats(new_version), &seq) {
            if r.expected > 0.0 && r.is_significant(config.alpha) {
                return RampStep::Abort(format!(
                    "guardrail latency failed at {:.0}% of traffic: {:+.1}% slower (always-valid p = {:.2e})",
                    100.0 * rollout.share,
                    100.0 * r.expected,
                    r.p_value
                ));
            }
        }
    } else {
        return RampStep::Wait(format!(
            "{} of {} requests needed on this stage",
            new_version.n, config.min_requests
        ));
    }
    let elapsed = now_ms.saturating_sub(rollout.since_ms);
    if elapsed < config.step_seconds * 1000 {
        return RampStep::Wait(format!(
            "{} s of {} s on this stage",
            elapsed / 1000,
            config.step_seconds
        ));
    }
    match config.stages.iter().find(|s| **s > rollout.share + 1e-12) {
        Some(next) => RampStep::Advance(*next),
        None => RampStep::Advance(1.0),
    }
}

/// Per-request latency moments of `model`'s `version` since `since_ms`.
pub async fn latency_since(
    store: &Store,
    model: &str,
    version: &str,
    since_ms: u64,
) -> Result<LatencyMoments, StoreError> {
    let rows: Vec<LatencyMoments> = store
        .fetch(&format!(
            // `ifNull`: on 18.16 a sum over a Nullable column stays Nullable, which would not
            // decode as a plain f64.
            "SELECT toUInt64(count()) AS n, toFloat64(sum(ifNull(latency_ms, 0))) AS sum, \
             toFloat64(sum(ifNull(latency_ms, 0) * ifNull(latency_ms, 0))) AS sum_squares \
             FROM {} FINAL WHERE model = {} AND version = {} AND ts_ms >= {since_ms} AND isNotNull(latency_ms)",
            store.table("inference_events"),
            sql_string(model),
            sql_string(version)
        ))
        .await?;
    Ok(rows.into_iter().next().unwrap_or_default())
}

/// One poll: re-read deployments, then judge every ramp in progress.
pub async fn poll_once(state: &GatewayState) -> Result<(), String> {
    let Some(store) = state.store.clone() else {
        return Ok(());
    };
    let _guard = state.deploy_lock.lock().await;
    state
        .refresh_deployments()
        .await
        .map_err(|e| e.to_string())?;
    let routing = state.routing();
    let config = routing.config.ramp.clone();
    let mut changed = false;
    for m in routing.models.values() {
        let Some(rollout) = &m.rollout else { continue };
        let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let new = latency_since(&store, &m.name, &rollout.version, rollout.since_ms)
            .await
            .map_err(|e| e.to_string())?;
        let prod = latency_since(&store, &m.name, &m.control, rollout.since_ms)
            .await
            .map_err(|e| e.to_string())?;
        let (next, reason) = match ramp_step(rollout, now_ms, &config, new, prod) {
            RampStep::Wait(_) => continue,
            RampStep::Advance(share) => (
                Some(share),
                format!(
                    "guardrails held for {} s at {:.0}% of traffic",
                    config.step_seconds,
                    100.0 * rollout.share
                ),
            ),
            RampStep::Abort(why) => (None, why),
        };
        match promotion::record_ramp_step(
            &store,
            &m.name,
            rollout,
            &m.control,
            next,
            &reason,
            state.mlflow.as_ref(),
        )
        .await
        {
            Ok(row) => {
                tracing::info!(model = %m.name, action = %row.action, share = row.rollout_share, %reason, "ramp step");
                changed = true;
            }
            Err(e) => tracing::warn!(model = %m.name, error = %e, "ramp step failed; will retry"),
        }
    }
    if changed {
        state
            .refresh_deployments()
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The gateway's background loop.
pub async fn poll_deployments(state: web::Data<GatewayState>) {
    let every = Duration::from_millis(state.routing().config.deployment_poll_ms.max(100));
    loop {
        if let Err(e) = poll_once(&state).await {
            tracing::warn!(error = %e, "cannot read deployments; routing unchanged");
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(share: f64) -> Rollout {
        Rollout {
            version: "v2".into(),
            share,
            experiment: "e".into(),
            since_ms: 0,
        }
    }

    fn lat(n: u64, mean: f64, sd: f64) -> LatencyMoments {
        let nf = n as f64;
        LatencyMoments {
            n,
            sum: nf * mean,
            sum_squares: (nf - 1.0) * sd * sd + nf * mean * mean,
        }
    }

    #[test]
    fn advances_waits_and_aborts() {
        let cfg = RampConfig {
            step_seconds: 60,
            ..Default::default()
        };
        let ok = lat(1000, 20.0, 5.0);
        assert_eq!(
            ramp_step(&rollout(0.05), 61_000, &cfg, ok, ok),
            RampStep::Advance(0.25)
        );
        assert!(matches!(
            ramp_step(&rollout(0.05), 10_000, &cfg, ok, ok),
            RampStep::Wait(_)
        ));
        assert!(matches!(
            ramp_step(&rollout(0.05), 61_000, &cfg, lat(10, 20.0, 5.0), ok),
            RampStep::Wait(_)
        ));
        assert_eq!(
            ramp_step(&rollout(0.5), 61_000, &cfg, ok, ok),
            RampStep::Advance(1.0)
        );
        // 30 ms against 20 ms is a failed guardrail, even before the stage's time is up.
        assert!(matches!(
            ramp_step(&rollout(0.25), 1_000, &cfg, lat(1000, 30.0, 5.0), ok),
            RampStep::Abort(_)
        ));
    }
}
