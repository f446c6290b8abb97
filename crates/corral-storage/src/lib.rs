//! Files on disk behind Corral's storage pools: the `file` driver (sparse images, one optional revision) and the
//! `linux-kernel` driver (read-only kernel directories).
//!
//! [`Storage`] is stateless: every call gets the pool and volume configuration from the model and works out the
//! file names from them (see [`layout`] for the on-disk layout). Callers serialise operations on the same volume
//! (except [`Storage::prepare_next`], which says what it may overlap); operations on different volumes may run
//! concurrently.
//!
//! Durability: every mutation that returns `Ok` has been synced, file and directory, so the daemon can acknowledge
//! it. Content is replaced by writing a new file and renaming it over the image, so a failure or crash midway
//! leaves the previous content in place. The exception is what only lives while a qube runs and is thrown away or
//! recreated at its next start (a snapshot's overlay and start marker, a volatile image, a prepared overlay's
//! name): syncing it would slow every start and stop for data nobody needs after a crash.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod copy;
mod error;
mod file;
mod fsutil;
mod kernel;
pub mod layout;
mod qcow2;
mod sys;

use std::path::PathBuf;

use corral_core::volume::{Driver, Pool, Volume};

pub use error::StorageError;

/// One saved earlier state of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// What `admin.vm.volume.ListSnapshots` prints and `Revert` takes (`<epoch>-back` for `file` pools).
    pub id: String,
    /// When the revision was made, ISO-8601 UTC without zone suffix, e.g. `2026-11-25T03:04:05`.
    pub timestamp: String,
}

/// Disk image formats an [`Attachment`] can have, spelled as QEMU and libvirt spell them.
const FORMAT_RAW: &str = "raw";
const FORMAT_QCOW2: &str = "qcow2";

/// A disk as the hypervisor attaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Absolute path of the image file.
    pub path: PathBuf,
    /// `"raw"` or `"qcow2"`; always given, since letting QEMU probe a raw image a guest wrote is unsafe.
    pub format: &'static str,
    pub read_only: bool,
}

/// Entry point for all storage I/O; holds no state, so a plain `Storage` value is all a caller needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Storage;

impl Storage {
    /// What `admin.vm.volume.Info` reports as `path`. `file`: `<dir_path>/<vid>.img`, or for a `snap_on_start`
    /// volume with a source, the origin's image, as upstream does. `linux-kernel`: the kernel directory
    /// `<dir_path>/<vid>`. Empty when there is no such path (no kernel) or the vid is unsafe.
    pub fn path(&self, pool: &Pool, vol: &Volume) -> PathBuf {
        match pool.driver {
            Driver::File => file::path(pool, vol),
            Driver::LinuxKernel => kernel::path(pool, vol),
        }
    }

    /// `file`: creates a sparse image of `vol.size` bytes and any missing parent directories; `snap_on_start`
    /// volumes have no image. Fails with [`StorageError::AlreadyExists`], touching nothing, when an image, revision
    /// or import of the volume is there. The new files stay marked as not owned until [`Storage::own`].
    /// `linux-kernel`: only checks that the chosen kernel exists.
    pub fn create(&self, pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
        match pool.driver {
            Driver::File => file::create(pool, vol),
            Driver::LinuxKernel => kernel::create(pool, vol),
        }
    }

    /// The qube owning `vol` is committed, so its files are no longer leftovers [`Storage::discard_orphan`] may
    /// remove (see [`layout`], "Ownership"). A no-op for `linux-kernel`.
    pub fn own(&self, pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
        match pool.driver {
            Driver::File => file::own(pool, vol),
            Driver::LinuxKernel => Ok(()),
        }
    }

    /// Call before committing the removal of `vol` (or its qube): if a crash comes between that commit and
    /// [`Storage::remove`], the files left are recognised as Corral's own. A no-op for `linux-kernel`.
    pub fn disown(&self, pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
        match pool.driver {
            Driver::File => file::disown(pool, vol),
            Driver::LinuxKernel => Ok(()),
        }
    }

    /// For a volume no qube owns: removes the files at its place if an interrupted create or removal left them
    /// (they carry the marker [`Storage::create`] and [`Storage::disown`] write) and says whether it did. Files
    /// without the marker are left alone, since they may be a user's; [`Storage::create`] then refuses.
    pub fn discard_orphan(&self, pool: &Pool, vol: &Volume) -> Result<bool, StorageError> {
        match pool.driver {
            Driver::File => file::discard_orphan(pool, vol),
            Driver::LinuxKernel => Ok(false),
        }
    }

