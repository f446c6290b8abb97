//! `/api/storagedomains`, `/api/disks`, `/api/templates` and a vm's disks, nics, cdroms and snapshots over
//! real HTTP, checked against what the Admin API then reports on the same daemon.

mod support;

use std::path::Path;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use serde_json::Value;
use support::volumes::{install_kernel, read_start, volume_field, volume_path, write_at_start};
use support::Daemon;

const BLANK: &str = "00000000-0000-0000-0000-000000000000";
const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>";

// ---------------------------------------------------------------------------------------------------------
// Helpers

/// A daemon with a REST user, TemplateVM `tpl` and AppVM `work` based on it.
fn daemon() -> Daemon {
    Daemon::start().with_user().with_appvm()
}

/// `daemon` plus a network provider `sys-net` that is the global `default_netvm`.
fn with_netvm() -> Daemon {
    daemon().with_default_netvm("sys-net")
}

fn request_as(d: &Daemon, method: Method, path: &str, accept: &str) -> RequestBuilder {
    Client::new()
        .request(method, d.url(path))
        .basic_auth("admin@internal", Some("secret"))
        .header("Content-Type", "application/xml")
        .header("Accept", accept)
}

fn request(d: &Daemon, method: Method, path: &str) -> RequestBuilder {
    request_as(d, method, path, "application/xml")
}

/// (status, body) of one request.
fn send(d: &Daemon, method: Method, path: &str, body: &str) -> (u16, String) {
    let r = request(d, method, path).body(body.to_string()).send().expect("request");
    (r.status().as_u16(), r.text().expect("body"))
}

fn get(d: &Daemon, path: &str) -> (u16, String) {
    send(d, Method::GET, path, "")
}

/// A POST that asks for 201 with `Expect`.
fn post_expect(d: &Daemon, path: &str, body: &str) -> (u16, String) {
    let r = request(d, Method::POST, path).header("Expect", "201-created").body(body.to_string()).send().expect("post");
    (r.status().as_u16(), r.text().expect("body"))
}

fn get_json(d: &Daemon, path: &str) -> Value {
    let r = request_as(d, Method::GET, path, "application/json").send().expect("request");
    assert_eq!(r.status(), 200, "{path}");
    r.json().expect("json")
}

/// The item of a JSON collection whose `key` is `value`.
fn item<'a>(collection: &'a Value, element: &str, key: &str, value: &str) -> &'a Value {
    let items = collection[element].as_array().unwrap_or_else(|| panic!("no {element} array in {collection}"));
    items.iter().find(|i| i[key] == value).unwrap_or_else(|| panic!("no {element} with {key}={value}"))
}

/// Every value of `key` in a JSON collection, sorted.
fn values(collection: &Value, element: &str, key: &str) -> Vec<String> {
    let items = collection[element].as_array().cloned().unwrap_or_default();
    let mut out: Vec<String> = items.iter().map(|i| i[key].as_str().unwrap_or_default().to_string()).collect();
    out.sort();
    out
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

fn sd_id(d: &Daemon, name: &str) -> String {
    id(item(&get_json(d, "/api/storagedomains"), "storage_domain", "name", name))
}

fn disk_id(d: &Daemon, alias: &str) -> String {
    id(item(&get_json(d, "/api/disks"), "disk", "alias", alias))
}

fn template_id(d: &Daemon, name: &str) -> String {
    id(item(&get_json(d, "/api/templates"), "template", "name", name))
}

fn pool_body(name: &str, kind: &str, storage: &str, path: &Path) -> String {
    format!(
        "<storage_domain><name>{name}</name><type>{kind}</type><storage><type>{storage}</type>\
         <path>{}</path></storage><host><name>localhost</name></host></storage_domain>",
        path.display()
    )
}

fn template_body(name: &str, vm: &str) -> String {
    format!("<template><name>{name}</name><vm id=\"{vm}\"/></template>")
}

fn is_fault(body: &str) -> bool {
    body.starts_with(DECL) && body.contains("<fault>")
}

// ---------------------------------------------------------------------------------------------------------
// Storage domains

#[test]
fn storagedomains_list_the_pools_with_type_path_and_master() {
    let d = daemon();

    let (status, body) = get(&d, "/api/storagedomains");

    assert_eq!(status, 200);
    assert!(body.contains("<name>varlibqubes</name>") && body.contains("<name>linux-kernel</name>"), "{body}");
    assert!(body.contains("<type>data</type>") && body.contains("<type>iso</type>"), "{body}");
    assert!(body.contains(&format!("<path>{}</path>", d.state.display())), "{body}");
    assert!(body.contains("<master>true</master>") && body.contains("<storage_format>v3</storage_format>"), "{body}");
}

#[test]
fn storagedomains_as_json_are_an_array_with_ids_and_hrefs() {
    let d = daemon();

    let list = get_json(&d, "/api/storagedomains");

    assert_eq!(values(&list, "storage_domain", "name"), ["linux-kernel", "varlibqubes"]);
    let kernel = item(&list, "storage_domain", "name", "linux-kernel");
    assert_eq!(kernel["type"], "iso");
    assert_eq!(kernel["master"], "false");
    assert_eq!(kernel["href"], format!("/api/storagedomains/{}", id(kernel)));
    assert_eq!(kernel["storage"]["type"], "localfs");
}

#[test]
fn storagedomain_by_id_shows_usage_of_its_file_system() {
    let d = daemon();
    let sd = sd_id(&d, "varlibqubes");

    let one = get_json(&d, &format!("/api/storagedomains/{sd}"));

    assert_eq!(one["name"], "varlibqubes");
    assert_ne!(one["available"], "0");
    assert_eq!(one["status"]["state"], "active");
}

#[test]
fn storagedomain_with_unknown_id_is_404_fault() {
    let d = daemon();

    let (status, body) = get(&d, "/api/storagedomains/5e0c2b59-0000-4000-8000-000000000000");

    assert_eq!(status, 404);
    assert!(is_fault(&body), "{body}");
}

#[test]
fn storagedomains_search_by_type() {
    let d = daemon();

    let list = get_json(&d, "/api/storagedomains?search=type%3Diso");

    assert_eq!(values(&list, "storage_domain", "name"), ["linux-kernel"]);
}

#[test]
fn creating_a_data_domain_with_expect_adds_a_file_pool() {
    let d = daemon();
    let dir = d.dir.path().join("pool2");

    let (status, body) = post_expect(&d, "/api/storagedomains", &pool_body("pool2", "data", "localfs", &dir));

    assert_eq!(status, 201, "{body}");
    assert!(body.contains("<name>pool2</name>"), "{body}");
    let info = d.ok("admin.pool.Info+pool2", "dom0", b"");
    assert!(info.contains("driver=file") && info.contains(&format!("dir_path={}", dir.display())), "{info}");
}

#[test]
fn creating_a_domain_without_expect_is_202_with_creation_status() {
    let d = daemon();
    let dir = d.dir.path().join("pool2");

    let (status, body) = send(&d, Method::POST, "/api/storagedomains", &pool_body("pool2", "data", "localfs", &dir));

    assert_eq!(status, 202, "{body}");
    assert!(body.contains("<creation_status>") && body.contains("rel=\"creation_status\""), "{body}");
}

#[test]
fn creating_an_iso_domain_adds_a_linux_kernel_pool() {
    let d = daemon();
    let dir = d.dir.path().join("kernels2");

    let (status, _) = post_expect(&d, "/api/storagedomains", &pool_body("kernels2", "iso", "localfs", &dir));

    assert_eq!(status, 201);
    let info = d.ok("admin.pool.Info+kernels2", "dom0", b"");
    assert!(info.contains("driver=linux-kernel"), "{info}");
}

#[test]
fn creating_an_nfs_domain_is_400_and_adds_nothing() {
    let d = daemon();
    let dir = d.dir.path().join("pool2");

    let (status, body) = post_expect(&d, "/api/storagedomains", &pool_body("pool2", "data", "nfs", &dir));

    assert_eq!(status, 400);
    assert!(body.contains("localfs"), "{body}");
    assert_eq!(d.ok("admin.pool.List", "dom0", b""), "varlibqubes\nlinux-kernel\n");
}

#[test]
fn creating_a_domain_with_a_taken_name_is_409() {
    let d = daemon();
    let dir = d.dir.path().join("again");

    let (status, body) = post_expect(&d, "/api/storagedomains", &pool_body("varlibqubes", "data", "localfs", &dir));

    assert_eq!(status, 409);
    assert!(is_fault(&body), "{body}");
}

#[test]
fn deleting_a_domain_removes_the_pool() {
    let d = daemon();
    let dir = d.dir.path().join("pool2");
    post_expect(&d, "/api/storagedomains", &pool_body("pool2", "data", "localfs", &dir));
    let sd = sd_id(&d, "pool2");

    let (status, body) = send(&d, Method::DELETE, &format!("/api/storagedomains/{sd}"), "");

    assert_eq!(status, 204, "{body}");
    assert_eq!(d.ok("admin.pool.List", "dom0", b""), "varlibqubes\nlinux-kernel\n");
}

#[test]
fn deleting_a_domain_accepts_the_format_body() {
    let d = daemon();
    let dir = d.dir.path().join("pool2");
    post_expect(&d, "/api/storagedomains", &pool_body("pool2", "data", "localfs", &dir));
    let sd = sd_id(&d, "pool2");
    let body = "<storage_domain><host><name>localhost</name></host><format>true</format></storage_domain>";

    let (status, _) = send(&d, Method::DELETE, &format!("/api/storagedomains/{sd}"), body);

    assert_eq!(status, 204);
}

#[test]
fn deleting_a_domain_that_holds_volumes_is_409() {
    let d = daemon();
    let sd = sd_id(&d, "varlibqubes");

    let (status, body) = send(&d, Method::DELETE, &format!("/api/storagedomains/{sd}"), "");

    assert_eq!(status, 409);
    assert!(body.contains("in use"), "{body}");
}

#[test]
fn renaming_a_domain_is_409() {
    let d = daemon();
    let sd = sd_id(&d, "varlibqubes");

    let (status, _) =
        send(&d, Method::PUT, &format!("/api/storagedomains/{sd}"), "<storage_domain><name>x</name></storage_domain>");

    assert_eq!(status, 409);
}

// ---------------------------------------------------------------------------------------------------------
// Files

#[test]
fn kernel_domain_files_are_the_installed_kernels() {
    let d = daemon();
    install_kernel(&d, "6.1.0");
    let sd = sd_id(&d, "linux-kernel");

    let (status, body) = get(&d, &format!("/api/storagedomains/{sd}/files"));

    assert_eq!(status, 200);
    let file = format!("<file href=\"/api/storagedomains/{sd}/files/6.1.0\" id=\"6.1.0\">");
    assert!(body.contains(&file) && body.contains("<type>kernel</type>"), "{body}");
}

#[test]
fn file_domain_files_are_its_iso_images() {
    let d = daemon();
    let dir = d.dir.path().join("isos");
    post_expect(&d, "/api/storagedomains", &pool_body("isos", "data", "localfs", &dir));
    std::fs::write(dir.join("fedora.iso"), b"iso").expect("iso");
    std::fs::write(dir.join("notes.txt"), b"text").expect("txt");
    let sd = sd_id(&d, "isos");

    let files = get_json(&d, &format!("/api/storagedomains/{sd}/files"));

    assert_eq!(values(&files, "file", "id"), ["fedora.iso"]);
}

#[test]
fn one_file_by_name() {
    let d = daemon();
    install_kernel(&d, "6.1.0");
    let sd = sd_id(&d, "linux-kernel");

    let file = get_json(&d, &format!("/api/storagedomains/{sd}/files/6.1.0"));

    assert_eq!(file["name"], "6.1.0");
    assert_eq!(file["storage_domain"]["id"], sd.as_str());
}

#[test]
fn unknown_file_is_404() {
    let d = daemon();
    let sd = sd_id(&d, "linux-kernel");

    let (status, body) = get(&d, &format!("/api/storagedomains/{sd}/files/nope"));

    assert_eq!(status, 404);
    assert!(is_fault(&body), "{body}");
}

// ---------------------------------------------------------------------------------------------------------
// Floating disks

#[test]
fn disks_are_the_volumes_the_admin_api_lists_without_the_kernel() {
    let d = daemon();
    let volumes = d.ok("admin.vm.volume.List", "work", b"");

    let disks = get_json(&d, "/api/disks?search=vm%3Dwork");

    let mut expected: Vec<String> = volumes.lines().filter(|v| *v != "kernel").map(|v| format!("work-{v}")).collect();
    expected.sort();
    assert_eq!(values(&disks, "disk", "alias"), expected);
}

#[test]
fn disks_of_every_qube_are_listed() {
    let d = daemon();

    let disks = get_json(&d, "/api/disks");

    assert_eq!(
        values(&disks, "disk", "alias"),
        ["tpl-private", "tpl-root", "tpl-volatile", "work-private", "work-root", "work-volatile"]
    );
}

#[test]
fn a_disk_shows_size_format_bootable_vm_and_storage_domain() {
    let d = daemon();
    let disk = disk_id(&d, "work-root");

    let one = get_json(&d, &format!("/api/disks/{disk}"));

    assert_eq!(one["provisioned_size"], volume_field(&d, "work", "root", "size").as_str());
    assert_eq!(one["format"], "cow");
    assert_eq!(one["bootable"], "true");
    assert_eq!(one["vm"]["id"], d.uuid("work").as_str());
    assert_eq!(one["storage_domains"]["storage_domain"][0]["id"], sd_id(&d, "varlibqubes").as_str());
}

#[test]
fn a_private_disk_is_raw_and_not_bootable_in_xml() {
    let d = daemon();
    let disk = disk_id(&d, "work-private");

    let (status, body) = get(&d, &format!("/api/disks/{disk}"));

    assert_eq!(status, 200);
    assert!(body.contains(&format!("<disk href=\"/api/disks/{disk}\" id=\"{disk}\">")), "{body}");
    assert!(body.contains("<format>raw</format>") && body.contains("<bootable>false</bootable>"), "{body}");
    assert!(body.contains("<alias>work-private</alias>") && body.contains("<interface>virtio</interface>"), "{body}");
}

#[test]
fn disks_search_by_alias() {
    let d = daemon();

    let disks = get_json(&d, "/api/disks?search=alias%3D*-private");

    assert_eq!(values(&disks, "disk", "alias"), ["tpl-private", "work-private"]);
}

#[test]
fn unknown_disk_is_404() {
    let d = daemon();

    let (status, body) = get(&d, "/api/disks/5e0c2b59-0000-4000-8000-000000000000");

    assert_eq!(status, 404);
    assert!(is_fault(&body), "{body}");
}

#[test]
fn creating_a_floating_disk_is_409_with_the_reason() {
    let d = daemon();

    let (status, body) = post_expect(&d, "/api/disks", "<disk><provisioned_size>1073741824</provisioned_size></disk>");

    assert_eq!(status, 409);
    assert!(body.contains("no floating disks"), "{body}");
}

#[test]
fn growing_a_disk_resizes_the_volume() {
    let d = daemon();
    let disk = disk_id(&d, "work-private");
    let size = 4 * 1024 * 1024 * 1024u64;

    let (status, body) = send(
        &d,
        Method::PUT,
        &format!("/api/disks/{disk}"),
        &format!("<disk><provisioned_size>{size}</provisioned_size></disk>"),
    );

    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("<provisioned_size>{size}</provisioned_size>")), "{body}");
    assert_eq!(volume_field(&d, "work", "private", "size"), size.to_string());
}

