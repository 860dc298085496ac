//! The storage trait every backend implements.
//!
//! A backend applies each [`Command`] atomically: it loads the state the command
//! [`needs`](Command::needs), calls [`decide`](crate::decide::decide), and writes the effects in
//! one database transaction, or nothing at all. The returned future resolves only once the
//! effects are durable. Reads never block writes.

use std::future::Future;

use crate::admin::{
    Dashboard, Period, TransactionPage, TransactionQuery, UserPage, UserQuery, WalletPage,
    WalletQuery,
};
use crate::audit::{AuditEntry, AuditQuery};
use crate::command::Command;
use crate::currency::CurrencyCode;
use crate::error::Result;
use crate::health::Health;
use crate::history::{HistoryFilter, HistoryPage};
use crate::identity::{Email, UserRecord, Username};
use crate::ids::{TransactionId, UserId, WalletId};
use crate::transaction::{Receipt, Transaction};
use crate::verify::VerifyReport;
use crate::wallet::WalletState;

/// Most wallets [`Store::wallets_of`] returns for one owner.
pub const WALLETS_PER_OWNER_MAX: u32 = 1000;

/// What a write command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The wallet opened or changed.
    Wallet(WalletState),
    /// The money movement posted (or replayed).
    Receipt(Receipt),
    /// The user created or changed.
    User(UserRecord),
    /// The payment method added or changed.
    PaymentMethod(crate::payment_method::PaymentMethod),
    /// Done; nothing to return (an audit record, a deletion).
    Done,
    /// The merchant registered.
    Merchant(crate::decide::MerchantRecord),
    /// The payment link created or changed.
    Link(crate::links::PaymentLink),
    /// How many things changed (notifications marked read, pending transactions expired).
    Count(u64),
    /// The outcomes of a batch's operations, in order.
    Batch(Vec<Outcome>),
}

/// How a user names themselves at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// By username.
    Username(Username),
    /// By e-mail address.
    Email(Email),
}

/// A page of the audit log; `next` is the id to pass as `before`.
pub type AuditPage = crate::admin::Page<AuditEntry, i64>;

/// A ledger store: the durable home of wallets, transactions and entries.
///
/// Implementations are cheap to clone handles, safe to call from many tasks at once.
pub trait Store: Send + Sync + 'static {
    /// The store's health (see [`crate::health`]): one tiny query and what the store keeps in
    /// memory, never a table scan. An unreachable or closed store answers with
    /// `reachable: false` rather than failing.
    fn health(&self) -> impl Future<Output = Health> + Send;

    /// Applies one command atomically and durably.
    fn execute(&self, command: Command) -> impl Future<Output = Result<Outcome>> + Send;

    /// A wallet or system account with its current balance.
    fn wallet(&self, id: WalletId) -> impl Future<Output = Result<Option<WalletState>>> + Send;

    /// A user's wallets, ordered by id (at most [`WALLETS_PER_OWNER_MAX`]).
    fn wallets_of(&self, owner: UserId) -> impl Future<Output = Result<Vec<WalletState>>> + Send;

    /// A transaction with its legs (balances included: the service redacts them).
    fn transaction(
        &self,
        id: TransactionId,
    ) -> impl Future<Output = Result<Option<Transaction>>> + Send;

    /// One page of a wallet's history. The wallet must exist.
    fn history(&self, filter: HistoryFilter) -> impl Future<Output = Result<HistoryPage>> + Send;

    /// Checks the whole ledger (see [`crate::verify`]), on a consistent snapshot.
    fn verify(&self) -> impl Future<Output = Result<VerifyReport>> + Send;

    /// Every currency the store has recorded, with its exponent.
    fn currencies(&self) -> impl Future<Output = Result<Vec<(CurrencyCode, u8)>>> + Send;

    /// A user by id (deleted users included).
    fn user(&self, id: UserId) -> impl Future<Output = Result<Option<UserRecord>>> + Send;

    /// An undeleted user by username or e-mail address.
    fn user_by_login(
        &self,
        login: Login,
    ) -> impl Future<Output = Result<Option<UserRecord>>> + Send;

    /// Users matching `query`, newest first.
    fn users(&self, query: UserQuery) -> impl Future<Output = Result<UserPage>> + Send;

    /// Customer wallets matching `query`, newest first.
    fn list_wallets(&self, query: WalletQuery) -> impl Future<Output = Result<WalletPage>> + Send;

    /// Transactions matching `query`, newest first.
    fn list_transactions(
        &self,
        query: TransactionQuery,
    ) -> impl Future<Output = Result<TransactionPage>> + Send;

    /// The admin dashboard, with volume over `period`.
    fn dashboard(&self, period: Period) -> impl Future<Output = Result<Dashboard>> + Send;

    /// A payment method by id.
    fn payment_method(
        &self,
        id: crate::payment_method::PaymentMethodId,
    ) -> impl Future<Output = Result<Option<crate::payment_method::PaymentMethod>>> + Send;

    /// A user's payment methods, ordered by id.
    fn payment_methods_of(
        &self,
        owner: UserId,
    ) -> impl Future<Output = Result<Vec<crate::payment_method::PaymentMethod>>> + Send;

    /// Audit log entries matching `query`, newest first.
    fn audit_log(&self, query: AuditQuery) -> impl Future<Output = Result<AuditPage>> + Send;

    /// A payment link by code.
    fn link(
        &self,
        code: crate::links::LinkCode,
    ) -> impl Future<Output = Result<Option<crate::decide::LinkRecord>>> + Send;

    /// A wallet's payment links, newest first, with row ids below `before`.
    fn links_of(
        &self,
        wallet: WalletId,
        before: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<crate::decide::LinkRecord>>> + Send;

    /// A merchant by id.
    fn merchant(
        &self,
        id: crate::ids::MerchantId,
    ) -> impl Future<Output = Result<Option<crate::decide::MerchantRecord>>> + Send;

    /// A wallet's stored limits (`None`: the defaults).
    fn limits(
        &self,
        wallet: WalletId,
    ) -> impl Future<Output = Result<Option<crate::limits::Limits>>> + Send;

    /// Debits posted to a wallet since `day_start` and since `month_start`.
    fn spent(
        &self,
        wallet: WalletId,
        day_start: crate::time::Timestamp,
        month_start: crate::time::Timestamp,
    ) -> impl Future<Output = Result<crate::decide::Spend>> + Send;

    /// A user's notifications, newest first, with ids below `before`.
    fn notifications(
        &self,
        user: UserId,
        unread_only: bool,
        before: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<crate::notify::Notification>>> + Send;

    /// How many unread notifications a user has.
    fn unread_count(&self, user: UserId) -> impl Future<Output = Result<u64>> + Send;

    /// Events with ids above `after`, oldest first.
    fn events(
        &self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<crate::notify::Event>>> + Send;

    /// A wallet's entries posted in `[since, until)`, oldest first, at most `max`, with the
    /// balance before the first.
    fn entries_between(
        &self,
        wallet: WalletId,
        since: crate::time::Timestamp,
        until: crate::time::Timestamp,
        max: u32,
    ) -> impl Future<Output = Result<crate::reports::EntryRange>> + Send;

    /// History lines of a wallet whose description contains `needle` (case-insensitive),
    /// newest first, below `before_seq`; at most `limit`, scanning a bounded number of entries.
    fn search(
        &self,
        wallet: WalletId,
        needle: crate::reports::SearchText,
        before_seq: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<HistoryPage>> + Send;
}
