//! The host, the `Default` cluster and data center, capabilities, and networks.
//!
//! They describe the one daemon and its machine, so they are read-only. Writes that RHEV allows (adding a
//! host, editing a data center or cluster, a network) answer **409** with a fault saying the object is
//! read-only on this engine: the request is valid RHEV, this engine refuses it, as for an immutable field.
//! Capabilities are read-only in RHEV too; writes there get **405** with a fault.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use corral_core::hv::NetworkDef;
use corral_core::hv::NetworkDetails as NetworkInfo;
use corral_service::Request;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::common::{self, reference, Stat};
use super::handler::{
    action_params, ask, blocking, body_flag, collection, completed_action, created, optional_body, ref_of, refused,
    unexpected,
};
use crate::ctx::Ctx;
use crate::fault::{ApiError, ApiResult};
use crate::openapi::{schema, BadRequest, Conflict, NotFound, Search, ServerError};
use crate::repr::Node;
use crate::Rest;

pub fn routes() -> OpenApiRouter<Arc<Rest>> {
    OpenApiRouter::default()
        .routes(routes!(capabilities).map(|r| r.fallback(not_allowed)))
        .routes(routes!(capability).map(|r| r.fallback(not_allowed)))
        .routes(routes!(hosts, refuse_host_write))
        .routes(routes!(host, update_host, remove_host))
        .routes(routes!(host_statistics))
        .routes(routes!(host_statistic))
        .routes(routes!(host_action))
        .routes(routes!(datacenters, refuse_datacenter_write))
        .routes(routes!(datacenter, update_datacenter, remove_datacenter))
        .routes(routes!(clusters, refuse_cluster_write))
        .routes(routes!(cluster, update_cluster, remove_cluster))
        .routes(routes!(cluster_networks, cluster_network_add))
        .routes(routes!(cluster_network, update_cluster_network, remove_cluster_network))
        .routes(routes!(networks, add_network))
        .routes(routes!(network, update_network, remove_network))
}

/// The compatibility level this engine speaks: RHEV 3.3.
const VERSION: (&str, &str) = ("3", "3");
/// The capability version's id, as oVirt spells it: the bytes of "3.3" at the front of a GUID.
const VERSION_ID: &str = "332e3300-0000-0000-0000-000000000000";
/// No `<cpu>` element in the domain XML: QEMU's default CPU model, so the cluster's CPU type is that.
const CLUSTER_CPU: &str = "qemu64";
/// The host's actions; `refresh` and a `manual`/`status` fence are all that make sense for the local machine.
const HOST_ACTIONS: [&str; 2] = ["refresh", "fence"];

fn read_only(what: &str) -> String {
    format!("The {what} is read-only on this engine: it describes this daemon and its machine")
}

/// The host, the data center and the cluster: one of each, which describes this daemon, so it is read-only.
#[derive(Clone, Copy)]
struct Fixed {
    what: &'static str,
    id: fn() -> &'static str,
}

const HOST: Fixed = Fixed { what: "host", id: common::host_id };
const DATACENTER: Fixed = Fixed { what: "data center", id: common::datacenter_id };
const CLUSTER: Fixed = Fixed { what: "cluster", id: common::cluster_id };

impl Fixed {
    /// 404 unless `id` is the one object's.
    fn check(self, id: &str) -> ApiResult<()> {
        if id == (self.id)() {
            Ok(())
        } else {
            Err(ApiError::not_found(&format!("{} {id}", self.what)))
        }
    }

    /// `POST` to the collection.
    fn refuse_add(self) -> ApiError {
        ApiError::conflict(read_only(&format!("{} list", self.what)))
    }

    /// `PUT` or `DELETE` of the object `id`.
    fn refuse_write(self, id: &str) -> ApiResult<Response> {
        refused(self.check(id), |()| read_only(self.what))
    }
}

async fn not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Operation Failed", "Capabilities are read-only")
}

fn version_node(name: &'static str) -> Node {
    Node::new(name).attr("major", VERSION.0).attr("minor", VERSION.1)
}

fn supported_versions() -> Node {
    Node::collection("supported_versions").child(version_node("version"))
}

// ---------------------------------------------------------------------------------------------------------
// Capabilities

/// `(list, item, values)`: the enumerations of what this engine really produces or accepts.
const ENUMERATIONS: [(&str, &str, &[&str]); 25] = [
    ("vm_types", "vm_type", &["server"]),
    ("vm_states", "vm_state", &["unknown", "down", "up", "powering_up", "paused", "suspended", "powering_down"]),
    ("host_states", "host_state", &["up", "down"]),
    ("host_non_operational_details", "host_non_operational_detail", &["none"]),
    ("network_states", "network_state", &["operational", "non_operational"]),
    ("data_center_states", "data_center_state", &["up"]),
    ("storage_types", "storage_type", &["localfs"]),
    ("storage_domain_types", "storage_domain_type", &["data"]),
    ("storage_formats", "storage_format", &["v3"]),
    ("disk_formats", "disk_format", &["raw", "cow"]),
    ("disk_interfaces", "disk_interface", &["virtio"]),
    ("disk_states", "disk_state", &["ok"]),
    ("template_states", "template_state", &["ok"]),
    ("nic_interfaces", "nic_interface", &["virtio"]),
    ("boot_devices", "boot_device", &["hd"]),
    ("display_types", "display_type", &["vnc"]),
    ("os_types", "os_type", &["unassigned", "other", "other_linux"]),
    ("fence_types", "fence_type", &["manual", "status"]),
    ("power_management_states", "power_management_state", &["on", "off", "unknown"]),
    ("creation_states", "creation_state", &["complete"]),
    ("action_states", "action_state", &["complete", "failed"]),
    ("usages", "usage", &["vm"]),
    ("error_handling", "on_error", &["do_not_migrate"]),
    ("scheduling_policies", "policy", &["none"]),
    ("vm_affinities", "vm_affinity", &["pinned"]),
];

