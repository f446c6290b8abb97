//! Malformed and invalid input, black box: after a small model is set up, thousands of frames that must
//! all be refused are sent — random bytes, truncated requests, broken headers, oversized requests, unknown
//! methods, and real methods with arguments, payloads or destinations that make them invalid. The daemon
//! must keep answering, answer each frame the way the protocol says (no reply for framing errors, an
//! exception for refused calls, never `0\0`), and its state must stay byte for byte what it was: both the
//! SQLite tables (read through a separate read-only connection while the daemon runs) and what the Admin
//! API shows.
//!
//! **The generator's guarantee**: every mutating request it makes is invalid by construction, for a reason
//! that does not depend on anything but the setup below (which the test itself checks stays unchanged):
//! no NUL in the frame, a non-ASCII header, a destination type other than `name`/`keyword adminvm`, fewer
//! than four header fields, more than 64 KiB, a method name outside the spec's method list, a generic rule
//! broken (payload/argument/destination), a nonexistent source, destination, property, feature, tag,
//! label, pool, volume or revision, a read-only property, a value that fails its type or its check, or a
//! refusal the setup makes certain (removing a template in use, a label in use, a default pool, dom0).
//! Reads (methods that change nothing) get arbitrary arguments and payloads.
//!
//! Knobs (environment): `CORRAL_MALFORMED_CASES` (default 4000), `CORRAL_MALFORMED_SEED` (default random,
//! printed). Run: `cargo test -p corrald --test malformed -- --nocapture`

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::state::db_dump;
use support::Daemon;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Dumps of the whole state

/// The same state as the Admin API shows it: what the daemon holds in memory.
fn api_dump(d: &Daemon) -> String {
    let mut out = String::new();
    // Records the whole reply and returns its content (empty unless OK).
    let mut get = |method: &str, dest: &str| -> String {
        let reply = d.call(method, dest, b"");
        let text = String::from_utf8_lossy(&reply).replace('\0', "\\0");
        // Pool sizes and usage are the host filesystem's numbers, which other processes change.
        let text: String = text
            .lines()
            .filter(|l| !(method.starts_with("admin.pool.Info") && (l.starts_with("size=") || l.starts_with("usage="))))
            .map(|l| format!("{l}\n"))
            .collect();
        out += &format!("{method} {dest}: {text}");
        String::from_utf8_lossy(reply.strip_prefix(b"0\0").unwrap_or_default()).into_owned()
    };
    let list = get("admin.vm.List", "dom0");
    for vm in list.lines().filter_map(|l| l.split(' ').next()) {
        get("admin.vm.property.GetAll", vm);
        get("admin.vm.tag.List", vm);
        for f in get("admin.vm.feature.List", vm).lines() {
            get(&format!("admin.vm.feature.Get+{f}"), vm);
        }
        for v in get("admin.vm.volume.List", vm).lines() {
            get(&format!("admin.vm.volume.Info+{v}"), vm);
            get(&format!("admin.vm.volume.ListSnapshots+{v}"), vm);
        }
        if vm != "dom0" {
            get("admin.vm.firewall.Get", vm);
            get("admin.vm.notes.Get", vm);
        }
    }
    get("admin.property.GetAll", "dom0");
    for l in get("admin.label.List", "dom0").lines() {
        get(&format!("admin.label.Get+{l}"), "dom0");
        get(&format!("admin.label.Index+{l}"), "dom0");
    }
    for p in get("admin.pool.List", "dom0").lines() {
        get(&format!("admin.pool.Info+{p}"), "dom0");
        get(&format!("admin.pool.volume.List+{p}"), "dom0");
    }
    get("admin.pool.ListDrivers", "dom0");
    out
}

fn first_difference(a: &str, b: &str) -> String {
    let (al, bl): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut out = Vec::new();
    for i in 0..al.len().max(bl.len()) {
        let (x, y) = (al.get(i).copied().unwrap_or("<none>"), bl.get(i).copied().unwrap_or("<none>"));
        if x != y {
            out.push(format!("line {i}:\n  before: {x}\n  after:  {y}"));
            if out.len() > 8 {
                break;
            }
        }
    }
    out.join("\n")
}

