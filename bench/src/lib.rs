//! Workload generators shared by the benchmarks: a deterministic PRNG, a Zipf sampler and
//! the `checkout` catalogue of DESIGN §6 (SKUs stocked at a few of many locations).
//!
//! Everything here is a pure function of its seed, so two runs of a benchmark apply the
//! same requests in the same order and their figures compare.
//!
//! [`harness`] is the `allot-bench` load harness that drives a server over QUIC with
//! these generators.

pub mod harness;

use std::collections::HashMap;

use allot_engine::core::{
    Command, LineRequest, LocationKind, LocationSpec, Request, ShippingCost, State,
};

/// SplitMix64: tiny, fast and good enough to spread workload draws; fully determined by
/// its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (multiply-shift; the bias is below 2⁻³² for any bound that
    /// fits a catalogue).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "an empty range has no values");
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A value in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A value in `low..=high`.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        assert!(low <= high);
        low + self.below((high - low) as u64 + 1) as i64
    }
}

/// Zipf distribution over ranks `0..n` (rank 0 the most popular) with exponent `s`:
/// `P(rank k) ∝ 1 / (k + 1)^s`. Sampling is a binary search of a precomputed CDF.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        assert!(n > 0, "a Zipf distribution needs at least one rank");
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 1..=n {
            total += 1.0 / (rank as f64).powf(s);
            cdf.push(total);
        }
        for value in &mut cdf {
            *value /= total;
        }
        Zipf { cdf }
    }

    pub fn len(&self) -> usize {
        self.cdf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cdf.is_empty()
    }

    /// A rank in `0..len()`.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len() - 1)
    }
}

/// The shape of a catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueSpec {
    pub n_skus: usize,
    pub n_locations: usize,
    /// How many distinct locations stock each SKU.
    pub locations_per_sku: usize,
    /// Units received at every stocked cell.
    pub units_per_cell: u32,
    pub seed: u64,
}

impl CatalogueSpec {
    /// DESIGN §6 `checkout`: 100 k SKUs × 50 locations, each SKU stocked at 10 of them.
    pub fn checkout(units_per_cell: u32, seed: u64) -> CatalogueSpec {
        CatalogueSpec {
            n_skus: 100_000,
            n_locations: 50,
            locations_per_sku: 10,
            units_per_cell,
            seed,
        }
    }

    pub fn cell_count(&self) -> usize {
        self.n_skus * self.locations_per_sku
    }
}

/// Zipf exponent of SKU popularity in the `checkout` workload.
pub const SKU_POPULARITY_EXPONENT: f64 = 1.0;

/// Units on every drawn line (DESIGN §6: carts and buyers of one unit each).
pub const UNITS_PER_LINE: u32 = 1;

/// Most lines in a `checkout` cart (DESIGN §6: carts of 1–5 lines).
pub const CHECKOUT_CART_LINES_MAX: usize = 5;

/// A `checkout` cart size: 1–5 lines, uniformly.
pub fn draw_checkout_cart_size(rng: &mut Rng) -> usize {
    1 + rng.below(CHECKOUT_CART_LINES_MAX as u64) as usize
}

/// SKU codes are `{prefix}{index:07}`.
pub const SKU_PREFIX_DEFAULT: &str = "SKU-";

fn sku_names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|index| format!("{prefix}{index:07}")).collect()
}

/// One line of a drawn hold, by catalogue index: SKU `sku` at location `location`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CellPick {
    pub sku: u32,
    pub location: u32,
}

/// A generated catalogue: locations, SKUs, which locations stock which SKU, and how
/// popular each SKU is.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub spec: CatalogueSpec,
    locations: Vec<LocationSpec>,
    skus: Vec<String>,
    /// What every SKU code starts with; the rest is its index.
    sku_prefix: String,
    /// `locations_per_sku` location indexes per SKU, flattened, sorted within a SKU.
    stocked_at: Vec<u32>,
    /// SKU index of each popularity rank (a seeded permutation, so popularity does not
    /// follow the order SKUs were created in).
    sku_of_rank: Vec<u32>,
    popularity: Zipf,
    location_by_code: HashMap<String, u32>,
}

