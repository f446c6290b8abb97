//! Black-box tests of the firewall, notes, pool, volume, device-listing and internal-socket families over
//! the daemon's real sockets, comparing exact reply bytes with what upstream qubesd sends.
//!
//! Expected bytes follow upstream's code (qubes/api/admin.py, qubes/api/internal.py, qubes/storage/*);
//! where upstream has no answer (it aborts the connection) the daemon's documented choice is pinned.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::reply::{err_reply, ok_reply, shown};
use support::volumes::{read_start, volume_field, volume_path, write_at_start};
use support::Daemon;

const GIB: u64 = 1024 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------------------
// Helpers

fn state(d: &Daemon) -> String {
    d.state.display().to_string()
}

/// `admin.vm.volume.Info` of a `kernel` volume while no kernel is installed.
const NO_KERNEL_INFO: &str = "pool=linux-kernel\nvid=\nsize=0\nusage=0\nrw=False\nsource=\npath=\nsave_on_stop=False\n\
                              snap_on_start=False\nrevisions_to_keep=0\nephemeral=False\nis_outdated=False\n";

/// The reply of `admin.vm.volume.Info` for a volume with an image of its own in the `varlibqubes` pool.
fn own_image_info(d: &Daemon, vid: &str, size: u64, save_on_stop: bool, revisions_to_keep: u32) -> String {
    let save_on_stop = if save_on_stop { "True" } else { "False" };
    ok_reply(&format!(
        "pool=varlibqubes\nvid={vid}\nsize={size}\nusage=0\nrw=True\nsource=\npath={}/{vid}.img\n\
         save_on_stop={save_on_stop}\nsnap_on_start=False\nrevisions_to_keep={revisions_to_keep}\n\
         ephemeral=False\nis_outdated=False\n",
        state(d)
    ))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

/// `admin.pool.Info`'s lines, with the statvfs-derived `size`/`usage` values (which change with the host's
/// disk) replaced by `N` once checked to be numbers.
fn pool_info_shape(d: &Daemon, pool: &str) -> String {
    let info = d.ok(&format!("admin.pool.Info+{pool}"), "dom0", b"");
    info.lines()
        .map(|l| match l.split_once('=') {
            Some((k @ ("size" | "usage" | "data_size" | "data_usage"), v)) => {
                assert!(!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()), "{l:?}");
                format!("{k}=N\n")
            }
            _ => format!("{l}\n"),
        })
        .collect()
}

fn new_pool_dir(d: &Daemon, name: &str) -> PathBuf {
    d.dir.path().join("pools").join(name)
}

fn add_file_pool(d: &Daemon, name: &str) -> PathBuf {
    let dir = new_pool_dir(d, name);
    d.ok("admin.pool.Add+file", "dom0", format!("name={name}\ndir_path={}\n", dir.display()).as_bytes());
    dir
}

// ---------------------------------------------------------------------------------------------------------
// admin.vm.firewall.*

#[test]
fn firewall_get_of_new_qube_is_accept_all() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.vm.firewall.Get", "tpl", b"");

    assert_eq!(shown(&reply), ok_reply("action=accept\n"));
}

#[test]
fn firewall_get_to_dom0_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.vm.firewall.Get", "dom0", b"");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "expected destination to not be AdminVM"));
}

#[test]
fn firewall_set_to_dom0_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.vm.firewall.Set", "dom0", b"action=drop\n");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "expected destination to not be AdminVM"));
}

#[test]
fn firewall_set_replies_empty_ok() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.vm.firewall.Set", "tpl", b"action=drop\n");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn firewall_set_without_payload_is_protocol_error() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.vm.firewall.Set", "tpl", b"");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "expected payload"));
}

#[test]
fn firewall_get_returns_upstream_test_rules_unchanged() {
    let d = Daemon::start().with_template();
    let rules = "action=accept proto=tcp dstports=1-1024\naction=drop proto=icmp comment=No ICMP\naction=accept\n";
    d.ok("admin.vm.firewall.Set", "tpl", rules.as_bytes());

    let reply = d.call("admin.vm.firewall.Get", "tpl", b"");

    assert_eq!(shown(&reply), ok_reply(rules));
}

#[test]
fn firewall_get_prints_rules_in_canonical_order() {
    let d = Daemon::start().with_template();
    d.ok(
        "admin.vm.firewall.Set",
        "tpl",
        b"dstports=443 proto=tcp expire=4099450306 dst4=10.1.2.3/8 action=drop comment=web only\n\
          icmptype=8 specialtarget=dns proto=icmp action=accept dstname=example.com\n\
          dst6=2001:db8::1/32 action=accept\n\
          action=accept\n",
    );

    let reply = d.call("admin.vm.firewall.Get", "tpl", b"");

    assert_eq!(
        shown(&reply),
        ok_reply(
            "action=drop expire=4099450306 dst4=10.0.0.0/8 proto=tcp dstports=443-443 comment=web only\n\
             action=accept dsthost=example.com proto=icmp specialtarget=dns icmptype=8\n\
             action=accept dst6=2001:db8::/32\n\
             action=accept\n"
        )
    );
}

#[test]
fn firewall_get_omits_rules_already_expired() {
    let d = Daemon::start().with_template();
    d.ok(
        "admin.vm.firewall.Set",
        "tpl",
        b"action=drop expire=1499450306 proto=udp\naction=drop expire=2099450306 proto=udp\naction=accept\n",
    );

    let reply = d.call("admin.vm.firewall.Get", "tpl", b"");

    assert_eq!(shown(&reply), ok_reply("action=drop expire=2099450306 proto=udp\naction=accept\n"));
}

#[test]
fn firewall_rule_disappears_from_get_once_it_expires() {
    let d = Daemon::start().with_template();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let expire = now + 2;
    d.ok("admin.vm.firewall.Set", "tpl", format!("action=drop expire={expire}\naction=accept\n").as_bytes());
    let deadline = Instant::now() + Duration::from_secs(10);
    let still_listed = || d.ok("admin.vm.firewall.Get", "tpl", b"").contains("expire=");
    while still_listed() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }

    let reply = d.call("admin.vm.firewall.Get", "tpl", b"");

    assert_eq!(shown(&reply), ok_reply("action=accept\n"));
}

#[test]
fn firewall_set_unknown_key_is_refused() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.vm.firewall.Set", "tpl", b"action=accept protoxyz=tcp dst4=127.0.0.1\naction=drop\n");

    // Upstream aborts (a bare ValueError); the daemon names the error instead, as the spec recommends.
    assert_eq!(shown(&reply), err_reply("QubesValueError", "Unknown firewall rule key: 'protoxyz'"));
}

#[test]
fn firewall_set_invalid_rule_leaves_rules_unchanged() {
    let d = Daemon::start().with_template();
    d.ok("admin.vm.firewall.Set", "tpl", b"action=drop proto=udp\naction=accept\n");
    d.call("admin.vm.firewall.Set", "tpl", b"action=accept protoxyz=tcp dst4=127.0.0.1\naction=drop\n");

    let reply = d.call("admin.vm.firewall.Get", "tpl", b"");

    assert_eq!(shown(&reply), ok_reply("action=drop proto=udp\naction=accept\n"));
}

#[test]
fn firewall_set_rule_without_action_leaves_rules_unchanged() {
    let d = Daemon::start().with_template();
    d.call("admin.vm.firewall.Set", "tpl", b"proto=tcp dstports=1-1024\naction=drop\n");

    let reply = d.call("admin.vm.firewall.Get", "tpl", b"");

    assert_eq!(shown(&reply), ok_reply("action=accept\n"));
}

