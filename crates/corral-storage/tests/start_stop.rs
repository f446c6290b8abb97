//! Starting and stopping volumes: what the hypervisor attaches and what is left on disk afterwards. The snapshot
//! tests run the real `qemu-img`; without it they fail (CI installs qemu-utils) instead of passing vacuously.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use corral_core::volume::{Driver, Volume};
use corral_storage::{Attachment, Storage, StorageError};

use common::*;

const S: Storage = Storage;

/// Fails the calling test with instructions when `qemu-img` cannot run, rather than letting it look like a storage
/// bug or, worse, be skipped.
fn require_qemu_img() {
    match Command::new("qemu-img").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("`qemu-img --version` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)),
        Err(e) => panic!("qemu-img is required for the snapshot tests but cannot be run ({e}); install qemu-utils"),
    }
}

/// `qemu-img info --output=json` of `path`.
fn qemu_img_info(path: &Path) -> String {
    let out = Command::new("qemu-img").args(["info", "--output=json"]).arg(path).output().unwrap();
    assert!(out.status.success(), "qemu-img info {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The value of the first `"key": value` in `json`, quotes removed. qemu-img prints one object with unique
/// top-level keys, so a full JSON parser (and a new dependency) is not needed.
fn json_field(json: &str, key: &str) -> String {
    let pattern = format!("\"{key}\": ");
    let start = json.find(&pattern).unwrap_or_else(|| panic!("no {key} in {json}")) + pattern.len();
    let rest = &json[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted[..quoted.find('"').unwrap()].to_string(),
        None => rest[..rest.find([',', '\n']).unwrap()].trim().to_string(),
    }
}

/// Whether qemu-img sees the same guest-visible content in both images.
fn same_content(a: &Path, b: &Path) -> bool {
    let out = Command::new("qemu-img").arg("compare").arg(a).arg(b).output().unwrap();
    match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        _ => panic!("qemu-img compare: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// A pool holding a template root with some data in it, and an AppVM root snapshotting it.
fn snapshot_fixture() -> (Fixture, Volume, Volume) {
    let fx = Fixture::new(Driver::File);
    let origin = template_root("fedora", 4 * MIB);
    S.create(&fx.pool, &origin).unwrap();
    write_at(&S.path(&fx.pool, &origin), MIB, b"template data");
    (fx, origin, snapshot_root("work", "fedora", 4 * MIB))
}

fn overlay_path(fx: &Fixture) -> PathBuf {
    fx.dir().join("appvms/work/root-cow.qcow2")
}

#[test]
fn an_origin_attaches_its_own_image() {
    let fx = Fixture::new(Driver::File);
    let vol = private("work", MIB);
    let image = fx.dir().join("appvms/work/private.img");
    let err = S.start_volume(&fx.pool, &vol, None).unwrap_err();
    assert!(matches!(err, StorageError::MissingImage(ref p) if *p == image), "{err:?}");

    S.create(&fx.pool, &vol).unwrap();
    write_at(&image, 0, b"kept");
    let att = S.start_volume(&fx.pool, &vol, None).unwrap().unwrap();
    assert_eq!(att, Attachment { path: image.clone(), format: "raw", read_only: false });
    let ro = Volume { rw: false, ..vol.clone() };
    assert!(S.start_volume(&fx.pool, &ro, None).unwrap().unwrap().read_only);

    S.stop_volume(&fx.pool, &vol).unwrap();
    assert_eq!(read_at(&image, 0, 4), b"kept", "an origin keeps what its qube wrote");
    assert_eq!(tree(&fx.dir().join("appvms/work")), ["private.img"]);
}

#[test]
fn a_snapshot_gets_a_fresh_qcow2_overlay_over_its_origin() {
    require_qemu_img();
    let (fx, origin, snap) = snapshot_fixture();
    let origin_image = S.path(&fx.pool, &origin);
    let overlay = overlay_path(&fx);

    let att = S.start_volume(&fx.pool, &snap, Some((&fx.pool, &origin))).unwrap().unwrap();
    assert_eq!(att, Attachment { path: overlay.clone(), format: "qcow2", read_only: false });
    let info = qemu_img_info(&overlay);
    assert_eq!(json_field(&info, "format"), "qcow2", "{info}");
    assert_eq!(json_field(&info, "backing-filename"), origin_image.to_str().unwrap(), "{info}");
    assert_eq!(json_field(&info, "backing-filename-format"), "raw", "{info}");
    assert_eq!(json_field(&info, "virtual-size"), (4 * MIB).to_string(), "{info}");
    assert!(same_content(&overlay, &origin_image), "the overlay shows the origin's data");
    assert_eq!(mode(&overlay), 0o660);
    assert_eq!(tree(&fx.dir().join("appvms/work")), ["root-cow.img", "root-cow.qcow2"]);

    let ro = Volume { rw: false, ..snap.clone() };
    assert!(S.start_volume(&fx.pool, &ro, Some((&fx.pool, &origin))).unwrap().unwrap().read_only);
    assert_eq!(S.path(&fx.pool, &snap), origin_image, "Info still reports the origin's image, as upstream");
}

#[test]
fn a_stale_overlay_is_replaced() {
    require_qemu_img();
    let (fx, origin, snap) = snapshot_fixture();
    let overlay = overlay_path(&fx);
    fs::create_dir_all(overlay.parent().unwrap()).unwrap();
    // What a crash leaves: an overlay holding the previous run's writes (here not even qcow2).
    fs::write(&overlay, vec![7u8; 300_000]).unwrap();

    S.start_volume(&fx.pool, &snap, Some((&fx.pool, &origin))).unwrap();
    assert_eq!(json_field(&qemu_img_info(&overlay), "format"), "qcow2");
    assert!(same_content(&overlay, &S.path(&fx.pool, &origin)), "nothing of the previous run shows through");
}

#[test]
fn a_started_snapshot_tracks_whether_its_origin_changed() {
    require_qemu_img();
    let (fx, origin, snap) = snapshot_fixture();
    S.start_volume(&fx.pool, &snap, Some((&fx.pool, &origin))).unwrap();
    assert!(!S.is_outdated(&fx.pool, &snap, &fx.pool, &origin));
    sleep(Duration::from_millis(50));
    S.clear(&fx.pool, &origin).unwrap();
    assert!(S.is_outdated(&fx.pool, &snap, &fx.pool, &origin));

    S.stop_volume(&fx.pool, &snap).unwrap();
    assert!(!S.is_outdated(&fx.pool, &snap, &fx.pool, &origin), "a stopped snapshot is never outdated");
}

#[test]
fn stopping_a_snapshot_removes_its_overlay() {
    require_qemu_img();
    let (fx, origin, snap) = snapshot_fixture();
    assert_eq!(S.usage(&fx.pool, &snap), Some(0), "never started");
    S.start_volume(&fx.pool, &snap, Some((&fx.pool, &origin))).unwrap();
    let overlay = overlay_path(&fx);
    // The qcow2 metadata alone takes blocks, so a running snapshot always uses something.
    let used = S.usage(&fx.pool, &snap).unwrap();
    assert!(used > 0 && used == allocated(&overlay), "{used}");

    S.stop_volume(&fx.pool, &snap).unwrap();
    assert!(tree(&fx.dir().join("appvms/work")).is_empty());
    assert_eq!(S.usage(&fx.pool, &snap), Some(0));
    assert!(S.path(&fx.pool, &origin).exists(), "the origin stays");
    // Stopping again, or what never started, is fine.
    S.stop_volume(&fx.pool, &snap).unwrap();
    S.stop_volume(&fx.pool, &snapshot_root("never", "fedora", MIB)).unwrap();
}

#[test]
fn removing_a_snapshot_removes_a_leftover_overlay() {
    require_qemu_img();
    let (fx, origin, snap) = snapshot_fixture();
    S.start_volume(&fx.pool, &snap, Some((&fx.pool, &origin))).unwrap();
    // The daemon died with the qube running: no stop_volume.
    S.remove(&fx.pool, &snap).unwrap();
    assert!(!fx.dir().join("appvms/work").exists());
    assert!(S.path(&fx.pool, &origin).exists());
}

#[test]
fn a_snapshot_needs_a_usable_origin() {
    let (fx, origin, snap) = snapshot_fixture();
    let work = fx.dir().join("appvms/work");
    let err = S.start_volume(&fx.pool, &snap, None).unwrap_err();
    assert!(matches!(err, StorageError::NoOrigin(ref vid) if vid == "appvms/work/root"), "{err:?}");

    let missing = template_root("gone", MIB);
    let err = S.start_volume(&fx.pool, &snap, Some((&fx.pool, &missing))).unwrap_err();
    let gone = fx.dir().join("vm-templates/gone/root.img");
    assert!(matches!(err, StorageError::MissingImage(ref p) if *p == gone), "{err:?}");

    // Volumes without content of their own cannot back a snapshot.
    let other = snapshot_root("other", "fedora", MIB);
    let volatile = volatile("fedora", MIB);
    for bad in [&other, &volatile] {
        let err = S.start_volume(&fx.pool, &snap, Some((&fx.pool, bad))).unwrap_err();
        assert!(matches!(err, StorageError::Unsupported(_)), "{err:?}");
    }
    let kernels = Fixture::new(Driver::LinuxKernel);
    let err = S.start_volume(&fx.pool, &snap, Some((&kernels.pool, &origin))).unwrap_err();
    assert!(matches!(err, StorageError::Unsupported(_)), "{err:?}");

    // Failed starts leave neither an overlay nor a start marker behind.
    assert!(tree(&work).is_empty(), "{:?}", tree(&work));
    assert!(!S.is_outdated(&fx.pool, &snap, &fx.pool, &origin));
}

#[test]
fn volumes_both_saved_and_snapshotted_are_refused() {
    let (fx, origin, snap) = snapshot_fixture();
    let both = Volume { save_on_stop: true, ..snap };
    let err = S.start_volume(&fx.pool, &both, Some((&fx.pool, &origin))).unwrap_err();
    assert!(matches!(err, StorageError::Unsupported(_)), "{err:?}");
}

#[test]
fn a_volatile_volume_starts_empty_every_time() {
    let fx = Fixture::new(Driver::File);
    let vol = volatile("work", 8 * MIB);
    let image = fx.dir().join("appvms/work/volatile.img");

    // No image yet (the qube never started, or its volumes were created elsewhere): start makes one.
    let att = S.start_volume(&fx.pool, &vol, None).unwrap().unwrap();
    assert_eq!(att, Attachment { path: image.clone(), format: "raw", read_only: false });
    assert_eq!((len(&image), allocated(&image), mode(&image)), (8 * MIB, 0, 0o660));

    write_at(&image, MIB, &vec![1u8; MIB as usize]);
    let bigger = Volume { size: 16 * MIB, ..vol.clone() };
    S.start_volume(&fx.pool, &bigger, None).unwrap();
    assert_eq!((len(&image), allocated(&image)), (16 * MIB, 0), "a restart sees nothing of the last run");
    assert_eq!(tree(&fx.dir().join("appvms/work")), ["volatile.img"], "no temporary file left");

    // Even a read-only configuration gets a writable scratch disk: there is nothing in it to protect.
    let ro = Volume { rw: false, ..vol.clone() };
    assert!(!S.start_volume(&fx.pool, &ro, None).unwrap().unwrap().read_only);
}

#[test]
fn stopping_a_volatile_volume_discards_its_data() {
    let fx = Fixture::new(Driver::File);
    let vol = volatile("work", 8 * MIB);
    S.stop_volume(&fx.pool, &vol).unwrap(); // nothing there yet
    let image = S.start_volume(&fx.pool, &vol, None).unwrap().unwrap().path;
    write_at(&image, 2 * MIB, &vec![1u8; MIB as usize]);
    assert!(S.usage(&fx.pool, &vol).unwrap() >= MIB);

    S.stop_volume(&fx.pool, &vol).unwrap();
    assert_eq!((len(&image), allocated(&image)), (8 * MIB, 0));
    assert_eq!(read_at(&image, 2 * MIB, 4), [0; 4]);
    assert_eq!(S.usage(&fx.pool, &vol), Some(0));
}

#[test]
fn unsafe_vids_cannot_be_started_or_stopped() {
    let fx = Fixture::new(Driver::File);
    let before = tree(fx.tmp.path());
    let origin = template_root("fedora", MIB);
    for vid in ["../escape", "/abs/path", "appvms/../../escape", "appvms/x y/root", ""] {
        for vol in [Volume { vid: vid.into(), ..volatile("work", MIB) }, Volume { vid: vid.into(), ..origin.clone() }] {
            let err = S.start_volume(&fx.pool, &vol, None).unwrap_err();
            assert!(matches!(err, StorageError::InvalidPath(_)), "start {vid:?}: {err:?}");
            let err = S.stop_volume(&fx.pool, &vol).unwrap_err();
            assert!(matches!(err, StorageError::InvalidPath(_)), "stop {vid:?}: {err:?}");
        }
        let snap = Volume { vid: "appvms/work/root".into(), ..snapshot_root("work", "fedora", MIB) };
        let evil_origin = Volume { vid: vid.into(), ..origin.clone() };
        let err = S.start_volume(&fx.pool, &snap, Some((&fx.pool, &evil_origin))).unwrap_err();
        assert!(matches!(err, StorageError::InvalidPath(_)), "origin {vid:?}: {err:?}");
    }
    assert_eq!(tree(fx.tmp.path()), before);
}

#[test]
fn kernel_volumes_are_not_disks() {
    let fx = Fixture::new(Driver::LinuxKernel);
    let vol = Volume { name: "kernel".into(), vid: "6.6.1".into(), rw: false, ..volatile("work", 0) };
    assert_eq!(S.start_volume(&fx.pool, &vol, None).unwrap(), None);
    S.stop_volume(&fx.pool, &vol).unwrap();
    assert!(!fx.dir().exists(), "nothing created");
}
