//! The run's report: throughput, latency percentiles and errors by code (overall and per
//! kind of request), the setup and the audit; printed as a table and written as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::args::{Settings, WorkloadKind};
use super::audit::AuditReport;
use super::driver::Recorder;
use super::ledger::{Ledger, Tally};
use super::setup::SetupReport;
use super::workload::Kind;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    pub fn of(histogram: &Histogram<u64>) -> Latency {
        Latency {
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct KindFigures {
    pub count: u64,
    pub per_s: f64,
    pub latency_us: Latency,
}

/// The report `--json` writes. `ops` counts every measured request, whatever its kind.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workload: &'static str,
    pub config: Settings,
    pub ops: u64,
    pub ops_per_s: f64,
    /// `lifecycle`'s headline: orders placed (acknowledged) in the measured window, and
    /// per second. Each goes on through every step of its life, which `by_kind` shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders_per_s: Option<f64>,
    pub latency_us: Latency,
    pub errors: BTreeMap<String, u64>,
    pub audit: AuditReport,
    /// Seconds from the start of measuring to the last measured answer.
    pub elapsed_s: f64,
    pub by_kind: BTreeMap<&'static str, KindFigures>,
    pub setup: SetupReport,
    pub ledger: Tally,
    /// The open loop fell so far behind its schedule that it wound down early.
    pub saturated: bool,
}

impl Report {
    pub fn new(
        settings: Settings,
        recorder: &Recorder,
        elapsed_s: f64,
        setup: SetupReport,
        ledger: &Ledger,
        audit: AuditReport,
        saturated: bool,
    ) -> Report {
        let per_s = |count: u64| if elapsed_s > 0.0 { count as f64 / elapsed_s } else { 0.0 };
        let by_kind = Kind::ALL
            .iter()
            .map(|kind| (kind, &recorder.by_kind[kind.index()]))
            .filter(|(_, histogram)| !histogram.is_empty())
            .map(|(kind, histogram)| {
                let figures = KindFigures {
                    count: histogram.len(),
                    per_s: per_s(histogram.len()),
                    latency_us: Latency::of(histogram),
                };
                (kind.name(), figures)
            })
            .collect();
        let orders = (settings.workload == WorkloadKind::Lifecycle)
            .then(|| recorder.succeeded[Kind::Place.index()]);
        Report {
            workload: settings.workload.name(),
            orders,
            orders_per_s: orders.map(per_s),
            ops: recorder.all.len(),
            ops_per_s: per_s(recorder.all.len()),
            latency_us: Latency::of(&recorder.all),
            errors: recorder.errors.clone(),
            audit,
            elapsed_s,
            by_kind,
            setup,
            ledger: ledger.tally,
            saturated,
            config: settings,
        }
    }

    /// The human-readable summary.
    pub fn table(&self) -> String {
        let config = &self.config;
        let mut out = String::new();
        let shape = match config.rate {
            Some(rate) => format!("open loop at {rate} req/s"),
            None => format!("closed loop, {} in flight per connection", config.depth),
        };
        let _ = writeln!(
            out,
            "workload {}  target {}  {} connections, {shape}, {} per frame  seed {}",
            self.workload, config.target, config.connections, config.batch, config.seed
        );
        let _ = writeln!(
            out,
            "setup    {} requests in {:.2} s; baseline read in {:.2} s",
            self.setup.requests, self.setup.seconds, self.setup.baseline_seconds
        );
        let _ = writeln!(
            out,
            "measured {:.2} s after {:.1} s of warm-up{}",
            self.elapsed_s,
            config.warmup_s,
            if self.saturated { "  (open loop fell behind and wound down early)" } else { "" }
        );
        if let (Some(orders), Some(per_s)) = (self.orders, self.orders_per_s) {
            let _ = writeln!(out, "orders   {orders} placed in the window, {per_s:.0} per s");
        }
        let _ = writeln!(
            out,
            "\n{:<8} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "request", "count", "per s", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
        );
        let all =
            KindFigures { count: self.ops, per_s: self.ops_per_s, latency_us: self.latency_us };
        for (name, figures) in
            self.by_kind.iter().map(|(name, figures)| (*name, figures)).chain([("all", &all)])
        {
            let latency = figures.latency_us;
            let _ = writeln!(
                out,
                "{name:<8} {:>11} {:>11.0} {:>9} {:>9} {:>9} {:>9} {:>9}",
                figures.count,
                figures.per_s,
                latency.p50,
                latency.p90,
                latency.p99,
                latency.p999,
                latency.max
            );
        }
        if self.errors.is_empty() {
            let _ = writeln!(out, "\nanswers other than success: none");
        } else {
            let errors: Vec<String> =
                self.errors.iter().map(|(code, count)| format!("{code} {count}")).collect();
            let _ = writeln!(out, "\nanswers other than success: {}", errors.join(", "));
        }
        let _ = writeln!(out, "audit: {}", if self.audit.passed { "passed" } else { "FAILED" });
        for detail in &self.audit.details {
            let _ = writeln!(out, "  {detail}");
        }
        out
    }
}
