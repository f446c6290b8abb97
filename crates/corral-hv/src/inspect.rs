//! libvirt's own view of the objects the connection holds, for the virthttp door: a domain's XML and
//! scheduler, and the virtual networks with their details and XML. Reads only: nothing here changes
//! libvirt's state.

use corral_core::hv::{DhcpLease, DomainSpec, HvError, Inspect, NetworkDetails};
use uuid::Uuid;
use virt::network::Network;

use crate::{err, Libvirt};

pub(crate) fn details(n: &Network) -> Result<Option<NetworkDetails>, HvError> {
    let name = n.name().map_err(|e| err("Cannot read a network's name", e))?;
    let uuid = n.uuid_string().map_err(|e| err("Cannot read a network's uuid", e))?;
    // libvirt hands out well-formed uuids; a network that somehow has none is left out, not fatal.
    let Ok(uuid) = Uuid::parse_str(&uuid) else { return Ok(None) };
    Ok(Some(NetworkDetails {
        name,
        uuid,
        active: n.is_active().map_err(|e| err("Cannot read a network's state", e))?,
        autostart: n.autostart().map_err(|e| err("Cannot read a network's autostart", e))?,
        persistent: n.is_persistent().map_err(|e| err("Cannot read a network's persistence", e))?,
        // An isolated or macvtap network has no bridge: that is an answer, not an error.
        bridge: n.bridge_name().ok(),
    }))
}

impl Libvirt {
    pub(crate) fn network(&self, uuid: &Uuid) -> Result<Option<Network>, HvError> {
        match self.conn.lookup_network_by_uuid_string(&uuid.to_string()) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.code().is(virt::error::ErrorNumber::NoNetwork) => Ok(None),
            Err(e) => Err(err("Cannot look up the network", e)),
        }
    }
}

impl Inspect for Libvirt {
    fn domain_xml(&self, uuid: &Uuid, flags: u32) -> Result<Option<String>, HvError> {
        let Some(d) = self.lookup(uuid)? else { return Ok(None) };
        d.xml_desc(flags).map(Some).map_err(|e| err("Cannot read the domain XML", e))
    }

    fn spec_xml(&self, spec: &DomainSpec) -> String {
        crate::xml::domain_xml(spec)
    }

    fn scheduler_type(&self, uuid: &Uuid) -> Result<Option<(String, i32)>, HvError> {
        let Some(d) = self.lookup(uuid)? else { return Ok(None) };
        d.scheduler_type().map(Some).map_err(|e| err("Cannot read the scheduler type", e))
    }

    fn network_details(&self) -> Result<Vec<NetworkDetails>, HvError> {
        let networks = self.conn.list_all_networks(0).map_err(|e| err("Cannot list networks", e))?;
        let mut out = Vec::with_capacity(networks.len());
        for n in &networks {
            out.extend(details(n)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn network_xml(&self, uuid: &Uuid, flags: u32) -> Result<Option<String>, HvError> {
        let Some(n) = self.network(uuid)? else { return Ok(None) };
        n.xml_desc(flags).map(Some).map_err(|e| err("Cannot read the network XML", e))
    }

    fn dhcp_leases(&self, uuid: &Uuid, mac: Option<&str>) -> Result<Option<Vec<DhcpLease>>, HvError> {
        let Some(n) = self.network(uuid)? else { return Ok(None) };
        crate::leases::of(&n, mac).map(Some)
    }
}
