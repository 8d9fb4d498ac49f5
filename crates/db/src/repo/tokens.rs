//! API bearer tokens. A token is `adb_` + 40 random alphanumerics; its first 12 characters are
//! stored in clear to find the row, the whole token only as a SHA-256 digest (the secret has 200+
//! bits of entropy, so a fast digest is safe; passwords use argon2). The digest is compared in
//! constant time.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{naive, utc};
use crate::error::{DomainError, DomainResult};
use crate::schema::api_tokens;
use crate::{DbConnection, write_transaction};
use adbudget_core::views::ApiToken;

const PREFIX_LEN: usize = 12;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Post spend and read.
    Ingest,
    /// Everything.
    Admin,
}

/// A live token, as authentication finds it: which one (spend logs record it) and its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    pub id: i64,
    pub scope: Scope,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ingest" => Some(Scope::Ingest),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Admin => "admin",
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
struct TokenRow {
    id: i64,
    name: String,
    scope: String,
    prefix: String,
    created_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
}

impl From<TokenRow> for ApiToken {
    fn from(r: TokenRow) -> Self {
        ApiToken {
            id: r.id,
            name: r.name,
            scope: r.scope,
            prefix: r.prefix,
            created_at: utc(r.created_at),
            revoked_at: r.revoked_at.map(utc),
        }
    }
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token and returns it with the secret, which is shown this once and never again.
pub fn create(
    conn: &mut DbConnection,
    name: &str,
    scope: Scope,
    now: DateTime<Utc>,
) -> DomainResult<(ApiToken, String)> {
    let name = adbudget_core::forms::validate_name(name, "name")?;
    let secret: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let token = format!("adb_{secret}");
    let prefix = token[..PREFIX_LEN].to_owned();
    write_transaction(conn, |conn| {
        let taken: i64 = api_tokens::table
            .filter(
                api_tokens::name
                    .eq(&name)
                    .and(api_tokens::revoked_at.is_null()),
            )
            .count()
            .get_result(conn)?;
        if taken > 0 {
            return Err(DomainError::conflict(
                "name",
                format!("a live token named {name:?} already exists"),
            ));
        }
        let id: i64 = diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::name.eq(&name),
                api_tokens::scope.eq(scope.as_str()),
                api_tokens::prefix.eq(&prefix),
                api_tokens::token_hash.eq(digest(&token)),
                api_tokens::created_at.eq(naive(now)),
            ))
            .returning(api_tokens::id)
            .get_result(conn)?;
        let view = ApiToken {
            id,
            name: name.clone(),
            scope: scope.as_str().to_owned(),
            prefix: prefix.clone(),
            created_at: now,
            revoked_at: None,
        };
        Ok((view, token.clone()))
    })
}

/// Whether `token` has the shape of a token this system issues (`adb_` + 40 alphanumerics): one
/// that does not is refused without a database lookup.
pub fn well_formed(token: &str) -> bool {
    token.len() == PREFIX_LEN + 32
        && token.starts_with("adb_")
        && token[4..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The scope of a live token, or `None` for an unknown, malformed or revoked one.
pub fn authenticate(conn: &mut DbConnection, token: &str) -> DomainResult<Option<Live>> {
    Ok(authenticate_many(conn, &[token])?.remove(token))
}

/// Those of `tokens` that are live, in one query (the group-commit writer checks every request
/// of a batch at once). Unknown, malformed and revoked tokens are absent.
pub fn authenticate_many(
    conn: &mut DbConnection,
    tokens: &[&str],
) -> DomainResult<HashMap<String, Live>> {
    let well_formed: Vec<&str> = tokens.iter().copied().filter(|t| well_formed(t)).collect();
    if well_formed.is_empty() {
        return Ok(HashMap::new());
    }
    let prefixes: Vec<&str> = well_formed.iter().map(|t| &t[..PREFIX_LEN]).collect();
    let rows: Vec<(i64, String, String, String)> = api_tokens::table
        .select((
            api_tokens::id,
            api_tokens::prefix,
            api_tokens::token_hash,
            api_tokens::scope,
        ))
        .filter(
            api_tokens::prefix
                .eq_any(&prefixes)
                .and(api_tokens::revoked_at.is_null()),
        )
        .load(conn)?;
    let mut live = HashMap::new();
    for token in well_formed {
        let presented = digest(token);
        let found = rows
            .iter()
            .filter(|(_, prefix, _, _)| prefix == &token[..PREFIX_LEN])
            .find(|(_, _, stored, _)| bool::from(stored.as_bytes().ct_eq(presented.as_bytes())))
            .and_then(|(id, _, _, scope)| {
                Some(Live {
                    id: *id,
                    scope: Scope::parse(scope)?,
                })
            });
        if let Some(found) = found {
            live.insert(token.to_owned(), found);
        }
    }
    Ok(live)
}

pub fn list(conn: &mut DbConnection) -> DomainResult<Vec<ApiToken>> {
    Ok(api_tokens::table
        .select(TokenRow::as_select())
        .order(api_tokens::id)
        .load::<TokenRow>(conn)?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Revokes the live token named `name` (or with id `name`); it stops working at once.
pub fn revoke(conn: &mut DbConnection, name: &str, now: DateTime<Utc>) -> DomainResult<ApiToken> {
    write_transaction(conn, |conn| {
        let by_id = name.parse::<i64>().ok();
        let row: Option<TokenRow> = api_tokens::table
            .select(TokenRow::as_select())
            .filter(api_tokens::revoked_at.is_null())
            .filter(
                api_tokens::name
                    .eq(name)
                    .or(api_tokens::id.nullable().eq(by_id)),
            )
            .first(conn)
            .optional()?;
        let row = row.ok_or(DomainError::not_found("token"))?;
        diesel::update(api_tokens::table.find(row.id))
            .set(api_tokens::revoked_at.eq(naive(now)))
            .execute(conn)?;
        Ok(ApiToken {
            revoked_at: Some(now),
            ..row.into()
        })
    })
}
