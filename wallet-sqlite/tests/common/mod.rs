//! Helpers shared by the SQLite integration tests.

use wallet_core::identity::{KycPolicy, Username};
use wallet_core::store::{Login, Store};
use wallet_core::testkit::{d, fast_auth, registration};
use wallet_core::{
    Actor, Config, DepositRequest, Error, Ledger, OpenWalletRequest, WalletId, WalletKind,
};
use wallet_sqlite::SqliteStore;

/// A ledger over `store` with cheap password hashing, where unverified users may move money
/// (these tests are about storage, not KYC).
pub(crate) async fn ledger(store: SqliteStore) -> Ledger<SqliteStore> {
    let config = Config::default()
        .with_kyc_policy(KycPolicy {
            top_up: true,
            send: true,
            withdraw: true,
        })
        .with_default_limits(wallet_core::testkit::unlimited())
        .unwrap();
    Ledger::new(store, config)
        .await
        .unwrap()
        .with_auth(fast_auth(), None)
        .unwrap()
}

/// The customer `user{n}`, registered now or found from an earlier run on the same file.
pub(crate) async fn user(ledger: &Ledger<SqliteStore>, n: i64) -> Actor {
    let name = format!("user{n}");
    match ledger.register(registration(&name)).await {
        Ok(u) => Actor::new(u.id, u.role),
        Err(Error::UserExists { .. }) => {
            let login = Login::Username(Username::new(&name).unwrap());
            let u = ledger.store().user_by_login(login).await.unwrap().unwrap();
            Actor::new(u.id, u.role)
        }
        Err(e) => panic!("registering {name}: {e}"),
    }
}

/// A USD wallet for each of users 1..=n, each funded with `amount`. Safe to call again on the
/// same ledger (after a crash, say): existing users and wallets are reused and the funding key
/// replays.
pub(crate) async fn funded_wallets(
    ledger: &Ledger<SqliteStore>,
    n: i64,
    amount: &str,
) -> Vec<(Actor, WalletId)> {
    let mut wallets = Vec::new();
    for i in 1..=n {
        let who = user(ledger, i).await;
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
