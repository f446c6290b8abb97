//! A real tiny guest (Debian kernel + busybox initramfs, `tests/guest/`) run as a qube through corrald on
//! a real QEMU connection. `tests/guest/run.sh` provides the connection and the assets and sets
//! `CORRAL_REAL_GUEST_URI` and `CORRAL_GUEST_DIR`; without them this test says so and does nothing.

mod support;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use support::Daemon;

const MARKER: &str = "CORRAL-GUEST-READY";

fn guest_env() -> Option<(String, PathBuf)> {
    let uri = std::env::var("CORRAL_REAL_GUEST_URI").ok()?;
    let assets = std::env::var("CORRAL_GUEST_DIR").ok()?;
    Some((uri, PathBuf::from(assets)))
}

/// Event names as they arrive on `admin.Events` for dom0 (everything).
fn events(d: &Daemon) -> Receiver<(String, String)> {
    let (tx, rx) = channel();
    let mut s = UnixStream::connect(&d.admin).expect("connect");
    std::io::Write::write_all(&mut s, b"admin.Events dom0 name dom0\0").expect("send");
    s.shutdown(std::net::Shutdown::Write).expect("half-close");
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = s.read(&mut chunk) {
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            // A frame is `1\0subject\0event\0(k\0v\0)*\0`; split complete frames off the front.
            while let Some((subject, event, used)) = split_frame(&buf) {
                buf.drain(..used);
                if tx.send((subject, event)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

fn split_frame(buf: &[u8]) -> Option<(String, String, usize)> {
    let fields: Vec<&[u8]> = buf.split(|b| *b == 0).collect();
    // fields: "1", subject, event, k1, v1, ..., "" (end), rest...
    if fields.len() < 4 || fields[0] != b"1" {
        return None;
    }
    let mut i = 3;
    let mut used = fields[0].len() + fields[1].len() + fields[2].len() + 3;
    loop {
        let key = fields.get(i)?;
        if key.is_empty() {
            // The terminating empty key: present only if more bytes follow or the buffer ended on it.
            used += 1;
            if used > buf.len() {
                return None;
            }
            return Some((String::from_utf8_lossy(fields[1]).into(), String::from_utf8_lossy(fields[2]).into(), used));
        }
        let value = fields.get(i + 1)?;
        used += key.len() + value.len() + 2;
        i += 2;
    }
}

fn wait_event(rx: &Receiver<(String, String)>, vm: &str, name: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((subject, event)) if subject == vm && event == name => return,
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    panic!("event {name} of {vm} not seen within {limit:?}");
}

fn wait_marker(d: &Daemon, vm: &str) -> Duration {
    let log = d.state.join("logs").join(format!("{vm}.console"));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(90) {
        if std::fs::read_to_string(&log).is_ok_and(|s| s.contains(MARKER)) {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("marker not on the console of {vm} within 90 s; console: {:?}", std::fs::read_to_string(&log));
}

fn wait_state(d: &Daemon, vm: &str, want: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let state = d.ok("admin.vm.CurrentState", vm, b"");
        if state.ends_with(&format!("power_state={want}")) {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{vm} not {want} within {limit:?}: {state}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tiny_guest_runs_as_a_qube_through_its_whole_lifecycle() {
    let Some((uri, assets)) = guest_env() else {
        eprintln!("SKIP: CORRAL_REAL_GUEST_URI/CORRAL_GUEST_DIR not set (tests/guest/run.sh sets them)");
        return;
    };
    let mut d = Daemon::start_with_uri(&uri);
    let kernels = d.state.join("vm-kernels");
    std::fs::create_dir_all(&kernels).expect("kernels dir");
    std::os::unix::fs::symlink(&assets, kernels.join("tiny")).expect("kernel link");
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=tpl label=black");
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=guest label=red");
    for (prop, value) in [("kernel", "tiny"), ("memory", "128"), ("vcpus", "1")] {
        d.ok(&format!("admin.vm.property.Set+{prop}"), "guest", value.as_bytes());
    }
    let rx = events(&d);

    let t = Instant::now();
    d.ok("admin.vm.Start", "guest", b"");
    let started = t.elapsed();
    let booted = wait_marker(&d, "guest");
    assert!(d.ok("admin.vm.CurrentState", "guest", b"").ends_with("power_state=Running"));
    assert!(d.ok("admin.vm.List", "dom0", b"").contains("guest class=AppVM state=Running"));
    wait_event(&rx, "guest", "domain-start", Duration::from_secs(5));
    eprintln!("start returned after {started:?}, marker after {booted:?}");
    let pty = d.ok("admin.vm.Console", "guest", b"");
    assert!(pty.starts_with("/dev/pts/"), "console: {pty:?}");

    d.ok("admin.vm.Pause", "guest", b"");
    wait_state(&d, "guest", "Paused", Duration::from_secs(10));
    wait_event(&rx, "guest", "domain-paused", Duration::from_secs(5));
    d.ok("admin.vm.Unpause", "guest", b"");
    wait_state(&d, "guest", "Running", Duration::from_secs(10));
    wait_event(&rx, "guest", "domain-unpaused", Duration::from_secs(5));

    // The guest powers itself off on the ACPI power button.
    d.ok("admin.vm.Shutdown", "guest", b"");
    let stopped = wait_state(&d, "guest", "Halted", Duration::from_secs(60));
    wait_event(&rx, "guest", "domain-shutdown", Duration::from_secs(5));
    eprintln!("ACPI shutdown took {stopped:?}");

    d.ok("admin.vm.Start", "guest", b"");
    wait_marker(&d, "guest");
    d.ok("admin.vm.Kill", "guest", b"");
    assert!(d.ok("admin.vm.CurrentState", "guest", b"").ends_with("power_state=Halted"));

    // A QEMU that dies is seen like a guest that stopped.
    d.ok("admin.vm.Start", "guest", b"");
    wait_marker(&d, "guest");
    let pid = std::fs::read_to_string("/run/libvirt/qemu/guest.pid").expect("QEMU pid file");
    let status = std::process::Command::new("kill").args(["-9", pid.trim()]).status().expect("kill");
    assert!(status.success());
    wait_state(&d, "guest", "Halted", Duration::from_secs(30));
    wait_event(&rx, "guest", "domain-shutdown", Duration::from_secs(5));

    // A daemon crash leaves the guest running, and the restarted daemon shows it so.
    d.ok("admin.vm.Start", "guest", b"");
    wait_marker(&d, "guest");
    d.kill9();
    d.spawn();
    assert!(d.ok("admin.vm.CurrentState", "guest", b"").ends_with("power_state=Running"), "after restart");
    d.ok("admin.vm.Shutdown+wait", "guest", b"");
    assert!(d.ok("admin.vm.CurrentState", "guest", b"").ends_with("power_state=Halted"));
}

/// libvirt's live XML of a qube's domain, through virthttp.
fn live_xml(d: &Daemon, vm: &str) -> String {
    let r = reqwest::blocking::Client::new()
        .get(d.url(&format!("/libvirt/domains/by-name/{vm}/xml_desc")))
        .basic_auth("admin", Some("secret"))
        .send()
        .expect("xml_desc");
    let v: serde_json::Value = r.json().expect("envelope");
    v["results"][0].as_str().unwrap_or_else(|| panic!("no XML: {v}")).to_string()
}

/// The cdrom `<disk>` of a domain XML.
fn cdrom_drive(xml: &str) -> String {
    let start = xml.find("device='cdrom'").unwrap_or_else(|| panic!("no cdrom drive: {xml}"));
    let end = xml[start..].find("</disk>").map_or(xml.len(), |e| start + e);
    xml[start..end].to_string()
}

#[test]
fn a_running_guests_cdrom_media_change_over_http() {
    let Some((uri, assets)) = guest_env() else {
        eprintln!("SKIP: CORRAL_REAL_GUEST_URI/CORRAL_GUEST_DIR not set (tests/guest/run.sh sets them)");
        return;
    };
    let d = Daemon::start_with_uri(&uri);
    d.add_user("admin", "secret");
    let kernels = d.state.join("vm-kernels");
    std::fs::create_dir_all(&kernels).expect("kernels dir");
    std::os::unix::fs::symlink(&assets, kernels.join("tiny")).expect("kernel link");
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=tpl label=black");
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=cd label=red");
    for (prop, value) in [("kernel", "tiny"), ("memory", "128"), ("vcpus", "1")] {
        d.ok(&format!("admin.vm.property.Set+{prop}"), "cd", value.as_bytes());
    }
    for iso in ["first.iso", "second.iso"] {
        std::fs::write(d.state.join(iso), vec![0u8; 2048 * 16]).expect("iso");
    }
    let cdrom = format!("/api/vms/{}/cdroms/00000000-0000-0000-0000-000000000000", d.uuid("cd"));
    let http = reqwest::blocking::Client::new();
    let put = |path: &str, file: &str| {
        http.put(d.url(path))
            .basic_auth("admin@internal", Some("secret"))
            .header("Content-Type", "application/xml")
            .body(format!("<cdrom><file id=\"{file}\"/></cdrom>"))
            .send()
            .expect("PUT cdrom")
    };

    assert_eq!(put(&cdrom, "first.iso").status(), 200);
    d.ok("admin.vm.Start", "cd", b"");
    wait_marker(&d, "cd");
    let drive = cdrom_drive(&live_xml(&d, "cd"));
    assert!(drive.contains("first.iso") && drive.contains("<readonly/>"), "{drive}");

    let changed = put(&format!("{cdrom};current"), "second.iso");
    assert_eq!(changed.status(), 200, "{}", changed.text().unwrap_or_default());
    let drive = cdrom_drive(&live_xml(&d, "cd"));
    assert!(drive.contains("second.iso") && !drive.contains("first.iso"), "{drive}");

    let ejected = http.delete(d.url(&cdrom)).basic_auth("admin@internal", Some("secret")).send().expect("eject");
    assert_eq!(ejected.status(), 204, "{}", ejected.text().unwrap_or_default());
    let drive = cdrom_drive(&live_xml(&d, "cd"));
    // libvirt keeps an empty `<source index=…/>` for the empty drive.
    assert!(!drive.contains("<source file") && !drive.contains(".iso"), "{drive}");
    assert_eq!(d.err("admin.vm.feature.Get+rest.cdrom", "cd", b"").0, "QubesFeatureNotFoundError");
    d.ok("admin.vm.Kill", "cd", b"");
}

/// The `<interface>` elements of a domain XML.
fn interfaces(xml: &str) -> Vec<String> {
    xml.match_indices("<interface")
        .map(|(start, _)| {
            let end = xml[start..].find("</interface>").map_or(xml.len(), |e| start + e);
            xml[start..end].to_string()
        })
        .collect()
}

#[test]
fn a_running_guests_nic_is_hot_plugged_on_a_libvirt_network_over_http() {
    let Some((uri, assets)) = guest_env() else {
        eprintln!("SKIP: CORRAL_REAL_GUEST_URI/CORRAL_GUEST_DIR not set (tests/guest/run.sh sets them)");
        return;
    };
    let d = Daemon::start_with_uri(&uri);
    d.add_user("admin", "secret");
    let kernels = d.state.join("vm-kernels");
    std::fs::create_dir_all(&kernels).expect("kernels dir");
    std::os::unix::fs::symlink(&assets, kernels.join("tiny")).expect("kernel link");
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=tpl label=black");
    // Names of their own: the connection may be shared with other tests, and a killed qube's domain stays
    // defined there.
    let vm = format!("plug-{}", std::process::id());
    let vm = vm.as_str();
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", format!("name={vm} label=red").as_bytes());
    for (prop, value) in [("kernel", "tiny"), ("memory", "128"), ("vcpus", "1")] {
        d.ok(&format!("admin.vm.property.Set+{prop}"), vm, value.as_bytes());
    }
    let http = reqwest::blocking::Client::new();
    let send = |method: reqwest::Method, path: &str, body: &str| {
        let r = http
            .request(method, d.url(path))
            .basic_auth("admin@internal", Some("secret"))
            .header("Content-Type", "application/xml")
            .header("Accept", "application/json")
            .header("Expect", "201-created")
            .body(body.to_string())
            .send()
            .expect("request");
        (r.status().as_u16(), r.text().expect("body"))
    };
    let name = format!("corral-nic-{}", std::process::id());
    let (status, body) = send(
        reqwest::Method::POST,
        "/api/networks",
        &format!("<network><name>{name}</name><data_center><name>Default</name></data_center></network>"),
    );
    assert_eq!(status, 201, "{body}");
    let network =
        serde_json::from_str::<serde_json::Value>(&body).expect("json")["id"].as_str().expect("id").to_string();
    let nics = format!("/api/vms/{}/nics", d.uuid(vm));
    d.ok("admin.vm.Start", vm, b"");
    wait_marker(&d, vm);
    assert!(interfaces(&live_xml(&d, vm)).is_empty());

    let (added, answer) = send(reqwest::Method::POST, &nics, &format!("<nic><network id=\"{network}\"/></nic>"));

    assert_eq!(added, 201, "{answer}");
    let cards = interfaces(&live_xml(&d, vm));
    assert_eq!(cards.len(), 1, "{cards:?}");
    assert!(cards[0].contains(&format!("<source network='{name}'")), "{cards:?}");
    assert_eq!(d.ok("admin.vm.feature.Get+rest.network", vm, b""), name);
    let nic = serde_json::from_str::<serde_json::Value>(&answer).expect("json")["id"].as_str().expect("id").to_string();
    let (removed, answer) = send(reqwest::Method::DELETE, &format!("{nics}/{nic}"), "");
    assert_eq!(removed, 204, "{answer}");
    // The guest acknowledges the unplug (ACPI) in its own time.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !interfaces(&live_xml(&d, vm)).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(interfaces(&live_xml(&d, vm)).is_empty(), "{}", live_xml(&d, vm));
    d.ok("admin.vm.Kill", vm, b"");
    assert_eq!(send(reqwest::Method::DELETE, &format!("/api/networks/{network}"), "").0, 204);
}
