//! Black-box tests of running qubes through the daemon's real admin socket, on libvirt's `test:///default`
//! driver: Start, Shutdown, Kill, Pause, Unpause, Suspend, Resume, Console, CurrentState, the properties
//! that follow the power state, the events each transition fires, a failed start, a daemon crash, and
//! disposables that clean themselves up.
//!
//! The test driver is synchronous: a domain is running when `create` returns and shut off when `shutdown`
//! returns. Its lifecycle events still reach the daemon on libvirt's event thread, so anything that only
//! that thread reports is polled for, with a bound.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::events::{frames, Events, SETTLE};
use support::reply::{err_reply, ok_reply, shown};
use support::{Daemon, WAIT};

// ---------------------------------------------------------------------------------------------------------
// Helpers

/// `Daemon::with_appvm` with `work` already running.
fn with_running() -> Daemon {
    Daemon::start().with_appvm().with_running("work")
}

/// `with_running` with `work` paused.
fn with_paused() -> Daemon {
    Daemon::start().with_appvm().with_paused("work")
}

/// `Daemon::with_appvm` plus `net` (provides_network) as the netvm of `work`.
fn with_netvm() -> Daemon {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=net label=orange");
    d.ok("admin.vm.property.Set+provides_network", "net", b"True");
    d.ok("admin.vm.property.Set+netvm", "work", b"net");
    d
}

/// `Daemon::with_appvm` plus `dvm` (template_for_dispvms) and the disposable `disp1` based on it.
fn with_dispvm() -> Daemon {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=dvm label=red");
    d.ok("admin.vm.property.Set+template_for_dispvms", "dvm", b"True");
    d.ok("admin.vm.Create.DispVM+dvm", "dom0", b"name=disp1 label=red");
    d
}

/// The reply with the digits of `cputime=` (the test driver reports wall-clock time there) replaced by
/// `N`; a reply without digits there keeps its text, so it cannot match an expectation with `N`.
fn masked_cputime(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply).into_owned();
    let Some(at) = text.find("cputime=") else { return shown(text.as_bytes()) };
    let start = at + "cputime=".len();
    let digits = text[start..].bytes().take_while(u8::is_ascii_digit).count();
    let masked = format!("{}{}{}", &text[..start], "N".repeat(usize::from(digits > 0)), &text[start + digits..]);
    shown(masked.as_bytes())
}

fn power_state(d: &Daemon, vm: &str) -> String {
    let state = d.ok("admin.vm.CurrentState", vm, b"");
    state.rsplit("power_state=").next().unwrap_or_default().to_string()
}

/// Polls until `vm` shows `want`, or the bound passes; returns what it shows last.
fn wait_for_state(d: &Daemon, vm: &str, want: &str) -> String {
    let deadline = Instant::now() + WAIT;
    let mut state = power_state(d, vm);
    while state != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        state = power_state(d, vm);
    }
    state
}

/// Polls until `vm` is no longer in `admin.vm.List`, or the bound passes; returns the last listing.
fn wait_until_gone(d: &Daemon, vm: &str) -> String {
    let deadline = Instant::now() + WAIT;
    let prefix = format!("{vm} ");
    let mut list = d.ok("admin.vm.List", "dom0", b"");
    while list.lines().any(|l| l.starts_with(&prefix)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        list = d.ok("admin.vm.List", "dom0", b"");
    }
    list
}

fn epoch_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after the epoch").as_secs_f64()
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            match path.is_dir() {
                true => todo.push(path),
                false => out.push(path.strip_prefix(dir).expect("under dir").to_path_buf()),
            }
        }
    }
    out.sort();
    out
}

/// The state directory's files other than the database's own.
fn qube_files(d: &Daemon) -> Vec<PathBuf> {
    files_under(&d.state).into_iter().filter(|p| !p.to_string_lossy().starts_with("corral.")).collect()
}

/// `<subject> <event>` of the frames whose event is one of `names`, in order.
fn names(seen: &[String], names: &[&str]) -> Vec<String> {
    seen.iter()
        .map(|f| f.split("\\u{0}").skip(1).take(2).collect::<Vec<_>>())
        .filter(|f| names.contains(&f[1]))
        .map(|f| f.join(" "))
        .collect()
}

/// Only the frames whose event is one of `names`, in order.
fn only(seen: &[String], names: &[&str]) -> Vec<String> {
    seen.iter().filter(|f| names.iter().any(|n| f.contains(&format!("\\u{{0}}{n}\\u{{0}}")))).cloned().collect()
}