impl Catalogue {
    pub fn new(spec: CatalogueSpec) -> Catalogue {
        assert!(spec.n_skus > 0 && spec.n_locations > 0, "an empty catalogue");
        assert!(
            (1..=spec.n_locations).contains(&spec.locations_per_sku),
            "each SKU is stocked at between one and every location"
        );
        assert!(spec.n_skus <= u32::MAX as usize && spec.n_locations <= u32::MAX as usize);
        let mut rng = Rng::new(spec.seed);
        let locations: Vec<LocationSpec> =
            (0..spec.n_locations).map(|index| location_spec(index, &mut rng)).collect();
        let skus = sku_names(SKU_PREFIX_DEFAULT, spec.n_skus);

        let mut stocked_at = Vec::with_capacity(spec.cell_count());
        let mut deck: Vec<u32> = (0..spec.n_locations as u32).collect();
        for _ in 0..spec.n_skus {
            // A partial Fisher–Yates shuffle picks distinct locations.
            for slot in 0..spec.locations_per_sku {
                let pick = slot + rng.below((spec.n_locations - slot) as u64) as usize;
                deck.swap(slot, pick);
            }
            let start = stocked_at.len();
            stocked_at.extend_from_slice(&deck[..spec.locations_per_sku]);
            stocked_at[start..].sort_unstable();
        }

        let mut sku_of_rank: Vec<u32> = (0..spec.n_skus as u32).collect();
        for index in (1..sku_of_rank.len()).rev() {
            let pick = rng.below(index as u64 + 1) as usize;
            sku_of_rank.swap(index, pick);
        }

        let location_by_code = locations
            .iter()
            .enumerate()
            .map(|(index, spec): (usize, &LocationSpec)| (spec.code.clone(), index as u32))
            .collect();
        Catalogue {
            spec,
            location_by_code,
            locations,
            skus,
            sku_prefix: SKU_PREFIX_DEFAULT.to_owned(),
            stocked_at,
            sku_of_rank,
            popularity: Zipf::new(spec.n_skus, SKU_POPULARITY_EXPONENT),
        }
    }

    /// The same catalogue with SKU codes `{prefix}{index:07}`, so catalogues of different
    /// workloads can share one server without sharing stock.
    pub fn with_sku_prefix(mut self, prefix: &str) -> Catalogue {
        self.skus = sku_names(prefix, self.spec.n_skus);
        self.sku_prefix = prefix.to_owned();
        self
    }

    /// The same catalogue with every location taking `shipments` open shipments a day.
    pub fn with_daily_capacity(mut self, shipments: u32) -> Catalogue {
        for location in &mut self.locations {
            location.daily_capacity = shipments;
        }
        self
    }

    /// The index of the SKU with code `code`.
    pub fn sku_index(&self, code: &str) -> Option<u32> {
        let index: usize = code.strip_prefix(&self.sku_prefix)?.parse().ok()?;
        (index < self.skus.len() && self.skus[index] == code).then_some(index as u32)
    }

    pub fn cell_count(&self) -> usize {
        self.stocked_at.len()
    }

    /// The index of the location with code `code`.
    pub fn location_index(&self, code: &str) -> Option<u32> {
        self.location_by_code.get(code).copied()
    }

    pub fn sku_count(&self) -> usize {
        self.skus.len()
    }

    /// The code of location `index`.
    pub fn location_code(&self, index: usize) -> &str {
        &self.locations[index].code
    }

    pub fn locations(&self) -> &[LocationSpec] {
        &self.locations
    }

    pub fn sku(&self, index: usize) -> &str {
        &self.skus[index]
    }

