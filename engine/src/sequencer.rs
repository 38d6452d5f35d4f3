//! The single writer: drains the ingress queue in batches, stamps engine time, applies
//! each request to the state, logs what changed, and answers only once the batch is
//! durable (one write and one fdatasync per batch: group commit).

use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_snapshots::wal::WalWriter;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::codec;
use crate::snapshotter::{ShadowHealth, ShadowMessage, Summary};
use allot_core::routing::RoutingWeights;
use allot_core::{Command, EngineError, Outcome, Query, Request, State};

/// Longest the writer sleeps with nothing to do, so ticks are never late by more.
pub const IDLE_WAKE_MS_MAX: u64 = 250;

/// One unit of work on the ingress queue.
#[derive(Debug)]
pub(crate) enum Work {
    One(Request, oneshot::Sender<Outcome>),
    Many(Vec<Request>, oneshot::Sender<Result<Vec<Outcome>, EngineError>>),
    Query(Query, oneshot::Sender<Outcome>),
    /// Canonical digest of the live state, answered in order with other work.
    Digest(oneshot::Sender<Result<u64, EngineError>>),
    /// Write a snapshot of everything durable up to this point.
    Snapshot(oneshot::Sender<Result<u64, EngineError>>),
    /// Stop; a final snapshot may only be written if it ends before this deadline.
    Shutdown(Instant),
}

impl Work {
    /// Requests this work adds to a batch (for the batch size limit).
    pub(crate) fn weight(&self) -> usize {
        match self {
            Work::Many(requests, _) => requests.len().max(1),
            _ => 1,
        }
    }
}

/// An answer waiting for its batch to become durable.
enum Completion {
    One(oneshot::Sender<Outcome>, Outcome),
    Many(oneshot::Sender<Result<Vec<Outcome>, EngineError>>, Vec<Outcome>),
    Digest(oneshot::Sender<Result<u64, EngineError>>, u64),
    Snapshot(oneshot::Sender<Result<u64, EngineError>>),
}

pub(crate) struct Sequencer {
    pub state: State,
    pub wal: WalWriter,
    pub clock: Arc<dyn Clock>,
    pub ingress: Receiver<Work>,
    pub shadow: Sender<ShadowMessage>,
    /// Set by the snapshotter when it can no longer follow the log: then nothing more is
    /// acknowledged, as after a storage failure.
    pub shadow_health: Arc<ShadowHealth>,
    /// How long a shutdown may take when every handle is simply dropped.
    pub shutdown_deadline: Duration,
    pub batch_requests_max: usize,
    /// Engine time never goes back, even if the wall clock does.
    pub last_now_ms: u64,
    /// Set on the first storage failure; from then on nothing is acknowledged.
    pub failure: Option<String>,
    /// Routing weights from the configuration, logged as `SetRoutingWeights` in the
    /// first batch if the recovered state has others; replay then routes the same.
    pub configured_weights: Option<RoutingWeights>,
}

