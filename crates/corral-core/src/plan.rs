//! Planning: each mutating request becomes a validated `Plan` (ops + events) against the current model.
//! Nothing here changes the model; the service commits the ops and then applies them.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::app::{App, Op};
use crate::domain::{Class, Domain, NETWORK_FEATURE, NIC_NAME_FEATURE};
use crate::error::{Conflict, Error, ErrorKind, Invalid, Missing, Result};
use crate::event::Event;
use crate::label::{Label, LAST_BUILTIN_INDEX};
use crate::props::{self, Access, PropType};
use crate::text::{format_bool, pyrepr};
use crate::volume::{Driver, NewDisk, Pool, Volume, GIB};

#[derive(Debug, Default)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub events: Vec<Event>,
}

impl Plan {
    fn op(&mut self, op: Op) {
        self.ops.push(op);
    }
    fn ev(&mut self, e: Event) {
        self.events.push(e);
    }
}

/// Where a new qube's volumes go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PoolChoice {
    #[default]
    Defaults,
    /// `pool=<p>`: every rw non-snapshot volume.
    All(String),
    /// `pool:<volume>=<p>` entries.
    PerVolume(BTreeMap<String, String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSpec {
    pub class: Class,
    pub name: String,
    pub label: String,
    pub template: Option<String>,
    pub pools: PoolChoice,
    /// Name of the calling qube, for the `created-by-` tag.
    pub creator: String,
    pub uuid: Uuid,
}

/// Value text in events: None is `None`, like Python's `str(None)`.
fn ev_value(ty: PropType, v: &str) -> String {
    if v.is_empty() && ty == PropType::Vm {
        "None".to_string()
    } else {
        v.to_string()
    }
}

fn vid_prefix(class: Class) -> &'static str {
    if class == Class::TemplateVM {
        "vm-templates"
    } else {
        "appvms"
    }
}

impl App {
    pub fn plan_create(&self, spec: &CreateSpec) -> Result<Plan> {
        // qubesd drops an unknown label while parsing the payload and then finds the key missing.
        let label =
            self.get_label(&spec.label).ok_or_else(|| Error::protocol("Creation requested without key: label"))?;
        if self.domain(&spec.name).is_some() {
            return Err(Error::new(
                ErrorKind::Conflict(Conflict::QubeExists),
                format!("Qube already exists: {}", spec.name),
            ));
        }
        if self.is_quarantined_name(&spec.name) {
            return Err(Error::new(
                ErrorKind::Conflict(Conflict::QubeExists),
                format!(
                    "Qube already exists: {} (in the state database, but quarantined at load: see the daemon's log)",
                    spec.name
                ),
            ));
        }
        if self.domain_by_uuid(&spec.uuid).is_some() || self.is_quarantined_uuid(&spec.uuid) {
            return Err(Error::generic(format!("UUID {} is already taken", spec.uuid)));
        }
        let no_default = || Error::value("Template for the qube not specified, nor default template set.");
        let template = match (&spec.template, spec.class) {
            (Some(t), _) => Some(self.domain(t).ok_or_else(|| Error::vm_not_found(t))?),
            (None, Class::AppVM) => {
                let t = self.global_prop("default_template").filter(|t| !t.is_empty()).ok_or_else(no_default)?;
                Some(self.domain(&t).ok_or_else(|| Error::vm_not_found(&t))?)
            }
            (None, Class::DispVM) => {
                let t = self.global_prop("default_dispvm").filter(|t| !t.is_empty()).ok_or_else(no_default)?;
                Some(self.domain(&t).ok_or_else(|| Error::vm_not_found(&t))?)
            }
            (None, _) => None,
        };
        if let Some(t) = template.filter(|_| spec.class == Class::DispVM) {
            if self.vm_prop(t, "template_for_dispvms").as_deref() != Some("True") {
                return Err(Error::value(format!(
                    "template for disposable ({}) needs to be an AppVM with template_for_dispvms=True",
                    t.name
                )));
            }
        }
        let qid = self.free_qid().ok_or_else(|| Error::generic("No free qid"))?;

        let mut d = Domain::new(qid, &spec.name, spec.uuid, spec.class);
        d.props.insert("label".into(), label.name.clone());
        if let Some(t) = template {
            let checked = (props::vm_prop_def(spec.class, "template").and_then(|p| p.check))
                .map(|check| check(self, &d, &t.name))
                .transpose()?;
            d.props.insert("template".into(), checked.unwrap_or_else(|| t.name.clone()));
        }
        if spec.class == Class::DispVM {
            let dispid = self.free_dispid(&spec.uuid);
            d.props.insert("dispid".into(), dispid.to_string());
        }
        d.volumes = self.volumes_for(&d, template, &spec.pools)?;

        let mut tags = vec![format!("created-by-{}", spec.creator)];
        if let Some(creator) = self.domain(&spec.creator) {
            if let Some(extra) = creator.features.get("tag-created-vm-with") {
                tags.extend(
                    extra.split_whitespace().filter(|t| crate::text::validate_tag(t).is_ok()).map(str::to_string),
                );
            }
        }
        if spec.class == Class::DispVM {
            if let Some(t) = template {
                tags.extend(t.tags.iter().cloned());
            }
        }

        let mut plan = Plan::default();
        plan.ev(Event::global("domain-add").arg("vm", &spec.name));
        for tag in &tags {
            if d.tags.insert(tag.clone()) {
                plan.ev(Event::on(&spec.name, format!("domain-tag-add:{tag}")).arg("tag", tag));
            }
        }
        if spec.class.runs_here() {
            plan.ev(Event::on(&spec.name, "domain-create-on-disk"));
        }
        plan.op(Op::InsertDomain(Box::new(d)));
        Ok(plan)
    }

    /// `admin.vm.CreateDisposable`: a `disp<N>` qube from `base` that copies its label, explicit
    /// properties, features, firewall and tags, and removes itself when it stops.
    pub fn plan_create_disposable(&self, base: &Domain, creator: &str, uuid: Uuid) -> Result<(Plan, String)> {
        if self.vm_prop(base, "template_for_dispvms").as_deref() != Some("True") {
            return Err(Error::generic(
                "Refusing to create DispVM out of this AppVM, because template_for_dispvms=False",
            ));
        }
        let dispid = self.free_dispid(&uuid);
        let name = format!("disp{dispid}");
        let spec = CreateSpec {
            class: Class::DispVM,
            name: name.clone(),
            label: self.vm_prop(base, "label").unwrap_or_else(|| "red".into()),
            template: Some(base.name.clone()),
            pools: PoolChoice::Defaults,
            creator: creator.to_string(),
            uuid,
        };
        let mut plan = self.plan_create(&spec)?;
        let Some(Op::InsertDomain(d)) = plan.ops.iter_mut().find(|op| matches!(op, Op::InsertDomain(_))) else {
            return Err(Error::generic("Disposable creation produced no qube"));
        };
        const NOT_COPIED: [&str; 9] = [
            "name",
            "qid",
            "uuid",
            "label",
            "template",
            "template_for_dispvms",
            "installed_by_rpm",
            "dispid",
            "auto_cleanup",
        ];
        for (k, v) in &base.props {
            if !NOT_COPIED.contains(&k.as_str()) && props::vm_prop_def(Class::DispVM, k).is_some() {
                d.props.insert(k.clone(), v.clone());
            }
        }
        d.props.insert("dispid".into(), dispid.to_string());
        d.props.insert("auto_cleanup".into(), "True".into());
        for (k, v) in base.features.iter() {
            if !k.starts_with("preload-dispvm") {
                d.features.set(k, v);
            }
        }
        d.firewall = base.firewall.clone();
        let tag = format!("disp-created-by-{creator}");
        if d.tags.insert(tag.clone()) {
            plan.ev(Event::on(&name, format!("domain-tag-add:{tag}")).arg("tag", &tag));
        }
        Ok((plan, name))
    }

