//! The `file` driver: one sparse image per volume, at most one revision.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use corral_core::volume::{Driver, Pool, Volume};

use crate::fsutil::{self, Pending};
use crate::layout::{self, FileLayout};
use crate::{copy, qcow2, sys, Attachment, Revision, StorageError};

pub(crate) fn path(pool: &Pool, vol: &Volume) -> PathBuf {
    let own = FileLayout::new(pool, &vol.vid).map(|l| l.image());
    let path = match (&vol.source, vol.snap_on_start) {
        (Some(source), true) => own.and_then(|_| layout::snapshot_origin_image(pool, source)),
        _ => own,
    };
    path.unwrap_or_default()
}

/// How many revisions to keep: `-1` (snapshots off) keeps none, and the driver's limit caps whatever the
/// configuration says.
fn keep(vol: &Volume) -> usize {
    usize::try_from(vol.revisions_to_keep.clamp(0, Driver::File.max_revisions())).unwrap_or(0)
}

/// Content-replacing operations go to the volume's own image, which only volumes saved on stop have; for the
/// others it would be discarded or, worse, be mistaken for the origin's data.
fn check_importable(vol: &Volume) -> Result<(), StorageError> {
    if vol.snap_on_start || !vol.save_on_stop {
        return Err(StorageError::Unsupported(format!("Can not import into save_on_stop=False volume {}", vol.vid)));
    }
    Ok(())
}

pub(crate) fn create(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    if vol.snap_on_start {
        return Ok(());
    }
    // Data already at this place is someone's (a user's image, or an old revision or import that a new qube must
    // not inherit); only `discard_orphan` may clear it, and only when it is provably Corral's leftover.
    let image = l.image();
    let mut data = vec![image.clone(), l.import()];
    data.extend(revision_epochs(&l)?.into_iter().map(|e| l.revision(e)));
    for path in data {
        if fsutil::exists_no_follow(&path)? {
            return Err(StorageError::AlreadyExists(path));
        }
    }
    fsutil::create_dirs(l.dir())?;
    // The marker is durable before the image exists, so a crash before the caller's commit leaves files that
    // `discard_orphan` recognises.
    let marker = l.unowned();
    fsutil::touch(&marker)?;
    fsutil::fsync_dir(l.dir())?;
    let made = create_image(vol, &l, &image);
    if made.is_err() {
        // Whatever is at the image's name now (a file that appeared meanwhile) is not ours to mark.
        if let Err(e) = fsutil::remove_file_if_exists(&marker) {
            tracing::warn!(vid = %vol.vid, error = %e, "cannot remove the marker of a failed create");
        }
    }
    made
}

fn create_image(vol: &Volume, l: &FileLayout, image: &Path) -> Result<(), StorageError> {
    let pending = match Pending::create(image.to_path_buf()) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(StorageError::AlreadyExists(image.to_path_buf()))
        }
        Err(e) => return Err(StorageError::io("create", image)(e)),
    };
    let file = pending.file();
    file.set_permissions(Permissions::from_mode(fsutil::IMAGE_MODE))
        .and_then(|()| file.set_len(vol.size))
        .map_err(StorageError::io("write", image))?;
    allocate(vol, file, 0, vol.size, image)?;
    file.sync_all().map_err(StorageError::io("write", image))?;
    fsutil::fsync_dir(l.dir())?;
    pending.keep();
    Ok(())
}

/// The volume's qube is committed: its files stop being leftovers. Not synced: a marker a crash brings back sits
/// on a volume a qube owns, where nothing looks at it, and goes with the volume's other files at its removal.
pub(crate) fn own(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    fsutil::remove_file_if_exists(&l.unowned())?;
    Ok(())
}

/// About to commit the removal of the volume's qube (or of the volume): marks its files as Corral's leftovers,
/// durably, so a crash before they are removed does not leave them looking like a user's. If the commit fails the
/// marker stays on an owned volume, which is harmless (see [`own`]).
pub(crate) fn disown(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    if vol.snap_on_start || !fsutil::exists_no_follow(l.dir())? {
        return Ok(());
    }
    fsutil::touch(&l.unowned())?;
    fsutil::fsync_dir(l.dir())
}

/// Removes the files of a volume no qube owns if they carry the marker of [`create`] or [`disown`]; says whether
/// it did. Anything else is left alone: it may be a user's.
pub(crate) fn discard_orphan(pool: &Pool, vol: &Volume) -> Result<bool, StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    if !fsutil::exists_no_follow(&l.unowned())? {
        return Ok(false);
    }
    remove(pool, vol)?;
    Ok(true)
}

