//! Mutual TLS end to end: a real `allotd` with `[tls] client_ca` and
//! `client_cert_role = "checkout"`, driven through `allot_client` with
//! `ClientConfig::client_cert`. A certificate chained to the configured CA with an empty
//! token gets the checkout role, a certificate from another CA fails the handshake, and
//! an empty token without a certificate is `Unauthorized`; the configured admin token
//! keeps working throughout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use allot_client::protocol::{ErrorCode, Role};
use allot_client::{Client, ClientCert, ClientConfig, ClientError, Trust};
use allot_tests::allotd::Allotd;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tempfile::TempDir;

use crate::support::{LOCATION, line, location_spec, runtime, server_code};

/// The one configured token, so the tests can set up locations and stock.
const ADMIN_TOKEN: &str = "mtls-admin-0f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// A refused connection must fail well within this, never hang.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh CA written to `dir/{name}-ca.pem`, and a client certificate it signed with
/// its key, as `dir/{name}.pem` and `dir/{name}-key.pem`.
fn client_ca_and_cert(dir: &Path, name: &str) -> (PathBuf, ClientCert) {
    let mut ca = CertificateParams::new(Vec::new()).expect("CA params");
    ca.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("CA");
    let ca_path = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca_path, ca.pem()).expect("write the CA");

    let mut leaf = CertificateParams::new(vec![format!("{name}-client")]).expect("leaf params");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("client key");
    let cert = leaf.signed_by(&key, &ca).expect("sign the client certificate");
    let identity =
        ClientCert::new(dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem")));
    std::fs::write(&identity.cert, cert.pem()).expect("write the client certificate");
    std::fs::write(&identity.key, key.serialize_pem()).expect("write the client key");
    (ca_path, identity)
}

/// A running `allotd` that verifies client certificates against a test CA.
struct MtlsServer {
    allotd: Allotd,
    /// A client certificate the server's CA signed.
    trusted: ClientCert,
    certs: TempDir,
    _data: TempDir,
}

impl MtlsServer {
    fn start() -> MtlsServer {
        let data = tempfile::Builder::new().prefix("allot-mtls-data-").tempdir().expect("tempdir");
        let certs =
            tempfile::Builder::new().prefix("allot-mtls-certs-").tempdir().expect("tempdir");
        let (ca, trusted) = client_ca_and_cert(certs.path(), "trusted");
        let config = certs.path().join("allotd.toml");
        let toml = format!(
            "[tls]\n\
             client_ca = {ca:?}\n\
             client_cert_role = \"checkout\"\n\
             \n\
             [[tokens]]\n\
             name = \"setup\"\n\
             role = \"admin\"\n\
             token = \"{ADMIN_TOKEN}\"\n",
            ca = ca.to_str().expect("a UTF-8 temporary path"),
        );
        std::fs::write(&config, toml).expect("write the server configuration");
        let config = config.to_str().expect("a UTF-8 temporary path");
        let allotd = Allotd::start_in(data.path(), &["--config", config]);
        MtlsServer { allotd, trusted, certs, _data: data }
    }

    fn config(&self, token: &str, client_cert: Option<ClientCert>) -> ClientConfig {
        let trust = Trust::PinnedCert(self.allotd.cert_path());
        let mut config = ClientConfig::new(self.allotd.addr().to_string(), trust, token);
        config.client_name = "mtls".into();
        config.client_cert = client_cert;
        config
    }

    async fn admin(&self) -> Client {
        let admin = Client::connect(self.config(ADMIN_TOKEN, None)).await.expect("admin connects");
        assert_eq!(admin.role(), Role::Admin);
        admin
    }
}

/// `Client::connect`, failing the test if it neither connects nor fails in time.
async fn connect_in_time(config: ClientConfig) -> Result<Client, ClientError> {
    tokio::time::timeout(REFUSAL_TIMEOUT, Client::connect(config))
        .await
        .unwrap_or_else(|_| panic!("no outcome within {REFUSAL_TIMEOUT:?}"))
}

#[test]
fn a_trusted_client_certificate_with_an_empty_token_is_checkout_and_may_reserve_but_not_receive() {
    let server = MtlsServer::start();
    runtime().block_on(async {
        let admin = server.admin().await;
        admin.upsert_location(location_spec(LOCATION)).await.expect("add the location");
        admin.receive("TEE", LOCATION, 10).await.expect("stock to reserve");

        let checkout = Client::connect(server.config("", Some(server.trusted.clone())))
            .await
            .expect("a trusted client certificate connects without a token");
        assert_eq!(checkout.role(), Role::Checkout);
        let placed = checkout
            .reserve(vec![line("TEE", LOCATION, 3)], None)
            .await
            .expect("checkout reserves");
        assert_eq!(checkout.hold(placed.hold).await.expect("read the hold").lines.len(), 1);
        assert_eq!(admin.cell("TEE", LOCATION).await.expect("the cell").held, 3);

        let refused = checkout.receive("TEE", LOCATION, 5).await.unwrap_err();
        assert!(matches!(refused, ClientError::Server(_)), "refused per request: {refused}");
        assert_eq!(server_code(refused), ErrorCode::Unauthorized);
        assert_eq!(admin.cell("TEE", LOCATION).await.expect("the cell").on_hand, 10);
        checkout.close().await;
        admin.close().await;
    });
}

#[test]
fn a_client_certificate_from_another_ca_fails_to_connect_while_the_admin_token_keeps_working() {
    let server = MtlsServer::start();
    let (_foreign_ca, foreign) = client_ca_and_cert(server.certs.path(), "foreign");
    runtime().block_on(async {
        let admin = server.admin().await;
        admin.upsert_location(location_spec(LOCATION)).await.expect("add the location");

        for token in ["", ADMIN_TOKEN] {
            let error = connect_in_time(server.config(token, Some(foreign.clone())))
                .await
                .expect_err("a certificate from an unknown CA is refused, whatever the token");
            assert!(matches!(error, ClientError::Tls(_)), "expected a TLS error, got {error:?}");
        }

        assert_eq!(admin.receive("TEE", LOCATION, 4).await.expect("admin still works").on_hand, 4);
        let again = server.admin().await;
        assert_eq!(again.cell("TEE", LOCATION).await.expect("the cell").on_hand, 4);
        again.close().await;
        admin.close().await;
    });
}

#[test]
fn an_empty_token_without_a_client_certificate_is_refused_unauthorized() {
    let server = MtlsServer::start();
    runtime().block_on(async {
        let error = connect_in_time(server.config("", None))
            .await
            .expect_err("no certificate and no token is refused");
        assert!(matches!(error, ClientError::Refused(_)), "refused at Hello: {error:?}");
        assert_eq!(server_code(error), ErrorCode::Unauthorized);
        server.admin().await.close().await;
    });
}