/// What a client can rely on beyond the enumerations.
const FEATURES: [(&str, &str); 2] = [
    ("Persistent authentication", "Sessions with Prefer: persistent-auth and the JSESSIONID cookie"),
    ("JSON representation", "Accept: application/json gives every resource as JSON"),
];

fn capability_version(ctx: &Ctx) -> Node {
    let mut v = version_node("version")
        .attr("href", ctx.href(&format!("/capabilities/{VERSION_ID}")))
        .attr("id", VERSION_ID)
        .with_leaf("current", "true");
    let mut features = Node::collection("features");
    for (name, description) in FEATURES {
        features.push(Node::new("feature").with_leaf("name", name).with_leaf("description", description));
    }
    v.push(features);
    v.push(Node::collection("cpus").child(Node::new("cpu").attr("id", CLUSTER_CPU).with_leaf("level", "0")));
    v.push(Node::collection("power_managers"));
    for (list, item, values) in ENUMERATIONS {
        let mut l = Node::collection(list);
        for value in values {
            l.push(Node::leaf(item, *value));
        }
        v.push(l);
    }
    v
}

#[utoipa::path(get, path = "/api/capabilities", operation_id = "list_capabilities", tag = "capabilities",
    summary = "List capabilities",
    description = "The one compatibility level (3.3) and what it supports. Writes answer 405.",
    responses((status = 200, response = schema::Capabilities)))]
async fn capabilities(ctx: Ctx) -> Response {
    ctx.ok(&Node::collection("capabilities").child(capability_version(&ctx)))
}

#[utoipa::path(get, path = "/api/capabilities/{id}", operation_id = "get_capability", tag = "capabilities",
    summary = "Get a capability version", params(("id" = String, Path, description = "The version's id")),
    responses((status = 200, response = schema::CapabilityVersion), (status = 404, response = NotFound)))]
async fn capability(ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    if id != VERSION_ID {
        return Err(ApiError::not_found(&format!("capabilities version {id}")));
    }
    Ok(ctx.ok(&capability_version(&ctx)))
}

// ---------------------------------------------------------------------------------------------------------
// The host

/// The CPU as /proc/cpuinfo describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CpuInfo {
    name: String,
    /// MHz.
    speed: u64,
    sockets: u64,
    /// Per socket.
    cores: u64,
    /// Per core.
    threads: u64,
}

fn cpuinfo_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let (k, v) = line.split_once(':')?;
    (k.trim() == key).then(|| v.trim())
}

fn parse_cpuinfo(text: &str) -> CpuInfo {
    let first = |key: &str| text.lines().find_map(|l| cpuinfo_value(l, key));
    let logical = text.lines().filter(|l| cpuinfo_value(l, "processor").is_some()).count().max(1) as u64;
    let mut packages: Vec<&str> = text.lines().filter_map(|l| cpuinfo_value(l, "physical id")).collect();
    packages.sort_unstable();
    packages.dedup();
    let sockets = (packages.len() as u64).max(1);
    let number = |key: &str| first(key).and_then(|v| v.parse::<u64>().ok()).filter(|n| *n > 0);
    let cores = number("cpu cores").unwrap_or((logical / sockets).max(1));
    let siblings = number("siblings").unwrap_or(cores);
    CpuInfo {
        // ARM kernels have no model name; the processor line names the core there.
        name: first("model name").or_else(|| first("Processor")).unwrap_or("unknown").to_string(),
        speed: first("cpu MHz").and_then(|v| v.parse::<f64>().ok()).map_or(0, |mhz| mhz.round() as u64),
        sockets,
        cores,
        threads: (siblings / cores).max(1),
    }
}

/// `key: value kB` lines of /proc/meminfo, in bytes.
fn meminfo(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k == key).then(|| v.split_whitespace().next()?.parse::<u64>().ok()).flatten()
        })
        .unwrap_or(0)
        * 1024
}

/// The machine's facts that need I/O: /proc, /etc and libvirt.
struct HostFacts {
    /// Whether qubes can run: there is a hypervisor connection.
    up: bool,
    cpu: CpuInfo,
    hostname: String,
    libvirt: Option<u32>,
    os: (String, String),
    hugepages: bool,
    ksm: bool,
}

fn os_release() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (field("NAME"), field("VERSION_ID"))
}

fn host_facts(rest: &Rest) -> ApiResult<HostFacts> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let hostname = read("/proc/sys/kernel/hostname").trim().to_string();
    let (up, libvirt) = hypervisor(rest)?;
    Ok(HostFacts {
        up,
        cpu: parse_cpuinfo(&read("/proc/cpuinfo")),
        hostname: if hostname.is_empty() { "localhost".into() } else { hostname },
        libvirt,
        os: os_release(),
        // `always [madvise] never`: the bracketed word is the setting.
        hugepages: read("/sys/kernel/mm/transparent_hugepage/enabled").contains("[always]"),
        ksm: read("/sys/kernel/mm/ksm/run").trim() == "1",
    })
}

/// Whether there is a hypervisor connection, and its version. Blocks on libvirt.
fn hypervisor(rest: &Rest) -> ApiResult<(bool, Option<u32>)> {
    match rest.service.handle(&crate::principal(), Request::HypervisorInfo)? {
        corral_service::Response::Hypervisor { connected, version } => Ok((connected, version)),
        other => Err(unexpected(&other)),
    }
}

