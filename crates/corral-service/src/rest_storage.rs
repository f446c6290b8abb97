//! What the REST door's storage domains, disks, snapshots and templates need beyond the Admin API's calls.
//! Each is planned by the core like the Admin API calls it amounts to, so the core's checks apply unchanged,
//! and each is one transaction: a clone or a template made from a qube is one plan with its creation.

use corral_core::domain::{Class, NETWORK_FEATURE};
use corral_core::hv::{BlockStats, InterfaceStats};
use corral_core::plan::CreateSpec;
use corral_core::props;
use corral_core::setup::Setup;
use corral_core::volume::{Driver, Pool, Volume};
use corral_core::{App, Error, ErrorKind, Op, Result};
use corral_storage::Revision;
use parking_lot::RwLockUpgradableReadGuard;

use crate::{resolve_in, Principal, Service};

pub use corral_core::domain::CDROM_FEATURE;

/// A TemplateVM to make from an existing qube.
#[derive(Debug, Clone)]
pub struct TemplateFrom<'a> {
    pub source: &'a str,
    pub name: &'a str,
    pub uuid: uuid::Uuid,
    /// Property values the caller asks for; they win over the source's.
    pub props: Vec<(&'a str, &'a [u8])>,
    pub notes: Option<&'a [u8]>,
}

/// Where the ISO image `name` lies: the first `file` pool (in the pools' order) holding it directly in its
/// directory as a regular file (a symlink is no ISO). A name with a path separator or without the `.iso` suffix
/// names nothing.
pub(crate) fn no_iso(name: &str) -> Error {
    Error::value(format!("The cdrom file {name} is in no storage domain"))
}

pub(crate) fn iso_path(app: &App, name: &str) -> Option<std::path::PathBuf> {
    if name.contains('/') || name.starts_with('.') || !name.to_ascii_lowercase().ends_with(".iso") {
        return None;
    }
    app.pools()
        .iter()
        .filter(|p| p.driver == Driver::File)
        .map(|p| std::path::Path::new(&p.dir_path).join(name))
        // Not followed: a symlink there could hand a qube any file of the host (`/etc/shadow`), and the listing of
        // a pool's files does not show one either.
        .find(|path| std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()))
}

impl Service {
    /// Sets the ISO image (a file some `file` pool offers; empty: none) qube `vm`'s cdrom holds from its
    /// next start on; with `now`, a running qube's drive changes media at once too.
    pub fn set_cdrom(&self, caller: &Principal, vm: &str, file: &str, now: bool) -> Result<()> {
        if now {
            return self.change_cdrom_now(caller, vm, file);
        }
        if !file.is_empty() {
            if !self.iso_exists(file) {
                return Err(no_iso(file));
            }
            return self.feature_set(caller, vm, CDROM_FEATURE, file.as_bytes());
        }
        let has = resolve_in(&self.current(), vm)?.features.get(CDROM_FEATURE).is_some();
        if has {
            self.feature_remove(caller, vm, CDROM_FEATURE)?;
        }
        Ok(())
    }

    /// Puts ISO image `file` (empty: none) in the cdrom drive of running qube `vm` now, and keeps it for
    /// later starts. The drive exists only in a qube started with one.
    fn change_cdrom_now(&self, caller: &Principal, vm: &str, file: &str) -> Result<()> {
        self.auth(caller, "corral.vm.CdromChange", "", vm)?;
        let (d, path) = {
            let app = self.current();
            let d = resolve_in(&app, vm)?.clone();
            let path = if file.is_empty() {
                None
            } else {
                Some(iso_path(&app, file).ok_or_else(|| no_iso(file))?.display().to_string())
            };
            (d, path)
        };
        if d.is_admin() || !self.power(&d).is_live() {
            return Err(Error::new(ErrorKind::QubesVMNotRunningError, format!("Domain is powered off: '{}'", d.name)));
        }
        let drive = self.runtime.get(&d.uuid).and_then(|r| r.cdrom_drive);
        match (drive, &path) {
            // Nothing is in a drive that is not there: only the choice for later starts changes.
            (Some(false), None) => {}
            (Some(false), Some(_)) => {
                return Err(Error::new(
                    ErrorKind::QubesVMNotHaltedError,
                    format!(
                        "{} was started without a cdrom drive: its media can change only at its next start",
                        d.name
                    ),
                ))
            }
            _ => {
                let hv = self.hv.as_ref().ok_or_else(|| self.no_hypervisor())?;
                hv.change_media(&d.uuid, path.as_deref())
                    .map_err(|e| Error::new(ErrorKind::QubesVMError, e.message))?;
            }
        }
        if file.is_empty() {
            if d.features.get(CDROM_FEATURE).is_some() {
                self.feature_remove(caller, vm, CDROM_FEATURE)?;
            }
            Ok(())
        } else {
            self.feature_set(caller, vm, CDROM_FEATURE, file.as_bytes())
        }
    }

