//! What every RHEV handler needs to know about its request: the representation asked for, matrix and
//! query parameters, and the headers that change behaviour (`Expect`, `Correlation-Id`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::repr::Node;
use crate::Matrix;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
}

impl Format {
    pub fn from_headers(headers: &HeaderMap) -> Format {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if accept.contains("application/json") && !accept.contains("application/xml") {
            Format::Json
        } else {
            Format::Xml
        }
    }
}

#[derive(Debug, Clone)]
pub struct Ctx {
    pub format: Format,
    pub matrix: Matrix,
    pub query: Vec<(String, String)>,
    pub expect_created: bool,
    /// `/api` or `/ovirt-engine/api`: hrefs point back where the client came in.
    pub base: String,
    pub content_json: bool,
    /// Sub-collections asked for inline by `Accept: …; detail=a+b` (or `detail=a; detail=b`), lowercased.
    pub details: Vec<String>,
}

impl Ctx {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A matrix parameter, or the same name as a query parameter (both spellings are in use).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.matrix.get(key).or_else(|| self.query(key))
    }

    /// Whether `Accept` asked for the sub-collection `what` inline.
    pub fn detail(&self, what: &str) -> bool {
        self.details.iter().any(|d| d.eq_ignore_ascii_case(what))
    }

    pub fn href(&self, rest: &str) -> String {
        self.href_of(&[rest])
    }

    /// The href of the path made of `parts` joined as they are (no separators added).
    pub fn href_of(&self, parts: &[&str]) -> String {
        let mut out = String::with_capacity(self.base.len() + parts.iter().map(|p| p.len()).sum::<usize>());
        out.push_str(&self.base);
        parts.iter().for_each(|p| out.push_str(p));
        out
    }

    /// The body of `node` in this request's format.
    pub fn encode(&self, node: &Node) -> Vec<u8> {
        match self.format {
            Format::Xml => node.to_xml(),
            Format::Json => node.json_bytes(),
        }
    }

    /// The collection `name` of `item` elements, encoded item by item (see [`Node::collection_xml`]);
    /// `capacity` is a guess of the encoded size.
    pub fn encode_collection(
        &self,
        name: &str,
        item: &str,
        items: impl Iterator<Item = Node>,
        capacity: usize,
    ) -> Vec<u8> {
        match self.format {
            Format::Xml => Node::collection_xml(name, items, capacity),
            Format::Json => Node::collection_json(item, items, capacity),
        }
    }

    pub fn render(&self, status: StatusCode, node: &Node) -> Response {
        self.render_bytes(status, self.encode(node))
    }

    /// An already encoded body (see [`Ctx::encode`]).
    pub fn render_bytes(&self, status: StatusCode, body: Vec<u8>) -> Response {
        let ct = match self.format {
            Format::Xml => "application/xml",
            Format::Json => "application/json",
        };
        let mut r = (status, body).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        r
    }

    pub fn ok(&self, node: &Node) -> Response {
        self.render(StatusCode::OK, node)
    }

    /// A request body in the format its Content-Type says, as the element `root`.
    pub fn body(&self, bytes: &[u8], root: &str) -> Result<Node, crate::fault::ApiError> {
        let parse = || if self.content_json { Node::parse_json(bytes, root) } else { Node::parse_xml(bytes) };
        // Parsing is linear within the limits, but a body near MAX_BODY still takes a while: on the
        // multi-threaded runtime it leaves this worker so the tasks queued behind it (other connections,
        // the Admin API on the same runtime) move to another one meanwhile.
        let off_executor = bytes.len() > LARGE_BODY
            && tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let parsed = if off_executor { tokio::task::block_in_place(parse) } else { parse() };
        let node = parsed.map_err(|e| crate::fault::ApiError::bad_request(e.0))?;
        if node.name != root {
            return Err(crate::fault::ApiError::bad_request(format!(
                "Expected a <{root}> element, got <{}>",
                node.name
            )));
        }
        Ok(node)
    }
}

/// Bodies above this size are parsed off the async worker (see `Ctx::body`).
const LARGE_BODY: usize = 64 * 1024;

/// The `detail` parameters of an `Accept` header: `+`-joined, repeated, or both; case-insensitive.
fn parse_details(headers: &HeaderMap) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for accept in headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()) {
        for param in accept.split([',', ';']) {
            let Some((k, v)) = param.split_once('=') else { continue };
            if !k.trim().eq_ignore_ascii_case("detail") {
                continue;
            }
            for token in v.trim().trim_matches('"').split(['+', ' ']) {
                let token = token.trim().to_ascii_lowercase();
                if !token.is_empty() && !out.contains(&token) {
                    out.push(token);
                }
            }
        }
    }
    out
}

fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding of one component (`+` is a space).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let expect = |name: &str| {
            parts.headers.get(name).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("201-created"))
        };
        let content_json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
        // Under `nest` the path has lost its prefix; the original URI still has it.
        let original = parts.extensions.get::<axum::extract::OriginalUri>().map_or(parts.uri.path(), |u| u.0.path());
        let base = if original.starts_with("/ovirt-engine/") { "/ovirt-engine/api" } else { "/api" };
        Ok(Ctx {
            format: Format::from_headers(&parts.headers),
            matrix: parts.extensions.get::<Matrix>().cloned().unwrap_or_default(),
            query: parse_query(parts.uri.query()),
            expect_created: expect("expect") || expect("x-ovirt-expect"),
            base: base.to_string(),
            content_json,
            details: parse_details(&parts.headers),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("name%3Dvm1"), "name=vm1");
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn detail_parameters() {
        let details = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            parse_details(&h)
        };
        assert_eq!(details("application/xml; detail=statistics+NICS+disks"), ["statistics", "nics", "disks"]);
        assert_eq!(details("application/xml; detail=statistics; Detail=nics"), ["statistics", "nics"]);
        assert!(details("application/xml").is_empty());
    }
}
