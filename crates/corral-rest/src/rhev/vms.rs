//! `/api/vms`: qubes as RHEV vms — list (search), get, create, update, delete, actions, statistics.

use corral_core::error::Missing;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use corral_core::domain::Domain;
use corral_core::hv::BootDevice;
use corral_core::ErrorKind;
use corral_service::{NewVm, Request, Service, TemplateRef, VmSettings};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{self, vm_field, vm_node, Stat, BLANK};
use super::handler::{
    action_node, action_params, ask, ask_with, blocking, body_flag, caller, completed_action, created, creation,
    param_flag, ref_of, same_id, unexpected,
};
use crate::ctx::Ctx;
use crate::fault::{ApiError, ApiResult};
use crate::openapi::{schema, BadRequest, Conflict, Force, NotFound, Search, ServerError};
use crate::repr::Node;
use crate::Rest;

pub fn routes() -> OpenApiRouter<Arc<Rest>> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(one, update, remove))
        .routes(routes!(statistics))
        .routes(routes!(statistic))
        .routes(routes!(creation_status))
        .routes(routes!(action))
        .routes(routes!(action_status))
}

/// The qube behind a vm id; dom0 is not a vm.
pub fn find(service: &Service, id: &str) -> ApiResult<Domain> {
    let app = service.view(&crate::principal());
    let uuid = uuid::Uuid::parse_str(id).map_err(|_| ApiError::not_found(&format!("vm {id}")))?;
    app.domain_by_uuid(&uuid).filter(|d| !d.is_admin()).cloned().ok_or_else(|| ApiError::not_found(&format!("vm {id}")))
}

#[utoipa::path(get, path = "/api/vms", operation_id = "list_vms", tag = "vms", summary = "List vms",
    description = "Every qube but dom0, filtered by the search.", params(Search),
    responses((status = 200, response = schema::Vms), (status = 400, response = BadRequest)))]
async fn list(ctx: Ctx, State(rest): State<Arc<Rest>>) -> ApiResult<Response> {
    let service = &rest.service;
    // The whole list is the most expensive read; unfiltered it is rendered once per model change.
    if ctx.details.is_empty() && ctx.query("search").is_none() && ctx.param("max").is_none() {
        let key = match (ctx.format, ctx.base.as_str()) {
            (crate::Format::Xml, "/api") => "rest:vms:xml",
            (crate::Format::Json, "/api") => "rest:vms:json",
            (crate::Format::Xml, _) => "rest:vms:xml:ovirt-engine",
            (crate::Format::Json, _) => "rest:vms:json:ovirt-engine",
        };
        let view = service.view(&crate::principal());
        let body = service.rendered(&view, key, |app, previous_len| {
            let vms = app.domains().filter(|d| !d.is_admin()).map(|d| vm_node(&ctx, app, d));
            ctx.encode_collection("vms", "vm", vms, previous_len + previous_len / 8)
        });
        return Ok(ctx.render_bytes(StatusCode::OK, body.to_vec()));
    }
    let nodes: Vec<(Node, Domain)> = {
        let app = service.view(&crate::principal());
        let vms: Vec<&Domain> = app.domains().filter(|d| !d.is_admin()).collect();
        let vms = super::search::apply(&ctx, vms, |d, f| vm_field(&app, d, f)).map_err(ApiError::bad_request)?;
        vms.into_iter().map(|d| (vm_node(&ctx, &app, d), d.clone())).collect()
    };
    let mut out = Node::collection("vms");
    for node in with_details(&ctx, service, nodes).await? {
        out.push(node);
    }
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/vms/{id}", operation_id = "get_vm", tag = "vms", summary = "Get a vm",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid")),
    responses((status = 200, response = schema::Vm), (status = 404, response = NotFound)))]
async fn one(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    if ctx.details.is_empty() {
        // The common read: rendered under the read lock, without copying the qube out of the model.
        let app = rest.service.view(&crate::principal());
        let uuid = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::not_found(&format!("vm {id}")))?;
        let d = app
            .domain_by_uuid(&uuid)
            .filter(|d| !d.is_admin())
            .ok_or_else(|| ApiError::not_found(&format!("vm {id}")))?;
        return Ok(ctx.ok(&vm_node(&ctx, &app, d)));
    }
    let d = find(&rest.service, &id)?;
    let node = vm_node(&ctx, &rest.service.view(&crate::principal()), &d);
    let node = with_details(&ctx, &rest.service, vec![(node, d)]).await?.remove(0);
    Ok(ctx.ok(&node))
}