#[test]
fn firewall_set_two_rules_on_one_line_leaves_rules_unchanged() {
    let d = Daemon::start().with_template();
    d.call("admin.vm.firewall.Set", "tpl", b"action=accept proto=tcp dstports=1-1024 action=drop\n");

    let reply = d.call("admin.vm.firewall.Get", "tpl", b"");

    assert_eq!(shown(&reply), ok_reply("action=accept\n"));
}

#[test]
fn firewall_set_non_ascii_is_protocol_error() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.vm.firewall.Set", "tpl", "action=accept comment=ążźł\naction=drop\n".as_bytes());

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Rules contains non-ASCII characters"));
}

#[test]
fn firewall_reload_replies_empty_ok() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.vm.firewall.Reload", "tpl", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn firewall_reload_to_dom0_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.vm.firewall.Reload", "dom0", b"");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "expected destination to not be AdminVM"));
}

// ---------------------------------------------------------------------------------------------------------
// admin.vm.notes.*

#[test]
fn notes_of_new_qube_are_empty() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.vm.notes.Get", "tpl", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn notes_set_replies_empty_ok() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.vm.notes.Set", "tpl", b"For Your Eyes Only");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn notes_keep_tabs_and_newlines() {
    let d = Daemon::start().with_template();
    d.ok("admin.vm.notes.Set", "tpl", b"def python_example_function():\n\tpass");

    let reply = d.call("admin.vm.notes.Get", "tpl", b"");

    assert_eq!(shown(&reply), ok_reply("def python_example_function():\n\tpass"));
}

#[test]
fn notes_keep_non_ascii_text() {
    let d = Daemon::start().with_template();
    d.ok("admin.vm.notes.Set", "tpl", "zażółć gęślą jaźń ✓".as_bytes());

    let reply = d.call("admin.vm.notes.Get", "tpl", b"");

    assert_eq!(shown(&reply), ok_reply("zażółć gęślą jaźń ✓"));
}

#[test]
fn notes_replace_backspace_nbsp_and_zero_width_with_underscore() {
    let d = Daemon::start().with_template();
    d.ok("admin.vm.notes.Set", "tpl", "\u{8}\u{a0}\u{200b}\u{200c}\u{200d}".as_bytes());

    let reply = d.call("admin.vm.notes.Get", "tpl", b"");

    assert_eq!(shown(&reply), ok_reply("_____"));
}

#[test]
fn notes_set_invalid_utf8_is_protocol_error() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.vm.notes.Set", "tpl", b"\xd8");

    assert_eq!(
        shown(&reply),
        err_reply(
            "ProtocolError",
            "Unable to sanitise qube notes: 'utf-8' codec can't decode byte 0xd8 in position 0: unexpected end of data"
        )
    );
}

#[test]
fn notes_set_invalid_utf8_leaves_notes_unchanged() {
    let d = Daemon::start().with_template();
    d.ok("admin.vm.notes.Set", "tpl", b"before");
    d.call("admin.vm.notes.Set", "tpl", b"ok\xffno");

    let reply = d.call("admin.vm.notes.Get", "tpl", b"");

    assert_eq!(shown(&reply), ok_reply("before"));
}

#[test]
fn notes_set_over_256000_bytes_is_dropped_unanswered_by_the_64k_frame_limit() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.vm.notes.Set", "tpl", &vec![b'x'; 256_001]);

    assert_eq!(shown(&reply), "");
}

#[test]
fn notes_set_oversized_leaves_notes_unchanged() {
    let d = Daemon::start().with_template();
    d.ok("admin.vm.notes.Set", "tpl", b"before");
    d.call("admin.vm.notes.Set", "tpl", &vec![b'x'; 256_001]);

    let reply = d.call("admin.vm.notes.Get", "tpl", b"");

    assert_eq!(shown(&reply), ok_reply("before"));
}

#[test]
fn notes_get_to_dom0_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.vm.notes.Get", "dom0", b"");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "expected destination to not be AdminVM"));
}

// ---------------------------------------------------------------------------------------------------------
// admin.pool.*

#[test]
fn pool_list_of_fresh_daemon_is_the_builtin_pools() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.List", "dom0", b"");

    assert_eq!(shown(&reply), ok_reply("varlibqubes\nlinux-kernel\n"));
}

#[test]
fn pool_list_appends_added_pools_in_creation_order() {
    let d = Daemon::start();
    add_file_pool(&d, "zeta");
    add_file_pool(&d, "alpha");

    let reply = d.call("admin.pool.List", "dom0", b"");

    assert_eq!(shown(&reply), ok_reply("varlibqubes\nlinux-kernel\nzeta\nalpha\n"));
}

#[test]
fn pool_list_drivers_prints_constructor_parameters() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.ListDrivers", "dom0", b"");

    assert_eq!(shown(&reply), ok_reply("file revisions_to_keep dir_path ephemeral_volatile\nlinux-kernel dir_path\n"));
}

#[test]
fn pool_list_to_non_dom0_is_protocol_error() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.pool.List", "tpl", b"");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "expected destination to be AdminVM"));
}

#[test]
fn pool_info_of_varlibqubes_is_sorted_config_then_size_and_usage() {
    let d = Daemon::start();

    let shape = pool_info_shape(&d, "varlibqubes");

    assert_eq!(
        shape,
        format!(
            "dir_path={}\ndriver=file\nephemeral_volatile=False\nname=varlibqubes\nrevisions_to_keep=1\nsize=N\nusage=N\n",
            state(&d)
        )
    );
}

#[test]
fn pool_info_of_linux_kernel_is_sorted_config_then_size_and_usage() {
    let d = Daemon::start();

    let shape = pool_info_shape(&d, "linux-kernel");

    assert_eq!(
        shape,
        format!("dir_path={}/vm-kernels\ndriver=linux-kernel\nname=linux-kernel\nsize=N\nusage=N\n", state(&d))
    );
}

#[test]
fn pool_usage_details_lists_data_size_and_data_usage_sorted() {
    let d = Daemon::start();

    let reply = d.ok("admin.pool.UsageDetails+varlibqubes", "dom0", b"");

    let keys: Vec<&str> = reply.lines().map(|l| l.split_once('=').map_or(l, |(k, _)| k)).collect();
    assert_eq!(keys, ["data_size", "data_usage"]);
}

#[test]
fn pool_add_replies_empty_ok() {
    let d = Daemon::start();
    let dir = new_pool_dir(&d, "pool1");

    let reply = d.call("admin.pool.Add+file", "dom0", format!("name=pool1\ndir_path={}\n", dir.display()).as_bytes());

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn pool_add_creates_the_pool_directory() {
    let d = Daemon::start();

    let dir = add_file_pool(&d, "pool1");

    assert!(dir.is_dir(), "{} missing", dir.display());
}

#[test]
fn pool_info_of_added_file_pool_shows_defaults() {
    let d = Daemon::start();
    let dir = add_file_pool(&d, "pool1");

    let shape = pool_info_shape(&d, "pool1");

    assert_eq!(
        shape,
        format!(
            "dir_path={}\ndriver=file\nephemeral_volatile=False\nname=pool1\nrevisions_to_keep=1\nsize=N\nusage=N\n",
            dir.display()
        )
    );
}

#[test]
fn pool_info_of_added_file_pool_shows_given_options() {
    let d = Daemon::start();
    let dir = new_pool_dir(&d, "pool1");
    d.ok(
        "admin.pool.Add+file",
        "dom0",
        format!("name=pool1\ndir_path={}\nrevisions_to_keep=0\nephemeral_volatile=True", dir.display()).as_bytes(),
    );

    let shape = pool_info_shape(&d, "pool1");

    assert_eq!(
        shape,
        format!(
            "dir_path={}\ndriver=file\nephemeral_volatile=True\nname=pool1\nrevisions_to_keep=0\nsize=N\nusage=N\n",
            dir.display()
        )
    );
}

#[test]
fn pool_add_unknown_driver_is_permission_denied() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Add+lvm_thin_nope", "dom0", b"name=p\nvolume_group=x\n");

    assert_eq!(shown(&reply), err_reply("PermissionDenied", "Argument not in 'available drivers'"));
}

