//! Bulk imports: CSV rows become commands, checked locally, then sent in pipelined batch
//! frames with a progress bar; the report counts applied and failed rows.

use std::io::Read;
use std::path::Path;

use allot_client::protocol::limits::BATCH_REQUESTS_MAX;
use allot_client::protocol::{Command, LocationSpec, Reply, RequestBody, ShippingCost, check};
use allot_client::{Client, ClientError};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::task::JoinSet;

use crate::args::{CURRENCY_DEFAULT, DAILY_CAPACITY_DEFAULT, PRIORITY_DEFAULT};
use crate::output::Output;
use crate::parse::{flag, latitude_e6, location_kind, longitude_e6};

/// Batch frames in flight at once for commutative rows (stock receipts).
pub const IMPORT_BATCHES_IN_FLIGHT: usize = 4;
/// Row errors shown in the report; the count covers the rest.
pub const IMPORT_ERRORS_SHOWN: usize = 10;

/// A row that was not applied, numbered from 1 for the first row after the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub row: usize,
    pub code: String,
    pub message: String,
}

impl RowError {
    fn invalid(row: usize, message: impl Into<String>) -> RowError {
        RowError { row, code: "InvalidArgument".into(), message: message.into() }
    }
}

/// A file's rows: the commands to send, and the rows refused before sending.
#[derive(Debug, Default)]
pub struct Parsed {
    pub commands: Vec<(usize, Command)>,
    pub errors: Vec<RowError>,
}

impl Parsed {
    fn total(&self) -> usize {
        self.commands.len() + self.errors.len()
    }
}

#[derive(Debug, Deserialize)]
struct LocationRow {
    code: String,
    #[serde(default)]
    name: String,
    kind: String,
    lat: String,
    lon: String,
    #[serde(default)]
    ships: Option<String>,
    #[serde(default)]
    pickup: Option<String>,
    #[serde(default)]
    capacity: Option<String>,
    #[serde(default)]
    base_cost: Option<String>,
    #[serde(default)]
    per_km: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    priority: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StockRow {
    sku: String,
    location: String,
    quantity: String,
}

const LOCATION_COLUMNS_REQUIRED: [&str; 4] = ["code", "kind", "lat", "lon"];
const STOCK_COLUMNS_REQUIRED: [&str; 3] = ["sku", "location", "quantity"];

/// Rows of a locations CSV; an error for a file without the required columns.
pub fn parse_locations(input: impl Read) -> Result<Parsed, String> {
    parse_rows(input, &LOCATION_COLUMNS_REQUIRED, |row: LocationRow| {
        location_spec(row).map(Command::UpsertLocation)
    })
}

/// Rows of a stock CSV, each a receipt.
pub fn parse_stock(input: impl Read) -> Result<Parsed, String> {
    parse_rows(input, &STOCK_COLUMNS_REQUIRED, |row: StockRow| {
        let quantity = number("quantity", &row.quantity)?;
        Ok(Command::Receive { sku: row.sku, location: row.location, quantity })
    })
}

fn parse_rows<T: serde::de::DeserializeOwned>(
    input: impl Read,
    required: &[&str],
    to_command: impl Fn(T) -> Result<Command, String>,
) -> Result<Parsed, String> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(input);
    let headers = reader.headers().map_err(|error| format!("cannot read the header: {error}"))?;
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|column| !headers.iter().any(|header| header == *column))
        .collect();
    if !missing.is_empty() {
        return Err(format!("the header lacks column(s) {}", missing.join(", ")));
    }
    let mut parsed = Parsed::default();
    for (index, record) in reader.deserialize::<T>().enumerate() {
        let row = index + 1;
        let command = record
            .map_err(|error| csv_message(&error))
            .and_then(&to_command)
            .and_then(|command| check::command(&command).map(|()| command));
        match command {
            Ok(command) => parsed.commands.push((row, command)),
            Err(message) => parsed.errors.push(RowError::invalid(row, message)),
        }
    }
    Ok(parsed)
}

