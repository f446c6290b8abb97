//! The virthttp-style `/libvirt` API over real HTTP on libvirt's `test:///default` driver (spec part B):
//! the HTTP-level rules, the envelope and its error codes, domains (qubes) and their actions, networks,
//! async requests, and the same qubes seen through the Admin API socket.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{json, Value};
use support::{Daemon, WAIT};

/// libvirt's test driver always has this network.
const DEFAULT_NET_UUID: &str = "dd8fe884-6c02-601e-7551-cca97df1c5df";

// ---------------------------------------------------------------------------------------------------------
// Helpers

fn daemon() -> Daemon {
    Daemon::start().with_user()
}

/// A daemon with the StandaloneVM `work` (400 MiB, 2 vcpus: the defaults), halted.
fn with_qube() -> Daemon {
    let d = daemon();
    d.ok("admin.vm.Create.StandaloneVM", "dom0", b"name=work label=red");
    d
}

/// `with_qube` with `work` running.
fn with_running() -> Daemon {
    with_qube().with_running("work")
}

/// `with_running` with `work` paused.
fn with_paused() -> Daemon {
    with_qube().with_paused("work")
}

/// virthttp's credentials: the daemon's user and password as `X-Auth-Username`/`X-Auth-Key`.
fn authed(rb: RequestBuilder) -> RequestBuilder {
    rb.header("X-Auth-Username", "admin").header("X-Auth-Key", "secret")
}

fn request(d: &Daemon, method: &str, path: &str) -> RequestBuilder {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    authed(Client::new().request(method, d.url(path)))
}

/// An envelope answer: always HTTP 200 with JSON.
fn envelope(r: Response) -> Value {
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().expect("JSON envelope")
}

fn get(d: &Daemon, path: &str) -> Value {
    envelope(request(d, "GET", path).send().expect("request"))
}

fn send(d: &Daemon, method: &str, path: &str, body: Value) -> Value {
    envelope(request(d, method, path).body(body.to_string()).send().expect("request"))
}

fn patch(d: &Daemon, path: &str, body: Value) -> Value {
    send(d, "PATCH", path, body)
}

/// A PATCH with the body as written: the order of an action object's keys matters.
fn patch_text(d: &Daemon, path: &str, body: &str) -> Value {
    envelope(request(d, "PATCH", path).body(body.to_string()).send().expect("request"))
}

fn succeeded(results: Value, messages: Value) -> Value {
    json!({"results": results, "success": true, "errors": [], "messages": messages})
}

fn failed(errors: Value, messages: Value) -> Value {
    json!({"results": [], "success": false, "errors": errors, "messages": messages})
}

fn error(code: i32, message: &str) -> Value {
    json!({"code": code, "message": message})
}

fn power_state(d: &Daemon, name: &str) -> String {
    let state = d.ok("admin.vm.CurrentState", name, b"");
    state.rsplit("power_state=").next().expect("power_state").to_string()
}

fn prop(d: &Daemon, name: &str, prop: &str) -> String {
    d.ok(&format!("admin.vm.property.Get+{prop}"), name, b"")
}

/// The info object of the halted `work` with its default properties.
fn halted_info(d: &Daemon) -> Value {
    json!({"name": "work", "uuid": d.uuid("work"), "id": -1, "status": "Shutoff", "os": "hvm",
           "ram": 409_600, "ram_max": 409_600, "cpu": 2})
}

/// A request written byte for byte, for targets an HTTP client would clean up first.
fn raw_http(d: &Daemon, request_line: &str) -> String {
    let mut s = TcpStream::connect(d.http()).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let req = format!(
        "{request_line}\r\nHost: x\r\nX-Auth-Username: admin\r\nX-Auth-Key: secret\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn domain_xml(name: &str) -> String {
    format!("<domain type='test'><name>{name}</name><memory unit='MiB'>512</memory><vcpu>3</vcpu></domain>")
}

// ---------------------------------------------------------------------------------------------------------
// HTTP level (B1, B2)

#[test]
fn head_is_200_with_an_empty_body() {
    let d = daemon();

    let r = request(&d, "HEAD", "/libvirt/domains").send().expect("request");

    assert_eq!(r.status(), 200);
    assert_eq!(r.text().expect("body"), "");
}

#[test]
fn an_unsupported_method_is_400_html() {
    let d = daemon();

    let r = request(&d, "PUT", "/libvirt/domains").send().expect("request");

    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "text/html");
    assert_eq!(r.text().expect("body"), "Unknown/Unsupported HTTP-method");
}

#[test]
fn a_target_with_dot_dot_is_400() {
    let d = daemon();

    let reply = raw_http(&d, "GET /libvirt/../libvirt/domains HTTP/1.1");

    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.ends_with("Illegal request-target"), "{reply}");
}

#[test]
fn the_root_path_is_400() {
    let d = daemon();

    // `/` is outside `/libvirt`, so the RHEV side's Basic credentials let it through.
    let r = Client::new().get(d.url("/")).basic_auth("admin", Some("secret")).send().expect("request");

    assert_eq!(r.status(), 400);
    assert_eq!(r.text().expect("body"), "No module name specified");
}

#[test]
fn without_credentials_is_401_with_error_1() {
    let d = daemon();

    let r = Client::new().get(d.url("/libvirt/domains")).send().expect("request");

    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().expect("JSON"), failed(json!([error(1, "Bad X-Auth-Key")]), json!([])));
}

/// A new service key for `admin`, issued through the internal socket as `corral user service-key` does.
fn service_key(d: &Daemon) -> String {
    let reply = d.call_internal("corral.user.ServiceKey+admin", "dom0", b"");
    let key = String::from_utf8(reply.strip_prefix(b"0\0").expect("OK reply").to_vec()).expect("UTF-8");
    assert!(key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    key
}

fn with_service_key(d: &Daemon, method: &str, path: &str, key: &str, body: Value) -> Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    Client::new()
        .request(method, d.url(path))
        .header("X-Auth-User-Service-Key", key)
        .body(body.to_string())
        .send()
        .expect("request")
}

#[test]
fn a_service_key_reads_and_runs_power_actions() {
    let d = with_qube();
    let key = service_key(&d);

    let list = with_service_key(&d, "GET", "/libvirt/domains", &key, Value::Null);
    let start = with_service_key(&d, "PATCH", "/libvirt/domains/by-name/work", &key, json!({"power_mgt": "start"}));
    let xml = with_service_key(&d, "GET", "/libvirt/domains/by-name/work/xml_desc", &key, Value::Null);

    assert_eq!(envelope(list)["results"][0]["name"], "work");
    assert!(envelope(xml)["results"][0].as_str().is_some_and(|x| x.contains("<graphics type='vnc'")));
    assert_eq!(envelope(start), succeeded(json!([]), json!([{"start": "Domain started"}])));
    assert_eq!(power_state(&d, "work"), "Running");
}

#[test]
fn a_service_key_may_do_nothing_else_and_nothing_changes() {
    let d = with_qube();
    let key = service_key(&d);
    let refused = json!({"results": [], "success": false, "errors": [error(1, "Bad X-Auth-Key")],
        "messages": [{"auth": "A service key reads and runs power actions only"}]});

    for (method, path, body) in [
        ("PATCH", "/libvirt/domains/by-name/work", json!({"memory": 1024})),
        ("PATCH", "/libvirt/domains/by-name/work", json!([{"power_mgt": "start"}, {"autostart": true}])),
        ("DELETE", "/libvirt/domains/by-name/work", Value::Null),
        ("POST", "/libvirt/domains", json!("<domain><name>x</name></domain>")),
        ("PATCH", "/libvirt/networks/by-name/default", json!({"autostart": true})),
        // The secure XML has the console's password.
        ("GET", "/libvirt/domains/by-name/work/xml_desc?options=secure", Value::Null),
        ("GET", "/libvirt/domains/by-name/work/xml_desc?options=inactive,Secure", Value::Null),
    ] {
        let r = with_service_key(&d, method, path, &key, body.clone());

        assert_eq!(r.status(), 403, "{method} {path} {body}");
        assert_eq!(r.json::<Value>().expect("JSON"), refused);
    }
    assert_eq!(d.ok("admin.vm.property.Get+memory", "work", b""), "default=True type=int 400");
    assert_eq!(power_state(&d, "work"), "Halted");
}

