//! Every href the RHEV API hands out leads somewhere (spec A4): a daemon with qubes in several states is
//! crawled breadth-first from `GET /api`, in XML and in JSON, following every `href` (resources, references,
//! `<link rel>` sub-collections) but search templates (`{query}`) and `<actions>` links; each URL must answer
//! 200 with a well-formed body of the asked format (or 301 to where it moved). The `<actions>` links of a
//! throwaway halted AppVM and of the host must answer a POST with something other than 404 or 405.
//!
//! Each test collects every failure and reports them all at once, grouped by the shape of the URL.

mod support;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::redirect::Policy;
use serde_json::Value;
use support::volumes::install_kernel;
use support::Daemon;

/// The crawl stops after this many URLs (and says so as a failure: a few qubes link far fewer).
const MAX_URLS: usize = 2000;

const XML: &str = "application/xml";
const JSON: &str = "application/json";

// ---------------------------------------------------------------------------------------------------------
// Fixtures

/// Paths the crawl must reach, so that a crawl stopped early cannot pass.
struct Fixture {
    d: Daemon,
    must_reach: Vec<String>,
}

/// TemplateVM `tpl`, AppVM `work` (halted, tagged `finance`, one snapshot), the network provider `sys-net`
/// (StandaloneVM, halted), AppVM `run` running and AppVM `frozen` paused on the test driver, and a kernel.
fn populated() -> Fixture {
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
fn take_snapshot(d: &Daemon, vm: &str) -> String {
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
fn client() -> Client {
    Client::builder().redirect(Policy::none()).timeout(Duration::from_secs(60)).build().expect("client")
}

// ---------------------------------------------------------------------------------------------------------
// The crawler

/// One URL that did not answer as it should.
struct Failure {
    /// The path (or the href as given, when it is not a path on this server).
    url: String,
    /// The HTTP status, or 0 when there was none.
    status: u16,
    problem: String,
    /// The first 200 characters of the body, whitespace runs as one space.
    body: String,
    /// The page whose body held the href.
    linked_from: String,
}

/// What a crawl found.
#[derive(Default)]
struct Crawl {
    /// Every path requested, in order.
    fetched: Vec<String>,
    /// `<actions>` hrefs seen, each once, with the page that held it first.
    actions: Vec<(String, String)>,
    failures: Vec<Failure>,
}

/// The hrefs of one body: the ones to follow, and the `<actions>` ones.
#[derive(Debug, Default, PartialEq)]
struct Links {
    hrefs: Vec<String>,
    actions: Vec<String>,
}

/// Crawls breadth-first from `starts` with `Accept: accept`, following the hrefs whose path `follow` takes.
fn crawl(d: &Daemon, accept: &str, starts: &[&str], follow: &dyn Fn(&str) -> bool) -> Crawl {
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
fn local_path(origin: &str, href: &str) -> Result<String, String> {
    if href.starts_with('/') && !href.starts_with("//") {
        return Ok(href.to_string());
    }
    match href.strip_prefix(origin) {
        Some(p) if p.starts_with('/') => Ok(p.to_string()),
        _ => Err("href is not an absolute path on this server".to_string()),
    }
}

/// The first 200 characters of `body`, whitespace runs as one space.
fn head(body: &str) -> String {
    body.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect()
}

/// `/api/vms/<uuid>/nics/<uuid>` → `/api/vms/{id}/nics/{id}`: the kind of URL, to group failures by.
fn shape(url: &str) -> String {
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
fn report(title: &str, total: usize, failures: &[Failure]) -> String {
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
fn failures_with_coverage(crawl: Crawl, must_reach: &[String]) -> (usize, Vec<Failure>) {
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
fn xml_links(doc: &str) -> Result<Links, String> {
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
fn json_links(body: &str) -> Result<Links, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let mut links = Links::default();
    let mut bad = Vec::new();
    collect_json(&value, false, "", &mut links, &mut bad);
    match bad.first() {
        Some(key_path) => Err(format!("href at {key_path} is not a string")),
        None => Ok(links),
    }
}

fn collect_json(v: &Value, in_actions: bool, at: &str, links: &mut Links, bad: &mut Vec<String>) {
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

// ---------------------------------------------------------------------------------------------------------
// The checker's own tests: the crawl's verdicts are only as good as it

#[test]
fn the_xml_checker_finds_hrefs_and_keeps_actions_apart() {
    let doc = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<vms>\n    \
               <vm href=\"/api/vms/1\" id=\"1\">\n        <actions>\n            \
               <link href=\"/api/vms/1/start\" rel=\"start\"/>\n        </actions>\n        \
               <name>a &amp; b &#x41;&#65;</name>\n        <link href=\"/api/vms/1/disks\" rel='disks'/>\n        \
               <!-- note --><![CDATA[<raw>]]>\n        <template href=\"/api/templates?x=1&amp;y=2\"/>\n    \
               </vm>\n</vms>\n";

    let links = xml_links(doc).expect("well-formed");

    assert_eq!(links.hrefs, ["/api/vms/1", "/api/vms/1/disks", "/api/templates?x=1&y=2"]);
    assert_eq!(links.actions, ["/api/vms/1/start"]);
}

#[test]
fn the_xml_checker_refuses_what_is_not_well_formed() {
    for bad in [
        "",
        "   ",
        "text",
        "<a>",
        "<a></b>",
        "<a/><b/>",
        "<a/>trailing",
        "<a x=1/>",
        "<a x=\"1\" x=\"2\"/>",
        "<a x=\"1\"y=\"2\"/>",
        "<a x=\"<\"/>",
        "<a>&nbsp;</a>",
        "<a>& b</a>",
        "<a>&#0;</a>",
        "<a>]]></a>",
        "<a><!-- a -- b --></a>",
        "<a>\u{1}</a>",
        "<1a/>",
        "</a>",
        "<a/><?xml version=\"1.0\"?>",
        "<![CDATA[x]]>",
        "{\"vm\": []}",
    ] {
        assert!(xml_links(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn json_hrefs_are_collected_with_actions_apart() {
    let body = r#"{"vm":[{"href":"/api/vms/1","actions":{"link":[{"href":"/api/vms/1/start"}]},
                   "link":[{"href":"/api/vms/1/disks","rel":"disks"}],"template":{"href":"/api/templates/0"}}]}"#;

    let links = json_links(body).expect("valid JSON");

    assert_eq!(links.actions, ["/api/vms/1/start"]);
    let mut hrefs = links.hrefs;
    hrefs.sort();
    assert_eq!(hrefs, ["/api/templates/0", "/api/vms/1", "/api/vms/1/disks"]);
    assert!(json_links(r#"{"vm":{"href":7}}"#).is_err());
    assert!(json_links("<vms/>").is_err());
}

#[test]
fn url_shapes_group_ids() {
    assert_eq!(
        shape("/api/vms/0b4e2f63-5d9e-4fd6-9c1f-8f2b8e4d2a10/nics/12/x;max=1?search=a"),
        "/api/vms/{id}/nics/{id}/x;max=1?search=a"
    );
    assert_eq!(shape("/api/tags/-1"), "/api/tags/{id}");
}

// ---------------------------------------------------------------------------------------------------------
// The crawls

#[test]
fn every_xml_href_answers_200_with_well_formed_xml() {
    let f = populated();

    let crawl = crawl(&f.d, XML, &["/api"], &|_| true);

    let (total, failures) = failures_with_coverage(crawl, &f.must_reach);
    assert!(failures.is_empty(), "{}", report("GET with Accept: application/xml", total, &failures));
}

#[test]
fn every_json_href_answers_200_with_valid_json() {
    let f = populated();

    let crawl = crawl(&f.d, JSON, &["/api"], &|_| true);

    let (total, failures) = failures_with_coverage(crawl, &f.must_reach);
    assert!(failures.is_empty(), "{}", report("GET with Accept: application/json", total, &failures));
}

/// The statuses an action may answer `<action/>` with: done, accepted, missing parameters, wrong state.
const ACTION_STATUSES: [u16; 4] = [200, 202, 400, 409];

#[test]
fn every_action_link_of_a_throwaway_vm_and_the_host_answers_post() {
    let d = Daemon::start().with_user().with_appvm().with_default_netvm("sys-net");
    take_snapshot(&d, "work");
    let vm = format!("/api/vms/{}", d.uuid("work"));
    // Only the throwaway vm (with its disks, nics, snapshots …) and the host: their actions are the ones
    // posted. This crawl's own GET failures are the other tests' subject and are not reported here.
    let follow = |p: &str| p.starts_with(&vm) || p.starts_with("/api/hosts");
    let crawl = crawl(&d, XML, &[vm.as_str(), "/api/hosts"], &follow);
    let actions = crawl.actions;
    let mut failures = Vec::new();
    for needed in [format!("{vm}/start"), format!("{vm}/stop")] {
        if !actions.iter().any(|(a, _)| *a == needed) {
            failures.push(Failure {
                url: needed,
                status: 0,
                problem: "not linked from any <actions>".to_string(),
                body: String::new(),
                linked_from: "-".to_string(),
            });
        }
    }
    if !actions.iter().any(|(a, _)| a.starts_with("/api/hosts/")) {
        failures.push(Failure {
            url: "/api/hosts/{id}/…".to_string(),
            status: 0,
            problem: "the host links no actions".to_string(),
            body: String::new(),
            linked_from: "-".to_string(),
        });
    }

    let client = client();
    for (action, page) in &actions {
        let r = client
            .post(d.url(action))
            .basic_auth("admin@internal", Some("secret"))
            .header("Content-Type", XML)
            .header("Accept", XML)
            .body("<action/>")
            .send();
        let (status, body) = match r {
            Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
            Err(e) => (0, format!("request failed: {e}")),
        };
        let problem = if !ACTION_STATUSES.contains(&status) {
            Some(format!("POST status {status}, not one of {ACTION_STATUSES:?}"))
        } else {
            xml_links(&body).err().map(|e| format!("POST answered malformed XML: {e}"))
        };
        if let Some(problem) = problem {
            failures.push(Failure {
                url: action.clone(),
                status,
                problem,
                body: head(&body),
                linked_from: page.clone(),
            });
        }
    }

    assert!(failures.is_empty(), "{}", report("POST <action/> to every action link", actions.len(), &failures));
}