const MIB: u64 = 1024 * 1024;

/// What a RHEV vm or template body sets: memory (bytes; Qubes counts MiB), cpu topology, kernel, cmdline and
/// description.
pub(super) fn settings(body: &Node) -> ApiResult<VmSettings> {
    let mut out = VmSettings::default();
    if let Some(m) = body.text_of("memory") {
        let bytes = m.trim().parse::<u64>().map_err(|_| ApiError::bad_request(format!("Invalid memory: {m}")))?;
        if bytes < MIB {
            return Err(ApiError::bad_request(format!("Invalid memory: {m} bytes is less than 1 MiB")));
        }
        // A size between two MiB is rounded down.
        out.memory_mib = Some(bytes / MIB);
    }
    if let Some(t) = body.path("cpu/topology") {
        let n = |k: &str| {
            t.attr_of(k)
                .map(|v| v.parse::<u64>().map_err(|_| ApiError::bad_request(format!("Invalid cpu {k}: {v}"))))
                .transpose()
        };
        let (sockets, cores, threads) =
            (n("sockets")?.unwrap_or(1), n("cores")?.unwrap_or(1), n("threads")?.unwrap_or(1));
        // A product too large for any count is refused here; the qube's own limit is checked where it is set.
        let vcpus = sockets.checked_mul(cores).and_then(|v| v.checked_mul(threads)).ok_or_else(|| {
            ApiError::bad_request(format!("Invalid cpu topology: {sockets} x {cores} x {threads} vcpus"))
        })?;
        out.vcpus = Some(vcpus);
    }
    out.kernel = body.path("os/kernel").and_then(|k| k.text.clone());
    out.kernelopts = body.path("os/cmdline").and_then(|c| c.text.clone());
    out.notes = body.text_of("description").map(str::to_string);
    Ok(out)
}

/// Applies what a vm or template body changes (see [`settings`]) to qube `name`.
pub(super) async fn update_qube(service: &Arc<Service>, name: String, body: &Node) -> ApiResult<()> {
    let settings = settings(body)?;
    ask(service, Request::VmUpdate { vm: name, settings }).await.map(drop)
}

#[utoipa::path(post, path = "/api/vms", operation_id = "add_vm", tag = "vms", summary = "Add a vm",
    description = "Creates a qube: an AppVM of the template, or a StandaloneVM from `Blank`, with the memory, cpu, \
        kernel and description given. Answers 201 with `Location` when asked with `Expect: 201-created`, else 202 \
        with a complete `creation_status`.",
    request_body(description = "A `<vm>` with `name`, `template` and `cluster`",
        content((schema::Vm = "application/xml"), (schema::Vm = "application/json"))),
    responses((status = 201, response = schema::Vm), (status = 202, response = schema::Vm),
        (status = 400, response = BadRequest), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn create(ctx: Ctx, State(rest): State<Arc<Rest>>, body: Bytes) -> ApiResult<Response> {
    let body = ctx.body(&body, "vm")?;
    let name = body.text_of("name").ok_or_else(|| ApiError::bad_request("vm [name] required for add"))?.to_string();
    let (tid, tname) =
        ref_of(&body, "template").ok_or_else(|| ApiError::bad_request("vm [template] required for add"))?;
    let (cid, cname) =
        ref_of(&body, "cluster").ok_or_else(|| ApiError::bad_request("vm [cluster] required for add"))?;
    let cluster_ok = cid.as_deref() == Some(common::cluster_id()) || cname.as_deref() == Some("Default");
    if !cluster_ok {
        return Err(ApiError::bad_request("Entity not found: cluster"));
    }
    // Blank is no qube: a vm made from it is a StandaloneVM.
    let blank = tid.as_deref() == Some(BLANK) || tname.as_deref() == Some("Blank");
    let template = (!blank).then(|| TemplateRef { uuid: tid.and_then(|t| t.parse().ok()), name: tname });
    let settings = settings(&body)?;
    let label = body.text_of("label").unwrap_or("red").to_string();
    let uuid = uuid::Uuid::new_v4();
    let id = uuid.to_string();
    // The vm is asked for as a whole: it and its settings are one transaction.
    let request = Request::VmCreateWith { new: NewVm { name, label, template, uuid, settings }, start: false };
    ask_with(&rest.service, request, |e| match e.kind {
        ErrorKind::NotFound(Missing::Qube) => ApiError::bad_request("Entity not found: template"),
        _ => ApiError::from(e),
    })
    .await?;
    let d = find(&rest.service, &id)?;
    let node = vm_node(&ctx, &rest.service.view(&crate::principal()), &d);
    Ok(created(&ctx, node, &format!("/vms/{id}"), true))
}

/// Creation is finished when the create call answers, so every creation is complete.
#[utoipa::path(get, path = "/api/vms/{id}/creation_status/{cid}", operation_id = "get_vm_creation_status", tag = "vms",
    summary = "Get a vm's creation status",
    description = "Creations finish before the create call answers, so every one is complete.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("cid" = String, Path, description = "The creation's id")),
    responses((status = 200, response = schema::Creation), (status = 404, response = NotFound)))]
