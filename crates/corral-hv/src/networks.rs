//! Changes to the connection's virtual networks (create, remove, autostart), and the version of the
//! libvirt the connection talks to. Networks are read through `Inspect` (inspect.rs).

use corral_core::hv::{HvError, NetworkControl, NetworkDef, NetworkDetails};
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

    fn define_network(&self, def: &NetworkDef) -> Result<NetworkDetails, HvError> {
        let n = self
            .conn
            .define_network_xml(&crate::xml::network_xml(def))
            .map_err(|e| err("Cannot define the network", e))?;
        let started = n.create().and_then(|()| n.set_autostart(true));
        if let Err(e) = started {
            // A network that cannot run is not left behind half made.
            if let Err(undo) = n.undefine() {
                tracing::warn!(error = %undo, "cannot undefine a network that failed to start");
            }
            return Err(err("Cannot start the network", e));
        }
        details(&n)?.ok_or_else(|| HvError::new("libvirt defined a network without a valid uuid"))
    }

    fn destroy_network(&self, uuid: &Uuid) -> Result<bool, HvError> {
        let Some(n) = self.network(uuid)? else { return Ok(false) };
        if n.is_active().map_err(|e| err("Cannot read the network's state", e))? {
            n.destroy().map_err(|e| err("Cannot stop the network", e))?;
        }
        // A transient network is gone once stopped.
        if let Ok(true) = n.is_persistent() {
            n.undefine().map_err(|e| err("Cannot undefine the network", e))?;
        }
        Ok(true)
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
