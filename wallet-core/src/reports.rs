//! Statements, CSV export, description search, spending analytics and point-in-time balances.
//!
//! Stores return raw ranges of a wallet's entries; the shaping (running balances, CSV, buckets
//! in the configured time zone) happens here, once, for every backend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::calendar::{Granularity, TimeZone};
use crate::csv::{Cell, push_row_cells};
use crate::error::{Error, Result};
use crate::history::HistoryLine;
use crate::ids::WalletNumber;
use crate::money::Money;
use crate::time::Timestamp;
use crate::transaction::TransactionKind;

/// Most lines one statement holds.
pub const STATEMENT_LINES_MAX: u32 = 10_000;
/// Most entries one analytics report reads.
pub const ANALYTICS_ENTRIES_MAX: u32 = 100_000;
/// Most entries one search page scans before it returns what it found, with a cursor.
pub const SEARCH_SCAN_MAX: u32 = 20_000;
/// Longest search text, in characters.
pub const SEARCH_CHARS_MAX: usize = 100;

/// A wallet's entries over a time range, as a store returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRange {
    /// The balance before the first entry of the range (minor units).
    pub opening_minor: i64,
    /// The entries, oldest first. Here a line's `created_at` is when it was posted (a hold
    /// captured later is posted at its capture), the time that places it in the range.
    pub lines: Vec<HistoryLine>,
    /// True when the range held more than the store was asked for.
    pub truncated: bool,
}

/// Text to look for in descriptions: 1 to 100 characters, matched case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(String);

impl SearchText {
    /// Validates search text (kept in lower case).
    pub fn new(text: &str) -> Result<Self> {
        let count = text.chars().count();
        if count == 0 || count > SEARCH_CHARS_MAX || text.chars().any(char::is_control) {
            return Err(Error::InvalidQuery {
                reason: "search text is 1 to 100 characters without control characters",
            });
        }
        Ok(SearchText(text.to_lowercase()))
    }

    /// Whether `description` contains this text, ignoring case.
    pub fn matches(&self, description: &str) -> bool {
        description.to_lowercase().contains(&self.0)
    }
}

/// One statement line: an entry with the running balance after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    /// The entry.
    #[serde(flatten)]
    pub line: HistoryLine,
}

/// A wallet statement for a date range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// The wallet.
    pub wallet: WalletNumber,
    /// Start of the range (inclusive).
    pub since: Timestamp,
    /// End of the range (exclusive).
    pub until: Timestamp,
    /// Balance at `since`.
    pub opening: Money,
    /// Every entry in the range, oldest first; each carries the balance after it.
    pub lines: Vec<HistoryLine>,
    /// Money in over the range.
    pub credits: Money,
    /// Money out over the range (positive).
    pub debits: Money,
    /// Balance at `until`.
    pub closing: Money,
}

impl Statement {
    /// Builds a statement from a store's range; refuses a truncated one.
    pub fn from_range(
        wallet: WalletNumber,
        since: Timestamp,
        until: Timestamp,
        currency: crate::currency::Currency,
        range: EntryRange,
    ) -> Result<Self> {
        if range.truncated {
            return Err(Error::StatementTooLarge {
                max: STATEMENT_LINES_MAX,
            });
        }
        let (mut credits, mut debits) = (0i64, 0i64);
        let mut balance = range.opening_minor;
        for l in &range.lines {
            let a = l.amount.minor();
            if a > 0 {
                credits = credits.checked_add(a).ok_or(Error::AmountOverflow)?;
            } else {
                debits = debits.checked_sub(a).ok_or(Error::AmountOverflow)?;
            }
            balance = balance.checked_add(a).ok_or(Error::AmountOverflow)?;
            if balance != l.balance_after.minor() {
                return Err(Error::corrupt(format!(
                    "statement line {} does not follow from the one before",
                    l.reference
                )));
            }
        }
        Ok(Statement {
            wallet,
            since,
            until,
            opening: Money::from_minor(range.opening_minor, currency),
            lines: range.lines,
            credits: Money::from_minor(credits, currency),
            debits: Money::from_minor(debits, currency),
            closing: Money::from_minor(balance, currency),
        })
    }

