//! Daemon configuration as a user gives it.

mod support;

use std::process::{Command, Stdio};

#[test]
fn relative_state_dir_works_like_an_absolute_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A free port, not the default one: another daemon (or a parallel test) may hold 8006.
    let _child = support::Reaped(
        Command::new(env!("CARGO_BIN_EXE_corrald"))
            .current_dir(dir.path())
            .args(["--admin-socket", "a.sock", "--internal-socket", "i.sock", "--state-dir", "state"])
            .args(["--libvirt-uri", "test:///default", "--http", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn corrald"),
    );
    let socket = dir.path().join("a.sock");
    support::wait_for_socket(&socket);

    let reply = support::raw(&socket, b"admin.vm.Create.TemplateVM dom0 name dom0\0", b"name=tpl label=black");

    assert_eq!(reply, b"0\0");
}
