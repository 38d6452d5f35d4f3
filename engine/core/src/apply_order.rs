//! Handlers for orders: placing (from a hold or routed afresh), payment events, manual
//! and fraud holds, cancellation of an order or some of its lines, and backorders.

use allot_protocol::check;
use smallvec::SmallVec;

use super::command::{DeliveryRequest, ItemQuantity, OrderHoldReason, PlaceOrder};
use super::ids::{HoldId, LocationId, SkuId, fingerprint};
use super::limits::{
    BACKORDERS_FILLED_PER_ARRIVAL_MAX, ROUTING_ASSESSMENTS_KEPT_MAX, SHIPMENTS_MAX,
    SHIPMENTS_PER_ORDER_MAX,
};
use super::order::{
    Decision, NewOrder, Order, OrderDelivery, OrderLineRecord, Shipment, ShipmentLine, order_key,
};
use super::order_state::PaymentState;
use super::outcome::{
    EngineError, OrderId, OrderState, Outcome, Reply, Resolution, ReturnId, ShipmentId,
    ShipmentState,
};
use super::routing::{self, Assessment, Destination, Need, Plan, Rule, Site, Verdict};
use super::shipment::Lifecycle;
use super::state::State;
use super::validate::invalid;
use crate::command::PaymentEvent;

impl State {
    pub(crate) fn place_order(
        &mut self,
        request: &PlaceOrder,
        exchange_for: Option<ReturnId>,
        now_ms: u64,
    ) -> Outcome {
        check::place_order(request).map_err(invalid)?;
        if let Some(answer) = self.placed_before(request, exchange_for) {
            return answer;
        }
        let placement = fingerprint(&(request, exchange_for));
        let cap = self.caps.orders_max;
        if self.orders.orders.len() >= cap {
            return Err(EngineError::Overloaded(format!("{cap} orders in memory, the cap")));
        }
        if self.orders.shipments.len() + SHIPMENTS_PER_ORDER_MAX > SHIPMENTS_MAX {
            return Err(EngineError::Overloaded(format!("{SHIPMENTS_MAX} shipments in memory")));
        }
        let delivery = self.order_delivery(&request.delivery)?;
        let lines = self.order_lines(request)?;
        let (allocations, unfilled, decision) = match request.hold {
            Some(hold) => self.hold_allocations(hold, &lines, &delivery, now_ms)?,
            None => self.routed_allocations(request, &lines, &delivery)?,
        };
        let id = self.orders.next_order_id();
        let customer = self.orders.customers.intern(&request.customer);
        if let Some(hold) = request.hold {
            self.convert_hold(hold, &request.external_number, now_ms);
        }
        let split = allocations.len() > 1;
        let postcode = match &request.delivery {
            DeliveryRequest::Ship { to } => to.postcode.as_str(),
            DeliveryRequest::Pickup { .. } => "",
        };
        let mut order = Order::new(NewOrder {
            id,
            channel: request.channel,
            external_number: &request.external_number,
            customer,
            delivery,
            postcode,
            currency: &request.currency,
            lines,
            placed_at_ms: now_ms,
            from_hold: request.hold,
            routing: decision,
            placement,
        });
        for need in &unfilled {
            order.line_mut(need.sku).expect("needs come from lines").backordered += need.quantity;
        }
        let units = order.units();
        let backordered: u64 = unfilled.iter().map(|need| u64::from(need.quantity)).sum();
        self.orders.insert_order(order);
        if let Some(rma) = exchange_for {
            self.orders.exchanges.insert(order_key(id), rma);
        }
        // A converted hold's stock is already allocated; a routed order's is taken now.
        let take_stock = request.hold.is_none();
        let shipments = self.open_shipments(id, &allocations, take_stock, now_ms);
        let kpis = &mut self.orders.kpis;
        kpis.orders_placed += 1;
        kpis.orders_split += u64::from(split);
        kpis.units_ordered += units;
        kpis.units_filled_at_placement += units - backordered;
        let state = self.orders.refresh(id);
        Ok(Reply::OrderPlaced { order: id, state, shipments, backordered_units: backordered })
    }

