//! Black-box tests of the object model as the Admin API shows it, over the daemon's real admin socket:
//! creating and removing qubes, qube and global properties, labels, features and tags. Every
//! expectation is the exact reply, byte for byte, as upstream qubesd sends it (where qubesd would drop
//! the connection on an internal error, the daemon's documented substitute is asserted instead).

mod support;

use support::reply::{call, exc, ok, Reply};
use support::Daemon;

/// As `Daemon::with_appvm`, with `tpl` as the global default template.
fn setup_with_default_template() -> Daemon {
    let d = Daemon::start().with_appvm();
    d.ok("admin.property.Set+default_template", "dom0", b"tpl");
    d
}

fn vm_list(d: &Daemon) -> Reply {
    call(d, "admin.vm.List", "dom0", b"")
}

const SAFE_SET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
const HEX_DIGITS: &str = "0123456789abcdefABCDEF";
const PROTECTED: &str = "changing this feature is prohibited by qubes.ext.admin.AdminExtension";

// =========================================================================================================
// admin.vm.Create.<Class> / admin.vm.CreateInPool.<Class>
// =========================================================================================================

#[test]
fn create_appvm_with_template_argument_replies_empty() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=other label=green");

    assert_eq!(r, ok(""));
}

#[test]
fn created_appvm_is_listed_with_its_class() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=other label=green");
    let uuid = d.uuid("other");

    let r = call(&d, "admin.vm.List", "other", b"");

    assert_eq!(r, ok(&format!("other class=AppVM state=Halted uuid={uuid}\n")));
}

#[test]
fn created_appvm_has_the_requested_label() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=other label=green");

    let r = call(&d, "admin.vm.property.Get+label", "other", b"");

    assert_eq!(r, ok("default=False type=label green"));
}

#[test]
fn created_appvm_has_the_requested_template() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Get+template", "work", b"");

    assert_eq!(r, ok("default=False type=vm tpl"));
}

#[test]
fn appvm_without_template_argument_uses_the_default_template() {
    let d = setup_with_default_template();
    d.ok("admin.vm.Create.AppVM", "dom0", b"name=other label=red");

    let r = call(&d, "admin.vm.property.Get+template", "other", b"");

    assert_eq!(r, ok("default=False type=vm tpl"));
}

#[test]
fn standalone_vm_is_created_without_template() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.StandaloneVM", "dom0", b"name=solo label=blue");
    let uuid = d.uuid("solo");

    let r = call(&d, "admin.vm.List", "solo", b"");

    assert_eq!(r, ok(&format!("solo class=StandaloneVM state=Halted uuid={uuid}\n")));
}

#[test]
fn create_without_name_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"label=red");

    assert_eq!(r, exc("ProtocolError", "Creation requested without key: name"));
}

#[test]
fn create_without_label_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=other");

    assert_eq!(r, exc("ProtocolError", "Creation requested without key: label"));
}

#[test]
fn create_with_name_twice_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=a1 name=a2 label=red");

    assert_eq!(r, exc("ProtocolError", "Options must be unique"));
}

#[test]
fn create_with_label_twice_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=a1 label=red label=red");

    assert_eq!(r, exc("ProtocolError", "Options must be unique"));
}

#[test]
fn create_with_unknown_key_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=a1 label=red what=is");

    assert_eq!(r, exc("ProtocolError", "Options does not match: name, label, pool, pool:"));
}

#[test]
fn create_with_pool_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=a1 label=red pool=varlibqubes");

    assert_eq!(r, exc("ProtocolError", "Pool option specified but 'allow_pool' is False"));
}

#[test]
fn create_with_per_volume_pool_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=a1 label=red pool:private=varlibqubes");

    assert_eq!(r, exc("ProtocolError", "Pool option specified but 'allow_pool' is False"));
}

#[test]
fn create_with_non_ascii_payload_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", "name=a1 label=r\u{e9}d".as_bytes());

    assert_eq!(r, exc("ProtocolError", "Parameters contains non-ASCII characters"));
}

/// qubesd drops the connection here (unpacking fails); a ProtocolError is the recommended substitute.
#[test]
fn create_with_item_without_equals_sign_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=a1 label=red extra");

    assert_eq!(r, exc("ProtocolError", "Invalid parameter (expected key=value)"));
}

#[test]
fn create_without_payload_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"");

    assert_eq!(r, exc("ProtocolError", "expected payload"));
}

#[test]
fn create_name_with_illegal_characters_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=test-### label=red");

    assert_eq!(r, exc("QubesValueError", "VM name contains illegal characters"));
}

#[test]
fn create_name_starting_with_hyphen_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=--helpVM label=red");

    assert_eq!(r, exc("QubesValueError", "VM name cannot start with hyphen, underscore, dot or numbers"));
}

#[test]
fn create_name_starting_with_digit_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=1stVM label=red");

    assert_eq!(r, exc("QubesValueError", "VM name cannot start with hyphen, underscore, dot or numbers"));
}

#[test]
fn create_name_of_32_characters_is_value_error() {
    let d = Daemon::start().with_appvm();
    let payload = format!("name={} label=red", "a".repeat(32));

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", payload.as_bytes());

    assert_eq!(r, exc("QubesValueError", "VM name must be shorter than 32 characters"));
}

#[test]
fn create_name_of_31_characters_is_accepted() {
    let d = Daemon::start().with_appvm();
    let payload = format!("name={} label=red", "a".repeat(31));

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", payload.as_bytes());

    assert_eq!(r, ok(""));
}

#[test]
fn create_name_default_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=default label=red");

    assert_eq!(r, exc("QubesValueError", "VM name cannot be 'none' nor 'default'"));
}

#[test]
fn create_name_ending_in_dm_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=sys-dm label=red");

    assert_eq!(r, exc("QubesValueError", "VM name cannot end with -dm"));
}

#[test]
fn create_empty_name_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name= label=red");

    assert_eq!(r, exc("QubesValueError", "VM name contains illegal characters"));
}

#[test]
fn create_label_with_path_characters_is_invalid_label_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=a1 label=../x");

    assert_eq!(r, exc("QubesInvalidLabelError", &format!("Label must be in safe set: {SAFE_SET}")));
}

#[test]
fn create_label_of_digits_is_invalid_label_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=a1 label=01");

    assert_eq!(r, exc("QubesInvalidLabelError", "Label must not be a digit"));
}

#[test]
fn create_empty_label_is_invalid_label_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=a1 label=");

    assert_eq!(r, exc("QubesInvalidLabelError", "Label name must be set"));
}

/// qubesd (unlike its spec) drops an unknown label while parsing and then misses the key.
#[test]
fn create_with_unknown_label_reports_label_missing() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=a1 label=nosuch");

    assert_eq!(r, exc("ProtocolError", "Creation requested without key: label"));
}

#[test]
fn create_with_label_given_as_label_n_reports_label_missing() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=a1 label=label-1");

    assert_eq!(r, exc("ProtocolError", "Creation requested without key: label"));
}

#[test]
fn create_with_unknown_label_is_reported_before_duplicate_name() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=work label=nosuch");

    assert_eq!(r, exc("ProtocolError", "Creation requested without key: label"));
}

#[test]
fn create_with_existing_name_is_already_exists_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=work label=red");

    assert_eq!(r, exc("QubesVMAlreadyExistsError", "Qube already exists: work"));
}

#[test]
fn create_with_existing_name_of_another_class_is_already_exists_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.StandaloneVM", "dom0", b"name=tpl label=red");

    assert_eq!(r, exc("QubesVMAlreadyExistsError", "Qube already exists: tpl"));
}

#[test]
fn duplicate_name_is_reported_before_missing_template() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+nosuch", "dom0", b"name=work label=red");

    assert_eq!(r, exc("QubesVMAlreadyExistsError", "Qube already exists: work"));
}

#[test]
fn create_with_missing_template_is_vm_not_found() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+nosuch", "dom0", b"name=a1 label=red");

    assert_eq!(r, exc("QubesVMNotFoundError", "No such domain: 'nosuch'"));
}

#[test]
fn create_appvm_without_any_template_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM", "dom0", b"name=a1 label=red");

    assert_eq!(r, exc("QubesValueError", "Template for the qube not specified, nor default template set."));
}

#[test]
fn create_appvm_after_default_template_was_cleared_is_value_error() {
    let d = setup_with_default_template();
    d.ok("admin.property.Set+default_template", "dom0", b"");

    let r = call(&d, "admin.vm.Create.AppVM", "dom0", b"name=a1 label=red");

    assert_eq!(r, exc("QubesValueError", "Template for the qube not specified, nor default template set."));
}

#[test]
fn create_dispvm_without_default_dispvm_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.DispVM", "dom0", b"name=a1 label=red");

    assert_eq!(r, exc("QubesValueError", "Template for the qube not specified, nor default template set."));
}

#[test]
fn create_dispvm_from_qube_not_meant_for_disposables_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.DispVM+work", "dom0", b"name=a1 label=red");

    assert_eq!(
        r,
        exc("QubesValueError", "template for disposable (work) needs to be an AppVM with template_for_dispvms=True")
    );
}

#[test]
fn create_appvm_based_on_an_appvm_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+work", "dom0", b"name=a1 label=red");

    assert_eq!(
        r,
        exc("QubesPropertyValueError", "wrong VM class: domains['work'] is of type AppVM and not TemplateVM")
    );
}

#[test]
fn template_argument_for_template_vm_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.TemplateVM+tpl", "dom0", b"name=a1 label=red");

    assert_eq!(r, exc("ProtocolError", "TemplateVM cannot be based on template"));
}

#[test]
fn template_argument_for_standalone_vm_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.StandaloneVM+tpl", "dom0", b"name=a1 label=red");

    assert_eq!(r, exc("ProtocolError", "StandaloneVM cannot be based on template"));
}

#[test]
fn create_to_a_qube_destination_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "work", b"name=a1 label=red");

    assert_eq!(r, exc("ProtocolError", "expected destination to be AdminVM"));
}

#[test]
fn create_of_unknown_class_is_no_such_method() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Create.Nope", "dom0", b"name=a1 label=red");

    assert_eq!(r, exc("ProtocolError", "no such method: 'admin.vm.Create.Nope'"));
}

#[test]
fn new_qube_is_tagged_created_by_dom0() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.tag.Get+created-by-dom0", "work", b"");

    assert_eq!(r, ok("1"));
}

#[test]
fn failed_create_leaves_the_qube_list_unchanged() {
    let d = Daemon::start().with_appvm();
    let before = vm_list(&d);

    call(&d, "admin.vm.Create.AppVM+nosuch", "dom0", b"name=a1 label=red");

    assert_eq!(vm_list(&d), before);
}

#[test]
fn create_in_pool_with_pool_replies_empty() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.CreateInPool.AppVM+tpl", "dom0", b"name=a1 label=red pool=varlibqubes");

    assert_eq!(r, ok(""));
}

#[test]
fn create_in_pool_with_per_volume_pool_replies_empty() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.CreateInPool.AppVM+tpl", "dom0", b"name=a1 label=red pool:private=varlibqubes");

    assert_eq!(r, ok(""));
}

