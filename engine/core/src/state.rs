//! The engine state and `apply`: the pure, deterministic heart of allot.
//!
//! `State::apply` takes a logged request and the engine time of its batch; it reads no
//! clock, does no I/O, uses no randomness and never depends on hash-map iteration order,
//! so replaying the log rebuilds the same state byte for byte.
//!
//! Rule every handler follows: validate everything first, mutate only once nothing can
//! fail. A request that fails therefore changes nothing and need not be logged.

use super::apply_committed::Settle;
use super::command::{Command, LocationSpec, Request};
use super::hold::HoldTable;
use super::idempotency::{IdempotencyPolicy, IdempotencyTable, Kept, Seen};
use super::ids::{Interner, fingerprint};
use super::limits::{
    EXPIRY_BUCKET_MS, HOLD_RESOLVED_RETENTION_MS, IDEMPOTENCY_KEY_BYTES_MAX, TICK_ENTRIES_MAX,
    TableCaps,
};
use super::order::OrderBook;
use super::outcome::{EngineError, HoldState, Outcome, Reply};
use super::routing::RoutingWeights;
use super::shipment::Lifecycle;
use super::shortage::ShortageIndex;
use super::stock::StockTable;

/// Running totals kept for KPIs; part of the state, so they survive restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub holds_placed: u64,
    pub holds_committed: u64,
    pub holds_released: u64,
    pub holds_expired: u64,
    /// Idempotency keys forgotten before their retention because the table was full.
    pub idempotency_keys_forgotten_early: u64,
}

/// Everything the engine knows.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Engine time of the last request that changed the state.
    pub(crate) last_applied_ms: u64,
    pub(crate) skus: Interner,
    pub(crate) stock: StockTable,
    pub(crate) location_codes: Interner,
    pub(crate) locations: Vec<LocationSpec>,
    pub(crate) holds: HoldTable,
    pub(crate) idempotency: IdempotencyTable,
    pub(crate) counters: Counters,
    pub(crate) orders: OrderBook,
    /// Units allocated by `CommitHold` to orders that live outside the engine, per cell:
    /// with the open shipments' units, they make up every cell's `allocated`.
    pub(crate) committed_outside: std::collections::BTreeMap<(u32, u32), u64>,
    pub(crate) routing_weights: RoutingWeights,
    /// Short cells, re-judged after every command from the cells it touched.
    pub(crate) shortages: ShortageIndex,
    /// Counts of refused requests. Refusals change nothing and are not logged, so these
    /// are not state: they start from zero at every start and are left out of images.
    pub(crate) since_start: SinceStart,
    /// How many SKUs, holds and orders the handlers take: the ceilings unless the
    /// engine configured lower caps. A setting, not state: left out of images, and the
    /// engine sets it after replay.
    pub(crate) caps: TableCaps,
}

/// Counts of what the engine refused since it started (not logged, not in snapshots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinceStart {
    pub holds_refused: u64,
}

/// The result of applying one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub outcome: Outcome,
    /// Whether the state changed, and so whether the request must be logged.
    pub changed: bool,
}

impl State {
    pub fn new() -> State {
        State::default()
    }

    /// Applies one request at engine time `now_ms`.
    pub fn apply(&mut self, request: &Request, now_ms: u64) -> Applied {
        assert!(now_ms >= self.last_applied_ms, "engine time never goes back");
        let Some(key) = request.idempotency_key.as_deref() else {
            return self.apply_command(&request.command, now_ms);
        };
        if let Err(error) = check_idempotency_key(key, &request.command) {
            return Applied { outcome: Err(error), changed: false };
        }
        let command_fingerprint = fingerprint(&request.command);
        match self.idempotency.check(key, command_fingerprint) {
            Seen::Same(kept) => {
                let reply = self.rebuild_reply(kept, &request.command);
                return Applied { outcome: Ok(reply), changed: false };
            }
            Seen::Different => {
                return Applied { outcome: Err(EngineError::IdempotencyConflict), changed: false };
            }
            Seen::New => {}
        }
        let applied = self.apply_command(&request.command, now_ms);
        // Only a request that is logged may leave its key behind: replay must rebuild
        // the same table. A full table forgets its oldest keys rather than refuse.
        if let (Ok(reply), true) = (&applied.outcome, applied.changed) {
            let kept = Kept::of(reply);
            let forgotten = self.idempotency.record(key, command_fingerprint, kept, now_ms);
            self.counters.idempotency_keys_forgotten_early += forgotten;
        }
        applied
    }

