//! Routes and pages. Every page is built by one async function returning its HTML body plus the
//! data behind each chart, so `/ui/{page}/csv?chart=ID` serves exactly what the chart drew.
//!
//! This module holds the routes, the page dispatch, the request context ([`Ctx`], time ranges),
//! what a page builder returns ([`PageOut`], [`Dataset`]) and the error and message responses.
//! One module per page (`overview`, `roi`, `drift`, `fairness`, `experiments`, `llm`,
//! `alerts`, `shadow`), plus `auth` (sessions, login, the POST guard), `actions` (promote, roll back,
//! acknowledge, silence), `csv` (exports) and `shared` (cells, tabs, empty states).
//!
//! New and changed markup is written with maud's `html!` (escaping by default); older pages
//! still build strings with `format!` and [`html::esc`], and move over as they are touched.

mod actions;
mod alerts;
mod auth;
mod csv;
mod drift;
mod experiments;
mod fairness;
mod llm;
mod overview;
mod roi;
mod shadow;
mod shared;

use crate::data::{self, Range};
use crate::html::{self, url_enc, Frame};
use crate::session::Session;
use crate::{DashboardError, DashboardState};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use vigil_store::auth::Role;

type St = web::Data<DashboardState>;

const CSS: &str = include_str!("../assets/app.css");
const JS: &str = include_str!("../assets/app.js");

pub fn configure(cfg: &mut web::ServiceConfig, state: St) {
    cfg.app_data(state)
        .app_data(web::FormConfig::default().limit(16 * 1024))
        .route("/ui", web::get().to(redirect_root))
        .route("/ui/assets/app.css", web::get().to(css))
        .route("/ui/assets/app.js", web::get().to(js))
        .route("/ui/login", web::get().to(auth::login_form))
        .route("/ui/login", web::post().to(auth::login))
        .route("/ui/logout", web::post().to(auth::logout))
        .route(
            "/ui/experiments/{key}/promote",
            web::post().to(actions::promote),
        )
        .route(
            "/ui/models/{model}/rollback",
            web::post().to(actions::rollback),
        )
        .route("/ui/alerts/{id}/ack", web::post().to(actions::ack))
        .route("/ui/alerts/silence", web::post().to(actions::silence))
        .route("/ui/monitors/{name}", web::get().to(monitor_link))
        .route("/ui/", web::get().to(page))
        .route("/ui/{page}", web::get().to(page))
        .route("/ui/{page}/csv", web::get().to(csv::csv));
}

async fn redirect_root() -> HttpResponse {
    see_other("/ui/")
}

/// `/ui/monitors/{name}[?model=M]`, where alert e-mails link (`[alerting] dashboard_url` +
/// `/monitors/NAME`): the monitor's model on the Drift page, where its windows are drawn.
async fn monitor_link(
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
    st: St,
) -> HttpResponse {
    let name = path.into_inner();
    let model = q.get("model").cloned().or_else(|| {
        st.monitors
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.model.clone())
    });
    match model {
        Some(m) => see_other(format!("/ui/drift?model={}", url_enc(&m))),
        None => see_other("/ui/drift"),
    }
}

fn see_other(location: impl Into<String>) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.into()))
        .finish()
}

/// Adds a `Set-Cookie` header. Our cookies are built from hex tokens, so the value is
/// always a valid header; should it not be, the response goes out without the cookie.
fn with_cookie(mut r: HttpResponse, cookie: &str) -> HttpResponse {
    if let Ok(v) = header::HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=3600"))
        .body(CSS)
}

async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=3600"))
        .body(JS)
}

fn html_response(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("x-frame-options", "DENY"))
        .insert_header((
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ))
        .body(body)
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Ingest => "ingest",
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

// ---------------------------------------------------------------- messages and errors

/// A page outside the navigation (confirmation, result, error) for a signed-in user.
fn message_page(s: &Session, status: StatusCode, title: &str, body: Markup) -> HttpResponse {
    html_response(
        status,
        html::page(
            &Frame {
                title,
                page: "message",
                user: Some((&s.name, role_name(s.role))),
                csrf: &s.csrf,
                keep_query: "",
                banner: None,
            },
            &body.into_string(),
        ),
    )
}

fn forbidden(s: &Session, why: &str) -> HttpResponse {
    message_page(
        s,
        StatusCode::FORBIDDEN,
        "Not allowed",
        html! { p.banner.error id="forbidden" { (why) } },
    )
}