#[test]
fn create_in_pool_with_both_pool_forms_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(
        &d,
        "admin.vm.CreateInPool.AppVM+tpl",
        "dom0",
        b"name=a1 label=red pool=varlibqubes pool:private=varlibqubes",
    );

    assert_eq!(r, exc("ProtocolError", "Conflicting options specified: 'pool=', 'pool:volume='"));
}

#[test]
fn create_in_pool_with_pool_twice_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.CreateInPool.AppVM+tpl", "dom0", b"name=a1 label=red pool=varlibqubes pool=x");

    assert_eq!(r, exc("ProtocolError", "Option 'pool' must be unique"));
}

#[test]
fn create_in_pool_with_volume_pool_twice_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(
        &d,
        "admin.vm.CreateInPool.AppVM+tpl",
        "dom0",
        b"name=a1 label=red pool:private=varlibqubes pool:private=varlibqubes",
    );

    assert_eq!(r, exc("ProtocolError", "Option 'pool:private' must be unique"));
}

#[test]
fn create_in_pool_for_unknown_volume_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.CreateInPool.AppVM+tpl", "dom0", b"name=a1 label=red pool:invalid=varlibqubes");

    assert_eq!(r, exc("ProtocolError", "Volume must be one of: root, private, volatile, kernel"));
}

#[test]
fn create_in_pool_with_unknown_pool_is_qubes_exception() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.CreateInPool.AppVM+tpl", "dom0", b"name=a1 label=red pool=nosuch");

    assert_eq!(r, exc("QubesException", "Unknown storage pool nosuch"));
}

#[test]
fn create_in_pool_with_unknown_volume_pool_is_qubes_exception() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.CreateInPool.AppVM+tpl", "dom0", b"name=a1 label=red pool:private=nosuch");

    assert_eq!(r, exc("QubesException", "Unknown storage pool nosuch"));
}

#[test]
fn create_in_pool_moving_a_snapshot_volume_is_qubes_exception() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.CreateInPool.AppVM+tpl", "dom0", b"name=a1 label=red pool:root=varlibqubes");

    assert_eq!(
        r,
        exc(
            "QubesException",
            "Snapshot volume root must be in the same pool as its origin (root volume of template),\
             cannot move to pool varlibqubes "
        )
    );
}

#[test]
fn failed_create_in_pool_leaves_the_qube_list_unchanged() {
    let d = Daemon::start().with_appvm();
    let before = vm_list(&d);

    call(&d, "admin.vm.CreateInPool.AppVM+tpl", "dom0", b"name=a1 label=red pool=nosuch");

    assert_eq!(vm_list(&d), before);
}

// =========================================================================================================
// admin.vm.Remove
// =========================================================================================================

#[test]
fn remove_dom0_is_in_use_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Remove", "dom0", b"");

    assert_eq!(r, exc("QubesVMInUseError", "'dom0' cannot be removed"));
}

#[test]
fn remove_template_still_used_by_a_qube_is_in_use_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Remove", "tpl", b"");

    assert_eq!(
        r,
        exc("QubesVMInUseError", "Domain is in use: 'tpl';  see 'journalctl -u qubesd -e' in dom0 for details")
    );
}

#[test]
fn remove_qube_named_by_a_global_property_is_in_use_error() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Remove", "work", b"");
    d.ok("admin.property.Set+default_template", "dom0", b"tpl");

    let r = call(&d, "admin.vm.Remove", "tpl", b"");

    assert_eq!(
        r,
        exc("QubesVMInUseError", "Domain is in use: 'tpl';  see 'journalctl -u qubesd -e' in dom0 for details")
    );
}

#[test]
fn remove_qube_installed_by_rpm_is_in_use_error() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+installed_by_rpm", "work", b"True");

    let r = call(&d, "admin.vm.Remove", "work", b"");

    assert_eq!(r, exc("QubesVMInUseError", "VM installed by package manager: work"));
}

#[test]
fn remove_unknown_qube_is_vm_not_found() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Remove", "nosuch", b"");

    assert_eq!(r, exc("QubesVMNotFoundError", "No such domain: 'nosuch'"));
}

#[test]
fn remove_with_argument_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Remove+x", "work", b"");

    assert_eq!(r, exc("ProtocolError", "unexpected argument"));
}

#[test]
fn remove_of_unused_qube_replies_empty() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.Remove", "work", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn removed_qube_is_no_longer_listed() {
    let d = Daemon::start().with_appvm();
    let uuid = d.uuid("tpl");
    d.ok("admin.vm.Remove", "work", b"");

    let r = vm_list(&d);

    assert_eq!(
        r,
        ok(&format!(
            "dom0 class=AdminVM state=Running uuid=00000000-0000-0000-0000-000000000000\n\
             tpl class=TemplateVM state=Halted uuid={uuid}\n"
        ))
    );
}

#[test]
fn removed_qube_is_not_found_afterwards() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Remove", "work", b"");

    let r = call(&d, "admin.vm.property.Get+label", "work", b"");

    assert_eq!(r, exc("QubesVMNotFoundError", "No such domain: 'work'"));
}

#[test]
fn removed_qube_has_its_volume_files_deleted() {
    let d = Daemon::start().with_appvm();
    let private = d.state.join("appvms/work/private.img");
    let existed = private.exists();

    d.ok("admin.vm.Remove", "work", b"");

    assert_eq!((existed, private.exists()), (true, false));
}

#[test]
fn removed_template_has_its_volume_files_deleted() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Remove", "work", b"");
    let root = d.state.join("vm-templates/tpl/root.img");
    let existed = root.exists();

    d.ok("admin.vm.Remove", "tpl", b"");

    assert_eq!((existed, root.exists()), (true, false));
}

#[test]
fn removed_name_can_be_created_again() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Remove", "work", b"");

    let r = call(&d, "admin.vm.Create.AppVM+tpl", "dom0", b"name=work label=blue");

    assert_eq!(r, ok(""));
}

#[test]
fn failed_remove_leaves_the_qube_list_unchanged() {
    let d = Daemon::start().with_appvm();
    let before = vm_list(&d);

    call(&d, "admin.vm.Remove", "tpl", b"");

    assert_eq!(vm_list(&d), before);
}

// =========================================================================================================
// admin.vm.property.* and admin.property.*: List, Get, GetAll, GetDefault, Help
// =========================================================================================================

const APPVM_PROPS: &str = "autostart\nbackup_timestamp\ndebug\ndefault_user\ndevices_denied\ndns\ngateway\n\
gateway6\nicon\ninclude_in_backups\ninstalled_by_rpm\nip\nip6\nkernel\nkeyboard_layout\nklass\nlabel\nmac\n\
maxmem\nmemory\nname\nprovides_network\nqid\nqrexec_timeout\nshutdown_timeout\nstart_time\nstubdom_mem\n\
stubdom_uuid\nstubdom_xid\ntemplate_for_dispvms\nupdateable\nuuid\nvcpus\nvirt_mode\nvisible_gateway\n\
visible_gateway6\nvisible_ip\nvisible_ip6\nvisible_netmask\nxid\naudiovm\nbootmode\ndefault_dispvm\nguivm\n\
kernelopts\nmanagement_dispvm\nnetvm\ntemplate\n";

const TEMPLATEVM_PROPS: &str = "autostart\nbackup_timestamp\ndebug\ndefault_user\ndevices_denied\ndns\n\
gateway\ngateway6\nicon\ninclude_in_backups\ninstalled_by_rpm\nip\nip6\nkernel\nkeyboard_layout\nklass\n\
label\nmac\nmaxmem\nmemory\nname\nprovides_network\nqid\nqrexec_timeout\nshutdown_timeout\nstart_time\n\
stubdom_mem\nstubdom_uuid\nstubdom_xid\nupdateable\nuuid\nvcpus\nvirt_mode\nvisible_gateway\n\
visible_gateway6\nvisible_ip\nvisible_ip6\nvisible_netmask\nxid\nappvm_default_bootmode\naudiovm\nbootmode\n\
default_dispvm\nguivm\nkernelopts\nmanagement_dispvm\nnetvm\n";

const GLOBAL_PROPS: &str = "check_updates_vm\nclockvm\ndefault_audiovm\ndefault_dispvm\ndefault_guivm\n\
default_kernel\ndefault_netvm\ndefault_pool\ndefault_pool_kernel\ndefault_pool_private\ndefault_pool_root\n\
default_pool_volatile\ndefault_qrexec_timeout\ndefault_shutdown_timeout\ndefault_template\n\
management_dispvm\nmaxmem\nno_cpus\nstats_interval\nupdatevm\n";

#[test]
fn appvm_property_list_is_in_load_stage_then_name_order() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.List", "work", b"");

    assert_eq!(r, ok(APPVM_PROPS));
}

#[test]
fn templatevm_property_list_is_in_load_stage_then_name_order() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.List", "tpl", b"");

    assert_eq!(r, ok(TEMPLATEVM_PROPS));
}

#[test]
fn dom0_property_list_has_only_the_adminvm_properties() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.List", "dom0", b"");

    assert_eq!(
        r,
        ok("devices_denied\nicon\ninclude_in_backups\nkeyboard_layout\nklass\nlabel\nmaxmem\nname\nqid\n\
            updateable\nuuid\ndefault_dispvm\n")
    );
}

#[test]
fn global_property_list_is_alphabetical() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.List", "dom0", b"");

    assert_eq!(r, ok(GLOBAL_PROPS));
}

#[test]
fn get_of_str_property_shows_type_str() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Get+default_user", "work", b"");

    assert_eq!(r, ok("default=True type=str user"));
}

#[test]
fn get_of_int_property_shows_type_int() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Get+memory", "work", b"");

    assert_eq!(r, ok("default=True type=int 400"));
}

#[test]
fn get_of_bool_property_shows_type_bool() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Get+autostart", "work", b"");

    assert_eq!(r, ok("default=True type=bool False"));
}

#[test]
fn get_of_vm_property_shows_type_vm_and_the_name() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Get+guivm", "work", b"");

    assert_eq!(r, ok("default=True type=vm dom0"));
}

#[test]
fn get_of_label_property_shows_type_label_and_the_name() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Get+label", "work", b"");

    assert_eq!(r, ok("default=False type=label red"));
}

#[test]
fn get_of_vm_property_at_none_keeps_the_trailing_space() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Get+netvm", "work", b"");

    assert_eq!(r, ok("default=True type=vm "));
}

#[test]
fn get_of_unset_int_property_without_default_keeps_the_trailing_space() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Get+backup_timestamp", "work", b"");

    assert_eq!(r, ok("default=True type=int "));
}

#[test]
fn get_of_identity_property_is_not_default() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Get+name", "work", b"");

    assert_eq!(r, ok("default=False type=str work"));
}

#[test]
fn get_of_unknown_property_is_no_such_property_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Get+nosuch", "work", b"");

    assert_eq!(r, exc("QubesNoSuchPropertyError", "Invalid property 'nosuch' of work"));
}

#[test]
fn get_of_appvm_only_property_on_template_is_no_such_property_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Get+template", "tpl", b"");

    assert_eq!(r, exc("QubesNoSuchPropertyError", "Invalid property 'template' of tpl"));
}

