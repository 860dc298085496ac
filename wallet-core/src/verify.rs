//! `verify()`: recompute every balance from entries and prove the ledger is consistent.
//!
//! The checks live here, once; a backend streams its rows through a [`Verifier`] in two passes
//! and gets a [`VerifyReport`]. Memory stays bounded however large the ledger is.
//!
//! Pass 1 walks every account in id order, each followed by its entries in `seq` order, and
//! checks each account's chain: sequence numbers 1, 2, 3, … without gaps; each balance equals
//! the previous one plus the entry's amount; the running debit total likewise; customer wallets
//! never negative; holds within the final balance. It also sums final balances per currency.
//!
//! Pass 2 walks every transaction in id order, each followed by its entries, and checks that
//! completed transactions have entries summing to zero per currency, in the transaction's
//! currency, crediting exactly the transaction's amount; and that others have no entries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::currency::CurrencyCode;
use crate::ids::{TransactionId, WalletId};
use crate::transaction::TransactionStatus;
use crate::wallet::{AccountKind, WalletRecord};

/// Most discrepancies a report lists (the total count is always exact).
pub const DISCREPANCIES_LISTED_MAX: usize = 100;

/// One thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Discrepancy {
    /// An entry does not follow from the one before it.
    ChainBroken {
        /// The account.
        wallet: WalletId,
        /// The entry's sequence number.
        seq: i64,
        /// What did not add up.
        detail: String,
    },
    /// A customer wallet went below zero.
    NegativeBalance {
        /// The wallet.
        wallet: WalletId,
        /// The entry after which it was negative.
        seq: i64,
        /// The balance, minor units.
        balance_minor: i64,
    },
    /// Held money is negative or exceeds the balance.
    HeldOutOfRange {
        /// The wallet.
        wallet: WalletId,
        /// Held, minor units.
        held_minor: i64,
        /// Balance, minor units.
        balance_minor: i64,
    },
    /// An entry belongs to an account that does not exist, or arrived out of order.
    OrphanEntry {
        /// The account id the entry names.
        wallet: WalletId,
        /// The entry's sequence number.
        seq: i64,
    },
    /// A transaction's entries do not sum to zero in some currency.
    Unbalanced {
        /// The transaction.
        transaction: TransactionId,
        /// The currency.
        currency: CurrencyCode,
        /// The sum, minor units.
        sum_minor: i128,
    },
    /// A transaction's entries do not match its amount, currency or status.
    TransactionMismatch {
        /// The transaction.
        transaction: TransactionId,
        /// What is wrong.
        detail: String,
    },
    /// Entries in pass 1 and legs in pass 2 differ in number: some entry has no transaction.
    EntryCountMismatch {
        /// Entries seen walking accounts.
        by_account: u64,
        /// Entries seen walking transactions.
        by_transaction: u64,
    },
    /// A wallet's held amount differs from the sum of its open holds.
    HeldMismatch {
        /// The wallet.
        wallet: WalletId,
        /// What the wallet says it holds, minor units.
        held_minor: i64,
        /// What its open holds reserve, minor units.
        holds_minor: i64,
    },
    /// All balances of a currency, system accounts included, do not sum to zero.
    CurrencyNotZero {
        /// The currency.
        currency: CurrencyCode,
        /// The sum, minor units.
        sum_minor: i128,
    },
}

/// The result of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Accounts checked (customer wallets and system accounts).
    pub accounts: u64,
    /// Transactions checked.
    pub transactions: u64,
    /// Entries checked.
    pub entries: u64,
    /// Sum of customer wallet balances per currency (minor units): the money held for users.
    pub customer_balances: BTreeMap<CurrencyCode, i128>,
    /// What was wrong (at most [`DISCREPANCIES_LISTED_MAX`]).
    pub discrepancies: Vec<Discrepancy>,
    /// How many discrepancies there were in all.
    pub discrepancy_count: u64,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.discrepancy_count == 0
    }
}

/// An entry as pass 1 sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRow {
    /// Account.
    pub wallet: WalletId,
    /// Sequence number in the account.
    pub seq: i64,
    /// Signed amount, minor units.
    pub amount_minor: i64,
    /// Stored balance after it.
    pub balance_after_minor: i64,
    /// Stored running debits after it.
    pub debits_after_minor: i64,
}

