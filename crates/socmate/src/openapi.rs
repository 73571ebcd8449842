//! The OpenAPI 3.1 document, built from the same `routes!` lists that build the router: each
//! capability's `OpenApiRouter` is split into its axum router (wired with state and guards in
//! `app`) and its paths (nested here under the same prefixes). A route cannot exist without its
//! documentation, and `tests/api/openapi.rs` fails when the committed `docs/openapi.json` drifts.

use axum::Router;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, InfoBuilder, OpenApi, RefOr, Response, ResponseBuilder, Schema,
    SecurityRequirement, Tag,
};
use utoipa::{PartialSchema as _, ToSchema as _};

use crate::accounts::Accounts;
use crate::http::{FieldError, Problem};
use crate::incidents::IncidentSync;
use crate::queries::Queries;
use crate::siem::Registry;
use crate::store::Db;

/// Where each capability is mounted; `app::router` nests the routers at the same places.
pub const PROVIDERS: &str = "/api/admin/siem-providers";
pub const AUDIT_LOG: &str = "/api/admin/audit-log";
pub const SIEM: &str = "/api/siem";
pub const INVESTIGATIONS: &str = "/api/investigations";
pub const INCIDENTS: &str = "/api/incidents";
pub const AUTH: &str = "/api/auth";

/// Every API router, still without state, and the document describing them.
pub struct ApiRouters {
    pub providers: Router<crate::providers::Providers>,
    pub provider_sync: Router<IncidentSync>,
    pub provider_health: Router<crate::health::HealthWatch>,
    pub provider_directory: Router<crate::providers::Providers>,
    pub audit_log: Router<Db>,
    pub siem: Router<Queries>,
    pub investigations: Router<Queries>,
    pub incidents: Router<IncidentSync>,
    pub sign_in: Router<Accounts>,
    pub session: Router<Accounts>,
    pub document: OpenApi,
}

/// The routers, and the document describing them with the connection fields of each provider
/// type in `registry`.
pub fn api(registry: &Registry) -> ApiRouters {
    let mut document = base();
    let mut take = |prefix: &str, api: OpenApi| {
        let nested = std::mem::take(&mut document).nest(prefix, api);
        document = nested;
    };
    let (providers, api) = crate::providers::router().split_for_parts();
    take(PROVIDERS, api);
    let (provider_sync, api) = crate::incidents::admin_routes().split_for_parts();
    take(PROVIDERS, api);
    let (provider_health, api) = crate::health::admin_routes().split_for_parts();
    take(PROVIDERS, api);
    let (audit_log, api) = crate::audit::router().split_for_parts();
    take(AUDIT_LOG, api);
    let (siem, api) = crate::queries::router().split_for_parts();
    take(SIEM, api);
    let (provider_directory, api) = crate::providers::directory().split_for_parts();
    take(SIEM, api);
    let (investigations, api) = crate::investigations::router().split_for_parts();
    take(INVESTIGATIONS, api);
    let (incidents, api) = crate::incidents::router().split_for_parts();
    take(INCIDENTS, api);
    let (sign_in, api) = crate::accounts::public_routes().split_for_parts();
    take(AUTH, api);
    let (session, api) = crate::accounts::session_routes().split_for_parts();
    take(AUTH, api);
    add_provider_type_fields(&mut document, registry);
    add_error_responses(&mut document);
    ApiRouters {
        providers,
        provider_sync,
        provider_health,
        provider_directory,
        audit_log,
        siem,
        investigations,
        incidents,
        sign_in,
        session,
        document,
    }
}

/// The document alone (`socmate openapi`, `GET /api/openapi.json`).
pub fn document(registry: &Registry) -> OpenApi {
    api(registry).document
}

fn base() -> OpenApi {
    let mut api = OpenApi::new(
        InfoBuilder::new()
            .title("SoCMate API")
            .version(env!("CARGO_PKG_VERSION"))
            .description(Some(
                "SIEM gateway: SIEM providers, queries, investigations and incident sync. Errors are RFC 9457 problem details (`application/problem+json`) \
                 with a stable `code`. Authenticate with a bearer token (`socmate token issue`) \
                 or, in the console, the session cookie from `POST /api/auth/login` (state-changing \
                 cookie requests must send `X-Requested-With: SoCMate`). `/api/admin/*` requires \
                 the admin role.",
            ))
            .build(),
        utoipa::openapi::Paths::new(),
    );
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("socmate_session"))),
    );
    components
        .schemas
        .insert(Problem::name().into_owned(), Problem::schema());
    components
        .schemas
        .insert(FieldError::name().into_owned(), FieldError::schema());
    api.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("session", Vec::<String>::new()),
    ]);
    api.tags = Some(
        [
            "SIEM providers (admin)",
            "Audit log (admin)",
            "Queries and investigations",
            "Incidents",
            "Console sign-in",
        ]
        .into_iter()
        .map(Tag::new)
        .collect(),
    );
    api
}

