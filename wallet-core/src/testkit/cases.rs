//! The conformance cases. Each takes a fresh, empty store.

use std::collections::HashSet;

pub use super::identity_cases::*;
pub use super::payment_cases::*;

use serde_json::json;

use super::{Fixture, START, assert_code, d};
use crate::actor::Actor;
use crate::config::{AmountBounds, Config};
use crate::currency::CurrencyRegistry;
use crate::history::{Counterparty, HistoryCursor, HistoryQuery};
use crate::ids::{TransactionRef, UserId, WalletId, WalletNumber, WalletRef};
use crate::ledger::{DepositRequest, Ledger, OpenWalletRequest, TransferRequest, WithdrawRequest};
use crate::store::Store;
use crate::time::Timestamp;
use crate::transaction::{TransactionKind, TransactionStatus};
use crate::wallet::{AccountKind, SystemAccount, Wallet, WalletKind, WalletStatus};

pub async fn open_wallet_starts_active_and_empty<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let w = f.wallet(&alice, "usd").await;
    assert_eq!(w.owner, Some(alice.user));
    assert_eq!(w.kind, AccountKind::Wallet(WalletKind::Personal));
    assert_eq!(w.currency.code().as_str(), "USD");
    assert_eq!(w.status, WalletStatus::Active);
    assert!(w.balance.is_zero() && w.held.is_zero() && w.available.is_zero());
    assert_eq!(w.number, WalletNumber::of(w.id));
    assert!(w.number.to_string().starts_with("WLT-"));
    assert_eq!(w.created_at, START);
    assert_eq!(f.reload(&w).await, w);
    f.assert_verified().await;
}

pub async fn one_wallet_per_owner_kind_and_currency<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let first = f.wallet(&alice, "EUR").await;
    let again = f
        .ledger
        .open_wallet(
            &alice,
            OpenWalletRequest::new(alice.user, WalletKind::Personal, "eur"),
        )
        .await;
    match again {
        Err(crate::Error::WalletExists { existing }) => assert_eq!(existing, first.number),
        other => panic!("expected wallet_exists, got {other:?}"),
    }
    // Another kind, another currency, another owner: all fine.
    let savings = f.wallet_of_kind(&alice, WalletKind::Savings, "EUR").await;
    let business = f.wallet_of_kind(&alice, WalletKind::Business, "EUR").await;
    let usd = f.wallet(&alice, "USD").await;
    let bob = f.user().await;
    let bobs = f.wallet(&bob, "EUR").await;
    let ids: HashSet<WalletId> = [first.id, savings.id, business.id, usd.id, bobs.id].into();
    assert_eq!(ids.len(), 5);
    f.assert_verified().await;
}

pub async fn open_wallet_validates_currency_and_owner<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let before = f.snapshot(&[]).await;
    for bad in ["", "XXX", "US", "U$D", "dollars", &"A".repeat(5000)] {
        assert_code(
            f.ledger
                .open_wallet(
                    &alice,
                    OpenWalletRequest::new(alice.user, WalletKind::Personal, bad),
                )
                .await,
            "unknown_currency",
        );
    }
    // A customer cannot open wallets for someone else; neither can an admin; a superuser can.
    for actor in [alice, f.admin] {
        assert_code(
            f.ledger
                .open_wallet(
                    &actor,
                    OpenWalletRequest::new(bob.user, WalletKind::Personal, "USD"),
                )
                .await,
            "forbidden",
        );
    }
    assert_eq!(f.snapshot(&[]).await, before);
    let w = f
        .ledger
        .open_wallet(
            &f.root,
            OpenWalletRequest::new(bob.user, WalletKind::Personal, "USD"),
        )
        .await
        .unwrap();
    assert_eq!(w.owner, Some(bob.user));
}

pub async fn custom_assets_have_their_own_precision<T: Store + Clone>(store: T) {
    let registry = CurrencyRegistry::new()
        .with("POINTS", 0)
        .unwrap()
        .with("GOLD", 6)
        .unwrap();
    let f = Fixture::with_config(store, Config::new().with_currencies(registry)).await;
    let alice = f.user().await;
    let points = f.wallet(&alice, "points").await;
    assert_eq!(points.currency.exponent(), 0);
    f.ledger
        .deposit(&alice, DepositRequest::new(points.id, d("250"), f.key()))
        .await
        .unwrap();
    assert_code(
        f.ledger
            .deposit(&alice, DepositRequest::new(points.id, d("1.5"), f.key()))
            .await,
        "amount_precision",
    );
    let gold = f.wallet(&alice, "GOLD").await;
    f.ledger
        .deposit(&alice, DepositRequest::new(gold.id, d("0.010001"), f.key()))
        .await
        .unwrap();
    assert_code(
        f.ledger
            .deposit(
                &alice,
                DepositRequest::new(gold.id, d("1.0000001"), f.key()),
            )
            .await,
        "amount_precision",
    );
    // The default minimum (0.01) applies in every currency.
    assert_code(
        f.ledger
            .deposit(&alice, DepositRequest::new(gold.id, d("0.009999"), f.key()))
            .await,
        "amount_below_minimum",
    );
    assert_eq!(f.balance(&gold).await, d("0.010001"));
    assert_eq!(f.balance(&points).await, d("250"));
    f.assert_verified().await;
}

pub async fn stored_currencies_must_match_configuration<T: Store + Clone>(store: T) {
    let gold3 = Config::new().with_currencies(CurrencyRegistry::new().with("GOLD", 3).unwrap());
    let f = Fixture::with_config(store.clone(), gold3.clone()).await;
    let alice = f.user().await;
    f.wallet(&alice, "GOLD").await;
    // The same exponent again is fine.
    assert!(Ledger::new(store.clone(), gold3).await.is_ok());
    let gold2 = Config::new().with_currencies(CurrencyRegistry::new().with("GOLD", 2).unwrap());
    assert_code(
        Ledger::new(store.clone(), gold2).await,
        "currency_exponent_mismatch",
    );
    assert_code(Ledger::new(store, Config::new()).await, "unknown_currency");
}

