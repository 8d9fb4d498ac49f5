//! Login throttling (SPEC §12): failed admin logins counted per account and per client address
//! in the database, so that every API replica sees the same counts, with bounded storage (one row
//! per key that failed within the window; older rows are deleted).

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::naive;
use crate::db::{DbConnection, write_transaction};
use crate::error::DomainResult;
use crate::schema::login_failures;

/// Failures of one key within [`WINDOW`] before further attempts are refused.
pub const MAX_FAILURES: i32 = 5;
/// How long failures count, from a key's first failure.
pub const WINDOW: chrono::Duration = chrono::Duration::minutes(15);

/// Whether any of `keys` has failed [`MAX_FAILURES`] times within the window.
pub fn blocked(conn: &mut DbConnection, keys: &[String], now: DateTime<Utc>) -> DomainResult<bool> {
    let n: i64 = login_failures::table
        .filter(login_failures::key.eq_any(keys))
        .filter(login_failures::failures.ge(MAX_FAILURES))
        .filter(login_failures::window_start.gt(naive(now - WINDOW)))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Counts a failure for each of `keys` (a key whose window has passed starts a new one), and
/// deletes the rows whose window has passed.
pub fn fail(conn: &mut DbConnection, keys: &[String], now: DateTime<Utc>) -> DomainResult<()> {
    let (now, since) = (naive(now), naive(now - WINDOW));
    write_transaction(conn, |conn| {
        diesel::delete(login_failures::table.filter(login_failures::window_start.le(since)))
            .execute(conn)?;
        for key in keys {
            let row = (
                login_failures::key.eq(key),
                login_failures::failures.eq(1),
                login_failures::window_start.eq(now),
            );
            crate::per_backend!(conn, c => diesel::insert_into(login_failures::table)
                .values(row)
                .on_conflict(login_failures::key)
                .do_update()
                .set(login_failures::failures.eq(login_failures::failures + 1))
                .execute(c))?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

/// Forgets the failures of `keys` (a successful login clears its account's count).
pub fn clear(conn: &mut DbConnection, keys: &[String]) -> DomainResult<()> {
    diesel::delete(login_failures::table.filter(login_failures::key.eq_any(keys))).execute(conn)?;
    Ok(())
}
