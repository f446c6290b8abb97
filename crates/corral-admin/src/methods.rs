//! The method table: every Admin API call with its destination, argument and payload rules and its
//! handler. The framing checks in `dispatch` read these rules, so they live in one place.

use corral_core::domain::Class;
use corral_core::plan::{CreateSpec, PoolChoice};
use corral_core::props::{self, PropType};
use corral_core::volume::Driver;
use corral_core::{firewall, label, Error, ErrorKind, Result};
use corral_service::{Caller, FeatureLookup, PropView, Service};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// Must be dom0 (global calls).
    Admin,
    /// Must not be dom0.
    NotAdmin,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    No,
    Yes,
    Maybe,
}

/// Whether a call may block on disk I/O; those run off the async executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    Memory,
    Io,
}

/// What a handler sees: the caller, the resolved destination qube, and the untrusted argument and payload.
pub struct Ctx<'a> {
    pub caller: &'a Caller,
    pub method: &'a str,
    pub arg: &'a str,
    pub dest: &'a str,
    pub payload: &'a [u8],
}

pub type HandlerFn = fn(&Service, &Ctx<'_>) -> Result<Vec<u8>>;
/// A handler whose content is shared with a cache, written to the socket without copying.
pub type SharedFn = fn(&Service, &Ctx<'_>) -> Result<std::sync::Arc<Vec<u8>>>;

#[derive(Clone, Copy)]
pub enum Handler {
    Call(HandlerFn),
    Shared(SharedFn),
    /// `admin.Events`: a stream, served by the connection loop.
    Events,
    /// `admin.vm.Stats`: a stream of periodic samples, served by the connection loop.
    Stats,
}

#[derive(Clone)]
pub struct Method {
    pub name: String,
    pub dest: Dest,
    pub arg: Want,
    pub payload: Want,
    pub cost: Cost,
    pub handler: Handler,
}

fn m(name: &str, dest: Dest, arg: Want, payload: Want, cost: Cost, f: HandlerFn) -> Method {
    Method { name: name.to_string(), dest, arg, payload, cost, handler: Handler::Call(f) }
}

/// Classes a client may create. dom0 is the only AdminVM.
const CREATABLE: [Class; 5] = [Class::AppVM, Class::TemplateVM, Class::StandaloneVM, Class::DispVM, Class::RemoteVM];
pub const DEVICE_CLASSES: [&str; 2] = ["pci", "block"];

pub fn admin_methods() -> Vec<Method> {
    use Cost::{Io, Memory};
    use Dest::{Admin, Any, NotAdmin};
    use Want::{Maybe, No, Yes};
    let mut t = vec![
        m("admin.vmclass.List", Admin, No, No, Memory, vmclass_list),
        Method {
            name: "admin.vm.List".into(),
            dest: Any,
            arg: No,
            payload: No,
            cost: Memory,
            handler: Handler::Shared(vm_list),
        },
        m("admin.vm.CurrentState", Any, No, No, Io, vm_current_state),
        m("admin.vm.Start", Any, No, No, Io, vm_start),
        m("admin.vm.CreateDisposable", Any, Maybe, Maybe, Io, vm_create_disposable),
        m("admin.vm.Shutdown", Any, Maybe, No, Io, vm_shutdown),
        m("admin.vm.Kill", Any, No, No, Io, vm_kill),
        m("admin.vm.Pause", Any, No, No, Io, vm_pause),
        m("admin.vm.Unpause", Any, No, No, Io, vm_unpause),
        m("admin.vm.Suspend", Any, No, No, Io, vm_suspend),
        m("admin.vm.Resume", Any, No, No, Io, vm_resume),
        m("admin.vm.Console", Any, No, No, Io, vm_console),
        m("admin.vm.Remove", Any, No, No, Io, vm_remove),
        m("admin.vm.property.List", Any, No, No, Memory, vm_property_list),
        m("admin.vm.property.Get", Any, Yes, No, Memory, vm_property_get),
        m("admin.vm.property.GetAll", Any, No, No, Memory, vm_property_get_all),
        m("admin.vm.property.GetDefault", Any, Yes, No, Memory, vm_property_get_default),
        m("admin.vm.property.Help", Any, Yes, No, Memory, vm_property_help),
        m("admin.vm.property.Set", Any, Yes, Maybe, Io, vm_property_set),
        m("admin.vm.property.Reset", Any, Yes, No, Io, vm_property_reset),
        m("admin.property.List", Admin, No, No, Memory, property_list),
        m("admin.property.Get", Admin, Yes, No, Memory, property_get),
        m("admin.property.GetAll", Admin, No, No, Memory, property_get_all),
        m("admin.property.GetDefault", Admin, Yes, No, Memory, property_get_default),
        m("admin.property.Help", Admin, Yes, No, Memory, property_help),
        m("admin.property.Set", Admin, Yes, Maybe, Io, property_set),
        m("admin.property.Reset", Admin, Yes, No, Io, property_reset),
        m("admin.vm.feature.List", Any, No, No, Memory, feature_list),
        m("admin.vm.feature.Get", Any, Yes, No, Memory, feature_get),
        m("admin.vm.feature.CheckWithTemplate", Any, Yes, No, Memory, feature_get),
        m("admin.vm.feature.CheckWithNetvm", Any, Yes, No, Memory, feature_get),
        m("admin.vm.feature.CheckWithAdminVM", Any, Yes, No, Memory, feature_get),
        m("admin.vm.feature.CheckWithTemplateAndAdminVM", Any, Yes, No, Memory, feature_get),
        m("admin.vm.feature.Set", Any, Yes, Maybe, Io, feature_set),
        m("admin.vm.feature.Remove", Any, Yes, No, Io, feature_remove),
        m("admin.vm.tag.List", Any, No, No, Memory, tag_list),
        m("admin.vm.tag.Get", Any, Yes, No, Memory, tag_get),
        m("admin.vm.tag.Set", Any, Yes, No, Io, tag_set),
        m("admin.vm.tag.Remove", Any, Yes, No, Io, tag_remove),
        m("admin.label.List", Admin, No, No, Memory, label_list),
        m("admin.label.Get", Admin, Yes, No, Memory, label_get),
        m("admin.label.Index", Admin, Yes, No, Memory, label_index),
        m("admin.label.Create", Admin, Yes, Yes, Io, label_create),
        m("admin.label.Remove", Admin, Yes, No, Io, label_remove),
        m("admin.vm.notes.Get", NotAdmin, No, No, Memory, notes_get),
        m("admin.vm.notes.Set", NotAdmin, No, Yes, Io, notes_set),
        m("admin.vm.firewall.Get", NotAdmin, No, No, Memory, firewall_get),
        m("admin.vm.firewall.Set", NotAdmin, No, Yes, Io, firewall_set),
        m("admin.vm.firewall.Reload", NotAdmin, No, No, Memory, firewall_reload),
        m("admin.deviceclass.List", Admin, No, No, Memory, deviceclass_list),
        m("admin.vm.device.denied.List", Any, No, No, Memory, denied_list),
        m("admin.vm.device.denied.Add", Any, No, Maybe, Io, denied_add),
        m("admin.vm.device.denied.Remove", Any, No, Maybe, Io, denied_remove),
        m("admin.pool.List", Admin, No, No, Memory, pool_list),
        m("admin.pool.ListDrivers", Admin, No, No, Memory, pool_list_drivers),
        m("admin.pool.Info", Admin, Yes, No, Io, pool_info),
        m("admin.pool.UsageDetails", Admin, Yes, No, Io, pool_usage_details),
        m("admin.pool.Add", Admin, Yes, Yes, Io, pool_add),
        m("admin.pool.Remove", Admin, Yes, No, Io, pool_remove),
        m("admin.pool.Set.revisions_to_keep", Admin, Yes, Yes, Io, pool_set_revisions),
        m("admin.pool.Set.ephemeral_volatile", Admin, Yes, Yes, Io, pool_set_ephemeral),
        m("admin.pool.volume.List", Admin, Yes, No, Memory, pool_volume_list),
        m("admin.vm.volume.List", Any, No, No, Memory, volume_list),
        m("admin.vm.volume.Info", Any, Yes, No, Io, volume_info),
        m("admin.vm.volume.ListSnapshots", Any, Yes, No, Io, volume_list_snapshots),
        m("admin.vm.volume.Resize", Any, Yes, Yes, Io, volume_resize),
        m("admin.vm.volume.Revert", Any, Yes, Yes, Io, volume_revert),
        m("admin.vm.volume.Clear", Any, Yes, No, Io, volume_clear),
        m("admin.vm.volume.Set.revisions_to_keep", Any, Yes, Yes, Io, volume_set_revisions),
        m("admin.vm.volume.Set.rw", Any, Yes, Yes, Io, volume_set_rw),
        m("admin.vm.volume.Set.ephemeral", Any, Yes, Yes, Io, volume_set_ephemeral),
        m("admin.vm.volume.CloneFrom", Any, Yes, No, Memory, volume_clone_from),
        m("admin.vm.volume.CloneTo", Any, Yes, Yes, Io, volume_clone_to),
        Method { name: "admin.Events".into(), dest: Any, arg: No, payload: No, cost: Memory, handler: Handler::Events },
        Method {
            name: "admin.vm.Stats".into(),
            dest: Any,
            arg: No,
            payload: No,
            cost: Memory,
            handler: Handler::Stats,
        },
    ];
    for class in CREATABLE {
        t.push(m(&format!("admin.vm.Create.{}", class.name()), Admin, Maybe, Yes, Io, vm_create));
        t.push(m(&format!("admin.vm.CreateInPool.{}", class.name()), Admin, Maybe, Yes, Io, vm_create_in_pool));
    }
    for class in DEVICE_CLASSES {
        for (suffix, arg) in [("Available", Maybe), ("Assigned", Maybe), ("Attached", Maybe), ("List", No)] {
            t.push(m(&format!("admin.vm.device.{class}.{suffix}"), Any, arg, No, Memory, device_list_empty));
        }
    }
    t
}

pub fn internal_methods() -> Vec<Method> {
    use Dest::{Admin, Any};
    use Want::{Maybe, No, Yes};
    vec![
        m("internal.GetSystemInfo", Admin, No, No, Cost::Memory, get_system_info),
        m("internal.vm.volume.ImportBegin", Any, Yes, Maybe, Cost::Io, import_begin),
        m("internal.vm.volume.ImportEnd", Any, Yes, Yes, Cost::Io, import_end),
        m("corral.user.Add", Admin, Yes, Yes, Cost::Io, user_add),
        m("corral.user.Remove", Admin, Yes, No, Cost::Io, user_remove),
        m("corral.user.ServiceKey", Admin, Yes, No, Cost::Io, user_service_key),
    ]
}

fn lines<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        out.extend_from_slice(i.as_ref().as_bytes());
        out.push(b'\n');
    }
    out
}

