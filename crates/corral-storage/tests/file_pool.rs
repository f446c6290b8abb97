#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::Duration;

use corral_core::volume::{Driver, Volume};
use corral_storage::{Storage, StorageError};

use common::*;

const S: Storage = Storage;

fn file_fixture() -> Fixture {
    Fixture::new(Driver::File)
}

fn revision_files(fx: &Fixture, vm: &str) -> Vec<String> {
    tree(&fx.dir().join("appvms").join(vm)).into_iter().filter(|n| n.ends_with("-back")).collect()
}

fn import_bytes(fx: &Fixture, vol: &Volume, data: &[u8], size: u64) {
    let path = S.import_begin(&fx.pool, vol, size).unwrap();
    write_at(&path, 0, data);
    assert_eq!(S.import_end(&fx.pool, vol, true).unwrap(), Some(size));
}

#[test]
fn path_follows_the_layout() {
    let fx = file_fixture();
    let dir = fx.dir();
    assert_eq!(S.path(&fx.pool, &private("work", MIB)), dir.join("appvms/work/private.img"));
    // A snapshot shows its origin's image, as upstream's Info does.
    assert_eq!(S.path(&fx.pool, &snapshot_root("work", "fedora", MIB)), dir.join("vm-templates/fedora/root.img"));
    let evil = Volume { vid: "../../etc/passwd".into(), ..private("work", MIB) };
    assert_eq!(S.path(&fx.pool, &evil), PathBuf::new());
}

#[test]
fn create_makes_a_sparse_image_and_private_dirs() {
    let fx = file_fixture();
    let vol = private("work", 64 * MIB);
    create_owned(&fx.pool, &vol);
    let img = S.path(&fx.pool, &vol);
    assert_eq!(len(&img), 64 * MIB);
    assert_eq!(allocated(&img), 0, "a new image must not allocate blocks");
    assert_eq!(mode(&img), 0o660);
    assert_eq!(mode(&fx.dir().join("appvms/work")), 0o711);
    assert_eq!(mode(&fx.dir().join("appvms")), 0o711);
    assert_eq!(tree(&fx.dir()), ["appvms/", "appvms/work/", "appvms/work/private.img"]);
}

#[test]
fn create_refuses_to_overwrite() {
    let fx = file_fixture();
    let vol = private("work", MIB);
    create_owned(&fx.pool, &vol);
    let img = S.path(&fx.pool, &vol);
    write_at(&img, 0, b"data");
    let err = S.create(&fx.pool, &vol).unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists(ref p) if *p == img), "{err:?}");
    assert_eq!(read_at(&img, 0, 4), b"data");
}

/// Until `own`, a new volume's files are marked as Corral's leftovers: `discard_orphan` clears them (what a create
/// cut short by a crash left), but never files without the mark (a user's, or an owned volume's).
#[test]
fn only_marked_leftovers_are_discarded() {
    let fx = file_fixture();
    let vol = private("work", MIB);
    let img = S.path(&fx.pool, &vol);
    S.create(&fx.pool, &vol).unwrap();
    assert_eq!(
        tree(&fx.dir()),
        ["appvms/", "appvms/work/", "appvms/work/private.img", "appvms/work/private.img.unowned"]
    );

    assert!(S.discard_orphan(&fx.pool, &vol).unwrap());
    assert_eq!(tree(&fx.dir()), ["appvms/"]);

    create_owned(&fx.pool, &vol);
    assert!(!S.discard_orphan(&fx.pool, &vol).unwrap(), "an owned volume's files stay");
    assert!(img.exists());

    // A removal marks them before its commit; a crash before the files go leaves them discardable.
    S.disown(&fx.pool, &vol).unwrap();
    assert!(S.discard_orphan(&fx.pool, &vol).unwrap());
    assert_eq!(tree(&fx.dir()), ["appvms/"]);

    fs::create_dir_all(img.parent().unwrap()).unwrap();
    fs::write(&img, b"user data").unwrap();
    assert!(!S.discard_orphan(&fx.pool, &vol).unwrap());
    assert!(matches!(S.create(&fx.pool, &vol), Err(StorageError::AlreadyExists(_))));
    assert_eq!(fs::read(&img).unwrap(), b"user data");
    assert_eq!(tree(&fx.dir()), ["appvms/", "appvms/work/", "appvms/work/private.img"], "no marker on a user's file");
}

