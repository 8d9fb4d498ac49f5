//! Spend logs: the list with filters, and reversal.

use actix_web::web;
use adbudget_core::access::Action;
use adbudget_core::forms::now;
use adbudget_db::repo::admin::{self, SpendQuery};
use adbudget_db::repo::spend;
use maud::html;

use crate::access::ToReverse;
use crate::admin::session::{AdminUser, Notice, notice};
use crate::admin::view::{self, pager};
use crate::admin::{Form, PageResult, check_csrf};
use crate::state::AppState;

use super::{Query, num, q, shell};

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
        visible: user.principal.brands.clone(),
    };
    let f2 = filter.clone();
    let ((listing, sum), brand_names) = state
        .db(move |conn| {
            Ok((
                admin::spend(conn, &f2)?,
                admin::brand_names(conn, &f2.visible)?,
            ))
        })
        .await?;
    let reverses = user.may(Action::ReverseSpend);
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
                thead { tr { th { "Occurred" } th { "Brand" } th { "Campaign" } th.num { "Amount" } th { "Event id" } th { "Received" } th { "Reversal" } } }
                tbody {
                    @for entry in &listing.items {
                        @let (s, campaign, brand) = (&entry.log, &entry.campaign, &entry.brand);
                        tr data-spend=(s.id) {
                            td { (view::time(s.occurred_at)) }
                            td { (brand) }
                            td { a href={ "/admin/campaigns/" (s.campaign_id) } { (campaign) } }
                            td.num { (s.amount) }
                            td.muted { (s.event_id.clone().unwrap_or_default()) }
                            td.muted { (view::time(s.received_at)) }
                            td { (view::reversal(s, reverses.then_some(user.session.csrf.as_str()))) }
                        }
                    }
                }
            }
            (pager("/admin/spend", &keep, listing.page, listing.pages(), listing.total))
        },
    ))
}

/// Reverses a spend log with the form's reason (SPEC §3): back to the list, where the reversal
/// shows beside it.
pub async fn spend_reverse(
    user: AdminUser<ToReverse>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let id = id.into_inner();
    let (reason, visible, author) = (
        form.text("reason"),
        user.principal.brands.clone(),
        user.author(),
    );
    let reversed = state
        .db(move |conn| spend::reverse(conn, id, &reason, &visible, now(), &author))
        .await?;
    Ok(notice(
        &format!("/admin/spend?campaign={}", reversed.reversed.campaign_id),
        Notice::SpendReversed,
    ))
}