pub(crate) fn preallocate(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    let image = FileLayout::checked(pool, &vol.vid)?.image();
    let file = match fsutil::open_no_follow(&image, true) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StorageError::MissingImage(image)),
        Err(e) => return Err(StorageError::io("open", &image)(e)),
    };
    let len = file.metadata().map_err(StorageError::io("inspect", &image))?.len();
    // The free-space check counts all of it, blocks it has already too: it errs towards refusing.
    allocate(&Volume { preallocated: true, ..vol.clone() }, &file, 0, len, &image)?;
    file.sync_all().map_err(StorageError::io("sync", &image))
}

/// Allocates the blocks of a preallocated volume's image `file` (at `path`) up to `len`, of which the first
/// `have` bytes are allocated already; thin volumes keep their holes. What the file system cannot hold is refused
/// before anything is allocated: a failing allocation would first fill the file system for everybody.
fn allocate(vol: &Volume, file: &fs::File, have: u64, len: u64, path: &Path) -> Result<(), StorageError> {
    if !vol.preallocated || len <= have {
        return Ok(());
    }
    let needed = len - have;
    let dir = path.parent().unwrap_or(path);
    let available = sys::available(dir).map_err(StorageError::io("inspect", dir))?;
    let no_space = || StorageError::NoSpace { vid: vol.vid.clone(), needed, available };
    if needed > available {
        return Err(no_space());
    }
    sys::allocate(file, len).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            no_space()
        } else {
            StorageError::io("allocate", path)(e)
        }
    })
}

pub(crate) fn remove(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    let mut removed = false;
    // A snapshot's overlay is normally gone at stop, but a crash while its qube ran leaves it behind.
    for path in [l.image(), l.import(), l.cow(), l.overlay()] {
        removed |= fsutil::remove_file_if_exists(&path)?;
    }
    for name in dir_entries(l.dir())? {
        if l.revision_epoch(&name).is_some() || l.is_temp(&name) {
            removed |= fsutil::remove_file_if_exists(&l.dir().join(&name))?;
        }
    }
    // Last: a preparation that was still running renames its temporary file to this name, so removing it after
    // the temporary files catches those that finished meanwhile. That only narrows the race; `prepare_next` must
    // still not overlap a removal (see there).
    removed |= fsutil::remove_file_if_exists(&l.prepared_overlay())?;
    // After everything it vouches for: a crash midway leaves the rest still marked.
    removed |= fsutil::remove_file_if_exists(&l.unowned())?;
    if removed {
        fsutil::fsync_dir(l.dir())?;
    }
    if let Some(dir) = l.private_dir() {
        match fs::remove_dir(dir) {
            Ok(()) => {
                if let Some(parent) = dir.parent() {
                    fsutil::fsync_dir(parent)?;
                }
            }
            // Other volumes of the same qube still live there, or it was never created.
            Err(e) if matches!(e.kind(), io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::NotFound) => {}
            Err(e) => return Err(StorageError::io("remove", dir)(e)),
        }
    }
    Ok(())
}

/// Names in `dir`; a missing directory simply has none.
fn dir_entries(dir: &Path) -> Result<Vec<std::ffi::OsString>, StorageError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io("list", dir)(e)),
    };
    entries.map(|e| e.map(|e| e.file_name())).collect::<io::Result<_>>().map_err(StorageError::io("list", dir))
}

