//! Property test of order flows in the pure core: random placements (routed, from holds,
//! backordered, pickup), payments, holds, every fulfilment step, short picks,
//! cancellations, backorder retries, returns and ticks over a small map. After every step
//! the stock counters must balance: `held` equals the live holds, `allocated` equals the
//! open shipments (and holds committed outside), and `on_hand` equals what was received,
//! minus what shipped or was written off, plus what came back resellable, all counted
//! here from the engine's own answers. No cell is ever oversold. At the end, replaying
//! the changed requests and loading a snapshot image both reproduce the live state.

use std::collections::BTreeMap;

use allot_engine::codec;
use allot_engine::core::{
    Command, LineRequest, LocationKind, LocationSpec, Query, Reply, Request, ShippingCost, State,
};
use allot_protocol::order::{
    Address, Channel, DeliveryRequest, ItemQuantity, OrderHoldReason, OrderLine, PaymentEvent,
    PlaceOrder, ReturnCondition, ReturnReceipt, ShipmentState, ShipmentStep, ShipmentView,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const START_MS: u64 = 1_700_000_000_000;
const SKUS: [&str; 3] = ["s0", "s1", "s2"];
/// (code, latitude, longitude, capacity): three sites a few hundred km apart, one small.
const SITES: [(&str, i32, i32, u32); 3] = [
    ("L0", 51_500_000, 0, 50),
    ("L1", 53_500_000, -2_200_000, 3),
    ("L2", 55_900_000, -4_200_000, 50),
];

#[derive(Debug, Clone)]
enum Op {
    Receive {
        sku: usize,
        site: usize,
        quantity: u32,
    },
    Place {
        lines: Vec<(usize, u32)>,
        pickup: Option<usize>,
        backorder: bool,
        near: usize,
    },
    HoldThenPlace {
        sku: usize,
        site: usize,
        quantity: u32,
    },
    Pay {
        order: usize,
        event: u8,
    },
    HoldOrder {
        order: usize,
        release: bool,
    },
    Step {
        shipment: usize,
        step: u8,
    },
    /// The shipment's natural next step (paying its order first if it waits for that).
    Next {
        shipment: usize,
    },
    ShortPick {
        shipment: usize,
        quantity: u32,
    },
    CancelOrder {
        order: usize,
    },
    CancelShipment {
        shipment: usize,
    },
    CancelLine {
        order: usize,
        quantity: u32,
    },
    Backorders {
        order: usize,
    },
    Return {
        order: usize,
        quantity: u32,
        site: usize,
        damaged: bool,
    },
    Tick {
        seconds: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let sku = 0..SKUS.len();
    let site = 0..SITES.len();
    prop_oneof![
        2 => (sku.clone(), site.clone(), 1..6u32).prop_map(|(sku, site, quantity)| Op::Receive { sku, site, quantity }),
        4 => (vec((0..SKUS.len(), 1..4u32), 1..3), prop::option::weighted(0.2, 0..SITES.len()), any::<bool>(), 0..SITES.len())
            .prop_map(|(lines, pickup, backorder, near)| Op::Place { lines, pickup, backorder, near }),
        1 => (sku, site.clone(), 1..3u32).prop_map(|(sku, site, quantity)| Op::HoldThenPlace { sku, site, quantity }),
        3 => (0..64usize, 0..4u8).prop_map(|(order, event)| Op::Pay { order, event }),
        1 => (0..64usize, any::<bool>()).prop_map(|(order, release)| Op::HoldOrder { order, release }),
        2 => (0..96usize, 0..7u8).prop_map(|(shipment, step)| Op::Step { shipment, step }),
        12 => (0..96usize).prop_map(|shipment| Op::Next { shipment }),
        1 => (0..96usize, 1..3u32).prop_map(|(shipment, quantity)| Op::ShortPick { shipment, quantity }),
        1 => (0..64usize).prop_map(|order| Op::CancelOrder { order }),
        1 => (0..96usize).prop_map(|shipment| Op::CancelShipment { shipment }),
        1 => (0..64usize, 1..3u32).prop_map(|(order, quantity)| Op::CancelLine { order, quantity }),
        1 => (0..64usize).prop_map(|order| Op::Backorders { order }),
        2 => (0..64usize, 1..3u32, site, any::<bool>()).prop_map(|(order, quantity, site, damaged)| Op::Return { order, quantity, site, damaged }),
        1 => (1..120u64).prop_map(|seconds| Op::Tick { seconds }),
    ]
}

/// The live state, the requests that changed it, and `on_hand` per cell as the answers
/// say it must be.
struct Run {
    state: State,
    now_ms: u64,
    log: Vec<(Request, u64)>,
    on_hand: BTreeMap<(String, String), i64>,
    orders: u64,
    placed: u32,
}

impl Run {
    fn new() -> Run {
        let mut run = Run {
            state: State::new(),
            now_ms: START_MS,
            log: Vec::new(),
            on_hand: BTreeMap::new(),
            orders: 0,
            placed: 0,
        };
        for (code, latitude_e6, longitude_e6, daily_capacity) in SITES {
            let spec = LocationSpec {
                code: code.into(),
                name: code.into(),
                kind: LocationKind::Store,
                latitude_e6,
                longitude_e6,
                ships: true,
                pickup: true,
                daily_capacity,
                shipping_cost: ShippingCost {
                    base_minor: 100,
                    per_km_minor: 1,
                    currency: "GBP".into(),
                },
                priority: 1,
                active: true,
            };
            run.apply(Command::UpsertLocation(spec)).expect("a location");
        }
        run
    }

    fn apply(&mut self, command: Command) -> Result<Reply, String> {
        let request = Request::new(command);
        let applied = self.state.apply(&request, self.now_ms);
        if applied.changed {
            self.log.push((request, self.now_ms));
        }
        applied.outcome.map_err(|error| error.to_string())
    }

    /// A shipment by index, taken modulo the shipments there are.
    fn shipment(&self, index: usize) -> Option<ShipmentView> {
        let count =
            (1..).find(|&id| self.state.query(&Query::Shipment { shipment: id }).is_err())? - 1;
        if count == 0 {
            return None;
        }
        match self.state.query(&Query::Shipment { shipment: index as u64 % count + 1 }) {
            Ok(Reply::Shipment(view)) => Some(*view),
            _ => None,
        }
    }

    fn order_id(&self, index: usize) -> Option<u64> {
        (self.orders > 0).then(|| index as u64 % self.orders + 1)
    }

    fn moved(&mut self, sku: &str, location: &str, units: i64) {
        *self.on_hand.entry((sku.to_owned(), location.to_owned())).or_default() += units;
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Receive { sku, site, quantity } => {
                let command = Command::Receive {
                    sku: SKUS[*sku].into(),
                    location: SITES[*site].0.into(),
                    quantity: *quantity,
                };
                if self.apply(command).is_ok() {
                    self.moved(SKUS[*sku], SITES[*site].0, i64::from(*quantity));
                }
            }
            Op::Place { lines, pickup, backorder, near } => {
                let delivery = match pickup {
                    Some(site) => DeliveryRequest::Pickup { location: SITES[*site].0.into() },
                    None => ship_to(*near),
                };
                let mut order_lines: Vec<OrderLine> = Vec::new();
                for (sku, quantity) in lines {
                    if order_lines.iter().all(|line| line.sku != SKUS[*sku]) {
                        order_lines.push(OrderLine {
                            sku: SKUS[*sku].into(),
                            quantity: *quantity,
                            unit_price_minor: 500,
                        });
                    }
                }
                self.place(delivery, order_lines, None, *backorder);
            }
            Op::HoldThenPlace { sku, site, quantity } => {
                let line = LineRequest {
                    sku: SKUS[*sku].into(),
                    location: SITES[*site].0.into(),
                    quantity: *quantity,
                };
                if let Ok(Reply::HoldPlaced { hold, .. }) =
                    self.apply(Command::Reserve { lines: vec![line], ttl_ms: Some(60_000) })
                {
                    let lines = vec![OrderLine {
                        sku: SKUS[*sku].into(),
                        quantity: *quantity,
                        unit_price_minor: 500,
                    }];
                    self.place(ship_to(*site), lines, Some(hold), false);
                }
            }
            Op::Pay { order, event } => {
                let Some(order) = self.order_id(*order) else { return };
                let event = [
                    PaymentEvent::Authorised,
                    PaymentEvent::Authorised,
                    PaymentEvent::Captured,
                    PaymentEvent::Failed,
                ][*event as usize];
                let _ = self.apply(Command::RecordPayment {
                    order,
                    event,
                    amount_minor: 1,
                    reference: "p".into(),
                });
            }
            Op::HoldOrder { order, release } => {
                let Some(order) = self.order_id(*order) else { return };
                let command = if *release {
                    Command::ReleaseOrderHold { order }
                } else {
                    Command::HoldOrder {
                        order,
                        reason: OrderHoldReason::Manual,
                        note: "check".into(),
                    }
                };
                let _ = self.apply(command);
            }
            Op::Step { shipment, step } => self.advance(*shipment, *step),
            Op::Next { shipment } => {
                let Some(view) = self.shipment(*shipment) else { return };
                let pickup = view.delivery == allot_protocol::order::Delivery::Pickup;
                let step = match view.state {
                    ShipmentState::Allocated => {
                        let pay = Command::RecordPayment {
                            order: view.order,
                            event: PaymentEvent::Authorised,
                            amount_minor: 1,
                            reference: "p".into(),
                        };
                        let _ = self.apply(pay);
                        0
                    }
                    ShipmentState::Released => 1,
                    ShipmentState::Picking => 2,
                    ShipmentState::Packed if pickup => 5,
                    ShipmentState::Packed => 3,
                    ShipmentState::Shipped => 4,
                    ShipmentState::ReadyForPickup => 6,
                    _ => return,
                };
                self.advance(*shipment, step);
            }
            Op::ShortPick { shipment, quantity } => {
                let Some(view) = self.shipment(*shipment) else { return };
                let Some(line) = view.lines.first() else { return };
                let missing = vec![ItemQuantity { sku: line.sku.clone(), quantity: *quantity }];
                if self.apply(Command::ShortPick { shipment: view.shipment, missing }).is_ok() {
                    self.moved(&line.sku, &view.location, -i64::from(*quantity));
                }
            }
            Op::CancelOrder { order } => {
                let Some(order) = self.order_id(*order) else { return };
                let _ = self.apply(Command::CancelOrder { order, reason: "customer".into() });
            }
            Op::CancelShipment { shipment } => {
                let _ = self.apply(Command::CancelShipment {
                    shipment: *shipment as u64 + 1,
                    reason: "ops".into(),
                });
            }
            Op::CancelLine { order, quantity } => {
                let Some(order) = self.order_id(*order) else { return };
                let Ok(Reply::Order(view)) = self.state.query(&Query::Order { order }) else {
                    return;
                };
                let lines =
                    vec![ItemQuantity { sku: view.lines[0].sku.clone(), quantity: *quantity }];
                let _ = self.apply(Command::CancelOrderLines { order, lines, reason: "r".into() });
            }
            Op::Backorders { order } => {
                let Some(order) = self.order_id(*order) else { return };
                let _ = self.apply(Command::AllocateBackorders { order });
            }
            Op::Return { order, quantity, site, damaged } => {
                self.return_units(*order, *quantity, *site, *damaged)
            }
            Op::Tick { seconds } => {
                self.now_ms += seconds * 1_000;
                let _ = self.apply(Command::Tick);
            }
        }
    }

    fn place(
        &mut self,
        delivery: DeliveryRequest,
        lines: Vec<OrderLine>,
        hold: Option<u64>,
        allow_backorder: bool,
    ) {
        self.placed += 1;
        let request = PlaceOrder {
            channel: Channel::Web,
            external_number: format!("N-{}", self.placed),
            customer: "C".into(),
            delivery,
            currency: "GBP".into(),
            lines,
            hold,
            allow_backorder,
        };
        if let Ok(Reply::OrderPlaced { order, .. }) = self.apply(Command::PlaceOrder(request)) {
            self.orders = self.orders.max(order);
        }
    }

    fn advance(&mut self, shipment: usize, step: u8) {
        let Some(view) = self.shipment(shipment) else { return };
        let step = match step {
            0 => ShipmentStep::Release,
            1 => ShipmentStep::StartPicking,
            2 => ShipmentStep::Pack,
            3 => ShipmentStep::Ship { carrier: "DPD".into(), tracking: "T".into() },
            4 => ShipmentStep::Deliver,
            5 => ShipmentStep::ReadyForPickup,
            _ => ShipmentStep::PickUp,
        };
        let leaves = matches!(step, ShipmentStep::Ship { .. } | ShipmentStep::PickUp);
        if self.apply(Command::AdvanceShipment { shipment: view.shipment, step }).is_ok() && leaves
        {
            for line in &view.lines {
                self.moved(&line.sku, &view.location, -i64::from(line.quantity));
            }
        }
    }

    fn return_units(&mut self, order: usize, quantity: u32, site: usize, damaged: bool) {
        let Some(order) = self.order_id(order) else { return };
        let Ok(Reply::Order(view)) = self.state.query(&Query::Order { order }) else { return };
        let sku = view.lines[0].sku.clone();
        let lines = vec![ItemQuantity { sku: sku.clone(), quantity }];
        let Ok(Reply::ReturnChanged { rma, .. }) =
            self.apply(Command::RequestReturn { order, lines, reason: "fit".into() })
        else {
            return;
        };
        self.apply(Command::AuthoriseReturn { rma }).expect("a requested return can be authorised");
        let condition = if damaged {
            ReturnCondition::Damaged { reason: "torn".into() }
        } else {
            ReturnCondition::Resellable
        };
        let receipt = vec![ReturnReceipt { sku: sku.clone(), quantity, condition }];
        self.apply(Command::ReceiveReturn { rma, location: SITES[site].0.into(), lines: receipt })
            .expect("an authorised return can be received");
        if !damaged {
            self.moved(&sku, SITES[site].0, i64::from(quantity));
        }
    }

    /// The balance this test exists for.
    fn check(&self) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.state.audit(), Ok(()));
        for sku in SKUS {
            let Ok(Reply::Cells(cells)) = self.state.query(&Query::SkuStock { sku: sku.into() })
            else {
                continue;
            };
            for cell in cells {
                let expected = self
                    .on_hand
                    .get(&(cell.sku.clone(), cell.location.clone()))
                    .copied()
                    .unwrap_or(0);
                prop_assert_eq!(
                    i64::from(cell.on_hand),
                    expected,
                    "on_hand of {} at {}",
                    cell.sku,
                    cell.location
                );
                prop_assert!(
                    cell.available >= 0,
                    "{} at {} oversold: {:?}",
                    cell.sku,
                    cell.location,
                    cell
                );
            }
        }
        Ok(())
    }
}

