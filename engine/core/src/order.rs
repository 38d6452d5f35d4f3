//! Orders, shipments and returns as the core keeps them, with the indexes that answer
//! paged queries and KPIs without a scan.
//!
//! Ids are sequential from 1 and nothing is ever removed, so each table is indexed by
//! `id − 1` (orders and shipments in chunks, so that they grow without copying) and a
//! record need not store its own id: appends only, written to a snapshot as it is. The
//! indexes (by number, customer, state; exchange orders by return; the pick-list floor;
//! open workload per location; counts per channel and state) are derived: snapshots
//! leave them out and `OrderBook::rebuild_indexes` recomputes them on load.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::num::NonZeroU64;

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::chunked::Chunked;
use super::command::{Address, Channel, OrderHoldReason};
use super::ids::{Interner, LocationId, SkuId};
use super::order_state::{OrderState, OrderTally, PaymentState};
use super::outcome::{OrderId, ReturnId, ReturnState, ShipmentId};
use super::routing::{Assessment, Rule, Verdict};
use super::shipment::{Delivery, Lifecycle, ShipmentState};

/// Where an order goes: the point routing measures from and the country (the postcode is
/// kept with the order's text), or the pickup store, interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderDelivery {
    Ship { latitude_e6: i32, longitude_e6: i32, country: [u8; 2] },
    Pickup(LocationId),
}

impl OrderDelivery {
    pub fn method(&self) -> Delivery {
        match self {
            OrderDelivery::Ship { .. } => Delivery::Ship,
            OrderDelivery::Pickup(_) => Delivery::Pickup,
        }
    }
}

/// One order line and where its units that are not in a shipment went.
///
/// Packed to 4-byte alignment so that the price does not pad every line to 32 bytes; the
/// price is therefore read by value, never borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[repr(C, packed(4))]
pub struct OrderLineRecord {
    pub sku: SkuId,
    pub quantity: u32,
    pub unit_price_minor: i64,
    pub cancelled: u32,
    pub backordered: u32,
    /// Units received back on returns.
    pub returned: u32,
}

/// A routing decision as recorded: the rule, how many locations it looked at, and the
/// assessments kept (chosen first, then the best of the rest).
///
/// The kept assessments are stored as variable-length integers: their figures are
/// mostly small (a location id, metres, minor units), and an order keeps up to
/// `ROUTING_ASSESSMENTS_KEPT_MAX` of them for its whole life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub rule: Rule,
    pub considered: u32,
    kept: Box<[u8]>,
}

/// Every verdict, in declaration order: an encoded assessment stores the index.
const VERDICTS: [Verdict; 8] = [
    Verdict::Chosen,
    Verdict::Inactive,
    Verdict::DoesNotShip,
    Verdict::NoPickup,
    Verdict::NotThePickupStore,
    Verdict::AtCapacity,
    Verdict::NoStock,
    Verdict::Eligible,
];
/// Bits of an encoded assessment's first integer that hold the verdict's index.
const VERDICT_BITS: u32 = 3;

impl Decision {
    pub fn new(rule: Rule, considered: u32, kept: &[Assessment]) -> Decision {
        let mut bytes = Vec::new();
        for assessment in kept {
            let verdict = VERDICTS.iter().position(|v| *v == assessment.verdict);
            let verdict = verdict.expect("every verdict is listed") as u64;
            write_varint(&mut bytes, u64::from(assessment.location) << VERDICT_BITS | verdict);
            write_varint(&mut bytes, assessment.distance_m);
            for signed in [
                assessment.shipping_cost_minor,
                assessment.workload_penalty_minor,
                assessment.score,
            ] {
                write_varint(&mut bytes, zigzag(signed));
            }
        }
        Decision { rule, considered, kept: bytes.into_boxed_slice() }
    }

    /// The decision as an order or a routed hold reports it.
    pub fn as_ref(&self) -> DecisionRef<'_> {
        DecisionRef { rule: self.rule, considered: self.considered, kept: &self.kept }
    }

    /// The kept assessments, chosen first.
    pub fn kept(&self) -> impl Iterator<Item = Assessment> + '_ {
        self.as_ref().kept()
    }
}