pub async fn wallet_lookup_by_id_and_number<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let w = f.funded(&alice, "USD", "10.00").await;
    let by_id = f.ledger.wallet(&alice, w.id).await.unwrap();
    let by_number = f.ledger.wallet(&alice, w.number).await.unwrap();
    assert_eq!(by_id, by_number);
    assert_eq!(by_id.balance.amount(), d("10.00"));
    let parsed: WalletNumber = w.number.to_string().parse().unwrap();
    assert_eq!(f.ledger.wallet(&alice, parsed).await.unwrap().id, w.id);
    assert_code("WLT-123".parse::<WalletNumber>(), "invalid_wallet_number");
    // Someone else's wallet: forbidden to customers, readable by staff.
    assert_code(f.ledger.wallet(&bob, w.id).await, "forbidden");
    assert_eq!(f.ledger.wallet(&f.admin, w.id).await.unwrap().id, w.id);
    assert_eq!(f.ledger.wallet(&f.root, w.id).await.unwrap().id, w.id);
    let missing = WalletId::new(w.id.get() + 1_000_000).unwrap();
    assert_code(f.ledger.wallet(&alice, missing).await, "wallet_not_found");
    assert_code(
        f.ledger.wallet(&f.admin, WalletNumber::of(missing)).await,
        "wallet_not_found",
    );
}

pub async fn system_accounts_are_not_addressable<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let w = f.wallet(&alice, "USD").await;
    let r = f
        .ledger
        .deposit(&alice, DepositRequest::new(w.id, d("5"), f.key()))
        .await
        .unwrap();
    let system = r
        .transaction
        .legs
        .iter()
        .find(|l| l.system == Some(SystemAccount::External))
        .expect("deposit has an external leg");
    assert_eq!(system.owner, None);
    assert_eq!(
        system.balance_after, None,
        "a customer never sees system balances"
    );
    let before = f.snapshot(&[&w]).await;
    assert_code(
        f.ledger.wallet(&f.admin, system.wallet).await,
        "wallet_not_found",
    );
    assert_code(
        f.ledger
            .transfer(
                &alice,
                TransferRequest::new(w.id, system.wallet, d("1"), f.key()),
            )
            .await,
        "wallet_not_found",
    );
    assert_code(
        f.ledger
            .withdraw(&alice, WithdrawRequest::new(system.wallet, d("1"), f.key()))
            .await,
        "wallet_not_found",
    );
    assert_code(
        f.ledger
            .set_wallet_status(&f.root, system.wallet, WalletStatus::Frozen)
            .await,
        "wallet_not_found",
    );
    assert_code(
        f.ledger
            .history(&f.admin, HistoryQuery::new(system.wallet))
            .await,
        "wallet_not_found",
    );
    assert_eq!(f.snapshot(&[&w]).await, before);
}

pub async fn wallets_of_lists_a_users_wallets<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a1 = f.wallet(&alice, "USD").await;
    let b1 = f.wallet(&bob, "USD").await;
    let a2 = f.wallet_of_kind(&alice, WalletKind::Savings, "EUR").await;
    let mine = f.ledger.wallets_of(&alice, alice.user).await.unwrap();
    assert_eq!(
        mine.iter().map(|w| w.id).collect::<Vec<_>>(),
        vec![a1.id, a2.id]
    );
    assert_code(f.ledger.wallets_of(&alice, bob.user).await, "forbidden");
    let bobs = f.ledger.wallets_of(&f.admin, bob.user).await.unwrap();
    assert_eq!(bobs.iter().map(|w| w.id).collect::<Vec<_>>(), vec![b1.id]);
    let nobody = UserId::new(999_999).unwrap();
    assert!(
        f.ledger
            .wallets_of(&f.admin, nobody)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn only_superusers_change_status<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let w = f.wallet(&alice, "USD").await;
    for actor in [alice, f.admin] {
        assert_code(
            f.ledger
                .set_wallet_status(&actor, w.id, WalletStatus::Frozen)
                .await,
            "forbidden",
        );
    }
    assert_eq!(f.reload(&w).await.status, WalletStatus::Active);
    f.clock.advance_micros(1_000_000);
    let frozen = f
        .ledger
        .set_wallet_status(&f.root, w.number, WalletStatus::Frozen)
        .await
        .unwrap();
    assert_eq!(frozen.status, WalletStatus::Frozen);
    assert_eq!(frozen.updated_at, START.plus_micros(1_000_000));
    assert_eq!(f.reload(&w).await.status, WalletStatus::Frozen);
    // Setting the status it already has is a no-op, not an error.
    let again = f
        .ledger
        .set_wallet_status(&f.root, w.id, WalletStatus::Frozen)
        .await
        .unwrap();
    assert_eq!(again, frozen);
    let missing = WalletId::new(w.id.get() + 1_000_000).unwrap();
    assert_code(
        f.ledger
            .set_wallet_status(&f.root, missing, WalletStatus::Active)
            .await,
        "wallet_not_found",
    );
}

pub async fn only_active_wallets_move_money<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "100").await;
    let b = f.funded(&bob, "USD", "100").await;
    for (status, code) in [
        (WalletStatus::Inactive, "wallet_inactive"),
        (WalletStatus::Frozen, "wallet_frozen"),
        (WalletStatus::Blocked, "wallet_blocked"),
    ] {
        f.ledger
            .set_wallet_status(&f.root, a.id, status)
            .await
            .unwrap();
        let before = f.snapshot(&[&a, &b]).await;
        assert_code(
            f.ledger
                .deposit(&alice, DepositRequest::new(a.id, d("1"), f.key()))
                .await,
            code,
        );
        assert_code(
            f.ledger
                .withdraw(&alice, WithdrawRequest::new(a.id, d("1"), f.key()))
                .await,
            code,
        );
        assert_code(
            f.ledger
                .transfer(&alice, TransferRequest::new(a.id, b.id, d("1"), f.key()))
                .await,
            code,
        );
        // Nor can it receive.
        assert_code(
            f.ledger
                .transfer(&bob, TransferRequest::new(b.id, a.id, d("1"), f.key()))
                .await,
            code,
        );
        assert_eq!(f.snapshot(&[&a, &b]).await, before);
        f.ledger
            .set_wallet_status(&f.root, a.id, WalletStatus::Active)
            .await
            .unwrap();
    }
    f.ledger
        .transfer(&alice, TransferRequest::new(a.id, b.id, d("1"), f.key()))
        .await
        .unwrap();
    assert_eq!(f.balance(&b).await, d("101"));
}

