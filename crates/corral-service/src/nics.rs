//! A qube's one network card. It is behind a netvm (the `netvm` property; the card joins libvirt's
//! `default`, where the network providers are), or directly on a libvirt network of the qube's own (the
//! feature [`NETWORK_FEATURE`]), or absent. The core keeps the two exclusive: a qube on a libvirt network
//! has no netvm, by default and by refusal.
//!
//! A running qube's domain gets the change at once (hot-plug), before it is committed: the store never
//! records a card the domain was refused. Where libvirt cannot plug it, the change is refused (the qube has
//! to be halted for it).

use corral_core::domain::{Domain, NETVM_NETWORK, NETWORK_FEATURE, NIC_NAME, NIC_NAME_FEATURE};
use corral_core::error::{Conflict, Missing};
use corral_core::hv::NetworkSpec;
use corral_core::plan::Plan;
use corral_core::props;
use corral_core::{App, Error, ErrorKind, Result};

use std::sync::Arc;

use parking_lot::RwLockUpgradableReadGuard;

use crate::{resolve_in, Principal, Service};

/// Where a new card goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attachment {
    Netvm(String),
    Network(String),
}

fn no_network(name: &str) -> Error {
    Error::value(format!("There is no libvirt network named {name}"))
}

/// The card qube `d` has in model `app`, as libvirt is given it.
fn card(app: &App, d: &Domain) -> Option<NetworkSpec> {
    app.nic_network(d).map(|network| NetworkSpec { mac: crate::lifecycle::bridge_mac(d), network })
}

fn unpluggable(d: &Domain, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Conflict(Conflict::NotHalted),
        format!("Cannot change the network card of {} while it runs ({why}): shut it down first", d.name),
    )
}

impl Service {
    /// Refuses when libvirt has no network `name`, or cannot say (no hypervisor). Blocks on libvirt.
    pub(crate) fn require_network(&self, name: &str) -> Result<()> {
        let hv = self.hv.as_ref().ok_or_else(|| {
            Error::value(format!("Cannot put a card on the libvirt network {name}: no hypervisor connection"))
        })?;
        let networks = hv.networks().map_err(Error::from)?;
        if networks.iter().any(|(n, _, _)| n == name) {
            Ok(())
        } else {
            Err(no_network(name))
        }
    }

    /// Commits `plan`, a change of qube `vm`'s card planned under `model`, and applies it. A running
    /// qube's domain has its old card unplugged and the new one plugged first, still under the upgradable
    /// lock: other writers wait, readers go on (an unplug waits for the guest to let go of the card);
    /// should the commit fail, the old card is plugged back.
    fn commit_card_change(&self, model: RwLockUpgradableReadGuard<'_, Arc<App>>, vm: &str, plan: Plan) -> Result<()> {
        let d = resolve_in(&model, vm)?.clone();
        let live = !d.is_admin() && self.power(&d).is_active();
        let (before, after) = if live {
            let mut next = App::clone(&model);
            for op in plan.ops.clone() {
                next.apply(op);
            }
            let after = resolve_in(&next, vm).ok().and_then(|n| card(&next, n));
            (card(&model, &d), after)
        } else {
            (None, None)
        };
        let replug = before != after;
        if replug {
            self.replug(&d, before.as_ref(), after.as_ref())?;
        }
        let mut model = RwLockUpgradableReadGuard::upgrade(model);
        if let Err(e) = self.store.lock().commit(&plan.ops) {
            if replug {
                if let Err(undo) = self.replug(&d, after.as_ref(), before.as_ref()) {
                    tracing::warn!(vm = %d.name, error = %undo.message, "cannot plug the old network card back");
                }
            }
            return Err(crate::store_error(e));
        }
        self.apply_ops(&mut model, plan.ops);
        self.events.publish_all(plan.events);
        Ok(())
    }

    /// Moves running qube `d`'s card from `from` to `to`: unplugs one, plugs the other; if the new one
    /// cannot be plugged, the old one goes back.
    fn replug(&self, d: &Domain, from: Option<&NetworkSpec>, to: Option<&NetworkSpec>) -> Result<()> {
        let hv = self.hv.as_ref().ok_or_else(|| unpluggable(d, "no hypervisor connection"))?;
        if let Some(old) = from {
            hv.detach_interface(&d.uuid, old).map_err(|e| unpluggable(d, e.message))?;
        }
        if let Some(new) = to {
            if let Err(e) = hv.attach_interface(&d.uuid, new) {
                if let Some(old) = from {
                    if let Err(undo) = hv.attach_interface(&d.uuid, old) {
                        tracing::warn!(vm = %d.name, error = %undo, "cannot plug the old network card back");
                    }
                }
                return Err(unpluggable(d, e.message));
            }
        }
        Ok(())
    }

