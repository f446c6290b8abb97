//! `/api/vms` over real HTTP, and the wire contract the oVirt v3 SDK relies on (spec A14): its headers,
//! matrix parameters, Basic plus cookie, `DELETE` with an `<action/>` body, fault parsing.

mod support;

use reqwest::blocking::{Client, RequestBuilder, Response};
use support::volumes::install_kernel;
use support::Daemon;

const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>";

fn daemon() -> Daemon {
    Daemon::start().with_user().with_template()
}

/// `daemon` plus AppVM `work` on the template.
fn with_work() -> Daemon {
    Daemon::start().with_user().with_appvm()
}

/// What the SDK sends on every request.
fn sdk(rb: RequestBuilder) -> RequestBuilder {
    rb.basic_auth("admin@internal", Some("secret"))
        .header("Version", "3")
        .header("Content-Type", "application/xml")
        .header("Accept", "application/xml")
        .header("Filter", "False")
}

fn text(r: Response) -> String {
    r.text().expect("body")
}

fn create_body(name: &str, template: &str) -> String {
    format!(
        "<vm><name>{name}</name><template><name>{template}</name></template>\
         <cluster><name>Default</name></cluster><memory>268435456</memory>\
         <cpu><topology cores=\"1\" sockets=\"3\"/></cpu><description>made over REST</description></vm>"
    )
}

#[test]
fn create_with_expect_is_201_with_location_and_visible_to_the_admin_api() {
    let d = daemon();
    let c = Client::new();

    let r =
        sdk(c.post(d.url("/api/vms"))).header("Expect", "201-created").body(create_body("web", "tpl")).send().unwrap();

    assert_eq!(r.status(), 201);
    let id = d.uuid("web");
    assert_eq!(r.headers()["location"], format!("/api/vms/{id}").as_str());
    assert!(d.ok("admin.vm.List", "dom0", b"").contains("web class=AppVM state=Halted"));
    assert_eq!(d.ok("admin.vm.property.Get+template", "web", b""), "default=False type=vm tpl");
    assert_eq!(d.ok("admin.vm.property.Get+memory", "web", b""), "default=False type=int 256");
    assert_eq!(d.ok("admin.vm.property.Get+vcpus", "web", b""), "default=False type=int 3");
    assert_eq!(d.ok("admin.vm.notes.Get", "web", b""), "made over REST");
}

#[test]
fn create_without_expect_is_202_with_creation_status() {
    let d = daemon();
    let c = Client::new();

    let r = sdk(c.post(d.url("/api/vms"))).body(create_body("web", "Blank")).send().unwrap();

    assert_eq!(r.status(), 202);
    let body = text(r);
    assert!(body.contains("<creation_status>") && body.contains("rel=\"creation_status\""), "{body}");
    assert!(d.ok("admin.vm.List", "dom0", b"").contains("web class=StandaloneVM"));
}

#[test]
fn create_without_name_is_400_fault_and_changes_nothing() {
    let d = daemon();
    let before = d.ok("admin.vm.List", "dom0", b"");
    let c = Client::new();

    let r = sdk(c.post(d.url("/api/vms")))
        .body("<vm><template><name>Blank</name></template><cluster><name>Default</name></cluster></vm>")
        .send()
        .unwrap();

    assert_eq!(r.status(), 400);
    assert!(text(r).starts_with(DECL));
    assert_eq!(d.ok("admin.vm.List", "dom0", b""), before);
}

#[test]
fn create_with_malformed_xml_is_400() {
    let d = daemon();
    let c = Client::new();

    let r = sdk(c.post(d.url("/api/vms"))).body("<vm><name>x</vm>").send().unwrap();

    assert_eq!(r.status(), 400);
}

#[test]
fn create_with_invalid_qube_name_is_400_and_changes_nothing() {
    let d = daemon();
    let before = d.ok("admin.vm.List", "dom0", b"");
    let c = Client::new();

    let r = sdk(c.post(d.url("/api/vms"))).body(create_body("1bad", "Blank")).send().unwrap();

    assert_eq!(r.status(), 400);
    assert_eq!(d.ok("admin.vm.List", "dom0", b""), before);
}

#[test]
fn qube_created_over_the_admin_api_is_listed_at_once() {
    let d = with_work();
    let c = Client::new();

    let body = text(sdk(c.get(d.url("/api/vms;case_sensitive=True"))).send().unwrap());

    assert!(body.contains("<name>work</name>") && body.contains("<name>tpl</name>"), "{body}");
}

#[test]
fn search_by_name_with_wildcard_and_max() {
    let d = daemon();
    for n in ["web1", "web2", "db1"] {
        d.ok("admin.vm.Create.AppVM+tpl", "dom0", format!("name={n} label=red").as_bytes());
    }
    let c = Client::new();

    let body = text(sdk(c.get(d.url("/api/vms;max=1?search=name%3Dweb*"))).send().unwrap());

    assert_eq!(body.matches("<vm ").count(), 1, "{body}");
    assert!(body.contains("<name>web1</name>"), "{body}");
}