    /// The location indexes stocking SKU `index`.
    pub fn stocked_at(&self, index: usize) -> &[u32] {
        let per = self.spec.locations_per_sku;
        &self.stocked_at[index * per..(index + 1) * per]
    }

    /// The requests that build the catalogue in an empty state: every location, then a
    /// receipt at every stocked cell (SKU by SKU).
    pub fn setup_requests(&self) -> impl Iterator<Item = Request> + '_ {
        let locations =
            self.locations.iter().map(|spec| Request::new(Command::UpsertLocation(spec.clone())));
        let receipts = self.receipts().map(|(sku, location, quantity)| {
            Request::new(Command::Receive { sku: sku.into(), location: location.into(), quantity })
        });
        locations.chain(receipts)
    }

    /// Every stocked cell, SKU by SKU, with the units it receives:
    /// `(sku code, location code, units)`.
    pub fn receipts(&self) -> impl Iterator<Item = (&str, &str, u32)> + '_ {
        (0..self.skus.len()).flat_map(move |sku| {
            self.stocked_at(sku).iter().map(move |&location| {
                (self.sku(sku), self.location_code(location as usize), self.spec.units_per_cell)
            })
        })
    }

    /// A line of [`UNITS_PER_LINE`] at `pick`.
    pub fn line(&self, pick: CellPick) -> LineRequest {
        LineRequest {
            sku: self.sku(pick.sku as usize).to_owned(),
            location: self.location_code(pick.location as usize).to_owned(),
            quantity: UNITS_PER_LINE,
        }
    }

    /// A stream of hold requests; `stream` selects an independent sequence, so several
    /// streams over one catalogue do not repeat each other.
    pub fn holds(&self, stream: u64) -> HoldDraws<'_> {
        HoldDraws {
            catalogue: self,
            rng: self.stream_rng(stream),
            ttl_ms: None,
            keys: None,
            drawn: 0,
        }
    }

    /// The generator of stream `stream` of draws over this catalogue.
    pub fn stream_rng(&self, stream: u64) -> Rng {
        Rng::new(self.spec.seed ^ stream.wrapping_add(1).wrapping_mul(0xd1b5_4a32_d192_ed03))
    }

    /// A uniformly random stocked cell.
    pub fn draw_cell(&self, rng: &mut Rng) -> CellPick {
        let cell = rng.below(self.cell_count() as u64) as usize;
        let sku = cell / self.spec.locations_per_sku;
        CellPick { sku: sku as u32, location: self.stocked_at[cell] }
    }

    /// A SKU index drawn by Zipf popularity.
    pub fn draw_popular_sku(&self, rng: &mut Rng) -> usize {
        let rank = self.popularity.sample(rng);
        self.sku_of_rank[rank] as usize
    }

    /// `lines` distinct SKUs (fewer if the catalogue has fewer) drawn by Zipf popularity,
    /// each at a random location stocking it.
    pub fn draw_cart(&self, rng: &mut Rng, lines: usize) -> Vec<CellPick> {
        let lines = lines.min(self.skus.len());
        let mut chosen: Vec<usize> = Vec::with_capacity(lines);
        while chosen.len() < lines {
            let sku = self.draw_popular_sku(rng);
            if !chosen.contains(&sku) {
                chosen.push(sku);
            }
        }
        chosen
            .into_iter()
            .map(|sku| {
                let at = self.stocked_at(sku);
                let location = at[rng.below(at.len() as u64) as usize];
                CellPick { sku: sku as u32, location }
            })
            .collect()
    }
}

/// Draws hold requests against a catalogue; every line is at a stocked cell.
#[derive(Debug, Clone)]
pub struct HoldDraws<'a> {
    catalogue: &'a Catalogue,
    rng: Rng,
    ttl_ms: Option<u64>,
    /// Prefix of the idempotency key given to each request, if any.
    keys: Option<String>,
    drawn: u64,
}

