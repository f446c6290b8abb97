//! The HTTP door describes itself: `/api/openapi.json` is an OpenAPI 3.1 document anyone may read.

mod support;

use serde_json::Value;
use support::Daemon;

fn document(d: &Daemon, path: &str) -> (u16, Option<String>, String) {
    let r = reqwest::blocking::Client::new().get(d.url(path)).send().expect("request");
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    (status, content_type, r.text().expect("body"))
}

#[test]
fn openapi_document_is_served_without_credentials() {
    let d = Daemon::start();

    let (status, content_type, body) = document(&d, "/api/openapi.json");

    assert_eq!((status, content_type.as_deref()), (200, Some("application/json")), "{body}");
    let doc: Value = serde_json::from_str(&body).expect("JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", doc["openapi"]);
    let vm = &doc["paths"]["/api/vms/{id}"];
    assert!(["get", "put", "delete"].iter().all(|m| vm.get(m).is_some()), "{vm}");
}

#[test]
fn openapi_document_is_the_same_under_ovirt_engine() {
    let d = Daemon::start();

    let (api_status, _, api) = document(&d, "/api/openapi.json");
    let (engine_status, _, engine) = document(&d, "/ovirt-engine/api/openapi.json");

    assert_eq!((api_status, engine_status), (200, 200));
    assert_eq!(engine, api);
}
