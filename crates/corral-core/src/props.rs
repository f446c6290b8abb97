//! The property tables: every qube and global property, its type, its default rule and its checks.
//!
//! Values are kept in their wire form (`True`, `400`, a qube name, empty for None) so that a read is a
//! lookup plus, for defaults, a small computation over the model.

use crate::app::App;
use crate::domain::{Class, Domain};
use crate::error::{Error, ErrorKind, Invalid, Result};
use crate::text::pyrepr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropType {
    Str,
    Int,
    Bool,
    Vm,
    Label,
}

impl PropType {
    pub fn name(self) -> &'static str {
        match self {
            PropType::Str => "str",
            PropType::Int => "int",
            PropType::Bool => "bool",
            PropType::Vm => "vm",
            PropType::Label => "label",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    /// Computed from other state; Set is refused.
    ReadOnly,
    /// Given at creation (name, qid, uuid, dispid); neither Set nor Reset afterwards.
    WriteOnce,
}

/// `Some("")` is a default of None (an empty value on the wire); `None` means "no default at all".
pub type DefaultFn = fn(&App, &Domain) -> Option<String>;
pub type CheckFn = fn(&App, &Domain, &str) -> Result<String>;
pub type GlobalDefaultFn = fn(&App) -> Option<String>;
pub type GlobalCheckFn = fn(&App, &str) -> Result<String>;

pub struct PropDef {
    pub name: &'static str,
    pub ty: PropType,
    /// Upstream loads qube references in a later stage; list order is (stage, name).
    pub late: bool,
    classes: u8,
    pub access: Access,
    pub allow_none: bool,
    pub default: DefaultFn,
    pub check: Option<CheckFn>,
    pub help: &'static str,
}

impl PropDef {
    pub fn applies_to(&self, class: Class) -> bool {
        self.classes & class.bit() != 0
    }
}

pub struct GlobalPropDef {
    pub name: &'static str,
    pub ty: PropType,
    pub access: Access,
    pub default: GlobalDefaultFn,
    pub check: Option<GlobalCheckFn>,
    pub help: &'static str,
}

const APP: u8 = 1 << 1;
const TPL: u8 = 1 << 2;
const SA: u8 = 1 << 3;
const DISP: u8 = 1 << 4;
const REMOTE: u8 = 1 << 5;
const ADMIN: u8 = 1;
const VMS: u8 = APP | TPL | SA | DISP;
const ALL: u8 = VMS | ADMIN;

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn none_vm() -> Option<String> {
    Some(String::new())
}

fn from_template_or(app: &App, d: &Domain, prop: &str, fallback: fn(&App) -> Option<String>) -> Option<String> {
    match app.template_of(d) {
        Some(t) => app.vm_prop(t, prop),
        None => fallback(app),
    }
}

fn d_none(_: &App, _: &Domain) -> Option<String> {
    None
}
fn d_false(_: &App, _: &Domain) -> Option<String> {
    s("False")
}
fn d_empty(_: &App, _: &Domain) -> Option<String> {
    s("")
}
fn d_minus_one(_: &App, _: &Domain) -> Option<String> {
    s("-1")
}
fn d_zero(_: &App, _: &Domain) -> Option<String> {
    s("0")
}
fn d_name(_: &App, d: &Domain) -> Option<String> {
    Some(d.name.clone())
}
fn d_qid(_: &App, d: &Domain) -> Option<String> {
    Some(d.qid.to_string())
}
fn d_uuid(_: &App, d: &Domain) -> Option<String> {
    Some(d.uuid.to_string())
}
fn d_klass(_: &App, d: &Domain) -> Option<String> {
    s(d.class.name())
}
fn d_updateable(_: &App, d: &Domain) -> Option<String> {
    s(crate::text::format_bool(!d.class.has_template()))
}
fn d_audiovm(app: &App, _: &Domain) -> Option<String> {
    app.global_prop("default_audiovm")
}
fn d_guivm(app: &App, _: &Domain) -> Option<String> {
    app.global_prop("default_guivm")
}
fn d_default_dispvm(app: &App, d: &Domain) -> Option<String> {
    if d.class == Class::DispVM {
        return d.template_name().map(str::to_string).or_else(none_vm);
    }
    app.global_prop("default_dispvm")
}
fn d_management_dispvm(app: &App, d: &Domain) -> Option<String> {
    from_template_or(app, d, "management_dispvm", |app| app.global_prop("management_dispvm"))
}
fn d_default_user(app: &App, d: &Domain) -> Option<String> {
    from_template_or(app, d, "default_user", |_| s("user"))
}
fn d_memory(app: &App, d: &Domain) -> Option<String> {
    from_template_or(app, d, "memory", |_| s("400"))
}
fn d_vcpus(app: &App, d: &Domain) -> Option<String> {
    from_template_or(app, d, "vcpus", |_| s("2"))
}
fn d_virt_mode(app: &App, d: &Domain) -> Option<String> {
    from_template_or(app, d, "virt_mode", |_| s("pvh"))
}
fn d_kernel(app: &App, d: &Domain) -> Option<String> {
    from_template_or(app, d, "kernel", |app| app.global_prop("default_kernel"))
}
fn d_kernelopts(app: &App, d: &Domain) -> Option<String> {
    if app.vm_prop(d, "kernel").unwrap_or_default().is_empty() {
        return s("");
    }
    from_template_or(app, d, "kernelopts", |_| s("swiotlb=2048"))
}
fn d_qrexec_timeout(app: &App, d: &Domain) -> Option<String> {
    from_template_or(app, d, "qrexec_timeout", |app| app.global_prop("default_qrexec_timeout"))
}
fn d_shutdown_timeout(app: &App, d: &Domain) -> Option<String> {
    from_template_or(app, d, "shutdown_timeout", |app| app.global_prop("default_shutdown_timeout"))
}
fn d_keyboard_layout(app: &App, d: &Domain) -> Option<String> {
    let guivm = app.vm_prop(d, "guivm").filter(|g| !g.is_empty() && *g != d.name);
    match guivm.and_then(|g| app.domain(&g)) {
        Some(g) => app.vm_prop(g, "keyboard_layout"),
        None => s("us++"),
    }
}
fn d_netvm(app: &App, d: &Domain) -> Option<String> {
    // A qube whose card is on a libvirt network of its own is behind no netvm.
    if d.class == Class::TemplateVM || d.libvirt_network().is_some() {
        return none_vm();
    }
    // A network provider that is itself the global default would otherwise route through itself.
    match app.global_prop("default_netvm") {
        Some(n) if n == d.name => none_vm(),
        other => other,
    }
}
fn d_include_in_backups(app: &App, d: &Domain) -> Option<String> {
    if d.class == Class::RemoteVM {
        return s("False");
    }
    if d.class == Class::DispVM {
        let auto_cleanup = app.vm_prop(d, "auto_cleanup").as_deref() == Some("True");
        return s(crate::text::format_bool(!auto_cleanup));
    }
    s("True")
}
fn d_icon(app: &App, d: &Domain) -> Option<String> {
    let label = app.vm_prop(d, "label").unwrap_or_default();
    let kind = match d.class {
        Class::AdminVM => "adminvm",
        Class::TemplateVM => "templatevm",
        Class::DispVM => "dispvm",
        _ if app.vm_prop(d, "template_for_dispvms").as_deref() == Some("True") => "templatevm",
        _ if d.features.is_true("servicevm") => "servicevm",
        Class::StandaloneVM => "standalonevm",
        Class::RemoteVM => "remotevm",
        Class::AppVM => "appvm",
    };
    Some(format!("{kind}-{label}"))
}
fn is_networked(app: &App, d: &Domain) -> bool {
    app.vm_prop(d, "provides_network").as_deref() == Some("True")
        || !app.vm_prop(d, "netvm").unwrap_or_default().is_empty()
}
fn ipv6_enabled(app: &App, d: &Domain) -> bool {
    app.feature_with_netvm(d, "ipv6").is_some_and(|v| !v.is_empty())
}
/// Upstream's vmid → last two IPv4 octets, avoiding .0 and .255 above the first 254 ids.
pub fn vmid_octets(id: u32) -> String {
    if id < 255 {
        format!("{}.{}", (id >> 8) & 0xff, id & 0xff)
    } else {
        let v = id - 1;
        format!("{}.{}", v / 254, v % 254 + 1)
    }
}
fn own_ip(d: &Domain) -> String {
    match (d.class, d.prop("dispid").and_then(|v| v.parse::<u32>().ok())) {
        (Class::DispVM, Some(dispid)) => format!("10.138.{}", vmid_octets(dispid)),
        _ => format!("10.137.{}", vmid_octets(d.qid)),
    }
}
fn own_ip6(d: &Domain) -> String {
    match (d.class, d.prop("dispid").and_then(|v| v.parse::<u32>().ok())) {
        (Class::DispVM, Some(dispid)) => format!("fd09:24ef:4179::a8a:{dispid:x}"),
        _ => format!("fd09:24ef:4179::a89:{:x}", d.qid),
    }
}
fn d_ip(app: &App, d: &Domain) -> Option<String> {
    Some(if is_networked(app, d) { own_ip(d) } else { String::new() })
}
fn d_ip6(app: &App, d: &Domain) -> Option<String> {
    Some(if is_networked(app, d) && ipv6_enabled(app, d) { own_ip6(d) } else { String::new() })
}
fn d_dns(app: &App, d: &Domain) -> Option<String> {
    Some(if is_networked(app, d) { "10.139.1.1 10.139.1.2".into() } else { String::new() })
}
fn d_visible_ip(app: &App, d: &Domain) -> Option<String> {
    app.feature_with_template(d, "net.fake-ip")
        .map(str::to_string)
        .filter(|v| !v.is_empty())
        .or_else(|| app.vm_prop(d, "ip"))
}
fn d_visible_ip6(app: &App, d: &Domain) -> Option<String> {
    app.vm_prop(d, "ip6")
}
fn d_visible_netmask(app: &App, d: &Domain) -> Option<String> {
    if let Some(v) = app.feature_with_template(d, "net.fake-netmask").filter(|v| !v.is_empty()) {
        return s(v);
    }
    Some(if is_networked(app, d) { "255.255.255.255".into() } else { String::new() })
}
fn d_gateway(app: &App, d: &Domain) -> Option<String> {
    if app.vm_prop(d, "provides_network").as_deref() == Some("True") {
        return app.vm_prop(d, "visible_ip");
    }
    s("")
}
fn d_gateway6(app: &App, d: &Domain) -> Option<String> {
    if app.vm_prop(d, "provides_network").as_deref() == Some("True") && ipv6_enabled(app, d) {
        return app.vm_prop(d, "visible_ip6");
    }
    s("")
}
fn netvm_of<'a>(app: &'a App, d: &Domain) -> Option<&'a Domain> {
    app.vm_prop(d, "netvm").filter(|n| !n.is_empty()).and_then(|n| app.domain(&n))
}
fn d_visible_gateway(app: &App, d: &Domain) -> Option<String> {
    if let Some(v) = app.feature_with_template(d, "net.fake-gateway").filter(|v| !v.is_empty()) {
        return s(v);
    }
    match netvm_of(app, d) {
        Some(n) => app.vm_prop(n, "gateway"),
        None => s(""),
    }
}
fn d_visible_gateway6(app: &App, d: &Domain) -> Option<String> {
    if !ipv6_enabled(app, d) {
        return s("");
    }
    match netvm_of(app, d) {
        Some(n) => app.vm_prop(n, "gateway6"),
        None => s(""),
    }
}
fn d_bootmode(app: &App, d: &Domain) -> Option<String> {
    if let Some(active) = d.features.get("boot-mode.active").filter(|v| !v.is_empty()) {
        return s(active);
    }
    if let Some(t) = app.template_of(d) {
        if let Some(mode) = app.vm_prop(t, "appvm_default_bootmode") {
            if app.feature_with_template(t, &format!("boot-mode.kernelopts.{mode}")).is_some() {
                return Some(mode);
            }
        }
    }
    s("default")
}
fn d_appvm_default_bootmode(_: &App, d: &Domain) -> Option<String> {
    s(d.features.get("boot-mode.appvm-default").filter(|v| !v.is_empty()).unwrap_or("default"))
}
fn d_admin_label(_: &App, _: &Domain) -> Option<String> {
    s("black")
}