/// A routing decision wherever its encoded assessments are kept: its own allocation
/// (a routed hold) or the order's text.
#[derive(Debug, Clone, Copy)]
pub struct DecisionRef<'a> {
    pub rule: Rule,
    pub considered: u32,
    kept: &'a [u8],
}

impl<'a> DecisionRef<'a> {
    /// The kept assessments, chosen first.
    pub fn kept(self) -> impl Iterator<Item = Assessment> + 'a {
        let mut rest: &[u8] = self.kept;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let head = read_varint(&mut rest);
            Some(Assessment {
                location: (head >> VERDICT_BITS) as LocationId,
                distance_m: read_varint(&mut rest),
                shipping_cost_minor: unzigzag(read_varint(&mut rest)),
                workload_penalty_minor: unzigzag(read_varint(&mut rest)),
                score: unzigzag(read_varint(&mut rest)),
                verdict: VERDICTS[(head & ((1 << VERDICT_BITS) - 1)) as usize],
            })
        })
    }
}

fn write_varint(bytes: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        bytes.push(value as u8 | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

/// Reads what `write_varint` wrote; the bytes come from `Decision::new` (or a snapshot
/// that verified), so a truncated integer is a bug.
fn read_varint(bytes: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().expect("an encoded decision is complete");
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            break;
        }
    }
    value
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

/// An order as the core keeps it for its whole life, sized for millions of them: the
/// bytes that never change (external number, postcode, the routing decision's
/// assessments) share one allocation, lines are a boxed slice, shipment ids sit inline up
/// to two, and its returns are found through `OrderBook::returns_of`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub placed_at_ms: u64,
    /// Fingerprint of the placement request: a repeat of the same number with the same
    /// order is answered, with another order refused.
    pub placement: u64,
    pub from_hold: Option<NonZeroU64>,
    /// The external number, then the postcode of a shipped order (both UTF-8), then the
    /// routing decision's encoded assessments.
    text: Box<[u8]>,
    /// One line per SKU.
    pub lines: Box<[OrderLineRecord]>,
    /// Its shipments' ids, inline up to four.
    shipment_keys: SmallVec<[ShipmentKey; 4]>,
    key: OrderKey,
    /// The customer's order placed before this one (0: none), the link that lists a
    /// customer's orders newest first; derived, rebuilt on load.
    #[serde(skip)]
    previous_of_customer: OrderKey,
    pub customer: u32,
    /// Locations the routing decision looked at.
    considered: u32,
    pub delivery: OrderDelivery,
    /// ISO 4217: three upper-case ASCII letters (checked on placement).
    currency: [u8; 3],
    /// Bytes of `text` that are the external number (at most `ORDER_NUMBER_BYTES_MAX`).
    number_len: u8,
    /// Bytes of `text` after the number that are the postcode (at most
    /// `POSTCODE_BYTES_MAX`).
    postcode_len: u8,
    rule: Rule,
    pub channel: Channel,
    pub payment: PaymentState,
    pub hold: Option<OrderHoldReason>,
    /// The derived state as of the last change (kept for the state index).
    pub state: OrderState,
}

/// What an order is placed with; `Order::new` packs it.
pub struct NewOrder<'a> {
    pub id: OrderId,
    pub channel: Channel,
    pub external_number: &'a str,
    pub customer: u32,
    pub delivery: OrderDelivery,
    pub postcode: &'a str,
    pub currency: &'a str,
    pub lines: Vec<OrderLineRecord>,
    pub placed_at_ms: u64,
    pub from_hold: Option<u64>,
    pub routing: Decision,
    pub placement: u64,
}

impl Order {
    pub fn new(new: NewOrder<'_>) -> Order {
        let number_len = u8::try_from(new.external_number.len())
            .expect("order numbers are checked against ORDER_NUMBER_BYTES_MAX");
        let postcode_len = u8::try_from(new.postcode.len())
            .expect("postcodes are checked against POSTCODE_BYTES_MAX");
        let currency: [u8; 3] =
            new.currency.as_bytes().try_into().expect("currencies are checked: three letters");
        let text = [new.external_number.as_bytes(), new.postcode.as_bytes(), &new.routing.kept];
        Order {
            placed_at_ms: new.placed_at_ms,
            placement: new.placement,
            from_hold: new.from_hold.and_then(NonZeroU64::new),
            text: text.concat().into_boxed_slice(),
            lines: new.lines.into_boxed_slice(),
            shipment_keys: SmallVec::new(),
            key: OrderKey::try_from(new.id).expect("order ids stay below ORDERS_MAX"),
            previous_of_customer: 0,
            customer: new.customer,
            considered: new.routing.considered,
            delivery: new.delivery,
            currency,
            number_len,
            postcode_len,
            rule: new.routing.rule,
            channel: new.channel,
            payment: PaymentState::Pending,
            hold: None,
            state: OrderState::Pending,
        }
    }

