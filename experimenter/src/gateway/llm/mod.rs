//! OpenAI-compatible routes in front of LLM servers (vLLM, llama.cpp, TGI, Ollama).
//!
//! ```text
//! GET  /v1/models             the `api = "openai"` models (ingest)
//! POST /v1/chat/completions   body `model` = a vigil model; `user` (else `x-vigil-unit`) = unit
//! POST /v1/completions        likewise (legacy completions)
//! POST /v1/embeddings         likewise (never streamed)
//! ```
//!
//! A request's experiment picks the version (sticky by unit; no unit: the control version, no
//! exposure); the body's `model` becomes the backend's own name for it and everything else
//! passes through. A stream is relayed event by event as it arrives ([`relay`]); fallback to
//! the control version and circuit breakers apply until the backend's headers arrive, i.e.
//! before the first byte reaches the client. Each request becomes one inference event with the
//! generative columns (prompt, response, tokens, time to first token, tokens/s, finish reason,
//! cost from the version's prices); the reply carries `x-vigil-event-id` for feedback outcomes
//! (`inference_id`). A share of requests is mirrored, not streamed, to shadow versions.
//!
//! Recorded labels: a finished generation's label is its `finish_reason`; a stream the client
//! closed early is `client_cancelled`; an embedding is `embedding`; a failed request has none
//! (health monitors count it as an error) and an `error` attribute.

pub mod protocol;
mod relay;

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::{header, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Map, Value};
use vigil_store::auth::Role;
use vigil_store::rows::InferenceRow;

use super::config::ModelApi;
use super::http::{
    exposure_row, refusal, request_id, split_ms, EXPERIMENT_HEADER, FALLBACK_HEADER,
    REQUEST_ID_HEADER, UNIT_HEADER, VARIANT_HEADER, VERSION_HEADER,
};
use super::recorder::{Record, Recorder};
use super::routing::{Backend, ModelRoute, Route};
use super::shadow::{LlmShadow, ShadowJob};
use super::GatewayState;
use protocol::{Endpoint, Tally};

/// Header with the recorded inference's event id (post feedback with it as `inference_id`).
pub const EVENT_ID_HEADER: &str = "x-vigil-event-id";

/// Mounts the OpenAI-compatible routes.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<GatewayState>) {
    let limit = state.routing().config.max_body_bytes;
    cfg.service(
        web::resource("/v1/models")
            .app_data(state.clone())
            .route(web::get().to(models)),
    );
    for (path, endpoint) in [
        ("/v1/chat/completions", Endpoint::Chat),
        ("/v1/completions", Endpoint::Completions),
        ("/v1/embeddings", Endpoint::Embeddings),
    ] {
        cfg.service(
            web::resource(path)
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(limit))
                .route(web::post().to(
                    move |req: HttpRequest, body: Bytes, state: web::Data<GatewayState>| {
                        handle(endpoint, req, body, state)
                    },
                )),
        );
    }
}

/// An error in OpenAI's shape, so SDKs raise it with its message.
pub(crate) fn openai_error(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: &str,
) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "error": {"message": message, "type": kind, "param": null, "code": code}
    }))
}

/// `GET /v1/models`.
async fn models(req: HttpRequest, state: web::Data<GatewayState>) -> HttpResponse {
    if let Some(r) = refusal(&req, &state, Role::Ingest) {
        return r;
    }
    let routing = state.routing();
    let mut names: Vec<&str> = routing
        .models
        .values()
        .filter(|m| m.api == ModelApi::Openai)
        .map(|m| m.name.as_str())
        .collect();
    names.sort_unstable();
    let data: Vec<Value> = names
        .into_iter()
        .map(|n| serde_json::json!({"id": n, "object": "model", "created": 0, "owned_by": "vigil"}))
        .collect();
    HttpResponse::Ok().json(serde_json::json!({"object": "list", "data": data}))
}

/// What is recorded about one request, whatever becomes of it.
pub(crate) struct Call {
    pub rid: String,
    pub model: String,
    pub version: String,
    pub experiment: String,
    pub variant: String,
    pub unit: String,
    /// The prompt as recorded (capped; empty when text is not stored).
    pub prompt: String,
    /// The full prompt's token estimate, for when the server reports no usage.
    pub prompt_estimate: u32,
    pub store_text: bool,
    pub streamed: bool,
    pub backend: Arc<Backend>,
    pub now: chrono::DateTime<chrono::Utc>,
    pub recorder: Recorder,
}

