//! `GET /api/v1/events`: the change feed (SPEC §9). Its order and why a cursor never skips an
//! event are `adbudget_db::repo::events`'s.

use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use adbudget_core::events::{Cursor, Envelope, EventType};
use adbudget_db::repo::events::{self, FeedQuery};
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::{Caller, ToRead};
use crate::error::{ApiError, ErrorBody};
use crate::extract::QueryParams;
use crate::state::AppState;

/// The longest a request may wait for an event.
pub const MAX_WAIT_SECS: u64 = 60;
/// How often a waiting request looks again.
const POLL: Duration = Duration::from_millis(200);

/// A page of the change feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// The events after `after`, in the feed's order.
    pub items: Vec<Envelope>,
    /// Pass as `after` to continue: past every event this page could have held, so a consumer
    /// that always continues from it receives every event once.
    #[schema(example = "812-42")]
    pub next_cursor: String,
}

impl QueryParams {
    fn wait(&self) -> Result<Duration, ApiError> {
        let Some(v) = self.raw("wait") else {
            return Ok(Duration::ZERO);
        };
        v.parse::<u64>()
            .ok()
            .filter(|n| *n <= MAX_WAIT_SECS)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                ApiError::invalid(
                    "wait",
                    format!("must be a whole number of seconds from 0 to {MAX_WAIT_SECS}"),
                )
            })
    }
}

/// The change feed: every event (state changes, thresholds, reversals) in a total order. Follow
/// `next_cursor` to receive each event exactly once, however the transactions that wrote them
/// interleaved. With `wait`, the request is held until an event arrives (at most `wait` seconds)
/// when none is newer than `after`. A brand-bound token sees its brands' events only. Events are
/// kept for `ADBUDGET_EVENT_RETENTION_DAYS` (default 30).
#[utoipa::path(get, operation_id = "list_events", path = "/api/v1/events", tag = "events",
    params(("after" = Option<String>, Query, description = "A `next_cursor` of this feed; from the oldest kept event when left out or empty"),
        ("limit" = Option<i64>, Query, description = "1 to 500, default 50"),
        ("type" = Option<String>, Query, description = "Only events of this type: `campaign.paused`, `campaign.resumed`, `budget.threshold_reached`, `spend.reversed`"),
        ("brand_id" = Option<i64>, Query, description = "Only events of this brand"),
        ("wait" = Option<u64>, Query, description = "Seconds (0 to 60) to wait for an event when there is none yet")),
    responses((status = 200, body = EventPage), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    caller: Caller<ToRead>,
    state: web::Data<AppState>,
    query: QueryParams,
) -> Result<HttpResponse, ApiError> {
    let after = query
        .raw("after")
        .filter(|a| !a.is_empty())
        .map(str::parse::<Cursor>)
        .transpose()?
        .unwrap_or_default();
    let event_type = query.raw("type").map(str::parse::<EventType>).transpose()?;
    let brand_id = query.id("brand_id")?;
    if let Some(b) = brand_id {
        // Another brand's events are simply not there for a bound token.
        caller.brand(b)?;
    }
    let feed = FeedQuery {
        after,
        limit: query.page()?.limit,
        event_type,
        brand_id,
        visible: caller.brands().clone(),
    };
    let deadline = Instant::now() + query.wait()?;
    loop {
        let q = feed.clone();
        let page = state.db(move |conn| Ok(events::feed(conn, &q)?)).await?;
        if !page.items.is_empty() || Instant::now() + POLL > deadline {
            return Ok(HttpResponse::Ok().json(EventPage {
                items: page.items,
                next_cursor: page.next_cursor.to_string(),
            }));
        }
        tokio::time::sleep(POLL).await;
    }
}