/// A transaction as pass 2 sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionRow {
    /// Id.
    pub id: TransactionId,
    /// Status.
    pub status: TransactionStatus,
    /// Amount, minor units.
    pub amount_minor: i64,
    /// Refunded so far, minor units.
    pub refunded_minor: i64,
    /// Currency.
    pub currency: CurrencyCode,
    /// Whether it is an exchange (whose entries are in two currencies).
    pub exchange: bool,
}

/// A leg as pass 2 sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegRow {
    /// The transaction it belongs to.
    pub transaction: TransactionId,
    /// Account.
    pub wallet: WalletId,
    /// Currency of the account.
    pub currency: CurrencyCode,
    /// Signed amount, minor units.
    pub amount_minor: i64,
}

struct AccountCursor {
    id: WalletId,
    customer: bool,
    currency: CurrencyCode,
    held_minor: i64,
    seq: i64,
    balance_minor: i64,
    debits_minor: i64,
}

struct TransactionCursor {
    row: TransactionRow,
    sums: Vec<(CurrencyCode, i128)>,
    credits_minor: i128,
    legs: u64,
}

/// Streams a ledger's rows and collects what is wrong. See the module docs for the order.
#[derive(Default)]
pub struct Verifier {
    report: VerifyReport,
    currency_sums: BTreeMap<CurrencyCode, i128>,
    account: Option<AccountCursor>,
    transaction: Option<TransactionCursor>,
    legs: u64,
}

