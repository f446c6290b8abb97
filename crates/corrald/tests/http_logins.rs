//! Logins under attack: floods of bad credentials, guessing at names, and guessing at one user's
//! password must neither refuse other people's right passwords nor tell which names exist nor grow the
//! daemon without bound. Different attackers use different loopback addresses (127.0.0.x).

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::Daemon;

fn client_from(last: u8) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

fn status(client: &reqwest::blocking::Client, d: &Daemon, user: &str, password: &str) -> (u16, String) {
    let r = client.get(d.url("/api")).basic_auth(user, Some(password)).send().expect("request");
    (r.status().as_u16(), r.text().expect("body"))
}

/// The daemon's resident set and its peak, in kB.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn a_flood_of_unknown_users_neither_refuses_right_passwords_nor_grows_the_daemon() {
    let d = Daemon::start();
    for i in 0..6 {
        d.add_user(&format!("user{i}"), &format!("secret {i}"));
    }
    d.add_user("shared", "shared secret");
    // One login first, so that the check slots' memory is part of the baseline.
    assert_eq!(status(&client_from(1), &d, "user0@internal", "secret 0").0, 200);
    let (_, before) = memory_kb(d.pid());

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let d = Arc::new(d);
    let flood: Vec<_> = (0..4u8)
        .map(|k| {
            let (stop, sent, d) = (stop.clone(), sent.clone(), d.clone());
            std::thread::spawn(move || {
                let client = client_from(10 + k);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    status(&client, &d, &format!("nobody{k}x{i}@internal"), "guess");
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    // Six users whose passwords were not verified recently, while the flood runs.
    let logins: Vec<_> = (1..6)
        .map(|i| {
            let d = d.clone();
            std::thread::spawn(move || {
                status(&client_from(1), &d, &format!("user{i}@internal"), &format!("secret {i}")).0
            })
        })
        .collect();
    // Eight parallel first logins with the same credentials.
    let same: Vec<_> = (0..8)
        .map(|_| {
            let d = d.clone();
            std::thread::spawn(move || status(&client_from(2), &d, "shared@internal", "shared secret").0)
        })
        .collect();
    let logins: Vec<u16> = logins.into_iter().map(|h| h.join().expect("join")).collect();
    let same: Vec<u16> = same.into_iter().map(|h| h.join().expect("join")).collect();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    for h in flood {
        h.join().expect("join");
    }
    let (_, peak) = memory_kb(d.pid());
    eprintln!("daemon memory: {before} kB before the flood, peak {peak} kB");

    assert!(sent.load(Ordering::Relaxed) >= 40, "the flood ran");
    assert!(peak < before + 100 * 1024, "the daemon grew from {before} kB to a peak of {peak} kB");
    assert_eq!(logins, vec![200; 5], "right passwords are not refused because of the flood");
    assert_eq!(same, vec![200; 8], "concurrent first logins with the same credentials all pass");
}

/// A guesser locks out only itself: the user it guesses at still logs in from elsewhere, and a locked
/// name is refused the same way (status, body, time) whether it exists or not.
#[test]
fn lockouts_are_per_name_and_address_and_do_not_tell_which_names_exist() {
    let d = Daemon::start();
    d.add_user("alice", "alice's secret");
    let attacker = client_from(20);
    for _ in 0..5 {
        assert_eq!(status(&attacker, &d, "alice@internal", "guess").0, 401);
        assert_eq!(status(&attacker, &d, "nobody@internal", "guess").0, 401);
    }
    let timed = |user: &str| {
        let start = Instant::now();
        let answer = status(&attacker, &d, user, "guess");
        (answer, start.elapsed())
    };
    let (known, known_took) = timed("alice@internal");
    let (unknown, unknown_took) = timed("nobody@internal");
    assert_eq!(known, unknown, "a locked name and an unknown one get the same answer");
    let (fast, slow) = (known_took.min(unknown_took), known_took.max(unknown_took));
    assert!(slow < fast * 4 + Duration::from_millis(10), "locked known {known_took:?}, unknown {unknown_took:?}");

    // Not locked yet: an unknown name costs what a wrong password of a known user costs.
    let fresh = client_from(21);
    let mut known_times = Vec::new();
    let mut unknown_times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let a = status(&fresh, &d, "alice@internal", "another guess");
        known_times.push(start.elapsed());
        let start = Instant::now();
        let b = status(&fresh, &d, "nobody2@internal", "another guess");
        unknown_times.push(start.elapsed());
        assert_eq!(a, b);
    }
    known_times.sort();
    unknown_times.sort();
    let (k, u) = (known_times[1], unknown_times[1]);
    assert!(k < u * 3 && u < k * 3, "known {k:?}, unknown {u:?}");

    assert_eq!(status(&client_from(1), &d, "alice@internal", "alice's secret").0, 200, "alice is not locked out");
}

/// Opens a session as admin and returns its cookie pair and the whole `Set-Cookie` value.
fn session(d: &Daemon, ttl_minutes: Option<u64>) -> (String, String) {
    let mut rb = reqwest::blocking::Client::new()
        .get(d.url("/api"))
        .basic_auth("admin@internal", Some("secret"))
        .header("Prefer", "persistent-auth");
    if let Some(ttl) = ttl_minutes {
        rb = rb.header("Session-TTL", ttl.to_string());
    }
    let r = rb.send().expect("login");
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().expect("cookie").to_string();
    (set.split(';').next().expect("pair").to_string(), set)
}

/// A page on another site can make the browser send the session cookie with a form or text body but
/// with no other header: such a request changes nothing. The SDK's way (XML body, `Prefer`) works.
#[test]
fn cookie_authenticated_changes_need_an_xml_or_json_body() {
    let d = Daemon::start().with_user().with_appvm();
    let work = d.uuid("work");
    let (cookie, set) = session(&d, None);
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let c = reqwest::blocking::Client::new();
    let post = |path: &str, content_type: Option<&str>, body: &str| {
        let mut rb = c.post(d.url(path)).header("Cookie", &cookie).header("Prefer", "persistent-auth");
        if let Some(ct) = content_type {
            rb = rb.header("Content-Type", ct);
        }
        rb.body(body.to_string()).send().expect("request").status().as_u16()
    };
    let vms = || -> usize {
        let r = c.get(d.url("/api/vms")).basic_auth("admin@internal", Some("secret")).send().expect("vms");
        r.text().expect("body").matches("<vm ").count()
    };
    let before = vms();

    let start_text = c
        .post(d.url(&format!("/api/vms/{work}/start")))
        .header("Cookie", &cookie)
        .header("Content-Type", "text/plain")
        .body("<action/>")
        .send()
        .expect("request")
        .status()
        .as_u16();
    let create_form = c
        .post(d.url("/api/vms"))
        .header("Cookie", &cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("<vm><name>csrf</name><template><name>tpl</name></template></vm>")
        .send()
        .expect("request")
        .status()
        .as_u16();
    let bare = c.post(d.url(&format!("/api/vms/{work}/start"))).header("Cookie", &cookie).send().expect("r");

    assert_eq!(start_text, 403);
    assert_eq!(create_form, 403);
    assert_eq!(bare.status(), 403);
    assert_eq!(vms(), before, "nothing was created");
    assert!(d.ok("admin.vm.CurrentState", "work", b"").contains("power_state=Halted"));
    // The way the SDK does it.
    assert_eq!(post(&format!("/api/vms/{work}/start"), Some("application/xml"), "<action/>"), 200);
}

/// `Session-TTL` is capped at a day, and sessions per user are bounded (the oldest ends).
#[test]
fn session_lengths_and_counts_are_bounded() {
    let d = Daemon::start().with_user();
    let c = reqwest::blocking::Client::new();
    let with = |cookie: &str| {
        c.get(d.url("/api")).header("Cookie", cookie).header("Prefer", "persistent-auth").send().expect("r").status()
    };
    let (first, _) = session(&d, Some(u64::MAX / 60));
    assert_eq!(with(&first), 200, "a huge Session-TTL still opens a session");
    let later: Vec<String> = (0..32).map(|_| session(&d, None).0).collect();
    assert_eq!(with(&first), 401, "the least recently used session ended");
    assert!(later.iter().all(|cookie| with(cookie) == 200));
}
