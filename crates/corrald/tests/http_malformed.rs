//! Bad input over HTTP gets a clear refusal and changes nothing. A daemon with qubes in several states is
//! crawled from `GET /api` (support::crawl); then every URL it found, and every `<actions>` link, is sent
//! bodies no resource takes (malformed or truncated XML, a DOCTYPE, undefined entities, bytes that are not
//! UTF-8, malformed JSON) with every writing method, in both representations; typed-but-wrong bodies go to
//! the endpoints that read those fields; path tricks go over a raw socket so no client tidies them up; and
//! virthttp gets malformed JSON on every method. Each answer must be a 4xx carrying a fault in the asked
//! format (virthttp: its envelope with `success: false`), never a 5xx or a dropped connection, and
//! afterwards the state database, every qube's power state and libvirt's networks must be as before.
//!
//! Failures are collected and reported all at once, grouped by URL shape.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::Method;
use serde_json::Value;
use support::crawl::{client, crawl, populated, report, Failure, JSON, XML};
use support::state::db_dump;
use support::Daemon;

/// Everything a refused request must leave as it was.
fn state(d: &Daemon) -> String {
    let mut out = db_dump(&d.state.join("corral.sqlite"));
    for line in d.ok("admin.vm.List", "dom0", b"").lines() {
        let vm = line.split(' ').next().unwrap_or_default();
        let s = d.ok("admin.vm.CurrentState", vm, b"");
        let power = s.rsplit("power_state=").next().unwrap_or_default();
        out += &format!("power {vm}: {power}\n");
    }
    let networks = get_json(d, "/libvirt/networks");
    out += &format!("networks: {}\n", networks["results"]);
    out
}

fn get_json(d: &Daemon, path: &str) -> Value {
    client()
        .get(d.url(path))
        .basic_auth("admin@internal", Some("secret"))
        .send()
        .and_then(Response::json)
        .expect("a JSON answer")
}

/// Bodies no RHEV resource, collection or action takes, as XML.
const BAD_XML: [(&str, &[u8]); 13] = [
    ("a root no resource has", b"<banana><async>false</async></banana>"),
    ("truncated", b"<action><async>false</async>"),
    ("an unclosed tag", b"<action"),
    ("crossed elements", b"<action><async>false</action></async>"),
    ("two roots", b"<action/><action/>"),
    ("a DOCTYPE with entities", b"<!DOCTYPE a [<!ENTITY x \"xx\"><!ENTITY y \"&x;&x;\">]><action>&y;</action>"),
    ("an undefined entity", b"<action><name>&nbsp;</name></action>"),
    ("bytes that are not UTF-8", b"<action><name>\xff\xfe</name></action>"),
    ("not UTF-8 in CDATA", b"<action><name><![CDATA[\xc3\x28]]></name></action>"),
    ("a NUL", b"<action><name>a\0b</name></action>"),
    ("text after the root", b"<action/>trailing"),
    ("plain text", b"start it, please"),
    ("JSON sent as XML", b"{\"async\": false}"),
];

/// Bodies that are not JSON, sent as `application/json`.
const BAD_JSON: [(&str, &[u8]); 6] = [
    ("truncated", b"{\"async\": "),
    ("two values", b"{} {}"),
    ("a bare word", b"nul"),
    ("bytes that are not UTF-8", b"{\"name\": \"\xff\"}"),
    ("a trailing comma", b"{\"name\": \"x\",}"),
    ("XML sent as JSON", b"<action/>"),
];

/// One request that did not answer as bad input must be answered.
fn refusal_problem(
    method: &Method,
    accept: &str,
    r: Result<Response, reqwest::Error>,
) -> Option<(u16, String, String)> {
    let r = match r {
        Ok(r) => r,
        Err(e) => return Some((0, format!("{method}: no answer ({e})"), String::new())),
    };
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = r.text().unwrap_or_default();
    let problem = if !(400..500).contains(&status) {
        Some(format!("{method}: status {status}, not a 4xx"))
    } else if !content_type.starts_with(accept) {
        Some(format!("{method}: fault as {content_type:?}"))
    } else if accept == XML
        && !body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<fault>")
    {
        Some(format!("{method}: no <fault> the SDK can parse"))
    } else if accept == JSON && !serde_json::from_str::<Value>(&body).is_ok_and(|v| v["reason"].is_string()) {
        Some(format!("{method}: no JSON fault"))
    } else {
        None
    };
    problem.map(|p| (status, p, body))
}

