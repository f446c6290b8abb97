//! The OpenAPI document is a contract under test: its text is snapshot-locked, and it is checked against
//! what the router really serves — every documented operation is routed, no other method is, credentials
//! and body limits apply exactly where it says, virthttp's dispatcher knows every documented path, and no
//! route is registered outside it.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use axum::http::{Method, StatusCode};
use serde_json::Value;
use support::{concrete, document, operations, Door};

/// virthttp's errors for a path its dispatcher does not know (bad URL, bad subsystem, subsystem needs
/// parameters, bad subsystem parameter, invalid search key).
const UNKNOWN_PATH_ERRORS: [i64; 5] = [2, 5, 6, 7, 101];
/// The routes of virthttp's one handler, which dispatches on the path itself (see `virthttp_dispatch`).
const VIRTHTTP_ENTRIES: [&str; 4] = ["/", "/libvirt", "/libvirt/", "/libvirt/{*rest}"];
/// `/api` (and `/ca.crt`) are also served under this prefix.
const ALIAS: &str = "/ovirt-engine";

fn is_public(doc: &Value, op: &Value) -> bool {
    let security = op.get("security").unwrap_or(&doc["security"]);
    let requirements = security.as_array().cloned().unwrap_or_default();
    requirements.is_empty() || requirements.iter().any(|r| r.as_object().is_some_and(|o| o.is_empty()))
}

fn documents(op: &Value, status: &str) -> bool {
    op["responses"].get(status).is_some()
}

#[test]
fn the_document_is_snapshot_locked() {
    insta::assert_json_snapshot!("openapi", document());
}

#[test]
fn the_document_is_openapi_3_1_with_title_version_and_server() {
    let doc = document();

    assert_eq!(
        (&doc["openapi"], &doc["info"]["title"], &doc["info"]["version"], &doc["servers"][0]["url"]),
        (&Value::from("3.1.0"), &Value::from("Corral"), &Value::from(env!("CARGO_PKG_VERSION")), &Value::from("/"))
    );
}

#[test]
fn operation_ids_are_unique() {
    let doc = document();
    let ids: Vec<String> =
        operations(&doc).iter().map(|(_, _, op)| op["operationId"].as_str().unwrap_or_default().to_string()).collect();

    let unique: HashSet<&String> = ids.iter().collect();

    assert_eq!(unique.len(), ids.len(), "{ids:?}");
}

#[test]
fn path_parameters_are_exactly_the_template_parameters() {
    let doc = document();
    let mut wrong = Vec::new();

    for (path, method, op) in operations(&doc) {
        let in_template: BTreeSet<&str> =
            path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        if in_template != declared {
            wrong.push(format!("{method} {path}: {declared:?}"));
        }
    }

    assert_eq!(wrong, Vec::<String>::new());
}

#[test]
fn every_reference_resolves() {
    let doc = document();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);

    let dangling: Vec<&String> = refs
        .iter()
        .filter(|r| {
            let pointer = r.strip_prefix('#').unwrap_or(r);
            doc.pointer(pointer).is_none()
        })
        .collect();

    assert!(!refs.is_empty());
    assert_eq!(dangling, Vec::<&String>::new());
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_served_document_is_the_generated_one_at_both_addresses_without_credentials() {
    let door = Door::open();

    let api = door.send(&Method::GET, "/api/openapi.json", false, Vec::new()).await;
    let engine = door.send(&Method::GET, "/ovirt-engine/api/openapi.json", false, Vec::new()).await;

    assert_eq!((api.status, api.content_type.as_deref()), (StatusCode::OK, Some("application/json")));
    assert_eq!(serde_json::from_slice::<Value>(&api.body).expect("json"), document());
    assert_eq!((engine.status, engine.body), (StatusCode::OK, api.body));
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let door = Door::open();
    let doc = document();
    let mut unrouted = Vec::new();

    for (path, method, _) in operations(&doc) {
        let mut addresses = vec![concrete(&path)];
        if path.starts_with("/api") || path == "/ca.crt" {
            addresses.push(format!("{ALIAS}{}", concrete(&path)));
        }
        for address in addresses {
            let a = door.send(&method, &address, true, Vec::new()).await;
            if a.is_router_404() || a.status == StatusCode::METHOD_NOT_ALLOWED {
                unrouted.push(format!("{method} {address}: {}", a.status));
            }
        }
    }

    assert_eq!(unrouted, Vec::<String>::new());
}

#[tokio::test]
async fn the_router_404_test_tells_a_missing_route_from_a_missing_object() {
    let door = Door::open();

    let no_route = door.send(&Method::GET, "/api/nonexistent", true, Vec::new()).await;
    let no_object = door.send(&Method::GET, "/api/vms/placeholder", true, Vec::new()).await;

    assert_eq!((no_route.status, no_route.is_router_404()), (StatusCode::NOT_FOUND, true));
    assert_eq!((no_object.status, no_object.is_router_404()), (StatusCode::NOT_FOUND, false));
}

