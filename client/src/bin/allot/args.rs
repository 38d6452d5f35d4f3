//! The command line: global connection flags and every subcommand.

use std::path::PathBuf;

use allot_client::config::{
    ADDR_DEFAULT, CONNECT_TIMEOUT_MS_DEFAULT, REQUEST_TIMEOUT_MS_DEFAULT, RETRIES_DEFAULT,
    SERVER_NAME_DEFAULT,
};
use allot_client::protocol::limits::PAGE_LIMIT_MAX;
use allot_client::protocol::order::{
    Address, Channel, ItemQuantity, OrderHoldReason, OrderId, OrderLine, OrderState, PaymentEvent,
    ReturnId, ReturnReceipt, ShipmentId,
};
use allot_client::protocol::{CellKey, HoldId, LineRequest, LocationKind};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::parse::{
    cell_key, channel, item_spec, latitude_e6, line_spec, longitude_e6, order_line_spec,
    order_state, receipt_spec, ship_to,
};

/// Daily capacity of a location added without `--capacity`.
pub const DAILY_CAPACITY_DEFAULT: u32 = 1_000;
/// Routing priority of a location added without `--priority` (lower wins ties).
pub const PRIORITY_DEFAULT: u32 = 100;
/// Currency of a shipping cost given without `--currency`.
pub const CURRENCY_DEFAULT: &str = "EUR";
/// Entries per page of a list or pick list without `--limit`.
pub const PAGE_LIMIT_DEFAULT: u32 = 50;

/// allot's operator CLI: locations, stock, holds, orders, shipments, returns and bulk
/// imports.
#[derive(Debug, Parser)]
#[command(name = "allot", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Machine-readable output on stdout: the reply as JSON, errors as
    /// {"error": {"code", "message"}}.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Server address, host:port.
    #[arg(long, env = "ALLOT_ADDR", default_value = ADDR_DEFAULT, global = true)]
    pub addr: String,
    /// CA bundle (PEM) that signed the server's certificate.
    #[arg(long, value_name = "FILE", conflicts_with = "cert", global = true)]
    pub ca: Option<PathBuf>,
    /// The server's own certificate (PEM), accepted byte for byte.
    #[arg(long, value_name = "FILE", global = true)]
    pub cert: Option<PathBuf>,
    /// Bearer token; overrides the one in --data-dir.
    #[arg(long, env = "ALLOT_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Client certificate chain (PEM, leaf first) for mutual TLS; needs --client-key.
    /// With it no token is needed: the server gives a verified certificate its
    /// configured role (the --data-dir token is then not read).
    #[arg(
        long,
        value_name = "FILE",
        env = "ALLOT_CLIENT_CERT",
        requires = "client_key",
        global = true
    )]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert.
    #[arg(
        long,
        value_name = "FILE",
        env = "ALLOT_CLIENT_KEY",
        requires = "client_cert",
        global = true
    )]
    pub client_key: Option<PathBuf>,
    /// A development server's data directory: pins DIR/dev-cert.pem, token from DIR/dev-token.
    #[arg(long, value_name = "DIR", env = "ALLOT_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Name the server's certificate must carry (with --ca).
    #[arg(long, default_value = SERVER_NAME_DEFAULT, global = true)]
    pub server_name: String,
    /// Per-attempt request timeout in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = REQUEST_TIMEOUT_MS_DEFAULT, global = true)]
    pub timeout_ms: u64,
    /// Connect timeout in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = CONNECT_TIMEOUT_MS_DEFAULT, global = true)]
    pub connect_timeout_ms: u64,
    /// Retries of a request whose outcome is unknown (same idempotency key).
    #[arg(long, default_value_t = RETRIES_DEFAULT, global = true)]
    pub retries: u32,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the connection; prints the server's version and this token's role.
    Ping,
    /// Locations: add, list, get, deactivate.
    #[command(subcommand)]
    Location(LocationCommand),
    /// Stock cells: receipts, adjustments, counts, safety stock, transfers.
    #[command(subcommand)]
    Stock(StockCommand),
    /// Cart holds: create, route, get, extend, release, commit.
    #[command(subcommand)]
    Hold(HoldCommand),
    /// Orders: place, get, find, list, pay, hold, cancel, backorders.
    #[command(subcommand)]
    Order(OrderCommand),
    /// Shipments: get, each fulfilment step, cancel, short pick.
    #[command(subcommand)]
    Shipment(ShipmentCommand),
    /// A location's pick list: shipments released or being picked, oldest first.
    Picklist {
        location: String,
        /// Start after this shipment id (the previous page's next).
        #[arg(long, value_name = "SHIPMENT")]
        after: Option<ShipmentId>,
        #[command(flatten)]
        page: Page,
    },
    /// Returns (RMA): request, authorise, receive, refund, exchange, get.
    #[command(subcommand)]
    Return(ReturnCommand),
    /// The engine's KPIs.
    Kpis,
    /// Bulk loads from CSV, sent in pipelined batches.
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Debug, Subcommand)]
pub enum LocationCommand {
    /// Create a location, or replace every attribute of an existing one.
    Add(LocationAdd),
    /// Every location, in code order.
    List,
    /// One location.
    Get { code: String },
    /// Stop holding and routing at a location (its stock stays).
    Deactivate { code: String },
}

