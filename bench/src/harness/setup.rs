//! The setup phase: the catalogue's locations and stock, sent in full batch frames over
//! every connection at once, and timed apart from the load.

use std::time::{Duration, Instant};

use allot_client::{Client, ClientError};
use allot_protocol::limits::BATCH_REQUESTS_MAX;
use allot_protocol::{Command, ErrorCode, Reply, RequestBody};
use serde::Serialize;
use tokio::task::JoinSet;

use super::HarnessError;
use crate::Catalogue;

/// Setup and audit frames in flight at once, over all connections: 16 full frames keep
/// the writer busy without filling the server's ingress queue (each query is one entry).
pub const SETUP_FRAMES_IN_FLIGHT_MAX: usize = 16;
/// Times a frame answered `Overloaded` is sent again, and the pause before each.
pub const OVERLOADED_RETRIES_MAX: u32 = 50;
pub const OVERLOADED_BACKOFF_MS: u64 = 20;

#[derive(Debug, Clone, Serialize)]
pub struct SetupReport {
    pub requests: u64,
    pub seconds: f64,
    /// Reading every catalogue cell before the load, for the audit.
    pub baseline_seconds: f64,
}

/// Creates the catalogue's locations, then receives its stock at every stocked cell.
pub async fn load_catalogue(
    clients: &[Client],
    catalogue: &Catalogue,
) -> Result<(u64, Duration), HarnessError> {
    let started = Instant::now();
    let locations: Vec<RequestBody> = catalogue
        .locations()
        .iter()
        .map(|spec| command(Command::UpsertLocation(spec.clone())))
        .collect();
    let location_count = locations.len() as u64;
    // Receipts name the locations, so those go first.
    send_all(clients, locations).await?;
    let receipts: Vec<RequestBody> = catalogue
        .receipts()
        .map(|(sku, location, quantity)| {
            command(Command::Receive { sku: sku.into(), location: location.into(), quantity })
        })
        .collect();
    let receipt_count = receipts.len() as u64;
    send_all(clients, receipts).await?;
    Ok((location_count + receipt_count, started.elapsed()))
}

fn command(command: Command) -> RequestBody {
    RequestBody::Command { idempotency_key: None, command }
}

/// Sends every request in full frames spread over the connections and returns the
/// replies in request order; any failure fails the whole phase.
pub async fn send_all(
    clients: &[Client],
    requests: Vec<RequestBody>,
) -> Result<Vec<Reply>, HarnessError> {
    let frames_max = SETUP_FRAMES_IN_FLIGHT_MAX;
    let mut frames = JoinSet::new();
    let mut replies: Vec<Option<Vec<Reply>>> = Vec::new();
    let mut requests = requests.into_iter().peekable();
    while requests.peek().is_some() || !frames.is_empty() {
        while frames.len() < frames_max && requests.peek().is_some() {
            let frame: Vec<RequestBody> = requests.by_ref().take(BATCH_REQUESTS_MAX).collect();
            let index = replies.len();
            replies.push(None);
            let client = clients[index % clients.len()].clone();
            frames.spawn(async move { (index, send_frame(&client, frame).await) });
        }
        let Some(joined) = frames.join_next().await else { break };
        let (index, answer) =
            joined.map_err(|error| HarnessError::Setup(format!("setup task: {error}")))?;
        replies[index] = Some(answer.map_err(|error| HarnessError::Setup(error.to_string()))?);
    }
    Ok(replies.into_iter().flatten().flatten().collect())
}

/// Sends one frame, again while the server answers `Overloaded` (which applies nothing).
async fn send_frame(client: &Client, frame: Vec<RequestBody>) -> Result<Vec<Reply>, ClientError> {
    let mut retries = 0;
    loop {
        let answers = client.batch(frame.clone()).await?;
        let overloaded = answers.iter().any(
            |answer| matches!(answer, Err(error) if error.code() == Some(&ErrorCode::Overloaded)),
        );
        if overloaded && retries < OVERLOADED_RETRIES_MAX {
            retries += 1;
            tokio::time::sleep(Duration::from_millis(OVERLOADED_BACKOFF_MS)).await;
            continue;
        }
        return answers.into_iter().collect();
    }
}