fn enabled(name: &'static str, on: bool) -> Node {
    Node::new(name).with_leaf("enabled", on.to_string())
}

/// A version number split as RHEV shows it (`major.minor.build`).
fn version_parts(name: &'static str, major: u64, minor: u64, build: u64, full: String) -> Node {
    Node::new(name)
        .attr("major", major.to_string())
        .attr("minor", minor.to_string())
        .attr("build", build.to_string())
        .attr("revision", "0")
        .attr("full_version", full)
}

fn host_node(ctx: &Ctx, rest: &Rest, facts: &HostFacts) -> Node {
    let id = common::host_id();
    let base = format!("/hosts/{id}");
    let (total, active, memory) = {
        let app = rest.service.view(&crate::principal());
        let (total, active) = common::vm_counts(&app);
        (total, active, app.host().memory_mib * 1024 * 1024)
    };
    let state = if facts.up { "up" } else { "down" };
    let mut host = Node::new("host").attr("href", ctx.href(&base)).attr("id", id);
    host.push(common::actions(ctx, &base, &HOST_ACTIONS));
    host = host.with_leaf("name", "localhost").with_leaf("description", "The machine this daemon runs on");
    host = common::links(ctx, host, &base, &["statistics"]);
    host = host.with_leaf("address", &facts.hostname).with_leaf("type", "rhel");
    host.push(Node::new("status").with_leaf("state", state));
    host.push(reference(ctx, "cluster", "clusters", common::cluster_id()));
    host.push(Node::new("power_management").attr("type", "").with_leaf("enabled", "false"));
    host.push(enabled("ksm", facts.ksm));
    host.push(enabled("transparent_hugepages", facts.hugepages));
    host.push(
        Node::new("cpu").with_leaf("name", &facts.cpu.name).with_leaf("speed", facts.cpu.speed.to_string()).child(
            Node::new("topology")
                .attr("sockets", facts.cpu.sockets.to_string())
                .attr("cores", facts.cpu.cores.to_string())
                .attr("threads", facts.cpu.threads.to_string()),
        ),
    );
    host = host.with_leaf("memory", memory.to_string());
    host.push(
        Node::new("summary")
            .with_leaf("active", active.to_string())
            .with_leaf("migrating", "0")
            .with_leaf("total", total.to_string()),
    );
    let own: Vec<u64> = env!("CARGO_PKG_VERSION").split('.').map(|p| p.parse().unwrap_or(0)).collect();
    let part = |i: usize| own.get(i).copied().unwrap_or(0);
    host.push(version_parts("version", part(0), part(1), part(2), format!("corral-{}", env!("CARGO_PKG_VERSION"))));
    if let Some(v) = facts.libvirt {
        let (major, minor, release) = (u64::from(v / 1_000_000), u64::from(v / 1_000 % 1_000), u64::from(v % 1_000));
        host.push(version_parts(
            "libvirt_version",
            major,
            minor,
            release,
            format!("libvirt-{major}.{minor}.{release}"),
        ));
    }
    host.push(Node::new("os").attr("type", &facts.os.0).child(Node::new("version").attr("full_version", &facts.os.1)));
    host
}

fn host_field(facts: &HostFacts, field: &str) -> Option<String> {
    Some(match field {
        "name" => "localhost".into(),
        "id" => common::host_id().into(),
        "status" => if facts.up { "up" } else { "down" }.into(),
        "address" => facts.hostname.clone(),
        "type" => "rhel".into(),
        "cluster" | "cluster.name" => "Default".into(),
        "datacenter" | "datacenter.name" => "Default".into(),
        _ => return None,
    })
}

#[utoipa::path(get, path = "/api/hosts", operation_id = "list_hosts", tag = "hosts", summary = "List hosts",
    params(Search), responses((status = 200, response = schema::Hosts), (status = 400, response = BadRequest)))]
async fn hosts(ctx: Ctx, State(rest): State<Arc<Rest>>) -> ApiResult<Response> {
    let facts = {
        let rest = rest.clone();
        blocking(move || host_facts(&rest)).await?
    };
    let mut out =
        collection(&ctx, "hosts", vec![()], |_, f| host_field(&facts, f), |_| host_node(&ctx, &rest, &facts))?;
    for host in &mut out.children {
        with_statistics(&ctx, host).await;
    }
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/hosts/{id}", operation_id = "get_host", tag = "hosts", summary = "Get the host",
    params(("id" = String, Path, description = "The host's id")),
    responses((status = 200, response = schema::Host), (status = 404, response = NotFound)))]
async fn host(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    HOST.check(&id)?;
    let facts = {
        let rest = rest.clone();
        blocking(move || host_facts(&rest)).await?
    };
    let mut node = host_node(&ctx, &rest, &facts);
    with_statistics(&ctx, &mut node).await;
    Ok(ctx.ok(&node))
}

/// `Accept: …; detail=statistics` puts the host's statistics inline.
async fn with_statistics(ctx: &Ctx, host: &mut Node) {
    if ctx.detail("statistics") {
        host.push(common::statistics(ctx, "host", "hosts", common::host_id(), &host_stats().await));
    }
}

#[utoipa::path(post, path = "/api/hosts", operation_id = "add_host", tag = "hosts", summary = "Add a host",
    description = "Refused: the host is the machine the daemon runs on.",
    responses((status = 409, response = Conflict)))]
async fn refuse_host_write() -> ApiError {
    HOST.refuse_add()
}