/// The provider bodies and the provider resource carry each provider type's connection fields,
/// which serde cannot describe (bodies are read field by field): each type's field schemas are
/// merged into the neutral ones here. `ConnectionBody` serves the test endpoint (name optional),
/// `NewProvider` the create endpoint (name required); with several types each body is a `oneOf`
/// of one object per type.
fn add_provider_type_fields(api: &mut OpenApi, registry: &Registry) {
    let Some(components) = api.components.as_mut() else {
        return;
    };
    let object = |schemas: &utoipa::openapi::Components, name: &str| match schemas.schemas.get(name)
    {
        Some(RefOr::T(Schema::Object(object))) => Some(object.clone()),
        _ => None,
    };
    let (Some(test), Some(update)) = (
        object(components, "ConnectionBody"),
        object(components, "UpdateBody"),
    ) else {
        return;
    };
    let mut tests = Vec::new();
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    for kind in registry.kinds() {
        let (fields, changes) = kind.connection_schemas();
        let mut test = merged(&test, &fields);
        if let Some(RefOr::T(Schema::Object(provider_type))) =
            test.properties.get_mut("provider_type")
        {
            provider_type.enum_values = Some(vec![kind.provider_type().into()]);
        }
        let mut create = test.clone();
        create.required.insert(0, "name".to_owned());
        // Required to create, so not nullable either.
        if let Some(RefOr::T(Schema::Object(name))) = create.properties.get_mut("name") {
            name.schema_type = SchemaType::Type(Type::String);
        }
        create.description = Some("A provider to create.".to_owned());
        if let Some(RefOr::T(Schema::Object(provider))) = components.schemas.get_mut("Provider")
            && let RefOr::T(Schema::Object(fields)) = &fields
        {
            for (name, schema) in &fields.properties {
                provider
                    .properties
                    .entry(name.clone())
                    .or_insert_with(|| schema.clone());
            }
        }
        tests.push(test);
        creates.push(create);
        updates.push(merged(&update, &changes));
    }
    for (name, objects) in [
        ("ConnectionBody", tests),
        ("NewProvider", creates),
        ("UpdateBody", updates),
    ] {
        let schema = one_of(objects);
        components.schemas.insert(name.to_owned(), schema);
    }
    let create_op = api
        .paths
        .paths
        .get_mut(crate::openapi::PROVIDERS)
        .and_then(|item| item.post.as_mut());
    if let Some(body) = create_op.and_then(|op| op.request_body.as_mut()) {
        for content in body.content.values_mut() {
            content.schema = Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                "NewProvider",
            )));
        }
    }
}

/// `base` with the properties and required fields of `fields` (an object schema) added.
fn merged(
    base: &utoipa::openapi::schema::Object,
    fields: &RefOr<Schema>,
) -> utoipa::openapi::schema::Object {
    let mut object = base.clone();
    if let RefOr::T(Schema::Object(fields)) = fields {
        for (name, schema) in &fields.properties {
            object.properties.insert(name.clone(), schema.clone());
        }
        object.required.extend(fields.required.iter().cloned());
    }
    // Each type's body is complete: any other field is refused (422 naming it).
    object.additional_properties = Some(Box::new(
        utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
    ));
    object
}

fn one_of(mut objects: Vec<utoipa::openapi::schema::Object>) -> RefOr<Schema> {
    if objects.len() == 1
        && let Some(object) = objects.pop()
    {
        return RefOr::T(Schema::Object(object));
    }
    let mut one_of = utoipa::openapi::schema::OneOf::new();
    one_of.items = objects
        .into_iter()
        .map(|o| RefOr::T(Schema::Object(o)))
        .collect();
    RefOr::T(Schema::OneOf(one_of))
}

/// Adds the error answers every operation can give (problem+json), so clients and schema
/// checkers know them; an operation's own documented statuses are kept.
fn add_error_responses(api: &mut OpenApi) {
    for (path, item) in api.paths.paths.iter_mut() {
        let admin = path.starts_with("/api/admin/");
        let public = path == &format!("{AUTH}/login");
        let upstream = path.ends_with("/query");
        let operations: [(&str, Option<&mut Operation>); 5] = [
            ("GET", item.get.as_mut()),
            ("POST", item.post.as_mut()),
            ("PUT", item.put.as_mut()),
            ("PATCH", item.patch.as_mut()),
            ("DELETE", item.delete.as_mut()),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let has_body = operation.request_body.is_some();
            let safe = method == "GET";
            let mut errors: Vec<(&str, &str)> = vec![
                (
                    "400",
                    "Malformed request (bad JSON, query parameters or cursor)",
                ),
                ("404", "No such resource"),
                (
                    "500",
                    "Internal error (details in the server log, never here)",
                ),
                (
                    "503",
                    "The database is unavailable; retry after Retry-After seconds",
                ),
            ];
            if !public {
                errors.push(("401", "Missing, invalid or expired credentials"));
                errors.push((
                    "403",
                    if admin {
                        "The admin role is required (or the CSRF header is missing)"
                    } else {
                        "Refused (a cookie request without the CSRF header)"
                    },
                ));
            }
            if !safe || public {
                errors.push(("429", "Rate limited; retry after Retry-After seconds"));
                errors.push(("409", "Conflicts with the current state (see `code`)"));
            }
            if has_body {
                errors.push(("413", "The body is larger than 64 KiB"));
                errors.push(("415", "The body is not sent as application/json"));
                errors.push(("422", "Invalid fields, each named in `errors`"));
            }
            if upstream {
                errors.push((
                    "424",
                    "The SIEM refused the provider's credentials or permissions (see `code`)",
                ));
                errors.push((
                    "502",
                    "The SIEM failed or could not be reached (see `code`)",
                ));
                errors.push(("504", "The query did not finish in time"));
            }
            for (status, description) in errors {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::T(problem_response(status, description)));
            }
        }
    }
}

fn problem_response(status: &str, description: &str) -> Response {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/problem+json",
        ContentBuilder::new()
            .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                Problem::name(),
            ))))
            .build(),
    );
    if status == "429" || status == "503" {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(u64::schema())
                .description(Some("Seconds to wait"))
                .build(),
        );
    }
    response.build()
}
