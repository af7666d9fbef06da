//! The routing table: the gateway configuration and experiments compiled into lookups, swapped
//! whole on reload so that a request sees either the old table or the new one, never a mix.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::breaker::Breaker;
use super::config::{GatewayConfig, GatewayConfigError};
use crate::experiment::{Assignment, Attributes, Experiment, Status};
use crate::hash::{hash, HashVersion};
use crate::promotion::{DeploymentState, Rollout};

/// One version's backend.
#[derive(Debug)]
pub struct Backend {
    pub url: String,
    pub breaker: Breaker,
    /// OpenAI-compatible models: the server's name for this version.
    pub backend_model: String,
    /// Prices per 1,000 prompt / completion tokens (0 when not configured).
    pub price_input_per_1k: Option<f64>,
    pub price_output_per_1k: Option<f64>,
    /// Whether the server accepts `stream_options`.
    pub stream_options: bool,
}

impl Backend {
    /// The cost of a request with these token counts; `None` without any price.
    pub fn cost(&self, prompt_tokens: u32, completion_tokens: u32) -> Option<f64> {
        if self.price_input_per_1k.is_none() && self.price_output_per_1k.is_none() {
            return None;
        }
        Some(
            f64::from(prompt_tokens) / 1000.0 * self.price_input_per_1k.unwrap_or(0.0)
                + f64::from(completion_tokens) / 1000.0 * self.price_output_per_1k.unwrap_or(0.0),
        )
    }
}

/// One served model.
#[derive(Debug)]
pub struct ModelRoute {
    pub name: String,
    pub control: String,
    pub fallback_to_control: bool,
    pub timeout: Duration,
    /// The protocol of its backends.
    pub api: super::config::ModelApi,
    pub versions: HashMap<String, Arc<Backend>>,
    /// (version, share) of shadow candidates.
    pub shadows: Vec<(String, f64)>,
    /// A version ramping up (after a promotion with a ramp schedule): units whose rollout hash
    /// falls below its share get it instead of `control`.
    pub rollout: Option<Rollout>,
    /// Indices into [`Routing::experiments`] of experiments on this model, in config order.
    experiments: Vec<usize>,
}

/// Where one request goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Route<'a> {
    /// The experiment that enrolled the unit, if any.
    pub experiment: Option<&'a str>,
    /// Arm served (`control`'s arm name, or `"control"` when no experiment covers the model).
    pub arm: &'a str,
    pub variation: i32,
    pub version: &'a str,
}

/// The compiled configuration.
#[derive(Debug)]
pub struct Routing {
    pub config: GatewayConfig,
    /// Experiments as routed: those a promotion ended are `stopped`.
    pub experiments: Vec<Experiment>,
    /// Experiments as configured (what a rebuild starts from).
    pub configured: Vec<Experiment>,
    pub models: HashMap<String, ModelRoute>,
    /// The deployment history this table was built with (production versions, ramps).
    pub deployments: Arc<DeploymentState>,
}

impl Routing {
    /// Validates and compiles, with no deployment history. Circuit breakers start closed (a
    /// reload resets them).
    pub fn build(
        config: GatewayConfig,
        experiments: Vec<Experiment>,
    ) -> Result<Routing, GatewayConfigError> {
        Self::build_with(config, experiments, Arc::new(DeploymentState::default()))
    }