// ---------------------------------------------------------------------------------------------------------
// Cases

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Framing error: the connection is dropped without a reply.
    Abort,
    /// An EXCEPTION reply (of this type when given).
    Exception(Option<&'static str>),
    /// No reply or an EXCEPTION (where the spec leaves the choice open), never OK.
    Refused,
    /// A read: OK or EXCEPTION, but an answer.
    Answer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sock {
    Admin,
    Internal,
}

struct Case {
    what: &'static str,
    sock: Sock,
    bytes: Vec<u8>,
    expect: Expect,
}

fn case(what: &'static str, bytes: Vec<u8>, expect: Expect) -> Case {
    Case { what, sock: Sock::Admin, bytes, expect }
}

fn frame(call: &str, src: &str, dest: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = format!("{call} {src} name {dest}\0").into_bytes();
    b.extend_from_slice(payload);
    b
}

fn dom0(call: &str, dest: &str, payload: &[u8]) -> Vec<u8> {
    frame(call, "dom0", dest, payload)
}

/// Every method name the spec lists, and the families it names by pattern. A made-up method name is only
/// used when it is none of these.
const SPEC_METHODS: &[&str] = &[
    "admin.Events",
    "admin.backup.Cancel",
    "admin.backup.Execute",
    "admin.backup.Info",
    "admin.deviceclass.List",
    "admin.label.Create",
    "admin.label.Get",
    "admin.label.Index",
    "admin.label.List",
    "admin.label.Remove",
    "admin.pool.Add",
    "admin.pool.Info",
    "admin.pool.List",
    "admin.pool.ListDrivers",
    "admin.pool.Remove",
    "admin.pool.Set.ephemeral_volatile",
    "admin.pool.Set.revisions_to_keep",
    "admin.pool.UsageDetails",
    "admin.pool.volume.List",
    "admin.property.Get",
    "admin.property.GetAll",
    "admin.property.GetDefault",
    "admin.property.Help",
    "admin.property.List",
    "admin.property.Reset",
    "admin.property.Set",
    "admin.vm.Clone",
    "admin.vm.CloneInPool",
    "admin.vm.Console",
    "admin.vm.CreateDisposable",
    "admin.vm.CreateTemplate",
    "admin.vm.CurrentState",
    "admin.vm.Kill",
    "admin.vm.List",
    "admin.vm.Pause",
    "admin.vm.Remove",
    "admin.vm.Resume",
    "admin.vm.Shutdown",
    "admin.vm.Start",
    "admin.vm.Stats",
    "admin.vm.Suspend",
    "admin.vm.Unpause",
    "admin.vm.feature.CheckWithAdminVM",
    "admin.vm.feature.CheckWithNetvm",
    "admin.vm.feature.CheckWithTemplate",
    "admin.vm.feature.CheckWithTemplateAndAdminVM",
    "admin.vm.feature.Get",
    "admin.vm.feature.List",
    "admin.vm.feature.Remove",
    "admin.vm.feature.Set",
    "admin.vm.firewall.Get",
    "admin.vm.firewall.Reload",
    "admin.vm.firewall.Set",
    "admin.vm.firewall.Flush",
    "admin.vm.notes.Get",
    "admin.vm.notes.Set",
    "admin.vm.property.Get",
    "admin.vm.property.GetAll",
    "admin.vm.property.GetDefault",
    "admin.vm.property.Help",
    "admin.vm.property.List",
    "admin.vm.property.Reset",
    "admin.vm.property.Set",
    "admin.vm.tag.Get",
    "admin.vm.tag.List",
    "admin.vm.tag.Remove",
    "admin.vm.tag.Set",
    "admin.vm.volume.Clear",
    "admin.vm.volume.CloneFrom",
    "admin.vm.volume.CloneTo",
    "admin.vm.volume.Import",
    "admin.vm.volume.ImportWithSize",
    "admin.vm.volume.Info",
    "admin.vm.volume.List",
    "admin.vm.volume.ListSnapshots",
    "admin.vm.volume.Resize",
    "admin.vm.volume.Revert",
    "admin.vm.volume.Set.ephemeral",
    "admin.vm.volume.Set.revisions_to_keep",
    "admin.vm.volume.Set.rw",
    "admin.vm.volume.Snapshot",
    "admin.vmclass.List",
    "internal.GetSystemInfo",
    "internal.SuspendPre",
    "internal.SuspendPost",
    "internal.vm.volume.ImportBegin",
    "internal.vm.volume.ImportEnd",
];
const SPEC_FAMILIES: &[&str] =
    &["admin.vm.Create.", "admin.vm.CreateInPool.", "admin.vm.device.", "admin.vm.microphone.", "admin.backup."];

fn is_spec_method(m: &str) -> bool {
    SPEC_METHODS.iter().any(|k| k.eq_ignore_ascii_case(m)) || SPEC_FAMILIES.iter().any(|f| m.starts_with(f))
}

/// Methods that change nothing, whatever their arguments: any argument and payload may go to them.
const READS: &[&str] = &[
    "admin.vmclass.List",
    "admin.vm.List",
    "admin.vm.CurrentState",
    "admin.vm.property.List",
    "admin.vm.property.Get",
    "admin.vm.property.GetAll",
    "admin.vm.property.GetDefault",
    "admin.vm.property.Help",
    "admin.property.List",
    "admin.property.Get",
    "admin.property.GetAll",
    "admin.property.GetDefault",
    "admin.property.Help",
    "admin.vm.feature.List",
    "admin.vm.feature.Get",
    "admin.vm.feature.CheckWithTemplate",
    "admin.vm.feature.CheckWithNetvm",
    "admin.vm.feature.CheckWithAdminVM",
    "admin.vm.feature.CheckWithTemplateAndAdminVM",
    "admin.vm.tag.List",
    "admin.vm.tag.Get",
    "admin.label.List",
    "admin.label.Get",
    "admin.label.Index",
    "admin.vm.notes.Get",
    "admin.vm.firewall.Get",
    "admin.vm.firewall.Reload",
    "admin.deviceclass.List",
    "admin.pool.List",
    "admin.pool.ListDrivers",
    "admin.pool.Info",
    "admin.pool.UsageDetails",
    "admin.pool.volume.List",
    "admin.vm.volume.List",
    "admin.vm.volume.Info",
    "admin.vm.volume.ListSnapshots",
    "admin.vm.device.pci.Available",
    "admin.vm.device.block.Assigned",
    "admin.vm.device.pci.Attached",
    "admin.vm.device.block.List",
];

/// Requests that would change the state if sent whole; the truncation sweep cuts them before the NUL.
const MUTATING: &[(&str, &str, &[u8])] = &[
    ("admin.vm.property.Set+default_user", "a1", b"bob"),
    ("admin.vm.Remove", "a2", b""),
    ("admin.vm.tag.Set+ct-new", "a1", b""),
    ("admin.vm.feature.Set+cf-new", "a1", b"v"),
    ("admin.label.Create+newlbl", "dom0", b"0x010203"),
    ("admin.vm.notes.Set", "a1", b"new notes"),
    ("admin.vm.firewall.Set", "a1", b"action=drop\n"),
    ("admin.vm.Create.TemplateVM", "dom0", b"name=t9 label=red"),
    ("admin.vm.property.Reset+memory", "a1", b""),
    ("admin.pool.Remove+extra", "dom0", b""),
    ("admin.property.Reset+default_qrexec_timeout", "dom0", b""),
];

const VMS: &[&str] = &["a1", "a2", "t1", "t2"];
const VOLUMES: &[&str] = &["root", "private", "volatile", "kernel"];
const BAD_NAME_CHARS: &[u8] = b"/:@!~%,;=?*'\"<>|\\`$#&()[]{}^+";

struct Gen {
    rng: StdRng,
}

impl Gen {
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.gen_range(0..items.len())]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.rng.gen()).collect()
    }

    fn alnum_in(&mut self, len: std::ops::Range<usize>) -> String {
        let n = self.rng.gen_range(len);
        self.alnum(n)
    }

    fn token_in(&mut self, len: std::ops::Range<usize>) -> String {
        let n = self.rng.gen_range(len);
        self.token(n)
    }

    fn bytes_in(&mut self, len: std::ops::Range<usize>) -> Vec<u8> {
        let n = self.rng.gen_range(len);
        self.bytes(n)
    }

    fn alnum(&mut self, len: usize) -> String {
        const CH: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len).map(|_| char::from(self.pick(CH))).collect()
    }

    /// ASCII without space or NUL: what can stand in a header field.
    fn token(&mut self, len: usize) -> String {
        (0..len).map(|_| char::from(self.rng.gen_range(0x21u8..0x7f))).collect()
    }

    /// `[A-Za-z0-9_.-]`-ish text with one character outside that set.
    fn unsafe_name(&mut self) -> String {
        let mut s = self.alnum_in(0..10);
        let at = self.rng.gen_range(0..=s.len());
        s.insert(at, char::from(self.pick(BAD_NAME_CHARS)));
        s
    }

    /// Overlong: 1000–60000 characters, with a character no name may contain.
    fn long_unsafe_name(&mut self) -> String {
        let mut s = "a".repeat(self.rng.gen_range(1000..60000));
        let at = self.rng.gen_range(0..s.len());
        s.insert(at, char::from(self.pick(BAD_NAME_CHARS)));
        s
    }

    fn vm(&mut self) -> &'static str {
        self.pick(VMS)
    }

    fn bad_int(&mut self, zero_ok: bool) -> Vec<u8> {
        const FIXED: &[&[u8]] = &[
            b"",
            b" ",
            b"abc",
            b"1.5",
            b"1e3",
            b"0x10",
            b"1__0",
            b"_1",
            b"1_",
            b"++1",
            b"+-1",
            b"1 2",
            b"12\x00",
            b"\x0012",
            b"\xff",
            b"1\n2",
            b"--1",
            b"-",
            b"\xe0\xa5\xa9",
            b"\xef\xbc\x91\xef\xbc\x92",
            b"None",
            b"True",
        ];
        match self.rng.gen_range(0..4) {
            0 => format!("-{}", self.rng.gen_range(1..100000)).into_bytes(),
            1 if !zero_ok => b"0".to_vec(),
            2 => {
                let mut s = self.rng.gen_range(1..100000u32).to_string();
                let at = self.rng.gen_range(0..=s.len());
                s.insert(at, char::from(self.pick(b"xyz.,/ _-+e")));
                // "1_0" and "+5"/"-5" could be numbers; make sure two separators or a letter break it.
                s.insert(0, 'q');
                s.into_bytes()
            }
            _ => self.pick(FIXED).to_vec(),
        }
    }

    fn bad_bool(&mut self) -> Vec<u8> {
        const FIXED: &[&[u8]] = &[
            b"", b"2", b"ye", b"truee", b"y", b"n", b"t", b"f", b"nope", b"True!", b"on\x00", b"\xff", b"tru e", b"10",
            b"00", b"-1", b"yes no", b"None",
        ];
        if self.rng.gen_bool(0.5) {
            return self.pick(FIXED).to_vec();
        }
        loop {
            let s = self.alnum_in(1..8);
            let l = s.trim().to_ascii_lowercase();
            if !["1", "yes", "true", "on", "0", "no", "false", "off"].contains(&l.as_str()) {
                return s.into_bytes();
            }
        }
    }

    fn bad_vm_name(&mut self) -> Vec<u8> {
        const FIXED: &[&[u8]] = &[
            b"1abc",
            b"-x",
            b"_x",
            b".x",
            b"a b",
            b"x/y",
            b"Domain-0",
            b"x-dm",
            b"\xff",
            b"a\x00b",
            b"nosuchvm",
            b"nosuch-2",
            b"uuid:zzz",
            b"a1\n",
            b"dom0 ",
        ];
        if self.rng.gen_bool(0.2) {
            return "a".repeat(self.rng.gen_range(32..100)).into_bytes();
        }
        self.pick(FIXED).to_vec()
    }

    fn invalid_utf8(&mut self) -> Vec<u8> {
        const BAD: &[&[u8]] =
            &[b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xf8\x88\x80\x80\x80", b"\xfe"];
        let mut text = "notes é ".repeat(self.rng.gen_range(0..20)).into_bytes();
        let at = self.rng.gen_range(0..=text.len());
        let bad = self.pick(BAD);
        text.splice(at..at, bad.iter().copied());
        // A truncated sequence at the very end must stay invalid: nothing may complete it.
        if bad == b"\xe2\x82" {
            text.truncate(at + 2);
        }
        text
    }

    /// A real, mutating method called so that it must be refused; the comment on each arm says why.
    fn invalid_mutation(&mut self) -> Case {
        const INT_PROPS: &[&str] = &["memory", "vcpus", "qrexec_timeout", "shutdown_timeout"];
        const BOOL_PROPS: &[&str] = &["autostart", "debug", "include_in_backups", "installed_by_rpm"];
        const VM_PROPS: &[&str] = &["netvm", "default_dispvm", "management_dispvm", "guivm", "audiovm"];
        const READ_ONLY: &[&str] = &[
            "dns",
            "gateway",
            "gateway6",
            "icon",
            "klass",
            "name",
            "qid",
            "start_time",
            "stubdom_uuid",
            "stubdom_xid",
            "updateable",
            "uuid",
            "visible_gateway",
            "visible_ip",
            "xid",
        ];
        const ANY_VALUE: &[&[u8]] = &[b"a1", b"5", b"True", b"x", b"", b"00000000-0000-0000-0000-000000000000"];
        let exc = Expect::Exception(None);
        let vm = self.vm();
        match self.rng.gen_range(0..40) {
            // Type check: not an integer, or not positive.
            0..=2 => {
                let p = self.pick(INT_PROPS);
                let v = self.bad_int(false);
                case("property.Set int", dom0(&format!("admin.vm.property.Set+{p}"), vm, &v), exc)
            }
            // maxmem must be a non-negative integer.
            3 => {
                let v = self.bad_int(true);
                case("property.Set maxmem", dom0("admin.vm.property.Set+maxmem", vm, &v), exc)
            }
            // Not a boolean literal.
            4..=5 => {
                let p = self.pick(BOOL_PROPS);
                let v = self.bad_bool();
                case("property.Set bool", dom0(&format!("admin.vm.property.Set+{p}"), vm, &v), exc)
            }
            // Not a valid qube name, or no such qube.
            6..=7 => {
                let p = self.pick(VM_PROPS);
                let v = self.bad_vm_name();
                case("property.Set vm", dom0(&format!("admin.vm.property.Set+{p}"), vm, &v), exc)
            }
            // An AppVM's template must be an existing TemplateVM (a2 and dom0 are not).
            8 => {
                let v: &[u8] = match self.rng.gen_range(0..3) {
                    0 => b"a2",
                    1 => b"dom0",
                    _ => b"nosuchvm",
                };
                case("property.Set template", dom0("admin.vm.property.Set+template", "a1", v), exc)
            }
            // No such label (labels 1–10 exist; names checked).
            9 => {
                let v = self.pick(&[b"nolabel" as &[u8], b"99", b"label-99", b"a/b", b"\xff", b"red red", b"0", b""]);
                case("property.Set label", dom0("admin.vm.property.Set+label", vm, v), exc)
            }
            // default_user: only [A-Za-z0-9_+,.-].
            10 => {
                let mut s = self.alnum_in(0..8).into_bytes();
                let at = self.rng.gen_range(0..=s.len());
                s.insert(at, self.pick(b" ;/$*()[]{}<>|&!~`'\"\\@#%^=?\t\x01\xff"));
                case("property.Set default_user", dom0("admin.vm.property.Set+default_user", vm, &s), exc)
            }
            // virt_mode: hvm, pv or pvh only.
            11 => {
                let v = loop {
                    let s = self.alnum_in(0..6);
                    if !["hvm", "pv", "pvh"].contains(&s.to_ascii_lowercase().as_str()) {
                        break s;
                    }
                };
                case("property.Set virt_mode", dom0("admin.vm.property.Set+virt_mode", vm, v.as_bytes()), exc)
            }
            // kernel may not contain '/'; kernelopts at most 512 characters.
            12 => {
                let v = format!("{}/{}", self.alnum(3), self.alnum(3));
                case("property.Set kernel", dom0("admin.vm.property.Set+kernel", vm, v.as_bytes()), exc)
            }
            13 => {
                let v = "x".repeat(self.rng.gen_range(513..3000));
                case("property.Set kernelopts", dom0("admin.vm.property.Set+kernelopts", vm, v.as_bytes()), exc)
            }
            // Read-only or set-once properties.
            14..=15 => {
                let p = self.pick(READ_ONLY);
                let v = self.pick(ANY_VALUE);
                let dest = self.pick(&["a1", "t1", "dom0"]);
                case("property.Set read-only", dom0(&format!("admin.vm.property.Set+{p}"), dest, v), exc)
            }
            // No such property.
            16 => {
                let p = match self.rng.gen_range(0..3) {
                    0 => format!("nx_{}", self.alnum(5)),
                    1 => self.pick(&["Memory", "MEMORY", "memory.", "__class__", "memory+x", "dispid"]).to_string(),
                    _ => self.unsafe_name(),
                };
                let v = self.pick(ANY_VALUE);
                case("property.Set no such", dom0(&format!("admin.vm.property.Set+{p}"), vm, v), exc)
            }
            // Reset: no such property, set-once, or one without a default (template, label). Resetting a
            // computed (read-only) property is accepted as a no-op, as qubesd does: any answer, no change.
            17..=18 => {
                let (p, dest, expect) = match self.rng.gen_range(0..5) {
                    0 => (format!("nx_{}", self.alnum(5)), vm, exc),
                    1 => (self.pick(&["name", "qid", "uuid"]).to_string(), vm, exc),
                    2 => ("template".to_string(), self.pick(&["a1", "a2"]), exc),
                    3 => ("label".to_string(), vm, exc),
                    _ => (self.pick(READ_ONLY).to_string(), vm, Expect::Answer),
                };
                case("property.Reset", dom0(&format!("admin.vm.property.Reset+{p}"), dest, b""), expect)
            }
            // Global properties: not an integer, not a qube, or no such property.
            19 => {
                let (p, v) = match self.rng.gen_range(0..3) {
                    0 => {
                        let p = self.pick(&["default_qrexec_timeout", "default_shutdown_timeout", "stats_interval"]);
                        let v = self.pick(&[b"abc" as &[u8], b"1.5", b"", b"\xff", b"1e3", b"0x10", b"None"]);
                        (p.to_string(), v.to_vec())
                    }
                    1 => {
                        let p =
                            self.pick(&["default_template", "default_netvm", "default_dispvm", "clockvm", "updatevm"]);
                        (p.to_string(), self.bad_vm_name())
                    }
                    _ => (format!("nx_{}", self.alnum(5)), b"1".to_vec()),
                };
                case("admin.property.Set", dom0(&format!("admin.property.Set+{p}"), "dom0", &v), exc)
            }
            20 => {
                let p = format!("nx_{}", self.alnum(5));
                case("admin.property.Reset", dom0(&format!("admin.property.Reset+{p}"), "dom0", b""), exc)
            }
            // Features: bad name, protected name, unprintable value, bad service name.
            21..=23 => {
                let (name, value): (String, Vec<u8>) = match self.rng.gen_range(0..5) {
                    0 => (self.unsafe_name(), b"1".to_vec()),
                    1 => (self.long_unsafe_name(), b"1".to_vec()),
                    2 => {
                        let p = self.pick(&[
                            "deferred-netvm-original",
                            "preload-dispvm",
                            "preload-dispvm-completed",
                            "preload-dispvm-in-progress",
                        ]);
                        (p.to_string(), b"1".to_vec())
                    }
                    3 => {
                        let mut v = self.alnum_in(0..10).into_bytes();
                        let at = self.rng.gen_range(0..=v.len());
                        let bad = self.pick(&[
                            b"\t" as &[u8],
                            b"\n",
                            b"\r",
                            b"\x7f",
                            b"\x00",
                            b"\x01",
                            b"\x1b",
                            "é".as_bytes(),
                            b"\xff",
                        ]);
                        v.splice(at..at, bad.iter().copied());
                        (format!("cf-{}", self.alnum(3)), v)
                    }
                    _ => {
                        let s = match self.rng.gen_range(0..3) {
                            0 => "service.".to_string(),
                            1 => self.pick(&["service..", "service..."]).to_string(),
                            _ => format!("service.x{}", self.alnum_in(48..60)),
                        };
                        (s, b"1".to_vec())
                    }
                };
                case("feature.Set", dom0(&format!("admin.vm.feature.Set+{name}"), vm, &value), exc)
            }
            // Remove: absent (valid name), bad name, protected.
            24 => {
                let name = match self.rng.gen_range(0..3) {
                    0 => format!("nx-{}", self.alnum(6)),
                    1 => self.unsafe_name(),
                    _ => "preload-dispvm".to_string(),
                };
                case("feature.Remove", dom0(&format!("admin.vm.feature.Remove+{name}"), vm, b""), exc)
            }
            // Tags: only [A-Za-z0-9_-]; an absent tag cannot be removed; automatic tags cannot be removed.
            25 => {
                let mut t = self.alnum_in(0..8);
                let at = self.rng.gen_range(0..=t.len());
                t.insert(at, char::from(self.pick(b"./:@!~%,;=?*+#")));
                let m = self.pick(&["admin.vm.tag.Set", "admin.vm.tag.Remove"]);
                case("tag bad name", dom0(&format!("{m}+{t}"), vm, b""), exc)
            }
            26 => {
                let t = match self.rng.gen_range(0..3) {
                    0 => format!("nx-{}", self.alnum(6)),
                    1 => "guivm-dom0".to_string(),
                    _ => "audiovm-dom0".to_string(),
                };
                case("tag.Remove absent", dom0(&format!("admin.vm.tag.Remove+{t}"), vm, b""), exc)
            }
            // Labels: existing name, digits only, bad characters, bad colour.
            27..=28 => {
                let (name, color): (String, Vec<u8>) = match self.rng.gen_range(0..4) {
                    0 => (self.pick(&["red", "black", "mylabel", "spare"]).to_string(), b"0x112233".to_vec()),
                    1 => (self.rng.gen_range(0..100000u32).to_string(), b"0x112233".to_vec()),
                    2 => (self.unsafe_name(), b"0x112233".to_vec()),
                    _ => {
                        let c = self.pick(&[
                            b"" as &[u8],
                            b"0x12345",
                            b"0x1234567",
                            b"123456",
                            b"#123456",
                            b"0xGGGGGG",
                            b"0x12 345",
                            b"\xff",
                            b"0X123456",
                            b"0x-12345",
                            b"0x123456\x00",
                        ]);
                        (format!("nl{}", self.alnum(5)), c.to_vec())
                    }
                };
                case("label.Create", dom0(&format!("admin.label.Create+{name}"), "dom0", &color), exc)
            }
            // Builtin labels, a label in use, no such label.
            29 => {
                let name = match self.rng.gen_range(0..3) {
                    0 => self.pick(&["red", "orange", "black", "8", "1"]).to_string(),
                    1 => "mylabel".to_string(),
                    _ => format!("nx{}", self.alnum(5)),
                };
                case("label.Remove", dom0(&format!("admin.label.Remove+{name}"), "dom0", b""), exc)
            }
            // Notes must be UTF-8.
            30 => {
                let v = self.invalid_utf8();
                case("notes.Set bad utf-8", dom0("admin.vm.notes.Set", vm, &v), exc)
            }
            // Firewall: one invalid line makes the whole list invalid.
            31 => {
                const BAD: &[&str] = &[
                    "action=maybe",
                    "proto=tcp",
                    "action=accept action=drop",
                    "action=accept foo=bar",
                    "action=accept dst4=10.0.0.0/33",
                    "action=accept proto=tcp dstports=0-70000",
                    "action=accept proto=tcp dstports=80-",
                    "action=accept proto=xyz",
                    "action",
                    "=accept",
                    "action=accept expire=abc",
                    "action=accept specialtarget=bogus",
                    "action=accept comment=\u{e9}",
                ];
                let mut lines = Vec::new();
                for _ in 0..self.rng.gen_range(0..3) {
                    lines.push("action=drop dst4=10.9.9.9/32".to_string());
                }
                lines.push(self.pick(BAD).to_string());
                for _ in 0..self.rng.gen_range(0..3) {
                    lines.push("action=accept".to_string());
                }
                let payload = lines.join("\n") + "\n";
                case("firewall.Set invalid", dom0("admin.vm.firewall.Set", vm, payload.as_bytes()), exc)
            }
            // Create: existing name, bad/missing/duplicate/unknown keys, no such label or template, a
            // template for a class without one.
            32..=33 => {
                const BAD: &[&str] = &[
                    "name=a1 label=red",
                    "name=t1 label=red",
                    "name=dom0 label=red",
                    "name=newq1 label=nolabel",
                    "name=1bad label=red",
                    "label=red",
                    "name=newq1",
                    "name=newq1 label=red name=newq2",
                    "name=newq1 label=red label=red",
                    "name=newq1 label=red foo=bar",
                    "name=newq1  label=red",
                    "name=newq1 label=red ",
                    " name=newq1 label=red",
                    "name=newq1\nlabel=red",
                    "name=newq\u{e9} label=red",
                    "name=newq1 label=red\0",
                    "name=Domain-0 label=red",
                    "name=newq1-dm label=red",
                ];
                let payload = self.pick(BAD);
                let call = match self.rng.gen_range(0..4) {
                    0 => "admin.vm.Create.TemplateVM",
                    1 => "admin.vm.Create.AppVM+t1",
                    2 => "admin.vm.Create.StandaloneVM",
                    _ => "admin.vm.CreateInPool.TemplateVM",
                };
                case("Create bad payload", dom0(call, "dom0", payload.as_bytes()), exc)
            }
            34 => {
                let (call, payload) = self.pick(&[
                    ("admin.vm.Create.TemplateVM+t1", "name=newq1 label=red"),
                    ("admin.vm.Create.StandaloneVM+t1", "name=newq1 label=red"),
                    ("admin.vm.Create.AppVM+nosuchvm", "name=newq1 label=red"),
                    ("admin.vm.Create.AppVM+a2", "name=newq1 label=red"),
                    ("admin.vm.Create.AppVM+dom0", "name=newq1 label=red"),
                    ("admin.vm.CreateInPool.TemplateVM", "name=newq1 label=red pool=nosuchpool"),
                    ("admin.vm.CreateInPool.TemplateVM", "name=newq1 label=red pool=varlibqubes pool:root=varlibqubes"),
                    ("admin.vm.CreateInPool.TemplateVM", "name=newq1 label=red pool:bogus=varlibqubes"),
                    ("admin.vm.CreateInPool.TemplateVM", "name=newq1 label=red pool:root=nosuchpool"),
                    ("admin.vm.CreateInPool.AppVM+t1", "name=newq1 label=red pool:root=varlibqubes"),
                    ("admin.vm.CreateInPool.TemplateVM", "name=newq1 label=red pool=a pool=b"),
                    ("admin.vm.Create.TemplateVM", "name=newq1 label=red pool=varlibqubes"),
                    ("admin.vm.Create.AdminVM", "name=newq1 label=red"),
                    ("admin.vm.Create.RemoteVM+t1", "name=newq1 label=red"),
                    ("admin.vm.Create.NoSuchClass", "name=newq1 label=red"),
                ]);
                case("Create bad call", dom0(call, "dom0", payload.as_bytes()), exc)
            }
            // dom0 and templates in use cannot be removed; no such qube.
            35 => {
                let dest = self.pick(&["dom0", "t1", "nosuchvm"]);
                case("Remove refused", dom0("admin.vm.Remove", dest, b""), exc)
            }
            // Pools: unknown driver, invalid config, existing name; defaults in use; bad values.
            36 => {
                let (driver, payload) = if self.rng.gen_bool(0.3) {
                    (format!("nx{}", self.alnum(4)), "name=p1\ndir_path=/tmp/p1".to_string())
                } else {
                    let p = self.pick(&[
                        "name=varlibqubes\ndir_path=/tmp/x",
                        "name=extra\ndir_path=/tmp/x",
                        "dir_path=/tmp/x",
                        "name=p1\nname=p2\ndir_path=/tmp/x",
                        "name=p1\ndir_path=/tmp/x\nfrob=1",
                        "name=p/1\ndir_path=/tmp/x",
                        "name=p1\ndir_path=relative",
                        "name=p1\ndir_path=/tmp/x y",
                        "name=p1\ndir_path=/tmp/x\nrevisions_to_keep=5",
                        "name=p1\ndir_path=/tmp/x\nrevisions_to_keep=-2",
                        "name=p1\ndir_path=/tmp/x\nephemeral_volatile=maybe",
                        "name=p1 dir_path=/tmp/x",
                        "nameless",
                        "name=p1\ndir_path=/tmp/\u{e9}",
                        "name=p1",
                    ]);
                    ("file".to_string(), p.to_string())
                };
                case("pool.Add", dom0(&format!("admin.pool.Add+{driver}"), "dom0", payload.as_bytes()), exc)
            }
            37 => {
                let (call, payload): (String, Vec<u8>) = match self.rng.gen_range(0..4) {
                    0 => {
                        let p = self.pick(&["varlibqubes", "linux-kernel", "nosuchpool"]);
                        (format!("admin.pool.Remove+{p}"), Vec::new())
                    }
                    1 => {
                        let p = self.pick(&["varlibqubes", "extra"]);
                        let v =
                            self.pick(&[b"2" as &[u8], b"3", b"100", b"-2", b"-100", b"abc", b"1.0", b"0x1", b"\xff"]);
                        (format!("admin.pool.Set.revisions_to_keep+{p}"), v.to_vec())
                    }
                    2 => {
                        let p = self.pick(&["varlibqubes", "extra"]);
                        (format!("admin.pool.Set.ephemeral_volatile+{p}"), self.bad_bool())
                    }
                    _ => {
                        let (p, v) = self.pick(&[
                            ("admin.pool.Set.ephemeral_volatile+linux-kernel", b"True" as &[u8]),
                            ("admin.pool.Set.ephemeral_volatile+nosuchpool", b"True"),
                            ("admin.pool.Set.revisions_to_keep+nosuchpool", b"0"),
                        ]);
                        (p.to_string(), v.to_vec())
                    }
                };
                case("pool change", dom0(&call, "dom0", &payload), exc)
            }
            // Volumes: shrinking or bad sizes, bad revisions, bad values, unknown tokens, unknown volumes.
            _ => {
                let vol = self.pick(VOLUMES);
                let dest = self.pick(&["a1", "t1", "a2"]);
                let (call, payload): (String, Vec<u8>) = match self.rng.gen_range(0..7) {
                    0 => {
                        let v = self.pick(&[
                            b"0" as &[u8],
                            b"1",
                            b"4096",
                            b"-1",
                            b"abc",
                            b"1.5",
                            b"1e9",
                            b"\xff",
                            b"0x100",
                        ]);
                        (format!("admin.vm.volume.Resize+{vol}"), v.to_vec())
                    }
                    1 => {
                        let v = self.pick(&[b"../x" as &[u8], b"a b", b"/", b"\xff", b"x;y", b"123456", b"1"]);
                        (format!("admin.vm.volume.Revert+{vol}"), v.to_vec())
                    }
                    2 => {
                        let v = self.pick(&[b"-2" as &[u8], b"-100", b"abc", b"1.5", b"\xff", b"2", b"99", b"01"]);
                        (format!("admin.vm.volume.Set.revisions_to_keep+{vol}"), v.to_vec())
                    }
                    3 => (format!("admin.vm.volume.Set.rw+{vol}"), self.bad_bool()),
                    4 => (format!("admin.vm.volume.Set.ephemeral+{vol}"), self.bad_bool()),
                    5 => {
                        let token = if self.rng.gen_bool(0.8) { self.alnum(32) } else { "t\u{e9}".to_string() };
                        (format!("admin.vm.volume.CloneTo+{vol}"), token.into_bytes())
                    }
                    _ => {
                        let v = self.pick(&["nosuchvol", "root2", "ROOT", "../root"]);
                        let m = self.pick(&["Clear", "Resize", "Set.rw", "Set.ephemeral", "Revert"]);
                        let payload = if m == "Clear" { Vec::new() } else { b"1".to_vec() };
                        (format!("admin.vm.volume.{m}+{v}"), payload)
                    }
                };
                case("volume change", dom0(&call, dest, &payload), exc)
            }
        }
    }

    /// Otherwise valid mutations with exactly one generic rule broken (payload, argument, destination,
    /// source); only the generic checks stand between these and a change.
    fn generic_violation(&mut self) -> Case {
        let proto = Expect::Exception(Some("ProtocolError"));
        let not_found = Expect::Exception(Some("QubesVMNotFoundError"));
        let junk = self.pick(&[b"x" as &[u8], b"\0", b"0x112233", b"\xff"]);
        match self.rng.gen_range(0..13) {
            // Payload to methods that take none.
            0 => {
                let (call, dest) = self.pick(&[
                    ("admin.vm.Remove", "a2"),
                    ("admin.vm.Remove", "t2"),
                    ("admin.vm.tag.Set+ct-new", "a1"),
                    ("admin.vm.tag.Remove+ct-x", "a1"),
                    ("admin.vm.feature.Remove+cf-a", "a1"),
                    ("admin.vm.property.Reset+memory", "a1"),
                    ("admin.label.Remove+spare", "dom0"),
                    ("admin.pool.Remove+extra", "dom0"),
                    ("admin.property.Reset+default_qrexec_timeout", "dom0"),
                    ("admin.vm.volume.Clear+private", "a1"),
                ]);
                case("unexpected payload", dom0(call, dest, junk), proto)
            }
            // An argument to methods that take none.
            1 => {
                let (call, dest, payload) = self.pick(&[
                    ("admin.vm.Remove", "a2", b"" as &[u8]),
                    ("admin.vm.notes.Set", "a1", b"new notes"),
                    ("admin.vm.firewall.Set", "a1", b"action=drop\n"),
                ]);
                let arg = self.token_in(1..20).replace('+', "p");
                case("unexpected argument", dom0(&format!("{call}+{arg}"), dest, payload), proto)
            }
            // No argument where one is required (also `method+` with an empty one).
            2 => {
                let (call, dest, payload) = self.pick(&[
                    ("admin.vm.property.Set", "a1", b"800" as &[u8]),
                    ("admin.vm.feature.Set", "a1", b"1"),
                    ("admin.vm.tag.Set", "a1", b""),
                    ("admin.label.Create", "dom0", b"0x112233"),
                    ("admin.pool.Add", "dom0", b"name=p9\ndir_path=/tmp/p9"),
                    ("admin.vm.volume.Resize", "a1", b"99999999999"),
                    ("admin.property.Set", "dom0", b"30"),
                ]);
                let call = if self.rng.gen_bool(0.5) { format!("{call}+") } else { call.to_string() };
                case("expected an argument", dom0(&call, dest, payload), proto)
            }
            // No payload where one is required.
            3 => {
                let (call, dest) = self.pick(&[
                    ("admin.vm.notes.Set", "a1"),
                    ("admin.vm.firewall.Set", "a1"),
                    ("admin.label.Create+newlbl", "dom0"),
                    ("admin.vm.Create.TemplateVM", "dom0"),
                    ("admin.pool.Add+file", "dom0"),
                    ("admin.pool.Set.revisions_to_keep+extra", "dom0"),
                ]);
                case("expected payload", dom0(call, dest, b""), proto)
            }
            // Global calls aimed at a qube.
            4..=5 => {
                let (call, payload) = self.pick(&[
                    ("admin.label.Create+newlbl", b"0x112233" as &[u8]),
                    ("admin.label.Remove+spare", b""),
                    ("admin.vm.Create.TemplateVM", b"name=newq1 label=red"),
                    ("admin.vm.CreateInPool.TemplateVM", b"name=newq1 label=red pool=varlibqubes"),
                    ("admin.property.Set+default_qrexec_timeout", b"30"),
                    ("admin.property.Reset+default_qrexec_timeout", b""),
                    ("admin.pool.Add+file", b"name=p9\ndir_path=/tmp/p9"),
                    ("admin.pool.Remove+extra", b""),
                    ("admin.pool.Set.revisions_to_keep+extra", b"0"),
                    ("admin.pool.Set.ephemeral_volatile+extra", b"True"),
                ]);
                let dest = self.vm();
                case("expected AdminVM", dom0(call, dest, payload), proto)
            }
            // Per-qube calls that must not target dom0.
            6 => {
                let (call, payload) = self.pick(&[
                    ("admin.vm.notes.Set", b"new notes" as &[u8]),
                    ("admin.vm.firewall.Set", b"action=drop\n"),
                ]);
                let dest = if self.rng.gen_bool(0.5) {
                    "dom0".to_string()
                } else {
                    "uuid:00000000-0000-0000-0000-000000000000".to_string()
                };
                case("expected not AdminVM", dom0(call, &dest, payload), proto)
            }
            // Destinations that do not exist, or are not valid tokens.
            7..=8 => {
                let (call, _, payload) = self.pick(MUTATING);
                let (dest, expect) = match self.rng.gen_range(0..5) {
                    0 => (format!("nx{}", self.alnum(5)), not_found),
                    1 => (format!("uuid:{}", self.alnum_in(0..50)), Expect::Exception(None)),
                    2 => ("uuid:12345678-1234-1234-1234-123456789abc".to_string(), not_found),
                    3 => ("uuid:12345678-1234-1234-1234-123456789ABC".to_string(), Expect::Exception(None)),
                    _ => (
                        self.pick(&["", " ", "a1 ", " a1", "a1\n", "A1", "dom0 x"]).to_string(),
                        Expect::Exception(None),
                    ),
                };
                case("bad destination", dom0(call, &dest, payload), expect)
            }
            // Sources that do not exist.
            9..=10 => {
                let (call, dest, payload) = self.pick(MUTATING);
                let (src, expect) = match self.rng.gen_range(0..3) {
                    0 => (format!("nx{}", self.alnum(5)), not_found),
                    1 => (format!("uuid:{}", self.alnum(8)), Expect::Exception(None)),
                    _ => (String::new(), Expect::Exception(None)),
                };
                case("bad source", frame(call, &src, dest, payload), expect)
            }
            // Admin methods on the internal socket, internal methods on the admin socket.
            11 => {
                let (call, dest, payload) = self.pick(MUTATING);
                Case {
                    what: "admin method on internal socket",
                    sock: Sock::Internal,
                    bytes: dom0(call, dest, payload),
                    expect: proto,
                }
            }
            _ => {
                let (call, dest, payload) = self.pick(&[
                    ("internal.vm.volume.ImportBegin+private", "a1", b"" as &[u8]),
                    ("internal.vm.volume.ImportEnd+private", "a1", b"ok"),
                    ("internal.GetSystemInfo", "dom0", b""),
                ]);
                case("internal method on admin socket", dom0(call, dest, payload), proto)
            }
        }
    }

    fn random_method(&mut self) -> String {
        loop {
            let m = match self.rng.gen_range(0..4) {
                0 => self.token_in(1..40).replace('+', "."),
                1 => format!("admin.vm.{}", self.alnum_in(1..12)),
                2 => {
                    // Near misses of real names: case, a character more or less.
                    let base = self.pick(SPEC_METHODS);
                    match self.rng.gen_range(0..4) {
                        0 => base.to_ascii_lowercase(),
                        1 => format!("{base}{}", char::from(self.pick(b"Xs._1"))),
                        2 => base[..base.len() - 1].to_string(),
                        _ => base.replacen('.', "_", 1),
                    }
                }
                _ => format!(
                    "{}.{}",
                    self.pick(&["admin", "internal", "admin.vm", "qubes"]),
                    self.token(8).replace('+', "")
                ),
            };
            if !is_spec_method(&m) && !m.is_empty() {
                return m;
            }
        }
    }

    fn next(&mut self) -> Case {
        match self.rng.gen_range(0..100) {
            // Random bytes without a NUL: never a request.
            0..=5 => {
                let len = self.rng.gen_range(0..300);
                let b: Vec<u8> = self.bytes(len).into_iter().map(|b| if b == 0 { 1 } else { b }).collect();
                case("random bytes, no NUL", b, Expect::Abort)
            }
            // Random bytes led by a non-ASCII byte: the header is never ASCII.
            6..=9 => {
                let mut b = self.bytes_in(0..300);
                b.insert(0, self.rng.gen_range(0x80..=0xff));
                case("random bytes, non-ASCII header", b, Expect::Abort)
            }
            // A request cut anywhere before its NUL.
            10..=17 => {
                let (call, dest, payload) = self.pick(MUTATING);
                let full = dom0(call, dest, payload);
                let nul = full.iter().position(|b| *b == 0).unwrap_or(full.len());
                let cut = self.rng.gen_range(0..=nul);
                case("truncated header", full[..cut].to_vec(), Expect::Abort)
            }
            // The NUL replaced by other bytes, or dropped.
            18..=20 => {
                let (call, dest, payload) = self.pick(MUTATING);
                let mut b = dom0(call, dest, payload);
                let nul = b.iter().position(|b| *b == 0).unwrap_or(0);
                match self.rng.gen_range(0..3) {
                    0 => {
                        b.remove(nul);
                    }
                    1 => b[nul] = b' ',
                    _ => b[nul] = b'\n',
                }
                case("no NUL", b, Expect::Abort)
            }
            // A NUL inside the header before the destination: fewer than four fields, or a broken type.
            21..=23 => {
                let (call, dest, payload) = self.pick(MUTATING);
                let mut b = dom0(call, dest, payload);
                let dest_start = format!("{call} dom0 name ").len();
                let at = self.rng.gen_range(0..dest_start);
                b.insert(at, 0);
                case("NUL inside header", b, Expect::Abort)
            }
            // Wrong destination types, too few fields.
            24..=28 => {
                let (call, dest, payload) = self.pick(MUTATING);
                let b = match self.rng.gen_range(0..3) {
                    0 => {
                        let ty = self.pick(&["uuid", "NAME", "Name", "id", "kw", "keywords", "nam", "name\t", "qube"]);
                        let mut b = format!("{call} dom0 {ty} {dest}\0").into_bytes();
                        b.extend_from_slice(payload);
                        b
                    }
                    1 => {
                        let kw = self.pick(&["dom0", "adminvm ", "ADMINVM", "admin", "a1", "adminvm x", ""]);
                        let mut b = format!("{call} dom0 keyword {kw}\0").into_bytes();
                        b.extend_from_slice(payload);
                        b
                    }
                    _ => {
                        let h = match self.rng.gen_range(0..4) {
                            0 => format!("{call} dom0 name"),
                            1 => format!("{call} dom0"),
                            2 => call.to_string(),
                            _ => String::new(),
                        };
                        let mut b = h.into_bytes();
                        b.push(0);
                        b.extend_from_slice(payload);
                        b
                    }
                };
                case("bad destination type / fields", b, Expect::Abort)
            }
            // Larger than 64 KiB: dropped unread, however valid the rest.
            29..=31 => {
                let total = if self.rng.gen_bool(0.2) { 65537 } else { self.rng.gen_range(65537..150_000) };
                let (call, dest, fill) = self.pick(&[
                    ("admin.vm.notes.Set", "a1", b"n" as &[u8]),
                    ("admin.vm.feature.Set+cf-a", "a1", b"v"),
                    ("admin.vm.firewall.Set", "a1", b"action=accept\n"),
                    ("admin.vm.property.Set+default_user", "a1", b"u"),
                    ("admin.vm.notes.Set", "a2", "\u{e9}".as_bytes()),
                ]);
                let mut b = dom0(call, dest, b"");
                while b.len() < total {
                    b.extend_from_slice(fill);
                }
                b.truncate(total);
                case("over 64 KiB", b, Expect::Abort)
            }
            // Non-ASCII in the method or argument: abort; in the source or destination: refused either way.
            32..=35 => {
                let (call, dest, payload) = self.pick(MUTATING);
                let mut b = dom0(call, dest, payload);
                let nul = b.iter().position(|b| *b == 0).unwrap_or(0);
                let at = self.rng.gen_range(0..nul);
                b[at] = self.rng.gen_range(0x80..=0xff);
                let expect = if at < call.len() { Expect::Abort } else { Expect::Refused };
                case("non-ASCII header byte", b, expect)
            }
            // Unknown methods.
            36..=43 => {
                let m = self.random_method();
                let arg = if self.rng.gen_bool(0.5) { format!("+{}", self.token_in(0..10)) } else { String::new() };
                let dest = self.pick(&["dom0", "a1", "t1"]);
                let payload = self.bytes_in(0..20);
                case(
                    "unknown method",
                    dom0(&format!("{m}{arg}"), dest, &payload),
                    Expect::Exception(Some("ProtocolError")),
                )
            }
            // Reads with arbitrary arguments, payloads and destinations: they must answer.
            44..=55 => {
                let m = self.pick(READS);
                let arg = match self.rng.gen_range(0..4) {
                    0 => String::new(),
                    1 => format!("+{}", self.token_in(0..30)),
                    2 => format!(
                        "+{}",
                        self.pick(&["memory", "cf-a", "ct-x", "red", "mylabel", "root", "varlibqubes", "netvm", "nx"])
                    ),
                    _ => format!("+{}", "a".repeat(self.rng.gen_range(1000..60000))),
                };
                let payload = if self.rng.gen_bool(0.6) { Vec::new() } else { self.bytes_in(1..200) };
                let dest = self.pick(&[
                    "dom0",
                    "a1",
                    "a2",
                    "t1",
                    "t2",
                    "nosuchvm",
                    "uuid:bad",
                    "uuid:00000000-0000-0000-0000-000000000000",
                ]);
                case("read, random argument/payload", dom0(&format!("{m}{arg}"), dest, &payload), Expect::Answer)
            }
            // Reads cut after their NUL (payload truncated) are still requests; they must answer.
            56..=57 => {
                let m = self.pick(READS);
                let full = dom0(m, "a1", b"some payload\0with a NUL");
                let nul = full.iter().position(|b| *b == 0).unwrap_or(0);
                let cut = self.rng.gen_range(nul + 1..=full.len());
                case("read, truncated payload", full[..cut].to_vec(), Expect::Answer)
            }
            // Garbage to the internal socket.
            58..=60 => {
                let mut b = self.bytes_in(0..200);
                b.retain(|x| *x != 0);
                let bytes = if self.rng.gen_bool(0.5) {
                    b
                } else {
                    let mut h = b"internal.GetSystemInfo dom0 uuid dom0\0".to_vec();
                    h.extend_from_slice(&b);
                    h
                };
                Case { what: "garbage to internal socket", sock: Sock::Internal, bytes, expect: Expect::Abort }
            }
            61..=75 => self.generic_violation(),
            _ => self.invalid_mutation(),
        }
    }
}

