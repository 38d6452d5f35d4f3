//! Semantic checks of a request before it reaches the engine: string lengths, line
//! counts, quantities ≥ 1, TTL range, coordinates. Each failure is a message naming the
//! field and the limit; the engine's core calls the same checks, so the two agree.
//!
//! What needs the engine's state (an unknown SKU, an inactive location, stock levels
//! after a movement) is checked by the engine, not here.

use crate::error::Error;
use crate::limits::{
    BATCH_REQUESTS_MAX, CARRIER_BYTES_MAX, CLIENT_NAME_BYTES_MAX, CUSTOMER_BYTES_MAX,
    HOLD_TTL_MS_MAX, HOLD_TTL_MS_MIN, IDEMPOTENCY_KEY_BYTES_MAX, LATITUDE_E6_MAX,
    LINES_PER_HOLD_MAX, LINES_PER_ORDER_MAX, LOCATION_CODE_BYTES_MAX, LOCATION_NAME_BYTES_MAX,
    LONGITUDE_E6_MAX, ON_HAND_MAX, ORDER_NUMBER_BYTES_MAX, PAGE_LIMIT_MAX,
    PAYMENT_REFERENCE_BYTES_MAX, POSTCODE_BYTES_MAX, PRICE_MINOR_MAX, QUANTITY_PER_LINE_MAX,
    REASON_BYTES_MAX, SKU_BYTES_MAX, TOKEN_BYTES_MAX, TRACKING_BYTES_MAX,
};
use crate::message::{Command, Hello, Request, RequestBody};
use crate::model::{LineRequest, LocationSpec, Query};
use crate::order::{
    Address, DeliveryRequest, ItemQuantity, PlaceOrder, ReturnCondition, ReturnReceipt,
    ShipmentStep,
};

/// A failed check: says which field broke which limit.
pub type Checked = Result<(), String>;

/// A non-empty string of at most `bytes_max` bytes with no control characters.
pub fn text(field: &str, value: &str, bytes_max: usize) -> Checked {
    if value.is_empty() {
        return Err(format!("{field} is empty"));
    }
    if value.len() > bytes_max {
        return Err(format!("{field} is {} bytes, over {bytes_max}", value.len()));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} contains a control character"));
    }
    Ok(())
}

/// A line or movement quantity: at least one, at most `QUANTITY_PER_LINE_MAX`.
pub fn quantity(field: &str, value: u32) -> Checked {
    if value == 0 {
        return Err(format!("{field} is zero"));
    }
    if value > QUANTITY_PER_LINE_MAX {
        return Err(format!("{field} {value} is over {QUANTITY_PER_LINE_MAX}"));
    }
    Ok(())
}

/// A stock level (on hand, safety stock, counted): at most `ON_HAND_MAX`.
pub fn level(field: &str, value: u64) -> Result<u32, String> {
    if value > u64::from(ON_HAND_MAX) {
        return Err(format!("{field} {value} is over {ON_HAND_MAX}"));
    }
    Ok(value as u32)
}

/// A hold lifetime within `HOLD_TTL_MS_MIN..=HOLD_TTL_MS_MAX`.
pub fn ttl(ttl_ms: u64) -> Checked {
    if !(HOLD_TTL_MS_MIN..=HOLD_TTL_MS_MAX).contains(&ttl_ms) {
        return Err(format!("ttl_ms {ttl_ms} is outside {HOLD_TTL_MS_MIN}..={HOLD_TTL_MS_MAX}"));
    }
    Ok(())
}

/// Every attribute of a location within its range.
pub fn location_spec(spec: &LocationSpec) -> Checked {
    text("location code", &spec.code, LOCATION_CODE_BYTES_MAX)?;
    if spec.name.len() > LOCATION_NAME_BYTES_MAX {
        return Err(format!("location name is over {LOCATION_NAME_BYTES_MAX} bytes"));
    }
    if spec.name.chars().any(char::is_control) {
        return Err("location name contains a control character".into());
    }
    coordinates(spec.latitude_e6, spec.longitude_e6)?;
    currency(&spec.shipping_cost.currency)?;
    if spec.shipping_cost.base_minor < 0 || spec.shipping_cost.per_km_minor < 0 {
        return Err("shipping cost is negative".into());
    }
    Ok(())
}

/// The lines of a hold (`allow_empty` is false) or of a partial release (true: an empty
/// list releases everything).
pub fn lines(lines: &[LineRequest], allow_empty: bool) -> Checked {
    if lines.is_empty() && !allow_empty {
        return Err("a hold needs at least one line".into());
    }
    if lines.len() > LINES_PER_HOLD_MAX {
        return Err(format!("{} lines, over {LINES_PER_HOLD_MAX}", lines.len()));
    }
    for line in lines {
        cell(&line.sku, &line.location)?;
        quantity("line quantity", line.quantity)?;
    }
    Ok(())
}