    /// `admin.vm.property.Set`/`Reset` of `netvm` (`None`: reset), already authorized and sanitized: a
    /// running qube's card is plugged or unplugged as it gains or loses a netvm (as upstream attaches and
    /// detaches its network), and only a running netvm can be attached to.
    pub(crate) fn set_netvm(&self, vm: &str, value: Option<&str>) -> Result<()> {
        let model = self.model.upgradable_read();
        let d = resolve_in(&model, vm)?;
        let plan = match value {
            Some(v) => model.plan_vm_prop_set(d, "netvm", v)?,
            None => model.plan_vm_prop_reset(d, "netvm")?,
        };
        if self.power(d).is_active() {
            let mut probe = d.clone();
            match value {
                Some(v) => probe.props.insert("netvm".into(), v.to_string()),
                None => probe.props.remove("netvm"),
            };
            let netvm = model.vm_prop(&probe, "netvm").filter(|n| !n.is_empty());
            if let Some(netvm) = netvm.filter(|n| model.domain(n).is_some_and(|p| !self.power(p).is_active())) {
                return Err(Error::new(
                    ErrorKind::Conflict(Conflict::NotStarted),
                    format!("Cannot dynamically attach to stopped NetVM: {netvm}"),
                ));
            }
        }
        self.commit_card_change(model, vm, plan)
    }

    /// `admin.vm.feature.Set`/`Remove` of [`NETWORK_FEATURE`] (`None`: remove), already authorized: the
    /// card moves, at once on a running qube.
    pub(crate) fn set_network_feature(&self, vm: &str, value: Option<&str>) -> Result<()> {
        if let Some(name) = value.filter(|v| !v.is_empty()) {
            self.require_network(name)?;
        }
        let model = self.model.upgradable_read();
        let d = resolve_in(&model, vm)?;
        let plan = match value {
            Some(v) => model.plan_feature_set(d, NETWORK_FEATURE, v)?,
            None => model.plan_feature_remove(d, NETWORK_FEATURE)?,
        };
        self.commit_card_change(model, vm, plan)
    }

    /// A `mac` value for qube `vm`, checked as its property setter checks it.
    fn sanitized_mac(&self, vm: &str, payload: &[u8]) -> Result<String> {
        let app = self.current();
        let d = resolve_in(&app, vm)?;
        let def = props::vm_prop_def(d.class, "mac").ok_or_else(|| Error::no_such_property(&d.name, "mac"))?;
        props::sanitize(def.ty, payload)
    }

    /// Gives qube `vm` its one network card (plugged at once into a running qube). Without `network`, or
    /// with libvirt's `default`, the card is behind the global `default_netvm` when there is one (a qube
    /// behind a netvm is on `default`), else directly on `default`; any other libvirt network is joined
    /// directly, without a netvm. `mac`, when given, becomes the qube's `mac` property, and `name` the card's
    /// name ([`NIC_NAME_FEATURE`]), in the same transaction.
    pub(crate) fn add_nic(
        &self,
        caller: &Principal,
        vm: &str,
        network: Option<&str>,
        mac: Option<&[u8]>,
        name: Option<&str>,
    ) -> Result<()> {
        // Where the card goes follows from the global default_netvm alone, so every check on the caller comes
        // before anything about the qube is looked at.
        let default_netvm = self.current().global_prop("default_netvm").filter(|n| !n.is_empty());
        let attachment = match (network, default_netvm) {
            (None, Some(netvm)) => Attachment::Netvm(netvm),
            (Some(n), Some(netvm)) if n == NETVM_NETWORK => Attachment::Netvm(netvm),
            (n, _) => Attachment::Network(n.unwrap_or(NETVM_NETWORK).to_string()),
        };
        match &attachment {
            Attachment::Netvm(_) => self.auth(caller, "admin.vm.property.Set", "netvm", vm)?,
            Attachment::Network(_) => self.auth(caller, "admin.vm.feature.Set", NETWORK_FEATURE, vm)?,
        }
        if mac.is_some() {
            self.auth(caller, "admin.vm.property.Set", "mac", vm)?;
        }
        if name.is_some() {
            self.auth(caller, "admin.vm.feature.Set", NIC_NAME_FEATURE, vm)?;
        }
        let mac = mac.map(|payload| self.sanitized_mac(vm, payload)).transpose()?;
        if let Attachment::Network(name) = &attachment {
            self.require_network(name)?;
        }
        let model = self.model.upgradable_read();
        let app = &*model;
        let d = resolve_in(app, vm)?;
        if d.is_admin() {
            return Err(Error::value("dom0 has no network card to add"));
        }
        if let Some(on) = app.nic_network(d) {
            return Err(Error::new(
                ErrorKind::Conflict(Conflict::QubeInUse),
                format!("{} already has its one network card (on the libvirt network {on})", d.name),
            ));
        }
        let mut plan = match &attachment {
            Attachment::Netvm(netvm) => {
                // As upstream: a running qube is attached only to a running network provider.
                let provider = app.domain(netvm).ok_or_else(|| Error::vm_not_found(netvm))?;
                if self.power(d).is_active() && !self.power(provider).is_active() {
                    return Err(Error::new(
                        ErrorKind::Conflict(Conflict::NotStarted),
                        format!("Cannot dynamically attach to stopped NetVM: {netvm}"),
                    ));
                }
                app.plan_vm_prop_set(d, "netvm", netvm)?
            }
            Attachment::Network(name) => app.plan_feature_set(d, NETWORK_FEATURE, name)?,
        };
        if let Some(mac) = &mac {
            extend(&mut plan, app.plan_vm_prop_set(d, "mac", mac)?);
        }
        extend(&mut plan, plan_nic_name(app, d, name.unwrap_or(NIC_NAME))?);
        self.commit_card_change(model, vm, plan)
    }

