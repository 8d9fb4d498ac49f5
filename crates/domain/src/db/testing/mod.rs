//! Throwaway databases for tests and benchmarks: a fresh SQLite file or a fresh PostgreSQL
//! database per test, migrated, dropped afterwards.

use diesel::prelude::*;

mod services;

pub use services::{postgres_admin_url, redis_url};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of its own; dropped (PostgreSQL) or deleted (SQLite) with this value.
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// Creates an empty, migrated database.
    pub fn create(backend: Backend) -> anyhow::Result<Self> {
        let db = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}", dir.path().join("adbudget.db").display());
                TestDatabase {
                    url,
                    backend,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("adbudget_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::establish(&admin)?;
                diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn)?;
                let mut url = url::Url::parse(&admin)?;
                url.set_path(&name);
                TestDatabase {
                    url: url.to_string(),
                    backend,
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        };
        let pool = super::connect(&db.url, 1)?;
        super::migrate(&mut *super::get(&pool)?)?;
        Ok(db)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name
            && let Ok(mut conn) = PgConnection::establish(&postgres_admin_url())
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}

/// Overwrites a campaign's stored reasons behind the rule's back, to give a reconcile something to
/// repair (tests of the jobs and of `verify`).
pub fn corrupt_state(
    conn: &mut super::DbConnection,
    campaign_id: i64,
    bits: i32,
) -> QueryResult<usize> {
    use crate::schema::campaigns;
    diesel::update(campaigns::table.find(campaign_id))
        .set(campaigns::pause_reasons.eq(bits))
        .execute(conn)
}

/// Generates, for each `name`, `mod name { #[test] fn sqlite(); #[test] fn postgres(); }` calling
/// `name(backend)`: every integration test of the data path runs on both backends.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name($crate::db::testing::Backend::Sqlite)
                }
                #[test]
                fn postgres() {
                    super::$name($crate::db::testing::Backend::Postgres)
                }
            }
        )*
    };
}

/// The same for `async fn name(backend)` tests, on a two-thread tokio runtime (the calling crate
/// depends on tokio).
#[macro_export]
macro_rules! on_both_databases_async {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::db::testing::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::db::testing::Backend::Postgres).await
                }
            }
        )*
    };
}

/// Creates a data set for benchmarks quickly (batch inserts, no per-row rule): `brands` brands
/// with `per_brand` campaigns each, a mix of schedules (a third office hours, a sixth overnight,
/// the rest none), caps on a quarter, budgets large enough that spend rarely pauses. Calls
/// `progress` with the campaigns created so far. Run `enforce_budgets` afterwards to set states.
pub fn seed(
    conn: &mut super::DbConnection,
    brands: usize,
    per_brand: usize,
    mut progress: impl FnMut(u64),
) -> QueryResult<Vec<i64>> {
    use crate::schema::{brands as b, campaigns as c};
    let now = crate::forms::now().naive_utc();
    let tzs = [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Asia/Tokyo",
        "Australia/Sydney",
    ];
    let offset: i64 = b::table.count().get_result(conn)?;
    let mut brand_ids = Vec::with_capacity(brands);
    for chunk in (0..brands).collect::<Vec<_>>().chunks(1000) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|i| {
                (
                    b::name.eq(format!("bench brand {}", offset as usize + i)),
                    b::daily_budget.eq(1_000_000_000_000i64),
                    b::monthly_budget.eq(30_000_000_000_000i64),
                    b::timezone.eq(tzs[i % tzs.len()]),
                    b::created_at.eq(now),
                    b::updated_at.eq(now),
                )
            })
            .collect();
        let ids: Vec<i64> = crate::per_backend!(conn, x => diesel::insert_into(b::table).values(&rows).returning(b::id).get_results(x))?;
        brand_ids.extend(ids);
    }
    let office = crate::dayparting::Schedule::from_json(
        &serde_json::json!({"start_hour": 9, "end_hour": 17}),
        "d",
    )
    .map(|s| s.to_stored())
    .unwrap_or_default();
    let night = crate::dayparting::Schedule::from_json(
        &serde_json::json!([{"start": "22:00", "end": "06:00"}]),
        "d",
    )
    .map(|s| s.to_stored())
    .unwrap_or_default();
    let mut campaign_ids = Vec::with_capacity(brands * per_brand);
    let all: Vec<(i64, usize)> = brand_ids
        .iter()
        .flat_map(|b| (0..per_brand).map(move |n| (*b, n)))
        .collect();
    // 3,000 rows × 9 columns stays under SQLite's 32,766 bind variables.
    for chunk in all.chunks(3000) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(brand, n)| {
                let schedule = match n % 6 {
                    0 | 1 => Some(office.clone()),
                    2 => Some(night.clone()),
                    _ => None,
                };
                (
                    c::brand_id.eq(*brand),
                    c::name.eq(format!("campaign {n}")),
                    c::daily_cap.eq((n % 4 == 0).then_some(500_000_000_000i64)),
                    c::monthly_cap.eq(None::<i64>),
                    c::manually_paused.eq(false),
                    c::dayparting.eq(schedule),
                    c::pause_reasons.eq(0),
                    c::created_at.eq(now),
                    c::updated_at.eq(now),
                )
            })
            .collect();
        let ids: Vec<i64> = crate::per_backend!(conn, x => diesel::insert_into(c::table).values(&rows).returning(c::id).get_results(x))?;
        campaign_ids.extend(ids);
        progress(campaign_ids.len() as u64);
    }
    Ok(campaign_ids)
}