impl Call {
    /// The inference row for a finished, failed or cancelled request.
    pub fn row(&self, tally: &Tally, label: Option<String>, error: Option<String>) -> InferenceRow {
        let (ts, ts_ms) = split_ms(self.now);
        let total = tally.started.elapsed();
        let (prompt_tokens, completion_tokens, estimated) = match tally.usage {
            Some(u) => (u.prompt_tokens, u.completion_tokens, false),
            None => (self.prompt_estimate, tally.content_chunks, true),
        };
        let tokens_known = tally.usage.is_some() || error.is_none();
        let (mut attr_names, mut attr_values) = (Vec::new(), Vec::new());
        if let Some(e) = &error {
            attr_names.push("error".to_owned());
            attr_values.push(e.clone());
        }
        let experiment_variant = if self.experiment.is_empty() {
            String::new()
        } else {
            self.variant.clone()
        };
        InferenceRow {
            event_id: self.rid.clone(),
            ts,
            ts_ms,
            model: self.model.clone(),
            version: self.version.clone(),
            unit_id: self.unit.clone(),
            label,
            latency_ms: Some(total.as_secs_f64() * 1000.0),
            cost: tokens_known
                .then(|| self.backend.cost(prompt_tokens, completion_tokens))
                .flatten(),
            attr_names,
            attr_values,
            experiment: self.experiment.clone(),
            variant: experiment_variant,
            input: self.prompt.clone(),
            source: "gateway".into(),
            src_partition: -1,
            src_offset: -1,
            ingested_at: ts,
            output: if self.store_text {
                tally.text.clone()
            } else {
                String::new()
            },
            prompt_tokens: tokens_known.then_some(prompt_tokens),
            completion_tokens: tokens_known.then_some(completion_tokens),
            tokens_estimated: u8::from(estimated && tokens_known),
            // Only a stream has a first token apart from the whole answer; a non-streamed
            // answer's wait is its latency.
            ttft_ms: if self.streamed { tally.ttft_ms() } else { None },
            output_tps: tally.tokens_per_s(completion_tokens, total),
            finish_reason: tally.finish_reason.clone().unwrap_or_default(),
            streamed: u8::from(self.streamed),
            ..InferenceRow::default()
        }
    }

    pub fn record(&self, tally: &Tally, label: Option<String>, error: Option<String>) {
        self.recorder
            .record(Record::Inference(self.row(tally, label, error)));
    }
}

/// Why no backend answered.
enum Failure {
    Timeout,
    Connect(String),
    Status(StatusCode, Bytes, Option<String>),
    CircuitOpen,
}

impl Failure {
    fn kind(&self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Connect(_) => "connect",
            Failure::Status(..) => "status_5xx",
            Failure::CircuitOpen => "circuit_open",
        }
    }
}

fn no_unit_route(model: &ModelRoute) -> Route<'_> {
    Route {
        experiment: None,
        arm: "control",
        variation: -1,
        version: &model.control,
    }
}

