//! The load loops. Closed loop: every connection runs `depth / batch` slots, each with one
//! frame of `batch` requests in flight, sending the next as soon as the answers are in.
//! Open loop: every connection sends frames on a fixed schedule whatever the answers do,
//! and a request's latency runs from when the schedule said to send it, so a stalled
//! server shows up in the figures instead of slowing the load (coordinated omission, as
//! wrk2 avoids it).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use allot_client::Client;
use allot_protocol::RequestBody;
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::ack_log::AckLog;
use super::args::Settings;
use super::ledger::Ledger;
use super::workload::{self, Answer, Buyers, Flow, Kind, Outgoing};
use crate::Catalogue;

/// Highest latency the histograms hold, in microseconds; longer ones count as this.
pub const LATENCY_US_MAX: u64 = 60_000_000;
/// Significant figures the histograms keep.
pub const LATENCY_SIGNIFICANT_FIGURES: u8 = 3;
/// Requests an open loop may have scheduled but unanswered on one connection before it
/// winds down early: past this the rate is clearly more than the server takes, and the
/// backlog would only grow.
pub const OPEN_LOOP_BACKLOG_REQUESTS_MAX: usize = 1_000_000;

/// When load starts, when measuring starts and when sending stops.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub measure_from: Instant,
    pub stop_at: Instant,
}

impl Window {
    pub fn new(start: Instant, warmup: Duration, duration: Duration) -> Window {
        Window { start, measure_from: start + warmup, stop_at: start + warmup + duration }
    }

    /// Whether a request sent (or due) at `sent` counts in the figures.
    pub fn measures(&self, sent: Instant) -> bool {
        sent >= self.measure_from && sent < self.stop_at
    }
}

/// Counters the progress line reads each second.
#[derive(Debug, Default)]
pub struct Progress {
    pub requests: AtomicU64,
    /// Holds placed, or for `lifecycle` orders placed.
    pub placed: AtomicU64,
    pub errors: AtomicU64,
}

impl Progress {
    fn count(&self, kind: Kind, answer: &Answer) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match answer {
            Ok(_) if kind.is_headline() => {
                self.placed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Latency histograms (µs) and counts of measured requests, by kind, and their errors by
/// code.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub all: Histogram<u64>,
    pub by_kind: [Histogram<u64>; Kind::ALL.len()],
    /// Measured requests answered with success, by kind.
    pub succeeded: [u64; Kind::ALL.len()],
    pub errors: BTreeMap<String, u64>,
    /// Completion time of the last measured request.
    pub last_done: Option<Instant>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_FIGURES)
        .expect("constant histogram bounds are valid")
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            all: histogram(),
            by_kind: std::array::from_fn(|_| histogram()),
            succeeded: [0; Kind::ALL.len()],
            errors: BTreeMap::new(),
            last_done: None,
        }
    }
}

impl Recorder {
    pub fn record(&mut self, kind: Kind, latency: Duration, done: Instant, answer: &Answer) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        self.all.saturating_record(micros);
        self.by_kind[kind.index()].saturating_record(micros);
        match answer {
            Ok(_) => self.succeeded[kind.index()] += 1,
            Err(error) => *self.errors.entry(error.name().to_owned()).or_default() += 1,
        }
        self.last_done = self.last_done.max(Some(done));
    }

    pub fn absorb(&mut self, other: &Recorder) {
        // Same bounds everywhere, so adding cannot fail.
        self.all.add(&other.all).expect("histograms share bounds");
        for (mine, theirs) in self.by_kind.iter_mut().zip(&other.by_kind) {
            mine.add(theirs).expect("histograms share bounds");
        }
        for (mine, theirs) in self.succeeded.iter_mut().zip(&other.succeeded) {
            *mine += theirs;
        }
        for (code, count) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += count;
        }
        self.last_done = self.last_done.max(other.last_done);
    }
}