#[test]
fn a_service_key_is_not_for_the_rhev_door_and_a_reissued_one_replaces_it() {
    let mut d = with_qube();
    let old = service_key(&d);

    let rhev = Client::new().get(d.url("/api/vms")).header("X-Auth-User-Service-Key", &old).send().expect("request");
    assert_eq!(rhev.status(), 401);

    // Only the key's hash is kept, and it outlives a restart; a new password leaves it alone.
    d.restart();
    d.add_user("admin", "another");
    assert_eq!(with_service_key(&d, "GET", "/libvirt/domains", &old, Value::Null).status(), 200);
    let new = service_key(&d);
    assert_eq!(with_service_key(&d, "GET", "/libvirt/domains", &old, Value::Null).status(), 401);
    assert_eq!(with_service_key(&d, "GET", "/libvirt/domains", &new, Value::Null).status(), 200);
    assert_eq!(with_service_key(&d, "GET", "/libvirt/domains", &"0".repeat(64), Value::Null).status(), 401);
    for file in ["corral.sqlite", "corral.sqlite-wal"] {
        let stored = std::fs::read(d.state.join(file)).unwrap_or_default();
        assert!(!stored.windows(64).any(|w| w == new.as_bytes()), "the key itself is in {file}");
    }
}

#[test]
fn a_wrong_key_is_401() {
    let d = daemon();

    let r = Client::new()
        .get(d.url("/libvirt/domains"))
        .header("X-Auth-Username", "admin")
        .header("X-Auth-Key", "wrong")
        .send()
        .expect("request");

    assert_eq!(r.status(), 401);
}

#[test]
fn basic_auth_is_accepted_too() {
    let d = daemon();

    let r = Client::new().get(d.url("/libvirt/domains")).basic_auth("admin", Some("secret")).send().expect("request");

    assert_eq!(envelope(r), succeeded(json!([]), json!([])));
}

#[test]
fn x_packet_id_is_echoed() {
    let d = daemon();

    let r = request(&d, "GET", "/libvirt/domains").header("X-Packet-ID", "p-42").send().expect("request");

    assert_eq!(r.headers()["x-packet-id"], "p-42");
}

#[test]
fn gzip_is_used_when_asked_for() {
    let d = daemon();
    let c = Client::builder().no_gzip().build().expect("client");

    let r = authed(c.get(d.url("/libvirt/domains"))).header("Accept-Encoding", "gzip").send().expect("request");

    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.bytes().expect("body")[..2], [0x1f, 0x8b]);
}

#[test]
fn deflate_is_used_when_gzip_is_not_asked_for() {
    let d = daemon();
    let c = Client::builder().no_gzip().build().expect("client");

    let r = authed(c.get(d.url("/libvirt/domains"))).header("Accept-Encoding", "deflate").send().expect("request");

    assert_eq!(r.headers()["content-encoding"], "deflate");
}

