//! What the daemon may do and who may read its files: its state (every HTTP user's password hash) is
//! private to it, and it runs without the capabilities it never uses.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::Daemon;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

/// Everything but the state directory itself (which others may only pass through).
fn state_files(d: &Daemon) -> Vec<(String, u32)> {
    ["corral.sqlite", "corral.sqlite-wal", "corral.sqlite-shm", "corral.lock", "http-address", "logs"]
        .iter()
        .map(|f| (f.to_string(), mode(&d.state.join(f))))
        .collect()
}

fn private(d: &Daemon) -> Vec<(String, u32)> {
    let dir = |f: &str| if f == "logs" { 0o700 } else { 0o600 };
    state_files(d).into_iter().map(|(f, _)| (f.clone(), dir(&f))).collect()
}

#[test]
fn a_new_state_directory_is_readable_by_the_daemon_only() {
    let d = Daemon::start().with_user();

    assert_eq!(mode(&d.state), 0o711);
    assert_eq!(state_files(&d), private(&d));
}

#[test]
fn a_qubes_images_are_not_readable_nor_its_pool_directories_listable_by_others() {
    let d = Daemon::start().with_appvm();
    let private = support::volumes::volume_path(&d, "work", "private");

    assert_eq!(mode(&private), 0o660);
    for dir in private.ancestors().skip(1).take_while(|p| p.starts_with(&d.state)) {
        assert_eq!(mode(dir) & 0o066, 0, "{}", dir.display());
    }
}

#[test]
fn an_existing_world_readable_state_directory_is_tightened_at_start_and_logged() {
    let mut d = Daemon::start().with_user().with_appvm();
    d.kill9();
    for (path, m) in [(d.state.clone(), 0o755), (d.state.join("corral.sqlite"), 0o644), (d.state.join("logs"), 0o755)] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
    }
    std::fs::set_permissions(d.state.join("appvms/work"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(d.state.join("appvms"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(d.state.join("logs/old.console"), "guest output").unwrap();
    std::fs::set_permissions(d.state.join("logs/old.console"), std::fs::Permissions::from_mode(0o644)).unwrap();

    d.spawn();

    assert_eq!(mode(&d.state), 0o711);
    assert_eq!(state_files(&d), private(&d));
    assert_eq!(mode(&d.state.join("logs/old.console")), 0o600);
    assert_eq!((mode(&d.state.join("appvms")), mode(&d.state.join("appvms/work"))), (0o711, 0o711));
    assert!(d.log().contains("tightened the permissions"), "{}", d.log());
}

/// The capability mask `field` (`CapEff`, `CapBnd`) of process `pid`.
fn capabilities(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).expect(field);
    u64::from_str_radix(line.trim(), 16).expect("hex mask")
}

#[test]
fn the_daemon_runs_without_capabilities_it_never_uses() {
    const SYS_MODULE: u64 = 1 << 16;
    const SYS_BOOT: u64 = 1 << 22;
    const SYS_TIME: u64 = 1 << 25;
    const SYS_ADMIN: u64 = 1 << 21;
    let d = Daemon::start();
    let had = capabilities(std::process::id(), "CapBnd");

    let (effective, bounding) = (capabilities(d.pid(), "CapEff"), capabilities(d.pid(), "CapBnd"));

    assert_eq!(had & SYS_MODULE, SYS_MODULE, "the test itself must hold CAP_SYS_MODULE");
    assert_eq!(effective & (SYS_MODULE | SYS_BOOT | SYS_TIME), 0, "effective {effective:x}");
    assert_eq!(bounding & (SYS_MODULE | SYS_BOOT | SYS_TIME), 0, "bounding {bounding:x}");
    // What libvirt's embedded QEMU driver needs stays.
    assert_eq!(effective & SYS_ADMIN, had & SYS_ADMIN);
    d.ok("admin.vm.List", "dom0", b"");
}
