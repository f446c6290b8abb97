//! Storage domains (the daemon's pools), their files, and floating disks (the qubes' volumes).
//!
//! Mapping:
//! - A pool is a storage domain whose id is a UUIDv5 of its name. `file` pools are `data` domains; the
//!   `linux-kernel` pool is an `iso` domain: it holds read-only boot media (kernels) listed under `/files` and
//!   no disks, which is what an ISO domain is (`image` is oVirt's Glance image provider, not local storage).
//!   Both are `localfs` storage at the pool's `dir_path`. The `master` domain is the one the global
//!   `default_pool` names (`varlibqubes` on a fresh install). `available`/`used` describe the file system
//!   holding the pool; `committed` is the provisioned size of the volumes in it.
//! - `POST /storagedomains` adds a pool: `data` makes a `file` pool, `iso` a `linux-kernel` one.
//! - A disk is one volume of one qube (root, private, volatile, and the further disks `disk<N>` added to it; the
//!   kernel is not a disk). Its id is a UUIDv5 of the qube's uuid and the volume name, its alias (also its
//!   name, as in oVirt 3) `<qube>-<volume>`, or for a further disk the name a user gave it. A volume belongs to its qube, so a disk cannot be created, attached or detached on its
//!   own (409); it can grow, and a further disk can be removed (here or under its vm).

use corral_core::error::Failure;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use corral_core::domain::Domain;
use corral_core::volume::{Driver, NewDisk, Pool, Volume};
use corral_core::ErrorKind;
use corral_service::View;
use corral_service::{Request, Service};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{self, reference, stable_id};
use super::handler::{
    ask, ask_with, blocking, body_flag, caller, collection, created, creation, optional_body, ref_of, refused, same_id,
    unexpected,
};
use crate::ctx::Ctx;
use crate::fault::{ApiError, ApiResult};
use crate::openapi::{schema, BadRequest, Conflict, NotFound, Search, ServerError};
use crate::repr::Node;
use crate::Rest;

pub fn routes() -> OpenApiRouter<Arc<Rest>> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(one, update, remove))
        .routes(routes!(files))
        .routes(routes!(file))
        .routes(routes!(domain_disks))
        .routes(routes!(creation_status))
        .routes(routes!(disks, create_disk))
        .routes(routes!(disk, update_disk, remove_disk))
        .routes(routes!(disk_statistics))
        .routes(routes!(disk_statistic))
}

/// How many storage domains the entry point's summary counts.
pub fn domain_count(rest: &Rest) -> usize {
    rest.service.view(&crate::principal()).pools().len()
}

// ---------------------------------------------------------------------------------------------------------
// Storage domains

pub fn domain_id(pool: &str) -> String {
    stable_id(&format!("storagedomain/{pool}"))
}

fn domain_type(pool: &Pool) -> &'static str {
    match pool.driver {
        Driver::File => "data",
        Driver::LinuxKernel => "iso",
    }
}

fn find_pool(service: &Service, id: &str) -> ApiResult<Pool> {
    let app = service.view(&crate::principal());
    app.pools()
        .iter()
        .find(|p| domain_id(&p.name) == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&format!("storage domain {id}")))
}

/// What a domain shows that needs the file system: (available, used) of its file system.
type Usage = Option<(u64, u64)>;

fn domain_node(ctx: &Ctx, app: &View, pool: &Pool, usage: Usage) -> Node {
    let id = domain_id(&pool.name);
    let base = format!("/storagedomains/{id}");
    let mut sd = Node::new("storage_domain").attr("href", ctx.href(&base)).attr("id", &id);
    sd = sd.with_leaf("name", &pool.name).with_leaf("description", format!("{} pool", pool.driver.name()));
    sd = common::links(ctx, sd, &base, &["files", "disks"]);
    sd = sd.with_leaf("type", domain_type(pool));
    let master = app.global_prop("default_pool").as_deref() == Some(pool.name.as_str());
    sd = sd.with_leaf("master", master.to_string());
    sd = sd.child(Node::new("storage").with_leaf("type", "localfs").with_leaf("path", &pool.dir_path));
    let (size, used) = usage.unwrap_or((0, 0));
    let committed: u64 =
        app.domains().flat_map(|d| d.volumes.iter()).filter(|v| v.pool == pool.name).map(|v| v.size).sum();
    sd = sd
        .with_leaf("available", size.saturating_sub(used).to_string())
        .with_leaf("used", used.to_string())
        .with_leaf("committed", committed.to_string())
        .with_leaf("storage_format", "v3")
        .child(Node::new("status").with_leaf("state", "active"))
        .with_leaf("storage_domain_state", "active");
    sd.child(reference(ctx, "host", "hosts", common::host_id())).child(reference(
        ctx,
        "data_center",
        "datacenters",
        common::datacenter_id(),
    ))
}

