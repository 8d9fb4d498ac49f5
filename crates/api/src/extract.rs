//! Request extractors: JSON bodies with field-naming errors, bearer-token authentication, list
//! queries.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use adbudget_db::repo::PageRequest;
use adbudget_db::repo::tokens::{self, Live};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// The largest body a route accepts (SPEC §12), set as app data on its resource; routes without
/// one accept [`DEFAULT_BODY_LIMIT`]. A body is read only after the request's credentials are
/// checked, and never past its limit.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Every route but the spend routes: JSON requests and admin forms.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// `POST /api/v1/spend`: one event.
pub const SPEND_EVENT_LIMIT: usize = 16 * 1024;
/// `POST /api/v1/spend/batch`: up to 10,000 events.
pub const SPEND_BATCH_LIMIT: usize = 8 * 1024 * 1024;

/// Deepest nesting of arrays and objects accepted in a JSON body. The deepest request the API
/// documents is 4 levels (a batch's events; a schedule's windows); serde_json's own limit (128)
/// would be reached only after more work.
pub const MAX_JSON_DEPTH: usize = 32;

/// Reads a whole request body within the server's [`Limits::request_body`](crate::Limits) and the
/// route's [`BodyLimit`]: a client that trickles its body gets a 408, one that sends (or announces)
/// more than the limit a 413, as soon as that is known and without buffering more than the limit.
pub fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> impl Future<Output = Result<web::Bytes, ApiError>> + 'static {
    let limit = req
        .app_data::<BodyLimit>()
        .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
    let time = req
        .app_data::<crate::Limits>()
        .copied()
        .unwrap_or_default()
        .request_body;
    let announced = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut payload = payload.take();
    async move {
        if announced.is_some_and(|n| n > limit as u64) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        let read = async {
            let capacity = announced.map_or(0, |n| n as usize);
            let mut body = web::BytesMut::with_capacity(capacity);
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::BadRequest(format!("could not read the request body: {e}"))
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        };
        tokio::time::timeout(time, read)
            .await
            .map_err(|_| ApiError::RequestTimeout(time.as_secs()))?
    }
}

/// Reads a JSON body into `T` inside a handler, after its credentials were checked (see
/// [`JsonBody`] for the errors).
pub async fn read_json<T: DeserializeOwned + 'static>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let mut payload = payload.into_inner();
    let bytes = read_body(req, &mut payload).await?;
    parse_json(&bytes)
}

/// A JSON body deserialized into `T`. Malformed JSON is a 400; a value of the wrong type, a
/// missing or unknown field is a 422 naming the field; a body over the limit is a 413.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = read_body(req, payload);
        Box::pin(async move { parse_json(&bytes.await?).map(JsonBody) })
    }
}