const START_EVENTS: [&[u8]; 6] = [
    b"1\0work\0domain-pre-start\0start_guid\0True\0mem_required\0None\0\0",
    b"1\0work\0domain-pre-spawn\0start_guid\0True\0\0",
    b"1\0work\0property-reset:xid\0name\0xid\0\0",
    b"1\0work\0property-reset:start_time\0name\0start_time\0\0",
    b"1\0work\0domain-spawn\0start_guid\0True\0\0",
    b"1\0work\0domain-start\0start_guid\0True\0\0",
];

const STOP_EVENTS: [&[u8]; 4] = [
    b"1\0work\0domain-stopped\0\0",
    b"1\0work\0property-reset:xid\0name\0xid\0\0",
    b"1\0work\0property-reset:start_time\0name\0start_time\0\0",
    b"1\0work\0domain-shutdown\0\0",
];

// ---------------------------------------------------------------------------------------------------------
// Start

#[test]
fn start_of_appvm_replies_empty_ok() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.Start", "work", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn start_of_appvm_shows_running_in_current_state() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.Start", "work", b"");

    let reply = d.call("admin.vm.CurrentState", "work", b"");

    assert_eq!(masked_cputime(&reply), ok_reply("mem=409600 mem_static_max=409600 cputime=N power_state=Running"));
}

#[test]
fn start_of_appvm_shows_running_in_vm_list() {
    let d = Daemon::start().with_appvm();
    let uuid = d.uuid("work");
    d.ok("admin.vm.Start", "work", b"");

    let reply = d.call("admin.vm.List", "work", b"");

    assert_eq!(shown(&reply), ok_reply(&format!("work class=AppVM state=Running uuid={uuid}\n")));
}

#[test]
fn current_state_of_halted_qube_is_all_zero() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.CurrentState", "work", b"");

    assert_eq!(shown(&reply), ok_reply("mem=0 mem_static_max=0 cputime=0 power_state=Halted"));
}

#[test]
fn start_of_running_qube_replies_empty_ok() {
    let d = with_running();

    let reply = d.call("admin.vm.Start", "work", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn start_of_running_qube_fires_nothing() {
    let d = with_running();

    let seen = Events::around(&d, || d.ok("admin.vm.Start", "work", b"")).until_marker(&d, "work");

    assert_eq!(seen, Vec::<String>::new());
}

#[test]
fn start_of_paused_qube_leaves_it_paused() {
    let d = with_paused();
    d.ok("admin.vm.Start", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Paused");
}

#[test]
fn start_of_dom0_is_not_halted_error() {
    let d = Daemon::start();

    let reply = d.call("admin.vm.Start", "dom0", b"");

    assert_eq!(shown(&reply), err_reply("QubesVMNotHaltedError", "Cannot start Dom0 fake domain!"));
}

#[test]
fn start_of_unknown_qube_is_vm_not_found() {
    let d = Daemon::start();

    let reply = d.call("admin.vm.Start", "nope", b"");

    assert_eq!(shown(&reply), err_reply("QubesVMNotFoundError", "No such domain: 'nope'"));
}

#[test]
fn start_with_argument_is_protocol_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.Start+x", "work", b"");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "unexpected argument"));
}

#[test]
fn start_of_prohibited_qube_is_refused_with_the_rationale() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+prohibit-start", "work", b"being repaired");

    let reply = d.call("admin.vm.Start", "work", b"");

    assert_eq!(shown(&reply), err_reply("QubesException", "Qube start is prohibited. Rationale: being repaired"));
}

#[test]
fn start_of_prohibited_qube_leaves_it_halted() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+prohibit-start", "work", b"being repaired");
    d.call("admin.vm.Start", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Halted");
}

#[test]
fn start_of_prohibited_qube_fires_only_start_failed() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+prohibit-start", "work", b"being repaired");

    let seen = Events::around(&d, || d.call("admin.vm.Start", "work", b"")).until_marker(&d, "work");

    assert_eq!(
        seen,
        frames(&[b"1\0work\0domain-start-failed\0reason\0Qube start is prohibited. Rationale: being repaired\0\0"])
    );
}

