//! Answers to order queries: orders, shipments and returns by id, paged lists from the
//! indexes (a customer's history, orders by state and location, pick lists) and KPIs.

use allot_protocol::check;
use allot_protocol::order::{
    AssessmentView, DeliveryRequest, ItemQuantity, KpiView, LocationWorkload, OrderCount,
    OrderLineView, OrderPage, OrderSummary, ReturnLineView, RoutingView, ShipmentPage,
};

use super::command::Channel;
use super::ids::{HoldId, LocationId};
use super::order::{DecisionRef, Order, OrderDelivery, Return, Shipment, order_key};
use super::outcome::{
    EngineError, OrderId, OrderState, OrderView, Outcome, Reply, ReturnId, ReturnView, ShipmentId,
    ShipmentView,
};
use super::shipment::Lifecycle;
use super::state::State;
use super::validate::invalid;

/// Most index entries one `OrdersByState` page looks at when filtering by location; a
/// page that hits it ends early with a cursor, so a query never stalls the writer.
const PAGE_SCAN_MAX: usize = 100_000;

impl State {
    pub(crate) fn order_query(&self, id: OrderId) -> Outcome {
        Ok(Reply::Order(Box::new(self.order_view(self.known_order(id)?))))
    }

    pub(crate) fn order_by_number(&self, channel: Channel, number: &str) -> Outcome {
        let id = self.orders.by_number(channel, number).ok_or_else(|| {
            EngineError::NotFound(format!("order {number} on channel {}", channel.name()))
        })?;
        self.order_query(id)
    }

    /// Newest first: ids below `before`.
    pub(crate) fn customer_orders(
        &self,
        customer: &str,
        before: Option<OrderId>,
        limit: u32,
    ) -> Outcome {
        check::page_limit(limit).map_err(invalid)?;
        let Some(customer) = self.orders.customers.get(customer) else {
            return Ok(Reply::Orders(OrderPage { orders: Vec::new(), next: None }));
        };
        let before = order_key(before.unwrap_or(OrderId::MAX));
        let ids = self.orders.customer_orders_before(customer, before);
        Ok(Reply::Orders(self.order_page(ids, limit)))
    }

    /// Oldest first: ids above `after`, with a shipment at `location` when given.
    pub(crate) fn orders_by_state(
        &self,
        state: OrderState,
        location: Option<&str>,
        after: Option<OrderId>,
        limit: u32,
    ) -> Outcome {
        check::page_limit(limit).map_err(invalid)?;
        let location = location.map(|code| self.location_id(code)).transpose()?;
        let start = after.map_or(0, |id| id.saturating_add(1));
        let ids = self.orders.by_state[state as usize].range(order_key(start)..);
        let mut orders = Vec::new();
        let mut next = None;
        for (scanned, &key) in ids.enumerate() {
            let id = OrderId::from(key);
            if orders.len() == limit as usize || scanned == PAGE_SCAN_MAX {
                next = Some(orders.last().map_or(id.saturating_sub(1), |o: &OrderSummary| o.order));
                break;
            }
            let order = self.orders.order(id).expect("indexed");
            if location.is_some_and(|at| !self.orders.has_shipment_at(order, at)) {
                continue;
            }
            orders.push(self.order_summary(order));
        }
        Ok(Reply::Orders(OrderPage { orders, next }))
    }

    fn order_page(&self, ids: impl Iterator<Item = OrderId>, limit: u32) -> OrderPage {
        let mut orders = Vec::new();
        let mut next = None;
        for id in ids {
            if orders.len() == limit as usize {
                next = orders.last().map(|o: &OrderSummary| o.order);
                break;
            }
            orders.push(self.order_summary(self.orders.order(id).expect("indexed")));
        }
        OrderPage { orders, next }
    }