/// A revision or import no qube owns would be handed to the new volume: create refuses it as it refuses an image.
#[test]
fn create_refuses_over_an_unowned_revision() {
    let fx = file_fixture();
    let vol = private("work", MIB);
    let img = S.path(&fx.pool, &vol);
    fs::create_dir_all(img.parent().unwrap()).unwrap();
    let revision = img.with_file_name("private.img.1700000000-back");
    fs::write(&revision, b"old").unwrap();
    let err = S.create(&fx.pool, &vol).unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists(ref p) if *p == revision), "{err:?}");
    assert!(!img.exists());
}

/// Nothing under a pool directory is followed, and directories others may write to are refused.
#[test]
fn symlinks_and_shared_directories_in_a_pool_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let fx = file_fixture();
    S.setup_pool(&fx.pool).unwrap();
    let outside = fx.tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"keep").unwrap();
    std::os::unix::fs::symlink(&outside, fx.dir().join("appvms/work")).unwrap();
    let vol = private("work", MIB);
    for err in [
        S.create(&fx.pool, &vol).unwrap_err(),
        S.clear(&fx.pool, &vol).unwrap_err(),
        S.resize(&fx.pool, &vol, 2 * MIB).unwrap_err(),
        S.remove(&fx.pool, &vol).unwrap_err(),
        S.import_begin(&fx.pool, &vol, MIB).unwrap_err(),
        S.start_volume(&fx.pool, &volatile("work", MIB), None).unwrap_err(),
    ] {
        assert!(matches!(err, StorageError::UnsafePath { .. }), "{err:?}");
    }
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"keep");

    fs::remove_file(fx.dir().join("appvms/work")).unwrap();
    fs::set_permissions(fx.dir().join("appvms"), fs::Permissions::from_mode(0o775)).unwrap();
    assert!(matches!(S.create(&fx.pool, &vol), Err(StorageError::UnsafePath { .. })));
    assert!(matches!(S.setup_pool(&fx.pool), Err(StorageError::UnsafePath { .. })));
    fs::set_permissions(fx.dir().join("appvms"), fs::Permissions::from_mode(0o755)).unwrap();
    S.setup_pool(&fx.pool).unwrap();
    create_owned(&fx.pool, &vol);

    // The image itself swapped for a symlink: written through by nothing.
    let img = S.path(&fx.pool, &vol);
    fs::remove_file(&img).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), &img).unwrap();
    assert!(S.resize(&fx.pool, &vol, 2 * MIB).is_err());
    assert!(S.clear(&fx.pool, &vol).is_err());
    assert!(S.start_volume(&fx.pool, &vol, None).is_err());
    S.remove(&fx.pool, &vol).unwrap();
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"keep");
}

#[test]
fn create_skips_snapshots() {
    let fx = file_fixture();
    S.create(&fx.pool, &snapshot_root("work", "fedora", MIB)).unwrap();
    assert!(tree(&fx.dir()).iter().all(|p| !p.ends_with(".img")));
}

#[test]
fn unsafe_vids_are_refused_everywhere() {
    let fx = file_fixture();
    let before = tree(fx.tmp.path());
    for vid in ["../escape", "/abs/path", "appvms/../../escape", "appvms//x", "appvms/x y/private", ""] {
        let vol = Volume { vid: vid.into(), ..private("work", MIB) };
        let invalid = |r: Result<(), StorageError>| matches!(r, Err(StorageError::InvalidPath(_)));
        assert!(invalid(S.create(&fx.pool, &vol)), "create {vid:?}");
        assert!(invalid(S.remove(&fx.pool, &vol)), "remove {vid:?}");
        assert!(invalid(S.resize(&fx.pool, &vol, 2 * MIB)), "resize {vid:?}");
        assert!(invalid(S.clear(&fx.pool, &vol)), "clear {vid:?}");
        assert!(invalid(S.import_begin(&fx.pool, &vol, MIB).map(drop)), "import {vid:?}");
        assert!(invalid(S.clone_volume(&fx.pool, &vol, &fx.pool, &private("b", MIB)).map(drop)), "clone {vid:?}");
        assert!(invalid(S.clone_volume(&fx.pool, &private("b", MIB), &fx.pool, &vol).map(drop)), "clone {vid:?}");
        assert_eq!(S.usage(&fx.pool, &vol), None);
        assert!(S.revisions(&fx.pool, &vol).is_empty());
    }
    assert_eq!(tree(fx.tmp.path()), before);
}

