//! The admin pages: login, dashboard, brands, campaigns, spend logs.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use adbudget_core::dayparting::Schedule;
use adbudget_core::forms::{CreateBrand, CreateCampaign, UpdateBrand, UpdateCampaign, now};
use adbudget_core::rule::PauseReason;
use adbudget_core::views::Campaign;
use adbudget_db::repo::admin::{self, CampaignQuery, SpendQuery};
use adbudget_db::repo::{brands, campaigns, enforce::Cause, login_throttle, users};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::session::{AdminUser, Notice, Session, notice, notice_cookie};
use super::view::{self, bar, csrf, field, page, pager};
use super::{
    AdminError, AdminState, Form, PageResult, check_csrf, field_errors, html_page, see_other,
};
use crate::error::ApiError;
use crate::extract::from_value;
use crate::state::AppState;

type Query = web::Query<HashMap<String, String>>;

fn q<'a>(query: &'a Query, key: &str) -> &'a str {
    query.get(key).map(String::as_str).unwrap_or_default()
}

/// The search box's text without control characters (PostgreSQL text cannot hold a NUL, and no
/// name has one).
fn search_text(query: &Query) -> String {
    q(query, "q").chars().filter(|c| !c.is_control()).collect()
}

fn num(query: &Query, key: &str) -> Option<i64> {
    query.get(key).and_then(|v| v.parse().ok())
}

fn shell(user: &AdminUser, title: &str, section: &str, body: Markup) -> HttpResponse {
    let body = html! {
        @if let Some(n) = &user.notice { div.flash role="status" { (n.message()) } }
        (body)
    };
    let mut resp = html_page(page(
        title,
        section,
        Some((&user.username, &user.session.csrf)),
        body,
    ));
    if user.notice.is_some() {
        // Shown once.
        let _ = resp.add_removal_cookie(&notice_cookie(String::new()));
    }
    resp
}

/// Only same-origin paths, so a crafted `next` cannot send a user elsewhere after login. The
/// target must resolve, against a fixed origin, to that origin; and it may hold no backslash and
/// no control character, which browsers rewrite or drop (`/\t/evil.example` is `//evil.example`
/// to a browser), not even once more percent-decoded. `next` arrives percent-decoded from the
/// query string or the form.
fn safe_next(next: &str) -> &str {
    const HOST: &str = "adbudget.invalid";
    let stays = url::Url::parse(&format!("http://{HOST}/"))
        .and_then(|base| base.join(next))
        .is_ok_and(|u| u.scheme() == "http" && u.host_str() == Some(HOST) && u.port().is_none());
    // Encoded once more, the same tricks must not hide in it either (`/%09/evil.example`).
    let decoded = percent_encoding::percent_decode_str(next).decode_utf8_lossy();
    let plain =
        |s: &str| !s.starts_with("//") && !s.contains(|c: char| c == '\\' || c.is_control());
    if next.starts_with('/') && stays && plain(next) && plain(&decoded) {
        next
    } else {
        "/admin"
    }
}

