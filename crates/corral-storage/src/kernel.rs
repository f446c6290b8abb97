//! The `linux-kernel` driver: read-only directories of kernels that dom0 installs; qubes only point at them.

use std::fs;
use std::io;
use std::path::PathBuf;

use corral_core::volume::{Pool, Volume};

use crate::layout::{self, KERNEL_MARKER};
use crate::{fsutil, StorageError};

pub(crate) fn path(pool: &Pool, vol: &Volume) -> PathBuf {
    layout::kernel_dir(pool, &vol.vid).ok().flatten().unwrap_or_default()
}

pub(crate) fn create(pool: &Pool, vol: &Volume) -> Result<(), StorageError> {
    match layout::kernel_dir(pool, &vol.vid)? {
        Some(dir) if !dir.is_dir() => Err(StorageError::MissingKernel(dir)),
        _ => Ok(()),
    }
}

/// Summed length of the kernel's files: they are shared by every qube using the kernel, so allocation details
/// matter less than what the directory holds. No kernel, or a missing one, uses nothing.
pub(crate) fn usage(pool: &Pool, vol: &Volume) -> Option<u64> {
    let Some(dir) = layout::kernel_dir(pool, &vol.vid).ok()? else { return Some(0) };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(0),
        Err(_) => return None,
    };
    let mut total = 0u64;
    for entry in entries {
        let meta = entry.ok()?.metadata().ok()?;
        if meta.is_file() {
            total = total.saturating_add(meta.len());
        }
    }
    Some(total)
}

pub(crate) fn setup_pool(pool: &Pool) -> Result<(), StorageError> {
    let dir = layout::pool_dir(pool)?;
    fsutil::create_dirs(&dir).map_err(|e| match e {
        StorageError::Io { source, .. } => StorageError::PoolNotUsable { path: dir.clone(), source },
        other => other,
    })?;
    // Whoever could write there could plant a kernel every qube using the pool boots.
    fsutil::check_pool_tree(&dir, &dir)
}

/// The pool directory when it is safe to take kernels from (see `setup_pool`).
fn safe_dir(pool: &Pool) -> Option<PathBuf> {
    let dir = layout::pool_dir(pool).ok()?;
    match fsutil::check_pool_tree(&dir, &dir) {
        Ok(()) => Some(dir),
        Err(e) => {
            tracing::warn!(pool = %pool.name, error = %e, "not using kernels of an unsafe pool directory");
            None
        }
    }
}

pub(crate) fn kernels(pool: &Pool) -> Vec<String> {
    let Some(dir) = safe_dir(pool) else { return Vec::new() };
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot list kernels");
            }
            return Vec::new();
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| layout::check_vid(name).is_ok() && dir.join(name).join(KERNEL_MARKER).is_file())
        .collect();
    names.sort();
    names
}

pub(crate) fn kernel_files(pool: &Pool, name: &str) -> Option<(PathBuf, Option<PathBuf>)> {
    safe_dir(pool)?;
    let (vmlinuz, initramfs) = layout::kernel_files(pool, name).ok()??;
    // `is_file` follows symlinks, as distributions link `vmlinuz` to a versioned file.
    if !vmlinuz.is_file() {
        return None;
    }
    let initramfs = initramfs.is_file().then_some(initramfs);
    Some((vmlinuz, initramfs))
}
