//! Webhook endpoints, their test ping, secret rotation and delivery log (SPEC §9, §6). Admins
//! only (tokens not bound to brands): an endpoint's `brand_ids` choose the events it receives.

use actix_web::{HttpResponse, web};
use adbudget_core::events::EventType;
use adbudget_core::forms::now;
use adbudget_core::webhooks::{Delivery, Endpoint, address_allowed, check_url};
use adbudget_db::repo::webhooks::{self, EndpointChanges, NewEndpoint};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::access::{Caller, ToAdminister};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;

/// `Some(None)` when the field is present and `null`.
fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://` (http and private addresses only with `ADBUDGET_WEBHOOK_ALLOW_PRIVATE=true`).
    #[schema(example = "https://connector.example.com/adbudget")]
    pub url: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Event types to receive; all when left out or null.
    #[serde(default)]
    #[schema(example = json!(["campaign.paused", "campaign.resumed"]))]
    pub event_types: Option<Vec<String>>,
    /// Brands whose events to receive; all when left out or null.
    #[serde(default)]
    pub brand_ids: Option<Vec<i64>>,
}

/// A change of an endpoint: a field left out is unchanged; `null` is unchanged for `url`,
/// `description` and `enabled`, and means "all" for `event_types` and `brand_ids`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    pub url: Option<String>,
    pub description: Option<String>,
    /// null: all types.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Option<Option<Vec<String>>>,
    /// null: all brands.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<i64>>)]
    pub brand_ids: Option<Option<Vec<i64>>>,
    /// `true` enables a disabled endpoint again (its failure record is cleared).
    pub enabled: Option<bool>,
}

/// A created endpoint, or a rotated one: the signing secret is shown here only.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    pub endpoint: Endpoint,
    /// `whsec_` + base64: verify deliveries with it (any Standard Webhooks library).
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

fn event_types(v: Option<Vec<String>>) -> Result<Option<Vec<EventType>>, ApiError> {
    Ok(
        v.map(|types| EventType::subscribable(&types, "event_types"))
            .transpose()?,
    )
}

fn brand_ids(v: Option<Vec<i64>>) -> Result<Option<Vec<i64>>, ApiError> {
    match v {
        Some(ids) if ids.iter().any(|id| *id <= 0) => {
            Err(ApiError::invalid("brand_ids", "each must be a positive id"))
        }
        other => Ok(other),
    }
}

fn description(v: Option<String>) -> Result<Option<String>, ApiError> {
    match v {
        Some(d) if d.chars().count() > 500 || d.chars().any(char::is_control) => {
            Err(ApiError::invalid(
                "description",
                "at most 500 characters, no control characters",
            ))
        }
        other => Ok(other),
    }
}

/// The URL as written, and every address its host resolves to now.
async fn checked_url(raw: &str, allow_private: bool) -> Result<String, ApiError> {
    let url = check_url(raw, allow_private)?;
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|_| ApiError::invalid("url", format!("{host} does not resolve")))?
        .collect();
    if addrs
        .iter()
        .any(|a| !address_allowed(a.ip(), allow_private))
    {
        return Err(ApiError::invalid(
            "url",
            "must not point to a loopback, private, link-local or metadata address",
        ));
    }
    Ok(url.to_string())
}

