#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use corral_core::volume::{Driver, Pool, Volume};

pub const MIB: u64 = 1024 * 1024;

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub pool: Pool,
}

impl Fixture {
    pub fn new(driver: Driver) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pool");
        let pool = Pool::new("p", driver, dir.to_str().unwrap());
        Fixture { tmp, pool }
    }

    pub fn dir(&self) -> PathBuf {
        PathBuf::from(&self.pool.dir_path)
    }
}

/// A private-like volume: persistent, one revision kept.
pub fn private(vm: &str, size: u64) -> Volume {
    Volume {
        name: "private".into(),
        pool: "p".into(),
        vid: format!("appvms/{vm}/private"),
        size,
        rw: true,
        source: None,
        save_on_stop: true,
        snap_on_start: false,
        revisions_to_keep: 1,
        ephemeral: None,
        bootable: false,
        preallocated: false,
        alias: None,
    }
}

pub fn volatile(vm: &str, size: u64) -> Volume {
    Volume {
        name: "volatile".into(),
        vid: format!("appvms/{vm}/volatile"),
        save_on_stop: false,
        revisions_to_keep: 0,
        ..private(vm, size)
    }
}

/// An AppVM root: a snapshot of its template's root.
pub fn snapshot_root(vm: &str, template: &str, size: u64) -> Volume {
    Volume {
        name: "root".into(),
        vid: format!("appvms/{vm}/root"),
        source: Some(format!("vm-templates/{template}/root")),
        save_on_stop: false,
        snap_on_start: true,
        revisions_to_keep: 0,
        ..private(vm, size)
    }
}

pub fn template_root(template: &str, size: u64) -> Volume {
    Volume { name: "root".into(), vid: format!("vm-templates/{template}/root"), ..private(template, size) }
}

pub fn write_at(path: &Path, offset: u64, data: &[u8]) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(data, offset).unwrap();
    f.sync_all().unwrap();
}

pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let f = fs::File::open(path).unwrap();
    let mut buf = vec![0; len];
    f.read_exact_at(&mut buf, offset).unwrap();
    buf
}

pub fn allocated(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

pub fn len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

pub fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

/// Every file under `dir`, relative, sorted: lets tests assert nothing unexpected was left behind.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            if p.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Creates `vol`'s files and takes them over, as the daemon does around the commit of a new qube.
pub fn create_owned(pool: &Pool, vol: &Volume) {
    let s = corral_storage::Storage;
    s.create(pool, vol).unwrap();
    s.own(pool, vol).unwrap();
}
