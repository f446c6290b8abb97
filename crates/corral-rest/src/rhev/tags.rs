//! `/api/tags` and `/api/vms/{id}/tags`: the qubes' tags as RHEV tags.
//!
//! A Qubes tag is only a word on a qube, while a RHEV tag is an object with an id, a parent and a life of
//! its own. The mapping:
//! - the tags are the union of every qube's tags, explicit and automatic (`guivm-…`, `audiovm-…`), dom0's
//!   included; the list is flat: every tag's parent is the root tag;
//! - a tag's id is a UUIDv5 of its name, so it is stable across restarts and needs no storage;
//! - the root tag (zero GUID, alias `-1`, name `root`) always exists and cannot be changed or deleted;
//! - `POST /api/tags` creates a tag nobody uses yet by setting it on **dom0**: dom0's tags are real,
//!   durable Qubes tags, so the tag survives restarts and shows in the Admin API (`admin.vm.tag.List dom0`).
//!   Caveat: a qrexec policy rule that names `@tag:<name>` as a target then matches dom0 too;
//! - `DELETE /api/tags/{id}` removes the tag from every qube (dom0 included) in one transaction;
//! - a tag has no description of its own: it is shown as the tag's name and cannot be changed.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use corral_core::domain::Domain;
use corral_service::{Request, View};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::common::{self, BLANK};
use super::handler::{ask, collection, created, optional_body, same_id};
use crate::ctx::Ctx;
use crate::fault::{ApiError, ApiResult};
use crate::openapi::{schema, BadRequest, Conflict, NotFound, Search, ServerError};
use crate::repr::Node;
use crate::Rest;

pub fn routes() -> OpenApiRouter<Arc<Rest>> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(one, update, remove))
        .routes(routes!(vm_list, vm_attach))
        .routes(routes!(vm_one, vm_detach))
}

/// The root tag's name; no Qubes tag may take it, or two tags would share a name.
const ROOT: &str = "root";

/// A tag's id: stable per name.
pub fn tag_id(name: &str) -> String {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("corral:tag/{name}").as_bytes()).to_string()
}

fn is_root_id(id: &str) -> bool {
    id == BLANK || id == "-1"
}

/// Every tag some qube has, sorted.
fn all_tags(app: &View) -> BTreeSet<String> {
    app.domains().flat_map(|d| app.tags_of(d)).collect()
}

/// A tag of the top-level collection by id: `None` is the root tag.
fn find(rest: &Rest, id: &str) -> ApiResult<Option<String>> {
    if is_root_id(id) {
        return Ok(None);
    }
    let app = rest.service.view(&crate::principal());
    all_tags(&app)
        .into_iter()
        .find(|t| tag_id(t) == id)
        .map(Some)
        .ok_or_else(|| ApiError::not_found(&format!("tag {id}")))
}

fn root_node(ctx: &Ctx) -> Node {
    Node::new("tag")
        .attr("href", ctx.href(&format!("/tags/{BLANK}")))
        .attr("id", BLANK)
        .with_leaf("name", ROOT)
        .with_leaf("description", ROOT)
}

/// A tag; under a vm (`vm` = the vm's id) its href is the sub-collection's and it points back at the vm.
fn tag_node(ctx: &Ctx, name: &str, vm: Option<&str>) -> Node {
    let id = tag_id(name);
    let href = match vm {
        Some(vm) => format!("/vms/{vm}/tags/{id}"),
        None => format!("/tags/{id}"),
    };
    let mut node = Node::new("tag")
        .attr("href", ctx.href(&href))
        .attr("id", &id)
        .with_leaf("name", name)
        .with_leaf("description", name)
        .child(Node::new("parent").child(common::reference(ctx, "tag", "tags", BLANK)));
    if let Some(vm) = vm {
        node.push(common::reference(ctx, "vm", "vms", vm));
    }
    node
}

fn tag_field(name: &str, field: &str) -> Option<String> {
    Some(match field {
        "name" => name.to_string(),
        "id" => {
            if name == ROOT {
                BLANK.to_string()
            } else {
                tag_id(name)
            }
        }
        "parent" | "parent.name" => {
            if name == ROOT {
                String::new()
            } else {
                ROOT.to_string()
            }
        }
        _ => return None,
    })
}

/// The parent a request names must be the root: tags are flat here.
fn check_parent(body: &Node) -> ApiResult<()> {
    let Some(parent) = body.path("parent/tag") else { return Ok(()) };
    let by_id = parent.attr_of("id").is_none_or(is_root_id);
    let by_name = parent.text_of("name").is_none_or(|n| n == ROOT);
    if by_id && by_name {
        Ok(())
    } else {
        Err(ApiError::conflict("Tags are flat on this engine: the parent must be the root tag"))
    }
}

