//! A vm's devices: `/api/vms/{id}/disks`, `/nics`, `/cdroms` and `/snapshots`.
//!
//! Mapping:
//! - disks are the qube's volumes (see `storage`): they can grow. A vm gets further disks as volumes
//!   `disk1`..`disk22` of a data domain and loses them again (while it is down); the volumes its class gives it go
//!   only with it, and nothing is detached: there are no floating disks to keep a detached one (409).
//! - A qube has at most one network card, named `nic1` unless a user named it otherwise (the qube's feature
//!   `corral.nic-name`; its id stays the same) and its MAC is the `mac` property: behind its `netvm`, on the
//!   libvirt network `default`, or directly on a libvirt network named by its feature `corral.network` (then
//!   it has no netvm). Adding a nic puts the qube behind the global `default_netvm` when the body names no
//!   network or `default` and there is a default_netvm, else directly on the network named (or `default`);
//!   removing it clears both. A running qube's card is hot-plugged (409 where libvirt cannot).
//! - The one cdrom (zero GUID) holds the name of an ISO image some `file` storage domain offers, kept as the
//!   qube's feature `corral.cdrom`. A qube started with one has a read-only IDE cdrom drive holding it; `;current`
//!   changes (or ejects) the media of that drive while the qube runs, and the choice stays for later starts.
//! - Snapshots are the revisions of the qube's private volume (its data; the root belongs to the template or
//!   is rebuilt from it). Taking one saves the private volume's current content as a new revision (the qube
//!   must be halted or suspended, whose disks nothing writes; file pools keep one revision, so a new snapshot replaces the previous one); restoring
//!   reverts the volume to it. Revisions are dropped by the pool as new ones are made, not one by one.

use corral_core::error::Failure;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use corral_core::domain::{Domain, NETVM_NETWORK, NIC_NAME};
use corral_service::View;
use corral_service::{Request, Service};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{self, reference, stable_id, BLANK};
use super::handler::{
    ask, ask_with, body_flag, completed_action, created, optional_body, ref_of, refused, same_id, unexpected,
};
use super::storage::{disk_at, disk_collection, disk_id, disk_statistics_reply, disk_volumes};
use super::vms::find;
use crate::ctx::Ctx;
use crate::fault::{ApiError, ApiResult};
use crate::openapi::{schema, BadRequest, Conflict, Current, NotFound, Search, ServerError};
use crate::repr::Node;
use crate::Rest;

pub fn routes() -> OpenApiRouter<Arc<Rest>> {
    OpenApiRouter::default()
        .routes(routes!(disks, add_disk))
        .routes(routes!(disk, update_disk, remove_disk))
        .routes(routes!(nics, add_nic))
        .routes(routes!(disk_statistics))
        .routes(routes!(disk_statistic))
        .routes(routes!(nic, update_nic, remove_nic))
        .routes(routes!(nic_statistics))
        .routes(routes!(nic_statistic))
        .routes(routes!(cdroms, add_cdrom))
        .routes(routes!(cdrom, update_cdrom, eject_cdrom))
        .routes(routes!(snapshots, take_snapshot))
        .routes(routes!(snapshot, remove_snapshot))
        .routes(routes!(snapshot_disks))
        .routes(routes!(restore_snapshot))
}

/// The libvirt networks as `/api/networks` shows them: (name, id) pairs.
pub struct Networks(Vec<(String, String)>);

impl Networks {
    /// The id `/api/networks` gives libvirt network `name`: its libvirt uuid. Without a hypervisor (or
    /// without that network) a stable id stands in, so the reference is still well formed.
    fn id_of(&self, name: &str) -> String {
        let found = self.0.iter().find(|(n, _)| n == name).map(|(_, id)| id.clone());
        found.unwrap_or_else(|| stable_id(&format!("network/{name}")))
    }

    /// The network with id `id`, or with the stand-in id of `default` (whose nics exist without libvirt).
    fn name_of(&self, id: &str) -> Option<String> {
        let found = self.0.iter().find(|(_, i)| i == id).map(|(n, _)| n.clone());
        found.or_else(|| (self.id_of(NETVM_NETWORK) == id).then(|| NETVM_NETWORK.to_string()))
    }

    fn has(&self, name: &str) -> bool {
        name == NETVM_NETWORK || self.0.iter().any(|(n, _)| n == name)
    }
}

/// The networks a nic can refer to; none when the hypervisor cannot list them.
pub async fn networks(service: Arc<Service>) -> ApiResult<Networks> {
    let networks = match ask(&service, Request::NetworkList).await {
        Ok(corral_service::Response::Networks(networks)) => networks,
        _ => Vec::new(),
    };
    Ok(Networks(networks.into_iter().map(|n| (n.name, n.uuid.to_string())).collect()))
}

/// The feature that remembers which file the cdrom holds.
use corral_service::media::CDROM_FEATURE;

/// The one volume whose revisions are the qube's snapshots.
const SNAPSHOT_VOLUME: &str = "private";

