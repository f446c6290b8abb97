//! A vm's one nic over real HTTP: behind a netvm, or directly on a libvirt network (RHEV's `networks`),
//! checked against what the Admin API and libvirt then show on the same daemon.

mod support;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use serde_json::Value;
use support::Daemon;

// ---------------------------------------------------------------------------------------------------------
// Helpers

/// A daemon with a REST user, TemplateVM `tpl` and AppVM `work` based on it, and no netvm: a fresh install.
fn daemon() -> Daemon {
    Daemon::start().with_user().with_appvm()
}

fn request_as(d: &Daemon, method: Method, path: &str, accept: &str) -> RequestBuilder {
    Client::new()
        .request(method, d.url(path))
        .basic_auth("admin@internal", Some("secret"))
        .header("Content-Type", "application/xml")
        .header("Accept", accept)
        .header("Expect", "201-created")
}

fn request(d: &Daemon, method: Method, path: &str) -> RequestBuilder {
    request_as(d, method, path, "application/xml")
}

/// (status, body) of one request.
fn send(d: &Daemon, method: Method, path: &str, body: &str) -> (u16, String) {
    let r = request(d, method, path).body(body.to_string()).send().expect("request");
    (r.status().as_u16(), r.text().expect("body"))
}

fn get_json(d: &Daemon, path: &str) -> Value {
    let r = request_as(d, Method::GET, path, "application/json").send().expect("request");
    assert_eq!(r.status(), 200, "{path}");
    r.json().expect("json")
}

/// The id `/api/networks` gives the network `name`.
fn network_id(d: &Daemon, name: &str) -> String {
    let nets = get_json(d, "/api/networks");
    let all = nets["network"].as_array().cloned().unwrap_or_default();
    let n = all.iter().find(|n| n["name"] == name).unwrap_or_else(|| panic!("no network {name} in {nets}"));
    n["id"].as_str().expect("id").to_string()
}

/// Adds the isolated network `lab` through `/api/networks`; returns its id.
fn with_lab(d: &Daemon) -> String {
    let body = "<network><name>lab</name><data_center><name>Default</name></data_center></network>";
    let (status, answer) = send(d, Method::POST, "/api/networks", body);
    assert_eq!(status, 201, "{answer}");
    network_id(d, "lab")
}

fn nics(d: &Daemon, vm: &str) -> Vec<Value> {
    get_json(d, &format!("/api/vms/{}/nics", d.uuid(vm)))["nic"].as_array().cloned().unwrap_or_default()
}

fn add_nic(d: &Daemon, vm: &str, body: &str) -> (u16, String) {
    send(d, Method::POST, &format!("/api/vms/{}/nics", d.uuid(vm)), body)
}

fn remove_nic(d: &Daemon, vm: &str) -> u16 {
    let nic = nics(d, vm)[0]["id"].as_str().expect("nic id").to_string();
    send(d, Method::DELETE, &format!("/api/vms/{}/nics/{nic}", d.uuid(vm)), "").0
}

/// The qube's `corral.network` feature, `None` when unset.
fn feature(d: &Daemon, vm: &str) -> Option<String> {
    let reply = d.call("admin.vm.feature.Get+corral.network", vm, b"");
    reply.strip_prefix(b"0\0").map(|v| String::from_utf8_lossy(v).into_owned())
}

fn netvm(d: &Daemon, vm: &str) -> String {
    d.ok("admin.vm.property.Get+netvm", vm, b"")
}

/// libvirt's XML of `vm`'s domain (defined at its last start).
fn domain_xml(d: &Daemon, vm: &str) -> String {
    let r = request(d, Method::GET, &format!("/libvirt/domains/by-name/{vm}/xml_desc")).send().expect("xml_desc");
    let envelope: Value = r.json().expect("envelope");
    envelope["results"][0].as_str().unwrap_or_else(|| panic!("no XML: {envelope}")).to_string()
}

/// The datum of statistic `name` in a JSON `statistics` collection.
fn stat(stats: &Value, name: &str) -> f64 {
    let all = stats["statistic"].as_array().cloned().unwrap_or_default();
    let s = all.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no {name} in {stats}"));
    let datum = s.pointer("/values/value/datum").or_else(|| s.pointer("/values/value/0/datum"));
    datum.and_then(Value::as_str).and_then(|d| d.parse().ok()).unwrap_or_else(|| panic!("{name}: {s}"))
}

