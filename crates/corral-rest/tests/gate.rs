//! The one gate through the RHEV door: with an authorizer that refuses the HTTP user everything, every documented
//! `/api` operation answers alike whether the qube (vm, template, disk, tag) it names exists or not, no answer
//! shows a hidden qube or anything of it, and nothing changes. dom0 (`AdminVm`) is allowed everything, to set
//! the scene and to look at the result.

mod support;

use axum::http::Method;
use corral_core::{Class, Error, Operation, Principal, Result};
use corral_service::{Authorizer, Request};
use support::{document, operations, Door, PLACEHOLDER};
use uuid::Uuid;

/// Allows dom0 everything and refuses everyone else everything.
struct OnlyAdmin;

impl Authorizer for OnlyAdmin {
    fn authorize(&self, principal: &Principal, _op: &Operation<'_>) -> Result<()> {
        if principal.is_admin_vm() {
            Ok(())
        } else {
            Err(Error::denied(""))
        }
    }
}

/// Allows dom0 everything and everyone else only to see qubes (`admin.vm.List`): every change is refused.
struct LookOnly;

impl Authorizer for LookOnly {
    fn authorize(&self, principal: &Principal, op: &Operation<'_>) -> Result<()> {
        if principal.is_admin_vm() || op.method == "admin.vm.List" {
            Ok(())
        } else {
            Err(Error::denied(""))
        }
    }
}

/// The ids the door derives from a qube (disks, tags): the same derivation as the door's, so that a URL can
/// name an existing one.
fn derived(what: &str) -> String {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("corral:{what}").as_bytes()).to_string()
}

/// What the path parameters of one request are filled with.
struct Ids {
    vm: String,
    template: String,
    disk: String,
    tag: String,
    /// A storage domain disks can be added to (not a qube's: the same for both).
    pool: String,
}

const MARKER: &str = "<ID>";
const TAG: &str = "hidden-tag";

struct Scene {
    door: Door,
    vm: String,
    template: String,
    /// Everything of the hidden qubes no answer may show.
    secrets: Vec<String>,
}

fn scene() -> Scene {
    scene_with(Box::new(OnlyAdmin))
}

fn scene_with(authorizer: Box<dyn Authorizer>) -> Scene {
    let door = Door::open_with(authorizer);
    let template = door.create(Class::TemplateVM, "hidden-tpl", None);
    let vm = door.create(Class::AppVM, "hidden-work", Some("hidden-tpl"));
    let admin = Principal::AdminVm;
    for (qube, tag) in [("hidden-work", TAG), ("dom0", TAG)] {
        door.service.handle(&admin, Request::TagSet { vm: qube.into(), tag: tag.into() }).expect("tag");
    }
    let secrets = vec![
        "hidden-work".to_string(),
        "hidden-tpl".to_string(),
        TAG.to_string(),
        vm.clone(),
        template.clone(),
        derived(&format!("disk/{vm}/private")),
        derived(&format!("disk/{template}/root")),
        derived(&format!("tag/{TAG}")),
    ];
    Scene { door, vm, template, secrets }
}

impl Scene {
    fn existing(&self) -> Ids {
        Ids {
            vm: self.vm.clone(),
            template: self.template.clone(),
            disk: derived(&format!("disk/{}/private", self.vm)),
            tag: derived(&format!("tag/{TAG}")),
            pool: self.pool(),
        }
    }

    fn pool(&self) -> String {
        let view = self.door.service.view(&Principal::AdminVm);
        let file = view.pools().iter().find(|p| p.driver == corral_core::volume::Driver::File);
        file.map(|p| p.name.clone()).expect("a file pool")
    }

    /// Everything dom0 can see of the state, to compare before and after.
    fn state(&self) -> Vec<String> {
        let admin = Principal::AdminVm;
        let ask = |r: Request| format!("{:?}", self.door.service.handle(&admin, r));
        let mut all = vec![
            ask(Request::VmList { vm: "dom0".into() }),
            ask(Request::PropertyGetAll),
            ask(Request::LabelList),
            ask(Request::PoolList),
        ];
        let view = self.door.service.view(&admin);
        let mut names: Vec<String> = view.domains().map(|d| d.name.clone()).collect();
        names.push("gate-new".into());
        for vm in names {
            all.push(ask(Request::VmPropertyGetAll { vm: vm.clone() }));
            all.push(ask(Request::TagList { vm: vm.clone() }));
            all.push(ask(Request::NotesGet { vm: vm.clone() }));
            all.push(ask(Request::VolumeList { vm: vm.clone() }));
            if let Some(d) = view.domain(&vm) {
                all.push(format!("{:?}", d.features));
                all.push(format!("{:?}", d.volumes));
            }
        }
        all
    }
}

