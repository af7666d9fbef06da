//! Routes and pages. Every page is built by one async function returning its HTML body plus the
//! data behind each chart, so `/ui/{page}/csv?chart=ID` serves exactly what the chart drew.

use crate::data::{self, Range};
use crate::html::{self, esc, int, money, num, pct, url_enc, Frame};
use crate::roi::{self, ArmTotals};
use crate::session::{self, Session};
use crate::svg::{self, HLine, LineChart, Series};
use crate::{DashboardError, DashboardState};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use vigil_store::auth::Role;
use vigil_store::{queries, sql_string};

type St = web::Data<DashboardState>;

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");
const LOGIN_COOKIE: &str = "vigil_login";

pub fn configure(cfg: &mut web::ServiceConfig, state: St) {
    cfg.app_data(state)
        .app_data(web::FormConfig::default().limit(16 * 1024))
        .route("/ui", web::get().to(redirect_root))
        .route("/ui/assets/app.css", web::get().to(css))
        .route("/ui/assets/app.js", web::get().to(js))
        .route("/ui/login", web::get().to(login_form))
        .route("/ui/login", web::post().to(login))
        .route("/ui/logout", web::post().to(logout))
        .route("/ui/experiments/{key}/promote", web::post().to(promote))
        .route("/ui/models/{model}/rollback", web::post().to(rollback))
        .route("/ui/alerts/{id}/ack", web::post().to(ack))
        .route("/ui/alerts/silence", web::post().to(silence))
        .route("/ui/", web::get().to(page))
        .route("/ui/{page}", web::get().to(page))
        .route("/ui/{page}/csv", web::get().to(csv));
}

