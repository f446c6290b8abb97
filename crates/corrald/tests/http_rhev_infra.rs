//! `/api/capabilities`, `/api/hosts`, `/api/datacenters`, `/api/clusters`, `/api/networks`, `/api/tags`,
//! `/api/vms/{id}/tags` and `/api/events` over real HTTP, against a daemon on libvirt's test driver.

mod support;

use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::Value;
use support::{Daemon, WAIT};

const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>";
const ZERO: &str = "00000000-0000-0000-0000-000000000000";

fn daemon() -> Daemon {
    Daemon::start().with_user()
}

/// A daemon with a template and one AppVM, `work`.
fn daemon_with_work() -> Daemon {
    daemon().with_appvm()
}

/// What the SDK sends on every request.
fn sdk(rb: RequestBuilder) -> RequestBuilder {
    rb.basic_auth("admin@internal", Some("secret"))
        .header("Version", "3")
        .header("Content-Type", "application/xml")
        .header("Accept", "application/xml")
}

fn get(d: &Daemon, path: &str) -> Response {
    sdk(Client::new().get(d.url(path))).send().expect("request")
}

fn get_xml(d: &Daemon, path: &str) -> String {
    let r = get(d, path);
    assert_eq!(r.status(), 200, "GET {path}");
    r.text().expect("body")
}

fn get_json(d: &Daemon, path: &str) -> Value {
    let r = Client::new()
        .get(d.url(path))
        .basic_auth("admin@internal", Some("secret"))
        .header("Accept", "application/json")
        .send()
        .expect("request");
    assert_eq!(r.status(), 200, "GET {path}");
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().expect("JSON body")
}

fn send(rb: RequestBuilder, body: &str) -> Response {
    sdk(rb).body(body.to_string()).send().expect("request")
}

/// The id `/api/tags` gives the tag `name`.
fn tag_id(d: &Daemon, name: &str) -> String {
    let tags = get_json(d, "/api/tags");
    let tag = tags["tag"].as_array().expect("tag list").iter().find(|t| t["name"] == name).cloned();
    tag.unwrap_or_else(|| panic!("no tag {name} in {tags}"))["id"].as_str().expect("id").to_string()
}

fn host_id(d: &Daemon) -> String {
    get_json(d, "/api/hosts")["host"][0]["id"].as_str().expect("id").to_string()
}

