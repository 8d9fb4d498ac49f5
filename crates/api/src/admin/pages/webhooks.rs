//! Webhook endpoints with their health and delivery log, and the event browser (SPEC §7, §9).

use actix_web::web;
use adbudget_core::events::{Cursor, EventType};
use adbudget_core::forms::now;
use adbudget_core::webhooks::{Endpoint, check_url};
use adbudget_db::repo::events::{self, FeedQuery};
use adbudget_db::repo::webhooks::{self, NewEndpoint};
use maud::{Markup, html};

use crate::access::ToAdminister;
use crate::admin::session::{AdminUser, Notice, notice};
use crate::admin::view::{self, csrf};
use crate::admin::{AdminError, Form, PageResult, check_csrf};
use crate::error::ApiError;
use crate::state::AppState;

use super::{Query, num, q, shell};

fn list_or_all<T: ToString>(v: &Option<Vec<T>>) -> String {
    v.as_ref().map_or("all".to_owned(), |v| {
        v.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
    })
}

fn health(e: &Endpoint) -> Markup {
    html! {
        @if !e.enabled {
            span.badge data-status="disabled" { "disabled" }
            " " (e.disabled_reason.clone().unwrap_or_default())
        } @else if e.failure_streak > 0 {
            span.badge data-status="failing" { "failing" }
            " " (e.failure_streak) " attempt(s) in a row"
        } @else {
            span.badge data-status="healthy" { "healthy" }
        }
    }
}

async fn list_page(
    user: &AdminUser<ToAdminister>,
    state: &AppState,
    created: Option<(&str, &str)>,
    error: Option<&str>,
) -> PageResult {
    let visible = user.principal.brands.clone();
    let all = state.db(move |conn| webhooks::list(conn, &visible)).await?;
    Ok(shell(
        user,
        "Webhooks",
        "Webhooks",
        html! {
            h1 { "Webhooks" }
            @if let Some((url, secret)) = created {
                div.flash #webhook-secret role="status" {
                    "Endpoint " (url) " created. Its signing secret, shown this once: " code { (secret) }
                }
            }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            table #webhooks {
                thead { tr { th { "URL" } th { "Events" } th { "Brands" } th { "Health" } th { "Last success" } } }
                tbody {
                    @for e in &all {
                        tr data-webhook=(e.id) {
                            td { a href={ "/admin/webhooks/" (e.id) } { (e.url) } }
                            td { (list_or_all(&e.event_types)) }
                            td { (list_or_all(&e.brand_ids)) }
                            td.health { (health(e)) }
                            td { (e.last_success_at.map(view::time).unwrap_or("—".into())) }
                        }
                    }
                }
            }
            h2 { "New endpoint" }
            form #new-webhook method="post" action="/admin/webhooks" {
                (csrf(&user.session.csrf))
                label { "URL " input #webhook-url type="url" name="url" required; }
                label { "Event types (comma-separated; empty: all) " input #webhook-types type="text" name="event_types"; }
                label { "Brand ids (comma-separated; empty: all) " input #webhook-brands type="text" name="brand_ids"; }
                button type="submit" { "Create" }
            }
        },
    ))
}

pub async fn webhook_list(user: AdminUser<ToAdminister>, state: web::Data<AppState>) -> PageResult {
    list_page(&user, &state, None, None).await
}