    fn apply_command(&mut self, command: &Command, now_ms: u64) -> Applied {
        // An order placed again under its number is answered from the order already
        // there: nothing changes, so nothing is logged.
        if let Command::PlaceOrder(order) = command
            && let Some(Ok(reply)) = self.placed_before(order, None)
        {
            return Applied { outcome: Ok(reply), changed: false };
        }
        let outcome = self.execute(command, now_ms);
        self.refresh_shortages();
        let is_hold = matches!(command, Command::Reserve { .. } | Command::ReserveRouted { .. });
        if is_hold && matches!(outcome, Err(EngineError::InsufficientStock { .. })) {
            self.since_start.holds_refused += 1;
        }
        let changed = outcome.is_ok();
        if changed {
            self.last_applied_ms = now_ms;
        }
        Applied { outcome, changed }
    }

    fn execute(&mut self, command: &Command, now_ms: u64) -> Outcome {
        match command {
            Command::UpsertLocation(spec) => self.upsert_location(spec),
            Command::DeactivateLocation { location } => self.deactivate_location(location),
            Command::Receive { sku, location, quantity } => {
                let reply = self.receive(sku, location, *quantity)?;
                Ok(self.after_arrival(sku, reply, now_ms))
            }
            Command::Adjust { sku, location, delta, reason } => {
                self.adjust(sku, location, *delta, reason)
            }
            Command::CycleCount { sku, location, expected, counted } => {
                self.cycle_count(sku, location, *expected, *counted)
            }
            Command::SetSafetyStock { sku, location, quantity } => {
                self.set_safety_stock(sku, location, *quantity)
            }
            Command::Transfer { sku, from, to, quantity } => {
                let reply = self.transfer(sku, from, to, *quantity)?;
                Ok(self.after_arrival(sku, reply, now_ms))
            }
            Command::Reserve { lines, ttl_ms } => self.reserve(lines, *ttl_ms, now_ms),
            Command::ExtendHold { hold, ttl_ms } => self.extend_hold(*hold, *ttl_ms, now_ms),
            Command::ReleaseHold { hold, lines } => self.release_hold(*hold, lines, now_ms),
            Command::CommitHold { hold, order_number } => {
                self.commit_hold(*hold, order_number, now_ms)
            }
            Command::ConsumeCommitted { hold, lines } => {
                self.settle_committed(*hold, lines, Settle::Consume, now_ms)
            }
            Command::ReleaseCommitted { hold, lines } => {
                self.settle_committed(*hold, lines, Settle::Release, now_ms)
            }
            Command::Tick => Ok(self.tick(now_ms)),
            Command::SetRoutingWeights(weights) => self.set_routing_weights(weights),
            Command::ReserveRouted { lines, destination, ttl_ms } => {
                self.reserve_routed(lines, destination, *ttl_ms, now_ms)
            }
            order => self.execute_order(order, now_ms),
        }
    }

    fn execute_order(&mut self, command: &Command, now_ms: u64) -> Outcome {
        super::validate::free_text(command)?;
        match command {
            Command::PlaceOrder(order) => self.place_order(order, None, now_ms),
            Command::RecordPayment { order, event, .. } => self.record_payment(*order, *event),
            Command::HoldOrder { order, reason, .. } => self.hold_order(*order, *reason),
            Command::ReleaseOrderHold { order } => self.release_order_hold(*order),
            Command::CancelOrder { order, .. } => self.cancel_order(*order, now_ms),
            Command::CancelShipment { shipment, .. } => self.cancel_shipment(*shipment, now_ms),
            Command::CancelOrderLines { order, lines, .. } => {
                self.cancel_order_lines(*order, lines, now_ms)
            }
            Command::AdvanceShipment { shipment, step } => {
                self.advance_shipment(*shipment, step, now_ms)
            }
            Command::ShortPick { shipment, missing } => self.short_pick(*shipment, missing, now_ms),
            Command::AllocateBackorders { order } => self.allocate_backorders(*order, now_ms),
            Command::RequestReturn { order, lines, reason } => {
                self.request_return(*order, lines, reason, now_ms)
            }
            Command::AuthoriseReturn { rma } => self.authorise_return(*rma, now_ms),
            Command::ReceiveReturn { rma, location, lines } => {
                let reply = self.receive_return(*rma, location, lines, now_ms)?;
                let resellable = (lines.iter())
                    .filter(|line| line.condition == super::command::ReturnCondition::Resellable);
                for line in resellable {
                    self.stock_arrived(&line.sku, now_ms);
                }
                Ok(reply)
            }
            Command::RefundReturn { rma, amount_minor } => {
                self.refund_return(*rma, *amount_minor, now_ms)
            }
            Command::ExchangeReturn { rma, order } => self.exchange_return(*rma, order, now_ms),
            other => unreachable!("{} is not an order command", other.name()),
        }
    }