#[test]
fn pool_add_non_ascii_payload_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Add+file", "dom0", "name=pół\ndir_path=/tmp/x\n".as_bytes());

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Pool parameters contains non-ASCII characters"));
}

#[test]
fn pool_add_line_without_equal_sign_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Add+file", "dom0", b"name=p\ndir_path\n");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Options must be separated by equal sign"));
}

#[test]
fn pool_add_repeated_option_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Add+file", "dom0", b"name=p\ndir_path=/tmp/a\ndir_path=/tmp/b\n");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Options must be unique"));
}

#[test]
fn pool_add_without_name_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Add+file", "dom0", b"dir_path=/tmp/a\n");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Pool configuration must contain key: name"));
}

#[test]
fn pool_add_name_outside_safe_set_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Add+file", "dom0", b"name=a/b\ndir_path=/tmp/a\n");

    assert_eq!(
        shown(&reply),
        err_reply(
            "ProtocolError",
            "Pool name must be in safe set: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
        )
    );
}

#[test]
fn pool_add_unknown_option_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Add+file", "dom0", b"name=p\ndir_path=/tmp/a\nvolume_group=vg\n");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Unexpected driver options found"));
}

#[test]
fn pool_add_without_required_option_is_qubes_exception() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Add+file", "dom0", b"name=p\nrevisions_to_keep=1\n");

    assert_eq!(shown(&reply), err_reply("QubesException", "missing required driver options: dir_path"));
}

#[test]
fn pool_add_existing_name_is_pool_in_use() {
    let d = Daemon::start();
    let dir = new_pool_dir(&d, "again");

    let reply =
        d.call("admin.pool.Add+file", "dom0", format!("name=varlibqubes\ndir_path={}\n", dir.display()).as_bytes());

    assert_eq!(shown(&reply), err_reply("QubesPoolInUseError", "Storage pool is in use: 'varlibqubes'"));
}

#[test]
fn pool_add_refused_leaves_pool_list_unchanged() {
    let d = Daemon::start();
    d.call("admin.pool.Add+file", "dom0", b"name=p\nrevisions_to_keep=1\n");

    let reply = d.call("admin.pool.List", "dom0", b"");

    assert_eq!(shown(&reply), ok_reply("varlibqubes\nlinux-kernel\n"));
}

#[test]
fn pool_remove_replies_empty_ok() {
    let d = Daemon::start();
    add_file_pool(&d, "pool1");

    let reply = d.call("admin.pool.Remove+pool1", "dom0", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn pool_remove_drops_pool_from_list() {
    let d = Daemon::start();
    add_file_pool(&d, "pool1");
    add_file_pool(&d, "pool2");
    d.ok("admin.pool.Remove+pool1", "dom0", b"");

    let reply = d.call("admin.pool.List", "dom0", b"");

    assert_eq!(shown(&reply), ok_reply("varlibqubes\nlinux-kernel\npool2\n"));
}

#[test]
fn pool_remove_of_default_pool_is_pool_in_use() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Remove+varlibqubes", "dom0", b"");

    assert_eq!(shown(&reply), err_reply("QubesPoolInUseError", "Storage pool is in use: set as default_pool"));
}

#[test]
fn pool_remove_of_default_kernel_pool_is_pool_in_use() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Remove+linux-kernel", "dom0", b"");

    assert_eq!(shown(&reply), err_reply("QubesPoolInUseError", "Storage pool is in use: set as default_pool_kernel"));
}

#[test]
fn pool_remove_of_pool_holding_volumes_is_pool_in_use() {
    let d = Daemon::start();
    add_file_pool(&d, "pool1");
    d.ok("admin.vm.CreateInPool.TemplateVM", "dom0", b"name=tpl label=red pool=pool1");

    let reply = d.call("admin.pool.Remove+pool1", "dom0", b"");

    // Upstream puts the pool object's repr here (an address); the daemon names the pool instead.
    assert_eq!(shown(&reply), err_reply("QubesPoolInUseError", "Storage pool is in use: 'pool1'"));
}

/// `pool=` moves the read-write volumes that are not snapshots; the read-only kernel volume stays in
/// `default_pool_kernel`, as upstream.
#[test]
fn create_in_pool_leaves_the_kernel_volume_in_the_kernel_pool() {
    let d = Daemon::start();
    add_file_pool(&d, "pool1");
    d.ok("admin.vm.CreateInPool.TemplateVM", "dom0", b"name=tpl label=red pool=pool1");

    let pools: Vec<String> =
        ["root", "private", "volatile", "kernel"].iter().map(|v| volume_field(&d, "tpl", v, "pool")).collect();

    assert_eq!(pools, ["pool1", "pool1", "pool1", "linux-kernel"]);
}

#[test]
fn pool_remove_unknown_pool_is_permission_denied() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Remove+nope", "dom0", b"");

    assert_eq!(shown(&reply), err_reply("PermissionDenied", "Argument not in 'pools'"));
}

#[test]
fn pool_info_unknown_pool_is_permission_denied() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Info+nope", "dom0", b"");

    assert_eq!(shown(&reply), err_reply("PermissionDenied", "Argument not in 'pools'"));
}

#[test]
fn pool_usage_details_unknown_pool_is_permission_denied() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.UsageDetails+nope", "dom0", b"");

    assert_eq!(shown(&reply), err_reply("PermissionDenied", "Argument not in 'pools'"));
}

#[test]
fn pool_volume_list_unknown_pool_is_permission_denied() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.volume.List+nope", "dom0", b"");

    assert_eq!(shown(&reply), err_reply("PermissionDenied", "Argument not in 'pools'"));
}

#[test]
fn pool_set_revisions_to_keep_unknown_pool_is_permission_denied() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Set.revisions_to_keep+nope", "dom0", b"1");

    assert_eq!(shown(&reply), err_reply("PermissionDenied", "Argument not in 'pools'"));
}

#[test]
fn pool_set_ephemeral_volatile_unknown_pool_is_permission_denied() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Set.ephemeral_volatile+nope", "dom0", b"True");

    assert_eq!(shown(&reply), err_reply("PermissionDenied", "Argument not in 'pools'"));
}

#[test]
fn pool_set_revisions_to_keep_replies_empty_ok() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Set.revisions_to_keep+varlibqubes", "dom0", b"0");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn pool_set_revisions_to_keep_minus_one_shows_in_info() {
    let d = Daemon::start();
    d.ok("admin.pool.Set.revisions_to_keep+varlibqubes", "dom0", b"-1");

    let info = d.ok("admin.pool.Info+varlibqubes", "dom0", b"");

    assert!(info.contains("\nrevisions_to_keep=-1\n"), "{info:?}");
}

