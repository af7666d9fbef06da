//! `vigil demo --with-models`: the shadow runner's part of the story. A text model (`intent`,
//! a sentence encoder with a classifier head, installed by `bash scripts/models/fetch.sh`)
//! serves simulated support requests; its answers and some true labels go through HTTP ingest,
//! then the shadow runner replays the captured texts against two candidate models and prints
//! its comparison (also on the Shadow page).

use anyhow::{Context as _, Result};
use vigil_shadow_runner::cli::{Context, Format, RunArgs, ScopeArgs, ShadowCommand};
use vigil_shadow_runner::registry::{default_models_dir, LoadedModel, ModelSpec};
use vigil_shadow_runner::traffic::{
    inference_json, truth_json, IntentTraffic, INTENT_PRODUCTION, INTENT_SHADOW_MODELS,
};
use vigil_store::Store;

/// Text requests replayed.
const REQUESTS: usize = 400;

/// The `[[shadow.models]]` the demo adds with `--with-models`.
pub const SHADOW_MODELS: &str = INTENT_SHADOW_MODELS;

/// Whether `scripts/models/fetch.sh` has installed what the replay needs.
pub fn installed() -> bool {
    let dir = default_models_dir();
    [
        "all-MiniLM-L6-v2",
        "paraphrase-MiniLM-L3-v2",
        "intent-heads",
    ]
    .iter()
    .all(|d| dir.join(d).is_dir())
}

/// Serves `REQUESTS` text requests with the production model, sends them (and true labels for
/// 40 %) through HTTP ingest, waits until they are stored, and replays them.
pub async fn replay(
    store: Store,
    shadow: vigil_shadow_runner::config::ShadowConfig,
    base: String,
) -> Result<String> {
    let spec = ModelSpec::from_toml(INTENT_PRODUCTION)?.resolve_paths(&default_models_dir());
    let (events, truths) = tokio::task::spawn_blocking(move || -> Result<(String, String)> {
        let production = LoadedModel::load(&spec, &vigil_shadow_runner::Device::Cpu)?;
        let mut traffic = IntentTraffic::new(7);
        let reqs: Vec<_> = (0..REQUESTS).map(|_| traffic.next_request()).collect();
        let texts: Vec<&str> = reqs.iter().map(|r| r.text.as_str()).collect();
        let preds = production
            .run(&texts)?
            .predictions
            .context("the production model has no head")?;
        let now = chrono::Utc::now().timestamp_millis();
        let (mut events, mut truths) = (String::new(), String::new());
        for (i, (req, pred)) in reqs.iter().zip(&preds).enumerate() {
            let ts = now - (REQUESTS - i) as i64 * 50;
            let id = format!("intent-{now}-{i}");
            let unit = format!("customer-{}", i % 150);
            events.push_str(&inference_json(
                &id,
                ts,
                "intent",
                "l6+logreg",
                &unit,
                req,
                (&pred.label, pred.score),
                9.0,
            ));
            events.push('\n');
            if i % 5 < 2 {
                truths.push_str(&truth_json(&id, ts + 1000, "intent", &unit, req.intent));
                truths.push('\n');
            }
        }
        Ok((events, truths))
    })
    .await??;
    let client = reqwest::Client::new();
    for (path, body) in [("/v1/events", events), ("/v1/outcomes", truths)] {
        let r = client
            .post(format!("{base}{path}"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "{path} answered {}", r.status());
    }
    let cmd = ShadowCommand::Run(RunArgs {
        scope: ScopeArgs {
            model: Some("intent".into()),
            ..Default::default()
        },
        format: Format::Table,
        ..Default::default()
    });
    Ok(vigil_shadow_runner::cli::run(&cmd, &shadow, &store, Context::default()).await?)
}

/// Prompts of the assistant the demo replays against its v3 fine-tune.
pub const LLM_REQUESTS: u64 = 120;

/// Whether the sentence encoder of the LLM comparison is installed (`all-MiniLM-L6-v2`, by
/// `bash scripts/models/fetch.sh`).
pub fn llm_encoder_installed(shadow: &vigil_shadow_runner::config::ShadowConfig) -> bool {
    shadow.llm_encoder_dir().join("config.json").is_file()
}

/// `vigil shadow run --model assistant --window 10m --limit 120`: the assistant's captured
/// prompts replayed against the v3 fine-tune (`[[shadow.candidates]]` of the demo's config),
/// its answers compared with the served ones.
pub async fn llm_replay(
    store: Store,
    shadow: vigil_shadow_runner::config::ShadowConfig,
) -> Result<String> {
    let cmd = ShadowCommand::Run(RunArgs {
        scope: ScopeArgs {
            model: Some("assistant".into()),
            ..Default::default()
        },
        window: Some("10m".into()),
        limit: Some(LLM_REQUESTS),
        format: Format::Table,
        ..Default::default()
    });
    Ok(vigil_shadow_runner::cli::run(&cmd, &shadow, &store, Context::default()).await?)
}