/// The concrete path for `template`: the qube-derived parameters from `ids`, any other the placeholder.
fn path_of(template: &str, ids: &Ids, action: &str) -> String {
    let mut collection = "";
    let mut out = Vec::new();
    for segment in template.split('/') {
        let value = match segment {
            "{id}" if collection == "vms" => ids.vm.as_str(),
            "{id}" if collection == "templates" => ids.template.as_str(),
            "{id}" if collection == "disks" => ids.disk.as_str(),
            "{id}" if collection == "tags" => ids.tag.as_str(),
            "{d}" => ids.disk.as_str(),
            "{tag}" => ids.tag.as_str(),
            "{action}" => action,
            s if s.starts_with('{') => PLACEHOLDER,
            s => {
                collection = s;
                s
            }
        };
        out.push(value.to_string());
    }
    out.join("/")
}

/// A body that gets each write past its parsing, naming the qubes of `ids` where the write refers to one.
fn body_of(op: &str, ids: &Ids) -> String {
    match op {
        "add_vm" => format!(
            "<vm><name>gate-new</name><template id=\"{}\"/><cluster><name>Default</name></cluster></vm>",
            ids.template
        ),
        "update_vm" => "<vm><description>changed</description><memory>536870912</memory></vm>".into(),
        "add_template" => format!("<template><name>gate-new</name><vm id=\"{}\"/></template>", ids.vm),
        "update_template" => "<template><description>changed</description></template>".into(),
        "add_vm_disk" => format!(
            "<disk><provisioned_size>1048576</provisioned_size><storage_domains><storage_domain><name>{}</name>\
             </storage_domain></storage_domains></disk>",
            ids.pool
        ),
        "update_disk" | "update_vm_disk" => "<disk><alias>changed</alias></disk>".into(),
        "add_vm_nic" => "<nic><name>nic1</name></nic>".into(),
        "update_vm_nic" => "<nic><mac address=\"00:16:3e:00:00:01\"/></nic>".into(),
        "add_vm_snapshot" => "<snapshot><description>gate</description></snapshot>".into(),
        "add_vm_tag" | "add_tag" => format!("<tag><name>{TAG}2</name></tag>"),
        "update_tag" => "<tag><name>renamed</name></tag>".into(),
        "add_vm_cdrom" | "update_vm_cdrom" => "<cdrom><file id=\"gate.iso\"/></cdrom>".into(),
        "vm_action" => "<action><vm><name>gate-new</name></vm><pause>false</pause></action>".into(),
        "remove_vm" | "remove_template" => "<action><force>true</force></action>".into(),
        _ => String::new(),
    }
}

const ACTIONS: [&str; 8] = ["start", "stop", "shutdown", "suspend", "reboot", "ticket", "clone", PLACEHOLDER];

#[tokio::test]
async fn a_refused_user_learns_nothing_and_changes_nothing() {
    let scene = scene();
    let before = scene.state();
    let missing = Ids {
        vm: Uuid::new_v4().to_string(),
        template: Uuid::new_v4().to_string(),
        disk: Uuid::new_v4().to_string(),
        tag: Uuid::new_v4().to_string(),
        pool: scene.pool(),
    };
    let existing = scene.existing();
    let mut asked = 0;
    let mut statuses = Vec::new();
    for (template, method, op) in operations(&document()) {
        if !template.starts_with("/api") {
            continue;
        }
        let id = op["operationId"].as_str().unwrap_or_default().to_string();
        let actions: &[&str] = if template.contains("{action}") { &ACTIONS } else { &[PLACEHOLDER] };
        for action in actions {
            let mut answers = Vec::new();
            for ids in [&existing, &missing] {
                let path = path_of(&template, ids, action);
                let body = if matches!(method, Method::POST | Method::PUT | Method::DELETE) {
                    body_of(&id, ids).into_bytes()
                } else {
                    Vec::new()
                };
                let answer = scene.door.send(&method, &path, true, body).await;
                let mut text = String::from_utf8_lossy(&answer.body).into_owned();
                for value in [&ids.vm, &ids.template, &ids.disk, &ids.tag] {
                    text = text.replace(value.as_str(), MARKER);
                }
                for secret in &scene.secrets {
                    assert!(!text.contains(secret.as_str()), "{method} {path} shows {secret}: {text}");
                }
                statuses.push(answer.status);
                answers.push((answer.status, text));
                asked += 1;
            }
            assert_eq!(
                answers[0], answers[1],
                "{method} {template} ({action}) tells an existing qube from a missing one"
            );
        }
    }
    assert!(asked > 100, "only {asked} requests");
    // The requests reached the gate: those that name no qube were refused by it.
    assert!(statuses.contains(&axum::http::StatusCode::FORBIDDEN), "nothing was refused");
    assert_eq!(scene.state(), before, "a refused request changed the state");
}

