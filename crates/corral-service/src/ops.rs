//! Typed operations on qubes, properties, features, tags, labels, pools, firewall and notes.
//! Every public method authorizes its call first.

use corral_core::error::{Conflict, Failure, Missing};
use std::collections::BTreeMap;

use corral_core::domain::{Class, Domain, NETWORK_FEATURE};
use corral_core::plan::{CreateSpec, Plan};
use corral_core::props::{self, PropType};
use corral_core::setup::{NewQube, Setup, VolumeCopy};
use corral_core::volume::{Driver, Pool};
use corral_core::{firewall, label, plan, App, Error, ErrorKind, Event, Result};
use parking_lot::RwLockUpgradableReadGuard;
use serde_json::json;

use crate::request::{NewVm, VmSettings};
use crate::{resolve_in, Operation, Principal, Service};

/// One property as `Get` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropView {
    pub is_default: bool,
    pub ty: PropType,
    /// Empty for None or an unset property.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSummary {
    pub name: String,
    pub class: Class,
    pub state: &'static str,
    pub uuid: String,
}

/// Which chain `admin.vm.feature.CheckWith*` walks after the qube itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureLookup {
    Own,
    Template,
    Netvm,
    AdminVm,
    TemplateAndAdminVm,
}

fn domain<'a>(app: &'a App, vm: &str) -> Result<&'a Domain> {
    resolve_in(app, vm)
}

impl Service {
    pub(crate) fn auth(&self, caller: &Principal, method: &str, arg: &str, target: &str) -> Result<()> {
        self.authorize(caller, &Operation::new(method, arg, target))
    }

