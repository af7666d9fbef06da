//! The gateway's HTTP handlers.

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::http::{header, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use vigil_store::auth::{AuthError, Role};
use vigil_store::rows::{ExposureRow, InferenceRow};

use super::recorder::Record;
use super::routing::{Backend, ModelRoute, Route};
use super::shadow::ShadowJob;
use super::GatewayState;

/// Header carrying the unit id (else the body's `unit_id`).
pub const UNIT_HEADER: &str = "x-vigil-unit";
pub const VARIANT_HEADER: &str = "x-vigil-variant";
pub const VERSION_HEADER: &str = "x-vigil-model-version";
pub const REQUEST_ID_HEADER: &str = "x-vigil-request-id";
pub const EXPERIMENT_HEADER: &str = "x-vigil-experiment";
pub const FALLBACK_HEADER: &str = "x-vigil-fallback";

/// Mounts the routes.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<GatewayState>) {
    let limit = state.routing().config.max_body_bytes;
    cfg.service(
        web::resource("/v1/assign")
            .app_data(state.clone())
            .route(web::get().to(assign)),
    )
    .service(
        web::resource("/v1/predict/{model}")
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(limit))
            .route(web::post().to(predict)),
    )
    .service(
        web::resource("/v1/admin/reload")
            .app_data(state.clone())
            .route(web::post().to(reload)),
    )
    .service(
        web::resource("/v1/experiments/{key}/promote")
            .app_data(state.clone())
            .route(web::post().to(promote)),
    )
    .service(
        web::resource("/v1/experiments/{key}/analysis")
            .app_data(state.clone())
            .route(web::get().to(analysis)),
    )
    .service(
        web::resource("/v1/models/{model}/rollback")
            .app_data(state.clone())
            .route(web::post().to(rollback)),
    )
    .service(
        web::resource("/v1/deployments")
            .app_data(state.clone())
            .route(web::get().to(deployments)),
    )
    .service(
        web::resource("/metrics/gateway")
            .app_data(state.clone())
            .route(web::get().to(metrics)),
    );
    super::llm::configure(cfg, state);
}

/// Who is acting, or the refusal (401/403). The refusal is returned by value on purpose: it is
/// sent straight back, once per refused request.
#[allow(clippy::result_large_err)]
fn actor(req: &HttpRequest, state: &GatewayState, need: Role) -> Result<String, HttpResponse> {
    let h = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    state.auth.authorize(h, need).map_err(|e| {
        let status = match e {
            AuthError::Forbidden { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        error(status, &e.to_string())
    })
}

fn deploy_error(e: &super::deploy::DeployError) -> HttpResponse {
    error(
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_string(),
    )
}

/// The acting admin and the request's JSON body (an empty body means every field's default).
#[allow(clippy::result_large_err)]
fn admin_with_body<T: Default + serde::de::DeserializeOwned>(
    req: &HttpRequest,
    state: &GatewayState,
    body: &[u8],
) -> Result<(String, T), HttpResponse> {
    let who = actor(req, state, Role::Admin)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((who, T::default()));
    }
    serde_json::from_slice(body)
        .map(|b| (who, b))
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid body: {e}")))
}

/// Body of `POST /v1/experiments/{key}/promote` (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    arm: Option<String>,
    reason: Option<String>,
    #[serde(default)]
    force: bool,
    /// Roll out along `[gateway.ramp] stages` instead of all at once.
    #[serde(default)]
    ramp: bool,
}