/// The KPIs a restart keeps: refusals are not logged, so their count starts again.
fn durable_kpis(state: &State) -> Reply {
    let Ok(Reply::Kpis(mut kpis)) = state.query(&Query::Kpis) else { panic!("kpis") };
    kpis.holds_refused_since_start = 0;
    kpis.hold_success_rate_bp = None;
    Reply::Kpis(kpis)
}

fn ship_to(near: usize) -> DeliveryRequest {
    let (_, latitude_e6, longitude_e6, _) = SITES[near];
    let to = Address {
        latitude_e6: latitude_e6 + 10_000,
        longitude_e6,
        country: "GB".into(),
        postcode: "X1".into(),
    };
    DeliveryRequest::Ship { to }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_order_flows_keep_every_stock_counter_balanced_and_never_oversell(
        steps in vec(op(), 1..160),
    ) {
        let mut run = Run::new();
        for (sku, site) in [(0, 0), (1, 1), (2, 2), (0, 2)] {
            run.step(&Op::Receive { sku, site, quantity: 5 });
        }
        for op in &steps {
            run.step(op);
            run.check()?;
        }
        let mut replayed = State::new();
        for (request, at_ms) in &run.log {
            let applied = replayed.apply(request, *at_ms);
            prop_assert!(applied.changed, "{} did not change the replayed state", request.command.name());
        }
        prop_assert_eq!(codec::state_digest(&replayed), codec::state_digest(&run.state));
        let restored = codec::decode_state(&codec::encode_state(&run.state)).expect("image decodes");
        prop_assert_eq!(codec::state_digest(&restored), codec::state_digest(&run.state));
        prop_assert_eq!(restored.audit(), Ok(()));
        prop_assert_eq!(durable_kpis(&restored), durable_kpis(&run.state));
    }
}
