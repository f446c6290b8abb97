//! Where a volume's files live. Every on-disk naming decision of this crate is made here and nowhere else.
//!
//! A vid is a relative, `/`-separated path inside the pool directory `D` (`pool.dir_path`, which must be
//! absolute). It must not be absolute itself, every component must be non-empty and neither `.` nor `..`, and it
//! may hold no whitespace or control characters (import paths travel in space-separated replies). Anything else is
//! [`StorageError::InvalidPath`], so no vid can reach outside `D`. `D` itself is configuration and may be a
//! symlink, but below it nothing is followed: a symlink as a directory on the way to a volume's files, or as one
//! of those files, is refused ([`StorageError::UnsafePath`]), and so are `D` and directories below it that
//! group or others may write to or that belong to another user than root or the daemon's, since whoever can
//! change entries there could plant such a symlink between a check and its use.
//!
//! `file` driver, for a volume with vid `V` (typically `appvms/<qube>/<volume>` or `vm-templates/<qube>/<volume>`):
//!
//! | path                    | what                                                                                |
//! |-------------------------|-------------------------------------------------------------------------------------|
//! | `D/V.img`               | the image; `snap_on_start` volumes have none                                        |
//! | `D/V.img.<epoch>-back`  | a revision: the image replaced at `<epoch>` (seconds since 1970, UTC); id `<epoch>-back` |
//! | `D/V.img.import`        | data being imported, not yet committed                                              |
//! | `D/V.img.tmp-<pid>-<n>` | a file being written, then renamed into place: a new image or a prepared overlay    |
//! | `D/V-cow.img`           | `snap_on_start` volumes: exists while the qube runs, its mtime is the start time   |
//! | `D/V-cow.qcow2`         | `snap_on_start` volumes: the qcow2 overlay the qube writes to while it runs        |
//! | `D/V-cow.qcow2.next`    | `snap_on_start` volumes: the overlay prepared for the next start (see below)        |
//! | `D/V.img.unowned`       | marker: these files are Corral's and no committed qube owns them (see below)       |
//! | `D/<source>.img`        | what `path` reports for a `snap_on_start` volume: its origin's image                |
//!
//! What each kind of volume attaches when its qube starts ([`Storage::start_volume`](crate::Storage::start_volume)):
//!
//! * origin (`save_on_stop`): `D/V.img` itself, raw. The qube writes straight into it; nothing is copied at stop.
//! * snapshot (`snap_on_start`): `D/V-cow.qcow2`, created afresh at every start (a stale one from a crash is
//!   replaced) by `qemu-img create -f qcow2 -F raw -b <origin image> D/V-cow.qcow2`. The backing file is recorded
//!   as the origin image's absolute path (`pool_dir` guarantees a leading `/`, so QEMU never reads a `proto:`
//!   prefix or resolves it against another directory) with its format pinned to raw, so QEMU never probes the
//!   origin's content for a format header. No size is given: the guest sees the origin's size, as upstream's
//!   device-mapper snapshot does. The overlay is removed at stop, together with `D/V-cow.img`, so the snapshot
//!   never outlives the qube. Neither is synced: nothing in them matters after a crash, and the next start
//!   replaces both.
//!
//!   To keep `qemu-img` (milliseconds) off the start, the next overlay is prepared in advance as
//!   `D/V-cow.qcow2.next`: at stop, over the origin image the removed overlay named, and by
//!   [`Storage::prepare_next`](crate::Storage::prepare_next), over the origin it is given. It is made by the same
//!   command under a temporary name (`D/V.img.tmp-<pid>-<n>`), synced, then renamed, so `D/V-cow.qcow2.next` only
//!   ever names a complete overlay, even after a crash. A start renames it to `D/V-cow.qcow2` (atomically, so it
//!   has the file to itself before looking at it) and keeps it only if its qcow2 header names exactly this start's
//!   origin image, with backing format raw, and a virtual size equal to the origin image's current length (so a
//!   resized origin shows its new size); anything else, including a damaged or foreign file, is replaced by a
//!   `qemu-img` run as above. It holds no qube data, so `usage` ignores it; `remove` deletes it.
//! * volatile (neither flag): `D/V.img`, raw, replaced by a new sparse file of the configured size at every start
//!   (written under a temporary name, then renamed) and truncated to nothing and back at stop, so no data
//!   survives a restart and a stopped volatile volume allocates nothing. Neither is synced: whatever a crash
//!   leaves under the name is replaced before a qube sees it.
//!
//! Temporary files: a new image (clone, clear, volatile start) is renamed over `D/V.img`, a prepared overlay to
//! `D/V-cow.qcow2.next`.
//!
//! Ownership: a new image is only ever created where none of the volume's data files (image, revisions, import)
//! exist, since one there may be a user's (say, moved over from Qubes). To still let a create interrupted by a
//! crash be retried, `create` writes `D/V.img.unowned` (synced) before the image and the caller removes it once
//! the qube is committed ([`Storage::own`](crate::Storage::own)); a removal writes it before its commit
//! ([`Storage::disown`](crate::Storage::disown)). Files that carry the marker and belong to no qube in the store
//! are thus leftovers of Corral's own and may go ([`Storage::discard_orphan`](crate::Storage::discard_orphan));
//! files without it are never removed by a create.
//!
//! Pool setup creates `D/appvms` and `D/vm-templates` (where upstream puts qube and template volumes) and briefly
//! `D/.corral-write-probe-<pid>-<n>` to check that `D` is writable.
//!
//! The directory holding `D/V.img` is removed with the volume once empty, but only when it is at least two levels
//! below `D` (`appvms/<qube>`), so shared directories such as `appvms` itself survive.
//!
//! `linux-kernel` driver, for vid `K` (a kernel version; empty means "no kernel"): `D/K` is the kernel directory,
//! and `D/K/vmlinuz` is what makes a subdirectory of `D` a kernel. A qube boots `D/K/vmlinuz` with
//! `D/K/initramfs` as its initial RAM disk when that file exists. Kernel names obey the vid rules above.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use corral_core::volume::Pool;