/// The reference back to a device's owner: a vm, or a template when listed under `/templates`.
fn owner_ref(ctx: &Ctx, d: &Domain, base: &str) -> Node {
    if base.starts_with("/templates/") {
        reference(ctx, "template", "templates", &d.uuid.to_string())
    } else {
        reference(ctx, "vm", "vms", &d.uuid.to_string())
    }
}

// ---------------------------------------------------------------------------------------------------------
// Disks

fn vm_disk(service: &Service, vm: &str, disk: &str) -> ApiResult<(Domain, corral_core::volume::Volume)> {
    let d = find(service, vm)?;
    let v = disk_volumes(&d)
        .find(|v| disk_id(&d, &v.name) == disk)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&format!("disk {disk}")))?;
    Ok((d, v))
}

#[utoipa::path(get, path = "/api/vms/{id}/disks", operation_id = "list_vm_disks", tag = "vm devices",
    summary = "List a vm's disks", params(("id" = String, Path, description = "The vm's id: its qube's uuid"), Search),
    responses((status = 200, response = schema::Disks), (status = 400, response = BadRequest),
        (status = 404, response = NotFound)))]
async fn disks(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let d = find(&rest.service, &id)?;
    let out = disks_node(&ctx, rest.service.clone(), d, id).await?;
    Ok(ctx.ok(&out))
}

/// The `<disks>` of vm `d` (addressed as `/vms/{id}`), filtered by `ctx`'s search: the sub-collection, and
/// what `detail=disks` puts inline.
pub(super) async fn disks_node(ctx: &Ctx, service: Arc<Service>, d: Domain, id: String) -> ApiResult<Node> {
    let owners = move |_: &View| vec![d.clone()];
    let href = move |_: &Domain, disk: &str| format!("/vms/{id}/disks/{disk}");
    disk_collection(ctx.clone(), service, owners, href).await
}

#[utoipa::path(get, path = "/api/vms/{id}/disks/{d}", operation_id = "get_vm_disk", tag = "vm devices",
    summary = "Get a vm's disk",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("d" = String, Path, description = "The disk's id")),
    responses((status = 200, response = schema::Disk), (status = 404, response = NotFound)))]
async fn disk(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, disk)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (d, v) = vm_disk(&rest.service, &id, &disk)?;
    let node = disk_at(ctx.clone(), rest.service.clone(), d, v, format!("/vms/{id}/disks/{disk}")).await?;
    Ok(ctx.ok(&node))
}

#[utoipa::path(get, path = "/api/vms/{id}/disks/{d}/statistics", operation_id = "list_vm_disk_statistics",
    tag = "vm devices", summary = "List a vm disk's statistics",
    description = "Bytes read and written per second while the qube runs.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"), ("d" = String, Path, description = "The disk's id")),
    responses((status = 200, response = schema::Statistics), (status = 404, response = NotFound),
        (status = 500, response = ServerError)))]
async fn disk_statistics(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, disk)): Path<(String, String)>,
) -> ApiResult<Response> {
    disk_statistics_reply(&ctx, &rest, vm_disk(&rest.service, &id, &disk)?, &format!("vms/{id}/disks"), None).await
}

#[utoipa::path(get, path = "/api/vms/{id}/disks/{d}/statistics/{sid}", operation_id = "get_vm_disk_statistic",
    tag = "vm devices", summary = "Get a vm disk's statistic",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"), ("d" = String, Path, description = "The disk's id"),
        ("sid" = String, Path, description = "The statistic's id")),
    responses((status = 200, response = schema::Statistic), (status = 404, response = NotFound),
        (status = 500, response = ServerError)))]
async fn disk_statistic(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, disk, sid)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let disk = vm_disk(&rest.service, &id, &disk)?;
    disk_statistics_reply(&ctx, &rest, disk, &format!("vms/{id}/disks"), Some(&sid)).await
}

/// A new disk: a further volume `disk<N>` of the qube in the storage domain the body names. Floating disks do
/// not exist here (every volume belongs to one qube), so attaching an existing disk or a disk snapshot by id is
/// refused. The vm must be down: its devices are fixed when it starts, there is no hot-plug.
#[utoipa::path(post, path = "/api/vms/{id}/disks", operation_id = "add_vm_disk", tag = "vm devices",
    summary = "Add a disk to a vm",
    description = "Creates a new empty disk (a raw image on virtio) in a data storage domain as a further \
        volume `disk<N>` of the qube (the guest's `vd` device after `vdd`, `disk1` = `vde`). Its `alias` (or \
        `name`, the same in oVirt 3) is kept as given: a line of text up to 255 characters, which other disks may \
        share; without one it is `<vm>-disk<N>`, which given chooses `N`. Required: `storage_domains/storage_domain` and `provisioned_size` (or `size`). `sparse` true (the default) \
        makes a thin image, false allocates all of it (409 when the domain has not that much free space). `format` \
        raw, or oVirt's thin `cow`, which is answered as what it is, a sparse raw image (`cow` with `sparse` false \
        is 400). `bootable` true makes it the disk the vm boots from when it has no kernel (a vm with a kernel boots \
        the kernel; a run-once boot order's `hd` means this disk); a vm has one: 409 while another disk is. The vm \
        must be down. Attaching an existing disk by id is refused: every disk belongs to its vm. 201 with \
        `Location` on `Expect: 201-created`, else 202 with a complete `creation_status`.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid")),
    request_body(description = "A `<disk>`",
        content((schema::Disk = "application/xml"), (schema::Disk = "application/json"))),
    responses((status = 201, response = schema::Disk), (status = 202, response = schema::Disk),
        (status = 400, response = BadRequest), (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 500, response = ServerError)))]