/// Creates an endpoint. The answer carries its signing secret, shown this once.
#[utoipa::path(post, operation_id = "create_webhook", path = "/api/v1/webhooks", tag = "webhooks",
    request_body = CreateWebhook,
    responses((status = 201, body = WebhookWithSecret), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create(
    caller: Caller<ToAdminister>,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<CreateWebhook>,
) -> Result<HttpResponse, ApiError> {
    let new = NewEndpoint {
        url: checked_url(&body.url, state.webhook_allow_private).await?,
        description: description(body.description)?.unwrap_or_default(),
        event_types: event_types(body.event_types)?,
        brand_ids: brand_ids(body.brand_ids)?,
    };
    let author = caller.author();
    let (endpoint, secret) = state
        .db(move |conn| webhooks::create(conn, &new, now(), &author))
        .await?;
    Ok(HttpResponse::Created().json(WebhookWithSecret { endpoint, secret }))
}

/// Every endpoint, with its health.
#[utoipa::path(get, operation_id = "list_webhooks", path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = Vec<Endpoint>)), security(("bearer" = [])))]
pub async fn list(
    caller: Caller<ToAdminister>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let visible = caller.brands().clone();
    let all = state.db(move |conn| webhooks::list(conn, &visible)).await?;
    Ok(HttpResponse::Ok().json(all))
}

/// One endpoint: its health (last success, failure streak, why it was disabled).
#[utoipa::path(get, operation_id = "get_webhook", path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path)),
    responses((status = 200, body = Endpoint), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    caller: Caller<ToAdminister>,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (id, visible) = (path.into_inner(), caller.brands().clone());
    let e = state
        .db(move |conn| webhooks::get(conn, id, &visible))
        .await?;
    Ok(HttpResponse::Ok().json(e))
}

/// Changes an endpoint; `"enabled": true` brings back a disabled one.
#[utoipa::path(patch, operation_id = "update_webhook", path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path)), request_body = UpdateWebhook,
    responses((status = 200, body = Endpoint), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update(
    caller: Caller<ToAdminister>,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    JsonBody(body): JsonBody<UpdateWebhook>,
) -> Result<HttpResponse, ApiError> {
    let url = match body.url {
        Some(u) => Some(checked_url(&u, state.webhook_allow_private).await?),
        None => None,
    };
    let changes = EndpointChanges {
        url,
        description: description(body.description)?,
        event_types: body.event_types.map(event_types).transpose()?,
        brand_ids: body.brand_ids.map(brand_ids).transpose()?,
        enabled: body.enabled,
    };
    let (id, visible, author) = (path.into_inner(), caller.brands().clone(), caller.author());
    let e = state
        .db(move |conn| webhooks::update(conn, id, &changes, &visible, now(), &author))
        .await?;
    Ok(HttpResponse::Ok().json(e))
}

/// Deletes an endpoint with its delivery log; nothing more is sent to it.
#[utoipa::path(delete, operation_id = "delete_webhook", path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    caller: Caller<ToAdminister>,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (id, visible, author) = (path.into_inner(), caller.brands().clone(), caller.author());
    state
        .db(move |conn| webhooks::delete(conn, id, &visible, now(), &author))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sends a `ping` event to this endpoint (its delivery shows in the log).
#[utoipa::path(post, operation_id = "test_webhook", path = "/api/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = i64, Path)),
    responses((status = 202, description = "The ping is queued"), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn test(
    caller: Caller<ToAdminister>,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (id, visible) = (path.into_inner(), caller.brands().clone());
    let delivery = state
        .db(move |conn| webhooks::ping(conn, id, &visible, now()))
        .await?;
    state.nudge();
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "delivery_id": delivery })))
}

/// A new signing secret, shown once; the old one keeps signing beside it for 24 hours.
#[utoipa::path(post, operation_id = "rotate_webhook_secret", path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = i64, Path)),
    responses((status = 200, body = WebhookWithSecret), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn rotate_secret(
    caller: Caller<ToAdminister>,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (id, visible, author) = (path.into_inner(), caller.brands().clone(), caller.author());
    let (endpoint, secret) = state
        .db(move |conn| {
            let secret = webhooks::rotate_secret(conn, id, &visible, now(), &author)?;
            Ok((webhooks::get(conn, id, &visible)?, secret))
        })
        .await?;
    Ok(HttpResponse::Ok().json(WebhookWithSecret { endpoint, secret }))
}

/// The delivery log, newest first: each delivery with every attempt (time, status, latency,
/// error).
#[utoipa::path(get, operation_id = "list_webhook_deliveries", path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = i64, Path), ("limit" = Option<i64>, Query, description = "1 to 500, default 50")),
    responses((status = 200, body = Vec<Delivery>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn deliveries(
    caller: Caller<ToAdminister>,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    query: QueryParams,
) -> Result<HttpResponse, ApiError> {
    let limit = query.page()?.limit;
    let (id, visible) = (path.into_inner(), caller.brands().clone());
    let log = state
        .db(move |conn| webhooks::deliveries(conn, id, &visible, limit))
        .await?;
    Ok(HttpResponse::Ok().json(log))
}

/// Sends a delivery again now (after it failed, or without waiting for its next retry).
#[utoipa::path(post, operation_id = "redeliver_webhook", path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = i64, Path), ("delivery_id" = i64, Path)),
    responses((status = 202, description = "Queued"), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn redeliver(
    caller: Caller<ToAdminister>,
    state: web::Data<AppState>,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let ((id, delivery), visible) = (path.into_inner(), caller.brands().clone());
    state
        .db(move |conn| webhooks::redeliver(conn, id, delivery, &visible, now()))
        .await?;
    state.nudge();
    Ok(HttpResponse::Accepted().finish())
}
