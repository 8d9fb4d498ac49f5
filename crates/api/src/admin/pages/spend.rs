//! Spend logs: the list with filters.

use actix_web::web;
use adbudget_db::repo::admin::{self, SpendQuery};
use maud::html;

use crate::admin::PageResult;
use crate::admin::session::AdminUser;
use crate::admin::view::{self, pager};
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