    /// Until the hypervisor layer reports real states, dom0 runs and every qube is halted.
    pub(crate) fn power_state(&self, d: &Domain) -> &'static str {
        self.power(d).as_str()
    }

    pub(crate) fn list_vms(&self, caller: &Principal, dest: &str) -> Result<Vec<VmSummary>> {
        self.auth(caller, "admin.vm.List", "", dest)?;
        let app = self.current();
        if dest == "dom0" {
            Ok(self.summaries(&app))
        } else {
            Ok(vec![self.summary(domain(&app, dest)?)])
        }
    }

    pub fn summary(&self, d: &Domain) -> VmSummary {
        VmSummary { name: d.name.clone(), class: d.class, state: self.power_state(d), uuid: d.uuid.to_string() }
    }

    /// Every qube, sorted by name.
    pub(crate) fn summaries(&self, app: &App) -> Vec<VmSummary> {
        app.domains().map(|d| self.summary(d)).collect()
    }

    /// Runs `f` over a read view of one qube after authorizing the call.
    pub(crate) fn with_vm<T>(
        &self,
        caller: &Principal,
        method: &str,
        arg: &str,
        vm: &str,
        f: impl FnOnce(&App, &Domain) -> Result<T>,
    ) -> Result<T> {
        self.auth(caller, method, arg, vm)?;
        let app = self.current();
        f(&app, domain(&app, vm)?)
    }

    pub(crate) fn with_app<T>(
        &self,
        caller: &Principal,
        method: &str,
        arg: &str,
        f: impl FnOnce(&App) -> Result<T>,
    ) -> Result<T> {
        self.auth(caller, method, arg, "dom0")?;
        let app = self.current();
        f(&app)
    }

    pub(crate) fn vm_prop_view(&self, app: &App, d: &Domain, name: &str) -> Result<PropView> {
        if let Some(value) = self.runtime_prop(d, name) {
            return Ok(PropView {
                is_default: true,
                ty: if name == "xid" { PropType::Int } else { PropType::Str },
                value,
            });
        }
        let def = props::vm_prop_def(d.class, name).ok_or_else(|| Error::no_such_property(&d.name, name))?;
        // Identity given at creation counts as set, as upstream keeps it in the qube's stored properties.
        let explicit = match def.access {
            // dom0's identity is fixed by its class, never stored: upstream reports it as defaults.
            props::Access::WriteOnce => !d.is_admin(),
            props::Access::ReadOnly => false,
            props::Access::ReadWrite => d.props.contains_key(name),
        };
        Ok(PropView { is_default: !explicit, ty: def.ty, value: app.vm_prop(d, name).unwrap_or_default() })
    }

    /// `xid` and `start_time` come from the hypervisor, not the model.
    fn runtime_prop(&self, d: &Domain, name: &str) -> Option<String> {
        if d.is_admin() || !matches!(name, "xid" | "start_time") {
            return None;
        }
        let running = self.runtime.get(&d.uuid)?;
        Some(match name {
            "xid" => running.xid.map_or("-1".to_string(), |x| x.to_string()),
            _ => format!("{}", running.start_time),
        })
    }

    pub(crate) fn vm_prop_default(app: &App, d: &Domain, name: &str) -> Result<Option<(PropType, String)>> {
        let def = props::vm_prop_def(d.class, name).ok_or_else(|| Error::no_such_property(&d.name, name))?;
        // A qube's identity given at creation and any label have no default in qubesd (dom0's identity
        // does): GetDefault answers empty.
        if (def.access == props::Access::WriteOnce && !d.is_admin()) || name == "label" {
            return Ok(None);
        }
        let mut probe = d.clone();
        probe.props.remove(name);
        Ok(app.vm_prop(&probe, name).map(|v| (def.ty, v)))
    }

    pub(crate) fn vm_prop_help(d: &Domain, name: &str) -> Result<&'static str> {
        props::vm_prop_def(d.class, name).map(|p| p.help).ok_or_else(|| Error::no_such_property(&d.name, name))
    }

    pub(crate) fn global_prop_view(app: &App, name: &str) -> Result<PropView> {
        let def = props::global_prop_def(name).ok_or_else(|| Error::no_such_property("Qubes", name))?;
        Ok(PropView {
            is_default: app.global_explicit(name).is_none(),
            ty: def.ty,
            value: app.global_prop(name).unwrap_or_default(),
        })
    }

    pub(crate) fn global_prop_default(app: &App, name: &str) -> Result<Option<(PropType, String)>> {
        let def = props::global_prop_def(name).ok_or_else(|| Error::no_such_property("Qubes", name))?;
        Ok((def.default)(app).map(|v| (def.ty, v)))
    }

    pub(crate) fn set_vm_prop(&self, caller: &Principal, vm: &str, name: &str, payload: &[u8]) -> Result<()> {
        let ty = {
            let app = self.current();
            let d = domain(&app, vm)?;
            props::vm_prop_def(d.class, name).ok_or_else(|| Error::no_such_property(&d.name, name))?.ty
        };
        let value = props::sanitize(ty, payload)?;
        self.auth(caller, "admin.vm.property.Set", name, vm)?;
        if name == "netvm" {
            return self.set_netvm(vm, Some(&value));
        }
        let changed = self.mutate(|app| {
            let d = domain(app, vm)?;
            self.require_halted_for_prop(d, name)?;
            let plan = app.plan_vm_prop_set(d, name, &value)?;
            let live = matches!(name, "memory" | "vcpus") && self.power(d).is_live();
            Ok((plan, live.then(|| (d.uuid, d.name.clone()))))
        })?;
        if let Some((uuid, vm_name)) = changed {
            self.apply_live(uuid, &vm_name, name, &value);
        }
        Ok(())
    }

    /// A running qube gets a new memory size or vcpu count at once where libvirt can do it; otherwise the
    /// stored value applies at its next start.
    fn apply_live(&self, uuid: uuid::Uuid, vm: &str, name: &str, value: &str) {
        let Some(hv) = &self.hv else { return };
        let outcome = match (name, value.parse::<u64>()) {
            ("memory", Ok(mib)) => hv.set_memory(&uuid, mib),
            ("vcpus", Ok(n)) => match u32::try_from(n) {
                Ok(n) => hv.set_vcpus(&uuid, n),
                // The property's check keeps counts within u32; nothing is applied live otherwise.
                Err(_) => return,
            },
            _ => return,
        };
        if let Err(e) = outcome {
            tracing::info!(vm, property = name, error = %e, "change applies at the next start");
        }
    }

    /// Several settings of one qube in one transaction: all or nothing.
    pub(crate) fn update_vm_settings(&self, caller: &Principal, vm: &str, settings: &VmSettings) -> Result<()> {
        let class = domain(&self.current(), vm)?.class;
        let (typed, notes) = settings_values(class, vm, settings)?;
        self.update_vm_values(caller, vm, typed, notes)
    }

    /// Sets properties to values already in their stored form, and the notes, in one transaction.
    fn update_vm_values(
        &self,
        caller: &Principal,
        vm: &str,
        typed: Vec<(String, String)>,
        notes: Option<String>,
    ) -> Result<()> {
        for (name, _) in &typed {
            self.auth(caller, "admin.vm.property.Set", name, vm)?;
        }
        if notes.is_some() {
            self.auth(caller, "admin.vm.notes.Set", "", vm)?;
        }
        let live = self.mutate(|app| {
            let d = domain(app, vm)?;
            let mut all = Plan::default();
            let mut live = Vec::new();
            for (name, value) in &typed {
                self.require_halted_for_prop(d, name)?;
                let p = app.plan_vm_prop_set(d, name, value)?;
                all.ops.extend(p.ops);
                all.events.extend(p.events);
                if matches!(name.as_str(), "memory" | "vcpus") && self.power(d).is_live() {
                    live.push((d.uuid, d.name.clone(), name.clone(), value.clone()));
                }
            }
            if let Some(text) = notes {
                let p = app.plan_notes_set(d, text);
                all.ops.extend(p.ops);
            }
            Ok((all, live))
        })?;
        for (uuid, vm_name, name, value) in live {
            self.apply_live(uuid, &vm_name, &name, &value);
        }
        Ok(())
    }

    pub(crate) fn reset_vm_prop(&self, caller: &Principal, vm: &str, name: &str) -> Result<()> {
        self.auth(caller, "admin.vm.property.Reset", name, vm)?;
        if name == "netvm" {
            return self.set_netvm(vm, None);
        }
        self.mutate(|app| {
            let d = domain(app, vm)?;
            self.require_halted_for_prop(d, name)?;
            Ok((app.plan_vm_prop_reset(d, name)?, ()))
        })
    }

    fn require_halted_for_prop(&self, d: &Domain, name: &str) -> Result<()> {
        if matches!(name, "template" | "virt_mode" | "kernel" | "provides_network") && self.power_state(d) != "Halted" {
            return Err(Error::not_halted(&d.name));
        }
        Ok(())
    }

    pub(crate) fn set_global_prop(&self, caller: &Principal, name: &str, payload: &[u8]) -> Result<()> {
        let def = props::global_prop_def(name).ok_or_else(|| Error::no_such_property("Qubes", name))?;
        let value = props::sanitize(def.ty, payload)?;
        self.auth(caller, "admin.property.Set", name, "dom0")?;
        self.mutate(|app| Ok((app.plan_global_prop_set(name, &value)?, ())))
    }

    pub(crate) fn reset_global_prop(&self, caller: &Principal, name: &str) -> Result<()> {
        self.auth(caller, "admin.property.Reset", name, "dom0")?;
        self.mutate(|app| Ok((app.plan_global_prop_reset(name)?, ())))
    }

    pub(crate) fn feature_get(
        &self,
        caller: &Principal,
        method: &str,
        vm: &str,
        name: &str,
        lookup: FeatureLookup,
    ) -> Result<String> {
        self.with_vm(caller, method, name, vm, |app, d| {
            let dom0 = app.domain("dom0");
            let found = match lookup {
                FeatureLookup::Own => d.features.get(name),
                FeatureLookup::Template => app.feature_with_template(d, name),
                FeatureLookup::Netvm => app.feature_with_netvm(d, name),
                FeatureLookup::AdminVm => d.features.get(name).or_else(|| dom0.and_then(|a| a.features.get(name))),
                FeatureLookup::TemplateAndAdminVm => {
                    app.feature_with_template(d, name).or_else(|| dom0.and_then(|a| a.features.get(name)))
                }
            };
            found.map(str::to_string).ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound(Missing::Feature),
                    format!("Feature not set for domain {}: {name}", d.name),
                )
            })
        })
    }

    pub(crate) fn feature_set(&self, caller: &Principal, vm: &str, name: &str, payload: &[u8]) -> Result<()> {
        let value = std::str::from_utf8(payload)
            .ok()
            .filter(|v| v.is_ascii())
            .ok_or_else(|| Error::protocol("Feature value contains non-ASCII characters"))?;
        plan::validate_feature(name, value)?;
        self.auth(caller, "admin.vm.feature.Set", name, vm)?;
        if name == NETWORK_FEATURE {
            return self.set_network_feature(vm, Some(value));
        }
        self.mutate(|app| Ok((app.plan_feature_set(domain(app, vm)?, name, value)?, ())))
    }

    pub(crate) fn denied_add(&self, caller: &Principal, vm: &str, payload: &[u8]) -> Result<()> {
        let codes = plan::parse_denied_payload(payload, false)?.unwrap_or_default();
        self.auth(caller, "admin.vm.device.denied.Add", "", vm)?;
        self.mutate(|app| Ok((app.plan_denied_add(domain(app, vm)?, &codes)?, ())))
    }

    pub(crate) fn denied_remove(&self, caller: &Principal, vm: &str, payload: &[u8]) -> Result<()> {
        let codes = plan::parse_denied_payload(payload, true)?;
        self.auth(caller, "admin.vm.device.denied.Remove", "", vm)?;
        self.mutate(|app| Ok((app.plan_denied_remove(domain(app, vm)?, codes.as_deref())?, ())))
    }

    pub(crate) fn feature_remove(&self, caller: &Principal, vm: &str, name: &str) -> Result<()> {
        plan::validate_feature_name(name)?;
        self.auth(caller, "admin.vm.feature.Remove", name, vm)?;
        if name == NETWORK_FEATURE {
            return self.set_network_feature(vm, None);
        }
        self.mutate(|app| Ok((app.plan_feature_remove(domain(app, vm)?, name)?, ())))
    }

    pub(crate) fn tag_set(&self, caller: &Principal, vm: &str, tag: &str) -> Result<()> {
        corral_core::text::validate_tag(tag)?;
        self.auth(caller, "admin.vm.tag.Set", tag, vm)?;
        self.mutate(|app| Ok((app.plan_tag_set(domain(app, vm)?, tag, caller.may_mark_creators())?, ())))
    }

    pub(crate) fn tag_remove(&self, caller: &Principal, vm: &str, tag: &str) -> Result<()> {
        corral_core::text::validate_tag(tag)?;
        self.auth(caller, "admin.vm.tag.Remove", tag, vm)?;
        self.mutate(|app| Ok((app.plan_tag_remove(domain(app, vm)?, tag, caller.may_mark_creators())?, ())))
    }

    pub(crate) fn label_create(&self, caller: &Principal, name: &str, color: &[u8]) -> Result<()> {
        label::validate_label_name(name, true)?;
        let color = label::parse_label_color(color)?;
        self.auth(caller, "admin.label.Create", name, "dom0")?;
        self.mutate(|app| Ok((app.plan_label_create(name, &color)?, ())))
    }

    pub(crate) fn label_remove(&self, caller: &Principal, name: &str) -> Result<()> {
        label::validate_label_name(name, false)?;
        self.auth(caller, "admin.label.Remove", name, "dom0")?;
        self.mutate(|app| Ok((app.plan_label_remove(name)?, ())))
    }

    pub(crate) fn create_vm(&self, caller: &Principal, method: &str, spec: CreateSpec) -> Result<()> {
        self.auth(caller, method, spec.template.as_deref().unwrap_or(""), "dom0")?;
        let model = self.model.upgradable_read();
        let new = model.plan_create_with(&spec, &Setup::default(), caller.may_mark_creators())?;
        self.make_qube(model, new, &[])
    }

    /// A new qube with its first settings in one transaction, so that no one, not even a restart after a crash,
    /// sees it half set up (a door's single create request; `qvm-create` makes these separate calls itself): an
    /// AppVM of the TemplateVM `new.template` names (the first whose uuid or name matches), or a StandaloneVM
    /// without one. A template that is not there is `QubesVMNotFoundError`. When `startable`, what would refuse
    /// the qube's start for certain refuses the creation too, before anything is made (see `start_refusal`).
    pub(crate) fn create_vm_settings(&self, caller: &Principal, new: NewVm, startable: bool) -> Result<()> {
        let class = new.class();
        let NewVm { name, label, template, uuid, settings } = new;
        let template = match template {
            None => None,
            Some(t) => {
                let app = self.current();
                let found = app.domains().find(|d| {
                    d.class == Class::TemplateVM
                        && (t.uuid == Some(d.uuid) || t.name.as_deref() == Some(d.name.as_str()))
                });
                let found = found.ok_or_else(|| Error::new(ErrorKind::NotFound(Missing::Qube), "No such template"))?;
                Some(found.name.clone())
            }
        };
        corral_core::text::validate_vm_name(&name)?;
        let (props, notes) = settings_values(class, &name, &settings)?;
        let spec = CreateSpec {
            class,
            name,
            label,
            template,
            pools: corral_core::plan::PoolChoice::Defaults,
            creator: caller.source_qube().to_string(),
            uuid,
        };
        let method = format!("admin.vm.Create.{}", class.name());
        self.auth(caller, &method, spec.template.as_deref().unwrap_or(""), "dom0")?;
        for (prop, _) in &props {
            self.auth(caller, "admin.vm.property.Set", prop, &spec.name)?;
        }
        let setup = Setup { props, notes, ..Setup::default() };
        let model = self.model.upgradable_read();
        let new = model.plan_create_with(&spec, &setup, caller.may_mark_creators())?;
        if startable {
            self.start_refusal(&model, &new.domain)?;
        }
        self.make_qube(model, new, &[])
    }

    /// Every Admin API call a composed creation amounts to (`create` the one that makes the qube), all checked
    /// before anything is made, so a policy sees the same calls the steps made one by one would show.
    pub(crate) fn auth_setup(&self, caller: &Principal, create: &str, spec: &CreateSpec, setup: &Setup) -> Result<()> {
        let vm = spec.name.as_str();
        self.auth(caller, create, spec.template.as_deref().unwrap_or(""), "dom0")?;
        for disk in &setup.disks {
            self.auth(caller, "corral.vm.volume.Add", &disk.pool, vm)?;
        }
        for copy in &setup.copies {
            self.auth(caller, "admin.vm.volume.CloneFrom", &copy.from_volume, &copy.from_vm)?;
            self.auth(caller, "admin.vm.volume.CloneTo", &copy.to, vm)?;
            if copy.preallocate {
                self.auth(caller, "corral.vm.volume.Update", &copy.to, vm)?;
            }
        }
        for (name, _) in &setup.props {
            self.auth(caller, "admin.vm.property.Set", name, vm)?;
        }
        if setup.notes.is_some() {
            self.auth(caller, "admin.vm.notes.Set", "", vm)?;
        }
        for (name, _) in &setup.features {
            self.auth(caller, "admin.vm.feature.Set", name, vm)?;
        }
        for tag in &setup.tags {
            self.auth(caller, "admin.vm.tag.Set", tag, vm)?;
        }
        if setup.firewall.is_some() {
            self.auth(caller, "admin.vm.firewall.Set", "", vm)?;
        }
        Ok(())
    }

    /// Makes planned qube `new` real: creates its volumes' files (marked as no committed qube's), copies the
    /// content `copies` names into them, then commits the plan in one transaction, after which the files are the
    /// qube's. Until that commit nothing of the qube is in the store: a failure removes the files made so far,
    /// and a crash leaves only files a later create of the name clears. Copies run under the upgradable lock:
    /// reads go on, other writers wait, so the plan stays valid until the commit.
    pub(crate) fn make_qube(
        &self,
        model: RwLockUpgradableReadGuard<'_, std::sync::Arc<App>>,
        mut new: NewQube,
        copies: &[VolumeCopy],
    ) -> Result<()> {
        let created = self.create_volumes(&model, &new.domain.name, &new.domain.volumes)?;
        match self.copy_into(&model, &new.domain, copies) {
            Ok(ops) => new.plan.ops.extend(ops),
            Err(e) => {
                self.remove_volume_files(&model, &created);
                return Err(e);
            }
        }
        let mut model = RwLockUpgradableReadGuard::upgrade(model);
        if let Err(e) = self.store.lock().commit(&new.plan.ops) {
            self.remove_volume_files(&model, &created);
            return Err(crate::store_error(e));
        }
        self.own_volume_files(&model, &created);
        self.apply_ops(&mut model, new.plan.ops);
        self.events.publish_all(new.plan.events);
        Ok(())
    }

    /// The storage side of `copies` into the volumes of uncommitted qube `d`: returns each target volume's
    /// config as the copy leaves it (its size is its source's, a preallocated copy is recorded so).
    fn copy_into(&self, app: &App, d: &Domain, copies: &[VolumeCopy]) -> Result<Vec<corral_core::Op>> {
        let mut ops = Vec::new();
        for copy in copies {
            let missing = || Error::new(ErrorKind::NotFound(Missing::Volume), "Source volume no longer exists");
            let src = app.domain(&copy.from_vm).and_then(|s| s.volume(&copy.from_volume)).ok_or_else(missing)?;
            let dst = d.volume(&copy.to).ok_or_else(missing)?;
            let (src_pool, dst_pool) = (crate::volumes::pool_of(app, src)?, crate::volumes::pool_of(app, dst)?);
            let size =
                self.storage.clone_volume(src_pool, src, dst_pool, dst).map_err(crate::volumes::storage_error)?;
            let mut volume = corral_core::volume::Volume { size, ..dst.clone() };
            if copy.preallocate && !volume.preallocated {
                self.storage.preallocate(dst_pool, &volume).map_err(crate::volumes::storage_error)?;
                volume.preallocated = true;
            }
            ops.push(corral_core::Op::SetVolume { qid: d.qid, volume });
        }
        Ok(ops)
    }

    /// Returns the new qube's name. Starting it is the caller's (qrexec's) next call.
    pub(crate) fn create_disposable(&self, caller: &Principal, dest: &str) -> Result<String> {
        self.auth(caller, "admin.vm.CreateDisposable", "", dest)?;
        let mut model = self.model.write();
        let base_name = if dest == "dom0" {
            let creator = domain(&model, caller.source_qube())?;
            model
                .vm_prop(creator, "default_dispvm")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| Error::generic(format!("Qube {} has no default_dispvm", caller.source_qube())))?
        } else {
            dest.to_string()
        };
        let base = domain(&model, &base_name)?;
        let (plan, name) = model.plan_create_disposable(base, caller.source_qube(), uuid::Uuid::new_v4())?;
        let volumes = match plan.ops.first() {
            Some(corral_core::Op::InsertDomain(d)) => d.volumes.as_slice(),
            _ => &[],
        };
        let created = self.create_volumes(&model, &name, volumes)?;
        if let Err(e) = self.store.lock().commit(&plan.ops) {
            self.remove_volume_files(&model, &created);
            return Err(crate::store_error(e));
        }
        self.own_volume_files(&model, &created);
        self.apply_ops(&mut model, plan.ops);
        self.events.publish_all(plan.events);
        Ok(name)
    }

    /// Creates the image files of new qube `vm`'s `volumes`; on failure removes what it made.
    fn create_volumes(
        &self,
        app: &App,
        vm: &str,
        volumes: &[corral_core::volume::Volume],
    ) -> Result<Vec<corral_core::volume::Volume>> {
        let mut created = Vec::new();
        for v in volumes {
            let Some(pool) = app.pool(&v.pool) else { continue };
            if !app.domains().any(|o| o.volumes.iter().any(|ov| ov.pool == v.pool && ov.vid == v.vid)) {
                self.discard_orphan(pool, v);
            }
            if let Err(e) = self.storage.create(pool, v) {
                self.remove_volume_files(app, &created);
                return Err(create_error(vm, v, e));
            }
            created.push(v.clone());
        }
        Ok(created)
    }

    /// Leftovers of an interrupted create or removal at the place of `v`, which no qube owns, are removed; files
    /// anyone else put there stay, and the create then refuses.
    pub(crate) fn discard_orphan(&self, pool: &corral_core::volume::Pool, v: &corral_core::volume::Volume) {
        match self.storage.discard_orphan(pool, v) {
            Ok(true) => tracing::info!(vid = %v.vid, "removed files an interrupted create or removal left"),
            Ok(false) => {}
            Err(e) => tracing::warn!(vid = %v.vid, error = %e, "failed to remove leftover volume files"),
        }
    }

    /// The commit made the new volumes' files a qube's.
    pub(crate) fn own_volume_files(&self, app: &App, volumes: &[corral_core::volume::Volume]) {
        for v in volumes {
            if let Some(pool) = app.pool(&v.pool) {
                if let Err(e) = self.storage.own(pool, v) {
                    tracing::warn!(vid = %v.vid, error = %e, "cannot mark volume files as owned");
                }
            }
        }
    }

    /// Before a removal's commit: a crash between it and the files' removal then leaves files a later create of
    /// the same name may clear. Failing that, such a create refuses, which loses nothing.
    pub(crate) fn disown_volume_files(&self, app: &App, volumes: &[corral_core::volume::Volume]) {
        for v in volumes {
            if let Some(pool) = app.pool(&v.pool) {
                if let Err(e) = self.storage.disown(pool, v) {
                    tracing::warn!(vid = %v.vid, error = %e, "cannot mark volume files for removal");
                }
            }
        }
    }

    fn remove_volume_files(&self, app: &App, volumes: &[corral_core::volume::Volume]) {
        for v in volumes {
            if let Some(pool) = app.pool(&v.pool) {
                if let Err(e) = self.storage.remove(pool, v) {
                    tracing::warn!(vid = %v.vid, error = %e, "failed to remove volume files");
                }
            }
        }
    }

    /// Removes a qube; with `force` a running one is killed first, without it a running one is refused
    /// (`QubesVMNotHaltedError`).
    pub(crate) fn remove_vm_forced(&self, caller: &Principal, vm: &str, force: bool) -> Result<()> {
        let d = domain(&self.current(), vm)?.clone();
        if self.power(&d).is_active() {
            if !force {
                return Err(Error::new(
                    ErrorKind::Conflict(Conflict::NotHalted),
                    format!("Domain is running: {}", d.name),
                ));
            }
            self.kill_vm(caller, vm)?;
        }
        self.remove_vm(caller, vm)
    }

    pub(crate) fn remove_vm(&self, caller: &Principal, vm: &str) -> Result<()> {
        self.auth(caller, "admin.vm.Remove", "", vm)?;
        let mut model = self.model.write();
        let d = domain(&model, vm)?;
        if d.class.runs_here() && self.power_state(d) != "Halted" {
            return Err(Error::not_halted(&d.name));
        }
        self.wait_prepared(&d.uuid);
        let plan = model.plan_remove(d).inspect_err(|e| {
            let blockers = model.remove_blockers(d);
            if e.kind == ErrorKind::Conflict(Conflict::QubeInUse) && !blockers.is_empty() {
                // The reply only says "in use", as upstream's does; the log says by what.
                tracing::warn!(vm = %d.name, used_by = ?blockers, "cannot remove a qube still in use");
            }
        })?;
        let volumes = d.volumes.clone();
        let (name, uuid) = (d.name.clone(), d.uuid);
        self.disown_volume_files(&model, &volumes);
        self.store.lock().commit(&plan.ops).map_err(crate::store_error)?;
        self.apply_ops(&mut model, plan.ops);
        self.volumes.forget_vm(&name);
        // Its libvirt definition would keep the name from a qube made later (libvirt refuses a second
        // domain of that name); like its files it goes after the commit, and a failure only leaves it behind.
        if let Some(hv) = &self.hv {
            if let Err(e) = hv.forget(&uuid) {
                tracing::warn!(vm = %name, error = %e, "cannot drop the removed qube's libvirt domain");
            }
        }
        // Under the lock, so that a qube created next with the same name cannot lose its new files.
        self.remove_volume_files(&model, &volumes);
        self.events.publish_all(plan.events);
        Ok(())
    }

    pub(crate) fn firewall_set(&self, caller: &Principal, vm: &str, payload: &[u8]) -> Result<()> {
        let rules = firewall::parse_rules(payload, now_epoch())?;
        self.auth(caller, "admin.vm.firewall.Set", "", vm)?;
        self.mutate(|app| Ok((app.plan_firewall_set(domain(app, vm)?, rules), ())))
    }

    pub(crate) fn firewall_reload(&self, caller: &Principal, vm: &str) -> Result<()> {
        self.auth(caller, "admin.vm.firewall.Reload", "", vm)?;
        let name = domain(&self.current(), vm)?.name.clone();
        self.publish(Event::on(&name, "firewall-changed"));
        Ok(())
    }

    pub(crate) fn notes_set(&self, caller: &Principal, vm: &str, payload: &[u8]) -> Result<()> {
        let text = plan::sanitize_notes(payload)?;
        self.auth(caller, "admin.vm.notes.Set", "", vm)?;
        self.mutate(|app| Ok((app.plan_notes_set(domain(app, vm)?, text), ())))
    }

    pub(crate) fn pool_add(&self, caller: &Principal, driver: &str, payload: &[u8]) -> Result<()> {
        let driver = Driver::from_name(driver).ok_or_else(|| Error::denied("Argument not in 'available drivers'"))?;
        let text = std::str::from_utf8(payload)
            .ok()
            .filter(|t| t.is_ascii())
            .ok_or_else(|| Error::protocol("Pool parameters contains non-ASCII characters"))?;
        let mut params = BTreeMap::new();
        for line in text.lines() {
            let (k, v) =
                line.split_once('=').ok_or_else(|| Error::protocol("Options must be separated by equal sign"))?;
            if params.insert(k.to_string(), v.to_string()).is_some() {
                return Err(Error::protocol("Options must be unique"));
            }
        }
        let pool = Pool::from_parameters(driver, &params)?;
        self.auth(caller, "admin.pool.Add", driver.name(), "dom0")?;
        self.mutate(|app| {
            let plan = app.plan_pool_add(pool.clone())?;
            self.storage
                .setup_pool(&pool)
                .map_err(|e| Error::new(ErrorKind::Failed(Failure::Storage), e.to_string()))?;
            Ok((plan, ()))
        })
    }

    pub(crate) fn pool_remove(&self, caller: &Principal, pool: &str) -> Result<()> {
        self.auth(caller, "admin.pool.Remove", pool, "dom0")?;
        self.mutate(|app| {
            app.pool(pool).ok_or_else(|| Error::denied("Argument not in 'pools'"))?;
            Ok((app.plan_pool_remove(pool)?, ()))
        })
    }

    pub(crate) fn pool_set_revisions(&self, caller: &Principal, pool: &str, payload: &[u8]) -> Result<()> {
        let n = corral_core::text::validate_number(payload, "revisions to keep", true)?;
        if n < -1 {
            return Err(Error::protocol("Value can't be lower than -1"));
        }
        self.auth(caller, "admin.pool.Set.revisions_to_keep", pool, "dom0")?;
        self.mutate(|app| {
            let mut p = app.pool(pool).cloned().ok_or_else(|| Error::denied("Argument not in 'pools'"))?;
            corral_core::volume::check_revisions_limit(p.driver, n)?;
            p.revisions_to_keep = n;
            Ok((app.plan_pool_update(p), ()))
        })
    }

    pub(crate) fn pool_set_ephemeral(&self, caller: &Principal, pool: &str, payload: &[u8]) -> Result<()> {
        let value = parse_bool_payload(payload)?;
        self.auth(caller, "admin.pool.Set.ephemeral_volatile", pool, "dom0")?;
        self.mutate(|app| {
            let mut p = app.pool(pool).cloned().ok_or_else(|| Error::denied("Argument not in 'pools'"))?;
            if p.driver != Driver::File {
                return Err(Error::new(ErrorKind::NotImplemented, "Pool does not support ephemeral volumes"));
            }
            p.ephemeral_volatile = value;
            Ok((app.plan_pool_update(p), ()))
        })
    }

    /// (size, usage) of a pool's backing filesystem.
    pub(crate) fn pool_usage(&self, pool: &Pool) -> Option<(u64, u64)> {
        self.storage.pool_usage(pool)
    }

    /// The JSON the qrexec policy daemon asks for on every call it evaluates.
    pub(crate) fn system_info(&self) -> std::sync::Arc<Vec<u8>> {
        self.rendered_model("internal.GetSystemInfo", |app, _| self.render_system_info(app).into_bytes())
    }

    fn render_system_info(&self, app: &App) -> String {
        let mut domains = serde_json::Map::new();
        for d in app.domains() {
            let vm_or_null = |prop: &str| {
                app.vm_prop(d, prop).filter(|v| !v.is_empty()).map_or(serde_json::Value::Null, serde_json::Value::from)
            };
            let label = app.vm_prop(d, "label").and_then(|l| app.label(&l).cloned());
            domains.insert(
                d.name.clone(),
                json!({
                    "internal": d.features.get("internal"),
                    "tags": app.tags_of(d),
                    "type": d.class.name(),
                    "template_for_dispvms": app.vm_prop(d, "template_for_dispvms").as_deref() == Some("True"),
                    "default_dispvm": vm_or_null("default_dispvm"),
                    "icon": label.as_ref().map(|l| format!("appvm-{}", l.name)),
                    "label": label.as_ref().map(|l| l.color.clone()),
                    "guivm": vm_or_null("guivm"),
                    "relayvm": vm_or_null("relayvm"),
                    "transport_rpc": vm_or_null("transport_rpc"),
                    "power_state": self.power_state(d),
                    "uuid": d.uuid.to_string(),
                }),
            );
        }
        json!({ "domains": domains }).to_string()
    }
}