#[derive(Debug, Args)]
pub struct LocationAdd {
    pub code: String,
    #[arg(long, default_value = "")]
    pub name: String,
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Latitude in decimal degrees.
    #[arg(long, allow_hyphen_values = true, value_parser = latitude_e6)]
    pub lat: i32,
    /// Longitude in decimal degrees.
    #[arg(long, allow_hyphen_values = true, value_parser = longitude_e6)]
    pub lon: i32,
    /// Ships orders (the default).
    #[arg(long, overrides_with = "no_ships")]
    pub ships: bool,
    /// Does not ship orders.
    #[arg(long, overrides_with = "ships")]
    pub no_ships: bool,
    /// Offers pickup.
    #[arg(long)]
    pub pickup: bool,
    /// Open shipments per day.
    #[arg(long, default_value_t = DAILY_CAPACITY_DEFAULT)]
    pub capacity: u32,
    /// Shipping base cost in minor units.
    #[arg(long, value_name = "MINOR", default_value_t = 0)]
    pub base_cost: i64,
    /// Shipping cost per km in minor units.
    #[arg(long, value_name = "MINOR", default_value_t = 0)]
    pub per_km: i64,
    #[arg(long, default_value = CURRENCY_DEFAULT)]
    pub currency: String,
    /// Lower wins a routing tie.
    #[arg(long, default_value_t = PRIORITY_DEFAULT)]
    pub priority: u32,
}

impl LocationAdd {
    /// `--ships` is the default; `--no-ships` turns it off (the later flag wins).
    pub fn ships(&self) -> bool {
        self.ships || !self.no_ships
    }
}

/// Location kinds as the command line spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Warehouse,
    Store,
    ThirdParty,
    DropShip,
}