#[test]
fn pool_set_revisions_to_keep_above_file_driver_limit_is_refused() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Set.revisions_to_keep+varlibqubes", "dom0", b"2");

    // Upstream's file driver raises NotImplementedError (no reply); the daemon names the limit.
    assert_eq!(shown(&reply), err_reply("StoragePoolException", "file pool cannot keep more than 1 revisions"));
}

#[test]
fn pool_set_revisions_to_keep_minus_two_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Set.revisions_to_keep+varlibqubes", "dom0", b"-2");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Value can't be lower than -1"));
}

#[test]
fn pool_set_revisions_to_keep_leading_zero_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Set.revisions_to_keep+varlibqubes", "dom0", b"01");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Revisions to keep contains spurious leading zeros"));
}

#[test]
fn pool_set_revisions_to_keep_not_a_number_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Set.revisions_to_keep+varlibqubes", "dom0", b"abc");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Revisions to keep contains non ASCII digits"));
}

#[test]
fn pool_set_revisions_to_keep_refused_leaves_value_unchanged() {
    let d = Daemon::start();
    d.call("admin.pool.Set.revisions_to_keep+varlibqubes", "dom0", b"2");

    let info = d.ok("admin.pool.Info+varlibqubes", "dom0", b"");

    assert!(info.contains("\nrevisions_to_keep=1\n"), "{info:?}");
}

#[test]
fn pool_set_ephemeral_volatile_shows_in_info() {
    let d = Daemon::start();
    d.ok("admin.pool.Set.ephemeral_volatile+varlibqubes", "dom0", b"true");

    let info = d.ok("admin.pool.Info+varlibqubes", "dom0", b"");

    assert!(info.contains("\nephemeral_volatile=True\n"), "{info:?}");
}

#[test]
fn pool_set_ephemeral_volatile_not_a_boolean_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call("admin.pool.Set.ephemeral_volatile+varlibqubes", "dom0", b"abc");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Payload is not boolean ASCII"));
}

#[test]
fn pool_volume_list_of_fresh_pool_is_empty() {
    let d = Daemon::start();
    add_file_pool(&d, "pool1");

    let reply = d.call("admin.pool.volume.List+pool1", "dom0", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn pool_volume_list_lists_every_volume_id_in_the_pool() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.pool.volume.List+varlibqubes", "dom0", b"");

    assert_eq!(
        shown(&reply),
        ok_reply(
            "appvms/work/private\nappvms/work/root\nappvms/work/volatile\n\
             vm-templates/tpl/private\nvm-templates/tpl/root\nvm-templates/tpl/volatile\n"
        )
    );
}

// ---------------------------------------------------------------------------------------------------------
// admin.vm.volume.*

#[test]
fn volume_list_is_in_config_order() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.List", "work", b"");

    assert_eq!(shown(&reply), ok_reply("root\nprivate\nvolatile\nkernel\n"));
}

#[test]
fn volume_list_of_dom0_is_empty() {
    let d = Daemon::start();

    let reply = d.call("admin.vm.volume.List", "dom0", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn volume_info_of_appvm_root_is_a_snapshot_of_the_template_root() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Info+root", "work", b"");

    assert_eq!(
        shown(&reply),
        ok_reply(&format!(
            "pool=varlibqubes\nvid=appvms/work/root\nsize={}\nusage=0\nrw=True\nsource=vm-templates/tpl/root\n\
             path={}/vm-templates/tpl/root.img\nsave_on_stop=False\nsnap_on_start=True\nrevisions_to_keep=0\n\
             ephemeral=False\nis_outdated=False\n",
            10 * GIB,
            state(&d)
        ))
    );
}

#[test]
fn volume_info_of_appvm_private() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Info+private", "work", b"");

    assert_eq!(shown(&reply), own_image_info(&d, "appvms/work/private", 2 * GIB, true, 1));
}

#[test]
fn volume_info_of_appvm_volatile_keeps_no_revisions() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Info+volatile", "work", b"");

    assert_eq!(shown(&reply), own_image_info(&d, "appvms/work/volatile", 10 * GIB, false, 0));
}

#[test]
fn volume_info_of_appvm_kernel_without_kernels_installed() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Info+kernel", "work", b"");

    assert_eq!(shown(&reply), ok_reply(NO_KERNEL_INFO));
}

#[test]
fn volume_info_of_template_root() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.vm.volume.Info+root", "tpl", b"");

    assert_eq!(shown(&reply), own_image_info(&d, "vm-templates/tpl/root", 10 * GIB, true, 1));
}

#[test]
fn volume_info_of_template_private() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.vm.volume.Info+private", "tpl", b"");

    assert_eq!(shown(&reply), own_image_info(&d, "vm-templates/tpl/private", 2 * GIB, true, 1));
}

#[test]
fn volume_info_of_template_volatile() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.vm.volume.Info+volatile", "tpl", b"");

    assert_eq!(shown(&reply), own_image_info(&d, "vm-templates/tpl/volatile", 10 * GIB, false, 0));
}

#[test]
fn volume_info_of_template_kernel() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.vm.volume.Info+kernel", "tpl", b"");

    assert_eq!(shown(&reply), ok_reply(NO_KERNEL_INFO));
}

#[test]
fn volume_info_unknown_volume_is_permission_denied() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Info+no-such-volume", "work", b"");

    assert_eq!(shown(&reply), err_reply("PermissionDenied", "Argument not in 'work volumes'"));
}

#[test]
fn volume_info_of_dom0_volume_is_permission_denied() {
    let d = Daemon::start();

    let reply = d.call("admin.vm.volume.Info+private", "dom0", b"");

    assert_eq!(shown(&reply), err_reply("PermissionDenied", "Argument not in 'dom0 volumes'"));
}

#[test]
fn volume_info_without_argument_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Info", "work", b"");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "expected an argument"));
}

#[test]
fn volume_list_snapshots_of_fresh_volume_is_empty() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.ListSnapshots+private", "work", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn volume_list_snapshots_after_clear_lists_the_replaced_content_as_one_revision() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.volume.Clear+private", "work", b"");

    let listed = d.ok("admin.vm.volume.ListSnapshots+private", "work", b"");

    let revision = listed.strip_suffix("-back\n").unwrap_or_else(|| panic!("{listed:?}"));
    assert!(!revision.is_empty() && revision.bytes().all(|b| b.is_ascii_digit()), "{listed:?}");
}

#[test]
fn volume_list_snapshots_unknown_volume_is_permission_denied() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.ListSnapshots+nope", "work", b"");

    assert_eq!(shown(&reply), err_reply("PermissionDenied", "Argument not in 'work volumes'"));
}

#[test]
fn volume_resize_grow_replies_empty_ok() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Resize+private", "work", b"3221225472");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn volume_resize_grow_shows_new_size_in_info() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.volume.Resize+private", "work", b"3221225472");

    let size = volume_field(&d, "work", "private", "size");

    assert_eq!(size, "3221225472");
}

#[test]
fn volume_resize_grow_extends_the_image_file() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.volume.Resize+private", "work", b"3221225472");

    let len = file_len(&volume_path(&d, "work", "private"));

    assert_eq!(len, 3 * GIB);
}

#[test]
fn volume_resize_strips_surrounding_whitespace() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Resize+private", "work", b" 3221225472\n");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn volume_resize_shrink_is_refused() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Resize+private", "work", b"1024");

    assert_eq!(
        shown(&reply),
        err_reply("StoragePoolException", "For your own safety, shrinking of private is disabled (1024 < 2147483648)")
    );
}