pub(crate) fn usage(pool: &Pool, vol: &Volume) -> Option<u64> {
    let l = FileLayout::checked(pool, &vol.vid).ok()?;
    // The origin's blocks are the origin's usage; a snapshot only owns what it wrote since start, which is in its
    // overlay while the qube runs (the marker is empty and only stands in when there is no overlay). A prepared
    // overlay holds no data of the qube's, only qcow2 metadata, so it does not count.
    let paths = if vol.snap_on_start { vec![l.overlay(), l.cow()] } else { vec![l.image()] };
    for path in paths {
        match fs::symlink_metadata(path) {
            Ok(m) => return Some(fsutil::allocated(&m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => return None,
        }
    }
    // Absent files use no space; clients parse `usage` as an integer, so 0 beats "unknown".
    Some(0)
}

pub(crate) fn resize(pool: &Pool, vol: &Volume, new_size: u64) -> Result<(), StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    if !vol.rw {
        return Err(StorageError::ReadOnly(vol.vid.clone()));
    }
    let image = l.image();
    let file = if vol.snap_on_start {
        None
    } else {
        match fsutil::open_no_follow(&image, true) {
            Ok(f) => Some(f),
            // A volatile image only exists while its qube runs and is recreated at the configured size.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !vol.save_on_stop => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StorageError::MissingImage(image)),
            Err(e) => return Err(StorageError::io("open", &image)(e)),
        }
    };
    let on_disk = match &file {
        Some(f) => f.metadata().map_err(StorageError::io("inspect", &image))?.len(),
        None => 0,
    };
    let current = vol.size.max(on_disk);
    if new_size < current {
        return Err(StorageError::ShrinkRefused {
            volume: vol.name.clone(),
            current,
            requested: new_size,
            path: path(pool, vol),
        });
    }
    if let Some(f) = file {
        if new_size != on_disk {
            if let Err(e) = allocate(vol, &f, on_disk, new_size, &image) {
                // An allocation cut short may have grown the file: the volume keeps its size.
                if let Err(undo) = f.set_len(on_disk) {
                    tracing::warn!(vid = %vol.vid, error = %undo, "cannot undo a failed allocation");
                }
                return Err(e);
            }
            f.set_len(new_size).and_then(|()| f.sync_all()).map_err(StorageError::io("resize", &image))?;
        }
    }
    Ok(())
}

pub(crate) fn clear(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    check_importable(vol)?;
    let image = l.image();
    let size = fsutil::regular_file(&image)?.map_or(vol.size, |m| m.len());
    let pending = new_pending(&l)?;
    pending.file().set_len(size).map_err(StorageError::io("write", pending.path()))?;
    allocate(vol, pending.file(), 0, size, pending.path())?;
    commit(&l, pending.path(), keep(vol))?;
    pending.keep();
    Ok(())
}

pub(crate) fn clone_volume(src_pool: &Pool, src: &Volume, dst_pool: &Pool, dst: &Volume) -> Result<u64, StorageError> {
    let src_l = FileLayout::checked(src_pool, &src.vid)?;
    let dst_l = FileLayout::checked(dst_pool, &dst.vid)?;
    if src.snap_on_start {
        return Err(StorageError::Unsupported(format!(
            "Can not import snapshot volume {} in to pool {}",
            src.vid, dst_pool.name
        )));
    }
    if dst.snap_on_start || !dst.save_on_stop {
        // Like upstream: only volumes saved on stop carry data of their own worth copying.
        return Ok(dst.size);
    }
    let src_image = src_l.image();
    let src_file = match fsutil::open_no_follow(&src_image, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StorageError::MissingImage(src_image)),
        Err(e) => return Err(StorageError::io("open", &src_image)(e)),
    };
    let pending = new_pending(&dst_l)?;
    let tmp = pending.file();
    copy::copy_into(&src_file, tmp).map_err(StorageError::io("copy to", pending.path()))?;
    let size = tmp.metadata().map_err(StorageError::io("inspect", pending.path()))?.len();
    // The copy keeps holes (or shares extents): a preallocated volume gets its own blocks for all of it.
    allocate(dst, tmp, 0, size, pending.path())?;
    commit(&dst_l, pending.path(), keep(dst))?;
    pending.keep();
    Ok(size)
}

/// Revision epochs on disk, oldest first, regardless of how many the volume keeps.
fn revision_epochs(l: &FileLayout) -> Result<Vec<u64>, StorageError> {
    let mut epochs: Vec<u64> = dir_entries(l.dir())?.iter().filter_map(|n| l.revision_epoch(n)).collect();
    epochs.sort_unstable();
    Ok(epochs)
}

/// The revisions a client may see and revert to: the newest `keep` of those on disk. Older ones are only
/// leftovers of a lowered `revisions_to_keep`, removed at the next commit.
fn visible_revisions(l: &FileLayout, vol: &Volume) -> Result<Vec<u64>, StorageError> {
    if vol.snap_on_start {
        return Ok(Vec::new());
    }
    let mut epochs = revision_epochs(l)?;
    let keep = keep(vol);
    Ok(epochs.split_off(epochs.len().saturating_sub(keep)))
}

pub(crate) fn revisions(pool: &Pool, vol: &Volume) -> Result<Vec<Revision>, StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    Ok(visible_revisions(&l, vol)?
        .into_iter()
        .map(|epoch| Revision { id: layout::revision_id(epoch), timestamp: fsutil::iso_utc(epoch) })
        .collect())
}

pub(crate) fn revert(pool: &Pool, vol: &Volume, revision: &str) -> Result<(), StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    let not_found = || StorageError::RevisionNotFound { vid: vol.vid.clone(), revision: revision.to_string() };
    let epoch = layout::parse_revision_id(revision).ok_or_else(not_found)?;
    if !visible_revisions(&l, vol)?.contains(&epoch) {
        return Err(not_found());
    }
    commit(&l, &l.revision(epoch), keep(vol))
}

pub(crate) fn prune_revisions(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    prune(&l, if vol.snap_on_start { 0 } else { keep(vol) })
}

pub(crate) fn import_begin(pool: &Pool, vol: &Volume, size: u64) -> Result<PathBuf, StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    check_importable(vol)?;
    fsutil::create_dirs(l.dir())?;
    let path = l.import();
    let pending = match Pending::create(path.clone()) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(StorageError::ImportInProgress(vol.vid.clone()))
        }
        Err(e) => return Err(StorageError::io("create", &path)(e)),
    };
    let file = pending.file();
    file.set_len(size).and_then(|()| file.sync_all()).map_err(StorageError::io("write", &path))?;
    fsutil::fsync_dir(l.dir())?;
    Ok(pending.keep())
}

