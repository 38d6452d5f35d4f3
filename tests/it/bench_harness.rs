//! `allot-bench` itself: a run writes the report the issue specifies, its ack log holds
//! every acknowledged hold, each workload's audit passes against a real server, and the
//! audit fails when the server's counters move in a way the harness was not told of.

use std::path::Path;
use std::time::Duration;

use allot_bench::harness::{self, Args, Report};
use allot_client::protocol::{HoldLineView, HoldState, LineRequest, Query, Reply, RequestBody};
use allot_client::{Client, ClientConfig};
use allot_tests::allotd::Allotd;
use clap::Parser;
use serde_json::Value;

use crate::support::runtime;

/// A small catalogue and a short run, so a debug build finishes in seconds.
const SMALL: [&str; 12] = [
    "--skus",
    "200",
    "--locations",
    "8",
    "--stocked-per-sku",
    "3",
    "--connections",
    "2",
    "--warmup",
    "0.3",
    "--quiet",
    "--seed",
];

/// Holds acknowledged (and logged) before the server is killed.
const ACKED_BEFORE_KILL_MIN: usize = 300;

/// Polls of the ack log, 10 ms apart, before a test gives up on the run acknowledging.
const ACK_WAIT_POLLS_MAX: usize = 2_000;

/// Waits until the ack log at `path` has at least `rows` rows after its header, and
/// fails the test if the run never gets there.
fn wait_for_ack_rows(path: &Path, rows: usize) {
    let logged =
        || std::fs::read_to_string(path).map_or(0, |text| text.lines().count().saturating_sub(1));
    for _ in 0..ACK_WAIT_POLLS_MAX {
        if logged() >= rows {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the run acknowledged {} holds, not {rows}", logged());
}

fn args(extra: &[&str]) -> Args {
    let mut all = vec!["allot-bench"];
    all.extend(SMALL);
    all.push("7");
    if !extra.contains(&"--duration") {
        all.extend(["--duration", "1"]);
    }
    all.extend(extra);
    Args::try_parse_from(all).expect("valid arguments")
}

fn against(allotd: &Allotd) -> Vec<String> {
    let addr = allotd.addr().to_string();
    let dir = allotd.data_dir().display().to_string();
    vec!["--addr".into(), addr, "--data-dir".into(), dir]
}

fn run(args: &Args) -> Report {
    runtime().block_on(harness::run(args)).expect("the run completes")
}

#[test]
fn an_embedded_run_writes_the_json_report_and_the_ack_log() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let acks = dir.path().join("acks.csv");
    let report = run(&args(&[
        "--embedded",
        "--workload",
        "hold",
        "--depth",
        "8",
        "--batch",
        "4",
        "--json",
        json.to_str().unwrap(),
        "--ack-log",
        acks.to_str().unwrap(),
    ]));
    assert!(report.audit.passed, "{:?}", report.audit);
    assert_eq!(harness::exit_status(&Ok(report.clone())), 0);

    let written: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(written["workload"], "hold");
    assert_eq!(written["config"]["connections"], 2);
    assert_eq!(written["config"]["batch"], 4);
    let ops = written["ops"].as_u64().expect("ops is a count");
    assert!(ops > 0 && ops == report.ops);
    assert!(written["ops_per_s"].as_f64().unwrap() > 0.0);
    let latency: Vec<u64> = ["p50", "p90", "p99", "p999", "max"]
        .iter()
        .map(|key| {
            written["latency_us"][key].as_u64().unwrap_or_else(|| panic!("latency_us.{key}"))
        })
        .collect();
    assert!(latency[0] > 0 && latency.windows(2).all(|pair| pair[0] <= pair[1]), "{latency:?}");
    assert!(written["errors"].is_object());
    assert_eq!(written["audit"]["passed"], true);
    assert!(!written["audit"]["details"].as_array().unwrap().is_empty());

    let rows = ack_rows(&acks);
    assert_eq!(rows.len() as u64, report.ledger.holds_acked, "one row per one-line hold");
    let mut ids: Vec<u64> = rows.iter().map(|(id, ..)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), rows.len(), "hold ids are distinct");
    assert!(rows.iter().all(|(_, sku, location, qty)| {
        sku.starts_with("HOLD-") && location.starts_with("LOC-") && *qty == 1
    }));
}