async fn creation_status(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, cid)): Path<(String, String)>,
) -> ApiResult<Response> {
    find(&rest.service, &id)?;
    Ok(creation(&ctx, &format!("/vms/{id}"), &cid))
}

#[utoipa::path(put, path = "/api/vms/{id}", operation_id = "update_vm", tag = "vms", summary = "Update a vm",
    description = "Sets memory, cpu topology, kernel, kernel command line and description; the name is fixed.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid")),
    request_body(description = "A `<vm>` with the fields to change",
        content((schema::Vm = "application/xml"), (schema::Vm = "application/json"))),
    responses((status = 200, response = schema::Vm), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn update(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>, body: Bytes) -> ApiResult<Response> {
    let d = find(&rest.service, &id)?;
    let body = ctx.body(&body, "vm")?;
    same_id(&body, "vm", &id)?;
    if body.text_of("name").is_some_and(|n| n != d.name) {
        return Err(ApiError::conflict("Cannot change the name of a vm: qube names are fixed at creation"));
    }
    if let Some((tid, tname)) = ref_of(&body, "template") {
        let app = rest.service.view(&crate::principal());
        let current = app.vm_prop(&d, "template").filter(|t| !t.is_empty());
        let (current_id, current_name) = match current.as_deref().and_then(|t| app.domain(t)) {
            Some(t) => (t.uuid.to_string(), t.name.clone()),
            None => (BLANK.to_string(), "Blank".to_string()),
        };
        if tid.is_some_and(|i| i != current_id) || tname.is_some_and(|n| n != current_name) {
            return Err(ApiError::conflict(
                "Cannot change the template of a vm: a vm keeps the template it was made from",
            ));
        }
    }
    update_qube(&rest.service, d.name.clone(), &body).await?;
    let d = find(&rest.service, &id)?;
    let app = rest.service.view(&crate::principal());
    Ok(ctx.ok(&vm_node(&ctx, &app, &d)))
}

#[utoipa::path(delete, path = "/api/vms/{id}", operation_id = "remove_vm", tag = "vms", summary = "Remove a vm",
    description = "A running vm is refused (409) unless `force` stops it first. With `async` the answer is 202 \
        once the checks passed, and the removal goes on in the background. The vm's disks go with it: \
        `vm/disks/detach_only` is refused (409), there are no floating disks to keep them as.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"), Force),
    request_body(description = "Optional: `<action><force>true</force></action>`",
        content((Option<schema::Action> = "application/xml"), (Option<schema::Action> = "application/json"))),
    responses((status = 204, description = "Removed"), (status = 202, description = "Being removed (async)"),
        (status = 400, response = BadRequest), (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 500, response = ServerError)))]
