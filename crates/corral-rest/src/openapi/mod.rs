//! The OpenAPI 3.1 description of the HTTP door, served at `/api/openapi.json`, generated from the handlers.
//!
//! Every RHEV handler carries a `#[utoipa::path]` and is routed with `utoipa_axum::routes!`, which takes
//! the route's path and methods from that annotation: a route and its description are one declaration
//! (`rhev::api`). virthttp answers everything under `/libvirt/` from one handler that dispatches on the
//! path itself, so its resources are described by `virthttp::openapi`; tests/openapi.rs requests every
//! documented operation of both APIs and checks the answers against the document, and that no route is
//! registered outside it.
//!
//! What no handler writes is added here: the auth layer's 401 on every operation that needs credentials,
//! and the body limit's 413 on every operation that reads a body.

pub mod schema;

use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::response::Responses;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, Ref, RefOr};
use utoipa::{IntoParams, Modify, OpenApi, ToResponse};

use self::schema::{response, XML_OR_JSON};

const DESCRIPTION: &str = "Corral's HTTP door: two APIs over the same service.

`/api` is a RHEV/oVirt 3.3 style REST API. Representations are XML unless `Accept` asks for \
`application/json` only; request bodies are XML, or JSON with `Content-Type: application/json`. Every `/api` \
path is also served under `/ovirt-engine` (`/ovirt-engine/api/...`). Parameters shown here as query parameters \
may also be given as matrix parameters on the path (`/api/vms;max=5`), except `search`. `Expect: 201-created` \
makes a create answer 201 instead of 202. `Prefer: persistent-auth` (with `Session-TTL` in minutes, at most \
1440) opens a session: the `JSESSIONID` cookie then stands for the credentials; a request that sends the cookie \
without `Prefer: persistent-auth` ends it, and a change sent with the cookie needs an XML or JSON body, or, \
without a body, the `Prefer` header (403 otherwise). Faults are `<fault>` elements (or their JSON twin).

`/libvirt` is a virthttp-style JSON API. Every well-formed request is answered HTTP 200 with an envelope, \
errors included; `HEAD` answers 200 with no body; other methods and targets with `..` are a 400 HTML page. \
`?async=true` runs a request in the background and answers its id, whose envelope `/libvirt/async/{id}` \
gives once. `X-Packet-ID` is echoed, and answers are compressed on `Accept-Encoding: gzip` or `deflate`.";

#[derive(OpenApi)]
#[openapi(
    info(title = "Corral", version = env!("CARGO_PKG_VERSION"), description = DESCRIPTION),
    servers((url = "/")),
    security(("basic" = []), ("session" = [])),
    modifiers(&SecuritySchemes),
    paths(crate::tls::ca_certificate),
    components(responses(
        BadRequest,
        Unauthorized,
        NotFound,
        Conflict,
        PayloadTooLarge,
        ServerError,
        LibvirtUnauthorized,
        LibvirtBadRequest,
        LibvirtAsyncFull
    )),
    tags(
        (name = "api", description = "The entry point and this description"),
        (name = "vms", description = "Qubes as vms: search, create, update, remove, power actions, statistics"),
        (name = "vm devices", description = "A vm's disks (its volumes), its nic, its cdrom and its snapshots"),
        (name = "tags", description = "Qubes tags, on their own and on vms"),
        (name = "templates", description = "Blank and the TemplateVMs"),
        (name = "storage domains", description = "Storage pools and the files they offer"),
        (name = "disks", description = "Every qube's volumes as floating disks"),
        (name = "hosts", description = "The machine the daemon runs on (read-only)"),
        (name = "clusters", description = "The `Default` cluster and its networks (read-only)"),
        (name = "data centers", description = "The `Default` data center (read-only)"),
        (name = "networks", description = "The libvirt networks (read-only)"),
        (name = "capabilities", description = "What this engine supports (read-only)"),
        (name = "events", description = "The daemon's event log (read-only)"),
        (name = "libvirt domains", description = "virthttp: qubes as libvirt domains"),
        (name = "libvirt networks", description = "virthttp: the connection's virtual networks (read-only)"),
        (name = "libvirt async", description = "virthttp: results of `?async=true` requests"),
    )
)]
struct Base;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Components::default);
        let basic = HttpBuilder::new()
            .scheme(HttpAuthScheme::Basic)
            .description(Some("A local user (`corral user add`); oVirt clients send `user@domain`"))
            .build();
        components.add_security_scheme("basic", SecurityScheme::Http(basic));
        let key = |name: &str, description: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, description)))
        };
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "JSESSIONID",
                "A session opened by an authenticated request with `Prefer: persistent-auth` (`/api` only)",
            ))),
        );
        components
            .add_security_scheme("x_auth_username", key("X-Auth-Username", "virthttp: the user (`/libvirt` only)"));
        components.add_security_scheme("x_auth_key", key("X-Auth-Key", "virthttp: the user's password"));
        components.add_security_scheme(
            "x_auth_user_service_key",
            key(
                "X-Auth-User-Service-Key",
                "virthttp: a key `corral user service-key` issued; alone, it reads and runs power actions (GET, and \
                 PATCH with `power_mgt` only; anything else is 403 with error 1)",
            ),
        );
    }
}