/// `routes!` registers a handler for its documented methods only; a method the document does not list on a
/// path must be refused (405), or the router serves more than the document says.
#[tokio::test]
async fn undocumented_methods_are_not_routed() {
    let door = Door::open();
    let doc = document();
    let mut extra = Vec::new();

    for (path, item) in doc["paths"].as_object().expect("paths") {
        if path.starts_with("/libvirt") {
            continue; // virthttp answers every method itself (400 for the ones it does not know)
        }
        for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            if item.get(method.as_str().to_ascii_lowercase()).is_some() {
                continue;
            }
            let a = door.send(&method, &concrete(path), true, Vec::new()).await;
            if a.status != StatusCode::METHOD_NOT_ALLOWED {
                extra.push(format!("{method} {path}: {}", a.status));
            }
        }
    }

    assert_eq!(extra, Vec::<String>::new());
}

#[tokio::test]
async fn credentials_are_required_exactly_where_documented() {
    let door = Door::open();
    let doc = document();
    let mut wrong = Vec::new();

    for (path, method, op) in operations(&doc) {
        let a = door.send(&method, &concrete(&path), false, Vec::new()).await;
        let refused = a.status == StatusCode::UNAUTHORIZED;
        if refused == is_public(&doc, &op) || refused != documents(&op, "401") {
            wrong.push(format!("{method} {path}: {}", a.status));
        }
    }

    assert_eq!(wrong, Vec::<String>::new());
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_exactly_where_documented() {
    let door = Door::open();
    let doc = document();
    let big = vec![b' '; corral_rest::MAX_BODY + 1];
    let mut wrong = Vec::new();

    for (path, method, op) in operations(&doc) {
        let a = door.send(&method, &concrete(&path), true, big.clone()).await;
        if (a.status == StatusCode::PAYLOAD_TOO_LARGE) != documents(&op, "413") {
            wrong.push(format!("{method} {path}: {}", a.status));
        }
    }

    assert_eq!(wrong, Vec::<String>::new());
}

/// virthttp's dispatcher answers every path with an envelope; a path it does not know gets one of the
/// "unknown path" errors, which no documented path may get.
#[tokio::test]
async fn virthttp_dispatch_knows_every_documented_path() {
    let door = Door::open();
    let doc = document();
    let mut unknown = Vec::new();

    for (path, method, _) in operations(&doc).into_iter().filter(|(p, _, _)| p.starts_with("/libvirt/")) {
        let a = door.send(&method, &concrete(&path), true, Vec::new()).await;
        let enveloped = a.content_type.as_deref() == Some("application/json");
        let dispatched = match path.as_str() {
            "/libvirt/async/{id}" => enveloped && a.status == StatusCode::NOT_FOUND,
            _ => enveloped && a.status == StatusCode::OK,
        };
        let errors = a.envelope_errors();
        if !dispatched || errors.iter().any(|e| UNKNOWN_PATH_ERRORS.contains(e)) {
            unknown.push(format!("{method} {path}: {} {errors:?}", a.status));
        }
    }
    let control = door.send(&Method::GET, "/libvirt/nonexistent", true, Vec::new()).await;

    assert_eq!(unknown, Vec::<String>::new());
    assert_eq!(control.envelope_errors(), vec![7]);
}

/// Every route registered with a literal path outside `routes!` (which routes exactly what a handler's
/// annotation documents) must be in the document, under the `/ovirt-engine` alias of a documented path, or
/// be virthttp's dispatching entry, whose resources the document lists.
#[test]
fn every_route_is_documented() {
    let doc = document();
    let documented: BTreeSet<&str> = doc["paths"].as_object().expect("paths").keys().map(String::as_str).collect();
    let mut routed = Vec::new();
    collect_routes(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut routed);

    let undocumented: Vec<&String> = routed
        .iter()
        .filter(|p| {
            let direct = documented.contains(p.as_str());
            let alias = p.strip_prefix(ALIAS).is_some_and(|rest| documented.contains(rest));
            !direct && !alias && !VIRTHTTP_ENTRIES.contains(&p.as_str())
        })
        .collect();

    assert!(routed.iter().any(|p| p == "/libvirt/{*rest}"), "{routed:?}");
    assert_eq!(undocumented, Vec::<&String>::new());
    for resource in ["/libvirt/domains", "/libvirt/networks", "/libvirt/async/{id}"] {
        assert!(documented.contains(resource), "{resource}");
    }
}

/// The literal paths of `.route(` and `.route_service(` calls in the crate's sources.
fn collect_routes(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("src").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_routes(&path, out);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source");
        for call in [".route(", ".route_service("] {
            for (at, _) in text.match_indices(call) {
                let rest = text[at + call.len()..].trim_start();
                if let Some(literal) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                    out.push(literal.to_string());
                }
            }
        }
    }
}
