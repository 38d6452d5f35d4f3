//! The domain vocabulary shared by the wire and the engine: lines, locations, stock
//! cells, holds and queries.
//!
//! These types are encoded both on the wire and in the engine's log, so a change to one
//! of them changes both formats (and `docs/protocol.md`).

use serde::{Deserialize, Serialize};

use crate::order::{Channel, OrderId, OrderState, ReturnId, ShipmentId};

/// Engine-assigned id of a hold; sequential from 1.
pub type HoldId = u64;

/// One line of a hold or of a partial release.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LineRequest {
    pub sku: String,
    pub location: String,
    pub quantity: u32,
}

/// What kind of place a location is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LocationKind {
    Warehouse,
    Store,
    ThirdParty,
    DropShip,
}

/// Every attribute of a location (DESIGN §2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LocationSpec {
    pub code: String,
    pub name: String,
    pub kind: LocationKind,
    /// Microdegrees (degrees × 10⁶), so the value is exact and hashable.
    pub latitude_e6: i32,
    pub longitude_e6: i32,
    pub ships: bool,
    pub pickup: bool,
    /// Open shipments the location can take per day.
    pub daily_capacity: u32,
    pub shipping_cost: ShippingCost,
    /// Lower wins a routing tie.
    pub priority: u32,
    pub active: bool,
}

/// One location as clients see it: exactly the attributes it was given.
pub type LocationView = LocationSpec;

/// Shipping cost model: `base + per_km × distance`, in minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShippingCost {
    pub base_minor: i64,
    pub per_km_minor: i64,
    /// ISO 4217 code, three upper-case letters.
    pub currency: String,
}

/// Read-only requests; they are not logged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Query {
    /// One stock cell.
    Cell {
        sku: String,
        location: String,
    },
    /// A SKU's stock at every location that has a cell for it.
    SkuStock {
        sku: String,
    },
    /// A hold by id.
    Hold {
        hold: HoldId,
    },
    /// One location.
    Location {
        location: String,
    },
    /// Every location, in code order.
    Locations,
    /// The first cells whose `available` is below zero, in `ShortagePage`'s order: at
    /// most `SHORTAGES_UNPAGED_MAX`. Kept for clients of the first release; a client that
    /// must see every shortage pages with `ShortagePage`.
    Shortages,
    /// An order by id, with its shipments and routing decision.
    Order {
        order: OrderId,
    },
    /// An order by its channel's own number.
    OrderByNumber {
        channel: Channel,
        external_number: String,
    },
    /// A customer's orders, newest first: those placed before `before` (an order id
    /// from the previous page's `next`), at most `limit`.
    CustomerOrders {
        customer: String,
        before: Option<OrderId>,
        limit: u32,
    },
    /// Orders in `state` (and with a shipment at `location`, when given), oldest first:
    /// ids after `after`, at most `limit`.
    OrdersByState {
        state: OrderState,
        location: Option<String>,
        after: Option<OrderId>,
        limit: u32,
    },
    /// A location's pick list: its shipments released to the floor or being picked,
    /// oldest first.
    PickList {
        location: String,
        after: Option<ShipmentId>,
        limit: u32,
    },
    Shipment {
        shipment: ShipmentId,
    },
    Return {
        rma: ReturnId,
    },
    Kpis,
    /// The routing decision of a hold placed without locations (`ReserveRouted`), kept
    /// while the hold is.
    HoldRouting {
        hold: HoldId,
    },
    /// Cells whose available stock is below zero, by SKU then location code (bytewise):
    /// those after `after` (the previous page's `next`), at most `limit`.
    ShortagePage {
        after: Option<CellKey>,
        limit: u32,
    },
}

/// A stock cell by name: the cursor of a shortage page.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CellKey {
    pub sku: String,
    pub location: String,
}

/// One page of short cells; `next` is the cursor for the following page, if there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShortagePage {
    pub cells: Vec<CellView>,
    pub next: Option<CellKey>,
}

/// How a hold was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Resolution {
    Committed,
    Released,
    Expired,
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resolution::Committed => "committed",
            Resolution::Released => "released",
            Resolution::Expired => "expired",
        })
    }
}

/// A hold's lifecycle: `held → committed | released | expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HoldState {
    Held,
    Resolved(Resolution),
}

/// One stock cell as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellView {
    pub sku: String,
    pub location: String,
    pub on_hand: u32,
    pub held: u32,
    pub allocated: u32,
    pub safety_stock: u32,
    /// `on_hand − held − allocated − safety_stock`; negative means the cell is short.
    pub available: i64,
}

/// One hold as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldView {
    pub hold: HoldId,
    pub state: HoldState,
    pub lines: Vec<HoldLineView>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub resolved_at_ms: Option<u64>,
    pub order_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldLineView {
    pub sku: String,
    pub location: String,
    pub quantity: u32,
}