#[utoipa::path(put, path = "/api/hosts/{id}", operation_id = "update_host", tag = "hosts", summary = "Update the host",
    description = "Refused: the host is read-only.", params(("id" = String, Path, description = "The host's id")),
    responses((status = 404, response = NotFound), (status = 409, response = Conflict)))]
async fn update_host(id: Path<String>) -> ApiResult<Response> {
    HOST.refuse_write(&id)
}

#[utoipa::path(delete, path = "/api/hosts/{id}", operation_id = "remove_host", tag = "hosts",
    summary = "Remove the host", description = "Refused: the host is read-only.",
    params(("id" = String, Path, description = "The host's id")),
    responses((status = 404, response = NotFound), (status = 409, response = Conflict)))]
async fn remove_host(id: Path<String>) -> ApiResult<Response> {
    HOST.refuse_write(&id)
}

/// `manual` (confirm the host rebooted) and `status` are the fence types that mean something for the
/// machine the daemon itself runs on; it cannot power itself off or on.
#[utoipa::path(post, path = "/api/hosts/{id}/{action}", operation_id = "host_action", tag = "hosts",
    summary = "Run a host action",
    description = "`refresh`, or `fence` with `<fence_type>` `manual` (confirm a reboot) or `status`; other fence \
        types are refused (409): the daemon cannot power its own machine.",
    params(("id" = String, Path, description = "The host's id"),
        ("action" = String, Path, description = "`refresh` or `fence`")),
    request_body(description = "Optional: the `<action>` parameters",
        content((Option<schema::Action> = "application/xml"), (Option<schema::Action> = "application/json"))),
    responses((status = 200, response = schema::Action), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict)))]
async fn host_action(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    HOST.check(&id)?;
    if !HOST_ACTIONS.contains(&action.as_str()) {
        return Err(ApiError::not_found(&format!("action {action}")));
    }
    let params = action_params(&ctx, &body)?;
    let mut extra = Vec::new();
    if action == "fence" {
        match params.text_of("fence_type").unwrap_or_default() {
            "manual" => {}
            "status" => {
                let rest = rest.clone();
                let (up, _) = blocking(move || hypervisor(&rest)).await?;
                let state = if up { "on" } else { "unknown" };
                extra.push(Node::new("power_management").child(Node::new("status").with_leaf("state", state)));
            }
            other => {
                return Err(ApiError::conflict(format!(
                    "Fence type '{other}' is not supported on this engine: the host is the daemon's own machine"
                )))
            }
        }
    }
    Ok(ctx.ok(&completed_action(&ctx, &format!("/hosts/{id}"), &action, extra)))
}

// ---------------------------------------------------------------------------------------------------------
// Host statistics

/// Jiffies from the `cpu` line of /proc/stat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CpuTimes {
    user: u64,
    system: u64,
    idle: u64,
    /// The `ksmd` kernel thread's user + system time.
    ksm: u64,
}

impl CpuTimes {
    fn total(self) -> u64 {
        self.user + self.system + self.idle
    }
}

fn parse_stat(text: &str) -> CpuTimes {
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else { return CpuTimes::default() };
    let v: Vec<u64> = line.split_whitespace().skip(1).map(|n| n.parse().unwrap_or(0)).collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal: nice counts as user, iowait as idle, irq and steal as system.
    CpuTimes { user: at(0) + at(1), system: at(2) + at(5) + at(6) + at(7), idle: at(3) + at(4), ksm: 0 }
}

/// utime + stime of a `/proc/<pid>/stat` line (fields 14 and 15, counted after the parenthesised name).
fn parse_task_times(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The pid of the `ksmd` kernel thread, found once; `None` without KSM.
fn ksmd_pid() -> Option<u32> {
    static PID: std::sync::LazyLock<Option<u32>> = std::sync::LazyLock::new(|| {
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == "ksmd").then_some(pid)
        })
    });
    *PID
}

/// (user, system, idle, ksm) in percent of all CPUs between two samples.
fn cpu_percent(before: CpuTimes, after: CpuTimes) -> (f64, f64, f64, f64) {
    let total = after.total().saturating_sub(before.total());
    if total == 0 {
        return (0.0, 0.0, 100.0, 0.0);
    }
    let pct = |a: u64, b: u64| (a.saturating_sub(b)) as f64 * 100.0 / total as f64;
    (
        pct(after.user, before.user),
        pct(after.system, before.system),
        pct(after.idle, before.idle),
        pct(after.ksm, before.ksm),
    )
}

/// The previous sample: "current" CPU use is the average since the last statistics request.
static LAST_CPU: std::sync::Mutex<Option<(Instant, CpuTimes)>> = std::sync::Mutex::new(None);

/// Shorter windows than this are too coarse in jiffies to mean anything.
const MIN_WINDOW: Duration = Duration::from_millis(100);

async fn cpu_current() -> (f64, f64, f64, f64) {
    let sample = || {
        let ksm = ksmd_pid()
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
            .and_then(|stat| parse_task_times(&stat))
            .unwrap_or(0);
        CpuTimes { ksm, ..parse_stat(&std::fs::read_to_string("/proc/stat").unwrap_or_default()) }
    };
    let previous = *LAST_CPU.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let before = match previous {
        Some((at, times)) if at.elapsed() >= MIN_WINDOW => times,
        Some((at, times)) => {
            tokio::time::sleep(MIN_WINDOW.saturating_sub(at.elapsed())).await;
            times
        }
        None => {
            let times = sample();
            tokio::time::sleep(MIN_WINDOW).await;
            times
        }
    };
    let now = sample();
    *LAST_CPU.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), now));
    cpu_percent(before, now)
}