#[test]
fn without_accept_encoding_the_body_is_plain() {
    let d = daemon();
    let c = Client::builder().no_gzip().build().expect("client");

    let r = authed(c.get(d.url("/libvirt/domains"))).send().expect("request");

    assert!(r.headers().get("content-encoding").is_none());
    assert_eq!(r.text().expect("body"), r#"{"errors":[],"messages":[],"results":[],"success":true}"#);
}

#[test]
fn libvirt_alone_is_error_6() {
    let d = daemon();

    assert_eq!(get(&d, "/libvirt"), failed(json!([error(6, "Subsystem requires parameters")]), json!([])));
}

#[test]
fn an_unknown_collection_is_error_7() {
    let d = daemon();

    assert_eq!(get(&d, "/libvirt/pools"), failed(json!([error(7, "Bad subsystem parameter")]), json!([])));
}

#[test]
fn a_search_key_without_value_is_error_101() {
    let d = daemon();

    assert_eq!(get(&d, "/libvirt/domains/by-name"), failed(json!([error(101, "Invalid search key")]), json!([])));
}

#[test]
fn an_unknown_search_key_is_error_101() {
    let d = with_qube();

    assert_eq!(get(&d, "/libvirt/domains/by-id/work"), failed(json!([error(101, "Invalid search key")]), json!([])));
}

// ---------------------------------------------------------------------------------------------------------
// Async requests

#[test]
fn async_answers_an_eight_hex_digit_id() {
    let d = daemon();

    let r = request(&d, "GET", "/libvirt/domains?async=true").send().expect("request");

    assert_eq!(r.status(), 200);
    let id = r.text().expect("body");
    assert!(id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
}

/// Polls `/libvirt/async/{id}` until the request is done.
fn async_result(d: &Daemon, id: &str) -> Response {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = request(d, "GET", &format!("/libvirt/async/{id}")).send().expect("request");
        assert!(Instant::now() < deadline, "async request {id} still running");
        if r.status() != 202 {
            return r;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_async_result_is_302_with_the_envelope() {
    let d = with_qube();
    let id =
        request(&d, "GET", "/libvirt/domains/by-name/work?async=true").send().expect("request").text().expect("id");

    let r = async_result(&d, &id);

    assert_eq!(r.status(), 302);
    assert_eq!(r.json::<Value>().expect("JSON"), succeeded(json!([halted_info(&d)]), json!([])));
}

#[test]
fn an_async_result_is_given_once() {
    let d = daemon();
    let id = request(&d, "GET", "/libvirt/domains?async=1").send().expect("request").text().expect("id");
    async_result(&d, &id);

    let again = request(&d, "GET", &format!("/libvirt/async/{id}")).send().expect("request");

    assert_eq!(again.status(), 404);
}

#[test]
fn an_unknown_async_id_is_404() {
    let d = daemon();

    let r = request(&d, "GET", "/libvirt/async/zzz").send().expect("request");

    assert_eq!(r.status(), 404);
}

#[test]
fn an_async_target_without_an_id_is_400() {
    let d = daemon();

    let r = request(&d, "GET", "/libvirt/async").send().expect("request");

    assert_eq!(r.status(), 400);
    assert_eq!(r.text().expect("body"), "Invalid request target");
}

#[test]
fn an_async_retrieval_cannot_itself_be_async() {
    let d = daemon();

    let r = request(&d, "GET", "/libvirt/async/0000abcd?async=true").send().expect("request");

    assert_eq!(r.status(), 400);
    assert_eq!(r.text().expect("body"), "Async retrieve cannot be async'ed");
}

#[test]
fn an_async_patch_acts_like_a_synchronous_one() {
    let d = with_qube();
    let id = request(&d, "PATCH", "/libvirt/domains/by-name/work?async=true")
        .body(r#"{"power_mgt":"start"}"#)
        .send()
        .expect("request")
        .text()
        .expect("id");

    let r = async_result(&d, &id);

    assert_eq!(r.json::<Value>().expect("JSON"), succeeded(json!([]), json!([{"start": "Domain started"}])));
    assert_eq!(power_state(&d, "work"), "Running");
}

// ---------------------------------------------------------------------------------------------------------
// Domains: queries (B4, B5)

#[test]
fn a_fresh_daemon_lists_no_domains() {
    let d = daemon();

    assert_eq!(get(&d, "/libvirt/domains"), succeeded(json!([]), json!([])));
}

#[test]
fn a_qube_made_over_the_admin_socket_is_listed() {
    let d = with_qube();

    assert_eq!(get(&d, "/libvirt/domains"), succeeded(json!([halted_info(&d)]), json!([])));
}

#[test]
fn a_domain_by_name() {
    let d = with_qube();

    assert_eq!(get(&d, "/libvirt/domains/by-name/work"), succeeded(json!([halted_info(&d)]), json!([])));
}

#[test]
fn a_domain_by_uuid() {
    let d = with_qube();

    let answer = get(&d, &format!("/libvirt/domains/by-uuid/{}", d.uuid("work")));

    assert_eq!(answer, succeeded(json!([halted_info(&d)]), json!([])));
}

#[test]
fn an_unknown_name_is_error_100() {
    let d = daemon();

    assert_eq!(
        get(&d, "/libvirt/domains/by-name/nope"),
        failed(json!([error(100, "Bad object identifier")]), json!([]))
    );
}

#[test]
fn dom0_is_no_domain() {
    let d = daemon();

    assert_eq!(
        get(&d, "/libvirt/domains/by-name/dom0"),
        failed(json!([error(100, "Bad object identifier")]), json!([]))
    );
}

#[test]
fn a_running_qube_shows_libvirts_figures() {
    let d = with_running();
    let xid: i64 = prop(&d, "work", "xid").rsplit(' ').next().expect("xid").parse().expect("number");

    let answer = get(&d, "/libvirt/domains/by-name/work");

    let expected = json!({"name": "work", "uuid": d.uuid("work"), "id": xid, "status": "Running", "os": "hvm",
                          "ram": 409_600, "ram_max": 409_600, "cpu": 2});
    assert_eq!(answer, succeeded(json!([expected]), json!([])));
}

#[test]
fn a_halted_qube_shows_its_properties_in_kib() {
    let d = with_qube();
    d.ok("admin.vm.property.Set+memory", "work", b"300");
    d.ok("admin.vm.property.Set+maxmem", "work", b"1000");
    d.ok("admin.vm.property.Set+vcpus", "work", b"4");

    let answer = get(&d, "/libvirt/domains/by-name/work");

    assert_eq!(answer["results"][0]["ram"], 307_200);
    assert_eq!(answer["results"][0]["ram_max"], 1_024_000);
    assert_eq!(answer["results"][0]["cpu"], 4);
}

#[test]
fn a_paused_qube_is_paused() {
    let d = with_paused();

    assert_eq!(get(&d, "/libvirt/domains/by-name/work")["results"][0]["status"], "Paused");
}

#[test]
fn the_active_flag_leaves_halted_qubes_out() {
    let d = with_qube();

    assert_eq!(get(&d, "/libvirt/domains?active=true"), succeeded(json!([]), json!([])));
}

#[test]
fn an_empty_flag_value_means_true() {
    let d = with_qube();

    assert_eq!(get(&d, "/libvirt/domains?inactive&active"), succeeded(json!([]), json!([])));
}

#[test]
fn a_state_list_is_or_ed() {
    let d = with_paused();
    d.ok("admin.vm.Create.StandaloneVM", "dom0", b"name=idle label=red");

    let answer = get(&d, "/libvirt/domains?state=running,paused");

    assert_eq!(answer["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(answer["results"][0]["name"], "work");
}

#[test]
fn state_tokens_are_accepted_in_any_case() {
    let d = with_qube();

    assert_eq!(get(&d, "/libvirt/domains?state=Shutoff"), succeeded(json!([halted_info(&d)]), json!([])));
}

#[test]
fn an_unknown_state_token_is_301_then_102() {
    let d = with_qube();

    let answer = get(&d, "/libvirt/domains?state=sleeping");

    assert_eq!(answer, failed(json!([error(301, "Invalid flag"), error(102, "Search flag doesn't exist")]), json!([])));
}

#[test]
fn every_qube_is_persistent() {
    let d = with_qube();

    assert_eq!(get(&d, "/libvirt/domains?persistent=false"), succeeded(json!([]), json!([])));
}

#[test]
fn the_autostart_flag_follows_the_property() {
    let d = with_qube();
    d.ok("admin.vm.Create.StandaloneVM", "dom0", b"name=boot label=red");
    d.ok("admin.vm.property.Set+autostart", "boot", b"True");

    let answer = get(&d, "/libvirt/domains?autostart=yes");

    assert_eq!(answer["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(answer["results"][0]["name"], "boot");
}

#[test]
fn no_qube_has_a_managed_save_or_snapshots() {
    let d = with_qube();

    assert_eq!(get(&d, "/libvirt/domains?managed_save=1"), succeeded(json!([]), json!([])));
    assert_eq!(get(&d, "/libvirt/domains?has_snapshot=true"), succeeded(json!([]), json!([])));
}

#[test]
fn an_unreadable_flag_value_is_ignored() {
    let d = with_qube();

    assert_eq!(get(&d, "/libvirt/domains?active=maybe"), succeeded(json!([halted_info(&d)]), json!([])));
}

// ---------------------------------------------------------------------------------------------------------
// Domains: subqueries

#[test]
fn xml_desc_of_a_running_qube_is_libvirts() {
    let d = with_running();

    let answer = get(&d, "/libvirt/domains/by-name/work/xml_desc");

    let xml = answer["results"][0].as_str().expect("an XML string");
    assert!(xml.starts_with("<domain type='test'"), "{xml}");
    assert!(xml.contains(&format!("<uuid>{}</uuid>", d.uuid("work"))), "{xml}");
}

/// The facts of a domain XML two renderings of the same domain share: name, uuid, vcpus, memory in KiB and
/// the disks' files with their targets.
fn domain_facts(xml: &str) -> (String, String, String, u64, Vec<(String, String)>) {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    let root = doc.root_element();
    let text = |name: &str| {
        root.children().find(|n| n.has_tag_name(name)).and_then(|n| n.text()).unwrap_or_default().trim().to_string()
    };
    let memory = root.children().find(|n| n.has_tag_name("memory")).expect("memory");
    let amount: u64 = memory.text().unwrap_or_default().trim().parse().expect("memory amount");
    let kib = match memory.attribute("unit").unwrap_or("KiB") {
        "KiB" => amount,
        "MiB" => amount * 1024,
        other => panic!("memory unit {other}"),
    };
    let disks = root
        .descendants()
        .filter(|n| n.has_tag_name("disk"))
        .map(|disk| {
            let child = |tag: &str, attr: &str| {
                disk.children().find(|n| n.has_tag_name(tag)).and_then(|n| n.attribute(attr)).unwrap_or_default()
            };
            (child("source", "file").to_string(), child("target", "dev").to_string())
        })
        .collect();
    (text("name"), text("uuid"), text("vcpu"), kib, disks)
}

#[test]
fn xml_desc_of_a_qube_never_started_is_the_domain_its_start_defines() {
    let d = with_qube();

    let before = get(&d, "/libvirt/domains/by-name/work/xml_desc");
    d.ok("admin.vm.Start", "work", b"");
    let defined = get(&d, "/libvirt/domains/by-name/work/xml_desc?options=inactive");

    let before = domain_facts(before["results"][0].as_str().unwrap_or_else(|| panic!("an XML string: {before}")));
    let defined = domain_facts(defined["results"][0].as_str().expect("libvirt's XML"));
    assert_eq!(before, defined);
    assert_eq!(before.0, "work");
    assert_eq!(before.1, d.uuid("work"));
    assert_eq!(before.3, 400 * 1024);
    assert!(!before.4.is_empty(), "a StandaloneVM has disks");
}

#[test]
fn xml_desc_of_a_halted_qube_is_what_its_next_start_defines() {
    let d = with_running();
    d.ok("admin.vm.Kill", "work", b"");
    d.ok("admin.vm.property.Set+memory", "work", b"800");
    d.ok("admin.vm.property.Set+maxmem", "work", b"800");

    let answer = get(&d, "/libvirt/domains/by-name/work/xml_desc");

    let (name, _, _, memory_kib, _) = domain_facts(answer["results"][0].as_str().expect("an XML string"));
    assert_eq!((name.as_str(), memory_kib), ("work", 800 * 1024));
}

#[test]
fn xml_desc_of_a_halted_qube_shows_its_console_password_only_when_secure() {
    let d = with_qube();

    let plain = get(&d, "/libvirt/domains/by-name/work/xml_desc");
    let secure = get(&d, "/libvirt/domains/by-name/work/xml_desc?options=secure");

    let plain = plain["results"][0].as_str().expect("an XML string").to_string();
    let secure = secure["results"][0].as_str().expect("an XML string").to_string();
    assert!(plain.contains("<graphics type=\"vnc\"") && !plain.contains("passwd="), "{plain}");
    assert!(secure.contains(" passwd=\""), "{secure}");
}

#[test]
fn xml_desc_with_an_unknown_option_is_301() {
    let d = with_running();

    let answer = get(&d, "/libvirt/domains/by-name/work/xml_desc?options=secure,pretty");

    assert_eq!(answer, failed(json!([error(301, "Invalid flag")]), json!([])));
}

#[test]
fn scheduler_type_is_libvirts() {
    let d = with_running();

    let answer = get(&d, "/libvirt/domains/by-name/work/scheduler_type");

    // The test driver's scheduler.
    assert_eq!(answer, succeeded(json!([{"type": "fair", "params_count": 1}]), json!([])));
}

fn no_agent(sub: &str) -> Value {
    failed(
        json!([error(-1, "Unsupported")]),
        json!([{sub: "Qubes run without a guest agent, and only a guest agent can tell this"}]),
    )
}

#[test]
fn fs_info_needs_a_guest_agent() {
    let d = with_running();

    assert_eq!(get(&d, "/libvirt/domains/by-name/work/fs_info"), no_agent("fs_info"));
}

#[test]
fn hostname_needs_a_guest_agent() {
    let d = with_running();

    assert_eq!(get(&d, "/libvirt/domains/by-name/work/hostname"), no_agent("hostname"));
}

#[test]
fn time_needs_a_guest_agent() {
    let d = with_running();

    assert_eq!(get(&d, "/libvirt/domains/by-name/work/time"), no_agent("time"));
}

#[test]
fn launch_security_info_is_unsupported() {
    let d = with_running();

    let answer = get(&d, "/libvirt/domains/by-name/work/launch_security_info");

    let why = "Qubes do not run with launch security (AMD SEV), so there is nothing to report";
    assert_eq!(answer, failed(json!([error(-1, "Unsupported")]), json!([{"launch_security_info": why}])));
}

#[test]
fn an_unknown_subquery_is_a_bad_url() {
    let d = with_qube();

    assert_eq!(get(&d, "/libvirt/domains/by-name/work/colour"), failed(json!([error(2, "Bad URL")]), json!([])));
}

// ---------------------------------------------------------------------------------------------------------
// Domains: power_mgt (B7)

#[test]
fn start_is_visible_to_the_admin_api() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "start"}));

    assert_eq!(answer, succeeded(json!([]), json!([{"start": "Domain started"}])));
    assert_eq!(power_state(&d, "work"), "Running");
}

#[test]
fn start_of_an_active_domain_is_203() {
    let d = with_running();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "start"}));

    assert_eq!(answer, failed(json!([error(203, "Domain is already active")]), json!([])));
}

#[test]
fn start_with_the_paused_flag_leaves_it_paused() {
    let d = with_qube();

    let answer =
        patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": {"request": "start", "type": "paused"}}));

    assert_eq!(answer, succeeded(json!([]), json!([{"start": "Domain started"}])));
    assert_eq!(power_state(&d, "work"), "Paused");
}

#[test]
fn start_flags_are_accepted_in_any_case_and_as_arrays() {
    let d = with_qube();

    let body = json!({"power_mgt": {"request": "start", "type": ["FORCE_BOOT", "validate"]}});
    let answer = patch(&d, "/libvirt/domains/by-name/work", body);

    assert_eq!(answer, succeeded(json!([]), json!([{"start": "Domain started"}])));
}

#[test]
fn a_flag_the_request_does_not_take_is_301() {
    let d = with_qube();

    let body = json!({"power_mgt": {"request": "start", "type": "acpi_power_btn"}});
    let answer = patch(&d, "/libvirt/domains/by-name/work", body);

    assert_eq!(answer, failed(json!([error(301, "Invalid flag")]), json!([])));
    assert_eq!(power_state(&d, "work"), "Halted");
}

#[test]
fn shutdown_of_a_running_domain() {
    let d = with_running();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "shutdown"}));

    assert_eq!(answer, succeeded(json!([]), json!([{"shutdown": "Domain is being shutdown"}])));
}

