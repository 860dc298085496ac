//! Many tasks, one file: money is conserved and every acknowledged transfer exists exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use wallet_core::testkit::d;
use wallet_core::{
    Actor, DepositRequest, OpenWalletRequest, TransactionRef, TransferRequest, UserId, WalletId,
    WalletKind,
};
use wallet_sqlite::{Options, SqliteStore};

const WALLETS: usize = 100;
const TASKS: usize = 32;
const TRANSFERS_PER_TASK: usize = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_on_a_file_conserve_money() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet.db");
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    let ledger = Arc::new(common::ledger(store).await);

    let funded = common::funded_wallets(&ledger, i64::try_from(WALLETS).unwrap(), "100.00").await;
    let (owners, wallets): (Vec<Actor>, Vec<WalletId>) = funded.into_iter().unzip();

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let ledger = Arc::clone(&ledger);
        let owners = owners.clone();
        let wallets = wallets.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(t as u64);
            let mut acked: Vec<(TransactionRef, String)> = Vec::new();
            for i in 0..TRANSFERS_PER_TASK {
                let from = rng.random_range(0..WALLETS);
                let mut to = rng.random_range(0..WALLETS - 1);
                if to >= from {
                    to += 1;
                }
                let cents = rng.random_range(1..=5_000i64);
                let key = format!("t{t}-{i}");
                let req = TransferRequest::new(
                    wallets[from],
                    wallets[to],
                    wallet_core::Decimal::new(cents, 2),
                    key.clone(),
                );
                match ledger.transfer(&owners[from], req).await {
                    Ok(r) => {
                        assert!(!r.replayed);
                        acked.push((r.transaction.reference, key));
                    }
                    Err(e) => assert_eq!(e.code(), "insufficient_funds", "{e:?}"),
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(
        acked.len() > TASKS * TRANSFERS_PER_TASK / 2,
        "most transfers succeed: {}",
        acked.len()
    );

    // Reopen the file from scratch: what was acknowledged is what is there.
    let admin = Actor::new(UserId::new(9_999).unwrap(), wallet_core::Role::Admin);
    drop(ledger);
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    let ledger = common::ledger(store).await;

    let report = ledger.verify(&admin).await.unwrap();
    assert!(report.is_ok(), "{report:#?}");
    let usd = wallet_core::Currency::iso("USD").unwrap().code();
    assert_eq!(
        report.customer_balances[&usd],
        100 * 100 * WALLETS as i128,
        "money conserved"
    );
    assert_eq!(
        usize::try_from(report.transactions).unwrap(),
        WALLETS + acked.len(),
        "exactly the funding top-ups and the acknowledged transfers"
    );
    let mut seen = HashSet::new();
    for (reference, key) in &acked {
        assert!(seen.insert(*reference), "reference acknowledged twice");
        let t = ledger.transaction(&admin, *reference).await.unwrap();
        assert_eq!(t.idempotency_key.as_str(), key);
    }
    for id in &wallets {
        let w = ledger.wallet(&admin, *id).await.unwrap();
        assert!(w.balance.minor() >= 0);
    }
}

/// Two stores on one file (standing for two processes); Alice with 100.00 in her wallet and
/// Bob with an empty one, both opened through the first store.
async fn two_writers(
    path: &std::path::Path,
) -> (
    wallet_core::Ledger<SqliteStore>,
    wallet_core::Ledger<SqliteStore>,
    [Actor; 2],
    [wallet_core::Wallet; 2],
) {
    let a = common::ledger(SqliteStore::open(path, Options::default()).unwrap()).await;
    let b = common::ledger(SqliteStore::open(path, Options::default()).unwrap()).await;
    let alice = common::user(&a, 1).await;
    let bob = common::user(&a, 2).await;
    let open = |who: Actor| OpenWalletRequest::new(who.user, WalletKind::Personal, "USD");
    let wa = a.open_wallet(&alice, open(alice)).await.unwrap();
    let wb = a.open_wallet(&bob, open(bob)).await.unwrap();
    a.deposit(&alice, DepositRequest::new(wa.id, d("100"), "fund"))
        .await
        .unwrap();
    (a, b, [alice, bob], [wa, wb])
}

/// Two stores on one file stand for two processes: each writer must notice the other's commits
/// (SQLite's data_version) instead of deciding on a stale cached balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_file_never_double_spend() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, [alice, bob], [wa, wb]) = two_writers(&dir.path().join("wallet.db")).await;
    // Writer B caches Alice's wallet with 100.
    b.transfer(&alice, TransferRequest::new(wa.id, wb.id, d("1"), "b-1"))
        .await
        .unwrap();
    // Writer A spends the rest behind B's back.
    a.transfer(&alice, TransferRequest::new(wa.id, wb.id, d("99"), "a-1"))
        .await
        .unwrap();
    // B must see the new balance (zero), not its cached 99.
    let err = b
        .transfer(&alice, TransferRequest::new(wa.id, wb.id, d("50"), "b-2"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "insufficient_funds");
    // And an idempotency key used through A is known to B.
    let replay = b
        .transfer(&alice, TransferRequest::new(wa.id, wb.id, d("99"), "a-1"))
        .await
        .unwrap();
    assert!(replay.replayed);
    // Both keep posting correctly after interleaving.
    b.transfer(&bob, TransferRequest::new(wb.id, wa.id, d("10"), "b-3"))
        .await
        .unwrap();
    a.transfer(&alice, TransferRequest::new(wa.id, wb.id, d("10"), "a-2"))
        .await
        .unwrap();
    let admin = Actor::new(UserId::new(9).unwrap(), wallet_core::Role::Admin);
    assert_eq!(
        a.wallet(&admin, wa.id).await.unwrap().balance.amount(),
        d("0")
    );
    assert_eq!(
        b.wallet(&admin, wb.id).await.unwrap().balance.amount(),
        d("100")
    );
    assert!(b.verify(&admin).await.unwrap().is_ok());
}

/// Many callers send the same request under one key at once, most of them landing in one
/// group commit: the writer does not look a fresh key up before inserting its transaction,
/// so here the insert itself must find the key taken, within the batch, and each caller must
/// get the first receipt (or a conflict, for a request that differs), never a second transfer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_sent_at_once_moves_money_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("wallet.db"), Options::default()).unwrap();
    let ledger = Arc::new(common::ledger(store).await);
    let funded = common::funded_wallets(&ledger, 2, "100.00").await;
    let ((alice, from), (_, to)) = (funded[0], funded[1]);
    let mut tasks = Vec::new();
    for i in 0..64usize {
        let ledger = Arc::clone(&ledger);
        // Every eighth caller asks for another amount under the same key.
        let amount = if i % 8 == 7 { d("2.00") } else { d("1.00") };
        tasks.push(tokio::spawn(async move {
            let req = TransferRequest::new(from, to, amount, "the-one-key");
            (i, ledger.transfer(&alice, req).await)
        }));
    }
    let (mut fresh, mut replayed, mut conflicts) = (Vec::new(), 0, Vec::new());
    for t in tasks {
        let (i, result) = t.await.unwrap();
        let asked = if i % 8 == 7 { d("2.00") } else { d("1.00") };
        match result {
            Ok(r) => {
                // A receipt, first or replayed, is always for what this caller asked.
                assert_eq!(r.transaction.amount.amount(), asked, "caller {i}");
                replayed += usize::from(r.replayed);
                fresh.push(r.transaction.id);
            }
            Err(e) => {
                assert_eq!(e.code(), "idempotency_conflict", "caller {i}: {e:?}");
                conflicts.push(asked);
            }
        }
    }
    fresh.sort_unstable();
    fresh.dedup();
    assert_eq!(fresh.len(), 1, "more than one transaction under one key");
    let admin = Actor::new(UserId::new(9).unwrap(), wallet_core::Role::Admin);
    let moved = ledger.wallet(&admin, to).await.unwrap().balance.amount() - d("100.00");
    // Whichever request won, it moved money once; every other caller replayed it or, asking
    // for another amount, was refused.
    assert!(moved == d("1.00") || moved == d("2.00"), "moved {moved}");
    assert!(conflicts.iter().all(|asked| *asked != moved));
    assert_eq!(replayed + conflicts.len() + 1, 64);
    assert!(ledger.verify(&admin).await.unwrap().is_ok());
}