#[test]
fn relative_pool_dirs_are_refused() {
    let mut fx = file_fixture();
    fx.pool.dir_path = "relative/pool".into();
    assert!(matches!(S.create(&fx.pool, &private("work", MIB)), Err(StorageError::InvalidPath(_))));
    assert!(matches!(S.setup_pool(&fx.pool), Err(StorageError::InvalidPath(_))));
}

#[test]
fn remove_deletes_everything_and_the_empty_dir() {
    let fx = file_fixture();
    let (vol, other) = (private("work", MIB), volatile("work", MIB));
    create_owned(&fx.pool, &vol);
    create_owned(&fx.pool, &other);
    let dir = fx.dir().join("appvms/work");
    S.clear(&fx.pool, &vol).unwrap(); // leaves a revision
    S.import_begin(&fx.pool, &vol, MIB).unwrap();
    fs::write(dir.join("private.img.tmp-1-2"), b"").unwrap();
    fs::write(dir.join("private-cow.img"), b"").unwrap();
    // Same prefix, different volume: must survive.
    fs::write(dir.join("private2.img"), b"").unwrap();
    assert_eq!(revision_files(&fx, "work").len(), 1);

    S.remove(&fx.pool, &vol).unwrap();
    assert_eq!(tree(&dir), ["private2.img", "volatile.img"]);
    fs::remove_file(dir.join("private2.img")).unwrap();

    S.remove(&fx.pool, &other).unwrap();
    assert!(!dir.exists());
    assert!(fx.dir().join("appvms").is_dir(), "shared directories stay");
    // Removing again, or what never existed, is fine.
    S.remove(&fx.pool, &vol).unwrap();
    S.remove(&fx.pool, &private("never", MIB)).unwrap();
}

#[test]
fn removing_a_snapshot_leaves_the_origin_alone() {
    let fx = file_fixture();
    let origin = template_root("fedora", MIB);
    create_owned(&fx.pool, &origin);
    let snap = snapshot_root("work", "fedora", MIB);
    S.mark_started(&fx.pool, &snap).unwrap();
    S.remove(&fx.pool, &snap).unwrap();
    assert!(S.path(&fx.pool, &origin).exists());
    assert!(!fx.dir().join("appvms/work").exists());
}

#[test]
fn usage_counts_allocated_blocks() {
    let fx = file_fixture();
    let vol = private("work", 16 * MIB);
    assert_eq!(S.usage(&fx.pool, &vol), Some(0), "missing image");
    create_owned(&fx.pool, &vol);
    assert_eq!(S.usage(&fx.pool, &vol), Some(0));
    write_at(&S.path(&fx.pool, &vol), 4 * MIB, &vec![1u8; MIB as usize]);
    let used = S.usage(&fx.pool, &vol).unwrap();
    assert!((MIB..2 * MIB).contains(&used), "{used}");

    let snap = snapshot_root("work", "fedora", MIB);
    assert_eq!(S.usage(&fx.pool, &snap), Some(0), "a stopped snapshot owns nothing");
}

#[test]
fn resize_grows_sparsely() {
    let fx = file_fixture();
    let vol = private("work", MIB);
    create_owned(&fx.pool, &vol);
    let img = S.path(&fx.pool, &vol);
    write_at(&img, 0, b"keep me");
    let before = allocated(&img);
    S.resize(&fx.pool, &vol, 1024 * MIB).unwrap();
    assert_eq!(len(&img), 1024 * MIB);
    assert_eq!(allocated(&img), before);
    assert_eq!(read_at(&img, 0, 7), b"keep me");
    // Same size again is a no-op.
    S.resize(&fx.pool, &Volume { size: 1024 * MIB, ..vol }, 1024 * MIB).unwrap();
}

