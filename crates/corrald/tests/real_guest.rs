//! A real tiny guest (Debian kernel + busybox initramfs, `tests/guest/`) run as a qube through corrald on
//! a real QEMU connection. `tests/guest/run.sh` provides the connection and the assets and sets
//! `CORRAL_REAL_GUEST_URI` and `CORRAL_GUEST_DIR`; without them this test says so and does nothing.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
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

/// Installs the tiny guest's kernel as `tiny` and makes qube `vm` (an AppVM of a template `tpl`) boot it.
fn tiny_guest(d: &Daemon, assets: &std::path::Path, vm: &str) {
    let kernels = d.state.join("vm-kernels");
    std::fs::create_dir_all(&kernels).expect("kernels dir");
    std::os::unix::fs::symlink(assets, kernels.join("tiny")).expect("kernel link");
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=tpl label=black");
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", format!("name={vm} label=red").as_bytes());
    for (prop, value) in [("kernel", "tiny"), ("memory", "128"), ("vcpus", "1")] {
        d.ok(&format!("admin.vm.property.Set+{prop}"), vm, value.as_bytes());
    }
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
    tiny_guest(&d, &assets, "guest");
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
    tiny_guest(&d, &assets, "cd");
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
    assert_eq!(d.err("admin.vm.feature.Get+corral.cdrom", "cd", b"").0, "QubesFeatureNotFoundError");
    d.ok("admin.vm.Kill", "cd", b"");
}

/// How a VNC server answered a login.
#[derive(Debug, PartialEq, Eq)]
enum Login {
    Accepted,
    /// With the server's reason.
    Refused(String),
}

fn read_u32(s: &mut TcpStream) -> u32 {
    let mut b = [0u8; 4];
    s.read_exact(&mut b).expect("read from the VNC server");
    u32::from_be_bytes(b)
}

fn read_reason(s: &mut TcpStream) -> String {
    let len = read_u32(s);
    let mut reason = vec![0u8; len.min(4096) as usize];
    s.read_exact(&mut reason).expect("read the reason");
    String::from_utf8_lossy(&reason).into_owned()
}

/// VNC authentication's answer to a challenge: each 8-byte half DES-encrypted with the password's first 8
/// bytes (zero-padded) as the key, every key byte's bits mirrored, as VNC has always done it.
fn vnc_response(password: &str, mut challenge: [u8; 16]) -> [u8; 16] {
    use des::cipher::{BlockEncrypt, KeyInit};
    let mut key = [0u8; 8];
    for (k, b) in key.iter_mut().zip(password.bytes()) {
        *k = b.reverse_bits();
    }
    let cipher = des::Des::new_from_slice(&key).expect("an 8-byte key");
    for half in challenge.chunks_exact_mut(8) {
        cipher.encrypt_block(half.into());
    }
    challenge
}

/// Logs in to the VNC server at `server` with `password`: the RFB 3.8 handshake with VNC authentication,
/// up to the SecurityResult. The server must offer VNC authentication only (no unauthenticated access).
fn vnc_login(server: SocketAddr, password: &str) -> Login {
    let mut s = TcpStream::connect_timeout(&server, Duration::from_secs(10)).expect("connect to the VNC server");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut version = [0u8; 12];
    s.read_exact(&mut version).expect("ProtocolVersion");
    assert_eq!(&version, b"RFB 003.008\n", "{}", String::from_utf8_lossy(&version));
    s.write_all(b"RFB 003.008\n").expect("send ProtocolVersion");
    let mut count = [0u8; 1];
    s.read_exact(&mut count).expect("number of security types");
    if count[0] == 0 {
        panic!("the VNC server refused the connection: {}", read_reason(&mut s));
    }
    let mut types = vec![0u8; usize::from(count[0])];
    s.read_exact(&mut types).expect("security types");
    assert_eq!(types, [2], "security types offered (2 = VNC authentication, 1 = none)");
    s.write_all(&[2]).expect("choose VNC authentication");
    let mut challenge = [0u8; 16];
    s.read_exact(&mut challenge).expect("challenge");
    s.write_all(&vnc_response(password, challenge)).expect("send the response");
    match read_u32(&mut s) {
        0 => Login::Accepted,
        _ => Login::Refused(read_reason(&mut s)),
    }
}

/// The secure domain XML (passwords shown) of a qube's domain, through virthttp.
fn secure_xml(d: &Daemon, vm: &str) -> String {
    let r = reqwest::blocking::Client::new()
        .get(d.url(&format!("/libvirt/domains/by-name/{vm}/xml_desc?options=secure")))
        .basic_auth("admin", Some("secret"))
        .send()
        .expect("xml_desc");
    let v: serde_json::Value = r.json().expect("envelope");
    v["results"][0].as_str().unwrap_or_else(|| panic!("no XML: {v}")).to_string()
}