#[test]
fn shrinking_a_disk_is_409_and_keeps_the_size() {
    let d = daemon();
    let disk = disk_id(&d, "work-private");
    let before = volume_field(&d, "work", "private", "size");

    let (status, body) =
        send(&d, Method::PUT, &format!("/api/disks/{disk}"), "<disk><provisioned_size>1024</provisioned_size></disk>");

    assert_eq!(status, 409);
    assert!(body.contains("shrinking"), "{body}");
    assert_eq!(volume_field(&d, "work", "private", "size"), before);
}

#[test]
fn renaming_a_disk_is_409() {
    let d = daemon();
    let disk = disk_id(&d, "work-private");

    let (status, _) = send(&d, Method::PUT, &format!("/api/disks/{disk}"), "<disk><alias>other</alias></disk>");

    assert_eq!(status, 409);
}

#[test]
fn storagedomain_disks_are_the_volumes_in_its_pool() {
    let d = daemon();
    let sd = sd_id(&d, "varlibqubes");

    let disks = get_json(&d, &format!("/api/storagedomains/{sd}/disks?search=vm%3Dwork"));

    assert_eq!(values(&disks, "disk", "alias"), ["work-private", "work-root", "work-volatile"]);
}

// ---------------------------------------------------------------------------------------------------------
// Templates

#[test]
fn templates_are_blank_and_the_template_vms() {
    let d = daemon();

    let (status, body) = get(&d, "/api/templates");

    assert_eq!(status, 200);
    assert!(body.contains(&format!("<template href=\"/api/templates/{BLANK}\" id=\"{BLANK}\">")), "{body}");
    let tpl = d.uuid("tpl");
    assert!(body.contains(&format!("<template href=\"/api/templates/{tpl}\" id=\"{tpl}\">")), "{body}");
    assert!(!body.contains("<name>work</name>"), "{body}");
}

#[test]
fn templates_as_json_show_memory_cpu_and_state() {
    let d = daemon();
    d.ok("admin.vm.property.Set+memory", "tpl", b"512");

    let list = get_json(&d, "/api/templates");

    assert_eq!(values(&list, "template", "name"), ["Blank", "tpl"]);
    let tpl = item(&list, "template", "name", "tpl");
    assert_eq!(tpl["memory"], (512u64 * 1024 * 1024).to_string().as_str());
    assert_eq!(tpl["status"]["state"], "ok");
    assert_eq!(tpl["cpu"]["topology"]["cores"], "1");
}

#[test]
fn blank_template_by_zero_guid() {
    let d = daemon();

    let blank = get_json(&d, &format!("/api/templates/{BLANK}"));

    assert_eq!(blank["name"], "Blank");
}

#[test]
fn templates_search_by_name() {
    let d = daemon();

    let list = get_json(&d, "/api/templates?search=name%3Dtp*");

    assert_eq!(values(&list, "template", "name"), ["tpl"]);
}

#[test]
fn an_appvm_id_is_not_a_template() {
    let d = daemon();

    let (status, body) = get(&d, &format!("/api/templates/{}", d.uuid("work")));

    assert_eq!(status, 404);
    assert!(is_fault(&body), "{body}");
}

#[test]
fn a_template_made_from_a_vm_is_a_template_vm_for_the_admin_api() {
    let d = daemon();

    let (status, body) = post_expect(&d, "/api/templates", &template_body("gold", &d.uuid("work")));

    assert_eq!(status, 201, "{body}");
    assert!(d.ok("admin.vm.List", "dom0", b"").contains("gold class=TemplateVM state=Halted"));
    assert!(body.contains(&format!("id=\"{}\"", d.uuid("gold"))), "{body}");
}

#[test]
fn a_template_made_from_a_vm_copies_its_private_data() {
    let d = daemon();
    write_at_start(&volume_path(&d, "work", "private"), b"work's own data");

    let (status, _) = post_expect(&d, "/api/templates", &template_body("gold", &d.uuid("work")));

    assert_eq!(status, 201);
    assert_eq!(read_start(&volume_path(&d, "gold", "private"), 15), b"work's own data");
}

#[test]
fn a_template_made_from_a_vm_gets_copies_of_its_added_disks() {
    let d = daemon();
    add_disk(&d, "work", GIB, "<alias>work-disk2</alias>");
    write_at_start(&volume_path(&d, "work", "disk2"), b"data disk");

    let (status, _) = post_expect(&d, "/api/templates", &template_body("gold", &d.uuid("work")));

    assert_eq!(status, 201);
    assert_eq!(volumes(&d, "gold"), ["root", "private", "volatile", "kernel", "disk2"]);
    assert_eq!(read_start(&volume_path(&d, "gold", "disk2"), 9), b"data disk");
    let (_, disks) = get(&d, &format!("/api/templates/{}/disks", template_id(&d, "gold")));
    assert!(disks.contains("<alias>gold-disk2</alias>"), "{disks}");
}

#[test]
fn a_template_made_from_an_appvm_copies_its_templates_root() {
    let d = daemon();
    write_at_start(&volume_path(&d, "tpl", "root"), b"tpl root");

    let (status, _) = post_expect(&d, "/api/templates", &template_body("gold", &d.uuid("work")));

    assert_eq!(status, 201);
    assert_eq!(read_start(&volume_path(&d, "gold", "root"), 8), b"tpl root");
}

#[test]
fn a_template_made_from_a_vm_takes_its_memory_and_vcpus() {
    let d = daemon();
    d.ok("admin.vm.property.Set+memory", "work", b"777");
    d.ok("admin.vm.property.Set+vcpus", "work", b"3");

    post_expect(&d, "/api/templates", &template_body("gold", &d.uuid("work")));

    assert_eq!(d.ok("admin.vm.property.Get+memory", "gold", b""), "default=False type=int 777");
    assert_eq!(d.ok("admin.vm.property.Get+vcpus", "gold", b""), "default=False type=int 3");
}

#[test]
fn a_template_body_overrides_memory_and_sets_the_description() {
    let d = daemon();
    let body = "<template><name>gold</name><vm><name>work</name></vm><memory>268435456</memory>\
                <description>golden image</description></template>";

    let (status, _) = post_expect(&d, "/api/templates", body);

    assert_eq!(status, 201);
    assert_eq!(d.ok("admin.vm.property.Get+memory", "gold", b""), "default=False type=int 256");
    assert_eq!(d.ok("admin.vm.notes.Get", "gold", b""), "golden image");
}

