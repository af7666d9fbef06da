//! Drift & quality: the heat map of monitor verdicts (columns × windows), per-column score
//! series, a column's distribution in a reference and a current period, missing values per
//! version and feature, dead letters.

use super::shared::{empty_state, f, first_model_with, pick_model, tabs, DOCS_MONITORS};
use super::{Ctx, Dataset, PageOut};
use crate::data::{self, Presence, Range};
use crate::html::{self, esc, int, num};
use crate::svg::{self, HLine, LineChart, Series};
use crate::{DashboardError, DashboardState};
use maud::html;
use std::collections::{BTreeMap, BTreeSet};
use vigil_analyzer::monitor::{MonitorConfig, ReferenceConfig};
use vigil_store::queries;

pub(super) async fn page(st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
    let mut p = PageOut::new("Drift & quality");
    let r = c.range;
    let versions = data::versions(&st.store, r).await?;
    // By default the first model whose monitors ran in range: on-call opens this page to see
    // drift.
    let monitored = first_model_with(c, &versions, |m| async move {
        let rows = data::monitor_rows(&st.store, &m, r).await?;
        Ok((!rows.is_empty()).then_some(rows))
    })
    .await?;
    let default = monitored.as_ref().map(|(m, _)| m.clone());
    let Some(model) = pick_model(&mut p, c, "drift", &versions, default) else {
        return Ok(p);
    };
    let rows = match monitored {
        Some((m, rows)) if m == model => rows,
        _ => data::monitor_rows(&st.store, &model, r).await?,
    };
    // Heat map: rows = monitor/version/column, columns = window ends.
    let mut row_keys: BTreeSet<String> = BTreeSet::new();
    let mut col_keys: BTreeSet<u32> = BTreeSet::new();
    for m in &rows {
        row_keys.insert(row_key(m));
        col_keys.insert(m.window_end);
    }
    let row_list: Vec<String> = row_keys.into_iter().collect();
    let col_list: Vec<u32> = col_keys.into_iter().collect();
    let cells: Vec<svg::Cell> = rows
        .iter()
        .filter_map(|m| {
            let row = row_list.iter().position(|k| *k == row_key(m))?;
            let col = col_list.iter().position(|w| *w == m.window_end)?;
            let ratio = (m.verdict != "insufficient_data" && m.threshold > 0.0).then(|| {
                if is_p_value(&m.method) {
                    // p-values: smaller is worse; map p = threshold to 1.
                    (m.threshold / m.score.max(1e-300)).min(10.0)
                } else if m.method == "min" {
                    // A health monitor's lower limit on a share (accuracy): the shortfall
                    // over the allowed shortfall.
                    ((1.0 - m.score) / (1.0 - m.threshold).max(1e-12)).min(10.0)
                } else {
                    m.score / m.threshold
                }
            });
            Some(svg::Cell {
                row,
                col,
                ratio,
                breach: m.drift > 0,
                tooltip: format!(
                    "{} · window {} – {}: {} {} = {} (threshold {}) → {} ({} reference / {} current rows)",
                    row_key(m),
                    html::time(m.window_start),
                    html::time(m.window_end),
                    m.method,
                    if m.column == "*" { "drift share" } else { "score" },
                    num(m.score),
                    num(m.threshold),
                    m.verdict,
                    m.reference_rows,
                    m.current_rows
                ),
            })
        })
        .collect();
    let span = col_list
        .last()
        .copied()
        .unwrap_or(0)
        .saturating_sub(col_list.first().copied().unwrap_or(0));
    let col_labels: Vec<String> = col_list
        .iter()
        .map(|w| {
            chrono::DateTime::from_timestamp(*w as i64, 0)
                .map(|t| {
                    if span > 2 * 86400 {
                        t.format("%m-%d %H:%M").to_string()
                    } else if span > 3600 {
                        t.format("%H:%M").to_string()
                    } else {
                        t.format("%H:%M:%S").to_string()
                    }
                })
                .unwrap_or_default()
        })
        .collect();
    let id = format!("drift-heatmap-{model}");
    p.chart(
        "drift",
        c,
        svg::heat_map(
            &id,
            &format!("{model}: drift per column × window (colour = score ÷ threshold)"),
            &row_list,
            &col_labels,
            &cells,
        ),
        Dataset::new(
            id,
            &[
                "monitor",
                "version",
                "column",
                "window_start",
                "window_end",
                "method",
                "score",
                "threshold",
                "drift",
                "verdict",
                "reference_rows",
                "current_rows",
            ],
            rows.iter().map(|m| {
                vec![
                    m.monitor.clone(),
                    m.version.clone(),
                    m.column.clone(),
                    m.window_start.to_string(),
                    m.window_end.to_string(),
                    m.method.clone(),
                    f(m.score),
                    f(m.threshold),
                    m.drift.to_string(),
                    m.verdict.clone(),
                    m.reference_rows.to_string(),
                    m.current_rows.to_string(),
                ]
            }),
        ),
    );
    if rows.is_empty() {
        p.push(empty_state(
            "No monitor results for this model in range.",
            "Configure [[monitors]] in vigil.toml and run `vigil analyze` (or `vigil serve`, which runs them on schedule).",
            DOCS_MONITORS,
        ));
    }
    // Column selector and per-column time series.
    let columns: Vec<String> = {
        let s: BTreeSet<String> = rows
            .iter()
            .filter(|m| m.column != "*")
            .map(|m| m.column.clone())
            .collect();
        s.into_iter().collect()
    };
    let names = data::feature_names(&st.store, &model, r).await?;
    // By default the first monitored input column (a health monitor's `error_rate` has no
    // distribution to draw), else the first monitored one, else the first feature.
    let column = c
        .get("column")
        .map(str::to_string)
        .or_else(|| {
            columns
                .iter()
                .find(|col| names.num.contains(col) || names.cat.contains(col))
                .cloned()
        })
        .or_else(|| columns.first().cloned())
        .or_else(|| names.num.first().cloned())
        .unwrap_or_default();
    let mut all_cols: BTreeSet<String> = columns.iter().cloned().collect();
    all_cols.extend(names.num.iter().cloned());
    all_cols.extend(names.cat.iter().cloned());
    p.body.push_str("<h2>Per column</h2>");
    p.body.push_str(&tabs(
        c,
        "drift",
        &[("model", &model)],
        "column",
        &all_cols,
        &column,
        "",
    ));
    p.body.push_str("<div class=\"grid\">");
    let col_rows: Vec<&data::MonitorRow> = rows.iter().filter(|m| m.column == column).collect();
    if column.is_empty() {
        p.push(empty_state(
            "No input columns for this model in range.",
            "Drift is measured per input column: numerical or categorical `features` of its inferences, or its prompts and answers with a text monitor (`columns = [\"input\"]`).",
            DOCS_MONITORS,
        ));
    } else {
        score_chart(&mut p, c, &model, &column, &col_rows);
    }
    // A text monitor's column (`input`, `output`): example texts of the latest window instead
    // of a distribution (texts have none to draw).
    let text_column = rows
        .iter()
        .any(|m| m.column == column && m.method.starts_with("embedding:"));
    if text_column {
        let examples = vigil_analyzer::monitor::text::latest_examples(
            &st.store,
            &model,
            Some(&column),
            r.until,
        )
        .await?;
        p.body.push_str(&examples_html(&column, &examples));
    }
    // Distributions: a reference period vs a current one (see `compare_periods`).
    if !column.is_empty() && !text_column {
        let monitor = reference_monitor(&st.monitors, &model, &column);
        let judged = |m: &&&data::MonitorRow| m.verdict != "insufficient_data";
        let latest_window = col_rows
            .iter()
            .filter(judged)
            .filter(|m| monitor.is_none_or(|cfg| cfg.name == m.monitor))
            .map(|m| m.window_start)
            .max()
            .or_else(|| col_rows.iter().filter(judged).map(|m| m.window_start).max());
        let ext = data::model_extent(&st.store, &model, r).await?;
        let periods = compare_periods(
            (r.since, r.until),
            (ext.n > 0).then_some((ext.lo, ext.hi)),
            latest_window,
            monitor,
        );
        let numerical = names.num.contains(&column) || !names.cat.contains(&column);
        let period = |(since, until): (u32, u32)| Range { since, until, ..r };
        let dist = data::distribution_between(
            &st.store,
            &model,
            &column,
            numerical,
            period(periods.reference),
            period(periods.current),
            data::DISTRIBUTION_BUDGET,
        )
        .await?;
        let mut labels: Vec<String> = Vec::new();
        for d in &dist {
            if !labels.contains(&d.bin) {
                labels.push(d.bin.clone());
            }
        }
        if numerical {
            labels.sort_by(|a, b| {
                let pa = dist.iter().position(|d| d.bin == *a);
                let pb = dist.iter().position(|d| d.bin == *b);
                pa.cmp(&pb)
            });
        }
        let total = |cur: u8| {
            dist.iter()
                .filter(|d| d.current == cur)
                .map(|d| d.n)
                .sum::<u64>()
                .max(1) as f64
        };
        let share = |cur: u8| -> Vec<f64> {
            labels
                .iter()
                .map(|l| {
                    dist.iter()
                        .find(|d| d.bin == *l && d.current == cur)
                        .map(|d| d.n as f64)
                        .unwrap_or(0.0)
                        / total(cur)
                        * 100.0
                })
                .collect()
        };
        let id = format!("distribution-{model}-{column}");
        p.chart(
        "drift",
        c,
        svg::bar_chart(
            &id,
            &format!(
                "{column}: distribution, reference ({}) vs current ({}); from {} sampled inferences",
                periods.reference_caption(),
                periods.current_caption(),
                dist.iter().map(|d| d.sampled).sum::<u64>()
            ),
            "% of rows",
            &labels,
            &[("reference".into(), share(0)), ("current".into(), share(1))],
        ),
        Dataset::new(
            id,
            &[
                "bin",
                "period",
                "rows_estimated",
                "rows_sampled",
                "period_from",
                "period_until",
            ],
            dist.iter().map(|d| {
                let (period, (from, until)) = if d.current > 0 {
                    ("current", periods.current)
                } else {
                    ("reference", periods.reference)
                };
                vec![
                    d.bin.clone(),
                    period.into(),
                    d.n.to_string(),
                    d.sampled.to_string(),
                    from.to_string(),
                    until.to_string(),
                ]
            }),
        ),
    );
    }
    p.body.push_str("</div><h2>Data quality</h2>");
    // Inferences and feature counts from one query: a share of missing values within 0–100 %.
    let presence = data::presence(&st.store, &model, r).await?;
    let features: Vec<String> = names.num.iter().chain(names.cat.iter()).cloned().collect();
    p.table(
        "quality-missing",
        &["version", "feature", "inferences", "missing"],
        quality_rows(&presence, &features).into_iter().map(|q| {
            vec![
                esc(&q.version),
                esc(&q.feature),
                int(q.events),
                html! {
                    (html::share(q.missing, 2))
                    @if q.missing > 0.05 {
                        " " span.tag.bad { "high" }
                    }
                }
                .into_string(),
            ]
        }),
    );
    let dead = queries::dead_letter_summary(&st.store).await?;
    p.body
        .push_str("<h3>Rejected events (dead letters, all time)</h3>");
    p.table(
        "dead-letters",
        &["kind", "source", "field", "count", "example reason"],
        dead.iter().take(20).map(|d| {
            vec![
                esc(&d.kind),
                esc(&d.source),
                clipped(&d.field, 60),
                int(d.count),
                clipped(&d.example_reason, 240),
            ]
        }),
    );
    Ok(p)
}

