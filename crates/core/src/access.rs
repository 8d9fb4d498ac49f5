//! Who may do what (SPEC §11): API token scopes and admin-panel roles, bindings to brands, and
//! [`Principal::authorize`], the one check every API route and admin page goes through.
//!
//! | action            | `read` token | `ingest` token | `admin` token | viewer | operator | admin |
//! |-------------------|:---:|:---:|:---:|:---:|:---:|:---:|
//! | [`Action::Read`]   | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | [`Action::PostSpend`] | – | ✓ | ✓ | – | – | ✓ |
//! | [`Action::Manage`] | – | – | ✓ | – | ✓ | ✓ |
//! | [`Action::ReverseSpend`] | – | – | ✓ | – | ✓ | ✓ |
//! | [`Action::RunJobs`] | – | – | ✓ unbound | – | ✓ unbound | ✓ unbound |
//! | [`Action::EditSchedules`] | – | – | ✓ unbound | – | – | ✓ unbound |
//! | [`Action::CreateBrand`] | – | – | ✓ unbound | – | ✓ unbound | ✓ unbound |
//! | [`Action::Administer`] | – | – | ✓ unbound | – | – | ✓ unbound |
//!
//! A principal bound to brands sees and touches only those: another brand's objects are "not
//! found" to it (SPEC §6), and it can neither create a brand (which would not be its own), act on
//! the scheduled jobs (which run over every brand) nor administer users and tokens (which could
//! mint it an unbound one).

use std::sync::Arc;

use serde::Serialize;

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read brands, campaigns, spend logs, history and the audit trail.
    Read,
    /// Read, and post spend.
    Ingest,
    /// Everything.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Ingest, Scope::Admin];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Ingest => "ingest",
            Scope::Admin => "admin",
        }
    }
}

/// What an admin-panel user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including users, tokens and webhooks.
    Admin,
    /// Brands, campaigns, schedules, pause/resume and spend reversal (within their brands when
    /// bound).
    Operator,
    /// Read-only.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Operator, Role::Viewer];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
}

/// What a request does, as far as permissions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read brands, campaigns, spend, history, the audit trail, the job monitor.
    Read,
    /// Record spend events.
    PostSpend,
    /// Change brands and campaigns: budgets, caps, schedules, manual pause and resume, deletion.
    Manage,
    /// Reverse a recorded spend.
    ReverseSpend,
    /// Create a brand.
    CreateBrand,
    /// Retry, discard or "Run now" a scheduled job (they run over every brand).
    RunJobs,
    /// Change the job schedules (re-time, enable, disable): they govern every brand, so admins
    /// only.
    EditSchedules,
    /// Users, tokens, webhook endpoints.
    Administer,
}

impl Action {
    /// Whether only a principal that is not bound to brands may do it.
    const fn needs_every_brand(self) -> bool {
        matches!(
            self,
            Action::CreateBrand | Action::RunJobs | Action::EditSchedules | Action::Administer
        )
    }
}

/// A token's scope or a user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Token(Scope),
    User(Role),
}

impl Grant {
    /// The permissions table of this module's documentation, before brand bindings.
    pub const fn allows(self, action: Action) -> bool {
        use Action::*;
        match self {
            Grant::Token(Scope::Admin) | Grant::User(Role::Admin) => true,
            Grant::Token(Scope::Ingest) => matches!(action, Read | PostSpend),
            Grant::Token(Scope::Read) | Grant::User(Role::Viewer) => matches!(action, Read),
            Grant::User(Role::Operator) => {
                matches!(action, Read | Manage | ReverseSpend | CreateBrand | RunJobs)
            }
        }
    }
}

/// The brands a principal sees: all, or only some (possibly none, once its brands are deleted).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Brands {
    #[default]
    All,
    Only(Arc<[i64]>),
}

impl Brands {
    pub fn only(ids: impl IntoIterator<Item = i64>) -> Self {
        let mut ids: Vec<i64> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        Brands::Only(ids.into())
    }

    pub fn allows(&self, brand_id: i64) -> bool {
        match self {
            Brands::All => true,
            Brands::Only(ids) => ids.binary_search(&brand_id).is_ok(),
        }
    }

    /// The brand ids when bound, `None` for all brands (a list query's filter).
    pub fn ids(&self) -> Option<&[i64]> {
        match self {
            Brands::All => None,
            Brands::Only(ids) => Some(ids),
        }
    }

    pub fn is_bound(&self) -> bool {
        matches!(self, Brands::Only(_))
    }
}

/// Who made a change, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Actor {
    /// `user`, `token` or `cli` (the management commands, run by whoever has the server's
    /// environment).
    pub kind: ActorKind,
    /// The user's or token's id; none for the CLI.
    pub id: Option<i64>,
    /// The username, the token's name, or the operating-system user running the CLI.
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    User,
    Token,
    Cli,
}