/// `(id, sku, location, qty)` of every row after the header.
fn ack_rows(path: &Path) -> Vec<(u64, String, String, u32)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("id,sku,location,qty"));
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 4, "{line}");
            (
                fields[0].parse().unwrap(),
                fields[1].into(),
                fields[2].into(),
                fields[3].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn checkout_against_allotd_audits_commits_releases_and_expiries() {
    let allotd = Allotd::start();
    let mut extra = against(&allotd);
    extra.extend(["--workload", "checkout", "--ttl-ms", "1000", "--depth", "4"].map(String::from));
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let report = run(&args(&extra));
    assert!(report.audit.passed, "{:?}", report.audit);
    let ledger = &report.ledger;
    assert!(
        ledger.commits_acked > 0 && ledger.releases_acked > 0 && ledger.expiries > 0,
        "{ledger:?}"
    );
    assert!(ledger.commits_acked > ledger.releases_acked, "{ledger:?}");
    let reads = report.by_kind["read"].count as f64;
    let holds = report.by_kind["hold"].count as f64;
    assert!((reads / holds - 10.0).abs() < 1.0, "{reads} reads, {holds} holds");
}

#[test]
fn lifecycle_against_allotd_delivers_returns_and_cancels_orders_and_audits_stock() {
    let allotd = Allotd::start();
    let mut extra = against(&allotd);
    extra.extend(
        ["--workload", "lifecycle", "--duration", "3", "--depth", "16", "--batch", "4"]
            .map(String::from),
    );
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let report = run(&args(&extra));
    assert_eq!(harness::exit_status(&Ok(report.clone())), 0, "{:?}", report.audit);
    assert!(report.audit.passed, "{:?}", report.audit);
    let ledger = &report.ledger;
    assert!(
        ledger.orders_delivered > 0 && ledger.orders_returned > 0 && ledger.orders_cancelled > 0,
        "{ledger:?}"
    );
    // Every order placed was seen through, none refused or stuck, nothing lost.
    let ended = ledger.orders_delivered + ledger.orders_returned + ledger.orders_cancelled;
    assert_eq!(ended, ledger.orders_placed, "{ledger:?}");
    assert_eq!((ledger.orders_refused, ledger.orders_stuck, ledger.unknown_outcomes), (0, 0, 0));
    assert!(ledger.units_shipped > ledger.units_restocked && ledger.units_restocked > 0);
    assert!(report.orders_per_s.is_some_and(|per_s| per_s > 0.0), "{:?}", report.orders_per_s);
    for kind in ["place", "pay", "read", "step", "return"] {
        assert!(report.by_kind.get(kind).is_some_and(|figures| figures.count > 0), "{kind}");
    }
    assert!(report.audit.details.iter().any(|line| line.contains("sampled orders checked, 0")));
}

#[test]
fn a_flash_sale_sells_exactly_the_stock_in_an_open_loop() {
    // 10 SKUs × 20 locations × 5 units = 1 000 units for 3 000 buyers.
    let report = run(&Args::parse_from([
        "allot-bench",
        "--embedded",
        "--workload",
        "flash-sale",
        "--units-per-cell",
        "5",
        "--buyers",
        "3000",
        "--connections",
        "2",
        "--rate",
        "6000",
        "--depth",
        "64",
        "--quiet",
    ]));
    assert!(report.audit.passed, "{:?}", report.audit);
    assert_eq!(report.ledger.sold, 1_000);
    assert_eq!(report.ledger.sold + report.ledger.sold_out, 3_000);
}

#[test]
fn a_hold_the_harness_was_not_told_of_fails_the_audit() {
    let allotd = Allotd::start();
    let dir = tempfile::tempdir().unwrap();
    let acks = dir.path().join("acks.csv");
    let mut extra = against(&allotd);
    extra.extend(["--workload", "hold", "--duration", "4", "--ack-log"].map(String::from));
    extra.push(acks.display().to_string());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let args = args(&extra);

    let runtime = runtime();
    let run = runtime.spawn(async move { harness::run(&args).await });
    // Once holds are being acknowledged, the baseline has been read: a bystander's hold
    // now is one the harness cannot account for.
    wait_for_ack_rows(&acks, 1);
    let sku = "HOLD-0000000";
    let location = runtime.block_on(async {
        let config =
            ClientConfig::from_data_dir(allotd.addr().to_string(), allotd.data_dir()).unwrap();
        let bystander = Client::connect(config).await.unwrap();
        let location = bystander.sku_stock(sku).await.unwrap()[0].location.clone();
        let line = LineRequest { sku: sku.into(), location: location.clone(), quantity: 1 };
        bystander.reserve(vec![line], None).await.unwrap();
        location
    });
    let outcome = runtime.block_on(run).unwrap();
    assert_eq!(harness::exit_status(&outcome), 1, "a failed audit exits 1");
    let report = outcome.unwrap();
    assert!(!report.audit.passed, "{:?}", report.audit);
    let named = format!("cell {sku} at {location}: held");
    assert!(report.audit.details.iter().any(|line| line.starts_with(&named)), "{:?}", report.audit);
}

#[test]
fn a_run_that_cannot_reach_its_target_exits_2_naming_why() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let args = args(&["--addr", "127.0.0.1:9", "--data-dir", dir]);
    let outcome = runtime().block_on(harness::run(&args));
    assert_eq!(harness::exit_status(&outcome), 2);
    let error = outcome.unwrap_err().to_string();
    assert!(error.starts_with("target:") && error.contains("dev-cert.pem"), "{error}");
}

