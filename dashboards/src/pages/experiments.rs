//! Experiments: arms, weights, units and exposures, the SRM check, lift per metric (fixed
//! horizon and sequential), chance to win, the decision, the confidence sequence over time,
//! and the Promote / Roll back forms (admin).

use super::shared::{empty_state, experiment_link, f, DOCS_EXPERIMENTS, DOCS_EXPERIMENT_ANALYSIS};
use super::{Ctx, Dataset, PageOut};
use crate::data;
use crate::html::{self, esc, int, num, pct};
use crate::svg::{self, HLine, LineChart, Series};
use crate::{DashboardError, DashboardState};
use std::collections::BTreeMap;
use std::fmt::Write;

pub(super) async fn page(st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
    use vigil_experimenter::warehouse::{self, TimeRange};
    let mut p = PageOut::new("Experiments");
    let r = c.range;
    let exposures = data::exposures(&st.store, r).await?;
    let mut rows = Vec::new();
    for e in &st.experiments {
        let units: u64 = exposures
            .iter()
            .filter(|x| x.experiment == e.key)
            .map(|x| x.units)
            .sum();
        rows.push(vec![
            experiment_link(c, &e.key),
            esc(e.model.as_deref().unwrap_or("")),
            esc(&format!("{:?}", e.status).to_lowercase()),
            e.arms
                .iter()
                .map(|a| format!("{} → {}", esc(&a.name), esc(&a.model_version)))
                .collect::<Vec<_>>()
                .join("<br>"),
            int(units),
        ]);
    }
    for x in &exposures {
        if !st.experiments.iter().any(|e| e.key == x.experiment)
            && !rows.iter().any(|r| r[0].contains(&esc(&x.experiment)))
        {
            rows.push(vec![
                esc(&x.experiment),
                String::new(),
                "not configured".into(),
                String::new(),
                String::new(),
            ]);
        }
    }
    p.table(
        "experiments",
        &["experiment", "model", "status", "arms", "exposed units"],
        rows,
    );
    let Some(key) = c
        .get("experiment")
        .map(str::to_string)
        .or_else(|| st.experiments.first().map(|e| e.key.clone()))
    else {
        p.push(empty_state(
            "No experiments configured.",
            "Configure [[experiments]] in vigil.toml.",
            DOCS_EXPERIMENTS,
        ));
        return Ok(p);
    };
    let Some(exp) = st.experiments.iter().find(|e| e.key == key) else {
        return Err(DashboardError::NotFound(format!(
            "experiment `{key}` is not configured"
        )));
    };
    let _ = write!(p.body, "<h2 id=\"experiment-title\">{}</h2>", esc(&exp.key));
    if let Some(d) = &exp.description {
        let _ = write!(p.body, "<p>{}</p>", esc(d));
    }
    let range = TimeRange {
        since: Some(r.since),
        until: Some(r.until),
    };
    let report = match warehouse::analyze_experiment(&st.store, exp, None, range).await {
        Ok(rep) => rep,
        Err(warehouse::WarehouseError::Store(e)) => return Err(e.into()),
        Err(e) => {
            p.push(empty_state(
                &e.to_string(),
                "Its exposures (and outcomes) must be in the store for this range: the gateway records them, or `vigil ingest --kind exposure`.",
                DOCS_EXPERIMENT_ANALYSIS,
            ));
            p.body.push_str(&actions_forms(c, exp, None));
            return Ok(p);
        }
    };
    // Arms and exposures.
    let arm_rows: Vec<Vec<String>> = report
        .arms
        .iter()
        .map(|a| {
            let n_exp = exposures
                .iter()
                .find(|x| x.experiment == key && x.arm == a.name)
                .map(|x| x.exposures)
                .unwrap_or(0);
            vec![
                format!(
                    "<span id=\"arm-{}\" data-units=\"{}\">{}</span>",
                    esc(&a.name),
                    a.units,
                    esc(&a.name)
                ),
                esc(&a.model_version),
                html::share(a.weight, 1),
                int(a.units),
                int(n_exp),
            ]
        })
        .collect();
    if report.srm_mismatch {
        let _ = write!(
            p.body,
            "<p class=\"banner error\" id=\"srm\" data-mismatch=\"true\">Sample ratio mismatch (p = {:.2e}): the units per arm do not match the configured weights. Fix assignment or exposure logging before trusting any result below.</p>",
            report.srm_p_value
        );
    } else {
        let _ = write!(
            p.body,
            "<p class=\"banner ok\" id=\"srm\" data-mismatch=\"false\">No sample ratio mismatch (SRM p = {}).</p>",
            html::fixed(report.srm_p_value, 3)
        );
    }
    p.table(
        "arms",
        &["arm", "model version", "weight", "units", "exposures"],
        arm_rows,
    );
    // Lift per metric.
    let mut lift_rows = Vec::new();
    let mut lift_data = Vec::new();
    for m in &report.metrics {
        for (arm, cmp) in &m.comparisons {
            let fr = &cmp.frequentist;
            let sq = &cmp.sequential;
            lift_rows.push(vec![
                format!(
                    "{} <span class=\"tag\">{}</span>",
                    esc(&m.metric),
                    esc(&format!("{:?}", m.role).to_lowercase())
                ),
                esc(arm),
                format!("{} → {}", num(cmp.control_mean), num(cmp.mean)),
                format!(
                    "<span class=\"lift\" data-value=\"{}\">{}</span> ({} to {})",
                    fr.expected,
                    pct(fr.expected),
                    pct(fr.ci[0]),
                    pct(fr.ci[1])
                ),
                format!(
                    "{} ({} to {})",
                    pct(sq.expected),
                    pct(sq.ci[0]),
                    pct(sq.ci[1])
                ),
                html::p_value(fr.p_value),
                format!(
                    "<span class=\"ctw\" data-value=\"{}\">{}</span>",
                    cmp.bayesian.chance_to_win,
                    html::share(cmp.bayesian.chance_to_win, 1)
                ),
            ]);
            lift_data.push(vec![
                m.metric.clone(),
                arm.clone(),
                f(cmp.control_mean),
                f(cmp.mean),
                f(fr.expected),
                f(fr.ci[0]),
                f(fr.ci[1]),
                f(fr.p_value),
                f(sq.expected),
                f(sq.ci[0]),
                f(sq.ci[1]),
                f(cmp.bayesian.chance_to_win),
            ]);
        }
    }
    p.body
        .push_str("<h3>Lift per metric (relative to control, 95 %)</h3>");
    p.table_with_csv(
        &[
            "metric",
            "arm",
            "mean (control → arm)",
            "lift, fixed horizon",
            "lift, sequential (always valid)",
            "p-value",
            "chance to win",
        ],
        lift_rows,
        Dataset::new(
            "lifts",
            &[
                "metric",
                "arm",
                "control_mean",
                "mean",
                "lift",
                "ci_low",
                "ci_high",
                "p_value",
                "seq_lift",
                "seq_ci_low",
                "seq_ci_high",
                "chance_to_win",
            ],
            lift_data,
        ),
    );
    // Decision.
    for (arm, d) in &report.decisions {
        let verdict = format!("{:?}", d.verdict);
        let _ = write!(
            p.body,
            "<div class=\"card decision\" id=\"decision-{}\" data-verdict=\"{}\"><h3>Decision for {}: {}</h3><ul>{}</ul></div>",
            esc(arm),
            esc(&verdict.to_lowercase()),
            esc(arm),
            esc(&verdict),
            d.reasons.iter().map(|r| format!("<li>{}</li>", esc(r))).collect::<String>()
        );
    }
    // The sequential confidence sequence over time (re-analysed at cut-offs).
    let first = exposures
        .iter()
        .filter(|x| x.experiment == key)
        .map(|x| x.last_ts)
        .max()
        .unwrap_or(r.until);
    let ext_lo = data::extent(&st.store, r.since, r.until, r.rolled_until)
        .await?
        .lo
        .max(r.since);
    let lo = ext_lo.min(first);
    let hi = first.max(lo + 1);
    let steps = 8u32;
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    let mut rows_seq = Vec::new();
    for i in 1..=steps {
        let cut = lo + (hi - lo) * i / steps + 1;
        let Ok(rep) = warehouse::analyze_experiment(
            &st.store,
            exp,
            None,
            TimeRange {
                since: Some(r.since),
                until: Some(cut),
            },
        )
        .await
        else {
            continue;
        };
        for (arm, cmp) in &rep.comparisons {
            let s = series.entry(arm.clone()).or_insert_with(|| Series {
                name: format!("{arm} vs control"),
                ..Series::default()
            });
            let sq = &cmp.sequential;
            if sq.not_estimable.is_some() {
                continue;
            }
            s.points.push((cut as f64, sq.expected * 100.0));
            s.band
                .push((cut as f64, sq.ci[0] * 100.0, sq.ci[1] * 100.0));
            rows_seq.push(vec![
                cut.to_string(),
                arm.clone(),
                cmp.units.to_string(),
                f(sq.expected),
                f(sq.ci[0]),
                f(sq.ci[1]),
            ]);
        }
    }
    let id = format!("sequential-{key}");
    let primary = report
        .metrics
        .first()
        .map(|m| m.metric.clone())
        .unwrap_or_default();
    p.chart(
        "experiments",
        c,
        svg::line_chart(&LineChart {
            id: id.clone(),
            title: format!("{key}: lift on {primary} over time, with the always-valid 95 % confidence sequence"),
            y_label: "% lift".into(),
            x_time: true,
            series: series.into_values().collect(),
            hlines: vec![HLine { y: 0.0, label: "no effect".into() }],
        }),
        Dataset::new(id, &["until", "arm", "units", "lift", "ci_low", "ci_high"], rows_seq),
    );
    p.body
        .push_str(&actions_forms(c, exp, report.winner.as_deref()));
    Ok(p)
}

