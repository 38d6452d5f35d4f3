//! What the configured limits can take in memory, against a memory limit, known at start.
//!
//! Each table's cap times a conservative size per entry, from the RSS growth the memory
//! bench measures (`bench/benches/memory.rs`, BENCHMARKS.md "Memory"). The engine keeps a
//! second full copy of its state, the snapshotter's shadow state, so every table counts
//! twice. `allotd` logs the budget at start and refuses to start when it is over the limit.

use allot_engine::core::limits::RETURNS_MAX;

use crate::config::ServerConfig;

/// Per SKU with its first cell: 1 M SKUs at one location each grew RSS 252.5 B per cell
/// (the per-SKU part dominates); a SKU stocked at more locations adds about 48 B a cell
/// (checkout catalogue: 47.4 B RSS), which this does not count.
pub const SKU_BYTES: u64 = 256;
/// Per live hold: a one-line hold grew RSS 100.1 B, a three-line one 116.1 B.
pub const HOLD_BYTES: u64 = 128;
/// Per resolved hold while retained (one hour): 17.1 B RSS. Tombstones have no cap of
/// their own; the budget allows one per live hold.
pub const TOMBSTONE_BYTES: u64 = 24;
/// Per idempotency key: 59.2 B RSS (fixed-size keys of at most 64 B).
pub const KEY_BYTES: u64 = 64;
/// Per open three-line order, routed, with its shipments (1.3 on average) and index
/// entries: 449.8 B RSS at 1 M orders, 560.9 B at 100 k (the tables' first chunks).
pub const ORDER_BYTES: u64 = 640;
/// Per return: not measured; a record, its lines and an index entry, estimated.
pub const RETURN_BYTES: u64 = 128;
/// Per queued request on the ingress queue: not measured; a request with a few lines
/// and its strings, estimated.
pub const INGRESS_ENTRY_BYTES: u64 = 1_024;
/// Share of the machine's memory the default limit takes.
pub const MEMORY_LIMIT_PERCENT_DEFAULT: u64 = 75;
/// The machine's memory assumed when `/proc/meminfo` cannot be read.
pub const MEMORY_TOTAL_FALLBACK_BYTES: u64 = 16 * 1024 * 1024 * 1024;

/// One table's share: its cap, bytes per entry, and the copies of it kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetLine {
    pub table: &'static str,
    pub entries: u64,
    pub bytes_per_entry: u64,
    pub copies: u64,
}

impl BudgetLine {
    pub fn bytes(&self) -> u64 {
        self.entries.saturating_mul(self.bytes_per_entry).saturating_mul(self.copies)
    }
}

/// The budget of a configuration against its memory limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBudget {
    pub lines: Vec<BudgetLine>,
    pub limit_bytes: u64,
}

impl MemoryBudget {
    /// The budget of `config`, with `mem_total_bytes` the machine's memory (used only
    /// when the configuration sets no `memory_limit_bytes`).
    pub fn of(config: &ServerConfig, mem_total_bytes: u64) -> MemoryBudget {
        let engine = &config.engine;
        let state = |table, entries: usize, bytes_per_entry| BudgetLine {
            table,
            entries: entries as u64,
            bytes_per_entry,
            // the writer's state and the snapshotter's shadow copy
            copies: 2,
        };
        let lines = vec![
            state("skus", engine.caps.skus_max, SKU_BYTES),
            state("holds", engine.caps.holds_max, HOLD_BYTES),
            state("hold tombstones", engine.caps.holds_max, TOMBSTONE_BYTES),
            state("idempotency keys", engine.idempotency.keys_max, KEY_BYTES),
            state("orders", engine.caps.orders_max, ORDER_BYTES),
            state("returns", RETURNS_MAX, RETURN_BYTES),
            BudgetLine {
                table: "ingress queue",
                entries: engine.ingress_queue_len_max as u64,
                bytes_per_entry: INGRESS_ENTRY_BYTES,
                copies: 1,
            },
            BudgetLine {
                table: "server buffers",
                entries: config.limits.server_buffer_bytes_max,
                bytes_per_entry: 1,
                copies: 1,
            },
        ];
        let limit_bytes = config
            .limits
            .memory_limit_bytes
            .unwrap_or_else(|| mem_total_bytes / 100 * MEMORY_LIMIT_PERCENT_DEFAULT);
        MemoryBudget { lines, limit_bytes }
    }

