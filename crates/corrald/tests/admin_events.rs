//! Black-box tests of `admin.Events` over the daemon's real admin socket: the exact frames a listener
//! receives for each kind of change, and which listener receives them.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use support::Daemon;

/// How long any wait for a frame may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// An open `admin.Events` stream, already past its `connection-established` frame (from then on the
/// daemon forwards every change, so a test may act right away).
struct Events {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl Events {
    fn open(d: &Daemon, dest: &str) -> Events {
        let mut events = Events::connect(d, dest);
        let hello = events.next_frame();
        assert_eq!(shown(&hello), shown(b"1\0\0connection-established\0\0"));
        events
    }

    fn connect(d: &Daemon, dest: &str) -> Events {
        let mut stream = UnixStream::connect(&d.admin).expect("connect");
        stream.write_all(format!("admin.Events dom0 name {dest}\0").as_bytes()).expect("send request");
        stream.shutdown(std::net::Shutdown::Write).expect("half-close");
        stream.set_read_timeout(Some(Duration::from_millis(100))).expect("read timeout");
        Events { stream, buf: Vec::new() }
    }

    /// The next complete frame, raw; panics if none arrives within [`WAIT`].
    fn next_frame(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(len) = frame_len(&self.buf) {
                return self.buf.drain(..len).collect();
            }
            assert!(Instant::now() < deadline, "no complete frame within {WAIT:?}; have {}", shown(&self.buf));
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("stream closed; have {}", shown(&self.buf)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Frames up to and including the first one named `event`, shown for comparison.
    fn until(&mut self, event: &str) -> Vec<String> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next_frame();
            let name = frame_name(&frame);
            frames.push(shown(&frame));
            if name == event {
                return frames;
            }
        }
    }
}

/// Length of the first complete `1\0subject\0event\0(key\0value\0)*\0` frame in `buf`, if there is one.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    let mut field = || {
        let end = pos + buf.get(pos..)?.iter().position(|b| *b == 0)?;
        let f = &buf[pos..end];
        pos = end + 1;
        Some(f)
    };
    assert_eq!(field()?, b"1", "not an event frame: {}", shown(buf));
    field()?; // subject
    field()?; // event name
    while !field()?.is_empty() {
        field()?; // value
    }
    Some(pos)
}

fn frame_name(frame: &[u8]) -> String {
    let name = frame.split(|b| *b == 0).nth(2).unwrap_or_default();
    String::from_utf8_lossy(name).into_owned()
}

fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).escape_default().to_string()
}

fn frames(expected: &[&[u8]]) -> Vec<String> {
    expected.iter().map(|f| shown(f)).collect()
}

fn with_template() -> Daemon {
    let d = Daemon::start();
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=tpl label=red");
    d
}

// ---------------------------------------------------------------------------------------------------------

#[test]
fn stream_starts_with_connection_established() {
    let d = Daemon::start();
    let mut events = Events::connect(&d, "dom0");

    let first = events.next_frame();

    assert_eq!(shown(&first), shown(b"1\0\0connection-established\0\0"));
}

#[test]
fn stream_for_a_qube_starts_with_connection_established() {
    let d = with_template();
    let mut events = Events::connect(&d, "tpl");

    let first = events.next_frame();

    assert_eq!(shown(&first), shown(b"1\0\0connection-established\0\0"));
}

#[test]
fn stream_for_unknown_qube_is_vm_not_found() {
    let d = Daemon::start();

    let reply = d.call("admin.Events", "nope", b"");

    assert_eq!(shown(&reply), shown(b"2\0QubesVMNotFoundError\0\0No such domain: 'nope'\0"));
}

#[test]
fn stream_with_argument_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.Events+x", "dom0", b"");

    assert_eq!(shown(&reply), shown(b"2\0ProtocolError\0\0unexpected argument\0"));
}

#[test]
fn create_fires_domain_add_then_created_by_tag_then_create_on_disk() {
    let d = Daemon::start();
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=tpl label=red");

    let seen = events.until("domain-create-on-disk");

    assert_eq!(
        seen,
        frames(&[
            b"1\0\0domain-add\0vm\0tpl\0\0",
            b"1\0tpl\0domain-tag-add:created-by-dom0\0tag\0created-by-dom0\0\0",
            b"1\0tpl\0domain-create-on-disk\0\0",
        ])
    );
}

#[test]
fn property_set_fires_pre_set_and_set_with_old_value() {
    let d = with_template();
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.property.Set+memory", "tpl", b"800");

    let seen = events.until("property-set:memory");

    assert_eq!(
        seen,
        frames(&[
            b"1\0tpl\0property-pre-set:memory\0name\0memory\0newvalue\x00800\0oldvalue\x00400\0\0",
            b"1\0tpl\0property-set:memory\0name\0memory\0newvalue\x00800\0oldvalue\x00400\0\0",
        ])
    );
}

