//! The one gate through the virthttp door, on libvirt's test driver: with an authorizer that refuses the HTTP
//! user everything, every documented `/libvirt` route answers a request naming an existing qube or network
//! exactly as one naming a missing one (status and body, the name or uuid aside), lists come back empty, and
//! nothing changes. dom0 (`Principal::AdminVm`) is allowed everything, to set the scene and to look at the
//! result.

mod support;

use axum::http::{HeaderMap, HeaderValue, Method};
use corral_core::{Error, Operation, Principal, Result};
use corral_service::{Authorizer, QrexecAdmitted, Request};
use serde_json::Value;
use support::{Answer, Door, PASSWORD, USER};

/// libvirt's test driver always has this network.
const NETWORK: &str = "default";
const NETWORK_UUID: &str = "dd8fe884-6c02-601e-7551-cca97df1c5df";
const MISSING: &str = "ghost";
const MISSING_UUID: &str = "0b8a9f7e-1d2c-4e5f-8a6b-7c8d9e0f1a2b";

/// dom0 may do anything; everyone else nothing.
struct RefusesUsers;

impl Authorizer for RefusesUsers {
    fn authorize(&self, principal: &Principal, _op: &Operation<'_>) -> Result<()> {
        if principal.is_admin_vm() {
            Ok(())
        } else {
            Err(Error::denied("Refused by policy"))
        }
    }
}

/// A door on a test-driver connection with the running StandaloneVM `vm`. The test driver's state is one
/// for the whole process, so each test names its qube differently.
fn door(authorizer: Box<dyn Authorizer>, vm: &str) -> (Door, String) {
    let hv = corral_hv::Libvirt::connect("test:///default", None).expect("libvirt's test driver");
    let door = Door::open_on(authorizer, Ok(std::sync::Arc::new(hv)));
    let uuid = door.create(corral_core::Class::StandaloneVM, vm, None);
    door.service.handle(&Principal::AdminVm, Request::VmStart { vm: vm.into() }).expect("start the qube");
    (door, uuid)
}

async fn send(door: &Door, method: &Method, path: &str, body: &str) -> Answer {
    let mut headers = HeaderMap::new();
    headers.insert("x-auth-username", HeaderValue::from_static(USER));
    headers.insert("x-auth-key", HeaderValue::from_static(PASSWORD));
    door.send_raw(method, path, &headers, body.as_bytes().to_vec()).await
}

/// Everything dom0 can see of the qubes and networks, to compare before and after.
fn snapshot(door: &Door) -> String {
    let view = door.service.view(&Principal::AdminVm);
    let mut all: Vec<String> = view.domains().map(|d| format!("{d:?} {:?}", view.power(d))).collect();
    let networks = door.service.handle(&Principal::AdminVm, Request::NetworkList).expect("networks");
    all.push(format!("{networks:?}"));
    all.join("\n")
}

fn domain_xml(name: &str) -> String {
    format!("\"<domain type='test'><name>{name}</name><memory unit='MiB'>512</memory></domain>\"")
}

fn network_xml(name: &str) -> String {
    format!("\"<network><name>{name}</name><bridge name='virbr9'/></network>\"")
}

/// One request as sent twice: naming something that exists, then something that does not.
struct Pair {
    method: Method,
    existing: (String, String),
    missing: (String, String),
    /// What differs between the two (the name or uuid), blanked in the answers before they are compared.
    ids: [String; 2],
}