impl Verifier {
    /// A verifier with nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn flag(&mut self, d: Discrepancy) {
        self.report.discrepancy_count += 1;
        if self.report.discrepancies.len() < DISCREPANCIES_LISTED_MAX {
            self.report.discrepancies.push(d);
        }
    }

    /// Pass 1: the next account (ids ascending). Its entries follow.
    pub fn account(&mut self, record: &WalletRecord) {
        self.close_account();
        self.report.accounts += 1;
        self.account = Some(AccountCursor {
            id: record.id,
            customer: matches!(record.kind, AccountKind::Wallet(_)),
            currency: record.currency.code(),
            held_minor: record.held_minor,
            seq: 0,
            balance_minor: 0,
            debits_minor: 0,
        });
    }

    /// Pass 1: the next entry of the current account (seq ascending).
    pub fn entry(&mut self, e: &EntryRow) {
        self.report.entries += 1;
        let Some(acc) = self.account.as_mut().filter(|a| a.id == e.wallet) else {
            self.flag(Discrepancy::OrphanEntry {
                wallet: e.wallet,
                seq: e.seq,
            });
            return;
        };
        let expected_seq = acc.seq + 1;
        let expected_balance = i128::from(acc.balance_minor) + i128::from(e.amount_minor);
        let expected_debits = if e.amount_minor < 0 {
            acc.debits_minor.wrapping_add(e.amount_minor.wrapping_neg())
        } else {
            acc.debits_minor
        };
        let customer = acc.customer;
        acc.seq = e.seq;
        acc.balance_minor = e.balance_after_minor;
        acc.debits_minor = e.debits_after_minor;
        let mut problems = Vec::new();
        if e.seq != expected_seq {
            problems.push(format!("sequence {} follows {}", e.seq, expected_seq - 1));
        }
        if i128::from(e.balance_after_minor) != expected_balance {
            problems.push(format!(
                "balance after is {} but previous balance plus amount is {}",
                e.balance_after_minor, expected_balance
            ));
        }
        if e.debits_after_minor != expected_debits {
            problems.push(format!(
                "running debits are {} but should be {}",
                e.debits_after_minor, expected_debits
            ));
        }
        let detail = problems.join("; ");
        if !detail.is_empty() {
            self.flag(Discrepancy::ChainBroken {
                wallet: e.wallet,
                seq: e.seq,
                detail,
            });
        }
        if customer && e.balance_after_minor < 0 {
            self.flag(Discrepancy::NegativeBalance {
                wallet: e.wallet,
                seq: e.seq,
                balance_minor: e.balance_after_minor,
            });
        }
    }

    fn close_account(&mut self) {
        let Some(acc) = self.account.take() else {
            return;
        };
        *self.currency_sums.entry(acc.currency).or_default() += i128::from(acc.balance_minor);
        if acc.customer {
            *self
                .report
                .customer_balances
                .entry(acc.currency)
                .or_default() += i128::from(acc.balance_minor);
            if acc.held_minor < 0 || acc.held_minor > acc.balance_minor {
                self.flag(Discrepancy::HeldOutOfRange {
                    wallet: acc.id,
                    held_minor: acc.held_minor,
                    balance_minor: acc.balance_minor,
                });
            }
        }
    }

    /// Pass 2: the next transaction (ids ascending). Its legs follow.
    pub fn transaction(&mut self, row: &TransactionRow) {
        self.close_account();
        self.close_transaction();
        self.report.transactions += 1;
        self.transaction = Some(TransactionCursor {
            row: *row,
            sums: Vec::new(),
            credits_minor: 0,
            legs: 0,
        });
    }

    /// Pass 2: the next leg of the current transaction.
    pub fn leg(&mut self, leg: &LegRow) {
        self.legs += 1;
        let Some(t) = self
            .transaction
            .as_mut()
            .filter(|t| t.row.id == leg.transaction)
        else {
            self.flag(Discrepancy::TransactionMismatch {
                transaction: leg.transaction,
                detail: "entry of an unknown transaction".into(),
            });
            return;
        };
        t.legs += 1;
        if leg.amount_minor > 0 && leg.currency == t.row.currency {
            t.credits_minor += i128::from(leg.amount_minor);
        }
        match t.sums.iter_mut().find(|(c, _)| *c == leg.currency) {
            Some((_, sum)) => *sum += i128::from(leg.amount_minor),
            None => t.sums.push((leg.currency, i128::from(leg.amount_minor))),
        }
    }

    fn close_transaction(&mut self) {
        let Some(t) = self.transaction.take() else {
            return;
        };
        let id = t.row.id;
        let posted = t.row.status.is_posted();
        let mut problems = Vec::new();
        if posted && t.legs < 2 {
            problems.push(format!(
                "{} transaction with {} entries",
                t.row.status, t.legs
            ));
        }
        if !posted && t.legs > 0 {
            problems.push(format!("{} transaction with entries", t.row.status));
        }
        // Credits in the transaction's currency are its amount, plus any fee collected.
        if posted && t.credits_minor < i128::from(t.row.amount_minor) {
            problems.push(format!(
                "credits {} are less than the amount {}",
                t.credits_minor, t.row.amount_minor
            ));
        }
        let currencies = t.sums.iter().filter(|(c, _)| *c != t.row.currency).count();
        if currencies > usize::from(t.row.exchange) {
            problems.push("entry in another currency".into());
        }
        let r = t.row.refunded_minor;
        let refund_status = match t.row.status {
            TransactionStatus::Refunded => r == t.row.amount_minor,
            TransactionStatus::PartiallyRefunded => r > 0 && r < t.row.amount_minor,
            _ => r == 0,
        };
        if !refund_status {
            problems.push(format!(
                "{} transaction with {} of {} refunded",
                t.row.status, r, t.row.amount_minor
            ));
        }
        for detail in problems {
            self.flag(Discrepancy::TransactionMismatch {
                transaction: id,
                detail,
            });
        }
        for (currency, sum_minor) in t.sums {
            if sum_minor != 0 {
                self.flag(Discrepancy::Unbalanced {
                    transaction: id,
                    currency,
                    sum_minor,
                });
            }
        }
    }

    /// Pass 3: what the open holds of a wallet reserve, against what the wallet says it holds.
    /// The backend feeds every wallet whose either figure is not zero.
    pub fn holds(&mut self, wallet: WalletId, held_minor: i64, holds_minor: i64) {
        if held_minor != holds_minor {
            self.flag(Discrepancy::HeldMismatch {
                wallet,
                held_minor,
                holds_minor,
            });
        }
    }

    /// A backend that keeps each account's latest entry (its head) alongside the account found
    /// the one kept for `wallet` is not its latest entry (`seq`: the one kept).
    pub fn stored_head(&mut self, wallet: WalletId, seq: i64) {
        self.flag(Discrepancy::ChainBroken {
            wallet,
            seq,
            detail: "the head stored with the account is not its latest entry".into(),
        });
    }

    /// Ends both passes and returns the report.
    pub fn finish(mut self) -> VerifyReport {
        self.close_account();
        self.close_transaction();
        if self.legs != self.report.entries {
            self.flag(Discrepancy::EntryCountMismatch {
                by_account: self.report.entries,
                by_transaction: self.legs,
            });
        }
        let sums = std::mem::take(&mut self.currency_sums);
        for (currency, sum_minor) in sums {
            if sum_minor != 0 {
                self.flag(Discrepancy::CurrencyNotZero {
                    currency,
                    sum_minor,
                });
            }
        }
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::currency::Currency;
    use crate::ids::UserId;
    use crate::time::Timestamp;
    use crate::wallet::{SystemAccount, WalletKind, WalletStatus};

    fn usd() -> Currency {
        Currency::iso("USD").unwrap()
    }

    fn record(id: i64, kind: AccountKind) -> WalletRecord {
        WalletRecord {
            id: WalletId::new(id).unwrap(),
            owner: match kind {
                AccountKind::Wallet(_) => Some(UserId::new(1).unwrap()),
                AccountKind::System(_) => None,
            },
            kind,
            currency: usd(),
            status: WalletStatus::Active,
            held_minor: 0,
            created_at: Timestamp::EPOCH,
            updated_at: Timestamp::EPOCH,
        }
    }

    fn entry(w: i64, seq: i64, amount: i64, balance: i64, debits: i64) -> EntryRow {
        EntryRow {
            wallet: WalletId::new(w).unwrap(),
            seq,
            amount_minor: amount,
            balance_after_minor: balance,
            debits_after_minor: debits,
        }
    }

    fn txn(id: i64, amount: i64) -> TransactionRow {
        TransactionRow {
            id: TransactionId::new(id).unwrap(),
            status: TransactionStatus::Completed,
            amount_minor: amount,
            refunded_minor: 0,
            currency: usd().code(),
            exchange: false,
        }
    }

    fn leg(t: i64, w: i64, amount: i64) -> LegRow {
        LegRow {
            transaction: TransactionId::new(t).unwrap(),
            wallet: WalletId::new(w).unwrap(),
            currency: usd().code(),
            amount_minor: amount,
        }
    }

    /// A top-up of 100 from the external account into wallet 2.
    fn healthy() -> Verifier {
        let mut v = Verifier::new();
        v.account(&record(1, AccountKind::System(SystemAccount::External)));
        v.entry(&entry(1, 1, -100, -100, 100));
        v.account(&record(2, AccountKind::Wallet(WalletKind::Personal)));
        v.entry(&entry(2, 1, 100, 100, 0));
        v.transaction(&txn(1, 100));
        v.leg(&leg(1, 1, -100));
        v.leg(&leg(1, 2, 100));
        v
    }

    #[test]
    fn healthy_ledger_passes() {
        let r = healthy().finish();
        assert!(r.is_ok(), "{r:?}");
        assert_eq!((r.accounts, r.transactions, r.entries), (2, 1, 2));
        assert_eq!(r.customer_balances[&usd().code()], 100);
    }

    fn kinds(r: &VerifyReport) -> Vec<&'static str> {
        r.discrepancies
            .iter()
            .map(|d| match d {
                Discrepancy::ChainBroken { .. } => "chain",
                Discrepancy::NegativeBalance { .. } => "negative",
                Discrepancy::HeldOutOfRange { .. } => "held",
                Discrepancy::OrphanEntry { .. } => "orphan",
                Discrepancy::Unbalanced { .. } => "unbalanced",
                Discrepancy::TransactionMismatch { .. } => "mismatch",
                Discrepancy::EntryCountMismatch { .. } => "count",
                Discrepancy::CurrencyNotZero { .. } => "currency",
                Discrepancy::HeldMismatch { .. } => "held_mismatch",
            })
            .collect()
    }

    #[test]
    fn detects_holds_and_refunds_out_of_line() {
        let mut v = healthy();
        v.holds(WalletId::new(2).unwrap(), 30, 20);
        // A refunded status must match the refunded amount; entries stay in one currency.
        v.transaction(&TransactionRow {
            status: TransactionStatus::Refunded,
            refunded_minor: 40,
            ..txn(2, 100)
        });
        v.transaction(&TransactionRow {
            status: TransactionStatus::PartiallyRefunded,
            refunded_minor: 40,
            ..txn(3, 100)
        });
        let mut eur_leg = leg(4, 3, 5);
        eur_leg.currency = Currency::iso("EUR").unwrap().code();
        v.transaction(&txn(4, 5));
        v.leg(&leg(4, 1, -5));
        v.leg(&leg(4, 2, 5));
        v.leg(&eur_leg);
        v.leg(&leg(4, 1, 0));
        let r = v.finish();
        let details: Vec<String> = r
            .discrepancies
            .iter()
            .filter_map(|d| match d {
                Discrepancy::TransactionMismatch {
                    transaction,
                    detail,
                } => Some(format!("{transaction}: {detail}")),
                _ => None,
            })
            .collect();
        assert_eq!(
            details,
            [
                "2: REFUNDED transaction with 0 entries",
                "2: credits 0 are less than the amount 100",
                "2: REFUNDED transaction with 40 of 100 refunded",
                "3: PARTIALLY_REFUNDED transaction with 0 entries",
                "3: credits 0 are less than the amount 100",
                "4: entry in another currency",
            ]
        );
        assert_eq!(
            kinds(&r)
                .iter()
                .filter(|k| **k != "mismatch")
                .collect::<Vec<_>>(),
            [&"held_mismatch", &"unbalanced", &"count"]
        );
        // The same legs are fine in an exchange.
        let mut v = Verifier::new();
        v.transaction(&TransactionRow {
            exchange: true,
            ..txn(1, 5)
        });
        let mut eur_out = leg(1, 3, -4);
        eur_out.currency = Currency::iso("EUR").unwrap().code();
        let mut eur_in = leg(1, 4, 4);
        eur_in.currency = eur_out.currency;
        for l in [leg(1, 1, -5), leg(1, 2, 5), eur_out, eur_in] {
            v.leg(&l);
        }
        let r = v.finish();
        assert_eq!(
            kinds(&r),
            ["count"],
            "only the entry count differs: no accounts fed"
        );
    }

    #[test]
    fn detects_a_tampered_balance() {
        let mut v = Verifier::new();
        v.account(&record(1, AccountKind::System(SystemAccount::External)));
        v.entry(&entry(1, 1, -100, -100, 100));
        v.account(&record(2, AccountKind::Wallet(WalletKind::Personal)));
        v.entry(&entry(2, 1, 100, 150, 0));
        v.transaction(&txn(1, 100));
        v.leg(&leg(1, 1, -100));
        v.leg(&leg(1, 2, 100));
        let r = v.finish();
        assert_eq!(kinds(&r), vec!["chain", "currency"]);
    }

    #[test]
    fn detects_gaps_negative_and_bad_debits() {
        let mut v = Verifier::new();
        v.account(&record(2, AccountKind::Wallet(WalletKind::Personal)));
        v.entry(&entry(2, 2, -5, -5, 5));
        v.entry(&entry(2, 3, 5, 0, 0));
        let r = v.finish();
        assert_eq!(kinds(&r), vec!["chain", "negative", "chain", "count"]);
    }

    #[test]
    fn detects_unbalanced_and_mismatched_transactions() {
        let mut v = healthy();
        v.transaction(&txn(2, 50));
        v.leg(&leg(2, 2, 50));
        v.transaction(&txn(3, 10));
        let r = v.finish();
        assert_eq!(
            kinds(&r),
            vec!["mismatch", "unbalanced", "mismatch", "mismatch", "count"]
        );
    }

    #[test]
    fn detects_orphans_and_held_out_of_range() {
        let mut v = Verifier::new();
        let mut w = record(2, AccountKind::Wallet(WalletKind::Personal));
        w.held_minor = 1;
        v.account(&w);
        v.entry(&entry(3, 1, 1, 1, 0));
        let r = v.finish();
        assert_eq!(kinds(&r), vec!["orphan", "held", "count"]);
    }

    #[test]
    fn listing_is_bounded_but_count_exact() {
        let mut v = Verifier::new();
        v.account(&record(2, AccountKind::Wallet(WalletKind::Personal)));
        for seq in 1..=500 {
            v.entry(&entry(2, seq * 2, 0, 0, 0));
        }
        let r = v.finish();
        assert_eq!(r.discrepancies.len(), DISCREPANCIES_LISTED_MAX);
        assert_eq!(r.discrepancy_count, 501);
    }
}
