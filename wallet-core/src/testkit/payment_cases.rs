//! Conformance cases of the money side: pending top-ups, holds, refunds, fees, merchants,
//! exchange, batches, limits, payment links, notifications and events, and reports.

use super::{Fixture, START, assert_code, d};
use crate::calendar::{Granularity, TimeZone};
use crate::config::Config;
use crate::fees::{FeeRule, FeeSchedule, RefundFeePolicy, Rounding};
use crate::ledger::{DepositRequest, MoveDetails, TransferRequest, WithdrawRequest};
use crate::links::LinkStatus;
use crate::notify::NotificationType;
use crate::payments::{
    BatchOp, ExchangeRequest, HoldRequest, HoldTarget, LinkRequest, PaymentRequest, RefundRequest,
};
use crate::store::Store;
use crate::transaction::{Receipt, TransactionKind, TransactionStatus};
use crate::wallet::{SystemAccount, Wallet, WalletKind};

const SECOND: i64 = 1_000_000;
const HOUR: i64 = 3600 * SECOND;
const DAY: i64 = 24 * HOUR;

/// An exchange of `amount` from `from` to `to` at 0.9, rounded half-even.
pub(crate) fn exchange_at_0_9(
    from: &Wallet,
    to: &Wallet,
    amount: &str,
    key: String,
) -> ExchangeRequest {
    ExchangeRequest {
        from: from.id.into(),
        to: to.id.into(),
        rate: d("0.9"),
        rounding: Rounding::HalfEven,
        details: details(amount, key),
    }
}

pub(crate) fn details(amount: &str, key: String) -> MoveDetails {
    MoveDetails {
        amount: d(amount),
        description: None,
        metadata: None,
        idempotency_key: key,
    }
}

fn fee_leg(r: &Receipt) -> Option<rust_decimal::Decimal> {
    r.transaction
        .legs
        .iter()
        .find(|l| l.system == Some(SystemAccount::FeeRevenue))
        .map(|l| l.amount.amount())
}

async fn held<T: Store + Clone>(f: &Fixture<T>, w: &Wallet) -> (String, String, String) {
    let w = f.reload(w).await;
    (
        w.balance.amount().to_string(),
        w.held.amount().to_string(),
        w.available.amount().to_string(),
    )
}

pub async fn pending_top_ups_follow_the_gateway<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let w = f.wallet(&alice, "USD").await;
    let req = |key: String| DepositRequest::new(w.id, d("40"), key);
    let r = f
        .ledger
        .top_up_pending(&alice, req(f.key()), "gw-1")
        .await
        .unwrap();
    assert_eq!(r.transaction.status, TransactionStatus::Pending);
    assert!(r.transaction.legs.is_empty());
    let p = r.transaction.pending.clone().unwrap();
    assert_eq!(p.gateway_ref.unwrap().as_str(), "gw-1");
    assert_eq!(p.expires_at, START.plus_micros(DAY));
    assert_eq!(f.balance(&w).await, d("0"));
    // One reference, one top-up.
    assert_code(
        f.ledger.top_up_pending(&alice, req(f.key()), "gw-1").await,
        "gateway_reference_exists",
    );
    // Only staff (the host's gateway account) report verdicts; unknown references are typed.
    assert_code(
        f.ledger.gateway_callback(&alice, "gw-1", true).await,
        "forbidden",
    );
    assert_code(
        f.ledger.gateway_callback(&f.admin, "gw-x", true).await,
        "gateway_reference_not_found",
    );
    let done = f
        .ledger
        .gateway_callback(&f.admin, "gw-1", true)
        .await
        .unwrap();
    assert_eq!(done.transaction.id, r.transaction.id);
    assert_eq!(done.transaction.status, TransactionStatus::Completed);
    assert_eq!(f.balance(&w).await, d("40"));
    // The callback is idempotent; the opposite verdict afterwards is refused.
    let again = f
        .ledger
        .gateway_callback(&f.admin, "gw-1", true)
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(f.balance(&w).await, d("40"));
    assert_code(
        f.ledger.gateway_callback(&f.admin, "gw-1", false).await,
        "not_pending",
    );

    // A failed top-up credits nothing.
    f.ledger
        .top_up_pending(&alice, req(f.key()), "gw-2")
        .await
        .unwrap();
    let failed = f
        .ledger
        .gateway_callback(&f.admin, "gw-2", false)
        .await
        .unwrap();
    assert_eq!(failed.transaction.status, TransactionStatus::Failed);
    assert!(
        f.ledger
            .gateway_callback(&f.admin, "gw-2", false)
            .await
            .unwrap()
            .replayed
    );
    assert_eq!(f.balance(&w).await, d("40"));

    // Past the timeout, a late success is refused and the top-up has failed.
    let late = f
        .ledger
        .top_up_pending(&alice, req(f.key()), "gw-3")
        .await
        .unwrap();
    f.clock.advance_micros(DAY);
    assert_code(
        f.ledger.gateway_callback(&f.admin, "gw-3", true).await,
        "pending_expired",
    );
    let t = f
        .ledger
        .transaction(&alice, late.transaction.reference)
        .await
        .unwrap();
    assert_eq!(t.status, TransactionStatus::Failed);
    assert_eq!(f.balance(&w).await, d("40"));

    // The sweep fails the rest; staff may cancel one first.
    let cancelled = f
        .ledger
        .top_up_pending(&alice, req(f.key()), "gw-4")
        .await
        .unwrap();
    f.ledger
        .top_up_pending(&alice, req(f.key()), "gw-5")
        .await
        .unwrap();
    // A pending top-up is the gateway's (staff's) to resolve, not its owner's.
    assert_code(
        f.ledger
            .cancel(&alice, cancelled.transaction.reference)
            .await,
        "forbidden",
    );
    let c = f
        .ledger
        .cancel(&f.admin, cancelled.transaction.reference)
        .await
        .unwrap();
    assert_eq!(c.transaction.status, TransactionStatus::Cancelled);
    assert_code(f.ledger.expire_due(&alice, 100).await, "forbidden");
    assert_eq!(f.ledger.expire_due(&f.admin, 100).await.unwrap(), 0);
    f.clock.advance_micros(DAY);
    assert_eq!(f.ledger.expire_due(&f.admin, 100).await.unwrap(), 1);
    assert_code(
        f.ledger.gateway_callback(&f.admin, "gw-5", true).await,
        "not_pending",
    );
    f.assert_verified().await;
}

