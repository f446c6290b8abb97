//! The OpenAPI description of `/libvirt`. One handler (`entry`) answers every path and dispatches on the
//! path itself, so each operation it serves is described here by a body-less function; tests/openapi.rs
//! requests every one of them and checks that the dispatcher knows it.
// The functions only carry the operations' descriptions: nothing calls them.
#![allow(dead_code)]

use utoipa::openapi::security::SecurityRequirement;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::openapi::schema::Envelope;
use crate::openapi::{Async, LibvirtAsyncFull, LibvirtBadRequest, PayloadTooLarge};

/// The list filters of `/libvirt/domains`: each flag given must match. Booleans are virthttp's: `1`,
/// `yes`, `true` or empty for true; `0`, `no`, `false` for false.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DomainFilter {
    /// Running (or paused) qubes, or halted ones.
    #[param(required = false)]
    pub active: String,
    /// Every qube is persistent.
    #[param(required = false)]
    pub persistent: String,
    /// No qube has a managed save.
    #[param(required = false)]
    pub managed_save: String,
    /// The qube's `autostart` property.
    #[param(required = false)]
    pub autostart: String,
    /// No qube has libvirt snapshots.
    #[param(required = false)]
    pub has_snapshot: String,
    /// Comma-separated states, any of which matches: `running`, `paused`, `shutoff`, `other`.
    #[param(required = false)]
    pub state: String,
}

/// The list filters of `/libvirt/networks`, virthttp booleans: each one given must match.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NetworkFilter {
    /// Whether the network is active.
    #[param(required = false)]
    pub active: String,
    /// Whether it is persistent.
    #[param(required = false)]
    pub persistent: String,
    /// Whether it starts with libvirt.
    #[param(required = false)]
    pub autostart: String,
}

/// The leases of one MAC address only.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeaseFilter {
    /// Six colon-separated hex pairs (`52:54:00:12:34:56`); for `dhcp-leases` only.
    #[param(required = false)]
    pub mac: String,
}

/// A PATCH or DELETE on the whole list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Bulk {
    /// Must be `true`: without it the request is refused (error 3), so that a forgotten `by-name` cannot
    /// act on everything listed.
    pub bulk: String,
}

/// libvirt flags of a request, by name.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Options {
    /// Comma-separated libvirt flag names (delete: `virDomainUndefineFlagsValues`, e.g. `nvram`;
    /// `xml_desc`: `secure`, `inactive`, `update_cpu`, `migratable`; `dumpxml`: `inactive`). An unknown
    /// one is error 301.
    #[param(required = false)]
    pub options: String,
}

/// How a created domain is left.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Persistent {
    /// `true` leaves the new qube halted; by default it is started, as virthttp's create does.
    #[param(required = false)]
    pub persistent: String,
}

/// What a domain query asks for.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum DomainQuery {
    /// The domain XML.
    XmlDesc,
    /// `{type, params_count}`.
    SchedulerType,
    /// Unsupported: needs a guest agent.
    FsInfo,
    /// Unsupported: needs a guest agent.
    Hostname,
    /// Unsupported: needs a guest agent.
    Time,
    /// Unsupported: qubes run without launch security.
    LaunchSecurityInfo,
}

/// What a network query asks for.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
pub enum NetworkQuery {
    /// The network XML.
    Dumpxml,
    /// The DHCP leases it handed out (`?mac=` for one MAC address's): `{type, client-id, expiry-time,
    /// hostname, iaid, interface, ip-address, mac-address, prefix}` each.
    DhcpLeases,
}

/// List domains
///
/// Every qube (dom0 is no domain here) the filters select: `{name, uuid, id, status, os, ram, ram_max,
/// cpu}` each.
#[utoipa::path(get, path = "/libvirt/domains", tag = "libvirt domains", params(DomainFilter, Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_list_domains() {}

/// Create domains
///
/// A domain XML as a JSON string, or an array of them (an element's `depends` names earlier ones that
/// must succeed): each makes a red StandaloneVM with the XML's name, uuid, memory and vcpus, started
/// unless `?persistent=true`. Error 105 says why one failed.
#[utoipa::path(post, path = "/libvirt/domains", tag = "libvirt domains", params(Persistent, Async),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "A domain XML as a JSON string, or an array of them"),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_create_domains() {}

/// Alter every listed domain
///
/// PATCH with `?bulk=true`: the actions act on every qube the filters select. See the single domain's
/// PATCH for the actions.
#[utoipa::path(patch, path = "/libvirt/domains", tag = "libvirt domains", params(Bulk, DomainFilter, Async),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "An action or an array of actions"),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_alter_domains() {}

/// Delete every listed domain
///
/// DELETE with `?bulk=true`: removes every qube the filters select (running ones fail with error 216).
#[utoipa::path(delete, path = "/libvirt/domains", tag = "libvirt domains", params(Bulk, DomainFilter, Options, Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_delete_domains() {}