// ---------------------------------------------------------------------------------------------------------
// Adding

#[test]
fn on_a_fresh_install_a_nic_goes_directly_on_the_libvirt_network_default() {
    let d = daemon();

    let (status, body) = add_nic(&d, "work", "<nic><name>nic1</name><interface>virtio</interface></nic>");

    assert_eq!(status, 201, "{body}");
    let nics = nics(&d, "work");
    assert_eq!(nics.len(), 1);
    assert_eq!(nics[0]["name"], "nic1");
    assert_eq!(nics[0]["network"]["id"], network_id(&d, "default").as_str());
    assert_eq!(feature(&d, "work").as_deref(), Some("default"));
    assert_eq!(netvm(&d, "work"), "default=True type=vm ");
}

#[test]
fn a_nic_on_a_named_network_is_on_it_when_the_vm_runs_and_reports_its_traffic() {
    let d = daemon();
    let lab = with_lab(&d);

    let body = "<nic><name>nic1</name><network><name>lab</name></network><interface>virtio</interface>\
                <mac address=\"00:16:3e:12:34:56\"/></nic>";
    let (status, answer) = add_nic(&d, "work", body);

    assert_eq!(status, 201, "{answer}");
    assert!(answer.contains(&format!("<network href=\"/api/networks/{lab}\" id=\"{lab}\"/>")), "{answer}");
    assert_eq!(feature(&d, "work").as_deref(), Some("lab"));
    assert_eq!(d.ok("admin.vm.property.Get+mac", "work", b""), "default=False type=str 00:16:3e:12:34:56");
    d.ok("admin.vm.Start", "work", b"");
    let xml = domain_xml(&d, "work");
    assert!(xml.contains("<source network='lab'"), "{xml}");
    assert!(xml.contains("<mac address='00:16:3e:12:34:56'/>"), "{xml}");
    let nic = nics(&d, "work")[0]["id"].as_str().expect("id").to_string();
    let stats = get_json(&d, &format!("/api/vms/{}/nics/{nic}/statistics", d.uuid("work")));
    assert!(stat(&stats, "data.current.rx") > 0.0, "{stats}");
}

#[test]
fn a_nic_can_name_its_network_by_id() {
    let d = daemon();
    let lab = with_lab(&d);

    let (status, answer) = add_nic(&d, "work", &format!("<nic><name>nic1</name><network id=\"{lab}\"/></nic>"));

    assert_eq!(status, 201, "{answer}");
    assert_eq!(feature(&d, "work").as_deref(), Some("lab"));
    assert_eq!(nics(&d, "work")[0]["network"]["id"], lab.as_str());
}

#[test]
fn with_a_default_netvm_a_nic_on_default_is_behind_it_as_before() {
    let d = daemon().with_default_netvm("sys-net");
    d.ok("admin.vm.property.Set+netvm", "work", b"");

    let (status, answer) = add_nic(&d, "work", "<nic><name>nic1</name><network><name>default</name></network></nic>");

    assert_eq!(status, 201, "{answer}");
    assert_eq!(netvm(&d, "work"), "default=False type=vm sys-net");
    assert_eq!(feature(&d, "work"), None);
    assert_eq!(nics(&d, "work")[0]["network"]["id"], network_id(&d, "default").as_str());
}

#[test]
fn an_unknown_network_or_card_model_is_refused_and_changes_nothing() {
    let d = daemon();
    let unknown = "00000000-0000-0000-0000-00000000dead";

    for (body, status) in [
        ("<nic><name>nic1</name><network><name>no-such</name></network></nic>".to_string(), 400),
        (format!("<nic><name>nic1</name><network id=\"{unknown}\"/></nic>"), 400),
        ("<nic><name>nic1</name><network/></nic>".to_string(), 400),
        ("<nic><name>nic1</name><interface>e1000</interface></nic>".to_string(), 409),
        ("<nic><name>nic1</name><mac address=\"not a mac\"/></nic>".to_string(), 400),
    ] {
        let (got, answer) = add_nic(&d, "work", &body);

        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer.contains("<fault>"), "{answer}");
    }
    assert!(nics(&d, "work").is_empty());
    assert_eq!(feature(&d, "work"), None);
    assert_eq!(d.ok("admin.vm.property.Get+mac", "work", b"").split(' ').next(), Some("default=True"));
}