pub async fn holds_reserve_then_capture_void_or_expire<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "100").await;
    let b = f.wallet(&bob, "USD").await;
    let hold = |amount: &str, key: String, target: HoldTarget, ttl: Option<i64>| HoldRequest {
        wallet: a.id.into(),
        target,
        details: details(amount, key),
        ttl_micros: ttl,
    };
    let h = f
        .ledger
        .hold(
            &alice,
            hold("30", f.key(), HoldTarget::Wallet(b.id.into()), None),
        )
        .await
        .unwrap();
    assert_eq!(h.transaction.status, TransactionStatus::Pending);
    assert_eq!(
        held(&f, &a).await,
        ("100.00".into(), "30.00".into(), "70.00".into())
    );
    // Funds checks use what is available.
    assert_code(
        f.ledger
            .withdraw(&alice, WithdrawRequest::new(a.id, d("80"), f.key()))
            .await,
        "insufficient_funds",
    );
    // Strangers cannot settle it; the payee can.
    let carol = f.user().await;
    assert_code(
        f.ledger
            .capture(&carol, h.transaction.reference, None)
            .await,
        "forbidden",
    );
    // A pending hold is not refundable: its parties are told so; a stranger learns nothing.
    let refund_hold = |key: String| RefundRequest {
        transaction: h.transaction.reference,
        amount: None,
        description: None,
        idempotency_key: key,
    };
    assert_code(
        f.ledger.refund(&bob, refund_hold(f.key())).await,
        "not_refundable",
    );
    assert_code(
        f.ledger.refund(&carol, refund_hold(f.key())).await,
        "forbidden",
    );
    assert_code(
        f.ledger
            .capture(&bob, h.transaction.reference, Some(d("30.01")))
            .await,
        "capture_exceeds_hold",
    );
    let c = f
        .ledger
        .capture(&bob, h.transaction.reference, Some(d("20")))
        .await
        .unwrap();
    assert_eq!(c.transaction.status, TransactionStatus::Completed);
    assert_eq!(c.transaction.amount.amount(), d("20"));
    assert_eq!(
        held(&f, &a).await,
        ("80.00".into(), "0.00".into(), "80.00".into())
    );
    assert_eq!(f.balance(&b).await, d("20"));
    // Repeating the capture returns it; anything else is refused.
    assert!(
        f.ledger
            .capture(&bob, h.transaction.reference, Some(d("20")))
            .await
            .unwrap()
            .replayed
    );
    assert_code(
        f.ledger.capture(&bob, h.transaction.reference, None).await,
        "not_pending",
    );
    assert_code(
        f.ledger.cancel(&alice, h.transaction.reference).await,
        "not_pending",
    );

    // A void releases everything; repeating it returns it.
    let v = f
        .ledger
        .hold(&alice, hold("50", f.key(), HoldTarget::Outside, None))
        .await
        .unwrap();
    assert_eq!(
        held(&f, &a).await,
        ("80.00".into(), "50.00".into(), "30.00".into())
    );
    let voided = f
        .ledger
        .cancel(&alice, v.transaction.reference)
        .await
        .unwrap();
    assert_eq!(voided.transaction.status, TransactionStatus::Cancelled);
    assert!(
        f.ledger
            .cancel(&alice, v.transaction.reference)
            .await
            .unwrap()
            .replayed
    );
    assert_eq!(
        held(&f, &a).await,
        ("80.00".into(), "0.00".into(), "80.00".into())
    );

    // An expired hold cannot be captured and gives its money back.
    let e = f
        .ledger
        .hold(
            &alice,
            hold("10", f.key(), HoldTarget::Outside, Some(SECOND)),
        )
        .await
        .unwrap();
    f.clock.advance_micros(2 * SECOND);
    assert_code(
        f.ledger
            .capture(&alice, e.transaction.reference, None)
            .await,
        "pending_expired",
    );
    let t = f
        .ledger
        .transaction(&alice, e.transaction.reference)
        .await
        .unwrap();
    assert_eq!(t.status, TransactionStatus::Expired);
    assert_eq!(
        held(&f, &a).await,
        ("80.00".into(), "0.00".into(), "80.00".into())
    );

    // A lapsed hold stops counting as soon as money next leaves the wallet.
    f.ledger
        .hold(
            &alice,
            hold("70", f.key(), HoldTarget::Outside, Some(SECOND)),
        )
        .await
        .unwrap();
    f.clock.advance_micros(2 * SECOND);
    f.ledger
        .withdraw(&alice, WithdrawRequest::new(a.id, d("75"), f.key()))
        .await
        .unwrap();
    assert_eq!(
        held(&f, &a).await,
        ("5.00".into(), "0.00".into(), "5.00".into())
    );
    // Holds of top-ups and exchanges do not exist.
    assert_code(
        f.ledger
            .hold(&alice, hold("0", f.key(), HoldTarget::Outside, None))
            .await,
        "amount_not_positive",
    );
    assert_code(
        f.ledger
            .hold(&alice, hold("1", f.key(), HoldTarget::Outside, Some(0)))
            .await,
        "invalid_query",
    );
    f.assert_verified().await;
}

