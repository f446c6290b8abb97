//! Running qubes: start (network providers first), shutdown, kill, pause, suspend, save to disk and
//! resume, and what libvirt reports back. Hypervisor calls block, so they are made without holding the
//! model lock. A refusal because of the qube's state names the action and the state
//! ([`Error::refusing`]), so that every door can say why in its own words.
//!
//! A power transition fires its events exactly once, whoever notices it first: the call that caused it
//! or the libvirt event that reports it (a guest that powers itself off, a QEMU that dies).

use corral_core::error::{Conflict, Failure, Invalid, Unavailable};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_core::domain::{Class, Domain};
use corral_core::hv::{
    BootDevice, ConsoleAddress, DiskSpec, DomainSpec, GraphicsSpec, HvEvent, KeycodeSet, LifecycleEvent, NetworkSpec,
    PowerAction, PowerState, MAX_KEYS_AT_ONCE,
};
use corral_core::volume::{Pool, Volume};
use corral_core::{App, Error, ErrorKind, Event, Result};
use uuid::Uuid;

use crate::runtime::{now, Running};
use crate::{resolve_in, Principal, Service};

/// Settings that apply to one start only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOnce {
    pub kernel: Option<String>,
    pub kernel_cmdline: Option<String>,
    /// An ISO image (of a `file` pool) in the cdrom drive for this run, instead of the qube's own.
    pub cdrom: Option<String>,
    /// The boot order for this run (used when the qube boots without a kernel).
    pub boot: Vec<BootDevice>,
}

/// The MAC of a qube's card on the libvirt network: its `mac` property when set. The default, which Qubes
/// gives every qube alike (each sits on a link of its own to its netvm there), would collide on libvirt's
/// one shared bridge, so an unset `mac` becomes one derived from the qube's uuid, stable across starts.
pub fn bridge_mac(d: &Domain) -> String {
    if let Some(mac) = d.prop("mac") {
        return mac.to_string();
    }
    let b = d.uuid.as_bytes();
    // 00:16:3e is the Xen OUI Qubes uses; the rest comes from the uuid.
    format!("00:16:3e:{:02x}:{:02x}:{:02x}", b[13] & 0x7f, b[14], b[15])
}

/// Characters of a console ticket the daemon makes up: all a VNC password holds.
const TICKET_CHARS: usize = 8;

/// The longest console ticket a caller may give (VNC checks its first 8 characters only).
const MAX_TICKET_CHARS: usize = 64;

/// 9999-12-31T23:59:59: libvirt takes an expiry in four-digit years.
const LAST_EXPIRY: u64 = 253_402_300_799;

fn random_password(chars: usize) -> String {
    rand::Rng::sample_iter(rand::thread_rng(), &rand::distributions::Alphanumeric).take(chars).map(char::from).collect()
}

/// The graphical console every qube starts with: on `listen`, locked by an expired password nobody is told.
pub(crate) fn locked_graphics(listen: std::net::IpAddr) -> GraphicsSpec {
    GraphicsSpec { listen, locked_password: random_password(TICKET_CHARS) }
}

/// Ends a [`Service::lend_cause`].
struct CauseLoan<'a> {
    service: &'a Service,
    uuid: Uuid,
}

impl Drop for CauseLoan<'_> {
    fn drop(&mut self) {
        self.service.lent_causes.lock().remove(&self.uuid);
    }
}

/// The libvirt network a qube with a netvm joins.
pub const QUBE_NETWORK: &str = corral_core::domain::NETVM_NETWORK;

/// A chain of network providers deeper than this is a loop the model should have refused.
const MAX_NETVM_DEPTH: usize = 8;

fn not_started(vm: &str) -> Error {
    Error::new(ErrorKind::Conflict(Conflict::NotStarted), format!("Domain is powered off: '{vm}'"))
}

fn not_running(vm: &str) -> Error {
    Error::new(
        ErrorKind::Conflict(Conflict::NotRunning),
        format!("Domain not running (either powered off or paused): '{vm}'"),
    )
}

fn not_paused(vm: &str) -> Error {
    Error::new(ErrorKind::Conflict(Conflict::NotPaused), format!("Domain is not paused: '{vm}'"))
}

/// A volume to attach, its pool, and for a snapshot the origin it starts from.
type StartVolume = (Pool, Volume, Option<(Pool, Volume)>);

/// The files a domain boots with, besides its disks.
struct BootFiles {
    kernel: Option<String>,
    initrd: Option<String>,
    cdrom: Option<String>,
}

/// What a start needs from the model, copied out so the lock is not held across libvirt calls.
struct StartPlan {
    domain: Domain,
    netvm: Option<String>,
    /// The libvirt network the qube's card joins (`None`: no card).
    network: Option<String>,
    volumes: Vec<StartVolume>,
    kernel: Option<(Pool, String)>,
    memory: u64,
    maxmem: u64,
    vcpus: u32,
    kernelopts: String,
    mac: String,
    /// The ISO image the qube's cdrom holds: its name, and where it is when some pool has it.
    cdrom: Option<(String, Option<std::path::PathBuf>)>,
    boot: Vec<BootDevice>,
}

impl Service {
    fn hypervisor(&self) -> Result<Arc<dyn corral_core::hv::Hypervisor>> {
        self.hv.clone().ok_or_else(|| self.no_hypervisor())
    }

    /// What a call that needs libvirt answers when the daemon has no connection: why, and what to do.
    pub(crate) fn no_hypervisor(&self) -> Error {
        Error::new(ErrorKind::Failed(Failure::Qube), format!("No hypervisor: {}", self.hv_missing))
    }

