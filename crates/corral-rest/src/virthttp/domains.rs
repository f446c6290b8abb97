//! `/libvirt/domains`: qubes (dom0 aside) as libvirt domains. A qube is found in the caller's view (one it
//! may not see is missing); queries answer from the view and, for a running qube, from libvirt's figures;
//! actions, changes and computed reads are typed requests through `Service::handle`, so the Admin API's gate
//! checks them and sees the same qubes change; creation makes a StandaloneVM out of a domain XML.

use corral_core::domain::Domain;
use corral_core::hv::{KeycodeSet, PowerState};
use corral_service::{NewVm, Request, Response, VmSettings};
use quick_xml::events::Event;
use serde_json::{json, Value};
use uuid::Uuid;

use super::envelope::{Call, Envelope};
use super::json::Json;
use super::target::{self, Flags, Target, LIST_DOMAINS};
use super::{run_actions, selection, unexpected, Outcome, Req, Selection};

pub(super) fn handle(req: &Req<'_>, env: &mut Envelope) {
    if req.method == axum::http::Method::POST {
        return create(req, env);
    }
    let Some(domains) = resolve(req, env) else { return };
    for d in &domains {
        match req.method.as_str() {
            "GET" => {
                query(req, d, env);
            }
            "PATCH" => match req.body {
                Json::Obj(_) => {
                    alter(req, d, req.body, env);
                }
                Json::Arr(items) => run_actions(items, env, |action, env| alter(req, d, action, env)),
                _ => env.error(3),
            },
            _ => {
                vacuum(req, d, env);
            }
        }
    }
}

/// The qubes a request is about: one by name or uuid, or every qube the list flags select (dom0 is no
/// domain here). `None` after an error was reported.
fn resolve(req: &Req<'_>, env: &mut Envelope) -> Option<Vec<Domain>> {
    let app = req.service.view(&crate::principal());
    match selection(req, env)? {
        Selection::One { by_uuid, id } => {
            let found =
                if by_uuid { Uuid::parse_str(id).ok().and_then(|u| app.domain_by_uuid(&u)) } else { app.domain(id) };
            match found.filter(|d| !d.is_admin()) {
                Some(d) => Some(vec![d.clone()]),
                None => {
                    env.error(100);
                    None
                }
            }
        }
        Selection::List => {
            let Some(flags) = list_flags(req.target) else {
                // virthttp reports the bad token, then the failed search.
                env.error(301);
                env.error(102);
                return None;
            };
            let selected = app
                .domains()
                .filter(|d| !d.is_admin())
                .filter(|d| {
                    let autostart = app.vm_prop(d, "autostart").as_deref() == Some("True");
                    listed(flags, app.power(d), autostart)
                })
                .cloned()
                .collect();
            Some(selected)
        }
    }
}

/// The list query's flags as one `virConnectListAllDomainsFlags` set; `None` for an unknown `state` token.
fn list_flags(t: &Target) -> Option<u32> {
    let mut flags = 0;
    for (key, yes, no) in [
        ("active", "active", "inactive"),
        ("persistent", "persistent", "transient"),
        ("managed_save", "managed_save", "no_managed_save"),
        ("autostart", "autostart", "no_autostart"),
        ("has_snapshot", "has_snapshot", "no_snapshot"),
    ] {
        if let Some(b) = t.flag_bool(key) {
            flags |= LIST_DOMAINS.bit(if b { yes } else { no });
        }
    }
    Some(flags | LIST_DOMAINS.parse_csv(t.get("state"))?)
}

