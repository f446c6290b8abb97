//! The typed request set and the one entry point every request takes: [`Service::handle`] checks every
//! operation a request amounts to before anything is looked up, then runs it and answers with a typed
//! [`Response`] that the door renders in its own wire format.
//!
//! A request names qubes, pools and volumes as the caller gave them (a qube by name or `uuid:`); nothing is
//! resolved before the check, so a refusal is the same whether the thing exists or not.
//!
//! Values a door receives as Qubes wire text (property values, feature values, firewall rules, sizes) stay
//! that text here: their type is the property's or the field's, which only the model knows, and the same
//! sanitizers as upstream's read them.

use corral_core::error::Missing;
use std::sync::Arc;

use corral_core::domain::Class;
use corral_core::hv::{DhcpLease, KeycodeSet, NetworkDef, NetworkDetails};
use corral_core::plan::CreateSpec;
use corral_core::props::{self, PropType};
use corral_core::volume::Driver;
use corral_core::{firewall, label, Error, ErrorKind, Operation, Principal, Result};

use crate::audit::Happening;
use crate::{FeatureLookup, PropView, Service, VmSummary, VolumeInfo};
use uuid::Uuid;

/// Where `admin.vm.Create*` puts the new qube's volumes: the default pools, or those the request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateIn {
    DefaultPools,
    GivenPools,
}

/// Which device listing of `admin.vm.device.<class>.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceListing {
    Available,
    Assigned,
    Attached,
    List,
}

impl DeviceListing {
    pub fn name(self) -> &'static str {
        match self {
            DeviceListing::Available => "Available",
            DeviceListing::Assigned => "Assigned",
            DeviceListing::Attached => "Attached",
            DeviceListing::List => "List",
        }
    }
}

/// The device classes a qube's devices are listed by.
pub const DEVICE_CLASSES: [&str; 2] = ["pci", "block"];

/// A qube's settings as typed values: everything a door's create or change request sets (`None` leaves one as it
/// is; on a new qube, its default). Each setting but the notes is one property.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmSettings {
    /// MiB the qube starts with.
    pub memory_mib: Option<u64>,
    /// MiB the qube may balloon up to.
    pub maxmem_mib: Option<u64>,
    pub vcpus: Option<u64>,
    /// Whether the qube starts with the host.
    pub autostart: Option<bool>,
    pub kernel: Option<String>,
    pub kernelopts: Option<String>,
    pub notes: Option<String>,
}

impl VmSettings {
    /// The properties these settings set, each with its value in the property's own wire form (which the
    /// property's sanitizer reads), in the order they are checked and applied.
    pub(crate) fn properties(&self) -> Vec<(&'static str, String)> {
        let number = |n: Option<u64>| n.map(|n| n.to_string());
        [
            ("memory", number(self.memory_mib)),
            ("maxmem", number(self.maxmem_mib)),
            ("vcpus", number(self.vcpus)),
            ("autostart", self.autostart.map(|on| corral_core::text::format_bool(on).to_string())),
            ("kernel", self.kernel.clone()),
            ("kernelopts", self.kernelopts.clone()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect()
    }

    /// The names of the properties these settings set, in the order of [`VmSettings::properties`].
    pub fn property_names(&self) -> impl Iterator<Item = &'static str> {
        self.properties().into_iter().map(|(name, _)| name)
    }
}

/// A qube a door makes whole in one request: an AppVM of `template` (a TemplateVM), or a StandaloneVM without
/// one, with its first settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVm {
    pub name: String,
    pub label: String,
    pub template: Option<TemplateRef>,
    pub uuid: Uuid,
    pub settings: VmSettings,
}

impl NewVm {
    /// The class the new qube gets.
    pub fn class(&self) -> Class {
        if self.template.is_some() {
            Class::AppVM
        } else {
            Class::StandaloneVM
        }
    }
}

/// A template named by a door: by uuid, by name, or either (the first TemplateVM that matches one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateRef {
    pub uuid: Option<uuid::Uuid>,
    pub name: Option<String>,
}

impl TemplateRef {
    /// How the operation names it: `uuid:…` when a uuid is given, else the name.
    fn token(&self) -> String {
        match (&self.uuid, &self.name) {
            (Some(uuid), _) => format!("uuid:{uuid}"),
            (None, Some(name)) => name.clone(),
            (None, None) => String::new(),
        }
    }
}

