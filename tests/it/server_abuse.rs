//! A real `allotd` under hostile or broken clients, spoken to with quinn directly: wrong
//! versions and tokens, forbidden commands, garbage, oversized and truncated frames, too
//! many connections (with slots kept for an admin). Each is answered on its own stream or connection, and a
//! well-behaved client on another connection keeps being served throughout; the process
//! still exits 0 on SIGTERM afterwards.

use std::sync::Arc;
use std::time::Duration;

use allot_protocol::frame::FRAME_PREFIX_BYTES;
use allot_protocol::{
    ALPN, ClientFrame, Command, Deframer, ErrorCode, Hello, LineRequest, PROTOCOL_VERSION, Query,
    Reply, Request, RequestBody, Response, Role, ServerFrame, codec,
};
use allot_tests::allotd::Allotd;
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Connection, Endpoint, RecvStream, SendStream};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::support::{LOCATION, location_spec};

/// Longest wait for any one answer; a hang fails the test instead of stalling the run.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
const SKU: &str = "MUG-WHT-12";
const CHECKOUT_TOKEN: &str = "checkout-token-for-tests";
const ADMIN_TOKEN: &str = "admin-token-for-tests";

/// A QUIC connection to `allotd` that trusts its development certificate.
struct Client {
    _endpoint: Endpoint,
    connection: Connection,
}

impl Client {
    async fn connect(server: &Allotd) -> Client {
        Client::try_connect(server).await.expect("connect to allotd")
    }

    async fn try_connect(server: &Allotd) -> Result<Client, quinn::ConnectionError> {
        let mut endpoint = Endpoint::client("127.0.0.1:0".parse().expect("address")).expect("bind");
        endpoint.set_default_client_config(client_config(server));
        let connecting = endpoint.connect(server.addr(), "localhost").expect("connect");
        let connection =
            tokio::time::timeout(ANSWER_TIMEOUT, connecting).await.expect("handshake in time")?;
        Ok(Client { _endpoint: endpoint, connection })
    }

    async fn stream(&self) -> Stream {
        let (send, recv) = self.connection.open_bi().await.expect("open a stream");
        Stream { send, recv, deframer: Deframer::new() }
    }

    /// A stream past its handshake with `token`.
    async fn session(&self, token: &str) -> Stream {
        let mut stream = self.stream().await;
        let welcome = stream.hello(PROTOCOL_VERSION, token).await;
        assert!(matches!(welcome, Some(ServerFrame::Welcome(_))), "{welcome:?}");
        stream
    }
}

/// A fresh server with a bystander (a served stream on its own connection, which must not
/// notice anything) and a second connection for the offender.
struct Scene {
    server: Allotd,
    token: String,
    /// Keeps the bystander's connection open.
    _good: Client,
    bystander: Stream,
    offender: Client,
}

impl Scene {
    async fn start() -> Scene {
        let server = Allotd::start();
        let token = server.admin_token();
        let good = Client::connect(&server).await;
        let bystander = good.session(&token).await;
        let offender = Client::connect(&server).await;
        Scene { server, token, _good: good, bystander, offender }
    }

    async fn unharmed(mut self) {
        assert_unharmed(self.server, &mut self.bystander, &self.token).await;
    }
}

fn client_config(server: &Allotd) -> quinn::ClientConfig {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(server.cert_path()).expect("read the certificate") {
        roots.add(cert.expect("a PEM certificate")).expect("trust it");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).expect("a QUIC TLS config");
    quinn::ClientConfig::new(Arc::new(quic))
}

/// One bidirectional stream, speaking frames (or raw bytes).
struct Stream {
    send: SendStream,
    recv: RecvStream,
    deframer: Deframer,
}

impl Stream {
    async fn hello(&mut self, protocol_version: u16, token: &str) -> Option<ServerFrame> {
        let hello =
            Hello { protocol_version, token: token.into(), client_name: "abuse-test".into() };
        self.send(&ClientFrame::Hello(hello)).await;
        self.next().await
    }

    async fn send(&mut self, frame: &ClientFrame) {
        self.raw(&codec::frame(frame)).await;
    }

    async fn raw(&mut self, bytes: &[u8]) {
        self.send.write_all(bytes).await.expect("write to the stream");
    }

    fn finish(&mut self) {
        self.send.finish().expect("finish the stream");
    }

