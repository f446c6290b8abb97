//! A qube's one network card. It is behind a netvm (the `netvm` property; the card joins libvirt's
//! `default`, where the network providers are), or directly on a libvirt network of the qube's own (the
//! feature [`NETWORK_FEATURE`]), or absent. The core keeps the two exclusive: a qube on a libvirt network
//! has no netvm, by default and by refusal.
//!
//! The card is part of the domain libvirt is given at start: adding, moving or removing it needs the qube
//! halted (no hot-plug), whichever door asks.

use corral_core::domain::{Domain, NETVM_NETWORK, NETWORK_FEATURE};
use corral_core::hv::PowerState;
use corral_core::plan::Plan;
use corral_core::props;
use corral_core::{App, Error, ErrorKind, Result};

use crate::{resolve_in, Caller, Service};

/// Where a new card goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attachment {
    Netvm(String),
    Network(String),
}

fn no_network(name: &str) -> Error {
    Error::value(format!("There is no libvirt network named {name}"))
}

impl Service {
    /// Refuses when libvirt has no network `name`, or cannot say (no hypervisor). Blocks on libvirt.
    pub(crate) fn require_network(&self, name: &str) -> Result<()> {
        let hv = self.hv.as_ref().ok_or_else(|| {
            Error::value(format!("Cannot put a card on the libvirt network {name}: no hypervisor connection"))
        })?;
        let networks = hv.networks().map_err(|e| Error::new(ErrorKind::QubesVMError, e.message))?;
        if networks.iter().any(|(n, _, _)| n == name) {
            Ok(())
        } else {
            Err(no_network(name))
        }
    }

    /// The card of a running (or paused, suspended) qube cannot change: libvirt was given it at start.
    pub(crate) fn require_halted_for_card(&self, d: &Domain) -> Result<()> {
        if !d.is_admin() && self.power(d) != PowerState::Halted {
            return Err(Error::new(
                ErrorKind::QubesVMNotHaltedError,
                format!("Cannot change the network card of {} while it runs: shut it down first", d.name),
            ));
        }
        Ok(())
    }

    /// Gives qube `vm` (halted) its one network card. Without `network`, or with libvirt's `default`, the
    /// card is behind the global `default_netvm` when there is one (a qube behind a netvm is on `default`),
    /// else directly on `default`; any other libvirt network is joined directly, without a netvm. `mac`, when
    /// given, becomes the qube's `mac` property in the same transaction.
    pub fn add_nic(&self, caller: &Caller, vm: &str, network: Option<&str>, mac: Option<&[u8]>) -> Result<()> {
        let (attachment, mac) = {
            let app = self.read();
            let d = resolve_in(&app, vm)?;
            let mac = match mac {
                Some(payload) => {
                    let def =
                        props::vm_prop_def(d.class, "mac").ok_or_else(|| Error::no_such_property(&d.name, "mac"))?;
                    Some(props::sanitize(def.ty, payload)?)
                }
                None => None,
            };
            let default_netvm = app.global_prop("default_netvm").filter(|n| !n.is_empty());
            let attachment = match (network, default_netvm) {
                (None, Some(netvm)) => Attachment::Netvm(netvm),
                (Some(n), Some(netvm)) if n == NETVM_NETWORK => Attachment::Netvm(netvm),
                (n, _) => Attachment::Network(n.unwrap_or(NETVM_NETWORK).to_string()),
            };
            (attachment, mac)
        };
        match &attachment {
            Attachment::Netvm(_) => self.auth(caller, "admin.vm.property.Set", "netvm", vm)?,
            Attachment::Network(name) => {
                self.auth(caller, "admin.vm.feature.Set", NETWORK_FEATURE, vm)?;
                self.require_network(name)?;
            }
        }
        if mac.is_some() {
            self.auth(caller, "admin.vm.property.Set", "mac", vm)?;
        }
        self.mutate(|app| {
            let d = resolve_in(app, vm)?;
            self.require_halted_for_card(d)?;
            if d.is_admin() {
                return Err(Error::value("dom0 has no network card to add"));
            }
            if let Some(on) = app.nic_network(d) {
                return Err(Error::new(
                    ErrorKind::QubesVMInUseError,
                    format!("{} already has its one network card (on the libvirt network {on})", d.name),
                ));
            }
            let mut plan = match &attachment {
                Attachment::Netvm(netvm) => app.plan_vm_prop_set(d, "netvm", netvm)?,
                Attachment::Network(name) => app.plan_feature_set(d, NETWORK_FEATURE, name)?,
            };
            if let Some(mac) = &mac {
                extend(&mut plan, app.plan_vm_prop_set(d, "mac", mac)?);
            }
            Ok((plan, ()))
        })
    }

    /// Takes qube `vm`'s (halted) card away: it is on no libvirt network and its netvm is none, explicitly,
    /// so that it does not fall back to the global default.
    pub fn remove_nic(&self, caller: &Caller, vm: &str) -> Result<()> {
        self.auth(caller, "admin.vm.property.Set", "netvm", vm)?;
        let on_network = resolve_in(&self.read(), vm)?.libvirt_network().is_some();
        if on_network {
            self.auth(caller, "admin.vm.feature.Remove", NETWORK_FEATURE, vm)?;
        }
        self.mutate(|app| {
            let d = resolve_in(app, vm)?;
            self.require_halted_for_card(d)?;
            if app.nic_network(d).is_none() {
                return Err(Error::new(
                    ErrorKind::QubesFeatureNotFoundError,
                    format!("{} has no network card", d.name),
                ));
            }
            let mut plan = Plan::default();
            if d.prop("netvm") != Some("") {
                extend(&mut plan, app.plan_vm_prop_set(d, "netvm", "")?);
            }
            if d.libvirt_network().is_some() {
                // Planned against the qube with its netvm already none, so that the netvm seen by clients
                // goes straight to none instead of passing by the global default.
                let mut after = d.clone();
                after.props.insert("netvm".into(), String::new());
                extend(&mut plan, app.plan_feature_remove(&after, NETWORK_FEATURE)?);
            }
            Ok((plan, ()))
        })
    }

    /// The qubes whose card is on libvirt network `name`, by name.
    pub(crate) fn network_users(app: &App, name: &str) -> Vec<String> {
        app.domains().filter(|d| app.nic_network(d).as_deref() == Some(name)).map(|d| d.name.clone()).collect()
    }
}

fn extend(plan: &mut Plan, more: Plan) {
    plan.ops.extend(more.ops);
    plan.events.extend(more.events);
}