    /// The counters of qube `vm`'s disk for volume `volume` while it runs (`None` while halted). Blocks
    /// on libvirt.
    pub fn disk_counters(&self, caller: &Principal, vm: &str, volume: &str) -> Result<Option<BlockStats>> {
        self.auth(caller, "corral.vm.DiskStats", volume, vm)?;
        let d = resolve_in(&self.current(), vm)?.clone();
        if d.volume(volume).is_none() {
            return Err(no_volume(&d.name, volume));
        }
        if !self.power(&d).is_live() {
            return Ok(None);
        }
        let hv = self.hv.as_ref().ok_or_else(|| self.no_hypervisor())?;
        let target = crate::lifecycle::disk_target(volume);
        hv.block_stats(&d.uuid, &target).map(Some).map_err(|e| Error::new(ErrorKind::QubesVMError, e.message))
    }

    /// The counters of qube `vm`'s network card while it runs (`None` while halted or unconnected).
    /// Blocks on libvirt.
    pub fn nic_counters(&self, caller: &Principal, vm: &str) -> Result<Option<InterfaceStats>> {
        self.auth(caller, "corral.vm.NicStats", "", vm)?;
        let (d, mac, connected) = {
            let app = self.current();
            let d = resolve_in(&app, vm)?.clone();
            let mac = crate::lifecycle::bridge_mac(&d);
            let connected = app.nic_network(&d).is_some();
            (d, mac, connected)
        };
        if !connected || !self.power(&d).is_live() {
            return Ok(None);
        }
        let hv = self.hv.as_ref().ok_or_else(|| self.no_hypervisor())?;
        hv.interface_stats(&d.uuid, &mac).map(Some).map_err(|e| Error::new(ErrorKind::QubesVMError, e.message))
    }

    /// Whether some `file` pool offers the ISO image `name` (what a cdrom can hold).
    pub fn iso_exists(&self, name: &str) -> bool {
        iso_path(&self.current(), name).is_some()
    }

    /// Files a pool offers as boot media, sorted: the installed kernels of a `linux-kernel` pool, the `*.iso`
    /// files directly in a `file` pool's directory.
    pub fn pool_files(&self, pool: &Pool) -> Vec<String> {
        match pool.driver {
            Driver::LinuxKernel => self.storage.kernels(pool),
            Driver::File => {
                let Ok(entries) = std::fs::read_dir(&pool.dir_path) else { return Vec::new() };
                let mut names: Vec<String> = entries
                    .filter_map(|e| {
                        let e = e.ok()?;
                        let name = e.file_name().into_string().ok()?;
                        let is_file = e.file_type().ok()?.is_file();
                        (is_file && name.to_ascii_lowercase().ends_with(".iso")).then_some(name)
                    })
                    .collect();
                names.sort();
                names
            }
        }
    }

    /// Bytes a volume takes on disk, as `admin.vm.volume.Info` reports `usage` (0 when unknown).
    pub fn volume_usage(&self, view: &crate::View, v: &Volume) -> u64 {
        view.pool(&v.pool).and_then(|p| self.storage.usage(p, v)).unwrap_or(0)
    }

    /// A volume's revisions, oldest first, with the time each was made.
    pub fn volume_revisions(&self, caller: &Principal, vm: &str, name: &str) -> Result<Vec<Revision>> {
        self.with_vm(caller, "admin.vm.volume.ListSnapshots", name, vm, |app, d| {
            let v = d.volume(name).ok_or_else(|| no_volume(&d.name, name))?;
            let pool = app.pool(&v.pool).ok_or_else(|| no_pool(&v.pool))?;
            Ok(self.storage.revisions(pool, v))
        })
    }