fn domain_field(app: &View, pool: &Pool, field: &str) -> Option<String> {
    Some(match field {
        "name" => pool.name.clone(),
        "id" => domain_id(&pool.name),
        "type" => domain_type(pool).into(),
        "status" => "active".into(),
        "storage.type" | "storage_type" => "localfs".into(),
        "path" | "storage.path" => pool.dir_path.clone(),
        "master" => (app.global_prop("default_pool").as_deref() == Some(pool.name.as_str())).to_string(),
        "datacenter" | "datacenter.name" => "Default".into(),
        _ => return None,
    })
}

#[utoipa::path(get, path = "/api/storagedomains", operation_id = "list_storage_domains", tag = "storage domains",
    summary = "List storage domains", params(Search),
    responses((status = 200, response = schema::StorageDomains), (status = 400, response = BadRequest)))]
async fn list(ctx: Ctx, State(rest): State<Arc<Rest>>) -> ApiResult<Response> {
    let service = rest.service.clone();
    blocking(move || {
        let app = service.view(&crate::principal());
        let pools = app
            .pools()
            .iter()
            .map(|p| Ok((p, pool_usage(&service, p)?)))
            .collect::<ApiResult<Vec<(&Pool, Usage)>>>()?;
        let out = collection(
            &ctx,
            "storage_domains",
            pools,
            |(p, _), f| domain_field(&app, p, f),
            |(p, usage)| domain_node(&ctx, &app, p, *usage),
        )?;
        Ok(ctx.ok(&out))
    })
    .await
}

/// A pool's size and usage, as the service measures them.
fn pool_usage(service: &Service, pool: &Pool) -> ApiResult<Usage> {
    match service.handle(&caller(), Request::PoolUsage { pool: pool.name.clone() })? {
        corral_service::Response::PoolUsage(usage) => Ok(usage),
        other => Err(unexpected(&other)),
    }
}

/// The bytes volume `v` of qube `d` takes on disk, as the service measures them.
fn volume_usage(service: &Service, d: &Domain, v: &Volume) -> ApiResult<u64> {
    match service.handle(&caller(), Request::VolumeUsage { vm: d.name.clone(), volume: v.name.clone() })? {
        corral_service::Response::Number(usage) => Ok(usage),
        other => Err(unexpected(&other)),
    }
}

async fn render_domain(ctx: Ctx, service: Arc<Service>, pool: Pool) -> ApiResult<Node> {
    blocking(move || {
        let usage = pool_usage(&service, &pool)?;
        let app = service.view(&crate::principal());
        Ok(domain_node(&ctx, &app, &pool, usage))
    })
    .await
}

#[utoipa::path(get, path = "/api/storagedomains/{id}", operation_id = "get_storage_domain", tag = "storage domains",
    summary = "Get a storage domain", params(("id" = String, Path, description = "The storage domain's id")),
    responses((status = 200, response = schema::StorageDomain), (status = 404, response = NotFound)))]
async fn one(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let pool = find_pool(&rest.service, &id)?;
    let node = render_domain(ctx.clone(), rest.service.clone(), pool).await?;
    Ok(ctx.ok(&node))
}

/// The pool driver a storage domain type is made with.
fn driver_for(kind: &str) -> ApiResult<Driver> {
    match kind {
        "data" => Ok(Driver::File),
        "iso" => Ok(Driver::LinuxKernel),
        other => Err(ApiError::bad_request(format!(
            "Storage domain type {other} is not supported: data (a file pool) or iso (a linux-kernel pool)"
        ))),
    }
}

