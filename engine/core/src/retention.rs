//! Retention marks: when each run of a queue's retained entries was recorded, one mark
//! per granule of engine time (`RETENTION_GRANULE_MS`), so a queue of millions of
//! entries recorded in order keeps only a handful of times.

use std::collections::VecDeque;

use super::limits::retention_start_ms;

/// (retention start in engine ms, sequence number of the first entry recorded from then),
/// oldest first.
#[derive(Debug, Clone, Default)]
pub struct RetentionMarks(VecDeque<(u64, u64)>);

impl RetentionMarks {
    /// Notes that the entry numbered `seq` (the next in the queue) was recorded at `now_ms`.
    pub fn record(&mut self, seq: u64, now_ms: u64) {
        let start_ms = retention_start_ms(now_ms);
        match self.0.back() {
            Some(&(at_ms, _)) if at_ms == start_ms => {}
            Some(&(at_ms, _)) => {
                assert!(at_ms < start_ms, "engine time never goes back");
                self.0.push_back((start_ms, seq));
            }
            None => self.0.push_back((start_ms, seq)),
        }
    }

    /// Drops the marks no entry numbered `first_seq` or later needs; every mark when the
    /// queue is `empty`.
    pub fn forget_before(&mut self, first_seq: u64, empty: bool) {
        while self.0.get(1).is_some_and(|&(_, start)| start <= first_seq) {
            self.0.pop_front();
        }
        if empty {
            self.0.clear();
        }
    }

    /// When the oldest entry's retention started.
    pub fn oldest_ms(&self) -> Option<u64> {
        self.0.front().map(|&(at_ms, _)| at_ms)
    }

    /// How many marks are kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The retention start of each entry numbered `first_seq`, `first_seq + 1`, … in
    /// turn, for walking a queue in order.
    pub fn starts_from(&self, first_seq: u64) -> impl FnMut() -> u64 + '_ {
        let mut marks = self.0.iter().peekable();
        let (mut seq, mut at_ms) = (first_seq, 0);
        move || {
            while let Some(&&(mark_at_ms, start)) = marks.peek() {
                if start > seq {
                    break;
                }
                at_ms = mark_at_ms;
                marks.next();
            }
            seq += 1;
            at_ms
        }
    }
}