async fn redirect_root() -> HttpResponse {
    see_other("/ui/")
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

// ---------------------------------------------------------------- sessions and login

/// The signed-in session, or `None` (then the caller redirects to the login page).
fn current_session(req: &HttpRequest, st: &DashboardState) -> Option<Session> {
    if st.auth.is_open() {
        return Some(Session::local(&st.open_csrf));
    }
    let cookie = req.headers().get(header::COOKIE)?.to_str().ok()?;
    let id = session::cookie_value(cookie)?;
    st.sessions.get(id)
}

fn to_login(req: &HttpRequest) -> HttpResponse {
    let next = match req.uri().path_and_query() {
        Some(pq) => pq.as_str().to_string(),
        None => "/ui/".into(),
    };
    see_other(format!("/ui/login?next={}", url_enc(&next)))
}

fn safe_next(next: &str) -> String {
    if next.starts_with("/ui") && !next.starts_with("//") && !next.contains('\\') {
        next.to_string()
    } else {
        "/ui/".into()
    }
}

fn login_page(next: &str, error: Option<&str>, csrf: &str) -> String {
    let err = error
        .map(|e| {
            format!(
                "<p class=\"banner error\" id=\"login-error\">{}</p>",
                esc(e)
            )
        })
        .unwrap_or_default();
    html::page(
        &Frame {
            title: "Sign in",
            page: "login",
            user: None,
            csrf: "",
            keep_query: "",
            banner: None,
        },
        &format!(
            "{err}<form method=\"post\" action=\"/ui/login\" class=\"card login\">\
             <label>Access token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" required></label>\
             <input type=\"hidden\" name=\"csrf\" value=\"{c}\"><input type=\"hidden\" name=\"next\" value=\"{n}\">\
             <button type=\"submit\" id=\"login\">Sign in</button>\
             <p class=\"hint\">Use a token from <code>[auth]</code> in <code>vigil.toml</code>. Viewers read; operators also acknowledge and silence alerts; admins also promote and roll back.</p></form>",
            c = esc(csrf),
            n = esc(next)
        ),
    )
}

/// The sign-in form with a fresh CSRF token, which the form carries and a short-lived cookie
/// repeats (double submit: no server-side state before sign-in).
fn login_response(status: StatusCode, next: &str, error: Option<&str>) -> HttpResponse {
    let csrf = session::random_token();
    with_cookie(
        html_response(status, login_page(next, error, &csrf)),
        &format!("{LOGIN_COOKIE}={csrf}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=1800"),
    )
}

async fn login_form(req: HttpRequest, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let _ = req;
    let next = safe_next(q.get("next").map(String::as_str).unwrap_or("/ui/"));
    login_response(StatusCode::OK, &next, None)
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

fn cookie_named(req: &HttpRequest, name: &str) -> Option<String> {
    let h = req.headers().get(header::COOKIE)?.to_str().ok()?;
    h.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

async fn login(req: HttpRequest, st: St, form: web::Form<LoginForm>) -> HttpResponse {
    let next = safe_next(&form.next);
    let again = |msg: &str, status: StatusCode| login_response(status, &next, Some(msg));
    let expected = cookie_named(&req, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty()
        || !vigil_store::auth::constant_time_eq(form.csrf.as_bytes(), expected.as_bytes())
    {
        return again(
            "The form expired or was not sent from this site; please sign in again.",
            StatusCode::FORBIDDEN,
        );
    }
    if st.auth.is_open() {
        return see_other(next);
    }
    match st.auth.identify(&form.token) {
        Some((name, role)) if role.allows(Role::Viewer) => {
            let (id, _) = st.sessions.create(&name, role);
            tracing::info!(user = %name, role = ?role, "dashboard sign-in");
            with_cookie(see_other(next), &session::cookie(&id, 12 * 3600))
        }
        Some(_) => again(
            "This token has the ingest role, which cannot read dashboards.",
            StatusCode::FORBIDDEN,
        ),
        None => again("Unknown token.", StatusCode::UNAUTHORIZED),
    }
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(req: HttpRequest, st: St, form: web::Form<CsrfForm>) -> HttpResponse {
    if let Some(s) = current_session(&req, &st) {
        if !session::csrf_ok(&s, &form.csrf) {
            return forbidden(&s, "The form's CSRF token does not match your session.");
        }
        if let Some(id) = req
            .headers()
            .get(header::COOKIE)
            .and_then(|h| h.to_str().ok())
            .and_then(session::cookie_value)
        {
            st.sessions.remove(id);
        }
    }
    with_cookie(see_other("/ui/login"), &session::cookie("", 0))
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Ingest => "ingest",
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

fn message_page(s: &Session, status: StatusCode, title: &str, body: &str) -> HttpResponse {
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
            body,
        ),
    )
}

fn forbidden(s: &Session, why: &str) -> HttpResponse {
    message_page(
        s,
        StatusCode::FORBIDDEN,
        "Not allowed",
        &format!(
            "<p class=\"banner error\" id=\"forbidden\">{}</p>",
            esc(why)
        ),
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
    fn get(&self, k: &str) -> Option<&str> {
        self.q.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }
    fn admin(&self) -> bool {
        self.session.role.allows(Role::Admin)
    }
    fn operator(&self) -> bool {
        self.session.role.allows(Role::Operator)
    }
    /// A link to `page` with this query plus `extra` pairs (replacing same-named keys).
    fn link(&self, page: &str, extra: &[(&str, &str)]) -> String {
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
    let query = q
        .iter()
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
    /// Adds a chart with its CSV link and dataset.
    fn chart(&mut self, page: &str, c: &Ctx, figure: String, data: Dataset) {
        let sep = if c.query.is_empty() { "" } else { "&" };
        let _ = write!(
            self.body,
            "<div class=\"chartbox\">{figure}<a class=\"csv\" href=\"/ui/{page}/csv?chart={}{sep}{}\" download>CSV</a></div>",
            url_enc(&data.id),
            esc(&c.query)
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

fn csv_escape(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn range_picker(page: &str, c: &Ctx) -> String {
    let mut opts = String::new();
    for (n, _) in RANGES {
        let sel = if *n == c.range_label { " selected" } else { "" };
        let _ = write!(opts, "<option value=\"{n}\"{sel}>{n}</option>");
    }
    let mut hidden = String::new();
    for (k, v) in &c.q {
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

fn page_name(p: &str) -> Option<&'static str> {
    html::NAV.iter().find(|(n, _)| *n == p).map(|(n, _)| *n)
}

async fn build(page: &str, st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
    match page {
        "" => overview(st, c).await,
        "roi" => roi_page(st, c).await,
        "drift" => drift_page(st, c).await,
        "fairness" => fairness_page(st, c).await,
        "experiments" => experiments_page(st, c).await,
        "alerts" => alerts_page(st, c).await,
        "shadow" => shadow_page(st, c).await,
        other => Err(DashboardError::NotFound(format!("page `{other}`"))),
    }
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
        &format!(
            "<p class=\"banner error\" id=\"page-error\">{}</p>",
            esc(&e.to_string())
        ),
    )
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
    let Some(s) = current_session(req, st) else {
        return Err(Box::new(to_login(req)));
    };
    let fail = |e: &DashboardError| Box::new(error_response(&s, e));
    let Some(name) = page_name(name) else {
        return Err(fail(&DashboardError::NotFound(format!("page `{name}`"))));
    };
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
    let body = format!("{}{}", range_picker(name, &c), p.body);
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

/// One CSV record: cells quoted where needed, joined by commas, ended by a newline.
fn csv_line(cells: &[String]) -> String {
    let mut line = cells
        .iter()
        .map(|v| csv_escape(v))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

async fn csv(req: HttpRequest, st: St) -> HttpResponse {
    let name = req.match_info().get("page").unwrap_or("");
    let name = if name == "overview" { "" } else { name };
    let Built {
        session: s,
        ctx: c,
        page: p,
        ..
    } = match build_for(&req, &st, name).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let chart = c.q.get("chart").cloned().unwrap_or_default();
    let Some(d) = p.data.into_iter().find(|d| d.id == chart) else {
        return error_response(
            &s,
            &DashboardError::NotFound(format!("chart `{chart}` on this page")),
        );
    };
    let mut out = csv_line(&d.header);
    for r in &d.rows {
        out.push_str(&csv_line(r));
    }
    let file: String =
        d.id.chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '-' {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}.csv\""),
        ))
        .body(out)
}

// ---------------------------------------------------------------- shared bits

fn f(x: f64) -> String {
    format!("{x}")
}

fn models_of(rows: &[queries::VersionCount]) -> BTreeMap<String, Vec<String>> {
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
fn tabs<'a>(
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

/// The model a per-model page shows: `?model=`, else the first one with inferences in range.
/// Draws the model tabs, or an empty state and `None` when nothing ran in range.
fn pick_model(
    p: &mut PageOut,
    c: &Ctx,
    page: &str,
    versions: &[queries::VersionCount],
) -> Option<String> {
    let models: Vec<String> = models_of(versions).into_keys().collect();
    let Some(model) = c
        .get("model")
        .map(str::to_string)
        .or_else(|| models.first().cloned())
    else {
        p.body
            .push_str(&html::empty("No inferences in this time range."));
        return None;
    };
    p.body
        .push_str(&tabs(c, page, &[], "model", &models, &model, ""));
    Some(model)
}

fn card(id: &str, label: &str, value: &str, raw: f64) -> String {
    format!(
        "<div class=\"kpi\" id=\"{}\" data-value=\"{}\"><span>{}</span><strong>{}</strong></div>",
        esc(id),
        raw,
        esc(label),
        value
    )
}

/// A cell linking to an experiment's detail on the Experiments page.
fn experiment_link(c: &Ctx, key: &str) -> String {
    html::link(&c.link("experiments", &[("experiment", key)]), key)
}

// ---------------------------------------------------------------- Overview

/// Failed inferences (no prediction) as a count and a share, flagged above 1 %.
fn failed_cell(failed: u64, events: u64) -> String {
    if failed == 0 {
        return "0".into();
    }
    let share = failed as f64 / events.max(1) as f64;
    let text = format!("{} ({:.1} %)", int(failed), share * 100.0);
    if share > 0.01 {
        format!("<span class=\"tag bad\">{text}</span>")
    } else {
        text
    }
}

async fn overview(st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
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
            &format!("{:.2} %", failed as f64 * 100.0 / total.max(1) as f64),
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
        p.body.push_str(&html::empty(
            "No inferences in this time range. Run `vigil demo`, or widen the range.",
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
    Ok(p)
}

/// The latest production version per model from the deployment audit trail (migration 4).
async fn production_versions(
    st: &DashboardState,
) -> Result<BTreeMap<String, String>, DashboardError> {
    if !data::table_exists(&st.store, "deployments").await? {
        return Ok(BTreeMap::new());
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
    Ok(rows.into_iter().map(|p| (p.model, p.version)).collect())
}

// ---------------------------------------------------------------- ROI

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
        items.push_str("<li>no outcome has a value yet: add <code>[roi.value_per_outcome]</code> to <code>vigil.toml</code> (e.g. <code>churned = -120.0</code>, <code>revenue = 1.0</code>)</li>");
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

async fn roi_page(st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
    let mut p = PageOut::new("ROI");
    let r = c.range;
    let cur = st.roi.currency.clone();
    p.body.push_str(&value_model_box(st));
    if r.since > 0 {
        // Units are counted per hour (the unit rollups), so ROI starts on the hour.
        let _ = write!(
            p.body,
            "<p class=\"hint\" id=\"roi-from\">ROI counts whole hours: units and outcomes from {} UTC on.</p>",
            html::time(data::roi_since(r.since))
        );
    }
    let versions = data::versions(&st.store, r).await?;
    let models = models_of(&versions);
    if models.is_empty() {
        p.body
            .push_str(&html::empty("No inferences in this time range."));
    }
    let mut cost_rows = Vec::new();
    // Every model's units in one query (one pass over the unit rollups).
    let all_buckets = if models.is_empty() {
        Vec::new()
    } else {
        data::roi_buckets(&st.store, &st.roi, r).await?
    };
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
            p.body.push_str(&html::empty(&format!(
                "Only the control version {control} served traffic in this range: nothing to compare."
            )));
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
        p.body
            .push_str(&html::empty("No [[experiments]] configured."));
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

// ---------------------------------------------------------------- Drift & quality

async fn drift_page(st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
    let mut p = PageOut::new("Drift & quality");
    let r = c.range;
    let versions = data::versions(&st.store, r).await?;
    let Some(model) = pick_model(&mut p, c, "drift", &versions) else {
        return Ok(p);
    };
    let rows = data::monitor_rows(&st.store, &model, r).await?;
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
        p.body.push_str(&html::empty(
            "No monitor results for this model in range: configure [[monitors]] and run `vigil analyze` (or `vigil serve`, which runs them on schedule).",
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
    let column = c
        .get("column")
        .map(str::to_string)
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
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut threshold = f64::NAN;
    let mut p_value = false;
    for m in rows
        .iter()
        .filter(|m| m.column == column && m.verdict != "insufficient_data")
    {
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
    let col_rows: Vec<&data::MonitorRow> = rows.iter().filter(|m| m.column == column).collect();
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
    // Distributions: the latest window vs what came before it in range.
    let (split, split_label) = match col_rows
        .iter()
        .filter(|m| m.verdict != "insufficient_data")
        .map(|m| m.window_start)
        .max()
    {
        Some(ws) => (ws, "the latest monitor window"),
        None => (r.since / 2 + r.until / 2, "the second half of the range"),
    };
    if !column.is_empty() {
        let numerical = names.num.contains(&column) || !names.cat.contains(&column);
        let dist = data::distribution(
            &st.store,
            &model,
            &column,
            numerical,
            r,
            split,
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
                    "{column}: distribution, reference (before) vs current ({split_label}, from {} UTC); from {} sampled inferences",
                    html::time(split),
                    dist.iter().map(|d| d.sampled).sum::<u64>()
                ),
                "% of rows",
                &labels,
                &[("reference".into(), share(0)), ("current".into(), share(1))],
            ),
            Dataset::new(
                id,
                &["bin", "period", "rows_estimated", "rows_sampled"],
                dist.iter().map(|d| {
                    let period = if d.current > 0 { "current" } else { "reference" };
                    vec![
                        d.bin.clone(),
                        period.into(),
                        d.n.to_string(),
                        d.sampled.to_string(),
                    ]
                }),
            ),
        );
    }
    p.body.push_str("</div><h2>Data quality</h2>");
    let presence = data::presence(&st.store, &model, r).await?;
    let mut rows_q = Vec::new();
    for v in versions.iter().filter(|v| v.model == model) {
        for name in names.num.iter().chain(names.cat.iter()) {
            let present = presence
                .iter()
                .find(|x| x.version == v.version && x.name == *name)
                .map(|x| x.present)
                .unwrap_or(0);
            let missing = 1.0 - present as f64 / v.events.max(1) as f64;
            rows_q.push(vec![
                esc(&v.version),
                esc(name),
                int(v.events),
                format!(
                    "{:.2} %{}",
                    missing * 100.0,
                    if missing > 0.05 {
                        " <span class=\"tag bad\">high</span>"
                    } else {
                        ""
                    }
                ),
            ]);
        }
    }
    p.table(
        "quality-missing",
        &["version", "feature", "inferences", "missing"],
        rows_q,
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
                esc(&d.field),
                int(d.count),
                esc(&d.example_reason),
            ]
        }),
    );
    Ok(p)
}

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

// ---------------------------------------------------------------- Fairness

async fn fairness_page(st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
    use vigil_analyzer_compat::{fairness_from_counts, wilson_interval, GroupCounts, FOUR_FIFTHS};
    let mut p = PageOut::new("Fairness");
    let r = c.range;
    let versions = data::versions(&st.store, r).await?;
    let Some(model) = pick_model(&mut p, c, "fairness", &versions) else {
        return Ok(p);
    };
    let names = data::feature_names(&st.store, &model, r).await?;
    let Some(attr) = c
        .get("attribute")
        .map(str::to_string)
        .or_else(|| names.attrs.first().cloned())
    else {
        p.body.push_str(&html::empty("This model's events carry no `attributes` (sensitive or segment attributes), so there are no groups to compare."));
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
                format!("{:.2} %", x * 100.0)
            }
        };
        let tpr = g.true_pos as f64 / g.positives.max(1) as f64;
        let fpr = g.false_pos as f64 / (g.labelled.saturating_sub(g.positives)).max(1) as f64;
        rows.push(vec![
            esc(&g.grp),
            int(g.n),
            format!("{:.2} % ({:.2}–{:.2})", sr * 100.0, lo * 100.0, hi * 100.0),
            format!(
                "{:+.2} pp ({:+.2} to {:+.2})",
                gap * 100.0,
                gap_lo * 100.0,
                gap_hi * 100.0
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

/// The analyzer's fairness statistics (re-exported under a local name for the page).
mod vigil_analyzer_compat {
    pub use vigil_analyzer::fairness::{
        fairness_from_counts, wilson_interval, GroupCounts, FOUR_FIFTHS,
    };
}

// ---------------------------------------------------------------- Experiments

async fn experiments_page(st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
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
        p.body
            .push_str(&html::empty("No [[experiments]] configured."));
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
            p.body.push_str(&html::empty(&e.to_string()));
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
                format!("{:.1} %", a.weight * 100.0),
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
            "<p class=\"banner ok\" id=\"srm\" data-mismatch=\"false\">No sample ratio mismatch (SRM p = {:.3}).</p>",
            report.srm_p_value
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
                format!("{:.4}", fr.p_value),
                format!(
                    "<span class=\"ctw\" data-value=\"{}\">{:.1} %</span>",
                    cmp.bayesian.chance_to_win,
                    cmp.bayesian.chance_to_win * 100.0
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

#[derive(serde::Deserialize)]
struct ActionForm {
    csrf: String,
    #[serde(default)]
    arm: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    experiment: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    monitor: String,
    #[serde(default)]
    minutes: String,
}

/// Session, CSRF and role checks shared by every POST; `Err` is the response to send.
fn guard(
    req: &HttpRequest,
    st: &DashboardState,
    csrf: &str,
    need: Role,
) -> Result<Session, Box<HttpResponse>> {
    let Some(s) = current_session(req, st) else {
        return Err(Box::new(
            HttpResponse::Unauthorized()
                .content_type("text/plain; charset=utf-8")
                .body("sign in first: /ui/login"),
        ));
    };
    if !session::csrf_ok(&s, csrf) {
        return Err(Box::new(forbidden(
            &s,
            "The form's CSRF token does not match your session; reload the page and try again.",
        )));
    }
    if !s.role.allows(need) {
        tracing::warn!(user = %s.name, role = ?s.role, need = ?need, path = %req.path(), "dashboard action refused");
        return Err(Box::new(forbidden(
            &s,
            &format!(
                "Your role ({}) cannot do this; it needs the {} role.",
                role_name(s.role),
                role_name(need)
            ),
        )));
    }
    Ok(s)
}

fn confirm_page(s: &Session, action: &str, what: &str, hidden: &[(&str, &str)]) -> HttpResponse {
    let mut fields = String::new();
    for (k, v) in hidden {
        let _ = write!(
            fields,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(v)
        );
    }
    message_page(
        s,
        StatusCode::OK,
        "Please confirm",
        &format!(
            "<section class=\"card confirm\" id=\"confirm\"><p id=\"confirm-text\">{}</p>\
             <form method=\"post\" action=\"{}\">{fields}<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"confirm\" value=\"yes\">\
             <button type=\"submit\" id=\"confirm-yes\" class=\"danger\">Yes, do it</button> <a href=\"/ui/experiments\">Cancel</a></form></section>",
            esc(what),
            esc(action),
            esc(&s.csrf)
        ),
    )
}

fn result_page(s: &Session, r: Result<String, String>, back: &str) -> HttpResponse {
    match r {
        Ok(msg) => message_page(
            s,
            StatusCode::OK,
            "Done",
            &format!("<p class=\"banner ok\" id=\"action-result\" data-ok=\"true\">{}</p><p><a href=\"{}\">Back</a></p>", esc(&msg), esc(back)),
        ),
        Err(msg) => message_page(
            s,
            StatusCode::BAD_GATEWAY,
            "Failed",
            &format!("<p class=\"banner error\" id=\"action-result\" data-ok=\"false\">{}</p><p><a href=\"{}\">Back</a></p>", esc(&msg), esc(back)),
        ),
    }
}

/// The answer to a form that cannot be acted on: what is wrong with it.
fn bad_form(s: &Session, title: &str, msg: &str) -> HttpResponse {
    message_page(
        s,
        StatusCode::BAD_REQUEST,
        title,
        &format!("<p class=\"banner error\">{}</p>", esc(msg)),
    )
}

async fn promote(
    req: HttpRequest,
    st: St,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let s = match guard(&req, &st, &form.csrf, Role::Admin) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let key = path.into_inner();
    let Some(exp) = st.experiments.iter().find(|e| e.key == key) else {
        return message_page(
            &s,
            StatusCode::NOT_FOUND,
            "Unknown experiment",
            &html::empty(&format!("experiment `{key}` is not configured")),
        );
    };
    let reason = form.reason.trim();
    if reason.is_empty() {
        return bad_form(
            &s,
            "Reason needed",
            "Say why (the reason goes into the audit trail).",
        );
    }
    let arm = exp.arms.iter().find(|a| a.name == form.arm);
    let Some(arm) = arm else {
        return message_page(
            &s,
            StatusCode::BAD_REQUEST,
            "Unknown arm",
            &html::empty(&format!("experiment `{key}` has no arm `{}`", form.arm)),
        );
    };
    let control = exp
        .arms
        .first()
        .map(|a| a.model_version.as_str())
        .unwrap_or("");
    let back = format!("/ui/experiments?experiment={}", url_enc(&key));
    if form.confirm != "yes" {
        let what = format!(
            "Promote arm `{}` of experiment `{}`: model `{}` will serve version `{}` to all of its traffic instead of splitting it \
             (control version `{}`), the experiment stops assigning units, and an audit record with your name ({}) and the reason \
             “{}” is written.",
            arm.name,
            key,
            exp.model.as_deref().unwrap_or("?"),
            arm.model_version,
            control,
            s.name,
            reason
        );
        return confirm_page(
            &s,
            &format!("/ui/experiments/{key}/promote"),
            &what,
            &[("arm", &arm.name), ("reason", reason)],
        );
    }
    tracing::info!(user = %s.name, experiment = %key, arm = %arm.name, "dashboard promotion");
    let r = st
        .actions
        .promote(&key, Some(&arm.name), &s.name, reason)
        .await;
    result_page(&s, r, &back)
}

async fn rollback(
    req: HttpRequest,
    st: St,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let s = match guard(&req, &st, &form.csrf, Role::Admin) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let model = path.into_inner();
    let reason = form.reason.trim();
    if reason.is_empty() {
        return bad_form(
            &s,
            "Reason needed",
            "Say why (the reason goes into the audit trail).",
        );
    }
    let back = format!("/ui/experiments?experiment={}", url_enc(&form.experiment));
    if form.confirm != "yes" {
        let what = format!(
            "Roll back model `{model}`: it will serve its previous production version again, and an audit record with your name ({}) and the reason “{reason}” is written.",
            s.name
        );
        return confirm_page(
            &s,
            &format!("/ui/models/{model}/rollback"),
            &what,
            &[("reason", reason), ("experiment", &form.experiment)],
        );
    }
    tracing::info!(user = %s.name, model = %model, "dashboard rollback");
    let r = st.actions.rollback(&model, &s.name, reason).await;
    result_page(&s, r, &back)
}

// ---------------------------------------------------------------- Alerts

#[derive(Debug, Clone, clickhouse::Row, serde::Deserialize)]
struct Incident {
    id: String,
    rule: String,
    monitor: String,
    model: String,
    version: String,
    severity: String,
    state: String,
    silenced: u8,
    opened_at: u32,
    last_window_end: u32,
    acked_by: String,
    resolved_at: u32,
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

async fn open_incidents(st: &DashboardState) -> Result<Vec<Incident>, DashboardError> {
    incidents(st, "WHERE state != 'resolved'").await
}

async fn alerts_page(st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
    let mut p = PageOut::new("Alerts");
    if !data::table_exists(&st.store, "alert_incidents").await? {
        p.body.push_str(&html::empty("Alerting tables are not in this store yet (schema migration 5): run `vigil migrate` with a vigil that includes alerting."));
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

async fn ack(
    req: HttpRequest,
    st: St,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let s = match guard(&req, &st, &form.csrf, Role::Operator) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let r = st.actions.ack_alert(&path.into_inner(), &s.name).await;
    result_page(&s, r, "/ui/alerts")
}

async fn silence(req: HttpRequest, st: St, form: web::Form<ActionForm>) -> HttpResponse {
    let s = match guard(&req, &st, &form.csrf, Role::Operator) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let Ok(minutes) = form.minutes.trim().parse::<u64>() else {
        return bad_form(&s, "Bad duration", "Minutes must be a whole number.");
    };
    if form.model.trim().is_empty() || form.reason.trim().is_empty() {
        return bad_form(&s, "Missing fields", "Model and reason are required.");
    }
    let r = st
        .actions
        .silence(
            form.model.trim(),
            form.monitor.trim(),
            minutes,
            &s.name,
            form.reason.trim(),
        )
        .await;
    result_page(&s, r, "/ui/alerts")
}

// ---------------------------------------------------------------- Shadow & retraining

async fn shadow_page(st: &DashboardState, c: &Ctx) -> Result<PageOut, DashboardError> {
    let mut p = PageOut::new("Shadow runs & retraining");
    let r = c.range;
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Sh {
        model: String,
        version: String,
        served_version: String,
        requests: u64,
        answered: u64,
        mean_latency_ms: f64,
        errors: u64,
    }
    let rows: Vec<Sh> = st
        .store
        .fetch(&format!(
            "SELECT toString(model) AS model, toString(version) AS version, toString(any(served_version)) AS served_version,
                    toUInt64(count()) AS requests, toUInt64(countIf(status >= 200 AND status < 300)) AS answered,
                    toFloat64(avg(latency_ms)) AS mean_latency_ms, toUInt64(countIf(error != '')) AS errors
             FROM {} WHERE ts >= toDateTime({}) AND ts < toDateTime({})
             GROUP BY model, version ORDER BY model, version",
            st.store.table("shadow_responses"),
            r.since,
            r.until
        ))
        .await?;
    p.body
        .push_str("<h2>Mirrored traffic (gateway shadow responses)</h2>");
    p.table(
        "shadow-responses",
        &[
            "model",
            "candidate",
            "served version",
            "mirrored requests",
            "answered",
            "mean latency (ms)",
            "errors",
        ],
        rows.iter().map(|s| {
            vec![
                esc(&s.model),
                esc(&s.version),
                esc(&s.served_version),
                int(s.requests),
                format!(
                    "{:.1} %",
                    s.answered as f64 / s.requests.max(1) as f64 * 100.0
                ),
                num(s.mean_latency_ms),
                int(s.errors),
            ]
        }),
    );
    if !data::table_exists(&st.store, "shadow_runs").await? {
        p.body.push_str(&html::empty(
            "Shadow runs and retraining requests are not in this store yet (schema migration 6): run `vigil migrate` with a vigil that includes the shadow runner.",
        ));
        return Ok(p);
    }
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Run {
        job_id: String,
        model: String,
        production: String,
        candidates: String,
        status: String,
        processed: u64,
        skipped: u64,
        started_at: u32,
        error: String,
    }
    let runs: Vec<Run> = st
        .store
        .fetch(&format!(
            "SELECT * FROM (
                SELECT toString(job_id) AS job_id, toString(argMax(model, updated_ms)) AS model,
                       toString(argMax(production, updated_ms)) AS production,
                       toString(argMax(candidates, updated_ms)) AS candidates,
                       toString(argMax(status, updated_ms)) AS status,
                       toUInt64(argMax(processed, updated_ms)) AS processed,
                       toUInt64(argMax(skipped, updated_ms)) AS skipped,
                       toUInt32(argMax(started_at, updated_ms)) AS started_at,
                       toString(argMax(error, updated_ms)) AS error
                FROM {} GROUP BY job_id
             ) AS latest
             WHERE started_at >= toDateTime({}) AND started_at < toDateTime({})
             ORDER BY started_at DESC LIMIT 50",
            st.store.table("shadow_runs"),
            r.since,
            r.until
        ))
        .await?;
    p.body
        .push_str("<h2>Shadow runs (replays of captured traffic against candidates)</h2>");
    p.table(
        "shadow-runs",
        &[
            "job",
            "model",
            "production",
            "candidates",
            "status",
            "processed",
            "skipped",
            "started (UTC)",
            "error",
        ],
        runs.iter().map(|x| {
            vec![
                html::link(&c.link("shadow", &[("job", &x.job_id)]), &x.job_id),
                esc(&x.model),
                esc(&x.production),
                esc(&x.candidates),
                esc(&x.status),
                int(x.processed),
                int(x.skipped),
                html::time(x.started_at),
                esc(&x.error),
            ]
        }),
    );
    if let Some(job) = c
        .get("job")
        .map(str::to_string)
        .or_else(|| runs.first().map(|x| x.job_id.clone()))
    {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct Metric {
            candidate: String,
            kind: String,
            bucket_start: u32,
            n: u64,
            agreement: f64,
            accuracy_delta: f64,
            accuracy_delta_low: f64,
            accuracy_delta_high: f64,
            cand_ms_per_input: f64,
            verdict: String,
        }
        let metrics: Vec<Metric> = st
            .store
            .fetch(&format!(
                "SELECT toString(candidate) AS candidate, toString(kind) AS kind, toUInt32(bucket_start) AS bucket_start,
                        toUInt64(n) AS n, toFloat64(agreement) AS agreement, toFloat64(accuracy_delta) AS accuracy_delta,
                        toFloat64(accuracy_delta_low) AS accuracy_delta_low, toFloat64(accuracy_delta_high) AS accuracy_delta_high,
                        toFloat64(cand_ms_per_input) AS cand_ms_per_input, toString(verdict) AS verdict
                 FROM {} FINAL WHERE job_id = {} ORDER BY candidate, bucket_start LIMIT 5000",
                st.store.table("shadow_metrics"),
                sql_string(&job)
            ))
            .await?;
        let mut series: BTreeMap<String, Series> = BTreeMap::new();
        for m in metrics.iter().filter(|m| m.kind != "total") {
            let s = series.entry(m.candidate.clone()).or_insert_with(|| Series {
                name: m.candidate.clone(),
                ..Series::default()
            });
            s.points.push((m.bucket_start as f64, m.agreement * 100.0));
        }
        let id = format!("shadow-agreement-{job}");
        p.chart(
            "shadow",
            c,
            svg::line_chart(&LineChart {
                id: id.clone(),
                title: format!("run {job}: agreement with production per bucket"),
                y_label: "% same answer".into(),
                x_time: true,
                series: series.into_values().collect(),
                hlines: vec![],
            }),
            Dataset::new(
                id,
                &[
                    "candidate",
                    "kind",
                    "bucket_start",
                    "n",
                    "agreement",
                    "accuracy_delta",
                    "accuracy_delta_low",
                    "accuracy_delta_high",
                    "cand_ms_per_input",
                    "verdict",
                ],
                metrics.iter().map(|m| {
                    vec![
                        m.candidate.clone(),
                        m.kind.clone(),
                        m.bucket_start.to_string(),
                        m.n.to_string(),
                        f(m.agreement),
                        f(m.accuracy_delta),
                        f(m.accuracy_delta_low),
                        f(m.accuracy_delta_high),
                        f(m.cand_ms_per_input),
                        m.verdict.clone(),
                    ]
                }),
            ),
        );
        p.table(
            "shadow-totals",
            &[
                "candidate",
                "inputs",
                "agreement",
                "accuracy vs production (95 %)",
                "ms per input",
                "verdict",
            ],
            metrics.iter().filter(|m| m.kind == "total").map(|m| {
                vec![
                    esc(&m.candidate),
                    int(m.n),
                    format!("{:.2} %", m.agreement * 100.0),
                    format!(
                        "{} ({} to {})",
                        pct(m.accuracy_delta),
                        pct(m.accuracy_delta_low),
                        pct(m.accuracy_delta_high)
                    ),
                    num(m.cand_ms_per_input),
                    esc(&m.verdict),
                ]
            }),
        );
    }
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Req {
        request_id: String,
        model: String,
        reason: String,
        rule: String,
        status: String,
        created_at: u32,
        notified: String,
    }
    let reqs: Vec<Req> = st
        .store
        .fetch(&format!(
            "SELECT * FROM (
                SELECT toString(request_id) AS request_id, toString(argMax(model, updated_ms)) AS model,
                       toString(argMax(reason, updated_ms)) AS reason, toString(argMax(rule, updated_ms)) AS rule,
                       toString(argMax(status, updated_ms)) AS status,
                       toUInt32(argMax(created_at, updated_ms)) AS created_at,
                       toString(concat('webhook ', argMax(webhook_status, updated_ms), ', kafka ',
                                       argMax(kafka_status, updated_ms), ', e-mail ', argMax(email_status, updated_ms))) AS notified
                FROM {} GROUP BY request_id
             ) AS latest
             WHERE created_at >= toDateTime({}) AND created_at < toDateTime({})
             ORDER BY created_at DESC LIMIT 50",
            st.store.table("retraining_requests"),
            r.since,
            r.until
        ))
        .await?;
    p.body.push_str("<h2>Retraining requests</h2>");
    p.table(
        "retraining-requests",
        &[
            "created (UTC)",
            "model",
            "reason",
            "rule",
            "status",
            "notifications",
            "request",
        ],
        reqs.iter().map(|x| {
            vec![
                html::time(x.created_at),
                esc(&x.model),
                esc(&x.reason),
                esc(&x.rule),
                esc(&x.status),
                esc(&x.notified),
                esc(&x.request_id),
            ]
        }),
    );
    Ok(p)
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
    fn next_urls_stay_on_the_ui() {
        assert_eq!(safe_next("/ui/roi?range=1h"), "/ui/roi?range=1h");
        assert_eq!(safe_next("https://evil.example/"), "/ui/");
        assert_eq!(safe_next("//evil.example/ui"), "/ui/");
        assert_eq!(safe_next("/ui\\..\\x"), "/ui/");
    }

    #[test]
    fn a_table_with_csv_exports_its_raw_values_under_the_table_id() {
        let mut p = PageOut::new("t");
        p.table_with_csv(
            &["at (UTC)", "who"],
            [vec![html::time(0), esc("<eve>")]],
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
        assert_eq!(csv_line(&d.rows[0]), "0,<eve>\n");
    }

    #[test]
    fn csv_cells_are_quoted() {
        assert_eq!(csv_line(&["a".into(), "b,c".into()]), "a,\"b,c\"\n");
        assert_eq!(csv_escape("a,b"), "\"a,b\"");
        assert_eq!(csv_escape("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_escape("plain"), "plain");
    }
}
