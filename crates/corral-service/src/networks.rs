//! The virtual networks of the daemon's libvirt connection: listed with their state, created from XML or
//! defined from a description, started with the host or not, and removed. The network qubes with a netvm
//! join (`default`) and any network a qube's card is on stay.

use corral_core::error::{Conflict, Invalid};
use corral_core::hv::{DhcpLease, HvError, NetworkControl, NetworkDef, NetworkDetails};
use corral_core::{Error, ErrorKind, Result};

use crate::{Principal, Service};

impl Service {
    /// Every virtual network of the connection with its state, by name.
    pub(crate) fn network_details(&self, caller: &Principal) -> Result<Vec<NetworkDetails>> {
        self.auth(caller, "corral.network.List", "", "dom0")?;
        self.inspecting(|i| i.network_details())
    }

    /// A network's XML with `virNetworkXMLFlags`.
    pub(crate) fn network_xml(&self, caller: &Principal, uuid: &uuid::Uuid, flags: u32) -> Result<String> {
        self.auth(caller, "corral.network.XML", "", "dom0")?;
        self.inspecting(|i| i.network_xml(uuid, flags))?.ok_or_else(|| network_not_found(uuid))
    }

    /// The DHCP leases a network handed out, only those of `mac` (`aa:bb:cc:dd:ee:ff`) when given.
    pub(crate) fn dhcp_leases(
        &self,
        caller: &Principal,
        uuid: &uuid::Uuid,
        mac: Option<&str>,
    ) -> Result<Vec<DhcpLease>> {
        self.auth(caller, "corral.network.DHCPLeases", "", "dom0")?;
        if let Some(mac) = mac {
            validate_mac(mac)?;
        }
        self.inspecting(|i| i.dhcp_leases(uuid, mac))?.ok_or_else(|| network_not_found(uuid))
    }

    /// Creates and starts a transient network from libvirt network XML (libvirt validates it).
    pub(crate) fn create_network(&self, caller: &Principal, xml: &str) -> Result<NetworkDetails> {
        self.auth(caller, "corral.network.Create", "", "dom0")?;
        self.controlling_networks(|c| c.create_network(xml))
    }

    /// Defines, starts and autostarts a persistent isolated network. Its name is checked here: libvirt
    /// takes almost any text.
    pub(crate) fn define_network(&self, caller: &Principal, def: &NetworkDef) -> Result<NetworkDetails> {
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
                ErrorKind::Conflict(Conflict::QubeExists),
                format!("A network named {} already exists", def.name),
            ));
        }
        self.controlling_networks(|c| c.define_network(def))
    }

    /// Stops and undefines a network: it is gone. The network qubes join (`default`) is refused.
    pub(crate) fn destroy_network(&self, caller: &Principal, uuid: &uuid::Uuid) -> Result<()> {
        self.auth(caller, "corral.network.Destroy", "", "dom0")?;
        let name = self.inspecting(|i| i.network_details())?.into_iter().find(|n| n.uuid == *uuid).map(|n| n.name);
        if name.as_deref() == Some(crate::lifecycle::QUBE_NETWORK) {
            return Err(Error::new(
                ErrorKind::Conflict(Conflict::QubeInUse),
                format!("Network {} is the one qubes with a netvm join", crate::lifecycle::QUBE_NETWORK),
            ));
        }
        if let Some(name) = &name {
            self.refuse_network_in_use(name)?;
        }
        self.controlling_networks(|c| c.destroy_network(uuid))?.then_some(()).ok_or_else(|| network_not_found(uuid))?;
        if let Some(name) = name {
            self.audit_global(caller, crate::audit::Happening::NetworkRemoved(name));
        }
        Ok(())
    }

    /// A network some qube's card is on stays: the qube would not start without it (as oVirt refuses to
    /// remove a network vms use).
    fn refuse_network_in_use(&self, name: &str) -> Result<()> {
        let users = Service::network_users(&self.current(), name);
        if users.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Conflict(Conflict::QubeInUse),
            format!("Network {name} is in use by the network card of {}", users.join(", ")),
        ))
    }

    /// Removes a network: undefines a persistent one, stops a transient one (see `NetworkControl`). A
    /// network a qube's card is on is refused.
    pub(crate) fn remove_network(&self, caller: &Principal, uuid: &uuid::Uuid) -> Result<()> {
        self.auth(caller, "corral.network.Remove", "", "dom0")?;
        let name = self.inspecting(|i| i.network_details())?.into_iter().find(|n| n.uuid == *uuid).map(|n| n.name);
        if let Some(name) = &name {
            self.refuse_network_in_use(name)?;
        }
        self.controlling_networks(|c| c.remove_network(uuid))?.then_some(()).ok_or_else(|| network_not_found(uuid))
    }

    /// Whether a (persistent) network starts with the hypervisor.
    pub(crate) fn set_network_autostart(&self, caller: &Principal, uuid: &uuid::Uuid, autostart: bool) -> Result<()> {
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
        let control = hv
            .network_control()
            .ok_or_else(|| Error::new(ErrorKind::NotImplemented, "The hypervisor has no virtual networks to manage"))?;
        f(control).map_err(Error::from)
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
            ErrorKind::Invalid(Invalid::Value),
            "Invalid MAC address: expected six hex pairs like 52:54:00:12:34:56",
        ))
    }
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