    pub fn id(&self) -> OrderId {
        OrderId::from(self.key)
    }

    /// Its shipments, oldest first.
    pub fn shipments(&self) -> impl DoubleEndedIterator<Item = ShipmentId> + ExactSizeIterator {
        self.shipment_keys.iter().map(|&key| ShipmentId::from(key))
    }

    /// The channel's own number for the order.
    pub fn external_number(&self) -> &str {
        std::str::from_utf8(self.number_bytes()).expect("placed as a string")
    }

    fn number_bytes(&self) -> &[u8] {
        &self.text[..usize::from(self.number_len)]
    }

    fn postcode(&self) -> &str {
        let start = usize::from(self.number_len);
        let postcode = &self.text[start..start + usize::from(self.postcode_len)];
        std::str::from_utf8(postcode).expect("placed as a string")
    }

    /// How the order was routed when placed.
    pub fn routing(&self) -> DecisionRef<'_> {
        let kept = usize::from(self.number_len) + usize::from(self.postcode_len);
        DecisionRef { rule: self.rule, considered: self.considered, kept: &self.text[kept..] }
    }

    pub fn currency(&self) -> &str {
        std::str::from_utf8(&self.currency).expect("checked ASCII on placement")
    }

    /// The delivery address of a shipped order.
    pub fn address(&self) -> Option<Address> {
        match self.delivery {
            OrderDelivery::Ship { latitude_e6, longitude_e6, country } => Some(Address {
                latitude_e6,
                longitude_e6,
                country: String::from_utf8_lossy(&country).into_owned(),
                postcode: self.postcode().to_owned(),
            }),
            OrderDelivery::Pickup(_) => None,
        }
    }

    pub fn line_mut(&mut self, sku: SkuId) -> Option<&mut OrderLineRecord> {
        self.lines.iter_mut().find(|line| line.sku == sku)
    }

    pub fn total_minor(&self) -> i64 {
        self.lines.iter().map(|line| i64::from(line.quantity) * line.unit_price_minor).sum()
    }

    pub fn units(&self) -> u64 {
        self.lines.iter().map(|line| u64::from(line.quantity)).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentLine {
    pub sku: SkuId,
    pub quantity: u32,
}

/// One location's part of an order. Its id is its place in the table; most have one or
/// two lines, kept inline; carrier and tracking exist only once it ships, behind one
/// pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub lines: SmallVec<[ShipmentLine; 2]>,
    /// Carrier and tracking number, once shipped.
    handover: Option<Box<(Box<str>, Box<str>)>>,
    order: OrderKey,
    /// A `LocationId` (below `LOCATIONS_MAX`, so 16 bits hold it).
    location: u16,
    pub delivery: Delivery,
    pub state: ShipmentState,
}

impl Shipment {
    /// A new shipment, `Allocated` at `location`.
    pub fn new(
        order: OrderId,
        location: LocationId,
        delivery: Delivery,
        lines: SmallVec<[ShipmentLine; 2]>,
        now_ms: u64,
    ) -> Shipment {
        Shipment {
            order: order_key(order),
            location: u16::try_from(location).expect("location ids stay below LOCATIONS_MAX"),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            lines,
            handover: None,
            delivery,
            state: ShipmentState::Allocated,
        }
    }

    /// Where the shipment is picked and leaves from.
    pub fn location(&self) -> LocationId {
        LocationId::from(self.location)
    }

    /// The order the shipment belongs to.
    pub fn order(&self) -> OrderId {
        OrderId::from(self.order)
    }

    pub fn carrier(&self) -> Option<&str> {
        self.handover.as_deref().map(|(carrier, _)| &**carrier)
    }

    pub fn tracking(&self) -> Option<&str> {
        self.handover.as_deref().map(|(_, tracking)| &**tracking)
    }

