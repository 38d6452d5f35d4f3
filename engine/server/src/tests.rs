//! The server in-process, as the load harness uses it: start on port 0, serve a client
//! over QUIC, shut down and release the data directory; several servers side by side;
//! client certificates under mutual TLS; the byte budgets and the frame deadline against
//! clients that never finish their frames or never read their answers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use allot_protocol::limits::FRAME_BYTES_MAX;
use allot_protocol::{
    ClientFrame, Command, Deframer, ErrorCode, Hello, LocationKind, LocationSpec, PROTOCOL_VERSION,
    Query, Reply, Request, RequestBody, Role, ServerFrame, ShippingCost, codec,
};
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Connection, Endpoint, RecvStream, SendStream, TransportConfig, VarInt};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::*;
use allot_protocol::frame::FRAME_PREFIX_BYTES;

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
    connect_with(server, data_dir, identity, TransportConfig::default()).await
}

async fn connect_with(
    server: &Server,
    data_dir: &Path,
    identity: Option<Identity>,
    transport: TransportConfig,
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
    let mut client = quinn::ClientConfig::new(Arc::new(quic));
    client.transport_config(Arc::new(transport));
    endpoint.set_default_client_config(client);
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
        read_frame(&mut self.recv, &mut self.deframer).await
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

/// The next server frame on `recv`, or `None` once the stream is finished or reset.
async fn read_frame(recv: &mut RecvStream, deframer: &mut Deframer) -> Option<ServerFrame> {
    loop {
        if let Some(payload) = deframer.next_frame().expect("well-formed frames") {
            return Some(codec::decode_server(payload).expect("a server frame"));
        }
        let read = recv.read_chunk(64 * 1024, true);
        match tokio::time::timeout(ANSWER_TIMEOUT, read).await.expect("an answer in time") {
            Ok(Some(chunk)) => deframer.push(&chunk.bytes),
            Ok(None) | Err(_) => return None,
        }
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

/// A served admin stream on a connection of its own.
async fn bystander(server: &Server, dir: &Path) -> (Endpoint, Connection, Stream) {
    let (endpoint, connection) = connect(server, dir, None).await.expect("connect");
    let mut stream = Stream::open(&connection).await;
    welcome_role(stream.hello(&dev_token(dir)).await);
    (endpoint, connection, stream)
}

/// The server's held bytes, sampled for `during`: the most seen.
async fn most_buffered(server: &Server, during: Duration) -> usize {
    let until = tokio::time::Instant::now() + during;
    let mut most = 0;
    while tokio::time::Instant::now() < until {
        most = most.max(server.buffered_bytes());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_frames_on_every_stream_are_held_to_the_connection_budget_then_ended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let budget_bytes = FRAME_BYTES_MAX as u64;
    let limits = Limits {
        connection_buffer_bytes_max: budget_bytes,
        frame_timeout_ms: 1_000,
        ..Limits::default()
    };
    let server = Server::start(config(dir.path()).with_limits(limits)).await.expect("start");
    let (_good_endpoint, _good, mut good) = bystander(&server, dir.path()).await;
    let (_endpoint, offender) = connect(&server, dir.path(), None).await.expect("connect");
    let token = dev_token(dir.path());

    // Each stream announces a frame of the largest size and sends half of it.
    let mut half_frame = u32::try_from(FRAME_BYTES_MAX).expect("fits").to_le_bytes().to_vec();
    half_frame.resize(FRAME_PREFIX_BYTES + FRAME_BYTES_MAX / 2, 7);
    let mut streams = Vec::new();
    for _ in 0..16 {
        let mut stream = Stream::open(&offender).await;
        welcome_role(stream.hello(&token).await);
        // Flow control stops the write once the server stops reading; the rest waits.
        let write = stream.send.write_all(&half_frame);
        let _ = tokio::time::timeout(Duration::from_millis(100), write).await;
        streams.push(stream);
    }
    let most = most_buffered(&server, Duration::from_millis(300)).await;
    let slack_bytes = 64 * 1024;
    assert!(most <= budget_bytes as usize + slack_bytes, "{most} bytes held");
    assert!(good.ping(1).await, "another client is served meanwhile");

    for (index, stream) in streams.iter_mut().enumerate() {
        match stream.next().await {
            Some(ServerFrame::Refused(error)) => assert!(
                matches!(error.code, ErrorCode::Overloaded | ErrorCode::InvalidArgument),
                "stream {index}: {error:?}"
            ),
            other => panic!("stream {index} was not refused: {other:?}"),
        }
    }
    assert!(good.ping(2).await);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_left_unfinished_is_refused_after_the_frame_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = Limits { frame_timeout_ms: 300, ..Limits::default() };
    let server = Server::start(config(dir.path()).with_limits(limits)).await.expect("start");
    let (_endpoint, connection) = connect(&server, dir.path(), None).await.expect("connect");
    let mut stalled = Stream::open(&connection).await;
    welcome_role(stalled.hello(&dev_token(dir.path())).await);

    let ping = codec::frame(&ClientFrame::Request(Request { id: 1, body: RequestBody::Ping }));
    let started = std::time::Instant::now();
    stalled.send.write_all(&ping[..FRAME_PREFIX_BYTES + 2]).await.expect("write");
    match stalled.next().await {
        Some(ServerFrame::Refused(error)) => {
            assert_eq!(error.code, ErrorCode::InvalidArgument);
            assert!(error.message.contains("within 300 ms"), "{}", error.message);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(300), "not before the deadline");
    assert_eq!(stalled.next().await, None, "the stream is finished");

    let mut sibling = Stream::open(&connection).await;
    welcome_role(sibling.hello(&dev_token(dir.path())).await);
    assert!(sibling.ping(2).await, "the connection's other streams are served");
    assert_eq!(server.buffered_bytes(), 0, "the stalled frame's bytes are given back");
    server.shutdown().await;
}

fn location(code: &str) -> RequestBody {
    let spec = LocationSpec {
        code: code.into(),
        name: format!("Depot {code}"),
        kind: LocationKind::Warehouse,
        latitude_e6: 0,
        longitude_e6: 0,
        ships: true,
        pickup: false,
        daily_capacity: 10,
        shipping_cost: ShippingCost { base_minor: 0, per_km_minor: 0, currency: "EUR".into() },
        priority: 1,
        active: true,
    };
    RequestBody::Command { idempotency_key: None, command: Command::UpsertLocation(spec) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_answers_is_held_to_its_budget_and_others_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let budget_bytes = 256 * 1024;
    let limits = Limits {
        frame_bytes_max: config::FRAME_BYTES_MAX_MIN,
        connection_buffer_bytes_max: budget_bytes,
        ..Limits::default()
    };
    let server = Server::start(config(dir.path()).with_limits(limits)).await.expect("start");
    let (_good_endpoint, _good, mut good) = bystander(&server, dir.path()).await;
    // Forty locations make each answer to `Locations` a few kilobytes.
    for index in 0..40 {
        let body = location(&format!("DC-{index:02}"));
        good.send(&ClientFrame::Request(Request { id: index, body })).await;
        assert!(matches!(good.next().await, Some(ServerFrame::Response(r)) if r.result.is_ok()));
    }

    // The flooder's QUIC stack takes almost nothing unread, so answers stay on the server.
    let mut transport = TransportConfig::default();
    transport.stream_receive_window(VarInt::from_u32(1024));
    let (_endpoint, flooder) =
        connect_with(&server, dir.path(), None, transport).await.expect("connect");
    let token = dev_token(dir.path());
    // Greeted first: once its budget is full, the connection reads nothing more.
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut stream = Stream::open(&flooder).await;
        welcome_role(stream.hello(&token).await);
        streams.push(stream);
    }
    let mut frames = Vec::new();
    for id in 0..5_000 {
        let body = RequestBody::Query(Query::Locations);
        codec::write_frame(&ClientFrame::Request(Request { id, body }), &mut frames);
    }
    for stream in &mut streams {
        let write = stream.send.write_all(&frames);
        let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
    }

    // Without the byte budget, 4 096 answers of a few kilobytes each would be held.
    let most = most_buffered(&server, Duration::from_secs(1)).await;
    assert!(most <= 2 * budget_bytes as usize, "{most} bytes held");
    let started = std::time::Instant::now();
    assert!(good.ping(1_000).await);
    assert!(started.elapsed() < Duration::from_secs(5), "the ping waited {:?}", started.elapsed());
    drop(streams);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_streams_pipelining_within_the_smallest_budget_are_all_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let smallest = config::FRAME_BYTES_MAX_MIN;
    let limits = Limits {
        frame_bytes_max: smallest,
        connection_buffer_bytes_max: u64::from(smallest),
        ..Limits::default()
    };
    let server = Server::start(config(dir.path()).with_limits(limits)).await.expect("start");
    let (_endpoint, connection) = connect(&server, dir.path(), None).await.expect("connect");
    let token = dev_token(dir.path());
    let requests = 2_000u64;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let mut stream = Stream::open(&connection).await;
        welcome_role(stream.hello(&token).await);
        tasks.push(tokio::spawn(async move {
            let mut frames = Vec::new();
            for id in 0..requests {
                let request = Request { id, body: RequestBody::Ping };
                codec::write_frame(&ClientFrame::Request(request), &mut frames);
            }
            let Stream { mut send, mut recv, mut deframer } = stream;
            let write = async move { send.write_all(&frames).await.expect("write") };
            let mut answered = 0;
            let read = async {
                while answered < requests {
                    match read_frame(&mut recv, &mut deframer).await {
                        Some(ServerFrame::Response(_)) => answered += 1,
                        other => panic!("expected a response, got {other:?}"),
                    }
                }
            };
            tokio::join!(write, read);
            answered
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("the stream's task"), requests);
    }
    server.shutdown().await;
}
