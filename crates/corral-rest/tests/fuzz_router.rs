//! No route panics, whatever arrives: seeded random requests built from the OpenAPI document's paths (with
//! ids, junk, matrix and query parameters), random headers and random bodies (grammar-made XML and JSON with
//! the API's element names, and raw bytes) go through the whole application in-process. A handler panic
//! fails the test; every `/api` error must carry a fault in the asked format.
//!
//! `CORRAL_FUZZ_ROUNDS` (default 6,000) and `CORRAL_FUZZ_SEED` (default: a fixed one) pick the run; a
//! failure prints the seed and the request.

mod support;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{document, operations, Door};

const METHODS: [Method; 7] =
    [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::HEAD, Method::OPTIONS];

/// Element and attribute names the API reads, so that random bodies reach past the root check.
const NAMES: [&str; 40] = [
    "vm",
    "action",
    "name",
    "description",
    "template",
    "cluster",
    "memory",
    "cpu",
    "topology",
    "cores",
    "sockets",
    "os",
    "kernel",
    "cmdline",
    "boot",
    "dev",
    "cdroms",
    "cdrom",
    "file",
    "id",
    "async",
    "force",
    "pause",
    "ticket",
    "expiry",
    "value",
    "disk",
    "size",
    "provisioned_size",
    "storage_domains",
    "storage_domain",
    "type",
    "path",
    "storage",
    "tag",
    "snapshot",
    "nic",
    "network",
    "detach",
    "grace_period",
];

/// Values that are near what the API takes, and far from it.
const VALUES: [&str; 16] = [
    "",
    "true",
    "false",
    "TRUE",
    "0",
    "-1",
    "1",
    "18446744073709551616",
    "400",
    "work",
    "Blank",
    "Default",
    "00000000-0000-0000-0000-000000000000",
    "../../etc/passwd",
    "a\u{0}b",
    "\u{1F600}",
];

struct Gen {
    rng: StdRng,
    /// Ids that exist: the qubes', and the fixed ones.
    ids: Vec<String>,
}

