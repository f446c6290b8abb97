//! Changes to the connection's virtual networks (create, remove, autostart), and the version of the
//! libvirt the connection talks to. Networks are read through `Inspect` (inspect.rs).

use corral_core::hv::{HvError, NetworkControl, NetworkDetails};
use uuid::Uuid;
use virt::connect::Connect;

use crate::inspect::details;
use crate::{err, Libvirt};

/// The version of the libvirt the connection talks to (the daemon's, not only the client library's).
pub(crate) fn library_version(conn: &Connect) -> Option<u32> {
    conn.lib_version().ok()
}

impl NetworkControl for Libvirt {
    fn create_network(&self, xml: &str) -> Result<NetworkDetails, HvError> {
        let n = self.conn.create_network_xml(xml).map_err(|e| err("Cannot create the network", e))?;
        details(&n)?.ok_or_else(|| HvError::new("libvirt created a network without a valid uuid"))
    }

    fn remove_network(&self, uuid: &Uuid) -> Result<bool, HvError> {
        let Some(n) = self.network(uuid)? else { return Ok(false) };
        let persistent = n.is_persistent().map_err(|e| err("Cannot read the network's persistence", e))?;
        if persistent {
            n.undefine().map_err(|e| err("Cannot undefine the network", e))?;
        } else {
            n.destroy().map_err(|e| err("Cannot stop the network", e))?;
        }
        Ok(true)
    }

    fn set_network_autostart(&self, uuid: &Uuid, autostart: bool) -> Result<bool, HvError> {
        let Some(n) = self.network(uuid)? else { return Ok(false) };
        n.set_autostart(autostart).map_err(|e| err("Cannot set the network's autostart", e))?;
        Ok(true)
    }
}