fn invalid(d: &Domain, prop: &str, value: &str, why: impl Into<Option<String>>) -> Error {
    let message = why.into().unwrap_or_else(|| {
        format!("Invalid value {} for property {} of {}", pyrepr(value), pyrepr(prop), pyrepr(&d.name))
    });
    Error::new(ErrorKind::Invalid(Invalid::PropertyValue), message)
}

fn c_positive(prop: &'static str) -> impl Fn(&App, &Domain, &str) -> Result<String> {
    move |_, d, v| match v.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n.to_string()),
        _ => Err(invalid(d, prop, v, format!("{prop} must be positive"))),
    }
}
/// The largest memory size in MiB libvirt takes: it keeps sizes in KiB and refuses more than 2^53 - 1 of them.
pub const MAX_MEMORY_MIB: i64 = ((1 << 53) - 1) / 1024;
/// The largest vcpu count: libvirt and QEMU count vcpus in an unsigned 32-bit integer.
pub const MAX_VCPUS: i64 = u32::MAX as i64;

/// A positive number of at most `max`: a larger one would not fit where the hypervisor keeps it, and
/// would otherwise be cut down silently at start.
fn c_bounded(prop: &'static str, min: i64, max: i64) -> impl Fn(&App, &Domain, &str) -> Result<String> {
    move |_, d, v| match v.parse::<i64>() {
        Ok(n) if n > max => Err(invalid(d, prop, v, format!("{prop} must be at most {max}"))),
        Ok(n) if n >= min => Ok(n.to_string()),
        _ if min > 0 => Err(invalid(d, prop, v, format!("{prop} must be positive"))),
        _ => Err(invalid(d, prop, v, format!("{prop} must be positive or zero"))),
    }
}
fn c_memory(app: &App, d: &Domain, v: &str) -> Result<String> {
    c_bounded("memory", 1, MAX_MEMORY_MIB)(app, d, v)
}
fn c_vcpus(app: &App, d: &Domain, v: &str) -> Result<String> {
    c_bounded("vcpus", 1, MAX_VCPUS)(app, d, v)
}
fn c_qrexec_timeout(app: &App, d: &Domain, v: &str) -> Result<String> {
    c_positive("qrexec_timeout")(app, d, v)
}
fn c_shutdown_timeout(app: &App, d: &Domain, v: &str) -> Result<String> {
    c_positive("shutdown_timeout")(app, d, v)
}
fn c_non_negative(app: &App, d: &Domain, v: &str) -> Result<String> {
    c_bounded("maxmem", 0, MAX_MEMORY_MIB)(app, d, v)
}
fn c_kernel(_: &App, d: &Domain, v: &str) -> Result<String> {
    if v.contains('/') {
        return Err(invalid(d, "kernel", v, "Kernel name cannot contain '/'".to_string()));
    }
    Ok(v.to_string())
}
fn c_kernelopts(_: &App, d: &Domain, v: &str) -> Result<String> {
    if v.len() > 512 {
        return Err(invalid(d, "kernelopts", v, "Kernelopts value too long (512 chars max)".to_string()));
    }
    Ok(v.to_string())
}
fn c_default_user(_: &App, d: &Domain, v: &str) -> Result<String> {
    if !v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+,.-".contains(&b)) {
        let allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+,.";
        return Err(invalid(d, "default_user", v, format!("Username can contain only those characters: {allowed}")));
    }
    Ok(v.to_string())
}
fn c_virt_mode(_: &App, d: &Domain, v: &str) -> Result<String> {
    let lower = v.to_ascii_lowercase();
    if !matches!(lower.as_str(), "hvm" | "pv" | "pvh") {
        return Err(invalid(
            d,
            "virt_mode",
            v,
            "Invalid virtualization mode, supported values: hvm, pv, pvh".to_string(),
        ));
    }
    Ok(lower)
}
fn c_mac(_: &App, d: &Domain, v: &str) -> Result<String> {
    let parts: Vec<&str> = v.split(':').collect();
    let ok = parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        return Err(invalid(d, "mac", v, None));
    }
    Ok(v.to_ascii_lowercase())
}
// qubesd types these properties as addresses, so its sanitizer rejects a bad one.
fn c_ip(_: &App, _: &Domain, v: &str) -> Result<String> {
    let bad = |_| Error::value("Failed to parse property value as IPv4Address");
    v.parse::<std::net::Ipv4Addr>().map(|ip| ip.to_string()).map_err(bad)
}
fn c_ip6(_: &App, _: &Domain, v: &str) -> Result<String> {
    let bad = |_| Error::value("Failed to parse property value as IPv6Address");
    v.parse::<std::net::Ipv6Addr>().map(|ip| ip.to_string()).map_err(bad)
}
fn c_devices_denied(_: &App, _: &Domain, v: &str) -> Result<String> {
    normalize_denied(v)
}
/// A run of 7-character interface codes cut into codes. Only the length is checked here, as upstream's
/// parser does before the denied list's own check of each code.
pub fn split_interfaces(v: &str) -> Result<Vec<String>> {
    let chars: Vec<char> = v.chars().collect();
    if !chars.len().is_multiple_of(7) {
        return Err(Error::value(format!(
            "Invalid length of interfaces={} (is {}, expected multiple of 7)",
            pyrepr(v),
            chars.len()
        )));
    }
    Ok(chars.chunks(7).map(|c| c.iter().collect()).collect())
}
/// A class letter (`b`lock, `u`sb, `m`ic, `p`ci or `*`) and six lowercase hex digits or `*`.
pub fn is_denied_code(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 7
        && b"bump*".contains(&b[0])
        && b[1..].iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c) || *c == b'*')
}
/// Denied device interfaces as stored: codes sorted and deduplicated.
pub fn normalize_denied(v: &str) -> Result<String> {
    let mut codes = split_interfaces(v)?;
    codes.sort();
    codes.dedup();
    if !codes.iter().all(|c| is_denied_code(c)) {
        // qubesd's wording, missing space included.
        return Err(Error::new(
            ErrorKind::Invalid(Invalid::PropertyValue),
            "Interface code list should be in the form chhhhhhchhhhhh...,where c is one of \"b\", \"u\", \"m\", \"p\", \
             \"*\" and h is a hexdigit or \"*\".",
        ));
    }
    Ok(codes.concat())
}
fn c_keyboard_layout(_: &App, d: &Domain, v: &str) -> Result<String> {
    // qubesd's checks and messages, in its order.
    let parts: Vec<&str> = v.split('+').collect();
    let why = if parts.len() != 3 {
        "invalid number of keyboard layout parameters"
    } else if parts[0].is_empty() || !parts[0].bytes().all(|b| b.is_ascii_alphabetic()) {
        "Invalid keyboard layout provided"
    } else if !parts[1].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        "Invalid layout variant provided"
    } else if !parts[2].bytes().all(|b| b.is_ascii_alphanumeric() || b"_:,-".contains(&b)) {
        "Invalid layout options provided"
    } else {
        return Ok(v.to_string());
    };
    Err(invalid(d, "keyboard_layout", v, why.to_string()))
}
fn c_netvm(app: &App, d: &Domain, v: &str) -> Result<String> {
    if v.is_empty() {
        return Ok(String::new());
    }
    let target =
        app.domain(v).ok_or_else(|| invalid(d, "netvm", v, format!("Can't set netvm to non-existing qube {v}")))?;
    if let Some(network) = d.libvirt_network() {
        // One card, one network: the qube leaves the libvirt network first (feature corral.network).
        return Err(Error::value(format!(
            "{} is on the libvirt network {network} (feature {}): remove that feature before setting a netvm",
            d.name,
            crate::domain::NETWORK_FEATURE
        )));
    }
    if app.vm_prop(target, "provides_network").as_deref() != Some("True") {
        return Err(Error::value(format!("The {v} qube does not provide network")));
    }
    if target.name == d.name || app.netvm_chain(target).contains(&d.name) {
        return Err(Error::value("Loops in network are unsupported"));
    }
    Ok(v.to_string())
}
fn c_provides_network(app: &App, d: &Domain, v: &str) -> Result<String> {
    if v == "False"
        && app.domains().any(|o| o.name != d.name && app.vm_prop(o, "netvm").as_deref() == Some(d.name.as_str()))
    {
        return Err(Error::value("The qube is still used by other qubes, change theirs 'netvm' first"));
    }
    Ok(v.to_string())
}
fn c_dispvm_target(prop: &'static str) -> impl Fn(&App, &Domain, &str) -> Result<String> {
    move |app, d, v| {
        if v.is_empty() {
            return Ok(String::new());
        }
        let target =
            app.domain(v).ok_or_else(|| invalid(d, prop, v, format!("Can't set {prop} to non-existing qube {v}")))?;
        if app.vm_prop(target, "template_for_dispvms").as_deref() != Some("True") {
            let why = format!(
                "Cannot set invalid property to qube {}, {prop} {} has template_for_dispvms set to False",
                pyrepr(&d.name),
                pyrepr(v)
            );
            return Err(invalid(d, prop, v, why));
        }
        Ok(v.to_string())
    }
}
fn c_default_dispvm(app: &App, d: &Domain, v: &str) -> Result<String> {
    c_dispvm_target("default_dispvm")(app, d, v)
}
fn c_management_dispvm(app: &App, d: &Domain, v: &str) -> Result<String> {
    c_dispvm_target("management_dispvm")(app, d, v)
}
fn c_any_vm(prop: &'static str) -> impl Fn(&App, &Domain, &str) -> Result<String> {
    move |app, d, v| {
        if !v.is_empty() && app.domain(v).is_none() {
            return Err(invalid(d, prop, v, format!("Can't set {prop} to non-existing qube {v}")));
        }
        Ok(v.to_string())
    }
}
fn c_guivm(app: &App, d: &Domain, v: &str) -> Result<String> {
    c_any_vm("guivm")(app, d, v)
}
fn c_audiovm(app: &App, d: &Domain, v: &str) -> Result<String> {
    c_any_vm("audiovm")(app, d, v)
}
fn c_relayvm(app: &App, d: &Domain, v: &str) -> Result<String> {
    c_any_vm("relayvm")(app, d, v)
}
fn c_template(app: &App, d: &Domain, v: &str) -> Result<String> {
    let target = app
        .domain(v)
        .ok_or_else(|| invalid(d, "template", v, format!("Can't set template to non-existing qube {v}")))?;
    match d.class {
        Class::DispVM if app.vm_prop(target, "template_for_dispvms").as_deref() != Some("True") => {
            Err(invalid(d, "template", v, format!("{v} is not allowed to be a template for disposables")))
        }
        Class::AppVM if target.class != Class::TemplateVM => Err(invalid(
            d,
            "template",
            v,
            format!("wrong VM class: domains[{}] is of type {} and not TemplateVM", pyrepr(v), target.class.name()),
        )),
        _ => Ok(v.to_string()),
    }
}
fn c_template_for_dispvms(app: &App, d: &Domain, v: &str) -> Result<String> {
    if v == "False" {
        // As qubesd: global properties count by their effective value, qubes' only when set explicitly.
        let by_system = ["default_dispvm", "management_dispvm"]
            .iter()
            .any(|p| app.global_prop(p).as_deref() == Some(d.name.as_str()));
        if by_system {
            return Err(Error::in_use(
                &d.name,
                Some("Cannot change template_for_dispvms to False while it is in use by the system by any of these properties: default_dispvm, management_dispvm"),
            ));
        }
        let by_qube = app.domains().any(|o| {
            o.name != d.name
                && ["default_dispvm", "management_dispvm", "template"]
                    .iter()
                    .any(|p| o.prop(p) == Some(d.name.as_str()))
        });
        if by_qube {
            return Err(Error::in_use(
                &d.name,
                Some("Cannot change template_for_dispvms to False while it is the disposable template of a qube by any of these properties: default_dispvm, management_dispvm, template"),
            ));
        }
    }
    Ok(v.to_string())
}

