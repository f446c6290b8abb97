//! Crash consistency through the HTTP door, black box: a client creates, changes and deletes vms over
//! `/api` while another thread `kill -9`s the daemon at random moments and the client restarts it. Every
//! mutation answered 2xx must survive; one whose answer was lost may or may not have landed, and its vm must
//! then show exactly the old or exactly the new state. Checked at the end over HTTP and the Admin API.
//!
//! Knobs (environment): `CORRAL_HTTP_CRASH_MUTATIONS` (default 400), `CORRAL_HTTP_CRASH_SEED` (default:
//! random, printed), kill intervals `CORRAL_HTTP_CRASH_MIN_MS`/`_MAX_MS` (default 40–250 ms).

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::blocking::Client;
use support::Daemon;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// What a vm is, as far as this test changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Vm {
    memory_mib: u64,
    description: String,
}

/// What the client knows of a vm: its state (`None`: it does not exist), or the two states a lost
/// answer leaves possible.
#[derive(Debug, Clone)]
enum Known {
    Sure(Option<Vm>),
    OneOf(Option<Vm>, Option<Vm>),
}

enum Outcome {
    /// With the `Location` of a creation.
    Acknowledged(Option<String>),
    Refused(u16, String),
    Lost,
}

fn send(client: &Client, d: &Daemon, method: reqwest::Method, path: &str, body: String) -> Outcome {
    let Ok(addr) = std::fs::read_to_string(d.state.join("http-address")) else {
        return Outcome::Lost;
    };
    let r = client
        .request(method, format!("http://{addr}{path}"))
        .basic_auth("admin@internal", Some("secret"))
        .header("Content-Type", "application/xml")
        .header("Accept", "application/xml")
        .header("Expect", "201-created")
        .body(body)
        .send();
    match r {
        Err(_) => Outcome::Lost,
        Ok(r) => {
            let status = r.status().as_u16();
            let location = r.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_string);
            match r.text() {
                Err(_) => Outcome::Lost,
                Ok(_) if (200..300).contains(&status) => Outcome::Acknowledged(location),
                Ok(text) => Outcome::Refused(status, text),
            }
        }
    }
}

/// The vm `name` as the daemon shows it over HTTP: its uuid and state, or `None`.
fn read_vm(client: &Client, d: &Daemon, name: &str) -> Option<(String, Vm)> {
    let r = client
        .get(d.url(&format!("/api/vms?search=name%3D{name}")))
        .basic_auth("admin@internal", Some("secret"))
        .header("Accept", "application/json")
        .send()
        .expect("read back");
    let list: serde_json::Value = r.json().expect("JSON vm list");
    let vm = list["vm"].as_array()?.first()?.clone();
    let memory: u64 = vm["memory"].as_str().and_then(|m| m.parse().ok()).expect("memory");
    let description = vm["description"].as_str().unwrap_or_default().to_string();
    Some((vm["id"].as_str().expect("id").to_string(), Vm { memory_mib: memory / (1024 * 1024), description }))
}

