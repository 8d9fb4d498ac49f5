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
use crate::schema::{api_token_brands, api_tokens, brands};
use crate::{DbConnection, write_transaction};
pub use adbudget_core::access::Scope;
use adbudget_core::access::{Actor, ActorKind, Author, Brands, Grant, Principal};
use adbudget_core::audit::{FieldChange, NewEntry};
use adbudget_core::views::ApiToken;

const PREFIX_LEN: usize = 12;

/// `last_used_at` is written at most this often per token: it says whether a token is still in
/// use, not when each request came (a write per request would double the spend path's writes).
pub const LAST_USE_GRANULARITY: chrono::Duration = chrono::Duration::minutes(5);

/// A live token, as authentication finds it: which one (spend logs record it), its scope and the
/// brands it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub id: i64,
    pub name: String,
    pub scope: Scope,
    pub brands: Brands,
    /// Its `last_used_at` is older than [`LAST_USE_GRANULARITY`]: the caller records this use
    /// with [`touch`].
    pub use_unrecorded: bool,
}

impl Live {
    pub fn principal(&self) -> Principal {
        Principal {
            actor: Actor {
                kind: ActorKind::Token,
                id: Some(self.id),
                name: self.name.clone(),
            },
            grant: Grant::Token(self.scope),
            brands: self.brands.clone(),
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
    expires_at: Option<NaiveDateTime>,
    last_used_at: Option<NaiveDateTime>,
    brand_bound: bool,
}

impl TokenRow {
    fn into_view(self, brands: Option<Vec<i64>>) -> ApiToken {
        ApiToken {
            id: self.id,
            name: self.name,
            scope: self.scope,
            prefix: self.prefix,
            brands,
            created_at: utc(self.created_at),
            expires_at: self.expires_at.map(utc),
            last_used_at: self.last_used_at.map(utc),
            revoked_at: self.revoked_at.map(utc),
        }
    }
}

/// What a new token is.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub scope: Scope,
    /// Bound to these brands; `None`: all brands.
    pub brands: Option<Vec<i64>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewToken {
    /// A token of `scope` for every brand, without expiry.
    pub fn new(name: &str, scope: Scope) -> Self {
        NewToken {
            name: name.to_owned(),
            scope,
            brands: None,
            expires_at: None,
        }
    }
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token and returns it with the secret, which is shown this once and never again.
pub fn create(
    conn: &mut DbConnection,
    new: &NewToken,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<(ApiToken, String)> {
    let name = adbudget_core::forms::validate_name(&new.name, "name")?;
    if new.expires_at.is_some_and(|at| at <= now) {
        return Err(DomainError::invalid("expires_at", "must be in the future"));
    }
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
        let mut bound = new.brands.clone();
        if let Some(ids) = &mut bound {
            ids.sort_unstable();
            ids.dedup();
            let found: Vec<i64> = brands::table
                .select(brands::id)
                .filter(brands::id.eq_any(ids.clone()))
                .load(conn)?;
            if let Some(missing) = ids.iter().find(|id| !found.contains(id)) {
                return Err(DomainError::not_found_field(
                    "brand",
                    format!("brands: no brand {missing}"),
                ));
            }
        }
        let id: i64 = diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::name.eq(&name),
                api_tokens::scope.eq(new.scope.as_str()),
                api_tokens::prefix.eq(&prefix),
                api_tokens::token_hash.eq(digest(&token)),
                api_tokens::created_at.eq(naive(now)),
                api_tokens::expires_at.eq(new.expires_at.map(naive)),
                api_tokens::brand_bound.eq(bound.is_some()),
            ))
            .returning(api_tokens::id)
            .get_result(conn)?;
        for brand in bound.iter().flatten() {
            diesel::insert_into(api_token_brands::table)
                .values((
                    api_token_brands::token_id.eq(id),
                    api_token_brands::brand_id.eq(brand),
                ))
                .execute(conn)?;
        }
        let view = ApiToken {
            id,
            name: name.clone(),
            scope: new.scope.as_str().to_owned(),
            prefix: prefix.clone(),
            brands: bound.clone(),
            created_at: now,
            expires_at: new.expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        let changes = [
            ("name", serde_json::json!(view.name)),
            ("scope", serde_json::json!(view.scope)),
            ("brands", serde_json::json!(view.brands)),
            ("expires_at", serde_json::json!(view.expires_at)),
        ]
        .into_iter()
        .map(|(f, v)| {
            let change = FieldChange {
                old: serde_json::Value::Null,
                new: v,
            };
            (f.to_owned(), change)
        })
        .collect();
        let entry = NewEntry {
            object_type: "token",
            object_id: id,
            brand_id: None,
            action: "create",
            changes,
        };
        super::audit::record(conn, author, entry, now)?;
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

/// The live token `token` is, or `None` for an unknown, malformed, expired or revoked one.
pub fn authenticate(
    conn: &mut DbConnection,
    token: &str,
    now: DateTime<Utc>,
) -> DomainResult<Option<Live>> {
    Ok(authenticate_many(conn, &[token], now)?.remove(token))
}

/// Those of `tokens` that are live, with their brand bindings, in one query (the group-commit
/// writer checks every request of a batch at once). Unknown, malformed, expired and revoked
/// tokens are absent.
pub fn authenticate_many(
    conn: &mut DbConnection,
    tokens: &[&str],
    now: DateTime<Utc>,
) -> DomainResult<HashMap<String, Live>> {
    let well_formed: Vec<&str> = tokens.iter().copied().filter(|t| well_formed(t)).collect();
    if well_formed.is_empty() {
        return Ok(HashMap::new());
    }
    let prefixes: Vec<&str> = well_formed.iter().map(|t| &t[..PREFIX_LEN]).collect();
    type Found = (
        i64,
        String,
        String,
        String,
        String,
        bool,
        Option<NaiveDateTime>,
        Option<i64>,
    );
    // A token bound to n brands is n rows (one, with no brand, when unbound or bound to none).
    let rows: Vec<Found> = api_tokens::table
        .left_join(api_token_brands::table)
        .select((
            api_tokens::id,
            api_tokens::prefix,
            api_tokens::token_hash,
            api_tokens::scope,
            api_tokens::name,
            api_tokens::brand_bound,
            api_tokens::last_used_at,
            api_token_brands::brand_id.nullable(),
        ))
        .filter(
            api_tokens::prefix
                .eq_any(&prefixes)
                .and(api_tokens::revoked_at.is_null())
                .and(
                    api_tokens::expires_at
                        .is_null()
                        .or(api_tokens::expires_at.gt(naive(now))),
                ),
        )
        .load(conn)?;
    let stale = naive(now - LAST_USE_GRANULARITY);
    let mut live = HashMap::new();
    for token in well_formed {
        let presented = digest(token);
        let Some(first) = rows
            .iter()
            .filter(|r| r.1 == token[..PREFIX_LEN])
            .find(|r| bool::from(r.2.as_bytes().ct_eq(presented.as_bytes())))
        else {
            continue;
        };
        let Some(scope) = Scope::parse(&first.3) else {
            continue;
        };
        let brands = if first.5 {
            Brands::only(rows.iter().filter(|r| r.0 == first.0).filter_map(|r| r.7))
        } else {
            Brands::All
        };
        live.insert(
            token.to_owned(),
            Live {
                id: first.0,
                name: first.4.clone(),
                scope,
                brands,
                use_unrecorded: first.6.is_none_or(|at| at < stale),
            },
        );
    }
    Ok(live)
}

/// Records that tokens `ids` were used now, unless a use within [`LAST_USE_GRANULARITY`] is
/// recorded already (another replica may have written it since they were read).
pub fn touch(conn: &mut DbConnection, ids: &[i64], now: DateTime<Utc>) -> DomainResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    diesel::update(
        api_tokens::table.filter(api_tokens::id.eq_any(ids)).filter(
            api_tokens::last_used_at
                .is_null()
                .or(api_tokens::last_used_at.lt(naive(now - LAST_USE_GRANULARITY))),
        ),
    )
    .set(api_tokens::last_used_at.eq(naive(now)))
    .execute(conn)?;
    Ok(())
}

/// Every token ever made, revoked ones too, with their brands.
pub fn list(conn: &mut DbConnection) -> DomainResult<Vec<ApiToken>> {
    let rows: Vec<TokenRow> = api_tokens::table
        .select(TokenRow::as_select())
        .order(api_tokens::id)
        .load(conn)?;
    let bindings: Vec<(i64, i64)> = api_token_brands::table
        .select((api_token_brands::token_id, api_token_brands::brand_id))
        .order((api_token_brands::token_id, api_token_brands::brand_id))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let brands = r.brand_bound.then(|| {
                bindings
                    .iter()
                    .filter(|(t, _)| *t == r.id)
                    .map(|(_, b)| *b)
                    .collect()
            });
            r.into_view(brands)
        })
        .collect())
}

