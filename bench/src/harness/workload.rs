//! The workloads of DESIGN §6 as flows: each load slot owns one, asks it for the next
//! request ready to go and tells it every answer, which may make follow-ups ready (the
//! commit of a placed hold, a buyer's second try). A flow is a pure function of its seed,
//! its stream and the answers it is given.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use allot_client::ClientError;
use allot_protocol::{Command, ErrorCode, HoldId, Query, Reply, RequestBody, Resolution};

use super::args::{Settings, WorkloadKind};
use super::ledger::{Ledger, UNITS_PER_LINE};
use super::lifecycle::{LifecycleFlow, Step};
use crate::{Catalogue, CellPick, Rng, draw_checkout_cart_size};

/// DESIGN §6 `checkout`: what becomes of a hold. The rest (10 %) is left to expire.
pub const CHECKOUT_COMMIT_SHARE: f64 = 0.7;
pub const CHECKOUT_RELEASE_SHARE: f64 = 0.2;
/// `checkout`: committed holds the outside order system has not shipped yet. Past this
/// many, the oldest is shipped (`ConsumeCommitted`) as the next cart is drawn, so the
/// committed units leave `on_hand` and `allocated` some carts later, as they would
/// after an order's picking, and hot cells stop draining.
pub const CHECKOUT_UNSHIPPED_COMMITS_MAX: usize = 8;
/// Holds a `flash-sale` buyer tries before giving up.
pub const FLASH_SALE_ATTEMPTS_MAX: u32 = 8;

/// What a request is, for the per-kind figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Hold,
    /// A read: of availability, or of an order or a return.
    Read,
    Commit,
    Release,
    /// `lifecycle`: placing an order, its payment, its cancellation, a shipment's
    /// fulfilment step, and a return's request, authorisation, receipt or refund.
    Place,
    Pay,
    Cancel,
    Step,
    Return,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Hold,
        Kind::Read,
        Kind::Commit,
        Kind::Release,
        Kind::Place,
        Kind::Pay,
        Kind::Cancel,
        Kind::Step,
        Kind::Return,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Hold => "hold",
            Kind::Read => "read",
            Kind::Commit => "commit",
            Kind::Release => "release",
            Kind::Place => "place",
            Kind::Pay => "pay",
            Kind::Cancel => "cancel",
            Kind::Step => "step",
            Kind::Return => "return",
        }
    }

    /// What the progress line counts per second: placed holds, or placed orders.
    pub fn is_headline(self) -> bool {
        matches!(self, Kind::Hold | Kind::Place)
    }
}

/// One request a flow wants sent, with what it needs to make sense of the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub kind: Kind,
    pub body: RequestBody,
    pub note: Note,
}

/// What a flow remembers about a request until its answer comes.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    Hold {
        lines: Vec<CellPick>,
        fate: Fate,
    },
    Read,
    Resolve {
        hold: HoldId,
        lines: Vec<CellPick>,
        expires_at_ms: u64,
        fate: Fate,
    },
    /// A `flash-sale` buyer's hold of one unit of `sku` at `location`.
    BuyerHolds {
        buyer: u64,
        pick: CellPick,
        attempts: u32,
    },
    /// A `flash-sale` buyer looking where `sku` is still available.
    BuyerLooks {
        buyer: u64,
        sku: u32,
        attempts: u32,
    },
    /// A `checkout` hold committed earlier, shipped by the outside order system.
    Ship {
        hold: HoldId,
        lines: Vec<CellPick>,
    },
    /// A `lifecycle` order's step; `order` is the flow's own number for it.
    Order {
        order: u64,
        step: Step,
    },
}

/// What a flow means to do with a hold once it is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Keep,
    Commit,
    Release,
    Expire,
}

/// An answer as the client gives it.
pub type Answer = Result<Reply, ClientError>;

/// A workload's request source for one load slot.
pub trait Flow: Send {
    /// The next request ready to send; `None` when nothing is ready until an answer comes
    /// in, or when the flow is [`finished`](Flow::finished).
    fn next(&mut self) -> Option<Outgoing>;
    /// The answer to a request [`next`](Flow::next) gave, with its note.
    fn answer(&mut self, note: Note, answer: &Answer, ledger: &mut Ledger);
    /// Whether the flow will never have another request.
    fn finished(&self) -> bool;
    /// The run is over: from now on only follow-ups of answered requests (a commit, a
    /// buyer's next try) are given, so nothing acknowledged is left half done.
    fn wind_down(&mut self);
}

