//! The version of the libvirt the connection talks to, for the host's `libvirt_version`. Networks are
//! listed through `Inspect::network_details` (inspect.rs).

use virt::connect::Connect;

/// The version of the libvirt the connection talks to (the daemon's, not only the client library's).
pub(crate) fn library_version(conn: &Connect) -> Option<u32> {
    conn.lib_version().ok()
}
