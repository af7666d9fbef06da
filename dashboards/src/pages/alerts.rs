//! Alerts: incidents, their history, active silences; Acknowledge and Silence (operator).

use super::shared::{empty_state, DOCS_ALERTING, DOCS_ALERT_TABLES};
use super::{Ctx, Dataset, PageOut};
use crate::data;
use crate::html::{self, esc, url_enc};
use crate::{DashboardError, DashboardState};
use std::fmt::Write;

#[derive(Debug, Clone, clickhouse::Row, serde::Deserialize)]
pub(super) struct Incident {
    pub(super) id: String,
    pub(super) rule: String,
    pub(super) monitor: String,
    pub(super) model: String,
    pub(super) version: String,
    pub(super) severity: String,
    pub(super) state: String,
    pub(super) silenced: u8,
    pub(super) opened_at: u32,
    pub(super) last_window_end: u32,
    pub(super) acked_by: String,
    pub(super) resolved_at: u32,
}

async fn incidents(st: &DashboardState, filter: &str) -> Result<Vec<Incident>, DashboardError> {
    Ok(st
        .store
        .fetch(&format!(
            "SELECT * FROM (
                SELECT toString(id) AS id, toString(argMax(rule, updated_ms)) AS rule,
                       toString(argMax(monitor, updated_ms)) AS monitor, toString(argMax(model, updated_ms)) AS model,
                       toString(argMax(version, updated_ms)) AS version, toString(argMax(severity, updated_ms)) AS severity,
                       toString(argMax(state, updated_ms)) AS state, toUInt8(argMax(silenced, updated_ms)) AS silenced,
                       toUInt32(argMax(opened_at, updated_ms)) AS opened_at,
                       toUInt32(argMax(last_window_end, updated_ms)) AS last_window_end,
                       toString(argMax(acked_by, updated_ms)) AS acked_by,
                       toUInt32(argMax(resolved_at, updated_ms)) AS resolved_at
                FROM {} GROUP BY id
             ) AS latest {filter} ORDER BY opened_at DESC LIMIT 500",
            st.store.table("alert_incidents")
        ))
        .await?)
}

pub(super) async fn open_incidents(st: &DashboardState) -> Result<Vec<Incident>, DashboardError> {
    incidents(st, "WHERE state != 'resolved'").await
}