    fn free_dispid(&self, seed: &Uuid) -> u32 {
        let used: Vec<u32> = self.domains().filter_map(|d| d.prop("dispid").and_then(|v| v.parse().ok())).collect();
        let start = (seed.as_u128() % 9999) as u32 + 1;
        (0..9999).map(|i| (start - 1 + i) % 9999 + 1).find(|id| !used.contains(id)).unwrap_or(start)
    }

    /// The pool of a new volume. `pool=` moves only read-write volumes that are not snapshots;
    /// `pool:<volume>=` moves any volume but refuses a snapshot, which lives with its origin.
    fn pool_for(&self, volume: &str, choice: &PoolChoice, snapshot: bool, rw: bool) -> Result<&Pool> {
        let name = match choice {
            PoolChoice::All(p) if rw && !snapshot => p.clone(),
            PoolChoice::PerVolume(m) if m.contains_key(volume) => {
                if snapshot {
                    // qubesd's wording, trailing space included.
                    return Err(Error::generic(format!(
                        "Snapshot volume {volume} must be in the same pool as its origin ({volume} volume of \
                         template),cannot move to pool {} ",
                        m[volume]
                    )));
                }
                m[volume].clone()
            }
            _ => self.global_prop(&format!("default_pool_{volume}")).unwrap_or_default(),
        };
        self.known_pool(&name)
    }

    fn known_pool(&self, name: &str) -> Result<&Pool> {
        self.pool(name).ok_or_else(|| Error::generic(format!("Unknown storage pool {name}")))
    }

    fn volumes_for(&self, d: &Domain, template: Option<&Domain>, choice: &PoolChoice) -> Result<Vec<Volume>> {
        if !d.class.runs_here() {
            // No volumes to place, but upstream still looks the named pools up.
            match choice {
                PoolChoice::Defaults => {}
                PoolChoice::All(p) => {
                    self.known_pool(p)?;
                }
                PoolChoice::PerVolume(m) => {
                    for p in m.values() {
                        self.known_pool(p)?;
                    }
                }
            }
            return Ok(Vec::new());
        }
        let base_vid = |pool: &Pool, vol: &str| match pool.driver {
            Driver::File => format!("{}/{}/{}", vid_prefix(d.class), d.name, vol),
            Driver::LinuxKernel => String::new(),
        };
        let plain = |name: &str, pool: &Pool, size: u64, save_on_stop: bool| Volume {
            name: name.into(),
            pool: pool.name.clone(),
            vid: base_vid(pool, name),
            size,
            rw: true,
            source: None,
            save_on_stop,
            snap_on_start: false,
            // As upstream's file driver: content not saved on stop has no revisions to keep.
            revisions_to_keep: if save_on_stop { pool.revisions_to_keep } else { 0 },
            ephemeral: None,
            bootable: false,
            preallocated: false,
            alias: None,
        };
        let snapshot_of = |name: &str, origin: &Volume| Volume {
            name: name.into(),
            pool: origin.pool.clone(),
            vid: format!("{}/{}/{}", vid_prefix(d.class), d.name, name),
            size: origin.size,
            rw: true,
            source: Some(origin.source.clone().unwrap_or_else(|| origin.vid.clone())),
            save_on_stop: false,
            snap_on_start: true,
            revisions_to_keep: 0,
            ephemeral: None,
            bootable: false,
            preallocated: false,
            alias: None,
        };
        let mut vols = Vec::new();
        let template_root = template.and_then(|t| t.volume("root"));
        match (d.class, template_root) {
            (Class::AppVM | Class::DispVM, Some(origin)) => {
                self.pool_for("root", choice, true, true)?;
                vols.push(snapshot_of("root", origin));
            }
            (Class::AppVM | Class::DispVM, None) => {
                return Err(Error::new(
                    ErrorKind::Conflict(Conflict::NoTemplate),
                    format!("Template for the domain {} not found", pyrepr(&d.name)),
                ));
            }
            _ => vols.push(plain("root", self.pool_for("root", choice, false, true)?, 10 * GIB, true)),
        }
        match (d.class, template.and_then(|t| t.volume("private"))) {
            (Class::DispVM, Some(origin)) => {
                self.pool_for("private", choice, true, true)?;
                vols.push(snapshot_of("private", origin));
            }
            _ => vols.push(plain("private", self.pool_for("private", choice, false, true)?, 2 * GIB, true)),
        }
        let volatile_size = if d.class == Class::DispVM { 12 * GIB } else { 10 * GIB };
        vols.push(plain("volatile", self.pool_for("volatile", choice, false, true)?, volatile_size, false));
        let kernel_pool = self.pool_for("kernel", choice, false, false)?;
        let kernel = self.vm_prop(d, "kernel").unwrap_or_default();
        let mut kvol = plain("kernel", kernel_pool, 0, false);
        kvol.rw = false;
        kvol.revisions_to_keep = 0;
        if kernel_pool.driver == Driver::LinuxKernel {
            kvol.vid = kernel;
        }
        vols.push(kvol);
        Ok(vols)
    }

    pub fn plan_remove(&self, d: &Domain) -> Result<Plan> {
        if d.is_admin() {
            return Err(Error::in_use(&d.name, Some("'dom0' cannot be removed")));
        }
        if self.vm_prop(d, "installed_by_rpm").as_deref() == Some("True") {
            return Err(Error::in_use(&d.name, Some(&format!("VM installed by package manager: {}", d.name))));
        }
        if !self.remove_blockers(d).is_empty() {
            // qubesd's wording (two spaces included); the daemon logs the references, as qubesd does.
            return Err(Error::in_use(
                &d.name,
                Some(&format!(
                    "Domain is in use: {};  see 'journalctl -u qubesd -e' in dom0 for details",
                    pyrepr(&d.name)
                )),
            ));
        }
        let mut plan = Plan::default();
        plan.ev(Event::global("domain-pre-delete").arg("vm", &d.name));
        plan.op(Op::DeleteDomain { qid: d.qid });
        plan.ev(Event::global("domain-delete").arg("vm", &d.name));
        Ok(plan)
    }

    /// What keeps a qube from being removed, as `@GLOBAL:<prop>` and `<qube>:<prop>`.
    pub fn remove_blockers(&self, d: &Domain) -> Vec<String> {
        let mut users: Vec<String> = props::GLOBAL_PROPS
            .iter()
            .filter(|p| p.ty == PropType::Vm && self.global_explicit(p.name) == Some(d.name.as_str()))
            .map(|p| format!("@GLOBAL:{}", p.name))
            .collect();
        users.extend(self.references_to(&d.name).into_iter().map(|(vm, prop)| format!("{vm}:{prop}")));
        users
    }