async fn remove(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>, body: Bytes) -> ApiResult<Response> {
    let d = find(&rest.service, &id)?;
    let action =
        if body.iter().all(u8::is_ascii_whitespace) { Node::new("action") } else { ctx.body(&body, "action")? };
    let force = param_flag(&ctx, "force")?.or(body_flag(&action, "force")?).unwrap_or(false);
    let is_async = param_flag(&ctx, "async")?.or(body_flag(&action, "async")?).unwrap_or(false);
    // Keeping the disks would need floating disks to keep them as; removing them instead would lose what the
    // caller asked to keep.
    if body_flag(&action, "vm/disks/detach_only")? == Some(true) {
        return Err(ApiError::conflict(format!(
            "Cannot remove VM {} and keep its disks: every disk is a volume of its vm (there are no floating disks); \
             copy the data off first, or remove the vm with its disks",
            d.name
        )));
    }
    let running = |name: &str| ApiError::conflict(format!("Cannot remove VM. VM {name} is running."));
    // An asynchronous removal is answered before it runs: the answer must already say it would be refused.
    if is_async && !force && rest.service.view(&crate::principal()).power(&d).is_active() {
        return Err(running(&d.name));
    }
    let name = d.name.clone();
    let removal =
        ask_with(&rest.service, Request::VmRemoveForced { vm: d.name.clone(), force }, move |e| match e.kind {
            ErrorKind::Conflict(corral_core::error::Conflict::NotHalted) => running(&name),
            _ => ApiError::from(e),
        });
    if is_async {
        // Background work keeps the request's cause (user, Correlation-Id) for its events.
        tokio::spawn(crate::CAUSE.scope(crate::cause(), async move {
            if let Err(e) = removal.await {
                tracing::warn!(vm = %id, error = %e.detail, "asynchronous vm removal failed");
            }
        }));
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    removal.await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What a start's `<vm>` changes for that run only: `os/kernel`, `os/cmdline`, the ordered `os/boot dev`s
/// and `cdroms/cdrom/file id` (an ISO image of a `file` storage domain).
fn run_once(params: &Node) -> ApiResult<corral_service::RunOnce> {
    let os = params.path("vm/os");
    let mut boot = Vec::new();
    for b in os.into_iter().flat_map(|os| os.all("boot")) {
        let dev = b.attr_of("dev").unwrap_or_default();
        boot.push(
            BootDevice::parse(dev)
                .ok_or_else(|| ApiError::bad_request(format!("Invalid boot device: {dev} (hd, cdrom or network)")))?,
        );
    }
    // Whether the image exists is the start's to check.
    let cdrom = params.path("vm/cdroms/cdrom/file").map(|f| f.attr_of("id").unwrap_or_default().to_string());
    Ok(corral_service::RunOnce {
        kernel: os.and_then(|os| os.text_of("kernel")).map(str::to_string),
        kernel_cmdline: os.and_then(|os| os.text_of("cmdline")).map(str::to_string),
        cdrom: cdrom.filter(|iso| !iso.is_empty()),
        boot,
    })
}

/// How long the outcome of an asynchronous action stays readable.
const ACTION_KEPT: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Debug, Clone)]
enum ActionState {
    Pending,
    Done,
    Failed(ApiError),
}

/// Actions asked for with `async`: the reply comes at once and the outcome is polled at the action's href.
#[derive(Default)]
pub struct AsyncActions {
    by_id: parking_lot::Mutex<std::collections::HashMap<String, (String, ActionState, std::time::Instant)>>,
}

impl AsyncActions {
    fn set(&self, action_id: &str, vm_id: &str, state: ActionState) {
        let mut map = self.by_id.lock();
        map.retain(|_, (_, _, at)| at.elapsed() < ACTION_KEPT);
        map.insert(action_id.to_string(), (vm_id.to_string(), state, std::time::Instant::now()));
    }

    fn get(&self, action_id: &str) -> Option<(String, ActionState)> {
        self.by_id
            .lock()
            .get(action_id)
            .filter(|(_, _, at)| at.elapsed() < ACTION_KEPT)
            .map(|(v, s, _)| (v.clone(), s.clone()))
    }
}