#[test]
fn search_by_status_case_insensitively() {
    let d = with_work();
    d.ok("admin.vm.Start", "work", b"");
    let c = Client::new();

    let body = text(sdk(c.get(d.url("/api/vms;case-sensitive=false?search=status%3DUP"))).send().unwrap());

    assert_eq!(body.matches("<vm ").count(), 1, "{body}");
    assert!(body.contains("<name>work</name>"));
}

#[test]
fn get_unknown_id_is_404_fault_the_sdk_can_parse() {
    let d = daemon();
    let c = Client::new();

    let r = sdk(c.get(d.url("/api/vms/11111111-2222-3333-4444-555555555555"))).send().unwrap();

    assert_eq!(r.status(), 404);
    let body = text(r);
    assert!(body.starts_with(DECL), "{body}");
    assert!(body.contains("<reason>Operation Failed</reason>") && body.contains("<detail>["), "{body}");
}

#[test]
fn json_representation_on_request() {
    let d = daemon();
    let id = d.uuid("tpl");
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=work label=red");
    let work = d.uuid("work");
    let c = Client::new();

    let r = c
        .get(d.url(&format!("/api/vms/{work}")))
        .basic_auth("admin@internal", Some("secret"))
        .header("Accept", "application/json")
        .send()
        .unwrap();

    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["name"], "work");
    assert_eq!(v["status"]["state"], "down");
    assert_eq!(v["template"]["id"], id.as_str());
}

#[test]
fn update_memory_and_description() {
    let d = with_work();
    let id = d.uuid("work");
    let c = Client::new();

    let r = sdk(c.put(d.url(&format!("/api/vms/{id}"))))
        .body("<vm><memory>1073741824</memory><description>hello</description></vm>")
        .send()
        .unwrap();

    assert_eq!(r.status(), 200);
    assert_eq!(d.ok("admin.vm.property.Get+memory", "work", b""), "default=False type=int 1024");
    assert_eq!(d.ok("admin.vm.notes.Get", "work", b""), "hello");
}