pub(super) async fn page(st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
    let mut p = PageOut::new("Alerts");
    if !data::table_exists(&st.store, "alert_incidents").await? {
        p.push(empty_state(
            "Alerting tables are not in this store yet (schema migration 5).",
            "Run `vigil migrate` with a vigil that includes alerting.",
            DOCS_ALERT_TABLES,
        ));
        return Ok(p);
    }
    let r = c.range;
    let all = incidents(st, &format!("WHERE opened_at < toDateTime({}) AND (state != 'resolved' OR resolved_at >= toDateTime({}))", r.until, r.since)).await?;
    let mut rows = Vec::new();
    for i in &all {
        let ack = if c.operator() && i.state != "resolved" && i.acked_by.is_empty() {
            format!(
                "<form method=\"post\" action=\"/ui/alerts/{}/ack\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" class=\"ack\">Acknowledge</button></form>",
                esc(&url_enc(&i.id)),
                esc(&c.session.csrf)
            )
        } else if !i.acked_by.is_empty() {
            format!("acked by {}", esc(&i.acked_by))
        } else {
            String::new()
        };
        rows.push(vec![
            esc(&i.severity),
            esc(&i.state),
            format!(
                "{}{}",
                esc(&i.model),
                if i.version.is_empty() {
                    String::new()
                } else {
                    format!("/{}", esc(&i.version))
                }
            ),
            esc(&i.monitor),
            esc(&i.rule),
            html::time(i.opened_at),
            if i.resolved_at > 0 {
                format!("resolved {}", html::time(i.resolved_at))
            } else {
                html::time(i.last_window_end)
            },
            if i.silenced > 0 {
                "silenced".into()
            } else {
                String::new()
            },
            ack,
        ]);
    }
    p.body.push_str("<h2>Incidents</h2>");
    p.table(
        "incidents",
        &[
            "severity",
            "state",
            "model",
            "monitor",
            "rule",
            "opened (UTC)",
            "last window / resolved",
            "",
            "",
        ],
        rows,
    );
    if all.is_empty() {
        p.push(empty_state(
            "No incidents in this time range.",
            "Incidents come from the verdicts of [[monitors]] through the alert rules ([alerting], [[alert_rules]]).",
            DOCS_ALERTING,
        ));
    }
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Ev {
        at: u32,
        incident_id: String,
        event: String,
        actor: String,
        model: String,
        monitor: String,
        detail: String,
    }
    let events: Vec<Ev> = st
        .store
        .fetch(&format!(
            "SELECT toUInt32(at) AS at, toString(incident_id) AS incident_id, toString(event) AS event, toString(actor) AS actor,
                    toString(model) AS model, toString(monitor) AS monitor, toString(detail) AS detail
             FROM {} WHERE at >= toDateTime({}) AND at < toDateTime({}) ORDER BY at_ms DESC LIMIT 300",
            st.store.table("alert_events"),
            r.since,
            r.until
        ))
        .await?;
    p.body.push_str("<h2>History</h2>");
    // The text columns, in table order; the HTML escapes them, the CSV keeps them raw.
    fn texts(e: &Ev) -> [&String; 6] {
        [
            &e.event,
            &e.model,
            &e.monitor,
            &e.actor,
            &e.incident_id,
            &e.detail,
        ]
    }
    p.table_with_csv(
        &[
            "at (UTC)", "event", "model", "monitor", "actor", "incident", "detail",
        ],
        events.iter().map(|e| {
            let mut row = vec![html::time(e.at)];
            row.extend(texts(e).map(|t| esc(t)));
            row
        }),
        Dataset::new(
            "alert-history",
            &[
                "at", "event", "model", "monitor", "actor", "incident", "detail",
            ],
            events.iter().map(|e| {
                let mut row = vec![e.at.to_string()];
                row.extend(texts(e).map(String::clone));
                row
            }),
        ),
    );
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Sil {
        model: String,
        monitor: String,
        ends_at: u32,
        reason: String,
        created_by: String,
    }
    // Where each incident's notifications went, and whether they arrived.
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Sent {
        created_at: u32,
        incident_id: String,
        kind: String,
        route: String,
        channel: String,
        subject: String,
        status: String,
        attempts: u32,
        delivered_at: u32,
        last_error: String,
    }
    let sent: Vec<Sent> = st
        .store
        .fetch(&format!(
            "SELECT * FROM (
                SELECT toUInt32(argMax(created_at, updated_ms)) AS created_at,
                       toString(argMax(incident_id, updated_ms)) AS incident_id,
                       toString(argMax(kind, updated_ms)) AS kind,
                       toString(argMax(route, updated_ms)) AS route,
                       toString(argMax(channel, updated_ms)) AS channel,
                       toString(argMax(subject, updated_ms)) AS subject,
                       toString(argMax(status, updated_ms)) AS status,
                       toUInt32(argMax(attempts, updated_ms)) AS attempts,
                       toUInt32(argMax(delivered_at, updated_ms)) AS delivered_at,
                       toString(argMax(last_error, updated_ms)) AS last_error
                FROM {} GROUP BY idempotency_key
             ) AS latest
             WHERE created_at >= toDateTime({}) AND created_at < toDateTime({})
             ORDER BY created_at DESC, route, channel LIMIT 100",
            st.store.table("alert_notifications"),
            c.range.since,
            c.range.until
        ))
        .await?;
    p.body.push_str("<h2>Notifications</h2>");
    p.table(
        "notifications",
        &[
            "queued (UTC)",
            "incident",
            "kind",
            "route",
            "channel",
            "subject",
            "status",
            "delivered (UTC)",
        ],
        sent.iter().map(|n| {
            let status = match (n.status.as_str(), n.last_error.is_empty()) {
                ("delivered", _) | (_, true) => esc(&n.status),
                _ => format!(
                    "{} <small>after {} attempt(s): {}</small>",
                    esc(&n.status),
                    n.attempts,
                    esc(&n.last_error)
                ),
            };
            vec![
                html::time(n.created_at),
                esc(&n.incident_id),
                esc(&n.kind),
                esc(&n.route),
                esc(&n.channel),
                esc(&n.subject),
                status,
                if n.delivered_at > 0 {
                    html::time(n.delivered_at)
                } else {
                    "–".into()
                },
            ]
        }),
    );
    let now = chrono::Utc::now().timestamp().max(0);
    let sils: Vec<Sil> = st
        .store
        .fetch(&format!(
            "SELECT toString(model) AS model, toString(monitor) AS monitor, toUInt32(ends_at) AS ends_at, toString(reason) AS reason,
                    toString(created_by) AS created_by FROM {} WHERE ends_at > toDateTime({now}) ORDER BY ends_at",
            st.store.table("alert_silences")
        ))
        .await?;
    p.body.push_str("<h2>Active silences</h2>");
    p.table(
        "silences",
        &["model", "monitor", "until (UTC)", "by", "reason"],
        sils.iter().map(|s| {
            vec![
                esc(&s.model),
                esc(if s.monitor.is_empty() {
                    "all monitors"
                } else {
                    &s.monitor
                }),
                html::time(s.ends_at),
                esc(&s.created_by),
                esc(&s.reason),
            ]
        }),
    );
    if c.operator() {
        let _ = write!(
            p.body,
            "<form method=\"post\" action=\"/ui/alerts/silence\" class=\"card\" id=\"silence-form\"><h3>Silence</h3>\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <label>Model <input name=\"model\" required></label><label>Monitor (empty = all) <input name=\"monitor\"></label>\
             <label>Minutes <input name=\"minutes\" inputmode=\"numeric\" value=\"60\" required></label>\
             <label>Reason <input name=\"reason\" required></label><button type=\"submit\">Silence</button></form>",
            esc(&c.session.csrf)
        );
    }
    Ok(p)
}
