//! Login throttling (SPEC §12): failed admin logins counted per account and per client address
//! in the database, so that every API replica sees the same counts, with bounded storage (one row
//! per key that failed within the window; older rows are deleted).

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::naive;
use crate::error::DomainResult;
use crate::schema::login_failures;
use crate::{DbConnection, write_transaction};

/// Failures of one key within [`WINDOW`] before further attempts are refused.
pub const MAX_FAILURES: i32 = 5;
/// How long failures count, from a key's first failure.
pub const WINDOW: chrono::Duration = chrono::Duration::minutes(15);

/// Counts an attempt for each of `keys` before its password is checked, and says whether it may
/// go ahead: not when any key has now more than [`MAX_FAILURES`] attempts in its window. Counted
/// first, so that a thousand attempts sent at once cannot all pass the check before the first of
/// them fails. A key whose window has passed starts a new one; rows whose window has passed are
/// deleted. A successful login gives its attempt back ([`succeeded`]).
pub fn attempt(conn: &mut DbConnection, keys: &[String], now: DateTime<Utc>) -> DomainResult<bool> {
    let (now, since) = (naive(now), naive(now - WINDOW));
    let counts = write_transaction(conn, |conn| {
        diesel::delete(login_failures::table.filter(login_failures::window_start.le(since)))
            .execute(conn)?;
        let mut counts = Vec::with_capacity(keys.len());
        for key in keys {
            let row = (
                login_failures::key.eq(key),
                login_failures::failures.eq(1),
                login_failures::window_start.eq(now),
            );
            counts.push(
                crate::per_backend!(conn, c => diesel::insert_into(login_failures::table)
                .values(row)
                .on_conflict(login_failures::key)
                .do_update()
                .set(login_failures::failures.eq(login_failures::failures + 1))
                .returning(login_failures::failures)
                .get_result::<i32>(c))?,
            );
        }
        Ok::<_, diesel::result::Error>(counts)
    })?;
    Ok(counts.iter().all(|n| *n <= MAX_FAILURES))
}

/// A login succeeded: its account's count is forgotten, and its attempt is taken back from the
/// other keys (the client address), so that only failures count there.
pub fn succeeded(conn: &mut DbConnection, account: &str, others: &[String]) -> DomainResult<()> {
    diesel::delete(login_failures::table.filter(login_failures::key.eq(account))).execute(conn)?;
    diesel::update(login_failures::table.filter(login_failures::key.eq_any(others)))
        .set(login_failures::failures.eq(login_failures::failures - 1))
        .execute(conn)?;
    Ok(())
}