#[utoipa::path(post, path = "/api/vms/{id}/{action}", operation_id = "vm_action", tag = "vms",
    summary = "Run a vm action",
    description = "`start` (`<pause>`, and run-once `<vm>` settings for this start only: `<os>` with `<kernel/>`, \
        `<cmdline/>` and ordered `<boot dev/>`s, and `<cdroms><cdrom><file id/></cdrom></cdroms>`; a paused vm is \
        unpaused, a suspended one resumed), `stop` (kill; a suspended vm's saved state is discarded), `shutdown` (a \
        paused or suspended vm is stopped instead), `suspend` (memory saved to disk and the vm stopped: libvirt's \
        managed save), `reboot`, `ticket` (the password of a running vm's VNC console, \
        `<ticket><value/><expiry/></ticket>`: a given value or a random one, for `expiry` minutes, 120 by default; \
        VNC checks the first 8 characters), or `clone` (`<vm><name/></vm>`: a copy as `qvm-clone` makes, answered \
        with the new `<vm>`). An action the vm's state does not allow (`start` of a running vm, `stop` of a down \
        one...) is a 409 fault that says why.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("action" = String, Path, description = "`start`, `stop`, `shutdown`, `suspend`, `reboot`, `ticket` or `clone`")),
    request_body(description = "Optional: the `<action>` parameters",
        content((Option<schema::Action> = "application/xml"), (Option<schema::Action> = "application/json"))),
    responses((status = 200, response = schema::Action), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn action(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    if !common::VM_ACTIONS.contains(&name.as_str()) {
        return Err(ApiError::not_found(&format!("action {name}")));
    }
    let d = find(&rest.service, &id)?;
    let params = action_params(&ctx, &body)?;
    let service = rest.service.clone();
    let vm = d.name.clone();
    let what = name.clone();
    let pause = body_flag(&params, "pause")?.unwrap_or(false);
    // `;async=true` (the SDK) or `<async>true</async>` (the guide): answer 202 now, run in the background.
    let is_async = param_flag(&ctx, "async")?.or(body_flag(&params, "async")?).unwrap_or(false);
    let expiry = match params.path("ticket/expiry").and_then(|e| e.text.as_deref()) {
        None => 120,
        Some(e) => e
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|m| *m > 0)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid ticket expiry: {e} (minutes, from 1)")))?,
    };
    let ticket = params.path("ticket/value").and_then(|v| v.text.clone());
    let once = if name == "start" { run_once(&params)? } else { Default::default() };
    let clone_name = match (name.as_str(), params.path("vm/name").and_then(|n| n.text.clone())) {
        ("clone", None) => return Err(ApiError::bad_request("action [vm.name] required for clone")),
        (_, clone_name) => clone_name.unwrap_or_default(),
    };
    let clone_ctx = ctx.clone();
    let run = move || {
        let ask = |request: Request| service.handle(&caller(), request);
        match what.as_str() {
            "start" => {
                ask(Request::VmStartWith { vm, once, pause })?;
            }
            "stop" => {
                ask(Request::VmKill { vm })?;
            }
            "shutdown" => {
                ask(Request::VmShutdownOrKill { vm })?;
            }
            "clone" => {
                let uuid = uuid::Uuid::new_v4();
                ask(Request::VmClone { vm, name: clone_name, uuid })?;
                return Ok(vec![common::reference(&clone_ctx, "vm", "vms", &uuid.to_string())]);
            }
            "suspend" => {
                ask(Request::VmSave { vm })?;
            }
            "reboot" => {
                ask(Request::VmReboot { vm })?;
            }
            _ => {
                let valid_for = Duration::from_secs(u64::from(expiry) * 60);
                let value = match ask(Request::VmConsoleTicket { vm, password: ticket, valid_for })? {
                    corral_service::Response::Text(value) => value,
                    other => return Err(unexpected(&other)),
                };
                return Ok(vec![Node::new("ticket").with_leaf("value", value).with_leaf("expiry", expiry.to_string())]);
            }
        }
        Ok(Vec::new())
    };
    if is_async {
        let action_id = uuid::Uuid::new_v4().to_string();
        rest.actions.set(&action_id, &id, ActionState::Pending);
        let (rest2, aid, vm_id) = (rest.clone(), action_id.clone(), id.clone());
        // Background work keeps the request's cause (user, Correlation-Id) for its events.
        tokio::spawn(crate::CAUSE.scope(crate::cause(), async move {
            let state = match blocking(run).await {
                Ok(_) => ActionState::Done,
                Err(e) => ActionState::Failed(e),
            };
            rest2.actions.set(&aid, &vm_id, state);
        }));
        let node = action_node(&ctx, &format!("/vms/{id}"), &name, &action_id, "pending", Vec::new());
        return Ok(ctx.render(StatusCode::ACCEPTED, &node));
    }
    let extra = blocking(run).await?;
    Ok(ctx.ok(&completed_action(&ctx, &format!("/vms/{id}"), &name, extra)))
}

#[utoipa::path(get, path = "/api/vms/{id}/{action}/{action_id}", operation_id = "vm_action_status", tag = "vms",
    summary = "The outcome of an asynchronous vm action",
    description = "`pending` while it runs; once complete, a 301 to the vm; `failed` with the fault otherwise.",
    params(("id" = String, Path, description = "The vm's id"), ("action" = String, Path, description = "The action"),
        ("action_id" = String, Path, description = "The id the asynchronous action answered with")),
    responses((status = 200, response = schema::Action), (status = 301, description = "Complete: see the vm"),
        (status = 404, response = NotFound)))]
