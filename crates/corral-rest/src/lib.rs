//! The HTTP door: the RHEV/oVirt v3 style `/api` (XML, or JSON on request) and the virthttp `/libvirt`
//! endpoints. Handlers parse HTTP into the same service calls the Admin API door makes; nothing here
//! re-implements what the core does.

pub mod auth;
mod conns;
pub mod ctx;
pub mod events;
pub mod fault;
pub mod openapi;
pub mod repr;
pub mod rhev;
pub mod tls;
pub mod virthttp;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use corral_service::Service;
use tower::Layer;

pub use ctx::Format;

/// Request bodies larger than this are refused with 413 before they are read.
pub const MAX_BODY: usize = 1024 * 1024;

pub struct Rest {
    pub service: Arc<Service>,
    pub sessions: auth::Sessions,
    /// Whether the listener is TLS (cookies get `Secure`).
    pub tls: bool,
    /// The served certificate as PEM, for `GET /ca.crt`; `None` on plain HTTP.
    pub certificate_pem: Option<String>,
    /// Actions run with `async`, until their outcome has been read or expired.
    pub actions: rhev::vms::AsyncActions,
}

impl Rest {
    pub fn new(service: Arc<Service>, tls: bool) -> Arc<Rest> {
        service.start_audit();
        Arc::new(Rest {
            service,
            sessions: auth::Sessions::default(),
            tls,
            certificate_pem: None,
            actions: Default::default(),
        })
    }

    /// A door served over TLS with `certificate_pem` (cookies get `Secure`; `GET /ca.crt` returns it).
    pub fn new_tls(service: Arc<Service>, certificate_pem: String) -> Arc<Rest> {
        service.start_audit();
        let sessions = auth::Sessions::default();
        Arc::new(Rest {
            service,
            sessions,
            tls: true,
            certificate_pem: Some(certificate_pem),
            actions: Default::default(),
        })
    }
}

/// Matrix parameters (`/api/vms;max=5`) may follow any path segment; they are moved out of the path into
/// the request's extensions before routing.
#[derive(Debug, Clone, Default)]
pub struct Matrix(pub Vec<(String, String)>);

impl Matrix {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }
}

fn strip_matrix(mut req: Request) -> Request {
    let uri = req.uri().clone();
    let path = uri.path();
    if !path.contains(';') {
        req.extensions_mut().insert(Matrix::default());
        return req;
    }
    let mut params = Vec::new();
    let clean: Vec<&str> = path
        .split('/')
        .map(|segment| {
            let mut parts = segment.split(';');
            let head = parts.next().unwrap_or_default();
            for p in parts.filter(|p| !p.is_empty()) {
                let (k, v) = p.split_once('=').unwrap_or((p, "true"));
                params.push((k.to_string(), v.to_string()));
            }
            head
        })
        .collect();
    let mut new_path = clean.join("/");
    if let Some(q) = uri.query() {
        new_path = format!("{new_path}?{q}");
    }
    if let Ok(pq) = new_path.parse::<axum::http::uri::PathAndQuery>() {
        let mut parts = uri.into_parts();
        parts.path_and_query = Some(pq);
        if let Ok(u) = Uri::from_parts(parts) {
            *req.uri_mut() = u;
        }
    }
    req.extensions_mut().insert(Matrix(params));
    req
}

/// Faults are built as XML; a client that asked for JSON gets the same fault as JSON. Error answers made
/// outside the handlers (no route, wrong method, a body the extractors refuse) get a fault too: on `/api`
/// every error status carries one.
async fn negotiate_faults(req: Request, next: Next) -> Response {
    let format = Format::from_headers(req.headers());
    // The URI's clone shares its bytes: no allocation on the way of every request.
    let rhev = is_rhev_path(req.uri().path()).then(|| (req.method().clone(), req.uri().clone()));
    let mut response = next.run(req).await;
    let bare = response.extensions().get::<fault::FaultBody>().is_none()
        && (response.status().is_client_error() || response.status().is_server_error());
    if let (Some((method, uri)), true) = (&rhev, bare) {
        response = fault_for(response, method, uri.path()).await;
    }
    if format != Format::Json {
        return response;
    }
    let Some(fault) = response.extensions().get::<fault::FaultBody>().cloned() else { return response };
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(fault.0.json_bytes()))
}