#[test]
fn acknowledged_http_mutations_survive_kill_9() {
    let seed = env_u64("CORRAL_HTTP_CRASH_SEED", rand::random::<u64>());
    let mutations = env_u64("CORRAL_HTTP_CRASH_MUTATIONS", 400);
    let (min_ms, max_ms) = (env_u64("CORRAL_HTTP_CRASH_MIN_MS", 40), env_u64("CORRAL_HTTP_CRASH_MAX_MS", 250));
    eprintln!("seed {seed:#x}, {mutations} mutations");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut d = Daemon::start().with_user();
    let client = Client::builder().timeout(Duration::from_secs(20)).build().expect("client");

    warm_up(&client, &d);
    let pid = Arc::new(AtomicU32::new(d.pid()));
    let done = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU32::new(0));
    let killer = {
        let (pid, done, kills) = (pid.clone(), done.clone(), kills.clone());
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6b11);
        std::thread::spawn(move || {
            while !done.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(rng.gen_range(min_ms..=max_ms)));
                let p = pid.swap(0, SeqCst);
                if p != 0 && !done.load(SeqCst) {
                    let _ = std::process::Command::new("kill").args(["-9", &p.to_string()]).status();
                    kills.fetch_add(1, SeqCst);
                }
            }
        })
    };

    let mut model: BTreeMap<String, Known> = BTreeMap::new();
    // The uuid of each vm whose creation was acknowledged (from its `Location`).
    let mut uuids: BTreeMap<String, String> = BTreeMap::new();
    let (mut acknowledged, mut lost) = (0u32, 0u32);
    for i in 0..mutations {
        // A vm whose last change was lost is left alone: its state is one of two until the end.
        let settled: Vec<(String, Option<Vm>)> = model
            .iter()
            .filter_map(|(n, k)| match k {
                Known::Sure(state) => Some((n.clone(), state.clone())),
                Known::OneOf(..) => None,
            })
            .collect();
        let existing: Vec<&(String, Option<Vm>)> = settled.iter().filter(|(_, s)| s.is_some()).collect();
        let new_state = Vm { memory_mib: rng.gen_range(200..4000), description: format!("d{i}-{}", rng.gen::<u32>()) };
        let (name, before, after, method, path, body) = match (rng.gen_range(0..10), existing.is_empty()) {
            (0..=3, _) | (_, true) => {
                let name = format!("h{i}");
                let body = format!(
                    "<vm><name>{name}</name><template><name>Blank</name></template><cluster><name>Default</name>\
                     </cluster><memory>{}</memory><description>{}</description></vm>",
                    new_state.memory_mib * 1024 * 1024,
                    new_state.description
                );
                (name, None, Some(new_state), reqwest::Method::POST, "/api/vms".to_string(), body)
            }
            (4..=7, false) => {
                let (name, before) = existing[rng.gen_range(0..existing.len())].clone();
                let uuid = &uuids[&name];
                let body = format!(
                    "<vm><memory>{}</memory><description>{}</description></vm>",
                    new_state.memory_mib * 1024 * 1024,
                    new_state.description
                );
                (name, before, Some(new_state), reqwest::Method::PUT, format!("/api/vms/{uuid}"), body)
            }
            _ => {
                let (name, before) = existing[rng.gen_range(0..existing.len())].clone();
                let uuid = &uuids[&name];
                (name, before, None, reqwest::Method::DELETE, format!("/api/vms/{uuid}"), "<action/>".to_string())
            }
        };
        match send(&client, &d, method, &path, body) {
            Outcome::Acknowledged(location) => {
                acknowledged += 1;
                if let Some(uuid) = location.as_deref().and_then(|l| l.rsplit('/').next()) {
                    uuids.insert(name.clone(), uuid.to_string());
                }
                model.insert(name, Known::Sure(after));
            }
            Outcome::Refused(status, text) => panic!("seed {seed:#x}: {path} refused with {status}: {text}"),
            Outcome::Lost => {
                lost += 1;
                model.insert(name, Known::OneOf(before, after));
                // The daemon is gone (or going): reap it and start it again.
                d.kill9();
                d.spawn();
                warm_up(&client, &d);
                pid.store(d.pid(), SeqCst);
            }
        }
    }
    done.store(true, SeqCst);
    killer.join().expect("killer");
    d.restart();

    let mut wrong = Vec::new();
    for (name, known) in &model {
        let now = read_vm(&client, &d, name).map(|(_, vm)| vm);
        let admin = d.call("admin.vm.List", name, b"");
        assert_eq!(admin.starts_with(b"0\0"), now.is_some(), "{name}: HTTP and the Admin API disagree");
        let fine = match known {
            Known::Sure(state) => now == *state,
            Known::OneOf(a, b) => now == *a || now == *b,
        };
        if !fine {
            wrong.push(format!("{name}: expected {known:?}, found {now:?}"));
        }
    }
    eprintln!("{acknowledged} acknowledged, {lost} lost, {} kills, {} vms", kills.load(SeqCst), model.len());
    assert!(wrong.is_empty(), "seed {seed:#x}:\n{}", wrong.join("\n"));
    assert!(lost > 0, "no kill landed during a request: the test did not test anything");
}

/// One authenticated request, so that the killer's next kill lands on a mutation rather than on the
/// password check (argon2, slow in a debug build) every request of a fresh daemon starts with.
fn warm_up(client: &Client, d: &Daemon) {
    let r = client.get(d.url("/api")).basic_auth("admin@internal", Some("secret")).send().expect("warm-up");
    assert_eq!(r.status(), 200, "warm-up");
}