#[test]
fn shutdown_of_a_halted_domain_is_201() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "shutdown"}));

    assert_eq!(answer, failed(json!([error(201, "Domain is not running")]), json!([])));
}

#[test]
fn shutdown_of_a_paused_domain_is_201() {
    let d = with_paused();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "shutdown"}));

    assert_eq!(answer, failed(json!([error(201, "Domain is not running")]), json!([])));
}

#[test]
fn destroy_kills_the_qube() {
    let d = with_running();

    let answer =
        patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": {"request": "destroy", "type": "graceful"}}));

    assert_eq!(answer, succeeded(json!([]), json!([{"destroy": "Domain destroyed"}])));
    assert_eq!(power_state(&d, "work"), "Halted");
}

#[test]
fn destroy_of_a_halted_domain_is_210() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "destroy"}));

    assert_eq!(answer, failed(json!([error(210, "Domain is not active")]), json!([])));
}

#[test]
fn reboot_leaves_it_running() {
    let d = with_running();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "reboot"}));

    assert_eq!(answer, succeeded(json!([]), json!([{"reboot": "Domain is being rebooted"}])));
    assert_eq!(power_state(&d, "work"), "Running");
}

#[test]
fn reboot_of_a_halted_domain_is_201() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "reboot"}));

    assert_eq!(answer, failed(json!([error(201, "Domain is not running")]), json!([])));
}

#[test]
fn reset_leaves_it_running() {
    let d = with_running();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "reset"}));

    assert_eq!(answer, succeeded(json!([]), json!([{"reset": "Domain was reset"}])));
    assert_eq!(power_state(&d, "work"), "Running");
}

#[test]
fn reset_takes_no_flag() {
    let d = with_running();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": {"request": "reset", "type": []}}));

    assert_eq!(answer, failed(json!([error(301, "Invalid flag")]), json!([])));
}

#[test]
fn reset_of_a_halted_domain_is_210() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "reset"}));

    assert_eq!(answer, failed(json!([error(210, "Domain is not active")]), json!([])));
}

#[test]
fn suspend_pauses_the_qube() {
    let d = with_running();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "suspend"}));

    assert_eq!(answer, succeeded(json!([]), json!([{"suspend": "Domain suspended"}])));
    assert_eq!(power_state(&d, "work"), "Paused");
}

#[test]
fn suspend_of_a_halted_domain_is_201() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "suspend"}));

    assert_eq!(answer, failed(json!([error(201, "Domain is not running")]), json!([])));
}

