//! ROI: incremental value per model version and per experiment arm, with the value model in
//! plain words (`crate::roi` computes; this page draws).

use super::shared::{docs_link, empty_state, f, DOCS_EVENTS, DOCS_EXPERIMENTS, DOCS_ROI};
use super::{Ctx, Dataset, PageOut};
use crate::data::{self, Range};
use crate::html::{self, esc, int, money, num};
use crate::roi::{self, ArmTotals};
use crate::svg::{self, HLine, LineChart, Series};
use crate::{DashboardError, DashboardState};
use std::collections::BTreeMap;
use std::fmt::Write;
use vigil_store::sql_string;

fn control_version(st: &DashboardState, model: &str, versions: &[String]) -> Option<String> {
    st.roi
        .control
        .get(model)
        .cloned()
        .or_else(|| versions.iter().min().cloned())
}

fn value_model_box(st: &DashboardState) -> String {
    let cfg = &st.roi;
    let mut items = String::new();
    for (name, v) in &cfg.value_per_outcome {
        let _ = write!(
            items,
            "<li>each unit of outcome <code>{}</code> is worth <strong>{}</strong></li>",
            esc(name),
            money(*v, &cfg.currency)
        );
    }
    if items.is_empty() {
        let _ = write!(
            items,
            "<li>no outcome has a value yet: add <code>[roi.value_per_outcome]</code> to <code>vigil.toml</code> \
             (e.g. <code>churned = -120.0</code>, <code>revenue = 1.0</code>); docs: {}</li>",
            docs_link(DOCS_ROI).into_string()
        );
    }
    for (k, h) in &cfg.gpu_hours_per_1k {
        let _ = write!(
            items,
            "<li><code>{}</code> uses {} GPU hours per 1,000 inferences at {} per GPU hour</li>",
            esc(k),
            num(*h),
            money(cfg.gpu_hour_cost, &cfg.currency)
        );
    }
    format!(
        "<section class=\"card\" id=\"value-model\"><h2>How these numbers are computed</h2>\
         <p>The value model comes from <code>[roi]</code> in <code>vigil.toml</code> (currency {cur}):</p><ul>{items}\
         <li>inference cost: the events' own <code>cost</code> when they carry one, else {icost} per 1,000 inferences</li></ul>\
         <p><strong>Incremental value</strong> of a version = (average value per unit with that version − with the control version) \
         × units the version served − (its cost per 1,000 inferences − the control's) × its inferences ÷ 1,000. \
         The shaded band and the range in brackets are the 95 % interval of the uplift (Welch), so a range that crosses zero means \
         “not yet distinguishable from no effect”.</p></section>",
        cur = esc(&cfg.currency),
        icost = money(cfg.inference_cost_per_1k, &cfg.currency)
    )
}