pub async fn closing_requires_an_empty_wallet_and_is_final<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let w = f.funded(&alice, "USD", "12.50").await;
    match f
        .ledger
        .set_wallet_status(&f.root, w.id, WalletStatus::Closed)
        .await
    {
        Err(crate::Error::WalletNotEmpty { balance }) => assert_eq!(balance.amount(), d("12.50")),
        other => panic!("expected wallet_not_empty, got {other:?}"),
    }
    f.ledger
        .withdraw(&alice, WithdrawRequest::new(w.id, d("12.50"), f.key()))
        .await
        .unwrap();
    let closed = f
        .ledger
        .set_wallet_status(&f.root, w.id, WalletStatus::Closed)
        .await
        .unwrap();
    assert_eq!(closed.status, WalletStatus::Closed);
    for to in [
        WalletStatus::Active,
        WalletStatus::Inactive,
        WalletStatus::Frozen,
        WalletStatus::Blocked,
    ] {
        assert_code(
            f.ledger.set_wallet_status(&f.root, w.id, to).await,
            "invalid_status_transition",
        );
    }
    assert_code(
        f.ledger
            .deposit(&alice, DepositRequest::new(w.id, d("1"), f.key()))
            .await,
        "wallet_closed",
    );
    // The slot stays taken: a closed wallet keeps its history and its number.
    assert_code(
        f.ledger
            .open_wallet(
                &alice,
                OpenWalletRequest::new(alice.user, WalletKind::Personal, "USD"),
            )
            .await,
        "wallet_exists",
    );
    f.assert_verified().await;
}

pub async fn deposit_credits_wallet_from_external_account<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let w = f.wallet(&alice, "USD").await;
    f.clock.advance_micros(42);
    let r = f
        .ledger
        .deposit(
            &alice,
            DepositRequest::new(w.number, d("25.10"), "first")
                .description("salary")
                .metadata(json!({"source": "card", "n": 1})),
        )
        .await
        .unwrap();
    assert!(!r.replayed);
    let t = &r.transaction;
    assert_eq!(t.kind, TransactionKind::TopUp);
    assert_eq!(t.status, TransactionStatus::Completed);
    assert_eq!(t.amount.amount(), d("25.10"));
    assert_eq!(t.amount.currency(), w.currency);
    assert_eq!(t.description.as_ref().map(|d| d.as_str()), Some("salary"));
    assert_eq!(
        t.metadata.as_ref().map(|m| m.to_json()).as_deref(),
        Some(r#"{"n":1,"source":"card"}"#)
    );
    assert_eq!(t.initiated_by, alice.user);
    assert_eq!(t.idempotency_key.as_str(), "first");
    assert_eq!(t.created_at, START.plus_micros(42));
    assert_eq!(t.completed_at, Some(t.created_at));
    assert_eq!(t.reference, TransactionRef::of(t.id));
    assert!(t.reference.to_string().starts_with("TXN-"));
    assert_eq!(t.legs.len(), 2);
    let debit = &t.legs[0];
    let credit = &t.legs[1];
    assert_eq!(debit.system, Some(SystemAccount::External));
    assert_eq!(debit.amount.amount(), d("-25.10"));
    assert_eq!(credit.wallet, w.id);
    assert_eq!(credit.wallet_number, w.number);
    assert_eq!(credit.amount.amount(), d("25.10"));
    assert_eq!(credit.seq, 1);
    assert_eq!(credit.balance_before.map(|m| m.amount()), Some(d("0")));
    assert_eq!(credit.balance_after.map(|m| m.amount()), Some(d("25.10")));
    // The stored transaction is the receipt.
    let stored = f.ledger.transaction(&alice, t.reference).await.unwrap();
    assert_eq!(&stored, t);
    let now = f.reload(&w).await;
    assert_eq!(now.balance.amount(), d("25.10"));
    assert_eq!(now.available.amount(), d("25.10"));
    // Admins see the system account's side.
    let as_admin = f.ledger.transaction(&f.admin, t.reference).await.unwrap();
    assert_eq!(
        as_admin.legs[0].balance_after.map(|m| m.amount()),
        Some(d("-25.10"))
    );
    f.assert_verified().await;
}