/// Two stores on one file stand for two processes: notifications made through either keep
/// ids that are unique and increase in commit order (each writer reserves ids in blocks, and
/// must move past the other's), so a user's list reads the same through both, page by page,
/// in the order the transfers happened, and misses none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_file_share_notification_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, [alice, bob], [wa, wb]) = two_writers(&dir.path().join("wallet.db")).await;
    let mut sent = Vec::new();
    for i in 0..40 {
        let (ledger, key) = if i % 3 == 0 { (&b, "b") } else { (&a, "a") };
        let receipt = ledger
            .transfer(
                &alice,
                TransferRequest::new(wa.id, wb.id, d("1"), format!("{key}-{i}")),
            )
            .await
            .unwrap();
        sent.push(receipt.transaction.reference.to_string());
        if i % 7 == 0 {
            // A notification kept as a row, from the other writer.
            let other = if i % 3 == 0 { &a } else { &b };
            other.logout_everywhere(&bob, bob.user).await.unwrap();
        }
    }
    let through_a = a
        .notifications(&bob, bob.user, false, None, 100)
        .await
        .unwrap();
    let through_b = b
        .notifications(&bob, bob.user, false, None, 100)
        .await
        .unwrap();
    assert_eq!(through_a, through_b);
    let items = through_a.items;
    // 40 transfers received, 6 sign-outs, and the welcome.
    assert_eq!(items.len(), 47);
    assert!(items.windows(2).all(|p| p[0].id > p[1].id));
    // Newest first by id is newest first by commit: the transfers in reverse.
    let received: Vec<&str> = items
        .iter()
        .filter(|n| n.title == "Money received")
        .map(|n| n.message.split(' ').next().unwrap_or_default())
        .collect();
    let newest_first: Vec<&str> = sent.iter().rev().map(String::as_str).collect();
    assert_eq!(received, newest_first);
    // Pages of four, each after the last one's oldest id, read the same list.
    let (mut paged, mut before) = (Vec::new(), None);
    loop {
        let page = b
            .notifications(&bob, bob.user, false, before, 4)
            .await
            .unwrap();
        paged.extend(page.items);
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, items);
    assert_eq!(a.unread_count(&bob, bob.user).await.unwrap(), 47);
}
