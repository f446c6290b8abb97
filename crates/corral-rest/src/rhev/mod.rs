//! The RHEV/oVirt v3 style API under `/api`. Qubes are `vm`s (and TemplateVMs `template`s), pools are
//! storage domains, volumes are disks; the host, cluster and data center describe this one daemon.

pub mod common;
pub mod devices;
pub mod events;
pub mod handler;
pub mod infra;
pub mod search;
pub mod storage;
pub mod tags;
pub mod templates;
pub mod users;
pub mod vms;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ctx::Ctx;
use crate::openapi::schema;
use crate::repr::Node;
use crate::Rest;

pub fn routes() -> Router<Arc<Rest>> {
    api().into()
}

/// The routes with their OpenAPI description: `routes!` routes each handler at the path and methods of its
/// `#[utoipa::path]`, so what is served and what is documented are the same declaration.
pub fn api() -> OpenApiRouter<Arc<Rest>> {
    OpenApiRouter::default()
        .routes(routes!(entry_point, head_entry_point))
        .routes(routes!(entry_point_slash))
        .routes(routes!(crate::openapi::openapi_json))
        .merge(vms::routes())
        .merge(infra::routes())
        .merge(storage::routes())
        .merge(templates::routes())
        .merge(tags::routes())
        .merge(events::routes())
        .merge(devices::routes())
        .merge(users::routes())
}

/// The collections the entry point links to, and which of them are searchable.
const COLLECTIONS: [(&str, bool); 12] = [
    ("capabilities", false),
    ("clusters", true),
    ("datacenters", true),
    ("events", true),
    ("hosts", true),
    ("networks", false),
    ("storagedomains", true),
    ("tags", false),
    ("templates", true),
    ("users", true),
    ("vms", true),
    ("disks", true),
];

/// The entry point
///
/// Links to every collection (and its search), the special objects, the product and a summary.
#[utoipa::path(get, path = "/api", operation_id = "get_api", tag = "api",
    responses((status = 200, response = schema::Api)))]
async fn entry_point(ctx: Ctx, axum::extract::State(rest): axum::extract::State<Arc<Rest>>) -> Response {
    let mut api = Node::new("api");
    for (name, searchable) in COLLECTIONS {
        api.push(Node::new("link").attr("href", ctx.href(&format!("/{name}"))).attr("rel", name));
        if searchable {
            api.push(
                Node::new("link")
                    .attr("href", ctx.href(&format!("/{name}?search={{query}}")))
                    .attr("rel", format!("{name}/search")),
            );
        }
    }
    api.push(
        Node::new("special_objects")
            .child(
                Node::new("link")
                    .attr("href", ctx.href(&format!("/templates/{}", common::BLANK)))
                    .attr("rel", "templates/blank"),
            )
            .child(
                Node::new("link").attr("href", ctx.href(&format!("/tags/{}", common::BLANK))).attr("rel", "tags/root"),
            ),
    );
    api.push(
        // The numbers are the engine level this API speaks (clients compare them, and the SDK parses them
        // as integers); Corral's own version is the string beside them.
        Node::new("product_info")
            .with_leaf("name", "Corral")
            .with_leaf("vendor", "Corral")
            .child(
                Node::new("version")
                    .attr("major", "3")
                    .attr("minor", "3")
                    .attr("build", "0")
                    .attr("revision", "0")
                    .attr("full_version", env!("CARGO_PKG_VERSION")),
            )
            .with_leaf("full_version", env!("CARGO_PKG_VERSION")),
    );
    let (vms, active, users) = {
        let app = rest.service.view(&crate::principal());
        let (vms, active) = common::vm_counts(&app);
        (vms, active, app.users().count())
    };
    let pair = |name: &'static str, total: usize, active: usize| {
        Node::new(name).with_leaf("total", total.to_string()).with_leaf("active", active.to_string())
    };
    api.push(
        Node::new("summary")
            .child(pair("vms", vms, active))
            .child(pair("hosts", 1, 1))
            .child(pair("users", users, users))
            .child(pair("storage_domains", storage::domain_count(&rest), storage::domain_count(&rest))),
    );
    api.push(Node::leaf("time", common::xsd_time(corral_service::now_epoch())));
    ctx.ok(&api)
}

/// The entry point, spelt with a trailing slash
///
/// As `GET /api`.
#[utoipa::path(get, path = "/api/", operation_id = "get_api_slash", tag = "api",
    responses((status = 200, response = schema::Api)))]
async fn entry_point_slash(ctx: Ctx, state: axum::extract::State<Arc<Rest>>) -> Response {
    entry_point(ctx, state).await
}

/// Check credentials
///
/// `HEAD /api`: a cheap credentials check (auth already passed to get here).
#[utoipa::path(head, path = "/api", operation_id = "head_api", tag = "api",
    responses((status = 200, description = "The credentials are good")))]
async fn head_entry_point() -> Response {
    StatusCode::OK.into_response()
}
