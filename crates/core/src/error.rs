//! A value in a request that is out of range: the error validation returns, naming its field.

/// A value in a request that is out of range, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error located under `prefix`, e.g. `events[3]` + `amount` → `events[3].amount`.
    pub fn within(self, prefix: &str) -> Self {
        ValidationError {
            field: format!("{prefix}.{}", self.field),
            message: self.message,
        }
    }
}
