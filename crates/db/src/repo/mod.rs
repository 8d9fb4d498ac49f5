//! Repository functions. Each takes `&mut DbConnection` so the caller owns the transaction.
//!
//! Locking discipline (PostgreSQL): every transaction that changes an input of the rule (spend,
//! budgets, caps, schedules, timezones, manual pause) or a campaign's state first locks the rows of
//! the brands involved, in id order, with [`enforce::lock_brands`] (the spend path uses
//! `enforce::lock_brand_facts`, which also reads the locked budgets and timezones). The rule's
//! inputs and outputs for one brand are therefore read and written by one transaction at a time,
//! and no decision is made on numbers another transaction is about to change; whatever the rule
//! decides on is read after the locks. SQLite serializes writers anyway (write transactions begin
//! IMMEDIATE).

pub mod admin;
pub mod audit;
pub mod brands;
pub mod campaigns;
pub mod enforce;
pub mod events;
pub mod lifetime;
pub mod login_throttle;
pub mod pacing;
pub mod schedules;
pub mod spend;
pub mod tokens;
pub mod users;
pub mod verify;
pub mod webhooks;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::error::DomainError;

/// A UTC time as stored: microsecond precision on both backends, so that comparisons on SQLite's
/// text timestamps and PostgreSQL's timestamps agree with what was written.
pub(crate) fn naive(t: DateTime<Utc>) -> NaiveDateTime {
    adbudget_core::forms::to_micros(t).naive_utc()
}

pub(crate) fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// Maps a unique-constraint violation to a 409 on `field`.
pub(crate) fn unique_violation(
    e: diesel::result::Error,
    field: &str,
    message: &str,
) -> DomainError {
    match e {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => DomainError::conflict(field, message),
        other => other.into(),
    }
}

/// Rows per statement for bulk statements: under SQLite's and PostgreSQL's bind-parameter limits.
pub(crate) const CHUNK: usize = 5_000;

/// Keyset pagination: `limit` rows after `cursor`.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: i64,
    pub cursor: Option<i64>,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: i64 = 50;
    pub const MAX_LIMIT: i64 = 500;
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            limit: Self::DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

/// Turns `limit + 1` fetched rows into a page, with the cursor of the last row kept.
pub(crate) fn into_page<T>(
    mut rows: Vec<T>,
    limit: i64,
    id: impl Fn(&T) -> i64,
) -> adbudget_core::views::Page<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| id(r).to_string())
    } else {
        None
    };
    adbudget_core::views::Page {
        items: rows,
        next_cursor,
    }
}
