//! The OpenAPI document, generated from the handlers and types (served at `/api/openapi.json`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{brands, campaigns, health, jobs, spend};

#[derive(OpenApi)]
#[openapi(
    info(title = "adbudget", description = "Budget enforcement for ad agencies: brands, campaigns, spend, dayparting."),
    paths(
        brands::create, brands::list, brands::get, brands::update, brands::delete,
        campaigns::create, campaigns::list, campaigns::get, campaigns::update, campaigns::delete,
        campaigns::put_dayparting, campaigns::delete_dayparting, campaigns::pause, campaigns::resume,
        campaigns::history, spend::list, spend::record, spend::record_batch,
        jobs::queues, health::healthz, health::readyz,
    ),
    components(schemas(adbudget_domain::views::WindowView)),
    modifiers(&BearerAuth),
    tags((name = "brands"), (name = "campaigns"), (name = "spend"), (name = "jobs"), (name = "health"))
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
                    .description(Some("A token from `adbudget token create`: `ingest` may post spend and read, `admin` may do everything."))
                    .build(),
            ),
        );
    }
}
