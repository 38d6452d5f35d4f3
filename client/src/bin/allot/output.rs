//! What the CLI prints: short aligned text for people, JSON for scripts, and errors in
//! either form.

use allot_client::protocol::order::{
    Delivery, DeliveryRequest, ItemQuantity, KpiView, OrderHoldReason, OrderPage, OrderView,
    ReturnView, RoutingRule, RoutingView, ShipmentPage, ShipmentView,
};
use allot_client::protocol::{
    CellView, HoldLineView, HoldState, HoldView, LocationSpec, ShortagePage,
};
use allot_client::{
    ClientError, OrderChanged, OrderPlaced, ReturnChanged, ReturnExchanged, RoutedHoldPlaced,
    ShipmentChanged, ShortPicked,
};
use serde_json::{Value, json};

use crate::parse::kind_name;

/// A command's result, ready to print either way.
#[derive(Debug)]
pub struct Output {
    pub human: String,
    pub json: Value,
    /// False when the command ran but part of it failed (an import with bad rows).
    pub ok: bool,
}

impl Output {
    pub fn new(human: impl Into<String>, json: Value) -> Output {
        Output { human: human.into(), json, ok: true }
    }

    pub fn print(&self, as_json: bool) {
        if as_json {
            println!("{}", pretty(&self.json));
        } else if !self.human.is_empty() {
            println!("{}", self.human.trim_end());
        }
    }
}

