//! What the RHEV handlers do alike whatever the resource: run service work, read optional bodies, and give
//! the answers RHEV shapes the same everywhere (created, creation status, refused writes, completed actions,
//! searched collections).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use std::future::Future;
use std::sync::Arc;

use corral_service::{Principal, Request, Service};

use crate::ctx::Ctx;
use crate::fault::{ApiError, ApiResult};
use crate::repr::Node;

/// Who the request being served is from (see [`crate::principal`]).
pub fn caller() -> Principal {
    crate::principal()
}

/// Runs blocking work (SQLite, storage, libvirt, /proc) off the async executor; the events it publishes
/// carry the request's `Correlation-Id`.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    let cause = crate::cause();
    tokio::task::spawn_blocking(move || corral_service::with_cause(cause, f))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Operation Failed", "Internal error"))?
}

/// Asks the service to run `request` for the caller (the one gate checks it first), off the async executor.
pub fn ask(service: &Arc<Service>, request: Request) -> impl Future<Output = ApiResult<corral_service::Response>> {
    ask_with(service, request, ApiError::from)
}

/// [`ask`], with the service's refusal rendered by `fault` where the resource words it its own way.
pub fn ask_with(
    service: &Arc<Service>,
    request: Request,
    fault: impl FnOnce(corral_core::Error) -> ApiError + Send + 'static,
) -> impl Future<Output = ApiResult<corral_service::Response>> {
    let service = service.clone();
    blocking(move || service.handle(&caller(), request).map_err(fault))
}

/// The service answered a request with a response of another kind than the request has: a fault of this
/// daemon, not of the request.
pub fn unexpected(response: &corral_service::Response) -> ApiError {
    tracing::error!(?response, "the service answered with an unexpected response");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Operation Failed", "Internal error")
}

/// A request body that may be absent (DELETE): `None` when empty, else the element, whose name must be one of
/// `roots` (JSON bodies have no element name and are taken as the first).
pub fn optional_body(ctx: &Ctx, bytes: &[u8], roots: &[&str]) -> ApiResult<Option<Node>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if ctx.content_json {
        return ctx.body(bytes, roots.first().copied().unwrap_or("action")).map(Some);
    }
    let node = Node::parse_xml(bytes).map_err(|e| ApiError::bad_request(e.0))?;
    if !roots.contains(&node.name.as_ref()) {
        return Err(ApiError::bad_request(format!("Unexpected <{}> element", node.name)));
    }
    Ok(Some(node))
}

/// An update's body may repeat the id of the resource its URL names, never another one: ids are fixed, and
/// oVirt refuses such an update (409) rather than applying it to the URL's resource. Ids compare without
/// case, as GUIDs do.
pub fn same_id(body: &Node, kind: &str, id: &str) -> ApiResult<()> {
    match body.attr_of("id").or_else(|| body.text_of("id")).map(str::trim) {
        Some(given) if !given.eq_ignore_ascii_case(id) => Err(ApiError::conflict(format!(
            "Cannot change the id of a {kind}: the body names {given}, the URL {id}, and ids are fixed"
        ))),
        _ => Ok(()),
    }
}

/// The parameters of an action: an empty body asks for none.
/// The fields every action takes (`async`, `grace_period/expiry` in ms) are checked here, whether the
/// action uses them or not.
pub fn action_params(ctx: &Ctx, bytes: &[u8]) -> ApiResult<Node> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Node::new("action"));
    }
    let params = ctx.body(bytes, "action")?;
    body_flag(&params, "async")?;
    if let Some(e) = params.path("grace_period/expiry").and_then(|e| e.text.as_deref()) {
        e.trim().parse::<u64>().map_err(|_| ApiError::bad_request(format!("Invalid grace_period expiry: {e} (ms)")))?;
    }
    Ok(params)
}

/// A boolean of a request: `true` or `false` (any case); anything else is a 400 saying where it was.
fn parse_bool(text: &str, what: &str) -> ApiResult<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::bad_request(format!("Invalid {what}: {text} (true or false)"))),
    }
}

