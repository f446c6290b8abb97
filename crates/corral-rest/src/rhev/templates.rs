//! Templates: `Blank` and every TemplateVM.
//!
//! `Blank` (the zero GUID) is what a vm made from no template gets, a StandaloneVM: its memory and cpus are
//! the defaults of a new StandaloneVM. A TemplateVM is a template with the qube's uuid as id. Creating a
//! template from a vm makes a new TemplateVM holding a copy of the vm's root and private content, as
//! `qvm-clone` does (see `Service::create_template_from`). Templates carry no creation time: the model does
//! not record one.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use corral_core::domain::{Class, Domain};
use corral_core::volume::Volume;
use corral_service::View;
use corral_service::{Request, Service};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{self, int, reference, BLANK};
use super::handler::{ask, collection, created, creation, optional_body, ref_of, same_id};
use crate::ctx::Ctx;
use crate::fault::{ApiError, ApiResult};
use crate::openapi::{schema, BadRequest, Conflict, NotFound, Search, ServerError};
use crate::repr::Node;
use crate::Rest;

pub fn routes() -> OpenApiRouter<Arc<Rest>> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(one, update, remove))
        .routes(routes!(disks))
        .routes(routes!(disk))
        .routes(routes!(disk_statistics))
        .routes(routes!(disk_statistic))
        .routes(routes!(nics))
        .routes(routes!(cdroms))
        .routes(routes!(cdrom))
        .routes(routes!(creation_status))
}

const SUBCOLLECTIONS: [&str; 3] = ["disks", "nics", "cdroms"];

/// The TemplateVM behind a template id; `None` is Blank.
pub fn find(service: &Service, id: &str) -> ApiResult<Option<Domain>> {
    if id == BLANK {
        return Ok(None);
    }
    let app = service.view(&crate::principal());
    let uuid = uuid::Uuid::parse_str(id).map_err(|_| ApiError::not_found(&format!("template {id}")))?;
    app.domain_by_uuid(&uuid)
        .filter(|d| d.class == Class::TemplateVM)
        .cloned()
        .map(Some)
        .ok_or_else(|| ApiError::not_found(&format!("template {id}")))
}

/// What a vm made from Blank is: a StandaloneVM with every property at its default.
fn blank_probe() -> Domain {
    Domain::new(0, "Blank", uuid::Uuid::nil(), Class::StandaloneVM)
}

fn template_node(ctx: &Ctx, app: &View, t: Option<&Domain>) -> Node {
    let probe = blank_probe();
    let (id, name, description, d) = match t {
        Some(d) => (d.uuid.to_string(), d.name.clone(), d.notes.clone(), d),
        None => (BLANK.to_string(), "Blank".to_string(), "Blank template".to_string(), &probe),
    };
    let base = format!("/templates/{id}");
    let mut node = Node::new("template").attr("href", ctx.href(&base)).attr("id", &id);
    node = node.with_leaf("name", name).with_leaf("description", description);
    node = common::links(ctx, node, &base, &SUBCOLLECTIONS);
    node = node.with_leaf("type", "server").child(Node::new("status").with_leaf("state", "ok"));
    node = node.with_leaf("memory", (int(app, d, "memory") * 1024 * 1024).to_string());
    let vcpus = int(app, d, "vcpus").max(1);
    node =
        node.child(Node::new("cpu").child(Node::new("topology").attr("cores", "1").attr("sockets", vcpus.to_string())));
    let mut os = Node::new("os").attr("type", "other_linux").child(Node::new("boot").attr("dev", "hd"));
    if let Some(kernel) = t.and_then(|d| app.vm_prop(d, "kernel")).filter(|k| !k.is_empty()) {
        os = os.with_leaf("kernel", kernel).with_leaf("cmdline", app.vm_prop(d, "kernelopts").unwrap_or_default());
    }
    node.child(os)
        .child(reference(ctx, "cluster", "clusters", common::cluster_id()))
        .child(Node::new("high_availability").with_leaf("enabled", "false").with_leaf("priority", "0"))
        .child(Node::new("display").with_leaf("type", "vnc").with_leaf("monitors", "1"))
        .with_leaf("stateless", "false")
        .child(Node::new("usb").with_leaf("enabled", "false"))
}