async fn add_disk(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>, body: Bytes) -> ApiResult<Response> {
    let d = find(&rest.service, &id)?;
    let body = ctx.body(&body, "disk")?;
    if let Some(existing) = body.attr_of("id") {
        let owner = super::storage::find_disk(&rest.service.view(&crate::principal()), existing);
        let (owner, _) = owner.ok_or_else(|| ApiError::not_found(&format!("disk {existing}")))?;
        let why = if owner.uuid == d.uuid { "it is attached to it already" } else { "it belongs to another vm" };
        return Err(ApiError::conflict(format!(
            "Cannot attach disk {existing} to {}: {why}; every disk is a volume of one vm (there are no floating \
             disks), so add a new disk instead",
            d.name
        )));
    }
    let new = super::storage::new_disk(&rest.service.view(&crate::principal()), &d, &body)?;
    let added = ask_with(&rest.service, Request::VolumeAdd { vm: d.name.clone(), disk: new }, |e| {
        // The storage cannot make what was asked (a preallocated disk larger than the free space): the request
        // conflicts with the storage domain's state, it is not a server failure.
        if e.kind == corral_core::ErrorKind::Failed(Failure::Storage) {
            ApiError::conflict(e.message)
        } else {
            ApiError::from(e)
        }
    });
    let name = match added.await? {
        corral_service::Response::Text(name) => name,
        other => return Err(unexpected(&other)),
    };
    let disk = disk_id(&d, &name);
    let (d, v) = vm_disk(&rest.service, &id, &disk)?;
    let href = format!("/vms/{id}/disks/{disk}");
    let node = disk_at(ctx.clone(), rest.service.clone(), d, v, href.clone()).await?;
    Ok(created(&ctx, node, &href, true))
}

#[utoipa::path(put, path = "/api/vms/{id}/disks/{d}", operation_id = "update_vm_disk", tag = "vm devices",
    summary = "Update a vm's disk",
    description = "As `PUT /api/disks/{id}`: a larger size grows the volume, `bootable` chooses the boot disk, \
        `alias` (or `name`) renames a further disk.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("d" = String, Path, description = "The disk's id")),
    request_body(description = "A `<disk>`",
        content((schema::Disk = "application/xml"), (schema::Disk = "application/json"))),
    responses((status = 200, response = schema::Disk), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn update_disk(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, disk)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let (d, v) = vm_disk(&rest.service, &id, &disk)?;
    super::storage::update_disk_of(&ctx, rest.service.clone(), &d, &v, &body).await?;
    let (d, v) = vm_disk(&rest.service, &id, &disk)?;
    let node = disk_at(ctx.clone(), rest.service.clone(), d, v, format!("/vms/{id}/disks/{disk}")).await?;
    Ok(ctx.ok(&node))
}

#[utoipa::path(delete, path = "/api/vms/{id}/disks/{d}", operation_id = "remove_vm_disk", tag = "vm devices",
    summary = "Remove a vm's disk",
    description = "Removes a disk added to the vm (`disk<N>`) with its data; the vm must be down. The disks its \
        class gives it (root, private, volatile) go only with the vm (409). Detaching is refused (409): there are \
        no floating disks to keep a detached one.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("d" = String, Path, description = "The disk's id")),
    request_body(description = "Optional: `<action><detach>true</detach></action>`",
        content((Option<schema::Action> = "application/xml"), (Option<schema::Action> = "application/json"))),
    responses((status = 204, description = "Removed"), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn remove_disk(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, disk)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let (d, v) = vm_disk(&rest.service, &id, &disk)?;
    let detach = match optional_body(&ctx, &body, &["action"])? {
        Some(action) => body_flag(&action, "detach")?.unwrap_or(false),
        None => false,
    };
    let why = if detach {
        Some("disks cannot be detached: every disk is a volume of one vm, there are no floating disks to keep it")
    } else if corral_core::volume::extra_disk_index(&v.name).is_none() {
        Some("the qube's class gives it this volume, which goes only with the qube: remove the vm instead")
    } else {
        None
    };
    if let Some(why) = why {
        return Err(ApiError::conflict(format!("Cannot remove the {} volume of {}: {why}", v.name, d.name)));
    }
    remove_added_disk(&rest, &d, &v).await
}

