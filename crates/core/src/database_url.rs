//! `DATABASE_URL` and `REDIS_URL` as configuration sees them: which backend, and a form safe to log.

/// Which backend a `DATABASE_URL` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    /// A file path (the `sqlite://` prefix removed).
    Sqlite(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                format!(
                    "must start with sqlite:// or postgres:// (got {:?})",
                    redact(url)
                )
            })?;
        if path.is_empty() || path == ":memory:" {
            return Err("needs a file path, e.g. sqlite://adbudget.db (an in-memory database cannot be shared by a pool)".into());
        }
        Ok(DatabaseUrl::Sqlite(path.to_owned()))
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, DatabaseUrl::Sqlite(_))
    }
}

/// The URL with any password (in its user part or its query) replaced, for logs and error
/// messages.
pub fn redact(url: &str) -> String {
    /// Query parameters that carry credentials in some drivers' URLs (`?password=`, libpq's
    /// `sslpassword`, tokens of managed services).
    fn secret(key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        ["password", "passwd", "pwd", "secret", "token", "key"]
            .iter()
            .any(|s| key.contains(s))
    }
    let Ok(mut u) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let secret_query = u.query_pairs().any(|(k, _)| secret(&k));
    if u.password().is_none() && !secret_query {
        return url.to_owned();
    }
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if secret_query {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret(&k) {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_passwords_wherever_they_are() {
        assert_eq!(redact("postgres://u:hunter2@h/db"), "postgres://u:***@h/db");
        let q = redact("postgres://u@h/db?password=hunter2&sslmode=require");
        assert!(
            !q.contains("hunter2") && q.contains("sslmode=require"),
            "{q}"
        );
        let q = redact("redis://h:6379/?Token=hunter2");
        assert!(!q.contains("hunter2"), "{q}");
        assert_eq!(redact("sqlite://adbudget.db"), "sqlite://adbudget.db");
    }
}
