//! The HTTP door over TLS: a self-signed certificate made once in `<state-dir>/tls/`, or given PEM
//! files; `GET /ca.crt` without auth; `Secure` session cookies; bad TLS flags stop the daemon.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Daemon;

/// The door's address once this run of the daemon has written it.
fn address(d: &Daemon) -> String {
    let path = d.state.join("http-address");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(a) = std::fs::read_to_string(&path) {
            return a;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} did not appear\n{}", path.display(), d.log());
}

fn builder() -> reqwest::blocking::ClientBuilder {
    reqwest::blocking::Client::builder().use_rustls_tls().timeout(Duration::from_secs(30))
}

/// `/ca.crt` fetched without trusting anything yet, as a first-time client does.
fn download_ca(addr: &str) -> String {
    let insecure = builder().danger_accept_invalid_certs(true).build().expect("client");
    let r = insecure.get(format!("https://{addr}/ca.crt")).send().expect("GET /ca.crt");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-x509-ca-cert");
    r.text().expect("body")
}

/// A client that trusts only `pem`.
fn trusting(pem: &str) -> reqwest::blocking::Client {
    let cert = reqwest::Certificate::from_pem(pem.as_bytes()).expect("certificate PEM");
    builder().tls_built_in_root_certs(false).add_root_certificate(cert).build().expect("client")
}

#[test]
fn self_signed_door_serves_its_certificate_and_secure_sessions() {
    let d = Daemon::start_with_args(&["--tls-self-signed"]);
    d.add_user("admin", "secret");
    let addr = address(&d);

    let pem = download_ca(&addr);
    let on_disk = std::fs::read_to_string(d.state.join("tls/cert.pem")).expect("cert.pem");
    assert_eq!(pem.replace("\r\n", "\n").trim(), on_disk.replace("\r\n", "\n").trim());
    assert_eq!(download_ca(&addr), pem, "/ovirt-engine/ca.crt is the same as /ca.crt");
    let client = trusting(&pem);

    let port = addr.rsplit(':').next().expect("port");
    for host in ["127.0.0.1", "localhost"] {
        let r = client
            .get(format!("https://{host}:{port}/api"))
            .basic_auth("admin@internal", Some("secret"))
            .header("Prefer", "persistent-auth")
            .send()
            .unwrap_or_else(|e| panic!("HTTPS to {host}: {e:?}"));
        assert_eq!(r.status(), 200);
        let cookie = r.headers()["set-cookie"].to_str().expect("ascii").to_string();
        assert!(cookie.starts_with("JSESSIONID=") && cookie.contains("; Secure"), "{cookie}");
        assert!(r.text().expect("body").contains("<product_info>"));
    }
    let r = client.get(format!("https://{addr}/ovirt-engine/ca.crt")).send().expect("GET");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().expect("body"), pem);
    let r = client.get(format!("https://{addr}/api")).send().expect("GET");
    assert_eq!(r.status(), 401, "only /ca.crt is public");
}

#[test]
fn plain_http_to_the_tls_port_fails() {
    let d = Daemon::start_with_args(&["--tls-self-signed"]);
    let addr = address(&d);

    let plain = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    let r = plain.get(format!("http://{addr}/ca.crt")).send();

    assert!(r.is_err(), "plain HTTP was answered: {:?}", r.map(|r| r.status()));
    assert_eq!(download_ca(&addr).lines().next(), Some("-----BEGIN CERTIFICATE-----"), "still serving TLS");
}

#[test]
fn self_signed_files_are_reused_across_a_restart() {
    let mut d = Daemon::start_with_args(&["--tls-self-signed"]);
    address(&d);
    let (cert_path, key_path) = (d.state.join("tls/cert.pem"), d.state.join("tls/key.pem"));
    let cert = std::fs::read(&cert_path).expect("cert.pem");
    let key = std::fs::read(&key_path).expect("key.pem");
    let mode = std::fs::metadata(&key_path).expect("key.pem").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    std::fs::remove_file(d.state.join("http-address")).expect("remove http-address");
    d.restart();
    let addr = address(&d);

    assert_eq!(std::fs::read(&cert_path).expect("cert.pem"), cert);
    assert_eq!(std::fs::read(&key_path).expect("key.pem"), key);
    assert_eq!(download_ca(&addr).as_bytes(), cert.as_slice());
}

#[test]
fn given_certificate_files_are_served() {
    // A self-signed daemon makes a certificate; a second daemon is given it as files.
    let maker = Daemon::start_with_args(&["--tls-self-signed"]);
    address(&maker);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("chain.pem"), dir.path().join("server.key"));
    std::fs::copy(maker.state.join("tls/cert.pem"), &cert).expect("copy cert");
    std::fs::copy(maker.state.join("tls/key.pem"), &key).expect("copy key");
    drop(maker);

    let d = Daemon::start_with_args(&[
        "--tls-cert",
        cert.to_str().expect("utf-8"),
        "--tls-key",
        key.to_str().expect("utf-8"),
    ]);
    d.add_user("admin", "secret");
    let addr = address(&d);

    let pem = download_ca(&addr);
    assert_eq!(pem.as_bytes(), std::fs::read(&cert).expect("chain.pem").as_slice());
    let r = trusting(&pem).get(format!("https://{addr}/api")).basic_auth("admin@internal", Some("secret")).send();
    assert_eq!(r.expect("HTTPS").status(), 200);
    assert!(!d.state.join("tls").exists(), "no self-signed certificate is made");
}

#[test]
fn plain_http_door_has_no_ca_certificate() {
    let d = Daemon::start();
    let addr = address(&d);

    let r = reqwest::blocking::get(format!("http://{addr}/ca.crt")).expect("GET /ca.crt");

    assert_eq!(r.status(), 404);
}

/// Runs corrald with `args` and expects it to stop on its own, failing; returns its stderr.
fn failing_start(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = support::Reaped(
        Command::new(env!("CARGO_BIN_EXE_corrald"))
            .current_dir(dir.path())
            .args(["--admin-socket", "a.sock", "--internal-socket", "i.sock", "--state-dir", "state"])
            .args(["--libvirt-uri", "test:///default", "--http", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn corrald"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            panic!("corrald {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    assert!(!status.success(), "corrald {args:?} exited successfully: {stderr}");
    stderr
}

#[test]
fn tls_cert_without_key_is_a_configuration_error() {
    let stderr = failing_start(&["--tls-cert", "/nonexistent/cert.pem"]);

    assert!(stderr.contains("--tls-cert needs --tls-key"), "{stderr}");
}

#[test]
fn tls_key_without_cert_and_mixed_modes_are_configuration_errors() {
    let stderr = failing_start(&["--tls-key", "/nonexistent/key.pem"]);
    assert!(stderr.contains("--tls-key needs --tls-cert"), "{stderr}");

    let stderr = failing_start(&["--tls-self-signed", "--tls-cert", "c.pem", "--tls-key", "k.pem"]);
    assert!(stderr.contains("cannot be combined"), "{stderr}");
}

#[test]
fn unreadable_certificate_stops_the_daemon() {
    let stderr = failing_start(&["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"]);

    assert!(stderr.contains("Cannot read the TLS certificate /nonexistent/cert.pem"), "{stderr}");
}
