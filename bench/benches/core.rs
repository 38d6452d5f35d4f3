//! Throughput of the pure core's `State::apply` for cart holds (DESIGN §6: ≥ 10 M/s
//! one-line, ≥ 3 M/s five-line), one thread, against the `checkout` catalogue.
//!
//! Requests are generated before timing, in a pool that the timed loop walks in order.
//! Each time the pool is used up, an untimed clean-up ticks the engine clock past every
//! deadline and retention period, so the holds (and idempotency keys) of the pass are
//! expired and forgotten and the pool can be applied again as new holds. A timed pass
//! therefore runs with 0 to `POOL` live holds in the table, and every hold succeeds
//! (checked after each timed chunk, outside the timing).
//!
//! The loop is timed by the wall clock. On a machine shared with other work, set
//! `ALLOT_BENCH_CLOCK=thread-cpu` to time it by the thread's CPU clock instead, which
//! leaves out the time the thread was not running (though not the cache it lost).

use std::hint::black_box;
use std::time::{Duration, Instant};

use allot_bench::{Catalogue, CatalogueSpec, HoldDraws, loaded_state};
use allot_engine::core::limits::{
    EXPIRY_BUCKET_MS, HOLD_RESOLVED_RETENTION_MS, HOLD_TTL_MS_MAX, IDEMPOTENCY_RETENTION_MS_DEFAULT,
};
use allot_engine::core::{Command, Request, State};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SEED: u64 = 0x00a1_1075_eed5;
/// Requests generated per benchmark and applied in a loop.
const POOL: usize = 1 << 18;
/// Units at every cell: far more than a pass can hold at the most popular cell.
const UNITS_PER_CELL: u32 = 1_000_000;
/// Engine time the state starts at (any fixed value).
const START_MS: u64 = 1_700_000_000_000;

/// What times the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    Wall,
    ThreadCpu,
}

impl Clock {
    fn from_env() -> Clock {
        match std::env::var("ALLOT_BENCH_CLOCK").as_deref() {
            Ok("thread-cpu") => Clock::ThreadCpu,
            Ok("wall") | Err(_) => Clock::Wall,
            Ok(other) => panic!("ALLOT_BENCH_CLOCK is `wall` or `thread-cpu`, not {other:?}"),
        }
    }

    /// A reading; only differences between two readings mean anything.
    fn now(self) -> Duration {
        match self {
            Clock::Wall => {
                static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
                EPOCH.get_or_init(Instant::now).elapsed()
            }
            Clock::ThreadCpu => thread_cpu_time(),
        }
    }
}

#[cfg(target_os = "linux")]
fn thread_cpu_time() -> Duration {
    #[repr(C)]
    struct Timespec {
        seconds: i64,
        nanoseconds: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut time = Timespec { seconds: 0, nanoseconds: 0 };
    // SAFETY: `time` is a valid, writable timespec for the duration of the call.
    let status = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut time) };
    assert_eq!(status, 0, "the thread CPU clock is readable");
    Duration::new(time.seconds as u64, time.nanoseconds as u32)
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_time() -> Duration {
    panic!("ALLOT_BENCH_CLOCK=thread-cpu is supported on Linux only")
}

/// The state under test and the engine clock driving it.
struct Driver {
    state: State,
    clock: Clock,
    now_ms: u64,
    /// Holds the state has placed that the driver expects.
    expected_placed: u64,
    /// Position in the current pool.
    cursor: usize,
}

impl Driver {
    /// Applies `iters` requests from `pool`, continuing where the last call stopped, and
    /// returns the time spent in `apply` alone.
    fn run(&mut self, pool: &[Request], iters: u64) -> Duration {
        let mut timed = Duration::ZERO;
        let mut remaining = iters as usize;
        while remaining > 0 {
            if self.cursor == pool.len() {
                self.clear();
            }
            let chunk = remaining.min(pool.len() - self.cursor);
            let requests = &pool[self.cursor..self.cursor + chunk];
            let now_ms = self.now_ms;
            let start = self.clock.now();
            for request in requests {
                black_box(self.state.apply(black_box(request), now_ms));
            }
            timed += self.clock.now() - start;
            self.cursor += chunk;
            remaining -= chunk;
            self.expected_placed += chunk as u64;
            assert_eq!(
                self.state.counters().holds_placed,
                self.expected_placed,
                "every hold in the benchmark succeeds"
            );
        }
        timed
    }

