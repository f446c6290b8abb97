//! A volume's revisions: listing them with the descriptions callers gave, and saving the current content as
//! a new one (a snapshot), which is one commit.

use corral_core::error::{Conflict, Failure, Missing};
use corral_core::{Error, ErrorKind, Op, Result};
use corral_storage::Revision;
use parking_lot::RwLockUpgradableReadGuard;

use crate::{resolve_in, Principal, Service};

impl Service {
    /// Saves the current content of a halted (or saved to disk) qube's volume as a new revision and returns it:
    /// what the Admin API's `CloneFrom` and `CloneTo` of the volume onto itself do, and the storage keeps the
    /// replaced image, which holds the same content, as a revision per `revisions_to_keep`. The calls it amounts
    /// to are checked first; then, with other writers waiting, the copy is made and the volume's config, the
    /// revision's `description` and the removal of descriptions of revisions the pool dropped are one commit.
    pub(crate) fn volume_snapshot(
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
            return Err(Error::new(
                ErrorKind::Conflict(Conflict::KeepsNoRevisions),
                format!(
                    "Cannot take a snapshot of {vm}: its {name} volume keeps no revisions (revisions_to_keep is 0)"
                ),
            ));
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
        newest.ok_or_else(|| {
            Error::new(ErrorKind::Failed(Failure::Storage), format!("No revision of {vm}:{name} was kept"))
        })
    }

    /// A volume's revisions, oldest first, with the time each was made and the description a caller
    /// gave it when it was made, if any.
    pub(crate) fn volume_revisions_described(
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
}

pub(crate) fn no_volume(vm: &str, name: &str) -> Error {
    Error::new(ErrorKind::NotFound(Missing::Volume), format!("Volume {name} not found in {vm}"))
}

fn no_pool(name: &str) -> Error {
    Error::new(ErrorKind::NotFound(Missing::Pool), format!("Pool not found: {name}"))
}
