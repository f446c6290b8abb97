//! The hypervisor side over libvirt: one connection shared by every call, domain XML from the model,
//! lifecycle calls, and libvirt's lifecycle events turned into `HvEvent`s.

#[allow(unsafe_code)]
mod events;
mod inspect;
#[allow(unsafe_code)]
mod leases;
mod networks;
mod xml;

use std::sync::mpsc::{channel, Receiver};
use std::sync::Mutex;

use corral_core::hv::{
    BlockStats, ConsoleAddress, DomainInfo, DomainSpec, HvError, HvErrorKind, HvEvent, Hypervisor, InterfaceStats,
    KeycodeSet, NetworkSpec, PowerState,
};
use uuid::Uuid;
use virt::connect::Connect;
use virt::domain::{Domain, DomainState};

pub use xml::domain_xml;

fn err(context: &str, e: virt::error::Error) -> HvError {
    HvError::of(error_kind(&e), format!("{context}: {}", e.message()))
}

/// What a libvirt error means, from its number.
fn error_kind(e: &virt::error::Error) -> HvErrorKind {
    use virt::error::ErrorNumber as N;
    let virt::enumutil::Enum::Known(code) = e.code() else { return HvErrorKind::Failed };
    match code {
        N::NoDomain | N::NoNetwork | N::NoDomainSnapshot => HvErrorKind::NotFound,
        N::InvalidArg | N::InvalidDomain | N::XmlError | N::XmlDetail => HvErrorKind::Invalid,
        N::OperationInvalid => HvErrorKind::State,
        N::NoSupport => HvErrorKind::Unsupported,
        N::NoConnect | N::Rpc | N::AuthFailed | N::OperationTimeout => HvErrorKind::Unreachable,
        _ => HvErrorKind::Failed,
    }
}

/// `kvm` only when hardware virtualization is really usable: a vmx/svm CPU flag and an openable
/// `/dev/kvm`. Nested/PVM hosts expose `/dev/kvm` without the flags, and guests hang there.
pub fn kvm_usable() -> bool {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has_flag = flags
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    has_flag && std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

/// The domain type for a connection: libvirt's test driver wants `test`; otherwise `kvm` when usable,
/// else `qemu` (TCG).
pub fn default_domain_type(uri: &str) -> String {
    if uri.starts_with("test:") || uri.starts_with("test+") {
        "test".into()
    } else if kvm_usable() {
        "kvm".into()
    } else {
        "qemu".into()
    }
}

pub struct Libvirt {
    conn: Connect,
    uri: String,
    domain_type: String,
    events: Mutex<Option<Receiver<HvEvent>>>,
    /// The XML this connection last defined for each domain.
    defined: Mutex<std::collections::HashMap<Uuid, String>>,
}

impl Libvirt {
    pub fn connect(uri: &str, domain_type: Option<&str>) -> Result<Libvirt, HvError> {
        events::start_event_loop();
        let conn = Connect::open(Some(uri)).map_err(|e| err(&format!("Cannot connect to {uri}"), e))?;
        let (tx, rx) = channel();
        events::register_lifecycle(&conn, tx)?;
        Ok(Libvirt {
            conn,
            uri: uri.to_string(),
            domain_type: domain_type.map(str::to_string).unwrap_or_else(|| default_domain_type(uri)),
            events: Mutex::new(Some(rx)),
            defined: Mutex::new(std::collections::HashMap::new()),
        })
    }

    fn lookup(&self, uuid: &Uuid) -> Result<Option<Domain>, HvError> {
        match self.conn.lookup_domain_by_uuid_string(&uuid.to_string()) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.code().is(virt::error::ErrorNumber::NoDomain) => Ok(None),
            Err(e) => Err(err("Cannot look up the domain", e)),
        }
    }

    fn domain(&self, uuid: &Uuid) -> Result<Domain, HvError> {
        self.lookup(uuid)?.ok_or_else(|| HvError::new("Domain is not defined in libvirt"))
    }
}

fn power_state(d: &Domain) -> Result<PowerState, HvError> {
    let (state, _) = d.state().map_err(|e| err("Cannot read the domain state", e))?;
    let active = d.is_active().map_err(|e| err("Cannot read the domain state", e))?;
    if !active {
        let saved = d.has_managed_save(0).map_err(|e| err("Cannot read the domain state", e))?;
        return Ok(if saved { PowerState::Saved } else { PowerState::Halted });
    }
    Ok(match state.known() {
        Some(DomainState::Paused) => PowerState::Paused,
        Some(DomainState::Shutdown) => PowerState::Halting,
        Some(DomainState::Shutoff) => PowerState::Dying,
        Some(DomainState::Crashed) => PowerState::Crashed,
        Some(DomainState::PMSuspended) => PowerState::Suspended,
        Some(DomainState::Running | DomainState::Blocked | DomainState::NoState) => PowerState::Running,
        None => PowerState::NA,
    })
}

