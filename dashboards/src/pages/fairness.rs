//! Fairness: selection rate per group over time with Wilson bands, the gap to the highest
//! group, the four-fifths rule, TPR/FPR and a Fairlearn-style summary.

use super::shared::{empty_state, first_model_with, pick_model, tabs, DOCS_EVENTS};
use super::{Ctx, Dataset, PageOut};
use crate::data;
use crate::html::{self, esc, int, num};
use crate::svg::{self, LineChart, Series};
use crate::{DashboardError, DashboardState};
use std::collections::BTreeMap;
use std::fmt::Write;

pub(super) async fn page(st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
    use vigil_analyzer_compat::{fairness_from_counts, wilson_interval, GroupCounts, FOUR_FIFTHS};
    let mut p = PageOut::new("Fairness");
    let r = c.range;
    let versions = data::versions(&st.store, r).await?;
    // By default the first model whose events carry attributes (groups to compare).
    let with_attrs = first_model_with(c, &versions, |m| async move {
        let names = data::feature_names(&st.store, &m, r).await?;
        Ok((!names.attrs.is_empty()).then_some(names))
    })
    .await?;
    let default = with_attrs.as_ref().map(|(m, _)| m.clone());
    let Some(model) = pick_model(&mut p, c, "fairness", &versions, default) else {
        return Ok(p);
    };
    let names = match with_attrs {
        Some((m, names)) if m == model => names,
        _ => data::feature_names(&st.store, &model, r).await?,
    };
    let Some(attr) = c
        .get("attribute")
        .map(str::to_string)
        .or_else(|| names.attrs.first().cloned())
    else {
        p.push(empty_state(
            "This model's events carry no `attributes` (sensitive or segment attributes), so there are no groups to compare.",
            "Send `attributes` with each inference event (e.g. region, age band).",
            DOCS_EVENTS,
        ));
        return Ok(p);
    };
    p.body.push_str(&tabs(
        c,
        "fairness",
        &[("model", &model)],
        "attribute",
        &names.attrs,
        &attr,
        "by ",
    ));
    let buckets = data::fairness_buckets(&st.store, &model, &attr, r).await?;
    let mut totals: BTreeMap<String, data::GroupBucket> = BTreeMap::new();
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    for b in &buckets {
        let t = totals
            .entry(b.grp.clone())
            .or_insert_with(|| data::GroupBucket {
                bucket: 0,
                grp: b.grp.clone(),
                n: 0,
                selected: 0,
                labelled: 0,
                positives: 0,
                true_pos: 0,
                false_pos: 0,
            });
        t.n += b.n;
        t.selected += b.selected;
        t.labelled += b.labelled;
        t.positives += b.positives;
        t.true_pos += b.true_pos;
        t.false_pos += b.false_pos;
        let s = series.entry(b.grp.clone()).or_insert_with(|| Series {
            name: b.grp.clone(),
            ..Series::default()
        });
        let rate = b.selected as f64 / b.n.max(1) as f64;
        let (lo, hi) = wilson_interval(b.selected, b.n, 1.959963984540054);
        s.points.push((b.bucket as f64, rate * 100.0));
        s.band.push((b.bucket as f64, lo * 100.0, hi * 100.0));
    }
    let id = format!("fairness-selection-{model}-{attr}");
    p.chart(
        "fairness",
        c,
        svg::line_chart(&LineChart {
            id: id.clone(),
            title: format!("{model}: selection rate (predicted positive) by {attr}, with 95 % Wilson intervals"),
            y_label: "% predicted positive".into(),
            x_time: true,
            series: series.into_values().collect(),
            hlines: vec![],
        }),
        Dataset::new(
            id,
            &["bucket", "group", "inferences", "selected", "labelled", "positives", "true_pos", "false_pos"],
            buckets.iter().map(|b| {
                vec![
                    b.bucket.to_string(),
                    b.grp.clone(),
                    b.n.to_string(),
                    b.selected.to_string(),
                    b.labelled.to_string(),
                    b.positives.to_string(),
                    b.true_pos.to_string(),
                    b.false_pos.to_string(),
                ]
            }),
        ),
    );
    // Gaps against the group with the highest selection rate.
    let rate = |g: &data::GroupBucket| g.selected as f64 / g.n.max(1) as f64;
    let best = totals.values().map(rate).fold(f64::NEG_INFINITY, f64::max);
    let best_group = totals.values().find(|g| rate(g) == best).cloned();
    let min_group = 30u64;
    let mut rows = Vec::new();
    let mut violated = Vec::new();
    for g in totals.values() {
        let sr = rate(g);
        let (lo, hi) = wilson_interval(g.selected, g.n, 1.959963984540054);
        let (gap, gap_lo, gap_hi) = match &best_group {
            Some(b) => {
                let (p1, n1, p2, n2) = (sr, g.n.max(1) as f64, rate(b), b.n.max(1) as f64);
                let se = (p1 * (1.0 - p1) / n1 + p2 * (1.0 - p2) / n2).sqrt();
                let d = p1 - p2;
                (d, d - 1.96 * se, d + 1.96 * se)
            }
            None => (0.0, 0.0, 0.0),
        };
        let ratio = if best > 0.0 { sr / best } else { f64::NAN };
        let flag = g.n >= min_group && ratio.is_finite() && ratio < FOUR_FIFTHS;
        if flag {
            violated.push(g.grp.clone());
        }
        // Rates over known outcomes: without any, a 0 % would be a claim the data cannot make.
        let outcome_rate = |x: f64| {
            if g.labelled == 0 {
                "no outcomes".to_string()
            } else {
                html::share(x, 2)
            }
        };
        let tpr = g.true_pos as f64 / g.positives.max(1) as f64;
        let fpr = g.false_pos as f64 / (g.labelled.saturating_sub(g.positives)).max(1) as f64;
        rows.push(vec![
            esc(&g.grp),
            int(g.n),
            format!("{} ({}–{})", html::share(sr, 2), pp(lo), pp(hi)),
            // A signed difference (class `effect`), not a share.
            format!(
                "<span class=\"effect\">{} pp ({} to {})</span>",
                html::signed(gap * 100.0, 2),
                html::signed(gap_lo * 100.0, 2),
                html::signed(gap_hi * 100.0, 2)
            ),
            format!(
                "<span class=\"ratio\" data-value=\"{ratio}\">{}</span>{}",
                num(ratio),
                if flag {
                    " <span class=\"tag bad\">below 4/5</span>"
                } else {
                    ""
                }
            ),
            outcome_rate(tpr),
            outcome_rate(fpr),
        ]);
    }
    let banner = if violated.is_empty() {
        format!("<p class=\"banner ok\" id=\"four-fifths\" data-violated=\"false\">Four-fifths rule holds for {}: every group's selection rate is at least 80 % of the highest group's.</p>", esc(&attr))
    } else {
        format!(
            "<p class=\"banner error\" id=\"four-fifths\" data-violated=\"true\">Four-fifths rule flag for {}: {} selected at less than 80 % of the rate of {}.</p>",
            esc(&attr),
            esc(&violated.join(", ")),
            esc(best_group.as_ref().map(|b| b.grp.as_str()).unwrap_or(""))
        )
    };
    p.body.push_str(&banner);
    p.table(
        "fairness-groups",
        &[
            "group",
            "inferences",
            "selection rate (95 %)",
            "gap to highest group (95 %)",
            "ratio to highest",
            "true positive rate",
            "false positive rate",
        ],
        rows,
    );
    // Fairlearn-style summary on the labelled rows.
    let counts: BTreeMap<String, GroupCounts> = totals
        .values()
        .map(|g| {
            let fneg = g.positives.saturating_sub(g.true_pos);
            let tneg = g
                .labelled
                .saturating_sub(g.positives)
                .saturating_sub(g.false_pos);
            (
                g.grp.clone(),
                GroupCounts {
                    true_positives: g.true_pos,
                    false_positives: g.false_pos,
                    true_negatives: tneg,
                    false_negatives: fneg,
                },
            )
        })
        .collect();
    let rep = fairness_from_counts(&counts, min_group);
    let _ = write!(
        p.body,
        "<p class=\"hint\">On inferences with a known outcome ({} groups judged, groups under {min_group} rows are shown but not judged): \
         demographic parity difference {}, ratio {}; equalized odds difference {}; equal opportunity difference {}.</p>",
        rep.judged_groups,
        num(rep.demographic_parity_difference),
        num(rep.demographic_parity_ratio),
        num(rep.equalized_odds_difference),
        num(rep.equal_opportunity_difference)
    );
    Ok(p)
}

/// A share (0–1) in percentage points, without the `%`: `12.34`.
fn pp(x: f64) -> String {
    html::fixed(x.clamp(0.0, 1.0) * 100.0, 2)
}

/// The analyzer's fairness statistics (re-exported under a local name for the page).
mod vigil_analyzer_compat {
    pub use vigil_analyzer::fairness::{
        fairness_from_counts, wilson_interval, GroupCounts, FOUR_FIFTHS,
    };
}
