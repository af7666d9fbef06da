//! The alerts HTTP API, mounted by `vigil serve` on its HTTP server:
//!
//! - `GET /v1/alerts[?state=firing]` (viewer): incidents, newest first;
//! - `POST /v1/alerts/{id}/ack` (operator): acknowledge; the actor is the token's name (or
//!   `by` in the JSON body when auth is off);
//! - `POST /v1/silences` (operator): `{"model": "churn", "monitor": "…", "for": "2h",
//!   "reason": "…"}`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use vigil_store::auth::{AuthError, Authenticator, Role};
use vigil_store::Store;

use super::{cli, AlertError};

/// Shared state of the alerts API.
#[derive(Clone)]
pub struct AlertApi {
    pub store: Store,
    pub auth: Authenticator,
}

pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AlertApi>) {
    cfg.app_data(state)
        .route("/v1/alerts", web::get().to(list))
        .route("/v1/alerts/{id}/ack", web::post().to(ack))
        .route("/v1/silences", web::post().to(silence));
}

fn auth(req: &HttpRequest, api: &AlertApi, need: Role) -> Result<String, Box<HttpResponse>> {
    let header = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok());
    api.auth.authorize(header, need).map_err(|e| {
        let status = match e {
            AuthError::Forbidden { .. } => actix_web::http::StatusCode::FORBIDDEN,
            _ => actix_web::http::StatusCode::UNAUTHORIZED,
        };
        Box::new(HttpResponse::build(status).json(serde_json::json!({"error": e.to_string()})))
    })
}

fn error(e: AlertError) -> HttpResponse {
    let body = serde_json::json!({"error": e.to_string()});
    match e {
        AlertError::UnknownIncident(_) => HttpResponse::NotFound().json(body),
        AlertError::AlreadyResolved(_) => HttpResponse::Conflict().json(body),
        AlertError::Config(_) => HttpResponse::BadRequest().json(body),
        AlertError::Store(s) if s.is_transient() => HttpResponse::ServiceUnavailable()
            .insert_header(("retry-after", "5"))
            .json(body),
        _ => HttpResponse::InternalServerError().json(body),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
}

async fn list(
    req: HttpRequest,
    q: web::Query<ListQuery>,
    api: web::Data<AlertApi>,
) -> HttpResponse {
    if let Err(r) = auth(&req, &api, Role::Viewer) {
        return *r;
    }
    match cli::list(&api.store, q.state.as_deref()).await {
        Ok(incidents) => HttpResponse::Ok().json(incidents),
        Err(e) => error(e),
    }
}

#[derive(Deserialize, Default)]
struct AckBody {
    by: Option<String>,
}

async fn ack(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    api: web::Data<AlertApi>,
) -> HttpResponse {
    let actor = match auth(&req, &api, Role::Operator) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let parsed: AckBody = if body.is_empty() {
        AckBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return HttpResponse::BadRequest()
                    .json(serde_json::json!({"error": format!("body: {e}")}))
            }
        }
    };
    // With auth on, the token names the actor; a body `by` is only used when auth is off.
    let by = match (actor.as_str(), parsed.by) {
        ("anonymous", Some(b)) if !b.trim().is_empty() => b,
        _ => actor,
    };
    match cli::ack(&api.store, &path.into_inner(), &by).await {
        Ok(i) => HttpResponse::Ok().json(i),
        Err(e) => error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    model: String,
    #[serde(default)]
    monitor: Option<String>,
    #[serde(rename = "for")]
    duration: String,
    reason: String,
}

async fn silence(req: HttpRequest, body: web::Bytes, api: web::Data<AlertApi>) -> HttpResponse {
    let actor = match auth(&req, &api, Role::Operator) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let b: SilenceBody =
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return HttpResponse::BadRequest().json(serde_json::json!({
                "error": format!("body: {e}; send {{\"model\": …, \"for\": \"2h\", \"reason\": …}}")
            })),
        };
    match cli::silence(
        &api.store,
        &b.model,
        b.monitor.as_deref(),
        &b.duration,
        &b.reason,
        &actor,
    )
    .await
    {
        Ok(s) => HttpResponse::Created().json(s),
        Err(e) => error(e),
    }
}
