//! The audit after a run: the server's counters for every catalogue cell, read before the
//! load and after it, must have moved exactly as the acknowledged answers say (within the
//! margin of requests whose outcome is unknown); no cell may have been oversold; a
//! `flash-sale` must have sold exactly the stock on offer; a `lifecycle` must have taken
//! every order it placed to its end, with none refused or stuck; and sampled holds and
//! orders must be in the state their answers left them in.

use std::collections::HashMap;

use allot_client::Client;
use allot_protocol::order::OrderState;
use allot_protocol::{CellView, HoldState, Query, Reply, RequestBody};
use serde::Serialize;

use super::HarnessError;
use super::args::{Settings, WorkloadKind};
use super::ledger::{Expect, Ledger, Outcome};
use super::setup::send_all;
use crate::{Catalogue, CellPick};

/// Mismatching cells the details name before summing up the rest.
pub const DETAILS_CELLS_MAX: usize = 10;

/// One cell's counters as the server reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub on_hand: i64,
    pub held: i64,
    pub allocated: i64,
    pub available: i64,
}

impl From<&CellView> for Counters {
    fn from(view: &CellView) -> Counters {
        Counters {
            on_hand: i64::from(view.on_hand),
            held: i64::from(view.held),
            allocated: i64::from(view.allocated),
            available: view.available,
        }
    }
}

/// Every catalogue cell the server knows, by catalogue index.
pub type CellTable = HashMap<CellPick, Counters, foldhash::fast::RandomState>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    pub passed: bool,
    pub details: Vec<String>,
}

/// Reads every catalogue SKU's stock (one query per SKU, in full batch frames).
pub async fn read_cells(
    clients: &[Client],
    catalogue: &Catalogue,
) -> Result<CellTable, HarnessError> {
    let queries = (0..catalogue.sku_count())
        .map(|sku| RequestBody::Query(Query::SkuStock { sku: catalogue.sku(sku).to_owned() }))
        .collect();
    let replies = send_all(clients, queries).await?;
    let mut table = CellTable::with_capacity_and_hasher(catalogue.cell_count(), Default::default());
    for (sku, reply) in replies.iter().enumerate() {
        let Reply::Cells(cells) = reply else {
            return Err(HarnessError::Audit(format!("a stock query was answered {reply:?}")));
        };
        for view in cells {
            // Cells at locations outside the catalogue are someone else's.
            if let Some(location) = catalogue.location_index(&view.location) {
                table.insert(CellPick { sku: sku as u32, location }, Counters::from(view));
            }
        }
    }
    Ok(table)
}

/// Reads the state of every sampled hold.
pub async fn read_samples(
    clients: &[Client],
    ledger: &Ledger,
) -> Result<Vec<Option<HoldState>>, HarnessError> {
    let queries =
        ledger.samples.iter().map(|(hold, _)| RequestBody::Query(Query::Hold { hold: *hold }));
    let replies = send_all(clients, queries.collect()).await?;
    Ok(replies
        .into_iter()
        .map(|reply| match reply {
            Reply::Hold(view) => Some(view.state),
            _ => None,
        })
        .collect())
}

/// Reads the state of every sampled order.
pub async fn read_order_samples(
    clients: &[Client],
    ledger: &Ledger,
) -> Result<Vec<Option<OrderState>>, HarnessError> {
    let queries = ledger
        .order_samples
        .iter()
        .map(|(order, _)| RequestBody::Query(Query::Order { order: *order }));
    let replies = send_all(clients, queries.collect()).await?;
    Ok(replies
        .into_iter()
        .map(|reply| match reply {
            Reply::Order(view) => Some(view.state),
            _ => None,
        })
        .collect())
}

