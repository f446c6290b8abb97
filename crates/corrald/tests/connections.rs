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

/// A connection to `address` from the loopback address `from` (the door tells clients apart by address).
fn connect_from(from: std::net::Ipv4Addr, address: &str) -> TcpStream {
    let to: std::net::SocketAddr = address.parse().expect("daemon address");
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.bind(&std::net::SocketAddr::from((from, 0)).into()).expect("bind the client address");
    socket.connect(&to.into()).expect("connect");
    socket.into()
}

/// Whether the daemon closes `s` within `limit` (whatever it answers first).
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    s.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match std::io::Read::read(s, &mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// An HTTP request sent on `s`, and the status line of its answer.
fn status_of(s: &mut TcpStream, request: &str) -> String {
    std::io::Write::write_all(s, request.as_bytes()).expect("send");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut buf = [0u8; 4096];
    let n = std::io::Read::read(s, &mut buf).expect("an answer");
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string()
}

const GET_API: &str = "GET /api HTTP/1.1\r\nHost: corral\r\nAuthorization: Basic YWRtaW5AaW50ZXJuYWw6c2VjcmV0\r\n\r\n";

fn authenticated_get(d: &Daemon) -> reqwest::StatusCode {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
        .get(d.url("/api"))
        .basic_auth("admin@internal", Some("secret"))
        .send()
        .expect("an authenticated request is served")
        .status()
}

#[test]
fn slowloris_connections_beyond_the_open_files_limit_are_closed_and_both_doors_answer() {
    rlimit::increase_nofile_limit(4096).expect("raise the test's own limit");
    let d = Daemon::start_under_with_args(&["prlimit", "--nofile=1024:1024"], &["--request-timeout", "3"]).with_user();
    let address = d.http();

    // A thousand clients from ten addresses, each sending a request head a line at a time and never ending it.
    let mut slow: Vec<TcpStream> = (0..1000u32)
        .filter_map(|i| {
            let mut s = connect_from(std::net::Ipv4Addr::new(127, 0, 0, 2 + (i % 10) as u8), &address);
            std::io::Write::write_all(&mut s, b"GET /api HTTP/1.1\r\nHost: corral\r\n").ok()?;
            Some(s)
        })
        .collect();
    assert_eq!(slow.len(), 1000);
    let started = Instant::now();
    let trickle = |slow: &mut Vec<TcpStream>| {
        for s in slow.iter_mut() {
            let _ = std::io::Write::write_all(s, b"X-Slow: 1\r\n");
        }
    };
    trickle(&mut slow);

    let t = Instant::now();
    let listed = d.call("admin.vm.List", "dom0", b"");
    assert!(listed.starts_with(b"0\0"), "{}", String::from_utf8_lossy(&listed));
    assert!(t.elapsed() < Duration::from_secs(2), "admin.vm.List took {:?}", t.elapsed());
    let t = Instant::now();
    assert_eq!(authenticated_get(&d), 200);
    assert!(t.elapsed() < Duration::from_secs(5));

    // Still trickling, every one of them is closed once the request timeout has passed.
    let mut closed = vec![false; slow.len()];
    while started.elapsed() < Duration::from_secs(8) && closed.iter().any(|c| !c) {
        trickle(&mut slow);
        std::thread::sleep(Duration::from_millis(200));
        for (s, closed) in slow.iter_mut().zip(closed.iter_mut()) {
            *closed = *closed || closed_now(s);
        }
    }
    let still_open = closed.iter().filter(|c| !**c).count();
    assert_eq!(still_open, 0, "{still_open} slow clients still connected {:?} after they began", started.elapsed());
}

/// Whether the daemon has closed `s` (whatever it answered before), without waiting.
fn closed_now(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 4096];
    let closed = loop {
        match std::io::Read::read(s, &mut buf) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).expect("blocking");
    closed
}

#[test]
fn a_keep_alive_connection_idle_after_its_request_is_closed_after_the_request_timeout() {
    let d = Daemon::start_with_args(&["--request-timeout", "2"]).with_user();
    let mut s = TcpStream::connect(d.http()).expect("connect");
    assert_eq!(status_of(&mut s, GET_API), "HTTP/1.1 200 OK");
    let idle = Instant::now();
    assert!(!closed_within(&mut s, Duration::from_millis(1500)), "closed before the timeout");
    assert!(closed_within(&mut s, Duration::from_secs(3)), "still open {:?} after its request", idle.elapsed());
}

#[test]
fn a_request_body_that_does_not_arrive_in_time_is_refused_and_the_connection_closed() {
    let d = Daemon::start_with_args(&["--request-timeout", "2"]).with_user();
    let mut s = TcpStream::connect(d.http()).expect("connect");
    let head = "POST /api/vms HTTP/1.1\r\nHost: corral\r\nAuthorization: Basic YWRtaW5AaW50ZXJuYWw6c2VjcmV0\r\n\
                Content-Type: application/xml\r\nContent-Length: 1000\r\n\r\n<vm><name>slow</name>";
    std::io::Write::write_all(&mut s, head.as_bytes()).expect("send");
    let sent = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(6))).expect("timeout");
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(sent.elapsed() < Duration::from_secs(5), "waited {:?} for the body", sent.elapsed());
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(answer.contains("did not arrive within 2 s"), "{answer}");
    let listed = d.ok("admin.vm.List", "dom0", b"");
    assert!(!listed.contains("slow"), "{listed}");
}