async fn handle(
    endpoint: Endpoint,
    req: HttpRequest,
    body: Bytes,
    state: web::Data<GatewayState>,
) -> HttpResponse {
    if let Some(r) = refusal(&req, &state, Role::Ingest) {
        return r;
    }
    let started = Instant::now();
    let now = chrono::Utc::now();
    let parsed = match protocol::parse_request(&body) {
        Ok(p) => p,
        Err(e) => {
            return openai_error(
                StatusCode::BAD_REQUEST,
                &e,
                "invalid_request_error",
                "invalid_body",
            )
        }
    };
    let routing = state.routing();
    let Some(name) = protocol::requested_model(&parsed) else {
        return openai_error(
            StatusCode::BAD_REQUEST,
            "`model` is required: the name of a gateway model with api = \"openai\"",
            "invalid_request_error",
            "model_required",
        );
    };
    let Some(model) = routing
        .models
        .get(name)
        .filter(|m| m.api == ModelApi::Openai)
    else {
        let mut known: Vec<&str> = routing
            .models
            .values()
            .filter(|m| m.api == ModelApi::Openai)
            .map(|m| m.name.as_str())
            .collect();
        known.sort_unstable();
        return openai_error(
            StatusCode::NOT_FOUND,
            &format!(
                "no gateway model `{name}` with api = \"openai\"; known: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
            "invalid_request_error",
            "model_not_found",
        );
    };
    let header_unit = req
        .headers()
        .get(UNIT_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 256);
    let unit = protocol::user(&parsed).or(header_unit).map(str::to_owned);
    let route = match &unit {
        Some(u) => routing.route(model, u, &[] as &[(String, String)], now),
        None => no_unit_route(model),
    };
    let rid = request_id(&req);
    let config = &routing.config.llm;
    let full_prompt = protocol::render_prompt(endpoint, &parsed);
    let prompt = if config.store_text {
        protocol::cap_text(&full_prompt, config.text_cap_bytes).to_owned()
    } else {
        String::new()
    };
    let prompt_estimate = protocol::estimate_tokens(&full_prompt);
    drop(full_prompt);

    let mut candidates = vec![route.version];
    if model.fallback_to_control && route.version != model.control {
        candidates.push(model.control.as_str());
    }
    let mut served = None;
    let mut last_failure = None;
    for version in candidates {
        let Some(backend) = model.versions.get(version) else {
            continue;
        };
        let prepared = protocol::prepare(
            parsed.clone(),
            endpoint,
            &backend.backend_model,
            backend.stream_options,
        );
        let r = send(&state, backend, model, endpoint, &prepared).await;
        state
            .metrics
            .set_open(&model.name, version, backend.breaker.is_open());
        match r {
            Ok(resp) => {
                served = Some((version, backend.clone(), resp, prepared));
                break;
            }
            Err(f) => {
                state.metrics.error(&model.name, version, f.kind());
                last_failure = Some(f);
            }
        }
    }
    if route.experiment.is_some() {
        state.recorder.record(Record::Exposure(exposure_row(
            &rid,
            &route,
            model,
            unit.as_deref().unwrap_or_default(),
            &[],
            now,
        )));
    }
    let call = |version: &str, backend: Arc<Backend>, streamed: bool| Call {
        rid: rid.clone(),
        model: model.name.clone(),
        version: version.to_owned(),
        experiment: route.experiment.unwrap_or_default().to_owned(),
        variant: route.arm.to_owned(),
        unit: unit.clone().unwrap_or_else(|| rid.clone()),
        prompt: prompt.clone(),
        prompt_estimate,
        store_text: config.store_text,
        streamed,
        backend,
        now,
        recorder: state.recorder.clone(),
    };
    let Some((version, backend, resp, prepared)) = served else {
        // Recorded without a label: health monitors count it as an error.
        if let Some(backend) = model.versions.get(route.version) {
            let reason = match &last_failure {
                Some(Failure::Timeout) => "backend timed out".to_owned(),
                Some(Failure::Connect(e)) => format!("backend unreachable: {e}"),
                Some(Failure::Status(s, ..)) => format!("backend answered {}", s.as_u16()),
                Some(Failure::CircuitOpen) | None => "circuit open".to_owned(),
            };
            let c = call(
                route.version,
                backend.clone(),
                protocol::wants_stream(&parsed),
            );
            c.record(&Tally::new(started, 0), None, Some(reason));
        }
        return match last_failure {
            Some(Failure::Status(status, body, ct)) => {
                state
                    .metrics
                    .response(&model.name, route.version, status.as_u16());
                let mut r = HttpResponse::build(status);
                headers(&mut r, &route, route.version, &rid, false);
                if let Some(ct) = ct {
                    r.insert_header((header::CONTENT_TYPE, ct));
                }
                r.body(body)
            }
            Some(Failure::Timeout) => {
                state.metrics.response(&model.name, route.version, 504);
                openai_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the model backend timed out",
                    "upstream_error",
                    "timeout",
                )
            }
            _ => {
                state.metrics.response(&model.name, route.version, 502);
                openai_error(
                    StatusCode::BAD_GATEWAY,
                    "no model backend could answer (connection failed or circuit open)",
                    "upstream_error",
                    "unavailable",
                )
            }
        };
    };
    let fell_back = version != route.version;
    if fell_back {
        state.metrics.fallback(&model.name, route.version);
    }
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    state
        .metrics
        .response(&model.name, version, status.as_u16());
    mirror(
        &state,
        model,
        version,
        endpoint,
        &parsed,
        &rid,
        unit.as_deref(),
    );
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_stream = prepared.stream
        && status.is_success()
        && content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("text/event-stream"));
    let call = call(version, backend.clone(), is_stream);
    if is_stream {
        let mut r = HttpResponse::build(status);
        headers(&mut r, &route, version, &rid, fell_back);
        r.insert_header((header::CONTENT_TYPE, "text/event-stream"))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header(("x-accel-buffering", "no"));
        let tally = Tally::new(started, config.text_cap_bytes);
        return r.streaming(relay::relay(
            resp,
            call,
            tally,
            prepared.strip_usage,
            model.timeout,
        ));
    }
    // Not streamed (or an error answer to a stream request): read it whole.
    let remaining = model.timeout.saturating_sub(started.elapsed());
    let body = match tokio::time::timeout(remaining, resp.bytes()).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            backend.breaker.failure(Instant::now());
            call.record(
                &Tally::new(started, 0),
                None,
                Some(format!("reading the answer: {e}")),
            );
            return openai_error(
                StatusCode::BAD_GATEWAY,
                &format!("the model backend failed mid-answer: {e}"),
                "upstream_error",
                "upstream_disconnected",
            );
        }
        Err(_) => {
            backend.breaker.failure(Instant::now());
            call.record(
                &Tally::new(started, 0),
                None,
                Some("backend timed out mid-answer".into()),
            );
            return openai_error(
                StatusCode::GATEWAY_TIMEOUT,
                "the model backend timed out",
                "upstream_error",
                "timeout",
            );
        }
    };
    let mut tally = Tally::new(started, config.text_cap_bytes);
    if status.is_success() {
        let (text, finish, usage) = protocol::read_response(endpoint, &body);
        let at = Instant::now();
        tally.chunk(
            &protocol::ChunkInfo {
                content: Some(text),
                finish_reason: finish,
                usage,
                ..Default::default()
            },
            at,
        );
        // One answer: its tokens counted as the estimate of its text when usage is absent.
        if usage.is_none() {
            tally.content_chunks = protocol::estimate_tokens(&tally.text);
        }
        let label = match endpoint {
            Endpoint::Embeddings => Some("embedding".to_owned()),
            _ => Some(
                tally
                    .finish_reason
                    .clone()
                    .unwrap_or_else(|| "stop".to_owned()),
            ),
        };
        call.record(&tally, label, None);
    } else {
        call.record(
            &tally,
            None,
            Some(format!("backend answered {}", status.as_u16())),
        );
    }
    let mut r = HttpResponse::build(status);
    headers(&mut r, &route, version, &rid, fell_back);
    if let Some(ct) = content_type {
        r.insert_header((header::CONTENT_TYPE, ct));
    }
    r.body(body)
}