#[test]
fn property_set_to_none_shows_none() {
    let d = with_template();
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.property.Set+netvm", "tpl", b"");

    let seen = events.until("property-set:netvm");

    assert_eq!(
        seen,
        frames(&[
            b"1\0tpl\0property-pre-set:netvm\0name\0netvm\0newvalue\0None\0oldvalue\0None\0\0",
            b"1\0tpl\0property-set:netvm\0name\0netvm\0newvalue\0None\0oldvalue\0None\0\0",
        ])
    );
}

#[test]
fn feature_set_fires_pre_set_and_set() {
    let d = with_template();
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.feature.Set+gui", "tpl", b"1");

    let seen = events.until("domain-feature-set:gui");

    assert_eq!(
        seen,
        frames(&[
            b"1\0tpl\0domain-feature-pre-set:gui\0feature\0gui\0value\x001\0\0",
            b"1\0tpl\0domain-feature-set:gui\0feature\0gui\0value\x001\0\0",
        ])
    );
}

#[test]
fn feature_set_again_adds_the_old_value() {
    let d = with_template();
    d.ok("admin.vm.feature.Set+gui", "tpl", b"1");
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.feature.Set+gui", "tpl", b"");

    let seen = events.until("domain-feature-set:gui");

    assert_eq!(
        seen,
        frames(&[
            b"1\0tpl\0domain-feature-pre-set:gui\0feature\0gui\0value\0\0oldvalue\x001\0\0",
            b"1\0tpl\0domain-feature-set:gui\0feature\0gui\0value\0\0oldvalue\x001\0\0",
        ])
    );
}

#[test]
fn feature_remove_fires_pre_delete_and_delete() {
    let d = with_template();
    d.ok("admin.vm.feature.Set+gui", "tpl", b"1");
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.feature.Remove+gui", "tpl", b"");

    let seen = events.until("domain-feature-delete:gui");

    assert_eq!(
        seen,
        frames(&[
            b"1\0tpl\0domain-feature-pre-delete:gui\0feature\0gui\0\0",
            b"1\0tpl\0domain-feature-delete:gui\0feature\0gui\0\0",
        ])
    );
}

#[test]
fn tag_set_fires_tag_add() {
    let d = with_template();
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.tag.Set+backup", "tpl", b"");

    let seen = events.until("domain-tag-add:backup");

    assert_eq!(seen, frames(&[b"1\0tpl\0domain-tag-add:backup\0tag\0backup\0\0"]));
}

#[test]
fn tag_set_of_present_tag_fires_nothing() {
    let d = with_template();
    d.ok("admin.vm.tag.Set+backup", "tpl", b"");
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.tag.Set+backup", "tpl", b"");
    d.ok("admin.vm.tag.Set+marker", "tpl", b"");

    let seen = events.until("domain-tag-add:marker");

    assert_eq!(seen, frames(&[b"1\0tpl\0domain-tag-add:marker\0tag\0marker\0\0"]));
}

#[test]
fn tag_remove_fires_tag_delete() {
    let d = with_template();
    d.ok("admin.vm.tag.Set+backup", "tpl", b"");
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.tag.Remove+backup", "tpl", b"");

    let seen = events.until("domain-tag-delete:backup");

    assert_eq!(seen, frames(&[b"1\0tpl\0domain-tag-delete:backup\0tag\0backup\0\0"]));
}

#[test]
fn remove_fires_pre_delete_and_delete_as_global_events() {
    let d = with_template();
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.Remove", "tpl", b"");

    let seen = events.until("domain-delete");

    assert_eq!(seen, frames(&[b"1\0\0domain-pre-delete\0vm\0tpl\0\0", b"1\0\0domain-delete\0vm\0tpl\0\0"]));
}

#[test]
fn global_property_set_has_empty_subject() {
    let d = Daemon::start();
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.property.Set+default_qrexec_timeout", "dom0", b"90");

    let seen = events.until("property-set:default_qrexec_timeout");

    assert_eq!(
        seen,
        frames(&[
            b"1\0\0property-pre-set:default_qrexec_timeout\0name\0default_qrexec_timeout\0newvalue\x0090\0oldvalue\x0060\0\0",
            b"1\0\0property-set:default_qrexec_timeout\0name\0default_qrexec_timeout\0newvalue\x0090\0oldvalue\x0060\0\0",
        ])
    );
}

#[test]
fn firewall_set_fires_firewall_changed() {
    let d = with_template();
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.firewall.Set", "tpl", b"action=drop\n");

    let seen = events.until("firewall-changed");

    assert_eq!(seen, frames(&[b"1\0tpl\0firewall-changed\0\0"]));
}

#[test]
fn firewall_reload_fires_firewall_changed() {
    let d = with_template();
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.firewall.Reload", "tpl", b"");

    let seen = events.until("firewall-changed");

    assert_eq!(seen, frames(&[b"1\0tpl\0firewall-changed\0\0"]));
}