    /// Re-judges every cell the last command touched: in or out of the shortage index.
    fn refresh_shortages(&mut self) {
        let touched = self.stock.take_touched();
        for &(sku, location) in &touched {
            let short = self.stock.available(sku, location) < 0;
            let (skus, codes) = (&self.skus, &self.location_codes);
            self.shortages.set((sku, location), short, || {
                (skus.name(sku).into(), codes.name(location).into())
            });
        }
        self.stock.return_touched(touched);
    }

    /// Builds the shortage index from every cell (after loading an image).
    pub(crate) fn rebuild_shortages(&mut self) {
        let mut index = ShortageIndex::default();
        for (sku, stock) in self.stock.skus.iter().enumerate() {
            for cell in stock.cells.iter().filter(|cell| cell.available() < 0) {
                let (sku, location) = (sku as u32, cell.location);
                let names =
                    || (self.skus.name(sku).into(), self.location_codes.name(location).into());
                index.set((sku, location), true, names);
            }
        }
        self.shortages = index;
    }

    /// Expires due holds and forgets records past their retention, at most
    /// [`TICK_ENTRIES_MAX`] of each: a backlog (after downtime or a clock jump) is
    /// worked off by the next ticks, which `next_tick_due_ms` keeps due.
    fn tick(&mut self, now_ms: u64) -> Reply {
        let mut expired = 0;
        // Holds expire in (bucket, id) order. Only a hold's current wheel entry counts:
        // an extended hold leaves stale entries behind that a state rebuilt from a
        // snapshot lacks, and they must not change which holds a bounded tick expires.
        while (expired as usize) < TICK_ENTRIES_MAX {
            let Some((bucket, id)) = self.holds.expiry.pop_due(now_ms) else { break };
            let is_current = self.holds.holds.get(&id).is_some_and(|hold| {
                hold.state == HoldState::Held && hold.expires_at_ms / EXPIRY_BUCKET_MS == bucket
            });
            if is_current {
                assert!(bucket_end_ms(self.holds.holds[&id].expires_at_ms) <= now_ms);
                self.expire_hold(id, now_ms);
                expired += 1;
            }
        }
        (self.holds.tombstones).forget_due(now_ms, HOLD_RESOLVED_RETENTION_MS, TICK_ENTRIES_MAX);
        self.idempotency.forget_due(now_ms, TICK_ENTRIES_MAX);
        Reply::Ticked { expired }
    }

    /// Caps the SKU, hold and order tables below their ceilings. Set it after replay:
    /// replay must accept everything it accepted before, whatever the caps are now.
    pub fn set_caps(&mut self, caps: TableCaps) {
        self.caps = caps;
    }

    pub fn caps(&self) -> TableCaps {
        self.caps
    }

    /// How long idempotency keys are kept and how many: the engine's setting, applied
    /// before replay so that replay forgets exactly as the live engine did.
    pub fn set_idempotency_policy(&mut self, policy: IdempotencyPolicy) {
        self.idempotency.set_policy(policy);
    }

    pub fn idempotency_policy(&self) -> IdempotencyPolicy {
        self.idempotency.policy()
    }

    /// Resolved holds kept as tombstones, answering `AlreadyResolved`.
    pub fn tombstone_count(&self) -> usize {
        self.holds.tombstones.len()
    }

    pub fn idempotency_key_count(&self) -> usize {
        self.idempotency.len()
    }

    /// The engine time at which a `Tick` has work to do, if any. The sequencer logs a
    /// tick once its clock reaches this.
    pub fn next_tick_due_ms(&self) -> Option<u64> {
        let expiry = self.holds.expiry.next_due_ms();
        let resolved = self.holds.tombstones.next_forget_ms(HOLD_RESOLVED_RETENTION_MS);
        let keys = self.idempotency.next_forget_ms();
        [expiry, resolved, keys].into_iter().flatten().min()
    }