    /// Shipments released or being picked at a location, oldest first.
    pub(crate) fn pick_list(
        &self,
        location: &str,
        after: Option<ShipmentId>,
        limit: u32,
    ) -> Outcome {
        check::page_limit(limit).map_err(invalid)?;
        let location = self.location_id(location)?;
        let start = after.map_or(0, |id| id.saturating_add(1));
        let mut entries = self.orders.floor.range((location, start)..=(location, ShipmentId::MAX));
        let shipments: Vec<ShipmentView> = (entries.by_ref())
            .take(limit as usize)
            .map(|&(_, id)| self.shipment_view(id, self.orders.shipment(id).expect("on the floor")))
            .collect();
        let next = entries.next().and(shipments.last().map(|s| s.shipment));
        Ok(Reply::Shipments(ShipmentPage { shipments, next }))
    }

    pub(crate) fn shipment_query(&self, id: ShipmentId) -> Outcome {
        let shipment = (self.orders.shipment(id))
            .ok_or_else(|| EngineError::NotFound(format!("shipment {id}")))?;
        Ok(Reply::Shipment(Box::new(self.shipment_view(id, shipment))))
    }

    pub(crate) fn return_query(&self, id: ReturnId) -> Outcome {
        let record = (self.orders.return_record(id))
            .ok_or_else(|| EngineError::NotFound(format!("return {id}")))?;
        Ok(Reply::Return(Box::new(self.return_view(record))))
    }

    /// A routed hold's decision; a hold that named its locations was not routed.
    pub(crate) fn hold_routing(&self, hold: HoldId) -> Outcome {
        if let Some(decision) = self.holds.routed.get(&hold) {
            return Ok(Reply::Routing(self.routing_view(decision.as_ref())));
        }
        let why = match self.holds.holds.contains_key(&hold) {
            true => format!("routing of hold {hold}: it named its locations"),
            false => format!("hold {hold}"),
        };
        Err(EngineError::NotFound(why))
    }

    pub(crate) fn kpis(&self) -> Outcome {
        let book = &self.orders;
        let kpis = &book.kpis;
        let orders_by_channel_state = (book.counts.iter())
            .map(|(&(channel, state), &orders)| OrderCount { channel, state, orders })
            .collect();
        let holds_refused = self.since_start.holds_refused;
        let holds_placed = self.counters.holds_placed;
        let mut open_workload: Vec<LocationWorkload> = (book.open_shipments.iter().enumerate())
            .filter(|&(_, &open)| open > 0)
            .map(|(location, &open_shipments)| LocationWorkload {
                location: self.location_codes.name(location as LocationId).to_owned(),
                open_shipments,
                open_units: book.open_units[location],
                daily_capacity: self.locations[location].daily_capacity,
            })
            .collect();
        open_workload.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(Reply::Kpis(Box::new(KpiView {
            orders_by_channel_state,
            holds_placed,
            holds_refused_since_start: holds_refused,
            hold_success_rate_bp: rate_bp(holds_placed, holds_placed + holds_refused),
            holds_expired: self.counters.holds_expired,
            orders_placed: kpis.orders_placed,
            orders_split: kpis.orders_split,
            split_rate_bp: rate_bp(kpis.orders_split, kpis.orders_placed),
            units_ordered: kpis.units_ordered,
            units_filled_at_placement: kpis.units_filled_at_placement,
            fill_rate_bp: rate_bp(kpis.units_filled_at_placement, kpis.units_ordered),
            placement_to_ship_p50_ms: kpis.placement_to_ship.percentile_ms(50),
            placement_to_ship_p95_ms: kpis.placement_to_ship.percentile_ms(95),
            units_shipped: kpis.units_shipped,
            units_returned: kpis.units_returned,
            return_rate_bp: rate_bp(kpis.units_returned, kpis.units_shipped),
            open_workload,
        })))
    }

