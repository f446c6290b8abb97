//! A store row that no longer validates is logged and skipped at start; the rest is served.

mod support;

use support::Daemon;

fn seeded() -> Daemon {
    let mut d = Daemon::start();
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=tpl label=black");
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=broken label=red");
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=work label=red");
    d.ok("admin.vm.property.Set+memory", "work", b"800");
    d.ok("admin.vm.feature.Set+gui", "work", b"1");
    d.kill9();
    d
}

fn corrupt(d: &Daemon, sql: &str) {
    let db = rusqlite::Connection::open(d.state.join("corral.sqlite")).expect("open db");
    db.execute_batch(sql).expect("corrupt db");
}

#[test]
fn qube_with_invalid_name_is_skipped_and_others_are_served() {
    let mut d = seeded();
    corrupt(&d, "UPDATE domains SET name = '1-broken' WHERE name = 'broken';");

    d.spawn();

    let list = d.ok("admin.vm.List", "dom0", b"");
    assert!(!list.contains("broken"), "{list}");
    assert!(list.contains("work class=AppVM"), "{list}");
    assert!(d.log().contains("quarantined invalid row at load"));
}

#[test]
fn property_row_with_invalid_value_falls_back_to_the_default() {
    let mut d = seeded();
    corrupt(&d, "UPDATE domain_properties SET value = 'lots' WHERE name = 'memory';");

    d.spawn();

    assert_eq!(d.ok("admin.vm.property.Get+memory", "work", b""), "default=True type=int 400");
    assert_eq!(d.ok("admin.vm.feature.Get+gui", "work", b""), "1");
    // Every image directory has its qube: nothing to warn about.
    assert!(!d.log().contains("belong to no loaded qube"), "{}", d.log());
}

#[test]
fn unknown_class_and_bad_feature_rows_are_skipped() {
    let mut d = seeded();
    corrupt(
        &d,
        "UPDATE domains SET class = 'NetVM' WHERE name = 'broken';
         UPDATE features SET name = 'bad name' WHERE name = 'gui';",
    );

    d.spawn();

    assert_eq!(d.err("admin.vm.feature.Get+gui", "work", b"").0, "QubesFeatureNotFoundError");
    assert_eq!(d.err("admin.vm.List", "broken", b"").0, "QubesVMNotFoundError");
    assert_eq!(d.ok("admin.vm.property.Get+memory", "work", b""), "default=False type=int 800");
}

fn query(d: &Daemon, sql: &str) -> String {
    let db = rusqlite::Connection::open(d.state.join("corral.sqlite")).expect("open db");
    db.query_row(sql, [], |r| r.get::<_, String>(0)).expect("query")
}

/// A qube row that does not load stays in the database, and new qubes take neither its qid nor its name.
#[test]
fn a_quarantined_qube_keeps_its_row_and_creates_go_on() {
    let mut d = seeded();
    corrupt(&d, "UPDATE domains SET class = 'NetVM' WHERE name = 'broken';");

    d.spawn();

    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=fresh label=red");
    assert_eq!(d.err("admin.vm.Create.AppVM+tpl", "dom0", b"name=broken label=red").0, "QubesVMAlreadyExistsError");
    assert!(d.log().contains("could not be loaded"), "{}", d.log());
    d.kill9();
    assert_eq!(query(&d, "SELECT class FROM domains WHERE name = 'broken'"), "NetVM");
    assert_ne!(
        query(&d, "SELECT CAST(qid AS TEXT) FROM domains WHERE name = 'fresh'"),
        query(&d, "SELECT CAST(qid AS TEXT) FROM domains WHERE name = 'broken'")
    );
}

