//! Runs one subcommand against the server and shapes its result for printing.

use std::io::IsTerminal;

use allot_client::config::DEV_CERT_FILE;
use allot_client::protocol::order::{DeliveryRequest, PlaceOrder, ShipmentStep};
use allot_client::protocol::{ErrorCode, LocationSpec, ShippingCost};
use allot_client::{Client, ClientCert, ClientConfig, ClientError, Trust};
use serde_json::json;

use crate::args::{
    Cli, Command, ConnectionArgs, Destination, HoldCommand, ImportCommand, LocationAdd,
    LocationCommand, OrderCommand, OrderList, OrderSpec, ReturnCommand, ShipmentCommand,
    StockCommand,
};
use crate::import;
use crate::output::{self, Output, to_json};

/// The name the CLI gives itself in `Hello`.
const CLIENT_NAME: &str = "allot-cli";

/// Connects, runs the command, and closes the connection politely.
pub async fn run(cli: Cli) -> Result<Output, ClientError> {
    let config = client_config(&cli.connection)?;
    let client = Client::connect(config).await?;
    let progress_visible = !cli.json && std::io::stdout().is_terminal();
    let output = execute(&client, cli.command, progress_visible).await;
    client.close().await;
    output
}

/// The client configuration the flags describe: `--data-dir` for a development server,
/// else `--ca` or `--cert`; `--token` wins over the data directory's token. With
/// `--client-cert` and `--client-key` the token is `--token` or empty.
pub fn client_config(args: &ConnectionArgs) -> Result<ClientConfig, ClientError> {
    let client_cert = client_cert(args)?;
    let mut config = match (&args.data_dir, &args.token) {
        (Some(dir), Some(token)) => {
            ClientConfig::new(&args.addr, Trust::PinnedCert(dir.join(DEV_CERT_FILE)), token)
        }
        (Some(dir), None) if client_cert.is_some() => {
            ClientConfig::new(&args.addr, Trust::PinnedCert(dir.join(DEV_CERT_FILE)), "")
        }
        (Some(dir), None) => ClientConfig::from_data_dir(&args.addr, dir)?,
        (None, token) => {
            let trust = explicit_trust(args).ok_or_else(|| {
                ClientError::Config(
                    "say which certificate to trust: --ca FILE, --cert FILE or --data-dir DIR"
                        .into(),
                )
            })?;
            ClientConfig::new(&args.addr, trust, token.clone().unwrap_or_default())
        }
    };
    if let Some(trust) = explicit_trust(args) {
        config.trust = trust;
    }
    config.client_cert = client_cert;
    config.server_name = args.server_name.clone();
    config.client_name = CLIENT_NAME.into();
    config.request_timeout = std::time::Duration::from_millis(args.timeout_ms);
    config.connect_timeout = std::time::Duration::from_millis(args.connect_timeout_ms);
    config.retries = args.retries;
    Ok(config)
}

/// `--client-cert` and `--client-key` together, or neither.
fn client_cert(args: &ConnectionArgs) -> Result<Option<ClientCert>, ClientError> {
    match (&args.client_cert, &args.client_key) {
        (Some(cert), Some(key)) => Ok(Some(ClientCert::new(cert, key))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ClientError::Config("--client-cert needs --client-key".into())),
        (None, Some(_)) => Err(ClientError::Config("--client-key needs --client-cert".into())),
    }
}

fn explicit_trust(args: &ConnectionArgs) -> Option<Trust> {
    match (&args.ca, &args.cert) {
        (Some(ca), _) => Some(Trust::CaFile(ca.clone())),
        (None, Some(cert)) => Some(Trust::PinnedCert(cert.clone())),
        (None, None) => None,
    }
}