fn text(s: impl Into<String>) -> Vec<u8> {
    s.into().into_bytes()
}

fn empty() -> Result<Vec<u8>> {
    Ok(Vec::new())
}

fn vmclass_list(_: &Service, _: &Ctx<'_>) -> Result<Vec<u8>> {
    let mut names: Vec<&str> = Class::ALL.iter().map(|c| c.name()).collect();
    names.sort_unstable();
    Ok(lines(names))
}

fn vm_list(s: &Service, c: &Ctx<'_>) -> Result<std::sync::Arc<Vec<u8>>> {
    let render = |vms: Vec<corral_service::VmSummary>| {
        let mut out = Vec::with_capacity(vms.len() * 80);
        for vm in vms {
            let line = format!("{} class={} state={} uuid={}\n", vm.name, vm.class.name(), vm.state, vm.uuid);
            out.extend_from_slice(line.as_bytes());
        }
        out
    };
    if c.dest != "dom0" {
        return Ok(std::sync::Arc::new(render(s.list_vms(c.caller, c.dest)?)));
    }
    // The full list is the most expensive read; it is rendered once per model change.
    s.authorize(&corral_service::Call { caller: c.caller, method: c.method, arg: "", target: "dom0" })?;
    Ok(s.rendered("admin.vm.List", |app, _| render(s.summaries(app))))
}

