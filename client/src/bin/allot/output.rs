//! What the CLI prints: short aligned text for people, JSON for scripts, and errors in
//! either form.

use allot_client::ClientError;
use allot_client::protocol::{CellView, HoldState, HoldView, LocationSpec};
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
    let rows: Vec<Vec<String>> = view
        .lines
        .iter()
        .map(|line| vec![format!("  {}@{}", line.sku, line.location), line.quantity.to_string()])
        .collect();
    format!("{head}\n{}", table(&rows, &[Align::Left, Align::Right]))
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
    use allot_client::protocol::{Error, ErrorCode, HoldLineView, Resolution, ShippingCost};

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