/// `POST /v1/experiments/{key}/promote` (admin).
async fn promote(
    req: HttpRequest,
    path: web::Path<String>,
    body: Bytes,
    state: web::Data<GatewayState>,
) -> HttpResponse {
    let (who, parsed) = match admin_with_body::<PromoteBody>(&req, &state, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let request = crate::promotion::PromoteRequest {
        arm: parsed.arm,
        actor: who,
        reason: parsed
            .reason
            .unwrap_or_else(|| "promoted through the API".into()),
        force: parsed.force,
        ramp: Vec::new(),
    };
    match state.promote(&path, request, parsed.ramp).await {
        Ok(o) => HttpResponse::Ok().json(serde_json::json!({
            "deployment": o.deployment,
            "decision": o.report.decisions.get(&o.deployment.arm),
        })),
        Err(e) => deploy_error(&e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    reason: Option<String>,
}

/// `POST /v1/models/{model}/rollback` (admin).
async fn rollback(
    req: HttpRequest,
    path: web::Path<String>,
    body: Bytes,
    state: web::Data<GatewayState>,
) -> HttpResponse {
    let (who, parsed) = match admin_with_body::<RollbackBody>(&req, &state, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let reason = parsed
        .reason
        .unwrap_or_else(|| "rolled back through the API".into());
    match state.rollback(&path, &who, &reason).await {
        Ok(row) => HttpResponse::Ok().json(serde_json::json!({ "deployment": row })),
        Err(e) => deploy_error(&e),
    }
}

/// `GET /v1/experiments/{key}/analysis` (viewer): the store-backed analysis and decision.
async fn analysis(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<GatewayState>,
) -> HttpResponse {
    if let Some(r) = refusal(&req, &state, Role::Viewer) {
        return r;
    }
    match state.analysis(&path).await {
        Ok(r) => HttpResponse::Ok().json(r),
        Err(e) => deploy_error(&e),
    }
}

/// `GET /v1/deployments?model=NAME` (viewer): the audit trail and current production versions.
async fn deployments(
    req: HttpRequest,
    query: web::Query<BTreeMap<String, String>>,
    state: web::Data<GatewayState>,
) -> HttpResponse {
    if let Some(r) = refusal(&req, &state, Role::Viewer) {
        return r;
    }
    let Some(store) = state.store.clone() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no store");
    };
    match crate::promotion::load_rows(&store, query.get("model").map(String::as_str)).await {
        Ok(rows) => {
            let production: BTreeMap<String, String> = state
                .routing()
                .models
                .values()
                .map(|m| (m.name.clone(), m.control.clone()))
                .collect();
            HttpResponse::Ok()
                .json(serde_json::json!({ "production": production, "history": rows }))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

pub(super) fn error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": message }))
}

/// The refusal (401/403) when the request's bearer token lacks `need`.
pub(super) fn refusal(req: &HttpRequest, state: &GatewayState, need: Role) -> Option<HttpResponse> {
    let h = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    state.auth.check(h, need).err().map(|e| {
        let status = match e {
            AuthError::Forbidden { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        error(status, &e.to_string())
    })
}

#[derive(Serialize)]
struct AssignReply<'a> {
    experiment: &'a str,
    unit: &'a str,
    hash: f64,
    variation: i32,
    in_experiment: bool,
    arm: &'a str,
    model_version: &'a str,
}

/// `GET /v1/assign?experiment=KEY&unit=ID`; other query parameters are targeting attributes
/// (as `vigil assign --attr NAME=VALUE`).
async fn assign(
    req: HttpRequest,
    query: web::Query<Vec<(String, String)>>,
    state: web::Data<GatewayState>,
) -> HttpResponse {
    if let Some(r) = refusal(&req, &state, Role::Viewer) {
        return r;
    }
    let mut key = None;
    let mut unit = None;
    let mut attributes = Vec::new();
    for (k, v) in query.into_inner() {
        match k.as_str() {
            "experiment" => key = Some(v),
            "unit" => unit = Some(v),
            _ => attributes.push((k, v)),
        }
    }
    let (Some(key), Some(unit)) = (key, unit) else {
        return error(
            StatusCode::BAD_REQUEST,
            "pass ?experiment=KEY&unit=ID (other parameters are targeting attributes)",
        );
    };
    let routing = state.routing();
    let Some(e) = routing.experiment(&key) else {
        let known: Vec<&str> = routing.experiments.iter().map(|e| e.key()).collect();
        return error(
            StatusCode::NOT_FOUND,
            &format!(
                "no experiment `{key}`; known experiments: {}",
                known.join(", ")
            ),
        );
    };
    let a = e.assign(&unit, &attributes[..], chrono::Utc::now());
    state
        .metrics
        .assignments
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    HttpResponse::Ok().json(AssignReply {
        experiment: e.key(),
        unit: &unit,
        hash: a.hash,
        variation: a.variation,
        in_experiment: a.in_experiment,
        arm: a.arm,
        model_version: a.model_version,
    })
}

/// The fields of a prediction body the gateway looks at; everything else is forwarded as is.
#[derive(Deserialize, Default)]
struct BodyFields {
    #[serde(default)]
    unit_id: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, serde_json::Value>,
    /// The model's inputs, recorded with the inference so monitors can watch them.
    #[serde(default)]
    features: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    input: Option<String>,
}

/// Splits request features into numerical and categorical parallel arrays, within the event
/// contract's limits (at most 1,000 features, names of at most 256 bytes); other JSON types
/// (arrays, objects, null) are not features and are left out.
fn split_features(
    features: &serde_json::Map<String, serde_json::Value>,
) -> (Vec<String>, Vec<f64>, Vec<String>, Vec<String>) {
    let (mut nn, mut nv, mut cn, mut cv) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (name, value) in features
        .iter()
        .filter(|(n, _)| !n.is_empty() && n.len() <= 256)
        .take(1000)
    {
        match value {
            serde_json::Value::Number(n) => {
                if let Some(x) = n.as_f64().filter(|x| x.is_finite()) {
                    nn.push(name.clone());
                    nv.push(x);
                }
            }
            serde_json::Value::String(t) if t.len() <= 64 * 1024 => {
                cn.push(name.clone());
                cv.push(t.clone());
            }
            serde_json::Value::Bool(b) => {
                cn.push(name.clone());
                cv.push(b.to_string());
            }
            _ => {}
        }
    }
    (nn, nv, cn, cv)
}

/// A backend's answer.
struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    body: Bytes,
}

enum Failure {
    Timeout,
    Connect(String),
    Status5xx(Answer),
    CircuitOpen,
}

impl Failure {
    fn kind(&self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Connect(_) => "connect",
            Failure::Status5xx(_) => "status_5xx",
            Failure::CircuitOpen => "circuit_open",
        }
    }
}

async fn forward(
    state: &GatewayState,
    backend: &Backend,
    model: &ModelRoute,
    body: &Bytes,
    content_type: Option<&str>,
) -> Result<Answer, Failure> {
    if !backend.breaker.allow(Instant::now()) {
        return Err(Failure::CircuitOpen);
    }
    let mut req = state
        .client
        .post(&backend.url)
        .timeout(model.timeout)
        .body(body.clone());
    if let Some(ct) = content_type {
        req = req.header(reqwest::header::CONTENT_TYPE, ct);
    }
    let result = async {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, ct, bytes))
    }
    .await;
    match result {
        Ok((status, content_type, body)) => {
            let answer = Answer {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                content_type,
                body,
            };
            if status >= 500 {
                backend.breaker.failure(Instant::now());
                Err(Failure::Status5xx(answer))
            } else {
                backend.breaker.success();
                Ok(answer)
            }
        }
        Err(e) => {
            backend.breaker.failure(Instant::now());
            if e.is_timeout() {
                Err(Failure::Timeout)
            } else {
                Err(Failure::Connect(e.to_string()))
            }
        }
    }
}

pub(super) fn request_id(req: &HttpRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()))
}

