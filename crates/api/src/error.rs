//! One error type for every handler: maps domain errors to status codes and the SPEC §6 body
//! `{"error": {"code", "message", "field"}}`. Unexpected errors become an opaque 500 whose cause
//! chain goes to the log, never to the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use adbudget_db::error::{DomainError, ValidationError};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{message}")]
    Forbidden {
        message: String,
        field: Option<String>,
    },
    #[error("{what} not found")]
    NotFound { what: String, field: Option<String> },
    #[error("{message}")]
    Conflict {
        message: String,
        field: Option<String>,
    },
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body did not arrive within {0} seconds")]
    RequestTimeout(u64),
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
    },
    #[error("the database is unavailable; try again shortly")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A 403: the caller's scope or role does not allow the operation.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            message: message.into(),
            field: None,
        }
    }

    /// The same error about request field `field` (a 404 for the brand of `brand_id`, …).
    pub fn on_field(self, field: &str) -> Self {
        match self {
            ApiError::NotFound { what, .. } => ApiError::NotFound {
                what,
                field: Some(field.to_owned()),
            },
            other => other,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `payload_too_large`, `request_timeout`, `invalid`, `unavailable`, `internal`.
    pub code: &'static str,
    pub message: String,
    /// The request field the error is about, e.g. `amount` or `events[3].amount`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::Invalid { .. } => "invalid",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    fn field(&self) -> Option<String> {
        match self {
            ApiError::NotFound { field, .. }
            | ApiError::Forbidden { field, .. }
            | ApiError::Conflict { field, .. }
            | ApiError::Invalid { field, .. } => field.clone(),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(e) => tracing::error!(error.cause_chain = ?e, "request failed"),
            ApiError::Unavailable(e) => {
                tracing::warn!(error.cause_chain = ?e, "database unavailable")
            }
            _ => {}
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                field: self.field(),
            },
        };
        let mut resp = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized) {
            resp.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if matches!(self, ApiError::Unavailable(_)) {
            resp.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        resp.json(body)
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::Invalid {
            field: Some(e.field),
            message: e.message,
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Validation(v) => v.into(),
            DomainError::NotFound { what, field } => ApiError::NotFound {
                what: what.to_owned(),
                field,
            },
            DomainError::Conflict { message, field } => ApiError::Conflict { message, field },
            DomainError::Forbidden { message, field } => ApiError::Forbidden { message, field },
            DomainError::Unavailable(e) => ApiError::Unavailable(e),
            DomainError::Database(e) => ApiError::Internal(e.into()),
            DomainError::Unexpected(e) => ApiError::Internal(e),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(anyhow::anyhow!("blocking task failed: {e}"))
    }
}
