//! The few system calls std does not wrap. All of the crate's `unsafe` is here, each call small enough to check.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Shares `src`'s extents with `dst` (copy-on-write), replacing `dst`'s content. Fails on filesystems or file
/// pairs that cannot share extents; callers fall back to copying.
pub(crate) fn ficlone(dst: &File, src: &File) -> io::Result<()> {
    // SAFETY: both descriptors stay open for the call since the Files are borrowed; FICLONE reads its argument
    // as a plain descriptor number and touches no memory of ours.
    let rc = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The figures of the filesystem holding `path`.
fn statvfs_of(path: &Path) -> io::Result<libc::statvfs> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    let mut buf = MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is NUL-terminated and outlives the call; `buf` is writable and sized for a `statvfs`.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned success, which means it filled in the whole struct.
    Ok(unsafe { buf.assume_init() })
}

/// (size, used) in bytes of the filesystem holding `path`.
// The field types differ between targets, hence casts that are no-ops on some.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn statvfs(path: &Path) -> io::Result<(u64, u64)> {
    let st = statvfs_of(path)?;
    let frsize = st.f_frsize as u64;
    let blocks = st.f_blocks as u64;
    let free = st.f_bfree as u64;
    Ok((frsize.saturating_mul(blocks), frsize.saturating_mul(blocks.saturating_sub(free))))
}

/// Bytes an unprivileged writer may still allocate on the filesystem holding `path` (statvfs's `f_bavail`).
#[allow(clippy::unnecessary_cast)]
pub(crate) fn available(path: &Path) -> io::Result<u64> {
    let st = statvfs_of(path)?;
    Ok((st.f_frsize as u64).saturating_mul(st.f_bavail as u64))
}

/// Allocates the blocks of `file` up to `len`, extending it if shorter: afterwards writes there cannot fail for
/// lack of space. (`set_len` only makes holes.)
pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if len == 0 {
        return Ok(());
    }
    // SAFETY: posix_fallocate only acts on the descriptor, open because `file` is borrowed. It returns the error
    // number instead of setting errno.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Start of the first data region at or after `from`; `None` when only a hole follows.
pub(crate) fn seek_data(file: &File, from: u64) -> io::Result<Option<u64>> {
    match lseek(file, from, libc::SEEK_DATA) {
        Ok(pos) => Ok(Some(pos)),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Start of the first hole at or after `from` (end of file counts as one).
pub(crate) fn seek_hole(file: &File, from: u64) -> io::Result<u64> {
    lseek(file, from, libc::SEEK_HOLE)
}

fn lseek(file: &File, from: u64, whence: libc::c_int) -> io::Result<u64> {
    let offset = libc::off_t::try_from(from).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: lseek only moves the descriptor's offset; the descriptor is open because `file` is borrowed.
    let pos = unsafe { libc::lseek(file.as_raw_fd(), offset, whence) };
    if pos < 0 {
        return Err(io::Error::last_os_error());
    }
    u64::try_from(pos).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// The daemon's effective user id, which owns what it creates.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}