/// What the load phase produced.
#[derive(Debug)]
pub struct LoadResult {
    pub recorder: Recorder,
    pub ledger: Ledger,
    /// An open loop fell so far behind that it wound down early.
    pub saturated: bool,
}

/// Runs the workload of `settings` on `clients` (one per connection) for its window.
pub async fn run_load(
    settings: &Settings,
    clients: &[Client],
    catalogue: &Arc<Catalogue>,
    ack_log: Option<&AckLog>,
    window: Window,
    progress: &Arc<Progress>,
    buyers: &Arc<Buyers>,
) -> LoadResult {
    let mut slots = JoinSet::new();
    for (index, client) in clients.iter().enumerate() {
        let connection = Connection {
            client: client.clone(),
            batch: settings.batch,
            window,
            progress: progress.clone(),
        };
        match settings.rate {
            None => {
                let per_connection = settings.slots_per_connection();
                for slot in 0..per_connection {
                    let stream = (index * per_connection + slot) as u64;
                    let flow = workload::flow(settings, catalogue, stream, buyers);
                    let ledger = Ledger::new(ack_log.cloned());
                    slots.spawn(connection.clone().closed_slot(flow, ledger));
                }
            }
            Some(rate) => {
                let flow = workload::flow(settings, catalogue, index as u64, buyers);
                let ledger = Ledger::new(ack_log.cloned());
                let rate = rate as f64 / clients.len() as f64;
                slots.spawn(connection.open_loop(flow, ledger, rate, settings.depth));
            }
        }
    }
    let mut result =
        LoadResult { recorder: Recorder::default(), ledger: Ledger::new(None), saturated: false };
    while let Some(joined) = slots.join_next().await {
        let (recorder, ledger, saturated) = joined.expect("load slots do not panic");
        result.recorder.absorb(&recorder);
        result.ledger.absorb(ledger);
        result.saturated |= saturated;
    }
    result
}

/// What every slot of one connection shares.
#[derive(Clone)]
struct Connection {
    client: Client,
    batch: usize,
    window: Window,
    progress: Arc<Progress>,
}

impl Connection {
    async fn closed_slot(
        self,
        mut flow: Box<dyn Flow>,
        mut ledger: Ledger,
    ) -> (Recorder, Ledger, bool) {
        let mut recorder = Recorder::default();
        loop {
            if Instant::now() >= self.window.stop_at {
                flow.wind_down();
            }
            let frame: Vec<Outgoing> = (0..self.batch).map_while(|_| flow.next()).collect();
            if frame.is_empty() {
                break;
            }
            let (kinds, notes, bodies) = split(frame);
            let sent = Instant::now();
            let answers = send_frame(&self.client, bodies).await;
            let done = Instant::now();
            for ((kind, note), answer) in kinds.into_iter().zip(notes).zip(&answers) {
                self.progress.count(kind, answer);
                if self.window.measures(sent) {
                    recorder.record(kind, done - sent, done, answer);
                }
                flow.answer(note, answer, &mut ledger);
            }
        }
        (recorder, ledger, false)
    }