#[test]
fn resume_unpauses_the_qube() {
    let d = with_paused();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "resume"}));

    assert_eq!(answer, succeeded(json!([]), json!([{"resume": "Domain resumed"}])));
    assert_eq!(power_state(&d, "work"), "Running");
}

#[test]
fn resume_of_a_running_domain_is_211() {
    let d = with_running();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "resume"}));

    assert_eq!(answer, failed(json!([error(211, "Domain is not suspended")]), json!([])));
}

#[test]
fn a_flag_the_request_does_not_take_is_301_whatever_the_state() {
    // Each request in the state that fails its precondition, with a flag it does not take: the value and
    // its flags are checked first.
    let cases = [
        ("start", "graceful", true),
        ("shutdown", "paused", false),
        ("destroy", "paused", false),
        ("reboot", "paused", false),
        ("reset", "graceful", false),
        ("suspend", "graceful", false),
        ("resume", "graceful", true),
        ("destroy", "no_such_flag", false),
    ];
    let halted = with_qube();
    let running = with_running();

    for (request, flag, on_running) in cases {
        let d = if on_running { &running } else { &halted };
        let body = json!({"power_mgt": {"request": request, "type": flag}});

        let answer = patch(d, "/libvirt/domains/by-name/work", body);

        assert_eq!(answer, failed(json!([error(301, "Invalid flag")]), json!([])), "{request} {flag}");
    }
    assert_eq!(power_state(&halted, "work"), "Halted");
    assert_eq!(power_state(&running, "work"), "Running");
}

#[test]
fn a_qube_saved_to_disk_is_shut_off_with_a_managed_save_and_start_resumes_it() {
    let d = with_running();
    let id = d.uuid("work");
    let saved = authed(Client::new().post(d.url(&format!("/api/vms/{id}/suspend"))))
        .basic_auth("admin@internal", Some("secret"))
        .header("Content-Type", "application/xml")
        .body("<action/>")
        .send()
        .expect("request");
    assert_eq!(saved.status(), 200);

    let info = get(&d, "/libvirt/domains/by-name/work");
    let listed = get(&d, "/libvirt/domains?state=managed_save");
    let destroyed = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "destroy"}));
    let started = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "start"}));

    assert_eq!(info["results"][0]["status"], "Shutoff");
    assert_eq!(listed["results"][0]["name"], "work");
    assert_eq!(destroyed, failed(json!([error(210, "Domain is not active")]), json!([])));
    assert_eq!(started, succeeded(json!([]), json!([{"start": "Domain started"}])));
    assert_eq!(power_state(&d, "work"), "Running");
}

#[test]
fn an_unknown_power_request_is_300() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "hibernate"}));

    assert_eq!(answer, failed(json!([error(300, "Invalid power management value")]), json!([])));
}

#[test]
fn a_power_object_without_request_is_300() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": {"type": "paused"}}));

    assert_eq!(answer, failed(json!([error(300, "Invalid power management value")]), json!([])));
}

#[test]
fn a_failed_start_is_202_with_the_reason() {
    let d = with_qube();
    d.ok("admin.vm.feature.Set+prohibit-start", "work", b"under repair");

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"power_mgt": "start"}));

    let why = "Qube start is prohibited. Rationale: under repair";
    assert_eq!(
        answer,
        failed(json!([{"code": 202, "message": "Could not start the domain", "libvirt": why}]), json!([]))
    );
}

// ---------------------------------------------------------------------------------------------------------
// Domains: other PATCH actions (B6)

#[test]
fn renaming_is_impossible_and_says_why() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"name": "play"}));

    let why = "Operation not supported: qube names are fixed at creation, 'work' cannot become 'play'";
    assert_eq!(answer, failed(json!([{"code": 205, "message": "Renaming failed", "libvirt": why}]), json!([])));
}

#[test]
fn a_name_that_is_not_a_string_is_a_syntax_error() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"name": 7}));

    assert_eq!(answer, failed(json!([error(0, "Syntax error")]), json!([])));
}

#[test]
fn memory_in_kib_sets_the_memory_property_in_mib() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"memory": 1_048_576}));

    assert_eq!(answer, succeeded(json!([]), json!([])));
    assert_eq!(prop(&d, "work", "memory"), "default=False type=int 1024");
}

#[test]
fn memory_that_is_not_an_integer_is_a_syntax_error() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"memory": "1G"}));

    assert_eq!(answer, failed(json!([error(0, "Syntax error")]), json!([])));
}

#[test]
fn a_memory_the_qube_cannot_have_is_206() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"memory": 0}));

    let why = "memory must be positive";
    assert_eq!(
        answer,
        failed(json!([{"code": 206, "message": "Setting available memory failed", "libvirt": why}]), json!([]))
    );
}

#[test]
fn max_memory_sets_maxmem() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"max_memory": 2_097_152}));

    assert_eq!(answer, succeeded(json!([]), json!([])));
    assert_eq!(prop(&d, "work", "maxmem"), "default=False type=int 2048");
}

#[test]
fn max_memory_that_is_negative_is_a_syntax_error() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"max_memory": -1}));

    assert_eq!(answer, failed(json!([error(0, "Syntax error")]), json!([])));
}

#[test]
fn autostart_sets_the_property() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"autostart": true}));

    assert_eq!(answer, succeeded(json!([]), json!([])));
    assert_eq!(prop(&d, "work", "autostart"), "default=False type=bool True");
}

#[test]
fn autostart_that_is_not_a_bool_is_a_syntax_error() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"autostart": "yes"}));

    assert_eq!(answer, failed(json!([error(0, "Syntax error")]), json!([])));
}

#[test]
fn send_signal_is_unsupported_and_says_why() {
    let d = with_running();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"send_signal": {"pid": 1, "signal": "term"}}));

    let why = "Qubes run without a guest agent, which libvirt needs to signal a process in a guest";
    assert_eq!(answer, failed(json!([error(-1, "Unsupported")]), json!([{"send_signal": why}])));
}

#[test]
fn send_signal_with_an_unknown_signal_is_a_syntax_error() {
    let d = with_running();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"send_signal": {"pid": 1, "signal": "rt33"}}));

    assert_eq!(answer, failed(json!([error(0, "Syntax error")]), json!([])));
}

#[test]
fn send_keys_presses_keys_on_a_running_qube() {
    let d = with_running();

    let body = json!({"send_keys": {"keycode_set": "linux", "hold_time": 50, "keys": [29, 56, 111]}});
    let answer = patch(&d, "/libvirt/domains/by-name/work", body);

    assert_eq!(answer, succeeded(json!([]), json!([])));
    assert_eq!(power_state(&d, "work"), "Running");
}

#[test]
fn send_keys_to_a_halted_qube_is_210() {
    let d = with_qube();

    let body = json!({"send_keys": {"keycode_set": "xt", "hold_time": 0, "keys": [28]}});
    let answer = patch(&d, "/libvirt/domains/by-name/work", body);

    assert_eq!(answer, failed(json!([error(210, "Domain is not active")]), json!([])));
}

#[test]
fn send_keys_takes_one_to_sixteen_keys() {
    let d = with_running();

    for count in [0, 17] {
        let body = json!({"send_keys": {"keycode_set": "linux", "hold_time": 5, "keys": vec![30; count]}});
        let answer = patch(&d, "/libvirt/domains/by-name/work", body);

        let why = format!("Between 1 and 16 keys are pressed at once, not {count}");
        assert_eq!(answer, failed(json!([{"code": -2, "message": "Unknown error", "libvirt": why}]), json!([])));
    }
}