    /// Records who carries the shipment and its tracking number.
    pub fn hand_over(&mut self, carrier: &str, tracking: &str) {
        self.handover = Some(Box::new((carrier.into(), tracking.into())));
    }

    pub fn units(&self) -> u64 {
        self.lines.iter().map(|line| u64::from(line.quantity)).sum()
    }

    /// Units of `sku` in the shipment.
    pub fn units_of(&self, sku: SkuId) -> u32 {
        self.lines.iter().filter(|line| line.sku == sku).map(|line| line.quantity).sum()
    }

    /// On the location's pick list: released to the floor, or being picked.
    pub fn is_on_floor(&self) -> bool {
        matches!(self.state, ShipmentState::Released | ShipmentState::Picking)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnLine {
    pub sku: SkuId,
    pub requested: u32,
    pub resellable: u32,
    pub damaged: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Return {
    pub id: ReturnId,
    pub order: OrderId,
    pub state: ReturnState,
    pub reason: Box<str>,
    pub lines: Vec<ReturnLine>,
    pub received_at: Option<LocationId>,
    pub damage_reasons: Vec<Box<str>>,
    pub refunded_minor: i64,
    pub exchange_order: Option<OrderId>,
    pub requested_at_ms: u64,
    pub updated_at_ms: u64,
}

/// Running totals for the order KPIs; part of the state, so they survive restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderKpis {
    pub orders_placed: u64,
    /// Orders routed to more than one location when placed.
    pub orders_split: u64,
    pub units_ordered: u64,
    pub units_filled_at_placement: u64,
    pub units_shipped: u64,
    pub units_returned: u64,
    /// Placement to a shipment leaving its location.
    pub placement_to_ship: DurationHistogram,
}

/// Durations in milliseconds, counted in log-linear buckets: exact below 8 ms, then
/// eight buckets per power of two (at most 12.5 % apart). Fixed size, deterministic and
/// cheap to snapshot, which a sorted sample of every shipment would not be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationHistogram {
    counts: Vec<u64>,
    total: u64,
}

/// Sub-buckets per power of two, as a bit count.
const HISTOGRAM_SUB_BITS: u32 = 3;
const HISTOGRAM_SUB_BUCKETS: u64 = 1 << HISTOGRAM_SUB_BITS;
/// Enough buckets for any `u64`.
const HISTOGRAM_BUCKETS: usize =
    (HISTOGRAM_SUB_BUCKETS * (64 - HISTOGRAM_SUB_BITS as u64 + 1)) as usize;

impl Default for DurationHistogram {
    fn default() -> Self {
        DurationHistogram { counts: vec![0; HISTOGRAM_BUCKETS], total: 0 }
    }
}

impl DurationHistogram {
    pub fn record(&mut self, value_ms: u64) {
        self.counts[Self::bucket(value_ms)] += 1;
        self.total += 1;
    }

    /// The lower bound of the bucket holding the `percent`th percentile, if anything was
    /// recorded.
    pub fn percentile_ms(&self, percent: u64) -> Option<u64> {
        assert!((1..=100).contains(&percent));
        if self.total == 0 {
            return None;
        }
        let rank = (self.total * percent).div_ceil(100);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Self::lower_bound(bucket));
            }
        }
        unreachable!("the counts add up to the total")
    }

    fn bucket(value: u64) -> usize {
        if value < HISTOGRAM_SUB_BUCKETS {
            return value as usize;
        }
        let magnitude = 63 - value.leading_zeros();
        let sub = (value >> (magnitude - HISTOGRAM_SUB_BITS)) & (HISTOGRAM_SUB_BUCKETS - 1);
        (HISTOGRAM_SUB_BUCKETS * u64::from(magnitude - HISTOGRAM_SUB_BITS + 1) + sub) as usize
    }

    fn lower_bound(bucket: usize) -> u64 {
        let bucket = bucket as u64;
        if bucket < HISTOGRAM_SUB_BUCKETS {
            return bucket;
        }
        let magnitude = bucket / HISTOGRAM_SUB_BUCKETS - 1 + u64::from(HISTOGRAM_SUB_BITS);
        let sub = bucket % HISTOGRAM_SUB_BUCKETS;
        (HISTOGRAM_SUB_BUCKETS + sub) << (magnitude - u64::from(HISTOGRAM_SUB_BITS))
    }
}