impl Gen {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.gen_range(0..items.len())]
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.gen_range(0..100) < percent
    }

    fn junk(&mut self, max: usize) -> String {
        let len = self.rng.gen_range(0..max);
        (0..len).map(|_| char::from(self.rng.gen_range(0x20u8..0x7f))).collect()
    }

    /// Any bytes, percent-encoded where a URI cannot carry them.
    fn segment(&mut self) -> String {
        match self.rng.gen_range(0..8) {
            0 => (*self.pick(&VALUES)).to_string(),
            1 => "..".into(),
            2 => "x".repeat(self.rng.gen_range(1..3000)),
            3 => (0..self.rng.gen_range(1..12)).map(|_| format!("%{:02X}", self.rng.gen::<u8>())).collect(),
            4 | 5 => self.pick(&self.ids.clone()).clone(),
            _ => self.junk(12),
        }
    }

    fn path(&mut self, templates: &[String]) -> String {
        let template = self.pick(templates).clone();
        let mut path: String = template
            .split('/')
            .map(|s| if s.starts_with('{') && s.ends_with('}') { self.segment() } else { s.to_string() })
            .collect::<Vec<_>>()
            .join("/");
        if self.chance(20) {
            path = path.replace("/api", "/ovirt-engine/api");
        }
        if self.chance(30) {
            let param = *self.pick(&["max", "async", "case_sensitive", "case-sensitive", "current", "from", "force"]);
            let value = (*self.pick(&VALUES)).to_string();
            path.push_str(&format!(";{param}={value}"));
        }
        if self.chance(30) {
            let key = *self.pick(&["search", "from", "async", "max", "options", "mac", "persistent", "bulk", "state"]);
            let value = self.junk(40);
            let encoded: String = value.bytes().map(|b| format!("%{b:02X}")).collect();
            path.push_str(&format!("?{key}={encoded}"));
        }
        path
    }

    fn headers(&mut self) -> HeaderMap {
        let mut h = HeaderMap::new();
        // Mostly admin:secret, sometimes garbage.
        let auth = if self.chance(90) { "Basic YWRtaW46c2VjcmV0" } else { *self.pick(&["Basic !!!", "Bearer x"]) };
        h.insert("authorization", HeaderValue::from_static(auth));
        let accept = *self.pick(&[
            "application/xml",
            "application/json",
            "application/xml; detail=statistics+nics+disks",
            "*/*",
            "text/plain",
        ]);
        h.insert("accept", HeaderValue::from_static(accept));
        let content = *self.pick(&["application/xml", "application/json", "text/plain", "application/x-www-form"]);
        h.insert("content-type", HeaderValue::from_static(content));
        for (name, values) in [
            ("expect", &["201-created", "202-accepted", "100-continue"][..]),
            ("prefer", &["persistent-auth"][..]),
            ("session-ttl", &["0", "1", "-5", "99999999999999999999"][..]),
            ("x-packet-id", &["1", "abc"][..]),
            ("accept-encoding", &["gzip", "deflate;q=0", "br"][..]),
        ] {
            if self.chance(15) {
                let v = *self.pick(values);
                h.insert(HeaderName::from_static(name), HeaderValue::from_static(v));
            }
        }
        h
    }

    fn xml(&mut self, depth: usize) -> String {
        let name = *self.pick(&NAMES);
        let mut out = format!("<{name}");
        if self.chance(40) {
            let attr = *self.pick(&["id", "dev", "cores", "sockets", "href"]);
            let value = (*self.pick(&VALUES)).replace('"', "");
            out.push_str(&format!(" {attr}=\"{value}\""));
        }
        if depth > 4 || self.chance(25) {
            out.push_str("/>");
            return out;
        }
        out.push('>');
        for _ in 0..self.rng.gen_range(0..4) {
            if self.chance(50) {
                let child = self.xml(depth + 1);
                out.push_str(&child);
            } else {
                out.push_str(&self.pick(&VALUES).replace('<', "&lt;"));
            }
        }
        out.push_str(&format!("</{name}>"));
        out
    }

    fn json(&mut self, depth: usize) -> serde_json::Value {
        use serde_json::Value;
        match self.rng.gen_range(0..6) {
            _ if depth > 4 => Value::String((*self.pick(&VALUES)).to_string()),
            0 | 1 => {
                let mut map = serde_json::Map::new();
                for _ in 0..self.rng.gen_range(0..4) {
                    map.insert((*self.pick(&NAMES)).to_string(), self.json(depth + 1));
                }
                Value::Object(map)
            }
            2 => Value::Array((0..self.rng.gen_range(0..3)).map(|_| self.json(depth + 1)).collect()),
            3 => Value::from(self.rng.gen::<i64>()),
            4 => Value::Bool(self.rng.gen()),
            _ => Value::String((*self.pick(&VALUES)).to_string()),
        }
    }

    fn body(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..6) {
            0 => Vec::new(),
            1 => b"<action/>".to_vec(),
            2 => self.xml(0).into_bytes(),
            3 => self.json(0).to_string().into_bytes(),
            4 => {
                // A well-formed body cut anywhere.
                let whole = self.xml(0).into_bytes();
                let cut = self.rng.gen_range(0..=whole.len());
                whole[..cut].to_vec()
            }
            _ => (0..self.rng.gen_range(0..200)).map(|_| self.rng.gen()).collect(),
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test]
async fn random_requests_never_panic_and_api_errors_carry_faults() {
    let seed = env_u64("CORRAL_FUZZ_SEED", 0x5eed_c0de);
    let rounds = env_u64("CORRAL_FUZZ_ROUNDS", 6_000);
    let door = Door::open();
    let tpl = door.create(corral_core::Class::TemplateVM, "tpl", None);
    let work = door.create(corral_core::Class::AppVM, "work", Some("tpl"));
    let doc = document();
    let mut templates: Vec<String> = operations(&doc).into_iter().map(|(p, _, _)| p).collect();
    templates.extend(["/", "/libvirt", "/libvirt/domains/by-name/{n}", "/api/nonexistent/{x}"].map(String::from));
    let ids = [tpl, work, "00000000-0000-0000-0000-000000000000".into(), "-1".into(), uuid::Uuid::new_v4().to_string()];
    let mut g = Gen { rng: StdRng::seed_from_u64(seed), ids: ids.to_vec() };
    let mut seen_statuses = std::collections::BTreeMap::new();

    for round in 0..rounds {
        let method = g.pick(&METHODS).clone();
        let path = g.path(&templates);
        if path.parse::<Uri>().is_err() {
            continue;
        }
        let headers = g.headers();
        let body = g.body();
        let accept_json = headers.get("accept").is_some_and(|a| a == "application/json");
        let what = format!(
            "seed {seed:#x} round {round}: {method} {path} {headers:?} body {:?}",
            String::from_utf8_lossy(&body)
        );

        let answer = door.send_raw(&method, &path, &headers, body).await;

        *seen_statuses.entry(answer.status.as_u16()).or_insert(0u32) += 1;
        let api = path.starts_with("/api") || path.starts_with("/ovirt-engine/api");
        let unauthorized_json = answer.status == 401 && accept_json;
        if api && answer.status.as_u16() >= 400 && method != Method::HEAD && !unauthorized_json {
            let text = String::from_utf8_lossy(&answer.body);
            let fault = if accept_json {
                serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v["reason"].is_string())
            } else {
                text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<fault>")
            };
            assert!(fault, "{what}\n→ {} without a fault: {text}", answer.status);
        }
    }
    eprintln!("statuses seen: {seen_statuses:?}");
    assert!(seen_statuses.keys().any(|s| *s < 300), "nothing succeeded: the generator misses the API");
    assert!(seen_statuses.contains_key(&400), "no 400: the bodies never reach the parsers");
}