/// Compares what the server shows with what the ledger expects.
pub fn check(
    settings: &Settings,
    catalogue: &Catalogue,
    before: &CellTable,
    after: &CellTable,
    ledger: &Ledger,
    sampled: &[Option<HoldState>],
    orders: &[Option<OrderState>],
) -> AuditReport {
    let mut details = Vec::new();
    let mut passed = check_cells(catalogue, before, after, ledger, &mut details);
    passed &= check_oversold(catalogue, before, after, &mut details);
    if settings.workload == WorkloadKind::FlashSale {
        passed &= check_sold_out(settings, before, ledger, &mut details);
    }
    if settings.workload == WorkloadKind::Lifecycle {
        passed &= check_orders(ledger, &mut details);
    }
    passed &= check_samples(ledger, sampled, &mut details);
    if !ledger.order_samples.is_empty() {
        passed &= check_order_samples(ledger, orders, &mut details);
    }
    AuditReport { passed, details }
}

fn check_cells(
    catalogue: &Catalogue,
    before: &CellTable,
    after: &CellTable,
    ledger: &Ledger,
    details: &mut Vec<String>,
) -> bool {
    let none = Counters::default();
    let mut wrong = 0usize;
    let (mut held_seen, mut held_expected, mut allocated_seen, mut allocated_expected) =
        (0i64, 0i64, 0i64, 0i64);
    let (mut on_hand_seen, mut on_hand_expected) = (0i64, 0i64);
    let mut picks: Vec<&CellPick> =
        before.keys().chain(after.keys()).chain(ledger.cells.keys()).collect();
    picks.sort_unstable_by_key(|pick| (pick.sku, pick.location));
    picks.dedup();
    for pick in picks {
        let (was, now) = (before.get(pick).unwrap_or(&none), after.get(pick).unwrap_or(&none));
        let expect = ledger.cells.get(pick).copied().unwrap_or_default();
        let held = now.held - was.held;
        let allocated = now.allocated - was.allocated;
        let on_hand = now.on_hand - was.on_hand;
        held_seen += held;
        held_expected += expect.held;
        allocated_seen += allocated;
        allocated_expected += expect.allocated;
        on_hand_seen += on_hand;
        on_hand_expected += expect.on_hand;
        if within(held, expect.held, expect.held_unknown)
            && within(allocated, expect.allocated, expect.allocated_unknown)
            && within(on_hand, expect.on_hand, expect.on_hand_unknown)
        {
            continue;
        }
        wrong += 1;
        if wrong <= DETAILS_CELLS_MAX {
            details.push(cell_mismatch(catalogue, *pick, held, allocated, on_hand, expect));
        }
    }
    if wrong > DETAILS_CELLS_MAX {
        details.push(format!("… and {} more cells", wrong - DETAILS_CELLS_MAX));
    }
    details.push(format!(
        "{} cells: held {held_seen:+} (acknowledged {held_expected:+}), allocated \
         {allocated_seen:+} (acknowledged {allocated_expected:+}), on hand {on_hand_seen:+} \
         (acknowledged {on_hand_expected:+}), {} unknown outcomes",
        before.len().max(after.len()),
        ledger.tally.unknown_outcomes
    ));
    wrong == 0
}

fn within(seen: i64, expected: i64, unknown: u64) -> bool {
    seen >= expected && seen - expected <= unknown as i64
}

fn cell_mismatch(
    catalogue: &Catalogue,
    pick: CellPick,
    held: i64,
    allocated: i64,
    on_hand: i64,
    expect: Expect,
) -> String {
    format!(
        "cell {} at {}: held {held:+} (acknowledged {:+}, unknown {}), allocated {allocated:+} \
         (acknowledged {:+}, unknown {}), on hand {on_hand:+} (acknowledged {:+}, unknown {})",
        catalogue.sku(pick.sku as usize),
        catalogue.location_code(pick.location as usize),
        expect.held,
        expect.held_unknown,
        expect.allocated,
        expect.allocated_unknown,
        expect.on_hand,
        expect.on_hand_unknown,
    )
}

