//! Typed calls for orders, payments, shipments, returns, pick lists and KPIs: one method
//! per command and query, each checking that the server's reply is of the kind the
//! request asks for.

use allot_protocol::order::{
    Channel, DeliveryRequest, ItemQuantity, KpiView, OrderHoldReason, OrderId, OrderPage,
    OrderState, OrderView, PaymentEvent, PlaceOrder, ReturnId, ReturnReceipt, ReturnState,
    ReturnView, RoutingView, ShipmentId, ShipmentPage, ShipmentState, ShipmentStep, ShipmentView,
};
use allot_protocol::{Command, HoldId, HoldLineView, Query, Reply};
use serde::Serialize;

use crate::client::Client;
use crate::error::ClientError;
use crate::typed::unexpected;

/// A routed hold was placed: its id, its deadline, and where routing held each line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoutedHoldPlaced {
    pub hold: HoldId,
    pub expires_at_ms: u64,
    pub lines: Vec<HoldLineView>,
}

/// An order was placed (or, for an external number placed before, the original answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderPlaced {
    pub order: OrderId,
    pub state: OrderState,
    /// One shipment per location the order was routed to.
    pub shipments: Vec<ShipmentId>,
    /// Units waiting for stock (only with `allow_backorder`).
    pub backordered_units: u64,
}

/// An order-level change went through: the order's state after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OrderChanged {
    pub order: OrderId,
    pub state: OrderState,
}

/// A shipment moved: its new state and its order's state after the move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShipmentChanged {
    pub shipment: ShipmentId,
    pub state: ShipmentState,
    pub order_state: OrderState,
}

/// A short pick was recorded: where the missing units went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShortPicked {
    pub shipment: ShipmentId,
    /// The short shipment's state afterwards.
    pub state: ShipmentState,
    /// New shipments at other locations that took the missing units.
    pub rerouted: Vec<ShipmentId>,
    /// Missing units no location could supply.
    pub backordered_units: u64,
}

/// A return moved (or, for `request_return`, was created).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReturnChanged {
    pub rma: ReturnId,
    pub state: ReturnState,
}

/// A return was exchanged: the new order that replaces its goods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReturnExchanged {
    pub rma: ReturnId,
    pub order: OrderId,
}

impl Client {
    /// Holds stock for a cart whose lines name no location: routing picks the locations
    /// as for an order delivered to `destination`. All lines or none; `ttl_ms` defaults
    /// to 15 minutes.
    pub async fn reserve_routed(
        &self,
        lines: Vec<ItemQuantity>,
        destination: DeliveryRequest,
        ttl_ms: Option<u64>,
    ) -> Result<RoutedHoldPlaced, ClientError> {
        self.reserve_routed_with_key(self.new_key(), lines, destination, ttl_ms).await
    }

    /// [`Client::reserve_routed`] under the caller's idempotency key (a cart id, say).
    pub async fn reserve_routed_with_key(
        &self,
        key: impl Into<String>,
        lines: Vec<ItemQuantity>,
        destination: DeliveryRequest,
        ttl_ms: Option<u64>,
    ) -> Result<RoutedHoldPlaced, ClientError> {
        let command = Command::ReserveRouted { lines, destination, ttl_ms };
        routed_hold_placed(self.command_with_key(key, command).await?)
    }