/// A column's drift score per window, one line per monitor and version, with its threshold.
fn score_chart(
    p: &mut PageOut,
    c: &Ctx,
    model: &str,
    column: &str,
    col_rows: &[&data::MonitorRow],
) {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut threshold = f64::NAN;
    let mut p_value = false;
    for m in col_rows.iter().filter(|m| m.verdict != "insufficient_data") {
        series
            .entry(format!(
                "{} {}",
                m.monitor,
                if m.version.is_empty() {
                    "all versions"
                } else {
                    &m.version
                }
            ))
            .or_default()
            .push((m.window_end as f64, m.score));
        threshold = m.threshold;
        p_value = is_p_value(&m.method);
    }
    let id = format!("drift-series-{model}-{column}");
    p.chart(
        "drift",
        c,
        svg::line_chart(&LineChart {
            id: id.clone(),
            title: format!("{column}: drift score per window"),
            y_label: if p_value {
                "p-value".into()
            } else {
                "distance".into()
            },
            x_time: true,
            series: series
                .into_iter()
                .map(|(n, pts)| Series {
                    name: n,
                    points: pts,
                    band: vec![],
                })
                .collect(),
            hlines: vec![HLine {
                y: threshold,
                label: format!("threshold {}", num(threshold)),
            }],
        }),
        Dataset::new(
            id,
            &[
                "monitor",
                "version",
                "window_end",
                "method",
                "score",
                "threshold",
                "verdict",
            ],
            col_rows.iter().map(|m| {
                vec![
                    m.monitor.clone(),
                    m.version.clone(),
                    m.window_end.to_string(),
                    m.method.clone(),
                    f(m.score),
                    f(m.threshold),
                    m.verdict.clone(),
                ]
            }),
        ),
    );
}

