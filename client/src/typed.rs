//! Typed calls: one method per command and query, each checking that the server's reply
//! is of the kind the request asks for.

use allot_protocol::limits::PAGE_LIMIT_MAX;
use allot_protocol::{
    CellKey, CellView, Command, HoldId, HoldState, HoldView, LineRequest, LocationSpec, Query,
    Reply, RequestBody, ShortagePage,
};
use serde::Serialize;

use crate::client::Client;
use crate::error::ClientError;

/// A hold was placed: its id and when it expires (engine time, ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HoldPlaced {
    pub hold: HoldId,
    pub expires_at_ms: u64,
}

/// Some or all of a hold was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HoldReleased {
    pub hold: HoldId,
    /// `Held` while units remain, else `Resolved(Released)`.
    pub state: HoldState,
    /// Units the hold still holds.
    pub units_held: u64,
}

impl Client {
    /// Checks the connection end to end; returns the server's version.
    ///
    /// ```no_run
    /// # async fn example(client: allot_client::Client) -> Result<(), allot_client::ClientError> {
    /// println!("allotd {}", client.ping().await?);
    /// # Ok(()) }
    /// ```
    pub async fn ping(&self) -> Result<String, ClientError> {
        match self.send(RequestBody::Ping).await? {
            Reply::Pong { server_version } => Ok(server_version),
            other => unexpected("Pong", &other),
        }
    }

    /// Runs a command under a fresh idempotency key.
    pub async fn command(&self, command: Command) -> Result<Reply, ClientError> {
        self.command_with_key(self.new_key(), command).await
    }

    /// Runs a command under the caller's idempotency key: sending the same command with
    /// the same key again (even from another process) returns the first answer.
    ///
    /// ```no_run
    /// # async fn example(client: allot_client::Client) -> Result<(), allot_client::ClientError> {
    /// use allot_client::protocol::Command;
    ///
    /// let receipt = Command::Receive { sku: "SKU-1".into(), location: "LDN".into(), quantity: 40 };
    /// client.command_with_key("asn-4711-line-1", receipt).await?;
    /// # Ok(()) }
    /// ```
    pub async fn command_with_key(
        &self,
        key: impl Into<String>,
        command: Command,
    ) -> Result<Reply, ClientError> {
        self.send(RequestBody::Command { idempotency_key: Some(key.into()), command }).await
    }

    /// Runs a query.
    pub async fn query(&self, query: Query) -> Result<Reply, ClientError> {
        self.send(RequestBody::Query(query)).await
    }

    /// Creates a location, or replaces every attribute of an existing one.
    pub async fn upsert_location(&self, spec: LocationSpec) -> Result<LocationSpec, ClientError> {
        location_reply(self.command(Command::UpsertLocation(spec)).await?)
    }

    /// Stops holding and routing at a location; its stock stays.
    pub async fn deactivate_location(
        &self,
        code: impl Into<String>,
    ) -> Result<LocationSpec, ClientError> {
        let command = Command::DeactivateLocation { location: code.into() };
        location_reply(self.command(command).await?)
    }

    /// Goods received: `on_hand` goes up by `quantity`.
    ///
    /// ```no_run
    /// # async fn example(client: allot_client::Client) -> Result<(), allot_client::ClientError> {
    /// let cell = client.receive("SKU-1", "LDN", 25).await?;
    /// assert!(cell.on_hand >= 25);
    /// # Ok(()) }
    /// ```
    pub async fn receive(
        &self,
        sku: impl Into<String>,
        location: impl Into<String>,
        quantity: u32,
    ) -> Result<CellView, ClientError> {
        let command = Command::Receive { sku: sku.into(), location: location.into(), quantity };
        cell_reply(self.command(command).await?)
    }

    /// Corrects `on_hand` by `delta` (negative to remove), with a reason code.
    pub async fn adjust(
        &self,
        sku: impl Into<String>,
        location: impl Into<String>,
        delta: i64,
        reason: impl Into<String>,
    ) -> Result<CellView, ClientError> {
        let command = Command::Adjust {
            sku: sku.into(),
            location: location.into(),
            delta,
            reason: reason.into(),
        };
        cell_reply(self.command(command).await?)
    }

