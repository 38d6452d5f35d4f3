//! Memory of the core's state (DESIGN §6: ≤ 48 B per stock cell, ≤ 400 B per open
//! three-line order), measured with a counting global allocator.
//!
//! Each figure is the growth of live heap bytes while the state takes in the rows being
//! counted, divided by their number; the requests themselves are generated before the
//! first reading. Three columns: bytes the engine asked the allocator for; the same
//! allocations rounded up as glibc's malloc stores them (an 8-byte header, 16-byte
//! granules, a 32-byte minimum; an estimate); and the growth of the resident set.
//! This benchmark reports; it asserts nothing about the targets.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use allot_bench::{Catalogue, CatalogueSpec, HoldDraws, loaded_state};
use allot_engine::codec::{decode_state, encode_state};
use allot_engine::core::hold::{Hold, HoldLine};
use allot_engine::core::idempotency::IdempotencyEntry;
use allot_engine::core::order::{Order, OrderLineRecord, Shipment};
use allot_engine::core::routing::Assessment;
use allot_engine::core::stock::{Cell, SkuStock};
use allot_engine::core::{Applied, Command, Reply, Request, State};
use allot_protocol::order::{Address, Channel, DeliveryRequest, OrderLine, PlaceOrder};

/// Counts live bytes as requested and as glibc malloc would store them.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_CHUNK_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// What glibc's malloc takes for a request of `size` bytes on a 64-bit target.
fn chunk_bytes(size: usize) -> usize {
    ((size + 8 + 15) & !15).max(32)
}

fn count_alloc(size: usize) {
    LIVE_BYTES.fetch_add(size, Relaxed);
    LIVE_CHUNK_BYTES.fetch_add(chunk_bytes(size), Relaxed);
    LIVE_ALLOCATIONS.fetch_add(1, Relaxed);
}

