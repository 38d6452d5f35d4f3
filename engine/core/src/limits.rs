//! Every limit the core enforces, as a named constant with its unit last.
//!
//! Limits keep memory and latency bounded under hostile or buggy input: a request that
//! exceeds one gets `InvalidArgument`, never a panic or an unbounded allocation.

// Input limits live in the protocol crate, which checks them before a request reaches the
// engine; the core checks them again because it is also driven by the embedded API.
pub use allot_protocol::limits::{
    CARRIER_BYTES_MAX, HOLD_TTL_MS_DEFAULT, HOLD_TTL_MS_MAX, HOLD_TTL_MS_MIN,
    IDEMPOTENCY_KEY_BYTES_MAX, LATITUDE_E6_MAX, LINES_PER_HOLD_MAX, LOCATION_CODE_BYTES_MAX,
    LOCATION_NAME_BYTES_MAX, LONGITUDE_E6_MAX, ON_HAND_MAX, ORDER_NUMBER_BYTES_MAX, PAGE_LIMIT_MAX,
    PAYMENT_REFERENCE_BYTES_MAX, QUANTITY_PER_LINE_MAX, REASON_BYTES_MAX, SKU_BYTES_MAX,
    TRACKING_BYTES_MAX,
};

/// Expiry granularity: holds are expired by the first tick after the end of their
/// one-second bucket, so a hold outlives its deadline by less than this.
pub const EXPIRY_BUCKET_MS: u64 = 1_000;

/// How long a resolved hold's tombstone is kept, so that resolving it twice gets a
/// precise answer (`already committed / released / expired`) rather than `NotFound`.
pub const HOLD_RESOLVED_RETENTION_MS: u64 = 60 * 60 * 1_000;
/// Retention is counted from the end of the second a key was recorded or a hold resolved
/// in (a time that is a whole second counts as its own end): the queues keep one time
/// mark per second, not one per batch, and a key or tombstone is kept at most this much
/// longer than its retention.
pub const RETENTION_GRANULE_MS: u64 = 1_000;

/// The time retention of something recorded at `now_ms` is counted from.
pub fn retention_start_ms(now_ms: u64) -> u64 {
    now_ms.div_ceil(RETENTION_GRANULE_MS) * RETENTION_GRANULE_MS
}

/// How long an idempotency key is remembered by default (engine time; the engine's
/// configuration may change it). A key exists to make a retry after a lost answer safe,
/// and clients retry within seconds (a reconnect, a failover); an hour covers that many
/// times over and matches how long a resolved hold answers precisely. Past it a retried
/// hold command still gets a precise answer from the hold (resolved, or live for its
/// TTL), and a retried reserve at worst places a hold that expires by its own TTL.
pub const IDEMPOTENCY_RETENTION_MS_DEFAULT: u64 = 60 * 60 * 1_000;

/// Most holds in the hold table at once (held, or committed outside allot with units to
/// settle); a new hold past it is `Overloaded`. Tombstones do not count: their hour and
/// the per-tick bound keep them in check.
pub const HOLDS_MAX: usize = 64 * 1024 * 1024;
/// Most idempotency keys remembered at once (at most 64 B each, so at most 1 GiB): the
/// default and the ceiling of the engine's setting. A key recorded while the table is
/// full pushes the oldest out early; the table never refuses a request.
pub const IDEMPOTENCY_KEYS_MAX: usize = 16 * 1024 * 1024;
/// Most entries one tick expires, and separately forgets from each retention queue
/// (resolved holds, idempotency keys): after downtime or a clock jump the backlog is
/// worked off over several ticks, one per batch, so no batch stalls the writer. An
/// expiry touches a cell that is rarely in cache (about 200 ns), so a tick stays within
/// a few milliseconds; the writer still catches up millions in a second or two.
pub const TICK_ENTRIES_MAX: usize = 8_192;
/// Most distinct SKUs.
pub const SKUS_MAX: usize = 16 * 1024 * 1024;
/// Most locations.
pub const LOCATIONS_MAX: usize = 65_536;

