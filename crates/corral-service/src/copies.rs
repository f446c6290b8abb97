//! Qubes made as copies of others: a clone as `qvm-clone` makes it, and a TemplateVM made from a qube. Each is
//! one plan with its creation, committed once, so the copy is made whole or not at all.

use corral_core::domain::{Class, NETWORK_FEATURE};
use corral_core::plan::CreateSpec;
use corral_core::setup::Setup;
use corral_core::Result;

use crate::request::VmSettings;
use crate::{resolve_in, Principal, Service};

impl Service {
    /// Makes TemplateVM `name` from qube `source`, as `qvm-clone` does (see [`App::template_setup`]), with the
    /// settings the caller gives winning over the source's: one plan, committed once, so the template is made
    /// whole or not at all.
    pub(crate) fn create_template_from(
        &self,
        caller: &Principal,
        source: &str,
        name: &str,
        uuid: uuid::Uuid,
        settings: &VmSettings,
    ) -> Result<()> {
        corral_core::text::validate_vm_name(name)?;
        let (wanted, notes) = crate::ops::settings_values(Class::TemplateVM, name, settings)?;
        let (spec, mut setup) = {
            let app = self.current();
            app.template_setup(resolve_in(&app, source)?, name, caller.source_qube(), uuid)?
        };
        setup.override_props(wanted);
        setup.notes = notes;
        self.make_copy(caller, "admin.vm.Create.TemplateVM", spec, setup)
    }

    /// A copy of qube `source` named `name`, as `qvm-clone` makes one (see [`App::clone_setup`]): one plan,
    /// committed once, so the clone is made whole or not at all.
    pub(crate) fn clone_vm(&self, caller: &Principal, source: &str, name: &str, uuid: uuid::Uuid) -> Result<()> {
        corral_core::text::validate_vm_name(name)?;
        let (spec, setup) = {
            let app = self.current();
            app.clone_setup(resolve_in(&app, source)?, name, caller.source_qube(), uuid, crate::ops::now_epoch())?
        };
        let create = format!("admin.vm.Create.{}", spec.class.name());
        self.make_copy(caller, &create, spec, setup)
    }

    /// Checks every call the copy amounts to, then plans it against the model as it is now and makes it (see
    /// [`Service::make_qube`]). The checks (the policy's, libvirt's networks) run before the lock is taken: a
    /// source changed meanwhile gives the settings `setup` saw and its volumes' content as it is at the copy; one
    /// that lost a copied volume refuses the copy.
    fn make_copy(&self, caller: &Principal, create: &str, spec: CreateSpec, setup: Setup) -> Result<()> {
        self.auth_setup(caller, create, &spec, &setup)?;
        for (_, network) in setup.features.iter().filter(|(k, v)| k == NETWORK_FEATURE && !v.is_empty()) {
            self.require_network(network)?;
        }
        let model = self.model.upgradable_read();
        let new = model.plan_create_with(&spec, &setup, caller.may_mark_creators())?;
        self.make_qube(model, new, &setup.copies)
    }
}