fn template_field(app: &View, t: Option<&Domain>, field: &str) -> Option<String> {
    let probe = blank_probe();
    let d = t.unwrap_or(&probe);
    Some(match field {
        "name" => t.map_or("Blank".into(), |d| d.name.clone()),
        "id" => t.map_or(BLANK.into(), |d| d.uuid.to_string()),
        "description" => t.map_or("Blank template".into(), |d| d.notes.clone()),
        "status" => "ok".into(),
        "memory" => (int(app, d, "memory") * 1024 * 1024).to_string(),
        "cluster" | "cluster.name" => "Default".into(),
        "tag" => t.map(|d| app.tags_of(d).join(",")).unwrap_or_default(),
        _ => return None,
    })
}

#[utoipa::path(get, path = "/api/templates", operation_id = "list_templates", tag = "templates",
    summary = "List templates", description = "Blank and every TemplateVM.", params(Search),
    responses((status = 200, response = schema::Templates), (status = 400, response = BadRequest)))]
async fn list(ctx: Ctx, State(rest): State<Arc<Rest>>) -> ApiResult<Response> {
    let app = rest.service.view(&crate::principal());
    let mut all: Vec<Option<&Domain>> = vec![None];
    all.extend(app.domains().filter(|d| d.class == Class::TemplateVM).map(Some));
    let out =
        collection(&ctx, "templates", all, |t, f| template_field(&app, *t, f), |t| template_node(&ctx, &app, *t))?;
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/templates/{id}", operation_id = "get_template", tag = "templates",
    summary = "Get a template",
    params(
        ("id" = String, Path, description = "The template's id: the zero GUID for Blank, else the TemplateVM's uuid")),
    responses((status = 200, response = schema::Template), (status = 404, response = NotFound)))]
async fn one(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let t = find(&rest.service, &id)?;
    let app = rest.service.view(&crate::principal());
    Ok(ctx.ok(&template_node(&ctx, &app, t.as_ref())))
}

/// The qube a template is made from, by `<vm id=…/>` or `<vm><name>…</name></vm>`.
fn source_vm(service: &Service, body: &Node) -> ApiResult<String> {
    let (id, name) = ref_of(body, "vm").ok_or_else(|| ApiError::bad_request("template [vm] required for add"))?;
    let app = service.view(&crate::principal());
    let found = app
        .domains()
        .filter(|d| !d.is_admin())
        .find(|d| id.as_deref() == Some(d.uuid.to_string().as_str()) || name.as_deref() == Some(d.name.as_str()))
        .map(|d| d.name.clone());
    found.ok_or_else(|| ApiError::bad_request("Entity not found: vm"))
}

#[utoipa::path(post, path = "/api/templates", operation_id = "add_template", tag = "templates",
    summary = "Add a template",
    description = "Makes a TemplateVM from a vm's root and private content, as `qvm-clone` does. 201 with `Location` \
        on `Expect: 201-created`, else 202 with a complete `creation_status`.",
    request_body(description = "A `<template>` with `name` and `vm`",
        content((schema::Template = "application/xml"), (schema::Template = "application/json"))),
    responses((status = 201, response = schema::Template), (status = 202, response = schema::Template),
        (status = 400, response = BadRequest), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn create(ctx: Ctx, State(rest): State<Arc<Rest>>, body: Bytes) -> ApiResult<Response> {
    let body = ctx.body(&body, "template")?;
    let name =
        body.text_of("name").ok_or_else(|| ApiError::bad_request("template [name] required for add"))?.to_string();
    let source = source_vm(&rest.service, &body)?;
    let settings = super::vms::settings(&body)?;
    let uuid = uuid::Uuid::new_v4();
    ask(&rest.service, Request::VmMakeTemplate { vm: source, name, uuid, settings }).await?;
    let id = uuid.to_string();
    let t = find(&rest.service, &id)?;
    let node = template_node(&ctx, &rest.service.view(&crate::principal()), t.as_ref());
    Ok(created(&ctx, node, &format!("/templates/{id}"), true))
}

#[utoipa::path(get, path = "/api/templates/{id}/creation_status/{cid}", operation_id = "get_template_creation_status",
    tag = "templates", summary = "Get a template's creation status",
    params(
        ("id" = String, Path, description = "The template's id: the zero GUID for Blank, else the TemplateVM's uuid"),
        ("cid" = String, Path, description = "The creation's id")),
    responses((status = 200, response = schema::Creation), (status = 404, response = NotFound)))]