#[test]
fn get_of_unknown_global_property_names_qubes() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Get+nosuch", "dom0", b"");

    assert_eq!(r, exc("QubesNoSuchPropertyError", "Invalid property 'nosuch' of Qubes"));
}

#[test]
fn global_get_of_unset_property_without_default_keeps_the_trailing_space() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Get+default_kernel", "dom0", b"");

    assert_eq!(r, ok("default=True type=str "));
}

#[test]
fn global_get_of_default_guivm_is_dom0() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Get+default_guivm", "dom0", b"");

    assert_eq!(r, ok("default=True type=vm dom0"));
}

#[test]
fn get_all_of_fresh_appvm_lists_every_property_in_list_order() {
    let d = Daemon::start().with_appvm();
    let uuid = d.uuid("work");

    let r = call(&d, "admin.vm.property.GetAll", "work", b"");

    assert_eq!(
        r,
        ok(&format!(
            "autostart default=True type=bool False\n\
             backup_timestamp default=True type=int \n\
             debug default=True type=bool False\n\
             default_user default=True type=str user\n\
             devices_denied default=True type=str \n\
             dns default=True type=str \n\
             gateway default=True type=str \n\
             gateway6 default=True type=str \n\
             icon default=True type=str appvm-red\n\
             include_in_backups default=True type=bool True\n\
             installed_by_rpm default=True type=bool False\n\
             ip default=True type=str \n\
             ip6 default=True type=str \n\
             kernel default=True type=str \n\
             keyboard_layout default=True type=str us++\n\
             klass default=True type=str AppVM\n\
             label default=False type=label red\n\
             mac default=True type=str 00:16:3e:5e:6c:00\n\
             maxmem default=True type=int 0\n\
             memory default=True type=int 400\n\
             name default=False type=str work\n\
             provides_network default=True type=bool False\n\
             qid default=False type=int 2\n\
             qrexec_timeout default=True type=int 60\n\
             shutdown_timeout default=True type=int 60\n\
             start_time default=True type=str \n\
             stubdom_mem default=True type=int \n\
             stubdom_uuid default=True type=str \n\
             stubdom_xid default=True type=int -1\n\
             template_for_dispvms default=True type=bool False\n\
             updateable default=True type=bool False\n\
             uuid default=False type=str {uuid}\n\
             vcpus default=True type=int 2\n\
             virt_mode default=True type=str pvh\n\
             visible_gateway default=True type=str \n\
             visible_gateway6 default=True type=str \n\
             visible_ip default=True type=str \n\
             visible_ip6 default=True type=str \n\
             visible_netmask default=True type=str \n\
             xid default=True type=int -1\n\
             audiovm default=True type=vm dom0\n\
             bootmode default=True type=str default\n\
             default_dispvm default=True type=vm \n\
             guivm default=True type=vm dom0\n\
             kernelopts default=True type=str \n\
             management_dispvm default=True type=vm \n\
             netvm default=True type=vm \n\
             template default=False type=vm tpl\n"
        ))
    );
}

#[test]
fn get_all_escapes_backslashes_and_newlines() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+kernelopts", "work", b"opt1\nopt2\nopt3\\opt4");

    let all = d.ok("admin.vm.property.GetAll", "work", b"");
    let line = all.lines().find(|l| l.starts_with("kernelopts ")).unwrap_or_default().to_string();

    assert_eq!(line, "kernelopts default=False type=str opt1\\nopt2\\nopt3\\\\opt4");
}

#[test]
fn get_shows_the_unescaped_value() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+kernelopts", "work", b"opt1\nopt2\\x");

    let r = call(&d, "admin.vm.property.Get+kernelopts", "work", b"");

    assert_eq!(r, ok("default=False type=str opt1\nopt2\\x"));
}

#[test]
fn global_get_all_lists_every_global_property() {
    let d = Daemon::start().with_appvm();
    let maxmem = d.ok("admin.property.Get+maxmem", "dom0", b"");
    let no_cpus = d.ok("admin.property.Get+no_cpus", "dom0", b"");

    let r = call(&d, "admin.property.GetAll", "dom0", b"");

    assert_eq!(
        r,
        ok(&format!(
            "check_updates_vm default=True type=bool True\n\
             clockvm default=True type=vm \n\
             default_audiovm default=True type=vm dom0\n\
             default_dispvm default=True type=vm \n\
             default_guivm default=True type=vm dom0\n\
             default_kernel default=True type=str \n\
             default_netvm default=True type=vm \n\
             default_pool default=True type=str varlibqubes\n\
             default_pool_kernel default=False type=str linux-kernel\n\
             default_pool_private default=True type=str varlibqubes\n\
             default_pool_root default=True type=str varlibqubes\n\
             default_pool_volatile default=True type=str varlibqubes\n\
             default_qrexec_timeout default=True type=int 60\n\
             default_shutdown_timeout default=True type=int 60\n\
             default_template default=True type=vm \n\
             management_dispvm default=True type=vm \n\
             maxmem {maxmem}\n\
             no_cpus {no_cpus}\n\
             stats_interval default=True type=int 3\n\
             updatevm default=True type=vm \n"
        ))
    );
}

#[test]
fn get_default_of_vm_property_at_none_keeps_the_trailing_space() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.GetDefault+netvm", "work", b"");

    assert_eq!(r, ok("type=vm "));
}

#[test]
fn get_default_has_no_default_field() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.GetDefault+memory", "work", b"");

    assert_eq!(r, ok("type=int 400"));
}

#[test]
fn get_default_shows_the_reset_value_while_explicitly_set() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+memory", "work", b"800");

    let r = call(&d, "admin.vm.property.GetDefault+memory", "work", b"");

    assert_eq!(r, ok("type=int 400"));
}

#[test]
fn get_default_of_property_with_none_default_keeps_the_trailing_space() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.GetDefault+backup_timestamp", "work", b"");

    assert_eq!(r, ok("type=int "));
}

#[test]
fn get_default_of_template_is_empty_reply() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.GetDefault+template", "work", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn get_default_of_label_is_empty_reply() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.GetDefault+label", "work", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn get_default_of_name_is_empty_reply() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.GetDefault+name", "work", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn get_default_of_qid_is_empty_reply() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.GetDefault+qid", "work", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn get_default_of_dom0_name_is_dom0() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.GetDefault+name", "dom0", b"");

    assert_eq!(r, ok("type=str dom0"));
}

#[test]
fn get_default_of_unknown_property_is_no_such_property_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.GetDefault+nosuch", "work", b"");

    assert_eq!(r, exc("QubesNoSuchPropertyError", "Invalid property 'nosuch' of work"));
}

#[test]
fn global_get_default_of_property_without_default_is_empty_reply() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.GetDefault+default_kernel", "dom0", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn global_get_default_of_default_template_is_empty_reply() {
    let d = setup_with_default_template();

    let r = call(&d, "admin.property.GetDefault+default_template", "dom0", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn global_get_default_of_default_netvm_is_none_with_trailing_space() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.GetDefault+default_netvm", "dom0", b"");

    assert_eq!(r, ok("type=vm "));
}

#[test]
fn global_get_default_of_unknown_property_names_qubes() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.GetDefault+nosuch", "dom0", b"");

    assert_eq!(r, exc("QubesNoSuchPropertyError", "Invalid property 'nosuch' of Qubes"));
}

#[test]
fn help_is_one_plain_paragraph() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Help+netvm", "work", b"");

    assert_eq!(r, ok("Qube that provides the network connection; empty disconnects the qube."));
}

#[test]
fn help_of_unknown_property_is_no_such_property_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Help+nosuch", "work", b"");

    assert_eq!(r, exc("QubesNoSuchPropertyError", "Invalid property 'nosuch' of work"));
}

#[test]
fn global_help_is_one_plain_paragraph() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Help+default_netvm", "dom0", b"");

    assert_eq!(r, ok("Network provider of qubes that do not name one."));
}

#[test]
fn global_help_of_unknown_property_names_qubes() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Help+nosuch", "dom0", b"");

    assert_eq!(r, exc("QubesNoSuchPropertyError", "Invalid property 'nosuch' of Qubes"));
}

// =========================================================================================================
// Set: sanitizing by type, setter checks, read-only and write-once properties; Reset
// =========================================================================================================

#[test]
fn set_replies_empty() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+memory", "work", b"800");

    assert_eq!(r, ok(""));
}

#[test]
fn set_value_is_shown_as_not_default() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+memory", "work", b"800");

    let r = call(&d, "admin.vm.property.Get+memory", "work", b"");

    assert_eq!(r, ok("default=False type=int 800"));
}

#[test]
fn set_to_the_default_value_still_counts_as_set() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+memory", "work", b"400");

    let r = call(&d, "admin.vm.property.Get+memory", "work", b"");

    assert_eq!(r, ok("default=False type=int 400"));
}

#[test]
fn bool_yes_is_true() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+debug", "work", b"yes");

    let r = call(&d, "admin.vm.property.Get+debug", "work", b"");

    assert_eq!(r, ok("default=False type=bool True"));
}

#[test]
fn bool_literals_are_case_insensitive() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+debug", "work", b"TrUe");

    let r = call(&d, "admin.vm.property.Get+debug", "work", b"");

    assert_eq!(r, ok("default=False type=bool True"));
}

#[test]
fn bool_on_is_true() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+debug", "work", b"on");

    let r = call(&d, "admin.vm.property.Get+debug", "work", b"");

    assert_eq!(r, ok("default=False type=bool True"));
}

#[test]
fn bool_one_is_true() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+debug", "work", b"1");

    let r = call(&d, "admin.vm.property.Get+debug", "work", b"");

    assert_eq!(r, ok("default=False type=bool True"));
}

#[test]
fn bool_off_is_false() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+include_in_backups", "work", b"OFF");

    let r = call(&d, "admin.vm.property.Get+include_in_backups", "work", b"");

    assert_eq!(r, ok("default=False type=bool False"));
}

#[test]
fn bool_no_is_false() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+include_in_backups", "work", b"no");

    let r = call(&d, "admin.vm.property.Get+include_in_backups", "work", b"");

    assert_eq!(r, ok("default=False type=bool False"));
}

#[test]
fn bool_other_word_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+debug", "work", b"maybe");

    assert_eq!(r, exc("QubesValueError", "Invalid literal for boolean property: 'maybe'"));
}

#[test]
fn bool_with_surrounding_space_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+debug", "work", b"True ");

    assert_eq!(r, exc("QubesValueError", "Invalid literal for boolean property: 'True '"));
}

#[test]
fn bool_empty_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+debug", "work", b"");

    assert_eq!(r, exc("QubesValueError", "Invalid literal for boolean property: ''"));
}

#[test]
fn int_with_surrounding_whitespace_is_accepted() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+memory", "work", b" 512\n");

    let r = call(&d, "admin.vm.property.Get+memory", "work", b"");

    assert_eq!(r, ok("default=False type=int 512"));
}

#[test]
fn int_with_underscores_is_accepted() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+memory", "work", b"1_000");

    let r = call(&d, "admin.vm.property.Get+memory", "work", b"");

    assert_eq!(r, ok("default=False type=int 1000"));
}

#[test]
fn int_with_plus_sign_is_accepted() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+vcpus", "work", b"+4");

    let r = call(&d, "admin.vm.property.Get+vcpus", "work", b"");

    assert_eq!(r, ok("default=False type=int 4"));
}

