//! Spend logs over the years (issue #19, item 4; the `maintain_spend_logs` job).
//!
//! PostgreSQL: `spend_logs` is partitioned by month of `occurred_at` in UTC (migration 000012),
//! the partitions in the schema `spend_log_partitions`. Each run creates the partitions of the
//! current month and the two after it that do not exist yet (moving any of their rows out of the
//! default partition first, which otherwise refuses the new range), and with a retention of N
//! months drops every partition that lies wholly before the first day of the month N months
//! before the current one: detached (a catalog change, but under strong locks: see "Locks"
//! below), then its event ids removed from `spend_event_ids` and the table dropped. The default
//! partition's rows before that day (late events of dropped months) are deleted. The partition
//! that the migration made of a table that already held logs covers everything before its first
//! month; it goes as a whole once all of it is past the retention, so until then more is kept
//! than asked, never less.
//!
//! Locks: ATTACH and DETACH take strong locks (the default partition's, the parent's, and while
//! the logs had a foreign key, before migration 000014, a lock on `campaigns` that held back
//! writes to it), so every DDL transaction
//! runs with `lock_timeout` [`DDL_LOCK_TIMEOUT`] and is tried [`DDL_TRIES`] times: a long
//! transaction in the way delays the run (or fails it, and the next run finishes the work) rather
//! than queueing every spend request behind the DDL. Runs exclude each other with an advisory
//! lock. A dropped partition is renamed `…_dropping` in its DETACH's transaction; only such tables
//! are emptied of their event ids and dropped (also by a later run, if one stopped half way), and
//! before the drop any foreign key it kept (one detached before migration 000014) is removed so
//! that DROP needs no lock on `campaigns`.
//!
//! SQLite keeps one table and deletes the logs before that day, 10,000 at a time, each chunk its
//! own transaction (the writer is not held for the whole deletion).
//!
//! Either way totals, buckets and campaign states are untouched (they are kept as running sums,
//! never summed from the logs), and `spend_log_horizon` records the day, for `verify` to check
//! only the periods that start after it.

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamp};

use crate::error::DomainResult;
use crate::repo::naive;
use crate::{DbConnection, write_transaction};

/// Months ahead of the current one whose partitions exist after a run.
pub const MONTHS_AHEAD: u32 = 2;
/// Rows per deleting transaction on SQLite.
const DELETE_CHUNK: i64 = 10_000;
/// How long a DDL statement of the job waits for a lock before giving up (PostgreSQL).
pub const DDL_LOCK_TIMEOUT: &str = "2s";
/// Attempts of a DDL transaction that gave up on a lock.
const DDL_TRIES: u32 = 3;
/// The advisory lock that keeps two runs apart ("adbudget" in ASCII).
const RUN_LOCK: i64 = 0x6164_6275_6467_6574;
/// The suffix of a detached partition on its way out.
const DROPPING: &str = "_dropping";

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Maintained {
    /// PostgreSQL: the partitions created, by table name.
    pub created: Vec<String>,
    /// PostgreSQL: the partitions dropped, by table name.
    pub dropped: Vec<String>,
    /// Spend logs deleted row by row (SQLite; PostgreSQL's default partition).
    pub deleted: u64,
    /// With a retention: the first instant whose spend logs are kept.
    pub kept_from: Option<NaiveDateTime>,
}

/// The first instant of `t`'s month.
pub fn month_start(t: NaiveDateTime) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(t.year(), t.month(), 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or(t)
}

/// The first instant kept with a retention of `months` whole months before the current one.
pub fn kept_from(now: DateTime<Utc>, months: u32) -> NaiveDateTime {
    let start = month_start(naive(now));
    start
        .checked_sub_months(Months::new(months))
        .unwrap_or(NaiveDateTime::MIN)
}