#[test]
fn send_keys_with_an_unknown_keycode_set_or_a_negative_key_is_a_syntax_error() {
    let d = with_running();

    for keys in [
        json!({"keycode_set": "ebcdic", "hold_time": 5, "keys": [30]}),
        json!({"keycode_set": "linux", "hold_time": 5, "keys": [-1]}),
        json!({"keycode_set": "linux", "hold_time": 4294967296u64, "keys": [30]}),
    ] {
        let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"send_keys": keys}));

        assert_eq!(answer, failed(json!([error(0, "Syntax error")]), json!([])), "{keys}");
    }
}

#[test]
fn send_keys_without_keys_is_a_syntax_error() {
    let d = with_running();

    let answer =
        patch(&d, "/libvirt/domains/by-name/work", json!({"send_keys": {"keycode_set": "xt", "hold_time": 5}}));

    assert_eq!(answer, failed(json!([error(0, "Syntax error")]), json!([])));
}

#[test]
fn an_unknown_action_is_123() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({"colour": "blue"}));

    assert_eq!(answer, failed(json!([error(123, "Unknown action")]), json!([])));
}

#[test]
fn only_the_first_key_is_the_action() {
    let d = with_qube();

    let answer = patch_text(&d, "/libvirt/domains/by-name/work", r#"{"depends":0,"power_mgt":"start"}"#);

    assert_eq!(answer, failed(json!([error(123, "Unknown action")]), json!([])));
}

#[test]
fn an_empty_action_object_is_a_bad_action() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!({}));

    assert_eq!(answer, failed(json!([error(122, "Bad action")]), json!([])));
}

#[test]
fn a_patch_body_that_is_neither_object_nor_array_is_error_3() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains/by-name/work", json!("start"));

    assert_eq!(answer, failed(json!([error(3, "Bad request")]), json!([])));
}

#[test]
fn an_array_of_actions_runs_in_order_with_depends() {
    let d = with_qube();

    let body = r#"[{"power_mgt": "start"}, {"power_mgt": "suspend", "depends": 0}]"#;
    let answer = patch_text(&d, "/libvirt/domains/by-name/work", body);

    assert_eq!(answer, succeeded(json!([]), json!([{"start": "Domain started"}, {"suspend": "Domain suspended"}])));
    assert_eq!(power_state(&d, "work"), "Paused");
}

#[test]
fn an_action_whose_dependency_failed_is_skipped() {
    let d = with_qube();

    let body = r#"[{"power_mgt": "shutdown"}, {"autostart": true, "depends": [0]}]"#;
    let answer = patch_text(&d, "/libvirt/domains/by-name/work", body);

    assert_eq!(answer, failed(json!([error(201, "Domain is not running")]), json!([])));
    assert_eq!(prop(&d, "work", "autostart"), "default=True type=bool False");
}

