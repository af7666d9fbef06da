//! Promotion: making an experiment's winning version the model's production version, as one
//! audited, reversible change.
//!
//! The store's `deployments` table (migration 4) is the source of truth. It is append-only:
//! a promotion, a rollback and every ramp step are rows, and the production version of a model
//! is the replay of its rows ([`DeploymentState::replay`], pure). The gateway compiles that
//! state into its routing table (the configured `control` is only the starting point), so a
//! promotion survives restarts and reaches every gateway that reads the same store.
//!
//! [`promote`] checks the analysis (no winner while SRM fails, before the minimum sample, or
//! with a harmed guardrail — unless forced), sets the MLflow alias when configured (a failure
//! there aborts before anything changes), then writes the row. [`rollback`] restores the
//! version the last promotion replaced.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use vigil_store::rows::DeploymentRow;
use vigil_store::{sql_string, Store, StoreError};

use crate::analysis::ExperimentReport;
use crate::experiment::ExperimentConfig;
use crate::mlflow::{MlflowClient, MlflowConfig};
use crate::stats::Verdict;
use crate::warehouse::{self, TimeRange};

/// A version getting part of a model's traffic while it ramps up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub version: String,
    /// Share of the model's units served `version` (sticky by unit hash).
    pub share: f64,
    pub experiment: String,
    /// When this step started (ms).
    pub since_ms: u64,
}

/// One model's deployment history, replayed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelDeployment {
    pub production: String,
    /// Versions replaced by promotions, most recent last (what rollbacks restore).
    pub previous: Vec<String>,
    pub rollout: Option<Rollout>,
}

/// Every model's deployment, plus experiments ended by a promotion.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeploymentState {
    pub models: BTreeMap<String, ModelDeployment>,
    pub ended_experiments: BTreeSet<String>,
    /// Number of rows replayed: a cheap change detector for pollers.
    pub rows: usize,
}

impl DeploymentState {
    /// Replays rows in `(ts_ms, id)` order.
    pub fn replay(rows: &[DeploymentRow]) -> DeploymentState {
        let mut sorted: Vec<&DeploymentRow> = rows.iter().collect();
        sorted.sort_by(|a, b| a.ts_ms.cmp(&b.ts_ms).then_with(|| a.id.cmp(&b.id)));
        let mut state = DeploymentState {
            rows: rows.len(),
            ..Default::default()
        };
        for r in sorted {
            let m = state
                .models
                .entry(r.model.clone())
                .or_insert_with(|| ModelDeployment {
                    production: r.from_version.clone(),
                    ..Default::default()
                });
            match r.action.as_str() {
                "promote" => {
                    if m.production != r.to_version {
                        m.previous.push(r.from_version.clone());
                    }
                    m.production = r.to_version.clone();
                    m.rollout = None;
                    if !r.experiment.is_empty() {
                        state.ended_experiments.insert(r.experiment.clone());
                    }
                }
                "ramp" => {
                    m.rollout = Some(Rollout {
                        version: r.to_version.clone(),
                        share: r.rollout_share,
                        experiment: r.experiment.clone(),
                        since_ms: r.ts_ms,
                    });
                    if !r.experiment.is_empty() {
                        state.ended_experiments.insert(r.experiment.clone());
                    }
                }
                "ramp_rollback" => m.rollout = None,
                "rollback" => {
                    m.previous.pop();
                    m.production = r.to_version.clone();
                    m.rollout = None;
                }
                _ => {}
            }
        }
        state
    }

    /// The production version of `model`, if a deployment changed it.
    pub fn production(&self, model: &str) -> Option<&str> {
        self.models.get(model).map(|m| m.production.as_str())
    }
}