pub(crate) fn import_end(pool: &Pool, vol: &Volume, success: bool) -> Result<Option<u64>, StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    let path = l.import();
    if !success {
        if fsutil::remove_file_if_exists(&path)? {
            fsutil::fsync_dir(l.dir())?;
        }
        return Ok(None);
    }
    let size = match fsutil::regular_file(&path)? {
        Some(m) => m.len(),
        None => return Err(StorageError::NoImportInProgress(vol.vid.clone())),
    };
    let allocated = match fsutil::open_no_follow(&path, true) {
        Ok(f) => allocate(vol, &f, 0, size, &path),
        Err(e) => Err(StorageError::io("open", &path)(e)),
    };
    if let Err(e) = allocated.and_then(|()| commit(&l, &path, keep(vol))) {
        // The caller forgets the import either way; a leftover file would block every later one.
        if let Err(cleanup) = fsutil::remove_file_if_exists(&path) {
            tracing::warn!(vid = %vol.vid, error = %cleanup, "cannot remove failed import");
        }
        return Err(e);
    }
    Ok(Some(size))
}

/// Removes temporary and import files left by an interrupted operation, e.g. after a daemon crash.
pub(crate) fn discard_pending(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    let mut removed = fsutil::remove_file_if_exists(&l.import())?;
    for name in dir_entries(l.dir())? {
        if l.is_temp(&name) {
            removed |= fsutil::remove_file_if_exists(&l.dir().join(&name))?;
        }
    }
    if removed {
        fsutil::fsync_dir(l.dir())?;
    }
    Ok(())
}

pub(crate) fn mark_started(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    if !vol.snap_on_start {
        return Ok(());
    }
    fsutil::create_dirs(l.dir())?;
    let cow = l.cow();
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&cow)
        .map_err(StorageError::io("create", &cow))?;
    // Not synced, file or directory: the marker is only an mtime for `is_outdated` to compare while the qube runs,
    // and a crash that loses it also ends the qube (a daemon crash alone loses nothing from the page cache).
    file.set_modified(SystemTime::now()).map_err(StorageError::io("write", &cow))
}

pub(crate) fn mark_stopped(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    // Not synced, like its creation: a marker a crash brings back is no different from one a crash during the
    // qube's run leaves, and the next start replaces it either way.
    fsutil::remove_file_if_exists(&l.cow())?;
    Ok(())
}

pub(crate) fn is_outdated(pool: &Pool, vol: &Volume, origin_pool: &Pool, origin: &Volume) -> bool {
    if !vol.snap_on_start || origin_pool.driver != Driver::File {
        return false;
    }
    let (Ok(l), Ok(origin_l)) = (FileLayout::checked(pool, &vol.vid), FileLayout::checked(origin_pool, &origin.vid))
    else {
        return false;
    };
    let mtime = |p: PathBuf| fs::symlink_metadata(p).and_then(|m| m.modified()).ok();
    match (mtime(l.cow()), mtime(origin_l.image())) {
        (Some(started), Some(changed)) => changed > started,
        _ => false,
    }
}

/// The program that writes snapshot overlays, looked up in `PATH` like any tool the daemon runs.
const QEMU_IMG: &str = "qemu-img";

/// Where and how [`start_volume`] would attach `vol`, without the start's work (no overlay, no volatile image,
/// no check that the files exist): what a start would define, to show before the qube runs.
pub(crate) fn attachment(pool: &Pool, vol: &Volume) -> Result<Attachment, StorageError> {
    let l = FileLayout::new(pool, &vol.vid)?;
    Ok(match (vol.save_on_stop, vol.snap_on_start) {
        (true, true) => {
            return Err(StorageError::Unsupported(format!(
                "file pool {} cannot start volume {}: it cannot be both saved on stop and snapshotted on start",
                pool.name, vol.vid
            )))
        }
        (true, false) => Attachment { path: l.image(), format: crate::FORMAT_RAW, read_only: !vol.rw },
        (false, true) => Attachment { path: l.overlay(), format: crate::FORMAT_QCOW2, read_only: !vol.rw },
        (false, false) => Attachment { path: l.image(), format: crate::FORMAT_RAW, read_only: false },
    })
}

