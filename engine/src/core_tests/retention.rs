//! Unit tests of what the core keeps only to answer retries, and of bounded ticks:
//! compact idempotency entries and the replies rebuilt from them, a full key table, and
//! backlogs worked off over several ticks with the same result as a state rebuilt from
//! its snapshot image.

use crate::codec;
use allot_core::idempotency::IdempotencyPolicy;
use allot_core::limits::{
    HOLD_RESOLVED_RETENTION_MS, HOLD_TTL_MS_MIN, IDEMPOTENCY_RETENTION_MS_DEFAULT, TICK_ENTRIES_MAX,
};
use allot_core::{Command, EngineError, HoldState, LineRequest, Reply, Request, Resolution, State};

use super::handlers::spec;

const T0: u64 = 1_700_000_000_000;

fn receive(sku: &str, quantity: u32) -> Command {
    Command::Receive { sku: sku.into(), location: "W1".into(), quantity }
}

fn one_line(sku: &str, quantity: u32, ttl_ms: u64) -> Command {
    let line = LineRequest { sku: sku.into(), location: "W1".into(), quantity };
    Command::Reserve { lines: vec![line], ttl_ms: Some(ttl_ms) }
}

/// A state with location W1 holding `units` of sku-1.
fn stocked(units: u32) -> State {
    let mut state = State::new();
    for command in [Command::UpsertLocation(spec("W1")), receive("sku-1", units)] {
        assert!(state.apply(&Request::new(command), T0).changed);
    }
    state
}

fn ticked(state: &mut State, now_ms: u64) -> u32 {
    let applied = state.apply(&Request::new(Command::Tick), now_ms);
    assert!(applied.changed);
    match applied.outcome {
        Ok(Reply::Ticked { expired }) => expired,
        other => panic!("tick answered {other:?}"),
    }
}

#[test]
fn a_retried_reserve_answers_the_original_hold_and_deadline_after_the_hold_changed() {
    let mut state = stocked(100);
    let request = Request::with_key("cart-1", one_line("sku-1", 5, 60_000));
    let first = state.apply(&request, T0 + 1).outcome.expect("placed");
    let Reply::HoldPlaced { hold, .. } = first else { panic!("{first:?}") };
    let release = LineRequest { sku: "sku-1".into(), location: "W1".into(), quantity: 2 };
    let partial = Command::ReleaseHold { hold, lines: vec![release] };
    assert!(state.apply(&Request::with_key("release-1", partial.clone()), T0 + 2).changed);
    let retry = state.apply(&request, T0 + 3);
    assert_eq!(retry.outcome, Ok(first), "the same hold and deadline, not a second hold");
    assert!(!retry.changed);
    let again = state.apply(&Request::with_key("release-1", partial), T0 + 4);
    let held = Reply::HoldReleased { hold, state: HoldState::Held, units_held: 3 };
    assert_eq!(again.outcome, Ok(held), "the release's own answer, rebuilt exactly");
    assert_eq!(state.hold_count(), 1);
}

#[test]
fn a_retried_receive_shows_the_cell_as_it_is_now() {
    let mut state = stocked(10);
    let request = Request::with_key("receipt-1", receive("sku-1", 5));
    let first = state.apply(&request, T0 + 1).outcome.expect("received");
    let Reply::Cell(view) = first else { panic!("{first:?}") };
    assert_eq!(view.on_hand, 15);
    assert!(state.apply(&Request::new(one_line("sku-1", 4, 60_000)), T0 + 2).changed);
    let retry = state.apply(&request, T0 + 3);
    let Ok(Reply::Cell(now)) = retry.outcome else { panic!("{retry:?}") };
    assert_eq!((now.on_hand, now.held, now.available), (15, 4, 11), "received once, shown now");
    assert!(!retry.changed);
}

