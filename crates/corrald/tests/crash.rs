//! Crash consistency, black box: a client makes thousands of acknowledged mutations while the daemon is
//! `kill -9`ed at random moments and restarted. Every mutation answered `0\0` must survive; a mutation
//! whose reply was lost (the daemon died under it) may or may not have landed, and the client finds out
//! which by reading the affected object back once the daemon is up again. Either way the object must show
//! exactly the old or exactly the new state, never a mix.
//!
//! Knobs (environment): `CORRAL_CRASH_MUTATIONS` (default 3000), `CORRAL_CRASH_KILLS` (default 25),
//! `CORRAL_CRASH_SEED` (default: random, printed), `CORRAL_CRASH_MIN_MS`/`CORRAL_CRASH_MAX_MS` (kill
//! interval, default 30–200 ms). The seed fixes the choice of mutations and the kill delays; which call a
//! kill interrupts still depends on timing, so a rerun with the same seed follows a similar, not identical, path.
//!
//! Run: `cargo test -p corrald --test crash -- --nocapture`

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::Daemon;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Wire

/// What one call came back with. `Lost` is every way of not getting an answer: connection refused, reset,
/// empty reply, timeout, or bytes that are neither OK nor EXCEPTION.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Ok(String),
    Exc(String, String),
    Lost(String),
}