pub(crate) fn start_volume(
    pool: &Pool,
    vol: &Volume,
    origin: Option<(&Pool, &Volume)>,
) -> Result<Option<Attachment>, StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    let attachment = match (vol.save_on_stop, vol.snap_on_start) {
        (true, true) => {
            return Err(StorageError::Unsupported(format!(
                "file pool {} cannot start volume {}: it cannot be both saved on stop and snapshotted on start",
                pool.name, vol.vid
            )))
        }
        (true, false) => {
            let image = l.image();
            if fsutil::regular_file(&image)?.is_none() {
                return Err(StorageError::MissingImage(image));
            }
            Attachment { path: image, format: crate::FORMAT_RAW, read_only: !vol.rw }
        }
        (false, true) => {
            let (origin_pool, origin) = origin.ok_or_else(|| StorageError::NoOrigin(vol.vid.clone()))?;
            let backing = origin_image(origin_pool, origin)?;
            start_snapshot(pool, vol, &l, &backing, OsStr::new(QEMU_IMG))?;
            Attachment { path: l.overlay(), format: crate::FORMAT_QCOW2, read_only: !vol.rw }
        }
        (false, false) => {
            start_volatile(&l, vol.size)?;
            Attachment { path: l.image(), format: crate::FORMAT_RAW, read_only: false }
        }
    };
    Ok(Some(attachment))
}

/// The image a snapshot of `origin` reads through to. Only a volume saved on stop has content of its own to
/// share; the model resolves chains (a DispVM's root names its template's root, not the AppVM's snapshot).
fn origin_image(origin_pool: &Pool, origin: &Volume) -> Result<PathBuf, StorageError> {
    if origin_pool.driver != Driver::File || origin.snap_on_start || !origin.save_on_stop {
        return Err(StorageError::Unsupported(format!(
            "Volume {} of {} pool {} cannot be a snapshot origin",
            origin.vid,
            origin_pool.driver.name(),
            origin_pool.name
        )));
    }
    let image = FileLayout::checked(origin_pool, &origin.vid)?.image();
    // qemu-img would fail too, but with a message about the overlay rather than the actual culprit.
    if fsutil::regular_file(&image)?.is_none() {
        return Err(StorageError::MissingImage(image));
    }
    Ok(image)
}

fn start_snapshot(
    pool: &Pool,
    vol: &Volume,
    l: &FileLayout,
    backing: &Path,
    qemu_img: &OsStr,
) -> Result<(), StorageError> {
    // The marker goes first: an origin changing while the overlay is being made then counts as a change after
    // start, so `is_outdated` errs towards "outdated" rather than missing an update.
    mark_started(pool, vol)?;
    let made = if take_prepared(l, backing) { Ok(()) } else { create_overlay(l, backing, qemu_img) };
    if let Err(e) = made {
        // The qube will not run, so it must not look started (and thus possibly outdated) either.
        if let Err(cleanup) = mark_stopped(pool, vol) {
            tracing::warn!(vid = %vol.vid, error = %cleanup, "cannot remove start marker after a failed start");
        }
        return Err(e);
    }
    Ok(())
}

/// Moves the prepared overlay into place if it is what [`create_overlay`] would write now, sparing the start a
/// `qemu-img` run; says whether it did. Anything else (none prepared, stale, damaged) is left for
/// [`create_overlay`] to replace.
fn take_prepared(l: &FileLayout, backing: &Path) -> bool {
    let overlay = l.overlay();
    // Claimed by renaming before it is checked: preparations only ever rename complete files to the prepared
    // name, and once renamed away no concurrent preparation can replace what is being checked and attached.
    match fs::rename(l.prepared_overlay(), &overlay) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return false,
        Err(e) => {
            tracing::debug!(path = %overlay.display(), error = %e, "cannot take the prepared overlay");
            return false;
        }
    }
    let fits = overlay_fits(&overlay, backing);
    if !fits {
        tracing::debug!(path = %overlay.display(), "prepared overlay is stale, creating a new one");
    }
    fits
}

/// Whether the overlay at `path` is what `qemu-img create -f qcow2 -F raw -b <backing>` would write now: backed
/// by exactly `backing` as raw, showing the guest the origin's current length. Unreadable or malformed files do not
/// fit; the caller then makes a new one, which reports any real I/O problem.
fn overlay_fits(path: &Path, backing: &Path) -> bool {
    let Some(header) = fsutil::open_no_follow(path, false).and_then(|f| qcow2::read(&f)).ok().flatten() else {
        return false;
    };
    // The origin's length now, not when the overlay was made: a resized origin must show its new size.
    let Ok(origin) = fs::symlink_metadata(backing) else { return false };
    header.backing == backing.as_os_str().as_bytes()
        && header.backing_format.as_deref() == Some(crate::FORMAT_RAW.as_bytes())
        && header.virtual_size == origin.len()
}