/// Attribute `name` of the `<graphics>` element of a domain XML.
fn graphics_attr(xml: &str, name: &str) -> String {
    let graphics = xml.split("<graphics ").nth(1).unwrap_or_else(|| panic!("no graphics: {xml}"));
    let graphics = graphics.split('>').next().unwrap_or_default();
    let value = graphics.split(&format!(" {name}='")).nth(1).unwrap_or_else(|| panic!("no {name}: {graphics}"));
    value.split('\'').next().unwrap_or_default().to_string()
}

/// The address of a vm's console as its `<display>` shows it, and the whole display.
fn display(d: &Daemon, id: &str) -> (Option<SocketAddr>, String) {
    let body = reqwest::blocking::Client::new()
        .get(d.url(&format!("/api/vms/{id}")))
        .basic_auth("admin@internal", Some("secret"))
        .send()
        .and_then(|r| r.text())
        .expect("GET vm");
    let doc = roxmltree::Document::parse(&body).expect("vm XML");
    let display = doc.descendants().find(|n| n.has_tag_name("display")).unwrap_or_else(|| panic!("{body}"));
    let leaf = |name: &str| display.children().find(|n| n.has_tag_name(name)).and_then(|n| n.text());
    let address = leaf("address").map(|a| a.parse::<IpAddr>().expect("an IP address"));
    let port = leaf("port").map(|p| p.parse::<u16>().expect("a port"));
    let text = body[display.range()].to_string();
    (address.zip(port).map(SocketAddr::from), text)
}

/// Posts a ticket action; the status and the answered ticket value.
fn ticket(d: &Daemon, id: &str, body: &str) -> (u16, Option<String>) {
    let r = reqwest::blocking::Client::new()
        .post(d.url(&format!("/api/vms/{id}/ticket")))
        .basic_auth("admin@internal", Some("secret"))
        .header("Content-Type", "application/xml")
        .body(body.to_string())
        .send()
        .expect("POST ticket");
    let status = r.status().as_u16();
    let body = r.text().expect("body");
    let value = roxmltree::Document::parse(&body)
        .ok()
        .and_then(|doc| doc.descendants().find(|n| n.has_tag_name("value")).and_then(|n| n.text()).map(String::from));
    (status, value)
}

#[test]
fn a_running_guests_vnc_console_opens_with_its_ticket_only_until_it_expires() {
    let Some((uri, assets)) = guest_env() else {
        eprintln!("SKIP: CORRAL_REAL_GUEST_URI/CORRAL_GUEST_DIR not set (tests/guest/run.sh sets them)");
        return;
    };
    let mut d = Daemon::start_with_uri(&uri);
    d.add_user("admin", "secret");
    tiny_guest(&d, &assets, "vnc");
    let id = d.uuid("vnc");
    assert_eq!(ticket(&d, &id, "<action/>").0, 409, "a halted vm has no console");
    assert_eq!(display(&d, &id).0, None);

    d.ok("admin.vm.Start", "vnc", b"");
    let (server, shown) = display(&d, &id);
    let server = server.unwrap_or_else(|| panic!("no console address: {shown}"));
    assert_eq!(server.ip().to_string(), "127.0.0.1", "{shown}");
    assert_eq!(server.port().to_string(), graphics_attr(&live_xml(&d, "vnc"), "port"), "the port libvirt picked");
    assert!(!shown.contains("secure_port"), "{shown}");

    // Before any ticket even the password the domain was defined with is refused: it expired in 1970.
    let locked = graphics_attr(&secure_xml(&d, "vnc"), "passwd");
    assert!(matches!(vnc_login(server, &locked), Login::Refused(_)));

    let (status, made_up) = ticket(&d, &id, "<action><ticket><expiry>1</expiry></ticket></action>");
    assert_eq!(status, 200);
    let made_up = made_up.expect("a ticket value");
    assert_eq!(made_up.len(), 8, "{made_up}");
    assert_eq!(vnc_login(server, &made_up), Login::Accepted);
    assert!(matches!(vnc_login(server, "wrong"), Login::Refused(_)));

    // A given value longer than VNC's 8 characters: a VNC client sends its first 8, and they open the console.
    let given = "oVirt-ticket-0042";
    let body = format!("<action><ticket><value>{given}</value><expiry>1</expiry></ticket></action>");
    let issued = Instant::now();
    assert_eq!(ticket(&d, &id, &body), (200, Some(given.to_string())));
    assert_eq!(vnc_login(server, given), Login::Accepted);
    assert!(matches!(vnc_login(server, &made_up), Login::Refused(_)), "the new ticket replaces the old one");

    // A restarted daemon finds the console where it was.
    d.kill9();
    d.spawn();
    assert_eq!(display(&d, &id).0, Some(server));

    std::thread::sleep((issued + Duration::from_secs(62)).saturating_duration_since(Instant::now()));
    match vnc_login(server, given) {
        Login::Refused(reason) => eprintln!("an expired ticket is refused: {reason}"),
        Login::Accepted => panic!("the ticket outlived its expiry"),
    }
    d.ok("admin.vm.Kill", "vnc", b"");
}