#[utoipa::path(post, path = "/api/storagedomains", operation_id = "add_storage_domain", tag = "storage domains",
    summary = "Add a storage domain",
    description = "Adds a pool at a local directory: `data` makes a file pool, `iso` a linux-kernel one. 201 with \
        `Location` on `Expect: 201-created`, else 202 with a complete `creation_status`.",
    request_body(description = "A `<storage_domain>` with `name`, `type` and `storage` (`type` localfs, `path`)",
        content((schema::StorageDomain = "application/xml"), (schema::StorageDomain = "application/json"))),
    responses((status = 201, response = schema::StorageDomain), (status = 202, response = schema::StorageDomain),
        (status = 400, response = BadRequest), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn create(ctx: Ctx, State(rest): State<Arc<Rest>>, body: Bytes) -> ApiResult<Response> {
    let body = ctx.body(&body, "storage_domain")?;
    let required = |path: &str| {
        body.path(path).and_then(|n| n.text.clone()).ok_or_else(|| {
            ApiError::bad_request(format!("storage_domain [{}] required for add", path.replace('/', ".")))
        })
    };
    let name = required("name")?;
    let driver = driver_for(&required("type")?)?;
    let storage_type = required("storage/type")?;
    if storage_type != "localfs" {
        return Err(ApiError::bad_request(format!(
            "Storage type {storage_type} is not supported: pools are local directories (localfs)"
        )));
    }
    let path = required("storage/path")?;
    if let Some((hid, hname)) = ref_of(&body, "host") {
        let ours = hid.as_deref() == Some(common::host_id()) || hname.as_deref() == Some("localhost");
        if !ours {
            return Err(ApiError::bad_request("Entity not found: host"));
        }
    }
    // Pool parameters are `key=value` lines: a line break in a value would smuggle in another parameter.
    if [&name, &path].iter().any(|v| v.contains(['\n', '\r'])) {
        return Err(ApiError::bad_request("Storage domain name and path must be single lines"));
    }
    let payload = format!("name={name}\ndir_path={path}");
    ask(&rest.service, Request::PoolAdd { driver: driver.name().to_string(), config: payload.into_bytes() }).await?;
    let id = domain_id(&name);
    let pool = find_pool(&rest.service, &id)?;
    let node = render_domain(ctx.clone(), rest.service.clone(), pool).await?;
    Ok(created(&ctx, node, &format!("/storagedomains/{id}"), true))
}

#[utoipa::path(get, path = "/api/storagedomains/{id}/creation_status/{cid}",
    operation_id = "get_storage_domain_creation_status", tag = "storage domains",
    summary = "Get a storage domain's creation status",
    params(("id" = String, Path, description = "The storage domain's id"),
        ("cid" = String, Path, description = "The creation's id")),
    responses((status = 200, response = schema::Creation), (status = 404, response = NotFound)))]
async fn creation_status(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, cid)): Path<(String, String)>,
) -> ApiResult<Response> {
    find_pool(&rest.service, &id)?;
    Ok(creation(&ctx, &format!("/storagedomains/{id}"), &cid))
}

/// Only the name may change, and pool names are fixed.
#[utoipa::path(put, path = "/api/storagedomains/{id}", operation_id = "update_storage_domain", tag = "storage domains",
    summary = "Update a storage domain", description = "Nothing can change: a different name is refused.",
    params(("id" = String, Path, description = "The storage domain's id")),
    request_body(description = "A `<storage_domain>`",
        content((schema::StorageDomain = "application/xml"), (schema::StorageDomain = "application/json"))),
    responses((status = 200, response = schema::StorageDomain), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict)))]
async fn update(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>, body: Bytes) -> ApiResult<Response> {
    let pool = find_pool(&rest.service, &id)?;
    let body = ctx.body(&body, "storage_domain")?;
    same_id(&body, "storage domain", &id)?;
    if body.text_of("name").is_some_and(|n| n != pool.name) {
        return Err(ApiError::conflict("Cannot change the name of a storage domain: pool names are fixed"));
    }
    let node = render_domain(ctx.clone(), rest.service.clone(), pool).await?;
    Ok(ctx.ok(&node))
}