// ---- login ----

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
        return Err(AdminError(ApiError::Forbidden));
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
    let hash = found.as_ref().map(|(_, h)| h.clone());
    let matches = admin.passwords.check(hash, password).await?;
    match found.filter(|_| matches) {
        Some((id, _)) => {
            state
                .db(move |conn| login_throttle::succeeded(conn, &keys[0], &keys[1..]))
                .await?;
            tracing::info!(user.name = %username, "admin login");
            let mut resp = see_other(&next);
            Session::login(id, username).store(&req, &admin.key, &mut resp);
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
    user: AdminUser,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let mut resp = see_other("/admin/login");
    Session::anonymous().store(&req, &admin.key, &mut resp);
    Ok(resp)
}

// ---- dashboard ----

pub async fn dashboard(user: AdminUser, state: web::Data<AppState>) -> PageResult {
    let at = now();
    let (brand_list, counts) = state
        .db(move |conn| {
            let brands = brands::list(
                conn,
                adbudget_db::repo::PageRequest {
                    limit: 500,
                    cursor: None,
                },
                at,
            )?;
            Ok((brands.items, campaigns::count_by_reasons(conn)?))
        })
        .await?;
    let active: i64 = counts
        .iter()
        .filter(|(r, _)| r.is_empty())
        .map(|(_, n)| n)
        .sum();
    let paused: i64 = counts
        .iter()
        .filter(|(r, _)| !r.is_empty())
        .map(|(_, n)| n)
        .sum();
    let by_reason = |reason: PauseReason| -> i64 {
        counts
            .iter()
            .filter(|(r, _)| r.contains(reason))
            .map(|(_, n)| n)
            .sum()
    };
    Ok(shell(
        &user,
        "Dashboard",
        "Dashboard",
        html! {
            h1 { "Dashboard" }
            div.cards {
                div.card #active-count { span.muted { "Active campaigns" } b { (active) } }
                div.card #paused-count { span.muted { "Paused campaigns" } b { (paused) } }
                @for reason in PauseReason::ALL {
                    a.card href={ "/admin/campaigns?reason=" (reason.name()) } style="text-decoration:none;color:inherit" data-reason=(reason.name()) {
                        span.muted { "paused: " (reason.name()) } b { (by_reason(reason)) }
                    }
                }
            }
            h2 { "Spend today and this month" }
            @if brand_list.is_empty() {
                p { "No brands yet. " a href="/admin/brands/new" { "Create the first one" } "." }
            } @else {
                table #brand-spend {
                    thead { tr { th { "Brand" } th { "Timezone" } th { "Today" } th { "This month" } } }
                    tbody {
                        @for b in &brand_list {
                            tr data-brand=(b.id) {
                                td { a href={ "/admin/brands/" (b.id) } { (b.name) } }
                                td.muted { (b.timezone) }
                                td.daily { (bar(b.daily_spend, b.daily_budget)) }
                                td.monthly { (bar(b.monthly_spend, b.monthly_budget)) }
                            }
                        }
                    }
                }
            }
        },
    ))
}

// ---- brands ----

fn sort_link(base: &str, current: &str, key: &str, label: &str, keep: &[(&str, String)]) -> Markup {
    let next = if current == key {
        format!("-{key}")
    } else {
        key.to_owned()
    };
    let mut params = keep.to_vec();
    params.push(("sort", next));
    let href = view::url_with(base, &params);
    let arrow = if current == key {
        " ▲"
    } else if current == format!("-{key}") {
        " ▼"
    } else {
        ""
    };
    html! { a href=(href) { (label) (arrow) } }
}

pub async fn brand_list(user: AdminUser, state: web::Data<AppState>, query: Query) -> PageResult {
    let (search, sort, page_no) = (
        search_text(&query),
        q(&query, "sort").to_owned(),
        num(&query, "page").unwrap_or(1),
    );
    let (s2, so2) = (search.clone(), sort.clone());
    let listing = state
        .db(move |conn| admin::brands(conn, &s2, &so2, page_no, now()))
        .await?;
    let keep = [("q", search.clone())];
    Ok(shell(
        &user,
        "Brands",
        "Brands",
        html! {
            h1 { "Brands" }
            form.toolbar method="get" action="/admin/brands" {
                div { label for="q" { "Search" } input #q name="q" value=(search) placeholder="name contains…"; }
                input type="hidden" name="sort" value=(sort);
                button type="submit" { "Search" }
                a.button href="/admin/brands/new" style="margin-left:auto" { "New brand" }
            }
            table #brands {
                thead { tr {
                    th { (sort_link("/admin/brands", &sort, "name", "Name", &keep)) }
                    th { "Timezone" }
                    th { (sort_link("/admin/brands", &sort, "daily_budget", "Daily budget", &keep)) }
                    th { (sort_link("/admin/brands", &sort, "monthly_budget", "Monthly budget", &keep)) }
                } }
                tbody {
                    @for b in &listing.items {
                        tr {
                            td { a href={ "/admin/brands/" (b.id) } { (b.name) } }
                            td.muted { (b.timezone) }
                            td { (bar(b.daily_spend, b.daily_budget)) }
                            td { (bar(b.monthly_spend, b.monthly_budget)) }
                        }
                    }
                }
            }
            (pager("/admin/brands", &[("q", search.clone()), ("sort", sort.clone())], listing.page, listing.pages(), listing.total))
        },
    ))
}