fn call_once(sock: &Path, method: &str, dest: &str, payload: &[u8]) -> Reply {
    let mut s = match UnixStream::connect(sock) {
        Ok(s) => s,
        Err(e) => return Reply::Lost(format!("connect: {e}")),
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    let mut req = format!("{method} dom0 name {dest}\0").into_bytes();
    req.extend_from_slice(payload);
    if let Err(e) = s.write_all(&req) {
        return Reply::Lost(format!("write: {e}"));
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    if let Err(e) = s.read_to_end(&mut out) {
        return Reply::Lost(format!("read: {e}"));
    }
    if let Some(content) = out.strip_prefix(b"0\0") {
        return Reply::Ok(String::from_utf8_lossy(content).into_owned());
    }
    match support::parse_exception(&out) {
        Some((ty, msg)) => Reply::Exc(ty, msg),
        None if out.is_empty() => Reply::Lost("empty reply".into()),
        None => Reply::Lost(format!("garbled reply {:?}", String::from_utf8_lossy(&out))),
    }
}

/// The daemon's incarnation: odd while the killer is killing/restarting it, even while it runs.
struct Client {
    sock: PathBuf,
    generation: Arc<AtomicU64>,
    lost_replies: u64,
}

impl Client {
    /// One attempt. A lost reply while no kill happened is a daemon bug (internal error, panic, hang).
    fn send(&mut self, method: &str, dest: &str, payload: &[u8]) -> Reply {
        let g0 = self.generation.load(SeqCst);
        let r = call_once(&self.sock, method, dest, payload);
        let g1 = self.generation.load(SeqCst);
        if let Reply::Lost(why) = &r {
            assert!(
                g0 != g1 || g0 % 2 == 1,
                "{method} {dest}: reply lost ({why}) although the daemon was not being killed"
            );
            self.lost_replies += 1;
        }
        r
    }

    /// A read: retried until the (possibly restarted) daemon answers.
    fn read(&mut self, method: &str, dest: &str) -> Reply {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.send(method, dest, b"") {
                Reply::Lost(why) => {
                    assert!(Instant::now() < deadline, "{method} {dest}: daemon did not come back ({why})");
                    std::thread::sleep(Duration::from_millis(3));
                }
                r => return r,
            }
        }
    }

    fn observe(&mut self, p: &Probe) -> String {
        let (method, dest) = p.request();
        let r = self.read(&method, &dest);
        normalize(p, &r)
    }
}

// ---------------------------------------------------------------------------------------------------------
// The expected model

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    App,
    Template,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::App => "AppVM",
            Class::Template => "TemplateVM",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Vm {
    class: Class,
    template: Option<String>,
    /// Explicitly set tracked properties (canonical wire form).
    props: BTreeMap<&'static str, String>,
    /// In insertion order, as `feature.List` shows them.
    features: Vec<(String, String)>,
    /// The tags this test sets (`ct-*`).
    tags: BTreeSet<String>,
    firewall: String,
    notes: String,
}

/// Properties this test changes and checks, with their type.
const PROPS: [(&str, &str); 8] = [
    ("autostart", "bool"),
    ("debug", "bool"),
    ("default_user", "str"),
    ("include_in_backups", "bool"),
    ("label", "label"),
    ("maxmem", "int"),
    ("memory", "int"),
    ("vcpus", "int"),
];

const BUILTIN_LABELS: [(&str, &str); 8] = [
    ("red", "0xcc0000"),
    ("orange", "0xf57900"),
    ("yellow", "0xedd400"),
    ("green", "0x73d216"),
    ("gray", "0x555555"),
    ("blue", "0x3465a4"),
    ("purple", "0x75507b"),
    ("black", "0x000000"),
];

/// Tags every qube created by dom0 shows besides ours (`created-by-`, and the ones following the
/// guivm/audiovm defaults).
const AUTO_TAGS: [&str; 3] = ["audiovm-dom0", "created-by-dom0", "guivm-dom0"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Model {
    vms: BTreeMap<String, Vm>,
    /// (name, colour) in index order.
    labels: Vec<(String, String)>,
}

impl Model {
    fn new() -> Model {
        Model {
            vms: BTreeMap::new(),
            labels: BUILTIN_LABELS.iter().map(|(n, c)| (n.to_string(), c.to_string())).collect(),
        }
    }

    /// `(is_default, value)` as `property.Get` shows it.
    fn prop(&self, vm: &Vm, p: &str) -> (bool, String) {
        if let Some(v) = vm.props.get(p) {
            return (false, v.clone());
        }
        let tpl = vm.template.as_ref().and_then(|t| self.vms.get(t));
        let v = match (p, tpl) {
            ("memory" | "vcpus" | "default_user", Some(t)) => self.prop(t, p).1,
            ("memory", None) => "400".into(),
            ("vcpus", None) => "2".into(),
            ("default_user", None) => "user".into(),
            ("maxmem", _) => "0".into(),
            ("autostart" | "debug", _) => "False".into(),
            ("include_in_backups", _) => "True".into(),
            _ => String::new(),
        };
        (true, v)
    }

    fn dependents(&self, name: &str) -> usize {
        self.vms.values().filter(|v| v.template.as_deref() == Some(name)).count()
    }

    /// The model after `op`, or the exception type the daemon must answer with.
    fn apply(&self, op: &Op) -> Result<Model, &'static str> {
        fn vm_mut<'a>(m: &'a mut Model, name: &str) -> Result<&'a mut Vm, &'static str> {
            m.vms.get_mut(name).ok_or("QubesVMNotFoundError")
        }
        let mut m = self.clone();
        match op {
            Op::Create { class, name, template, label } => {
                if m.vms.contains_key(name) {
                    return Err("QubesVMAlreadyExistsError");
                }
                let mut props = BTreeMap::new();
                props.insert("label", label.clone());
                m.vms.insert(
                    name.clone(),
                    Vm {
                        class: *class,
                        template: template.clone(),
                        props,
                        features: Vec::new(),
                        tags: BTreeSet::new(),
                        firewall: "action=accept\n".into(),
                        notes: String::new(),
                    },
                );
            }
            Op::Remove { name } => {
                vm_mut(&mut m, name)?;
                if m.dependents(name) > 0 {
                    return Err("QubesVMInUseError");
                }
                m.vms.remove(name);
            }
            Op::PropSet { vm, prop, canon, .. } => {
                vm_mut(&mut m, vm)?.props.insert(prop, canon.clone());
            }
            Op::PropReset { vm, prop } => {
                let v = vm_mut(&mut m, vm)?;
                if *prop == "label" {
                    return Err("QubesValueError");
                }
                v.props.remove(prop);
            }
            Op::FeatureSet { vm, name, value } => {
                let v = vm_mut(&mut m, vm)?;
                match v.features.iter_mut().find(|(k, _)| k == name) {
                    Some((_, old)) => *old = value.clone(),
                    None => v.features.push((name.clone(), value.clone())),
                }
            }
            Op::FeatureRemove { vm, name } => {
                let v = vm_mut(&mut m, vm)?;
                let pos = v.features.iter().position(|(k, _)| k == name).ok_or("QubesFeatureNotFoundError")?;
                v.features.remove(pos);
            }
            Op::TagSet { vm, tag } => {
                vm_mut(&mut m, vm)?.tags.insert(tag.clone());
            }
            Op::TagRemove { vm, tag } => {
                if !vm_mut(&mut m, vm)?.tags.remove(tag) {
                    return Err("QubesTagNotFoundError");
                }
            }
            Op::LabelCreate { name, color } => {
                if m.labels.iter().any(|(n, _)| n == name) {
                    return Err("QubesLabelInUseError");
                }
                m.labels.push((name.clone(), color.to_ascii_lowercase()));
            }
            Op::FirewallSet { vm, canon, .. } => vm_mut(&mut m, vm)?.firewall = canon.clone(),
            Op::NotesSet { vm, text } => vm_mut(&mut m, vm)?.notes = text.clone(),
        }
        Ok(m)
    }

    /// What `p` must read under this model, in `normalize`'s form.
    fn expect(&self, p: &Probe) -> String {
        const NOT_FOUND: &str = "EXC QubesVMNotFoundError";
        let vm = |name: &str| self.vms.get(name);
        match p {
            Probe::VmListAll => {
                let mut names: Vec<(&str, &str)> = self.vms.iter().map(|(n, v)| (n.as_str(), v.class.name())).collect();
                names.push(("dom0", "AdminVM"));
                names.sort();
                let lines: String = names
                    .iter()
                    .map(|(n, c)| {
                        let state = if *n == "dom0" { "Running" } else { "Halted" };
                        format!("{n} class={c} state={state}\n")
                    })
                    .collect();
                format!("OK {lines}")
            }
            Probe::VmList(n) => match vm(n) {
                Some(v) => format!("OK {n} class={} state=Halted\n", v.class.name()),
                None => NOT_FOUND.into(),
            },
            Probe::Props(n) => match vm(n) {
                Some(v) => {
                    let lines: String = PROPS
                        .iter()
                        .map(|(p, ty)| {
                            let (d, val) = self.prop(v, p);
                            let d = if d { "True" } else { "False" };
                            format!("{p} default={d} type={ty} {val}\n")
                        })
                        .collect();
                    format!("OK {lines}")
                }
                None => NOT_FOUND.into(),
            },
            Probe::Prop(n, p) => match vm(n) {
                Some(v) => {
                    let (d, val) = self.prop(v, p);
                    let ty = PROPS.iter().find(|(name, _)| name == p).map_or("?", |(_, t)| *t);
                    format!("OK default={} type={ty} {val}", if d { "True" } else { "False" })
                }
                None => NOT_FOUND.into(),
            },
            Probe::FeatureList(n) => match vm(n) {
                Some(v) => format!("OK {}", v.features.iter().map(|(k, _)| format!("{k}\n")).collect::<String>()),
                None => NOT_FOUND.into(),
            },
            Probe::FeatureGet(n, f) => match vm(n) {
                Some(v) => match v.features.iter().find(|(k, _)| k == f) {
                    Some((_, val)) => format!("OK {val}"),
                    None => "EXC QubesFeatureNotFoundError".into(),
                },
                None => NOT_FOUND.into(),
            },
            Probe::TagList(n) => match vm(n) {
                Some(v) => {
                    let mut tags: Vec<&str> = v.tags.iter().map(String::as_str).collect();
                    tags.extend(AUTO_TAGS);
                    tags.sort_unstable();
                    format!("OK {}", tags.iter().map(|t| format!("{t}\n")).collect::<String>())
                }
                None => NOT_FOUND.into(),
            },
            Probe::TagGet(n, t) => match vm(n) {
                Some(v) => format!("OK {}", if v.tags.contains(t) { 1 } else { 0 }),
                None => NOT_FOUND.into(),
            },
            Probe::LabelList => {
                format!("OK {}", self.labels.iter().map(|(n, _)| format!("{n}\n")).collect::<String>())
            }
            Probe::LabelGet(l) => match self.labels.iter().find(|(n, _)| n == l) {
                Some((_, c)) => format!("OK {c}"),
                None => "EXC QubesLabelNotFoundError".into(),
            },
            Probe::Firewall(n) => match vm(n) {
                Some(v) => format!("OK {}", v.firewall),
                None => NOT_FOUND.into(),
            },
            Probe::Notes(n) => match vm(n) {
                Some(v) => format!("OK {}", v.notes),
                None => NOT_FOUND.into(),
            },
        }
    }

    /// Every probe that together shows the whole state this test controls; `each_prop` adds a
    /// `property.Get` per property on top of `GetAll`.
    fn all_probes(&self, each_prop: bool) -> Vec<Probe> {
        let mut out = vec![Probe::VmListAll, Probe::LabelList];
        out.extend(self.labels.iter().skip(BUILTIN_LABELS.len()).map(|(n, _)| Probe::LabelGet(n.clone())));
        for (name, vm) in &self.vms {
            out.extend(vm_probes(name));
            out.extend(vm.features.iter().map(|(f, _)| Probe::FeatureGet(name.clone(), f.clone())));
            if each_prop {
                out.extend(PROPS.iter().map(|(p, _)| Probe::Prop(name.clone(), p)));
            }
        }
        out
    }
}