fn comma_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub async fn webhook_create(
    user: AdminUser<ToAdminister>,
    state: web::Data<AppState>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let attempt: Result<(String, String), ApiError> = async {
        let url = check_url(&form.text("url"), state.webhook_allow_private)?.to_string();
        let types = comma_list(&form.text("event_types"));
        let event_types = if types.is_empty() {
            None
        } else {
            Some(EventType::subscribable(&types, "event_types")?)
        };
        let ids = comma_list(&form.text("brand_ids"));
        let brand_ids = if ids.is_empty() {
            None
        } else {
            Some(
                ids.iter()
                    .map(|s| {
                        s.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                            ApiError::invalid("brand_ids", format!("{s:?} is not a brand id"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        let new = NewEndpoint {
            url,
            description: String::new(),
            event_types,
            brand_ids,
        };
        let author = user.author();
        let (e, secret) = state
            .db(move |conn| webhooks::create(conn, &new, now(), &author))
            .await?;
        Ok((e.url, secret))
    }
    .await;
    match attempt {
        Ok((url, secret)) => list_page(&user, &state, Some((&url, &secret)), None).await,
        Err(e @ (ApiError::Unavailable(_) | ApiError::Internal(_))) => Err(AdminError(e)),
        Err(e) => {
            let message = e.to_string();
            let mut page = list_page(&user, &state, None, Some(&message)).await?;
            *page.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(page)
        }
    }
}

/// One endpoint: its health and delivery log, a test ping and redelivery.
pub async fn webhook_page(
    user: AdminUser<ToAdminister>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> PageResult {
    let (id, visible) = (id.into_inner(), user.principal.brands.clone());
    let (endpoint, log) = state
        .db(move |conn| {
            Ok((
                webhooks::get(conn, id, &visible)?,
                webhooks::deliveries(conn, id, &visible, 100)?,
            ))
        })
        .await?;
    let token = user.session.csrf.clone();
    Ok(shell(
        &user,
        &format!("Webhook {}", endpoint.url),
        "Webhooks",
        html! {
            h1 { "Webhook " (endpoint.url) }
            p #health { (health(&endpoint)) }
            p { "Last success: " (endpoint.last_success_at.map(view::time).unwrap_or("—".into()))
                @if let Some(since) = endpoint.failing_since { " · failing since " (view::time(since)) } }
            form method="post" action={ "/admin/webhooks/" (id) "/test" } {
                (csrf(&token)) button #ping type="submit" { "Send a test ping" }
            }
            h2 { "Deliveries" }
            table #deliveries {
                thead { tr { th { "Event" } th { "Type" } th { "Status" } th { "Attempts" } th { "" } } }
                tbody {
                    @for d in &log {
                        tr data-delivery=(d.id) data-status=(d.status) {
                            td { (d.event_id) }
                            td { (d.event_type) }
                            td.status { (d.status)
                                @if let Some(next) = d.next_attempt_at { " (next " (view::time(next)) ")" } }
                            td { ul.attempts { @for a in &d.attempts {
                                li { (view::time(a.at)) " · "
                                    (a.status_code.map_or("no answer".to_owned(), |s| s.to_string()))
                                    " · " (a.latency_ms) " ms"
                                    @if let Some(e) = &a.error { " · " (e) } }
                            } } }
                            td { form method="post" action={ "/admin/webhooks/" (id) "/deliveries/" (d.id) "/redeliver" } {
                                (csrf(&token)) button.redeliver type="submit" { "Redeliver" }
                            } }
                        }
                    }
                }
            }
        },
    ))
}

pub async fn webhook_test(
    user: AdminUser<ToAdminister>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let (id, visible) = (id.into_inner(), user.principal.brands.clone());
    state
        .db(move |conn| webhooks::ping(conn, id, &visible, now()))
        .await?;
    state.nudge();
    Ok(notice(
        &format!("/admin/webhooks/{id}"),
        Notice::WebhookQueued,
    ))
}

pub async fn webhook_redeliver(
    user: AdminUser<ToAdminister>,
    state: web::Data<AppState>,
    path: web::Path<(i64, i64)>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let ((id, delivery), visible) = (path.into_inner(), user.principal.brands.clone());
    state
        .db(move |conn| webhooks::redeliver(conn, id, delivery, &visible, now()))
        .await?;
    state.nudge();
    Ok(notice(
        &format!("/admin/webhooks/{id}"),
        Notice::WebhookQueued,
    ))
}

/// The change feed, newest page first from a cursor, filtered by type and brand.
pub async fn event_list(user: AdminUser, state: web::Data<AppState>, query: Query) -> PageResult {
    let event_type = q(&query, "type").parse::<EventType>().ok();
    let brand_id = num(&query, "brand_id").filter(|b| user.principal.brands.allows(*b));
    let after = q(&query, "after").parse::<Cursor>().unwrap_or_default();
    let feed = FeedQuery {
        after,
        limit: 100,
        event_type,
        brand_id,
        visible: user.principal.brands.clone(),
    };
    let page = state.db(move |conn| Ok(events::feed(conn, &feed)?)).await?;
    let more = page.items.len() == 100;
    let next = view::url_with(
        "/admin/events",
        &[
            ("type", q(&query, "type").to_owned()),
            (
                "brand_id",
                brand_id.map(|b| b.to_string()).unwrap_or_default(),
            ),
            ("after", page.next_cursor.to_string()),
        ],
    );
    Ok(shell(
        &user,
        "Events",
        "Events",
        html! {
            h1 { "Events" }
            form method="get" action="/admin/events" {
                label { "Type " select name="type" {
                    option value="" { "all" }
                    @for t in EventType::ALL.iter().filter(|t| **t != EventType::Ping) {
                        option value=(t.name()) selected[event_type == Some(*t)] { (t.name()) }
                    }
                } }
                label { "Brand id " input type="number" name="brand_id" value=(brand_id.map(|b| b.to_string()).unwrap_or_default()); }
                button type="submit" { "Filter" }
            }
            table #events {
                thead { tr { th { "Id" } th { "When" } th { "Type" } th { "Brand" } th { "Data" } } }
                tbody {
                    @for e in &page.items {
                        tr data-event=(e.id) data-type=(e.event_type.name()) {
                            td { (e.id) }
                            td { (view::time(e.created_at)) }
                            td { (e.event_type.name()) }
                            td { (e.brand_id.map(|b| b.to_string()).unwrap_or_default()) }
                            td { code { (e.data.to_string()) } }
                        }
                    }
                }
            }
            @if more { p { a href=(next) { "Later events" } } }
        },
    ))
}