fn brand_form(
    user: &AdminUser,
    action: &str,
    values: &HashMap<&str, String>,
    errors: &HashMap<String, String>,
    title: &str,
) -> Markup {
    let v = |k: &str| values.get(k).cloned().unwrap_or_default();
    html! {
        h1 { (title) }
        @if !errors.is_empty() { div.flash.bad { "Please correct the fields marked below." } }
        form.panel method="post" action=(action) style="max-width:520px" {
            (csrf(&user.session.csrf))
            (field("Name", "name", &v("name"), "text", errors))
            (field("Daily budget", "daily_budget", &v("daily_budget"), "text", errors))
            (field("Monthly budget", "monthly_budget", &v("monthly_budget"), "text", errors))
            (field("Timezone (IANA name)", "timezone", &v("timezone"), "text", errors))
            button type="submit" { "Save" }
        }
    }
}

fn form_json(form: &Form, fields: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for f in fields {
        map.insert((*f).to_owned(), Value::String(form.text(f)));
    }
    Value::Object(map)
}

pub async fn brand_new(user: AdminUser) -> HttpResponse {
    let values = HashMap::from([("timezone", "UTC".to_owned())]);
    shell(
        &user,
        "New brand",
        "Brands",
        brand_form(
            &user,
            "/admin/brands/new",
            &values,
            &HashMap::new(),
            "New brand",
        ),
    )
}

pub async fn brand_create(user: AdminUser, state: web::Data<AppState>, form: Form) -> PageResult {
    check_csrf(&user, &form)?;
    let fields = ["name", "daily_budget", "monthly_budget", "timezone"];
    let attempt: Result<_, ApiError> = async {
        let body: CreateBrand = from_value(form_json(&form, &fields))?;
        let new = body.validate()?;
        state
            .db(move |conn| brands::create(conn, &new, now()))
            .await
    }
    .await;
    match attempt {
        Ok(b) => Ok(notice(
            &format!("/admin/brands/{}", b.id),
            Notice::BrandCreated,
        )),
        Err(e) => {
            let errors = field_errors(e)?;
            let values = fields.iter().map(|f| (*f, form.text(f))).collect();
            Ok(shell(
                &user,
                "New brand",
                "Brands",
                brand_form(&user, "/admin/brands/new", &values, &errors, "New brand"),
            ))
        }
    }
}