#[test]
fn start_with_empty_prohibit_start_feature_runs_the_qube() {
    let d = Daemon::start().with_appvm();
    d.ok("admin.vm.feature.Set+prohibit-start", "work", b"");
    d.ok("admin.vm.Start", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Running");
}

#[test]
fn start_of_qube_with_halted_netvm_starts_the_netvm() {
    let d = with_netvm();
    d.ok("admin.vm.Start", "work", b"");

    let state = power_state(&d, "net");

    assert_eq!(state, "Running");
}

#[test]
fn start_of_qube_with_halted_netvm_runs_the_qube() {
    let d = with_netvm();
    d.ok("admin.vm.Start", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Running");
}

#[test]
fn start_of_qube_with_halted_netvm_starts_netvm_after_the_qubes_pre_start() {
    let d = with_netvm();

    let seen = Events::around(&d, || d.ok("admin.vm.Start", "work", b"")).until_marker(&d, "work");

    assert_eq!(
        names(&seen, &["domain-pre-start", "domain-start"]),
        ["work domain-pre-start", "net domain-pre-start", "net domain-start", "work domain-start"]
    );
}

#[test]
fn start_of_qube_whose_netvm_is_prohibited_fails_with_the_netvms_error() {
    let d = with_netvm();
    d.ok("admin.vm.feature.Set+prohibit-start", "net", b"off");

    let reply = d.call("admin.vm.Start", "work", b"");

    assert_eq!(shown(&reply), err_reply("QubesException", "Qube start is prohibited. Rationale: off"));
}

#[test]
fn start_of_qube_whose_netvm_is_prohibited_fires_start_failed_on_both() {
    let d = with_netvm();
    d.ok("admin.vm.feature.Set+prohibit-start", "net", b"off");

    let seen = Events::around(&d, || d.call("admin.vm.Start", "work", b"")).until_marker(&d, "work");

    assert_eq!(
        seen,
        frames(&[
            b"1\0work\0domain-pre-start\0start_guid\0True\0mem_required\0None\0\0",
            b"1\0net\0domain-start-failed\0reason\0Qube start is prohibited. Rationale: off\0\0",
            b"1\0work\0domain-start-failed\0reason\0Qube start is prohibited. Rationale: off\0\0",
        ])
    );
}

#[test]
fn start_of_qube_whose_netvm_is_prohibited_leaves_it_halted() {
    let d = with_netvm();
    d.ok("admin.vm.feature.Set+prohibit-start", "net", b"off");
    d.call("admin.vm.Start", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Halted");
}

// ---------------------------------------------------------------------------------------------------------
// Properties that follow the power state

#[test]
fn xid_of_running_qube_is_libvirts_domain_id() {
    // The test driver's fixture domain `test` has id 1; the next domain started gets 2.
    let d = with_running();

    let reply = d.call("admin.vm.property.Get+xid", "work", b"");

    assert_eq!(shown(&reply), ok_reply("default=True type=int 2"));
}

#[test]
fn xid_of_halted_qube_is_minus_one() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.property.Get+xid", "work", b"");

    assert_eq!(shown(&reply), ok_reply("default=True type=int -1"));
}

#[test]
fn xid_after_kill_is_minus_one() {
    let d = with_running();
    d.ok("admin.vm.Kill", "work", b"");

    let reply = d.call("admin.vm.property.Get+xid", "work", b"");

    assert_eq!(shown(&reply), ok_reply("default=True type=int -1"));
}

#[test]
fn start_time_of_running_qube_is_the_epoch_time_of_the_start() {
    let d = Daemon::start().with_appvm();
    let before = epoch_now();
    d.ok("admin.vm.Start", "work", b"");
    let after = epoch_now();

    let reply = d.ok("admin.vm.property.Get+start_time", "work", b"");

    let value: f64 = reply.strip_prefix("default=True type=str ").expect("str property").parse().expect("float");
    assert!(before - 1.0 <= value && value <= after + 1.0, "{before} <= {value} <= {after}");
}

#[test]
fn start_time_of_halted_qube_is_empty() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.property.Get+start_time", "work", b"");

    assert_eq!(shown(&reply), ok_reply("default=True type=str "));
}

#[test]
fn start_time_after_shutdown_is_empty() {
    let d = with_running();
    d.ok("admin.vm.Shutdown+wait", "work", b"");

    let reply = d.call("admin.vm.property.Get+start_time", "work", b"");

    assert_eq!(shown(&reply), ok_reply("default=True type=str "));
}

#[test]
fn remove_of_running_qube_is_not_halted_error() {
    let d = with_running();

    let reply = d.call("admin.vm.Remove", "work", b"");

    assert_eq!(shown(&reply), err_reply("QubesVMNotHaltedError", "Domain is not powered off: 'work'"));
}

#[test]
fn remove_of_running_qube_keeps_it() {
    let d = with_running();
    d.call("admin.vm.Remove", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Running");
}

#[test]
fn remove_after_kill_replies_empty_ok() {
    let d = with_running();
    d.ok("admin.vm.Kill", "work", b"");

    let reply = d.call("admin.vm.Remove", "work", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

// ---------------------------------------------------------------------------------------------------------
// Shutdown

#[test]
fn shutdown_replies_empty_ok() {
    let d = with_running();

    let reply = d.call("admin.vm.Shutdown", "work", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn shutdown_halts_the_qube() {
    let d = with_running();
    d.ok("admin.vm.Shutdown", "work", b"");

    let state = wait_for_state(&d, "work", "Halted");

    assert_eq!(state, "Halted");
}

#[test]
fn shutdown_wait_replies_empty_ok() {
    let d = with_running();

    let reply = d.call("admin.vm.Shutdown+wait", "work", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn shutdown_wait_replies_after_the_qube_is_halted() {
    let d = with_running();
    d.ok("admin.vm.Shutdown+wait", "work", b"");

    let reply = d.call("admin.vm.CurrentState", "work", b"");

    assert_eq!(shown(&reply), ok_reply("mem=0 mem_static_max=0 cputime=0 power_state=Halted"));
}

#[test]
fn shutdown_force_replies_empty_ok() {
    let d = with_running();

    let reply = d.call("admin.vm.Shutdown+force", "work", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn shutdown_force_wait_replies_empty_ok() {
    let d = with_running();

    let reply = d.call("admin.vm.Shutdown+force+wait", "work", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn shutdown_wait_force_replies_empty_ok() {
    let d = with_running();

    let reply = d.call("admin.vm.Shutdown+wait+force", "work", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn shutdown_wait_force_halts_the_qube_before_replying() {
    let d = with_running();
    d.ok("admin.vm.Shutdown+wait+force", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Halted");
}

#[test]
fn shutdown_wait_wait_is_accepted_as_upstream_does() {
    // Upstream only checks that every `+`-separated word is `force` or `wait`.
    let d = with_running();

    let reply = d.call("admin.vm.Shutdown+wait+wait", "work", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn shutdown_forcewait_is_protocol_error() {
    let d = with_running();

    let reply = d.call("admin.vm.Shutdown+forcewait", "work", b"");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Argument must match: force, wait"));
}

#[test]
fn shutdown_foo_is_protocol_error() {
    let d = with_running();

    let reply = d.call("admin.vm.Shutdown+foo", "work", b"");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Argument must match: force, wait"));
}

#[test]
fn shutdown_with_empty_word_is_protocol_error() {
    let d = with_running();

    let reply = d.call("admin.vm.Shutdown+force+", "work", b"");

    assert_eq!(shown(&reply), err_reply("ProtocolError", "Argument must match: force, wait"));
}

#[test]
fn shutdown_refused_for_its_argument_leaves_the_qube_running() {
    let d = with_running();
    d.call("admin.vm.Shutdown+forcewait", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Running");
}

#[test]
fn shutdown_of_halted_qube_is_not_started_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.Shutdown", "work", b"");

    assert_eq!(shown(&reply), err_reply("QubesVMNotStartedError", "Domain is powered off: 'work'"));
}

#[test]
fn shutdown_of_paused_qube_without_force_is_not_running_error() {
    let d = with_paused();

    let reply = d.call("admin.vm.Shutdown", "work", b"");

    assert_eq!(
        shown(&reply),
        err_reply("QubesVMNotRunningError", "Domain not running (either powered off or paused): 'work'")
    );
}

#[test]
fn shutdown_of_paused_qube_without_force_leaves_it_paused() {
    let d = with_paused();
    d.call("admin.vm.Shutdown", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Paused");
}

#[test]
fn shutdown_force_of_paused_qube_halts_it() {
    let d = with_paused();
    d.ok("admin.vm.Shutdown+force+wait", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Halted");
}

#[test]
fn start_right_after_shutdown_runs_the_qube_again() {
    // The test driver has the domain shut off when `shutdown` returns, before its event reaches the
    // daemon: a Start must not take the stale state for "still running" and do nothing.
    let d = with_running();
    for _ in 0..20 {
        d.ok("admin.vm.Shutdown", "work", b"");
        d.ok("admin.vm.Start", "work", b"");
    }
    std::thread::sleep(SETTLE);

    let state = power_state(&d, "work");

    assert_eq!(state, "Running");
}

// ---------------------------------------------------------------------------------------------------------
// Kill

#[test]
fn kill_of_halted_qube_is_not_started_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.Kill", "work", b"");

    assert_eq!(shown(&reply), err_reply("QubesVMNotStartedError", "Domain is powered off: 'work'"));
}

#[test]
fn kill_of_dom0_is_vm_error() {
    let d = Daemon::start();

    let reply = d.call("admin.vm.Kill", "dom0", b"");

    assert_eq!(shown(&reply), err_reply("QubesVMError", "Cannot kill Dom0 fake domain!"));
}

#[test]
fn kill_of_running_qube_replies_empty_ok() {
    let d = with_running();

    let reply = d.call("admin.vm.Kill", "work", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn kill_of_running_qube_halts_it_before_replying() {
    let d = with_running();
    d.ok("admin.vm.Kill", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Halted");
}

#[test]
fn kill_of_paused_qube_halts_it() {
    let d = with_paused();
    d.ok("admin.vm.Kill", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Halted");
}

#[test]
fn kill_of_running_qube_shows_halted_in_vm_list() {
    let d = with_running();
    let uuid = d.uuid("work");
    d.ok("admin.vm.Kill", "work", b"");

    let reply = d.call("admin.vm.List", "work", b"");

    assert_eq!(shown(&reply), ok_reply(&format!("work class=AppVM state=Halted uuid={uuid}\n")));
}

// ---------------------------------------------------------------------------------------------------------
// Pause, Unpause, Suspend, Resume

#[test]
fn pause_of_running_qube_shows_paused() {
    let d = with_running();
    d.ok("admin.vm.Pause", "work", b"");

    let reply = d.call("admin.vm.CurrentState", "work", b"");

    assert_eq!(masked_cputime(&reply), ok_reply("mem=409600 mem_static_max=409600 cputime=N power_state=Paused"));
}

#[test]
fn pause_of_halted_qube_is_not_running_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.Pause", "work", b"");

    assert_eq!(
        shown(&reply),
        err_reply("QubesVMNotRunningError", "Domain not running (either powered off or paused): 'work'")
    );
}

#[test]
fn unpause_of_paused_qube_shows_running() {
    let d = with_paused();
    d.ok("admin.vm.Unpause", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Running");
}

#[test]
fn unpause_of_running_qube_is_not_paused_error() {
    let d = with_running();

    let reply = d.call("admin.vm.Unpause", "work", b"");

    assert_eq!(shown(&reply), err_reply("QubesVMNotPausedError", "Domain is not paused: 'work'"));
}

#[test]
fn unpause_of_halted_qube_is_not_paused_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.Unpause", "work", b"");

    assert_eq!(shown(&reply), err_reply("QubesVMNotPausedError", "Domain is not paused: 'work'"));
}

#[test]
fn suspend_of_running_qube_replies_empty_ok() {
    let d = with_running();

    let reply = d.call("admin.vm.Suspend", "work", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

#[test]
fn suspend_without_guest_support_pauses_the_qube() {
    let d = with_running();
    d.ok("admin.vm.Suspend", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Paused");
}

#[test]
fn suspend_of_halted_qube_is_not_running_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.Suspend", "work", b"");

    assert_eq!(
        shown(&reply),
        err_reply("QubesVMNotRunningError", "Domain not running (either powered off or paused): 'work'")
    );
}

#[test]
fn resume_of_suspended_qube_shows_running() {
    let d = with_running();
    d.ok("admin.vm.Suspend", "work", b"");
    d.ok("admin.vm.Resume", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Running");
}

#[test]
fn resume_of_running_qube_is_not_paused_error() {
    let d = with_running();

    let reply = d.call("admin.vm.Resume", "work", b"");

    assert_eq!(shown(&reply), err_reply("QubesVMNotPausedError", "Domain is not paused: 'work'"));
}

// ---------------------------------------------------------------------------------------------------------
// Console

#[test]
fn console_of_halted_qube_is_not_running_error() {
    let d = Daemon::start().with_appvm();

    let reply = d.call("admin.vm.Console", "work", b"");

    assert_eq!(
        shown(&reply),
        err_reply("QubesVMNotRunningError", "Domain not running (either powered off or paused): 'work'")
    );
}

#[test]
fn console_of_running_qube_without_a_pty_is_empty_as_upstream() {
    // The test driver allocates no pty; upstream answers the empty `console/@tty` it reads from the XML.
    let d = with_running();

    let reply = d.call("admin.vm.Console", "work", b"");

    assert_eq!(shown(&reply), ok_reply(""));
}

// ---------------------------------------------------------------------------------------------------------
// Events

#[test]
fn start_fires_pre_start_pre_spawn_property_resets_spawn_start_once() {
    let d = Daemon::start().with_appvm();

    let seen = Events::around(&d, || d.ok("admin.vm.Start", "work", b"")).until_marker(&d, "work");

    assert_eq!(seen, frames(&START_EVENTS));
}

#[test]
fn pause_fires_pre_paused_then_paused_once() {
    let d = with_running();

    let seen = Events::around(&d, || d.ok("admin.vm.Pause", "work", b"")).until_marker(&d, "work");

    assert_eq!(seen, frames(&[b"1\0work\0domain-pre-paused\0\0", b"1\0work\0domain-paused\0\0"]));
}

#[test]
fn unpause_fires_pre_unpaused_then_unpaused_once() {
    let d = with_paused();

    let seen = Events::around(&d, || d.ok("admin.vm.Unpause", "work", b"")).until_marker(&d, "work");

    assert_eq!(seen, frames(&[b"1\0work\0domain-pre-unpaused\0\0", b"1\0work\0domain-unpaused\0\0"]));
}

/// Saves `vm` to disk through the HTTP door's `suspend`, the one door that asks for it.
fn save(d: &Daemon, vm: &str) {
    let r = reqwest::blocking::Client::new()
        .post(d.url(&format!("/api/vms/{}/suspend", d.uuid(vm))))
        .basic_auth("admin@internal", Some("secret"))
        .header("Content-Type", "application/xml")
        .body("<action/>")
        .send()
        .expect("suspend");
    assert_eq!(r.status(), 200);
}

#[test]
fn a_save_to_disk_fires_paused_a_start_resumed_and_a_kill_stopped_once() {
    let d = with_running().with_user();
    let xid_reset = &b"1\0work\0property-reset:xid\0name\0xid\0\0"[..];

    let saved = Events::around(&d, || save(&d, "work")).until_marker(&d, "work");
    let resumed = Events::around(&d, || d.ok("admin.vm.Start", "work", b"")).until_marker(&d, "work");
    save(&d, "work");
    let killed = Events::around(&d, || d.ok("admin.vm.Kill", "work", b"")).until_marker(&d, "work");

    assert_eq!(saved, frames(&[b"1\0work\0domain-pre-paused\0\0", b"1\0work\0domain-paused\0\0", xid_reset]));
    assert_eq!(resumed, frames(&[b"1\0work\0domain-resumed\0\0", xid_reset]));
    assert_eq!(killed, frames(&STOP_EVENTS));
}

#[test]
fn a_qube_saved_to_disk_is_suspended_without_memory_or_xid_and_no_console() {
    let d = with_running().with_user();
    save(&d, "work");

    let state = d.call("admin.vm.CurrentState", "work", b"");
    let xid = d.ok("admin.vm.property.Get+xid", "work", b"");
    let console = d.err("admin.vm.Console", "work", b"");
    let paused = d.err("admin.vm.Pause", "work", b"");
    let shutdown = d.err("admin.vm.Shutdown", "work", b"");

    assert_eq!(shown(&state), ok_reply("mem=0 mem_static_max=0 cputime=0 power_state=Suspended"));
    assert_eq!(xid, "default=True type=int -1");
    assert_eq!(console.0, "QubesVMNotRunningError");
    assert_eq!(paused.0, "QubesVMNotRunningError");
    assert_eq!(shutdown.0, "QubesVMNotRunningError");
    assert_eq!(power_state(&d, "work"), "Suspended");
    d.ok("admin.vm.Shutdown+force+wait", "work", b"");
    assert_eq!(power_state(&d, "work"), "Halted");
}

#[test]
fn kill_fires_stopped_then_shutdown_once() {
    let d = with_running();

    let seen = Events::around(&d, || d.ok("admin.vm.Kill", "work", b"")).until_marker(&d, "work");

    assert_eq!(seen, frames(&STOP_EVENTS));
}

#[test]
fn shutdown_fires_pre_shutdown_then_stopped_then_shutdown_once() {
    let d = with_running();
    let mut events = Events::open(&d, "dom0");
    d.ok("admin.vm.Shutdown", "work", b"");
    wait_for_state(&d, "work", "Halted");

    let seen = events.until_marker(&d, "work");

    let mut expected = vec![&b"1\0work\0domain-pre-shutdown\0force\0False\0\0"[..]];
    expected.extend(STOP_EVENTS);
    assert_eq!(seen, frames(&expected));
}

#[test]
fn shutdown_force_fires_pre_shutdown_with_force_true() {
    let d = with_running();

    let seen = Events::around(&d, || d.ok("admin.vm.Shutdown+force+wait", "work", b"")).until_marker(&d, "work");

    let mut expected = vec![&b"1\0work\0domain-pre-shutdown\0force\0True\0\0"[..]];
    expected.extend(STOP_EVENTS);
    assert_eq!(seen, frames(&expected));
}

#[test]
fn shutdown_of_paused_qube_without_force_fires_pre_shutdown_then_shutdown_failed() {
    let d = with_paused();

    let seen = Events::around(&d, || d.call("admin.vm.Shutdown", "work", b"")).until_marker(&d, "work");

    assert_eq!(
        seen,
        frames(&[
            b"1\0work\0domain-pre-shutdown\0force\0False\0\0",
            b"1\0work\0domain-shutdown-failed\0reason\0Domain not running (either powered off or paused): 'work'\0\0",
        ])
    );
}

#[test]
fn kill_replies_only_after_the_stopped_events() {
    // Each Kill's domain-shutdown must come before the next Start's domain-pre-start: the reply to Kill
    // means the stop is fully handled, even when libvirt's own report of it got there first.
    let d = with_running();
    let mut events = Events::open(&d, "dom0");
    for _ in 0..20 {
        d.ok("admin.vm.Kill", "work", b"");
        d.ok("admin.vm.Start", "work", b"");
    }

    let seen = events.until_marker(&d, "work");

    let one_cycle = ["work domain-shutdown", "work domain-pre-start"];
    assert_eq!(names(&seen, &["domain-shutdown", "domain-pre-start"]), one_cycle.repeat(20));
}

#[test]
fn shutdown_wait_replies_only_after_the_stopped_events() {
    let d = with_running();
    let mut events = Events::open(&d, "dom0");
    for _ in 0..20 {
        d.ok("admin.vm.Shutdown+wait", "work", b"");
        d.ok("admin.vm.Start", "work", b"");
    }

    let seen = events.until_marker(&d, "work");

    let one_cycle = ["work domain-shutdown", "work domain-pre-start"];
    assert_eq!(names(&seen, &["domain-shutdown", "domain-pre-start"]), one_cycle.repeat(20));
}

// ---------------------------------------------------------------------------------------------------------
// A start that fails

/// `with_appvm` with the template's root image gone, so that `work`'s root snapshot cannot be made.
fn with_broken_template() -> Daemon {
    let d = Daemon::start().with_appvm();
    std::fs::remove_file(d.state.join("vm-templates/tpl/root.img")).expect("remove the template's root image");
    d
}

#[test]
fn failed_start_is_start_failed_exception() {
    let d = with_broken_template();
    let image = d.state.join("vm-templates/tpl/root.img");

    let reply = d.call("admin.vm.Start", "work", b"");

    assert_eq!(
        shown(&reply),
        err_reply("QubesException", &format!("Start failed: volume root: Missing image file: {}", image.display()))
    );
}

#[test]
fn failed_start_fires_pre_start_then_start_failed() {
    let d = with_broken_template();
    let image = d.state.join("vm-templates/tpl/root.img");

    let seen = Events::around(&d, || d.call("admin.vm.Start", "work", b"")).until_marker(&d, "work");

    let failed =
        format!("1\0work\0domain-start-failed\0reason\0volume root: Missing image file: {}\0\0", image.display());
    assert_eq!(seen, frames(&[START_EVENTS[0], failed.as_bytes()]));
}

#[test]
fn failed_start_leaves_the_qube_halted() {
    let d = with_broken_template();
    d.call("admin.vm.Start", "work", b"");

    let reply = d.call("admin.vm.CurrentState", "work", b"");

    assert_eq!(shown(&reply), ok_reply("mem=0 mem_static_max=0 cputime=0 power_state=Halted"));
}

#[test]
fn failed_start_leaves_vm_list_unchanged() {
    let d = with_broken_template();
    let before = d.ok("admin.vm.List", "dom0", b"");
    d.call("admin.vm.Start", "work", b"");

    let after = d.ok("admin.vm.List", "dom0", b"");

    assert_eq!(after, before);
}

#[test]
fn failed_start_leaves_the_same_files() {
    let d = with_broken_template();
    let before = qube_files(&d);
    d.call("admin.vm.Start", "work", b"");

    let after = qube_files(&d);

    assert_eq!(after, before);
}

#[test]
fn start_after_a_failed_start_runs_once_the_image_is_back() {
    let d = Daemon::start().with_appvm();
    let image = d.state.join("vm-templates/tpl/root.img");
    let kept = d.dir.path().join("root.img.kept");
    std::fs::rename(&image, &kept).expect("move the root image away");
    d.call("admin.vm.Start", "work", b"");
    std::fs::rename(&kept, &image).expect("put the root image back");
    d.ok("admin.vm.Start", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Running");
}

// ---------------------------------------------------------------------------------------------------------
// Daemon crash

#[test]
fn running_qube_is_shown_halted_after_daemon_crash_on_test_driver() {
    // The test driver's domains live in the daemon's own connection: they vanish with it, and a qube whose
    // domain vanished is shown halted.
    let mut d = with_running();
    d.kill9();
    d.spawn();

    let reply = d.call("admin.vm.CurrentState", "work", b"");

    assert_eq!(shown(&reply), ok_reply("mem=0 mem_static_max=0 cputime=0 power_state=Halted"));
}

#[test]
fn running_qube_is_listed_halted_after_daemon_crash_on_test_driver() {
    let mut d = with_running();
    let uuid = d.uuid("work");
    d.kill9();
    d.spawn();

    let reply = d.call("admin.vm.List", "work", b"");

    assert_eq!(shown(&reply), ok_reply(&format!("work class=AppVM state=Halted uuid={uuid}\n")));
}

#[test]
fn qube_starts_again_after_daemon_crash() {
    let mut d = with_running();
    d.kill9();
    d.spawn();
    d.ok("admin.vm.Start", "work", b"");

    let state = power_state(&d, "work");

    assert_eq!(state, "Running");
}

// ---------------------------------------------------------------------------------------------------------
// Disposables

#[test]
fn kill_of_auto_cleanup_dispvm_removes_it() {
    let d = with_dispvm();
    d.ok("admin.vm.property.Set+auto_cleanup", "disp1", b"True");
    d.ok("admin.vm.Start", "disp1", b"");
    d.ok("admin.vm.Kill", "disp1", b"");

    let list = wait_until_gone(&d, "disp1");

    assert!(!list.contains("disp1 "), "{list}");
}

#[test]
fn kill_of_auto_cleanup_dispvm_fires_domain_delete() {
    let d = with_dispvm();
    d.ok("admin.vm.property.Set+auto_cleanup", "disp1", b"True");
    d.ok("admin.vm.Start", "disp1", b"");

    let seen = Events::around(&d, || d.ok("admin.vm.Kill", "disp1", b"")).until_marker(&d, "work");

    assert_eq!(
        only(&seen, &["domain-pre-delete", "domain-delete"]),
        frames(&[b"1\0\0domain-pre-delete\0vm\0disp1\0\0", b"1\0\0domain-delete\0vm\0disp1\0\0"])
    );
}

#[test]
fn kill_of_auto_cleanup_dispvm_removes_its_files() {
    let d = with_dispvm();
    d.ok("admin.vm.property.Set+auto_cleanup", "disp1", b"True");
    d.ok("admin.vm.Start", "disp1", b"");
    d.ok("admin.vm.Kill", "disp1", b"");
    wait_until_gone(&d, "disp1");

    let files = qube_files(&d);

    assert!(files.iter().all(|f| !f.to_string_lossy().contains("disp1")), "{files:?}");
}

#[test]
fn kill_of_dispvm_without_auto_cleanup_keeps_it() {
    let d = with_dispvm();
    let uuid = d.uuid("disp1");
    d.ok("admin.vm.Start", "disp1", b"");
    d.ok("admin.vm.Kill", "disp1", b"");
    std::thread::sleep(SETTLE);

    let reply = d.call("admin.vm.List", "disp1", b"");

    assert_eq!(shown(&reply), ok_reply(&format!("disp1 class=DispVM state=Halted uuid={uuid}\n")));
}

#[test]
fn a_removed_qubes_name_can_be_used_again_and_started() {
    let d = with_running();
    d.ok("admin.vm.Kill", "work", b"");
    d.ok("admin.vm.Remove", "work", b"");
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=work label=red");

    let reply = d.call("admin.vm.Start", "work", b"");

    assert_eq!(reply, b"0\0", "{}", String::from_utf8_lossy(&reply));
    assert!(power_state(&d, "work").contains("Running"));
}
