//! The hypervisor port: what the service asks of a hypervisor and what it hears back. `corral-hv`
//! implements it over libvirt; the service never sees libvirt types.

use std::sync::mpsc::Receiver;

use uuid::Uuid;

/// Power states as the Admin API names them (upstream's libvirt mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerState {
    Halted,
    Transient,
    Running,
    Paused,
    /// Suspended by the guest itself (ACPI S3), still in the hypervisor's memory.
    Suspended,
    /// Saved to disk and stopped (libvirt's managed save): no process, no memory; the next start resumes
    /// it. The Admin API knows no such state and calls it `Suspended`.
    Saved,
    Halting,
    Dying,
    Crashed,
    NA,
}

impl PowerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::Halted => "Halted",
            PowerState::Transient => "Transient",
            PowerState::Running => "Running",
            PowerState::Paused => "Paused",
            PowerState::Suspended | PowerState::Saved => "Suspended",
            PowerState::Halting => "Halting",
            PowerState::Dying => "Dying",
            PowerState::Crashed => "Crashed",
            PowerState::NA => "NA",
        }
    }

    /// Not halted: a paused, suspended or saved qube still counts as running, as its disks are in use
    /// and its state is not to be changed under it.
    pub fn is_active(self) -> bool {
        !matches!(self, PowerState::Halted | PowerState::NA)
    }

    /// The domain has a process (libvirt's "active"): running, paused, suspended in memory, stopping.
    /// A saved qube is active but not live.
    pub fn is_live(self) -> bool {
        self.is_active() && self != PowerState::Saved
    }
}

/// A request to change a qube's power state, by what it does (each door has its own name for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerAction {
    Start,
    /// Power off at once (kill, destroy).
    Stop,
    Shutdown,
    Reboot,
    Pause,
    Unpause,
    /// Save to disk and stop (managed save).
    Save,
    Resume,
}

/// Why a power action was refused: the qube's state does not fit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateConflict {
    pub action: PowerAction,
    pub state: PowerState,
}

/// A running domain's figures, as libvirt reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainInfo {
    pub state: PowerState,
    pub memory_kib: u64,
    pub max_memory_kib: u64,
    pub cpu_time_ns: u64,
    pub vcpus: u32,
    /// The hypervisor's id of a running domain (`xid`).
    pub id: Option<u32>,
}

impl DomainInfo {
    pub fn halted() -> Self {
        DomainInfo { state: PowerState::Halted, memory_kib: 0, max_memory_kib: 0, cpu_time_ns: 0, vcpus: 0, id: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    /// Guest device name: `xvda`-like names are Xen's; KVM guests see virtio `vda`, `vdb`, ...
    pub target: String,
    pub path: String,
    /// `raw` or `qcow2`.
    pub format: String,
    pub read_only: bool,
    /// The disk to boot from when the domain boots without a kernel and without an asked boot order.
    pub bootable: bool,
}

/// Everything needed to describe one qube to the hypervisor, computed from the model at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpec {
    pub name: String,
    pub uuid: Uuid,
    /// libvirt's domain type: `kvm`, `qemu` (TCG) or `test`.
    pub domain_type: String,
    pub memory_mib: u64,
    pub max_memory_mib: u64,
    pub vcpus: u32,
    /// Qubes' `virt_mode`; KVM guests are always HVM, the value picks machine details.
    pub virt_mode: String,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub kernel_cmdline: String,
    pub disks: Vec<DiskSpec>,
    /// A network interface when the qube has a netvm.
    pub network: Option<NetworkSpec>,
    /// Where the serial console is logged as well as offered as a pty.
    pub console_log: Option<String>,
    /// An ISO image in a read-only cdrom drive (which then stays for media changes while running).
    pub cdrom: Option<String>,
    /// Without a kernel: the devices to boot from, in order (libvirt's `hd`, `cdrom`, `network`); empty is
    /// the disk.
    pub boot: Vec<BootDevice>,
    /// The graphical console, when the qube has one.
    pub graphics: Option<GraphicsSpec>,
}

/// libvirt's `VIR_DOMAIN_XML_SECURE`: domain XML with its secrets (console passwords).
pub const XML_SECURE: u32 = 1;

/// A qube's graphical console: a VNC server on a port the hypervisor picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicsSpec {
    /// The host address the server listens on.
    pub listen: std::net::IpAddr,
    /// The password the domain starts with. It is defined as already expired, so nobody can log in until a
    /// ticket sets a password of its own; being unknown as well, it is no way in should the expiry be lost.
    pub locked_password: String,
}