pub async fn brand_edit(
    user: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> PageResult {
    let id = id.into_inner();
    let b = state.db(move |conn| brands::get(conn, id, now())).await?;
    let values = HashMap::from([
        ("name", b.name.clone()),
        ("daily_budget", b.daily_budget.to_string()),
        ("monthly_budget", b.monthly_budget.to_string()),
        ("timezone", b.timezone.clone()),
    ]);
    Ok(shell(
        &user,
        &b.name,
        "Brands",
        html! {
            div.grid2 {
                div { (brand_form(&user, &format!("/admin/brands/{id}"), &values, &HashMap::new(), &b.name)) }
                div.panel {
                    h2 { "Spend" }
                    label { "Today" } (bar(b.daily_spend, b.daily_budget))
                    label style="margin-top:8px" { "This month" } (bar(b.monthly_spend, b.monthly_budget))
                    p { a href={ "/admin/campaigns?brand=" (id) } { "Campaigns of this brand" } " · " a href={ "/admin/campaigns/new?brand=" (id) } { "New campaign" } }
                    form method="post" action={ "/admin/brands/" (id) "/delete" } onsubmit=(view::CONFIRM_BRAND_DELETE) {
                        (csrf(&user.session.csrf))
                        button.danger type="submit" { "Delete brand" }
                    }
                }
            }
        },
    ))
}

pub async fn brand_update(
    user: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let id = id.into_inner();
    let fields = ["name", "daily_budget", "monthly_budget", "timezone"];
    let attempt: Result<_, ApiError> = async {
        let body: UpdateBrand = from_value(form_json(&form, &fields))?;
        let changes = body.validate()?;
        state
            .db(move |conn| brands::update(conn, id, &changes, now()))
            .await
    }
    .await;
    match attempt {
        Ok(_) => Ok(notice(&format!("/admin/brands/{id}"), Notice::BrandSaved)),
        Err(e) => {
            let errors = field_errors(e)?;
            let values = fields.iter().map(|f| (*f, form.text(f))).collect();
            Ok(shell(
                &user,
                "Edit brand",
                "Brands",
                brand_form(
                    &user,
                    &format!("/admin/brands/{id}"),
                    &values,
                    &errors,
                    "Edit brand",
                ),
            ))
        }
    }
}

pub async fn brand_delete(
    user: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let id = id.into_inner();
    state.db(move |conn| brands::delete(conn, id)).await?;
    Ok(notice("/admin/brands", Notice::BrandDeleted))
}

// ---- campaigns ----

pub async fn campaign_list(
    user: AdminUser,
    state: web::Data<AppState>,
    query: Query,
) -> PageResult {
    let filter = CampaignQuery {
        q: search_text(&query),
        brand_id: num(&query, "brand"),
        active: match q(&query, "active") {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        reason: PauseReason::from_name(q(&query, "reason")),
        sort: q(&query, "sort").to_owned(),
        page: num(&query, "page").unwrap_or(1),
    };
    let f2 = filter.clone();
    let (listing, brand_names) = state
        .db(move |conn| {
            Ok((
                admin::campaigns(conn, &f2, now())?,
                admin::brand_names(conn)?,
            ))
        })
        .await?;
    let keep = [
        ("q", filter.q.clone()),
        ("brand", q(&query, "brand").to_owned()),
        ("active", q(&query, "active").to_owned()),
        ("reason", q(&query, "reason").to_owned()),
    ];
    let mut with_sort = keep.to_vec();
    with_sort.push(("sort", filter.sort.clone()));
    Ok(shell(
        &user,
        "Campaigns",
        "Campaigns",
        html! {
            h1 { "Campaigns" }
            form.toolbar method="get" action="/admin/campaigns" {
                div { label for="q" { "Search" } input #q name="q" value=(filter.q) placeholder="name contains…"; }
                div { label for="brand" { "Brand" }
                    select #brand name="brand" {
                        option value="" { "all" }
                        @for (id, name) in &brand_names { option value=(id) selected[filter.brand_id == Some(*id)] { (name) } }
                    }
                }
                div { label for="active" { "State" }
                    select #active name="active" {
                        option value="" { "all" }
                        option value="yes" selected[filter.active == Some(true)] { "active" }
                        option value="no" selected[filter.active == Some(false)] { "paused" }
                    }
                }
                div { label for="reason" { "Pause reason" }
                    select #reason name="reason" {
                        option value="" { "any" }
                        @for r in PauseReason::ALL { option value=(r.name()) selected[filter.reason == Some(r)] { (r.name()) } }
                    }
                }
                input type="hidden" name="sort" value=(filter.sort);
                button type="submit" { "Filter" }
                a.button href="/admin/campaigns/new" style="margin-left:auto" { "New campaign" }
            }
            form #bulk method="post" action="/admin/campaigns/bulk" {
                (csrf(&user.session.csrf))
                table #campaigns {
                    thead { tr {
                        th style="width:28px" {}
                        th { (sort_link("/admin/campaigns", &filter.sort, "name", "Name", &keep)) }
                        th { (sort_link("/admin/campaigns", &filter.sort, "brand", "Brand", &keep)) }
                        th { "State" }
                        th.num { "Today" }
                        th.num { "This month" }
                    } }
                    tbody {
                        @for (c, brand) in &listing.items {
                            tr data-campaign=(c.id) {
                                td { input type="checkbox" name="ids" value=(c.id) aria-label={ "select " (c.name) }; }
                                td { a href={ "/admin/campaigns/" (c.id) } { (c.name) } }
                                td { a href={ "/admin/brands/" (c.brand_id) } { (brand) } }
                                td.state { (view::state(c.is_active, c.pause_reasons)) }
                                td.num { (c.daily_spend) }
                                td.num { (c.monthly_spend) }
                            }
                        }
                    }
                }
                div.toolbar style="margin-top:10px" {
                    select name="action" aria-label="bulk action" {
                        option value="pause" { "Pause selected" }
                        option value="resume" { "Resume selected" }
                    }
                    button #apply-bulk type="submit" { "Apply" }
                }
            }
            (pager("/admin/campaigns", &with_sort, listing.page, listing.pages(), listing.total))
        },
    ))
}