    pub fn total_bytes(&self) -> u64 {
        self.lines.iter().map(BudgetLine::bytes).fold(0, u64::saturating_add)
    }

    pub fn fits(&self) -> bool {
        self.total_bytes() <= self.limit_bytes
    }

    /// One line per table, then the sum and the limit.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for line in &self.lines {
            text.push_str(&format!(
                "{}: {} × {} B × {} = {}; ",
                line.table,
                line.entries,
                line.bytes_per_entry,
                line.copies,
                mib(line.bytes())
            ));
        }
        text.push_str(&format!(
            "total {} against memory_limit_bytes {} ({})",
            mib(self.total_bytes()),
            self.limit_bytes,
            mib(self.limit_bytes)
        ));
        text
    }

    /// `Err` naming the largest tables and the numbers when the budget is over the limit.
    pub fn check(&self) -> Result<(), String> {
        if self.fits() {
            return Ok(());
        }
        let mut largest: Vec<&BudgetLine> = self.lines.iter().collect();
        largest.sort_by_key(|line| std::cmp::Reverse(line.bytes()));
        let names: Vec<String> = largest
            .iter()
            .take(3)
            .map(|line| format!("{} {}", line.table, mib(line.bytes())))
            .collect();
        Err(format!(
            "the configured limits need {} but memory_limit_bytes is {} ({}); largest: {}; \
             lower [engine] skus_max, holds_max, orders_max or idempotency_keys_max, or raise \
             [limits] memory_limit_bytes ({})",
            mib(self.total_bytes()),
            self.limit_bytes,
            mib(self.limit_bytes),
            names.join(", "),
            self.describe()
        ))
    }
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes.div_ceil(1024 * 1024))
}

/// The machine's memory from a `/proc/meminfo` text (`MemTotal: N kB`).
pub fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// This machine's memory: `/proc/meminfo`'s MemTotal, else `MEMORY_TOTAL_FALLBACK_BYTES`.
pub fn machine_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_total_bytes(&text))
        .unwrap_or(MEMORY_TOTAL_FALLBACK_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * 1024 * 1024;

    #[test]
    fn each_line_is_cap_times_bytes_times_copies_and_the_total_adds_them() {
        let mut config = ServerConfig::default();
        config.engine.caps.holds_max = 1_000;
        let budget = MemoryBudget::of(&config, 24 * GIB);
        let holds = budget.lines.iter().find(|line| line.table == "holds").unwrap();
        assert_eq!(holds.bytes(), 1_000 * HOLD_BYTES * 2);
        let sum: u64 = budget.lines.iter().map(BudgetLine::bytes).sum();
        assert_eq!(budget.total_bytes(), sum);
        assert_eq!(budget.limit_bytes, 24 * GIB / 100 * 75);
    }

    #[test]
    fn the_defaults_fit_the_default_limit_of_a_24_gib_machine() {
        let meminfo = "MemTotal:       25165824 kB\nMemFree:        1000 kB\n";
        let total = mem_total_bytes(meminfo).unwrap();
        assert_eq!(total, 24 * GIB);
        let budget = MemoryBudget::of(&ServerConfig::default(), total);
        assert!(budget.fits(), "{}", budget.describe());
        assert!(budget.check().is_ok());
    }

    #[test]
    fn limits_that_do_not_fit_are_refused_naming_the_limit_and_the_tables() {
        let mut config = ServerConfig::default();
        config.limits.memory_limit_bytes = Some(GIB);
        let error = MemoryBudget::of(&config, 24 * GIB).check().unwrap_err();
        assert!(error.contains("memory_limit_bytes is 1073741824"), "{error}");
        assert!(error.contains("orders"), "{error}");
    }

    #[test]
    fn an_unreadable_meminfo_gives_nothing() {
        assert_eq!(mem_total_bytes("nothing here"), None);
        assert_eq!(mem_total_bytes("MemTotal: lots kB"), None);
    }
}