use crate::{fsutil, StorageError};

const IMAGE_SUFFIX: &str = ".img";
const REVISION_SUFFIX: &str = "-back";
const IMPORT_SUFFIX: &str = ".import";
const TEMP_INFIX: &str = ".tmp-";
const COW_SUFFIX: &str = "-cow.img";
const OVERLAY_SUFFIX: &str = "-cow.qcow2";
const PREPARED_SUFFIX: &str = ".next";
const UNOWNED_SUFFIX: &str = ".unowned";

/// Subdirectories a `file` pool starts with.
pub(crate) const FILE_POOL_SUBDIRS: [&str; 2] = ["appvms", "vm-templates"];

pub(crate) fn write_probe_name(unique: u64) -> String {
    format!(".corral-write-probe-{}-{unique}", std::process::id())
}

/// File a linux-kernel pool uses to tell kernel directories from anything else in it; also the kernel image.
pub(crate) const KERNEL_MARKER: &str = "vmlinuz";
/// Optional initial RAM disk next to a kernel's `vmlinuz`.
pub(crate) const KERNEL_INITRAMFS: &str = "initramfs";

/// Checks a vid (or a snapshot's source vid) against the rules in the module documentation.
pub(crate) fn check_vid(vid: &str) -> Result<(), StorageError> {
    let bad = vid.is_empty()
        || vid.starts_with('/')
        || vid.chars().any(|c| c.is_whitespace() || c.is_control())
        || vid.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(StorageError::InvalidPath(vid.to_string()));
    }
    Ok(())
}

/// The pool directory, refusing relative paths: the model validates them, but a relative one would silently
/// resolve against the daemon's working directory.
pub(crate) fn pool_dir(pool: &Pool) -> Result<PathBuf, StorageError> {
    if !pool.dir_path.starts_with('/') || pool.dir_path.contains('\0') {
        return Err(StorageError::InvalidPath(pool.dir_path.clone()));
    }
    Ok(PathBuf::from(&pool.dir_path))
}

/// The files of one `file`-driver volume.
#[derive(Debug, Clone)]
pub(crate) struct FileLayout {
    /// Directory holding the image and all its companions.
    dir: PathBuf,
    /// Last vid component; every companion file name starts with it.
    stem: String,
    /// Whether `dir` belongs to this volume's qube alone (see module docs) and may go once empty.
    dir_is_private: bool,
}

impl FileLayout {
    pub(crate) fn new(pool: &Pool, vid: &str) -> Result<Self, StorageError> {
        check_vid(vid)?;
        let root = pool_dir(pool)?;
        let (parent, stem) = match vid.rsplit_once('/') {
            Some((parent, stem)) => (Some(parent), stem),
            None => (None, vid),
        };
        let dir = match parent {
            Some(p) => root.join(p),
            None => root,
        };
        let dir_is_private = parent.is_some_and(|p| p.contains('/'));
        Ok(FileLayout { dir, stem: stem.to_string(), dir_is_private })
    }