fn info_of(d: &Domain) -> Result<DomainInfo, HvError> {
    let state = power_state(d)?;
    if !state.is_live() {
        // A saved domain has no process: nothing in memory, no cpu time, no id.
        return Ok(DomainInfo { state, ..DomainInfo::halted() });
    }
    let i = d.info().map_err(|e| err("Cannot read the domain info", e))?;
    Ok(DomainInfo {
        state,
        memory_kib: i.memory,
        max_memory_kib: i.max_mem,
        cpu_time_ns: i.cpu_time,
        vcpus: i.nr_virt_cpu,
        id: d.id(),
    })
}

impl Hypervisor for Libvirt {
    fn uri(&self) -> String {
        self.uri.clone()
    }

    fn domain_type(&self) -> String {
        self.domain_type.clone()
    }

    fn start(&self, spec: &DomainSpec) -> Result<(), HvError> {
        let xml = domain_xml(spec);
        // Redefining an unchanged domain costs a millisecond or two of every start; libvirt keeps the
        // definition, so it is only sent again when it differs from the one this connection defined.
        let unchanged = self.defined.lock().ok().is_some_and(|d| d.get(&spec.uuid) == Some(&xml));
        let existing = self.lookup(&spec.uuid)?;
        // A saved image left from before (the qube was saved, then found halted) would be restored with
        // disks this start replaced: a start boots afresh. (libvirt's test driver lacks the FORCE_BOOT flag
        // that does this in one call.)
        if let Some(d) = &existing {
            if d.has_managed_save(0).map_err(|e| err("Cannot read the domain state", e))? {
                d.managed_save_remove(0).map_err(|e| err("Cannot discard the saved state", e))?;
            }
        }
        let d = match existing {
            Some(d) if unchanged => d,
            _ => self.conn.define_domain_xml(&xml).map_err(|e| err("Cannot define the domain", e))?,
        };
        if let Ok(mut defined) = self.defined.lock() {
            defined.insert(spec.uuid, xml);
        }
        d.create().map_err(|e| err("Start failed", e))
    }

    fn shutdown(&self, uuid: &Uuid) -> Result<(), HvError> {
        self.domain(uuid)?.shutdown().map_err(|e| err("Shutdown failed", e))
    }

    fn kill(&self, uuid: &Uuid) -> Result<(), HvError> {
        let d = self.domain(uuid)?;
        if power_state(&d)? == PowerState::Saved {
            return d.managed_save_remove(0).map_err(|e| err("Cannot discard the saved state", e));
        }
        d.destroy().map_err(|e| err("Kill failed", e))
    }

    fn forget(&self, uuid: &Uuid) -> Result<(), HvError> {
        if let Ok(mut defined) = self.defined.lock() {
            defined.remove(uuid);
        }
        let Some(d) = self.lookup(uuid)? else { return Ok(()) };
        let flags = virt::sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | virt::sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA;
        d.undefine_flags(flags).map_err(|e| err("Cannot undefine the domain", e))
    }

    fn save(&self, uuid: &Uuid) -> Result<(), HvError> {
        self.domain(uuid)?.managed_save(0).map_err(|e| err("Suspend failed", e))
    }

    fn restore(&self, uuid: &Uuid) -> Result<(), HvError> {
        let d = self.domain(uuid)?;
        // Without its image, libvirt's create would boot the domain afresh on the old start's disks.
        if power_state(&d)? != PowerState::Saved {
            return Err(HvError::new("Resume failed: the domain has no saved state"));
        }
        d.create().map_err(|e| err("Resume failed", e))
    }

    fn pause(&self, uuid: &Uuid) -> Result<(), HvError> {
        self.domain(uuid)?.suspend().map_err(|e| err("Pause failed", e))
    }

    fn unpause(&self, uuid: &Uuid) -> Result<(), HvError> {
        self.domain(uuid)?.resume().map_err(|e| err("Unpause failed", e))
    }

    fn pm_suspend(&self, uuid: &Uuid) -> Result<(), HvError> {
        let d = self.domain(uuid)?;
        // SAFETY-free path: the safe wrapper lacks PM suspend, and a paused guest is the fallback upstream
        // uses too when the guest cannot sleep.
        d.suspend().map_err(|e| err("Suspend failed", e))
    }