    /// For a number already placed on the channel: the same order again is answered with
    /// it, another order under the number refused. `None` for a new number.
    pub(crate) fn placed_before(
        &self,
        request: &PlaceOrder,
        exchange_for: Option<ReturnId>,
    ) -> Option<Outcome> {
        let id = self.orders.by_number(request.channel, &request.external_number)?;
        let order = self.orders.order(id).expect("indexed orders exist");
        if order.placement != fingerprint(&(request, exchange_for)) {
            return Some(Err(EngineError::IdempotencyConflict));
        }
        Some(Ok(placement_reply(order)))
    }

    pub(crate) fn order_delivery(
        &self,
        delivery: &DeliveryRequest,
    ) -> Result<OrderDelivery, EngineError> {
        Ok(match delivery {
            DeliveryRequest::Ship { to } => OrderDelivery::Ship {
                latitude_e6: to.latitude_e6,
                longitude_e6: to.longitude_e6,
                country: to.country.as_bytes().try_into().map_err(|_| {
                    invalid(format!("country {:?} is not an ISO 3166 alpha-2 code", to.country))
                })?,
            },
            DeliveryRequest::Pickup { location } => {
                OrderDelivery::Pickup(self.location_id(location)?)
            }
        })
    }

    /// One record per line; a SKU on two lines is refused, so every later step (routing,
    /// cancellation, returns) can name a line by its SKU.
    fn order_lines(&self, request: &PlaceOrder) -> Result<Vec<OrderLineRecord>, EngineError> {
        let mut lines: Vec<OrderLineRecord> = Vec::with_capacity(request.lines.len());
        for line in &request.lines {
            let sku = self.sku_id(&line.sku)?;
            if lines.iter().any(|earlier| earlier.sku == sku) {
                return Err(invalid(format!("sku {} is on two lines", line.sku)));
            }
            lines.push(OrderLineRecord {
                sku,
                quantity: line.quantity,
                unit_price_minor: line.unit_price_minor,
                cancelled: 0,
                backordered: 0,
                returned: 0,
            });
        }
        Ok(lines)
    }

    /// A live hold whose lines match the order's: its cells become the allocations.
    fn hold_allocations(
        &self,
        hold: HoldId,
        lines: &[OrderLineRecord],
        delivery: &OrderDelivery,
        now_ms: u64,
    ) -> Result<Allocations, EngineError> {
        let held = self.live_hold(hold, now_ms)?;
        for line in lines {
            let units: u32 = (held.lines.iter().filter(|held| held.sku == line.sku))
                .map(|held| held.quantity)
                .sum();
            if units != line.quantity {
                let sku = self.skus.name(line.sku);
                let message =
                    format!("hold {hold} has {units} of {sku}, the order {}", line.quantity);
                return Err(invalid(message));
            }
        }
        if held.lines.iter().any(|held| lines.iter().all(|line| line.sku != held.sku)) {
            return Err(invalid(format!("hold {hold} has lines the order does not")));
        }
        if let OrderDelivery::Pickup(store) = delivery
            && held.lines.iter().any(|held| held.location != *store)
        {
            return Err(invalid(format!("hold {hold} is not all at the pickup store")));
        }
        let mut allocations: Vec<routing::Allocation> = Vec::new();
        for line in &held.lines {
            let need = Need { sku: line.sku, quantity: line.quantity };
            match allocations.iter_mut().find(|a| a.location == line.location) {
                Some(allocation) => allocation.lines.push(need),
                None => allocations
                    .push(routing::Allocation { location: line.location, lines: vec![need] }),
            }
        }
        let decision = (self.holds.routed.get(&hold).cloned())
            .unwrap_or_else(|| Decision::new(Rule::FromHold, 0, &[]));
        Ok((allocations, Vec::new(), decision))
    }

    /// Routes the order's lines; refuses what cannot be filled unless backorders are
    /// allowed.
    fn routed_allocations(
        &self,
        request: &PlaceOrder,
        lines: &[OrderLineRecord],
        delivery: &OrderDelivery,
    ) -> Result<Allocations, EngineError> {
        let needs: Vec<Need> =
            lines.iter().map(|line| Need { sku: line.sku, quantity: line.quantity }).collect();
        let plan = self.plan(&needs, delivery, None, self.routing_weights.shipments_max);
        if let Some(short) = plan.unfilled.first()
            && !request.allow_backorder
        {
            let line = lines.iter().position(|line| line.sku == short.sku).expect("from lines");
            let available = self.routable_units(&plan, short.sku);
            return Err(EngineError::InsufficientStock { line: line as u32, available });
        }
        let decision = decision(&plan);
        Ok((plan.allocations, plan.unfilled, decision))
    }

