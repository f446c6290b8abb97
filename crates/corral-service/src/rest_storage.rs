//! What the REST door's storage domains, disks, snapshots and templates need beyond the Admin API's calls.
//! Each is built from the same steps the Admin API calls take (clone tokens, volume commits, qube creation),
//! so the core's checks apply unchanged.

use corral_core::domain::Class;
use corral_core::hv::{BlockStats, InterfaceStats};
use corral_core::plan::{CreateSpec, PoolChoice};
use corral_core::volume::{Driver, Pool, Volume};
use corral_core::{App, Error, ErrorKind, Op, Result};
use corral_storage::Revision;

use crate::{resolve_in, Principal, Service};

/// Properties a template made from a qube takes over when the qube sets them, as `qvm-clone` copies the
/// explicitly set ones (identity and references are the new qube's own).
const TEMPLATE_PROPS: [&str; 5] = ["memory", "maxmem", "vcpus", "kernel", "kernelopts"];

/// Volumes whose content a template made from a qube takes over (volatile starts empty every time).
const TEMPLATE_VOLUMES: [&str; 2] = ["root", "private"];

/// The qube's feature naming the ISO image (a file some `file` pool offers) in its cdrom drive.
pub const CDROM_FEATURE: &str = "rest.cdrom";

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

    /// Saves the current content of a halted (or saved to disk) qube's volume as a new revision and returns it: the volume is
    /// cloned onto itself (a clone token and `CloneTo`, as the Admin API does it), and the storage keeps the
    /// replaced image, which holds the same content, as a revision per `revisions_to_keep`. The volume's
    /// config, the revision's `description` and the removal of descriptions of revisions the pool dropped
    /// are one commit.
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
        let keeps = self.with_vm(caller, "admin.vm.volume.Info", name, vm, |_, d| {
            let v = d.volume(name).ok_or_else(|| no_volume(&d.name, name))?;
            Ok(v.save_on_stop && v.revisions_to_keep > 0)
        })?;
        if !keeps {
            return Err(Error::value(format!(
                "Volume {name} of {vm} keeps no revisions (it is not saved on stop or revisions_to_keep is 0)"
            )));
        }
        let token = self.volume_clone_from(caller, vm, name)?;
        let mut newest = None;
        self.volume_change_ops(caller, "admin.vm.volume.CloneTo", vm, name, |app, d, v| {
            let (volume, event) = self.clone_onto(app, d, v, &token, true)?;
            let pool = app.pool(&v.pool).ok_or_else(|| no_pool(&v.pool))?;
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
            newest = revisions.last().cloned();
            if let (Some(revision), Some(text)) = (&newest, description) {
                ops.push(described(&revision.id, Some(text)));
            }
            Ok((ops, vec![event]))
        })?;
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

    /// Makes a TemplateVM from a qube, as `qvm-clone` does: a new TemplateVM with the source's label, its
    /// root and private content (a snapshot volume's content comes from its origin, e.g. an AppVM's root from
    /// its template), copies of its further disks and its explicitly set memory, vcpus and kernel properties.
    /// A failure after the qube was created removes it again, so the template is made whole or not at all.
    pub fn create_template_from(&self, caller: &Principal, t: &TemplateFrom<'_>) -> Result<()> {
        corral_core::text::validate_vm_name(t.name)?;
        let (label, copies, props) = {
            let app = self.current();
            let src = resolve_in(&app, t.source)?;
            if src.is_admin() {
                return Err(Error::new(ErrorKind::QubesVMError, "Cannot make a template of dom0"));
            }
            let mut copies = Vec::new();
            for name in TEMPLATE_VOLUMES {
                let Some(v) = src.volume(name) else { continue };
                copies.push((origin_of(&app, &src.name, v), name.to_string(), None));
            }
            // Further disks are data like private: the template gets its own copies (see `further_disk`).
            for v in &src.volumes {
                if let Some(n) = corral_core::volume::extra_disk_index(&v.name) {
                    let further = (further_disk(v, n), v.preallocated);
                    copies.push(((src.name.clone(), v.name.clone()), v.name.clone(), Some(further)));
                }
            }
            let props: Vec<(String, String)> =
                TEMPLATE_PROPS.iter().filter_map(|p| src.prop(p).map(|v| (p.to_string(), v.to_string()))).collect();
            (app.vm_prop(src, "label").unwrap_or_else(|| "red".into()), copies, props)
        };
        let spec = CreateSpec {
            class: Class::TemplateVM,
            name: t.name.to_string(),
            label,
            template: None,
            pools: PoolChoice::Defaults,
            creator: caller.source_qube().to_string(),
            uuid: t.uuid,
        };
        self.create_vm(caller, "admin.vm.Create.TemplateVM", spec)?;
        let filled = (|| {
            for ((src_vm, src_vol), name, further) in &copies {
                if let Some((new, _)) = further {
                    self.volume_add(caller, t.name, new)?;
                }
                let token = self.volume_clone_from(caller, src_vm, src_vol)?;
                self.volume_clone_to(caller, t.name, name, token.as_bytes())?;
                if further.as_ref().is_some_and(|(_, preallocated)| *preallocated) {
                    self.volume_preallocate(caller, t.name, name)?;
                }
            }
            let mut all: Vec<(&str, &[u8])> = props
                .iter()
                .filter(|(k, _)| !t.props.iter().any(|(o, _)| o == k))
                .map(|(k, v)| (k.as_str(), v.as_bytes()))
                .collect();
            all.extend(t.props.iter().copied());
            self.update_vm(caller, t.name, &all, t.notes)
        })();
        if let Err(e) = filled {
            if let Err(undo) = self.remove_vm(caller, t.name) {
                tracing::warn!(vm = t.name, error = %undo.message, "cannot remove a half-made template");
            }
            return Err(e);
        }
        Ok(())
    }
}

