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

/// Password guessing: after five wrong passwords in a row the user's next attempts are refused, even with
/// the right password, until a wait has passed; a password verified before the guessing still works.
#[test]
fn repeated_wrong_passwords_lock_the_user_out_for_a_while() {
    let d = Daemon::start();
    d.add_user("alice", "alice's secret");
    d.add_user("bob", "bob's secret");
    let client = reqwest::blocking::Client::new();
    let get = |user: &str, password: &str| {
        client.get(d.url("/api")).basic_auth(user, Some(password)).send().expect("request").status().as_u16()
    };
    assert_eq!(get("alice@internal", "alice's secret"), 200);

    for _ in 0..5 {
        assert_eq!(get("bob@internal", "guess"), 401);
        assert_eq!(get("alice@internal", "guess"), 401);
    }
    let bob_locked = get("bob@internal", "bob's secret");
    let alice_known_password = get("alice@internal", "alice's secret");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let bob_after_the_wait = get("bob@internal", "bob's secret");

    assert_eq!(bob_locked, 401, "the right password is refused while locked out");
    assert_eq!(alice_known_password, 200, "a password verified before still works");
    assert_eq!(bob_after_the_wait, 200);
}

#[test]
fn unknown_users_are_refused_like_wrong_passwords() {
    let d = Daemon::start();
    d.add_user("admin", "secret");
    let client = reqwest::blocking::Client::new();

    let r = client.get(d.url("/api")).basic_auth("nobody@internal", Some("secret")).send().expect("request");

    assert_eq!(r.status(), 401);
    assert!(r.text().expect("body").contains("<fault>"));
}

/// Error answers made outside the handlers (no such route, a method the route does not take) carry a
/// fault too, in the asked format; virthttp keeps its own envelope.
#[test]
fn unrouted_paths_and_wrong_methods_get_faults() {
    let d = Daemon::start();
    d.add_user("admin", "secret");
    let client = reqwest::blocking::Client::new();
    let send = |method: reqwest::Method, path: &str, accept: &str| {
        client
            .request(method, d.url(path))
            .basic_auth("admin@internal", Some("secret"))
            .header("Accept", accept)
            .send()
            .expect("request")
    };
    let decl = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>";

    let missing = send(reqwest::Method::GET, "/api/no-such-collection", "application/xml");
    assert_eq!(missing.status(), 404);
    let body = missing.text().expect("body");
    assert!(body.starts_with(decl) && body.contains("<detail>[No resource at /api/no-such-collection]"), "{body}");

    let wrong = send(reqwest::Method::PATCH, "/api/vms", "application/xml");
    assert_eq!(wrong.status(), 405);
    assert!(wrong.headers().get("allow").is_some());
    let body = wrong.text().expect("body");
    assert!(body.starts_with(decl) && body.contains("<fault>") && body.contains("PATCH"), "{body}");

    let json = send(reqwest::Method::GET, "/api/no-such-collection", "application/json");
    assert_eq!(json.status(), 404);
    let fault: serde_json::Value = json.json().expect("a JSON fault");
    assert_eq!(fault["reason"], "Operation Failed");
    assert_eq!(fault["detail"], "[No resource at /api/no-such-collection]");
}

/// Credentials verified a moment ago are trusted without argon2 for a while, but only while the user
/// exists and has that password.
#[test]
fn a_removed_user_or_a_changed_password_is_refused_at_once() {
    let d = Daemon::start();
    d.add_user("admin", "secret");
    let client = reqwest::blocking::Client::new();
    let get = |password: &str| {
        client.get(d.url("/api")).basic_auth("admin@internal", Some(password)).send().expect("request").status()
    };
    assert_eq!(get("secret"), 200);

    d.add_user("admin", "another");
    assert_eq!(get("secret"), 401);
    assert_eq!(get("another"), 200);

    assert_eq!(d.call_internal("corral.user.Remove+admin", "dom0", b""), b"0\0");
    assert_eq!(get("another"), 401);
}
