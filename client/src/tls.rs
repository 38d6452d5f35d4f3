//! TLS 1.3 and QUIC settings: which certificates to trust (a CA bundle or one pinned
//! certificate), an optional client certificate for mutual TLS, ALPN `allot/1`, no 0-RTT,
//! keep-alive and idle timeout.

use std::path::Path;
use std::sync::Arc;

use allot_protocol::ALPN;
use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::{ClientCert, ClientConfig, Trust};
use crate::error::ClientError;

/// The crypto provider every connection uses: ring, so no C toolchain is needed.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The quinn client configuration for `config`: certificates are read here, once.
pub(crate) fn quic_config(config: &ClientConfig) -> Result<quinn::ClientConfig, ClientError> {
    let tls = rustls_config(&config.trust, config.client_cert.as_ref())?;
    let quic =
        QuicClientConfig::try_from(tls).map_err(|error| ClientError::Tls(error.to_string()))?;
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(config.keep_alive_interval));
    let idle = quinn::IdleTimeout::try_from(config.idle_timeout).map_err(|_| {
        ClientError::Config(format!("idle timeout {:?} is too long", config.idle_timeout))
    })?;
    transport.max_idle_timeout(Some(idle));
    let mut quic_config = quinn::ClientConfig::new(Arc::new(quic));
    quic_config.transport_config(Arc::new(transport));
    Ok(quic_config)
}

/// TLS 1.3 only, ALPN `allot/1`, early data off (0-RTT data can be replayed), and the
/// client certificate, when there is one, offered to servers that ask.
pub(crate) fn rustls_config(
    trust: &Trust,
    client_cert: Option<&ClientCert>,
) -> Result<rustls::ClientConfig, ClientError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| ClientError::Tls(error.to_string()))?;
    let builder = match trust {
        Trust::CaFile(path) => builder.with_root_certificates(root_store(path)?),
        Trust::PinnedCert(path) => {
            let verifier = PinnedCertVerifier::new(pinned_cert(path)?, &provider);
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier))
        }
    };
    let mut tls = match client_cert {
        Some(identity) => {
            let certs = read_certs(&identity.cert)?;
            let key = read_key(&identity.key)?;
            builder.with_client_auth_cert(certs, key).map_err(|error| {
                ClientError::Config(format!(
                    "client certificate {} with key {}: {error}",
                    identity.cert.display(),
                    identity.key.display()
                ))
            })?
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.enable_early_data = false;
    Ok(tls)
}

/// Every certificate in a PEM file.
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let unreadable = |error: rustls::pki_types::pem::Error| {
        ClientError::Config(format!("cannot read certificates from {}: {error}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    if certs.is_empty() {
        return Err(ClientError::Config(format!("no certificate in {}", path.display())));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ClientError> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => {
            ClientError::Config(format!("no private key in {}", path.display()))
        }
        error => ClientError::Config(format!(
            "cannot read a private key from {}: {error}",
            path.display()
        )),
    })
}

fn root_store(path: &Path) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(read_certs(path)?);
    if added == 0 {
        return Err(ClientError::Config(format!("no usable CA certificate in {}", path.display())));
    }
    Ok(roots)
}

fn pinned_cert(path: &Path) -> Result<CertificateDer<'static>, ClientError> {
    let mut certs = read_certs(path)?;
    if certs.len() > 1 {
        // Pinning one of several would silently accept a certificate the user did not mean.
        return Err(ClientError::Config(format!(
            "{} holds {} certificates; a pinned certificate file holds exactly one",
            path.display(),
            certs.len()
        )));
    }
    Ok(certs.remove(0))
}

/// Accepts exactly one server certificate, whoever signed it, and still checks that the
/// server holds its private key (the handshake signature).
#[derive(Debug)]
pub(crate) struct PinnedCertVerifier {
    pinned: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCertVerifier {
    pub(crate) fn new(
        pinned: CertificateDer<'static>,
        provider: &CryptoProvider,
    ) -> PinnedCertVerifier {
        PinnedCertVerifier { pinned, algorithms: provider.signature_verification_algorithms }
    }
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed() -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap()
    }

    fn verify(
        verifier: &PinnedCertVerifier,
        cert: &CertificateDer<'_>,
    ) -> Result<(), rustls::Error> {
        let name = ServerName::try_from("elsewhere.example").unwrap();
        verifier.verify_server_cert(cert, &[], &name, &[], UnixTime::now()).map(drop)
    }