#[test]
fn int_of_letters_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+memory", "work", b"abc");

    assert_eq!(r, exc("QubesValueError", "Failed to parse property value as int"));
}

#[test]
fn int_in_hex_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+memory", "work", b"0x10");

    assert_eq!(r, exc("QubesValueError", "Failed to parse property value as int"));
}

#[test]
fn int_with_leading_zero_is_accepted_as_python_int_does() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+memory", "work", b"0400");

    let r = call(&d, "admin.vm.property.Get+memory", "work", b"");

    assert_eq!(r, ok("default=False type=int 400"));
}

#[test]
fn int_empty_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+memory", "work", b"");

    assert_eq!(r, exc("QubesValueError", "Failed to parse property value as int"));
}

#[test]
fn memory_of_zero_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+memory", "work", b"0");

    assert_eq!(r, exc("QubesPropertyValueError", "memory must be positive"));
}

#[test]
fn negative_vcpus_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+vcpus", "work", b"-2");

    assert_eq!(r, exc("QubesPropertyValueError", "vcpus must be positive"));
}

#[test]
fn counts_that_do_not_fit_are_refused_not_wrapped() {
    let d = Daemon::start().with_appvm();
    let before = d.ok("admin.vm.property.GetAll", "work", b"");

    let vcpus = call(&d, "admin.vm.property.Set+vcpus", "work", b"4294967297");
    let huge = call(&d, "admin.vm.property.Set+vcpus", "work", b"99999999999999999999");
    let memory = call(&d, "admin.vm.property.Set+memory", "work", b"9223372036854775807");
    let maxmem = call(&d, "admin.vm.property.Set+maxmem", "work", b"9223372036854775807");

    assert_eq!(vcpus, exc("QubesPropertyValueError", "vcpus must be at most 4294967295"));
    assert_eq!(huge, exc("QubesValueError", "Failed to parse property value as int"));
    assert_eq!(memory, exc("QubesPropertyValueError", "memory must be at most 8796093022207"));
    assert_eq!(maxmem, exc("QubesPropertyValueError", "maxmem must be at most 8796093022207"));
    assert_eq!(d.ok("admin.vm.property.GetAll", "work", b""), before);
    d.ok("admin.vm.property.Set+vcpus", "work", b"4294967295");
}

#[test]
fn negative_maxmem_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+maxmem", "work", b"-1");

    assert_eq!(r, exc("QubesPropertyValueError", "maxmem must be positive or zero"));
}

#[test]
fn str_with_tab_and_newline_is_accepted() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+kernelopts", "work", b"a\tb\nc");

    let r = call(&d, "admin.vm.property.Get+kernelopts", "work", b"");

    assert_eq!(r, ok("default=False type=str a\tb\nc"));
}

#[test]
fn str_with_control_character_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+kernelopts", "work", b"a\x01b");

    assert_eq!(r, exc("QubesValueError", "Invalid characters in property value"));
}

#[test]
fn str_with_non_ascii_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+kernelopts", "work", "caf\u{e9}".as_bytes());

    assert_eq!(r, exc("QubesValueError", "Non-ASCII bytes in property value"));
}

#[test]
fn int_with_non_ascii_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+memory", "work", "\u{661}".as_bytes());

    assert_eq!(r, exc("QubesValueError", "Non-ASCII bytes in property value"));
}

#[test]
fn vm_name_with_non_ascii_is_value_error_without_message() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+netvm", "work", "n\u{e9}t".as_bytes());

    assert_eq!(r, exc("QubesValueError", ""));
}

#[test]
fn vm_value_breaking_the_name_rule_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+netvm", "work", b"1bad");

    assert_eq!(r, exc("QubesValueError", "VM name cannot start with hyphen, underscore, dot or numbers"));
}

#[test]
fn vm_value_naming_no_qube_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+netvm", "work", b"nosuch");

    assert_eq!(r, exc("QubesPropertyValueError", "Can't set netvm to non-existing qube nosuch"));
}

#[test]
fn netvm_not_providing_network_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+netvm", "work", b"tpl");

    assert_eq!(r, exc("QubesValueError", "The tpl qube does not provide network"));
}

#[test]
fn netvm_set_to_itself_is_value_error() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+provides_network", "work", b"True");

    let r = call(&d, "admin.vm.property.Set+netvm", "work", b"work");

    assert_eq!(r, exc("QubesValueError", "Loops in network are unsupported"));
}

#[test]
fn empty_vm_value_sets_none_explicitly() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+guivm", "work", b"");

    let r = call(&d, "admin.vm.property.Get+guivm", "work", b"");

    assert_eq!(r, ok("default=False type=vm "));
}

#[test]
fn empty_template_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+template", "work", b"");

    assert_eq!(r, exc("QubesPropertyValueError", "Invalid value '' for property 'template' of 'work'"));
}

#[test]
fn label_set_by_name_is_stored() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+label", "work", b"blue");

    let r = call(&d, "admin.vm.property.Get+label", "work", b"");

    assert_eq!(r, ok("default=False type=label blue"));
}

#[test]
fn label_set_by_index_is_stored_by_name() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+label", "work", b"3");

    let r = call(&d, "admin.vm.property.Get+label", "work", b"");

    assert_eq!(r, ok("default=False type=label yellow"));
}

#[test]
fn label_set_as_label_n_is_stored_by_name() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+label", "work", b"label-4");

    let r = call(&d, "admin.vm.property.Get+label", "work", b"");

    assert_eq!(r, ok("default=False type=label green"));
}

#[test]
fn unknown_label_is_label_not_found() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+label", "work", b"nosuch");

    assert_eq!(r, exc("QubesLabelNotFoundError", "Label does not exist: nosuch"));
}

#[test]
fn label_change_changes_the_icon() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+label", "work", b"blue");

    let r = call(&d, "admin.vm.property.Get+icon", "work", b"");

    assert_eq!(r, ok("default=True type=str appvm-blue"));
}

#[test]
fn default_user_with_space_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+default_user", "work", b"a b");

    assert_eq!(
        r,
        exc(
            "QubesPropertyValueError",
            "Username can contain only those characters: \
             abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+,."
        )
    );
}

#[test]
fn kernel_with_slash_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+kernel", "work", b"a/b");

    assert_eq!(r, exc("QubesPropertyValueError", "Kernel name cannot contain '/'"));
}

#[test]
fn kernelopts_over_512_characters_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+kernelopts", "work", "x".repeat(513).as_bytes());

    assert_eq!(r, exc("QubesPropertyValueError", "Kernelopts value too long (512 chars max)"));
}

#[test]
fn ip_is_stored() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+ip", "work", b"10.1.2.3");

    let r = call(&d, "admin.vm.property.Get+ip", "work", b"");

    assert_eq!(r, ok("default=False type=str 10.1.2.3"));
}

#[test]
fn ip_with_three_octets_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+ip", "work", b"1.2.3");

    assert_eq!(r, exc("QubesValueError", "Failed to parse property value as IPv4Address"));
}

#[test]
fn ip6_that_is_not_an_address_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+ip6", "work", b"fd09::g");

    assert_eq!(r, exc("QubesValueError", "Failed to parse property value as IPv6Address"));
}

#[test]
fn virt_mode_is_stored_in_lowercase() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+virt_mode", "work", b"HVM");

    let r = call(&d, "admin.vm.property.Get+virt_mode", "work", b"");

    assert_eq!(r, ok("default=False type=str hvm"));
}

#[test]
fn unknown_virt_mode_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+virt_mode", "work", b"xen");

    assert_eq!(r, exc("QubesPropertyValueError", "Invalid virtualization mode, supported values: hvm, pv, pvh"));
}

#[test]
fn keyboard_layout_with_one_part_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+keyboard_layout", "work", b"de");

    assert_eq!(r, exc("QubesPropertyValueError", "invalid number of keyboard layout parameters"));
}

#[test]
fn keyboard_layout_with_digit_in_layout_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+keyboard_layout", "work", b"d1+x+y");

    assert_eq!(r, exc("QubesPropertyValueError", "Invalid keyboard layout provided"));
}

#[test]
fn keyboard_layout_with_bad_variant_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+keyboard_layout", "work", b"de+a.b+");

    assert_eq!(r, exc("QubesPropertyValueError", "Invalid layout variant provided"));
}

#[test]
fn keyboard_layout_with_bad_options_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+keyboard_layout", "work", b"de+neo+a.b");

    assert_eq!(r, exc("QubesPropertyValueError", "Invalid layout options provided"));
}

#[test]
fn default_dispvm_not_meant_for_disposables_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+default_dispvm", "work", b"tpl");

    assert_eq!(
        r,
        exc(
            "QubesPropertyValueError",
            "Cannot set invalid property to qube 'work', default_dispvm 'tpl' has template_for_dispvms set to False"
        )
    );
}

#[test]
fn template_for_dispvms_cannot_be_cleared_while_the_system_default() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+template_for_dispvms", "work", b"True");
    d.ok("admin.property.Set+default_dispvm", "dom0", b"work");

    let r = call(&d, "admin.vm.property.Set+template_for_dispvms", "work", b"False");

    assert_eq!(
        r,
        exc(
            "QubesVMInUseError",
            "Cannot change template_for_dispvms to False while it is in use by the system by any of these \
             properties: default_dispvm, management_dispvm"
        )
    );
}

#[test]
fn template_for_dispvms_cannot_be_cleared_while_a_qube_uses_it() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+template_for_dispvms", "work", b"True");
    d.ok("admin.vm.Create.StandaloneVM", "dom0", b"name=solo label=red");
    d.ok("admin.vm.property.Set+default_dispvm", "solo", b"work");

    let r = call(&d, "admin.vm.property.Set+template_for_dispvms", "work", b"False");

    assert_eq!(
        r,
        exc(
            "QubesVMInUseError",
            "Cannot change template_for_dispvms to False while it is the disposable template of a qube by any \
             of these properties: default_dispvm, management_dispvm, template"
        )
    );
}

#[test]
fn read_only_property_set_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+icon", "work", b"x");

    assert_eq!(r, exc("QubesPropertyValueError", "property 'icon' on AppVM instance cannot be set"));
}

#[test]
fn read_only_property_set_names_the_class() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+xid", "tpl", b"1");

    assert_eq!(r, exc("QubesPropertyValueError", "property 'xid' on TemplateVM instance cannot be set"));
}

#[test]
fn dom0_name_set_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+name", "dom0", b"x");

    assert_eq!(r, exc("QubesPropertyValueError", "property 'name' on AdminVM instance cannot be set"));
}

#[test]
fn read_only_global_property_set_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Set+maxmem", "dom0", b"5");

    assert_eq!(r, exc("QubesPropertyValueError", "property 'maxmem' on Qubes instance cannot be set"));
}

#[test]
fn read_only_property_reset_succeeds_and_changes_nothing() {
    let d = Daemon::start().with_appvm();
    call(&d, "admin.vm.property.Reset+icon", "work", b"");

    let r = call(&d, "admin.vm.property.Get+icon", "work", b"");

    assert_eq!(r, ok("default=True type=str appvm-red"));
}