    fn pm_wakeup(&self, uuid: &Uuid) -> Result<(), HvError> {
        let d = self.domain(uuid)?;
        match power_state(&d)? {
            PowerState::Suspended => d.pm_wakeup(0).map_err(|e| err("Resume failed", e)),
            _ => d.resume().map_err(|e| err("Resume failed", e)),
        }
    }

    fn info(&self, uuid: &Uuid) -> Result<DomainInfo, HvError> {
        match self.lookup(uuid)? {
            Some(d) => info_of(&d),
            None => Ok(DomainInfo::halted()),
        }
    }

    fn list(&self) -> Result<Vec<(Uuid, DomainInfo)>, HvError> {
        let domains = self.conn.list_all_domains(0).map_err(|e| err("Cannot list domains", e))?;
        let mut out = Vec::with_capacity(domains.len());
        for d in domains {
            let Ok(text) = d.uuid_string() else { continue };
            let Ok(uuid) = Uuid::parse_str(&text) else { continue };
            out.push((uuid, info_of(&d)?));
        }
        Ok(out)
    }

    fn console_pty(&self, uuid: &Uuid) -> Result<Option<String>, HvError> {
        let d = self.domain(uuid)?;
        let xml = d.xml_desc(0).map_err(|e| err("Cannot read the domain XML", e))?;
        Ok(console_path(&xml))
    }

    fn console_address(&self, uuid: &Uuid) -> Result<Option<ConsoleAddress>, HvError> {
        let xml = self.domain(uuid)?.xml_desc(0).map_err(|e| err("Cannot read the domain XML", e))?;
        Ok(vnc_server(&xml).and_then(|v| Some(ConsoleAddress { address: v.listen?, port: v.port? })))
    }

    fn set_console_password(&self, uuid: &Uuid, password: &str, valid_to: u64) -> Result<(), HvError> {
        let d = self.domain(uuid)?;
        let live = d.xml_desc(0).map_err(|e| err("Cannot read the domain XML", e))?;
        let vnc = vnc_server(&live).ok_or_else(|| HvError::new("The domain has no graphical console"))?;
        let listen = vnc.listen.ok_or_else(|| HvError::new("The graphical console listens on no address"))?;
        d.update_device_flags(
            &xml::graphics_password_xml(&listen, password, valid_to),
            virt::sys::VIR_DOMAIN_AFFECT_LIVE,
        )
        .map_err(|e| err("Cannot set the console password", e))
    }

    fn set_memory(&self, uuid: &Uuid, mib: u64) -> Result<(), HvError> {
        let kib = mib
            .checked_mul(1024)
            .ok_or_else(|| HvError::new(format!("Cannot change memory: {mib} MiB is too large")))?;
        self.domain(uuid)?.set_memory(kib).map_err(|e| err("Cannot change memory", e))
    }

    fn set_vcpus(&self, uuid: &Uuid, vcpus: u32) -> Result<(), HvError> {
        self.domain(uuid)?.set_vcpus(vcpus).map_err(|e| err("Cannot change vcpus", e))
    }

    fn block_stats(&self, uuid: &Uuid, target: &str) -> Result<BlockStats, HvError> {
        let s = self.domain(uuid)?.block_stats(target).map_err(|e| err("Cannot read the disk counters", e))?;
        // libvirt reports -1 for a counter it does not keep.
        let count = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(BlockStats { read_bytes: count(s.rd_bytes), write_bytes: count(s.wr_bytes) })
    }

    fn interface_stats(&self, uuid: &Uuid, mac: &str) -> Result<InterfaceStats, HvError> {
        let s = self.domain(uuid)?.interface_stats(mac).map_err(|e| err("Cannot read the interface counters", e))?;
        let count = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(InterfaceStats {
            rx_bytes: count(s.rx_bytes),
            tx_bytes: count(s.tx_bytes),
            rx_errors: count(s.rx_errs),
            tx_errors: count(s.tx_errs),
        })
    }

    fn change_media(&self, uuid: &Uuid, iso: Option<&str>) -> Result<(), HvError> {
        let xml = xml::cdrom_xml(iso);
        self.domain(uuid)?
            .update_device_flags(&xml, virt::sys::VIR_DOMAIN_AFFECT_LIVE)
            .map_err(|e| err("Cannot change the cdrom", e))
    }

    fn attach_interface(&self, uuid: &Uuid, net: &NetworkSpec) -> Result<(), HvError> {
        self.domain(uuid)?
            .attach_device_flags(&xml::interface_xml(net), virt::sys::VIR_DOMAIN_AFFECT_LIVE)
            .map_err(|e| err("Cannot plug the network card", e))
    }