#[test]
fn creating_a_template_without_expect_is_202_with_creation_status() {
    let d = daemon();

    let (status, body) = send(&d, Method::POST, "/api/templates", &template_body("gold", &d.uuid("work")));

    assert_eq!(status, 202, "{body}");
    assert!(body.contains("<creation_status>"), "{body}");
}

#[test]
fn creating_a_template_with_a_taken_name_is_409_and_changes_nothing() {
    let d = daemon();
    let before = d.ok("admin.vm.List", "dom0", b"");

    let (status, _) = post_expect(&d, "/api/templates", &template_body("tpl", &d.uuid("work")));

    assert_eq!(status, 409);
    assert_eq!(d.ok("admin.vm.List", "dom0", b""), before);
}

#[test]
fn a_template_the_core_refuses_is_400_and_leaves_no_qube_behind() {
    let d = daemon();
    let before = d.ok("admin.vm.List", "dom0", b"");
    let body = "<template><name>gold</name><vm><name>work</name></vm><cpu><topology sockets=\"0\"/></cpu></template>";

    let (status, body) = post_expect(&d, "/api/templates", body);

    assert_eq!(status, 400);
    assert!(body.contains("vcpus"), "{body}");
    assert_eq!(d.ok("admin.vm.List", "dom0", b""), before);
}

#[test]
fn creating_a_template_from_an_unknown_vm_is_400() {
    let d = daemon();

    let (status, body) = post_expect(&d, "/api/templates", &template_body("gold", BLANK));

    assert_eq!(status, 400);
    assert!(body.contains("Entity not found: vm"), "{body}");
}

#[test]
fn deleting_a_template_used_by_an_appvm_is_409() {
    let d = daemon();
    let tpl = template_id(&d, "tpl");

    let (status, body) = send(&d, Method::DELETE, &format!("/api/templates/{tpl}"), "<action/>");

    assert_eq!(status, 409);
    assert!(is_fault(&body), "{body}");
    assert!(d.ok("admin.vm.List", "dom0", b"").contains("tpl class=TemplateVM"));
}

#[test]
fn deleting_an_unused_template_removes_the_template_vm() {
    let d = daemon();
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=spare label=black");
    let spare = template_id(&d, "spare");

    let (status, _) = send(&d, Method::DELETE, &format!("/api/templates/{spare}"), "");

    assert_eq!(status, 204);
    assert!(!d.ok("admin.vm.List", "dom0", b"").contains("spare"));
}

#[test]
fn deleting_blank_is_409() {
    let d = daemon();

    let (status, _) = send(&d, Method::DELETE, &format!("/api/templates/{BLANK}"), "");

    assert_eq!(status, 409);
}

#[test]
fn renaming_a_template_is_409() {
    let d = daemon();
    let tpl = template_id(&d, "tpl");

    let (status, _) = send(&d, Method::PUT, &format!("/api/templates/{tpl}"), "<template><name>x</name></template>");

    assert_eq!(status, 409);
}

#[test]
fn updating_a_template_sets_description_memory_and_cpus() {
    let d = daemon();
    let tpl = template_id(&d, "tpl");
    let body = "<template><description>base</description><memory>536870912</memory>\
                <cpu><topology cores=\"2\" sockets=\"1\"/></cpu></template>";

    let (status, _) = send(&d, Method::PUT, &format!("/api/templates/{tpl}"), body);

    assert_eq!(status, 200);
    assert_eq!(d.ok("admin.vm.notes.Get", "tpl", b""), "base");
    assert_eq!(d.ok("admin.vm.property.Get+memory", "tpl", b""), "default=False type=int 512");
    assert_eq!(d.ok("admin.vm.property.Get+vcpus", "tpl", b""), "default=False type=int 2");
}

/// Every updatable resource refuses a body naming another id than its URL (409, as oVirt), and changes
/// nothing, even where the rest of the body would be applied.
#[test]
fn updates_naming_another_id_are_409_and_change_nothing() {
    let d = with_netvm();
    install_iso(&d, "install.iso");
    let work = d.uuid("work");
    let other = d.uuid("sys-net");
    let tpl = template_id(&d, "tpl");
    let disk = disk_id(&d, "work-private");
    let nic = id(&get_json(&d, &format!("/api/vms/{work}/nics"))["nic"][0]);
    let sd = sd_id(&d, "varlibqubes");
    let big = 4 * 1024 * 1024 * 1024u64;
    let state = |d: &Daemon| {
        let mut out = d.ok("admin.vm.property.GetAll", "work", b"");
        out += &d.ok("admin.vm.property.GetAll", "tpl", b"");
        out += &d.ok("admin.vm.notes.Get", "tpl", b"");
        out += &d.ok("admin.vm.feature.List", "work", b"");
        out += &volume_field(d, "work", "private", "size");
        out
    };
    let before = state(&d);

    for (path, body) in [
        (format!("/api/templates/{tpl}"), format!("<template id=\"{other}\"><description>x</description></template>")),
        (format!("/api/storagedomains/{sd}"), format!("<storage_domain id=\"{other}\"/>")),
        (
            format!("/api/disks/{disk}"),
            format!("<disk id=\"{other}\"><provisioned_size>{big}</provisioned_size></disk>"),
        ),
        (format!("/api/vms/{work}/disks/{disk}"), format!("<disk id=\"{other}\"><size>{big}</size></disk>")),
        (
            format!("/api/vms/{work}/nics/{nic}"),
            format!("<nic id=\"{other}\"><mac address=\"00:16:3e:aa:bb:cc\"/></nic>"),
        ),
        (
            format!("/api/vms/{work}/cdroms/{BLANK}"),
            format!("<cdrom id=\"{other}\"><file id=\"install.iso\"/></cdrom>"),
        ),
    ] {
        let (status, answer) = send(&d, Method::PUT, &path, &body);

        assert_eq!(status, 409, "PUT {path}: {answer}");
        assert!(is_fault(&answer), "PUT {path}: {answer}");
    }
    assert_eq!(state(&d), before);
}

#[test]
fn template_disks_are_its_volumes() {
    let d = daemon();
    let tpl = template_id(&d, "tpl");

    let disks = get_json(&d, &format!("/api/templates/{tpl}/disks"));

    assert_eq!(values(&disks, "disk", "alias"), ["tpl-private", "tpl-root", "tpl-volatile"]);
}

// ---------------------------------------------------------------------------------------------------------
// A vm's disks

#[test]
fn vm_disks_match_the_admin_volume_list() {
    let d = daemon();
    let work = d.uuid("work");
    let volumes = d.ok("admin.vm.volume.List", "work", b"");

    let disks = get_json(&d, &format!("/api/vms/{work}/disks"));

    let mut expected: Vec<String> = volumes.lines().filter(|v| *v != "kernel").map(|v| format!("work-{v}")).collect();
    expected.sort();
    assert_eq!(values(&disks, "disk", "alias"), expected);
}

#[test]
fn a_vm_disk_has_its_href_under_the_vm() {
    let d = daemon();
    let work = d.uuid("work");
    let disk = disk_id(&d, "work-private");

    let (status, body) = get(&d, &format!("/api/vms/{work}/disks/{disk}"));

    assert_eq!(status, 200);
    assert!(body.contains(&format!("href=\"/api/vms/{work}/disks/{disk}\"")), "{body}");
}

#[test]
fn another_vms_disk_is_404_under_this_vm() {
    let d = daemon();
    let work = d.uuid("work");
    let disk = disk_id(&d, "tpl-private");

    let (status, _) = get(&d, &format!("/api/vms/{work}/disks/{disk}"));

    assert_eq!(status, 404);
}

#[test]
fn disks_of_an_unknown_vm_are_404() {
    let d = daemon();

    let (status, body) = get(&d, &format!("/api/vms/{BLANK}/disks"));

    assert_eq!(status, 404);
    assert!(is_fault(&body), "{body}");
}

const GIB: u64 = 1024 * 1024 * 1024;

/// The body of a new disk of `size` bytes in storage domain `sd`, with `extra` elements.
fn new_disk(sd: &str, size: u64, extra: &str) -> String {
    format!(
        "<disk><storage_domains><storage_domain id=\"{sd}\"/></storage_domains>\
         <provisioned_size>{size}</provisioned_size>{extra}</disk>"
    )
}

/// Adds a disk of `size` bytes in `varlibqubes` to `vm`; returns its id.
fn add_disk(d: &Daemon, vm: &str, size: u64, extra: &str) -> String {
    let sd = sd_id(d, "varlibqubes");
    let (status, body) = post_expect(d, &format!("/api/vms/{}/disks", d.uuid(vm)), &new_disk(&sd, size, extra));
    assert_eq!(status, 201, "{body}");
    let start = body.find("<disk href=").expect("a disk");
    let id = &body[start..];
    let id = &id[id.find(" id=\"").expect("id") + 5..];
    id[..id.find('"').expect("id end")].to_string()
}

fn volumes(d: &Daemon, vm: &str) -> Vec<String> {
    d.ok("admin.vm.volume.List", vm, b"").lines().map(str::to_string).collect()
}

#[test]
fn adding_a_disk_makes_a_further_volume_the_admin_api_shows() {
    let mut d = daemon();
    let work = d.uuid("work");
    let sd = sd_id(&d, "varlibqubes");

    let r = request(&d, Method::POST, &format!("/api/vms/{work}/disks"))
        .header("Expect", "201-created")
        .body(new_disk(
            &sd,
            GIB,
            "<interface>virtio</interface><format>raw</format><sparse>true</sparse><bootable>false</bootable>\
             <shareable>false</shareable><description>scratch space</description>",
        ))
        .send()
        .expect("post");

    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().expect("location").to_string();
    let body = r.text().expect("body");
    let disk = disk_id(&d, "work-disk1");
    assert!(location.ends_with(&format!("/api/vms/{work}/disks/{disk}")), "{location}");
    assert!(body.contains("<alias>work-disk1</alias>") && body.contains(&format!("<size>{GIB}</size>")), "{body}");
    assert!(body.contains("<bootable>false</bootable>") && body.contains("<format>raw</format>"), "{body}");
    assert_eq!(volumes(&d, "work"), ["root", "private", "volatile", "kernel", "disk1"]);
    assert_eq!(volume_field(&d, "work", "disk1", "size"), GIB.to_string());
    assert_eq!(volume_field(&d, "work", "disk1", "pool"), "varlibqubes");
    assert_eq!(volume_field(&d, "work", "disk1", "rw"), "True");
    assert_eq!(volume_field(&d, "work", "disk1", "save_on_stop"), "True");
    let image = volume_path(&d, "work", "disk1");
    assert_eq!(std::fs::metadata(&image).expect("image").len(), GIB);
    let (status, listed) = get(&d, &format!("/api/vms/{work}/disks/{disk}"));
    assert_eq!(status, 200);
    assert!(listed.contains("<alias>work-disk1</alias>"), "{listed}");
    // It is a volume like the others: the Admin API resizes it, and it is still there after a restart.
    d.ok("admin.vm.volume.Resize+disk1", "work", (2 * GIB).to_string().as_bytes());
    d.restart();
    assert_eq!(volumes(&d, "work"), ["root", "private", "volatile", "kernel", "disk1"]);
    assert_eq!(volume_field(&d, "work", "disk1", "size"), (2 * GIB).to_string());
    // The next one takes the next number; an alias chooses it.
    add_disk(&d, "work", GIB, "<alias>work-disk5</alias>");
    add_disk(&d, "work", GIB, "");
    assert_eq!(volumes(&d, "work"), ["root", "private", "volatile", "kernel", "disk1", "disk2", "disk5"]);
}