#[tokio::test]
async fn a_refused_user_lists_nothing_of_a_hidden_qube() {
    let scene = scene();
    let existing = scene.existing();
    let lists = [
        "/api/vms".to_string(),
        "/api/templates".to_string(),
        "/api/disks".to_string(),
        "/api/tags".to_string(),
        format!("/api/vms/{}/disks", existing.vm),
        format!("/api/vms/{}/tags", existing.vm),
        format!("/api/vms/{}/snapshots", existing.vm),
        format!("/api/vms/{}/nics", existing.vm),
        format!("/api/templates/{}/disks", existing.template),
    ];
    for path in lists {
        let answer = scene.door.send(&Method::GET, &path, true, Vec::new()).await;
        let mut text = String::from_utf8_lossy(&answer.body).into_owned();
        for value in [&existing.vm, &existing.template] {
            text = text.replace(value.as_str(), MARKER);
        }
        for element in ["<vm ", "<disk ", "<nic ", "<snapshot "] {
            assert!(!text.contains(element), "GET {path} lists a {element}>: {text}");
        }
        for secret in &scene.secrets {
            assert!(!text.contains(secret.as_str()), "GET {path} shows {secret}: {text}");
        }
    }
    // dom0 sees everything still.
    let view = scene.door.service.view(&Principal::AdminVm);
    assert!(view.domain("hidden-work").is_some());
}

/// A user who may see every qube reaches each handler with an existing qube: whatever the handler asks of the
/// service is checked by the gate, so nothing changes and every change it asks for is refused.
#[tokio::test]
async fn a_user_who_may_only_look_changes_nothing() {
    let scene = scene_with(Box::new(LookOnly));
    let before = scene.state();
    let existing = scene.existing();
    let mut refused = Vec::new();
    let mut others = Vec::new();
    for (template, method, op) in operations(&document()) {
        if !template.starts_with("/api") || method == Method::GET || method == Method::HEAD {
            continue;
        }
        let id = op["operationId"].as_str().unwrap_or_default().to_string();
        let actions: &[&str] = if template.contains("{action}") { &ACTIONS } else { &[PLACEHOLDER] };
        for action in actions {
            let path = path_of(&template, &existing, action);
            let answer = scene.door.send(&method, &path, true, body_of(&id, &existing).into_bytes()).await;
            assert!(
                !answer.status.is_success(),
                "{method} {path} succeeded: {}",
                String::from_utf8_lossy(&answer.body)
            );
            if answer.status == axum::http::StatusCode::FORBIDDEN {
                refused.push(format!("{method} {template} {action}"));
            } else {
                others.push(format!("{method} {template} {action}: {}", String::from_utf8_lossy(&answer.body)));
            }
        }
    }
    for expected in [
        "POST /api/vms PLACEHOLDER",
        "PUT /api/vms/{id} PLACEHOLDER",
        "DELETE /api/vms/{id} PLACEHOLDER",
        "POST /api/vms/{id}/{action} start",
        "POST /api/vms/{id}/{action} clone",
        "POST /api/vms/{id}/disks PLACEHOLDER",
        "POST /api/vms/{id}/snapshots PLACEHOLDER",
        "POST /api/vms/{id}/tags PLACEHOLDER",
        "DELETE /api/vms/{id}/tags/{tag} PLACEHOLDER",
        "POST /api/templates PLACEHOLDER",
        "PUT /api/templates/{id} PLACEHOLDER",
        "POST /api/tags PLACEHOLDER",
    ] {
        let expected = expected.replace("PLACEHOLDER", PLACEHOLDER);
        assert!(refused.contains(&expected), "{expected} was not refused by the gate: {others:#?}");
    }
    assert_eq!(scene.state(), before, "a refused request changed the state");
}