macro_rules! p {
    ($name:literal, $ty:ident, $classes:expr, $access:ident, $default:expr, $check:expr, $help:literal) => {
        PropDef {
            name: $name,
            ty: PropType::$ty,
            late: false,
            classes: $classes,
            access: Access::$access,
            allow_none: true,
            default: $default,
            check: $check,
            help: $help,
        }
    };
}
macro_rules! late {
    ($name:literal, $ty:ident, $classes:expr, $default:expr, $check:expr, $help:literal) => {
        PropDef {
            name: $name,
            ty: PropType::$ty,
            late: true,
            classes: $classes,
            access: Access::ReadWrite,
            allow_none: true,
            default: $default,
            check: $check,
            help: $help,
        }
    };
}

/// Every qube property, in canonical order: early stage by name, then the late (qube-reference) stage by name.
pub static VM_PROPS: &[PropDef] = &[
    p!(
        "auto_cleanup",
        Bool,
        DISP,
        ReadWrite,
        d_false,
        None,
        "Automatically remove this disposable qube when it shuts down."
    ),
    p!("autostart", Bool, VMS, ReadWrite, d_false, None, "Start this qube when the host boots."),
    p!(
        "backup_timestamp",
        Int,
        VMS,
        ReadWrite,
        d_empty,
        None,
        "Time of the last backup of this qube, in seconds since the epoch."
    ),
    p!(
        "debug",
        Bool,
        VMS,
        ReadWrite,
        d_false,
        None,
        "Run the qube in debug mode: console output is kept and failures are not cleaned up."
    ),
    p!(
        "default_user",
        Str,
        VMS,
        ReadWrite,
        d_default_user,
        Some(c_default_user),
        "User that commands run as inside the qube unless another is given."
    ),
    p!(
        "devices_denied",
        Str,
        ALL,
        ReadWrite,
        d_empty,
        Some(c_devices_denied),
        "Device interface classes that may never be attached to this qube, as 7-character codes."
    ),
    p!("dispid", Int, DISP, WriteOnce, d_none, None, "Number that identifies this disposable qube among disposables."),
    p!("dns", Str, VMS, ReadOnly, d_dns, None, "DNS servers the qube is told to use."),
    p!(
        "gateway",
        Str,
        VMS,
        ReadOnly,
        d_gateway,
        None,
        "Gateway address this qube offers to the qubes connected to it."
    ),
    p!(
        "gateway6",
        Str,
        VMS,
        ReadOnly,
        d_gateway6,
        None,
        "IPv6 gateway address this qube offers to the qubes connected to it."
    ),
    p!(
        "icon",
        Str,
        ALL | REMOTE,
        ReadOnly,
        d_icon,
        None,
        "Name of the icon that represents this qube, from its kind and label."
    ),
    p!(
        "include_in_backups",
        Bool,
        ALL | REMOTE,
        ReadWrite,
        d_include_in_backups,
        None,
        "Include this qube in backups by default."
    ),
    p!(
        "installed_by_rpm",
        Bool,
        VMS,
        ReadWrite,
        d_false,
        None,
        "The qube was installed by a package and is removed by the package manager, not by hand."
    ),
    p!("ip", Str, VMS, ReadWrite, d_ip, Some(c_ip), "IPv4 address of this qube."),
    p!("ip6", Str, VMS, ReadWrite, d_ip6, Some(c_ip6), "IPv6 address of this qube."),
    p!(
        "is_preload",
        Bool,
        DISP,
        ReadOnly,
        d_false,
        None,
        "This disposable was started in advance and waits to be used."
    ),
    p!(
        "kernel",
        Str,
        VMS,
        ReadWrite,
        d_kernel,
        Some(c_kernel),
        "Kernel the qube boots; empty means the kernel installed inside the qube."
    ),
    p!(
        "keyboard_layout",
        Str,
        ALL,
        ReadWrite,
        d_keyboard_layout,
        Some(c_keyboard_layout),
        "Keyboard layout as layout+variant+options."
    ),
    p!("klass", Str, ALL | REMOTE, ReadOnly, d_klass, None, "Class of this qube."),
    p!("label", Label, ALL | REMOTE, ReadWrite, d_none, None, "Colourful label assigned to this qube."),
    p!(
        "mac",
        Str,
        VMS,
        ReadWrite,
        |_, _| s("00:16:3e:5e:6c:00"),
        Some(c_mac),
        "MAC address of the network card the qube sees."
    ),
    p!(
        "maxmem",
        Int,
        VMS,
        ReadWrite,
        d_zero,
        Some(c_non_negative),
        "Maximum memory in MiB the qube may balloon to; 0 disables memory balancing."
    ),
    p!("memory", Int, VMS, ReadWrite, d_memory, Some(c_memory), "Memory in MiB the qube starts with."),
    p!("name", Str, ALL | REMOTE, WriteOnce, d_name, None, "User-facing name of the qube."),
    p!(
        "provides_network",
        Bool,
        VMS,
        ReadWrite,
        d_false,
        Some(c_provides_network),
        "This qube can be the network provider (netvm) of other qubes."
    ),
    p!("qid", Int, ALL | REMOTE, WriteOnce, d_qid, None, "Internal numeric identifier of the qube."),
    p!(
        "qrexec_timeout",
        Int,
        VMS,
        ReadWrite,
        d_qrexec_timeout,
        Some(c_qrexec_timeout),
        "Seconds to wait for the qube's agent to connect after start."
    ),
    p!(
        "remote_name",
        Str,
        REMOTE,
        ReadWrite,
        d_empty,
        None,
        "Name of the qube on its own host, when it differs from the name here."
    ),
    p!(
        "shutdown_timeout",
        Int,
        VMS,
        ReadWrite,
        d_shutdown_timeout,
        Some(c_shutdown_timeout),
        "Seconds to wait for a clean shutdown before the qube is killed."
    ),
    p!(
        "start_time",
        Str,
        VMS,
        ReadOnly,
        d_empty,
        None,
        "Time the qube was started, in seconds since the epoch; empty when halted."
    ),
    p!("stubdom_mem", Int, VMS, ReadWrite, d_empty, None, "Memory in MiB for the device-model stub domain (Xen only)."),
    p!("stubdom_uuid", Str, VMS, ReadOnly, d_empty, None, "UUID of the device-model stub domain (Xen only)."),
    p!(
        "stubdom_xid",
        Int,
        VMS,
        ReadOnly,
        d_minus_one,
        None,
        "Hypervisor id of the device-model stub domain (Xen only)."
    ),
    p!(
        "template_for_dispvms",
        Bool,
        APP | SA,
        ReadWrite,
        d_false,
        Some(c_template_for_dispvms),
        "Disposable qubes may be started from this qube."
    ),
    p!(
        "transport_rpc",
        Str,
        REMOTE,
        ReadWrite,
        d_empty,
        None,
        "Qrexec service the relay qube uses to reach the remote host."
    ),
    p!("updateable", Bool, ALL, ReadOnly, d_updateable, None, "Changes to this qube's root volume persist."),
    p!("uuid", Str, ALL | REMOTE, WriteOnce, d_uuid, None, "UUID of the qube."),
    p!("vcpus", Int, VMS, ReadWrite, d_vcpus, Some(c_vcpus), "Number of virtual CPUs."),
    p!("virt_mode", Str, VMS, ReadWrite, d_virt_mode, Some(c_virt_mode), "Virtualisation mode: hvm, pv or pvh."),
    p!("visible_gateway", Str, VMS, ReadOnly, d_visible_gateway, None, "Default gateway as the qube sees it."),
    p!("visible_gateway6", Str, VMS, ReadOnly, d_visible_gateway6, None, "Default IPv6 gateway as the qube sees it."),
    p!("visible_ip", Str, VMS, ReadOnly, d_visible_ip, None, "IPv4 address as the qube sees it."),
    p!("visible_ip6", Str, VMS, ReadOnly, d_visible_ip6, None, "IPv6 address as the qube sees it."),
    p!("visible_netmask", Str, VMS, ReadOnly, d_visible_netmask, None, "Netmask as the qube sees it."),
    p!("xid", Int, VMS, ReadOnly, d_minus_one, None, "Hypervisor id of the running qube, -1 when halted."),
    late!(
        "appvm_default_bootmode",
        Str,
        TPL,
        d_appvm_default_bootmode,
        None,
        "Boot mode that qubes based on this template use by default."
    ),
    late!("audiovm", Vm, VMS, d_audiovm, Some(c_audiovm), "Qube that provides audio to this qube."),
    late!(
        "bootmode",
        Str,
        VMS,
        d_bootmode,
        None,
        "Boot mode: selects extra kernel options defined by boot-mode features."
    ),
    late!(
        "default_dispvm",
        Vm,
        ALL,
        d_default_dispvm,
        Some(c_default_dispvm),
        "Template of disposable qubes started from this qube."
    ),
    late!("guivm", Vm, VMS, d_guivm, Some(c_guivm), "Qube that shows this qube's windows."),
    late!("kernelopts", Str, VMS, d_kernelopts, Some(c_kernelopts), "Kernel command line options."),
    late!(
        "management_dispvm",
        Vm,
        VMS,
        d_management_dispvm,
        Some(c_management_dispvm),
        "Template of the disposable qube used to manage this qube."
    ),
    late!(
        "netvm",
        Vm,
        VMS,
        d_netvm,
        Some(c_netvm),
        "Qube that provides the network connection; empty disconnects the qube."
    ),
    late!(
        "relayvm",
        Vm,
        REMOTE,
        |_, _| none_vm(),
        Some(c_relayvm),
        "Local qube that relays calls to and from this remote qube."
    ),
    PropDef {
        name: "template",
        ty: PropType::Vm,
        late: true,
        classes: APP | DISP,
        access: Access::ReadWrite,
        allow_none: false,
        default: d_none,
        check: Some(c_template),
        help: "Qube whose root volume this qube runs on.",
    },
];

