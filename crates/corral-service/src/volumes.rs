//! Qube volumes: info, resize, revisions, clear, clone tokens and the two-step import.
//!
//! Storage I/O (copies of whole images) runs under an upgradable read lock: reads go on, other writers
//! wait, and the model is only locked exclusively for the final commit.

use corral_core::error::{Conflict, Failure, Missing};
use std::collections::HashMap;
use std::path::PathBuf;

use corral_core::domain::Domain;
use corral_core::hv::PowerState;
use corral_core::volume::{NewDisk, Pool, Volume};
use corral_core::{App, Error, ErrorKind, Event, Op, Result};
use parking_lot::{Mutex, RwLockUpgradableReadGuard};
use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::{resolve_in, Principal, Service};

/// State that lives only in memory, as upstream keeps it: clone tokens and imports under way.
#[derive(Default)]
pub(crate) struct Transient {
    clone_tokens: Mutex<HashMap<String, (String, String)>>,
    imports: Mutex<HashMap<(String, String), u64>>,
}

impl Transient {
    pub(crate) fn forget_vm(&self, vm: &str) {
        self.clone_tokens.lock().retain(|_, (v, _)| v != vm);
        self.imports.lock().retain(|(v, _), _| v != vm);
    }
}

/// `admin.vm.volume.Info` in its wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub fields: Vec<(&'static str, String)>,
}

fn not_in_volumes(vm: &str) -> Error {
    // qubesd quotes the whole `<vm> volumes` reason with `{!r}`.
    Error::denied(format!("Argument not in '{vm} volumes'"))
}

fn volume_of<'a>(d: &'a Domain, name: &str) -> Result<&'a Volume> {
    d.volume(name).ok_or_else(|| not_in_volumes(&d.name))
}

/// The internal socket's variant: qubesd raises ProtocolError there, its reason formatted without quotes.
fn internal_volume_of<'a>(d: &'a Domain, name: &str) -> Result<&'a Volume> {
    d.volume(name).ok_or_else(|| Error::protocol(format!("Argument not in {} volumes", d.name)))
}

pub(crate) fn pool_of<'a>(app: &'a App, v: &Volume) -> Result<&'a Pool> {
    app.pool(&v.pool)
        .ok_or_else(|| Error::new(ErrorKind::NotFound(Missing::Pool), format!("Pool not found: {}", v.pool)))
}

/// A volume size in the Admin API's payload form: decimal bytes.
fn parse_size(payload: &[u8]) -> Result<u64> {
    let size = corral_core::text::validate_number(payload.trim_ascii(), "volume size", false)?;
    // validate_number without allow_negative never returns a negative value.
    Ok(u64::try_from(size).unwrap_or_default())
}

pub(crate) fn storage_error(e: corral_storage::StorageError) -> Error {
    let kind = match e {
        corral_storage::StorageError::RevisionNotFound { .. } => ErrorKind::NotFound(Missing::Revision),
        _ => ErrorKind::Failed(Failure::Storage),
    };
    Error::new(kind, e.to_string())
}

impl Service {
    pub(crate) fn volume_info(&self, caller: &Principal, vm: &str, name: &str) -> Result<VolumeInfo> {
        self.with_vm(caller, "admin.vm.volume.Info", name, vm, |app, d| {
            let v = volume_of(d, name)?;
            let pool = pool_of(app, v)?;
            let b = |x: bool| corral_core::text::format_bool(x).to_string();
            let mut fields = vec![
                ("pool", v.pool.clone()),
                ("vid", v.vid.clone()),
                ("size", v.size.to_string()),
                ("usage", self.storage.usage(pool, v).unwrap_or(0).to_string()),
                ("rw", b(v.rw)),
                ("source", v.source.clone().unwrap_or_default()),
                ("path", self.storage.path(pool, v).display().to_string()),
                ("save_on_stop", b(v.save_on_stop)),
                ("snap_on_start", b(v.snap_on_start)),
                ("revisions_to_keep", v.revisions_to_keep.to_string()),
                ("ephemeral", b(v.effective_ephemeral(Some(pool)))),
            ];
            // Both drivers implement is_outdated upstream (False unless a started snapshot's origin changed),
            // so the line is always there.
            let origin = app.domains().flat_map(|o| o.volumes.iter()).find(|o| Some(&o.vid) == v.source.as_ref());
            let outdated = v.snap_on_start
                && origin
                    .and_then(|o| Some((o, app.pool(&o.pool)?)))
                    .is_some_and(|(o, op)| self.storage.is_outdated(pool, v, op, o));
            fields.push(("is_outdated", b(outdated)));
            Ok(VolumeInfo { fields })
        })
    }

