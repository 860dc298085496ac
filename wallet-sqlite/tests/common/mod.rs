//! Helpers shared by the SQLite integration tests.

use wallet_core::testkit::d;
use wallet_core::{
    Actor, DepositRequest, Error, Ledger, OpenWalletRequest, UserId, WalletId, WalletKind,
};
use wallet_sqlite::SqliteStore;

/// The customer with user id `n`.
pub(crate) fn user(n: i64) -> Actor {
    Actor::user(UserId::new(n).unwrap())
}

/// A USD wallet for each of users 1..=n, each funded with `amount`. Safe to call again on the
/// same ledger (after a crash, say): existing wallets are reused and the funding key replays.
pub(crate) async fn funded_wallets(
    ledger: &Ledger<SqliteStore>,
    n: i64,
    amount: &str,
) -> Vec<(Actor, WalletId)> {
    let mut wallets = Vec::new();
    for i in 1..=n {
        let who = user(i);
        let open = OpenWalletRequest::new(who.user, WalletKind::Personal, "USD");
        let id = match ledger.open_wallet(&who, open).await {
            Ok(w) => w.id,
            Err(Error::WalletExists { existing }) => existing.id(),
            Err(e) => panic!("opening a wallet for user {i}: {e}"),
        };
        ledger
            .deposit(
                &who,
                DepositRequest::new(id, d(amount), format!("fund-{i}")),
            )
            .await
            .unwrap();
        wallets.push((who, id));
    }
    wallets
}