/// Whether `path` is the RHEV door's (`/api…`, `/ovirt-engine/api…`); the rest is virthttp's, which
/// answers in its own shapes (`/` included: a 400 in plain text).
fn is_rhev_path(path: &str) -> bool {
    let path = path.strip_prefix("/ovirt-engine").unwrap_or(path);
    path == "/api" || path.starts_with("/api/") || path.starts_with("/api;")
}

/// How the fault of a path no route serves begins (a handler's 404 names the missing object instead).
pub const NO_ROUTE: &str = "No resource at";

tokio::task_local! {
    /// The request's user and `Correlation-Id`, for the events its work publishes (see
    /// [`rhev::handler::blocking`]).
    pub static CAUSE: Option<Arc<corral_core::Cause>>;
}

/// The cause of the request being served: its `Correlation-Id`, and its user once authenticated.
pub fn cause() -> Option<Arc<corral_core::Cause>> {
    CAUSE.try_with(Clone::clone).ok().flatten()
}

/// Who the request being served is from: the user its credentials named, as authentication recorded in its
/// cause (on the request's task, or on the thread `rhev::handler::blocking` lends the cause to). A request
/// that was not authenticated is anonymous, which every authorizer refuses.
pub fn principal() -> corral_core::Principal {
    cause()
        .or_else(corral_service::current_cause)
        .and_then(|c| c.principal.clone())
        .unwrap_or(corral_core::Principal::Anonymous)
}

/// oVirt's rule for a `Correlation-Id`: up to 50 letters, digits, `-` and `_`.
fn valid_correlation_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 50 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Serves the request with its `Correlation-Id` (when it has one) in [`CAUSE`]; a malformed one is a 400 and
/// nothing runs. Authentication adds the user.
async fn correlate(req: Request, next: Next) -> Response {
    let id = match req.headers().get("correlation-id").map(|v| v.to_str().map(str::trim)) {
        None => None,
        Some(Ok(id)) if valid_correlation_id(id) => Some(id.to_string()),
        Some(_) => {
            let why = "Invalid Correlation-Id: up to 50 letters, digits, '-' and '_'";
            return fault::ApiError::bad_request(why).into_response();
        }
    };
    let cause = Arc::new(corral_core::Cause { correlation_id: id, principal: None });
    CAUSE.scope(Some(cause), next.run(req)).await
}

/// The fault of an error answer that came without one; its status and `Allow` header are kept.
async fn fault_for(response: Response, method: &axum::http::Method, path: &str) -> Response {
    let status = response.status();
    let allow = response.headers().get(header::ALLOW).cloned();
    let detail = match status {
        StatusCode::NOT_FOUND => format!("{NO_ROUTE} {path}"),
        StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on {path}"),
        _ => {
            // axum's rejections explain themselves in a short text body.
            let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap_or_default();
            String::from_utf8_lossy(&body).trim().to_string()
        }
    };
    let mut out = fault::ApiError::new(status, "Operation Failed", detail).into_response();
    if let Some(allow) = allow {
        out.headers_mut().insert(header::ALLOW, allow);
    }
    out
}

/// The whole HTTP application: routes, auth, body limit, format negotiation, matrix parameters.
pub fn app(rest: Arc<Rest>) -> axum::routing::RouterIntoService<Body> {
    let routes = Router::new()
        .merge(rhev::routes())
        .nest("/ovirt-engine", rhev::routes())
        .merge(virthttp::routes())
        .route("/ca.crt", axum::routing::get(tls::ca_certificate))
        .route("/ovirt-engine/ca.crt", axum::routing::get(tls::ca_certificate))
        .layer(middleware::from_fn_with_state(rest.clone(), auth::require_auth))
        .layer(middleware::from_fn(correlate))
        .layer(middleware::from_fn(negotiate_faults))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(rest);
    routes.into_service()
}