/// `format` and `destroy` are accepted and mean the same here: a pool that still holds volumes cannot be
/// removed, so there is no qube data to wipe or keep, and the directory itself is left in place.
#[utoipa::path(delete, path = "/api/storagedomains/{id}", operation_id = "remove_storage_domain",
    tag = "storage domains", summary = "Remove a storage domain",
    description = "Removes the pool (a pool holding volumes is refused); the directory stays. `format` and `destroy` \
        are accepted and mean the same.",
    params(("id" = String, Path, description = "The storage domain's id")),
    request_body(description = "Optional: `<storage_domain>` or `<action>`",
        content((Option<schema::Action> = "application/xml"), (Option<schema::Action> = "application/json"))),
    responses((status = 204, description = "Removed"), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn remove(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>, body: Bytes) -> ApiResult<Response> {
    let pool = find_pool(&rest.service, &id)?;
    optional_body(&ctx, &body, &["storage_domain", "action"])?;
    ask(&rest.service, Request::PoolRemove { pool: pool.name }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------------------
// Files

fn file_node(ctx: &Ctx, pool: &Pool, name: &str) -> Node {
    let sd = domain_id(&pool.name);
    let kind = match pool.driver {
        Driver::File => "iso",
        Driver::LinuxKernel => "kernel",
    };
    Node::new("file")
        .attr("href", ctx.href(&format!("/storagedomains/{sd}/files/{name}")))
        .attr("id", name)
        .with_leaf("name", name)
        .with_leaf("type", kind)
        .child(reference(ctx, "storage_domain", "storagedomains", &sd))
}

async fn pool_files(service: Arc<Service>, pool: Pool) -> ApiResult<Vec<String>> {
    match ask(&service, Request::PoolFiles { pool: pool.name }).await? {
        corral_service::Response::Names(names) => Ok(names),
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(get, path = "/api/storagedomains/{id}/files", operation_id = "list_storage_domain_files",
    tag = "storage domains", summary = "List a storage domain's files",
    params(("id" = String, Path, description = "The storage domain's id"), Search),
    responses((status = 200, response = schema::Files), (status = 400, response = BadRequest),
        (status = 404, response = NotFound)))]
async fn files(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let pool = find_pool(&rest.service, &id)?;
    let names = pool_files(rest.service.clone(), pool.clone()).await?;
    let out = collection(
        &ctx,
        "files",
        names,
        |n, f| matches!(f, "name" | "id").then(|| n.clone()),
        |n| file_node(&ctx, &pool, n),
    )?;
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/storagedomains/{id}/files/{name}", operation_id = "get_storage_domain_file",
    tag = "storage domains", summary = "Get a storage domain's file",
    params(("id" = String, Path, description = "The storage domain's id"),
        ("name" = String, Path, description = "The file's name")),
    responses((status = 200, response = schema::File), (status = 404, response = NotFound)))]
async fn file(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let pool = find_pool(&rest.service, &id)?;
    let names = pool_files(rest.service.clone(), pool.clone()).await?;
    if !names.contains(&name) {
        return Err(ApiError::not_found(&format!("file {name}")));
    }
    Ok(ctx.ok(&file_node(&ctx, &pool, &name)))
}

// ---------------------------------------------------------------------------------------------------------
// Disks

pub fn disk_id(d: &Domain, volume: &str) -> String {
    stable_id(&format!("disk/{}/{volume}", d.uuid))
}

/// A qube's volumes that are disks: the kernel is boot media, not a disk.
pub fn disk_volumes(d: &Domain) -> impl Iterator<Item = &Volume> {
    d.volumes.iter().filter(|v| v.name != "kernel")
}

/// The qube and volume behind a disk id.
pub fn find_disk(app: &View, id: &str) -> Option<(Domain, Volume)> {
    app.domains()
        .filter(|d| !d.is_admin())
        .find_map(|d| disk_volumes(d).find(|v| disk_id(d, &v.name) == id).map(|v| (d.clone(), v.clone())))
}

/// Whether qube `d` boots from volume `v` when it boots from a disk.
pub fn boots_from(d: &Domain, v: &Volume) -> bool {
    d.boot_volume().is_some_and(|b| b.name == v.name)
}

/// A volume as a disk at `href` (under `/disks` or a vm's `/disks`).
pub fn disk_node(ctx: &Ctx, app: &View, d: &Domain, v: &Volume, usage: u64, href: &str) -> Node {
    let id = disk_id(d, &v.name);
    let alias = d.disk_alias(v);
    let mut disk = Node::new("disk").attr("href", ctx.href(href)).attr("id", &id);
    disk = disk
        .with_leaf("name", &alias)
        .with_leaf("description", format!("{} volume of {}", v.name, d.name))
        .with_leaf("alias", &alias);
    disk = disk.child(reference(ctx, "vm", "vms", &d.uuid.to_string()));
    let sd = app.pool(&v.pool).map(|p| domain_id(&p.name)).unwrap_or_default();
    disk =
        disk.child(Node::collection("storage_domains").child(reference(ctx, "storage_domain", "storagedomains", &sd)));
    disk.with_leaf("size", v.size.to_string())
        .with_leaf("provisioned_size", v.size.to_string())
        .with_leaf("actual_size", usage.to_string())
        .with_leaf("type", if v.name == "root" { "system" } else { "data" })
        .child(Node::new("status").with_leaf("state", "ok"))
        .with_leaf("interface", "virtio")
        .with_leaf("format", if v.snap_on_start { "cow" } else { "raw" })
        .with_leaf("sparse", (!v.preallocated).to_string())
        .with_leaf("bootable", boots_from(d, v).to_string())
        .with_leaf("shareable", "false")
        .with_leaf("wipe_after_delete", "false")
        .with_leaf("propagate_errors", "false")
        .with_leaf("active", "true")
        .with_leaf("read_only", (!v.rw).to_string())
        .child(Node::new("link").attr("href", ctx.href(&format!("{href}/statistics"))).attr("rel", "statistics"))
}

/// The answer to a GET of a disk's statistics under `/{collection}` (or of its statistic `sid`).
pub(super) async fn disk_statistics_reply(
    ctx: &Ctx,
    rest: &Rest,
    (d, v): (Domain, Volume),
    collection: &str,
    sid: Option<&str>,
) -> ApiResult<Response> {
    let all = disk_statistics_node(ctx, rest.service.clone(), &d, &v, collection).await?;
    common::statistics_reply(ctx, all, sid)
}

/// The `<statistics>` of qube `d`'s disk for volume `v`, addressed as `/{collection}/{disk id}`: bytes read
/// and written per second while the qube runs, 0 while it is halted.
async fn disk_statistics_node(
    ctx: &Ctx,
    service: Arc<Service>,
    d: &Domain,
    v: &Volume,
    collection: &str,
) -> ApiResult<Node> {
    let rates = match ask(&service, Request::VmDiskRates { vm: d.name.clone(), volume: v.name.clone() }).await? {
        corral_service::Response::DiskRates(rates) => rates,
        other => return Err(unexpected(&other)),
    };
    let (read, write) = rates.map_or((0.0, 0.0), |r| (r.read_per_second, r.write_per_second));
    let stats = [
        common::per_second("data.current.read", "Read data rate", read),
        common::per_second("data.current.write", "Write data rate", write),
    ];
    Ok(common::statistics(ctx, "disk", collection, &disk_id(d, &v.name), &stats))
}

pub fn disk_field(d: &Domain, v: &Volume, field: &str) -> Option<String> {
    Some(match field {
        "alias" | "name" => d.disk_alias(v),
        "id" => disk_id(d, &v.name),
        "vm" | "vm.name" => d.name.clone(),
        "status" => "ok".into(),
        "size" | "provisioned_size" => v.size.to_string(),
        "format" => if v.snap_on_start { "cow" } else { "raw" }.into(),
        "bootable" => boots_from(d, v).to_string(),
        "sparse" => (!v.preallocated).to_string(),
        "storage" | "storage_domain" | "storage_domain.name" => v.pool.clone(),
        _ => return None,
    })
}

/// Reads a new disk's `<disk>` for qube `d`. Required: `storage_domains/storage_domain` (id or name) and
/// `provisioned_size` (or `size`), as oVirt requires for an image disk. A `file` pool makes raw images on virtio,
/// not shareable: thin (`sparse`, the default) or fully allocated (`sparse=false`). oVirt's thin format `cow` is
/// accepted for a thin disk and answered with the format the image really has, `raw`; `cow` with `sparse=false`
/// is refused as oVirt refuses it on file domains. `bootable` makes it the disk the qube boots from without a
/// kernel. Anything else is a 400 rather than a silently different disk. The `alias` (or the older `name`) is
/// the disk's name, any line of text; the default alias `<qube>-disk<N>` chooses the volume's number too.
/// Both given and different is a 400.
pub(super) fn new_disk(app: &View, d: &Domain, body: &Node) -> ApiResult<NewDisk> {
    let required = |what: &str| ApiError::bad_request(format!("disk [{what}] required for add"));
    let (sd_id, sd_name) = body
        .get("storage_domains")
        .and_then(|sds| ref_of(sds, "storage_domain"))
        .ok_or_else(|| required("storage_domains.storage_domain"))?;
    let pool = app
        .pools()
        .iter()
        .find(|p| sd_id.as_deref().map_or(sd_name.as_deref() == Some(p.name.as_str()), |id| domain_id(&p.name) == id))
        .ok_or_else(|| ApiError::bad_request("Entity not found: storage_domain"))?;
    if pool.driver != Driver::File {
        return Err(ApiError::bad_request(format!(
            "Storage domain {} is an iso domain: disks go in data domains",
            pool.name
        )));
    }
    let size = body.text_of("provisioned_size").or_else(|| body.text_of("size")).ok_or_else(|| required("size"))?;
    let size = size
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid disk size: {size} (bytes, more than 0)")))?;
    for (field, only) in [("interface", "virtio"), ("shareable", "false")] {
        if let Some(asked) = body.text_of(field).filter(|t| !t.trim().eq_ignore_ascii_case(only)) {
            return Err(ApiError::bad_request(format!(
                "Cannot add a disk with {field} {asked}: disks of a file storage domain are virtio images that are \
                 not shareable ({field} {only})"
            )));
        }
    }
    let sparse = body_flag(body, "sparse")?.unwrap_or(true);
    let format = body.text_of("format").map(|f| f.trim().to_ascii_lowercase());
    match format.as_deref() {
        None | Some("raw") => {}
        Some("cow") if sparse => {}
        Some("cow") => {
            return Err(ApiError::bad_request(
                "Cannot add a disk with format cow and sparse false: a thin-provisioned (cow) disk is not \
                 preallocated; ask for format raw to get a fully allocated disk",
            ))
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Cannot add a disk with format {other}: a file storage domain makes raw images (format raw, or cow \
                 for a thin disk, which is a sparse raw image)"
            )))
        }
    }
    let bootable = body_flag(body, "bootable")?.unwrap_or(false);
    if body.get("lun_storage").is_some() {
        return Err(ApiError::bad_request("Cannot add a direct LUN disk: disks are images in a storage domain"));
    }
    let alias = match (body.given_text("alias"), body.given_text("name")) {
        (Some(alias), Some(name)) if alias != name => {
            return Err(ApiError::bad_request(format!("The disk's alias {alias} and name {name} differ")))
        }
        (alias, name) => alias.or(name),
    };
    let index =
        alias.and_then(|a| a.strip_prefix(&format!("{}-", d.name))).and_then(corral_core::volume::extra_disk_index);
    let alias = if index.is_some() { None } else { alias.map(str::to_string) };
    Ok(NewDisk { pool: pool.name.clone(), size, index, bootable, preallocated: !sparse, alias })
}

