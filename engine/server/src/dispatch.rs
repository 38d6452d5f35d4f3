//! From a decoded request to its answer: the role and argument checks, pings answered
//! here, commands and queries handed to the engine, and the engine's outcome turned into
//! a wire response.
//!
//! Requests are handed to the engine in the order the stream delivered them, so
//! pipelined commands are applied in order; their answers go out as they complete.

use std::sync::Arc;

use allot_protocol::{Error, ErrorCode, Reply, Request, RequestBody, Response, Role, check};
use tokio::sync::mpsc;

use super::Shared;
use super::budget::Admission;
use super::writer::{self, Outgoing};
use allot_engine::core::{self, Outcome};
use allot_engine::{Engine, Pending, wire};

/// The version a `Pong` and a `Welcome` report.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A request's answer: known already, or on its way from the engine.
enum Prepared {
    Ready(Result<Reply, Error>),
    Waiting(Pending<core::Reply>),
}

/// Answers one request; `admission` is released once the answer is handed to QUIC.
pub async fn one(
    shared: &Arc<Shared>,
    role: Role,
    request: Request,
    admission: Admission,
    answers: &mpsc::Sender<Outgoing>,
) {
    let id = request.id;
    match prepare(&shared.engine, role, request) {
        Prepared::Ready(result) => send(answers, Response { id, result }, admission).await,
        Prepared::Waiting(pending) => {
            let answers = answers.clone();
            tokio::spawn(async move {
                let result = wire::outcome(pending.await);
                send(&answers, Response { id, result }, admission).await;
            });
        }
    }
}

/// Answers a batch frame (already within `check::batch`) with one batch frame.
pub fn batch(
    shared: &Arc<Shared>,
    role: Role,
    requests: Vec<Request>,
    admission: Admission,
    answers: &mpsc::Sender<Outgoing>,
) {
    let in_flight = BatchInFlight::submit(&shared.engine, role, requests);
    let answers = answers.clone();
    tokio::spawn(async move {
        let payload = writer::batch_payload(in_flight.responses().await);
        // The writer drains its queue until every sender is gone, so this only fails if
        // the stream's task was cancelled, and then nobody is left to answer.
        let _ = answers.send(Outgoing::answer(payload, admission)).await;
    });
}

async fn send(answers: &mpsc::Sender<Outgoing>, response: Response, admission: Admission) {
    let payload = writer::response_payload(response);
    let _ = answers.send(Outgoing::answer(payload, admission)).await;
}

fn prepare(engine: &Engine, role: Role, request: Request) -> Prepared {
    if let Err(error) = admit(role, &request) {
        return Prepared::Ready(Err(error));
    }
    match request.body {
        RequestBody::Ping => Prepared::Ready(Ok(pong())),
        RequestBody::Command { idempotency_key, command } => {
            Prepared::Waiting(engine.submit(wire::request(idempotency_key, command)))
        }
        RequestBody::Query(query) => Prepared::Waiting(engine.query(query)),
    }
}

/// The role's permission first (a client learns nothing about arguments it may not
/// send), then the arguments.
fn admit(role: Role, request: &Request) -> Result<(), Error> {
    if !role.permits(&request.body) {
        let what = match &request.body {
            RequestBody::Command { command, .. } => command.name(),
            RequestBody::Ping | RequestBody::Query(_) => "this request",
        };
        return Err(Error::new(
            ErrorCode::Unauthorized,
            format!("role {role} may not send {what}"),
        ));
    }
    check::request(request)
}

fn pong() -> Reply {
    Reply::Pong { server_version: SERVER_VERSION.to_owned() }
}

/// Where one request of a batch gets its answer.
enum Slot {
    Ready(Result<Reply, Error>),
    /// A query, on its own.
    Alone(Pending<core::Reply>),
    /// A command, at `index` in the engine batch `run`.
    InRun {
        run: usize,
        index: usize,
    },
}

/// A batch frame handed to the engine. Consecutive commands go as one engine batch (one
/// unit of work, one fsync); a query between commands splits them, so that it sees
/// exactly the commands before it, as if the requests had been sent one by one.
struct BatchInFlight {
    slots: Vec<(u64, Slot)>,
    runs: Vec<Pending<Vec<Outcome>>>,
}

impl BatchInFlight {
    fn submit(engine: &Engine, role: Role, requests: Vec<Request>) -> BatchInFlight {
        let mut slots = Vec::with_capacity(requests.len());
        let mut runs = Vec::new();
        let mut run = Vec::new();
        for request in requests {
            let id = request.id;
            let slot = match admit(role, &request) {
                Err(error) => Slot::Ready(Err(error)),
                Ok(()) => match request.body {
                    RequestBody::Ping => Slot::Ready(Ok(pong())),
                    RequestBody::Command { idempotency_key, command } => {
                        run.push(wire::request(idempotency_key, command));
                        Slot::InRun { run: runs.len(), index: run.len() - 1 }
                    }
                    RequestBody::Query(query) => {
                        flush(engine, &mut run, &mut runs);
                        Slot::Alone(engine.query(query))
                    }
                },
            };
            slots.push((id, slot));
        }
        flush(engine, &mut run, &mut runs);
        BatchInFlight { slots, runs }
    }

