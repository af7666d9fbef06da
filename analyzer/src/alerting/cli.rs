//! `vigil alerts …`: test a route, list incidents, acknowledge, silence, evaluate, deliver.

use vigil_store::rows::AlertSilenceRow;
use vigil_store::Store;

use super::db::{self, now_secs};
use super::engine::{Incident, IncidentState};
use super::render::test_notification;
use super::{evaluate, outbox, AlertContext, AlertError};
use crate::cli::OutputFormat;
use crate::monitor::config::parse_duration;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AlertsCommand {
    /// Send a test message through a route now (through the outbox; exit 1 if it fails).
    Test {
        #[arg(long)]
        route: String,
    },
    /// List incidents (newest first).
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// Only incidents in this state: firing, acknowledged or resolved.
        #[arg(long)]
        state: Option<String>,
    },
    /// Acknowledge a firing incident (it still resolves, with a notification).
    Ack {
        /// Incident id (from `vigil alerts list`).
        id: String,
        /// Who acknowledges (kept in the history).
        #[arg(long)]
        by: String,
    },
    /// Silence a model's (or one monitor's) alerts for a while.
    Silence {
        #[arg(long)]
        model: String,
        /// Only this monitor (default: every monitor of the model).
        #[arg(long)]
        monitor: Option<String>,
        /// How long, e.g. 30m, 2h, 1d.
        #[arg(long = "for")]
        duration: String,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Evaluate the alert rules against stored monitor results once.
    Evaluate {
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Deliver due notifications from the outbox once (`vigil serve` does this continuously).
    Deliver {
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Show the outbox: every notification with its status and attempts.
    Outbox {
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

fn time(secs: u32) -> String {
    if secs == 0 {
        return "-".into();
    }
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| secs.to_string())
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, AlertError> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|e| AlertError::Config(e.to_string()))
}

/// Acknowledges incident `id` on behalf of `by`.
pub async fn ack(store: &Store, id: &str, by: &str) -> Result<Incident, AlertError> {
    let mut inc = db::incident(store, id)
        .await?
        .ok_or_else(|| AlertError::UnknownIncident(id.to_string()))?;
    match inc.state {
        IncidentState::Resolved => return Err(AlertError::AlreadyResolved(id.to_string())),
        IncidentState::Acknowledged => return Ok(inc),
        IncidentState::Firing => {}
    }
    inc.state = IncidentState::Acknowledged;
    inc.acked_by = by.to_string();
    inc.acked_at = now_secs();
    db::put_incident(store, &inc).await?;
    db::add_event(store, &inc, "acknowledged", by, "").await?;
    Ok(inc)
}

/// Adds a silence; returns it.
pub async fn silence(
    store: &Store,
    model: &str,
    monitor: Option<&str>,
    duration: &str,
    reason: &str,
    by: &str,
) -> Result<AlertSilenceRow, AlertError> {
    let secs = parse_duration(duration)?;
    if model.trim().is_empty() {
        return Err(AlertError::Config("a silence needs --model".into()));
    }
    let now = now_secs();
    let row = AlertSilenceRow {
        id: format!("silence-{}", db::now_ms()),
        model: model.to_string(),
        monitor: monitor.unwrap_or_default().to_string(),
        starts_at: now,
        ends_at: now.saturating_add(secs),
        reason: reason.to_string(),
        created_by: by.to_string(),
        created_at: now,
    };
    db::add_silence(store, &row).await?;
    Ok(row)
}

/// Incidents, optionally in one state.
pub async fn list(store: &Store, state: Option<&str>) -> Result<Vec<Incident>, AlertError> {
    let filter = match state {
        None => String::new(),
        Some(s) => {
            let st = IncidentState::parse(s).ok_or_else(|| {
                AlertError::Config(format!("--state {s}: use firing, acknowledged or resolved"))
            })?;
            format!("state_ = '{}'", st.as_str())
        }
    };
    Ok(db::incidents(store, &filter).await?)
}

/// Runs one `vigil alerts` command; returns what to print.
pub async fn run(
    store: &Store,
    ctx: &AlertContext,
    cmd: &AlertsCommand,
) -> Result<String, AlertError> {
    match cmd {
        AlertsCommand::Test { route } => {
            let key = format!("test:{route}:{}", db::now_ms());
            let n = test_notification(route, &key);
            let keys = outbox::enqueue(store, &ctx.routes, route, "", "test", &n).await?;
            let report =
                outbox::deliver_due(store, &ctx.alerting, &ctx.routes, Some(&keys), true).await?;
            if let Some((k, e)) = report.failed.first() {
                return Err(AlertError::Delivery(format!("{k}: {e}")));
            }
            Ok(format!(
                "test message sent through route `{route}` ({} channel(s): {})\n",
                report.delivered.len(),
                report.delivered.join(", ")
            ))
        }
        AlertsCommand::List { format, state } => {
            let incidents = list(store, state.as_deref()).await?;
            match format {
                OutputFormat::Json => json(&incidents),
                OutputFormat::Table => {
                    let mut out = format!(
                        "{:<48} {:<13} {:<9} {:<20} {:>7}  {}\n",
                        "id", "state", "severity", "opened", "columns", "acked by"
                    );
                    for i in &incidents {
                        out.push_str(&format!(
                            "{:<48} {:<13} {:<9} {:<20} {:>7}  {}\n",
                            i.id,
                            i.state.as_str(),
                            i.severity,
                            time(i.opened_at),
                            i.columns.len(),
                            i.acked_by
                        ));
                    }
                    Ok(out)
                }
            }
        }
        AlertsCommand::Ack { id, by } => {
            let inc = ack(store, id, by).await?;
            Ok(format!(
                "incident {} acknowledged by {}\n",
                inc.id, inc.acked_by
            ))
        }
        AlertsCommand::Silence {
            model,
            monitor,
            duration,
            reason,
            by,
        } => {
            let s = silence(store, model, monitor.as_deref(), duration, reason, by).await?;
            Ok(format!(
                "silence {} on model {}{} until {} ({})\n",
                s.id,
                s.model,
                if s.monitor.is_empty() {
                    String::new()
                } else {
                    format!(" monitor {}", s.monitor)
                },
                time(s.ends_at),
                s.reason
            ))
        }
        AlertsCommand::Evaluate { format } => {
            let r = evaluate::evaluate(store, ctx).await?;
            match format {
                OutputFormat::Json => json(&r),
                OutputFormat::Table => Ok(format!(
                    "fired {}  resolved {}  updated {}  silenced {}  notifications queued {}\n",
                    r.fired.len(),
                    r.resolved.len(),
                    r.updated.len(),
                    r.silenced.len(),
                    r.notifications.len()
                )),
            }
        }
        AlertsCommand::Deliver { format } => {
            let r = outbox::deliver_due(store, &ctx.alerting, &ctx.routes, None, false).await?;
            match format {
                OutputFormat::Json => json(&r),
                OutputFormat::Table => Ok(format!(
                    "delivered {}  retrying {}\n",
                    r.delivered.len(),
                    r.retrying.len()
                )),
            }
        }
        AlertsCommand::Outbox { format } => {
            let rows = outbox::list(store, None).await?;
            match format {
                OutputFormat::Json => {
                    let v: Vec<serde_json::Value> = rows
                        .iter()
                        .map(|r| {
                            serde_json::json!({
                                "idempotency_key": r.idempotency_key, "incident_id": r.incident_id,
                                "kind": r.kind, "route": r.route, "channel": r.channel,
                                "subject": r.subject, "status": r.status, "attempts": r.attempts,
                                "next_attempt_at": r.next_attempt_at, "delivered_at": r.delivered_at,
                                "last_error": r.last_error,
                            })
                        })
                        .collect();
                    json(&v)
                }
                OutputFormat::Table => {
                    let mut out = String::new();
                    for r in rows {
                        out.push_str(&format!(
                            "{:<10} {:>3} {:<8} {}  {}\n",
                            r.status, r.attempts, r.channel, r.idempotency_key, r.last_error
                        ));
                    }
                    Ok(out)
                }
            }
        }
    }
}