/// AdminVM overrides of shared properties.
pub fn admin_default(name: &str) -> Option<DefaultFn> {
    match name {
        "label" => Some(d_admin_label),
        "maxmem" => Some(d_zero),
        "keyboard_layout" => Some(|_, _| s("us++")),
        _ => None,
    }
}

/// Properties the AdminVM exposes read-only although qubes may change them.
pub fn admin_read_only(name: &str) -> bool {
    matches!(name, "maxmem" | "name" | "qid" | "uuid")
}

pub fn admin_has(name: &str) -> bool {
    matches!(
        name,
        "default_dispvm"
            | "devices_denied"
            | "icon"
            | "include_in_backups"
            | "keyboard_layout"
            | "klass"
            | "label"
            | "maxmem"
            | "name"
            | "qid"
            | "updateable"
            | "uuid"
    )
}

pub fn vm_prop_def(class: Class, name: &str) -> Option<&'static PropDef> {
    let def = VM_PROPS.iter().find(|p| p.name == name)?;
    let present = if class == Class::AdminVM { admin_has(name) } else { def.applies_to(class) };
    present.then_some(def)
}

pub fn vm_prop_names(class: Class) -> impl Iterator<Item = &'static str> {
    VM_PROPS.iter().filter(move |p| vm_prop_def(class, p.name).is_some()).map(|p| p.name)
}