    async fn responses(self) -> Vec<Response> {
        let mut runs: Vec<Result<Vec<Option<Outcome>>, Error>> =
            Vec::with_capacity(self.runs.len());
        for run in self.runs {
            runs.push(
                run.await
                    .map(|outcomes| outcomes.into_iter().map(Some).collect())
                    .map_err(wire::error),
            );
        }
        let mut responses = Vec::with_capacity(self.slots.len());
        for (id, slot) in self.slots {
            let result = match slot {
                Slot::Ready(result) => result,
                Slot::Alone(pending) => wire::outcome(pending.await),
                Slot::InRun { run, index } => take_outcome(&mut runs, run, index),
            };
            responses.push(Response { id, result });
        }
        responses
    }
}

fn flush(engine: &Engine, run: &mut Vec<core::Request>, runs: &mut Vec<Pending<Vec<Outcome>>>) {
    if !run.is_empty() {
        runs.push(engine.submit_batch(std::mem::take(run)));
    }
}

fn take_outcome(
    runs: &mut [Result<Vec<Option<Outcome>>, Error>],
    run: usize,
    index: usize,
) -> Result<Reply, Error> {
    match runs.get_mut(run) {
        Some(Ok(outcomes)) => match outcomes.get_mut(index).and_then(Option::take) {
            Some(outcome) => wire::outcome(outcome),
            None => Err(Error::new(ErrorCode::Unavailable, "the engine left a command unanswered")),
        },
        Some(Err(error)) => Err(error.clone()),
        None => Err(Error::new(ErrorCode::Unavailable, "the engine left a batch unanswered")),
    }
}

#[cfg(test)]
mod tests {
    use allot_protocol::{Command, LineRequest, LocationKind, LocationSpec, Query, ShippingCost};

    use super::*;
    use allot_engine::EngineConfig;

    fn engine(dir: &std::path::Path) -> Engine {
        let config = EngineConfig { snapshot_on_shutdown: false, ..EngineConfig::default() };
        Engine::open(dir, config).expect("open")
    }

    fn request(id: u64, body: RequestBody) -> Request {
        Request { id, body }
    }

    fn command(command: Command) -> RequestBody {
        RequestBody::Command { idempotency_key: None, command }
    }

    fn location() -> Command {
        Command::UpsertLocation(LocationSpec {
            code: "DC".into(),
            name: "Depot".into(),
            kind: LocationKind::Warehouse,
            latitude_e6: 0,
            longitude_e6: 0,
            ships: true,
            pickup: false,
            daily_capacity: 10,
            shipping_cost: ShippingCost { base_minor: 0, per_km_minor: 0, currency: "EUR".into() },
            priority: 1,
            active: true,
        })
    }

    fn receive(quantity: u32) -> Command {
        Command::Receive { sku: "S".into(), location: "DC".into(), quantity }
    }

    fn cell() -> RequestBody {
        RequestBody::Query(Query::Cell { sku: "S".into(), location: "DC".into() })
    }

    fn on_hand(result: &Result<Reply, Error>) -> u32 {
        match result {
            Ok(Reply::Cell(view)) => view.on_hand,
            other => panic!("not a cell: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_batch_answers_in_request_order_and_each_query_sees_the_commands_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = engine(dir.path());
        let requests = vec![
            request(10, command(location())),
            request(11, command(receive(5))),
            request(12, cell()),
            request(13, command(receive(2))),
            request(14, RequestBody::Ping),
            request(15, cell()),
        ];
        let responses = BatchInFlight::submit(&engine, Role::Admin, requests).responses().await;
        let ids: Vec<u64> = responses.iter().map(|response| response.id).collect();
        assert_eq!(ids, [10, 11, 12, 13, 14, 15]);
        assert_eq!(on_hand(&responses[2].result), 5);
        assert_eq!(on_hand(&responses[5].result), 7);
        assert!(matches!(responses[4].result, Ok(Reply::Pong { .. })));
        engine.shutdown();
    }

    #[tokio::test]
    async fn in_a_batch_a_forbidden_or_invalid_request_fails_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = engine(dir.path());
        let line = LineRequest { sku: "S".into(), location: "DC".into(), quantity: 0 };
        let requests = vec![
            request(1, command(receive(1))),
            request(2, command(Command::Reserve { lines: vec![line], ttl_ms: None })),
            request(3, cell()),
        ];
        let responses = BatchInFlight::submit(&engine, Role::Checkout, requests).responses().await;
        let codes: Vec<_> = responses
            .iter()
            .map(|response| response.result.as_ref().err().map(|error| error.code.clone()))
            .collect();
        assert_eq!(
            codes,
            [
                Some(ErrorCode::Unauthorized),
                Some(ErrorCode::InvalidArgument),
                Some(ErrorCode::NotFound)
            ]
        );
        engine.shutdown();
    }
}