pub async fn amount_rules_reject_and_write_nothing<T: Store + Clone>(store: T) {
    let registry = CurrencyRegistry::new().with("WEI", 18).unwrap();
    let f = Fixture::with_config(store, Config::new().with_currencies(registry)).await;
    let alice = f.user().await;
    let usd = f.funded(&alice, "USD", "50").await;
    let jpy = f.wallet(&alice, "JPY").await;
    let wei = f.wallet(&alice, "WEI").await;
    let before = f.snapshot(&[&usd, &jpy, &wei]).await;
    let cases: &[(&Wallet, &str, &str)] = &[
        (&usd, "0", "amount_not_positive"),
        (&usd, "-5", "amount_not_positive"),
        (&usd, "0.001", "amount_precision"),
        (&usd, "1.005", "amount_precision"),
        (&jpy, "1.5", "amount_precision"),
        (&usd, "1000000.01", "amount_above_maximum"),
        (&usd, "99999999999999999999", "amount_overflow"),
        (&wei, "10", "amount_overflow"),
        (&wei, "0.000000000000000000001", "amount_precision"),
    ];
    for (w, amount, code) in cases {
        let amount = d(amount);
        assert_code(
            f.ledger
                .deposit(&alice, DepositRequest::new(w.id, amount, f.key()))
                .await,
            code,
        );
        assert_code(
            f.ledger
                .withdraw(&alice, WithdrawRequest::new(w.id, amount, f.key()))
                .await,
            code,
        );
    }
    // Bounds are in the wallet's currency: 0.01 minimum becomes 1 yen, so 1 yen is fine.
    f.ledger
        .deposit(&alice, DepositRequest::new(jpy.id, d("1"), f.key()))
        .await
        .unwrap();
    f.ledger
        .withdraw(&alice, WithdrawRequest::new(jpy.id, d("1"), f.key()))
        .await
        .unwrap();
    let after = f.snapshot(&[&usd, &jpy, &wei]).await;
    assert_ne!(after, before, "the two valid calls were stored");
    // Exactly the maximum is allowed.
    f.ledger
        .deposit(
            &alice,
            DepositRequest::new(usd.id, d("1000000.00"), f.key()),
        )
        .await
        .unwrap();
    f.assert_verified().await;
}

pub async fn text_inputs_are_validated_and_write_nothing<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let w = f.wallet(&alice, "USD").await;
    let before = f.snapshot(&[&w]).await;
    let bad_descriptions = [
        "x".repeat(501),
        "line\nbreak".into(),
        "nul\0".into(),
        "rtl\u{202E}override".into(),
    ];
    for text in bad_descriptions {
        assert_code(
            f.ledger
                .deposit(
                    &alice,
                    DepositRequest::new(w.id, d("1"), f.key()).description(text),
                )
                .await,
            "invalid_description",
        );
    }
    for meta in [json!([1]), json!("x"), json!({"a": "x".repeat(5000)})] {
        assert_code(
            f.ledger
                .deposit(
                    &alice,
                    DepositRequest::new(w.id, d("1"), f.key()).metadata(meta),
                )
                .await,
            "invalid_metadata",
        );
    }
    for key in [
        String::new(),
        "has space".into(),
        "k".repeat(129),
        "ключ".into(),
    ] {
        assert_code(
            f.ledger
                .deposit(&alice, DepositRequest::new(w.id, d("1"), key))
                .await,
            "invalid_idempotency_key",
        );
    }
    assert_eq!(f.snapshot(&[&w]).await, before);
    // Hostile but valid text is stored verbatim and harmlessly.
    let sql = "Robert'); DROP TABLE wallets;-- \u{200B}zero-width, עברית, 🙂".to_string();
    let r = f
        .ledger
        .deposit(
            &alice,
            DepositRequest::new(w.id, d("1"), f.key()).description(sql.clone()),
        )
        .await
        .unwrap();
    let stored = f
        .ledger
        .transaction(&alice, r.transaction.reference)
        .await
        .unwrap();
    assert_eq!(
        stored.description.as_ref().map(|d| d.as_str()),
        Some(sql.as_str())
    );
    // An empty description is no description.
    let r = f
        .ledger
        .deposit(
            &alice,
            DepositRequest::new(w.id, d("1"), f.key()).description(""),
        )
        .await
        .unwrap();
    assert_eq!(r.transaction.description, None);
    f.assert_verified().await;
}

pub async fn money_moves_only_from_own_wallets<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "100").await;
    let b = f.funded(&bob, "USD", "100").await;
    let before = f.snapshot(&[&a, &b]).await;
    // Bob, an admin and a superuser all fail to move Alice's money.
    for actor in [bob, f.admin, f.root] {
        assert_code(
            f.ledger
                .deposit(&actor, DepositRequest::new(a.id, d("1"), f.key()))
                .await,
            "forbidden",
        );
        assert_code(
            f.ledger
                .withdraw(&actor, WithdrawRequest::new(a.id, d("1"), f.key()))
                .await,
            "forbidden",
        );
        assert_code(
            f.ledger
                .transfer(&actor, TransferRequest::new(a.id, b.id, d("1"), f.key()))
                .await,
            "forbidden",
        );
    }
    assert_eq!(f.snapshot(&[&a, &b]).await, before);
}

pub async fn withdraw_needs_available_funds<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let w = f.funded(&alice, "USD", "30").await;
    let before = f.snapshot(&[&w]).await;
    match f
        .ledger
        .withdraw(&alice, WithdrawRequest::new(w.id, d("30.01"), f.key()))
        .await
    {
        Err(crate::Error::InsufficientFunds {
            available,
            requested,
        }) => {
            assert_eq!(available.amount(), d("30.00"));
            assert_eq!(requested.amount(), d("30.01"));
        }
        other => panic!("expected insufficient_funds, got {other:?}"),
    }
    assert_eq!(f.snapshot(&[&w]).await, before);
    let r = f
        .ledger
        .withdraw(&alice, WithdrawRequest::new(w.id, d("30"), f.key()))
        .await
        .unwrap();
    assert_eq!(r.transaction.kind, TransactionKind::Withdrawal);
    assert_eq!(r.transaction.legs[0].wallet, w.id);
    assert_eq!(
        r.transaction.legs[0].balance_after.map(|m| m.amount()),
        Some(d("0"))
    );
    assert_eq!(r.transaction.legs[1].system, Some(SystemAccount::External));
    assert_eq!(f.balance(&w).await, d("0"));
    assert_code(
        f.ledger
            .withdraw(&alice, WithdrawRequest::new(w.id, d("0.01"), f.key()))
            .await,
        "insufficient_funds",
    );
    f.assert_verified().await;
}