    /// Routes `needs` for an order going to `delivery`, leaving out `excluded` (a
    /// location that just came up short) and splitting over at most `shipments_max`.
    pub(crate) fn plan(
        &self,
        needs: &[Need],
        delivery: &OrderDelivery,
        excluded: Option<LocationId>,
        shipments_max: usize,
    ) -> Plan {
        let destination = match delivery {
            OrderDelivery::Ship { latitude_e6, longitude_e6, .. } => {
                Destination::Ship { latitude_e6: *latitude_e6, longitude_e6: *longitude_e6 }
            }
            OrderDelivery::Pickup(location) => Destination::Pickup { location: *location },
        };
        if shipments_max == 0 {
            return Plan {
                allocations: Vec::new(),
                unfilled: needs.to_vec(),
                rule: Rule::NoLocation,
                assessments: Vec::new(),
            };
        }
        let sites: Vec<Site<'_>> = (self.locations.iter().enumerate())
            .map(|(id, spec)| Site {
                id: id as LocationId,
                spec,
                open_shipments: self.orders.open_at(id as LocationId),
            })
            .collect();
        let available = |sku: SkuId, location: LocationId| {
            if Some(location) == excluded { 0 } else { self.stock.available(sku, location) }
        };
        let weights = routing::RoutingWeights { shipments_max, ..self.routing_weights };
        routing::route(needs, destination, &sites, available, &weights)
    }

    /// Units of `sku` available at the locations that passed routing's filter.
    pub(crate) fn routable_units(&self, plan: &Plan, sku: SkuId) -> i64 {
        (plan.assessments.iter())
            .filter(|a| matches!(a.verdict, Verdict::Chosen | Verdict::Eligible | Verdict::NoStock))
            .map(|a| self.stock.available(sku, a.location).max(0))
            .sum()
    }

    /// One shipment per allocation, counted open at its location. With `take_stock` the
    /// units move from available to `allocated` (routing checked they are available).
    pub(crate) fn open_shipments(
        &mut self,
        order: OrderId,
        allocations: &[routing::Allocation],
        take_stock: bool,
        now_ms: u64,
    ) -> Vec<ShipmentId> {
        let delivery = self.orders.order(order).expect("known order").delivery.method();
        let mut ids = Vec::with_capacity(allocations.len());
        for allocation in allocations {
            let mut lines = SmallVec::with_capacity(allocation.lines.len());
            for need in &allocation.lines {
                if take_stock {
                    let cell = self.stock.cell_mut(need.sku, allocation.location).expect("routed");
                    assert!(cell.available() >= i64::from(need.quantity), "routing oversold");
                    cell.allocated += need.quantity;
                }
                lines.push(ShipmentLine { sku: need.sku, quantity: need.quantity });
            }
            let shipment = Shipment::new(order, allocation.location, delivery, lines, now_ms);
            ids.push(self.orders.insert_shipment(shipment));
        }
        ids
    }

    /// Moves a converted hold's units from `held` to `allocated` and resolves it.
    fn convert_hold(&mut self, id: HoldId, order_number: &str, now_ms: u64) {
        let hold = self.holds.holds.get_mut(&id).expect("checked live");
        hold.order_number = Some(order_number.into());
        for line in &hold.lines {
            let cell = self.stock.cell_mut(line.sku, line.location).expect("held cell exists");
            cell.held -= line.quantity;
            cell.allocated += line.quantity;
        }
        self.holds.resolve(id, Resolution::Committed, now_ms);
        self.counters.holds_committed += 1;
    }

    pub(crate) fn record_payment(&mut self, id: OrderId, event: PaymentEvent) -> Outcome {
        let order = self.known_order(id)?;
        let next =
            payment_after(order.payment, event).ok_or_else(|| transition(order.payment.name()))?;
        self.orders.order_mut(id).payment = next;
        Ok(self.order_changed(id))
    }