    /// Sets `on_hand` to `counted` only if it is still `expected`; otherwise fails with
    /// `CompareFailed { actual }`.
    pub async fn cycle_count(
        &self,
        sku: impl Into<String>,
        location: impl Into<String>,
        expected: u32,
        counted: u32,
    ) -> Result<CellView, ClientError> {
        let command =
            Command::CycleCount { sku: sku.into(), location: location.into(), expected, counted };
        cell_reply(self.command(command).await?)
    }

    /// Units kept back from sale at a cell.
    pub async fn set_safety_stock(
        &self,
        sku: impl Into<String>,
        location: impl Into<String>,
        quantity: u32,
    ) -> Result<CellView, ClientError> {
        let command =
            Command::SetSafetyStock { sku: sku.into(), location: location.into(), quantity };
        cell_reply(self.command(command).await?)
    }

    /// Moves units between locations; returns the source and destination cells.
    pub async fn transfer(
        &self,
        sku: impl Into<String>,
        from: impl Into<String>,
        to: impl Into<String>,
        quantity: u32,
    ) -> Result<(CellView, CellView), ClientError> {
        let command =
            Command::Transfer { sku: sku.into(), from: from.into(), to: to.into(), quantity };
        match self.command(command).await? {
            Reply::Transferred { from, to } => Ok((from, to)),
            other => unexpected("Transferred", &other),
        }
    }