    async fn request(&mut self, id: u64, body: RequestBody) -> Response {
        self.send(&ClientFrame::Request(Request { id, body })).await;
        match self.next().await {
            Some(ServerFrame::Response(response)) => response,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// The next frame, or `None` once the server has finished the stream (or reset it).
    async fn next(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some(payload) = self.deframer.next_frame().expect("a well-formed server stream")
            {
                return Some(codec::decode_server(payload).expect("a valid server frame"));
            }
            let chunk = tokio::time::timeout(ANSWER_TIMEOUT, self.recv.read_chunk(64 * 1024, true))
                .await
                .expect("the server answers in time");
            match chunk {
                Ok(Some(chunk)) => self.deframer.push(&chunk.bytes),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Expects the stream to end with `Refused` carrying `code`, then to be finished.
    async fn expect_refused(&mut self, code: ErrorCode) -> String {
        let message = match self.next().await {
            Some(ServerFrame::Refused(error)) if error.code == code => error.message,
            other => panic!("expected Refused({code:?}), got {other:?}"),
        };
        assert_eq!(self.next().await, None, "the server finishes a refused stream");
        message
    }
}

fn command(command: Command) -> RequestBody {
    RequestBody::Command { idempotency_key: None, command }
}

fn reserve(quantity: u32) -> RequestBody {
    let line = LineRequest { sku: SKU.into(), location: LOCATION.into(), quantity };
    command(Command::Reserve { lines: vec![line], ttl_ms: None })
}

fn receive(quantity: u32) -> RequestBody {
    command(Command::Receive { sku: SKU.into(), location: LOCATION.into(), quantity })
}

/// Pings and queries on `stream`: the server still serves this client.
async fn assert_served(stream: &mut Stream, id: u64) {
    let pong = stream.request(id, RequestBody::Ping).await;
    assert!(matches!(pong.result, Ok(Reply::Pong { .. })), "{pong:?}");
    let locations = stream.request(id + 1, RequestBody::Query(Query::Locations)).await;
    assert!(matches!(locations.result, Ok(Reply::Locations(_))), "{locations:?}");
}

/// The bystander still works, a newcomer is served too, and SIGTERM exits cleanly.
async fn assert_unharmed(mut server: Allotd, bystander: &mut Stream, token: &str) {
    assert_served(bystander, 1_000).await;
    let newcomer = Client::connect(&server).await;
    assert_served(&mut newcomer.session(token).await, 2_000).await;
    let status = server.terminate();
    assert!(status.success(), "allotd exited with {status}");
}

/// `allotd` with an admin and a checkout token from a configuration file, plus its
/// other `[limits]` lines.
fn start_with_tokens(limits: &str) -> (Allotd, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("allotd.toml");
    let text = format!(
        "[[tokens]]\nname = \"ops\"\nrole = \"admin\"\ntoken = \"{ADMIN_TOKEN}\"\n\
         [[tokens]]\nname = \"shop\"\nrole = \"checkout\"\ntoken = \"{CHECKOUT_TOKEN}\"\n\
         [limits]\n{limits}\n"
    );
    std::fs::write(&config, text).expect("write the configuration");
    let data_dir = dir.path().join("data");
    let server = Allotd::start_in(&data_dir, &["--config", config.to_str().expect("utf-8 path")]);
    (server, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_with_another_protocol_version_is_refused_unsupported_version() {
    let scene = Scene::start().await;
    let (token, bad) = (scene.token.clone(), &scene.offender);
    let mut stream = bad.stream().await;
    let refused = stream.hello(PROTOCOL_VERSION + 1, &token).await;
    let Some(ServerFrame::Refused(error)) = refused else { panic!("{refused:?}") };
    assert_eq!(error.code, ErrorCode::UnsupportedVersion);
    assert_eq!(stream.next().await, None);

    scene.unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_missing_token_is_refused_unauthorized() {
    let scene = Scene::start().await;
    let (token, bad) = (scene.token.clone(), &scene.offender);
    for wrong in ["not-the-token", ""] {
        let mut stream = bad.stream().await;
        let refused = stream.hello(PROTOCOL_VERSION, wrong).await;
        let Some(ServerFrame::Refused(error)) = refused else { panic!("{refused:?}") };
        assert_eq!(error.code, ErrorCode::Unauthorized, "token {wrong:?}");
        assert!(!error.message.contains(&token));
        assert_eq!(stream.next().await, None);
    }

    scene.unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_token_may_reserve_but_receiving_stock_is_unauthorized() {
    let (server, _dir) = start_with_tokens("");
    let admin = Client::connect(&server).await;
    let mut ops = admin.session(ADMIN_TOKEN).await;
    let location = command(Command::UpsertLocation(location_spec(LOCATION)));
    assert!(ops.request(1, location).await.result.is_ok());
    assert!(ops.request(2, receive(10)).await.result.is_ok());

    let shop = Client::connect(&server).await;
    let mut checkout = shop.session(CHECKOUT_TOKEN).await;
    let refused = checkout.request(7, receive(5)).await;
    assert_eq!(refused.id, 7);
    assert_eq!(refused.result.expect_err("checkout may not receive").code, ErrorCode::Unauthorized);
    let held = checkout.request(8, reserve(3)).await;
    assert!(matches!(held.result, Ok(Reply::HoldPlaced { .. })), "{held:?}");

    let cell = RequestBody::Query(Query::Cell { sku: SKU.into(), location: LOCATION.into() });
    let Ok(Reply::Cell(view)) = checkout.request(9, cell).await.result else { panic!("no cell") };
    assert_eq!((view.on_hand, view.held), (10, 3), "the refused receive changed nothing");

    assert_unharmed(server, &mut ops, ADMIN_TOKEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_payload_is_refused_invalid_argument_and_ends_only_that_stream() {
    let scene = Scene::start().await;
    let (token, bad) = (scene.token.clone(), &scene.offender);
    let mut sibling = bad.session(&token).await;
    let mut stream = bad.session(&token).await;
    stream.raw(&[3, 0, 0, 0, 0xff, 0xff, 0xff]).await;
    let message = stream.expect_refused(ErrorCode::InvalidArgument).await;
    assert!(message.starts_with("malformed frame"), "{message}");
    assert_served(&mut sibling, 10).await;

    scene.unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_instead_of_a_hello_get_a_refusal_or_a_closed_stream() {
    let scene = Scene::start().await;
    let bad = &scene.offender;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for length in [1, 4, 5, 64, 4096] {
        let mut stream = bad.stream().await;
        let bytes: Vec<u8> = (0..length)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        stream.raw(&bytes).await;
        stream.finish();
        match stream.next().await {
            None | Some(ServerFrame::Refused(_)) => {}
            other => panic!("{length} random bytes got {other:?}"),
        }
    }

    scene.unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4_gib_length_prefix_is_refused_frame_too_large_without_waiting_for_the_payload() {
    let scene = Scene::start().await;
    let (token, bad) = (scene.token.clone(), &scene.offender);
    let mut stream = bad.session(&token).await;
    stream.raw(&u32::MAX.to_le_bytes()).await;
    stream.expect_refused(ErrorCode::FrameTooLarge).await;

    scene.unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_finished_inside_a_frame_is_closed_without_an_answer() {
    let scene = Scene::start().await;
    let (token, bad) = (scene.token.clone(), &scene.offender);
    let mut stream = bad.session(&token).await;
    let ping = codec::frame(&ClientFrame::Request(Request { id: 1, body: RequestBody::Ping }));
    stream.raw(&ping[..FRAME_PREFIX_BYTES + 3]).await;
    stream.finish();
    assert_eq!(stream.next().await, None);

    scene.unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_hello_or_a_request_before_hello_is_refused_invalid_argument() {
    let scene = Scene::start().await;
    let (token, bad) = (scene.token.clone(), &scene.offender);
    let mut twice = bad.session(&token).await;
    let again = twice.hello(PROTOCOL_VERSION, &token).await;
    assert!(
        matches!(&again, Some(ServerFrame::Refused(error)) if error.code == ErrorCode::InvalidArgument),
        "{again:?}"
    );
    assert_eq!(twice.next().await, None);

    let mut early = bad.stream().await;
    early.send(&ClientFrame::Request(Request { id: 1, body: RequestBody::Ping })).await;
    early.expect_refused(ErrorCode::InvalidArgument).await;

    scene.unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_batch_is_refused_and_a_mixed_batch_is_answered_in_order() {
    let (server, _dir) = start_with_tokens("");
    let admin = Client::connect(&server).await;
    let mut ops = admin.session(ADMIN_TOKEN).await;
    let location = command(Command::UpsertLocation(location_spec(LOCATION)));
    let cell = RequestBody::Query(Query::Cell { sku: SKU.into(), location: LOCATION.into() });
    let requests = vec![
        Request { id: 1, body: location },
        Request { id: 2, body: receive(4) },
        Request { id: 3, body: cell },
        Request { id: 4, body: reserve(0) },
        Request { id: 5, body: RequestBody::Ping },
    ];
    ops.send(&ClientFrame::Batch(requests)).await;
    let Some(ServerFrame::Batch(answers)) = ops.next().await else { panic!("no batch answer") };
    assert_eq!(answers.iter().map(|answer| answer.id).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert!(matches!(&answers[2].result, Ok(Reply::Cell(view)) if view.on_hand == 4));
    let invalid = answers[3].result.as_ref().expect_err("zero quantity");
    assert_eq!(invalid.code, ErrorCode::InvalidArgument);

    let shop = Client::connect(&server).await;
    let mut empty = shop.session(CHECKOUT_TOKEN).await;
    empty.send(&ClientFrame::Batch(Vec::new())).await;
    empty.expect_refused(ErrorCode::InvalidArgument).await;

    assert_unharmed(server, &mut ops, ADMIN_TOKEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelining_past_the_in_flight_limit_waits_instead_of_failing() {
    let (mut server, _dir) = start_with_tokens("in_flight_requests_per_connection_max = 8");
    let client = Client::connect(&server).await;
    let mut stream = client.session(CHECKOUT_TOKEN).await;
    let mut frames = Vec::new();
    for id in 0..500 {
        let body =
            if id % 2 == 0 { RequestBody::Ping } else { RequestBody::Query(Query::Locations) };
        codec::write_frame(&ClientFrame::Request(Request { id, body }), &mut frames);
    }
    stream.raw(&frames).await;
    let mut ids = Vec::new();
    while ids.len() < 500 {
        match stream.next().await {
            Some(ServerFrame::Response(response)) => {
                assert!(response.result.is_ok(), "{response:?}");
                ids.push(response.id);
            }
            other => panic!("expected a response, got {other:?}"),
        }
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..500).collect::<Vec<_>>());
    let status = server.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused_and_the_slot_comes_back() {
    let (mut server, _dir) =
        start_with_tokens("connections_max = 2\nadmin_connections_reserved = 0");
    let first = Client::connect(&server).await;
    let mut bystander = first.session(CHECKOUT_TOKEN).await;
    let second = Client::connect(&server).await;
    assert_served(&mut second.session(CHECKOUT_TOKEN).await, 1).await;

    assert!(Client::try_connect(&server).await.is_err(), "a third connection is refused");

    second.connection.close(0u32.into(), b"done");
    let mut admitted = false;
    for _ in 0..50 {
        if let Ok(third) = Client::try_connect(&server).await {
            assert_served(&mut third.session(CHECKOUT_TOKEN).await, 100).await;
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted, "a closed connection frees its slot");
    assert_served(&mut bystander, 200).await;
    let status = server.terminate();
    assert!(status.success());
}

/// A connection to `server` whose first stream's Hello with `token` is welcomed, retried
/// while a slot is being given back.
async fn admitted_session(server: &Allotd, token: &str) -> (Client, Stream) {
    for _ in 0..50 {
        if let Ok(client) = Client::try_connect(server).await {
            let mut stream = client.stream().await;
            if let Some(ServerFrame::Welcome(_)) = stream.hello(PROTOCOL_VERSION, token).await {
                return (client, stream);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no slot for a session with {token:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_ordinary_slot_taken_an_admin_is_still_served_and_others_are_refused() {
    let limits = "connections_max = 2\nadmin_connections_reserved = 1";
    let (mut server, _dir) = start_with_tokens(limits);
    let first = Client::connect(&server).await;
    let mut bystander = first.session(CHECKOUT_TOKEN).await;
    let second = Client::connect(&server).await;
    let _busy = second.session(CHECKOUT_TOKEN).await;

    let shop = Client::connect(&server).await;
    let mut refused = shop.stream().await;
    let answer = refused.hello(PROTOCOL_VERSION, CHECKOUT_TOKEN).await;
    let Some(ServerFrame::Refused(error)) = answer else { panic!("{answer:?}") };
    assert_eq!(error.code, ErrorCode::Overloaded);
    assert!(error.message.contains("admin"), "{}", error.message);
    let closed = tokio::time::timeout(ANSWER_TIMEOUT, shop.connection.closed()).await;
    assert!(
        matches!(closed, Ok(quinn::ConnectionError::ApplicationClosed(ref close)) if close.error_code == 1u32.into()),
        "the connection on the kept slot is closed: {closed:?}"
    );

    let (_operator, mut ops) = admitted_session(&server, ADMIN_TOKEN).await;
    assert_served(&mut ops, 1).await;
    assert!(Client::try_connect(&server).await.is_err(), "with the kept slot taken too, refused");
    assert_served(&mut bystander, 10).await;
    let status = server.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_welcome_states_the_role_and_the_limits() {
    let (server, _dir) = start_with_tokens("in_flight_requests_per_connection_max = 99");
    let client = Client::connect(&server).await;
    let mut stream = client.stream().await;
    let Some(ServerFrame::Welcome(welcome)) = stream.hello(PROTOCOL_VERSION, CHECKOUT_TOKEN).await
    else {
        panic!("no welcome");
    };
    assert_eq!(welcome.role, Role::Checkout);
    assert_eq!(welcome.protocol_version, PROTOCOL_VERSION);
    assert_eq!(welcome.limits.in_flight_requests_max, 99);
    assert_eq!(welcome.limits.frame_bytes_max as usize, allot_protocol::limits::FRAME_BYTES_MAX);
    assert!(!welcome.server_version.is_empty());
    drop(server);
}
