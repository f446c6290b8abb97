//! Who is calling: HTTP Basic `user@domain`, oVirt's `JSESSIONID` sessions (`Prefer: persistent-auth`,
//! `Session-TTL`), and virthttp's `X-Auth-Username`/`X-Auth-Key`. Passwords are checked by the service.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use corral_service::LoginRefused;
use parking_lot::Mutex;
use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::fault::ApiError;
use crate::Rest;

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub name: String,
    /// Authenticated by a virthttp service key: reads and power actions only.
    pub service_key: bool,
}

/// Tells the service that `user` opened a session (`open`) or ended one, for its audit log.
fn record_session(rest: &Rest, user: &str, open: bool) {
    let principal =
        corral_core::Principal::User { name: user.to_string(), credential: corral_core::Credential::Session };
    // Noting it cannot fail but by a refusal, which leaves nothing to note; the request goes on either way.
    let _ = corral_service::with_cause(crate::cause(), || {
        rest.service.handle(&principal, corral_service::Request::Session { open })
    });
}

const DEFAULT_TTL: Duration = Duration::from_secs(30 * 60);
/// The longest idle time a client may ask for with `Session-TTL` (minutes): one day.
pub const MAX_SESSION_TTL_MINUTES: u64 = 24 * 60;
/// Open sessions per user; opening one more ends the user's least recently used.
pub const MAX_SESSIONS_PER_USER: usize = 32;
/// Open sessions in all; opening one more ends the least recently used.
pub const MAX_SESSIONS: usize = 4096;

#[derive(Default)]
pub struct Sessions {
    /// token → (user, last use, idle time allowed)
    by_token: Mutex<HashMap<String, (String, Instant, Duration)>>,
}

/// The token of the least recently used session among those `keep` picks.
fn least_recent(map: &HashMap<String, (String, Instant, Duration)>, keep: impl Fn(&str) -> bool) -> Option<&String> {
    map.iter().filter(|(_, (user, _, _))| keep(user)).min_by_key(|(_, (_, at, _))| *at).map(|(t, _)| t)
}

impl Sessions {
    fn open(&self, user: &str, ttl: Duration) -> String {
        let token: String = rand::thread_rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect();
        let mut map = self.by_token.lock();
        map.retain(|_, (_, at, ttl)| at.elapsed() < *ttl);
        if map.values().filter(|(u, _, _)| u == user).count() >= MAX_SESSIONS_PER_USER {
            if let Some(oldest) = least_recent(&map, |u| u == user).cloned() {
                map.remove(&oldest);
            }
        }
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = least_recent(&map, |_| true).cloned() {
                map.remove(&oldest);
            }
        }
        map.insert(token.clone(), (user.to_string(), Instant::now(), ttl));
        token
    }

    fn lookup(&self, token: &str) -> Option<String> {
        let mut map = self.by_token.lock();
        let (user, at, ttl) = map.get_mut(token)?;
        if at.elapsed() >= *ttl {
            map.remove(token);
            return None;
        }
        *at = Instant::now();
        Some(user.clone())
    }

    /// Ends a session; the user it was, if it was still open.
    fn close(&self, token: &str) -> Option<String> {
        self.by_token.lock().remove(token).map(|(user, _, _)| user)
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == "JSESSIONID").then(|| v.to_string())
    })
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn virthttp_key(headers: &HeaderMap) -> Option<(String, String)> {
    let user = headers.get("x-auth-username")?.to_str().ok()?;
    let key = headers.get("x-auth-key")?.to_str().ok()?;
    Some((user.to_string(), key.to_string()))
}

fn wants_session(headers: &HeaderMap) -> bool {
    headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains("persistent-auth"))
}

fn session_ttl(headers: &HeaderMap) -> Duration {
    headers
        .get("session-ttl")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|m| *m > 0)
        .map_or(DEFAULT_TTL, |minutes| Duration::from_secs(minutes.min(MAX_SESSION_TTL_MINUTES) * 60))
}

/// Whether a change authenticated by the session cookie could not have come from another site's page: a
/// browser sends such a request without asking the server first (a "simple" request, which carries the
/// cookie) only with a form or text body type and without headers like `Prefer`. The oVirt SDK sends
/// `application/xml` bodies and `Prefer: persistent-auth` with its cookie.
fn not_cross_site(method: &axum::http::Method, headers: &HeaderMap) -> bool {
    if matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS) {
        return true;
    }
    match headers.get(header::CONTENT_TYPE) {
        Some(v) => {
            let essence =
                v.to_str().unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
            let (kind, sub) = essence.split_once('/').unwrap_or_default();
            kind == "application" && (matches!(sub, "xml" | "json") || sub.ends_with("+xml") || sub.ends_with("+json"))
        }
        None => headers.contains_key("prefer") || headers.contains_key("x-requested-with"),
    }
}

