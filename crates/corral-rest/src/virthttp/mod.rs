//! The virthttp-style JSON API under `/libvirt/`: qubes as libvirt domains and the connection's virtual
//! networks, answered in virthttp's `{results, success, errors, messages}` envelope.
//!
//! As in virthttp, every answer to a well-formed request is HTTP 200 with the envelope, errors included
//! (only authentication fails with 401, so that clients and proxies see the refusal). HEAD answers 200
//! empty; other methods and targets with `..` are a 400 HTML page. `X-Packet-ID` is echoed, bodies are
//! gzip- or deflate-compressed on request, and `?async=true` runs the request in the background.

mod asyncs;
mod domains;
mod envelope;
mod json;
mod networks;
pub(crate) mod openapi;
mod target;

use std::io::Write;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use corral_service::{Principal, Service};
use serde_json::json;

use self::asyncs::{AsyncStore, Lookup};
use self::envelope::Envelope;
use self::json::Json;
use self::target::Target;
use crate::auth::AuthUser;
use crate::Rest;

pub fn routes() -> Router<Arc<Rest>> {
    Router::new()
        .route("/", any(entry))
        .route("/libvirt", any(entry))
        .route("/libvirt/", any(entry))
        .route("/libvirt/{*rest}", any(entry))
        .layer(Extension(Arc::new(AsyncStore::default())))
}

/// virthttp's error 1, with HTTP 401 so that clients and proxies see the refusal too.
pub fn unauthorized() -> Response {
    let body =
        json!({"results": [], "success": false, "errors": [{"code": 1, "message": "Bad X-Auth-Key"}], "messages": []});
    let mut r = (StatusCode::UNAUTHORIZED, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn caller() -> Principal {
    crate::principal()
}

/// One request as the handlers see it.
pub(crate) struct Req<'a> {
    service: &'a Service,
    target: &'a Target,
    method: Method,
    body: &'a Json,
}

impl Req<'_> {
    /// The request through the service's one entry point, as the request's principal.
    fn ask(&self, request: corral_service::Request) -> corral_core::Result<corral_service::Response> {
        self.service.handle(&caller(), request)
    }

    /// A request whose answer is only that it was done.
    fn run(&self, request: corral_service::Request) -> corral_core::Result<()> {
        self.ask(request).map(|_| ())
    }
}

/// An answer of another shape than the request's: a service that answered so is broken, and says so.
fn unexpected(answer: &corral_service::Response) -> corral_core::Error {
    tracing::error!(?answer, "the service answered a virthttp request with an unexpected response");
    corral_core::Error::generic("Internal error: unexpected answer")
}

/// How one action (or one created domain) went, for the `depends` of the actions after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    Skipped,
}

/// The object a URL names: `/libvirt/<kind>` lists, `/libvirt/<kind>/by-name|by-uuid/<id>` is one.
enum Selection<'a> {
    List,
    One { by_uuid: bool, id: &'a str },
}

/// `None` after error 101: a search key without a value, or an unknown one.
fn selection<'a>(req: &Req<'a>, env: &mut Envelope) -> Option<Selection<'a>> {
    let parts = &req.target.parts;
    if parts.len() == 2 {
        return Some(Selection::List);
    }
    match (parts.get(2).map(String::as_str), parts.get(3)) {
        (Some(key @ ("by-name" | "by-uuid")), Some(id)) => Some(Selection::One { by_uuid: key == "by-uuid", id }),
        _ => {
            env.error(101);
            None
        }
    }
}

/// An array of actions in order. An element whose `depends` (an index or a list of indexes of earlier
/// elements) names one that did not succeed is skipped; a `depends` of another type is error 0.
fn run_actions(items: &[Json], env: &mut Envelope, mut act: impl FnMut(&Json, &mut Envelope) -> Outcome) {
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(items.len());
    for item in items {
        let succeeded = |dep: &Json| {
            dep.as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .is_some_and(|i| outcomes.get(i) == Some(&Outcome::Success))
        };
        let ready = match item.get("depends") {
            None => Some(true),
            Some(Json::Arr(deps)) => Some(deps.iter().all(succeeded)),
            Some(dep @ (Json::UInt(_) | Json::Int(_))) => Some(succeeded(dep)),
            Some(_) => None,
        };
        let outcome = match ready {
            Some(true) => act(item, env),
            Some(false) => Outcome::Skipped,
            None => {
                env.error(0);
                Outcome::Failure
            }
        };
        outcomes.push(outcome);
    }
}