/// The origin image an overlay was made over, if it is one of ours (absolute name, raw format) and still there.
fn overlay_backing(path: &Path) -> Option<PathBuf> {
    let header = fsutil::open_no_follow(path, false).and_then(|f| qcow2::read(&f)).ok().flatten()?;
    if header.backing_format.as_deref() != Some(crate::FORMAT_RAW.as_bytes()) || !header.backing.starts_with(b"/") {
        return None;
    }
    let backing = PathBuf::from(OsStr::from_bytes(&header.backing));
    fs::symlink_metadata(&backing).is_ok_and(|m| m.is_file()).then_some(backing)
}

/// Writes a fresh, empty overlay over `backing`, replacing whatever a crashed run or a stale prepared overlay left
/// at its name.
fn create_overlay(l: &FileLayout, backing: &Path, qemu_img: &OsStr) -> Result<(), StorageError> {
    let overlay = l.overlay();
    fsutil::remove_file_if_exists(&overlay)?;
    // Creating the file ourselves gives it private permissions from the start (qemu-img reuses the inode and its
    // mode) and removes it again if anything below fails.
    let pending = Pending::create(overlay.clone()).map_err(StorageError::io("create", &overlay))?;
    run_qemu_img(qemu_img, backing, &overlay)?;
    set_image_mode(&overlay)?;
    // Neither the file nor the directory is synced: the overlay is discarded at stop and replaced at every start,
    // so a crash leaves nothing in it worth keeping, and it sits on the start's critical path.
    pending.keep();
    Ok(())
}

/// `qemu-img create` of an empty overlay at `target` (which exists) over `backing`.
fn run_qemu_img(qemu_img: &OsStr, backing: &Path, target: &Path) -> Result<(), StorageError> {
    let output = Command::new(qemu_img)
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(backing)
        .arg(target)
        .output()
        .map_err(StorageError::io("run qemu-img to create", target))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let detail = if stderr.is_empty() { format!("qemu-img failed ({})", output.status) } else { stderr };
        return Err(StorageError::Overlay { path: target.to_path_buf(), detail });
    }
    Ok(())
}

/// Gives a file qemu-img wrote the image mode. Reopened by name: whatever qemu-img did to the file, this is what
/// QEMU will open.
fn set_image_mode(path: &Path) -> Result<fs::File, StorageError> {
    let file = fsutil::open_no_follow(path, false).map_err(StorageError::io("open", path))?;
    file.set_permissions(Permissions::from_mode(fsutil::IMAGE_MODE)).map_err(StorageError::io("write", path))?;
    Ok(file)
}

pub(crate) fn prepare_next(pool: &Pool, vol: &Volume, origin: Option<(&Pool, &Volume)>) -> Result<(), StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    if !vol.snap_on_start || vol.save_on_stop {
        return Ok(());
    }
    let (origin_pool, origin) = origin.ok_or_else(|| StorageError::NoOrigin(vol.vid.clone()))?;
    let backing = origin_image(origin_pool, origin)?;
    prepare(&l, &backing, OsStr::new(QEMU_IMG)).map(drop)
}

/// Makes sure the prepared overlay fits `backing` (see [`overlay_fits`]), writing a new one if not; says whether
/// it wrote one. Safe to run while the volume starts: the new overlay is written under a temporary name and only
/// renamed to the prepared name once complete, and [`take_prepared`] claims that name atomically.
fn prepare(l: &FileLayout, backing: &Path, qemu_img: &OsStr) -> Result<bool, StorageError> {
    let next = l.prepared_overlay();
    if overlay_fits(&next, backing) {
        return Ok(false);
    }
    let temp = l.temp(fsutil::next_unique());
    let pending = match Pending::create(temp.clone()) {
        Ok(p) => p,
        // No directory: the volume was removed meanwhile (or never started), so there is nothing to prepare for,
        // and recreating its directory would leave it behind.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StorageError::io("create", &temp)(e)),
    };
    run_qemu_img(qemu_img, backing, &temp)?;
    // Synced before the rename that publishes it, so the prepared name holds a complete overlay even after a crash
    // (qemu-img syncs too, making this cheap); not on any start's path, so the cost does not count. The directory is
    // not synced: a lost rename only loses the preparation.
    set_image_mode(&temp)?.sync_data().map_err(StorageError::io("sync", &temp))?;
    match fs::rename(&temp, &next) {
        Ok(()) => {}
        // `remove` swept the temporary file away: the volume is gone, so is the need for the overlay.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StorageError::io("prepare", &next)(e)),
    }
    pending.keep();
    Ok(true)
}

