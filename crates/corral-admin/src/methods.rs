//! The method table: every Admin API call with its destination, argument and payload rules, and how its
//! untrusted argument and payload become a typed [`Request`]. The framing checks in the server read these
//! rules, so they live in one place; what a request does is the service's, and how its answer looks on the
//! wire is `render`'s.

use corral_core::domain::Class;
use corral_core::plan::{CreateSpec, PoolChoice};
use corral_core::{label, Error, Principal, Result};
use corral_service::{CreateIn, DeviceListing, FeatureLookup, Request, DEVICE_CLASSES};

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

/// What a parser sees: the caller, the resolved destination qube, and the untrusted argument and payload.
pub struct Ctx<'a> {
    pub caller: &'a Principal,
    pub method: &'a str,
    pub arg: &'a str,
    pub dest: &'a str,
    pub payload: &'a [u8],
}

/// Turns a call that passed the framing checks into its typed request, refusing what the method does not take.
pub type ParseFn = fn(&Ctx<'_>) -> Result<Request>;

#[derive(Clone)]
pub struct Method {
    pub name: String,
    pub dest: Dest,
    pub arg: Want,
    pub payload: Want,
    pub cost: Cost,
    pub parse: ParseFn,
}

fn m(name: &str, dest: Dest, arg: Want, payload: Want, cost: Cost, parse: ParseFn) -> Method {
    Method { name: name.to_string(), dest, arg, payload, cost, parse }
}

/// Classes a client may create. dom0 is the only AdminVM.
const CREATABLE: [Class; 5] = [Class::AppVM, Class::TemplateVM, Class::StandaloneVM, Class::DispVM, Class::RemoteVM];

fn vm(c: &Ctx<'_>) -> String {
    c.dest.to_string()
}

fn arg(c: &Ctx<'_>) -> String {
    c.arg.to_string()
}

fn payload(c: &Ctx<'_>) -> Vec<u8> {
    c.payload.to_vec()
}

pub fn admin_methods() -> Vec<Method> {
    use Cost::{Io, Memory};
    use Dest::{Admin, Any, NotAdmin};
    use Request as R;
    use Want::{Maybe, No, Yes};
    let mut t = vec![
        m("admin.vmclass.List", Admin, No, No, Memory, |_| Ok(R::VmClassList)),
        m("admin.vm.List", Any, No, No, Memory, |c| Ok(R::VmList { vm: vm(c) })),
        m("admin.vm.CurrentState", Any, No, No, Io, |c| Ok(R::VmCurrentState { vm: vm(c) })),
        m("admin.vm.Start", Any, No, No, Io, |c| Ok(R::VmStart { vm: vm(c) })),
        m("admin.vm.CreateDisposable", Any, Maybe, Maybe, Io, vm_create_disposable),
        m("admin.vm.Shutdown", Any, Maybe, No, Io, vm_shutdown),
        m("admin.vm.Kill", Any, No, No, Io, |c| Ok(R::VmKill { vm: vm(c) })),
        m("admin.vm.Pause", Any, No, No, Io, |c| Ok(R::VmPause { vm: vm(c) })),
        m("admin.vm.Unpause", Any, No, No, Io, |c| Ok(R::VmUnpause { vm: vm(c) })),
        m("admin.vm.Suspend", Any, No, No, Io, |c| Ok(R::VmSuspend { vm: vm(c) })),
        m("admin.vm.Resume", Any, No, No, Io, |c| Ok(R::VmResume { vm: vm(c) })),
        m("admin.vm.Console", Any, No, No, Io, |c| Ok(R::VmConsole { vm: vm(c) })),
        m("admin.vm.Remove", Any, No, No, Io, |c| Ok(R::VmRemove { vm: vm(c) })),
        m("admin.vm.property.List", Any, No, No, Memory, |c| Ok(R::VmPropertyList { vm: vm(c) })),
        m("admin.vm.property.Get", Any, Yes, No, Memory, |c| Ok(R::VmPropertyGet { vm: vm(c), name: arg(c) })),
        m("admin.vm.property.GetAll", Any, No, No, Memory, |c| Ok(R::VmPropertyGetAll { vm: vm(c) })),
        m("admin.vm.property.GetDefault", Any, Yes, No, Memory, |c| {
            Ok(R::VmPropertyGetDefault { vm: vm(c), name: arg(c) })
        }),
        m("admin.vm.property.Help", Any, Yes, No, Memory, |c| Ok(R::VmPropertyHelp { vm: vm(c), name: arg(c) })),
        m("admin.vm.property.Set", Any, Yes, Maybe, Io, |c| {
            Ok(R::VmPropertySet { vm: vm(c), name: arg(c), value: payload(c) })
        }),
        m("admin.vm.property.Reset", Any, Yes, No, Io, |c| Ok(R::VmPropertyReset { vm: vm(c), name: arg(c) })),
        m("admin.property.List", Admin, No, No, Memory, |_| Ok(R::PropertyList)),
        m("admin.property.Get", Admin, Yes, No, Memory, |c| Ok(R::PropertyGet { name: arg(c) })),
        m("admin.property.GetAll", Admin, No, No, Memory, |_| Ok(R::PropertyGetAll)),
        m("admin.property.GetDefault", Admin, Yes, No, Memory, |c| Ok(R::PropertyGetDefault { name: arg(c) })),
        m("admin.property.Help", Admin, Yes, No, Memory, |c| Ok(R::PropertyHelp { name: arg(c) })),
        m("admin.property.Set", Admin, Yes, Maybe, Io, |c| Ok(R::PropertySet { name: arg(c), value: payload(c) })),
        m("admin.property.Reset", Admin, Yes, No, Io, |c| Ok(R::PropertyReset { name: arg(c) })),
        m("admin.vm.feature.List", Any, No, No, Memory, |c| Ok(R::FeatureList { vm: vm(c) })),
        m("admin.vm.feature.Get", Any, Yes, No, Memory, |c| feature_get(c, FeatureLookup::Own)),
        m("admin.vm.feature.CheckWithTemplate", Any, Yes, No, Memory, |c| feature_get(c, FeatureLookup::Template)),
        m("admin.vm.feature.CheckWithNetvm", Any, Yes, No, Memory, |c| feature_get(c, FeatureLookup::Netvm)),
        m("admin.vm.feature.CheckWithAdminVM", Any, Yes, No, Memory, |c| feature_get(c, FeatureLookup::AdminVm)),
        m("admin.vm.feature.CheckWithTemplateAndAdminVM", Any, Yes, No, Memory, |c| {
            feature_get(c, FeatureLookup::TemplateAndAdminVm)
        }),
        m("admin.vm.feature.Set", Any, Yes, Maybe, Io, |c| {
            Ok(R::FeatureSet { vm: vm(c), name: arg(c), value: payload(c) })
        }),
        m("admin.vm.feature.Remove", Any, Yes, No, Io, |c| Ok(R::FeatureRemove { vm: vm(c), name: arg(c) })),
        m("admin.vm.tag.List", Any, No, No, Memory, |c| Ok(R::TagList { vm: vm(c) })),
        m("admin.vm.tag.Get", Any, Yes, No, Memory, |c| Ok(R::TagGet { vm: vm(c), tag: arg(c) })),
        m("admin.vm.tag.Set", Any, Yes, No, Io, |c| Ok(R::TagSet { vm: vm(c), tag: arg(c) })),
        m("admin.vm.tag.Remove", Any, Yes, No, Io, |c| Ok(R::TagRemove { vm: vm(c), tag: arg(c) })),
        m("admin.label.List", Admin, No, No, Memory, |_| Ok(R::LabelList)),
        m("admin.label.Get", Admin, Yes, No, Memory, |c| Ok(R::LabelGet { name: arg(c) })),
        m("admin.label.Index", Admin, Yes, No, Memory, |c| Ok(R::LabelIndex { name: arg(c) })),
        m("admin.label.Create", Admin, Yes, Yes, Io, |c| Ok(R::LabelCreate { name: arg(c), color: payload(c) })),
        m("admin.label.Remove", Admin, Yes, No, Io, |c| Ok(R::LabelRemove { name: arg(c) })),
        m("admin.vm.notes.Get", NotAdmin, No, No, Memory, |c| Ok(R::NotesGet { vm: vm(c) })),
        m("admin.vm.notes.Set", NotAdmin, No, Yes, Io, |c| Ok(R::NotesSet { vm: vm(c), text: payload(c) })),
        m("admin.vm.firewall.Get", NotAdmin, No, No, Memory, |c| Ok(R::FirewallGet { vm: vm(c) })),
        m("admin.vm.firewall.Set", NotAdmin, No, Yes, Io, |c| Ok(R::FirewallSet { vm: vm(c), rules: payload(c) })),
        m("admin.vm.firewall.Reload", NotAdmin, No, No, Memory, |c| Ok(R::FirewallReload { vm: vm(c) })),
        m("admin.deviceclass.List", Admin, No, No, Memory, |_| Ok(R::DeviceClassList)),
        m("admin.vm.device.denied.List", Any, No, No, Memory, |c| Ok(R::DeniedList { vm: vm(c) })),
        m("admin.vm.device.denied.Add", Any, No, Maybe, Io, |c| Ok(R::DeniedAdd { vm: vm(c), interfaces: payload(c) })),
        m("admin.vm.device.denied.Remove", Any, No, Maybe, Io, |c| {
            Ok(R::DeniedRemove { vm: vm(c), interfaces: payload(c) })
        }),
        m("admin.pool.List", Admin, No, No, Memory, |_| Ok(R::PoolList)),
        m("admin.pool.ListDrivers", Admin, No, No, Memory, |_| Ok(R::PoolListDrivers)),
        m("admin.pool.Info", Admin, Yes, No, Io, |c| Ok(R::PoolInfo { pool: arg(c) })),
        m("admin.pool.UsageDetails", Admin, Yes, No, Io, |c| Ok(R::PoolUsageDetails { pool: arg(c) })),
        m("admin.pool.Add", Admin, Yes, Yes, Io, |c| Ok(R::PoolAdd { driver: arg(c), config: payload(c) })),
        m("admin.pool.Remove", Admin, Yes, No, Io, |c| Ok(R::PoolRemove { pool: arg(c) })),
        m("admin.pool.Set.revisions_to_keep", Admin, Yes, Yes, Io, |c| {
            Ok(R::PoolSetRevisionsToKeep { pool: arg(c), value: payload(c) })
        }),
        m("admin.pool.Set.ephemeral_volatile", Admin, Yes, Yes, Io, |c| {
            Ok(R::PoolSetEphemeralVolatile { pool: arg(c), value: payload(c) })
        }),
        m("admin.pool.volume.List", Admin, Yes, No, Memory, |c| Ok(R::PoolVolumeList { pool: arg(c) })),
        m("admin.vm.volume.List", Any, No, No, Memory, |c| Ok(R::VolumeList { vm: vm(c) })),
        m("admin.vm.volume.Info", Any, Yes, No, Io, |c| Ok(R::VolumeInfo { vm: vm(c), volume: arg(c) })),
        m("admin.vm.volume.ListSnapshots", Any, Yes, No, Io, |c| {
            Ok(R::VolumeListSnapshots { vm: vm(c), volume: arg(c) })
        }),
        m("admin.vm.volume.Resize", Any, Yes, Yes, Io, |c| {
            Ok(R::VolumeResize { vm: vm(c), volume: arg(c), size: payload(c) })
        }),
        m("admin.vm.volume.Revert", Any, Yes, Yes, Io, |c| {
            Ok(R::VolumeRevert { vm: vm(c), volume: arg(c), revision: payload(c) })
        }),
        m("admin.vm.volume.Clear", Any, Yes, No, Io, |c| Ok(R::VolumeClear { vm: vm(c), volume: arg(c) })),
        m("admin.vm.volume.Set.revisions_to_keep", Any, Yes, Yes, Io, |c| {
            Ok(R::VolumeSetRevisionsToKeep { vm: vm(c), volume: arg(c), value: payload(c) })
        }),
        m("admin.vm.volume.Set.rw", Any, Yes, Yes, Io, |c| {
            Ok(R::VolumeSetRw { vm: vm(c), volume: arg(c), value: payload(c) })
        }),
        m("admin.vm.volume.Set.ephemeral", Any, Yes, Yes, Io, |c| {
            Ok(R::VolumeSetEphemeral { vm: vm(c), volume: arg(c), value: payload(c) })
        }),
        m("admin.vm.volume.CloneFrom", Any, Yes, No, Memory, |c| Ok(R::VolumeCloneFrom { vm: vm(c), volume: arg(c) })),
        m("admin.vm.volume.CloneTo", Any, Yes, Yes, Io, |c| {
            Ok(R::VolumeCloneTo { vm: vm(c), volume: arg(c), token: payload(c) })
        }),
        m("admin.Events", Any, No, No, Memory, |c| Ok(R::Events { vm: vm(c) })),
        m("admin.vm.Stats", Any, No, No, Memory, |c| Ok(R::Stats { vm: vm(c) })),
    ];
    for class in CREATABLE {
        t.push(m(&format!("admin.vm.Create.{}", class.name()), Admin, Maybe, Yes, Io, |c| {
            Ok(R::VmCreate { spec: parse_create(c, false)?, pools: CreateIn::DefaultPools })
        }));
        t.push(m(&format!("admin.vm.CreateInPool.{}", class.name()), Admin, Maybe, Yes, Io, |c| {
            Ok(R::VmCreate { spec: parse_create(c, true)?, pools: CreateIn::GivenPools })
        }));
    }
    for class in DEVICE_CLASSES {
        for (listing, arg) in [
            (DeviceListing::Available, Maybe),
            (DeviceListing::Assigned, Maybe),
            (DeviceListing::Attached, Maybe),
            (DeviceListing::List, No),
        ] {
            t.push(m(&format!("admin.vm.device.{class}.{}", listing.name()), Any, arg, No, Memory, device_list));
        }
    }
    t
}

pub fn internal_methods() -> Vec<Method> {
    use Dest::{Admin, Any};
    use Request as R;
    use Want::{Maybe, No, Yes};
    vec![
        m("internal.GetSystemInfo", Admin, No, No, Cost::Memory, |_| Ok(R::SystemInfo)),
        m("internal.vm.volume.ImportBegin", Any, Yes, Maybe, Cost::Io, import_begin),
        m("internal.vm.volume.ImportEnd", Any, Yes, Yes, Cost::Io, import_end),
        m("corral.user.Add", Admin, Yes, Yes, Cost::Io, user_add),
        m("corral.user.Remove", Admin, Yes, No, Cost::Io, |c| Ok(R::UserRemove { name: arg(c) })),
        m("corral.user.ServiceKey", Admin, Yes, No, Cost::Io, |c| Ok(R::UserServiceKey { name: arg(c) })),
    ]
}

fn feature_get(c: &Ctx<'_>, lookup: FeatureLookup) -> Result<Request> {
    Ok(Request::FeatureGet { vm: vm(c), name: arg(c), lookup })
}

/// The device class and listing are the method name's last two parts (`admin.vm.device.pci.Attached`).
fn device_list(c: &Ctx<'_>) -> Result<Request> {
    let mut parts = c.method.rsplit('.');
    let listing = match parts.next() {
        Some("Available") => DeviceListing::Available,
        Some("Assigned") => DeviceListing::Assigned,
        Some("Attached") => DeviceListing::Attached,
        _ => DeviceListing::List,
    };
    let class = parts.next().and_then(|k| DEVICE_CLASSES.into_iter().find(|known| *known == k));
    let class = class.ok_or_else(|| Error::protocol("Unknown device class"))?;
    Ok(Request::DeviceList { vm: vm(c), class, listing, arg: arg(c) })
}

/// qrexec asks with payload `uuid` to get `uuid:<uuid>` back; `preload` has nothing to refill until
/// preloaded disposables exist.
fn vm_create_disposable(c: &Ctx<'_>) -> Result<Request> {
    let uuid = match c.payload {
        b"" => false,
        b"uuid" => true,
        _ => return Err(Error::protocol("Invalid payload")),
    };
    let preload = match c.arg {
        "" => false,
        "preload" => true,
        _ => return Err(Error::denied("Invalid argument")),
    };
    Ok(Request::VmCreateDisposable { vm: vm(c), uuid, preload })
}

/// `force`, `wait`, or both joined by `+` in either order. As upstream, every `+`-separated word must be
/// one of the two, and a repeated word is accepted.
fn vm_shutdown(c: &Ctx<'_>) -> Result<Request> {
    let words: Vec<&str> = if c.arg.is_empty() { Vec::new() } else { c.arg.split('+').collect() };
    if !words.iter().all(|w| matches!(*w, "force" | "wait")) {
        return Err(Error::protocol("Argument must match: force, wait"));
    }
    Ok(Request::VmShutdown { vm: vm(c), force: words.contains(&"force"), wait: words.contains(&"wait") })
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
        creator: c.caller.source_qube().to_string(),
        uuid: uuid_v4(),
    })
}