    pub(crate) fn volume_snapshots(&self, caller: &Principal, vm: &str, name: &str) -> Result<Vec<String>> {
        self.with_vm(caller, "admin.vm.volume.ListSnapshots", name, vm, |app, d| {
            let v = volume_of(d, name)?;
            Ok(self.storage.revisions(pool_of(app, v)?, v).into_iter().map(|r| r.id).collect())
        })
    }

    /// Runs a storage step on one volume of a halted-or-not qube, then commits the volume's new config.
    fn volume_change(
        &self,
        caller: &Principal,
        method: &str,
        vm: &str,
        name: &str,
        change: impl FnOnce(&App, &Domain, &Volume) -> Result<(Option<Volume>, Vec<Event>)>,
    ) -> Result<()> {
        self.volume_change_ops(caller, method, vm, name, |app, d, v| {
            let (new, events) = change(app, d, v)?;
            Ok((new.map(|volume| Op::SetVolume { qid: d.qid, volume }).into_iter().collect(), events))
        })
    }

    /// Runs a storage step on one volume of a halted-or-not qube, then commits the ops it returns in one
    /// transaction.
    pub(crate) fn volume_change_ops(
        &self,
        caller: &Principal,
        method: &str,
        vm: &str,
        name: &str,
        change: impl FnOnce(&App, &Domain, &Volume) -> Result<(Vec<Op>, Vec<Event>)>,
    ) -> Result<()> {
        self.auth(caller, method, name, vm)?;
        let guard = self.model.upgradable_read();
        let d = resolve_in(&guard, vm)?;
        let v = volume_of(d, name)?;
        let (ops, events) = change(&guard, d, v)?;
        let mut model = RwLockUpgradableReadGuard::upgrade(guard);
        if !ops.is_empty() {
            self.store.lock().commit(&ops).map_err(crate::store_error)?;
            self.apply_ops(&mut model, ops);
        }
        self.events.publish_all(events);
        Ok(())
    }

    pub(crate) fn volume_resize(&self, caller: &Principal, vm: &str, name: &str, payload: &[u8]) -> Result<()> {
        let size = parse_size(payload)?;
        self.volume_change(caller, "admin.vm.volume.Resize", vm, name, |app, _, v| {
            self.grow(app, v, size)?;
            Ok((Some(Volume { size, ..v.clone() }), Vec::new()))
        })
    }

    /// Gives volume `v`'s storage `size` bytes, which may not be less than it has.
    fn grow(&self, app: &App, v: &Volume, size: u64) -> Result<()> {
        if !v.rw {
            return Err(Error::new(
                ErrorKind::Failed(Failure::Storage),
                format!("Can not resize readonly volume {}", v.vid),
            ));
        }
        if v.snap_on_start {
            return Err(Error::new(
                ErrorKind::Failed(Failure::Storage),
                // qubesd's file driver message, missing space included.
                "Cannot resize volume based on a template - resizethe template instead",
            ));
        }
        if size < v.size {
            return Err(Error::new(
                ErrorKind::Failed(Failure::Storage),
                format!("For your own safety, shrinking of {} is disabled ({} < {})", v.name, size, v.size),
            ));
        }
        self.storage.resize(pool_of(app, v)?, v, size).map_err(storage_error)
    }

    /// A disk's update: whether it is the qube's boot disk, a new size in bytes and the name a user gives a further disk, checked together and committed as one change. The boot flag may change while the qube runs: it
    /// takes effect at the next start.
    pub(crate) fn volume_update(
        &self,
        caller: &Principal,
        vm: &str,
        name: &str,
        size: Option<u64>,
        bootable: Option<bool>,
        alias: Option<&str>,
    ) -> Result<()> {
        self.volume_change(caller, "corral.vm.volume.Update", vm, name, |app, d, v| {
            let mut new = v.clone();
            if let Some(alias) = alias {
                new.alias = corral_core::plan::disk_alias(d, name, Some(alias))?;
            }
            if let Some(bootable) = bootable {
                if !app.plan_volume_bootable(d, name, bootable)?.ops.is_empty() {
                    new.bootable = bootable;
                }
            }
            if let Some(size) = size.filter(|s| *s != v.size) {
                self.grow(app, v, size)?;
                new.size = size;
            }
            Ok(((new != *v).then_some(new), Vec::new()))
        })
    }

