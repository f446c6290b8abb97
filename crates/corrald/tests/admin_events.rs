//! Black-box tests of `admin.Events` over the daemon's real admin socket: the exact frames a listener
//! receives for each kind of change, and which listener receives them.

mod support;

use support::events::{frames, Events};
use support::reply::shown;
use support::Daemon;

/// `admin.pool.Add+file`'s payload for a pool `pool1` in the daemon's directory.
fn pool1(d: &Daemon) -> Vec<u8> {
    format!("name=pool1\ndir_path={}\n", d.dir.path().join("pool1").display()).into_bytes()
}

// ---------------------------------------------------------------------------------------------------------

#[test]
fn stream_starts_with_connection_established() {
    let d = Daemon::start();
    let mut events = Events::connect(&d, "dom0");

    let first = events.next_frame();

    assert_eq!(shown(&first), shown(b"1\0\0connection-established\0\0"));
}

#[test]
fn stream_for_a_qube_starts_with_connection_established() {
    let d = Daemon::start().with_template();
    let mut events = Events::connect(&d, "tpl");

    let first = events.next_frame();

    assert_eq!(shown(&first), shown(b"1\0\0connection-established\0\0"));
}

#[test]
fn stream_for_unknown_qube_is_vm_not_found() {
    let d = Daemon::start();

    let reply = d.call("admin.Events", "nope", b"");

    assert_eq!(shown(&reply), shown(b"2\0QubesVMNotFoundError\0\0No such domain: 'nope'\0"));
}

#[test]
fn stream_with_argument_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.Events+x", "dom0", b"");

    assert_eq!(shown(&reply), shown(b"2\0ProtocolError\0\0unexpected argument\0"));
}

/// A RemoteVM has nothing on disk: upstream creates no storage for it, so no `domain-create-on-disk`.
#[test]
fn create_of_a_remote_vm_fires_no_create_on_disk() {
    let d = Daemon::start();
    let mut events = Events::around(&d, || d.ok("admin.vm.Create.RemoteVM", "dom0", b"name=far label=red"));

    let seen = events.until_marker(&d, "far");

    assert_eq!(
        seen,
        frames(
            &[b"1\0\0domain-add\0vm\0far\0\0", b"1\0far\0domain-tag-add:created-by-dom0\0tag\0created-by-dom0\0\0",]
        )
    );
}