/// Disks of `owners` as a collection; `href` gives each disk's address.
pub(super) async fn disk_collection(
    ctx: Ctx,
    service: Arc<Service>,
    owners: impl Fn(&View) -> Vec<Domain> + Send + 'static,
    href: impl Fn(&Domain, &str) -> String + Send + 'static,
) -> ApiResult<Node> {
    blocking(move || {
        let app = service.view(&crate::principal());
        let owners = owners(&app);
        let vols = owners
            .iter()
            .flat_map(|d| disk_volumes(d).map(move |v| (d, v)))
            .map(|(d, v)| Ok((d, v, volume_usage(&service, d, v)?)))
            .collect::<ApiResult<Vec<(&Domain, &Volume, u64)>>>()?;
        collection(
            &ctx,
            "disks",
            vols,
            |(d, v, _), f| disk_field(d, v, f),
            |(d, v, usage)| disk_node(&ctx, &app, d, v, *usage, &href(d, &disk_id(d, &v.name))),
        )
    })
    .await
}

/// One disk rendered at `href`.
pub(super) async fn disk_at(ctx: Ctx, service: Arc<Service>, d: Domain, v: Volume, href: String) -> ApiResult<Node> {
    blocking(move || {
        let usage = volume_usage(&service, &d, &v)?;
        let app = service.view(&crate::principal());
        Ok(disk_node(&ctx, &app, &d, &v, usage, &href))
    })
    .await
}