/// Removes disk `v` that was added to vm `d`, with its data (the service logs it): what both addresses
/// of a disk answer to `DELETE`.
pub(crate) async fn remove_added_disk(
    rest: &Arc<Rest>,
    d: &Domain,
    v: &corral_core::volume::Volume,
) -> ApiResult<Response> {
    ask(&rest.service, Request::VolumeRemove { vm: d.name.clone(), volume: v.name.clone() }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------------------
// Nics

fn nic_id(d: &Domain) -> String {
    stable_id(&format!("nic/{}/{NIC_NAME}", d.uuid))
}

/// The qube's network card under `base` (`/vms/{id}` or `/templates/{id}`), if it has one: behind its netvm
/// (then on the libvirt network `default`) or directly on a libvirt network.
pub fn nic_node(ctx: &Ctx, app: &View, d: &Domain, base: &str, networks: &Networks) -> Option<Node> {
    let network = app.nic_network(d)?;
    let description = match app.vm_prop(d, "netvm").filter(|n| !n.is_empty()) {
        Some(netvm) => format!("Network through {netvm}"),
        None => format!("On the libvirt network {network}"),
    };
    let id = nic_id(d);
    let nic = Node::new("nic")
        .attr("href", ctx.href(&format!("{base}/nics/{id}")))
        .attr("id", &id)
        .with_leaf("name", d.nic_name())
        .with_leaf("description", description)
        .child(owner_ref(ctx, d, base))
        .child(reference(ctx, "network", "networks", &networks.id_of(&network)))
        .with_leaf("interface", "virtio")
        .child(Node::new("mac").attr("address", corral_service::bridge_mac(d)))
        .with_leaf("plugged", "true")
        .with_leaf("linked", "true")
        .child(
            Node::new("link").attr("href", ctx.href(&format!("{base}/nics/{id}/statistics"))).attr("rel", "statistics"),
        );
    Some(nic)
}

/// The `<statistics>` of qube `d`'s card under `/vms/{vm}`: bytes moved per second and errors since it
/// started, while it runs; 0 while it is halted.
async fn nic_statistics_node(ctx: &Ctx, service: Arc<Service>, d: &Domain, vm: &str) -> ApiResult<Node> {
    let rates = match ask(&service, Request::VmNicRates { vm: d.name.clone() }).await? {
        corral_service::Response::NicRates(rates) => rates,
        other => return Err(unexpected(&other)),
    };
    // Bytes are shown as rates, errors as the counts themselves.
    let (rx, tx, rx_errors, tx_errors) = rates
        .map_or((0.0, 0.0, 0, 0), |r| (r.rx_per_second, r.tx_per_second, r.counters.rx_errors, r.counters.tx_errors));
    let errors = |name, description, n: u64| -> common::Stat { (name, description, n.to_string(), "NONE", false) };
    let stats = [
        common::per_second("data.current.rx", "Receive data rate", rx),
        common::per_second("data.current.tx", "Transmit data rate", tx),
        errors("errors.total.rx", "Total received errors", rx_errors),
        errors("errors.total.tx", "Total transmitted errors", tx_errors),
    ];
    let mut out = common::statistics(ctx, "nic", &format!("vms/{vm}/nics"), &nic_id(d), &stats);
    out.children = out
        .children
        .into_iter()
        .map(|s| if s.text_of("name").is_some_and(|n| n.starts_with("errors.")) { common::as_counter(s) } else { s })
        .collect();
    Ok(out)
}

#[utoipa::path(get, path = "/api/vms/{id}/nics/{n}/statistics", operation_id = "list_vm_nic_statistics",
    tag = "vm devices", summary = "List a vm nic's statistics",
    description = "Bytes received and sent per second, and errors since the qube started, while it runs.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"), ("n" = String, Path, description = "The nic's id")),
    responses((status = 200, response = schema::Statistics), (status = 404, response = NotFound),
        (status = 500, response = ServerError)))]
async fn nic_statistics(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, nic)): Path<(String, String)>,
) -> ApiResult<Response> {
    let d = nic_owner(&rest.service, &id, &nic)?;
    common::statistics_reply(&ctx, nic_statistics_node(&ctx, rest.service.clone(), &d, &id).await?, None)
}

#[utoipa::path(get, path = "/api/vms/{id}/nics/{n}/statistics/{sid}", operation_id = "get_vm_nic_statistic",
    tag = "vm devices", summary = "Get a vm nic's statistic",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"), ("n" = String, Path, description = "The nic's id"),
        ("sid" = String, Path, description = "The statistic's id")),
    responses((status = 200, response = schema::Statistic), (status = 404, response = NotFound),
        (status = 500, response = ServerError)))]
async fn nic_statistic(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, nic, sid)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let d = nic_owner(&rest.service, &id, &nic)?;
    common::statistics_reply(&ctx, nic_statistics_node(&ctx, rest.service.clone(), &d, &id).await?, Some(&sid))
}

/// The qube whose card `nic` is; 404 when it has none or the id is another's.
fn nic_owner(service: &Service, id: &str, nic: &str) -> ApiResult<Domain> {
    let d = find(service, id)?;
    let connected = service.view(&crate::principal()).nic_network(&d).is_some();
    if !connected || nic_id(&d) != nic {
        return Err(ApiError::not_found(&format!("nic {nic}")));
    }
    Ok(d)
}

#[utoipa::path(get, path = "/api/vms/{id}/nics", operation_id = "list_vm_nics", tag = "vm devices",
    summary = "List a vm's nics", params(("id" = String, Path, description = "The vm's id: its qube's uuid")),
    responses((status = 200, response = schema::Nics), (status = 404, response = NotFound)))]