#[test]
fn a_new_disk_keeps_the_name_it_is_given() {
    let mut d = daemon();
    let work = d.uuid("work");
    let sd = sd_id(&d, "varlibqubes");
    // What the oVirt v3 SDK sends for `params.Disk(name="sdk-data", size=…, interface="virtio", format="raw", …)`.
    let body = format!(
        "<disk><name>sdk-data</name><storage_domains><storage_domain id=\"{sd}\"/></storage_domains>\
         <size>{GIB}</size><interface>virtio</interface><format>raw</format></disk>"
    );

    let (status, answer) = post_expect(&d, &format!("/api/vms/{work}/disks"), &body);

    assert_eq!(status, 201, "{answer}");
    assert!(answer.contains("<name>sdk-data</name>") && answer.contains("<alias>sdk-data</alias>"), "{answer}");
    // The qube's volume keeps the scheme's name.
    assert_eq!(volumes(&d, "work"), ["root", "private", "volatile", "kernel", "disk1"]);
    let found = get_json(&d, "/api/disks?search=alias%3Dsdk-data");
    assert_eq!(values(&found, "disk", "name"), ["sdk-data"]);
    d.restart();
    let disks = get_json(&d, &format!("/api/vms/{work}/disks"));
    assert_eq!(values(&disks, "disk", "alias"), ["sdk-data", "work-private", "work-root", "work-volatile"]);
    // oVirt lets two disks have the same alias; the next free number is taken, the name kept.
    add_disk(&d, "work", GIB, "<alias>sdk-data</alias>");
    assert_eq!(volumes(&d, "work"), ["root", "private", "volatile", "kernel", "disk1", "disk2"]);
    let found = get_json(&d, "/api/disks?search=name%3Dsdk-data");
    assert_eq!(values(&found, "disk", "alias"), ["sdk-data", "sdk-data"]);
}

#[test]
fn a_further_disk_is_renamed_with_put_the_class_volumes_are_not() {
    let d = daemon();
    let work = d.uuid("work");
    let disk = add_disk(&d, "work", GIB, "");
    let path = format!("/api/vms/{work}/disks/{disk}");

    let (status, answer) = send(&d, Method::PUT, &path, "<disk><alias>Scratch space</alias></disk>");

    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("<alias>Scratch space</alias>") && answer.contains("<name>Scratch space</name>"));
    assert_eq!(disk_id(&d, "Scratch space"), disk);
    // The SDK sends back what it read with one of name and alias changed: that one wins.
    let body = "<disk><name>logs</name><alias>Scratch space</alias></disk>";
    let (status, answer) = send(&d, Method::PUT, &format!("/api/disks/{disk}"), body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(disk_id(&d, "logs"), disk);
    // Bad names change nothing, nor does anything else of the same request.
    for (body, says) in [
        ("<disk><alias>  </alias><provisioned_size>3221225472</provisioned_size></disk>", "empty"),
        ("<disk><alias>a&#9;b</alias></disk>", "control characters"),
        ("<disk><alias>a</alias><name>b</name></disk>", "differ"),
    ] {
        let (status, answer) = send(&d, Method::PUT, &path, body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(is_fault(&answer) && answer.contains(says), "{body}: {answer}");
    }
    assert_eq!(disk_id(&d, "logs"), disk);
    assert_eq!(volume_field(&d, "work", "disk1", "size"), GIB.to_string());
    // Its default name back: it follows the vm's name again.
    let (status, _) = send(&d, Method::PUT, &path, "<disk><alias>work-disk1</alias></disk>");
    assert_eq!(status, 200);
    assert_eq!(disk_id(&d, "work-disk1"), disk);

    let private = disk_id(&d, "work-private");
    let (status, answer) = send(&d, Method::PUT, &format!("/api/disks/{private}"), "<disk><alias>data</alias></disk>");
    assert_eq!(status, 409, "{answer}");
    assert_eq!(disk_id(&d, "work-private"), private);
}

#[test]
fn an_added_disk_keeps_revisions_and_reverts_like_private() {
    let d = daemon();
    add_disk(&d, "work", GIB, "");
    let image = volume_path(&d, "work", "disk1");
    write_at_start(&image, b"first");
    assert_eq!(d.ok("admin.vm.volume.ListSnapshots+disk1", "work", b""), "");

    // A copy of the volume onto itself keeps the replaced content as a revision, as a REST snapshot does.
    let token = d.ok("admin.vm.volume.CloneFrom+disk1", "work", b"");
    d.ok("admin.vm.volume.CloneTo+disk1", "work", token.as_bytes());
    write_at_start(&image, b"later");
    let revisions = d.ok("admin.vm.volume.ListSnapshots+disk1", "work", b"");
    let revision = revisions.lines().next().expect("a revision").to_string();
    d.ok("admin.vm.volume.Revert+disk1", "work", revision.as_bytes());

    assert_eq!(read_start(&volume_path(&d, "work", "disk1"), 5), b"first");
}

/// A crash between a removal's commit and its cleanup (or an add's image and its commit) leaves an image no
/// volume owns, marked as Corral's: the next disk at that place starts empty, not with the old data.
#[test]
fn a_new_disk_starts_empty_even_over_a_leftover_image() {
    let d = daemon();
    let leftover = d.state.join("appvms/work/disk1.img");
    std::fs::write(&leftover, b"old secrets").expect("leftover");
    std::fs::write(d.state.join("appvms/work/disk1.img.unowned"), b"").expect("marker");

    add_disk(&d, "work", GIB, "");

    let image = volume_path(&d, "work", "disk1");
    assert_eq!(image, leftover);
    assert_eq!(read_start(&image, 11), [0u8; 11]);
    assert_eq!(std::fs::metadata(&image).expect("image").len(), GIB);
    assert!(!d.state.join("appvms/work/disk1.img.unowned").exists());
}

/// An image without that mark may be a user's: adding a disk there is refused and the image kept.
#[test]
fn a_new_disk_is_refused_over_an_image_someone_put_there() {
    let d = daemon();
    let placed = d.state.join("appvms/work/disk1.img");
    std::fs::write(&placed, b"their data").expect("placed");

    let sd = sd_id(&d, "varlibqubes");
    let (status, body) = post_expect(&d, &format!("/api/vms/{}/disks", d.uuid("work")), &new_disk(&sd, GIB, ""));

    assert_ne!(status, 201, "{body}");
    assert!(body.contains("already exists"), "{body}");
    assert_eq!(std::fs::read(&placed).expect("read"), b"their data");
    assert!(!volumes(&d, "work").iter().any(|v| v.starts_with("disk")), "no disk was added");
}

#[test]
fn adding_and_removing_disks_are_events_78_and_80_naming_the_user_and_vm() {
    let d = daemon();
    let work = d.uuid("work");
    let first = add_disk(&d, "work", GIB, "");
    let second = add_disk(&d, "work", GIB, "");

    send(&d, Method::DELETE, &format!("/api/vms/{work}/disks/{first}"), "");
    send(&d, Method::DELETE, &format!("/api/disks/{second}"), "");
    let events = get_json(&d, "/api/events");

    let events = events["event"].as_array().expect("events");
    let described = |code: u64| -> Vec<String> {
        let mut out: Vec<String> = events
            .iter()
            .filter(|e| e["code"].as_str().and_then(|c| c.parse().ok()) == Some(code) || e["code"] == code)
            .inspect(|e| assert_eq!(e["vm"]["id"], work.as_str(), "{e}"))
            .map(|e| e["description"].as_str().unwrap_or_default().to_string())
            .collect();
        out.sort();
        out
    };
    assert_eq!(
        described(78),
        [
            "Disk work-disk1 was added to VM work by admin@internal.",
            "Disk work-disk2 was added to VM work by admin@internal."
        ]
    );
    assert_eq!(described(80).len(), 2, "{events:?}");
    assert!(described(80)[1].starts_with("Disk work-disk2 was removed from VM work by admin@internal"));
}

#[test]
fn a_new_disk_needs_a_data_domain_and_a_size_and_is_a_raw_virtio_image() {
    let d = daemon();
    let work = d.uuid("work");
    let data = sd_id(&d, "varlibqubes");
    let iso = sd_id(&d, "linux-kernel");
    let cases = [
        ("<disk><provisioned_size>1024</provisioned_size></disk>".to_string(), "storage_domains"),
        ("<disk><storage_domains><storage_domain id=\"x\"/></storage_domains><size>1024</size></disk>".into(), ""),
        (format!("<disk><storage_domains><storage_domain id=\"{data}\"/></storage_domains></disk>"), "size"),
        (new_disk(&data, 0, ""), "size"),
        (new_disk(&iso, GIB, ""), "iso"),
        (new_disk(&data, GIB, "<format>cow</format><sparse>false</sparse>"), "preallocated"),
        (new_disk(&data, GIB, "<format>qcow2</format>"), "format qcow2"),
        (new_disk(&data, GIB, "<sparse>maybe</sparse>"), "sparse"),
        (new_disk(&data, GIB, "<interface>ide</interface>"), "interface ide"),
        (new_disk(&data, GIB, "<alias>a</alias><name>b</name>"), "differ"),
        (new_disk(&data, GIB, "<alias>two&#10;lines</alias>"), "control characters"),
        (new_disk(&data, GIB, &format!("<name>{}</name>", "x".repeat(256))), "longer than 255"),
    ];
    for (body, says) in cases {
        let (status, reply) = post_expect(&d, &format!("/api/vms/{work}/disks"), &body);
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(is_fault(&reply) && reply.contains(says), "{body}: {reply}");
    }
    assert_eq!(volumes(&d, "work"), ["root", "private", "volatile", "kernel"]);
    assert!(!d.state.join("appvms/work/disk1.img").exists());
}

/// The disk the oVirt v3 SDK's everyday `vm.disks.add(params.Disk(storage_domains=…, size=8 GiB, status=None,
/// interface='virtio', format='cow', sparse=True, bootable=True))` asks for, as it serializes it.
fn sdk_disk(sd: &str) -> String {
    format!(
        "<disk><storage_domains><storage_domain id=\"{sd}\"/></storage_domains><size>{}</size>\
         <interface>virtio</interface><format>cow</format><sparse>true</sparse><bootable>true</bootable></disk>",
        8 * GIB
    )
}

/// The text of element `name` in the first `<disk>` of `body`.
fn disk_leaf(body: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let start = body.find(&open).unwrap_or_else(|| panic!("no {name} in {body}")) + open.len();
    body[start..start + body[start..].find('<').expect("leaf end")].to_string()
}

#[test]
fn the_sdks_thin_bootable_disk_is_added_as_a_sparse_raw_image_that_becomes_the_boot_disk() {
    let mut d = daemon();
    let work = d.uuid("work");
    let sd = sd_id(&d, "varlibqubes");

    for expect in [true, false] {
        let mut r = request(&d, Method::POST, &format!("/api/vms/{work}/disks")).body(sdk_disk(&sd));
        if expect {
            r = r.header("Expect", "201-created");
        }
        let r = r.send().expect("post");
        let status = r.status().as_u16();
        let body = r.text().expect("body");
        if expect {
            assert_eq!(status, 201, "{body}");
            // A thin disk of a file domain is a sparse raw image, and the answer says so.
            assert_eq!(disk_leaf(&body, "format"), "raw", "{body}");
            assert_eq!(disk_leaf(&body, "sparse"), "true", "{body}");
            assert_eq!(disk_leaf(&body, "bootable"), "true", "{body}");
            assert_eq!(disk_leaf(&body, "size"), (8 * GIB).to_string(), "{body}");
        } else {
            // The same call again: the vm has its boot disk already, as oVirt says.
            assert_eq!(status, 409, "{body}");
            assert!(is_fault(&body) && body.contains("work-disk1"), "{body}");
        }
    }
    let image = volume_path(&d, "work", "disk1");
    let meta = std::fs::metadata(&image).expect("image");
    assert_eq!(meta.len(), 8 * GIB);
    assert!(std::os::unix::fs::MetadataExt::blocks(&meta) * 512 < GIB, "a thin disk is sparse");
    assert_eq!(volumes(&d, "work"), ["root", "private", "volatile", "kernel", "disk1"]);
    d.restart();
    let disks = get_json(&d, &format!("/api/vms/{work}/disks"));
    assert_eq!(item(&disks, "disk", "alias", "work-disk1")["bootable"], "true", "{disks}");
    // One boot disk per vm: the root volume no longer is.
    assert_eq!(item(&disks, "disk", "alias", "work-root")["bootable"], "false", "{disks}");
}

#[test]
fn the_boot_disk_changes_by_put_and_a_second_one_is_409() {
    let d = daemon();
    let work = d.uuid("work");
    let first = add_disk(&d, "work", GIB, "<bootable>true</bootable>");
    let second = add_disk(&d, "work", GIB, "");
    let root = disk_id(&d, "work-root");
    let put = |disk: &str, value: bool| {
        send(
            &d,
            Method::PUT,
            &format!("/api/vms/{work}/disks/{disk}"),
            &format!("<disk><bootable>{value}</bootable></disk>"),
        )
    };
    let bootable = |alias: &str| item(&get_json(&d, "/api/disks"), "disk", "alias", alias)["bootable"].clone();

    let (status, body) = put(&second, true);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("work-disk1"), "{body}");
    let (status, _) = put(&root, true);
    assert_eq!(status, 409);
    assert_eq!((bootable("work-disk1"), bootable("work-disk2")), ("true".into(), "false".into()));

    // One change: a shrink the storage refuses keeps the boot flag as it was too.
    let (status, body) = send(
        &d,
        Method::PUT,
        &format!("/api/disks/{first}"),
        "<disk><bootable>false</bootable><provisioned_size>1024</provisioned_size></disk>",
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(bootable("work-disk1"), "true");
    let (status, body) = put(&first, false);
    assert_eq!(status, 200, "{body}");
    assert_eq!(disk_leaf(&body, "bootable"), "false");
    assert_eq!(bootable("work-root"), "true", "without a chosen disk the qube boots its root volume");
    let (status, body) = put(&second, true);
    assert_eq!(status, 200, "{body}");
    assert_eq!((bootable("work-disk2"), bootable("work-root")), ("true".into(), "false".into()));
    // The root volume is the boot disk only by default: it is not taken away on its own.
    let (status, _) = put(&first, false);
    assert_eq!(status, 200);
}

/// The `<disk>` element of `xml` whose target is `dev`.
fn disk_xml<'a>(xml: &'a str, dev: &str) -> &'a str {
    let target = xml.find(&format!("<target dev='{dev}'")).unwrap_or_else(|| panic!("no {dev} in {xml}"));
    let start = xml[..target].rfind("<disk").expect("disk start");
    &xml[start..target + xml[target..].find("</disk>").expect("disk end")]
}

