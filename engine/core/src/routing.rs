//! The routing policy (DESIGN §2): which locations fulfil an order's lines, and why.
//!
//! An ordered pipeline, as in Shopify's and HotWax's routing rules:
//!
//! 1. **Filter**: a location must be active, ship (or, for pickup, be the pickup store
//!    and offer pickup), and have room under its daily capacity of open shipments.
//! 2. **One location** for the whole order is preferred: among the filtered locations
//!    that have every line in full, the lowest score wins.
//! 3. **Score** = distance × `distance_minor_per_km` + shipping cost ×
//!    `shipping_cost_percent` / 100 + `workload_penalty_minor` × open / capacity, all in
//!    minor currency units. Distance is haversine from the location to the ship-to point.
//! 4. **Split** when no single location can: greedily take the location covering the
//!    most of what is still missing (lower score, then the tie-break, between equals),
//!    until all is covered or `shipments_max` locations are used. What is left is
//!    reported unfilled; the caller refuses or backorders it.
//!
//! Ties break by priority (lower first), then location code, so routing is
//! deterministic. Distances use `libm`, which computes the same bits on every platform:
//! a routing decision is recomputed on replay and must come out the same everywhere.
//!
//! The module is pure: it sees the locations and the stock through its arguments and
//! returns a plan with every location's assessment, for the caller to apply and record.

use super::ids::{LocationId, SkuId};
use allot_protocol::model::LocationSpec;

/// Mean Earth radius used by the haversine formula, in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// Default weights (`RoutingWeights::default`).
pub const DISTANCE_MINOR_PER_KM_DEFAULT: i64 = 1;
pub const SHIPPING_COST_PERCENT_DEFAULT: i64 = 100;
pub const WORKLOAD_PENALTY_MINOR_DEFAULT: i64 = 500;
pub const SHIPMENTS_MAX_DEFAULT: usize = 4;

/// How routing weighs distance, cost and workload, and how far it may split an order.
/// Part of the state (set by a logged command), so replay routes as the live engine did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RoutingWeights {
    /// Score added per kilometre between the location and the ship-to point.
    pub distance_minor_per_km: i64,
    /// Share of the location's shipping cost (base + per km) counted in the score.
    pub shipping_cost_percent: i64,
    /// Score added for a location at full capacity; proportionally less below it.
    pub workload_penalty_minor: i64,
    /// Most locations (shipments) one order may be split over.
    pub shipments_max: usize,
}

impl Default for RoutingWeights {
    fn default() -> Self {
        RoutingWeights {
            distance_minor_per_km: DISTANCE_MINOR_PER_KM_DEFAULT,
            shipping_cost_percent: SHIPPING_COST_PERCENT_DEFAULT,
            workload_penalty_minor: WORKLOAD_PENALTY_MINOR_DEFAULT,
            shipments_max: SHIPMENTS_MAX_DEFAULT,
        }
    }
}

/// Weights within their ranges: none negative or over `ROUTING_WEIGHT_MAX`, and between
/// one and `SHIPMENTS_PER_ORDER_MAX` shipments.
pub fn check_weights(weights: &RoutingWeights) -> Result<(), String> {
    use super::limits::{ROUTING_WEIGHT_MAX, SHIPMENTS_PER_ORDER_MAX};
    let named = [
        ("distance_minor_per_km", weights.distance_minor_per_km),
        ("shipping_cost_percent", weights.shipping_cost_percent),
        ("workload_penalty_minor", weights.workload_penalty_minor),
    ];
    for (name, value) in named {
        if !(0..=ROUTING_WEIGHT_MAX).contains(&value) {
            return Err(format!(
                "routing weight {name} {value} is outside 0..={ROUTING_WEIGHT_MAX}"
            ));
        }
    }
    if !(1..=SHIPMENTS_PER_ORDER_MAX).contains(&weights.shipments_max) {
        let max = weights.shipments_max;
        return Err(format!("shipments_max {max} is outside 1..={SHIPMENTS_PER_ORDER_MAX}"));
    }
    Ok(())
}