async fn nics(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let d = find(&rest.service, &id)?;
    let out = nics_node(&ctx, &rest.service, &d, &id).await?;
    Ok(ctx.ok(&out))
}

/// The `<nics>` of vm `d` (addressed as `/vms/{id}`): the sub-collection, and what `detail=nics` puts inline.
pub(super) async fn nics_node(ctx: &Ctx, service: &Arc<Service>, d: &Domain, id: &str) -> ApiResult<Node> {
    let networks = networks(service.clone()).await?;
    let app = service.view(&crate::principal());
    let mut out = Node::collection("nics");
    if let Some(nic) = nic_node(ctx, &app, d, &format!("/vms/{id}"), &networks) {
        out.push(nic);
    }
    Ok(out)
}

async fn render_nic(ctx: &Ctx, service: &Arc<Service>, id: &str, nic: &str) -> ApiResult<Node> {
    let d = find(service, id)?;
    let networks = networks(service.clone()).await?;
    let app = service.view(&crate::principal());
    nic_node(ctx, &app, &d, &format!("/vms/{id}"), &networks)
        .filter(|n| n.attr_of("id") == Some(nic))
        .ok_or_else(|| ApiError::not_found(&format!("nic {nic}")))
}

#[utoipa::path(get, path = "/api/vms/{id}/nics/{n}", operation_id = "get_vm_nic", tag = "vm devices",
    summary = "Get a vm's nic",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("n" = String, Path, description = "The nic's id")),
    responses((status = 200, response = schema::Nic), (status = 404, response = NotFound)))]
async fn nic(ctx: Ctx, State(rest): State<Arc<Rest>>, Path((id, nic)): Path<(String, String)>) -> ApiResult<Response> {
    Ok(ctx.ok(&render_nic(&ctx, &rest.service, &id, &nic).await?))
}

/// The libvirt network a nic body names by id or name (`None`: it names none); 400 for one
/// `/api/networks` does not show.
async fn named_network(service: &Arc<Service>, body: &Node) -> ApiResult<Option<String>> {
    let Some((id, name)) = ref_of(body, "network") else { return Ok(None) };
    let networks = networks(service.clone()).await?;
    let unknown = || ApiError::bad_request("Entity not found: network");
    let by_id = id.map(|id| networks.name_of(&id).ok_or_else(unknown)).transpose()?;
    match (by_id, name) {
        (Some(by_id), Some(name)) if by_id != name => Err(unknown()),
        (Some(found), _) => Ok(Some(found)),
        (None, Some(name)) if networks.has(&name) => Ok(Some(name)),
        (None, Some(_)) => Err(unknown()),
        (None, None) => Err(ApiError::bad_request("nic [network.id|name] required")),
    }
}

/// A qube's card is one virtio card; a body asking for another model is refused.
fn check_interface(body: &Node) -> ApiResult<()> {
    if body.text_of("interface").is_some_and(|t| t != "virtio") {
        return Err(ApiError::conflict("Cannot use another card model: a qube has one virtio card"));
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/vms/{id}/nics", operation_id = "add_vm_nic", tag = "vm devices",
    summary = "Add a nic to a vm",
    description = "A qube has one nic, named as the body's `name` says (`nic1` by default: the qube's feature \
        `corral.nic-name` keeps another name); a running one gets it hot-plugged (409 where libvirt cannot). \
        Without a network, or on `default`, the nic is behind the global `default_netvm` (its `netvm`) when there \
        is one, else directly on the libvirt network `default`; any other network (by id or name) is joined \
        directly, without a netvm (the qube's feature `corral.network`). A `mac` address sets the `mac` property.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid")),
    request_body(description = "Optional: a `<nic>`",
        content((Option<schema::Nic> = "application/xml"), (Option<schema::Nic> = "application/json"))),
    responses((status = 201, response = schema::Nic), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn add_nic(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>, body: Bytes) -> ApiResult<Response> {
    let d = find(&rest.service, &id)?;
    let (network, mac, name) = match optional_body(&ctx, &body, &["nic"])? {
        Some(body) => {
            check_interface(&body)?;
            let mac = body.get("mac").and_then(|m| m.attr_of("address")).map(str::to_string);
            let name = body.given_text("name").map(str::to_string);
            (named_network(&rest.service, &body).await?, mac, name)
        }
        None => (None, None, None),
    };
    ask(&rest.service, Request::NicAdd { vm: d.name.clone(), network, mac, name }).await?;
    let node = render_nic(&ctx, &rest.service, &id, &nic_id(&d)).await?;
    Ok(created(&ctx, node, &format!("/vms/{id}/nics/{}", nic_id(&d)), false))
}

/// The card model and network are fixed; the name is the qube's feature `corral.nic-name`, the MAC address its
/// `mac` property.
#[utoipa::path(put, path = "/api/vms/{id}/nics/{n}", operation_id = "update_vm_nic", tag = "vm devices",
    summary = "Update a vm's nic",
    description = "Renames the nic (`name`; the qube's feature `corral.nic-name`, `nic1` by default) and sets its \
        MAC address; the interface and network are fixed (remove the nic and add it on another network to move it).",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("n" = String, Path, description = "The nic's id")),
    request_body(description = "A `<nic>`",
        content((schema::Nic = "application/xml"), (schema::Nic = "application/json"))),
    responses((status = 200, response = schema::Nic), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn update_nic(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, nic)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let d = nic_owner(&rest.service, &id, &nic)?;
    let body = ctx.body(&body, "nic")?;
    same_id(&body, "nic", &nic)?;
    check_interface(&body)?;
    if let Some(asked) = named_network(&rest.service, &body).await? {
        let on = rest.service.view(&crate::principal()).nic_network(&d).unwrap_or_default();
        if asked != on {
            return Err(ApiError::conflict(format!(
                "Cannot move the nic of {} to {asked} in place: remove it and add it on that network",
                d.name
            )));
        }
    }
    let name = body.given_text("name").filter(|t| *t != d.nic_name()).map(str::to_string);
    let mac = body.get("mac").and_then(|m| m.attr_of("address")).map(str::to_string);
    if name.is_some() || mac.is_some() {
        ask(&rest.service, Request::NicUpdate { vm: d.name.clone(), name, mac }).await?;
    }
    Ok(ctx.ok(&render_nic(&ctx, &rest.service, &id, &nic).await?))
}

