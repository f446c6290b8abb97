//! What the virthttp door shows beyond the Admin API: libvirt's own view of a qube's domain (its XML, its
//! scheduler) and of the connection's virtual networks, asked through the daemon's one hypervisor
//! connection, so that what a client sees is what the daemon runs.
//!
//! A qube's XML is libvirt's while it is not halted (running, paused, suspended). A halted qube's is the
//! one its next start would define, rendered from the model: corrald defines a qube's domain in libvirt
//! only when it starts (as qubesd renders it from the qube's properties), so what libvirt may still hold
//! from an earlier run can be out of date, and a qube that never ran has none.

use corral_core::hv::{DhcpLease, HvError, Inspect, NetworkControl, NetworkDef, NetworkDetails, PowerState};
use corral_core::{Error, ErrorKind, Result};

use crate::{resolve_in, Principal, Service};

fn hv_error(e: HvError) -> Error {
    Error::new(ErrorKind::QubesVMError, e.message)
}

impl Service {
    /// Whether libvirt's view can be shown at all: a hypervisor connection that supports introspection.
    pub fn can_inspect_hypervisor(&self) -> bool {
        self.hv.as_ref().is_some_and(|hv| hv.inspect().is_some())
    }

    /// Runs `f` on the hypervisor's introspection. Blocks on libvirt.
    fn inspecting<T>(&self, f: impl FnOnce(&dyn Inspect) -> std::result::Result<T, HvError>) -> Result<T> {
        let hv = self.hv.as_ref().ok_or_else(|| self.no_hypervisor())?;
        let inspect = hv
            .inspect()
            .ok_or_else(|| Error::new(ErrorKind::QubesNotImplementedError, "The hypervisor cannot show its objects"))?;
        f(inspect).map_err(hv_error)
    }

    /// A qube's domain XML: libvirt's with `virDomainXMLFlags` unless the qube is halted, else the one its
    /// next start would define (the flags change nothing there: it is an inactive definition already).
    pub fn domain_xml_of(&self, caller: &Principal, vm: &str, flags: u32) -> Result<String> {
        self.auth(caller, "corral.vm.DomainXML", "", vm)?;
        let d = resolve_in(&self.current(), vm)?.clone();
        if self.power(&d) == PowerState::Halted {
            let mut spec = self.next_start_spec(&d.name)?;
            // As libvirt does, the console password is shown only in the secure XML.
            if flags & corral_core::hv::XML_SECURE == 0 {
                if let Some(g) = spec.graphics.as_mut() {
                    g.locked_password.clear();
                }
            }
            return self.inspecting(|i| Ok(i.spec_xml(&spec)));
        }
        self.inspecting(|i| i.domain_xml(&d.uuid, flags))?.ok_or_else(|| never_defined(&d.name))
    }

    /// The CPU scheduler libvirt runs a qube's domain with, and the number of its parameters.
    pub fn scheduler_type(&self, caller: &Principal, vm: &str) -> Result<(String, i32)> {
        self.auth(caller, "corral.vm.SchedulerType", "", vm)?;
        let d = resolve_in(&self.current(), vm)?.clone();
        self.inspecting(|i| i.scheduler_type(&d.uuid))?.ok_or_else(|| never_defined(&d.name))
    }

    /// Every virtual network of the connection with its state, by name.
    pub fn network_details(&self, caller: &Principal) -> Result<Vec<NetworkDetails>> {
        self.auth(caller, "corral.network.List", "", "dom0")?;
        self.inspecting(|i| i.network_details())
    }

    /// A network's XML with `virNetworkXMLFlags`.
    pub fn network_xml(&self, caller: &Principal, uuid: &uuid::Uuid, flags: u32) -> Result<String> {
        self.auth(caller, "corral.network.XML", "", "dom0")?;
        self.inspecting(|i| i.network_xml(uuid, flags))?.ok_or_else(|| network_not_found(uuid))
    }

    /// The DHCP leases a network handed out, only those of `mac` (`aa:bb:cc:dd:ee:ff`) when given.
    pub fn dhcp_leases(&self, caller: &Principal, uuid: &uuid::Uuid, mac: Option<&str>) -> Result<Vec<DhcpLease>> {
        self.auth(caller, "corral.network.DHCPLeases", "", "dom0")?;
        if let Some(mac) = mac {
            validate_mac(mac)?;
        }
        self.inspecting(|i| i.dhcp_leases(uuid, mac))?.ok_or_else(|| network_not_found(uuid))
    }

    /// Creates and starts a transient network from libvirt network XML (libvirt validates it).
    pub fn create_network(&self, caller: &Principal, xml: &str) -> Result<NetworkDetails> {
        self.auth(caller, "corral.network.Create", "", "dom0")?;
        self.controlling_networks(|c| c.create_network(xml))
    }

