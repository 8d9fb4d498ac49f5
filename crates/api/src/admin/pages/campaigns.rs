//! Campaigns: list with filters and bulk pause/resume, create, edit, dayparting, manual pause,
//! delete.

use std::collections::HashMap;

use actix_web::web;
use adbudget_core::dayparting::Schedule;
use adbudget_core::forms::{CreateCampaign, UpdateCampaign, now};
use adbudget_core::rule::PauseReason;
use adbudget_core::views::Campaign;
use adbudget_db::repo::admin::{self, CampaignQuery};
use adbudget_db::repo::{brands, campaigns, enforce::Cause};
use maud::{Markup, html};
use serde_json::{Value, json};

use crate::access::{Permission, ToManage};
use crate::admin::session::{AdminUser, Notice, notice};
use crate::admin::view::{self, bar, csrf, field, pager};
use crate::admin::{AdminError, Form, PageResult, check_csrf, field_errors};
use crate::error::ApiError;
use crate::extract::from_value;
use crate::state::AppState;
use adbudget_core::access::Action;

use super::{Query, num, optional, q, search_text, shell, sort_link};

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
        visible: user.principal.brands.clone(),
    };
    let f2 = filter.clone();
    let (listing, brand_names) = state
        .db(move |conn| {
            Ok((
                admin::campaigns(conn, &f2, now())?,
                admin::brand_names(conn, &f2.visible)?,
            ))
        })
        .await?;
    let manages = user.may(Action::Manage);
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
                @if manages {
                    a.button href="/admin/campaigns/new" style="margin-left:auto" { "New campaign" }
                }
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
                                td { @if manages { input type="checkbox" name="ids" value=(c.id) aria-label={ "select " (c.name) }; } }
                                td { a href={ "/admin/campaigns/" (c.id) } { (c.name) } }
                                td { a href={ "/admin/brands/" (c.brand_id) } { (brand) } }
                                td.state { (view::state(c.is_active, c.pause_reasons)) }
                                td.num { (c.daily_spend) }
                                td.num { (c.monthly_spend) }
                            }
                        }
                    }
                }
                @if manages {
                    div.toolbar style="margin-top:10px" {
                        select name="action" aria-label="bulk action" {
                            option value="pause" { "Pause selected" }
                            option value="resume" { "Resume selected" }
                        }
                        button #apply-bulk type="submit" { "Apply" }
                    }
                }
            }
            (pager("/admin/campaigns", &with_sort, listing.page, listing.pages(), listing.total))
        },
    ))
}

/// Campaigns one bulk action may change (a page lists 25).
pub const MAX_BULK: usize = 1000;

pub async fn campaign_bulk(
    user: AdminUser<ToManage>,
    state: web::Data<AppState>,
    form: Form,
) -> PageResult {
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
    let (visible, author) = (user.principal.brands.clone(), user.author());
    let n = state
        .db(move |conn| admin::bulk_manual(conn, &ids, pause, &visible, now(), &author))
        .await?;
    let done = if pause {
        Notice::BulkPaused(n)
    } else {
        Notice::BulkResumed(n)
    };
    Ok(notice("/admin/campaigns", done))
}

fn campaign_form<P: Permission>(
    user: &AdminUser<P>,
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
            (field("Lifetime cap (optional)", "lifetime_cap", &v("lifetime_cap"), "text", errors))
            (field("Flight start (optional, brand-local date)", "flight_start", &v("flight_start"), "date", errors))
            (field("Flight end (optional, inclusive)", "flight_end", &v("flight_end"), "date", errors))
            div.field { label { input type="checkbox" name="manually_paused" value="on" checked[v("manually_paused") == "on"]; " start paused" } }
            button type="submit" { "Create" }
        }
    }
}

pub async fn campaign_new(
    user: AdminUser<ToManage>,
    state: web::Data<AppState>,
    query: Query,
) -> PageResult {
    let visible = user.principal.brands.clone();
    let brand_names = state
        .db(move |conn| admin::brand_names(conn, &visible))
        .await?;
    let values = HashMap::from([("brand_id", q(&query, "brand").to_owned())]);
    Ok(shell(
        &user,
        "New campaign",
        "Campaigns",
        campaign_form(&user, &brand_names, &values, &HashMap::new()),
    ))
}