    /// `file`: allocates every block of `vol`'s image, which becomes what a preallocated volume's is (refused
    /// with [`StorageError::NoSpace`] when the file system has not that much free). Unsupported for `linux-kernel`.
    pub fn preallocate(&self, pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
        match pool.driver {
            Driver::File => file::preallocate(pool, vol),
            Driver::LinuxKernel => Err(unsupported(pool, "preallocate")),
        }
    }

    /// Removes the image, its revisions, start marker, overlay, prepared overlay, import and temporary files, then
    /// the qube's volume directory (`appvms/<qube>`) once empty. Missing files are fine. A no-op for `linux-kernel`.
    pub fn remove(&self, pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
        match pool.driver {
            Driver::File => file::remove(pool, vol),
            Driver::LinuxKernel => Ok(()),
        }
    }

    /// Bytes in use. `file`: blocks allocated to the image (for `snap_on_start` volumes: to the overlay while the
    /// qube runs, else to the start marker; a prepared overlay never counts); `linux-kernel`: summed length of the
    /// kernel's files. Missing files count as 0, as upstream reports them (clients parse the value as an integer);
    /// `None` only for unsafe vids or files that cannot be examined.
    pub fn usage(&self, pool: &Pool, vol: &Volume) -> Option<u64> {
        match pool.driver {
            Driver::File => file::usage(pool, vol),
            Driver::LinuxKernel => kernel::usage(pool, vol),
        }
    }

    /// Grows the image (sparse) to `new_size`. Refuses read-only volumes and any size below the configured or
    /// actual size ([`StorageError::ShrinkRefused`]). Volumes without an image (`snap_on_start`, a stopped volatile
    /// volume) succeed without touching disk: only their configured size changes. `linux-kernel`: unsupported.
    pub fn resize(&self, pool: &Pool, vol: &Volume, new_size: u64) -> Result<(), StorageError> {
        match pool.driver {
            Driver::File => file::resize(pool, vol, new_size),
            Driver::LinuxKernel => Err(unsupported(pool, "resizing")),
        }
    }

    /// Replaces the content with zeroes of the current size (sparse, so nothing is allocated). Like upstream, which
    /// clears by importing nothing, only `save_on_stop` volumes qualify and the old content becomes a revision
    /// per `revisions_to_keep`.
    pub fn clear(&self, pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
        match pool.driver {
            Driver::File => file::clear(pool, vol),
            Driver::LinuxKernel => Err(unsupported(pool, "clearing")),
        }
    }

    /// Makes `dst` an exact copy of `src` (content and length) and returns the new size. Uses a reflink when
    /// possible, else a copy that keeps holes; writes a temporary file renamed into place, so a failure leaves
    /// `dst` intact. The replaced image becomes a revision per `dst.revisions_to_keep`.
    ///
    /// As upstream: a `snap_on_start` source is refused; a `dst` that is not `save_on_stop` has no content of its
    /// own and is left alone (returns `dst.size`). Between `linux-kernel` volumes there is nothing to copy; mixing
    /// drivers is unsupported.
    pub fn clone_volume(
        &self,
        src_pool: &Pool,
        src: &Volume,
        dst_pool: &Pool,
        dst: &Volume,
    ) -> Result<u64, StorageError> {
        match (src_pool.driver, dst_pool.driver) {
            (Driver::File, Driver::File) => file::clone_volume(src_pool, src, dst_pool, dst),
            (Driver::LinuxKernel, Driver::LinuxKernel) => Ok(dst.size),
            (from, to) => Err(StorageError::Unsupported(format!(
                "Cannot clone a {} volume into a {} volume",
                from.name(),
                to.name()
            ))),
        }
    }

    /// Revisions, oldest first: the newest `revisions_to_keep` of those on disk (none for `0`/`-1`, at most one
    /// for `file` pools). Unreadable directories yield none.
    pub fn revisions(&self, pool: &Pool, vol: &Volume) -> Vec<Revision> {
        match pool.driver {
            Driver::File => file::revisions(pool, vol).unwrap_or_else(|e| {
                tracing::warn!(vid = %vol.vid, error = %e, "cannot list revisions");
                Vec::new()
            }),
            Driver::LinuxKernel => Vec::new(),
        }
    }

