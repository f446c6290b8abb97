//! HTTPS: the rustls server configuration (always the `ring` provider, passed explicitly) and
//! `GET /ca.crt`, the certificate a client should trust.

use std::io;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::fault::ApiError;
use crate::Rest;

/// What an HTTPS listener serves: the rustls configuration and the served certificate as PEM.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<rustls::ServerConfig>,
    /// The first certificate of the chain, for `GET /ca.crt`.
    pub certificate_pem: String,
}

fn invalid(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
}

impl Tls {
    /// From PEM text: a certificate chain (the server's certificate first) and its private key.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> io::Result<Tls> {
        let certs = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("invalid certificate PEM", e))?;
        let Some(first) = certs.first() else {
            return Err(invalid("invalid certificate PEM", "no CERTIFICATE block"));
        };
        let certificate_pem = pem("CERTIFICATE", first);
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| invalid("invalid private key PEM", e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("TLS configuration", e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| invalid("certificate and key do not make a TLS identity", e))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls { config: Arc::new(config), certificate_pem })
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// `GET /ca.crt` (no auth): the served certificate; 404 when the door is plain HTTP.
#[utoipa::path(get, path = "/ca.crt", operation_id = "get_ca_certificate", tag = "api", summary = "The TLS certificate",
    description = "The certificate the HTTPS door serves, as PEM, for clients to trust; 404 on plain HTTP. Needs no \
        credentials; also at `/ovirt-engine/ca.crt`.",
    security(()),
    responses(
        (status = 200, description = "The certificate (PEM)", body = String,
            content_type = "application/x-x509-ca-cert"), (status = 404, response = crate::openapi::NotFound)))]
pub async fn ca_certificate(State(rest): State<Arc<Rest>>) -> Response {
    match &rest.certificate_pem {
        Some(pem) => ([(header::CONTENT_TYPE, "application/x-x509-ca-cert")], pem.clone()).into_response(),
        None => ApiError::not_found("ca.crt (the HTTP door is not TLS)").into_response(),
    }
}
