//! Overview: models and versions, traffic and latency per version, failed inferences,
//! rejected events, open alerts, running experiments.

use super::alerts::open_incidents;
use super::shared::{card, empty_state, experiment_link, f, models_of, DOCS_EVENTS};
use super::{Ctx, Dataset, PageOut};
use crate::data;
use crate::html::{self, esc, int, num};
use crate::svg::{self, LineChart, Series};
use crate::{DashboardError, DashboardState};
use std::collections::BTreeMap;
use std::fmt::Write;
use vigil_store::queries;

/// Failed inferences (no prediction) as a count and a share, flagged above 1 %.
fn failed_cell(failed: u64, events: u64) -> String {
    if failed == 0 {
        return "0".into();
    }
    let share = failed as f64 / events.max(1) as f64;
    let text = format!("{} ({})", int(failed), html::share(share, 1));
    if share > 0.01 {
        format!("<span class=\"tag bad\">{text}</span>")
    } else {
        text
    }
}

pub(super) async fn page(st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
    let mut p = PageOut::new("Overview");
    let r = c.range;
    let versions = data::versions(&st.store, r).await?;
    let dead_letters = queries::count_physical_rows(&st.store, "dead_letters").await?;
    let total: u64 = versions.iter().map(|v| v.events).sum();
    let failed: u64 = versions.iter().map(|v| v.failed).sum();
    let models = models_of(&versions);
    let open_alerts = if data::table_exists(&st.store, "alert_incidents").await? {
        Some(open_incidents(st).await?.len())
    } else {
        None
    };
    let running: Vec<_> = st
        .experiments
        .iter()
        .filter(|e| format!("{:?}", e.status).eq_ignore_ascii_case("running"))
        .collect();
    let _ = write!(
        p.body,
        "<section class=\"kpis\">{}{}{}{}{}{}</section>",
        card(
            "kpi-inferences",
            "inferences in range",
            &int(total),
            total as f64
        ),
        card(
            "kpi-failed",
            "failed inferences",
            &html::share(failed as f64 / total.max(1) as f64, 2),
            failed as f64
        ),
        card(
            "kpi-models",
            "models / versions",
            &format!("{} / {}", models.len(), versions.len()),
            models.len() as f64
        ),
        card(
            "kpi-dead-letters",
            "rejected events (all time)",
            &int(dead_letters),
            dead_letters as f64
        ),
        match open_alerts {
            Some(n) => card("kpi-alerts", "open alerts", &int(n as u64), n as f64),
            None => card("kpi-alerts", "open alerts", "n/a", f64::NAN),
        },
        card(
            "kpi-experiments",
            "running experiments",
            &int(running.len() as u64),
            running.len() as f64
        ),
    );
    // Production versions from the deployment audit trail, when it exists.
    let production = production_versions(st).await.unwrap_or_default();
    let version_cell = |v: &queries::VersionCount| {
        if production.get(&v.model) == Some(&v.version) {
            format!(
                "{} <span class=\"tag ok\">production</span>",
                esc(&v.version)
            )
        } else {
            esc(&v.version)
        }
    };
    p.body.push_str("<h2>Models and versions</h2>");
    p.table_with_csv(
        &[
            "model",
            "version",
            "inferences",
            "failed",
            "mean latency (ms)",
            "mean score",
            "last seen (UTC)",
        ],
        versions.iter().map(|v| {
            vec![
                esc(&v.model),
                version_cell(v),
                int(v.events),
                failed_cell(v.failed, v.events),
                num(v.mean_latency_ms),
                num(v.mean_score),
                html::time(v.last_ts),
            ]
        }),
        Dataset::new(
            "versions",
            &[
                "model",
                "version",
                "inferences",
                "failed",
                "mean_latency_ms",
                "mean_score",
                "last_ts",
            ],
            versions.iter().map(|v| {
                vec![
                    v.model.clone(),
                    v.version.clone(),
                    v.events.to_string(),
                    v.failed.to_string(),
                    f(v.mean_latency_ms),
                    f(v.mean_score),
                    v.last_ts.to_string(),
                ]
            }),
        ),
    );
    p.body
        .push_str("<h2>Traffic and health</h2><div class=\"grid\">");
    for model in models.keys() {
        let buckets = data::traffic(&st.store, model, r).await?;
        let mut by_version: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
        for b in &buckets {
            by_version
                .entry(&b.version)
                .or_default()
                .push((b.bucket as f64, b.events as f64 / r.bucket as f64));
        }
        let id = format!("traffic-{model}");
        p.chart(
            "",
            c,
            svg::line_chart(&LineChart {
                id: id.clone(),
                title: format!("{model}: traffic (inferences per second)"),
                y_label: "inferences/s".into(),
                x_time: true,
                series: by_version
                    .into_iter()
                    .map(|(v, pts)| Series {
                        name: v.to_string(),
                        points: pts,
                        band: vec![],
                    })
                    .collect(),
                hlines: vec![],
            }),
            Dataset::new(
                id,
                &["bucket", "version", "events", "mean_latency_ms"],
                buckets.iter().map(|b| {
                    vec![
                        b.bucket.to_string(),
                        b.version.clone(),
                        b.events.to_string(),
                        f(b.mean_latency_ms),
                    ]
                }),
            ),
        );
        let lat = data::latency_buckets(&st.store, model, r).await?;
        let mut p95: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
        for b in &lat {
            p95.entry(&b.version)
                .or_default()
                .push((b.bucket as f64, b.p95));
        }
        let id = format!("latency-{model}");
        p.chart(
            "",
            c,
            svg::line_chart(&LineChart {
                id: id.clone(),
                title: format!("{model}: latency p95 (ms)"),
                y_label: "ms".into(),
                x_time: true,
                series: p95
                    .into_iter()
                    .map(|(v, pts)| Series {
                        name: format!("{v} p95"),
                        points: pts,
                        band: vec![],
                    })
                    .collect(),
                hlines: vec![],
            }),
            Dataset::new(
                id,
                &["bucket", "version", "events", "p50_ms", "p95_ms"],
                lat.iter().map(|b| {
                    vec![
                        b.bucket.to_string(),
                        b.version.clone(),
                        b.events.to_string(),
                        f(b.p50),
                        f(b.p95),
                    ]
                }),
            ),
        );
    }
    if models.is_empty() {
        p.push(empty_state(
            "No inferences in this time range.",
            "Send inference events (or run `vigil demo`), or widen the range.",
            DOCS_EVENTS,
        ));
    }
    p.body.push_str("</div><h2>Running experiments</h2>");
    let exposures = data::exposures(&st.store, r).await?;
    let mut rows = Vec::new();
    for e in &running {
        let arms: Vec<String> = e
            .arms
            .iter()
            .map(|a| {
                let units = exposures
                    .iter()
                    .find(|x| x.experiment == e.key && x.arm == a.name)
                    .map(|x| x.units)
                    .unwrap_or(0);
                format!(
                    "{} → {} ({} units)",
                    esc(&a.name),
                    esc(&a.model_version),
                    int(units)
                )
            })
            .collect();
        rows.push(vec![
            experiment_link(c, &e.key),
            esc(e.model.as_deref().unwrap_or("")),
            arms.join("<br>"),
        ]);
    }
    p.table(
        "running-experiments",
        &["experiment", "model", "arms (exposed units in range)"],
        rows,
    );
    if open_alerts.is_some() {
        let inc = open_incidents(st).await?;
        p.body.push_str("<h2>Open alerts</h2>");
        p.table(
            "open-alerts",
            &["severity", "model", "monitor", "state", "opened (UTC)"],
            inc.iter().map(|i| {
                vec![
                    esc(&i.severity),
                    esc(&i.model),
                    esc(&i.monitor),
                    esc(&i.state),
                    html::time(i.opened_at),
                ]
            }),
        );
    }
    let trail = recent_deployments(st).await?;
    p.body
        .push_str("<h2>Deployments (audit trail, latest first)</h2>");
    p.table(
        "deployments",
        &["at (UTC)", "model", "action", "change", "by", "reason"],
        trail.iter().map(|d| {
            vec![
                html::time(d.ts),
                esc(&d.model),
                esc(&d.action),
                format!("{} → {}", esc(&d.from_version), esc(&d.to_version)),
                esc(&d.actor),
                esc(&d.reason),
            ]
        }),
    );
    Ok(p)
}