/// Everything a door can ask of the service. Each variant is one operation in the Admin API's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    VmClassList,
    /// Every qube the caller may see (`vm` = `dom0`), or the one named.
    VmList {
        vm: String,
    },
    VmCurrentState {
        vm: String,
    },
    VmStart {
        vm: String,
    },
    VmShutdown {
        vm: String,
        force: bool,
        wait: bool,
    },
    VmKill {
        vm: String,
    },
    VmPause {
        vm: String,
    },
    VmUnpause {
        vm: String,
    },
    VmSuspend {
        vm: String,
    },
    VmResume {
        vm: String,
    },
    VmConsole {
        vm: String,
    },
    VmRemove {
        vm: String,
    },
    /// A new qube of `spec.class`, based on `spec.template` where the class has one.
    VmCreate {
        spec: CreateSpec,
        pools: CreateIn,
    },
    /// A disposable from `vm` (a disposable template, or the caller's default); `uuid` asks for the new
    /// qube's `uuid:` token instead of its name. `preload` refills preloaded disposables, of which there are none.
    VmCreateDisposable {
        vm: String,
        uuid: bool,
        preload: bool,
    },

    VmPropertyList {
        vm: String,
    },
    VmPropertyGet {
        vm: String,
        name: String,
    },
    VmPropertyGetAll {
        vm: String,
    },
    VmPropertyGetDefault {
        vm: String,
        name: String,
    },
    VmPropertyHelp {
        vm: String,
        name: String,
    },
    VmPropertySet {
        vm: String,
        name: String,
        value: Vec<u8>,
    },
    VmPropertyReset {
        vm: String,
        name: String,
    },
    PropertyList,
    PropertyGet {
        name: String,
    },
    PropertyGetAll,
    PropertyGetDefault {
        name: String,
    },
    PropertyHelp {
        name: String,
    },
    PropertySet {
        name: String,
        value: Vec<u8>,
    },
    PropertyReset {
        name: String,
    },

    FeatureList {
        vm: String,
    },
    FeatureGet {
        vm: String,
        name: String,
        lookup: FeatureLookup,
    },
    FeatureSet {
        vm: String,
        name: String,
        value: Vec<u8>,
    },
    FeatureRemove {
        vm: String,
        name: String,
    },
    TagList {
        vm: String,
    },
    TagGet {
        vm: String,
        tag: String,
    },
    TagSet {
        vm: String,
        tag: String,
    },
    TagRemove {
        vm: String,
        tag: String,
    },
    LabelList,
    LabelGet {
        name: String,
    },
    LabelIndex {
        name: String,
    },
    LabelCreate {
        name: String,
        color: Vec<u8>,
    },
    LabelRemove {
        name: String,
    },
    NotesGet {
        vm: String,
    },
    NotesSet {
        vm: String,
        text: Vec<u8>,
    },
    FirewallGet {
        vm: String,
    },
    FirewallSet {
        vm: String,
        rules: Vec<u8>,
    },
    FirewallReload {
        vm: String,
    },

    DeviceClassList,
    DeviceList {
        vm: String,
        class: &'static str,
        listing: DeviceListing,
        arg: String,
    },
    DeniedList {
        vm: String,
    },
    DeniedAdd {
        vm: String,
        interfaces: Vec<u8>,
    },
    DeniedRemove {
        vm: String,
        interfaces: Vec<u8>,
    },

    PoolList,
    PoolListDrivers,
    PoolInfo {
        pool: String,
    },
    PoolUsageDetails {
        pool: String,
    },
    PoolAdd {
        driver: String,
        config: Vec<u8>,
    },
    PoolRemove {
        pool: String,
    },
    PoolSetRevisionsToKeep {
        pool: String,
        value: Vec<u8>,
    },
    PoolSetEphemeralVolatile {
        pool: String,
        value: Vec<u8>,
    },
    PoolVolumeList {
        pool: String,
    },
    VolumeList {
        vm: String,
    },
    VolumeInfo {
        vm: String,
        volume: String,
    },
    VolumeListSnapshots {
        vm: String,
        volume: String,
    },
    VolumeResize {
        vm: String,
        volume: String,
        size: Vec<u8>,
    },
    VolumeRevert {
        vm: String,
        volume: String,
        revision: Vec<u8>,
    },
    VolumeClear {
        vm: String,
        volume: String,
    },
    VolumeSetRevisionsToKeep {
        vm: String,
        volume: String,
        value: Vec<u8>,
    },
    VolumeSetRw {
        vm: String,
        volume: String,
        value: Vec<u8>,
    },
    VolumeSetEphemeral {
        vm: String,
        volume: String,
        value: Vec<u8>,
    },
    VolumeCloneFrom {
        vm: String,
        volume: String,
    },
    VolumeCloneTo {
        vm: String,
        volume: String,
        token: Vec<u8>,
    },
    /// Begins writing new content into a volume (`admin.vm.volume.Import`, or `ImportWithSize` with `size`):
    /// the door's import service writes the data to the returned path and ends it with `VolumeImportEnd`.
    VolumeImportBegin {
        vm: String,
        volume: String,
        size: Option<u64>,
    },
    VolumeImportEnd {
        vm: String,
        volume: String,
        success: bool,
        message: String,
    },

    /// A stream of the events of every qube the caller may see (`vm` = `dom0`) or of one.
    Events {
        vm: String,
    },
    /// Periodic resource samples of running qubes (`vm` = `dom0`: all of them).
    Stats {
        vm: String,
    },

    SystemInfo,
    UserAdd {
        name: String,
        password: String,
    },
    UserRemove {
        name: String,
    },
    UserServiceKey {
        name: String,
    },

    // --- both HTTP doors ---
    /// A new qube with its first settings, as one transaction; started after the commit when `start`. What would
    /// refuse the start for certain refuses the creation before anything is made; a start that fails later
    /// leaves the qube created and halted ([`Response::NotStarted`]).
    VmCreateWith {
        new: NewVm,
        start: bool,
    },
    /// Several settings of a qube, all or nothing.
    VmUpdate {
        vm: String,
        settings: VmSettings,
    },
    // --- RHEV door (branch `rhev`) ---
    /// Removes a halted qube; with `force` a running one is killed first.
    VmRemoveForced {
        vm: String,
        force: bool,
    },
    /// Starts a qube with settings for this run only, paused at once with `pause`.
    VmStartWith {
        vm: String,
        once: crate::RunOnce,
        pause: bool,
    },
    /// Shuts a running qube down; one that cannot act on it (paused, asleep, saved) is killed.
    VmShutdownOrKill {
        vm: String,
    },
    /// Saves a running qube's memory to disk and stops it.
    VmSave {
        vm: String,
    },
    /// A copy of `vm` named `name`, as `qvm-clone` makes it.
    VmClone {
        vm: String,
        name: String,
        uuid: uuid::Uuid,
    },
    /// A TemplateVM made from `vm`, with its first settings.
    VmMakeTemplate {
        vm: String,
        name: String,
        uuid: uuid::Uuid,
        settings: VmSettings,
    },
    /// A password for the graphical console of a running qube (`password` or a random one) for `valid_for`.
    VmConsoleTicket {
        vm: String,
        password: Option<String>,
        valid_for: std::time::Duration,
    },
    /// Memory and CPU use of a qube: CPU in percent of its vcpus since the previous request (or over a short
    /// window when there was none).
    VmUsage {
        vm: String,
    },
    /// A running qube's counters of its disk for `volume`, with their rates per second lately.
    VmDiskRates {
        vm: String,
        volume: String,
    },
    /// A running qube's counters of its network card, with their rates per second lately.
    VmNicRates {
        vm: String,
    },
    /// Adds a further disk; answers its volume's name.
    VolumeAdd {
        vm: String,
        disk: corral_core::volume::NewDisk,
    },
    /// Grows a volume, makes it the boot disk or not, renames a further disk: one change.
    VolumeUpdate {
        vm: String,
        volume: String,
        size: Option<u64>,
        bootable: Option<bool>,
        alias: Option<String>,
    },
    /// Removes a further disk with its data.
    VolumeRemove {
        vm: String,
        volume: String,
    },
    /// A volume's revisions, oldest first, each with the description it was given.
    VolumeRevisions {
        vm: String,
        volume: String,
    },
    /// Saves a volume's current content as a new revision with an optional description.
    VolumeSnapshot {
        vm: String,
        volume: String,
        description: Option<String>,
    },
    /// Connects a qube's network card: to `network` (the default one when `None`).
    NicAdd {
        vm: String,
        network: Option<String>,
        mac: Option<String>,
        name: Option<String>,
    },
    NicUpdate {
        vm: String,
        name: Option<String>,
        mac: Option<String>,
    },
    NicRemove {
        vm: String,
    },
    /// The ISO image (empty: none) a qube's cdrom holds from its next start on; with `current`, a running qube's
    /// drive changes media at once too.
    CdromSet {
        vm: String,
        file: String,
        current: bool,
    },
    /// Removes `tag` from every qube that has it.
    TagRemoveEverywhere {
        tag: String,
    },
    /// Renames a tag on every qube that has it.
    TagRename {
        from: String,
        to: String,
    },
    /// The boot media files a pool offers.
    PoolFiles {
        pool: String,
    },
    /// A pool's size and usage in bytes, where its storage tells them.
    PoolUsage {
        pool: String,
    },
    /// The bytes a volume takes on disk (`admin.vm.volume.Info`'s `usage`).
    VolumeUsage {
        vm: String,
        volume: String,
    },
    /// Whether there is a hypervisor connection, and its version.
    HypervisorInfo,
    /// The caller opened a session (`open`) or ended one: noted in the audit log.
    Session {
        open: bool,
    },
    // --- virthttp door (branch `virthttp`) ---
    /// A start that leaves the qube paused before its guest runs (libvirt's start with `paused`).
    VmStartPaused {
        vm: String,
    },
    /// A running qube shut down, waited for, and started again.
    VmReboot {
        vm: String,
    },
    /// A running qube powered off at once and started again (libvirt's reset).
    VmReset {
        vm: String,
    },
    /// Presses `keys` together on a running qube's keyboard for `hold_ms` (`virsh send-key`).
    VmSendKeys {
        vm: String,
        codeset: KeycodeSet,
        hold_ms: u32,
        keys: Vec<u32>,
    },
    /// A qube's domain XML with `virDomainXMLFlags`.
    VmDomainXml {
        vm: String,
        flags: u32,
    },
    /// The CPU scheduler a qube's domain runs with.
    VmSchedulerType {
        vm: String,
    },
    /// The hypervisor's virtual networks.
    NetworkList,
    /// A network's XML with `virNetworkXMLFlags`.
    NetworkXml {
        network: Uuid,
        flags: u32,
    },
    /// The DHCP leases of a network, only those of `mac` (`aa:bb:cc:dd:ee:ff`) when given.
    NetworkDhcpLeases {
        network: Uuid,
        mac: Option<String>,
    },
    /// A transient network from libvirt network XML, started.
    NetworkCreate {
        xml: String,
    },
    /// A persistent isolated network, started and autostarted.
    NetworkDefine {
        def: NetworkDef,
    },
    /// A network stopped and undefined: gone.
    NetworkDestroy {
        network: Uuid,
    },
    /// A persistent network undefined, a transient one stopped.
    NetworkRemove {
        network: Uuid,
    },
    NetworkSetAutostart {
        network: Uuid,
        autostart: bool,
    },
}

