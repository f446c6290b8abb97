//! Black-box tests of the qubesd wire protocol over the daemon's real admin socket: framing, the generic
//! checks every method goes through, destination resolution, and the discovery calls
//! (`admin.vmclass.List`, `admin.vm.List`, `admin.vm.CurrentState`). Every expectation is the exact
//! reply, byte for byte, as upstream qubesd sends it.

mod support;

use support::reply::{call, exc, ok, reply, Reply};
use support::{raw, Daemon};

/// One request written verbatim (header and payload), as a misbehaving client would.
fn send(d: &Daemon, request: &[u8]) -> Reply {
    reply(raw(&d.admin, request, b""))
}

fn create_template(d: &Daemon, name: &str) {
    d.ok("admin.vm.Create.TemplateVM", "dom0", format!("name={name} label=black").as_bytes());
}

fn create_appvm(d: &Daemon, name: &str, template: &str) {
    d.ok(&format!("admin.vm.Create.AppVM+{template}"), "dom0", format!("name={name} label=red").as_bytes());
}

const DOM0_LINE: &str = "dom0 class=AdminVM state=Running uuid=00000000-0000-0000-0000-000000000000\n";

// ---------------------------------------------------------------------------------------------------------
// Framing: anything malformed is dropped without a reply.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn request_without_nul_is_dropped_with_empty_reply() {
    let d = Daemon::start();

    let r = send(&d, b"admin.vm.List dom0 name dom0");

    assert_eq!(r, reply(b""));
}

#[test]
fn header_with_only_three_fields_is_dropped_with_empty_reply() {
    let d = Daemon::start();

    let r = send(&d, b"admin.vm.List dom0 name\0");

    assert_eq!(r, reply(b""));
}

#[test]
fn header_with_only_the_method_is_dropped_with_empty_reply() {
    let d = Daemon::start();

    let r = send(&d, b"admin.vm.List\0");

    assert_eq!(r, reply(b""));
}

#[test]
fn empty_request_is_dropped_with_empty_reply() {
    let d = Daemon::start();

    let r = send(&d, b"");

    assert_eq!(r, reply(b""));
}

#[test]
fn destination_type_uuid_is_dropped_with_empty_reply() {
    let d = Daemon::start();

    let r = send(&d, b"admin.vm.List dom0 uuid 00000000-0000-0000-0000-000000000000\0");

    assert_eq!(r, reply(b""));
}

#[test]
fn keyword_other_than_adminvm_is_dropped_with_empty_reply() {
    let d = Daemon::start();

    let r = send(&d, b"admin.vm.List dom0 keyword default\0");

    assert_eq!(r, reply(b""));
}

#[test]
fn keyword_adminvm_addresses_dom0() {
    let d = Daemon::start();

    let r = send(&d, b"admin.vm.List dom0 keyword adminvm\0");

    assert_eq!(r, ok(DOM0_LINE));
}

#[test]
fn non_ascii_method_is_dropped_with_empty_reply() {
    let d = Daemon::start();

    let r = send(&d, "admin.vm.List\u{e9} dom0 name dom0\0".as_bytes());

    assert_eq!(r, reply(b""));
}

#[test]
fn non_ascii_argument_is_dropped_with_empty_reply() {
    let d = Daemon::start();

    let r = send(&d, "admin.vm.property.Get+n\u{e9}tvm dom0 name dom0\0".as_bytes());

    assert_eq!(r, reply(b""));
}

#[test]
fn non_ascii_destination_is_dropped_with_empty_reply() {
    let d = Daemon::start();

    let r = send(&d, "admin.vm.List dom0 name d\u{f6}m0\0".as_bytes());

    assert_eq!(r, reply(b""));
}

#[test]
fn request_of_exactly_64_kib_is_served() {
    let d = Daemon::start();
    let header = b"admin.vm.List dom0 name dom0\0";
    let mut request = header.to_vec();
    request.resize(65536, b'x');

    let r = send(&d, &request);

    assert_eq!(r, exc("ProtocolError", "unexpected payload"));
}

#[test]
fn request_over_64_kib_is_dropped_with_empty_reply() {
    let d = Daemon::start();
    let header = b"admin.vm.List dom0 name dom0\0";
    let mut request = header.to_vec();
    request.resize(65537, b'x');

    let r = send(&d, &request);

    assert_eq!(r, reply(b""));
}

#[test]
fn payload_after_the_first_nul_reaches_the_handler_whole() {
    let d = Daemon::start().with_template();

    let r = call(&d, "admin.vm.feature.Set+x", "tpl", b"a\0b");

    assert_eq!(r, exc("ProtocolError", "x value contains illegal characters"));
}

