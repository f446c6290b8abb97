//! Pieces every RHEV resource uses: fixed ids, times, states, references, and the vm representation.

use std::sync::LazyLock;

use corral_core::domain::{Class, Domain};
use corral_core::hv::PowerState;
use corral_service::View;
use uuid::Uuid;

use crate::ctx::Ctx;
use crate::fault::{ApiError, ApiResult};
use crate::repr::Node;

/// The Blank template and the root tag: the zero GUID.
pub const BLANK: &str = "00000000-0000-0000-0000-000000000000";

/// A GUID that stays the same for the same `what` across calls and restarts (UUIDv5).
pub fn stable_id(what: &str) -> String {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("corral:{what}").as_bytes()).to_string()
}

/// This daemon is one host in one `Default` cluster of one `Default` data center. Their ids go into
/// every vm, so they are hashed once.
pub fn host_id() -> &'static str {
    static ID: LazyLock<String> = LazyLock::new(|| stable_id("host"));
    &ID
}
pub fn cluster_id() -> &'static str {
    static ID: LazyLock<String> = LazyLock::new(|| stable_id("cluster/Default"));
    &ID
}
pub fn datacenter_id() -> &'static str {
    static ID: LazyLock<String> = LazyLock::new(|| stable_id("datacenter/Default"));
    &ID
}

/// A statistic's id: stable per (owner, name).
pub fn statistic_id(owner: &str, name: &str) -> String {
    stable_id(&format!("statistic/{owner}/{name}"))
}

/// A gauge: (name, description, value, unit, whether the value is a decimal).
pub type Stat = (&'static str, &'static str, String, &'static str, bool);

/// The gauge `stat` of the `kind` at `/{collection}/{owner}`.
pub fn statistic(ctx: &Ctx, kind: &'static str, collection: &str, owner: &str, stat: &Stat) -> Node {
    let (name, description, value, unit, decimal) = stat;
    let id = statistic_id(owner, name);
    Node::new("statistic")
        .attr("href", ctx.href(&format!("/{collection}/{owner}/statistics/{id}")))
        .attr("id", id)
        .with_leaf("name", *name)
        .with_leaf("description", *description)
        .child(
            Node::new("values")
                .attr("type", if *decimal { "DECIMAL" } else { "INTEGER" })
                .child(Node::new("value").with_leaf("datum", value.clone())),
        )
        .with_leaf("type", "GAUGE")
        .with_leaf("unit", *unit)
        .child(reference(ctx, kind, collection, owner))
}

/// A statistic that counts since the device started (RHEV's COUNTER) rather than a gauge.
pub fn as_counter(mut stat: Node) -> Node {
    if let Some(t) = stat.children.iter_mut().find(|c| c.name == "type") {
        t.text = Some("COUNTER".into());
    }
    stat
}

/// A `<statistics>` collection, or its statistic `sid` when one is asked for (404 when it has none of that
/// id).
pub fn statistics_reply(ctx: &Ctx, all: Node, sid: Option<&str>) -> ApiResult<axum::response::Response> {
    let Some(sid) = sid else { return Ok(ctx.ok(&all)) };
    let one = all.children.into_iter().find(|s| s.attr_of("id") == Some(sid));
    Ok(ctx.ok(&one.ok_or_else(|| ApiError::not_found(&format!("statistic {sid}")))?))
}

/// A rate in bytes per second as a decimal gauge.
pub fn per_second(name: &'static str, description: &'static str, rate: f64) -> Stat {
    (name, description, format!("{rate:.2}"), "BYTES_PER_SECOND", true)
}

/// The `<statistics>` of the `kind` at `/{collection}/{owner}`.
pub fn statistics(ctx: &Ctx, kind: &'static str, collection: &str, owner: &str, stats: &[Stat]) -> Node {
    let mut out = Node::collection("statistics");
    for s in stats {
        out.push(statistic(ctx, kind, collection, owner, s));
    }
    out
}

/// `xsd:dateTime` in UTC for seconds since the epoch.
pub fn xsd_time(epoch: u64) -> String {
    format!("{}.000Z", corral_core::text::iso_utc(epoch))
}

/// RHEV vm states from the qube's power state.
pub fn vm_state(state: PowerState) -> &'static str {
    match state {
        PowerState::Halted => "down",
        PowerState::Running => "up",
        PowerState::Paused => "paused",
        PowerState::Suspended | PowerState::Saved => "suspended",
        PowerState::Transient => "powering_up",
        PowerState::Halting | PowerState::Dying => "powering_down",
        PowerState::Crashed => "down",
        PowerState::NA => "unknown",
    }
}

/// `<kind id href/>`.
pub fn reference(ctx: &Ctx, kind: &'static str, collection: &str, id: &str) -> Node {
    Node::new(kind).attr("href", ctx.href_of(&["/", collection, "/", id])).attr("id", id)
}