/// The buyer counter every `flash-sale` flow of a run draws from.
#[derive(Debug)]
pub struct Buyers {
    next: AtomicU64,
    total: u64,
}

impl Buyers {
    pub fn new(total: u64) -> Buyers {
        Buyers { next: AtomicU64::new(0), total }
    }

    fn claim(&self) -> Option<u64> {
        let buyer = self.next.fetch_add(1, Ordering::Relaxed);
        (buyer < self.total).then_some(buyer)
    }

    pub fn claimed(&self) -> u64 {
        self.next.load(Ordering::Relaxed).min(self.total)
    }
}

/// The flow of `stream` for the workload of `settings`.
pub fn flow(
    settings: &Settings,
    catalogue: &Arc<Catalogue>,
    stream: u64,
    buyers: &Arc<Buyers>,
) -> Box<dyn Flow> {
    let base = Base::new(settings, catalogue, stream);
    match settings.workload {
        WorkloadKind::Hold => Box::new(HoldFlow { base, winding_down: false }),
        WorkloadKind::Checkout => Box::new(CheckoutFlow {
            base,
            unshipped: VecDeque::new(),
            reads_per_hold: settings.reads_per_hold,
            ready: VecDeque::new(),
            orders: 0,
            winding_down: false,
        }),
        WorkloadKind::FlashSale => Box::new(FlashSaleFlow {
            base,
            buyers: buyers.clone(),
            ready: VecDeque::new(),
            out_of_buyers: false,
        }),
        WorkloadKind::Lifecycle => Box::new(LifecycleFlow::new(settings, catalogue, stream)),
    }
}

/// What every flow has: the catalogue, its own generator and the hold TTL.
struct Base {
    catalogue: Arc<Catalogue>,
    rng: Rng,
    ttl_ms: u64,
    stream: u64,
}

impl Base {
    fn new(settings: &Settings, catalogue: &Arc<Catalogue>, stream: u64) -> Base {
        Base {
            catalogue: catalogue.clone(),
            rng: catalogue.stream_rng(stream),
            ttl_ms: settings.ttl_ms,
            stream,
        }
    }

    fn reserve(&self, lines: &[CellPick]) -> RequestBody {
        let lines = lines.iter().map(|&pick| self.catalogue.line(pick)).collect();
        command(Command::Reserve { lines, ttl_ms: Some(self.ttl_ms) })
    }

    fn availability(&self, sku: u32) -> RequestBody {
        RequestBody::Query(Query::SkuStock { sku: self.catalogue.sku(sku as usize).to_owned() })
    }
}

pub(super) fn command(command: Command) -> RequestBody {
    // The client gives every command its own idempotency key, so a retry after a lost
    // answer is applied at most once.
    RequestBody::Command { idempotency_key: None, command }
}

/// `hold`: one-line holds of one unit at uniformly random cells, kept to the end.
struct HoldFlow {
    base: Base,
    winding_down: bool,
}

impl Flow for HoldFlow {
    fn next(&mut self) -> Option<Outgoing> {
        if self.winding_down {
            return None;
        }
        let pick = self.base.catalogue.draw_cell(&mut self.base.rng);
        let lines = vec![pick];
        let body = self.base.reserve(&lines);
        Some(Outgoing { kind: Kind::Hold, body, note: Note::Hold { lines, fate: Fate::Keep } })
    }

    fn answer(&mut self, note: Note, answer: &Answer, ledger: &mut Ledger) {
        hold_answered(note, answer, ledger);
    }

    fn finished(&self) -> bool {
        self.winding_down
    }

    fn wind_down(&mut self) {
        self.winding_down = true;
    }
}