/// libvirt's list filter: flags of one group are alternatives, groups must all match. Every qube is
/// persistent, none has libvirt snapshots; one saved to disk is a shut-off domain with a managed save.
fn listed(flags: u32, state: PowerState, autostart: bool) -> bool {
    let f = |name| LIST_DOMAINS.bit(name);
    let state_bit = match state {
        PowerState::Running => f("running"),
        PowerState::Paused => f("paused"),
        PowerState::Halted | PowerState::Saved => f("shutoff"),
        _ => f("other"),
    };
    let facts = if state.is_live() { f("active") } else { f("inactive") }
        | f("persistent")
        | state_bit
        | if state == PowerState::Saved { f("managed_save") } else { f("no_managed_save") }
        | if autostart { f("autostart") } else { f("no_autostart") }
        | f("no_snapshot");
    let groups = [
        f("active") | f("inactive"),
        f("persistent") | f("transient"),
        f("running") | f("paused") | f("shutoff") | f("other"),
        f("managed_save") | f("no_managed_save"),
        f("autostart") | f("no_autostart"),
        f("has_snapshot") | f("no_snapshot"),
    ];
    groups.iter().all(|g| flags & g == 0 || flags & g & facts != 0)
}

/// libvirt's names of domain states.
fn status(state: PowerState) -> &'static str {
    match state {
        PowerState::Running => "Running",
        PowerState::Paused => "Paused",
        PowerState::Suspended => "Power Management Suspended",
        PowerState::Halting | PowerState::Dying => "Shutting down",
        PowerState::Crashed => "Crashed",
        PowerState::Halted | PowerState::Saved => "Shutoff",
        PowerState::Transient | PowerState::NA => "No State",
    }
}

/// virthttp's info object. A running qube shows libvirt's figures; a halted one what its properties
/// would give it (the domain XML's `<memory>` is the larger of `memory` and `maxmem`).
fn info(req: &Req<'_>, d: &Domain) -> Value {
    let app = req.service.view(&crate::principal());
    let int = |p: &str| app.vm_prop(d, p).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let (memory, maxmem, vcpus) = (int("memory"), int("maxmem"), int("vcpus"));
    let state = app.power(d);
    let live = app.info(d);
    let (id, ram, ram_max, cpu) = if state.is_live() && live.state.is_live() {
        (live.id.map_or(-1, i64::from), live.memory_kib, live.max_memory_kib, u64::from(live.vcpus))
    } else {
        (-1, memory * 1024, memory.max(maxmem) * 1024, vcpus)
    };
    json!({
        "name": d.name,
        "uuid": d.uuid.to_string(),
        "id": id,
        "status": status(state),
        "os": "hvm",
        "ram": ram,
        "ram_max": ram_max,
        "cpu": cpu,
    })
}

fn query(req: &Req<'_>, d: &Domain, env: &mut Envelope) -> Outcome {
    let Some(sub) = req.target.part(4) else {
        env.result(info(req, d));
        return Outcome::Success;
    };
    let answer = match sub {
        "xml_desc" => {
            let Some(flags) = target::DOMAIN_XML.parse_csv(req.target.get("options")) else {
                env.error(301);
                return Outcome::Failure;
            };
            req.ask(Request::VmDomainXml { vm: d.name.clone(), flags }).and_then(|answer| match answer {
                Response::Text(xml) => Ok(Value::String(xml)),
                other => Err(unexpected(&other)),
            })
        }
        "scheduler_type" => req.ask(Request::VmSchedulerType { vm: d.name.clone() }).and_then(|answer| match answer {
            Response::Scheduler { kind, params } => Ok(json!({"type": kind, "params_count": params})),
            other => Err(unexpected(&other)),
        }),
        "fs_info" | "hostname" | "time" => {
            env.error(-1);
            env.message(sub, "Qubes run without a guest agent, and only a guest agent can tell this");
            return Outcome::Failure;
        }
        "launch_security_info" => {
            env.error(-1);
            env.message(sub, "Qubes do not run with launch security (AMD SEV), so there is nothing to report");
            return Outcome::Failure;
        }
        _ => {
            // virthttp answers an unknown subquery with nothing at all; a typo deserves to be told.
            env.error(2);
            return Outcome::Failure;
        }
    };
    match answer {
        Ok(value) => {
            env.result(value);
            Outcome::Success
        }
        Err(e) => {
            env.failed(Call::On(-2), e);
            Outcome::Failure
        }
    }
}