#[test]
fn a_retried_full_release_is_answered_as_before_not_as_already_resolved() {
    let mut state = stocked(10);
    let request = Request::with_key("cart-1", one_line("sku-1", 1, 60_000));
    let Ok(Reply::HoldPlaced { hold, .. }) = state.apply(&request, T0 + 1).outcome else {
        panic!("placed")
    };
    let release = Command::ReleaseHold { hold, lines: Vec::new() };
    let released = state.apply(&Request::with_key("release-1", release.clone()), T0 + 2);
    let all = Reply::HoldReleased {
        hold,
        state: HoldState::Resolved(Resolution::Released),
        units_held: 0,
    };
    assert_eq!(released.outcome, Ok(all.clone()));
    let retry = state.apply(&Request::with_key("release-1", release), T0 + 3);
    assert_eq!(retry.outcome, Ok(all), "a retried release is answered, not AlreadyResolved");
}

#[test]
fn commands_the_engine_issues_itself_carry_no_idempotency_key() {
    let mut state = stocked(10);
    let weights = Command::SetRoutingWeights(state.routing_weights());
    for command in [Command::Tick, weights] {
        let applied = state.apply(&Request::with_key("engine-1", command), T0 + 1);
        assert!(matches!(applied.outcome, Err(EngineError::InvalidArgument(_))), "{applied:?}");
        assert!(!applied.changed);
    }
    assert_eq!(state.idempotency_key_count(), 0);
}

#[test]
fn a_full_key_table_forgets_its_oldest_key_counts_it_and_still_takes_requests() {
    let mut state = stocked(100);
    state.set_idempotency_policy(IdempotencyPolicy { retention_ms: 60_000, keys_max: 2 });
    for (n, key) in ["k-0", "k-1", "k-2"].into_iter().enumerate() {
        let request = Request::with_key(key, receive("sku-1", 1));
        let applied = state.apply(&request, T0 + 1 + n as u64);
        assert!(applied.changed, "a full table never refuses: {:?}", applied.outcome);
    }
    assert_eq!(state.idempotency_key_count(), 2);
    assert_eq!(state.counters().idempotency_keys_forgotten_early, 1);
    let forgotten = state.apply(&Request::with_key("k-0", receive("sku-1", 1)), T0 + 10);
    assert!(forgotten.changed, "the key forgotten early applies again");
    let kept = state.apply(&Request::with_key("k-2", receive("sku-1", 1)), T0 + 11);
    assert!(!kept.changed, "the newest keys are still remembered");
    let conflict = state.apply(&Request::with_key("k-2", receive("sku-1", 2)), T0 + 12);
    assert_eq!(conflict.outcome, Err(EngineError::IdempotencyConflict));
    assert_eq!(state.counters().idempotency_keys_forgotten_early, 2);
}

#[test]
fn keys_are_kept_for_the_configured_retention() {
    let mut state = stocked(100);
    state.set_idempotency_policy(IdempotencyPolicy { retention_ms: 5_000, keys_max: 1_000 });
    let request = Request::with_key("receipt-1", receive("sku-1", 5));
    assert!(state.apply(&request, T0 + 1).changed);
    // Counted from the end of the second it was recorded in.
    assert_eq!(state.next_tick_due_ms(), Some(T0 + 6_000));
    ticked(&mut state, T0 + 5_999);
    assert!(!state.apply(&request, T0 + 5_999).changed, "kept for its whole retention");
    ticked(&mut state, T0 + 6_000);
    assert_eq!(state.idempotency_key_count(), 0);
    assert!(state.apply(&request, T0 + 6_000).changed, "a forgotten key applies again");
}

