//! `allot-bench`'s command line, and the settings a run resolves from it (each workload's
//! defaults filled in), which are what the report's `config` shows.

use std::path::PathBuf;

use allot_protocol::limits::{HOLD_TTL_MS_MAX, HOLD_TTL_MS_MIN};
use clap::{Parser, ValueEnum};
use serde::Serialize;

/// The TTL of `hold` and `flash-sale` holds: an hour, so nothing expires during a run.
pub const HOLD_TTL_MS_LONG: u64 = 60 * 60 * 1_000;
/// The TTL of `checkout` holds: short, so the 10 % left to expire do so during the run and
/// the audit can wait for the rest.
pub const CHECKOUT_TTL_MS_DEFAULT: u64 = 5_000;
/// Units received at every stocked cell in `hold` and `checkout`.
pub const UNITS_PER_CELL_DEFAULT: u32 = 1_000;
/// DESIGN §6 `flash-sale`: 10 hot SKUs, 10 000 units each over 20 locations, 200 000
/// buyers of one unit.
pub const FLASH_SALE_SKUS: usize = 10;
pub const FLASH_SALE_LOCATIONS: usize = 20;
pub const FLASH_SALE_UNITS_PER_SKU: u32 = 10_000;
pub const FLASH_SALE_BUYERS: u64 = 200_000;
/// DESIGN §6 `lifecycle` runs on the `checkout` catalogue (100 000 SKUs × 50 locations,
/// each SKU at 10) with this many units per cell, so the most popular SKU (about 8 % of
/// order lines) lasts well past a release run; returns put some back.
pub const LIFECYCLE_UNITS_PER_CELL_DEFAULT: u32 = 10_000;
/// Open shipments a `lifecycle` location takes a day: far more than a run opens, so
/// routing never turns a location away for capacity.
pub const LIFECYCLE_DAILY_CAPACITY: u32 = 1_000_000;
/// Measured seconds of a timed workload, and its warm-up before them.
pub const DURATION_S_DEFAULT: f64 = 10.0;
pub const WARMUP_S_DEFAULT: f64 = 2.0;
/// A `flash-sale` runs until every buyer is served; this only bounds a stuck run.
pub const FLASH_SALE_DURATION_S_MAX: f64 = 600.0;
/// Longest wait for one answer before the client retries (with the same idempotency key).
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Most connections, and most requests in flight on one, a run may ask for.
pub const CONNECTIONS_MAX: usize = 1_024;
pub const DEPTH_MAX: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// One-line holds of one unit at uniformly random cells, TTL one hour.
    Hold,
    /// Zipf carts of 1–5 lines, 10 availability reads per hold; 70 % committed, 20 %
    /// released, 10 % left to expire.
    Checkout,
    /// 200 000 buyers of one unit of 10 hot SKUs: exactly the stock is sold.
    FlashSale,
    /// Orders of 1–3 Zipf SKUs placed, paid, read once, then every shipment released,
    /// picked, packed, shipped and delivered; 2 % cancelled right after placement, 8 % of
    /// delivered orders returned (one RMA per shipment, restocked where it shipped from)
    /// and refunded. 100 000 SKUs × 50 locations, 10 000 units per cell. Needs an admin
    /// token.
    Lifecycle,
}

impl WorkloadKind {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Hold => "hold",
            WorkloadKind::Checkout => "checkout",
            WorkloadKind::FlashSale => "flash-sale",
            WorkloadKind::Lifecycle => "lifecycle",
        }
    }
}

/// Load an allot server and check what it acknowledged.
#[derive(Debug, Clone, Parser)]
#[command(name = "allot-bench", version, about, long_about = None)]
pub struct Args {
    /// The workload (DESIGN §6).
    #[arg(long, value_enum, default_value = "hold")]
    pub workload: WorkloadKind,

    /// Server address `host:port`; needs `--ca` and `--token`, or `--data-dir`.
    #[arg(long, conflicts_with = "embedded")]
    pub addr: Option<String>,
    /// CA certificate (PEM) the server's certificate must chain to.
    #[arg(long, requires = "addr")]
    pub ca: Option<PathBuf>,
    /// Bearer token (needs a role that may receive stock and hold).
    #[arg(long, env = "ALLOT_TOKEN", hide_env_values = true, requires = "addr")]
    pub token: Option<String>,
    /// A development server's data directory: its certificate and token are used.
    #[arg(long, requires = "addr", conflicts_with_all = ["ca", "token"])]
    pub data_dir: Option<PathBuf>,
    /// Name the server certificate must carry (with `--ca`).
    #[arg(long, requires = "ca")]
    pub server_name: Option<String>,
    /// Start an allotd in this process, on a temporary data directory, for the run.
    #[arg(long)]
    pub embedded: bool,