/// Where the order goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Shipped to a point (microdegrees, as locations are given).
    Ship { latitude_e6: i32, longitude_e6: i32 },
    /// Collected at a location: only that location can fulfil it.
    Pickup { location: LocationId },
}

/// One location as routing sees it.
#[derive(Debug, Clone, Copy)]
pub struct Site<'a> {
    pub id: LocationId,
    pub spec: &'a LocationSpec,
    /// Shipments open at the location now (counted against `daily_capacity`).
    pub open_shipments: u32,
}

/// A quantity of one SKU. An order's lines are summed per SKU before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub sku: SkuId,
    pub quantity: u32,
}

/// One location's part of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub location: LocationId,
    pub lines: Vec<Need>,
}

pub use allot_protocol::order::{RoutingRule as Rule, Verdict};

/// Why a location was or was not chosen, with the figures that decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Assessment {
    pub location: LocationId,
    pub distance_m: u64,
    pub shipping_cost_minor: i64,
    pub workload_penalty_minor: i64,
    pub score: i64,
    pub verdict: Verdict,
}

/// The plan: allocations per location, what could not be placed, and the reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub allocations: Vec<Allocation>,
    pub unfilled: Vec<Need>,
    pub rule: Rule,
    /// Every location considered, in location-id order.
    pub assessments: Vec<Assessment>,
}