/// Declares fault responses: a unit type per reusable response component.
macro_rules! faults {
    ($($ty:ident: $description:literal, $schema:expr, $types:expr;)*) => {
        $(
            #[doc = $description]
            pub struct $ty;

            impl<'r> ToResponse<'r> for $ty {
                fn response() -> (&'r str, RefOr<utoipa::openapi::Response>) {
                    (stringify!($ty), response($description, $schema, $types).into())
                }
            }
        )*
    };
}

faults! {
    BadRequest: "The request is malformed, or names something that does not exist", Some("Fault"), &XML_OR_JSON;
    Unauthorized: "No valid credentials or session (with `WWW-Authenticate: Basic`)", Some("Fault"), &XML_OR_JSON;
    NotFound: "No such object", Some("Fault"), &XML_OR_JSON;
    Conflict: "The object's state or this engine's model does not allow it", Some("Fault"), &XML_OR_JSON;
    PayloadTooLarge: "The request body is larger than 1 MiB", None, &["text/plain"];
    ServerError: "The hypervisor, the storage or the daemon failed", Some("Fault"), &XML_OR_JSON;
    LibvirtUnauthorized: "No valid credentials: the envelope with error 1", Some("Envelope"), &["application/json"];
    LibvirtBadRequest: "An unsupported method or an illegal request target: an HTML page", None, &["text/html"];
    LibvirtAsyncFull: "`?async=true` could not be queued: an HTML page", None, &["text/html"];
}

/// The search parameters every searchable collection takes.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Search {
    /// RHEV search: `field OP value` terms (OP one of `=`, `!=`, `<`, `<=`, `>`, `>=`; `*` is a wildcard)
    /// joined by `and` (the default) or `or`, then `sortby FIELD [asc|desc]` and `page N` (100 per page).
    #[param(required = false)]
    pub search: String,
    /// At most this many results.
    #[param(required = false)]
    pub max: u32,
    /// `false` compares search values regardless of case (also spelt `case-sensitive`).
    #[param(required = false)]
    pub case_sensitive: bool,
}

/// Runs blocking work the way virthttp does: `?async=true` answers at once with an id.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Async {
    /// `true` (or `1`, `yes`, empty) runs the request in the background and answers its id: 8 hex digits
    /// to fetch the envelope from `/libvirt/async/{id}`.
    #[param(rename = "async", required = false)]
    pub run_async: String,
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// This document
///
/// The OpenAPI 3.1 description of both APIs, generated from the handlers. It needs no credentials, and is
/// also at `/ovirt-engine/api/openapi.json`.
#[utoipa::path(get, path = "/api/openapi.json", operation_id = "get_openapi", tag = "api", security(()),
    responses(
        (status = 200, description = "This document", body = schema::Document, content_type = "application/json")))]
pub(crate) async fn openapi_json() -> Response {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(|| {
        document().to_pretty_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot render the OpenAPI document");
            "{}".to_string()
        })
    });
    let mut r = text.clone().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, JSON);
    r
}

/// The whole document: the RHEV routes' annotations, virthttp's, the representations and the responses no
/// handler writes.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Base::openapi();
    doc.merge(crate::rhev::api().into_openapi());
    doc.merge(crate::virthttp::openapi::document());
    schema::register(doc.components.get_or_insert_with(Components::default));
    let global = doc.security.clone().unwrap_or_default();
    for (path, item) in doc.paths.paths.iter_mut() {
        let unauthorized = if path.starts_with("/libvirt") { "LibvirtUnauthorized" } else { "Unauthorized" };
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in operations.into_iter().flatten() {
            let security = op.security.as_ref().unwrap_or(&global);
            let public = security.is_empty() || security.iter().any(|r| r == &Default::default());
            if !public {
                add_response(&mut op.responses, "401", unauthorized);
            }
            if let Some(body) = op.request_body.as_mut() {
                add_response(&mut op.responses, "413", "PayloadTooLarge");
                for content in body.content.values_mut() {
                    content.schema = content.schema.take().map(absent_not_null);
                }
            }
        }
    }
    doc
}

fn add_response(responses: &mut Responses, status: &str, component: &str) {
    responses.responses.entry(status.to_string()).or_insert_with(|| RefOr::Ref(Ref::from_response_name(component)));
}

/// An optional body (`Option<T>` in an annotation) is left out, not sent as `null`: its schema is `T`'s, and
/// the body is not `required`.
fn absent_not_null(schema: RefOr<Schema>) -> RefOr<Schema> {
    let null =
        |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
    match schema {
        RefOr::T(Schema::OneOf(one)) if one.items.len() == 2 && one.items.iter().any(null) => {
            one.items.into_iter().find(|s| !null(s)).unwrap_or_else(|| RefOr::T(Schema::default()))
        }
        other => other,
    }
}

/// Whether to stop a running vm before removing it.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Force {
    /// `true` stops a running vm first (also `<action><force>true</force></action>` as the body).
    #[param(required = false)]
    pub force: bool,
    /// `true` answers 202 at once and removes the vm in the background (also `<async>true</async>`).
    #[param(rename = "async", required = false)]
    pub run_async: bool,
}

/// Where the event list starts.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Since {
    /// Only events with a greater id.
    #[param(required = false)]
    pub from: u64,
}

/// Whether a change is to apply to the running vm.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Current {
    /// Anything but `false` asks for a live change, which a running vm refuses (409).
    #[param(required = false)]
    pub current: bool,
}