#[test]
fn resize_refuses_to_shrink() {
    let fx = file_fixture();
    let vol = private("work", 2 * MIB);
    create_owned(&fx.pool, &vol);
    let img = S.path(&fx.pool, &vol);
    let err = S.resize(&fx.pool, &vol, MIB).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "For your own safety, shrinking of private is disabled (2097152 > 1048576). If you really know what you \
             are doing, use 'truncate' on {} manually.",
            img.display()
        )
    );
    assert_eq!(len(&img), 2 * MIB);

    // The image is the truth when the configuration lags behind it.
    let stale = Volume { size: MIB, ..vol };
    let err = S.resize(&fx.pool, &stale, MIB + MIB / 2).unwrap_err();
    assert!(matches!(err, StorageError::ShrinkRefused { current, .. } if current == 2 * MIB), "{err:?}");
    assert_eq!(len(&img), 2 * MIB);
}

#[test]
fn resize_without_an_image() {
    let fx = file_fixture();
    let snap = snapshot_root("work", "fedora", MIB);
    S.resize(&fx.pool, &snap, 2 * MIB).unwrap();
    assert!(matches!(S.resize(&fx.pool, &snap, MIB / 2), Err(StorageError::ShrinkRefused { .. })));
    S.resize(&fx.pool, &volatile("work", MIB), 2 * MIB).unwrap();
    assert_eq!(tree(&fx.dir()), Vec::<String>::new(), "nothing is created");

    let err = S.resize(&fx.pool, &private("work", MIB), 2 * MIB).unwrap_err();
    assert!(matches!(err, StorageError::MissingImage(_)), "{err:?}");
}

#[test]
fn resize_refuses_read_only() {
    let fx = file_fixture();
    let vol = Volume { rw: false, ..private("work", MIB) };
    create_owned(&fx.pool, &vol);
    assert!(matches!(S.resize(&fx.pool, &vol, 2 * MIB), Err(StorageError::ReadOnly(_))));
    assert_eq!(len(&S.path(&fx.pool, &vol)), MIB);
}

#[test]
fn clear_zeroes_and_keeps_the_old_content_as_revision() {
    let fx = file_fixture();
    let vol = private("work", 4 * MIB);
    create_owned(&fx.pool, &vol);
    let img = S.path(&fx.pool, &vol);
    write_at(&img, MIB, &[7u8; 4096]);
    S.clear(&fx.pool, &vol).unwrap();
    assert_eq!(len(&img), 4 * MIB);
    assert_eq!(allocated(&img), 0);
    assert!(read_at(&img, 0, 4 * MIB as usize).iter().all(|&b| b == 0));
    assert_eq!(mode(&img), 0o660);

    let revs = S.revisions(&fx.pool, &vol);
    assert_eq!(revs.len(), 1);
    let rev_path = fx.dir().join("appvms/work").join(format!("private.img.{}", revs[0].id));
    assert_eq!(read_at(&rev_path, MIB, 4096), [7u8; 4096]);
}

#[test]
fn clear_without_revisions() {
    let fx = file_fixture();
    let vol = Volume { revisions_to_keep: 0, ..private("work", MIB) };
    create_owned(&fx.pool, &vol);
    write_at(&S.path(&fx.pool, &vol), 0, b"x");
    S.clear(&fx.pool, &vol).unwrap();
    assert_eq!(tree(&fx.dir().join("appvms/work")), ["private.img"]);
}

#[test]
fn clear_refuses_volumes_without_own_data() {
    let fx = file_fixture();
    let vol = volatile("work", MIB);
    create_owned(&fx.pool, &vol);
    assert!(matches!(S.clear(&fx.pool, &vol), Err(StorageError::Unsupported(_))));
    let snap = snapshot_root("work", "fedora", MIB);
    assert!(matches!(S.clear(&fx.pool, &snap), Err(StorageError::Unsupported(_))));
}

