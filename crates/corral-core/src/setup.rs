//! A new qube planned together with everything it starts with: a door's single create request, a clone, a
//! template made from a qube. The settings are planned against the model as it will be once the qube exists, so
//! the service commits the whole as one transaction and no one, not even a restart after a crash, sees the qube
//! half made. What a clone or a template takes over from its source is decided here too.

use uuid::Uuid;

use crate::app::{App, Op};
use crate::domain::{Class, Domain};
use crate::error::{Error, ErrorKind, Failure, Missing, Result};
use crate::event::Event;
use crate::firewall::Rule;
use crate::plan::{CreateSpec, Plan, PoolChoice};
use crate::props;
use crate::volume::{extra_disk_index, NewDisk, Volume};

/// Properties a clone does not take over: its own identity, what creation already set, and the MAC that
/// must stay unique on the network.
pub const NOT_CLONED: [&str; 5] = ["name", "label", "template", "mac", "uuid"];

/// Properties a template made from a qube takes over when the qube sets them, as `qvm-clone` copies the
/// explicitly set ones (identity and references are the new qube's own).
pub const TEMPLATE_PROPS: [&str; 5] = ["memory", "maxmem", "vcpus", "kernel", "kernelopts"];

/// Volumes whose content a template made from a qube takes over (volatile starts empty every time).
pub const TEMPLATE_VOLUMES: [&str; 2] = ["root", "private"];

/// What a new qube starts with besides what its creation gives it, in the order it is planned.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// Further disks, created empty (a copy then fills them).
    pub disks: Vec<NewDisk>,
    /// Content copied into the new qube's volumes before it is committed.
    pub copies: Vec<VolumeCopy>,
    /// Property values, already sanitized for their type.
    pub props: Vec<(String, String)>,
    pub notes: Option<String>,
    pub features: Vec<(String, String)>,
    pub tags: Vec<String>,
    pub firewall: Option<Vec<Rule>>,
}

impl Setup {
    /// Whether the qube starts with nothing but what its creation gives it.
    pub fn is_empty(&self) -> bool {
        let Setup { disks, copies, props, notes, features, tags, firewall } = self;
        disks.is_empty()
            && copies.is_empty()
            && props.is_empty()
            && notes.is_none()
            && features.is_empty()
            && tags.is_empty()
            && firewall.is_none()
    }

    /// Property values a caller asks for win over those the setup takes from elsewhere; they come last.
    pub fn override_props(&mut self, wanted: Vec<(String, String)>) {
        self.props.retain(|(k, _)| !wanted.iter().any(|(w, _)| w == k));
        self.props.extend(wanted);
    }
}

/// The content of volume `from_volume` of qube `from_vm`, copied into the new qube's volume `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeCopy {
    pub from_vm: String,
    pub from_volume: String,
    pub to: String,
    /// The copy gets all its blocks once its content is in (the volume is created thin: created
    /// preallocated, its empty image would be allocated for nothing).
    pub preallocate: bool,
}

/// A planned new qube: the plan to commit, and the qube as it will be (its volumes are the files to create).
#[derive(Debug)]
pub struct NewQube {
    pub plan: Plan,
    pub domain: Domain,
}

/// A copy's further disk `n` like `v`: the same number, pool, size, boot flag and given name. It starts thin
/// (see [`VolumeCopy::preallocate`]).
fn further_disk(v: &Volume, n: u32) -> NewDisk {
    NewDisk { bootable: v.bootable, alias: v.alias.clone(), ..NewDisk::thin(&v.pool, v.size, Some(n)) }
}

/// The further disks of `src`, each with the copy of its content.
fn further_disks(src: &Domain) -> impl Iterator<Item = (NewDisk, VolumeCopy)> + '_ {
    src.volumes.iter().filter_map(|v| {
        let n = extra_disk_index(&v.name)?;
        let copy = VolumeCopy {
            from_vm: src.name.clone(),
            from_volume: v.name.clone(),
            to: v.name.clone(),
            preallocate: v.preallocated,
        };
        Some((further_disk(v, n), copy))
    })
}

