//! What the connection knows beyond domains: its virtual networks and the library version. The doors
//! describe the host with these (the REST `/api/networks`, the host's `libvirt_version`).

use corral_core::hv::HvError;
use uuid::Uuid;
use virt::connect::Connect;

use crate::err;

/// Every network of the connection, active or not, as (name, uuid, active).
pub(crate) fn list(conn: &Connect) -> Result<Vec<(String, Uuid, bool)>, HvError> {
    let networks = conn.list_all_networks(0).map_err(|e| err("Cannot list networks", e))?;
    let mut out = Vec::with_capacity(networks.len());
    for n in networks {
        let name = n.name().map_err(|e| err("Cannot read a network's name", e))?;
        let uuid = n.uuid_string().map_err(|e| err("Cannot read a network's uuid", e))?;
        // libvirt always hands out well-formed uuids; a network that somehow has none is skipped, not fatal.
        let Ok(uuid) = Uuid::parse_str(&uuid) else { continue };
        let active = n.is_active().map_err(|e| err("Cannot read a network's state", e))?;
        out.push((name, uuid, active));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The version of the libvirt the connection talks to (the daemon's, not only the client library's).
pub(crate) fn library_version(conn: &Connect) -> Option<u32> {
    conn.lib_version().ok()
}