pub async fn transfer_moves_money_by_id_or_number<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "100").await;
    let b = f.wallet(&bob, "USD").await;
    let r = f
        .ledger
        .transfer(
            &alice,
            TransferRequest::new(a.id, b.id, d("30"), f.key()).description("rent"),
        )
        .await
        .unwrap();
    assert_eq!(r.transaction.kind, TransactionKind::Transfer);
    assert_eq!(r.transaction.legs.len(), 2);
    assert_eq!(
        (r.transaction.legs[0].wallet, r.transaction.legs[1].wallet),
        (a.id, b.id)
    );
    f.ledger
        .transfer(
            &alice,
            TransferRequest::new(a.number, b.number, d("20.5"), f.key()),
        )
        .await
        .unwrap();
    assert_eq!(f.balance(&a).await, d("49.50"));
    assert_eq!(f.balance(&b).await, d("50.50"));
    // Bob's history shows the credit and where it came from.
    let page = f
        .ledger
        .history(&bob, HistoryQuery::new(b.id))
        .await
        .unwrap();
    assert_eq!(page.lines.len(), 2);
    assert_eq!(page.lines[0].amount.amount(), d("20.50"));
    assert_eq!(
        page.lines[1].description.as_ref().map(|d| d.as_str()),
        Some("rent")
    );
    assert_eq!(
        page.lines[0].counterparty,
        Some(Counterparty::Wallet(a.number))
    );
    f.assert_verified().await;
}

pub async fn transfer_rules_reject_and_write_nothing<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "10").await;
    let b = f.wallet(&bob, "USD").await;
    let e = f.wallet(&bob, "EUR").await;
    let before = f.snapshot(&[&a, &b, &e]).await;
    let missing = WalletId::new(e.id.get() + 1_000_000).unwrap();
    let cases: Vec<(WalletRef, WalletRef, &str, &str)> = vec![
        (a.id.into(), a.id.into(), "1", "same_wallet"),
        (a.id.into(), a.number.into(), "1", "same_wallet"),
        (a.id.into(), e.id.into(), "1", "currency_mismatch"),
        (a.id.into(), b.id.into(), "10.01", "insufficient_funds"),
        (a.id.into(), missing.into(), "1", "wallet_not_found"),
        (missing.into(), b.id.into(), "1", "wallet_not_found"),
        (a.id.into(), b.id.into(), "0", "amount_not_positive"),
        (a.id.into(), b.id.into(), "0.001", "amount_precision"),
    ];
    for (from, to, amount, code) in cases {
        assert_code(
            f.ledger
                .transfer(&alice, TransferRequest::new(from, to, d(amount), f.key()))
                .await,
            code,
        );
    }
    assert_eq!(f.snapshot(&[&a, &b, &e]).await, before);
}

pub async fn receipts_hide_other_peoples_balances<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "100").await;
    let b = f.funded(&bob, "USD", "500").await;
    let r = f
        .ledger
        .transfer(&alice, TransferRequest::new(a.id, b.id, d("1"), f.key()))
        .await
        .unwrap();
    let legs = &r.transaction.legs;
    assert_eq!(legs[0].balance_after.map(|m| m.amount()), Some(d("99")));
    assert_eq!(
        legs[1].balance_after, None,
        "Alice must not learn Bob's balance"
    );
    assert_eq!(legs[1].balance_before, None);
    let as_bob = f
        .ledger
        .transaction(&bob, r.transaction.reference)
        .await
        .unwrap();
    assert_eq!(as_bob.legs[0].balance_after, None);
    assert_eq!(
        as_bob.legs[1].balance_after.map(|m| m.amount()),
        Some(d("501"))
    );
    let as_admin = f
        .ledger
        .transaction(&f.admin, r.transaction.reference)
        .await
        .unwrap();
    assert!(as_admin.legs.iter().all(|l| l.balance_after.is_some()));
}

pub async fn replay_returns_the_first_receipt<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "100").await;
    let b = f.wallet(&bob, "USD").await;
    let req = TransferRequest::new(a.id, b.id, d("10.50"), "pay-1").description("dinner");
    let first = f.ledger.transfer(&alice, req.clone()).await.unwrap();
    assert!(!first.replayed);
    f.clock.advance_micros(5_000_000);
    let before = f.snapshot(&[&a, &b]).await;
    let second = f.ledger.transfer(&alice, req.clone()).await.unwrap();
    assert!(second.replayed);
    assert_eq!(second.transaction, first.transaction);
    // Trailing zeros do not make a request different; addressing by number neither.
    let same = TransferRequest::new(a.number, b.number, d("10.5"), "pay-1").description("dinner");
    assert!(f.ledger.transfer(&alice, same).await.unwrap().replayed);
    assert_eq!(f.snapshot(&[&a, &b]).await, before);
    // A replay succeeds even after the rules would now reject the request.
    f.ledger
        .set_wallet_status(&f.root, a.id, WalletStatus::Frozen)
        .await
        .unwrap();
    let third = f.ledger.transfer(&alice, req).await.unwrap();
    assert!(third.replayed);
    assert_eq!(third.transaction.id, first.transaction.id);
    assert_eq!(f.balance(&b).await, d("10.50"));
    f.assert_verified().await;
}

pub async fn idempotency_conflicts_are_detected<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "100").await;
    let b = f.wallet(&bob, "USD").await;
    let c = f.wallet_of_kind(&bob, WalletKind::Savings, "USD").await;
    f.ledger
        .transfer(
            &alice,
            TransferRequest::new(a.id, b.id, d("10"), "k").description("x"),
        )
        .await
        .unwrap();
    let before = f.snapshot(&[&a, &b, &c]).await;
    let conflicting = [
        TransferRequest::new(a.id, b.id, d("11"), "k").description("x"),
        TransferRequest::new(a.id, b.id, d("10"), "k").description("y"),
        TransferRequest::new(a.id, b.id, d("10"), "k"),
        TransferRequest::new(a.id, c.id, d("10"), "k").description("x"),
        TransferRequest::new(a.id, b.id, d("10"), "k")
            .description("x")
            .metadata(json!({"a": 1})),
    ];
    for req in conflicting {
        assert_code(f.ledger.transfer(&alice, req).await, "idempotency_conflict");
    }
    // The same key for another kind of operation is a conflict too.
    assert_code(
        f.ledger
            .withdraw(&alice, WithdrawRequest::new(a.id, d("10"), "k"))
            .await,
        "idempotency_conflict",
    );
    assert_code(
        f.ledger
            .deposit(&alice, DepositRequest::new(a.id, d("10"), "k"))
            .await,
        "idempotency_conflict",
    );
    assert_eq!(f.snapshot(&[&a, &b, &c]).await, before);
}