#[test]
fn one_client_address_cannot_take_the_connections_of_another() {
    let d = Daemon::start_with_args(&["--http-max-connections-per-peer", "4"]).with_user();
    let address = d.http();
    let mut others: Vec<TcpStream> = (0..4).map(|_| connect_from([127, 0, 0, 3].into(), &address)).collect();
    std::thread::sleep(Duration::from_millis(200));

    let mut flood: Vec<TcpStream> = (0..20).map(|_| connect_from([127, 0, 0, 2].into(), &address)).collect();
    std::thread::sleep(Duration::from_millis(200));

    // The flooding address keeps its four newest connections; the other address keeps all of its own.
    for (i, s) in flood.iter_mut().enumerate() {
        assert_eq!(closed_within(s, Duration::from_millis(100)), i < 16, "flood connection {i}");
    }
    for s in &mut others {
        assert_eq!(status_of(s, GET_API), "HTTP/1.1 200 OK");
    }
}

#[test]
fn a_thousand_clients_with_endless_request_heads_cost_bounded_memory() {
    rlimit::increase_nofile_limit(4096).expect("raise the test's own limit");
    let d = Daemon::start_under(&["prlimit", "--nofile=1024:1024"]).with_user();
    let address = d.http();
    assert_eq!(authenticated_get(&d), 200);
    let before = d.rss_kib();

    // Each client sends 371 KiB of header lines without ending its head, and keeps the connection open.
    let line = format!("X-Filler: {}\r\n", "a".repeat(1000));
    let head = format!("GET /api HTTP/1.1\r\nHost: corral\r\n{}", line.repeat(371 * 1024 / line.len()));
    let clients: Vec<std::thread::JoinHandle<Vec<TcpStream>>> = (0..8u8)
        .map(|t| {
            let (address, head) = (address.clone(), head.clone());
            std::thread::spawn(move || {
                (0..125)
                    .map(|_| {
                        let mut s = connect_from([127, 0, 0, 2 + t].into(), &address);
                        s.set_write_timeout(Some(Duration::from_secs(2))).expect("timeout");
                        // The daemon stops reading (and answers 431) long before the end.
                        let _ = std::io::Write::write_all(&mut s, head.as_bytes());
                        s
                    })
                    .collect()
            })
        })
        .collect();
    let held: Vec<TcpStream> = clients.into_iter().flat_map(|c| c.join().expect("client thread")).collect();
    assert_eq!(held.len(), 1000);

    let grown_mib = d.rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 100, "the daemon grew by {grown_mib} MiB");
    assert_eq!(authenticated_get(&d), 200);
    drop(held);
}

#[test]
fn admin_connections_beyond_the_cap_make_idle_ones_give_way_but_never_an_event_stream() {
    let d = Daemon::start_with_args(&["--admin-max-connections", "8"]);
    let mut events = support::events::Events::open(&d, "dom0");
    let mut idle: Vec<std::os::unix::net::UnixStream> =
        (0..50).map(|_| std::os::unix::net::UnixStream::connect(&d.admin).expect("connect")).collect();
    std::thread::sleep(Duration::from_millis(200));
    // Eight places, one taken by the stream: all but the seven newest idle connections were closed.
    let closed = idle
        .iter_mut()
        .map(|s| {
            s.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
            matches!(std::io::Read::read(s, &mut [0u8; 16]), Ok(0))
        })
        .filter(|closed| *closed)
        .count();
    assert_eq!(closed, 43);

    let t = Instant::now();
    let listed = d.call("admin.vm.List", "dom0", b"");
    assert!(listed.starts_with(b"0\0"), "{}", String::from_utf8_lossy(&listed));
    assert!(t.elapsed() < Duration::from_secs(2));

    d.ok("admin.property.Set+default_qrexec_timeout", "dom0", b"90");
    assert!(!events.until("property-set:default_qrexec_timeout").is_empty());
    drop(idle);
}

#[test]
fn an_event_subscriber_that_stops_reading_is_closed_after_the_request_timeout() {
    let d = Daemon::start_with_args(&["--request-timeout", "1"]);
    let mut events = support::events::Events::connect(&d, "dom0");
    // More events than the socket buffers hold, far fewer than the daemon's event backlog.
    for i in 0..1500 {
        d.ok("admin.property.Set+default_qrexec_timeout", "dom0", format!("{}", 60 + i).as_bytes());
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(events.closed_within(Duration::from_secs(5)), "the stream is still open");
}