fn count_dealloc(size: usize) {
    LIVE_BYTES.fetch_sub(size, Relaxed);
    LIVE_CHUNK_BYTES.fetch_sub(chunk_bytes(size), Relaxed);
    LIVE_ALLOCATIONS.fetch_sub(1, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            count_alloc(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            count_alloc(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: `pointer` came from `alloc` with this layout.
        unsafe { System.dealloc(pointer, layout) };
        count_dealloc(layout.size());
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `pointer` came from `alloc` with this layout; forwarded unchanged.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            count_dealloc(layout.size());
            count_alloc(new_size);
        }
        moved
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One reading of the heap and the resident set.
#[derive(Clone, Copy)]
struct Reading {
    bytes: usize,
    chunk_bytes: usize,
    allocations: usize,
    resident_bytes: usize,
}

/// Takes a reading after handing freed heap back to the kernel, so that the resident set
/// grows only by what the next step really touches.
fn read() -> Reading {
    trim_heap();
    Reading {
        bytes: LIVE_BYTES.load(Relaxed),
        chunk_bytes: LIVE_CHUNK_BYTES.load(Relaxed),
        allocations: LIVE_ALLOCATIONS.load(Relaxed),
        resident_bytes: resident_bytes(),
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    unsafe extern "C" {
        /// glibc: releases free heap memory to the kernel.
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: malloc_trim takes no pointers and may be called at any time.
    unsafe { malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// The resident set from /proc/self/statm (0 where there is none).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize =
        statm.split_whitespace().nth(1).and_then(|field| field.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// One row of the report: growth between two readings, per counted item.
struct Row {
    what: String,
    count: usize,
    before: Reading,
    after: Reading,
}

impl Row {
    fn print(&self) {
        let per = |after: usize, before: usize| (after as f64 - before as f64) / self.count as f64;
        println!(
            "{:<50} {:>9} {:>8.1} {:>9.1} {:>8.1} {:>7.2} {:>8.1}",
            self.what,
            self.count,
            per(self.after.bytes, self.before.bytes),
            per(self.after.chunk_bytes, self.before.chunk_bytes),
            per(self.after.resident_bytes, self.before.resident_bytes),
            per(self.after.allocations, self.before.allocations),
            (self.after.bytes - self.before.bytes) as f64 / (1 << 20) as f64,
        );
    }
}

fn header(title: &str, unit: &str) {
    println!();
    println!("{title}");
    println!(
        "{:<50} {:>9} {:>8} {:>9} {:>8} {:>7} {:>8}",
        "state", unit, "B req", "B malloc", "B RSS", "allocs", "MiB req"
    );
    println!("{}", "-".repeat(106));
}

const SEED: u64 = 0x00a1_1075_eed5;
const START_MS: u64 = 1_700_000_000_000;

/// Builds the catalogue's state and reports its growth per stock cell.
fn stock_row(what: &str, spec: CatalogueSpec) -> Row {
    let catalogue = Catalogue::new(spec);
    // Generated up front so the reading covers only what the state keeps.
    let setup: Vec<Request> = catalogue.setup_requests().collect();
    let before = read();
    let mut state = State::new();
    for request in &setup {
        let applied = state.apply(request, 0);
        assert!(applied.changed, "{:?}", applied.outcome);
    }
    let after = read();
    assert_eq!(state.cell_count(), catalogue.cell_count());
    drop(state);
    Row { what: what.to_owned(), count: catalogue.cell_count(), before, after }
}

/// Applies `count` holds drawn by `draw` to a copy of `base` and reports the growth per
/// live hold.
fn hold_row(
    what: &str,
    base: &State,
    count: usize,
    mut draws: HoldDraws<'_>,
    draw: fn(&mut HoldDraws<'_>) -> Request,
) -> Row {
    let requests: Vec<Request> = (0..count).map(|_| draw(&mut draws)).collect();
    let mut state = base.clone();
    let before = read();
    for request in &requests {
        let applied = state.apply(request, START_MS);
        assert!(applied.changed, "{:?}", applied.outcome);
    }
    let after = read();
    assert_eq!(state.hold_count(), count);
    Row { what: what.to_owned(), count, before, after }
}

/// Places `count` routed orders of three Zipf lines on a copy of `base` (its locations
/// given room for them all) and reports the growth per open order: the order, its
/// shipments and every index entry they add.
fn order_row(what: &str, base: &State, count: usize, mut draws: HoldDraws<'_>) -> Row {
    let to = Address {
        latitude_e6: 40_000_000,
        longitude_e6: -100_000_000,
        country: "US".into(),
        postcode: "66101".into(),
    };
    let requests: Vec<Request> = (0..count)
        .map(|index| {
            let Command::Reserve { lines, .. } = draw_cart(&mut draws) else { unreachable!() };
            let mut order_lines: Vec<OrderLine> = Vec::new();
            for line in lines {
                if order_lines.iter().all(|known| known.sku != line.sku) {
                    order_lines.push(OrderLine {
                        sku: line.sku,
                        quantity: line.quantity,
                        unit_price_minor: 1_999,
                    });
                }
            }
            Request::new(Command::PlaceOrder(PlaceOrder {
                channel: Channel::Web,
                external_number: format!("W-{index:08}"),
                customer: format!("C-{:06}", index % 200_000),
                delivery: DeliveryRequest::Ship { to: to.clone() },
                currency: "USD".into(),
                lines: order_lines,
                hold: None,
                allow_backorder: false,
            }))
        })
        .collect();
    let mut state = base.clone();
    let before = read();
    for request in &requests {
        let applied = state.apply(request, START_MS);
        assert!(applied.changed, "{:?}", applied.outcome);
    }
    let after = read();
    assert_eq!(state.order_count(), count);
    Row { what: what.to_owned(), count, before, after }
}

/// Places `count` one-line holds on a copy of `base` and releases them all: the growth
/// per hold is what a resolved hold keeps while it is retained.
fn resolved_row(what: &str, base: &State, count: usize, mut draws: HoldDraws<'_>) -> Row {
    let requests: Vec<Request> = (0..count).map(|_| draws.one_line()).collect();
    let mut state = base.clone();
    let before = read();
    for request in &requests {
        let applied = state.apply(request, START_MS);
        let Ok(Reply::HoldPlaced { hold, .. }) = applied.outcome else {
            panic!("{:?}", applied.outcome)
        };
        let release = Request::new(Command::ReleaseHold { hold, lines: Vec::new() });
        assert!(state.apply(&release, START_MS).changed);
    }
    let after = read();
    assert_eq!(state.counters().holds_released, count as u64);
    Row { what: what.to_owned(), count, before, after }
}

/// Applies `count` keyed receipts of one unit to one cell of a copy of `base`: the cell
/// exists, so the growth per request is the idempotency table's, all it keeps included.
fn key_row(what: &str, base: &State, count: usize, mut draws: HoldDraws<'_>) -> Row {
    let Command::Reserve { lines, .. } = draws.one_line().command else { unreachable!() };
    let (sku, location) = (lines[0].sku.clone(), lines[0].location.clone());
    let requests: Vec<Request> = (0..count)
        .map(|n| {
            let receive =
                Command::Receive { sku: sku.clone(), location: location.clone(), quantity: 1 };
            Request::with_key(format!("checkout-{n:012}"), receive)
        })
        .collect();
    let mut state = base.clone();
    let before = read();
    for request in &requests {
        assert!(state.apply(request, START_MS).changed);
    }
    let after = read();
    assert_eq!(state.idempotency_key_count(), count);
    Row { what: what.to_owned(), count, before, after }
}

fn draw_cart(draws: &mut HoldDraws<'_>) -> Command {
    draws.cart(3).command
}

/// The checkout state rebuilt from its snapshot body, whose vectors are sized exactly;
/// growth per stock cell.
fn snapshot_row(what: &str, state: &State) -> Row {
    let body = encode_state(state);
    let before = read();
    let loaded = decode_state(&body).expect("a body just encoded decodes");
    let after = read();
    assert_eq!(loaded.cell_count(), state.cell_count());
    Row { what: what.to_owned(), count: state.cell_count(), before, after }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    println!("allot core memory (counting allocator; growth of live heap per item)");
    println!(
        "sizes: Cell {} B, SkuStock {} B, Hold {} B, HoldLine {} B, IdempotencyEntry {} B,",
        size_of::<Cell>(),
        size_of::<SkuStock>(),
        size_of::<Hold>(),
        size_of::<HoldLine>(),
        size_of::<IdempotencyEntry>(),
    );
    println!(
        "       Reply {} B, Applied {} B, Request {} B, Command {} B,",
        size_of::<Reply>(),
        size_of::<Applied>(),
        size_of::<Request>(),
        size_of::<Command>(),
    );
    println!(
        "       Order {} B, OrderLineRecord {} B, Shipment {} B, Assessment {} B",
        size_of::<Order>(),
        size_of::<OrderLineRecord>(),
        size_of::<Shipment>(),
        size_of::<Assessment>(),
    );

    header("stock cells (target ≤ 48 B per cell)", "cells");
    let shapes = [
        ("checkout: 100 k SKUs × 10 of 50 locations", 100_000, 50, 10),
        ("1 M SKUs × 1 of 50 locations", 1_000_000, 50, 1),
        ("10 k SKUs × 100 of 100 locations", 10_000, 100, 100),
    ];
    for (what, n_skus, n_locations, locations_per_sku) in shapes {
        let spec = CatalogueSpec {
            n_skus,
            n_locations,
            locations_per_sku,
            units_per_cell: 1_000_000,
            seed: SEED,
        };
        stock_row(what, spec).print();
    }
    let catalogue = Catalogue::new(CatalogueSpec::checkout(1_000_000, SEED));
    let base = loaded_state(&catalogue);
    snapshot_row("checkout, decoded from its snapshot body", &base).print();

    header("live holds on the checkout state (target ≤ 128 B per live one-line hold)", "holds");
    for count in [100_000, 1_000_000] {
        let rows = [
            (
                "one-line holds",
                catalogue.holds(1),
                (|d| d.one_line()) as fn(&mut HoldDraws<'_>) -> Request,
            ),
            ("three-line holds (Zipf)", catalogue.holds(2), |d| d.cart(3)),
            ("five-line holds (Zipf)", catalogue.holds(3), |d| d.cart(5)),
            ("one-line holds + idempotency key", catalogue.holds(4).with_keys("checkout"), |d| {
                d.one_line()
            }),
            ("three-line holds + idempotency key", catalogue.holds(5).with_keys("checkout"), |d| {
                d.cart(3)
            }),
        ];
        for (what, draws, draw) in rows {
            hold_row(&format!("{what} (×{count})"), &base, count, draws, draw).print();
        }
    }
    header("retained for retries (target ≤ 64 B per key)", "entries");
    for count in [100_000, 1_000_000] {
        key_row(
            &format!("idempotency keys, keyed receipts (×{count})"),
            &base,
            count,
            catalogue.holds(7),
        )
        .print();
        resolved_row(
            &format!("released one-line holds (×{count})"),
            &base,
            count,
            catalogue.holds(8),
        )
        .print();
    }
    header(
        "open orders on the checkout state (target ≤ 400 B per open three-line order)",
        "orders",
    );
    let roomy =
        Catalogue::new(CatalogueSpec::checkout(1_000_000, SEED)).with_daily_capacity(1_000_000_000);
    let roomy_base = loaded_state(&roomy);
    for count in [100_000, 1_000_000] {
        let what = format!("three-line orders (Zipf), routed (×{count})");
        order_row(&what, &roomy_base, count, roomy.holds(6)).print();
    }
    println!();
    println!(
        "B req: bytes requested from the allocator; B malloc: the same rounded as glibc stores"
    );
    println!("them (estimate); B RSS: resident-set growth; allocs: live allocations per item.");
    println!(
        "Hold rows include the hash tables' slack (capacity a power of two, at most 7/8 full),"
    );
    println!("so a figure depends on where the count falls between two resizes.");
}