    pub(crate) fn hold_order(&mut self, id: OrderId, reason: OrderHoldReason) -> Outcome {
        let order = self.known_order(id)?;
        if order.hold.is_some() {
            return Err(transition(OrderState::OnHold.name()));
        }
        if !self.has_open_units(order) {
            return Err(transition(order.state.name()));
        }
        self.orders.order_mut(id).hold = Some(reason);
        Ok(self.order_changed(id))
    }

    pub(crate) fn release_order_hold(&mut self, id: OrderId) -> Outcome {
        let order = self.known_order(id)?;
        if order.hold.is_none() {
            return Err(transition(order.state.name()));
        }
        self.orders.order_mut(id).hold = None;
        Ok(self.order_changed(id))
    }

    /// Cancels every open shipment and every backorder of the order.
    pub(crate) fn cancel_order(&mut self, id: OrderId, now_ms: u64) -> Outcome {
        let order = self.known_order(id)?;
        if !self.has_open_units(order) {
            return Err(transition(order.state.name()));
        }
        let open: Vec<ShipmentId> = order
            .shipments()
            .filter(|&shipment| self.orders.shipment(shipment).expect("exists").state.is_open())
            .collect();
        for shipment in open {
            self.cancel_open_shipment(shipment, now_ms);
        }
        for line in &mut self.orders.order_mut(id).lines {
            line.cancelled += line.backordered;
            line.backordered = 0;
        }
        Ok(self.order_changed(id))
    }

    /// Cancels units of some lines: backordered units first, then the newest open
    /// shipments' units.
    pub(crate) fn cancel_order_lines(
        &mut self,
        id: OrderId,
        items: &[ItemQuantity],
        now_ms: u64,
    ) -> Outcome {
        check::items("cancelled lines", items).map_err(invalid)?;
        let order = self.known_order(id)?;
        let wanted = needs_of(items, |sku| self.order_sku(order, sku))?;
        for need in &wanted {
            let cancellable = self.cancellable_units(order, need.sku);
            if need.quantity > cancellable {
                let sku = self.skus.name(need.sku);
                let message =
                    format!("{} units of {sku} asked, {cancellable} can be", need.quantity);
                return Err(invalid(message));
            }
        }
        for need in wanted {
            self.cancel_units(id, need, now_ms);
        }
        Ok(self.order_changed(id))
    }

    /// Backordered units, then units in open shipments (newest first), of one SKU.
    fn cancel_units(&mut self, id: OrderId, need: Need, now_ms: u64) {
        let line = self.orders.order_mut(id).line_mut(need.sku).expect("checked");
        let from_backorder = need.quantity.min(line.backordered);
        line.backordered -= from_backorder;
        line.cancelled += need.quantity;
        let mut left = need.quantity - from_backorder;
        let shipments: Vec<ShipmentId> =
            self.orders.order(id).expect("known").shipments().rev().collect();
        for shipment in shipments {
            if left == 0 {
                break;
            }
            let record = self.orders.shipment(shipment).expect("exists");
            if !record.state.is_open() {
                continue;
            }
            let taken = left.min(record.units_of(need.sku));
            if taken > 0 {
                self.take_from_shipment(shipment, Need { sku: need.sku, quantity: taken }, now_ms);
                left -= taken;
            }
        }
        assert_eq!(left, 0, "cancellable units were counted first");
    }

    /// Takes units out of an open shipment back to available stock; a shipment left
    /// empty is cancelled.
    pub(crate) fn take_from_shipment(&mut self, id: ShipmentId, need: Need, now_ms: u64) {
        let shipment = self.orders.shipment_mut(id);
        let line = (shipment.lines.iter_mut())
            .find(|line| line.sku == need.sku)
            .expect("the shipment has the sku");
        line.quantity -= need.quantity;
        shipment.updated_at_ms = now_ms;
        let location = shipment.location();
        let emptied = shipment.units() == 0;
        self.stock.cell_mut(need.sku, location).expect("allocated cell").allocated -= need.quantity;
        self.orders.uncount_open_units(location, u64::from(need.quantity));
        if emptied {
            self.close_shipment(id, ShipmentState::Cancelled, now_ms);
        }
    }