#[test]
fn clone_copies_content_size_and_keeps_a_revision() {
    let fx = file_fixture();
    let (src, dst) = (private("a", 64 * MIB), private("b", MIB));
    create_owned(&fx.pool, &src);
    create_owned(&fx.pool, &dst);
    let (src_img, dst_img) = (S.path(&fx.pool, &src), S.path(&fx.pool, &dst));
    write_at(&src_img, 0, b"hello");
    write_at(&src_img, 17 * MIB + 3, &[0xab; 100_000]);
    write_at(&src_img, 64 * MIB - 1, b"!");
    write_at(&dst_img, 0, b"old content");

    assert_eq!(S.clone_volume(&fx.pool, &src, &fx.pool, &dst).unwrap(), 64 * MIB);
    assert_eq!(len(&dst_img), 64 * MIB);
    assert_eq!(fs::read(&dst_img).unwrap(), fs::read(&src_img).unwrap());
    // Reflinked or copied, the holes stay holes (zero blocks of a plain copy are covered by copy.rs's tests).
    assert!(allocated(&dst_img) < MIB, "copy stays sparse: {}", allocated(&dst_img));
    assert_eq!(mode(&dst_img), 0o660);

    let revs = S.revisions(&fx.pool, &dst);
    assert_eq!(revs.len(), 1);
    let rev_path = fx.dir().join("appvms/b").join(format!("private.img.{}", revs[0].id));
    assert_eq!(len(&rev_path), MIB);
    assert_eq!(read_at(&rev_path, 0, 11), b"old content");
    assert_eq!(tree(&fx.dir().join("appvms/b")).len(), 2, "no temporary files left");
}

#[test]
fn clone_can_shrink_the_destination() {
    let fx = file_fixture();
    let (src, dst) = (private("a", MIB), Volume { revisions_to_keep: 0, ..private("b", 8 * MIB) });
    create_owned(&fx.pool, &src);
    create_owned(&fx.pool, &dst);
    write_at(&S.path(&fx.pool, &dst), 7 * MIB, b"gone");
    assert_eq!(S.clone_volume(&fx.pool, &src, &fx.pool, &dst).unwrap(), MIB);
    assert_eq!(len(&S.path(&fx.pool, &dst)), MIB);
    assert!(S.revisions(&fx.pool, &dst).is_empty());
    assert_eq!(tree(&fx.dir().join("appvms/b")), ["private.img"]);
}

#[test]
fn clone_across_pools_creates_missing_dirs() {
    let fx = file_fixture();
    let other = Fixture::new(Driver::File);
    let src = private("a", 2 * MIB);
    create_owned(&fx.pool, &src);
    write_at(&S.path(&fx.pool, &src), MIB, b"across");
    let dst = Volume { pool: other.pool.name.clone(), ..private("b", 2 * MIB) };
    assert_eq!(S.clone_volume(&fx.pool, &src, &other.pool, &dst).unwrap(), 2 * MIB);
    assert_eq!(read_at(&S.path(&other.pool, &dst), MIB, 6), b"across");
    assert!(S.revisions(&other.pool, &dst).is_empty(), "nothing was replaced");
}

#[test]
fn failed_clone_leaves_destination_intact() {
    let fx = file_fixture();
    let (src, dst) = (private("a", MIB), private("b", MIB));
    create_owned(&fx.pool, &dst);
    write_at(&S.path(&fx.pool, &dst), 0, b"precious");
    let err = S.clone_volume(&fx.pool, &src, &fx.pool, &dst).unwrap_err();
    assert!(matches!(err, StorageError::MissingImage(_)), "{err:?}");
    assert_eq!(read_at(&S.path(&fx.pool, &dst), 0, 8), b"precious");
    assert_eq!(tree(&fx.dir().join("appvms/b")), ["private.img"]);
}

#[test]
fn clone_follows_upstream_for_snapshots_and_volatile() {
    let fx = file_fixture();
    let origin = template_root("fedora", MIB);
    create_owned(&fx.pool, &origin);
    let snap = snapshot_root("work", "fedora", MIB);
    let err = S.clone_volume(&fx.pool, &snap, &fx.pool, &private("b", MIB)).unwrap_err();
    assert!(matches!(err, StorageError::Unsupported(_)), "{err:?}");
    // Destinations without data of their own are left alone.
    assert_eq!(S.clone_volume(&fx.pool, &origin, &fx.pool, &snap).unwrap(), MIB);
    let vol = volatile("work", 3 * MIB);
    assert_eq!(S.clone_volume(&fx.pool, &origin, &fx.pool, &vol).unwrap(), 3 * MIB);
    assert!(!fx.dir().join("appvms/work").exists());
}