    fn order_view(&self, order: &Order) -> OrderView {
        let shipments: Vec<&Shipment> =
            order.shipments().map(|id| self.orders.shipment(id).expect("exists")).collect();
        let lines = (order.lines.iter())
            .map(|line| OrderLineView {
                sku: self.skus.name(line.sku).to_owned(),
                quantity: line.quantity,
                unit_price_minor: line.unit_price_minor,
                cancelled: line.cancelled,
                backordered: line.backordered,
                shipped: (shipments.iter())
                    .filter(|shipment| shipment.state.has_left())
                    .map(|shipment| shipment.units_of(line.sku))
                    .sum(),
                returned: line.returned,
            })
            .collect();
        OrderView {
            order: order.id(),
            channel: order.channel,
            external_number: order.external_number().to_owned(),
            customer: self.orders.customers.name(order.customer).to_owned(),
            delivery: match (order.delivery, order.address()) {
                (OrderDelivery::Pickup(location), _) => DeliveryRequest::Pickup {
                    location: self.location_codes.name(location).to_owned(),
                },
                (OrderDelivery::Ship { .. }, to) => {
                    DeliveryRequest::Ship { to: to.expect("a shipped order has an address") }
                }
            },
            currency: order.currency().to_owned(),
            state: order.state,
            payment: order.payment,
            hold: order.hold,
            lines,
            shipments: (order.shipments().zip(&shipments))
                .map(|(id, shipment)| self.shipment_view(id, shipment))
                .collect(),
            returns: self.orders.returns_of(order.id()).collect(),
            routing: self.routing_view(order.routing()),
            placed_at_ms: order.placed_at_ms,
            from_hold: order.from_hold.map(|id| id.get()),
            exchange_for: self.orders.exchange_for(order.id()),
            total_minor: order.total_minor(),
        }
    }

    fn order_summary(&self, order: &Order) -> OrderSummary {
        OrderSummary {
            order: order.id(),
            channel: order.channel,
            external_number: order.external_number().to_owned(),
            customer: self.orders.customers.name(order.customer).to_owned(),
            state: order.state,
            placed_at_ms: order.placed_at_ms,
            units: order.units(),
            total_minor: order.total_minor(),
        }
    }

    fn shipment_view(&self, id: ShipmentId, shipment: &Shipment) -> ShipmentView {
        ShipmentView {
            shipment: id,
            order: shipment.order(),
            location: self.location_codes.name(shipment.location()).to_owned(),
            delivery: shipment.delivery,
            state: shipment.state,
            lines: (shipment.lines.iter())
                .filter(|line| line.quantity > 0)
                .map(|line| ItemQuantity {
                    sku: self.skus.name(line.sku).to_owned(),
                    quantity: line.quantity,
                })
                .collect(),
            carrier: shipment.carrier().map(str::to_owned),
            tracking: shipment.tracking().map(str::to_owned),
            created_at_ms: shipment.created_at_ms,
            updated_at_ms: shipment.updated_at_ms,
        }
    }

    fn return_view(&self, record: &Return) -> ReturnView {
        ReturnView {
            rma: record.id,
            order: record.order,
            state: record.state,
            reason: record.reason.to_string(),
            lines: (record.lines.iter())
                .map(|line| ReturnLineView {
                    sku: self.skus.name(line.sku).to_owned(),
                    requested: line.requested,
                    resellable: line.resellable,
                    damaged: line.damaged,
                })
                .collect(),
            received_at: record.received_at.map(|at| self.location_codes.name(at).to_owned()),
            damage_reasons: record.damage_reasons.iter().map(|r| r.to_string()).collect(),
            refunded_minor: record.refunded_minor,
            exchange_order: record.exchange_order,
            requested_at_ms: record.requested_at_ms,
            updated_at_ms: record.updated_at_ms,
        }
    }

    fn routing_view(&self, decision: DecisionRef<'_>) -> RoutingView {
        RoutingView {
            rule: decision.rule,
            locations_considered: decision.considered,
            assessments: (decision.kept())
                .map(|a| AssessmentView {
                    location: self.location_codes.name(a.location).to_owned(),
                    distance_m: a.distance_m,
                    shipping_cost_minor: a.shipping_cost_minor,
                    workload_penalty_minor: a.workload_penalty_minor,
                    score: a.score,
                    verdict: a.verdict,
                })
                .collect(),
        }
    }
}

/// `part / whole` in basis points, if there is a whole.
fn rate_bp(part: u64, whole: u64) -> Option<u32> {
    (whole > 0).then(|| (u128::from(part) * 10_000 / u128::from(whole)) as u32)
}