#[test]
fn read_only_property_reset_replies_empty() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Reset+klass", "work", b"");

    assert_eq!(r, ok(""));
}

/// qubesd drops the connection on write-once properties; a QubesPropertyValueError is the substitute.
#[test]
fn write_once_name_set_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+name", "work", b"other");

    assert_eq!(r, exc("QubesPropertyValueError", "property 'name' can be set only once, when the qube is created"));
}

#[test]
fn write_once_qid_reset_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Reset+qid", "work", b"");

    assert_eq!(r, exc("QubesPropertyValueError", "property 'qid' can be set only once, when the qube is created"));
}

#[test]
fn set_of_unknown_property_is_no_such_property_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+nosuch", "work", b"1");

    assert_eq!(r, exc("QubesNoSuchPropertyError", "Invalid property 'nosuch' of work"));
}

#[test]
fn unknown_property_is_reported_before_a_bad_value() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Set+nosuch", "work", "\u{e9}".as_bytes());

    assert_eq!(r, exc("QubesNoSuchPropertyError", "Invalid property 'nosuch' of work"));
}

#[test]
fn reset_returns_to_the_default() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+memory", "work", b"800");
    d.ok("admin.vm.property.Reset+memory", "work", b"");

    let r = call(&d, "admin.vm.property.Get+memory", "work", b"");

    assert_eq!(r, ok("default=True type=int 400"));
}

#[test]
fn reset_of_unset_property_replies_empty() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Reset+memory", "work", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn reset_of_unknown_property_is_no_such_property_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Reset+nosuch", "work", b"");

    assert_eq!(r, exc("QubesNoSuchPropertyError", "Invalid property 'nosuch' of work"));
}

#[test]
fn reset_of_template_names_the_default_template() {
    let d = setup_with_default_template();

    let r = call(&d, "admin.vm.property.Reset+template", "work", b"");

    assert_eq!(r, exc("QubesValueError", "Cannot unset template. You can set it to the current default (tpl) instead"));
}

#[test]
fn reset_of_template_without_default_template_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.property.Reset+template", "work", b"");

    assert_eq!(r, exc("QubesValueError", "Cannot unset template"));
}

#[test]
fn failed_set_changes_no_property() {
    let d = Daemon::start().with_appvm();
    let before = call(&d, "admin.vm.property.GetAll", "work", b"");

    call(&d, "admin.vm.property.Set+memory", "work", b"0");

    assert_eq!(call(&d, "admin.vm.property.GetAll", "work", b""), before);
}

#[test]
fn failed_sanitize_changes_no_property() {
    let d = Daemon::start().with_appvm();
    let before = call(&d, "admin.vm.property.GetAll", "work", b"");

    call(&d, "admin.vm.property.Set+debug", "work", b"perhaps");

    assert_eq!(call(&d, "admin.vm.property.GetAll", "work", b""), before);
}

#[test]
fn failed_global_set_changes_no_global_property() {
    let d = Daemon::start().with_appvm();
    let before = call(&d, "admin.property.GetAll", "dom0", b"");

    call(&d, "admin.property.Set+default_template", "dom0", b"work");

    assert_eq!(call(&d, "admin.property.GetAll", "dom0", b""), before);
}

#[test]
fn set_value_survives_a_daemon_restart() {
    let mut d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+memory", "work", b"1234");
    d.restart();

    let r = call(&d, "admin.vm.property.Get+memory", "work", b"");

    assert_eq!(r, ok("default=False type=int 1234"));
}

// --- global properties --------------------------------------------------------------------------------------

#[test]
fn global_set_is_shown_as_not_default() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.property.Set+stats_interval", "dom0", b"7");

    let r = call(&d, "admin.property.Get+stats_interval", "dom0", b"");

    assert_eq!(r, ok("default=False type=int 7"));
}

#[test]
fn global_reset_returns_to_the_default() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.property.Set+stats_interval", "dom0", b"7");
    d.ok("admin.property.Reset+stats_interval", "dom0", b"");

    let r = call(&d, "admin.property.Get+stats_interval", "dom0", b"");

    assert_eq!(r, ok("default=True type=int 3"));
}

#[test]
fn global_bool_literal_is_sanitized() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.property.Set+check_updates_vm", "dom0", b"off");

    let r = call(&d, "admin.property.Get+check_updates_vm", "dom0", b"");

    assert_eq!(r, ok("default=False type=bool False"));
}

#[test]
fn global_vm_value_naming_no_qube_names_the_property() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Set+default_template", "dom0", b"nosuch");

    assert_eq!(r, exc("QubesPropertyValueError", "Can't set default_template to non-existing qube nosuch"));
}

#[test]
fn global_clockvm_naming_no_qube_names_the_property() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Set+clockvm", "dom0", b"nosuch");

    assert_eq!(r, exc("QubesPropertyValueError", "Can't set clockvm to non-existing qube nosuch"));
}

#[test]
fn global_default_template_of_wrong_class_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Set+default_template", "dom0", b"work");

    assert_eq!(
        r,
        exc("QubesPropertyValueError", "wrong VM class: domains['work'] is of type AppVM and not TemplateVM")
    );
}

#[test]
fn global_default_dispvm_not_meant_for_disposables_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Set+default_dispvm", "dom0", b"work");

    assert_eq!(
        r,
        exc(
            "QubesPropertyValueError",
            "Cannot set invalid property to system, default_dispvm 'work' has template_for_dispvms set to False"
        )
    );
}

#[test]
fn global_management_dispvm_not_meant_for_disposables_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Set+management_dispvm", "dom0", b"work");

    assert_eq!(
        r,
        exc(
            "QubesPropertyValueError",
            "Cannot set invalid property to system, management_dispvm 'work' has template_for_dispvms set to False"
        )
    );
}

#[test]
fn global_default_pool_naming_no_pool_is_property_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Set+default_pool", "dom0", b"nosuch");

    assert_eq!(r, exc("QubesPropertyValueError", "No such storage pool"));
}

#[test]
fn global_int_of_letters_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Set+stats_interval", "dom0", b"x");

    assert_eq!(r, exc("QubesValueError", "Failed to parse property value as int"));
}

#[test]
fn global_read_only_reset_replies_empty() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Reset+no_cpus", "dom0", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn global_set_of_unknown_property_names_qubes() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Set+nosuch", "dom0", b"1");

    assert_eq!(r, exc("QubesNoSuchPropertyError", "Invalid property 'nosuch' of Qubes"));
}

#[test]
fn global_set_to_a_qube_destination_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.property.Set+stats_interval", "work", b"7");

    assert_eq!(r, exc("ProtocolError", "expected destination to be AdminVM"));
}

// --- defaults that follow other properties ------------------------------------------------------------------

#[test]
fn netvm_follows_default_netvm() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.StandaloneVM", "dom0", b"name=net label=red");
    d.ok("admin.vm.property.Set+provides_network", "net", b"True");
    d.ok("admin.property.Set+default_netvm", "dom0", b"net");

    let r = call(&d, "admin.vm.property.Get+netvm", "work", b"");

    assert_eq!(r, ok("default=True type=vm net"));
}

#[test]
fn template_netvm_does_not_follow_default_netvm() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.StandaloneVM", "dom0", b"name=net label=red");
    d.ok("admin.vm.property.Set+provides_network", "net", b"True");
    d.ok("admin.property.Set+default_netvm", "dom0", b"net");

    let r = call(&d, "admin.vm.property.Get+netvm", "tpl", b"");

    assert_eq!(r, ok("default=True type=vm "));
}

#[test]
fn networked_qube_gets_an_ip_from_its_qid() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.StandaloneVM", "dom0", b"name=net label=red");
    d.ok("admin.vm.property.Set+provides_network", "net", b"True");
    d.ok("admin.vm.property.Set+netvm", "work", b"net");

    let r = call(&d, "admin.vm.property.Get+ip", "work", b"");

    assert_eq!(r, ok("default=True type=str 10.137.0.2"));
}

#[test]
fn provides_network_cannot_be_cleared_while_used() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.StandaloneVM", "dom0", b"name=net label=red");
    d.ok("admin.vm.property.Set+provides_network", "net", b"True");
    d.ok("admin.vm.property.Set+netvm", "work", b"net");

    let r = call(&d, "admin.vm.property.Set+provides_network", "net", b"False");

    assert_eq!(r, exc("QubesValueError", "The qube is still used by other qubes, change theirs 'netvm' first"));
}

#[test]
fn memory_follows_the_template() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+memory", "tpl", b"1024");

    let r = call(&d, "admin.vm.property.Get+memory", "work", b"");

    assert_eq!(r, ok("default=True type=int 1024"));
}

#[test]
fn get_default_of_memory_follows_the_template() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+memory", "tpl", b"1024");

    let r = call(&d, "admin.vm.property.GetDefault+memory", "work", b"");

    assert_eq!(r, ok("type=int 1024"));
}

#[test]
fn vcpus_follow_the_template() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+vcpus", "tpl", b"4");

    let r = call(&d, "admin.vm.property.Get+vcpus", "work", b"");

    assert_eq!(r, ok("default=True type=int 4"));
}

#[test]
fn default_user_follows_the_template() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+default_user", "tpl", b"bob");

    let r = call(&d, "admin.vm.property.Get+default_user", "work", b"");

    assert_eq!(r, ok("default=True type=str bob"));
}

#[test]
fn qrexec_timeout_follows_the_template() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+qrexec_timeout", "tpl", b"99");

    let r = call(&d, "admin.vm.property.Get+qrexec_timeout", "work", b"");

    assert_eq!(r, ok("default=True type=int 99"));
}

#[test]
fn template_shutdown_timeout_follows_the_global_default() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.property.Set+default_shutdown_timeout", "dom0", b"77");

    let r = call(&d, "admin.vm.property.Get+shutdown_timeout", "tpl", b"");

    assert_eq!(r, ok("default=True type=int 77"));
}

#[test]
fn appvm_shutdown_timeout_follows_the_global_default_through_its_template() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.property.Set+default_shutdown_timeout", "dom0", b"77");

    let r = call(&d, "admin.vm.property.Get+shutdown_timeout", "work", b"");

    assert_eq!(r, ok("default=True type=int 77"));
}

#[test]
fn guivm_follows_default_guivm() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.property.Set+default_guivm", "dom0", b"tpl");

    let r = call(&d, "admin.vm.property.Get+guivm", "work", b"");

    assert_eq!(r, ok("default=True type=vm tpl"));
}

#[test]
fn explicit_value_stops_following_the_template() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+memory", "work", b"300");
    d.ok("admin.vm.property.Set+memory", "tpl", b"1024");

    let r = call(&d, "admin.vm.property.Get+memory", "work", b"");

    assert_eq!(r, ok("default=False type=int 300"));
}

#[test]
fn template_for_dispvms_turns_the_icon_into_a_template_icon() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+template_for_dispvms", "work", b"True");

    let r = call(&d, "admin.vm.property.Get+icon", "work", b"");

    assert_eq!(r, ok("default=True type=str templatevm-red"));
}

// =========================================================================================================
// admin.label.*
// =========================================================================================================

const BUILTIN_LABELS: &str = "red\norange\nyellow\ngreen\ngray\nblue\npurple\nblack\n";