pub async fn campaign_create(
    user: AdminUser<ToManage>,
    state: web::Data<AppState>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let author = user.author();
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
        "lifetime_cap": optional(&form, "lifetime_cap"),
        "flight_start": optional(&form, "flight_start"),
        "flight_end": optional(&form, "flight_end"),
        "manually_paused": form.get("manually_paused") == Some("on"),
    });
    let attempt: Result<Campaign, ApiError> = async {
        let new = from_value::<CreateCampaign>(body)?.validate()?;
        user.brand(new.brand_id, "brand")
            .map_err(|e| e.on_field("brand_id"))?;
        state
            .db(move |conn| campaigns::create(conn, &new, now(), &author))
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
            let visible = user.principal.brands.clone();
            let brand_names = state
                .db(move |conn| admin::brand_names(conn, &visible))
                .await?;
            let values = [
                "brand_id",
                "name",
                "daily_cap",
                "monthly_cap",
                "lifetime_cap",
                "flight_start",
                "flight_end",
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
fn dayparting_editor<P: Permission>(
    user: &AdminUser<P>,
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

async fn render_campaign<P: Permission>(
    user: &AdminUser<P>,
    state: &AppState,
    id: i64,
    errors: HashMap<String, String>,
    rows: Option<Vec<(Vec<String>, String, String)>>,
) -> PageResult {
    user.as_reader().campaign(state, id).await?;
    let manages = user.may(Action::Manage);
    let reverses = user.may(Action::ReverseSpend);
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
    let date = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    Ok(shell(
        user,
        &c.name,
        "Campaigns",
        html! {
            h1 { (c.name) " " span #campaign-state { (view::state(c.is_active, c.pause_reasons)) } }
            p.muted { "Brand " a href={ "/admin/brands/" (brand.id) } { (brand.name) } " · " (brand.timezone) " · campaign #" (c.id) " · " a href={ "/admin/campaigns/" (c.id) "/history" } { "History" } }
            div.grid2 {
                div {
                    div.panel {
                        h2 style="margin-top:0" { "Spend" }
                        label { "Today" @if let Some(cap) = c.daily_cap { " (cap " (cap) ")" } @else { " (no cap)" } } (c.daily_spend)
                        @if let Some(cap) = c.lifetime_cap {
                            label style="margin-top:8px" { "Lifetime (cap " (cap) ")" } (bar(c.lifetime_spend, cap))
                        }
                        label style="margin-top:8px" { "Brand today" } (bar(brand.daily_spend, brand.daily_budget))
                        label style="margin-top:8px" { "Brand this month" } (bar(brand.monthly_spend, brand.monthly_budget))
                        @if manages { div style="margin-top:12px;display:flex;gap:8px" {
                            @if c.manually_paused {
                                form method="post" action={ "/admin/campaigns/" (c.id) "/resume" } { (csrf(&user.session.csrf)) button #resume type="submit" { "Resume" } }
                            } @else {
                                form method="post" action={ "/admin/campaigns/" (c.id) "/pause" } { (csrf(&user.session.csrf)) button.secondary #pause type="submit" { "Pause by hand" } }
                            }
                            form method="post" action={ "/admin/campaigns/" (c.id) "/delete" } onsubmit=(view::CONFIRM_CAMPAIGN_DELETE) {
                                (csrf(&user.session.csrf)) button.danger type="submit" { "Delete" }
                            }
                        } }
                    }
                    @if manages {
                        form.panel method="post" action={ "/admin/campaigns/" (c.id) } {
                            (csrf(&user.session.csrf))
                            h2 style="margin-top:0" { "Settings" }
                            (field("Name", "name", &c.name, "text", &errors))
                            (field("Daily cap (empty: none)", "daily_cap", &money(c.daily_cap), "text", &errors))
                            (field("Monthly cap (empty: none)", "monthly_cap", &money(c.monthly_cap), "text", &errors))
                            (field("Lifetime cap (empty: none)", "lifetime_cap", &money(c.lifetime_cap), "text", &errors))
                            (field("Flight start (empty: open)", "flight_start", &date(c.flight_start), "date", &errors))
                            (field("Flight end (empty: open)", "flight_end", &date(c.flight_end), "date", &errors))
                            button type="submit" { "Save" }
                        }
                    } @else {
                        dl.panel #campaign-details {
                            dt { "Daily cap" } dd { (money(c.daily_cap)) }
                            dt { "Monthly cap" } dd { (money(c.monthly_cap)) }
                            dt { "Lifetime cap" } dd { (money(c.lifetime_cap)) }
                            dt { "Flight" } dd { (date(c.flight_start)) " – " (date(c.flight_end)) }
                        }
                    }
                }
                div {
                    @if manages {
                        (dayparting_editor(user, &c, &rows, &errors))
                    } @else {
                        div.panel #dayparting-view {
                            h2 style="margin-top:0" { "Dayparting" }
                            @if rows.is_empty() { p { "No windows: runs at all hours." } }
                            ul { @for (days, start, end) in &rows { li { (days.join(", ")) " " (start) "–" (end) } } }
                        }
                    }
                }
            }
            h2 { "Status history" }
            table #history {
                thead { tr { th { "When" } th { "State" } th { "Cause" } } }
                tbody { @for h in &history { tr { td { (view::time(h.changed_at)) } td { (view::state(h.is_active, h.pause_reasons)) } td { (h.cause) } } } }
            }
            h2 { "Recent spend " a.muted href={ "/admin/spend?campaign=" (c.id) } { "all" } }
            table #spend {
                thead { tr { th { "Occurred" } th.num { "Amount" } th { "Event id" } th {} } }
                tbody { @for s in &spend { tr data-spend=(s.id) {
                    td { (view::time(s.occurred_at)) } td.num { (s.amount) } td.muted { (s.event_id.clone().unwrap_or_default()) }
                    td { (view::reversal(s, reverses.then_some(user.session.csrf.as_str()))) }
                } } }
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
    user: AdminUser<ToManage>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let id = id.into_inner();
    user.campaign(&state, id).await?;
    let author = user.author();
    let body = json!({
        "name": form.text("name"),
        "daily_cap": optional(&form, "daily_cap"),
        "monthly_cap": optional(&form, "monthly_cap"),
        "lifetime_cap": optional(&form, "lifetime_cap"),
        "flight_start": optional(&form, "flight_start"),
        "flight_end": optional(&form, "flight_end"),
    });
    let attempt: Result<Campaign, ApiError> = async {
        let changes = from_value::<UpdateCampaign>(body)?.validate()?;
        state
            .db(move |conn| {
                campaigns::update(conn, id, &changes, now(), Cause::CampaignUpdated, &author)
            })
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
    user: AdminUser<ToManage>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let id = id.into_inner();
    user.campaign(&state, id).await?;
    let author = user.author();
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
                .db(move |conn| campaigns::set_dayparting(conn, id, schedule, now(), &author))
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
    user: AdminUser<ToManage>,
    state: web::Data<AppState>,
    id: i64,
    form: Form,
    paused: bool,
) -> PageResult {
    check_csrf(&user, &form)?;
    user.campaign(&state, id).await?;
    let author = user.author();
    state
        .db(move |conn| campaigns::set_manual_pause(conn, id, paused, now(), &author))
        .await?;
    let done = if paused {
        Notice::Paused
    } else {
        Notice::Resumed
    };
    Ok(notice(&format!("/admin/campaigns/{id}"), done))
}

pub async fn campaign_pause(
    user: AdminUser<ToManage>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    manual(user, state, id.into_inner(), form, true).await
}

pub async fn campaign_resume(
    user: AdminUser<ToManage>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    manual(user, state, id.into_inner(), form, false).await
}

pub async fn campaign_delete(
    user: AdminUser<ToManage>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let id = id.into_inner();
    user.campaign(&state, id).await?;
    let author = user.author();
    state
        .db(move |conn| campaigns::delete(conn, id, now(), &author))
        .await?;
    Ok(notice("/admin/campaigns", Notice::CampaignDeleted))
}