#[test]
fn a_second_nic_is_409_whichever_network() {
    let d = daemon();
    with_lab(&d);
    assert_eq!(add_nic(&d, "work", "<nic><name>nic1</name></nic>").0, 201);

    let (status, _) = add_nic(&d, "work", "<nic><name>nic2</name><network><name>lab</name></network></nic>");

    assert_eq!(status, 409);
    assert_eq!(feature(&d, "work").as_deref(), Some("default"));
}

/// libvirt's test driver cannot hot-plug devices: the change is refused and not recorded. (A real QEMU
/// guest gets its card plugged: `real_guest.rs`.)
#[test]
fn where_libvirt_cannot_hot_plug_a_running_vms_nic_is_409_and_unchanged() {
    let d = daemon();
    d.ok("admin.vm.Start", "work", b"");

    let (added, answer) = add_nic(&d, "work", "<nic><name>nic1</name></nic>");

    assert_eq!(added, 409, "{answer}");
    assert!(answer.contains("not supported"), "libvirt's reason is passed on: {answer}");
    assert!(nics(&d, "work").is_empty());
    d.ok("admin.vm.Kill", "work", b"");
    assert_eq!(add_nic(&d, "work", "<nic><name>nic1</name></nic>").0, 201);
    d.ok("admin.vm.Start", "work", b"");
    assert_eq!(remove_nic(&d, "work"), 409);
    assert_eq!(feature(&d, "work").as_deref(), Some("default"));
}

// ---------------------------------------------------------------------------------------------------------
// Names

/// The qube's feature holding its card's name, `None` when unset.
fn nic_name_feature(d: &Daemon, vm: &str) -> Option<String> {
    let reply = d.call("admin.vm.feature.Get+corral.nic-name", vm, b"");
    reply.strip_prefix(b"0\0").map(|v| String::from_utf8_lossy(v).into_owned())
}

#[test]
fn a_new_nic_keeps_the_name_it_is_given_and_loses_it_with_the_card() {
    let mut d = daemon();

    let (status, answer) = add_nic(&d, "work", "<nic><name>eth0</name><interface>virtio</interface></nic>");

    assert_eq!(status, 201, "{answer}");
    assert!(answer.contains("<name>eth0</name>"), "{answer}");
    assert_eq!(nics(&d, "work")[0]["name"], "eth0");
    assert_eq!(nic_name_feature(&d, "work").as_deref(), Some("eth0"));
    d.restart();
    assert_eq!(nics(&d, "work")[0]["name"], "eth0");
    // The card goes with its name: a new one is nic1 again.
    assert_eq!(remove_nic(&d, "work"), 204);
    assert_eq!(nic_name_feature(&d, "work"), None);
    assert_eq!(add_nic(&d, "work", "<nic/>").0, 201);
    assert_eq!(nics(&d, "work")[0]["name"], "nic1");
    assert_eq!(nic_name_feature(&d, "work"), None);
}

#[test]
fn a_nic_is_renamed_with_put_and_keeps_its_id() {
    let d = daemon();
    assert_eq!(add_nic(&d, "work", "<nic/>").0, 201);
    let nic = nics(&d, "work")[0]["id"].as_str().expect("id").to_string();
    let path = format!("/api/vms/{}/nics/{nic}", d.uuid("work"));

    let (status, answer) = send(&d, Method::PUT, &path, "<nic><name>uplink</name></nic>");

    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("<name>uplink</name>") && answer.contains(&format!("id=\"{nic}\"")), "{answer}");
    assert_eq!(nics(&d, "work")[0]["name"], "uplink");
    assert_eq!(nic_name_feature(&d, "work").as_deref(), Some("uplink"));
    // Back to the default name: nothing is kept for it.
    let (status, answer) = send(&d, Method::PUT, &path, "<nic><name>nic1</name></nic>");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(nic_name_feature(&d, "work"), None);
}