fn error_response(s: &Session, e: &DashboardError) -> HttpResponse {
    let status = match e {
        DashboardError::BadRequest(_) => StatusCode::BAD_REQUEST,
        DashboardError::NotFound(_) => StatusCode::NOT_FOUND,
        DashboardError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    if matches!(e, DashboardError::Store(_)) {
        tracing::warn!(error = %e, "dashboard page failed");
    }
    message_page(
        s,
        status,
        "Cannot show this page",
        html! { p.banner.error id="page-error" { (e.to_string()) } },
    )
}

/// The answer to `/ui/{name}` for a name that is no page: which pages there are, as links.
fn unknown_page_body(name: &str) -> Markup {
    html! {
        p.banner.error id="page-error" { "not found: page `" (name) "`" }
        p { "The pages are:" }
        ul id="page-list" {
            @for (path, label) in html::NAV {
                li {
                    a href={ "/ui/" (path) } { (label) }
                    " " code { "/ui/" (path) }
                }
            }
        }
    }
}

fn unknown_page(s: &Session, name: &str) -> HttpResponse {
    message_page(
        s,
        StatusCode::NOT_FOUND,
        "Cannot show this page",
        unknown_page_body(name),
    )
}

// ---------------------------------------------------------------- page context

/// Everything a page builder needs from the request.
pub struct Ctx {
    pub session: Session,
    pub q: HashMap<String, String>,
    pub range: Range,
    /// `range=…&end=…` kept across navigation.
    pub keep: String,
    /// The full query string (for CSV links), without `chart`.
    pub query: String,
    pub range_label: String,
    pub since_label: String,
    pub until_label: String,
}

impl Ctx {
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.q.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }
    pub(crate) fn admin(&self) -> bool {
        self.session.role.allows(Role::Admin)
    }
    pub(crate) fn operator(&self) -> bool {
        self.session.role.allows(Role::Operator)
    }
    /// A link to `page` with this query plus `extra` pairs (replacing same-named keys).
    pub(crate) fn link(&self, page: &str, extra: &[(&str, &str)]) -> String {
        let mut pairs: BTreeMap<&str, &str> = self
            .q
            .iter()
            .filter(|(k, _)| matches!(k.as_str(), "range" | "end"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (k, v) in extra {
            pairs.insert(k, v);
        }
        let qs: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", url_enc(k), url_enc(v)))
            .collect();
        format!("/ui/{page}?{}", qs.join("&"))
    }
}

pub const RANGES: &[(&str, u32)] = &[
    ("15m", 900),
    ("1h", 3600),
    ("6h", 6 * 3600),
    ("24h", 86400),
    ("7d", 7 * 86400),
    ("30d", 30 * 86400),
    ("all", 0),
];

/// `range` (one of [`RANGES`], default 24h) and `end` (unix seconds, default now) → `[since, until)`.
pub fn parse_range(q: &HashMap<String, String>, now: u32) -> Result<(u32, u32, String), String> {
    let name = q.get("range").map(String::as_str).unwrap_or("24h");
    let secs = RANGES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|r| r.1)
        .ok_or_else(|| {
            format!(
                "unknown range `{name}`; use one of {}",
                RANGES.iter().map(|r| r.0).collect::<Vec<_>>().join(", ")
            )
        })?;
    let until = match q.get("end").filter(|e| !e.is_empty()) {
        Some(e) => e
            .parse::<u32>()
            .map_err(|_| format!("`end` must be unix seconds, got `{e}`"))?,
        None => now.saturating_add(60),
    };
    let since = if secs == 0 {
        0
    } else {
        until.saturating_sub(secs)
    };
    Ok((since, until, name.to_string()))
}

async fn context(
    req: &HttpRequest,
    st: &DashboardState,
    session: Session,
) -> Result<Ctx, DashboardError> {
    let q: HashMap<String, String> =
        web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .map_err(|e| DashboardError::BadRequest(format!("bad query string: {e}")))?;
    context_of(q, st, session).await
}

/// What [`warm`] did: rounds over every page, the time of each, pages built and failed.
#[derive(Debug, Default)]
pub struct WarmUp {
    pub round_ms: Vec<u64>,
    pub built: usize,
    pub failed: usize,
}

/// Rounds [`warm`] runs at most.
pub const WARM_ROUNDS: usize = 6;

/// Builds every page at its defaults (24 h, first model) and drops the result, in rounds,
/// until a round is no more than 10 % faster than the one before (at most [`WARM_ROUNDS`]):
/// the first statements on a freshly opened store read cold marks and indexes, and on a large
/// store they stay slow for a second or two after the first round (at 100 M events, in the
/// first requests after a one-round warm-up: the overview's per-version counts 114 ms, 16 ms a
/// second later; the ROI sums 270 ms, then 66 ms; the CPU not saturated). `vigil serve` runs
/// it before it listens, so the first person to open a page after a restart finds a warm store
/// (issue #17, docs/benchmarks.md). A page that fails ends the warm-up (it fails for its
/// reader too, and is logged).
pub async fn warm(st: &DashboardState) -> WarmUp {
    let mut done = WarmUp::default();
    while done.round_ms.len() < WARM_ROUNDS {
        let started = std::time::Instant::now();
        for (name, _) in html::NAV {
            let c = match context_of(HashMap::new(), st, Session::local("warm-up")).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard warm-up: no page context");
                    done.failed += 1;
                    return done;
                }
            };
            match build(name, st, &c).await {
                Ok(_) => done.built += 1,
                Err(e) => {
                    done.failed += 1;
                    tracing::warn!(page = name, error = %e, "dashboard warm-up: page failed");
                }
            }
        }
        let ms = started.elapsed().as_millis() as u64;
        let settled = done.round_ms.last().is_some_and(|prev| ms * 10 >= prev * 9);
        done.round_ms.push(ms);
        if done.failed > 0 || settled {
            break;
        }
    }
    done
}