fn vm_current_state(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    Ok(text(s.current_state(c.caller, c.dest)?))
}

/// qrexec asks with payload `uuid` to get `uuid:<uuid>` back; `preload` has nothing to refill until
/// preloaded disposables exist.
fn vm_create_disposable(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    let want_uuid = match c.payload {
        b"" => false,
        b"uuid" => true,
        _ => return Err(Error::protocol("Invalid payload")),
    };
    match c.arg {
        "" => {}
        "preload" => {
            s.with_vm(c.caller, c.method, c.arg, c.dest, |_, _| Ok(()))?;
            return empty();
        }
        _ => return Err(Error::denied("Invalid argument")),
    }
    let name = s.create_disposable(c.caller, c.dest)?;
    if !want_uuid {
        return Ok(text(name));
    }
    let uuid = s.with_vm(c.caller, "admin.vm.CreateDisposable", "", &name, |_, d| Ok(d.uuid))?;
    Ok(text(format!("uuid:{uuid}")))
}

fn vm_start(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.start_vm(c.caller, c.dest)?;
    empty()
}

/// `force`, `wait`, or both joined by `+` in either order. As upstream, every `+`-separated word must be
/// one of the two, and a repeated word is accepted.
fn vm_shutdown(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    let words: Vec<&str> = if c.arg.is_empty() { Vec::new() } else { c.arg.split('+').collect() };
    if !words.iter().all(|w| matches!(*w, "force" | "wait")) {
        return Err(Error::protocol("Argument must match: force, wait"));
    }
    s.shutdown_vm(c.caller, c.dest, words.contains(&"force"), words.contains(&"wait"))?;
    empty()
}