impl Sequencer {
    /// Runs until a `Shutdown` arrives or every handle is gone.
    pub fn run(mut self) {
        let mut batch: Vec<Work> = Vec::with_capacity(1024);
        let mut last_batch_weight = 0;
        let deadline = loop {
            let first = match self.ingress.recv_timeout(self.idle_wait()) {
                Ok(work) => Some(work),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    break Instant::now() + self.shutdown_deadline;
                }
            };
            let (weight, shutdown) = self.collect(first, &mut batch, last_batch_weight);
            last_batch_weight = weight;
            self.process(&mut batch);
            if let Some(deadline) = shutdown {
                break deadline;
            }
        };
        self.drain_after_stop(deadline);
    }

    /// Fills `batch` with `first` and whatever else is queued, up to the batch limit;
    /// returns the batch's weight and the deadline of a shutdown it holds.
    fn collect(
        &self,
        first: Option<Work>,
        batch: &mut Vec<Work>,
        last_batch_weight: usize,
    ) -> (usize, Option<Instant>) {
        // Submitters answered by the last batch are still coming back: give them the
        // core for a moment so this batch's fsync covers them too.
        if first.is_some() && self.ingress.len() * 2 < last_batch_weight {
            std::thread::yield_now();
        }
        let (mut weight, mut shutdown) = (0, None);
        let mut next = first;
        while let Some(work) = next {
            weight += work.weight();
            if let Work::Shutdown(deadline) = work {
                shutdown = Some(deadline);
            }
            batch.push(work);
            next =
                if weight < self.batch_requests_max { self.ingress.try_recv().ok() } else { None };
        }
        (weight, shutdown)
    }

    fn idle_wait(&self) -> Duration {
        let now_ms = self.clock.now_ms();
        let until_tick_ms = match self.state.next_tick_due_ms() {
            Some(due_ms) => due_ms.saturating_sub(now_ms),
            None => IDLE_WAKE_MS_MAX,
        };
        Duration::from_millis(until_tick_ms.clamp(1, IDLE_WAKE_MS_MAX))
    }

    fn process(&mut self, batch: &mut Vec<Work>) {
        self.check_shadow();
        if let Some(failure) = self.failure.clone() {
            batch.drain(..).for_each(|work| refuse(work, &failure));
            return;
        }
        let first_position = self.wal.next_position();
        let (now_ms, logged, completions) = self.apply_batch(batch);
        let log_bytes = self.wal.pending_bytes();
        // Commit writes nothing when the batch logged nothing (queries only).
        if let Err(error) = self.wal.commit() {
            self.fail(format!("write-ahead log commit failed: {error}"), completions);
            return;
        }
        self.hand_to_shadow(first_position, now_ms, logged, log_bytes);
        // A shadow that is gone or disagrees cannot vouch for this batch either.
        self.check_shadow();
        if let Some(failure) = self.failure.clone() {
            completions.into_iter().for_each(|completion| refuse_completion(completion, &failure));
            return;
        }
        for completion in completions {
            self.complete(completion);
        }
    }

    /// Stamps the batch's time, logs a due tick and changed routing weights first, then
    /// applies the batch; returns the time, what it logged and the answers to release.
    fn apply_batch(&mut self, batch: &mut Vec<Work>) -> (u64, Vec<Request>, Vec<Completion>) {
        let now_ms = self.clock.now_ms().max(self.last_now_ms);
        self.last_now_ms = now_ms;
        let mut logged = Vec::new();
        if self.state.next_tick_due_ms().is_some_and(|due_ms| due_ms <= now_ms) {
            let _expired = self.apply(Request::new(Command::Tick), now_ms, &mut logged);
        }
        if let Some(weights) = self.configured_weights.take()
            && weights != self.state.routing_weights()
        {
            let set = Request::new(Command::SetRoutingWeights(weights));
            let _set = self.apply(set, now_ms, &mut logged);
        }
        let mut completions = Vec::with_capacity(batch.len());
        for work in batch.drain(..) {
            if let Some(completion) = self.execute(work, now_ms, &mut logged) {
                completions.push(completion);
            }
        }
        (now_ms, logged, completions)
    }

    /// Hands a durable batch (`log_bytes` on disk) to the shadow, with the summary its
    /// state must then match.
    fn hand_to_shadow(
        &self,
        first_position: u64,
        time_ms: u64,
        logged: Vec<Request>,
        log_bytes: u64,
    ) {
        if logged.is_empty() {
            return;
        }
        self.send_to_shadow(ShadowMessage::Batch {
            first_position,
            time_ms,
            requests: logged,
            log_bytes,
            expected: Summary::of(&self.state),
        });
    }

    fn execute(
        &mut self,
        work: Work,
        now_ms: u64,
        logged: &mut Vec<Request>,
    ) -> Option<Completion> {
        match work {
            Work::One(request, reply) => {
                let outcome = self.apply(request, now_ms, logged);
                Some(Completion::One(reply, outcome))
            }
            Work::Many(requests, reply) => {
                let outcomes = requests
                    .into_iter()
                    .map(|request| self.apply(request, now_ms, logged))
                    .collect();
                Some(Completion::Many(reply, outcomes))
            }
            Work::Query(query, reply) => Some(Completion::One(reply, self.state.query(&query))),
            Work::Digest(reply) => {
                Some(Completion::Digest(reply, codec::state_digest(&self.state)))
            }
            Work::Snapshot(reply) => Some(Completion::Snapshot(reply)),
            Work::Shutdown(_) => None,
        }
    }

    /// Applies one request; if it changed the state, appends it to the log buffer and
    /// keeps it for the shadow state.
    fn apply(&mut self, request: Request, now_ms: u64, logged: &mut Vec<Request>) -> Outcome {
        let applied = self.state.apply(&request, now_ms);
        if applied.changed {
            self.wal.append_with(now_ms, |buffer| codec::encode_request(&request, buffer));
            logged.push(request);
        }
        applied.outcome
    }

    /// Fail-stop once the snapshotter has reported that it cannot follow the log.
    fn check_shadow(&mut self) {
        if self.failure.is_some() {
            return;
        }
        if let Some(why) = self.shadow_health.failure() {
            self.failure = Some(format!("the snapshotter stopped following the log: {why}"));
        }
    }

    fn complete(&self, completion: Completion) {
        // A requester that gave up waiting has dropped its receiver; its answer is simply
        // not delivered, which is fine: the request is durable either way.
        match completion {
            Completion::One(reply, outcome) => drop(reply.send(outcome)),
            Completion::Many(reply, outcomes) => drop(reply.send(Ok(outcomes))),
            Completion::Digest(reply, digest) => drop(reply.send(Ok(digest))),
            Completion::Snapshot(reply) => self.send_to_shadow(ShadowMessage::Snapshot(reply)),
        }
    }

    fn send_to_shadow(&self, message: ShadowMessage) {
        if let Err(crossbeam_channel::SendError(message)) = self.shadow.send(message) {
            self.shadow_health.fail("the snapshotter is gone".into());
            if let ShadowMessage::Snapshot(reply) = message {
                let _ = reply.send(Err(EngineError::Unavailable("snapshotter stopped".into())));
            }
        }
    }

    /// Fail-stop: the log may or may not hold this batch, so nothing in it is
    /// acknowledged, and nothing after it will be. The fsync is never retried.
    fn fail(&mut self, failure: String, completions: Vec<Completion>) {
        tracing::error!(%failure, "storage failure: the engine stops acknowledging requests");
        for completion in completions {
            refuse_completion(completion, &failure);
        }
        self.failure = Some(failure);
    }

    /// After shutdown, answer anything still queued rather than leaving it hanging.
    fn drain_after_stop(&mut self, deadline: Instant) {
        let final_snapshot = self.failure.is_none();
        let _ = self.shadow.send(ShadowMessage::Stop { final_snapshot, deadline });
        while let Ok(work) = self.ingress.try_recv() {
            refuse(work, "the engine is shutting down");
        }
    }
}

fn unavailable(why: &str) -> EngineError {
    EngineError::Unavailable(why.to_owned())
}

fn refuse(work: Work, why: &str) {
    let error = unavailable(why);
    let _ = match work {
        Work::One(_, reply) | Work::Query(_, reply) => reply.send(Err(error)).map_err(drop),
        Work::Many(_, reply) => reply.send(Err(error)).map_err(drop),
        Work::Digest(reply) | Work::Snapshot(reply) => reply.send(Err(error)).map_err(drop),
        Work::Shutdown(_) => Ok(()),
    };
}

fn refuse_completion(completion: Completion, why: &str) {
    let error = unavailable(why);
    let _ = match completion {
        Completion::One(reply, _) => reply.send(Err(error)).map_err(drop),
        Completion::Many(reply, _) => reply.send(Err(error)).map_err(drop),
        Completion::Digest(reply, _) | Completion::Snapshot(reply) => {
            reply.send(Err(error)).map_err(drop)
        }
    };
}