impl App {
    /// A copy of qube `src` named `name`, as `qvm-clone` makes one: the same class, label and template, its
    /// explicitly set properties (not its MAC), features, tags (not `created-by-*`), firewall (its rules not
    /// expired at `now_epoch`) and notes, its further disks, and the content of the volumes it keeps across
    /// starts.
    pub fn clone_setup(
        &self,
        src: &Domain,
        name: &str,
        creator: &str,
        uuid: Uuid,
        now_epoch: u64,
    ) -> Result<(CreateSpec, Setup)> {
        if src.is_admin() {
            return Err(Error::new(ErrorKind::Failed(Failure::Qube), "Cannot clone dom0"));
        }
        let spec = CreateSpec {
            class: src.class,
            name: name.to_string(),
            label: src.prop("label").unwrap_or("red").to_string(),
            template: src.prop("template").map(str::to_string),
            pools: PoolChoice::Defaults,
            creator: creator.to_string(),
            uuid,
        };
        let mut setup = Setup { disks: further_disks(src).map(|(disk, _)| disk).collect(), ..Setup::default() };
        setup.copies = src
            .volumes
            .iter()
            .filter(|v| v.save_on_stop)
            .map(|v| VolumeCopy {
                from_vm: src.name.clone(),
                from_volume: v.name.clone(),
                to: v.name.clone(),
                preallocate: v.preallocated,
            })
            .collect();
        for (prop, value) in src.props.iter().filter(|(k, _)| !NOT_CLONED.contains(&k.as_str())) {
            let def = props::vm_prop_def(src.class, prop).ok_or_else(|| Error::no_such_property(name, prop))?;
            setup.props.push((prop.clone(), props::sanitize(def.ty, value.as_bytes())?));
        }
        setup.notes = Some(src.notes.clone());
        setup.features = src.features.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        setup.tags = src.tags.iter().filter(|t| !t.starts_with("created-by-")).cloned().collect();
        setup.firewall = Some(src.firewall.iter().filter(|r| !r.is_expired(now_epoch)).cloned().collect());
        Ok((spec, setup))
    }

    /// A TemplateVM named `name` made from qube `src`, as `qvm-clone` makes one: `src`'s label, its root and
    /// private content (a snapshot volume's content comes from its origin, e.g. an AppVM's root from its
    /// template), copies of its further disks and its explicitly set [`TEMPLATE_PROPS`].
    pub fn template_setup(&self, src: &Domain, name: &str, creator: &str, uuid: Uuid) -> Result<(CreateSpec, Setup)> {
        if src.is_admin() {
            return Err(Error::new(ErrorKind::Failed(Failure::Qube), "Cannot make a template of dom0"));
        }
        let spec = CreateSpec {
            class: Class::TemplateVM,
            name: name.to_string(),
            label: self.vm_prop(src, "label").unwrap_or_else(|| "red".into()),
            template: None,
            pools: PoolChoice::Defaults,
            creator: creator.to_string(),
            uuid,
        };
        let mut setup = Setup::default();
        for volume in TEMPLATE_VOLUMES {
            let Some(v) = src.volume(volume) else { continue };
            let (from_vm, from_volume) = self.origin_of(src, v);
            setup.copies.push(VolumeCopy { from_vm, from_volume, to: volume.to_string(), preallocate: false });
        }
        // Further disks are data like private: the template gets its own copies.
        for (disk, copy) in further_disks(src) {
            setup.disks.push(disk);
            setup.copies.push(copy);
        }
        setup.props =
            TEMPLATE_PROPS.iter().filter_map(|p| src.prop(p).map(|v| (p.to_string(), v.to_string()))).collect();
        Ok((spec, setup))
    }

    /// The qube and volume holding volume `v`'s content: itself, or for a snapshot volume the origin it
    /// starts from.
    fn origin_of(&self, d: &Domain, v: &Volume) -> (String, String) {
        let origin = v.source.as_ref().filter(|_| v.snap_on_start).and_then(|src| {
            self.domains().find_map(|o| {
                o.volumes
                    .iter()
                    .find(|ov| &ov.vid == src && !ov.snap_on_start)
                    .map(|ov| (o.name.clone(), ov.name.clone()))
            })
        });
        origin.unwrap_or_else(|| (d.name.clone(), v.name.clone()))
    }

