//! The audit trail (SPEC §11): [`record`] is called by every audited change inside its own
//! transaction, so that an entry exists exactly when its change committed. Entries are never
//! changed or deleted (the database refuses it: see the migration 000007).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::{PageRequest, into_page, naive, utc};
use crate::DbConnection;
use crate::error::DomainResult;
use crate::schema::audit_entries;
use adbudget_core::access::{Actor, ActorKind, Author, Brands};
use adbudget_core::audit::{AuditEntry, NewEntry};
use adbudget_core::views::Page;

/// Writes `entry` by `author`, unless it changed nothing.
pub fn record(
    conn: &mut DbConnection,
    author: &Author,
    entry: NewEntry,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    if entry.changes.is_empty() {
        return Ok(());
    }
    let changes = serde_json::to_string(&entry.changes).map_err(anyhow::Error::from)?;
    diesel::insert_into(audit_entries::table)
        .values((
            audit_entries::at.eq(naive(now)),
            audit_entries::actor_kind.eq(author.actor.kind.as_str()),
            audit_entries::actor_id.eq(author.actor.id),
            audit_entries::actor_name.eq(&author.actor.name),
            audit_entries::request_id.eq(author.request_id.as_deref()),
            audit_entries::object_type.eq(entry.object_type),
            audit_entries::object_id.eq(entry.object_id),
            audit_entries::brand_id.eq(entry.brand_id),
            audit_entries::action.eq(entry.action),
            audit_entries::changes.eq(changes),
        ))
        .execute(conn)?;
    Ok(())
}

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub object_type: Option<String>,
    pub object_id: Option<i64>,
    /// The entries of one brand's objects (its own and its campaigns' and spend's).
    pub brand_id: Option<i64>,
    pub actor_kind: Option<ActorKind>,
    pub actor_name: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// What the reader sees: a brand-bound reader sees only its brands' entries.
    pub visible: Brands,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_entries)]
struct Row {
    id: i64,
    at: NaiveDateTime,
    actor_kind: String,
    actor_id: Option<i64>,
    actor_name: String,
    request_id: Option<String>,
    object_type: String,
    object_id: i64,
    brand_id: Option<i64>,
    action: String,
    changes: String,
}

/// Entries newest first; the cursor is the last entry's id.
pub fn list(
    conn: &mut DbConnection,
    filter: &AuditFilter,
    page: PageRequest,
) -> DomainResult<Page<AuditEntry>> {
    let mut q = audit_entries::table
        .select(Row::as_select())
        .order(audit_entries::id.desc())
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(t) = &filter.object_type {
        q = q.filter(audit_entries::object_type.eq(t.clone()));
    }
    if let Some(id) = filter.object_id {
        q = q.filter(audit_entries::object_id.eq(id));
    }
    if let Some(b) = filter.brand_id {
        q = q.filter(audit_entries::brand_id.eq(b));
    }
    if let Some(ids) = filter.visible.ids() {
        q = q.filter(audit_entries::brand_id.eq_any(ids.to_vec()));
    }
    if let Some(k) = filter.actor_kind {
        q = q.filter(audit_entries::actor_kind.eq(k.as_str()));
    }
    if let Some(n) = &filter.actor_name {
        q = q.filter(audit_entries::actor_name.eq(n.clone()));
    }
    if let Some(from) = filter.from {
        q = q.filter(audit_entries::at.ge(naive(from)));
    }
    if let Some(to) = filter.to {
        q = q.filter(audit_entries::at.lt(naive(to)));
    }
    if let Some(cursor) = page.cursor {
        q = q.filter(audit_entries::id.lt(cursor));
    }
    let rows: Vec<Row> = q.load(conn)?;
    let entries = rows
        .into_iter()
        .map(|r| AuditEntry {
            id: r.id,
            at: utc(r.at),
            actor: Actor {
                kind: ActorKind::parse(&r.actor_kind).unwrap_or(ActorKind::Cli),
                id: r.actor_id,
                name: r.actor_name,
            },
            request_id: r.request_id,
            object_type: r.object_type,
            object_id: r.object_id,
            brand_id: r.brand_id,
            action: r.action,
            changes: serde_json::from_str(&r.changes).unwrap_or_default(),
        })
        .collect();
    Ok(into_page(entries, page.limit, |e| e.id))
}