fn floating_href(_: &Domain, id: &str) -> String {
    format!("/disks/{id}")
}

fn vms_of(app: &View) -> Vec<Domain> {
    app.domains().filter(|d| !d.is_admin()).cloned().collect()
}

#[utoipa::path(get, path = "/api/disks", operation_id = "list_disks", tag = "disks", summary = "List disks",
    description = "Every volume of every qube but dom0.", params(Search),
    responses((status = 200, response = schema::Disks), (status = 400, response = BadRequest)))]
async fn disks(ctx: Ctx, State(rest): State<Arc<Rest>>) -> ApiResult<Response> {
    let out = disk_collection(ctx.clone(), rest.service.clone(), vms_of, floating_href).await?;
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/storagedomains/{id}/disks", operation_id = "list_storage_domain_disks",
    tag = "storage domains", summary = "List a storage domain's disks",
    params(("id" = String, Path, description = "The storage domain's id"), Search),
    responses((status = 200, response = schema::Disks), (status = 400, response = BadRequest),
        (status = 404, response = NotFound)))]
async fn domain_disks(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let pool = find_pool(&rest.service, &id)?;
    let in_pool = move |app: &View| {
        app.domains()
            .filter(|d| !d.is_admin())
            .map(|d| {
                let mut d = d.clone();
                d.volumes.retain(|v| v.pool == pool.name);
                d
            })
            .collect()
    };
    let out = disk_collection(ctx.clone(), rest.service.clone(), in_pool, floating_href).await?;
    Ok(ctx.ok(&out))
}

