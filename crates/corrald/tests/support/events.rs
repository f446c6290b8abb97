//! An `admin.Events` listener on a test daemon's admin socket.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::reply::shown;
use super::{Daemon, WAIT};

/// Time for libvirt's event thread to deliver its own report of a transition a call already made, so that
/// a duplicate event would show up before the marker that ends a recorded stream.
pub const SETTLE: Duration = Duration::from_millis(300);

/// An open `admin.Events` stream.
pub struct Events {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl Events {
    /// A stream already past its `connection-established` frame (from then on the daemon forwards every
    /// change, so a test may act right away).
    pub fn open(d: &Daemon, dest: &str) -> Events {
        let mut events = Events::connect(d, dest);
        let hello = events.next_frame();
        assert_eq!(shown(&hello), shown(b"1\0\0connection-established\0\0"));
        events
    }

    /// A stream whose first frame is still to be read.
    pub fn connect(d: &Daemon, dest: &str) -> Events {
        let mut stream = UnixStream::connect(&d.admin).expect("connect");
        stream.write_all(format!("admin.Events dom0 name {dest}\0").as_bytes()).expect("send request");
        stream.shutdown(std::net::Shutdown::Write).expect("half-close");
        stream.set_read_timeout(Some(Duration::from_millis(100))).expect("read timeout");
        Events { stream, buf: Vec::new() }
    }

    /// A dom0 stream opened just before `act` runs, so that it holds everything `act` fires.
    pub fn around<R>(d: &Daemon, act: impl FnOnce() -> R) -> Events {
        let events = Events::open(d, "dom0");
        act();
        events
    }

    /// The next complete frame, raw; panics if none arrives within [`WAIT`].
    pub fn next_frame(&mut self) -> Vec<u8> {
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

    /// Whether the daemon ends the stream within `limit`; what it sent before is read and dropped.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut chunk = [0u8; 65536];
        while Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    }

    /// Frames up to and including the first one named `event`, shown for comparison.
    pub fn until(&mut self, event: &str) -> Vec<String> {
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

    /// Waits [`SETTLE`], sets feature `marker` on `vm`, and returns every frame before the marker's own
    /// events, shown for comparison.
    pub fn until_marker(&mut self, d: &Daemon, vm: &str) -> Vec<String> {
        std::thread::sleep(SETTLE);
        d.ok("admin.vm.feature.Set+marker", vm, b"1");
        let mut frames = Vec::new();
        loop {
            let frame = self.next_frame();
            if frame_name(&frame) == "domain-feature-pre-set:marker" {
                return frames;
            }
            frames.push(shown(&frame));
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

/// Expected frames, shown as [`Events::until`] shows what it read.
pub fn frames(expected: &[&[u8]]) -> Vec<String> {
    expected.iter().map(|f| shown(f)).collect()
}