/// One run of the job at `now`.
pub fn maintain(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    retention_months: Option<u32>,
) -> DomainResult<Maintained> {
    let mut done = Maintained {
        kept_from: retention_months.map(|m| kept_from(now, m)),
        ..Maintained::default()
    };
    if matches!(conn, DbConnection::Postgresql(_)) {
        // One run at a time (every worker runs jobs): a second one finds the lock taken and
        // leaves the work to the first.
        if !advisory(conn, "pg_try_advisory_lock")? {
            tracing::info!("another maintain_spend_logs run is in progress");
            return Ok(done);
        }
        let result = maintain_pg(conn, now, &mut done);
        advisory(conn, "pg_advisory_unlock")?;
        result?;
        return Ok(done);
    }
    // SQLite: one table, deleted from in chunks.
    if let Some(cutoff) = done.kept_from {
        write_transaction(conn, |conn| record_horizon(conn, cutoff, naive(now)))?;
        loop {
            let deleted = write_transaction(conn, |conn| {
                diesel::sql_query(
                    "DELETE FROM spend_logs WHERE id IN \
                         (SELECT id FROM spend_logs WHERE occurred_at < ? LIMIT ?)",
                )
                .bind::<Timestamp, _>(cutoff)
                .bind::<BigInt, _>(DELETE_CHUNK)
                .execute(conn)
            })?;
            done.deleted += deleted as u64;
            if (deleted as i64) < DELETE_CHUNK {
                break;
            }
        }
    }
    Ok(done)
}

