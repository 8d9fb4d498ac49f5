//! Pacing, forecast and the spend series (SPEC §10): `GET /brands/{id}/pacing`,
//! `GET /campaigns/{id}/pacing`, `GET /brands/{id}/spend/series`.

use actix_web::{HttpResponse, web};
use adbudget_core::forms::now;
use adbudget_core::pacing::{BrandPacing, CampaignPacing, SeriesBucket, SpendSeries};
use adbudget_db::repo::pacing;

use crate::access::{Caller, ToRead};
use crate::error::{ApiError, ErrorBody};
use crate::extract::QueryParams;
use crate::state::AppState;

/// Pacing and forecast of the brand's daily budget over today and its monthly budget over this
/// month, in the brand's timezone: expected spend under even pacing over the eligible time (the
/// union of its campaigns' dayparting windows), pace, status, the last hour's rate, the projected
/// spend at the end of the period and when the budget would run out.
#[utoipa::path(get, operation_id = "get_brand_pacing", path = "/api/v1/brands/{id}/pacing", tag = "pacing",
    params(("id" = i64, Path)),
    responses((status = 200, body = BrandPacing), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn brand(
    caller: Caller<ToRead>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.brand(id)?;
    let pacing = state.db(move |conn| pacing::brand(conn, id, now())).await?;
    Ok(HttpResponse::Ok().json(pacing))
}

/// Pacing and forecast of the campaign's caps: the daily cap over today, the monthly cap over this
/// month, within the campaign's own dayparting windows; null for a cap it does not have.
#[utoipa::path(get, operation_id = "get_campaign_pacing", path = "/api/v1/campaigns/{id}/pacing", tag = "pacing",
    params(("id" = i64, Path)),
    responses((status = 200, body = CampaignPacing), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn campaign(
    caller: Caller<ToRead>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.campaign(&state, id).await?;
    let pacing = state
        .db(move |conn| pacing::campaign(conn, id, now()))
        .await?;
    Ok(HttpResponse::Ok().json(pacing))
}

/// The brand's spend per bucket over `[from, to)`, in the brand's timezone (hours and days are
/// local; a DST day has 23 or 25 hours), every bucket listed, for charts. Default: today, 5-minute
/// buckets. At most 10,000 buckets.
#[utoipa::path(get, operation_id = "get_brand_spend_series", path = "/api/v1/brands/{id}/spend/series", tag = "pacing",
    params(("id" = i64, Path),
        ("from" = Option<String>, Query, description = "RFC 3339, inclusive (the bucket it falls in is the first); default: the start of the brand-local day"),
        ("to" = Option<String>, Query, description = "RFC 3339, exclusive; default: the end of the brand-local day"),
        ("bucket" = Option<String>, Query, description = "`5m` (default), `15m`, `1h` or `1d`")),
    responses((status = 200, body = SpendSeries), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn series(
    caller: Caller<ToRead>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: QueryParams,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.brand(id)?;
    let from = query.time("from")?;
    let to = query.time("to")?;
    let bucket = match query.raw("bucket") {
        None => SeriesBucket::FiveMinutes,
        Some(name) => SeriesBucket::parse(name).ok_or_else(|| {
            ApiError::invalid(
                "bucket",
                format!("must be one of {}", SeriesBucket::NAMES.join(", ")),
            )
        })?,
    };
    let series = state
        .db(move |conn| pacing::series(conn, id, from, to, bucket, now()))
        .await?;
    Ok(HttpResponse::Ok().json(series))
}