/// The boolean element at `path` of a request body, when given.
pub fn body_flag(node: &Node, path: &str) -> ApiResult<Option<bool>> {
    node.path(path).map(|n| parse_bool(n.text.as_deref().unwrap_or_default(), &format!("<{path}>"))).transpose()
}

/// The boolean matrix or query parameter `name`, when given.
pub fn param_flag(ctx: &Ctx, name: &str) -> ApiResult<Option<bool>> {
    ctx.param(name).map(|v| parse_bool(v, &format!(";{name}"))).transpose()
}

/// A reference in a request: `<x id="…"/>` or `<x><name>…</name></x>`.
pub fn ref_of(node: &Node, kind: &str) -> Option<(Option<String>, Option<String>)> {
    let r = node.get(kind)?;
    Some((r.attr_of("id").map(str::to_string), r.text_of("name").map(str::to_string)))
}

/// The answer to a finished create: 201 with `Location` when the client asked for it with `Expect`, else 202
/// with a `creation_status` that is already complete (and a link to it when `status_link`).
pub fn created(ctx: &Ctx, mut node: Node, href: &str, status_link: bool) -> Response {
    let status = if ctx.expect_created || !status_link {
        StatusCode::CREATED
    } else {
        let id = node.attr_of("id").unwrap_or_default().to_string();
        node.push(Node::new("creation_status").with_leaf("state", "complete"));
        node.push(
            Node::new("link")
                .attr("href", ctx.href(&format!("{href}/creation_status/{id}")))
                .attr("rel", "creation_status"),
        );
        StatusCode::ACCEPTED
    };
    let mut response = ctx.render(status, &node);
    if let Ok(v) = HeaderValue::from_str(&ctx.href(href)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// `GET {href}/creation_status/{cid}`: creations finish before the create call answers, so every one is
/// complete.
pub fn creation(ctx: &Ctx, href: &str, cid: &str) -> Response {
    let node = Node::new("creation")
        .attr("href", ctx.href(&format!("{href}/creation_status/{cid}")))
        .attr("id", cid)
        .child(Node::new("status").with_leaf("state", "complete"));
    ctx.ok(&node)
}

/// A write this engine refuses although RHEV allows it: what the request names must exist (`found`, else its
/// 404), then the refusal is a 409 saying `why`.
pub fn refused<T>(found: ApiResult<T>, why: impl FnOnce(T) -> String) -> ApiResult<Response> {
    Err(ApiError::conflict(why(found?)))
}

/// The `<action>` `name` on the resource at `base`, in `state`, with `extra` (what the action returns) first.
pub fn action_node(ctx: &Ctx, base: &str, name: &str, action_id: &str, state: &str, extra: Vec<Node>) -> Node {
    let mut node =
        Node::new("action").attr("href", ctx.href(&format!("{base}/{name}/{action_id}"))).attr("id", action_id);
    for e in extra {
        node.push(e);
    }
    node.child(Node::new("status").with_leaf("state", state))
        .child(Node::new("link").attr("href", ctx.href(base)).attr("rel", "parent"))
        .child(Node::new("link").attr("href", ctx.href(&format!("{base}/{name}"))).attr("rel", "replay"))
}

/// An action that finished before the answer. Its id is fresh: only asynchronous actions are kept to poll.
pub fn completed_action(ctx: &Ctx, base: &str, name: &str, extra: Vec<Node>) -> Node {
    action_node(ctx, base, name, &uuid::Uuid::new_v4().to_string(), "complete", extra)
}

/// The collection `name` of the `items` the request's search keeps (by `field`), each as `node` renders it.
pub fn collection<T>(
    ctx: &Ctx,
    name: &'static str,
    items: Vec<T>,
    field: impl Fn(&T, &str) -> Option<String>,
    node: impl Fn(&T) -> Node,
) -> ApiResult<Node> {
    let kept = super::search::apply(ctx, items, field).map_err(ApiError::bad_request)?;
    let mut out = Node::collection(name);
    for item in &kept {
        out.push(node(item));
    }
    Ok(out)
}
