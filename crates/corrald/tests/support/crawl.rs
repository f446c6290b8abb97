//! A breadth-first crawler of the RHEV API's hrefs, the checkers of the bodies it reads (XML through
//! roxmltree, not the daemon's own writer, so the daemon is not checked against itself), and a report of
//! what failed grouped by the shape of the URL.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::redirect::Policy;
use serde_json::Value;

use super::volumes::install_kernel;
use super::Daemon;

/// The crawl stops after this many URLs (and says so as a failure: a few qubes link far fewer).
pub const MAX_URLS: usize = 2000;

pub const XML: &str = "application/xml";
pub const JSON: &str = "application/json";

/// Paths the crawl must reach, so that a crawl stopped early cannot pass.
pub struct Fixture {
    pub d: Daemon,
    pub must_reach: Vec<String>,
}

/// TemplateVM `tpl`, AppVM `work` (halted, tagged `finance`, one snapshot), the network provider `sys-net`
/// (StandaloneVM, halted), AppVM `run` running and AppVM `frozen` paused on the test driver, and a kernel.
pub fn populated() -> Fixture {
    let d = Daemon::start().with_user().with_appvm().with_default_netvm("sys-net");
    install_kernel(&d, "6.1.0");
    d.ok("admin.vm.tag.Set+finance", "work", b"");
    let snapshot = take_snapshot(&d, "work");
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=run label=green");
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=frozen label=blue");
    let d = d.with_running("run").with_paused("frozen");

    let mut must_reach = vec!["/api".to_string(), "/api/tags".to_string(), snapshot];
    for vm in ["tpl", "work", "sys-net", "run", "frozen"] {
        must_reach.push(format!("/api/vms/{}", d.uuid(vm)));
    }
    let (tpl, work) = (d.uuid("tpl"), d.uuid("work"));
    must_reach.push(format!("/api/templates/{tpl}"));
    for sub in ["snapshots", "tags", "disks", "nics"] {
        must_reach.push(format!("/api/vms/{work}/{sub}"));
    }
    Fixture { d, must_reach }
}

/// Takes a snapshot of `vm` over HTTP; returns its path (the `Location` of the 201).
pub fn take_snapshot(d: &Daemon, vm: &str) -> String {
    let r = client()
        .post(d.url(&format!("/api/vms/{}/snapshots", d.uuid(vm))))
        .basic_auth("admin@internal", Some("secret"))
        .header("Content-Type", XML)
        .header("Accept", XML)
        .header("Expect", "201-created")
        .body("<snapshot><description>crawled</description></snapshot>")
        .send()
        .expect("POST snapshot");
    assert_eq!(r.status(), 201, "snapshot of {vm}");
    r.headers()["location"].to_str().expect("location").to_string()
}

/// No redirects followed (a 301 is checked, then its target crawled), and no request hangs the test.
pub fn client() -> Client {
    Client::builder().redirect(Policy::none()).timeout(Duration::from_secs(60)).build().expect("client")
}

/// One URL that did not answer as it should.
pub struct Failure {
    /// The path (or the href as given, when it is not a path on this server).
    pub url: String,
    /// The HTTP status, or 0 when there was none.
    pub status: u16,
    pub problem: String,
    /// The first 200 characters of the body, whitespace runs as one space.
    pub body: String,
    /// The page whose body held the href.
    pub linked_from: String,
}

/// What a crawl found.
#[derive(Default)]
pub struct Crawl {
    /// Every path requested, in order.
    pub fetched: Vec<String>,
    /// `<actions>` hrefs seen, each once, with the page that held it first.
    pub actions: Vec<(String, String)>,
    pub failures: Vec<Failure>,
    /// The path and body of every 200 answer.
    pub pages: Vec<(String, String)>,
}

/// The hrefs of one body: the ones to follow, and the `<actions>` ones.
#[derive(Debug, Default, PartialEq)]
pub struct Links {
    pub hrefs: Vec<String>,
    pub actions: Vec<String>,
}

