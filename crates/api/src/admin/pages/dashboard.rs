//! The dashboard: counts and what changed lately.

use actix_web::web;
use adbudget_core::forms::now;
use adbudget_core::rule::PauseReason;
use adbudget_db::repo::{brands, campaigns, pacing};
use maud::html;

use crate::admin::PageResult;
use crate::admin::chart::status_badge;
use crate::admin::session::AdminUser;
use crate::admin::view::bar;
use crate::state::AppState;

use super::shell;

pub async fn dashboard(user: AdminUser, state: web::Data<AppState>) -> PageResult {
    let at = now();
    let visible = user.principal.brands.clone();
    let (brand_list, paces, counts) = state
        .db(move |conn| {
            let brands = brands::list(
                conn,
                &visible,
                adbudget_db::repo::PageRequest {
                    limit: 500,
                    cursor: None,
                },
                at,
            )?;
            let paces = pacing::of_brands(conn, &brands.items, at)?;
            Ok((
                brands.items,
                paces,
                campaigns::count_by_reasons_in(conn, &visible)?,
            ))
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
                    thead { tr { th { "Brand" } th { "Timezone" } th { "Today" } th { "Pace today" } th { "This month" } th { "Pace this month" } } }
                    tbody {
                        @for (b, p) in brand_list.iter().zip(&paces) {
                            tr data-brand=(b.id) {
                                td { a href={ "/admin/brands/" (b.id) } { (b.name) } }
                                td.muted { (b.timezone) }
                                td.daily { (bar(b.daily_spend, b.daily_budget)) }
                                td.pace-today { (status_badge(p.today.status)) }
                                td.monthly { (bar(b.monthly_spend, b.monthly_budget)) }
                                td.pace-month { (status_badge(p.month.status)) }
                            }
                        }
                    }
                }
            }
        },
    ))
}
