//! Daemon configuration as a user gives it.

mod support;

use std::process::{Command, Stdio};

#[test]
fn relative_state_dir_works_like_an_absolute_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_corrald"))
        .current_dir(dir.path())
        .args(["--admin-socket", "a.sock", "--internal-socket", "i.sock", "--state-dir", "state"])
        .args(["--libvirt-uri", "test:///default"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn corrald");
    let socket = dir.path().join("a.sock");
    support::wait_for_socket(&socket);

    let reply = support::raw(&socket, b"admin.vm.Create.TemplateVM dom0 name dom0\0", b"name=tpl label=black");

    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(reply, b"0\0");
}
