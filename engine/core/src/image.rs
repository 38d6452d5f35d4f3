//! The canonical image of the state: what a snapshot stores.
//!
//! Every table is written in a fixed order (ids ascending, queues oldest first), never in
//! hash-map order, so two states that mean the same thing have the same bytes and the
//! same digest. Derived indexes (the interners' maps, the expiry wheel, the order book's
//! indexes) are left out and rebuilt on load; so are the counts of refusals since start,
//! which are not state.

use serde::{Deserialize, Serialize};

use super::chunked::Chunked;
use super::command::LocationSpec;
use super::hold::{Fate, Hold, HoldMap, HoldTable};
use super::idempotency::{IdempotencyEntry, IdempotencyPolicy, IdempotencyTable};
use super::ids::{HoldId, Interner};
use super::limits::TableCaps;
use super::order::{Decision, Order, OrderBook, OrderKpis, Return, Shipment};
use super::outcome::HoldState;
use super::routing::RoutingWeights;
use super::shortage::ShortageIndex;
use super::state::{Counters, SinceStart, State};
use super::stock::{SkuStock, StockTable};

/// Borrowed image, for writing without copying the tables.
#[derive(Serialize)]
pub struct ImageRef<'a> {
    last_applied_ms: u64,
    skus: &'a [Box<str>],
    stock: &'a [SkuStock],
    locations: &'a [LocationSpec],
    next_hold_id: HoldId,
    holds: HoldsInOrder<'a>,
    /// (resolved at, id, how it ended), in resolution order.
    tombstones: Vec<(u64, HoldId, Fate)>,
    /// (id, committed at) of holds committed outside allot with units to settle.
    outside_holds: Vec<(HoldId, u64)>,
    /// (recorded at, entry), oldest first.
    idempotency: Vec<(u64, &'a IdempotencyEntry)>,
    counters: Counters,
    routing_weights: RoutingWeights,
    routed_holds: Vec<(HoldId, &'a Decision)>,
    customers: &'a [Box<str>],
    orders: &'a Chunked<Order>,
    shipments: &'a Chunked<Shipment>,
    returns: &'a [Return],
    order_kpis: &'a OrderKpis,
    committed_outside: Vec<((u32, u32), u64)>,
}

/// Owned image, as read back; field for field the same shape as [`ImageRef`].
#[derive(Deserialize)]
pub struct Image {
    last_applied_ms: u64,
    skus: Vec<Box<str>>,
    stock: Vec<SkuStock>,
    locations: Vec<LocationSpec>,
    next_hold_id: HoldId,
    holds: Vec<(HoldId, Hold)>,
    tombstones: Vec<(u64, HoldId, Fate)>,
    outside_holds: Vec<(HoldId, u64)>,
    idempotency: Vec<(u64, IdempotencyEntry)>,
    counters: Counters,
    routing_weights: RoutingWeights,
    routed_holds: Vec<(HoldId, Decision)>,
    customers: Vec<Box<str>>,
    orders: Chunked<Order>,
    shipments: Chunked<Shipment>,
    returns: Vec<Return>,
    order_kpis: OrderKpis,
    committed_outside: Vec<((u32, u32), u64)>,
}

/// The holds in id order, written as a sequence of (id, hold) (the same bytes as a
/// `Vec<(HoldId, Hold)>`) without collecting them first.
pub struct HoldsInOrder<'a>(&'a HoldMap);

impl Serialize for HoldsInOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        // The length first: the codec writes it before the elements.
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for entry in self.0.iter() {
            seq.serialize_element(&entry)?;
        }
        seq.end()
    }
}

impl State {
    pub fn image(&self) -> ImageRef<'_> {
        ImageRef {
            last_applied_ms: self.last_applied_ms,
            skus: self.skus.names(),
            stock: &self.stock.skus,
            locations: &self.locations,
            next_hold_id: self.holds.next_id,
            holds: HoldsInOrder(&self.holds.holds),
            tombstones: self.holds.tombstones.iter_in_order().collect(),
            outside_holds: self.holds.outside.iter().map(|(id, at)| (*id, *at)).collect(),
            idempotency: self.idempotency.iter_in_order().collect(),
            counters: self.counters,
            routing_weights: self.routing_weights,
            routed_holds: self.holds.routed.iter().map(|(id, decision)| (*id, decision)).collect(),
            customers: self.orders.customers.names(),
            orders: &self.orders.orders,
            shipments: &self.orders.shipments,
            returns: &self.orders.returns,
            order_kpis: &self.orders.kpis,
            committed_outside: self.committed_outside.iter().map(|(k, v)| (*k, *v)).collect(),
        }
    }

    /// Rebuilds a state from its image, with the derived indexes, under the default
    /// idempotency policy.
    pub fn from_image(image: Image) -> State {
        State::from_image_with(image, IdempotencyPolicy::default())
    }

    /// Rebuilds a state from its image under `policy`.
    pub fn from_image_with(image: Image, policy: IdempotencyPolicy) -> State {
        let mut holds = HoldTable { next_id: image.next_hold_id, ..HoldTable::default() };
        for (id, hold) in image.holds {
            if hold.state == HoldState::Held {
                holds.expiry.insert(id, hold.expires_at_ms);
            }
            holds.holds.insert(id, hold);
        }
        for (at_ms, id, fate) in image.tombstones {
            holds.tombstones.push(id, fate, at_ms);
        }
        holds.outside = image.outside_holds.into_iter().collect();
        holds.routed = image.routed_holds.into_iter().collect();
        let mut orders = OrderBook {
            orders: image.orders,
            shipments: image.shipments,
            returns: image.returns,
            customers: Interner::from_names(image.customers),
            kpis: image.order_kpis,
            ..OrderBook::default()
        };
        orders.rebuild_indexes();
        let location_codes = Interner::from_names(
            image.locations.iter().map(|spec| spec.code.as_str().into()).collect(),
        );
        let mut state = State {
            last_applied_ms: image.last_applied_ms,
            skus: Interner::from_names(image.skus),
            stock: StockTable::from_skus(image.stock),
            location_codes,
            locations: image.locations,
            holds,
            idempotency: IdempotencyTable::from_ordered(policy, image.idempotency),
            counters: image.counters,
            orders,
            committed_outside: image.committed_outside.into_iter().collect(),
            routing_weights: image.routing_weights,
            since_start: SinceStart::default(),
            shortages: ShortageIndex::default(),
            caps: TableCaps::CEILINGS,
        };
        state.rebuild_shortages();
        state
    }
}