#[test]
fn label_list_is_the_builtin_labels_by_index() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.List", "dom0", b"");

    assert_eq!(r, ok(BUILTIN_LABELS));
}

#[test]
fn label_get_by_name_is_the_color() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Get+red", "dom0", b"");

    assert_eq!(r, ok("0xcc0000"));
}

#[test]
fn label_get_by_index_is_the_color() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Get+6", "dom0", b"");

    assert_eq!(r, ok("0x3465a4"));
}

#[test]
fn label_get_by_index_with_leading_zero_is_the_color() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Get+01", "dom0", b"");

    assert_eq!(r, ok("0xcc0000"));
}

#[test]
fn label_get_as_label_n_is_label_not_found() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Get+label-1", "dom0", b"");

    assert_eq!(r, exc("QubesLabelNotFoundError", "Label does not exist: label-1"));
}

#[test]
fn label_get_of_unknown_is_label_not_found() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Get+nosuch", "dom0", b"");

    assert_eq!(r, exc("QubesLabelNotFoundError", "Label does not exist: nosuch"));
}

#[test]
fn label_get_with_path_characters_is_invalid_label_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Get+../x", "dom0", b"");

    assert_eq!(r, exc("QubesInvalidLabelError", &format!("Label must be in safe set: {SAFE_SET}")));
}

#[test]
fn label_index_of_black_is_8() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Index+black", "dom0", b"");

    assert_eq!(r, ok("8"));
}

#[test]
fn label_index_of_unknown_is_label_not_found() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Index+nosuch", "dom0", b"");

    assert_eq!(r, exc("QubesLabelNotFoundError", "Label does not exist: nosuch"));
}

#[test]
fn label_create_replies_empty() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Create+cyan", "dom0", b"0x00ffff");

    assert_eq!(r, ok(""));
}

#[test]
fn first_custom_label_gets_index_9() {
    let d = Daemon::start();
    d.ok("admin.label.Create+cyan", "dom0", b"0x00ffff");

    let r = call(&d, "admin.label.Index+cyan", "dom0", b"");

    assert_eq!(r, ok("9"));
}

#[test]
fn second_custom_label_gets_index_10() {
    let d = Daemon::start();
    d.ok("admin.label.Create+cyan", "dom0", b"0x00ffff");
    d.ok("admin.label.Create+pink", "dom0", b"0xff00ff");

    let r = call(&d, "admin.label.Index+pink", "dom0", b"");

    assert_eq!(r, ok("10"));
}

#[test]
fn custom_label_is_listed_last() {
    let d = Daemon::start();
    d.ok("admin.label.Create+cyan", "dom0", b"0x00ffff");

    let r = call(&d, "admin.label.List", "dom0", b"");

    assert_eq!(r, ok(&format!("{BUILTIN_LABELS}cyan\n")));
}

#[test]
fn custom_label_color_is_returned() {
    let d = Daemon::start();
    d.ok("admin.label.Create+cyan", "dom0", b"0x00ffff");

    let r = call(&d, "admin.label.Get+9", "dom0", b"");

    assert_eq!(r, ok("0x00ffff"));
}

#[test]
fn custom_label_color_is_stripped_of_whitespace() {
    let d = Daemon::start();
    d.ok("admin.label.Create+cyan", "dom0", b" 0x00ffff\n");

    let r = call(&d, "admin.label.Get+cyan", "dom0", b"");

    assert_eq!(r, ok("0x00ffff"));
}

#[test]
fn custom_label_can_be_given_to_a_qube() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.label.Create+cyan", "dom0", b"0x00ffff");
    d.ok("admin.vm.property.Set+label", "work", b"cyan");

    let r = call(&d, "admin.vm.property.Get+label", "work", b"");

    assert_eq!(r, ok("default=False type=label cyan"));
}

#[test]
fn label_create_with_digits_name_is_invalid_label_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Create+01", "dom0", b"0xff0000");

    assert_eq!(r, exc("QubesInvalidLabelError", "Label must not be a digit"));
}

#[test]
fn label_create_with_path_name_is_invalid_label_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Create+../x", "dom0", b"0xff0000");

    assert_eq!(r, exc("QubesInvalidLabelError", &format!("Label must be in safe set: {SAFE_SET}")));
}

#[test]
fn label_create_of_existing_name_is_label_in_use() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Create+red", "dom0", b"0xff0000");

    assert_eq!(r, exc("QubesLabelInUseError", "Label is still in use: 'red'"));
}

#[test]
fn label_create_with_non_ascii_color_is_invalid_label_value() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Create+cyan", "dom0", "\u{f6}".as_bytes());

    assert_eq!(r, exc("QubesInvalidLabelValueError", "Label value must be encoded in ASCII"));
}

#[test]
fn label_create_with_nine_character_color_is_invalid_label_value() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Create+cyan", "dom0", b"0x00fffff");

    assert_eq!(r, exc("QubesInvalidLabelValueError", "Label value must have length of 8"));
}

#[test]
fn label_create_with_uppercase_prefix_is_invalid_label_value() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Create+cyan", "dom0", b"0X00ffff");

    assert_eq!(r, exc("QubesInvalidLabelValueError", "Label value must start with: 0x"));
}

#[test]
fn label_create_with_non_hex_color_is_invalid_label_value() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Create+cyan", "dom0", b"0x00fffg");

    assert_eq!(
        r,
        exc(
            "QubesInvalidLabelValueError",
            &format!("Label value must only contain hexadecimal digits after prefix: {HEX_DIGITS}")
        )
    );
}

#[test]
fn invalid_label_name_is_reported_before_invalid_color() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Create+01", "dom0", b"bad");

    assert_eq!(r, exc("QubesInvalidLabelError", "Label must not be a digit"));
}

#[test]
fn failed_label_create_leaves_the_list_unchanged() {
    let d = Daemon::start();

    call(&d, "admin.label.Create+cyan", "dom0", b"0x00fffg");

    assert_eq!(call(&d, "admin.label.List", "dom0", b""), ok(BUILTIN_LABELS));
}

#[test]
fn builtin_label_remove_is_protocol_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Remove+red", "dom0", b"");

    assert_eq!(r, exc("ProtocolError", "Can only remove custom labels"));
}

#[test]
fn builtin_label_remove_by_index_is_protocol_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Remove+8", "dom0", b"");

    assert_eq!(r, exc("ProtocolError", "Can only remove custom labels"));
}

#[test]
fn unknown_label_remove_is_label_not_found() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Remove+no-such-label", "dom0", b"");

    assert_eq!(r, exc("QubesLabelNotFoundError", "Label does not exist: no-such-label"));
}

#[test]
fn label_remove_with_path_characters_is_invalid_label_error() {
    let d = Daemon::start();

    let r = call(&d, "admin.label.Remove+../x", "dom0", b"");

    assert_eq!(r, exc("QubesInvalidLabelError", &format!("Label must be in safe set: {SAFE_SET}")));
}

#[test]
fn label_in_use_remove_is_label_in_use_error() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.label.Create+cyan", "dom0", b"0x00ffff");
    d.ok("admin.vm.property.Set+label", "work", b"cyan");

    let r = call(&d, "admin.label.Remove+cyan", "dom0", b"");

    assert_eq!(r, exc("QubesLabelInUseError", "Label is still in use: Label(9, '0x00ffff', 'cyan')"));
}

#[test]
fn custom_label_remove_replies_empty() {
    let d = Daemon::start();
    d.ok("admin.label.Create+cyan", "dom0", b"0x00ffff");

    let r = call(&d, "admin.label.Remove+cyan", "dom0", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn removed_label_is_no_longer_listed() {
    let d = Daemon::start();
    d.ok("admin.label.Create+cyan", "dom0", b"0x00ffff");
    d.ok("admin.label.Remove+cyan", "dom0", b"");

    let r = call(&d, "admin.label.List", "dom0", b"");

    assert_eq!(r, ok(BUILTIN_LABELS));
}

#[test]
fn custom_label_remove_by_index_replies_empty() {
    let d = Daemon::start();
    d.ok("admin.label.Create+cyan", "dom0", b"0x00ffff");

    let r = call(&d, "admin.label.Remove+9", "dom0", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn index_of_a_removed_last_label_is_reused() {
    let d = Daemon::start();
    d.ok("admin.label.Create+cyan", "dom0", b"0x00ffff");
    d.ok("admin.label.Remove+cyan", "dom0", b"");
    d.ok("admin.label.Create+pink", "dom0", b"0xff00ff");

    let r = call(&d, "admin.label.Index+pink", "dom0", b"");

    assert_eq!(r, ok("9"));
}

#[test]
fn label_methods_to_a_qube_destination_are_protocol_errors() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.label.List", "work", b"");

    assert_eq!(r, exc("ProtocolError", "expected destination to be AdminVM"));
}

// =========================================================================================================
// admin.vm.feature.*
// =========================================================================================================

#[test]
fn feature_list_of_fresh_qube_is_empty() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.List", "work", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn feature_list_is_in_insertion_order() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+zeta", "work", b"1");
    d.ok("admin.vm.feature.Set+alpha", "work", b"2");
    d.ok("admin.vm.feature.Set+mid", "work", b"3");

    let r = call(&d, "admin.vm.feature.List", "work", b"");

    assert_eq!(r, ok("zeta\nalpha\nmid\n"));
}

#[test]
fn feature_set_again_keeps_its_position() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+zeta", "work", b"1");
    d.ok("admin.vm.feature.Set+alpha", "work", b"2");
    d.ok("admin.vm.feature.Set+zeta", "work", b"3");

    let r = call(&d, "admin.vm.feature.List", "work", b"");

    assert_eq!(r, ok("zeta\nalpha\n"));
}

#[test]
fn feature_set_replies_empty() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.Set+gui", "work", b"1");

    assert_eq!(r, ok(""));
}

#[test]
fn feature_get_is_the_raw_value() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+os", "work", b"Linux 6 (x)");

    let r = call(&d, "admin.vm.feature.Get+os", "work", b"");

    assert_eq!(r, ok("Linux 6 (x)"));
}

#[test]
fn feature_set_with_empty_value_stores_empty_string() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+gui", "work", b"");

    let r = call(&d, "admin.vm.feature.Get+gui", "work", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn feature_set_with_empty_value_is_listed() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+gui", "work", b"");

    let r = call(&d, "admin.vm.feature.List", "work", b"");

    assert_eq!(r, ok("gui\n"));
}

#[test]
fn feature_get_of_unset_is_feature_not_found() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.Get+nosuch", "work", b"");

    assert_eq!(r, exc("QubesFeatureNotFoundError", "Feature not set for domain work: nosuch"));
}

#[test]
fn feature_get_does_not_look_at_the_template() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+tf", "tpl", b"from-template");

    let r = call(&d, "admin.vm.feature.Get+tf", "work", b"");

    assert_eq!(r, exc("QubesFeatureNotFoundError", "Feature not set for domain work: tf"));
}

#[test]
fn check_with_template_finds_the_template_value() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+tf", "tpl", b"from-template");

    let r = call(&d, "admin.vm.feature.CheckWithTemplate+tf", "work", b"");

    assert_eq!(r, ok("from-template"));
}

