//! Test support: a real `corrald` on temporary sockets, raw protocol calls to it, and the fixtures and
//! readers more than one test file needs.
// Every test file compiles this module and uses a different part of it.
#![allow(dead_code)]

pub mod crawl;
pub mod events;
pub mod reply;
pub mod state;
pub mod volumes;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Daemon {
    uri: String,
    /// More `corrald` arguments, after the defaults (see `start_with_args`).
    extra: Vec<String>,
    /// A command corrald runs under (e.g. `prlimit --nofile=…`), kept across `restart`.
    wrapper: Vec<String>,
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub admin: PathBuf,
    pub internal: PathBuf,
    pub state: PathBuf,
}

impl Daemon {
    pub fn start() -> Daemon {
        Self::start_with_uri("test:///default")
    }

    /// A daemon with more arguments (e.g. `--tls-self-signed`), kept across `restart`.
    pub fn start_with_args(extra: &[&str]) -> Daemon {
        Self::start_with("test:///default", extra)
    }

    /// A daemon on another libvirt connection (a real QEMU one for the guest tests).
    pub fn start_with_uri(uri: &str) -> Daemon {
        Self::start_with(uri, &[])
    }

    /// A daemon run under `wrapper`, a command that execs its arguments (so the child is corrald itself).
    pub fn start_under(wrapper: &[&str]) -> Daemon {
        Self::start_full("test:///default", &[], wrapper)
    }

    /// A daemon run under `wrapper` with more arguments.
    pub fn start_under_with_args(wrapper: &[&str], extra: &[&str]) -> Daemon {
        Self::start_full("test:///default", extra, wrapper)
    }

    fn start_with(uri: &str, extra: &[&str]) -> Daemon {
        Self::start_full(uri, extra, &[])
    }

    fn start_full(uri: &str, extra: &[&str], wrapper: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = Daemon {
            uri: uri.to_string(),
            extra: extra.iter().map(|a| a.to_string()).collect(),
            wrapper: wrapper.iter().map(|a| a.to_string()).collect(),
            child: None,
            admin: dir.path().join("qubesd.sock"),
            internal: dir.path().join("qubesd.internal.sock"),
            state: dir.path().join("state"),
            dir,
        };
        d.spawn();
        d
    }