    /// Holds stock for a cart, all lines or none; `ttl_ms` defaults to 15 minutes.
    ///
    /// ```no_run
    /// # async fn example(client: allot_client::Client) -> Result<(), allot_client::ClientError> {
    /// use allot_client::protocol::{ErrorCode, LineRequest};
    ///
    /// let line = LineRequest { sku: "SKU-1".into(), location: "LDN".into(), quantity: 1 };
    /// match client.reserve(vec![line], Some(60_000)).await {
    ///     Ok(placed) => println!("hold {} until {}", placed.hold, placed.expires_at_ms),
    ///     Err(error) if matches!(error.code(), Some(ErrorCode::InsufficientStock { .. })) => {
    ///         println!("sold out");
    ///     }
    ///     Err(error) => return Err(error),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn reserve(
        &self,
        lines: Vec<LineRequest>,
        ttl_ms: Option<u64>,
    ) -> Result<HoldPlaced, ClientError> {
        self.reserve_with_key(self.new_key(), lines, ttl_ms).await
    }

    /// [`Client::reserve`] under the caller's idempotency key (a checkout's cart id, say).
    pub async fn reserve_with_key(
        &self,
        key: impl Into<String>,
        lines: Vec<LineRequest>,
        ttl_ms: Option<u64>,
    ) -> Result<HoldPlaced, ClientError> {
        match self.command_with_key(key, Command::Reserve { lines, ttl_ms }).await? {
            Reply::HoldPlaced { hold, expires_at_ms } => Ok(HoldPlaced { hold, expires_at_ms }),
            other => unexpected("HoldPlaced", &other),
        }
    }

    /// Moves a live hold's deadline to now + `ttl_ms`; returns the new deadline.
    pub async fn extend_hold(&self, hold: HoldId, ttl_ms: u64) -> Result<u64, ClientError> {
        self.extend_hold_with_key(self.new_key(), hold, ttl_ms).await
    }

    /// [`Client::extend_hold`] under the caller's idempotency key.
    pub async fn extend_hold_with_key(
        &self,
        key: impl Into<String>,
        hold: HoldId,
        ttl_ms: u64,
    ) -> Result<u64, ClientError> {
        match self.command_with_key(key, Command::ExtendHold { hold, ttl_ms }).await? {
            Reply::HoldExtended { expires_at_ms, .. } => Ok(expires_at_ms),
            other => unexpected("HoldExtended", &other),
        }
    }

    /// Releases the given quantities of a live hold, or all of it when `lines` is empty.
    pub async fn release_hold(
        &self,
        hold: HoldId,
        lines: Vec<LineRequest>,
    ) -> Result<HoldReleased, ClientError> {
        self.release_hold_with_key(self.new_key(), hold, lines).await
    }

    /// [`Client::release_hold`] under the caller's idempotency key.
    pub async fn release_hold_with_key(
        &self,
        key: impl Into<String>,
        hold: HoldId,
        lines: Vec<LineRequest>,
    ) -> Result<HoldReleased, ClientError> {
        match self.command_with_key(key, Command::ReleaseHold { hold, lines }).await? {
            Reply::HoldReleased { hold, state, units_held } => {
                Ok(HoldReleased { hold, state, units_held })
            }
            other => unexpected("HoldReleased", &other),
        }
    }

    /// Turns a live hold into an allocation for an order.
    pub async fn commit_hold(
        &self,
        hold: HoldId,
        order_number: impl Into<String>,
    ) -> Result<(), ClientError> {
        self.commit_hold_with_key(self.new_key(), hold, order_number).await
    }

    /// [`Client::commit_hold`] under the caller's idempotency key (the order number
    /// makes a good one).
    pub async fn commit_hold_with_key(
        &self,
        key: impl Into<String>,
        hold: HoldId,
        order_number: impl Into<String>,
    ) -> Result<(), ClientError> {
        let command = Command::CommitHold { hold, order_number: order_number.into() };
        match self.command_with_key(key, command).await? {
            Reply::HoldCommitted { .. } => Ok(()),
            other => unexpected("HoldCommitted", &other),
        }
    }

    /// The outside system shipped `lines` of a hold committed by [`Client::commit_hold`]
    /// (every unit it still commits when empty): they leave `on_hand` and `allocated`.
    /// Answers the units the hold still commits.
    pub async fn consume_committed(
        &self,
        hold: HoldId,
        lines: Vec<LineRequest>,
    ) -> Result<u64, ClientError> {
        self.consume_committed_with_key(self.new_key(), hold, lines).await
    }

    /// [`Client::consume_committed`] under the caller's idempotency key.
    pub async fn consume_committed_with_key(
        &self,
        key: impl Into<String>,
        hold: HoldId,
        lines: Vec<LineRequest>,
    ) -> Result<u64, ClientError> {
        settled_reply(self.command_with_key(key, Command::ConsumeCommitted { hold, lines }).await?)
    }

    /// The outside order of a committed hold was cancelled: `lines` (every unit it still
    /// commits when empty) leave `allocated` and are available again. Answers the units
    /// the hold still commits.
    pub async fn release_committed(
        &self,
        hold: HoldId,
        lines: Vec<LineRequest>,
    ) -> Result<u64, ClientError> {
        self.release_committed_with_key(self.new_key(), hold, lines).await
    }

    /// [`Client::release_committed`] under the caller's idempotency key.
    pub async fn release_committed_with_key(
        &self,
        key: impl Into<String>,
        hold: HoldId,
        lines: Vec<LineRequest>,
    ) -> Result<u64, ClientError> {
        settled_reply(self.command_with_key(key, Command::ReleaseCommitted { hold, lines }).await?)
    }

    /// One stock cell; `NotFound` for a SKU or location the engine has never seen.
    pub async fn cell(
        &self,
        sku: impl Into<String>,
        location: impl Into<String>,
    ) -> Result<CellView, ClientError> {
        cell_reply(self.query(Query::Cell { sku: sku.into(), location: location.into() }).await?)
    }

    /// A SKU's cells at every location, in location order.
    pub async fn sku_stock(&self, sku: impl Into<String>) -> Result<Vec<CellView>, ClientError> {
        cells_reply(self.query(Query::SkuStock { sku: sku.into() }).await?)
    }

    /// A hold by id.
    pub async fn hold(&self, hold: HoldId) -> Result<HoldView, ClientError> {
        match self.query(Query::Hold { hold }).await? {
            Reply::Hold(view) => Ok(view),
            other => unexpected("Hold", &other),
        }
    }

    /// One location by code.
    pub async fn location(&self, code: impl Into<String>) -> Result<LocationSpec, ClientError> {
        location_reply(self.query(Query::Location { location: code.into() }).await?)
    }

    /// Every location, in code order.
    pub async fn locations(&self) -> Result<Vec<LocationSpec>, ClientError> {
        match self.query(Query::Locations).await? {
            Reply::Locations(all) => Ok(all),
            other => unexpected("Locations", &other),
        }
    }

    /// One page of cells whose `available` is below zero, by (sku, location): those
    /// after `after` (the previous page's `next`), at most `limit`.
    pub async fn shortage_page(
        &self,
        after: Option<CellKey>,
        limit: u32,
    ) -> Result<ShortagePage, ClientError> {
        match self.query(Query::ShortagePage { after, limit }).await? {
            Reply::Shortages(page) => Ok(page),
            other => unexpected("Shortages", &other),
        }
    }

    /// Every cell whose `available` is below zero, read page by page.
    pub async fn shortages(&self) -> Result<Vec<CellView>, ClientError> {
        let mut cells = Vec::new();
        let mut after = None;
        loop {
            let page = self.shortage_page(after, PAGE_LIMIT_MAX).await?;
            cells.extend(page.cells);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(cells),
            }
        }
    }
}