#[test]
fn check_with_template_prefers_the_qube_value() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+tf", "tpl", b"from-template");
    d.ok("admin.vm.feature.Set+tf", "work", b"own");

    let r = call(&d, "admin.vm.feature.CheckWithTemplate+tf", "work", b"");

    assert_eq!(r, ok("own"));
}

#[test]
fn check_with_template_does_not_look_at_dom0() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+d0", "dom0", b"from-dom0");

    let r = call(&d, "admin.vm.feature.CheckWithTemplate+d0", "work", b"");

    assert_eq!(r, exc("QubesFeatureNotFoundError", "Feature not set for domain work: d0"));
}

#[test]
fn check_with_adminvm_finds_the_dom0_value() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+d0", "dom0", b"from-dom0");

    let r = call(&d, "admin.vm.feature.CheckWithAdminVM+d0", "work", b"");

    assert_eq!(r, ok("from-dom0"));
}

#[test]
fn check_with_adminvm_does_not_look_at_the_template() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+tf", "tpl", b"from-template");

    let r = call(&d, "admin.vm.feature.CheckWithAdminVM+tf", "work", b"");

    assert_eq!(r, exc("QubesFeatureNotFoundError", "Feature not set for domain work: tf"));
}

#[test]
fn check_with_template_and_adminvm_prefers_the_template_over_dom0() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+x", "tpl", b"from-template");
    d.ok("admin.vm.feature.Set+x", "dom0", b"from-dom0");

    let r = call(&d, "admin.vm.feature.CheckWithTemplateAndAdminVM+x", "work", b"");

    assert_eq!(r, ok("from-template"));
}

#[test]
fn check_with_template_and_adminvm_falls_back_to_dom0() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+x", "dom0", b"from-dom0");

    let r = call(&d, "admin.vm.feature.CheckWithTemplateAndAdminVM+x", "work", b"");

    assert_eq!(r, ok("from-dom0"));
}

#[test]
fn check_with_template_and_adminvm_of_unset_is_feature_not_found() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.CheckWithTemplateAndAdminVM+x", "work", b"");

    assert_eq!(r, exc("QubesFeatureNotFoundError", "Feature not set for domain work: x"));
}

#[test]
fn check_with_netvm_finds_the_netvm_value() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.StandaloneVM", "dom0", b"name=net label=red");
    d.ok("admin.vm.property.Set+provides_network", "net", b"True");
    d.ok("admin.vm.property.Set+netvm", "work", b"net");
    d.ok("admin.vm.feature.Set+ipv6", "net", b"1");

    let r = call(&d, "admin.vm.feature.CheckWithNetvm+ipv6", "work", b"");

    assert_eq!(r, ok("1"));
}

#[test]
fn check_with_netvm_does_not_look_at_the_template() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+tf", "tpl", b"from-template");

    let r = call(&d, "admin.vm.feature.CheckWithNetvm+tf", "work", b"");

    assert_eq!(r, exc("QubesFeatureNotFoundError", "Feature not set for domain work: tf"));
}

#[test]
fn feature_name_with_slash_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.Set+a/b", "work", b"1");

    assert_eq!(r, exc("ProtocolError", "feature name contains illegal characters"));
}

#[test]
fn feature_value_with_non_ascii_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.Set+x", "work", "\u{e9}".as_bytes());

    assert_eq!(r, exc("ProtocolError", "Feature value contains non-ASCII characters"));
}

#[test]
fn feature_value_with_tab_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.Set+x", "work", b"a\tb");

    assert_eq!(r, exc("ProtocolError", "x value contains illegal characters"));
}

#[test]
fn feature_value_with_newline_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.Set+x", "work", b"a\n");

    assert_eq!(r, exc("ProtocolError", "x value contains illegal characters"));
}

#[test]
fn empty_service_name_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.Set+service.", "work", b"1");

    assert_eq!(r, exc("QubesValueError", "Service name cannot be empty"));
}

#[test]
fn service_name_of_49_bytes_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, &format!("admin.vm.feature.Set+service.{}", "a".repeat(49)), "work", b"1");

    assert_eq!(r, exc("QubesValueError", "Service name must not exceed 48 bytes"));
}

#[test]
fn service_name_of_48_bytes_is_accepted() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, &format!("admin.vm.feature.Set+service.{}", "a".repeat(48)), "work", b"1");

    assert_eq!(r, ok(""));
}

#[test]
fn long_app_dispvm_service_name_is_accepted() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, &format!("admin.vm.feature.Set+service.app-dispvm.{}", "a".repeat(60)), "work", b"1");

    assert_eq!(r, ok(""));
}

#[test]
fn service_name_dot_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.Set+service..", "work", b"1");

    assert_eq!(r, exc("QubesValueError", "Service name cannot be \".\" or \"..\""));
}

#[test]
fn service_name_dot_dot_is_value_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.Set+service...", "work", b"1");

    assert_eq!(r, exc("QubesValueError", "Service name cannot be \".\" or \"..\""));
}

#[test]
fn protected_feature_set_is_permission_denied_even_for_dom0() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.Set+preload-dispvm", "work", b"1");

    assert_eq!(r, exc("PermissionDenied", PROTECTED));
}

#[test]
fn deferred_netvm_original_set_is_permission_denied() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.Set+deferred-netvm-original", "work", b"x");

    assert_eq!(r, exc("PermissionDenied", PROTECTED));
}

#[test]
fn protected_feature_remove_is_permission_denied_even_when_unset() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.Remove+preload-dispvm-completed", "work", b"");

    assert_eq!(r, exc("PermissionDenied", PROTECTED));
}

#[test]
fn bad_value_characters_are_reported_before_protection() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.Set+preload-dispvm-in-progress", "work", b"\t");

    assert_eq!(r, exc("ProtocolError", "preload-dispvm-in-progress value contains illegal characters"));
}

#[test]
fn feature_remove_replies_empty() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+gui", "work", b"1");

    let r = call(&d, "admin.vm.feature.Remove+gui", "work", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn removed_feature_is_no_longer_listed() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+a", "work", b"1");
    d.ok("admin.vm.feature.Set+b", "work", b"1");
    d.ok("admin.vm.feature.Remove+a", "work", b"");

    let r = call(&d, "admin.vm.feature.List", "work", b"");

    assert_eq!(r, ok("b\n"));
}

#[test]
fn feature_remove_of_unset_is_feature_not_found() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.Remove+nosuch", "work", b"");

    assert_eq!(r, exc("QubesFeatureNotFoundError", "Feature not set for domain work: nosuch"));
}

#[test]
fn feature_get_with_payload_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.feature.Get+gui", "work", b"x");

    assert_eq!(r, exc("ProtocolError", "unexpected payload"));
}

#[test]
fn failed_feature_set_leaves_the_features_unchanged() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+gui", "work", b"1");

    call(&d, "admin.vm.feature.Set+service.", "work", b"1");

    assert_eq!(call(&d, "admin.vm.feature.List", "work", b""), ok("gui\n"));
}

#[test]
fn dom0_features_are_its_own() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+d0", "dom0", b"v");

    let r = call(&d, "admin.vm.feature.List", "dom0", b"");

    assert_eq!(r, ok("d0\n"));
}

// =========================================================================================================
// admin.vm.tag.*
// =========================================================================================================

#[test]
fn fresh_appvm_has_the_automatic_tags_sorted() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.tag.List", "work", b"");

    assert_eq!(r, ok("audiovm-dom0\ncreated-by-dom0\nguivm-dom0\n"));
}

#[test]
fn dom0_has_no_tags() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.tag.List", "dom0", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn tag_get_of_present_tag_is_1() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.tag.Get+created-by-dom0", "work", b"");

    assert_eq!(r, ok("1"));
}

#[test]
fn tag_get_of_automatic_guivm_tag_is_1() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.tag.Get+guivm-dom0", "work", b"");

    assert_eq!(r, ok("1"));
}

#[test]
fn tag_get_of_absent_tag_is_0() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.tag.Get+nosuch", "work", b"");

    assert_eq!(r, ok("0"));
}

#[test]
fn tag_get_of_plus_is_invalid_tag_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.tag.Get++", "work", b"");

    assert_eq!(r, exc("QubesInvalidTagError", "disallowed characters"));
}

#[test]
fn tag_get_with_dot_is_invalid_tag_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.tag.Get+a.b", "work", b"");

    assert_eq!(r, exc("QubesInvalidTagError", "disallowed characters"));
}

#[test]
fn tag_get_without_argument_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.tag.Get", "work", b"");

    assert_eq!(r, exc("ProtocolError", "expected an argument"));
}

#[test]
fn tag_set_replies_empty() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.tag.Set+mytag", "work", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn tag_list_stays_sorted_after_set() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.tag.Set+zz", "work", b"");
    d.ok("admin.vm.tag.Set+aa", "work", b"");

    let r = call(&d, "admin.vm.tag.List", "work", b"");

    assert_eq!(r, ok("aa\naudiovm-dom0\ncreated-by-dom0\nguivm-dom0\nzz\n"));
}

#[test]
fn tag_set_twice_is_idempotent() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.tag.Set+mytag", "work", b"");

    let r = call(&d, "admin.vm.tag.Set+mytag", "work", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn tag_set_twice_lists_the_tag_once() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.tag.Set+mytag", "work", b"");
    d.ok("admin.vm.tag.Set+mytag", "work", b"");

    let r = call(&d, "admin.vm.tag.List", "work", b"");

    assert_eq!(r, ok("audiovm-dom0\ncreated-by-dom0\nguivm-dom0\nmytag\n"));
}

#[test]
fn tag_set_of_plus_is_invalid_tag_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.tag.Set++", "work", b"");

    assert_eq!(r, exc("QubesInvalidTagError", "disallowed characters"));
}

#[test]
fn tag_set_with_payload_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.tag.Set+mytag", "work", b"x");

    assert_eq!(r, exc("ProtocolError", "unexpected payload"));
}

#[test]
fn tag_remove_replies_empty() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.tag.Set+mytag", "work", b"");

    let r = call(&d, "admin.vm.tag.Remove+mytag", "work", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn removed_tag_is_no_longer_listed() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.tag.Set+mytag", "work", b"");
    d.ok("admin.vm.tag.Remove+mytag", "work", b"");

    let r = call(&d, "admin.vm.tag.Get+mytag", "work", b"");

    assert_eq!(r, ok("0"));
}

#[test]
fn tag_remove_of_absent_tag_is_tag_not_found() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.tag.Remove+nosuch", "work", b"");

    assert_eq!(r, exc("QubesTagNotFoundError", "Tag not set for domain work: nosuch"));
}

#[test]
fn tag_remove_of_plus_is_invalid_tag_error() {
    let d = Daemon::start().with_appvm();

    let r = call(&d, "admin.vm.tag.Remove++", "work", b"");

    assert_eq!(r, exc("QubesInvalidTagError", "disallowed characters"));
}

#[test]
fn dom0_may_remove_the_created_by_tag() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.tag.Remove+created-by-dom0", "work", b"");

    let r = call(&d, "admin.vm.tag.List", "work", b"");

    assert_eq!(r, ok("audiovm-dom0\nguivm-dom0\n"));
}

