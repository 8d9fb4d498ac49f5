use actix_web::{HttpResponse, web};
use adbudget_core::dayparting::Schedule;
use adbudget_core::forms::{CreateCampaign, UpdateCampaign, now};
use adbudget_core::views::{Campaign, Page, StatusChange};
use adbudget_db::repo::campaigns::{self, CampaignFilter};
use adbudget_db::repo::enforce::Cause;

use crate::access::{Caller, ToManage, ToRead};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;

/// Creates a campaign in a brand, with optional caps, dayparting schedule, flight and lifetime cap;
/// its state (active or paused, with the reasons) follows from the rule at once.
#[utoipa::path(post, operation_id = "create_campaign", path = "/api/v1/campaigns", tag = "campaigns", request_body = CreateCampaign,
    responses((status = 201, body = Campaign), (status = 404, body = ErrorBody, description = "No such brand"),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    caller: Caller<ToManage>,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<CreateCampaign>,
) -> Result<HttpResponse, ApiError> {
    let new = body.validate()?;
    caller
        .brand(new.brand_id)
        .map_err(|e| e.on_field("brand_id"))?;
    let author = caller.author();
    let campaign = state
        .db(move |conn| campaigns::create(conn, &new, now(), &author))
        .await?;
    Ok(HttpResponse::Created().json(campaign))
}

/// The campaigns the caller sees, by id; `brand_id` and `active` filter.
#[utoipa::path(get, operation_id = "list_campaigns", path = "/api/v1/campaigns", tag = "campaigns",
    params(("brand_id" = Option<i64>, Query), ("active" = Option<bool>, Query),
        ("limit" = Option<i64>, Query, description = "1 to 500, default 50"), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Campaign>), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    caller: Caller<ToRead>,
    state: web::Data<AppState>,
    query: QueryParams,
) -> Result<HttpResponse, ApiError> {
    let page = query.page()?;
    let filter = CampaignFilter {
        brand_id: query.id("brand_id")?,
        active: query.bool("active")?,
        visible: caller.brands().clone(),
    };
    let list = state
        .db(move |conn| campaigns::list(conn, &filter, page, now()))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// One campaign: its state and pause reasons, spend, caps, schedule and flight.
#[utoipa::path(get, operation_id = "get_campaign", path = "/api/v1/campaigns/{id}", tag = "campaigns", params(("id" = i64, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    caller: Caller<ToRead>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.campaign(&state, id).await?;
    let campaign = state
        .db(move |conn| campaigns::get(conn, id, now()))
        .await?;
    Ok(HttpResponse::Ok().json(campaign))
}

/// Changes a campaign; a field left out is unchanged, `null` clears a cap, the schedule or a
/// flight date. The rule is applied at once.
#[utoipa::path(patch, operation_id = "update_campaign", path = "/api/v1/campaigns/{id}", tag = "campaigns", params(("id" = i64, Path)), request_body = UpdateCampaign,
    responses((status = 200, body = Campaign), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    caller: Caller<ToManage>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    JsonBody(body): JsonBody<UpdateCampaign>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.campaign(&state, id).await?;
    let author = caller.author();
    let changes = body.validate()?;
    let campaign = state
        .db(move |conn| {
            campaigns::update(conn, id, &changes, now(), Cause::CampaignUpdated, &author)
        })
        .await?;
    Ok(HttpResponse::Ok().json(campaign))
}

/// Deletes a campaign with its spend logs and history.
#[utoipa::path(delete, operation_id = "delete_campaign", path = "/api/v1/campaigns/{id}", tag = "campaigns", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted with its spend and history"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    caller: Caller<ToManage>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.campaign(&state, id).await?;
    let author = caller.author();
    state
        .db(move |conn| campaigns::delete(conn, id, now(), &author))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Replaces the schedule. The body is a list of windows, `{"windows": [...]}`, one window, or the
/// original's `{"start_hour": 9, "end_hour": 17}`.
#[utoipa::path(put, operation_id = "put_dayparting", path = "/api/v1/campaigns/{id}/dayparting", tag = "campaigns", params(("id" = i64, Path)),
    request_body(content = adbudget_core::dayparting::schema::Dayparting, description = "A list of windows `[{\"days\": [\"mon\"], \"start\": \"09:00\", \"end\": \"17:00\"}]`, `{\"windows\": [...]}`, or one window, such as the original's `{\"start_hour\": 9, \"end_hour\": 17}`"),
    responses((status = 200, body = Campaign), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_dayparting(
    caller: Caller<ToManage>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.campaign(&state, id).await?;
    let author = caller.author();
    let schedule = Schedule::from_json(&body, "dayparting")?;
    let campaign = state
        .db(move |conn| campaigns::set_dayparting(conn, id, Some(schedule), now(), &author))
        .await?;
    Ok(HttpResponse::Ok().json(campaign))
}

/// Removes the schedule: the campaign may run at all hours.
#[utoipa::path(delete, operation_id = "delete_dayparting", path = "/api/v1/campaigns/{id}/dayparting", tag = "campaigns", params(("id" = i64, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_dayparting(
    caller: Caller<ToManage>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.campaign(&state, id).await?;
    let author = caller.author();
    let campaign = state
        .db(move |conn| campaigns::set_dayparting(conn, id, None, now(), &author))
        .await?;
    Ok(HttpResponse::Ok().json(campaign))
}

/// Pauses the campaign by hand; it stays paused whatever budgets do until resumed.
#[utoipa::path(post, operation_id = "pause_campaign", path = "/api/v1/campaigns/{id}/pause", tag = "campaigns", params(("id" = i64, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn pause(
    caller: Caller<ToManage>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.campaign(&state, id).await?;
    let author = caller.author();
    let campaign = state
        .db(move |conn| campaigns::set_manual_pause(conn, id, true, now(), &author))
        .await?;
    Ok(HttpResponse::Ok().json(campaign))
}

/// Clears the manual pause only; the campaign is active again if no other reason holds.
#[utoipa::path(post, operation_id = "resume_campaign", path = "/api/v1/campaigns/{id}/resume", tag = "campaigns", params(("id" = i64, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn resume(
    caller: Caller<ToManage>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.campaign(&state, id).await?;
    let author = caller.author();
    let campaign = state
        .db(move |conn| campaigns::set_manual_pause(conn, id, false, now(), &author))
        .await?;
    Ok(HttpResponse::Ok().json(campaign))
}

/// State changes of the campaign, newest first.
#[utoipa::path(get, operation_id = "campaign_history", path = "/api/v1/campaigns/{id}/history", tag = "campaigns",
    params(("id" = i64, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<StatusChange>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn history(
    caller: Caller<ToRead>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: QueryParams,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.campaign(&state, id).await?;
    let page = query.page()?;
    let history = state
        .db(move |conn| campaigns::history(conn, id, page))
        .await?;
    Ok(HttpResponse::Ok().json(history))
}