#[test]
fn volume_resize_shrink_leaves_size_unchanged() {
    let d = Daemon::start().with_appvm();
    d.call("admin.vm.volume.Resize+private", "work", b"1024");

    let size = volume_field(&d, "work", "private", "size");

    assert_eq!(size, (2 * GIB).to_string());
}

#[test]
fn volume_resize_of_snapshot_volume_is_refused() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Resize+root", "work", b"21474836480");

    // Upstream's message, missing space included (qubes/storage/file.py).
    assert_eq!(
        shown(&reply),
        err_reply("StoragePoolException", "Cannot resize volume based on a template - resizethe template instead")
    );
}

#[test]
fn volume_resize_of_read_only_volume_is_refused() {
    let d = Daemon::start().with_template();
    d.ok("admin.vm.volume.Set.rw+private", "tpl", b"False");

    let reply = d.call("admin.vm.volume.Resize+private", "tpl", b"3221225472");

    assert_eq!(
        shown(&reply),
        err_reply("StoragePoolException", "Can not resize readonly volume vm-templates/tpl/private")
    );
}

#[test]
fn volume_resize_leading_zero_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Resize+private", "work", b"03221225472");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Volume size contains spurious leading zeros"));
}

#[test]
fn volume_resize_not_a_number_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Resize+private", "work", b"-1");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Volume size contains non ASCII digits"));
}

#[test]
fn volume_resize_twenty_digits_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Resize+private", "work", b"10000000000000000000");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Volume size is bigger than 19 decimal digits"));
}

#[test]
fn volume_clear_replies_empty_ok() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Clear+private", "work", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn volume_clear_replaces_content_with_zeroes_of_the_same_size() {
    let d = Daemon::start().with_appvm();
    write_at_start(&volume_path(&d, "work", "private"), b"secret data");
    d.ok("admin.vm.volume.Clear+private", "work", b"");

    let path = volume_path(&d, "work", "private");

    assert_eq!((read_start(&path, 11), file_len(&path)), (vec![0u8; 11], 2 * GIB));
}

#[test]
fn volume_clear_of_volatile_volume_is_refused() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Clear+volatile", "work", b"");

    assert_eq!(
        shown(&reply),
        err_reply("StoragePoolException", "Can not import into save_on_stop=False volume appvms/work/volatile")
    );
}

#[test]
fn volume_set_rw_false_shows_in_info() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.volume.Set.rw+private", "work", b"False");

    let rw = volume_field(&d, "work", "private", "rw");

    assert_eq!(rw, "False");
}

#[test]
fn volume_set_rw_not_a_boolean_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Set.rw+private", "work", b"abc");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Payload is not boolean ASCII"));
}

#[test]
fn volume_set_revisions_to_keep_zero_shows_in_info() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.volume.Set.revisions_to_keep+private", "work", b"0");

    let revisions = volume_field(&d, "work", "private", "revisions_to_keep");

    assert_eq!(revisions, "0");
}

#[test]
fn volume_set_revisions_to_keep_minus_one_shows_in_info() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.volume.Set.revisions_to_keep+private", "work", b"-1");

    let revisions = volume_field(&d, "work", "private", "revisions_to_keep");

    assert_eq!(revisions, "-1");
}

#[test]
fn volume_set_revisions_to_keep_minus_two_is_value_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Set.revisions_to_keep+private", "work", b"-2");

    assert_eq!(shown(&reply), err_reply("QubesValueError", "Invalid value for revisions_to_keep"));
}

#[test]
fn volume_set_revisions_to_keep_leading_zero_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Set.revisions_to_keep+private", "work", b"01");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Revisions to keep contains spurious leading zeros"));
}

#[test]
fn volume_set_revisions_to_keep_is_not_stripped() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Set.revisions_to_keep+private", "work", b"1\n");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Revisions to keep contains non ASCII digits"));
}

#[test]
fn volume_set_revisions_to_keep_above_file_driver_limit_is_refused() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Set.revisions_to_keep+private", "work", b"2");

    // Upstream's FileVolume raises NotImplementedError (no reply); the daemon names the limit.
    assert_eq!(shown(&reply), err_reply("StoragePoolException", "file pool cannot keep more than 1 revisions"));
}

#[test]
fn volume_set_ephemeral_on_volatile_shows_in_info() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.volume.Set.ephemeral+volatile", "work", b"True");

    let ephemeral = volume_field(&d, "work", "volatile", "ephemeral");

    assert_eq!(ephemeral, "True");
}

#[test]
fn volume_ephemeral_of_volatile_follows_pool_ephemeral_volatile() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.pool.Set.ephemeral_volatile+varlibqubes", "dom0", b"True");

    let ephemeral = volume_field(&d, "work", "volatile", "ephemeral");

    assert_eq!(ephemeral, "True");
}

#[test]
fn volume_set_ephemeral_on_private_is_value_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Set.ephemeral+private", "work", b"True");

    assert_eq!(
        shown(&reply),
        err_reply(
            "QubesValueError",
            "Cannot enable ephemeral on snap_on_start or save_on_stop or non-dom0 or not writable volume"
        )
    );
}

#[test]
fn volume_set_ephemeral_not_a_boolean_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.Set.ephemeral+volatile", "work", b"abc");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Payload is not boolean ASCII"));
}

#[test]
fn volume_clone_from_returns_32_alphanumeric_characters() {
    let d = Daemon::start().with_appvm();

    let token = d.ok("admin.vm.volume.CloneFrom+private", "work", b"");

    assert!(token.len() == 32 && token.bytes().all(|b| b.is_ascii_alphanumeric()), "{token:?}");
}

#[test]
fn volume_clone_from_unknown_volume_is_permission_denied() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.CloneFrom+nope", "work", b"");

    assert_eq!(shown(&reply), err_reply("PermissionDenied", "Argument not in 'work volumes'"));
}

#[test]
fn volume_clone_to_replies_empty_ok() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=other label=red");
    let token = d.ok("admin.vm.volume.CloneFrom+private", "work", b"");

    let reply = d.call("admin.vm.volume.CloneTo+private", "other", token.as_bytes());

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn volume_clone_to_copies_the_source_data() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=other label=red");
    write_at_start(&volume_path(&d, "work", "private"), b"cloned bytes\x00\x01\x02");
    let token = d.ok("admin.vm.volume.CloneFrom+private", "work", b"");
    d.ok("admin.vm.volume.CloneTo+private", "other", token.as_bytes());

    let copied = read_start(&volume_path(&d, "other", "private"), 15);

    assert_eq!(copied, b"cloned bytes\x00\x01\x02");
}

#[test]
fn volume_clone_to_takes_the_source_size() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=other label=red");
    d.ok("admin.vm.volume.Resize+private", "work", b"3221225472");
    let token = d.ok("admin.vm.volume.CloneFrom+private", "work", b"");
    d.ok("admin.vm.volume.CloneTo+private", "other", token.as_bytes());

    let sizes = (volume_field(&d, "other", "private", "size"), file_len(&volume_path(&d, "other", "private")));

    assert_eq!(sizes, ("3221225472".to_string(), 3 * GIB));
}

#[test]
fn volume_clone_token_is_single_use() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=other label=red");
    let token = d.ok("admin.vm.volume.CloneFrom+private", "work", b"");
    d.ok("admin.vm.volume.CloneTo+private", "other", token.as_bytes());

    let reply = d.call("admin.vm.volume.CloneTo+private", "other", token.as_bytes());

    // Upstream's exception is also a KeyError, whose str() quotes the message.
    assert_eq!(
        shown(&reply),
        err_reply("QubesVolumeCopyTokenNotFoundError", "'Token to clone volume of qube was not found'")
    );
}