/// No cell that had stock to spare before the run is short after it.
fn check_oversold(
    catalogue: &Catalogue,
    before: &CellTable,
    after: &CellTable,
    details: &mut Vec<String>,
) -> bool {
    let mut oversold: Vec<(&CellPick, &Counters)> = after
        .iter()
        .filter(|(pick, now)| {
            now.available < 0 && before.get(pick).is_none_or(|was| was.available >= 0)
        })
        .collect();
    oversold.sort_unstable_by_key(|(pick, _)| (pick.sku, pick.location));
    for (pick, now) in oversold.iter().take(DETAILS_CELLS_MAX) {
        details.push(format!(
            "oversold: {} at {} has available {} (on hand {}, held {}, allocated {})",
            catalogue.sku(pick.sku as usize),
            catalogue.location_code(pick.location as usize),
            now.available,
            now.on_hand,
            now.held,
            now.allocated
        ));
    }
    oversold.is_empty()
}

/// A flash sale sells exactly what was on offer (or one unit per buyer, if fewer).
fn check_sold_out(
    settings: &Settings,
    before: &CellTable,
    ledger: &Ledger,
    details: &mut Vec<String>,
) -> bool {
    let on_offer: i64 = before.values().map(|was| was.available.max(0)).sum();
    let buyers = settings.buyers.unwrap_or(0);
    let expected = (on_offer as u64).min(buyers);
    let sold = ledger.tally.sold;
    let exact = sold <= expected && expected - sold <= ledger.tally.unknown_outcomes;
    details.push(format!(
        "flash sale: sold {sold} units (expected {expected}: {on_offer} on offer, {buyers} \
         buyers); {} buyers found it sold out, {} gave up",
        ledger.tally.sold_out, ledger.tally.gave_up
    ));
    exact && ledger.tally.gave_up == 0
}

/// Every order a `lifecycle` placed reached its end (delivered, returned or cancelled),
/// unless it was given up on after lost answers; none was refused or stuck.
fn check_orders(ledger: &Ledger, details: &mut Vec<String>) -> bool {
    let tally = &ledger.tally;
    let ended = tally.orders_delivered
        + tally.orders_returned
        + tally.orders_cancelled
        + tally.orders_abandoned
        + tally.orders_stuck;
    details.push(format!(
        "orders: {} placed, {} refused for want of stock, {} refused otherwise; {} delivered, \
         {} returned, {} cancelled, {} given up after lost answers, {} stuck; {} units \
         shipped, {} restocked; {} reads to resynchronise",
        tally.orders_placed,
        tally.orders_short,
        tally.orders_refused,
        tally.orders_delivered,
        tally.orders_returned,
        tally.orders_cancelled,
        tally.orders_abandoned,
        tally.orders_stuck,
        tally.units_shipped,
        tally.units_restocked,
        tally.resyncs,
    ));
    for problem in &ledger.problems {
        details.push(format!("problem: {problem}"));
    }
    let mut passed = tally.orders_refused == 0 && tally.orders_stuck == 0;
    if ended != tally.orders_placed {
        details.push(format!(
            "{} orders placed but {ended} ended: some were left half done",
            tally.orders_placed
        ));
        passed = false;
    }
    passed
}

fn check_order_samples(
    ledger: &Ledger,
    seen: &[Option<OrderState>],
    details: &mut Vec<String>,
) -> bool {
    let mut wrong = 0;
    for ((order, expected), state) in ledger.order_samples.iter().zip(seen) {
        if *state != Some(*expected) {
            wrong += 1;
            if wrong <= DETAILS_CELLS_MAX {
                details.push(format!(
                    "order {order}: server says {state:?}, answers said {expected:?}"
                ));
            }
        }
    }
    details.push(format!("{} sampled orders checked, {wrong} wrong", ledger.order_samples.len()));
    wrong == 0
}