/// Crawls breadth-first from `starts` with `Accept: accept`, following the hrefs whose path `follow` takes.
pub fn crawl(d: &Daemon, accept: &str, starts: &[&str], follow: &dyn Fn(&str) -> bool) -> Crawl {
    let client = client();
    let origin = d.url("");
    let mut out = Crawl::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut seen_actions: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<(String, String)> = VecDeque::new();
    for start in starts {
        seen.insert(start.to_string());
        queue.push_back((start.to_string(), "(start)".to_string()));
    }
    while let Some((path, from)) = queue.pop_front() {
        if out.fetched.len() == MAX_URLS {
            out.failures.push(Failure {
                url: path,
                status: 0,
                problem: format!("crawl stopped at {MAX_URLS} URLs, {} more queued", queue.len() + 1),
                body: String::new(),
                linked_from: from,
            });
            break;
        }
        out.fetched.push(path.clone());
        let fail = |status: u16, problem: String, body: &str| Failure {
            url: path.clone(),
            status,
            problem,
            body: head(body),
            linked_from: from.clone(),
        };
        let response = client
            .get(format!("{origin}{path}"))
            .basic_auth("admin@internal", Some("secret"))
            .header("Accept", accept)
            .send();
        let r = match response {
            Ok(r) => r,
            Err(e) => {
                out.failures.push(fail(0, format!("request failed: {e}"), ""));
                continue;
            }
        };
        let status = r.status().as_u16();
        let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (content_type, location) = (header("content-type").unwrap_or_default(), header("location"));
        let body = r.text().unwrap_or_else(|e| format!("(body not read: {e})"));
        let links = match (status, location) {
            (200, _) if !content_type.starts_with(accept) => Err(format!("Content-Type {content_type:?}")),
            (200, _) if accept == XML => xml_links(&body).map_err(|e| format!("malformed XML: {e}")),
            (200, _) => json_links(&body).map_err(|e| format!("malformed JSON: {e}")),
            (301, Some(to)) => Ok(Links { hrefs: vec![to], actions: Vec::new() }),
            (301, None) => Err("301 without Location".to_string()),
            _ => Err(format!("status {status}")),
        };
        let links = match links {
            Ok(links) => links,
            Err(problem) => {
                out.failures.push(fail(status, problem, &body));
                continue;
            }
        };
        if status == 200 {
            out.pages.push((path.clone(), body));
        }
        for href in links.hrefs.into_iter().filter(|h| !h.contains('{')) {
            match local_path(&origin, &href) {
                Ok(p) if follow(&p) && seen.insert(p.clone()) => queue.push_back((p, path.clone())),
                Ok(_) => {}
                Err(problem) => out.failures.push(Failure {
                    url: href,
                    status: 0,
                    problem,
                    body: String::new(),
                    linked_from: path.clone(),
                }),
            }
        }
        for href in links.actions {
            match local_path(&origin, &href) {
                Ok(p) if seen_actions.insert(p.clone()) => out.actions.push((p, path.clone())),
                Ok(_) => {}
                Err(problem) => out.failures.push(Failure {
                    url: href,
                    status: 0,
                    problem: format!("action {problem}"),
                    body: String::new(),
                    linked_from: path.clone(),
                }),
            }
        }
    }
    out
}

/// An href as a path on this server: hrefs are absolute paths (spec A4); a full URL to this server is
/// taken too.
pub fn local_path(origin: &str, href: &str) -> Result<String, String> {
    if href.starts_with('/') && !href.starts_with("//") {
        return Ok(href.to_string());
    }
    match href.strip_prefix(origin) {
        Some(p) if p.starts_with('/') => Ok(p.to_string()),
        _ => Err("href is not an absolute path on this server".to_string()),
    }
}

/// The first 200 characters of `body`, whitespace runs as one space.
pub fn head(body: &str) -> String {
    body.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect()
}