#[test]
fn firewall_set_refused_fires_nothing() {
    let d = with_template();
    let mut events = Events::open(&d, "dom0");
    d.call("admin.vm.firewall.Set", "tpl", b"proto=tcp\n");
    d.ok("admin.vm.tag.Set+marker", "tpl", b"");

    let seen = events.until("domain-tag-add:marker");

    assert_eq!(seen, frames(&[b"1\0tpl\0domain-tag-add:marker\0tag\0marker\0\0"]));
}

#[test]
fn pool_add_fires_pool_add() {
    let d = Daemon::start();
    let dir = d.dir.path().join("pool1");
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.pool.Add+file", "dom0", format!("name=pool1\ndir_path={}\n", dir.display()).as_bytes());

    let seen = events.until("pool-add");

    assert_eq!(seen, frames(&[b"1\0\0pool-add\0pool\0pool1\0\0"]));
}

#[test]
fn pool_remove_fires_pre_delete_and_delete() {
    let d = Daemon::start();
    let dir = d.dir.path().join("pool1");
    d.ok("admin.pool.Add+file", "dom0", format!("name=pool1\ndir_path={}\n", dir.display()).as_bytes());
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.pool.Remove+pool1", "dom0", b"");

    let seen = events.until("pool-delete");

    assert_eq!(seen, frames(&[b"1\0\0pool-pre-delete\0pool\0pool1\0\0", b"1\0\0pool-delete\0pool\0pool1\0\0"]));
}

#[test]
fn volume_clear_fires_import_begin_and_end() {
    let d = with_template();
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.volume.Clear+private", "tpl", b"");

    let seen = events.until("domain-volume-import-end");

    assert_eq!(
        seen,
        frames(&[
            b"1\0tpl\0domain-volume-import-begin\0volume\0private\0size\x002147483648\0\0",
            b"1\0tpl\0domain-volume-import-end\0volume\0private\0success\0True\0\0",
        ])
    );
}

#[test]
fn volume_import_fires_import_begin_and_end() {
    let d = with_template();
    let mut events = Events::open(&d, "dom0");
    d.call_internal("internal.vm.volume.ImportBegin+private", "tpl", b"512");
    d.call_internal("internal.vm.volume.ImportEnd+private", "tpl", b"fail\nno data");

    let seen = events.until("domain-volume-import-end");

    assert_eq!(
        seen,
        frames(&[
            b"1\0tpl\0domain-volume-import-begin\0volume\0private\0size\x00512\0\0",
            b"1\0tpl\0domain-volume-import-end\0volume\0private\0success\0False\0\0",
        ])
    );
}

#[test]
fn volume_clone_to_fires_import_volume() {
    let d = with_template();
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=copy label=red");
    let token = d.ok("admin.vm.volume.CloneFrom+private", "tpl", b"");
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.volume.CloneTo+private", "copy", token.as_bytes());

    let seen = events.until("domain-import-volume");

    assert_eq!(seen, frames(&[b"1\0copy\0domain-import-volume\0name\0private\0source\0vm-templates/tpl/private\0\0"]));
}

#[test]
fn stream_for_a_qube_sees_only_that_qubes_events() {
    let d = with_template();
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=other label=red");
    let mut events = Events::open(&d, "tpl");
    d.ok("admin.vm.property.Set+memory", "other", b"700");
    d.ok("admin.property.Set+default_qrexec_timeout", "dom0", b"90");
    d.ok("admin.vm.tag.Set+marker", "other", b"");
    d.ok("admin.vm.tag.Set+marker", "tpl", b"");

    let seen = events.until("domain-tag-add:marker");

    assert_eq!(seen, frames(&[b"1\0tpl\0domain-tag-add:marker\0tag\0marker\0\0"]));
}

#[test]
fn stream_for_dom0_sees_qubes_created_after_it_opened() {
    let d = Daemon::start();
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=tpl label=red");
    d.ok("admin.vm.tag.Set+marker", "tpl", b"");

    let seen = events.until("domain-tag-add:marker");

    assert_eq!(
        seen,
        frames(&[
            b"1\0\0domain-add\0vm\0tpl\0\0",
            b"1\0tpl\0domain-tag-add:created-by-dom0\0tag\0created-by-dom0\0\0",
            b"1\0tpl\0domain-create-on-disk\0\0",
            b"1\0tpl\0domain-tag-add:marker\0tag\0marker\0\0",
        ])
    );
}

#[test]
fn every_listener_receives_the_same_frames() {
    let d = with_template();
    let mut first = Events::open(&d, "dom0");
    let mut second = Events::open(&d, "dom0");
    d.ok("admin.vm.tag.Set+marker", "tpl", b"");

    let seen = (first.until("domain-tag-add:marker"), second.until("domain-tag-add:marker"));

    let expected = frames(&[b"1\0tpl\0domain-tag-add:marker\0tag\0marker\0\0"]);
    assert_eq!(seen, (expected.clone(), expected));
}