/// Books a hold's answer; returns the placed hold, its lines and fate if it was placed.
fn hold_answered(
    note: Note,
    answer: &Answer,
    ledger: &mut Ledger,
) -> Option<(HoldId, u64, Vec<CellPick>, Fate)> {
    let Note::Hold { lines, fate } = note else { return None };
    match answer {
        Ok(Reply::HoldPlaced { hold, expires_at_ms }) => {
            ledger.hold_acked(*hold, &lines);
            match fate {
                Fate::Keep => ledger.stays_held(*hold),
                Fate::Expire => ledger.expires(*hold, &lines, *expires_at_ms),
                Fate::Commit | Fate::Release => {}
            }
            Some((*hold, *expires_at_ms, lines, fate))
        }
        Err(error) if error.is_outcome_unknown() => {
            ledger.hold_unknown(&lines);
            None
        }
        // Refused (out of stock, say): nothing changed on the server.
        _ => None,
    }
}

/// `checkout`: carts of 1–5 Zipf-popular lines, each preceded by availability reads of
/// Zipf-popular SKUs; a placed hold is then committed (70 %), released (20 %) or left to
/// expire (10 %).
struct CheckoutFlow {
    base: Base,
    /// Holds whose commit was acknowledged and that are not shipped yet, oldest first.
    unshipped: VecDeque<(HoldId, Vec<CellPick>)>,
    reads_per_hold: usize,
    ready: VecDeque<Outgoing>,
    orders: u64,
    winding_down: bool,
}

impl CheckoutFlow {
    fn draw_cart(&mut self) {
        if self.unshipped.len() > CHECKOUT_UNSHIPPED_COMMITS_MAX {
            let (hold, lines) = self.unshipped.pop_front().expect("more than the maximum");
            let body = command(Command::ConsumeCommitted { hold, lines: vec![] });
            self.ready.push_back(Outgoing {
                kind: Kind::Step,
                body,
                note: Note::Ship { hold, lines },
            });
        }
        let base = &mut self.base;
        for _ in 0..self.reads_per_hold {
            let sku = base.catalogue.draw_popular_sku(&mut base.rng) as u32;
            let body = base.availability(sku);
            self.ready.push_back(Outgoing { kind: Kind::Read, body, note: Note::Read });
        }
        let size = draw_checkout_cart_size(&mut base.rng);
        let lines = base.catalogue.draw_cart(&mut base.rng, size);
        let draw = base.rng.unit();
        let fate = if draw < CHECKOUT_COMMIT_SHARE {
            Fate::Commit
        } else if draw < CHECKOUT_COMMIT_SHARE + CHECKOUT_RELEASE_SHARE {
            Fate::Release
        } else {
            Fate::Expire
        };
        let body = base.reserve(&lines);
        self.ready.push_back(Outgoing { kind: Kind::Hold, body, note: Note::Hold { lines, fate } });
    }

    fn resolve(&mut self, hold: HoldId, expires_at_ms: u64, lines: Vec<CellPick>, fate: Fate) {
        let (kind, body) = match fate {
            Fate::Commit => {
                self.orders += 1;
                let order_number = format!("ORD-{}-{}", self.base.stream, self.orders);
                (Kind::Commit, command(Command::CommitHold { hold, order_number }))
            }
            Fate::Release => (Kind::Release, command(Command::ReleaseHold { hold, lines: vec![] })),
            Fate::Keep | Fate::Expire => return,
        };
        let note = Note::Resolve { hold, lines, expires_at_ms, fate };
        // Follow-ups go first: a shopper who placed a hold pays before browsing on.
        self.ready.push_front(Outgoing { kind, body, note });
    }
}

impl Flow for CheckoutFlow {
    fn next(&mut self) -> Option<Outgoing> {
        if self.ready.is_empty() && !self.winding_down {
            self.draw_cart();
        }
        self.ready.pop_front()
    }

    fn answer(&mut self, note: Note, answer: &Answer, ledger: &mut Ledger) {
        match note {
            Note::Hold { .. } => {
                if let Some((hold, expires_at_ms, lines, fate)) =
                    hold_answered(note, answer, ledger)
                {
                    self.resolve(hold, expires_at_ms, lines, fate);
                }
            }
            Note::Resolve { hold, lines, expires_at_ms, fate } => {
                let committed = resolve_answered(hold, &lines, expires_at_ms, fate, answer, ledger);
                if committed {
                    self.unshipped.push_back((hold, lines));
                }
            }
            Note::Ship { hold, lines } => shipped_answered(hold, &lines, answer, ledger),
            Note::Read | Note::BuyerHolds { .. } | Note::BuyerLooks { .. } | Note::Order { .. } => {
            }
        }
    }

