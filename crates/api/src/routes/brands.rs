use actix_web::{HttpResponse, web};
use adbudget_core::forms::{CreateBrand, UpdateBrand, now};
use adbudget_core::views::{Brand, Page};
use adbudget_db::repo::brands;

use crate::access::{Caller, ToCreateBrand, ToManage, ToRead};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;

/// Creates a brand with its daily and monthly budgets (in its timezone, `UTC` when left out) and
/// its alert thresholds. Admins and operators not bound to brands.
#[utoipa::path(post, operation_id = "create_brand", path = "/api/v1/brands", tag = "brands", request_body = CreateBrand,
    responses((status = 201, body = Brand), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    caller: Caller<ToCreateBrand>,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<CreateBrand>,
) -> Result<HttpResponse, ApiError> {
    let new = body.validate()?;
    let author = caller.author();
    let brand = state
        .db(move |conn| brands::create(conn, &new, now(), &author))
        .await?;
    Ok(HttpResponse::Created().json(brand))
}

/// The brands the caller sees, by id, each with today's and this month's spend (brand-local).
#[utoipa::path(get, operation_id = "list_brands", path = "/api/v1/brands", tag = "brands",
    params(("limit" = Option<i64>, Query, description = "1 to 500, default 50"), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Brand>)), security(("bearer" = [])))]
pub async fn list(
    caller: Caller<ToRead>,
    state: web::Data<AppState>,
    query: QueryParams,
) -> Result<HttpResponse, ApiError> {
    let page = query.page()?;
    let visible = caller.brands().clone();
    let brands = state
        .db(move |conn| brands::list(conn, &visible, page, now()))
        .await?;
    Ok(HttpResponse::Ok().json(brands))
}

/// One brand, with today's and this month's spend in its timezone.
#[utoipa::path(get, operation_id = "get_brand", path = "/api/v1/brands/{id}", tag = "brands", params(("id" = i64, Path)),
    responses((status = 200, body = Brand), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    caller: Caller<ToRead>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.brand(id)?;
    let brand = state.db(move |conn| brands::get(conn, id, now())).await?;
    Ok(HttpResponse::Ok().json(brand))
}

/// Changes a brand; a field left out (or `null`) is unchanged. The rule is applied to its
/// campaigns at once: a raised budget brings paused campaigns back in the same request.
#[utoipa::path(patch, operation_id = "update_brand", path = "/api/v1/brands/{id}", tag = "brands", params(("id" = i64, Path)), request_body = UpdateBrand,
    responses((status = 200, body = Brand), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    caller: Caller<ToManage>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    JsonBody(body): JsonBody<UpdateBrand>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.brand(id)?;
    let changes = body.validate()?;
    let author = caller.author();
    let brand = state
        .db(move |conn| brands::update(conn, id, &changes, now(), &author))
        .await?;
    Ok(HttpResponse::Ok().json(brand))
}

/// Deletes a brand with its campaigns and their spend logs.
#[utoipa::path(delete, operation_id = "delete_brand", path = "/api/v1/brands/{id}", tag = "brands", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted with its campaigns and their spend"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    caller: Caller<ToManage>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.brand(id)?;
    let author = caller.author();
    state
        .db(move |conn| brands::delete(conn, id, now(), &author))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