fn g_none(_: &App) -> Option<String> {
    none_vm()
}
fn g_dom0(_: &App) -> Option<String> {
    s("dom0")
}
fn g_unset(_: &App) -> Option<String> {
    None
}
fn g_default_pool(app: &App) -> Option<String> {
    let pools = app.pools();
    pools
        .iter()
        .find(|p| p.name == "default")
        .or_else(|| pools.iter().find(|p| p.name == "varlibqubes"))
        .or_else(|| pools.iter().find(|p| p.driver == crate::volume::Driver::File))
        .map(|p| p.name.clone())
}
fn g_pool_follows(app: &App) -> Option<String> {
    app.global_prop("default_pool")
}
fn gc_pool(app: &App, v: &str) -> Result<String> {
    if app.pool(v).is_none() {
        return Err(Error::new(ErrorKind::Invalid(Invalid::PropertyValue), "No such storage pool"));
    }
    Ok(v.to_string())
}
fn gc_positive(app: &App, v: &str) -> Result<String> {
    let _ = app;
    match v.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n.to_string()),
        _ => Err(Error::new(
            ErrorKind::Invalid(Invalid::PropertyValue),
            format!("Value must be positive: {}", pyrepr(v)),
        )),
    }
}
fn gc_vm_exists(app: &App, v: &str) -> Result<String> {
    if !v.is_empty() && app.domain(v).is_none() {
        return Err(Error::new(
            ErrorKind::Invalid(Invalid::PropertyValue),
            format!("Can't set property to non-existing qube {v}"),
        ));
    }
    Ok(v.to_string())
}
fn gc_netvm(app: &App, v: &str) -> Result<String> {
    gc_vm_exists(app, v)?;
    if let Some(target) = app.domain(v) {
        if app.vm_prop(target, "provides_network").as_deref() != Some("True") {
            return Err(Error::value(format!("The {v} qube does not provide network")));
        }
        if target.class != Class::AdminVM && app.netvm_chain(target).iter().any(|n| n == v) {
            return Err(Error::value("Loops in network are unsupported"));
        }
    }
    Ok(v.to_string())
}
fn gc_template(app: &App, v: &str) -> Result<String> {
    gc_vm_exists(app, v)?;
    if let Some(target) = app.domain(v) {
        if target.class != Class::TemplateVM {
            return Err(Error::new(
                ErrorKind::Invalid(Invalid::PropertyValue),
                format!("wrong VM class: domains[{}] is of type {} and not TemplateVM", pyrepr(v), target.class.name()),
            ));
        }
    }
    Ok(v.to_string())
}
fn gc_dispvm_for(prop: &str, app: &App, v: &str) -> Result<String> {
    gc_vm_exists(app, v)?;
    if let Some(target) = app.domain(v) {
        if app.vm_prop(target, "template_for_dispvms").as_deref() != Some("True") {
            return Err(Error::new(
                ErrorKind::Invalid(Invalid::PropertyValue),
                format!(
                    "Cannot set invalid property to system, {prop} {} has template_for_dispvms set to False",
                    pyrepr(v)
                ),
            ));
        }
    }
    Ok(v.to_string())
}
fn gc_default_dispvm(app: &App, v: &str) -> Result<String> {
    gc_dispvm_for("default_dispvm", app, v)
}
fn gc_management_dispvm(app: &App, v: &str) -> Result<String> {
    gc_dispvm_for("management_dispvm", app, v)
}
fn gc_kernel(_: &App, v: &str) -> Result<String> {
    if v.contains('/') {
        return Err(Error::new(
            ErrorKind::Invalid(Invalid::PropertyValue),
            format!("kernel name may not contain '/': {}", pyrepr(v)),
        ));
    }
    Ok(v.to_string())
}