/// `/api/vms/<uuid>/nics/<uuid>` → `/api/vms/{id}/nics/{id}`: the kind of URL, to group failures by.
pub fn shape(url: &str) -> String {
    let (path, rest) = url.find(['?', ';']).map_or((url, ""), |i| url.split_at(i));
    let segments: Vec<&str> = path
        .split('/')
        .map(|s| {
            let uuid = s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
            let number = !s.is_empty() && s.trim_start_matches('-').chars().all(|c| c.is_ascii_digit());
            if uuid || number {
                "{id}"
            } else {
                s
            }
        })
        .collect();
    format!("{}{rest}", segments.join("/"))
}

/// Every failure, grouped by (status, problem, URL shape), each group listing all its URLs.
pub fn report(title: &str, total: usize, failures: &[Failure]) -> String {
    let mut groups: BTreeMap<(u16, String, String), Vec<&Failure>> = BTreeMap::new();
    for f in failures {
        groups.entry((f.status, f.problem.clone(), shape(&f.url))).or_default().push(f);
    }
    let mut out = format!("{title}: {} of {total} URLs fail, in {} groups\n", failures.len(), groups.len());
    for ((status, problem, shape), members) in &groups {
        out.push_str(&format!("\n== {status} {shape} ({problem}): {} URLs\n", members.len()));
        for f in members {
            out.push_str(&format!("   {}\n      linked from {}\n", f.url, f.linked_from));
            if f.status != 0 {
                let body = if f.body.is_empty() { "(empty)" } else { &f.body };
                out.push_str(&format!("      body: {body}\n"));
            }
        }
    }
    out
}

/// The crawl's own failures plus every `must_reach` path it never requested.
pub fn failures_with_coverage(crawl: Crawl, must_reach: &[String]) -> (usize, Vec<Failure>) {
    let fetched: HashSet<&String> = crawl.fetched.iter().collect();
    let missing: Vec<Failure> = must_reach
        .iter()
        .filter(|p| !fetched.contains(p))
        .map(|p| Failure {
            url: p.clone(),
            status: 0,
            problem: "never linked: the crawl did not reach it".to_string(),
            body: String::new(),
            linked_from: "-".to_string(),
        })
        .collect();
    let total = crawl.fetched.len();
    let mut failures = crawl.failures;
    failures.extend(missing);
    (total, failures)
}

// ---------------------------------------------------------------------------------------------------------
// XML: roxmltree checks well-formedness strictly (characters, entities, attributes), and is not the daemon's
// own parser, so the daemon is not checked against itself.

/// The hrefs of a well-formed XML document: `href` attributes anywhere, those inside an `<actions>`
/// element apart.
pub fn xml_links(doc: &str) -> Result<Links, String> {
    let doc = roxmltree::Document::parse(doc).map_err(|e| e.to_string())?;
    let mut links = Links::default();
    for node in doc.descendants().filter(|n| n.is_element()) {
        let Some(href) = node.attribute("href") else { continue };
        let in_actions = node.ancestors().any(|a| a.has_tag_name("actions"));
        if in_actions {
            links.actions.push(href.to_string());
        } else {
            links.hrefs.push(href.to_string());
        }
    }
    Ok(links)
}

/// The hrefs of a JSON body: every string under an `href` key, those inside an `actions` object apart.
pub fn json_links(body: &str) -> Result<Links, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let mut links = Links::default();
    let mut bad = Vec::new();
    collect_json(&value, false, "", &mut links, &mut bad);
    match bad.first() {
        Some(key_path) => Err(format!("href at {key_path} is not a string")),
        None => Ok(links),
    }
}

pub fn collect_json(v: &Value, in_actions: bool, at: &str, links: &mut Links, bad: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (key, child) in map {
                let here = format!("{at}/{key}");
                if key == "href" {
                    match child {
                        Value::String(s) if in_actions => links.actions.push(s.clone()),
                        Value::String(s) => links.hrefs.push(s.clone()),
                        _ => bad.push(here.clone()),
                    }
                }
                collect_json(child, in_actions || key == "actions", &here, links, bad);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_json(item, in_actions, &format!("{at}/{i}"), links, bad);
            }
        }
        _ => {}
    }
}