/// One domain by name
///
/// `{name, uuid, id, status, os, ram, ram_max, cpu}`; an unknown name is error 100.
#[utoipa::path(get, path = "/libvirt/domains/by-name/{name}", tag = "libvirt domains",
    params(("name" = String, Path, description = "The qube's name"), Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_domain_by_name() {}

/// One domain by uuid
///
/// As by name.
#[utoipa::path(get, path = "/libvirt/domains/by-uuid/{uuid}", tag = "libvirt domains",
    params(("uuid" = String, Path, description = "The qube's uuid"), Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_domain_by_uuid() {}

/// Alter a domain by name
///
/// An action object (only its first key counts) or an array of them, run in order (`depends` as for
/// create): `{"power_mgt": "start"}` or `{"power_mgt": {"request": R, "type": FLAGS}}` with R one of
/// `start`, `shutdown`, `destroy`, `reboot`, `reset`, `suspend`, `resume`; `{"memory": KiB}`,
/// `{"max_memory": KiB}`, `{"autostart": bool}`, `{"send_keys": {"keycode_set": SET, "hold_time": ms,
/// "keys": [1 to 16 codes]}}` (a running qube's keyboard). `name` and `send_signal` are refused.
#[utoipa::path(patch, path = "/libvirt/domains/by-name/{name}", tag = "libvirt domains",
    params(("name" = String, Path, description = "The qube's name"), Async),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "An action or an array of actions"),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_alter_domain_by_name() {}

/// Alter a domain by uuid
///
/// As by name.
#[utoipa::path(patch, path = "/libvirt/domains/by-uuid/{uuid}", tag = "libvirt domains",
    params(("uuid" = String, Path, description = "The qube's uuid"), Async),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "An action or an array of actions"),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_alter_domain_by_uuid() {}

