//! Runs the rules over stored monitor results: the store-bound side of [`super::engine`].
//!
//! For each rule and each matching monitor it reads the recent windows of `monitor_results`,
//! the learned baseline (the monitor's first `learn_windows` windows), the group's incidents
//! and the active silences, asks [`engine::step`] what changed, and persists it in an order
//! that survives a crash at any point: notifications (outbox) first, then the incident row,
//! then the history event. A repeated evaluation finds the incident or the notification keys
//! and writes nothing twice.

use serde::Serialize;
use vigil_store::{sql_string, Store};

use super::config::{effective_rules, RuleConfig};
use super::db::{self, now_secs};
use super::engine::{self, GroupKey, GroupState, IncidentState, Transition, WindowResults};
use super::render::{incident_notification, Links};
use super::{outbox, AlertContext, AlertError};
use crate::monitor::{self, MonitorConfig};

/// What one evaluation changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EvaluationReport {
    pub fired: Vec<String>,
    pub resolved: Vec<String>,
    pub updated: Vec<String>,
    pub silenced: Vec<String>,
    pub notifications: Vec<String>,
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct Bounds {
    first: u32,
    last: u32,
}

async fn bounds(store: &Store, monitor: &str) -> Result<Option<(u32, u32)>, AlertError> {
    let rows = store
        .fetch::<Bounds>(&format!(
            "SELECT toUInt32(min(window_end)) AS first, toUInt32(max(window_end)) AS last FROM {} WHERE monitor = {}",
            store.table("monitor_results"),
            sql_string(monitor)
        ))
        .await?;
    Ok(rows
        .first()
        .filter(|b| b.last > 0)
        .map(|b| (b.first, b.last)))
}

fn links(ctx: &AlertContext) -> Links {
    Links {
        dashboard_url: ctx.alerting.dashboard_url.clone(),
        runbook_url: ctx.alerting.runbook_url.clone(),
    }
}

/// Routes of a rule: its own list, or every route.
fn rule_routes<'a>(rule: &'a RuleConfig, ctx: &'a AlertContext) -> Vec<&'a str> {
    if rule.routes.is_empty() {
        ctx.routes.iter().map(|r| r.name.as_str()).collect()
    } else {
        rule.routes.iter().map(String::as_str).collect()
    }
}