    /// Places an order: converts `order.hold` when given, else routes and allocates
    /// afresh. Placing the same order again under the same channel and external number
    /// answers the original [`OrderPlaced`]; a different order under that number fails
    /// with `IdempotencyConflict`. Without stock for every unit it fails with
    /// `InsufficientStock { line, available }`, unless `order.allow_backorder` is set.
    ///
    /// ```no_run
    /// # async fn example(client: allot_client::Client) -> Result<(), allot_client::ClientError> {
    /// use allot_client::protocol::ErrorCode;
    /// use allot_client::protocol::order::{
    ///     Address, Channel, DeliveryRequest, OrderLine, PaymentEvent, PlaceOrder,
    /// };
    ///
    /// let order = PlaceOrder {
    ///     channel: Channel::Web,
    ///     external_number: "W-1001".into(),
    ///     customer: "C-42".into(),
    ///     delivery: DeliveryRequest::Ship {
    ///         to: Address {
    ///             latitude_e6: 51_501_009,
    ///             longitude_e6: -141_588,
    ///             country: "GB".into(),
    ///             postcode: "SW1A 1AA".into(),
    ///         },
    ///     },
    ///     currency: "GBP".into(),
    ///     lines: vec![OrderLine { sku: "SKU-1".into(), quantity: 2, unit_price_minor: 1_500 }],
    ///     hold: None,
    ///     allow_backorder: false,
    /// };
    /// match client.place_order(order).await {
    ///     Ok(placed) => {
    ///         println!("order {} in {} shipment(s)", placed.order, placed.shipments.len());
    ///         client.record_payment(placed.order, PaymentEvent::Authorised, 3_000, "psp-77").await?;
    ///     }
    ///     Err(error) => match error.code() {
    ///         Some(ErrorCode::InsufficientStock { line, available }) => {
    ///             println!("line {line}: only {available} available");
    ///         }
    ///         _ => return Err(error),
    ///     },
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn place_order(&self, order: PlaceOrder) -> Result<OrderPlaced, ClientError> {
        self.place_order_with_key(self.new_key(), order).await
    }

    /// [`Client::place_order`] under the caller's idempotency key.
    pub async fn place_order_with_key(
        &self,
        key: impl Into<String>,
        order: PlaceOrder,
    ) -> Result<OrderPlaced, ClientError> {
        order_placed(self.command_with_key(key, Command::PlaceOrder(order)).await?)
    }

    /// Records what the payment service reported; `Authorised` or `Captured` confirms a
    /// pending order.
    pub async fn record_payment(
        &self,
        order: OrderId,
        event: PaymentEvent,
        amount_minor: i64,
        reference: impl Into<String>,
    ) -> Result<OrderChanged, ClientError> {
        self.record_payment_with_key(self.new_key(), order, event, amount_minor, reference).await
    }

    /// [`Client::record_payment`] under the caller's idempotency key (the payment
    /// service's event id makes a good one).
    pub async fn record_payment_with_key(
        &self,
        key: impl Into<String>,
        order: OrderId,
        event: PaymentEvent,
        amount_minor: i64,
        reference: impl Into<String>,
    ) -> Result<OrderChanged, ClientError> {
        let command =
            Command::RecordPayment { order, event, amount_minor, reference: reference.into() };
        order_changed(self.command_with_key(key, command).await?)
    }

    /// Stops an order before it leaves; shipment steps other than `Deliver` are refused
    /// until [`Client::release_order_hold`].
    pub async fn hold_order(
        &self,
        order: OrderId,
        reason: OrderHoldReason,
        note: impl Into<String>,
    ) -> Result<OrderChanged, ClientError> {
        let command = Command::HoldOrder { order, reason, note: note.into() };
        order_changed(self.command(command).await?)
    }

    /// Lifts an order's hold.
    pub async fn release_order_hold(&self, order: OrderId) -> Result<OrderChanged, ClientError> {
        order_changed(self.command(Command::ReleaseOrderHold { order }).await?)
    }

    /// Cancels everything of an order that has not left, freeing its allocation.
    pub async fn cancel_order(
        &self,
        order: OrderId,
        reason: impl Into<String>,
    ) -> Result<OrderChanged, ClientError> {
        order_changed(self.command(Command::CancelOrder { order, reason: reason.into() }).await?)
    }

    /// Cancels one shipment that has not left, freeing its allocation.
    pub async fn cancel_shipment(
        &self,
        shipment: ShipmentId,
        reason: impl Into<String>,
    ) -> Result<ShipmentChanged, ClientError> {
        let command = Command::CancelShipment { shipment, reason: reason.into() };
        shipment_changed(self.command(command).await?)
    }

    /// Cancels some units of an order: backordered ones first, then from open shipments.
    pub async fn cancel_order_lines(
        &self,
        order: OrderId,
        lines: Vec<ItemQuantity>,
        reason: impl Into<String>,
    ) -> Result<OrderChanged, ClientError> {
        let command = Command::CancelOrderLines { order, lines, reason: reason.into() };
        order_changed(self.command(command).await?)
    }