fn check_samples(
    ledger: &Ledger,
    sampled: &[Option<HoldState>],
    details: &mut Vec<String>,
) -> bool {
    let mut wrong = 0;
    for ((hold, outcome), state) in ledger.samples.iter().zip(sampled) {
        let expected = match outcome {
            Outcome::Held => HoldState::Held,
            Outcome::Resolved(how) => HoldState::Resolved(*how),
        };
        if *state != Some(expected) {
            wrong += 1;
            if wrong <= DETAILS_CELLS_MAX {
                details
                    .push(format!("hold {hold}: server says {state:?}, answers said {expected:?}"));
            }
        }
    }
    details.push(format!("{} sampled holds checked, {wrong} wrong", ledger.samples.len()));
    wrong == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::args::Args;
    use allot_protocol::Resolution;
    use clap::Parser;

    fn settings(workload: &str) -> Settings {
        let args = Args::parse_from([
            "allot-bench",
            "--embedded",
            "--workload",
            workload,
            "--skus",
            "10",
            "--locations",
            "4",
            "--stocked-per-sku",
            "2",
            "--buyers",
            "50",
        ]);
        Settings::resolve(&args).unwrap()
    }

    const A: CellPick = CellPick { sku: 0, location: 1 };
    const B: CellPick = CellPick { sku: 3, location: 2 };

    fn table(cells: &[(CellPick, i64, i64, i64)]) -> CellTable {
        cells
            .iter()
            .map(|&(pick, on_hand, held, allocated)| {
                let available = on_hand - held - allocated;
                (pick, Counters { on_hand, held, allocated, available })
            })
            .collect()
    }

    fn audit(workload: &str, after: &CellTable, ledger: &Ledger) -> AuditReport {
        let settings = settings(workload);
        let catalogue = crate::harness::catalogue(&settings);
        let before = table(&[(A, 10, 0, 0), (B, 10, 0, 0)]);
        // The server agrees with every sampled hold.
        let sampled: Vec<Option<HoldState>> = ledger
            .samples
            .iter()
            .map(|(_, outcome)| match outcome {
                Outcome::Held => Some(HoldState::Held),
                Outcome::Resolved(how) => Some(HoldState::Resolved(*how)),
            })
            .collect();
        // And with every sampled order.
        let orders: Vec<Option<OrderState>> =
            ledger.order_samples.iter().map(|(_, state)| Some(*state)).collect();
        check(&settings, &catalogue, &before, after, ledger, &sampled, &orders)
    }

    /// Two orders: one from A (3 units) returned in part (1 unit back), one from B
    /// (2 units) delivered.
    fn lifecycle_ledger() -> Ledger {
        let mut ledger = Ledger::new(None);
        ledger.tally.orders_placed = 2;
        ledger.shipped(A, 3);
        ledger.restocked(A, 1);
        ledger.order_finished(11, OrderState::Returned);
        ledger.shipped(B, 2);
        ledger.order_finished(12, OrderState::Delivered);
        ledger
    }

    fn named(workload: &str, pick: CellPick) -> String {
        let catalogue = crate::harness::catalogue(&settings(workload));
        format!(
            "cell {} at {}:",
            catalogue.sku(pick.sku as usize),
            catalogue.location_code(pick.location as usize)
        )
    }

    #[test]
    fn lifecycle_stock_that_moved_as_acknowledged_passes() {
        let report = audit("lifecycle", &table(&[(A, 8, 0, 0), (B, 8, 0, 0)]), &lifecycle_ledger());
        assert!(report.passed, "{report:?}");
        assert!(report.details.iter().any(|line| line.starts_with("orders: 2 placed")));
        assert!(report.details.iter().any(|line| line == "2 sampled orders checked, 0 wrong"));
    }

    #[test]
    fn lifecycle_on_hand_off_by_one_fails_and_names_the_cell() {
        // A return the server did not put back (or one it put back twice) shows on A.
        for on_hand in [7, 9] {
            let report = audit(
                "lifecycle",
                &table(&[(A, on_hand, 0, 0), (B, 8, 0, 0)]),
                &lifecycle_ledger(),
            );
            assert!(!report.passed);
            let cell = named("lifecycle", A);
            let moved = format!("on hand {:+} (acknowledged -2, unknown 0)", on_hand - 10);
            assert!(
                report.details.iter().any(|line| line.starts_with(&cell) && line.ends_with(&moved)),
                "{report:?}"
            );
        }
    }

    #[test]
    fn lifecycle_allocation_left_behind_fails_and_names_the_cell() {
        // B's shipment left on_hand alone and kept its allocation: it never shipped.
        let report =
            audit("lifecycle", &table(&[(A, 8, 0, 0), (B, 10, 0, 2)]), &lifecycle_ledger());
        assert!(!report.passed);
        let cell = named("lifecycle", B);
        assert!(
            report.details.iter().any(|line| line.starts_with(&cell)
                && line.contains("allocated +2 (acknowledged +0, unknown 0)")),
            "{report:?}"
        );
    }

    #[test]
    fn lifecycle_margins_cover_only_orders_given_up_on() {
        // An order given up on with its shipment at B packed: shipped or still allocated.
        let mut ledger = lifecycle_ledger();
        ledger.tally.orders_placed += 1;
        ledger.tally.orders_abandoned += 1;
        ledger.ship_unknown(B, 1);
        for after in [table(&[(A, 8, 0, 0), (B, 7, 0, 0)]), table(&[(A, 8, 0, 0), (B, 8, 0, 1)])] {
            let report = audit("lifecycle", &after, &ledger);
            assert!(report.passed, "{report:?}");
        }
        let report = audit("lifecycle", &table(&[(A, 8, 0, 0), (B, 6, 0, 0)]), &ledger);
        assert!(!report.passed, "{report:?}");
    }

    #[test]
    fn lifecycle_orders_left_half_done_refused_or_stuck_fail() {
        let cells = table(&[(A, 8, 0, 0), (B, 8, 0, 0)]);
        let mut half_done = lifecycle_ledger();
        half_done.tally.orders_placed += 1;
        let report = audit("lifecycle", &cells, &half_done);
        assert!(!report.passed);
        assert!(report.details.iter().any(|line| line.contains("left half done")), "{report:?}");

        let mut stuck = lifecycle_ledger();
        stuck.tally.orders_placed += 1;
        stuck.tally.orders_stuck += 1;
        stuck.problem("order 13 (X-0-3): stuck: Pay: InvalidTransition".into());
        let report = audit("lifecycle", &cells, &stuck);
        assert!(!report.passed);
        assert!(report.details.iter().any(|line| line.starts_with("problem: order 13")));

        let mut refused = lifecycle_ledger();
        refused.tally.orders_refused += 1;
        assert!(!audit("lifecycle", &cells, &refused).passed);
        let mut short = lifecycle_ledger();
        short.tally.orders_short += 5;
        assert!(audit("lifecycle", &cells, &short).passed, "running short is no failure");
    }

    #[test]
    fn a_sampled_order_in_another_state_fails() {
        let settings = settings("lifecycle");
        let catalogue = crate::harness::catalogue(&settings);
        let before = table(&[(A, 10, 0, 0), (B, 10, 0, 0)]);
        let after = table(&[(A, 8, 0, 0), (B, 8, 0, 0)]);
        let ledger = lifecycle_ledger();
        let seen = [Some(OrderState::PartiallyReturned), Some(OrderState::Delivered)];
        let report = check(&settings, &catalogue, &before, &after, &ledger, &[], &seen);
        assert!(!report.passed);
        assert!(report.details.iter().any(|line| line.starts_with("order 11:")), "{report:?}");
    }

    #[test]
    fn counters_that_moved_as_acknowledged_pass() {
        let mut ledger = Ledger::new(None);
        ledger.hold_acked(1, &[A, B]);
        ledger.hold_acked(2, &[A]);
        ledger.committed(2, &[A]);
        let report = audit("checkout", &table(&[(A, 10, 1, 1), (B, 10, 1, 0)]), &ledger);
        assert!(report.passed, "{report:?}");
    }

    #[test]
    fn a_wrong_expectation_fails_and_names_the_cell() {
        // The ledger believes in one more hold on A than the server shows.
        let mut ledger = Ledger::new(None);
        ledger.hold_acked(1, &[A]);
        ledger.hold_acked(2, &[A]);
        let report = audit("hold", &table(&[(A, 10, 1, 0), (B, 10, 0, 0)]), &ledger);
        assert!(!report.passed);
        let catalogue = crate::harness::catalogue(&settings("hold"));
        let named = format!(
            "cell {} at {}: held +1 (acknowledged +2",
            catalogue.sku(0),
            catalogue.location_code(1)
        );
        assert!(report.details.iter().any(|line| line.starts_with(&named)), "{report:?}");
    }

    #[test]
    fn unknown_outcomes_allow_only_the_units_they_could_have_moved() {
        let mut ledger = Ledger::new(None);
        ledger.hold_unknown(&[A]);
        for held in [0, 1] {
            let report = audit("hold", &table(&[(A, 10, held, 0), (B, 10, 0, 0)]), &ledger);
            assert!(report.passed, "held {held}: {report:?}");
        }
        let report = audit("hold", &table(&[(A, 10, 2, 0), (B, 10, 0, 0)]), &ledger);
        assert!(!report.passed);
    }

    #[test]
    fn stock_that_changed_on_hand_fails() {
        let report = audit("hold", &table(&[(A, 9, 0, 0), (B, 10, 0, 0)]), &Ledger::new(None));
        assert!(!report.passed);
        assert!(report.details[0].contains("on hand -1"), "{report:?}");
    }

    #[test]
    fn an_oversold_cell_fails() {
        let mut ledger = Ledger::new(None);
        for hold in 0..11 {
            ledger.hold_acked(hold, &[A]);
        }
        let report = audit("hold", &table(&[(A, 10, 11, 0), (B, 10, 0, 0)]), &ledger);
        assert!(!report.passed);
        assert!(report.details.iter().any(|line| line.starts_with("oversold:")), "{report:?}");
    }

    #[test]
    fn a_flash_sale_must_sell_exactly_what_was_on_offer() {
        // 20 units on offer and 50 buyers: selling 19 is as wrong as selling 21.
        let mut ledger = Ledger::new(None);
        for hold in 0..19 {
            let pick = if hold % 2 == 0 { A } else { B };
            ledger.hold_acked(hold, &[pick]);
            ledger.tally.sold += 1;
        }
        let short = audit("flash-sale", &table(&[(A, 10, 10, 0), (B, 10, 9, 0)]), &ledger);
        assert!(!short.passed, "{short:?}");
        assert!(short.details.iter().any(|line| line.contains("sold 19 units (expected 20")));
        ledger.hold_acked(19, &[B]);
        ledger.tally.sold += 1;
        let exact = audit("flash-sale", &table(&[(A, 10, 10, 0), (B, 10, 10, 0)]), &ledger);
        assert!(exact.passed, "{exact:?}");
    }

    #[test]
    fn a_sampled_hold_in_another_state_fails() {
        let settings = settings("checkout");
        let catalogue = crate::harness::catalogue(&settings);
        let mut ledger = Ledger::new(None);
        ledger.hold_acked(7, &[A]);
        ledger.released(7, &[A]);
        let cells = table(&[(A, 10, 0, 0), (B, 10, 0, 0)]);
        let committed = [Some(HoldState::Resolved(Resolution::Committed))];
        let report = check(&settings, &catalogue, &cells, &cells, &ledger, &committed, &[]);
        assert!(!report.passed);
        assert!(report.details.iter().any(|line| line.starts_with("hold 7:")), "{report:?}");
        let released = [Some(HoldState::Resolved(Resolution::Released))];
        assert!(check(&settings, &catalogue, &cells, &cells, &ledger, &released, &[]).passed);
    }
}
