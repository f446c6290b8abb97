//! Daemon configuration as a user gives it.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

/// corrald in `dir` (run through `wrapper` if given) with relative sockets `a.sock`/`i.sock`, state `state`,
/// libvirt's test driver and HTTP on a free port.
fn corrald_in(dir: &Path, wrapper: &[&str]) -> Command {
    corrald_with_sockets(dir, wrapper, "a.sock", "i.sock")
}

fn corrald_with_sockets(dir: &Path, wrapper: &[&str], admin: &str, internal: &str) -> Command {
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(env!("CARGO_BIN_EXE_corrald"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_corrald")),
    };
    cmd.current_dir(dir).args(["--admin-socket", admin, "--internal-socket", internal, "--state-dir", "state"]).args([
        "--libvirt-uri",
        "test:///default",
        "--http",
        "127.0.0.1:0",
    ]);
    cmd
}

#[test]
fn relative_state_dir_works_like_an_absolute_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A free port, not the default one: another daemon (or a parallel test) may hold 8006.
    let _child = support::Reaped(
        corrald_in(dir.path(), &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn corrald"),
    );
    let socket = dir.path().join("a.sock");
    support::wait_for_socket(&socket);

    let reply = support::raw(&socket, b"admin.vm.Create.TemplateVM dom0 name dom0\0", b"name=tpl label=black");

    assert_eq!(reply, b"0\0");
}

/// The `listen` of the VNC server of a started qube, as libvirt has it.
fn vnc_listen(d: &support::Daemon) -> String {
    d.add_user("admin", "secret");
    d.ok("admin.vm.Create.TemplateVM", "dom0", b"name=tpl label=black");
    d.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=work label=red");
    d.ok("admin.vm.Start", "work", b"");
    let r = reqwest::blocking::Client::new()
        .get(d.url("/libvirt/domains/by-name/work/xml_desc"))
        .header("X-Auth-Username", "admin")
        .header("X-Auth-Key", "secret")
        .send()
        .expect("xml_desc");
    let v: serde_json::Value = r.json().expect("envelope");
    let xml = v["results"][0].as_str().unwrap_or_default();
    let graphics = xml.split("<graphics ").nth(1).unwrap_or_else(|| panic!("no graphics: {xml}"));
    graphics.split(" listen='").nth(1).and_then(|l| l.split('\'').next()).unwrap_or_default().to_string()
}

#[test]
fn vnc_listen_comes_from_the_flag_over_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("corrald.toml");
    std::fs::write(&file, "vnc_listen = \"127.0.0.2\"\n").expect("config file");
    let file = file.to_str().expect("utf-8 path");

    let from_file = support::Daemon::start_with_args(&["--config", file]);
    let from_flag = support::Daemon::start_with_args(&["--config", file, "--vnc-listen", "::1"]);

    assert_eq!(vnc_listen(&from_file), "127.0.0.2");
    assert_eq!(vnc_listen(&from_flag), "::1");
}

#[test]
fn vnc_listen_is_an_ip_address() {
    let dir = tempfile::tempdir().expect("tempdir");

    let out = corrald_in(dir.path(), &[]).args(["--vnc-listen", "localhost"]).output().expect("run corrald");

    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--vnc-listen"), "{out:?}");
    assert!(!dir.path().join("a.sock").exists());
}

/// The soft open-files limit of the running daemon, from /proc.
fn soft_nofile(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("open files line").to_string();
    line.split_whitespace().nth(3).unwrap_or_default().to_string()
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = support::Reaped(
        corrald_in(dir.path(), &["prlimit", "--nofile=1024:8192"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn corrald under prlimit"),
    );
    support::wait_for_socket(&dir.path().join("a.sock"));

    // prlimit execs corrald in place, so the child's pid is the daemon's.
    assert_eq!(soft_nofile(child.0.id()), "8192");
}

/// Runs a daemon expected to refuse to start; one that serves instead is killed and reported.
fn exits_soon(cmd: &mut Command) -> std::process::Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn corrald");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("corrald started instead of refusing: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// A socket option naming a file, a directory or a symlink by mistake: the daemon refuses to start and the
/// thing stays as it was. Only a stale socket is replaced.
#[test]
fn a_socket_path_that_is_no_socket_is_refused_and_left_alone() {
    for flag in ["--admin-socket", "--internal-socket"] {
        for kind in ["file", "directory", "symlink"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let target = dir.path().join("precious");
            std::fs::write(&target, b"keep me").expect("file");
            let path = dir.path().join("x.sock");
            match kind {
                "file" => std::fs::write(&path, b"notes").expect("file"),
                "directory" => std::fs::create_dir(&path).expect("dir"),
                _ => std::os::unix::fs::symlink(&target, &path).expect("symlink"),
            }
            let (admin, internal) = if flag == "--admin-socket" { ("x.sock", "i.sock") } else { ("a.sock", "x.sock") };

            let out = exits_soon(&mut corrald_with_sockets(dir.path(), &[], admin, internal));

            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{flag} {kind}: {out:?}");
            assert!(stderr.contains("x.sock") && stderr.contains("refusing"), "{flag} {kind}: {stderr}");
            let meta = std::fs::symlink_metadata(&path).expect("still there");
            match kind {
                "file" => assert_eq!(std::fs::read(&path).expect("read"), b"notes"),
                "directory" => assert!(meta.is_dir()),
                _ => assert!(meta.file_type().is_symlink()),
            }
            assert_eq!(std::fs::read(&target).expect("read"), b"keep me", "{flag} {kind}");
        }
    }
}

/// A socket a killed daemon left is stale and replaced.
#[test]
fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stale = std::os::unix::net::UnixListener::bind(dir.path().join("a.sock")).expect("bind");
    drop(stale);
    let _child = support::Reaped(
        corrald_in(dir.path(), &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn corrald"),
    );
    support::wait_for_socket(&dir.path().join("i.sock"));
    let reply = support::raw(&dir.path().join("a.sock"), b"admin.vm.List dom0 name dom0\0", b"");
    assert!(reply.starts_with(b"0\0"), "{reply:?}");
}