fn headers(
    r: &mut actix_web::HttpResponseBuilder,
    route: &Route<'_>,
    version: &str,
    rid: &str,
    fell_back: bool,
) {
    r.insert_header((VARIANT_HEADER, route.arm))
        .insert_header((VERSION_HEADER, version))
        .insert_header((REQUEST_ID_HEADER, rid))
        .insert_header((EVENT_ID_HEADER, rid));
    if let Some(e) = route.experiment {
        r.insert_header((EXPERIMENT_HEADER, e));
    }
    if fell_back {
        r.insert_header((FALLBACK_HEADER, "true"));
    }
}

/// Sends the request; a response with headers (any status below 500) is the answer, a 5xx,
/// a timeout or a refused connection a failure (the next candidate is tried).
async fn send(
    state: &GatewayState,
    backend: &Backend,
    model: &ModelRoute,
    endpoint: Endpoint,
    prepared: &protocol::Prepared,
) -> Result<reqwest::Response, Failure> {
    if !backend.breaker.allow(Instant::now()) {
        return Err(Failure::CircuitOpen);
    }
    let url = format!("{}{}", backend.url.trim_end_matches('/'), endpoint.path());
    let mut request = state
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(prepared.body.clone());
    if !prepared.stream {
        request = request.timeout(model.timeout);
    }
    match tokio::time::timeout(model.timeout, request.send()).await {
        Ok(Ok(resp)) if resp.status().is_server_error() => {
            backend.breaker.failure(Instant::now());
            let status =
                StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let ct = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = tokio::time::timeout(model.timeout, resp.bytes())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            Err(Failure::Status(status, body, ct))
        }
        Ok(Ok(resp)) => {
            backend.breaker.success();
            Ok(resp)
        }
        Ok(Err(e)) => {
            backend.breaker.failure(Instant::now());
            if e.is_timeout() {
                Err(Failure::Timeout)
            } else {
                Err(Failure::Connect(e.to_string()))
            }
        }
        Err(_) => {
            backend.breaker.failure(Instant::now());
            Err(Failure::Timeout)
        }
    }
}

/// Queues the non-streamed copies for the model's shadow versions.
fn mirror(
    state: &GatewayState,
    model: &ModelRoute,
    served: &str,
    endpoint: Endpoint,
    parsed: &Map<String, Value>,
    rid: &str,
    unit: Option<&str>,
) {
    for (shadow, share) in &model.shadows {
        if shadow.as_str() == served || *share <= 0.0 || rand::random::<f64>() >= *share {
            continue;
        }
        let Some(backend) = model.versions.get(shadow) else {
            continue;
        };
        state.mirror.send(ShadowJob {
            request_id: rid.to_owned(),
            model: model.name.clone(),
            version: shadow.clone(),
            served_version: served.to_owned(),
            unit_id: unit.unwrap_or(rid).to_owned(),
            url: format!("{}{}", backend.url.trim_end_matches('/'), endpoint.path()),
            body: Bytes::from(protocol::prepare_shadow(parsed, &backend.backend_model)),
            content_type: Some("application/json".into()),
            timeout: model.timeout,
            llm: Some(LlmShadow {
                endpoint,
                backend: backend.clone(),
            }),
        });
    }
}