    /// One fulfilment step of a shipment; a step out of order fails with
    /// `InvalidTransition { from }` naming the shipment's state.
    pub async fn advance_shipment(
        &self,
        shipment: ShipmentId,
        step: ShipmentStep,
    ) -> Result<ShipmentChanged, ClientError> {
        shipment_changed(self.command(Command::AdvanceShipment { shipment, step }).await?)
    }

    /// Units a location could not find while picking: written off there, then routed
    /// to other locations or backordered.
    pub async fn short_pick(
        &self,
        shipment: ShipmentId,
        missing: Vec<ItemQuantity>,
    ) -> Result<ShortPicked, ClientError> {
        short_picked(self.command(Command::ShortPick { shipment, missing }).await?)
    }

    /// Tries again to allocate an order's backordered units.
    pub async fn allocate_backorders(&self, order: OrderId) -> Result<OrderChanged, ClientError> {
        order_changed(self.command(Command::AllocateBackorders { order }).await?)
    }

    /// Asks to return delivered units; the answer carries the new return's id.
    pub async fn request_return(
        &self,
        order: OrderId,
        lines: Vec<ItemQuantity>,
        reason: impl Into<String>,
    ) -> Result<ReturnChanged, ClientError> {
        self.request_return_with_key(self.new_key(), order, lines, reason).await
    }

    /// [`Client::request_return`] under the caller's idempotency key, so a retry from
    /// another process does not open a second return.
    pub async fn request_return_with_key(
        &self,
        key: impl Into<String>,
        order: OrderId,
        lines: Vec<ItemQuantity>,
        reason: impl Into<String>,
    ) -> Result<ReturnChanged, ClientError> {
        let command = Command::RequestReturn { order, lines, reason: reason.into() };
        return_changed(self.command_with_key(key, command).await?)
    }

    /// Accepts a requested return.
    pub async fn authorise_return(&self, rma: ReturnId) -> Result<ReturnChanged, ClientError> {
        return_changed(self.command(Command::AuthoriseReturn { rma }).await?)
    }

    /// The returned units arrived at `location`: resellable ones go back on hand there,
    /// damaged ones are written off.
    pub async fn receive_return(
        &self,
        rma: ReturnId,
        location: impl Into<String>,
        lines: Vec<ReturnReceipt>,
    ) -> Result<ReturnChanged, ClientError> {
        let command = Command::ReceiveReturn { rma, location: location.into(), lines };
        return_changed(self.command(command).await?)
    }

    /// Records the refund of a received return; the order's payment becomes refunded.
    pub async fn refund_return(
        &self,
        rma: ReturnId,
        amount_minor: i64,
    ) -> Result<ReturnChanged, ClientError> {
        self.refund_return_with_key(self.new_key(), rma, amount_minor).await
    }

    /// [`Client::refund_return`] under the caller's idempotency key.
    pub async fn refund_return_with_key(
        &self,
        key: impl Into<String>,
        rma: ReturnId,
        amount_minor: i64,
    ) -> Result<ReturnChanged, ClientError> {
        let command = Command::RefundReturn { rma, amount_minor };
        return_changed(self.command_with_key(key, command).await?)
    }

    /// Replaces a received return's goods: places `order`, linked to the return.
    pub async fn exchange_return(
        &self,
        rma: ReturnId,
        order: PlaceOrder,
    ) -> Result<ReturnExchanged, ClientError> {
        self.exchange_return_with_key(self.new_key(), rma, order).await
    }

    /// [`Client::exchange_return`] under the caller's idempotency key.
    pub async fn exchange_return_with_key(
        &self,
        key: impl Into<String>,
        rma: ReturnId,
        order: PlaceOrder,
    ) -> Result<ReturnExchanged, ClientError> {
        let command = Command::ExchangeReturn { rma, order };
        return_exchanged(self.command_with_key(key, command).await?)
    }

    /// An order by id, with its lines, shipments and routing decision.
    pub async fn order(&self, order: OrderId) -> Result<OrderView, ClientError> {
        order_view(self.query(Query::Order { order }).await?)
    }

