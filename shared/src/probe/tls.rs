//! TLS as the probe speaks it: rustls on ring, verified against the
//! operator's CA bundle (for RDS, the bundle AWS publishes for the Region),
//! or — without one — encrypted but not verified, which every proof says.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// A CA bundle that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the CA bundle {path} cannot be read: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the CA bundle {path} holds no usable certificate (PEM, `-----BEGIN CERTIFICATE-----`)"
    )]
    Empty { path: String },
}

/// The operator's CA certificates (PEM), read once.
#[derive(Debug, Clone)]
pub struct CaBundle {
    pub path: String,
    /// The PEM text, as mysql_async takes it.
    pub pem: Arc<Vec<u8>>,
    roots: Arc<RootCertStore>,
}

impl CaBundle {
    /// Reads the PEM bundle at `path`.
    pub fn read(path: &str) -> Result<CaBundle, TlsError> {
        let pem = std::fs::read(path).map_err(|source| TlsError::Unreadable {
            path: path.into(),
            source,
        })?;
        CaBundle::from_pem(path, pem)
    }

    pub fn from_pem(path: &str, pem: Vec<u8>) -> Result<CaBundle, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
            // A certificate rustls cannot use is skipped, as a browser would.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(TlsError::Empty { path: path.into() });
        }
        Ok(CaBundle {
            path: path.into(),
            pem: Arc::new(pem),
            roots: Arc::new(roots),
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configuration: verifying against `ca`, or encrypting only.
pub(crate) fn client_config(ca: Option<&CaBundle>) -> Result<ClientConfig, rustls::Error> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    Ok(match ca {
        Some(ca) => builder
            .with_root_certificates(Arc::clone(&ca.roots))
            .with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider())))
            .with_no_client_auth(),
    })
}

/// Accepts any certificate, still checking the handshake's signatures:
/// the connection is encrypted, the server not authenticated. Used only
/// without a CA bundle, and every proof says "NOT verified".
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS failure in a driver's error, if it is one: a `rustls::Error`
/// somewhere in its chain of sources.
pub(crate) fn tls_cause(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r.to_string());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(r) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Some(r.to_string());
            }
        }
        next = e.source();
    }
    None
}