#[test]
fn a_qube_without_kernel_boots_its_bootable_disk_also_as_the_hd_of_a_run_once_boot_order() {
    let d = daemon();
    let work = d.uuid("work");
    add_disk(&d, "work", GIB, "");
    add_disk(&d, "work", GIB, "<bootable>true</bootable>");

    // With a kernel the kernel boots: no disk is asked to.
    install_kernel(&d, "k1");
    d.ok("admin.vm.property.Set+kernel", "work", b"k1");
    d.ok("admin.vm.Start", "work", b"");
    let with_kernel = live_xml(&d, "work");
    d.ok("admin.vm.Kill", "work", b"");
    d.ok("admin.vm.property.Set+kernel", "work", b"");
    d.ok("admin.vm.Start", "work", b"");
    let from_disk = live_xml(&d, "work");
    d.ok("admin.vm.Kill", "work", b"");
    install_iso(&d, "installer.iso");
    let r = request(&d, Method::POST, &format!("/api/vms/{work}/start"))
        .body(
            "<action><vm><os><boot dev=\"cdrom\"/><boot dev=\"hd\"/></os>\
             <cdroms><cdrom><file id=\"installer.iso\"/></cdrom></cdroms></vm></action>",
        )
        .send()
        .expect("start");
    assert_eq!(r.status(), 200);
    let once = live_xml(&d, "work");

    assert!(with_kernel.contains("<kernel>") && !with_kernel.contains("<boot order"), "{with_kernel}");
    assert!(disk_xml(&from_disk, "vdf").contains("<boot order='1'/>"), "{from_disk}");
    assert_eq!(from_disk.matches("<boot ").count(), 1, "only the boot disk, no os/boot: {from_disk}");
    // The asked order holds for that start, its `hd` being the chosen disk.
    assert!(disk_xml(&once, "hdc").contains("<boot order='1'/>"), "{once}");
    assert!(disk_xml(&once, "vdf").contains("<boot order='2'/>"), "{once}");
    assert!(!once.contains("<boot dev"), "{once}");
}

#[test]
fn a_preallocated_disk_is_allocated_and_stays_so_when_it_grows_or_is_cloned() {
    let mut d = daemon();
    let work = d.uuid("work");
    let mib = 1024 * 1024;

    let disk = add_disk(&d, "work", 16 * mib, "<format>raw</format><sparse>false</sparse>");

    let allocated = |vm: &str| {
        let meta = std::fs::metadata(volume_path(&d, vm, "disk1")).expect("image");
        (meta.len(), std::os::unix::fs::MetadataExt::blocks(&meta) * 512)
    };
    let (len, used) = allocated("work");
    assert_eq!(len, 16 * mib);
    assert!(used >= 16 * mib, "{used} bytes allocated");
    let (status, body) = get(&d, &format!("/api/vms/{work}/disks/{disk}"));
    assert_eq!(status, 200);
    assert_eq!(disk_leaf(&body, "sparse"), "false", "{body}");
    let (status, body) =
        send(&d, Method::PUT, &format!("/api/disks/{disk}"), &format!("<disk><size>{}</size></disk>", 32 * mib));
    assert_eq!(status, 200, "{body}");
    assert!(allocated("work").1 >= 32 * mib, "the grown part is allocated too");
    let r = request(&d, Method::POST, &format!("/api/vms/{work}/clone"))
        .body("<action><vm><name>copy</name></vm></action>")
        .send()
        .expect("clone");
    assert_eq!(r.status(), 200);
    assert!(allocated("copy").1 >= 32 * mib, "a clone of a preallocated disk is preallocated");
    // ... once: the copy's files (image and any revision) do not hold the allocation twice.
    let copy_files: u64 = std::fs::read_dir(d.state.join("appvms/copy"))
        .expect("dir")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_name().to_string_lossy().starts_with("disk1"))
        .map(|e| std::os::unix::fs::MetadataExt::blocks(&e.metadata().expect("meta")) * 512)
        .sum();
    assert!(copy_files < 48 * mib, "{copy_files} bytes allocated for the copy");
    d.restart();
    let disks = get_json(&d, "/api/disks");
    assert_eq!(item(&disks, "disk", "alias", "copy-disk1")["sparse"], "false", "{disks}");
    assert_eq!(item(&disks, "disk", "alias", "work-disk1")["sparse"], "false", "{disks}");
    assert_eq!(item(&disks, "disk", "alias", "work-private")["sparse"], "true", "{disks}");
}

