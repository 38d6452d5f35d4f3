//! Byte budgets for what peers make the server hold: the unfinished frames it is reading
//! and the answers waiting to be handed to QUIC. Each connection has its own budget and
//! all of them share the server's, so neither one client nor many together can grow the
//! server's memory without bound.
//!
//! A frame's bytes are taken only while there is room (a full budget stops the stream
//! reading). A request is admitted only while the bytes held for answers leave room
//! (frames waiting to be admitted do not count there, so they cannot keep each other
//! waiting), and holds an estimate of
//! its answer from then until the answer is ready, when the answer's real size is held
//! instead, past the limit if need be since its work is done, until it is handed to
//! QUIC. So requests whose answers are not taken stop their connection admitting more
//! before the answers themselves pile up. The estimate is the connection's recent
//! answers' size (at least `ANSWER_BYTES_RESERVED_MIN`), so a client asking for large
//! answers gets fewer requests in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, OwnedSemaphorePermit};

/// Fewest bytes held for each admitted request until its answer is ready: more than the
/// answer to a hold, a command or a ping needs.
pub const ANSWER_BYTES_RESERVED_MIN: usize = 512;
/// The estimate a connection starts with, before it has seen an answer: its first burst
/// of requests is admitted as if each answer were this large.
pub const ANSWER_BYTES_ESTIMATE_INITIAL: usize = 4 * 1024;
/// How fast the answer estimate forgets a large answer: by 1/N of itself per answer.
const ANSWER_ESTIMATE_DECAY_DIVISOR: usize = 16;

/// What bytes are held for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Frames being read or handled.
    Frames,
    /// Answers, and what is reserved for answers to come.
    Answers,
}

/// One limit on bytes held, shared by whoever holds them.
#[derive(Debug)]
pub struct Budget {
    /// All bytes held: reading stops when they reach `max`.
    used: AtomicUsize,
    /// The part of `used` held for answers: admitting requests stops when it reaches
    /// `max`. Frames do not count there, so streams holding frames while they wait to
    /// be admitted cannot keep each other waiting.
    answers: AtomicUsize,
    max: usize,
    /// Woken when bytes are given back while the budget is full.
    room: Notify,
    /// Bytes expected per answer: the largest recent one, decaying.
    answer_estimate: AtomicUsize,
}

impl Budget {
    pub fn new(max: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            answers: AtomicUsize::new(0),
            max,
            room: Notify::new(),
            answer_estimate: AtomicUsize::new(ANSWER_BYTES_ESTIMATE_INITIAL),
        }
    }

    /// Counts an answer of `bytes` per request into the estimate.
    fn observe_answer(&self, bytes: usize) {
        let _ = self.answer_estimate.fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
            let decayed = old - old / ANSWER_ESTIMATE_DECAY_DIVISOR;
            Some(bytes.max(decayed).max(ANSWER_BYTES_RESERVED_MIN))
        });
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    fn has_room(&self, kind: Kind) -> bool {
        match kind {
            Kind::Frames => self.used() < self.max,
            Kind::Answers => self.answers.load(Ordering::Acquire) < self.max,
        }
    }

    /// Takes as many of `want` bytes as fit, possibly none.
    fn take_up_to(&self, want: usize) -> usize {
        let mut taken = 0;
        let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            taken = want.min(self.max.saturating_sub(used));
            Some(used + taken)
        });
        taken
    }

    /// Takes `bytes` even past the limit.
    fn force(&self, bytes: usize, kind: Kind) {
        if kind == Kind::Answers {
            self.answers.fetch_add(bytes, Ordering::AcqRel);
        }
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }

    fn give(&self, bytes: usize, kind: Kind) {
        if bytes == 0 {
            return;
        }
        if kind == Kind::Answers {
            self.answers.fetch_sub(bytes, Ordering::AcqRel);
        }
        // Answers never exceed all bytes, so a full budget of either kind shows here;
        // waiters look again for their own kind.
        if self.used.fetch_sub(bytes, Ordering::AcqRel) >= self.max {
            self.room.notify_waiters();
        }
    }
}