fn actions_forms(
    c: &Ctx,
    exp: &vigil_experimenter::experiment::ExperimentConfig,
    winner: Option<&str>,
) -> String {
    let model = exp.model.clone().unwrap_or_default();
    if !c.admin() {
        return "<p class=\"hint\" id=\"actions-hidden\">Promote and roll back need the admin role.</p>".into();
    }
    let mut opts = String::new();
    for a in exp.arms.iter().skip(1) {
        let sel = if Some(a.name.as_str()) == winner {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            opts,
            "<option value=\"{n}\"{sel}>{n} ({v})</option>",
            n = esc(&a.name),
            v = esc(&a.model_version)
        );
    }
    format!(
        "<section class=\"card actions\"><h3>Actions</h3>\
         <form method=\"post\" action=\"/ui/experiments/{k}/promote\" id=\"promote-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Arm <select name=\"arm\" id=\"promote-arm\">{opts}</select></label>\
         <label>Reason <input name=\"reason\" id=\"promote-reason\" required maxlength=\"500\"></label>\
         <button type=\"submit\" id=\"promote\" class=\"danger\">Promote…</button></form>\
         <form method=\"post\" action=\"/ui/models/{m}/rollback\" id=\"rollback-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"experiment\" value=\"{k}\">\
         <label>Reason <input name=\"reason\" id=\"rollback-reason\" required maxlength=\"500\"></label>\
         <button type=\"submit\" id=\"rollback\" class=\"danger\">Roll back {m}…</button></form>\
         <p class=\"hint\">Both ask for confirmation first and say exactly what will change.</p></section>",
        k = esc(&exp.key),
        m = esc(&model),
        csrf = esc(&c.session.csrf),
    )
}
