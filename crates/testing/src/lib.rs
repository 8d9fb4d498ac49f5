//! adbudget's test harness, shared by the crates' integration tests, the end-to-end tests and the
//! bench's soak: a throwaway database per test on either backend (a fresh SQLite file, or a
//! PostgreSQL database cloned from a migrated template), the PostgreSQL and Redis servers tests
//! use (private ones when none runs, see [`services`]), child processes, free ports and the built
//! binaries ([`process`]), and data for benchmarks ([`seed`]). Not a dependency of any binary
//! that ships.

use std::sync::OnceLock;

use adbudget_db::DbConnection;
use adbudget_db::schema::campaigns;
use diesel::prelude::*;

pub mod process;
pub mod receiver;
pub mod services;

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
    /// Creates a database without any table (tests of the migrations themselves).
    pub fn create_empty(backend: Backend) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                Ok(TestDatabase {
                    url: format!("sqlite://{}", dir.path().join("adbudget.db").display()),
                    backend,
                    pg_name: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => Self::postgres(None),
        }
    }

    /// Creates an empty, migrated database: SQLite runs the migrations, PostgreSQL clones the
    /// migrated template.
    pub fn create(backend: Backend) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => {
                let db = Self::create_empty(backend)?;
                let pool = adbudget_db::connect(&db.url, 1)?;
                adbudget_db::migrate(&mut *adbudget_db::get(&pool)?)?;
                Ok(db)
            }
            Backend::Postgres => Self::postgres(Some(&migrated_template()?)),
        }
    }

    /// A new PostgreSQL database, a copy of `template` (else of the server's default, empty).
    fn postgres(template: Option<&str>) -> anyhow::Result<Self> {
        let admin = postgres_admin_url();
        let name = format!("adbudget_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::establish(&admin)?;
        let from = template.map_or_else(String::new, |t| format!(" TEMPLATE {t}"));
        diesel::sql_query(format!("CREATE DATABASE {name}{from}")).execute(&mut conn)?;
        Ok(TestDatabase {
            url: database_url(&admin, &name)?,
            backend: Backend::Postgres,
            pg_name: Some(name),
            _dir: None,
        })
    }
}

fn database_url(admin: &str, name: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(admin)?;
    url.set_path(name);
    Ok(url.to_string())
}

/// The name of a PostgreSQL database holding every migration and nothing else, which each test's
/// database is cloned from (`CREATE DATABASE … TEMPLATE`, as crates.io's test databases are): a
/// copy is much faster than running the migrations again for every test.
///
/// The name carries a hash of the migrations this build embeds
/// ([`adbudget_db::MIGRATIONS_FINGERPRINT`]), so a changed migration gets a template of its own, a
/// binary built from older migrations never clones a newer schema, and test processes running at
/// once share one. It is built under another name and renamed
/// when complete, under an advisory lock: a process that dies half-way leaves no template that
/// looks finished. Templates stay on the server for the next run (a private server is removed
/// with everything on it).
fn migrated_template() -> anyhow::Result<String> {
    static NAME: OnceLock<Result<String, String>> = OnceLock::new();
    NAME.get_or_init(|| build_template().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!("the migrated template database: {e}"))
}

fn build_template() -> anyhow::Result<String> {
    use diesel::sql_types::{BigInt, Text};
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let name = format!("adbudget_template_{}", adbudget_db::MIGRATIONS_FINGERPRINT);
    let admin = postgres_admin_url();
    let mut conn = PgConnection::establish(&admin)?;
    // Any constant shared by every test process: they build the template one at a time.
    diesel::sql_query("SELECT pg_advisory_lock(727413)").execute(&mut conn)?;
    let built = (|| -> anyhow::Result<()> {
        let exists = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(&name)
            .get_result::<Found>(&mut conn)?
            .n
            > 0;
        if exists {
            return Ok(());
        }
        let building = format!("{name}_building");
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .execute(&mut conn)?;
        diesel::sql_query(format!("CREATE DATABASE {building}")).execute(&mut conn)?;
        {
            let mut db = adbudget_db::connect_one(&database_url(&admin, &building)?)?;
            adbudget_db::migrate(&mut db)?;
        }
        diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
            .execute(&mut conn)?;
        Ok(())
    })();
    diesel::sql_query("SELECT pg_advisory_unlock(727413)").execute(&mut conn)?;
    built.map(|()| name)
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
pub fn corrupt_state(conn: &mut DbConnection, campaign_id: i64, bits: i32) -> QueryResult<usize> {
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
                    super::$name($crate::Backend::Sqlite)
                }
                #[test]
                fn postgres() {
                    super::$name($crate::Backend::Postgres)
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
                    super::$name($crate::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await
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
    conn: &mut DbConnection,
    brands: usize,
    per_brand: usize,
    mut progress: impl FnMut(u64),
) -> QueryResult<Vec<i64>> {
    use adbudget_db::schema::{brands as b, campaigns as c};
    let at = adbudget_core::forms::now();
    let now = at.naive_utc();
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
                    // No spend before now: the lifetime totals start folded, as
                    // `repo::brands::create` has them (`repo::lifetime`).
                    b::carried_before.eq(adbudget_core::period::PeriodKeys::at(
                        at,
                        adbudget_core::rule::parse_tz(tzs[i % tzs.len()]),
                    )
                    .month),
                    b::created_at.eq(now),
                    b::updated_at.eq(now),
                )
            })
            .collect();
        let ids: Vec<i64> = adbudget_db::per_backend!(conn, x => diesel::insert_into(b::table).values(&rows).returning(b::id).get_results(x))?;
        brand_ids.extend(ids);
    }
    let office = adbudget_core::dayparting::Schedule::from_json(
        &serde_json::json!({"start_hour": 9, "end_hour": 17}),
        "d",
    )
    .map(|s| s.to_stored())
    .unwrap_or_default();
    let night = adbudget_core::dayparting::Schedule::from_json(
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
        let ids: Vec<i64> = adbudget_db::per_backend!(conn, x => diesel::insert_into(c::table).values(&rows).returning(c::id).get_results(x))?;
        campaign_ids.extend(ids);
        progress(campaign_ids.len() as u64);
    }
    Ok(campaign_ids)
}
