//! What the virthttp door shows beyond the Admin API: libvirt's own view of a qube's domain (its XML, its
//! scheduler) and of the connection's virtual networks, asked through the daemon's one hypervisor
//! connection, so that what a client sees is what the daemon runs.
//!
//! A qube's XML is libvirt's: the live definition while it runs, and the one corrald gave libvirt at its
//! last start otherwise. The definition a *next* start would produce is computed only by that start
//! (it needs the start's storage work: overlays, volatile images), so it is not offered here.

use corral_core::hv::{HvError, Inspect, NetworkDetails};
use corral_core::{Error, ErrorKind, Result};

use crate::{resolve_in, Caller, Service};

fn hv_error(e: HvError) -> Error {
    Error::new(ErrorKind::QubesVMError, e.message)
}

impl Service {
    /// Whether libvirt's view can be shown at all: a hypervisor connection that supports introspection.
    pub fn can_inspect_hypervisor(&self) -> bool {
        self.hv.as_ref().is_some_and(|hv| hv.inspect().is_some())
    }

    /// Runs `f` on the hypervisor's introspection. Blocks on libvirt.
    fn inspecting<T>(&self, f: impl FnOnce(&dyn Inspect) -> std::result::Result<T, HvError>) -> Result<T> {
        let hv = self.hv.as_ref().ok_or_else(|| Error::new(ErrorKind::QubesVMError, "No hypervisor connection"))?;
        let inspect = hv
            .inspect()
            .ok_or_else(|| Error::new(ErrorKind::QubesNotImplementedError, "The hypervisor cannot show its objects"))?;
        f(inspect).map_err(hv_error)
    }

    /// libvirt's XML of a qube's domain with `virDomainXMLFlags`. A qube that never started has no
    /// libvirt domain yet (corrald defines it at start): `QubesVMNotStartedError`.
    pub fn domain_xml_of(&self, caller: &Caller, vm: &str, flags: u32) -> Result<String> {
        self.auth(caller, "corral.vm.DomainXML", "", vm)?;
        let d = resolve_in(&self.read(), vm)?.clone();
        self.inspecting(|i| i.domain_xml(&d.uuid, flags))?.ok_or_else(|| never_defined(&d.name))
    }

    /// The CPU scheduler libvirt runs a qube's domain with, and the number of its parameters.
    pub fn scheduler_type(&self, caller: &Caller, vm: &str) -> Result<(String, i32)> {
        self.auth(caller, "corral.vm.SchedulerType", "", vm)?;
        let d = resolve_in(&self.read(), vm)?.clone();
        self.inspecting(|i| i.scheduler_type(&d.uuid))?.ok_or_else(|| never_defined(&d.name))
    }

    /// Every virtual network of the connection with its state, by name.
    pub fn network_details(&self, caller: &Caller) -> Result<Vec<NetworkDetails>> {
        self.auth(caller, "corral.network.List", "", "dom0")?;
        self.inspecting(|i| i.network_details())
    }

    /// A network's XML with `virNetworkXMLFlags`.
    pub fn network_xml(&self, caller: &Caller, uuid: &uuid::Uuid, flags: u32) -> Result<String> {
        self.auth(caller, "corral.network.XML", "", "dom0")?;
        self.inspecting(|i| i.network_xml(uuid, flags))?
            .ok_or_else(|| Error::generic(format!("Network not found: no network with matching uuid '{uuid}'")))
    }
}

fn never_defined(vm: &str) -> Error {
    Error::new(
        ErrorKind::QubesVMNotStartedError,
        format!("Domain not found: '{vm}' has no libvirt domain yet; corrald defines it when the qube first starts"),
    )
}
