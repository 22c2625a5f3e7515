//! TLS to PostgreSQL over rustls (aws-lc-rs), as a URL's [`TlsSettings`] ask:
//! the connector every connection of a store uses, the three ways of checking
//! a server's certificate (none, the chain only, the chain and the name), and
//! the plain words for a refused handshake.
//!
//! The files (`sslrootcert`, `sslcert`, `sslkey`) are read once, when the
//! store is opened: a bad one fails the start, naming the file. A process
//! reads them again only when restarted.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::url::{RootCert, TlsSettings};
use crate::{Error, Result};

/// The connector of a store's connections, built once from its settings.
#[derive(Clone)]
pub(super) struct Tls {
    connect: MakeRustlsConnect,
}

impl Tls {
    pub(super) fn new(settings: &TlsSettings) -> Result<Tls> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Invalid(format!("cannot set up TLS: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = match (&settings.root_cert, settings.verifies())
        {
            (Some(root), true) => {
                let roots = Arc::new(roots(root)?);
                match settings.verifies_name() {
                    true => WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                        .build()
                        .map_err(|e| Error::Invalid(format!("cannot use sslrootcert: {e}")))?,
                    false => Arc::new(NamesUnchecked {
                        roots: Some(roots),
                        provider,
                    }),
                }
            }
            _ => Arc::new(NamesUnchecked {
                roots: None,
                provider,
            }),
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match (&settings.client_cert, &settings.client_key) {
            (Some(cert_path), Some(key_path)) => {
                let chain = read_certs("sslcert", cert_path)?;
                let pem = read("sslkey", key_path)?;
                let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                    Error::Invalid(format!(
                        "sslkey {}: no private key in it (PEM: PKCS#8, PKCS#1 or SEC1): {e}",
                        key_path.display()
                    ))
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    Error::Invalid(format!(
                        "sslcert {} and sslkey {} do not make a client certificate: {e}",
                        cert_path.display(),
                        key_path.display()
                    ))
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        // As libpq 17 does: a PostgreSQL 17 server accepts the protocol name,
        // older ones ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Tls {
            connect: MakeRustlsConnect::new(config),
        })
    }

    pub(super) fn connector(&self) -> MakeRustlsConnect {
        self.connect.clone()
    }
}

fn read(setting: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::Invalid(format!("{setting} {}: cannot read it: {e}", path.display())))
}

fn read_certs(setting: &str, path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(setting, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Invalid(format!("{setting} {}: not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Invalid(format!(
            "{setting} {}: no certificate in it (expected PEM, -----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

/// The CAs a server's certificate must chain to.
fn roots(root: &RootCert) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::File(path) => {
            for cert in read_certs("sslrootcert", path)? {
                store.add(cert).map_err(|e| {
                    Error::Invalid(format!(
                        "sslrootcert {}: a certificate in it is not a usable CA: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                let why: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
                return Err(Error::Invalid(format!(
                    "sslrootcert=system: this machine has no trusted CA certificates{}",
                    match why.is_empty() {
                        true => String::new(),
                        false => format!(" ({})", why.join("; ")),
                    }
                )));
            }
        }
    }
    Ok(store)
}

/// A certificate checked short of its names. Without `roots` (`prefer`, and
/// `require` without `sslrootcert`): any certificate. With them (`verify-ca`,
/// and `require` with `sslrootcert`): the chain must end in one of the roots;
/// the names in the certificate are not looked at. Either way the handshake's
/// signatures are checked against the key the certificate presents.
#[derive(Debug)]
struct NamesUnchecked {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NamesUnchecked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a connection error means in plain words, when it is TLS refusing
/// the connection: a certificate that does not check, a server without TLS
/// where it is required, a handshake the server broke off. `None` for
/// anything else (a reset mid-handshake is an outage, not a refusal).
pub(super) fn refusal(e: &tokio_postgres::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(tls) = as_rustls(err) {
            return Some(explain(tls));
        }
        // tokio-postgres's own words, when the server answered `N` to the
        // request for TLS and sslmode does not allow plaintext.
        if err.to_string() == "server does not support TLS" {
            return Some(
                "the server does not support TLS (it has ssl = off), and sslmode=require, \
                 verify-ca and verify-full never fall back to plaintext: turn ssl on in \
                 the server's postgresql.conf, or use sslmode=prefer"
                    .into(),
            );
        }
        source = err.source();
    }
    None
}

/// The rustls error in `err`, which may be wrapped in an `io::Error` (whose
/// `source` skips the error it wraps).
fn as_rustls<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    err.downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

fn explain(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected,
            presented,
        }) => format!(
            "the server's certificate does not match host {:?} (it is for {}): \
             sslmode=verify-full checks the name; connect by a name the certificate has",
            expected.to_str(),
            match presented.is_empty() {
                true => "no name".to_owned(),
                false => presented.join(", "),
            }
        ),
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => {
            "the server's certificate does not match the host connected to: sslmode=verify-full \
             checks the name; connect by a name the certificate has"
                .into()
        }
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the server's certificate is not signed by a CA in sslrootcert".into()
        }
        rustls::Error::InvalidCertificate(cert) => {
            format!("the server's certificate was refused: {cert}")
        }
        rustls::Error::AlertReceived(alert) => format!(
            "the server broke off the TLS handshake ({alert:?}): does it want a client \
             certificate (sslcert, sslkey) it trusts?"
        ),
        other => format!("the TLS handshake with the server failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::url::SslMode;
    use super::*;

    #[test]
    fn a_name_mismatch_says_which_host() {
        let e = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("localhost").unwrap().to_owned(),
            presented: vec!["DnsName(\"db.example\")".into()],
        });
        let text = explain(&e);
        assert!(
            text.contains("does not match host \"localhost\"") && text.contains("db.example"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let settings = TlsSettings {
            mode: SslMode::VerifyFull,
            root_cert: Some(RootCert::File("/nonexistent/ca.crt".into())),
            ..TlsSettings::default()
        };
        let err = Tls::new(&settings).err().expect("no such file").to_string();
        assert!(
            err.contains("sslrootcert /nonexistent/ca.crt: cannot read it"),
            "{err}"
        );
    }
}