    /// `value` has passed [`props::sanitize`] for the property's type.
    pub fn plan_vm_prop_set(&self, d: &Domain, name: &str, value: &str) -> Result<Plan> {
        let def = props::vm_prop_def(d.class, name).ok_or_else(|| Error::no_such_property(&d.name, name))?;
        self.check_writable(d, def.access, name)?;
        let value = self.checked_vm_prop_value(d, def, value, true)?;
        let old = self.vm_prop(d, name);
        let mut plan = Plan::default();
        let mut pre = Event::on(&d.name, format!("property-pre-set:{name}"))
            .arg("name", name)
            .arg("newvalue", ev_value(def.ty, &value));
        if let Some(old) = &old {
            pre = pre.arg("oldvalue", ev_value(def.ty, old));
        }
        let mut post = pre.clone();
        post.name = format!("property-set:{name}");
        plan.ev(pre);
        plan.op(Op::SetProp { qid: d.qid, name: name.into(), value: Some(value.clone()) });
        plan.ev(post);
        self.auto_tag_events(&mut plan, d, name, old.as_deref(), Some(&value));
        if name == "template" && d.volume("root").is_some_and(|v| v.snap_on_start) {
            if let Some(origin) = self.domain(&value).and_then(|t| t.volume("root")) {
                let mut root = d.volume("root").cloned().unwrap_or_else(|| origin.clone());
                root.source = Some(origin.source.clone().unwrap_or_else(|| origin.vid.clone()));
                root.pool = origin.pool.clone();
                root.size = origin.size;
                plan.op(Op::SetVolume { qid: d.qid, volume: root });
            }
        }
        Ok(plan)
    }

    /// A value's checks once it has passed [`props::sanitize`], shared by Set and the load of stored values.
    /// `transition` runs the checks that judge a change against the qubes using this one (a
    /// `provides_network=False` while others name it): a stored value is judged from those qubes instead.
    fn checked_vm_prop_value(&self, d: &Domain, def: &props::PropDef, value: &str, transition: bool) -> Result<String> {
        let name = def.name;
        // `template` names the class it wants in its own check.
        if name != "template" {
            self.refuse_remote_target(def.ty, value)?;
        }
        let mut value = value.to_string();
        if def.ty == PropType::Vm && value.is_empty() && !def.allow_none {
            return Err(Error::new(
                ErrorKind::Invalid(Invalid::PropertyValue),
                format!("Invalid value '' for property {} of {}", pyrepr(name), pyrepr(&d.name)),
            ));
        }
        if def.ty == PropType::Label {
            value = self.label(&value).map(|l| l.name.clone()).ok_or_else(|| {
                Error::new(ErrorKind::NotFound(Missing::Label), format!("Label does not exist: {value}"))
            })?;
        }
        let guards_users = matches!(name, "provides_network" | "template_for_dispvms");
        if let Some(check) = def.check.filter(|_| transition || !guards_users) {
            value = check(self, d, &value)?;
        }
        Ok(value)
    }

    /// Whether a value read from the store is one Set would have accepted, against the whole model
    /// (references must name qubes that exist). Write-once values are stored at creation and pass.
    pub fn check_stored_vm_prop(&self, d: &Domain, name: &str, value: &str) -> Result<String> {
        let def = props::vm_prop_def(d.class, name).ok_or_else(|| Error::no_such_property(&d.name, name))?;
        // Only `dispid` of the write-once properties is kept as a row; name, qid and uuid are columns.
        if is_read_only(d, def.access, name) || (def.access == Access::WriteOnce && name != "dispid") {
            return Err(Error::value(format!("property {name} is not stored")));
        }
        let value = props::sanitize(def.ty, value.as_bytes())?;
        self.checked_vm_prop_value(d, def, &value, false)
    }

    /// Whether a stored global value is one Set would have accepted, against the whole model.
    pub fn check_stored_global_prop(&self, name: &str, value: &str) -> Result<String> {
        let def = props::global_prop_def(name).ok_or_else(|| Error::no_such_property("Qubes", name))?;
        if def.access != Access::ReadWrite {
            return Err(Error::value(format!("property {name} is not stored")));
        }
        let value = props::sanitize(def.ty, value.as_bytes())?;
        self.checked_global_value(def, &value)
    }

    pub fn plan_vm_prop_reset(&self, d: &Domain, name: &str) -> Result<Plan> {
        let def = props::vm_prop_def(d.class, name).ok_or_else(|| Error::no_such_property(&d.name, name))?;
        if is_read_only(d, def.access, name) {
            // A computed property holds no value of its own: qubesd's reset deletes nothing and succeeds.
            return Ok(Plan::default());
        }
        self.check_writable(d, def.access, name)?;
        if name == "template" {
            let message = match self.global_prop("default_template").filter(|t| !t.is_empty()) {
                Some(t) => format!("Cannot unset template. You can set it to the current default ({t}) instead"),
                None => "Cannot unset template".to_string(),
            };
            return Err(Error::value(message));
        }
        // Upstream would delete the label and leave a qube that cannot be shown; refuse instead.
        if name == "label" {
            return Err(Error::value("Property label has no default and cannot be reset"));
        }
        let old = d.prop(name).map(str::to_string);
        let mut plan = Plan::default();
        let mut base = Event::on(&d.name, format!("property-pre-reset:{name}")).arg("name", name);
        if let Some(old) = &old {
            base = base.arg("oldvalue", ev_value(def.ty, old));
        }
        for ev in ["property-pre-reset", "property-pre-del"] {
            let mut e = base.clone();
            e.name = format!("{ev}:{name}");
            plan.ev(e);
        }
        plan.op(Op::SetProp { qid: d.qid, name: name.into(), value: None });
        for ev in ["property-reset", "property-del"] {
            let mut e = base.clone();
            e.name = format!("{ev}:{name}");
            plan.ev(e);
        }
        let new = {
            let mut probe = d.clone();
            probe.props.remove(name);
            self.vm_prop(&probe, name)
        };
        self.auto_tag_events(&mut plan, d, name, self.vm_prop(d, name).as_deref(), new.as_deref());
        Ok(plan)
    }