/// A service's answer, rendered by the door that asked.
#[derive(Debug)]
pub enum Response {
    /// Done; nothing to say.
    Done,
    /// One value (a path, a feature's value, a label's colour, a clone token, a qube's name).
    Text(String),
    /// Names, in the order to show them.
    Names(Vec<String>),
    /// Whether something holds (a tag is set).
    Flag(bool),
    Number(u64),
    /// Qubes with their class and power state. `generation` is the model generation of a complete list the
    /// door may cache by; filtered lists have none.
    Vms {
        list: Arc<Vec<VmSummary>>,
        generation: Option<u64>,
    },
    Property(PropView),
    Properties(Vec<(&'static str, PropView)>),
    /// A property's default as its type and value, when it has one.
    PropertyDefault(Option<(PropType, String)>),
    /// A `key=value` description (pool info, usage), in order.
    Fields(Vec<(String, String)>),
    /// Storage drivers with the parameters a pool of each takes.
    Drivers(Vec<(String, Vec<String>)>),
    Volume(VolumeInfo),
    /// Firewall rules in their wire form with expired ones dropped.
    Firewall(Vec<firewall::Rule>),
    /// Denied device interface codes.
    Interfaces(Vec<String>),
    /// Where the import service writes the new content, and how much.
    ImportTarget {
        size: u64,
        path: std::path::PathBuf,
    },
    /// The host's description for dom0 tools, already in its JSON form (`internal.GetSystemInfo`).
    SystemInfo(Arc<Vec<u8>>),
    /// An accepted event subscription.
    Events(crate::events::Subscription),
    /// An accepted stats stream: the door samples with `Service::stats_sample` at the returned interval.
    Stats {
        vm: String,
    },

    // --- RHEV door (branch `rhev`) ---
    /// A qube's memory and CPU use.
    Usage {
        info: corral_core::hv::DomainInfo,
        cpu_percent: f64,
    },
    /// A disk's counters and rates; `None` while its qube does not run.
    DiskRates(Option<crate::hypervisor::DiskRates>),
    /// A network card's counters and rates; `None` while its qube does not run or is not connected.
    NicRates(Option<crate::hypervisor::NicRates>),
    Revision(corral_storage::Revision),
    Revisions(Vec<(corral_storage::Revision, Option<String>)>),
    /// A pool's size and usage in bytes, when known.
    PoolUsage(Option<(u64, u64)>),
    /// Whether qubes can run, and the hypervisor library's version (`major * 1_000_000 + minor * 1_000 +
    /// release`) when known.
    Hypervisor {
        connected: bool,
        version: Option<u32>,
    },
    // --- virthttp door (branch `virthttp`) ---
    /// A qube's CPU scheduler and the number of its parameters.
    Scheduler {
        kind: String,
        params: i32,
    },
    Networks(Vec<NetworkDetails>),
    Network(NetworkDetails),
    Leases(Vec<DhcpLease>),
    /// The qube was created and stays, halted: its start, the step after the commit, failed for this reason.
    NotStarted(Error),
}

impl Request {
    /// The operations the caller must be allowed, in the order they are checked: one for most requests; a
    /// create with settings is also each setting.
    pub fn operations(&self) -> Vec<Operation<'_>> {
        use Operation as O;
        use Request::*;
        let settings = |vm: &str, settings: &VmSettings| -> Vec<Operation<'static>> {
            let mut ops: Vec<Operation<'static>> =
                settings.property_names().map(|name| O::new("admin.vm.property.Set", name, vm.to_string())).collect();
            if settings.notes.is_some() {
                ops.push(O::new("admin.vm.notes.Set", "", vm.to_string()));
            }
            ops
        };
        let mut ops = vec![self.operation()];
        match self {
            VmCreateWith { new, start } => {
                ops.extend(settings(&new.name, &new.settings));
                if *start {
                    ops.push(O::new("admin.vm.Start", "", new.name.as_str()));
                }
            }
            VmMakeTemplate { name, settings: s, .. } => ops.extend(settings(name, s)),
            VmUpdate { vm, settings: s } if *s != VmSettings::default() => ops = settings(vm, s),
            VmRemoveForced { vm, force: true } => ops.push(O::new("admin.vm.Kill", "", vm.as_str())),
            VmStartWith { vm, pause: true, .. } | VmStartPaused { vm } => {
                ops.push(O::new("admin.vm.Pause", "", vm.as_str()))
            }
            VmShutdownOrKill { vm } => ops.push(O::new("admin.vm.Kill", "", vm.as_str())),
            VmReboot { vm } | VmReset { vm } => ops.push(O::new("admin.vm.Start", "", vm.as_str())),
            VolumeSnapshot { vm, volume, .. } => {
                for method in ["admin.vm.volume.CloneFrom", "admin.vm.volume.CloneTo"] {
                    ops.push(O::new(method, volume.as_str(), vm.as_str()));
                }
            }
            _ => {}
        }
        ops
    }