async fn host_stats() -> Vec<Stat> {
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let (user, system, idle, ksm) = cpu_current().await;
    let m = |k: &str| meminfo(&mem, k);
    let (total, free, buffers, cached) = (m("MemTotal"), m("MemFree"), m("Buffers"), m("Cached"));
    let (swap_total, swap_free) = (m("SwapTotal"), m("SwapFree"));
    let bytes = |name, description, v: u64| -> Stat { (name, description, v.to_string(), "BYTES", false) };
    let percent = |name, description, v: f64| -> Stat { (name, description, format!("{v:.2}"), "PERCENT", true) };
    vec![
        bytes("memory.total", "Total memory", total),
        bytes("memory.used", "Used memory", total.saturating_sub(free + buffers + cached)),
        bytes("memory.free", "Free memory", free),
        bytes("memory.buffers", "I/O buffers", buffers),
        bytes("memory.cached", "OS caches", cached),
        bytes("swap.total", "Total swap", swap_total),
        bytes("swap.free", "Free swap", swap_free),
        bytes("swap.used", "Used swap", swap_total.saturating_sub(swap_free)),
        bytes("swap.cached", "Swap also cached in memory", m("SwapCached")),
        percent("ksm.cpu.current", "KSM CPU usage", ksm),
        percent("cpu.current.user", "User CPU usage", user),
        percent("cpu.current.system", "System CPU usage", system),
        percent("cpu.current.idle", "Idle CPU usage", idle),
        (
            "cpu.load.avg.5m",
            "CPU 5 minute load average",
            load.split_whitespace().nth(1).unwrap_or("0").to_string(),
            "NONE",
            true,
        ),
    ]
}

#[utoipa::path(get, path = "/api/hosts/{id}/statistics", operation_id = "list_host_statistics", tag = "hosts",
    summary = "List the host's statistics", description = "Memory, swap, KSM and CPU use, and the load average.",
    params(("id" = String, Path, description = "The host's id")),
    responses((status = 200, response = schema::Statistics), (status = 404, response = NotFound)))]
async fn host_statistics(ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    HOST.check(&id)?;
    Ok(ctx.ok(&common::statistics(&ctx, "host", "hosts", &id, &host_stats().await)))
}

#[utoipa::path(get, path = "/api/hosts/{id}/statistics/{sid}", operation_id = "get_host_statistic", tag = "hosts",
    summary = "Get a host statistic",
    params(("id" = String, Path, description = "The host's id"),
        ("sid" = String, Path, description = "The statistic's id")),
    responses((status = 200, response = schema::Statistic), (status = 404, response = NotFound)))]
async fn host_statistic(ctx: Ctx, Path((id, sid)): Path<(String, String)>) -> ApiResult<Response> {
    HOST.check(&id)?;
    let stats = host_stats().await;
    let s = stats
        .iter()
        .find(|s| common::statistic_id(&id, s.0) == sid)
        .ok_or_else(|| ApiError::not_found(&format!("statistic {sid}")))?;
    Ok(ctx.ok(&common::statistic(&ctx, "host", "hosts", &id, s)))
}

// ---------------------------------------------------------------------------------------------------------
// Data center and cluster

fn datacenter_node(ctx: &Ctx) -> Node {
    let id = common::datacenter_id();
    Node::new("data_center")
        .attr("href", ctx.href(&format!("/datacenters/{id}")))
        .attr("id", id)
        .with_leaf("name", "Default")
        .with_leaf("description", "The data center of this daemon")
        .with_leaf("storage_type", "localfs")
        .with_leaf("storage_format", "v3")
        .child(version_node("version"))
        .child(supported_versions())
        .child(Node::new("status").with_leaf("state", "up"))
}

fn datacenter_field(field: &str) -> Option<String> {
    Some(match field {
        "name" => "Default".into(),
        "id" => common::datacenter_id().into(),
        "status" => "up".into(),
        "storage_type" | "type" => "localfs".into(),
        _ => return None,
    })
}

#[utoipa::path(get, path = "/api/datacenters", operation_id = "list_datacenters", tag = "data centers",
    summary = "List data centers", params(Search),
    responses((status = 200, response = schema::DataCenters), (status = 400, response = BadRequest)))]
async fn datacenters(ctx: Ctx) -> ApiResult<Response> {
    let out = collection(&ctx, "data_centers", vec![()], |_, f| datacenter_field(f), |_| datacenter_node(&ctx))?;
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/datacenters/{id}", operation_id = "get_datacenter", tag = "data centers",
    summary = "Get the data center", params(("id" = String, Path, description = "The data center's id")),
    responses((status = 200, response = schema::DataCenter), (status = 404, response = NotFound)))]
async fn datacenter(ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    DATACENTER.check(&id)?;
    Ok(ctx.ok(&datacenter_node(&ctx)))
}

#[utoipa::path(post, path = "/api/datacenters", operation_id = "add_datacenter", tag = "data centers",
    summary = "Add a data center", description = "Refused: there is one data center.",
    responses((status = 409, response = Conflict)))]
async fn refuse_datacenter_write() -> ApiError {
    DATACENTER.refuse_add()
}

#[utoipa::path(put, path = "/api/datacenters/{id}", operation_id = "update_datacenter", tag = "data centers",
    summary = "Update the data center", description = "Refused: the data center is read-only.",
    params(("id" = String, Path, description = "The data center's id")),
    responses((status = 404, response = NotFound), (status = 409, response = Conflict)))]
async fn update_datacenter(id: Path<String>) -> ApiResult<Response> {
    DATACENTER.refuse_write(&id)
}