/// Which token to revoke.
#[derive(Debug, Clone, Copy)]
pub enum TokenRef<'a> {
    /// The live token of this name, else the token of this id (the CLI's argument).
    NameOrId(&'a str),
    /// This token (the admin page's button).
    Id(i64),
}

/// Revokes a live token; it stops working at once.
pub fn revoke(
    conn: &mut DbConnection,
    which: TokenRef<'_>,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<ApiToken> {
    write_transaction(conn, |conn| {
        let live = api_tokens::table
            .select(TokenRow::as_select())
            .filter(api_tokens::revoked_at.is_null());
        let row: Option<TokenRow> = match which {
            TokenRef::Id(id) => live.filter(api_tokens::id.eq(id)).first(conn).optional()?,
            TokenRef::NameOrId(name) => {
                // A name first: a token named "5" is never mistaken for token 5.
                match live
                    .filter(api_tokens::name.eq(name))
                    .first(conn)
                    .optional()?
                {
                    Some(row) => Some(row),
                    None => match name.parse::<i64>() {
                        Ok(id) => live.filter(api_tokens::id.eq(id)).first(conn).optional()?,
                        Err(_) => None,
                    },
                }
            }
        };
        let row = row.ok_or(DomainError::not_found("token"))?;
        diesel::update(api_tokens::table.find(row.id))
            .set(api_tokens::revoked_at.eq(naive(now)))
            .execute(conn)?;
        let entry = NewEntry {
            object_type: "token",
            object_id: row.id,
            brand_id: None,
            action: "revoke",
            changes: [(
                "revoked_at".to_owned(),
                FieldChange {
                    old: serde_json::Value::Null,
                    new: serde_json::json!(now),
                },
            )]
            .into_iter()
            .collect(),
        };
        super::audit::record(conn, author, entry, now)?;
        let mut view = row.into_view(None);
        view.revoked_at = Some(now);
        Ok(view)
    })
}