/// Every prefix of a few requests: before the NUL they abort, after it (reads only) they answer.
fn truncation_sweep() -> Vec<Case> {
    let mut out = Vec::new();
    for (call, dest, payload) in MUTATING {
        let full = dom0(call, dest, payload);
        let nul = full.iter().position(|b| *b == 0).unwrap_or(full.len());
        for cut in 0..=nul {
            out.push(case("sweep: mutation cut before NUL", full[..cut].to_vec(), Expect::Abort));
        }
    }
    for (m, dest) in [
        ("admin.vm.property.Get+memory", "a1"),
        ("admin.vm.List", "dom0"),
        ("admin.label.Get+mylabel", "dom0"),
        ("admin.vm.feature.Get+cf-a", "a1"),
    ] {
        let full = dom0(m, dest, b"xy\0z");
        let nul = full.iter().position(|b| *b == 0).unwrap_or(full.len());
        for cut in 0..full.len() {
            let expect = if cut <= nul { Expect::Abort } else { Expect::Answer };
            out.push(case("sweep: read cut", full[..cut].to_vec(), expect));
        }
    }
    // The size limit's edge: 65536 bytes are read and answered (here: "unexpected payload"), one more is
    // dropped unread.
    for (total, expect) in [
        (65535, Expect::Exception(Some("ProtocolError"))),
        (65536, Expect::Exception(Some("ProtocolError"))),
        (65537, Expect::Abort),
    ] {
        let mut b = dom0("admin.vm.List", "dom0", b"");
        b.resize(total, b'p');
        out.push(case("sweep: size limit", b, expect));
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// The test

/// One request; `Err` only when the daemon cannot be reached or does not answer in time.
fn send(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut s = UnixStream::connect(path).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    // The daemon stops reading oversized requests and closes; a failed write is then expected.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        // Closing with unread input resets the connection: that is the no-reply answer.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(out),
        Err(e) => Err(format!("read: {e} (the daemon hangs?)")),
    }
}

fn check_reply(c: &Case, reply: &[u8]) -> Result<(), String> {
    let exc = support::parse_exception(reply);
    let ok = match c.expect {
        Expect::Abort => reply.is_empty(),
        Expect::Exception(None) => exc.is_some(),
        Expect::Exception(Some(t)) => exc.as_ref().is_some_and(|(ty, _)| ty == t),
        Expect::Refused => reply.is_empty() || exc.is_some(),
        Expect::Answer => reply.starts_with(b"0\0") || exc.is_some(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {:?}, got {:?}", c.expect, String::from_utf8_lossy(&reply[..reply.len().min(300)])))
    }
}

fn show(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
    if bytes.len() > 200 {
        format!("{s:?}… ({} bytes)", bytes.len())
    } else {
        format!("{s:?}")
    }
}

fn setup(d: &Daemon) {
    let extra = d.dir.path().join("extra-pool");
    let steps: Vec<(&str, &str, Vec<u8>)> = vec![
        ("admin.vm.Create.TemplateVM", "dom0", b"name=t1 label=black".to_vec()),
        ("admin.vm.Create.TemplateVM", "dom0", b"name=t2 label=green".to_vec()),
        ("admin.label.Create+mylabel", "dom0", b"0x123456".to_vec()),
        ("admin.label.Create+spare", "dom0", b"0xabcdef".to_vec()),
        ("admin.vm.Create.AppVM+t1", "dom0", b"name=a1 label=mylabel".to_vec()),
        ("admin.vm.Create.AppVM+t1", "dom0", b"name=a2 label=red".to_vec()),
        ("admin.vm.feature.Set+cf-a", "a1", b"1".to_vec()),
        ("admin.vm.feature.Set+cf-b", "a1", b"hello world".to_vec()),
        ("admin.vm.feature.Set+gui", "t1", b"1".to_vec()),
        ("admin.vm.tag.Set+ct-x", "a1", Vec::new()),
        ("admin.vm.tag.Set+ct-y", "a1", Vec::new()),
        ("admin.vm.tag.Set+ct-z", "t2", Vec::new()),
        (
            "admin.vm.firewall.Set",
            "a1",
            b"action=drop dst4=10.0.0.1/32 proto=tcp dstports=22-22\naction=accept\n".to_vec(),
        ),
        ("admin.vm.notes.Set", "a1", "hello\nnotes \u{e9}".as_bytes().to_vec()),
        ("admin.vm.property.Set+memory", "a1", b"800".to_vec()),
        ("admin.vm.property.Set+vcpus", "t1", b"4".to_vec()),
        ("admin.vm.property.Set+autostart", "a2", b"True".to_vec()),
        ("admin.property.Set+default_qrexec_timeout", "dom0", b"90".to_vec()),
        ("admin.pool.Add+file", "dom0", format!("name=extra\ndir_path={}", extra.display()).into_bytes()),
    ];
    for (m, dest, payload) in steps {
        d.ok(m, dest, &payload);
    }
}

#[test]
fn malformed_and_invalid_input_changes_nothing() {
    let cases = env_u64("CORRAL_MALFORMED_CASES", 4000);
    let seed = env_u64("CORRAL_MALFORMED_SEED", rand::random::<u64>() >> 1);
    println!("malformed test: seed {seed} (CORRAL_MALFORMED_SEED), {cases} random cases (CORRAL_MALFORMED_CASES)");
    let started = Instant::now();

    let d = Daemon::start();
    setup(&d);
    let db = d.state.join("corral.sqlite");
    let db_before = db_dump(&db);
    let api_before = api_dump(&d);
    let list_before = d.ok("admin.vm.List", "dom0", b"");
    assert!(list_before.contains("a1 class=AppVM"), "setup: {list_before}");

    let mut gen = Gen { rng: StdRng::seed_from_u64(seed) };
    let mut all: Vec<Case> = truncation_sweep();
    let sweep = all.len();
    all.extend((0..cases).map(|_| gen.next()));

    let mut per_kind: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    let mut aborted = 0;
    for (b, batch) in all.chunks(100).enumerate() {
        for (i, c) in batch.iter().enumerate() {
            let path = match c.sock {
                Sock::Admin => &d.admin,
                Sock::Internal => &d.internal,
            };
            *per_kind.entry(c.what).or_default() += 1;
            let reply = send(path, &c.bytes).unwrap_or_else(|e| {
                panic!(
                    "case {} ({}): {e}\nrequest: {}\nseed {seed}\ndaemon log:\n{}",
                    b * 100 + i,
                    c.what,
                    show(&c.bytes),
                    d.log()
                )
            });
            aborted += usize::from(reply.is_empty());
            if let Err(e) = check_reply(c, &reply) {
                panic!("case {} ({}): {e}\nrequest: {}\nseed {seed}", b * 100 + i, c.what, show(&c.bytes));
            }
        }
        let list = d.call("admin.vm.List", "dom0", b"");
        assert_eq!(
            String::from_utf8_lossy(&list),
            format!("0\0{list_before}"),
            "admin.vm.List after batch {b} (seed {seed})"
        );
        let now = db_dump(&db);
        if now != db_before {
            let cases: Vec<String> = batch.iter().map(|c| format!("  {}: {}", c.what, show(&c.bytes))).collect();
            panic!(
                "the database changed during batch {b} (seed {seed}):\n{}\nbatch:\n{}",
                first_difference(&db_before, &now),
                cases.join("\n")
            );
        }
    }

    let api_after = api_dump(&d);
    assert!(
        api_after == api_before,
        "the Admin API view changed (seed {seed}):\n{}",
        first_difference(&api_before, &api_after)
    );
    assert_eq!(db_dump(&db), db_before, "database dump (seed {seed})");
    let log = d.log();
    assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
    println!(
        "malformed test: seed {seed}: {} frames ({sweep} in the truncation sweep), {aborted} without reply, state unchanged, in {:.1?}",
        all.len(),
        started.elapsed()
    );
    for (k, n) in per_kind {
        println!("  {n:5}  {k}");
    }
}