/// For every documented `/libvirt` route: the same request about an existing and a missing qube or network,
/// by name and by uuid. A route without an object in its path names one in its body (a create), or is a
/// list, which is asked once (`existing` and `missing` alike).
fn pairs(vm: &str, vm_uuid: &str) -> Vec<Pair> {
    let doc = support::document();
    let mut out = Vec::new();
    for (template, method, _) in support::operations(&doc) {
        if !template.starts_with("/libvirt/") || template.starts_with("/libvirt/async") {
            continue;
        }
        let networks = template.starts_with("/libvirt/networks");
        let (name, uuid) = if networks { (NETWORK, NETWORK_UUID) } else { (vm, vm_uuid) };
        let queries: &[&str] = match (networks, template.ends_with("{query}")) {
            (_, false) => &[""],
            (false, true) => &["xml_desc", "scheduler_type", "hostname"],
            (true, true) => &["dumpxml", "dhcp-leases"],
        };
        let body = |id: &str| match (&method, networks) {
            (&Method::PATCH, false) => {
                r#"[{"power_mgt": "shutdown"}, {"autostart": true}, {"memory": 1048576}]"#.into()
            }
            (&Method::PATCH, true) => r#"{"autostart": false}"#.into(),
            (&Method::POST, false) => domain_xml(id),
            (&Method::POST, true) => network_xml(id),
            _ => String::new(),
        };
        let path = |id: &str, query: &str| {
            let path = template.replace("{name}", id).replace("{uuid}", id).replace("{query}", query);
            // A sweep over a whole list asks for it, so that the gate, not the bulk rule, answers.
            if matches!(method, Method::PATCH | Method::DELETE) && !template.contains('{') {
                format!("{path}?bulk=true")
            } else {
                path
            }
        };
        let by = if template.contains("{uuid}") { (uuid, MISSING_UUID) } else { (name, MISSING) };
        for query in queries {
            out.push(Pair {
                method: method.clone(),
                existing: (path(by.0, query), body(by.0)),
                missing: (path(by.1, query), body(by.1)),
                ids: [by.0.to_string(), by.1.to_string()],
            });
        }
    }
    out
}

/// The answer with `ids` blanked out of its body.
fn blanked(answer: &Answer, ids: &[String; 2]) -> (u16, Option<String>, String) {
    let mut body = String::from_utf8_lossy(&answer.body).into_owned();
    for id in ids {
        body = body.replace(id.as_str(), "<id>");
    }
    (answer.status.as_u16(), answer.content_type.clone(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_user_learns_nothing_of_what_exists_and_changes_nothing() {
    let (door, uuid) = door(Box::new(RefusesUsers), "refused");
    let before = snapshot(&door);
    let pairs = pairs("refused", &uuid);
    assert!(pairs.len() >= 20, "the document lists the /libvirt routes: {}", pairs.len());

    for pair in &pairs {
        let existing = send(&door, &pair.method, &pair.existing.0, &pair.existing.1).await;
        let missing = send(&door, &pair.method, &pair.missing.0, &pair.missing.1).await;

        assert_eq!(
            blanked(&existing, &pair.ids),
            blanked(&missing, &pair.ids),
            "{} {} and {}",
            pair.method,
            pair.existing.0,
            pair.missing.0
        );
    }
    assert_eq!(snapshot(&door), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_user_lists_nothing() {
    let (door, _) = door(Box::new(RefusesUsers), "unlisted");

    for list in ["/libvirt/domains", "/libvirt/networks", "/libvirt/domains?active=true"] {
        let answer = send(&door, &Method::GET, list, "").await;

        let envelope: Value = serde_json::from_slice(&answer.body).expect("JSON");
        assert_eq!(
            (envelope["results"].clone(), envelope["success"].clone()),
            (Value::Array(Vec::new()), Value::Bool(true)),
            "{list}"
        );
    }
}

/// The comparison above can fail: allowed, the same requests tell what exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_user_sees_what_exists() {
    let (door, uuid) = door(Box::new(QrexecAdmitted), "allowed");
    let mut differing = 0;

    for pair in pairs("allowed", &uuid).iter().filter(|p| p.method == Method::GET) {
        let existing = send(&door, &pair.method, &pair.existing.0, &pair.existing.1).await;
        let missing = send(&door, &pair.method, &pair.missing.0, &pair.missing.1).await;
        if blanked(&existing, &pair.ids) != blanked(&missing, &pair.ids) {
            differing += 1;
        }
    }

    assert!(differing >= 8, "only {differing} GET routes told an existing object from a missing one");
}