#[utoipa::path(get, path = "/api/tags", operation_id = "list_tags", tag = "tags", summary = "List tags",
    description = "The root tag, then every tag some qube has.", params(Search),
    responses((status = 200, response = schema::Tags), (status = 400, response = BadRequest)))]
async fn list(ctx: Ctx, State(rest): State<Arc<Rest>>) -> ApiResult<Response> {
    let names: Vec<String> = {
        let app = rest.service.view(&crate::principal());
        std::iter::once(ROOT.to_string()).chain(all_tags(&app).into_iter().filter(|t| t != ROOT)).collect()
    };
    let out = collection(
        &ctx,
        "tags",
        names,
        |n, f| tag_field(n, f),
        // The root is listed first; a Qubes tag named `root` (set through the Admin API) is shadowed by it.
        |name| if name == ROOT { root_node(&ctx) } else { tag_node(&ctx, name, None) },
    )?;
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/tags/{id}", operation_id = "get_tag", tag = "tags", summary = "Get a tag",
    params(("id" = String, Path, description = "The tag's id (the root tag: the zero GUID or `-1`)")),
    responses((status = 200, response = schema::Tag), (status = 404, response = NotFound)))]
async fn one(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(match find(&rest, &id)? {
        None => ctx.ok(&root_node(&ctx)),
        Some(name) => ctx.ok(&tag_node(&ctx, &name, None)),
    })
}

fn exists(rest: &Rest, name: &str) -> bool {
    name == ROOT || all_tags(&rest.service.view(&crate::principal())).contains(name)
}

#[utoipa::path(post, path = "/api/tags", operation_id = "add_tag", tag = "tags", summary = "Add a tag",
    description = "A tag nobody has yet is kept by setting it on dom0.",
    request_body(description = "A `<tag>` with `name`",
        content((schema::Tag = "application/xml"), (schema::Tag = "application/json"))),
    responses((status = 201, response = schema::Tag), (status = 400, response = BadRequest),
        (status = 409, response = Conflict), (status = 500, response = ServerError)))]
async fn create(ctx: Ctx, State(rest): State<Arc<Rest>>, body: Bytes) -> ApiResult<Response> {
    let body = ctx.body(&body, "tag")?;
    let name = body.text_of("name").ok_or_else(|| ApiError::bad_request("tag [name] required for add"))?.to_string();
    check_parent(&body)?;
    if exists(&rest, &name) {
        return Err(ApiError::conflict(format!("Tag name already in use: {name}")));
    }
    ask(&rest.service, Request::TagSet { vm: corral_core::domain::DOM0.into(), tag: name.clone() }).await?;
    Ok(created(&ctx, tag_node(&ctx, &name, None), &format!("/tags/{}", tag_id(&name)), false))
}

#[utoipa::path(put, path = "/api/tags/{id}", operation_id = "update_tag", tag = "tags", summary = "Update a tag",
    description = "Renames the tag on every qube; the root tag, the description and the parent are fixed.",
    params(("id" = String, Path, description = "The tag's id (the root tag: the zero GUID or `-1`)")),
    request_body(description = "A `<tag>`",
        content((schema::Tag = "application/xml"), (schema::Tag = "application/json"))),
    responses((status = 200, response = schema::Tag), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn update(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>, body: Bytes) -> ApiResult<Response> {
    let Some(old) = find(&rest, &id)? else { return Err(ApiError::conflict("The root tag cannot be changed")) };
    let body = ctx.body(&body, "tag")?;
    same_id(&body, "tag", &id)?;
    check_parent(&body)?;
    if body.text_of("description").is_some_and(|d| d != old) {
        return Err(ApiError::conflict("A tag's description cannot be changed: Qubes tags have none"));
    }
    let new = body.text_of("name").unwrap_or(&old).to_string();
    if new != old {
        if exists(&rest, &new) {
            return Err(ApiError::conflict(format!("Tag name already in use: {new}")));
        }
        ask(&rest.service, Request::TagRename { from: old, to: new.clone() }).await?;
    }
    Ok(ctx.ok(&tag_node(&ctx, &new, None)))
}

#[utoipa::path(delete, path = "/api/tags/{id}", operation_id = "remove_tag", tag = "tags", summary = "Remove a tag",
    description = "Removes the tag from every qube; the root tag is refused.",
    params(("id" = String, Path, description = "The tag's id (the root tag: the zero GUID or `-1`)")),
    request_body(description = "Optional: an `<action>`",
        content((Option<schema::Action> = "application/xml"), (Option<schema::Action> = "application/json"))),
    responses((status = 204, description = "Removed"), (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 500, response = ServerError)))]