impl From<Kind> for LocationKind {
    fn from(kind: Kind) -> LocationKind {
        match kind {
            Kind::Warehouse => LocationKind::Warehouse,
            Kind::Store => LocationKind::Store,
            Kind::ThirdParty => LocationKind::ThirdParty,
            Kind::DropShip => LocationKind::DropShip,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum StockCommand {
    /// Goods received: on_hand goes up.
    Receive { sku: String, location: String, quantity: u32 },
    /// Correct on_hand by DELTA (negative to remove), with a reason code.
    Adjust {
        sku: String,
        location: String,
        #[arg(allow_hyphen_values = true)]
        delta: i64,
        #[arg(long)]
        reason: String,
    },
    /// Set on_hand to QUANTITY, failing with CompareFailed if it changes meanwhile.
    Set { sku: String, location: String, quantity: u32 },
    /// Units kept back from sale at a cell.
    Safety { sku: String, location: String, quantity: u32 },
    /// Move units between two locations.
    Transfer { sku: String, from: String, to: String, quantity: u32 },
    /// One cell, or the SKU at every location.
    Get { sku: String, location: Option<String> },
    /// Cells whose available is below zero, by SKU then location, a page at a time.
    Shortages {
        /// Start after this cell (the previous page's next), as SKU@LOCATION.
        #[arg(long, value_name = "SKU@LOCATION", value_parser = cell_key)]
        after: Option<CellKey>,
        #[command(flatten)]
        page: Page,
    },
}

#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Hold stock for a cart: all lines or none.
    Create {
        /// Lines as SKU@LOCATION:QTY.
        #[arg(required = true, value_name = "SKU@LOCATION:QTY", value_parser = line_spec)]
        lines: Vec<LineRequest>,
        /// Lifetime in milliseconds (default: the server's, 15 minutes).
        #[arg(long)]
        ttl_ms: Option<u64>,
    },
    /// A hold by id.
    Get { id: HoldId },
    /// Move a live hold's deadline to now + TTL.
    Extend {
        id: HoldId,
        #[arg(long)]
        ttl_ms: u64,
    },
    /// Release the given lines of a hold, or all of it.
    Release {
        id: HoldId,
        #[arg(value_name = "SKU@LOCATION:QTY", value_parser = line_spec)]
        lines: Vec<LineRequest>,
    },
    /// Turn a hold into an allocation for an order kept outside allot.
    Commit { id: HoldId, order_number: String },
    /// The outside system shipped units of a committed hold: the given lines, or every
    /// unit it still commits. They leave on_hand and allocated.
    Consume {
        id: HoldId,
        #[arg(value_name = "SKU@LOCATION:QTY", value_parser = line_spec)]
        lines: Vec<LineRequest>,
    },
    /// The outside order of a committed hold was cancelled: the given lines, or every
    /// unit it still commits, leave allocated and are available again.
    Uncommit {
        id: HoldId,
        #[arg(value_name = "SKU@LOCATION:QTY", value_parser = line_spec)]
        lines: Vec<LineRequest>,
    },
    /// Why a hold placed by `hold route` is where it is: the routing decision.
    Routing { id: HoldId },
    /// Hold stock for a cart without naming locations: routing picks them as it would
    /// for an order to the destination. All lines or none.
    Route {
        /// A line, as SKU:QTY; repeat for more lines.
        #[arg(long = "line", value_name = "SKU:QTY", value_parser = item_spec, required = true)]
        lines: Vec<ItemQuantity>,
        #[command(flatten)]
        destination: Destination,
        /// Lifetime in milliseconds (default: the server's, 15 minutes).
        #[arg(long)]
        ttl_ms: Option<u64>,
    },
}

/// Where an order goes: shipped to an address, or picked up at a store.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Destination {
    /// Ship to LAT,LON,COUNTRY,POSTCODE (decimal degrees, ISO 3166 alpha-2 country).
    #[arg(
        long,
        value_name = "LAT,LON,COUNTRY,POSTCODE",
        value_parser = ship_to,
        allow_hyphen_values = true
    )]
    pub ship_to: Option<Address>,
    /// Picked up at this store.
    #[arg(long, value_name = "LOCATION")]
    pub pickup: Option<String>,
}

/// Everything about a new order, for `order place` and `return exchange`.
#[derive(Debug, Args)]
pub struct OrderSpec {
    /// web, app, marketplace, pos, call_centre or b2b.
    #[arg(long, value_parser = channel)]
    pub channel: Channel,
    /// The channel's own order number; placing it again answers the first placement.
    #[arg(long)]
    pub number: String,
    /// The customer id.
    #[arg(long)]
    pub customer: String,
    #[command(flatten)]
    pub destination: Destination,
    /// ISO 4217 code of every price, such as GBP.
    #[arg(long)]
    pub currency: String,
    /// A line, as SKU:QTY:PRICE with the unit price in minor units; repeat for more.
    #[arg(long = "line", value_name = "SKU:QTY:PRICE", value_parser = order_line_spec, required = true)]
    pub lines: Vec<OrderLine>,
    /// Convert this live hold (its lines must match the order's).
    #[arg(long, value_name = "HOLD")]
    pub hold: Option<HoldId>,
    /// Backorder what cannot be allocated now instead of refusing the order.
    #[arg(long)]
    pub backorder: bool,
    /// Idempotency key (default: a fresh one).
    #[arg(long)]
    pub key: Option<String>,
}

