//! The dashboards' POST actions: promote an experiment arm and roll a model back (admin),
//! acknowledge and silence alerts (operator). Each goes through the guard (session, CSRF token,
//! role); promotion and rollback first show a confirmation that says what will change. The work
//! itself is done by the injected [`crate::Actions`].

use super::auth::guard;
use super::{message_page, St};
use crate::html::url_enc;
use crate::session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use vigil_store::auth::Role;

#[derive(serde::Deserialize)]
pub(super) struct ActionForm {
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

/// "Please confirm": what will change, and a form that posts the same fields again with
/// `confirm=yes`.
fn confirm_page(s: &Session, action: &str, what: &str, hidden: &[(&str, &str)]) -> HttpResponse {
    message_page(
        s,
        StatusCode::OK,
        "Please confirm",
        html! {
            section.card.confirm id="confirm" {
                p id="confirm-text" { (what) }
                form method="post" action=(action) {
                    @for (k, v) in hidden {
                        input type="hidden" name=(k) value=(v);
                    }
                    input type="hidden" name="csrf" value=(s.csrf);
                    input type="hidden" name="confirm" value="yes";
                    button type="submit" id="confirm-yes" class="danger" { "Yes, do it" }
                    " "
                    a href="/ui/experiments" { "Cancel" }
                }
            }
        },
    )
}

/// What an action answered: its message, and the way back.
fn result_page(s: &Session, r: Result<String, String>, back: &str) -> HttpResponse {
    let (status, title, class, ok, msg) = match r {
        Ok(msg) => (StatusCode::OK, "Done", "banner ok", "true", msg),
        Err(msg) => (
            StatusCode::BAD_GATEWAY,
            "Failed",
            "banner error",
            "false",
            msg,
        ),
    };
    message_page(
        s,
        status,
        title,
        html! {
            p class=(class) id="action-result" data-ok=(ok) { (msg) }
            p { a href=(back) { "Back" } }
        },
    )
}

/// The answer to a form that cannot be acted on: what is wrong with it.
fn bad_form(s: &Session, title: &str, msg: &str) -> HttpResponse {
    message_page(
        s,
        StatusCode::BAD_REQUEST,
        title,
        html! { p.banner.error { (msg) } },
    )
}

pub(super) async fn promote(
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
            html! { p.empty { "experiment `" (key) "` is not configured" } },
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
            html! { p.empty { "experiment `" (key) "` has no arm `" (form.arm) "`" } },
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

pub(super) async fn rollback(
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

pub(super) async fn ack(
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

pub(super) async fn silence(req: HttpRequest, st: St, form: web::Form<ActionForm>) -> HttpResponse {
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
