//! The HTTP door answers on the daemon's port with auth, for both APIs.

mod support;

use support::Daemon;

#[test]
fn api_without_credentials_is_401_with_fault() {
    let d = Daemon::start();
    let client = reqwest::blocking::Client::new();

    let r = client.get(d.url("/api")).send().expect("request");

    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let body = r.text().expect("body");
    assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>"), "{body}");
    assert!(body.contains("<fault>"), "{body}");
}

#[test]
fn api_entry_point_with_basic_auth() {
    let d = Daemon::start();
    d.add_user("admin", "secret");
    let client = reqwest::blocking::Client::new();

    let r = client.get(d.url("/api")).basic_auth("admin@internal", Some("secret")).send().expect("request");

    assert_eq!(r.status(), 200);
    assert!(r.text().expect("body").contains("<product_info>"));
}
