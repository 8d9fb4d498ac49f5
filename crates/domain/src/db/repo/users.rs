//! Admin-panel users. Passwords are hashed with argon2 (the crate's default parameters).

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::{naive, unique_violation};
use crate::db::DbConnection;
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
    let username = crate::forms::validate_name(username, "username")?;
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

/// The user's id if the password is right. Unknown users cost as much time as wrong passwords.
pub fn verify_password(
    conn: &mut DbConnection,
    username: &str,
    password: &str,
) -> DomainResult<Option<i64>> {
    let row: Option<(i64, String)> = users::table
        .select((users::id, users::password_hash))
        .filter(users::username.eq(username))
        .first(conn)
        .optional()?;
    let (id, hash) = match row {
        Some(r) => r,
        // Verify against a dummy hash so that timing does not reveal which usernames exist.
        None => (0, hash_password("not-a-real-password")?),
    };
    let parsed = PasswordHash::new(&hash)
        .map_err(|e| anyhow::anyhow!("stored password hash is invalid: {e}"))?;
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    Ok((ok && id != 0).then_some(id))
}

pub fn count(conn: &mut DbConnection) -> DomainResult<i64> {
    Ok(users::table.count().get_result(conn)?)
}