#[test]
fn a_preallocated_disk_larger_than_the_free_space_is_refused_and_leaves_nothing() {
    let d = daemon();
    let work = d.uuid("work");
    let sd = sd_id(&d, "varlibqubes");
    let domain = get_json(&d, &format!("/api/storagedomains/{sd}"));
    let available: u64 = domain["available"].as_str().expect("available").parse().expect("number");

    let body = new_disk(&sd, available + 64 * GIB, "<sparse>false</sparse>");
    let (status, reply) = post_expect(&d, &format!("/api/vms/{work}/disks"), &body);

    assert_eq!(status, 409, "{reply}");
    assert!(is_fault(&reply) && reply.contains("space"), "{reply}");
    assert_eq!(volumes(&d, "work"), ["root", "private", "volatile", "kernel"]);
    let leftovers: Vec<_> = std::fs::read_dir(d.state.join("appvms/work"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("disk1"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The space is there again for a thin disk.
    add_disk(&d, "work", GIB, "<sparse>true</sparse>");
}

#[test]
fn a_disks_boot_flag_allocation_and_name_go_with_a_clone_and_a_template() {
    let d = daemon();
    let work = d.uuid("work");
    add_disk(&d, "work", GIB, "<bootable>true</bootable>");
    add_disk(&d, "work", GIB, "<name>scratch</name>");

    let r = request(&d, Method::POST, &format!("/api/vms/{work}/clone"))
        .body("<action><vm><name>copy</name></vm></action>")
        .send()
        .expect("clone");
    assert_eq!(r.status(), 200);
    let (status, body) = post_expect(&d, "/api/templates", &template_body("gold", &work));
    assert_eq!(status, 201, "{body}");

    let disks = get_json(&d, "/api/disks");
    for alias in ["copy-disk1", "gold-disk1"] {
        assert_eq!(item(&disks, "disk", "alias", alias)["bootable"], "true", "{alias}: {disks}");
    }
    assert_eq!(item(&disks, "disk", "alias", "copy-root")["bootable"], "false", "{disks}");
    // A named disk keeps its name in the copies, a default one follows the copy's name.
    let named = |vm: &str| {
        let disks = get_json(&d, &format!("/api/vms/{}/disks?search=name%3Dscratch", d.uuid(vm)));
        values(&disks, "disk", "alias")
    };
    assert_eq!(named("work"), ["scratch"]);
    assert_eq!(named("copy"), ["scratch"]);
    let gold = get_json(&d, &format!("/api/templates/{}/disks", template_id(&d, "gold")));
    assert_eq!(values(&gold, "disk", "alias"), ["gold-disk1", "gold-private", "gold-root", "gold-volatile", "scratch"]);
}

#[test]
fn a_disk_number_in_use_or_a_named_pool_is_honoured() {
    let d = daemon();
    let work = d.uuid("work");
    let dir = tempfile::tempdir().expect("tempdir");
    let (status, body) = post_expect(&d, "/api/storagedomains", &pool_body("fast", "data", "localfs", dir.path()));
    assert_eq!(status, 201, "{body}");
    add_disk(&d, "work", GIB, "<alias>work-disk2</alias>");

    let body = format!(
        "<disk><storage_domains><storage_domain><name>fast</name></storage_domain></storage_domains>\
         <size>{GIB}</size><name>work-disk2</name></disk>"
    );
    let (status, reply) = post_expect(&d, &format!("/api/vms/{work}/disks"), &body);
    assert_eq!(status, 400, "{reply}");
    assert!(reply.contains("already has a volume disk2"), "{reply}");

    let (status, reply) = post_expect(&d, &format!("/api/vms/{work}/disks"), &body.replace("disk2", "disk3"));
    assert_eq!(status, 201, "{reply}");
    assert_eq!(volume_field(&d, "work", "disk3", "pool"), "fast");
    assert!(volume_path(&d, "work", "disk3").starts_with(dir.path()));
}

#[test]
fn attaching_an_existing_disk_is_409_there_are_no_floating_disks() {
    let d = daemon();
    let work = d.uuid("work");
    let theirs = disk_id(&d, "tpl-private");
    let ours = disk_id(&d, "work-private");

    for (disk, says) in [(&theirs, "belongs to another vm"), (&ours, "attached to it already")] {
        let (status, body) = post_expect(&d, &format!("/api/vms/{work}/disks"), &format!("<disk id=\"{disk}\"/>"));
        assert_eq!(status, 409, "{body}");
        assert!(body.contains(says) && body.contains("no floating disks"), "{body}");
    }
    let (status, _) = post_expect(&d, &format!("/api/vms/{work}/disks"), &format!("<disk id=\"{BLANK}\"/>"));
    assert_eq!(status, 404);
    assert_eq!(volumes(&d, "work"), ["root", "private", "volatile", "kernel"]);
}

#[test]
fn disks_change_only_while_the_vm_is_down() {
    let d = daemon();
    let work = d.uuid("work");
    let disk = add_disk(&d, "work", GIB, "");
    d.ok("admin.vm.Start", "work", b"");

    let (added, body) =
        post_expect(&d, &format!("/api/vms/{work}/disks"), &new_disk(&sd_id(&d, "varlibqubes"), GIB, ""));
    let (removed, _) = send(&d, Method::DELETE, &format!("/api/vms/{work}/disks/{disk}"), "");

    assert_eq!((added, removed), (409, 409), "{body}");
    assert!(body.contains("not powered off"), "{body}");
    assert_eq!(volumes(&d, "work"), ["root", "private", "volatile", "kernel", "disk1"]);
}

#[test]
fn removing_an_added_disk_deletes_the_volume_and_its_image() {
    let mut d = daemon();
    let work = d.uuid("work");
    let disk = add_disk(&d, "work", GIB, "");
    let other = add_disk(&d, "work", GIB, "");
    let image = volume_path(&d, "work", "disk1");
    let other_image = volume_path(&d, "work", "disk2");

    let (detach, body) =
        send(&d, Method::DELETE, &format!("/api/vms/{work}/disks/{disk}"), "<action><detach>true</detach></action>");
    assert_eq!(detach, 409, "{body}");
    assert!(body.contains("cannot be detached") && image.exists(), "{body}");

    let (status, _) = send(&d, Method::DELETE, &format!("/api/vms/{work}/disks/{disk}"), "");
    assert_eq!(status, 204);
    assert_eq!(volumes(&d, "work"), ["root", "private", "volatile", "kernel", "disk2"]);
    assert!(!image.exists());
    // The floating-disk address removes one too.
    let (status, _) = send(&d, Method::DELETE, &format!("/api/disks/{other}"), "");
    assert_eq!(status, 204);
    assert!(!other_image.exists());
    d.restart();
    assert_eq!(volumes(&d, "work"), ["root", "private", "volatile", "kernel"]);
    let (status, _) = get(&d, &format!("/api/vms/{work}/disks/{disk}"));
    assert_eq!(status, 404);
}

#[test]
fn a_class_volume_cannot_be_removed_as_a_disk() {
    let d = daemon();
    let work = d.uuid("work");
    let private = disk_id(&d, "work-private");

    let (under_vm, body) = send(&d, Method::DELETE, &format!("/api/vms/{work}/disks/{private}"), "");
    let (floating, _) = send(&d, Method::DELETE, &format!("/api/disks/{private}"), "");

    assert_eq!((under_vm, floating), (409, 409), "{body}");
    assert!(body.contains("goes only with the qube"), "{body}");
    assert_eq!(volumes(&d, "work"), ["root", "private", "volatile", "kernel"]);
}

#[test]
fn a_clone_copies_the_added_disks_and_removing_the_vm_removes_them() {
    let d = daemon();
    let work = d.uuid("work");
    add_disk(&d, "work", GIB, "<alias>work-disk3</alias>");
    write_at_start(&volume_path(&d, "work", "disk3"), b"data on disk3");

    let r = request(&d, Method::POST, &format!("/api/vms/{work}/clone"))
        .body("<action><vm><name>copy</name></vm></action>")
        .send()
        .expect("clone");
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());

    assert_eq!(volumes(&d, "copy"), ["root", "private", "volatile", "kernel", "disk3"]);
    let copied = volume_path(&d, "copy", "disk3");
    assert_eq!(read_start(&copied, 13), b"data on disk3");
    assert_eq!(volume_field(&d, "copy", "disk3", "size"), GIB.to_string());
    let (status, _) = send(&d, Method::DELETE, &format!("/api/vms/{}", d.uuid("copy")), "");
    assert_eq!(status, 204);
    assert!(!copied.exists());
    assert!(volume_path(&d, "work", "disk3").exists());
}

#[test]
fn detaching_a_vm_disk_is_409_with_the_reason() {
    let d = daemon();
    let work = d.uuid("work");
    let disk = disk_id(&d, "work-private");

    let (status, body) =
        send(&d, Method::DELETE, &format!("/api/vms/{work}/disks/{disk}"), "<action><detach>true</detach></action>");

    assert_eq!(status, 409);
    assert!(body.contains("cannot be detached"), "{body}");
}

#[test]
fn growing_a_vm_disk_resizes_the_volume() {
    let d = daemon();
    let work = d.uuid("work");
    let disk = disk_id(&d, "work-private");
    let size = 3 * 1024 * 1024 * 1024u64;

    let (status, _) =
        send(&d, Method::PUT, &format!("/api/vms/{work}/disks/{disk}"), &format!("<disk><size>{size}</size></disk>"));

    assert_eq!(status, 200);
    assert_eq!(volume_field(&d, "work", "private", "size"), size.to_string());
}

// ---------------------------------------------------------------------------------------------------------
// Nics

#[test]
fn a_vm_without_netvm_has_no_nics() {
    let d = daemon();
    let work = d.uuid("work");

    let nics = get_json(&d, &format!("/api/vms/{work}/nics"));

    assert_eq!(nics, serde_json::json!({}));
}

#[test]
fn a_vm_with_netvm_has_nic1_with_its_mac_on_the_default_network() {
    let d = with_netvm();
    let work = d.uuid("work");
    d.ok("admin.vm.property.Set+mac", "work", b"00:16:3e:00:00:42");

    let (status, body) = get(&d, &format!("/api/vms/{work}/nics"));

    assert_eq!(status, 200);
    assert!(body.contains("<name>nic1</name>") && body.contains("<mac address=\"00:16:3e:00:00:42\"/>"), "{body}");
    assert!(
        body.contains("<network href=\"/api/networks/") && body.contains("<interface>virtio</interface>"),
        "{body}"
    );
}

#[test]
fn a_nics_network_is_the_default_network_of_api_networks() {
    let d = with_netvm();
    let work = d.uuid("work");
    let network = id(item(&get_json(&d, "/api/networks"), "network", "name", "default"));

    let nics = get_json(&d, &format!("/api/vms/{work}/nics"));

    assert_eq!(nics["nic"][0]["network"]["id"], network.as_str());
}

#[test]
fn adding_a_nic_connects_the_vm_to_the_default_netvm() {
    let d = with_netvm();
    let work = d.uuid("work");
    d.ok("admin.vm.property.Set+netvm", "work", b"");

    let (status, body) = post_expect(&d, &format!("/api/vms/{work}/nics"), "<nic><name>nic1</name></nic>");

    assert_eq!(status, 201, "{body}");
    assert_eq!(d.ok("admin.vm.property.Get+netvm", "work", b""), "default=False type=vm sys-net");
}

#[test]
fn adding_a_second_nic_is_409() {
    let d = with_netvm();
    let work = d.uuid("work");

    let (status, _) = post_expect(&d, &format!("/api/vms/{work}/nics"), "<nic><name>nic2</name></nic>");

    assert_eq!(status, 409);
}

#[test]
fn removing_the_nic_sets_netvm_to_none() {
    let d = with_netvm();
    let work = d.uuid("work");
    let nic = id(&get_json(&d, &format!("/api/vms/{work}/nics"))["nic"][0]);

    let (status, _) = send(&d, Method::DELETE, &format!("/api/vms/{work}/nics/{nic}"), "");

    assert_eq!(status, 204);
    assert_eq!(d.ok("admin.vm.property.Get+netvm", "work", b""), "default=False type=vm ");
}

#[test]
fn changing_the_nic_mac_sets_the_mac_property() {
    let d = with_netvm();
    let work = d.uuid("work");
    let nic = id(&get_json(&d, &format!("/api/vms/{work}/nics"))["nic"][0]);

    let (status, _) = send(
        &d,
        Method::PUT,
        &format!("/api/vms/{work}/nics/{nic}"),
        "<nic><mac address=\"00:16:3e:aa:bb:cc\"/></nic>",
    );

    assert_eq!(status, 200);
    assert_eq!(d.ok("admin.vm.property.Get+mac", "work", b""), "default=False type=str 00:16:3e:aa:bb:cc");
}

/// The datum of statistic `name` in a JSON `statistics` collection, and its type.
fn stat(stats: &Value, name: &str) -> (f64, String) {
    let s = item(stats, "statistic", "name", name);
    let datum = s.pointer("/values/value/datum").or_else(|| s.pointer("/values/value/0/datum"));
    let number = datum.and_then(Value::as_str).and_then(|d| d.parse().ok()).unwrap_or_else(|| panic!("{name}: {s}"));
    (number, s["type"].as_str().unwrap_or_default().to_string())
}

#[test]
fn a_running_vms_disks_report_their_read_and_write_rates_and_a_halted_ones_zero() {
    let d = daemon();
    let work = d.uuid("work");
    let root = disk_id(&d, "work-root");
    let path = format!("/api/vms/{work}/disks/{root}/statistics");

    let halted = get_json(&d, &path);
    d.ok("admin.vm.Start", "work", b"");
    let running = get_json(&d, &path);
    let floating = get_json(&d, &format!("/api/disks/{root}/statistics"));

    assert_eq!(stat(&halted, "data.current.read").0, 0.0);
    // The test driver's counters grow with time, as a busy disk's would.
    for stats in [&running, &floating] {
        let (read, kind) = stat(stats, "data.current.read");
        assert!(read > 0.0 && kind == "GAUGE", "{stats}");
        assert!(stat(stats, "data.current.write").0 > 0.0, "{stats}");
    }
    let sid = item(&running, "statistic", "name", "data.current.write")["id"].as_str().expect("id").to_string();
    let one = get_json(&d, &format!("{path}/{sid}"));
    assert_eq!(one["name"], "data.current.write");
    assert_eq!(one["unit"], "BYTES_PER_SECOND");
    assert_eq!(one["disk"]["href"], format!("/api/vms/{work}/disks/{root}"));
}

#[test]
fn a_running_vms_nic_reports_rates_and_error_counters() {
    let d = with_netvm();
    let work = d.uuid("work");
    let nic = id(&get_json(&d, &format!("/api/vms/{work}/nics"))["nic"][0]);
    let path = format!("/api/vms/{work}/nics/{nic}/statistics");

    let halted = get_json(&d, &path);
    d.ok("admin.vm.Start", "work", b"");
    let running = get_json(&d, &path);

    assert_eq!(stat(&halted, "data.current.rx").0, 0.0);
    assert!(stat(&running, "data.current.rx").0 > 0.0, "{running}");
    assert!(stat(&running, "data.current.tx").0 > 0.0, "{running}");
    let (errors, kind) = stat(&running, "errors.total.rx");
    assert!(errors > 0.0 && kind == "COUNTER", "the test driver counts errors too: {running}");
    let sid = item(&running, "statistic", "name", "errors.total.tx")["id"].as_str().expect("id").to_string();
    assert_eq!(get_json(&d, &format!("{path}/{sid}"))["nic"]["href"], format!("/api/vms/{work}/nics/{nic}"));
    assert_eq!(get(&d, &format!("{path}/{BLANK}")).0, 404);
}

/// Qubes gives every qube the same default MAC (each has a link of its own to its netvm); on libvirt's
/// one shared bridge those would collide, so each qube's card there has a MAC of its own.
#[test]
fn qubes_on_the_shared_bridge_have_distinct_macs_unless_set() {
    let d = with_netvm();
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=other label=red");
    d.ok("admin.vm.Start", "work", b"");
    d.ok("admin.vm.Start", "other", b"");
    let mac_of = |vm: &str| {
        let nics = get_json(&d, &format!("/api/vms/{}/nics", d.uuid(vm)));
        nics["nic"][0]["mac"]["address"].as_str().expect("mac").to_string()
    };

    let (work, other) = (mac_of("work"), mac_of("other"));

    assert_ne!(work, other);
    assert!(work.starts_with("00:16:3e:") && other.starts_with("00:16:3e:"), "{work} {other}");
    for vm in ["work", "other"] {
        let r = request(&d, Method::GET, &format!("/libvirt/domains/by-name/{vm}/xml_desc")).send().expect("xml");
        let xml = r.json::<Value>().expect("envelope")["results"][0].as_str().expect("xml").to_string();
        assert!(xml.contains(&format!("<mac address='{}'/>", mac_of(vm))), "{xml}");
    }
    d.ok("admin.vm.property.Set+mac", "other", b"00:16:3e:aa:bb:cc");
    assert_eq!(mac_of("other"), "00:16:3e:aa:bb:cc");
}

#[test]
fn unknown_nic_is_404() {
    let d = with_netvm();
    let work = d.uuid("work");

    let (status, _) = get(&d, &format!("/api/vms/{work}/nics/{BLANK}"));

    assert_eq!(status, 404);
}

// ---------------------------------------------------------------------------------------------------------
// Cdroms

#[test]
fn a_vm_has_one_empty_cdrom_with_the_zero_guid() {
    let d = daemon();
    let work = d.uuid("work");

    let (status, body) = get(&d, &format!("/api/vms/{work}/cdroms"));

    assert_eq!(status, 200);
    assert!(body.contains(&format!("<cdrom href=\"/api/vms/{work}/cdroms/{BLANK}\" id=\"{BLANK}\">")), "{body}");
    assert!(body.contains("<file id=\"\"/>"), "{body}");
}

/// An ISO image in the default `file` pool (the state directory), which the pool offers as a file.
fn install_iso(d: &Daemon, name: &str) -> std::path::PathBuf {
    let path = d.state.join(name);
    std::fs::write(&path, b"CD001 image").expect("iso");
    path
}

fn put_cdrom(d: &Daemon, vm: &str, current: bool, file: &str) -> (u16, String) {
    let current = if current { ";current" } else { "" };
    let body = format!("<cdrom><file id=\"{file}\"/></cdrom>");
    send(d, Method::PUT, &format!("/api/vms/{}/cdroms/{BLANK}{current}", d.uuid(vm)), &body)
}

/// libvirt's XML of a qube's domain, through virthttp.
fn live_xml(d: &Daemon, vm: &str) -> String {
    let r = request(d, Method::GET, &format!("/libvirt/domains/by-name/{vm}/xml_desc")).send().expect("xml_desc");
    let v: Value = r.json().expect("envelope");
    v["results"][0].as_str().unwrap_or_else(|| panic!("no XML: {v}")).to_string()
}

#[test]
fn inserting_an_iso_records_it_and_reports_it_back() {
    let d = daemon();
    install_iso(&d, "install.iso");
    let work = d.uuid("work");

    let (status, _) = put_cdrom(&d, "work", false, "install.iso");

    assert_eq!(status, 200);
    assert_eq!(d.ok("admin.vm.feature.Get+corral.cdrom", "work", b""), "install.iso");
    let cdrom = get_json(&d, &format!("/api/vms/{work}/cdroms/{BLANK}"));
    assert_eq!(cdrom["file"]["id"], "install.iso");
}

#[test]
fn ejecting_with_an_empty_file_id_clears_the_cdrom() {
    let d = daemon();
    install_iso(&d, "install.iso");
    d.ok("admin.vm.feature.Set+corral.cdrom", "work", b"install.iso");

    let (status, body) = put_cdrom(&d, "work", false, "");

    assert_eq!(status, 200);
    assert!(body.contains("<file id=\"\"/>"), "{body}");
    assert_eq!(d.err("admin.vm.feature.Get+corral.cdrom", "work", b"").0, "QubesFeatureNotFoundError");
}

#[test]
fn inserting_what_is_no_iso_image_of_a_storage_domain_is_400() {
    let d = daemon();
    install_kernel(&d, "6.1.0");

    for file in ["nope.iso", "6.1.0", "../install.iso", "private.img"] {
        let (status, body) = put_cdrom(&d, "work", false, file);

        assert_eq!(status, 400, "{file}");
        assert!(body.contains(file), "{body}");
    }
    assert_eq!(d.err("admin.vm.feature.Get+corral.cdrom", "work", b"").0, "QubesFeatureNotFoundError");
}

/// A symlink in a pool directory is no ISO image, wherever it points: neither listed nor accepted as a cdrom, for
/// later starts, now, or a single start.
#[test]
fn a_symlinked_iso_is_refused_as_a_cdrom() {
    let d = daemon();
    let secret = d.dir.path().join("shadow");
    std::fs::write(&secret, b"root:$6$hash").expect("secret");
    std::os::unix::fs::symlink(&secret, d.state.join("evil.iso")).expect("symlink");

    let (status, body) = put_cdrom(&d, "work", false, "evil.iso");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("evil.iso"), "{body}");
    assert_eq!(d.err("admin.vm.feature.Get+corral.cdrom", "work", b"").0, "QubesFeatureNotFoundError");

    let r = request(&d, Method::POST, &format!("/api/vms/{}/start", d.uuid("work")))
        .body("<action><vm><cdroms><cdrom><file id=\"evil.iso\"/></cdrom></cdroms></vm></action>")
        .send()
        .expect("start");
    assert_eq!(r.status(), 400, "{}", r.text().unwrap_or_default());
    assert!(d.ok("admin.vm.List", "work", b"").contains("Halted"));

    // Set behind the door's back (an older daemon accepted it): the start refuses it too.
    d.ok("admin.vm.feature.Set+corral.cdrom", "work", b"evil.iso");
    let (kind, message) = d.err("admin.vm.Start", "work", b"");
    assert_eq!(kind, "QubesException");
    assert!(message.contains("The cdrom file evil.iso is in no storage domain"), "{message}");
}

#[test]
fn a_qube_started_with_a_cdrom_has_a_read_only_drive_holding_the_image() {
    let d = daemon();
    let iso = install_iso(&d, "install.iso");
    put_cdrom(&d, "work", false, "install.iso");

    d.ok("admin.vm.Start", "work", b"");

    let xml = live_xml(&d, "work");
    let drive = xml.split("<disk").find(|disk| disk.contains("device='cdrom'")).unwrap_or_else(|| panic!("{xml}"));
    assert!(drive.contains(&format!("<source file='{}'", iso.display())), "{drive}");
    assert!(drive.contains("<readonly/>"), "{drive}");
}

#[test]
fn a_start_whose_cdrom_image_is_gone_fails_saying_so() {
    let d = daemon();
    let iso = install_iso(&d, "install.iso");
    put_cdrom(&d, "work", false, "install.iso");
    std::fs::remove_file(iso).expect("remove the image");

    let (kind, message) = d.err("admin.vm.Start", "work", b"");

    assert_eq!(kind, "QubesException");
    assert!(message.contains("The cdrom file install.iso is in no storage domain"), "{message}");
    assert!(d.ok("admin.vm.List", "work", b"").contains("Halted"));
}

#[test]
fn a_live_change_on_a_qube_started_without_a_drive_is_409_and_changes_nothing() {
    let d = daemon();
    install_iso(&d, "install.iso");
    d.ok("admin.vm.Start", "work", b"");

    let (status, body) = put_cdrom(&d, "work", true, "install.iso");

    assert_eq!(status, 409);
    assert!(body.contains("started without a cdrom drive"), "{body}");
    assert_eq!(d.err("admin.vm.feature.Get+corral.cdrom", "work", b"").0, "QubesFeatureNotFoundError");
}

#[test]
fn a_live_change_goes_to_libvirt_which_the_test_driver_refuses_and_nothing_changes() {
    let d = daemon();
    install_iso(&d, "install.iso");
    install_iso(&d, "other.iso");
    put_cdrom(&d, "work", false, "install.iso");
    d.ok("admin.vm.Start", "work", b"");

    // The media change itself is exercised on QEMU by the real-guest tier.
    let (status, body) = put_cdrom(&d, "work", true, "other.iso");

    assert_eq!(status, 500);
    assert!(body.contains("Cannot change the cdrom") && body.contains("virDomainUpdateDeviceFlags"), "{body}");
    assert_eq!(d.ok("admin.vm.feature.Get+corral.cdrom", "work", b""), "install.iso");
}

#[test]
fn without_current_a_running_qubes_cdrom_changes_at_its_next_start() {
    let d = daemon();
    install_iso(&d, "install.iso");
    d.ok("admin.vm.Start", "work", b"");

    let (status, _) = put_cdrom(&d, "work", false, "install.iso");

    assert_eq!(status, 200);
    assert!(!live_xml(&d, "work").contains("device='cdrom'"));
    d.ok("admin.vm.Kill", "work", b"");
    d.ok("admin.vm.Start", "work", b"");
    assert!(live_xml(&d, "work").contains("device='cdrom'"));
}

#[test]
fn unknown_cdrom_is_404() {
    let d = daemon();
    let work = d.uuid("work");

    let (status, _) = get(&d, &format!("/api/vms/{work}/cdroms/{work}"));

    assert_eq!(status, 404);
}

// ---------------------------------------------------------------------------------------------------------
// Snapshots

#[test]
fn a_new_vm_has_no_snapshots() {
    let d = daemon();
    let work = d.uuid("work");

    let snapshots = get_json(&d, &format!("/api/vms/{work}/snapshots"));

    assert_eq!(snapshots, serde_json::json!({}));
}

#[test]
fn taking_a_snapshot_makes_a_private_volume_revision() {
    let d = daemon();
    let work = d.uuid("work");

    let (status, body) = post_expect(
        &d,
        &format!("/api/vms/{work}/snapshots"),
        "<snapshot><description>before</description></snapshot>",
    );

    assert_eq!(status, 201, "{body}");
    let revision = d.ok("admin.vm.volume.ListSnapshots+private", "work", b"");
    assert_eq!(revision.lines().count(), 1, "{revision:?}");
    assert!(body.contains("<description>before</description>"), "{body}");
    assert!(body.contains("<snapshot_status>ok</snapshot_status>"), "{body}");
}

#[test]
fn a_snapshot_keeps_its_description_across_a_restart() {
    let mut d = daemon();
    let work = d.uuid("work");
    let (status, body) = post_expect(
        &d,
        &format!("/api/vms/{work}/snapshots"),
        "<snapshot><description>before the upgrade \u{e9}t\u{e9} &amp; co</description></snapshot>",
    );
    assert_eq!(status, 201, "{body}");

    d.restart();

    let snapshots = get_json(&d, &format!("/api/vms/{work}/snapshots"));
    assert_eq!(values(&snapshots, "snapshot", "description"), ["before the upgrade \u{e9}t\u{e9} & co"]);
    let snapshot = id(&snapshots["snapshot"][0]);
    let one = get_json(&d, &format!("/api/vms/{work}/snapshots/{snapshot}"));
    assert_eq!(one["description"], "before the upgrade \u{e9}t\u{e9} & co");
}

#[test]
fn a_new_snapshot_drops_the_description_of_the_revision_the_pool_dropped() {
    let d = daemon();
    let work = d.uuid("work");
    let snapshots = format!("/api/vms/{work}/snapshots");
    post_expect(&d, &snapshots, "<snapshot><description>first one</description></snapshot>");
    // Revision ids are times in seconds: the second snapshot must make a new one.
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let (status, body) = post_expect(&d, &snapshots, "<snapshot><description>second one</description></snapshot>");

    assert_eq!(status, 201, "{body}");
    // The file pool keeps one revision.
    assert_eq!(values(&get_json(&d, &snapshots), "snapshot", "description"), ["second one"]);
    let db = support::state::db_dump(&d.state.join("corral.sqlite"));
    assert!(db.contains("second one") && !db.contains("first one"), "{db}");
}

#[test]
fn a_snapshot_description_with_control_characters_is_400_and_takes_no_snapshot() {
    let d = daemon();
    let work = d.uuid("work");

    let r = Client::new()
        .post(d.url(&format!("/api/vms/{work}/snapshots")))
        .basic_auth("admin@internal", Some("secret"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/xml")
        .body(r#"{"description":"bell \u0007"}"#)
        .send()
        .expect("post");
    let (status, body) = (r.status().as_u16(), r.text().expect("body"));

    assert_eq!(status, 400, "{body}");
    assert!(is_fault(&body), "{body}");
    assert_eq!(d.ok("admin.vm.volume.ListSnapshots+private", "work", b""), "");
}

#[test]
fn a_snapshot_description_too_long_is_400_and_takes_no_snapshot() {
    let d = daemon();
    let work = d.uuid("work");
    let long = "x".repeat(4001);

    let (status, body) = post_expect(
        &d,
        &format!("/api/vms/{work}/snapshots"),
        &format!("<snapshot><description>{long}</description></snapshot>"),
    );

    assert_eq!(status, 400, "{body}");
    assert_eq!(d.ok("admin.vm.volume.ListSnapshots+private", "work", b""), "");
}

#[test]
fn snapshots_list_the_revisions_with_their_dates() {
    let d = daemon();
    let work = d.uuid("work");
    post_expect(&d, &format!("/api/vms/{work}/snapshots"), "<snapshot/>");

    let snapshots = get_json(&d, &format!("/api/vms/{work}/snapshots"));

    let revision = d.ok("admin.vm.volume.ListSnapshots+private", "work", b"");
    assert_eq!(values(&snapshots, "snapshot", "description"), [revision.trim()]);
    assert!(snapshots["snapshot"][0]["date"].as_str().expect("date").ends_with(".000Z"));
}

#[test]
fn restoring_a_snapshot_reverts_the_private_volume() {
    let d = daemon();
    let work = d.uuid("work");
    let private = volume_path(&d, "work", "private");
    write_at_start(&private, b"before");
    post_expect(&d, &format!("/api/vms/{work}/snapshots"), "<snapshot/>");
    write_at_start(&private, b"after!");
    let snapshot = id(&get_json(&d, &format!("/api/vms/{work}/snapshots"))["snapshot"][0]);

    let (status, body) = send(&d, Method::POST, &format!("/api/vms/{work}/snapshots/{snapshot}/restore"), "<action/>");

    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<state>complete</state>"), "{body}");
    assert_eq!(read_start(&volume_path(&d, "work", "private"), 6), b"before");
}

#[test]
fn taking_a_snapshot_of_a_running_vm_is_409() {
    let d = daemon();
    let work = d.uuid("work");
    d.ok("admin.vm.Start", "work", b"");

    let (status, body) = post_expect(&d, &format!("/api/vms/{work}/snapshots"), "<snapshot/>");

    assert_eq!(status, 409);
    assert!(is_fault(&body), "{body}");
}

#[test]
fn a_suspended_vm_can_be_snapshotted_and_resumes_after() {
    let d = daemon();
    let work = d.uuid("work");
    let private = volume_path(&d, "work", "private");
    write_at_start(&private, b"saved!");
    d.ok("admin.vm.Start", "work", b"");
    let (status, body) = send(&d, Method::POST, &format!("/api/vms/{work}/suspend"), "<action/>");
    assert_eq!(status, 200, "{body}");

    let (status, body) = post_expect(
        &d,
        &format!("/api/vms/{work}/snapshots"),
        "<snapshot><description>while suspended</description></snapshot>",
    );

    assert_eq!(status, 201, "{body}");
    assert!(body.contains("<description>while suspended</description>"), "{body}");
    assert_eq!(d.ok("admin.vm.volume.ListSnapshots+private", "work", b"").lines().count(), 1);
    assert_eq!(read_start(&volume_path(&d, "work", "private"), 6), b"saved!");
    let (status, body) = send(&d, Method::POST, &format!("/api/vms/{work}/start"), "<action/>");
    assert_eq!(status, 200, "{body}");
    assert!(d.ok("admin.vm.CurrentState", "work", b"").ends_with("power_state=Running"));
}

#[test]
fn taking_a_snapshot_when_no_revisions_are_kept_is_409() {
    let d = daemon();
    let work = d.uuid("work");
    d.ok("admin.vm.volume.Set.revisions_to_keep+private", "work", b"0");

    let (status, body) = post_expect(&d, &format!("/api/vms/{work}/snapshots"), "<snapshot/>");

    assert_eq!(status, 409);
    assert!(body.contains("keeps no revisions"), "{body}");
}

#[test]
fn deleting_a_snapshot_is_409() {
    let d = daemon();
    let work = d.uuid("work");
    post_expect(&d, &format!("/api/vms/{work}/snapshots"), "<snapshot/>");
    let snapshot = id(&get_json(&d, &format!("/api/vms/{work}/snapshots"))["snapshot"][0]);

    let (status, _) = send(&d, Method::DELETE, &format!("/api/vms/{work}/snapshots/{snapshot}"), "");

    assert_eq!(status, 409);
}

#[test]
fn unknown_snapshot_is_404() {
    let d = daemon();
    let work = d.uuid("work");

    let (status, body) = get(&d, &format!("/api/vms/{work}/snapshots/{BLANK}"));

    assert_eq!(status, 404);
    assert!(is_fault(&body), "{body}");
}

#[test]
fn snapshot_disks_are_the_private_disk_with_a_snapshot_reference() {
    let d = daemon();
    let work = d.uuid("work");
    post_expect(&d, &format!("/api/vms/{work}/snapshots"), "<snapshot/>");
    let snapshot = id(&get_json(&d, &format!("/api/vms/{work}/snapshots"))["snapshot"][0]);

    let disks = get_json(&d, &format!("/api/vms/{work}/snapshots/{snapshot}/disks"));

    assert_eq!(values(&disks, "disk", "alias"), ["work-private"]);
    assert_eq!(disks["disk"][0]["snapshot"]["id"], snapshot.as_str());
}