async fn creation_status(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, cid)): Path<(String, String)>,
) -> ApiResult<Response> {
    find(&rest.service, &id)?;
    Ok(creation(&ctx, &format!("/templates/{id}"), &cid))
}

fn blank_is_fixed() -> ApiError {
    ApiError::conflict("The Blank template is built in: it cannot be changed or removed")
}

#[utoipa::path(put, path = "/api/templates/{id}", operation_id = "update_template", tag = "templates",
    summary = "Update a template",
    description = "Sets memory, cpu topology, kernel, kernel command line and description; the name and Blank are \
        fixed.",
    params(
        ("id" = String, Path, description = "The template's id: the zero GUID for Blank, else the TemplateVM's uuid")),
    request_body(description = "A `<template>` with the fields to change",
        content((schema::Template = "application/xml"), (schema::Template = "application/json"))),
    responses((status = 200, response = schema::Template), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn update(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>, body: Bytes) -> ApiResult<Response> {
    let t = find(&rest.service, &id)?.ok_or_else(blank_is_fixed)?;
    let body = ctx.body(&body, "template")?;
    same_id(&body, "template", &id)?;
    if body.text_of("name").is_some_and(|n| n != t.name) {
        return Err(ApiError::conflict("Cannot change the name of a template: qube names are fixed at creation"));
    }
    super::vms::update_qube(&rest.service, t.name.clone(), &body).await?;
    let t = find(&rest.service, &id)?;
    let app = rest.service.view(&crate::principal());
    Ok(ctx.ok(&template_node(&ctx, &app, t.as_ref())))
}

/// A template used by AppVMs is in use (409), as `admin.vm.Remove` says.
#[utoipa::path(delete, path = "/api/templates/{id}", operation_id = "remove_template", tag = "templates",
    summary = "Remove a template", description = "Blank and a template vms use are refused.",
    params(
        ("id" = String, Path, description = "The template's id: the zero GUID for Blank, else the TemplateVM's uuid")),
    request_body(description = "Optional: `<action>` or `<template>`",
        content((Option<schema::Action> = "application/xml"), (Option<schema::Action> = "application/json"))),
    responses((status = 204, description = "Removed"), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn remove(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>, body: Bytes) -> ApiResult<Response> {
    let t = find(&rest.service, &id)?.ok_or_else(blank_is_fixed)?;
    optional_body(&ctx, &body, &["action", "template"])?;
    ask(&rest.service, Request::VmRemove { vm: t.name }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/api/templates/{id}/disks", operation_id = "list_template_disks", tag = "templates",
    summary = "List a template's disks",
    params(
        ("id" = String, Path, description = "The template's id: the zero GUID for Blank, else the TemplateVM's uuid"),
        Search),
    responses((status = 200, response = schema::Disks), (status = 400, response = BadRequest),
        (status = 404, response = NotFound)))]
async fn disks(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let t = find(&rest.service, &id)?;
    let owners = move |_: &View| t.clone().into_iter().collect();
    let base = format!("/templates/{id}/disks");
    let href = move |_: &Domain, disk: &str| format!("{base}/{disk}");
    let out = super::storage::disk_collection(ctx.clone(), rest.service.clone(), owners, href).await?;
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/templates/{id}/disks/{d}", operation_id = "get_template_disk", tag = "templates",
    summary = "Get a template's disk",
    params(
        ("id" = String, Path, description = "The template's id: the zero GUID for Blank, else the TemplateVM's uuid"),
        ("d" = String, Path, description = "The disk's id")),
    responses((status = 200, response = schema::Disk), (status = 404, response = NotFound)))]
async fn disk(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, disk)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (d, v) = template_disk(&rest.service, &id, &disk)?;
    let href = format!("/templates/{id}/disks/{disk}");
    let node = super::storage::disk_at(ctx.clone(), rest.service.clone(), d, v, href).await?;
    Ok(ctx.ok(&node))
}