macro_rules! g {
    ($name:literal, $ty:ident, $access:ident, $default:expr, $check:expr, $help:literal) => {
        GlobalPropDef {
            name: $name,
            ty: PropType::$ty,
            access: Access::$access,
            default: $default,
            check: $check,
            help: $help,
        }
    };
}

/// Global properties in canonical (alphabetical) order.
pub static GLOBAL_PROPS: &[GlobalPropDef] = &[
    g!("check_updates_vm", Bool, ReadWrite, |_| s("True"), None, "Check for updates inside qubes."),
    g!(
        "clockvm",
        Vm,
        ReadWrite,
        g_none,
        Some(gc_vm_exists),
        "Qube that keeps the time and sets the clock of the others."
    ),
    g!("default_audiovm", Vm, ReadWrite, g_dom0, Some(gc_vm_exists), "Default audio qube for new qubes."),
    g!("default_dispvm", Vm, ReadWrite, g_none, Some(gc_default_dispvm), "Default template of disposable qubes."),
    g!("default_guivm", Vm, ReadWrite, g_dom0, Some(gc_vm_exists), "Default GUI qube for new qubes."),
    g!("default_kernel", Str, ReadWrite, g_unset, Some(gc_kernel), "Kernel qubes boot unless they name another."),
    g!("default_netvm", Vm, ReadWrite, g_none, Some(gc_netvm), "Network provider of qubes that do not name one."),
    g!(
        "default_pool",
        Str,
        ReadWrite,
        g_default_pool,
        Some(gc_pool),
        "Storage pool new volumes go to unless a more specific default is set."
    ),
    g!("default_pool_kernel", Str, ReadWrite, g_pool_follows, Some(gc_pool), "Default pool for kernel volumes."),
    g!("default_pool_private", Str, ReadWrite, g_pool_follows, Some(gc_pool), "Default pool for private volumes."),
    g!("default_pool_root", Str, ReadWrite, g_pool_follows, Some(gc_pool), "Default pool for root volumes."),
    g!("default_pool_volatile", Str, ReadWrite, g_pool_follows, Some(gc_pool), "Default pool for volatile volumes."),
    g!(
        "default_qrexec_timeout",
        Int,
        ReadWrite,
        |_| s("60"),
        Some(gc_positive),
        "Default seconds to wait for a qube's agent."
    ),
    g!(
        "default_shutdown_timeout",
        Int,
        ReadWrite,
        |_| s("60"),
        Some(gc_positive),
        "Default seconds to wait for a clean shutdown."
    ),
    g!(
        "default_template",
        Vm,
        ReadWrite,
        g_unset,
        Some(gc_template),
        "Template new AppVMs are based on unless they name one."
    ),
    g!(
        "management_dispvm",
        Vm,
        ReadWrite,
        g_none,
        Some(gc_management_dispvm),
        "Default template of the disposable qube used for management."
    ),
    g!("maxmem", Int, ReadOnly, |app| Some(app.host.memory_mib.to_string()), None, "Memory of the host in MiB."),
    g!("no_cpus", Int, ReadOnly, |app| Some(app.host.cpus.to_string()), None, "Number of CPUs of the host."),
    g!("stats_interval", Int, ReadWrite, |_| s("3"), Some(gc_positive), "Seconds between two statistics events."),
    g!("updatevm", Vm, ReadWrite, g_none, Some(gc_vm_exists), "Qube that downloads updates for the host."),
];

