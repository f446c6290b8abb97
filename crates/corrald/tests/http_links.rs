//! Every href the RHEV API hands out leads somewhere (spec A4): a daemon with qubes in several states is
//! crawled breadth-first from `GET /api`, in XML and in JSON, following every `href` (resources, references,
//! `<link rel>` sub-collections) but search templates (`{query}`) and `<actions>` links; each URL must answer
//! 200 with a well-formed body of the asked format (or 301 to where it moved). The `<actions>` links of a
//! throwaway halted AppVM and of the host must answer a POST with something other than 404 or 405.
//!
//! Each test collects every failure and reports them all at once, grouped by the shape of the URL.

mod support;

use support::crawl::{
    client, crawl, failures_with_coverage, head, json_links, populated, report, shape, take_snapshot, xml_links,
    Failure, JSON, XML,
};
use support::Daemon;

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

/// The attributes the oVirt v3 SDK (`ovirtsdk.xml.params`, generated from the v3 XSD) reads with `int()`,
/// whatever the element: one that is not an integer makes the SDK refuse the whole document. `id` is an
/// integer only on `<vlan>`.
const SDK_INTEGER_ATTRIBUTES: [&str; 15] = [
    "major", "minor", "build", "revision", "cores", "sockets", "threads", "socket", "index", "vcpu", "percent",
    "priority", "low", "high", "duration",
];

#[test]
fn every_attribute_the_sdk_reads_as_an_integer_is_one() {
    let f = populated();

    let crawl = crawl(&f.d, XML, &["/api"], &|_| true);

    let mut bad = Vec::new();
    let mut versions = 0;
    for (path, body) in &crawl.pages {
        let doc = roxmltree::Document::parse(body).expect("the other crawl checks well-formedness");
        for node in doc.descendants().filter(|n| n.is_element()) {
            if node.has_attribute("major") {
                versions += 1;
            }
            for a in node.attributes() {
                let integer =
                    SDK_INTEGER_ATTRIBUTES.contains(&a.name()) || (node.has_tag_name("vlan") && a.name() == "id");
                if integer && a.value().parse::<i64>().is_err() {
                    bad.push(format!("{path}: <{} {}=\"{}\">", node.tag_name().name(), a.name(), a.value()));
                }
            }
        }
    }
    bad.sort();
    bad.dedup();
    assert!(bad.is_empty(), "attributes the SDK parses as integers are not:\n{}", bad.join("\n"));
    // The entry point, capabilities, the host (its own and libvirt's version), clusters and data centers.
    assert!(versions >= 6, "only {versions} version elements crawled");
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