#[test]
fn volume_clone_to_unknown_token_is_token_not_found() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.volume.CloneTo+private", "work", b"0123456789abcdef0123456789abcdef");

    assert_eq!(
        shown(&reply),
        err_reply("QubesVolumeCopyTokenNotFoundError", "'Token to clone volume of qube was not found'")
    );
}

#[test]
fn volume_clone_to_unknown_volume_is_permission_denied() {
    let d = Daemon::start().with_appvm();
    let token = d.ok("admin.vm.volume.CloneFrom+private", "work", b"");

    let reply = d.call("admin.vm.volume.CloneTo+nope", "tpl", token.as_bytes());

    assert_eq!(shown(&reply), err_reply("PermissionDenied", "Argument not in 'tpl volumes'"));
}

#[test]
fn volume_methods_on_unknown_volume_are_permission_denied() {
    let d = Daemon::start().with_appvm();
    let calls: [(&str, &[u8]); 6] = [
        ("admin.vm.volume.Resize+nope", b"1"),
        ("admin.vm.volume.Clear+nope", b""),
        ("admin.vm.volume.Revert+nope", b"1-back"),
        ("admin.vm.volume.Set.rw+nope", b"True"),
        ("admin.vm.volume.Set.revisions_to_keep+nope", b"1"),
        ("admin.vm.volume.Set.ephemeral+nope", b"True"),
    ];

    let replies: Vec<String> = calls.iter().map(|(m, p)| shown(&d.call(m, "work", p))).collect();

    assert_eq!(replies, vec![err_reply("PermissionDenied", "Argument not in 'work volumes'"); 6]);
}

// ---------------------------------------------------------------------------------------------------------
// Devices

#[test]
fn device_lists_are_empty() {
    let d = Daemon::start().with_appvm();
    let methods = [
        "admin.vm.device.pci.Available",
        "admin.vm.device.pci.Assigned",
        "admin.vm.device.pci.Attached",
        "admin.vm.device.block.Available",
        "admin.vm.device.block.Assigned",
        "admin.vm.device.block.Attached",
    ];

    let replies: Vec<String> = methods.iter().map(|m| shown(&d.call(m, "work", b""))).collect();

    assert_eq!(replies, vec![ok_reply(""); 6]);
}

#[test]
fn device_lists_of_one_unknown_device_are_empty() {
    let d = Daemon::start().with_appvm();
    let methods = [
        "admin.vm.device.pci.Available+00_1f.2",
        "admin.vm.device.pci.Assigned+dom0+00_1f.2",
        "admin.vm.device.pci.Attached+dom0+00_1f.2",
        "admin.vm.device.block.Available+sda",
        "admin.vm.device.block.Assigned+sys-usb+sda",
        "admin.vm.device.block.Attached+sys-usb+sda",
    ];

    let replies: Vec<String> = methods.iter().map(|m| shown(&d.call(m, "work", b""))).collect();

    assert_eq!(replies, vec![ok_reply(""); 6]);
}

#[test]
fn device_available_on_dom0_is_empty() {
    let d = Daemon::start();

    let reply = d.call("admin.vm.device.pci.Available", "dom0", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn deviceclass_list_names_pci_and_block() {
    let d = Daemon::start();

    let reply = d.call("admin.deviceclass.List", "dom0", b"");

    assert_eq!(shown(&reply), ok_reply("pci\nblock\n"));
}

#[test]
fn deviceclass_list_to_non_dom0_is_protocol_error() {
    let d = Daemon::start().with_template();

    let reply = d.call("admin.deviceclass.List", "tpl", b"");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "expected destination to be AdminVM"));
}

// ---------------------------------------------------------------------------------------------------------
// Internal socket

fn system_info(d: &Daemon) -> serde_json::Value {
    let reply = d.call_internal("internal.GetSystemInfo", "dom0", b"");
    let json = reply.strip_prefix(b"0\0").unwrap_or_else(|| panic!("{}", shown(&reply)));
    serde_json::from_slice(json).expect("GetSystemInfo is JSON")
}

#[test]
fn system_info_lists_every_qube_under_domains() {
    let d = Daemon::start().with_appvm();

    let info = system_info(&d);

    let names: Vec<&String> = info["domains"].as_object().expect("domains object").keys().collect();
    assert_eq!(names, ["dom0", "tpl", "work"]);
}

#[test]
fn system_info_gives_each_qube_the_policy_fields() {
    let d = Daemon::start().with_appvm();

    let info = system_info(&d);

    let mut keys: Vec<&String> = info["domains"]["work"].as_object().expect("qube object").keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "default_dispvm",
            "guivm",
            "icon",
            "internal",
            "label",
            "power_state",
            "relayvm",
            "tags",
            "template_for_dispvms",
            "transport_rpc",
            "type",
            "uuid"
        ]
    );
}

#[test]
fn system_info_describes_an_appvm() {
    let d = Daemon::start().with_appvm();
    let uuid = d.ok("admin.vm.property.Get+uuid", "work", b"");

    let mut work = system_info(&d)["domains"]["work"].clone();

    work["tags"].as_array_mut().expect("tags array").sort_by_key(|t| t.to_string());
    assert_eq!(
        work,
        serde_json::json!({
            "internal": null,
            "tags": ["audiovm-dom0", "created-by-dom0", "guivm-dom0"],
            "type": "AppVM",
            "template_for_dispvms": false,
            "default_dispvm": null,
            "icon": "appvm-red",
            "label": "0xcc0000",
            "guivm": "dom0",
            "relayvm": null,
            "transport_rpc": null,
            "power_state": "Halted",
            "uuid": uuid.rsplit(' ').next().expect("uuid value"),
        })
    );
}

#[test]
fn system_info_describes_dom0() {
    let d = Daemon::start();

    let dom0 = system_info(&d)["domains"]["dom0"].clone();

    assert_eq!(
        dom0,
        serde_json::json!({
            "internal": null,
            "tags": [],
            "type": "AdminVM",
            "template_for_dispvms": false,
            "default_dispvm": null,
            "icon": "appvm-black",
            "label": "0x000000",
            "guivm": null,
            "relayvm": null,
            "transport_rpc": null,
            "power_state": "Running",
            "uuid": "00000000-0000-0000-0000-000000000000",
        })
    );
}

/// qrexec's policy daemon routes calls to a RemoteVM through its relay: `relayvm` and `transport_rpc` are
/// its properties, no longer always null.
#[test]
fn system_info_describes_a_remote_vm() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.RemoteVM", "dom0", b"name=far label=green");
    d.ok("admin.vm.property.Set+relayvm", "far", b"work");
    d.ok("admin.vm.property.Set+transport_rpc", "far", b"qubesair.SSHProxy");
    let uuid = d.uuid("far");

    let far = system_info(&d)["domains"]["far"].clone();

    assert_eq!(
        far,
        serde_json::json!({
            "internal": null,
            "tags": ["created-by-dom0", "relayvm-work"],
            "type": "RemoteVM",
            "template_for_dispvms": false,
            "default_dispvm": null,
            "icon": "appvm-green",
            "label": "0x73d216",
            "guivm": null,
            "relayvm": "work",
            "transport_rpc": "qubesair.SSHProxy",
            "power_state": "Running",
            "uuid": uuid,
        })
    );
}

