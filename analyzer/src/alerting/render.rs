//! What a notification says: a subject that sorts well in an inbox, a plain-text part an
//! engineer can read on a phone, an HTML part with a table and a chart, and webhook bodies.

use super::engine::{FiredColumn, Incident, IncidentState};

/// Rendered content of one notification (before it is split per channel).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Notification {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Inline PNG referenced as `cid:chart` by the HTML part.
    pub chart_png: Option<Vec<u8>>,
    /// Generic webhook body (JSON); empty: `{subject, text}`.
    pub json: Option<serde_json::Value>,
    /// Unique per notification; each channel appends its own suffix.
    pub idempotency_key: String,
}

/// Links put in every alert.
#[derive(Debug, Clone, Default)]
pub struct Links {
    pub dashboard_url: String,
    pub runbook_url: String,
}

fn when(secs: u32) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| secs.to_string())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn model_label(i: &Incident) -> String {
    if i.version.is_empty() {
        i.model.clone()
    } else {
        format!("{} {}", i.model, i.version)
    }
}

/// A health check in words: `p95 latency 412 ms > 250 ms`, `accuracy 0.71 < 0.80`.
fn check_phrase(c: &FiredColumn) -> String {
    use crate::monitor::health::{self, BELOW};
    let op = if c.method == BELOW { "<" } else { ">" };
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    match c.column.as_str() {
        health::LATENCY => format!("p95 latency {:.0} ms {op} {:.0} ms", c.score, c.threshold),
        health::ERROR_RATE => format!("error rate {} {op} {}", pct(c.score), pct(c.threshold)),
        health::INGEST_LAG => format!("ingest lag p95 {:.0} s {op} {:.0} s", c.score, c.threshold),
        health::ACCURACY => format!("accuracy {:.3} {op} {:.3}", c.score, c.threshold),
        other => {
            if let Some(f) = other.strip_prefix(health::MISSING_PREFIX) {
                format!("{f} missing in {} {op} {}", pct(c.score), pct(c.threshold))
            } else if let Some(a) = other.strip_prefix(health::FAIRNESS_PREFIX) {
                format!(
                    "selection-rate gap by {a} {:.3} {op} {:.3}",
                    c.score, c.threshold
                )
            } else {
                format!("{other} {:.4} {op} {:.4}", c.score, c.threshold)
            }
        }
    }
}