    /// The qube's power state as the Admin API names it.
    pub(crate) fn power(&self, d: &Domain) -> PowerState {
        crate::view::power_of(&self.runtime, d)
    }

    fn vm_snapshot(&self, vm: &str) -> Result<Domain> {
        Ok(resolve_in(&self.current(), vm)?.clone())
    }

    /// qubesd's start: a qube that is up already is left as it is (and the call succeeds); a saved one
    /// resumes from disk.
    pub(crate) fn start_vm(&self, caller: &Principal, vm: &str) -> Result<()> {
        self.auth(caller, "admin.vm.Start", "", vm)?;
        let d = self.vm_snapshot(vm)?;
        refuse_remote(&d, "start", ErrorKind::Conflict(Conflict::NotHalted))?;
        self.start_one(&d.name, 0, &RunOnce::default())
    }

    /// A start that refuses a qube already up, as oVirt's run and libvirt's create do: a halted qube boots
    /// (with settings that differ for this run only, RHEV's "run once"), a saved one resumes from disk, a
    /// paused or sleeping one wakes up.
    pub(crate) fn start_vm_once(&self, caller: &Principal, vm: &str, once: &RunOnce) -> Result<()> {
        self.auth(caller, "admin.vm.Start", "", vm)?;
        let d = self.vm_snapshot(vm)?;
        refuse_remote(&d, "start", ErrorKind::Conflict(Conflict::NotHalted))?;
        match self.settled_power(&d) {
            PowerState::Halted | PowerState::Saved => self.start_one(&d.name, 0, once),
            PowerState::Paused => self.unpause_vm(caller, vm),
            PowerState::Suspended => self.resume_vm(caller, vm),
            state => Err(Error::not_halted(&d.name).refusing(PowerAction::Start, state)),
        }
    }

    fn plan_start(&self, name: &str) -> Result<StartPlan> {
        let app = self.current();
        let d = resolve_in(&app, name)?;
        let mut volumes = Vec::new();
        for v in &d.volumes {
            if v.name == "kernel" {
                continue;
            }
            let pool =
                app.pool(&v.pool).cloned().ok_or_else(|| Error::generic(format!("Pool {} not found", v.pool)))?;
            let origin = match (&v.source, v.snap_on_start) {
                (Some(src), true) => {
                    let o = app.domains().flat_map(|o| o.volumes.iter()).find(|o| &o.vid == src && !o.snap_on_start);
                    let o = o.ok_or_else(|| {
                        Error::new(
                            ErrorKind::Conflict(Conflict::NoTemplate),
                            format!("Template for the domain '{name}' not found"),
                        )
                    })?;
                    let op = app.pool(&o.pool).cloned().ok_or_else(|| Error::generic("Origin pool not found"))?;
                    Some((op, o.clone()))
                }
                _ => None,
            };
            volumes.push((pool, v.clone(), origin));
        }
        let kernel_name = app.vm_prop(d, "kernel").unwrap_or_default();
        let kernel = if kernel_name.is_empty() {
            None
        } else {
            let pool_name = d.volume("kernel").map(|v| v.pool.clone()).unwrap_or_else(|| "linux-kernel".into());
            let pool = app.pool(&pool_name).cloned().ok_or_else(|| Error::generic("Kernel pool not found"))?;
            Some((pool, kernel_name))
        };
        let int = |p: &str| app.vm_prop(d, p).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // Checked when set; a stored count that still does not fit is refused rather than started as 1.
        // (dom0 has no count of its own; it is refused as not halted further on.)
        let vcpus = u32::try_from(int("vcpus"))
            .map_err(|_| Error::generic(format!("Qube {} has a vcpu count libvirt cannot take", d.name)))?
            .max(1);
        Ok(StartPlan {
            netvm: app.vm_prop(d, "netvm").filter(|n| !n.is_empty()),
            network: app.nic_network(d),
            memory: int("memory"),
            maxmem: int("maxmem"),
            vcpus,
            kernelopts: app.vm_prop(d, "kernelopts").unwrap_or_default(),
            mac: bridge_mac(d),
            cdrom: d
                .features
                .get(corral_core::domain::CDROM_FEATURE)
                .filter(|f| !f.is_empty())
                .map(|f| (f.to_string(), crate::media::iso_path(&app, f))),
            boot: Vec::new(),
            domain: d.clone(),
            volumes,
            kernel,
        })
    }

    /// What refuses a start of `d` (which may not be committed yet) for certain, found without starting
    /// anything: a prohibition on it or on a halted qube of its network chain, with the words the start
    /// itself would answer, a loop in that chain, or no hypervisor. A start can still fail after this says
    /// yes (storage, libvirt).
    pub(crate) fn start_refusal(&self, app: &App, d: &Domain) -> Result<()> {
        let mut next = Some(d);
        let mut depth = 0;
        while let Some(q) = next {
            if depth > MAX_NETVM_DEPTH {
                return Err(Error::value("Loops in network are unsupported"));
            }
            // A qube up already (dom0, a remote one, one running or saved) starts nothing along its chain.
            if q.is_admin() || !q.class.runs_here() || self.power(q) != PowerState::Halted {
                break;
            }
            if let Some(reason) = q.features.get("prohibit-start").filter(|r| !r.is_empty()) {
                return Err(Error::generic(format!("Qube start is prohibited. Rationale: {reason}")));
            }
            next = app.vm_prop(q, "netvm").filter(|n| !n.is_empty()).and_then(|n| app.domain(&n));
            depth += 1;
        }
        self.hypervisor().map(|_| ())
    }