#[utoipa::path(delete, path = "/api/vms/{id}/nics/{n}", operation_id = "remove_vm_nic", tag = "vm devices",
    summary = "Remove a vm's nic",
    description = "Disconnects the qube (a running one's card is unplugged; 409 where libvirt cannot): it \
        leaves its libvirt network and its `netvm` becomes none.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("n" = String, Path, description = "The nic's id")),
    request_body(description = "Optional: an `<action>`",
        content((Option<schema::Action> = "application/xml"), (Option<schema::Action> = "application/json"))),
    responses((status = 204, description = "Removed"), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn remove_nic(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, nic)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let d = nic_owner(&rest.service, &id, &nic)?;
    optional_body(&ctx, &body, &["action"])?;
    ask(&rest.service, Request::NicRemove { vm: d.name }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------------------
// Cdroms

/// The qube's one cdrom under `base`, holding the file recorded in its `corral.cdrom` feature.
pub fn cdrom_node(ctx: &Ctx, d: &Domain, base: &str) -> Node {
    let file = d.features.get(CDROM_FEATURE).unwrap_or_default();
    Node::new("cdrom")
        .attr("href", ctx.href(&format!("{base}/cdroms/{BLANK}")))
        .attr("id", BLANK)
        .child(Node::new("file").attr("id", file))
        .child(owner_ref(ctx, d, base))
}

fn vm_cdrom(service: &Service, id: &str, cdrom: &str) -> ApiResult<Domain> {
    let d = find(service, id)?;
    if cdrom != BLANK {
        return Err(ApiError::not_found(&format!("cdrom {cdrom}")));
    }
    Ok(d)
}

#[utoipa::path(get, path = "/api/vms/{id}/cdroms", operation_id = "list_vm_cdroms", tag = "vm devices",
    summary = "List a vm's cdroms", params(("id" = String, Path, description = "The vm's id: its qube's uuid")),
    responses((status = 200, response = schema::Cdroms), (status = 404, response = NotFound)))]
async fn cdroms(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let d = find(&rest.service, &id)?;
    let out = Node::collection("cdroms").child(cdrom_node(&ctx, &d, &format!("/vms/{id}")));
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/vms/{id}/cdroms/{c}", operation_id = "get_vm_cdrom", tag = "vm devices",
    summary = "Get a vm's cdrom",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("c" = String, Path, description = "The cdrom's id: the zero GUID")),
    responses((status = 200, response = schema::Cdrom), (status = 404, response = NotFound)))]
async fn cdrom(ctx: Ctx, State(rest): State<Arc<Rest>>, Path((id, c)): Path<(String, String)>) -> ApiResult<Response> {
    let d = vm_cdrom(&rest.service, &id, &c)?;
    Ok(ctx.ok(&cdrom_node(&ctx, &d, &format!("/vms/{id}"))))
}

#[utoipa::path(post, path = "/api/vms/{id}/cdroms", operation_id = "add_vm_cdrom", tag = "vm devices",
    summary = "Add a cdrom to a vm", description = "Refused: a qube has one cdrom; change its file instead.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid")),
    responses((status = 404, response = NotFound), (status = 409, response = Conflict)))]
async fn add_cdrom(State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    refused(find(&rest.service, &id), |d| {
        format!("{} has exactly one cdrom ({BLANK}): change its file with PUT instead", d.name)
    })
}

/// Records (or with an empty id, clears) the file the cdrom holds; with `current`, a running qube's drive
/// changes media at once too.
async fn set_cdrom_file(rest: &Rest, d: &Domain, file: String, current: bool) -> ApiResult<()> {
    ask(&rest.service, Request::CdromSet { vm: d.name.clone(), file, current }).await.map(drop)
}