fn settled_reply(reply: Reply) -> Result<u64, ClientError> {
    match reply {
        Reply::CommittedSettled { units_committed, .. } => Ok(units_committed),
        other => unexpected("CommittedSettled", &other),
    }
}

fn cell_reply(reply: Reply) -> Result<CellView, ClientError> {
    match reply {
        Reply::Cell(cell) => Ok(cell),
        other => unexpected("Cell", &other),
    }
}

fn cells_reply(reply: Reply) -> Result<Vec<CellView>, ClientError> {
    match reply {
        Reply::Cells(cells) => Ok(cells),
        other => unexpected("Cells", &other),
    }
}

fn location_reply(reply: Reply) -> Result<LocationSpec, ClientError> {
    match reply {
        Reply::Location(spec) => Ok(spec),
        other => unexpected("Location", &other),
    }
}

pub(crate) fn unexpected<T>(wanted: &str, got: &Reply) -> Result<T, ClientError> {
    Err(ClientError::Protocol(format!("expected a {wanted} reply, got {}", reply_name(got))))
}

/// A reply's variant name, for error messages.
pub fn reply_name(reply: &Reply) -> &'static str {
    match reply {
        Reply::Pong { .. } => "Pong",
        Reply::Location(_) => "Location",
        Reply::Locations(_) => "Locations",
        Reply::Cell(_) => "Cell",
        Reply::Cells(_) => "Cells",
        Reply::Transferred { .. } => "Transferred",
        Reply::HoldPlaced { .. } => "HoldPlaced",
        Reply::HoldExtended { .. } => "HoldExtended",
        Reply::HoldReleased { .. } => "HoldReleased",
        Reply::HoldCommitted { .. } => "HoldCommitted",
        Reply::Hold(_) => "Hold",
        Reply::RoutedHoldPlaced { .. } => "RoutedHoldPlaced",
        Reply::OrderPlaced { .. } => "OrderPlaced",
        Reply::OrderChanged { .. } => "OrderChanged",
        Reply::ShipmentChanged { .. } => "ShipmentChanged",
        Reply::ShortPicked { .. } => "ShortPicked",
        Reply::ReturnChanged { .. } => "ReturnChanged",
        Reply::ReturnExchanged { .. } => "ReturnExchanged",
        Reply::Order(_) => "Order",
        Reply::Orders(_) => "Orders",
        Reply::Shipment(_) => "Shipment",
        Reply::Shipments(_) => "Shipments",
        Reply::Return(_) => "Return",
        Reply::Kpis(_) => "Kpis",
        Reply::Routing(_) => "Routing",
        Reply::Shortages(_) => "Shortages",
        Reply::CommittedSettled { .. } => "CommittedSettled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_of_the_wrong_kind_is_a_protocol_error() {
        let error = cell_reply(Reply::HoldCommitted { hold: 3 }).unwrap_err();
        assert_eq!(error, ClientError::Protocol("expected a Cell reply, got HoldCommitted".into()));
        assert!(cells_reply(Reply::Locations(vec![])).is_err());
        assert_eq!(cells_reply(Reply::Cells(vec![])), Ok(vec![]));
    }
}
