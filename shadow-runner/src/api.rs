//! Read-only HTTP API of shadow runs and retraining requests (viewer role), mounted by
//! `vigil serve`:
//!
//! - `GET /v1/shadow/runs` — every run's latest state, newest first (`?limit=N`, default 100);
//! - `GET /v1/shadow/runs/{id}` — one run with its `total` rows and bucket time series;
//! - `GET /v1/retraining-requests` — requests, newest first (`?status=open|closed`).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use vigil_store::auth::{AuthError, Authenticator, Role};
use vigil_store::Store;

use crate::cli::run_json;
use crate::replay;
use crate::retrain;

/// What the handlers need.
pub struct ApiState {
    /// The store.
    pub store: Store,
    /// Bearer tokens and roles.
    pub auth: Authenticator,
}

/// Mounts the routes.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<ApiState>) {
    cfg.service(
        web::resource("/v1/shadow/runs")
            .app_data(state.clone())
            .route(web::get().to(runs)),
    )
    .service(
        web::resource("/v1/shadow/runs/{id}")
            .app_data(state.clone())
            .route(web::get().to(run)),
    )
    .service(
        web::resource("/v1/retraining-requests")
            .app_data(state)
            .route(web::get().to(requests)),
    );
}

fn viewer(req: &HttpRequest, state: &ApiState) -> Result<(), Box<HttpResponse>> {
    let h = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    state.auth.check(h, Role::Viewer).map_err(|e| {
        let status = match e {
            AuthError::Forbidden { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        Box::new(HttpResponse::build(status).json(serde_json::json!({"error": e.to_string()})))
    })
}

fn store_error(e: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(serde_json::json!({"error": e.to_string()}))
}

#[derive(Deserialize)]
struct RunsQuery {
    limit: Option<u32>,
}

async fn runs(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<RunsQuery>,
) -> HttpResponse {
    if let Err(r) = viewer(&req, &state) {
        return *r;
    }
    match replay::list_jobs(&state.store, q.limit.unwrap_or(100).clamp(1, 10_000)).await {
        Ok(jobs) => HttpResponse::Ok().json(serde_json::json!({
            "runs": jobs.iter().map(run_json).collect::<Vec<_>>()
        })),
        Err(e) => store_error(e),
    }
}

async fn run(req: HttpRequest, state: web::Data<ApiState>, id: web::Path<String>) -> HttpResponse {
    if let Err(r) = viewer(&req, &state) {
        return *r;
    }
    let job = match replay::load_job(&state.store, &id).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            return HttpResponse::NotFound()
                .json(serde_json::json!({"error": format!("no shadow run `{id}`")}))
        }
        Err(e) => return store_error(e),
    };
    let totals = replay::job_metrics(&state.store, &job.job_id, Some("total")).await;
    let buckets = replay::job_metrics(&state.store, &job.job_id, Some("bucket")).await;
    match (totals, buckets) {
        (Ok(totals), Ok(buckets)) => HttpResponse::Ok().json(serde_json::json!({
            "run": run_json(&job),
            "totals": totals,
            "buckets": buckets,
        })),
        (Err(e), _) | (_, Err(e)) => store_error(e),
    }
}

#[derive(Deserialize)]
struct RequestsQuery {
    status: Option<String>,
}

async fn requests(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<RequestsQuery>,
) -> HttpResponse {
    if let Err(r) = viewer(&req, &state) {
        return *r;
    }
    if let Some(s) = q.status.as_deref() {
        if s != "open" && s != "closed" {
            return HttpResponse::BadRequest()
                .json(serde_json::json!({"error": "status must be `open` or `closed`"}));
        }
    }
    match retrain::list_requests(&state.store, q.status.as_deref()).await {
        Ok(rows) => HttpResponse::Ok().json(serde_json::json!({
            "requests": rows.iter().map(retrain::request_payload).collect::<Vec<_>>()
        })),
        Err(e) => store_error(e),
    }
}
