//! How much a guest may write to the host's log: a cap on each line, on each transaction and on
//! the rate over time, so that a chaincode cannot flood the node's log or its disk. What is cut
//! or dropped is noted in the log itself.

use std::borrow::Cow;
use std::time::Instant;

/// Longest log line a guest may write, in bytes; the rest of a longer line is cut, and the cut
/// noted at its end. Four KiB holds any useful message and a short payload dump.
pub const MAX_LOG_LINE_BYTES: usize = 4 * 1024;

/// Most log bytes a guest may write while it runs one transaction (and, before its first, while
/// it starts); further lines are dropped until the next transaction, and a note says how many.
/// 64 KiB is some hundred ordinary lines: ample for debugging, and one transaction that logs in
/// a loop costs the node no more than that.
pub const MAX_LOG_BYTES_PER_TX: usize = 64 * 1024;

/// Most log bytes a guest may write per second over time, across transactions, so that many
/// short transactions that each log up to [`MAX_LOG_BYTES_PER_TX`] cannot flood the log either.
/// A burst of one transaction's worth is allowed at once.
pub const MAX_LOG_BYTES_PER_SECOND: usize = 64 * 1024;

/// A guest's log budget: what it has written in the current transaction and in the recent past,
/// and what it was refused.
#[derive(Debug)]
pub struct LogBudget {
    /// Bytes written in the current transaction.
    in_tx: usize,
    /// Bytes the rate allows now (a token bucket holding at most one transaction's worth).
    allowance: f64,
    refilled: Instant,
    dropped_lines: usize,
    dropped_bytes: usize,
}

impl Default for LogBudget {
    fn default() -> Self {
        Self {
            in_tx: 0,
            allowance: MAX_LOG_BYTES_PER_TX as f64,
            refilled: Instant::now(),
            dropped_lines: 0,
            dropped_bytes: 0,
        }
    }
}

impl LogBudget {
    /// Starts the budget of a new transaction. Returns a note of the lines dropped since the
    /// last note, for the caller to log.
    pub fn transaction_started(&mut self) -> Option<String> {
        self.in_tx = 0;
        self.dropped_note()
    }

    /// What of `line` may be logged: all of it, its first [`MAX_LOG_LINE_BYTES`] with a note of
    /// the cut, or nothing once the transaction's budget or the rate is spent (counted, and
    /// noted later).
    pub fn admit<'a>(&mut self, line: &'a str) -> Option<Cow<'a, str>> {
        self.admit_at(line, Instant::now())
    }

    /// [`Self::admit`] at the time `now`.
    fn admit_at<'a>(&mut self, line: &'a str, now: Instant) -> Option<Cow<'a, str>> {
        self.refill(now);
        let kept = cut_at_char_boundary(line, MAX_LOG_LINE_BYTES);
        let cost = kept.len();
        if self.in_tx + cost > MAX_LOG_BYTES_PER_TX || (cost as f64) > self.allowance {
            self.dropped_lines += 1;
            self.dropped_bytes += line.len();
            return None;
        }
        self.in_tx += cost;
        self.allowance -= cost as f64;
        if kept.len() == line.len() {
            return Some(Cow::Borrowed(line));
        }
        Some(Cow::Owned(format!(
            "{kept}... [{} more bytes cut: log lines are limited to {MAX_LOG_LINE_BYTES} bytes]",
            line.len() - kept.len()
        )))
    }

    /// A note of the lines dropped since the last note, if any were.
    pub fn dropped_note(&mut self) -> Option<String> {
        if self.dropped_lines == 0 {
            return None;
        }
        let note = format!(
            "{} log lines ({} bytes) dropped: a chaincode may log {MAX_LOG_BYTES_PER_TX} bytes \
             per transaction and {MAX_LOG_BYTES_PER_SECOND} bytes per second",
            self.dropped_lines, self.dropped_bytes
        );
        self.dropped_lines = 0;
        self.dropped_bytes = 0;
        Some(note)
    }

    /// Adds what the rate has earned since the last refill, up to one transaction's worth.
    fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.refilled).as_secs_f64()
            * MAX_LOG_BYTES_PER_SECOND as f64;
        self.allowance = (self.allowance + earned).min(MAX_LOG_BYTES_PER_TX as f64);
        self.refilled = now;
    }
}

/// The longest prefix of `text` of at most `limit` bytes that ends on a character boundary.
fn cut_at_char_boundary(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_cut_on_a_character_boundary_and_the_cut_noted() {
        let mut budget = LogBudget::default();
        let line = "é".repeat(MAX_LOG_LINE_BYTES);
        let kept = budget.admit(&line).expect("within the budget");
        let (text, note) = kept.split_once("...").expect("a note of the cut");
        assert_eq!(text.len(), MAX_LOG_LINE_BYTES);
        assert!(
            note.contains(&format!(
                "{} more bytes cut",
                line.len() - MAX_LOG_LINE_BYTES
            )),
            "{note}"
        );
    }

    #[test]
    fn a_transaction_that_logs_past_its_budget_has_the_rest_dropped_and_noted() {
        let mut budget = LogBudget::default();
        let start = budget.refilled;
        let line = "x".repeat(1024);
        let kept = (0..100)
            .filter(|_| budget.admit_at(&line, start).is_some())
            .count();
        assert_eq!(kept, MAX_LOG_BYTES_PER_TX / 1024);
        let note = budget.transaction_started().expect("a note of the drop");
        assert!(
            note.starts_with("36 log lines (36864 bytes) dropped"),
            "{note}"
        );
        assert_eq!(budget.dropped_note(), None, "each drop is noted once");
    }

    #[test]
    fn a_new_transaction_is_still_held_to_the_rate() {
        let mut budget = LogBudget::default();
        let start = budget.refilled;
        let line = "x".repeat(MAX_LOG_LINE_BYTES);
        while budget.admit_at(&line, start).is_some() {}
        budget.transaction_started();
        assert!(
            budget.admit_at(&line, start).is_none(),
            "the rate allows no second transaction's worth at once"
        );
        let later = start + std::time::Duration::from_secs(1);
        assert!(
            budget.admit_at(&line, later).is_some(),
            "a second later the rate allows more"
        );
    }
}