/// A csv error without its position (the report numbers rows itself).
fn csv_message(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} fields where the header has {expected_len}")
        }
        _ => error.to_string(),
    }
}

fn location_spec(row: LocationRow) -> Result<LocationSpec, String> {
    Ok(LocationSpec {
        kind: location_kind(&row.kind)?,
        latitude_e6: latitude_e6(&row.lat)?,
        longitude_e6: longitude_e6(&row.lon)?,
        ships: optional(&row.ships).map_or(Ok(true), |text| flag("ships", text))?,
        pickup: optional(&row.pickup).map_or(Ok(false), |text| flag("pickup", text))?,
        daily_capacity: optional(&row.capacity)
            .map_or(Ok(DAILY_CAPACITY_DEFAULT), |text| number("capacity", text))?,
        shipping_cost: ShippingCost {
            base_minor: optional(&row.base_cost).map_or(Ok(0), |text| number("base_cost", text))?,
            per_km_minor: optional(&row.per_km).map_or(Ok(0), |text| number("per_km", text))?,
            currency: optional(&row.currency).unwrap_or(CURRENCY_DEFAULT).to_owned(),
        },
        priority: optional(&row.priority)
            .map_or(Ok(PRIORITY_DEFAULT), |text| number("priority", text))?,
        active: true,
        code: row.code,
        name: row.name,
    })
}

/// An optional column's value; an empty field counts as absent.
fn optional(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|text| !text.is_empty())
}

fn number<N: std::str::FromStr>(field: &str, text: &str) -> Result<N, String> {
    text.trim().parse().map_err(|_| format!("{field} {text:?} is not a valid number"))
}

/// Reads and parses a file with `parse`.
pub fn read_file(
    path: &Path,
    parse: fn(std::fs::File) -> Result<Parsed, String>,
) -> Result<Parsed, ClientError> {
    let file = std::fs::File::open(path)
        .map_err(|error| ClientError::Config(format!("cannot open {}: {error}", path.display())))?;
    parse(file).map_err(|message| ClientError::Config(format!("{}: {message}", path.display())))
}

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub rows: usize,
    pub applied: usize,
    /// Every failed row, in row order.
    pub errors: Vec<RowError>,
}

impl Report {
    pub fn output(&self) -> Output {
        let shown = &self.errors[..self.errors.len().min(IMPORT_ERRORS_SHOWN)];
        let mut human = format!(
            "applied {} of {} rows, {} failed\n",
            self.applied,
            self.rows,
            self.errors.len()
        );
        for error in shown {
            human.push_str(&format!("  row {}: {}: {}\n", error.row, error.code, error.message));
        }
        if self.errors.len() > shown.len() {
            human.push_str(&format!("  … and {} more\n", self.errors.len() - shown.len()));
        }
        let json = json!({
            "rows": self.rows,
            "applied": self.applied,
            "failed": self.errors.len(),
            "errors": shown,
        });
        Output { human, json, ok: self.errors.is_empty() }
    }

    fn record(
        &mut self,
        rows: &[usize],
        sent: Result<Vec<Result<Reply, ClientError>>, ClientError>,
    ) {
        match sent {
            Ok(results) => {
                for (row, result) in rows.iter().zip(results) {
                    match result {
                        Ok(_) => self.applied += 1,
                        Err(error) => self.errors.push(row_error(*row, &error)),
                    }
                }
            }
            Err(error) => self.errors.extend(rows.iter().map(|row| row_error(*row, &error))),
        }
    }
}

fn row_error(row: usize, error: &ClientError) -> RowError {
    RowError { row, code: error.name().into(), message: error.message() }
}

/// A progress bar on stderr, or a hidden one (`--json`, or stdout not a terminal).
pub fn progress_bar(rows: usize, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(rows as u64).with_style(style)
}