    /// [`Self::new`] for code about to touch the volume's files: also refuses when the pool directory or a
    /// directory below it on the way to the volume's is unsafe (see [`fsutil::check_pool_tree`]).
    pub(crate) fn checked(pool: &Pool, vid: &str) -> Result<Self, StorageError> {
        let l = Self::new(pool, vid)?;
        fsutil::check_pool_tree(&pool_dir(pool)?, &l.dir)?;
        Ok(l)
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The volume's directory when it may be removed once empty.
    pub(crate) fn private_dir(&self) -> Option<&Path> {
        self.dir_is_private.then_some(self.dir.as_path())
    }

    fn image_name(&self) -> String {
        format!("{}{IMAGE_SUFFIX}", self.stem)
    }

    pub(crate) fn image(&self) -> PathBuf {
        self.dir.join(self.image_name())
    }

    pub(crate) fn import(&self) -> PathBuf {
        self.dir.join(format!("{}{IMPORT_SUFFIX}", self.image_name()))
    }

    /// The start marker of a `snap_on_start` volume.
    pub(crate) fn cow(&self) -> PathBuf {
        self.dir.join(format!("{}{COW_SUFFIX}", self.stem))
    }

    /// The qcow2 overlay a running `snap_on_start` volume writes to.
    pub(crate) fn overlay(&self) -> PathBuf {
        self.dir.join(format!("{}{OVERLAY_SUFFIX}", self.stem))
    }

    /// The overlay prepared for a `snap_on_start` volume's next start.
    pub(crate) fn prepared_overlay(&self) -> PathBuf {
        self.dir.join(format!("{}{OVERLAY_SUFFIX}{PREPARED_SUFFIX}", self.stem))
    }

    /// The marker saying the volume's files are Corral's and no committed qube owns them (see module docs).
    pub(crate) fn unowned(&self) -> PathBuf {
        self.dir.join(format!("{}{UNOWNED_SUFFIX}", self.image_name()))
    }

    pub(crate) fn temp(&self, unique: u64) -> PathBuf {
        self.dir.join(format!("{}{TEMP_INFIX}{}-{unique}", self.image_name(), std::process::id()))
    }

    pub(crate) fn revision(&self, epoch: u64) -> PathBuf {
        self.dir.join(format!("{}.{}", self.image_name(), revision_id(epoch)))
    }

    /// The epoch of a revision file, given a file name found in [`Self::dir`].
    pub(crate) fn revision_epoch(&self, file_name: &OsStr) -> Option<u64> {
        let rest = self.companion_suffix(file_name)?;
        parse_revision_id(rest.strip_prefix('.')?)
    }

    /// Whether a file name in [`Self::dir`] is one of this volume's temporary files.
    pub(crate) fn is_temp(&self, file_name: &OsStr) -> bool {
        self.companion_suffix(file_name).is_some_and(|rest| rest.starts_with(TEMP_INFIX))
    }

    /// What follows `<stem>.img` in a companion file's name.
    fn companion_suffix<'a>(&self, file_name: &'a OsStr) -> Option<&'a str> {
        file_name.to_str()?.strip_prefix(self.stem.as_str())?.strip_prefix(IMAGE_SUFFIX)
    }
}

/// Where `path` points a `snap_on_start` volume: the origin's image, found in the same pool since snapshots live
/// in their origin's pool.
pub(crate) fn snapshot_origin_image(pool: &Pool, source: &str) -> Result<PathBuf, StorageError> {
    Ok(FileLayout::new(pool, source)?.image())
}

pub(crate) fn revision_id(epoch: u64) -> String {
    format!("{epoch}{REVISION_SUFFIX}")
}

