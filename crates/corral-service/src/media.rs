//! Boot media a qube can be given: ISO images that `file` pools offer (what a cdrom drive holds, now and from
//! the next start) and the kernels of `linux-kernel` pools.

use corral_core::error::Conflict;
use corral_core::volume::{Driver, Pool};
use corral_core::{App, Error, ErrorKind, Result};

use crate::{resolve_in, Principal, Service};

/// The qube's feature naming the ISO image (a file some `file` pool offers) in its cdrom drive.
pub use corral_core::domain::CDROM_FEATURE;

/// An ISO image no `file` pool offers.
pub(crate) fn no_iso(name: &str) -> Error {
    Error::value(format!("The cdrom file {name} is in no storage domain"))
}

/// Where the ISO image `name` lies: the first `file` pool (in the pools' order) holding it directly in its
/// directory as a regular file (a symlink is no ISO). A name with a path separator or without the `.iso` suffix
/// names nothing.
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
    /// next start on; with `current`, a running qube's drive changes media at once too.
    pub(crate) fn set_cdrom(&self, caller: &Principal, vm: &str, file: &str, current: bool) -> Result<()> {
        let now = current && self.power(resolve_in(&self.current(), vm)?).is_live();
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
            return Err(Error::new(
                ErrorKind::Conflict(Conflict::NotRunning),
                format!("Domain is powered off: '{}'", d.name),
            ));
        }
        let drive = self.runtime.get(&d.uuid).and_then(|r| r.cdrom_drive);
        match (drive, &path) {
            // Nothing is in a drive that is not there: only the choice for later starts changes.
            (Some(false), None) => {}
            (Some(false), Some(_)) => {
                return Err(Error::new(
                    ErrorKind::Conflict(Conflict::NotHalted),
                    format!(
                        "{} was started without a cdrom drive: its media can change only at its next start",
                        d.name
                    ),
                ))
            }
            _ => {
                let hv = self.hv.as_ref().ok_or_else(|| self.no_hypervisor())?;
                hv.change_media(&d.uuid, path.as_deref()).map_err(Error::from)?;
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

    /// Whether some `file` pool offers the ISO image `name` (what a cdrom can hold).
    pub(crate) fn iso_exists(&self, name: &str) -> bool {
        iso_path(&self.current(), name).is_some()
    }

    /// Files a pool offers as boot media, sorted: the installed kernels of a `linux-kernel` pool, the `*.iso`
    /// files directly in a `file` pool's directory.
    pub(crate) fn pool_files(&self, pool: &Pool) -> Vec<String> {
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
}