/// One PATCH action on one qube. Only the action object's first key counts, as in virthttp.
fn alter(req: &Req<'_>, d: &Domain, action: &Json, env: &mut Envelope) -> Outcome {
    let Some((name, value)) = action.first() else {
        env.error(122);
        return Outcome::Failure;
    };
    match name {
        "power_mgt" => power(req, d, value, env),
        "name" => {
            let Some(new_name) = value.as_str() else { return syntax_error(env) };
            env.error_because(
                205,
                format!(
                    "Operation not supported: qube names are fixed at creation, '{}' cannot become '{new_name}'",
                    d.name
                ),
            );
            Outcome::Failure
        }
        "memory" => match value.as_u64() {
            Some(kib) => {
                set(req, d, VmSettings { memory_mib: Some(kib.div_ceil(1024)), ..VmSettings::default() }, 206, env)
            }
            None => syntax_error(env),
        },
        "max_memory" => match value.as_u64() {
            Some(kib) => {
                set(req, d, VmSettings { maxmem_mib: Some(kib.div_ceil(1024)), ..VmSettings::default() }, 207, env)
            }
            None => syntax_error(env),
        },
        "autostart" => match value.as_bool() {
            Some(on) => set(req, d, VmSettings { autostart: Some(on), ..VmSettings::default() }, 208, env),
            None => syntax_error(env),
        },
        "send_signal" => {
            if !is_signal_request(value) {
                return syntax_error(env);
            }
            env.error(-1);
            env.message(name, "Qubes run without a guest agent, which libvirt needs to signal a process in a guest");
            Outcome::Failure
        }
        "send_keys" => {
            let Some((codeset, hold_ms, keys)) = keys_request(value) else {
                return syntax_error(env);
            };
            if !req.service.view(&crate::principal()).power(d).is_live() {
                env.error(210);
                return Outcome::Failure;
            }
            match req.run(Request::VmSendKeys { vm: d.name.clone(), codeset, hold_ms, keys }) {
                Ok(()) => Outcome::Success,
                Err(e) => {
                    env.failed(Call::On(-2), e);
                    Outcome::Failure
                }
            }
        }
        _ => {
            env.error(123);
            Outcome::Failure
        }
    }
}

fn syntax_error(env: &mut Envelope) -> Outcome {
    env.error(0);
    Outcome::Failure
}

/// One setting of the qube, in the model's units (MiB).
fn set(req: &Req<'_>, d: &Domain, settings: VmSettings, code: i32, env: &mut Envelope) -> Outcome {
    match req.run(Request::VmUpdate { vm: d.name.clone(), settings }) {
        Ok(()) => Outcome::Success,
        Err(e) => {
            env.failed(Call::On(code), e);
            Outcome::Failure
        }
    }
}

const SIGNALS: [&str; 32] = [
    "nop", "hup", "int", "quit", "ill", "trap", "abrt", "bus", "fpe", "kill", "usr1", "segv", "usr2", "pipe", "alrm",
    "term", "stkflt", "chld", "cont", "stop", "tstp", "ttin", "ttou", "urg", "xcpu", "xfsz", "vtalrm", "prof", "winch",
    "poll", "pwr", "sys",
];

/// `{"pid": int64, "signal": SIG}` with SIG a signal name or `rt0`…`rt32`.
fn is_signal_request(value: &Json) -> bool {
    let signal = value.get("signal").and_then(Json::as_str).map(str::to_ascii_lowercase).unwrap_or_default();
    let realtime = signal.strip_prefix("rt").and_then(|n| n.parse::<u8>().ok()).is_some_and(|n| n <= 32);
    value.get("pid").and_then(Json::as_i64).is_some() && (SIGNALS.contains(&signal.as_str()) || realtime)
}

