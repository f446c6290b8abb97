//! SIGTERM while calls are in flight: the daemon stops taking connections, answers the calls it has, then
//! exits. No client sees an empty reply to a call the daemon committed.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::events::Events;
use support::Daemon;

/// What a client saw: no connection at all, or the whole reply (empty when the daemon closed without one).
#[derive(Debug)]
enum Seen {
    NoConnection,
    Reply(Vec<u8>),
}

fn create(socket: &Path, name: &str) -> Seen {
    let Ok(mut s) = UnixStream::connect(socket) else { return Seen::NoConnection };
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let req = format!("admin.vm.Create.AppVM+tpl dom0 name dom0\0name={name} label=red").into_bytes();
    let _ = s.write_all(&req);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Seen::Reply(out)
}

fn terminate(pid: u32) {
    let status = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().expect("kill");
    assert!(status.success());
}

/// Until the process has exited (a zombie until the test reaps it).
fn wait_exit(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) if stat.rsplit(')').next().is_some_and(|s| s.trim_start().starts_with('Z')) => return,
            Err(_) => return,
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    panic!("corrald did not exit after SIGTERM");
}

#[test]
fn sigterm_in_a_burst_answers_every_call_it_took_and_keeps_every_acknowledged_create() {
    let mut d = Daemon::start().with_template();
    let socket = d.admin.clone();
    let clients: Vec<_> = (0..40)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(10 * i));
                let name = format!("burst{i}");
                (name.clone(), create(&socket, &name))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let pid = d.pid();
    terminate(pid);
    wait_exit(pid);
    let seen: Vec<(String, Seen)> = clients.into_iter().map(|c| c.join().expect("client")).collect();

    d.restart();
    let listed = d.ok("admin.vm.List", "dom0", b"");
    let acknowledged: Vec<&String> =
        seen.iter().filter(|(_, s)| matches!(s, Seen::Reply(r) if r == b"0\0")).map(|(n, _)| n).collect();
    let unanswered: Vec<&(String, Seen)> =
        seen.iter().filter(|(_, s)| matches!(s, Seen::Reply(r) if r.is_empty())).collect();
    assert!(unanswered.is_empty(), "empty replies: {unanswered:?}");
    assert!(!acknowledged.is_empty(), "no create was answered before the stop: {seen:?}");
    assert!(acknowledged.len() < seen.len(), "the stop came after the whole burst: {seen:?}");
    for name in acknowledged {
        assert!(listed.lines().any(|l| l.starts_with(&format!("{name} "))), "{name} lost: {listed}");
    }
    assert!(d.log().contains("SIGTERM received"), "{}", d.log());
}

#[test]
fn sigterm_closes_event_streams_and_idle_http_connections_instead_of_waiting_for_them() {
    let d = Daemon::start().with_user();
    let _events = Events::open(&d, "dom0");
    // An idle keep-alive connection, as an SDK holds between requests.
    let client = reqwest::blocking::Client::new();
    let r = client.get(d.url("/api")).basic_auth("admin@internal", Some("secret")).send().expect("GET /api");
    assert_eq!(r.status(), 200);
    let _ = r.text();

    let asked = Instant::now();
    terminate(d.pid());
    wait_exit(d.pid());

    // Far below the 10 s grace a call in flight would get.
    assert!(asked.elapsed() < Duration::from_secs(5), "exit took {:?}", asked.elapsed());
    assert!(!d.log().contains("abandoned"), "{}", d.log());
}
