//! TLS and QUIC transport settings: the server certificate (configured PEM files or the
//! development certificate), optional client-certificate verification, TLS 1.3 only,
//! ALPN `allot/1`, no 0-RTT, and the stream and idle limits quinn enforces.

use std::path::Path;
use std::sync::Arc;

use allot_protocol::ALPN;
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::ServerError;
use super::config::{Limits, ServerConfig, TlsSource};
use super::dev_files::{self, Origin};

/// Bytes a connection may have received and not yet read, over all its streams. Bounds
/// what a client can make the server buffer beyond the frames it is decoding.
const CONNECTION_RECEIVE_WINDOW_BYTES: u32 = 16 * 1024 * 1024;
/// Bytes of answers quinn may hold for a connection, sent and not yet acknowledged: what
/// it holds beyond the answers the byte budgets count (quinn's default is 10 MB).
const CONNECTION_SEND_WINDOW_BYTES: u64 = 4 * 1024 * 1024;

/// The rustls configuration for `config`. The crypto provider is passed explicitly, so
/// nothing process-wide is installed and several servers can run in one process.
pub fn server_crypto(config: &ServerConfig) -> Result<rustls::ServerConfig, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (certs, key) = certificate(config)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| ServerError::Tls(format!("TLS 1.3 is unavailable: {error}")))?;
    let builder = match &config.client_ca {
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, provider)?),
        None => builder.with_no_client_auth(),
    };
    let mut tls = builder.with_single_cert(certs, key).map_err(|error| {
        ServerError::Tls(format!("the certificate and key do not fit: {error}"))
    })?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // 0-RTT data can be replayed by an attacker; commands must not be.
    tls.max_early_data_size = 0;
    Ok(tls)
}

/// The quinn server configuration: `tls` plus the connection limits.
pub fn quic_server_config(
    tls: rustls::ServerConfig,
    limits: &Limits,
) -> Result<quinn::ServerConfig, ServerError> {
    let crypto = QuicServerConfig::try_from(tls)
        .map_err(|error| ServerError::Tls(format!("unusable for QUIC: {error}")))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport(limits)?));
    Ok(server)
}

fn transport(limits: &Limits) -> Result<TransportConfig, ServerError> {
    let idle = IdleTimeout::try_from(limits.idle_timeout()).map_err(|_| {
        ServerError::Config(format!(
            "limits.idle_timeout_ms {} is too long",
            limits.idle_timeout_ms
        ))
    })?;
    let mut transport = TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(limits.streams_per_connection_max))
        // The protocol has no use for unidirectional streams or datagrams.
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .datagram_receive_buffer_size(None)
        .receive_window(VarInt::from_u32(CONNECTION_RECEIVE_WINDOW_BYTES))
        .send_window(CONNECTION_SEND_WINDOW_BYTES)
        .max_idle_timeout(Some(idle));
    Ok(transport)
}

type CertificateAndKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn certificate(config: &ServerConfig) -> Result<CertificateAndKey, ServerError> {
    match &config.tls {
        TlsSource::Files { cert, key } => Ok((load_certs(cert)?, load_key(key)?)),
        TlsSource::Dev => {
            let (cert, key, origin) = dev_files::dev_cert(&config.data_dir)?;
            let verb = if origin == Origin::Created { "created" } else { "using" };
            tracing::info!(
                "no certificate configured: {verb} a development certificate for localhost; \
                 clients must trust {}",
                cert.display()
            );
            Ok((load_certs(&cert)?, load_key(&key)?))
        }
    }
}

/// Every certificate in a PEM file, in file order (leaf first for a chain).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let pem_error = |error| ServerError::Tls(format!("{}: {error}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!("{}: no certificate in the file", path.display())));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServerError> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| {
        ServerError::Tls(format!("{}: no usable private key: {error}", path.display()))
    })
}

/// Verifies client certificates chained to the CAs in `ca`. Clients without a
/// certificate are still let in: they authenticate with a token instead.
fn client_verifier(
    ca: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, ServerError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca)? {
        roots.add(cert).map_err(|error| {
            ServerError::Tls(format!("{}: not a CA certificate: {error}", ca.display()))
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|error| ServerError::Tls(format!("{}: {error}", ca.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_certificate_makes_a_tls13_only_config_without_early_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = server_crypto(&ServerConfig::new(dir.path())).expect("tls config");
        assert_eq!(tls.alpn_protocols, vec![ALPN.to_vec()]);
        assert_eq!(tls.max_early_data_size, 0);
        assert!(quic_server_config(tls, &Limits::default()).is_ok());
    }

    #[test]
    fn a_missing_certificate_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.pem");
        let config = ServerConfig::new(dir.path()).with_tls_files(&missing, &missing);
        let error = server_crypto(&config).unwrap_err().to_string();
        assert!(error.contains("nope.pem"), "{error}");
    }

    #[test]
    fn a_client_ca_turns_on_optional_client_verification() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca_cert, _, _) = dev_files::dev_cert(dir.path()).expect("a certificate to trust");
        let config =
            ServerConfig::new(dir.path()).with_client_ca(ca_cert, allot_protocol::Role::Read);
        assert!(server_crypto(&config).is_ok());
    }
}