/// An order id as the indexes store it: ids are below `ORDERS_MAX`, so half the width of
/// an `OrderId` is enough and every index entry is smaller.
pub type OrderKey = u32;

/// A shipment id as an order lists it: ids are below `SHIPMENTS_MAX`.
pub type ShipmentKey = u32;

fn shipment_key(id: ShipmentId) -> ShipmentKey {
    ShipmentKey::try_from(id).expect("shipment ids stay below SHIPMENTS_MAX")
}

/// The index key of an order id; an id past every key (a caller's page bound) becomes
/// the largest key, which still lies past every order.
pub fn order_key(id: OrderId) -> OrderKey {
    OrderKey::try_from(id).unwrap_or(OrderKey::MAX)
}

/// Orders, shipments and returns, and their indexes.
#[derive(Debug, Clone, Default)]
pub struct OrderBook {
    /// Indexed by `id − 1`, in chunks: the tables grow without copying what they hold
    /// or leaving the room a doubling would.
    pub orders: Chunked<Order>,
    pub shipments: Chunked<Shipment>,
    pub returns: Vec<Return>,
    pub customers: Interner,
    pub kpis: OrderKpis,
    // Derived indexes, rebuilt on load.
    /// Order ids by external number, one table per channel (indexed by `Channel as usize`):
    /// each entry is only the id, the number is read from the order itself, so a lookup
    /// by `&str` allocates nothing and the number is stored once. Never iterated.
    pub(crate) by_number: [HashTable<OrderKey>; Channel::ALL.len()],
    pub(crate) number_hasher: foldhash::fast::RandomState,
    /// Each customer's latest order (0: none), indexed by customer id; the rest are
    /// reached through `Order::previous_of_customer`.
    pub latest_by_customer: Vec<OrderKey>,
    /// Order ids per state (indexed by `OrderState as usize`): 4-byte keys, which the
    /// B-tree packs twice as densely as (state, id) pairs.
    pub by_state: [BTreeSet<OrderKey>; OrderState::ALL.len()],
    /// Each order's returns (few orders have any).
    pub returns_by_order: BTreeSet<(OrderKey, ReturnId)>,
    /// The return each exchange order replaces (read from the returns' exchange orders).
    pub exchanges: BTreeMap<OrderKey, ReturnId>,
    /// Shipments released to the floor or being picked: the pick lists.
    pub floor: BTreeSet<(LocationId, ShipmentId)>,
    /// Orders with backordered units of a SKU, oldest first: who gets stock that arrives.
    pub backorders: BTreeSet<(SkuId, OrderId)>,
    /// Open shipments and their units per location, indexed by location id.
    pub open_shipments: Vec<u32>,
    pub open_units: Vec<u64>,
    /// Orders per (channel, state).
    pub counts: std::collections::BTreeMap<(Channel, OrderState), u64>,
}