/// Campaigns one bulk action may change (a page lists 25).
pub const MAX_BULK: usize = 1000;

pub async fn campaign_bulk(user: AdminUser, state: web::Data<AppState>, form: Form) -> PageResult {
    check_csrf(&user, &form)?;
    let ids: Vec<i64> = form
        .all("ids")
        .iter()
        .filter_map(|v| v.parse().ok())
        .collect();
    if ids.len() > MAX_BULK {
        return Err(AdminError(ApiError::invalid(
            "ids",
            format!("at most {MAX_BULK} campaigns at once"),
        )));
    }
    let pause = match form.get("action") {
        Some("pause") => true,
        Some("resume") => false,
        _ => {
            return Err(AdminError(ApiError::invalid(
                "action",
                "must be pause or resume",
            )));
        }
    };
    let n = state
        .db(move |conn| admin::bulk_manual(conn, &ids, pause, now()))
        .await?;
    let done = if pause {
        Notice::BulkPaused(n)
    } else {
        Notice::BulkResumed(n)
    };
    Ok(notice("/admin/campaigns", done))
}

fn campaign_form(
    user: &AdminUser,
    brands: &[(i64, String)],
    values: &HashMap<&str, String>,
    errors: &HashMap<String, String>,
) -> Markup {
    let v = |k: &str| values.get(k).cloned().unwrap_or_default();
    html! {
        h1 { "New campaign" }
        @if !errors.is_empty() { div.flash.bad { "Please correct the fields marked below." } }
        form.panel method="post" action="/admin/campaigns/new" style="max-width:520px" {
            (csrf(&user.session.csrf))
            div.field {
                label for="brand_id" { "Brand" }
                select #brand_id name="brand_id" class=[errors.get("brand_id").map(|_| "invalid")] {
                    @for (id, name) in brands { option value=(id) selected[v("brand_id") == id.to_string()] { (name) } }
                }
                @if let Some(e) = errors.get("brand_id") { div.error data-field="brand_id" { (e) } }
            }
            (field("Name", "name", &v("name"), "text", errors))
            (field("Daily cap (optional)", "daily_cap", &v("daily_cap"), "text", errors))
            (field("Monthly cap (optional)", "monthly_cap", &v("monthly_cap"), "text", errors))
            div.field { label { input type="checkbox" name="manually_paused" value="on" checked[v("manually_paused") == "on"]; " start paused" } }
            button type="submit" { "Create" }
        }
    }
}

pub async fn campaign_new(user: AdminUser, state: web::Data<AppState>, query: Query) -> PageResult {
    let brand_names = state.db(admin::brand_names).await?;
    let values = HashMap::from([("brand_id", q(&query, "brand").to_owned())]);
    Ok(shell(
        &user,
        "New campaign",
        "Campaigns",
        campaign_form(&user, &brand_names, &values, &HashMap::new()),
    ))
}

/// Optional money fields: empty means none (null).
fn optional(form: &Form, name: &str) -> Value {
    let v = form.text(name);
    if v.is_empty() {
        Value::Null
    } else {
        Value::String(v)
    }
}

