//! Errors of the data path, by kind: the API maps each kind to a status code.

pub use adbudget_core::error::ValidationError;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("{what} not found")]
    NotFound {
        what: &'static str,
        field: Option<String>,
    },
    #[error("{message}")]
    Conflict {
        message: String,
        field: Option<String>,
    },
    /// The caller may not touch this object (a token bound to other brands).
    #[error("{message}")]
    Forbidden {
        message: String,
        field: Option<String>,
    },
    #[error("the database is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Database(diesel::result::Error),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl DomainError {
    pub fn not_found(what: &'static str) -> Self {
        DomainError::NotFound { what, field: None }
    }

    pub fn not_found_field(what: &'static str, field: impl Into<String>) -> Self {
        DomainError::NotFound {
            what,
            field: Some(field.into()),
        }
    }

    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::Conflict {
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn forbidden(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::Forbidden {
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::Validation(ValidationError::new(field, message))
    }
}

/// What a failed statement means for the caller. The one place database errors are classified
/// (the spend path's retry and the API's 503 both ask here): diesel names a lost connection and a
/// broken transaction, the rest is recognised by the server's message, as neither backend's
/// driver reports these conditions by code through diesel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The database is unreachable, restarting or busy: retry later (503), not a bug.
    Outage,
    /// PostgreSQL aborted this transaction to break a deadlock (40P01): running it again resolves
    /// it.
    Deadlock,
    /// Anything else: a constraint, a bug.
    Other,
}

impl Failure {
    pub fn of(e: &diesel::result::Error) -> Failure {
        use diesel::result::{DatabaseErrorKind, Error};
        const OUTAGE: [&str; 5] = [
            "database is locked",
            "terminating connection",
            "server closed the connection",
            "connection refused",
            "could not connect",
        ];
        match e {
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | Error::BrokenTransactionManager => Failure::Outage,
            Error::DatabaseError(_, info) => {
                let m = info.message().to_ascii_lowercase();
                if m.contains("deadlock detected") {
                    Failure::Deadlock
                } else if OUTAGE.iter().any(|needle| m.contains(needle)) {
                    Failure::Outage
                } else {
                    Failure::Other
                }
            }
            _ => Failure::Other,
        }
    }
}

impl From<diesel::result::Error> for DomainError {
    /// A lost connection or an unreachable server is an outage (503, retry), not a bug (500).
    fn from(e: diesel::result::Error) -> Self {
        if Failure::of(&e) == Failure::Outage {
            DomainError::Unavailable(e.into())
        } else {
            DomainError::Database(e)
        }
    }
}

impl From<diesel::r2d2::PoolError> for DomainError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        DomainError::Unavailable(e.into())
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