pub async fn refunds_reverse_exactly_the_original<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let carol = f.user().await;
    let a = f.funded(&alice, "USD", "100").await;
    let b = f.wallet(&bob, "USD").await;
    let t = f
        .ledger
        .transfer(&alice, TransferRequest::new(a.id, b.id, d("40"), f.key()))
        .await
        .unwrap()
        .transaction;
    let refund = |amount: Option<&str>, key: String| RefundRequest {
        transaction: t.reference,
        amount: amount.map(d),
        description: Some("returned".into()),
        idempotency_key: key,
    };
    // Only the recipient (or a SUPERUSER) gives money back.
    assert_code(
        f.ledger.refund(&alice, refund(Some("1"), f.key())).await,
        "forbidden",
    );
    assert_code(
        f.ledger.refund(&carol, refund(Some("1"), f.key())).await,
        "forbidden",
    );
    let key = f.key();
    let r1 = f
        .ledger
        .refund(&bob, refund(Some("15"), key.clone()))
        .await
        .unwrap();
    assert_eq!(r1.transaction.kind, TransactionKind::Refund);
    assert_eq!(r1.transaction.original, Some(t.reference));
    assert_eq!(f.balance(&a).await, d("75"));
    assert_eq!(f.balance(&b).await, d("25"));
    assert!(
        f.ledger
            .refund(&bob, refund(Some("15"), key))
            .await
            .unwrap()
            .replayed
    );
    let o = f.ledger.transaction(&alice, t.reference).await.unwrap();
    assert_eq!(o.status, TransactionStatus::PartiallyRefunded);
    assert_eq!(o.refunded.amount(), d("15"));
    assert_code(
        f.ledger.refund(&bob, refund(Some("25.01"), f.key())).await,
        "refund_exceeds_original",
    );
    // The recipient must still have the money.
    f.ledger
        .withdraw(&bob, WithdrawRequest::new(b.id, d("20"), f.key()))
        .await
        .unwrap();
    assert_code(
        f.ledger.refund(&bob, refund(None, f.key())).await,
        "insufficient_funds",
    );
    f.ledger
        .deposit(&bob, DepositRequest::new(b.id, d("20"), f.key()))
        .await
        .unwrap();
    let r2 = f.ledger.refund(&bob, refund(None, f.key())).await.unwrap();
    assert_eq!(r2.transaction.amount.amount(), d("25"));
    let o = f.ledger.transaction(&alice, t.reference).await.unwrap();
    assert_eq!(o.status, TransactionStatus::Refunded);
    assert_code(
        f.ledger.refund(&bob, refund(None, f.key())).await,
        "not_refundable",
    );
    assert_eq!(f.balance(&a).await, d("100"));
    assert_eq!(f.balance(&b).await, d("0"));
    // A refund is not refunded.
    assert_code(
        f.ledger
            .refund(
                &f.root,
                RefundRequest {
                    transaction: r2.transaction.reference,
                    amount: None,
                    description: None,
                    idempotency_key: f.key(),
                },
            )
            .await,
        "not_refundable",
    );

    // Refunding a top-up takes the money back out to where it came from, once.
    let top = f
        .ledger
        .deposit(&alice, DepositRequest::new(a.id, d("30"), f.key()))
        .await
        .unwrap()
        .transaction;
    let top_refund = |amount: &str, key: String| RefundRequest {
        transaction: top.reference,
        amount: Some(d(amount)),
        description: None,
        idempotency_key: key,
    };
    assert_code(
        f.ledger.refund(&alice, top_refund("30", f.key())).await,
        "forbidden",
    );
    let r = f
        .ledger
        .refund(&f.root, top_refund("30", f.key()))
        .await
        .unwrap();
    assert!(
        r.transaction
            .legs
            .iter()
            .any(|l| l.system == Some(SystemAccount::External) && l.amount.amount() == d("30"))
    );
    assert_eq!(f.balance(&a).await, d("100"));
    assert_code(
        f.ledger.refund(&f.root, top_refund("1", f.key())).await,
        "not_refundable",
    );
    f.assert_verified().await;
}

fn fee_config(policy: RefundFeePolicy) -> Config {
    let transfer =
        FeeRule::new(d("0.50"), d("1"), d("0.10"), Some(d("5")), Rounding::HalfUp).unwrap();
    let top_up = FeeRule::new(d("0"), d("2"), d("0"), None, Rounding::Down).unwrap();
    Config::default()
        .with_fees(
            FeeSchedule::new()
                .with(TransactionKind::Transfer, transfer)
                .with(TransactionKind::TopUp, top_up),
        )
        .with_refund_fee_policy(policy)
}

pub async fn fees_are_collected_in_the_same_transaction<T: Store + Clone>(store: T) {
    let f = Fixture::with_config(store, fee_config(RefundFeePolicy::Return)).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.wallet(&alice, "USD").await;
    let top = f
        .ledger
        .deposit(&alice, DepositRequest::new(a.id, d("200"), f.key()))
        .await
        .unwrap();
    // 2% of a top-up, rounded down, comes out of what arrives.
    assert_eq!(fee_leg(&top), Some(d("4")));
    assert_eq!(f.balance(&a).await, d("196"));
    let b = f.wallet(&bob, "USD").await;
    // 0.50 + 1% of 100 = 1.50, paid by the sender on top of the amount.
    let t = f
        .ledger
        .transfer(&alice, TransferRequest::new(a.id, b.id, d("100"), f.key()))
        .await
        .unwrap();
    assert_eq!(fee_leg(&t), Some(d("1.50")));
    assert_eq!(f.balance(&a).await, d("94.50"));
    assert_eq!(f.balance(&b).await, d("100"));
    // The fee counts against available money; the maximum caps it.
    assert_code(
        f.ledger
            .transfer(&alice, TransferRequest::new(a.id, b.id, d("94"), f.key()))
            .await,
        "insufficient_funds",
    );
    let big = f
        .ledger
        .transfer(&alice, TransferRequest::new(a.id, b.id, d("89"), f.key()))
        .await
        .unwrap();
    assert_eq!(fee_leg(&big), Some(d("1.39")));
    // With the Return policy a full refund gives the fee back too.
    f.ledger
        .refund(
            &bob,
            RefundRequest {
                transaction: t.transaction.reference,
                amount: None,
                description: None,
                idempotency_key: f.key(),
            },
        )
        .await
        .unwrap();
    assert_eq!(f.balance(&a).await, d("4.11") + d("101.50") - d("0.00"));
    f.assert_verified().await;
}

