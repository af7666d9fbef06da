//! Sessions and sign-in: the session behind a request, the login form (double-submit CSRF),
//! logout, and the guard every POST goes through (session, CSRF token, role).

use super::{forbidden, html_response, role_name, see_other, with_cookie, St};
use crate::html::{self, url_enc, Frame};
use crate::session::{self, Session};
use crate::DashboardState;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use std::collections::HashMap;
use vigil_store::auth::Role;

const LOGIN_COOKIE: &str = "vigil_login";

/// The signed-in session, or `None` (then the caller redirects to the login page).
pub(super) fn current_session(req: &HttpRequest, st: &DashboardState) -> Option<Session> {
    if st.auth.is_open() {
        return Some(Session::local(&st.open_csrf));
    }
    let cookie = req.headers().get(header::COOKIE)?.to_str().ok()?;
    let id = session::cookie_value(cookie)?;
    st.sessions.get(id)
}

pub(super) fn to_login(req: &HttpRequest) -> HttpResponse {
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
    let body = html! {
        @if let Some(e) = error {
            p.banner.error id="login-error" { (e) }
        }
        form method="post" action="/ui/login" class="card login" {
            label {
                "Access token "
                input type="password" name="token" id="token" autocomplete="current-password" required;
            }
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            button type="submit" id="login" { "Sign in" }
            p.hint {
                "Use a token from " code { "[auth]" } " in " code { "vigil.toml" }
                ". Viewers read; operators also acknowledge and silence alerts; admins also promote and roll back."
            }
        }
    };
    html::page(
        &Frame {
            title: "Sign in",
            page: "login",
            user: None,
            csrf: "",
            keep_query: "",
            banner: None,
        },
        &body.into_string(),
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

pub(super) async fn login_form(q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let next = safe_next(q.get("next").map(String::as_str).unwrap_or("/ui/"));
    login_response(StatusCode::OK, &next, None)
}

#[derive(serde::Deserialize)]
pub(super) struct LoginForm {
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

pub(super) async fn login(req: HttpRequest, st: St, form: web::Form<LoginForm>) -> HttpResponse {
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
pub(super) struct CsrfForm {
    csrf: String,
}

pub(super) async fn logout(req: HttpRequest, st: St, form: web::Form<CsrfForm>) -> HttpResponse {
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

/// Session, CSRF and role checks shared by every POST; `Err` is the response to send.
pub(super) fn guard(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_urls_stay_on_the_ui() {
        assert_eq!(safe_next("/ui/roi?range=1h"), "/ui/roi?range=1h");
        assert_eq!(safe_next("https://evil.example/"), "/ui/");
        assert_eq!(safe_next("//evil.example/ui"), "/ui/");
        assert_eq!(safe_next("/ui\\..\\x"), "/ui/");
    }

    #[test]
    fn the_login_page_escapes_what_it_echoes() {
        let page = login_page("/ui/\"><script>", Some("<b>no</b>"), "tok");
        assert!(
            page.contains("id=\"login-error\">&lt;b&gt;no&lt;/b&gt;</p>"),
            "{page}"
        );
        assert!(
            page.contains("name=\"next\" value=\"/ui/&quot;&gt;&lt;script&gt;\""),
            "{page}"
        );
        assert!(page.contains("name=\"csrf\" value=\"tok\""), "{page}");
        assert!(page.contains("id=\"token\""), "{page}");
    }
}