fn uuid_v4() -> uuid::Uuid {
    uuid::Uuid::new_v4()
}

/// Local users of the HTTP door, managed by root through the internal socket (`corral user add`).
fn user_add(c: &Ctx<'_>) -> Result<Request> {
    let password = std::str::from_utf8(c.payload).map_err(|_| Error::protocol("Password must be UTF-8"))?;
    Ok(Request::UserAdd { name: arg(c), password: password.trim_end_matches(['\r', '\n']).to_string() })
}

fn import_begin(c: &Ctx<'_>) -> Result<Request> {
    let size = if c.payload.is_empty() {
        None
    } else {
        // Not stripped, as qubesd: the import service sends the size line without its newline.
        let size = corral_core::text::validate_number(c.payload, "size of new data", false)?;
        Some(u64::try_from(size).unwrap_or_default())
    };
    Ok(Request::VolumeImportBegin { vm: vm(c), volume: arg(c), size })
}

fn import_end(c: &Ctx<'_>) -> Result<Request> {
    // As qubesd: anything but `ok` is a failure (`fail\n<msg>`), whose message follows the first newline.
    let success = c.payload == b"ok";
    let message = match c.payload.splitn(2, |b| *b == b'\n').nth(1) {
        Some(m) if !success => String::from_utf8_lossy(m).into_owned(),
        _ => String::new(),
    };
    Ok(Request::VolumeImportEnd { vm: vm(c), volume: arg(c), success, message })
}