/// Where a running domain's graphical console answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleAddress {
    /// The host address the server listens on, as the hypervisor reports it.
    pub address: String,
    pub port: u16,
}

/// A device a domain without a kernel boots from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootDevice {
    Disk,
    Cdrom,
    Network,
}

impl BootDevice {
    /// RHEV's names (`hd`, `cdrom`, `network`), any case.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "hd" => Self::Disk,
            "cdrom" => Self::Cdrom,
            "network" => Self::Network,
            _ => return None,
        })
    }

    /// libvirt's `<boot dev>`.
    pub fn libvirt_name(self) -> &'static str {
        match self {
            Self::Disk => "hd",
            Self::Cdrom => "cdrom",
            Self::Network => "network",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    pub mac: String,
    /// The libvirt network the interface joins.
    pub network: String,
}

/// A lifecycle change libvirt reported, whoever caused it (a call, the guest itself, a QEMU crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleEvent {
    Started,
    Paused,
    Resumed,
    /// The guest began shutting down (ACPI accepted).
    ShuttingDown,
    /// The domain stopped; `crashed` when QEMU died or the guest crashed.
    Stopped {
        crashed: bool,
    },
    PmSuspended,
    /// The domain was saved to disk and stopped (managed save).
    Saved,
    Crashed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HvEvent {
    pub uuid: Uuid,
    pub event: LifecycleEvent,
}

/// A failure of the hypervisor, by meaning; `message` is the hypervisor's own words with what was being done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HvError {
    pub kind: HvErrorKind,
    pub message: String,
}

/// What kind of hypervisor failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HvErrorKind {
    /// The hypervisor does not know the domain or network.
    NotFound,
    /// It refused an argument or a definition.
    Invalid,
    /// The operation does not fit the object's state.
    State,
    /// The hypervisor cannot do this at all.
    Unsupported,
    /// The hypervisor could not be reached, or did not answer in time.
    Unreachable,
    /// Anything else.
    Failed,
}

impl HvError {
    pub fn new(message: impl Into<String>) -> Self {
        HvError { kind: HvErrorKind::Failed, message: message.into() }
    }

    pub fn of(kind: HvErrorKind, message: impl Into<String>) -> Self {
        HvError { kind, message: message.into() }
    }
}

/// A hypervisor failure as a request's error: qubesd reports whatever libvirt refuses as `QubesVMError`, so
/// every kind is a failure acting on the qube.
impl From<HvError> for crate::Error {
    fn from(e: HvError) -> Self {
        crate::Error::new(crate::ErrorKind::Failed(crate::error::Failure::Qube), e.message)
    }
}

impl std::fmt::Display for HvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HvError {}