impl ActorKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Token => "token",
            ActorKind::Cli => "cli",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [ActorKind::User, ActorKind::Token, ActorKind::Cli]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl Actor {
    /// The management commands: named after the operating-system user running them.
    pub fn cli() -> Self {
        let name = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "cli".to_owned());
        Actor {
            kind: ActorKind::Cli,
            id: None,
            name,
        }
    }
}

/// Who made a change and in which request: what every audited change is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub actor: Actor,
    /// The HTTP request's id (as in the logs); none for the CLI.
    pub request_id: Option<String>,
}

impl Author {
    pub fn cli() -> Self {
        Author {
            actor: Actor::cli(),
            request_id: None,
        }
    }
}

/// An authenticated caller: a token or a logged-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub actor: Actor,
    pub grant: Grant,
    pub brands: Brands,
}

/// Why [`Principal::authorize`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The scope or role does not allow the action (403).
    Forbidden,
    /// The object belongs to a brand the principal does not see (404: its existence is not
    /// revealed).
    Hidden,
}

impl Principal {
    /// The one permission check: may this principal do `action`, on an object of `brand` if
    /// given? Every API route and admin page asks it (through their extractors) before anything
    /// else happens.
    pub fn authorize(&self, action: Action, brand: Option<i64>) -> Result<(), Denied> {
        if let Some(brand) = brand
            && !self.brands.allows(brand)
        {
            return Err(Denied::Hidden);
        }
        if !self.grant.allows(action) || (action.needs_every_brand() && self.brands.is_bound()) {
            return Err(Denied::Forbidden);
        }
        Ok(())
    }

    /// Whether [`authorize`](Self::authorize) would allow `action` anywhere (admin pages hide the
    /// buttons of what the user may not do).
    pub fn may(&self, action: Action) -> bool {
        self.authorize(action, None).is_ok()
    }

    pub fn author(&self, request_id: Option<String>) -> Author {
        Author {
            actor: self.actor.clone(),
            request_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(grant: Grant, brands: Brands) -> Principal {
        Principal {
            actor: Actor {
                kind: ActorKind::Cli,
                id: None,
                name: "t".into(),
            },
            grant,
            brands,
        }
    }

    #[test]
    fn the_table_of_the_module_documentation() {
        use Action::*;
        let grants = [
            Grant::Token(Scope::Read),
            Grant::Token(Scope::Ingest),
            Grant::Token(Scope::Admin),
            Grant::User(Role::Viewer),
            Grant::User(Role::Operator),
            Grant::User(Role::Admin),
        ];
        #[rustfmt::skip]
        let expected: [(Action, [bool; 6]); 8] = [
            (Read,         [true,  true,  true,  true,  true,  true]),
            (PostSpend,    [false, true,  true,  false, false, true]),
            (Manage,       [false, false, true,  false, true,  true]),
            (ReverseSpend, [false, false, true,  false, true,  true]),
            (CreateBrand,  [false, false, true,  false, true,  true]),
            (RunJobs,      [false, false, true,  false, true,  true]),
            (EditSchedules, [false, false, true, false, false, true]),
            (Administer,   [false, false, true,  false, false, true]),
        ];
        for (action, row) in expected {
            for (grant, allowed) in grants.into_iter().zip(row) {
                assert_eq!(
                    principal(grant, Brands::All).may(action),
                    allowed,
                    "{grant:?} {action:?}"
                );
            }
        }
    }

    #[test]
    fn a_bound_principal_sees_only_its_brands_and_administers_nothing() {
        let admin = principal(Grant::User(Role::Admin), Brands::only([3, 1]));
        assert_eq!(admin.authorize(Action::Read, Some(1)), Ok(()));
        assert_eq!(admin.authorize(Action::Manage, Some(3)), Ok(()));
        assert_eq!(admin.authorize(Action::Read, Some(2)), Err(Denied::Hidden));
        assert_eq!(
            admin.authorize(Action::Administer, None),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            admin.authorize(Action::CreateBrand, None),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            admin.authorize(Action::RunJobs, None),
            Err(Denied::Forbidden)
        );
        // Bound to brands that are all gone: bound to none, never to all.
        let orphan = principal(Grant::Token(Scope::Read), Brands::only([]));
        assert_eq!(orphan.authorize(Action::Read, Some(1)), Err(Denied::Hidden));
        // Hidden wins over forbidden: a viewer learns nothing of another brand's objects.
        let viewer = principal(Grant::User(Role::Viewer), Brands::only([1]));
        assert_eq!(
            viewer.authorize(Action::Manage, Some(2)),
            Err(Denied::Hidden)
        );
        assert_eq!(
            viewer.authorize(Action::Manage, Some(1)),
            Err(Denied::Forbidden)
        );
    }
}