/// Replaces the image with a new sparse one of `size` bytes. The new file gets its size and mode before it takes
/// the image's name, so the image is never seen half-made, and a failure leaves the old one for the next try.
fn start_volatile(l: &FileLayout, size: u64) -> Result<(), StorageError> {
    let pending = new_pending(l)?;
    let file = pending.file();
    file.set_permissions(Permissions::from_mode(fsutil::IMAGE_MODE))
        .and_then(|()| file.set_len(size))
        .map_err(StorageError::io("write", pending.path()))?;
    let image = l.image();
    fs::rename(pending.path(), &image).map_err(StorageError::io("replace", &image))?;
    // Neither the file nor the directory is synced: the image is emptied at stop and replaced at every start, so
    // whatever a crash leaves under its name (old or new, both without data worth keeping) is replaced before any
    // qube sees it.
    pending.keep();
    Ok(())
}

pub(crate) fn stop_volume(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    let l = FileLayout::checked(pool, &vol.vid)?;
    if vol.snap_on_start {
        // The origin the overlay was made over is the one the next start most likely uses (the caller passes it
        // to start_volume only, and the model may resolve it to another volume than `vol.source` names).
        let backing = overlay_backing(&l.overlay());
        // Not synced: a crash that brings these files back leaves what a crash while the qube ran leaves, which
        // the next start replaces.
        fsutil::remove_file_if_exists(&l.overlay())?;
        fsutil::remove_file_if_exists(&l.cow())?;
        // Done now so the next start only renames a file; an optimisation, so failure is no failed stop.
        if let Some(backing) = backing {
            if let Err(e) = prepare(&l, &backing, OsStr::new(QEMU_IMG)) {
                tracing::warn!(vid = %vol.vid, error = %e, "cannot prepare the next start's overlay");
            }
        }
        return Ok(());
    }
    let image = l.image();
    // Syncing needs no write access, so an origin image made read-only by hand is no obstacle.
    let file = match fsutil::open_no_follow(&image, !vol.save_on_stop) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io("open", &image)(e)),
    };
    if !vol.save_on_stop {
        // Dropping all blocks discards the content and frees its space; the length stays so the stopped volume
        // still looks its size. Not synced: if a crash undoes it, the next start replaces the image anyway.
        let len = file.metadata().map_err(StorageError::io("inspect", &image))?.len();
        return file.set_len(0).and_then(|()| file.set_len(len)).map_err(StorageError::io("discard", &image));
    }
    // QEMU may have left written data in the page cache; the stop is only acknowledged once it is on disk.
    file.sync_all().map_err(StorageError::io("sync", &image))
}

fn new_pending(l: &FileLayout) -> Result<Pending, StorageError> {
    fsutil::create_dirs(l.dir())?;
    let path = l.temp(fsutil::next_unique());
    Pending::create(path.clone()).map_err(StorageError::io("create", &path))
}

/// Makes the fully written file `new` the volume's image, keeping the replaced image as a revision when `keep`
/// allows. The image path names either the old or the new content at every instant, so a crash never loses both.
fn commit(l: &FileLayout, new: &Path, keep: usize) -> Result<(), StorageError> {
    {
        let file = fsutil::open_no_follow(new, true).map_err(StorageError::io("open", new))?;
        // The mtime marks when the content changed, which is what `is_outdated` compares; a reverted revision
        // would otherwise carry its old time.
        file.set_permissions(Permissions::from_mode(fsutil::IMAGE_MODE))
            .and_then(|()| file.set_modified(SystemTime::now()))
            .and_then(|()| file.sync_all())
            .map_err(StorageError::io("write", new))?;
    }
    let image = l.image();
    if keep > 0 && fsutil::regular_file(&image)?.is_some() {
        // Epochs name revisions, so two commits within a second must still get distinct, ordered names.
        let next = revision_epochs(l)?.last().map_or(0, |e| e.saturating_add(1));
        let saved = l.revision(fsutil::now_epoch().max(next));
        if let Err(e) = fs::hard_link(&image, &saved) {
            // Without hard links the image is briefly missing; the revision still holds its content.
            tracing::debug!(path = %image.display(), error = %e, "hard link failed, moving the image instead");
            fs::rename(&image, &saved).map_err(StorageError::io("save revision of", &image))?;
        }
    }
    fs::rename(new, &image).map_err(StorageError::io("replace", &image))?;
    fsutil::fsync_dir(l.dir())?;
    prune(l, keep)
}

/// Drops all but the newest `keep` revisions.
fn prune(l: &FileLayout, keep: usize) -> Result<(), StorageError> {
    let epochs = revision_epochs(l)?;
    let excess = epochs.len().saturating_sub(keep);
    for &epoch in &epochs[..excess] {
        fsutil::remove_file_if_exists(&l.revision(epoch))?;
    }
    if excess > 0 {
        fsutil::fsync_dir(l.dir())?;
    }
    Ok(())
}