/// Blocking calls: the service runs them off the async executor and never under the model lock.
pub trait Hypervisor: Send + Sync {
    fn uri(&self) -> String;
    fn domain_type(&self) -> String;
    /// Defines (replacing an older definition) and boots the domain afresh: a saved image is discarded.
    fn start(&self, spec: &DomainSpec) -> Result<(), HvError>;
    /// Asks the guest to power off (ACPI); returns at once.
    fn shutdown(&self, uuid: &Uuid) -> Result<(), HvError>;
    /// Powers off a running domain at once, or discards a saved one's image.
    fn kill(&self, uuid: &Uuid) -> Result<(), HvError>;
    fn pause(&self, uuid: &Uuid) -> Result<(), HvError>;
    fn unpause(&self, uuid: &Uuid) -> Result<(), HvError>;
    fn pm_suspend(&self, uuid: &Uuid) -> Result<(), HvError>;
    fn pm_wakeup(&self, uuid: &Uuid) -> Result<(), HvError>;
    /// Saves the running domain's memory to disk and stops it; it stays defined with that image.
    fn save(&self, uuid: &Uuid) -> Result<(), HvError>;
    /// Starts a saved domain from its image, without redefining it: its disks are those it was saved with.
    fn restore(&self, uuid: &Uuid) -> Result<(), HvError>;
    /// Drops the definition of a halted domain, with any saved image: its qube is gone, and a qube made later
    /// under the same name defines its own. A domain never defined is nothing to drop.
    fn forget(&self, uuid: &Uuid) -> Result<(), HvError> {
        let _ = uuid;
        Ok(())
    }
    /// The domain's state; `Halted` when libvirt does not know it.
    fn info(&self, uuid: &Uuid) -> Result<DomainInfo, HvError>;
    /// Every domain libvirt knows, for reconciling after a daemon restart.
    fn list(&self) -> Result<Vec<(Uuid, DomainInfo)>, HvError>;
    /// The pty of the serial console of a running domain.
    fn console_pty(&self, uuid: &Uuid) -> Result<Option<String>, HvError>;
    fn set_memory(&self, uuid: &Uuid, mib: u64) -> Result<(), HvError>;
    fn set_vcpus(&self, uuid: &Uuid, vcpus: u32) -> Result<(), HvError>;
    /// Puts the ISO image `iso` in the cdrom drive of the running domain, or ejects it (`None`). Only a
    /// domain started with a cdrom has the drive.
    fn change_media(&self, uuid: &Uuid, iso: Option<&str>) -> Result<(), HvError> {
        let _ = (uuid, iso);
        Err(HvError::new("This hypervisor cannot change media"))
    }
    /// Where the running domain's graphical console answers; `None` when it has none or no port yet.
    fn console_address(&self, uuid: &Uuid) -> Result<Option<ConsoleAddress>, HvError> {
        let _ = uuid;
        Ok(None)
    }
    /// Sets the password of the running domain's graphical console, valid until `valid_to` (seconds since
    /// the epoch); it replaces the one before. A VNC console checks only the first 8 characters, as VNC
    /// clients send no more.
    fn set_console_password(&self, uuid: &Uuid, password: &str, valid_to: u64) -> Result<(), HvError> {
        let _ = (uuid, password, valid_to);
        Err(HvError::new("This hypervisor cannot set console passwords"))
    }
    /// Plugs network card `net` into the running domain (its live definition: the next start builds its own).
    fn attach_interface(&self, uuid: &Uuid, net: &NetworkSpec) -> Result<(), HvError> {
        let _ = (uuid, net);
        Err(HvError::new("This hypervisor cannot hot-plug network cards"))
    }
    /// Unplugs the running domain's network card `net`.
    fn detach_interface(&self, uuid: &Uuid, net: &NetworkSpec) -> Result<(), HvError> {
        let _ = (uuid, net);
        Err(HvError::new("This hypervisor cannot hot-unplug network cards"))
    }
    /// What a running domain's disk `target` (`xvda`…) has read and written since it started.
    fn block_stats(&self, uuid: &Uuid, target: &str) -> Result<BlockStats, HvError> {
        let _ = (uuid, target);
        Err(HvError::new("This hypervisor keeps no disk counters"))
    }
    /// What a running domain's network interface with MAC `mac` has moved since it started.
    fn interface_stats(&self, uuid: &Uuid, mac: &str) -> Result<InterfaceStats, HvError> {
        let _ = (uuid, mac);
        Err(HvError::new("This hypervisor keeps no interface counters"))
    }
    /// Presses `keys` (codes of libvirt's keycode set `codeset`) together for `hold_ms`, as a keyboard
    /// attached to the running domain would.
    fn send_keys(&self, uuid: &Uuid, codeset: KeycodeSet, hold_ms: u32, keys: &[u32]) -> Result<(), HvError> {
        let _ = (uuid, codeset, hold_ms, keys);
        Err(HvError::new("This hypervisor cannot send key presses"))
    }
    /// Lifecycle events; call once.
    fn events(&self) -> Option<Receiver<HvEvent>>;
    /// The hypervisor's own view of its objects, where it can show one (libvirt can).
    fn inspect(&self) -> Option<&dyn Inspect> {
        None
    }
    /// Changes to the hypervisor's own virtual networks, where it has them (libvirt does).
    fn network_control(&self) -> Option<&dyn NetworkControl> {
        None
    }
    /// The connection's virtual networks as (name, uuid, active); none where the hypervisor has no such notion.
    fn networks(&self) -> Result<Vec<(String, Uuid, bool)>, HvError> {
        Ok(Vec::new())
    }
    /// The hypervisor library's version as `major * 1_000_000 + minor * 1_000 + release`, when known.
    fn library_version(&self) -> Option<u32> {
        None
    }
}

/// A virtual network as the hypervisor describes it (libvirt's `virsh net-info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDetails {
    pub name: String,
    pub uuid: Uuid,
    pub active: bool,
    pub autostart: bool,
    pub persistent: bool,
    /// `None` when the network has no bridge device.
    pub bridge: Option<String>,
}