fn floating(service: &Service, id: &str) -> ApiResult<(Domain, Volume)> {
    find_disk(&service.view(&crate::principal()), id).ok_or_else(|| ApiError::not_found(&format!("disk {id}")))
}

#[utoipa::path(get, path = "/api/disks/{id}", operation_id = "get_disk", tag = "disks", summary = "Get a disk",
    params(("id" = String, Path, description = "The disk's id")),
    responses((status = 200, response = schema::Disk), (status = 404, response = NotFound)))]
async fn disk(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let (d, v) = floating(&rest.service, &id)?;
    let node = disk_at(ctx.clone(), rest.service.clone(), d, v, format!("/disks/{id}")).await?;
    Ok(ctx.ok(&node))
}

/// Floating disks do not exist in the Qubes model: every volume belongs to one qube.
#[utoipa::path(post, path = "/api/disks", operation_id = "add_disk", tag = "disks", summary = "Add a disk",
    description = "Refused: every disk is a volume of one vm; add it under the vm.",
    responses((status = 409, response = Conflict)))]
async fn create_disk() -> ApiError {
    ApiError::conflict(
        "Cannot add a disk on its own: every disk is a volume of one vm (there are no floating disks); add it to \
         its vm with POST /api/vms/{id}/disks instead",
    )
}

#[utoipa::path(delete, path = "/api/disks/{id}", operation_id = "remove_disk", tag = "disks", summary = "Remove a disk",
    description = "Removes a disk added to a vm (`disk<N>`) with its data, as `DELETE /api/vms/{vm}/disks/{id}`; \
        the vm must be down. The volumes a qube's class gives it go only with the qube (409).",
    params(("id" = String, Path, description = "The disk's id")),
    responses((status = 204, description = "Removed"), (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 500, response = ServerError)))]
async fn remove_disk(State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let (d, v) = floating(&rest.service, &id)?;
    if corral_core::volume::extra_disk_index(&v.name).is_none() {
        return refused(Ok((d, v)), |(d, v)| {
            format!(
                "Cannot remove the {} volume of {}: volumes a qube's class gives it go with the qube; remove the vm \
                 instead",
                v.name, d.name
            )
        });
    }
    super::devices::remove_added_disk(&rest, &d, &v).await
}

#[utoipa::path(get, path = "/api/disks/{id}/statistics", operation_id = "list_disk_statistics", tag = "disks",
    summary = "List a disk's statistics", description = "Bytes read and written per second while its qube runs.",
    params(("id" = String, Path, description = "The disk's id")),
    responses((status = 200, response = schema::Statistics), (status = 404, response = NotFound),
        (status = 500, response = ServerError)))]
async fn disk_statistics(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    disk_statistics_reply(&ctx, &rest, floating(&rest.service, &id)?, "disks", None).await
}

#[utoipa::path(get, path = "/api/disks/{id}/statistics/{sid}", operation_id = "get_disk_statistic", tag = "disks",
    summary = "Get a disk statistic",
    params(("id" = String, Path, description = "The disk's id"), ("sid" = String, Path, description = "The statistic's id")),
    responses((status = 200, response = schema::Statistic), (status = 404, response = NotFound),
        (status = 500, response = ServerError)))]