    /// Saves the current content of a halted (or saved to disk) qube's volume as a new revision and returns it:
    /// what the Admin API's `CloneFrom` and `CloneTo` of the volume onto itself do, and the storage keeps the
    /// replaced image, which holds the same content, as a revision per `revisions_to_keep`. The calls it amounts
    /// to are checked first; then, with other writers waiting, the copy is made and the volume's config, the
    /// revision's `description` and the removal of descriptions of revisions the pool dropped are one commit.
    pub fn volume_snapshot(
        &self,
        caller: &Principal,
        vm: &str,
        name: &str,
        description: Option<&str>,
    ) -> Result<Revision> {
        if let Some(text) = description {
            corral_core::text::validate_revision_description(text)?;
        }
        for method in ["admin.vm.volume.Info", "admin.vm.volume.CloneFrom", "admin.vm.volume.CloneTo"] {
            self.auth(caller, method, name, vm)?;
        }
        let guard = self.model.upgradable_read();
        let d = resolve_in(&guard, vm)?;
        let v = d.volume(name).ok_or_else(|| no_volume(&d.name, name))?;
        if !(v.save_on_stop && v.revisions_to_keep > 0) {
            return Err(Error::value(format!(
                "Volume {name} of {vm} keeps no revisions (it is not saved on stop or revisions_to_keep is 0)"
            )));
        }
        let (volume, event) = self.copy_onto(&guard, d, v, v, true)?;
        let pool = guard.pool(&v.pool).ok_or_else(|| no_pool(&v.pool))?;
        let revisions = self.storage.revisions(pool, v);
        let described = |revision: &str, text: Option<&str>| Op::SetRevisionDescription {
            qid: d.qid,
            volume: name.to_string(),
            revision: revision.to_string(),
            description: text.map(str::to_string),
        };
        let mut ops = vec![Op::SetVolume { qid: d.qid, volume }];
        ops.extend(
            d.revision_descriptions
                .keys()
                .filter(|(vol, rev)| vol == name && !revisions.iter().any(|r| &r.id == rev))
                .map(|(_, rev)| described(rev, None)),
        );
        let newest = revisions.last().cloned();
        if let (Some(revision), Some(text)) = (&newest, description) {
            ops.push(described(&revision.id, Some(text)));
        }
        let mut model = RwLockUpgradableReadGuard::upgrade(guard);
        self.store.lock().commit(&ops).map_err(crate::store_error)?;
        self.apply_ops(&mut model, ops);
        self.events.publish_all(vec![event]);
        newest
            .ok_or_else(|| Error::new(ErrorKind::StoragePoolException, format!("No revision of {vm}:{name} was kept")))
    }

    /// A volume's revisions as [`Service::volume_revisions`] lists them, each with the description a caller
    /// gave it when it was made, if any.
    pub fn volume_revisions_described(
        &self,
        caller: &Principal,
        vm: &str,
        name: &str,
    ) -> Result<Vec<(Revision, Option<String>)>> {
        self.with_vm(caller, "admin.vm.volume.ListSnapshots", name, vm, |app, d| {
            let v = d.volume(name).ok_or_else(|| no_volume(&d.name, name))?;
            let pool = app.pool(&v.pool).ok_or_else(|| no_pool(&v.pool))?;
            Ok(self
                .storage
                .revisions(pool, v)
                .into_iter()
                .map(|r| {
                    let text = d.revision_descriptions.get(&(name.to_string(), r.id.clone())).cloned();
                    (r, text)
                })
                .collect())
        })
    }

    /// Makes a TemplateVM from a qube, as `qvm-clone` does (see [`App::template_setup`]), with the property
    /// values and notes the caller gives: one plan, committed once, so the template is made whole or not at all.
    pub fn create_template_from(&self, caller: &Principal, t: &TemplateFrom<'_>) -> Result<()> {
        corral_core::text::validate_vm_name(t.name)?;
        let mut wanted = Vec::new();
        for (name, payload) in &t.props {
            let def =
                props::vm_prop_def(Class::TemplateVM, name).ok_or_else(|| Error::no_such_property(t.name, name))?;
            wanted.push((name.to_string(), props::sanitize(def.ty, payload)?));
        }
        let notes = t.notes.map(corral_core::plan::sanitize_notes).transpose()?;
        let (spec, mut setup) = {
            let app = self.current();
            app.template_setup(resolve_in(&app, t.source)?, t.name, caller.source_qube(), t.uuid)?
        };
        setup.override_props(wanted);
        setup.notes = notes;
        self.make_copy(caller, "admin.vm.Create.TemplateVM", spec, setup)
    }

    /// A copy of qube `source` named `name`, as `qvm-clone` makes one (see [`App::clone_setup`]): one plan,
    /// committed once, so the clone is made whole or not at all.
    pub fn clone_vm(&self, caller: &Principal, source: &str, name: &str, uuid: uuid::Uuid) -> Result<()> {
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

fn no_volume(vm: &str, name: &str) -> Error {
    Error::new(ErrorKind::QubesVolumeNotFoundError, format!("Volume {name} not found in {vm}"))
}

fn no_pool(name: &str) -> Error {
    Error::new(ErrorKind::QubesPoolNotFoundError, format!("Pool not found: {name}"))
}
