//! Reads that span many rows: history pages, search, statements, admin lists, the dashboard,
//! the audit log, and `verify`.

use sqlx::MySqlConnection;
use wallet_core::admin::{
    Dashboard, Period, TransactionPage, TransactionQuery, UserPage, UserQuery, WalletPage,
    WalletQuery,
};
use wallet_core::audit::AuditQuery;
use wallet_core::history::{HistoryFilter, HistoryPage};
use wallet_core::ids::WalletId;
use wallet_core::reports::{EntryRange, SearchText};
use wallet_core::store::AuditPage;
use wallet_core::verify::VerifyReport;
use wallet_core::{Error, Result, Timestamp};

fn pending() -> Error {
    Error::Internal {
        detail: "not written yet".into(),
    }
}

/// One page of a wallet's history with totals over the whole filtered range.
pub(crate) async fn history(_c: &mut MySqlConnection, _f: &HistoryFilter) -> Result<HistoryPage> {
    Err(pending())
}

/// Checks the whole ledger.
pub(crate) async fn verify(_c: &mut MySqlConnection) -> Result<VerifyReport> {
    Err(pending())
}

/// Users matching a query, newest first.
pub(crate) async fn list_users(_c: &mut MySqlConnection, _q: &UserQuery) -> Result<UserPage> {
    Err(pending())
}

/// Customer wallets matching a query, newest first.
pub(crate) async fn list_wallets(_c: &mut MySqlConnection, _q: &WalletQuery) -> Result<WalletPage> {
    Err(pending())
}

/// Transactions matching a query, newest first.
pub(crate) async fn list_transactions(
    _c: &mut MySqlConnection,
    _q: &TransactionQuery,
) -> Result<TransactionPage> {
    Err(pending())
}

/// The admin dashboard.
pub(crate) async fn dashboard(_c: &mut MySqlConnection, _p: Period) -> Result<Dashboard> {
    Err(pending())
}

/// A page of the audit log.
pub(crate) async fn audit_log(_c: &mut MySqlConnection, _q: &AuditQuery) -> Result<AuditPage> {
    Err(pending())
}

/// A wallet's entries posted in `[since, until)`.
pub(crate) async fn entries_between(
    _c: &mut MySqlConnection,
    _w: WalletId,
    _since: Timestamp,
    _until: Timestamp,
    _max: u32,
) -> Result<EntryRange> {
    Err(pending())
}

/// History lines whose description contains `needle`.
pub(crate) async fn search(
    _c: &mut MySqlConnection,
    _w: WalletId,
    _needle: &SearchText,
    _before_seq: Option<i64>,
    _limit: u32,
) -> Result<HistoryPage> {
    Err(pending())
}
