//! The audit trail's entries (SPEC §11): who changed which object, how, in which request, and each
//! changed field's old and new value.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::access::Actor;

/// One field's value before and after a change (`null` for a field that did not exist: on
/// create, every old value; on delete, every new one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    /// Any JSON value (`null` when the field did not exist).
    #[schema(value_type = Value)]
    pub old: Value,
    #[schema(value_type = Value)]
    pub new: Value,
}

/// Changed fields by name.
pub type Changes = BTreeMap<String, FieldChange>;

/// What the audit trail shows of a change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    /// The request's id, as in the logs (none for the CLI).
    pub request_id: Option<String>,
    /// `brand`, `campaign`, `schedule`, `spend`, `token`, `user` or `webhook`.
    pub object_type: String,
    pub object_id: i64,
    /// The brand the object belongs to (none for tokens and users).
    pub brand_id: Option<i64>,
    /// `create`, `update`, `delete`, `pause`, `resume`, `reverse`, `revoke`, `disable`, `run`,
    /// `set_password`, …
    pub action: String,
    /// Each changed field by name.
    #[schema(value_type = std::collections::HashMap<String, FieldChange>)]
    pub changes: Changes,
}

/// A change about to be recorded, in the same transaction as the change itself.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub object_type: &'static str,
    pub object_id: i64,
    pub brand_id: Option<i64>,
    pub action: &'static str,
    pub changes: Changes,
}

/// The fields among `fields` whose values differ between `old` and `new` (JSON objects, as the
/// API shows the object; `None`: the object did not exist before, or does not after).
pub fn diff(old: Option<&Value>, new: Option<&Value>, fields: &[&str]) -> Changes {
    let get = |v: Option<&Value>, f: &str| v.and_then(|v| v.get(f)).cloned().unwrap_or(Value::Null);
    fields
        .iter()
        .filter_map(|f| {
            let (o, n) = (get(old, f), get(new, f));
            (o != n).then(|| ((*f).to_owned(), FieldChange { old: o, new: n }))
        })
        .collect()
}

/// `diff` of two serializable values.
pub fn diff_of<T: Serialize>(old: Option<&T>, new: Option<&T>, fields: &[&str]) -> Changes {
    let json = |v: Option<&T>| v.and_then(|v| serde_json::to_value(v).ok());
    diff(json(old).as_ref(), json(new).as_ref(), fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_changed_fields_are_kept_with_old_and_new() {
        let old = json!({"name": "a", "daily_budget": "10", "timezone": "UTC", "daily_spend": "1"});
        let new = json!({"name": "b", "daily_budget": "10", "timezone": "Europe/Paris", "daily_spend": "2"});
        let changes = diff(
            Some(&old),
            Some(&new),
            &["name", "daily_budget", "timezone"],
        );
        assert_eq!(changes.keys().collect::<Vec<_>>(), vec!["name", "timezone"]);
        assert_eq!(changes["name"].old, json!("a"));
        assert_eq!(changes["name"].new, json!("b"));
        let created = diff(None, Some(&new), &["name"]);
        assert_eq!(created["name"].old, Value::Null);
    }
}
