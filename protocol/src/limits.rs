//! Every input limit, as a named constant with its unit last.
//!
//! The protocol checks these before a request reaches the engine, and the engine's core
//! checks them again (it is also driven by its embedded API and by log replay), so both
//! take them from here.

/// Largest frame payload either side accepts: a longer length prefix is refused with
/// `FrameTooLarge` before anything is allocated.
pub const FRAME_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Most requests in one batch frame.
pub const BATCH_REQUESTS_MAX: usize = 1_024;

/// Longest bearer token in `Hello`.
pub const TOKEN_BYTES_MAX: usize = 256;
/// Longest client name in `Hello`.
pub const CLIENT_NAME_BYTES_MAX: usize = 64;

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

/// Latitude and longitude are fixed-point microdegrees so commands stay hashable and
/// exactly reproducible.
pub const LATITUDE_E6_MAX: i32 = 90_000_000;
/// See [`LATITUDE_E6_MAX`].
pub const LONGITUDE_E6_MAX: i32 = 180_000_000;

/// Most lines on one order (the same bound as a hold: a cart becomes an order).
pub const LINES_PER_ORDER_MAX: usize = LINES_PER_HOLD_MAX;
/// Longest customer id (DESIGN §2).
pub const CUSTOMER_BYTES_MAX: usize = 64;
/// Longest postcode in an address.
pub const POSTCODE_BYTES_MAX: usize = 16;
/// Longest carrier name on a shipment.
pub const CARRIER_BYTES_MAX: usize = 32;
/// Longest tracking number on a shipment.
pub const TRACKING_BYTES_MAX: usize = 64;
/// Longest payment reference.
pub const PAYMENT_REFERENCE_BYTES_MAX: usize = 64;
/// Largest unit price or payment amount, in minor units (ten billion in major units):
/// keeps every order total far from overflowing `i64`.
pub const PRICE_MINOR_MAX: i64 = 1_000_000_000_000;
/// Most entries one page of a paged query returns.
pub const PAGE_LIMIT_MAX: u32 = 1_000;
/// Most cells the unpaged `Query::Shortages` answers: its first page.
pub const SHORTAGES_UNPAGED_MAX: u32 = PAGE_LIMIT_MAX;