/// What the console log holds that `before` (its content at an earlier moment) did not: the log restarts
/// empty when a new QEMU opens it, and grows while the same one runs.
fn console_since(d: &Daemon, vm: &str, before: &str) -> String {
    let now = std::fs::read_to_string(d.state.join("logs").join(format!("{vm}.console"))).unwrap_or_default();
    now.strip_prefix(before).unwrap_or(&now).to_string()
}

#[test]
fn a_suspended_guest_is_saved_to_disk_and_resumes_where_it_was() {
    let Some((uri, assets)) = guest_env() else {
        eprintln!("SKIP: CORRAL_REAL_GUEST_URI/CORRAL_GUEST_DIR not set (tests/guest/run.sh sets them)");
        return;
    };
    let mut d = Daemon::start_with_uri(&uri);
    d.add_user("admin", "secret");
    tiny_guest(&d, &assets, "saver");
    let http = reqwest::blocking::Client::new();
    let action = |d: &Daemon, name: &str| {
        let r = http
            .post(d.url(&format!("/api/vms/{}/{name}", d.uuid("saver"))))
            .basic_auth("admin@internal", Some("secret"))
            .header("Content-Type", "application/xml")
            .body("<action/>")
            .send()
            .expect("action");
        (r.status().as_u16(), r.text().unwrap_or_default())
    };
    // libvirt's state with its reason, and whether it holds a saved image.
    let libvirt_state = || {
        let virsh = |args: &[&str]| {
            let out = std::process::Command::new("virsh").args(["-c", &uri]).args(args).output().expect("virsh");
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        let info = virsh(&["dominfo", "saver"]);
        let saved = info.lines().find_map(|l| l.strip_prefix("Managed save:")).unwrap_or_default().trim().to_string();
        format!("{}, managed save: {saved}", virsh(&["domstate", "saver", "--reason"]).trim())
    };

    d.ok("admin.vm.Start", "saver", b"");
    let booted = wait_marker(&d, "saver");
    let console = console_since(&d, "saver", "");

    let (status, body) = action(&d, "suspend");
    assert_eq!(status, 200, "{body}");
    assert!(d.ok("admin.vm.CurrentState", "saver", b"").ends_with("power_state=Suspended"));
    assert_eq!(libvirt_state(), "shut off (saved), managed save: yes");
    // The saved state is libvirt's: a restarted daemon finds it.
    d.kill9();
    d.spawn();
    assert!(d.ok("admin.vm.List", "saver", b"").contains("state=Suspended"), "after restart");

    let (status, body) = action(&d, "start");
    assert_eq!(status, 200, "{body}");
    assert!(d.ok("admin.vm.CurrentState", "saver", b"").ends_with("power_state=Running"));
    assert!(libvirt_state().starts_with("running (restored"), "{}", libvirt_state());
    // A guest that boots again prints the kernel's banner and the marker within about `booted`; the restored
    // one goes on from where it was and prints neither.
    std::thread::sleep((booted * 2).max(Duration::from_secs(5)));
    let since = console_since(&d, "saver", &console);
    assert!(!since.contains(MARKER) && !since.contains("Linux version"), "the guest booted again: {since}");
    // Its acpid still runs: the power button powers it off.
    d.ok("admin.vm.Shutdown+wait", "saver", b"");
    assert!(d.ok("admin.vm.CurrentState", "saver", b"").ends_with("power_state=Halted"));

    // Stop discards a saved state: the next start boots afresh.
    d.ok("admin.vm.Start", "saver", b"");
    wait_marker(&d, "saver");
    assert_eq!(action(&d, "suspend").0, 200);
    assert_eq!(action(&d, "stop").0, 200);
    let after_stop = libvirt_state();
    assert!(after_stop.starts_with("shut off") && after_stop.ends_with("managed save: no"), "{after_stop}");
    assert!(d.ok("admin.vm.CurrentState", "saver", b"").ends_with("power_state=Halted"));
    d.ok("admin.vm.Start", "saver", b"");
    wait_marker(&d, "saver");
    d.ok("admin.vm.Kill", "saver", b"");
    // Removing the qube drops its libvirt domain: a later run defines `saver` with another uuid.
    d.ok("admin.vm.Remove", "saver", b"");
    let listed = std::process::Command::new("virsh").args(["-c", &uri, "list", "--all", "--name"]).output();
    let listed = String::from_utf8_lossy(&listed.expect("virsh").stdout).to_string();
    assert!(!listed.lines().any(|l| l == "saver"), "{listed}");
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
    // Names of their own: the connection may be shared with other tests.
    let vm = format!("plug-{}", std::process::id());
    let vm = vm.as_str();
    tiny_guest(&d, &assets, vm);
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
    assert_eq!(d.ok("admin.vm.feature.Get+corral.network", vm, b""), name);
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
