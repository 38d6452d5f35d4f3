//! Handlers for returns (RMAs): request, authorise, receive per line, refund or exchange.

use allot_protocol::check;

use super::apply_order::transition;
use super::command::{ItemQuantity, PlaceOrder, ReturnCondition, ReturnReceipt};
use super::ids::SkuId;
use super::limits::{ON_HAND_MAX, RETURNS_MAX, RETURNS_PER_ORDER_MAX};
use super::order::{Order, Return, ReturnLine};
use super::order_state::PaymentState;
use super::outcome::{EngineError, OrderId, Outcome, Reply, ReturnId, ReturnState};
use super::shipment::Lifecycle;
use super::state::State;
use super::validate::invalid;

impl State {
    pub(crate) fn request_return(
        &mut self,
        order_id: OrderId,
        items: &[ItemQuantity],
        reason: &str,
        now_ms: u64,
    ) -> Outcome {
        check::items("returned lines", items).map_err(invalid)?;
        check::text("reason", reason, allot_protocol::limits::REASON_BYTES_MAX).map_err(invalid)?;
        let order = self.known_order(order_id)?;
        if self.orders.returns_of(order_id).count() >= RETURNS_PER_ORDER_MAX
            || self.orders.returns.len() >= RETURNS_MAX
        {
            return Err(invalid(format!("order {order_id} has too many returns")));
        }
        let mut lines: Vec<ReturnLine> = Vec::with_capacity(items.len());
        for item in items {
            let sku = self.order_sku(order, &item.sku)?;
            match lines.iter_mut().find(|line| line.sku == sku) {
                Some(line) => line.requested += item.quantity,
                None => lines.push(ReturnLine {
                    sku,
                    requested: item.quantity,
                    resellable: 0,
                    damaged: 0,
                }),
            }
        }
        for line in &lines {
            let returnable =
                self.delivered_units(order, line.sku) - self.requested_units(order, line.sku);
            if line.requested > returnable {
                let sku = self.skus.name(line.sku);
                let message = format!("{} of {sku} to return, {returnable} can be", line.requested);
                return Err(invalid(message));
            }
        }
        let id = self.orders.next_return_id();
        self.orders.insert_return(Return {
            id,
            order: order_id,
            state: ReturnState::Requested,
            reason: reason.into(),
            lines,
            received_at: None,
            damage_reasons: Vec::new(),
            refunded_minor: 0,
            exchange_order: None,
            requested_at_ms: now_ms,
            updated_at_ms: now_ms,
        });
        Ok(Reply::ReturnChanged { rma: id, state: ReturnState::Requested })
    }

    pub(crate) fn authorise_return(&mut self, id: ReturnId, now_ms: u64) -> Outcome {
        self.return_in(id, ReturnState::Requested)?;
        self.move_return(id, ReturnState::Authorised, now_ms)
    }

    /// The parcel arrived at `location`: resellable units go back on hand there, damaged
    /// ones are written off with their reason.
    pub(crate) fn receive_return(
        &mut self,
        id: ReturnId,
        location: &str,
        receipts: &[ReturnReceipt],
        now_ms: u64,
    ) -> Outcome {
        let record = self.return_in(id, ReturnState::Authorised)?;
        let location = self.location_id(location)?;
        // The same check the server makes: an embedding program reaches this directly,
        // and the line count bounds every sum below far from overflowing a counter.
        check::receipts(receipts).map_err(invalid)?;
        let mut received: Vec<(SkuId, u32)> = Vec::with_capacity(receipts.len());
        for receipt in receipts {
            let sku = self.sku_id(&receipt.sku)?;
            match received.iter_mut().find(|(known, _)| *known == sku) {
                Some((_, units)) => *units += receipt.quantity,
                None => received.push((sku, receipt.quantity)),
            }
        }
        for (sku, units) in &received {
            let requested =
                record.lines.iter().find(|line| line.sku == *sku).map_or(0, |l| l.requested);
            if *units > requested {
                let name = self.skus.name(*sku);
                return Err(invalid(format!(
                    "{units} of {name} received, {requested} were to come back"
                )));
            }
            let resellable: u32 = (receipts.iter())
                .filter(|r| {
                    r.condition == ReturnCondition::Resellable
                        && self.skus.get(&r.sku) == Some(*sku)
                })
                .map(|r| r.quantity)
                .sum();
            let on_hand = self.stock.cell(*sku, location).map_or(0, |cell| cell.on_hand);
            if u64::from(on_hand) + u64::from(resellable) > u64::from(ON_HAND_MAX) {
                return Err(invalid(format!("on_hand would pass {ON_HAND_MAX}")));
            }
        }
        let order_id = record.order;
        for receipt in receipts {
            let sku = self.skus.get(&receipt.sku).expect("checked");
            let record = self.orders.return_mut(id);
            let line = record.lines.iter_mut().find(|line| line.sku == sku).expect("checked");
            match &receipt.condition {
                ReturnCondition::Resellable => {
                    line.resellable += receipt.quantity;
                    self.stock.cell_or_insert(sku, location).on_hand += receipt.quantity;
                }
                ReturnCondition::Damaged { reason } => {
                    line.damaged += receipt.quantity;
                    record.damage_reasons.push(reason.as_str().into());
                }
            }
            let order = self.orders.order_mut(order_id);
            order.line_mut(sku).expect("return skus are order skus").returned += receipt.quantity;
            self.orders.kpis.units_returned += u64::from(receipt.quantity);
        }
        self.orders.return_mut(id).received_at = Some(location);
        self.orders.refresh(order_id);
        self.move_return(id, ReturnState::Received, now_ms)
    }

