//! A test daemon's volume images, read and written behind its back.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::Daemon;

/// One `key=value` field of `admin.vm.volume.Info`.
pub fn volume_field(d: &Daemon, vm: &str, volume: &str, key: &str) -> String {
    let info = d.ok(&format!("admin.vm.volume.Info+{volume}"), vm, b"");
    let prefix = format!("{key}=");
    let line = info.lines().find(|l| l.starts_with(&prefix));
    line.unwrap_or_else(|| panic!("no {key} in {info:?}"))[prefix.len()..].to_string()
}

pub fn volume_path(d: &Daemon, vm: &str, volume: &str) -> PathBuf {
    PathBuf::from(volume_field(d, vm, volume, "path"))
}

pub fn write_at_start(path: &Path, data: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).expect("open image");
    f.seek(SeekFrom::Start(0)).expect("seek");
    f.write_all(data).expect("write image");
    f.sync_all().expect("sync image");
}

pub fn read_start(path: &Path, len: usize) -> Vec<u8> {
    let mut f = std::fs::File::open(path).expect("open image");
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).expect("read image");
    buf
}

/// Installs a kernel in the daemon's `linux-kernel` pool.
pub fn install_kernel(d: &Daemon, name: &str) {
    let dir = d.state.join("vm-kernels").join(name);
    std::fs::create_dir_all(&dir).expect("kernel dir");
    std::fs::write(dir.join("vmlinuz"), b"kernel").expect("vmlinuz");
}