    /// Makes a listed revision the current content; the current content becomes a revision if
    /// `revisions_to_keep >= 1`, else is dropped. Unlisted ids give [`StorageError::RevisionNotFound`].
    pub fn revert(&self, pool: &Pool, vol: &Volume, revision: &str) -> Result<(), StorageError> {
        match pool.driver {
            Driver::File => file::revert(pool, vol, revision),
            Driver::LinuxKernel => {
                Err(StorageError::RevisionNotFound { vid: vol.vid.clone(), revision: revision.to_string() })
            }
        }
    }

    /// Deletes revisions beyond `vol.revisions_to_keep`; call after lowering it. Commits (clone, import, clear,
    /// revert) prune on their own.
    pub fn prune_revisions(&self, pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
        match pool.driver {
            Driver::File => file::prune_revisions(pool, vol),
            Driver::LinuxKernel => Ok(()),
        }
    }

    /// Starts an import: creates `<image>.import`, sparse, `size` bytes, mode 0600, and returns its path for the
    /// import script to write. Only `save_on_stop` volumes qualify. [`StorageError::ImportInProgress`] if the
    /// file already exists.
    pub fn import_begin(&self, pool: &Pool, vol: &Volume, size: u64) -> Result<PathBuf, StorageError> {
        match pool.driver {
            Driver::File => file::import_begin(pool, vol, size),
            Driver::LinuxKernel => Err(unsupported(pool, "import")),
        }
    }

    /// Ends an import. On success the imported file replaces the image (the old one becomes a revision per
    /// `revisions_to_keep`) and the new size is returned: the caller must store it as the volume's size. On
    /// failure the import file is removed (missing is fine) and `None` is returned.
    pub fn import_end(&self, pool: &Pool, vol: &Volume, success: bool) -> Result<Option<u64>, StorageError> {
        match pool.driver {
            Driver::File => file::import_end(pool, vol, success),
            Driver::LinuxKernel => Err(unsupported(pool, "import")),
        }
    }

    /// Removes import and temporary files an interrupted operation left; meant for daemon start-up, when no
    /// import can be in progress.
    pub fn discard_pending(&self, pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
        match pool.driver {
            Driver::File => file::discard_pending(pool, vol),
            Driver::LinuxKernel => Ok(()),
        }
    }

    /// (size, usage) in bytes of the file system holding the pool directory; `None` if it cannot be examined.
    pub fn pool_usage(&self, pool: &Pool) -> Option<(u64, u64)> {
        let dir = layout::pool_dir(pool).ok()?;
        sys::statvfs(&dir).ok()
    }

    /// Prepares a volume of a qube about to start and says what to attach; `None` for volumes that are not disks
    /// (`linux-kernel`). Nothing is synced: all it creates is thrown away at stop. `file` pools, by kind (see
    /// [`layout`]):
    ///
    /// * `save_on_stop` (origin): its image, raw, read-only unless `vol.rw`; [`StorageError::MissingImage`] if
    ///   absent.
    /// * `snap_on_start`: a fresh qcow2 overlay (replacing a stale one) backed by the image of `origin`, which must
    ///   be a `save_on_stop` volume of a `file` pool ([`StorageError::NoOrigin`] without one,
    ///   [`StorageError::MissingImage`] if its image is absent, [`StorageError::Overlay`] if `qemu-img` fails);
    ///   read-only unless `vol.rw`. The overlay [`Storage::prepare_next`] or [`Storage::stop_volume`] prepared is
    ///   used when it fits the origin as it is now; otherwise `qemu-img` runs. Also does what
    ///   [`Storage::mark_started`] does, so [`Storage::is_outdated`] works. Needs `qemu-img` in `PATH`.
    /// * volatile (neither flag): a new sparse raw image of `vol.size` bytes replacing the previous one, so
    ///   nothing survives a restart; writable.
    ///
    /// A volume with both flags is [`StorageError::Unsupported`], as upstream's `file` driver has no such kind.
    /// What [`Storage::start_volume`] would attach for `vol`, computed without doing the start's storage work
    /// and without checking that the start could do it. `None` for `linux-kernel`.
    pub fn attachment(&self, pool: &Pool, vol: &Volume) -> Result<Option<Attachment>, StorageError> {
        match pool.driver {
            Driver::File => file::attachment(pool, vol).map(Some),
            Driver::LinuxKernel => Ok(None),
        }
    }

    pub fn start_volume(
        &self,
        pool: &Pool,
        vol: &Volume,
        origin: Option<(&Pool, &Volume)>,
    ) -> Result<Option<Attachment>, StorageError> {
        match pool.driver {
            Driver::File => file::start_volume(pool, vol, origin),
            Driver::LinuxKernel => Ok(None),
        }
    }