    pub(crate) fn volume_revert(&self, caller: &Principal, vm: &str, name: &str, payload: &[u8]) -> Result<()> {
        let revision =
            std::str::from_utf8(payload).map_err(|_| Error::protocol("Invalid revision"))?.trim().to_string();
        let ok = !revision.is_empty() && revision.bytes().all(|b| b.is_ascii_alphanumeric() || b":_.-".contains(&b));
        if !ok {
            return Err(Error::protocol("Invalid revision"));
        }
        self.volume_change(caller, "admin.vm.volume.Revert", vm, name, |app, d, v| {
            if self.power_state(d) != "Halted" {
                return Err(Error::not_halted(&d.name));
            }
            let pool = pool_of(app, v)?;
            if !self.storage.revisions(pool, v).iter().any(|r| r.id == revision) {
                return Err(Error::new(
                    ErrorKind::NotFound(Missing::Revision),
                    format!("Revision not found: {revision}"),
                ));
            }
            self.storage.revert(pool, v, &revision).map_err(storage_error)?;
            Ok((None, Vec::new()))
        })
    }

    pub(crate) fn volume_clear(&self, caller: &Principal, vm: &str, name: &str) -> Result<()> {
        self.volume_change(caller, "admin.vm.volume.Clear", vm, name, |app, d, v| {
            if self.power_state(d) != "Halted" {
                return Err(Error::not_halted(&d.name));
            }
            self.storage.clear(pool_of(app, v)?, v).map_err(storage_error)?;
            let events = vec![
                Event::on(&d.name, "domain-volume-import-begin").arg("volume", name).arg("size", v.size.to_string()),
                Event::on(&d.name, "domain-volume-import-end").arg("volume", name).arg("success", "True"),
            ];
            Ok((None, events))
        })
    }

    pub(crate) fn volume_set_revisions(&self, caller: &Principal, vm: &str, name: &str, payload: &[u8]) -> Result<()> {
        let n = corral_core::text::validate_number(payload, "revisions to keep", true)?;
        if n < -1 {
            return Err(Error::value("Invalid value for revisions_to_keep"));
        }
        self.volume_change(caller, "admin.vm.volume.Set.revisions_to_keep", vm, name, |app, _, v| {
            let pool = pool_of(app, v)?;
            corral_core::volume::check_revisions_limit(pool.driver, n)?;
            let updated = Volume { revisions_to_keep: n, ..v.clone() };
            if n < v.revisions_to_keep {
                self.storage.prune_revisions(pool, &updated).map_err(storage_error)?;
            }
            Ok((Some(updated), Vec::new()))
        })
    }

    pub(crate) fn volume_set_rw(&self, caller: &Principal, vm: &str, name: &str, payload: &[u8]) -> Result<()> {
        let rw = crate::ops::parse_bool_payload(payload)?;
        self.volume_change(caller, "admin.vm.volume.Set.rw", vm, name, |_, d, v| {
            if self.power_state(d) != "Halted" {
                return Err(Error::not_halted(&d.name));
            }
            Ok((Some(Volume { rw, ..v.clone() }), Vec::new()))
        })
    }

    pub(crate) fn volume_set_ephemeral(&self, caller: &Principal, vm: &str, name: &str, payload: &[u8]) -> Result<()> {
        let ephemeral = crate::ops::parse_bool_payload(payload)?;
        self.volume_change(caller, "admin.vm.volume.Set.ephemeral", vm, name, |_, _, v| {
            if ephemeral && !(v.is_plain_volatile() && v.rw) {
                return Err(Error::value(
                    "Cannot enable ephemeral on snap_on_start or save_on_stop or non-dom0 or not writable volume",
                ));
            }
            Ok((Some(Volume { ephemeral: Some(ephemeral), ..v.clone() }), Vec::new()))
        })
    }

    pub(crate) fn volume_clone_from(&self, caller: &Principal, vm: &str, name: &str) -> Result<String> {
        let vm_name = self.with_vm(caller, "admin.vm.volume.CloneFrom", name, vm, |_, d| {
            volume_of(d, name)?;
            Ok(d.name.clone())
        })?;
        let token: String = rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect();
        let mut tokens = self.volumes.clone_tokens.lock();
        if tokens.contains_key(&token) {
            return Err(Error::new(
                ErrorKind::Conflict(Conflict::VolumeCopyInUse),
                format!("Domain volume is being cloned already: '{vm_name}':'{name}'"),
            ));
        }
        tokens.insert(token.clone(), (vm_name, name.to_string()));
        Ok(token)
    }