/// A connection's budget and the server's, taken from together.
#[derive(Debug, Clone)]
pub struct Buffers {
    connection: Arc<Budget>,
    server: Arc<Budget>,
}

impl Buffers {
    pub fn new(connection: Arc<Budget>, server: Arc<Budget>) -> Buffers {
        Buffers { connection, server }
    }

    /// Nothing held yet, for frames.
    pub fn empty(&self) -> Held {
        Held { buffers: self.clone(), bytes: 0, kind: Kind::Frames }
    }

    /// `bytes` held for answers from now on, past the limits if need be.
    pub fn charge(&self, bytes: usize) -> Held {
        let mut held = Held { buffers: self.clone(), bytes: 0, kind: Kind::Answers };
        held.set_forced(bytes);
        held
    }

    /// Which budget has no room for `kind`, if one has none.
    pub fn full(&self, kind: Kind) -> Option<Full> {
        if !self.connection.has_room(kind) {
            Some(Full::Connection)
        } else if !self.server.has_room(kind) {
            Some(Full::Server)
        } else {
            None
        }
    }

    /// Waits until both budgets have room for `kind`.
    pub async fn room(&self, kind: Kind) {
        loop {
            let connection = self.connection.room.notified();
            let server = self.server.room.notified();
            tokio::pin!(connection, server);
            // Registered before looking, so a release in between is not missed.
            connection.as_mut().enable();
            server.as_mut().enable();
            match self.full(kind) {
                None => return,
                Some(Full::Connection) => connection.await,
                Some(Full::Server) => server.await,
            }
        }
    }

    /// Takes as many of `want` bytes as fit in both budgets, possibly none.
    fn take_up_to(&self, want: usize) -> usize {
        let from_connection = self.connection.take_up_to(want);
        let taken = self.server.take_up_to(from_connection);
        self.connection.give(from_connection - taken, Kind::Frames);
        taken
    }

    fn give(&self, bytes: usize, kind: Kind) {
        self.connection.give(bytes, kind);
        self.server.give(bytes, kind);
    }
}

/// Which budget stopped a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Connection,
    Server,
}

/// Bytes held against a connection's and the server's budgets, given back on drop.
#[derive(Debug)]
pub struct Held {
    buffers: Buffers,
    bytes: usize,
    kind: Kind,
}

impl Held {
    /// Grows by as many of `want` bytes as fit now, possibly none; returns how many.
    /// Only frames are taken this way.
    pub fn grow_up_to(&mut self, want: usize) -> usize {
        debug_assert_eq!(self.kind, Kind::Frames);
        let taken = self.buffers.take_up_to(want);
        self.bytes += taken;
        taken
    }

    /// Holds exactly `bytes`, past the limits if need be.
    pub fn set_forced(&mut self, bytes: usize) {
        if bytes > self.bytes {
            self.buffers.connection.force(bytes - self.bytes, self.kind);
            self.buffers.server.force(bytes - self.bytes, self.kind);
            self.bytes = bytes;
        } else {
            self.shrink_to(bytes);
        }
    }

    /// Gives back all but `bytes`.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.buffers.give(self.bytes - bytes, self.kind);
            self.bytes = bytes;
        }
    }

    pub fn buffers(&self) -> &Buffers {
        &self.buffers
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.buffers.give(self.bytes, self.kind);
    }
}

/// Admitted requests: their places in the connection's in-flight request budget and the
/// bytes held for their answers.
pub struct Admission {
    requests: OwnedSemaphorePermit,
    count: usize,
    answer: Held,
}

impl Admission {
    /// Holds the estimate for `count` answers, at most the connection's whole budget.
    pub fn new(requests: OwnedSemaphorePermit, count: usize, buffers: &Buffers) -> Admission {
        let connection = &buffers.connection;
        let estimate = connection.answer_estimate.load(Ordering::Acquire);
        let answer = buffers.charge(count.saturating_mul(estimate).min(connection.max));
        Admission { requests, count, answer }
    }