#[utoipa::path(delete, path = "/api/datacenters/{id}", operation_id = "remove_datacenter", tag = "data centers",
    summary = "Remove the data center", description = "Refused: the data center is read-only.",
    params(("id" = String, Path, description = "The data center's id")),
    responses((status = 404, response = NotFound), (status = 409, response = Conflict)))]
async fn remove_datacenter(id: Path<String>) -> ApiResult<Response> {
    DATACENTER.refuse_write(&id)
}

fn cluster_node(ctx: &Ctx) -> Node {
    let id = common::cluster_id();
    let base = format!("/clusters/{id}");
    let hugepages =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default().contains("[always]");
    let mut c = Node::new("cluster")
        .attr("href", ctx.href(&base))
        .attr("id", id)
        .with_leaf("name", "Default")
        .with_leaf("description", "The cluster of this daemon's one host");
    c = common::links(ctx, c, &base, &["networks"]);
    c.child(Node::new("cpu").attr("id", CLUSTER_CPU))
        .child(reference(ctx, "data_center", "datacenters", common::datacenter_id()))
        .child(
            Node::new("memory_policy")
                .child(Node::new("overcommit").attr("percent", "100"))
                .child(enabled("transparent_hugepages", hugepages)),
        )
        .child(Node::new("scheduling_policy").with_leaf("policy", "none"))
        .child(version_node("version"))
        .child(supported_versions())
        .child(Node::new("error_handling").with_leaf("on_error", "do_not_migrate"))
        .with_leaf("virt_service", "true")
        .with_leaf("gluster_service", "false")
        .with_leaf("threads_as_cores", "false")
        .with_leaf("tunnel_migration", "false")
        .with_leaf("trusted_service", "false")
        .with_leaf("ballooning_enabled", "false")
}

fn cluster_field(field: &str) -> Option<String> {
    Some(match field {
        "name" => "Default".into(),
        "id" => common::cluster_id().into(),
        "datacenter" | "datacenter.name" | "data_center" => "Default".into(),
        "cpu" | "cpu.id" => CLUSTER_CPU.into(),
        _ => return None,
    })
}

#[utoipa::path(get, path = "/api/clusters", operation_id = "list_clusters", tag = "clusters", summary = "List clusters",
    params(Search), responses((status = 200, response = schema::Clusters), (status = 400, response = BadRequest)))]
async fn clusters(ctx: Ctx) -> ApiResult<Response> {
    let out = collection(&ctx, "clusters", vec![()], |_, f| cluster_field(f), |_| cluster_node(&ctx))?;
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/clusters/{id}", operation_id = "get_cluster", tag = "clusters",
    summary = "Get the cluster", params(("id" = String, Path, description = "The cluster's id")),
    responses((status = 200, response = schema::Cluster), (status = 404, response = NotFound)))]
async fn cluster(ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    CLUSTER.check(&id)?;
    Ok(ctx.ok(&cluster_node(&ctx)))
}

#[utoipa::path(post, path = "/api/clusters", operation_id = "add_cluster", tag = "clusters", summary = "Add a cluster",
    description = "Refused: there is one cluster.", responses((status = 409, response = Conflict)))]
async fn refuse_cluster_write() -> ApiError {
    CLUSTER.refuse_add()
}

#[utoipa::path(put, path = "/api/clusters/{id}", operation_id = "update_cluster", tag = "clusters",
    summary = "Update the cluster", description = "Refused: the cluster is read-only.",
    params(("id" = String, Path, description = "The cluster's id")),
    responses((status = 404, response = NotFound), (status = 409, response = Conflict)))]
async fn update_cluster(id: Path<String>) -> ApiResult<Response> {
    CLUSTER.refuse_write(&id)
}

#[utoipa::path(delete, path = "/api/clusters/{id}", operation_id = "remove_cluster", tag = "clusters",
    summary = "Remove the cluster", description = "Refused: the cluster is read-only.",
    params(("id" = String, Path, description = "The cluster's id")),
    responses((status = 404, response = NotFound), (status = 409, response = Conflict)))]
async fn remove_cluster(id: Path<String>) -> ApiResult<Response> {
    CLUSTER.refuse_write(&id)
}

// ---------------------------------------------------------------------------------------------------------
// Networks: the libvirt networks of the daemon's connection

async fn list_networks(rest: &Arc<Rest>) -> ApiResult<Vec<NetworkInfo>> {
    match ask(&rest.service, Request::NetworkList).await? {
        corral_service::Response::Networks(networks) => Ok(networks),
        other => Err(unexpected(&other)),
    }
}

async fn find_network(rest: &Arc<Rest>, id: &str) -> ApiResult<NetworkInfo> {
    list_networks(rest)
        .await?
        .into_iter()
        .find(|n| n.uuid.to_string() == id)
        .ok_or_else(|| ApiError::not_found(&format!("network {id}")))
}

fn network_node(ctx: &Ctx, n: &NetworkInfo, cluster: bool) -> Node {
    let id = n.uuid.to_string();
    let href =
        if cluster { format!("/clusters/{}/networks/{id}", common::cluster_id()) } else { format!("/networks/{id}") };
    let mut node = Node::new("network")
        .attr("href", ctx.href(&href))
        .attr("id", id)
        .with_leaf("name", &n.name)
        .with_leaf("description", format!("libvirt network {}", n.name))
        .child(reference(ctx, "data_center", "datacenters", common::datacenter_id()))
        .with_leaf("stp", "false")
        .child(Node::new("status").with_leaf("state", if n.active { "operational" } else { "non_operational" }))
        .child(Node::collection("usages").child(Node::leaf("usage", "vm")))
        .with_leaf("display", "false");
    if cluster {
        node = node.child(reference(ctx, "cluster", "clusters", common::cluster_id())).with_leaf("required", "false");
    }
    node
}

