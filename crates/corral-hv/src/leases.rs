//! A network's DHCP leases: `virNetworkGetDHCPLeases`, which the `virt` crate does not wrap. The array and
//! every lease in it are libvirt's allocations, copied into owned `DhcpLease`s and freed here.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use corral_core::hv::{DhcpLease, HvError};
use virt::network::Network;
use virt::sys;

use crate::err;

/// libvirt's `VIR_IP_ADDR_TYPE_IPV6`.
const IPV6: i32 = 1;

/// The leases of `network`, only those of `mac` when given.
pub(crate) fn of(network: &Network, mac: Option<&str>) -> Result<Vec<DhcpLease>, HvError> {
    let mac = mac.map(CString::new).transpose().map_err(|_| HvError::new("A MAC address cannot hold a NUL byte"))?;
    let mac_ptr = mac.as_ref().map_or(ptr::null(), |m| m.as_ptr());
    let mut leases: *mut sys::virNetworkDHCPLeasePtr = ptr::null_mut();
    // SAFETY: `network` holds a reference to a live network for the whole call, `mac_ptr` is null or a
    // NUL-terminated string that outlives the call, and `leases` is a valid place for libvirt to store the
    // array it allocates.
    let count = unsafe { sys::virNetworkGetDHCPLeases(network.as_ptr(), mac_ptr, &mut leases, 0) };
    if count < 0 {
        return Err(err("Cannot read the DHCP leases", virt::error::Error::last_error()));
    }
    let count = usize::try_from(count).unwrap_or(0);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: on success libvirt stored an array of `count` lease pointers in `leases`.
        let lease = unsafe { *leases.add(i) };
        if lease.is_null() {
            continue;
        }
        // SAFETY: `lease` points to a lease libvirt filled in; its strings are NUL-terminated or null.
        out.push(unsafe { copy(&*lease) });
        // SAFETY: each lease is freed once, after it was copied, and not used again.
        unsafe { sys::virNetworkDHCPLeaseFree(lease) };
    }
    if !leases.is_null() {
        // SAFETY: the array was allocated by libvirt with the C allocator, and its caller frees it once
        // (virNetworkGetDHCPLeases' documentation); its leases were freed above.
        unsafe { libc::free(leases.cast()) };
    }
    Ok(out)
}

/// # Safety
/// Every string pointer of `l` is null or points to a NUL-terminated string.
unsafe fn copy(l: &sys::virNetworkDHCPLease) -> DhcpLease {
    // SAFETY: passed on from the caller's promise about `l`'s strings.
    let text = |p: *mut c_char| unsafe { (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned()) };
    DhcpLease {
        interface: text(l.iface).unwrap_or_default(),
        expiry_time: l.expirytime,
        ipv6: l.type_ == IPV6,
        mac: text(l.mac),
        iaid: text(l.iaid),
        ip_address: text(l.ipaddr).unwrap_or_default(),
        prefix: l.prefix,
        hostname: text(l.hostname),
        client_id: text(l.clientid),
    }
}