    /// Cancels an open shipment: its units go back to available and are cancelled on
    /// the order.
    pub(crate) fn cancel_open_shipment(&mut self, id: ShipmentId, now_ms: u64) {
        let shipment = self.orders.shipment(id).expect("exists").clone();
        assert!(shipment.state.is_open());
        let order = self.orders.order_mut(shipment.order());
        for line in &shipment.lines {
            order.line_mut(line.sku).expect("shipment skus are order skus").cancelled +=
                line.quantity;
        }
        for line in &shipment.lines {
            let cell = self.stock.cell_mut(line.sku, shipment.location()).expect("allocated cell");
            cell.allocated -= line.quantity;
        }
        self.close_shipment(id, ShipmentState::Cancelled, now_ms);
    }

    /// Moves an open shipment to a closed state (shipped, picked up, cancelled): it no
    /// longer counts against its location's capacity nor appears on its pick list.
    pub(crate) fn close_shipment(&mut self, id: ShipmentId, state: ShipmentState, now_ms: u64) {
        let shipment = self.orders.shipment_mut(id);
        assert!(shipment.state.is_open() && !state.is_open());
        shipment.state = state;
        shipment.updated_at_ms = now_ms;
        let (location, units) = (shipment.location(), shipment.units());
        self.orders.floor.remove(&(location, id));
        self.orders.count_open(location, units, false);
    }

    /// Routes the order's backordered units again.
    pub(crate) fn allocate_backorders(&mut self, id: OrderId, now_ms: u64) -> Outcome {
        let order = self.known_order(id)?;
        let needs: Vec<Need> = (order.lines.iter())
            .filter(|line| line.backordered > 0)
            .map(|line| Need { sku: line.sku, quantity: line.backordered })
            .collect();
        if needs.is_empty() {
            return Err(transition(order.state.name()));
        }
        for line in &mut self.orders.order_mut(id).lines {
            line.backordered = 0;
        }
        self.reroute(id, &needs, None, now_ms);
        Ok(self.order_changed(id))
    }

    /// Stock of `sku` arrived: the oldest orders waiting for it are routed again, up to
    /// `BACKORDERS_FILLED_PER_ARRIVAL_MAX` of them. What still cannot be placed stays
    /// backordered.
    pub(crate) fn fill_backorders(&mut self, sku: SkuId, now_ms: u64) {
        let waiting: Vec<OrderId> = (self.orders.backorders.range((sku, 0)..=(sku, OrderId::MAX)))
            .take(BACKORDERS_FILLED_PER_ARRIVAL_MAX)
            .map(|&(_, order)| order)
            .collect();
        for id in waiting {
            let line = self.orders.order_mut(id).line_mut(sku).expect("indexed by its sku");
            let need = Need { sku, quantity: line.backordered };
            line.backordered = 0;
            self.reroute(id, &[need], None, now_ms);
            self.orders.refresh(id);
        }
    }

    /// Routes `needs` of an order that are in no shipment and not backordered (taken out
    /// of a shipment, or off the backorder) into new shipments; what cannot be placed is
    /// backordered.
    /// Returns the new shipments and the units backordered.
    pub(crate) fn reroute(
        &mut self,
        id: OrderId,
        needs: &[Need],
        excluded: Option<LocationId>,
        now_ms: u64,
    ) -> (Vec<ShipmentId>, u64) {
        let order = self.orders.order(id).expect("known order");
        let room = SHIPMENTS_PER_ORDER_MAX.saturating_sub(order.shipments().len());
        let shipments_max = if self.orders.shipments.len() + room > SHIPMENTS_MAX {
            0
        } else {
            room.min(self.routing_weights.shipments_max)
        };
        let plan = self.plan(needs, &order.delivery, excluded, shipments_max);
        let order = self.orders.order_mut(id);
        for need in needs {
            order.line_mut(need.sku).expect("order sku").backordered += need.quantity;
        }
        for allocation in &plan.allocations {
            for need in &allocation.lines {
                order.line_mut(need.sku).expect("order sku").backordered -= need.quantity;
            }
        }
        let backordered = plan.unfilled.iter().map(|need| u64::from(need.quantity)).sum();
        let shipments = self.open_shipments(id, &plan.allocations, true, now_ms);
        (shipments, backordered)
    }