fn network_field(n: &NetworkInfo, field: &str) -> Option<String> {
    Some(match field {
        "name" => n.name.clone(),
        "id" => n.uuid.to_string(),
        "status" => if n.active { "operational" } else { "non_operational" }.into(),
        "datacenter" | "datacenter.name" => "Default".into(),
        _ => return None,
    })
}

async fn network_list(ctx: &Ctx, rest: &Arc<Rest>, cluster: bool) -> ApiResult<Response> {
    let all = list_networks(rest).await?;
    let out = collection(ctx, "networks", all, network_field, |n| network_node(ctx, n, cluster))?;
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/networks", operation_id = "list_networks", tag = "networks", summary = "List networks",
    description = "The libvirt networks of the daemon's connection (500 without a hypervisor).", params(Search),
    responses((status = 200, response = schema::Networks), (status = 400, response = BadRequest),
        (status = 500, response = ServerError)))]
async fn networks(ctx: Ctx, State(rest): State<Arc<Rest>>) -> ApiResult<Response> {
    network_list(&ctx, &rest, false).await
}

#[utoipa::path(get, path = "/api/networks/{id}", operation_id = "get_network", tag = "networks",
    summary = "Get a network", params(("id" = String, Path, description = "The network's id: its libvirt uuid")),
    responses((status = 200, response = schema::Network), (status = 404, response = NotFound),
        (status = 500, response = ServerError)))]
async fn network(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let n = find_network(&rest, &id).await?;
    Ok(ctx.ok(&network_node(&ctx, &n, false)))
}

/// What a `<network>` body asks for: `name` and `data_center` (the Default one) required; `stp`, `mtu`
/// and `ip address= netmask=` optional. VLANs need a host bridge this engine does not manage.
fn network_def(body: &Node) -> ApiResult<NetworkDef> {
    let name = body.text_of("name").ok_or_else(|| ApiError::bad_request("network [name] required for add"))?;
    let (dc_id, dc_name) =
        ref_of(body, "data_center").ok_or_else(|| ApiError::bad_request("network [data_center] required for add"))?;
    if !(dc_id.as_deref() == Some(common::datacenter_id()) || dc_name.as_deref() == Some("Default")) {
        return Err(ApiError::bad_request("Entity not found: data center"));
    }
    if body.get("vlan").is_some() {
        return Err(ApiError::bad_request(
            "VLAN networks need a host bridge: this engine makes isolated networks only",
        ));
    }
    let mtu = match body.text_of("mtu") {
        None => None,
        Some(m) => Some(m.trim().parse::<u32>().map_err(|_| ApiError::bad_request(format!("Invalid mtu: {m}")))?),
    };
    let address = match body.get("ip") {
        None => None,
        Some(ip) => {
            let parse = |what: &str| -> ApiResult<std::net::Ipv4Addr> {
                let v = ip.attr_of(what).or_else(|| ip.text_of(what)).unwrap_or_default();
                v.parse().map_err(|_| ApiError::bad_request(format!("Invalid ip {what}: {v:?} (IPv4)")))
            };
            Some((parse("address")?, parse("netmask")?))
        }
    };
    Ok(NetworkDef { name: name.to_string(), stp: body_flag(body, "stp")?.unwrap_or(false), mtu, address })
}

#[utoipa::path(post, path = "/api/networks", operation_id = "add_network", tag = "networks", summary = "Add a network",
    description = "Defines, starts and autostarts an isolated libvirt network (a bridge of its own, no forwarding) \
        in the Default data center: `name` and `data_center` required, `stp`, `mtu` and `ip` (the host's address \
        and netmask) optional; `vlan` is refused.",
    request_body(description = "A `<network>`",
        content((schema::Network = "application/xml"), (schema::Network = "application/json"))),
    responses((status = 201, response = schema::Network), (status = 400, response = BadRequest),
        (status = 500, response = ServerError)))]
async fn add_network(ctx: Ctx, State(rest): State<Arc<Rest>>, body: Bytes) -> ApiResult<Response> {
    let def = network_def(&ctx.body(&body, "network")?)?;
    let made = match ask(&rest.service, Request::NetworkDefine { def }).await? {
        corral_service::Response::Network(made) => made,
        other => return Err(unexpected(&other)),
    };
    let n = made;
    Ok(created(&ctx, network_node(&ctx, &n, false), &format!("/networks/{}", n.uuid), false))
}

async fn network_write(State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    refused(find_network(&rest, &id).await, |_| read_only("network"))
}

