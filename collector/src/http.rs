//! HTTP ingest: `POST /v1/events`, `/v1/outcomes`, `/v1/exposures`, plus `/metrics` and health.
//!
//! A body is a JSON array of events, NDJSON, or one event. Each item is validated on its own; the
//! reply lists the rejected items with the field at fault, and rejected items are kept in
//! `dead_letters`. The reply is sent once every item is durable in the store, so a 2xx means
//! stored. Back-pressure: 413 (body too large), 429 (queue full), 503 (store down), each with
//! `Retry-After` where retrying helps. Retrying is always safe: events are de-duplicated by id.

use crate::decode::{decode_into, split_body, BodyItems};
use crate::writer::{Busy, WriterHandle};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use serde::Serialize;
use std::time::Duration;
use vigil_store::auth::{AuthError, Authenticator, Role};
use vigil_store::event::{EventKind, EventTime, Limits};
use vigil_store::rows::{DeadLetterRow, RowBatch, SourceCoord};

/// Most per-item errors listed in one reply.
const MAX_LISTED_ERRORS: usize = 1000;

pub struct IngestState {
    pub writer: WriterHandle,
    pub auth: Authenticator,
    pub limits: Limits,
    pub max_body_bytes: usize,
    pub ack_timeout: Duration,
}

#[derive(Serialize)]
struct ItemError {
    index: usize,
    field: String,
    reason: String,
}

#[derive(Serialize)]
struct IngestReply {
    accepted: usize,
    rejected: usize,
    errors: Vec<ItemError>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    errors_truncated: bool,
}

fn error_reply(status: StatusCode, message: &str, retry_after: Option<u32>) -> HttpResponse {
    let mut r = HttpResponse::build(status);
    if let Some(s) = retry_after {
        r.insert_header((header::RETRY_AFTER, s.to_string()));
    }
    r.json(serde_json::json!({ "error": message }))
}

/// Mounts the ingest routes.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<IngestState>) {
    cfg.app_data(state)
        .route("/v1/events", web::post().to(ingest_inference))
        .route("/v1/outcomes", web::post().to(ingest_outcomes))
        .route("/v1/exposures", web::post().to(ingest_exposures))
        .route("/metrics", web::get().to(metrics))
        .route("/healthz", web::get().to(healthz));
}

async fn ingest_inference(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<IngestState>,
) -> HttpResponse {
    ingest(EventKind::Inference, req, body, state).await
}
async fn ingest_outcomes(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<IngestState>,
) -> HttpResponse {
    ingest(EventKind::Outcome, req, body, state).await
}
async fn ingest_exposures(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<IngestState>,
) -> HttpResponse {
    ingest(EventKind::Exposure, req, body, state).await
}

async fn metrics(state: web::Data<IngestState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.writer.metrics().render())
}

async fn healthz(state: web::Data<IngestState>) -> HttpResponse {
    if state
        .writer
        .metrics()
        .store_up
        .load(std::sync::atomic::Ordering::Relaxed)
        == 1
    {
        HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
    } else {
        error_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "store writes are failing; see logs",
            Some(5),
        )
    }
}

async fn read_body(mut body: web::Payload, limit: usize) -> Result<web::BytesMut, HttpResponse> {
    let mut buf = web::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            error_reply(
                StatusCode::BAD_REQUEST,
                &format!("cannot read body: {e}"),
                None,
            )
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(error_reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("body is over the limit of {limit} bytes; split it into smaller requests"),
                None,
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

async fn ingest(
    kind: EventKind,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<IngestState>,
) -> HttpResponse {
    let auth_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(e) = state.auth.check(auth_header, Role::Ingest) {
        let status = match e {
            AuthError::Forbidden { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        return error_reply(status, &e.to_string(), None);
    }
    let body = match read_body(body, state.max_body_bytes).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let metrics = state.writer.metrics().clone();
    let now = EventTime::now();
    let mut batch = RowBatch::default();
    let mut reply = IngestReply {
        accepted: 0,
        rejected: 0,
        errors: Vec::new(),
        errors_truncated: false,
    };
    let mut whole_body_error = None;
    match split_body(&body) {
        BodyItems::Items(items) => {
            for (index, item) in items.iter().enumerate() {
                let coord = SourceCoord {
                    source: "http".into(),
                    partition: -1,
                    offset: index as i64,
                };
                match decode_into(&mut batch, kind, item, &coord, &state.limits, now) {
                    Ok(()) => reply.accepted += 1,
                    Err(e) => {
                        reply.rejected += 1;
                        if reply.errors.len() < MAX_LISTED_ERRORS {
                            reply.errors.push(ItemError {
                                index,
                                field: e.field,
                                reason: e.reason,
                            });
                        } else {
                            reply.errors_truncated = true;
                        }
                    }
                }
            }
        }
        BodyItems::Malformed(reason) => {
            let coord = SourceCoord {
                source: "http".into(),
                partition: -1,
                offset: -1,
            };
            batch
                .dead_letters
                .push(DeadLetterRow::new(kind, &coord, "$", &reason, &body));
            reply.rejected = 1;
            whole_body_error = Some(reason);
        }
    }
    metrics.received(
        "http",
        kind.as_str(),
        (reply.accepted + reply.rejected) as u64,
    );
    metrics.rejected("http", kind.as_str(), reply.rejected as u64);
    let ack = match state.writer.try_submit(batch) {
        Ok(ack) => ack,
        Err(Busy::QueueFull) => {
            metrics
                .http_throttled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return error_reply(
                StatusCode::TOO_MANY_REQUESTS,
                &Busy::QueueFull.to_string(),
                Some(1),
            );
        }
        Err(busy) => {
            metrics
                .http_unavailable
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return error_reply(StatusCode::SERVICE_UNAVAILABLE, &busy.to_string(), Some(5));
        }
    };
    match tokio::time::timeout(state.ack_timeout, ack).await {
        Ok(Ok(())) => {}
        _ => {
            metrics
                .http_unavailable
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return error_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "events are queued but not yet stored (the store is slow or down); retrying is safe, events are de-duplicated by event_id",
                Some(5),
            );
        }
    }
    if let Some(reason) = whole_body_error {
        return error_reply(
            StatusCode::BAD_REQUEST,
            &format!("{reason} (kept in dead_letters)"),
            None,
        );
    }
    let status = if reply.rejected == 0 {
        StatusCode::OK
    } else if reply.accepted == 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::MULTI_STATUS
    };
    HttpResponse::build(status).json(reply)
}
