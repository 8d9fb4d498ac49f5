//! Throwaway databases for tests and benchmarks: a fresh SQLite file or a fresh PostgreSQL
//! database per test, migrated, dropped afterwards.

use diesel::prelude::*;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on (`TEST_DATABASE_URL`, any database on it).
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
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
