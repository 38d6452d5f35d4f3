//! The server in-process, as the load harness uses it: start on port 0, serve a client
//! over QUIC, shut down and release the data directory; several servers side by side;
//! client certificates under mutual TLS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use allot_protocol::{
    ClientFrame, Deframer, ErrorCode, Hello, PROTOCOL_VERSION, Reply, Request, RequestBody, Role,
    ServerFrame, codec,
};
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Connection, Endpoint, RecvStream, SendStream};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::*;

const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// A client certificate chain and its key.
type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn config(dir: &Path) -> ServerConfig {
    let engine = allot_engine::EngineConfig {
        snapshot_on_shutdown: false,
        ..allot_engine::EngineConfig::default()
    };
    ServerConfig::new(dir).with_listen("127.0.0.1:0".parse().expect("address")).with_engine(engine)
}

async fn connect(
    server: &Server,
    data_dir: &Path,
    identity: Option<Identity>,
) -> Result<(Endpoint, Connection), quinn::ConnectionError> {
    let mut roots = RootCertStore::empty();
    for cert in tls::load_certs(&data_dir.join(DEV_CERT_FILE_NAME)).expect("the dev certificate") {
        roots.add(cert).expect("trust it");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some((chain, key)) => {
            builder.with_client_auth_cert(chain, key).expect("client certificate")
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![allot_protocol::ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).expect("QUIC TLS config");
    let mut endpoint = Endpoint::client("127.0.0.1:0".parse().expect("address")).expect("bind");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let connecting = endpoint.connect(server.local_addr(), "localhost").expect("connect");
    let connection = tokio::time::timeout(ANSWER_TIMEOUT, connecting).await.expect("in time")?;
    Ok((endpoint, connection))
}

struct Stream {
    send: SendStream,
    recv: RecvStream,
    deframer: Deframer,
}

impl Stream {
    async fn open(connection: &Connection) -> Stream {
        let (send, recv) = connection.open_bi().await.expect("open a stream");
        Stream { send, recv, deframer: Deframer::new() }
    }

    async fn send(&mut self, frame: &ClientFrame) {
        self.send.write_all(&codec::frame(frame)).await.expect("write");
    }

    async fn hello(&mut self, token: &str) -> Option<ServerFrame> {
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            token: token.into(),
            client_name: "in-process".into(),
        };
        self.send(&ClientFrame::Hello(hello)).await;
        self.next().await
    }

    async fn next(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some(payload) = self.deframer.next_frame().expect("well-formed frames") {
                return Some(codec::decode_server(payload).expect("a server frame"));
            }
            let read = self.recv.read_chunk(64 * 1024, true);
            match tokio::time::timeout(ANSWER_TIMEOUT, read).await.expect("an answer in time") {
                Ok(Some(chunk)) => self.deframer.push(&chunk.bytes),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    async fn ping(&mut self, id: u64) -> bool {
        self.send(&ClientFrame::Request(Request { id, body: RequestBody::Ping })).await;
        matches!(
            self.next().await,
            Some(ServerFrame::Response(response)) if response.id == id
                && matches!(response.result, Ok(Reply::Pong { .. }))
        )
    }
}

fn welcome_role(frame: Option<ServerFrame>) -> Role {
    match frame {
        Some(ServerFrame::Welcome(welcome)) => welcome.role,
        other => panic!("expected a welcome, got {other:?}"),
    }
}

fn dev_token(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(DEV_TOKEN_FILE_NAME)).expect("dev token").trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_server_serves_then_shuts_down_and_releases_its_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path())).await.expect("start");
    assert_ne!(server.local_addr().port(), 0);
    let (_endpoint, connection) = connect(&server, dir.path(), None).await.expect("connect");
    let mut stream = Stream::open(&connection).await;
    assert_eq!(welcome_role(stream.hello(&dev_token(dir.path())).await), Role::Admin);
    assert!(stream.ping(1).await);

    server.shutdown().await;
    assert_eq!(stream.next().await, None, "the open stream is finished");
    let engine = allot_engine::Engine::open(dir.path(), allot_engine::EngineConfig::default())
        .expect("the data directory is free again");
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_run_side_by_side_in_one_process() {
    let dirs = [tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir")];
    let mut servers = Vec::new();
    for dir in &dirs {
        servers.push(Server::start(config(dir.path())).await.expect("start"));
    }
    assert_ne!(servers[0].local_addr(), servers[1].local_addr());
    for (server, dir) in servers.iter().zip(&dirs) {
        let (_endpoint, connection) = connect(server, dir.path(), None).await.expect("connect");
        let mut stream = Stream::open(&connection).await;
        welcome_role(stream.hello(&dev_token(dir.path())).await);
        assert!(stream.ping(7).await);
    }
    for server in servers {
        server.shutdown().await;
    }
}

/// A CA, written to `dir/ca.pem`, and a client identity it signed.
fn client_ca_and_identity(dir: &Path) -> Identity {
    let mut ca = CertificateParams::new(Vec::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("CA");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write the CA");
    let mut leaf = CertificateParams::new(vec!["warehouse-7".to_owned()]).expect("leaf params");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("client key");
    let cert = leaf.signed_by(&key, &ca).expect("sign the client certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (vec![cert.der().clone()], key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_client_certificate_with_an_empty_token_gets_the_configured_role() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = tempfile::tempdir().expect("tempdir");
    let identity = client_ca_and_identity(certs.path());
    let config = config(dir.path()).with_client_ca(certs.path().join("ca.pem"), Role::Fulfilment);
    let server = Server::start(config).await.expect("start");

    let (_with_cert, connection) =
        connect(&server, dir.path(), Some(identity)).await.expect("a verified client connects");
    assert_eq!(welcome_role(Stream::open(&connection).await.hello("").await), Role::Fulfilment);
    let token = dev_token(dir.path());
    assert_eq!(welcome_role(Stream::open(&connection).await.hello(&token).await), Role::Admin);

    let (_without, anonymous) =
        connect(&server, dir.path(), None).await.expect("tokens still work");
    match Stream::open(&anonymous).await.hello("").await {
        Some(ServerFrame::Refused(error)) => assert_eq!(error.code, ErrorCode::Unauthorized),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(welcome_role(Stream::open(&anonymous).await.hello(&token).await), Role::Admin);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_fails_the_handshake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trusted = tempfile::tempdir().expect("tempdir");
    let stranger = tempfile::tempdir().expect("tempdir");
    client_ca_and_identity(trusted.path());
    let foreign = client_ca_and_identity(stranger.path());
    let config = config(dir.path()).with_client_ca(trusted.path().join("ca.pem"), Role::Read);
    let server = Server::start(config).await.expect("start");

    // TLS 1.3 clients finish their side first; the refusal may arrive with the first stream.
    if let Ok((_endpoint, connection)) = connect(&server, dir.path(), Some(foreign)).await {
        let opened = tokio::time::timeout(ANSWER_TIMEOUT, async {
            let (mut send, mut recv) = connection.open_bi().await?;
            send.write_all(&[0]).await?;
            recv.read_chunk(1, true).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .await
        .expect("an answer in time");
        assert!(opened.is_err(), "an unverifiable client certificate is refused");
    }
    server.shutdown().await;
}