pub fn parse_json<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde's derive reads a struct from a JSON array too (`[null, null]` as an UpdateSchedule,
    // found by schemathesis); every body this API documents is an object, except a dayparting
    // schedule, which is read as a JSON value.
    let array = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if array && std::any::TypeId::of::<T>() != std::any::TypeId::of::<serde_json::Value>() {
        return Err(ApiError::Invalid {
            field: None,
            message: "the request body must be a JSON object".into(),
        });
    }
    if json_depth(bytes) > MAX_JSON_DEPTH {
        return Err(ApiError::BadRequest(format!(
            "the request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    // Straight into the request type: no generic JSON value is built first.
    let malformed = |e: &serde_json::Error| {
        ApiError::BadRequest(format!("the request body is not valid JSON: {e}"))
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => value,
        // JSON Schema's integers include `50.0`; serde's do not. Such a body is read again with
        // its integral numbers as integers (only then: the usual path builds no JSON value).
        Err(e)
            if e.inner()
                .to_string()
                .starts_with("invalid type: floating point") =>
        {
            let mut value: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| malformed(&e))?;
            integral_numbers(&mut value);
            return serde_path_to_error::deserialize(value).map_err(invalid_field);
        }
        Err(e) => {
            return Err(match e.inner().classify() {
                serde_json::error::Category::Data => invalid_field(e),
                _ => malformed(e.inner()),
            });
        }
    };
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

/// Turns every number with no fractional part (within `i64`) into an integer.
fn integral_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && (-(2f64.powi(63))..2f64.powi(63)).contains(&f)
            {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// The deepest nesting of `[` and `{` in a JSON text, ignoring brackets inside strings. One pass
/// over the bytes, before any parsing; malformed text is left for the parser to reject.
fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Deserializes a JSON value into a request type, naming the field of any error (also used by
/// the admin panel, whose forms become the same request types).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(invalid_field)
}

/// A value of the wrong type, a missing or unknown field: a 422 naming the field.
fn invalid_field(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // serde reports a missing field at its parent: name the field itself.
        let named = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        let field = match (path.as_str(), named) {
            (".", Some(name)) => Some(name),
            (".", None) => None,
            (p, Some(name)) => Some(format!("{p}.{name}")),
            (p, None) => Some(p.to_owned()),
        };
        ApiError::Invalid {
            field,
            message: clean_message(&message),
        }
    }
}

/// serde's messages carry positions that mean nothing after re-parsing; keep the words.
fn clean_message(m: &str) -> String {
    m.split(" at line ").next().unwrap_or(m).to_owned()
}

/// The bearer token a request presents, not yet checked against the database: `POST /spend`
/// hands it to the group-commit writer, which checks the tokens of a whole batch in one query. A
/// request without one, or with one that is not shaped like a token, is refused here (401).
/// Every other route checks it through [`Caller`](crate::access::Caller).
pub struct Bearer(pub String);

impl Bearer {
    pub fn from_header(req: &HttpRequest) -> Result<Bearer, ApiError> {
        req.headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| tokens::well_formed(t))
            .map(|t| Bearer(t.to_owned()))
            .ok_or(ApiError::Unauthorized)
    }

    /// The live token, checked now: a revoked or expired token is refused from the request after
    /// the revocation commits. The check records the token's use when its `last_used_at` is
    /// stale (at most one write per token per five minutes).
    pub async fn authenticate(&self, state: &AppState) -> Result<Live, ApiError> {
        let token = self.0.clone();
        let verdict = state.db(move |conn| check(conn, &token)).await?;
        verdict.ok_or(ApiError::Unauthorized)
    }

    /// The same through the verdicts of the last second ([`TokenCache`]), for `POST /spend`,
    /// whose writer checks the token again with its batch: a flood of requests (valid or forged)
    /// costs one lookup per token per second.
    ///
    /// [`TokenCache`]: crate::token_cache::TokenCache
    pub async fn authenticate_cached(&self, state: &AppState) -> Result<Live, ApiError> {
        let verdict = match state.token_cache.get(&self.0) {
            Some(verdict) => verdict,
            None => {
                let token = self.0.clone();
                let verdict = state.db(move |conn| check(conn, &token)).await?;
                state.token_cache.put(&self.0, verdict.clone());
                verdict
            }
        };
        verdict.ok_or(ApiError::Unauthorized)
    }
}

/// The live token `token` is, its use recorded when the recorded one is stale.
fn check(
    conn: &mut adbudget_db::DbConnection,
    token: &str,
) -> adbudget_db::error::DomainResult<Option<Live>> {
    let now = adbudget_core::forms::now();
    let live = tokens::authenticate(conn, token, now)?;
    if let Some(live) = live.as_ref().filter(|l| l.use_unrecorded) {
        // Best effort: a busy database must not fail the request over a time of last use.
        if let Err(e) = tokens::touch(conn, &[live.id], now) {
            tracing::warn!(error = %e, token.id = live.id, "could not record the token's last use");
        }
    }
    Ok(live)
}

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Bearer::from_header(req))
    }
}

/// Query-string parameters, parsed by hand so that every bad value is a 422 naming it.
pub struct QueryParams(HashMap<String, String>);

impl FromRequest for QueryParams {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .map(|q| QueryParams(q.into_inner()))
            .map_err(|e| ApiError::BadRequest(format!("the query string does not parse: {e}")));
        std::future::ready(parsed)
    }
}

impl QueryParams {
    /// A parameter's value; an empty one (`?limit=`) is present, and invalid for every parameter.
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A parameter's raw value, for route-specific parsing.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.get(key)
    }

    pub fn page(&self) -> Result<PageRequest, ApiError> {
        let limit = match self.get("limit") {
            None => PageRequest::DEFAULT_LIMIT,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=PageRequest::MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "limit",
                        format!(
                            "must be a whole number from 1 to {}",
                            PageRequest::MAX_LIMIT
                        ),
                    )
                })?,
        };
        // A cursor is the digits of an id, as `next_cursor` gives them (the document's pattern
        // says the same: `^[0-9]{1,18}$`).
        let cursor = self
            .get("cursor")
            .map(|v| {
                Some(v)
                    .filter(|v| {
                        (1..=18).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit())
                    })
                    .and_then(|v| v.parse::<i64>().ok())
                    .ok_or_else(|| {
                        ApiError::invalid("cursor", "is not a cursor returned by this API")
                    })
            })
            .transpose()?;
        Ok(PageRequest { limit, cursor })
    }

    pub fn id(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ApiError::invalid(key, "must be a positive id"))
            })
            .transpose()
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        self.get(key)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(ApiError::invalid(key, "must be true or false")),
            })
            .transpose()
    }

    pub fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.get(key)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::invalid(
                            key,
                            "must be an RFC 3339 time such as 2026-11-21T09:00:00Z",
                        )
                    })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::json_depth;

    #[test]
    fn depth_counts_nesting_outside_strings() {
        assert_eq!(json_depth(b"42"), 0);
        assert_eq!(json_depth(br#"{"events": [{"amount": "1"}]}"#), 3);
        assert_eq!(json_depth(br#"{"name": "[[[[{{{{"}"#), 1);
        assert_eq!(json_depth(br#"{"name": "a\"[[[", "x": [[]]}"#), 3);
        assert_eq!(json_depth(b"[[[]]][[]]"), 3);
        assert_eq!(json_depth("[".repeat(40).as_bytes()), 40);
    }
}
