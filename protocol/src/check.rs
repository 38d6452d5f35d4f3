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

/// A return's receipt lines: at least one, at most `LINES_PER_ORDER_MAX`, each a valid
/// quantity with a damage reason where damaged.
pub fn receipts(lines: &[ReturnReceipt]) -> Checked {
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

/// A cell named by its SKU and location code.
pub fn cell(sku: &str, location: &str) -> Checked {
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
        Command::ReleaseHold { lines: released, .. }
        | Command::ConsumeCommitted { lines: released, .. }
        | Command::ReleaseCommitted { lines: released, .. } => lines(released, true),
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
        Query::ShortagePage { after, limit } => {
            if let Some(after) = after {
                cell(&after.sku, &after.location)?;
            }
            page_limit(*limit)
        }
        Query::Hold { .. }
        | Query::Locations
        | Query::Shortages
        | Query::Order { .. }
        | Query::Shipment { .. }
        | Query::Return { .. }
        | Query::Kpis
        | Query::HoldRouting { .. } => Ok(()),
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

    fn order_line(quantity: u32, unit_price_minor: i64) -> crate::order::OrderLine {
        crate::order::OrderLine { sku: "SKU-1".into(), quantity, unit_price_minor }
    }

    fn address(country: &str) -> Address {
        Address {
            latitude_e6: 51_501_009,
            longitude_e6: -141_588,
            country: country.into(),
            postcode: "SW1A 1AA".into(),
        }
    }

    fn order(lines: Vec<crate::order::OrderLine>) -> PlaceOrder {
        PlaceOrder {
            channel: crate::order::Channel::Web,
            external_number: "W-1".into(),
            customer: "C-1".into(),
            delivery: DeliveryRequest::Ship { to: address("GB") },
            currency: "GBP".into(),
            lines,
            hold: None,
            allow_backorder: false,
        }
    }

    fn place(order: PlaceOrder) -> Checked {
        command(&Command::PlaceOrder(order))
    }

    #[test]
    fn a_well_formed_order_passes() {
        assert_eq!(place(order(vec![order_line(2, 1_500), order_line(1, 999)])), Ok(()));
        let pickup = PlaceOrder {
            delivery: DeliveryRequest::Pickup { location: "LDN".into() },
            ..order(vec![order_line(1, 1)])
        };
        assert_eq!(place(pickup), Ok(()));
    }

    #[test]
    fn a_zero_quantity_order_line_is_refused_naming_the_field() {
        assert_eq!(place(order(vec![order_line(0, 100)])), Err("line quantity is zero".into()));
        let over = order(vec![order_line(QUANTITY_PER_LINE_MAX + 1, 100)]);
        assert!(place(over).unwrap_err().starts_with("line quantity"));
    }

    #[test]
    fn a_negative_or_overlarge_unit_price_is_refused_but_a_free_item_is_not() {
        let negative = place(order(vec![order_line(1, -1)])).unwrap_err();
        assert!(negative.starts_with("unit price -1 is outside"), "{negative}");
        let over = place(order(vec![order_line(1, PRICE_MINOR_MAX + 1)])).unwrap_err();
        assert!(over.starts_with("unit price"), "{over}");
        assert_eq!(place(order(vec![order_line(1, 0)])), Ok(()));
        assert_eq!(place(order(vec![order_line(1, PRICE_MINOR_MAX)])), Ok(()));
    }

    #[test]
    fn a_currency_must_be_three_upper_case_letters() {
        for bad in ["", "GB", "gbp", "GBPX", "G8P", "ÉUR"] {
            let wrong = PlaceOrder { currency: bad.into(), ..order(vec![order_line(1, 1)]) };
            let error = place(wrong).unwrap_err();
            assert!(error.contains("is not an ISO 4217 code"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn a_country_must_be_two_upper_case_letters() {
        for bad in ["", "G", "gb", "GBR", "G1"] {
            let wrong = PlaceOrder {
                delivery: DeliveryRequest::Ship { to: address(bad) },
                ..order(vec![order_line(1, 1)])
            };
            let error = place(wrong).unwrap_err();
            assert!(error.contains("is not an ISO 3166 alpha-2 code"), "{bad:?}: {error}");
        }
        let routed = Command::ReserveRouted {
            lines: vec![ItemQuantity { sku: "SKU-1".into(), quantity: 1 }],
            destination: DeliveryRequest::Ship { to: address("gb") },
            ttl_ms: None,
        };
        assert!(command(&routed).unwrap_err().contains("ISO 3166"));
    }

    #[test]
    fn an_order_needs_one_to_64_lines() {
        assert_eq!(place(order(vec![])), Err("an order needs at least one line".into()));
        assert_eq!(place(order(vec![order_line(1, 1); LINES_PER_ORDER_MAX])), Ok(()));
        let error = place(order(vec![order_line(1, 1); LINES_PER_ORDER_MAX + 1])).unwrap_err();
        assert_eq!(error, "65 order lines, over 64");
    }

    #[test]
    fn an_exchange_checks_its_order_as_placing_one_does() {
        let exchange = Command::ExchangeReturn { rma: 1, order: order(vec![order_line(0, 1)]) };
        assert_eq!(command(&exchange), Err("line quantity is zero".into()));
    }

    #[test]
    fn a_negative_payment_or_refund_is_refused() {
        let payment = |amount_minor| Command::RecordPayment {
            order: 1,
            event: crate::order::PaymentEvent::Authorised,
            amount_minor,
            reference: "psp-1".into(),
        };
        assert!(command(&payment(-1)).unwrap_err().starts_with("payment amount -1"));
        assert_eq!(command(&payment(0)), Ok(()));
        let refund = Command::RefundReturn { rma: 1, amount_minor: -5 };
        assert!(command(&refund).unwrap_err().starts_with("refund amount -5"));
    }

    #[test]
    fn a_page_limit_of_zero_or_over_1000_is_refused_on_every_paged_query() {
        let paged = |limit| {
            [
                Query::CustomerOrders { customer: "C-1".into(), before: None, limit },
                Query::OrdersByState {
                    state: crate::order::OrderState::Confirmed,
                    location: None,
                    after: None,
                    limit,
                },
                Query::PickList { location: "LDN".into(), after: Some(9), limit },
            ]
        };
        for refused in [0, PAGE_LIMIT_MAX + 1] {
            for paged in paged(refused) {
                let error = query(&paged).unwrap_err();
                assert_eq!(error, format!("page limit {refused} is outside 1..=1000"));
            }
        }
        for accepted in [1, PAGE_LIMIT_MAX] {
            assert!(paged(accepted).iter().all(|paged| query(paged).is_ok()));
        }
    }

    #[test]
    fn a_ship_step_needs_a_carrier_and_a_tracking_number() {
        let ship = |carrier: &str, tracking: &str| Command::AdvanceShipment {
            shipment: 1,
            step: ShipmentStep::Ship { carrier: carrier.into(), tracking: tracking.into() },
        };
        assert_eq!(command(&ship("", "JD01")), Err("carrier is empty".into()));
        assert_eq!(command(&ship("DHL", "")), Err("tracking number is empty".into()));
        let long = "C".repeat(CARRIER_BYTES_MAX + 1);
        assert!(command(&ship(&long, "JD01")).unwrap_err().contains("over 32"));
        assert_eq!(command(&ship("DHL", "JD01")), Ok(()));
        let pack = Command::AdvanceShipment { shipment: 1, step: ShipmentStep::Pack };
        assert_eq!(command(&pack), Ok(()));
    }

    #[test]
    fn short_picks_cancellations_and_returns_need_lines_with_quantities() {
        let item = |quantity| ItemQuantity { sku: "SKU-1".into(), quantity };
        let short = Command::ShortPick { shipment: 1, missing: vec![] };
        assert_eq!(command(&short), Err("missing lines need at least one line".into()));
        let cancel =
            Command::CancelOrderLines { order: 1, lines: vec![item(0)], reason: "r".into() };
        assert_eq!(command(&cancel), Err("line quantity is zero".into()));
        let request =
            Command::RequestReturn { order: 1, lines: vec![item(1)], reason: String::new() };
        assert_eq!(command(&request), Err("reason is empty".into()));
    }

    #[test]
    fn a_damaged_receipt_needs_a_reason() {
        let receive = |condition| Command::ReceiveReturn {
            rma: 1,
            location: "LDN".into(),
            lines: vec![ReturnReceipt { sku: "SKU-1".into(), quantity: 1, condition }],
        };
        let damaged = receive(ReturnCondition::Damaged { reason: String::new() });
        assert_eq!(command(&damaged), Err("damage reason is empty".into()));
        assert_eq!(command(&receive(ReturnCondition::Resellable)), Ok(()));
    }

    #[test]
    fn an_empty_or_oversized_batch_is_refused() {
        assert!(batch(&[]).is_err());
        let ping = Request { id: 1, body: RequestBody::Ping };
        assert!(batch(&vec![ping.clone(); BATCH_REQUESTS_MAX + 1]).is_err());
        assert!(batch(&vec![ping; BATCH_REQUESTS_MAX]).is_ok());
    }
}