    #[test]
    fn the_pinned_certificate_is_accepted_whatever_the_name_and_another_is_refused() {
        let pinned = self_signed();
        let other = self_signed();
        let verifier = PinnedCertVerifier::new(pinned.cert.der().clone(), &provider());
        assert!(verify(&verifier, pinned.cert.der()).is_ok());
        let refused = verify(&verifier, other.cert.der()).unwrap_err();
        assert!(matches!(refused, rustls::Error::InvalidCertificate(_)), "{refused:?}");
        assert!(!verifier.supported_verify_schemes().is_empty());
    }

    #[test]
    fn a_pinned_file_must_hold_exactly_one_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.pem");
        std::fs::write(&one, self_signed().cert.pem()).unwrap();
        assert!(rustls_config(&Trust::PinnedCert(one), None).is_ok());
        let two = dir.path().join("two.pem");
        std::fs::write(&two, self_signed().cert.pem() + &self_signed().cert.pem()).unwrap();
        let error = rustls_config(&Trust::PinnedCert(two), None).unwrap_err();
        assert!(error.to_string().contains("exactly one"), "{error}");
        let none = dir.path().join("none.pem");
        std::fs::write(&none, "not a certificate").unwrap();
        let error = rustls_config(&Trust::CaFile(none), None).unwrap_err();
        assert!(error.to_string().contains("no certificate"), "{error}");
    }

    /// A self-signed certificate and its key, written to `dir/{name}.pem` and
    /// `dir/{name}-key.pem`.
    fn write_identity(dir: &Path, name: &str) -> ClientCert {
        let identity = self_signed();
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert, identity.cert.pem()).unwrap();
        std::fs::write(&key, identity.signing_key.serialize_pem()).unwrap();
        ClientCert::new(cert, key)
    }

    #[test]
    fn a_client_certificate_and_its_key_make_a_config_that_offers_them() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, self_signed().cert.pem()).unwrap();
        let identity = write_identity(dir.path(), "client");
        let tls = rustls_config(&Trust::CaFile(ca), Some(&identity)).unwrap();
        assert!(tls.client_auth_cert_resolver.has_certs());
        assert!(
            quic_config(&ClientConfig {
                client_cert: Some(identity),
                ..ClientConfig::new("127.0.0.1:9", Trust::PinnedCert(dir.path().join("ca.pem")), "")
            })
            .is_ok()
        );
    }

    #[test]
    fn an_unusable_client_certificate_or_key_is_a_config_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let pinned = dir.path().join("server.pem");
        std::fs::write(&pinned, self_signed().cert.pem()).unwrap();
        let trust = Trust::PinnedCert(pinned);
        let good = write_identity(dir.path(), "client");
        let other = write_identity(dir.path(), "other");
        let config_error = |identity: ClientCert| match rustls_config(&trust, Some(&identity)) {
            Err(ClientError::Config(message)) => message,
            Err(other) => panic!("expected a configuration error, got {other}"),
            Ok(_) => panic!("expected a configuration error for {identity:?}"),
        };

        let missing = dir.path().join("missing.pem");
        let message = config_error(ClientCert::new(&missing, &good.key));
        assert!(message.contains("missing.pem"), "{message}");
        let message = config_error(ClientCert::new(&good.cert, &missing));
        assert!(message.contains("missing.pem"), "{message}");

        let message = config_error(ClientCert::new(&good.key, &good.key));
        assert!(
            message.contains("no certificate in") && message.contains("client-key.pem"),
            "{message}"
        );
        let message = config_error(ClientCert::new(&good.cert, &good.cert));
        assert!(
            message.contains("no private key in") && message.contains("client.pem"),
            "{message}"
        );

        let message = config_error(ClientCert::new(&good.cert, &other.key));
        assert!(message.contains("client.pem") && message.contains("other-key.pem"), "{message}");
    }

    #[test]
    fn the_tls_config_speaks_allot_over_tls13_without_early_data() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, self_signed().cert.pem()).unwrap();
        let tls = rustls_config(&Trust::CaFile(ca), None).unwrap();
        assert!(!tls.client_auth_cert_resolver.has_certs(), "no client certificate by default");
        assert_eq!(tls.alpn_protocols, vec![ALPN.to_vec()]);
        assert!(!tls.enable_early_data);
    }
}