pub fn global_prop_def(name: &str) -> Option<&'static GlobalPropDef> {
    GLOBAL_PROPS.iter().find(|p| p.name == name)
}

/// Type-level sanitizing of an untrusted Set payload, before any state is consulted.
pub fn sanitize(ty: PropType, payload: &[u8]) -> Result<String> {
    // qubesd's messages; its qube-reference sanitizer raises a QubesValueError without one.
    let non_ascii = if ty == PropType::Vm { "" } else { "Non-ASCII bytes in property value" };
    let text = std::str::from_utf8(payload).ok().filter(|t| t.is_ascii()).ok_or_else(|| Error::value(non_ascii))?;
    match ty {
        PropType::Bool => crate::text::parse_bool(text)
            .map(|b| crate::text::format_bool(b).to_string())
            .ok_or_else(|| Error::value(format!("Invalid literal for boolean property: {}", pyrepr(text)))),
        PropType::Int => crate::text::parse_python_int(text)
            .map(|n| n.to_string())
            .ok_or_else(|| Error::value("Failed to parse property value as int")),
        PropType::Vm => {
            if !text.is_empty() {
                crate::text::validate_vm_name(text)?;
            }
            Ok(text.to_string())
        }
        PropType::Str | PropType::Label => {
            if !crate::text::is_printable_ascii_text(text) {
                return Err(Error::value("Invalid characters in property value"));
            }
            Ok(text.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_canonical_order() {
        let early: Vec<_> = VM_PROPS.iter().filter(|p| !p.late).map(|p| p.name).collect();
        let late: Vec<_> = VM_PROPS.iter().filter(|p| p.late).map(|p| p.name).collect();
        let mut sorted_early = early.clone();
        sorted_early.sort();
        let mut sorted_late = late.clone();
        sorted_late.sort();
        assert_eq!(early, sorted_early);
        assert_eq!(late, sorted_late);
        assert!(VM_PROPS.iter().position(|p| p.late) > VM_PROPS.iter().rposition(|p| !p.late));
        let globals: Vec<_> = GLOBAL_PROPS.iter().map(|p| p.name).collect();
        let mut sorted = globals.clone();
        sorted.sort();
        assert_eq!(globals, sorted);
    }

    #[test]
    fn sanitize_by_type() {
        assert_eq!(sanitize(PropType::Bool, b"yes").unwrap(), "True");
        assert_eq!(sanitize(PropType::Bool, b"maybe").unwrap_err().kind, ErrorKind::Invalid(Invalid::Value));
        assert_eq!(sanitize(PropType::Int, b" 12 ").unwrap(), "12");
        assert_eq!(sanitize(PropType::Int, b"x").unwrap_err().message, "Failed to parse property value as int");
        assert_eq!(sanitize(PropType::Vm, b"").unwrap(), "");
        assert!(sanitize(PropType::Vm, b"1bad").is_err());
        assert!(sanitize(PropType::Str, "é".as_bytes()).is_err());
        assert!(sanitize(PropType::Str, b"a\x01").is_err());
    }

    #[test]
    fn denied_codes_are_normalized() {
        assert_eq!(normalize_denied("u123456b000000u123456").unwrap(), "b000000u123456");
        assert_eq!(normalize_denied("x123456").unwrap_err().kind, ErrorKind::Invalid(Invalid::PropertyValue));
        assert_eq!(normalize_denied("u12345").unwrap_err().kind, ErrorKind::Invalid(Invalid::Value));
        assert_eq!(normalize_denied("uABCDEF").unwrap_err().kind, ErrorKind::Invalid(Invalid::PropertyValue));
        assert_eq!(split_interfaces("é234567").unwrap(), ["é234567"]);
    }

    #[test]
    fn ip_octets_skip_zero_and_broadcast() {
        assert_eq!(vmid_octets(5), "0.5");
        assert_eq!(vmid_octets(254), "0.254");
        assert_eq!(vmid_octets(255), "1.1");
        assert_eq!(vmid_octets(508), "1.254");
        assert_eq!(vmid_octets(509), "2.1");
    }
}