#[test]
fn back_to_back_commits_keep_one_distinct_revision() {
    let fx = file_fixture();
    let vol = private("work", MIB);
    create_owned(&fx.pool, &vol);
    import_bytes(&fx, &vol, b"first", MIB);
    let first = S.revisions(&fx.pool, &vol);
    import_bytes(&fx, &vol, b"second", MIB);
    import_bytes(&fx, &vol, b"third", MIB);
    let revs = S.revisions(&fx.pool, &vol);
    assert_eq!(revs.len(), 1);
    assert_ne!(revs, first);
    assert_eq!(revision_files(&fx, "work").len(), 1, "older revisions are pruned");
    let rev_path = fx.dir().join("appvms/work").join(format!("private.img.{}", revs[0].id));
    assert_eq!(read_at(&rev_path, 0, 6), b"second");
}

#[test]
fn revisions_show_the_newest_kept_and_are_pruned() {
    let fx = file_fixture();
    let vol = private("work", MIB);
    create_owned(&fx.pool, &vol);
    let dir = fx.dir().join("appvms/work");
    for name in ["private.img.1795575845-back", "private.img.200-back", "private.img.bogus-back", "root.img.300-back"] {
        fs::write(dir.join(name), b"").unwrap();
    }
    let all = Volume { revisions_to_keep: 1, ..vol.clone() };
    let revs = S.revisions(&fx.pool, &all);
    assert_eq!(revs.len(), 1);
    assert_eq!(revs[0].id, "1795575845-back");
    assert_eq!(revs[0].timestamp, "2026-11-25T03:04:05");
    // The driver keeps at most one, whatever the configuration says.
    assert_eq!(S.revisions(&fx.pool, &Volume { revisions_to_keep: 5, ..vol.clone() }), revs);
    assert!(S.revisions(&fx.pool, &Volume { revisions_to_keep: 0, ..vol.clone() }).is_empty());
    assert!(S.revisions(&fx.pool, &Volume { revisions_to_keep: -1, ..vol.clone() }).is_empty());

    S.prune_revisions(&fx.pool, &all).unwrap();
    // Files that are not this volume's revisions are never touched.
    assert_eq!(
        revision_files(&fx, "work"),
        ["private.img.1795575845-back", "private.img.bogus-back", "root.img.300-back"]
    );
    S.prune_revisions(&fx.pool, &Volume { revisions_to_keep: -1, ..vol }).unwrap();
    assert_eq!(revision_files(&fx, "work"), ["private.img.bogus-back", "root.img.300-back"]);
}

#[test]
fn revert_swaps_current_and_revision() {
    let fx = file_fixture();
    let vol = private("work", MIB);
    create_owned(&fx.pool, &vol);
    let img = S.path(&fx.pool, &vol);
    write_at(&img, 0, b"v1");
    import_bytes(&fx, &vol, b"v2", 2 * MIB);
    let rev = S.revisions(&fx.pool, &vol).remove(0);

    S.revert(&fx.pool, &vol, &rev.id).unwrap();
    assert_eq!(read_at(&img, 0, 2), b"v1");
    assert_eq!(len(&img), MIB);
    let now = S.revisions(&fx.pool, &vol);
    assert_eq!(now.len(), 1);
    assert_ne!(now[0].id, rev.id, "the replaced content is a new revision");

    S.revert(&fx.pool, &vol, &now[0].id).unwrap();
    assert_eq!(read_at(&img, 0, 2), b"v2");
    assert_eq!(len(&img), 2 * MIB);
    assert_eq!(revision_files(&fx, "work").len(), 1);
}

#[test]
fn revert_without_keeping_drops_the_current_image() {
    let fx = file_fixture();
    let vol = private("work", MIB);
    create_owned(&fx.pool, &vol);
    write_at(&S.path(&fx.pool, &vol), 0, b"v1");
    import_bytes(&fx, &vol, b"v2", MIB);
    let rev = S.revisions(&fx.pool, &vol).remove(0);
    // Hidden revisions (revisions_to_keep lowered to 0) cannot be reverted to.
    let none = Volume { revisions_to_keep: 0, ..vol.clone() };
    assert!(matches!(S.revert(&fx.pool, &none, &rev.id), Err(StorageError::RevisionNotFound { .. })));
    S.revert(&fx.pool, &vol, &rev.id).unwrap();
    assert_eq!(read_at(&S.path(&fx.pool, &vol), 0, 2), b"v1");
}