fn vm_kill(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.kill_vm(c.caller, c.dest)?;
    empty()
}

fn vm_pause(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.pause_vm(c.caller, c.dest)?;
    empty()
}

fn vm_unpause(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.unpause_vm(c.caller, c.dest)?;
    empty()
}

fn vm_suspend(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.suspend_vm(c.caller, c.dest)?;
    empty()
}

fn vm_resume(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.resume_vm(c.caller, c.dest)?;
    empty()
}

fn vm_console(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    Ok(text(s.console_path(c.caller, c.dest)?))
}

fn vm_remove(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.remove_vm(c.caller, c.dest)?;
    empty()
}

fn get_line(v: &PropView) -> String {
    format!("default={} type={} {}", corral_core::text::format_bool(v.is_default), v.ty.name(), v.value)
}

fn get_all_line(name: &str, v: &PropView) -> String {
    format!("{name} {}", get_line(v).replace('\\', "\\\\").replace('\n', "\\n"))
}

fn default_line(d: Option<(PropType, String)>) -> Vec<u8> {
    d.map(|(ty, v)| text(format!("type={} {v}", ty.name()))).unwrap_or_default()
}

fn vm_property_list(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_vm(c.caller, c.method, c.arg, c.dest, |_, d| Ok(lines(props::vm_prop_names(d.class))))
}

fn vm_property_get(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_vm(c.caller, c.method, c.arg, c.dest, |app, d| Ok(text(get_line(&s.vm_prop_view(app, d, c.arg)?))))
}