#[test]
fn update_naming_another_id_is_409_and_changes_nothing() {
    let d = with_work();
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=other label=red");
    let (id, other) = (d.uuid("work"), d.uuid("other"));
    let (work_before, other_before) =
        (d.ok("admin.vm.property.GetAll", "work", b""), d.ok("admin.vm.property.GetAll", "other", b""));
    let c = Client::new();

    let xml = sdk(c.put(d.url(&format!("/api/vms/{id}"))))
        .body(format!("<vm id=\"{other}\"><memory>1073741824</memory><description>moved</description></vm>"))
        .send()
        .unwrap();
    let json = c
        .put(d.url(&format!("/api/vms/{id}")))
        .basic_auth("admin@internal", Some("secret"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/xml")
        .body(format!(r#"{{"id":"{other}","memory":1073741824}}"#))
        .send()
        .unwrap();

    assert_eq!(xml.status(), 409);
    assert!(text(xml).contains("<fault>"));
    assert_eq!(json.status(), 409);
    assert_eq!(d.ok("admin.vm.property.GetAll", "work", b""), work_before);
    assert_eq!(d.ok("admin.vm.property.GetAll", "other", b""), other_before);
    assert_eq!(d.ok("admin.vm.notes.Get", "work", b""), "");
}

#[test]
fn update_naming_its_own_id_is_200() {
    let d = with_work();
    let id = d.uuid("work");

    let r = sdk(Client::new().put(d.url(&format!("/api/vms/{id}"))))
        .body(format!("<vm id=\"{}\"><memory>1073741824</memory></vm>", id.to_uppercase()))
        .send()
        .unwrap();

    assert_eq!(r.status(), 200);
    assert_eq!(d.ok("admin.vm.property.Get+memory", "work", b""), "default=False type=int 1024");
}

#[test]
fn update_of_the_name_is_409_and_an_invalid_value_changes_nothing() {
    let d = with_work();
    let id = d.uuid("work");
    let before = d.ok("admin.vm.property.GetAll", "work", b"");
    let c = Client::new();

    let renamed = sdk(c.put(d.url(&format!("/api/vms/{id}")))).body("<vm><name>other</name></vm>").send().unwrap();
    let invalid = sdk(c.put(d.url(&format!("/api/vms/{id}"))))
        .body("<vm><memory>1073741824</memory><cpu><topology sockets=\"x\"/></cpu></vm>")
        .send()
        .unwrap();

    assert_eq!(renamed.status(), 409);
    assert_eq!(invalid.status(), 400);
    assert_eq!(d.ok("admin.vm.property.GetAll", "work", b""), before);
}

#[test]
fn a_cpu_topology_too_large_for_a_vcpu_count_is_400_and_changes_nothing() {
    let d = with_work();
    let id = d.uuid("work");
    let before = d.ok("admin.vm.property.GetAll", "work", b"");
    let c = Client::new();
    let put = |topology: &str| {
        sdk(c.put(d.url(&format!("/api/vms/{id}"))))
            .body(format!("<vm><cpu><topology {topology}/></cpu></vm>"))
            .send()
            .unwrap()
    };

    let wraps_u32 = put("sockets=\"65537\" cores=\"65536\"");
    let wraps_u64 = put("sockets=\"4294967296\" cores=\"4294967296\" threads=\"2\"");

    assert_eq!(wraps_u32.status(), 400);
    assert_eq!(wraps_u64.status(), 400);
    assert_eq!(d.ok("admin.vm.property.GetAll", "work", b""), before);
}

#[test]
fn start_action_returns_complete_action_and_the_qube_runs() {
    let d = with_work();
    let id = d.uuid("work");
    let c = Client::new();

    let r = sdk(c.post(d.url(&format!("/api/vms/{id}/start")))).body("<action/>").send().unwrap();

    assert_eq!(r.status(), 200);
    assert!(text(r).contains("<state>complete</state>"));
    assert!(d.ok("admin.vm.CurrentState", "work", b"").ends_with("power_state=Running"));
}

#[test]
fn stop_of_a_halted_vm_is_409() {
    let d = with_work();
    let id = d.uuid("work");
    let c = Client::new();

    let r = sdk(c.post(d.url(&format!("/api/vms/{id}/stop")))).body("<action/>").send().unwrap();

    assert_eq!(r.status(), 409);
}

#[test]
fn delete_with_action_body_is_204_and_the_qube_is_gone() {
    let d = with_work();
    let id = d.uuid("work");
    let c = Client::new();

    let r = sdk(c.delete(d.url(&format!("/api/vms/{id}")))).body("<action/>").send().unwrap();

    assert_eq!(r.status(), 204);
    assert!(!d.ok("admin.vm.List", "dom0", b"").contains("work "));
}

#[test]
fn delete_of_a_running_vm_is_409_unless_forced() {
    let d = with_work();
    d.ok("admin.vm.Start", "work", b"");
    let id = d.uuid("work");
    let c = Client::new();

    let plain = sdk(c.delete(d.url(&format!("/api/vms/{id}")))).body("<action/>").send().unwrap();
    let forced =
        sdk(c.delete(d.url(&format!("/api/vms/{id}")))).body("<action><force>true</force></action>").send().unwrap();

    assert_eq!(plain.status(), 409);
    assert_eq!(forced.status(), 204);
}

#[test]
fn async_delete_answers_202_and_the_qube_goes() {
    let d = with_work();
    let id = d.uuid("work");
    let c = Client::new();

    let matrix = sdk(c.delete(d.url(&format!("/api/vms/{id};async=true")))).body("<action/>").send().unwrap();

    assert_eq!(matrix.status(), 202);
    assert_eq!(matrix.text().unwrap(), "");
    let deadline = std::time::Instant::now() + support::WAIT;
    // The removal runs after the answer: poll until the Admin API no longer knows the qube.
    while d.call("admin.vm.List", "work", b"").starts_with(b"0\0") {
        assert!(std::time::Instant::now() < deadline, "work was not removed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn async_delete_of_a_running_vm_is_refused_before_it_is_accepted() {
    let d = with_work();
    d.ok("admin.vm.Start", "work", b"");
    let id = d.uuid("work");
    let c = Client::new();

    let r =
        sdk(c.delete(d.url(&format!("/api/vms/{id}")))).body("<action><async>true</async></action>").send().unwrap();

    assert_eq!(r.status(), 409);
    assert!(text(r).contains("is running"));
    assert!(d.ok("admin.vm.List", "work", b"").contains("Running"));
}

#[test]
fn session_cookie_then_disconnect_ends_the_session() {
    let d = daemon();
    let c = Client::new();

    let login = sdk(c.get(d.url("/api"))).header("Prefer", "persistent-auth").send().unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let in_session =
        c.get(d.url("/api/vms")).header("Cookie", &cookie).header("Prefer", "persistent-auth").send().unwrap();
    let disconnect = c.get(d.url("/api")).header("Cookie", &cookie).send().unwrap();
    let after = c.get(d.url("/api/vms")).header("Cookie", &cookie).send().unwrap();

    assert_eq!(login.status(), 200);
    assert!(cookie.starts_with("JSESSIONID="));
    assert_eq!(in_session.status(), 200);
    assert_eq!(disconnect.status(), 200);
    assert_eq!(after.status(), 401);
}

#[test]
fn wrong_password_is_401() {
    let d = daemon();
    let c = Client::new();

    let r = c.get(d.url("/api/vms")).basic_auth("admin@internal", Some("wrong")).send().unwrap();

    assert_eq!(r.status(), 401);
}

#[test]
fn ovirt_engine_alias_serves_the_same_api() {
    let d = daemon();
    let c = Client::new();

    let r = sdk(c.get(d.url("/ovirt-engine/api/vms"))).send().unwrap();

    assert_eq!(r.status(), 200);
    assert!(text(r).contains("href=\"/ovirt-engine/api/vms/"));
}

#[test]
fn oversized_body_is_refused_and_changes_nothing() {
    let d = daemon();
    let before = d.ok("admin.vm.List", "dom0", b"");
    let c = Client::new();
    let huge = format!("<vm><name>x</name><description>{}</description></vm>", "a".repeat(2 * 1024 * 1024));

    let r = sdk(c.post(d.url("/api/vms"))).body(huge).send().unwrap();

    assert_eq!(r.status(), 413);
    assert_eq!(d.ok("admin.vm.List", "dom0", b""), before);
}

#[test]
fn statistics_report_installed_memory() {
    let d = with_work();
    let id = d.uuid("work");
    let c = Client::new();

    let body = text(sdk(c.get(d.url(&format!("/api/vms/{id}/statistics")))).send().unwrap());

    assert!(body.contains("<name>memory.installed</name>") && body.contains("<datum>419430400</datum>"), "{body}");
}

/// The datum of statistic `name` in a `<statistics>` body.
fn datum(body: &str, name: &str) -> f64 {
    let after = &body[body.find(&format!("<name>{name}</name>")).unwrap_or_else(|| panic!("{name}: {body}"))..];
    let datum = &after[after.find("<datum>").expect("a datum") + 7..];
    datum[..datum.find('<').expect("its end")].parse().expect("a number")
}

/// CPU use comes from libvirt's cpu_time between two samples (the test driver's grows with wall time,
/// i.e. one vcpu fully busy): a halted qube uses none, a running one its share.
#[test]
fn cpu_statistics_are_measured() {
    let d = with_work();
    d.ok("admin.vm.property.Set+vcpus", "work", b"2");
    let id = d.uuid("work");
    let c = Client::new();
    let stats = || text(sdk(c.get(d.url(&format!("/api/vms/{id}/statistics")))).send().unwrap());

    let halted = stats();
    d.ok("admin.vm.Start", "work", b"");
    let first = stats();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let second = stats();

    assert_eq!(datum(&halted, "cpu.current.total"), 0.0, "{halted}");
    for body in [&first, &second] {
        let total = datum(body, "cpu.current.total");
        assert!((40.0..=60.0).contains(&total), "one of two vcpus busy is 50%: {body}");
        assert_eq!(datum(body, "cpu.current.guest"), total);
    }
}

fn live_xml(d: &Daemon, c: &Client, vm: &str) -> String {
    let r = c
        .get(d.url(&format!("/libvirt/domains/by-name/{vm}/xml_desc")))
        .header("X-Auth-Username", "admin")
        .header("X-Auth-Key", "secret")
        .send()
        .expect("xml_desc request");
    let v: serde_json::Value = r.json().expect("virthttp envelope");
    v["results"][0].as_str().unwrap_or_default().to_string()
}

#[test]
fn run_once_command_line_applies_to_that_start_only() {
    let d = with_work();
    // The test driver boots nothing, so a placeholder file is kernel enough for the domain XML.
    install_kernel(&d, "k1");
    d.ok("admin.vm.property.Set+kernel", "work", b"k1");
    let id = d.uuid("work");
    let c = Client::new();
    let body = "<action><vm><os><cmdline>quiet corral-once</cmdline></os></vm></action>";

    let r = sdk(c.post(d.url(&format!("/api/vms/{id}/start")))).body(body).send().unwrap();
    let once = live_xml(&d, &c, "work");
    d.ok("admin.vm.Kill", "work", b"");
    d.ok("admin.vm.Start", "work", b"");
    let next = live_xml(&d, &c, "work");

    assert_eq!(r.status(), 200);
    assert!(once.contains("quiet corral-once"), "{once}");
    assert!(!next.contains("corral-once"), "{next}");
    assert_eq!(d.ok("admin.vm.property.Get+kernelopts", "work", b""), "default=True type=str ");
}

/// The `<boot dev>`s of a domain XML, in order.
fn boot_order(xml: &str) -> Vec<String> {
    xml.split("<boot dev='").skip(1).map(|rest| rest.split('\'').next().unwrap_or_default().to_string()).collect()
}

#[test]
fn run_once_boots_an_installer_image_from_the_cdrom_for_that_start_only() {
    let d = with_work();
    d.ok("admin.vm.property.Set+kernel", "work", b"");
    std::fs::write(d.state.join("installer.iso"), b"CD001").expect("iso");
    let id = d.uuid("work");
    let c = Client::new();
    let body = "<action><vm><os><boot dev=\"cdrom\"/><boot dev=\"hd\"/></os>\
                <cdroms><cdrom><file id=\"installer.iso\"/></cdrom></cdroms></vm></action>";

    let r = sdk(c.post(d.url(&format!("/api/vms/{id}/start")))).body(body).send().unwrap();
    let once = live_xml(&d, &c, "work");
    d.ok("admin.vm.Kill", "work", b"");
    d.ok("admin.vm.Start", "work", b"");
    let next = live_xml(&d, &c, "work");

    assert_eq!(r.status(), 200);
    assert_eq!(boot_order(&once), ["cdrom", "hd"], "{once}");
    assert!(once.contains("installer.iso"), "{once}");
    assert_eq!(boot_order(&next), ["hd"], "{next}");
    assert!(!next.contains("device='cdrom'"), "{next}");
    assert_eq!(d.err("admin.vm.feature.Get+corral.cdrom", "work", b"").0, "QubesFeatureNotFoundError");
}

#[test]
fn run_once_refuses_unknown_boot_devices_images_and_an_empty_cdrom_to_boot_from() {
    let d = with_work();
    d.ok("admin.vm.property.Set+kernel", "work", b"");
    let id = d.uuid("work");
    let c = Client::new();

    for body in [
        "<action><vm><os><boot dev=\"floppy\"/></os></vm></action>",
        "<action><vm><cdroms><cdrom><file id=\"nope.iso\"/></cdrom></cdroms></vm></action>",
        "<action><vm><os><boot dev=\"cdrom\"/></os></vm></action>",
    ] {
        let r = sdk(c.post(d.url(&format!("/api/vms/{id}/start")))).body(body).send().unwrap();

        assert_eq!(r.status(), 400, "{body}");
        assert!(text(r).contains("<fault>"));
        assert!(d.ok("admin.vm.List", "work", b"").contains("Halted"), "{body}");
    }
}

#[test]
fn clone_copies_the_qube_as_qvm_clone_does() {
    let d = with_work();
    d.ok("admin.vm.property.Set+memory", "work", b"600");
    d.ok("admin.vm.feature.Set+gui", "work", b"1");
    d.ok("admin.vm.tag.Set+finance", "work", b"");
    d.ok("admin.vm.notes.Set", "work", b"keep me");
    d.ok("admin.vm.firewall.Set", "work", b"action=accept dsthost=10.0.0.1\naction=drop\n");
    d.ok("admin.vm.property.Set+mac", "work", b"00:16:3e:aa:bb:cc");
    let private = support::volumes::volume_path(&d, "work", "private");
    support::volumes::write_at_start(&private, b"the work's data");
    let id = d.uuid("work");
    let c = Client::new();

    let r = sdk(c.post(d.url(&format!("/api/vms/{id}/clone"))))
        .body("<action><vm><name>copy</name></vm></action>")
        .send()
        .unwrap();

    assert_eq!(r.status(), 200);
    let body = text(r);
    let copy = d.uuid("copy");
    assert!(body.contains(&format!("<vm href=\"/api/vms/{copy}\" id=\"{copy}\"/>")), "{body}");
    assert!(d.ok("admin.vm.List", "copy", b"").contains("class=AppVM"));
    for call in [
        "admin.vm.property.Get+template",
        "admin.vm.property.Get+memory",
        "admin.vm.property.Get+label",
        "admin.vm.feature.Get+gui",
        "admin.vm.notes.Get",
        "admin.vm.firewall.Get",
    ] {
        assert_eq!(d.ok(call, "copy", b""), d.ok(call, "work", b""), "{call}");
    }
    assert!(d.ok("admin.vm.tag.List", "copy", b"").contains("finance"));
    // A MAC must stay unique on the network: the clone's is its own.
    assert!(d.ok("admin.vm.property.Get+mac", "copy", b"").starts_with("default=True"));
    let copied = support::volumes::volume_path(&d, "copy", "private");
    assert_eq!(support::volumes::read_start(&copied, 15), b"the work's data");
}

#[test]
fn clone_needs_a_free_valid_name_and_changes_nothing_otherwise() {
    let d = with_work();
    let id = d.uuid("work");
    let c = Client::new();
    let before = d.ok("admin.vm.List", "dom0", b"");

    for (body, status) in [
        ("<action/>", 400),
        ("<action><vm><name>tpl</name></vm></action>", 409),
        ("<action><vm><name>no/slash</name></vm></action>", 400),
    ] {
        let r = sdk(c.post(d.url(&format!("/api/vms/{id}/clone")))).body(body).send().unwrap();

        assert_eq!(r.status(), status, "{body}");
        assert!(text(r).contains("<fault>"), "{body}");
    }
    assert_eq!(d.ok("admin.vm.List", "dom0", b""), before);
}

#[test]
fn async_action_answers_202_then_redirects_to_the_vm_when_done() {
    let d = with_work();
    let id = d.uuid("work");
    let c = Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let r = sdk(c.post(d.url(&format!("/api/vms/{id}/start;async=true")))).body("<action/>").send().unwrap();
    let status = r.status();
    let body = text(r);
    let href = body.split("action href=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_string();
    let mut polled = sdk(c.get(d.url(&href))).send().unwrap();
    for _ in 0..100 {
        if polled.status() != 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        polled = sdk(c.get(d.url(&href))).send().unwrap();
    }

    assert_eq!(status, 202);
    assert!(body.contains("<state>pending</state>"), "{body}");
    assert_eq!(polled.status(), 301);
    assert_eq!(polled.headers()["location"], format!("/api/vms/{id}").as_str());
    assert!(d.ok("admin.vm.CurrentState", "work", b"").ends_with("power_state=Running"));
}

#[test]
fn failed_async_action_reports_failed_with_the_fault() {
    let d = with_work();
    let id = d.uuid("work");
    let c = Client::new();

    let r =
        sdk(c.post(d.url(&format!("/api/vms/{id}/stop")))).body("<action><async>true</async></action>").send().unwrap();
    let body = text(r);
    let href = body.split("action href=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_string();
    let mut polled = text(sdk(c.get(d.url(&href))).send().unwrap());
    for _ in 0..100 {
        if !polled.contains("<state>pending</state>") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        polled = text(sdk(c.get(d.url(&href))).send().unwrap());
    }

    assert!(polled.contains("<state>failed</state>") && polled.contains("<fault>"), "{polled}");
}

#[test]
fn detail_puts_statistics_nics_and_disks_inline() {
    let d = with_work();
    let id = d.uuid("work");
    let c = Client::new();

    let r = sdk(c.get(d.url(&format!("/api/vms/{id}"))))
        .header("Accept", "application/xml; detail=statistics+nics+disks")
        .send()
        .unwrap();

    assert_eq!(r.status(), 200);
    let body = text(r);
    assert!(body.contains("<statistics>") && body.contains("<name>memory.installed</name>"), "{body}");
    assert!(body.contains("<nics"), "{body}");
    assert!(body.contains("<disks>") && body.contains("<disk "), "{body}");
}

#[test]
fn without_detail_sub_collections_are_not_inline() {
    let d = with_work();
    let id = d.uuid("work");
    let c = Client::new();

    let body = text(sdk(c.get(d.url(&format!("/api/vms/{id}")))).send().unwrap());

    assert!(body.contains("<vm "), "{body}");
    assert!(!body.contains("<statistics") && !body.contains("<nics") && !body.contains("<disks"), "{body}");
}

/// The `<disk>` elements of a domain XML with their target device and source file.
fn disk_targets(xml: &str) -> Vec<(String, String)> {
    let attr = |disk: &str, key: &str| {
        disk.split(key).nth(1).and_then(|r| r.split('\'').next()).unwrap_or_default().to_string()
    };
    xml.split("<disk ")
        .skip(1)
        .map(|disk| disk.split("</disk>").next().unwrap_or_default())
        .map(|disk| (attr(disk, "<target dev='"), attr(disk, "<source file='")))
        .collect()
}

#[test]
fn a_started_vm_gets_its_added_disks_after_its_class_volumes() {
    let d = with_work();
    let id = d.uuid("work");
    let c = Client::new();
    for alias in ["work-disk3", ""] {
        let alias = if alias.is_empty() { String::new() } else { format!("<alias>{alias}</alias>") };
        let body = format!(
            "<disk><storage_domains><storage_domain><name>varlibqubes</name></storage_domain></storage_domains>\
             <provisioned_size>1048576</provisioned_size>{alias}</disk>"
        );
        let r = sdk(c.post(d.url(&format!("/api/vms/{id}/disks")))).header("Expect", "201-created").body(body);
        assert_eq!(r.send().unwrap().status(), 201);
    }

    d.ok("admin.vm.Start", "work", b"");
    let disks = disk_targets(&live_xml(&d, &c, "work"));

    let targets: Vec<&str> = disks.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(targets, ["vda", "vdb", "vdc", "vde", "vdg"], "{disks:?}");
    let path = |v: &str| support::volumes::volume_path(&d, "work", v).display().to_string();
    assert_eq!(disks[3].1, path("disk1"));
    assert_eq!(disks[4].1, path("disk3"));
}

#[test]
fn deleting_a_vm_but_keeping_its_disks_is_409_and_keeps_the_vm() {
    let d = with_work();
    let id = d.uuid("work");
    let c = Client::new();
    let body = "<action><vm><disks><detach_only>true</detach_only></disks></vm></action>";

    let r = sdk(c.delete(d.url(&format!("/api/vms/{id}")))).body(body).send().unwrap();

    assert_eq!(r.status(), 409);
    assert!(text(r).contains("no floating disks"));
    assert!(d.ok("admin.vm.List", "dom0", b"").contains("work class=AppVM"));
}

/// The `<graphics>` element of a domain XML.
fn graphics(xml: &str) -> String {
    let start = xml.find("<graphics").unwrap_or_else(|| panic!("no graphics: {xml}"));
    let end = xml[start..].find("</graphics>").map_or(xml.len(), |e| start + e);
    xml[start..end].to_string()
}

/// The secure domain XML (passwords shown), through virthttp.
fn secure_xml(d: &Daemon, c: &Client, vm: &str) -> String {
    let r = c
        .get(d.url(&format!("/libvirt/domains/by-name/{vm}/xml_desc?options=secure")))
        .header("X-Auth-Username", "admin")
        .header("X-Auth-Key", "secret")
        .send()
        .expect("xml_desc request");
    let v: serde_json::Value = r.json().expect("virthttp envelope");
    v["results"][0].as_str().unwrap_or_default().to_string()
}

fn attr<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let start = element.find(&format!(" {name}='"))? + name.len() + 3;
    element[start..].split('\'').next()
}

#[test]
fn a_started_vm_has_a_vnc_server_on_loopback_locked_by_an_expired_unknown_password() {
    let d = with_work().with_running("work");
    let c = Client::new();

    let public = graphics(&live_xml(&d, &c, "work"));
    let secure = graphics(&secure_xml(&d, &c, "work"));

    assert_eq!(attr(&public, "type"), Some("vnc"), "{public}");
    assert_eq!(attr(&public, "autoport"), Some("yes"), "{public}");
    assert_eq!(attr(&public, "listen"), Some("127.0.0.1"), "{public}");
    assert!(public.contains("<listen type='address' address='127.0.0.1'/>"), "{public}");
    assert_eq!(attr(&public, "passwdValidTo"), Some("1970-01-01T00:00:00"), "{public}");
    assert_eq!(attr(&public, "passwd"), None, "libvirt shows passwords only in the secure XML: {public}");
    let password = attr(&secure, "passwd").unwrap_or_else(|| panic!("no password: {secure}"));
    assert!(password.len() == 8 && password.bytes().all(|b| b.is_ascii_alphanumeric()), "{secure}");
}

#[test]
fn display_is_vnc_without_an_address_while_the_vm_is_down() {
    let d = with_work();
    let c = Client::new();

    let body = text(sdk(c.get(d.url(&format!("/api/vms/{}", d.uuid("work"))))).send().unwrap());

    let doc = roxmltree::Document::parse(&body).expect("vm XML");
    let display = doc.descendants().find(|n| n.has_tag_name("display")).unwrap_or_else(|| panic!("{body}"));
    let leaves: Vec<(String, String)> = display
        .children()
        .filter(|n| n.is_element())
        .map(|n| (n.tag_name().name().to_string(), n.text().unwrap_or_default().to_string()))
        .collect();
    let expected = [("type", "vnc"), ("monitors", "1"), ("allow_override", "true"), ("smartcard_enabled", "false")];
    assert_eq!(leaves, expected.map(|(k, v)| (k.to_string(), v.to_string())), "{body}");
}

#[test]
fn ticket_on_a_halted_vm_is_409_and_sets_nothing() {
    let d = with_work();
    let c = Client::new();
    let id = d.uuid("work");

    let r = sdk(c.post(d.url(&format!("/api/vms/{id}/ticket"))))
        .body("<action><ticket><expiry>5</expiry></ticket></action>")
        .send()
        .unwrap();

    assert_eq!(r.status(), 409);
    let body = text(r);
    assert!(body.contains("<fault>") && body.contains("powered off"), "{body}");
    assert!(!body.contains("<ticket>"), "{body}");
}

#[test]
fn ticket_values_are_1_to_64_printable_ascii_characters() {
    let d = with_work().with_running("work");
    let c = Client::new();
    let id = d.uuid("work");
    let before = secure_xml(&d, &c, "work");

    for value in ["tab\there", "new\nline", &"x".repeat(65), "caf\u{e9}"] {
        let body = format!("<action><ticket><value>{value}</value></ticket></action>");
        let r = sdk(c.post(d.url(&format!("/api/vms/{id}/ticket")))).body(body).send().unwrap();
        assert_eq!(r.status(), 400, "{value:?}: {}", text(r));
    }

    assert_eq!(secure_xml(&d, &c, "work"), before);
}

// ---------------------------------------------------------------------------------------------------------
// Power actions and the vm's state

/// POSTs action `name` with an empty `<action/>` to vm `id`: (status, body).
fn act(d: &Daemon, id: &str, name: &str) -> (u16, String) {
    let r = sdk(Client::new().post(d.url(&format!("/api/vms/{id}/{name}")))).body("<action/>").send().expect("request");
    (r.status().as_u16(), text(r))
}

fn vm_state(d: &Daemon, id: &str) -> String {
    let body = text(sdk(Client::new().get(d.url(&format!("/api/vms/{id}")))).send().expect("request"));
    let status = body.split("<status>").nth(1).unwrap_or_default();
    status.split("<state>").nth(1).and_then(|s| s.split('<').next()).unwrap_or_default().to_string()
}

fn fault_detail(body: &str) -> &str {
    body.split("<detail>").nth(1).and_then(|s| s.split("</detail>").next()).unwrap_or_default()
}

#[test]
fn start_of_a_running_vm_is_409_and_says_why() {
    let d = with_work().with_running("work");
    let id = d.uuid("work");

    let (status, body) = act(&d, &id, "start");

    assert_eq!(status, 409, "{body}");
    assert!(body.starts_with(DECL), "{body}");
    assert_eq!(fault_detail(&body), "[Cannot start VM. VM is running.]");
    assert_eq!(vm_state(&d, &id), "up");
}

#[test]
fn actions_that_need_a_running_vm_are_409_on_a_down_one_and_change_nothing() {
    let d = with_work();
    let id = d.uuid("work");

    for action in ["stop", "shutdown", "suspend", "reboot"] {
        let (status, body) = act(&d, &id, action);

        assert_eq!(status, 409, "{action}: {body}");
        assert_eq!(fault_detail(&body), format!("[Cannot {action} VM. VM is down.]"), "{action}");
        assert_eq!(vm_state(&d, &id), "down", "{action}");
    }
}

#[test]
fn suspend_saves_the_vm_to_disk_and_start_resumes_it() {
    let d = with_work().with_running("work");
    let id = d.uuid("work");

    let (suspended, body) = act(&d, &id, "suspend");
    let while_saved = (vm_state(&d, &id), d.ok("admin.vm.CurrentState", "work", b""));
    let listed = d.ok("admin.vm.List", "work", b"");
    let (again, again_body) = act(&d, &id, "suspend");
    let (started, _) = act(&d, &id, "start");

    assert_eq!(suspended, 200, "{body}");
    assert_eq!(while_saved.0, "suspended");
    assert_eq!(while_saved.1, "mem=0 mem_static_max=0 cputime=0 power_state=Suspended");
    assert!(listed.contains("state=Suspended"), "{listed}");
    assert_eq!(again, 409);
    assert_eq!(fault_detail(&again_body), "[Cannot suspend VM. VM is suspended.]");
    assert_eq!(started, 200);
    assert_eq!(vm_state(&d, &id), "up");
    let events = text(sdk(Client::new().get(d.url("/api/events"))).send().unwrap());
    assert!(events.contains("<code>501</code>") && events.contains("<code>503</code>"), "{events}");
}

#[test]
fn a_saved_vm_is_suspended_to_the_admin_api_which_resumes_kills_or_keeps_it() {
    let d = with_work().with_running("work");
    let id = d.uuid("work");
    act(&d, &id, "suspend");

    let removed = d.err("admin.vm.Remove", "work", b"");
    d.ok("admin.vm.Start", "work", b"");
    let after_start = d.ok("admin.vm.CurrentState", "work", b"");
    act(&d, &id, "suspend");
    d.ok("admin.vm.Resume", "work", b"");
    let after_resume = vm_state(&d, &id);
    act(&d, &id, "suspend");
    d.ok("admin.vm.Kill", "work", b"");

    assert_eq!(removed, ("QubesVMNotHaltedError".into(), "Domain is not powered off: 'work'".into()));
    assert!(after_start.ends_with("power_state=Running"), "{after_start}");
    assert_eq!(after_resume, "up");
    assert_eq!(vm_state(&d, &id), "down");
    d.ok("admin.vm.Remove", "work", b"");
}

#[test]
fn stop_or_shutdown_of_a_suspended_or_paused_vm_powers_it_off() {
    let d = with_work().with_running("work");
    let id = d.uuid("work");

    act(&d, &id, "suspend");
    let (stopped, stop_body) = act(&d, &id, "stop");
    let after_stop = vm_state(&d, &id);
    act(&d, &id, "start");
    act(&d, &id, "suspend");
    let (shut, shut_body) = act(&d, &id, "shutdown");
    let after_shutdown = vm_state(&d, &id);
    act(&d, &id, "start");
    d.ok("admin.vm.Pause", "work", b"");
    let (shut_paused, _) = act(&d, &id, "shutdown");

    assert_eq!((stopped, after_stop.as_str()), (200, "down"), "{stop_body}");
    assert_eq!((shut, after_shutdown.as_str()), (200, "down"), "{shut_body}");
    assert_eq!((shut_paused, vm_state(&d, &id).as_str()), (200, "down"));
}

#[test]
fn start_of_a_paused_vm_resumes_it() {
    let d = with_work().with_running("work");
    let id = d.uuid("work");
    d.ok("admin.vm.Pause", "work", b"");

    let (status, body) = act(&d, &id, "start");

    assert_eq!(status, 200, "{body}");
    assert_eq!(vm_state(&d, &id), "up");
}

#[test]
fn a_saved_vm_is_still_suspended_after_a_daemon_restart() {
    // libvirt's test driver keeps its domains in the daemon's memory; a node file stands for what
    // libvirt keeps across the restart: the qube's domain, shut off with a managed save image.
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("node.xml");
    std::fs::write(&node, "<node/>").unwrap();
    let mut d = Daemon::start_with_uri(&format!("test://{}", node.display())).with_user().with_appvm();
    let id = d.uuid("work");
    std::fs::write(
        &node,
        format!(
            "<node><domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\
             <name>work</name><uuid>{id}</uuid><memory>65536</memory><os><type>hvm</type></os>\
             <test:runstate>5</test:runstate><test:hasmanagedsave>yes</test:hasmanagedsave></domain></node>"
        ),
    )
    .unwrap();

    d.restart();

    assert_eq!(vm_state(&d, &id), "suspended");
    assert!(d.ok("admin.vm.List", "work", b"").contains("state=Suspended"));
    let (started, body) = act(&d, &id, "start");
    assert_eq!(started, 200, "{body}");
    assert_eq!(vm_state(&d, &id), "up");
}