#[test]
fn a_bad_nic_name_is_400_and_changes_nothing() {
    let d = daemon();
    let long = "n".repeat(256);
    for name in ["", "two&#10;lines", long.as_str(), "carte-réseau"] {
        let (status, answer) = add_nic(&d, "work", &format!("<nic><name>{name}</name></nic>"));
        assert_eq!(status, 400, "{name}: {answer}");
        assert!(answer.contains("network card name"), "{name}: {answer}");
    }
    assert!(nics(&d, "work").is_empty());
    assert_eq!(feature(&d, "work"), None);

    assert_eq!(add_nic(&d, "work", "<nic><name>eth0</name></nic>").0, 201);
    let nic = nics(&d, "work")[0]["id"].as_str().expect("id").to_string();
    let path = format!("/api/vms/{}/nics/{nic}", d.uuid("work"));
    let body = "<nic><name>two&#10;lines</name><mac address=\"00:16:3e:00:00:42\"/></nic>";
    let (status, answer) = send(&d, Method::PUT, &path, body);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(nics(&d, "work")[0]["name"], "eth0");
    let mac = d.ok("admin.vm.property.Get+mac", "work", b"");
    assert!(!mac.contains("00:16:3e:00:00:42"), "{mac}");
}

// ---------------------------------------------------------------------------------------------------------
// Removing

#[test]
fn removing_a_network_nic_leaves_the_vm_disconnected_even_with_a_default_netvm() {
    let d = daemon().with_default_netvm("sys-net");
    with_lab(&d);
    assert_eq!(remove_nic(&d, "work"), 204);
    assert_eq!(add_nic(&d, "work", "<nic><network><name>lab</name></network></nic>").0, 201);
    // Back to the default netvm: which is none for a qube on a libvirt network.
    d.ok("admin.vm.property.Reset+netvm", "work", b"");
    assert_eq!(netvm(&d, "work"), "default=True type=vm ");

    let status = remove_nic(&d, "work");

    assert_eq!(status, 204);
    assert_eq!(feature(&d, "work"), None);
    assert_eq!(netvm(&d, "work"), "default=False type=vm ");
    assert!(nics(&d, "work").is_empty());
    d.ok("admin.vm.Start", "work", b"");
    assert!(!domain_xml(&d, "work").contains("<interface"), "no card once removed");
}

#[test]
fn a_network_a_qube_is_on_cannot_be_removed_until_it_leaves() {
    let d = daemon();
    let lab = with_lab(&d);
    assert_eq!(add_nic(&d, "work", "<nic><network><name>lab</name></network></nic>").0, 201);

    let (status, answer) = send(&d, Method::DELETE, &format!("/api/networks/{lab}"), "");
    let virthttp = request(&d, Method::DELETE, "/libvirt/networks/by-name/lab").send().expect("delete");
    let virthttp: Value = virthttp.json().expect("envelope");

    assert_eq!(status, 409, "{answer}");
    assert!(answer.contains("work"), "{answer}");
    assert_ne!(virthttp["errors"], Value::Array(Vec::new()), "{virthttp}");
    assert_eq!(network_id(&d, "lab"), lab);
    assert_eq!(remove_nic(&d, "work"), 204);
    assert_eq!(send(&d, Method::DELETE, &format!("/api/networks/{lab}"), "").0, 204);
}

// ---------------------------------------------------------------------------------------------------------
// The Admin API sees and keeps the same card

#[test]
fn the_admin_api_puts_a_qube_on_a_network_and_rest_shows_that_nic() {
    let d = daemon();
    let lab = with_lab(&d);

    d.ok("admin.vm.feature.Set+corral.network", "work", b"lab");

    let nics = nics(&d, "work");
    assert_eq!(nics.len(), 1);
    assert_eq!(nics[0]["network"]["id"], lab.as_str());
    assert_eq!(nics[0]["description"], "On the libvirt network lab");
}

#[test]
fn a_qube_is_never_both_behind_a_netvm_and_on_a_libvirt_network() {
    let d = daemon().with_default_netvm("sys-net");
    with_lab(&d);
    d.ok("admin.vm.property.Set+netvm", "work", b"sys-net");

    // Behind an explicit netvm: it cannot join a libvirt network as well.
    let (kind, _) = d.err("admin.vm.feature.Set+corral.network", "work", b"lab");
    assert_eq!(kind, "QubesValueError");
    d.ok("admin.vm.property.Set+netvm", "work", b"");
    d.ok("admin.vm.feature.Set+corral.network", "work", b"lab");

    // On a libvirt network: no netvm can be set.
    let (kind, message) = d.err("admin.vm.property.Set+netvm", "work", b"sys-net");
    assert_eq!(kind, "QubesValueError", "{message}");
    assert_eq!(nics(&d, "work").len(), 1);
    assert_eq!(feature(&d, "work").as_deref(), Some("lab"));
}