#[test]
fn create_fires_domain_add_then_created_by_tag_then_create_on_disk() {
    let d = Daemon::start();

    let seen = Events::around(&d, || d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=tpl label=red"))
        .until("domain-create-on-disk");

    assert_eq!(
        seen,
        frames(&[
            b"1\0\0domain-add\0vm\0tpl\0\0",
            b"1\0tpl\0domain-tag-add:created-by-dom0\0tag\0created-by-dom0\0\0",
            b"1\0tpl\0domain-create-on-disk\0\0",
        ])
    );
}

#[test]
fn property_set_fires_pre_set_and_set_with_old_value() {
    let d = Daemon::start().with_template();

    let seen = Events::around(&d, || d.ok("admin.vm.property.Set+memory", "tpl", b"800")).until("property-set:memory");

    assert_eq!(
        seen,
        frames(&[
            b"1\0tpl\0property-pre-set:memory\0name\0memory\0newvalue\x00800\0oldvalue\x00400\0\0",
            b"1\0tpl\0property-set:memory\0name\0memory\0newvalue\x00800\0oldvalue\x00400\0\0",
        ])
    );
}

#[test]
fn property_set_to_none_shows_none() {
    let d = Daemon::start().with_template();

    let seen = Events::around(&d, || d.ok("admin.vm.property.Set+netvm", "tpl", b"")).until("property-set:netvm");

    assert_eq!(
        seen,
        frames(&[
            b"1\0tpl\0property-pre-set:netvm\0name\0netvm\0newvalue\0None\0oldvalue\0None\0\0",
            b"1\0tpl\0property-set:netvm\0name\0netvm\0newvalue\0None\0oldvalue\0None\0\0",
        ])
    );
}

#[test]
fn feature_set_fires_pre_set_and_set() {
    let d = Daemon::start().with_template();

    let seen = Events::around(&d, || d.ok("admin.vm.feature.Set+gui", "tpl", b"1")).until("domain-feature-set:gui");

    assert_eq!(
        seen,
        frames(&[
            b"1\0tpl\0domain-feature-pre-set:gui\0feature\0gui\0value\x001\0\0",
            b"1\0tpl\0domain-feature-set:gui\0feature\0gui\0value\x001\0\0",
        ])
    );
}

#[test]
fn feature_set_again_adds_the_old_value() {
    let d = Daemon::start().with_template();
    d.ok("admin.vm.feature.Set+gui", "tpl", b"1");

    let seen = Events::around(&d, || d.ok("admin.vm.feature.Set+gui", "tpl", b"")).until("domain-feature-set:gui");

    assert_eq!(
        seen,
        frames(&[
            b"1\0tpl\0domain-feature-pre-set:gui\0feature\0gui\0value\0\0oldvalue\x001\0\0",
            b"1\0tpl\0domain-feature-set:gui\0feature\0gui\0value\0\0oldvalue\x001\0\0",
        ])
    );
}

#[test]
fn feature_remove_fires_pre_delete_and_delete() {
    let d = Daemon::start().with_template();
    d.ok("admin.vm.feature.Set+gui", "tpl", b"1");

    let seen =
        Events::around(&d, || d.ok("admin.vm.feature.Remove+gui", "tpl", b"")).until("domain-feature-delete:gui");

    assert_eq!(
        seen,
        frames(&[
            b"1\0tpl\0domain-feature-pre-delete:gui\0feature\0gui\0\0",
            b"1\0tpl\0domain-feature-delete:gui\0feature\0gui\0\0",
        ])
    );
}

#[test]
fn tag_set_fires_tag_add() {
    let d = Daemon::start().with_template();

    let seen = Events::around(&d, || d.ok("admin.vm.tag.Set+backup", "tpl", b"")).until("domain-tag-add:backup");

    assert_eq!(seen, frames(&[b"1\0tpl\0domain-tag-add:backup\0tag\0backup\0\0"]));
}

#[test]
fn tag_set_of_present_tag_fires_nothing() {
    let d = Daemon::start().with_template();
    d.ok("admin.vm.tag.Set+backup", "tpl", b"");
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.tag.Set+backup", "tpl", b"");
    d.ok("admin.vm.tag.Set+marker", "tpl", b"");

    let seen = events.until("domain-tag-add:marker");

    assert_eq!(seen, frames(&[b"1\0tpl\0domain-tag-add:marker\0tag\0marker\0\0"]));
}

#[test]
fn tag_remove_fires_tag_delete() {
    let d = Daemon::start().with_template();
    d.ok("admin.vm.tag.Set+backup", "tpl", b"");

    let seen = Events::around(&d, || d.ok("admin.vm.tag.Remove+backup", "tpl", b"")).until("domain-tag-delete:backup");

    assert_eq!(seen, frames(&[b"1\0tpl\0domain-tag-delete:backup\0tag\0backup\0\0"]));
}

#[test]
fn remove_fires_pre_delete_and_delete_as_global_events() {
    let d = Daemon::start().with_template();

    let seen = Events::around(&d, || d.ok("admin.vm.Remove", "tpl", b"")).until("domain-delete");

    assert_eq!(seen, frames(&[b"1\0\0domain-pre-delete\0vm\0tpl\0\0", b"1\0\0domain-delete\0vm\0tpl\0\0"]));
}

#[test]
fn global_property_set_has_empty_subject() {
    let d = Daemon::start();

    let seen = Events::around(&d, || d.ok("admin.property.Set+default_qrexec_timeout", "dom0", b"90"))
        .until("property-set:default_qrexec_timeout");

    assert_eq!(
        seen,
        frames(&[
            b"1\0\0property-pre-set:default_qrexec_timeout\0name\0default_qrexec_timeout\0newvalue\x0090\0oldvalue\x0060\0\0",
            b"1\0\0property-set:default_qrexec_timeout\0name\0default_qrexec_timeout\0newvalue\x0090\0oldvalue\x0060\0\0",
        ])
    );
}

#[test]
fn firewall_set_fires_firewall_changed() {
    let d = Daemon::start().with_template();

    let seen = Events::around(&d, || d.ok("admin.vm.firewall.Set", "tpl", b"action=drop\n")).until("firewall-changed");

    assert_eq!(seen, frames(&[b"1\0tpl\0firewall-changed\0\0"]));
}

#[test]
fn firewall_reload_fires_firewall_changed() {
    let d = Daemon::start().with_template();

    let seen = Events::around(&d, || d.ok("admin.vm.firewall.Reload", "tpl", b"")).until("firewall-changed");

    assert_eq!(seen, frames(&[b"1\0tpl\0firewall-changed\0\0"]));
}

#[test]
fn firewall_set_refused_fires_nothing() {
    let d = Daemon::start().with_template();
    let mut events = Events::open(&d, "dom0");
    d.call("admin.vm.firewall.Set", "tpl", b"proto=tcp\n");
    d.ok("admin.vm.tag.Set+marker", "tpl", b"");

    let seen = events.until("domain-tag-add:marker");

    assert_eq!(seen, frames(&[b"1\0tpl\0domain-tag-add:marker\0tag\0marker\0\0"]));
}

#[test]
fn pool_add_fires_pool_add() {
    let d = Daemon::start();

    let seen = Events::around(&d, || d.ok("admin.pool.Add+file", "dom0", &pool1(&d))).until("pool-add");

    assert_eq!(seen, frames(&[b"1\0\0pool-add\0pool\0pool1\0\0"]));
}

#[test]
fn pool_remove_fires_pre_delete_and_delete() {
    let d = Daemon::start();
    d.ok("admin.pool.Add+file", "dom0", &pool1(&d));

    let seen = Events::around(&d, || d.ok("admin.pool.Remove+pool1", "dom0", b"")).until("pool-delete");

    assert_eq!(seen, frames(&[b"1\0\0pool-pre-delete\0pool\0pool1\0\0", b"1\0\0pool-delete\0pool\0pool1\0\0"]));
}

#[test]
fn volume_clear_fires_import_begin_and_end() {
    let d = Daemon::start().with_template();

    let seen =
        Events::around(&d, || d.ok("admin.vm.volume.Clear+private", "tpl", b"")).until("domain-volume-import-end");

    assert_eq!(
        seen,
        frames(&[
            b"1\0tpl\0domain-volume-import-begin\0volume\0private\0size\x002147483648\0\0",
            b"1\0tpl\0domain-volume-import-end\0volume\0private\0success\0True\0\0",
        ])
    );
}

#[test]
fn volume_import_fires_import_begin_and_end() {
    let d = Daemon::start().with_template();
    let mut events = Events::open(&d, "dom0");
    d.call_internal("internal.vm.volume.ImportBegin+private", "tpl", b"512");
    d.call_internal("internal.vm.volume.ImportEnd+private", "tpl", b"fail\nno data");

    let seen = events.until("domain-volume-import-end");

    assert_eq!(
        seen,
        frames(&[
            b"1\0tpl\0domain-volume-import-begin\0volume\0private\0size\x00512\0\0",
            b"1\0tpl\0domain-volume-import-end\0volume\0private\0success\0False\0\0",
        ])
    );
}

#[test]
fn volume_clone_to_fires_import_volume() {
    let d = Daemon::start().with_template();
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=copy label=red");
    let token = d.ok("admin.vm.volume.CloneFrom+private", "tpl", b"");

    let seen = Events::around(&d, || d.ok("admin.vm.volume.CloneTo+private", "copy", token.as_bytes()))
        .until("domain-import-volume");

    assert_eq!(seen, frames(&[b"1\0copy\0domain-import-volume\0name\0private\0source\0vm-templates/tpl/private\0\0"]));
}

#[test]
fn stream_for_a_qube_sees_only_that_qubes_events() {
    let d = Daemon::start().with_template();
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=other label=red");
    let mut events = Events::open(&d, "tpl");
    d.ok("admin.vm.property.Set+memory", "other", b"700");
    d.ok("admin.property.Set+default_qrexec_timeout", "dom0", b"90");
    d.ok("admin.vm.tag.Set+marker", "other", b"");
    d.ok("admin.vm.tag.Set+marker", "tpl", b"");

    let seen = events.until("domain-tag-add:marker");

    assert_eq!(seen, frames(&[b"1\0tpl\0domain-tag-add:marker\0tag\0marker\0\0"]));
}

#[test]
fn stream_for_dom0_sees_qubes_created_after_it_opened() {
    let d = Daemon::start();
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=tpl label=red");
    d.ok("admin.vm.tag.Set+marker", "tpl", b"");

    let seen = events.until("domain-tag-add:marker");

    assert_eq!(
        seen,
        frames(&[
            b"1\0\0domain-add\0vm\0tpl\0\0",
            b"1\0tpl\0domain-tag-add:created-by-dom0\0tag\0created-by-dom0\0\0",
            b"1\0tpl\0domain-create-on-disk\0\0",
            b"1\0tpl\0domain-tag-add:marker\0tag\0marker\0\0",
        ])
    );
}

#[test]
fn every_listener_receives_the_same_frames() {
    let d = Daemon::start().with_template();
    let mut first = Events::open(&d, "dom0");
    let mut second = Events::open(&d, "dom0");
    d.ok("admin.vm.tag.Set+marker", "tpl", b"");

    let seen = (first.until("domain-tag-add:marker"), second.until("domain-tag-add:marker"));

    let expected = frames(&[b"1\0tpl\0domain-tag-add:marker\0tag\0marker\0\0"]);
    assert_eq!(seen, (expected.clone(), expected));
}