/// The events log follows the bus asynchronously: waits until `path` shows `needle`.
fn wait_for(d: &Daemon, path: &str, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let body = get_xml(d, path);
        if body.contains(needle) || Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn event_codes(events: &Value) -> Vec<String> {
    events["event"]
        .as_array()
        .expect("event list")
        .iter()
        .map(|e| e["code"].as_str().expect("code").to_string())
        .collect()
}

fn event_ids(events: &Value) -> Vec<u64> {
    events["event"]
        .as_array()
        .expect("event list")
        .iter()
        .map(|e| e["id"].as_str().expect("id").parse().expect("integer id"))
        .collect()
}

// -------------------------------------------------------------------------------------------------------
// Authentication and faults

#[test]
fn every_infra_route_without_credentials_is_401_with_fault() {
    let d = daemon();
    let c = Client::new();

    let statuses: Vec<(String, u16, bool)> = [
        "/api/capabilities",
        "/api/hosts",
        "/api/datacenters",
        "/api/clusters",
        "/api/networks",
        "/api/tags",
        "/api/events",
    ]
    .iter()
    .map(|p| {
        let r = c.get(d.url(p)).send().unwrap();
        let status = r.status().as_u16();
        (p.to_string(), status, r.text().unwrap().contains("<fault>"))
    })
    .collect();

    assert!(statuses.iter().all(|(_, s, fault)| *s == 401 && *fault), "{statuses:?}");
}

#[test]
fn unknown_ids_are_404_faults_the_sdk_can_parse() {
    let d = daemon();
    let unknown = "11111111-2222-3333-4444-555555555555";

    let replies: Vec<(u16, String)> = [
        format!("/api/hosts/{unknown}"),
        format!("/api/hosts/{unknown}/statistics"),
        format!("/api/datacenters/{unknown}"),
        format!("/api/clusters/{unknown}"),
        format!("/api/networks/{unknown}"),
        format!("/api/tags/{unknown}"),
        format!("/api/capabilities/{unknown}"),
        "/api/events/999999".to_string(),
        format!("/api/vms/{unknown}/tags"),
    ]
    .iter()
    .map(|p| {
        let r = get(&d, p);
        (r.status().as_u16(), r.text().unwrap())
    })
    .collect();

    assert!(
        replies.iter().all(|(s, body)| *s == 404 && body.starts_with(DECL) && body.contains("<fault>")),
        "{replies:?}"
    );
}

// -------------------------------------------------------------------------------------------------------
// Capabilities

#[test]
fn capabilities_have_one_current_version_3_3() {
    let d = daemon();

    let body = get_xml(&d, "/api/capabilities");

    assert_eq!(body.matches("<version major=\"3\" minor=\"3\"").count(), 1, "{body}");
    assert!(body.contains("<current>true</current>"), "{body}");
}

#[test]
fn capabilities_list_the_supported_enumerations() {
    let d = daemon();

    let body = get_xml(&d, "/api/capabilities");

    for needle in [
        "<vm_state>powering_up</vm_state>",
        "<disk_format>raw</disk_format>",
        "<disk_interface>virtio</disk_interface>",
        "<nic_interface>virtio</nic_interface>",
        "<storage_type>localfs</storage_type>",
        "<storage_domain_type>data</storage_domain_type>",
        "<boot_device>hd</boot_device>",
        "<display_type>vnc</display_type>",
        "<os_type>other_linux</os_type>",
        "<vm_type>server</vm_type>",
        "<fence_type>status</fence_type>",
    ] {
        assert!(body.contains(needle), "{needle} missing from {body}");
    }
}

#[test]
fn capabilities_as_json_have_enumerations_as_arrays() {
    let d = daemon();

    let caps = get_json(&d, "/api/capabilities");

    let version = &caps["version"][0];
    assert_eq!(version["current"], "true");
    // The item list is an array whatever the nesting of the enclosing collection.
    assert!(version.to_string().contains(r#""storage_type":["localfs"]"#), "{version}");
}

#[test]
fn capability_version_is_readable_by_its_id() {
    let d = daemon();
    let id = get_json(&d, "/api/capabilities")["version"][0]["id"].as_str().unwrap().to_string();

    let body = get_xml(&d, &format!("/api/capabilities/{id}"));

    assert!(body.contains("<current>true</current>"), "{body}");
}

#[test]
fn capabilities_are_read_only_405() {
    let d = daemon();

    let r = send(Client::new().post(d.url("/api/capabilities")), "<version/>");

    assert_eq!(r.status(), 405);
    assert!(r.text().unwrap().contains("<fault>"));
}

// -------------------------------------------------------------------------------------------------------
// Hosts

#[test]
fn hosts_list_this_machine_up_in_the_default_cluster() {
    let d = daemon();

    let body = get_xml(&d, "/api/hosts");

    assert_eq!(body.matches("<host ").count(), 1, "{body}");
    assert!(body.contains("<name>localhost</name>"), "{body}");
    assert!(body.contains("<state>up</state>"), "{body}");
    assert!(body.contains("<type>rhel</type>"), "{body}");
    assert!(body.contains("<cluster href=\"/api/clusters/"), "{body}");
    assert!(body.contains("rel=\"statistics\""), "{body}");
    assert!(body.contains("<actions>"), "{body}");
}

#[test]
fn host_reports_cpu_memory_and_libvirt_version() {
    let d = daemon();
    let id = host_id(&d);

    let host = get_json(&d, &format!("/api/hosts/{id}"));

    assert_eq!(host["id"], id.as_str());
    assert!(!host["cpu"]["name"].as_str().unwrap().is_empty(), "{host}");
    assert!(host["cpu"]["topology"]["sockets"].as_str().unwrap().parse::<u64>().unwrap() >= 1, "{host}");
    assert!(host["memory"].as_str().unwrap().parse::<u64>().unwrap() > 0, "{host}");
    assert!(host["libvirt_version"]["full_version"].as_str().unwrap().starts_with("libvirt-"), "{host}");
}

/// A daemon whose libvirt connection fails at start: it serves everything but running qubes.
fn daemon_without_hypervisor() -> Daemon {
    Daemon::start_with_uri("test:///nonexistent/corral-test-node.xml").with_user()
}

#[test]
fn host_is_down_without_a_hypervisor() {
    let d = daemon_without_hypervisor();

    let hosts = get_json(&d, "/api/hosts");

    assert_eq!(hosts["host"][0]["status"]["state"], "down");
}

#[test]
fn networks_are_empty_without_a_hypervisor() {
    let d = daemon_without_hypervisor();

    let body = get_xml(&d, "/api/networks");

    assert!(body.contains("<networks/>"), "{body}");
}

#[test]
fn host_summary_counts_active_and_total_vms() {
    let d = daemon_with_work();
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=other label=red");
    d.ok("admin.vm.Start", "work", b"");
    let id = host_id(&d);

    let host = get_json(&d, &format!("/api/hosts/{id}"));

    assert_eq!(host["summary"]["total"], "3");
    assert_eq!(host["summary"]["active"], "1");
}

#[test]
fn host_search_that_does_not_match_is_an_empty_list() {
    let d = daemon();

    let body = get_xml(&d, "/api/hosts?search=name%3Dother*");

    assert!(body.contains("<hosts/>"), "{body}");
}

#[test]
fn host_search_by_status() {
    let d = daemon();

    let hosts = get_json(&d, "/api/hosts?search=status%3Dup");

    assert_eq!(hosts["host"].as_array().unwrap().len(), 1);
}

#[test]
fn host_statistics_have_the_guides_names_with_stable_ids() {
    let d = daemon();
    let id = host_id(&d);

    let first = get_json(&d, &format!("/api/hosts/{id}/statistics"));
    let second = get_json(&d, &format!("/api/hosts/{id}/statistics"));

    let names: Vec<&str> = first["statistic"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    for name in [
        "memory.total",
        "memory.used",
        "memory.free",
        "cpu.current.user",
        "cpu.current.system",
        "cpu.current.idle",
        "cpu.load.avg.5m",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(first["statistic"][0]["id"], second["statistic"][0]["id"]);
    assert_eq!(first["statistic"][0]["host"]["id"], id.as_str());
}

#[test]
fn host_detail_statistics_puts_them_inline() {
    let d = daemon();
    let id = host_id(&d);
    let detailed = |path: &str| {
        let r = Client::new()
            .get(d.url(path))
            .basic_auth("admin@internal", Some("secret"))
            .header("Accept", "application/xml; detail=statistics")
            .send()
            .expect("request");
        assert_eq!(r.status(), 200, "GET {path}");
        r.text().expect("body")
    };

    let one = detailed(&format!("/api/hosts/{id}"));
    let list = detailed("/api/hosts");
    let plain = get_xml(&d, &format!("/api/hosts/{id}"));

    for body in [&one, &list] {
        assert!(body.contains("<statistics>") && body.contains("<name>memory.total</name>"), "{body}");
    }
    assert!(!plain.contains("<statistics>"), "{plain}");
}

#[test]
fn host_memory_total_statistic_is_positive_bytes() {
    let d = daemon();
    let id = host_id(&d);
    let stats = get_json(&d, &format!("/api/hosts/{id}/statistics"));
    let total = stats["statistic"].as_array().unwrap().iter().find(|s| s["name"] == "memory.total").cloned().unwrap();

    let one = get_json(&d, &format!("/api/hosts/{id}/statistics/{}", total["id"].as_str().unwrap()));

    assert_eq!(one["unit"], "BYTES");
    assert!(one["values"]["value"]["datum"].as_str().unwrap().parse::<u64>().unwrap() > 0, "{one}");
}

#[test]
fn host_update_is_409_read_only() {
    let d = daemon();
    let id = host_id(&d);

    let r = send(Client::new().put(d.url(&format!("/api/hosts/{id}"))), "<host><name>x</name></host>");

    assert_eq!(r.status(), 409);
    assert!(r.text().unwrap().contains("read-only on this engine"));
}

#[test]
fn adding_a_host_is_409_read_only() {
    let d = daemon();

    let r = send(Client::new().post(d.url("/api/hosts")), "<host><name>x</name><address>y</address></host>");

    assert_eq!(r.status(), 409);
}

#[test]
fn host_fence_status_reports_power_on() {
    let d = daemon();
    let id = host_id(&d);

    let r = send(
        Client::new().post(d.url(&format!("/api/hosts/{id}/fence"))),
        "<action><fence_type>status</fence_type></action>",
    );

    assert_eq!(r.status(), 200);
    let body = r.text().unwrap();
    assert!(body.contains("<power_management>") && body.contains("<state>on</state>"), "{body}");
    assert!(body.contains("<state>complete</state>"), "{body}");
}

#[test]
fn host_fence_restart_is_409() {
    let d = daemon();
    let id = host_id(&d);

    let r = send(
        Client::new().post(d.url(&format!("/api/hosts/{id}/fence"))),
        "<action><fence_type>restart</fence_type></action>",
    );

    assert_eq!(r.status(), 409);
}

#[test]
fn unknown_host_action_is_404() {
    let d = daemon();
    let id = host_id(&d);

    let r = send(Client::new().post(d.url(&format!("/api/hosts/{id}/install"))), "<action/>");

    assert_eq!(r.status(), 404);
}

// -------------------------------------------------------------------------------------------------------
// Data center and cluster

#[test]
fn datacenters_list_default_localfs_up() {
    let d = daemon();

    let body = get_xml(&d, "/api/datacenters");

    assert!(body.contains("<data_centers>"), "{body}");
    assert_eq!(body.matches("<data_center ").count(), 1, "{body}");
    assert!(body.contains("<name>Default</name>"), "{body}");
    assert!(body.contains("<storage_type>localfs</storage_type>"), "{body}");
    assert!(body.contains("<supported_versions>"), "{body}");
    assert!(body.contains("<state>up</state>"), "{body}");
}

#[test]
fn datacenter_is_readable_by_its_id_as_json() {
    let d = daemon();
    let id = get_json(&d, "/api/datacenters")["data_center"][0]["id"].as_str().unwrap().to_string();

    let dc = get_json(&d, &format!("/api/datacenters/{id}"));

    assert_eq!(dc["name"], "Default");
    assert_eq!(dc["version"]["major"], "3");
    assert_eq!(dc["href"], format!("/api/datacenters/{id}").as_str());
}

#[test]
fn datacenter_search_that_does_not_match_is_empty() {
    let d = daemon();

    let body = get_xml(&d, "/api/datacenters?search=name%3DOther");

    assert!(body.contains("<data_centers/>"), "{body}");
}

#[test]
fn datacenter_update_is_409_read_only() {
    let d = daemon();
    let id = get_json(&d, "/api/datacenters")["data_center"][0]["id"].as_str().unwrap().to_string();

    let r =
        send(Client::new().put(d.url(&format!("/api/datacenters/{id}"))), "<data_center><name>x</name></data_center>");

    assert_eq!(r.status(), 409);
    assert!(r.text().unwrap().contains("read-only on this engine"));
}

#[test]
fn clusters_list_default_in_the_default_datacenter() {
    let d = daemon();
    let dc = get_json(&d, "/api/datacenters")["data_center"][0]["id"].as_str().unwrap().to_string();

    let clusters = get_json(&d, "/api/clusters");

    let cluster = &clusters["cluster"][0];
    assert_eq!(cluster["name"], "Default");
    assert_eq!(cluster["data_center"]["id"], dc.as_str());
    assert_eq!(cluster["cpu"]["id"], "qemu64");
    assert_eq!(cluster["version"]["minor"], "3");
}

#[test]
fn cluster_is_the_one_vms_point_at() {
    let d = daemon_with_work();
    let vm = get_json(&d, &format!("/api/vms/{}", d.uuid("work")));

    let body = get_xml(&d, &format!("/api/clusters/{}", vm["cluster"]["id"].as_str().unwrap()));

    assert!(body.contains("<name>Default</name>"), "{body}");
}

#[test]
fn cluster_delete_is_409_read_only() {
    let d = daemon();
    let id = get_json(&d, "/api/clusters")["cluster"][0]["id"].as_str().unwrap().to_string();

    let r = sdk(Client::new().delete(d.url(&format!("/api/clusters/{id}")))).send().unwrap();

    assert_eq!(r.status(), 409);
}

#[test]
fn datacenter_list_with_max_zero_is_empty() {
    let d = daemon();

    let body = get_xml(&d, "/api/datacenters;max=0");

    assert!(body.contains("<data_centers/>"), "{body}");
}

// -------------------------------------------------------------------------------------------------------
// Networks

#[test]
fn networks_are_the_libvirt_networks_of_the_connection() {
    let d = daemon();

    let body = get_xml(&d, "/api/networks");

    // libvirt's test:///default driver has one network, `default`, active.
    assert!(body.contains("<name>default</name>"), "{body}");
    assert!(body.contains("<state>operational</state>"), "{body}");
    assert!(body.contains("<usage>vm</usage>"), "{body}");
    assert!(body.contains("<data_center href=\"/api/datacenters/"), "{body}");
}

#[test]
fn network_is_readable_by_its_libvirt_uuid() {
    let d = daemon();
    let id = get_json(&d, "/api/networks")["network"][0]["id"].as_str().unwrap().to_string();

    let n = get_json(&d, &format!("/api/networks/{id}"));

    assert_eq!(n["name"], "default");
    assert!(n.to_string().contains(r#""usage":["vm"]"#), "{n}");
}

#[test]
fn cluster_networks_carry_the_cluster_and_required() {
    let d = daemon();
    let cluster = get_json(&d, "/api/clusters")["cluster"][0]["id"].as_str().unwrap().to_string();

    let nets = get_json(&d, &format!("/api/clusters/{cluster}/networks"));

    assert_eq!(nets["network"][0]["cluster"]["id"], cluster.as_str());
    assert_eq!(nets["network"][0]["required"], "false");
}

#[test]
fn deleting_the_network_qubes_join_is_409_and_it_stays() {
    let d = daemon();
    let id = get_json(&d, "/api/networks")["network"][0]["id"].as_str().unwrap().to_string();

    let r = sdk(Client::new().delete(d.url(&format!("/api/networks/{id}")))).send().unwrap();

    assert_eq!(r.status(), 409);
    assert!(r.text().unwrap().contains("qubes with a netvm join"));
    assert!(get_xml(&d, "/api/networks").contains("<name>default</name>"));
}

const LAB: &str = "<network><name>lab</name><data_center><name>Default</name></data_center><stp>true</stp>\
                   <mtu>9000</mtu><ip address=\"10.9.0.1\" netmask=\"255.255.255.0\"/></network>";

fn network_names(d: &Daemon) -> Vec<String> {
    let nets = get_json(d, "/api/networks");
    let mut names: Vec<String> = nets["network"]
        .as_array()
        .expect("list")
        .iter()
        .map(|n| n["name"].as_str().expect("name").to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_network_added_is_an_isolated_libvirt_network_that_runs_and_autostarts() {
    let d = daemon();

    let r = send(Client::new().post(d.url("/api/networks")).header("Expect", "201-created"), LAB);

    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let n = get_json(&d, location.trim_start_matches(&d.url("")));
    assert_eq!((n["name"].as_str(), n["status"]["state"].as_str()), (Some("lab"), Some("operational")));
    let libvirt: Value = Client::new()
        .get(d.url("/libvirt/networks/by-name/lab/dumpxml"))
        .basic_auth("admin", Some("secret"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let xml = libvirt["results"][0].as_str().expect("network XML");
    assert!(xml.contains("stp='on'") && xml.contains("<mtu size='9000'/>"), "{xml}");
    assert!(xml.contains("address='10.9.0.1'") && !xml.contains("<forward"), "{xml}");
    let info: Value = Client::new()
        .get(d.url("/libvirt/networks/by-name/lab"))
        .basic_auth("admin", Some("secret"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(info["results"][0]["persistent"], true);
    assert_eq!(info["results"][0]["autostart"], true);
    assert_eq!(events_of(&d, 942).len(), 1);
}

#[test]
fn a_network_removed_is_stopped_and_undefined() {
    let d = daemon();
    let r = send(Client::new().post(d.url("/api/networks")).header("Expect", "201-created"), LAB);
    let path = r.headers()["location"].to_str().unwrap().trim_start_matches(&d.url("")).to_string();

    let r = sdk(Client::new().delete(d.url(&path))).body("<action/>").send().unwrap();

    assert_eq!(r.status(), 204);
    assert_eq!(network_names(&d), ["default"]);
    assert_eq!(events_of(&d, 944).len(), 1);
}

#[test]
fn bad_network_bodies_are_400_and_a_taken_name_409_and_nothing_is_added() {
    let d = daemon();
    let dc = "<data_center><name>Default</name></data_center>";

    for (body, status) in [
        (format!("<network>{dc}</network>"), 400),
        ("<network><name>x</name></network>".to_string(), 400),
        ("<network><name>x</name><data_center><name>Other</name></data_center></network>".to_string(), 400),
        (format!("<network><name>x</name>{dc}<vlan id=\"10\"/></network>"), 400),
        (format!("<network><name>x</name>{dc}<mtu>lots</mtu></network>"), 400),
        (format!("<network><name>x</name>{dc}<mtu>10</mtu></network>"), 400),
        (format!("<network><name>x</name>{dc}<stp>maybe</stp></network>"), 400),
        (format!("<network><name>x</name>{dc}<ip address=\"10.0.0.300\" netmask=\"255.0.0.0\"/></network>"), 400),
        (format!("<network><name>../x</name>{dc}</network>"), 400),
        (format!("<network><name>default</name>{dc}</network>"), 409),
    ] {
        let r = send(Client::new().post(d.url("/api/networks")).header("Expect", "201-created"), &body);

        assert_eq!(r.status(), status, "{body}");
        assert!(r.text().unwrap().contains("<fault>"), "{body}");
    }
    assert_eq!(network_names(&d), ["default"]);
}

// -------------------------------------------------------------------------------------------------------
// Tags

#[test]
fn tags_list_has_the_root_tag_even_without_qube_tags() {
    let d = daemon();

    let tags = get_json(&d, "/api/tags");

    assert_eq!(tags["tag"][0]["id"], ZERO);
    assert_eq!(tags["tag"][0]["name"], "root");
}

#[test]
fn root_tag_is_readable_by_the_minus_one_alias() {
    let d = daemon();

    let body = get_xml(&d, "/api/tags/-1");

    assert!(body.contains(&format!("<tag href=\"/api/tags/{ZERO}\" id=\"{ZERO}\">")), "{body}");
}

#[test]
fn tags_are_the_union_of_the_qubes_tags_with_root_as_parent() {
    let d = daemon_with_work();
    d.ok("admin.vm.tag.Set+finance", "work", b"");

    let tag = get_json(&d, &format!("/api/tags/{}", tag_id(&d, "finance")));

    assert_eq!(tag["name"], "finance");
    assert_eq!(tag["parent"]["tag"]["id"], ZERO);
}

#[test]
fn tag_search_by_name_with_max() {
    let d = daemon_with_work();
    d.ok("admin.vm.tag.Set+fin-a", "work", b"");
    d.ok("admin.vm.tag.Set+fin-b", "work", b"");

    let tags = get_json(&d, "/api/tags;max=1?search=name%3Dfin*");

    assert_eq!(tags["tag"].as_array().unwrap().len(), 1);
    assert_eq!(tags["tag"][0]["name"], "fin-a");
}

#[test]
fn create_tag_is_201_and_the_tag_lives_on_dom0() {
    let d = daemon();

    let r = send(Client::new().post(d.url("/api/tags")), "<tag><name>audit</name></tag>");

    assert_eq!(r.status(), 201);
    let id = tag_id(&d, "audit");
    assert_eq!(r.headers()["location"], format!("/api/tags/{id}").as_str());
    assert_eq!(d.ok("admin.vm.tag.Get+audit", "dom0", b""), "1");
}

#[test]
fn create_of_an_existing_tag_is_409() {
    let d = daemon_with_work();
    d.ok("admin.vm.tag.Set+finance", "work", b"");

    let r = send(Client::new().post(d.url("/api/tags")), "<tag><name>finance</name></tag>");

    assert_eq!(r.status(), 409);
}

#[test]
fn create_with_an_invalid_tag_name_is_400_and_changes_nothing() {
    let d = daemon();

    let r = send(Client::new().post(d.url("/api/tags")), "<tag><name>bad name!</name></tag>");

    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("disallowed characters"));
    assert_eq!(get_json(&d, "/api/tags")["tag"].as_array().unwrap().len(), 1);
}

#[test]
fn create_under_a_non_root_parent_is_409() {
    let d = daemon_with_work();
    d.ok("admin.vm.tag.Set+finance", "work", b"");
    let parent = tag_id(&d, "finance");

    let r = send(
        Client::new().post(d.url("/api/tags")),
        &format!("<tag><name>child</name><parent><tag id=\"{parent}\"/></parent></tag>"),
    );

    assert_eq!(r.status(), 409);
}

#[test]
fn delete_tag_removes_it_from_every_qube() {
    let d = daemon_with_work();
    d.ok("admin.vm.tag.Set+finance", "work", b"");
    d.ok("admin.vm.tag.Set+finance", "tpl", b"");
    let id = tag_id(&d, "finance");

    let r = sdk(Client::new().delete(d.url(&format!("/api/tags/{id}")))).send().unwrap();

    assert_eq!(r.status(), 204);
    assert_eq!(d.ok("admin.vm.tag.Get+finance", "work", b""), "0");
    assert_eq!(d.ok("admin.vm.tag.Get+finance", "tpl", b""), "0");
    assert_eq!(get(&d, &format!("/api/tags/{id}")).status(), 404);
}

#[test]
fn delete_of_the_root_tag_is_409() {
    let d = daemon();

    let r = sdk(Client::new().delete(d.url(&format!("/api/tags/{ZERO}")))).send().unwrap();

    assert_eq!(r.status(), 409);
    assert!(r.text().unwrap().contains("<fault>"));
}

#[test]
fn rename_tag_renames_it_on_every_qube() {
    let d = daemon_with_work();
    d.ok("admin.vm.tag.Set+finance", "work", b"");
    let id = tag_id(&d, "finance");

    let r = send(Client::new().put(d.url(&format!("/api/tags/{id}"))), "<tag><name>money</name></tag>");

    assert_eq!(r.status(), 200);
    assert_eq!(d.ok("admin.vm.tag.Get+money", "work", b""), "1");
    assert_eq!(d.ok("admin.vm.tag.Get+finance", "work", b""), "0");
}

#[test]
fn renaming_a_tag_through_another_tags_id_is_409_and_renames_nothing() {
    let d = daemon_with_work();
    d.ok("admin.vm.tag.Set+finance", "work", b"");
    d.ok("admin.vm.tag.Set+audit", "work", b"");
    let (id, other) = (tag_id(&d, "finance"), tag_id(&d, "audit"));

    let r = send(
        Client::new().put(d.url(&format!("/api/tags/{id}"))),
        &format!("<tag id=\"{other}\"><name>money</name></tag>"),
    );

    assert_eq!(r.status(), 409);
    assert_eq!(d.ok("admin.vm.tag.Get+finance", "work", b""), "1");
    assert_eq!(d.ok("admin.vm.tag.Get+audit", "work", b""), "1");
    assert_eq!(d.ok("admin.vm.tag.Get+money", "work", b""), "0");
}

#[test]
fn vm_tags_list_the_qubes_tags_with_a_vm_backlink() {
    let d = daemon_with_work();
    d.ok("admin.vm.tag.Set+finance", "work", b"");
    let vm = d.uuid("work");

    let tags = get_json(&d, &format!("/api/vms/{vm}/tags"));

    let finance = tags["tag"].as_array().unwrap().iter().find(|t| t["name"] == "finance").cloned().unwrap();
    assert_eq!(finance["vm"]["id"], vm.as_str());
    assert_eq!(finance["href"], format!("/api/vms/{vm}/tags/{}", finance["id"].as_str().unwrap()).as_str());
}

#[test]
fn attach_tag_by_name_is_201_and_visible_to_the_admin_api() {
    let d = daemon_with_work();
    let vm = d.uuid("work");

    let r = send(Client::new().post(d.url(&format!("/api/vms/{vm}/tags"))), "<tag><name>finance</name></tag>");

    assert_eq!(r.status(), 201);
    assert!(d.ok("admin.vm.tag.List", "work", b"").lines().any(|t| t == "finance"));
}

#[test]
fn attach_tag_by_id_is_201() {
    let d = daemon_with_work();
    d.ok("admin.vm.tag.Set+finance", "tpl", b"");
    let (vm, tag) = (d.uuid("work"), tag_id(&d, "finance"));

    let r = send(Client::new().post(d.url(&format!("/api/vms/{vm}/tags"))), &format!("<tag id=\"{tag}\"/>"));

    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"], format!("/api/vms/{vm}/tags/{tag}").as_str());
    assert_eq!(d.ok("admin.vm.tag.Get+finance", "work", b""), "1");
}

#[test]
fn attach_of_an_unknown_tag_id_is_400() {
    let d = daemon_with_work();
    let vm = d.uuid("work");

    let r = send(
        Client::new().post(d.url(&format!("/api/vms/{vm}/tags"))),
        "<tag id=\"11111111-2222-3333-4444-555555555555\"/>",
    );

    assert_eq!(r.status(), 400);
}

#[test]
fn attach_of_an_invalid_tag_name_is_400() {
    let d = daemon_with_work();
    let vm = d.uuid("work");

    let r = send(Client::new().post(d.url(&format!("/api/vms/{vm}/tags"))), "<tag><name>a b</name></tag>");

    assert_eq!(r.status(), 400);
}

#[test]
fn attach_tag_as_json_is_201() {
    let d = daemon_with_work();
    let vm = d.uuid("work");

    let r = Client::new()
        .post(d.url(&format!("/api/vms/{vm}/tags")))
        .basic_auth("admin@internal", Some("secret"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(r#"{"name":"finance"}"#)
        .send()
        .unwrap();

    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().unwrap()["name"], "finance");
}

#[test]
fn detach_tag_is_204_and_the_admin_api_no_longer_has_it() {
    let d = daemon_with_work();
    d.ok("admin.vm.tag.Set+finance", "work", b"");
    let (vm, tag) = (d.uuid("work"), tag_id(&d, "finance"));

    let r = sdk(Client::new().delete(d.url(&format!("/api/vms/{vm}/tags/{tag}")))).send().unwrap();

    assert_eq!(r.status(), 204);
    assert_eq!(d.ok("admin.vm.tag.Get+finance", "work", b""), "0");
}

#[test]
fn attach_of_the_root_tag_is_409() {
    let d = daemon_with_work();
    let vm = d.uuid("work");

    let r = send(Client::new().post(d.url(&format!("/api/vms/{vm}/tags"))), "<tag id=\"-1\"/>");

    assert_eq!(r.status(), 409);
}

#[test]
fn vm_tag_the_qube_does_not_have_is_404() {
    let d = daemon_with_work();
    d.ok("admin.vm.tag.Set+finance", "tpl", b"");
    let (vm, tag) = (d.uuid("work"), tag_id(&d, "finance"));

    let r = get(&d, &format!("/api/vms/{vm}/tags/{tag}"));

    assert_eq!(r.status(), 404);
}

// -------------------------------------------------------------------------------------------------------
// Events

#[test]
fn vm_created_over_the_admin_api_is_event_34_with_the_vm() {
    let d = daemon();
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=tpl label=black");
    let vm = d.uuid("tpl");

    let body = wait_for(&d, "/api/events", "<code>34</code>");

    assert!(body.contains("<code>34</code>"), "{body}");
    assert!(body.contains(&format!("<vm href=\"/api/vms/{vm}\" id=\"{vm}\"/>")), "{body}");
    assert!(body.contains("<severity>normal</severity>"), "{body}");
}

#[test]
fn vm_started_over_the_admin_api_is_event_153_with_the_host() {
    let d = daemon_with_work();
    d.ok("admin.vm.Start", "work", b"");

    let body = wait_for(&d, "/api/events", "<code>153</code>");

    assert!(body.contains("<code>153</code>"), "{body}");
    assert!(body.contains("<host href=\"/api/hosts/"), "{body}");
}

/// The events of `code`, as JSON, once one is logged.
fn events_of(d: &Daemon, code: u32) -> Vec<Value> {
    wait_for(d, "/api/events", &format!("<code>{code}</code>"));
    let events = get_json(d, "/api/events");
    let code = code.to_string();
    events["event"].as_array().expect("event list").iter().filter(|e| e["code"] == code.as_str()).cloned().collect()
}

/// The events of `code` once at least `n` are logged (the log follows the bus asynchronously).
fn at_least(d: &Daemon, code: u32, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let events = events_of(d, code);
        if events.len() >= n || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn user_id(d: &Daemon) -> String {
    get_json(d, "/api/users")["user"][0]["id"].as_str().expect("user id").to_string()
}

#[test]
fn a_session_login_and_logout_are_events_30_and_31_of_the_user() {
    let d = daemon();
    let c = Client::new();
    let login = sdk(c.get(d.url("/api"))).header("Prefer", "persistent-auth").send().expect("login");
    let cookie = login.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_string();

    sdk(c.get(d.url("/api"))).header("Cookie", &cookie).send().expect("logout");

    let (login, logout) = (events_of(&d, 30), events_of(&d, 31));
    assert_eq!((login.len(), logout.len()), (1, 1), "{login:?} {logout:?}");
    let user = user_id(&d);
    assert_eq!(login[0]["user"]["id"], user.as_str());
    assert_eq!(logout[0]["user"]["id"], user.as_str());
    assert_eq!(login[0]["description"], "User admin@internal logged in.");
    // Basic credentials without a session log nobody in.
    get(&d, "/api/vms");
    assert_eq!(events_of(&d, 30).len(), 1);
}

#[test]
fn a_stop_over_http_is_event_33_with_the_user_the_vm_and_the_host() {
    let d = daemon_with_work();
    d.ok("admin.vm.Start", "work", b"");
    let work = d.uuid("work");

    let r = send(Client::new().post(d.url(&format!("/api/vms/{work}/stop"))), "<action/>");

    assert_eq!(r.status(), 200);
    let stop = events_of(&d, 33);
    assert_eq!(stop.len(), 1, "{stop:?}");
    assert_eq!(stop[0]["vm"]["id"], work.as_str());
    assert_eq!(stop[0]["user"]["id"], user_id(&d).as_str());
    assert_eq!(stop[0]["host"]["id"], host_id(&d).as_str());
    assert_eq!(stop[0]["description"], "VM work powered off by admin@internal.");
    // The Admin API's kill is no user's stop: the vm just goes down (61).
    d.ok("admin.vm.Start", "work", b"");
    d.ok("admin.vm.Kill", "work", b"");
    assert_eq!(events_of(&d, 33).len(), 1);
}

#[test]
fn a_suspend_over_http_is_events_501_then_503_and_a_refused_one_502() {
    let d = daemon_with_work();
    let work = d.uuid("work");
    let suspend = || send(Client::new().post(d.url(&format!("/api/vms/{work}/suspend"))), "<action/>");

    assert_eq!(suspend().status(), 409, "a halted vm cannot be suspended");
    d.ok("admin.vm.Start", "work", b"");
    assert_eq!(suspend().status(), 200);

    let (initiated, done, failed) = (events_of(&d, 501), events_of(&d, 503), events_of(&d, 502));
    assert_eq!((initiated.len(), done.len(), failed.len()), (2, 1, 1));
    assert_eq!(failed[0]["severity"], "error");
    let ids =
        |v: &[Value]| v.iter().map(|e| e["id"].as_str().expect("id").parse::<u64>().expect("n")).collect::<Vec<_>>();
    assert!(ids(&initiated)[0] < ids(&done)[0], "newest first: the later 501 precedes the 503");
}

#[test]
fn a_snapshot_over_http_is_events_45_and_68_and_a_restore_47() {
    let d = daemon_with_work();
    let work = d.uuid("work");
    let c = Client::new();

    let r = send(
        c.post(d.url(&format!("/api/vms/{work}/snapshots"))).header("Expect", "201-created"),
        "<snapshot><description>s</description></snapshot>",
    );
    assert_eq!(r.status(), 201);
    let snapshot = r.headers()["location"].to_str().expect("location").to_string();
    let r = send(c.post(d.url(&format!("{snapshot}/restore"))), "<action/>");
    assert_eq!(r.status(), 200);

    for code in [45, 68, 47] {
        let e = events_of(&d, code);
        assert_eq!(e.len(), 1, "{code}: {e:?}");
        assert_eq!(e[0]["vm"]["id"], work.as_str());
        assert_eq!(e[0]["user"]["id"], user_id(&d).as_str());
    }
}

/// The log is the service's: what any door does lands in it with the user who did it, whichever door
/// rendered it; an Admin API change carries no user.
#[test]
fn an_admin_api_change_and_an_http_snapshot_both_show_with_their_users() {
    let d = daemon_with_work();
    let work = d.uuid("work");

    d.ok("admin.vm.property.Set+memory", "work", b"600");
    let r = send(
        Client::new().post(d.url(&format!("/api/vms/{work}/snapshots"))).header("Expect", "201-created"),
        "<snapshot/>",
    );
    assert_eq!(r.status(), 201);

    let set = events_of(&d, 35);
    assert_eq!(set.len(), 1, "{set:?}");
    assert_eq!(set[0]["vm"]["id"], work.as_str());
    assert!(set[0].get("user").is_none(), "{:?}", set[0]);
    let taken = events_of(&d, 68);
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0]["user"]["id"], user_id(&d).as_str());
    assert_eq!(taken[0]["description"], "Snapshot of VM work has been completed.");
}

/// A user's power-off is one whichever HTTP door it came through.
#[test]
fn a_destroy_over_virthttp_is_event_33_of_its_user() {
    let d = daemon_with_work();
    d.ok("admin.vm.Start", "work", b"");
    let work = d.uuid("work");

    let r = Client::new()
        .patch(d.url("/libvirt/domains/by-name/work"))
        .basic_auth("admin", Some("secret"))
        .json(&serde_json::json!({"power_mgt": "destroy"}))
        .send()
        .expect("destroy");

    assert_eq!(r.status(), 200);
    let stop = events_of(&d, 33);
    assert_eq!(stop.len(), 1, "{stop:?}");
    assert_eq!(stop[0]["vm"]["id"], work.as_str());
    assert_eq!(stop[0]["user"]["id"], user_id(&d).as_str());
    assert_eq!(stop[0]["description"], "VM work powered off by admin@internal.");
}

#[test]
fn a_cd_change_is_event_38() {
    let d = daemon_with_work();
    std::fs::write(d.state.join("install.iso"), b"iso").expect("iso");
    let work = d.uuid("work");

    let r = send(
        Client::new().put(d.url(&format!("/api/vms/{work}/cdroms/{ZERO}"))),
        "<cdrom><file id=\"install.iso\"/></cdrom>",
    );

    assert_eq!(r.status(), 200);
    let cd = events_of(&d, 38);
    assert_eq!(cd.len(), 1, "{cd:?}");
    assert_eq!(cd[0]["description"], "VM work: cd changed");
}

#[test]
fn a_correlation_id_is_copied_onto_the_events_its_request_causes() {
    let d = daemon_with_work();
    d.ok("admin.vm.Start", "work", b"");
    let work = d.uuid("work");
    let c = Client::new();

    let r = sdk(c.post(d.url(&format!("/api/vms/{work}/stop"))))
        .header("Correlation-Id", "fix-42")
        .body("<action/>")
        .send()
        .expect("stop");
    assert_eq!(r.status(), 200);
    let body =
        "<vm><name>other</name><template><name>Blank</name></template><cluster><name>Default</name></cluster></vm>";
    let r = sdk(c.post(d.url("/api/vms")))
        .header("Correlation-Id", "create_1")
        .header("Expect", "201-created")
        .body(body)
        .send()
        .expect("create");
    assert_eq!(r.status(), 201);
    d.ok("admin.vm.Start", "work", b"");

    // The user's stop (33) and the vm going down (61, from the bus, whichever thread saw it first) are the
    // stop request's; the creation (34) is the other request's; the Admin API's start (153) is no request's.
    // Each code's events once all `n` expected are logged.
    let tagged = |code: u32, n: usize| {
        at_least(&d, code, n).iter().map(|e| e["correlation_id"].as_str().map(str::to_string)).collect::<Vec<_>>()
    };
    assert_eq!(tagged(33, 1), [Some("fix-42".to_string())]);
    assert!(tagged(61, 1).contains(&Some("fix-42".to_string())), "{:?}", tagged(61, 1));
    assert!(tagged(34, 3).contains(&Some("create_1".to_string())), "{:?}", tagged(34, 3));
    assert!(tagged(153, 2).iter().all(Option::is_none), "{:?}", tagged(153, 2));
    let found = get_json(&d, "/api/events?search=correlation_id%3Dfix-42");
    assert!(event_codes(&found).contains(&"33".to_string()), "{found}");
    assert!(!event_codes(&found).contains(&"34".to_string()), "{found}");
}

#[test]
fn a_start_over_http_carries_the_user_the_vm_and_the_host_and_one_over_the_admin_api_no_user() {
    let d = daemon_with_work();
    let work = d.uuid("work");

    let r = send(Client::new().post(d.url(&format!("/api/vms/{work}/start"))), "<action/>");
    assert_eq!(r.status(), 200);
    d.ok("admin.vm.Kill", "work", b"");
    d.ok("admin.vm.Start", "work", b"");

    let starts = at_least(&d, 153, 2);
    assert_eq!(starts.len(), 2, "{starts:?}");
    // Newest first: the Admin API's start, then the HTTP one.
    assert!(starts[0].get("user").is_none(), "{:?}", starts[0]);
    assert_eq!(starts[1]["user"]["id"], user_id(&d).as_str());
    assert_eq!(starts[1]["vm"]["id"], work.as_str());
    assert_eq!(starts[1]["host"]["id"], host_id(&d).as_str());
}

/// libvirt reports a stop on its own thread too, and whichever sees it first fires the events: the
/// request's cause must reach them either way.
#[test]
fn every_stop_over_http_brings_its_correlation_id_to_the_vm_going_down() {
    let d = daemon_with_work();
    let work = d.uuid("work");
    let c = Client::new();

    for i in 0..15 {
        d.ok("admin.vm.Start", "work", b"");
        let r = sdk(c.post(d.url(&format!("/api/vms/{work}/stop"))))
            .header("Correlation-Id", format!("stop-{i}"))
            .body("<action/>")
            .send()
            .expect("stop");
        assert_eq!(r.status(), 200);
    }

    let downs = at_least(&d, 61, 15);
    let mut ids: Vec<String> = downs.iter().filter_map(|e| e["correlation_id"].as_str().map(str::to_string)).collect();
    ids.sort();
    let mut want: Vec<String> = (0..15).map(|i| format!("stop-{i}")).collect();
    want.sort();
    assert_eq!(ids, want, "{downs:?}");
}

#[test]
fn a_malformed_correlation_id_is_400_and_nothing_runs() {
    let d = daemon_with_work();
    let work = d.uuid("work");

    for bad in ["has space", "semi;colon", &"x".repeat(51)] {
        let r = sdk(Client::new().post(d.url(&format!("/api/vms/{work}/start"))))
            .header("Correlation-Id", bad)
            .body("<action/>")
            .send()
            .expect("start");

        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.text().expect("body").contains("Invalid Correlation-Id"));
    }
    assert!(d.ok("admin.vm.List", "work", b"").contains("Halted"));
}

#[test]
fn events_are_listed_newest_first() {
    let d = daemon_with_work();
    wait_for(&d, "/api/events", "VM work");

    let ids = event_ids(&get_json(&d, "/api/events"));

    assert!(ids.len() >= 2 && ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
}

#[test]
fn from_keeps_only_later_events_in_both_spellings() {
    let d = daemon_with_work();
    wait_for(&d, "/api/events", "VM work");
    let ids = event_ids(&get_json(&d, "/api/events"));
    let oldest = ids[ids.len() - 1];

    let matrix = event_ids(&get_json(&d, &format!("/api/events;from={oldest}")));
    let query = event_ids(&get_json(&d, &format!("/api/events?from={oldest}")));

    assert_eq!(matrix, ids[..ids.len() - 1].to_vec());
    assert_eq!(query, matrix);
}

#[test]
fn search_by_type_keeps_that_code() {
    let d = daemon_with_work();
    d.ok("admin.vm.Start", "work", b"");
    wait_for(&d, "/api/events", "<code>153</code>");

    let codes = event_codes(&get_json(&d, "/api/events?search=type%3D153"));

    assert_eq!(codes, vec!["153".to_string()]);
}

#[test]
fn search_by_severity_above_normal_leaves_out_normal_events() {
    let d = daemon_with_work();
    wait_for(&d, "/api/events", "VM work");

    let body = get_xml(&d, "/api/events?search=severity%3Enormal");

    assert!(body.contains("<events/>"), "{body}");
}

#[test]
fn sortby_time_asc_lists_oldest_first() {
    let d = daemon_with_work();
    wait_for(&d, "/api/events", "VM work");

    let ids = event_ids(&get_json(&d, "/api/events?search=sortby%20time%20asc"));

    assert!(ids.len() >= 2 && ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[test]
fn page_two_of_a_short_log_is_empty() {
    let d = daemon_with_work();
    wait_for(&d, "/api/events", "VM work");

    let body = get_xml(&d, "/api/events?search=sortby%20time%20desc%20page%202");

    assert!(body.contains("<events/>"), "{body}");
}

#[test]
fn max_caps_the_event_list() {
    let d = daemon_with_work();
    wait_for(&d, "/api/events", "VM work");

    let events = get_json(&d, "/api/events;max=1");

    assert_eq!(events["event"].as_array().unwrap().len(), 1);
}

#[test]
fn event_is_readable_by_its_id() {
    let d = daemon_with_work();
    wait_for(&d, "/api/events", "VM work");
    let id = event_ids(&get_json(&d, "/api/events"))[0];

    let event = get_json(&d, &format!("/api/events/{id}"));

    assert_eq!(event["id"], id.to_string().as_str());
    assert_eq!(event["href"], format!("/api/events/{id}").as_str());
    assert!(event["time"].as_str().unwrap().ends_with('Z'), "{event}");
}

#[test]
fn invalid_from_is_400() {
    let d = daemon();

    let r = get(&d, "/api/events;from=abc");

    assert_eq!(r.status(), 400);
}

#[test]
fn events_are_read_only_405() {
    let d = daemon();

    let r = send(Client::new().post(d.url("/api/events")), "<event/>");

    assert_eq!(r.status(), 405);
    assert!(r.text().unwrap().contains("<fault>"));
}

#[test]
fn users_lists_the_local_users_read_only() {
    let d = support::Daemon::start();
    d.add_user("admin", "secret");
    d.add_user("operator", "pw");
    let c = reqwest::blocking::Client::new();

    let list = c.get(d.url("/api/users")).basic_auth("admin@internal", Some("secret")).send().expect("list");
    let body = list.text().expect("body");
    let post = c
        .post(d.url("/api/users"))
        .basic_auth("admin@internal", Some("secret"))
        .header("Content-Type", "application/xml")
        .body("<user><user_name>x@internal</user_name></user>")
        .send()
        .expect("post");

    assert!(body.contains("<user_name>admin@internal</user_name>"), "{body}");
    assert!(body.contains("<user_name>operator@internal</user_name>"), "{body}");
    assert_eq!(post.status(), 405);
}
