//! Crash consistency of the compositions that make a whole qube from another, black box: a clone
//! (`POST /api/vms/{id}/clone`) and a template made from a vm (`POST /api/templates`) are started, the daemon
//! is `kill -9`ed after a random delay within the operation's measured duration, and restarted. The new qube
//! must then either not exist at all (and the same operation, retried, must work: leftovers block nothing) or
//! exist completely: every setting and every byte of content the operation copies.
//!
//! Knobs (environment): `CORRAL_CLONE_CRASH_ROUNDS` (default 20 per operation), `CORRAL_CLONE_CRASH_SEED`
//! (default: random, printed).

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::blocking::Client;
use support::events::Events;
use support::volumes::volume_path;
use support::Daemon;

const MIB: usize = 1024 * 1024;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// `len` bytes of a pattern that differs per `seed`, so a copy of the wrong volume shows.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1).collect()
}

fn write_image(path: &Path, data: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).expect("open image");
    f.seek(SeekFrom::Start(0)).expect("seek");
    f.write_all(data).expect("write image");
    f.sync_all().expect("sync image");
}

/// The first `len` bytes of an image (fewer if it is shorter).
fn read_image(path: &Path, len: usize) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut data = Vec::with_capacity(len);
    f.take(len as u64).read_to_end(&mut data).expect("read image");
    data
}

/// One HTTP request as the SDK sends it; `None` when the daemon died under it.
fn post(client: &Client, addr: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let r = client
        .post(format!("http://{addr}{path}"))
        .basic_auth("admin@internal", Some("secret"))
        .header("Content-Type", "application/xml")
        .header("Accept", "application/xml")
        .header("Expect", "201-created")
        .body(body.to_string())
        .send()
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().ok()?))
}

/// The further disk's content and the source's private and its template's root content.
struct Source {
    work_uuid: String,
    private: Vec<u8>,
    disk: Vec<u8>,
    root: Vec<u8>,
}

/// AppVM `work` (on TemplateVM `tpl`) with properties, features, tags, a firewall, notes, content in its private
/// volume, a further disk with content, and content in its template's root.
fn source(d: &Daemon) -> Source {
    for (prop, value) in [("memory", "600"), ("vcpus", "3"), ("kernelopts", "quiet splash"), ("qrexec_timeout", "77")] {
        d.ok(&format!("admin.vm.property.Set+{prop}"), "work", value.as_bytes());
    }
    d.ok("admin.vm.feature.Set+gui", "work", b"1");
    d.ok("admin.vm.feature.Set+service.cups", "work", b"");
    d.ok("admin.vm.tag.Set+finance", "work", b"");
    d.ok("admin.vm.tag.Set+audited", "work", b"");
    d.ok("admin.vm.notes.Set", "work", b"the work qube");
    d.ok("admin.vm.firewall.Set", "work", b"action=accept dsthost=10.0.0.1\naction=drop\n");
    let work_uuid = d.uuid("work");

    let client = Client::new();
    let domains: serde_json::Value = client
        .get(d.url("/api/storagedomains"))
        .basic_auth("admin@internal", Some("secret"))
        .header("Accept", "application/json")
        .send()
        .expect("storage domains")
        .json()
        .expect("json");
    let sd = domains["storage_domain"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "varlibqubes"))
        .and_then(|s| s["id"].as_str())
        .expect("varlibqubes")
        .to_string();
    let body = format!(
        "<disk><storage_domains><storage_domain id=\"{sd}\"/></storage_domains>\
         <provisioned_size>{}</provisioned_size><name>scratch</name></disk>",
        64 * MIB
    );
    let (status, reply) = post(&client, &d.http(), &format!("/api/vms/{work_uuid}/disks"), &body).expect("add disk");
    assert_eq!(status, 201, "{reply}");

    let private = pattern(7, 8 * MIB);
    let disk = pattern(11, 4 * MIB);
    let root = pattern(13, 2 * MIB);
    write_image(&volume_path(d, "work", "private"), &private);
    write_image(&volume_path(d, "work", "disk1"), &disk);
    write_image(&volume_path(d, "tpl", "root"), &root);
    Source { work_uuid, private, disk, root }
}

#[derive(Clone, Copy, Debug)]
enum Operation {
    Clone,
    Template,
}

