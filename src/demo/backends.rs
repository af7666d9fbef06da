//! The demo's stand-ins for the services around vigil, on one loopback HTTP server:
//! model backends (`POST /models/{model}/{version}`, what a team's model server answers) and
//! receivers for alert and retraining webhooks (`POST /hooks/{name}`, appended as JSON lines
//! to a file, so the demo can show that delivery happened).

use actix_web::{web, HttpResponse};
use rand::Rng;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use vigil_collector::simulate::backend_score;
use vigil_experimenter::simulated_llm::{SimulatedLlm, SimulatedModel, UsageFlavour};

/// One in this many backend calls fails with a 503 (a real fleet has bad moments), so the
/// health monitors and the overview's failed column have something to count.
const FAIL_ONE_IN: u32 = 200;

struct Hooks {
    file: Mutex<std::fs::File>,
}

/// A started backend server.
pub struct Backends {
    pub addr: std::net::SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl Backends {
    /// Listens on a free loopback port; webhooks are appended to `hooks_file`.
    pub fn start(hooks_file: PathBuf) -> anyhow::Result<Backends> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&hooks_file)?;
        let hooks = web::Data::new(Hooks {
            file: Mutex::new(file),
        });
        let llm = llm_servers();
        let server = actix_web::HttpServer::new(move || {
            let llm = llm.clone();
            actix_web::App::new()
                .app_data(hooks.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .route("/models/{model}/{version}", web::post().to(predict))
                .route("/hooks/{name}", web::post().to(hook))
                .configure(move |cfg| llm.configure(cfg))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")?;
        let addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| anyhow::anyhow!("backend server bound to no address"))?;
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Backends { addr, handle })
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// Typical service time per version: v2 and the v3 candidate are bigger models.
/// The assistant's versions as OpenAI-compatible servers (`/llm-v1/v1/chat/completions`, …):
/// v1 behaves like vLLM, v2 like llama.cpp's server (a fine-tune that answers in a friendlier
/// style, as fast to its first token), v3 — the shadow candidate — like TGI.
pub const LLM_SERVERS: [(&str, &str, UsageFlavour, u64, &str); 3] = [
    (
        "llm-v1",
        "qwen2.5-7b-support-ft1",
        UsageFlavour::Vllm,
        90,
        "plain",
    ),
    (
        "llm-v2",
        "qwen2.5-7b-support-ft2",
        UsageFlavour::LlamaCpp,
        85,
        "friendly",
    ),
    (
        "llm-v3",
        "qwen2.5-7b-support-ft3",
        UsageFlavour::Tgi,
        70,
        "concise",
    ),
];

fn llm_servers() -> std::sync::Arc<SimulatedLlm> {
    SimulatedLlm::new(
        LLM_SERVERS
            .iter()
            .map(|(name, backend, flavour, first_ms, style)| SimulatedModel {
                first_token_ms: *first_ms,
                chunk_ms: 8,
                max_tokens_default: 24,
                style: (*style).to_owned(),
                ..SimulatedModel::new(name, backend, *flavour)
            })
            .collect(),
    )
}

fn service_ms(version: &str) -> f64 {
    match version {
        "v1" => 6.0,
        "v2" => 8.0,
        _ => 12.0,
    }
}

async fn predict(path: web::Path<(String, String)>, body: web::Bytes) -> HttpResponse {
    let (model, version) = path.into_inner();
    let (wait_ms, fail) = {
        let mut rng = rand::thread_rng();
        let jitter: f64 = -3.0 * rng.gen_range(f64::EPSILON..1.0f64).ln();
        (
            service_ms(&version) + jitter,
            rng.gen_range(0..FAIL_ONE_IN) == 0,
        )
    };
    tokio::time::sleep(Duration::from_micros((wait_ms * 1000.0) as u64)).await;
    if fail {
        return HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"error": "model server overloaded"}));
    }
    let features = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("features").and_then(|f| f.as_object().cloned()));
    let Some(score) = features
        .as_ref()
        .and_then(|f| backend_score(&model, &version, f))
    else {
        return HttpResponse::BadRequest().json(serde_json::json!({
            "error": format!("model `{model}` needs its numeric features in `features`")
        }));
    };
    let label = if score >= 0.5 { "positive" } else { "negative" };
    HttpResponse::Ok().json(serde_json::json!({
        "prediction": { "score": (score * 1e5).round() / 1e5, "label": label }
    }))
}

async fn hook(path: web::Path<String>, body: web::Bytes, hooks: web::Data<Hooks>) -> HttpResponse {
    let payload = serde_json::from_slice::<serde_json::Value>(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
    let line = serde_json::json!({
        "hook": path.into_inner(),
        "received_at": chrono::Utc::now().to_rfc3339(),
        "body": payload,
    });
    let written = hooks
        .file
        .lock()
        .map_err(|_| std::io::Error::other("poisoned"))
        .and_then(|mut f| writeln!(f, "{line}"));
    match written {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"received": true})),
        Err(e) => {
            HttpResponse::InternalServerError().json(serde_json::json!({"error": e.to_string()}))
        }
    }
}
