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

/// `s` as a regular expression that matches it literally.
fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escape = "\\^$.|?*+()[]{}".contains(c);
            escape.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// A value of `schema` built from the examples its properties carry (else the simplest value of
/// each type), for the examples of the document's answers.
fn synthesize(
    schema: &serde_json::Value,
    schemas: &serde_json::Value,
    depth: usize,
) -> serde_json::Value {
    use serde_json::{Value, json};
    if depth > 8 {
        return Value::Null;
    }
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or_default();
        return synthesize(&schemas[name], schemas, depth + 1);
    }
    if let Some(e) = schema.get("example") {
        return e.clone();
    }
    if let Some(e) = schema["examples"].as_array().and_then(|e| e.first()) {
        return e.clone();
    }
    if let Some(e) = schema["enum"].as_array().and_then(|e| e.first()) {
        return e.clone();
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(variants) = schema[key].as_array() {
            let first = variants.iter().find(|v| v["type"] != "null");
            return first.map_or(Value::Null, |v| synthesize(v, schemas, depth + 1));
        }
    }
    let kind = match &schema["type"] {
        Value::Array(types) => types
            .iter()
            .find(|t| *t != "null")
            .and_then(Value::as_str)
            .unwrap_or("null"),
        t => t.as_str().unwrap_or("object"),
    };
    match kind {
        "object" => Value::Object(
            schema["properties"]
                .as_object()
                .map(|props| {
                    props
                        .iter()
                        .map(|(k, v)| (k.clone(), synthesize(v, schemas, depth + 1)))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        "array" => json!([synthesize(&schema["items"], schemas, depth + 1)]),
        "string" => match schema["format"].as_str() {
            Some("date-time") => json!("2026-12-01T09:00:00Z"),
            Some("date") => json!("2026-12-01"),
            _ => json!(""),
        },
        "integer" => schema.get("minimum").cloned().unwrap_or(json!(1)),
        "number" => json!(1.0),
        "boolean" => json!(true),
        _ => Value::Null,
    }
}

/// The JSON of `#/components/schemas/{name}`.
fn schema_ref(name: &str) -> serde_json::Value {
    serde_json::json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// Replaces every `$ref` equal to `from` with `to`, anywhere under `value`.
fn rename_refs(value: &mut serde_json::Value, from: &str, to: &str) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "$ref" && v.as_str() == Some(from) {
                    *v = serde_json::Value::String(to.to_owned());
                } else {
                    rename_refs(v, from, to);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                rename_refs(v, from, to);
            }
        }
        _ => {}
    }
}

