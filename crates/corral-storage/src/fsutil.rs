//! Durable file-system primitives: every change the daemon acknowledges must survive a crash, which for renames,
//! creations and removals means syncing the directory too, not just the file.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::StorageError;

/// Pool and volume directories: others may pass through (under `qemu:///system` a distribution's libvirtd
/// runs QEMU as its own user and hands it the image files, not the directories on the way) but not list
/// them, which would show every qube's name.
pub(crate) const DIR_MODE: u32 = 0o711;
/// Images hold qube data, so nobody but the daemon and its group may read them.
pub(crate) const IMAGE_MODE: u32 = 0o660;
/// Files still being written (imports, temporary copies) are private to the daemon's user until committed.
pub(crate) const PENDING_MODE: u32 = 0o600;

const SECTOR: u64 = 512;

/// Refuses a directory of a pool that someone other than root or the daemon's user could change: anyone who can
/// rename or create entries there could swap an image for a symlink and have the daemon write or delete
/// through it.
pub(crate) fn check_private_dir(path: &Path, meta: &fs::Metadata) -> Result<(), StorageError> {
    let unsafe_path = |why| Err(StorageError::UnsafePath { path: path.to_path_buf(), why });
    if !meta.is_dir() {
        return unsafe_path("it is not a directory");
    }
    if meta.mode() & 0o022 != 0 {
        return unsafe_path("it is writable by group or others (chmod go-w)");
    }
    if meta.uid() != 0 && meta.uid() != crate::sys::euid() {
        return unsafe_path("it is owned by another user");
    }
    Ok(())
}

/// Checks the pool directory `root` (followed if it is a symlink: that is the administrator's configuration)
/// and every directory from it down to `dir` (never followed). Directories not there yet are fine: they are
/// created with [`DIR_MODE`].
pub(crate) fn check_pool_tree(root: &Path, dir: &Path) -> Result<(), StorageError> {
    match fs::metadata(root) {
        Ok(meta) => check_private_dir(root, &meta)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io("inspect", root)(e)),
    }
    let Ok(below) = dir.strip_prefix(root) else {
        return Err(StorageError::InvalidPath(dir.display().to_string()));
    };
    let mut cur = root.to_path_buf();
    for part in below.components() {
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(StorageError::UnsafePath { path: cur, why: "it is a symlink inside a pool" })
            }
            Ok(meta) => check_private_dir(&cur, &meta)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StorageError::io("inspect", &cur)(e)),
        }
    }
    Ok(())
}

/// Opens an existing file of a pool without following a symlink at its name.
pub(crate) fn open_no_follow(path: &Path, write: bool) -> io::Result<File> {
    let file = OpenOptions::new().read(true).write(write).custom_flags(libc::O_NOFOLLOW).open(path)?;
    Ok(file)
}

/// The metadata of the file at `path` itself, a symlink refused (`None`: nothing there).
pub(crate) fn regular_file(path: &Path) -> Result<Option<fs::Metadata>, StorageError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            Err(StorageError::UnsafePath { path: path.to_path_buf(), why: "it is a symlink inside a pool" })
        }
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("inspect", path)(e)),
    }
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(StorageError::io("sync", dir))
}

/// `mkdir -p`, syncing each parent whose entries change so new directories are not lost in a crash.
pub(crate) fn create_dirs(dir: &Path) -> Result<(), StorageError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        match fs::metadata(d) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(StorageError::Io {
                    action: "create directory",
                    path: d.to_path_buf(),
                    source: io::ErrorKind::NotADirectory.into(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(d),
            Err(e) => return Err(StorageError::io("inspect", d)(e)),
        }
        cur = d.parent();
    }
    for d in missing.into_iter().rev() {
        match DirBuilder::new().mode(DIR_MODE).create(d) {
            // The umask would otherwise decide who can traverse the pool.
            Ok(()) => {
                fs::set_permissions(d, fs::Permissions::from_mode(DIR_MODE))
                    .map_err(StorageError::io("set permissions of", d))?;
                fsync_dir(d)?;
            }
            // Someone else created it meanwhile; it is there, which is all we want.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StorageError::io("create directory", d)(e)),
        }
        if let Some(parent) = d.parent() {
            fsync_dir(parent)?;
        }
    }
    Ok(())
}

/// Removes a file; a missing one is not an error. Reports whether something was removed so callers know whether
/// the directory needs syncing.
pub(crate) fn remove_file_if_exists(path: &Path) -> Result<bool, StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StorageError::io("remove", path)(e)),
    }
}

/// Whether anything, a dangling symlink included, is at `path`.
pub(crate) fn exists_no_follow(path: &Path) -> Result<bool, StorageError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StorageError::io("inspect", path)(e)),
    }
}

/// Creates an empty file, or leaves one that is there; never follows a symlink at `path`. The directory is not
/// synced here.
pub(crate) fn touch(path: &Path) -> Result<(), StorageError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(PENDING_MODE)
        .open(path)
        .and_then(|f| f.sync_all())
        .map_err(StorageError::io("create", path))
}

/// Bytes the file system allocated, which for sparse images is far less than their length.
pub(crate) fn allocated(meta: &fs::Metadata) -> u64 {
    meta.blocks().saturating_mul(SECTOR)
}

/// A file created for writing under a name nobody else uses, removed on drop unless [`Pending::keep`] is called.
/// This is what guarantees a failed clone or clear leaves no half-written file behind.
pub(crate) struct Pending {
    path: PathBuf,
    file: File,
    armed: bool,
}

impl Pending {
    /// Creates `path`, failing if it exists (`AlreadyExists` tells callers someone else owns that name).
    pub(crate) fn create(path: PathBuf) -> io::Result<Pending> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).mode(PENDING_MODE).open(&path)?;
        Ok(Pending { path, file, armed: true })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Gives up ownership: the file stays, the caller has moved or will move it.
    pub(crate) fn keep(mut self) -> PathBuf {
        self.armed = false;
        self.path.clone()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        match fs::remove_file(&self.path) {
            // Already gone: a commit that failed after renaming the file into place.
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                tracing::warn!(path = %self.path.display(), error = %e, "failed to remove temporary file");
            }
            _ => {}
        }
    }
}

/// Distinguishes temporary files this process creates in the same directory within one run.
pub(crate) fn next_unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub(crate) fn now_epoch() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC, the form upstream prints revision times in.
pub(crate) use corral_core::text::iso_utc;