async fn remove(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>, body: Bytes) -> ApiResult<Response> {
    let Some(name) = find(&rest, &id)? else { return Err(ApiError::conflict("The root tag cannot be deleted")) };
    optional_body(&ctx, &body, &["action", "tag"])?;
    ask(&rest.service, Request::TagRemoveEverywhere { tag: name }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------------------
// A vm's tags

/// The vm's tag with this id.
fn vm_tag(rest: &Rest, d: &Domain, id: &str) -> ApiResult<String> {
    let app = rest.service.view(&crate::principal());
    app.tags_of(d)
        .into_iter()
        .find(|t| tag_id(t) == id)
        .ok_or_else(|| ApiError::not_found(&format!("tag {id} of vm {}", d.uuid)))
}

#[utoipa::path(get, path = "/api/vms/{id}/tags", operation_id = "list_vm_tags", tag = "tags",
    summary = "List a vm's tags", params(("id" = String, Path, description = "The vm's id: its qube's uuid"), Search),
    responses((status = 200, response = schema::Tags), (status = 400, response = BadRequest),
        (status = 404, response = NotFound)))]
async fn vm_list(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let d = super::vms::find(&rest.service, &id)?;
    let tags = rest.service.view(&crate::principal()).tags_of(&d);
    let out = collection(&ctx, "tags", tags, |n, f| tag_field(n, f), |name| tag_node(&ctx, name, Some(&id)))?;
    Ok(ctx.ok(&out))
}

/// Attaches by `<tag id="…"/>` (an existing tag) or `<tag><name>…</name></tag>` (any valid Qubes tag,
/// which then exists).
#[utoipa::path(post, path = "/api/vms/{id}/tags", operation_id = "add_vm_tag", tag = "tags", summary = "Tag a vm",
    description = "By `id` (an existing tag) or by `<name>` (any valid Qubes tag).",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid")),
    request_body(description = "A `<tag>` with `id` or `name`",
        content((schema::Tag = "application/xml"), (schema::Tag = "application/json"))),
    responses((status = 201, response = schema::Tag), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn vm_attach(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let d = super::vms::find(&rest.service, &id)?;
    let body = ctx.body(&body, "tag")?;
    let name = match (body.attr_of("id"), body.text_of("name")) {
        (Some(tid), _) if is_root_id(tid) => None,
        (Some(tid), _) => Some(
            all_tags(&rest.service.view(&crate::principal()))
                .into_iter()
                .find(|t| tag_id(t) == tid)
                .ok_or_else(|| ApiError::bad_request(format!("Entity not found: tag {tid}")))?,
        ),
        (None, Some(ROOT)) => None,
        (None, Some(name)) => Some(name.to_string()),
        (None, None) => return Err(ApiError::bad_request("tag [id|name] required for add")),
    };
    let name = name.ok_or_else(|| ApiError::conflict("The root tag cannot be attached"))?;
    ask(&rest.service, Request::TagSet { vm: d.name.clone(), tag: name.clone() }).await?;
    Ok(created(&ctx, tag_node(&ctx, &name, Some(&id)), &format!("/vms/{id}/tags/{}", tag_id(&name)), false))
}

#[utoipa::path(get, path = "/api/vms/{id}/tags/{tag}", operation_id = "get_vm_tag", tag = "tags",
    summary = "Get a vm's tag",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("tag" = String, Path, description = "The tag's id")),
    responses((status = 200, response = schema::Tag), (status = 404, response = NotFound)))]
async fn vm_one(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    let d = super::vms::find(&rest.service, &id)?;
    let name = vm_tag(&rest, &d, &tag)?;
    Ok(ctx.ok(&tag_node(&ctx, &name, Some(&id))))
}

#[utoipa::path(delete, path = "/api/vms/{id}/tags/{tag}", operation_id = "remove_vm_tag", tag = "tags",
    summary = "Untag a vm",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("tag" = String, Path, description = "The tag's id")),
    request_body(description = "Optional: an `<action>`",
        content((Option<schema::Action> = "application/xml"), (Option<schema::Action> = "application/json"))),
    responses((status = 204, description = "Removed"), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 500, response = ServerError)))]
async fn vm_detach(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, tag)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let d = super::vms::find(&rest.service, &id)?;
    let name = vm_tag(&rest, &d, &tag)?;
    optional_body(&ctx, &body, &["action", "tag"])?;
    ask(&rest.service, Request::TagRemove { vm: d.name, tag: name }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_ids_are_stable_and_distinct() {
        assert_eq!(tag_id("work"), tag_id("work"));
        assert_ne!(tag_id("work"), tag_id("personal"));
    }

    #[test]
    fn only_the_root_is_a_valid_parent() {
        let root = Node::new("tag").child(Node::new("parent").child(Node::new("tag").attr("id", "-1")));
        let other = Node::new("tag").child(Node::new("parent").child(Node::new("tag").attr("id", tag_id("x"))));

        assert_eq!((check_parent(&root).is_ok(), check_parent(&other).is_ok()), (true, false));
    }
}