    /// Stock of `sku` arrived somewhere: orders waiting for it get it, and a reply that
    /// shows cells shows them after that.
    fn after_arrival(&mut self, sku: &str, reply: Reply, now_ms: u64) -> Reply {
        if !self.stock_arrived(sku, now_ms) {
            return reply;
        }
        let sku_id = self.skus.get(sku).expect("stock arrived for a known sku");
        let again = |state: &State, view: &super::outcome::CellView| {
            let location = state.location_codes.get(&view.location).expect("a shown cell exists");
            state.cell_view(sku_id, location)
        };
        match reply {
            Reply::Cell(view) => Reply::Cell(again(self, &view)),
            Reply::Transferred { from, to } => {
                Reply::Transferred { from: again(self, &from), to: again(self, &to) }
            }
            other => other,
        }
    }

    /// Fills backorders waiting for `sku`, if any; says whether there were any.
    fn stock_arrived(&mut self, sku: &str, now_ms: u64) -> bool {
        let Some(sku_id) = self.skus.get(sku) else { return false };
        if self.orders.backorders.range((sku_id, 0)..=(sku_id, u64::MAX)).next().is_none() {
            return false;
        }
        self.fill_backorders(sku_id, now_ms);
        true
    }

    /// Routing weights in force; changed only by a logged `SetRoutingWeights`.
    pub fn routing_weights(&self) -> RoutingWeights {
        self.routing_weights
    }

    fn set_routing_weights(&mut self, weights: &RoutingWeights) -> Outcome {
        super::routing::check_weights(weights).map_err(EngineError::InvalidArgument)?;
        self.routing_weights = *weights;
        Ok(Reply::RoutingWeightsSet)
    }

    pub fn order_count(&self) -> usize {
        self.orders.orders.len()
    }