    async fn open_loop(
        self,
        flow: Box<dyn Flow>,
        ledger: Ledger,
        rate: f64,
        depth: usize,
    ) -> (Recorder, Ledger, bool) {
        let state = Arc::new(Mutex::new(OpenState {
            flow,
            ledger,
            recorder: Recorder::default(),
            in_flight: 0,
        }));
        let permits = Arc::new(Semaphore::new(depth));
        let frames_per_s = rate / self.batch as f64;
        let mut frames = JoinSet::new();
        let mut saturated = false;
        for scheduled in 0u64.. {
            let due = self.window.start + Duration::from_secs_f64(scheduled as f64 / frames_per_s);
            if due >= self.window.stop_at {
                lock(&state).flow.wind_down();
            }
            tokio::time::sleep_until(due.into()).await;
            let next = {
                let mut state = lock(&state);
                if state.in_flight >= OPEN_LOOP_BACKLOG_REQUESTS_MAX {
                    OpenStep::Saturated
                } else {
                    let frame: Vec<Outgoing> =
                        (0..self.batch).map_while(|_| state.flow.next()).collect();
                    state.in_flight += frame.len();
                    if !frame.is_empty() {
                        OpenStep::Send(frame)
                    } else if state.flow.finished() && state.in_flight == 0 {
                        OpenStep::Done
                    } else if state.flow.finished() && due >= self.window.stop_at {
                        OpenStep::AwaitAnswers
                    } else {
                        OpenStep::Skip
                    }
                }
            };
            let frame = match next {
                OpenStep::Send(frame) => frame,
                OpenStep::Skip => continue,
                // Only answers still to come can make follow-ups ready.
                OpenStep::AwaitAnswers => {
                    frames.join_next().await;
                    continue;
                }
                OpenStep::Done => break,
                // Far behind: stop drawing new work, but still send the follow-ups of
                // what was answered, so no acknowledged cart is left half done.
                OpenStep::Saturated => {
                    saturated = true;
                    lock(&state).flow.wind_down();
                    frames.join_next().await;
                    continue;
                }
            };
            frames.spawn(self.clone().open_frame(frame, due, state.clone(), permits.clone()));
            while frames.try_join_next().is_some() {}
        }
        while frames.join_next().await.is_some() {}
        let state = Arc::into_inner(state).expect("every frame task has ended");
        let state = state.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        (state.recorder, state.ledger, saturated)
    }

    /// Sends one scheduled frame once the in-flight limit lets it, and books the answers
    /// against the time it was due.
    async fn open_frame(
        self,
        frame: Vec<Outgoing>,
        due: Instant,
        state: Arc<Mutex<OpenState>>,
        permits: Arc<Semaphore>,
    ) {
        let (kinds, notes, bodies) = split(frame);
        let count = kinds.len();
        let permit = permits.acquire_many_owned(count as u32).await.expect("never closed");
        let answers = send_frame(&self.client, bodies).await;
        drop(permit);
        let done = Instant::now();
        let mut state = lock(&state);
        let OpenState { flow, ledger, recorder, in_flight } = &mut *state;
        for ((kind, note), answer) in kinds.into_iter().zip(notes).zip(&answers) {
            self.progress.count(kind, answer);
            if self.window.measures(due) {
                recorder.record(kind, done - due, done, answer);
            }
            flow.answer(note, answer, ledger);
        }
        *in_flight -= count;
    }
}

/// What an open loop does at a scheduled instant.
enum OpenStep {
    Send(Vec<Outgoing>),
    /// Nothing is ready yet; try at the next instant.
    Skip,
    /// Past the end, with follow-ups possible only from answers in flight.
    AwaitAnswers,
    Done,
    Saturated,
}

struct OpenState {
    flow: Box<dyn Flow>,
    ledger: Ledger,
    recorder: Recorder,
    /// Requests scheduled and not yet answered.
    in_flight: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking frame task would already have failed the run; its data is still whole.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn split(frame: Vec<Outgoing>) -> (Vec<Kind>, Vec<workload::Note>, Vec<RequestBody>) {
    let mut kinds = Vec::with_capacity(frame.len());
    let mut notes = Vec::with_capacity(frame.len());
    let mut bodies = Vec::with_capacity(frame.len());
    for outgoing in frame {
        kinds.push(outgoing.kind);
        notes.push(outgoing.note);
        bodies.push(outgoing.body);
    }
    (kinds, notes, bodies)
}

/// One request alone, or several in one batch frame; one answer per request, in order.
async fn send_frame(client: &Client, mut bodies: Vec<RequestBody>) -> Vec<Answer> {
    if bodies.len() == 1 {
        let body = bodies.pop().expect("one body");
        return vec![client.send(body).await];
    }
    let count = bodies.len();
    match client.batch(bodies).await {
        Ok(answers) => answers,
        Err(error) => vec![Err(error); count],
    }
}