    fn finished(&self) -> bool {
        self.winding_down && self.ready.is_empty()
    }

    fn wind_down(&mut self) {
        // Reads and holds not sent yet are dropped; commits and releases still go.
        self.winding_down = true;
        self.ready
            .retain(|outgoing| matches!(outgoing.note, Note::Resolve { .. } | Note::Ship { .. }));
    }
}

/// Books the answer to shipping a committed hold's units.
fn shipped_answered(hold: HoldId, lines: &[CellPick], answer: &Answer, ledger: &mut Ledger) {
    match answer {
        Ok(Reply::CommittedSettled { .. }) => ledger.consumed(hold, lines),
        // Only a retry of our own shipment can find the hold settled.
        Err(ClientError::Server(error))
            if error.code == (ErrorCode::InvalidTransition { from: "settled".into() }) =>
        {
            ledger.consumed(hold, lines);
        }
        Err(error) if error.is_outcome_unknown() => ledger.consume_unknown(lines),
        // Refused: nothing changed, the units stay allocated.
        _ => {}
    }
}

/// Books the answer to a commit or release of a placed hold; says whether the hold is
/// known to be committed.
fn resolve_answered(
    hold: HoldId,
    lines: &[CellPick],
    expires_at_ms: u64,
    fate: Fate,
    answer: &Answer,
    ledger: &mut Ledger,
) -> bool {
    match answer {
        Ok(Reply::HoldCommitted { .. }) => {
            ledger.committed(hold, lines);
            return true;
        }
        Ok(Reply::HoldReleased { .. }) => ledger.released(hold, lines),
        Err(ClientError::Server(error))
            if error.code == (ErrorCode::AlreadyResolved { how: Resolution::Committed }) =>
        {
            // Only a retry of our own commit can find it committed.
            ledger.committed(hold, lines);
            return true;
        }
        Err(ClientError::Server(error))
            if error.code == (ErrorCode::AlreadyResolved { how: Resolution::Released }) =>
        {
            ledger.released(hold, lines);
        }
        Err(error) if error.is_outcome_unknown() => match fate {
            Fate::Commit => ledger.commit_unknown(lines, expires_at_ms),
            Fate::Release | Fate::Keep | Fate::Expire => {
                ledger.release_unknown(lines, expires_at_ms);
            }
        },
        // Expired first, or refused: the hold is (or will be) expired.
        _ => ledger.expires(hold, lines, expires_at_ms),
    }
    false
}

/// `flash-sale`: every buyer wants one unit of a hot SKU and tries a random location
/// first; when that is out, they look where the SKU is still available and try there,
/// until they get one or it is sold out everywhere.
struct FlashSaleFlow {
    base: Base,
    buyers: Arc<Buyers>,
    ready: VecDeque<Outgoing>,
    out_of_buyers: bool,
}

impl FlashSaleFlow {
    fn buyer_holds(&self, buyer: u64, pick: CellPick, attempts: u32) -> Outgoing {
        let body = self.base.reserve(&[pick]);
        Outgoing { kind: Kind::Hold, body, note: Note::BuyerHolds { buyer, pick, attempts } }
    }

    fn arrive(&mut self, buyer: u64) -> Outgoing {
        // A buyer's wish depends only on the seed and their number, not on which slot
        // serves them.
        let mut rng = Rng::new(self.base.catalogue.spec.seed ^ buyer.wrapping_mul(0x9e37_79b9));
        let catalogue = &self.base.catalogue;
        let sku = rng.below(catalogue.sku_count() as u64) as u32;
        let at = catalogue.stocked_at(sku as usize);
        let location = at[rng.below(at.len() as u64) as usize];
        self.buyer_holds(buyer, CellPick { sku, location }, 1)
    }

