//! An in-process QUIC server speaking just enough of the allot protocol to drive the
//! client through its paths: handshake, pipelining with answers out of order, batches,
//! idempotent retries after a lost connection, silence and malformed frames.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use allot_client::protocol::codec::{decode_client, frame};
use allot_client::protocol::order::{
    Delivery, ItemQuantity, OrderState, PlaceOrder, ShipmentId, ShipmentPage, ShipmentState,
    ShipmentView,
};
use allot_client::protocol::{
    ALPN, CellView, ClientFrame, Command, Deframer, Error, ErrorCode, PROTOCOL_VERSION, Query,
    Reply, Request, RequestBody, Response, Role, ServerFrame, ServerLimits, Welcome,
};
use allot_client::{Client, ClientConfig};
use quinn::crypto::rustls::QuicServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::mpsc;

pub const TOKEN: &str = "mock-token";
/// A location code the mock never answers.
pub const SILENT: &str = "silent";
/// A location code the mock answers with bytes that decode to nothing.
pub const GARBAGE: &str = "garbage";

pub const LIMITS: ServerLimits = ServerLimits {
    frame_bytes_max: 4 * 1024 * 1024,
    batch_requests_max: 8,
    in_flight_requests_max: 4,
    lines_per_hold_max: 64,
};

/// What the mock knows and counts.
#[derive(Default)]
pub struct State {
    stock: Mutex<HashMap<(String, String), u32>>,
    answered_keys: Mutex<HashMap<String, Reply>>,
    /// Commands applied (replays under a known key not counted).
    pub applied: AtomicU32,
    pub connections: AtomicU32,
    /// The next this many commands are applied, then their connection is dropped
    /// unanswered, as a crash right after the log write would.
    pub drop_after_apply: AtomicU32,
    /// Most requests seen unanswered at once on one connection.
    pub in_flight_max_seen: AtomicUsize,
}

pub struct Mock {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    pub dir: tempfile::TempDir,
    _endpoint: quinn::Endpoint,
}

impl Mock {
    pub fn start() -> Mock {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], PrivateKeyDer::Pkcs8(key))
            .unwrap();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = QuicServerConfig::try_from(tls).unwrap();
        let config = quinn::ServerConfig::with_crypto(Arc::new(quic));
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dev-cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(dir.path().join("dev-token"), format!("{TOKEN}\n")).unwrap();
        let state = Arc::new(State::default());
        tokio::spawn(accept(endpoint.clone(), state.clone()));
        Mock { addr: endpoint.local_addr().unwrap(), state, dir, _endpoint: endpoint }
    }

    /// A configuration pinned to the mock's certificate, with short timeouts.
    pub fn config(&self) -> ClientConfig {
        let mut config =
            ClientConfig::from_data_dir(self.addr.to_string(), self.dir.path()).unwrap();
        config.request_timeout = Duration::from_millis(500);
        config.connect_timeout = Duration::from_secs(2);
        config.retry_backoff = Duration::from_millis(10);
        config
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.config()).await.unwrap()
    }

    pub fn on_hand(&self, sku: &str, location: &str) -> u32 {
        let stock = self.state.stock.lock().unwrap();
        stock.get(&(sku.to_owned(), location.to_owned())).copied().unwrap_or(0)
    }
}

async fn accept(endpoint: quinn::Endpoint, state: Arc<State>) {
    while let Some(incoming) = endpoint.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(connection) = incoming.await else { return };
            state.connections.fetch_add(1, Ordering::SeqCst);
            while let Ok((send, recv)) = connection.accept_bi().await {
                tokio::spawn(serve_stream(connection.clone(), send, recv, state.clone()));
            }
        });
    }
}

/// What the mock does with one request.
enum Outcome {
    Answer(Result<Reply, Error>),
    Silent,
    Garbage,
    Drop,
}

async fn serve_stream(
    connection: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    state: Arc<State>,
) {
    let (out, mut queued) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(bytes) = queued.recv().await {
            if send.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = send.finish();
    });
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut deframer = Deframer::new();
    let mut buffer = vec![0; 65_536];
    let mut welcomed = false;
    while let Ok(Some(read)) = recv.read(&mut buffer).await {
        deframer.push(&buffer[..read]);
        while let Ok(Some(payload)) = deframer.next_frame() {
            let Ok(client_frame) = decode_client(payload) else { return };
            match client_frame {
                ClientFrame::Hello(hello) if !welcomed => {
                    if hello.token != TOKEN {
                        let refused = Error::new(ErrorCode::Unauthorized, "unknown token");
                        let _ = out.send(frame(&ServerFrame::Refused(refused)));
                        return;
                    }
                    welcomed = true;
                    let _ = out.send(frame(&ServerFrame::Welcome(welcome())));
                }
                ClientFrame::Request(request) => {
                    let seen = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    state.in_flight_max_seen.fetch_max(seen, Ordering::SeqCst);
                    let id = request.id;
                    match state.apply(request.body) {
                        Outcome::Answer(result) => {
                            let (out, in_flight) = (out.clone(), in_flight.clone());
                            // Answers leave in completion order, not request order.
                            tokio::spawn(async move {
                                tokio::time::sleep(Duration::from_millis(id % 3)).await;
                                in_flight.fetch_sub(1, Ordering::SeqCst);
                                let response = Response { id, result };
                                let _ = out.send(frame(&ServerFrame::Response(response)));
                            });
                        }
                        Outcome::Silent => {}
                        Outcome::Garbage => {
                            let _ = out.send(vec![3, 0, 0, 0, 0xff, 0xff, 0xff]);
                        }
                        Outcome::Drop => {
                            connection.close(0u32.into(), b"crash");
                            return;
                        }
                    }
                }
                ClientFrame::Batch(requests) => {
                    let responses = batch(&state, requests);
                    let _ = out.send(frame(&ServerFrame::Batch(responses)));
                }
                ClientFrame::Hello(_) => return,
            }
        }
    }
}