/// Prints an error: JSON on stdout for scripts, else one line on stderr.
pub fn print_error(error: &ClientError, as_json: bool) {
    if as_json {
        println!("{}", pretty(&error_json(error)));
    } else {
        eprintln!("error: {error}");
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// `{"error": {"code": "...", "message": "..."}}`, plus `detail` when the server's code
/// carries data (`InsufficientStock`'s line and available count, say).
pub fn error_json(error: &ClientError) -> Value {
    let mut body = json!({ "code": error.name(), "message": error.message() });
    if let Some(detail) = error.code().and_then(code_detail) {
        body["detail"] = detail;
    }
    json!({ "error": body })
}

/// The fields of a code with data; `None` for a bare code such as `NotFound`.
fn code_detail(code: &allot_client::protocol::ErrorCode) -> Option<Value> {
    match serde_json::to_value(code).ok()? {
        Value::Object(fields) => fields.into_iter().next().map(|(_, detail)| detail),
        _ => None,
    }
}

/// Any serialisable value as JSON; protocol types are plain data, so this cannot fail
/// in practice, and `null` is a safe answer if it ever did.
pub fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// Rows with every column padded to its widest cell.
fn table(rows: &[Vec<String>], align: &[Align]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells =
            row.iter().zip(&widths).enumerate().map(|(column, (cell, width))| {
                match align.get(column).copied().unwrap_or(Align::Left) {
                    Align::Left => format!("{cell:<width$}"),
                    Align::Right => format!("{cell:>width$}"),
                }
            });
        out.push_str(cells.collect::<Vec<_>>().join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `SKU@LOC  on_hand 10  held 2  allocated 0  safety 0  available 8`, one line per cell,
/// columns aligned.
pub fn cells(cells: &[CellView]) -> String {
    use Align::{Left, Right};
    let rows: Vec<Vec<String>> = cells
        .iter()
        .map(|cell| {
            vec![
                format!("{}@{}", cell.sku, cell.location),
                "on_hand".into(),
                cell.on_hand.to_string(),
                "held".into(),
                cell.held.to_string(),
                "allocated".into(),
                cell.allocated.to_string(),
                "safety".into(),
                cell.safety_stock.to_string(),
                "available".into(),
                cell.available.to_string(),
            ]
        })
        .collect();
    table(&rows, &[Left, Left, Right, Left, Right, Left, Right, Left, Right, Left, Right])
}

/// A table of locations under a header row.
pub fn locations(locations: &[LocationSpec]) -> String {
    use Align::{Left, Right};
    let header = [
        "CODE", "KIND", "NAME", "LAT", "LON", "SHIPS", "PICKUP", "CAPACITY", "COST", "PRIORITY",
        "ACTIVE",
    ];
    let mut rows = vec![header.iter().map(|title| (*title).to_owned()).collect()];
    rows.extend(locations.iter().map(location_row));
    table(&rows, &[Left, Left, Left, Right, Right, Left, Left, Right, Left, Right, Left])
}

fn location_row(spec: &LocationSpec) -> Vec<String> {
    let cost = &spec.shipping_cost;
    vec![
        spec.code.clone(),
        kind_name(spec.kind).into(),
        if spec.name.is_empty() { "-".into() } else { spec.name.clone() },
        degrees(spec.latitude_e6),
        degrees(spec.longitude_e6),
        yes_no(spec.ships),
        yes_no(spec.pickup),
        spec.daily_capacity.to_string(),
        format!("{}+{}/km {}", cost.base_minor, cost.per_km_minor, cost.currency),
        spec.priority.to_string(),
        yes_no(spec.active),
    ]
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.into()
}

/// Microdegrees as decimal degrees with all six places: `-0.127800`.
pub fn degrees(e6: i32) -> String {
    let sign = if e6 < 0 { "-" } else { "" };
    let magnitude = e6.unsigned_abs();
    format!("{sign}{}.{:06}", magnitude / 1_000_000, magnitude % 1_000_000)
}

/// `held`, `committed`, `released` or `expired`.
pub fn hold_state(state: HoldState) -> String {
    match state {
        HoldState::Held => "held".into(),
        HoldState::Resolved(how) => how.to_string(),
    }
}

/// A hold's state and times, then its lines.
pub fn hold(view: &HoldView) -> String {
    let mut head = format!("hold {}  {}", view.hold, hold_state(view.state));
    if let Some(order) = &view.order_number {
        head.push_str(&format!("  order {order}"));
    }
    head.push_str(&format!("  created {}", utc(view.created_at_ms)));
    match view.resolved_at_ms {
        Some(resolved) => head.push_str(&format!("  resolved {}", utc(resolved))),
        None => head.push_str(&format!("  expires {}", utc(view.expires_at_ms))),
    }
    format!("{head}\n{}", hold_lines(&view.lines))
}

/// Ids as `901, 902`, or `none`.
fn ids(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

/// Items as the command line takes them: `SKU-1:2, SKU-2:1`.
fn items(items: &[ItemQuantity]) -> String {
    let items: Vec<String> =
        items.iter().map(|item| format!("{}:{}", item.sku, item.quantity)).collect();
    items.join(", ")
}

/// Lines of a hold, indented, one cell per line.
fn hold_lines(lines: &[HoldLineView]) -> String {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|line| vec![format!("  {}@{}", line.sku, line.location), line.quantity.to_string()])
        .collect();
    table(&rows, &[Align::Left, Align::Right])
}

/// `order 501 pending, shipments 901, 902`, and the units backordered, if any.
pub fn order_placed(placed: &OrderPlaced) -> String {
    let mut text = format!(
        "order {} {}, shipments {}",
        placed.order,
        placed.state.name(),
        ids(&placed.shipments)
    );
    if placed.backordered_units > 0 {
        text.push_str(&format!(", {} units backordered", placed.backordered_units));
    }
    text
}

/// `order 501 confirmed`.
pub fn order_changed(changed: &OrderChanged) -> String {
    format!("order {} {}", changed.order, changed.state.name())
}

/// `shipment 901 shipped, order now partially_shipped`.
pub fn shipment_changed(changed: &ShipmentChanged) -> String {
    format!(
        "shipment {} {}, order now {}",
        changed.shipment,
        changed.state.name(),
        changed.order_state.name()
    )
}

/// Where a short pick's missing units went.
pub fn short_picked(short: &ShortPicked) -> String {
    format!(
        "shipment {} {}, missing units rerouted to shipments {}, {} units backordered",
        short.shipment,
        short.state.name(),
        ids(&short.rerouted),
        short.backordered_units
    )
}

/// `return 3 authorised`.
pub fn return_changed(changed: &ReturnChanged) -> String {
    format!("return {} {}", changed.rma, changed.state.name())
}

/// `return 3 exchanged for order 612`.
pub fn return_exchanged(exchanged: &ReturnExchanged) -> String {
    format!("return {} exchanged for order {}", exchanged.rma, exchanged.order)
}

/// A routed hold: its id and deadline, then where each line is held.
pub fn routed_hold(placed: &RoutedHoldPlaced) -> String {
    let head = format!("hold {} placed, expires {}", placed.hold, utc(placed.expires_at_ms));
    format!("{head}\n{}", hold_lines(&placed.lines))
}

/// `ship to 51.501009,-0.141588 GB SW1A 1AA` or `pickup at LDN`.
pub fn delivery_request(delivery: &DeliveryRequest) -> String {
    match delivery {
        DeliveryRequest::Ship { to } => format!(
            "ship to {},{} {} {}",
            degrees(to.latitude_e6),
            degrees(to.longitude_e6),
            to.country,
            to.postcode
        ),
        DeliveryRequest::Pickup { location } => format!("pickup at {location}"),
    }
}

fn delivery(delivery: Delivery) -> &'static str {
    match delivery {
        Delivery::Ship => "ship",
        Delivery::Pickup => "pickup",
    }
}

fn hold_reason(reason: OrderHoldReason) -> &'static str {
    match reason {
        OrderHoldReason::Manual => "manual",
        OrderHoldReason::Fraud => "fraud",
    }
}

fn routing_rule(rule: RoutingRule) -> &'static str {
    match rule {
        RoutingRule::Pickup => "pickup",
        RoutingRule::OneLocation => "one_location",
        RoutingRule::Split => "split",
        RoutingRule::NoLocation => "no_location",
        RoutingRule::FromHold => "from_hold",
    }
}

fn optional(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

/// Shipments under a header row: id, order, location, delivery, state, lines, carrier,
/// tracking, last change.
fn shipment_table(shipments: &[ShipmentView]) -> String {
    use Align::{Left, Right};
    let header = ["SHIPMENT", "ORDER", "LOCATION", "DELIVERY", "STATE", "LINES", "CARRIER"];
    let mut rows: Vec<Vec<String>> =
        vec![header.iter().chain(&["TRACKING", "UPDATED"]).map(|t| (*t).to_owned()).collect()];
    rows.extend(shipments.iter().map(|shipment| {
        vec![
            shipment.shipment.to_string(),
            shipment.order.to_string(),
            shipment.location.clone(),
            delivery(shipment.delivery).into(),
            shipment.state.name().into(),
            items(&shipment.lines),
            optional(shipment.carrier.as_deref()),
            optional(shipment.tracking.as_deref()),
            utc(shipment.updated_at_ms),
        ]
    }));
    table(&rows, &[Right, Right, Left, Left, Left, Left, Left, Left, Left])
}

/// An order: its head, delivery, lines, shipments, routing decision and returns.
pub fn order(view: &OrderView) -> String {
    use Align::{Left, Right};
    let mut out = format!(
        "order {}  {} {}  customer {}  {}  payment {}",
        view.order,
        view.channel.name(),
        view.external_number,
        view.customer,
        view.state.name(),
        view.payment.name()
    );
    if let Some(reason) = view.hold {
        out.push_str(&format!("  on hold ({})", hold_reason(reason)));
    }
    out.push_str(&format!(
        "\nplaced {}  total {} (minor units of {})  {}",
        utc(view.placed_at_ms),
        view.total_minor,
        view.currency,
        delivery_request(&view.delivery)
    ));
    if let Some(hold) = view.from_hold {
        out.push_str(&format!("\nconverted from hold {hold}"));
    }
    if let Some(rma) = view.exchange_for {
        out.push_str(&format!("\nexchange for return {rma}"));
    }
    let header = ["SKU", "QTY", "PRICE", "CANCELLED", "BACKORDERED", "SHIPPED", "RETURNED"]
        .map(String::from);
    let mut rows = vec![header.to_vec()];
    rows.extend(view.lines.iter().map(|line| {
        vec![
            line.sku.clone(),
            line.quantity.to_string(),
            line.unit_price_minor.to_string(),
            line.cancelled.to_string(),
            line.backordered.to_string(),
            line.shipped.to_string(),
            line.returned.to_string(),
        ]
    }));
    out.push_str("\n\n");
    out.push_str(&table(&rows, &[Left, Right, Right, Right, Right, Right, Right]));
    if !view.shipments.is_empty() {
        out.push('\n');
        out.push_str(&shipment_table(&view.shipments));
    }
    out.push('\n');
    out.push_str(&routing(&view.routing));
    if !view.returns.is_empty() {
        out.push_str(&format!("returns {}\n", ids(&view.returns)));
    }
    out
}

/// A routing decision: its rule, then the assessments it kept.
pub fn routing(routing: &RoutingView) -> String {
    use Align::{Left, Right};
    let mut out = format!(
        "routing {}, {} locations considered\n",
        routing_rule(routing.rule),
        routing.locations_considered
    );
    if !routing.assessments.is_empty() {
        let header = ["  LOCATION", "VERDICT", "DISTANCE_M", "COST", "WORKLOAD", "SCORE"];
        let mut rows = vec![header.map(String::from).to_vec()];
        rows.extend(routing.assessments.iter().map(|assessment| {
            vec![
                format!("  {}", assessment.location),
                assessment.verdict.name().into(),
                assessment.distance_m.to_string(),
                assessment.shipping_cost_minor.to_string(),
                assessment.workload_penalty_minor.to_string(),
                assessment.score.to_string(),
            ]
        }));
        out.push_str(&table(&rows, &[Left, Left, Right, Right, Right, Right]));
    }
    out
}

/// A page of orders under a header row, then the flag that reads the next page.
pub fn orders(page: &OrderPage, cursor_flag: &str) -> String {
    use Align::{Left, Right};
    if page.orders.is_empty() {
        return "no orders".into();
    }
    let header = ["ORDER", "CHANNEL", "NUMBER", "CUSTOMER", "STATE", "UNITS", "TOTAL", "PLACED"];
    let mut rows = vec![header.map(String::from).to_vec()];
    rows.extend(page.orders.iter().map(|summary| {
        vec![
            summary.order.to_string(),
            summary.channel.name().into(),
            summary.external_number.clone(),
            summary.customer.clone(),
            summary.state.name().into(),
            summary.units.to_string(),
            summary.total_minor.to_string(),
            utc(summary.placed_at_ms),
        ]
    }));
    let mut out = table(&rows, &[Right, Left, Left, Left, Left, Right, Right, Left]);
    if let Some(next) = page.next {
        out.push_str(&format!("more: {cursor_flag} {next}\n"));
    }
    out
}

/// One shipment: its state, carrier and times, then its lines.
pub fn shipment(view: &ShipmentView) -> String {
    let mut out = format!(
        "shipment {}  order {}  {}  {}  {}",
        view.shipment,
        view.order,
        view.location,
        delivery(view.delivery),
        view.state.name()
    );
    if let (Some(carrier), Some(tracking)) = (&view.carrier, &view.tracking) {
        out.push_str(&format!("  {carrier} {tracking}"));
    }
    out.push_str(&format!(
        "\ncreated {}  updated {}\n",
        utc(view.created_at_ms),
        utc(view.updated_at_ms)
    ));
    let rows: Vec<Vec<String>> = view
        .lines
        .iter()
        .map(|line| vec![format!("  {}", line.sku), line.quantity.to_string()])
        .collect();
    out.push_str(&table(&rows, &[Align::Left, Align::Right]));
    out
}

/// A page of a pick list, then the flag that reads the next page.
/// A page of short cells, and the flag that asks for the next one.
pub fn shortages(page: &ShortagePage) -> String {
    if page.cells.is_empty() {
        return "no shortages".to_owned();
    }
    let mut out = cells(&page.cells);
    if let Some(next) = &page.next {
        out.push_str(&format!("more: --after {}@{}\n", next.sku, next.location));
    }
    out
}

pub fn pick_list(page: &ShipmentPage, location: &str) -> String {
    if page.shipments.is_empty() {
        return format!("nothing to pick at {location}");
    }
    let mut out = shipment_table(&page.shipments);
    if let Some(next) = page.next {
        out.push_str(&format!("more: --after {next}\n"));
    }
    out
}

/// A return: its state and amounts, then its lines and any damage reasons.
pub fn rma(view: &ReturnView) -> String {
    use Align::{Left, Right};
    let mut out = format!(
        "return {}  order {}  {}  reason {}",
        view.rma,
        view.order,
        view.state.name(),
        view.reason
    );
    if let Some(location) = &view.received_at {
        out.push_str(&format!("  received at {location}"));
    }
    if view.refunded_minor > 0 {
        out.push_str(&format!("  refunded {} (minor units)", view.refunded_minor));
    }
    if let Some(order) = view.exchange_order {
        out.push_str(&format!("  exchanged for order {order}"));
    }
    out.push_str(&format!(
        "\nrequested {}  updated {}\n\n",
        utc(view.requested_at_ms),
        utc(view.updated_at_ms)
    ));
    let mut rows = vec![["SKU", "REQUESTED", "RESELLABLE", "DAMAGED"].map(String::from).to_vec()];
    rows.extend(view.lines.iter().map(|line| {
        vec![
            line.sku.clone(),
            line.requested.to_string(),
            line.resellable.to_string(),
            line.damaged.to_string(),
        ]
    }));
    out.push_str(&table(&rows, &[Left, Right, Right, Right]));
    for reason in &view.damage_reasons {
        out.push_str(&format!("damaged: {reason}\n"));
    }
    out
}

/// Basis points as a percentage with two places, or `-` when there is no rate yet.
pub fn rate(basis_points: Option<u32>) -> String {
    match basis_points {
        Some(bp) => format!("{}.{:02} %", bp / 100, bp % 100),
        None => "-".into(),
    }
}

fn milliseconds(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".into(), |ms| format!("{ms} ms"))
}

/// The KPIs as aligned name/value lines, then orders by channel and state and the open
/// workload per location.
pub fn kpis(view: &KpiView) -> String {
    use Align::{Left, Right};
    let figures = [
        ("holds placed", view.holds_placed.to_string()),
        ("holds refused since start", view.holds_refused_since_start.to_string()),
        ("hold success rate", rate(view.hold_success_rate_bp)),
        ("holds expired", view.holds_expired.to_string()),
        ("orders placed", view.orders_placed.to_string()),
        ("orders split", view.orders_split.to_string()),
        ("split rate", rate(view.split_rate_bp)),
        ("units ordered", view.units_ordered.to_string()),
        ("units filled at placement", view.units_filled_at_placement.to_string()),
        ("fill rate", rate(view.fill_rate_bp)),
        ("placement to ship p50", milliseconds(view.placement_to_ship_p50_ms)),
        ("placement to ship p95", milliseconds(view.placement_to_ship_p95_ms)),
        ("units shipped", view.units_shipped.to_string()),
        ("units returned", view.units_returned.to_string()),
        ("return rate", rate(view.return_rate_bp)),
    ];
    let rows: Vec<Vec<String>> =
        figures.into_iter().map(|(name, value)| vec![name.to_owned(), value]).collect();
    let mut out = table(&rows, &[Left, Right]);
    if !view.orders_by_channel_state.is_empty() {
        let mut rows = vec![["CHANNEL", "STATE", "ORDERS"].map(String::from).to_vec()];
        rows.extend(view.orders_by_channel_state.iter().map(|count| {
            vec![count.channel.name().into(), count.state.name().into(), count.orders.to_string()]
        }));
        out.push('\n');
        out.push_str(&table(&rows, &[Left, Left, Right]));
    }
    if !view.open_workload.is_empty() {
        let header = ["LOCATION", "OPEN_SHIPMENTS", "OPEN_UNITS", "DAILY_CAPACITY"];
        let mut rows = vec![header.map(String::from).to_vec()];
        rows.extend(view.open_workload.iter().map(|workload| {
            vec![
                workload.location.clone(),
                workload.open_shipments.to_string(),
                workload.open_units.to_string(),
                workload.daily_capacity.to_string(),
            ]
        }));
        out.push('\n');
        out.push_str(&table(&rows, &[Left, Right, Right, Right]));
    }
    out
}

/// Milliseconds since the epoch as `2025-01-31T12:00:00.000Z`.
pub fn utc(ms: u64) -> String {
    let seconds = ms / 1_000;
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let in_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600,
        in_day % 3_600 / 60,
        in_day % 60,
        ms % 1_000
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm,
/// for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use allot_client::protocol::order::{
        Address, AssessmentView, Channel, OrderLineView, OrderState, PaymentState, RoutingView,
        ShipmentState, Verdict,
    };
    use allot_client::protocol::{Error, ErrorCode, Resolution, ShippingCost};

    use super::*;

    fn cell(sku: &str, on_hand: u32, available: i64) -> CellView {
        CellView {
            sku: sku.into(),
            location: "LDN".into(),
            on_hand,
            held: 2,
            allocated: 0,
            safety_stock: 0,
            available,
        }
    }

    #[test]
    fn json_errors_have_a_code_and_a_message() {
        let error = ClientError::Server(Error::new(ErrorCode::NotFound, "hold 99"));
        assert_eq!(
            error_json(&error),
            json!({"error": {"code": "NotFound", "message": "hold 99"}})
        );
        let error = ClientError::Connect("no route".into());
        assert_eq!(
            error_json(&error),
            json!({"error": {"code": "Connect", "message": "no route"}})
        );
    }

    #[test]
    fn json_errors_carry_the_codes_data_as_detail() {
        let short = ErrorCode::InsufficientStock { line: 1, available: 4 };
        let error = ClientError::Server(Error::new(short, "line 1 wants 5"));
        let expected = json!({"error": {
            "code": "InsufficientStock",
            "message": "line 1 wants 5",
            "detail": {"line": 1, "available": 4},
        }});
        assert_eq!(error_json(&error), expected);
        let resolved = ErrorCode::AlreadyResolved { how: Resolution::Expired };
        let error = ClientError::Server(Error::new(resolved, "hold 3"));
        assert_eq!(error_json(&error)["error"]["detail"], json!({"how": "Expired"}));
    }

    #[test]
    fn cells_line_up_in_columns() {
        let text = cells(&[cell("SKU-1", 10, 8), cell("LONGER-SKU", 1000, -3)]);
        assert_eq!(
            text,
            "SKU-1@LDN       on_hand    10  held  2  allocated  0  safety  0  available   8\n\
             LONGER-SKU@LDN  on_hand  1000  held  2  allocated  0  safety  0  available  -3\n"
        );
    }

    #[test]
    fn locations_print_under_a_header_with_degrees() {
        let spec = LocationSpec {
            code: "LDN".into(),
            name: "London DC".into(),
            kind: allot_client::protocol::LocationKind::Warehouse,
            latitude_e6: 51_507_400,
            longitude_e6: -127_800,
            ships: true,
            pickup: false,
            daily_capacity: 500,
            shipping_cost: ShippingCost {
                base_minor: 300,
                per_km_minor: 2,
                currency: "GBP".into(),
            },
            priority: 1,
            active: true,
        };
        let text = locations(&[spec]);
        let mut lines = text.lines();
        assert!(lines.next().unwrap().starts_with("CODE  KIND"));
        let row = lines.next().unwrap();
        assert!(row.contains("51.507400  -0.127800"), "{row}");
        assert!(row.contains("300+2/km GBP"), "{row}");
    }

    #[test]
    fn degrees_keep_six_places_and_the_sign() {
        assert_eq!(degrees(-127_800), "-0.127800");
        assert_eq!(degrees(51_507_400), "51.507400");
        assert_eq!(degrees(0), "0.000000");
        assert_eq!(degrees(-180_000_000), "-180.000000");
    }

    #[test]
    fn epoch_milliseconds_print_as_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
        assert_eq!(utc(1_735_689_600_000 + 45_296_789), "2025-01-01T12:34:56.789Z");
    }

    fn shipment_view(shipment: u64, state: ShipmentState) -> ShipmentView {
        ShipmentView {
            shipment,
            order: 501,
            location: "MAN-2".into(),
            delivery: Delivery::Ship,
            state,
            lines: vec![ItemQuantity { sku: "CAP-BLK".into(), quantity: 1 }],
            carrier: None,
            tracking: None,
            created_at_ms: 0,
            updated_at_ms: 60_000,
        }
    }

    #[test]
    fn order_and_shipment_changes_read_as_one_line() {
        let placed = OrderPlaced {
            order: 501,
            state: OrderState::Pending,
            shipments: vec![901, 902],
            backordered_units: 0,
        };
        assert_eq!(order_placed(&placed), "order 501 pending, shipments 901, 902");
        let backordered = OrderPlaced { shipments: vec![], backordered_units: 3, ..placed };
        assert_eq!(
            order_placed(&backordered),
            "order 501 pending, shipments none, 3 units backordered"
        );
        let moved = ShipmentChanged {
            shipment: 901,
            state: ShipmentState::ReadyForPickup,
            order_state: OrderState::InProgress,
        };
        assert_eq!(
            shipment_changed(&moved),
            "shipment 901 ready_for_pickup, order now in_progress"
        );
        let short = ShortPicked {
            shipment: 901,
            state: ShipmentState::Picking,
            rerouted: vec![903],
            backordered_units: 1,
        };
        assert_eq!(
            short_picked(&short),
            "shipment 901 picking, missing units rerouted to shipments 903, 1 units backordered"
        );
        let exchanged = ReturnExchanged { rma: 3, order: 612 };
        assert_eq!(return_exchanged(&exchanged), "return 3 exchanged for order 612");
    }

    #[test]
    fn a_page_tells_how_to_read_the_next_one() {
        let page = ShipmentPage {
            shipments: vec![shipment_view(902, ShipmentState::Released)],
            next: Some(902),
        };
        let text = pick_list(&page, "MAN-2");
        let mut lines = text.lines();
        assert!(lines.next().unwrap().starts_with("SHIPMENT  ORDER  LOCATION"), "{text}");
        let row = lines.next().unwrap();
        assert!(row.contains("MAN-2") && row.contains("released") && row.contains("CAP-BLK:1"));
        assert_eq!(lines.next(), Some("more: --after 902"));
        let last = ShipmentPage { shipments: page.shipments, next: None };
        assert!(!pick_list(&last, "MAN-2").contains("more:"));
        let empty = ShipmentPage { shipments: vec![], next: None };
        assert_eq!(pick_list(&empty, "MAN-2"), "nothing to pick at MAN-2");
        let orders = OrderPage { orders: vec![], next: None };
        assert_eq!(super::orders(&orders, "--before"), "no orders");
    }

    #[test]
    fn an_order_shows_its_delivery_lines_shipments_and_routing() {
        let mut shipped = shipment_view(901, ShipmentState::Shipped);
        shipped.carrier = Some("DHL".into());
        shipped.tracking = Some("JD01".into());
        let view = OrderView {
            order: 501,
            channel: Channel::Web,
            external_number: "W-1001".into(),
            customer: "C-42".into(),
            delivery: DeliveryRequest::Ship {
                to: Address {
                    latitude_e6: 51_501_009,
                    longitude_e6: -141_588,
                    country: "GB".into(),
                    postcode: "SW1A 1AA".into(),
                },
            },
            currency: "GBP".into(),
            state: OrderState::PartiallyShipped,
            payment: PaymentState::Captured,
            hold: Some(OrderHoldReason::Fraud),
            lines: vec![OrderLineView {
                sku: "CAP-BLK".into(),
                quantity: 1,
                unit_price_minor: 999,
                cancelled: 0,
                backordered: 0,
                shipped: 1,
                returned: 0,
            }],
            shipments: vec![shipped],
            returns: vec![3],
            routing: RoutingView {
                rule: RoutingRule::Split,
                locations_considered: 4,
                assessments: vec![AssessmentView {
                    location: "MAN-2".into(),
                    distance_m: 262_000,
                    shipping_cost_minor: 919,
                    workload_penalty_minor: 0,
                    score: 919,
                    verdict: Verdict::Chosen,
                }],
            },
            placed_at_ms: 0,
            from_hold: None,
            exchange_for: None,
            total_minor: 999,
        };
        let text = order(&view);
        assert!(
            text.starts_with(
                "order 501  web W-1001  customer C-42  partially_shipped  payment captured  \
                 on hold (fraud)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "total 999 (minor units of GBP)  ship to 51.501009,-0.141588 GB SW1A 1AA"
            )
        );
        let shipment_row = text.lines().find(|line| line.contains("901")).unwrap();
        assert!(shipment_row.contains("shipped  CAP-BLK:1  DHL      JD01"), "{shipment_row}");
        assert!(text.contains("routing split, 4 locations considered"), "{text}");
        assert!(text.contains("MAN-2     chosen"), "{text}");
        assert!(text.ends_with("returns 3\n"), "{text:?}");
    }

    #[test]
    fn rates_in_basis_points_print_as_percentages() {
        assert_eq!(rate(Some(9_876)), "98.76 %");
        assert_eq!(rate(Some(5)), "0.05 %");
        assert_eq!(rate(Some(10_000)), "100.00 %");
        assert_eq!(rate(None), "-");
    }

    #[test]
    fn a_hold_shows_its_state_and_lines() {
        let view = HoldView {
            hold: 7,
            state: HoldState::Resolved(Resolution::Committed),
            lines: vec![HoldLineView { sku: "SKU-1".into(), location: "LDN".into(), quantity: 2 }],
            created_at_ms: 0,
            expires_at_ms: 900_000,
            resolved_at_ms: Some(1_000),
            order_number: Some("O-1".into()),
        };
        let text = hold(&view);
        assert!(
            text.starts_with("hold 7  committed  order O-1  created 1970-01-01T00:00:00.000Z"),
            "{text}"
        );
        assert!(text.contains("resolved 1970-01-01T00:00:01.000Z"));
        assert!(text.ends_with("  SKU-1@LDN  2\n"), "{text:?}");
    }
}