impl Operation {
    /// Where the new qube's volumes go in the default pool.
    fn volume_dir(self) -> &'static str {
        match self {
            Operation::Clone => "appvms",
            Operation::Template => "vm-templates",
        }
    }

    /// The request that makes qube `name`.
    fn request(self, src: &Source, name: &str) -> (String, String) {
        match self {
            Operation::Clone => {
                (format!("/api/vms/{}/clone", src.work_uuid), format!("<action><vm><name>{name}</name></vm></action>"))
            }
            Operation::Template => (
                "/api/templates".to_string(),
                format!(
                    "<template><name>{name}</name><vm id=\"{}\"/><description>made from work</description>\
                     <memory>{}</memory></template>",
                    src.work_uuid,
                    700 * MIB
                ),
            ),
        }
    }
}

fn exists(d: &Daemon, name: &str) -> bool {
    let prefix = format!("{name} ");
    d.ok("admin.vm.List", "dom0", b"").lines().any(|l| l.starts_with(&prefix))
}

fn sorted_lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_string).collect()
}

fn tags_but_created_by(d: &Daemon, vm: &str) -> BTreeSet<String> {
    d.ok("admin.vm.tag.List", vm, b"").lines().filter(|t| !t.starts_with("created-by-")).map(str::to_string).collect()
}

/// A volume's configuration as `admin.vm.volume.Info` shows it, without what names the qube (vid, path) and
/// what depends on the file system's allocation (usage).
fn volume_config(d: &Daemon, vm: &str, volume: &str) -> Vec<String> {
    d.ok(&format!("admin.vm.volume.Info+{volume}"), vm, b"")
        .lines()
        .filter(|l| !["vid=", "path=", "usage=", "source="].iter().any(|p| l.starts_with(p)))
        .map(str::to_string)
        .collect()
}

/// Panics unless `name` is the whole result of `op`.
fn assert_complete(d: &Daemon, op: Operation, src: &Source, name: &str) {
    let line = d.ok("admin.vm.List", name, b"");
    let get = |call: &str, vm: &str| d.ok(call, vm, b"");
    match op {
        Operation::Clone => {
            assert!(line.contains("class=AppVM"), "{name}: {line}");
            for prop in ["template", "label", "memory", "vcpus", "kernelopts", "qrexec_timeout"] {
                let call = format!("admin.vm.property.Get+{prop}");
                assert_eq!(get(&call, name), get(&call, "work"), "{name}: {prop}");
            }
            assert!(get("admin.vm.property.Get+mac", name).starts_with("default=True"), "{name}: its own MAC");
            assert_eq!(get("admin.vm.feature.List", name), get("admin.vm.feature.List", "work"), "{name}: features");
            for feature in ["gui", "service.cups"] {
                let call = format!("admin.vm.feature.Get+{feature}");
                assert_eq!(get(&call, name), get(&call, "work"), "{name}: feature {feature}");
            }
            assert_eq!(tags_but_created_by(d, name), tags_but_created_by(d, "work"), "{name}: tags");
            assert_eq!(get("admin.vm.firewall.Get", name), get("admin.vm.firewall.Get", "work"), "{name}: firewall");
            assert_eq!(get("admin.vm.notes.Get", name), get("admin.vm.notes.Get", "work"), "{name}: notes");
            assert_eq!(
                sorted_lines(&get("admin.vm.volume.List", name)),
                sorted_lines(&get("admin.vm.volume.List", "work")),
                "{name}: volumes"
            );
            for volume in ["root", "private", "volatile", "disk1"] {
                assert_eq!(volume_config(d, name, volume), volume_config(d, "work", volume), "{name}: {volume}");
            }
        }
        Operation::Template => {
            assert!(line.contains("class=TemplateVM"), "{name}: {line}");
            for prop in ["label", "vcpus", "kernelopts"] {
                let call = format!("admin.vm.property.Get+{prop}");
                assert_eq!(get(&call, name), get(&call, "work"), "{name}: {prop}");
            }
            assert_eq!(get("admin.vm.property.Get+memory", name), "default=False type=int 700", "{name}: memory");
            assert_eq!(get("admin.vm.notes.Get", name), "made from work", "{name}: notes");
            let volumes = sorted_lines(&get("admin.vm.volume.List", name));
            assert!(["root", "private", "volatile", "disk1"].iter().all(|v| volumes.contains(*v)), "{volumes:?}");
            assert_eq!(volume_config(d, name, "disk1"), volume_config(d, "work", "disk1"), "{name}: disk1");
            let root = read_image(&volume_path(d, name, "root"), src.root.len());
            assert!(root == src.root, "{name}: root content is not its source's template's");
        }
    }
    let private = read_image(&volume_path(d, name, "private"), src.private.len());
    assert!(private == src.private, "{name}: private content is not the source's");
    let disk = read_image(&volume_path(d, name, "disk1"), src.disk.len());
    assert!(disk == src.disk, "{name}: further disk content is not the source's");
}