impl HoldDraws<'_> {
    /// Gives every request the TTL `ttl_ms` (default: the engine's).
    pub fn with_ttl(mut self, ttl_ms: u64) -> Self {
        self.ttl_ms = Some(ttl_ms);
        self
    }

    /// Gives every request a distinct idempotency key `{prefix}-{n}`.
    pub fn with_keys(mut self, prefix: impl Into<String>) -> Self {
        self.keys = Some(prefix.into());
        self
    }

    /// A one-line hold of one unit at a uniformly random stocked cell.
    pub fn one_line(&mut self) -> Request {
        let pick = self.one_line_cell();
        let line = self.catalogue.line(pick);
        self.request(vec![line])
    }

    /// The cell of [`one_line`](Self::one_line): uniformly random among stocked cells.
    pub fn one_line_cell(&mut self) -> CellPick {
        self.catalogue.draw_cell(&mut self.rng)
    }

    /// A cart of `lines` distinct SKUs (fewer if the catalogue has fewer) drawn by Zipf
    /// popularity, one unit each, each at a random location stocking it.
    pub fn cart(&mut self, lines: usize) -> Request {
        let requested =
            self.cart_cells(lines).into_iter().map(|pick| self.catalogue.line(pick)).collect();
        self.request(requested)
    }

    /// The cells of [`cart`](Self::cart).
    pub fn cart_cells(&mut self, lines: usize) -> Vec<CellPick> {
        self.catalogue.draw_cart(&mut self.rng, lines)
    }

    /// A cart of 1–5 lines, uniformly (the `checkout` cart sizes).
    pub fn checkout_cart(&mut self) -> Request {
        let lines = self.checkout_cart_size();
        self.cart(lines)
    }

    /// A `checkout` cart size: 1–5 lines, uniformly.
    pub fn checkout_cart_size(&mut self) -> usize {
        draw_checkout_cart_size(&mut self.rng)
    }

    fn request(&mut self, lines: Vec<LineRequest>) -> Request {
        let command = Command::Reserve { lines, ttl_ms: self.ttl_ms };
        self.drawn += 1;
        match &self.keys {
            Some(prefix) => Request::with_key(format!("{prefix}-{}", self.drawn), command),
            None => Request::new(command),
        }
    }
}

/// A state with the catalogue's locations and stock; panics if any setup request fails.
pub fn loaded_state(catalogue: &Catalogue) -> State {
    let mut state = State::new();
    for request in catalogue.setup_requests() {
        let applied = state.apply(&request, 0);
        assert!(applied.changed, "setup request {request:?} failed: {:?}", applied.outcome);
    }
    state
}