    pub fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.admin);
        // A restarted daemon listens on another port: the old address must not be read meanwhile.
        let http_address = self.state.join("http-address");
        let _ = std::fs::remove_file(&http_address);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("corrald.log"))
            .expect("log file");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_corrald"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_corrald")),
        };
        let child = command
            .arg("--admin-socket")
            .arg(&self.admin)
            .arg("--internal-socket")
            .arg(&self.internal)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--libvirt-uri")
            .arg(&self.uri)
            .arg("--http")
            .arg("127.0.0.1:0")
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn corrald");
        self.child = Some(child);
        wait_for_socket(&self.admin);
        wait_for_socket(&self.internal);
        let deadline = Instant::now() + WAIT;
        let http_off = self.extra.windows(2).any(|w| w[0] == "--http" && w[1] == "off");
        while !http_off && !http_address.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, as a crash would: no cleanup runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// The daemon's resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("daemon status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("corrald.log")).unwrap_or_default()
    }

    /// The HTTP door's address (`127.0.0.1:<port>`), as the daemon wrote it at start.
    pub fn http(&self) -> String {
        let path = self.state.join("http-address");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http())
    }

    /// Adds a local HTTP user through the internal socket, as `corral user add` does.
    pub fn add_user(&self, name: &str, password: &str) {
        let reply = self.call_internal(&format!("corral.user.Add+{name}"), "dom0", password.as_bytes());
        assert_eq!(reply, b"0\0", "{}", String::from_utf8_lossy(&reply));
    }

    /// `call("admin.vm.property.Get+memory", "work", b"")` as dom0.
    pub fn call(&self, method: &str, dest: &str, payload: &[u8]) -> Vec<u8> {
        raw(&self.admin, format!("{method} dom0 name {dest}\0").as_bytes(), payload)
    }

    pub fn call_internal(&self, method: &str, dest: &str, payload: &[u8]) -> Vec<u8> {
        raw(&self.internal, format!("{method} dom0 name {dest}\0").as_bytes(), payload)
    }

    /// A call that must succeed; returns the content after `0\0`.
    pub fn ok(&self, method: &str, dest: &str, payload: &[u8]) -> String {
        let reply = self.call(method, dest, payload);
        assert!(reply.starts_with(b"0\0"), "{method} {dest}: {}", String::from_utf8_lossy(&reply));
        String::from_utf8(reply[2..].to_vec()).expect("utf-8 reply")
    }

    /// A call that must fail; returns (exception type, message).
    pub fn err(&self, method: &str, dest: &str, payload: &[u8]) -> (String, String) {
        let reply = self.call(method, dest, payload);
        parse_exception(&reply)
            .unwrap_or_else(|| panic!("{method} {dest}: not an exception: {:?}", String::from_utf8_lossy(&reply)))
    }

    /// The uuid of qube `vm`.
    pub fn uuid(&self, vm: &str) -> String {
        let line = self.ok("admin.vm.property.Get+uuid", vm, b"");
        line.rsplit(' ').next().unwrap_or_default().to_string()
    }

    // Fixtures. Each takes and returns the daemon, so a test file's own fixtures chain them in the order
    // their steps must happen (the order shows in event logs and ids).

    /// Adds the HTTP user the HTTP tests sign in as: `admin`, password `secret`.
    pub fn with_user(self) -> Daemon {
        self.add_user("admin", "secret");
        self
    }

    /// Creates TemplateVM `tpl` (black).
    pub fn with_template(self) -> Daemon {
        self.ok("admin.vm.Create.TemplateVM", "dom0", b"name=tpl label=black");
        self
    }

    /// Creates TemplateVM `tpl` (black) and AppVM `work` (red) based on it: the qubes most tests start
    /// from (no netvm: `default_netvm` is unset).
    pub fn with_appvm(self) -> Daemon {
        let d = self.with_template();
        d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=work label=red");
        d
    }

    /// Starts `vm`.
    pub fn with_running(self, vm: &str) -> Daemon {
        self.ok("admin.vm.Start", vm, b"");
        self
    }

    /// Starts `vm` and pauses it.
    pub fn with_paused(self, vm: &str) -> Daemon {
        let d = self.with_running(vm);
        d.ok("admin.vm.Pause", vm, b"");
        d
    }

    /// Creates StandaloneVM `name` (red) that provides network, as the global `default_netvm`.
    pub fn with_default_netvm(self, name: &str) -> Daemon {
        self.ok("admin.vm.Create.StandaloneVM", "dom0", format!("name={name} label=red").as_bytes());
        self.ok("admin.vm.property.Set+provides_network", name, b"True");
        self.ok("admin.property.Set+default_netvm", "dom0", name.as_bytes());
        self
    }
}

/// A child process killed and reaped when the test ends, also when it panics.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn parse_exception(reply: &[u8]) -> Option<(String, String)> {
    let rest = reply.strip_prefix(b"2\0")?;
    let parts: Vec<&[u8]> = rest.split(|b| *b == 0).collect();
    if parts.len() != 4 || !parts[3].is_empty() {
        return None;
    }
    Some((String::from_utf8_lossy(parts[0]).into_owned(), String::from_utf8_lossy(parts[2]).into_owned()))
}

pub fn wait_for_socket(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if UnixStream::connect(path).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("daemon socket {} did not appear", path.display());
}

/// One full connect → send → half-close → read-to-EOF cycle.
pub fn raw(socket: &Path, header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut req = header.to_vec();
    req.extend_from_slice(payload);
    // The daemon may close early on an oversized request; that is the behaviour under test then.
    let _ = s.write_all(&req);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}
