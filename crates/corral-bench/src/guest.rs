//! What the real-guest benchmarks (`start`, `events`) share: figures, power states through the Admin
//! API, `admin.Events` subscribers on threads of their own, and `setup-guest`, which prepares a tiny
//! guest (`tests/guest/`) as a qube the way `crates/corrald/tests/real_guest.rs` does.

use std::io::{self, Read};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::{AdminClient, Out};

// ---------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A sorted sample of milliseconds with nearest-rank percentiles.
pub(crate) struct Stats {
    sorted: Vec<f64>,
}

impl Stats {
    pub(crate) fn new(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        Stats { sorted: v }
    }

    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Percentile `p` (0–100), nearest rank; `None` for an empty sample.
    pub(crate) fn pct(&self, p: f64) -> Option<f64> {
        if self.sorted.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        Some(self.sorted[rank.clamp(1, self.sorted.len()) - 1])
    }

    pub(crate) fn min(&self) -> Option<f64> {
        self.sorted.first().copied()
    }

    pub(crate) fn max(&self) -> Option<f64> {
        self.sorted.last().copied()
    }

    pub(crate) fn median(&self) -> Option<f64> {
        self.pct(50.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Power states through the Admin API
// ---------------------------------------------------------------------------------------------

impl AdminClient {
    /// The `power_state=` of `admin.vm.CurrentState`.
    pub(crate) fn power_state(&mut self, vm: &str) -> Result<String> {
        let reply = self.call("admin.vm.CurrentState", None, vm, b"")?;
        reply
            .split(' ')
            .find_map(|kv| kv.strip_prefix("power_state="))
            .map(str::to_owned)
            .with_context(|| format!("no power_state in the CurrentState of {vm}: {reply:?}"))
    }

    /// Polls `CurrentState` (every 10 ms) until it says `want`.
    pub(crate) fn wait_power(&mut self, vm: &str, want: &str, limit: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            let state = self.power_state(vm)?;
            if state == want {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                bail!("{vm} is {state}, not {want}, after {limit:?}");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// admin.Events subscribers
// ---------------------------------------------------------------------------------------------

/// What a subscriber thread reports. `phase` tells subscribers of successive batches apart.
pub(crate) enum Msg {
    /// `connection-established` arrived: the stream is live.
    Ready { phase: u32 },
    /// An event whose subject is the watched qube; `at` is when the read that brought it returned.
    Event { phase: u32, sub: usize, name: String, at: Instant },
    /// The stream ended (EOF, IO error, an exception, unparseable bytes).
    Closed { phase: u32, sub: usize, why: String },
    /// A libvirt lifecycle event seen on the bench's own libvirt connection (`events` only).
    Libvirt { suspended: bool, at: Instant },
}

/// One parsed piece of an `admin.Events` stream.
enum Frame<'a> {
    Event { subject: &'a [u8], name: &'a [u8] },
    Exception(String),
}

/// The bytes up to the next NUL at or after `pos`, and the position after that NUL.
fn field(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rel = buf.get(pos..)?.iter().position(|&b| b == 0)?;
    Some((&buf[pos..pos + rel], pos + rel + 1))
}

/// The first complete frame of `buf` and its length: `1\0subject\0event\0(k\0v\0)*\0` for an event,
/// `2\0type\0traceback\0message\0` for an exception. `Ok(None)` while the frame is incomplete;
/// `Err` when the bytes cannot be the start of a frame.
fn next_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, String> {
    let Some((kind, p)) = field(buf, 0) else {
        return if buf.len() > 2 && buf[0] != b'1' && buf[0] != b'2' {
            Err(format!("unexpected bytes {:?}", buf[..buf.len().min(40)].escape_ascii().to_string()))
        } else {
            Ok(None)
        };
    };
    match kind {
        b"1" => {
            let Some((subject, p)) = field(buf, p) else { return Ok(None) };
            let Some((name, mut p)) = field(buf, p) else { return Ok(None) };
            loop {
                let Some((key, next)) = field(buf, p) else { return Ok(None) };
                if key.is_empty() {
                    return Ok(Some((Frame::Event { subject, name }, next)));
                }
                let Some((_value, next)) = field(buf, next) else { return Ok(None) };
                p = next;
            }
        }
        b"2" => {
            let Some((ty, p)) = field(buf, p) else { return Ok(None) };
            let Some((_tb, p)) = field(buf, p) else { return Ok(None) };
            let Some((msg, p)) = field(buf, p) else { return Ok(None) };
            let text = format!("{}: {}", String::from_utf8_lossy(ty), String::from_utf8_lossy(msg));
            Ok(Some((Frame::Exception(text), p)))
        }
        other => Err(format!("unexpected frame type {:?}", other.escape_ascii().to_string())),
    }
}

/// An `admin.Events` stream (destination dom0: every event) read on a thread of its own, which
/// forwards `connection-established` and the events of one qube.
pub(crate) struct Subscriber {
    stream: UnixStream,
    handle: JoinHandle<()>,
}

impl Subscriber {
    pub(crate) fn open(socket: &Path, vm: &str, phase: u32, sub: usize, tx: Sender<Msg>) -> Result<Subscriber> {
        let mut s = UnixStream::connect(socket).with_context(|| format!("connecting to {}", socket.display()))?;
        io::Write::write_all(&mut s, b"admin.Events dom0 name dom0\0").context("sending admin.Events")?;
        s.shutdown(Shutdown::Write).context("half-closing admin.Events")?;
        let stream = s.try_clone().context("cloning the events stream")?;
        let vm = vm.as_bytes().to_vec();
        let handle = thread::Builder::new()
            .name(format!("sub-{sub}"))
            .spawn(move || read_events(s, &vm, phase, sub, &tx))
            .context("spawning a subscriber thread")?;
        Ok(Subscriber { stream, handle })
    }

    /// Ends the stream and waits for its thread.
    pub(crate) fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        let _ = self.handle.join();
    }
}

fn read_events(mut s: UnixStream, vm: &[u8], phase: u32, sub: usize, tx: &Sender<Msg>) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let why = loop {
        let n = match s.read(&mut chunk) {
            Ok(0) => break "end of stream".to_owned(),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break format!("read error: {e}"),
        };
        let at = Instant::now();
        buf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        let failure = loop {
            match next_frame(&buf[used..]) {
                Ok(Some((Frame::Event { subject, name }, len))) => {
                    used += len;
                    let msg = if subject.is_empty() && name == b"connection-established" {
                        Msg::Ready { phase }
                    } else if subject == vm {
                        Msg::Event { phase, sub, name: String::from_utf8_lossy(name).into_owned(), at }
                    } else {
                        continue;
                    };
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
                Ok(Some((Frame::Exception(text), _))) => break Some(format!("exception: {text}")),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        if let Some(why) = failure {
            break why;
        }
        buf.drain(..used);
    };
    let _ = tx.send(Msg::Closed { phase, sub, why });
}

// ---------------------------------------------------------------------------------------------
// setup-guest
// ---------------------------------------------------------------------------------------------

#[derive(Args)]
pub(crate) struct SetupArgs {
    /// Path of corrald's Admin API UNIX socket.
    #[arg(long)]
    socket: PathBuf,
    /// corrald's state directory (the kernel goes to `<state-dir>/vm-kernels/<kernel>`).
    #[arg(long)]
    state_dir: PathBuf,
    /// Directory with `vmlinuz` and `initramfs` (`tests/guest/build-assets.sh`).
    #[arg(long)]
    assets: PathBuf,
    /// Name of the AppVM to create.
    #[arg(long)]
    vm: String,
    /// Name of its TemplateVM (default `<vm>-tpl`).
    #[arg(long)]
    template: Option<String>,
    /// Kernel name in the linux-kernel pool.
    #[arg(long, default_value = "tiny")]
    kernel: String,
    /// Memory of the qube, MiB.
    #[arg(long, default_value_t = 128)]
    memory: u32,
    /// vCPUs of the qube.
    #[arg(long, default_value_t = 1)]
    vcpus: u32,
}

/// Links the assets as kernel `<kernel>`, creates the TemplateVM and the AppVM (each only if missing)
/// and sets kernel, memory and vcpus, as `real_guest.rs` does.
pub(crate) fn run_setup(args: &SetupArgs) -> Result<()> {
    let out = Out { json: false };
    let assets = std::fs::canonicalize(&args.assets).with_context(|| format!("{}", args.assets.display()))?;
    for f in ["vmlinuz", "initramfs"] {
        if !assets.join(f).is_file() {
            bail!("{} has no {f}: run tests/guest/build-assets.sh {}", assets.display(), assets.display());
        }
    }
    let kernels = args.state_dir.join("vm-kernels");
    std::fs::create_dir_all(&kernels).with_context(|| format!("creating {}", kernels.display()))?;
    let link = kernels.join(&args.kernel);
    match std::fs::read_link(&link) {
        Ok(target) if target == assets => {}
        Ok(target) => bail!("{} already points to {}", link.display(), target.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::os::unix::fs::symlink(&assets, &link)
            .with_context(|| format!("linking {} to {}", link.display(), assets.display()))?,
        Err(e) => return Err(e).with_context(|| format!("{} exists and is not a symlink", link.display())),
    }

    let mut admin = AdminClient::new(&args.socket);
    let tpl = args.template.clone().unwrap_or_else(|| format!("{}-tpl", args.vm));
    let existing = admin.list()?;
    if !existing.contains(&tpl) {
        admin.call("admin.vm.Create.TemplateVM", None, "dom0", format!("name={tpl} label=black").as_bytes())?;
    }
    if !existing.contains(&args.vm) {
        let payload = format!("name={} label=red", args.vm);
        admin.call("admin.vm.Create.AppVM", Some(&tpl), "dom0", payload.as_bytes())?;
    }
    for (prop, value) in
        [("kernel", args.kernel.clone()), ("memory", args.memory.to_string()), ("vcpus", args.vcpus.to_string())]
    {
        admin.call("admin.vm.property.Set", Some(prop), &args.vm, value.as_bytes())?;
    }
    let state = admin.power_state(&args.vm)?;
    out.line(format_args!(
        "{} (AppVM of {tpl}): kernel={} ({}), memory={} MiB, vcpus={}, {state}",
        args.vm,
        args.kernel,
        assets.display(),
        args.memory,
        args.vcpus
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(mut buf: &[u8]) -> (Vec<(String, String)>, usize) {
        let mut out = Vec::new();
        let mut total = 0;
        while let Ok(Some((f, len))) = next_frame(buf) {
            if let Frame::Event { subject, name } = f {
                out.push((String::from_utf8_lossy(subject).into(), String::from_utf8_lossy(name).into()));
            }
            buf = &buf[len..];
            total += len;
        }
        (out, total)
    }

    #[test]
    fn frames_are_split_whole_and_only_whole() {
        let stream = b"1\0\0connection-established\0\0\
                       1\0vm\0domain-paused\0\0\
                       1\0vm\0domain-pre-start\0start_guid\0True\0mem_required\0\0\0\
                       1\0vm\0domain-unp";
        let (evs, used) = events(stream);
        assert_eq!(
            evs,
            [("", "connection-established"), ("vm", "domain-paused"), ("vm", "domain-pre-start")]
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert_eq!(&stream[used..], b"1\0vm\0domain-unp");
        // Every prefix of a frame is incomplete, never an error or a frame.
        let one = b"1\0vm\0e\0k\0\0\0";
        for i in 0..one.len() {
            assert!(matches!(next_frame(&one[..i]), Ok(None)), "prefix {i}");
        }
        assert!(matches!(next_frame(one), Ok(Some((_, 11)))));
    }

    #[test]
    fn exceptions_and_garbage_end_the_stream() {
        assert!(matches!(next_frame(b"2\0QubesException\0\0denied\0"), Ok(Some((Frame::Exception(_), _)))));
        assert!(next_frame(b"0\0").is_err());
        assert!(next_frame(b"xyz").is_err());
    }
}