/// Runs `op` making `name` to completion; returns how long it took.
fn run(d: &Daemon, op: Operation, src: &Source, name: &str) -> Duration {
    let (path, body) = op.request(src, name);
    let started = Instant::now();
    let (status, reply) = post(&Client::new(), &d.http(), &path, &body).expect("answer");
    let took = started.elapsed();
    assert!([200, 201].contains(&status), "{op:?} {name}: {status} {reply}");
    took
}

#[test]
fn a_clone_or_template_interrupted_by_kill_9_is_whole_or_absent() {
    let mut d = Daemon::start().with_user().with_appvm();
    let src = source(&d);
    let rounds = env_u64("CORRAL_CLONE_CRASH_ROUNDS", 20);
    let seed = env_u64("CORRAL_CLONE_CRASH_SEED", rand::random());
    eprintln!("CORRAL_CLONE_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    for op in [Operation::Clone, Operation::Template] {
        // What an uninterrupted run takes, checked whole like any other.
        let probe = format!("{op:?}-probe").to_lowercase();
        let took = run(&d, op, &src, &probe);
        assert_complete(&d, op, &src, &probe);
        let window = took.as_micros().max(1000) as u64 * 6 / 5;

        let (mut absent, mut whole, mut leftovers) = (0, 0, 0);
        for round in 0..rounds {
            let name = format!("{op:?}-{round}").to_lowercase();
            let (path, body) = op.request(&src, &name);
            let addr = d.http();
            let client = Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
            let request = std::thread::spawn(move || post(&client, &addr, &path, &body));
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..window)));
            d.kill9();
            let answer = request.join().expect("request thread");
            d.spawn();

            if exists(&d, &name) {
                whole += 1;
                assert_complete(&d, op, &src, &name);
            } else {
                absent += 1;
                let dir = d.state.join(op.volume_dir()).join(&name);
                leftovers += usize::from(std::fs::read_dir(dir).is_ok_and(|mut files| files.next().is_some()));
                if let Some((status, reply)) = answer {
                    assert!(status >= 400, "{name} was answered {status} but is gone: {reply}");
                }
                // Whatever the crash left must not keep the same request from working now.
                run(&d, op, &src, &name);
                assert_complete(&d, op, &src, &name);
            }
        }
        eprintln!(
            "{op:?}: {whole} whole, {absent} absent after kill -9 ({leftovers} with files left to clear; window \
             {window} µs)"
        );
        assert!(whole > 0 && absent > 0, "{op:?}: the kills missed the operation: {whole} whole, {absent} absent");
    }
}

#[test]
fn a_clone_whose_copy_fails_leaves_no_qube_and_no_files() {
    let d = Daemon::start().with_user().with_appvm();
    let src = source(&d);
    // The private volume is copied first, then the further disk, whose image is gone.
    std::fs::remove_file(volume_path(&d, "work", "disk1")).expect("remove image");
    let (path, body) = Operation::Clone.request(&src, "copy");

    let mut answer = None;
    let mut events = Events::around(&d, || answer = post(&Client::new(), &d.http(), &path, &body));
    let (status, reply) = answer.expect("answer");

    assert!(status >= 400, "{status} {reply}");
    // Nothing was committed, so nothing was announced: no qube appeared and went again.
    let seen = events.until_marker(&d, "work");
    assert!(!seen.iter().any(|e| e.contains("domain-add") || e.contains("domain-delete")), "{seen:?}");
    assert!(!exists(&d, "copy"));
    let left: Vec<String> = std::fs::read_dir(d.state.join("appvms/copy"))
        .map(|dir| dir.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
