//! admin.vm.CreateDisposable and the admin.vm.Stats stream, on libvirt's test driver.

mod support;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use support::Daemon;

/// A daemon with a template, an AppVM `dvm` that may be a disposable base, and `work` using it.
fn with_dvm() -> Daemon {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=dvm label=blue");
    d.ok("admin.vm.property.Set+template_for_dispvms", "dvm", b"True");
    d.ok("admin.vm.feature.Set+gui", "dvm", b"1");
    d.ok("admin.vm.tag.Set+keep-me", "dvm", b"");
    d.ok("admin.vm.property.Set+default_dispvm", "work", b"dvm");
    d
}

#[test]
fn create_disposable_returns_its_name() {
    let d = with_dvm();

    let name = d.ok("admin.vm.CreateDisposable", "dvm", b"");

    assert!(name.starts_with("disp") && name[4..].parse::<u32>().is_ok(), "{name}");
    assert!(d.ok("admin.vm.List", "dom0", b"").contains(&format!("{name} class=DispVM state=Halted")));
}

#[test]
fn create_disposable_with_uuid_payload_returns_43_bytes() {
    let d = with_dvm();

    let reply = d.call("admin.vm.CreateDisposable", "dvm", b"uuid");

    assert_eq!(reply.len(), 43, "{}", String::from_utf8_lossy(&reply));
    assert!(reply.starts_with(b"0\0uuid:"));
    let token = String::from_utf8_lossy(&reply[2..]).into_owned();
    assert!(d.ok("admin.vm.List", &token, b"").contains("class=DispVM"));
}

#[test]
fn disposable_copies_label_features_and_tags_and_cleans_up() {
    let d = with_dvm();

    let name = d.ok("admin.vm.CreateDisposable", "dvm", b"");

    assert_eq!(d.ok("admin.vm.property.Get+label", &name, b""), "default=False type=label blue");
    assert_eq!(d.ok("admin.vm.property.Get+template", &name, b""), "default=False type=vm dvm");
    assert_eq!(d.ok("admin.vm.property.Get+auto_cleanup", &name, b""), "default=False type=bool True");
    assert_eq!(d.ok("admin.vm.feature.Get+gui", &name, b""), "1");
    let tags = d.ok("admin.vm.tag.List", &name, b"");
    assert!(tags.contains("keep-me\n") && tags.contains("disp-created-by-dom0\n"), "{tags}");
}

#[test]
fn create_disposable_to_dom0_uses_the_callers_default_dispvm() {
    let d = with_dvm();
    let header = b"admin.vm.CreateDisposable work name dom0\0";

    let reply = support::raw(&d.admin, header, b"");

    let name = String::from_utf8_lossy(&reply[2..]).into_owned();
    assert!(reply.starts_with(b"0\0disp"), "{name}");
    assert_eq!(d.ok("admin.vm.property.Get+template", &name, b""), "default=False type=vm dvm");
}

#[test]
fn create_disposable_from_a_non_base_is_refused() {
    let d = with_dvm();

    let (kind, message) = d.err("admin.vm.CreateDisposable", "work", b"");

    assert_eq!(kind, "QubesException");
    assert!(message.contains("template_for_dispvms=False"), "{message}");
}

#[test]
fn create_disposable_with_other_payload_is_protocol_error() {
    let d = with_dvm();

    assert_eq!(d.err("admin.vm.CreateDisposable", "dvm", b"name").0, "ProtocolError");
}

#[test]
fn create_disposable_with_unknown_argument_is_permission_denied() {
    let d = with_dvm();

    assert_eq!(d.err("admin.vm.CreateDisposable+other", "dvm", b"").0, "PermissionDenied");
}

#[test]
fn stats_stream_reports_running_qubes() {
    let d = with_dvm();
    d.ok("admin.property.Set+stats_interval", "dom0", b"1");
    d.ok("admin.vm.Start", "work", b"");
    let mut s = UnixStream::connect(&d.admin).expect("connect");
    std::io::Write::write_all(&mut s, b"admin.vm.Stats dom0 name work\0").expect("send");
    s.shutdown(std::net::Shutdown::Write).expect("half-close");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");

    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("online_vcpus") {
        let n = s.read(&mut chunk).expect("stats frame within 5 s");
        assert!(n > 0, "stream closed");
        got.extend_from_slice(&chunk[..n]);
    }

    let text = String::from_utf8_lossy(&got);
    assert!(got.starts_with(b"1\0\0connection-established\0\0"), "{text:?}");
    assert!(text.contains("1\0work\0vm-stats\0memory_kb\0"), "{text:?}");
    assert!(text.contains("\0cpu_usage\0") && text.contains("\0online_vcpus\0"), "{text:?}");
}

#[test]
fn memory_of_a_running_qube_changes_live_and_is_stored() {
    let d = with_dvm();
    d.ok("admin.vm.Start", "work", b"");

    d.ok("admin.vm.property.Set+memory", "work", b"300");

    assert_eq!(d.ok("admin.vm.property.Get+memory", "work", b""), "default=False type=int 300");
    assert!(d.ok("admin.vm.CurrentState", "work", b"").starts_with("mem=307200 "));
}