pub fn links(ctx: &Ctx, mut node: Node, base: &str, rels: &[&'static str]) -> Node {
    for rel in rels {
        node.push(Node::new("link").attr("href", ctx.href_of(&[base, "/", rel])).attr("rel", *rel));
    }
    node
}

pub fn actions(ctx: &Ctx, base: &str, names: &[&'static str]) -> Node {
    let mut a = Node::new("actions");
    for name in names {
        a.push(Node::new("link").attr("href", ctx.href_of(&[base, "/", name])).attr("rel", *name));
    }
    a
}

pub const VM_ACTIONS: [&str; 7] = ["start", "stop", "shutdown", "suspend", "reboot", "ticket", "clone"];
/// No `permissions`: every user has every right until roles exist, and a link must lead somewhere.
pub const VM_SUBCOLLECTIONS: [&str; 6] = ["disks", "nics", "cdroms", "snapshots", "statistics", "tags"];

/// A qube's whole-number property: 0 when it has none.
pub fn int(app: &View, d: &Domain, prop: &str) -> u64 {
    app.vm_prop(d, prop).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// How many vms there are (every qube but dom0), and how many of them are running.
pub fn vm_counts(app: &View) -> (usize, usize) {
    let vms: Vec<&Domain> = app.domains().filter(|d| !d.is_admin()).collect();
    (vms.len(), vms.iter().filter(|d| app.power(d).is_live()).count())
}

/// A qube as a RHEV vm.
pub fn vm_node(ctx: &Ctx, app: &View, d: &Domain) -> Node {
    let id = d.uuid.to_string();
    let base = ["/vms/", &id].concat();
    let mut vm = Node::new("vm").attr("href", ctx.href(&base)).attr("id", &id);
    vm = vm.child(actions(ctx, &base, &VM_ACTIONS));
    vm = vm.with_leaf("name", &d.name).with_leaf("description", &d.notes);
    vm = links(ctx, vm, &base, &VM_SUBCOLLECTIONS);
    vm = vm.with_leaf("type", "server");
    vm = vm.child(Node::new("status").with_leaf("state", vm_state(app.power(d))));
    vm = vm.with_leaf("memory", (int(app, d, "memory") * 1024 * 1024).to_string());
    let vcpus = int(app, d, "vcpus").max(1);
    vm = vm.child(Node::new("cpu").child(Node::new("topology").attr("cores", "1").attr("sockets", vcpus.to_string())));
    let mut os = Node::new("os").attr("type", "other_linux").child(Node::new("boot").attr("dev", "hd"));
    if let Some(kernel) = app.vm_prop(d, "kernel").filter(|k| !k.is_empty()) {
        os = os.with_leaf("kernel", kernel).with_leaf("cmdline", app.vm_prop(d, "kernelopts").unwrap_or_default());
    }
    vm = vm.child(os);
    vm = vm.child(Node::new("high_availability").with_leaf("enabled", "false").with_leaf("priority", "0"));
    vm = vm.child(display(app, d));
    vm = vm.child(reference(ctx, "cluster", "clusters", cluster_id()));
    let template = match d.class {
        Class::AppVM | Class::DispVM => app.template_of(d).map(|t| t.uuid.to_string()).unwrap_or_else(|| BLANK.into()),
        _ => BLANK.into(),
    };
    vm = vm.child(reference(ctx, "template", "templates", &template));
    if let Some(start) = app.vm_prop(d, "start_time").filter(|s| !s.is_empty()).and_then(|s| s.parse::<f64>().ok()) {
        vm = vm.with_leaf("start_time", xsd_time(start as u64));
    }
    if app.power(d).is_live() {
        vm = vm.child(reference(ctx, "host", "hosts", host_id()));
    }
    vm.with_leaf("stateless", "false").child(Node::new("usb").with_leaf("enabled", "false"))
}

/// The vm's VNC console: where it answers while the vm runs (no TLS port: VNC is plain). A new client may
/// take the console over from the one connected, hence `allow_override`.
fn display(app: &View, d: &Domain) -> Node {
    let mut display = Node::new("display").with_leaf("type", "vnc");
    if let Some(console) = app.console(d) {
        display = display.with_leaf("address", console.address).with_leaf("port", console.port.to_string());
    }
    display.with_leaf("monitors", "1").with_leaf("allow_override", "true").with_leaf("smartcard_enabled", "false")
}

/// A field of a qube as the search language names it.
pub fn vm_field(app: &View, d: &Domain, field: &str) -> Option<String> {
    Some(match field {
        "name" => d.name.clone(),
        "id" => d.uuid.to_string(),
        "status" => vm_state(app.power(d)).to_string(),
        "description" => d.notes.clone(),
        "memory" => (int(app, d, "memory") * 1024 * 1024).to_string(),
        "template" | "template.name" => app.template_of(d).map(|t| t.name.clone()).unwrap_or_else(|| "Blank".into()),
        "cluster" | "cluster.name" => "Default".into(),
        "host" | "host.name" => "localhost".into(),
        "tag" => app.tags_of(d).join(","),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xsd_times() {
        assert_eq!(xsd_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(xsd_time(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(xsd_time(1_795_577_000), "2026-11-25T03:23:20.000Z");
    }

    #[test]
    fn states() {
        assert_eq!(vm_state(PowerState::Running), "up");
        assert_eq!(vm_state(PowerState::Halted), "down");
    }
}