#[test]
fn a_tick_after_a_long_gap_expires_and_forgets_only_its_bound_and_later_ticks_finish_as_replay_does()
 {
    let holds = TICK_ENTRIES_MAX + TICK_ENTRIES_MAX / 2;
    let mut live = stocked(u32::try_from(holds).expect("fits"));
    let mut log: Vec<(Request, u64)> = Vec::new();
    let mut apply = |state: &mut State, request: Request, now_ms: u64| {
        let applied = state.apply(&request, now_ms);
        assert!(applied.changed, "{:?}", applied.outcome);
        log.push((request, now_ms));
        applied.outcome.expect("changed")
    };
    for n in 0..holds {
        // Keyed, so the key table has a backlog to forget too.
        let key = format!("cart-{n}");
        apply(&mut live, Request::with_key(key, one_line("sku-1", 1, HOLD_TTL_MS_MIN)), T0);
    }
    // Every tenth hold is extended, leaving a stale wheel entry that a state rebuilt
    // from its image does not have.
    for hold in (1..=holds as u64).step_by(10) {
        let extend = Command::ExtendHold { hold, ttl_ms: 2 * HOLD_TTL_MS_MIN };
        apply(&mut live, Request::new(extend), T0 + 1);
    }
    let gap = T0 + 2 * IDEMPOTENCY_RETENTION_MS_DEFAULT;
    let first = apply(&mut live, Request::new(Command::Tick), gap);
    assert_eq!(first, Reply::Ticked { expired: TICK_ENTRIES_MAX as u32 }, "only the bound");
    assert_eq!(live.idempotency_key_count(), holds - TICK_ENTRIES_MAX);
    assert_eq!(live.next_tick_due_ms().map(|due| due <= gap), Some(true), "more work is due");
    let mut rebuilt = codec::decode_state(&codec::encode_state(&live)).expect("decodes");
    // Resolved at `gap` and `gap + 1`: in two seconds, due together from here.
    let forget = gap + 1_000 + HOLD_RESOLVED_RETENTION_MS;
    for state in [&mut live, &mut rebuilt] {
        assert_eq!(ticked(state, gap + 1) as usize, holds - TICK_ENTRIES_MAX);
        assert_eq!(ticked(state, gap + 2), 0);
        assert_eq!(state.idempotency_key_count(), 0);
        assert_eq!(state.counters().holds_expired, holds as u64);
        assert_eq!((state.hold_count(), state.tombstone_count()), (0, holds));
        // The tombstones' retention ends for all of them at once; forgetting is bounded too.
        ticked(state, forget);
        assert_eq!(state.tombstone_count(), holds - TICK_ENTRIES_MAX);
        ticked(state, forget + 1);
        assert_eq!(state.tombstone_count(), 0);
        assert_eq!(state.audit(), Ok(()));
    }
    for now_ms in [gap + 1, gap + 2, forget, forget + 1] {
        log.push((Request::new(Command::Tick), now_ms));
    }
    let mut replayed = stocked(u32::try_from(holds).expect("fits"));
    for (request, now_ms) in &log {
        assert!(replayed.apply(request, *now_ms).changed);
    }
    let digest = codec::state_digest(&live);
    assert_eq!(codec::state_digest(&rebuilt), digest, "rebuilt from the image mid-backlog");
    assert_eq!(codec::state_digest(&replayed), digest, "replayed from the log");
}

#[test]
fn a_table_at_its_configured_cap_refuses_only_new_entries() {
    let mut state = stocked(100);
    state.set_caps(allot_core::limits::TableCaps { skus_max: 1, holds_max: 1, orders_max: 1 });
    let first = state.apply(&Request::new(one_line("sku-1", 1, 60_000)), T0);
    assert!(first.changed, "{first:?}");
    let second = state.apply(&Request::new(one_line("sku-1", 1, 60_000)), T0);
    assert!(
        matches!(second.outcome, Err(EngineError::Overloaded(ref why)) if why.contains("holds"))
    );
    assert!(!second.changed);
    // The SKU table is full too: a known SKU still takes stock, a new one is refused.
    assert!(state.apply(&Request::new(receive("sku-1", 5)), T0).changed);
    let new_sku = state.apply(&Request::new(receive("sku-2", 5)), T0);
    assert!(
        matches!(new_sku.outcome, Err(EngineError::Overloaded(ref why)) if why.contains("skus"))
    );
    // A new state (as replay starts from) has only the ceilings.
    assert_eq!(State::new().caps(), allot_core::limits::TableCaps::CEILINGS);
}