    /// Defines, starts and autostarts a persistent isolated network. Its name is checked here: libvirt
    /// takes almost any text.
    pub fn define_network(&self, caller: &Principal, def: &NetworkDef) -> Result<NetworkDetails> {
        self.auth(caller, "corral.network.Define", "", "dom0")?;
        let valid = !def.name.is_empty()
            && def.name.len() <= 64
            && !def.name.starts_with(['-', '.'])
            && def.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(Error::value(format!(
                "Invalid network name {:?}: up to 64 letters, digits, '-', '_' and '.', not first '-' or '.'",
                def.name
            )));
        }
        if def.mtu.is_some_and(|m| !(68..=65535).contains(&m)) {
            return Err(Error::value("Invalid MTU: from 68 to 65535"));
        }
        if self.inspecting(|i| i.network_details())?.iter().any(|n| n.name == def.name) {
            return Err(Error::new(
                ErrorKind::QubesVMAlreadyExistsError,
                format!("A network named {} already exists", def.name),
            ));
        }
        self.controlling_networks(|c| c.define_network(def))
    }

    /// Stops and undefines a network: it is gone. The network qubes join (`default`) is refused.
    pub fn destroy_network(&self, caller: &Principal, uuid: &uuid::Uuid) -> Result<()> {
        self.auth(caller, "corral.network.Destroy", "", "dom0")?;
        let name = self.inspecting(|i| i.network_details())?.into_iter().find(|n| n.uuid == *uuid).map(|n| n.name);
        if name.as_deref() == Some(crate::lifecycle::QUBE_NETWORK) {
            return Err(Error::new(
                ErrorKind::QubesVMInUseError,
                format!("Network {} is the one qubes with a netvm join", crate::lifecycle::QUBE_NETWORK),
            ));
        }
        if let Some(name) = &name {
            self.refuse_network_in_use(name)?;
        }
        self.controlling_networks(|c| c.destroy_network(uuid))?.then_some(()).ok_or_else(|| network_not_found(uuid))
    }

    /// A network some qube's card is on stays: the qube would not start without it (as oVirt refuses to
    /// remove a network vms use).
    fn refuse_network_in_use(&self, name: &str) -> Result<()> {
        let users = Service::network_users(&self.current(), name);
        if users.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::QubesVMInUseError,
            format!("Network {name} is in use by the network card of {}", users.join(", ")),
        ))
    }

    /// Removes a network: undefines a persistent one, stops a transient one (see `NetworkControl`). A
    /// network a qube's card is on is refused.
    pub fn remove_network(&self, caller: &Principal, uuid: &uuid::Uuid) -> Result<()> {
        self.auth(caller, "corral.network.Remove", "", "dom0")?;
        let name = self.inspecting(|i| i.network_details())?.into_iter().find(|n| n.uuid == *uuid).map(|n| n.name);
        if let Some(name) = &name {
            self.refuse_network_in_use(name)?;
        }
        self.controlling_networks(|c| c.remove_network(uuid))?.then_some(()).ok_or_else(|| network_not_found(uuid))
    }

    /// Whether a (persistent) network starts with the hypervisor.
    pub fn set_network_autostart(&self, caller: &Principal, uuid: &uuid::Uuid, autostart: bool) -> Result<()> {
        self.auth(caller, "corral.network.SetAutostart", "", "dom0")?;
        self.controlling_networks(|c| c.set_network_autostart(uuid, autostart))?
            .then_some(())
            .ok_or_else(|| network_not_found(uuid))
    }

    /// Runs `f` on the hypervisor's network control. Blocks on libvirt.
    fn controlling_networks<T>(
        &self,
        f: impl FnOnce(&dyn NetworkControl) -> std::result::Result<T, HvError>,
    ) -> Result<T> {
        let hv = self.hv.as_ref().ok_or_else(|| self.no_hypervisor())?;
        let control = hv.network_control().ok_or_else(|| {
            Error::new(ErrorKind::QubesNotImplementedError, "The hypervisor has no virtual networks to manage")
        })?;
        f(control).map_err(hv_error)
    }
}

fn network_not_found(uuid: &uuid::Uuid) -> Error {
    Error::generic(format!("Network not found: no network with matching uuid '{uuid}'"))
}

/// A MAC address as six colon-separated pairs of hex digits, the only form libvirt's leases carry.
fn validate_mac(mac: &str) -> Result<()> {
    let pairs: Vec<&str> = mac.split(':').collect();
    let ok = pairs.len() == 6 && pairs.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::QubesValueError,
            "Invalid MAC address: expected six hex pairs like 52:54:00:12:34:56",
        ))
    }
}

fn never_defined(vm: &str) -> Error {
    Error::new(
        ErrorKind::QubesVMNotStartedError,
        format!("Domain not found: '{vm}' has no libvirt domain yet; corrald defines it when the qube first starts"),
    )
}

#[cfg(test)]
mod tests {
    use super::validate_mac;

    #[test]
    fn macs_are_six_hex_pairs() {
        for good in ["52:54:00:12:34:56", "AA:bb:CC:dd:EE:ff"] {
            assert!(validate_mac(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:56:78",
            "52-54-00-12-34-56",
            "5:54:00:12:34:56a",
            "gg:54:00:12:34:56",
            "52:54:00:12:34:5\0",
        ] {
            assert!(validate_mac(bad).is_err(), "{bad:?}");
        }
    }
}