pub async fn rejected_commands_do_not_consume_keys<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "5").await;
    let b = f.wallet(&bob, "USD").await;
    let req = TransferRequest::new(a.id, b.id, d("8"), "retry-me");
    assert_code(
        f.ledger.transfer(&alice, req.clone()).await,
        "insufficient_funds",
    );
    f.ledger
        .deposit(&alice, DepositRequest::new(a.id, d("5"), f.key()))
        .await
        .unwrap();
    let r = f.ledger.transfer(&alice, req).await.unwrap();
    assert!(
        !r.replayed,
        "the rejected attempt stored nothing under the key"
    );
    assert_eq!(f.balance(&b).await, d("8"));
}

pub async fn idempotency_keys_are_scoped_per_user<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.wallet(&alice, "USD").await;
    let b = f.wallet(&bob, "USD").await;
    let ra = f
        .ledger
        .deposit(&alice, DepositRequest::new(a.id, d("1"), "shared-key"))
        .await
        .unwrap();
    let rb = f
        .ledger
        .deposit(&bob, DepositRequest::new(b.id, d("2"), "shared-key"))
        .await
        .unwrap();
    assert!(!ra.replayed && !rb.replayed);
    assert_ne!(ra.transaction.id, rb.transaction.id);
    assert_eq!(f.balance(&b).await, d("2"));
}

pub async fn transaction_lookup_is_authorized<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let carol = f.user().await;
    let a = f.funded(&alice, "USD", "10").await;
    let b = f.wallet(&bob, "USD").await;
    let r = f
        .ledger
        .transfer(&alice, TransferRequest::new(a.id, b.id, d("1"), f.key()))
        .await
        .unwrap();
    let reference = r.transaction.reference;
    assert!(f.ledger.transaction(&alice, reference).await.is_ok());
    assert!(f.ledger.transaction(&bob, reference).await.is_ok());
    assert_code(f.ledger.transaction(&carol, reference).await, "forbidden");
    assert!(f.ledger.transaction(&f.admin, reference).await.is_ok());
    let missing =
        TransactionRef::of(crate::TransactionId::new(reference.id().get() + 1_000_000).unwrap());
    assert_code(
        f.ledger.transaction(&f.admin, missing).await,
        "transaction_not_found",
    );
    assert_code("TXN-0000".parse::<TransactionRef>(), "invalid_reference");
}

/// Posts `n` alternating top-ups and withdrawals one second apart; returns the wallet.
async fn busy_wallet<T: Store + Clone>(f: &Fixture<T>, who: &Actor, n: i64) -> Wallet {
    let w = f.wallet(who, "USD").await;
    for i in 1..=n {
        f.clock.advance_micros(1_000_000);
        let amount = d(&format!("{i}"));
        if i % 3 == 0 {
            f.ledger
                .withdraw(who, WithdrawRequest::new(w.id, amount, f.key()))
                .await
                .unwrap();
        } else {
            f.ledger
                .deposit(
                    who,
                    DepositRequest::new(w.id, amount, f.key()).description(format!("n{i}")),
                )
                .await
                .unwrap();
        }
    }
    w
}

pub async fn history_is_newest_first_and_paginates<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let w = busy_wallet(&f, &alice, 25).await;
    let mut query = HistoryQuery::new(w.id);
    query.limit = 7;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = f.ledger.history(&alice, query.clone()).await.unwrap();
        pages += 1;
        assert!(page.lines.len() <= 7);
        // Totals cover the whole range on every page.
        // Top-ups 1..=25 except multiples of 3 (217), withdrawals 3, 6, ..., 24 (108).
        assert_eq!(page.totals.credits.amount(), d("217"));
        assert_eq!(page.totals.debits.amount(), d("108"));
        seen.extend(page.lines.iter().map(|l| l.seq));
        match page.next {
            Some(cursor) => query.after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(
        seen,
        (1..=25).rev().collect::<Vec<_>>(),
        "each entry once, newest first"
    );
    let first = f
        .ledger
        .history(&alice, HistoryQuery::new(w.id))
        .await
        .unwrap();
    assert_eq!(first.lines.len(), 25);
    assert!(first.next.is_none());
    let top = &first.lines[0];
    assert_eq!(top.seq, 25);
    assert_eq!(top.amount.amount(), d("25"));
    assert_eq!(top.kind, TransactionKind::TopUp);
    assert_eq!(top.balance_after, f.reload(&w).await.balance);
    assert!(
        first
            .lines
            .windows(2)
            .all(|p| p[0].created_at >= p[1].created_at)
    );
    let bottom = first.lines.last().unwrap();
    assert_eq!(
        bottom.counterparty,
        Some(Counterparty::System(SystemAccount::External))
    );
    assert_eq!(bottom.description.as_ref().map(|d| d.as_str()), Some("n1"));
}