fn vm_property_get_all(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_vm(c.caller, c.method, c.arg, c.dest, |app, d| {
        let mut out = Vec::new();
        for name in props::vm_prop_names(d.class) {
            out.extend_from_slice(get_all_line(name, &s.vm_prop_view(app, d, name)?).as_bytes());
            out.push(b'\n');
        }
        Ok(out)
    })
}

fn vm_property_get_default(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_vm(c.caller, c.method, c.arg, c.dest, |app, d| Ok(default_line(Service::vm_prop_default(app, d, c.arg)?)))
}

fn vm_property_help(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_vm(c.caller, c.method, c.arg, c.dest, |_, d| Ok(text(Service::vm_prop_help(d, c.arg)?)))
}

fn vm_property_set(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.set_vm_prop(c.caller, c.dest, c.arg, c.payload)?;
    empty()
}

fn vm_property_reset(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.reset_vm_prop(c.caller, c.dest, c.arg)?;
    empty()
}

fn property_list(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_app(c.caller, c.method, c.arg, |_| Ok(lines(props::GLOBAL_PROPS.iter().map(|p| p.name))))
}

fn property_get(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_app(c.caller, c.method, c.arg, |app| Ok(text(get_line(&Service::global_prop_view(app, c.arg)?))))
}

fn property_get_all(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_app(c.caller, c.method, c.arg, |app| {
        let mut out = Vec::new();
        for p in props::GLOBAL_PROPS {
            out.extend_from_slice(get_all_line(p.name, &Service::global_prop_view(app, p.name)?).as_bytes());
            out.push(b'\n');
        }
        Ok(out)
    })
}

fn property_get_default(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_app(c.caller, c.method, c.arg, |app| Ok(default_line(Service::global_prop_default(app, c.arg)?)))
}

fn property_help(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_app(c.caller, c.method, c.arg, |_| {
        props::global_prop_def(c.arg).map(|p| text(p.help)).ok_or_else(|| Error::no_such_property("Qubes", c.arg))
    })
}

fn property_set(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.set_global_prop(c.caller, c.arg, c.payload)?;
    empty()
}

fn property_reset(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.reset_global_prop(c.caller, c.arg)?;
    empty()
}

fn feature_list(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_vm(c.caller, c.method, c.arg, c.dest, |_, d| Ok(lines(d.features.iter().map(|(k, _)| k))))
}

fn feature_get(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    let lookup = match c.method.rsplit('.').next() {
        Some("CheckWithTemplate") => FeatureLookup::Template,
        Some("CheckWithNetvm") => FeatureLookup::Netvm,
        Some("CheckWithAdminVM") => FeatureLookup::AdminVm,
        Some("CheckWithTemplateAndAdminVM") => FeatureLookup::TemplateAndAdminVm,
        _ => FeatureLookup::Own,
    };
    Ok(text(s.feature_get(c.caller, c.method, c.dest, c.arg, lookup)?))
}

fn feature_set(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.feature_set(c.caller, c.dest, c.arg, c.payload)?;
    empty()
}

fn feature_remove(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.feature_remove(c.caller, c.dest, c.arg)?;
    empty()
}

fn tag_list(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_vm(c.caller, c.method, c.arg, c.dest, |app, d| Ok(lines(app.tags_of(d))))
}

fn tag_get(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    corral_core::text::validate_tag(c.arg)?;
    s.with_vm(c.caller, c.method, c.arg, c.dest, |app, d| {
        Ok(text(if app.tags_of(d).iter().any(|t| t == c.arg) { "1" } else { "0" }))
    })
}

fn tag_set(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.tag_set(c.caller, c.dest, c.arg)?;
    empty()
}

fn tag_remove(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.tag_remove(c.caller, c.dest, c.arg)?;
    empty()
}