/// Routes `needs` to `destination` over `sites`, with `available(sku, location)` the
/// units a location can give now.
pub fn route(
    needs: &[Need],
    destination: Destination,
    sites: &[Site<'_>],
    available: impl Fn(SkuId, LocationId) -> i64,
    weights: &RoutingWeights,
) -> Plan {
    let mut sites: Vec<&Site<'_>> = sites.iter().collect();
    sites.sort_unstable_by_key(|site| site.id);
    let mut assessments: Vec<Assessment> =
        sites.iter().map(|site| assess(site, destination, weights)).collect();
    let eligible: Vec<usize> = preference_order(&sites, &assessments)
        .into_iter()
        .filter(|&index| assessments[index].verdict == Verdict::Eligible)
        .collect();
    let has_all = |location: LocationId| {
        needs.iter().all(|need| available(need.sku, location) >= i64::from(need.quantity))
    };

    if let Some(&best) = eligible.iter().find(|&&index| has_all(assessments[index].location)) {
        assessments[best].verdict = Verdict::Chosen;
        let allocation = Allocation { location: assessments[best].location, lines: needs.to_vec() };
        let rule = match destination {
            Destination::Pickup { .. } => Rule::Pickup,
            Destination::Ship { .. } => Rule::OneLocation,
        };
        return Plan { allocations: vec![allocation], unfilled: Vec::new(), rule, assessments };
    }
    split(needs, destination, &eligible, assessments, &available, weights)
}

/// Step 4: the fewest locations, greedily, up to `shipments_max`.
fn split(
    needs: &[Need],
    destination: Destination,
    eligible: &[usize],
    mut assessments: Vec<Assessment>,
    available: &impl Fn(SkuId, LocationId) -> i64,
    weights: &RoutingWeights,
) -> Plan {
    let mut missing: Vec<Need> = needs.to_vec();
    let mut allocations = Vec::new();
    let mut unused: Vec<usize> = eligible.to_vec();
    while allocations.len() < weights.shipments_max && missing.iter().any(|need| need.quantity > 0)
    {
        let covers = |index: usize| -> u64 {
            let location = assessments[index].location;
            missing.iter().map(|need| u64::from(take(need, available(need.sku, location)))).sum()
        };
        // `unused` is in preference order: between equal covers the earlier one wins.
        let Some((_, position, best)) = unused
            .iter()
            .enumerate()
            .map(|(position, &index)| (covers(index), position, index))
            .filter(|&(covered, ..)| covered > 0)
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        else {
            break;
        };
        let location = assessments[best].location;
        let mut lines = Vec::new();
        for need in &mut missing {
            let taken = take(need, available(need.sku, location));
            if taken > 0 {
                lines.push(Need { sku: need.sku, quantity: taken });
                need.quantity -= taken;
            }
        }
        assessments[best].verdict = Verdict::Chosen;
        allocations.push(Allocation { location, lines });
        unused.remove(position);
    }
    for &index in &unused {
        let location = assessments[index].location;
        if needs.iter().all(|need| available(need.sku, location) <= 0) {
            assessments[index].verdict = Verdict::NoStock;
        }
    }
    missing.retain(|need| need.quantity > 0);
    let rule = match (destination, allocations.len()) {
        (_, 0) => Rule::NoLocation,
        (Destination::Pickup { .. }, _) => Rule::Pickup,
        (Destination::Ship { .. }, _) => Rule::Split,
    };
    Plan { allocations, unfilled: missing, rule, assessments }
}

/// Units of `need` a location with `available` units can give.
fn take(need: &Need, available: i64) -> u32 {
    u32::try_from(available.clamp(0, i64::from(need.quantity))).expect("clamped to a u32")
}

/// Steps 1 and 3 for one location: the filter's verdict and the score's parts.
fn assess(site: &Site<'_>, destination: Destination, weights: &RoutingWeights) -> Assessment {
    let spec = site.spec;
    let (distance_m, verdict) = match destination {
        Destination::Ship { latitude_e6, longitude_e6 } => {
            let distance =
                haversine_m(spec.latitude_e6, spec.longitude_e6, latitude_e6, longitude_e6);
            (distance, filter_for_shipping(site))
        }
        Destination::Pickup { location } => (0, filter_for_pickup(site, location)),
    };
    let distance_km = i64::try_from(distance_m / 1_000).unwrap_or(i64::MAX);
    let shipping_cost_minor = spec
        .shipping_cost
        .base_minor
        .saturating_add(spec.shipping_cost.per_km_minor.saturating_mul(distance_km));
    let capacity = i64::from(spec.daily_capacity.max(1));
    let workload_penalty_minor =
        weights.workload_penalty_minor.saturating_mul(i64::from(site.open_shipments)) / capacity;
    let score = weights
        .distance_minor_per_km
        .saturating_mul(distance_km)
        .saturating_add(shipping_cost_minor.saturating_mul(weights.shipping_cost_percent) / 100)
        .saturating_add(workload_penalty_minor);
    Assessment {
        location: site.id,
        distance_m,
        shipping_cost_minor,
        workload_penalty_minor,
        score,
        verdict,
    }
}

/// The filter's verdict; routing later turns the winners among `Eligible` into `Chosen`.
fn filter_for_shipping(site: &Site<'_>) -> Verdict {
    if !site.spec.active {
        Verdict::Inactive
    } else if !site.spec.ships {
        Verdict::DoesNotShip
    } else if site.open_shipments >= site.spec.daily_capacity {
        Verdict::AtCapacity
    } else {
        Verdict::Eligible
    }
}

fn filter_for_pickup(site: &Site<'_>, store: LocationId) -> Verdict {
    if site.id != store {
        Verdict::NotThePickupStore
    } else if !site.spec.active {
        Verdict::Inactive
    } else if !site.spec.pickup {
        Verdict::NoPickup
    } else if site.open_shipments >= site.spec.daily_capacity {
        Verdict::AtCapacity
    } else {
        Verdict::Eligible
    }
}

/// Assessment indexes by preference: score, then priority, then code. `sites` and
/// `assessments` are both in location-id order.
fn preference_order(sites: &[&Site<'_>], assessments: &[Assessment]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..assessments.len()).collect();
    order.sort_by(|&a, &b| {
        let (left, right) = (sites[a].spec, sites[b].spec);
        assessments[a]
            .score
            .cmp(&assessments[b].score)
            .then(left.priority.cmp(&right.priority))
            .then(left.code.cmp(&right.code))
    });
    order
}

/// Great-circle distance between two points given in microdegrees, in whole metres.
pub fn haversine_m(lat_a_e6: i32, lon_a_e6: i32, lat_b_e6: i32, lon_b_e6: i32) -> u64 {
    let radians = |e6: i32| f64::from(e6) / 1e6 * core::f64::consts::PI / 180.0;
    let (lat_a, lat_b) = (radians(lat_a_e6), radians(lat_b_e6));
    let half_dlat = (lat_b - lat_a) / 2.0;
    let half_dlon = (radians(lon_b_e6) - radians(lon_a_e6)) / 2.0;
    let h = libm::pow(libm::sin(half_dlat), 2.0)
        + libm::cos(lat_a) * libm::cos(lat_b) * libm::pow(libm::sin(half_dlon), 2.0);
    let central_angle = 2.0 * libm::asin(libm::sqrt(h.clamp(0.0, 1.0)));
    libm::round(EARTH_RADIUS_M * central_angle) as u64
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use allot_protocol::model::{LocationKind, ShippingCost};

    const A: SkuId = 0;
    const B: SkuId = 1;
    const C: SkuId = 2;
    /// Oxford, the ship-to point of every shipped order here.
    const OXFORD: Destination =
        Destination::Ship { latitude_e6: 51_752_000, longitude_e6: -1_257_700 };

    /// A small map of England and Scotland: location id = index.
    fn map() -> Vec<LocationSpec> {
        let place = |code: &str, latitude_e6, longitude_e6| LocationSpec {
            code: code.into(),
            name: code.into(),
            kind: LocationKind::Warehouse,
            latitude_e6,
            longitude_e6,
            ships: true,
            pickup: true,
            daily_capacity: 100,
            shipping_cost: ShippingCost {
                base_minor: 400,
                per_km_minor: 1,
                currency: "GBP".into(),
            },
            priority: 0,
            active: true,
        };
        vec![
            place("LDN", 51_507_200, -127_600),   // 0: ~83 km from Oxford
            place("BHM", 52_486_200, -1_890_400), // 1: ~93 km
            place("MAN", 53_480_800, -2_242_600), // 2: ~205 km
            place("EDI", 55_953_300, -3_188_300), // 3: ~490 km
        ]
    }

    fn sites(map: &[LocationSpec]) -> Vec<Site<'_>> {
        map.iter()
            .enumerate()
            .map(|(id, spec)| Site { id: id as LocationId, spec, open_shipments: 0 })
            .collect()
    }

    /// Stock as `(sku, location) → units`.
    fn stock(cells: &[(SkuId, LocationId, i64)]) -> impl Fn(SkuId, LocationId) -> i64 {
        let cells: HashMap<(SkuId, LocationId), i64> =
            cells.iter().map(|&(sku, location, units)| ((sku, location), units)).collect();
        move |sku, location| cells.get(&(sku, location)).copied().unwrap_or(0)
    }

    fn need(sku: SkuId, quantity: u32) -> Need {
        Need { sku, quantity }
    }

    fn verdict(plan: &Plan, location: LocationId) -> Verdict {
        plan.assessments[location as usize].verdict
    }

    fn chosen(plan: &Plan) -> Vec<LocationId> {
        plan.allocations.iter().map(|allocation| allocation.location).collect()
    }

    #[test]
    fn the_nearest_location_with_everything_wins_and_says_why() {
        let map = map();
        let everywhere = stock(&[(A, 0, 5), (A, 1, 5), (A, 2, 5), (A, 3, 5)]);
        let plan =
            route(&[need(A, 2)], OXFORD, &sites(&map), everywhere, &RoutingWeights::default());
        assert_eq!(plan.rule, Rule::OneLocation);
        assert_eq!(chosen(&plan), vec![0]);
        assert_eq!(plan.allocations[0].lines, vec![need(A, 2)]);
        assert!(plan.unfilled.is_empty());
        assert_eq!(verdict(&plan, 0), Verdict::Chosen);
        assert!((1..4).all(|location| verdict(&plan, location) == Verdict::Eligible));
        let london = plan.assessments[0];
        assert!((80_000..90_000).contains(&london.distance_m), "{london:?}");
        // Score = 1 per km + shipping (400 + 1 per km) at 100 %, no workload.
        let km = (london.distance_m / 1_000) as i64;
        assert_eq!(london.shipping_cost_minor, 400 + km);
        assert_eq!(london.score, km + 400 + km);
        assert!(plan.assessments.windows(2).all(|pair| pair[0].score <= pair[1].score));
    }

    #[test]
    fn one_location_with_everything_beats_a_closer_split() {
        let map = map();
        let available = stock(&[(A, 0, 5), (B, 1, 5), (A, 3, 5), (B, 3, 5)]);
        let plan = route(
            &[need(A, 1), need(B, 1)],
            OXFORD,
            &sites(&map),
            available,
            &RoutingWeights::default(),
        );
        assert_eq!((plan.rule, chosen(&plan)), (Rule::OneLocation, vec![3]));
    }

    #[test]
    fn a_split_takes_the_fewest_locations_nearest_first() {
        let map = map();
        // London has A×2 and B; Birmingham and Manchester each have C; nobody has all.
        let available = stock(&[(A, 0, 2), (B, 0, 1), (C, 1, 1), (A, 2, 1), (C, 2, 1)]);
        let needs = [need(A, 2), need(B, 1), need(C, 1)];
        let plan = route(&needs, OXFORD, &sites(&map), available, &RoutingWeights::default());
        assert_eq!(plan.rule, Rule::Split);
        assert_eq!(chosen(&plan), vec![0, 1]);
        assert_eq!(plan.allocations[0].lines, vec![need(A, 2), need(B, 1)]);
        assert_eq!(plan.allocations[1].lines, vec![need(C, 1)]);
        assert!(plan.unfilled.is_empty());
        assert_eq!(verdict(&plan, 2), Verdict::Eligible);
        assert_eq!(verdict(&plan, 3), Verdict::NoStock);
    }

    #[test]
    fn a_full_location_is_passed_over() {
        let map = map();
        let mut sites = sites(&map);
        sites[0].open_shipments = map[0].daily_capacity;
        let everywhere = stock(&[(A, 0, 5), (A, 1, 5)]);
        let plan = route(&[need(A, 1)], OXFORD, &sites, everywhere, &RoutingWeights::default());
        assert_eq!(chosen(&plan), vec![1]);
        assert_eq!(verdict(&plan, 0), Verdict::AtCapacity);
    }

    #[test]
    fn workload_penalty_can_send_an_order_further() {
        let map = map();
        let mut sites = sites(&map);
        sites[0].open_shipments = 90; // 90 % of London's capacity
        let weights = RoutingWeights { workload_penalty_minor: 1_000, ..RoutingWeights::default() };
        let plan = route(&[need(A, 1)], OXFORD, &sites, stock(&[(A, 0, 5), (A, 1, 5)]), &weights);
        assert_eq!(chosen(&plan), vec![1]);
        assert_eq!(plan.assessments[0].workload_penalty_minor, 900);
        assert_eq!(verdict(&plan, 0), Verdict::Eligible);
    }

    #[test]
    fn pickup_stays_at_its_store_even_when_short() {
        let map = map();
        let available = stock(&[(A, 0, 5), (A, 1, 1)]);
        let pickup = Destination::Pickup { location: 1 };
        let plan =
            route(&[need(A, 3)], pickup, &sites(&map), available, &RoutingWeights::default());
        assert_eq!((plan.rule, chosen(&plan)), (Rule::Pickup, vec![1]));
        assert_eq!(plan.allocations[0].lines, vec![need(A, 1)]);
        assert_eq!(plan.unfilled, vec![need(A, 2)]);
        assert_eq!(verdict(&plan, 0), Verdict::NotThePickupStore);

        let mut no_pickup = map.clone();
        no_pickup[1].pickup = false;
        let plan = route(
            &[need(A, 1)],
            pickup,
            &sites(&no_pickup),
            stock(&[(A, 1, 5)]),
            &RoutingWeights::default(),
        );
        assert_eq!((plan.rule, plan.unfilled.clone()), (Rule::NoLocation, vec![need(A, 1)]));
        assert_eq!(verdict(&plan, 1), Verdict::NoPickup);
    }

    #[test]
    fn inactive_and_non_shipping_locations_are_filtered_out() {
        let mut map = map();
        map[0].active = false;
        map[1].ships = false;
        let everywhere = stock(&[(A, 0, 5), (A, 1, 5), (A, 2, 5)]);
        let plan =
            route(&[need(A, 1)], OXFORD, &sites(&map), everywhere, &RoutingWeights::default());
        assert_eq!(chosen(&plan), vec![2]);
        assert_eq!(
            (verdict(&plan, 0), verdict(&plan, 1)),
            (Verdict::Inactive, Verdict::DoesNotShip)
        );
    }

    #[test]
    fn ties_break_by_priority_then_code() {
        let mut map = map();
        for spec in &mut map {
            (spec.latitude_e6, spec.longitude_e6) = (51_507_200, -127_600);
        }
        let everywhere = stock(&[(A, 0, 5), (A, 1, 5), (A, 2, 5), (A, 3, 5)]);
        let weights = RoutingWeights::default();
        // Equal scores and priorities: the lowest code, BHM.
        let plan = route(&[need(A, 1)], OXFORD, &sites(&map), &everywhere, &weights);
        assert_eq!(chosen(&plan), vec![1]);
        map[2].priority = 0;
        for other in [0, 1, 3] {
            map[other].priority = 5;
        }
        let plan = route(&[need(A, 1)], OXFORD, &sites(&map), &everywhere, &weights);
        assert_eq!(chosen(&plan), vec![2], "MAN's lower priority wins");
    }

    #[test]
    fn the_shipment_cap_leaves_the_rest_unfilled() {
        let map = map();
        let available = stock(&[(A, 0, 1), (B, 1, 1), (C, 2, 1)]);
        let weights = RoutingWeights { shipments_max: 2, ..RoutingWeights::default() };
        let plan =
            route(&[need(A, 1), need(B, 1), need(C, 1)], OXFORD, &sites(&map), available, &weights);
        assert_eq!((plan.rule, chosen(&plan)), (Rule::Split, vec![0, 1]));
        assert_eq!(plan.unfilled, vec![need(C, 1)]);
    }

    #[test]
    fn nothing_in_stock_routes_nowhere() {
        let map = map();
        let plan =
            route(&[need(A, 1)], OXFORD, &sites(&map), stock(&[]), &RoutingWeights::default());
        assert_eq!((plan.rule, plan.allocations.len()), (Rule::NoLocation, 0));
        assert_eq!(plan.unfilled, vec![need(A, 1)]);
        assert!((0..4).all(|location| verdict(&plan, location) == Verdict::NoStock));
    }

    #[test]
    fn haversine_matches_known_distances() {
        // London to Paris: 343.5 km on the mean sphere.
        let london_paris = haversine_m(51_507_400, -127_800, 48_856_600, 2_352_200);
        assert!((343_000..344_500).contains(&london_paris), "{london_paris}");
        assert_eq!(haversine_m(51_507_400, -127_800, 51_507_400, -127_800), 0);
        assert_eq!(london_paris, haversine_m(48_856_600, 2_352_200, 51_507_400, -127_800));
        // Antipodes: half the circumference.
        let half = haversine_m(0, 0, 0, 180_000_000);
        assert_eq!(half, (EARTH_RADIUS_M * core::f64::consts::PI).round() as u64);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Up to 12 locations with random positions, flags, load and stock of 4 SKUs.
        fn scene()
        -> impl Strategy<Value = (Vec<LocationSpec>, Vec<u32>, Vec<i64>, Vec<Need>, usize)>
        {
            let location = (
                25_000_000..56_000_000i32,
                -10_000_000..3_000_000i32,
                any::<bool>(),
                any::<bool>(),
                0..4u32,
            );
            (
                prop::collection::vec(location, 1..12),
                prop::collection::vec(0..6u32, 12),
                prop::collection::vec(-2..6i64, 48),
                prop::collection::vec((0..4 as SkuId, 1..6u32), 1..5),
                1..5usize,
            )
                .prop_map(|(places, open, stock, lines, shipments_max)| {
                    let base = map()[0].clone();
                    let specs = places
                        .into_iter()
                        .enumerate()
                        .map(|(index, (latitude_e6, longitude_e6, active, ships, priority))| {
                            LocationSpec {
                                code: format!("L{index:02}"),
                                latitude_e6,
                                longitude_e6,
                                active,
                                ships,
                                priority,
                                daily_capacity: 4,
                                ..base.clone()
                            }
                        })
                        .collect();
                    // One need per SKU, as an order's lines are summed before routing.
                    let mut needs: Vec<Need> = Vec::new();
                    for (sku, quantity) in lines {
                        if !needs.iter().any(|need| need.sku == sku) {
                            needs.push(need(sku, quantity));
                        }
                    }
                    (specs, open, stock, needs, shipments_max)
                })
        }

        proptest! {
            #[test]
            fn a_plan_never_takes_more_than_is_there_and_accounts_for_every_unit(
                (specs, open, stock, needs, shipments_max) in scene()
            ) {
                let mut sites = sites(&specs);
                for (site, open) in sites.iter_mut().zip(&open) {
                    site.open_shipments = *open;
                }
                let available = |sku: SkuId, location: LocationId| stock[(location as usize) * 4 + sku as usize];
                let weights = RoutingWeights { shipments_max, ..RoutingWeights::default() };
                let plan = route(&needs, OXFORD, &sites, available, &weights);

                prop_assert!(plan.allocations.len() <= shipments_max);
                for need in &needs {
                    let placed: u32 = plan.allocations.iter().flat_map(|a| &a.lines).filter(|l| l.sku == need.sku).map(|l| l.quantity).sum();
                    let unfilled: u32 = plan.unfilled.iter().filter(|l| l.sku == need.sku).map(|l| l.quantity).sum();
                    prop_assert_eq!(placed + unfilled, need.quantity);
                }
                for allocation in &plan.allocations {
                    let site = &sites[allocation.location as usize];
                    prop_assert!(site.spec.active && site.spec.ships && site.open_shipments < site.spec.daily_capacity);
                    prop_assert_eq!(plan.assessments[allocation.location as usize].verdict, Verdict::Chosen);
                    for line in &allocation.lines {
                        prop_assert!(line.quantity > 0);
                        prop_assert!(i64::from(line.quantity) <= available(line.sku, allocation.location));
                    }
                }
                let chosen = plan.assessments.iter().filter(|a| a.verdict == Verdict::Chosen).count();
                prop_assert_eq!(chosen, plan.allocations.len());

                // The same inputs in another order route the same way.
                let mut reversed = sites.clone();
                reversed.reverse();
                prop_assert_eq!(route(&needs, OXFORD, &reversed, available, &weights), plan);
            }
        }
    }
}