    fn start_one(&self, name: &str, depth: usize, once: &RunOnce) -> Result<()> {
        let mut plan = self.plan_start(name)?;
        if let Some(cmdline) = &once.kernel_cmdline {
            plan.kernelopts = cmdline.clone();
        }
        if let Some(iso) = &once.cdrom {
            let path = crate::media::iso_path(&self.current(), iso).ok_or_else(|| crate::media::no_iso(iso))?;
            plan.cdrom = Some((iso.clone(), Some(path)));
        }
        if once.boot.contains(&BootDevice::Cdrom) && plan.cdrom.is_none() {
            return Err(Error::value("Cannot boot from the cdrom: it holds no image"));
        }
        plan.boot = once.boot.clone();
        if let Some(kernel) = &once.kernel {
            corral_core::props::sanitize(corral_core::props::PropType::Str, kernel.as_bytes())?;
            if kernel.contains('/') {
                return Err(Error::value("kernel name may not contain '/'"));
            }
            let pool =
                plan.kernel.as_ref().map(|(p, _)| p.clone()).or_else(|| self.current().pool("linux-kernel").cloned());
            let pool = pool.ok_or_else(|| Error::generic("No kernel pool"))?;
            plan.kernel = Some((pool, kernel.clone()));
        }
        let d = &plan.domain;
        if d.is_admin() {
            return Err(Error::new(ErrorKind::Conflict(Conflict::NotHalted), "Cannot start Dom0 fake domain!"));
        }
        match self.settled_power(d) {
            PowerState::Halted => {}
            PowerState::Saved => return self.restore(d),
            _ => return Ok(()),
        }
        // An empty rationale does not prohibit, as upstream's truth test of the feature value.
        if let Some(reason) = d.features.get("prohibit-start").filter(|r| !r.is_empty()) {
            let message = format!("Qube start is prohibited. Rationale: {reason}");
            self.publish(Event::on(&d.name, "domain-start-failed").arg("reason", &message));
            return Err(Error::generic(message));
        }
        let hv = self.hypervisor()?;
        if !self.starting.lock().insert(d.uuid) {
            return Ok(());
        }
        let result = self.spawn(&plan, hv.as_ref(), depth);
        self.starting.lock().remove(&d.uuid);
        result
    }

    fn spawn(&self, plan: &StartPlan, hv: &dyn corral_core::hv::Hypervisor, depth: usize) -> Result<()> {
        let d = &plan.domain;
        // Upstream's admin.vm.Start passes no memory requirement.
        self.publish(Event::on(&d.name, "domain-pre-start").arg("start_guid", "True").arg("mem_required", "None"));
        // The network provider starts after this qube's domain-pre-start, as upstream; its failure is this
        // start's failure too.
        if let Some(netvm) = &plan.netvm {
            let started = if depth >= MAX_NETVM_DEPTH {
                Err(Error::value("Loops in network are unsupported"))
            } else {
                self.start_one(netvm, depth + 1, &RunOnce::default())
            };
            if let Err(e) = started {
                self.publish(Event::on(&d.name, "domain-start-failed").arg("reason", &e.message));
                return Err(e);
            }
        }
        let fail = |message: String| {
            self.stop_volumes(plan);
            self.publish(Event::on(&d.name, "domain-start-failed").arg("reason", &message));
            Error::generic(format!("Start failed: {message}"))
        };
        let mut disks = Vec::new();
        for (pool, v, origin) in &plan.volumes {
            let origin = origin.as_ref().map(|(p, o)| (p, o));
            match self.storage.start_volume(pool, v, origin) {
                Ok(Some(a)) => disks.push(disk_spec(v, &a)),
                Ok(None) => {}
                Err(e) => return Err(fail(format!("volume {}: {e}", v.name))),
            }
        }
        let spec = match self.boot_files(plan) {
            Ok(files) => self.domain_spec(plan, hv.domain_type(), disks, files),
            Err(message) => return Err(fail(message)),
        };
        self.publish(Event::on(&d.name, "domain-pre-spawn").arg("start_guid", "True"));
        let _loan = self.lend_cause(d.uuid);
        if let Err(e) = hv.start(&spec) {
            return Err(fail(e.message));
        }
        let info = hv.info(&d.uuid).ok();
        let state = info.map(|i| i.state).filter(|s| s.is_active()).unwrap_or(PowerState::Running);
        let running = Running {
            state,
            start_time: now(),
            xid: info.and_then(|i| i.id),
            cdrom_drive: Some(spec.cdrom.is_some()),
            console: console_address(hv, &d.uuid),
        };
        self.runtime.set_running(d.uuid, running);
        self.bump();
        self.prepare_next_start(plan);
        // Upstream announces the new xid and start_time as soon as the domain exists, before domain-spawn.
        self.publish_runtime_props(&d.name);
        for ev in ["domain-spawn", "domain-start"] {
            self.publish(Event::on(&d.name, ev).arg("start_guid", "True"));
        }
        Ok(())
    }

    /// Starts saved qube `d` from its image: the guest goes on where it was, on the disks it was saved with.
    fn restore(&self, d: &Domain) -> Result<()> {
        let hv = self.hypervisor()?;
        if !self.starting.lock().insert(d.uuid) {
            return Ok(());
        }
        let restored = {
            let _loan = self.lend_cause(d.uuid);
            let restored = hv.restore(&d.uuid);
            if restored.is_ok() {
                // Still marked as starting: libvirt's own report of the start is left out.
                self.transition(d.uuid, PowerState::Running);
            }
            restored
        };
        self.starting.lock().remove(&d.uuid);
        restored.map_err(Error::from)?;
        self.runtime.set_xid(d.uuid, hv.info(&d.uuid).ok().and_then(|i| i.id));
        self.publish_xid_reset(&d.name);
        Ok(())
    }