    /// QUIC connections.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Requests in flight per connection (a multiple of `--batch`). For `lifecycle`, orders
    /// under way per connection: each has one step in flight at a time.
    #[arg(long, default_value_t = 1)]
    pub depth: usize,
    /// Requests per frame.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Open loop: send this many requests per second in all, on schedule, and measure
    /// latency from when each should have been sent. Without it, the loop is closed.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Measured seconds (for `flash-sale`, a bound: it runs until every buyer is served).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds of load before measuring starts.
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Seed of every generator: the same seed sends the same requests.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// SKUs in the catalogue.
    #[arg(long)]
    pub skus: Option<usize>,
    /// Locations in the catalogue.
    #[arg(long)]
    pub locations: Option<usize>,
    /// Locations stocking each SKU.
    #[arg(long)]
    pub stocked_per_sku: Option<usize>,
    /// Units received at each stocked cell.
    #[arg(long)]
    pub units_per_cell: Option<u32>,
    /// `flash-sale` buyers.
    #[arg(long)]
    pub buyers: Option<u64>,
    /// Hold TTL in milliseconds.
    #[arg(long)]
    pub ttl_ms: Option<u64>,
    /// Prefix of the catalogue's SKU codes (default: one per workload).
    #[arg(long)]
    pub sku_prefix: Option<String>,
    /// Prefix of `lifecycle` order numbers, which must be new to the server (default:
    /// `LC` and the run's start time in base 36, so runs against one server never meet).
    #[arg(long)]
    pub order_prefix: Option<String>,
    /// Per-attempt request timeout in milliseconds.
    #[arg(long, default_value_t = REQUEST_TIMEOUT_MS_DEFAULT)]
    pub timeout_ms: u64,

    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Append `id,sku,location,qty` for every line of every acknowledged hold, as it goes.
    #[arg(long)]
    pub ack_log: Option<PathBuf>,
    /// No progress line each second.
    #[arg(long)]
    pub quiet: bool,
}

/// A run's settings: the arguments with the workload's defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    pub workload: WorkloadKind,
    pub target: String,
    pub connections: usize,
    pub depth: usize,
    pub batch: usize,
    /// Requests per second in all (open loop), or `None` (closed loop).
    pub rate: Option<u64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub seed: u64,
    pub skus: usize,
    pub locations: usize,
    pub stocked_per_sku: usize,
    pub units_per_cell: u32,
    pub buyers: Option<u64>,
    pub ttl_ms: u64,
    pub sku_prefix: String,
    /// What every `lifecycle` order number starts with.
    pub order_prefix: String,
    pub reads_per_hold: usize,
    pub timeout_ms: u64,
}

/// Bytes an order number takes after its prefix: `-`, the stream, `-`, the order (each a
/// `u64` at most 20 digits).
pub const ORDER_NUMBER_SUFFIX_BYTES_MAX: usize = 2 * (1 + 20);

/// `LC` and the current Unix time in milliseconds, base 36.
fn default_order_prefix() -> String {
    let mut millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit((millis % 36) as u32, 36).expect("a base-36 digit"));
        millis /= 36;
        if millis == 0 {
            break;
        }
    }
    digits.iter().rev().fold("LC".to_owned(), |mut prefix, digit| {
        prefix.push(digit.to_ascii_uppercase());
        prefix
    })
}

/// DESIGN §6 `checkout`: 10 availability reads per hold.
pub const CHECKOUT_READS_PER_HOLD: usize = 10;