#[test]
fn a_depends_that_is_not_an_index_is_a_syntax_error() {
    let d = with_qube();

    let answer = patch_text(&d, "/libvirt/domains/by-name/work", r#"[{"autostart": true, "depends": "first"}]"#);

    assert_eq!(answer, failed(json!([error(0, "Syntax error")]), json!([])));
}

#[test]
fn a_patch_on_the_whole_list_needs_bulk() {
    let d = with_qube();

    let answer = patch(&d, "/libvirt/domains", json!({"power_mgt": "start"}));

    let why = "A PATCH or DELETE on the whole domain list needs ?bulk=true";
    assert_eq!(answer, failed(json!([error(3, "Bad request")]), json!([{"bulk": why}])));
    assert_eq!(power_state(&d, "work"), "Halted");
}

#[test]
fn a_bulk_patch_acts_on_every_selected_domain() {
    let d = with_qube();
    d.ok("admin.vm.Create.StandaloneVM", "dom0", b"name=play label=red");

    let answer = patch(&d, "/libvirt/domains?bulk=true&state=shutoff", json!({"power_mgt": "start"}));

    assert_eq!(answer, succeeded(json!([]), json!([{"start": "Domain started"}, {"start": "Domain started"}])));
    assert_eq!((power_state(&d, "play"), power_state(&d, "work")), ("Running".to_string(), "Running".to_string()));
}

// ---------------------------------------------------------------------------------------------------------
// Domains: DELETE (B8)

#[test]
fn delete_removes_the_qube() {
    let d = with_qube();

    let answer = envelope(request(&d, "DELETE", "/libvirt/domains/by-name/work").send().expect("request"));

    assert_eq!(answer, succeeded(json!([{"deleted": true}]), json!([])));
    assert_eq!(d.err("admin.vm.List", "work", b"").0, "QubesVMNotFoundError");
}

#[test]
fn delete_of_a_running_qube_is_216_with_the_reason() {
    let d = with_running();

    let answer = envelope(request(&d, "DELETE", "/libvirt/domains/by-name/work").send().expect("request"));

    let why = "Domain is not powered off: 'work'";
    assert_eq!(
        answer,
        failed(
            json!([{"code": 216, "message": "Cannot delete the domain", "libvirt": why}]),
            json!([{"libvirt": why}])
        )
    );
}

#[test]
fn delete_with_known_options_removes_the_qube() {
    let d = with_qube();

    let path = "/libvirt/domains/by-name/work?options=managed_save,snapshots_metadata,nvram";
    let answer = envelope(request(&d, "DELETE", path).send().expect("request"));

    assert_eq!(answer, succeeded(json!([{"deleted": true}]), json!([])));
}

#[test]
fn delete_with_an_unknown_option_is_301() {
    let d = with_qube();

    let answer =
        envelope(request(&d, "DELETE", "/libvirt/domains/by-name/work?options=everything").send().expect("request"));

    assert_eq!(answer, failed(json!([error(301, "Invalid flag")]), json!([])));
    assert_eq!(power_state(&d, "work"), "Halted");
}

#[test]
fn a_delete_on_the_whole_list_needs_bulk() {
    let d = with_qube();

    let answer = envelope(request(&d, "DELETE", "/libvirt/domains").send().expect("request"));

    assert_eq!(answer["errors"], json!([error(3, "Bad request")]));
    assert_eq!(power_state(&d, "work"), "Halted");
}

// ---------------------------------------------------------------------------------------------------------
// Domains: POST (B4, B10)

#[test]
fn post_creates_a_running_standalone_qube_from_xml() {
    let d = daemon();

    let answer = send(&d, "POST", "/libvirt/domains", json!(domain_xml("web")));

    assert_eq!(answer, succeeded(json!([{"created": true}]), json!([])));
    assert_eq!(power_state(&d, "web"), "Running");
    assert!(d.ok("admin.vm.List", "web", b"").starts_with("web class=StandaloneVM"));
    assert_eq!(prop(&d, "web", "memory"), "default=False type=int 512");
    assert_eq!(prop(&d, "web", "vcpus"), "default=False type=int 3");
    assert_eq!(prop(&d, "web", "label"), "default=False type=label red");
}

#[test]
fn post_persistent_creates_without_starting() {
    let d = daemon();

    let answer = send(&d, "POST", "/libvirt/domains?persistent=true", json!(domain_xml("web")));

    assert_eq!(answer, succeeded(json!([{"created": true}]), json!([])));
    assert_eq!(power_state(&d, "web"), "Halted");
}

#[test]
fn post_keeps_the_uuid_of_the_xml() {
    let d = daemon();
    let xml = "<domain><name>web</name><uuid>6a7e3c52-1f00-4d3c-9c1b-3b7a4a2f0a11</uuid></domain>";

    send(&d, "POST", "/libvirt/domains?persistent=true", json!(xml));

    assert_eq!(d.uuid("web"), "6a7e3c52-1f00-4d3c-9c1b-3b7a4a2f0a11");
}

#[test]
fn post_of_text_that_is_not_xml_is_105() {
    let d = daemon();

    let answer = send(&d, "POST", "/libvirt/domains", json!("not a domain"));

    let why = "XML error: no <domain> element";
    assert_eq!(answer, failed(json!([{"code": 105, "message": "Failed to create domain", "libvirt": why}]), json!([])));
}

#[test]
fn post_with_a_vcpu_count_that_does_not_fit_is_105_and_creates_nothing() {
    let d = daemon();
    let xml = "<domain><name>web</name><memory unit='MiB'>512</memory><vcpu>4294967297</vcpu></domain>";

    let answer = send(&d, "POST", "/libvirt/domains", json!(xml));

    let why = "vcpus must be at most 4294967295";
    assert_eq!(answer, failed(json!([{"code": 105, "message": "Failed to create domain", "libvirt": why}]), json!([])));
    assert!(!d.ok("admin.vm.List", "dom0", b"").contains("web "));
}

#[test]
fn post_with_an_invalid_name_is_105() {
    let d = daemon();

    let answer = send(&d, "POST", "/libvirt/domains", json!(domain_xml("9lives")));

    let why = "VM name cannot start with hyphen, underscore, dot or numbers";
    assert_eq!(answer, failed(json!([{"code": 105, "message": "Failed to create domain", "libvirt": why}]), json!([])));
}

#[test]
fn post_of_an_existing_name_is_105() {
    let d = with_qube();

    let answer = send(&d, "POST", "/libvirt/domains", json!(domain_xml("work")));

    let why = "Qube already exists: work";
    assert_eq!(answer, failed(json!([{"code": 105, "message": "Failed to create domain", "libvirt": why}]), json!([])));
}

#[test]
fn post_of_a_json_object_is_unsupported() {
    let d = daemon();

    let answer = send(&d, "POST", "/libvirt/domains", json!({"name": "fedora-vm", "os": "Linux"}));

    let why = "A domain is created from its XML, given as a JSON string";
    assert_eq!(answer, failed(json!([error(-1, "Unsupported")]), json!([{"create": why}])));
}

#[test]
fn post_of_a_number_is_a_syntax_error() {
    let d = daemon();

    let answer = send(&d, "POST", "/libvirt/domains", json!(42));

    assert_eq!(answer, failed(json!([error(0, "Syntax error")]), json!([])));
}

#[test]
fn post_of_an_array_creates_each_domain() {
    let d = daemon();

    let answer = send(&d, "POST", "/libvirt/domains?persistent=1", json!([domain_xml("one"), domain_xml("two")]));

    assert_eq!(answer, succeeded(json!([{"created": true}, {"created": true}]), json!([])));
    assert_eq!((power_state(&d, "one"), power_state(&d, "two")), ("Halted".to_string(), "Halted".to_string()));
}

/// A daemon whose new qubes get the netvm `net`, which may not start: their own start fails.
fn with_unstartable_netvm() -> Daemon {
    let d = daemon().with_default_netvm("net");
    d.ok("admin.vm.feature.Set+prohibit-start", "net", b"offline");
    d
}

#[test]
fn a_create_whose_start_fails_is_105_with_the_reason() {
    let d = with_unstartable_netvm();

    let answer = send(&d, "POST", "/libvirt/domains", json!(domain_xml("web")));

    let why = "Qube start is prohibited. Rationale: offline";
    assert_eq!(answer, failed(json!([{"code": 105, "message": "Failed to create domain", "libvirt": why}]), json!([])));
}

#[test]
fn a_qube_that_cannot_start_is_not_left_behind() {
    let d = with_unstartable_netvm();

    send(&d, "POST", "/libvirt/domains", json!(domain_xml("web")));

    assert_eq!(d.err("admin.vm.List", "web", b"").0, "QubesVMNotFoundError");
}

/// A daemon whose new qubes get the netvm `work`, whose template's root image is gone: only starting it
/// can tell that it does not start.
fn with_broken_netvm() -> Daemon {
    let d = daemon().with_appvm();
    d.ok("admin.vm.property.Set+provides_network", "work", b"True");
    d.ok("admin.property.Set+default_netvm", "dom0", b"work");
    std::fs::remove_file(d.state.join("vm-templates/tpl/root.img")).expect("remove the template's root image");
    d
}

#[test]
fn a_create_whose_start_fails_once_the_qube_exists_keeps_it_shut_off_and_says_so() {
    let d = with_broken_netvm();

    let answer = send(&d, "POST", "/libvirt/domains", json!(domain_xml("web")));

    let image = d.state.join("vm-templates/tpl/root.img");
    let why = format!("Start failed: volume root: Missing image file: {}", image.display());
    let message = "Domain web was created and stays shut off: its start failed";
    assert_eq!(
        answer,
        json!({"results": [{"created": true}], "success": false,
               "errors": [{"code": 202, "message": "Could not start the domain", "libvirt": why}],
               "messages": [{"create": message}]})
    );
    assert_eq!(power_state(&d, "web"), "Halted");
    assert_eq!(prop(&d, "web", "memory"), "default=False type=int 512");
}

// ---------------------------------------------------------------------------------------------------------
// Networks

fn default_network() -> Value {
    json!({"name": "default", "uuid": DEFAULT_NET_UUID, "active": true, "autostart": false, "persistent": true})
}

#[test]
fn networks_lists_libvirts_networks() {
    let d = daemon();

    assert_eq!(get(&d, "/libvirt/networks"), succeeded(json!([default_network()]), json!([])));
}

#[test]
fn a_network_by_name_shows_its_bridge() {
    let d = daemon();

    let mut expected = default_network();
    expected["bridge"] = json!("virbr0");
    assert_eq!(get(&d, "/libvirt/networks/by-name/default"), succeeded(json!([expected]), json!([])));
}

#[test]
fn a_network_by_uuid() {
    let d = daemon();

    let answer = get(&d, &format!("/libvirt/networks/by-uuid/{DEFAULT_NET_UUID}"));

    assert_eq!(answer["results"][0]["name"], "default");
}

#[test]
fn an_unknown_network_is_100() {
    let d = daemon();

    assert_eq!(
        get(&d, "/libvirt/networks/by-name/nope"),
        failed(json!([error(100, "Bad object identifier")]), json!([]))
    );
}

#[test]
fn network_flags_filter_the_list() {
    let d = daemon();

    assert_eq!(get(&d, "/libvirt/networks?active=false"), succeeded(json!([]), json!([])));
}

#[test]
fn dumpxml_is_the_networks_xml() {
    let d = daemon();

    let answer = get(&d, "/libvirt/networks/by-name/default/dumpxml");

    let xml = answer["results"][0].as_str().expect("an XML string");
    assert!(xml.starts_with("<network>") && xml.contains(DEFAULT_NET_UUID), "{xml}");
}

#[test]
fn a_dumpxml_libvirt_refuses_is_an_error_with_libvirts_reason() {
    let d = daemon();

    // The test driver has no inactive network XML.
    let answer = get(&d, "/libvirt/networks/by-name/default/dumpxml?options=inactive");

    let why = "Cannot read the network XML: unsupported flags (0x1) in function testNetworkGetXMLDesc";
    assert_eq!(answer, failed(json!([{"code": -2, "message": "Unknown error", "libvirt": why}]), json!([])));
}

#[test]
fn dumpxml_with_an_unknown_option_is_301() {
    let d = daemon();

    let answer = get(&d, "/libvirt/networks/by-name/default/dumpxml?options=secure");

    assert_eq!(answer, failed(json!([error(301, "Invalid flag")]), json!([])));
}

#[test]
fn dhcp_leases_are_libvirts_and_the_test_driver_has_none_to_tell() {
    let d = daemon();

    let answer = get(&d, "/libvirt/networks/by-name/default/dhcp-leases?mac=52:54:00:12:34:56");

    let why = "Cannot read the DHCP leases: this function is not supported by the connection driver: \
               virNetworkGetDHCPLeases";
    assert_eq!(answer, failed(json!([{"code": -2, "message": "Unknown error", "libvirt": why}]), json!([])));
}

#[test]
fn dhcp_leases_of_a_malformed_mac_are_refused_before_libvirt_is_asked() {
    let d = daemon();

    for mac in ["52:54:00:12:34", "52-54-00-12-34-56", "zz:54:00:12:34:56", "52:54:00:12:34:56%00"] {
        let answer = get(&d, &format!("/libvirt/networks/by-name/default/dhcp-leases?mac={mac}"));

        let why = "Invalid MAC address: expected six hex pairs like 52:54:00:12:34:56";
        assert_eq!(
            answer,
            failed(json!([{"code": -2, "message": "Unknown error", "libvirt": why}]), json!([])),
            "{mac}"
        );
    }
}

/// A NAT'd network on its own bridge and subnet.
fn network_xml(name: &str, bridge: &str) -> String {
    format!(
        "<network><name>{name}</name><forward mode='nat'/><bridge name='{bridge}'/>\
         <ip address='192.168.150.1' netmask='255.255.255.0'/></network>"
    )
}

fn network_names(d: &Daemon) -> Vec<String> {
    let list = get(d, "/libvirt/networks");
    list["results"].as_array().expect("results").iter().map(|n| n["name"].as_str().expect("name").to_string()).collect()
}

#[test]
fn a_network_is_created_transient_and_started_from_its_xml() {
    let d = daemon();

    let answer = send(&d, "POST", "/libvirt/networks", json!(network_xml("lab", "virbr9")));

    assert_eq!(answer, succeeded(json!([{"created": true}]), json!([])));
    let lab = get(&d, "/libvirt/networks/by-name/lab");
    assert_eq!(lab["results"][0]["active"], true);
    assert_eq!(lab["results"][0]["persistent"], false);
    assert_eq!(lab["results"][0]["bridge"], "virbr9");
    assert_eq!(network_names(&d), ["default", "lab"]);
}

#[test]
fn each_network_of_an_array_is_created_on_its_own() {
    let d = daemon();
    let body = json!([network_xml("a", "virbr7"), "<network><name>broken", network_xml("c", "virbr8")]);

    let answer = send(&d, "POST", "/libvirt/networks", body);

    assert_eq!(answer["success"], false);
    assert_eq!(answer["results"], json!([{"created": true}, {"created": true}]));
    assert_eq!(answer["errors"].as_array().map(Vec::len), Some(1));
    assert_eq!(answer["errors"][0]["code"], -999);
    assert_eq!(network_names(&d), ["a", "c", "default"]);
}

#[test]
fn a_network_libvirt_refuses_is_minus_999_with_its_reason_and_nothing_is_created() {
    let d = daemon();

    let answer = send(&d, "POST", "/libvirt/networks", json!("<network><name>half"));

    assert_eq!(answer["success"], false);
    assert_eq!(answer["errors"][0]["code"], -999);
    assert_eq!(answer["errors"][0]["message"], "Unknown error");
    let why = answer["errors"][0]["libvirt"].as_str().expect("libvirt's reason");
    assert!(why.starts_with("Cannot create the network: "), "{why}");
    assert_eq!(network_names(&d), ["default"]);
}

#[test]
fn a_network_described_as_an_object_is_unsupported_and_other_types_are_syntax_errors() {
    let d = daemon();

    let object = send(&d, "POST", "/libvirt/networks", json!({"name": "lab"}));
    let number = send(&d, "POST", "/libvirt/networks", json!(7));

    let why = "A network is created from its XML, given as a JSON string";
    assert_eq!(object, failed(json!([error(-1, "Unsupported")]), json!([{"create": why}])));
    assert_eq!(number, failed(json!([error(0, "Syntax error")]), json!([])));
    assert_eq!(network_names(&d), ["default"]);
}

#[test]
fn deleting_a_transient_network_stops_it_and_it_is_gone() {
    let d = daemon();
    send(&d, "POST", "/libvirt/networks", json!(network_xml("lab", "virbr9")));

    let answer = envelope(request(&d, "DELETE", "/libvirt/networks/by-name/lab").send().expect("request"));

    assert_eq!(answer, succeeded(json!([{"deleted": true}]), json!([])));
    assert_eq!(network_names(&d), ["default"]);
}

#[test]
fn deleting_a_running_persistent_network_only_undefines_it_which_the_test_driver_refuses() {
    let d = daemon();

    // libvirtd's network driver lets a running network go on as a transient one; the test driver
    // refuses, and the refusal is passed on as it is. Nothing is stopped to make the delete pass.
    let answer = envelope(request(&d, "DELETE", "/libvirt/networks/by-name/default").send().expect("request"));

    let why = "Cannot undefine the network: Requested operation is not valid: Network 'default' is still running";
    assert_eq!(answer, failed(json!([error(-999, "Unknown error")]), json!([{"libvirt": why}])));
    assert_eq!(get(&d, "/libvirt/networks")["results"], json!([default_network()]));
}

#[test]
fn deleting_an_unknown_network_is_100() {
    let d = daemon();

    let answer = envelope(request(&d, "DELETE", "/libvirt/networks/by-name/nope").send().expect("request"));

    assert_eq!(answer, failed(json!([error(100, "Bad object identifier")]), json!([])));
}

#[test]
fn deleting_the_whole_network_list_needs_bulk() {
    let d = daemon();
    send(&d, "POST", "/libvirt/networks", json!(network_xml("lab", "virbr9")));

    let refused = envelope(request(&d, "DELETE", "/libvirt/networks?persistent=false").send().expect("request"));
    assert_eq!(
        refused,
        failed(
            json!([error(3, "Bad request")]),
            json!([{"bulk": "A PATCH or DELETE on the whole network list needs ?bulk=true"}])
        )
    );
    assert_eq!(network_names(&d), ["default", "lab"]);

    let done = envelope(request(&d, "DELETE", "/libvirt/networks?persistent=false&bulk=true").send().expect("request"));
    assert_eq!(done, succeeded(json!([{"deleted": true}]), json!([])));
    assert_eq!(network_names(&d), ["default"]);
}

#[test]
fn patch_autostart_sets_a_persistent_networks_autostart() {
    let d = daemon();

    let on = patch(&d, "/libvirt/networks/by-name/default", json!({"autostart": true}));

    assert_eq!(on, succeeded(json!([]), json!([])));
    assert_eq!(get(&d, "/libvirt/networks/by-name/default")["results"][0]["autostart"], true);
    assert_eq!(get(&d, "/libvirt/networks?autostart=true")["results"].as_array().map(Vec::len), Some(1));

    patch(&d, "/libvirt/networks/by-name/default", json!([{"autostart": false}]));

    assert_eq!(get(&d, "/libvirt/networks/by-name/default")["results"][0]["autostart"], false);
}

#[test]
fn patch_networks_with_a_wrong_value_or_an_unknown_action() {
    let d = daemon();

    let wrong = patch(&d, "/libvirt/networks/by-name/default", json!({"autostart": "yes"}));
    let unknown = patch(&d, "/libvirt/networks/by-name/default", json!({"name": "other"}));

    assert_eq!(wrong, failed(json!([error(0, "Syntax error")]), json!([])));
    assert_eq!(unknown, failed(json!([error(123, "Unknown action")]), json!([])));
    assert_eq!(network_names(&d), ["default"]);
}