async fn action_status(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, name, action_id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let (vm_id, state) = rest
        .actions
        .get(&action_id)
        .filter(|(vm_id, _)| *vm_id == id)
        .ok_or_else(|| ApiError::not_found(&format!("action {action_id}")))?;
    let base = format!("/vms/{vm_id}");
    match state {
        ActionState::Pending => Ok(ctx.ok(&action_node(&ctx, &base, &name, &action_id, "pending", Vec::new()))),
        ActionState::Failed(e) => Ok(ctx.ok(&action_node(&ctx, &base, &name, &action_id, "failed", vec![e.node()]))),
        ActionState::Done => {
            let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
            if let Ok(v) = HeaderValue::from_str(&ctx.href(&base)) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            Ok(r)
        }
    }
}

#[utoipa::path(get, path = "/api/vms/{id}/statistics", operation_id = "list_vm_statistics", tag = "vms",
    summary = "List a vm's statistics", description = "Memory installed and used, and CPU use.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid")),
    responses((status = 200, response = schema::Statistics), (status = 404, response = NotFound)))]
async fn statistics(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let d = find(&rest.service, &id)?;
    let out = statistics_node(&ctx, rest.service.clone(), d, &id).await?;
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/vms/{id}/statistics/{sid}", operation_id = "get_vm_statistic", tag = "vms",
    summary = "Get a vm statistic",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("sid" = String, Path, description = "The statistic's id")),
    responses((status = 200, response = schema::Statistic), (status = 404, response = NotFound)))]
async fn statistic(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, sid)): Path<(String, String)>,
) -> ApiResult<Response> {
    let d = find(&rest.service, &id)?;
    common::statistics_reply(&ctx, statistics_node(&ctx, rest.service.clone(), d, &id).await?, Some(&sid))
}

/// The `<statistics>` of vm `d` (addressed as `/vms/{id}`): the sub-collection, and what `detail=statistics`
/// puts inline.
pub(super) async fn statistics_node(ctx: &Ctx, service: Arc<Service>, d: Domain, id: &str) -> ApiResult<Node> {
    let memory = {
        let app = service.view(&crate::principal());
        app.vm_prop(&d, "memory").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 1024 * 1024
    };
    let (info, cpu) = match ask(&service, Request::VmUsage { vm: d.name.clone() }).await? {
        corral_service::Response::Usage { info, cpu_percent } => (info, cpu_percent),
        other => return Err(unexpected(&other)),
    };
    let bytes = |name, description, v: u64| -> Stat { (name, description, v.to_string(), "BYTES", false) };
    let percent = |name, description, v: f64| -> Stat { (name, description, format!("{v:.2}"), "PERCENT", true) };
    // libvirt's cpu_time counts the vcpus and QEMU's own threads together, so guest and total are the same
    // figure and the hypervisor's share is not reported.
    let stats = [
        bytes("memory.installed", "Total memory configured", memory),
        bytes("memory.used", "Memory used (agent)", info.memory_kib * 1024),
        percent("cpu.current.guest", "CPU used by guest", cpu),
        percent("cpu.current.total", "Total CPU used", cpu),
    ];
    Ok(common::statistics(ctx, "vm", "vms", id, &stats))
}

/// Appends to each vm node the sub-collections `Accept: …; detail=` asked for (statistics, nics, disks).
async fn with_details(ctx: &Ctx, service: &Arc<Service>, vms: Vec<(Node, Domain)>) -> ApiResult<Vec<Node>> {
    // The vm search and `max` select vms, not the devices inside them.
    let inner = Ctx { query: Vec::new(), matrix: crate::Matrix::default(), ..ctx.clone() };
    let mut out = Vec::with_capacity(vms.len());
    for (mut node, d) in vms {
        let id = d.uuid.to_string();
        if ctx.detail("statistics") {
            node.push(statistics_node(&inner, service.clone(), d.clone(), &id).await?);
        }
        if ctx.detail("nics") {
            node.push(super::devices::nics_node(&inner, service, &d, &id).await?);
        }
        if ctx.detail("disks") {
            node.push(super::devices::disks_node(&inner, service.clone(), d.clone(), id).await?);
        }
        out.push(node);
    }
    Ok(out)
}