/// `{"keycode_set": SET, "hold_time": uint ms, "keys": [uint...]}`.
/// `{"keycode_set": SET, "hold_time": ms, "keys": [codes]}`: every member present, each a 32-bit
/// unsigned number, the set one of libvirt's names.
fn keys_request(value: &Json) -> Option<(KeycodeSet, u32, Vec<u32>)> {
    let uint32 = |v: &Json| v.as_u64().and_then(|n| u32::try_from(n).ok());
    let codeset = value.get("keycode_set").and_then(Json::as_str).and_then(KeycodeSet::parse)?;
    let hold_ms = value.get("hold_time").and_then(uint32)?;
    let Some(Json::Arr(keys)) = value.get("keys") else { return None };
    let keys = keys.iter().map(uint32).collect::<Option<Vec<u32>>>()?;
    Some((codeset, hold_ms, keys))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Power {
    Start,
    Shutdown,
    Destroy,
    Reboot,
    Reset,
    Suspend,
    Resume,
}

impl Power {
    fn parse(request: &str) -> Option<Power> {
        Some(match request.to_ascii_lowercase().as_str() {
            "start" => Power::Start,
            "shutdown" => Power::Shutdown,
            "destroy" => Power::Destroy,
            "reboot" => Power::Reboot,
            "reset" => Power::Reset,
            "suspend" => Power::Suspend,
            "resume" => Power::Resume,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Power::Start => "start",
            Power::Shutdown => "shutdown",
            Power::Destroy => "destroy",
            Power::Reboot => "reboot",
            Power::Reset => "reset",
            Power::Suspend => "suspend",
            Power::Resume => "resume",
        }
    }

    /// The flags libvirt's call takes; `None`: it takes none, and a `type` is an invalid flag.
    fn flags(self) -> Option<&'static Flags> {
        match self {
            Power::Start => Some(&target::CREATE),
            Power::Shutdown | Power::Reboot => Some(&target::SHUTDOWN),
            Power::Destroy => Some(&target::DESTROY),
            Power::Reset | Power::Suspend | Power::Resume => None,
        }
    }

    /// The error when the qube is not in the state the action needs, as libvirt sees it: a qube saved to
    /// disk is an inactive domain (which a start resumes).
    fn unmet(self, state: PowerState) -> Option<i32> {
        match self {
            Power::Start => state.is_live().then_some(203),
            Power::Shutdown | Power::Reboot | Power::Suspend => (state != PowerState::Running).then_some(201),
            Power::Destroy | Power::Reset => (!state.is_live()).then_some(210),
            Power::Resume => (state != PowerState::Paused).then_some(211),
        }
    }

    fn failure_code(self) -> i32 {
        match self {
            Power::Start => 202,
            Power::Shutdown => 200,
            Power::Destroy => 209,
            Power::Reboot => 213,
            Power::Reset => 214,
            Power::Suspend => 215,
            Power::Resume => 212,
        }
    }

    fn done(self) -> &'static str {
        match self {
            Power::Start => "Domain started",
            Power::Shutdown => "Domain is being shutdown",
            Power::Destroy => "Domain destroyed",
            Power::Reboot => "Domain is being rebooted",
            Power::Reset => "Domain was reset",
            Power::Suspend => "Domain suspended",
            Power::Resume => "Domain resumed",
        }
    }
}

