//! The OpenAPI document, generated from the handlers and types (served at `/api/openapi.json`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{audit, brands, campaigns, events, health, jobs, pacing, spend, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "adbudget", description = "Budget enforcement for ad agencies: brands, campaigns, spend, dayparting."),
    paths(
        brands::create, brands::list, brands::get, brands::update, brands::delete,
        campaigns::create, campaigns::list, campaigns::get, campaigns::update, campaigns::delete,
        campaigns::put_dayparting, campaigns::delete_dayparting, campaigns::pause, campaigns::resume,
        campaigns::history, spend::list, spend::record, spend::record_batch, spend::reverse, pacing::brand, pacing::campaign,
        pacing::series, audit::list, events::list,
        webhooks::create, webhooks::list, webhooks::get, webhooks::update, webhooks::delete, webhooks::test,
        webhooks::rotate_secret, webhooks::deliveries, webhooks::redeliver,
        jobs::queues, jobs::list_schedules, jobs::update_schedule, jobs::run, health::healthz, health::readyz,
    ),
    components(schemas(adbudget_core::views::WindowView)),
    modifiers(&BearerAuth, &CommonResponses),
    tags((name = "brands"), (name = "campaigns"), (name = "spend"), (name = "pacing"), (name = "audit"), (name = "events"), (name = "webhooks"), (name = "jobs"), (name = "health"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from `adbudget token create`: `read` may read, `ingest` may read and post spend, `admin` may do everything. A token bound to brands (`--brand ID`) sees only those: other brands' objects are 404, spend on their campaigns 403."))
                    .build(),
            ),
        );
    }
}

/// Answers every operation can give besides its own: documented once here rather than on each
/// handler, so that the document says everything a client (or schemathesis) can receive.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in operations.into_iter().flatten() {
                let mut common = Vec::new();
                if op.security.is_some() {
                    common.push(("401", "Missing, unknown or revoked bearer token"));
                    common.push((
                        "403",
                        "The token's scope does not allow this operation (an admin token is needed)",
                    ));
                    common.push(("400", "Malformed request: unreadable JSON or query"));
                    common.push((
                        "422",
                        "A field, path or query parameter is invalid (the error names it)",
                    ));
                    common.push((
                        "503",
                        "The database (or, for jobs, Redis) is unavailable; retry",
                    ));
                }
                if op.request_body.is_some() {
                    common.push(("408", "The request body did not arrive in time"));
                    common.push(("413", "The request body is too large"));
                    common.push(("422", "A field is invalid (the error names it)"));
                }
                for (status, description) in common {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description).into());
                }
            }
        }
    }
}