    pub(crate) fn volume_clone_to(&self, caller: &Principal, vm: &str, name: &str, payload: &[u8]) -> Result<()> {
        let token = std::str::from_utf8(payload)
            .ok()
            .filter(|t| t.is_ascii())
            .ok_or_else(|| Error::protocol("Token contains non-ASCII characters"))?
            .trim()
            .to_string();
        self.volume_change(caller, "admin.vm.volume.CloneTo", vm, name, |app, d, dst| {
            let (volume, event) = self.clone_onto(app, d, dst, &token)?;
            Ok((Some(volume), vec![event]))
        })
    }

    /// The storage step of `CloneTo`: copies the volume a clone token names onto `dst` of halted qube `d`;
    /// returns `dst`'s new config and the event to fire once it is committed.
    fn clone_onto(&self, app: &App, d: &Domain, dst: &Volume, token: &str) -> Result<(Volume, Event)> {
        let (src_vm, src_vol) = self.volumes.clone_tokens.lock().remove(token).ok_or_else(|| {
            // Upstream's exception is also a KeyError, whose str() quotes the message.
            Error::new(ErrorKind::NotFound(Missing::CloneToken), "'Token to clone volume of qube was not found'")
        })?;
        let src = app
            .domain(&src_vm)
            .and_then(|s| s.volume(&src_vol))
            .ok_or_else(|| Error::new(ErrorKind::NotFound(Missing::Volume), "Source volume no longer exists"))?;
        self.copy_onto(app, d, src, dst, false)
    }

    /// Copies volume `src` onto `dst` of halted qube `d`; returns `dst`'s new config and the event to fire once it
    /// is committed. `saved_too` also takes a qube saved to disk (suspended over HTTP): its writable volumes are
    /// the images it runs on and nothing writes them until it resumes, so a copy is as consistent as a halted
    /// qube's.
    pub(crate) fn copy_onto(
        &self,
        app: &App,
        d: &Domain,
        src: &Volume,
        dst: &Volume,
        saved_too: bool,
    ) -> Result<(Volume, Event)> {
        let power = self.power(d);
        if !(power == PowerState::Halted || (saved_too && power == PowerState::Saved)) {
            return Err(Error::not_halted(&d.name));
        }
        let size =
            self.storage.clone_volume(pool_of(app, src)?, src, pool_of(app, dst)?, dst).map_err(storage_error)?;
        let event = Event::on(&d.name, "domain-import-volume").arg("name", &dst.name).arg("source", &src.vid);
        Ok((Volume { size, ..dst.clone() }, event))
    }

    /// `internal.vm.volume.ImportBegin`: returns where the import service writes the data.
    pub(crate) fn import_begin(
        &self,
        caller: &Principal,
        method: &str,
        vm: &str,
        name: &str,
        size: Option<u64>,
    ) -> Result<(u64, PathBuf)> {
        self.auth(caller, method, name, vm)?;
        let app = self.current();
        let d = resolve_in(&app, vm)?;
        let v = internal_volume_of(d, name)?;
        if self.power_state(d) != "Halted" {
            return Err(Error::not_halted(&d.name));
        }
        let size = size.unwrap_or(v.size);
        let key = (d.name.clone(), name.to_string());
        let mut imports = self.volumes.imports.lock();
        if imports.contains_key(&key) {
            return Err(Error::generic(format!("Import of {}:{name} is already in progress", d.name)));
        }
        let path = self.storage.import_begin(pool_of(&app, v)?, v, size).map_err(storage_error)?;
        imports.insert(key, size);
        drop(imports);
        let vm_name = d.name.clone();
        drop(app);
        self.publish(
            Event::on(&vm_name, "domain-volume-import-begin").arg("volume", name).arg("size", size.to_string()),
        );
        Ok((size, path))
    }

    /// `internal.vm.volume.ImportEnd`: commits or discards the data written since ImportBegin.
    pub(crate) fn import_end(&self, vm: &str, name: &str, success: bool, failure: &str) -> Result<()> {
        let guard = self.model.upgradable_read();
        let d = resolve_in(&guard, vm)?;
        let v = internal_volume_of(d, name)?;
        let size = self
            .volumes
            .imports
            .lock()
            .remove(&(d.name.clone(), name.to_string()))
            .ok_or_else(|| Error::generic(format!("No import of {}:{name} in progress", d.name)))?;
        let pool = pool_of(&guard, v)?;
        let outcome = self.storage.import_end(pool, v, success).map_err(storage_error);
        let size = match &outcome {
            Ok(Some(imported)) => *imported,
            _ => size,
        };
        let committed = success && outcome.is_ok();
        let end = Event::on(&d.name, "domain-volume-import-end")
            .arg("volume", name)
            .arg("success", corral_core::text::format_bool(committed));
        let qid = d.qid;
        let resized = Volume { size, ..v.clone() };
        let mut model = RwLockUpgradableReadGuard::upgrade(guard);
        if committed && resized.size != v_size(&model, qid, name) {
            let op = Op::SetVolume { qid, volume: resized };
            self.store.lock().commit(std::slice::from_ref(&op)).map_err(crate::store_error)?;
            self.apply_ops(&mut model, vec![op]);
        }
        self.events.publish_all(vec![end]);
        outcome?;
        if !success {
            return Err(Error::generic(format!("Data import failed: {failure}")));
        }
        Ok(())
    }
}