/// `power_mgt`: a request name, or `{"request": NAME, "type": FLAG or [FLAGS]}`. The request and its
/// flags are checked before the qube's state: a malformed request is refused whatever the state.
fn power(req: &Req<'_>, d: &Domain, value: &Json, env: &mut Envelope) -> Outcome {
    let (request, type_flags) = match value {
        Json::Str(s) => (Some(s.as_str()), None),
        Json::Obj(_) => (value.get("request").and_then(Json::as_str), value.get("type")),
        _ => (None, None),
    };
    let Some(action) = request.and_then(Power::parse) else {
        env.error(300);
        return Outcome::Failure;
    };
    let flags = match (action.flags(), type_flags) {
        (_, None) => 0,
        (Some(known), Some(given)) => match known.parse_json(given) {
            Some(f) => f,
            None => {
                env.error(301);
                return Outcome::Failure;
            }
        },
        (None, Some(_)) => {
            env.error(301);
            return Outcome::Failure;
        }
    };
    if let Some(code) = action.unmet(req.service.view(&crate::principal()).power(d)) {
        env.error(code);
        return Outcome::Failure;
    }
    let vm = d.name.clone();
    // Flags other than `paused` ask libvirt for things the daemon does on its own terms (how to shut
    // down, how to boot): they are accepted and change nothing.
    let request = match action {
        Power::Start if flags & target::CREATE.bit("paused") != 0 => Request::VmStartPaused { vm },
        Power::Start => Request::VmStart { vm },
        Power::Shutdown => Request::VmShutdown { vm, force: false, wait: false },
        Power::Destroy => Request::VmKill { vm },
        Power::Reboot => Request::VmReboot { vm },
        Power::Reset => Request::VmReset { vm },
        Power::Suspend => Request::VmPause { vm },
        Power::Resume => Request::VmUnpause { vm },
    };
    match req.run(request) {
        Ok(()) => {
            env.message(action.name(), action.done());
            Outcome::Success
        }
        Err(e) => {
            env.failed(Call::On(action.failure_code()), e);
            Outcome::Failure
        }
    }
}

/// DELETE: the qube is removed, as libvirt's undefine would forget the domain. A running qube cannot be.
fn vacuum(req: &Req<'_>, d: &Domain, env: &mut Envelope) -> Outcome {
    if target::UNDEFINE.parse_csv(req.target.get("options")).is_none() {
        env.error(301);
        return Outcome::Failure;
    }
    match req.run(Request::VmRemove { vm: d.name.clone() }) {
        Ok(()) => {
            env.result(json!({"deleted": true}));
            Outcome::Success
        }
        Err(e) => {
            env.message("libvirt", e.message.clone());
            env.failed(Call::On(216), e);
            Outcome::Failure
        }
    }
}

/// POST: a domain XML string, or an array of them (with `depends`). A JSON object describing a domain
/// is virthttp's documented but unsupported form.
fn create(req: &Req<'_>, env: &mut Envelope) {
    let one = |item: &Json, env: &mut Envelope| match item {
        Json::Str(xml) => create_one(req, xml, env),
        Json::Obj(_) => {
            env.error(-1);
            env.message("create", "A domain is created from its XML, given as a JSON string");
            Outcome::Failure
        }
        _ => syntax_error(env),
    };
    match req.body {
        Json::Arr(items) => run_actions(items, env, one),
        body => {
            one(body, env);
        }
    }
}

/// What a new qube takes from a domain XML.
#[derive(Debug, Default, PartialEq, Eq)]
struct NewDomain {
    name: String,
    uuid: Option<Uuid>,
    /// `<memory>` in MiB.
    memory: Option<u64>,
    /// `<currentMemory>` in MiB.
    current: Option<u64>,
    vcpus: Option<u64>,
}

/// libvirt's scaled integer units, case-insensitively; no unit is KiB.
fn unit_bytes(unit: Option<&str>) -> Option<u64> {
    let unit = unit.unwrap_or("KiB").to_ascii_lowercase();
    if unit == "b" || unit == "bytes" {
        return Some(1);
    }
    let mut chars = unit.chars();
    let power = match chars.next()? {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return None,
    };
    let base: u64 = match chars.as_str() {
        "" | "ib" => 1024,
        "b" => 1000,
        _ => return None,
    };
    base.checked_pow(power)
}

fn mib(text: &str, unit: Option<&str>) -> Result<u64, String> {
    let n = text.trim().parse::<u64>().map_err(|_| format!("XML error: invalid memory value '{}'", text.trim()))?;
    let scale = unit_bytes(unit).ok_or_else(|| format!("XML error: unknown memory unit '{}'", unit.unwrap_or("")))?;
    let bytes = n.checked_mul(scale).ok_or_else(|| "XML error: memory size too large".to_string())?;
    Ok(bytes.div_ceil(1024 * 1024))
}