fn label_list(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_app(c.caller, c.method, c.arg, |app| Ok(lines(app.labels().map(|l| l.name.as_str()))))
}

fn find_label<'a>(app: &'a corral_core::App, token: &str) -> Result<&'a label::Label> {
    label::validate_label_name(token, false)?;
    app.get_label(token)
        .ok_or_else(|| Error::new(ErrorKind::QubesLabelNotFoundError, format!("Label does not exist: {token}")))
}

fn label_get(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_app(c.caller, c.method, c.arg, |app| Ok(text(find_label(app, c.arg)?.color.clone())))
}

fn label_index(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_app(c.caller, c.method, c.arg, |app| Ok(text(find_label(app, c.arg)?.index.to_string())))
}

fn label_create(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.label_create(c.caller, c.arg, c.payload)?;
    empty()
}

fn label_remove(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.label_remove(c.caller, c.arg)?;
    empty()
}

fn notes_get(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_vm(c.caller, c.method, c.arg, c.dest, |_, d| Ok(text(d.notes.clone())))
}

fn notes_set(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.notes_set(c.caller, c.dest, c.payload)?;
    empty()
}

fn firewall_get(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_vm(c.caller, c.method, c.arg, c.dest, |_, d| {
        Ok(text(firewall::format_rules(&d.firewall, corral_service::now_epoch())))
    })
}

fn firewall_set(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.firewall_set(c.caller, c.dest, c.payload)?;
    empty()
}

fn firewall_reload(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.firewall_reload(c.caller, c.dest)?;
    empty()
}

fn deviceclass_list(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_app(c.caller, c.method, c.arg, |_| Ok(lines(DEVICE_CLASSES)))
}

/// No device backends exist yet, so every listing is empty (an unknown device is not an error).
fn device_list_empty(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_vm(c.caller, c.method, c.arg, c.dest, |_, _| empty())
}

/// The denied interface codes, one per line without a newline after the last, as qubesd answers.
fn denied_list(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_vm(c.caller, c.method, c.arg, c.dest, |app, d| {
        // A RemoteVM has no list: nothing is denied there.
        let stored = app.vm_prop(d, "devices_denied").unwrap_or_default();
        Ok(text(props::split_interfaces(&stored)?.join("\n")))
    })
}

fn denied_add(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.denied_add(c.caller, c.dest, c.payload)?;
    empty()
}

fn denied_remove(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.denied_remove(c.caller, c.dest, c.payload)?;
    empty()
}

/// `<pool>` must name an existing pool; otherwise the argument is outside the allowed set.
fn known_pool<'a>(app: &'a corral_core::App, name: &str) -> Result<&'a corral_core::volume::Pool> {
    app.pool(name).ok_or_else(|| Error::denied("Argument not in 'pools'"))
}

fn pool_list(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_app(c.caller, c.method, c.arg, |app| Ok(lines(app.pools().iter().map(|p| p.name.as_str()))))
}

fn pool_list_drivers(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_app(c.caller, c.method, c.arg, |_| {
        Ok(lines(Driver::ALL.iter().map(|d| format!("{} {}", d.name(), d.parameters().join(" ")))))
    })
}

fn pool_info(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    let pool = s.with_app(c.caller, c.method, c.arg, |app| Ok(known_pool(app, c.arg)?.clone()))?;
    let mut out: Vec<String> = pool.config().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some((size, usage)) = s.pool_usage(&pool) {
        out.push(format!("size={size}"));
        out.push(format!("usage={usage}"));
    }
    Ok(lines(out))
}

fn pool_usage_details(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    let pool = s.with_app(c.caller, c.method, c.arg, |app| Ok(known_pool(app, c.arg)?.clone()))?;
    Ok(match s.pool_usage(&pool) {
        Some((size, usage)) => lines([format!("data_size={size}"), format!("data_usage={usage}")]),
        None => Vec::new(),
    })
}

fn pool_add(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.pool_add(c.caller, c.arg, c.payload)?;
    empty()
}