/// Most orders in memory. Orders are kept for their whole life (returns come weeks
/// later); archiving old ones is not built, so this is the ceiling.
pub const ORDERS_MAX: usize = 16 * 1024 * 1024;
/// Most shipments in memory.
pub const SHIPMENTS_MAX: usize = 32 * 1024 * 1024;
/// Most returns in memory.
pub const RETURNS_MAX: usize = 4 * 1024 * 1024;
/// Most shipments one order may ever have, reroutes after short picks included.
pub const SHIPMENTS_PER_ORDER_MAX: usize = 64;
/// Most returns one order may have.
pub const RETURNS_PER_ORDER_MAX: usize = 16;
/// Location assessments kept with a routing decision (chosen ones always are): enough to
/// say why the runners-up lost without keeping every location for every order.
pub const ROUTING_ASSESSMENTS_KEPT_MAX: usize = 4;
/// Largest routing weight per kilometre, percentage or workload penalty: keeps every
/// score far from overflowing `i64`.
pub const ROUTING_WEIGHT_MAX: i64 = 1_000_000_000;
/// Backordered orders one arrival of stock (a receipt, a transfer in, a resellable
/// return) tries to fill, oldest first: bounds the work one command gives the writer.
/// Orders past it wait for the next arrival or an explicit `AllocateBackorders`.
pub const BACKORDERS_FILLED_PER_ARRIVAL_MAX: usize = 64;

/// Default cap on live holds in the engine's configuration (`TableCaps`): with the
/// other defaults it fits the default memory budget of a 24 GiB machine, shadow copy
/// included.
pub const HOLDS_DEFAULT: usize = 8 * 1024 * 1024;
/// Default cap on orders (see `HOLDS_DEFAULT`).
pub const ORDERS_DEFAULT: usize = 4 * 1024 * 1024;
/// Default cap on distinct SKUs (see `HOLDS_DEFAULT`).
pub const SKUS_DEFAULT: usize = 2 * 1024 * 1024;

/// How many entries the tables a deployment sizes may hold, each at most its ceiling
/// above (`SKUS_MAX`, `HOLDS_MAX`, `ORDERS_MAX`). A command that would add an entry to a
/// full table is `Overloaded`; everything else still works. Caps are a setting, not
/// state: they are not logged and replay ignores them, so lowering one never refuses
/// what was accepted before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableCaps {
    pub skus_max: usize,
    pub holds_max: usize,
    pub orders_max: usize,
}

impl TableCaps {
    /// The ceilings themselves: what a state enforces when nothing was configured.
    pub const CEILINGS: TableCaps =
        TableCaps { skus_max: SKUS_MAX, holds_max: HOLDS_MAX, orders_max: ORDERS_MAX };

    /// What an engine configures when told nothing (`HOLDS_DEFAULT` says why).
    pub const CONFIGURED_DEFAULT: TableCaps =
        TableCaps { skus_max: SKUS_DEFAULT, holds_max: HOLDS_DEFAULT, orders_max: ORDERS_DEFAULT };

    /// Each cap is at least 1 and at most its ceiling.
    pub fn check(&self) -> Result<(), String> {
        let within = |name: &str, value: usize, ceiling: usize| {
            if value == 0 || value > ceiling {
                Err(format!("{name} must be 1 to {ceiling}, not {value}"))
            } else {
                Ok(())
            }
        };
        within("skus_max", self.skus_max, SKUS_MAX)?;
        within("holds_max", self.holds_max, HOLDS_MAX)?;
        within("orders_max", self.orders_max, ORDERS_MAX)
    }
}

/// A state's own caps are the ceilings: replay and a state rebuilt from an image take
/// everything that was once accepted. Only a running engine configures lower ones.
impl Default for TableCaps {
    fn default() -> Self {
        TableCaps::CEILINGS
    }
}
