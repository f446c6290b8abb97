#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::PathBuf;

use corral_core::volume::{Driver, Volume};
use corral_storage::{Storage, StorageError};

use common::*;

const S: Storage = Storage;

fn kernel(vid: &str) -> Volume {
    Volume {
        name: "kernel".into(),
        pool: "p".into(),
        vid: vid.into(),
        size: 0,
        rw: false,
        source: None,
        save_on_stop: false,
        snap_on_start: false,
        revisions_to_keep: 0,
        ephemeral: None,
        bootable: false,
        preallocated: false,
        alias: None,
    }
}

/// A kernel pool with two kernels and one directory that is not a kernel.
fn kernel_fixture() -> Fixture {
    let fx = Fixture::new(Driver::LinuxKernel);
    S.setup_pool(&fx.pool).unwrap();
    for k in ["6.6.1", "5.15.2"] {
        fs::create_dir(fx.dir().join(k)).unwrap();
        fs::write(fx.dir().join(k).join("vmlinuz"), vec![1u8; 1000]).unwrap();
        fs::write(fx.dir().join(k).join("initramfs"), vec![2u8; 500]).unwrap();
    }
    fs::create_dir(fx.dir().join("not-a-kernel")).unwrap();
    fs::write(fx.dir().join("stray-file"), b"").unwrap();
    fx
}

#[test]
fn setup_pool_creates_the_directory() {
    let fx = Fixture::new(Driver::LinuxKernel);
    S.setup_pool(&fx.pool).unwrap();
    assert!(fx.dir().is_dir());
    assert!(tree(&fx.dir()).is_empty(), "no file-pool subdirectories");
}

#[test]
fn kernels_are_subdirectories_with_vmlinuz() {
    let fx = kernel_fixture();
    assert_eq!(S.kernels(&fx.pool), ["5.15.2", "6.6.1"]);
    assert!(S.kernels(&Fixture::new(Driver::LinuxKernel).pool).is_empty(), "missing pool dir");
}

#[test]
fn path_is_the_kernel_directory() {
    let fx = kernel_fixture();
    assert_eq!(S.path(&fx.pool, &kernel("6.6.1")), fx.dir().join("6.6.1"));
    assert_eq!(S.path(&fx.pool, &kernel("")), PathBuf::new());
    assert_eq!(S.path(&fx.pool, &kernel("../x")), PathBuf::new());
}

#[test]
fn create_checks_the_kernel_exists() {
    let fx = kernel_fixture();
    S.create(&fx.pool, &kernel("6.6.1")).unwrap();
    S.create(&fx.pool, &kernel("")).unwrap();
    let err = S.create(&fx.pool, &kernel("7.0")).unwrap_err();
    assert!(matches!(err, StorageError::MissingKernel(ref p) if *p == fx.dir().join("7.0")), "{err:?}");
    assert!(matches!(S.create(&fx.pool, &kernel("../6.6.1")), Err(StorageError::InvalidPath(_))));
}

#[test]
fn usage_sums_the_kernel_files() {
    let fx = kernel_fixture();
    assert_eq!(S.usage(&fx.pool, &kernel("6.6.1")), Some(1500));
    assert_eq!(S.usage(&fx.pool, &kernel("")), Some(0));
    assert_eq!(S.usage(&fx.pool, &kernel("7.0")), Some(0));
    assert_eq!(S.usage(&fx.pool, &kernel("../6.6.1")), None);
}

#[test]
fn kernels_are_read_only() {
    let fx = kernel_fixture();
    let vol = kernel("6.6.1");
    let before = tree(&fx.dir());
    S.remove(&fx.pool, &vol).unwrap();
    assert!(matches!(S.resize(&fx.pool, &vol, MIB), Err(StorageError::Unsupported(_))));
    assert!(matches!(S.clear(&fx.pool, &vol), Err(StorageError::Unsupported(_))));
    assert!(matches!(S.import_begin(&fx.pool, &vol, MIB), Err(StorageError::Unsupported(_))));
    assert!(matches!(S.import_end(&fx.pool, &vol, true), Err(StorageError::Unsupported(_))));
    assert!(S.revisions(&fx.pool, &vol).is_empty());
    assert!(matches!(S.revert(&fx.pool, &vol, "1-back"), Err(StorageError::RevisionNotFound { .. })));
    assert!(!S.is_outdated(&fx.pool, &vol, &fx.pool, &vol));
    assert_eq!(tree(&fx.dir()), before);
}

#[test]
fn clone_between_kernel_volumes_is_a_no_op() {
    let fx = kernel_fixture();
    assert_eq!(S.clone_volume(&fx.pool, &kernel("6.6.1"), &fx.pool, &kernel("5.15.2")).unwrap(), 0);

    let files = Fixture::new(Driver::File);
    let private = private("work", MIB);
    create_owned(&files.pool, &private);
    let err = S.clone_volume(&files.pool, &private, &fx.pool, &kernel("6.6.1")).unwrap_err();
    assert_eq!(err.to_string(), "Cannot clone a file volume into a linux-kernel volume");
    let err = S.clone_volume(&fx.pool, &kernel("6.6.1"), &files.pool, &private).unwrap_err();
    assert!(matches!(err, StorageError::Unsupported(_)), "{err:?}");
}

#[test]
fn pool_usage_reports_the_filesystem() {
    let fx = kernel_fixture();
    assert!(S.pool_usage(&fx.pool).is_some());
}

#[test]
fn kernel_files_name_the_kernel_and_its_initramfs() {
    let fx = kernel_fixture();
    let dir = fx.dir().join("6.6.1");
    assert_eq!(S.kernel_files(&fx.pool, "6.6.1"), Some((dir.join("vmlinuz"), Some(dir.join("initramfs")))));
    fs::remove_file(dir.join("initramfs")).unwrap();
    assert_eq!(S.kernel_files(&fx.pool, "6.6.1"), Some((dir.join("vmlinuz"), None)), "initramfs is optional");

    // Not installed, not a kernel, no kernel at all.
    for name in ["7.0", "not-a-kernel", "stray-file", ""] {
        assert_eq!(S.kernel_files(&fx.pool, name), None, "{name:?}");
    }
    // A kernel outside the pool, reachable only through an unsafe name.
    let outside = fx.tmp.path().join("evil");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("vmlinuz"), b"x").unwrap();
    for name in ["../evil", "/abs", "5.15.2/..", "./5.15.2", "5.15.2 x"] {
        assert_eq!(S.kernel_files(&fx.pool, name), None, "{name:?}");
    }
    assert_eq!(S.kernel_files(&Fixture::new(Driver::File).pool, "6.6.1"), None, "file pools hold no kernels");
}

/// Whoever may write to a kernel pool's directory could plant the kernel qubes boot: such a pool is refused and
/// offers no kernels until fixed.
#[test]
fn a_kernel_pool_others_can_write_to_offers_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let fx = kernel_fixture();
    fs::set_permissions(fx.dir(), fs::Permissions::from_mode(0o777)).unwrap();
    assert!(matches!(S.setup_pool(&fx.pool), Err(StorageError::UnsafePath { .. })));
    assert!(S.kernels(&fx.pool).is_empty());
    assert_eq!(S.kernel_files(&fx.pool, "6.6.1"), None);
    fs::set_permissions(fx.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(S.kernels(&fx.pool), ["5.15.2", "6.6.1"]);
    assert!(S.kernel_files(&fx.pool, "6.6.1").is_some());
}