pub(super) async fn page(st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
    let mut p = PageOut::new("ROI");
    // Units are counted per hour and per day (the unit rollups): the whole page starts on the
    // hour, or on the UTC day for ranges of a day or more, so its numbers agree.
    let r = Range {
        since: data::roi_since(c.range),
        ..c.range
    };
    let cur = st.roi.currency.clone();
    p.body.push_str(&value_model_box(st));
    if r.since > 0 {
        let whole = if data::roi_by_day(c.range) {
            "days"
        } else {
            "hours"
        };
        let _ = write!(
            p.body,
            "<p class=\"hint\" id=\"roi-from\">ROI counts whole {whole}: units and outcomes from {} UTC on.</p>",
            html::time(r.since)
        );
    }
    // Every model's units in one query (one pass over the unit rollups). The models and
    // versions come from its rows: every inference belongs to a unit, so a version served in
    // the range has units there (a separate count per version cost the page another read of
    // the minute rollups and the raw tail).
    let all_buckets = data::roi_buckets(&st.store, &st.roi, c.range).await?;
    let mut models: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for b in &all_buckets {
        let versions = models.entry(b.model.clone()).or_default();
        if !versions.contains(&b.version) {
            versions.push(b.version.clone());
        }
    }
    for versions in models.values_mut() {
        versions.sort();
    }
    if models.is_empty() {
        p.push(empty_state(
            "No inferences in this time range.",
            "Send inference events (or run `vigil demo`), or widen the range.",
            DOCS_EVENTS,
        ));
    }
    let mut cost_rows = Vec::new();
    for (model, vs) in &models {
        let Some(control) = control_version(st, model, vs) else {
            continue;
        };
        let mut per_version: BTreeMap<String, ArmTotals> = BTreeMap::new();
        let mut by_bucket: BTreeMap<u32, BTreeMap<String, ArmTotals>> = BTreeMap::new();
        for b in all_buckets.iter().filter(|b| b.model == *model) {
            per_version
                .entry(b.version.clone())
                .or_default()
                .add(&b.totals());
            by_bucket
                .entry(b.bucket)
                .or_default()
                .insert(b.version.clone(), b.totals());
        }
        let _ = write!(p.body, "<h2>{}</h2>", esc(model));
        for (v, t) in &per_version {
            let cpk = t.inference_cost_per_1k(&st.roi) + st.roi.gpu_cost_per_1k(model, v);
            cost_rows.push(vec![
                esc(model),
                esc(v),
                int(t.inferences),
                int(t.units),
                format!(
                    "<span id=\"cost1k-{}-{}\" data-value=\"{}\">{}</span>",
                    esc(model),
                    esc(v),
                    cpk,
                    money(cpk, &cur)
                ),
                format!(
                    "<span id=\"value-per-unit-{}-{}\" data-value=\"{}\">{}</span>",
                    esc(model),
                    esc(v),
                    t.mean_value(),
                    money(t.mean_value(), &cur)
                ),
            ]);
        }
        let control_totals = per_version.get(&control).copied().unwrap_or_default();
        let mut any = false;
        for (v, t) in &per_version {
            if *v == control {
                continue;
            }
            any = true;
            let roi = roi::incremental_value(&st.roi, model, &control, &control_totals, v, t);
            let verdict = if !roi.estimable {
                "not enough data to put an interval on it yet"
            } else if roi.incremental_value_ci[0] > 0.0 {
                "a gain: the whole 95 % range is above zero"
            } else if roi.incremental_value_ci[1] < 0.0 {
                "a loss: the whole 95 % range is below zero"
            } else {
                "not yet distinguishable from no effect"
            };
            let _ = write!(
                p.body,
                "<section class=\"card roi\" id=\"roi-{m}-{v}\" data-model=\"{m}\" data-version=\"{v}\" data-control=\"{cv}\" \
                 data-incremental-value=\"{iv}\" data-ci-low=\"{lo}\" data-ci-high=\"{hi}\" data-uplift=\"{up}\" \
                 data-incremental-cost=\"{ic}\" data-units=\"{units}\" data-inferences=\"{inf}\">\
                 <h3>{v} vs {cv} (control)</h3>\
                 <p class=\"big\"><span class=\"iv\">{ivs}</span> <span class=\"ci\">(95 %: {los} to {his})</span></p>\
                 <p>In plain words: over the selected range, serving <strong>{v}</strong> instead of <strong>{cv}</strong> to \
                 {units_s} units is worth {ivs}; {verdict}.</p>\
                 <dl><dt>uplift per unit</dt><dd>{ups} (95 %: {ulo} to {uhi})</dd>\
                 <dt>gross value</dt><dd>{gross}</dd>\
                 <dt>incremental serving cost</dt><dd>{ics} ({cpkc} → {cpkt} per 1k inferences, {infs} inferences)</dd></dl></section>",
                m = esc(model),
                v = esc(v),
                cv = esc(&control),
                iv = roi.incremental_value,
                lo = roi.incremental_value_ci[0],
                hi = roi.incremental_value_ci[1],
                up = roi.uplift_per_unit,
                ic = roi.incremental_cost,
                units = roi.units,
                inf = roi.inferences,
                ivs = money(roi.incremental_value, &cur),
                los = money(roi.incremental_value_ci[0], &cur),
                his = money(roi.incremental_value_ci[1], &cur),
                units_s = int(roi.units),
                ups = money(roi.uplift_per_unit, &cur),
                ulo = money(roi.uplift_ci[0], &cur),
                uhi = money(roi.uplift_ci[1], &cur),
                gross = money(roi.gross_value, &cur),
                ics = money(roi.incremental_cost, &cur),
                cpkc = money(roi.cost_per_1k_control, &cur),
                cpkt = money(roi.cost_per_1k_candidate, &cur),
                infs = int(roi.inferences),
            );
            let series_in: Vec<(u32, ArmTotals, ArmTotals)> = by_bucket
                .iter()
                .map(|(b, m)| {
                    (
                        *b,
                        m.get(&control).copied().unwrap_or_default(),
                        m.get(v).copied().unwrap_or_default(),
                    )
                })
                .collect();
            let cum = roi::cumulative(&st.roi, model, &control, v, &series_in);
            let id = format!("roi-cumulative-{model}-{v}");
            p.chart(
                "roi",
                c,
                svg::line_chart(&LineChart {
                    id: id.clone(),
                    title: format!(
                        "{model}: cumulative incremental value of {v} vs {control} ({cur})"
                    ),
                    y_label: cur.clone(),
                    x_time: true,
                    series: vec![Series {
                        name: format!("{v} vs {control}"),
                        points: cum
                            .iter()
                            .map(|(b, x)| (*b as f64, x.incremental_value))
                            .collect(),
                        band: cum
                            .iter()
                            .filter(|(_, x)| x.estimable)
                            .map(|(b, x)| {
                                (
                                    *b as f64,
                                    x.incremental_value_ci[0],
                                    x.incremental_value_ci[1],
                                )
                            })
                            .collect(),
                    }],
                    hlines: vec![HLine {
                        y: 0.0,
                        label: "break-even".into(),
                    }],
                }),
                Dataset::new(
                    id,
                    &[
                        "bucket",
                        "units",
                        "inferences",
                        "uplift_per_unit",
                        "incremental_cost",
                        "incremental_value",
                        "ci_low",
                        "ci_high",
                    ],
                    cum.iter().map(|(b, x)| {
                        vec![
                            b.to_string(),
                            x.units.to_string(),
                            x.inferences.to_string(),
                            f(x.uplift_per_unit),
                            f(x.incremental_cost),
                            f(x.incremental_value),
                            f(x.incremental_value_ci[0]),
                            f(x.incremental_value_ci[1]),
                        ]
                    }),
                ),
            );
        }
        if !any {
            p.push(empty_state(
                &format!(
                    "Only the control version {control} served traffic in this range: nothing to compare."
                ),
                "Serve another version next to it (an experiment or a ramp), or set the control with `[roi] control`.",
                DOCS_ROI,
            ));
        }
    }
    p.body
        .push_str("<h2>Cost per 1,000 inferences and value per unit</h2>");
    p.table(
        "cost-per-1k",
        &[
            "model",
            "version",
            "inferences",
            "units",
            "cost per 1k inferences",
            "value per unit",
        ],
        cost_rows,
    );
    // Per experiment.
    p.body.push_str("<h2>Per experiment</h2>");
    if st.experiments.is_empty() {
        p.push(empty_state(
            "No experiments configured.",
            "Configure [[experiments]] in vigil.toml.",
            DOCS_EXPERIMENTS,
        ));
    }
    for e in &st.experiments {
        let Some(control) = e.arms.first() else {
            continue;
        };
        let arms =
            data::experiment_value_buckets(&st.store, &st.roi, &e.key, e.model.as_deref(), r)
                .await?;
        let mut tot: BTreeMap<String, ArmTotals> = BTreeMap::new();
        for a in &arms {
            let t = tot.entry(a.arm.clone()).or_default();
            t.units += a.units;
            t.value_sum += a.value_sum;
            t.value_sumsq += a.value_sumsq;
        }
        let served = experiment_serving(st, &e.key, r).await?;
        for (arm, t) in tot.iter_mut() {
            if let Some((n, cost, costed)) = served.get(arm) {
                t.inferences = *n;
                t.cost = *cost;
                t.costed = *costed;
            }
        }
        let ct = tot.get(&control.name).copied().unwrap_or_default();
        let model = e.model.clone().unwrap_or_default();
        let mut rows = Vec::new();
        for a in e.arms.iter().skip(1) {
            let t = tot.get(&a.name).copied().unwrap_or_default();
            let x = roi::incremental_value(
                &st.roi,
                &model,
                &control.model_version,
                &ct,
                &a.model_version,
                &t,
            );
            rows.push(vec![
                esc(&e.key),
                format!(
                    "{} ({}) vs {} ({})",
                    esc(&a.name),
                    esc(&a.model_version),
                    esc(&control.name),
                    esc(&control.model_version)
                ),
                int(t.units),
                format!(
                    "<span id=\"roi-exp-{}-{}\" data-value=\"{}\">{}</span> (95 %: {} to {})",
                    esc(&e.key),
                    esc(&a.name),
                    x.incremental_value,
                    money(x.incremental_value, &cur),
                    money(x.incremental_value_ci[0], &cur),
                    money(x.incremental_value_ci[1], &cur)
                ),
                money(x.incremental_cost, &cur),
            ]);
        }
        p.table(
            &format!("roi-exp-{}", e.key),
            &[
                "experiment",
                "arm vs control",
                "units",
                "incremental value",
                "incremental cost",
            ],
            rows,
        );
    }
    Ok(p)
}

/// Inferences and costs per arm of an experiment (the gateway tags inferences with it).
async fn experiment_serving(
    st: &DashboardState,
    key: &str,
    r: Range,
) -> Result<BTreeMap<String, (u64, f64, u64)>, DashboardError> {
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct S {
        arm: String,
        n: u64,
        spent: f64,
        costed: u64,
    }
    let rows: Vec<S> = st
        .store
        .fetch(&format!(
            "SELECT toString(variant) AS arm, toUInt64(count()) AS n, toFloat64(sum(ifNull(cost, 0))) AS spent,
                    toUInt64(sum(isNotNull(cost))) AS costed
             FROM {} FINAL WHERE experiment = {} AND ts >= toDateTime({}) AND ts < toDateTime({})
             GROUP BY variant",
            st.store.table("inference_events"),
            sql_string(key),
            r.since,
            r.until
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|s| (s.arm, (s.n, s.spent, s.costed)))
        .collect())
}