pub(crate) fn setup_pool(pool: &Pool) -> Result<(), StorageError> {
    let dir = layout::pool_dir(pool)?;
    let not_usable = |source: io::Error| StorageError::PoolNotUsable { path: dir.clone(), source };
    // The directory is checked before anything is made in it, each subdirectory before it is used.
    for sub in [None].into_iter().chain(layout::FILE_POOL_SUBDIRS.map(Some)) {
        let path = sub.map_or_else(|| dir.clone(), |sub| dir.join(sub));
        fsutil::create_dirs(&path).map_err(|e| match e {
            StorageError::Io { source, .. } => not_usable(source),
            other => other,
        })?;
        fsutil::check_pool_tree(&dir, &path)?;
    }
    // Creating a file is the only reliable test: permission bits say nothing about read-only mounts or ACLs.
    let probe = dir.join(layout::write_probe_name(fsutil::next_unique()));
    drop(Pending::create(probe).map_err(not_usable)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool in a temporary directory with a 1 MiB origin image to back overlays.
    fn setup() -> (tempfile::TempDir, Pool, FileLayout, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let pool = Pool::new("p", Driver::File, tmp.path().to_str().unwrap());
        let backing = tmp.path().join("origin.img");
        fs::File::create(&backing).unwrap().set_len(1 << 20).unwrap();
        let l = FileLayout::new(&pool, "appvms/work/root").unwrap();
        fsutil::create_dirs(l.dir()).unwrap();
        (tmp, pool, l, backing)
    }

    #[test]
    fn a_missing_qemu_img_is_named_in_the_error() {
        let (_tmp, _pool, l, backing) = setup();
        let err = create_overlay(&l, &backing, OsStr::new("/nonexistent/qemu-img")).unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with("Cannot run qemu-img to create ") && msg.contains("root-cow.qcow2"), "{msg}");
        assert!(!l.overlay().exists(), "no half-made overlay left");
    }

    #[test]
    fn a_failing_qemu_img_reports_its_status_and_leaves_nothing() {
        let (_tmp, pool, l, backing) = setup();
        // `false` prints nothing, so the exit status must stand in for the message.
        let err = create_overlay(&l, &backing, OsStr::new("false")).unwrap_err();
        assert!(matches!(err, StorageError::Overlay { ref path, .. } if *path == l.overlay()), "{err:?}");
        assert!(err.to_string().contains("exit status: 1"), "{err}");
        assert!(!l.overlay().exists());

        let vol = Volume {
            name: "root".into(),
            pool: "p".into(),
            vid: "appvms/work/root".into(),
            size: 1 << 20,
            rw: true,
            source: Some("origin".into()),
            save_on_stop: false,
            snap_on_start: true,
            revisions_to_keep: 0,
            ephemeral: None,
            bootable: false,
            preallocated: false,
            alias: None,
        };
        start_snapshot(&pool, &vol, &l, &backing, OsStr::new("false")).unwrap_err();
        assert!(!l.cow().exists(), "a qube that did not start must not look started");
    }

    #[test]
    fn a_failed_preparation_leaves_nothing() {
        let (tmp, _pool, l, backing) = setup();
        let err = prepare(&l, &backing, OsStr::new("false")).unwrap_err();
        assert!(matches!(err, StorageError::Overlay { .. }), "{err:?}");
        assert_eq!(fs::read_dir(l.dir()).unwrap().count(), 0, "neither a prepared nor a temporary file");
        // A missing origin: qemu-img refuses, and again nothing is left behind.
        prepare(&l, &tmp.path().join("missing.img"), OsStr::new(QEMU_IMG)).unwrap_err();
        assert_eq!(fs::read_dir(l.dir()).unwrap().count(), 0);
    }

    #[test]
    fn a_prepared_overlay_is_written_only_when_none_fits() {
        let (_tmp, _pool, l, backing) = setup();
        assert!(prepare(&l, &backing, OsStr::new(QEMU_IMG)).unwrap(), "needs qemu-img: qemu-utils");
        assert!(overlay_fits(&l.prepared_overlay(), &backing));
        assert!(!prepare(&l, &backing, OsStr::new("false")).unwrap(), "one that fits is kept, qemu-img not run");
        fs::File::options().write(true).open(&backing).unwrap().set_len(2 << 20).unwrap();
        assert!(!overlay_fits(&l.prepared_overlay(), &backing), "the origin grew");
        assert!(prepare(&l, &backing, OsStr::new(QEMU_IMG)).unwrap());
        assert!(overlay_fits(&l.prepared_overlay(), &backing));
        assert_eq!(overlay_backing(&l.prepared_overlay()), Some(backing));
    }

    #[test]
    fn qemu_img_error_output_becomes_the_message() {
        let (tmp, _pool, l, _backing) = setup();
        let err = create_overlay(&l, &tmp.path().join("missing.img"), OsStr::new(QEMU_IMG)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("Could not open") && msg.contains("missing.img"), "{msg} (needs qemu-img: qemu-utils)");
        assert!(!l.overlay().exists());
    }
}
