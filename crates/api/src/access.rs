//! The permission check of every `/api/v1` route (SPEC §6, §11), in one place: a handler names
//! what it does by the type of its [`Caller`] (`Caller<ToManage>`, …), and the extractor
//! authenticates the bearer token and asks [`Principal::authorize`] before the handler runs. Brand
//! bindings are checked with [`Caller::brand`] and [`Caller::campaign`] once the object's brand is
//! known, and lists are filtered by [`Caller::brands`]. The admin panel's pages go through the
//! same `Principal::authorize` (see `admin::session::AdminUser`).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use adbudget_core::access::{Action, Author, Brands, Denied, Principal};
use adbudget_db::repo::campaigns;

use crate::error::ApiError;
use crate::extract::Bearer;
use crate::state::AppState;

/// An action, as a type a handler's [`Caller`] names.
pub trait Permission {
    const ACTION: Action;
    /// What the action is, for the 403's message ("may not …").
    const DOES: &'static str;
}

macro_rules! permissions {
    ($($(#[$doc:meta])* $name:ident => $action:ident, $does:literal;)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl Permission for $name {
            const ACTION: Action = Action::$action;
            const DOES: &'static str = $does;
        }
    )*};
}

permissions! {
    /// Read brands, campaigns, spend, history, the audit trail, the job queues.
    ToRead => Read, "read";
    /// Record spend.
    ToPostSpend => PostSpend, "post spend";
    /// Change brands and campaigns.
    ToManage => Manage, "change brands and campaigns";
    /// Reverse a recorded spend.
    ToReverse => ReverseSpend, "reverse spend";
    /// Create a brand.
    ToCreateBrand => CreateBrand, "create brands";
    /// Retry, discard or run scheduled jobs.
    ToRunJobs => RunJobs, "act on the scheduled jobs";
    /// Change the job schedules.
    ToEditSchedules => EditSchedules, "change the job schedules";
    /// Users, tokens, webhooks.
    ToAdminister => Administer, "administer users and tokens";
}

/// A caller whose token allows `P`.
pub struct Caller<P> {
    pub principal: Principal,
    request_id: Option<String>,
    permission: PhantomData<P>,
}

impl<P: Permission> Caller<P> {
    /// Who the audit trail names for what this request changes.
    pub fn author(&self) -> Author {
        self.principal.author(self.request_id.clone())
    }

    /// The brands the caller sees (lists are filtered by them).
    pub fn brands(&self) -> &Brands {
        &self.principal.brands
    }

    /// `Ok` if the caller may do `P` on brand `id`; a brand it does not see is a 404.
    pub fn brand(&self, id: i64) -> Result<(), ApiError> {
        self.principal
            .authorize(P::ACTION, Some(id))
            .map_err(|d| denied::<P>(d, "brand"))
    }

    /// `Ok` if the caller may do `P` on campaign `id`'s brand; one it does not see is a 404 (an
    /// unbound caller's request goes on without a lookup: the handler's own finds a missing one).
    pub async fn campaign(&self, state: &AppState, id: i64) -> Result<(), ApiError> {
        if !self.principal.brands.is_bound() {
            return Ok(());
        }
        let brand = state
            .db(move |conn| campaigns::ensure_exists(conn, id))
            .await?;
        self.principal
            .authorize(P::ACTION, Some(brand))
            .map_err(|d| denied::<P>(d, "campaign"))
    }
}

fn denied<P: Permission>(d: Denied, what: &str) -> ApiError {
    match d {
        Denied::Hidden => ApiError::NotFound {
            what: what.to_owned(),
            field: None,
        },
        Denied::Forbidden => ApiError::forbidden(format!(
            "this token may not {} (see SPEC §11: its scope or brand binding does not allow it)",
            P::DOES
        )),
    }
}

/// The request's id, as tracing-actix-web gave it (the logs and the audit trail share it).
pub fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(ToString::to_string)
}

impl<P: Permission + 'static> FromRequest for Caller<P> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let bearer = Bearer::from_header(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let request_id = request_id(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no app state")))?;
            let live = bearer?.authenticate(&state).await?;
            let principal = live.principal();
            principal
                .authorize(P::ACTION, None)
                .map_err(|d| denied::<P>(d, "resource"))?;
            Ok(Caller {
                principal,
                request_id,
                permission: PhantomData,
            })
        })
    }
}