/// Bytes that are not text, in any table, quarantine their row instead of stopping the daemon.
#[test]
fn blob_and_non_utf8_values_are_quarantined() {
    let mut d = seeded();
    corrupt(
        &d,
        "UPDATE domain_properties SET value = X'00FF' WHERE name = 'memory';
         UPDATE features SET value = CAST(X'C328' AS TEXT) WHERE name = 'gui';
         INSERT INTO global_properties(name, value) VALUES ('stats_interval', X'01');
         UPDATE domains SET notes = CAST(X'FF' AS TEXT) WHERE name = 'work';
         UPDATE domains SET name = CAST(X'62726FFF' AS TEXT) WHERE name = 'broken';",
    );

    d.spawn();

    assert_eq!(d.ok("admin.vm.property.Get+memory", "work", b""), "default=True type=int 400");
    assert_eq!(d.err("admin.vm.feature.Get+gui", "work", b"").0, "QubesFeatureNotFoundError");
    assert_eq!(d.ok("admin.property.Get+stats_interval", "dom0", b""), "default=True type=int 3");
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=fresh label=red");
    assert!(d.log().contains("quarantined invalid row at load"));
}

/// Values the setters refuse and references to qubes that do not exist are quarantined; the qube keeps
/// its default.
#[test]
fn values_are_checked_like_the_setters_check_them() {
    let mut d = seeded();
    corrupt(
        &d,
        "UPDATE domain_properties SET value = '-5' WHERE name = 'memory';
         INSERT INTO global_properties(name, value) VALUES ('default_netvm', 'ghost');
         INSERT INTO domain_properties(qid, name, value)
             SELECT qid, 'guivm', 'ghost' FROM domains WHERE name = 'work';",
    );

    d.spawn();

    assert_eq!(d.ok("admin.vm.property.Get+memory", "work", b""), "default=True type=int 400");
    assert_eq!(d.ok("admin.property.Get+default_netvm", "dom0", b""), "default=True type=vm ");
    assert_eq!(d.ok("admin.vm.property.Get+guivm", "work", b""), "default=True type=vm dom0");
}

/// An AppVM whose template is gone cannot run: it is quarantined whole, and its name stays taken.
#[test]
fn a_qube_whose_template_does_not_resolve_is_quarantined() {
    let mut d = seeded();
    corrupt(&d, "UPDATE domain_properties SET value = 'ghost' WHERE name = 'template' AND qid = (SELECT qid FROM domains WHERE name = 'work');");

    d.spawn();

    assert_eq!(d.err("admin.vm.List", "work", b"").0, "QubesVMNotFoundError");
    assert_eq!(d.err("admin.vm.Create.AppVM+tpl", "dom0", b"name=work label=red").0, "QubesVMAlreadyExistsError");
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=fresh label=red");
}

/// A pool row that does not load leaves the volumes on it in place: listed, not dropped.
#[test]
fn volumes_on_a_pool_that_did_not_load_are_kept() {
    let mut d = seeded();
    corrupt(&d, "UPDATE pools SET driver = 'bogus' WHERE name = 'linux-kernel';");

    d.spawn();

    let volumes = d.ok("admin.vm.volume.List", "work", b"");
    assert!(volumes.lines().any(|l| l == "kernel"), "{volumes}");
    assert!(d.log().contains("is not loaded: the volume is unusable"), "{}", d.log());
    d.kill9();
    assert_eq!(
        query(
            &d,
            "SELECT pool FROM volumes WHERE name = 'kernel' AND qid = (SELECT qid FROM domains WHERE name = 'work')"
        ),
        "linux-kernel"
    );
}

/// Two qubes naming one image: the later qube's volume row is quarantined, so nothing it does touches
/// the first qube's image.
#[test]
fn a_volume_sharing_another_qubes_image_is_quarantined() {
    let mut d = seeded();
    corrupt(
        &d,
        "UPDATE volumes SET vid = (SELECT vid FROM volumes v JOIN domains q ON q.qid = v.qid
                                    WHERE q.name = 'broken' AND v.name = 'private')
         WHERE name = 'private' AND qid = (SELECT qid FROM domains WHERE name = 'work');",
    );

    d.spawn();

    let volumes = d.ok("admin.vm.volume.List", "work", b"");
    assert!(!volumes.lines().any(|l| l == "private"), "{volumes}");
    assert!(d.ok("admin.vm.volume.List", "broken", b"").lines().any(|l| l == "private"));
    assert!(d.log().contains("is already used by broken.private"), "{}", d.log());
    let image = d.state.join("appvms/broken/private.img");
    assert!(image.exists(), "{}", image.display());
    d.ok("admin.vm.Remove", "work", b"");
    assert!(d.state.join("appvms/broken/private.img").exists());
}

