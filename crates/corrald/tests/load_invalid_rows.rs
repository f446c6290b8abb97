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
    assert!(d.log().contains("skipped invalid row at load"));
}

#[test]
fn property_row_with_invalid_value_falls_back_to_the_default() {
    let mut d = seeded();
    corrupt(&d, "UPDATE domain_properties SET value = 'lots' WHERE name = 'memory';");

    d.spawn();

    assert_eq!(d.ok("admin.vm.property.Get+memory", "work", b""), "default=True type=int 400");
    assert_eq!(d.ok("admin.vm.feature.Get+gui", "work", b""), "1");
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
