//! libvirt lifecycle events on the bench's own libvirt connection: the baseline for `events`, i.e. when
//! libvirtd's event reaches a plain libvirt client, next to when corrald's subscribers see it. The `virt`
//! crate has no safe wrapper for `virConnectDomainEventRegisterAny`, so this calls it through `virt::sys`,
//! as `corral-hv`'s `events.rs` does.

use std::ffi::{c_int, c_void};
use std::sync::mpsc::Sender;
use std::sync::Once;
use std::time::Instant;

use anyhow::{bail, Result};
use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

use crate::guest::Msg;

static EVENT_LOOP: Once = Once::new();

/// Registers libvirt's default event loop and runs it on a thread of its own. Must precede the opening of
/// the connection whose events are wanted.
pub(crate) fn start_event_loop() -> Result<()> {
    let mut result = Ok(());
    EVENT_LOOP.call_once(|| {
        if let Err(e) = virt::event::event_register_default_impl() {
            result = Err(anyhow::anyhow!("cannot register libvirt's event loop: {e}"));
            return;
        }
        let spawned = std::thread::Builder::new().name("libvirt-events".into()).spawn(|| loop {
            if virt::event::event_run_default_impl().is_err() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        if let Err(e) = spawned {
            result = Err(anyhow::anyhow!("cannot start the libvirt event thread: {e}"));
        }
    });
    result
}

unsafe extern "C" fn on_lifecycle(
    _conn: sys::virConnectPtr,
    _dom: sys::virDomainPtr,
    event: c_int,
    _detail: c_int,
    opaque: *mut c_void,
) -> c_int {
    let at = Instant::now();
    let suspended = match u32::try_from(event) {
        Ok(sys::VIR_DOMAIN_EVENT_SUSPENDED) => true,
        Ok(sys::VIR_DOMAIN_EVENT_RESUMED) => false,
        _ => return 0,
    };
    // SAFETY: `opaque` is the `Box<Sender<Msg>>` leaked in `register`; libvirt keeps it alive until it
    // calls `free_sender`, which happens only after the last callback.
    let tx = unsafe { &*(opaque as *const Sender<Msg>) };
    let _ = tx.send(Msg::Libvirt { suspended, at });
    0
}

unsafe extern "C" fn free_sender(opaque: *mut c_void) {
    // SAFETY: called once by libvirt when the callback is deregistered, with the pointer we leaked.
    drop(unsafe { Box::from_raw(opaque as *mut Sender<Msg>) });
}

/// Sends `Msg::Libvirt` for every suspend/resume of `dom` seen on `conn`; returns the callback id.
pub(crate) fn register(conn: &Connect, dom: &Domain, tx: Sender<Msg>) -> Result<c_int> {
    let opaque = Box::into_raw(Box::new(tx)) as *mut c_void;
    let callback: sys::virConnectDomainEventCallback = Some(on_lifecycle);
    // SAFETY: libvirt calls lifecycle callbacks with the `virConnectDomainEventCallback` signature even
    // though the registration takes the generic type; the transmute only changes the declared type of a
    // function pointer of that exact signature, as libvirt's C macro VIR_DOMAIN_EVENT_CALLBACK does.
    let generic = unsafe {
        std::mem::transmute::<sys::virConnectDomainEventCallback, sys::virConnectDomainEventGenericCallback>(callback)
    };
    // SAFETY: `conn` and `dom` are live for the call (libvirt takes its own references); `opaque` stays
    // valid until `free_sender` runs.
    let id = unsafe {
        sys::virConnectDomainEventRegisterAny(
            conn.as_ptr(),
            dom.as_ptr(),
            sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE as c_int,
            generic,
            opaque,
            Some(free_sender),
        )
    };
    if id < 0 {
        // SAFETY: registration failed, so libvirt did not take ownership of `opaque`.
        drop(unsafe { Box::from_raw(opaque as *mut Sender<Msg>) });
        bail!("cannot register for libvirt domain events: {}", virt::error::Error::last_error());
    }
    Ok(id)
}

pub(crate) fn deregister(conn: &Connect, id: c_int) {
    // SAFETY: `conn` is the open connection `id` was registered on.
    let _ = unsafe { sys::virConnectDomainEventDeregisterAny(conn.as_ptr(), id) };
}