/// An ISO 4217 currency code: three upper-case letters.
pub fn currency(code: &str) -> Checked {
    if code.len() != 3 || !code.bytes().all(|byte| byte.is_ascii_uppercase()) {
        return Err(format!("currency {code:?} is not an ISO 4217 code"));
    }
    Ok(())
}

/// A price or an amount: zero up to `PRICE_MINOR_MAX` minor units.
pub fn amount(field: &str, minor: i64) -> Checked {
    if !(0..=PRICE_MINOR_MAX).contains(&minor) {
        return Err(format!("{field} {minor} is outside 0..={PRICE_MINOR_MAX}"));
    }
    Ok(())
}

/// Quantities of SKUs (a routed hold, a cancellation, a short pick, a return).
pub fn items(field: &str, items: &[ItemQuantity]) -> Checked {
    if items.is_empty() {
        return Err(format!("{field} need at least one line"));
    }
    if items.len() > LINES_PER_ORDER_MAX {
        return Err(format!("{} {field}, over {LINES_PER_ORDER_MAX}", items.len()));
    }
    for item in items {
        text("sku", &item.sku, SKU_BYTES_MAX)?;
        quantity("line quantity", item.quantity)?;
    }
    Ok(())
}

/// A delivery address: coordinates in range, a country code and a postcode.
pub fn address(address: &Address) -> Checked {
    coordinates(address.latitude_e6, address.longitude_e6)?;
    if address.country.len() != 2 || !address.country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("country {:?} is not an ISO 3166 alpha-2 code", address.country));
    }
    text("postcode", &address.postcode, POSTCODE_BYTES_MAX)
}

fn coordinates(latitude_e6: i32, longitude_e6: i32) -> Checked {
    if latitude_e6.unsigned_abs() > LATITUDE_E6_MAX.unsigned_abs() {
        return Err(format!("latitude_e6 {latitude_e6} is out of range"));
    }
    if longitude_e6.unsigned_abs() > LONGITUDE_E6_MAX.unsigned_abs() {
        return Err(format!("longitude_e6 {longitude_e6} is out of range"));
    }
    Ok(())
}

pub fn delivery(delivery: &DeliveryRequest) -> Checked {
    match delivery {
        DeliveryRequest::Ship { to } => address(to),
        DeliveryRequest::Pickup { location } => {
            text("pickup location", location, LOCATION_CODE_BYTES_MAX)
        }
    }
}

/// Everything about a new order that can be checked without the engine's state.
pub fn place_order(order: &PlaceOrder) -> Checked {
    text("external number", &order.external_number, ORDER_NUMBER_BYTES_MAX)?;
    text("customer", &order.customer, CUSTOMER_BYTES_MAX)?;
    delivery(&order.delivery)?;
    currency(&order.currency)?;
    if order.lines.is_empty() {
        return Err("an order needs at least one line".into());
    }
    if order.lines.len() > LINES_PER_ORDER_MAX {
        return Err(format!("{} order lines, over {LINES_PER_ORDER_MAX}", order.lines.len()));
    }
    for line in &order.lines {
        text("sku", &line.sku, SKU_BYTES_MAX)?;
        quantity("line quantity", line.quantity)?;
        amount("unit price", line.unit_price_minor)?;
    }
    Ok(())
}

fn receipts(lines: &[ReturnReceipt]) -> Checked {
    if lines.is_empty() {
        return Err("a return receipt needs at least one line".into());
    }
    if lines.len() > LINES_PER_ORDER_MAX {
        return Err(format!("{} receipt lines, over {LINES_PER_ORDER_MAX}", lines.len()));
    }
    for line in lines {
        text("sku", &line.sku, SKU_BYTES_MAX)?;
        quantity("returned quantity", line.quantity)?;
        if let ReturnCondition::Damaged { reason } = &line.condition {
            text("damage reason", reason, REASON_BYTES_MAX)?;
        }
    }
    Ok(())
}

/// A page size: at least one entry, at most `PAGE_LIMIT_MAX`.
pub fn page_limit(limit: u32) -> Checked {
    if limit == 0 || limit > PAGE_LIMIT_MAX {
        return Err(format!("page limit {limit} is outside 1..={PAGE_LIMIT_MAX}"));
    }
    Ok(())
}

fn cell(sku: &str, location: &str) -> Checked {
    text("sku", sku, SKU_BYTES_MAX)?;
    text("location code", location, LOCATION_CODE_BYTES_MAX)
}