    /// After the qube stopped (or failed to start): removes a `snap_on_start` volume's overlay and start marker,
    /// then prepares the next start's overlay over the same origin as [`Storage::prepare_next`] does (a failure
    /// there is only logged); empties a volatile image (truncated to zero and back, so it keeps its length but no
    /// data or blocks); syncs an origin's image so what the qube wrote is durable. Missing files are fine; a no-op
    /// for `linux-kernel`.
    pub fn stop_volume(&self, pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
        match pool.driver {
            Driver::File => file::stop_volume(pool, vol),
            Driver::LinuxKernel => Ok(()),
        }
    }

    /// For a `snap_on_start` volume: makes sure an overlay for its next start is ready, so that
    /// [`Storage::start_volume`] only has to rename it instead of running `qemu-img` (several milliseconds). Meant
    /// to run in the background after a start; cheap when one that fits the origin's current state is ready
    /// already. `origin` is what `start_volume` gets, with the same errors. A no-op for other volumes and drivers.
    ///
    /// Unlike other operations it may run concurrently with `start_volume` and `stop_volume` of the same volume:
    /// the overlay is written under a temporary name and renamed once complete, and a start claims it with an
    /// atomic rename, so a half-written one is never attached. Not with [`Storage::remove`], though: a preparation
    /// finishing after a removal of the volume could leave the prepared overlay behind.
    pub fn prepare_next(
        &self,
        pool: &Pool,
        vol: &Volume,
        origin: Option<(&Pool, &Volume)>,
    ) -> Result<(), StorageError> {
        match pool.driver {
            Driver::File => file::prepare_next(pool, vol, origin),
            Driver::LinuxKernel => Ok(()),
        }
    }

    /// `linux-kernel` pools: the kernel image and, if present, initial RAM disk of kernel `name`. `None` when the
    /// kernel is not installed, the name is empty or unsafe (same rules as vids), or the pool is not a
    /// `linux-kernel` pool.
    pub fn kernel_files(&self, pool: &Pool, name: &str) -> Option<(PathBuf, Option<PathBuf>)> {
        match pool.driver {
            Driver::File => None,
            Driver::LinuxKernel => kernel::kernel_files(pool, name),
        }
    }

    /// Records that a `snap_on_start` volume's qube started (creates its `-cow` marker); a no-op for others.
    /// [`Storage::start_volume`] does this itself.
    pub fn mark_started(&self, pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
        match pool.driver {
            Driver::File => file::mark_started(pool, vol),
            Driver::LinuxKernel => Ok(()),
        }
    }

    /// Records that the volume's qube stopped (removes the `-cow` marker). [`Storage::stop_volume`] does this
    /// itself.
    pub fn mark_stopped(&self, pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
        match pool.driver {
            Driver::File => file::mark_stopped(pool, vol),
            Driver::LinuxKernel => Ok(()),
        }
    }

    /// For a `snap_on_start` volume: whether `origin`'s content changed after this volume's qube started. False
    /// when not started ([`Storage::mark_started`]) or for other volumes and drivers.
    pub fn is_outdated(&self, pool: &Pool, vol: &Volume, origin_pool: &Pool, origin: &Volume) -> bool {
        match pool.driver {
            Driver::File => file::is_outdated(pool, vol, origin_pool, origin),
            Driver::LinuxKernel => false,
        }
    }

    /// Makes a newly added (or, at start-up, configured) pool usable: creates its directory (mode 0755) and, for
    /// `file` pools, `appvms` and `vm-templates` inside, then checks a file can be created there. Refuses
    /// ([`StorageError::UnsafePath`]) a directory group or others may write to, one another user owns, or a
    /// symlinked subdirectory: every operation refuses those too, so such a pool is unusable until fixed.
    pub fn setup_pool(&self, pool: &Pool) -> Result<(), StorageError> {
        match pool.driver {
            Driver::File => file::setup_pool(pool),
            Driver::LinuxKernel => kernel::setup_pool(pool),
        }
    }

    /// Kernels a `linux-kernel` pool offers (subdirectories holding a `vmlinuz`), sorted; empty for other pools.
    pub fn kernels(&self, pool: &Pool) -> Vec<String> {
        match pool.driver {
            Driver::File => Vec::new(),
            Driver::LinuxKernel => kernel::kernels(pool),
        }
    }
}

fn unsupported(pool: &Pool, what: &str) -> StorageError {
    StorageError::Unsupported(format!("{} pool {} does not support {what}", pool.driver.name(), pool.name))
}