/// Why a promotion or rollback was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PromotionError {
    #[error("experiment `{0}` is not configured")]
    UnknownExperiment(String),
    #[error("experiment `{0}` has no `model`; promotion changes a gateway model's production version, so set `model = \"...\"` on the experiment")]
    NoModel(String),
    #[error("experiment `{experiment}` has no arm `{arm}`")]
    UnknownArm { experiment: String, arm: String },
    #[error("experiment `{experiment}`: no arm to promote — {why}. Pass --arm NAME with --force to promote anyway")]
    NoWinner { experiment: String, why: String },
    #[error("experiment `{experiment}`, arm `{arm}`: the decision is `{verdict:?}`, not `ship` ({reasons}); pass --force to promote anyway")]
    NotShip {
        experiment: String,
        arm: String,
        verdict: Verdict,
        reasons: String,
    },
    #[error("`{version}` is already the production version of model `{model}`")]
    AlreadyProduction { model: String, version: String },
    #[error("model `{0}` has no earlier production version to roll back to")]
    NothingToRollBack(String),
    #[error("ramp stages must increase within (0, 1], got {0:?}")]
    BadRamp(Vec<f64>),
    #[error("MLflow: {0}; nothing was changed")]
    Mlflow(String),
    #[error(transparent)]
    Warehouse(#[from] warehouse::WarehouseError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PromotionError {
    /// Whether the caller asked for something the current state refuses (HTTP 409), rather
    /// than a failure.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            PromotionError::NoWinner { .. }
                | PromotionError::NotShip { .. }
                | PromotionError::AlreadyProduction { .. }
                | PromotionError::NothingToRollBack(_)
        )
    }
}

/// Reads one model's (or every model's) deployment rows.
pub async fn load_rows(
    store: &Store,
    model: Option<&str>,
) -> Result<Vec<DeploymentRow>, StoreError> {
    let filter = model
        .map(|m| format!(" WHERE model = {}", sql_string(m)))
        .unwrap_or_default();
    store
        .fetch(&format!(
            "SELECT id, toUInt32(ts) AS ts, toUInt64(ts_ms) AS ts_ms, model, action, experiment, arm, \
             from_version, to_version, toFloat64(rollout_share) AS rollout_share, actor, reason, evidence, mlflow \
             FROM {}{filter} ORDER BY ts_ms, id",
            store.table("deployments")
        ))
        .await
}

/// Replays the whole table.
pub async fn load_state(store: &Store) -> Result<DeploymentState, StoreError> {
    Ok(DeploymentState::replay(&load_rows(store, None).await?))
}

/// What to promote and how.
#[derive(Debug, Clone, Default)]
pub struct PromoteRequest {
    pub arm: Option<String>,
    pub actor: String,
    pub reason: String,
    /// Promote even when the decision is not `ship`.
    pub force: bool,
    /// Ramp stages (e.g. `[0.05, 0.25, 0.5, 1.0]`); empty = all traffic at once.
    pub ramp: Vec<f64>,
}

/// The outcome of a promotion: the audit row and the analysis it rests on.
#[derive(Debug, Clone, Serialize)]
pub struct PromotionOutcome {
    pub deployment: DeploymentRow,
    pub report: ExperimentReport,
}

fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A new audit row for `model`: a fresh id and the current time; the caller fills the rest.
fn change(model: &str, action: &str) -> DeploymentRow {
    let ts_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    DeploymentRow {
        id: new_id(),
        ts: (ts_ms / 1000) as u32,
        ts_ms,
        model: model.to_owned(),
        action: action.to_owned(),
        ..Default::default()
    }
}

