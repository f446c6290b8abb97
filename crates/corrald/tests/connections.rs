//! Bounded doors: idle clients cannot take the daemon's descriptors away from the Admin API or from clients that
//! send their requests.

mod support;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::Daemon;

#[test]
fn idle_http_connections_beyond_the_open_files_limit_leave_both_doors_answering() {
    // This process holds the idle connections: it needs more descriptors than the daemon may have.
    rlimit::increase_nofile_limit(4096).expect("raise the test's own limit");
    let d = Daemon::start_under(&["prlimit", "--nofile=1024:1024"]).with_user();
    let address = d.http();

    let idle: Vec<TcpStream> = (0..1030).filter_map(|_| TcpStream::connect(&address).ok()).collect();
    assert!(idle.len() >= 1024, "only {} connections were made", idle.len());
    // Let the daemon accept what it will.
    std::thread::sleep(Duration::from_millis(500));

    let t = Instant::now();
    let listed = d.call("admin.vm.List", "dom0", b"");
    let admin = t.elapsed();
    assert!(listed.starts_with(b"0\0"), "{}", String::from_utf8_lossy(&listed));
    assert!(admin < Duration::from_secs(2), "admin.vm.List took {admin:?}");

    let t = Instant::now();
    let r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
        .get(d.url("/api"))
        .basic_auth("admin@internal", Some("secret"))
        .send()
        .expect("an authenticated request is served");
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() < Duration::from_secs(5));
    drop(idle);
}

#[test]
fn an_http_connection_that_sends_no_request_is_closed_after_the_request_timeout() {
    let d = Daemon::start_with_args(&["--request-timeout", "1"]);
    let mut idle = TcpStream::connect(d.http()).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");

    let mut buf = [0u8; 256];
    let n = std::io::Read::read(&mut idle, &mut buf);

    // hyper answers a request it timed out waiting for with a 408, or just closes: either way the end follows.
    match n {
        Ok(0) => {}
        Ok(n) => assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"), "{:?}", &buf[..n]),
        Err(e) => panic!("still open after 5 s: {e}"),
    }
}