fn pool_remove(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.pool_remove(c.caller, c.arg)?;
    empty()
}

fn pool_set_revisions(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.pool_set_revisions(c.caller, c.arg, c.payload)?;
    empty()
}

fn pool_set_ephemeral(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.pool_set_ephemeral(c.caller, c.arg, c.payload)?;
    empty()
}

fn pool_volume_list(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_app(c.caller, c.method, c.arg, |app| {
        known_pool(app, c.arg)?;
        let mut vids: Vec<&str> = app
            .domains()
            .flat_map(|d| d.volumes.iter())
            // Snapshot volumes count too: upstream's file pool lists every volume it initialised.
            .filter(|v| v.pool == c.arg && !v.vid.is_empty())
            .map(|v| v.vid.as_str())
            .collect();
        vids.sort_unstable();
        vids.dedup();
        Ok(lines(vids))
    })
}

fn volume_list(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.with_vm(c.caller, c.method, c.arg, c.dest, |_, d| Ok(lines(d.volumes.iter().map(|v| v.name.as_str()))))
}

fn volume_info(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    let info = s.volume_info(c.caller, c.dest, c.arg)?;
    Ok(lines(info.fields.iter().map(|(k, v)| format!("{k}={v}"))))
}

fn volume_list_snapshots(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    Ok(lines(s.volume_snapshots(c.caller, c.dest, c.arg)?))
}

fn volume_resize(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.volume_resize(c.caller, c.dest, c.arg, c.payload)?;
    empty()
}

fn volume_revert(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.volume_revert(c.caller, c.dest, c.arg, c.payload)?;
    empty()
}

fn volume_clear(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.volume_clear(c.caller, c.dest, c.arg)?;
    empty()
}

fn volume_set_revisions(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.volume_set_revisions(c.caller, c.dest, c.arg, c.payload)?;
    empty()
}

fn volume_set_rw(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.volume_set_rw(c.caller, c.dest, c.arg, c.payload)?;
    empty()
}

fn volume_set_ephemeral(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.volume_set_ephemeral(c.caller, c.dest, c.arg, c.payload)?;
    empty()
}

fn volume_clone_from(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    Ok(text(s.volume_clone_from(c.caller, c.dest, c.arg)?))
}

fn volume_clone_to(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.volume_clone_to(c.caller, c.dest, c.arg, c.payload)?;
    empty()
}