pub async fn merchants_are_paid_once_per_order<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let shop = f.user().await;
    let alice = f.user().await;
    let personal = f.wallet(&shop, "USD").await;
    assert_code(
        f.ledger.register_merchant(&shop, personal.id, "Shop").await,
        "merchant_rejected",
    );
    let till = f.wallet_of_kind(&shop, WalletKind::Business, "USD").await;
    assert_code(
        f.ledger.register_merchant(&alice, till.id, "Shop").await,
        "forbidden",
    );
    let m = f
        .ledger
        .register_merchant(&shop, till.id, "Shop")
        .await
        .unwrap();
    // Registering again is idempotent; another name is refused.
    assert_eq!(
        f.ledger
            .register_merchant(&shop, till.id, "Shop")
            .await
            .unwrap(),
        m
    );
    assert_code(
        f.ledger.register_merchant(&shop, till.id, "Other").await,
        "merchant_rejected",
    );
    let a = f.funded(&alice, "USD", "100").await;
    let pay = |order: &str, amount: &str, key: String| PaymentRequest {
        from: a.id.into(),
        merchant: m.id,
        order: order.into(),
        details: details(amount, key),
    };
    let p = f
        .ledger
        .pay_merchant(&alice, pay("A-1", "25", f.key()))
        .await
        .unwrap();
    assert_eq!(p.transaction.kind, TransactionKind::Payment);
    assert_eq!(f.balance(&till).await, d("25"));
    let again = f
        .ledger
        .pay_merchant(&alice, pay("A-1", "25", f.key()))
        .await;
    assert_code(again, "order_already_paid");
    assert_code(
        f.ledger
            .pay_merchant(
                &alice,
                PaymentRequest {
                    merchant: crate::ids::MerchantId::new(999).unwrap(),
                    ..pay("A-9", "1", f.key())
                },
            )
            .await,
        "merchant_not_found",
    );
    // A held payment that is voided frees its order.
    let h = f
        .ledger
        .hold(
            &alice,
            HoldRequest {
                wallet: a.id.into(),
                target: HoldTarget::Merchant {
                    merchant: m.id,
                    order: "A-2".into(),
                },
                details: details("10", f.key()),
                ttl_micros: None,
            },
        )
        .await
        .unwrap();
    assert_code(
        f.ledger
            .pay_merchant(&alice, pay("A-2", "10", f.key()))
            .await,
        "order_already_paid",
    );
    f.ledger
        .cancel(&shop, h.transaction.reference)
        .await
        .unwrap();
    f.ledger
        .pay_merchant(&alice, pay("A-2", "10", f.key()))
        .await
        .unwrap();
    // The merchant refunds a payment it received.
    f.ledger
        .refund(
            &shop,
            RefundRequest {
                transaction: p.transaction.reference,
                amount: Some(d("5")),
                description: None,
                idempotency_key: f.key(),
            },
        )
        .await
        .unwrap();
    assert_eq!(f.balance(&a).await, d("70"));
    f.assert_verified().await;
}

pub async fn exchange_keeps_every_currency_balanced<T: Store + Clone>(store: T) {
    let config = Config::default()
        .with_reference_rate("USD", "EUR", d("0.9"))
        .unwrap()
        .with_reference_rate("USD", "JPY", d("150"))
        .unwrap()
        .with_reference_rate("USD", "CHF", d("0.000001"))
        .unwrap();
    let f = Fixture::with_config(store, config).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let usd = f.funded(&alice, "USD", "100").await;
    let eur = f.wallet(&alice, "EUR").await;
    let jpy = f.wallet(&alice, "JPY").await;
    let chf = f.wallet(&alice, "CHF").await;
    let ex = |to: &Wallet, rate: &str, amount: &str, rounding, key: String| ExchangeRequest {
        from: usd.id.into(),
        to: to.id.into(),
        rate: d(rate),
        rounding,
        details: details(amount, key),
    };
    let r = f
        .ledger
        .exchange(&alice, ex(&eur, "0.9", "10", Rounding::HalfEven, f.key()))
        .await
        .unwrap();
    assert_eq!(r.transaction.kind, TransactionKind::Exchange);
    assert_eq!(f.balance(&usd).await, d("90"));
    assert_eq!(f.balance(&eur).await, d("9"));
    assert_eq!(r.transaction.legs.len(), 4);
    // 0.33 USD at 150.5 JPY = 49.665 JPY: down gives 49, up gives 50.
    f.ledger
        .exchange(&alice, ex(&jpy, "150.5", "0.33", Rounding::Down, f.key()))
        .await
        .unwrap();
    assert_eq!(f.balance(&jpy).await, d("49"));
    f.ledger
        .exchange(&alice, ex(&jpy, "150.5", "0.33", Rounding::Up, f.key()))
        .await
        .unwrap();
    assert_eq!(f.balance(&jpy).await, d("99"));
    assert_code(
        f.ledger
            .exchange(&alice, ex(&eur, "0", "1", Rounding::Down, f.key()))
            .await,
        "invalid_rate",
    );
    assert_code(
        f.ledger
            .exchange(
                &alice,
                ex(&chf, "0.000001", "0.01", Rounding::Down, f.key()),
            )
            .await,
        "invalid_rate",
    );
    // A caller's rate cannot mint money: it must stay within 1% of the reference rate, and a
    // pair without one cannot be exchanged at all.
    assert_code(
        f.ledger
            .exchange(&alice, ex(&eur, "1000000", "1", Rounding::Down, f.key()))
            .await,
        "invalid_rate",
    );
    assert_code(
        f.ledger
            .exchange(&alice, ex(&eur, "0.9091", "1", Rounding::Down, f.key()))
            .await,
        "invalid_rate",
    );
    let gbp = f.wallet(&alice, "GBP").await;
    assert_code(
        f.ledger
            .exchange(&alice, ex(&gbp, "0.8", "1", Rounding::Down, f.key()))
            .await,
        "invalid_rate",
    );
    let bob_eur = f.wallet(&bob, "EUR").await;
    assert_code(
        f.ledger
            .exchange(&alice, ex(&bob_eur, "0.9", "1", Rounding::Down, f.key()))
            .await,
        "forbidden",
    );
    let report = f.ledger.verify(&f.admin).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
}

