//! Every limit the core enforces, as a named constant with its unit last.
//!
//! Limits keep memory and latency bounded under hostile or buggy input: a request that
//! exceeds one gets `InvalidArgument`, never a panic or an unbounded allocation.

/// Longest SKU the retailer may use (DESIGN §2).
pub const SKU_BYTES_MAX: usize = 64;
/// Longest location code.
pub const LOCATION_CODE_BYTES_MAX: usize = 32;
/// Longest order number a hold can be committed to.
pub const ORDER_NUMBER_BYTES_MAX: usize = 64;
/// Longest idempotency key.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 64;
/// Longest free-text reason on an adjustment.
pub const REASON_BYTES_MAX: usize = 128;
/// Longest location display name.
pub const LOCATION_NAME_BYTES_MAX: usize = 128;

/// Most lines in one hold; a cart larger than this is a bulk order, not a checkout.
pub const LINES_PER_HOLD_MAX: usize = 64;
/// Largest quantity in one line or one stock movement.
pub const QUANTITY_PER_LINE_MAX: u32 = 1_000_000;
/// Largest `on_hand` a cell may reach; leaves headroom so sums of u32 fields never wrap.
pub const ON_HAND_MAX: u32 = 1_000_000_000;

/// Shortest hold; anything shorter expires before a checkout can use it.
pub const HOLD_TTL_MS_MIN: u64 = 1_000;
/// Default hold lifetime when the request names none (DESIGN §2: 15 minutes).
pub const HOLD_TTL_MS_DEFAULT: u64 = 15 * 60 * 1_000;
/// Longest hold lifetime; bounds the expiry wheel.
pub const HOLD_TTL_MS_MAX: u64 = 24 * 60 * 60 * 1_000;
/// Expiry granularity: holds are expired by the first tick after the end of their
/// one-second bucket, so a hold outlives its deadline by less than this.
pub const EXPIRY_BUCKET_MS: u64 = 1_000;

/// How long a resolved hold stays queryable, so that resolving it twice gets a precise
/// answer (`already committed / released / expired`) rather than `NotFound`.
pub const HOLD_RESOLVED_RETENTION_MS: u64 = 60 * 60 * 1_000;
/// How long an idempotency key is remembered (engine time).
pub const IDEMPOTENCY_RETENTION_MS: u64 = 24 * 60 * 60 * 1_000;

/// Most holds in memory at once (held plus resolved-and-retained).
pub const HOLDS_MAX: usize = 64 * 1024 * 1024;
/// Most idempotency keys remembered at once.
pub const IDEMPOTENCY_KEYS_MAX: usize = 64 * 1024 * 1024;
/// Most distinct SKUs.
pub const SKUS_MAX: usize = 16 * 1024 * 1024;
/// Most locations.
pub const LOCATIONS_MAX: usize = 65_536;

/// Latitude and longitude are fixed-point microdegrees so commands stay hashable and
/// exactly reproducible.
pub const LATITUDE_E6_MAX: i32 = 90_000_000;
/// See [`LATITUDE_E6_MAX`].
pub const LONGITUDE_E6_MAX: i32 = 180_000_000;