fn maintain_pg(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    done: &mut Maintained,
) -> DomainResult<()> {
    create_ahead(conn, month_start(naive(now)), done)?;
    if let Some(cutoff) = done.kept_from {
        // First: from now on `verify` does not expect what is about to go (a run that fails
        // half way leaves no false findings behind).
        write_transaction(conn, |conn| record_horizon(conn, cutoff, naive(now)))?;
        drop_before(conn, cutoff, done)?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Taken {
    #[diesel(sql_type = Bool)]
    taken: bool,
}

/// `pg_try_advisory_lock` or `pg_advisory_unlock` of [`RUN_LOCK`] (session-level).
fn advisory(conn: &mut DbConnection, function: &str) -> QueryResult<bool> {
    diesel::sql_query(format!("SELECT {function}($1) AS taken"))
        .bind::<BigInt, _>(RUN_LOCK)
        .get_result::<Taken>(conn)
        .map(|t| t.taken)
}

/// Runs DDL in a transaction with a short `lock_timeout`, again after a pause when a lock was not
/// granted in time.
fn ddl(
    conn: &mut DbConnection,
    mut f: impl FnMut(&mut DbConnection) -> QueryResult<()>,
) -> QueryResult<()> {
    let mut tries = 0;
    loop {
        tries += 1;
        let result = write_transaction(conn, |conn| {
            diesel::sql_query(format!("SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'"))
                .execute(conn)?;
            f(conn)
        });
        match result {
            Err(diesel::result::Error::DatabaseError(_, info))
                if tries < DDL_TRIES && info.message().contains("lock timeout") =>
            {
                tracing::info!(
                    tries,
                    "a spend log partition change waited too long for a lock; trying again"
                );
                std::thread::sleep(std::time::Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// What `verify` needs: the first instant whose spend logs are all kept (`None`: nothing was
/// ever dropped).
pub fn horizon(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    use crate::schema::spend_log_horizon;
    spend_log_horizon::table
        .select(spend_log_horizon::kept_from)
        .first(conn)
        .optional()
}

fn record_horizon(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<()> {
    // Only ever later: a retention lengthened afterwards cannot bring dropped logs back.
    let sql = match conn {
        DbConnection::Postgresql(_) => {
            "INSERT INTO spend_log_horizon (id, kept_from, updated_at) VALUES (TRUE, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET kept_from = greatest(spend_log_horizon.kept_from, \
             excluded.kept_from), updated_at = excluded.updated_at"
        }
        DbConnection::Sqlite(_) => {
            "INSERT INTO spend_log_horizon (id, kept_from, updated_at) VALUES (TRUE, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET kept_from = max(spend_log_horizon.kept_from, \
             excluded.kept_from), updated_at = excluded.updated_at"
        }
    };
    diesel::sql_query(sql)
        .bind::<Timestamp, _>(cutoff)
        .bind::<Timestamp, _>(now)
        .execute(conn)
        .map(drop)
}

/// A table of the schema `spend_log_partitions`: attached (with its bounds) or left detached by
/// an earlier run that stopped half way.
#[derive(QueryableByName, Debug)]
struct PartitionRow {
    /// Schema-qualified and quoted, ready for DDL.
    #[diesel(sql_type = Text)]
    name: String,
    /// `pg_get_expr` of the bound (`FOR VALUES FROM (…) TO (…)`, `DEFAULT`); null: detached.
    #[diesel(sql_type = Nullable<Text>)]
    bound: Option<String>,
    #[diesel(sql_type = Bool)]
    attached: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Bound {
    Default,
    /// `from` `None`: MINVALUE.
    Range {
        from: Option<NaiveDateTime>,
        to: NaiveDateTime,
    },
}

fn parse_bound(text: &str) -> Option<Bound> {
    if text.trim() == "DEFAULT" {
        return Some(Bound::Default);
    }
    let value = |key: &str| -> Option<Option<NaiveDateTime>> {
        let rest = &text[text.find(key)? + key.len()..];
        let inner = rest.strip_prefix(" (")?;
        let inner = &inner[..inner.find(')')?];
        if inner == "MINVALUE" {
            return Some(None);
        }
        let quoted = inner.strip_prefix('\'')?.strip_suffix('\'')?;
        NaiveDateTime::parse_from_str(quoted, "%Y-%m-%d %H:%M:%S")
            .ok()
            .map(Some)
    };
    Some(Bound::Range {
        from: value("FROM")?,
        to: value(" TO")??,
    })
}

fn partitions(conn: &mut DbConnection) -> QueryResult<Vec<(PartitionRow, Option<Bound>)>> {
    let rows: Vec<PartitionRow> = write_transaction(conn, |conn| {
        // The bounds print as the session's DateStyle would: ISO is what `parse_bound` reads.
        diesel::sql_query("SET LOCAL DateStyle = 'ISO, MDY'").execute(conn)?;
        diesel::sql_query(
            "SELECT c.oid::regclass::text AS name, \
                    CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END \
                        AS bound, \
                    c.relispartition AS attached \
             FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'spend_log_partitions' AND c.relkind = 'r' \
             ORDER BY c.relname",
        )
        .load(conn)
    })?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let bound = r.bound.as_deref().and_then(parse_bound);
            (r, bound)
        })
        .collect())
}

/// Creates the current month's partition and the [`MONTHS_AHEAD`] after it, where missing.
fn create_ahead(
    conn: &mut DbConnection,
    current: NaiveDateTime,
    done: &mut Maintained,
) -> DomainResult<()> {
    let existing = partitions(conn)?;
    let default = existing
        .iter()
        .find(|(_, b)| *b == Some(Bound::Default))
        .map(|(r, _)| r.name.clone());
    for ahead in 0..=MONTHS_AHEAD {
        let Some(from) = current.checked_add_months(Months::new(ahead)) else {
            continue;
        };
        let covered = existing.iter().any(|(_, b)| {
            matches!(b, Some(Bound::Range { from: f, to }) if f.is_none_or(|f| f <= from) && *to > from)
        });
        if covered {
            continue;
        }
        let Some(to) = from.checked_add_months(Months::new(1)) else {
            continue;
        };
        let name = format!(
            "spend_log_partitions.spend_logs_{:04}_{:02}",
            from.year(),
            from.month()
        );
        let (lower, upper) = (from.format("%Y-%m-%d"), to.format("%Y-%m-%d"));
        ddl(conn, |conn| {
            // A month's rows that arrived before its partition (the default partition took them)
            // move into it; ATTACH then checks the default partition holds none of the range.
            // The default partition is locked against new rows first (SHARE waits for the
            // transactions writing to it), so none arrives between the move and the check.
            diesel::sql_query(format!(
                "CREATE TABLE {name} (LIKE spend_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            ))
            .execute(conn)?;
            if let Some(default) = &default {
                diesel::sql_query(format!("LOCK TABLE {default} IN SHARE MODE")).execute(conn)?;
                diesel::sql_query(format!(
                    "WITH moved AS (DELETE FROM {default} \
                                    WHERE occurred_at >= $1 AND occurred_at < $2 RETURNING *) \
                     INSERT INTO {name} SELECT * FROM moved"
                ))
                .bind::<Timestamp, _>(from)
                .bind::<Timestamp, _>(to)
                .execute(conn)?;
            }
            diesel::sql_query(format!(
                "ALTER TABLE spend_logs ATTACH PARTITION {name} \
                 FOR VALUES FROM ('{lower}') TO ('{upper}')"
            ))
            .execute(conn)?;
            Ok(())
        })?;
        tracing::info!(partition = %name, "created a spend log partition");
        done.created.push(name);
    }
    Ok(())
}

/// Drops the partitions wholly before `cutoff` and deletes the default partition's rows before
/// it, with their event ids.
fn drop_before(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    done: &mut Maintained,
) -> DomainResult<()> {
    for (row, bound) in partitions(conn)? {
        match bound {
            Some(Bound::Range { to, .. }) if to <= cutoff => {
                // Detached (and renamed, marking it for the drop) in a transaction of its own:
                // DETACH holds the parent's strongest lock until commit (a default partition rules
                // out CONCURRENTLY), so it must not wait behind the event ids' deletion.
                let name = &row.name;
                let bare = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
                let dropping = format!("{bare}{DROPPING}");
                ddl(conn, |conn| {
                    diesel::sql_query(format!("ALTER TABLE spend_logs DETACH PARTITION {name}"))
                        .execute(conn)?;
                    diesel::sql_query(format!("ALTER TABLE {name} RENAME TO {dropping}"))
                        .execute(conn)
                        .map(drop)
                })?;
                drop_detached(conn, &format!("spend_log_partitions.{dropping}"))?;
                done.dropped.push(row.name);
            }
            // Marked by a run that stopped between the two steps. (Any other detached table,
            // say one an operator detached to archive, is left alone.)
            None if !row.attached && row.name.ends_with(DROPPING) => {
                drop_detached(conn, &row.name)?;
                done.dropped.push(row.name);
            }
            Some(Bound::Default) => {
                let name = &row.name;
                let deleted = write_transaction(conn, |conn| {
                    diesel::sql_query(format!(
                        "WITH gone AS (DELETE FROM {name} WHERE occurred_at < $1 \
                                       RETURNING brand_id, event_id), \
                              ids AS (DELETE FROM spend_event_ids AS i USING gone \
                                      WHERE i.brand_id = gone.brand_id \
                                        AND i.event_id = gone.event_id) \
                         SELECT count(*) AS n FROM gone"
                    ))
                    .bind::<Timestamp, _>(cutoff)
                    .get_result::<Count>(conn)
                })?;
                done.deleted += deleted.n as u64;
            }
            _ => {}
        }
    }
    for name in &done.dropped {
        tracing::info!(partition = %name, "dropped a spend log partition past the retention");
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Constraint {
    #[diesel(sql_type = Text)]
    name: String,
}

/// A detached partition's event ids leave `spend_event_ids`, then any foreign key it kept (whose
/// removal takes a lock on `campaigns`, with the short timeout), then the table.
fn drop_detached(conn: &mut DbConnection, name: &str) -> QueryResult<()> {
    write_transaction(conn, |conn| {
        diesel::sql_query(format!(
            "DELETE FROM spend_event_ids AS i USING {name} AS p \
             WHERE p.event_id IS NOT NULL AND i.brand_id = p.brand_id \
               AND i.event_id = p.event_id"
        ))
        .execute(conn)
        .map(drop)
    })?;
    ddl(conn, |conn| {
        let keys: Vec<Constraint> = diesel::sql_query(format!(
            "SELECT quote_ident(conname) AS name FROM pg_constraint \
             WHERE conrelid = '{name}'::regclass AND contype = 'f'"
        ))
        .load(conn)?;
        for key in keys {
            diesel::sql_query(format!("ALTER TABLE {name} DROP CONSTRAINT {}", key.name))
                .execute(conn)?;
        }
        diesel::sql_query(format!("DROP TABLE {name}"))
            .execute(conn)
            .map(drop)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn bounds_as_postgresql_prints_them() {
        assert_eq!(parse_bound("DEFAULT"), Some(Bound::Default));
        assert_eq!(
            parse_bound("FOR VALUES FROM ('2026-12-01 00:00:00') TO ('2027-01-01 00:00:00')"),
            Some(Bound::Range {
                from: Some(at("2026-12-01 00:00:00")),
                to: at("2027-01-01 00:00:00"),
            })
        );
        assert_eq!(
            parse_bound("FOR VALUES FROM (MINVALUE) TO ('2027-01-01 00:00:00')"),
            Some(Bound::Range {
                from: None,
                to: at("2027-01-01 00:00:00"),
            })
        );
        assert_eq!(parse_bound("FOR VALUES IN (1)"), None);
    }

    #[test]
    fn the_retention_counts_whole_months_before_the_current_one() {
        let now = "2026-03-31T23:59:59Z".parse().unwrap();
        assert_eq!(kept_from(now, 1), at("2026-02-01 00:00:00"));
        assert_eq!(kept_from(now, 14), at("2025-01-01 00:00:00"));
    }
}