/// `POST /v1/predict/{model}`.
async fn predict(
    req: HttpRequest,
    path: web::Path<String>,
    body: Bytes,
    state: web::Data<GatewayState>,
) -> HttpResponse {
    if let Some(r) = refusal(&req, &state, Role::Ingest) {
        return r;
    }
    let started = Instant::now();
    let routing = state.routing();
    let model_name = path.into_inner();
    let Some(model) = routing.models.get(&model_name) else {
        let known: Vec<&str> = routing.models.keys().map(String::as_str).collect();
        return error(
            StatusCode::NOT_FOUND,
            &format!(
                "no gateway model `{model_name}`; known models: {}",
                known.join(", ")
            ),
        );
    };
    let fields: BodyFields = if body.first() == Some(&b'{') {
        serde_json::from_slice(&body).unwrap_or_default()
    } else {
        BodyFields::default()
    };
    let header_unit = req
        .headers()
        .get(UNIT_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty());
    let Some(unit) = header_unit.or(fields.unit_id.as_deref()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "no unit id: send header `x-vigil-unit` or a JSON body with a string `unit_id`",
        );
    };
    let attributes: Vec<(String, String)> = fields
        .attributes
        .iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k.clone(), s.clone())),
            serde_json::Value::Number(n) => Some((k.clone(), n.to_string())),
            serde_json::Value::Bool(b) => Some((k.clone(), b.to_string())),
            _ => None,
        })
        .collect();
    let now = chrono::Utc::now();
    let route = routing.route(model, unit, &attributes[..], now);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let rid = request_id(&req);

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
        let r = forward(&state, backend, model, &body, content_type).await;
        state
            .metrics
            .set_open(&model.name, version, backend.breaker.is_open());
        match r {
            Ok(answer) => {
                served = Some((version, answer));
                break;
            }
            Err(f) => {
                state.metrics.error(&model.name, version, f.kind());
                if let Failure::Connect(e) = &f {
                    tracing::debug!(model = %model.name, version, error = %e, "backend failed");
                }
                last_failure = Some(f);
            }
        }
    }
    if route.experiment.is_some() {
        state.recorder.record(Record::Exposure(exposure_row(
            &rid,
            &route,
            model,
            unit,
            &attributes,
            now,
        )));
    }
    let Some((version, answer)) = served else {
        // A request no backend answered is still an inference of the model: recorded without
        // a prediction, it is what health monitors count as an error (and its latency, time
        // to give up, is part of what users waited).
        state.recorder.record(Record::Inference(inference_row(
            &rid,
            &route,
            model,
            route.version,
            unit,
            &attributes,
            &fields,
            b"",
            started.elapsed().as_secs_f64() * 1000.0,
            now,
        )));
        return match last_failure {
            Some(Failure::Status5xx(a)) => {
                state
                    .metrics
                    .response(&model.name, route.version, a.status.as_u16());
                respond(a, &route, route.version, &rid, false)
            }
            Some(Failure::Timeout) => {
                state.metrics.response(&model.name, route.version, 504);
                error(StatusCode::GATEWAY_TIMEOUT, "the model backend timed out")
            }
            _ => {
                state.metrics.response(&model.name, route.version, 502);
                error(
                    StatusCode::BAD_GATEWAY,
                    "no model backend could answer (connection failed or circuit open)",
                )
            }
        };
    };
    let fell_back = version != route.version;
    if fell_back {
        state.metrics.fallback(&model.name, route.version);
    }
    state
        .metrics
        .response(&model.name, version, answer.status.as_u16());
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    state.recorder.record(Record::Inference(inference_row(
        &rid,
        &route,
        model,
        version,
        unit,
        &attributes,
        &fields,
        &answer.body,
        latency_ms,
        now,
    )));
    for (shadow, share) in &model.shadows {
        if shadow.as_str() == version || *share <= 0.0 || rand::random::<f64>() >= *share {
            continue;
        }
        if let Some(backend) = model.versions.get(shadow) {
            state.mirror.send(ShadowJob {
                request_id: rid.clone(),
                model: model.name.clone(),
                version: shadow.clone(),
                served_version: version.to_owned(),
                unit_id: unit.to_owned(),
                url: backend.url.clone(),
                body: body.clone(),
                content_type: content_type.map(str::to_owned),
                timeout: model.timeout,
                llm: None,
            });
        }
    }
    respond(answer, &route, version, &rid, fell_back)
}