pub async fn batches_apply_all_or_nothing<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "50").await;
    let b = f.wallet(&bob, "USD").await;
    let before = f.snapshot(&[&a, &b]).await;
    let failing = vec![
        BatchOp::Transfer(TransferRequest::new(a.id, b.id, d("30"), f.key())),
        BatchOp::Withdraw(WithdrawRequest::new(a.id, d("30"), f.key())),
    ];
    assert_code(f.ledger.batch(&alice, failing).await, "insufficient_funds");
    assert_eq!(f.snapshot(&[&a, &b]).await, before);
    let ok = f
        .ledger
        .batch(
            &alice,
            vec![
                BatchOp::Transfer(TransferRequest::new(a.id, b.id, d("30"), f.key())),
                BatchOp::Withdraw(WithdrawRequest::new(a.id, d("20"), f.key())),
            ],
        )
        .await
        .unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(f.balance(&a).await, d("0"));
    assert_eq!(f.balance(&b).await, d("30"));
    assert_code(f.ledger.batch(&alice, Vec::new()).await, "invalid_batch");
    let many = (0..101)
        .map(|_| BatchOp::Withdraw(WithdrawRequest::new(a.id, d("1"), f.key())))
        .collect();
    assert_code(f.ledger.batch(&alice, many).await, "invalid_batch");
    f.assert_verified().await;
}

pub async fn limits_follow_the_local_calendar<T: Store + Clone>(store: T) {
    let zone = TimeZone::named("America/New_York").unwrap();
    let f = Fixture::with_config(store, Config::default().with_time_zone(zone)).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "10000").await;
    let b = f.wallet(&bob, "USD").await;
    let limits = f.ledger.limits(&alice, a.id).await.unwrap();
    assert_eq!(limits.per_transaction.amount(), d("25000"));
    assert_eq!(limits.daily.amount(), d("50000"));
    assert_eq!(limits.monthly.amount(), d("500000"));
    // Lowering is the owner's call; raising is staff's.
    f.ledger
        .set_limits(&alice, a.id, Some((d("100"), d("150"), d("300"))))
        .await
        .unwrap();
    assert_code(
        f.ledger
            .set_limits(&alice, a.id, Some((d("100"), d("200"), d("300"))))
            .await,
        "forbidden",
    );
    assert_code(
        f.ledger
            .set_limits(&alice, a.id, Some((d("100"), d("50"), d("300"))))
            .await,
        "invalid_limits",
    );
    let send = |amount: &str, key: String| TransferRequest::new(a.id, b.id, d(amount), key);
    assert_code(
        f.ledger.transfer(&alice, send("100.01", f.key())).await,
        "limit_exceeded",
    );
    f.ledger
        .transfer(&alice, send("100", f.key()))
        .await
        .unwrap();
    match f.ledger.transfer(&alice, send("60", f.key())).await {
        Err(crate::Error::LimitExceeded { limit, remaining }) => {
            assert_eq!(limit, crate::limits::LimitKind::Daily);
            assert_eq!(remaining.amount(), d("50"));
        }
        other => panic!("expected the daily limit, got {other:?}"),
    }
    // START is 2026-01-01T00:00Z, which is 19:00 on Dec 31 in New York: the local day ends
    // at 05:00Z, not at midnight UTC.
    f.clock.set(START.plus_micros(4 * HOUR));
    assert_code(
        f.ledger.transfer(&alice, send("60", f.key())).await,
        "limit_exceeded",
    );
    f.clock.set(START.plus_micros(5 * HOUR));
    // A new day, and a new month (January in New York): only the monthly spend of January
    // counts, so December's 100 is forgotten too.
    f.ledger
        .transfer(&alice, send("100", f.key()))
        .await
        .unwrap();
    let l = f.ledger.limits(&alice, a.id).await.unwrap();
    assert_eq!(l.spent_today.amount(), d("100"));
    assert_eq!(l.spent_this_month.amount(), d("100"));
    // Staff may raise them.
    f.ledger
        .set_limits(&f.admin, a.id, Some((d("1000"), d("2000"), d("3000"))))
        .await
        .unwrap();
    f.ledger
        .transfer(&alice, send("500", f.key()))
        .await
        .unwrap();
    f.assert_verified().await;
}