    /// The request in the Admin API's vocabulary: method, argument, target.
    pub fn operation(&self) -> Operation<'_> {
        use Operation as O;
        use Request::*;
        match self {
            VmClassList => O::global("admin.vmclass.List", ""),
            VmList { vm } => O::new("admin.vm.List", "", vm.as_str()),
            VmCurrentState { vm } => O::new("admin.vm.CurrentState", "", vm.as_str()),
            VmStart { vm } => O::new("admin.vm.Start", "", vm.as_str()),
            VmShutdown { vm, force, wait } => {
                let arg = match (force, wait) {
                    (false, false) => "",
                    (true, false) => "force",
                    (false, true) => "wait",
                    (true, true) => "force+wait",
                };
                O::new("admin.vm.Shutdown", arg, vm.as_str())
            }
            VmKill { vm } => O::new("admin.vm.Kill", "", vm.as_str()),
            VmPause { vm } => O::new("admin.vm.Pause", "", vm.as_str()),
            VmUnpause { vm } => O::new("admin.vm.Unpause", "", vm.as_str()),
            VmSuspend { vm } => O::new("admin.vm.Suspend", "", vm.as_str()),
            VmResume { vm } => O::new("admin.vm.Resume", "", vm.as_str()),
            VmConsole { vm } => O::new("admin.vm.Console", "", vm.as_str()),
            VmRemove { vm } => O::new("admin.vm.Remove", "", vm.as_str()),
            VmCreate { spec, pools } => O::global(create_method(spec, *pools), spec.template.as_deref().unwrap_or("")),
            VmCreateDisposable { vm, preload, .. } => {
                O::new("admin.vm.CreateDisposable", if *preload { "preload" } else { "" }, vm.as_str())
            }
            VmPropertyList { vm } => O::new("admin.vm.property.List", "", vm.as_str()),
            VmPropertyGet { vm, name } => O::new("admin.vm.property.Get", name.as_str(), vm.as_str()),
            VmPropertyGetAll { vm } => O::new("admin.vm.property.GetAll", "", vm.as_str()),
            VmPropertyGetDefault { vm, name } => O::new("admin.vm.property.GetDefault", name.as_str(), vm.as_str()),
            VmPropertyHelp { vm, name } => O::new("admin.vm.property.Help", name.as_str(), vm.as_str()),
            VmPropertySet { vm, name, .. } => O::new("admin.vm.property.Set", name.as_str(), vm.as_str()),
            VmPropertyReset { vm, name } => O::new("admin.vm.property.Reset", name.as_str(), vm.as_str()),
            PropertyList => O::global("admin.property.List", ""),
            PropertyGet { name } => O::global("admin.property.Get", name.as_str()),
            PropertyGetAll => O::global("admin.property.GetAll", ""),
            PropertyGetDefault { name } => O::global("admin.property.GetDefault", name.as_str()),
            PropertyHelp { name } => O::global("admin.property.Help", name.as_str()),
            PropertySet { name, .. } => O::global("admin.property.Set", name.as_str()),
            PropertyReset { name } => O::global("admin.property.Reset", name.as_str()),
            FeatureList { vm } => O::new("admin.vm.feature.List", "", vm.as_str()),
            FeatureGet { vm, name, lookup } => O::new(feature_method(*lookup), name.as_str(), vm.as_str()),
            FeatureSet { vm, name, .. } => O::new("admin.vm.feature.Set", name.as_str(), vm.as_str()),
            FeatureRemove { vm, name } => O::new("admin.vm.feature.Remove", name.as_str(), vm.as_str()),
            TagList { vm } => O::new("admin.vm.tag.List", "", vm.as_str()),
            TagGet { vm, tag } => O::new("admin.vm.tag.Get", tag.as_str(), vm.as_str()),
            TagSet { vm, tag } => O::new("admin.vm.tag.Set", tag.as_str(), vm.as_str()),
            TagRemove { vm, tag } => O::new("admin.vm.tag.Remove", tag.as_str(), vm.as_str()),
            LabelList => O::global("admin.label.List", ""),
            LabelGet { name } => O::global("admin.label.Get", name.as_str()),
            LabelIndex { name } => O::global("admin.label.Index", name.as_str()),
            LabelCreate { name, .. } => O::global("admin.label.Create", name.as_str()),
            LabelRemove { name } => O::global("admin.label.Remove", name.as_str()),
            NotesGet { vm } => O::new("admin.vm.notes.Get", "", vm.as_str()),
            NotesSet { vm, .. } => O::new("admin.vm.notes.Set", "", vm.as_str()),
            FirewallGet { vm } => O::new("admin.vm.firewall.Get", "", vm.as_str()),
            FirewallSet { vm, .. } => O::new("admin.vm.firewall.Set", "", vm.as_str()),
            FirewallReload { vm } => O::new("admin.vm.firewall.Reload", "", vm.as_str()),
            DeviceClassList => O::global("admin.deviceclass.List", ""),
            DeviceList { vm, class, listing, arg } => {
                O::new(format!("admin.vm.device.{class}.{}", listing.name()), arg.as_str(), vm.as_str())
            }
            DeniedList { vm } => O::new("admin.vm.device.denied.List", "", vm.as_str()),
            DeniedAdd { vm, .. } => O::new("admin.vm.device.denied.Add", "", vm.as_str()),
            DeniedRemove { vm, .. } => O::new("admin.vm.device.denied.Remove", "", vm.as_str()),
            PoolList => O::global("admin.pool.List", ""),
            PoolListDrivers => O::global("admin.pool.ListDrivers", ""),
            PoolInfo { pool } => O::global("admin.pool.Info", pool.as_str()),
            PoolUsageDetails { pool } => O::global("admin.pool.UsageDetails", pool.as_str()),
            PoolAdd { driver, .. } => O::global("admin.pool.Add", driver.as_str()),
            PoolRemove { pool } => O::global("admin.pool.Remove", pool.as_str()),
            PoolSetRevisionsToKeep { pool, .. } => O::global("admin.pool.Set.revisions_to_keep", pool.as_str()),
            PoolSetEphemeralVolatile { pool, .. } => O::global("admin.pool.Set.ephemeral_volatile", pool.as_str()),
            PoolVolumeList { pool } => O::global("admin.pool.volume.List", pool.as_str()),
            VolumeList { vm } => O::new("admin.vm.volume.List", "", vm.as_str()),
            VolumeInfo { vm, volume } => O::new("admin.vm.volume.Info", volume.as_str(), vm.as_str()),
            VolumeListSnapshots { vm, volume } => O::new("admin.vm.volume.ListSnapshots", volume.as_str(), vm.as_str()),
            VolumeResize { vm, volume, .. } => O::new("admin.vm.volume.Resize", volume.as_str(), vm.as_str()),
            VolumeRevert { vm, volume, .. } => O::new("admin.vm.volume.Revert", volume.as_str(), vm.as_str()),
            VolumeClear { vm, volume } => O::new("admin.vm.volume.Clear", volume.as_str(), vm.as_str()),
            VolumeSetRevisionsToKeep { vm, volume, .. } => {
                O::new("admin.vm.volume.Set.revisions_to_keep", volume.as_str(), vm.as_str())
            }
            VolumeSetRw { vm, volume, .. } => O::new("admin.vm.volume.Set.rw", volume.as_str(), vm.as_str()),
            VolumeSetEphemeral { vm, volume, .. } => {
                O::new("admin.vm.volume.Set.ephemeral", volume.as_str(), vm.as_str())
            }
            VolumeCloneFrom { vm, volume } => O::new("admin.vm.volume.CloneFrom", volume.as_str(), vm.as_str()),
            VolumeCloneTo { vm, volume, .. } => O::new("admin.vm.volume.CloneTo", volume.as_str(), vm.as_str()),
            VolumeImportBegin { vm, volume, size } => {
                let method = if size.is_some() { "admin.vm.volume.ImportWithSize" } else { "admin.vm.volume.Import" };
                O::new(method, volume.as_str(), vm.as_str())
            }
            VolumeImportEnd { vm, volume, .. } => O::new("internal.vm.volume.ImportEnd", volume.as_str(), vm.as_str()),
            Events { vm } => O::new("admin.Events", "", vm.as_str()),
            Stats { vm } => O::new("admin.vm.Stats", "", vm.as_str()),
            SystemInfo => O::global("internal.GetSystemInfo", ""),
            UserAdd { name, .. } => O::global("corral.user.Add", name.as_str()),
            UserRemove { name } => O::global("corral.user.Remove", name.as_str()),
            UserServiceKey { name } => O::global("corral.user.ServiceKey", name.as_str()),
            // --- RHEV door (branch `rhev`) ---
            VmCreateWith { new, .. } => {
                let arg = new.template.as_ref().map(TemplateRef::token).unwrap_or_default();
                O::global(format!("admin.vm.Create.{}", new.class().name()), arg)
            }
            VmUpdate { vm, settings } => match settings.property_names().next() {
                Some(name) => O::new("admin.vm.property.Set", name, vm.as_str()),
                None => O::new("admin.vm.notes.Set", "", vm.as_str()),
            },
            VmRemoveForced { vm, .. } => O::new("admin.vm.Remove", "", vm.as_str()),
            VmStartWith { vm, .. } => O::new("admin.vm.Start", "", vm.as_str()),
            VmShutdownOrKill { vm } => O::new("admin.vm.Shutdown", "", vm.as_str()),
            VmSave { vm } => O::new("corral.vm.Save", "", vm.as_str()),
            VmClone { vm, name, .. } => O::new("corral.vm.Clone", name.as_str(), vm.as_str()),
            VmMakeTemplate { vm, name, .. } => O::new("corral.vm.MakeTemplate", name.as_str(), vm.as_str()),
            VmConsoleTicket { vm, .. } => O::new("corral.vm.ConsoleTicket", "", vm.as_str()),
            VmUsage { vm } => O::new("admin.vm.Stats", "", vm.as_str()),
            VmDiskRates { vm, volume } => O::new("corral.vm.DiskStats", volume.as_str(), vm.as_str()),
            VmNicRates { vm } => O::new("corral.vm.NicStats", "", vm.as_str()),
            VolumeAdd { vm, disk } => O::new("corral.vm.volume.Add", disk.pool.as_str(), vm.as_str()),
            VolumeUpdate { vm, volume, .. } => O::new("corral.vm.volume.Update", volume.as_str(), vm.as_str()),
            VolumeRemove { vm, volume } => O::new("corral.vm.volume.Remove", volume.as_str(), vm.as_str()),
            VolumeRevisions { vm, volume } => O::new("admin.vm.volume.ListSnapshots", volume.as_str(), vm.as_str()),
            VolumeSnapshot { vm, volume, .. } => O::new("admin.vm.volume.Info", volume.as_str(), vm.as_str()),
            NicAdd { vm, .. } => O::new("corral.vm.nic.Add", "", vm.as_str()),
            NicUpdate { vm, .. } => O::new("corral.vm.nic.Update", "", vm.as_str()),
            NicRemove { vm } => O::new("corral.vm.nic.Remove", "", vm.as_str()),
            CdromSet { vm, .. } => O::new("corral.vm.CdromChange", "", vm.as_str()),
            TagRemoveEverywhere { tag } => O::global("corral.tag.Remove", tag.as_str()),
            TagRename { from, .. } => O::global("corral.tag.Rename", from.as_str()),
            PoolFiles { pool } => O::global("corral.pool.Files", pool.as_str()),
            PoolUsage { pool } => O::global("admin.pool.UsageDetails", pool.as_str()),
            VolumeUsage { vm, volume } => O::new("admin.vm.volume.Info", volume.as_str(), vm.as_str()),
            HypervisorInfo => O::global("corral.host.Info", ""),
            Session { open: true } => O::global("corral.session.Open", ""),
            Session { open: false } => O::global("corral.session.Close", ""),
            // --- virthttp door (branch `virthttp`) ---
            VmStartPaused { vm } => O::new("admin.vm.Start", "", vm.as_str()),
            VmReboot { vm } => O::new("admin.vm.Shutdown", "wait", vm.as_str()),
            VmReset { vm } => O::new("admin.vm.Kill", "", vm.as_str()),
            VmSendKeys { vm, .. } => O::new("corral.vm.SendKeys", "", vm.as_str()),
            VmDomainXml { vm, .. } => O::new("corral.vm.DomainXML", "", vm.as_str()),
            VmSchedulerType { vm } => O::new("corral.vm.SchedulerType", "", vm.as_str()),
            NetworkList => O::global("corral.network.List", ""),
            NetworkXml { .. } => O::global("corral.network.XML", ""),
            NetworkDhcpLeases { .. } => O::global("corral.network.DHCPLeases", ""),
            NetworkCreate { .. } => O::global("corral.network.Create", ""),
            NetworkDefine { def } => O::global("corral.network.Define", def.name.as_str()),
            NetworkDestroy { .. } => O::global("corral.network.Destroy", ""),
            NetworkRemove { .. } => O::global("corral.network.Remove", ""),
            NetworkSetAutostart { .. } => O::global("corral.network.SetAutostart", ""),
        }
    }
}