/// The TemplateVM and volume behind a template's disk id (Blank has none).
fn template_disk(service: &Service, id: &str, disk: &str) -> ApiResult<(Domain, Volume)> {
    let t = find(service, id)?;
    let v = t
        .as_ref()
        .and_then(|d| super::storage::disk_volumes(d).find(|v| super::storage::disk_id(d, &v.name) == disk))
        .cloned();
    t.zip(v).ok_or_else(|| ApiError::not_found(&format!("disk {disk}")))
}

#[utoipa::path(get, path = "/api/templates/{id}/disks/{d}/statistics", operation_id = "list_template_disk_statistics",
    tag = "templates", summary = "List a template disk's statistics",
    description = "Bytes read and written per second while the TemplateVM runs.",
    params(
        ("id" = String, Path, description = "The template's id: the TemplateVM's uuid"),
        ("d" = String, Path, description = "The disk's id")),
    responses((status = 200, response = schema::Statistics), (status = 404, response = NotFound),
        (status = 500, response = ServerError)))]
async fn disk_statistics(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, disk)): Path<(String, String)>,
) -> ApiResult<Response> {
    let disk = template_disk(&rest.service, &id, &disk)?;
    super::storage::disk_statistics_reply(&ctx, &rest, disk, &format!("templates/{id}/disks"), None).await
}

#[utoipa::path(get, path = "/api/templates/{id}/disks/{d}/statistics/{sid}", operation_id = "get_template_disk_statistic",
    tag = "templates", summary = "Get a template disk's statistic",
    params(
        ("id" = String, Path, description = "The template's id: the TemplateVM's uuid"),
        ("d" = String, Path, description = "The disk's id"), ("sid" = String, Path, description = "The statistic's id")),
    responses((status = 200, response = schema::Statistic), (status = 404, response = NotFound),
        (status = 500, response = ServerError)))]
async fn disk_statistic(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, disk, sid)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let disk = template_disk(&rest.service, &id, &disk)?;
    super::storage::disk_statistics_reply(&ctx, &rest, disk, &format!("templates/{id}/disks"), Some(&sid)).await
}

#[utoipa::path(get, path = "/api/templates/{id}/nics", operation_id = "list_template_nics", tag = "templates",
    summary = "List a template's nics",
    params(
        ("id" = String, Path, description = "The template's id: the zero GUID for Blank, else the TemplateVM's uuid")),
    responses((status = 200, response = schema::Nics), (status = 404, response = NotFound)))]
async fn nics(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let t = find(&rest.service, &id)?;
    let networks = super::devices::networks(rest.service.clone()).await?;
    let app = rest.service.view(&crate::principal());
    let mut out = Node::collection("nics");
    let base = format!("/templates/{id}");
    if let Some(nic) = t.as_ref().and_then(|d| super::devices::nic_node(&ctx, &app, d, &base, &networks)) {
        out.push(nic);
    }
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/templates/{id}/cdroms", operation_id = "list_template_cdroms", tag = "templates",
    summary = "List a template's cdroms",
    params(
        ("id" = String, Path, description = "The template's id: the zero GUID for Blank, else the TemplateVM's uuid")),
    responses((status = 200, response = schema::Cdroms), (status = 404, response = NotFound)))]
async fn cdroms(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let t = find(&rest.service, &id)?;
    let mut out = Node::collection("cdroms");
    if let Some(d) = &t {
        out.push(super::devices::cdrom_node(&ctx, d, &format!("/templates/{id}")));
    }
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/templates/{id}/cdroms/{c}", operation_id = "get_template_cdrom", tag = "templates",
    summary = "Get a template's cdrom",
    params(
        ("id" = String, Path, description = "The template's id: the zero GUID for Blank, else the TemplateVM's uuid"),
        ("c" = String, Path, description = "The cdrom's id: the zero GUID")),
    responses((status = 200, response = schema::Cdrom), (status = 404, response = NotFound)))]
async fn cdrom(ctx: Ctx, State(rest): State<Arc<Rest>>, Path((id, c)): Path<(String, String)>) -> ApiResult<Response> {
    // Blank has no cdrom: only a TemplateVM's one exists.
    match find(&rest.service, &id)? {
        Some(d) if c == BLANK => Ok(ctx.ok(&super::devices::cdrom_node(&ctx, &d, &format!("/templates/{id}")))),
        _ => Err(ApiError::not_found(&format!("cdrom {c}"))),
    }
}
