//! TLS for the server's public listeners (HTTPS for the API and console, MQTT over TLS at the
//! broker gate), with rustls and its `ring` provider.
//!
//! - [`server_config`] reads a PEM certificate chain, a PEM private key and, optionally, a PEM
//!   CA bundle for client certificates (mutual TLS), and reports which file is missing,
//!   unreadable or not valid PEM as a [`TlsFileError`] (the config layer adds file/line/field).
//! - The handshakes run in each connection's own task, bounded by the listener's timeout and
//!   connection limits (`http_limits` for HTTPS, the broker gate for MQTT over TLS), so a slow
//!   or silent client never blocks an accept loop.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which TLS file is wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFileError {
    /// `cert_file`, `key_file` or `client_ca_file`.
    pub field: &'static str,
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for TlsFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} `{}`: {}",
            self.field,
            self.path.display(),
            self.message
        )
    }
}

impl std::error::Error for TlsFileError {}

/// The files of one TLS listener.
#[derive(Debug, Clone, Copy)]
pub struct TlsFiles<'a> {
    pub cert_file: &'a Path,
    pub key_file: &'a Path,
    /// When set, clients must present a certificate issued by one of these CAs.
    pub client_ca_file: Option<&'a Path>,
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|e| TlsFileError {
        field,
        path: path.to_owned(),
        message: format!("cannot read: {e}"),
    })
}

fn pem_error(
    field: &'static str,
    path: &Path,
    what: &str,
    e: impl std::fmt::Display,
) -> TlsFileError {
    TlsFileError {
        field,
        path: path.to_owned(),
        message: format!("expected {what} in PEM format: {e}"),
    }
}

/// Reads every `CERTIFICATE` block of a PEM file (at least one).
pub fn read_certs(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let pem = read(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(field, path, "certificates", e))?;
    if certs.is_empty() {
        return Err(pem_error(
            field,
            path,
            "certificates",
            "no `BEGIN CERTIFICATE` block found",
        ));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn read_key(field: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let pem = read(field, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => pem_error(
            field,
            path,
            "a private key",
            "no `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY` block found",
        ),
        e => pem_error(field, path, "a private key", e),
    })
}

/// Builds the rustls server configuration of one listener. `alpn` lists the application
/// protocols offered (empty: no ALPN).
pub fn server_config(
    files: TlsFiles<'_>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsFileError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs("cert_file", files.cert_file)?;
    let key = read_key("key_file", files.key_file)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFileError {
            field: "cert_file",
            path: files.cert_file.to_owned(),
            message: format!("TLS setup: {e}"),
        })?;
    let builder = match files.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs("client_ca_file", ca)? {
                roots.add(c).map_err(|e| TlsFileError {
                    field: "client_ca_file",
                    path: ca.to_owned(),
                    message: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| TlsFileError {
                field: "client_ca_file",
                path: ca.to_owned(),
                message: format!("client certificate verifier: {e}"),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsFileError {
            field: "key_file",
            path: files.key_file.to_owned(),
            message: format!("the key does not fit the certificate in cert_file: {e}"),
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// `Strict-Transport-Security` value for a max-age in seconds.
pub fn hsts_value(max_age_s: u64) -> String {
    format!("max-age={max_age_s}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn self_signed() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn files_are_checked_with_field_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed();
        let cert_p = write(dir.path(), "c.pem", &cert);
        let key_p = write(dir.path(), "k.pem", &key);
        let missing = dir.path().join("missing.pem");
        let files = |c: &Path, k: &Path, ca: Option<&Path>| {
            server_config(
                TlsFiles {
                    cert_file: c,
                    key_file: k,
                    client_ca_file: ca,
                },
                &[],
            )
        };
        assert!(files(&cert_p, &key_p, None).is_ok());
        assert!(files(&cert_p, &key_p, Some(&cert_p)).is_ok());

        let e = files(&missing, &key_p, None).unwrap_err();
        assert_eq!(
            (e.field, e.path.as_path()),
            ("cert_file", missing.as_path())
        );
        assert!(e.message.contains("cannot read"), "{e}");

        // A key where the certificate should be, and the other way round.
        let e = files(&key_p, &key_p, None).unwrap_err();
        assert_eq!(e.field, "cert_file");
        assert!(e.message.contains("BEGIN CERTIFICATE"), "{e}");
        let e = files(&cert_p, &cert_p, None).unwrap_err();
        assert_eq!(e.field, "key_file");
        assert!(e.message.contains("private key"), "{e}");

        // Broken base64 inside a block.
        let bad = write(
            dir.path(),
            "bad.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        let e = files(&bad, &key_p, None).unwrap_err();
        assert_eq!(e.field, "cert_file");

        // A key of another certificate.
        let (_, other_key) = self_signed();
        let other = write(dir.path(), "other.pem", &other_key);
        let e = files(&cert_p, &other, None).unwrap_err();
        assert_eq!(e.field, "key_file");
        assert!(e.message.contains("does not fit"), "{e}");

        let e = files(&cert_p, &key_p, Some(&missing)).unwrap_err();
        assert_eq!(e.field, "client_ca_file");
    }
}