/// Paths anyone may read: the API description documents itself.
fn is_public(path: &str) -> bool {
    matches!(path, "/api/openapi.json" | "/ovirt-engine/api/openapi.json" | "/ca.crt" | "/ovirt-engine/ca.crt")
}

/// The address a request came from, put in its extensions by the listener.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub IpAddr);

async fn check_password(
    rest: &Arc<Rest>,
    user: String,
    password: String,
    source: IpAddr,
) -> Result<String, LoginRefused> {
    if let Some(known) = rest.service.recently_verified(&user, &password) {
        return Ok(known.name);
    }
    let service = rest.service.clone();
    let verified = tokio::task::spawn_blocking(move || service.authenticate(&user, &password, source)).await;
    verified.unwrap_or(Err(LoginRefused::Denied)).map(|u| u.name)
}

pub async fn require_auth(State(rest): State<Arc<Rest>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if is_public(&path) {
        return next.run(req).await;
    }
    let virthttp = path.starts_with("/libvirt");
    let headers = req.headers();
    let session = cookie(headers).filter(|_| !virthttp);
    let persistent = wants_session(headers);
    let ttl = session_ttl(headers);

    let mut user = session.as_deref().and_then(|t| rest.sessions.lookup(t));
    if user.is_some() && !not_cross_site(req.method(), headers) {
        let why = "A change made with the session cookie needs an XML or JSON body (Content-Type), or, without \
                   a body, a Prefer header";
        return ApiError::new(StatusCode::FORBIDDEN, "Operation Failed", why).into_response();
    }
    let mut credential = corral_core::Credential::Session;
    let mut new_session = None;
    let mut busy = false;
    if user.is_none() {
        credential = corral_core::Credential::Password;
        let credentials = if virthttp { virthttp_key(headers).or_else(|| basic(headers)) } else { basic(headers) };
        if let Some((login, password)) = credentials {
            // Requests handed to the application without a listener (tests) count as local.
            let source = req.extensions().get::<Peer>().map_or(IpAddr::from([127, 0, 0, 1]), |p| p.0);
            match check_password(&rest, login, password, source).await {
                Ok(name) => user = Some(name),
                Err(LoginRefused::Busy) => busy = true,
                Err(LoginRefused::Denied) => {}
            }
            if user.is_some() && persistent && !virthttp {
                new_session = user.as_deref().map(|u| rest.sessions.open(u, ttl));
                if let Some(u) = user.as_deref() {
                    record_session(&rest, u, true);
                }
            }
        }
    }
    let mut service_key = false;
    if user.is_none() && virthttp {
        if let Some(key) = headers.get("x-auth-user-service-key").and_then(|v| v.to_str().ok()) {
            user = rest.service.service_key_user(key.trim()).map(|u| u.name);
            service_key = user.is_some();
            credential = corral_core::Credential::ServiceKey;
        }
    }
    let Some(name) = user else {
        if busy && !virthttp {
            // The password was not checked: say so rather than call it wrong.
            let why = "Too many logins are being checked; try again shortly";
            let mut r = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Operation Failed", why).into_response();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return r;
        }
        return if virthttp { crate::virthttp::unauthorized() } else { ApiError::unauthorized().into_response() };
    };
    req.extensions_mut().insert(AuthUser { name: name.clone(), service_key });
    let principal = corral_core::Principal::User { name: name.clone(), credential };
    let cause = corral_core::Cause {
        correlation_id: crate::cause().and_then(|c| c.correlation_id.clone()),
        principal: Some(principal),
    };
    let mut response = crate::CAUSE.scope(Some(Arc::new(cause)), next.run(req)).await;
    if let Some(token) = new_session {
        let secure = if rest.tls { "; Secure" } else { "" };
        if let Ok(v) =
            HeaderValue::from_str(&format!("JSESSIONID={token}; Path=/api; HttpOnly; SameSite=Strict{secure}"))
        {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    // A request that carries the cookie without asking to keep the session ends it.
    if let (Some(token), false) = (session, persistent) {
        if let Some(user) = rest.sessions.close(&token) {
            record_session(&rest, &user, false);
        }
    }
    response
}
