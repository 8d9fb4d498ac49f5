use actix_web::{HttpRequest, HttpResponse, web};
use adbudget_core::forms::{SpendBatch, SpendEvent, now};
use adbudget_core::views::{Campaign, Page, SpendLog};
use adbudget_db::repo::spend;
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::{Caller, ToPostSpend, ToRead, ToReverse};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Bearer, JsonBody, QueryParams, read_json};
use crate::state::AppState;

/// A recorded spend event and its campaign as it is after the event.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpendResult {
    pub spend: SpendLog,
    pub campaign: Campaign,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// Events newly recorded.
    pub recorded: usize,
    /// Events whose `event_id` was already recorded with the same payload (counted once).
    pub replayed: usize,
    /// The spend log of every event, in request order.
    pub spend: Vec<SpendLog>,
    /// Every campaign of the batch as it is after it.
    pub campaigns: Vec<Campaign>,
}

/// Counts what a spend request recorded, for `/metrics`.
fn observe(outcomes: &[spend::Outcome], endpoint: &'static str, started: std::time::Instant) {
    let new: Vec<&spend::Outcome> = outcomes.iter().filter(|o| o.is_new()).collect();
    metrics::counter!("adbudget_spend_events_total", "outcome" => "recorded")
        .increment(new.len() as u64);
    metrics::counter!("adbudget_spend_events_total", "outcome" => "replayed")
        .increment((outcomes.len() - new.len()) as u64);
    // Unsigned and saturating: a batch of 10,000 events at the limit is 10^19 micro-units.
    let micros = new.iter().fold(0u64, |sum, o| {
        sum.saturating_add(o.log().amount.micros().unsigned_abs())
    });
    metrics::counter!("adbudget_spend_amount_micros_total").increment(micros);
    if endpoint == "batch" {
        // Single events are counted by the group-commit writer, per committed batch.
        metrics::histogram!("adbudget_spend_batch_size").record(outcomes.len() as f64);
    }
    metrics::histogram!("adbudget_spend_request_duration_seconds", "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
}

/// Records one spend event. The response shows the campaign after the event: if it reached a
/// budget, the campaign (and every campaign of the brand, for brand budgets) is already paused.
#[utoipa::path(post, operation_id = "record_spend", path = "/api/v1/spend", tag = "spend", request_body = SpendEvent,
    responses((status = 201, body = SpendResult), (status = 200, body = SpendResult, description = "A replay of a recorded event_id: nothing counted"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "event_id recorded with a different payload"),
        (status = 413, body = ErrorBody, description = "The body is over 16 KiB"), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record(
    req: HttpRequest,
    bearer: Bearer,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    // The token first (a verdict at most a second old), so that nothing is read for a caller
    // without a live token and nothing of theirs waits in the group-commit queue. The writer
    // checks it again with its batch, so a revocation is refused from the next commit on.
    let live = bearer.authenticate_cached(&state).await?;
    if !live
        .principal()
        .may(adbudget_core::access::Action::PostSpend)
    {
        return Err(ApiError::forbidden(
            "this token may not post spend (its scope is read)",
        ));
    }
    let at = now();
    let event = read_json::<SpendEvent>(&req, payload).await?.validate(at)?;
    let (outcome, campaign) = state.spend_writer.record(event, bearer.0).await?;
    observe(std::slice::from_ref(&outcome), "single", started);
    let mut resp = if outcome.is_new() {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(resp.json(SpendResult {
        spend: outcome.log().clone(),
        campaign,
    }))
}

/// Records up to 10,000 events: validated all or nothing and applied in one transaction.
#[utoipa::path(post, operation_id = "record_spend_batch", path = "/api/v1/spend/batch", tag = "spend", request_body = SpendBatch,
    responses((status = 201, body = BatchResult), (status = 200, body = BatchResult, description = "Every event was a replay"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record_batch(
    req: HttpRequest,
    caller: Caller<ToPostSpend>,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    // Read only now that the token is checked (extractors run side by side).
    let batch: SpendBatch = read_json(&req, payload).await?;
    let at = now();
    let mut events = batch.validate(at)?;
    // A token bound to brands may post only to their campaigns: one event to another brand's
    // refuses the whole batch (403), where the campaigns are looked up.
    for e in &mut events {
        e.posted_by = caller.principal.actor.id;
        e.allowed = caller.brands().clone();
    }
    let recorded = state
        .db(move |conn| spend::record(conn, &events, at, spend::Mode::Batch))
        .await?;
    observe(&recorded.outcomes, "batch", started);
    let new = recorded.outcomes.iter().filter(|o| o.is_new()).count();
    let result = BatchResult {
        recorded: new,
        replayed: recorded.outcomes.len() - new,
        spend: recorded.outcomes.iter().map(|o| o.log().clone()).collect(),
        campaigns: recorded.campaigns,
    };
    let mut resp = if new > 0 {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(resp.json(result))
}

/// Spend logs of a campaign, newest first; `from` (inclusive) and `to` (exclusive) filter `occurred_at`.
#[utoipa::path(get, operation_id = "list_campaign_spend", path = "/api/v1/campaigns/{id}/spend", tag = "campaigns",
    params(("id" = i64, Path), ("from" = Option<String>, Query, description = "RFC 3339"), ("to" = Option<String>, Query, description = "RFC 3339"),
        ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<SpendLog>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    caller: Caller<ToRead>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: QueryParams,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.campaign(&state, id).await?;
    let page = query.page()?;
    let (from, to) = (query.time("from")?, query.time("to")?);
    let logs = state
        .db(move |conn| spend::list(conn, id, from, to, page))
        .await?;
    Ok(HttpResponse::Ok().json(logs))
}

/// Why a spend is reversed.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReverseSpend {
    /// Why (1 to 1,000 characters): shown beside the reversal and in the audit trail.
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        example = "duplicate event sent by the connector"
    )]
    pub reason: String,
}

/// A reversed spend log, the compensating entry that reverses it, and the campaign after the rule
/// was re-applied.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReversalResult {
    pub reversed: SpendLog,
    pub reversal: SpendLog,
    pub campaign: Campaign,
}

/// Reverses a recorded spend (admin tokens): a compensating spend log of the opposite amount is
/// recorded, the day and month totals it counted toward go down, and the rule is re-applied to
/// the brand's campaigns at once (some may resume). Nothing is edited or deleted. A spend is
/// reversed once: a second reversal is a 409.
#[utoipa::path(post, operation_id = "reverse_spend", path = "/api/v1/spend/{id}/reverse", tag = "spend",
    params(("id" = i64, Path, description = "The spend log's id")), request_body = ReverseSpend,
    responses((status = 200, body = ReversalResult), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Already reversed, or a reversal itself"), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reverse(
    caller: Caller<ToReverse>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    JsonBody(body): JsonBody<ReverseSpend>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (visible, author) = (caller.brands().clone(), caller.author());
    let reversed = state
        .db(move |conn| spend::reverse(conn, id, &body.reason, &visible, now(), &author))
        .await?;
    Ok(HttpResponse::Ok().json(ReversalResult {
        reversed: reversed.reversed,
        reversal: reversed.reversal,
        campaign: reversed.campaign,
    }))
}