#[test]
fn daemon_keeps_serving_after_a_dropped_request() {
    let d = Daemon::start();
    send(&d, b"no nul at all");

    let r = call(&d, "admin.vm.List", "dom0", b"");

    assert_eq!(r, ok(DOM0_LINE));
}

// ---------------------------------------------------------------------------------------------------------
// Method lookup and the generic checks: payload, then argument, then destination.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn unknown_method_is_protocol_error_naming_it() {
    let d = Daemon::start();

    let r = call(&d, "x", "dom0", b"");

    assert_eq!(r, exc("ProtocolError", "no such method: 'x'"));
}

#[test]
fn unknown_method_error_names_the_method_without_its_argument() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.Nope+arg", "dom0", b"payload");

    assert_eq!(r, exc("ProtocolError", "no such method: 'admin.vm.Nope'"));
}

#[test]
fn method_names_are_case_sensitive() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.list", "dom0", b"");

    assert_eq!(r, exc("ProtocolError", "no such method: 'admin.vm.list'"));
}

#[test]
fn seed_only_method_is_unknown() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.property.HelpRst+netvm", "dom0", b"");

    assert_eq!(r, exc("ProtocolError", "no such method: 'admin.vm.property.HelpRst'"));
}

#[test]
fn unknown_destination_is_reported_before_unknown_method() {
    let d = Daemon::start();

    let r = call(&d, "x", "nosuch", b"");

    assert_eq!(r, exc("QubesVMNotFoundError", "No such domain: 'nosuch'"));
}

#[test]
fn unknown_source_is_vm_not_found() {
    let d = Daemon::start();

    let r = send(&d, b"admin.vm.List ghost name dom0\0");

    assert_eq!(r, exc("QubesVMNotFoundError", "No such domain: 'ghost'"));
}

#[test]
fn unexpected_payload_is_reported_before_unexpected_argument() {
    let d = Daemon::start();

    let r = call(&d, "admin.vmclass.List+x", "dom0", b"p");

    assert_eq!(r, exc("ProtocolError", "unexpected payload"));
}

#[test]
fn unexpected_payload_is_reported_before_wrong_destination() {
    let d = Daemon::start().with_template();

    let r = call(&d, "admin.vmclass.List", "tpl", b"p");

    assert_eq!(r, exc("ProtocolError", "unexpected payload"));
}

#[test]
fn unexpected_argument_is_reported_before_wrong_destination() {
    let d = Daemon::start().with_template();

    let r = call(&d, "admin.vmclass.List+x", "tpl", b"");

    assert_eq!(r, exc("ProtocolError", "unexpected argument"));
}

#[test]
fn missing_payload_is_reported_before_missing_argument() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Create", "dom0", b"");

    assert_eq!(r, exc("ProtocolError", "expected payload"));
}

#[test]
fn missing_argument_is_protocol_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.property.Get", "dom0", b"");

    assert_eq!(r, exc("ProtocolError", "expected an argument"));
}

#[test]
fn empty_argument_after_plus_counts_as_missing() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.property.Get+", "dom0", b"");

    assert_eq!(r, exc("ProtocolError", "expected an argument"));
}

#[test]
fn missing_argument_is_reported_before_wrong_destination() {
    let d = Daemon::start().with_template();

    let r = call(&d, "admin.property.Get", "tpl", b"");

    assert_eq!(r, exc("ProtocolError", "expected an argument"));
}

#[test]
fn global_method_to_a_qube_expects_adminvm_destination() {
    let d = Daemon::start().with_template();

    let r = call(&d, "admin.vmclass.List", "tpl", b"");

    assert_eq!(r, exc("ProtocolError", "expected destination to be AdminVM"));
}

#[test]
fn qube_only_method_to_dom0_expects_non_adminvm_destination() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.notes.Get", "dom0", b"");

    assert_eq!(r, exc("ProtocolError", "expected destination to not be AdminVM"));
}

#[test]
fn generic_checks_run_before_the_property_is_looked_up() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.property.Get+nosuch", "dom0", b"payload");

    assert_eq!(r, exc("ProtocolError", "unexpected payload"));
}

#[test]
fn stray_payload_on_a_write_call_changes_nothing() {
    let d = Daemon::start().with_template();
    d.ok("admin.vm.property.Set+memory", "tpl", b"512");

    call(&d, "admin.vm.property.Reset+memory", "tpl", b"x");
    let r = call(&d, "admin.vm.property.Get+memory", "tpl", b"");

    assert_eq!(r, ok("default=False type=int 512"));
}