pub async fn history_filters_and_totals<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let w = busy_wallet(&f, &alice, 30).await;
    let all = f
        .ledger
        .history(&alice, {
            let mut q = HistoryQuery::new(w.id);
            q.limit = 200;
            q
        })
        .await
        .unwrap();
    let lines = all.lines;
    // Reference sums computed from the lines themselves.
    let sums = |keep: &dyn Fn(&crate::HistoryLine) -> bool| {
        let mut credits = rust_decimal::Decimal::ZERO;
        let mut debits = rust_decimal::Decimal::ZERO;
        let mut seqs = Vec::new();
        for l in lines.iter().filter(|l| keep(l)) {
            if l.amount.minor() > 0 {
                credits += l.amount.amount();
            } else {
                debits -= l.amount.amount();
            }
            seqs.push(l.seq);
        }
        (credits, debits, seqs)
    };
    let since = START.plus_micros(10_000_000);
    let until = START.plus_micros(20_000_000);
    let in_range = move |l: &crate::HistoryLine| l.created_at >= since && l.created_at < until;
    type Filter = (
        Vec<TransactionKind>,
        Vec<TransactionStatus>,
        Option<Timestamp>,
        Option<Timestamp>,
    );
    type Keep<'a> = Box<dyn Fn(&crate::HistoryLine) -> bool + 'a>;
    let filters: Vec<(Filter, Keep)> = vec![
        (
            (vec![TransactionKind::TopUp], vec![], None, None),
            Box::new(|l| l.kind == TransactionKind::TopUp),
        ),
        (
            (vec![TransactionKind::Withdrawal], vec![], None, None),
            Box::new(|l| l.kind == TransactionKind::Withdrawal),
        ),
        (
            (vec![], vec![], Some(since), Some(until)),
            Box::new(in_range),
        ),
        (
            (vec![], vec![], Some(since), None),
            Box::new(move |l| l.created_at >= since),
        ),
        (
            (vec![], vec![], None, Some(until)),
            Box::new(move |l| l.created_at < until),
        ),
        (
            (
                vec![TransactionKind::Withdrawal],
                vec![TransactionStatus::Completed],
                Some(since),
                Some(until),
            ),
            Box::new(move |l| l.kind == TransactionKind::Withdrawal && in_range(l)),
        ),
        (
            (vec![], vec![TransactionStatus::Pending], None, None),
            Box::new(|_| false),
        ),
        (
            (vec![TransactionKind::Transfer], vec![], None, None),
            Box::new(|_| false),
        ),
        (
            (vec![], vec![], Some(START.plus_micros(100_000_000)), None),
            Box::new(|_| false),
        ),
    ];
    for ((kinds, statuses, s, u), keep) in filters {
        let (credits, debits, seqs) = sums(&*keep);
        let mut q = HistoryQuery::new(w.id);
        q.kinds = kinds.clone();
        q.statuses = statuses.clone();
        q.since = s;
        q.until = u;
        q.limit = 4;
        let mut got = Vec::new();
        loop {
            let page = f.ledger.history(&alice, q.clone()).await.unwrap();
            assert_eq!(
                page.totals.credits.amount(),
                credits,
                "{kinds:?} {statuses:?} {s:?} {u:?}"
            );
            assert_eq!(
                page.totals.debits.amount(),
                debits,
                "{kinds:?} {statuses:?} {s:?} {u:?}"
            );
            got.extend(page.lines.iter().map(|l| l.seq));
            match page.next {
                Some(c) => q.after = Some(c),
                None => break,
            }
        }
        assert_eq!(got, seqs, "{kinds:?} {statuses:?} {s:?} {u:?}");
    }
}

pub async fn history_rejects_bad_queries<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "1").await;
    let b = f.funded(&bob, "USD", "1").await;
    let mut q = HistoryQuery::new(a.id);
    q.limit = 0;
    assert_code(f.ledger.history(&alice, q.clone()).await, "invalid_query");
    q.limit = 201;
    assert_code(f.ledger.history(&alice, q.clone()).await, "invalid_query");
    q.limit = 10;
    q.since = Some(START);
    q.until = Some(START);
    assert_code(f.ledger.history(&alice, q.clone()).await, "invalid_query");
    let mut q = HistoryQuery::new(a.id);
    q.after = Some(HistoryCursor::new(b.id, 1));
    assert_code(f.ledger.history(&alice, q).await, "invalid_cursor");
    assert_code("h1.nope".parse::<HistoryCursor>(), "invalid_cursor");
    assert_code(
        f.ledger.history(&alice, HistoryQuery::new(b.id)).await,
        "forbidden",
    );
    assert!(
        f.ledger
            .history(&f.admin, HistoryQuery::new(b.id))
            .await
            .is_ok()
    );
    let missing = WalletId::new(b.id.get() + 1_000_000).unwrap();
    assert_code(
        f.ledger.history(&f.admin, HistoryQuery::new(missing)).await,
        "wallet_not_found",
    );
}

pub async fn clock_stepping_back_keeps_entries_ordered<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.wallet(&alice, "USD").await;
    let b = f.wallet(&bob, "USD").await;
    f.clock.set(START.plus_micros(10_000_000));
    f.ledger
        .deposit(&alice, DepositRequest::new(a.id, d("10"), f.key()))
        .await
        .unwrap();
    // The clock steps back an hour (NTP correction, VM migration).
    f.clock.set(START.plus_micros(10_000_000 - 3_600_000_000));
    let r = f
        .ledger
        .transfer(&alice, TransferRequest::new(a.id, b.id, d("1"), f.key()))
        .await
        .unwrap();
    assert_eq!(
        r.transaction.created_at,
        START.plus_micros(10_000_000),
        "never before the wallet's latest entry"
    );
    let page = f
        .ledger
        .history(&alice, HistoryQuery::new(a.id))
        .await
        .unwrap();
    assert!(
        page.lines
            .windows(2)
            .all(|p| p[0].created_at >= p[1].created_at)
    );
    // A transaction is one instant for all its legs, even for a wallet with no earlier entry.
    let bobs = f
        .ledger
        .history(&bob, HistoryQuery::new(b.id))
        .await
        .unwrap();
    assert_eq!(bobs.lines[0].created_at, r.transaction.created_at);
    f.assert_verified().await;
}