/// What the derive macros cannot say, said over the whole document as served ([`document`]; on
/// the JSON form, since utoipa's types do not read their own JSON back):
///
/// - A page is a named model that references its items by `$ref` (`CampaignPage.items` is a list
///   of `Campaign`): utoipa 5 inlines a generic's type parameter (juhaku/utoipa#1586), which gave
///   generated clients anonymous `PageCampaignItemsItem` classes.
/// - Every `{id}`-like path parameter is an id (`minimum: 1`), every `limit` is 1–500 and every
///   list `cursor` is the digits of an id, as the server checks them.
fn refine(doc: &mut serde_json::Value) {
    use serde_json::{Value, json};
    // Pages.
    let names: Vec<String> = doc["components"]["schemas"]
        .as_object()
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default();
    for name in names.iter().filter(|n| n.starts_with("Page_")) {
        let item = &name["Page_".len()..];
        if !names.iter().any(|n| n == item) {
            continue;
        }
        let page = format!("{item}Page");
        let Some(schemas) = doc["components"]["schemas"].as_object_mut() else {
            return;
        };
        let Some(mut schema) = schemas.remove(name) else {
            continue;
        };
        schema["properties"]["items"]["items"] = schema_ref(item);
        schema["description"] = json!(format!(
            "A page of {item} items. Pass `next_cursor` as `cursor` to get the next page; null on the last page."
        ));
        schemas.insert(page.clone(), schema);
        rename_refs(
            doc,
            &format!("#/components/schemas/{name}"),
            &format!("#/components/schemas/{page}"),
        );
    }
    // A schedule's list of windows: 1 to 100 (a newtype variant's attributes cannot say it).
    if let Some(variants) = doc["components"]["schemas"]["Dayparting"]["oneOf"].as_array_mut() {
        for v in variants.iter_mut().filter(|v| v["type"] == "array") {
            v["minItems"] = json!(1);
            v["maxItems"] = json!(100);
        }
    }
    // Pause reasons and days of the week as named enums.
    let reasons: Vec<&str> = adbudget_core::rule::PauseReason::ALL
        .iter()
        .map(|r| r.name())
        .collect();
    doc["components"]["schemas"]["PauseReason"] = json!({
        "type": "string",
        "enum": reasons,
        "description": "Why a campaign is paused (SPEC §4), in the rule's order.",
    });
    for (schema, property, item) in [
        ("Campaign", "pause_reasons", "PauseReason"),
        ("StatusChange", "pause_reasons", "PauseReason"),
        ("WindowView", "days", "Day"),
    ] {
        let p = &mut doc["components"]["schemas"][schema]["properties"][property];
        if p.is_object() {
            p["items"] = schema_ref(item);
        }
    }
    // Timezones: the IANA names the server knows, as a pattern (a documented string: an enum of
    // 600 names would make generated clients carry an enum class whose members collide, such as
    // `GMT+0` and `GMT-0`).
    let zones: Vec<String> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| regex_escape(tz.name()))
        .collect();
    let pattern = format!(r"^[ \t\n\r]*(?:{})[ \t\n\r]*$", zones.join("|"));
    for body in ["CreateBrand", "UpdateBrand"] {
        let tz = &mut doc["components"]["schemas"][body]["properties"]["timezone"];
        if tz.is_object() {
            tz["pattern"] = json!(pattern);
        }
    }
    // An example on every operation: its success answer, built from the schemas' own examples.
    let schemas = doc["components"]["schemas"].clone();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut() {
                let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                    continue;
                };
                for (status, response) in responses.iter_mut() {
                    // (`get_mut`: indexing a JSON value mutably would insert what is missing.)
                    let Some(content) = response
                        .get_mut("content")
                        .and_then(|c| c.get_mut("application/json"))
                        .filter(|c| c.is_object() && c.get("example").is_none())
                    else {
                        continue;
                    };
                    if !status.starts_with('2') {
                        continue;
                    }
                    let example = synthesize(&content["schema"], &schemas, 0);
                    content["example"] = example;
                }
            }
        }
    }
    // Parameters.
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
                continue;
            };
            for p in params {
                let name = p["name"].as_str().unwrap_or_default().to_owned();
                let place = p["in"].as_str().unwrap_or_default().to_owned();
                let schema = &mut p["schema"];
                let integer = schema["type"] == "integer"
                    || schema["type"]
                        .as_array()
                        .is_some_and(|t| t.contains(&json!("integer")));
                match (place.as_str(), name.as_str()) {
                    ("path", n) if integer && (n == "id" || n.ends_with("_id")) => {
                        schema["minimum"] = json!(1);
                        p["example"] = json!(1);
                    }
                    ("path", "job") => {
                        p["example"] = json!("enforce_budgets");
                    }
                    ("query", n) if integer && n.ends_with("_id") => {
                        schema["minimum"] = json!(1);
                    }
                    ("query", "limit") if integer => {
                        schema["minimum"] = json!(1);
                        schema["maximum"] = json!(500);
                    }
                    ("query", "cursor") => {
                        schema["pattern"] = json!("^[0-9]{1,18}$");
                    }
                    ("query", "after") => {
                        schema["pattern"] = json!("^([0-9]{1,19}-[0-9]{1,19})?$");
                    }
                    ("query", "wait") if integer => {
                        schema["minimum"] = json!(0);
                        schema["maximum"] = json!(60);
                    }
                    ("query", "from" | "to") => {
                        schema["format"] = json!("date-time");
                    }
                    ("query", "type") => {
                        schema["enum"] = json!(
                            adbudget_core::events::EventType::ALL
                                .iter()
                                .map(|t| t.name())
                                .collect::<Vec<_>>()
                        );
                    }
                    ("query", "actor") => {
                        schema["maxLength"] = json!(300);
                        schema["pattern"] = json!("^[^\\x00-\\x1f\\x7f-\\x9f]+$");
                    }
                    ("query", "bucket") => {
                        schema["enum"] = json!(adbudget_core::pacing::SeriesBucket::NAMES);
                    }
                    ("query", "object") => {
                        schema["pattern"] = json!(format!(
                            "^({})(:[1-9][0-9]{{0,17}})?$",
                            crate::routes::audit::OBJECT_TYPES.join("|")
                        ));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The document as served: generated, then refined.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    refine(&mut doc);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard every route is documented to (ARCHITECTURE.md, "A new route").
    #[test]
    fn every_operation_has_an_id_a_description_and_an_example() {
        let doc = document();
        let mut missing = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let described = op["description"].is_string() || op["summary"].is_string();
                let example = op.to_string().contains("\"example\"");
                if !op["operationId"].is_string() || !described || !example {
                    missing.push(format!("{method} {path}"));
                }
            }
        }
        assert!(missing.is_empty(), "{missing:?}");
    }

    #[test]
    fn pages_reference_their_items_by_name() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        for item in [
            "Brand",
            "Campaign",
            "SpendLog",
            "StatusChange",
            "AuditEntry",
        ] {
            let page = &schemas[format!("{item}Page")];
            assert_eq!(
                page["properties"]["items"]["items"]["$ref"],
                format!("#/components/schemas/{item}"),
                "{item}"
            );
            assert!(schemas.get(format!("Page_{item}")).is_none());
        }
        let text = doc.to_string();
        assert!(
            !text.contains("#/components/schemas/Page_"),
            "no reference left to a Page_ schema"
        );
        let list = &doc["paths"]["/api/v1/campaigns"]["get"];
        assert_eq!(
            list["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/CampaignPage"
        );
        let limit = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(
            (
                limit["schema"]["minimum"].as_i64(),
                limit["schema"]["maximum"].as_i64()
            ),
            (Some(1), Some(500))
        );
    }
}
