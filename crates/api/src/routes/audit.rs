//! `GET /api/v1/audit`: the audit trail (SPEC §11).

use actix_web::{HttpResponse, web};
use adbudget_core::access::ActorKind;
use adbudget_core::audit::AuditEntry;
use adbudget_core::views::Page;
use adbudget_db::repo::audit::{self, AuditFilter};

use crate::access::{Caller, ToRead};
use crate::error::{ApiError, ErrorBody};
use crate::extract::QueryParams;
use crate::state::AppState;

/// The object types the audit trail knows.
pub const OBJECT_TYPES: [&str; 7] = [
    "brand", "campaign", "schedule", "spend", "token", "user", "webhook",
];

impl QueryParams {
    /// `object`: a type (`campaign`) or one object (`campaign:12`).
    pub fn audit_object(&self) -> Result<(Option<String>, Option<i64>), ApiError> {
        let Some(v) = self.raw("object") else {
            return Ok((None, None));
        };
        let bad = || {
            ApiError::invalid(
                "object",
                format!(
                    "must be one of {} or TYPE:ID, such as campaign:12",
                    OBJECT_TYPES.join(", ")
                ),
            )
        };
        let (kind, id) = match v.split_once(':') {
            Some((kind, id)) => (
                kind,
                Some(id.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(bad)?),
            ),
            None => (v, None),
        };
        if !OBJECT_TYPES.contains(&kind) {
            return Err(bad());
        }
        Ok((Some(kind.to_owned()), id))
    }

    /// `actor`: a name (`alice`), or a kind and a name (`user:alice`, `token:connector`, `cli:root`).
    pub fn audit_actor(&self) -> Result<(Option<ActorKind>, Option<String>), ApiError> {
        let Some(v) = self.raw("actor") else {
            return Ok((None, None));
        };
        if v.is_empty() || v.chars().count() > 300 || v.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "actor",
                "must be a name of 1 to 300 characters without control characters",
            ));
        }
        Ok(match v.split_once(':') {
            Some((kind, name)) => match ActorKind::parse(kind) {
                Some(kind) => (Some(kind), Some(name.to_owned())),
                None => (None, Some(v.to_owned())),
            },
            None => (None, Some(v.to_owned())),
        })
    }
}

/// The audit trail, newest first: every change to brands, campaigns, spend (reversals), tokens
/// and users, with who made it, the request, and each changed field's old and new value. A
/// brand-bound token sees its brands' entries only.
#[utoipa::path(get, operation_id = "list_audit_entries", path = "/api/v1/audit", tag = "audit",
    params(("object" = Option<String>, Query, description = "`brand`, `campaign`, `schedule`, `spend`, `token`, `user`, `webhook`, or one object: `campaign:12`"),
        ("actor" = Option<String>, Query, description = "A user's or token's name, or `user:NAME`, `token:NAME`, `cli:NAME`"),
        ("brand_id" = Option<i64>, Query, description = "Entries of this brand and of its campaigns and spend"),
        ("from" = Option<String>, Query, description = "RFC 3339, inclusive"), ("to" = Option<String>, Query, description = "RFC 3339, exclusive"),
        ("limit" = Option<i64>, Query, description = "1 to 500, default 50"), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<AuditEntry>), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    caller: Caller<ToRead>,
    state: web::Data<AppState>,
    query: QueryParams,
) -> Result<HttpResponse, ApiError> {
    let page = query.page()?;
    let (object_type, object_id) = query.audit_object()?;
    let (actor_kind, actor_name) = query.audit_actor()?;
    let filter = AuditFilter {
        object_type,
        object_id,
        brand_id: query.id("brand_id")?,
        actor_kind,
        actor_name,
        from: query.time("from")?,
        to: query.time("to")?,
        visible: caller.brands().clone(),
    };
    let entries = state
        .db(move |conn| audit::list(conn, &filter, page))
        .await?;
    Ok(HttpResponse::Ok().json(entries))
}