/// The envelope of a request to `/libvirt/...`. Blocks on the service.
fn dispatch(service: &Service, target: &Target, method: Method, body: &[u8]) -> Envelope {
    let mut env = Envelope::default();
    let Some(body) = Json::parse(body) else {
        env.error(0);
        env.message("body", "The request body is not JSON: nothing was done");
        return env;
    };
    let req = Req { service, target, method, body: &body };
    match (target.part(0), target.part(1)) {
        (Some("libvirt"), None) => env.error(6),
        (Some("libvirt"), Some("domains")) => {
            if bulk_refused(&req, &mut env) {
                return env;
            }
            domains::handle(&req, &mut env);
        }
        (Some("libvirt"), Some("networks")) => {
            if bulk_refused(&req, &mut env) {
                return env;
            }
            networks::handle(&req, &mut env);
        }
        (Some("libvirt"), Some(_)) => env.error(7),
        _ => env.error(5),
    }
    env
}

/// A PATCH or DELETE on a list (domains or networks) acts on everything the flags select; it takes
/// `?bulk=true`, so that a forgotten `by-name` cannot stop or remove them all.
fn bulk_refused(req: &Req<'_>, env: &mut Envelope) -> bool {
    let list = req.target.parts.len() == 2;
    let sweeping = req.method == Method::PATCH || req.method == Method::DELETE;
    if list && sweeping && req.target.flag_bool("bulk") != Some(true) {
        env.error(3);
        let kind = req.target.part(1).and_then(|p| p.strip_suffix('s')).unwrap_or_default();
        env.message("bulk", format!("A PATCH or DELETE on the whole {kind} list needs ?bulk=true"));
        return true;
    }
    false
}

/// What a service key may do: read anything but secrets, and `PATCH` a domain with `power_mgt` actions only.
fn service_key_may(method: &Method, target: &Target, body: &[u8]) -> bool {
    if *method == Method::GET {
        // The secure XML shows the console's password (the ticket): libvirt gives it to no read-only
        // connection either.
        let secure = target::DOMAIN_XML.bit("secure");
        return target.part(4) != Some("xml_desc")
            || target::DOMAIN_XML.parse_csv(target.get("options")).is_none_or(|f| f & secure == 0);
    }
    if *method != Method::PATCH || target.part(1) != Some("domains") {
        return false;
    }
    let power_only = |action: &Json| action.first().is_some_and(|(key, _)| key == "power_mgt");
    match Json::parse(body) {
        Some(Json::Obj(members)) => power_only(&Json::Obj(members)),
        Some(Json::Arr(items)) => !items.is_empty() && items.iter().all(power_only),
        _ => false,
    }
}