async fn execute(
    client: &Client,
    command: Command,
    progress_visible: bool,
) -> Result<Output, ClientError> {
    match command {
        Command::Ping => ping(client).await,
        Command::Location(command) => location(client, command).await,
        Command::Stock(command) => stock(client, command).await,
        Command::Hold(command) => hold(client, command).await,
        Command::Order(command) => order(client, command).await,
        Command::Shipment(command) => shipment(client, command).await,
        Command::Picklist { location, after, page } => {
            let list = client.pick_list(&location, after, page.limit).await?;
            Ok(Output::new(output::pick_list(&list, &location), to_json(&list)))
        }
        Command::Return(command) => returns(client, command).await,
        Command::Kpis => {
            let kpis = client.kpis().await?;
            Ok(Output::new(output::kpis(&kpis), to_json(&kpis)))
        }
        Command::Import(command) => import(client, command, progress_visible).await,
    }
}

async fn ping(client: &Client) -> Result<Output, ClientError> {
    let version = client.ping().await?;
    let welcome = client.welcome();
    let human = format!("allotd {version} at {}, role {}", client.config().addr, welcome.role);
    let json = json!({
        "server_version": version,
        "role": welcome.role.name(),
        "limits": to_json(&welcome.limits),
    });
    Ok(Output::new(human, json))
}

async fn location(client: &Client, command: LocationCommand) -> Result<Output, ClientError> {
    let spec = match command {
        LocationCommand::Add(add) => client.upsert_location(location_spec(add)).await?,
        LocationCommand::Get { code } => client.location(code).await?,
        LocationCommand::Deactivate { code } => client.deactivate_location(code).await?,
        LocationCommand::List => {
            let all = client.locations().await?;
            return Ok(Output::new(output::locations(&all), to_json(&all)));
        }
    };
    Ok(Output::new(output::locations(std::slice::from_ref(&spec)), to_json(&spec)))
}

/// The location a `location add` describes; a location is added active.
pub fn location_spec(add: LocationAdd) -> LocationSpec {
    LocationSpec {
        ships: add.ships(),
        code: add.code,
        name: add.name,
        kind: add.kind.into(),
        latitude_e6: add.lat,
        longitude_e6: add.lon,
        pickup: add.pickup,
        daily_capacity: add.capacity,
        shipping_cost: ShippingCost {
            base_minor: add.base_cost,
            per_km_minor: add.per_km,
            currency: add.currency,
        },
        priority: add.priority,
        active: true,
    }
}

async fn stock(client: &Client, command: StockCommand) -> Result<Output, ClientError> {
    let cell = match command {
        StockCommand::Receive { sku, location, quantity } => {
            client.receive(sku, location, quantity).await?
        }
        StockCommand::Adjust { sku, location, delta, reason } => {
            client.adjust(sku, location, delta, reason).await?
        }
        StockCommand::Set { sku, location, quantity } => {
            set_on_hand(client, sku, location, quantity).await?
        }
        StockCommand::Safety { sku, location, quantity } => {
            client.set_safety_stock(sku, location, quantity).await?
        }
        StockCommand::Get { sku, location: Some(location) } => client.cell(sku, location).await?,
        StockCommand::Transfer { sku, from, to, quantity } => {
            let (from, to) = client.transfer(sku, from, to, quantity).await?;
            let human = output::cells(&[from.clone(), to.clone()]);
            return Ok(Output::new(human, json!({ "from": to_json(&from), "to": to_json(&to) })));
        }
        StockCommand::Get { sku, location: None } => {
            let cells = client.sku_stock(&sku).await?;
            return Ok(cell_list(&cells, &format!("no stock of {sku}")));
        }
        StockCommand::Shortages { after, page } => {
            let page = client.shortage_page(after, page.limit).await?;
            return Ok(Output::new(output::shortages(&page), to_json(&page)));
        }
    };
    Ok(Output::new(output::cells(std::slice::from_ref(&cell)), to_json(&cell)))
}

fn cell_list(cells: &[allot_client::protocol::CellView], empty: &str) -> Output {
    let human = if cells.is_empty() { empty.to_owned() } else { output::cells(cells) };
    Output::new(human, to_json(&cells))
}