#[test]
fn revert_unknown_revision() {
    let fx = file_fixture();
    let vol = private("work", MIB);
    create_owned(&fx.pool, &vol);
    write_at(&S.path(&fx.pool, &vol), 0, b"v1");
    for id in ["1-back", "old", "../../private.img", "", "01-back"] {
        let err = S.revert(&fx.pool, &vol, id).unwrap_err();
        assert!(matches!(err, StorageError::RevisionNotFound { ref revision, .. } if revision == id), "{err:?}");
    }
    assert_eq!(read_at(&S.path(&fx.pool, &vol), 0, 2), b"v1");
}

#[test]
fn import_commits_the_new_data() {
    let fx = file_fixture();
    let vol = private("work", MIB);
    create_owned(&fx.pool, &vol);
    let img = S.path(&fx.pool, &vol);
    write_at(&img, 0, b"before");

    let path = S.import_begin(&fx.pool, &vol, 3 * MIB).unwrap();
    assert_eq!(path, fx.dir().join("appvms/work/private.img.import"));
    assert_eq!(len(&path), 3 * MIB);
    assert_eq!(allocated(&path), 0);
    assert_eq!(mode(&path), 0o600);
    assert!(matches!(S.import_begin(&fx.pool, &vol, MIB), Err(StorageError::ImportInProgress(_))));
    write_at(&path, 2 * MIB, b"after");

    assert_eq!(S.import_end(&fx.pool, &vol, true).unwrap(), Some(3 * MIB));
    assert!(!path.exists());
    assert_eq!(len(&img), 3 * MIB);
    assert_eq!(read_at(&img, 2 * MIB, 5), b"after");
    assert_eq!(read_at(&img, 0, 6), [0u8; 6]);
    assert_eq!(mode(&img), 0o660);
    let rev = &S.revisions(&fx.pool, &vol)[0];
    assert_eq!(read_at(&fx.dir().join("appvms/work").join(format!("private.img.{}", rev.id)), 0, 6), b"before");

    assert!(matches!(S.import_end(&fx.pool, &vol, true), Err(StorageError::NoImportInProgress(_))));
}

#[test]
fn failed_import_removes_the_import_file() {
    let fx = file_fixture();
    let vol = private("work", MIB);
    create_owned(&fx.pool, &vol);
    write_at(&S.path(&fx.pool, &vol), 0, b"intact");
    let path = S.import_begin(&fx.pool, &vol, MIB).unwrap();
    write_at(&path, 0, b"partial");
    assert_eq!(S.import_end(&fx.pool, &vol, false).unwrap(), None);
    assert!(!path.exists());
    assert_eq!(read_at(&S.path(&fx.pool, &vol), 0, 6), b"intact");
    assert_eq!(tree(&fx.dir().join("appvms/work")), ["private.img"]);
    // Failing again, with nothing in progress, is harmless; a new import can start.
    assert_eq!(S.import_end(&fx.pool, &vol, false).unwrap(), None);
    S.import_begin(&fx.pool, &vol, MIB).unwrap();
}

#[test]
fn import_without_revisions() {
    let fx = file_fixture();
    let vol = Volume { revisions_to_keep: -1, ..private("work", MIB) };
    create_owned(&fx.pool, &vol);
    import_bytes(&fx, &vol, b"new", MIB);
    assert_eq!(tree(&fx.dir().join("appvms/work")), ["private.img"]);
}

#[test]
fn import_refuses_volumes_without_own_data() {
    let fx = file_fixture();
    for vol in [volatile("work", MIB), snapshot_root("work", "fedora", MIB)] {
        let err = S.import_begin(&fx.pool, &vol, MIB).unwrap_err();
        assert!(matches!(err, StorageError::Unsupported(_)), "{err:?}");
    }
}

#[test]
fn discard_pending_cleans_interrupted_operations() {
    let fx = file_fixture();
    let vol = private("work", MIB);
    create_owned(&fx.pool, &vol);
    S.import_begin(&fx.pool, &vol, MIB).unwrap();
    fs::write(fx.dir().join("appvms/work/private.img.tmp-99-0"), b"").unwrap();
    S.discard_pending(&fx.pool, &vol).unwrap();
    assert_eq!(tree(&fx.dir().join("appvms/work")), ["private.img"]);
    S.import_begin(&fx.pool, &vol, MIB).unwrap();
}

