//! What one principal may see of the model, as of one moment: the doors render from a `View`, never from the
//! model itself. A qube the principal may not list (`admin.vm.List` on it) is not in the view at all, so a door
//! answers for it exactly as for a qube that does not exist.

use std::sync::Arc;

use corral_core::domain::Domain;
use corral_core::user::User;
use corral_core::volume::Pool;
use corral_core::{App, Operation, Principal};

use crate::audit::{AuditLog, AuditRecord};
use crate::runtime::Runtime;
use crate::Authorizer;
use corral_core::hv::{ConsoleAddress, DomainInfo, Hypervisor, PowerState};

/// A consistent, filtered snapshot of the model. Cheap to make and to clone; holding it holds up nobody.
#[derive(Clone)]
pub struct View {
    app: Arc<App>,
    generation: u64,
    principal: Principal,
    auth: Arc<dyn Authorizer>,
    audit: Arc<AuditLog>,
    live: Live,
}

/// What the hypervisor says of running qubes, shown live rather than as of the view's moment: a power state
/// changes without a model change.
#[derive(Clone)]
pub(crate) struct Live {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) hv: Option<Arc<dyn Hypervisor>>,
}

/// Qube `d`'s power state as `runtime` knows it: dom0 is this host, and a RemoteVM, on another, counts as
/// running, as upstream shows it.
pub(crate) fn power_of(runtime: &Runtime, d: &Domain) -> PowerState {
    if !d.class.runs_here() {
        PowerState::Running
    } else {
        runtime.state(&d.uuid)
    }
}

/// libvirt's figures of qube `d` while it is active; a halted qube's otherwise. Blocks on libvirt.
pub(crate) fn info_of(runtime: &Runtime, hv: Option<&dyn Hypervisor>, d: &Domain) -> DomainInfo {
    match hv {
        Some(hv) if power_of(runtime, d).is_active() => hv.info(&d.uuid).unwrap_or_else(|_| DomainInfo::halted()),
        _ => DomainInfo::halted(),
    }
}

impl View {
    pub(crate) fn new(
        app: Arc<App>,
        generation: u64,
        principal: Principal,
        auth: Arc<dyn Authorizer>,
        audit: Arc<AuditLog>,
        live: Live,
    ) -> View {
        View { app, generation, principal, auth, audit, live }
    }

    /// Qube `d`'s power state now.
    pub fn power(&self, d: &Domain) -> PowerState {
        power_of(&self.live.runtime, d)
    }

    /// Where a running qube's graphical console answers.
    pub fn console(&self, d: &Domain) -> Option<ConsoleAddress> {
        self.live.runtime.get(&d.uuid).and_then(|r| r.console)
    }

    /// libvirt's figures of qube `d` (memory, vcpus, CPU time) while it is active. Blocks on libvirt.
    pub fn info(&self, d: &Domain) -> DomainInfo {
        info_of(&self.live.runtime, self.live.hv.as_deref(), d)
    }

    /// The model generation the view shows, for caches of what is rendered from it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The host's memory and CPUs.
    pub fn host(&self) -> corral_core::HostInfo {
        self.app.host
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    fn may(&self, method: &str, arg: &str, target: &str) -> bool {
        self.auth.authorize(&self.principal, &Operation::new(method, arg, target)).is_ok()
    }

    fn sees(&self, d: &Domain) -> bool {
        self.may_list(&d.name)
    }

    /// Whether the principal may know of qube `name` (`admin.vm.List` on it), whether or not it exists now.
    pub fn may_list(&self, name: &str) -> bool {
        self.may("admin.vm.List", "", name)
    }

    /// Whether the principal sees every qube, so that a rendering of all of them may be shared.
    pub fn is_complete(&self) -> bool {
        self.app.domains().all(|d| self.sees(d))
    }

    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.app.domain(name).filter(|d| self.sees(d))
    }

    pub fn domain_by_uuid(&self, uuid: &uuid::Uuid) -> Option<&Domain> {
        self.app.domain_by_uuid(uuid).filter(|d| self.sees(d))
    }

    /// The qubes the principal may see, in upstream's order (dom0 first, then by name).
    pub fn domains(&self) -> impl Iterator<Item = &Domain> {
        self.app.domains().filter(|d| self.sees(d))
    }

    /// The qube's template, if the principal may see it.
    pub fn template_of(&self, d: &Domain) -> Option<&Domain> {
        self.app.template_of(d).filter(|t| self.sees(t))
    }

    /// A property's value as the Admin API shows it (explicit, or its default).
    pub fn vm_prop(&self, d: &Domain, name: &str) -> Option<String> {
        self.app.vm_prop(d, name)
    }

    pub fn tags_of(&self, d: &Domain) -> Vec<String> {
        self.app.tags_of(d)
    }

    /// The libvirt network the qube's card is on, if any.
    pub fn nic_network(&self, d: &Domain) -> Option<String> {
        self.app.nic_network(d)
    }

    pub fn global_prop(&self, name: &str) -> Option<String> {
        self.app.global_prop(name)
    }

    pub fn pools(&self) -> &[Pool] {
        self.app.pools()
    }

    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.app.pool(name)
    }

    /// The HTTP users, to those who may manage them.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        let visible = self.may("corral.user.List", "", corral_core::domain::DOM0);
        self.app.users().filter(move |_| visible)
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users().find(|u| u.name == name)
    }

    /// The audit log's records with an id greater than `from`, oldest first, that the principal may see.
    pub fn audit_since(&self, from: u64) -> Vec<AuditRecord> {
        self.audit.since(from).into_iter().filter(|r| self.may_see(r)).collect()
    }

    /// Audit record `id`, if it is kept and the principal may see it.
    pub fn audit_record(&self, id: u64) -> Option<AuditRecord> {
        self.audit.get(id).filter(|r| self.may_see(r))
    }

    /// A record about a qube (even one removed since) only to those who may list that qube, one naming a
    /// user only to those who may see users.
    fn may_see(&self, r: &AuditRecord) -> bool {
        let vm = r.vm.as_ref().is_none_or(|(_, name)| self.may_list(name));
        let user = r.user.is_none() || self.users().next().is_some();
        vm && user
    }
}