/// Sets `on_hand` by compare-and-set: a cycle count expecting the level just read, so a
/// concurrent change fails with `CompareFailed` instead of being overwritten.
async fn set_on_hand(
    client: &Client,
    sku: String,
    location: String,
    quantity: u32,
) -> Result<allot_client::protocol::CellView, ClientError> {
    let expected = match client.cell(&sku, &location).await {
        Ok(cell) => cell.on_hand,
        // A SKU never stocked anywhere has no cell yet: it holds nothing.
        Err(error) if error.code() == Some(&ErrorCode::NotFound) => 0,
        Err(error) => return Err(error),
    };
    client.cycle_count(sku, location, expected, quantity).await
}

async fn hold(client: &Client, command: HoldCommand) -> Result<Output, ClientError> {
    match command {
        HoldCommand::Create { lines, ttl_ms } => {
            let placed = client.reserve(lines, ttl_ms).await?;
            let human = format!(
                "hold {} placed, expires {}",
                placed.hold,
                output::utc(placed.expires_at_ms)
            );
            Ok(Output::new(human, to_json(&placed)))
        }
        HoldCommand::Get { id } => {
            let view = client.hold(id).await?;
            Ok(Output::new(output::hold(&view), to_json(&view)))
        }
        HoldCommand::Extend { id, ttl_ms } => {
            let expires_at_ms = client.extend_hold(id, ttl_ms).await?;
            let human = format!("hold {id} expires {}", output::utc(expires_at_ms));
            Ok(Output::new(human, json!({ "hold": id, "expires_at_ms": expires_at_ms })))
        }
        HoldCommand::Release { id, lines } => {
            let released = client.release_hold(id, lines).await?;
            let human = format!(
                "hold {id} {}, {} units still held",
                output::hold_state(released.state),
                released.units_held
            );
            Ok(Output::new(human, to_json(&released)))
        }
        HoldCommand::Commit { id, order_number } => {
            client.commit_hold(id, &order_number).await?;
            let human = format!("hold {id} committed to order {order_number}");
            Ok(Output::new(human, json!({ "hold": id, "order_number": order_number })))
        }
        HoldCommand::Consume { id, lines } => {
            let units_committed = client.consume_committed(id, lines).await?;
            Ok(settled(id, "consumed", units_committed))
        }
        HoldCommand::Uncommit { id, lines } => {
            let units_committed = client.release_committed(id, lines).await?;
            Ok(settled(id, "released", units_committed))
        }
        HoldCommand::Routing { id } => {
            let view = client.hold_routing(id).await?;
            Ok(Output::new(output::routing(&view), to_json(&view)))
        }
        HoldCommand::Route { lines, destination, ttl_ms } => {
            let placed = client.reserve_routed(lines, delivery(destination), ttl_ms).await?;
            Ok(Output::new(output::routed_hold(&placed), to_json(&placed)))
        }
    }
}

/// The delivery `--ship-to` or `--pickup` names (clap lets exactly one through).
pub fn delivery(destination: Destination) -> DeliveryRequest {
    match (destination.ship_to, destination.pickup) {
        (Some(to), _) => DeliveryRequest::Ship { to },
        (None, Some(location)) => DeliveryRequest::Pickup { location },
        (None, None) => unreachable!("clap requires --ship-to or --pickup"),
    }
}

/// The order an `order place` or `return exchange` describes, and its idempotency key.
pub fn place_order(spec: OrderSpec) -> (Option<String>, PlaceOrder) {
    let order = PlaceOrder {
        channel: spec.channel,
        external_number: spec.number,
        customer: spec.customer,
        delivery: delivery(spec.destination),
        currency: spec.currency,
        lines: spec.lines,
        hold: spec.hold,
        allow_backorder: spec.backorder,
    };
    (spec.key, order)
}