/// The Admin API method that looks a feature up along `lookup`'s chain.
fn feature_method(lookup: FeatureLookup) -> &'static str {
    match lookup {
        FeatureLookup::Own => "admin.vm.feature.Get",
        FeatureLookup::Template => "admin.vm.feature.CheckWithTemplate",
        FeatureLookup::Netvm => "admin.vm.feature.CheckWithNetvm",
        FeatureLookup::AdminVm => "admin.vm.feature.CheckWithAdminVM",
        FeatureLookup::TemplateAndAdminVm => "admin.vm.feature.CheckWithTemplateAndAdminVM",
    }
}

fn names<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Response {
    Response::Names(items.into_iter().map(Into::into).collect())
}

fn find_label<'a>(app: &'a corral_core::App, token: &str) -> Result<&'a label::Label> {
    label::validate_label_name(token, false)?;
    app.get_label(token)
        .ok_or_else(|| Error::new(ErrorKind::NotFound(Missing::Label), format!("Label does not exist: {token}")))
}

/// `<pool>` must name an existing pool; otherwise the argument is outside the allowed set.
fn known_pool<'a>(app: &'a corral_core::App, name: &str) -> Result<&'a corral_core::volume::Pool> {
    app.pool(name).ok_or_else(|| Error::denied("Argument not in 'pools'"))
}

impl Service {
    /// The one entry point: every operation `request` amounts to is checked for `principal` first, before
    /// anything is looked up; then the request runs.
    pub fn handle(&self, principal: &Principal, request: Request) -> Result<Response> {
        for op in request.operations() {
            self.authorize(principal, &op)?;
        }
        self.run(principal, request)
    }