/// Sends the parsed rows in batch frames, at most `in_flight` frames at once.
pub async fn send(
    client: &Client,
    parsed: Parsed,
    in_flight: usize,
    progress: &ProgressBar,
) -> Report {
    let mut report = Report { rows: parsed.total(), applied: 0, errors: parsed.errors };
    progress.inc(report.errors.len() as u64);
    let frame_rows = frame_rows(client);
    let mut chunks = chunked(parsed.commands, frame_rows).into_iter();
    let mut frames = JoinSet::new();
    loop {
        while frames.len() < in_flight.max(1) {
            let Some((rows, bodies)) = chunks.next() else { break };
            let client = client.clone();
            frames.spawn(async move { (rows, client.batch(bodies).await) });
        }
        let Some(joined) = frames.join_next().await else { break };
        match joined {
            Ok((rows, sent)) => {
                progress.inc(rows.len() as u64);
                report.record(&rows, sent);
            }
            Err(error) => {
                let lost = ClientError::ConnectionLost(format!("import task: {error}"));
                report.errors.push(row_error(0, &lost));
            }
        }
    }
    progress.finish_and_clear();
    report.errors.sort_by_key(|error| error.row);
    report
}

/// Rows per batch frame: the server's limit, within what may be in flight.
fn frame_rows(client: &Client) -> usize {
    let limits = client.limits();
    let batch = (limits.batch_requests_max as usize).min(limits.in_flight_requests_max as usize);
    batch.clamp(1, BATCH_REQUESTS_MAX)
}

/// Commands in frames of `size`, each with its row numbers.
fn chunked(commands: Vec<(usize, Command)>, size: usize) -> Vec<(Vec<usize>, Vec<RequestBody>)> {
    let mut chunks = Vec::new();
    let mut commands = commands.into_iter().peekable();
    while commands.peek().is_some() {
        let (rows, bodies) = commands
            .by_ref()
            .take(size)
            .map(|(row, command)| (row, RequestBody::Command { idempotency_key: None, command }))
            .unzip();
        chunks.push((rows, bodies));
    }
    chunks
}

#[cfg(test)]
mod tests {
    use allot_client::protocol::{Error, ErrorCode, LocationKind};

    use super::*;

    const LOCATIONS: &str = "\
code,name,kind,lat,lon,ships,pickup,capacity,base_cost,per_km,currency,priority
LDN,London DC,warehouse,51.5074,-0.1278,true,false,500,300,2,GBP,1
MAN,Manchester,store,53.4808,-2.2426,,yes,,,,,
BAD,Nowhere,depot,0,0,true,false,1,0,0,EUR,1
FAR,Far,store,91,0,true,false,1,0,0,EUR,1
CUR,Currency,store,1,1,true,false,1,0,0,euro,1
";

    #[test]
    fn location_rows_become_upserts_with_defaults_for_empty_fields() {
        let parsed = parse_locations(LOCATIONS.as_bytes()).unwrap();
        assert_eq!(parsed.commands.len(), 2);
        let (row, Command::UpsertLocation(ldn)) = &parsed.commands[0] else { panic!() };
        assert_eq!(*row, 1);
        assert_eq!((ldn.latitude_e6, ldn.longitude_e6), (51_507_400, -127_800));
        assert_eq!(
            ldn.shipping_cost,
            ShippingCost { base_minor: 300, per_km_minor: 2, currency: "GBP".into() }
        );
        assert_eq!(
            (ldn.daily_capacity, ldn.priority, ldn.ships, ldn.pickup),
            (500, 1, true, false)
        );
        let (_, Command::UpsertLocation(man)) = &parsed.commands[1] else { panic!() };
        assert_eq!(man.kind, LocationKind::Store);
        assert!(man.ships && man.pickup && man.active);
        assert_eq!((man.daily_capacity, man.priority), (DAILY_CAPACITY_DEFAULT, PRIORITY_DEFAULT));
        assert_eq!(man.shipping_cost.currency, CURRENCY_DEFAULT);
    }