async fn order(client: &Client, command: OrderCommand) -> Result<Output, ClientError> {
    let changed = match command {
        OrderCommand::Place(spec) => {
            let placed = match place_order(spec) {
                (Some(key), order) => client.place_order_with_key(key, order).await?,
                (None, order) => client.place_order(order).await?,
            };
            return Ok(Output::new(output::order_placed(&placed), to_json(&placed)));
        }
        OrderCommand::Get { id } => {
            let view = client.order(id).await?;
            return Ok(Output::new(output::order(&view), to_json(&view)));
        }
        OrderCommand::Find { channel, number } => {
            let view = client.order_by_number(channel, number).await?;
            return Ok(Output::new(output::order(&view), to_json(&view)));
        }
        OrderCommand::List(list) => return order_list(client, list).await,
        OrderCommand::Pay { id, event, amount, reference, key } => match key {
            Some(key) => {
                client.record_payment_with_key(key, id, event.into(), amount, reference).await?
            }
            None => client.record_payment(id, event.into(), amount, reference).await?,
        },
        OrderCommand::Hold { id, reason, note } => {
            client.hold_order(id, reason.into(), note).await?
        }
        OrderCommand::Unhold { id } => client.release_order_hold(id).await?,
        OrderCommand::Cancel { id, reason } => client.cancel_order(id, reason).await?,
        OrderCommand::CancelLines { id, lines, reason } => {
            client.cancel_order_lines(id, lines, reason).await?
        }
        OrderCommand::Backorders { id } => client.allocate_backorders(id).await?,
    };
    Ok(Output::new(output::order_changed(&changed), to_json(&changed)))
}

/// `order list --customer` (newest first, paged by `--before`) or `--state` (oldest
/// first, paged by `--after`).
async fn order_list(client: &Client, list: OrderList) -> Result<Output, ClientError> {
    let (page, cursor_flag) = match (list.customer, list.state) {
        (Some(customer), _) => {
            (client.customer_orders(customer, list.before, list.page.limit).await?, "--before")
        }
        (None, Some(state)) => {
            let page =
                client.orders_by_state(state, list.location, list.after, list.page.limit).await?;
            (page, "--after")
        }
        (None, None) => unreachable!("clap requires --customer or --state"),
    };
    Ok(Output::new(output::orders(&page, cursor_flag), to_json(&page)))
}

/// The step a shipment subcommand reports, or `None` for those that are not steps.
pub fn shipment_step(command: &ShipmentCommand) -> Option<(u64, ShipmentStep)> {
    Some(match command {
        ShipmentCommand::Release { id } => (*id, ShipmentStep::Release),
        ShipmentCommand::StartPicking { id } => (*id, ShipmentStep::StartPicking),
        ShipmentCommand::Pack { id } => (*id, ShipmentStep::Pack),
        ShipmentCommand::Ship { id, carrier, tracking } => {
            (*id, ShipmentStep::Ship { carrier: carrier.clone(), tracking: tracking.clone() })
        }
        ShipmentCommand::Deliver { id } => (*id, ShipmentStep::Deliver),
        ShipmentCommand::Ready { id } => (*id, ShipmentStep::ReadyForPickup),
        ShipmentCommand::PickedUp { id } => (*id, ShipmentStep::PickUp),
        ShipmentCommand::Get { .. }
        | ShipmentCommand::Cancel { .. }
        | ShipmentCommand::ShortPick { .. } => return None,
    })
}

async fn shipment(client: &Client, command: ShipmentCommand) -> Result<Output, ClientError> {
    if let Some((id, step)) = shipment_step(&command) {
        let changed = client.advance_shipment(id, step).await?;
        return Ok(Output::new(output::shipment_changed(&changed), to_json(&changed)));
    }
    match command {
        ShipmentCommand::Get { id } => {
            let view = client.shipment(id).await?;
            Ok(Output::new(output::shipment(&view), to_json(&view)))
        }
        ShipmentCommand::Cancel { id, reason } => {
            let changed = client.cancel_shipment(id, reason).await?;
            Ok(Output::new(output::shipment_changed(&changed), to_json(&changed)))
        }
        ShipmentCommand::ShortPick { id, missing } => {
            let short = client.short_pick(id, missing).await?;
            Ok(Output::new(output::short_picked(&short), to_json(&short)))
        }
        step => unreachable!("{step:?} is a step, advanced above"),
    }
}