/// How many entries a page holds.
#[derive(Debug, Args)]
pub struct Page {
    /// Entries per page, 1 to 1000.
    #[arg(
        long,
        default_value_t = PAGE_LIMIT_DEFAULT,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(PAGE_LIMIT_MAX))
    )]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// Place an order: convert --hold, or route and allocate afresh.
    Place(OrderSpec),
    /// An order by id, with its lines, shipments, routing and returns.
    Get { id: OrderId },
    /// An order by its channel's own number.
    Find {
        #[arg(long, value_parser = channel)]
        channel: Channel,
        #[arg(long)]
        number: String,
    },
    /// Orders of a customer (newest first) or in a state (oldest first), a page at a time.
    List(OrderList),
    /// Record a payment event.
    Pay {
        id: OrderId,
        #[arg(long, value_enum)]
        event: PayEvent,
        /// Amount in minor units.
        #[arg(long)]
        amount: i64,
        /// The payment service's reference.
        #[arg(long)]
        reference: String,
        /// Idempotency key, such as the payment service's event id (default: a fresh one).
        #[arg(long)]
        key: Option<String>,
    },
    /// Stop an order before it leaves.
    Hold {
        id: OrderId,
        #[arg(long, value_enum)]
        reason: HoldReason,
        #[arg(long)]
        note: String,
    },
    /// Lift an order's hold.
    Unhold { id: OrderId },
    /// Cancel everything of an order that has not left.
    Cancel {
        id: OrderId,
        #[arg(long)]
        reason: String,
    },
    /// Cancel some units: backordered ones first, then from open shipments.
    CancelLines {
        id: OrderId,
        /// Units to cancel, as SKU:QTY; repeat for more.
        #[arg(long = "line", value_name = "SKU:QTY", value_parser = item_spec, required = true)]
        lines: Vec<ItemQuantity>,
        #[arg(long)]
        reason: String,
    },
    /// Try again to allocate an order's backordered units.
    Backorders { id: OrderId },
}

/// `order list`: by customer or by state.
#[derive(Debug, Args)]
#[group(id = "listing", required = true, multiple = false, args = ["customer", "state"])]
pub struct OrderList {
    /// A customer's orders, newest first.
    #[arg(long)]
    pub customer: Option<String>,
    /// With --customer: orders older than this id (the previous page's next).
    #[arg(long, value_name = "ORDER", requires = "customer", conflicts_with = "state")]
    pub before: Option<OrderId>,
    /// Orders in this state, oldest first: pending, confirmed, on_hold, backordered,
    /// in_progress, partially_shipped, shipped, delivered, partially_returned, returned,
    /// cancelled.
    #[arg(long, value_parser = order_state)]
    pub state: Option<OrderState>,
    /// With --state: only orders with a shipment at this location.
    #[arg(long, requires = "state", conflicts_with = "customer")]
    pub location: Option<String>,
    /// With --state: orders newer than this id (the previous page's next).
    #[arg(long, value_name = "ORDER", requires = "state", conflicts_with = "customer")]
    pub after: Option<OrderId>,
    #[command(flatten)]
    pub page: Page,
}

/// Payment events as the command line spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PayEvent {
    Authorised,
    Failed,
    Captured,
    Refunded,
}

impl From<PayEvent> for PaymentEvent {
    fn from(event: PayEvent) -> PaymentEvent {
        match event {
            PayEvent::Authorised => PaymentEvent::Authorised,
            PayEvent::Failed => PaymentEvent::Failed,
            PayEvent::Captured => PaymentEvent::Captured,
            PayEvent::Refunded => PaymentEvent::Refunded,
        }
    }
}

/// Order hold reasons as the command line spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HoldReason {
    Manual,
    Fraud,
}

