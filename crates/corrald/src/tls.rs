//! The HTTP door's certificate: PEM files the administrator gives, or a self-signed one made on first
//! start in `<state-dir>/tls/` (`cert.pem`, `key.pem` mode 0600) and reused afterwards.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Tls;

/// The certificate and key to serve, or `None` for plain HTTP.
pub fn load(mode: &Tls, state_dir: &Path) -> anyhow::Result<Option<corral_rest::tls::Tls>> {
    let (cert, key) = match mode {
        Tls::Off => return Ok(None),
        Tls::Files { cert, key } => (cert.clone(), key.clone()),
        Tls::SelfSigned => self_signed(&state_dir.join("tls"))?,
    };
    let chain = std::fs::read(&cert).with_context(|| format!("Cannot read the TLS certificate {}", cert.display()))?;
    let key_pem = std::fs::read(&key).with_context(|| format!("Cannot read the TLS key {}", key.display()))?;
    let tls = corral_rest::tls::Tls::from_pem(&chain, &key_pem)
        .with_context(|| format!("Cannot use {} with {}", cert.display(), key.display()))?;
    Ok(Some(tls))
}

/// `<dir>/cert.pem` and `<dir>/key.pem`, made when either is missing.
fn self_signed(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("Cannot create {}", dir.display()))?;
    let hostname = hostname();
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if let Some(h) = hostname.as_ref().filter(|h| !names.contains(h)) {
        names.push(h.clone());
    }
    let mut params = rcgen::CertificateParams::new(names.clone()).context("Invalid certificate names")?;
    params.distinguished_name.push(rcgen::DnType::CommonName, hostname.unwrap_or_else(|| "corrald".into()));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key_pair = rcgen::KeyPair::generate().context("Cannot generate a TLS key")?;
    let certificate = params.self_signed(&key_pair).context("Cannot make a self-signed certificate")?;
    // The key first: a certificate on disk always has its key next to it.
    write_new(&key, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert, certificate.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %cert.display(), ?names, "made a self-signed TLS certificate");
    Ok((cert, key))
}

/// Written whole under a temporary name, created with `mode`, then renamed into place.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("pem.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("Cannot create {}", tmp.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("Cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("Cannot write {}", path.display()))
}

/// The kernel's host name, when it can be a DNS name in the certificate.
fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?.trim().to_string();
    let valid = !name.is_empty()
        && name != "(none)"
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    valid.then_some(name)
}