    /// Expires every live hold, then forgets resolved holds and idempotency keys, by
    /// ticking the clock past the longest TTL and then past both retention periods;
    /// a tick does a bounded amount of work, so each step ticks until nothing is due.
    fn clear(&mut self) {
        self.now_ms += HOLD_TTL_MS_MAX + 2 * EXPIRY_BUCKET_MS;
        self.tick_until_idle();
        self.now_ms += HOLD_RESOLVED_RETENTION_MS.max(IDEMPOTENCY_RETENTION_MS_DEFAULT) + 1;
        self.tick_until_idle();
        assert_eq!(self.state.hold_count(), 0, "every hold of the pass is forgotten");
        self.cursor = 0;
    }

    fn tick_until_idle(&mut self) {
        let tick = Request::new(Command::Tick);
        while self.state.next_tick_due_ms().is_some_and(|due_ms| due_ms <= self.now_ms) {
            assert!(self.state.apply(&tick, self.now_ms).changed);
        }
    }
}

type Draw = fn(&mut HoldDraws<'_>) -> Request;

/// The hold shapes measured: name, whether each request carries an idempotency key, and
/// how a request is drawn.
const WORKLOADS: [(&str, bool, Draw); 5] = [
    ("one_line_uniform", false, |draws| draws.one_line()),
    ("one_line_zipf", false, |draws| draws.cart(1)),
    ("five_line_zipf", false, |draws| draws.cart(5)),
    ("one_line_uniform_keyed", true, |draws| draws.one_line()),
    ("five_line_zipf_keyed", true, |draws| draws.cart(5)),
];

/// Benchmarks `workloads` against a state loaded with `spec`, each with a pool of
/// `pool_size` requests (so at most that many live holds).
fn bench_catalogue(
    c: &mut Criterion,
    group_name: &str,
    spec: CatalogueSpec,
    pool_size: usize,
    workloads: &[(&str, bool, Draw)],
) {
    let started = Instant::now();
    let catalogue = Catalogue::new(spec);
    let state = loaded_state(&catalogue);
    let clock = Clock::from_env();
    eprintln!(
        "{group_name}: {} SKUs × {} locations, {} cells, loaded in {:.2?}; \
         pool of {pool_size}; {clock:?} clock",
        spec.n_skus,
        spec.n_locations,
        state.cell_count(),
        started.elapsed()
    );
    let mut driver = Driver { state, clock, now_ms: START_MS, expected_placed: 0, cursor: 0 };
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    for (stream, &(name, keyed, draw)) in workloads.iter().enumerate() {
        let mut draws = catalogue.holds(stream as u64);
        if keyed {
            draws = draws.with_keys(format!("checkout-{name}"));
        }
        let pool: Vec<Request> = (0..pool_size).map(|_| draw(&mut draws)).collect();
        // Each workload starts from an empty hold table.
        driver.clear();
        group.bench_function(name, |b| b.iter_custom(|iters| driver.run(&pool, iters)));
    }
    group.finish();
}

/// DESIGN §6 `checkout` catalogue: 100 k SKUs × 50 locations, 10 per SKU (1 M cells).
fn core_apply(c: &mut Criterion) {
    let spec = CatalogueSpec::checkout(UNITS_PER_CELL, SEED);
    bench_catalogue(c, "core_apply", spec, POOL, &WORKLOADS);
}

/// A control: the same code on a catalogue whose cells and SKU table fit in cache (1 k
/// SKUs, 10 k cells) and at most 16 k live holds, showing what `apply` costs when few of
/// its lookups miss the cache.
fn core_apply_cached(c: &mut Criterion) {
    let spec = CatalogueSpec { n_skus: 1_000, ..CatalogueSpec::checkout(UNITS_PER_CELL, SEED) };
    let workloads = [WORKLOADS[0], WORKLOADS[2]];
    bench_catalogue(c, "core_apply_cached", spec, 1 << 14, &workloads);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = core_apply, core_apply_cached
}
criterion_main!(benches);