fn parse_domain_xml(xml: &str) -> Result<NewDomain, String> {
    let not_domain = |name: &[u8]| {
        format!("XML error: unexpected root element <{}>, expecting <domain>", String::from_utf8_lossy(name))
    };
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0usize;
    let mut root = false;
    // The element (a child of <domain>) whose text is being read, and its `unit`.
    let mut current: Option<(String, Option<String>)> = None;
    let mut texts: Vec<(String, Option<String>, String)> = Vec::new();
    loop {
        match reader.read_event().map_err(|e| format!("XML error: {e}"))? {
            Event::Start(e) => {
                depth += 1;
                if depth == 1 {
                    if e.name().as_ref() != b"domain" {
                        return Err(not_domain(e.name().as_ref()));
                    }
                    root = true;
                }
                let unit =
                    e.try_get_attribute("unit").ok().flatten().map(|a| String::from_utf8_lossy(&a.value).into_owned());
                current = (depth == 2).then(|| (String::from_utf8_lossy(e.name().as_ref()).into_owned(), unit));
            }
            Event::Empty(e) if depth == 0 => {
                if e.name().as_ref() != b"domain" {
                    return Err(not_domain(e.name().as_ref()));
                }
                root = true;
            }
            Event::Text(t) => {
                if let Some((name, unit)) = &current {
                    let text = t.unescape().map_err(|e| format!("XML error: {e}"))?.into_owned();
                    texts.push((name.clone(), unit.clone(), text));
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                current = None;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root {
        return Err("XML error: no <domain> element".into());
    }
    if depth != 0 {
        return Err("XML error: the document ends inside <domain>".into());
    }
    let mut out = NewDomain::default();
    for (name, unit, text) in texts {
        match name.as_str() {
            "name" => out.name = text.trim().to_string(),
            "uuid" => {
                out.uuid = Some(
                    Uuid::parse_str(text.trim()).map_err(|_| format!("XML error: malformed uuid '{}'", text.trim()))?,
                )
            }
            "memory" => out.memory = Some(mib(&text, unit.as_deref())?),
            "currentMemory" => out.current = Some(mib(&text, unit.as_deref())?),
            "vcpu" => {
                out.vcpus = Some(
                    text.trim()
                        .parse::<u64>()
                        .map_err(|_| format!("XML error: invalid vcpu count '{}'", text.trim()))?,
                )
            }
            _ => {}
        }
    }
    if out.name.is_empty() {
        return Err("XML error: missing domain name information".into());
    }
    Ok(out)
}

/// The settings a new qube takes: it starts with `<currentMemory>` (else `<memory>`), and a larger
/// `<memory>` is what it may balloon to.
fn new_settings(nd: &NewDomain) -> VmSettings {
    let memory_mib = nd.current.or(nd.memory);
    let maxmem_mib = match (nd.memory, nd.current) {
        (Some(max), Some(start)) if max > start => Some(max),
        _ => None,
    };
    VmSettings { memory_mib, maxmem_mib, vcpus: nd.vcpus, ..VmSettings::default() }
}

/// A domain's creation, which fails as virthttp's "Failed to create domain".
const CREATE: Call = Call::Making(105);

/// One domain XML: a red StandaloneVM, started unless `?persistent=true` (virthttp's create makes a
/// running domain). The service creates it and its settings in one transaction, then starts it: a start it
/// can tell will be refused refuses the create (error 105, nothing made); a start that fails once the qube
/// exists leaves it there, shut off, as a defined domain whose start failed (error 202, and it is listed).
fn create_one(req: &Req<'_>, xml: &str, env: &mut Envelope) -> Outcome {
    let nd = match parse_domain_xml(xml) {
        Ok(nd) => nd,
        Err(why) => {
            env.error_because(CREATE.code(), why);
            return Outcome::Failure;
        }
    };
    if let Err(e) = corral_core::text::validate_vm_name(&nd.name) {
        env.failed(CREATE, e);
        return Outcome::Failure;
    }
    // Without a template the new qube is a StandaloneVM: a domain with disks of its own.
    let new = NewVm {
        name: nd.name.clone(),
        label: "red".into(),
        template: None,
        uuid: nd.uuid.unwrap_or_else(Uuid::new_v4),
        settings: new_settings(&nd),
    };
    let start = req.target.flag_bool("persistent") != Some(true);
    match req.ask(Request::VmCreateWith { new, start }) {
        Ok(Response::NotStarted(e)) => {
            env.result(json!({"created": true}));
            env.failed(Call::On(202), e);
            env.message("create", format!("Domain {} was created and stays shut off: its start failed", nd.name));
            Outcome::Failure
        }
        Ok(Response::Done) => {
            env.result(json!({"created": true}));
            Outcome::Success
        }
        Ok(other) => {
            env.failed(CREATE, unexpected(&other));
            Outcome::Failure
        }
        Err(e) => {
            env.failed(CREATE, e);
            Outcome::Failure
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_xml_gives_name_memory_and_vcpus() {
        let xml = "<domain type='kvm'><name>web</name><memory unit='GiB'>2</memory>\
                   <currentMemory>524288</currentMemory><vcpu placement='static'>3</vcpu>\
                   <devices><disk><name>ignored</name></disk></devices></domain>";

        let nd = parse_domain_xml(xml).expect("valid");

        assert_eq!(
            nd,
            NewDomain { name: "web".into(), uuid: None, memory: Some(2048), current: Some(512), vcpus: Some(3) }
        );
    }

    #[test]
    fn the_start_memory_is_current_memory_and_the_larger_one_is_maxmem() {
        let nd = NewDomain { name: "web".into(), memory: Some(2048), current: Some(512), ..NewDomain::default() };

        assert_eq!(
            new_settings(&nd),
            VmSettings { memory_mib: Some(512), maxmem_mib: Some(2048), ..VmSettings::default() }
        );
    }

    #[test]
    fn a_root_other_than_domain_is_refused() {
        assert!(parse_domain_xml("<network><name>n</name></network>").is_err());
    }

    #[test]
    fn a_domain_without_name_is_refused() {
        assert!(parse_domain_xml("<domain><memory>1024</memory></domain>").is_err());
    }

    #[test]
    fn text_that_is_not_xml_is_refused() {
        assert!(parse_domain_xml("not xml at all").is_err());
    }

    #[test]
    fn memory_units_follow_libvirt() {
        assert_eq!(mib("1048576", None), Ok(1024));
        assert_eq!(mib("1", Some("G")), Ok(1024));
        assert_eq!(mib("1000000", Some("KB")), Ok(954));
        assert!(mib("1", Some("parsecs")).is_err());
    }

    #[test]
    fn list_groups_are_alternatives_within_and_required_across() {
        let running_paused = LIST_DOMAINS.parse_csv(Some("running,paused")).expect("flags");
        let active_autostart = LIST_DOMAINS.bit("active") | LIST_DOMAINS.bit("autostart");

        assert!(listed(running_paused, PowerState::Paused, false));
        assert!(!listed(running_paused, PowerState::Halted, false));
        assert!(!listed(active_autostart, PowerState::Running, false));
        assert!(listed(active_autostart, PowerState::Running, true));
    }

    #[test]
    fn every_qube_is_persistent_without_snapshots() {
        let f = |n| LIST_DOMAINS.bit(n);

        assert!(listed(f("persistent") | f("no_managed_save") | f("no_snapshot"), PowerState::Halted, false));
        assert!(!listed(f("transient"), PowerState::Halted, false));
        assert!(!listed(f("has_snapshot"), PowerState::Halted, false));
    }

    #[test]
    fn a_saved_qube_is_an_inactive_shut_off_domain_with_a_managed_save() {
        let f = |n| LIST_DOMAINS.bit(n);

        assert!(listed(f("inactive") | f("shutoff") | f("managed_save"), PowerState::Saved, false));
        assert!(!listed(f("no_managed_save"), PowerState::Saved, false));
        assert!(!listed(f("managed_save"), PowerState::Halted, false));
        assert!(!listed(f("active"), PowerState::Saved, false));
    }
}