/// virthttp's error 1 for a service key asked for more than it may do, with HTTP 403.
fn forbidden() -> Response {
    let error = json!({"code": 1, "message": "Bad X-Auth-Key"});
    let body = json!({"results": [], "success": false, "errors": [error],
        "messages": [{"auth": "A service key reads and runs power actions only"}]});
    let mut r = (StatusCode::FORBIDDEN, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// virthttp's refusals of a request it cannot parse: a 400 HTML page, not an envelope.
fn bad_request(why: &'static str) -> Response {
    let mut r = (StatusCode::BAD_REQUEST, why).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    r
}

fn json_response(status: StatusCode, body: String, headers: &HeaderMap) -> Response {
    let (bytes, encoding) = compress(body.into_bytes(), headers);
    let mut r = (status, bytes).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(e) = encoding {
        r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    r
}

/// The encodings of `Accept-Encoding` with a weight above zero, by name.
fn accepted(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|item| {
            let mut fields = item.split(';');
            let name = fields.next()?.trim().to_ascii_lowercase();
            let refused = fields.any(|f| f.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()) == Some(0.0));
            (!refused && !name.is_empty()).then_some(name)
        })
        .collect()
}

/// gzip when the client takes it, else deflate (zlib), else the body as it is.
fn compress(body: Vec<u8>, headers: &HeaderMap) -> (Vec<u8>, Option<&'static str>) {
    let accepted = accepted(headers);
    let encoded = if accepted.iter().any(|e| e == "gzip") {
        let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        w.write_all(&body).and_then(|()| w.finish()).ok().map(|b| (b, "gzip"))
    } else if accepted.iter().any(|e| e == "deflate") {
        let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        w.write_all(&body).and_then(|()| w.finish()).ok().map(|b| (b, "deflate"))
    } else {
        None
    };
    match encoded {
        Some((bytes, name)) => (bytes, Some(name)),
        None => (body, None),
    }
}

/// The envelope as JSON text, computed on the blocking pool (SQLite, storage and libvirt calls block), with
/// the request's cause (its user, who the service checks, and whom its events name) lent to that thread.
/// The cause is taken by the caller: an asynchronous request's work runs on a task of its own.
async fn envelope_text(
    service: Arc<Service>,
    cause: Option<Arc<corral_core::Cause>>,
    target: Target,
    method: Method,
    body: axum::body::Bytes,
) -> String {
    let done = tokio::task::spawn_blocking(move || {
        corral_service::with_cause(cause, || dispatch(&service, &target, method, &body))
    })
    .await;
    done.unwrap_or_else(|e| {
        tracing::error!(error = %e, "virthttp request failed");
        let mut env = Envelope::default();
        env.error(-2);
        env
    })
    .to_json()
    .to_string()
}

async fn entry(State(rest): State<Arc<Rest>>, Extension(store): Extension<Arc<AsyncStore>>, req: Request) -> Response {
    let packet_id = req.headers().get("x-packet-id").cloned();
    let mut response = serve(rest, store, req).await;
    if let Some(id) = packet_id {
        response.headers_mut().insert("x-packet-id", id);
    }
    response
}

async fn serve(rest: Arc<Rest>, store: Arc<AsyncStore>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if parts.method == Method::HEAD {
        let mut r = StatusCode::OK.into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return r;
    }
    if ![Method::GET, Method::POST, Method::PATCH, Method::DELETE].contains(&parts.method) {
        return bad_request("Unknown/Unsupported HTTP-method");
    }
    let raw = parts.uri.path_and_query().map_or_else(|| parts.uri.path(), |pq| pq.as_str());
    if !raw.starts_with('/') || raw.contains("..") {
        return bad_request("Illegal request-target");
    }
    let target = Target::parse(raw);
    if target.parts.is_empty() {
        return bad_request("No module name specified");
    }
    let Ok(body) = axum::body::to_bytes(body, crate::MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "Request body too large").into_response();
    };
    if target.part(1) == Some("async") {
        return retrieve(&store, &target, &parts.headers);
    }
    let scoped = parts.extensions.get::<AuthUser>().is_some_and(|u| u.service_key);
    if scoped && !service_key_may(&parts.method, &target, &body) {
        return forbidden();
    }
    if parts.method != Method::GET {
        // The user is recorded for audit only: every REST user acts as the daemon's administrator.
        let user = parts.extensions.get::<AuthUser>().map(|u| u.name.as_str()).unwrap_or_default();
        tracing::info!(user, method = %parts.method, target = raw, "virthttp request");
    }
    let work = envelope_text(rest.service.clone(), crate::cause(), target.clone(), parts.method.clone(), body);
    if target.flag_bool("async") == Some(true) {
        return match store.launch(work) {
            Some(id) => {
                let mut r = (StatusCode::OK, asyncs::encode(id)).into_response();
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                r
            }
            None => {
                let mut r = (StatusCode::INTERNAL_SERVER_ERROR, "An error occurred: 'Unable to enqueue async request'")
                    .into_response();
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
                r
            }
        };
    }
    json_response(StatusCode::OK, work.await, &parts.headers)
}

/// `GET /libvirt/async/{id}`: 404 for an unknown (or expired, or already taken) id, 202 while the
/// request runs (virthttp's 102 is an interim status HTTP/1.1 servers cannot end a response with), and
/// 302 with the envelope once it is done.
fn retrieve(store: &AsyncStore, target: &Target, headers: &HeaderMap) -> Response {
    if target.parts.len() != 3 {
        return bad_request("Invalid request target");
    }
    if target.flag_bool("async") == Some(true) {
        return bad_request("Async retrieve cannot be async'ed");
    }
    let lookup = target.part(2).and_then(asyncs::decode).map_or(Lookup::Unknown, |id| store.take(id));
    match lookup {
        Lookup::Unknown => json_response(StatusCode::NOT_FOUND, String::new(), headers),
        Lookup::Running => json_response(StatusCode::ACCEPTED, String::new(), headers),
        Lookup::Done(body) => json_response(StatusCode::FOUND, body, headers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_weights_of_zero_refuse() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0, deflate"));

        assert_eq!(accepted(&h), vec!["deflate".to_string()]);
    }

    #[test]
    fn depends_skips_after_a_failure_and_rejects_odd_values() {
        let items = match Json::parse(br#"[{"a":1},{"a":2,"depends":0},{"a":3,"depends":[0,1]},{"a":4,"depends":"x"}]"#)
            .expect("JSON")
        {
            Json::Arr(items) => items,
            _ => Vec::new(),
        };
        let mut env = Envelope::default();
        let mut ran = Vec::new();

        run_actions(&items, &mut env, |item, _| {
            ran.push(item.get("a").and_then(Json::as_u64).unwrap_or(0));
            Outcome::Failure
        });

        assert_eq!(ran, vec![1]);
        assert_eq!(env.to_json()["errors"], json!([{"code": 0, "message": "Syntax error"}]));
    }
}