#[test]
fn system_info_follows_feature_changes() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+internal", "work", b"1");

    let internal = system_info(&d)["domains"]["work"]["internal"].clone();

    assert_eq!(internal, serde_json::json!("1"));
}

#[test]
fn system_info_with_argument_is_protocol_error() {
    let d = Daemon::start();

    let reply = d.call_internal("internal.GetSystemInfo+x", "dom0", b"");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "unexpected argument"));
}

#[test]
fn import_begin_with_size_replies_size_and_import_path() {
    let d = Daemon::start().with_appvm();

    let reply = d.call_internal("internal.vm.volume.ImportBegin+private", "work", b"4096");

    assert_eq!(shown(&reply), ok_reply(&format!("4096 {}/appvms/work/private.img.import", state(&d))));
}

#[test]
fn import_begin_without_size_uses_the_current_size() {
    let d = Daemon::start().with_appvm();

    let reply = d.call_internal("internal.vm.volume.ImportBegin+private", "work", b"");

    assert_eq!(shown(&reply), ok_reply(&format!("{} {}/appvms/work/private.img.import", 2 * GIB, state(&d))));
}

#[test]
fn import_begin_unknown_volume_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call_internal("internal.vm.volume.ImportBegin+nope", "work", b"4096");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Argument not in work volumes"));
}

#[test]
fn import_end_unknown_volume_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call_internal("internal.vm.volume.ImportEnd+nope", "work", b"ok");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Argument not in work volumes"));
}

#[test]
fn import_begin_bad_size_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call_internal("internal.vm.volume.ImportBegin+private", "work", b"4k");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Size of new data contains non ASCII digits"));
}

#[test]
fn import_begin_into_volatile_volume_is_refused() {
    let d = Daemon::start().with_appvm();

    let reply = d.call_internal("internal.vm.volume.ImportBegin+volatile", "work", b"4096");

    assert_eq!(
        shown(&reply),
        err_reply("StoragePoolException", "Can not import into save_on_stop=False volume appvms/work/volatile")
    );
}

/// ImportBegin with `size`, the data written where the daemon says, then ImportEnd with `status`.
fn import_via_internal_socket(d: &Daemon, data: &[u8], status: &[u8]) -> Vec<u8> {
    let begin = d.call_internal("internal.vm.volume.ImportBegin+private", "work", data.len().to_string().as_bytes());
    let answer = String::from_utf8(begin[2..].to_vec()).expect("utf-8");
    let (_, path) = answer.split_once(' ').unwrap_or_else(|| panic!("{answer:?}"));
    write_at_start(Path::new(path), data);
    d.call_internal("internal.vm.volume.ImportEnd+private", "work", status)
}

#[test]
fn import_end_ok_replies_empty_ok() {
    let d = Daemon::start().with_appvm();

    let reply = import_via_internal_socket(&d, b"imported!", b"ok");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn import_end_ok_commits_the_data() {
    let d = Daemon::start().with_appvm();
    import_via_internal_socket(&d, b"imported!", b"ok");

    let path = volume_path(&d, "work", "private");

    assert_eq!((read_start(&path, 9), file_len(&path)), (b"imported!".to_vec(), 9));
}

#[test]
fn import_end_ok_changes_the_volume_size() {
    let d = Daemon::start().with_appvm();
    import_via_internal_socket(&d, b"imported!", b"ok");

    let size = volume_field(&d, "work", "private", "size");

    assert_eq!(size, "9");
}

#[test]
fn import_end_fail_reports_the_message() {
    let d = Daemon::start().with_appvm();

    let reply = import_via_internal_socket(&d, b"imported!", b"fail\nsomething went wrong");

    assert_eq!(shown(&reply), err_reply("QubesException", "Data import failed: something went wrong"));
}

#[test]
fn import_end_fail_discards_the_data() {
    let d = Daemon::start().with_appvm();
    write_at_start(&volume_path(&d, "work", "private"), b"original");
    import_via_internal_socket(&d, b"imported!", b"fail\nboom");

    let path = volume_path(&d, "work", "private");

    assert_eq!((read_start(&path, 8), file_len(&path)), (b"original".to_vec(), 2 * GIB));
}

#[test]
fn import_end_fail_keeps_the_volume_size() {
    let d = Daemon::start().with_appvm();
    import_via_internal_socket(&d, b"imported!", b"fail\nboom");

    let size = volume_field(&d, "work", "private", "size");

    assert_eq!(size, (2 * GIB).to_string());
}

#[test]
fn import_end_fail_removes_the_import_file() {
    let d = Daemon::start().with_appvm();
    import_via_internal_socket(&d, b"imported!", b"fail\nboom");

    let exists = PathBuf::from(format!("{}/appvms/work/private.img.import", state(&d))).exists();

    assert!(!exists);
}

#[test]
fn import_end_any_status_but_ok_is_a_failure() {
    let d = Daemon::start().with_appvm();

    let reply = import_via_internal_socket(&d, b"imported!", b"oops");

    assert_eq!(shown(&reply), err_reply("QubesException", "Data import failed: "));
}

// ---------------------------------------------------------------------------------------------------------
// The `corral` import service, end to end

/// `corral` is built by `cargo build --bins` next to `corrald`; Cargo gives only this package's binaries
/// to its tests.
fn corral_binary() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_BIN_EXE_corrald")).with_file_name("corral");
    path.is_file().then_some(path)
}

fn run_import_service(d: &Daemon, bin: &Path, stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(bin)
        .args(["qrexec-service", "admin.vm.volume.ImportWithSize", "private"])
        .env("QREXEC_REMOTE_DOMAIN", "dom0")
        .env("QREXEC_REQUESTED_TARGET", "work")
        .env("CORRAL_INTERNAL_SOCKET", &d.internal)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn corral");
    let mut input = child.stdin.take().expect("stdin");
    // The service may stop reading early (too much data); what it answers is what the test checks.
    let _ = input.write_all(stdin);
    drop(input);
    let out = child.wait_with_output().expect("corral output");
    out.stdout
}

#[test]
fn import_service_with_exact_data_replies_ok() {
    let Some(bin) = corral_binary() else {
        eprintln!("skipped: the corral binary is missing; run `cargo build --bins` first");
        return;
    };
    let d = Daemon::start().with_appvm();

    let reply = run_import_service(&d, &bin, b"10\n0123456789");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn import_service_writes_the_data_into_the_volume() {
    let Some(bin) = corral_binary() else {
        eprintln!("skipped: the corral binary is missing; run `cargo build --bins` first");
        return;
    };
    let d = Daemon::start().with_appvm();
    run_import_service(&d, &bin, b"10\n0123456789");

    let path = volume_path(&d, "work", "private");

    assert_eq!(
        (read_start(&path, 10), volume_field(&d, "work", "private", "size")),
        (b"0123456789".to_vec(), "10".into())
    );
}

#[test]
fn import_service_with_short_data_fails() {
    let Some(bin) = corral_binary() else {
        eprintln!("skipped: the corral binary is missing; run `cargo build --bins` first");
        return;
    };
    let d = Daemon::start().with_appvm();

    let reply = run_import_service(&d, &bin, b"10\n012");

    assert_eq!(
        shown(&reply),
        err_reply("QubesException", "Data import failed: not enough data (copied 3 bytes, expected 10 bytes)")
    );
}

#[test]
fn import_service_with_long_data_fails() {
    let Some(bin) = corral_binary() else {
        eprintln!("skipped: the corral binary is missing; run `cargo build --bins` first");
        return;
    };
    let d = Daemon::start().with_appvm();

    let reply = run_import_service(&d, &bin, b"10\n0123456789abc");

    assert_eq!(shown(&reply), err_reply("QubesException", "Data import failed: too much data (expected 10 bytes)"));
}

#[test]
fn import_service_failure_keeps_the_volume() {
    let Some(bin) = corral_binary() else {
        eprintln!("skipped: the corral binary is missing; run `cargo build --bins` first");
        return;
    };
    let d = Daemon::start().with_appvm();
    run_import_service(&d, &bin, b"10\n012");

    let size = volume_field(&d, "work", "private", "size");

    assert_eq!(size, (2 * GIB).to_string());
}

// ---------------------------------------------------------------------------------------------------------
// Creating over files already there

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    names
}