fn vm_probes(name: &str) -> Vec<Probe> {
    let n = || name.to_string();
    vec![
        Probe::VmList(n()),
        Probe::Props(n()),
        Probe::FeatureList(n()),
        Probe::TagList(n()),
        Probe::Firewall(n()),
        Probe::Notes(n()),
    ]
}

/// A read that shows part of the state.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Probe {
    VmListAll,
    VmList(String),
    /// `property.GetAll`, restricted to `PROPS`.
    Props(String),
    /// `property.Get` of one of `PROPS`.
    Prop(String, &'static str),
    FeatureList(String),
    FeatureGet(String, String),
    TagList(String),
    TagGet(String, String),
    LabelList,
    LabelGet(String),
    Firewall(String),
    Notes(String),
}

impl Probe {
    fn request(&self) -> (String, String) {
        let d = |s: &str| s.to_string();
        match self {
            Probe::VmListAll => (d("admin.vm.List"), d("dom0")),
            Probe::VmList(n) => (d("admin.vm.List"), n.clone()),
            Probe::Props(n) => (d("admin.vm.property.GetAll"), n.clone()),
            Probe::Prop(n, p) => (format!("admin.vm.property.Get+{p}"), n.clone()),
            Probe::FeatureList(n) => (d("admin.vm.feature.List"), n.clone()),
            Probe::FeatureGet(n, f) => (format!("admin.vm.feature.Get+{f}"), n.clone()),
            Probe::TagList(n) => (d("admin.vm.tag.List"), n.clone()),
            Probe::TagGet(n, t) => (format!("admin.vm.tag.Get+{t}"), n.clone()),
            Probe::LabelList => (d("admin.label.List"), d("dom0")),
            Probe::LabelGet(l) => (format!("admin.label.Get+{l}"), d("dom0")),
            Probe::Firewall(n) => (d("admin.vm.firewall.Get"), n.clone()),
            Probe::Notes(n) => (d("admin.vm.notes.Get"), n.clone()),
        }
    }
}