#[test]
fn outdated_snapshots() {
    let fx = file_fixture();
    let origin = template_root("fedora", MIB);
    create_owned(&fx.pool, &origin);
    let snap = snapshot_root("work", "fedora", MIB);
    assert!(!S.is_outdated(&fx.pool, &snap, &fx.pool, &origin), "not started");

    S.mark_started(&fx.pool, &snap).unwrap();
    assert!(!S.is_outdated(&fx.pool, &snap, &fx.pool, &origin));
    sleep(Duration::from_millis(50));
    import_bytes(&fx, &origin, b"update", MIB);
    assert!(S.is_outdated(&fx.pool, &snap, &fx.pool, &origin));

    // Reverting the origin is a change too, even though the revision's data is older.
    sleep(Duration::from_millis(50));
    S.mark_started(&fx.pool, &snap).unwrap();
    assert!(!S.is_outdated(&fx.pool, &snap, &fx.pool, &origin));
    sleep(Duration::from_millis(50));
    let rev = S.revisions(&fx.pool, &origin).remove(0);
    S.revert(&fx.pool, &origin, &rev.id).unwrap();
    assert!(S.is_outdated(&fx.pool, &snap, &fx.pool, &origin));

    S.mark_stopped(&fx.pool, &snap).unwrap();
    assert!(!S.is_outdated(&fx.pool, &snap, &fx.pool, &origin));
    assert!(!S.is_outdated(&fx.pool, &origin, &fx.pool, &origin), "only snapshots can be outdated");
}

#[test]
fn setup_pool_creates_the_layout() {
    let fx = file_fixture();
    S.setup_pool(&fx.pool).unwrap();
    assert_eq!(tree(&fx.dir()), ["appvms/", "vm-templates/"]);
    assert_eq!(mode(&fx.dir()), 0o711);
    S.setup_pool(&fx.pool).unwrap();
}

#[test]
fn setup_pool_reports_unusable_dirs() {
    let mut fx = file_fixture();
    let blocker = fx.tmp.path().join("file");
    fs::write(&blocker, b"").unwrap();
    fx.pool.dir_path = blocker.join("pool").to_str().unwrap().into();
    let err = S.setup_pool(&fx.pool).unwrap_err();
    assert!(matches!(err, StorageError::PoolNotUsable { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("Pool directory {} is not usable: ", fx.pool.dir_path)), "{err}");
}

#[test]
fn pool_usage_reports_the_filesystem() {
    let fx = file_fixture();
    assert_eq!(S.pool_usage(&fx.pool), None);
    S.setup_pool(&fx.pool).unwrap();
    let (size, used) = S.pool_usage(&fx.pool).unwrap();
    assert!(size > 0 && used <= size, "{size} {used}");
}

#[test]
fn file_pools_have_no_kernels() {
    let fx = file_fixture();
    S.setup_pool(&fx.pool).unwrap();
    assert!(S.kernels(&fx.pool).is_empty());
}

/// Needs a reflink-capable file system (XFS with reflink, btrfs), so it only runs when pointed at one:
/// `CORRAL_TEST_REFLINK_DIR=/mnt/xfs cargo test -p corral-storage reflink`.
#[test]
fn clone_shares_extents_on_reflink_file_systems() {
    let Some(base) = std::env::var_os("CORRAL_TEST_REFLINK_DIR") else { return };
    let tmp = tempfile::tempdir_in(base).unwrap();
    let pool = corral_core::volume::Pool::new("p", Driver::File, tmp.path().to_str().unwrap());
    let (src, dst) = (private("a", 64 * MIB), private("b", MIB));
    create_owned(&pool, &src);
    create_owned(&pool, &dst);
    write_at(&S.path(&pool, &src), 0, &vec![0xab; 48 * MIB as usize]);
    let (_, used_before) = S.pool_usage(&pool).unwrap();
    assert_eq!(S.clone_volume(&pool, &src, &pool, &dst).unwrap(), 64 * MIB);
    let (_, used_after) = S.pool_usage(&pool).unwrap();
    assert!(used_after.saturating_sub(used_before) < 8 * MIB, "{used_before} -> {used_after}: not shared");
    assert_eq!(fs::read(S.path(&pool, &dst)).unwrap(), fs::read(S.path(&pool, &src)).unwrap());
}