    pub(crate) fn refund_return(
        &mut self,
        id: ReturnId,
        amount_minor: i64,
        now_ms: u64,
    ) -> Outcome {
        check::amount("refund amount", amount_minor).map_err(invalid)?;
        let record = self.return_in(id, ReturnState::Received)?;
        let order = self.known_order(record.order)?;
        let refundable = refundable_minor(order, record);
        if amount_minor > refundable {
            return Err(invalid(format!(
                "refund of {amount_minor} is over the {refundable} returned"
            )));
        }
        let payment = payment_after_refund(order.payment)?;
        let order_id = order.id();
        self.orders.return_mut(id).refunded_minor = amount_minor;
        self.orders.order_mut(order_id).payment = payment;
        self.orders.refresh(order_id);
        self.move_return(id, ReturnState::Refunded, now_ms)
    }

    /// Replaces the returned goods with a new order, linked to the return.
    pub(crate) fn exchange_return(
        &mut self,
        id: ReturnId,
        order: &PlaceOrder,
        now_ms: u64,
    ) -> Outcome {
        self.return_in(id, ReturnState::Received)?;
        let placed = self.place_order(order, Some(id), now_ms)?;
        let Reply::OrderPlaced { order: new_order, .. } = placed else {
            unreachable!("placing answers OrderPlaced")
        };
        let record = self.orders.return_mut(id);
        record.exchange_order = Some(new_order);
        self.move_return(id, ReturnState::Exchanged, now_ms)?;
        Ok(Reply::ReturnExchanged { rma: id, order: new_order })
    }

    fn return_in(&self, id: ReturnId, state: ReturnState) -> Result<&Return, EngineError> {
        let record = (self.orders.return_record(id))
            .ok_or_else(|| EngineError::NotFound(format!("return {id}")))?;
        if record.state != state {
            return Err(transition(record.state.name()));
        }
        Ok(record)
    }

    fn move_return(&mut self, id: ReturnId, state: ReturnState, now_ms: u64) -> Outcome {
        let record = self.orders.return_mut(id);
        record.state = state;
        record.updated_at_ms = now_ms;
        Ok(Reply::ReturnChanged { rma: id, state })
    }

    /// Units of `sku` in the order's delivered shipments.
    fn delivered_units(&self, order: &Order, sku: SkuId) -> u32 {
        order
            .shipments()
            .map(|id| self.orders.shipment(id).expect("exists"))
            .filter(|shipment| shipment.state.is_delivered())
            .map(|shipment| shipment.units_of(sku))
            .sum()
    }

    /// Units of `sku` already asked back on the order's returns.
    fn requested_units(&self, order: &Order, sku: SkuId) -> u32 {
        (self.orders.returns_of(order.id()))
            .map(|id| self.orders.return_record(id).expect("exists"))
            .flat_map(|record| record.lines.iter())
            .filter(|line| line.sku == sku)
            .map(|line| line.requested)
            .sum()
    }
}

/// What the units received on a return were paid: the most its refund may be.
fn refundable_minor(order: &Order, record: &Return) -> i64 {
    (record.lines.iter())
        .map(|line| {
            let price =
                order.lines.iter().find(|l| l.sku == line.sku).map_or(0, |l| l.unit_price_minor);
            i64::from(line.resellable + line.damaged) * price
        })
        .sum()
}

/// The payment state after refunding a return. Money is refunded only once it was taken:
/// an authorisation never captured is voided instead, and a payment that was never good
/// (pending, failed) has nothing to give back.
fn payment_after_refund(payment: PaymentState) -> Result<PaymentState, EngineError> {
    match payment {
        PaymentState::Captured | PaymentState::Refunded => Ok(PaymentState::Refunded),
        PaymentState::Authorised | PaymentState::Voided => Ok(PaymentState::Voided),
        PaymentState::Pending | PaymentState::Failed => Err(transition(payment.name())),
    }
}