pub async fn campaign_create(
    user: AdminUser,
    state: web::Data<AppState>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let brand_id: Value = form
        .text("brand_id")
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::String(form.text("brand_id")));
    let body = json!({
        "brand_id": brand_id,
        "name": form.text("name"),
        "daily_cap": optional(&form, "daily_cap"),
        "monthly_cap": optional(&form, "monthly_cap"),
        "manually_paused": form.get("manually_paused") == Some("on"),
    });
    let attempt: Result<Campaign, ApiError> = async {
        let new = from_value::<CreateCampaign>(body)?.validate()?;
        state
            .db(move |conn| campaigns::create(conn, &new, now()))
            .await
    }
    .await;
    match attempt {
        Ok(c) => Ok(notice(
            &format!("/admin/campaigns/{}", c.id),
            Notice::CampaignCreated,
        )),
        Err(e) => {
            let errors = field_errors(e)?;
            let brand_names = state.db(admin::brand_names).await?;
            let values = [
                "brand_id",
                "name",
                "daily_cap",
                "monthly_cap",
                "manually_paused",
            ]
            .iter()
            .map(|f| (*f, form.text(f)))
            .collect();
            Ok(shell(
                &user,
                "New campaign",
                "Campaigns",
                campaign_form(&user, &brand_names, &values, &errors),
            ))
        }
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The dayparting editor: one row per window plus an empty one to add a window.
fn dayparting_editor(
    user: &AdminUser,
    c: &Campaign,
    rows: &[(Vec<String>, String, String)],
    errors: &HashMap<String, String>,
) -> Markup {
    let blank = (
        DAYS.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        String::new(),
        String::new(),
    );
    html! {
        form #dayparting.panel method="post" action={ "/admin/campaigns/" (c.id) "/dayparting" } {
            (csrf(&user.session.csrf))
            h2 style="margin-top:0" { "Dayparting" }
            p.muted { "Windows in the brand's timezone; start inclusive, end exclusive (24:00 allowed); a start after the end runs past midnight. No window: runs at all hours." }
            @if let Some(e) = errors.get("dayparting") { div.error data-field="dayparting" { (e) } }
            table {
                thead { tr { th { "Days" } th { "Start" } th { "End" } th { "Remove" } } }
                tbody {
                    @for (i, (days, start, end)) in rows.iter().chain(std::iter::once(&blank)).enumerate() {
                        @let prefix = format!("dayparting[{i}]");
                        tr data-window=(i) {
                            td.days {
                                @for d in DAYS { label { input type="checkbox" name={ "days_" (i) } value=(d) checked[days.iter().any(|x| x == d)]; (d) } }
                                @if let Some(e) = errors.get(&format!("{prefix}.days")) { div.error { (e) } }
                            }
                            td {
                                input type="text" name={ "start_" (i) } value=(start) placeholder="HH:MM" size="6" aria-label={ "start of window " (i + 1) };
                                @if let Some(e) = errors.get(&format!("{prefix}.start")) { div.error { (e) } }
                            }
                            td {
                                input type="text" name={ "end_" (i) } value=(end) placeholder="HH:MM" size="6" aria-label={ "end of window " (i + 1) };
                                @if let Some(e) = errors.get(&format!("{prefix}.end")) { div.error { (e) } }
                            }
                            td { @if i < rows.len() { input type="checkbox" name={ "remove_" (i) } value="on" aria-label="remove"; } }
                        }
                    }
                }
            }
            input type="hidden" name="rows" value=(rows.len() + 1);
            p { button type="submit" { "Save schedule" } }
        }
    }
}

