//! libvirt's event loop and domain lifecycle callbacks. The `virt` crate has no safe wrapper for
//! `virConnectDomainEventRegisterAny`, so this is the one place that calls it through `virt::sys`.

use std::ffi::{c_int, c_void, CStr};
use std::sync::mpsc::Sender;
use std::sync::Once;

use corral_core::hv::{HvError, HvEvent, LifecycleEvent};
use virt::connect::Connect;
use virt::sys;

static EVENT_LOOP: Once = Once::new();

/// Registers libvirt's default event loop implementation and runs it on its own thread. libvirt requires
/// this before the connection whose events we want is opened.
pub fn start_event_loop() {
    EVENT_LOOP.call_once(|| {
        if let Err(e) = virt::event::event_register_default_impl() {
            tracing::error!(error = %e, "cannot register libvirt's event loop; lifecycle events are lost");
            return;
        }
        let spawned = std::thread::Builder::new().name("libvirt-events".into()).spawn(|| loop {
            if let Err(e) = virt::event::event_run_default_impl() {
                tracing::error!(error = %e, "libvirt event loop failed");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the libvirt event thread");
        }
    });
}

fn map(event: c_int, detail: c_int) -> Option<LifecycleEvent> {
    let event = u32::try_from(event).ok()?;
    let detail = u32::try_from(detail).ok()?;
    Some(match event {
        sys::VIR_DOMAIN_EVENT_STARTED => LifecycleEvent::Started,
        sys::VIR_DOMAIN_EVENT_SUSPENDED => LifecycleEvent::Paused,
        sys::VIR_DOMAIN_EVENT_RESUMED => LifecycleEvent::Resumed,
        sys::VIR_DOMAIN_EVENT_SHUTDOWN => LifecycleEvent::ShuttingDown,
        sys::VIR_DOMAIN_EVENT_STOPPED if detail == sys::VIR_DOMAIN_EVENT_STOPPED_SAVED => LifecycleEvent::Saved,
        sys::VIR_DOMAIN_EVENT_STOPPED => LifecycleEvent::Stopped {
            crashed: detail == sys::VIR_DOMAIN_EVENT_STOPPED_CRASHED || detail == sys::VIR_DOMAIN_EVENT_STOPPED_FAILED,
        },
        sys::VIR_DOMAIN_EVENT_PMSUSPENDED => LifecycleEvent::PmSuspended,
        sys::VIR_DOMAIN_EVENT_CRASHED => LifecycleEvent::Crashed,
        _ => return None,
    })
}

unsafe extern "C" fn on_lifecycle(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    event: c_int,
    detail: c_int,
    opaque: *mut c_void,
) -> c_int {
    let Some(event) = map(event, detail) else { return 0 };
    let mut buf = [0 as std::ffi::c_char; sys::VIR_UUID_STRING_BUFLEN as usize];
    // SAFETY: `dom` is valid for the duration of the callback (libvirt owns it) and `buf` has the
    // VIR_UUID_STRING_BUFLEN bytes the call writes, NUL included.
    if unsafe { sys::virDomainGetUUIDString(dom, buf.as_mut_ptr()) } != 0 {
        return 0;
    }
    // SAFETY: on success libvirt wrote a NUL-terminated string into `buf`.
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    let Ok(uuid) = uuid::Uuid::parse_str(&text) else { return 0 };
    // SAFETY: `opaque` is the `Box<Sender<HvEvent>>` leaked in `register_lifecycle`; libvirt keeps it
    // alive until it calls `free_sender`, which happens only after the last callback.
    let tx = unsafe { &*(opaque as *const Sender<HvEvent>) };
    let _ = tx.send(HvEvent { uuid, event });
    0
}

unsafe extern "C" fn free_sender(opaque: *mut c_void) {
    // SAFETY: called once by libvirt when the callback is deregistered, with the pointer we leaked.
    drop(unsafe { Box::from_raw(opaque as *mut Sender<HvEvent>) });
}

/// Delivers every domain lifecycle event of `conn` to `tx`, until the connection closes.
pub fn register_lifecycle(conn: &Connect, tx: Sender<HvEvent>) -> Result<(), HvError> {
    let opaque = Box::into_raw(Box::new(tx)) as *mut c_void;
    let callback: sys::virConnectDomainEventCallback = Some(on_lifecycle);
    // SAFETY: libvirt calls lifecycle callbacks with the `virConnectDomainEventCallback` signature even
    // though the registration takes the generic type; the transmute only changes the declared type of a
    // function pointer of that exact signature, as libvirt's own C macro VIR_DOMAIN_EVENT_CALLBACK does.
    let generic = unsafe {
        std::mem::transmute::<sys::virConnectDomainEventCallback, sys::virConnectDomainEventGenericCallback>(callback)
    };
    // SAFETY: `conn` is an open connection; `opaque` stays valid until `free_sender` runs.
    let id = unsafe {
        sys::virConnectDomainEventRegisterAny(
            conn.as_ptr(),
            std::ptr::null_mut(),
            sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE as c_int,
            generic,
            opaque,
            Some(free_sender),
        )
    };
    if id < 0 {
        // SAFETY: registration failed, so libvirt did not take ownership of `opaque`.
        drop(unsafe { Box::from_raw(opaque as *mut Sender<HvEvent>) });
        return Err(HvError::new(format!(
            "Cannot register for libvirt domain events: {}",
            virt::error::Error::last_error()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(e: u32, d: u32) -> Option<LifecycleEvent> {
        map(c_int::try_from(e).ok()?, c_int::try_from(d).ok()?)
    }

    #[test]
    fn a_stop_after_a_managed_save_is_a_save() {
        let saved = event(sys::VIR_DOMAIN_EVENT_STOPPED, sys::VIR_DOMAIN_EVENT_STOPPED_SAVED);
        let destroyed = event(sys::VIR_DOMAIN_EVENT_STOPPED, sys::VIR_DOMAIN_EVENT_STOPPED_DESTROYED);

        assert_eq!(saved, Some(LifecycleEvent::Saved));
        assert_eq!(destroyed, Some(LifecycleEvent::Stopped { crashed: false }));
    }
}