impl OrderBook {
    pub fn order(&self, id: OrderId) -> Option<&Order> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        self.orders.get(index)
    }

    /// The order placed under a channel's own number, if any.
    pub fn by_number(&self, channel: Channel, number: &str) -> Option<OrderId> {
        let hash = self.number_hasher.hash_one(number);
        let orders = &self.orders;
        let found = self.by_number[channel as usize]
            .find(hash, |&key| orders[key as usize - 1].number_bytes() == number.as_bytes());
        found.map(|&key| OrderId::from(key))
    }

    /// Whether the order has a shipment (of any state) at `location`.
    pub fn has_shipment_at(&self, order: &Order, location: LocationId) -> bool {
        order
            .shipments()
            .any(|id| self.shipment(id).is_some_and(|shipment| shipment.location() == location))
    }

    /// The return an exchange order replaces.
    pub fn exchange_for(&self, order: OrderId) -> Option<ReturnId> {
        self.exchanges.get(&order_key(order)).copied()
    }

    /// The order's returns, oldest first.
    pub fn returns_of(&self, order: OrderId) -> impl Iterator<Item = ReturnId> + '_ {
        let key = order_key(order);
        self.returns_by_order.range((key, 0)..=(key, ReturnId::MAX)).map(|&(_, id)| id)
    }

    /// Adds a new return to the table and its order's index.
    pub fn insert_return(&mut self, record: Return) {
        assert_eq!(record.id, self.next_return_id(), "return ids are sequential");
        self.returns_by_order.insert((order_key(record.order), record.id));
        self.returns.push(record);
    }

    pub fn order_mut(&mut self, id: OrderId) -> &mut Order {
        &mut self.orders[(id - 1) as usize]
    }

    pub fn shipment(&self, id: ShipmentId) -> Option<&Shipment> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        self.shipments.get(index)
    }

    pub fn shipment_mut(&mut self, id: ShipmentId) -> &mut Shipment {
        &mut self.shipments[(id - 1) as usize]
    }

    pub fn return_record(&self, id: ReturnId) -> Option<&Return> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        self.returns.get(index)
    }

    pub fn return_mut(&mut self, id: ReturnId) -> &mut Return {
        &mut self.returns[(id - 1) as usize]
    }

    pub fn next_order_id(&self) -> OrderId {
        self.orders.len() as OrderId + 1
    }

    pub fn next_shipment_id(&self) -> ShipmentId {
        self.shipments.len() as ShipmentId + 1
    }

    pub fn next_return_id(&self) -> ReturnId {
        self.returns.len() as ReturnId + 1
    }

    /// Open shipments at a location now (counted against its daily capacity).
    pub fn open_at(&self, location: LocationId) -> u32 {
        self.open_shipments.get(location as usize).copied().unwrap_or(0)
    }

    /// Counts a shipment as open (`+1`) or no longer open (`-1`) at its location.
    pub fn count_open(&mut self, location: LocationId, units: u64, opened: bool) {
        let index = location as usize;
        if self.open_shipments.len() <= index {
            self.open_shipments.resize(index + 1, 0);
            self.open_units.resize(index + 1, 0);
        }
        if opened {
            self.open_shipments[index] += 1;
            self.open_units[index] += units;
        } else {
            self.open_shipments[index] -= 1;
            self.open_units[index] -= units;
        }
    }

    /// Units of an open shipment that left it (cancelled, short-picked) without closing it.
    pub fn uncount_open_units(&mut self, location: LocationId, units: u64) {
        self.open_units[location as usize] -= units;
    }

    /// The order's quantities as the state derivation sees them.
    pub fn tally(&self, order: &Order) -> OrderTally {
        let mut tally = OrderTally {
            on_hold: order.hold.is_some(),
            payment: Some(order.payment),
            ..OrderTally::default()
        };
        for line in &order.lines {
            tally.ordered += u64::from(line.quantity);
            tally.cancelled += u64::from(line.cancelled);
            tally.backordered += u64::from(line.backordered);
            tally.returned += u64::from(line.returned);
        }
        for id in order.shipments() {
            let shipment = self.shipment(id).expect("an order's shipments exist");
            let units = shipment.units();
            match shipment.state {
                ShipmentState::Allocated => tally.allocated += units,
                state if state.is_open() => tally.in_progress += units,
                state if state.has_left() => {
                    tally.shipped += units;
                    if state.is_delivered() {
                        tally.delivered += units;
                    }
                }
                _ => {}
            }
        }
        tally
    }

    /// Recomputes an order's derived state and moves it in the indexes if it changed.
    pub fn refresh(&mut self, id: OrderId) -> OrderState {
        let order = &self.orders[(id - 1) as usize];
        for line in &order.lines {
            if line.backordered > 0 {
                self.backorders.insert((line.sku, id));
            } else {
                self.backorders.remove(&(line.sku, id));
            }
        }
        let order = self.order(id).expect("refresh is called on a known order");
        let state = super::order_state::derive(&self.tally(order));
        let (channel, before) = (order.channel, order.state);
        if state != before {
            self.by_state[before as usize].remove(&order_key(id));
            self.by_state[state as usize].insert(order_key(id));
            self.uncount(channel, before);
            *self.counts.entry((channel, state)).or_default() += 1;
            self.order_mut(id).state = state;
        }
        state
    }

    fn uncount(&mut self, channel: Channel, state: OrderState) {
        let count = self.counts.get_mut(&(channel, state)).expect("counted");
        *count -= 1;
        if *count == 0 {
            self.counts.remove(&(channel, state));
        }
    }

    /// Adds a new order to the table and its indexes.
    pub fn insert_order(&mut self, order: Order) {
        assert_eq!(order.id(), self.next_order_id(), "order ids are sequential");
        let id = order.id();
        self.orders.push_back(order);
        self.index_order(id);
    }

    /// Indexes an order already in the table.
    fn index_order(&mut self, id: OrderId) {
        let key = OrderKey::try_from(id).expect("order ids stay below ORDERS_MAX");
        let orders = &self.orders;
        let order = &orders[key as usize - 1];
        let hasher = &self.number_hasher;
        let number = order.external_number();
        let numbers = &mut self.by_number[order.channel as usize];
        let hash = hasher.hash_one(number);
        let taken = numbers
            .find(hash, |&other| orders[other as usize - 1].number_bytes() == number.as_bytes());
        assert!(taken.is_none(), "external numbers are unique per channel");
        numbers.insert_unique(hash, key, |&other| {
            hasher.hash_one(orders[other as usize - 1].external_number())
        });
        self.by_state[order.state as usize].insert(key);
        *self.counts.entry((order.channel, order.state)).or_default() += 1;
        for line in order.lines.iter().filter(|line| line.backordered > 0) {
            self.backorders.insert((line.sku, id));
        }
        let customer = order.customer as usize;
        if self.latest_by_customer.len() <= customer {
            self.latest_by_customer.resize(customer + 1, 0);
        }
        let previous = std::mem::replace(&mut self.latest_by_customer[customer], key);
        self.orders[key as usize - 1].previous_of_customer = previous;
    }

    /// A customer's orders with ids below `before`, newest first.
    pub fn customer_orders_before(
        &self,
        customer: u32,
        before: OrderKey,
    ) -> impl Iterator<Item = OrderId> + '_ {
        let start = match self.order(OrderId::from(before)) {
            // Paging on from the last order of a page: its link is the next one.
            Some(order) if order.customer == customer => order.previous_of_customer,
            _ => self.latest_by_customer.get(customer as usize).copied().unwrap_or(0),
        };
        let keys = std::iter::successors(Some(start).filter(|&key| key != 0), move |&key| {
            Some(self.orders[key as usize - 1].previous_of_customer).filter(|&key| key != 0)
        });
        keys.skip_while(move |&key| key >= before).map(OrderId::from)
    }

    /// Adds a new shipment under the next id, counts it open and lists it on its order.
    pub fn insert_shipment(&mut self, shipment: Shipment) -> ShipmentId {
        assert_eq!(shipment.state, ShipmentState::Allocated);
        let id = self.next_shipment_id();
        self.count_open(shipment.location(), shipment.units(), true);
        self.order_mut(shipment.order()).shipment_keys.push(shipment_key(id));
        self.shipments.push_back(shipment);
        id
    }

    /// Recomputes every derived index from the tables (after a snapshot load).
    pub fn rebuild_indexes(&mut self) {
        for id in 1..=self.orders.len() as OrderId {
            self.index_order(id);
        }
        for record in &self.returns {
            self.returns_by_order.insert((order_key(record.order), record.id));
            if let Some(exchange) = record.exchange_order {
                self.exchanges.insert(order_key(exchange), record.id);
            }
        }
        let shipments = std::mem::take(&mut self.shipments);
        for (id, shipment) in (1..).zip(shipments.iter()) {
            if shipment.state.is_open() {
                self.count_open(shipment.location(), shipment.units(), true);
            }
            if shipment.is_on_floor() {
                self.floor.insert((shipment.location(), id));
            }
        }
        self.shipments = shipments;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An open order costs its record, its lines, its shipments and their index entries
    /// (DESIGN §6: ≤ 400 B for three lines, measured by `bench/benches/memory.rs`); these
    /// bounds keep the fixed-size parts from growing unnoticed.
    #[test]
    fn order_records_stay_within_their_sizes() {
        assert!(size_of::<Order>() <= 120, "Order is {} B", size_of::<Order>());
        assert!(size_of::<Shipment>() <= 56, "Shipment is {} B", size_of::<Shipment>());
        assert_eq!(size_of::<OrderLineRecord>(), 28);
        assert_eq!(size_of::<ShipmentLine>(), 8);
        assert_eq!(size_of::<OrderDelivery>(), 12);
        assert!(size_of::<Decision>() <= 24, "Decision is {} B", size_of::<Decision>());
        // Four shipment ids or two shipment lines inline cost no more than an empty `Vec`.
        assert_eq!(size_of::<SmallVec<[ShipmentKey; 4]>>(), size_of::<Vec<ShipmentId>>());
        assert_eq!(size_of::<SmallVec<[ShipmentLine; 2]>>(), size_of::<Vec<ShipmentLine>>());
    }

    fn assessment(location: LocationId, verdict: Verdict, figure: i64) -> Assessment {
        Assessment {
            location,
            distance_m: figure.unsigned_abs(),
            shipping_cost_minor: figure,
            workload_penalty_minor: figure.saturating_neg(),
            score: figure.saturating_mul(3),
            verdict,
        }
    }

    #[test]
    fn a_decision_gives_back_every_kept_assessment_exactly() {
        let kept: Vec<Assessment> = [
            (0, Verdict::Chosen, 0),
            (65_535, Verdict::Eligible, 1_234_567),
            (7, Verdict::NoStock, -1),
            (12, Verdict::AtCapacity, i64::MAX),
            (3, Verdict::NotThePickupStore, i64::MIN),
        ]
        .into_iter()
        .map(|(location, verdict, figure)| assessment(location, verdict, figure))
        .chain(VERDICTS.map(|verdict| assessment(u32::MAX >> 3, verdict, 42)))
        .collect();
        let decision = Decision::new(Rule::Split, 50, &kept);
        assert_eq!(decision.kept().collect::<Vec<_>>(), kept);
        assert_eq!((decision.rule, decision.considered), (Rule::Split, 50));
        assert_eq!(Decision::new(Rule::FromHold, 0, &[]).kept().count(), 0);
    }

    #[test]
    fn typical_assessments_take_a_fraction_of_their_in_memory_size() {
        // A store 800 km away, a few pounds to ship, a small workload penalty.
        let typical = Assessment {
            location: 41,
            distance_m: 812_345,
            shipping_cost_minor: 1_450,
            workload_penalty_minor: 12,
            score: 9_912,
            verdict: Verdict::Chosen,
        };
        let decision = Decision::new(Rule::OneLocation, 50, &[typical; 4]);
        assert!(decision.kept.len() <= 4 * 12, "{} B", decision.kept.len());
        let order = Order::new(NewOrder {
            id: 7,
            channel: Channel::Web,
            external_number: "W-1",
            customer: 0,
            delivery: OrderDelivery::Ship { latitude_e6: 0, longitude_e6: 0, country: *b"GB" },
            postcode: "SW1A 1AA",
            currency: "GBP",
            lines: Vec::new(),
            placed_at_ms: 0,
            from_hold: None,
            routing: decision.clone(),
            placement: 0,
        });
        assert_eq!((order.id(), order.external_number()), (7, "W-1"));
        assert_eq!(order.address().map(|to| to.postcode).as_deref(), Some("SW1A 1AA"));
        assert_eq!(order.routing().kept().collect::<Vec<_>>(), [typical; 4]);
        assert_eq!((order.routing().rule, order.routing().considered), (Rule::OneLocation, 50));
        assert!(decision.kept.len() * 3 < 4 * size_of::<Assessment>());
    }

    #[test]
    fn histogram_percentiles_fall_in_the_right_bucket() {
        let mut histogram = DurationHistogram::default();
        assert_eq!(histogram.percentile_ms(50), None);
        for value in 1..=100 {
            histogram.record(value * 1_000);
        }
        let p50 = histogram.percentile_ms(50).unwrap();
        let p95 = histogram.percentile_ms(95).unwrap();
        assert!((43_750..=50_000).contains(&p50), "{p50}");
        assert!((83_125..=95_000).contains(&p95), "{p95}");
        histogram.record(3);
        assert_eq!(DurationHistogram::lower_bound(DurationHistogram::bucket(3)), 3);
    }

    #[test]
    fn every_value_lands_in_a_bucket_whose_bound_is_at_most_it_and_within_an_eighth() {
        for value in (0..20).chain([1 << 20, (1 << 20) + 12_345, u64::MAX / 3, u64::MAX]) {
            let bound = DurationHistogram::lower_bound(DurationHistogram::bucket(value));
            assert!(bound <= value && value - bound <= value / 8, "{value} → {bound}");
        }
    }
}