fn rows_of(schedule: Option<&Schedule>) -> Vec<(Vec<String>, String, String)> {
    let Some(s) = schedule else { return Vec::new() };
    let json = serde_json::to_value(s).unwrap_or(Value::Null);
    json.as_array()
        .map(|ws| {
            ws.iter()
                .map(|w| {
                    let days = w["days"]
                        .as_array()
                        .map(|d| {
                            d.iter()
                                .filter_map(|x| x.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    (
                        days,
                        w["start"].as_str().unwrap_or_default().to_owned(),
                        w["end"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn render_campaign(
    user: &AdminUser,
    state: &AppState,
    id: i64,
    errors: HashMap<String, String>,
    rows: Option<Vec<(Vec<String>, String, String)>>,
) -> PageResult {
    let at = now();
    let (c, brand, spend, history) = state
        .db(move |conn| {
            let c = campaigns::get(conn, id, at)?;
            let brand = brands::get(conn, c.brand_id, at)?;
            let page = adbudget_db::repo::PageRequest {
                limit: 20,
                cursor: None,
            };
            let spend = adbudget_db::repo::spend::list(conn, id, None, None, page)?;
            let history = campaigns::history(conn, id, page)?;
            Ok((c, brand, spend.items, history.items))
        })
        .await?;
    let rows = rows.unwrap_or_else(|| rows_of(c.dayparting.as_ref()));
    let money =
        |m: Option<adbudget_core::money::Money>| m.map(|m| m.to_string()).unwrap_or_default();
    Ok(shell(
        user,
        &c.name,
        "Campaigns",
        html! {
            h1 { (c.name) " " span #campaign-state { (view::state(c.is_active, c.pause_reasons)) } }
            p.muted { "Brand " a href={ "/admin/brands/" (brand.id) } { (brand.name) } " · " (brand.timezone) " · campaign #" (c.id) }
            div.grid2 {
                div {
                    div.panel {
                        h2 style="margin-top:0" { "Spend" }
                        label { "Today" @if let Some(cap) = c.daily_cap { " (cap " (cap) ")" } @else { " (no cap)" } } (c.daily_spend)
                        label style="margin-top:8px" { "Brand today" } (bar(brand.daily_spend, brand.daily_budget))
                        label style="margin-top:8px" { "Brand this month" } (bar(brand.monthly_spend, brand.monthly_budget))
                        div style="margin-top:12px;display:flex;gap:8px" {
                            @if c.manually_paused {
                                form method="post" action={ "/admin/campaigns/" (c.id) "/resume" } { (csrf(&user.session.csrf)) button #resume type="submit" { "Resume" } }
                            } @else {
                                form method="post" action={ "/admin/campaigns/" (c.id) "/pause" } { (csrf(&user.session.csrf)) button.secondary #pause type="submit" { "Pause by hand" } }
                            }
                            form method="post" action={ "/admin/campaigns/" (c.id) "/delete" } onsubmit=(view::CONFIRM_CAMPAIGN_DELETE) {
                                (csrf(&user.session.csrf)) button.danger type="submit" { "Delete" }
                            }
                        }
                    }
                    form.panel method="post" action={ "/admin/campaigns/" (c.id) } {
                        (csrf(&user.session.csrf))
                        h2 style="margin-top:0" { "Settings" }
                        (field("Name", "name", &c.name, "text", &errors))
                        (field("Daily cap (empty: none)", "daily_cap", &money(c.daily_cap), "text", &errors))
                        (field("Monthly cap (empty: none)", "monthly_cap", &money(c.monthly_cap), "text", &errors))
                        button type="submit" { "Save" }
                    }
                }
                div { (dayparting_editor(user, &c, &rows, &errors)) }
            }
            h2 { "Status history" }
            table #history {
                thead { tr { th { "When" } th { "State" } th { "Cause" } } }
                tbody { @for h in &history { tr { td { (view::time(h.changed_at)) } td { (view::state(h.is_active, h.pause_reasons)) } td { (h.cause) } } } }
            }
            h2 { "Recent spend " a.muted href={ "/admin/spend?campaign=" (c.id) } { "all" } }
            table #spend {
                thead { tr { th { "Occurred" } th.num { "Amount" } th { "Event id" } } }
                tbody { @for s in &spend { tr { td { (view::time(s.occurred_at)) } td.num { (s.amount) } td.muted { (s.event_id.clone().unwrap_or_default()) } } } }
            }
        },
    ))
}

pub async fn campaign_page(
    user: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> PageResult {
    render_campaign(&user, &state, id.into_inner(), HashMap::new(), None).await
}

pub async fn campaign_update(
    user: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let id = id.into_inner();
    let body = json!({"name": form.text("name"), "daily_cap": optional(&form, "daily_cap"), "monthly_cap": optional(&form, "monthly_cap")});
    let attempt: Result<Campaign, ApiError> = async {
        let changes = from_value::<UpdateCampaign>(body)?.validate()?;
        state
            .db(move |conn| campaigns::update(conn, id, &changes, now(), Cause::CampaignUpdated))
            .await
    }
    .await;
    match attempt {
        Ok(_) => Ok(notice(
            &format!("/admin/campaigns/{id}"),
            Notice::CampaignSaved,
        )),
        Err(e) => render_campaign(&user, &state, id, field_errors(e)?, None).await,
    }
}

pub async fn campaign_dayparting(
    user: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let id = id.into_inner();
    let count: usize = form.text("rows").parse().unwrap_or(0).min(100);
    let mut rows = Vec::new();
    for i in 0..count {
        let (start, end) = (
            form.text(&format!("start_{i}")),
            form.text(&format!("end_{i}")),
        );
        let days: Vec<String> = form
            .all(&format!("days_{i}"))
            .iter()
            .map(|d| d.to_string())
            .collect();
        let removed = form.get(&format!("remove_{i}")) == Some("on");
        if removed || (start.is_empty() && end.is_empty()) {
            continue;
        }
        rows.push((days, start, end));
    }
    let windows: Vec<Value> = rows
        .iter()
        .map(|(days, start, end)| json!({"days": days, "start": start, "end": end}))
        .collect();
    let schedule = if windows.is_empty() {
        Ok(None)
    } else {
        Schedule::from_json(&Value::Array(windows), "dayparting").map(Some)
    };
    match schedule {
        Ok(schedule) => {
            state
                .db(move |conn| campaigns::set_dayparting(conn, id, schedule, now()))
                .await?;
            Ok(notice(
                &format!("/admin/campaigns/{id}"),
                Notice::ScheduleSaved,
            ))
        }
        Err(e) => {
            let errors = HashMap::from([(e.field, e.message)]);
            render_campaign(&user, &state, id, errors, Some(rows)).await
        }
    }
}

async fn manual(
    user: AdminUser,
    state: web::Data<AppState>,
    id: i64,
    form: Form,
    paused: bool,
) -> PageResult {
    check_csrf(&user, &form)?;
    state
        .db(move |conn| campaigns::set_manual_pause(conn, id, paused, now()))
        .await?;
    let done = if paused {
        Notice::Paused
    } else {
        Notice::Resumed
    };
    Ok(notice(&format!("/admin/campaigns/{id}"), done))
}

pub async fn campaign_pause(
    user: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    manual(user, state, id.into_inner(), form, true).await
}

pub async fn campaign_resume(
    user: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    manual(user, state, id.into_inner(), form, false).await
}

pub async fn campaign_delete(
    user: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let id = id.into_inner();
    state.db(move |conn| campaigns::delete(conn, id)).await?;
    Ok(notice("/admin/campaigns", Notice::CampaignDeleted))
}

// ---- spend ----

fn parse_time(v: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M")
        .ok()
        .map(|t| t.and_utc())
}

pub async fn spend_list(user: AdminUser, state: web::Data<AppState>, query: Query) -> PageResult {
    let filter = SpendQuery {
        brand_id: num(&query, "brand"),
        campaign_id: num(&query, "campaign"),
        from: parse_time(q(&query, "from")),
        to: parse_time(q(&query, "to")),
        page: num(&query, "page").unwrap_or(1),
    };
    let f2 = filter.clone();
    let ((listing, sum), brand_names) = state
        .db(move |conn| Ok((admin::spend(conn, &f2)?, admin::brand_names(conn)?)))
        .await?;
    let keep = [
        ("brand", q(&query, "brand").to_owned()),
        ("campaign", q(&query, "campaign").to_owned()),
        ("from", q(&query, "from").to_owned()),
        ("to", q(&query, "to").to_owned()),
    ];
    Ok(shell(
        &user,
        "Spend",
        "Spend",
        html! {
            h1 { "Spend logs" }
            form.toolbar method="get" action="/admin/spend" {
                div { label for="brand" { "Brand" }
                    select #brand name="brand" {
                        option value="" { "all" }
                        @for (id, name) in &brand_names { option value=(id) selected[filter.brand_id == Some(*id)] { (name) } }
                    }
                }
                div { label for="campaign" { "Campaign id" } input #campaign name="campaign" value=(q(&query, "campaign")) size="8"; }
                div { label for="from" { "From (UTC)" } input #from type="datetime-local" name="from" value=(q(&query, "from")); }
                div { label for="to" { "To (UTC)" } input #to type="datetime-local" name="to" value=(q(&query, "to")); }
                button type="submit" { "Filter" }
            }
            p #spend-total { (listing.total) " events, " strong { (sum) } " in all" }
            table #spend-logs {
                thead { tr { th { "Occurred" } th { "Brand" } th { "Campaign" } th.num { "Amount" } th { "Event id" } th { "Received" } } }
                tbody {
                    @for entry in &listing.items {
                        @let (s, campaign, brand) = (&entry.log, &entry.campaign, &entry.brand);
                        tr {
                            td { (view::time(s.occurred_at)) }
                            td { (brand) }
                            td { a href={ "/admin/campaigns/" (s.campaign_id) } { (campaign) } }
                            td.num { (s.amount) }
                            td.muted { (s.event_id.clone().unwrap_or_default()) }
                            td.muted { (view::time(s.received_at)) }
                        }
                    }
                }
            }
            (pager("/admin/spend", &keep, listing.page, listing.pages(), listing.total))
        },
    ))
}