// ---------------------------------------------------------------------------------------------------------
// Destination names and `uuid:` tokens.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn unknown_destination_is_vm_not_found() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", "nosuch", b"");

    assert_eq!(r, exc("QubesVMNotFoundError", "No such domain: 'nosuch'"));
}

#[test]
fn destination_with_illegal_characters_is_value_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", "a b", b"");

    assert_eq!(r, exc("QubesValueError", "VM name contains illegal characters"));
}

#[test]
fn empty_destination_is_value_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", "", b"");

    assert_eq!(r, exc("QubesValueError", "VM name contains illegal characters"));
}

#[test]
fn destination_starting_with_digit_is_value_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", "1abc", b"");

    assert_eq!(r, exc("QubesValueError", "VM name cannot start with hyphen, underscore, dot or numbers"));
}

#[test]
fn destination_of_32_characters_is_value_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", &"a".repeat(32), b"");

    assert_eq!(r, exc("QubesValueError", "VM name must be shorter than 32 characters"));
}

#[test]
fn destination_none_is_value_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", "none", b"");

    assert_eq!(r, exc("QubesValueError", "VM name cannot be 'none' nor 'default'"));
}

#[test]
fn destination_domain_0_is_value_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", "Domain-0", b"");

    assert_eq!(r, exc("QubesValueError", "VM name cannot be 'Domain-0'"));
}

#[test]
fn destination_ending_in_dm_is_value_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", "sys-dm", b"");

    assert_eq!(r, exc("QubesValueError", "VM name cannot end with -dm"));
}

#[test]
fn invalid_destination_name_is_reported_before_unknown_method() {
    let d = Daemon::start();

    let r = call(&d, "x", "1abc", b"");

    assert_eq!(r, exc("QubesValueError", "VM name cannot start with hyphen, underscore, dot or numbers"));
}

#[test]
fn uuid_of_dom0_addresses_dom0() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", "uuid:00000000-0000-0000-0000-000000000000", b"");

    assert_eq!(r, ok(DOM0_LINE));
}

#[test]
fn uuid_of_a_qube_addresses_that_qube() {
    let d = Daemon::start().with_template();
    let uuid = d.uuid("tpl");

    let r = call(&d, "admin.vm.List", &format!("uuid:{uuid}"), b"");

    assert_eq!(r, ok(&format!("tpl class=TemplateVM state=Halted uuid={uuid}\n")));
}

#[test]
fn uuid_one_character_short_is_invalid_uuid_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", "uuid:00000000-0000-0000-0000-00000000000", b"");

    assert_eq!(r, exc("QubesVMInvalidUUIDError", "VM UUID is not valid: '00000000-0000-0000-0000-00000000000'"));
}

#[test]
fn uuid_one_character_long_is_invalid_uuid_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", "uuid:00000000-0000-0000-0000-0000000000000", b"");

    assert_eq!(r, exc("QubesVMInvalidUUIDError", "VM UUID is not valid: '00000000-0000-0000-0000-0000000000000'"));
}

#[test]
fn uuid_in_uppercase_is_invalid_uuid_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", "uuid:ABCDEF00-0000-0000-0000-000000000000", b"");

    assert_eq!(r, exc("QubesVMInvalidUUIDError", "VM UUID is not valid: 'ABCDEF00-0000-0000-0000-000000000000'"));
}

#[test]
fn uuid_without_dashes_is_invalid_uuid_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", "uuid:000000000000000000000000000000000000", b"");

    assert_eq!(r, exc("QubesVMInvalidUUIDError", "VM UUID is not valid: '000000000000000000000000000000000000'"));
}

#[test]
fn empty_uuid_is_invalid_uuid_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", "uuid:", b"");

    assert_eq!(r, exc("QubesVMInvalidUUIDError", "VM UUID is not valid: ''"));
}

#[test]
fn well_formed_unknown_uuid_is_vm_not_found_naming_the_token() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", "uuid:12345678-1234-1234-1234-123456789abc", b"");

    assert_eq!(r, exc("QubesVMNotFoundError", "No such domain: 'uuid:12345678-1234-1234-1234-123456789abc'"));
}

#[test]
fn uuid_destination_passes_the_adminvm_check_for_global_methods() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Index+red", "uuid:00000000-0000-0000-0000-000000000000", b"");

    assert_eq!(r, ok("1"));
}