    fn looked(
        &mut self,
        buyer: u64,
        sku: u32,
        attempts: u32,
        answer: &Answer,
        ledger: &mut Ledger,
    ) {
        let Ok(Reply::Cells(cells)) = answer else {
            ledger.tally.gave_up += 1;
            return;
        };
        let open: Vec<&str> = cells
            .iter()
            .filter(|cell| cell.available >= i64::from(UNITS_PER_LINE))
            .map(|cell| cell.location.as_str())
            .collect();
        if open.is_empty() {
            ledger.tally.sold_out += 1;
            return;
        }
        // Spread retrying buyers over the open locations, the same way for the same buyer.
        let code = open[(buyer as usize + attempts as usize) % open.len()];
        let Some(location) = self.base.catalogue.location_index(code) else {
            ledger.tally.gave_up += 1;
            return;
        };
        let next = self.buyer_holds(buyer, CellPick { sku, location }, attempts + 1);
        self.ready.push_back(next);
    }
}

impl Flow for FlashSaleFlow {
    fn next(&mut self) -> Option<Outgoing> {
        if let Some(ready) = self.ready.pop_front() {
            return Some(ready);
        }
        if self.out_of_buyers {
            return None;
        }
        match self.buyers.claim() {
            Some(buyer) => Some(self.arrive(buyer)),
            None => {
                self.out_of_buyers = true;
                None
            }
        }
    }

    fn answer(&mut self, note: Note, answer: &Answer, ledger: &mut Ledger) {
        match note {
            Note::BuyerHolds { buyer, pick, attempts } => match answer {
                Ok(Reply::HoldPlaced { hold, .. }) => {
                    ledger.hold_acked(*hold, &[pick]);
                    ledger.stays_held(*hold);
                    ledger.tally.sold += 1;
                }
                Err(ClientError::Server(error))
                    if matches!(error.code, ErrorCode::InsufficientStock { .. })
                        && attempts < FLASH_SALE_ATTEMPTS_MAX =>
                {
                    let body = self.base.availability(pick.sku);
                    let note = Note::BuyerLooks { buyer, sku: pick.sku, attempts };
                    self.ready.push_back(Outgoing { kind: Kind::Read, body, note });
                }
                Err(error) if error.is_outcome_unknown() => ledger.hold_unknown(&[pick]),
                Err(_) | Ok(_) => ledger.tally.gave_up += 1,
            },
            Note::BuyerLooks { buyer, sku, attempts } => {
                self.looked(buyer, sku, attempts, answer, ledger);
            }
            Note::Hold { .. }
            | Note::Read
            | Note::Resolve { .. }
            | Note::Ship { .. }
            | Note::Order { .. } => {}
        }
    }

    fn finished(&self) -> bool {
        self.out_of_buyers && self.ready.is_empty()
    }