/// Evaluates every rule against every matching monitor's newest stored window.
pub async fn evaluate(store: &Store, ctx: &AlertContext) -> Result<EvaluationReport, AlertError> {
    let rules = effective_rules(&ctx.alerting, &ctx.rules);
    let mut report = EvaluationReport::default();
    let now = now_secs();
    let silences = db::active_silences(store, now).await?;
    for m in &ctx.monitors {
        let Some((first, last)) = bounds(store, &m.name).await? else {
            continue;
        };
        let window = m.window_secs()?;
        let applicable: Vec<&RuleConfig> = rules
            .iter()
            .filter(|r| r.monitors.is_empty() || r.monitors.contains(&m.name))
            .filter(|r| r.kind.applies_to(m.health.is_some()))
            .collect();
        if applicable.is_empty() {
            continue;
        }
        let span = applicable
            .iter()
            .map(|r| r.of_windows.max(r.resolve_after))
            .max()
            .unwrap_or(3)
            + 1;
        let recent = monitor::stored_results(
            store,
            &m.name,
            last.saturating_sub(span.saturating_mul(window)),
            last,
        )
        .await?;
        let recent = engine::group_rows(&recent);
        let learn = applicable
            .iter()
            .map(|r| r.learn_windows)
            .max()
            .unwrap_or(0);
        // The baseline: the monitor's first `learn_windows` windows, but never the windows
        // being judged now (a drift must not raise its own threshold).
        let baseline_end = first
            .saturating_add(learn.saturating_sub(1).saturating_mul(window))
            .min(last.saturating_sub(span.saturating_mul(window)));
        let baseline_rows = if learn > 0 && baseline_end >= first {
            monitor::stored_results(store, &m.name, first, baseline_end).await?
        } else {
            vec![]
        };
        let baseline_groups = engine::group_rows(&baseline_rows);
        for (key, history) in &recent {
            for rule in &applicable {
                if !rule.matches(&key.monitor, &key.model, &key.version) {
                    continue;
                }
                let base: Vec<WindowResults> = baseline_groups
                    .get(key)
                    .map(|w| {
                        w.iter()
                            .take(rule.learn_windows as usize)
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                step_group(
                    store,
                    ctx,
                    rule,
                    m,
                    key,
                    history,
                    &base,
                    db::silenced_by(&silences, &key.model, &key.monitor),
                    now,
                    &mut report,
                )
                .await?;
            }
        }
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn step_group(
    store: &Store,
    ctx: &AlertContext,
    rule: &RuleConfig,
    m: &MonitorConfig,
    key: &GroupKey,
    history: &[WindowResults],
    baseline_windows: &[WindowResults],
    silenced: bool,
    now: u32,
    report: &mut EvaluationReport,
) -> Result<(), AlertError> {
    let incidents =
        db::group_incidents(store, &rule.name, &key.monitor, &key.model, &key.version).await?;
    // Windows that belonged to an incident of this group are not healthy: they never teach
    // the learned thresholds (a drift must not raise its own threshold, then or later).
    let healthy: Vec<WindowResults> = baseline_windows
        .iter()
        .filter(|w| {
            !incidents
                .iter()
                .any(|i| w.window_end >= i.first_window_end && w.window_end <= i.last_window_end)
        })
        .cloned()
        .collect();
    let baselines = engine::learn_baselines(&healthy);
    let state = GroupState {
        open: incidents
            .iter()
            .find(|i| i.state != IncidentState::Resolved)
            .cloned(),
        last_resolved_window: incidents
            .iter()
            .filter(|i| i.state == IncidentState::Resolved)
            .map(|i| i.last_window_end)
            .max(),
    };
    let Some(t) = engine::step(
        rule,
        key,
        history,
        &baselines,
        &state,
        rule.cooldown_secs()?,
        silenced,
        now,
    ) else {
        return Ok(());
    };
    match &t {
        Transition::Fired(i) | Transition::Resolved(i) => {
            let resolved = matches!(t, Transition::Resolved(_));
            let event = if resolved { "resolved" } else { "fired" };
            if incidents.iter().any(|x| x.id == i.id && !resolved) {
                // Fired earlier and already resolved within this very window range: nothing.
                return Ok(());
            }
            if !i.silenced {
                let series = top_series(store, m, i).await.unwrap_or_default();
                let n =
                    incident_notification(i, &links(ctx), &series, &format!("{}:{event}", i.id));
                for route in rule_routes(rule, ctx) {
                    report.notifications.extend(
                        outbox::enqueue(store, &ctx.routes, route, &i.id, event, &n).await?,
                    );
                }
            }
            db::put_incident(store, i).await?;
            let detail = format!(
                "{} column(s): {}",
                i.columns.len(),
                i.columns
                    .iter()
                    .map(|c| c.column.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            db::add_event(store, i, event, "vigil", &detail).await?;
            if i.silenced && !resolved {
                db::add_event(
                    store,
                    i,
                    "silenced",
                    "vigil",
                    "a silence matched; no notification",
                )
                .await?;
                report.silenced.push(i.id.clone());
            }
            if resolved {
                tracing::info!(incident = %i.id, "alert resolved");
                report.resolved.push(i.id.clone());
            } else {
                tracing::warn!(incident = %i.id, columns = i.columns.len(), silenced = i.silenced, "alert fired");
                report.fired.push(i.id.clone());
            }
        }
        Transition::Updated(i) => {
            db::put_incident(store, i).await?;
            report.updated.push(i.id.clone());
        }
    }
    Ok(())
}

/// The top column's score over the last 24 windows, for the chart.
async fn top_series(
    store: &Store,
    m: &MonitorConfig,
    i: &engine::Incident,
) -> Result<Vec<(u32, f64)>, AlertError> {
    let Some(top) = i.columns.first() else {
        return Ok(vec![]);
    };
    let window = m.window_secs()?;
    let rows = monitor::stored_results(
        store,
        &m.name,
        i.last_window_end.saturating_sub(24 * window),
        i.last_window_end,
    )
    .await?;
    Ok(rows
        .iter()
        .filter(|r| r.column == top.column && r.model == i.model && r.version == i.version)
        .map(|r| (r.window_end, r.score))
        .collect())
}
