//! Property tests of the pure core: random command sequences over a small universe (three
//! SKUs, three locations, a few holds) run against the engine's `State` and against a
//! plain reference model written here from the design brief. After every step the
//! outcomes, every cell's counters, every hold and the KPI counters must agree, `audit`
//! must pass, and no hold or allocation may push `available` below zero. A second
//! property replays the requests that changed the state into a fresh state, and a
//! snapshot image plus the remaining requests, and checks both reproduce the live state.

use std::collections::{BTreeMap, BTreeSet};

use allot_engine::codec;
use allot_engine::core::{
    Applied, CellView, Command, Counters, EngineError, HoldLineView, HoldState, HoldView,
    LineRequest, LocationKind, LocationSpec, LocationView, Outcome, Query, Reply, Request,
    Resolution, ShippingCost, State,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

// ---------------------------------------------------------------------------------------
// The rules, restated from DESIGN §2 and the limits the engine documents
// ---------------------------------------------------------------------------------------

const START_MS: u64 = 1_700_000_000_000;
const SECOND_MS: u64 = 1_000;
const MINUTE_MS: u64 = 60 * SECOND_MS;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const TTL_MIN_MS: u64 = SECOND_MS;
const TTL_DEFAULT_MS: u64 = 15 * MINUTE_MS;
const TTL_MAX_MS: u64 = 24 * HOUR_MS;
const RESOLVED_KEPT_MS: u64 = HOUR_MS;
const KEY_KEPT_MS: u64 = HOUR_MS;
const LINES_MAX: usize = 64;
const LINE_QUANTITY_MAX: u32 = 1_000_000;
const LEVEL_MAX: i64 = 1_000_000_000;

/// SKUs of the universe; the last one is unknown until a movement creates it.
const SKUS: [&str; 4] = ["s0", "s1", "s2", "s3"];
/// Locations of the universe; the last one is never created.
const LOCATIONS: [&str; 4] = ["L0", "L1", "L2", "LX"];
const CREATED_LOCATIONS: usize = 3;
/// Idempotency keys: a small pool so that keys are reused, plus two malformed ones.
const KEYS: usize = 16;

fn location_spec(code: &str, active: bool) -> LocationSpec {
    LocationSpec {
        code: code.to_owned(),
        name: format!("site {code}"),
        kind: if code == "L2" { LocationKind::Store } else { LocationKind::Warehouse },
        latitude_e6: 48_850_000,
        longitude_e6: 2_350_000,
        ships: true,
        pickup: code == "L2",
        daily_capacity: 100,
        shipping_cost: ShippingCost { base_minor: 500, per_km_minor: 3, currency: "EUR".into() },
        priority: 1,
        active,
    }
}

fn key_name(key: usize) -> String {
    match key {
        k if k < KEYS => format!("k{k}"),
        k if k == KEYS => String::new(),
        _ => "k".repeat(65),
    }
}

fn text_ok(value: &str, bytes_max: usize) -> bool {
    !value.is_empty() && value.len() <= bytes_max && !value.chars().any(char::is_control)
}

fn invalid() -> EngineError {
    EngineError::InvalidArgument(String::new())
}

fn not_found() -> EngineError {
    EngineError::NotFound(String::new())
}

/// Error messages are for people; the variant and its values are the contract.
fn normalize(outcome: &Outcome) -> Outcome {
    match outcome {
        Err(EngineError::InvalidArgument(_)) => Err(invalid()),
        Err(EngineError::NotFound(_)) => Err(not_found()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ModelCell {
    on_hand: i64,
    held: i64,
    allocated: i64,
    safety_stock: i64,
}

impl ModelCell {
    fn available(&self) -> i64 {
        self.on_hand - self.held - self.allocated - self.safety_stock
    }
}

#[derive(Debug, Clone)]
struct ModelHold {
    /// (sku, location, quantity), one entry per cell, in order of first appearance.
    lines: Vec<(String, String, u32)>,
    state: HoldState,
    created_at_ms: u64,
    expires_at_ms: u64,
    resolved_at_ms: Option<u64>,
    /// When the hold's retention started: at release or expiry, and for a hold committed
    /// outside allot only once every committed unit was consumed or released.
    kept_from_ms: Option<u64>,
    order_number: Option<String>,
}

type CellKey = (String, String);

#[derive(Debug, Clone, Default)]
struct Model {
    skus: BTreeSet<String>,
    locations: BTreeMap<String, LocationSpec>,
    /// Cells that exist (a movement touched them); others read as zeros.
    cells: BTreeMap<CellKey, ModelCell>,
    holds: BTreeMap<u64, ModelHold>,
    last_hold_id: u64,
    /// Every hold id handed out, oldest first (for picking holds in generated steps).
    issued: Vec<u64>,
    keys: BTreeMap<String, (Command, Reply, u64)>,
    counters: Counters,
}

impl Model {
    /// Applies a request: returns the outcome and whether the state changed.
    fn apply(&mut self, request: &Request, now: u64) -> (Outcome, bool) {
        let Some(key) = &request.idempotency_key else {
            return self.attempt(&request.command, now);
        };
        if matches!(request.command, Command::Tick) || !text_ok(key, 64) {
            return (Err(invalid()), false);
        }
        if let Some((command, reply, _)) = self.keys.get(key) {
            if *command == request.command {
                return (Ok(self.retried(reply)), false);
            }
            return (Err(EngineError::IdempotencyConflict), false);
        }
        let (outcome, changed) = self.attempt(&request.command, now);
        if let Ok(reply) = &outcome {
            self.keys.insert(key.clone(), (request.command.clone(), reply.clone(), now));
        }
        (outcome, changed)
    }

    /// The answer to a retry under a remembered key: cells and locations as they are
    /// now, every other reply as it was (docs/protocol.md §10.4).
    fn retried(&self, reply: &Reply) -> Reply {
        match reply {
            Reply::Cell(view) => Reply::Cell(self.cell_view(&view.sku, &view.location)),
            Reply::Transferred { from, to } => Reply::Transferred {
                from: self.cell_view(&from.sku, &from.location),
                to: self.cell_view(&to.sku, &to.location),
            },
            Reply::Location(view) => Reply::Location(location_view(&self.locations[&view.code])),
            other => other.clone(),
        }
    }

    /// Runs a command on a copy and keeps the copy only if the command succeeded.
    fn attempt(&mut self, command: &Command, now: u64) -> (Outcome, bool) {
        let mut next = self.clone();
        let outcome = next.execute(command, now);
        let changed = outcome.is_ok();
        if changed {
            *self = next;
        }
        (outcome, changed)
    }

    fn execute(&mut self, command: &Command, now: u64) -> Outcome {
        match command {
            Command::UpsertLocation(spec) => {
                if !text_ok(&spec.code, 32) {
                    return Err(invalid());
                }
                self.locations.insert(spec.code.clone(), spec.clone());
                Ok(Reply::Location(location_view(spec)))
            }
            Command::DeactivateLocation { location } => {
                let spec = self.locations.get_mut(location).ok_or_else(not_found)?;
                spec.active = false;
                Ok(Reply::Location(location_view(spec)))
            }
            Command::Receive { sku, location, quantity } => {
                if *quantity == 0 || *quantity > LINE_QUANTITY_MAX {
                    return Err(invalid());
                }
                self.check_new_cell(sku, location)?;
                let on_hand = self.cell(sku, location).on_hand + i64::from(*quantity);
                self.set_on_hand(sku, location, on_hand)
            }
            Command::Adjust { sku, location, delta, reason } => {
                if *delta == 0 || !text_ok(reason, 128) {
                    return Err(invalid());
                }
                self.check_new_cell(sku, location)?;
                let on_hand = i128::from(self.cell(sku, location).on_hand) + i128::from(*delta);
                if on_hand < 0 {
                    return Err(invalid());
                }
                self.set_on_hand(sku, location, i64::try_from(on_hand).map_err(|_| invalid())?)
            }
            Command::CycleCount { sku, location, expected, counted } => {
                if i64::from(*counted) > LEVEL_MAX {
                    return Err(invalid());
                }
                self.check_new_cell(sku, location)?;
                let actual = self.cell(sku, location).on_hand;
                if actual != i64::from(*expected) {
                    return Err(EngineError::CompareFailed { actual: actual as u32 });
                }
                self.set_on_hand(sku, location, i64::from(*counted))
            }
            Command::SetSafetyStock { sku, location, quantity } => {
                if i64::from(*quantity) > LEVEL_MAX {
                    return Err(invalid());
                }
                self.check_new_cell(sku, location)?;
                self.skus.insert(sku.clone());
                self.cell_mut(sku, location).safety_stock = i64::from(*quantity);
                Ok(Reply::Cell(self.cell_view(sku, location)))
            }
            Command::Transfer { sku, from, to, quantity } => {
                if *quantity == 0 || *quantity > LINE_QUANTITY_MAX || from == to {
                    return Err(invalid());
                }
                if !self.skus.contains(sku) {
                    return Err(not_found());
                }
                if !self.locations.contains_key(from) || !self.locations.contains_key(to) {
                    return Err(not_found());
                }
                let available = self.cell(sku, from).available();
                if available < i64::from(*quantity) {
                    return Err(EngineError::InsufficientStock { line: 0, available });
                }
                if self.cell(sku, to).on_hand + i64::from(*quantity) > LEVEL_MAX {
                    return Err(invalid());
                }
                self.cell_mut(sku, from).on_hand -= i64::from(*quantity);
                self.cell_mut(sku, to).on_hand += i64::from(*quantity);
                Ok(Reply::Transferred {
                    from: self.cell_view(sku, from),
                    to: self.cell_view(sku, to),
                })
            }
            Command::Reserve { lines, ttl_ms } => self.reserve(lines, *ttl_ms, now),
            Command::ExtendHold { hold, ttl_ms } => {
                if !(TTL_MIN_MS..=TTL_MAX_MS).contains(ttl_ms) {
                    return Err(invalid());
                }
                self.live_hold(*hold, now)?;
                let expires_at_ms = now + ttl_ms;
                self.holds.get_mut(hold).expect("live").expires_at_ms = expires_at_ms;
                Ok(Reply::HoldExtended { hold: *hold, expires_at_ms })
            }
            Command::ReleaseHold { hold, lines } => self.release(*hold, lines, now),
            Command::ConsumeCommitted { hold, lines } => self.settle(*hold, lines, true, now),
            Command::ReleaseCommitted { hold, lines } => self.settle(*hold, lines, false, now),
            Command::CommitHold { hold, order_number } => {
                self.live_hold(*hold, now)?;
                if !text_ok(order_number, 64) {
                    return Err(invalid());
                }
                let lines = self.holds[hold].lines.clone();
                for (sku, location, quantity) in &lines {
                    let cell = self.cell_mut(sku, location);
                    cell.held -= i64::from(*quantity);
                    cell.allocated += i64::from(*quantity);
                }
                let record = self.holds.get_mut(hold).expect("live");
                record.state = HoldState::Resolved(Resolution::Committed);
                record.resolved_at_ms = Some(now);
                record.order_number = Some(order_number.clone());
                self.counters.holds_committed += 1;
                Ok(Reply::HoldCommitted { hold: *hold })
            }
            Command::Tick => {
                let mut expired = 0;
                let due: Vec<u64> = (self.holds.iter())
                    .filter(|(_, hold)| {
                        // Expired by the first tick at or after the end of the one-second
                        // bucket the deadline falls in.
                        let bucket_end = (hold.expires_at_ms / SECOND_MS + 1) * SECOND_MS;
                        hold.state == HoldState::Held && bucket_end <= now
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in due {
                    self.give_back(id);
                    let hold = self.holds.get_mut(&id).expect("due");
                    hold.state = HoldState::Resolved(Resolution::Expired);
                    hold.resolved_at_ms = Some(now);
                    hold.kept_from_ms = Some(now);
                    self.counters.holds_expired += 1;
                    expired += 1;
                }
                // Retention counts from the end of the second the record was made in.
                let start = |at: u64| at.div_ceil(SECOND_MS) * SECOND_MS;
                self.holds.retain(|_, hold| {
                    hold.kept_from_ms.is_none_or(|at| start(at) + RESOLVED_KEPT_MS > now)
                });
                self.keys.retain(|_, (_, _, at)| start(*at) + KEY_KEPT_MS > now);
                Ok(Reply::Ticked { expired })
            }
            order => unreachable!("this model draws no {} (orders have their own)", order.name()),
        }
    }

    fn reserve(&mut self, lines: &[LineRequest], ttl_ms: Option<u64>, now: u64) -> Outcome {
        let ttl_ms = ttl_ms.unwrap_or(TTL_DEFAULT_MS);
        if !(TTL_MIN_MS..=TTL_MAX_MS).contains(&ttl_ms)
            || lines.is_empty()
            || lines.len() > LINES_MAX
        {
            return Err(invalid());
        }
        // (sku, location, total, first request line), per cell in order of first appearance.
        let mut cells: Vec<(String, String, u32, usize)> = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            if line.quantity == 0 || line.quantity > LINE_QUANTITY_MAX {
                return Err(invalid());
            }
            if !self.skus.contains(&line.sku) {
                return Err(not_found());
            }
            let spec = self.locations.get(&line.location).ok_or_else(not_found)?;
            if !spec.active {
                return Err(invalid());
            }
            match cells.iter_mut().find(|c| c.0 == line.sku && c.1 == line.location) {
                Some(cell) => cell.2 += line.quantity,
                None => cells.push((line.sku.clone(), line.location.clone(), line.quantity, index)),
            }
        }
        for (sku, location, total, first) in &cells {
            let available = self.cell(sku, location).available();
            if available < i64::from(*total) {
                return Err(EngineError::InsufficientStock { line: *first as u32, available });
            }
        }
        for (sku, location, total, _) in &cells {
            self.cell_mut(sku, location).held += i64::from(*total);
        }
        self.last_hold_id += 1;
        let id = self.last_hold_id;
        let expires_at_ms = now + ttl_ms;
        let lines = cells.into_iter().map(|(sku, location, total, _)| (sku, location, total));
        self.holds.insert(
            id,
            ModelHold {
                lines: lines.collect(),
                state: HoldState::Held,
                created_at_ms: now,
                expires_at_ms,
                resolved_at_ms: None,
                kept_from_ms: None,
                order_number: None,
            },
        );
        self.issued.push(id);
        self.counters.holds_placed += 1;
        Ok(Reply::HoldPlaced { hold: id, expires_at_ms })
    }

    /// Consumes (shipped) or releases (cancelled) units of a hold committed outside.
    fn settle(&mut self, id: u64, lines: &[LineRequest], consume: bool, now: u64) -> Outcome {
        let hold = self.holds.get(&id).ok_or_else(not_found)?;
        let from = |state: &str| EngineError::InvalidTransition { from: state.into() };
        match hold.state {
            HoldState::Held => return Err(from("held")),
            HoldState::Resolved(Resolution::Committed) if hold.lines.is_empty() => {
                return Err(from("settled"));
            }
            HoldState::Resolved(Resolution::Committed) => {}
            HoldState::Resolved(how) => return Err(EngineError::AlreadyResolved { how }),
        }
        let wanted = self.wanted(&hold.lines, lines)?;
        let wanted: BTreeMap<usize, u32> = if lines.is_empty() {
            hold.lines.iter().enumerate().map(|(index, line)| (index, line.2)).collect()
        } else {
            wanted
        };
        for (index, units) in &wanted {
            let (sku, location, _) = &hold.lines[*index];
            let on_hand = self.cells.get(&(sku.clone(), location.clone())).map_or(0, |c| c.on_hand);
            if consume && on_hand < i64::from(*units) {
                return Err(invalid());
            }
        }
        for (index, units) in &wanted {
            let (sku, location, _) = self.holds[&id].lines[*index].clone();
            let cell = self.cell_mut(&sku, &location);
            cell.allocated -= i64::from(*units);
            if consume {
                cell.on_hand -= i64::from(*units);
            }
            self.holds.get_mut(&id).expect("committed").lines[*index].2 -= units;
        }
        let hold = self.holds.get_mut(&id).expect("committed");
        hold.lines.retain(|line| line.2 > 0);
        let units_committed: u64 = hold.lines.iter().map(|line| u64::from(line.2)).sum();
        if units_committed == 0 {
            hold.kept_from_ms = Some(now);
        }
        Ok(Reply::CommittedSettled { hold: id, units_committed })
    }

    /// Units asked of each of `held`'s lines (by index), checked as the engine checks a
    /// partial release.
    fn wanted(
        &self,
        held: &[(String, String, u32)],
        lines: &[LineRequest],
    ) -> Result<BTreeMap<usize, u32>, EngineError> {
        if lines.len() > LINES_MAX {
            return Err(invalid());
        }
        let mut wanted: BTreeMap<usize, u32> = BTreeMap::new();
        for line in lines {
            if line.quantity == 0 || line.quantity > LINE_QUANTITY_MAX {
                return Err(invalid());
            }
            if !self.skus.contains(&line.sku) || !self.locations.contains_key(&line.location) {
                return Err(not_found());
            }
            let index = (held.iter())
                .position(|(sku, location, _)| *sku == line.sku && *location == line.location)
                .ok_or_else(invalid)?;
            *wanted.entry(index).or_default() += line.quantity;
        }
        if wanted.iter().any(|(index, units)| *units > held[*index].2) {
            return Err(invalid());
        }
        Ok(wanted)
    }

    fn release(&mut self, id: u64, lines: &[LineRequest], now: u64) -> Outcome {
        self.live_hold(id, now)?;
        if lines.len() > LINES_MAX {
            return Err(invalid());
        }
        let hold = &self.holds[&id];
        let mut wanted: BTreeMap<usize, u32> = BTreeMap::new();
        for line in lines {
            if line.quantity == 0 || line.quantity > LINE_QUANTITY_MAX {
                return Err(invalid());
            }
            if !self.skus.contains(&line.sku) || !self.locations.contains_key(&line.location) {
                return Err(not_found());
            }
            let index = (hold.lines.iter())
                .position(|(sku, location, _)| *sku == line.sku && *location == line.location)
                .ok_or_else(invalid)?;
            *wanted.entry(index).or_default() += line.quantity;
        }
        if wanted.iter().any(|(index, units)| *units > hold.lines[*index].2) {
            return Err(invalid());
        }
        let total: u64 = hold.lines.iter().map(|line| u64::from(line.2)).sum();
        let released: u64 = wanted.values().map(|units| u64::from(*units)).sum();
        if lines.is_empty() || released == total {
            self.give_back(id);
            let hold = self.holds.get_mut(&id).expect("live");
            hold.state = HoldState::Resolved(Resolution::Released);
            hold.resolved_at_ms = Some(now);
            hold.kept_from_ms = Some(now);
            self.counters.holds_released += 1;
            let state = HoldState::Resolved(Resolution::Released);
            return Ok(Reply::HoldReleased { hold: id, state, units_held: 0 });
        }
        for (index, units) in &wanted {
            let (sku, location, _) = self.holds[&id].lines[*index].clone();
            self.cell_mut(&sku, &location).held -= i64::from(*units);
            self.holds.get_mut(&id).expect("live").lines[*index].2 -= units;
        }
        self.holds.get_mut(&id).expect("live").lines.retain(|line| line.2 > 0);
        let units_held = total - released;
        Ok(Reply::HoldReleased { hold: id, state: HoldState::Held, units_held })
    }

    fn live_hold(&self, id: u64, now: u64) -> Result<(), EngineError> {
        let hold = self.holds.get(&id).ok_or_else(not_found)?;
        match hold.state {
            HoldState::Resolved(how) => Err(EngineError::AlreadyResolved { how }),
            HoldState::Held if hold.expires_at_ms <= now => {
                Err(EngineError::AlreadyResolved { how: Resolution::Expired })
            }
            HoldState::Held => Ok(()),
        }
    }

    /// Returns every unit a hold still holds to its cells.
    fn give_back(&mut self, id: u64) {
        for (sku, location, quantity) in self.holds[&id].lines.clone() {
            self.cell_mut(&sku, &location).held -= i64::from(quantity);
        }
    }

    /// A movement may create a cell: the SKU must be well formed and the location known.
    fn check_new_cell(&self, sku: &str, location: &str) -> Result<(), EngineError> {
        if !text_ok(sku, 64) {
            return Err(invalid());
        }
        if !self.locations.contains_key(location) {
            return Err(not_found());
        }
        Ok(())
    }

    fn set_on_hand(&mut self, sku: &str, location: &str, on_hand: i64) -> Outcome {
        if on_hand > LEVEL_MAX {
            return Err(invalid());
        }
        self.skus.insert(sku.to_owned());
        self.cell_mut(sku, location).on_hand = on_hand;
        Ok(Reply::Cell(self.cell_view(sku, location)))
    }

    fn cell(&self, sku: &str, location: &str) -> ModelCell {
        self.cells.get(&(sku.to_owned(), location.to_owned())).copied().unwrap_or_default()
    }

    fn cell_mut(&mut self, sku: &str, location: &str) -> &mut ModelCell {
        self.cells.entry((sku.to_owned(), location.to_owned())).or_default()
    }

    fn cell_view(&self, sku: &str, location: &str) -> CellView {
        let cell = self.cell(sku, location);
        let level = |value: i64| u32::try_from(value).expect("model counters stay in range");
        CellView {
            sku: sku.to_owned(),
            location: location.to_owned(),
            on_hand: level(cell.on_hand),
            held: level(cell.held),
            allocated: level(cell.allocated),
            safety_stock: level(cell.safety_stock),
            available: cell.available(),
        }
    }

    fn hold_view(&self, id: u64) -> HoldView {
        let hold = &self.holds[&id];
        if hold.kept_from_ms.is_some() {
            // Resolved for good (released, expired or settled): only a tombstone of its
            // state is kept.
            return HoldView {
                hold: id,
                state: hold.state,
                lines: Vec::new(),
                created_at_ms: 0,
                expires_at_ms: 0,
                resolved_at_ms: None,
                order_number: None,
            };
        }
        let mut lines: Vec<HoldLineView> = (hold.lines.iter())
            .map(|(sku, location, quantity)| HoldLineView {
                sku: sku.clone(),
                location: location.clone(),
                quantity: *quantity,
            })
            .collect();
        lines.sort_by(|a, b| (&a.sku, &a.location).cmp(&(&b.sku, &b.location)));
        HoldView {
            hold: id,
            state: hold.state,
            lines,
            created_at_ms: hold.created_at_ms,
            expires_at_ms: hold.expires_at_ms,
            resolved_at_ms: hold.resolved_at_ms,
            order_number: hold.order_number.clone(),
        }
    }
}

fn location_view(spec: &LocationSpec) -> LocationView {
    LocationView {
        code: spec.code.clone(),
        name: spec.name.clone(),
        kind: spec.kind,
        latitude_e6: spec.latitude_e6,
        longitude_e6: spec.longitude_e6,
        ships: spec.ships,
        pickup: spec.pickup,
        daily_capacity: spec.daily_capacity,
        shipping_cost: spec.shipping_cost.clone(),
        priority: spec.priority,
        active: spec.active,
    }
}

// ---------------------------------------------------------------------------------------
// Generated steps
// ---------------------------------------------------------------------------------------

/// A step before it is made concrete: hold picks and release lines are resolved against
/// the model when the step runs, so that they mostly name holds and lines that exist.
#[derive(Debug, Clone)]
enum Op {
    Receive {
        sku: usize,
        location: usize,
        quantity: u32,
    },
    Adjust {
        sku: usize,
        location: usize,
        delta: i64,
        with_reason: bool,
    },
    CycleCount {
        sku: usize,
        location: usize,
        stale: Option<u32>,
        counted: u32,
    },
    SafetyStock {
        sku: usize,
        location: usize,
        quantity: u32,
    },
    Transfer {
        sku: usize,
        from: usize,
        to: usize,
        quantity: u32,
    },
    Reserve {
        lines: Vec<(usize, usize, u32)>,
        shape: Shape,
        ttl_ms: Option<u64>,
    },
    Extend {
        pick: usize,
        ttl_ms: u64,
    },
    Release {
        pick: usize,
        parts: Vec<(usize, Part)>,
        foreign: Option<(usize, usize)>,
    },
    Commit {
        pick: usize,
        order: usize,
    },
    /// Consume or release units of a committed hold.
    Settle {
        pick: usize,
        parts: Vec<(usize, Part)>,
        foreign: Option<(usize, usize)>,
        consume: bool,
    },
    Deactivate {
        location: usize,
    },
    Reactivate {
        location: usize,
    },
    /// Advance the clock by this much more and tick.
    Tick {
        advance_ms: u64,
    },
    /// Send again, unchanged, an earlier request that carried an idempotency key.
    Repeat {
        pick: Index,
    },
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    AsGenerated,
    NoLines,
    TooManyLines,
}

/// How much of a hold line a partial release names.
#[derive(Debug, Clone, Copy)]
enum Part {
    Zero,
    Some(u32),
    Whole,
    OverWhole,
}

#[derive(Debug, Clone)]
struct Step {
    /// Milliseconds the clock moves before the step.
    dt_ms: u64,
    key: Option<usize>,
    op: Op,
}

// Leaf choices are a plain range mapped to a value rather than weighted unions: a union
// forks the test runner for every arm it does not pick, which makes generating thousands
// of steps per case slow in a debug build.

/// s0..s2 mostly; now and then s3, which exists only once a movement created it.
fn sku() -> impl Strategy<Value = usize> {
    (0..25usize).prop_map(|n| if n == 24 { 3 } else { n % 3 })
}

/// L0..L2 mostly; now and then LX, which never exists.
fn location() -> impl Strategy<Value = usize> {
    (0..25usize).prop_map(|n| if n == 24 { 3 } else { n % CREATED_LOCATIONS })
}

/// A short hold mostly, so that holds expire within a run; now and then the limits.
fn ttl() -> impl Strategy<Value = u64> {
    (0..27u8, TTL_MIN_MS..=6 * SECOND_MS).prop_map(|(kind, ttl)| match kind {
        0 => TTL_MIN_MS - 1,
        1 => TTL_MAX_MS + 1,
        2 => TTL_MAX_MS,
        _ => ttl,
    })
}

/// `None` (the default TTL) one time in five.
fn hold_ttl() -> impl Strategy<Value = Option<u64>> {
    (0..5u8, ttl()).prop_map(|(kind, ttl)| (kind > 0).then_some(ttl))
}

fn hold_pick() -> impl Strategy<Value = usize> {
    0..8usize
}

/// A movement quantity: zero (invalid) one time in thirteen.
fn quantity() -> impl Strategy<Value = u32> {
    0..=12u32
}

fn line() -> impl Strategy<Value = (usize, usize, u32)> {
    let quantity = (0..41u8, 1..=5u32).prop_map(|(kind, n)| if kind == 0 { 0 } else { n });
    (sku(), location(), quantity)
}

fn shape() -> impl Strategy<Value = Shape> {
    (0..32u8).prop_map(|kind| match kind {
        0 => Shape::NoLines,
        1 => Shape::TooManyLines,
        _ => Shape::AsGenerated,
    })
}

fn part() -> impl Strategy<Value = Part> {
    (0..10u8, 1..100u32).prop_map(|(kind, n)| match kind {
        0 => Part::Zero,
        1 => Part::OverWhole,
        2 | 3 => Part::Whole,
        _ => Part::Some(n),
    })
}

/// Mostly a few seconds; now and then past the default TTL, the retention of resolved
/// holds, or the retention of idempotency keys.
fn advance() -> impl Strategy<Value = u64> {
    (0..44u8, any::<u64>()).prop_map(|(kind, n)| match kind {
        0 | 1 => 14 * MINUTE_MS + n % (3 * MINUTE_MS),
        2 => HOUR_MS + n % (10 * MINUTE_MS),
        3 => 24 * HOUR_MS - 2 * SECOND_MS + n % (4 * SECOND_MS),
        _ => n % (4 * SECOND_MS),
    })
}

/// Stock movements.
fn stock_op() -> impl Strategy<Value = Op> {
    let stale = (0..10u8, 0..20u32).prop_map(|(kind, n)| (kind < 3).then_some(n));
    prop_oneof![
        6 => (sku(), location(), quantity())
            .prop_map(|(sku, location, quantity)| Op::Receive { sku, location, quantity }),
        3 => (sku(), location(), -12..=12i64, prop::bool::weighted(0.9)).prop_map(
            |(sku, location, delta, with_reason)| Op::Adjust { sku, location, delta, with_reason }
        ),
        2 => (sku(), location(), stale, 0..20u32).prop_map(
            |(sku, location, stale, counted)| Op::CycleCount { sku, location, stale, counted }
        ),
        2 => (sku(), location(), 0..6u32)
            .prop_map(|(sku, location, quantity)| Op::SafetyStock { sku, location, quantity }),
        3 => (sku(), location(), location(), quantity())
            .prop_map(|(sku, from, to, quantity)| Op::Transfer { sku, from, to, quantity }),
    ]
}

/// Holds, ticks and repeats of keyed requests.
fn hold_op() -> impl Strategy<Value = Op> {
    // An empty list releases the whole hold.
    let parts = vec((0..4usize, part()), 0..=3);
    let foreign = (0..10u8, sku(), location())
        .prop_map(|(kind, sku, location)| (kind == 0).then_some((sku, location)));
    let order = (0..13usize).prop_map(|n| if n == 12 { 3 } else { n % 3 });
    let parts_settled = vec((0..4usize, part()), 0..=3);
    let foreign_settled = (0..10u8, sku(), location())
        .prop_map(|(kind, sku, location)| (kind == 0).then_some((sku, location)));
    prop_oneof![
        14 => (vec(line(), 1..=4), shape(), hold_ttl())
            .prop_map(|(lines, shape, ttl_ms)| Op::Reserve { lines, shape, ttl_ms }),
        4 => (hold_pick(), ttl()).prop_map(|(pick, ttl_ms)| Op::Extend { pick, ttl_ms }),
        5 => (hold_pick(), parts, foreign)
            .prop_map(|(pick, parts, foreign)| Op::Release { pick, parts, foreign }),
        4 => (hold_pick(), order).prop_map(|(pick, order)| Op::Commit { pick, order }),
        4 => (hold_pick(), parts_settled, foreign_settled, any::<bool>()).prop_map(
            |(pick, parts, foreign, consume)| Op::Settle { pick, parts, foreign, consume }
        ),
        6 => advance().prop_map(|advance_ms| Op::Tick { advance_ms }),
        2 => any::<Index>().prop_map(|pick| Op::Repeat { pick }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        16 => stock_op(),
        35 => hold_op(),
        // L0 and L1 stay active; L2 comes and goes.
        1 => (0..4usize).prop_map(|n| Op::Deactivate { location: if n == 3 { 3 } else { 2 } }),
        2 => Just(Op::Reactivate { location: 2 }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let dt_ms = (0..10u8, 0..2_500u64).prop_map(|(kind, n)| match kind {
        0..3 => 0,
        3 => 300 + n % 2_200,
        _ => n % 300,
    });
    // One request in four carries a key; now and then a malformed one.
    let key = (0..4 * (KEYS + 1), 0..=1usize).prop_map(|(n, malformed)| match n {
        n if n < KEYS => Some(n),
        n if n == KEYS => Some(KEYS + malformed),
        _ => None,
    });
    (dt_ms, key, op()).prop_map(|(dt_ms, key, op)| Step { dt_ms, key, op })
}

/// Opening stock: units received at each of the nine cells of s0..s2 × L0..L2.
fn opening_stock() -> impl Strategy<Value = Vec<u32>> {
    vec(0..10u32, 9)
}

// ---------------------------------------------------------------------------------------
// Running the engine and the model side by side
// ---------------------------------------------------------------------------------------

/// One applied request, as the live engine saw it.
struct Record {
    request: Request,
    now_ms: u64,
    applied: Applied,
    /// The encoded image of the state after it (kept only when asked for).
    image: Vec<u8>,
}

struct Harness {
    engine: State,
    model: Model,
    now_ms: u64,
    /// Compare outcomes and every table with the model after every step; off when only
    /// the trace is wanted (the model then only steers the generated steps).
    compare: bool,
    /// Keep the image of the state after every step.
    images: bool,
    keyed: Vec<Request>,
    trace: Vec<Record>,
}

impl Harness {
    fn new(compare: bool) -> Harness {
        Harness {
            engine: State::new(),
            model: Model::default(),
            now_ms: START_MS,
            compare,
            images: !compare,
            keyed: Vec::new(),
            trace: Vec::new(),
        }
    }

    fn run(&mut self, opening: &[u32], steps: &[Step]) -> Result<(), TestCaseError> {
        for code in &LOCATIONS[..CREATED_LOCATIONS] {
            self.submit(Request::new(Command::UpsertLocation(location_spec(code, true))))?;
        }
        for (index, quantity) in opening.iter().enumerate() {
            let sku = SKUS[index / CREATED_LOCATIONS].to_owned();
            let location = LOCATIONS[index % CREATED_LOCATIONS].to_owned();
            self.submit(Request::new(Command::Receive { sku, location, quantity: *quantity }))?;
        }
        for step in steps {
            self.now_ms += step.dt_ms;
            if let Op::Tick { advance_ms } = step.op {
                self.now_ms += advance_ms;
            }
            if let Some(request) = self.concrete(step) {
                self.submit(request)?;
            }
        }
        Ok(())
    }

    /// Turns a generated step into a request, reading holds from the model.
    fn concrete(&self, step: &Step) -> Option<Request> {
        let model = &self.model;
        let command = match &step.op {
            Op::Receive { sku, location, quantity } => Command::Receive {
                sku: SKUS[*sku].into(),
                location: LOCATIONS[*location].into(),
                quantity: *quantity,
            },
            Op::Adjust { sku, location, delta, with_reason } => Command::Adjust {
                sku: SKUS[*sku].into(),
                location: LOCATIONS[*location].into(),
                delta: *delta,
                reason: if *with_reason { "damaged in store" } else { "" }.into(),
            },
            Op::CycleCount { sku, location, stale, counted } => {
                let actual = model.cell(SKUS[*sku], LOCATIONS[*location]).on_hand as u32;
                Command::CycleCount {
                    sku: SKUS[*sku].into(),
                    location: LOCATIONS[*location].into(),
                    expected: stale.unwrap_or(actual),
                    counted: *counted,
                }
            }
            Op::SafetyStock { sku, location, quantity } => Command::SetSafetyStock {
                sku: SKUS[*sku].into(),
                location: LOCATIONS[*location].into(),
                quantity: *quantity,
            },
            Op::Transfer { sku, from, to, quantity } => Command::Transfer {
                sku: SKUS[*sku].into(),
                from: LOCATIONS[*from].into(),
                to: LOCATIONS[*to].into(),
                quantity: *quantity,
            },
            Op::Reserve { lines, shape, ttl_ms } => {
                let mut lines: Vec<LineRequest> = (lines.iter())
                    .map(|(sku, location, quantity)| LineRequest {
                        sku: SKUS[*sku].into(),
                        location: LOCATIONS[*location].into(),
                        quantity: *quantity,
                    })
                    .collect();
                match shape {
                    Shape::AsGenerated => {}
                    Shape::NoLines => lines.clear(),
                    Shape::TooManyLines => lines = vec![lines[0].clone(); LINES_MAX + 1],
                }
                Command::Reserve { lines, ttl_ms: *ttl_ms }
            }
            Op::Extend { pick, ttl_ms } => {
                Command::ExtendHold { hold: self.pick_hold(*pick), ttl_ms: *ttl_ms }
            }
            Op::Release { pick, parts, foreign } => {
                let hold = self.pick_hold(*pick);
                let lines = self.part_lines(model, hold, parts, foreign);
                Command::ReleaseHold { hold, lines }
            }
            Op::Settle { pick, parts, foreign, consume } => {
                let hold = self.pick_hold(*pick);
                let lines = self.part_lines(model, hold, parts, foreign);
                if *consume {
                    Command::ConsumeCommitted { hold, lines }
                } else {
                    Command::ReleaseCommitted { hold, lines }
                }
            }
            Op::Commit { pick, order } => {
                let order_number =
                    if *order < 3 { format!("order-{order}") } else { String::new() };
                Command::CommitHold { hold: self.pick_hold(*pick), order_number }
            }
            Op::Deactivate { location } => {
                Command::DeactivateLocation { location: LOCATIONS[*location].into() }
            }
            Op::Reactivate { location } => {
                Command::UpsertLocation(location_spec(LOCATIONS[*location], true))
            }
            Op::Tick { .. } => Command::Tick,
            Op::Repeat { pick } => {
                if self.keyed.is_empty() {
                    return None;
                }
                return Some(pick.get(&self.keyed).clone());
            }
        };
        // A tick never carries a key; send one with a key only now and then.
        let key = match (&step.op, step.key) {
            (Op::Tick { .. }, Some(key)) if key != 0 => None,
            (_, key) => key.map(key_name),
        };
        Some(Request { idempotency_key: key, command })
    }

    /// Request lines naming parts of `hold`'s lines (whole, some, none or too many units),
    /// and now and then a line of a cell it does not have.
    fn part_lines(
        &self,
        model: &Model,
        hold: u64,
        parts: &[(usize, Part)],
        foreign: &Option<(usize, usize)>,
    ) -> Vec<LineRequest> {
        let held = model.holds.get(&hold).map(|hold| hold.lines.clone()).unwrap_or_default();
        let held = if held.is_empty() { vec![("s0".into(), "L0".into(), 1)] } else { held };
        let mut lines: Vec<LineRequest> = (parts.iter())
            .map(|(index, part)| {
                let (sku, location, quantity) = held[index % held.len()].clone();
                let quantity = match part {
                    Part::Zero => 0,
                    Part::Some(n) => 1 + n % quantity,
                    Part::Whole => quantity,
                    Part::OverWhole => quantity + 1,
                };
                LineRequest { sku, location, quantity }
            })
            .collect();
        if let Some((sku, location)) = foreign {
            let sku = SKUS[*sku].into();
            lines.push(LineRequest { sku, location: LOCATIONS[*location].into(), quantity: 1 });
        }
        lines
    }

    /// Half the time a hold the model still holds, else a recent one whatever its state;
    /// now and then one that never existed.
    fn pick_hold(&self, pick: usize) -> u64 {
        let model = &self.model;
        let held: Vec<u64> = (model.holds.iter())
            .filter(|(_, hold)| hold.state == HoldState::Held)
            .map(|(id, _)| *id)
            .collect();
        let issued = &model.issued;
        match pick {
            0..4 if !held.is_empty() => held[held.len() - 1 - pick % held.len()],
            0..7 if !issued.is_empty() => issued[issued.len() - 1 - pick % issued.len().min(6)],
            _ => model.last_hold_id + 1 + pick as u64,
        }
    }

    fn submit(&mut self, request: Request) -> Result<(), TestCaseError> {
        let now = self.now_ms;
        let before = if self.compare { Some(self.model.clone()) } else { None };
        let applied = self.engine.apply(&request, now);
        let (expected, expected_changed) = self.model.apply(&request, now);
        if let Err(problem) = self.engine.audit() {
            return Err(TestCaseError::fail(format!("audit after {request:?}: {problem}")));
        }
        if let Some(before) = before {
            prop_assert_eq!(
                normalize(&applied.outcome),
                expected,
                "outcome of {:?} at +{} ms",
                request,
                now - START_MS
            );
            if let Err(EngineError::InvalidArgument(message) | EngineError::NotFound(message)) =
                &applied.outcome
            {
                prop_assert!(!message.is_empty(), "an error says what is wrong");
            }
            prop_assert_eq!(applied.changed, expected_changed, "changed flag of {:?}", request);
            self.compare_state(&request, &before)?;
        }
        if request.idempotency_key.is_some() {
            self.keyed.push(request.clone());
        }
        let image = if self.images { codec::encode_state(&self.engine) } else { Vec::new() };
        self.trace.push(Record { request, now_ms: now, applied, image });
        Ok(())
    }

    /// Every cell, every hold and the counters of the engine equal the model's; no hold,
    /// allocation or transfer pushed a cell's `available` down below zero.
    fn compare_state(&self, request: &Request, before: &Model) -> Result<(), TestCaseError> {
        let model = &self.model;
        let engine = &self.engine;
        let may_short = matches!(
            request.command,
            Command::Adjust { .. } | Command::CycleCount { .. } | Command::SetSafetyStock { .. }
        );
        for sku in SKUS {
            for location in LOCATIONS {
                let query = Query::Cell { sku: sku.into(), location: location.into() };
                let actual = engine.query(&query);
                if !model.skus.contains(sku) || !model.locations.contains_key(location) {
                    prop_assert_eq!(normalize(&actual), Err(not_found()), "{:?}", query);
                    continue;
                }
                let expected = model.cell_view(sku, location);
                prop_assert_eq!(&actual, &Ok(Reply::Cell(expected.clone())), "after {:?}", request);
                let was = before.cell(sku, location).available();
                if expected.available < 0 && !may_short {
                    prop_assert!(
                        expected.available >= was,
                        "{:?} pushed ({}, {}) from {} to {} available",
                        request,
                        sku,
                        location,
                        was,
                        expected.available
                    );
                }
            }
            let stock = engine.query(&Query::SkuStock { sku: sku.into() });
            if model.skus.contains(sku) {
                let cells: Vec<CellView> = (model.cells.keys())
                    .filter(|(cell_sku, _)| cell_sku == sku)
                    .map(|(_, location)| model.cell_view(sku, location))
                    .collect();
                prop_assert_eq!(stock, Ok(Reply::Cells(cells)), "stock of {}", sku);
            } else {
                prop_assert_eq!(normalize(&stock), Err(not_found()));
            }
        }
        let short: Vec<CellView> = (model.cells.iter())
            .filter(|(_, cell)| cell.available() < 0)
            .map(|((sku, location), _)| model.cell_view(sku, location))
            .collect();
        prop_assert_eq!(engine.query(&Query::Shortages), Ok(Reply::Cells(short)));
        for id in 0..=model.last_hold_id + 1 {
            let actual = engine.query(&Query::Hold { hold: id });
            match model.holds.get(&id) {
                None => prop_assert_eq!(normalize(&actual), Err(not_found()), "hold {}", id),
                Some(_) => {
                    let Ok(Reply::Hold(mut view)) = actual else {
                        return Err(TestCaseError::fail(format!("hold {id}: {actual:?}")));
                    };
                    view.lines.sort_by(|a, b| (&a.sku, &a.location).cmp(&(&b.sku, &b.location)));
                    prop_assert_eq!(view, model.hold_view(id), "after {:?}", request);
                }
            }
        }
        // Resolved holds are tombstones outside the table; only the others count.
        let in_table = model.holds.values().filter(|hold| hold.kept_from_ms.is_none());
        prop_assert_eq!(engine.hold_count(), in_table.count());
        prop_assert_eq!(engine.counters(), model.counters);
        let Ok(Reply::Locations(locations)) = engine.query(&Query::Locations) else {
            return Err(TestCaseError::fail("locations query failed"));
        };
        let expected: Vec<LocationView> = model.locations.values().map(location_view).collect();
        prop_assert_eq!(locations, expected);
        Ok(())
    }
}

/// Failures print the shrunk case; nothing is written next to the sources.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn the_engine_agrees_with_the_reference_model_after_every_step(
        opening in opening_stock(),
        steps in vec(step(), 1..200),
    ) {
        Harness::new(true).run(&opening, &steps)?;
    }
}

proptest! {
    // Each case replays its trace several times over; fewer cases keep it quick.
    #![proptest_config(config(128))]

    #[test]
    fn replaying_changed_requests_or_a_snapshot_and_the_rest_reproduces_the_live_state(
        opening in opening_stock(),
        steps in vec(step(), 1..200),
        split in any::<Index>(),
    ) {
        let mut live = Harness::new(false);
        live.run(&opening, &steps)?;
        let trace = &live.trace;
        let live_digest = codec::state_digest(&live.engine);

        // Replay only what changed the state, at the engine time it was applied.
        let mut replayed = State::new();
        for (index, record) in trace.iter().enumerate() {
            if !record.applied.changed {
                continue;
            }
            let applied = replayed.apply(&record.request, record.now_ms);
            prop_assert_eq!(&applied, &record.applied, "replaying record {}", index);
            prop_assert!(
                codec::encode_state(&replayed) == record.image,
                "state after replaying record {} ({:?}) differs",
                index,
                record.request
            );
        }
        prop_assert_eq!(codec::state_digest(&replayed), live_digest);

        // Load the image taken after `split` records and apply every later request.
        let split = split.index(trace.len() + 1);
        let image = match split {
            0 => codec::encode_state(&State::new()),
            _ => trace[split - 1].image.clone(),
        };
        let mut restored = codec::decode_state(&image).map_err(TestCaseError::fail)?;
        prop_assert!(codec::encode_state(&restored) == image, "the image round-trips");
        for (index, record) in trace.iter().enumerate().skip(split) {
            let applied = restored.apply(&record.request, record.now_ms);
            prop_assert_eq!(
                &applied,
                &record.applied,
                "record {} after a snapshot taken after {} records",
                index,
                split
            );
        }
        prop_assert_eq!(codec::state_digest(&restored), live_digest);
        prop_assert_eq!(restored.audit(), Ok(()));

        // The expiry index is left out of images and rebuilt on load, while the live one
        // keeps entries that holds left behind when they were extended or resolved. From
        // the image after every change to a hold, the requests up to the second tick after
        // it must play out exactly as they did live.
        for start in 0..trace.len() {
            let record = &trace[start];
            let hold_change = matches!(
                record.request.command,
                Command::Reserve { .. }
                    | Command::ExtendHold { .. }
                    | Command::ReleaseHold { .. }
                    | Command::CommitHold { .. }
                    | Command::ConsumeCommitted { .. }
                    | Command::ReleaseCommitted { .. }
            );
            if !(hold_change && record.applied.changed) {
                continue;
            }
            let mut restored = codec::decode_state(&record.image).map_err(TestCaseError::fail)?;
            let mut ticks = 0;
            for (index, record) in trace.iter().enumerate().skip(start + 1) {
                let applied = restored.apply(&record.request, record.now_ms);
                prop_assert_eq!(
                    &applied,
                    &record.applied,
                    "record {} after a snapshot taken after record {}",
                    index,
                    start
                );
                if record.applied.changed && record.request.command == Command::Tick {
                    prop_assert!(
                        codec::encode_state(&restored) == record.image,
                        "state after the tick of record {} differs from a snapshot taken \
                         after record {}",
                        index,
                        start
                    );
                    ticks += 1;
                    if ticks == 2 {
                        break;
                    }
                }
            }
        }
    }
}