    /// Qube references point at qubes of this host: a RemoteVM cannot be anyone's netvm, guivm, relay...
    fn refuse_remote_target(&self, ty: PropType, value: &str) -> Result<()> {
        match self.domain(value) {
            Some(target) if ty == PropType::Vm && target.is_remote() => Err(Error::new(
                ErrorKind::Invalid(Invalid::PropertyValue),
                format!(
                    "wrong VM class: domains[{}] is of type {} and not LocalVM",
                    pyrepr(value),
                    target.class.name()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `admin.vm.device.denied.Add`: the codes join the qube's `devices_denied`. As upstream, the
    /// property is set (and its events fire) even when nothing is new, but nothing is stored then.
    pub fn plan_denied_add(&self, d: &Domain, codes: &[String]) -> Result<Plan> {
        Self::has_denied_list(d)?;
        let current = self.vm_prop(d, "devices_denied").unwrap_or_default();
        let mut plan = self.plan_vm_prop_set(d, "devices_denied", &(current.clone() + &codes.concat()))?;
        let unchanged = plan.ops.iter().all(|op| match op {
            Op::SetProp { value: Some(v), .. } => *v == current,
            _ => false,
        });
        if unchanged {
            plan.ops.clear();
        }
        Ok(plan)
    }

    /// `admin.vm.device.denied.Remove`: `None` removes every code; codes not in the list are ignored.
    pub fn plan_denied_remove(&self, d: &Domain, codes: Option<&[String]>) -> Result<Plan> {
        Self::has_denied_list(d)?;
        let current = self.vm_prop(d, "devices_denied").unwrap_or_default();
        let kept: String = match codes {
            None => String::new(),
            Some(codes) => props::split_interfaces(&current)?.into_iter().filter(|c| !codes.contains(c)).collect(),
        };
        if kept == current {
            return Ok(Plan::default());
        }
        self.plan_vm_prop_set(d, "devices_denied", &kept)
    }

    /// A RemoteVM has no device list of its own to deny from.
    fn has_denied_list(d: &Domain) -> Result<()> {
        props::vm_prop_def(d.class, "devices_denied")
            .map(|_| ())
            .ok_or_else(|| Error::no_such_property(&d.name, "devices_denied"))
    }

    fn check_writable(&self, d: &Domain, access: Access, name: &str) -> Result<()> {
        if is_read_only(d, access, name) {
            return Err(Error::new(
                ErrorKind::Invalid(Invalid::PropertyValue),
                format!("property {} on {} instance cannot be set", pyrepr(name), d.class.name()),
            ));
        }
        if access == Access::WriteOnce {
            return Err(Error::new(
                ErrorKind::Invalid(Invalid::PropertyValue),
                format!("property {} can be set only once, when the qube is created", pyrepr(name)),
            ));
        }
        Ok(())
    }

    /// The `guivm-<n>`/`audiovm-<n>`/`relayvm-<n>` tags mirror properties; announce them as tag changes.
    fn auto_tag_events(&self, plan: &mut Plan, d: &Domain, prop: &str, old: Option<&str>, new: Option<&str>) {
        if !matches!(prop, "guivm" | "audiovm" | "relayvm") || old == new {
            return;
        }
        if let Some(old) = old.filter(|v| !v.is_empty()) {
            let tag = format!("{prop}-{old}");
            plan.ev(Event::on(&d.name, format!("domain-tag-delete:{tag}")).arg("tag", &tag));
        }
        if let Some(new) = new.filter(|v| !v.is_empty()) {
            let tag = format!("{prop}-{new}");
            plan.ev(Event::on(&d.name, format!("domain-tag-add:{tag}")).arg("tag", &tag));
        }
    }

    pub fn plan_global_prop_set(&self, name: &str, value: &str) -> Result<Plan> {
        let def = props::global_prop_def(name).ok_or_else(|| Error::no_such_property("Qubes", name))?;
        if def.access != Access::ReadWrite {
            return Err(Error::new(
                ErrorKind::Invalid(Invalid::PropertyValue),
                format!("property {} on Qubes instance cannot be set", pyrepr(name)),
            ));
        }
        let value = self.checked_global_value(def, value)?;
        let old = self.global_prop(name);
        let mut plan = Plan::default();
        let mut pre = Event::global(format!("property-pre-set:{name}"))
            .arg("name", name)
            .arg("newvalue", ev_value(def.ty, &value));
        if let Some(old) = &old {
            pre = pre.arg("oldvalue", ev_value(def.ty, old));
        }
        let mut post = pre.clone();
        post.name = format!("property-set:{name}");
        plan.ev(pre);
        if name == "clockvm" && !value.is_empty() {
            if let Some(vm) = self.domain(&value).filter(|vm| vm.features.get("service.clocksync").is_none()) {
                plan.op(Op::SetFeature { qid: vm.qid, name: "service.clocksync".into(), value: Some("1".into()) });
                plan.ev(Event::on(&vm.name, "domain-feature-set:service.clocksync")
                    .arg("feature", "service.clocksync")
                    .arg("value", "1"));
            }
        }
        self.announce_followers(&mut plan, name, Some(&value));
        plan.op(Op::SetGlobalProp { name: name.into(), value: Some(value) });
        plan.ev(post);
        Ok(plan)
    }

    /// Qubes whose property follows a global default see that default change as a reset of their own
    /// property, which is how clients learn that a computed value moved.
    fn announce_followers(&self, plan: &mut Plan, global: &str, new_explicit: Option<&str>) {
        let prop = match global {
            "default_netvm" => "netvm",
            "default_guivm" => "guivm",
            "default_audiovm" => "audiovm",
            "default_dispvm" => "default_dispvm",
            "management_dispvm" => "management_dispvm",
            _ => return,
        };
        let new = match new_explicit {
            Some(v) => Some(v.to_string()),
            None => props::global_prop_def(global).and_then(|def| (def.default)(self)),
        };
        for d in self.domains() {
            // Qubes whose default comes from elsewhere (their template, or a fixed None) do not follow.
            let own_default = match prop {
                "management_dispvm" => d.template_name().is_some(),
                "default_dispvm" => d.class == Class::DispVM,
                "netvm" => d.class == Class::TemplateVM || d.libvirt_network().is_some(),
                _ => false,
            };
            let follows = props::vm_prop_def(d.class, prop).is_some() && !d.props.contains_key(prop) && !own_default;
            let old = self.vm_prop(d, prop);
            if !follows || old == new {
                continue;
            }
            let mut e = Event::on(&d.name, format!("property-reset:{prop}")).arg("name", prop);
            if let Some(old) = &old {
                e = e.arg("oldvalue", ev_value(PropType::Vm, old));
            }
            plan.ev(e);
            self.auto_tag_events(plan, d, prop, old.as_deref(), new.as_deref());
        }
    }

    fn checked_global_value(&self, def: &props::GlobalPropDef, value: &str) -> Result<String> {
        let name = def.name;
        if def.ty == PropType::Vm && !value.is_empty() && self.domain(value).is_none() {
            return Err(Error::new(
                ErrorKind::Invalid(Invalid::PropertyValue),
                format!("Can't set {name} to non-existing qube {value}"),
            ));
        }
        if name != "default_template" {
            self.refuse_remote_target(def.ty, value)?;
        }
        match def.check {
            Some(check) => check(self, value),
            None => Ok(value.to_string()),
        }
    }

    pub fn plan_global_prop_reset(&self, name: &str) -> Result<Plan> {
        let def = props::global_prop_def(name).ok_or_else(|| Error::no_such_property("Qubes", name))?;
        if def.access != Access::ReadWrite {
            // A computed property holds no value of its own: qubesd's reset deletes nothing and succeeds.
            return Ok(Plan::default());
        }
        let mut plan = Plan::default();
        let mut base = Event::global(format!("property-pre-reset:{name}")).arg("name", name);
        if let Some(old) = self.global_explicit(name) {
            base = base.arg("oldvalue", ev_value(def.ty, old));
        }
        for ev in ["property-pre-reset", "property-pre-del"] {
            let mut e = base.clone();
            e.name = format!("{ev}:{name}");
            plan.ev(e);
        }
        self.announce_followers(&mut plan, name, None);
        plan.op(Op::SetGlobalProp { name: name.into(), value: None });
        for ev in ["property-reset", "property-del"] {
            let mut e = base.clone();
            e.name = format!("{ev}:{name}");
            plan.ev(e);
        }
        Ok(plan)
    }

    pub fn plan_feature_set(&self, d: &Domain, name: &str, value: &str) -> Result<Plan> {
        if name == NIC_NAME_FEATURE {
            // A card's name is a feature value, which Qubes keeps to printable ASCII.
            crate::volume::check_device_name("network card", value)?;
            if !value.is_ascii() {
                return Err(Error::value(format!(
                    "Invalid network card name {value:?}: only ASCII letters, digits, spaces and punctuation"
                )));
            }
        }
        validate_feature(name, value)?;
        if name == NETWORK_FEATURE && !value.is_empty() {
            let explicit_netvm = d.prop("netvm").filter(|n| !n.is_empty());
            if let Some(netvm) = explicit_netvm {
                return Err(Error::value(format!(
                    "{} is behind the netvm {netvm}: set its netvm to none before putting it on a libvirt network",
                    d.name
                )));
            }
            if d.is_admin() {
                return Err(Error::value("dom0 has no card to put on a libvirt network"));
            }
        }
        let old = d.features.get(name);
        let mut plan = Plan::default();
        let mut ev =
            Event::on(&d.name, format!("domain-feature-pre-set:{name}")).arg("feature", name).arg("value", value);
        if let Some(old) = old {
            ev = ev.arg("oldvalue", old);
        }
        plan.ev(ev.clone());
        plan.op(Op::SetFeature { qid: d.qid, name: name.into(), value: Some(value.into()) });
        ev.name = format!("domain-feature-set:{name}");
        plan.ev(ev);
        if name == NETWORK_FEATURE {
            let mut after = d.clone();
            after.features.set(name, value);
            self.announce_netvm_default(&mut plan, d, &after);
        }
        Ok(plan)
    }

    /// A qube's netvm default follows its libvirt network ([`NETWORK_FEATURE`]): when that moves the
    /// computed netvm, clients learn it as a reset of the property, as with a global default's change.
    fn announce_netvm_default(&self, plan: &mut Plan, before: &Domain, after: &Domain) {
        if before.props.contains_key("netvm") {
            return;
        }
        let (old, new) = (self.vm_prop(before, "netvm"), self.vm_prop(after, "netvm"));
        if old == new {
            return;
        }
        let mut e = Event::on(&before.name, "property-reset:netvm").arg("name", "netvm");
        if let Some(old) = &old {
            e = e.arg("oldvalue", ev_value(PropType::Vm, old));
        }
        plan.ev(e);
    }

    pub fn plan_feature_remove(&self, d: &Domain, name: &str) -> Result<Plan> {
        if PROTECTED_FEATURES.contains(&name) {
            return Err(protected_feature_error());
        }
        if d.features.get(name).is_none() {
            return Err(Error::new(
                ErrorKind::NotFound(Missing::Feature),
                format!("Feature not set for domain {}: {name}", d.name),
            ));
        }
        let mut plan = Plan::default();
        plan.ev(Event::on(&d.name, format!("domain-feature-pre-delete:{name}")).arg("feature", name));
        plan.op(Op::SetFeature { qid: d.qid, name: name.into(), value: None });
        plan.ev(Event::on(&d.name, format!("domain-feature-delete:{name}")).arg("feature", name));
        if name == NETWORK_FEATURE {
            let mut after = d.clone();
            after.features.remove(name);
            self.announce_netvm_default(&mut plan, d, &after);
        }
        Ok(plan)
    }

    pub fn plan_tag_set(&self, d: &Domain, tag: &str, caller_is_dom0: bool) -> Result<Plan> {
        crate::text::validate_tag(tag)?;
        if tag.starts_with("created-by-") && !caller_is_dom0 {
            return Err(Error::denied("changing this tag is prohibited by qubes.ext.admin.AdminExtension"));
        }
        let mut plan = Plan::default();
        if !self.tags_of(d).iter().any(|t| t == tag) {
            plan.op(Op::SetTag { qid: d.qid, tag: tag.into(), present: true });
            plan.ev(Event::on(&d.name, format!("domain-tag-add:{tag}")).arg("tag", tag));
        }
        Ok(plan)
    }

    pub fn plan_tag_remove(&self, d: &Domain, tag: &str, caller_is_dom0: bool) -> Result<Plan> {
        crate::text::validate_tag(tag)?;
        if tag.starts_with("created-by-") && !caller_is_dom0 {
            return Err(Error::denied("changing this tag is prohibited by qubes.ext.admin.AdminExtension"));
        }
        if !d.tags.contains(tag) {
            if self.tags_of(d).iter().any(|t| t == tag) {
                return Err(Error::denied(format!("Tag {tag} follows a property and cannot be removed")));
            }
            return Err(Error::new(
                ErrorKind::NotFound(Missing::Tag),
                format!("Tag not set for domain {}: {tag}", d.name),
            ));
        }
        let mut plan = Plan::default();
        plan.op(Op::SetTag { qid: d.qid, tag: tag.into(), present: false });
        plan.ev(Event::on(&d.name, format!("domain-tag-delete:{tag}")).arg("tag", tag));
        Ok(plan)
    }

    /// Another host's model (a qubes.xml's ops, made for a fresh store) moved in. Only a store without
    /// qubes takes it: merging two hosts' qubes would renumber one's and break their references. Labels
    /// and pools the store already has by another definition would be overwritten or collide, so they
    /// refuse it too; the import adds no events (nothing listens to a stopped daemon's state).
    pub fn plan_import(&self, ops: Vec<Op>) -> Result<Plan> {
        if self.domains().any(|d| !d.is_admin()) || self.has_quarantined_qubes() {
            return Err(Error::value("The state already holds qubes: import into a fresh state directory"));
        }
        for op in &ops {
            match op {
                Op::InsertLabel(l) => {
                    let taken = self.labels().any(|o| o.index == l.index || o.name == l.name)
                        || self.is_quarantined_label_name(&l.name)
                        || self.is_quarantined_label_index(l.index);
                    if taken {
                        return Err(Error::value(format!(
                            "Label {} (index {}) collides with a label the state already has",
                            l.name, l.index
                        )));
                    }
                }
                Op::PutPool(p) if self.pool(&p.name).is_some_and(|o| o != p) => {
                    return Err(Error::value(format!("Pool {} is already defined differently in the state", p.name)));
                }
                _ => {}
            }
        }
        Ok(Plan { ops, events: Vec::new() })
    }

    pub fn plan_label_create(&self, name: &str, color: &str) -> Result<Plan> {
        if self.labels().any(|l| l.name == name) || self.is_quarantined_label_name(name) {
            return Err(Error::new(
                ErrorKind::Conflict(Conflict::LabelInUse),
                format!("Label is still in use: {}", pyrepr(name)),
            ));
        }
        let quarantined = self.quarantined_label_index().and_then(|i| u32::try_from(i).ok()).unwrap_or(0);
        let index = self.labels().map(|l| l.index).max().unwrap_or(0).max(LAST_BUILTIN_INDEX).max(quarantined) + 1;
        let mut plan = Plan::default();
        plan.op(Op::InsertLabel(Label { index, name: name.into(), color: color.into() }));
        Ok(plan)
    }

    pub fn plan_label_remove(&self, name: &str) -> Result<Plan> {
        let label = self
            .get_label(name)
            .ok_or_else(|| Error::new(ErrorKind::NotFound(Missing::Label), format!("Label does not exist: {name}")))?;
        if label.index <= LAST_BUILTIN_INDEX {
            return Err(Error::protocol("Can only remove custom labels"));
        }
        if self.domains().any(|d| d.prop("label") == Some(label.name.as_str())) {
            // qubesd formats the label object itself here: `Label(index, color, name)`.
            return Err(Error::new(
                ErrorKind::Conflict(Conflict::LabelInUse),
                format!(
                    "Label is still in use: Label({}, {}, {})",
                    label.index,
                    pyrepr(&label.color),
                    pyrepr(&label.name)
                ),
            ));
        }
        let mut plan = Plan::default();
        plan.op(Op::DeleteLabel { index: label.index });
        Ok(plan)
    }

    pub fn plan_pool_add(&self, pool: Pool) -> Result<Plan> {
        if self.pool(&pool.name).is_some() {
            return Err(Error::new(
                ErrorKind::Conflict(Conflict::PoolInUse),
                format!("Storage pool is in use: {}", pyrepr(&pool.name)),
            ));
        }
        let mut plan = Plan::default();
        plan.ev(Event::global("pool-add").arg("pool", &pool.name));
        plan.op(Op::PutPool(pool));
        Ok(plan)
    }

    pub fn plan_pool_remove(&self, name: &str) -> Result<Plan> {
        let in_use_by_volume = self
            .domains()
            .any(|d| d.volumes.iter().any(|v| v.pool == name && !(v.name == "kernel" && v.vid.is_empty())));
        if in_use_by_volume {
            return Err(Error::new(
                ErrorKind::Conflict(Conflict::PoolInUse),
                format!("Storage pool is in use: {}", pyrepr(name)),
            ));
        }
        // qubesd checks default_pool, then _kernel, _private, _root, _volatile: the table's order.
        let default_for = props::GLOBAL_PROPS
            .iter()
            .filter(|p| p.name.starts_with("default_pool"))
            .find(|p| self.global_prop(p.name).as_deref() == Some(name));
        if let Some(p) = default_for {
            return Err(Error::new(
                ErrorKind::Conflict(Conflict::PoolInUse),
                format!("Storage pool is in use: set as {}", p.name),
            ));
        }
        let mut plan = Plan::default();
        plan.ev(Event::global("pool-pre-delete").arg("pool", name));
        plan.op(Op::DeletePool { name: name.into() });
        plan.ev(Event::global("pool-delete").arg("pool", name));
        Ok(plan)
    }

    pub fn plan_pool_update(&self, pool: Pool) -> Plan {
        let mut plan = Plan::default();
        plan.op(Op::PutPool(pool));
        plan
    }

    pub fn plan_volume_update(&self, d: &Domain, volume: Volume) -> Plan {
        let mut plan = Plan::default();
        plan.op(Op::SetVolume { qid: d.qid, volume });
        plan
    }

    /// A further disk for qube `d`: a new empty rw volume of `size` bytes in `file` pool `pool`, kept across
    /// starts like `private`, named `disk<index>` (by default the lowest free number). Returns the volume too,
    /// whose image the caller creates before committing.
    pub fn plan_volume_add(&self, d: &Domain, new: &NewDisk) -> Result<(Plan, Volume)> {
        let (pool, size, index) = (new.pool.as_str(), new.size, new.index);
        if d.is_admin() {
            return Err(Error::value("dom0 has no volumes: it cannot get disks"));
        }
        let pool = self.pool(pool).ok_or_else(|| {
            Error::new(ErrorKind::NotFound(Missing::Pool), format!("Pool not found: {}", pyrepr(pool)))
        })?;
        if pool.driver != Driver::File {
            return Err(Error::value(format!(
                "Pool {} holds {} boot media, not disks: choose a file pool",
                pool.name,
                pool.driver.name()
            )));
        }
        if size == 0 {
            return Err(Error::value("A disk needs a size larger than 0 bytes"));
        }
        let taken = |n: u32| d.volume(&crate::volume::extra_disk_name(n)).is_some();
        let max = crate::volume::MAX_EXTRA_DISKS;
        let n = match index {
            Some(n) if !(1..=max).contains(&n) => {
                return Err(Error::value(format!("Disk numbers go from 1 to {max}, not {n}")));
            }
            Some(n) if taken(n) => {
                return Err(Error::value(format!(
                    "{} already has a volume {}",
                    d.name,
                    crate::volume::extra_disk_name(n)
                )));
            }
            Some(n) => n,
            None => (1..=max).find(|n| !taken(*n)).ok_or_else(|| {
                Error::value(format!("{} already has {max} further disks, the most a qube can have", d.name))
            })?,
        };
        let name = crate::volume::extra_disk_name(n);
        let volume = Volume {
            vid: format!("{}/{}/{}", vid_prefix(d.class), d.name, name),
            name,
            pool: pool.name.clone(),
            size,
            rw: true,
            source: None,
            save_on_stop: true,
            snap_on_start: false,
            revisions_to_keep: pool.revisions_to_keep,
            ephemeral: None,
            bootable: new.bootable,
            preallocated: new.preallocated,
            alias: None,
        };
        let volume = Volume { alias: disk_alias(d, &volume.name, new.alias.as_deref())?, ..volume };
        if new.bootable {
            check_no_boot_disk(d, &volume.name)?;
        }
        let mut plan = Plan::default();
        plan.op(Op::SetVolume { qid: d.qid, volume: volume.clone() });
        Ok((plan, volume))
    }

    /// Makes further disk `name` of qube `d` the one it boots from without a kernel, or (`false`) no longer so,
    /// which leaves the root volume to boot from. A qube has one boot disk: choosing a second one while another
    /// is chosen is refused, as oVirt refuses it, rather than silently moving the choice.
    pub fn plan_volume_bootable(&self, d: &Domain, name: &str, bootable: bool) -> Result<Plan> {
        let v = d.volume(name).ok_or_else(|| {
            Error::new(ErrorKind::NotFound(Missing::Volume), format!("Volume {name} not found in {}", d.name))
        })?;
        let mut plan = Plan::default();
        if d.boot_volume().is_some_and(|b| b.name == name) == bootable {
            return Ok(plan);
        }
        if bootable {
            check_no_boot_disk(d, name)?;
        }
        if crate::volume::extra_disk_index(name).is_none() {
            return Err(Error::value(format!(
                "The {name} volume of {} is not chosen to boot from: the root volume boots when no further disk is \
                 chosen, so choose (or unchoose) one of its further disks instead",
                d.name
            )));
        }
        plan.op(Op::SetVolume { qid: d.qid, volume: Volume { bootable, ..v.clone() } });
        Ok(plan)
    }

    /// Drops further disk `name` of qube `d`; the class's own volumes go only with the qube.
    pub fn plan_volume_remove(&self, d: &Domain, name: &str) -> Result<Plan> {
        if d.volume(name).is_none() {
            return Err(Error::new(
                ErrorKind::NotFound(Missing::Volume),
                format!("Volume {name} not found in {}", d.name),
            ));
        }
        if crate::volume::extra_disk_index(name).is_none() {
            return Err(Error::value(format!(
                "The {name} volume of {} comes with its class: it goes only with the qube",
                d.name
            )));
        }
        let mut plan = Plan::default();
        plan.op(Op::DeleteVolume { qid: d.qid, name: name.to_string() });
        Ok(plan)
    }

    pub fn plan_firewall_set(&self, d: &Domain, rules: Vec<crate::firewall::Rule>) -> Plan {
        let mut plan = Plan::default();
        plan.op(Op::SetFirewall { qid: d.qid, rules });
        plan.ev(Event::on(&d.name, "firewall-changed"));
        plan
    }

    pub fn plan_notes_set(&self, d: &Domain, text: String) -> Plan {
        let mut plan = Plan::default();
        plan.op(Op::SetNotes { qid: d.qid, text });
        plan
    }
}

/// The alias to store for further disk `volume` of `d` named `alias` by a user (`None`: not named): checked as a
/// device name, and `None` again when it is the default `<qube>-<volume>`, which then follows the qube's name.
/// The class's volumes keep the name their qube gives them.
pub fn disk_alias(d: &Domain, volume: &str, alias: Option<&str>) -> Result<Option<String>> {
    let Some(alias) = alias else { return Ok(None) };
    if alias == format!("{}-{volume}", d.name) {
        return Ok(None);
    }
    if crate::volume::extra_disk_index(volume).is_none() {
        return Err(Error::value(format!(
            "The {volume} volume of {0} is named {0}-{volume} by its qube: only further disks take other names",
            d.name
        )));
    }
    crate::volume::check_device_name("disk", alias)?;
    Ok(Some(alias.to_string()))
}

/// Refuses a second boot disk: `d` must have no chosen boot disk but (possibly) `name` itself.
fn check_no_boot_disk(d: &Domain, name: &str) -> Result<()> {
    match d.volumes.iter().find(|v| v.bootable && v.name != name) {
        Some(other) => Err(Error::new(
            ErrorKind::Conflict(Conflict::QubeInUse),
            format!("{} boots from its disk {}-{} already: a qube has one boot disk", d.name, d.name, other.name),
        )),
        None => Ok(()),
    }
}

/// Computed properties, and the AdminVM's fixed identity, which no caller may set.
fn is_read_only(d: &Domain, access: Access, name: &str) -> bool {
    access == Access::ReadOnly || (d.is_admin() && props::admin_read_only(name))
}

/// Features nobody may set or remove, dom0 included: the daemon keeps them.
pub const PROTECTED_FEATURES: [&str; 4] =
    ["deferred-netvm-original", "preload-dispvm", "preload-dispvm-completed", "preload-dispvm-in-progress"];

pub fn validate_feature_name(name: &str) -> Result<()> {
    if !crate::text::is_safe_name(name) {
        return Err(Error::protocol("feature name contains illegal characters"));
    }
    Ok(())
}

/// Upstream's admin extension refuses these in its permission hook, so the message names it.
pub fn protected_feature_error() -> Error {
    Error::denied("changing this feature is prohibited by qubes.ext.admin.AdminExtension")
}

/// In qubesd's order: name, value characters, the permission hook (protected names), then the
/// services extension's check of `service.*` names.
pub fn validate_feature(name: &str, value: &str) -> Result<()> {
    validate_feature_name(name)?;
    if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(Error::protocol(format!("{name} value contains illegal characters")));
    }
    if PROTECTED_FEATURES.contains(&name) {
        return Err(protected_feature_error());
    }
    if let Some(service) = name.strip_prefix("service.") {
        let why = if service.is_empty() {
            "Service name cannot be empty"
        } else if service.contains('/') {
            "Service name cannot contain a slash"
        } else if service == "." || service == ".." {
            "Service name cannot be \".\" or \"..\""
        } else if service.len() > 48 && !service.starts_with("app-dispvm.") {
            "Service name must not exceed 48 bytes"
        } else {
            return Ok(());
        };
        return Err(Error::value(why));
    }
    Ok(())
}

/// The payload of `admin.vm.device.denied.Add`/`Remove`: concatenated 7-character codes, each at most
/// once; `None` for Remove's `all`. The codes themselves are checked when the property is set.
pub fn parse_denied_payload(payload: &[u8], all_allowed: bool) -> Result<Option<Vec<String>>> {
    let text = std::str::from_utf8(payload)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or_else(|| Error::protocol("Device interface contains non-ASCII characters"))?;
    if all_allowed && text == "all" {
        return Ok(None);
    }
    let codes = props::split_interfaces(text)?;
    let mut unique = codes.clone();
    unique.sort();
    unique.dedup();
    if unique.len() != codes.len() {
        return Err(Error::protocol("Duplicated device interfaces in payload."));
    }
    Ok(Some(codes))
}

/// Notes: UTF-8 of at most 256000 bytes; code points that could hide text become `_`.
pub fn sanitize_notes(payload: &[u8]) -> Result<String> {
    if payload.len() > 256_000 {
        return Err(Error::protocol(format!("Maximum note size is 256000 bytes ({} bytes received)", payload.len())));
    }
    let text = std::str::from_utf8(payload)
        .map_err(|e| Error::protocol(format!("Unable to sanitise qube notes: {}", python_utf8_error(payload, e))))?;
    Ok(text
        .chars()
        .map(|c| {
            let unsafe_control =
                (c.is_control() && c != '\t' && c != '\n') || matches!(c, '\u{a0}' | '\u{200b}'..='\u{200d}');
            if unsafe_control {
                '_'
            } else {
                c
            }
        })
        .collect())
}

/// The text of Python's `UnicodeDecodeError` for `bytes.decode("utf8")`, which qubesd's notes error embeds.
/// Rust and Python both report the maximal invalid subsequence, so the byte ranges agree.
fn python_utf8_error(payload: &[u8], e: std::str::Utf8Error) -> String {
    let start = e.valid_up_to();
    let first = payload.get(start).copied().unwrap_or(0);
    let (end, reason) = match e.error_len() {
        None => (payload.len(), "unexpected end of data"),
        Some(n) if matches!(first, 0x80..=0xc1 | 0xf5..=0xff) => (start + n, "invalid start byte"),
        Some(n) => (start + n, "invalid continuation byte"),
    };
    if end <= start + 1 {
        format!("'utf-8' codec can't decode byte 0x{first:02x} in position {start}: {reason}")
    } else {
        format!("'utf-8' codec can't decode bytes in position {start}-{}: {reason}", end - 1)
    }
}

/// `True`/`False` the way bool payloads are echoed back in volume and pool info.
pub fn bool_text(b: bool) -> &'static str {
    format_bool(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_replace_hiding_code_points() {
        assert_eq!(sanitize_notes("a\u{8}b\u{a0}c\u{200c}d\te\nf".as_bytes()).unwrap(), "a_b_c_d\te\nf");
        assert_eq!(sanitize_notes(b"\xff").unwrap_err().kind, ErrorKind::Malformed);
        let why = |p: &[u8]| sanitize_notes(p).unwrap_err().message.replace("Unable to sanitise qube notes: ", "");
        assert_eq!(why(b"\xd8"), "'utf-8' codec can't decode byte 0xd8 in position 0: unexpected end of data");
        assert_eq!(why(b"ab\xe2\x82"), "'utf-8' codec can't decode bytes in position 2-3: unexpected end of data");
        assert_eq!(why(b"\xff"), "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte");
        assert_eq!(why(b"\xe2\x28"), "'utf-8' codec can't decode byte 0xe2 in position 0: invalid continuation byte");
        assert_eq!(
            why(b"\xf0\x9f\x98x"),
            "'utf-8' codec can't decode bytes in position 0-2: invalid continuation byte"
        );
        assert!(sanitize_notes(&vec![b'a'; 256_001]).is_err());
    }

    fn app_with(name: &str) -> App {
        let mut app = App::empty(crate::app::HostInfo { memory_mib: 4096, cpus: 2 });
        for op in App::initial_ops("/var/lib/qubes", "/var/lib/qubes/vm-kernels") {
            app.apply(op);
        }
        let spec = CreateSpec {
            class: Class::StandaloneVM,
            name: name.into(),
            label: "red".into(),
            template: None,
            pools: PoolChoice::Defaults,
            creator: "dom0".into(),
            uuid: Uuid::new_v4(),
        };
        for op in app.plan_create(&spec).unwrap().ops {
            app.apply(op);
        }
        app
    }

    /// Another host's model moves only into a state without qubes, and not over labels or pools the state
    /// defines otherwise; into a fresh one its ops are the plan, unchanged.
    #[test]
    fn an_import_needs_a_state_without_qubes() {
        let fresh = {
            let mut app = App::empty(crate::app::HostInfo { memory_mib: 4096, cpus: 2 });
            for op in App::initial_ops("/var/lib/qubes", "/var/lib/qubes/vm-kernels") {
                app.apply(op);
            }
            app
        };
        let mut qube = Domain::new(7, "moved", Uuid::from_u128(7), Class::StandaloneVM);
        qube.props.insert("label".into(), "red".into());
        let label = Label { index: 9, name: "teal".into(), color: "0x008080".into() };
        let ops = vec![Op::InsertLabel(label.clone()), Op::InsertDomain(Box::new(qube))];

        assert_eq!(fresh.plan_import(ops.clone()).unwrap().ops.len(), 2);
        assert!(app_with("web").plan_import(ops.clone()).is_err());
        let mut quarantined = fresh.clone();
        quarantined.quarantine_keys(Some(3), Some("lost"), None);
        assert!(quarantined.plan_import(ops.clone()).is_err());
        let mut labelled = fresh.clone();
        labelled.apply(Op::InsertLabel(Label { name: "other".into(), ..label }));
        assert!(labelled.plan_import(ops).is_err());
        let mut other_pool = fresh.pool("varlibqubes").unwrap().clone();
        other_pool.dir_path = "/elsewhere".into();
        assert!(fresh.plan_import(vec![Op::PutPool(other_pool)]).is_err());
        assert!(fresh.plan_import(vec![Op::PutPool(fresh.pool("varlibqubes").unwrap().clone())]).is_ok());
    }

    #[test]
    fn further_disks_take_the_lowest_free_number_and_only_they_can_be_removed() {
        let mut app = app_with("web");
        let d = app.domain("web").unwrap().clone();
        let (plan, v) = app.plan_volume_add(&d, &NewDisk::thin("varlibqubes", GIB, None)).unwrap();
        assert_eq!((v.name.as_str(), v.vid.as_str(), v.size), ("disk1", "appvms/web/disk1", GIB));
        assert!(v.rw && v.save_on_stop && !v.snap_on_start && v.source.is_none());
        for op in plan.ops {
            app.apply(op);
        }
        let d = app.domain("web").unwrap().clone();
        let (_, v) = app.plan_volume_add(&d, &NewDisk::thin("varlibqubes", 1, None)).unwrap();
        assert_eq!(v.name, "disk2");
        let taken = app.plan_volume_add(&d, &NewDisk::thin("varlibqubes", 1, Some(1))).unwrap_err();
        assert_eq!(taken.kind, ErrorKind::Invalid(Invalid::Value));
        assert_eq!(
            app.plan_volume_add(&d, &NewDisk::thin("varlibqubes", 0, None)).unwrap_err().kind,
            ErrorKind::Invalid(Invalid::Value)
        );
        assert_eq!(
            app.plan_volume_add(&d, &NewDisk::thin("varlibqubes", 1, Some(23))).unwrap_err().kind,
            ErrorKind::Invalid(Invalid::Value)
        );
        assert_eq!(
            app.plan_volume_add(&d, &NewDisk::thin("linux-kernel", 1, None)).unwrap_err().kind,
            ErrorKind::Invalid(Invalid::Value)
        );
        assert_eq!(
            app.plan_volume_add(&d, &NewDisk::thin("nowhere", 1, None)).unwrap_err().kind,
            ErrorKind::NotFound(Missing::Pool)
        );
        assert_eq!(app.plan_volume_remove(&d, "private").unwrap_err().kind, ErrorKind::Invalid(Invalid::Value));
        assert_eq!(app.plan_volume_remove(&d, "disk2").unwrap_err().kind, ErrorKind::NotFound(Missing::Volume));
        for op in app.plan_volume_remove(&d, "disk1").unwrap().ops {
            app.apply(op);
        }
        let names: Vec<_> = app.domain("web").unwrap().volumes.iter().map(|v| v.name.clone()).collect();
        assert_eq!(names, ["root", "private", "volatile", "kernel"]);
    }

    #[test]
    fn a_further_disk_keeps_the_name_a_user_gives_it() {
        let app = app_with("web");
        let d = app.domain("web").unwrap();
        let named = NewDisk { alias: Some("sdk-data".into()), ..NewDisk::thin("varlibqubes", GIB, None) };
        let (_, v) = app.plan_volume_add(d, &named).unwrap();
        assert_eq!((v.name.as_str(), v.alias.as_deref()), ("disk1", Some("sdk-data")));
        assert_eq!(d.disk_alias(&v), "sdk-data");
        let default = NewDisk { alias: Some("web-disk1".into()), ..NewDisk::thin("varlibqubes", GIB, None) };
        let (_, v) = app.plan_volume_add(d, &default).unwrap();
        assert_eq!((v.alias.clone(), d.disk_alias(&v)), (None, "web-disk1".to_string()));
        let bad = NewDisk { alias: Some("two\nlines".into()), ..NewDisk::thin("varlibqubes", GIB, None) };
        assert_eq!(app.plan_volume_add(d, &bad).unwrap_err().kind, ErrorKind::Invalid(Invalid::Value));
        assert_eq!(disk_alias(d, "root", Some("system")).unwrap_err().kind, ErrorKind::Invalid(Invalid::Value));
        assert_eq!(disk_alias(d, "root", Some("web-root")).unwrap(), None);
    }

    #[test]
    fn a_qube_has_one_boot_disk_and_only_further_disks_are_chosen() {
        let mut app = app_with("web");
        let d = app.domain("web").unwrap().clone();
        let boot = NewDisk { bootable: true, ..NewDisk::thin("varlibqubes", GIB, None) };
        for op in app.plan_volume_add(&d, &boot).unwrap().0.ops {
            app.apply(op);
        }
        let d = app.domain("web").unwrap().clone();
        assert!(d.volume("disk1").unwrap().bootable);

        assert_eq!(app.plan_volume_add(&d, &boot).unwrap_err().kind, ErrorKind::Conflict(Conflict::QubeInUse));
        for op in app.plan_volume_add(&d, &NewDisk::thin("varlibqubes", GIB, None)).unwrap().0.ops {
            app.apply(op);
        }
        let d = app.domain("web").unwrap().clone();
        assert_eq!(
            app.plan_volume_bootable(&d, "disk2", true).unwrap_err().kind,
            ErrorKind::Conflict(Conflict::QubeInUse)
        );
        assert_eq!(
            app.plan_volume_bootable(&d, "root", true).unwrap_err().kind,
            ErrorKind::Conflict(Conflict::QubeInUse)
        );
        assert!(app.plan_volume_bootable(&d, "disk1", true).unwrap().ops.is_empty());
        assert!(app.plan_volume_bootable(&d, "root", false).unwrap().ops.is_empty());
        for op in app.plan_volume_bootable(&d, "disk1", false).unwrap().ops {
            app.apply(op);
        }
        let d = app.domain("web").unwrap().clone();
        for op in app.plan_volume_bootable(&d, "disk2", true).unwrap().ops {
            app.apply(op);
        }
        let d = app.domain("web").unwrap().clone();
        let chosen: Vec<&str> = d.volumes.iter().filter(|v| v.bootable).map(|v| v.name.as_str()).collect();
        assert_eq!(chosen, ["disk2"]);
        assert_eq!(d.boot_volume().unwrap().name, "disk2");
        for op in app.plan_volume_bootable(&d, "disk2", false).unwrap().ops {
            app.apply(op);
        }
        let d = app.domain("web").unwrap();
        assert_eq!(d.boot_volume().unwrap().name, "root");
        assert_eq!(app.plan_volume_bootable(d, "root", false).unwrap_err().kind, ErrorKind::Invalid(Invalid::Value));
    }

    #[test]
    fn feature_rules() {
        assert!(validate_feature("gui", "1").is_ok());
        assert!(validate_feature("gui", "").is_ok());
        assert_eq!(validate_feature("service.", "1").unwrap_err().kind, ErrorKind::Invalid(Invalid::Value));
        assert!(validate_feature(&format!("service.{}", "a".repeat(49)), "1").is_err());
        assert!(validate_feature(&format!("service.{}", "a".repeat(48)), "1").is_ok());
        assert_eq!(validate_feature("preload-dispvm", "x").unwrap_err().kind, ErrorKind::Denied);
        assert_eq!(validate_feature("a b", "x").unwrap_err().kind, ErrorKind::Malformed);
        assert_eq!(validate_feature("a", "\t").unwrap_err().kind, ErrorKind::Malformed);
    }
}