    /// Saves a running qube's memory to disk and stops it (libvirt's managed save): it shows as suspended,
    /// uses no memory, and a start or resume goes on where it was. Its disks stay as they are meanwhile.
    pub(crate) fn save_vm(&self, caller: &Principal, vm: &str) -> Result<()> {
        self.auth(caller, "corral.vm.Save", "", vm)?;
        let d = self.vm_snapshot(vm)?;
        let state = self.settled_power(&d);
        if d.is_admin() || state != PowerState::Running {
            return Err(not_running(&d.name).refusing(PowerAction::Save, state));
        }
        let hv = self.hypervisor()?;
        self.publish(Event::on(&d.name, "domain-pre-paused"));
        {
            let _loan = self.lend_cause(d.uuid);
            hv.save(&d.uuid).map_err(Error::from)?;
            self.transition(d.uuid, PowerState::Saved);
        }
        self.runtime.set_xid(d.uuid, None);
        self.publish_xid_reset(&d.name);
        Ok(())
    }

    /// Shuts a running qube down, waits until it stopped and starts it again.
    pub(crate) fn reboot_vm(&self, caller: &Principal, vm: &str) -> Result<()> {
        self.auth(caller, "admin.vm.Shutdown", "", vm)?;
        let d = self.vm_snapshot(vm)?;
        let state = self.settled_power(&d);
        if d.is_admin() || state != PowerState::Running {
            return Err(not_running(&d.name).refusing(PowerAction::Reboot, state));
        }
        self.shutdown_vm(caller, vm, false, true)?;
        self.start_vm(caller, vm)
    }

    /// oVirt's shutdown: a running qube is asked to power off; one that cannot act on the request
    /// (paused, asleep, saved to disk) is powered off at once.
    pub(crate) fn shutdown_or_kill_vm(&self, caller: &Principal, vm: &str) -> Result<()> {
        self.auth(caller, "admin.vm.Shutdown", "", vm)?;
        let d = self.vm_snapshot(vm)?;
        match self.settled_power(&d) {
            PowerState::Paused | PowerState::Suspended | PowerState::Saved => self.kill_vm(caller, vm),
            _ => self.shutdown_vm(caller, vm, false, false),
        }
    }

    /// A saved qube has no xid, a restored one a new one; its start_time stays that of its start.
    fn publish_xid_reset(&self, name: &str) {
        self.publish(Event::on(name, "property-reset:xid").arg("name", "xid"));
    }

    /// The kernel, initial RAM disk and cdrom image files a start of `plan` attaches; the error says which
    /// one is missing.
    fn boot_files(&self, plan: &StartPlan) -> std::result::Result<BootFiles, String> {
        let (kernel, initrd) = match &plan.kernel {
            Some((pool, name)) => match self.storage.kernel_files(pool, name) {
                Some((k, i)) => (Some(k.display().to_string()), i.map(|i| i.display().to_string())),
                None => return Err(format!("kernel {name} is not installed")),
            },
            None => (None, None),
        };
        let cdrom = match &plan.cdrom {
            Some((_, Some(path))) => Some(path.display().to_string()),
            Some((name, None)) => return Err(crate::media::no_iso(name).message),
            None => None,
        };
        Ok(BootFiles { kernel, initrd, cdrom })
    }

    /// The domain a start of `plan` defines, with its disks and boot files.
    fn domain_spec(&self, plan: &StartPlan, domain_type: String, disks: Vec<DiskSpec>, files: BootFiles) -> DomainSpec {
        let d = &plan.domain;
        DomainSpec {
            name: d.name.clone(),
            uuid: d.uuid,
            domain_type,
            memory_mib: plan.memory,
            max_memory_mib: plan.maxmem,
            vcpus: plan.vcpus,
            virt_mode: String::new(),
            kernel: files.kernel,
            initrd: files.initrd,
            kernel_cmdline: format!("{} console=ttyS0", plan.kernelopts).trim().to_string(),
            disks,
            network: plan.network.as_ref().map(|n| NetworkSpec { mac: plan.mac.clone(), network: n.clone() }),
            console_log: Some(self.console_log(&d.name).display().to_string()),
            cdrom: files.cdrom,
            boot: plan.boot.clone(),
            graphics: Some(self.graphics.clone()),
        }
    }

    /// The domain a start of qube `name` would define now (without run-once settings), computed from the
    /// model without the start's storage work: each disk where the start attaches it. What a halted qube's
    /// libvirt XML is shown as.
    pub(crate) fn next_start_spec(&self, name: &str) -> Result<DomainSpec> {
        let plan = self.plan_start(name)?;
        if plan.domain.is_admin() {
            return Err(Error::new(ErrorKind::Failed(Failure::Qube), "dom0 is not a libvirt domain"));
        }
        let hv = self.hypervisor()?;
        let mut disks = Vec::new();
        for (pool, v, _) in &plan.volumes {
            let attached =
                self.storage.attachment(pool, v).map_err(|e| Error::generic(format!("volume {}: {e}", v.name)))?;
            disks.extend(attached.map(|a| disk_spec(v, &a)));
        }
        let files = self.boot_files(&plan).map_err(Error::generic)?;
        Ok(self.domain_spec(&plan, hv.domain_type(), disks, files))
    }