/// Everything about a command that can be checked without the engine's state.
pub fn command(command: &Command) -> Checked {
    match command {
        Command::UpsertLocation(spec) => location_spec(spec),
        Command::DeactivateLocation { location } => {
            text("location code", location, LOCATION_CODE_BYTES_MAX)
        }
        Command::Receive { sku, location, quantity: units } => {
            cell(sku, location)?;
            quantity("quantity", *units)
        }
        Command::Adjust { sku, location, delta, reason } => {
            cell(sku, location)?;
            if *delta == 0 {
                return Err("adjustment delta is zero".into());
            }
            level("adjustment delta", delta.unsigned_abs())?;
            text("reason", reason, REASON_BYTES_MAX)
        }
        Command::CycleCount { sku, location, expected, counted } => {
            cell(sku, location)?;
            level("expected", u64::from(*expected))?;
            level("counted", u64::from(*counted)).map(drop)
        }
        Command::SetSafetyStock { sku, location, quantity: units } => {
            cell(sku, location)?;
            level("safety stock", u64::from(*units)).map(drop)
        }
        Command::Transfer { sku, from, to, quantity: units } => {
            cell(sku, from)?;
            text("location code", to, LOCATION_CODE_BYTES_MAX)?;
            if from == to {
                return Err("transfer source and destination are the same location".into());
            }
            quantity("quantity", *units)
        }
        Command::Reserve { lines: hold_lines, ttl_ms } => {
            lines(hold_lines, false)?;
            ttl_ms.map_or(Ok(()), ttl)
        }
        Command::ExtendHold { ttl_ms, .. } => ttl(*ttl_ms),
        Command::ReleaseHold { lines: released, .. } => lines(released, true),
        Command::CommitHold { order_number, .. } => {
            text("order number", order_number, ORDER_NUMBER_BYTES_MAX)
        }
        other => order_command(other),
    }
}

fn order_command(command: &Command) -> Checked {
    match command {
        Command::ReserveRouted { lines, destination, ttl_ms } => {
            items("hold lines", lines)?;
            delivery(destination)?;
            ttl_ms.map_or(Ok(()), ttl)
        }
        Command::PlaceOrder(order) => place_order(order),
        Command::RecordPayment { amount_minor, reference, .. } => {
            amount("payment amount", *amount_minor)?;
            text("payment reference", reference, PAYMENT_REFERENCE_BYTES_MAX)
        }
        Command::HoldOrder { note, .. } => text("note", note, REASON_BYTES_MAX),
        Command::CancelOrder { reason, .. } | Command::CancelShipment { reason, .. } => {
            text("reason", reason, REASON_BYTES_MAX)
        }
        Command::CancelOrderLines { lines, reason, .. } => {
            items("cancelled lines", lines)?;
            text("reason", reason, REASON_BYTES_MAX)
        }
        Command::AdvanceShipment { step: ShipmentStep::Ship { carrier, tracking }, .. } => {
            text("carrier", carrier, CARRIER_BYTES_MAX)?;
            text("tracking number", tracking, TRACKING_BYTES_MAX)
        }
        Command::ShortPick { missing, .. } => items("missing lines", missing),
        Command::RequestReturn { lines, reason, .. } => {
            items("returned lines", lines)?;
            text("reason", reason, REASON_BYTES_MAX)
        }
        Command::ReceiveReturn { location, lines, .. } => {
            text("location code", location, LOCATION_CODE_BYTES_MAX)?;
            receipts(lines)
        }
        Command::RefundReturn { amount_minor, .. } => amount("refund amount", *amount_minor),
        Command::ExchangeReturn { order, .. } => place_order(order),
        Command::ReleaseOrderHold { .. }
        | Command::AdvanceShipment { .. }
        | Command::AllocateBackorders { .. }
        | Command::AuthoriseReturn { .. } => Ok(()),
        stock_or_hold => unreachable!("{} is checked by `command`", stock_or_hold.name()),
    }
}

/// Everything about a query that can be checked without the engine's state.
pub fn query(query: &Query) -> Checked {
    match query {
        Query::Cell { sku, location } => cell(sku, location),
        Query::SkuStock { sku } => text("sku", sku, SKU_BYTES_MAX),
        Query::Location { location } => text("location code", location, LOCATION_CODE_BYTES_MAX),
        Query::OrderByNumber { external_number, .. } => {
            text("external number", external_number, ORDER_NUMBER_BYTES_MAX)
        }
        Query::CustomerOrders { customer, limit, .. } => {
            text("customer", customer, CUSTOMER_BYTES_MAX)?;
            page_limit(*limit)
        }
        Query::OrdersByState { location, limit, .. } => {
            if let Some(location) = location {
                text("location code", location, LOCATION_CODE_BYTES_MAX)?;
            }
            page_limit(*limit)
        }
        Query::PickList { location, limit, .. } => {
            text("location code", location, LOCATION_CODE_BYTES_MAX)?;
            page_limit(*limit)
        }
        Query::Hold { .. }
        | Query::Locations
        | Query::Shortages
        | Query::Order { .. }
        | Query::Shipment { .. }
        | Query::Return { .. }
        | Query::Kpis => Ok(()),
    }
}

