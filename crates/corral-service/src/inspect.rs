//! libvirt's own view of a qube's domain (its XML, its scheduler), asked through the daemon's one hypervisor
//! connection, so that what a client sees is what the daemon runs.
//!
//! A qube's XML is libvirt's while it is not halted (running, paused, suspended). A halted qube's is the
//! one its next start would define, rendered from the model: corrald defines a qube's domain in libvirt
//! only when it starts (as qubesd renders it from the qube's properties), so what libvirt may still hold
//! from an earlier run can be out of date, and a qube that never ran has none.

use corral_core::error::Conflict;
use corral_core::hv::{HvError, Inspect, PowerState};
use corral_core::{Error, ErrorKind, Result};

use crate::{resolve_in, Principal, Service};

impl Service {
    /// Whether libvirt's view can be shown at all: a hypervisor connection that supports introspection.
    pub fn can_inspect_hypervisor(&self) -> bool {
        self.hv.as_ref().is_some_and(|hv| hv.inspect().is_some())
    }

    /// Runs `f` on the hypervisor's introspection. Blocks on libvirt.
    pub(crate) fn inspecting<T>(&self, f: impl FnOnce(&dyn Inspect) -> std::result::Result<T, HvError>) -> Result<T> {
        let hv = self.hv.as_ref().ok_or_else(|| self.no_hypervisor())?;
        let inspect = hv
            .inspect()
            .ok_or_else(|| Error::new(ErrorKind::NotImplemented, "The hypervisor cannot show its objects"))?;
        f(inspect).map_err(Error::from)
    }

    /// A qube's domain XML: libvirt's with `virDomainXMLFlags` unless the qube is halted, else the one its
    /// next start would define (the flags change nothing there: it is an inactive definition already).
    pub(crate) fn domain_xml_of(&self, caller: &Principal, vm: &str, flags: u32) -> Result<String> {
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
    pub(crate) fn scheduler_type(&self, caller: &Principal, vm: &str) -> Result<(String, i32)> {
        self.auth(caller, "corral.vm.SchedulerType", "", vm)?;
        let d = resolve_in(&self.current(), vm)?.clone();
        self.inspecting(|i| i.scheduler_type(&d.uuid))?.ok_or_else(|| never_defined(&d.name))
    }
}

fn never_defined(vm: &str) -> Error {
    Error::new(
        ErrorKind::Conflict(Conflict::NotStarted),
        format!("Domain not found: '{vm}' has no libvirt domain yet; corrald defines it when the qube first starts"),
    )
}