    /// The order placed under a channel's own number.
    pub async fn order_by_number(
        &self,
        channel: Channel,
        external_number: impl Into<String>,
    ) -> Result<OrderView, ClientError> {
        let query = Query::OrderByNumber { channel, external_number: external_number.into() };
        order_view(self.query(query).await?)
    }

    /// One page of a customer's orders, newest first: those before `before` (the
    /// previous page's `next`), at most `limit` (1 to 1,000).
    pub async fn customer_orders(
        &self,
        customer: impl Into<String>,
        before: Option<OrderId>,
        limit: u32,
    ) -> Result<OrderPage, ClientError> {
        let query = Query::CustomerOrders { customer: customer.into(), before, limit };
        order_page(self.query(query).await?)
    }

    /// One page of the orders in `state` (with a shipment at `location`, when given),
    /// oldest first: those after `after` (the previous page's `next`), at most `limit`.
    pub async fn orders_by_state(
        &self,
        state: OrderState,
        location: Option<String>,
        after: Option<OrderId>,
        limit: u32,
    ) -> Result<OrderPage, ClientError> {
        order_page(self.query(Query::OrdersByState { state, location, after, limit }).await?)
    }

    /// One page of a location's pick list: shipments released or being picked, oldest
    /// first, after `after` (the previous page's `next`), at most `limit`.
    pub async fn pick_list(
        &self,
        location: impl Into<String>,
        after: Option<ShipmentId>,
        limit: u32,
    ) -> Result<ShipmentPage, ClientError> {
        let query = Query::PickList { location: location.into(), after, limit };
        match self.query(query).await? {
            Reply::Shipments(page) => Ok(page),
            other => unexpected("Shipments", &other),
        }
    }

    /// A shipment by id.
    pub async fn shipment(&self, shipment: ShipmentId) -> Result<ShipmentView, ClientError> {
        match self.query(Query::Shipment { shipment }).await? {
            Reply::Shipment(view) => Ok(*view),
            other => unexpected("Shipment", &other),
        }
    }

    /// A return (RMA) by id.
    pub async fn rma(&self, rma: ReturnId) -> Result<ReturnView, ClientError> {
        match self.query(Query::Return { rma }).await? {
            Reply::Return(view) => Ok(*view),
            other => unexpected("Return", &other),
        }
    }

    /// Why a hold placed by [`reserve_routed`](Self::reserve_routed) is where it is.
    pub async fn hold_routing(&self, hold: HoldId) -> Result<RoutingView, ClientError> {
        match self.query(Query::HoldRouting { hold }).await? {
            Reply::Routing(view) => Ok(view),
            other => unexpected("Routing", &other),
        }
    }

    /// The engine's KPIs.
    pub async fn kpis(&self) -> Result<KpiView, ClientError> {
        match self.query(Query::Kpis).await? {
            Reply::Kpis(view) => Ok(*view),
            other => unexpected("Kpis", &other),
        }
    }
}

fn routed_hold_placed(reply: Reply) -> Result<RoutedHoldPlaced, ClientError> {
    match reply {
        Reply::RoutedHoldPlaced { hold, expires_at_ms, lines } => {
            Ok(RoutedHoldPlaced { hold, expires_at_ms, lines })
        }
        other => unexpected("RoutedHoldPlaced", &other),
    }
}

fn order_placed(reply: Reply) -> Result<OrderPlaced, ClientError> {
    match reply {
        Reply::OrderPlaced { order, state, shipments, backordered_units } => {
            Ok(OrderPlaced { order, state, shipments, backordered_units })
        }
        other => unexpected("OrderPlaced", &other),
    }
}

fn order_changed(reply: Reply) -> Result<OrderChanged, ClientError> {
    match reply {
        Reply::OrderChanged { order, state } => Ok(OrderChanged { order, state }),
        other => unexpected("OrderChanged", &other),
    }
}

fn shipment_changed(reply: Reply) -> Result<ShipmentChanged, ClientError> {
    match reply {
        Reply::ShipmentChanged { shipment, state, order_state } => {
            Ok(ShipmentChanged { shipment, state, order_state })
        }
        other => unexpected("ShipmentChanged", &other),
    }
}