#[test]
fn every_hold_in_the_ack_log_survives_a_kill_9_of_the_server() {
    let mut allotd = Allotd::start();
    let dir = tempfile::tempdir().unwrap();
    let acks = dir.path().join("acks.csv");
    let mut extra = against(&allotd);
    extra.extend(["--workload", "hold", "--duration", "60", "--ack-log"].map(String::from));
    extra.push(acks.display().to_string());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let args = args(&extra);

    let runtime = runtime();
    let _run = runtime.spawn(async move { harness::run(&args).await });
    wait_for_ack_rows(&acks, ACKED_BEFORE_KILL_MIN);
    allotd.kill9();
    // The harness goes with its runtime; the ack-log thread writes what it was sent.
    runtime.shutdown_timeout(Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(200));
    let rows = ack_rows(&acks);
    assert!(rows.len() >= ACKED_BEFORE_KILL_MIN, "{} rows", rows.len());

    allotd.restart();
    let config = ClientConfig::from_data_dir(allotd.addr().to_string(), allotd.data_dir()).unwrap();
    let holds = crate::support::runtime().block_on(async {
        let client = Client::connect(config).await.unwrap();
        let queries = rows.iter().map(|(id, ..)| RequestBody::Query(Query::Hold { hold: *id }));
        client.batch(queries.collect()).await.unwrap()
    });
    for ((id, sku, location, qty), found) in rows.iter().zip(holds) {
        let Ok(Reply::Hold(view)) = found else { panic!("hold {id} from the ack log: {found:?}") };
        assert_eq!(view.state, HoldState::Held, "hold {id}");
        let line = HoldLineView { sku: sku.clone(), location: location.clone(), quantity: *qty };
        assert_eq!(view.lines, vec![line], "hold {id}");
    }
}