pub fn parse_bool_payload(payload: &[u8]) -> Result<bool> {
    std::str::from_utf8(payload)
        .ok()
        .and_then(corral_core::text::parse_bool)
        .ok_or_else(|| Error::protocol("Payload is not boolean ASCII"))
}

pub fn now_epoch() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A volume that could not be created. Data already at its place is named in the log as well as in the reply: an
/// operator has to decide whether it is a user's (keep it, pick another name) or a leftover (remove it).
pub(crate) fn create_error(vm: &str, v: &corral_core::volume::Volume, e: corral_storage::StorageError) -> Error {
    if let corral_storage::StorageError::AlreadyExists(path) = &e {
        tracing::warn!(
            vm,
            vid = %v.vid,
            path = %path.display(),
            "refusing to create a volume over files no qube owns: placed there by hand or left by an older \
             Corral; move them away to create it"
        );
        return Error::new(ErrorKind::Failed(Failure::Storage), e.to_string());
    }
    Error::new(ErrorKind::Failed(Failure::Storage), format!("Failed to create volume {} of {vm}: {e}", v.name))
}

/// Property values in their stored form, by property name, and notes.
type SettingValues = (Vec<(String, String)>, Option<String>);

/// Settings as the stored values of the properties they set (numbers in their canonical form, text checked as
/// the property's type requires), and the notes, for a qube of `class` (`vm` names it in errors).
pub(crate) fn settings_values(class: Class, vm: &str, s: &VmSettings) -> Result<SettingValues> {
    let mut out = Vec::new();
    for (name, value) in s.properties() {
        let def = props::vm_prop_def(class, name).ok_or_else(|| Error::no_such_property(vm, name))?;
        out.push((name.to_string(), props::sanitize(def.ty, value.as_bytes())?));
    }
    let notes = s.notes.as_deref().map(|n| plan::sanitize_notes(n.as_bytes())).transpose()?;
    Ok((out, notes))
}
