//! The `file` driver: one sparse image per volume, at most one revision.

use std::fs::{self, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use corral_core::volume::{Driver, Pool, Volume};

use crate::fsutil::{self, Pending};
use crate::layout::{self, FileLayout};
use crate::{copy, Revision, StorageError};

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
    let l = FileLayout::new(pool, &vol.vid)?;
    if vol.snap_on_start {
        return Ok(());
    }
    fsutil::create_dirs(l.dir())?;
    let image = l.image();
    let pending = match Pending::create(image.clone()) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(StorageError::AlreadyExists(image)),
        Err(e) => return Err(StorageError::io("create", &image)(e)),
    };
    let file = pending.file();
    file.set_permissions(Permissions::from_mode(fsutil::IMAGE_MODE))
        .and_then(|()| file.set_len(vol.size))
        .and_then(|()| file.sync_all())
        .map_err(StorageError::io("write", &image))?;
    fsutil::fsync_dir(l.dir())?;
    pending.keep();
    Ok(())
}

pub(crate) fn remove(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    let l = FileLayout::new(pool, &vol.vid)?;
    let mut removed = false;
    for path in [l.image(), l.import(), l.cow()] {
        removed |= fsutil::remove_file_if_exists(&path)?;
    }
    for name in dir_entries(l.dir())? {
        if l.revision_epoch(&name).is_some() || l.is_temp(&name) {
            removed |= fsutil::remove_file_if_exists(&l.dir().join(&name))?;
        }
    }
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
    let l = FileLayout::new(pool, &vol.vid).ok()?;
    // The origin's blocks are the origin's usage; a snapshot only owns what it wrote since start.
    let path = if vol.snap_on_start { l.cow() } else { l.image() };
    match fs::metadata(path) {
        Ok(m) => Some(fsutil::allocated(&m)),
        // Absent files use no space; clients parse `usage` as an integer, so 0 beats "unknown".
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(0),
        Err(_) => None,
    }
}

pub(crate) fn resize(pool: &Pool, vol: &Volume, new_size: u64) -> Result<(), StorageError> {
    let l = FileLayout::new(pool, &vol.vid)?;
    if !vol.rw {
        return Err(StorageError::ReadOnly(vol.vid.clone()));
    }
    let image = l.image();
    let file = if vol.snap_on_start {
        None
    } else {
        match OpenOptions::new().write(true).open(&image) {
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
            f.set_len(new_size).and_then(|()| f.sync_all()).map_err(StorageError::io("resize", &image))?;
        }
    }
    Ok(())
}

pub(crate) fn clear(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    let l = FileLayout::new(pool, &vol.vid)?;
    check_importable(vol)?;
    let image = l.image();
    let size = match fs::metadata(&image) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => vol.size,
        Err(e) => return Err(StorageError::io("inspect", &image)(e)),
    };
    let pending = new_pending(&l)?;
    pending.file().set_len(size).map_err(StorageError::io("write", pending.path()))?;
    commit(&l, pending.path(), keep(vol))?;
    pending.keep();
    Ok(())
}

pub(crate) fn clone_volume(src_pool: &Pool, src: &Volume, dst_pool: &Pool, dst: &Volume) -> Result<u64, StorageError> {
    let src_l = FileLayout::new(src_pool, &src.vid)?;
    let dst_l = FileLayout::new(dst_pool, &dst.vid)?;
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
    let src_file = match fs::File::open(&src_image) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StorageError::MissingImage(src_image)),
        Err(e) => return Err(StorageError::io("open", &src_image)(e)),
    };
    let pending = new_pending(&dst_l)?;
    let tmp = pending.file();
    copy::copy_into(&src_file, tmp).map_err(StorageError::io("copy to", pending.path()))?;
    let size = tmp.metadata().map_err(StorageError::io("inspect", pending.path()))?.len();
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
    let l = FileLayout::new(pool, &vol.vid)?;
    Ok(visible_revisions(&l, vol)?
        .into_iter()
        .map(|epoch| Revision { id: layout::revision_id(epoch), timestamp: fsutil::iso_utc(epoch) })
        .collect())
}