/// `control` is the model's configured production version (`[gateway.models] control`), used
/// when no deployment has changed it yet.
pub async fn promote(
    store: &Store,
    experiment: &ExperimentConfig,
    configured_control: &str,
    request: &PromoteRequest,
    mlflow: Option<&MlflowConfig>,
) -> Result<PromotionOutcome, PromotionError> {
    let model = experiment
        .model
        .clone()
        .ok_or_else(|| PromotionError::NoModel(experiment.key.clone()))?;
    if !request.ramp.is_empty()
        && (request.ramp.windows(2).any(|w| w[0] >= w[1])
            || request.ramp.iter().any(|s| !(*s > 0.0 && *s <= 1.0)))
    {
        return Err(PromotionError::BadRamp(request.ramp.clone()));
    }
    let report =
        warehouse::analyze_experiment(store, experiment, None, TimeRange::default()).await?;
    let arm_name = match &request.arm {
        Some(a) => a.clone(),
        None => report
            .winner
            .clone()
            .ok_or_else(|| PromotionError::NoWinner {
                experiment: experiment.key.clone(),
                why: report
                    .decisions
                    .iter()
                    .map(|(arm, d)| format!("{arm}: {:?} ({})", d.verdict, d.reasons.join("; ")))
                    .collect::<Vec<_>>()
                    .join(" | "),
            })?,
    };
    let arm = experiment
        .arms
        .iter()
        .find(|a| a.name == arm_name)
        .ok_or_else(|| PromotionError::UnknownArm {
            experiment: experiment.key.clone(),
            arm: arm_name.clone(),
        })?;
    if !request.force {
        match report.decisions.get(&arm_name) {
            Some(d) if d.verdict == Verdict::Ship => {}
            Some(d) => {
                return Err(PromotionError::NotShip {
                    experiment: experiment.key.clone(),
                    arm: arm_name,
                    verdict: d.verdict,
                    reasons: d.reasons.join("; "),
                })
            }
            None => {
                return Err(PromotionError::NoWinner {
                    experiment: experiment.key.clone(),
                    why: format!(
                        "arm `{arm_name}` has no decision (it is the control, or has no units)"
                    ),
                })
            }
        }
    }
    let state = DeploymentState::replay(&load_rows(store, Some(&model)).await?);
    let production = state
        .production(&model)
        .unwrap_or(configured_control)
        .to_string();
    if production == arm.model_version {
        return Err(PromotionError::AlreadyProduction {
            model,
            version: production,
        });
    }
    let first_share = request.ramp.first().copied().unwrap_or(1.0);
    let full = first_share >= 1.0;
    // MLflow's alias names the version serving all traffic: set it only when that changes.
    let mlflow_note = match (mlflow, full) {
        (Some(cfg), true) => set_alias(cfg, &model, &arm.model_version).await?,
        _ => String::new(),
    };
    let row = DeploymentRow {
        experiment: experiment.key.clone(),
        arm: arm_name,
        from_version: production,
        to_version: arm.model_version.clone(),
        rollout_share: first_share,
        actor: request.actor.clone(),
        reason: request.reason.clone(),
        evidence: serde_json::json!({
            "report": &report,
            "ramp": &request.ramp,
            "forced": request.force,
        })
        .to_string(),
        mlflow: mlflow_note,
        ..change(&model, if full { "promote" } else { "ramp" })
    };
    store.insert(std::slice::from_ref(&row)).await?;
    Ok(PromotionOutcome {
        deployment: row,
        report,
    })
}

/// Restores the version the last promotion of `model` replaced (or stops a ramp in progress).
pub async fn rollback(
    store: &Store,
    model: &str,
    actor: &str,
    reason: &str,
    mlflow: Option<&MlflowConfig>,
) -> Result<DeploymentRow, PromotionError> {
    let state = DeploymentState::replay(&load_rows(store, Some(model)).await?);
    let current = state
        .models
        .get(model)
        .ok_or_else(|| PromotionError::NothingToRollBack(model.to_owned()))?;
    let (action, from, to, share, experiment) = if let Some(r) = &current.rollout {
        (
            "ramp_rollback",
            r.version.clone(),
            current.production.clone(),
            0.0,
            r.experiment.clone(),
        )
    } else {
        let previous = current
            .previous
            .last()
            .ok_or_else(|| PromotionError::NothingToRollBack(model.to_owned()))?;
        (
            "rollback",
            current.production.clone(),
            previous.clone(),
            1.0,
            String::new(),
        )
    };
    let mlflow_note = match (mlflow, action) {
        (Some(cfg), "rollback") => set_alias(cfg, model, &to).await?,
        _ => String::new(),
    };
    let row = DeploymentRow {
        experiment,
        from_version: from,
        to_version: to,
        rollout_share: share,
        actor: actor.to_owned(),
        reason: reason.to_owned(),
        mlflow: mlflow_note,
        ..change(model, action)
    };
    store.insert(std::slice::from_ref(&row)).await?;
    Ok(row)
}

