//! Starting and stopping volumes: what the hypervisor attaches and what is left on disk afterwards. The snapshot
//! tests run the real `qemu-img`; without it they fail (CI installs qemu-utils) instead of passing vacuously.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
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
    create_owned(&fx.pool, &origin);
    write_at(&S.path(&fx.pool, &origin), MIB, b"template data");
    (fx, origin, snapshot_root("work", "fedora", 4 * MIB))
}

fn overlay_path(fx: &Fixture) -> PathBuf {
    fx.dir().join("appvms/work/root-cow.qcow2")
}

/// Where the next start's overlay is prepared. The volume's directory is created as a first start would: a
/// preparation never creates it, so that it cannot bring back a removed volume's directory.
fn prepared_path(fx: &Fixture) -> PathBuf {
    let dir = fx.dir().join("appvms/work");
    fs::create_dir_all(&dir).unwrap();
    dir.join("root-cow.qcow2.next")
}

fn inode(path: &Path) -> u64 {
    fs::metadata(path).unwrap().ino()
}

/// The inode of `path`, kept open so the file system cannot hand the number to a new file once `path` is removed:
/// only then does a different inode prove a different file.
fn hold(path: &Path) -> (fs::File, u64) {
    let f = fs::File::open(path).unwrap();
    let ino = f.metadata().unwrap().ino();
    (f, ino)
}