async fn returns(client: &Client, command: ReturnCommand) -> Result<Output, ClientError> {
    let changed = match command {
        ReturnCommand::Request { order, lines, reason, key } => match key {
            Some(key) => client.request_return_with_key(key, order, lines, reason).await?,
            None => client.request_return(order, lines, reason).await?,
        },
        ReturnCommand::Authorise { rma } => client.authorise_return(rma).await?,
        ReturnCommand::Receive { rma, location, lines } => {
            client.receive_return(rma, location, lines).await?
        }
        ReturnCommand::Refund { rma, amount, key } => match key {
            Some(key) => client.refund_return_with_key(key, rma, amount).await?,
            None => client.refund_return(rma, amount).await?,
        },
        ReturnCommand::Exchange { rma, order } => {
            let exchanged = match place_order(order) {
                (Some(key), order) => client.exchange_return_with_key(key, rma, order).await?,
                (None, order) => client.exchange_return(rma, order).await?,
            };
            let human = output::return_exchanged(&exchanged);
            return Ok(Output::new(human, to_json(&exchanged)));
        }
        ReturnCommand::Get { rma } => {
            let view = client.rma(rma).await?;
            return Ok(Output::new(output::rma(&view), to_json(&view)));
        }
    };
    Ok(Output::new(output::return_changed(&changed), to_json(&changed)))
}

async fn import(
    client: &Client,
    command: ImportCommand,
    progress_visible: bool,
) -> Result<Output, ClientError> {
    // Locations go one frame at a time, so a code listed twice ends as its last row;
    // receipts add up in any order and go several frames at once.
    let (parsed, in_flight) = match command {
        ImportCommand::Locations { file } => {
            (import::read_file(&file, import::parse_locations)?, 1)
        }
        ImportCommand::Stock { file } => {
            (import::read_file(&file, import::parse_stock)?, import::IMPORT_BATCHES_IN_FLIGHT)
        }
    };
    let progress =
        import::progress_bar(parsed.commands.len() + parsed.errors.len(), progress_visible);
    Ok(import::send(client, parsed, in_flight, &progress).await.output())
}

