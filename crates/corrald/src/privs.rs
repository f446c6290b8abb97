//! Who may read what the daemon keeps: the state directory holds every HTTP user's password hash, the qubes'
//! images and their console output, so nothing in it is for other local users.
// umask(2) and prctl(2) have no safe wrapper in the standard library.
#![allow(unsafe_code)]

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The state directory: other users may pass through it (a `qemu:///system` QEMU running as its own user
/// reaches the images below it, which libvirt hands over file by file) but not list or change it.
const STATE_DIR_MODE: u32 = 0o711;

/// Files the daemon creates from now on are its own: the SQLite database and its WAL/SHM, the lock, the
/// HTTP address, console logs. Files that must be shared (the Admin API sockets, pool directories and images)
/// are given their mode explicitly where they are made.
pub fn private_umask() {
    // SAFETY: umask(2) only replaces the process's file-creation mask; it cannot fail or touch memory.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates the state directory, or takes away what group and others may do in an existing one and in the
/// daemon's files there (a state directory from an older corrald had them world-readable). Each change is
/// logged.
pub fn prepare_state_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(STATE_DIR_MODE).create(dir)?;
    restrict(dir, 0o066)?;
    for name in ["corral.sqlite", "corral.sqlite-wal", "corral.sqlite-shm", "corral.lock", "http-address", "logs"] {
        restrict(&dir.join(name), 0o077)?;
    }
    for_each_entry(&dir.join("logs"), |p| restrict(p, 0o077))?;
    // The default pool's directories, made listable by older versions: their entries are the qubes' names.
    for layout in ["appvms", "vm-templates", "vm-kernels"] {
        let layout = dir.join(layout);
        restrict(&layout, 0o044)?;
        for_each_entry(&layout, |p| if p.is_dir() { restrict(p, 0o044) } else { Ok(()) })?;
    }
    Ok(())
}

fn for_each_entry(dir: &Path, mut f: impl FnMut(&Path) -> io::Result<()>) -> io::Result<()> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.into_iter().try_for_each(|entry| f(&entry?.path())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Clears the permission bits `remove` of `path` if any is set; a missing path is nothing to do. Symlinks
/// are left alone: the daemon never makes them here, and following one could change a file elsewhere.
fn restrict(path: &Path, remove: u32) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Ok(()),
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & remove != 0 {
        let tightened = mode & !remove;
        fs::set_permissions(path, fs::Permissions::from_mode(tightened))?;
        tracing::warn!(path = %path.display(), from = format!("{mode:o}"), to = format!("{tightened:o}"),
            "tightened the permissions of a state file other users could read");
    }
    Ok(())
}

/// Capabilities neither corrald, nor libvirt's QEMU driver it embeds, nor the QEMU and qemu-img it starts
/// ever use: loading kernel modules, rebooting, setting the clock, the kernel log, process accounting,
/// immutable files, suspend blockers and wake alarms, the TTY configuration, audit rules. Everything else
/// stays (see ARCHITECTURE.md, "Privileges").
const UNUSED_CAPABILITIES: [(u32, &str); 10] = [
    (9, "CAP_LINUX_IMMUTABLE"),
    (16, "CAP_SYS_MODULE"),
    (20, "CAP_SYS_PACCT"),
    (22, "CAP_SYS_BOOT"),
    (25, "CAP_SYS_TIME"),
    (26, "CAP_SYS_TTY_CONFIG"),
    (30, "CAP_AUDIT_CONTROL"),
    (34, "CAP_SYSLOG"),
    (35, "CAP_WAKE_ALARM"),
    (36, "CAP_BLOCK_SUSPEND"),
];

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Gives up [`UNUSED_CAPABILITIES`] for good: from the bounding set (so no program the daemon starts gets
/// them back) and from the daemon's own sets (so a flaw in, say, its HTTP parsing cannot use them). A
/// daemon without the right to do so (not root, or in a container without CAP_SETPCAP) keeps running as
/// before and says so.
pub fn drop_unused_capabilities() {
    let mut dropped = Vec::new();
    for (cap, name) in UNUSED_CAPABILITIES {
        // SAFETY: PR_CAPBSET_DROP takes a capability number and changes only this process's bounding set;
        // an unknown number is EINVAL, which is handled.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if r == 0 {
            dropped.push(name);
        }
    }
    let mut header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget with version 3 writes two CapData structs, which `data` holds.
    let got = unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, data.as_mut_ptr()) };
    let mut own = got == 0;
    if own {
        for (cap, _) in UNUSED_CAPABILITIES {
            let (word, bit) = ((cap / 32) as usize, 1u32 << (cap % 32));
            data[word].effective &= !bit;
            data[word].permitted &= !bit;
            data[word].inheritable &= !bit;
        }
        // SAFETY: capset with version 3 reads two CapData structs from `data`; it only lowers this
        // process's own capabilities.
        own = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) } == 0;
    }
    if dropped.len() == UNUSED_CAPABILITIES.len() && own {
        tracing::info!(capabilities = ?dropped, "gave up capabilities the daemon never uses");
    } else {
        tracing::warn!(bounding = ?dropped, own, "could not give up every unused capability (not allowed here)");
    }
}