fn send(
    c: &Client,
    d: &Daemon,
    method: &Method,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> reqwest::Result<Response> {
    c.request(method.clone(), d.url(path))
        .basic_auth("admin@internal", Some("secret"))
        .header("Content-Type", content_type)
        .header("Accept", content_type)
        .header("Expect", "201-created")
        .body(body.to_vec())
        .send()
}

/// Every crawled URL and action link, every writing method, every bad body of both formats.
#[test]
fn malformed_bodies_on_every_url_are_refused_with_a_fault_and_change_nothing() {
    let f = populated();
    let d = &f.d;
    let found = crawl(d, XML, &["/api"], &|_| true);
    assert!(found.failures.is_empty(), "{}", report("the crawl itself", found.fetched.len(), &found.failures));
    let before = state(d);
    let c = client();
    let mut failures = Vec::new();
    let mut sent = 0;

    let targets = found
        .fetched
        .iter()
        .map(|p| (p.clone(), "(crawl)".to_string()))
        .chain(found.actions.iter().cloned())
        .filter(|(p, _)| !p.contains("/openapi.json"));
    for (path, from) in targets {
        let methods = if found.actions.iter().any(|(a, _)| *a == path) {
            vec![Method::POST]
        } else {
            vec![Method::POST, Method::PUT, Method::DELETE]
        };
        for method in &methods {
            let bodies = BAD_XML.iter().map(|(w, b)| (XML, *w, *b)).chain(BAD_JSON.iter().map(|(w, b)| (JSON, *w, *b)));
            for (format, what, body) in bodies {
                sent += 1;
                if let Some((status, problem, answer)) =
                    refusal_problem(method, format, send(&c, d, method, &path, format, body))
                {
                    failures.push(Failure {
                        url: path.clone(),
                        status,
                        problem: format!("{problem} for {what} ({format})"),
                        body: support::crawl::head(&answer),
                        linked_from: from.clone(),
                    });
                }
            }
        }
    }

    assert!(failures.is_empty(), "{}", report("bad bodies", sent, &failures));
    assert_eq!(state(d), before, "a refused request changed the state");
    assert!(sent > 5_000, "only {sent} requests: the crawl found too little");
}

/// Well-formed bodies with values of the wrong type or out of range, to the endpoints that read them.
#[test]
fn wrong_values_are_400_with_a_fault_and_change_nothing() {
    let f = populated();
    let d = &f.d;
    let (work, run, tpl) = (d.uuid("work"), d.uuid("run"), d.uuid("tpl"));
    let vm = format!("/api/vms/{work}");
    let running = format!("/api/vms/{run}");
    let cases: Vec<(Method, String, &str)> = vec![
        (Method::POST, "/api/vms".into(), "<vm><name>new</name><template><name>tpl</name></template><memory>lots</memory></vm>"),
        (Method::POST, "/api/vms".into(), "<vm><name>new</name><template><name>tpl</name></template><memory>-1</memory></vm>"),
        (Method::POST, "/api/vms".into(), "<vm><name>new</name><template><name>tpl</name></template><memory>99999999999999999999999</memory></vm>"),
        (Method::POST, "/api/vms".into(), "<vm><name>new</name><template><name>no-such-template</name></template></vm>"),
        (Method::POST, "/api/vms".into(), "<vm><name>new</name><template id=\"not-a-uuid\"/></vm>"),
        (Method::POST, "/api/vms".into(), "<vm><name>../etc</name><template><name>tpl</name></template></vm>"),
        (Method::POST, "/api/vms".into(), "<vm><name>new</name><template><name>tpl</name></template><cpu><topology cores=\"many\" sockets=\"1\"/></cpu></vm>"),
        (Method::POST, "/api/vms".into(), "<vm><name>new</name><template><name>tpl</name></template><stateless>perhaps</stateless></vm>"),
        (Method::POST, "/api/vms".into(), "<vm><name>new</name><template><name>tpl</name></template><type>mainframe</type></vm>"),
        (Method::PUT, vm.clone(), "<vm><memory>lots</memory></vm>"),
        (Method::PUT, vm.clone(), "<vm><memory>0</memory></vm>"),
        (Method::PUT, vm.clone(), "<vm><cpu><topology cores=\"0\" sockets=\"1\"/></cpu></vm>"),
        (Method::PUT, vm.clone(), "<vm><name>renamed</name></vm>"),
        (Method::PUT, vm.clone(), "<vm><description>ok</description><memory>-5</memory></vm>"),
        (Method::PUT, vm.clone(), "<vm><template id=\"00000000-0000-0000-0000-00000000dead\"/></vm>"),
        (Method::POST, format!("{vm}/start"), "<action><async>maybe</async></action>"),
        (Method::POST, format!("{vm}/start"), "<action><pause>sometimes</pause></action>"),
        (Method::POST, format!("{vm}/start"), "<action><vm><os><kernel>../../etc/passwd</kernel></os></vm></action>"),
        (Method::POST, format!("{running}/ticket"), "<action><ticket><expiry>soon</expiry></ticket></action>"),
        (Method::POST, format!("{vm}/snapshots"), "<snapshot><description>x</description><persist_memorystate>yes</persist_memorystate></snapshot>"),
        (Method::POST, format!("{vm}/tags"), "<tag><name>bad tag!</name></tag>"),
        (Method::POST, format!("{vm}/tags"), "<tag/>"),
        (Method::POST, "/api/tags".into(), "<tag><name></name></tag>"),
        (Method::POST, "/api/tags".into(), "<tag><name>a b</name></tag>"),
        (Method::POST, format!("{vm}/nics"), "<nic><name>eth9</name><network><name>no-such-network</name></network></nic>"),
        (Method::PUT, format!("{vm}/cdroms/00000000-0000-0000-0000-000000000000"), "<cdrom><file id=\"../../etc/shadow\"/></cdrom>"),
        (Method::POST, format!("{vm}/disks"), "<disk><size>huge</size><storage_domains><storage_domain><name>varlibqubes</name></storage_domain></storage_domains></disk>"),
        (Method::POST, format!("{vm}/disks"), "<disk id=\"00000000-0000-0000-0000-00000000dead\"/>"),
        (Method::POST, "/api/disks".into(), "<disk><alias>x</alias><provisioned_size>-1</provisioned_size><storage_domains><storage_domain><name>varlibqubes</name></storage_domain></storage_domains></disk>"),
        (Method::POST, "/api/storagedomains".into(), "<storage_domain><name>s</name><type>data</type><storage><type>localfs</type><path>relative/path</path></storage></storage_domain>"),
        (Method::POST, "/api/storagedomains".into(), "<storage_domain><name>s</name><type>quantum</type><storage><type>localfs</type><path>/tmp/x</path></storage></storage_domain>"),
        (Method::POST, "/api/templates".into(), "<template><name>t2</name><vm id=\"not-a-uuid\"/></template>"),
        (Method::PUT, format!("/api/templates/{tpl}"), "<template><memory>lots</memory></template>"),
        (Method::DELETE, vm.clone(), "<action><force>sure</force></action>"),
        (Method::DELETE, vm.clone(), "<vm/>"),
        (Method::GET, "/api/vms?search=name%3D".into(), ""),
        (Method::GET, "/api/vms?search=sortby".into(), ""),
        (Method::GET, "/api/vms?search=page%20zero".into(), ""),
        (Method::GET, "/api/vms;max=-1".into(), ""),
        (Method::GET, "/api/vms;max=lots".into(), ""),
        (Method::GET, "/api/events;from=yesterday".into(), ""),
        (Method::GET, "/api/vms/00000000-0000-0000-0000-00000000dead".into(), ""),
        (Method::GET, "/api/vms/not-a-uuid/disks".into(), ""),
    ];
    let before = state(d);
    let c = client();
    let mut failures = Vec::new();

    for (method, path, body) in &cases {
        for format in [XML, JSON] {
            // JSON bodies are XML's tree with element names as keys; the XML cases are sent as XML.
            let content_type = if body.is_empty() { format } else { XML };
            let r = c
                .request(method.clone(), d.url(path))
                .basic_auth("admin@internal", Some("secret"))
                .header("Content-Type", content_type)
                .header("Accept", format)
                .header("Expect", "201-created")
                .body(body.to_string())
                .send();
            if let Some((status, problem, answer)) = refusal_problem(method, format, r) {
                failures.push(Failure {
                    url: path.clone(),
                    status,
                    problem: format!("{problem} ({format})"),
                    body: format!("sent {body} → {}", support::crawl::head(&answer)),
                    linked_from: "-".into(),
                });
            }
        }
    }

    assert!(failures.is_empty(), "{}", report("wrong values", cases.len() * 2, &failures));
    assert_eq!(state(d), before, "a refused request changed the state");
}

/// The raw answer to a request line sent as written, over its own connection.
fn raw(d: &Daemon, method: &str, target: &str) -> String {
    let addr = d.http();
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    // admin@internal:secret
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW5AaW50ZXJuYWw6c2VjcmV0\r\n\
         Accept: application/xml\r\nContent-Length: 9\r\nConnection: close\r\n\r\n<action/>"
    );
    s.write_all(request.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn path_tricks_reach_nothing_and_change_nothing() {
    let f = populated();
    let d = &f.d;
    let work = d.uuid("work");
    let long = "a".repeat(8_000);
    let tricks = [
        format!("/api/vms/{work}/../../hosts"),
        format!("/api/vms/{work}/%2e%2e/%2e%2e/hosts"),
        format!("/api/vms/{work}%2f..%2f..%2fhosts"),
        "/api/vms/..".to_string(),
        "/api/vms/%00".to_string(),
        format!("/api/vms/{work}%00"),
        format!("/api/vms/{long}"),
        format!("/api/vms/{work}/disks/{long}"),
        "/api/vms/%ff%fe".to_string(),
        "/api/./vms/x".to_string(),
        "/api/vms/\u{e9}".to_string(),
        format!("/api/vms/{work}/start/extra"),
        "/api/storagedomains/x/files/..%2f..%2f..%2fetc%2fpasswd".to_string(),
    ];
    let before = state(d);
    let mut failures = Vec::new();

    for target in &tricks {
        for method in ["GET", "POST", "PUT", "DELETE"] {
            let answer = raw(d, method, target);
            let status: u16 = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            let fault =
                answer.contains("\r\n\r\n<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<fault>");
            // hyper itself refuses some targets (400 with no body) before the application sees them.
            let hyper_refusal = status == 400 && !answer.contains("<");
            if !(400..500).contains(&status) || !(fault || hyper_refusal) {
                failures.push(Failure {
                    url: target.chars().take(120).collect(),
                    status,
                    problem: format!(
                        "{method}: {}",
                        if (400..500).contains(&status) { "no fault" } else { "not a 4xx" }
                    ),
                    body: support::crawl::head(&answer),
                    linked_from: "-".into(),
                });
            }
        }
    }

    assert!(failures.is_empty(), "{}", report("path tricks", tricks.len() * 4, &failures));
    assert_eq!(state(d), before, "a path trick changed the state");
}

#[test]
fn virthttp_refuses_malformed_json_on_every_method_and_changes_nothing() {
    let f = populated();
    let d = &f.d;
    let targets = [
        "/libvirt/domains".to_string(),
        "/libvirt/domains/by-name/work".to_string(),
        "/libvirt/domains/by-name/run".to_string(),
        format!("/libvirt/domains/by-uuid/{}", d.uuid("frozen")),
        "/libvirt/networks".to_string(),
        "/libvirt/networks/by-name/default".to_string(),
    ];
    let before = state(d);
    let c = client();
    let mut failures = Vec::new();
    let mut sent = 0;

    for target in &targets {
        for method in [Method::POST, Method::PATCH, Method::DELETE] {
            for (what, body) in BAD_JSON {
                sent += 1;
                let path = if target.contains("by-") { target.clone() } else { format!("{target}?bulk=true") };
                let r = c
                    .request(method.clone(), d.url(&path))
                    .header("X-Auth-Username", "admin")
                    .header("X-Auth-Key", "secret")
                    .body(body.to_vec())
                    .send();
                let problem = match r {
                    Err(e) => Some((0, format!("no answer ({e})"), String::new())),
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let text = r.text().unwrap_or_default();
                        let envelope: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        let refused = envelope["success"] == false && envelope["errors"][0]["code"].is_i64();
                        (status != 200 || !refused).then(|| (status, "not a refusing envelope".to_string(), text))
                    }
                };
                if let Some((status, problem, answer)) = problem {
                    failures.push(Failure {
                        url: path,
                        status,
                        problem: format!("{method}: {problem} for {what}"),
                        body: support::crawl::head(&answer),
                        linked_from: "-".into(),
                    });
                }
            }
        }
    }

    assert!(failures.is_empty(), "{}", report("virthttp bad JSON", sent, &failures));
    assert_eq!(state(d), before, "a refused request changed the state");
}

/// An element with `n` attributes: quick-xml checks each new attribute against those before it, so the
/// work grows with the square of their number.
fn attribute_bomb(n: usize) -> String {
    let attrs: String = (0..n).map(|i| format!(" a{i}=\"\"")).collect();
    format!("<vm{attrs}><name>bomb</name></vm>")
}

#[test]
fn an_element_with_too_many_attributes_is_400_and_changes_nothing() {
    let d = Daemon::start().with_user();
    let before = state(&d);

    let r = client()
        .post(d.url("/api/vms"))
        .basic_auth("admin@internal", Some("secret"))
        .header("Content-Type", "application/xml")
        .body(attribute_bomb(60_000))
        .send()
        .expect("an answer");

    assert_eq!(r.status(), 400);
    let body = r.text().unwrap_or_default();
    assert!(body.contains("<fault>") && body.contains("attributes"), "{body}");
    assert_eq!(state(&d), before);
}

#[test]
fn many_elements_are_400() {
    let d = Daemon::start().with_user();
    let tags: String = (0..20_000).map(|_| "<tag/>").collect();

    let r = client()
        .post(d.url("/api/vms"))
        .basic_auth("admin@internal", Some("secret"))
        .header("Content-Type", "application/xml")
        .body(format!("<vm><name>many</name><tags>{tags}</tags></vm>"))
        .send()
        .expect("an answer");

    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap_or_default().contains("elements"));
}

#[test]
fn attribute_bombs_leave_the_admin_api_responsive() {
    let d = Daemon::start().with_user();
    let url = d.url("/api/vms");
    // Bodies just under the per-element limit cost the most a parse may: several of them at once.
    let bombs: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let r = client()
                    .post(url)
                    .basic_auth("admin@internal", Some("secret"))
                    .header("Content-Type", "application/xml")
                    .body(attribute_bomb(60_000))
                    .send();
                r.map(|r| r.status().as_u16()).unwrap_or(0)
            })
        })
        .collect();

    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = std::time::Instant::now();
        d.ok("admin.vm.List", "dom0", b"");
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }

    for b in bombs {
        assert_eq!(b.join().expect("bomb"), 400);
    }
    // A functional bound, far above a normal answer's milliseconds: before the limits one call waited 4-6 s.
    assert!(slowest < Duration::from_secs(1), "admin.vm.List waited {slowest:?}");
}