    pub(crate) fn known_order(&self, id: OrderId) -> Result<&Order, EngineError> {
        self.orders.order(id).ok_or_else(|| EngineError::NotFound(format!("order {id}")))
    }

    /// The order line's SKU id for a SKU named in a request about that order.
    pub(crate) fn order_sku(&self, order: &Order, sku: &str) -> Result<SkuId, EngineError> {
        let id = self.sku_id(sku)?;
        if order.lines.iter().all(|line| line.sku != id) {
            return Err(invalid(format!("order {} has no line for {sku}", order.id())));
        }
        Ok(id)
    }

    fn cancellable_units(&self, order: &Order, sku: SkuId) -> u32 {
        let backordered =
            order.lines.iter().find(|line| line.sku == sku).map_or(0, |l| l.backordered);
        let in_shipments: u32 = order
            .shipments()
            .map(|id| self.orders.shipment(id).expect("exists"))
            .filter(|shipment| shipment.state.is_open())
            .map(|shipment| shipment.units_of(sku))
            .sum();
        backordered + in_shipments
    }

    fn has_open_units(&self, order: &Order) -> bool {
        order.lines.iter().any(|line| line.backordered > 0)
            || order.shipments().any(|id| self.orders.shipment(id).expect("exists").state.is_open())
    }

    /// Refreshes the order's derived state and answers with it.
    pub(crate) fn order_changed(&mut self, id: OrderId) -> Reply {
        let state = self.orders.refresh(id);
        Reply::OrderChanged { order: id, state }
    }
}

/// Request lines summed per SKU, in order of first appearance; `sku` resolves a SKU
/// named in the request (and says why it may not be used).
pub(crate) fn needs_of(
    items: &[ItemQuantity],
    mut sku: impl FnMut(&str) -> Result<SkuId, EngineError>,
) -> Result<Vec<Need>, EngineError> {
    let mut needs: Vec<Need> = Vec::with_capacity(items.len());
    for item in items {
        let id = sku(&item.sku)?;
        match needs.iter_mut().find(|need| need.sku == id) {
            Some(need) => need.quantity += item.quantity,
            None => needs.push(Need { sku: id, quantity: item.quantity }),
        }
    }
    Ok(needs)
}

/// The answer to placing `order`, as it is now.
fn placement_reply(order: &Order) -> Reply {
    let id = order.id();
    let backordered = order.lines.iter().map(|line| u64::from(line.backordered)).sum();
    Reply::OrderPlaced {
        order: id,
        state: order.state,
        shipments: order.shipments().collect(),
        backordered_units: backordered,
    }
}

/// What placing an order takes: allocations per location, units to backorder, and the
/// decision that chose them.
type Allocations = (Vec<routing::Allocation>, Vec<Need>, Decision);

/// The decision as recorded: every chosen location, then the best-scored of the rest,
/// up to `ROUTING_ASSESSMENTS_KEPT_MAX` in all.
pub(crate) fn decision(plan: &Plan) -> Decision {
    let mut kept: Vec<Assessment> = plan.assessments.clone();
    kept.sort_by_key(|a| {
        let rank = match a.verdict {
            Verdict::Chosen => 0,
            Verdict::Eligible => 1,
            _ => 2,
        };
        (rank, a.score, a.location)
    });
    // The plan assessed every location; the order keeps only these, for its whole life.
    kept.truncate(ROUTING_ASSESSMENTS_KEPT_MAX.max(plan.allocations.len()));
    Decision::new(plan.rule, plan.assessments.len() as u32, &kept)
}

/// The payment state after `event`, if the event may follow the current state.
fn payment_after(state: PaymentState, event: PaymentEvent) -> Option<PaymentState> {
    use PaymentEvent as E;
    use PaymentState as P;
    match (state, event) {
        (P::Pending | P::Failed, E::Authorised) => Some(P::Authorised),
        (P::Pending | P::Failed | P::Authorised, E::Failed) => Some(P::Failed),
        (P::Authorised, E::Captured) => Some(P::Captured),
        (P::Captured, E::Refunded) => Some(P::Refunded),
        _ => None,
    }
}

/// `InvalidTransition` from a state named as on the wire.
pub(crate) fn transition(from: &str) -> EngineError {
    EngineError::InvalidTransition { from: from.into() }
}