    /// The answer is ready: it holds its real size from now on; its permits and bytes
    /// go back with what this returns.
    pub fn answered(self, bytes: usize) -> (OwnedSemaphorePermit, Held) {
        let Admission { requests, count, mut answer } = self;
        answer.buffers.connection.observe_answer(bytes / count.max(1));
        answer.set_forced(bytes);
        (requests, answer)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn buffers(connection_max: usize, server: &Arc<Budget>) -> Buffers {
        Buffers::new(Arc::new(Budget::new(connection_max)), server.clone())
    }

    #[test]
    fn frame_bytes_are_taken_only_up_to_the_smaller_room_and_given_back_on_drop() {
        let server = Arc::new(Budget::new(100));
        let first = buffers(60, &server);
        let mut held = first.empty();
        assert_eq!(held.grow_up_to(80), 60, "the connection's budget caps it");
        assert_eq!(held.grow_up_to(1), 0);
        assert_eq!(first.full(Kind::Frames), Some(Full::Connection));

        let second = buffers(60, &server);
        let mut other = second.empty();
        assert_eq!(other.grow_up_to(60), 40, "the server's budget caps it");
        assert_eq!(second.full(Kind::Frames), Some(Full::Server));
        assert_eq!(second.connection.used(), 40, "what the server refused is given back");

        drop(held);
        assert_eq!(server.used(), 40);
        other.shrink_to(10);
        assert_eq!((server.used(), second.connection.used()), (10, 10));
    }

    #[test]
    fn an_answer_is_charged_past_the_limit_and_fills_the_budget() {
        let server = Arc::new(Budget::new(100));
        let connection = buffers(50, &server);
        let answer = connection.charge(70);
        assert_eq!(connection.full(Kind::Answers), Some(Full::Connection));
        assert_eq!(connection.full(Kind::Frames), Some(Full::Connection));
        assert_eq!(connection.empty().grow_up_to(10), 0);
        drop(answer);
        assert_eq!(connection.full(Kind::Answers), None);
        assert_eq!(server.used(), 0);
    }

    #[test]
    fn frames_held_stop_reading_but_not_admitting_requests() {
        let server = Arc::new(Budget::new(100));
        let connection = buffers(50, &server);
        let mut frames = connection.empty();
        assert_eq!(frames.grow_up_to(50), 50);
        assert_eq!(connection.full(Kind::Frames), Some(Full::Connection));
        assert_eq!(connection.full(Kind::Answers), None, "waiting frames cannot block each other");
    }

    #[test]
    fn the_answer_estimate_follows_large_answers_and_forgets_them_slowly() {
        let budget = Budget::new(1 << 20);
        assert_eq!(budget.answer_estimate.load(Ordering::Acquire), ANSWER_BYTES_ESTIMATE_INITIAL);
        for _ in 0..100 {
            budget.observe_answer(10);
        }
        assert_eq!(budget.answer_estimate.load(Ordering::Acquire), ANSWER_BYTES_RESERVED_MIN);
        budget.observe_answer(16_000);
        assert_eq!(budget.answer_estimate.load(Ordering::Acquire), 16_000);
        budget.observe_answer(10);
        assert_eq!(budget.answer_estimate.load(Ordering::Acquire), 15_000);
    }

    #[tokio::test]
    async fn a_waiter_for_room_wakes_when_an_answer_is_given_back() {
        let server = Arc::new(Budget::new(1_000));
        let connection = buffers(10, &server);
        let answer = connection.charge(10);
        let waiter = tokio::spawn({
            let connection = connection.clone();
            async move { connection.room(Kind::Answers).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "no room while the answer is held");
        drop(answer);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken once room appears")
            .expect("the waiter ran");
    }
}