#[utoipa::path(put, path = "/api/networks/{id}", operation_id = "update_network", tag = "networks",
    summary = "Update a network", description = "Refused: networks are read-only.",
    params(("id" = String, Path, description = "The network's id: its libvirt uuid")),
    responses((status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn update_network(rest: State<Arc<Rest>>, id: Path<String>) -> ApiResult<Response> {
    network_write(rest, id).await
}

#[utoipa::path(delete, path = "/api/networks/{id}", operation_id = "remove_network", tag = "networks",
    summary = "Remove a network",
    description = "Stops and undefines the libvirt network; `default`, which qubes with a netvm join, is refused (409).",
    params(("id" = String, Path, description = "The network's id: its libvirt uuid")),
    request_body(description = "Optional: an `<action>`",
        content((Option<schema::Action> = "application/xml"), (Option<schema::Action> = "application/json"))),
    responses((status = 204, description = "Removed"), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn remove_network(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let n = find_network(&rest, &id).await?;
    optional_body(&ctx, &body, &["action", "network"])?;
    ask(&rest.service, Request::NetworkDestroy { network: n.uuid }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/api/clusters/{id}/networks", operation_id = "list_cluster_networks", tag = "clusters",
    summary = "List the cluster's networks", description = "Every libvirt network.",
    params(("id" = String, Path, description = "The cluster's id"), Search),
    responses((status = 200, response = schema::Networks), (status = 400, response = BadRequest),
        (status = 404, response = NotFound), (status = 500, response = ServerError)))]
async fn cluster_networks(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    CLUSTER.check(&id)?;
    network_list(&ctx, &rest, true).await
}

#[utoipa::path(get, path = "/api/clusters/{id}/networks/{nid}", operation_id = "get_cluster_network", tag = "clusters",
    summary = "Get a cluster's network",
    params(("id" = String, Path, description = "The cluster's id"),
        ("nid" = String, Path, description = "The network's id: its libvirt uuid")),
    responses((status = 200, response = schema::Network), (status = 404, response = NotFound),
        (status = 500, response = ServerError)))]
async fn cluster_network(
    ctx: Ctx,
    State(rest): State<Arc<Rest>>,
    Path((id, nid)): Path<(String, String)>,
) -> ApiResult<Response> {
    CLUSTER.check(&id)?;
    let n = find_network(&rest, &nid).await?;
    Ok(ctx.ok(&network_node(&ctx, &n, true)))
}

/// Every libvirt network is already in the one cluster.
#[utoipa::path(post, path = "/api/clusters/{id}/networks", operation_id = "add_cluster_network", tag = "clusters",
    summary = "Add a network to the cluster", description = "Refused: every libvirt network is already in the cluster.",
    params(("id" = String, Path, description = "The cluster's id")),
    responses((status = 404, response = NotFound), (status = 409, response = Conflict)))]
async fn cluster_network_add(Path(id): Path<String>) -> ApiResult<Response> {
    refused(CLUSTER.check(&id), |()| read_only("cluster's network list"))
}

async fn cluster_network_write(
    State(rest): State<Arc<Rest>>,
    Path((id, nid)): Path<(String, String)>,
) -> ApiResult<Response> {
    CLUSTER.check(&id)?;
    refused(find_network(&rest, &nid).await, |_| read_only("cluster's network"))
}

#[utoipa::path(put, path = "/api/clusters/{id}/networks/{nid}", operation_id = "update_cluster_network",
    tag = "clusters", summary = "Update a cluster's network", description = "Refused: networks are read-only.",
    params(("id" = String, Path, description = "The cluster's id"),
        ("nid" = String, Path, description = "The network's id: its libvirt uuid")),
    responses((status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn update_cluster_network(rest: State<Arc<Rest>>, ids: Path<(String, String)>) -> ApiResult<Response> {
    cluster_network_write(rest, ids).await
}

#[utoipa::path(delete, path = "/api/clusters/{id}/networks/{nid}", operation_id = "remove_cluster_network",
    tag = "clusters", summary = "Remove a network from the cluster", description = "Refused: networks are read-only.",
    params(("id" = String, Path, description = "The cluster's id"),
        ("nid" = String, Path, description = "The network's id: its libvirt uuid")),
    responses((status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 500, response = ServerError)))]
async fn remove_cluster_network(rest: State<Arc<Rest>>, ids: Path<(String, String)>) -> ApiResult<Response> {
    cluster_network_write(rest, ids).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO: &str = "processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2596.124\nphysical id\t: 0\n\
                           siblings\t: 4\ncpu cores\t: 2\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\nphysical id\t: 0\n\
                           siblings\t: 4\ncpu cores\t: 2\n";

    #[test]
    fn cpuinfo_gives_name_speed_and_topology() {
        let cpu = parse_cpuinfo(CPUINFO);

        assert_eq!(cpu, CpuInfo { name: "AMD EPYC".into(), speed: 2596, sockets: 1, cores: 2, threads: 2 });
    }

    #[test]
    fn cpuinfo_without_topology_lines_counts_processors_as_cores() {
        let cpu = parse_cpuinfo("processor : 0\nprocessor : 1\nprocessor : 2\n");

        assert_eq!((cpu.name.as_str(), cpu.sockets, cpu.cores, cpu.threads), ("unknown", 1, 3, 1));
    }

    #[test]
    fn meminfo_values_are_bytes() {
        let text = "MemTotal:       16318480 kB\nMemFree:         1000 kB\n";

        assert_eq!((meminfo(text, "MemTotal"), meminfo(text, "MemFree")), (16_318_480 * 1024, 1_024_000));
    }

    #[test]
    fn cpu_percentages_come_from_the_delta_of_two_samples() {
        let before = CpuTimes { ksm: 7, ..parse_stat("cpu  100 0 50 850 0 0 0 0 0 0\n") };
        let after = CpuTimes { ksm: 12, ..parse_stat("cpu  130 10 60 900 0 0 0 0 0 0\n") };

        assert_eq!(cpu_percent(before, after), (40.0, 10.0, 50.0, 5.0));
    }

    #[test]
    fn an_empty_window_is_idle() {
        let s = parse_stat("cpu  1 2 3 4\n");

        assert_eq!(cpu_percent(s, s), (0.0, 0.0, 100.0, 0.0));
    }

    #[test]
    fn task_times_are_utime_plus_stime_even_with_spaces_in_the_name() {
        let stat = "42 (ksm d) S 2 0 0 0 -1 2129984 0 0 0 0 150 250 0 0 25 5 1 0 100 0 0";

        assert_eq!(parse_task_times(stat), Some(400));
        assert_eq!(parse_task_times("42 (x) S"), None);
    }
}
