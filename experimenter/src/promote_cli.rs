//! `vigil ab analyze --experiment KEY`, `vigil promote` and `vigil rollback`.
//!
//! Promotion and rollback go through a running `vigil serve` when `--server URL` is given (the
//! routing changes at once there; needed with the embedded store, which one process owns), and
//! straight to the store otherwise (every gateway on that store follows within its
//! `deployment_poll_ms`).

use anyhow::{anyhow, bail, Context, Result};

use crate::ab_cli::AbAnalyzeArgs;
use crate::analysis::{self, AnalysisConfig, MetricKind, MetricSpec};
use crate::cli::OutputFormat;
use crate::experiment::Experiment;
use crate::gateway::GatewayConfig;
use crate::mlflow::MlflowConfig;
use crate::promotion::{self, PromoteRequest};
use crate::warehouse::{self, TimeRange};
use vigil_store::Store;

/// `vigil ab analyze --experiment KEY` against the store. `--metric-column`, `--metric-type`,
/// `--covariate-column` and `--alpha` given on the command line override the experiment's
/// `[experiments.analysis]` primary metric.
pub async fn run_ab_store(
    store: &Store,
    experiments: &[Experiment],
    args: &AbAnalyzeArgs,
) -> Result<String> {
    let key = args
        .experiment
        .as_deref()
        .ok_or_else(|| anyhow!("--experiment KEY is required"))?;
    let exp = crate::find_experiment(experiments, key).ok_or_else(|| {
        anyhow!(
            "no experiment `{key}` in the configuration (known: {})",
            experiments
                .iter()
                .map(|e| e.key())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let mut config: AnalysisConfig = exp.config().analysis.clone().unwrap_or_default();
    if args.metric_column != "value" {
        config.primary = MetricSpec {
            metric: args.metric_column.clone(),
            kind: match args.metric_type {
                crate::ab_cli::MetricType::Mean => MetricKind::Mean,
                crate::ab_cli::MetricType::Proportion => MetricKind::Proportion,
            },
            denominator: None,
            higher_is_better: None,
            higher_is_worse: None,
            label_outcome: None,
        };
    }
    if (args.alpha - 0.05).abs() > f64::EPSILON {
        config.alpha = args.alpha;
    }
    if let Some(c) = &args.control {
        if exp.control().name != *c {
            bail!(
                "experiment `{key}`: its control is the first arm, `{}`, not `{c}`",
                exp.control().name
            );
        }
    }
    let report =
        warehouse::analyze_experiment(store, exp.config(), Some(&config), TimeRange::default())
            .await?;
    Ok(match args.format {
        OutputFormat::Json => serde_json::to_string_pretty(&report)?,
        OutputFormat::Table => analysis::render_table(&report),
    })
}

/// `vigil promote`.
#[derive(clap::Args, Debug)]
pub struct PromoteArgs {
    /// The experiment whose winner becomes the production version of its model.
    #[arg(long)]
    pub experiment: String,
    /// Promote this arm instead of the analysis' winner.
    #[arg(long)]
    pub arm: Option<String>,
    /// Why (kept in the audit record).
    #[arg(long, default_value = "promoted from the CLI")]
    pub reason: String,
    /// Who (kept in the audit record; default: $USER).
    #[arg(long)]
    pub by: Option<String>,
    /// Promote even when the decision is not `ship`.
    #[arg(long)]
    pub force: bool,
    /// Roll out along `[gateway.ramp] stages`, advancing while guardrails hold.
    #[arg(long)]
    pub ramp: bool,
    /// A running `vigil serve` to promote through (token from VIGIL_TOKEN, admin role).
    #[arg(long, env = "VIGIL_SERVER")]
    pub server: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `vigil rollback`.
#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    /// The gateway model whose previous production version is restored.
    #[arg(long)]
    pub model: String,
    #[arg(long, default_value = "rolled back from the CLI")]
    pub reason: String,
    #[arg(long)]
    pub by: Option<String>,
    #[arg(long, env = "VIGIL_SERVER")]
    pub server: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

fn who(by: &Option<String>) -> String {
    by.clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into())
}

async fn post(server: &str, path: &str, body: serde_json::Value) -> Result<serde_json::Value> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let mut req = reqwest::Client::new().post(&url).json(&body);
    if let Ok(t) = std::env::var("VIGIL_TOKEN") {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let value: serde_json::Value = resp
        .json()
        .await
        .with_context(|| format!("{url} answered {status} without JSON"))?;
    if !status.is_success() {
        bail!(
            "{url} refused ({status}): {}",
            value.get("error").and_then(|e| e.as_str()).unwrap_or("")
        );
    }
    Ok(value)
}

fn render(format: OutputFormat, value: &serde_json::Value) -> Result<String> {
    Ok(match format {
        OutputFormat::Json => serde_json::to_string_pretty(value)?,
        OutputFormat::Table => {
            let d = value.get("deployment").unwrap_or(value);
            let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            let mut out = format!(
                "{} {}: {} -> {} (share {}) by {}\nreason: {}\n",
                s("action"),
                s("model"),
                s("from_version"),
                s("to_version"),
                d.get("rollout_share")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(1.0),
                s("actor"),
                s("reason"),
            );
            if !s("mlflow").is_empty() {
                out.push_str(&format!("mlflow: {}\n", s("mlflow")));
            }
            out
        }
    })
}

/// Runs `vigil promote`; `store` is only opened by the caller when `--server` is absent.
pub async fn run_promote(
    store: Option<&Store>,
    experiments: &[Experiment],
    gateway: Option<&GatewayConfig>,
    mlflow: Option<&MlflowConfig>,
    args: &PromoteArgs,
) -> Result<String> {
    let actor = who(&args.by);
    if let Some(server) = &args.server {
        let v = post(
            server,
            &format!("/v1/experiments/{}/promote", args.experiment),
            serde_json::json!({"arm": args.arm, "reason": args.reason, "force": args.force, "ramp": args.ramp}),
        )
        .await?;
        return render(args.format, &v);
    }
    let store = store.ok_or_else(|| anyhow!("no store to promote in"))?;
    let exp = crate::find_experiment(experiments, &args.experiment)
        .ok_or_else(|| anyhow!("no experiment `{}` in the configuration", args.experiment))?;
    let model = exp.config().model.clone().ok_or_else(|| {
        anyhow!(
            "experiment `{}` has no `model`; set one to promote",
            args.experiment
        )
    })?;
    let gateway = gateway.ok_or_else(|| {
        anyhow!("promotion changes the gateway's routing, but vigil.toml has no [gateway] section")
    })?;
    let m = gateway
        .models
        .iter()
        .find(|m| m.name == model)
        .ok_or_else(|| anyhow!("model `{model}` is not in [[gateway.models]]"))?;
    let request = PromoteRequest {
        arm: args.arm.clone(),
        actor,
        reason: args.reason.clone(),
        force: args.force,
        ramp: if args.ramp {
            gateway.ramp.stages.clone()
        } else {
            Vec::new()
        },
    };
    let outcome = promotion::promote(store, exp.config(), &m.control, &request, mlflow).await?;
    render(
        args.format,
        &serde_json::json!({ "deployment": outcome.deployment }),
    )
}

/// Runs `vigil rollback`.
pub async fn run_rollback(
    store: Option<&Store>,
    mlflow: Option<&MlflowConfig>,
    args: &RollbackArgs,
) -> Result<String> {
    if let Some(server) = &args.server {
        let v = post(
            server,
            &format!("/v1/models/{}/rollback", args.model),
            serde_json::json!({"reason": args.reason}),
        )
        .await?;
        return render(args.format, &v);
    }
    let store = store.ok_or_else(|| anyhow!("no store to roll back in"))?;
    let row = promotion::rollback(store, &args.model, &who(&args.by), &args.reason, mlflow).await?;
    render(args.format, &serde_json::json!({ "deployment": row }))
}