#[test]
fn guivm_tag_follows_the_guivm_property() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+guivm", "work", b"tpl");

    let r = call(&d, "admin.vm.tag.List", "work", b"");

    assert_eq!(r, ok("audiovm-dom0\ncreated-by-dom0\nguivm-tpl\n"));
}

#[test]
fn audiovm_tag_disappears_when_audiovm_is_none() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.property.Set+audiovm", "work", b"");

    let r = call(&d, "admin.vm.tag.List", "work", b"");

    assert_eq!(r, ok("created-by-dom0\nguivm-dom0\n"));
}

#[test]
fn tags_of_one_qube_do_not_leak_to_another() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.tag.Set+mytag", "work", b"");

    let r = call(&d, "admin.vm.tag.Get+mytag", "tpl", b"");

    assert_eq!(r, ok("0"));
}

// =========================================================================================================
// What real clients tripped over: dom0's identity, a fresh store's globals, RemoteVM
// =========================================================================================================

#[test]
fn dom0_identity_properties_are_defaults() {
    let d = Daemon::start();

    let got: Vec<Reply> =
        ["qid", "name", "uuid"].iter().map(|p| call(&d, &format!("admin.vm.property.Get+{p}"), "dom0", b"")).collect();

    assert_eq!(
        got,
        vec![
            ok("default=True type=int 0"),
            ok("default=True type=str dom0"),
            ok("default=True type=str 00000000-0000-0000-0000-000000000000"),
        ]
    );
}

#[test]
fn fresh_store_sets_the_kernel_pool_as_the_installer_does() {
    let d = Daemon::start();

    let r = call(&d, "admin.property.Get+default_pool_kernel", "dom0", b"");

    assert_eq!(r, ok("default=False type=str linux-kernel"));
}

#[test]
fn kernel_pool_default_follows_default_pool_as_upstream() {
    let d = Daemon::start();

    let r = call(&d, "admin.property.GetDefault+default_pool_kernel", "dom0", b"");

    assert_eq!(r, ok("type=str varlibqubes"));
}

#[test]
fn store_written_before_the_kernel_pool_was_set_keeps_linux_kernel_after_restart() {
    let mut d = Daemon::start();
    d.kill9();
    {
        let conn = rusqlite::Connection::open(d.state.join("corral.sqlite")).expect("open");
        conn.execute("DELETE FROM global_properties WHERE name = 'default_pool_kernel'", []).expect("delete");
        // What later versions added goes too, so that the store is a version-3 one in every respect.
        conn.execute_batch(
            "DROP TABLE revision_descriptions;
             ALTER TABLE volumes DROP COLUMN bootable;
             ALTER TABLE volumes DROP COLUMN preallocated;
             ALTER TABLE volumes DROP COLUMN alias;",
        )
        .expect("back to version 3");
        conn.pragma_update(None, "user_version", 3).expect("version 3");
    }
    d.spawn();

    let r = call(&d, "admin.property.Get+default_pool_kernel", "dom0", b"");

    assert_eq!(r, ok("default=False type=str linux-kernel"));
}

/// The daemon's own qube state that a version-6 store kept under the HTTP door's names (`rest.cdrom`,
/// `rest.network`, `rest.nic-name`) is read back under today's names after an upgrade; other features stay.
#[test]
fn door_named_features_of_a_version_6_store_are_renamed_at_start() {
    let mut d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+rest.other", "work", b"kept");
    d.kill9();
    {
        let conn = rusqlite::Connection::open(d.state.join("corral.sqlite")).expect("open");
        conn.execute_batch(
            "INSERT INTO features(qid, name, value, seq)
                 SELECT qid, 'rest.cdrom', 'install.iso', 100 FROM domains WHERE name = 'work';
             INSERT INTO features(qid, name, value, seq)
                 SELECT qid, 'rest.nic-name', 'eth-a', 101 FROM domains WHERE name = 'work';",
        )
        .expect("door-named rows");
        conn.pragma_update(None, "user_version", 6).expect("version 6");
    }
    d.spawn();

    assert_eq!(d.ok("admin.vm.feature.Get+corral.cdrom", "work", b""), "install.iso");
    assert_eq!(d.ok("admin.vm.feature.Get+corral.nic-name", "work", b""), "eth-a");
    assert_eq!(d.ok("admin.vm.feature.Get+rest.other", "work", b""), "kept");
    assert_eq!(d.err("admin.vm.feature.Get+rest.cdrom", "work", b"").0, "QubesFeatureNotFoundError");
    assert_eq!(d.err("admin.vm.feature.Get+rest.nic-name", "work", b"").0, "QubesFeatureNotFoundError");
}

const REMOTEVM_PROPS: &str =
    "icon\ninclude_in_backups\nklass\nlabel\nname\nqid\nremote_name\ntransport_rpc\nuuid\nrelayvm\n";

fn with_remote(d: Daemon) -> Daemon {
    d.ok("admin.vm.Create.RemoteVM", "dom0", b"name=far label=green");
    d
}

#[test]
fn remote_vm_is_created_and_listed_running() {
    let d = with_remote(Daemon::start());
    let uuid = d.uuid("far");

    let r = call(&d, "admin.vm.List", "far", b"");

    assert_eq!(r, ok(&format!("far class=RemoteVM state=Running uuid={uuid}\n")));
}

#[test]
fn remote_vm_has_only_its_own_properties() {
    let d = with_remote(Daemon::start());

    let r = call(&d, "admin.vm.property.List", "far", b"");

    assert_eq!(r, ok(REMOTEVM_PROPS));
}

#[test]
fn remote_vm_property_defaults() {
    let d = with_remote(Daemon::start());

    let r = call(&d, "admin.vm.property.GetAll", "far", b"");

    let uuid = d.uuid("far");
    assert_eq!(
        r,
        ok(&format!(
            "icon default=True type=str remotevm-green\n\
             include_in_backups default=True type=bool False\n\
             klass default=True type=str RemoteVM\n\
             label default=False type=label green\n\
             name default=False type=str far\n\
             qid default=False type=int 1\n\
             remote_name default=True type=str \n\
             transport_rpc default=True type=str \n\
             uuid default=False type=str {uuid}\n\
             relayvm default=True type=vm \n"
        ))
    );
}

#[test]
fn remote_vm_relayvm_names_a_local_qube_and_tags_it() {
    let d = with_remote(Daemon::start().with_appvm());
    d.ok("admin.vm.property.Set+relayvm", "far", b"work");
    d.ok("admin.vm.property.Set+transport_rpc", "far", b"qubesair.SSHProxy");

    let r = call(&d, "admin.vm.tag.List", "far", b"");

    assert_eq!(r, ok("created-by-dom0\nrelayvm-work\n"));
}

#[test]
fn remote_vm_relayvm_cannot_be_another_remote_vm() {
    let d = with_remote(Daemon::start());
    d.ok("admin.vm.Create.RemoteVM", "dom0", b"name=farther label=green");

    let r = call(&d, "admin.vm.property.Set+relayvm", "far", b"farther");

    assert_eq!(
        r,
        exc("QubesPropertyValueError", "wrong VM class: domains['farther'] is of type RemoteVM and not LocalVM")
    );
}

#[test]
fn remote_vm_relay_blocks_removing_the_relay() {
    let d = with_remote(Daemon::start().with_appvm());
    d.ok("admin.vm.property.Set+relayvm", "far", b"work");

    let r = call(&d, "admin.vm.Remove", "work", b"");

    assert_eq!(
        r,
        exc("QubesVMInUseError", "Domain is in use: 'work';  see 'journalctl -u qubesd -e' in dom0 for details")
    );
}

#[test]
fn remote_vm_has_no_volumes_and_no_devices() {
    let d = with_remote(Daemon::start());

    let got: Vec<Reply> = [
        "admin.vm.volume.List",
        "admin.vm.device.pci.Available",
        "admin.vm.device.block.Assigned",
        "admin.vm.device.denied.List",
    ]
    .iter()
    .map(|m| call(&d, m, "far", b""))
    .collect();

    assert_eq!(got, vec![ok(""), ok(""), ok(""), ok("")]);
}

#[test]
fn remote_vm_cannot_be_started_or_stopped() {
    let d = with_remote(Daemon::start());

    let got: Vec<Reply> =
        ["admin.vm.Start", "admin.vm.Shutdown", "admin.vm.Kill", "admin.vm.Pause", "admin.vm.Suspend"]
            .iter()
            .map(|m| call(&d, m, "far", b""))
            .collect();

    assert_eq!(
        got,
        vec![
            exc("QubesVMNotHaltedError", "Cannot start a RemoteVM."),
            exc("QubesVMError", "Cannot shutdown a RemoteVM."),
            exc("QubesVMError", "Cannot kill a RemoteVM."),
            exc("QubesVMError", "Cannot pause a RemoteVM."),
            exc("QubesVMError", "Cannot suspend a RemoteVM."),
        ]
    );
}

#[test]
fn remote_vm_current_state_is_running_without_memory() {
    let d = with_remote(Daemon::start());

    let r = call(&d, "admin.vm.CurrentState", "far", b"");

    assert_eq!(r, ok("mem=0 mem_static_max=0 cputime=0 power_state=Running"));
}

#[test]
fn remote_vm_is_created_in_pool_without_volumes() {
    let d = Daemon::start();
    d.ok("admin.vm.CreateInPool.RemoteVM", "dom0", b"name=far label=green pool=varlibqubes");

    let r = call(&d, "admin.vm.volume.List", "far", b"");

    assert_eq!(r, ok(""));
}

#[test]
fn remote_vm_in_unknown_pool_is_refused() {
    let d = Daemon::start();

    let r = call(&d, "admin.vm.CreateInPool.RemoteVM", "dom0", b"name=far label=green pool=nosuch");

    assert_eq!(r, exc("QubesException", "Unknown storage pool nosuch"));
}

#[test]
fn remote_vm_cannot_be_based_on_a_template() {
    let d = Daemon::start().with_template();

    let r = call(&d, "admin.vm.Create.RemoteVM+tpl", "dom0", b"name=far label=green");

    assert_eq!(r, exc("ProtocolError", "RemoteVM cannot be based on template"));
}

#[test]
fn remote_vm_is_removed_although_running() {
    let d = with_remote(Daemon::start());
    d.ok("admin.vm.Remove", "far", b"");

    let r = vm_list(&d);

    assert_eq!(r, ok("dom0 class=AdminVM state=Running uuid=00000000-0000-0000-0000-000000000000\n"));
}

#[test]
fn remote_vm_survives_a_restart() {
    let mut d = with_remote(Daemon::start().with_appvm());
    d.ok("admin.vm.property.Set+relayvm", "far", b"work");
    d.ok("admin.vm.property.Set+remote_name", "far", b"work-on-host2");
    d.restart();

    let got: Vec<Reply> = ["klass", "relayvm", "remote_name"]
        .iter()
        .map(|p| call(&d, &format!("admin.vm.property.Get+{p}"), "far", b""))
        .collect();

    assert_eq!(
        got,
        vec![
            ok("default=True type=str RemoteVM"),
            ok("default=False type=vm work"),
            ok("default=False type=str work-on-host2"),
        ]
    );
}