fn v_size(app: &App, qid: u32, name: &str) -> u64 {
    app.domain_by_qid(qid).and_then(|d| d.volume(name)).map_or(0, |v| v.size)
}

impl Service {
    /// Gives halted qube `vm` a further disk: a new empty volume of `size` bytes in file pool `pool`, named
    /// `disk<index>` (by default the lowest free number). Its image exists before the commit and is removed
    /// again if the commit fails. Returns the volume's name.
    pub(crate) fn volume_add(&self, caller: &Principal, vm: &str, new: &NewDisk) -> Result<String> {
        self.auth(caller, "corral.vm.volume.Add", &new.pool, vm)?;
        let mut model = self.model.write();
        let d = resolve_in(&model, vm)?;
        self.halted_for_disks(d)?;
        let (plan, v) = model.plan_volume_add(d, new)?;
        let pool = pool_of(&model, &v)?;
        if !model.domains().any(|o| o.volumes.iter().any(|ov| ov.pool == v.pool && ov.vid == v.vid)) {
            self.discard_orphan(pool, &v);
        }
        self.storage.create(pool, &v).map_err(|e| match e {
            corral_storage::StorageError::AlreadyExists(_) => crate::ops::create_error(&d.name, &v, e),
            e => storage_error(e),
        })?;
        if let Err(e) = self.store.lock().commit(&plan.ops) {
            if let Err(undo) = self.storage.remove(pool, &v) {
                tracing::warn!(vid = %v.vid, error = %undo, "failed to remove the image of an uncommitted disk");
            }
            return Err(crate::store_error(e));
        }
        self.own_volume_files(&model, std::slice::from_ref(&v));
        self.apply_ops(&mut model, plan.ops);
        self.events.publish_all(plan.events);
        Ok(v.name)
    }

    /// Disks change only on a halted qube whose start is not under way (a start reads its volumes first).
    /// Hot-plugging is not offered: a qube's devices are fixed by its domain definition at start.
    fn halted_for_disks(&self, d: &Domain) -> Result<()> {
        if self.power_state(d) != "Halted" || self.starting.lock().contains(&d.uuid) {
            return Err(Error::not_halted(&d.name));
        }
        Ok(())
    }

    /// Removes further disk `name` of halted qube `vm` with its image and revisions, after the commit.
    pub(crate) fn volume_remove(&self, caller: &Principal, vm: &str, name: &str) -> Result<()> {
        self.auth(caller, "corral.vm.volume.Remove", name, vm)?;
        let mut model = self.model.write();
        let d = resolve_in(&model, vm)?;
        self.halted_for_disks(d)?;
        let plan = model.plan_volume_remove(d, name)?;
        let v = volume_of(d, name)?.clone();
        let vm_name = d.name.clone();
        self.disown_volume_files(&model, std::slice::from_ref(&v));
        self.store.lock().commit(&plan.ops).map_err(crate::store_error)?;
        self.apply_ops(&mut model, plan.ops);
        self.volumes.clone_tokens.lock().retain(|_, (tv, tn)| !(*tv == vm_name && tn == name));
        if let Some(pool) = model.pool(&v.pool) {
            if let Err(e) = self.storage.remove(pool, &v) {
                tracing::warn!(vid = %v.vid, error = %e, "failed to remove the files of a removed disk");
            }
        }
        self.events.publish_all(plan.events);
        Ok(())
    }
}

impl Service {
    /// Bytes a volume takes on disk, as `admin.vm.volume.Info` reports `usage` (0 when unknown).
    pub(crate) fn volume_usage(&self, caller: &Principal, vm: &str, name: &str) -> Result<u64> {
        self.with_vm(caller, "admin.vm.volume.Info", name, vm, |app, d| {
            let v = volume_of(d, name)?;
            Ok(app.pool(&v.pool).and_then(|p| self.storage.usage(p, v)).unwrap_or(0))
        })
    }
}
