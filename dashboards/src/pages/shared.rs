//! Parts every page uses: the time-range picker, tabs, the model picker, KPI cards, links,
//! raw numbers for CSV, and empty states that link to the docs.

use super::{Ctx, PageOut, RANGES};
use crate::html::{self, esc};
use crate::DashboardError;
use maud::{html, Markup};
use std::collections::BTreeMap;
use std::fmt::Write;
use vigil_store::queries;

pub(super) fn range_picker(page: &str, c: &Ctx) -> String {
    let mut opts = String::new();
    for (n, _) in RANGES {
        let sel = if *n == c.range_label { " selected" } else { "" };
        let _ = write!(opts, "<option value=\"{n}\"{sel}>{n}</option>");
    }
    let mut hidden = String::new();
    // Sorted: the same page renders the same form (a HashMap iterates in random order).
    for (k, v) in c.q.iter().collect::<std::collections::BTreeMap<_, _>>() {
        if !matches!(k.as_str(), "range" | "end") {
            let _ = write!(
                hidden,
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(k),
                esc(v)
            );
        }
    }
    format!(
        "<form method=\"get\" action=\"/ui/{page}\" class=\"range\" id=\"range-form\">{hidden}\
         <label>Time range <select name=\"range\" id=\"range\">{opts}</select></label>\
         <label>ending (unix s, empty = now) <input name=\"end\" id=\"end\" inputmode=\"numeric\" size=\"11\" value=\"{}\"></label>\
         <button type=\"submit\">Apply</button>\
         <span class=\"hint\">{} → {} UTC · bucket {} s</span></form>",
        esc(c.get("end").unwrap_or("")),
        esc(&c.since_label),
        esc(&c.until_label),
        c.range.bucket
    )
}

/// A number for CSV and `data-*` attributes: every digit Rust has, and `0` for −0.0.
pub(super) fn f(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else {
        format!("{x}")
    }
}

pub(super) fn models_of(rows: &[queries::VersionCount]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        m.entry(r.model.clone())
            .or_default()
            .push(r.version.clone());
    }
    m
}

/// Tabs that switch query parameter `key` between `values` on `page`, keeping the `fixed`
/// parameters (e.g. the model while switching columns); the tab for `current` is marked.
/// Each tab reads `label_prefix` followed by its value.
pub(super) fn tabs<'a>(
    c: &Ctx,
    page: &str,
    fixed: &[(&str, &str)],
    key: &str,
    values: impl IntoIterator<Item = &'a String>,
    current: &str,
    label_prefix: &str,
) -> String {
    let mut out = String::from("<nav class=\"tabs\">");
    for v in values {
        let cur = if v == current {
            " aria-current=\"true\""
        } else {
            ""
        };
        let mut params = fixed.to_vec();
        params.push((key, v));
        let _ = write!(
            out,
            "<a href=\"{}\"{cur}>{label_prefix}{}</a>",
            esc(&c.link(page, &params)),
            esc(v)
        );
    }
    out.push_str("</nav>");
    out
}

/// Without `?model=`, the first model in range (in tab order) for which `find` finds
/// something, with what it found: a per-model page opens on a model it has something to show
/// for (a chat model next to scoring models has no drift monitors or attributes). `None` with
/// a `?model=`, or when no model has anything.
pub(super) async fn first_model_with<T, F, Fut>(
    c: &Ctx,
    versions: &[queries::VersionCount],
    mut find: F,
) -> Result<Option<(String, T)>, DashboardError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, DashboardError>>,
{
    if c.get("model").is_some() {
        return Ok(None);
    }
    for model in models_of(versions).into_keys() {
        if let Some(found) = find(model.clone()).await? {
            return Ok(Some((model, found)));
        }
    }
    Ok(None)
}