/// An image a user put where a new qube's would go (as one moving over from Qubes does) is refused as upstream's
/// file pool refuses it, and nothing changes: no qube, the image as it was, no further file.
#[test]
fn creating_a_qube_over_a_placed_image_refuses_and_keeps_the_image() {
    let d = Daemon::start().with_template();
    let dir = d.state.join("appvms/work");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let placed = dir.join("private.img");
    std::fs::write(&placed, b"years of mail").expect("placed image");

    let (kind, msg) = d.err("admin.vm.Create.AppVM+tpl", "dom0", b"name=work label=red");

    assert_eq!((kind.as_str(), msg), ("StoragePoolException", format!("Volume {} already exists", placed.display())));
    assert_eq!(std::fs::read(&placed).expect("read"), b"years of mail");
    assert_eq!(dir_names(&dir), ["private.img"]);
    assert!(!d.ok("admin.vm.List", "dom0", b"").contains("work "), "no qube was made");
    assert!(d.log().contains("refusing to create a volume over files no qube owns"), "{}", d.log());
}

/// A volume created before the one refused is the create's own and goes again; the placed file stays.
#[test]
fn a_create_refused_at_its_second_volume_removes_its_first_and_keeps_the_placed_one() {
    let d = Daemon::start().with_template();
    let dir = d.state.join("appvms/work");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("volatile.img"), b"swap").expect("placed image");

    let (kind, _) = d.err("admin.vm.Create.AppVM+tpl", "dom0", b"name=work label=red");

    assert_eq!(kind, "StoragePoolException");
    assert_eq!(dir_names(&dir), ["volatile.img"]);
    assert_eq!(std::fs::read(dir.join("volatile.img")).expect("read"), b"swap");
}

/// What a create cut short by `kill -9` leaves (its image and the marker written before it) is Corral's own: the
/// retried create clears it and starts empty.
#[test]
fn files_a_crashed_create_left_are_cleared_by_the_retry() {
    let d = Daemon::start().with_template();
    let dir = d.state.join("appvms/work");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("private.img"), b"half made").expect("leftover");
    std::fs::write(dir.join("private.img.unowned"), b"").expect("marker");

    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=work label=red");

    let image = volume_path(&d, "work", "private");
    assert_eq!(image, dir.join("private.img"));
    assert_eq!(read_start(&image, 9), [0u8; 9]);
    assert_eq!(dir_names(&dir), ["private.img", "volatile.img"], "the marker went with the commit");
}

/// A qube created and removed leaves nothing, and a qube of the same name can be made again.
#[test]
fn a_removed_qube_name_can_be_created_again() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Remove", "work", b"");
    assert!(!d.state.join("appvms/work").exists());
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=work label=red");
    assert_eq!(dir_names(&d.state.join("appvms/work")), ["private.img", "volatile.img"]);
}

// ---------------------------------------------------------------------------------------------------------
// Symlinks and directories others can write to

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Whoever can write to a pool's directory could plant symlinks there: upstream would follow them, Corral refuses
/// the pool.
#[test]
fn a_pool_directory_others_can_write_to_is_refused_at_add() {
    let d = Daemon::start();
    let dir = new_pool_dir(&d, "shared");
    std::fs::create_dir_all(&dir).expect("mkdir");
    chmod(&dir, 0o777);

    let (kind, msg) =
        d.err("admin.pool.Add+file", "dom0", format!("name=shared\ndir_path={}\n", dir.display()).as_bytes());

    assert_eq!(kind, "StoragePoolException");
    assert_eq!(msg, format!("Refusing to use {}: it is writable by group or others (chmod go-w)", dir.display()));
    assert!(!d.ok("admin.pool.List", "dom0", b"").lines().any(|l| l == "shared"));
    assert!(!dir.join("appvms").exists(), "nothing made in it");
}

/// A pool whose directory became writable by others while the daemon was down is reported at start and
/// refuses every volume operation until fixed.
#[test]
fn a_pool_made_writable_by_others_is_unusable_after_a_restart() {
    let mut d = Daemon::start().with_template();
    let dir = add_file_pool(&d, "p2");
    d.ok("admin.vm.CreateInPool.AppVM+tpl", "dom0", b"name=x label=red pool=p2");
    chmod(&dir.join("appvms"), 0o777);
    d.restart();

    let (kind, msg) = d.err("admin.vm.volume.Resize+private", "x", b"3221225472");

    assert_eq!(kind, "StoragePoolException");
    assert!(msg.contains("writable by group or others"), "{msg}");
    assert!(d.log().contains("pool directory is not usable"), "{}", d.log());
    chmod(&dir.join("appvms"), 0o755);
    d.ok("admin.vm.volume.Resize+private", "x", b"3221225472");
}

/// A qube's directory swapped for a symlink to elsewhere: nothing is created, cleared or deleted there.
#[test]
fn a_symlinked_qube_directory_is_never_followed() {
    let d = Daemon::start().with_template();
    let outside = d.dir.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("private.img"), b"not yours").expect("victim");
    std::os::unix::fs::symlink(&outside, d.state.join("appvms/work")).expect("symlink");

    let (kind, msg) = d.err("admin.vm.Create.AppVM+tpl", "dom0", b"name=work label=red");

    assert_eq!(kind, "StoragePoolException", "{msg}");
    assert!(msg.contains("symlink"), "{msg}");
    assert_eq!(dir_names(&outside), ["private.img"]);
    assert_eq!(std::fs::read(outside.join("private.img")).expect("read"), b"not yours");
}

/// An image swapped for a symlink to a file outside the pool: resizing, clearing, starting and removing the
/// qube leave that file as it was.
#[test]
fn a_symlinked_image_is_never_followed() {
    let d = Daemon::start().with_appvm();
    let victim = d.dir.path().join("victim");
    std::fs::write(&victim, b"root:secret").expect("victim");
    let image = d.state.join("appvms/work/private.img");
    std::fs::remove_file(&image).expect("rm");
    std::os::unix::fs::symlink(&victim, &image).expect("symlink");

    let (kind, _) = d.err("admin.vm.volume.Resize+private", "work", b"3221225472");
    assert_eq!(kind, "StoragePoolException");
    d.ok("admin.vm.volume.Set.revisions_to_keep+private", "work", b"1");
    let (kind, msg) = d.err("admin.vm.volume.Clear+private", "work", b"");
    assert_eq!(kind, "StoragePoolException", "{msg}");
    assert!(msg.contains("symlink"), "{msg}");
    assert!(d.call("admin.vm.Start", "work", b"").starts_with(b"2\0"), "a start refuses it");
    d.ok("admin.vm.Remove", "work", b"");

    assert_eq!(std::fs::read(&victim).expect("victim"), b"root:secret");
}