/// A copy's further disk `n` like `v`: the same number, pool, size, boot flag and given name. It starts thin: a preallocated
/// one is allocated once its content is in (`volume_preallocate`).
fn further_disk(v: &corral_core::volume::Volume, n: u32) -> corral_core::volume::NewDisk {
    corral_core::volume::NewDisk {
        bootable: v.bootable,
        alias: v.alias.clone(),
        ..corral_core::volume::NewDisk::thin(&v.pool, v.size, Some(n))
    }
}

/// Properties a clone does not take over: its own identity, what creation already set, and the MAC that
/// must stay unique on the network.
const NOT_CLONED: [&str; 5] = ["name", "label", "template", "mac", "uuid"];

impl Service {
    /// A copy of qube `source` named `name`, as `qvm-clone` makes one: the same class, label and template,
    /// its explicitly set properties (not its MAC), features, tags (not `created-by-*`), firewall and notes,
    /// its further disks, and the content of the volumes it keeps across starts. A clone that cannot be
    /// completed is removed.
    pub fn clone_vm(&self, caller: &Principal, source: &str, name: &str, uuid: uuid::Uuid) -> Result<()> {
        corral_core::text::validate_vm_name(name)?;
        let src = {
            let app = self.current();
            let src = resolve_in(&app, source)?.clone();
            if src.is_admin() {
                return Err(Error::new(ErrorKind::QubesVMError, "Cannot clone dom0"));
            }
            src
        };
        let spec = CreateSpec {
            class: src.class,
            name: name.to_string(),
            label: src.prop("label").unwrap_or("red").to_string(),
            template: src.prop("template").map(str::to_string),
            pools: PoolChoice::Defaults,
            creator: caller.source_qube().to_string(),
            uuid,
        };
        self.create_vm(caller, &format!("admin.vm.Create.{}", src.class.name()), spec)?;
        let filled = (|| {
            // Further disks come with the copy (see `further_disk`), then their content below.
            for v in &src.volumes {
                if let Some(n) = corral_core::volume::extra_disk_index(&v.name) {
                    self.volume_add(caller, name, &further_disk(v, n))?;
                }
            }
            for v in src.volumes.iter().filter(|v| v.save_on_stop) {
                let token = self.volume_clone_from(caller, &src.name, &v.name)?;
                self.volume_clone_to(caller, name, &v.name, token.as_bytes())?;
                if v.preallocated {
                    self.volume_preallocate(caller, name, &v.name)?;
                }
            }
            let props: Vec<(&str, &[u8])> = src
                .props
                .iter()
                .filter(|(k, _)| !NOT_CLONED.contains(&k.as_str()))
                .map(|(k, v)| (k.as_str(), v.as_bytes()))
                .collect();
            self.update_vm(caller, name, &props, Some(src.notes.as_bytes()))?;
            for (feature, value) in src.features.iter() {
                self.feature_set(caller, name, feature, value.as_bytes())?;
            }
            for tag in src.tags.iter().filter(|t| !t.starts_with("created-by-")) {
                self.tag_set(caller, name, tag)?;
            }
            let rules: String = src.firewall.iter().map(|r| format!("{}\n", r.to_line())).collect();
            self.firewall_set(caller, name, rules.as_bytes())
        })();
        if let Err(e) = filled {
            if let Err(undo) = self.remove_vm(caller, name) {
                tracing::warn!(vm = name, error = %undo.message, "cannot remove a half-made clone");
            }
            return Err(e);
        }
        Ok(())
    }
}

/// The qube and volume holding a volume's content: itself, or for a snapshot volume the origin it starts from.
fn origin_of(app: &App, vm: &str, v: &Volume) -> (String, String) {
    let origin = v.source.as_ref().filter(|_| v.snap_on_start).and_then(|src| {
        app.domains().find_map(|o| {
            o.volumes.iter().find(|ov| &ov.vid == src && !ov.snap_on_start).map(|ov| (o.name.clone(), ov.name.clone()))
        })
    });
    origin.unwrap_or_else(|| (vm.to_string(), v.name.clone()))
}

fn no_volume(vm: &str, name: &str) -> Error {
    Error::new(ErrorKind::QubesVolumeNotFoundError, format!("Volume {name} not found in {vm}"))
}

fn no_pool(name: &str) -> Error {
    Error::new(ErrorKind::QubesPoolNotFoundError, format!("Pool not found: {name}"))
}