pub async fn amount_bounds_are_configurable<T: Store + Clone>(store: T) {
    let config = Config::new()
        .with_amount_bounds(AmountBounds::new(d("1.00"), d("500")).unwrap())
        .unwrap()
        .with_currency_amount_bounds("JPY", AmountBounds::new(d("100"), d("50000")).unwrap())
        .unwrap();
    let f = Fixture::with_config(store, config).await;
    let alice = f.user().await;
    let usd = f.wallet(&alice, "USD").await;
    let jpy = f.wallet(&alice, "JPY").await;
    match f
        .ledger
        .deposit(&alice, DepositRequest::new(usd.id, d("0.99"), f.key()))
        .await
    {
        Err(crate::Error::AmountBelowMinimum { minimum }) => {
            assert_eq!(minimum.amount(), d("1.00"))
        }
        other => panic!("expected amount_below_minimum, got {other:?}"),
    }
    match f
        .ledger
        .deposit(&alice, DepositRequest::new(usd.id, d("500.01"), f.key()))
        .await
    {
        Err(crate::Error::AmountAboveMaximum { maximum }) => {
            assert_eq!(maximum.amount(), d("500.00"))
        }
        other => panic!("expected amount_above_maximum, got {other:?}"),
    }
    assert_code(
        f.ledger
            .deposit(&alice, DepositRequest::new(jpy.id, d("99"), f.key()))
            .await,
        "amount_below_minimum",
    );
    f.ledger
        .deposit(&alice, DepositRequest::new(usd.id, d("500"), f.key()))
        .await
        .unwrap();
    f.ledger
        .deposit(&alice, DepositRequest::new(jpy.id, d("50000"), f.key()))
        .await
        .unwrap();
    assert_code(
        f.ledger
            .deposit(&alice, DepositRequest::new(jpy.id, d("50001"), f.key()))
            .await,
        "amount_above_maximum",
    );
}

pub async fn verify_requires_admin_and_passes<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "100").await;
    let b = f.funded(&bob, "USD", "7").await;
    let e = f.funded(&bob, "EUR", "3").await;
    f.ledger
        .transfer(&alice, TransferRequest::new(a.id, b.id, d("40"), f.key()))
        .await
        .unwrap();
    f.ledger
        .withdraw(&bob, WithdrawRequest::new(e.id, d("1"), f.key()))
        .await
        .unwrap();
    assert_code(f.ledger.verify(&alice).await, "forbidden");
    let report = f.ledger.verify(&f.admin).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    // Two currencies, each with its three system accounts: 3 wallets + 6 system accounts.
    assert_eq!(report.accounts, 9);
    assert_eq!(report.transactions, 5);
    assert_eq!(report.entries, 10);
    let usd = crate::currency::Currency::iso("USD").unwrap().code();
    let eur = crate::currency::Currency::iso("EUR").unwrap().code();
    assert_eq!(report.customer_balances[&usd], 10_700);
    assert_eq!(report.customer_balances[&eur], 200);
}

pub async fn concurrent_transfers_conserve_money<T: Store + Clone>(store: T) {
    let f = std::sync::Arc::new(Fixture::new(store).await);
    let mut owners = Vec::new();
    let mut wallets = Vec::new();
    for _ in 0..8 {
        let who = f.user().await;
        wallets.push(f.funded(&who, "USD", "100").await);
        owners.push(who);
    }
    let mut tasks = Vec::new();
    for t in 0..8usize {
        let f = std::sync::Arc::clone(&f);
        let owners = owners.clone();
        let ids: Vec<WalletId> = wallets.iter().map(|w| w.id).collect();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u32;
            for i in 0..50usize {
                let from = (t + i) % ids.len();
                let to = (t * 3 + i * 7 + 1) % ids.len();
                if from == to {
                    continue;
                }
                let amount = d(&format!("{}.{:02}", i % 7 + 1, (i * 13) % 100));
                let req = TransferRequest::new(ids[from], ids[to], amount, format!("c-{t}-{i}"));
                match f.ledger.transfer(&owners[from], req).await {
                    Ok(_) => ok += 1,
                    Err(e) => assert_eq!(e.code(), "insufficient_funds"),
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    assert!(ok > 0);
    let mut total = rust_decimal::Decimal::ZERO;
    for w in &wallets {
        let bal = f.balance(w).await;
        assert!(bal >= rust_decimal::Decimal::ZERO);
        total += bal;
    }
    assert_eq!(total, d("800"));
    f.assert_verified().await;
}

pub async fn health_reports_reachability_schema_and_commits<T: Store + Clone>(store: T) {
    use crate::health::BackendHealth;
    use crate::time::{Clock, SystemClock};

    let fresh = store.health().await;
    assert!(fresh.is_healthy(), "{fresh:?}");
    assert!(fresh.reachable);
    assert!(fresh.schema_supported > 0);
    assert_eq!(fresh.schema_version, Some(fresh.schema_supported));
    assert_eq!(fresh.last_commit, None, "nothing was written yet");
    assert_eq!(fresh.problem, None);

    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let w = f.wallet(&alice, "USD").await;
    let before = SystemClock.now();
    f.ledger
        .deposit(&alice, DepositRequest::new(w.id, d("5"), f.key()))
        .await
        .unwrap();
    let after = SystemClock.now();
    let h = f.ledger.health().await;
    assert!(h.is_healthy(), "{h:?}");
    let last = h.last_commit.expect("a commit was made");
    assert!(
        before <= last && last <= after,
        "last commit {last} outside [{before}, {after}]"
    );
    match h.backend {
        BackendHealth::Sqlite {
            writer_queued,
            writer_queue_capacity,
            commits,
        } => {
            // Nothing is being written now: the queue is empty; every write above committed.
            assert_eq!(writer_queued, 0);
            assert!(writer_queue_capacity >= 1);
            assert!(commits >= 5, "{commits} commits");
        }
        BackendHealth::MySql {
            connections,
            idle,
            connections_max,
        } => {
            assert!(
                connections >= 1,
                "the health check itself used a connection"
            );
            assert!(idle <= connections && connections <= connections_max);
        }
    }
}