impl From<HoldReason> for OrderHoldReason {
    fn from(reason: HoldReason) -> OrderHoldReason {
        match reason {
            HoldReason::Manual => OrderHoldReason::Manual,
            HoldReason::Fraud => OrderHoldReason::Fraud,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ShipmentCommand {
    /// A shipment by id.
    Get { id: ShipmentId },
    /// Release to the floor: it joins the location's pick list (needs a paid order).
    Release { id: ShipmentId },
    /// Picking has started.
    StartPicking { id: ShipmentId },
    /// Packed.
    Pack { id: ShipmentId },
    /// Handed to a carrier: consumes the stock at the location.
    Ship {
        id: ShipmentId,
        #[arg(long)]
        carrier: String,
        #[arg(long)]
        tracking: String,
    },
    /// Delivered to the customer.
    Deliver { id: ShipmentId },
    /// A pickup shipment is ready at the store.
    Ready { id: ShipmentId },
    /// The customer collected a pickup shipment: consumes the stock at the store.
    PickedUp { id: ShipmentId },
    /// Cancel a shipment that has not left.
    Cancel {
        id: ShipmentId,
        #[arg(long)]
        reason: String,
    },
    /// Units not found while picking: written off here, routed elsewhere or backordered.
    ShortPick {
        id: ShipmentId,
        /// Missing units, as SKU:QTY; repeat for more.
        #[arg(long, value_name = "SKU:QTY", value_parser = item_spec, required = true)]
        missing: Vec<ItemQuantity>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReturnCommand {
    /// The customer asks to return delivered units of an order.
    Request {
        order: OrderId,
        /// Units to return, as SKU:QTY; repeat for more.
        #[arg(long = "line", value_name = "SKU:QTY", value_parser = item_spec, required = true)]
        lines: Vec<ItemQuantity>,
        #[arg(long)]
        reason: String,
        /// Idempotency key (default: a fresh one).
        #[arg(long)]
        key: Option<String>,
    },
    /// Accept a requested return.
    Authorise { rma: ReturnId },
    /// The returned units arrived at a location.
    Receive {
        rma: ReturnId,
        #[arg(long)]
        location: String,
        /// Units received, as SKU:QTY:resellable or SKU:QTY:damaged:REASON; repeat for more.
        #[arg(long = "line", value_name = "SKU:QTY:CONDITION", value_parser = receipt_spec, required = true)]
        lines: Vec<ReturnReceipt>,
    },
    /// The customer was refunded.
    Refund {
        rma: ReturnId,
        /// Amount in minor units.
        #[arg(long)]
        amount: i64,
        /// Idempotency key (default: a fresh one).
        #[arg(long)]
        key: Option<String>,
    },
    /// Replace the returned goods with a new order, given as for `order place`.
    Exchange {
        rma: ReturnId,
        #[command(flatten)]
        order: OrderSpec,
    },
    /// A return by id.
    Get { rma: ReturnId },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Locations from a CSV with header
    /// code,name,kind,lat,lon,ships,pickup,capacity,base_cost,per_km,currency,priority.
    Locations { file: PathBuf },
    /// Stock receipts from a CSV with header sku,location,quantity.
    Stock { file: PathBuf },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("allot").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn negative_coordinates_and_deltas_parse() {
        let cli = parse(&[
            "location",
            "add",
            "LDN",
            "--kind",
            "warehouse",
            "--lat",
            "51.5074",
            "--lon",
            "-0.1278",
        ])
        .unwrap();
        let Command::Location(LocationCommand::Add(add)) = cli.command else { panic!() };
        assert_eq!((add.lat, add.lon), (51_507_400, -127_800));
        assert!(add.ships() && !add.pickup);
        let cli = parse(&["stock", "adjust", "SKU", "LDN", "-5", "--reason", "damaged"]).unwrap();
        assert!(matches!(cli.command, Command::Stock(StockCommand::Adjust { delta: -5, .. })));
    }

    #[test]
    fn no_ships_turns_shipping_off_and_the_last_flag_wins() {
        let base = ["location", "add", "X", "--kind", "store", "--lat", "0", "--lon", "0"];
        let with = |extra: &[&str]| {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            let Command::Location(LocationCommand::Add(add)) = parse(&args).unwrap().command else {
                panic!()
            };
            add.ships()
        };
        assert!(with(&[]));
        assert!(!with(&["--no-ships"]));
        assert!(with(&["--no-ships", "--ships"]));
    }

    const PLACE: [&str; 12] = [
        "order",
        "place",
        "--channel",
        "web",
        "--number",
        "W-1001",
        "--customer",
        "C-42",
        "--currency",
        "GBP",
        "--line",
        "TEE-RED-M:2:1500",
    ];

    fn place(extra: &[&str]) -> Result<OrderSpec, clap::Error> {
        let args: Vec<&str> = PLACE.iter().chain(extra).copied().collect();
        match parse(&args)?.command {
            Command::Order(OrderCommand::Place(spec)) => Ok(spec),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn order_place_takes_lines_and_exactly_one_destination() {
        let spec =
            place(&["--line", "CAP-BLK:1:999", "--ship-to", "51.501009,-0.141588,GB,SW1A 1AA"])
                .unwrap();
        assert_eq!(spec.channel, Channel::Web);
        assert_eq!((spec.number.as_str(), spec.customer.as_str()), ("W-1001", "C-42"));
        assert_eq!(spec.lines.len(), 2);
        assert_eq!(spec.lines[1].unit_price_minor, 999);
        let to = spec.destination.ship_to.unwrap();
        assert_eq!((to.latitude_e6, to.longitude_e6), (51_501_009, -141_588));
        assert_eq!(spec.destination.pickup, None);
        assert!(!spec.backorder && spec.hold.is_none() && spec.key.is_none());

        let spec =
            place(&["--pickup", "LDN", "--hold", "17", "--backorder", "--key", "k-1"]).unwrap();
        assert_eq!(spec.destination.pickup.as_deref(), Some("LDN"));
        assert_eq!((spec.hold, spec.backorder, spec.key.as_deref()), (Some(17), true, Some("k-1")));

        assert!(place(&[]).is_err(), "no destination");
        assert!(place(&["--pickup", "LDN", "--ship-to", "0,0,GB,X"]).is_err(), "two");
        assert!(place(&["--pickup", "LDN", "--line", "SKU:2"]).is_err(), "a line without a price");
        let mut no_lines: Vec<&str> = PLACE[..10].to_vec();
        no_lines.extend(["--pickup", "LDN"]);
        assert!(parse(&no_lines).is_err(), "no line");
    }

    #[test]
    fn a_ship_to_in_the_southern_and_western_hemispheres_parses() {
        let spec = place(&["--ship-to", "-33.8688,-70.6693,cl,8320000"]).unwrap();
        let to = spec.destination.ship_to.unwrap();
        assert_eq!((to.latitude_e6, to.longitude_e6), (-33_868_800, -70_669_300));
        assert_eq!(to.country, "CL");
    }

    #[test]
    fn order_subcommands_parse_their_ids_and_flags() {
        let cli = parse(&["order", "get", "501"]).unwrap();
        assert!(matches!(cli.command, Command::Order(OrderCommand::Get { id: 501 })));
        let cli =
            parse(&["order", "find", "--channel", "call-centre", "--number", "CC-9"]).unwrap();
        let Command::Order(OrderCommand::Find { channel, number }) = cli.command else { panic!() };
        assert_eq!((channel, number.as_str()), (Channel::CallCentre, "CC-9"));
        let cli = parse(&[
            "order",
            "pay",
            "501",
            "--event",
            "captured",
            "--amount",
            "3999",
            "--reference",
            "psp-1",
        ])
        .unwrap();
        let Command::Order(OrderCommand::Pay { id, event, amount, reference, key }) = cli.command
        else {
            panic!()
        };
        assert_eq!(
            (id, event, amount, reference.as_str(), key),
            (501, PayEvent::Captured, 3999, "psp-1", None)
        );
        assert!(
            parse(&["order", "pay", "1", "--event", "paid", "--amount", "1", "--reference", "r"])
                .is_err()
        );
        let cli =
            parse(&["order", "hold", "501", "--reason", "fraud", "--note", "velocity"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Order(OrderCommand::Hold { id: 501, reason: HoldReason::Fraud, .. })
        ));
        assert!(parse(&["order", "hold", "501", "--reason", "whim", "--note", "n"]).is_err());
        assert!(parse(&["order", "unhold", "501"]).is_ok());
        assert!(parse(&["order", "cancel", "501"]).is_err(), "a cancellation needs a reason");
        assert!(parse(&["order", "cancel", "501", "--reason", "customer"]).is_ok());
        let cli = parse(&[
            "order",
            "cancel-lines",
            "501",
            "--line",
            "TEE-RED-M:1",
            "--line",
            "CAP-BLK:1",
            "--reason",
            "out of stock",
        ])
        .unwrap();
        let Command::Order(OrderCommand::CancelLines { lines, .. }) = cli.command else { panic!() };
        assert_eq!(lines.len(), 2);
        assert!(parse(&["order", "cancel-lines", "501", "--reason", "r"]).is_err());
        assert!(matches!(
            parse(&["order", "backorders", "501"]).unwrap().command,
            Command::Order(OrderCommand::Backorders { id: 501 })
        ));
    }

    #[test]
    fn order_list_is_by_customer_or_by_state_with_its_own_cursor() {
        let list = |args: &[&str]| {
            let args: Vec<&str> = ["order", "list"].iter().chain(args).copied().collect();
            parse(&args).map(|cli| match cli.command {
                Command::Order(OrderCommand::List(list)) => list,
                other => panic!("{other:?}"),
            })
        };
        let by_customer =
            list(&["--customer", "C-42", "--before", "480", "--limit", "10"]).unwrap();
        assert_eq!(by_customer.customer.as_deref(), Some("C-42"));
        assert_eq!((by_customer.before, by_customer.page.limit), (Some(480), 10));
        let by_state =
            list(&["--state", "partially-shipped", "--location", "LDN", "--after", "7"]).unwrap();
        assert_eq!(by_state.state, Some(OrderState::PartiallyShipped));
        assert_eq!((by_state.location.as_deref(), by_state.after), (Some("LDN"), Some(7)));
        assert_eq!(by_state.page.limit, PAGE_LIMIT_DEFAULT);

        assert!(list(&[]).is_err(), "neither");
        assert!(list(&["--customer", "C", "--state", "pending"]).is_err(), "both");
        assert!(list(&["--state", "pending", "--before", "3"]).is_err(), "--before is by customer");
        assert!(list(&["--customer", "C", "--after", "3"]).is_err(), "--after is by state");
        assert!(list(&["--customer", "C", "--location", "LDN"]).is_err());
        assert!(list(&["--state", "lost"]).is_err());
        assert!(list(&["--customer", "C", "--limit", "0"]).is_err());
        assert!(list(&["--customer", "C", "--limit", "1001"]).is_err());
        assert_eq!(list(&["--customer", "C", "--limit", "1000"]).unwrap().page.limit, 1000);
    }

    #[test]
    fn shipment_steps_parse_and_ship_needs_carrier_and_tracking() {
        for step in ["get", "release", "start-picking", "pack", "deliver", "ready", "picked-up"] {
            let cli =
                parse(&["shipment", step, "901"]).unwrap_or_else(|error| panic!("{step}: {error}"));
            assert!(matches!(cli.command, Command::Shipment(_)), "{step}");
        }
        let cli =
            parse(&["shipment", "ship", "901", "--carrier", "DHL", "--tracking", "JD01"]).unwrap();
        let Command::Shipment(ShipmentCommand::Ship { id, carrier, tracking }) = cli.command else {
            panic!()
        };
        assert_eq!((id, carrier.as_str(), tracking.as_str()), (901, "DHL", "JD01"));
        assert!(parse(&["shipment", "ship", "901", "--carrier", "DHL"]).is_err());
        assert!(parse(&["shipment", "cancel", "901"]).is_err(), "a cancellation needs a reason");
        let cli = parse(&[
            "shipment",
            "short-pick",
            "901",
            "--missing",
            "SKU-1:2",
            "--missing",
            "SKU-2:1",
        ])
        .unwrap();
        let Command::Shipment(ShipmentCommand::ShortPick { missing, .. }) = cli.command else {
            panic!()
        };
        assert_eq!(missing.len(), 2);
        assert!(parse(&["shipment", "short-pick", "901"]).is_err());
        assert!(parse(&["shipment", "release", "not-an-id"]).is_err());
    }

    #[test]
    fn picklist_and_kpis_parse() {
        let cli = parse(&["picklist", "LDN", "--after", "900", "--limit", "20"]).unwrap();
        let Command::Picklist { location, after, page } = cli.command else { panic!() };
        assert_eq!((location.as_str(), after, page.limit), ("LDN", Some(900), 20));
        let cli = parse(&["picklist", "LDN"]).unwrap();
        assert!(matches!(cli.command, Command::Picklist { after: None, .. }));
        assert!(parse(&["picklist"]).is_err());
        assert!(parse(&["picklist", "LDN", "--limit", "0"]).is_err());
        assert!(matches!(parse(&["kpis", "--json"]).unwrap().command, Command::Kpis));
    }

    #[test]
    fn return_subcommands_parse_lines_conditions_and_the_exchange_order() {
        let cli =
            parse(&["return", "request", "501", "--line", "TEE-RED-M:1", "--reason", "too small"])
                .unwrap();
        assert!(matches!(cli.command, Command::Return(ReturnCommand::Request { order: 501, .. })));
        assert!(parse(&["return", "request", "501", "--reason", "r"]).is_err(), "no line");
        assert!(parse(&["return", "authorise", "3"]).is_ok());
        let cli = parse(&[
            "return",
            "receive",
            "3",
            "--location",
            "LDN",
            "--line",
            "TEE-RED-M:1:resellable",
            "--line",
            "CAP-BLK:1:damaged:crushed",
        ])
        .unwrap();
        let Command::Return(ReturnCommand::Receive { rma, location, lines }) = cli.command else {
            panic!()
        };
        assert_eq!((rma, location.as_str(), lines.len()), (3, "LDN", 2));
        assert!(
            parse(&["return", "receive", "3", "--location", "LDN", "--line", "A:1:lost"]).is_err()
        );
        assert!(
            parse(&["return", "receive", "3", "--line", "A:1:resellable"]).is_err(),
            "no location"
        );
        let cli = parse(&["return", "refund", "3", "--amount", "1500"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Return(ReturnCommand::Refund { rma: 3, amount: 1500, .. })
        ));
        let args: Vec<&str> = ["return", "exchange", "3"]
            .iter()
            .chain(&PLACE[2..])
            .chain(&["--pickup", "LDN"])
            .copied()
            .collect();
        let Command::Return(ReturnCommand::Exchange { rma, order }) = parse(&args).unwrap().command
        else {
            panic!()
        };
        assert_eq!((rma, order.number.as_str()), (3, "W-1001"));
        assert!(parse(&["return", "exchange", "3", "--pickup", "LDN"]).is_err(), "no order");
        assert!(parse(&["return", "get", "3"]).is_ok());
    }

    #[test]
    fn a_routed_hold_takes_sku_lines_and_a_destination() {
        let cli = parse(&[
            "hold", "route", "--line", "A:2", "--line", "B:1", "--pickup", "LDN", "--ttl-ms",
            "60000",
        ])
        .unwrap();
        let Command::Hold(HoldCommand::Route { lines, destination, ttl_ms }) = cli.command else {
            panic!()
        };
        assert_eq!(lines.len(), 2);
        assert_eq!(destination.pickup.as_deref(), Some("LDN"));
        assert_eq!(ttl_ms, Some(60_000));
        assert!(parse(&["hold", "route", "--line", "A:2"]).is_err(), "no destination");
        assert!(parse(&["hold", "route", "--pickup", "LDN"]).is_err(), "no line");
        assert!(
            parse(&["hold", "route", "--line", "A@LDN:2", "--pickup", "LDN"]).is_ok(),
            "@ is part of a SKU"
        );
    }

    #[test]
    fn ca_and_cert_exclude_each_other_and_bad_lines_are_usage_errors() {
        assert!(parse(&["--ca", "a.pem", "--cert", "b.pem", "ping"]).is_err());
        assert!(parse(&["hold", "create", "SKU@LDN"]).is_err());
        assert!(parse(&["hold", "create"]).is_err());
        let cli = parse(&["hold", "create", "A@LDN:2", "B@MAN:1", "--ttl-ms", "60000", "--json"])
            .unwrap();
        assert!(cli.json);
        let Command::Hold(HoldCommand::Create { lines, ttl_ms }) = cli.command else { panic!() };
        assert_eq!(lines.len(), 2);
        assert_eq!(ttl_ms, Some(60_000));
    }

    #[test]
    fn shortages_page_after_a_cell_and_committed_holds_are_consumed_or_uncommitted() {
        let cli = parse(&["stock", "shortages", "--after", "TEE@LDN", "--limit", "5"]).unwrap();
        let Command::Stock(StockCommand::Shortages { after, page }) = cli.command else { panic!() };
        let after = after.unwrap();
        assert_eq!((after.sku.as_str(), after.location.as_str(), page.limit), ("TEE", "LDN", 5));
        assert!(parse(&["stock", "shortages", "--after", "TEE"]).is_err(), "a cell is SKU@LOC");
        let cli = parse(&["hold", "consume", "7", "TEE@LDN:2"]).unwrap();
        let Command::Hold(HoldCommand::Consume { id, lines }) = cli.command else { panic!() };
        assert_eq!((id, lines.len(), lines[0].quantity), (7, 1, 2));
        let cli = parse(&["hold", "uncommit", "7"]).unwrap();
        let Command::Hold(HoldCommand::Uncommit { id, lines }) = cli.command else { panic!() };
        assert_eq!((id, lines.is_empty()), (7, true), "no lines: every committed unit");
    }
}
