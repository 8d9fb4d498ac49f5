//! Admin-panel users. Passwords are hashed with argon2 (the crate's default parameters).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString, rand_core::OsRng};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use subtle::ConstantTimeEq;

use super::{naive, unique_violation};
use crate::DbConnection;
use crate::error::{DomainError, DomainResult};
use crate::schema::users;

pub const MIN_PASSWORD_LEN: usize = 8;

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("failed to hash the password: {e}"))
}

pub fn create_superuser(
    conn: &mut DbConnection,
    username: &str,
    password: &str,
    now: DateTime<Utc>,
) -> DomainResult<i64> {
    let username = adbudget_core::forms::validate_name(username, "username")?;
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(DomainError::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    let hash = hash_password(password)?;
    diesel::insert_into(users::table)
        .values((
            users::username.eq(&username),
            users::password_hash.eq(hash),
            users::is_superuser.eq(true),
            users::created_at.eq(naive(now)),
        ))
        .returning(users::id)
        .get_result(conn)
        .map_err(|e| unique_violation(e, "username", "a user with this name already exists"))
}

/// The user's id if the password is right and the user enabled. Unknown users cost as much time
/// as wrong passwords (see [`password_matches`]).
pub fn verify_password(
    conn: &mut DbConnection,
    username: &str,
    password: &str,
) -> DomainResult<Option<i64>> {
    let found = credentials(conn, username)?;
    let hash = found.as_ref().map(|(_, h)| h.as_str());
    Ok(password_matches(hash, password)
        .then(|| found.map(|(id, _)| id))
        .flatten())
}

/// An enabled user's id and password hash. The caller checks the password with
/// [`password_matches`] after giving the connection back: a hash takes tens of milliseconds.
pub fn credentials(conn: &mut DbConnection, username: &str) -> DomainResult<Option<(i64, String)>> {
    Ok(users::table
        .select((users::id, users::password_hash))
        .filter(users::username.eq(username))
        .filter(users::is_active.eq(true))
        .first(conn)
        .optional()?)
}

/// Whether `password` matches `hash`. Without a hash (no such user) a dummy hash made once per
/// process is checked instead, so that the answer takes the same time either way.
pub fn password_matches(hash: Option<&str>, password: &str) -> bool {
    password_matches_in(hash, password, &mut Vec::new())
}

/// The same, with argon2's working memory (19 MiB) in `memory`, which the caller keeps for its
/// next check. Allocated and freed for every check, that much memory made glibc raise its mmap
/// threshold and then keep every thread's blocks: a login flood grew the process by hundreds of
/// megabytes. Reused, a checking thread holds its 19 MiB and no more.
pub fn password_matches_in(
    hash: Option<&str>,
    password: &str,
    memory: &mut Vec<argon2::Block>,
) -> bool {
    let stored = hash.unwrap_or_else(|| dummy_hash());
    let matches = (|| -> Option<bool> {
        let parsed = PasswordHash::new(stored).ok()?;
        let algorithm = argon2::Algorithm::try_from(parsed.algorithm).ok()?;
        let version = match parsed.version {
            Some(v) => argon2::Version::try_from(v).ok()?,
            None => argon2::Version::default(),
        };
        let params = argon2::Params::try_from(&parsed).ok()?;
        let expected = parsed.hash?;
        let mut salt = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
        memory.resize(params.block_count(), argon2::Block::new());
        let mut out = vec![0u8; expected.len()];
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..])
            .ok()?;
        Some(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
    })();
    if matches.is_none() {
        tracing::error!("a stored password hash does not parse");
    }
    matches.unwrap_or(false) && hash.is_some()
}

/// A hash of a random password, with the same parameters as real ones.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let random: String = {
            use rand::Rng;
            rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(32)
                .map(char::from)
                .collect()
        };
        hash_password(&random).unwrap_or_default()
    })
}

/// Whether user `id` exists and is enabled (every admin request asks: a session ends with its user).
pub fn is_active(conn: &mut DbConnection, id: i64) -> DomainResult<bool> {
    Ok(users::table
        .select(users::is_active)
        .find(id)
        .first::<bool>(conn)
        .optional()?
        .unwrap_or(false))
}

/// Enables or disables a user; a disabled user's sessions end at their next request.
pub fn set_active(conn: &mut DbConnection, username: &str, active: bool) -> DomainResult<()> {
    let changed = diesel::update(users::table.filter(users::username.eq(username)))
        .set(users::is_active.eq(active))
        .execute(conn)?;
    if changed == 0 {
        return Err(DomainError::not_found("user"));
    }
    Ok(())
}

pub fn count(conn: &mut DbConnection) -> DomainResult<i64> {
    Ok(users::table.count().get_result(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier;

    #[test]
    fn a_check_in_reused_memory_agrees_with_argon2s_own() {
        let hash = hash_password("correct horse").unwrap();
        let parsed = PasswordHash::new(&hash).unwrap();
        let mut memory = Vec::new();
        for (password, right) in [("correct horse", true), ("wrong horse", false), ("", false)] {
            let theirs = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            assert_eq!(theirs, right);
            assert_eq!(
                password_matches_in(Some(&hash), password, &mut memory),
                right
            );
        }
        // No user: never a match, whatever the password.
        assert!(!password_matches(None, "correct horse"));
        assert!(!password_matches(Some("not a hash"), "x"));
    }
}