fn respond(
    a: Answer,
    route: &Route<'_>,
    version: &str,
    rid: &str,
    fell_back: bool,
) -> HttpResponse {
    let mut r = HttpResponse::build(a.status);
    r.insert_header((VARIANT_HEADER, route.arm))
        .insert_header((VERSION_HEADER, version))
        .insert_header((REQUEST_ID_HEADER, rid));
    if let Some(e) = route.experiment {
        r.insert_header((EXPERIMENT_HEADER, e));
    }
    if fell_back {
        r.insert_header((FALLBACK_HEADER, "true"));
    }
    if let Some(ct) = a.content_type {
        r.insert_header((header::CONTENT_TYPE, ct));
    }
    r.body(a.body)
}

pub(super) fn split_ms(now: chrono::DateTime<chrono::Utc>) -> (u32, u64) {
    let ms = now.timestamp_millis().max(0) as u64;
    ((ms / 1000).min(u32::MAX as u64) as u32, ms)
}

pub(super) fn exposure_row(
    rid: &str,
    route: &Route<'_>,
    model: &ModelRoute,
    unit: &str,
    attributes: &[(String, String)],
    now: chrono::DateTime<chrono::Utc>,
) -> ExposureRow {
    let (ts, ts_ms) = split_ms(now);
    let (attr_names, attr_values) = attributes.iter().cloned().unzip();
    ExposureRow {
        event_id: rid.to_owned(),
        ts,
        ts_ms,
        experiment: route.experiment.unwrap_or_default().to_owned(),
        variant: route.arm.to_owned(),
        unit_id: unit.to_owned(),
        model: model.name.clone(),
        version: route.version.to_owned(),
        attr_names,
        attr_values,
        source: "gateway".into(),
        src_partition: -1,
        src_offset: -1,
        ingested_at: ts,
    }
}

