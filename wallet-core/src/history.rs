//! Wallet history: filtered, newest first, keyset-paginated, with totals.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{TransactionId, TransactionRef, WalletId, WalletNumber, WalletRef};
use crate::money::Money;
use crate::text::Description;
use crate::time::Timestamp;
use crate::transaction::{TransactionKind, TransactionStatus};
use crate::wallet::SystemAccount;

/// Rows per history page when the caller does not say.
pub const HISTORY_PAGE_DEFAULT: u32 = 50;
/// Most rows one history page returns.
pub const HISTORY_PAGE_MAX: u32 = 200;

/// Where the next page starts: after the entry with this sequence number of this wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HistoryCursor {
    wallet: WalletId,
    seq: i64,
}

impl HistoryCursor {
    /// The cursor that continues after entry `seq` of `wallet`.
    pub fn new(wallet: WalletId, seq: i64) -> Self {
        HistoryCursor { wallet, seq }
    }

    /// The wallet it belongs to.
    pub fn wallet(&self) -> WalletId {
        self.wallet
    }

    /// Entries strictly older than this sequence number come next.
    pub fn seq(&self) -> i64 {
        self.seq
    }
}

impl fmt::Display for HistoryCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "h1.{}.{}", self.wallet, self.seq)
    }
}

impl FromStr for HistoryCursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut parts = s
            .strip_prefix("h1.")
            .ok_or(Error::InvalidCursor)?
            .split('.');
        let parse = |p: Option<&str>| -> Result<i64> {
            let p = p.ok_or(Error::InvalidCursor)?;
            if p.is_empty() || p.len() > 19 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::InvalidCursor);
            }
            p.parse().map_err(|_| Error::InvalidCursor)
        };
        let wallet = WalletId::new(parse(parts.next())?).map_err(|_| Error::InvalidCursor)?;
        let seq = parse(parts.next())?;
        if parts.next().is_some() || seq < 1 {
            return Err(Error::InvalidCursor);
        }
        Ok(HistoryCursor { wallet, seq })
    }
}

impl Serialize for HistoryCursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HistoryCursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A history request as callers write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// The wallet.
    pub wallet: WalletRef,
    /// Only these kinds (empty: all).
    pub kinds: Vec<TransactionKind>,
    /// Only these statuses (empty: all).
    pub statuses: Vec<TransactionStatus>,
    /// Only transactions created at or after this time.
    pub since: Option<Timestamp>,
    /// Only transactions created before this time.
    pub until: Option<Timestamp>,
    /// Continue after this cursor (from the previous page's `next`).
    pub after: Option<HistoryCursor>,
    /// Rows per page, 1 to [`HISTORY_PAGE_MAX`].
    pub limit: u32,
}

impl HistoryQuery {
    /// The first page of everything in `wallet`, [`HISTORY_PAGE_DEFAULT`] rows.
    pub fn new(wallet: impl Into<WalletRef>) -> Self {
        HistoryQuery {
            wallet: wallet.into(),
            kinds: Vec::new(),
            statuses: Vec::new(),
            since: None,
            until: None,
            after: None,
            limit: HISTORY_PAGE_DEFAULT,
        }
    }

    /// Checks the query and turns it into the filter a store runs.
    pub fn to_filter(&self) -> Result<HistoryFilter> {
        let wallet = self.wallet.id();
        if self.limit == 0 || self.limit > HISTORY_PAGE_MAX {
            return Err(Error::InvalidQuery {
                reason: "page size must be between 1 and 200",
            });
        }
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            return Err(Error::InvalidQuery {
                reason: "the date range is empty",
            });
        }
        let before_seq = match self.after {
            Some(c) if c.wallet() != wallet => return Err(Error::InvalidCursor),
            Some(c) => Some(c.seq()),
            None => None,
        };
        let mut kinds = self.kinds.clone();
        kinds.sort();
        kinds.dedup();
        let mut statuses = self.statuses.clone();
        statuses.sort();
        statuses.dedup();
        // Filtering by every value is the same as not filtering (and cheaper to run).
        if kinds.len() == TransactionKind::ALL.len() {
            kinds.clear();
        }
        if statuses.len() == TransactionStatus::ALL.len() {
            statuses.clear();
        }
        Ok(HistoryFilter {
            wallet,
            kinds,
            statuses,
            since: self.since,
            until: self.until,
            before_seq,
            limit: self.limit,
        })
    }
}