fn short_picked(reply: Reply) -> Result<ShortPicked, ClientError> {
    match reply {
        Reply::ShortPicked { shipment, state, rerouted, backordered_units } => {
            Ok(ShortPicked { shipment, state, rerouted, backordered_units })
        }
        other => unexpected("ShortPicked", &other),
    }
}

fn return_changed(reply: Reply) -> Result<ReturnChanged, ClientError> {
    match reply {
        Reply::ReturnChanged { rma, state } => Ok(ReturnChanged { rma, state }),
        other => unexpected("ReturnChanged", &other),
    }
}

fn return_exchanged(reply: Reply) -> Result<ReturnExchanged, ClientError> {
    match reply {
        Reply::ReturnExchanged { rma, order } => Ok(ReturnExchanged { rma, order }),
        other => unexpected("ReturnExchanged", &other),
    }
}

fn order_view(reply: Reply) -> Result<OrderView, ClientError> {
    match reply {
        Reply::Order(view) => Ok(*view),
        other => unexpected("Order", &other),
    }
}

fn order_page(reply: Reply) -> Result<OrderPage, ClientError> {
    match reply {
        Reply::Orders(page) => Ok(page),
        other => unexpected("Orders", &other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_order_reply_converts_to_its_result_and_nothing_else_does() {
        let placed = Reply::OrderPlaced {
            order: 5,
            state: OrderState::Pending,
            shipments: vec![7, 8],
            backordered_units: 1,
        };
        assert_eq!(
            order_placed(placed),
            Ok(OrderPlaced {
                order: 5,
                state: OrderState::Pending,
                shipments: vec![7, 8],
                backordered_units: 1
            })
        );
        let changed = Reply::OrderChanged { order: 5, state: OrderState::Confirmed };
        assert_eq!(
            order_changed(changed.clone()),
            Ok(OrderChanged { order: 5, state: OrderState::Confirmed })
        );
        let error = order_placed(changed).unwrap_err();
        assert_eq!(
            error,
            ClientError::Protocol("expected a OrderPlaced reply, got OrderChanged".into())
        );
    }

    #[test]
    fn shipment_and_return_replies_keep_every_field() {
        let moved = Reply::ShipmentChanged {
            shipment: 9,
            state: ShipmentState::Shipped,
            order_state: OrderState::PartiallyShipped,
        };
        assert_eq!(
            shipment_changed(moved),
            Ok(ShipmentChanged {
                shipment: 9,
                state: ShipmentState::Shipped,
                order_state: OrderState::PartiallyShipped
            })
        );
        let short = Reply::ShortPicked {
            shipment: 9,
            state: ShipmentState::Picking,
            rerouted: vec![10],
            backordered_units: 2,
        };
        let short = short_picked(short).unwrap();
        assert_eq!((short.rerouted, short.backordered_units), (vec![10], 2));
        let returned = Reply::ReturnChanged { rma: 3, state: ReturnState::Requested };
        assert_eq!(
            return_changed(returned),
            Ok(ReturnChanged { rma: 3, state: ReturnState::Requested })
        );
        assert_eq!(
            return_exchanged(Reply::ReturnExchanged { rma: 3, order: 12 }),
            Ok(ReturnExchanged { rma: 3, order: 12 })
        );
        assert!(return_changed(Reply::ReturnExchanged { rma: 3, order: 12 }).is_err());
        assert!(shipment_changed(Reply::HoldCommitted { hold: 1 }).is_err());
    }

    #[test]
    fn pages_and_routed_holds_are_recognised() {
        let page = OrderPage { orders: vec![], next: Some(4) };
        assert_eq!(order_page(Reply::Orders(page.clone())), Ok(page));
        assert!(
            order_page(Reply::Shipments(ShipmentPage { shipments: vec![], next: None })).is_err()
        );
        let routed = Reply::RoutedHoldPlaced { hold: 2, expires_at_ms: 60_000, lines: vec![] };
        assert_eq!(routed_hold_placed(routed).unwrap().hold, 2);
        assert!(routed_hold_placed(Reply::HoldPlaced { hold: 2, expires_at_ms: 0 }).is_err());
    }
}