/// Runs `qemu-img create` as the storage does, but with any backing file, to make foreign prepared overlays.
fn qemu_img_create(backing: &Path, target: &Path) {
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(backing)
        .arg(target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Checks that a running snapshot's overlay is a fresh one over `origin` (by content and header), the same whether
/// it was prepared or just created.
fn assert_fresh_overlay(fx: &Fixture, origin: &Volume) {
    let overlay = overlay_path(fx);
    let origin_image = S.path(&fx.pool, origin);
    let info = qemu_img_info(&overlay);
    assert_eq!(json_field(&info, "backing-filename"), origin_image.to_str().unwrap(), "{info}");
    assert_eq!(json_field(&info, "backing-filename-format"), "raw", "{info}");
    assert_eq!(json_field(&info, "virtual-size"), len(&origin_image).to_string(), "{info}");
    assert!(same_content(&overlay, &origin_image), "the overlay shows the origin's data");
    assert_eq!(mode(&overlay), 0o660);
}

#[test]
fn an_origin_attaches_its_own_image() {
    let fx = Fixture::new(Driver::File);
    let vol = private("work", MIB);
    let image = fx.dir().join("appvms/work/private.img");
    let err = S.start_volume(&fx.pool, &vol, None).unwrap_err();
    assert!(matches!(err, StorageError::MissingImage(ref p) if *p == image), "{err:?}");

    create_owned(&fx.pool, &vol);
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
    // Only the next start's prepared overlay remains, and it holds nothing of the qube's.
    assert_eq!(tree(&fx.dir().join("appvms/work")), ["root-cow.qcow2.next"]);
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

#[test]
fn a_prepared_overlay_is_taken_instead_of_running_qemu_img() {
    require_qemu_img();
    let (fx, origin, snap) = snapshot_fixture();
    let o = Some((&fx.pool, &origin));
    let (overlay, next) = (overlay_path(&fx), prepared_path(&fx));

    // The first start has nothing prepared; the service then prepares in the background.
    S.start_volume(&fx.pool, &snap, o).unwrap();
    assert!(!next.exists());
    S.prepare_next(&fx.pool, &snap, o).unwrap();
    let prepared = inode(&next);
    assert_eq!(mode(&next), 0o660);
    S.prepare_next(&fx.pool, &snap, o).unwrap();
    assert_eq!(inode(&next), prepared, "a prepared overlay that fits is kept, not rewritten");
    // The guest's writes go to the running overlay, never to the prepared one.
    assert!(same_content(&next, &S.path(&fx.pool, &origin)));

    // Stopping keeps the prepared overlay (it still fits) and the next start takes that very file.
    S.stop_volume(&fx.pool, &snap).unwrap();
    assert_eq!(inode(&next), prepared);
    S.start_volume(&fx.pool, &snap, o).unwrap();
    assert_eq!(inode(&overlay), prepared, "the prepared file was renamed into place");
    assert!(!next.exists());
    assert_fresh_overlay(&fx, &origin);
    assert_eq!(tree(&fx.dir().join("appvms/work")), ["root-cow.img", "root-cow.qcow2"]);

    // Without a background preparation, stopping prepares over the origin the overlay was made over.
    S.stop_volume(&fx.pool, &snap).unwrap();
    let prepared = inode(&next);
    S.start_volume(&fx.pool, &snap, o).unwrap();
    assert_eq!(inode(&overlay), prepared);
    assert_fresh_overlay(&fx, &origin);
}

#[test]
fn a_prepared_overlay_over_another_origin_is_replaced() {
    require_qemu_img();
    let (fx, origin, snap) = snapshot_fixture();
    let other = template_root("debian", 4 * MIB);
    create_owned(&fx.pool, &other);
    let next = prepared_path(&fx);
    S.prepare_next(&fx.pool, &snap, Some((&fx.pool, &other))).unwrap();
    let (_held, stale) = hold(&next);

    S.start_volume(&fx.pool, &snap, Some((&fx.pool, &origin))).unwrap();
    assert_ne!(inode(&overlay_path(&fx)), stale, "qemu-img made a new overlay");
    assert_fresh_overlay(&fx, &origin);
    assert!(!prepared_path(&fx).exists(), "the stale one is gone, not left for a later start");
}

#[test]
fn a_prepared_overlay_naming_the_origin_differently_is_replaced() {
    require_qemu_img();
    let (fx, origin, snap) = snapshot_fixture();
    let next = prepared_path(&fx);
    // The same file under another name is still not what QEMU should be told to open.
    let image = S.path(&fx.pool, &origin);
    let alias = image.parent().unwrap().join(".").join(image.file_name().unwrap());
    qemu_img_create(&alias, &next);
    let (_held, stale) = hold(&next);

    S.start_volume(&fx.pool, &snap, Some((&fx.pool, &origin))).unwrap();
    assert_ne!(inode(&overlay_path(&fx)), stale);
    assert_fresh_overlay(&fx, &origin);
}

#[test]
fn a_prepared_overlay_of_the_wrong_size_is_replaced() {
    require_qemu_img();
    let (fx, origin, snap) = snapshot_fixture();
    let o = Some((&fx.pool, &origin));
    let next = prepared_path(&fx);
    S.prepare_next(&fx.pool, &snap, o).unwrap();
    let (_held, stale) = hold(&next);
    // The template grew after the overlay was prepared: the guest must see the new size.
    S.resize(&fx.pool, &origin, 8 * MIB).unwrap();

    S.start_volume(&fx.pool, &snap, o).unwrap();
    assert_ne!(inode(&overlay_path(&fx)), stale);
    assert_fresh_overlay(&fx, &origin);
    assert_eq!(json_field(&qemu_img_info(&overlay_path(&fx)), "virtual-size"), (8 * MIB).to_string());

    // Preparing notices the same and rewrites a stale prepared overlay.
    S.prepare_next(&fx.pool, &snap, o).unwrap();
    let (_held, prepared) = hold(&next);
    S.resize(&fx.pool, &origin, 12 * MIB).unwrap();
    S.prepare_next(&fx.pool, &snap, o).unwrap();
    assert_ne!(inode(&next), prepared);
    assert_eq!(json_field(&qemu_img_info(&next), "virtual-size"), (12 * MIB).to_string());
}

#[test]
fn a_damaged_prepared_overlay_is_replaced() {
    require_qemu_img();
    let (fx, origin, snap) = snapshot_fixture();
    let o = Some((&fx.pool, &origin));
    let next = prepared_path(&fx);
    S.prepare_next(&fx.pool, &snap, o).unwrap();
    let good = fs::read(&next).unwrap();
    let raw_at = good.windows(3).position(|w| w == b"raw").unwrap();
    let mut other_format = good.clone();
    other_format[raw_at..raw_at + 3].copy_from_slice(b"qed");
    let mut dirty = good.clone();
    dirty[79] |= 1;

    let damaged: [(&str, Vec<u8>); 6] = [
        ("empty", Vec::new()),
        ("cut short in the header", good[..100].to_vec()),
        ("cut short before the backing name", good[..0x200].to_vec()),
        ("not qcow2", vec![7u8; 300_000]),
        ("another backing format", other_format),
        ("dirty", dirty),
    ];
    for (what, content) in damaged {
        fs::write(&next, content).unwrap();
        let (_held, stale) = hold(&next);
        S.start_volume(&fx.pool, &snap, o).unwrap();
        assert_ne!(inode(&overlay_path(&fx)), stale, "{what}");
        assert_fresh_overlay(&fx, &origin);
        S.stop_volume(&fx.pool, &snap).unwrap();
    }
    // The preparation at stop wrote a good one again, and it is taken.
    let prepared = inode(&next);
    S.start_volume(&fx.pool, &snap, o).unwrap();
    assert_eq!(inode(&overlay_path(&fx)), prepared);
}

#[test]
fn removing_a_snapshot_removes_its_prepared_overlay() {
    require_qemu_img();
    let (fx, origin, snap) = snapshot_fixture();
    S.start_volume(&fx.pool, &snap, Some((&fx.pool, &origin))).unwrap();
    S.stop_volume(&fx.pool, &snap).unwrap();
    assert!(prepared_path(&fx).exists());
    assert_eq!(S.usage(&fx.pool, &snap), Some(0), "a prepared overlay holds nothing of the qube's");
    S.remove(&fx.pool, &snap).unwrap();
    assert!(!fx.dir().join("appvms/work").exists());

    // A preparation after the removal does not bring the volume's directory back.
    S.prepare_next(&fx.pool, &snap, Some((&fx.pool, &origin))).unwrap();
    assert!(!fx.dir().join("appvms/work").exists());
}

#[test]
fn preparing_is_only_for_snapshots_with_an_origin() {
    let (fx, origin, snap) = snapshot_fixture();
    let err = S.prepare_next(&fx.pool, &snap, None).unwrap_err();
    assert!(matches!(err, StorageError::NoOrigin(_)), "{err:?}");
    let missing = template_root("gone", MIB);
    let err = S.prepare_next(&fx.pool, &snap, Some((&fx.pool, &missing))).unwrap_err();
    assert!(matches!(err, StorageError::MissingImage(_)), "{err:?}");
    let before = tree(&fx.dir());
    S.prepare_next(&fx.pool, &origin, None).unwrap();
    S.prepare_next(&fx.pool, &volatile("work", MIB), None).unwrap();
    assert_eq!(tree(&fx.dir()), before, "nothing to prepare for other kinds");
}

#[test]
fn preparing_while_starting_never_attaches_a_half_made_overlay() {
    require_qemu_img();
    let (fx, origin, snap) = snapshot_fixture();
    std::thread::scope(|s| {
        let preparer = s.spawn(|| {
            for _ in 0..20 {
                S.prepare_next(&fx.pool, &snap, Some((&fx.pool, &origin))).unwrap();
            }
        });
        for _ in 0..20 {
            S.start_volume(&fx.pool, &snap, Some((&fx.pool, &origin))).unwrap();
            assert_fresh_overlay(&fx, &origin);
            S.stop_volume(&fx.pool, &snap).unwrap();
        }
        preparer.join().unwrap();
    });
    let left = tree(&fx.dir().join("appvms/work"));
    assert!(left.is_empty() || left == ["root-cow.qcow2.next"], "no temporary file left: {left:?}");
}

/// The attachment shown before a start is the one the start then makes, and computing it touches nothing.
#[test]
fn the_attachment_before_a_start_is_the_one_the_start_makes() {
    require_qemu_img();
    let (fx, origin, snap) = snapshot_fixture();
    let own = private("work", MIB);
    create_owned(&fx.pool, &own);
    let scratch = volatile("work", MIB);
    let before = tree(&fx.dir());

    let shown: Vec<_> = [&own, &snap, &scratch].iter().map(|v| S.attachment(&fx.pool, v).unwrap().unwrap()).collect();

    assert_eq!(tree(&fx.dir()), before, "computing attachments changed the pool");
    let started = [
        S.start_volume(&fx.pool, &own, None).unwrap().unwrap(),
        S.start_volume(&fx.pool, &snap, Some((&fx.pool, &origin))).unwrap().unwrap(),
        S.start_volume(&fx.pool, &scratch, None).unwrap().unwrap(),
    ];
    assert_eq!(shown, started);
    let both = Volume { snap_on_start: true, ..own };
    assert!(S.attachment(&fx.pool, &both).is_err());
}
