//! Black-box tests of the device calls that need no device backend: `admin.vm.device.denied.*`, the
//! interfaces a qube may never be given, over the daemon's real admin socket. Expectations are qubesd's
//! replies byte for byte.

mod support;

use support::events::{frames, Events};
use support::reply::{call, exc, ok};
use support::Daemon;

const BAD_CODE: &str = "Interface code list should be in the form chhhhhhchhhhhh...,where c is one of \"b\", \"u\", \
                        \"m\", \"p\", \"*\" and h is a hexdigit or \"*\".";

#[test]
fn denied_list_of_a_fresh_qube_is_empty() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.device.denied.List", "work", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn denied_add_keeps_codes_sorted_and_list_has_no_trailing_newline() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.device.denied.Add", "work", b"u123456b******");
    d.ok("admin.vm.device.denied.Add", "work", b"p0e****u123456");

    let r = call(&d, "admin.vm.device.denied.List", "work", b"");

    assert_eq!(r, ok("b******\np0e****\nu123456"));
}

#[test]
fn denied_add_is_the_devices_denied_property() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.device.denied.Add", "work", b"u123456b******");

    let r = call(&d, "admin.vm.property.Get+devices_denied", "work", b"");

    assert_eq!(r, ok("default=False type=str b******u123456"));
}

#[test]
fn denied_calls_work_on_dom0() {
    let d = Daemon::start();
    d.ok("admin.vm.device.denied.Add", "dom0", b"m******");

    let r = call(&d, "admin.vm.device.denied.List", "dom0", b"");

    assert_eq!(r, ok("m******"));
}

#[test]
fn denied_add_fires_property_set() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.device.denied.Add", "work", b"b******");
    let mut events = Events::open(&d, "work");

    d.ok("admin.vm.device.denied.Add", "work", b"u123456");

    assert_eq!(
        events.until("property-set:devices_denied"),
        frames(&[
            b"1\0work\0property-pre-set:devices_denied\0name\0devices_denied\0newvalue\0b******u123456\0oldvalue\0b******\0\0",
            b"1\0work\0property-set:devices_denied\0name\0devices_denied\0newvalue\0b******u123456\0oldvalue\0b******\0\0",
        ])
    );
}

/// Nothing new to deny stores nothing: the property stays at its default (upstream saves nothing either).
#[test]
fn denied_add_of_nothing_new_leaves_the_property_at_its_default() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.device.denied.Add", "work", b"");

    let r = call(&d, "admin.vm.property.Get+devices_denied", "work", b"");

    assert_eq!(r, ok("default=True type=str "));
}

#[test]
fn denied_add_with_a_code_twice_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.device.denied.Add", "work", b"u123456u123456");

    assert_eq!(r, exc("ProtocolError", "Duplicated device interfaces in payload."));
}

#[test]
fn denied_add_of_a_partial_code_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.device.denied.Add", "work", b"u12345");

    assert_eq!(r, exc("QubesValueError", "Invalid length of interfaces='u12345' (is 6, expected multiple of 7)"));
}

#[test]
fn denied_add_of_a_bad_code_is_property_value_error_and_changes_nothing() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.device.denied.Add", "work", b"b******");

    let r = call(&d, "admin.vm.device.denied.Add", "work", b"xABCDEF");

    assert_eq!(r, exc("QubesPropertyValueError", BAD_CODE));
    assert_eq!(call(&d, "admin.vm.device.denied.List", "work", b""), ok("b******"));
}

#[test]
fn denied_add_of_non_ascii_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.device.denied.Add", "work", "u12345é".as_bytes());

    assert_eq!(r, exc("ProtocolError", "Device interface contains non-ASCII characters"));
}

#[test]
fn denied_remove_drops_listed_codes_and_ignores_absent_ones() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.device.denied.Add", "work", b"u123456b******p0e****");
    d.ok("admin.vm.device.denied.Remove", "work", b"b******m******");

    let r = call(&d, "admin.vm.device.denied.List", "work", b"");

    assert_eq!(r, ok("p0e****\nu123456"));
}

#[test]
fn denied_remove_all_empties_the_list() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.device.denied.Add", "work", b"u123456b******");
    d.ok("admin.vm.device.denied.Remove", "work", b"all");

    let r = call(&d, "admin.vm.property.Get+devices_denied", "work", b"");

    assert_eq!(r, ok("default=False type=str "));
}

#[test]
fn denied_remove_of_absent_codes_leaves_the_property_at_its_default() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.device.denied.Remove", "work", b"b******");

    let r = call(&d, "admin.vm.property.Get+devices_denied", "work", b"");

    assert_eq!(r, ok("default=True type=str "));
}

#[test]
fn denied_remove_with_a_code_twice_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.device.denied.Remove", "work", b"b******b******");

    assert_eq!(r, exc("ProtocolError", "Duplicated device interfaces in payload."));
}

#[test]
fn denied_remove_of_a_partial_code_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.device.denied.Remove", "work", b"b*****");

    assert_eq!(r, exc("QubesValueError", "Invalid length of interfaces='b*****' (is 6, expected multiple of 7)"));
}

#[test]
fn denied_list_with_payload_or_argument_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let got = [
        call(&d, "admin.vm.device.denied.List", "work", b"x"),
        call(&d, "admin.vm.device.denied.List+x", "work", b""),
        call(&d, "admin.vm.device.denied.Add+x", "work", b""),
    ];

    assert_eq!(
        got,
        [
            exc("ProtocolError", "unexpected payload"),
            exc("ProtocolError", "unexpected argument"),
            exc("ProtocolError", "unexpected argument"),
        ]
    );
}

#[test]
fn devices_denied_property_set_checks_length_then_codes() {
    let d = Daemon::start().with_appvm();

    let got = [
        call(&d, "admin.vm.property.Set+devices_denied", "work", b"u12345"),
        call(&d, "admin.vm.property.Set+devices_denied", "work", b"x123456"),
    ];

    assert_eq!(
        got,
        [
            exc("QubesValueError", "Invalid length of interfaces='u12345' (is 6, expected multiple of 7)"),
            exc("QubesPropertyValueError", BAD_CODE),
        ]
    );
}