#[utoipa::path(put, path = "/api/vms/{id}/cdroms/{c}", operation_id = "update_vm_cdrom", tag = "vm devices",
    summary = "Change a vm's cdrom",
    description = "Sets the ISO image the cdrom holds (a file some `file` storage domain offers; an empty id \
        ejects it) for the next start; with `;current` a running vm's drive changes media at once too (409 when it \
        was started without a cdrom).",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("c" = String, Path, description = "The cdrom's id: the zero GUID"), Current),
    request_body(description = "A `<cdrom>` with `<file id/>`",
        content((schema::Cdrom = "application/xml"), (schema::Cdrom = "application/json"))),
    responses((status = 200, response = schema::Cdrom), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn update_cdrom(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, c)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let d = vm_cdrom(&rest.service, &id, &c)?;
    let body = ctx.body(&body, "cdrom")?;
    same_id(&body, "cdrom", &c)?;
    let file = body
        .get("file")
        .map(|f| f.attr_of("id").unwrap_or_default().to_string())
        .ok_or_else(|| ApiError::bad_request("cdrom [file] required for update"))?;
    // `;current` (a bare flag or `=true`) changes a running qube's media now; otherwise at the next start.
    let current = ctx.param("current").is_some_and(|v| !v.eq_ignore_ascii_case("false"));
    set_cdrom_file(&rest, &d, file, current).await?;
    let d = find(&rest.service, &id)?;
    Ok(ctx.ok(&cdrom_node(&ctx, &d, &format!("/vms/{id}"))))
}

#[utoipa::path(delete, path = "/api/vms/{id}/cdroms/{c}", operation_id = "eject_vm_cdrom", tag = "vm devices",
    summary = "Eject a vm's cdrom",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("c" = String, Path, description = "The cdrom's id: the zero GUID")),
    request_body(description = "Optional: an `<action>`",
        content((Option<schema::Action> = "application/xml"), (Option<schema::Action> = "application/json"))),
    responses((status = 204, description = "Ejected"), (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = ServerError)))]
async fn eject_cdrom(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, c)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let d = vm_cdrom(&rest.service, &id, &c)?;
    optional_body(&ctx, &body, &["action", "cdrom"])?;
    // An ejected cdrom is empty at once in a running qube too.
    set_cdrom_file(&rest, &d, String::new(), true).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------------------
// Snapshots

fn snapshot_id(d: &Domain, revision: &str) -> String {
    stable_id(&format!("snapshot/{}/{revision}", d.uuid))
}

/// A revision of the qube's private volume as a snapshot: its id, time and the description given on add.
struct Snap {
    revision: String,
    timestamp: String,
    description: Option<String>,
}

/// The qube's private volume revisions, oldest first.
async fn revisions(service: Arc<Service>, d: &Domain) -> ApiResult<Vec<Snap>> {
    let request = Request::VolumeRevisions { vm: d.name.clone(), volume: SNAPSHOT_VOLUME.into() };
    match ask(&service, request).await? {
        corral_service::Response::Revisions(revs) => Ok(revs
            .into_iter()
            .map(|(r, description)| Snap { revision: r.id, timestamp: r.timestamp, description })
            .collect()),
        other => Err(unexpected(&other)),
    }
}

fn snapshot_node(ctx: &Ctx, d: &Domain, snap: &Snap) -> Node {
    let vm = d.uuid.to_string();
    let id = snapshot_id(d, &snap.revision);
    let base = format!("/vms/{vm}/snapshots/{id}");
    // A revision made without a description (or through the Admin API) is described by its id.
    let node = Node::new("snapshot")
        .attr("href", ctx.href(&base))
        .attr("id", &id)
        .child(common::actions(ctx, &base, &["restore"]))
        .with_leaf("description", snap.description.as_deref().unwrap_or(&snap.revision));
    common::links(ctx, node, &base, &["disks"])
        .with_leaf("type", "regular")
        // Revision times are UTC without a zone suffix.
        .with_leaf("date", format!("{}.000Z", snap.timestamp))
        .with_leaf("snapshot_status", "ok")
        .child(reference(ctx, "vm", "vms", &vm))
}

/// The qube and revision behind a snapshot id.
async fn find_snapshot(service: &Arc<Service>, id: &str, s: &str) -> ApiResult<(Domain, Snap)> {
    let d = find(service, id)?;
    let snap = revisions(service.clone(), &d)
        .await?
        .into_iter()
        .find(|snap| snapshot_id(&d, &snap.revision) == s)
        .ok_or_else(|| ApiError::not_found(&format!("snapshot {s}")))?;
    Ok((d, snap))
}

#[utoipa::path(get, path = "/api/vms/{id}/snapshots", operation_id = "list_vm_snapshots", tag = "vm devices",
    summary = "List a vm's snapshots", description = "The revisions of its private volume, oldest first.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid")),
    responses((status = 200, response = schema::Snapshots), (status = 404, response = NotFound),
        (status = 500, response = ServerError)))]