/// What both listeners serve: the application behind the matrix-parameter rewrite.
fn service(rest: Arc<Rest>) -> App {
    tower::util::MapRequestLayer::new(strip_matrix as fn(Request) -> Request).layer(app(rest))
}

pub use corral_conns::Limits;

/// The longest request head a client may send. hyper's default (about 400 KiB) let a thousand clients that
/// never finish their headers hold 400 MB; oVirt's clients send a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;

/// Serves HTTP on `listener` until `stop`, then answers the requests in flight and returns. Connections are
/// admitted by `corral_conns` (caps in total and per client address, the oldest idle connection giving way), and
/// `limits.idle_timeout` bounds how long a client may take to send a request's head or body and how long a
/// connection may stay idle between requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    rest: Arc<Rest>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> std::io::Result<()> {
    serve_bounded(listener, rest, stop, limits, None).await
}

/// Serves HTTPS on `listener` as `serve` serves HTTP. Each connection's handshake runs in its own task (10 s
/// limit), so a slow client does not hold up the accepts of others.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    rest: Arc<Rest>,
    config: Arc<rustls::ServerConfig>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> std::io::Result<()> {
    serve_bounded(listener, rest, stop, limits, Some(tokio_rustls::TlsAcceptor::from(config))).await
}

/// How long a TLS client has for its handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn serve_bounded(
    listener: tokio::net::TcpListener,
    rest: Arc<Rest>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    let app = service(rest);
    let door = corral_conns::Door::new(limits);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.idle_timeout).max_buf_size(MAX_HEAD);
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut accept_warning = corral_conns::RateLimited::default();
    let mut refusal_warning = corral_conns::RateLimited::default();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, mostly: it lasts a while and would log every few milliseconds.
                    accept_warning.warn(|suppressed| tracing::warn!(error = %e, suppressed, "HTTP accept failed"));
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let admitted = match door.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refused) => {
                // Every connection it could replace is serving a request: this one is closed unanswered.
                refusal_warning.warn(
                    |suppressed| tracing::warn!(peer = %peer.ip(), ?refused, suppressed, "HTTP connection refused"),
                );
                continue;
            }
        };
        let connection = Connection {
            builder: builder.clone(),
            watcher: graceful.watcher(),
            app: app.clone(),
            peer: peer.ip(),
            admitted,
            request_timeout: limits.idle_timeout,
        };
        match &tls {
            None => {
                tokio::spawn(connection.serve(stream));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        connection.serve(stream).await;
                    }
                });
            }
        }
    }
    graceful.shutdown().await;
    Ok(())
}

type App = tower::util::MapRequest<axum::routing::RouterIntoService<Body>, fn(Request) -> Request>;

/// An admitted connection about to be served.
struct Connection {
    builder: Arc<hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>>,
    watcher: hyper_util::server::graceful::Watcher,
    app: App,
    peer: std::net::IpAddr,
    admitted: corral_conns::Admitted<std::net::IpAddr>,
    request_timeout: std::time::Duration,
}

impl Connection {
    /// Serves `io` until the client is done, the door evicts it, or it stays idle too long.
    async fn serve<I>(self, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Connection { builder, watcher, app, peer, mut admitted, request_timeout } = self;
        let activity = admitted.activity.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            // Busy from the moment the head is parsed until the answer's body has been sent.
            let busy = activity.begin();
            let app = app.clone();
            let mut req = req.map(|body| {
                Body::new(conns::WithDeadline {
                    body,
                    deadline: Box::pin(tokio::time::sleep(request_timeout)),
                    timeout: request_timeout,
                })
            });
            req.extensions_mut().insert(auth::Peer(peer));
            async move {
                let response = tower::ServiceExt::oneshot(app, req).await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| conns::WhileSending { body, _busy: busy }))
            }
        });
        let connection = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(io), service).into_owned();
        let connection = watcher.watch(connection);
        tokio::select! {
            _ = connection => {}
            // Evicted or idle too long: dropping the connection closes it.
            _ = admitted.must_close() => {}
        }
    }
}
