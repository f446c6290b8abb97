//! What the router tests share: the whole HTTP application in-process over a fresh state (no hypervisor),
//! answers read whole, and the OpenAPI document's operations.
// Each test file uses a different part of it.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use corral_rest::Rest;
use corral_service::{Config, QrexecAdmitted, Service};
use serde_json::Value;
use tower::ServiceExt;

pub const USER: &str = "admin";
pub const PASSWORD: &str = "secret";
/// Stands in for every path parameter: no object has this id or name.
pub const PLACEHOLDER: &str = "placeholder";

pub struct Door {
    pub app: axum::routing::RouterIntoService<Body>,
    pub service: std::sync::Arc<Service>,
    _state: tempfile::TempDir,
}

pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    /// No route took the path: its fault says so, where a handler's 404 names the missing object.
    pub fn is_router_404(&self) -> bool {
        let no_route = format!("[{} ", corral_rest::NO_ROUTE);
        self.status == StatusCode::NOT_FOUND && String::from_utf8_lossy(&self.body).contains(&no_route)
    }

    pub fn envelope_errors(&self) -> Vec<i64> {
        let v: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        v["errors"].as_array().into_iter().flatten().filter_map(|e| e["code"].as_i64()).collect()
    }
}

impl Door {
    pub fn open() -> Door {
        Door::open_with(Box::new(QrexecAdmitted))
    }

    /// The application over a service whose every request `authorizer` decides.
    pub fn open_with(authorizer: Box<dyn corral_service::Authorizer>) -> Door {
        Door::open_on(authorizer, Err("these tests run without libvirt".into()))
    }

    /// `open_with` on a hypervisor (libvirt's test driver, say).
    pub fn open_on(
        authorizer: Box<dyn corral_service::Authorizer>,
        hypervisor: Result<std::sync::Arc<dyn corral_core::hv::Hypervisor>, String>,
    ) -> Door {
        let state = tempfile::tempdir().expect("tempdir");
        let config = Config {
            state_dir: state.path().join("state"),
            durability: Default::default(),
            host: corral_core::HostInfo { memory_mib: 4096, cpus: 2 },
            hypervisor,
            vnc_listen: std::net::Ipv4Addr::LOCALHOST.into(),
        };
        let service = Service::open(config, authorizer).expect("service");
        let add = corral_service::Request::UserAdd { name: USER.into(), password: PASSWORD.into() };
        service.handle(&corral_service::Principal::AdminVm, add).expect("user");
        Door { app: corral_rest::app(Rest::new(service.clone(), false)), service, _state: state }
    }

    pub async fn send(&self, method: &Method, path: &str, auth: bool, body: Vec<u8>) -> Answer {
        let mut headers = HeaderMap::new();
        if auth {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic YWRtaW46c2VjcmV0"));
        }
        if !body.is_empty() {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        self.send_raw(method, path, &headers, body).await
    }
}

pub fn document() -> Value {
    serde_json::to_value(corral_rest::openapi::document()).expect("serializable")
}

/// (path template, method, operation) of every documented operation.
pub fn operations(doc: &Value) -> Vec<(String, Method, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method");
            out.push((path.clone(), method, op.clone()));
        }
    }
    out
}

/// The template with every `{parameter}` replaced by the placeholder.
pub fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') && s.ends_with('}') { PLACEHOLDER } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

impl Door {
    /// A request with any headers and body, sent as given.
    pub async fn send_raw(&self, method: &Method, path: &str, headers: &HeaderMap, body: Vec<u8>) -> Answer {
        let mut req = Request::builder().method(method.clone()).uri(path);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let response = self.app.clone().oneshot(req.body(Body::from(body)).expect("request")).await.expect("answer");
        let status = response.status();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body").to_vec();
        Answer { status, content_type, body }
    }
}

impl Door {
    /// Creates qube `name` of `class` (an AppVM of `template`); returns its uuid.
    pub fn create(&self, class: corral_core::Class, name: &str, template: Option<&str>) -> String {
        let spec = corral_core::plan::CreateSpec {
            class,
            name: name.into(),
            label: "red".into(),
            template: template.map(str::to_string),
            pools: corral_core::plan::PoolChoice::Defaults,
            creator: "dom0".into(),
            uuid: uuid::Uuid::new_v4(),
        };
        let uuid = spec.uuid.to_string();
        let create = corral_service::Request::VmCreate { spec, pools: corral_service::CreateIn::DefaultPools };
        self.service.handle(&corral_service::Principal::AdminVm, create).expect("create");
        uuid
    }
}