/// Writes a ramp step (`advance`) or its abort after a failed guardrail.
pub async fn record_ramp_step(
    store: &Store,
    model: &str,
    rollout: &Rollout,
    production: &str,
    next_share: Option<f64>,
    reason: &str,
    mlflow: Option<&MlflowConfig>,
) -> Result<DeploymentRow, PromotionError> {
    let (action, share) = match next_share {
        Some(s) if s >= 1.0 => ("promote", 1.0),
        Some(s) => ("ramp", s),
        None => ("ramp_rollback", 0.0),
    };
    let mlflow_note = match (mlflow, action) {
        (Some(cfg), "promote") => set_alias(cfg, model, &rollout.version).await?,
        _ => String::new(),
    };
    let row = DeploymentRow {
        experiment: rollout.experiment.clone(),
        from_version: production.to_owned(),
        to_version: if action == "ramp_rollback" {
            production.to_owned()
        } else {
            rollout.version.clone()
        },
        rollout_share: share,
        actor: "vigil-ramp".into(),
        reason: reason.to_owned(),
        mlflow: mlflow_note,
        ..change(model, action)
    };
    store.insert(std::slice::from_ref(&row)).await?;
    Ok(row)
}

async fn set_alias(
    cfg: &MlflowConfig,
    model: &str,
    version: &str,
) -> Result<String, PromotionError> {
    let client = MlflowClient::new(cfg).map_err(PromotionError::Mlflow)?;
    client
        .set_alias_for(model, version)
        .await
        .map_err(PromotionError::Mlflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ts_ms: u64, action: &str, from: &str, to: &str, share: f64) -> DeploymentRow {
        DeploymentRow {
            id: format!("{ts_ms}"),
            ts: (ts_ms / 1000) as u32,
            ts_ms,
            model: "m".into(),
            action: action.into(),
            experiment: "e".into(),
            arm: "t".into(),
            from_version: from.into(),
            to_version: to.into(),
            rollout_share: share,
            actor: "a".into(),
            reason: String::new(),
            evidence: String::new(),
            mlflow: String::new(),
        }
    }

    #[test]
    fn promote_then_rollback_restores_the_previous_version() {
        let rows = vec![
            row(1, "promote", "v1", "v2", 1.0),
            row(2, "promote", "v2", "v3", 1.0),
            row(3, "rollback", "v3", "v2", 1.0),
        ];
        let s = DeploymentState::replay(&rows);
        assert_eq!(s.production("m"), Some("v2"));
        assert_eq!(s.models["m"].previous, vec!["v1".to_string()]);
        assert!(s.ended_experiments.contains("e"));
        // Order comes from ts_ms, not from the slice.
        let mut shuffled = rows.clone();
        shuffled.reverse();
        assert_eq!(
            DeploymentState::replay(&shuffled).production("m"),
            Some("v2")
        );
    }

    #[test]
    fn ramp_steps_then_completes_or_aborts() {
        let mut rows = vec![row(1, "ramp", "v1", "v2", 0.05)];
        let s = DeploymentState::replay(&rows);
        assert_eq!(s.production("m"), Some("v1"));
        assert_eq!(s.models["m"].rollout.as_ref().map(|r| r.share), Some(0.05));
        rows.push(row(2, "ramp", "v1", "v2", 0.25));
        rows.push(row(3, "ramp_rollback", "v1", "v1", 0.0));
        let s = DeploymentState::replay(&rows);
        assert_eq!(s.production("m"), Some("v1"));
        assert!(s.models["m"].rollout.is_none());
        rows.push(row(4, "promote", "v1", "v2", 1.0));
        let s = DeploymentState::replay(&rows);
        assert_eq!(s.production("m"), Some("v2"));
        assert!(s.models["m"].rollout.is_none());
    }
}