    /// The statement as CSV (RFC 4180, CRLF line ends): a header, an opening row, one row per
    /// line, a closing row. Text cells are neutralized against spreadsheet formulas.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let header = [
            "date",
            "reference",
            "kind",
            "status",
            "description",
            "amount",
            "balance",
            "currency",
        ];
        push_row_cells(&mut out, &header.map(Cell::Text));
        let currency = self.opening.currency().code();
        let opening = self.opening.amount().to_string();
        push_row_cells(
            &mut out,
            &[
                Cell::Text(&self.since.to_string()),
                Cell::Text(""),
                Cell::Text("OPENING"),
                Cell::Text(""),
                Cell::Text(""),
                Cell::Text(""),
                Cell::Number(&opening),
                Cell::Text(currency.as_str()),
            ],
        );
        for l in &self.lines {
            let amount = l.amount.amount().to_string();
            let balance = l.balance_after.amount().to_string();
            push_row_cells(
                &mut out,
                &[
                    Cell::Text(&l.created_at.to_string()),
                    Cell::Text(&l.reference.to_string()),
                    Cell::Text(l.kind.as_str()),
                    Cell::Text(l.status.as_str()),
                    Cell::Text(l.description.as_ref().map_or("", |d| d.as_str())),
                    Cell::Number(&amount),
                    Cell::Number(&balance),
                    Cell::Text(currency.as_str()),
                ],
            );
        }
        let closing = self.closing.amount().to_string();
        push_row_cells(
            &mut out,
            &[
                Cell::Text(&self.until.to_string()),
                Cell::Text(""),
                Cell::Text("CLOSING"),
                Cell::Text(""),
                Cell::Text(""),
                Cell::Text(""),
                Cell::Number(&closing),
                Cell::Text(currency.as_str()),
            ],
        );
        out
    }
}

/// Totals of one kind of transaction in one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendingBucket {
    /// The period's label in the configured time zone (`2026-11-24` or `2026-11`).
    pub period: String,
    /// When the period starts.
    pub start: Timestamp,
    /// The kind of transaction.
    pub kind: TransactionKind,
    /// Money in.
    pub credits: Money,
    /// Money out (positive).
    pub debits: Money,
    /// How many entries.
    pub count: u64,
}

/// Groups a range's entries by period (in `zone`) and kind, in time order then kind order.
pub fn analytics(
    range: &EntryRange,
    zone: &TimeZone,
    granularity: Granularity,
    currency: crate::currency::Currency,
) -> Result<Vec<SpendingBucket>> {
    if range.truncated {
        return Err(Error::InvalidQuery {
            reason: "the range holds more than 100,000 entries: narrow it",
        });
    }
    let mut buckets: BTreeMap<(i64, TransactionKind), (String, i64, i64, u64)> = BTreeMap::new();
    for l in &range.lines {
        let start = zone.period_start(l.created_at, granularity)?;
        let key = (start.as_micros(), l.kind);
        let (_, credits, debits, count) = match buckets.entry(key) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert((zone.period_label(start, granularity)?, 0, 0, 0))
            }
        };
        let a = l.amount.minor();
        if a > 0 {
            *credits = credits.checked_add(a).ok_or(Error::AmountOverflow)?;
        } else {
            *debits = debits.checked_sub(a).ok_or(Error::AmountOverflow)?;
        }
        *count += 1;
    }
    Ok(buckets
        .into_iter()
        .map(
            |((start, kind), (period, credits, debits, count))| SpendingBucket {
                period,
                start: Timestamp::from_micros(start),
                kind,
                credits: Money::from_minor(credits, currency),
                debits: Money::from_minor(debits, currency),
                count,
            },
        )
        .collect())
}
