//! Admin-panel users. Passwords are hashed with argon2 (the crate's default parameters).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString, rand_core::OsRng};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::{naive, unique_violation};
use crate::error::{DomainError, DomainResult};
use crate::schema::{brands, user_brands, users};
use crate::{DbConnection, write_transaction};
use adbudget_core::access::{Actor, ActorKind, Author, Brands, Grant, Principal, Role};
use adbudget_core::audit::{FieldChange, NewEntry};

pub const MIN_PASSWORD_LEN: usize = 8;

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("failed to hash the password: {e}"))
}

/// What a new user is.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub role: Role,
    /// Bound to these brands; `None`: all brands.
    pub brands: Option<Vec<i64>>,
}

/// A user as the admin's user list and `adbudget user list` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub brands: Option<Vec<i64>>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// What a session is checked against on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFacts {
    pub username: String,
    pub role: Role,
    pub brands: Brands,
    pub epoch: i64,
}

impl SessionFacts {
    pub fn principal(&self, id: i64) -> Principal {
        Principal {
            actor: Actor {
                kind: ActorKind::User,
                id: Some(id),
                name: self.username.clone(),
            },
            grant: Grant::User(self.role),
            brands: self.brands.clone(),
        }
    }
}

fn check_password(password: &str) -> DomainResult<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(DomainError::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

fn entry(id: i64, action: &'static str, changes: &[(&str, Value, Value)]) -> NewEntry {
    NewEntry {
        object_type: "user",
        object_id: id,
        brand_id: None,
        action,
        changes: changes
            .iter()
            .map(|(f, old, new)| {
                let change = FieldChange {
                    old: old.clone(),
                    new: new.clone(),
                };
                ((*f).to_owned(), change)
            })
            .collect(),
    }
}

/// Checks that every brand of a binding exists.
fn check_brands(conn: &mut DbConnection, ids: &[i64]) -> DomainResult<()> {
    let found: Vec<i64> = brands::table
        .select(brands::id)
        .filter(brands::id.eq_any(ids))
        .load(conn)?;
    match ids.iter().find(|id| !found.contains(id)) {
        Some(missing) => Err(DomainError::not_found_field(
            "brand",
            format!("brands: no brand {missing}"),
        )),
        None => Ok(()),
    }
}

/// Creates a user (the password is hashed here: call it off the async threads).
pub fn create(
    conn: &mut DbConnection,
    new: &NewUser,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<i64> {
    let username = adbudget_core::forms::validate_name(&new.username, "username")?;
    check_password(&new.password)?;
    let hash = hash_password(&new.password)?;
    let mut bound = new.brands.clone();
    if let Some(ids) = &mut bound {
        ids.sort_unstable();
        ids.dedup();
    }
    write_transaction(conn, |conn| {
        if let Some(ids) = &bound {
            check_brands(conn, ids)?;
        }
        let id: i64 = diesel::insert_into(users::table)
            .values((
                users::username.eq(&username),
                users::password_hash.eq(&hash),
                users::role.eq(new.role.as_str()),
                users::brand_bound.eq(bound.is_some()),
                users::created_at.eq(naive(now)),
            ))
            .returning(users::id)
            .get_result(conn)
            .map_err(|e| unique_violation(e, "username", "a user with this name already exists"))?;
        for brand in bound.iter().flatten() {
            diesel::insert_into(user_brands::table)
                .values((user_brands::user_id.eq(id), user_brands::brand_id.eq(brand)))
                .execute(conn)?;
        }
        let changes = [
            ("username", Value::Null, json!(username)),
            ("role", Value::Null, json!(new.role)),
            ("brands", Value::Null, json!(bound)),
        ];
        super::audit::record(conn, author, entry(id, "create", &changes), now)?;
        Ok(id)
    })
}

/// `createsuperuser`: an admin of every brand.
pub fn create_superuser(
    conn: &mut DbConnection,
    username: &str,
    password: &str,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<i64> {
    let new = NewUser {
        username: username.to_owned(),
        password: password.to_owned(),
        role: Role::Admin,
        brands: None,
    };
    create(conn, &new, now, author)
}

/// The user's id if the password is right and the user enabled. Unknown users cost as much time
/// as wrong passwords (see [`password_matches`]).
pub fn verify_password(
    conn: &mut DbConnection,
    username: &str,
    password: &str,
) -> DomainResult<Option<i64>> {
    let found = credentials(conn, username)?;
    let hash = found.as_ref().map(|(_, h, _)| h.as_str());
    Ok(password_matches(hash, password)
        .then(|| found.map(|(id, _, _)| id))
        .flatten())
}

/// An enabled user's id, password hash and session epoch. The caller checks the password with
/// [`password_matches`] after giving the connection back: a hash takes tens of milliseconds.
pub fn credentials(
    conn: &mut DbConnection,
    username: &str,
) -> DomainResult<Option<(i64, String, i64)>> {
    Ok(users::table
        .select((users::id, users::password_hash, users::session_epoch))
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

/// The session facts of user `id` if it exists and is enabled (every admin request asks: a
/// session ends with its user, its epoch, its role's change).
pub fn session_facts(conn: &mut DbConnection, id: i64) -> DomainResult<Option<SessionFacts>> {
    let row: Option<(String, String, bool, i64)> = users::table
        .select((
            users::username,
            users::role,
            users::brand_bound,
            users::session_epoch,
        ))
        .filter(users::id.eq(id))
        .filter(users::is_active.eq(true))
        .first(conn)
        .optional()?;
    let Some((username, role, bound, epoch)) = row else {
        return Ok(None);
    };
    let brands = if bound {
        Brands::only(
            user_brands::table
                .select(user_brands::brand_id)
                .filter(user_brands::user_id.eq(id))
                .load::<i64>(conn)?,
        )
    } else {
        Brands::All
    };
    Ok(Role::parse(&role).map(|role| SessionFacts {
        username,
        role,
        brands,
        epoch,
    }))
}

fn id_of(conn: &mut DbConnection, username: &str) -> DomainResult<i64> {
    users::table
        .select(users::id)
        .filter(users::username.eq(username))
        .first(conn)
        .optional()?
        .ok_or(DomainError::not_found("user"))
}

/// Enables or disables a user; disabling ends their sessions at once (their epoch moves on).
pub fn set_active(
    conn: &mut DbConnection,
    username: &str,
    active: bool,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<()> {
    write_transaction(conn, |conn| {
        let id = id_of(conn, username)?;
        let was: bool = users::table.select(users::is_active).find(id).first(conn)?;
        diesel::update(users::table.find(id))
            .set((
                users::is_active.eq(active),
                users::session_epoch.eq(users::session_epoch + 1),
            ))
            .execute(conn)?;
        if was != active {
            let action = if active { "enable" } else { "disable" };
            let changes = [("is_active", json!(was), json!(active))];
            super::audit::record(conn, author, entry(id, action, &changes), now)?;
        }
        Ok(())
    })
}

/// Sets a user's password (hashed here) and ends every session of theirs.
pub fn set_password(
    conn: &mut DbConnection,
    username: &str,
    password: &str,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<()> {
    check_password(password)?;
    let hash = hash_password(password)?;
    write_transaction(conn, |conn| {
        let id = id_of(conn, username)?;
        diesel::update(users::table.find(id))
            .set((
                users::password_hash.eq(&hash),
                users::session_epoch.eq(users::session_epoch + 1),
            ))
            .execute(conn)?;
        // The audit trail says that it changed, never what to.
        let changes = [("password", json!("(old)"), json!("(new)"))];
        super::audit::record(conn, author, entry(id, "set_password", &changes), now)?;
        Ok(())
    })
}

/// Changes a user's role and brand binding (`None`: all brands); their sessions carry on with
/// the new permissions from their next request.
pub fn set_role(
    conn: &mut DbConnection,
    username: &str,
    role: Role,
    brands: Option<Vec<i64>>,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<()> {
    write_transaction(conn, |conn| {
        let id = id_of(conn, username)?;
        let before = session_facts_any(conn, id)?;
        let mut bound = brands.clone();
        if let Some(ids) = &mut bound {
            ids.sort_unstable();
            ids.dedup();
            check_brands(conn, ids)?;
        }
        diesel::update(users::table.find(id))
            .set((
                users::role.eq(role.as_str()),
                users::brand_bound.eq(bound.is_some()),
            ))
            .execute(conn)?;
        diesel::delete(user_brands::table.filter(user_brands::user_id.eq(id))).execute(conn)?;
        for brand in bound.iter().flatten() {
            diesel::insert_into(user_brands::table)
                .values((user_brands::user_id.eq(id), user_brands::brand_id.eq(brand)))
                .execute(conn)?;
        }
        let mut changes = Vec::new();
        if before.0 != role {
            changes.push(("role", json!(before.0), json!(role)));
        }
        if before.1 != bound {
            changes.push(("brands", json!(before.1), json!(bound)));
        }
        if !changes.is_empty() {
            super::audit::record(conn, author, entry(id, "update", &changes), now)?;
        }
        Ok(())
    })
}

/// Role and binding of a user, enabled or not.
fn session_facts_any(conn: &mut DbConnection, id: i64) -> DomainResult<(Role, Option<Vec<i64>>)> {
    let (role, bound): (String, bool) = users::table
        .select((users::role, users::brand_bound))
        .find(id)
        .first(conn)?;
    let brands = if bound {
        Some(
            user_brands::table
                .select(user_brands::brand_id)
                .filter(user_brands::user_id.eq(id))
                .order(user_brands::brand_id)
                .load(conn)?,
        )
    } else {
        None
    };
    Ok((Role::parse(&role).unwrap_or(Role::Viewer), brands))
}

/// Ends every session of user `id` (logout): their epoch moves on.
pub fn end_sessions(conn: &mut DbConnection, id: i64) -> DomainResult<()> {
    diesel::update(users::table.find(id))
        .set(users::session_epoch.eq(users::session_epoch + 1))
        .execute(conn)?;
    Ok(())
}

/// A user's name (one row, by primary key).
pub fn username(conn: &mut DbConnection, id: i64) -> DomainResult<String> {
    users::table
        .select(users::username)
        .find(id)
        .first(conn)
        .optional()?
        .ok_or(DomainError::not_found("user"))
}

/// Every user, by name.
pub fn list(conn: &mut DbConnection) -> DomainResult<Vec<UserView>> {
    type Row = (
        i64,
        String,
        String,
        bool,
        bool,
        NaiveDateTime,
        Option<NaiveDateTime>,
    );
    let rows: Vec<Row> = users::table
        .select((
            users::id,
            users::username,
            users::role,
            users::brand_bound,
            users::is_active,
            users::created_at,
            users::last_login_at,
        ))
        .order(users::username)
        .load(conn)?;
    let bindings: Vec<(i64, i64)> = user_brands::table
        .select((user_brands::user_id, user_brands::brand_id))
        .order((user_brands::user_id, user_brands::brand_id))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, username, role, bound, is_active, created, last)| UserView {
                id,
                username,
                role: Role::parse(&role).unwrap_or(Role::Viewer),
                brands: bound.then(|| {
                    bindings
                        .iter()
                        .filter(|(u, _)| *u == id)
                        .map(|(_, b)| *b)
                        .collect()
                }),
                is_active,
                created_at: super::utc(created),
                last_login_at: last.map(super::utc),
            },
        )
        .collect())
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
