//! The durable outbox: a notification is written to the store (`alert_notifications`,
//! status `pending`) before any delivery is tried; the delivery loop sends what is due and
//! records the outcome as a new row (`delivered`, or `pending` with `attempts + 1` and the
//! next attempt after an exponential backoff, or `failed` after `max_attempts`).
//!
//! Guarantees: a notification is never lost (it is in the store before anyone is told it
//! exists; a restart resumes from the store) and is enqueued once per idempotency key (an
//! evaluation repeated after a crash finds the key and writes nothing). It is sent once unless
//! the process dies between the server accepting it and the `delivered` row being stored;
//! that resend carries the same `Message-ID` / `Idempotency-Key`. One delivery loop per store
//! (one `vigil serve`).

use std::time::Duration;

use vigil_store::rows::AlertNotificationRow;
use vigil_store::{sql_string, Store};

use super::config::{AlertingConfig, RouteConfig};
use super::db::{self, now_ms, now_secs};
use super::render::{slack_body, Notification};
use super::{smtp, webhook, AlertError};

/// Base64 (standard, padded) for the inline chart.
fn b64(data: &[u8]) -> String {
    vigil_store::rows::base64_encode(data)
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    Some(out)
}

/// Writes `n` to the outbox for every channel of route `route_name` (keys
/// `{idempotency_key}:{route}:{channel}`); a key already present is skipped. Returns the keys
/// written now. This is the entry point for other crates (e.g. the shadow runner e-mailing a
/// retraining request through an alert route).
pub async fn enqueue(
    store: &Store,
    routes: &[RouteConfig],
    route_name: &str,
    incident_id: &str,
    kind: &str,
    n: &Notification,
) -> Result<Vec<String>, AlertError> {
    let route = routes
        .iter()
        .find(|r| r.name == route_name)
        .ok_or_else(|| AlertError::UnknownRoute(route_name.to_string()))?;
    let now = now_secs();
    let mut written = Vec::new();
    let mut channels = Vec::new();
    if route.email.is_some() {
        channels.push(("email", String::new()));
    }
    if let Some(w) = &route.webhook {
        let body = if w.format == "slack" {
            slack_body(n)
        } else {
            n.json
                .clone()
                .unwrap_or_else(|| serde_json::json!({"subject": n.subject, "text": n.text}))
        };
        channels.push(("webhook", body.to_string()));
    }
    for (channel, body_json) in channels {
        let key = format!("{}:{route_name}:{channel}", n.idempotency_key);
        if db::notification_exists(store, &key).await? {
            continue;
        }
        let row = AlertNotificationRow {
            idempotency_key: key.clone(),
            incident_id: incident_id.to_string(),
            kind: kind.to_string(),
            route: route_name.to_string(),
            channel: channel.to_string(),
            subject: n.subject.clone(),
            text: n.text.clone(),
            html: n.html.clone(),
            body_json,
            attachment_b64: n.chart_png.as_deref().map(b64).unwrap_or_default(),
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
            delivered_at: 0,
            last_error: String::new(),
            updated_ms: now_ms(),
        };
        store.insert(&[row]).await?;
        written.push(key);
    }
    Ok(written)
}

/// Notifications whose latest state is `pending` and whose next attempt is due at `now`.
pub async fn due(store: &Store, now: u32) -> Result<Vec<AlertNotificationRow>, AlertError> {
    Ok(db::notifications(
        store,
        "",
        &format!("status_ = 'pending' AND next_attempt_at_ <= toDateTime({now})"),
    )
    .await?)
}

/// Every notification (latest state), optionally only those with `status`.
pub async fn list(
    store: &Store,
    status: Option<&str>,
) -> Result<Vec<AlertNotificationRow>, AlertError> {
    let outer = status
        .map(|s| format!("status_ = {}", sql_string(s)))
        .unwrap_or_default();
    Ok(db::notifications(store, "", &outer).await?)
}

/// Backoff before attempt `attempts + 1`: `base · 2^(attempts-1)`, capped at `max`.
pub fn backoff(attempts: u32, base: u32, max: u32) -> u32 {
    let exp = attempts.saturating_sub(1).min(30);
    base.saturating_mul(1u32 << exp).min(max).max(1)
}

/// What one pass of the delivery loop did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DeliveryReport {
    pub delivered: Vec<String>,
    pub retrying: Vec<(String, String)>,
    pub failed: Vec<(String, String)>,
}