/// Reply in a comparable form: `OK <content>` or `EXC <type>`; uuids (random) are dropped from listings,
/// and `GetAll` keeps only the tracked properties.
fn normalize(p: &Probe, r: &Reply) -> String {
    match r {
        Reply::Ok(c) => match p {
            Probe::VmListAll | Probe::VmList(_) => {
                let lines: String = c.lines().map(|l| format!("{}\n", l.split(" uuid=").next().unwrap_or(l))).collect();
                format!("OK {lines}")
            }
            Probe::Props(_) => {
                let lines: String = c
                    .lines()
                    .filter(|l| PROPS.iter().any(|(n, _)| l.split(' ').next() == Some(n)))
                    .map(|l| format!("{l}\n"))
                    .collect();
                format!("OK {lines}")
            }
            _ => format!("OK {c}"),
        },
        Reply::Exc(t, _) => format!("EXC {t}"),
        Reply::Lost(why) => format!("LOST {why}"),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Mutations

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Create {
        class: Class,
        name: String,
        template: Option<String>,
        label: String,
    },
    Remove {
        name: String,
    },
    /// `wire` is what is sent, `canon` what Get must show.
    PropSet {
        vm: String,
        prop: &'static str,
        wire: String,
        canon: String,
    },
    PropReset {
        vm: String,
        prop: &'static str,
    },
    FeatureSet {
        vm: String,
        name: String,
        value: String,
    },
    FeatureRemove {
        vm: String,
        name: String,
    },
    TagSet {
        vm: String,
        tag: String,
    },
    TagRemove {
        vm: String,
        tag: String,
    },
    LabelCreate {
        name: String,
        color: String,
    },
    FirewallSet {
        vm: String,
        wire: String,
        canon: String,
    },
    NotesSet {
        vm: String,
        text: String,
    },
}

impl Op {
    fn request(&self) -> (String, String, Vec<u8>) {
        match self {
            Op::Create { class, name, template, label } => {
                let method = match template {
                    Some(t) => format!("admin.vm.Create.{}+{t}", class.name()),
                    None => format!("admin.vm.Create.{}", class.name()),
                };
                (method, "dom0".into(), format!("name={name} label={label}").into_bytes())
            }
            Op::Remove { name } => ("admin.vm.Remove".into(), name.clone(), Vec::new()),
            Op::PropSet { vm, prop, wire, .. } => {
                (format!("admin.vm.property.Set+{prop}"), vm.clone(), wire.clone().into_bytes())
            }
            Op::PropReset { vm, prop } => (format!("admin.vm.property.Reset+{prop}"), vm.clone(), Vec::new()),
            Op::FeatureSet { vm, name, value } => {
                (format!("admin.vm.feature.Set+{name}"), vm.clone(), value.clone().into_bytes())
            }
            Op::FeatureRemove { vm, name } => (format!("admin.vm.feature.Remove+{name}"), vm.clone(), Vec::new()),
            Op::TagSet { vm, tag } => (format!("admin.vm.tag.Set+{tag}"), vm.clone(), Vec::new()),
            Op::TagRemove { vm, tag } => (format!("admin.vm.tag.Remove+{tag}"), vm.clone(), Vec::new()),
            Op::LabelCreate { name, color } => {
                (format!("admin.label.Create+{name}"), "dom0".into(), color.clone().into_bytes())
            }
            Op::FirewallSet { vm, wire, .. } => ("admin.vm.firewall.Set".into(), vm.clone(), wire.clone().into_bytes()),
            Op::NotesSet { vm, text } => ("admin.vm.notes.Set".into(), vm.clone(), text.clone().into_bytes()),
        }
    }

    /// The reads that tell whether this op landed (and that it landed whole).
    fn probes(&self) -> Vec<Probe> {
        match self {
            Op::Create { name, .. } | Op::Remove { name } => vm_probes(name),
            Op::PropSet { vm, .. } | Op::PropReset { vm, .. } => vec![Probe::Props(vm.clone())],
            Op::FeatureSet { vm, name, .. } | Op::FeatureRemove { vm, name } => {
                vec![Probe::FeatureList(vm.clone()), Probe::FeatureGet(vm.clone(), name.clone())]
            }
            Op::TagSet { vm, tag } | Op::TagRemove { vm, tag } => {
                vec![Probe::TagList(vm.clone()), Probe::TagGet(vm.clone(), tag.clone())]
            }
            Op::LabelCreate { name, .. } => vec![Probe::LabelList, Probe::LabelGet(name.clone())],
            Op::FirewallSet { vm, .. } => vec![Probe::Firewall(vm.clone())],
            Op::NotesSet { vm, .. } => vec![Probe::Notes(vm.clone())],
        }
    }
}

const MAX_QUBES: usize = 30;

struct Gen {
    rng: StdRng,
    next_vm: u32,
    next_label: u32,
    /// Names of removed qubes, reused now and then: a crash between a removal's commit and its file
    /// cleanup must not keep the name from being used again.
    removed: Vec<String>,
    /// A create whose reply was lost and that did not land; a real client retries exactly that.
    retry: Option<Op>,
}

impl Gen {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.gen_range(0..items.len())]
    }

    fn new_name(&mut self, m: &Model) -> String {
        if !self.removed.is_empty() && self.rng.gen_bool(0.3) {
            let i = self.rng.gen_range(0..self.removed.len());
            let n = self.removed.swap_remove(i);
            if !m.vms.contains_key(&n) {
                return n;
            }
        }
        self.next_vm += 1;
        format!("q{}", self.next_vm)
    }

    fn printable(&mut self, max: usize) -> String {
        let len = self.rng.gen_range(0..=max);
        (0..len).map(|_| char::from(self.rng.gen_range(0x20u8..0x7f))).collect()
    }

    fn op(&mut self, m: &Model) -> Op {
        if let Some(op) = self.retry.take() {
            if let Op::Create { template: Some(t), .. } = &op {
                if m.vms.contains_key(t) {
                    return op;
                }
            } else {
                return op;
            }
        }
        let vms: Vec<String> = m.vms.keys().cloned().collect();
        let templates: Vec<String> =
            m.vms.iter().filter(|(_, v)| v.class == Class::Template).map(|(n, _)| n.clone()).collect();
        let labels: Vec<String> = m.labels.iter().map(|(n, _)| n.clone()).collect();
        let roll = self.rng.gen_range(0..100);
        if templates.is_empty() || (vms.len() < 4 && roll < 50) {
            let name = self.new_name(m);
            let label = self.pick(&labels).clone();
            return Op::Create { class: Class::Template, name, template: None, label };
        }
        if vms.len() >= MAX_QUBES && roll < 40 {
            let name = self.pick(&vms).clone();
            return Op::Remove { name };
        }
        let vm = self.pick(&vms).clone();
        match roll {
            0..=3 => {
                let name = self.new_name(m);
                let label = self.pick(&labels).clone();
                Op::Create { class: Class::Template, name, template: None, label }
            }
            4..=11 => {
                // Now and then a duplicate name, which must be refused without touching the original.
                let name = if self.rng.gen_bool(0.05) { vm.clone() } else { self.new_name(m) };
                let template = Some(self.pick(&templates).clone());
                let label = self.pick(&labels).clone();
                Op::Create { class: Class::App, name, template, label }
            }
            12..=16 => Op::Remove { name: vm },
            17..=38 => {
                let (prop, ty) = *self.pick(&PROPS);
                let (wire, canon) = match ty {
                    "bool" => {
                        let b = self.rng.gen_bool(0.5);
                        let spellings: &[&str] =
                            if b { &["True", "true", "1", "yes", "on", "YES"] } else { &["False", "0", "no", "off"] };
                        (self.pick(spellings).to_string(), if b { "True" } else { "False" }.to_string())
                    }
                    "int" => {
                        let lo = if prop == "maxmem" { 0 } else { 1 };
                        let n: u32 = self.rng.gen_range(lo..20000);
                        let wire = if self.rng.gen_bool(0.2) { format!(" {n}\n") } else { n.to_string() };
                        (wire, n.to_string())
                    }
                    "label" => {
                        let l = self.pick(&labels).clone();
                        (l.clone(), l)
                    }
                    _ => {
                        const CH: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+,.-";
                        let len = self.rng.gen_range(1..12);
                        let u: String = (0..len).map(|_| char::from(*self.pick(CH))).collect();
                        (u.clone(), u)
                    }
                };
                Op::PropSet { vm, prop, wire, canon }
            }
            39..=46 => {
                // `label` cannot be reset: the daemon must refuse it and change nothing.
                let prop = self.pick(&PROPS).0;
                Op::PropReset { vm, prop }
            }
            47..=58 => {
                let name = format!("cf-{}", self.rng.gen_range(0..6));
                let value = self.printable(24);
                Op::FeatureSet { vm, name, value }
            }
            59..=65 => {
                let present: Vec<String> = m.vms[&vm].features.iter().map(|(k, _)| k.clone()).collect();
                let name = if present.is_empty() || self.rng.gen_bool(0.1) {
                    format!("cf-{}", self.rng.gen_range(0..6))
                } else {
                    self.pick(&present).clone()
                };
                Op::FeatureRemove { vm, name }
            }
            66..=74 => Op::TagSet { vm, tag: format!("ct-{}", self.rng.gen_range(0..6)) },
            75..=80 => {
                let present: Vec<String> = m.vms[&vm].tags.iter().cloned().collect();
                let tag = if present.is_empty() || self.rng.gen_bool(0.1) {
                    format!("ct-{}", self.rng.gen_range(0..6))
                } else {
                    self.pick(&present).clone()
                };
                Op::TagRemove { vm, tag }
            }
            81..=82 => {
                let name = if self.rng.gen_bool(0.1) {
                    self.pick(&labels).clone()
                } else {
                    self.next_label += 1;
                    format!("cl{}", self.next_label)
                };
                let color = format!("0x{:06X}", self.rng.gen_range(0..0x100_0000u32));
                Op::LabelCreate { name, color }
            }
            83..=91 => {
                let n = self.rng.gen_range(1..4);
                let (mut wire, mut canon) = (String::new(), String::new());
                for _ in 0..n {
                    let (a, b, c) =
                        (self.rng.gen_range(0..255), self.rng.gen_range(0..255), self.rng.gen_range(1..255));
                    let port: u16 = self.rng.gen_range(1..65535);
                    if self.rng.gen_bool(0.5) {
                        let host = if self.rng.gen_bool(0.5) { "dsthost" } else { "dst4" };
                        wire += &format!("action=drop {host}=10.{a}.{b}.{c} proto=tcp dstports={port}-{port}\n");
                        canon += &format!("action=drop dst4=10.{a}.{b}.{c}/32 proto=tcp dstports={port}-{port}\n");
                    } else {
                        let line = format!("action=accept dst4=10.{a}.0.0/16\n");
                        wire += &line;
                        canon += &line;
                    }
                }
                let last = if self.rng.gen_bool(0.5) { "action=accept\n" } else { "action=drop\n" };
                wire += last;
                canon += last;
                Op::FirewallSet { vm, wire, canon }
            }
            _ => {
                const CH: &[char] = &['a', 'b', 'Z', '0', ' ', '\n', '\t', 'é', 'ü', '日', '€', '.', '#'];
                let len =
                    if self.rng.gen_bool(0.05) { self.rng.gen_range(1000..20000) } else { self.rng.gen_range(1..80) };
                let text: String = (0..len).map(|_| *self.pick(CH)).collect();
                Op::NotesSet { vm, text }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The test

#[derive(Default, Debug)]
struct Stats {
    ops: u64,
    acked: u64,
    refused: u64,
    lost: u64,
    lost_landed: u64,
    lost_not_landed: u64,
    retries_of_lost_creates: u64,
    full_checks: u64,
}

fn check_all(client: &mut Client, model: &Model, when: &str, each_prop: bool) {
    let mut diffs = Vec::new();
    for p in model.all_probes(each_prop) {
        let want = model.expect(&p);
        let got = client.observe(&p);
        if want != got {
            diffs.push(format!("  {p:?}\n    want {want:?}\n    got  {got:?}"));
        }
    }
    assert!(diffs.is_empty(), "state differs from the acknowledged model ({when}):\n{}", diffs.join("\n"));
}

fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn acknowledged_mutations_survive_kill_9() {
    let mutations = env_u64("CORRAL_CRASH_MUTATIONS", 3000);
    let kills = env_u64("CORRAL_CRASH_KILLS", 25);
    let min_ms = env_u64("CORRAL_CRASH_MIN_MS", 30);
    let max_ms = env_u64("CORRAL_CRASH_MAX_MS", 200).max(min_ms);
    let seed = env_u64("CORRAL_CRASH_SEED", rand::random::<u64>() >> 1);
    println!(
        "crash test: seed {seed} (CORRAL_CRASH_SEED), {mutations} mutations, {kills} kills every {min_ms}-{max_ms} ms"
    );
    let started = Instant::now();

    let mut daemon = Daemon::start();
    let log_path = daemon.dir.path().join("corrald.log");
    let generation = Arc::new(AtomicU64::new(0));
    let killer_done = Arc::new(AtomicBool::new(false));
    let client_done = Arc::new(AtomicBool::new(false));
    let mut client = Client { sock: daemon.admin.clone(), generation: generation.clone(), lost_replies: 0 };

    let killer = {
        let (generation, killer_done, client_done) = (generation.clone(), killer_done.clone(), client_done.clone());
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x6b69_6c6c);
            let mut done = 0;
            while done < kills && !client_done.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(rng.gen_range(min_ms..=max_ms)));
                generation.fetch_add(1, SeqCst);
                daemon.kill9();
                daemon.spawn();
                generation.fetch_add(1, SeqCst);
                done += 1;
            }
            killer_done.store(true, SeqCst);
            (daemon, done)
        })
    };

    let mut model = Model::new();
    let mut stats = Stats::default();
    let mut gen = Gen { rng: StdRng::seed_from_u64(seed), next_vm: 0, next_label: 0, removed: Vec::new(), retry: None };
    let mut history: Vec<String> = Vec::new();
    let mut last_checked_gen = 0;
    let mut ops_since_check = 0;
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Every kill must land during mutations, so the client goes on until the killer is done.
        while (stats.ops < mutations || !killer_done.load(SeqCst)) && stats.ops < mutations * 20 {
            let op = gen.op(&model);
            let predicted = model.apply(&op);
            let (method, dest, payload) = op.request();
            let reply = client.send(&method, &dest, &payload);
            stats.ops += 1;
            let outcome = match (&reply, &predicted) {
                (Reply::Ok(_), Ok(after)) => {
                    stats.acked += 1;
                    model = after.clone();
                    "ok".to_string()
                }
                (Reply::Exc(ty, _), Err(want)) if ty == want => {
                    stats.refused += 1;
                    format!("refused {ty}")
                }
                (Reply::Lost(why), _) => {
                    stats.lost += 1;
                    let after = predicted.clone().unwrap_or_else(|_| model.clone());
                    let probes = op.probes();
                    let got: Vec<String> = probes.iter().map(|p| client.observe(p)).collect();
                    let want_after: Vec<String> = probes.iter().map(|p| after.expect(p)).collect();
                    let want_before: Vec<String> = probes.iter().map(|p| model.expect(p)).collect();
                    if got == want_after && after != model {
                        stats.lost_landed += 1;
                        model = after;
                        format!("lost ({why}), landed")
                    } else if got == want_before {
                        stats.lost_not_landed += 1;
                        if matches!(op, Op::Create { .. }) && predicted.is_ok() {
                            stats.retries_of_lost_creates += 1;
                            gen.retry = Some(op.clone());
                        }
                        format!("lost ({why}), not landed")
                    } else {
                        panic!(
                            "{op:?}: reply lost ({why}); the state after restart is neither the old nor the new one\n\
                             probes: {probes:?}\n got:    {got:?}\n old:    {want_before:?}\n new:    {want_after:?}"
                        );
                    }
                }
                (r, p) => panic!("{op:?}: daemon answered {r:?}, the model predicts {:?}", p.as_ref().map(|_| "OK")),
            };
            if let Op::Remove { name } = &op {
                if !model.vms.contains_key(name) {
                    gen.removed.push(name.clone());
                }
            }
            history.push(format!("#{} {method} {dest}: {outcome}", stats.ops));
            // After a restart, the whole state is compared (at most every 20 ops, so verification does not
            // crowd out mutations when kills come fast).
            let g = generation.load(SeqCst);
            ops_since_check += 1;
            if g & 1 == 0 && g != last_checked_gen && ops_since_check >= 20 {
                last_checked_gen = g;
                ops_since_check = 0;
                stats.full_checks += 1;
                check_all(&mut client, &model, &format!("after restart, generation {g}"), false);
            }
        }
    }));
    client_done.store(true, SeqCst);
    let joined = killer.join();
    if let Err(e) = run {
        let tail = history[history.len().saturating_sub(15)..].join("\n");
        eprintln!("seed {seed}; last operations:\n{tail}\n--- daemon log (tail) ---\n{}", log_tail(&log_path));
        std::panic::resume_unwind(e);
    }
    let (mut daemon, kills_done) = match joined {
        Ok(v) => v,
        Err(e) => {
            eprintln!("seed {seed}: the daemon did not restart\n--- daemon log (tail) ---\n{}", log_tail(&log_path));
            std::panic::resume_unwind(e);
        }
    };

    // The live daemon, then a fresh one that knows only what SQLite kept.
    check_all(&mut client, &model, "end of run", true);
    daemon.restart();
    generation.fetch_add(2, SeqCst);
    check_all(&mut client, &model, "after a final restart", true);
    let log = daemon.log();
    daemon.kill9();
    assert!(!log.contains("panicked"), "the daemon panicked:\n{}", log_tail(&log_path));
    assert!(!log.contains("quarantined invalid row"), "rows were quarantined at load:\n{}", log_tail(&log_path));

    let conn = rusqlite::Connection::open(daemon.state.join("corral.sqlite")).expect("open the state database");
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity_check");
    assert_eq!(integrity, "ok", "PRAGMA integrity_check");
    let fk_violations: i64 = conn
        .prepare("PRAGMA foreign_key_check")
        .and_then(|mut s| s.query_map([], |_| Ok(())).map(|rows| rows.count() as i64))
        .expect("foreign_key_check");
    assert_eq!(fk_violations, 0, "PRAGMA foreign_key_check found dangling rows");

    println!(
        "crash test: seed {seed}, {kills_done} kills, {:?}, {} qubes and {} labels at the end, {} lost replies in all, in {:.1?}",
        stats,
        model.vms.len(),
        model.labels.len(),
        client.lost_replies,
        started.elapsed()
    );
    assert_eq!(kills_done, kills, "the client stopped before every kill was done");
    assert!(stats.lost > 0 || kills == 0, "no mutation was ever interrupted; the kills missed the writes");
}