impl Settings {
    /// The settings `args` ask for, or why they cannot be used.
    pub fn resolve(args: &Args) -> Result<Settings, String> {
        let target = match (&args.addr, args.embedded) {
            (Some(addr), false) => addr.clone(),
            (None, true) => "embedded".to_owned(),
            _ => return Err("give a target: --addr HOST:PORT or --embedded".into()),
        };
        if args.addr.is_some()
            && args.data_dir.is_none()
            && (args.ca.is_none() || args.token.is_none())
        {
            return Err("--addr needs --ca and --token, or --data-dir".into());
        }
        let workload = args.workload;
        let (skus, locations, stocked_per_sku, units_per_cell) = match workload {
            WorkloadKind::Hold | WorkloadKind::Checkout => {
                (100_000, 50, 10, UNITS_PER_CELL_DEFAULT)
            }
            WorkloadKind::Lifecycle => (100_000, 50, 10, LIFECYCLE_UNITS_PER_CELL_DEFAULT),
            WorkloadKind::FlashSale => (
                FLASH_SALE_SKUS,
                FLASH_SALE_LOCATIONS,
                FLASH_SALE_LOCATIONS,
                FLASH_SALE_UNITS_PER_SKU / FLASH_SALE_LOCATIONS as u32,
            ),
        };
        let finite = workload == WorkloadKind::FlashSale;
        let settings = Settings {
            workload,
            target,
            connections: args.connections,
            depth: args.depth,
            batch: args.batch,
            rate: args.rate,
            duration_s: args.duration.unwrap_or(if finite {
                FLASH_SALE_DURATION_S_MAX
            } else {
                DURATION_S_DEFAULT
            }),
            warmup_s: args.warmup.unwrap_or(if finite { 0.0 } else { WARMUP_S_DEFAULT }),
            seed: args.seed,
            skus: args.skus.unwrap_or(skus),
            locations: args.locations.unwrap_or(locations),
            stocked_per_sku: args
                .stocked_per_sku
                .unwrap_or(stocked_per_sku)
                .min(args.locations.unwrap_or(locations)),
            units_per_cell: args.units_per_cell.unwrap_or(units_per_cell),
            buyers: finite.then(|| args.buyers.unwrap_or(FLASH_SALE_BUYERS)),
            ttl_ms: args.ttl_ms.unwrap_or(match workload {
                WorkloadKind::Checkout => CHECKOUT_TTL_MS_DEFAULT,
                WorkloadKind::Hold | WorkloadKind::FlashSale | WorkloadKind::Lifecycle => {
                    HOLD_TTL_MS_LONG
                }
            }),
            sku_prefix: args.sku_prefix.clone().unwrap_or_else(|| match workload {
                WorkloadKind::Hold => "HOLD-".to_owned(),
                WorkloadKind::Checkout => "CART-".to_owned(),
                WorkloadKind::FlashSale => "FLASH-".to_owned(),
                WorkloadKind::Lifecycle => "LIFE-".to_owned(),
            }),
            order_prefix: args.order_prefix.clone().unwrap_or_else(default_order_prefix),
            reads_per_hold: if workload == WorkloadKind::Checkout {
                CHECKOUT_READS_PER_HOLD
            } else {
                0
            },
            timeout_ms: args.timeout_ms,
        };
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), String> {
        if !(1..=CONNECTIONS_MAX).contains(&self.connections) {
            return Err(format!("--connections must be 1 to {CONNECTIONS_MAX}"));
        }
        let batch_max = allot_protocol::limits::BATCH_REQUESTS_MAX;
        if !(1..=batch_max).contains(&self.batch) {
            return Err(format!("--batch must be 1 to {batch_max}"));
        }
        if !(1..=DEPTH_MAX).contains(&self.depth) || !self.depth.is_multiple_of(self.batch) {
            return Err(format!("--depth must be a multiple of --batch, at most {DEPTH_MAX}"));
        }
        if self.rate == Some(0) {
            return Err("--rate must be at least 1".into());
        }
        if !(self.duration_s > 0.0 && self.duration_s.is_finite()) {
            return Err("--duration must be above zero".into());
        }
        if !(self.warmup_s >= 0.0 && self.warmup_s.is_finite()) {
            return Err("--warmup must be zero or more".into());
        }
        if self.skus == 0 || self.locations == 0 || self.stocked_per_sku == 0 {
            return Err("the catalogue needs at least one SKU, location and stocked cell".into());
        }
        if self.units_per_cell == 0 {
            return Err("--units-per-cell must be at least 1".into());
        }
        if self.buyers == Some(0) {
            return Err("--buyers must be at least 1".into());
        }
        // An order number is the prefix, `-`, the stream and `-`, the order's number.
        let prefix_max =
            allot_protocol::limits::ORDER_NUMBER_BYTES_MAX - ORDER_NUMBER_SUFFIX_BYTES_MAX;
        if self.order_prefix.is_empty() || self.order_prefix.len() > prefix_max {
            return Err(format!("--order-prefix must be 1 to {prefix_max} bytes"));
        }
        let ttl_ms = HOLD_TTL_MS_MIN..=HOLD_TTL_MS_MAX;
        if !ttl_ms.contains(&self.ttl_ms) {
            return Err(format!("--ttl-ms must be {HOLD_TTL_MS_MIN} to {HOLD_TTL_MS_MAX}"));
        }
        Ok(())
    }