    /// Validates and compiles, applying the deployment history: a model's production version
    /// replaces its configured `control` (unless it is no longer one of its versions, which is
    /// logged and ignored), experiments ended by a promotion stop enrolling, and a ramp in
    /// progress gets its share.
    pub fn build_with(
        config: GatewayConfig,
        configured: Vec<Experiment>,
        deployments: Arc<DeploymentState>,
    ) -> Result<Routing, GatewayConfigError> {
        config.validate(&configured)?;
        let experiments: Vec<Experiment> = configured
            .iter()
            .map(|e| {
                if deployments.ended_experiments.contains(e.key()) {
                    let mut c = e.config().clone();
                    c.status = Status::Stopped;
                    Experiment::new(c).unwrap_or_else(|_| e.clone())
                } else {
                    e.clone()
                }
            })
            .collect();
        let mut models = HashMap::new();
        for m in &config.models {
            let deployed = deployments.models.get(&m.name);
            let known = |v: &str| m.versions.iter().any(|x| x.version == v);
            let control = match deployed {
                Some(d) if known(&d.production) => d.production.clone(),
                Some(d) => {
                    tracing::warn!(model = %m.name, version = %d.production, "the deployed production version is not in [gateway.models] versions; serving the configured control");
                    m.control.clone()
                }
                None => m.control.clone(),
            };
            let rollout = deployed
                .and_then(|d| d.rollout.clone())
                .filter(|r| known(&r.version));
            let versions = m
                .versions
                .iter()
                .map(|v| {
                    (
                        v.version.clone(),
                        Arc::new(Backend {
                            url: v.url.clone(),
                            breaker: Breaker::new(config.breaker),
                            backend_model: v
                                .backend_model
                                .clone()
                                .unwrap_or_else(|| v.version.clone()),
                            price_input_per_1k: v.price_input_per_1k,
                            price_output_per_1k: v.price_output_per_1k,
                            stream_options: v.stream_options,
                        }),
                    )
                })
                .collect();
            let on_model = experiments
                .iter()
                .enumerate()
                .filter(|(_, e)| e.config().model.as_deref() == Some(m.name.as_str()))
                .map(|(i, _)| i)
                .collect();
            models.insert(
                m.name.clone(),
                ModelRoute {
                    name: m.name.clone(),
                    control,
                    rollout,
                    fallback_to_control: m.fallback_to_control,
                    timeout: config.timeout_of(m),
                    api: m.api,
                    versions,
                    shadows: m
                        .shadows
                        .iter()
                        .map(|s| (s.version.clone(), s.share))
                        .collect(),
                    experiments: on_model,
                },
            );
        }
        Ok(Routing {
            config,
            experiments,
            configured,
            models,
            deployments,
        })
    }

    /// The same configuration compiled with a new deployment history.
    pub fn rebuild(
        &self,
        deployments: Arc<DeploymentState>,
    ) -> Result<Routing, GatewayConfigError> {
        Self::build_with(self.config.clone(), self.configured.clone(), deployments)
    }

    /// The experiment with this key.
    pub fn experiment(&self, key: &str) -> Option<&Experiment> {
        crate::experiment::find_experiment(&self.experiments, key)
    }

    /// Routes `unit` on `model`: the first experiment on the model (config order) that enrols
    /// the unit decides the version; a unit no experiment enrols (including every unit of a
    /// paused or stopped experiment) gets the model's control version.
    pub fn route<'a, A: Attributes + ?Sized>(
        &'a self,
        model: &'a ModelRoute,
        unit: &str,
        attributes: &A,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Route<'a> {
        for &i in &model.experiments {
            let e = &self.experiments[i];
            let a: Assignment<'a> = e.assign(unit, attributes, now);
            if a.in_experiment {
                return Route {
                    experiment: Some(e.key()),
                    arm: a.arm,
                    variation: a.variation,
                    version: a.model_version,
                };
            }
        }
        if let Some(r) = &model.rollout {
            // Sticky: a unit's hash is fixed, so raising the share only adds units.
            let seed = format!("rollout:{}:{}", model.name, r.version);
            if hash(&seed, unit, HashVersion::V2) < r.share {
                return Route {
                    experiment: None,
                    arm: "rollout",
                    variation: -1,
                    version: &r.version,
                };
            }
        }
        Route {
            experiment: None,
            arm: "control",
            variation: -1,
            version: &model.control,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoAttributes;

    #[test]
    fn paused_experiment_routes_everyone_to_control() {
        let config: GatewayConfig = toml::from_str(
            r#"
[[models]]
name = "m"
control = "a"
versions = [{ version = "a", url = "http://127.0.0.1:1/" }, { version = "b", url = "http://127.0.0.1:2/" }]
"#,
        )
        .unwrap();
        let exp = |status: &str| -> Experiment {
            serde_json::from_str(&format!(
                r#"{{"key":"x","model":"m","status":"{status}","arms":[{{"name":"c","model_version":"a"}},{{"name":"t","model_version":"b"}}]}}"#
            ))
            .unwrap()
        };
        let now = chrono::Utc::now();
        let r = Routing::build(config.clone(), vec![exp("running")]).unwrap();
        let m = &r.models["m"];
        let versions: std::collections::HashSet<&str> = (0..200)
            .map(|i| r.route(m, &format!("u{i}"), &NoAttributes, now).version)
            .collect();
        assert_eq!(versions.len(), 2);
        let r = Routing::build(config, vec![exp("paused")]).unwrap();
        let m = &r.models["m"];
        assert!((0..200).all(|i| {
            let route = r.route(m, &format!("u{i}"), &NoAttributes, now);
            route.version == "a" && route.experiment.is_none()
        }));
    }
}