async fn snapshots(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let d = find(&rest.service, &id)?;
    let mut out = Node::collection("snapshots");
    for snap in revisions(rest.service.clone(), &d).await? {
        out.push(snapshot_node(&ctx, &d, &snap));
    }
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/vms/{id}/snapshots/{s}", operation_id = "get_vm_snapshot", tag = "vm devices",
    summary = "Get a vm's snapshot",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("s" = String, Path, description = "The snapshot's id")),
    responses((status = 200, response = schema::Snapshot), (status = 404, response = NotFound),
        (status = 500, response = ServerError)))]
async fn snapshot(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, s)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (d, snap) = find_snapshot(&rest.service, &id, &s).await?;
    Ok(ctx.ok(&snapshot_node(&ctx, &d, &snap)))
}

/// The disk a snapshot holds: the private volume as it is now (its content at the snapshot is the revision).
#[utoipa::path(get, path = "/api/vms/{id}/snapshots/{s}/disks", operation_id = "list_vm_snapshot_disks",
    tag = "vm devices", summary = "List a snapshot's disks", description = "The private volume.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("s" = String, Path, description = "The snapshot's id"), Search),
    responses((status = 200, response = schema::Disks), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 500, response = ServerError)))]
async fn snapshot_disks(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, s)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (d, _) = find_snapshot(&rest.service, &id, &s).await?;
    let owners = move |_: &View| {
        let mut d = d.clone();
        d.volumes.retain(|v| v.name == SNAPSHOT_VOLUME);
        vec![d]
    };
    let snapshots = format!("vms/{id}/snapshots");
    let href = move |_: &Domain, disk: &str| format!("/vms/{id}/disks/{disk}");
    let mut out = disk_collection(ctx.clone(), rest.service.clone(), owners, href).await?;
    for disk in &mut out.children {
        disk.push(reference(&ctx, "snapshot", &snapshots, &s));
    }
    Ok(ctx.ok(&out))
}

#[utoipa::path(post, path = "/api/vms/{id}/snapshots", operation_id = "add_vm_snapshot", tag = "vm devices",
    summary = "Take a snapshot of a vm",
    description = "Saves the private volume as a new revision; the vm must be down or suspended and keep revisions.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid")),
    request_body(description = "Optional: a `<snapshot>` with a `description` (up to 4000 characters, kept)",
        content((Option<schema::Snapshot> = "application/xml"), (Option<schema::Snapshot> = "application/json"))),
    responses((status = 201, response = schema::Snapshot), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn take_snapshot(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let d = find(&rest.service, &id)?;
    let mut description = None;
    if let Some(snapshot) = optional_body(&ctx, &body, &["snapshot"])? {
        if body_flag(&snapshot, "persist_memorystate")? == Some(true) {
            return Err(ApiError::bad_request(
                "Cannot save a vm's memory with a snapshot: a snapshot is a revision of its private volume",
            ));
        }
        description = snapshot.text_of("description").map(str::to_string);
    }
    let request = Request::VolumeSnapshot {
        vm: d.name.clone(),
        volume: SNAPSHOT_VOLUME.into(),
        description: description.clone(),
    };
    let rev = match ask(&rest.service, request).await? {
        corral_service::Response::Revision(rev) => rev,
        other => return Err(unexpected(&other)),
    };
    let href = format!("/vms/{id}/snapshots/{}", snapshot_id(&d, &rev.id));
    let node = snapshot_node(&ctx, &d, &Snap { revision: rev.id, timestamp: rev.timestamp, description });
    Ok(created(&ctx, node, &href, false))
}

#[utoipa::path(delete, path = "/api/vms/{id}/snapshots/{s}", operation_id = "remove_vm_snapshot", tag = "vm devices",
    summary = "Remove a vm's snapshot", description = "Refused: the pool drops revisions as new ones are made.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("s" = String, Path, description = "The snapshot's id")),
    responses((status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn remove_snapshot(State(rest): State<Arc<Rest>>, Path((id, s)): Path<(String, String)>) -> ApiResult<Response> {
    refused(find_snapshot(&rest.service, &id, &s).await, |(d, _)| {
        format!(
            "Cannot remove a snapshot of {}: revisions are dropped by the pool as new ones are made \
             (revisions_to_keep)",
            d.name
        )
    })
}

#[utoipa::path(post, path = "/api/vms/{id}/snapshots/{s}/restore", operation_id = "restore_vm_snapshot",
    tag = "vm devices", summary = "Restore a snapshot", description = "Reverts the private volume to the revision.",
    params(("id" = String, Path, description = "The vm's id: its qube's uuid"),
        ("s" = String, Path, description = "The snapshot's id")),
    request_body(description = "Optional: an `<action>`",
        content((Option<schema::Action> = "application/xml"), (Option<schema::Action> = "application/json"))),
    responses((status = 200, response = schema::Action), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn restore_snapshot(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, s)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let (d, snap) = find_snapshot(&rest.service, &id, &s).await?;
    let rev = snap.revision;
    optional_body(&ctx, &body, &["action"])?;
    let request = Request::VolumeRevert { vm: d.name, volume: SNAPSHOT_VOLUME.into(), revision: rev.into_bytes() };
    ask(&rest.service, request).await?;
    Ok(ctx.ok(&completed_action(&ctx, &format!("/vms/{id}/snapshots/{s}"), "restore", Vec::new())))
}