/// `text` escaped, cut to `max` characters with an ellipsis (the whole text in its tooltip):
/// a rejected event's field name is whatever the sender wrote, hundreds of characters at times.
fn clipped(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return esc(text);
    }
    let cut: String = text.chars().take(max).collect();
    format!("<span title=\"{}\">{}…</span>", esc(text), esc(&cut))
}

// ---------------------------------------------------------------- text monitors

/// What each kind of example is, in the order shown.
const EXAMPLE_KINDS: [(&str, &str, &str); 3] = [
    (
        "reference_central",
        "Typical before",
        "reference texts nearest the reference's mean embedding",
    ),
    (
        "current_central",
        "Typical now",
        "current texts nearest the current window's mean embedding",
    ),
    (
        "most_changed",
        "Most changed",
        "current texts farthest from the reference's mean embedding",
    ),
];

/// The latest window's example texts of a text column, per monitor. Every text is spliced
/// by maud, so escaped: prompts are user input.
pub(super) fn examples_html(
    column: &str,
    examples: &[vigil_store::rows::MonitorExampleRow],
) -> String {
    let monitors: BTreeSet<&str> = examples.iter().map(|e| e.monitor.as_str()).collect();
    html! {
        h2 { "Example texts: " (column) }
        @if examples.is_empty() {
            p.hint { "No example texts stored yet: they are written by text monitors (" code { "texts = [\"" (column) "\"]" } ") from the next evaluated window on." }
        }
        @for monitor in &monitors {
            @let of: Vec<&vigil_store::rows::MonitorExampleRow> =
                examples.iter().filter(|e| e.monitor == *monitor).collect();
            @if let Some(first) = of.first() {
                p.hint {
                    "Monitor " strong { (monitor) } ", window "
                    (html::time(first.window_start)) " – " (html::time(first.window_end))
                    ": what the sampled texts look like on each side."
                }
            }
            div.grid.examples {
                @for (kind, title, what) in EXAMPLE_KINDS {
                    div.card {
                        h3 { (title) }
                        p.hint { (what) }
                        ol {
                            @for e in of.iter().filter(|e| e.kind == kind) {
                                li.example {
                                    q { (e.text) }
                                    " " span.tag { "distance " (num(e.distance)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

// ---------------------------------------------------------------- data quality

/// The share of a version's `events` inferences that lack a feature `present` in some of
/// them: within [0, 1], `None` without inferences. Both counts must come from one query
/// (`data::presence`); counts that disagree (a feature seen more often than there are
/// inferences) are clamped rather than shown as a negative share.
pub(super) fn missing_share(present: u64, events: u64) -> Option<f64> {
    (events > 0).then(|| 1.0 - present.min(events) as f64 / events as f64)
}

/// One row of the data-quality table.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct QualityRow {
    pub version: String,
    pub feature: String,
    pub events: u64,
    pub missing: f64,
}

/// Per version (as `data::presence` returns them) and feature: its inferences and the share
/// of them without the feature.
pub(super) fn quality_rows(presence: &[Presence], features: &[String]) -> Vec<QualityRow> {
    let mut out = Vec::new();
    for v in presence {
        for name in features {
            let present = v.present.get(name).copied().unwrap_or(0);
            let Some(missing) = missing_share(present, v.events) else {
                continue;
            };
            out.push(QualityRow {
                version: v.version.clone(),
                feature: name.clone(),
                events: v.events,
                missing,
            });
        }
    }
    out
}

// ---------------------------------------------------------------- distribution periods

/// The two periods a distribution chart compares (unix seconds, `[from, until)`), and what
/// the caption calls them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Periods {
    pub reference: (u32, u32),
    pub current: (u32, u32),
    /// Which reference it is: a monitor's, or the earliest data in range.
    pub reference_is: String,
    /// Which current period it is: the latest monitor window, or the second half of the data.
    pub current_is: String,
}

impl Periods {
    pub fn reference_caption(&self) -> String {
        format!(
            "{}: {} – {} UTC",
            self.reference_is,
            html::time(self.reference.0),
            html::time(self.reference.1)
        )
    }
    pub fn current_caption(&self) -> String {
        format!(
            "{}, from {} UTC",
            self.current_is,
            html::time(self.current.0)
        )
    }
}

/// The drift monitor whose reference the distribution of `model`'s `column` is drawn against:
/// one that watches the column, else any of the model's with a reference.
pub(super) fn reference_monitor<'a>(
    monitors: &'a [MonitorConfig],
    model: &str,
    column: &str,
) -> Option<&'a MonitorConfig> {
    let with_reference = || {
        monitors.iter().filter(|m| {
            m.model == model && m.health.is_none() && m.reference != ReferenceConfig::default()
        })
    };
    with_reference()
        .find(|m| m.columns.iter().any(|c| c == column))
        .or_else(|| with_reference().next())
}

/// Where the second half of `[lo, hi)` starts: on a minute when that leaves both halves
/// non-empty (sampled estimates add up exactly per minute).
fn midpoint(lo: u32, hi: u32) -> u32 {
    let mid = lo + hi.saturating_sub(lo) / 2;
    let minute = mid / 60 * 60;
    if minute > lo {
        minute
    } else {
        mid
    }
}

/// Which periods the distribution chart compares, over the page's range `[since, until)` in
/// which the model's inferences run from `data` = (first, last) (`None`: none).
///
/// - Current: from the start of the latest judged monitor window (`latest_window`) when it
///   lies inside the data, else the second half of the time span that holds data, to the end
///   of the range.
/// - Reference: the monitor's reference period (`monitor`: a fixed `from`/`to`, or the
///   `trailing` period right before the current window) when one is configured for the model;
///   otherwise the earliest data in range, up to the current period. Never the first half of
///   the requested range: a range that starts long before the first inference would leave it
///   empty.
pub(super) fn compare_periods(
    (since, until): (u32, u32),
    data: Option<(u32, u32)>,
    latest_window: Option<u32>,
    monitor: Option<&MonitorConfig>,
) -> Periods {
    let (lo, hi) = match data {
        Some((first, last)) => {
            let lo = first.clamp(since, until);
            (lo, last.saturating_add(1).clamp(lo, until))
        }
        None => (since, until),
    };
    let (start, current_is) = match latest_window.filter(|w| *w > lo && *w < hi) {
        Some(w) => (w, "the latest monitor window".to_string()),
        None => (
            midpoint(lo, hi),
            "the second half of the data in range".to_string(),
        ),
    };
    let earliest = |note: String| ((lo, start), format!("the earliest data in range{note}"));
    let (reference, reference_is) = match monitor {
        Some(m) => match m.reference_period(start) {
            Ok(p) if p.from < p.to => {
                let kind = match &m.reference.trailing {
                    Some(t) => format!("the {t} before the current window"),
                    None => "its fixed period".to_string(),
                };
                (
                    (p.from, p.to),
                    format!("monitor `{}`'s reference, {kind}", m.name),
                )
            }
            _ if m.reference.file.is_some() => earliest(format!(
                " (monitor `{}` compares against a file snapshot, not drawn here)",
                m.name
            )),
            _ => earliest(String::new()),
        },
        None => earliest(String::new()),
    };
    Periods {
        reference,
        current: (start, until),
        reference_is,
        current_is,
    }
}

// ---------------------------------------------------------------- heat map helpers

fn row_key(m: &data::MonitorRow) -> String {
    let v = if m.version.is_empty() {
        "*"
    } else {
        &m.version
    };
    format!("{}/{v} {}", m.monitor, m.column)
}

fn is_p_value(method: &str) -> bool {
    matches!(
        method,
        "ks" | "chisquare"
            | "z"
            | "fisher_exact"
            | "t_test"
            | "anderson"
            | "cramer_von_mises"
            | "mannw"
            | "g_test"
            | "epps_singleton"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor(json: &str) -> MonitorConfig {
        serde_json::from_str(json).expect("monitor config")
    }

    #[test]
    fn example_texts_are_escaped_and_grouped_by_kind() {
        let row = |kind: &str, text: &str| vigil_store::rows::MonitorExampleRow {
            run_at: 0,
            monitor: "prompts".into(),
            model: "assistant".into(),
            version: String::new(),
            window_start: 0,
            window_end: 3600,
            column: "input".into(),
            kind: kind.into(),
            rank: 1,
            event_id: "e1".into(),
            text: text.into(),
            distance: 0.25,
        };
        let out = examples_html(
            "input",
            &[
                row("reference_central", "what is my balance"),
                row("most_changed", "<script>alert(1)</script>"),
            ],
        );
        assert!(out.contains("what is my balance"), "{out}");
        assert!(
            out.contains("&lt;script&gt;") && !out.contains("<script>"),
            "{out}"
        );
        assert!(
            out.contains("Most changed") && out.contains("prompts"),
            "{out}"
        );
        assert!(examples_html("input", &[]).contains("No example texts"));
    }

    #[test]
    fn missing_values_are_a_share_between_0_and_1() {
        // Issue #13: the table divided the feature counts of `data::presence` by the inferences
        // of `data::versions`, read seconds earlier while the open end of the range kept
        // filling: 30 942 inferences with the feature out of "30 000" gave "missing −3.14 %".
        let (events_read_first, present_read_later) = (30_000u64, 30_942u64);
        let old = 1.0 - present_read_later as f64 / events_read_first.max(1) as f64;
        assert_eq!(format!("{:.2} %", old * 100.0), "-3.14 %");
        // Counts that disagree no longer make a negative share …
        let m = missing_share(present_read_later, events_read_first).unwrap();
        assert_eq!(m, 0.0);
        assert_eq!(html::share(m, 2), "0.00 %");
        assert_eq!(missing_share(0, 0), None);
        assert_eq!(missing_share(0, 10), Some(1.0));
        // … and the page takes both counts from the one query, per version.
        let presence = vec![
            Presence {
                version: "v1".into(),
                events: 30_942,
                present: [("tenure".to_string(), 30_942), ("plan".to_string(), 29_000)]
                    .into_iter()
                    .collect(),
            },
            Presence {
                version: "v2".into(),
                events: 0,
                present: BTreeMap::new(),
            },
        ];
        let features = ["tenure", "plan", "gone"].map(String::from);
        let rows = quality_rows(&presence, &features);
        assert_eq!(
            rows.len(),
            3,
            "a version without inferences has no row: {rows:?}"
        );
        assert!(rows
            .iter()
            .all(|q| (0.0..=1.0).contains(&q.missing) && q.events == 30_942));
        assert_eq!(rows[0].missing, 0.0);
        assert!((rows[1].missing - 1942.0 / 30_942.0).abs() < 1e-12);
        assert_eq!(rows[2].missing, 1.0);
    }

    const H: u32 = 3600;

    #[test]
    fn without_a_monitor_the_reference_is_the_earliest_data_not_the_first_half_of_the_range() {
        // A 24 h range whose data only covers its last hour: the old split (the middle of the
        // range) left the reference without any rows.
        let (since, until) = (0, 24 * H);
        let data = Some((23 * H, 24 * H - 1));
        let p = compare_periods((since, until), data, None, None);
        assert_eq!(p.reference, (23 * H, 23 * H + 1800));
        assert_eq!(p.current, (23 * H + 1800, until));
        assert!(
            p.reference_is.starts_with("the earliest data in range"),
            "{p:?}"
        );
        assert!(
            p.reference_caption().contains("23:00:00"),
            "{}",
            p.reference_caption()
        );
        // With monitor windows but no monitor configured here: the data before the latest one.
        let p = compare_periods((since, until), data, Some(23 * H + 2400), None);
        assert_eq!(p.reference, (23 * H, 23 * H + 2400));
        assert_eq!(p.current, (23 * H + 2400, until));
        assert_eq!(p.current_is, "the latest monitor window");
        // A window that starts before the data is no split: halves of the data again.
        let p = compare_periods((since, until), data, Some(22 * H), None);
        assert_eq!(p.reference, (23 * H, 23 * H + 1800));
        // No data at all: halves of the range (the chart says there is nothing).
        let p = compare_periods((since, until), None, None, None);
        assert_eq!(p.reference, (0, 12 * H));
    }

    #[test]
    fn a_monitor_reference_is_used_when_one_is_configured() {
        let data = Some((10 * H, 20 * H));
        let trailing = monitor(
            r#"{"name":"churn-inputs","model":"churn","columns":["plan"],"window":"1h",
                "reference":{"trailing":"2h"}}"#,
        );
        let p = compare_periods((0, 24 * H), data, Some(19 * H), Some(&trailing));
        assert_eq!(p.reference, (17 * H, 19 * H));
        assert_eq!(p.current, (19 * H, 24 * H));
        assert_eq!(
            p.reference_is,
            "monitor `churn-inputs`'s reference, the 2h before the current window"
        );
        let fixed = monitor(
            r#"{"name":"fixed","model":"churn","columns":["plan"],"window":"1h",
                "reference":{"from":"1970-01-01T01:00:00Z","to":"1970-01-01T03:00:00Z"}}"#,
        );
        let p = compare_periods((0, 24 * H), data, Some(19 * H), Some(&fixed));
        assert_eq!(
            p.reference,
            (H, 3 * H),
            "outside the data in range: still the monitor's"
        );
        assert!(p.reference_is.contains("fixed period"), "{p:?}");
        let file = monitor(
            r#"{"name":"snap","model":"churn","columns":["plan"],"window":"1h",
                "reference":{"file":"train.csv"}}"#,
        );
        let p = compare_periods((0, 24 * H), data, Some(19 * H), Some(&file));
        assert_eq!(p.reference, (10 * H, 19 * H));
        assert!(p.reference_is.contains("file snapshot"), "{p:?}");
    }

    #[test]
    fn the_reference_monitor_is_one_of_the_model_with_a_reference() {
        let ms = [
            monitor(
                r#"{"name":"other","model":"fraud","columns":["plan"],"window":"1h","reference":{"trailing":"1h"}}"#,
            ),
            monitor(r#"{"name":"health","model":"churn","columns":[],"window":"1h","health":{}}"#),
            monitor(
                r#"{"name":"spend","model":"churn","columns":["spend"],"window":"1h","reference":{"trailing":"1h"}}"#,
            ),
            monitor(
                r#"{"name":"plan","model":"churn","columns":["plan"],"window":"1h","reference":{"trailing":"3h"}}"#,
            ),
        ];
        let name = |col: &str| reference_monitor(&ms, "churn", col).map(|m| m.name.clone());
        assert_eq!(name("plan").as_deref(), Some("plan"));
        assert_eq!(name("tenure").as_deref(), Some("spend"));
        assert_eq!(reference_monitor(&ms, "ranker", "plan"), None);
    }
}
