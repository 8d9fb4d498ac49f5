use actix_web::web;
use adbudget_domain::db::{self, DbConnection, DbPool};
use adbudget_domain::error::DomainResult;

use crate::error::ApiError;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub pool: DbPool,
}

impl AppState {
    /// Runs blocking database work on actix's blocking pool, inside the caller's tracing span.
    pub async fn db<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> DomainResult<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        let result = web::block(move || {
            let _entered = span.enter();
            let mut conn = db::get(&pool)?;
            f(&mut conn)
        })
        .await?;
        result.map_err(ApiError::from)
    }
}
