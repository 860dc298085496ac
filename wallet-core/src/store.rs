//! The storage trait every backend implements.
//!
//! A backend applies each [`Command`] atomically: it loads the state the command
//! [`needs`](Command::needs), calls [`decide`](crate::decide::decide), and writes the effects in
//! one database transaction, or nothing at all. The returned future resolves only once the
//! effects are durable. Reads never block writes.

use std::future::Future;

use crate::command::Command;
use crate::currency::CurrencyCode;
use crate::error::Result;
use crate::history::{HistoryFilter, HistoryPage};
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
}

/// A ledger store: the durable home of wallets, transactions and entries.
///
/// Implementations are cheap to clone handles, safe to call from many tasks at once.
pub trait Store: Send + Sync + 'static {
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
}
