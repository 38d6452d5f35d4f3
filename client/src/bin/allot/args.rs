//! The command line: global connection flags and every subcommand.

use std::path::PathBuf;

use allot_client::config::{
    ADDR_DEFAULT, CONNECT_TIMEOUT_MS_DEFAULT, REQUEST_TIMEOUT_MS_DEFAULT, RETRIES_DEFAULT,
    SERVER_NAME_DEFAULT,
};
use allot_client::protocol::{HoldId, LineRequest, LocationKind};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::parse::{latitude_e6, line_spec, longitude_e6};

/// Daily capacity of a location added without `--capacity`.
pub const DAILY_CAPACITY_DEFAULT: u32 = 1_000;
/// Routing priority of a location added without `--priority` (lower wins ties).
pub const PRIORITY_DEFAULT: u32 = 100;
/// Currency of a shipping cost given without `--currency`.
pub const CURRENCY_DEFAULT: &str = "EUR";

/// allot's operator CLI: locations, stock, holds and bulk imports.
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
    /// Cart holds: create, get, extend, release, commit.
    #[command(subcommand)]
    Hold(HoldCommand),
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
    /// Every cell whose available is below zero.
    Shortages,
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
    /// Turn a hold into an allocation for an order.
    Commit { id: HoldId, order_number: String },
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
}