    fn detach_interface(&self, uuid: &Uuid, net: &NetworkSpec) -> Result<(), HvError> {
        self.domain(uuid)?
            .detach_device_flags(&xml::interface_xml(net), virt::sys::VIR_DOMAIN_AFFECT_LIVE)
            .map_err(|e| err("Cannot unplug the network card", e))
    }

    fn send_keys(&self, uuid: &Uuid, codeset: KeycodeSet, hold_ms: u32, keys: &[u32]) -> Result<(), HvError> {
        let mut keys = keys.to_vec();
        let count = i32::try_from(keys.len()).map_err(|_| HvError::new("Too many keys at once"))?;
        // libvirt reads `count` codes from the buffer and keeps no pointer to it after the call.
        self.domain(uuid)?
            .send_key(codeset as u32, hold_ms, keys.as_mut_ptr(), count, 0)
            .map_err(|e| err("Cannot send the keys", e))
    }

    fn events(&self) -> Option<Receiver<HvEvent>> {
        self.events.lock().ok().and_then(|mut e| e.take())
    }

    fn inspect(&self) -> Option<&dyn corral_core::hv::Inspect> {
        Some(self)
    }

    fn network_control(&self) -> Option<&dyn corral_core::hv::NetworkControl> {
        Some(self)
    }

    fn networks(&self) -> Result<Vec<(String, Uuid, bool)>, HvError> {
        let details = corral_core::hv::Inspect::network_details(self)?;
        Ok(details.into_iter().map(|n| (n.name, n.uuid, n.active)).collect())
    }

    fn library_version(&self) -> Option<u32> {
        networks::library_version(&self.conn)
    }
}

/// The pty libvirt allocated for the serial console, from the live domain XML.
fn console_path(xml: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut in_console = false;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e)) if e.name().as_ref() == b"console" => {
                in_console = true;
                if let Some(p) = e.try_get_attribute("tty").ok().flatten() {
                    return Some(String::from_utf8_lossy(&p.value).into_owned());
                }
            }
            Ok(quick_xml::events::Event::Empty(e) | quick_xml::events::Event::Start(e))
                if in_console && e.name().as_ref() == b"source" =>
            {
                let path = e.try_get_attribute("path").ok().flatten()?;
                return Some(String::from_utf8_lossy(&path.value).into_owned());
            }
            Ok(quick_xml::events::Event::End(e)) if e.name().as_ref() == b"console" => in_console = false,
            Ok(quick_xml::events::Event::Eof) | Err(_) => return None,
            _ => {}
        }
    }
}

/// A domain's VNC server as its live XML shows it.
#[derive(Debug, PartialEq, Eq)]
struct VncServer {
    listen: Option<String>,
    /// `None` until the server has a port (libvirt shows `-1` before one is picked, and the test driver
    /// never picks one).
    port: Option<u16>,
}

/// The first `<graphics type='vnc'>` of a domain XML.
fn vnc_server(xml: &str) -> Option<VncServer> {
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e))
                if e.name().as_ref() == b"graphics" =>
            {
                let attr = |name: &str| {
                    e.try_get_attribute(name)
                        .ok()
                        .flatten()
                        .and_then(|a| a.unescape_value().ok())
                        .map(|v| v.into_owned())
                };
                if attr("type").as_deref() != Some("vnc") {
                    continue;
                }
                let port = attr("port").and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0);
                return Some(VncServer { listen: attr("listen"), port });
            }
            Ok(quick_xml::events::Event::Eof) | Err(_) => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vnc_server_comes_from_the_live_xml() {
        let live = "<domain><devices><graphics type='spice' port='5901' listen='10.0.0.1'/>\
                    <graphics type='vnc' port='5903' autoport='yes' listen='::1'>\
                    <listen type='address' address='::1'/></graphics></devices></domain>";
        assert_eq!(vnc_server(live), Some(VncServer { listen: Some("::1".into()), port: Some(5903) }));
        let test_driver = "<domain><devices><graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>\
                           </devices></domain>";
        assert_eq!(vnc_server(test_driver), Some(VncServer { listen: Some("127.0.0.1".into()), port: None }));
        assert_eq!(vnc_server("<domain><devices/></domain>"), None);
    }

    #[test]
    fn console_pty_comes_from_the_live_xml() {
        let xml = "<domain><devices><console type='pty' tty='/dev/pts/7'><source path='/dev/pts/7'/>\
                   <target type='serial' port='0'/></console></devices></domain>";
        assert_eq!(console_path(xml).as_deref(), Some("/dev/pts/7"));
        assert_eq!(console_path("<domain/>"), None);
    }
}
