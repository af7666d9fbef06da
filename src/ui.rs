//! Wiring of the web UI (`vigil-dashboards`) into `vigil serve` and `vigil demo`: its state, and
//! the actions it triggers, implemented by the crates that own them (promotion and rollback in
//! `vigil-experimenter`, acknowledgements and silences in `vigil-analyzer`'s alerting).

use crate::config::VigilConfig;
use actix_web::web;
use std::collections::HashMap;
use std::sync::Arc;
use vigil_dashboards::{ActionFuture, Actions, DashboardState};
use vigil_experimenter::experiment::ExperimentConfig;
use vigil_experimenter::gateway::GatewayState;
use vigil_experimenter::mlflow::MlflowConfig;
use vigil_experimenter::promotion::{self, PromoteRequest};
use vigil_store::auth::Authenticator;
use vigil_store::rows::DeploymentRow;
use vigil_store::Store;

/// The dashboards' state for `config` over `store`. With a running gateway, promotion and
/// rollback go through it (the routing table is swapped before the page answers, MLflow is
/// moved); without one they are recorded in the store for the gateways that read it.
pub fn dashboard_state(
    config: &VigilConfig,
    store: Store,
    gateway: Option<web::Data<GatewayState>>,
) -> anyhow::Result<Arc<DashboardState>> {
    let auth = Authenticator::from_config(&config.auth.tokens)?;
    let experiments: Vec<ExperimentConfig> = config
        .experiments
        .iter()
        .map(|e| e.config().clone())
        .collect();
    let actions = Arc::new(StoreActions {
        store: store.clone(),
        experiments: experiments.clone(),
        gateway,
        controls: config
            .gateway
            .iter()
            .flat_map(|g| g.models.iter().map(|m| (m.name.clone(), m.control.clone())))
            .collect(),
        mlflow: config.mlflow.clone(),
    });
    Ok(Arc::new(
        DashboardState::new(store, auth, config.roi.clone(), experiments, actions)
            .with_monitors(config.monitors.clone())
            .with_controls(
                config
                    .gateway
                    .iter()
                    .flat_map(|g| g.models.iter().map(|m| (m.name.clone(), m.control.clone())))
                    .collect(),
            ),
    ))
}

/// Actions against the store, through the owning crates.
struct StoreActions {
    store: Store,
    experiments: Vec<ExperimentConfig>,
    gateway: Option<web::Data<GatewayState>>,
    /// Configured production version per gateway model (before any promotion).
    controls: HashMap<String, String>,
    mlflow: Option<MlflowConfig>,
}

fn promoted(d: &DeploymentRow) -> String {
    format!(
        "Promoted: model `{}` now serves `{}` (was `{}`); audit record {}.",
        d.model, d.to_version, d.from_version, d.id
    )
}

fn rolled_back(d: &DeploymentRow) -> String {
    format!(
        "Rolled back: model `{}` serves `{}` again (was `{}`); audit record {}.",
        d.model, d.to_version, d.from_version, d.id
    )
}

impl Actions for StoreActions {
    fn promote(
        &self,
        experiment: &str,
        arm: Option<&str>,
        actor: &str,
        reason: &str,
    ) -> ActionFuture {
        let store = self.store.clone();
        let exp = self
            .experiments
            .iter()
            .find(|e| e.key == experiment)
            .cloned();
        let (key, request) = (
            experiment.to_string(),
            PromoteRequest {
                arm: arm.map(str::to_string),
                actor: actor.to_string(),
                reason: reason.to_string(),
                force: false,
                ramp: Vec::new(),
            },
        );
        let gateway = self.gateway.clone();
        let mlflow = self.mlflow.clone();
        let controls = self.controls.clone();
        Box::pin(async move {
            if let Some(g) = gateway {
                let out = g
                    .promote(&key, request, false)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(promoted(&out.deployment));
            }
            let exp = exp.ok_or_else(|| format!("experiment `{key}` is not configured"))?;
            let model = exp.model.clone().unwrap_or_default();
            let control = controls.get(&model).cloned().unwrap_or_else(|| {
                exp.arms
                    .first()
                    .map(|a| a.model_version.clone())
                    .unwrap_or_default()
            });
            let out = promotion::promote(&store, &exp, &control, &request, mlflow.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            Ok(promoted(&out.deployment))
        })
    }

    fn rollback(&self, model: &str, actor: &str, reason: &str) -> ActionFuture {
        let store = self.store.clone();
        let (model, actor, reason) = (model.to_string(), actor.to_string(), reason.to_string());
        let gateway = self.gateway.clone();
        let mlflow = self.mlflow.clone();
        Box::pin(async move {
            let d = match gateway {
                Some(g) => g
                    .rollback(&model, &actor, &reason)
                    .await
                    .map_err(|e| e.to_string())?,
                None => promotion::rollback(&store, &model, &actor, &reason, mlflow.as_ref())
                    .await
                    .map_err(|e| e.to_string())?,
            };
            Ok(rolled_back(&d))
        })
    }

    fn ack_alert(&self, incident: &str, actor: &str) -> ActionFuture {
        let store = self.store.clone();
        let (id, actor) = (incident.to_string(), actor.to_string());
        Box::pin(async move {
            vigil_analyzer::alerting::cli::ack(&store, &id, &actor)
                .await
                .map(|_| format!("Incident {id} acknowledged by {actor}."))
                .map_err(|e| e.to_string())
        })
    }

    fn silence(
        &self,
        model: &str,
        monitor: &str,
        minutes: u64,
        actor: &str,
        reason: &str,
    ) -> ActionFuture {
        let store = self.store.clone();
        let (model, monitor, actor, reason) = (
            model.to_string(),
            monitor.to_string(),
            actor.to_string(),
            reason.to_string(),
        );
        Box::pin(async move {
            let mon = (!monitor.is_empty()).then_some(monitor.as_str());
            vigil_analyzer::alerting::cli::silence(
                &store,
                &model,
                mon,
                &format!("{minutes}m"),
                &reason,
                &actor,
            )
            .await
            .map(|s| {
                format!(
                    "Alerts of `{}` silenced until {} (UTC).",
                    s.model, s.ends_at
                )
            })
            .map_err(|e| e.to_string())
        })
    }
}
