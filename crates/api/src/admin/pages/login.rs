//! Logging in and out.

use actix_web::{HttpRequest, HttpResponse, web};
use adbudget_core::forms::now;
use adbudget_db::repo::{login_throttle, users};
use maud::{Markup, html};

use crate::admin::session::{AdminUser, Session};
use crate::admin::view::{csrf, page};
use crate::admin::{AdminError, AdminState, Form, PageResult, check_csrf, html_page, see_other};
use crate::error::ApiError;
use crate::state::AppState;

use super::{Query, q, safe_next};

fn login_page(session: &Session, next: &str, error: Option<&str>) -> Markup {
    page(
        "Log in",
        "",
        None,
        html! {
            div.panel style="max-width:380px;margin:60px auto" {
                h1 { "Log in" }
                @if let Some(e) = error { div.flash.bad role="alert" { (e) } }
                form method="post" action="/admin/login" {
                    (csrf(&session.csrf))
                    input type="hidden" name="next" value=(next);
                    div.field { label for="username" { "Username" } input #username name="username" autofocus required; }
                    div.field { label for="password" { "Password" } input #password name="password" type="password" required; }
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

pub async fn login_form(
    req: HttpRequest,
    admin: web::Data<AdminState>,
    query: Query,
) -> HttpResponse {
    let session = Session::from_request(&req, &admin.key).unwrap_or_else(Session::anonymous);
    if session.logged_in().is_some() {
        return see_other(safe_next(q(&query, "next")));
    }
    let mut resp = html_page(login_page(&session, safe_next(q(&query, "next")), None));
    session.store(&req, &admin.key, &mut resp);
    resp
}

/// Longest username accepted at login (Django's limit); a longer one is refused before anything
/// else is done with it.
pub const MAX_USERNAME: usize = 150;

pub async fn login(
    req: HttpRequest,
    admin: web::Data<AdminState>,
    state: web::Data<AppState>,
    form: Form,
) -> PageResult {
    let session = Session::from_request(&req, &admin.key).unwrap_or_else(Session::anonymous);
    let next = safe_next(form.get("next").unwrap_or("/admin")).to_owned();
    let refuse = |status: actix_web::http::StatusCode, message: &str| {
        let mut resp = HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(login_page(&session, &next, Some(message)).into_string());
        session.store(&req, &admin.key, &mut resp);
        resp
    };
    let username = form.text("username");
    if username.chars().count() > MAX_USERNAME {
        return Ok(refuse(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "Usernames are at most 150 characters.",
        ));
    }
    if !session.csrf_matches(form.get("csrf")) {
        return Err(AdminError(ApiError::forbidden(
            "the form is stale or forged (CSRF token mismatch); reload the page",
        )));
    }
    let password = form.get("password").unwrap_or_default().to_owned();
    let ip = admin.client_ip(&req);
    let keys = vec![format!("user:{username}"), format!("ip:{ip}")];
    let at = now();
    let (name, counted) = (username.clone(), keys.clone());
    let (allowed, found) = state
        .db(move |conn| {
            let allowed = login_throttle::attempt(conn, &counted, at)?;
            let found = if allowed {
                users::credentials(conn, &name)?
            } else {
                None
            };
            Ok((allowed, found))
        })
        .await?;
    if !allowed {
        tracing::warn!(user.name = %username, client.ip = %ip, "login refused: too many failures");
        return Ok(refuse(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            "Too many failed logins. Wait 15 minutes and try again.",
        ));
    }
    // The hash is checked without a database connection, a few at a time on threads of their
    // own (AdminState::passwords); an unknown user's check costs the same as a known one's.
    let hash = found.as_ref().map(|(_, h, _)| h.clone());
    let matches = admin.passwords.check(hash, password).await?;
    match found.filter(|_| matches) {
        Some((id, _, epoch)) => {
            state
                .db(move |conn| login_throttle::succeeded(conn, &keys[0], &keys[1..]))
                .await?;
            tracing::info!(user.name = %username, "admin login");
            let mut resp = see_other(&next);
            Session::login(id, username, epoch).store(&req, &admin.key, &mut resp);
            Ok(resp)
        }
        None => {
            // The attempt was counted before the check: a failure leaves it counted.
            tracing::warn!(user.name = %username, client.ip = %ip, "admin login failed");
            Ok(refuse(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "Wrong username or password.",
            ))
        }
    }
}

pub async fn logout(
    req: HttpRequest,
    admin: web::Data<AdminState>,
    state: web::Data<AppState>,
    user: AdminUser,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    // Every session of this user ends, on every replica: the epoch moves on.
    let id = user.id;
    state.db(move |conn| users::end_sessions(conn, id)).await?;
    let mut resp = see_other("/admin/login");
    Session::anonymous().store(&req, &admin.key, &mut resp);
    Ok(resp)
}