    #[test]
    fn bad_location_rows_are_reported_by_row_number_with_a_reason() {
        let parsed = parse_locations(LOCATIONS.as_bytes()).unwrap();
        let rows: Vec<usize> = parsed.errors.iter().map(|error| error.row).collect();
        assert_eq!(rows, vec![3, 4, 5]);
        assert!(parsed.errors[0].message.contains("depot"), "{:?}", parsed.errors[0]);
        assert!(parsed.errors[1].message.contains("latitude 91"), "{:?}", parsed.errors[1]);
        assert!(parsed.errors[2].message.contains("ISO 4217"), "{:?}", parsed.errors[2]);
        assert!(parsed.errors.iter().all(|error| error.code == "InvalidArgument"));
    }

    #[test]
    fn stock_rows_become_receipts_and_bad_ones_are_reported() {
        let text = "sku,location,quantity\nSKU-1,LDN,10\nSKU-2,LDN,ten\nSKU-3,LDN,0\nSKU-4,LDN\n SKU-5 , MAN , 7 \n";
        let parsed = parse_stock(text.as_bytes()).unwrap();
        let commands: Vec<&Command> = parsed.commands.iter().map(|(_, command)| command).collect();
        assert_eq!(
            commands,
            vec![
                &Command::Receive { sku: "SKU-1".into(), location: "LDN".into(), quantity: 10 },
                &Command::Receive { sku: "SKU-5".into(), location: "MAN".into(), quantity: 7 },
            ]
        );
        let errors: Vec<(usize, &str)> =
            parsed.errors.iter().map(|error| (error.row, error.message.as_str())).collect();
        assert_eq!(errors[0], (2, "quantity \"ten\" is not a valid number"));
        assert_eq!(errors[1], (3, "quantity is zero"));
        assert_eq!(errors[2], (4, "2 fields where the header has 3"));
        assert_eq!(parsed.total(), 5);
    }

    #[test]
    fn a_file_without_the_required_columns_is_refused_whole() {
        let error = parse_stock("sku,qty\nA,1\n".as_bytes()).unwrap_err();
        assert_eq!(error, "the header lacks column(s) location, quantity");
        assert!(parse_locations("code,name\n".as_bytes()).unwrap_err().contains("kind, lat, lon"));
    }

    #[test]
    fn chunks_keep_row_numbers_with_their_commands() {
        let commands: Vec<(usize, Command)> = (1..=5)
            .map(|row| (row, Command::DeactivateLocation { location: format!("L{row}") }))
            .collect();
        let chunks = chunked(commands, 2);
        let rows: Vec<Vec<usize>> = chunks.iter().map(|(rows, _)| rows.clone()).collect();
        assert_eq!(rows, vec![vec![1, 2], vec![3, 4], vec![5]]);
        assert!(chunks.iter().all(|(rows, bodies)| rows.len() == bodies.len()));
    }

    #[test]
    fn the_report_counts_rows_and_shows_the_first_errors() {
        let mut report = Report { rows: 14, ..Report::default() };
        let failed = Error::new(ErrorCode::NotFound, "location XYZ");
        let results = (0..13)
            .map(|n| {
                if n == 0 {
                    Ok(Reply::Pong { server_version: "1".into() })
                } else {
                    Err(ClientError::Server(failed.clone()))
                }
            })
            .collect();
        report.record(&(1..=13).collect::<Vec<_>>(), Ok(results));
        report.record(&[14], Err(ClientError::Timeout));
        let output = report.output();
        assert!(!output.ok);
        assert!(
            output
                .human
                .starts_with("applied 1 of 14 rows, 13 failed\n  row 2: NotFound: location XYZ\n")
        );
        assert!(output.human.ends_with("… and 3 more\n"), "{}", output.human);
        assert_eq!(output.json["failed"], 13);
        assert_eq!(output.json["errors"].as_array().unwrap().len(), IMPORT_ERRORS_SHOWN);
        assert_eq!(report.errors[12].code, "Timeout");
        let clean = Report { rows: 2, applied: 2, errors: vec![] }.output();
        assert!(clean.ok);
        assert_eq!(clean.json, json!({"rows": 2, "applied": 2, "failed": 0, "errors": []}));
    }
}