fn batch(state: &State, requests: Vec<Request>) -> Vec<Response> {
    let answer = |request: Request| {
        let result = match state.apply(request.body) {
            Outcome::Answer(result) => result,
            _ => Err(Error::invalid("not in a batch")),
        };
        Response { id: request.id, result }
    };
    requests.into_iter().map(answer).collect()
}

fn welcome() -> Welcome {
    Welcome {
        protocol_version: PROTOCOL_VERSION,
        server_version: "mock-1".into(),
        role: Role::Admin,
        limits: LIMITS,
    }
}

impl State {
    fn apply(&self, body: RequestBody) -> Outcome {
        match body {
            RequestBody::Ping => {
                Outcome::Answer(Ok(Reply::Pong { server_version: "mock-1".into() }))
            }
            RequestBody::Query(Query::Location { location }) if location == SILENT => {
                Outcome::Silent
            }
            RequestBody::Query(Query::Location { location }) if location == GARBAGE => {
                Outcome::Garbage
            }
            RequestBody::Query(Query::Cell { sku, location }) => {
                let stock = self.stock.lock().unwrap();
                let found = stock.get(&(sku.clone(), location.clone())).copied();
                Outcome::Answer(match found {
                    Some(on_hand) => Ok(Reply::Cell(cell(sku, location, on_hand))),
                    None => Err(Error::new(ErrorCode::NotFound, format!("sku {sku}"))),
                })
            }
            RequestBody::Command { idempotency_key, command } => {
                self.command(idempotency_key, command)
            }
            RequestBody::Query(Query::PickList { location, after, limit }) => {
                Outcome::Answer(Ok(Reply::Shipments(pick_list(&location, after, limit))))
            }
            RequestBody::Query(_) => Outcome::Answer(Err(Error::invalid("the mock does not know"))),
        }
    }

    fn command(&self, key: Option<String>, command: Command) -> Outcome {
        let Some(key) = key else {
            return Outcome::Answer(Err(Error::invalid("the mock wants a key")));
        };
        if let Some(reply) = self.answered_keys.lock().unwrap().get(&key) {
            return Outcome::Answer(Ok(reply.clone()));
        }
        if let Command::PlaceOrder(order) = command {
            return self.place_order(key, order);
        }
        let Command::Receive { sku, location, quantity } = command else {
            return Outcome::Answer(Err(Error::invalid("the mock only receives and places")));
        };
        if quantity == 0 {
            return Outcome::Answer(Err(Error::invalid("quantity is zero")));
        }
        let on_hand = {
            let mut stock = self.stock.lock().unwrap();
            let on_hand = stock.entry((sku.clone(), location.clone())).or_default();
            *on_hand += quantity;
            *on_hand
        };
        self.applied.fetch_add(1, Ordering::SeqCst);
        let reply = Reply::Cell(cell(sku, location, on_hand));
        self.answered_keys.lock().unwrap().insert(key, reply.clone());
        let dropping =
            self.drop_after_apply
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if dropping.is_ok() { Outcome::Drop } else { Outcome::Answer(Ok(reply)) }
    }
}

impl State {
    /// Every order gets the next id and one shipment per line, numbered after it.
    fn place_order(&self, key: String, order: PlaceOrder) -> Outcome {
        let id = u64::from(self.applied.fetch_add(1, Ordering::SeqCst)) + 1;
        let shipments = (1..=order.lines.len() as u64).map(|n| id * 100 + n).collect();
        let reply = Reply::OrderPlaced {
            order: id,
            state: OrderState::Pending,
            shipments,
            backordered_units: 0,
        };
        self.answered_keys.lock().unwrap().insert(key, reply.clone());
        Outcome::Answer(Ok(reply))
    }
}

fn cell(sku: String, location: String, on_hand: u32) -> CellView {
    CellView {
        sku,
        location,
        on_hand,
        held: 0,
        allocated: 0,
        safety_stock: 0,
        available: i64::from(on_hand),
    }
}

/// Every location's pick list is shipments 1 to 5, released; pages follow the cursor.
fn pick_list(location: &str, after: Option<ShipmentId>, limit: u32) -> ShipmentPage {
    const LAST: ShipmentId = 5;
    let first = after.map_or(1, |after| after + 1);
    let last = (first + u64::from(limit) - 1).min(LAST);
    let shipments = (first..=last)
        .map(|shipment| ShipmentView {
            shipment,
            order: 1,
            location: location.to_owned(),
            delivery: Delivery::Ship,
            state: ShipmentState::Released,
            lines: vec![ItemQuantity { sku: "SKU-1".into(), quantity: 1 }],
            carrier: None,
            tracking: None,
            created_at_ms: 0,
            updated_at_ms: 0,
        })
        .collect();
    ShipmentPage { shipments, next: (last < LAST).then_some(last) }
}