pub(crate) fn revert(pool: &Pool, vol: &Volume, revision: &str) -> Result<(), StorageError> {
    let l = FileLayout::new(pool, &vol.vid)?;
    let not_found = || StorageError::RevisionNotFound { vid: vol.vid.clone(), revision: revision.to_string() };
    let epoch = layout::parse_revision_id(revision).ok_or_else(not_found)?;
    if !visible_revisions(&l, vol)?.contains(&epoch) {
        return Err(not_found());
    }
    commit(&l, &l.revision(epoch), keep(vol))
}

pub(crate) fn prune_revisions(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    let l = FileLayout::new(pool, &vol.vid)?;
    prune(&l, if vol.snap_on_start { 0 } else { keep(vol) })
}

pub(crate) fn import_begin(pool: &Pool, vol: &Volume, size: u64) -> Result<PathBuf, StorageError> {
    let l = FileLayout::new(pool, &vol.vid)?;
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
    let l = FileLayout::new(pool, &vol.vid)?;
    let path = l.import();
    if !success {
        if fsutil::remove_file_if_exists(&path)? {
            fsutil::fsync_dir(l.dir())?;
        }
        return Ok(None);
    }
    let size = match fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StorageError::NoImportInProgress(vol.vid.clone())),
        Err(e) => return Err(StorageError::io("inspect", &path)(e)),
    };
    if let Err(e) = commit(&l, &path, keep(vol)) {
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
    let l = FileLayout::new(pool, &vol.vid)?;
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
    let l = FileLayout::new(pool, &vol.vid)?;
    if !vol.snap_on_start {
        return Ok(());
    }
    fsutil::create_dirs(l.dir())?;
    let cow = l.cow();
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&cow)
        .map_err(StorageError::io("create", &cow))?;
    file.set_modified(SystemTime::now()).and_then(|()| file.sync_all()).map_err(StorageError::io("write", &cow))?;
    fsutil::fsync_dir(l.dir())
}

pub(crate) fn mark_stopped(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    let l = FileLayout::new(pool, &vol.vid)?;
    if fsutil::remove_file_if_exists(&l.cow())? {
        fsutil::fsync_dir(l.dir())?;
    }
    Ok(())
}

pub(crate) fn is_outdated(pool: &Pool, vol: &Volume, origin_pool: &Pool, origin: &Volume) -> bool {
    if !vol.snap_on_start || origin_pool.driver != Driver::File {
        return false;
    }
    let (Ok(l), Ok(origin_l)) = (FileLayout::new(pool, &vol.vid), FileLayout::new(origin_pool, &origin.vid)) else {
        return false;
    };
    let mtime = |p: PathBuf| fs::metadata(p).and_then(|m| m.modified()).ok();
    match (mtime(l.cow()), mtime(origin_l.image())) {
        (Some(started), Some(changed)) => changed > started,
        _ => false,
    }
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
        let file = OpenOptions::new().write(true).open(new).map_err(StorageError::io("open", new))?;
        // The mtime marks when the content changed, which is what `is_outdated` compares; a reverted revision
        // would otherwise carry its old time.
        file.set_permissions(Permissions::from_mode(fsutil::IMAGE_MODE))
            .and_then(|()| file.set_modified(SystemTime::now()))
            .and_then(|()| file.sync_all())
            .map_err(StorageError::io("write", new))?;
    }
    let image = l.image();
    if keep > 0 && fsutil::exists(&image)? {
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
    for sub in layout::FILE_POOL_SUBDIRS {
        fsutil::create_dirs(&dir.join(sub)).map_err(|e| match e {
            StorageError::Io { source, .. } => not_usable(source),
            other => other,
        })?;
    }
    // Creating a file is the only reliable test: permission bits say nothing about read-only mounts or ACLs.
    let probe = dir.join(layout::write_probe_name(fsutil::next_unique()));
    drop(Pending::create(probe).map_err(not_usable)?);
    Ok(())
}