/// A request's body, as the server checks it before the engine sees it.
pub fn request(request: &Request) -> Result<(), Error> {
    let checked = match &request.body {
        RequestBody::Ping => Ok(()),
        RequestBody::Query(wanted) => query(wanted),
        RequestBody::Command { idempotency_key, command: change } => idempotency_key
            .as_deref()
            .map_or(Ok(()), |key| text("idempotency key", key, IDEMPOTENCY_KEY_BYTES_MAX))
            .and_then(|()| command(change)),
    };
    checked.map_err(Error::invalid)
}

/// A batch frame's size.
pub fn batch(requests: &[Request]) -> Result<(), Error> {
    if requests.is_empty() {
        return Err(Error::invalid("a batch needs at least one request"));
    }
    if requests.len() > BATCH_REQUESTS_MAX {
        let message = format!("{} requests in a batch, over {BATCH_REQUESTS_MAX}", requests.len());
        return Err(Error::invalid(message));
    }
    Ok(())
}

/// The handshake's strings (the version is the server's to judge).
pub fn hello(hello: &Hello) -> Result<(), Error> {
    if hello.token.len() > TOKEN_BYTES_MAX {
        return Err(Error::invalid(format!("token is over {TOKEN_BYTES_MAX} bytes")));
    }
    if hello.client_name.len() > CLIENT_NAME_BYTES_MAX {
        return Err(Error::invalid(format!("client name is over {CLIENT_NAME_BYTES_MAX} bytes")));
    }
    if hello.client_name.chars().any(char::is_control) {
        return Err(Error::invalid("client name contains a control character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(quantity: u32) -> LineRequest {
        LineRequest { sku: "SKU-1".into(), location: "LDN".into(), quantity }
    }

    #[test]
    fn a_zero_quantity_line_is_refused_naming_the_field() {
        let error = command(&Command::Reserve { lines: vec![line(0)], ttl_ms: None }).unwrap_err();
        assert_eq!(error, "line quantity is zero");
    }

    #[test]
    fn too_many_lines_are_refused() {
        let hold = Command::Reserve { lines: vec![line(1); LINES_PER_HOLD_MAX + 1], ttl_ms: None };
        assert!(command(&hold).unwrap_err().contains("over 64"));
        let hold = Command::Reserve { lines: vec![line(1); LINES_PER_HOLD_MAX], ttl_ms: None };
        assert_eq!(command(&hold), Ok(()));
    }

    #[test]
    fn an_overlong_sku_and_an_out_of_range_ttl_are_refused() {
        let mut long = line(1);
        long.sku = "x".repeat(SKU_BYTES_MAX + 1);
        assert!(command(&Command::Reserve { lines: vec![long], ttl_ms: None }).is_err());
        let short_ttl = Command::Reserve { lines: vec![line(1)], ttl_ms: Some(10) };
        assert!(command(&short_ttl).unwrap_err().starts_with("ttl_ms 10"));
    }

    #[test]
    fn an_empty_release_means_everything_but_an_empty_hold_is_refused() {
        assert_eq!(command(&Command::ReleaseHold { hold: 1, lines: vec![] }), Ok(()));
        assert!(command(&Command::Reserve { lines: vec![], ttl_ms: None }).is_err());
    }

    #[test]
    fn an_oversized_idempotency_key_is_an_invalid_argument() {
        let request = Request {
            id: 7,
            body: RequestBody::Command {
                idempotency_key: Some("k".repeat(IDEMPOTENCY_KEY_BYTES_MAX + 1)),
                command: Command::CommitHold { hold: 1, order_number: "O-1".into() },
            },
        };
        let error = super::request(&request).unwrap_err();
        assert_eq!(error.code, crate::ErrorCode::InvalidArgument);
    }

    #[test]
    fn an_empty_or_oversized_batch_is_refused() {
        assert!(batch(&[]).is_err());
        let ping = Request { id: 1, body: RequestBody::Ping };
        assert!(batch(&vec![ping.clone(); BATCH_REQUESTS_MAX + 1]).is_err());
        assert!(batch(&vec![ping; BATCH_REQUESTS_MAX]).is_ok());
    }
}