    /// xid and start_time are computed from the power state: their values change with it.
    fn publish_runtime_props(&self, name: &str) {
        for prop in ["xid", "start_time"] {
            self.publish(Event::on(name, format!("property-reset:{prop}")).arg("name", prop));
        }
    }

    /// libvirt's present state of the domain; `None` without a hypervisor or an answer from it.
    fn hv_state(&self, uuid: &Uuid) -> Option<PowerState> {
        let hv = self.hv.as_ref()?;
        hv.info(uuid).ok().map(|i| i.state)
    }

    /// The power state, first catching up with libvirt when it has the domain stopped but its report of
    /// that has not been handled yet (as upstream's start does with `_ensure_shutdown_handled`), so that
    /// the stop's events are fired, once, before the caller goes on.
    fn settled_power(&self, d: &Domain) -> PowerState {
        let _guard = self.transitions.lock();
        let state = self.power(d);
        if state.is_active() && self.hv_state(&d.uuid).is_some_and(|s| !s.is_active()) {
            self.transition_locked(d.uuid, PowerState::Halted);
            return PowerState::Halted;
        }
        state
    }

    /// Makes the overlays of the qube's next start now, off the start's critical path (a qemu-img run
    /// each). `remove_vm` waits for this before it deletes the qube's files.
    fn prepare_next_start(&self, plan: &StartPlan) {
        let snapshots: Vec<StartVolume> =
            plan.volumes.iter().filter(|(_, v, o)| v.snap_on_start && o.is_some()).cloned().collect();
        if snapshots.is_empty() {
            return;
        }
        let storage = self.storage;
        let spawned = std::thread::Builder::new().name("prepare-next".into()).spawn(move || {
            for (pool, v, origin) in &snapshots {
                let origin = origin.as_ref().map(|(p, o)| (p, o));
                if let Err(e) = storage.prepare_next(pool, v, origin) {
                    tracing::debug!(vid = %v.vid, error = %e, "cannot prepare the next overlay");
                }
            }
        });
        match spawned {
            Ok(handle) => {
                if let Some(old) = self.preparing.lock().insert(plan.domain.uuid, handle) {
                    let _ = old.join();
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot start preparing the next overlay"),
        }
    }

    /// Waits until no overlay of the qube is being prepared (before its files go away).
    pub(crate) fn wait_prepared(&self, uuid: &Uuid) {
        let handle = self.preparing.lock().remove(uuid);
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    fn stop_volumes(&self, plan: &StartPlan) {
        for (pool, v, _) in &plan.volumes {
            if let Err(e) = self.storage.stop_volume(pool, v) {
                tracing::warn!(vid = %v.vid, error = %e, "cannot clean up a volume after stop");
            }
        }
    }

    pub(crate) fn console_log(&self, name: &str) -> std::path::PathBuf {
        self.state_dir.join("logs").join(format!("{name}.console"))
    }

    pub(crate) fn shutdown_vm(&self, caller: &Principal, vm: &str, force: bool, wait: bool) -> Result<()> {
        self.auth(caller, "admin.vm.Shutdown", "", vm)?;
        let d = self.vm_snapshot(vm)?;
        refuse_remote(&d, "shutdown", ErrorKind::Failed(Failure::Qube))?;
        if d.is_admin() {
            return Err(Error::new(ErrorKind::Failed(Failure::Qube), "dom0 cannot be shut down through the Admin API"));
        }
        let state = self.settled_power(&d);
        if !state.is_active() {
            return Err(not_started(&d.name).refusing(PowerAction::Shutdown, state));
        }
        let hv = self.hypervisor()?;
        self.publish(Event::on(&d.name, "domain-pre-shutdown").arg("force", corral_core::text::format_bool(force)));
        // Upstream refuses a paused qube after domain-pre-shutdown, and every refusal from there on fires
        // domain-shutdown-failed.
        let failed = |e: Error| {
            self.publish(Event::on(&d.name, "domain-shutdown-failed").arg("reason", &e.message));
            e
        };
        // A saved qube has no guest to ask either: only a forced shutdown ends it, discarding its image.
        let asleep = matches!(state, PowerState::Paused | PowerState::Saved);
        if asleep && !force {
            return Err(failed(not_running(&d.name).refusing(PowerAction::Shutdown, state)));
        }
        let outcome = if asleep { hv.kill(&d.uuid) } else { hv.shutdown(&d.uuid) };
        if let Err(e) = outcome {
            return Err(failed(Error::from(e)));
        }
        if asleep {
            // Killed by now; libvirt reports no event when it discards a saved image.
            self.transition(d.uuid, PowerState::Halted);
        }
        if wait {
            let timeout = {
                let app = self.current();
                app.vm_prop(&d, "shutdown_timeout").and_then(|v| v.parse::<u64>().ok()).unwrap_or(60)
            };
            let deadline = Instant::now() + Duration::from_secs(timeout);
            // Settled: the reply comes only once the stop's events are out.
            while self.settled_power(&d).is_active() {
                if Instant::now() >= deadline {
                    return Err(failed(Error::new(
                        ErrorKind::Unavailable(Unavailable::ShutdownTimeout),
                        format!("Domain shutdown timed out: '{}'", d.name),
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    pub(crate) fn kill_vm(&self, caller: &Principal, vm: &str) -> Result<()> {
        self.auth(caller, "admin.vm.Kill", "", vm)?;
        let d = self.vm_snapshot(vm)?;
        refuse_remote(&d, "kill", ErrorKind::Failed(Failure::Qube))?;
        if d.is_admin() {
            return Err(Error::new(ErrorKind::Failed(Failure::Qube), "Cannot kill Dom0 fake domain!"));
        }
        let state = self.settled_power(&d);
        if !state.is_active() {
            return Err(not_started(&d.name).refusing(PowerAction::Stop, state));
        }
        let _loan = self.lend_cause(d.uuid);
        // A saved qube's image is discarded: it is halted then, as a killed one is.
        self.hypervisor()?.kill(&d.uuid).map_err(Error::from)?;
        // Waits for libvirt's event thread if it is firing this stop's events: they come before the reply.
        self.transition(d.uuid, PowerState::Halted);
        Ok(())
    }

    pub(crate) fn pause_vm(&self, caller: &Principal, vm: &str) -> Result<()> {
        self.auth(caller, "admin.vm.Pause", "", vm)?;
        let d = self.vm_snapshot(vm)?;
        refuse_remote(&d, "pause", ErrorKind::Failed(Failure::Qube))?;
        let state = self.power(&d);
        if d.is_admin() || state != PowerState::Running {
            return Err(not_running(&d.name).refusing(PowerAction::Pause, state));
        }
        self.publish(Event::on(&d.name, "domain-pre-paused"));
        let _loan = self.lend_cause(d.uuid);
        self.hypervisor()?.pause(&d.uuid).map_err(Error::from)?;
        self.transition(d.uuid, PowerState::Paused);
        Ok(())
    }

    pub(crate) fn unpause_vm(&self, caller: &Principal, vm: &str) -> Result<()> {
        self.auth(caller, "admin.vm.Unpause", "", vm)?;
        let d = self.vm_snapshot(vm)?;
        let state = self.power(&d);
        if state != PowerState::Paused {
            return Err(not_paused(&d.name).refusing(PowerAction::Unpause, state));
        }
        self.publish(Event::on(&d.name, "domain-pre-unpaused"));
        let _loan = self.lend_cause(d.uuid);
        self.hypervisor()?.unpause(&d.uuid).map_err(Error::from)?;
        self.transition(d.uuid, PowerState::Running);
        Ok(())
    }

    /// Without a guest agent to prepare it, a suspend is a pause, as upstream does for such qubes.
    pub(crate) fn suspend_vm(&self, caller: &Principal, vm: &str) -> Result<()> {
        self.auth(caller, "admin.vm.Suspend", "", vm)?;
        let d = self.vm_snapshot(vm)?;
        refuse_remote(&d, "suspend", ErrorKind::Failed(Failure::Qube))?;
        let state = self.power(&d);
        if d.is_admin() || state != PowerState::Running {
            return Err(not_running(&d.name).refusing(PowerAction::Pause, state));
        }
        self.publish(Event::on(&d.name, "domain-pre-paused"));
        let _loan = self.lend_cause(d.uuid);
        self.hypervisor()?.pm_suspend(&d.uuid).map_err(Error::from)?;
        self.transition(d.uuid, PowerState::Paused);
        Ok(())
    }

    /// A paused or sleeping qube wakes up; one saved to disk (which the Admin API shows as `Suspended` too)
    /// is started from its image.
    pub(crate) fn resume_vm(&self, caller: &Principal, vm: &str) -> Result<()> {
        self.auth(caller, "admin.vm.Resume", "", vm)?;
        let d = self.vm_snapshot(vm)?;
        let state = self.settled_power(&d);
        if state == PowerState::Saved {
            return self.restore(&d);
        }
        if !matches!(state, PowerState::Paused | PowerState::Suspended) {
            return Err(not_paused(&d.name).refusing(PowerAction::Resume, state));
        }
        self.publish(Event::on(&d.name, "domain-pre-unpaused"));
        let _loan = self.lend_cause(d.uuid);
        self.hypervisor()?.pm_wakeup(&d.uuid).map_err(Error::from)?;
        self.transition(d.uuid, PowerState::Running);
        Ok(())
    }

    /// Presses `keys` together on a running qube's keyboard for `hold_ms` (`virsh send-key`): 1 to 16
    /// codes of `codeset`.
    pub(crate) fn send_keys(
        &self,
        caller: &Principal,
        vm: &str,
        codeset: KeycodeSet,
        hold_ms: u32,
        keys: &[u32],
    ) -> Result<()> {
        self.auth(caller, "corral.vm.SendKeys", "", vm)?;
        if keys.is_empty() || keys.len() > MAX_KEYS_AT_ONCE {
            return Err(Error::new(
                ErrorKind::Invalid(Invalid::Value),
                format!("Between 1 and {MAX_KEYS_AT_ONCE} keys are pressed at once, not {}", keys.len()),
            ));
        }
        let d = self.vm_snapshot(vm)?;
        if d.is_admin() || !self.power(&d).is_live() {
            return Err(not_running(&d.name));
        }
        self.hypervisor()?.send_keys(&d.uuid, codeset, hold_ms, keys).map_err(Error::from)
    }

    /// Lets a client log in to a running qube's graphical console for `valid_for` with `ticket`, or with a
    /// random ticket when none is given, and answers the ticket. It replaces the ticket before; once it
    /// expires, nobody can log in until the next.
    pub(crate) fn console_ticket(
        &self,
        caller: &Principal,
        vm: &str,
        ticket: Option<&str>,
        valid_for: Duration,
    ) -> Result<String> {
        self.auth(caller, "corral.vm.ConsoleTicket", "", vm)?;
        let ticket = match ticket {
            None => random_password(TICKET_CHARS),
            Some(t) if t.is_empty() || t.len() > MAX_TICKET_CHARS || !t.bytes().all(|b| (0x20..0x7f).contains(&b)) => {
                return Err(Error::value(format!(
                    "A console ticket is 1 to {MAX_TICKET_CHARS} printable ASCII characters"
                )));
            }
            Some(t) => t.to_string(),
        };
        let d = self.vm_snapshot(vm)?;
        if d.is_admin() || !self.settled_power(&d).is_active() {
            return Err(not_started(&d.name));
        }
        let valid_to = std::time::SystemTime::now()
            .checked_add(valid_for)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|t| t.as_secs())
            .filter(|t| *t <= LAST_EXPIRY)
            .ok_or_else(|| Error::value("A console ticket cannot last beyond the year 9999"))?;
        self.hypervisor()?.set_console_password(&d.uuid, &ticket, valid_to).map_err(Error::from)?;
        Ok(ticket)
    }

    /// libvirt's figures for a running qube; zeros when halted or without a hypervisor.
    pub(crate) fn domain_info(&self, d: &Domain) -> corral_core::hv::DomainInfo {
        crate::view::info_of(&self.runtime, self.hv.as_deref(), d)
    }

    /// `mem=<KiB> mem_static_max=<KiB> cputime=<ns> power_state=<State>`.
    pub(crate) fn current_state(&self, caller: &Principal, vm: &str) -> Result<String> {
        self.auth(caller, "admin.vm.CurrentState", "", vm)?;
        let (d, host_kib) = {
            let app = self.current();
            (resolve_in(&app, vm)?.clone(), app.host.memory_mib * 1024)
        };
        if d.is_admin() {
            return Ok(format!("mem={host_kib} mem_static_max={host_kib} cputime=0 power_state=Running"));
        }
        if d.is_remote() {
            return Ok("mem=0 mem_static_max=0 cputime=0 power_state=Running".into());
        }
        let state = self.power(&d);
        if !state.is_active() {
            return Ok("mem=0 mem_static_max=0 cputime=0 power_state=Halted".into());
        }
        let info = match &self.hv {
            Some(hv) => hv.info(&d.uuid).map_err(Error::from)?,
            None => corral_core::hv::DomainInfo::halted(),
        };
        Ok(format!(
            "mem={} mem_static_max={} cputime={} power_state={}",
            info.memory_kib,
            info.max_memory_kib,
            info.cpu_time_ns,
            state.as_str()
        ))
    }

    pub(crate) fn console_path(&self, caller: &Principal, vm: &str) -> Result<String> {
        self.auth(caller, "admin.vm.Console", "", vm)?;
        let d = self.vm_snapshot(vm)?;
        refuse_remote(&d, "open the console of", ErrorKind::Failed(Failure::Qube))?;
        if d.is_admin() || !self.power(&d).is_live() {
            return Err(not_running(&d.name));
        }
        let pty = self.hypervisor()?.console_pty(&d.uuid).map_err(Error::from)?;
        // Upstream answers the `console/@tty` of the live XML, empty when there is none.
        Ok(pty.unwrap_or_default())
    }

    /// Running qubes (all of them for dom0, else only `dest`) with their figures, and how long to wait
    /// before the next sample (`stats_interval`).
    pub fn stats_sample(&self, dest: &str) -> (Vec<(String, corral_core::hv::DomainInfo)>, Duration) {
        let (qubes, interval) = {
            let app = self.current();
            let interval = app.global_prop("stats_interval").and_then(|v| v.parse::<u64>().ok()).unwrap_or(3);
            let qubes: Vec<Domain> = app
                .domains()
                .filter(|d| d.class.runs_here() && (dest == "dom0" || d.name == dest))
                .filter(|d| self.power(d).is_live())
                .cloned()
                .collect();
            (qubes, Duration::from_secs(interval.max(1)))
        };
        let Some(hv) = &self.hv else { return (Vec::new(), interval) };
        let samples = qubes
            .into_iter()
            .filter_map(|d| hv.info(&d.uuid).ok().filter(|i| i.state.is_live()).map(|i| (d.name, i)))
            .collect();
        (samples, interval)
    }

    /// A lifecycle change from libvirt, whoever caused it.
    pub(crate) fn on_hv_event(&self, ev: HvEvent) {
        let state = match ev.event {
            LifecycleEvent::Started => PowerState::Running,
            LifecycleEvent::Paused => PowerState::Paused,
            LifecycleEvent::Resumed => PowerState::Running,
            LifecycleEvent::ShuttingDown => PowerState::Halting,
            LifecycleEvent::Stopped { .. } => PowerState::Halted,
            LifecycleEvent::PmSuspended => PowerState::Suspended,
            LifecycleEvent::Saved => PowerState::Saved,
            LifecycleEvent::Crashed => PowerState::Crashed,
        };
        // A qube being started is reported by the start itself, once libvirt has it running.
        if state == PowerState::Running && self.starting.lock().contains(&ev.uuid) {
            return;
        }
        let _guard = self.transitions.lock();
        // Reports arrive late: one that libvirt's present state contradicts (the stop of a qube started again
        // since, the pause of one unpaused since) is stale. Asking libvirt costs waiting for the call that
        // caused the report, but trusting late pause reports flips a running qube back to Paused.
        if self.hv_state(&ev.uuid) != Some(state) {
            return;
        }
        self.transition_locked(ev.uuid, state);
    }

    /// Records a power state and fires the events of the transition if this is the first to see it.
    pub(crate) fn transition(&self, uuid: Uuid, state: PowerState) {
        let _guard = self.transitions.lock();
        self.transition_locked(uuid, state);
    }

    /// Lends this thread's cause (if any) to the events of qube `uuid`'s transitions until the loan is
    /// dropped, whichever thread fires them.
    fn lend_cause(&self, uuid: Uuid) -> CauseLoan<'_> {
        if let Some(cause) = crate::events::current_cause() {
            self.lent_causes.lock().insert(uuid, cause);
        }
        CauseLoan { service: self, uuid }
    }

    /// `transition` with `transitions` held.
    fn transition_locked(&self, uuid: Uuid, state: PowerState) {
        let cause = crate::events::current_cause().or_else(|| self.lent_causes.lock().get(&uuid).cloned());
        crate::events::with_cause(cause, || self.transition_events(uuid, state));
    }

    fn transition_events(&self, uuid: Uuid, state: PowerState) {
        let Some(d) = self.current().domain_by_uuid(&uuid).cloned() else { return };
        let previous = self.runtime.set_state(uuid, state);
        if previous == state {
            return;
        }
        self.bump();
        match (previous, state) {
            (p, PowerState::Halted) if p.is_active() => self.stopped(&d),
            (PowerState::Running, PowerState::Paused | PowerState::Suspended | PowerState::Saved) => {
                self.publish(Event::on(&d.name, "domain-paused"));
            }
            (PowerState::Paused, PowerState::Running) => self.publish(Event::on(&d.name, "domain-unpaused")),
            (PowerState::Suspended | PowerState::Saved, PowerState::Running) => {
                self.publish(Event::on(&d.name, "domain-resumed"));
            }
            _ => {}
        }
    }

    fn stopped(&self, d: &Domain) {
        if let Ok(plan) = self.plan_start(&d.name) {
            self.stop_volumes(&plan);
        }
        self.publish(Event::on(&d.name, "domain-stopped"));
        self.publish_runtime_props(&d.name);
        self.publish(Event::on(&d.name, "domain-shutdown"));
        let auto_cleanup = {
            let app = self.current();
            d.class == Class::DispVM && app.vm_prop(d, "auto_cleanup").as_deref() == Some("True")
        };
        if auto_cleanup {
            if let Err(e) = self.remove_vm(&Principal::AdminVm, &d.name) {
                tracing::warn!(vm = %d.name, error = %e, "cannot remove a disposable after shutdown");
            }
        }
    }

    /// After a daemon restart: qubes libvirt runs are shown running, those it holds saved as suspended;
    /// nothing is started, stopped or redefined.
    pub(crate) fn reconcile(&self) {
        let Some(hv) = &self.hv else { return };
        match hv.list() {
            Ok(domains) => {
                let app = self.current();
                for (uuid, info) in domains {
                    if info.state.is_active() && app.domain_by_uuid(&uuid).is_some_and(|d| !d.is_admin()) {
                        let running = Running {
                            state: info.state,
                            start_time: now(),
                            xid: info.id,
                            cdrom_drive: None,
                            console: console_address(hv.as_ref(), &uuid),
                        };
                        self.runtime.set_running(uuid, running);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list libvirt domains; every qube is shown halted"),
        }
        self.bump();
    }
}

/// A RemoteVM runs on its own host, so nothing here starts or stops it. Upstream refuses a start as
/// "not halted" (the qube counts as running) and the other calls as a plain qube error.
fn refuse_remote(d: &Domain, action: &str, kind: ErrorKind) -> Result<()> {
    if d.is_remote() {
        return Err(Error::new(kind, format!("Cannot {action} a RemoteVM.")));
    }
    Ok(())
}

/// Where a running domain's graphical console answers, as libvirt shows it now; one it cannot show is none.
fn console_address(hv: &dyn corral_core::hv::Hypervisor, uuid: &Uuid) -> Option<ConsoleAddress> {
    hv.console_address(uuid).unwrap_or_else(|e| {
        tracing::debug!(%uuid, error = %e, "cannot read the graphical console's address");
        None
    })
}

/// Where a start attaches a volume, as the hypervisor gets it.
fn disk_spec(v: &corral_core::volume::Volume, a: &corral_storage::Attachment) -> DiskSpec {
    DiskSpec {
        target: disk_target(&v.name),
        path: a.path.display().to_string(),
        format: a.format.to_string(),
        read_only: a.read_only,
        bootable: v.bootable,
    }
}

/// The guest device of a volume. KVM guests see virtio disks: the class's volumes are `vda`..`vdd` as Qubes
/// numbers its `xvd*` (`vdd` is the kernel's place); further disk `disk<N>` is the `N`th letter after, so its
/// target follows its number and does not move when another disk is added or removed.
pub(crate) fn disk_target(volume: &str) -> String {
    let letter = match volume {
        "root" => 0,
        "private" => 1,
        "volatile" => 2,
        other => 3 + corral_core::volume::extra_disk_index(other).unwrap_or(0),
    };
    // MAX_EXTRA_DISKS keeps the index within a..z.
    format!("vd{}", char::from(b'a' + letter.min(25) as u8))
}

#[cfg(test)]
mod tests {
    use super::disk_target;

    #[test]
    fn further_disks_follow_the_class_volumes_by_number() {
        let targets: Vec<String> =
            ["root", "private", "volatile", "disk1", "disk2", "disk22"].iter().map(|v| disk_target(v)).collect();
        assert_eq!(targets, ["vda", "vdb", "vdc", "vde", "vdf", "vdz"]);
    }
}