/// Accepts only the ids [`revision_id`] produces, so a client-supplied id can never name another file.
pub(crate) fn parse_revision_id(id: &str) -> Option<u64> {
    let digits = id.strip_suffix(REVISION_SUFFIX)?;
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

/// The kernel image and initial RAM disk of kernel `name` (neither checked for existence); `None` for the empty
/// name ("no kernel").
pub(crate) fn kernel_files(pool: &Pool, name: &str) -> Result<Option<(PathBuf, PathBuf)>, StorageError> {
    Ok(kernel_dir(pool, name)?.map(|dir| (dir.join(KERNEL_MARKER), dir.join(KERNEL_INITRAMFS))))
}

/// The kernel directory of a `linux-kernel` volume; `None` for the empty vid ("no kernel").
pub(crate) fn kernel_dir(pool: &Pool, vid: &str) -> Result<Option<PathBuf>, StorageError> {
    if vid.is_empty() {
        return Ok(None);
    }
    check_vid(vid)?;
    Ok(Some(pool_dir(pool)?.join(vid)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_core::volume::Driver;

    fn pool() -> Pool {
        Pool::new("p", Driver::File, "/var/lib/qubes")
    }

    #[test]
    fn vids_that_escape_are_refused() {
        for vid in
            ["", "/etc/passwd", "../x", "appvms/../../x", "a//b", "a/./b", "a/", "a\0b", "a b", "a\nb", "..", "."]
        {
            assert!(check_vid(vid).is_err(), "{vid:?}");
        }
        for vid in ["private", "appvms/work/private", "vm-templates/f..x/root", "a.b/c"] {
            assert!(check_vid(vid).is_ok(), "{vid:?}");
        }
    }

    #[test]
    fn file_paths() {
        let l = FileLayout::new(&pool(), "appvms/work/private").unwrap();
        assert_eq!(l.image(), Path::new("/var/lib/qubes/appvms/work/private.img"));
        assert_eq!(l.import(), Path::new("/var/lib/qubes/appvms/work/private.img.import"));
        assert_eq!(l.cow(), Path::new("/var/lib/qubes/appvms/work/private-cow.img"));
        assert_eq!(l.overlay(), Path::new("/var/lib/qubes/appvms/work/private-cow.qcow2"));
        assert_eq!(l.prepared_overlay(), Path::new("/var/lib/qubes/appvms/work/private-cow.qcow2.next"));
        assert_eq!(l.revision(17), Path::new("/var/lib/qubes/appvms/work/private.img.17-back"));
        assert_eq!(l.unowned(), Path::new("/var/lib/qubes/appvms/work/private.img.unowned"));
        assert_eq!(l.private_dir(), Some(Path::new("/var/lib/qubes/appvms/work")));
        assert_eq!(FileLayout::new(&pool(), "appvms/private").unwrap().private_dir(), None);
        assert_eq!(FileLayout::new(&pool(), "private").unwrap().private_dir(), None);
    }

    #[test]
    fn companions_are_recognised_by_name() {
        let l = FileLayout::new(&pool(), "appvms/work/private").unwrap();
        assert_eq!(l.revision_epoch(OsStr::new("private.img.1700000000-back")), Some(1_700_000_000));
        assert_eq!(l.revision_epoch(OsStr::new("private.img.01-back")), None);
        assert_eq!(l.revision_epoch(OsStr::new("private.img.x-back")), None);
        assert_eq!(l.revision_epoch(OsStr::new("root.img.17-back")), None);
        assert_eq!(l.revision_epoch(OsStr::new("private.img17-back")), None);
        assert!(l.is_temp(l.temp(3).file_name().unwrap()));
        assert!(!l.is_temp(OsStr::new("private.img.import")));
        // The overlay is no companion of the image: neither a revision nor a temporary file to sweep up.
        assert_eq!(l.revision_epoch(l.overlay().file_name().unwrap()), None);
        assert!(!l.is_temp(l.overlay().file_name().unwrap()));
        assert_eq!(l.revision_epoch(l.prepared_overlay().file_name().unwrap()), None);
        assert!(!l.is_temp(l.prepared_overlay().file_name().unwrap()));
        assert_eq!(l.revision_epoch(l.unowned().file_name().unwrap()), None);
        assert!(!l.is_temp(l.unowned().file_name().unwrap()));
    }

    #[test]
    fn revision_ids_round_trip() {
        assert_eq!(parse_revision_id(&revision_id(0)), Some(0));
        assert_eq!(parse_revision_id(&revision_id(u64::MAX)), Some(u64::MAX));
        for bad in ["", "-back", "1", "1-back/..", "../1-back", "+1-back", "99999999999999999999999-back"] {
            assert_eq!(parse_revision_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn kernel_paths() {
        let p = Pool::new("linux-kernel", Driver::LinuxKernel, "/var/lib/qubes/vm-kernels");
        assert_eq!(kernel_dir(&p, "").unwrap(), None);
        assert_eq!(kernel_dir(&p, "6.1").unwrap(), Some(PathBuf::from("/var/lib/qubes/vm-kernels/6.1")));
        assert!(kernel_dir(&p, "../6.1").is_err());
    }
}