    pub fn last_applied_ms(&self) -> u64 {
        self.last_applied_ms
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn hold_count(&self) -> usize {
        self.holds.holds.len()
    }

    pub fn cell_count(&self) -> usize {
        self.stock.cell_count()
    }

    /// Checks the invariants that tie the tables together; a failure names the first
    /// broken one. Tests call it after every step; it is O(state).
    pub fn audit(&self) -> Result<(), String> {
        self.audit_orders()?;
        self.audit_shortages()?;
        self.audit_committed_outside()?;
        let mut allocated = self.committed_outside.clone();
        for shipment in self.orders.shipments.iter().filter(|s| s.state.is_open()) {
            for line in &shipment.lines {
                *allocated.entry((line.sku, shipment.location())).or_default() +=
                    u64::from(line.quantity);
            }
        }
        let mut held = std::collections::BTreeMap::<(u32, u32), u64>::new();
        for hold in self.holds.holds.values() {
            if hold.state == HoldState::Held {
                for line in &hold.lines {
                    *held.entry((line.sku, line.location)).or_default() += u64::from(line.quantity);
                }
            }
        }
        for (sku, stock) in self.stock.skus.iter().enumerate() {
            for pair in stock.cells.windows(2) {
                if pair[0].location >= pair[1].location {
                    return Err(format!("cells of sku {sku} are not sorted by location"));
                }
            }
            for cell in &stock.cells {
                let in_shipments = allocated.remove(&(sku as u32, cell.location)).unwrap_or(0);
                if u64::from(cell.allocated) != in_shipments {
                    return Err(format!(
                        "cell ({}, {}) has {} allocated but its open shipments and holds \
                         committed outside hold {in_shipments}",
                        self.skus.name(sku as u32),
                        self.location_codes.name(cell.location),
                        cell.allocated
                    ));
                }
                let expected = held.remove(&(sku as u32, cell.location)).unwrap_or(0);
                if u64::from(cell.held) != expected {
                    return Err(format!(
                        "cell ({}, {}) holds {} but its live holds sum to {expected}",
                        self.skus.name(sku as u32),
                        self.location_codes.name(cell.location),
                        cell.held
                    ));
                }
            }
        }
        if let Some(((sku, location), quantity)) = held.into_iter().next() {
            return Err(format!("holds of {quantity} at missing cell ({sku}, {location})"));
        }
        if let Some(((sku, location), quantity)) = allocated.into_iter().next() {
            return Err(format!("shipments of {quantity} at missing cell ({sku}, {location})"));
        }
        Ok(())
    }

    /// Units committed outside allot, per cell, are what the outside holds still have.
    fn audit_committed_outside(&self) -> Result<(), String> {
        let mut expected = std::collections::BTreeMap::<(u32, u32), u64>::new();
        for id in self.holds.outside.keys() {
            let hold = (self.holds.holds.get(id)).ok_or(format!("outside hold {id} is missing"))?;
            if hold.state != HoldState::Resolved(super::outcome::Resolution::Committed) {
                return Err(format!("outside hold {id} is not committed"));
            }
            for line in &hold.lines {
                *expected.entry((line.sku, line.location)).or_default() += u64::from(line.quantity);
            }
        }
        let kept_resolved = self.holds.holds.values().filter(|h| h.state != HoldState::Held);
        if kept_resolved.count() != self.holds.outside.len() {
            return Err("the hold table keeps resolved holds not committed outside".into());
        }
        if expected != self.committed_outside {
            return Err(format!(
                "committed outside per cell is {:?}, the outside holds have {expected:?}",
                self.committed_outside
            ));
        }
        Ok(())
    }

    /// The shortage index holds exactly the cells whose available stock is negative.
    fn audit_shortages(&self) -> Result<(), String> {
        let scanned: Vec<(u32, u32)> = (self.stock.skus.iter().enumerate())
            .flat_map(|(sku, stock)| {
                let short = stock.cells.iter().filter(|cell| cell.available() < 0);
                short.map(move |cell| (sku as u32, cell.location))
            })
            .collect();
        let indexed: Vec<(u32, u32)> = self.shortages.cells().collect();
        if scanned != indexed {
            return Err(format!("short cells are {scanned:?} but the index holds {indexed:?}"));
        }
        Ok(())
    }

    /// Every order's units are accounted for, its cached state is the derived one, and
    /// the open workload per location matches its open shipments.
    fn audit_orders(&self) -> Result<(), String> {
        let mut open = vec![(0u32, 0u64); self.locations.len()];
        let waiting: std::collections::BTreeSet<(u32, u64)> = (self.orders.orders.iter())
            .flat_map(|order| {
                let waiting = order.lines.iter().filter(|line| line.backordered > 0);
                waiting.map(move |line| (line.sku, order.id()))
            })
            .collect();
        if waiting != self.orders.backorders {
            return Err("the backorder index does not match the order lines".into());
        }
        let exchanges: std::collections::BTreeMap<u32, u64> = (self.orders.returns.iter())
            .filter_map(|record| {
                let order = record.exchange_order?;
                Some((super::order::order_key(order), record.id))
            })
            .collect();
        if exchanges != self.orders.exchanges {
            return Err("the exchange index does not match the returns".into());
        }
        for order in self.orders.orders.iter() {
            for line in &order.lines {
                let in_shipments: u64 = order
                    .shipments()
                    .map(|id| self.orders.shipment(id).expect("exists"))
                    .filter(|shipment| shipment.state != super::outcome::ShipmentState::Cancelled)
                    .map(|shipment| u64::from(shipment.units_of(line.sku)))
                    .sum();
                let placed = u64::from(line.cancelled) + u64::from(line.backordered) + in_shipments;
                if placed != u64::from(line.quantity) {
                    return Err(format!(
                        "order {} line {} has {} units but accounts for {placed}",
                        order.id(),
                        self.skus.name(line.sku),
                        line.quantity
                    ));
                }
            }
            let derived = super::order_state::derive(&self.orders.tally(order));
            if derived != order.state {
                return Err(format!(
                    "order {} is {:?}, derived {derived:?}",
                    order.id(),
                    order.state
                ));
            }
        }
        for shipment in self.orders.shipments.iter().filter(|s| s.state.is_open()) {
            let entry = &mut open[shipment.location() as usize];
            entry.0 += 1;
            entry.1 += shipment.units();
        }
        for (location, (shipments, units)) in open.into_iter().enumerate() {
            let counted = self.orders.open_shipments.get(location).copied().unwrap_or(0);
            let counted_units = self.orders.open_units.get(location).copied().unwrap_or(0);
            if (counted, counted_units) != (shipments, units) {
                return Err(format!(
                    "location {location} counts {counted} open shipments of {counted_units} \
                     units, has {shipments} of {units}"
                ));
            }
        }
        Ok(())
    }
}

/// When the expiry bucket holding `deadline_ms` ends.
fn bucket_end_ms(deadline_ms: u64) -> u64 {
    (deadline_ms / EXPIRY_BUCKET_MS + 1) * EXPIRY_BUCKET_MS
}

fn check_idempotency_key(key: &str, command: &Command) -> Result<(), EngineError> {
    // The engine issues these itself, never twice for one intent; their replies have
    // no compact form to remember.
    if matches!(command, Command::Tick | Command::SetRoutingWeights(_)) {
        let name = command.name();
        return Err(EngineError::InvalidArgument(format!("{name} carries no idempotency key")));
    }
    super::validate::text("idempotency key", key, IDEMPOTENCY_KEY_BYTES_MAX)
}