#[test]
fn the_global_default_netvm_does_not_reach_a_qube_on_a_libvirt_network() {
    let d = daemon();
    with_lab(&d);
    d.ok("admin.vm.feature.Set+corral.network", "work", b"lab");

    d.ok("admin.vm.Create.StandaloneVM", "dom0", b"name=sys-net label=red");
    d.ok("admin.vm.property.Set+provides_network", "sys-net", b"True");
    d.ok("admin.property.Set+default_netvm", "dom0", b"sys-net");

    assert_eq!(netvm(&d, "work"), "default=True type=vm ");
    let nics = nics(&d, "work");
    assert_eq!(nics.len(), 1);
    assert_eq!(nics[0]["network"]["id"], network_id(&d, "lab").as_str());
}

#[test]
fn the_admin_api_refuses_an_unknown_network_and_a_card_libvirt_cannot_hot_plug() {
    let d = daemon();
    with_lab(&d);

    let (kind, _) = d.err("admin.vm.feature.Set+corral.network", "work", b"no-such");
    assert_eq!(kind, "QubesValueError");
    d.ok("admin.vm.Start", "work", b"");
    let (kind, _) = d.err("admin.vm.feature.Set+corral.network", "work", b"lab");
    assert_eq!(kind, "QubesVMNotHaltedError");
    assert_eq!(feature(&d, "work"), None);
}

#[test]
fn the_state_survives_a_restart() {
    let mut d = daemon();
    with_lab(&d);
    assert_eq!(add_nic(&d, "work", "<nic><network><name>lab</name></network></nic>").0, 201);

    d.restart();

    assert_eq!(feature(&d, "work").as_deref(), Some("lab"));
}

#[test]
fn joining_and_leaving_a_network_announces_the_netvm_default_moving() {
    let d = daemon().with_default_netvm("sys-net");
    with_lab(&d);
    let mut events = support::events::Events::open(&d, "work");

    d.ok("admin.vm.feature.Set+corral.network", "work", b"lab");
    d.ok("admin.vm.feature.Remove+corral.network", "work", b"");
    let seen = events.until_marker(&d, "work");

    let resets: Vec<&String> = seen.iter().filter(|f| f.contains("property-reset:netvm")).collect();
    assert_eq!(resets.len(), 2, "{seen:#?}");
    assert!(resets[0].contains("oldvalue\\u{0}sys-net"), "{seen:#?}");
    assert!(resets[1].contains("oldvalue\\u{0}None"), "{seen:#?}");
    assert_eq!(netvm(&d, "work"), "default=True type=vm sys-net");
}

/// As upstream: a running qube's netvm change attaches or detaches its network at once, only to a running
/// netvm. Between two netvms the card stays the same (both are on `default`).
#[test]
fn a_running_qubes_netvm_change_replugs_its_card_only_when_it_gains_or_loses_one() {
    let d = daemon().with_default_netvm("sys-net");
    d.ok("admin.vm.Create.StandaloneVM", "dom0", b"name=sys-fw label=red");
    d.ok("admin.vm.property.Set+provides_network", "sys-fw", b"True");
    d.ok("admin.vm.Start", "work", b"");

    let (stopped, message) = d.err("admin.vm.property.Set+netvm", "work", b"sys-fw");
    assert_eq!(stopped, "QubesVMNotStartedError", "{message}");
    d.ok("admin.vm.Start", "sys-fw", b"");
    d.ok("admin.vm.property.Set+netvm", "work", b"sys-fw");
    // Losing the netvm unplugs the card, which libvirt's test driver cannot do.
    let (refused, message) = d.err("admin.vm.property.Set+netvm", "work", b"");

    assert_eq!(refused, "QubesVMNotHaltedError", "{message}");
    assert_eq!(netvm(&d, "work"), "default=False type=vm sys-fw");
    assert_eq!(nics(&d, "work").len(), 1);
    d.ok("admin.vm.Kill", "work", b"");
    d.ok("admin.vm.property.Set+netvm", "work", b"");
    assert!(nics(&d, "work").is_empty());
}