/// The answer to consuming or releasing committed units.
fn settled(id: u64, how: &str, units_committed: u64) -> Output {
    let human = format!("hold {id}: units {how}, {units_committed} still committed");
    Output::new(human, json!({ "hold": id, "units_committed": units_committed }))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn args(data_dir: Option<&str>, cert: Option<&str>, token: Option<&str>) -> ConnectionArgs {
        ConnectionArgs {
            addr: "127.0.0.1:7411".into(),
            ca: None,
            cert: cert.map(PathBuf::from),
            token: token.map(str::to_owned),
            client_cert: None,
            client_key: None,
            data_dir: data_dir.map(PathBuf::from),
            server_name: "localhost".into(),
            timeout_ms: 1_500,
            connect_timeout_ms: 700,
            retries: 0,
        }
    }

    #[test]
    fn an_order_place_becomes_the_order_and_its_key() {
        use clap::Parser;

        let cli = crate::args::Cli::try_parse_from([
            "allot",
            "order",
            "place",
            "--channel",
            "app",
            "--number",
            "A-7",
            "--customer",
            "C-1",
            "--currency",
            "EUR",
            "--line",
            "SKU-1:2:250",
            "--pickup",
            "LDN",
            "--backorder",
            "--key",
            "app-A-7",
        ])
        .unwrap();
        let Command::Order(OrderCommand::Place(spec)) = cli.command else { panic!() };
        let (key, order) = place_order(spec);
        assert_eq!(key.as_deref(), Some("app-A-7"));
        assert_eq!(order.channel, allot_client::protocol::order::Channel::App);
        assert_eq!(order.delivery, DeliveryRequest::Pickup { location: "LDN".into() });
        assert!(order.allow_backorder && order.hold.is_none());
        assert_eq!(order.lines[0].unit_price_minor, 250);
        assert_eq!(allot_client::protocol::check::place_order(&order), Ok(()));
    }

    #[test]
    fn each_shipment_step_subcommand_is_its_protocol_step() {
        let ship = ShipmentCommand::Ship { id: 9, carrier: "DHL".into(), tracking: "T1".into() };
        assert_eq!(
            shipment_step(&ship),
            Some((9, ShipmentStep::Ship { carrier: "DHL".into(), tracking: "T1".into() }))
        );
        assert_eq!(
            shipment_step(&ShipmentCommand::Ready { id: 9 }),
            Some((9, ShipmentStep::ReadyForPickup))
        );
        assert_eq!(
            shipment_step(&ShipmentCommand::PickedUp { id: 9 }),
            Some((9, ShipmentStep::PickUp))
        );
        assert_eq!(
            shipment_step(&ShipmentCommand::StartPicking { id: 9 }),
            Some((9, ShipmentStep::StartPicking))
        );
        assert_eq!(shipment_step(&ShipmentCommand::Get { id: 9 }), None);
        let cancel = ShipmentCommand::Cancel { id: 9, reason: "r".into() };
        assert_eq!(shipment_step(&cancel), None);
    }

    #[test]
    fn a_data_dir_with_a_token_flag_needs_no_token_file() {
        let config = client_config(&args(Some("/data"), None, Some("t0k"))).unwrap();
        assert_eq!(config.trust, Trust::PinnedCert(PathBuf::from("/data").join(DEV_CERT_FILE)));
        assert_eq!(config.token, "t0k");
        assert_eq!(config.request_timeout, std::time::Duration::from_millis(1_500));
        assert_eq!(config.retries, 0);
        assert_eq!(config.client_name, CLIENT_NAME);
    }

    #[test]
    fn a_cert_flag_overrides_the_data_dir_certificate_and_trust_is_required() {
        let config = client_config(&args(Some("/data"), Some("/pinned.pem"), Some("t"))).unwrap();
        assert_eq!(config.trust, Trust::PinnedCert("/pinned.pem".into()));
        let error = client_config(&args(None, None, Some("t"))).unwrap_err();
        assert!(matches!(&error, ClientError::Config(m) if m.contains("--data-dir")), "{error}");
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_makes_the_token_optional() {
        let with_cert = ConnectionArgs {
            client_cert: Some("/client.pem".into()),
            client_key: Some("/client-key.pem".into()),
            ..args(Some("/no-such-data-dir"), None, None)
        };
        let config = client_config(&with_cert).unwrap();
        assert_eq!(config.client_cert, Some(ClientCert::new("/client.pem", "/client-key.pem")));
        assert_eq!(config.token, "", "the data directory's token is not read");
        assert_eq!(
            config.trust,
            Trust::PinnedCert(PathBuf::from("/no-such-data-dir").join(DEV_CERT_FILE))
        );
        let with_token = ConnectionArgs { token: Some("t0k".into()), ..with_cert };
        assert_eq!(client_config(&with_token).unwrap().token, "t0k");

        assert_eq!(
            client_config(&args(None, Some("/pinned.pem"), Some("t"))).unwrap().client_cert,
            None
        );
        let cert_only = ConnectionArgs {
            client_cert: Some("/client.pem".into()),
            ..args(None, Some("/pinned.pem"), None)
        };
        let error = client_config(&cert_only).unwrap_err();
        assert!(matches!(&error, ClientError::Config(m) if m.contains("--client-key")), "{error}");
        let key_only = ConnectionArgs {
            client_key: Some("/client-key.pem".into()),
            ..args(None, Some("/pinned.pem"), None)
        };
        let error = client_config(&key_only).unwrap_err();
        assert!(matches!(&error, ClientError::Config(m) if m.contains("--client-cert")), "{error}");
    }
}