/// Parses `name=<n> label=<l> [pool=<p> | pool:<vol>=<p>…]` strictly, in upstream's order of checks.
fn parse_create(c: &Ctx<'_>, allow_pool: bool) -> Result<CreateSpec> {
    let class_name = c.method.rsplit('.').next().unwrap_or_default();
    let class = Class::from_name(class_name).ok_or_else(|| Error::protocol("Unknown class"))?;
    if !c.arg.is_empty() && !class.has_template() {
        return Err(Error::protocol(format!("{class_name} cannot be based on template")));
    }
    let payload = std::str::from_utf8(c.payload)
        .ok()
        .filter(|p| p.is_ascii())
        .ok_or_else(|| Error::protocol("Parameters contains non-ASCII characters"))?;
    let (mut name, mut label_name, mut pool) = (None, None, None);
    let mut per_volume = std::collections::BTreeMap::new();
    for param in payload.split(' ') {
        let (key, value) =
            param.split_once('=').ok_or_else(|| Error::protocol("Invalid parameter (expected key=value)"))?;
        match key {
            "name" | "label" if (key == "name" && name.is_some()) || (key == "label" && label_name.is_some()) => {
                return Err(Error::protocol("Options must be unique"));
            }
            "name" => {
                corral_core::text::validate_vm_name(value)?;
                name = Some(value.to_string());
            }
            "label" => {
                label::validate_label_name(value, true)?;
                label_name = Some(value.to_string());
            }
            "pool" if allow_pool => {
                if pool.replace(value.to_string()).is_some() {
                    return Err(Error::protocol("Option 'pool' must be unique"));
                }
            }
            k if allow_pool && k.starts_with("pool:") => {
                let volume = &k["pool:".len()..];
                if !corral_core::volume::VOLUME_NAMES.contains(&volume) {
                    return Err(Error::protocol("Volume must be one of: root, private, volatile, kernel"));
                }
                if per_volume.insert(volume.to_string(), value.to_string()).is_some() {
                    return Err(Error::protocol(format!("Option 'pool:{volume}' must be unique")));
                }
            }
            k if k == "pool" || k.starts_with("pool:") => {
                return Err(Error::protocol("Pool option specified but 'allow_pool' is False"));
            }
            _ => return Err(Error::protocol("Options does not match: name, label, pool, pool:")),
        }
    }
    let name = name.ok_or_else(|| Error::protocol("Creation requested without key: name"))?;
    let label = label_name.ok_or_else(|| Error::protocol("Creation requested without key: label"))?;
    if pool.is_some() && !per_volume.is_empty() {
        return Err(Error::protocol("Conflicting options specified: 'pool=', 'pool:volume='"));
    }
    let pools = match (pool, per_volume.is_empty()) {
        (Some(p), _) => PoolChoice::All(p),
        (None, false) => PoolChoice::PerVolume(per_volume),
        (None, true) => PoolChoice::Defaults,
    };
    Ok(CreateSpec {
        class,
        name,
        label,
        template: (!c.arg.is_empty()).then(|| c.arg.to_string()),
        pools,
        creator: c.caller.name.clone(),
        uuid: uuid_v4(),
    })
}

fn uuid_v4() -> uuid::Uuid {
    uuid::Uuid::new_v4()
}

fn vm_create(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.create_vm(c.caller, c.method, parse_create(c, false)?)?;
    empty()
}

fn vm_create_in_pool(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.create_vm(c.caller, c.method, parse_create(c, true)?)?;
    empty()
}

fn get_system_info(s: &Service, _: &Ctx<'_>) -> Result<Vec<u8>> {
    Ok(s.system_info().to_vec())
}

/// Local users of the HTTP door, managed by root through the internal socket (`corral user add`).
fn user_add(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    let password = std::str::from_utf8(c.payload).map_err(|_| Error::protocol("Password must be UTF-8"))?;
    s.user_add(c.arg, password.trim_end_matches(['\r', '\n']))?;
    empty()
}

fn user_service_key(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    Ok(s.user_service_key(c.arg)?.into_bytes())
}

fn user_remove(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    s.user_remove(c.arg)?;
    empty()
}

fn import_begin(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    let (method, size) = if c.payload.is_empty() {
        ("admin.vm.volume.Import", None)
    } else {
        // Not stripped, as qubesd: the import service sends the size line without its newline.
        let size = corral_core::text::validate_number(c.payload, "size of new data", false)?;
        ("admin.vm.volume.ImportWithSize", Some(u64::try_from(size).unwrap_or_default()))
    };
    let (size, path) = s.import_begin(c.caller, method, c.dest, c.arg, size)?;
    let path = path.display().to_string();
    if path.contains(char::is_whitespace) {
        return Err(Error::protocol("Path contains whitespace"));
    }
    Ok(text(format!("{size} {path}")))
}

fn import_end(s: &Service, c: &Ctx<'_>) -> Result<Vec<u8>> {
    // As qubesd: anything but `ok` is a failure (`fail\n<msg>`), whose message follows the first newline.
    let success = c.payload == b"ok";
    let message = match c.payload.splitn(2, |b| *b == b'\n').nth(1) {
        Some(m) if !success => String::from_utf8_lossy(m).into_owned(),
        _ => String::new(),
    };
    s.import_end(c.dest, c.arg, success, &message)?;
    empty()
}