/// Delete a domain by name
///
/// Removes the qube, as libvirt's undefine forgets a domain; a running one cannot be (error 216).
#[utoipa::path(delete, path = "/libvirt/domains/by-name/{name}", tag = "libvirt domains",
    params(("name" = String, Path, description = "The qube's name"), Options, Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_delete_domain_by_name() {}

/// Delete a domain by uuid
///
/// As by name.
#[utoipa::path(delete, path = "/libvirt/domains/by-uuid/{uuid}", tag = "libvirt domains",
    params(("uuid" = String, Path, description = "The qube's uuid"), Options, Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_delete_domain_by_uuid() {}

/// Query a domain by name
///
/// An unknown query is error 2; the guest-agent and launch-security ones answer "Unsupported".
#[utoipa::path(get, path = "/libvirt/domains/by-name/{name}/{query}", tag = "libvirt domains",
    params(("name" = String, Path, description = "The qube's name"),
        ("query" = DomainQuery, Path, description = "What to ask"), Options, Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_query_domain_by_name() {}

/// Query a domain by uuid
///
/// As by name.
#[utoipa::path(get, path = "/libvirt/domains/by-uuid/{uuid}/{query}", tag = "libvirt domains",
    params(("uuid" = String, Path, description = "The qube's uuid"),
        ("query" = DomainQuery, Path, description = "What to ask"), Options, Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_query_domain_by_uuid() {}

/// List networks
///
/// `{name, uuid, active, autostart, persistent}` per network the filters select. Without a hypervisor
/// this is error 10.
#[utoipa::path(get, path = "/libvirt/networks", tag = "libvirt networks", params(NetworkFilter, Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_list_networks() {}

/// Create networks
///
/// A network XML as a JSON string, or an array of them: each is created and started as a transient
/// network (`virNetworkCreateXML`). Error -999 says why one failed.
#[utoipa::path(post, path = "/libvirt/networks", tag = "libvirt networks", params(Async),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "A network XML as a JSON string, or an array of them"),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_create_networks() {}

/// Alter every listed network
///
/// PATCH with `?bulk=true`: the actions act on every network the filters select. See the single
/// network's PATCH.
#[utoipa::path(patch, path = "/libvirt/networks", tag = "libvirt networks", params(Bulk, NetworkFilter, Async),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "An action or an array of actions"),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_alter_networks() {}

/// Delete every listed network
///
/// DELETE with `?bulk=true`: removes every network the filters select, as for one network.
#[utoipa::path(delete, path = "/libvirt/networks", tag = "libvirt networks", params(Bulk, NetworkFilter, Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_delete_networks() {}

/// Alter a network by name
///
/// `{"autostart": bool}` (error 208 when libvirt refuses, 0 for a value that is not a boolean), or an
/// array of such actions; any other action is error 123.
#[utoipa::path(patch, path = "/libvirt/networks/by-name/{name}", tag = "libvirt networks",
    params(("name" = String, Path, description = "The network's name"), Async),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "An action or an array of actions"),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_alter_network_by_name() {}

/// Alter a network by uuid
///
/// As by name.
#[utoipa::path(patch, path = "/libvirt/networks/by-uuid/{uuid}", tag = "libvirt networks",
    params(("uuid" = String, Path, description = "The network's uuid"), Async),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "An action or an array of actions"),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_alter_network_by_uuid() {}

/// Delete a network by name
///
/// A persistent network is undefined (libvirtd lets a running one go on as a transient network); a
/// transient one is stopped, which ends it. Error -999 with libvirt's reason when it refuses.
#[utoipa::path(delete, path = "/libvirt/networks/by-name/{name}", tag = "libvirt networks",
    params(("name" = String, Path, description = "The network's name"), Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_delete_network_by_name() {}

/// Delete a network by uuid
///
/// As by name.
#[utoipa::path(delete, path = "/libvirt/networks/by-uuid/{uuid}", tag = "libvirt networks",
    params(("uuid" = String, Path, description = "The network's uuid"), Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_delete_network_by_uuid() {}

/// One network by name
///
/// As in the list, with its `bridge`.
#[utoipa::path(get, path = "/libvirt/networks/by-name/{name}", tag = "libvirt networks",
    params(("name" = String, Path, description = "The network's name"), Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_network_by_name() {}

/// One network by uuid
///
/// As by name.
#[utoipa::path(get, path = "/libvirt/networks/by-uuid/{uuid}", tag = "libvirt networks",
    params(("uuid" = String, Path, description = "The network's uuid"), Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_network_by_uuid() {}

/// Query a network by name
///
/// An unknown query is error 2.
#[utoipa::path(get, path = "/libvirt/networks/by-name/{name}/{query}", tag = "libvirt networks",
    params(("name" = String, Path, description = "The network's name"),
        ("query" = NetworkQuery, Path, description = "What to ask"), Options, LeaseFilter, Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_query_network_by_name() {}

/// Query a network by uuid
///
/// As by name.
#[utoipa::path(get, path = "/libvirt/networks/by-uuid/{uuid}/{query}", tag = "libvirt networks",
    params(("uuid" = String, Path, description = "The network's uuid"),
        ("query" = NetworkQuery, Path, description = "What to ask"), Options, LeaseFilter, Async),
    responses((status = 200, response = Envelope), (status = 400, response = LibvirtBadRequest),
        (status = 413, response = PayloadTooLarge), (status = 500, response = LibvirtAsyncFull)))]
fn libvirt_query_network_by_uuid() {}

/// The result of an async request
///
/// Taken once: the envelope is kept for 120 s after the request finished.
#[utoipa::path(get, path = "/libvirt/async/{id}", tag = "libvirt async",
    params(("id" = String, Path, description = "The id `?async=true` answered (1 to 8 hex digits)")),
    responses(
        (status = 302, description = "Done: the request's envelope", body = Envelope,
            content_type = "application/json"), (status = 202, description = "Still running (no body)"),
        (status = 404, description = "Unknown, expired or already taken (no body)"),
        (status = 400, response = LibvirtBadRequest), (status = 413, response = PayloadTooLarge)))]
fn libvirt_async_result() {}

#[derive(OpenApi)]
#[openapi(
    components(responses(Envelope), schemas(Envelope, DomainQuery, NetworkQuery)),
    paths(
        libvirt_list_domains,
        libvirt_create_domains,
        libvirt_alter_domains,
        libvirt_delete_domains,
        libvirt_domain_by_name,
        libvirt_domain_by_uuid,
        libvirt_alter_domain_by_name,
        libvirt_alter_domain_by_uuid,
        libvirt_delete_domain_by_name,
        libvirt_delete_domain_by_uuid,
        libvirt_query_domain_by_name,
        libvirt_query_domain_by_uuid,
        libvirt_list_networks,
        libvirt_create_networks,
        libvirt_alter_networks,
        libvirt_delete_networks,
        libvirt_alter_network_by_name,
        libvirt_alter_network_by_uuid,
        libvirt_delete_network_by_name,
        libvirt_delete_network_by_uuid,
        libvirt_network_by_name,
        libvirt_network_by_uuid,
        libvirt_query_network_by_name,
        libvirt_query_network_by_uuid,
        libvirt_async_result
    )
)]
struct Doc;

/// The `/libvirt` operations. They take virthttp's credentials (`X-Auth-Username` and `X-Auth-Key`),
/// HTTP Basic, or a service key (reads and power actions), never the `/api` session cookie.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Doc::openapi();
    let security = vec![
        SecurityRequirement::new("x_auth_username", Vec::<String>::new()).add("x_auth_key", Vec::<String>::new()),
        SecurityRequirement::new("basic", Vec::<String>::new()),
        SecurityRequirement::new("x_auth_user_service_key", Vec::<String>::new()),
    ];
    for item in doc.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.post, &mut item.patch, &mut item.delete];
        for op in operations.into_iter().flatten() {
            op.security = Some(security.clone());
        }
    }
    doc
}