async fn disk_statistic(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, sid)): Path<(String, String)>,
) -> ApiResult<Response> {
    disk_statistics_reply(&ctx, &rest, floating(&rest.service, &id)?, "disks", Some(&sid)).await
}

/// A disk PUT: the size may grow (a volume resize), a further disk may be renamed, the boot disk chosen; the
/// disk's kind is fixed by the qube.
pub(super) async fn update_disk_of(
    ctx: &Ctx,
    service: Arc<Service>,
    d: &Domain,
    v: &Volume,
    body: &[u8],
) -> ApiResult<()> {
    let body = ctx.body(body, "disk")?;
    same_id(&body, "disk", &disk_id(d, &v.name))?;
    let fixed = [
        ("interface", "virtio".to_string()),
        ("shareable", "false".to_string()),
        ("sparse", (!v.preallocated).to_string()),
    ];
    if let Some((field, _)) = fixed.iter().find(|(f, now)| body.text_of(f).is_some_and(|t| t != now)) {
        return Err(ApiError::conflict(format!(
            "Cannot change the {field} of a disk: it is fixed by the {} volume of qube {}",
            v.name, d.name
        )));
    }
    // The SDK sends back both alias and name of the disk it read, one of them changed: that one is the new name.
    let current = d.disk_alias(v);
    let renamed: Vec<&str> =
        ["alias", "name"].iter().filter_map(|f| body.given_text(f)).filter(|t| *t != current).collect();
    let alias = match renamed[..] {
        [] => None,
        [one] => Some(one.to_string()),
        [alias, name] if alias == name => Some(alias.to_string()),
        _ => {
            return Err(ApiError::bad_request(format!(
                "The disk's new alias {} and name {} differ",
                renamed[0], renamed[1]
            )))
        }
    };
    if alias.is_some() && corral_core::volume::extra_disk_index(&v.name).is_none() {
        return Err(ApiError::conflict(format!(
            "Cannot rename the {} volume of {}: the volumes a qube's class gives it are named after the qube",
            v.name, d.name
        )));
    }
    let bootable = body_flag(&body, "bootable")?;
    let size = body.text_of("provisioned_size").or_else(|| body.text_of("size")).map(str::to_string);
    if bootable.is_none() && size.is_none() && alias.is_none() {
        return Ok(());
    }
    let size = size
        .map(|s| corral_core::text::validate_number(s.as_bytes().trim_ascii(), "volume size", false))
        .transpose()?;
    let request = Request::VolumeUpdate {
        vm: d.name.clone(),
        volume: v.name.clone(),
        // validate_number without allow_negative never returns a negative value.
        size: size.map(|s| u64::try_from(s).unwrap_or_default()),
        bootable,
        alias,
    };
    ask_with(&service, request, |e| {
        // The storage refuses what the request asks of this volume (shrinking it, growing a read-only or
        // template-based one): the request conflicts with the volume, it is not a server failure.
        if e.kind == ErrorKind::Failed(Failure::Storage) {
            ApiError::conflict(e.message)
        } else {
            ApiError::from(e)
        }
    })
    .await
    .map(drop)
}

#[utoipa::path(put, path = "/api/disks/{id}", operation_id = "update_disk", tag = "disks", summary = "Update a disk",
    description = "A larger `provisioned_size` (or `size`) grows the volume (a preallocated one stays fully allocated); \
        `bootable` true makes a further disk the one the vm boots from when it has no kernel (409 while another is), \
        false gives that back to the root volume. A new `alias` (or `name`, the same in oVirt 3: the one of the two \
        that differs from the disk's) renames a further disk: a line of text up to 255 characters (400 otherwise); \
        the volumes of the vm's class keep `<vm>-<volume>` (409). The interface, shareable and sparse are fixed \
        (409), as is what the storage refuses (shrinking, more than the free space for a preallocated disk).",
    params(("id" = String, Path, description = "The disk's id")),
    request_body(description = "A `<disk>`",
        content((schema::Disk = "application/xml"), (schema::Disk = "application/json"))),
    responses((status = 200, response = schema::Disk), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn update_disk(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let (d, v) = floating(&rest.service, &id)?;
    update_disk_of(&ctx, rest.service.clone(), &d, &v, &body).await?;
    let (d, v) = floating(&rest.service, &id)?;
    let node = disk_at(ctx.clone(), rest.service.clone(), d, v, format!("/disks/{id}")).await?;
    Ok(ctx.ok(&node))
}