/// One entry of the deployment audit trail.
#[derive(clickhouse::Row, serde::Deserialize)]
struct Deployment {
    ts: u32,
    model: String,
    action: String,
    from_version: String,
    to_version: String,
    actor: String,
    reason: String,
}

/// The latest promotions and rollbacks (ramp steps included), newest first.
async fn recent_deployments(st: &DashboardState) -> Result<Vec<Deployment>, DashboardError> {
    if !data::table_exists(&st.store, "deployments").await? {
        return Ok(Vec::new());
    }
    Ok(st
        .store
        .fetch(&format!(
            "SELECT toUInt32(ts) AS ts, toString(model) AS model, toString(action) AS action,
                    toString(from_version) AS from_version, toString(to_version) AS to_version,
                    toString(actor) AS actor, toString(reason) AS reason
             FROM {} ORDER BY ts_ms DESC LIMIT 10",
            st.store.table("deployments")
        ))
        .await?)
}

/// The production version per model: the latest in the deployment audit trail (migration 4),
/// else the gateway's configured control.
async fn production_versions(
    st: &DashboardState,
) -> Result<BTreeMap<String, String>, DashboardError> {
    // The gateway's configuration, then every promotion and rollback since.
    let mut production = st.controls.clone();
    if !data::table_exists(&st.store, "deployments").await? {
        return Ok(production);
    }
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct P {
        model: String,
        version: String,
    }
    let rows: Vec<P> = st
        .store
        .fetch(&format!(
            "SELECT toString(model) AS model, toString(argMax(to_version, ts_ms)) AS version
             FROM {} GROUP BY model ORDER BY model",
            st.store.table("deployments")
        ))
        .await?;
    production.extend(rows.into_iter().map(|p| (p.model, p.version)));
    Ok(production)
}