/// A checked history query, as a store runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryFilter {
    /// The wallet.
    pub wallet: WalletId,
    /// Kinds to keep, sorted and distinct (empty: all).
    pub kinds: Vec<TransactionKind>,
    /// Statuses to keep, sorted and distinct (empty: all).
    pub statuses: Vec<TransactionStatus>,
    /// Inclusive lower time bound.
    pub since: Option<Timestamp>,
    /// Exclusive upper time bound.
    pub until: Option<Timestamp>,
    /// Only entries with a smaller sequence number (the cursor).
    pub before_seq: Option<i64>,
    /// Rows to return.
    pub limit: u32,
}

impl HistoryFilter {
    /// Whether kind and status filters are absent (totals can then use running sums).
    pub fn is_unfiltered(&self) -> bool {
        self.kinds.is_empty() && self.statuses.is_empty()
    }

    /// Whether a transaction of this kind, status and time matches the filter (cursor aside).
    pub fn matches(&self, kind: TransactionKind, status: TransactionStatus, at: Timestamp) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&kind))
            && (self.statuses.is_empty() || self.statuses.contains(&status))
            && self.since.is_none_or(|s| at >= s)
            && self.until.is_none_or(|u| at < u)
    }
}

/// The other side of a history line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counterparty {
    /// Another customer wallet.
    Wallet(WalletNumber),
    /// A system account (the outside world, for top-ups and withdrawals).
    System(SystemAccount),
}

/// One row of a wallet's history: one entry and its transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryLine {
    /// The transaction.
    pub transaction: TransactionId,
    /// Its reference.
    pub reference: TransactionRef,
    /// Its kind.
    pub kind: TransactionKind,
    /// Its current status.
    pub status: TransactionStatus,
    /// What it did to this wallet: positive credit, negative debit.
    pub amount: Money,
    /// This wallet's balance after it.
    pub balance_after: Money,
    /// Position in this wallet's chain.
    pub seq: i64,
    /// The transaction's description.
    pub description: Option<Description>,
    /// The other side.
    pub counterparty: Option<Counterparty>,
    /// When the transaction was created.
    pub created_at: Timestamp,
}

/// Sums over every row matching a filter (all pages, not just this one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryTotals {
    /// Money in.
    pub credits: Money,
    /// Money out (positive).
    pub debits: Money,
}

/// One page of history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// Rows, newest first.
    pub lines: Vec<HistoryLine>,
    /// Cursor for the next page; `None` on the last page.
    pub next: Option<HistoryCursor>,
    /// Totals over the whole filtered range.
    pub totals: HistoryTotals,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wid(n: i64) -> WalletId {
        WalletId::new(n).unwrap()
    }

    #[test]
    fn cursor_round_trip_and_rejections() {
        let c = HistoryCursor::new(wid(7), 42);
        assert_eq!(c.to_string().parse::<HistoryCursor>().unwrap(), c);
        for bad in [
            "",
            "h1.",
            "h1.7",
            "h1.7.0",
            "h1.0.3",
            "h2.7.3",
            "h1.7.3.1",
            "h1.-7.3",
            "h1.7.+3",
            "h1.7.99999999999999999999",
        ] {
            assert_eq!(
                bad.parse::<HistoryCursor>(),
                Err(Error::InvalidCursor),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn query_validation() {
        let mut q = HistoryQuery::new(wid(1));
        assert!(q.to_filter().is_ok());
        q.limit = 0;
        assert_eq!(q.to_filter().unwrap_err().code(), "invalid_query");
        q.limit = HISTORY_PAGE_MAX + 1;
        assert_eq!(q.to_filter().unwrap_err().code(), "invalid_query");
        q.limit = 10;
        q.since = Some(Timestamp::from_secs(10));
        q.until = Some(Timestamp::from_secs(10));
        assert_eq!(q.to_filter().unwrap_err().code(), "invalid_query");
        q.until = None;
        q.after = Some(HistoryCursor::new(wid(2), 5));
        assert_eq!(
            q.to_filter().unwrap_err(),
            Error::InvalidCursor,
            "cursor of another wallet"
        );
        q.after = Some(HistoryCursor::new(wid(1), 5));
        assert_eq!(q.to_filter().unwrap().before_seq, Some(5));
    }

    #[test]
    fn all_values_means_unfiltered() {
        let mut q = HistoryQuery::new(wid(1));
        q.kinds = TransactionKind::ALL.to_vec();
        q.kinds.push(TransactionKind::TopUp);
        assert!(q.to_filter().unwrap().is_unfiltered());
        q.kinds = vec![TransactionKind::Transfer, TransactionKind::Transfer];
        assert_eq!(
            q.to_filter().unwrap().kinds,
            vec![TransactionKind::Transfer]
        );
    }
}