    fn wind_down(&mut self) {
        // Buyers already served keep trying; no new ones arrive.
        self.out_of_buyers = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::args::{Args, Settings};
    use clap::Parser;

    fn settings(workload: &str, seed: u64) -> Settings {
        let seed = seed.to_string();
        let args = Args::parse_from([
            "allot-bench",
            "--embedded",
            "--workload",
            workload,
            "--seed",
            &seed,
            "--skus",
            "300",
            "--locations",
            "12",
            "--stocked-per-sku",
            "4",
        ]);
        Settings::resolve(&args).unwrap()
    }

    fn catalogue(settings: &Settings) -> Arc<Catalogue> {
        Arc::new(crate::harness::catalogue(settings))
    }

    /// Hold ids handed out by a pretend server.
    struct Server {
        next_hold: HoldId,
    }

    impl Server {
        /// Answers as a server with plenty of stock would.
        fn answer(&mut self, outgoing: &Outgoing) -> Answer {
            Ok(match &outgoing.body {
                RequestBody::Command { command: Command::Reserve { .. }, .. } => {
                    self.next_hold += 1;
                    Reply::HoldPlaced { hold: self.next_hold, expires_at_ms: 1_000 }
                }
                RequestBody::Command { command: Command::CommitHold { hold, .. }, .. } => {
                    Reply::HoldCommitted { hold: *hold }
                }
                RequestBody::Command {
                    command: Command::ConsumeCommitted { hold, .. }, ..
                } => Reply::CommittedSettled { hold: *hold, units_committed: 0 },
                RequestBody::Command { command: Command::ReleaseHold { hold, .. }, .. } => {
                    Reply::HoldReleased {
                        hold: *hold,
                        state: HoldState::Resolved(Resolution::Released),
                        units_held: 0,
                    }
                }
                _ => Reply::Cells(vec![]),
            })
        }
    }

    use allot_protocol::HoldState;

    /// The first `count` requests a flow sends, answered by a pretend server.
    fn drive(settings: &Settings, stream: u64, count: usize) -> (Vec<RequestBody>, Ledger) {
        let catalogue = catalogue(settings);
        let buyers = Arc::new(Buyers::new(settings.buyers.unwrap_or(0)));
        let mut flow = flow(settings, &catalogue, stream, &buyers);
        let mut server = Server { next_hold: 0 };
        let mut ledger = Ledger::new(None);
        let mut sent = Vec::new();
        while sent.len() < count {
            let Some(outgoing) = flow.next() else { break };
            let answer = server.answer(&outgoing);
            sent.push(outgoing.body.clone());
            flow.answer(outgoing.note, &answer, &mut ledger);
        }
        (sent, ledger)
    }

    #[test]
    fn same_seed_and_stream_send_the_same_requests() {
        for workload in ["hold", "checkout", "flash-sale"] {
            let (first, _) = drive(&settings(workload, 5), 3, 2_000);
            let (again, _) = drive(&settings(workload, 5), 3, 2_000);
            assert_eq!(first.len(), 2_000, "{workload}");
            assert_eq!(first, again, "{workload}");
            let (other_seed, _) = drive(&settings(workload, 6), 3, 2_000);
            assert_ne!(first, other_seed, "{workload}");
        }
        let (stream_3, _) = drive(&settings("checkout", 5), 3, 500);
        let (stream_4, _) = drive(&settings("checkout", 5), 4, 500);
        assert_ne!(stream_3, stream_4, "streams are independent");
    }

    #[test]
    fn checkout_reads_ten_times_per_hold_and_resolves_as_designed() {
        let (sent, ledger) = drive(&settings("checkout", 1), 0, 120_000);
        let is_read =
            |body: &&RequestBody| matches!(body, RequestBody::Query(Query::SkuStock { .. }));
        let reads = sent.iter().filter(is_read).count() as f64;
        let holds = ledger.tally.holds_acked as f64;
        assert!((reads / holds - 10.0).abs() < 0.01, "{reads} reads for {holds} holds");
        let share = |count: u64| count as f64 / holds;
        assert!(
            (share(ledger.tally.commits_acked) - 0.7).abs() < 0.02,
            "{}",
            share(ledger.tally.commits_acked)
        );
        assert!(
            (share(ledger.tally.releases_acked) - 0.2).abs() < 0.02,
            "{}",
            share(ledger.tally.releases_acked)
        );
        assert!(
            (share(ledger.tally.expiries) - 0.1).abs() < 0.02,
            "{}",
            share(ledger.tally.expiries)
        );
        let lines: Vec<usize> = sent
            .iter()
            .filter_map(|body| match body {
                RequestBody::Command { command: Command::Reserve { lines, .. }, .. } => {
                    Some(lines.len())
                }
                _ => None,
            })
            .collect();
        assert!(lines.iter().all(|&count| (1..=5).contains(&count)));
        assert!((1..=5).all(|size| lines.contains(&size)), "every cart size occurs");
    }

    #[test]
    fn checkout_ships_every_committed_hold_but_the_last_few_so_allocated_does_not_grow() {
        let (sent, ledger) = drive(&settings("checkout", 1), 0, 60_000);
        let committed: Vec<HoldId> = (sent.iter())
            .filter_map(|body| match body {
                RequestBody::Command { command: Command::CommitHold { hold, .. }, .. } => {
                    Some(*hold)
                }
                _ => None,
            })
            .collect();
        let shipped: Vec<HoldId> = (sent.iter())
            .filter_map(|body| match body {
                RequestBody::Command {
                    command: Command::ConsumeCommitted { hold, lines }, ..
                } => {
                    assert!(lines.is_empty(), "a shipment takes every committed unit");
                    Some(*hold)
                }
                _ => None,
            })
            .collect();
        assert!(committed.len() > 1_000, "{}", committed.len());
        assert_eq!(shipped, committed[..shipped.len()], "shipped oldest first, each once");
        let unshipped = committed.len() - shipped.len();
        assert!(unshipped <= CHECKOUT_UNSHIPPED_COMMITS_MAX + 1, "{unshipped} waiting");
        assert_eq!(ledger.tally.consumes_acked, shipped.len() as u64);
        // What is still allocated anywhere is the few holds waiting to ship.
        let allocated: i64 = ledger.cells.values().map(|expect| expect.allocated).sum();
        let units_max = (unshipped * crate::CHECKOUT_CART_LINES_MAX) as i64;
        assert!((0..=units_max * i64::from(UNITS_PER_LINE)).contains(&allocated), "{allocated}");
    }

    #[test]
    fn winding_down_sends_only_follow_ups() {
        let settings = settings("checkout", 2);
        let catalogue = catalogue(&settings);
        let buyers = Arc::new(Buyers::new(0));
        let mut flow = flow(&settings, &catalogue, 0, &buyers);
        let mut server = Server { next_hold: 0 };
        let mut ledger = Ledger::new(None);
        // Send the first cart up to its hold, answer it, then stop the run.
        loop {
            let outgoing = flow.next().unwrap();
            let is_hold = outgoing.kind == Kind::Hold;
            let answer = server.answer(&outgoing);
            flow.answer(outgoing.note, &answer, &mut ledger);
            if is_hold {
                break;
            }
        }
        flow.wind_down();
        let mut rest = Vec::new();
        while let Some(outgoing) = flow.next() {
            rest.push(outgoing.kind);
        }
        assert!(rest.len() <= 1, "{rest:?}");
        assert!(rest.iter().all(|kind| matches!(kind, Kind::Commit | Kind::Release)));
        assert!(flow.finished());
    }

    #[test]
    fn a_buyer_wants_the_same_cell_whichever_slot_serves_them() {
        let settings = settings("flash-sale", 9);
        let catalogue = catalogue(&settings);
        let buyers = Arc::new(Buyers::new(10));
        let first = Base::new(&settings, &catalogue, 0);
        let second = Base::new(&settings, &catalogue, 7);
        let mut a = FlashSaleFlow {
            base: first,
            buyers: buyers.clone(),
            ready: VecDeque::new(),
            out_of_buyers: false,
        };
        let mut b =
            FlashSaleFlow { base: second, buyers, ready: VecDeque::new(), out_of_buyers: false };
        assert_eq!(a.arrive(4), b.arrive(4));
        assert_ne!(a.arrive(4).note, a.arrive(5).note);
    }

    #[test]
    fn flash_sale_buyers_look_elsewhere_then_stop_when_sold_out() {
        let settings = settings("flash-sale", 3);
        let catalogue = catalogue(&settings);
        let buyers = Arc::new(Buyers::new(1));
        let mut flow = flow(&settings, &catalogue, 0, &buyers);
        let mut ledger = Ledger::new(None);
        let first = flow.next().unwrap();
        let Note::BuyerHolds { pick, .. } = first.note else { panic!("{first:?}") };
        let out = Err(ClientError::Server(allot_protocol::Error::new(
            ErrorCode::InsufficientStock { line: 0, available: 0 },
            "out",
        )));
        flow.answer(first.note, &out, &mut ledger);
        let look = flow.next().unwrap();
        assert_eq!(look.kind, Kind::Read);
        // Another location still has one unit: the buyer goes there.
        let elsewhere = allot_protocol::CellView {
            sku: catalogue.sku(pick.sku as usize).to_owned(),
            location: catalogue.location_code(((pick.location + 1) % 12) as usize).to_owned(),
            on_hand: 1,
            held: 0,
            allocated: 0,
            safety_stock: 0,
            available: 1,
        };
        flow.answer(look.note, &Ok(Reply::Cells(vec![elsewhere.clone()])), &mut ledger);
        let second = flow.next().unwrap();
        let Note::BuyerHolds { pick: second_pick, attempts, .. } = second.note else { panic!() };
        assert_eq!((second_pick.location, attempts), ((pick.location + 1) % 12, 2));
        flow.answer(second.note, &out, &mut ledger);
        let look = flow.next().unwrap();
        let gone = allot_protocol::CellView { available: 0, held: 1, ..elsewhere };
        flow.answer(look.note, &Ok(Reply::Cells(vec![gone])), &mut ledger);
        assert!(flow.next().is_none());
        assert!(flow.finished());
        assert_eq!((ledger.tally.sold, ledger.tally.sold_out, ledger.tally.gave_up), (0, 1, 0));
    }
}