    /// Requests a closed loop keeps in flight per connection, in frames of `batch`.
    pub fn slots_per_connection(&self) -> usize {
        self.depth / self.batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(extra: &[&str]) -> Result<Settings, String> {
        let args = Args::try_parse_from(["allot-bench"].iter().chain(extra))
            .map_err(|error| error.to_string())?;
        Settings::resolve(&args)
    }

    #[test]
    fn each_workload_gets_its_design_defaults() {
        let hold = resolve(&["--embedded"]).unwrap();
        assert_eq!((hold.skus, hold.locations, hold.stocked_per_sku), (100_000, 50, 10));
        assert_eq!((hold.ttl_ms, hold.reads_per_hold, hold.buyers), (HOLD_TTL_MS_LONG, 0, None));
        let checkout = resolve(&["--embedded", "--workload", "checkout"]).unwrap();
        assert_eq!((checkout.ttl_ms, checkout.reads_per_hold), (CHECKOUT_TTL_MS_DEFAULT, 10));
        let sale = resolve(&["--embedded", "--workload", "flash-sale"]).unwrap();
        assert_eq!((sale.skus, sale.locations, sale.stocked_per_sku), (10, 20, 20));
        assert_eq!(sale.units_per_cell as usize * sale.locations, 10_000);
        assert_eq!((sale.buyers, sale.warmup_s), (Some(200_000), 0.0));
        let lifecycle = resolve(&["--embedded", "--workload", "lifecycle"]).unwrap();
        assert_eq!(
            (lifecycle.skus, lifecycle.locations, lifecycle.stocked_per_sku),
            (100_000, 50, 10)
        );
        assert_eq!(lifecycle.units_per_cell, LIFECYCLE_UNITS_PER_CELL_DEFAULT);
        assert_eq!((lifecycle.sku_prefix.as_str(), lifecycle.buyers), ("LIFE-", None));
        assert!(lifecycle.order_prefix.starts_with("LC"), "{}", lifecycle.order_prefix);
        let named = resolve(&["--embedded", "--workload", "lifecycle", "--order-prefix", "X"]);
        assert_eq!(named.unwrap().order_prefix, "X");
    }

    #[test]
    fn unusable_arguments_are_refused() {
        assert!(resolve(&[]).unwrap_err().contains("--addr"));
        assert!(resolve(&["--addr", "127.0.0.1:7411"]).unwrap_err().contains("--ca"));
        assert!(
            resolve(&["--embedded", "--depth", "10", "--batch", "4"])
                .unwrap_err()
                .contains("multiple")
        );
        assert!(resolve(&["--embedded", "--batch", "2000", "--depth", "2000"]).is_err());
        assert!(resolve(&["--embedded", "--rate", "0"]).is_err());
        assert!(resolve(&["--embedded", "--duration", "0"]).is_err());
        assert!(resolve(&["--embedded", "--ttl-ms", "10"]).unwrap_err().contains("--ttl-ms"));
        assert!(resolve(&["--embedded", "--addr", "127.0.0.1:1"]).is_err());
        assert!(resolve(&["--embedded", "--order-prefix", ""]).is_err());
        let long = "X".repeat(40);
        assert!(resolve(&["--embedded", "--order-prefix", &long]).unwrap_err().contains("prefix"));
    }

    #[test]
    fn slots_carry_depth_in_frames_of_batch() {
        let settings = resolve(&["--embedded", "--depth", "256", "--batch", "64"]).unwrap();
        assert_eq!(settings.slots_per_connection(), 4);
    }
}
