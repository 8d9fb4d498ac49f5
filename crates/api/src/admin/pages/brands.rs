//! Brands: list, create, edit, delete.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use adbudget_core::forms::{CreateBrand, UpdateBrand, now};
use adbudget_db::repo::admin::{self};
use adbudget_db::repo::brands;
use maud::{Markup, html};

use crate::access::{Permission, ToCreateBrand, ToManage};
use crate::admin::chart;
use crate::admin::session::{AdminUser, Notice, notice};
use crate::admin::view::{self, bar, csrf, field, pager};
use crate::admin::{Form, PageResult, check_csrf, field_errors};
use crate::error::ApiError;
use crate::extract::from_value;
use crate::state::AppState;
use adbudget_core::access::Action;

use super::{Query, form_json, num, q, search_text, shell, sort_link};

pub async fn brand_list(user: AdminUser, state: web::Data<AppState>, query: Query) -> PageResult {
    let (search, sort, page_no) = (
        search_text(&query),
        q(&query, "sort").to_owned(),
        num(&query, "page").unwrap_or(1),
    );
    let (s2, so2, visible) = (search.clone(), sort.clone(), user.principal.brands.clone());
    let listing = state
        .db(move |conn| admin::brands(conn, &s2, &so2, page_no, &visible, now()))
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
                @if user.may(Action::CreateBrand) {
                    a.button href="/admin/brands/new" style="margin-left:auto" { "New brand" }
                }
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

fn brand_form<P: Permission>(
    user: &AdminUser<P>,
    action: &str,
    values: &HashMap<&str, String>,
    errors: &HashMap<String, String>,
    title: &str,
) -> Markup {
    let v = |k: &str| values.get(k).cloned().unwrap_or_default();
    html! {
        h1 { (title) }
        @if !errors.is_empty() { div.flash.bad { "Please correct the fields marked below." } }
        @if user.may(Action::Manage) {
            form.panel method="post" action=(action) style="max-width:520px" {
                (csrf(&user.session.csrf))
                (field("Name", "name", &v("name"), "text", errors))
                (field("Daily budget", "daily_budget", &v("daily_budget"), "text", errors))
                (field("Monthly budget", "monthly_budget", &v("monthly_budget"), "text", errors))
                (field("Timezone (IANA name)", "timezone", &v("timezone"), "text", errors))
                (field("Alert thresholds (% of each budget and cap, comma-separated; empty: none)", "alert_thresholds", &v("alert_thresholds"), "text", errors))
                button type="submit" { "Save" }
            }
        } @else {
            dl.panel #brand-details style="max-width:520px" {
                dt { "Daily budget" } dd { (v("daily_budget")) }
                dt { "Monthly budget" } dd { (v("monthly_budget")) }
                dt { "Timezone" } dd { (v("timezone")) }
                dt { "Alert thresholds (%)" } dd { (v("alert_thresholds")) }
            }
        }
    }
}

/// "50, 80, 100".
fn thresholds_text(t: &adbudget_core::events::AlertThresholds) -> String {
    t.percents()
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The form's alert thresholds ("50, 80, 100"; empty: none) as the API's list; left as it is when
/// the form has no such field.
fn with_thresholds(
    mut body: serde_json::Value,
    form: &Form,
) -> Result<serde_json::Value, ApiError> {
    let Some(text) = form.get("alert_thresholds") else {
        return Ok(body);
    };
    let percents = text
        .split([',', ' '])
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<i64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            ApiError::invalid(
                "alert_thresholds",
                "must be whole percents separated by commas, such as 50, 80, 100",
            )
        })?;
    body["alert_thresholds"] = serde_json::json!(percents);
    Ok(body)
}

pub async fn brand_new(user: AdminUser<ToCreateBrand>) -> HttpResponse {
    let values = HashMap::from([
        ("timezone", "UTC".to_owned()),
        ("alert_thresholds", "50, 80, 100".to_owned()),
    ]);
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

pub async fn brand_create(
    user: AdminUser<ToCreateBrand>,
    state: web::Data<AppState>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let author = user.author();
    let fields = ["name", "daily_budget", "monthly_budget", "timezone"];
    let attempt: Result<_, ApiError> = async {
        let body: CreateBrand = from_value(with_thresholds(form_json(&form, &fields), &form)?)?;
        let new = body.validate()?;
        state
            .db(move |conn| brands::create(conn, &new, now(), &author))
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
            let values = fields
                .iter()
                .chain(&["alert_thresholds"])
                .map(|f| (*f, form.text(f)))
                .collect();
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
    user.brand(id, "brand")?;
    let at = now();
    let (b, charts) = state
        .db(move |conn| {
            Ok((
                brands::get(conn, id, at)?,
                adbudget_db::repo::pacing::brand_charts(conn, id, at)?,
            ))
        })
        .await?;
    let values = HashMap::from([
        ("name", b.name.clone()),
        ("daily_budget", b.daily_budget.to_string()),
        ("monthly_budget", b.monthly_budget.to_string()),
        ("timezone", b.timezone.clone()),
        ("alert_thresholds", thresholds_text(&b.alert_thresholds)),
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
                    p {
                        a href={ "/admin/campaigns?brand=" (id) } { "Campaigns of this brand" }
                        " · " a href={ "/admin/brands/" (id) "/history" } { "History" }
                        @if user.may(Action::Manage) {
                            " · " a href={ "/admin/campaigns/new?brand=" (id) } { "New campaign" }
                        }
                    }
                    @if user.may(Action::Manage) {
                        form method="post" action={ "/admin/brands/" (id) "/delete" } onsubmit=(view::CONFIRM_BRAND_DELETE) {
                            (csrf(&user.session.csrf))
                            button.danger type="submit" { "Delete brand" }
                        }
                    }
                }
            }
            h2 { "Pacing" }
            (chart::period_chart("chart-today", "Today", &charts.today, charts.tz, chart::Period::Day))
            (chart::period_chart("chart-month", "This month", &charts.month, charts.tz, chart::Period::Month))
        },
    ))
}

pub async fn brand_update(
    user: AdminUser<ToManage>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let id = id.into_inner();
    user.brand(id, "brand")?;
    let author = user.author();
    let fields = ["name", "daily_budget", "monthly_budget", "timezone"];
    let attempt: Result<_, ApiError> = async {
        let body: UpdateBrand = from_value(with_thresholds(form_json(&form, &fields), &form)?)?;
        let changes = body.validate()?;
        state
            .db(move |conn| brands::update(conn, id, &changes, now(), &author))
            .await
    }
    .await;
    match attempt {
        Ok(_) => Ok(notice(&format!("/admin/brands/{id}"), Notice::BrandSaved)),
        Err(e) => {
            let errors = field_errors(e)?;
            let values = fields
                .iter()
                .chain(&["alert_thresholds"])
                .map(|f| (*f, form.text(f)))
                .collect();
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
    user: AdminUser<ToManage>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let id = id.into_inner();
    user.brand(id, "brand")?;
    let author = user.author();
    state
        .db(move |conn| brands::delete(conn, id, now(), &author))
        .await?;
    Ok(notice("/admin/brands", Notice::BrandDeleted))
}