/// Score and label from the backend's JSON answer, top level or under `prediction`.
fn prediction_of(body: &[u8]) -> (Option<f64>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let p = v.get("prediction").filter(|p| p.is_object()).unwrap_or(&v);
    let score = p.get("score").and_then(serde_json::Value::as_f64);
    let label = p.get("label").and_then(|l| match l {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    });
    (score, label)
}

#[allow(clippy::too_many_arguments)]
fn inference_row(
    rid: &str,
    route: &Route<'_>,
    model: &ModelRoute,
    version: &str,
    unit: &str,
    attributes: &[(String, String)],
    request: &BodyFields,
    answer: &[u8],
    latency_ms: f64,
    now: chrono::DateTime<chrono::Utc>,
) -> InferenceRow {
    let (ts, ts_ms) = split_ms(now);
    let (score, label) = prediction_of(answer);
    let (num_names, num_values, cat_names, cat_values) = split_features(&request.features);
    let (attr_names, attr_values) = attributes.iter().cloned().unzip();
    InferenceRow {
        event_id: rid.to_owned(),
        ts,
        ts_ms,
        model: model.name.clone(),
        version: version.to_owned(),
        unit_id: unit.to_owned(),
        num_names,
        num_values,
        cat_names,
        cat_values,
        score,
        label,
        latency_ms: Some(latency_ms),
        cost: None,
        attr_names,
        attr_values,
        experiment: route.experiment.unwrap_or_default().to_owned(),
        variant: if route.experiment.is_some() {
            route.arm.to_owned()
        } else {
            String::new()
        },
        input: request
            .input
            .as_deref()
            .filter(|i| i.len() <= 64 * 1024)
            .unwrap_or_default()
            .to_owned(),
        source: "gateway".into(),
        src_partition: -1,
        src_offset: -1,
        ingested_at: ts,
        ..Default::default()
    }
}

/// `POST /v1/admin/reload`.
async fn reload(req: HttpRequest, state: web::Data<GatewayState>) -> HttpResponse {
    if let Some(r) = refusal(&req, &state, Role::Admin) {
        return r;
    }
    let s = state.clone();
    // Reading the file is blocking I/O: keep it off the request threads.
    match web::block(move || s.reload()).await {
        Ok(Ok(r)) => HttpResponse::Ok().json(serde_json::json!({
            "status": "reloaded",
            "models": r.models.len(),
            "experiments": r.experiments.len(),
        })),
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn metrics(state: web::Data<GatewayState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_score_and_label() {
        assert_eq!(
            super::prediction_of(br#"{"prediction":{"score":0.5,"label":"a"}}"#),
            (Some(0.5), Some("a".into()))
        );
        assert_eq!(super::prediction_of(br#"{"score":1}"#), (Some(1.0), None));
        assert_eq!(super::prediction_of(b"nope"), (None, None));
    }
}