/// A location with a code, a plausible position in the contiguous United States and
/// attributes that vary with its index.
fn location_spec(index: usize, rng: &mut Rng) -> LocationSpec {
    let warehouse = index.is_multiple_of(10);
    LocationSpec {
        code: format!("LOC-{index:04}"),
        name: if warehouse {
            format!("Distribution centre {index}")
        } else {
            format!("Store {index}")
        },
        kind: if warehouse { LocationKind::Warehouse } else { LocationKind::Store },
        latitude_e6: rng.between(25_000_000, 49_000_000) as i32,
        longitude_e6: rng.between(-124_000_000, -67_000_000) as i32,
        ships: true,
        pickup: !warehouse,
        daily_capacity: if warehouse { 20_000 } else { 500 },
        shipping_cost: ShippingCost {
            base_minor: if warehouse { 400 } else { 650 },
            per_km_minor: 2,
            currency: "USD".to_owned(),
        },
        priority: index as u32,
        active: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> Catalogue {
        Catalogue::new(CatalogueSpec {
            n_skus: 500,
            n_locations: 20,
            locations_per_sku: 4,
            units_per_cell: 100,
            seed,
        })
    }

    fn drawn(catalogue: &Catalogue) -> Vec<Request> {
        let mut draws = catalogue.holds(0).with_keys("cart");
        let mut requests: Vec<Request> = (0..50).map(|_| draws.one_line()).collect();
        requests.extend((0..50).map(|_| draws.cart(5)));
        requests.extend((0..50).map(|_| draws.checkout_cart()));
        requests
    }

    #[test]
    fn sku_codes_map_back_to_their_index() {
        let catalogue = small(3).with_sku_prefix("LIFE-").with_daily_capacity(1_000_000);
        assert_eq!(catalogue.sku_index(catalogue.sku(42)), Some(42));
        assert_eq!(catalogue.sku_index("LIFE-0000500"), None, "past the catalogue");
        assert_eq!(catalogue.sku_index("SKU-0000042"), None, "another prefix");
        assert_eq!(catalogue.sku_index("LIFE-42"), None, "not the catalogue's spelling");
        assert!(catalogue.locations().iter().all(|spec| spec.daily_capacity == 1_000_000));
    }

    #[test]
    fn same_seed_same_requests() {
        let (a, b) = (small(7), small(7));
        assert!(a.setup_requests().eq(b.setup_requests()));
        assert_eq!(drawn(&a), drawn(&b));
    }

    #[test]
    fn different_seeds_differ() {
        let (a, b) = (small(7), small(8));
        assert!(!a.setup_requests().eq(b.setup_requests()));
        assert_ne!(drawn(&a), drawn(&b));
        let holds = |stream| {
            let mut draws = a.holds(stream);
            (0..20).map(|_| draws.cart(3)).collect::<Vec<_>>()
        };
        assert_ne!(holds(0), holds(1), "streams are independent");
    }

    #[test]
    fn catalogue_shape() {
        let catalogue = small(3);
        assert_eq!(catalogue.cell_count(), 2_000);
        let setup: Vec<Request> = catalogue.setup_requests().collect();
        assert_eq!(setup.len(), 20 + 2_000);
        for sku in 0..500 {
            let at = catalogue.stocked_at(sku);
            assert!(at.windows(2).all(|pair| pair[0] < pair[1]), "distinct, sorted");
            assert!(at.iter().all(|&location| location < 20));
        }
    }

    #[test]
    fn holds_hit_stocked_cells_and_succeed() {
        let catalogue = small(11);
        let mut state = loaded_state(&catalogue);
        assert_eq!(state.cell_count(), 2_000);
        let mut draws = catalogue.holds(0);
        for round in 0..100 {
            let request = if round % 2 == 0 { draws.one_line() } else { draws.cart(5) };
            let Command::Reserve { lines, .. } = &request.command else { unreachable!() };
            let skus: Vec<&str> = lines.iter().map(|line| line.sku.as_str()).collect();
            assert!(skus.iter().enumerate().all(|(i, sku)| !skus[..i].contains(sku)));
            let applied = state.apply(&request, 1);
            assert!(applied.changed, "{:?}", applied.outcome);
        }
        assert_eq!(state.hold_count(), 100);
        state.audit().unwrap();
    }

    #[test]
    fn zipf_favours_rank_one() {
        let zipf = Zipf::new(100_000, 1.0);
        let mut rng = Rng::new(42);
        let mut counts = vec![0u32; zipf.len()];
        for _ in 0..2_000_000 {
            counts[zipf.sample(&mut rng)] += 1;
        }
        // Rank 1 is index 0.
        assert!(counts[0] > counts[9], "{} vs {}", counts[0], counts[9]);
        assert!(counts[9] > counts[99], "{} vs {}", counts[9], counts[99]);
        // P(rank 1) = 1 / H(100 000) ≈ 0.0827.
        let share = f64::from(counts[0]) / 2_000_000.0;
        assert!((0.078..0.088).contains(&share), "rank 1 share {share}");
    }

    #[test]
    fn rng_ranges() {
        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            assert!(rng.below(7) < 7);
            let unit = rng.unit();
            assert!((0.0..1.0).contains(&unit));
            assert!((-3..=3).contains(&rng.between(-3, 3)));
        }
    }
}
