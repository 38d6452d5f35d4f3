//! The `allot` operator CLI against a real `allotd`: the README's lines work, `--json`
//! is parseable, and every error exits non-zero.

use std::path::PathBuf;
use std::process::{Command, Output};

use allot_tests::allotd::Allotd;
use serde_json::Value;

/// The `allot` binary cargo built beside this test executable (the client crate's own
/// integration tests make `cargo test --workspace` build it).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let mut dir = exe.parent().expect("the executable's directory").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("allot");
    assert!(path.exists(), "{} is missing: run cargo build -p allot-client", path.display());
    path
}

fn allot(allotd: &Allotd, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("--data-dir")
        .arg(allotd.data_dir())
        .arg("--addr")
        .arg(allotd.addr().to_string())
        .args(args)
        .env_remove("ALLOT_ADDR")
        .env_remove("ALLOT_TOKEN")
        .env_remove("ALLOT_DATA_DIR")
        .output()
        .expect("run allot")
}

fn succeeds(allotd: &Allotd, args: &[&str]) -> String {
    let output = allot(allotd, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "allot {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn json(allotd: &Allotd, args: &[&str]) -> Value {
    let mut with_json = vec!["--json"];
    with_json.extend_from_slice(args);
    let stdout = succeeds(allotd, &with_json);
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

#[test]
fn the_readme_lines_create_a_location_receive_stock_hold_and_read_it_back() {
    let allotd = Allotd::start();
    succeeds(&allotd, &["ping"]);
    succeeds(
        &allotd,
        &[
            "location",
            "add",
            "LDN-1",
            "--name",
            "London",
            "--kind",
            "warehouse",
            "--lat",
            "51.5072",
            "--lon=-0.1276",
        ],
    );
    succeeds(&allotd, &["stock", "receive", "TEE-RED-M", "LDN-1", "100"]);
    let placed = json(&allotd, &["hold", "create", "TEE-RED-M@LDN-1:2"]);
    let hold = placed["hold"].as_u64().expect("a hold id");
    let view = json(&allotd, &["hold", "get", &hold.to_string()]);
    assert_eq!(view["state"], "Held");
    assert_eq!(view["lines"][0]["quantity"], 2);
    let cell = json(&allotd, &["stock", "get", "TEE-RED-M", "LDN-1"]);
    assert_eq!(cell["held"], 2);
    assert_eq!(cell["available"], 98);
    let human = succeeds(&allotd, &["stock", "get", "TEE-RED-M", "LDN-1"]);
    assert!(human.contains("TEE-RED-M"), "{human}");
}

#[test]
fn an_unknown_hold_exits_non_zero_with_not_found() {
    let allotd = Allotd::start();
    let output = allot(&allotd, &["hold", "get", "424242"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("NotFound"));
    let output = allot(&allotd, &["--json", "hold", "get", "424242"]);
    assert_eq!(output.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&output.stdout).expect("a JSON error");
    assert_eq!(error["error"]["code"], "NotFound");
}

#[test]
fn a_stock_import_applies_good_rows_and_exits_non_zero_naming_the_bad_ones() {
    let allotd = Allotd::start();
    let files = tempfile::tempdir().unwrap();
    let locations = files.path().join("locations.csv");
    std::fs::write(
        &locations,
        "code,name,kind,lat,lon,ships,pickup,capacity,base_cost,per_km,currency,priority\n\
         LDN,London,warehouse,51.5,-0.12,true,false,500,450,2,GBP,1\n\
         MAN,Manchester,store,53.48,-2.24,false,true,50,0,0,GBP,2\n",
    )
    .unwrap();
    succeeds(&allotd, &["import", "locations", locations.to_str().unwrap()]);
    let stock = files.path().join("stock.csv");
    let mut rows = String::from("sku,location,quantity\n");
    for sku in 0..500 {
        rows.push_str(&format!("SKU-{sku},LDN,{}\n", sku + 1));
    }
    rows.push_str("SKU-X,NOWHERE,1\nSKU-Y,MAN,0\n");
    std::fs::write(&stock, rows).unwrap();
    let output = allot(&allotd, &["import", "stock", stock.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "two bad rows must fail the import");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("500"), "{report}");
    let cell = json(&allotd, &["stock", "get", "SKU-499", "LDN"]);
    assert_eq!(cell["on_hand"], 500);
    let listed = json(&allotd, &["location", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
}

#[test]
fn an_order_is_placed_paid_shipped_delivered_returned_and_counted_through_the_cli() {
    let allotd = Allotd::start();
    let location = ["location", "add", "LDN-1", "--name", "London", "--kind", "warehouse"];
    succeeds(&allotd, &[&location[..], &["--lat", "51.5072", "--lon=-0.1276"]].concat());
    succeeds(&allotd, &["stock", "receive", "TEE-RED-M", "LDN-1", "10"]);
    let place = [
        "order",
        "place",
        "--channel",
        "web",
        "--number",
        "W-1001",
        "--customer",
        "C-42",
        "--currency",
        "GBP",
        "--line",
        "TEE-RED-M:2:1500",
        "--ship-to",
        "51.501,-0.1416,GB,SW1A 1AA",
    ];
    let placed = json(&allotd, &place);
    assert_eq!((placed["order"].as_u64(), placed["state"].as_str()), (Some(1), Some("Pending")));
    let shipment = placed["shipments"][0].as_u64().expect("a shipment").to_string();
    let paid = json(
        &allotd,
        &[
            "order",
            "pay",
            "1",
            "--event",
            "authorised",
            "--amount",
            "3000",
            "--reference",
            "psp-77",
        ],
    );
    assert_eq!(paid["state"], "Confirmed");
    for step in ["release", "start-picking", "pack"] {
        succeeds(&allotd, &["shipment", step, &shipment]);
    }
    let picklist = json(&allotd, &["picklist", "LDN-1"]);
    assert_eq!(picklist["shipments"].as_array().map(Vec::len), Some(0), "packed is off the list");
    let shipped =
        json(&allotd, &["shipment", "ship", &shipment, "--carrier", "DHL", "--tracking", "JD1"]);
    assert_eq!(shipped["order_state"], "Shipped");
    let delivered = json(&allotd, &["shipment", "deliver", &shipment]);
    assert_eq!(delivered["order_state"], "Delivered");
    let requested =
        json(&allotd, &["return", "request", "1", "--line", "TEE-RED-M:1", "--reason", "fit"]);
    let rma = requested["rma"].as_u64().expect("an rma").to_string();
    succeeds(&allotd, &["return", "authorise", &rma]);
    let received = json(
        &allotd,
        &["return", "receive", &rma, "--location", "LDN-1", "--line", "TEE-RED-M:1:resellable"],
    );
    assert_eq!(received["state"], "Received");
    let cell = json(&allotd, &["stock", "get", "TEE-RED-M", "LDN-1"]);
    assert_eq!((cell["on_hand"].as_u64(), cell["allocated"].as_u64()), (Some(9), Some(0)));
    let order = json(&allotd, &["order", "get", "1"]);
    assert_eq!(order["state"], "PartiallyReturned");
    assert_eq!(order["shipments"][0]["carrier"], "DHL");
    assert_eq!(order["routing"]["assessments"][0]["verdict"], "Chosen");
    let kpis = json(&allotd, &["kpis"]);
    assert_eq!(
        (kpis["units_shipped"].as_u64(), kpis["return_rate_bp"].as_u64()),
        (Some(2), Some(5_000))
    );
    let again = allot(&allotd, &["shipment", "deliver", &shipment]);
    assert!(!again.status.success(), "delivering twice is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("InvalidTransition"), "{again:?}");
}

#[test]
fn allotd_whose_limits_do_not_fit_its_memory_limit_refuses_to_start_naming_it() {
    let files = tempfile::tempdir().unwrap();
    let config = files.path().join("allotd.toml");
    std::fs::write(&config, "[limits]\nmemory_limit_bytes = 1048576\n").unwrap();
    let output = Command::new(allot_tests::allotd::binary())
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(files.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("ALLOTD_CONFIG")
        .env_remove("ALLOTD_DATA_DIR")
        .env_remove("ALLOTD_LISTEN")
        .output()
        .unwrap();
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("memory_limit_bytes is 1048576"), "{stderr}");
}