    /// The creation of `spec` with everything `setup` gives the new qube, as one plan. Each step is planned
    /// against the model as the steps before leave it, the way the separate calls would see it (the property
    /// values all at once, as one `update` sets them). `caller_is_dom0` as for [`App::plan_tag_set`].
    pub fn plan_create_with(&self, spec: &CreateSpec, setup: &Setup, caller_is_dom0: bool) -> Result<NewQube> {
        let mut plan = self.plan_create(spec)?;
        if setup.is_empty() {
            // A plain create (most Admin API creates): its one insert is the whole new qube, and the model
            // need not be copied to plan against.
            let domain = plan.ops.iter().find_map(|op| match op {
                Op::InsertDomain(d) if d.name == spec.name => Some((**d).clone()),
                _ => None,
            });
            let domain = domain.ok_or_else(|| Error::vm_not_found(&spec.name))?;
            return Ok(NewQube { plan, domain });
        }
        let mut after = self.clone();
        for op in plan.ops.clone() {
            after.apply(op);
        }
        let mut add = |after: &mut App, step: Plan| {
            for op in step.ops {
                after.apply(op.clone());
                plan.ops.push(op);
            }
            plan.events.extend(step.events);
        };
        let new = |after: &App| -> Result<Domain> {
            after.domain(&spec.name).cloned().ok_or_else(|| Error::vm_not_found(&spec.name))
        };
        for disk in &setup.disks {
            let (step, _) = after.plan_volume_add(&new(&after)?, disk)?;
            add(&mut after, step);
        }
        for copy in &setup.copies {
            let from = self
                .domain(&copy.from_vm)
                .and_then(|d| d.volume(&copy.from_volume))
                .ok_or_else(|| Error::new(ErrorKind::NotFound(Missing::Volume), "Source volume no longer exists"))?;
            let d = new(&after)?;
            if d.volume(&copy.to).is_none() {
                return Err(Error::new(
                    ErrorKind::NotFound(Missing::Volume),
                    format!("Volume {} not found in {}", copy.to, d.name),
                ));
            }
            let event = Event::on(&d.name, "domain-import-volume").arg("name", &copy.to).arg("source", &from.vid);
            add(&mut after, Plan { ops: Vec::new(), events: vec![event] });
        }
        let d = new(&after)?;
        let mut settings = Plan::default();
        for (name, value) in &setup.props {
            let step = after.plan_vm_prop_set(&d, name, value)?;
            settings.ops.extend(step.ops);
            settings.events.extend(step.events);
        }
        if let Some(text) = &setup.notes {
            settings.ops.extend(after.plan_notes_set(&d, text.clone()).ops);
        }
        add(&mut after, settings);
        for (name, value) in &setup.features {
            let step = after.plan_feature_set(&new(&after)?, name, value)?;
            add(&mut after, step);
        }
        for tag in &setup.tags {
            let step = after.plan_tag_set(&new(&after)?, tag, caller_is_dom0)?;
            add(&mut after, step);
        }
        if let Some(rules) = &setup.firewall {
            let step = after.plan_firewall_set(&new(&after)?, rules.clone());
            add(&mut after, step);
        }
        let domain = new(&after)?;
        Ok(NewQube { plan, domain })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{HostInfo, Op};

    fn app() -> App {
        let mut app = App::empty(HostInfo { memory_mib: 4096, cpus: 2 });
        for op in App::initial_ops("/var/lib/qubes", "/var/lib/qubes/vm-kernels") {
            app.apply(op);
        }
        let mut make = |class, name: &str, template: Option<&str>| {
            let spec = CreateSpec {
                class,
                name: name.into(),
                label: "red".into(),
                template: template.map(str::to_string),
                pools: PoolChoice::Defaults,
                creator: "dom0".into(),
                uuid: Uuid::new_v4(),
            };
            for op in app.plan_create(&spec).expect("create").ops {
                app.apply(op);
            }
        };
        make(Class::TemplateVM, "tpl", None);
        make(Class::AppVM, "work", Some("tpl"));
        app
    }

    fn apply(app: &mut App, plan: Plan) {
        for op in plan.ops {
            app.apply(op);
        }
    }

    fn work(app: &App) -> Domain {
        app.domain("work").cloned().expect("work")
    }

    #[test]
    fn a_clone_is_one_plan_with_every_setting_its_source_has() {
        let mut app = app();
        let p = app.plan_vm_prop_set(&work(&app), "memory", "600").unwrap();
        apply(&mut app, p);
        let p = app.plan_vm_prop_set(&work(&app), "mac", "00:16:3e:aa:bb:cc").unwrap();
        apply(&mut app, p);
        let p = app.plan_feature_set(&work(&app), "gui", "1").unwrap();
        apply(&mut app, p);
        let p = app.plan_tag_set(&work(&app), "finance", true).unwrap();
        apply(&mut app, p);
        let p = app.plan_notes_set(&work(&app), "notes".into());
        apply(&mut app, p);
        let (p, _) = app.plan_volume_add(&work(&app), &NewDisk::thin("varlibqubes", 1 << 20, None)).unwrap();
        apply(&mut app, p);

        let (spec, setup) = app.clone_setup(&work(&app), "copy", "dom0", Uuid::new_v4(), 0).unwrap();
        let new = app.plan_create_with(&spec, &setup, true).unwrap();

        assert!(matches!(new.plan.ops.first(), Some(Op::InsertDomain(_))));
        // Events in the order the separate calls fired them: creation, copies, settings.
        let names: Vec<&str> = new.plan.events.iter().map(|e| e.name.as_str()).collect();
        let at = |name: &str| names.iter().position(|n| *n == name).unwrap_or_else(|| panic!("{name}: {names:?}"));
        assert_eq!(at("domain-add"), 0);
        assert!(at("domain-create-on-disk") < at("domain-import-volume"));
        assert!(at("domain-import-volume") < at("property-set:memory"));
        assert!(at("property-set:memory") < at("domain-feature-set:gui"));
        assert!(at("domain-feature-set:gui") < at("domain-tag-add:finance"));
        assert!(at("domain-tag-add:finance") < at("firewall-changed"));
        let mut after = app.clone();
        apply(&mut after, new.plan);
        let copy = after.domain("copy").unwrap();
        assert_eq!(copy, &new.domain);
        assert_eq!(copy.prop("memory"), Some("600"));
        assert_eq!(copy.prop("mac"), None);
        assert_eq!(copy.prop("template"), Some("tpl"));
        assert_eq!(copy.features.get("gui"), Some("1"));
        assert!(copy.tags.contains("finance") && copy.tags.contains("created-by-dom0"));
        assert_eq!(copy.notes, "notes");
        assert_eq!(copy.volume("disk1").map(|v| v.vid.as_str()), Some("appvms/copy/disk1"));
        let copied: Vec<&str> = setup.copies.iter().map(|c| c.to.as_str()).collect();
        assert_eq!(copied, ["private", "disk1"]);
    }

    #[test]
    fn a_template_takes_its_root_from_the_origin_and_the_callers_values_win() {
        let mut app = app();
        let p = app.plan_vm_prop_set(&work(&app), "vcpus", "3").unwrap();
        apply(&mut app, p);
        let p = app.plan_vm_prop_set(&work(&app), "memory", "600").unwrap();
        apply(&mut app, p);

        let (spec, mut setup) = app.template_setup(&work(&app), "gold", "dom0", Uuid::new_v4()).unwrap();
        setup.override_props(vec![("memory".into(), "700".into())]);
        setup.notes = Some("made".into());
        let new = app.plan_create_with(&spec, &setup, true).unwrap();

        assert_eq!(new.domain.class, Class::TemplateVM);
        assert_eq!(new.domain.prop("vcpus"), Some("3"));
        assert_eq!(new.domain.prop("memory"), Some("700"));
        assert_eq!(new.domain.notes, "made");
        let root = setup.copies.iter().find(|c| c.to == "root").unwrap();
        assert_eq!((root.from_vm.as_str(), root.from_volume.as_str()), ("tpl", "root"));
    }

    #[test]
    fn a_setting_the_core_refuses_refuses_the_whole_plan() {
        let app = app();
        let (spec, mut setup) = app.template_setup(&work(&app), "gold", "dom0", Uuid::new_v4()).unwrap();
        setup.override_props(vec![("vcpus".into(), "0".into())]);
        let refused = app.plan_create_with(&spec, &setup, true).unwrap_err();
        assert_eq!(
            (refused.kind, refused.message.as_str()),
            (ErrorKind::Invalid(crate::error::Invalid::PropertyValue), "vcpus must be positive")
        );
    }
}