/// `[vigil][critical] churn v3: input drift in 4 columns` (or `…: resolved: …`).
pub fn subject(i: &Incident) -> String {
    let what = match i.kind.as_str() {
        "no_data" => format!("no data for monitor {}", i.monitor),
        "health" => match i.columns.as_slice() {
            [c] => format!("health: {}", check_phrase(c)),
            cs => format!(
                "health: {} checks breached ({})",
                cs.len(),
                cs.iter()
                    .map(|c| c.column.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        _ => {
            let n = i.columns.len();
            format!("input drift in {n} column{}", if n == 1 { "" } else { "s" })
        }
    };
    let prefix = if i.state == IncidentState::Resolved {
        "resolved: "
    } else {
        ""
    };
    format!("[vigil][{}] {}: {prefix}{what}", i.severity, model_label(i))
}

fn dashboard_link(i: &Incident, links: &Links) -> Option<String> {
    (!links.dashboard_url.is_empty()).then(|| {
        format!(
            "{}/monitors/{}?model={}",
            links.dashboard_url.trim_end_matches('/'),
            i.monitor,
            i.model
        )
    })
}

/// The notification for an incident that fired or resolved. `series` is the top column's
/// statistic over recent windows (for the chart).
pub fn incident_notification(
    i: &Incident,
    links: &Links,
    series: &[(u32, f64)],
    key: &str,
) -> Notification {
    let subject = subject(i);
    let resolved = i.state == IncidentState::Resolved;
    let mut text = String::new();
    let headline = if resolved {
        format!(
            "RESOLVED: monitor `{}` on {} is back to normal since the window ending {}.",
            i.monitor,
            model_label(i),
            when(i.last_window_end)
        )
    } else if i.kind == "health" {
        format!(
            "Health monitor `{}` on {} breaches {} check(s) since the window ending {}: {}.",
            i.monitor,
            model_label(i),
            i.columns.len(),
            when(i.first_window_end),
            i.columns
                .iter()
                .map(check_phrase)
                .collect::<Vec<_>>()
                .join("; ")
        )
    } else if i.kind == "no_data" {
        format!(
            "Monitor `{}` on {} could not judge its windows (too few rows) since {}.",
            i.monitor,
            model_label(i),
            when(i.first_window_end)
        )
    } else {
        format!(
            "Monitor `{}` on {} sees input drift in {} column(s) since the window ending {}.",
            i.monitor,
            model_label(i),
            i.columns.len(),
            when(i.first_window_end)
        )
    };
    text.push_str(&headline);
    text.push_str("\n\n");
    text.push_str(&format!(
        "Incident: {}\nSeverity: {}\nRule:     {}\nState:    {}\n",
        i.id,
        i.severity,
        i.rule,
        i.state.as_str()
    ));
    if !i.columns.is_empty() {
        text.push_str(&format!(
            "\n{}:\n",
            match (i.kind == "health", resolved) {
                (true, true) => "Checks that breached",
                (true, false) => "Breached checks",
                (false, true) => "Columns that drifted",
                (false, false) => "Top columns",
            }
        ));
        text.push_str(&format!(
            "  {:<24} {:<14} {:>10} {:>10}\n",
            "column", "method", "score", "threshold"
        ));
        for c in i.columns.iter().take(10) {
            text.push_str(&format!(
                "  {:<24} {:<14} {:>10.4} {:>10.4}\n",
                c.column, c.method, c.score, c.threshold
            ));
        }
        if i.columns.len() > 10 {
            text.push_str(&format!("  … and {} more\n", i.columns.len() - 10));
        }
    }
    let dash = dashboard_link(i, links);
    text.push('\n');
    if let Some(d) = &dash {
        text.push_str(&format!("Dashboard: {d}\n"));
    }
    if !links.runbook_url.is_empty() {
        text.push_str(&format!("Runbook:   {}\n", links.runbook_url));
    }
    if !resolved {
        text.push_str(&format!(
            "\nAcknowledge: vigil alerts ack {} --by YOUR_NAME\n",
            i.id
        ));
    }

    let chart_png = (series.len() >= 2).then(|| {
        let t = i.columns.first().map(|c| c.threshold).unwrap_or(0.0);
        super::chart::line_chart_png(series, t)
    });
    let mut html = String::new();
    let colour = match i.severity.as_str() {
        "critical" => "#b00020",
        "warning" => "#b26a00",
        _ => "#2a5db0",
    };
    html.push_str("<!DOCTYPE html><html><body style=\"font-family:sans-serif\">");
    html.push_str(&format!(
        "<h2 style=\"color:{}\">{}</h2><p>{}</p>",
        if resolved { "#2e7d32" } else { colour },
        esc(&subject),
        esc(&headline)
    ));
    if !i.columns.is_empty() {
        html.push_str("<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\"><tr><th>column</th><th>method</th><th>score</th><th>threshold</th></tr>");
        for c in i.columns.iter().take(10) {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td></tr>",
                esc(&c.column),
                esc(&c.method),
                c.score,
                c.threshold
            ));
        }
        html.push_str("</table>");
    }
    if chart_png.is_some() {
        let top = i.columns.first().map(|c| c.column.as_str()).unwrap_or("");
        html.push_str(&format!(
            "<p>{} over recent windows (red: threshold)<br><img src=\"cid:chart\" alt=\"chart of {}\" width=\"360\" height=\"120\"></p>",
            esc(top),
            esc(top)
        ));
    }
    html.push_str(&format!(
        "<p>Incident <code>{}</code> · rule {} · state {}</p><p>",
        esc(&i.id),
        esc(&i.rule),
        i.state.as_str()
    ));
    if let Some(d) = &dash {
        html.push_str(&format!("<a href=\"{}\">Dashboard</a> ", esc(d)));
    }
    if !links.runbook_url.is_empty() {
        html.push_str(&format!(
            "<a href=\"{}\">Runbook</a>",
            esc(&links.runbook_url)
        ));
    }
    html.push_str("</p></body></html>");
    let json = serde_json::json!({
        "event": if resolved { "resolved" } else { "fired" },
        "subject": subject,
        "incident": i,
        "dashboard_url": dash,
        "runbook_url": links.runbook_url,
    });
    Notification {
        subject,
        text,
        html,
        chart_png,
        json: Some(json),
        idempotency_key: key.to_string(),
    }
}

/// The message of `vigil alerts test --route NAME`.
pub fn test_notification(route: &str, key: &str) -> Notification {
    let subject = format!("[vigil][test] route {route}: test message");
    let text = format!(
        "This is a test message from vigil through the route `{route}`.\nIf you can read this, alerts will reach you.\n"
    );
    let html = format!(
        "<!DOCTYPE html><html><body><h2>{}</h2><p>This is a test message from vigil through the route <code>{}</code>. If you can read this, alerts will reach you.</p></body></html>",
        esc(&subject),
        esc(route)
    );
    Notification {
        subject,
        text,
        html,
        chart_png: None,
        json: Some(serde_json::json!({"event": "test", "route": route})),
        idempotency_key: key.to_string(),
    }
}

/// A Slack-compatible body: `{"text": …}` with the subject in bold and the plain text below.
pub fn slack_body(n: &Notification) -> serde_json::Value {
    serde_json::json!({ "text": format!("*{}*\n```{}```", n.subject, n.text.trim_end()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::engine::FiredColumn;

    fn incident(n: usize) -> Incident {
        Incident {
            id: "default-drift:m:churn-model:v3:7200".into(),
            rule: "default-drift".into(),
            kind: "drift".into(),
            monitor: "m".into(),
            model: "churn-model".into(),
            version: "v3".into(),
            severity: "critical".into(),
            state: IncidentState::Firing,
            silenced: false,
            opened_at: 7300,
            first_window_end: 7200,
            last_window_end: 7200,
            clear_windows: 0,
            columns: (0..n)
                .map(|k| FiredColumn {
                    column: format!("col<{k}>"),
                    method: "wasserstein".into(),
                    score: 0.5,
                    threshold: 0.1,
                    window_end: 7200,
                })
                .collect(),
            acked_by: String::new(),
            acked_at: 0,
            resolved_at: 0,
        }
    }

    #[test]
    fn subjects_sort_and_count() {
        assert_eq!(
            subject(&incident(4)),
            "[vigil][critical] churn-model v3: input drift in 4 columns"
        );
        let mut r = incident(1);
        r.state = IncidentState::Resolved;
        assert_eq!(
            subject(&r),
            "[vigil][critical] churn-model v3: resolved: input drift in 1 column"
        );
    }

    #[test]
    fn parts_carry_columns_links_and_escape_html() {
        let links = Links {
            dashboard_url: "https://vigil.example.com/".into(),
            runbook_url: "https://wiki/runbook".into(),
        };
        let n = incident_notification(&incident(3), &links, &[(0, 0.1), (3600, 0.5)], "k");
        assert!(n.text.contains("col<2>") && n.text.contains("0.1000"));
        assert!(n
            .text
            .contains("Dashboard: https://vigil.example.com/monitors/m?model=churn-model"));
        assert!(n.text.contains("Runbook:   https://wiki/runbook"));
        assert!(n.html.contains("col&lt;2&gt;") && !n.html.contains("col<2>"));
        assert!(n.html.contains("cid:chart"));
        assert!(n.chart_png.is_some());
        let slack = slack_body(&n);
        assert!(slack["text"]
            .as_str()
            .unwrap()
            .starts_with("*[vigil][critical]"));
    }
}