// ---------------------------------------------------------------------------------------------------------
// admin.vmclass.List, admin.vm.List, admin.vm.CurrentState
// ---------------------------------------------------------------------------------------------------------

#[test]
fn vmclass_list_names_every_class_one_per_line() {
    let d = Daemon::start();

    let r = call(&d, "admin.vmclass.List", "dom0", b"");

    assert_eq!(r, ok("AdminVM\nAppVM\nDispVM\nRemoteVM\nStandaloneVM\nTemplateVM\n"));
}

#[test]
fn vm_list_of_fresh_install_is_dom0_only() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List", "dom0", b"");

    assert_eq!(r, ok(DOM0_LINE));
}

#[test]
fn vm_list_to_dom0_lists_dom0_first_then_the_qubes_by_name() {
    let d = Daemon::start();
    create_template(&d, "zulu");
    create_appvm(&d, "alpha", "zulu");
    create_appvm(&d, "mike", "zulu");
    let (zulu, alpha, mike) = (d.uuid("zulu"), d.uuid("alpha"), d.uuid("mike"));

    let r = call(&d, "admin.vm.List", "dom0", b"");

    assert_eq!(
        r,
        ok(&format!(
            "{DOM0_LINE}alpha class=AppVM state=Halted uuid={alpha}\nmike class=AppVM state=Halted uuid={mike}\n\
             zulu class=TemplateVM state=Halted uuid={zulu}\n"
        ))
    );
}

#[test]
fn vm_list_to_a_qube_lists_only_that_qube() {
    let d = Daemon::start().with_appvm();
    let uuid = d.uuid("work");

    let r = call(&d, "admin.vm.List", "work", b"");

    assert_eq!(r, ok(&format!("work class=AppVM state=Halted uuid={uuid}\n")));
}

#[test]
fn vm_list_with_argument_is_protocol_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.List+x", "dom0", b"");

    assert_eq!(r, exc("ProtocolError", "unexpected argument"));
}

#[test]
fn current_state_of_halted_qube_is_all_zero() {
    let d = Daemon::start().with_template();

    let r = call(&d, "admin.vm.CurrentState", "tpl", b"");

    assert_eq!(r, ok("mem=0 mem_static_max=0 cputime=0 power_state=Halted"));
}

#[test]
fn current_state_of_dom0_is_running() {
    let d = Daemon::start();
    let mem = d.ok("admin.property.Get+maxmem", "dom0", b"");
    let kib = mem.rsplit(' ').next().unwrap_or_default().parse::<u64>().unwrap_or_default() * 1024;

    let r = call(&d, "admin.vm.CurrentState", "dom0", b"");

    assert_eq!(r, ok(&format!("mem={kib} mem_static_max={kib} cputime=0 power_state=Running")));
}

/// Whether the daemon closed `s` within `limit` (a read returns end of file).
fn closed_within(s: &mut std::os::unix::net::UnixStream, limit: std::time::Duration) -> bool {
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut byte = [0u8; 1];
    matches!(std::io::Read::read(s, &mut byte), Ok(0))
}

#[test]
fn a_connection_that_does_not_finish_its_request_in_time_is_closed() {
    let d = Daemon::start_with_args(&["--request-timeout", "1"]);
    let mut silent = std::os::unix::net::UnixStream::connect(&d.admin).expect("connect");
    let mut halfway = std::os::unix::net::UnixStream::connect(&d.admin).expect("connect");
    std::io::Write::write_all(&mut halfway, b"admin.vm.List dom0 na").expect("send");

    assert!(closed_within(&mut silent, std::time::Duration::from_secs(5)), "an idle connection stayed open");
    assert!(closed_within(&mut halfway, std::time::Duration::from_secs(5)), "an unfinished request stayed open");
    assert!(d.ok("admin.vm.List", "dom0", b"").starts_with("dom0 "));
}

#[test]
fn an_event_stream_outlives_the_request_timeout() {
    let d = Daemon::start_with_args(&["--request-timeout", "1"]);
    let mut events = std::os::unix::net::UnixStream::connect(&d.admin).expect("connect");
    std::io::Write::write_all(&mut events, b"admin.Events dom0 name dom0\0").expect("send");
    events.shutdown(std::net::Shutdown::Write).expect("half-close");
    let mut first = [0u8; 64];
    let n = std::io::Read::read(&mut events, &mut first).expect("connection-established");
    assert!(first[..n].starts_with(b"1\0"), "{:?}", String::from_utf8_lossy(&first[..n]));

    assert!(!closed_within(&mut events, std::time::Duration::from_secs(3)), "the stream was closed");
}