fn corrald(d: &Daemon, extra: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_corrald"));
    cmd.arg("--admin-socket").arg(&d.admin).arg("--internal-socket").arg(&d.internal);
    cmd.arg("--state-dir").arg(&d.state).args(["--libvirt-uri", "test:///default", "--http", "off"]).args(extra);
    cmd
}

/// A state database that lost its content (a WAL cut to nothing) beside the qubes' images is not
/// silently replaced by an empty one: corrald refuses to start and says what it found and how to go on.
#[test]
fn an_empty_store_beside_qube_images_is_refused() {
    let d = seeded();
    for file in ["corral.sqlite", "corral.sqlite-wal", "corral.sqlite-shm"] {
        let _ = std::fs::remove_file(d.state.join(file));
    }
    assert!(d.state.join("appvms/work").is_dir());
    // The killed daemon left its socket behind.
    std::fs::remove_file(&d.admin).expect("stale socket");

    let log = d.dir.path().join("refused.log");
    let mut refused =
        corrald(&d, &[]).stderr(std::fs::File::create(&log).expect("log")).spawn().expect("spawn corrald");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = refused.try_wait().expect("wait") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = refused.kill();
            let _ = refused.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };

    assert!(status.is_some_and(|s| !s.success()), "corrald started on an empty store: {status:?}");
    let stderr = std::fs::read_to_string(&log).expect("log");
    assert!(stderr.contains("appvms/work") && stderr.contains("--accept-empty-store"), "{stderr}");
    assert!(!d.admin.exists());

    // Accepted once, the decision is kept: the next start needs no flag.
    for extra in [&["--accept-empty-store"][..], &[]] {
        let mut started = corrald(&d, extra).stderr(std::process::Stdio::null()).spawn().expect("spawn corrald");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !d.admin.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = started.kill();
        let _ = started.wait();
        assert!(d.admin.exists(), "not started with {extra:?}");
        std::fs::remove_file(&d.admin).expect("socket");
    }
    assert!(d.state.join("appvms/work").is_dir());
}

/// A create cut short by `kill -9` before its commit leaves the new qube's files marked as nobody's; beside a
/// store that holds no qube yet, that is no sign of a lost database, and corrald starts.
#[test]
fn a_fresh_store_beside_only_a_crashed_create_s_files_starts() {
    let mut d = support::Daemon::start();
    d.kill9();
    let dir = d.state.join("appvms/half");
    std::fs::create_dir_all(&dir).expect("image dir");
    std::fs::write(dir.join("private.img.unowned"), b"").expect("marker");
    std::fs::write(dir.join("private.img"), vec![0u8; 4096]).expect("image");
    let _ = std::fs::remove_file(&d.admin);

    d.restart();

    assert!(d.ok("admin.vm.List", "dom0", b"").starts_with("dom0 "));
}

/// Qubes lost from a database that still holds others leave images no qube owns: the start says so.
#[test]
fn images_of_qubes_the_store_lost_are_reported() {
    let mut d = seeded();
    corrupt(&d, "DELETE FROM domains WHERE name = 'work';");

    d.spawn();

    let log = d.log();
    let warning = log.lines().find(|l| l.contains("belong to no loaded qube")).expect("warning");
    assert!(warning.contains("appvms/work") && !warning.contains("appvms/broken"), "{warning}");
    assert!(d.state.join("appvms/work").is_dir());
}