pub async fn payment_links_are_paid_once<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let seller = f.user().await;
    let buyer = f.user().await;
    let other = f.user().await;
    let s = f.wallet(&seller, "USD").await;
    let bw = f.funded(&buyer, "USD", "100").await;
    let ow = f.funded(&other, "USD", "100").await;
    let req = |key: String| LinkRequest {
        wallet: s.id.into(),
        amount: d("12.50"),
        description: Some("Invoice 7".into()),
        ttl_micros: DAY,
        idempotency_key: key,
    };
    let key = f.key();
    let link = f
        .ledger
        .create_link(&seller, req(key.clone()))
        .await
        .unwrap();
    assert_eq!(link.status, LinkStatus::Active);
    let code = link.code.to_string();
    assert!(code.starts_with("PL-") && code.len() == 35);
    // A retry finds the same link.
    assert_eq!(
        f.ledger.create_link(&seller, req(key)).await.unwrap().code,
        link.code
    );
    assert_code(
        f.ledger.create_link(&buyer, req(f.key())).await,
        "forbidden",
    );
    assert_code(
        f.ledger.pay_link(&seller, s.id, &code, &f.key()).await,
        "same_wallet",
    );
    let paid = f
        .ledger
        .pay_link(&buyer, bw.id, &code, &f.key())
        .await
        .unwrap();
    assert_eq!(paid.transaction.kind, TransactionKind::Payment);
    assert_eq!(f.balance(&s).await, d("12.50"));
    let view = f.ledger.link(&other, &code).await.unwrap();
    assert_eq!(view.status, LinkStatus::Paid);
    assert_eq!(view.paid_by, Some(paid.transaction.reference));
    assert_code(
        f.ledger.pay_link(&other, ow.id, &code, &f.key()).await,
        "link_not_payable",
    );
    assert_code(
        f.ledger.cancel_link(&seller, &code).await,
        "link_not_payable",
    );
    assert_code(f.ledger.link(&other, "PL-nope").await, "link_not_found");
    // Cancelled and expired links cannot be paid.
    let c = f
        .ledger
        .create_link(&seller, req(f.key()))
        .await
        .unwrap()
        .code
        .to_string();
    assert_code(f.ledger.cancel_link(&other, &c).await, "link_not_found");
    assert_eq!(
        f.ledger.cancel_link(&seller, &c).await.unwrap().status,
        LinkStatus::Cancelled
    );
    assert_code(
        f.ledger.pay_link(&other, ow.id, &c, &f.key()).await,
        "link_not_payable",
    );
    let e = f
        .ledger
        .create_link(&seller, req(f.key()))
        .await
        .unwrap()
        .code
        .to_string();
    f.clock.advance_micros(DAY);
    assert_eq!(
        f.ledger.link(&other, &e).await.unwrap().status,
        LinkStatus::Expired
    );
    assert_code(
        f.ledger.pay_link(&other, ow.id, &e, &f.key()).await,
        "link_not_payable",
    );

    // Many payers racing for one link: exactly one pays.
    let race = f
        .ledger
        .create_link(
            &seller,
            LinkRequest {
                ttl_micros: DAY,
                ..req(f.key())
            },
        )
        .await
        .unwrap()
        .code
        .to_string();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let payer = f.user().await;
        let w = f.funded(&payer, "USD", "20").await;
        let ledger = f.ledger.clone();
        let code = race.clone();
        let key = f.key();
        tasks.push(tokio::spawn(async move {
            ledger.pay_link(&payer, w.id, &code, &key).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => assert_eq!(e.code(), "link_not_payable"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(f.balance(&s).await, d("25"));
    f.assert_verified().await;
}

pub async fn notifications_and_events_record_every_change<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "50").await;
    let b = f.wallet(&bob, "USD").await;
    let cursor = f
        .ledger
        .events(&f.admin, 0, 1000)
        .await
        .unwrap()
        .last()
        .map_or(0, |e| e.id);
    let t = f
        .ledger
        .transfer(&alice, TransferRequest::new(a.id, b.id, d("5"), f.key()))
        .await
        .unwrap();
    let unread = f.ledger.unread_count(&bob, bob.user).await.unwrap();
    let page = f
        .ledger
        .notifications(&bob, bob.user, true, None, 50)
        .await
        .unwrap();
    assert_eq!(u64::try_from(page.items.len()).unwrap(), unread);
    let latest = &page.items[0];
    assert_eq!(latest.kind, NotificationType::Transaction);
    assert!(
        latest
            .message
            .contains(&t.transaction.reference.to_string())
    );
    assert!(!latest.read);
    // Nobody reads or marks another user's notifications.
    assert_code(
        f.ledger
            .notifications(&alice, bob.user, false, None, 50)
            .await,
        "forbidden",
    );
    assert_code(
        f.ledger.mark_read(&alice, bob.user, None).await,
        "forbidden",
    );
    assert_eq!(
        f.ledger
            .mark_read(&bob, bob.user, Some(vec![latest.id]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        f.ledger.unread_count(&bob, bob.user).await.unwrap(),
        unread - 1
    );
    f.ledger.mark_read(&bob, bob.user, None).await.unwrap();
    assert_eq!(f.ledger.unread_count(&bob, bob.user).await.unwrap(), 0);
    // Security events notify too.
    f.ledger
        .logout_everywhere(&alice, alice.user)
        .await
        .unwrap();
    let page = f
        .ledger
        .notifications(&alice, alice.user, false, None, 1)
        .await
        .unwrap();
    assert_eq!(page.items[0].kind, NotificationType::Security);
    assert!(page.next.is_some());
    // So does a failed sign-in, for the account's owner.
    let bob_user = f.ledger.user(&bob, bob.user).await.unwrap();
    let name = bob_user.profile.unwrap().username.as_str().to_owned();
    assert_code(
        f.ledger
            .login(&name, crate::auth::Password::new("not the password"))
            .await,
        "invalid_credentials",
    );
    let page = f
        .ledger
        .notifications(&bob, bob.user, true, None, 1)
        .await
        .unwrap();
    assert_eq!(page.items[0].title, "Failed sign-in");
    // The feed holds the changes in order, after the cursor; only staff read it.
    assert_code(f.ledger.events(&alice, 0, 10).await, "forbidden");
    let events = f.ledger.events(&f.admin, cursor, 1000).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "transaction.completed",
            "user.sessions_revoked",
            "security.login"
        ]
    );
    assert_eq!(events[2].subject, format!("user:{}", bob.user));
    assert!(
        events[0]
            .subject
            .contains(&t.transaction.reference.to_string())
    );
    assert!(
        events[0].payload.contains("\"amount\":\"5.00\""),
        "{}",
        events[0].payload
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    assert!(
        f.ledger
            .events(&f.admin, events[2].id, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Every user's notifications, newest first, as (title, read), read in pages of two.
async fn told<T: Store + Clone>(f: &Fixture<T>, who: &crate::actor::Actor) -> Vec<(String, bool)> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = f
            .ledger
            .notifications(who, who.user, false, before, 2)
            .await
            .unwrap();
        all.extend(page.items.iter().map(|n| (n.title.clone(), n.read)));
        match page.next {
            Some(next) => before = Some(next),
            None => return all,
        }
    }
}

/// Every kind of money movement tells each user whose wallet it touched once: a top-up, a
/// transfer with a fee (not its fee account), an exchange between one user's own wallets (one
/// notification, not two), a refund, a hold and its capture, a hold cancelled, a pending top-up
/// and its confirmation. Pages, unread counts and marks agree whatever a backend keeps where.
pub async fn every_movement_tells_each_user_once<T: Store + Clone>(store: T) {
    let config = fee_config(RefundFeePolicy::Return)
        .with_reference_rate("USD", "EUR", d("0.9"))
        .unwrap();
    let f = Fixture::with_config(store, config).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.wallet(&alice, "USD").await;
    let eur = f.wallet(&alice, "EUR").await;
    let b = f.wallet(&bob, "USD").await;
    let (mut to_alice, mut to_bob) = (told(&f, &alice).await, told(&f, &bob).await);
    // Checks that each user was told exactly `titles` (oldest first) since the last check.
    macro_rules! told_since {
        ($alice:expr, $bob:expr) => {
            for (who, was, titles) in [
                (&alice, &mut to_alice, &$alice[..]),
                (&bob, &mut to_bob, &$bob[..]),
            ] {
                let now = told(&f, who).await;
                let fresh: Vec<&str> = now[..now.len() - was.len()]
                    .iter()
                    .rev()
                    .map(|(t, _)| t.as_str())
                    .collect();
                assert_eq!(fresh, titles);
                assert_eq!(now[now.len() - was.len()..], was[..]);
                *was = now;
            }
        };
    }
    f.ledger
        .deposit(&alice, DepositRequest::new(a.id, d("200"), f.key()))
        .await
        .unwrap();
    told_since!(["Money received"], [] as [&str; 0]);
    let t = f
        .ledger
        .transfer(&alice, TransferRequest::new(a.id, b.id, d("100"), f.key()))
        .await
        .unwrap();
    told_since!(["Money sent"], ["Money received"]);
    f.ledger
        .exchange(&alice, exchange_at_0_9(&a, &eur, "10", f.key()))
        .await
        .unwrap();
    told_since!(["Money received"], [] as [&str; 0]);
    f.ledger
        .refund(
            &bob,
            RefundRequest {
                transaction: t.transaction.reference,
                amount: Some(d("30")),
                description: None,
                idempotency_key: f.key(),
            },
        )
        .await
        .unwrap();
    told_since!(["Money received"], ["Money sent"]);
    let hold = |key: String| HoldRequest {
        wallet: a.id.into(),
        target: HoldTarget::Wallet(b.id.into()),
        details: details("5", key),
        ttl_micros: None,
    };
    let h = f.ledger.hold(&alice, hold(f.key())).await.unwrap();
    told_since!(["Pending"], [] as [&str; 0]);
    f.ledger
        .capture(&bob, h.transaction.reference, None)
        .await
        .unwrap();
    told_since!(["Money sent"], ["Money received"]);
    let h = f.ledger.hold(&alice, hold(f.key())).await.unwrap();
    f.ledger
        .cancel(&alice, h.transaction.reference)
        .await
        .unwrap();
    told_since!(["Pending", "Cancelled"], [] as [&str; 0]);
    f.ledger
        .top_up_pending(
            &alice,
            DepositRequest::new(a.id, d("40"), f.key()),
            "gw-told",
        )
        .await
        .unwrap();
    f.ledger
        .gateway_callback(&f.admin, "gw-told", true)
        .await
        .unwrap();
    told_since!(["Pending", "Money received"], [] as [&str; 0]);

    // Counts and marks: the two newest of Alice's, then all of Bob's.
    let unread = |v: &[(String, bool)]| v.iter().filter(|(_, read)| !read).count() as u64;
    assert_eq!(
        f.ledger.unread_count(&alice, alice.user).await.unwrap(),
        unread(&to_alice)
    );
    let newest: Vec<_> = f
        .ledger
        .notifications(&alice, alice.user, false, None, 2)
        .await
        .unwrap()
        .items
        .iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(
        f.ledger
            .mark_read(&alice, alice.user, Some(newest))
            .await
            .unwrap(),
        2
    );
    let now = told(&f, &alice).await;
    assert!(now[..2].iter().all(|(_, read)| *read));
    assert_eq!(now[2..], to_alice[2..]);
    assert_eq!(
        f.ledger.unread_count(&alice, alice.user).await.unwrap(),
        unread(&to_alice) - 2
    );
    assert_eq!(
        f.ledger.mark_read(&bob, bob.user, None).await.unwrap(),
        unread(&to_bob)
    );
    assert_eq!(f.ledger.unread_count(&bob, bob.user).await.unwrap(), 0);
    assert!(told(&f, &bob).await.iter().all(|(_, read)| *read));
    f.assert_verified().await;
}

/// A hold's notifications and event say what it was when made: a later partial capture
/// changes the transaction's amount, not what the PENDING notification and event said.
pub async fn a_partial_capture_keeps_what_the_hold_said<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "100").await;
    let b = f.wallet(&bob, "USD").await;
    let cursor = f
        .ledger
        .events(&f.admin, 0, 1000)
        .await
        .unwrap()
        .last()
        .map_or(0, |e| e.id);
    let h = f
        .ledger
        .hold(
            &alice,
            HoldRequest {
                wallet: a.id.into(),
                target: HoldTarget::Wallet(b.id.into()),
                details: details("30", f.key()),
                ttl_micros: None,
            },
        )
        .await
        .unwrap();
    let reference = h.transaction.reference.to_string();
    let held = f
        .ledger
        .notifications(&alice, alice.user, false, None, 1)
        .await
        .unwrap()
        .items
        .remove(0);
    let said = f.ledger.events(&f.admin, cursor, 10).await.unwrap();
    assert_eq!(said.len(), 1);
    assert!(held.message.contains("of 30.00 USD is pending"), "{held:?}");
    f.ledger
        .capture(&alice, h.transaction.reference, Some(d("12")))
        .await
        .unwrap();
    // The hold's notification and event read back exactly as they were made.
    let page = f
        .ledger
        .notifications(&alice, alice.user, false, None, 50)
        .await
        .unwrap();
    let ours: Vec<&str> = page
        .items
        .iter()
        .filter(|n| n.message.contains(&reference))
        .map(|n| n.message.as_str())
        .collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert!(ours[0].ends_with("of 12.00 USD is completed"), "{ours:?}");
    assert_eq!(ours[1], held.message);
    assert!(page.items.contains(&held), "{:?}", page.items);
    let events = f.ledger.events(&f.admin, cursor, 10).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["transaction.pending", "transaction.completed"]);
    assert_eq!(events[0], said[0]);
    assert!(
        events[0].payload.contains(r#""amount":"30.00""#),
        "{}",
        events[0].payload
    );
    assert!(
        events[1].payload.contains(r#""amount":"12.00""#),
        "{}",
        events[1].payload
    );
}

pub async fn statements_search_and_analytics<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.wallet(&alice, "USD").await;
    let b = f.wallet(&bob, "USD").await;
    f.ledger
        .deposit(
            &alice,
            DepositRequest::new(a.id, d("100"), f.key()).description("Salary"),
        )
        .await
        .unwrap();
    f.clock.advance_micros(DAY);
    let day2 = f.clock_now();
    f.ledger
        .transfer(
            &alice,
            TransferRequest::new(a.id, b.id, d("30"), f.key())
                .description("=HYPERLINK(\"x\") rent"),
        )
        .await
        .unwrap();
    f.clock.advance_micros(HOUR);
    f.ledger
        .transfer(
            &alice,
            TransferRequest::new(a.id, b.id, d("20"), f.key()).description("RENT, part 2"),
        )
        .await
        .unwrap();
    f.clock.advance_micros(DAY);
    let end = f.clock_now();
    let s = f.ledger.statement(&alice, a.id, day2, end).await.unwrap();
    assert_eq!(s.opening.amount(), d("100"));
    assert_eq!(s.lines.len(), 2);
    assert_eq!(s.debits.amount(), d("50"));
    assert_eq!(s.closing.amount(), d("50"));
    let csv = s.to_csv();
    assert!(csv.contains("'=HYPERLINK"), "{csv}");
    assert!(csv.contains("\"RENT, part 2\""), "{csv}");
    assert!(csv.contains(",-30.00,70.00,"), "{csv}");
    assert!(csv.ends_with("\r\n"));
    assert_code(f.ledger.statement(&bob, a.id, day2, end).await, "forbidden");
    assert_code(
        f.ledger.statement(&alice, a.id, end, day2).await,
        "invalid_query",
    );
    // Search ignores case.
    let found = f
        .ledger
        .search(&alice, a.id, "rent", None, 10)
        .await
        .unwrap();
    assert_eq!(found.lines.len(), 2);
    let one = f
        .ledger
        .search(&alice, a.id, "rent", None, 1)
        .await
        .unwrap();
    assert_eq!(one.lines.len(), 1);
    let rest = f
        .ledger
        .search(&alice, a.id, "rent", one.next, 1)
        .await
        .unwrap();
    assert_eq!(rest.lines.len(), 1);
    assert_ne!(rest.lines[0].reference, one.lines[0].reference);
    assert!(
        f.ledger
            .search(&alice, a.id, "salary", None, 10)
            .await
            .unwrap()
            .lines
            .len()
            == 1
    );
    // Analytics per day and kind.
    let buckets = f
        .ledger
        .analytics(&alice, a.id, START, end, Granularity::Day)
        .await
        .unwrap();
    assert_eq!(buckets.len(), 2);
    assert_eq!(buckets[0].kind, TransactionKind::TopUp);
    assert_eq!(buckets[1].kind, TransactionKind::Transfer);
    assert_eq!(buckets[1].debits.amount(), d("50"));
    assert_eq!(buckets[1].count, 2);
    assert_eq!(buckets[1].period, "2026-01-02");
    // Balance at a point in time.
    assert_eq!(
        f.ledger
            .balance_at(&alice, a.id, START)
            .await
            .unwrap()
            .amount(),
        d("0")
    );
    assert_eq!(
        f.ledger
            .balance_at(&alice, a.id, day2)
            .await
            .unwrap()
            .amount(),
        d("100")
    );
    assert_eq!(
        f.ledger
            .balance_at(&alice, a.id, end)
            .await
            .unwrap()
            .amount(),
        d("50")
    );
}

pub async fn races_between_refunds_and_settlements<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "100").await;
    let b = f.wallet(&bob, "USD").await;
    let t = f
        .ledger
        .transfer(&alice, TransferRequest::new(a.id, b.id, d("100"), f.key()))
        .await
        .unwrap()
        .transaction;
    // Five refunds of 30 race over 100: three fit.
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let ledger = f.ledger.clone();
        let req = RefundRequest {
            transaction: t.reference,
            amount: Some(d("30")),
            description: None,
            idempotency_key: f.key(),
        };
        tasks.push(tokio::spawn(async move { ledger.refund(&bob, req).await }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.code(), "refund_exceeds_original"),
        }
    }
    assert_eq!(ok, 3);
    assert_eq!(f.balance(&a).await, d("90"));
    // A capture racing a void: exactly one wins, and the money is where the winner says.
    for _ in 0..5 {
        let h = f
            .ledger
            .hold(
                &alice,
                HoldRequest {
                    wallet: a.id.into(),
                    target: HoldTarget::Wallet(b.id.into()),
                    details: details("10", f.key()),
                    ttl_micros: None,
                },
            )
            .await
            .unwrap()
            .transaction
            .reference;
        let (l1, l2) = (f.ledger.clone(), f.ledger.clone());
        let capture = tokio::spawn(async move { l1.capture(&bob, h, None).await });
        let void = tokio::spawn(async move { l2.cancel(&alice, h).await });
        let (c, v) = (capture.await.unwrap(), void.await.unwrap());
        assert!(c.is_ok() != v.is_ok(), "{c:?} {v:?}");
        let status = f.ledger.transaction(&f.admin, h).await.unwrap().status;
        assert_eq!(
            status,
            if c.is_ok() {
                TransactionStatus::Completed
            } else {
                TransactionStatus::Cancelled
            }
        );
    }
    assert_eq!(f.reload(&a).await.held.amount(), d("0"));
    f.assert_verified().await;
}

/// The reference system's defects, each shown impossible here (the others are covered by the
/// identity, concurrency and history cases).
pub async fn reference_defects_cannot_happen<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let a = f.funded(&alice, "USD", "10").await;
    // A transfer to the same wallet adds money.
    assert_code(
        f.ledger
            .transfer(&alice, TransferRequest::new(a.id, a.id, d("5"), f.key()))
            .await,
        "same_wallet",
    );
    assert_eq!(f.balance(&a).await, d("10"));
    // Unpaginated admin reads: every page is bounded.
    assert_code(
        f.ledger
            .notifications(&alice, alice.user, false, None, 100_000)
            .await,
        "invalid_query",
    );
    assert_code(f.ledger.events(&f.admin, 0, 100_000).await, "invalid_query");
    f.assert_verified().await;
}