    /// Renames qube `vm`'s card and (`mac`) sets the qube's `mac` property, in one transaction. Neither moves a
    /// running qube's card: the name is only its label, and a new MAC applies at the next start, as the
    /// property's does.
    pub(crate) fn update_nic(
        &self,
        caller: &Principal,
        vm: &str,
        name: Option<&str>,
        mac: Option<&[u8]>,
    ) -> Result<()> {
        if name.is_some() {
            self.auth(caller, "admin.vm.feature.Set", NIC_NAME_FEATURE, vm)?;
        }
        if mac.is_some() {
            self.auth(caller, "admin.vm.property.Set", "mac", vm)?;
        }
        let mac = mac.map(|payload| self.sanitized_mac(vm, payload)).transpose()?;
        self.mutate(|app| {
            let d = resolve_in(app, vm)?;
            if app.nic_network(d).is_none() {
                return Err(Error::new(
                    ErrorKind::NotFound(Missing::Feature),
                    format!("{} has no network card", d.name),
                ));
            }
            let mut plan = Plan::default();
            if let Some(name) = name {
                extend(&mut plan, plan_nic_name(app, d, name)?);
            }
            if let Some(mac) = &mac {
                extend(&mut plan, app.plan_vm_prop_set(d, "mac", mac)?);
            }
            Ok((plan, ()))
        })
    }

    /// Takes qube `vm`'s card away (unplugged at once from a running qube): it is on no libvirt network and
    /// its netvm is none, explicitly, so that it does not fall back to the global default.
    pub(crate) fn remove_nic(&self, caller: &Principal, vm: &str) -> Result<()> {
        self.auth(caller, "admin.vm.property.Set", "netvm", vm)?;
        let (on_network, named) = {
            let app = self.current();
            let d = resolve_in(&app, vm)?;
            (d.libvirt_network().is_some(), d.features.get(NIC_NAME_FEATURE).is_some())
        };
        if on_network {
            self.auth(caller, "admin.vm.feature.Remove", NETWORK_FEATURE, vm)?;
        }
        if named {
            self.auth(caller, "admin.vm.feature.Remove", NIC_NAME_FEATURE, vm)?;
        }
        let model = self.model.upgradable_read();
        let app = &*model;
        let d = resolve_in(app, vm)?;
        if app.nic_network(d).is_none() {
            return Err(Error::new(ErrorKind::NotFound(Missing::Feature), format!("{} has no network card", d.name)));
        }
        let mut plan = Plan::default();
        if d.prop("netvm") != Some("") {
            extend(&mut plan, app.plan_vm_prop_set(d, "netvm", "")?);
        }
        if d.libvirt_network().is_some() {
            // Planned against the qube with its netvm already none, so that the netvm seen by clients goes
            // straight to none instead of passing by the global default.
            let mut after = d.clone();
            after.props.insert("netvm".into(), String::new());
            extend(&mut plan, app.plan_feature_remove(&after, NETWORK_FEATURE)?);
        }
        if d.features.get(NIC_NAME_FEATURE).is_some() {
            extend(&mut plan, app.plan_feature_remove(d, NIC_NAME_FEATURE)?);
        }
        self.commit_card_change(model, vm, plan)
    }

    /// The qubes whose card is on libvirt network `name`, by name.
    pub(crate) fn network_users(app: &App, name: &str) -> Vec<String> {
        app.domains().filter(|d| app.nic_network(d).as_deref() == Some(name)).map(|d| d.name.clone()).collect()
    }
}

/// Names qube `d`'s card `name`: the default name is the absence of the feature, so that it stays as it was for
/// qubes nobody named a card of.
fn plan_nic_name(app: &App, d: &Domain, name: &str) -> Result<Plan> {
    if name == NIC_NAME {
        if d.features.get(NIC_NAME_FEATURE).is_some() {
            return app.plan_feature_remove(d, NIC_NAME_FEATURE);
        }
        return Ok(Plan::default());
    }
    if d.features.get(NIC_NAME_FEATURE).is_some_and(|n| n == name) {
        return Ok(Plan::default());
    }
    app.plan_feature_set(d, NIC_NAME_FEATURE, name)
}

fn extend(plan: &mut Plan, more: Plan) {
    plan.ops.extend(more.ops);
    plan.events.extend(more.events);
}