    fn run(&self, p: &Principal, request: Request) -> Result<Response> {
        use Request::*;
        let done = |r: Result<()>| r.map(|()| Response::Done);
        match request {
            VmClassList => {
                let mut classes: Vec<&str> = Class::ALL.iter().map(|c| c.name()).collect();
                classes.sort_unstable();
                Ok(names(classes))
            }
            VmList { vm } => self.vm_listing(p, &vm),
            VmCurrentState { vm } => self.current_state(p, &vm).map(Response::Text),
            VmStart { vm } => done(self.start_vm(p, &vm)),
            VmShutdown { vm, force, wait } => done(self.shutdown_vm(p, &vm, force, wait)),
            VmKill { vm } => {
                self.kill_vm(p, &vm)?;
                self.audit_vm(p, Happening::PoweredOff, &vm);
                Ok(Response::Done)
            }
            VmPause { vm } => done(self.pause_vm(p, &vm)),
            VmUnpause { vm } => done(self.unpause_vm(p, &vm)),
            VmSuspend { vm } => done(self.suspend_vm(p, &vm)),
            VmResume { vm } => done(self.resume_vm(p, &vm)),
            VmConsole { vm } => self.console_path(p, &vm).map(Response::Text),
            VmRemove { vm } => done(self.remove_vm(p, &vm)),
            VmCreate { spec, pools } => {
                let method = create_method(&spec, pools);
                done(self.create_vm(p, &method, spec))
            }
            VmCreateDisposable { vm, uuid, preload } => {
                if preload {
                    return self.with_vm(p, "admin.vm.CreateDisposable", "preload", &vm, |_, _| Ok(Response::Done));
                }
                let name = self.create_disposable(p, &vm)?;
                if !uuid {
                    return Ok(Response::Text(name));
                }
                let uuid = self.with_vm(p, "admin.vm.CreateDisposable", "", &name, |_, d| Ok(d.uuid))?;
                Ok(Response::Text(format!("uuid:{uuid}")))
            }
            VmPropertyList { vm } => {
                self.with_vm(p, "admin.vm.property.List", "", &vm, |_, d| Ok(names(props::vm_prop_names(d.class))))
            }
            VmPropertyGet { vm, name } => self.with_vm(p, "admin.vm.property.Get", &name, &vm, |app, d| {
                self.vm_prop_view(app, d, &name).map(Response::Property)
            }),
            VmPropertyGetAll { vm } => self.with_vm(p, "admin.vm.property.GetAll", "", &vm, |app, d| {
                let all = props::vm_prop_names(d.class)
                    .map(|name| Ok((name, self.vm_prop_view(app, d, name)?)))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Response::Properties(all))
            }),
            VmPropertyGetDefault { vm, name } => {
                self.with_vm(p, "admin.vm.property.GetDefault", &name, &vm, |app, d| {
                    Service::vm_prop_default(app, d, &name).map(Response::PropertyDefault)
                })
            }
            VmPropertyHelp { vm, name } => self.with_vm(p, "admin.vm.property.Help", &name, &vm, |_, d| {
                Service::vm_prop_help(d, &name).map(|h| Response::Text(h.to_string()))
            }),
            VmPropertySet { vm, name, value } => done(self.set_vm_prop(p, &vm, &name, &value)),
            VmPropertyReset { vm, name } => done(self.reset_vm_prop(p, &vm, &name)),
            PropertyList => {
                self.with_app(p, "admin.property.List", "", |_| Ok(names(props::GLOBAL_PROPS.iter().map(|d| d.name))))
            }
            PropertyGet { name } => self.with_app(p, "admin.property.Get", &name, |app| {
                Service::global_prop_view(app, &name).map(Response::Property)
            }),
            PropertyGetAll => self.with_app(p, "admin.property.GetAll", "", |app| {
                let all = props::GLOBAL_PROPS
                    .iter()
                    .map(|d| Ok((d.name, Service::global_prop_view(app, d.name)?)))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Response::Properties(all))
            }),
            PropertyGetDefault { name } => self.with_app(p, "admin.property.GetDefault", &name, |app| {
                Service::global_prop_default(app, &name).map(Response::PropertyDefault)
            }),
            PropertyHelp { name } => self.with_app(p, "admin.property.Help", &name, |_| {
                props::global_prop_def(&name)
                    .map(|d| Response::Text(d.help.to_string()))
                    .ok_or_else(|| Error::no_such_property("Qubes", &name))
            }),
            PropertySet { name, value } => done(self.set_global_prop(p, &name, &value)),
            PropertyReset { name } => done(self.reset_global_prop(p, &name)),
            FeatureList { vm } => self.with_vm(p, "admin.vm.feature.List", "", &vm, |_, d| {
                Ok(names(d.features.iter().map(|(k, _)| k.to_string())))
            }),
            FeatureGet { vm, name, lookup } => {
                self.feature_get(p, feature_method(lookup), &vm, &name, lookup).map(Response::Text)
            }
            FeatureSet { vm, name, value } => done(self.feature_set(p, &vm, &name, &value)),
            FeatureRemove { vm, name } => done(self.feature_remove(p, &vm, &name)),
            TagList { vm } => self.with_vm(p, "admin.vm.tag.List", "", &vm, |app, d| Ok(names(app.tags_of(d)))),
            TagGet { vm, tag } => {
                corral_core::text::validate_tag(&tag)?;
                self.with_vm(p, "admin.vm.tag.Get", &tag, &vm, |app, d| {
                    Ok(Response::Flag(app.tags_of(d).contains(&tag)))
                })
            }
            TagSet { vm, tag } => done(self.tag_set(p, &vm, &tag)),
            TagRemove { vm, tag } => done(self.tag_remove(p, &vm, &tag)),
            LabelList => {
                self.with_app(p, "admin.label.List", "", |app| Ok(names(app.labels().map(|l| l.name.clone()))))
            }
            LabelGet { name } => self
                .with_app(p, "admin.label.Get", &name, |app| Ok(Response::Text(find_label(app, &name)?.color.clone()))),
            LabelIndex { name } => self.with_app(p, "admin.label.Index", &name, |app| {
                Ok(Response::Number(u64::from(find_label(app, &name)?.index)))
            }),
            LabelCreate { name, color } => done(self.label_create(p, &name, &color)),
            LabelRemove { name } => done(self.label_remove(p, &name)),
            NotesGet { vm } => {
                self.with_vm(p, "admin.vm.notes.Get", "", &vm, |_, d| Ok(Response::Text(d.notes.clone())))
            }
            NotesSet { vm, text } => done(self.notes_set(p, &vm, &text)),
            FirewallGet { vm } => self.with_vm(p, "admin.vm.firewall.Get", "", &vm, |_, d| {
                let now = crate::now_epoch();
                Ok(Response::Firewall(d.firewall.iter().filter(|r| !r.is_expired(now)).cloned().collect()))
            }),
            FirewallSet { vm, rules } => done(self.firewall_set(p, &vm, &rules)),
            FirewallReload { vm } => done(self.firewall_reload(p, &vm)),
            DeviceClassList => self.with_app(p, "admin.deviceclass.List", "", |_| Ok(names(DEVICE_CLASSES))),
            // No device backends exist yet, so every listing is empty (an unknown device is not an error).
            DeviceList { vm, class, listing, arg } => {
                let method = format!("admin.vm.device.{class}.{}", listing.name());
                self.with_vm(p, &method, &arg, &vm, |_, _| Ok(Response::Names(Vec::new())))
            }
            DeniedList { vm } => self.with_vm(p, "admin.vm.device.denied.List", "", &vm, |app, d| {
                // A RemoteVM has no list: nothing is denied there.
                let stored = app.vm_prop(d, "devices_denied").unwrap_or_default();
                Ok(Response::Interfaces(props::split_interfaces(&stored)?))
            }),
            DeniedAdd { vm, interfaces } => done(self.denied_add(p, &vm, &interfaces)),
            DeniedRemove { vm, interfaces } => done(self.denied_remove(p, &vm, &interfaces)),
            PoolList => self
                .with_app(p, "admin.pool.List", "", |app| Ok(names(app.pools().iter().map(|pool| pool.name.clone())))),
            PoolListDrivers => self.with_app(p, "admin.pool.ListDrivers", "", |_| {
                Ok(Response::Drivers(
                    Driver::ALL
                        .iter()
                        .map(|d| (d.name().to_string(), d.parameters().iter().map(|p| p.to_string()).collect()))
                        .collect(),
                ))
            }),
            PoolInfo { pool } => {
                let pool = self.with_app(p, "admin.pool.Info", &pool, |app| Ok(known_pool(app, &pool)?.clone()))?;
                let mut fields: Vec<(String, String)> =
                    pool.config().into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                if let Some((size, usage)) = self.pool_usage(&pool) {
                    fields.push(("size".into(), size.to_string()));
                    fields.push(("usage".into(), usage.to_string()));
                }
                Ok(Response::Fields(fields))
            }
            PoolUsageDetails { pool } => {
                let pool =
                    self.with_app(p, "admin.pool.UsageDetails", &pool, |app| Ok(known_pool(app, &pool)?.clone()))?;
                Ok(Response::Fields(match self.pool_usage(&pool) {
                    Some((size, usage)) => {
                        vec![("data_size".into(), size.to_string()), ("data_usage".into(), usage.to_string())]
                    }
                    None => Vec::new(),
                }))
            }
            PoolAdd { driver, config } => done(self.pool_add(p, &driver, &config)),
            PoolRemove { pool } => done(self.pool_remove(p, &pool)),
            PoolSetRevisionsToKeep { pool, value } => done(self.pool_set_revisions(p, &pool, &value)),
            PoolSetEphemeralVolatile { pool, value } => done(self.pool_set_ephemeral(p, &pool, &value)),
            PoolVolumeList { pool } => self.with_app(p, "admin.pool.volume.List", &pool, |app| {
                known_pool(app, &pool)?;
                let mut vids: Vec<&str> = app
                    .domains()
                    .flat_map(|d| d.volumes.iter())
                    // Snapshot volumes count too: upstream's file pool lists every volume it initialised.
                    .filter(|v| v.pool == pool && !v.vid.is_empty())
                    .map(|v| v.vid.as_str())
                    .collect();
                vids.sort_unstable();
                vids.dedup();
                Ok(names(vids))
            }),
            VolumeList { vm } => self.with_vm(p, "admin.vm.volume.List", "", &vm, |_, d| {
                Ok(names(d.volumes.iter().map(|v| v.name.clone())))
            }),
            VolumeInfo { vm, volume } => self.volume_info(p, &vm, &volume).map(Response::Volume),
            VolumeListSnapshots { vm, volume } => self.volume_snapshots(p, &vm, &volume).map(Response::Names),
            VolumeResize { vm, volume, size } => done(self.volume_resize(p, &vm, &volume, &size)),
            VolumeRevert { vm, volume, revision } => {
                self.volume_revert(p, &vm, &volume, &revision)?;
                self.audit_vm(p, Happening::Restored, &vm);
                Ok(Response::Done)
            }
            VolumeClear { vm, volume } => done(self.volume_clear(p, &vm, &volume)),
            VolumeSetRevisionsToKeep { vm, volume, value } => done(self.volume_set_revisions(p, &vm, &volume, &value)),
            VolumeSetRw { vm, volume, value } => done(self.volume_set_rw(p, &vm, &volume, &value)),
            VolumeSetEphemeral { vm, volume, value } => done(self.volume_set_ephemeral(p, &vm, &volume, &value)),
            VolumeCloneFrom { vm, volume } => self.volume_clone_from(p, &vm, &volume).map(Response::Text),
            VolumeCloneTo { vm, volume, token } => done(self.volume_clone_to(p, &vm, &volume, &token)),
            VolumeImportBegin { vm, volume, size } => {
                let method = if size.is_some() { "admin.vm.volume.ImportWithSize" } else { "admin.vm.volume.Import" };
                let (size, path) = self.import_begin(p, method, &vm, &volume, size)?;
                Ok(Response::ImportTarget { size, path })
            }
            VolumeImportEnd { vm, volume, success, message } => done(self.import_end(&vm, &volume, success, &message)),
            Events { vm } => Ok(Response::Events(self.events().subscription(p.clone(), vm))),
            Stats { vm } => Ok(Response::Stats { vm }),
            SystemInfo => Ok(Response::SystemInfo(self.system_info())),
            UserAdd { name, password } => done(self.user_add(&name, &password)),
            UserRemove { name } => done(self.user_remove(&name)),
            UserServiceKey { name } => self.user_service_key(&name).map(Response::Text),
            // --- RHEV door (branch `rhev`) ---
            VmCreateWith { new, start } => {
                let name = new.name.clone();
                self.create_vm_settings(p, new, start)?;
                if !start {
                    return Ok(Response::Done);
                }
                // The qube is committed: a start that fails now leaves it as it is, halted, and says so.
                Ok(self.start_vm(p, &name).map_or_else(Response::NotStarted, |()| Response::Done))
            }
            VmUpdate { vm, settings } => done(self.update_vm_settings(p, &vm, &settings)),
            VmRemoveForced { vm, force } => done(self.remove_vm_forced(p, &vm, force)),
            VmStartWith { vm, once, pause } => {
                self.start_vm_once(p, &vm, &once)?;
                if pause {
                    self.pause_vm(p, &vm)?;
                }
                Ok(Response::Done)
            }
            VmShutdownOrKill { vm } => done(self.shutdown_or_kill_vm(p, &vm)),
            VmSave { vm } => {
                self.audit_vm(p, Happening::SuspendStarted, &vm);
                let saved = self.save_vm(p, &vm);
                self.audit_vm(p, if saved.is_ok() { Happening::Suspended } else { Happening::SuspendFailed }, &vm);
                done(saved)
            }
            VmClone { vm, name, uuid } => done(self.clone_vm(p, &vm, &name, uuid)),
            VmMakeTemplate { vm, name, uuid, settings } => {
                done(self.create_template_from(p, &vm, &name, uuid, &settings))
            }
            VmConsoleTicket { vm, password, valid_for } => {
                self.console_ticket(p, &vm, password.as_deref(), valid_for).map(Response::Text)
            }
            VmUsage { vm } => {
                let (info, cpu_percent) = self.cpu_usage(&vm)?;
                Ok(Response::Usage { info, cpu_percent })
            }
            VmDiskRates { vm, volume } => self.disk_rates(p, &vm, &volume).map(Response::DiskRates),
            VmNicRates { vm } => self.nic_rates(p, &vm).map(Response::NicRates),
            VolumeAdd { vm, disk } => {
                let name = self.volume_add(p, &vm, &disk)?;
                if let Some(alias) = self.disk_alias_of(&vm, &name) {
                    self.audit_vm(p, Happening::DiskAdded(alias), &vm);
                }
                Ok(Response::Text(name))
            }
            VolumeUpdate { vm, volume, size, bootable, alias } => {
                done(self.volume_update(p, &vm, &volume, size, bootable, alias.as_deref()))
            }
            VolumeRemove { vm, volume } => {
                // The alias is the disk's until it is gone, and the qube's name with it for the record.
                let alias = self.disk_alias_of(&vm, &volume);
                let app = self.current().clone();
                self.volume_remove(p, &vm, &volume)?;
                if let (Some(alias), Ok(d)) = (alias, crate::resolve_in(&app, &vm)) {
                    self.audit.note(&app, p, Happening::DiskRemoved(alias), Some(d));
                }
                Ok(Response::Done)
            }
            VolumeRevisions { vm, volume } => self.volume_revisions_described(p, &vm, &volume).map(Response::Revisions),
            VolumeSnapshot { vm, volume, description } => {
                self.audit_vm(p, Happening::SnapshotStarted, &vm);
                let taken = self.volume_snapshot(p, &vm, &volume, description.as_deref());
                let what = if taken.is_ok() { Happening::SnapshotTaken } else { Happening::SnapshotFailed };
                self.audit_vm(p, what, &vm);
                taken.map(Response::Revision)
            }
            NicAdd { vm, network, mac, name } => {
                done(self.add_nic(p, &vm, network.as_deref(), mac.as_deref().map(str::as_bytes), name.as_deref()))
            }
            NicUpdate { vm, name, mac } => {
                done(self.update_nic(p, &vm, name.as_deref(), mac.as_deref().map(str::as_bytes)))
            }
            NicRemove { vm } => done(self.remove_nic(p, &vm)),
            CdromSet { vm, file, current } => done(self.set_cdrom(p, &vm, &file, current)),
            TagRemoveEverywhere { tag } => self.tag_remove_everywhere(p, &tag).map(|_| Response::Done),
            TagRename { from, to } => done(self.tag_rename(p, &from, &to)),
            PoolFiles { pool } => {
                let pool = self.with_app(p, "corral.pool.Files", &pool, |app| Ok(known_pool(app, &pool)?.clone()))?;
                Ok(Response::Names(self.pool_files(&pool)))
            }
            PoolUsage { pool } => {
                let pool =
                    self.with_app(p, "admin.pool.UsageDetails", &pool, |app| Ok(known_pool(app, &pool)?.clone()))?;
                Ok(Response::PoolUsage(self.pool_usage(&pool)))
            }
            VolumeUsage { vm, volume } => self.volume_usage(p, &vm, &volume).map(Response::Number),
            HypervisorInfo => {
                Ok(Response::Hypervisor { connected: self.has_hypervisor(), version: self.libvirt_version() })
            }
            Session { open } => {
                let login = p.user_name().unwrap_or_default().to_string();
                self.audit_global(p, Happening::Session { login, open });
                Ok(Response::Done)
            }
            // --- virthttp door (branch `virthttp`) ---
            VmStartPaused { vm } => done(self.start_vm(p, &vm).and_then(|()| self.pause_vm(p, &vm))),
            VmReboot { vm } => done(self.reboot_vm(p, &vm)),
            VmReset { vm } => done(self.kill_vm(p, &vm).and_then(|()| self.start_vm(p, &vm))),
            VmSendKeys { vm, codeset, hold_ms, keys } => done(self.send_keys(p, &vm, codeset, hold_ms, &keys)),
            VmDomainXml { vm, flags } => self.domain_xml_of(p, &vm, flags).map(Response::Text),
            VmSchedulerType { vm } => {
                self.scheduler_type(p, &vm).map(|(kind, params)| Response::Scheduler { kind, params })
            }
            // Without a hypervisor there are no networks to list (not an error: everything else is served).
            NetworkList if !self.has_hypervisor() => Ok(Response::Networks(Vec::new())),
            NetworkList => self.network_details(p).map(Response::Networks),
            NetworkXml { network, flags } => self.network_xml(p, &network, flags).map(Response::Text),
            NetworkDhcpLeases { network, mac } => self.dhcp_leases(p, &network, mac.as_deref()).map(Response::Leases),
            NetworkCreate { xml } => self.create_network(p, &xml).map(Response::Network),
            NetworkDefine { def } => {
                let made = self.define_network(p, &def)?;
                self.audit_global(p, Happening::NetworkAdded(made.name.clone()));
                Ok(Response::Network(made))
            }
            NetworkDestroy { network } => done(self.destroy_network(p, &network)),
            NetworkRemove { network } => done(self.remove_network(p, &network)),
            NetworkSetAutostart { network, autostart } => done(self.set_network_autostart(p, &network, autostart)),
        }
    }

    /// `admin.vm.List`: the whole list (rendered once per model change by the door) when the caller may see
    /// every qube, else only those it may.
    fn vm_listing(&self, p: &Principal, vm: &str) -> Result<Response> {
        if vm != corral_core::domain::DOM0 {
            return Ok(Response::Vms { list: Arc::new(self.list_vms(p, vm)?), generation: None });
        }
        let (list, generation) = self.all_summaries();
        if list.iter().all(|s| self.authorize(p, &Operation::new("admin.vm.List", "", s.name.as_str())).is_ok()) {
            return Ok(Response::Vms { list, generation: Some(generation) });
        }
        let visible = list
            .iter()
            .filter(|s| self.authorize(p, &Operation::new("admin.vm.List", "", s.name.as_str())).is_ok())
            .cloned()
            .collect();
        Ok(Response::Vms { list: Arc::new(visible), generation: None })
    }
}

