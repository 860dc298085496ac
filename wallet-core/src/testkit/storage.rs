//! Helpers for backends' own storage tests (concurrency, crashes, restarts): a ledger on a
//! given store with cheap hashing and no KYC or limit hurdles, and funded customers that can
//! be found again on a store reopened after a crash.

use crate::actor::Actor;
use crate::config::Config;
use crate::error::Error;
use crate::identity::{KycPolicy, Username};
use crate::ids::WalletId;
use crate::ledger::{DepositRequest, Ledger, OpenWalletRequest};
use crate::store::{Login, Store};
use crate::wallet::WalletKind;

use super::{d, fast_auth, registration, unlimited};

/// A ledger over `store` with cheap password hashing, where unverified users may move money
/// and limits are out of the way (these tests are about storage, not rules).
pub async fn ledger<S: Store + Clone>(store: S) -> Ledger<S> {
    let config = Config::default()
        .with_kyc_policy(KycPolicy {
            top_up: true,
            send: true,
            withdraw: true,
        })
        .with_default_limits(unlimited())
        .unwrap();
    Ledger::new(store, config)
        .await
        .unwrap()
        .with_auth(fast_auth(), None)
        .unwrap()
}

/// The customer `user{n}`, registered now or found from an earlier run on the same store.
pub async fn user<S: Store + Clone>(ledger: &Ledger<S>, n: i64) -> Actor {
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
/// same store (after a crash, say): existing users and wallets are reused and the funding key
/// replays.
pub async fn funded_wallets<S: Store + Clone>(
    ledger: &Ledger<S>,
    n: i64,
    amount: &str,
) -> Vec<(Actor, WalletId)> {
    funded_wallets_from(ledger, 1, n, amount).await
}

/// As [`funded_wallets`], for users `first..first + n`: tests that want fresh wallets on a
/// store that has some already.
pub async fn funded_wallets_from<S: Store + Clone>(
    ledger: &Ledger<S>,
    first: i64,
    n: i64,
    amount: &str,
) -> Vec<(Actor, WalletId)> {
    let mut wallets = Vec::new();
    for i in first..first + n {
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