/// Sends one notification through its channel.
async fn send_one(
    n: &AlertNotificationRow,
    routes: &[RouteConfig],
    timeout: Duration,
) -> Result<(), String> {
    let route = routes.iter().find(|r| r.name == n.route).ok_or_else(|| {
        format!(
            "route `{}` is no longer in [[alert_routes]]; add it back to deliver",
            n.route
        )
    })?;
    match n.channel.as_str() {
        "email" => {
            let email = route
                .email
                .as_ref()
                .ok_or_else(|| format!("route `{}` has no email any more", n.route))?;
            let chart = if n.attachment_b64.is_empty() {
                None
            } else {
                b64_decode(&n.attachment_b64)
            };
            let msg = smtp::build_message(
                email,
                &n.subject,
                &n.text,
                &n.html,
                chart,
                &n.idempotency_key,
            )?;
            smtp::send(email, msg, timeout).await
        }
        "webhook" => {
            let hook = route
                .webhook
                .as_ref()
                .ok_or_else(|| format!("route `{}` has no webhook any more", n.route))?;
            webhook::post(&hook.url, &n.body_json, &n.idempotency_key, timeout).await
        }
        other => Err(format!("unknown channel `{other}`")),
    }
}

/// Records the outcome of an attempt as a new state row.
async fn record(
    store: &Store,
    n: &AlertNotificationRow,
    outcome: &Result<(), String>,
    cfg: &AlertingConfig,
    give_up_now: bool,
) -> Result<(), AlertError> {
    let now = now_secs();
    let mut row = n.clone();
    row.attempts += 1;
    row.updated_ms = now_ms();
    match outcome {
        Ok(()) => {
            row.status = "delivered".into();
            row.delivered_at = now;
            row.last_error.clear();
        }
        Err(e) => {
            row.last_error = e.clone();
            if give_up_now || (cfg.max_attempts > 0 && row.attempts >= cfg.max_attempts) {
                row.status = "failed".into();
            } else {
                let base = cfg.secs("retry_base", &cfg.retry_base)?;
                let max = cfg.secs("retry_max", &cfg.retry_max)?;
                row.next_attempt_at = now.saturating_add(backoff(row.attempts, base, max));
            }
        }
    }
    store.insert(&[row]).await?;
    Ok(())
}

/// One pass: sends every due notification (or only `only_keys`), records each outcome.
/// `give_up_on_failure` marks failures `failed` at once (used by `vigil alerts test`).
pub async fn deliver_due(
    store: &Store,
    cfg: &AlertingConfig,
    routes: &[RouteConfig],
    only_keys: Option<&[String]>,
    give_up_on_failure: bool,
) -> Result<DeliveryReport, AlertError> {
    let timeout = Duration::from_secs(u64::from(cfg.secs("send_timeout", &cfg.send_timeout)?));
    let mut report = DeliveryReport::default();
    for n in due(store, now_secs()).await? {
        if only_keys.is_some_and(|k| !k.contains(&n.idempotency_key)) {
            continue;
        }
        let outcome = send_one(&n, routes, timeout).await;
        record(store, &n, &outcome, cfg, give_up_on_failure).await?;
        match outcome {
            Ok(()) => {
                tracing::info!(key = %n.idempotency_key, route = %n.route, channel = %n.channel,
                    subject = %n.subject, "alert notification delivered");
                report.delivered.push(n.idempotency_key.clone());
            }
            Err(e) => {
                tracing::warn!(key = %n.idempotency_key, route = %n.route, channel = %n.channel,
                    attempts = n.attempts + 1, error = %e, "alert notification not delivered");
                if give_up_on_failure {
                    report.failed.push((n.idempotency_key.clone(), e));
                } else {
                    report.retrying.push((n.idempotency_key.clone(), e));
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1, 5, 600), 5);
        assert_eq!(backoff(2, 5, 600), 10);
        assert_eq!(backoff(4, 5, 600), 40);
        assert_eq!(backoff(20, 5, 600), 600);
        assert_eq!(backoff(u32::MAX, 5, 600), 600);
    }

    #[test]
    fn base64_round_trips() {
        for data in [&b""[..], b"a", b"ab", b"abc", b"\x89PNG\r\n\x1a\n\x00\xff"] {
            assert_eq!(b64_decode(&b64(data)).unwrap(), data);
        }
    }
}