/// The method a create request names (`admin.vm.Create.AppVM`, …).
fn create_method(spec: &CreateSpec, pools: CreateIn) -> String {
    let family = match pools {
        CreateIn::DefaultPools => "admin.vm.Create",
        CreateIn::GivenPools => "admin.vm.CreateInPool",
    };
    format!("{family}.{}", spec.class.name())
}

#[cfg(test)]
mod rhev_tests {
    use super::*;

    fn ops(r: &Request) -> Vec<(String, String, String)> {
        r.operations().iter().map(|o| (o.method.to_string(), o.arg.to_string(), o.target.to_string())).collect()
    }

    fn op(method: &str, arg: &str, target: &str) -> (String, String, String) {
        (method.into(), arg.into(), target.into())
    }

    #[test]
    fn a_composed_request_is_every_operation_it_amounts_to() {
        let settings = VmSettings { memory_mib: Some(512), notes: Some("n".into()), ..Default::default() };
        let update = Request::VmUpdate { vm: "work".into(), settings: settings.clone() };
        assert_eq!(ops(&update), [op("admin.vm.property.Set", "memory", "work"), op("admin.vm.notes.Set", "", "work")]);
        let uuid = uuid::Uuid::nil();
        let template = Some(TemplateRef { uuid: Some(uuid), name: None });
        let new = NewVm { name: "new".into(), label: "red".into(), template, uuid, settings };
        let create = Request::VmCreateWith { new: new.clone(), start: false };
        assert_eq!(
            ops(&create),
            [
                op("admin.vm.Create.AppVM", &format!("uuid:{uuid}"), "dom0"),
                op("admin.vm.property.Set", "memory", "new"),
                op("admin.vm.notes.Set", "", "new"),
            ]
        );
        // A standalone qube created and started: the start is checked too, last.
        let settings =
            VmSettings { memory_mib: Some(512), maxmem_mib: Some(2048), vcpus: Some(2), ..Default::default() };
        let started = Request::VmCreateWith { new: NewVm { template: None, settings, ..new }, start: true };
        assert_eq!(
            ops(&started),
            [
                op("admin.vm.Create.StandaloneVM", "", "dom0"),
                op("admin.vm.property.Set", "memory", "new"),
                op("admin.vm.property.Set", "maxmem", "new"),
                op("admin.vm.property.Set", "vcpus", "new"),
                op("admin.vm.Start", "", "new"),
            ]
        );
        // One setting changed is that property's Set alone.
        let autostart = VmSettings { autostart: Some(true), ..Default::default() };
        let one = Request::VmUpdate { vm: "work".into(), settings: autostart };
        assert_eq!(ops(&one), [op("admin.vm.property.Set", "autostart", "work")]);
        let forced = Request::VmRemoveForced { vm: "work".into(), force: true };
        assert_eq!(ops(&forced), [op("admin.vm.Remove", "", "work"), op("admin.vm.Kill", "", "work")]);
        let plain = Request::VmRemoveForced { vm: "work".into(), force: false };
        assert_eq!(ops(&plain), [op("admin.vm.Remove", "", "work")]);
        let reboot = Request::VmReboot { vm: "work".into() };
        assert_eq!(ops(&reboot), [op("admin.vm.Shutdown", "wait", "work"), op("admin.vm.Start", "", "work")]);
        // An update that changes nothing is still checked.
        let nothing = Request::VmUpdate { vm: "work".into(), settings: VmSettings::default() };
        assert_eq!(ops(&nothing), [op("admin.vm.notes.Set", "", "work")]);
    }

    #[test]
    fn settings_become_stored_values() {
        let settings = VmSettings {
            memory_mib: Some(1024),
            maxmem_mib: Some(4096),
            vcpus: Some(2),
            autostart: Some(false),
            kernel: Some(String::new()),
            kernelopts: Some("quiet".into()),
            notes: None,
        };
        let (values, notes) = crate::ops::settings_values(Class::AppVM, "work", &settings).expect("valid");
        let values: Vec<(&str, &str)> = values.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            values,
            [
                ("memory", "1024"),
                ("maxmem", "4096"),
                ("vcpus", "2"),
                ("autostart", "False"),
                ("kernel", ""),
                ("kernelopts", "quiet")
            ]
        );
        assert_eq!(notes, None);
        let bad = VmSettings { kernelopts: Some("caf\u{e9}".into()), ..Default::default() };
        assert!(crate::ops::settings_values(Class::AppVM, "work", &bad).is_err());
    }
}
