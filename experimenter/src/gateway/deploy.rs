//! Promotion and rollback through a running gateway: record the change, then swap the routing
//! table at once, so the next request already goes to the new production version.

use super::GatewayState;
use crate::promotion::{self, PromoteRequest, PromotionError, PromotionOutcome};
use vigil_store::rows::DeploymentRow;

/// Why a promotion through the gateway failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("promotion needs the store: start `vigil serve` with a store (it always has one) — this gateway was started without")]
    NoStore,
    #[error("experiment `{0}` is not configured")]
    UnknownExperiment(String),
    #[error("model `{0}` is not served by the gateway")]
    UnknownModel(String),
    #[error(transparent)]
    Promotion(#[from] PromotionError),
    #[error("recorded, but the routing could not be rebuilt (it will be on the next poll): {0}")]
    Routing(String),
}

impl DeployError {
    /// HTTP status for the error.
    pub fn status(&self) -> u16 {
        match self {
            DeployError::NoStore => 503,
            DeployError::UnknownExperiment(_) | DeployError::UnknownModel(_) => 404,
            DeployError::Promotion(p) if p.is_conflict() => 409,
            DeployError::Promotion(PromotionError::UnknownArm { .. })
            | DeployError::Promotion(PromotionError::BadRamp(_))
            | DeployError::Promotion(PromotionError::NoModel(_)) => 400,
            DeployError::Promotion(PromotionError::Mlflow(_)) => 502,
            _ => 500,
        }
    }
}

impl GatewayState {
    /// Promotes `experiment`'s winner (or `request.arm`), then routes by the new history.
    pub async fn promote(
        &self,
        experiment: &str,
        mut request: PromoteRequest,
        ramp: bool,
    ) -> Result<PromotionOutcome, DeployError> {
        let store = self.store.clone().ok_or(DeployError::NoStore)?;
        let _guard = self.deploy_lock.lock().await;
        let routing = self.routing();
        let exp = routing
            .configured
            .iter()
            .find(|e| e.key() == experiment)
            .ok_or_else(|| DeployError::UnknownExperiment(experiment.to_owned()))?;
        let model = exp.config().model.clone().unwrap_or_default();
        let control = routing
            .config
            .models
            .iter()
            .find(|m| m.name == model)
            .map(|m| m.control.clone())
            .ok_or_else(|| DeployError::UnknownModel(model.clone()))?;
        if ramp {
            request.ramp = routing.config.ramp.stages.clone();
        }
        let outcome = promotion::promote(
            &store,
            exp.config(),
            &control,
            &request,
            self.mlflow.as_ref(),
        )
        .await?;
        self.refresh_deployments()
            .await
            .map_err(|e| DeployError::Routing(e.to_string()))?;
        Ok(outcome)
    }

    /// Restores the production version the last promotion of `model` replaced.
    pub async fn rollback(
        &self,
        model: &str,
        actor: &str,
        reason: &str,
    ) -> Result<DeploymentRow, DeployError> {
        let store = self.store.clone().ok_or(DeployError::NoStore)?;
        let _guard = self.deploy_lock.lock().await;
        if !self.routing().models.contains_key(model) {
            return Err(DeployError::UnknownModel(model.to_owned()));
        }
        let row = promotion::rollback(&store, model, actor, reason, self.mlflow.as_ref()).await?;
        self.refresh_deployments()
            .await
            .map_err(|e| DeployError::Routing(e.to_string()))?;
        Ok(row)
    }

    /// The store-backed analysis of a configured experiment.
    pub async fn analysis(
        &self,
        experiment: &str,
    ) -> Result<crate::analysis::ExperimentReport, DeployError> {
        let store = self.store.clone().ok_or(DeployError::NoStore)?;
        let routing = self.routing();
        let exp = routing
            .configured
            .iter()
            .find(|e| e.key() == experiment)
            .ok_or_else(|| DeployError::UnknownExperiment(experiment.to_owned()))?;
        crate::warehouse::analyze_experiment(
            &store,
            exp.config(),
            None,
            crate::warehouse::TimeRange::default(),
        )
        .await
        .map_err(|e| DeployError::Promotion(PromotionError::Warehouse(e)))
    }
}