/// Read-only questions about the hypervisor's own objects, for a door that shows libvirt's view of them
/// (virthttp). `Ok(None)`: the hypervisor does not know the object.
pub trait Inspect {
    /// The domain's XML, with libvirt's `virDomainXMLFlags`.
    fn domain_xml(&self, uuid: &Uuid, flags: u32) -> Result<Option<String>, HvError>;
    /// The XML a start of `spec` would define.
    fn spec_xml(&self, spec: &DomainSpec) -> String;
    /// The domain's CPU scheduler and the number of its parameters.
    fn scheduler_type(&self, uuid: &Uuid) -> Result<Option<(String, i32)>, HvError>;
    /// Every network of the connection, by name.
    fn network_details(&self) -> Result<Vec<NetworkDetails>, HvError>;
    /// The network's XML, with libvirt's `virNetworkXMLFlags`.
    fn network_xml(&self, uuid: &Uuid, flags: u32) -> Result<Option<String>, HvError>;
    /// The DHCP leases the network handed out, only those of `mac` when given.
    fn dhcp_leases(&self, uuid: &Uuid, mac: Option<&str>) -> Result<Option<Vec<DhcpLease>>, HvError>;
}

/// One DHCP lease of a virtual network (libvirt's `virNetworkDHCPLease`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpLease {
    /// The network's interface (its bridge) the lease was given on.
    pub interface: String,
    /// Seconds since the epoch.
    pub expiry_time: i64,
    pub ipv6: bool,
    pub mac: Option<String>,
    /// IPv6 only.
    pub iaid: Option<String>,
    pub ip_address: String,
    pub prefix: u32,
    pub hostname: Option<String>,
    pub client_id: Option<String>,
}

/// A new isolated virtual network (a bridge of its own, no forwarding): what RHEV's network resource asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDef {
    pub name: String,
    /// Spanning tree protocol on the bridge.
    pub stp: bool,
    pub mtu: Option<u32>,
    /// The host's address on the network and its netmask.
    pub address: Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)>,
}

/// Changes to the hypervisor's virtual networks, for a door that manages libvirt's networks as libvirt
/// does (virthttp). Qubes do not depend on these calls: a qube with a netvm joins the `default` network.
/// `Ok(None)`/`Ok(false)`: the hypervisor does not know the network.
pub trait NetworkControl {
    /// Creates and starts a transient network from its XML.
    fn create_network(&self, xml: &str) -> Result<NetworkDetails, HvError>;
    /// Defines a persistent network, starts it and has it start with the hypervisor; a network that
    /// cannot start is undefined again.
    fn define_network(&self, def: &NetworkDef) -> Result<NetworkDetails, HvError>;
    /// Stops a network if it runs and undefines it if it is persistent: it is gone.
    fn destroy_network(&self, uuid: &Uuid) -> Result<bool, HvError>;
    /// Removes a network's definition: a persistent network is undefined (if it runs, it goes on as a
    /// transient one until stopped, as with `virsh net-undefine`); a transient one has nothing to undefine
    /// but its running instance, so it is stopped, which ends it.
    fn remove_network(&self, uuid: &Uuid) -> Result<bool, HvError>;
    /// Whether the network starts with the hypervisor; only a persistent network can.
    fn set_network_autostart(&self, uuid: &Uuid, autostart: bool) -> Result<bool, HvError>;
}

/// The keycode sets a key press can be given in, as libvirt numbers them (`virKeycodeSet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeycodeSet {
    Linux = 0,
    Xt = 1,
    Atset1 = 2,
    Atset2 = 3,
    Atset3 = 4,
    Osx = 5,
    XtKbd = 6,
    Usb = 7,
    Win32 = 8,
    Qnum = 9,
}

impl KeycodeSet {
    /// libvirt's names for the sets (`virsh send-key --codeset`), any case.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "linux" => Self::Linux,
            "xt" => Self::Xt,
            "atset1" => Self::Atset1,
            "atset2" => Self::Atset2,
            "atset3" => Self::Atset3,
            "osx" => Self::Osx,
            "xt_kbd" => Self::XtKbd,
            "usb" => Self::Usb,
            "win32" => Self::Win32,
            "qnum" => Self::Qnum,
            _ => return None,
        })
    }
}

/// libvirt presses at most this many keys at once (`VIR_DOMAIN_SEND_KEY_MAX_KEYS`).
pub const MAX_KEYS_AT_ONCE: usize = 16;

/// A disk's counters since the domain started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockStats {
    pub read_bytes: u64,
    pub write_bytes: u64,
}

/// A network interface's counters since the domain started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_qube_is_suspended_to_the_admin_api_and_not_halted_but_has_no_process() {
        assert_eq!(PowerState::Saved.as_str(), "Suspended");
        assert!(PowerState::Saved.is_active());
        assert!(!PowerState::Saved.is_live());
        assert!(PowerState::Paused.is_live() && PowerState::Suspended.is_live());
        assert!(!PowerState::Halted.is_live());
    }
}