async fn context_of(
    q: HashMap<String, String>,
    st: &DashboardState,
    session: Session,
) -> Result<Ctx, DashboardError> {
    let now = chrono::Utc::now().timestamp().clamp(0, u32::MAX as i64) as u32;
    let (since, until, name) = parse_range(&q, now).map_err(DashboardError::BadRequest)?;
    // The rollups' watermark, read once per page: every aggregate over the range below uses it.
    let rolled_until = data::rolled_until(&st.store).await?;
    let ext = data::extent(&st.store, since, until, rolled_until).await?;
    let (lo, hi) = if ext.n > 0 {
        (ext.lo.max(since), ext.hi.min(until).saturating_add(1))
    } else {
        (since, until)
    };
    let bucket = data::bucket_for(lo, hi, 60);
    let mut keep = format!("range={}", url_enc(&name));
    if let Some(e) = q.get("end").filter(|e| !e.is_empty()) {
        let _ = write!(keep, "&end={}", url_enc(e));
    }
    // Sorted, so the same page always links the same CSV URL (a HashMap's order is random).
    let query = q
        .iter()
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .filter(|(k, _)| k.as_str() != "chart")
        .map(|(k, v)| format!("{}={}", url_enc(k), url_enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    Ok(Ctx {
        session,
        range: Range {
            since,
            until,
            bucket,
            rolled_until,
        },
        keep,
        query,
        range_label: name,
        since_label: if since == 0 {
            "all data".into()
        } else {
            html::time(since)
        },
        until_label: html::time(until),
        q,
    })
}

/// The data behind one chart or table, for CSV export.
pub struct Dataset {
    pub id: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Dataset {
    /// A dataset with the given column names, one row of raw (unescaped, unformatted) cells per item.
    fn new(
        id: impl Into<String>,
        header: &[&str],
        rows: impl IntoIterator<Item = Vec<String>>,
    ) -> Self {
        Dataset {
            id: id.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: rows.into_iter().collect(),
        }
    }
}

/// A built page.
pub struct PageOut {
    pub title: String,
    pub body: String,
    pub data: Vec<Dataset>,
}

impl PageOut {
    fn new(title: &str) -> Self {
        PageOut {
            title: title.into(),
            body: String::new(),
            data: Vec::new(),
        }
    }
    /// Appends markup built with maud.
    fn push(&mut self, m: Markup) {
        self.body.push_str(&m.into_string());
    }
    /// Adds a chart with its CSV link and dataset.
    fn chart(&mut self, page: &str, c: &Ctx, figure: String, data: Dataset) {
        let sep = if c.query.is_empty() { "" } else { "&" };
        // The overview lives at `/ui/`; its CSV under its name (`/ui//csv` matches no route).
        let page = if page.is_empty() { "overview" } else { page };
        let _ = write!(
            self.body,
            "<div class=\"chartbox\">{figure}<a class=\"csv\" href=\"/ui/{page}/csv?chart={}{sep}{}\" download>CSV</a></div>",
            url_enc(&data.id),
            html::esc(&c.query)
        );
        self.data.push(data);
    }
    /// Adds a table of already-escaped cells that has no CSV export.
    fn table(&mut self, id: &str, head: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
        let rows: Vec<Vec<String>> = rows.into_iter().collect();
        self.body.push_str(&html::table(id, head, &rows));
    }
    /// Adds a table and, under the same id, its CSV export. The two differ in form, not in
    /// content: `rows` are escaped and formatted for people (`html::time`, tags), `data` holds
    /// the raw values behind them, with machine-friendly column names.
    fn table_with_csv(
        &mut self,
        head: &[&str],
        rows: impl IntoIterator<Item = Vec<String>>,
        data: Dataset,
    ) {
        self.table(&data.id, head, rows);
        self.data.push(data);
    }
}

// ---------------------------------------------------------------- dispatch

/// The page at `/ui/{p}`; `overview` is another name of the overview at `/ui/`.
fn page_name(p: &str) -> Option<&'static str> {
    let p = if p == "overview" { "" } else { p };
    html::NAV.iter().find(|(n, _)| *n == p).map(|(n, _)| *n)
}

async fn build(page: &str, st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
    match page {
        "" => overview::page(st, c).await,
        "roi" => roi::page(st, c).await,
        "drift" => drift::page(st, c).await,
        "fairness" => fairness::page(st, c).await,
        "experiments" => experiments::page(st, c).await,
        "llm" => llm::page(st, c).await,
        "alerts" => alerts::page(st, c).await,
        "shadow" => shadow::page(st, c).await,
        other => Err(DashboardError::NotFound(format!("page `{other}`"))),
    }
}

/// A page built for a signed-in user: where both the HTML page and its CSV exports start.
struct Built {
    session: Session,
    name: &'static str,
    ctx: Ctx,
    page: PageOut,
}

/// Checks the session, resolves page `name` and the query, and builds the page; `Err` is the
/// response to send instead (the login redirect or an error page).
async fn build_for(
    req: &HttpRequest,
    st: &DashboardState,
    name: &str,
) -> Result<Built, Box<HttpResponse>> {
    let Some(s) = auth::current_session(req, st) else {
        return Err(Box::new(auth::to_login(req)));
    };
    let Some(name) = page_name(name) else {
        return Err(Box::new(unknown_page(&s, name)));
    };
    let fail = |e: &DashboardError| Box::new(error_response(&s, e));
    let c = context(req, st, s.clone()).await.map_err(|e| fail(&e))?;
    let p = build(name, st, &c).await.map_err(|e| fail(&e))?;
    Ok(Built {
        session: s,
        name,
        ctx: c,
        page: p,
    })
}

async fn page(req: HttpRequest, st: St) -> HttpResponse {
    let name = req.match_info().get("page").unwrap_or("");
    if name == "overview" {
        // One address per page: `/ui/overview` is the overview at `/ui/`, same query.
        let q = req.query_string();
        return see_other(if q.is_empty() {
            "/ui/".to_string()
        } else {
            format!("/ui/?{q}")
        });
    }
    let Built {
        session: s,
        name,
        ctx: c,
        page: p,
    } = match build_for(&req, &st, name).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let banner = st.auth.is_open().then_some(
        "Auth is off (no [auth] tokens configured): everyone is admin. Fine for a local demo, not for production.",
    );
    let body = format!("{}{}", shared::range_picker(name, &c), p.body);
    html_response(
        StatusCode::OK,
        html::page(
            &Frame {
                title: &p.title,
                page: name,
                user: Some((&s.name, role_name(s.role))),
                csrf: &s.csrf,
                keep_query: &c.keep,
                banner,
            },
            &body,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_reject() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert_eq!(
            parse_range(&q(&[("range", "1h"), ("end", "10000")]), 0).unwrap(),
            (6400, 10000, "1h".into())
        );
        assert_eq!(
            parse_range(&q(&[("range", "all"), ("end", "10000")]), 0)
                .unwrap()
                .0,
            0
        );
        assert_eq!(
            parse_range(&q(&[]), 100_000).unwrap(),
            (100_060 - 86400, 100_060, "24h".into())
        );
        assert!(parse_range(&q(&[("range", "2y")]), 0)
            .unwrap_err()
            .contains("unknown range"));
        assert!(parse_range(&q(&[("end", "x")]), 0).is_err());
    }

    #[test]
    fn overview_has_a_second_name_and_unknown_pages_list_the_real_ones() {
        assert_eq!(page_name("overview"), Some(""));
        assert_eq!(page_name(""), Some(""));
        assert_eq!(page_name("drift"), Some("drift"));
        assert_eq!(page_name("nope"), None);
        let body = unknown_page_body("<nope>").into_string();
        assert!(body.contains("page `&lt;nope&gt;`"), "{body}");
        for (path, label) in html::NAV {
            assert!(
                body.contains(&format!("<a href=\"/ui/{path}\">{}</a>", html::esc(label))),
                "{path}: {body}"
            );
        }
    }

    #[test]
    fn a_table_with_csv_exports_its_raw_values_under_the_table_id() {
        let mut p = PageOut::new("t");
        p.table_with_csv(
            &["at (UTC)", "who"],
            [vec![html::time(0), html::esc("<eve>")]],
            Dataset::new(
                "history",
                &["at", "who"],
                [vec!["0".into(), "<eve>".into()]],
            ),
        );
        assert!(p.body.contains("<table id=\"history\">"));
        assert!(p
            .body
            .contains("<td>1970-01-01 00:00:00</td><td>&lt;eve&gt;</td>"));
        let d = &p.data[0];
        assert_eq!(
            (d.id.as_str(), d.header.clone()),
            ("history", vec!["at".to_string(), "who".to_string()])
        );
        assert_eq!(csv::csv_line(&d.rows[0]), "0,<eve>\n");
    }
}