/// The model a per-model page shows: `?model=`, else `default` (see [`first_model_with`]), else
/// the first one with inferences in range. Draws the model tabs, or an empty state and `None`
/// when nothing ran in range.
pub(super) fn pick_model(
    p: &mut PageOut,
    c: &Ctx,
    page: &str,
    versions: &[queries::VersionCount],
    default: Option<String>,
) -> Option<String> {
    let models: Vec<String> = models_of(versions).into_keys().collect();
    let Some(model) = c
        .get("model")
        .map(str::to_string)
        .or(default)
        .or_else(|| models.first().cloned())
    else {
        p.push(empty_state(
            "No inferences in this time range.",
            "Send inference events (or run `vigil demo`), or widen the range.",
            DOCS_EVENTS,
        ));
        return None;
    };
    p.body
        .push_str(&tabs(c, page, &[], "model", &models, &model, ""));
    Some(model)
}

pub(super) fn card(id: &str, label: &str, value: &str, raw: f64) -> String {
    format!(
        "<div class=\"kpi\" id=\"{}\" data-value=\"{}\"><span>{}</span><strong>{}</strong></div>",
        esc(id),
        f(raw),
        esc(label),
        value
    )
}

/// A cell linking to an experiment's detail on the Experiments page.
pub(super) fn experiment_link(c: &Ctx, key: &str) -> String {
    html::link(&c.link("experiments", &[("experiment", key)]), key)
}

// ---------------------------------------------------------------- empty states

/// Where empty states send people: the docs of the vigil repository, one section each.
pub(crate) const DOCS_BASE: &str = "https://github.com/vigil-ml/vigil/blob/main/docs/";

/// A docs section: (path under [`DOCS_BASE`] with its anchor, title shown on the link).
pub(crate) type DocsSection = (&'static str, &'static str);

pub(crate) const DOCS_EVENTS: DocsSection = ("events.md#inference", "Event contract § Inference");
pub(crate) const DOCS_MONITORS: DocsSection =
    ("analyzer.md#configuration", "Analyzer § Configuration");
pub(crate) const DOCS_ROI: DocsSection = (
    "dashboards.md#roi-value-model",
    "Dashboards § ROI value model",
);
pub(crate) const DOCS_EXPERIMENTS: DocsSection = (
    "experiments.md#1-configure-what-the-experiment-measures",
    "Experiments § Configure what the experiment measures",
);
pub(crate) const DOCS_EXPERIMENT_ANALYSIS: DocsSection = (
    "experiments.md#2-analyse-from-the-store",
    "Experiments § Analyse from the store",
);
pub(crate) const DOCS_ALERTING: DocsSection =
    ("alerting.md#configuration", "Alerting § Configuration");
pub(crate) const DOCS_ALERT_TABLES: DocsSection = (
    "alerting.md#storage-migration-5",
    "Alerting § Storage (migration 5)",
);
pub(crate) const DOCS_SHADOW: DocsSection = (
    "shadow.md#configuration-vigiltoml",
    "Shadow runs § Configuration",
);
pub(crate) const DOCS_GATEWAY: DocsSection =
    ("operations.md#gateway-gateway", "Operating vigil § Gateway");

/// The link to a docs section.
pub(crate) fn docs_link((path, title): DocsSection) -> Markup {
    html! { a.docs href={ (DOCS_BASE) (path) } { (title) } }
}

/// An empty state: why there is nothing to show, what to configure or run, and a link to the
/// docs section that explains it. The one helper for every empty state of the dashboards.
pub(crate) fn empty_state(why: &str, todo: &str, docs: DocsSection) -> Markup {
    html! {
        p.empty {
            (why) " " (todo) " Docs: " (docs_link(docs)) "."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_states_say_what_to_do_and_link_the_docs() {
        let m =
            empty_state("No <results>.", "Configure [[monitors]].", DOCS_MONITORS).into_string();
        assert_eq!(
            m,
            "<p class=\"empty\">No &lt;results&gt;. Configure [[monitors]]. Docs: \
             <a class=\"docs\" href=\"https://github.com/vigil-ml/vigil/blob/main/docs/analyzer.md#configuration\">\
             Analyzer § Configuration</a>.</p>"
        );
    }

    #[test]
    fn raw_numbers_have_no_negative_zero() {
        assert_eq!(f(-0.0), "0");
        assert_eq!(f(0.0), "0");
        assert_eq!(f(-1.5), "-1.5");
        assert_eq!(f(0.25), "0.25");
    }
}
