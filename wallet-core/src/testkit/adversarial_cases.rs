//! Hostile input through every public operation, and callers reaching for what is not theirs.
//!
//! Each case pushes SQL-injection strings, very long strings, Unicode edge cases (NUL,
//! zero-width characters, right-to-left marks and overrides, byte-order marks, the largest
//! code point) and hostile amounts (30 digits, 30 decimal places, zero, negative, non-numeric)
//! through the operations that take text or amounts, and checks that each call either fails
//! with its typed error code and leaves the store as it was, or stores the text verbatim (it
//! reads back equal). Rust strings cannot hold unpaired surrogates; no bindings exist yet to
//! carry them in.
//!
//! The authorization case runs every operation as one customer against another's wallets,
//! transactions, holds, links, merchants, payment methods, notifications and profile, and
//! the staff-only views, through the real service; the sessions case checks every way a
//! session ends. Backends run these with [`adversarial_suite!`](crate::adversarial_suite).

use rust_decimal::Decimal;
use serde_json::json;

use super::identity_cases::card;
use super::payment_cases::details;
use super::{Fixture, PASSWORD, Snapshot, assert_code, d, registration, unlimited};
use crate::actor::{Actor, Role};
use crate::admin::{Period, TransactionQuery, UserQuery, WalletQuery};
use crate::audit::AuditQuery;
use crate::auth::Password;
use crate::calendar::Granularity;
use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::history::{HistoryCursor, HistoryQuery};
use crate::identity::KycStatus;
use crate::ids::{MerchantId, NotificationId};
use crate::ledger::{DepositRequest, OpenWalletRequest, TransferRequest, WithdrawRequest};
use crate::money::parse_amount;
use crate::payment_method::{MethodDisplay, PaymentMethodStatus};
use crate::payments::{
    BatchOp, ExchangeRequest, HoldRequest, HoldTarget, LinkRequest, PaymentRequest, RefundRequest,
};
use crate::store::Store;
use crate::users::ProfileUpdate;
use crate::wallet::{Wallet, WalletKind, WalletStatus};

/// Text an attacker or a careless client sends.
pub fn hostile_strings() -> Vec<String> {
    let mut all: Vec<String> = [
        "'; DROP TABLE users; --",
        "Robert'); DROP TABLE wallets;--",
        "\" OR \"1\"=\"1",
        "1' OR '1'='1' /*",
        "%",
        "_%_",
        "\\",
        "\\'",
        "`id`",
        "$(rm -rf /)",
        "<script>alert(1)</script>",
        "=HYPERLINK(\"http://x\")",
        "\0",
        "a\0b",
        "zero\u{200b}width\u{200c}\u{200d}joiners",
        "\u{feff}bom",
        "\u{200f}right-to-left mark\u{200e}",
        "\u{202e}override",
        "\u{2067}isolate\u{2069}",
        "עברית mixed العربية",
        "e\u{301} combining",
        "👩‍👩‍👧 family",
        "\u{10ffff}",
        "\u{fffd}",
        "line\u{2028}separator",
        "tab\tnewline\n",
        "\r",
        " ",
        "",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    all.push("a".repeat(10_000));
    all.push("é".repeat(501));
    all.push("x".repeat(129));
    all.push("😀".repeat(300));
    all
}

/// Amount text a client sends: 30 digits, 30 decimal places, zero, negative, not a number.
pub const HOSTILE_AMOUNT_TEXT: [&str; 16] = [
    "123456789012345678901234567890",
    "0.123456789012345678901234567890",
    "1.000000000000000000000000000001",
    "abc",
    "1e3",
    "NaN",
    "Infinity",
    "0x10",
    "１２",
    "1,000",
    " 5",
    "+5",
    "5.",
    ".5",
    "--5",
    "",
];

/// Amounts that parse but that no movement may take: zero, negative, too many decimals for
/// USD, more minor units than 64 bits hold, the extremes of `Decimal`.
pub fn hostile_amounts() -> Vec<Decimal> {
    let mut all = vec![
        Decimal::ZERO,
        d("-0.00"),
        d("-1"),
        d("-0.01"),
        d("0.001"),
        d("0.0000000000000000000000000001"),
        d("92233720368547758.08"),
        d("9999999999999999999999999999"),
        Decimal::MAX,
        Decimal::MIN,
    ];
    all.push(Decimal::new(1, 28));
    all
}

/// Codes an amount may be refused with.
const AMOUNT_CODES: [&str; 8] = [
    "amount_not_positive",
    "amount_precision",
    "amount_overflow",
    "invalid_amount",
    "amount_below_minimum",
    "amount_above_maximum",
    "limit_exceeded",
    "insufficient_funds",
];

/// Everything a refused call could have left behind: ledger counts and balances (through
/// [`Fixture::snapshot`]), users, events, notifications of `watch`, and `wallets`' limits.
#[derive(Debug, PartialEq, Eq)]
struct World {
    ledger: Snapshot,
    users: Vec<String>,
    events: usize,
    notifications: Vec<u64>,
    extra: Vec<String>,
}

async fn world<T: Store + Clone>(f: &Fixture<T>, wallets: &[&Wallet], watch: &[Actor]) -> World {
    let mut users = Vec::new();
    let mut q = UserQuery {
        role: None,
        kyc: None,
        active: None,
        include_deleted: true,
        before: None,
        limit: 100,
    };
    loop {
        let page = f.ledger.list_users(&f.root, q.clone()).await.unwrap();
        users.extend(page.items.iter().map(|u| format!("{u:?}")));
        match page.next {
            Some(next) => q.before = Some(next),
            None => break,
        }
    }
    let events = f.ledger.events(&f.admin, 0, 1000).await.unwrap().len();
    let mut notifications = Vec::new();
    for who in watch {
        notifications.push(f.ledger.unread_count(who, who.user).await.unwrap());
    }
    let mut extra = Vec::new();
    for w in wallets {
        extra.push(format!(
            "{:?}",
            f.ledger.limits(&f.admin, w.id).await.unwrap()
        ));
        extra.push(format!(
            "{:?}",
            f.ledger.links_of(&f.admin, w.id, 200).await.unwrap()
        ));
    }
    World {
        ledger: f.snapshot(wallets).await,
        users,
        events,
        notifications,
        extra,
    }
}

/// Asserts `result` is a typed refusal (not an internal or storage failure).
#[track_caller]
fn assert_typed<T: std::fmt::Debug>(what: &str, result: &Result<T, Error>) {
    if let Err(e) = result {
        assert!(
            !matches!(e.kind(), ErrorKind::Internal | ErrorKind::Unavailable),
            "{what}: untyped error {e:?}"
        );
    }
}

/// Description, metadata and idempotency key of money movements, refunds, holds, merchants,
/// orders, payment links, gateway references, search text and cursors: refused with a typed
/// error and nothing written, or stored and read back verbatim.
pub async fn hostile_text_in_money_operations<T: Store + Clone>(store: T) {
    let f = Fixture::with_config(
        store,
        Config::default().with_default_limits(unlimited()).unwrap(),
    )
    .await;
    let alice = f.user().await;
    let bob = f.user().await;
    let wa = f.funded(&alice, "USD", "1000").await;
    let wb = f.wallet(&bob, "USD").await;
    let shop = f.wallet_of_kind(&bob, WalletKind::Business, "USD").await;
    let merchant = f
        .ledger
        .register_merchant(&bob, shop.id, "Shop")
        .await
        .unwrap();
    let watched = [alice, bob];
    for (i, h) in hostile_strings().into_iter().enumerate() {
        let wallets = [&wa, &wb, &shop];
        let before = world(&f, &wallets, &watched).await;

        // Description.
        let r = f
            .ledger
            .deposit(
                &alice,
                DepositRequest::new(wa.id, d("1"), f.key()).description(h.clone()),
            )
            .await;
        assert_typed("description", &r);
        match r {
            Ok(r) => {
                let t = f
                    .ledger
                    .transaction(&alice, r.transaction.reference)
                    .await
                    .unwrap();
                let stored = t.description.as_ref().map(|s| s.as_str().to_owned());
                // An empty description is no description.
                let expected = (!h.is_empty()).then(|| h.clone());
                assert_eq!(stored, expected, "description {h:?} read back");
            }
            Err(e) => {
                assert_eq!(e.code(), "invalid_description", "{h:?}");
                assert_eq!(world(&f, &wallets, &watched).await, before, "{h:?}");
            }
        }
        let before = world(&f, &wallets, &watched).await;

        // Metadata: the hostile text as a value and as a key.
        let meta = json!({ "note": h, h.clone(): [h.clone(), 1] });
        let r = f
            .ledger
            .deposit(
                &alice,
                DepositRequest::new(wa.id, d("1"), f.key()).metadata(meta.clone()),
            )
            .await;
        assert_typed("metadata", &r);
        match r {
            Ok(r) => {
                let t = f
                    .ledger
                    .transaction(&alice, r.transaction.reference)
                    .await
                    .unwrap();
                let stored = serde_json::to_value(t.metadata.as_ref().unwrap()).unwrap();
                assert_eq!(stored, meta, "metadata {h:?} read back");
            }
            Err(e) => {
                assert_eq!(e.code(), "invalid_metadata", "{h:?}");
                assert_eq!(world(&f, &wallets, &watched).await, before, "{h:?}");
            }
        }
        let before = world(&f, &wallets, &watched).await;

        // Idempotency key.
        let r = f
            .ledger
            .transfer(
                &alice,
                TransferRequest::new(wa.id, wb.number, d("1"), h.clone()),
            )
            .await;
        assert_typed("idempotency key", &r);
        match r {
            Ok(r) => {
                let t = f
                    .ledger
                    .transaction(&alice, r.transaction.reference)
                    .await
                    .unwrap();
                assert_eq!(t.idempotency_key.as_str(), h, "key read back");
                // The same key again is a replay, not a second transfer.
                let again = f
                    .ledger
                    .transfer(
                        &alice,
                        TransferRequest::new(wa.id, wb.number, d("1"), h.clone()),
                    )
                    .await
                    .unwrap();
                assert!(again.replayed);
            }
            Err(e) => {
                assert_eq!(e.code(), "invalid_idempotency_key", "{h:?}");
                assert_eq!(world(&f, &wallets, &watched).await, before, "{h:?}");
            }
        }
        let before = world(&f, &wallets, &watched).await;

        // A merchant's name.
        let r = f.ledger.register_merchant(&bob, shop.id, &h).await;
        assert_typed("merchant name", &r);
        match r {
            Ok(m) => {
                let stored = f.ledger.merchant(&alice, m.id).await.unwrap();
                assert_eq!(stored.name.as_str(), h, "merchant name read back");
            }
            Err(e) => {
                assert!(
                    ["invalid_description", "merchant_rejected"].contains(&e.code()),
                    "{h:?}: {e:?}"
                );
                assert_eq!(world(&f, &wallets, &watched).await, before, "{h:?}");
            }
        }
        let before = world(&f, &wallets, &watched).await;

        // An order id.
        let r = f
            .ledger
            .pay_merchant(
                &alice,
                PaymentRequest {
                    from: wa.id.into(),
                    merchant: merchant.id,
                    order: h.clone(),
                    details: details("1", f.key()),
                },
            )
            .await;
        assert_typed("order id", &r);
        if let Err(e) = r {
            // An order id is an external reference, refused as a malformed query.
            assert_eq!(e.code(), "invalid_query", "{h:?}: {e:?}");
            assert_eq!(world(&f, &wallets, &watched).await, before, "{h:?}");
        }
        let before = world(&f, &wallets, &watched).await;

        // A payment link's description; then the hostile text as a link code.
        let r = f
            .ledger
            .create_link(
                &alice,
                LinkRequest {
                    wallet: wa.id.into(),
                    amount: d("1"),
                    description: Some(h.clone()),
                    ttl_micros: 3_600_000_000,
                    idempotency_key: f.key(),
                },
            )
            .await;
        assert_typed("link description", &r);
        match r {
            Ok(link) => {
                let stored = f.ledger.link(&bob, &link.code.to_string()).await.unwrap();
                let expected = (!h.is_empty()).then(|| h.clone());
                assert_eq!(stored.description.map(|s| s.as_str().to_owned()), expected);
            }
            Err(e) => {
                assert_eq!(e.code(), "invalid_description", "{h:?}");
                assert_eq!(world(&f, &wallets, &watched).await, before, "{h:?}");
            }
        }
        let before = world(&f, &wallets, &watched).await;
        for r in [
            f.ledger.link(&bob, &h).await.map(|_| ()),
            f.ledger.cancel_link(&alice, &h).await.map(|_| ()),
            f.ledger
                .pay_link(&bob, wb.id, &h, &f.key())
                .await
                .map(|_| ()),
        ] {
            assert_typed("link code", &r);
            let e = r.unwrap_err();
            assert!(
                ["invalid_reference", "link_not_found"].contains(&e.code()),
                "{h:?}: {e:?}"
            );
        }

        // A gateway reference, for a new pending top-up and for a callback.
        let r = f
            .ledger
            .top_up_pending(&alice, DepositRequest::new(wa.id, d("1"), f.key()), &h)
            .await;
        assert_typed("gateway reference", &r);
        match r {
            Ok(r) => {
                // The callback finds it by the same text: stored verbatim.
                let failed = f
                    .ledger
                    .gateway_callback(&f.admin, &h, false)
                    .await
                    .unwrap();
                assert_eq!(failed.transaction.id, r.transaction.id, "{h:?}");
            }
            Err(e) => {
                // A gateway reference is an external reference, like an order id.
                assert_eq!(e.code(), "invalid_query", "{h:?}");
                assert_eq!(world(&f, &wallets, &watched).await, before, "{h:?}");
                let cb = f.ledger.gateway_callback(&f.admin, &h, true).await;
                assert_code(cb, "gateway_reference_not_found");
            }
        }
        let before = world(&f, &wallets, &watched).await;

        // A refund's reason.
        let paid = f
            .ledger
            .transfer(&alice, TransferRequest::new(wa.id, wb.id, d("2"), f.key()))
            .await
            .unwrap();
        let before_refund = world(&f, &wallets, &watched).await;
        let r = f
            .ledger
            .refund(
                &bob,
                RefundRequest {
                    transaction: paid.transaction.reference,
                    amount: Some(d("1")),
                    description: Some(h.clone()),
                    idempotency_key: f.key(),
                },
            )
            .await;
        assert_typed("refund reason", &r);
        match r {
            Ok(r) => {
                let t = f
                    .ledger
                    .transaction(&bob, r.transaction.reference)
                    .await
                    .unwrap();
                let expected = (!h.is_empty()).then(|| h.clone());
                assert_eq!(t.description.map(|s| s.as_str().to_owned()), expected);
            }
            Err(e) => {
                assert_eq!(e.code(), "invalid_description", "{h:?}");
                assert_eq!(world(&f, &wallets, &watched).await, before_refund, "{h:?}");
            }
        }
        drop(before);

        // Reads: search text, cursors, audit targets. Refusals are typed; nothing changes.
        let before = world(&f, &wallets, &watched).await;
        let r = f.ledger.search(&alice, wa.id, &h, None, 50).await;
        assert_typed("search", &r);
        match r {
            Ok(page) => {
                let needle = h.to_lowercase();
                for line in &page.lines {
                    let text = line.description.as_ref().unwrap().as_str().to_lowercase();
                    assert!(text.contains(&needle), "{text:?} found for {h:?}");
                }
            }
            Err(e) => assert_eq!(e.code(), "invalid_query", "{h:?}"),
        }
        match h.parse::<HistoryCursor>() {
            Ok(c) => panic!("{h:?} parsed as cursor {c:?}"),
            Err(e) => assert_eq!(e.code(), "invalid_cursor"),
        }
        let audit = f
            .ledger
            .audit_log(
                &f.admin,
                AuditQuery {
                    target: Some(h.clone()),
                    ..AuditQuery::default()
                },
            )
            .await;
        assert_typed("audit target", &audit);
        if let Ok(page) = audit {
            assert!(page.items.is_empty(), "audit records targeting {h:?}");
        }
        let open = f
            .ledger
            .open_wallet(
                &alice,
                OpenWalletRequest::new(alice.user, WalletKind::Savings, h.clone()),
            )
            .await;
        assert_typed("currency", &open);
        let e = open.unwrap_err();
        assert!(
            ["unknown_currency", "invalid_currency"].contains(&e.code()),
            "{h:?}: {e:?}"
        );
        assert_eq!(
            world(&f, &wallets, &watched).await,
            before,
            "reads of {h:?}"
        );
        if i % 8 == 0 {
            f.assert_verified().await;
        }
    }
    f.assert_verified().await;
}

/// Registration, profiles, KYC reasons, login names, tokens and payment-method fields.
pub async fn hostile_text_in_identity_operations<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let watched = [alice];
    for (i, h) in hostile_strings().into_iter().enumerate() {
        let start = world(&f, &[], &watched).await;
        let name = format!("hostile{i}");
        // Each field of a registration in turn.
        for field in 0..6 {
            let mut req = registration(&format!("{name}f{field}"));
            match field {
                0 => req.username = h.clone(),
                1 => req.email = h.clone(),
                2 => req.full_name = h.clone(),
                3 => req.phone = h.clone(),
                4 => req.national_id = Some(h.clone()),
                _ => req.password = Password::new(h.clone()),
            }
            let before = world(&f, &[], &watched).await;
            let r = f.ledger.register(req).await;
            assert_typed("register", &r);
            match r {
                Ok(user) => {
                    let stored = f.ledger.user(&f.admin, user.id).await.unwrap();
                    assert_eq!(stored, user, "registered {h:?} in field {field}");
                    let p = stored.profile.unwrap();
                    match field {
                        2 => assert_eq!(p.full_name.as_str(), h.trim()),
                        4 => assert!(p.national_id.is_none(), "{h:?}: {:?}", p.national_id),
                        _ => {}
                    }
                    if field == 5 {
                        // The hostile password works, and only it.
                        let login = f
                            .ledger
                            .login(p.username.as_str(), Password::new(h.clone()));
                        login.await.unwrap();
                    }
                    f.ledger.delete_user(&f.root, user.id).await.unwrap();
                }
                Err(e) => {
                    let allowed: &[&str] = match field {
                        0 => &["invalid_username"],
                        1 => &["invalid_email"],
                        2 | 4 => &["invalid_personal_data"],
                        3 => &["invalid_phone"],
                        _ => &["weak_password"],
                    };
                    assert!(allowed.contains(&e.code()), "field {field} {h:?}: {e:?}");
                    assert_eq!(world(&f, &[], &watched).await, before, "{h:?}");
                }
            }
        }
        let current = f.ledger.user(&alice, alice.user).await.unwrap();
        for field in 0..4 {
            let update = match field {
                0 => ProfileUpdate {
                    email: Some(h.clone()),
                    ..ProfileUpdate::default()
                },
                1 => ProfileUpdate {
                    full_name: Some(h.clone()),
                    ..ProfileUpdate::default()
                },
                2 => ProfileUpdate {
                    phone: Some(h.clone()),
                    ..ProfileUpdate::default()
                },
                _ => ProfileUpdate {
                    national_id: Some(Some(h.clone())),
                    ..ProfileUpdate::default()
                },
            };
            let r = f.ledger.update_profile(&alice, alice.user, update).await;
            assert_typed("update_profile", &r);
            match r {
                Ok(user) => {
                    assert_eq!(f.ledger.user(&alice, alice.user).await.unwrap(), user);
                    if field == 1 {
                        assert_eq!(user.profile.unwrap().full_name.as_str(), h.trim());
                    }
                    // Put the profile back.
                    let p = current.profile.clone().unwrap();
                    let back = ProfileUpdate {
                        email: Some(p.email.as_str().to_owned()),
                        full_name: Some(p.full_name.as_str().to_owned()),
                        phone: Some(p.phone.as_str().to_owned()),
                        national_id: Some(None),
                    };
                    f.ledger
                        .update_profile(&alice, alice.user, back)
                        .await
                        .unwrap();
                }
                Err(e) => {
                    assert!(
                        ["invalid_email", "invalid_personal_data", "invalid_phone"]
                            .contains(&e.code()),
                        "{h:?}: {e:?}"
                    );
                    let now = f.ledger.user(&alice, alice.user).await.unwrap();
                    assert_eq!(now.profile, current.profile, "{h:?}");
                }
            }
        }

        // A KYC reason.
        let bob = f.unverified_user().await;
        let r = f
            .ledger
            .review_kyc(&f.admin, bob.user, KycStatus::Rejected, &h)
            .await;
        assert_typed("kyc reason", &r);
        match r {
            Ok(user) => assert_eq!(user.kyc_reason.unwrap().as_str(), h.trim()),
            Err(e) => {
                assert_eq!(e.code(), "invalid_personal_data", "{h:?}");
                let stored = f.ledger.user(&f.admin, bob.user).await.unwrap();
                assert_eq!(stored.kyc, KycStatus::Pending);
            }
        }

        // Login names, passwords and tokens.
        assert_code(
            f.ledger.login(&h, Password::new(PASSWORD)).await,
            "invalid_credentials",
        );
        assert_code(
            f.ledger.login("user1", Password::new(h.clone())).await,
            "invalid_credentials",
        );
        assert_code(f.ledger.authenticate(&h).await, "invalid_token");
        f.ledger
            .login("user1", Password::new(PASSWORD))
            .await
            .unwrap();
        let r = f
            .ledger
            .change_password(&alice, Password::new(PASSWORD), Password::new(h.clone()))
            .await;
        assert_typed("change_password", &r);
        if r.is_ok() {
            f.ledger
                .change_password(&alice, Password::new(h.clone()), Password::new(PASSWORD))
                .await
                .unwrap();
        } else {
            assert_code(r, "weak_password");
        }

        // Payment-method fields.
        for field in 0..4 {
            let mut m = card("4242", 12, 2031, None);
            match field {
                0 => m.provider = h.clone(),
                1 => m.provider_token = h.clone(),
                2 => m.nickname = Some(h.clone()),
                _ => {
                    if let MethodDisplay::Card { holder, .. } = &mut m.display {
                        *holder = Some(h.clone());
                    }
                }
            }
            let before = f.ledger.payment_methods(&alice, alice.user).await.unwrap();
            let r = f.ledger.add_payment_method(&alice, alice.user, m).await;
            assert_typed("payment method", &r);
            match r {
                Ok(method) => {
                    let all = f.ledger.payment_methods(&alice, alice.user).await.unwrap();
                    let stored = all.iter().find(|x| x.id == method.id).unwrap();
                    assert_eq!(stored, &method);
                    match field {
                        0 => assert_eq!(stored.provider, h),
                        // A blank nickname is no nickname.
                        2 if h.is_empty() => assert_eq!(stored.nickname, None),
                        2 => assert_eq!(stored.nickname.as_deref(), Some(h.as_str())),
                        _ => {}
                    }
                    f.ledger
                        .delete_payment_method(&f.root, method.id)
                        .await
                        .unwrap();
                }
                Err(e) => {
                    assert!(
                        ["invalid_payment_method", "card_number_rejected"].contains(&e.code()),
                        "field {field} {h:?}: {e:?}"
                    );
                    let after = f.ledger.payment_methods(&alice, alice.user).await.unwrap();
                    assert_eq!(after, before, "{h:?}");
                }
            }
        }
        assert_eq!(
            world(&f, &[], &watched).await.ledger,
            start.ledger,
            "identity calls with {h:?} moved money"
        );
    }
}

/// Every operation that takes an amount, with amounts no movement may take: each refused
/// with an amount error, nothing written.
pub async fn hostile_amounts_write_nothing<T: Store + Clone>(store: T) {
    let config = Config::default()
        .with_default_limits(unlimited())
        .unwrap()
        .with_reference_rate("USD", "JPY", d("150"))
        .unwrap();
    let f = Fixture::with_config(store, config).await;
    for text in HOSTILE_AMOUNT_TEXT {
        let e = parse_amount(text).unwrap_err();
        assert!(
            ["invalid_amount", "amount_overflow"].contains(&e.code()),
            "{text:?}: {e:?}"
        );
    }
    let alice = f.user().await;
    let bob = f.user().await;
    let wa = f.funded(&alice, "USD", "500").await;
    let wj = f.wallet(&alice, "JPY").await;
    let wb = f.wallet(&bob, "USD").await;
    let shop = f.wallet_of_kind(&bob, WalletKind::Business, "USD").await;
    let merchant = f
        .ledger
        .register_merchant(&bob, shop.id, "Shop")
        .await
        .unwrap();
    let hold = f
        .ledger
        .hold(
            &alice,
            HoldRequest {
                wallet: wa.id.into(),
                target: HoldTarget::Outside,
                details: details("50", f.key()),
                ttl_micros: None,
            },
        )
        .await
        .unwrap();
    let paid = f
        .ledger
        .transfer(&alice, TransferRequest::new(wa.id, wb.id, d("20"), f.key()))
        .await
        .unwrap();
    let wallets = [&wa, &wj, &wb, &shop];
    let watched = [alice, bob];
    for amount in hostile_amounts() {
        let before = world(&f, &wallets, &watched).await;
        let m = |key: String| crate::ledger::MoveDetails {
            amount,
            description: None,
            metadata: None,
            idempotency_key: key,
        };
        let results: Vec<(&str, Result<(), Error>)> = vec![
            (
                "deposit",
                f.ledger
                    .deposit(&alice, DepositRequest::new(wa.id, amount, f.key()))
                    .await
                    .map(drop),
            ),
            (
                "withdraw",
                f.ledger
                    .withdraw(&alice, WithdrawRequest::new(wa.id, amount, f.key()))
                    .await
                    .map(drop),
            ),
            (
                "transfer",
                f.ledger
                    .transfer(&alice, TransferRequest::new(wa.id, wb.id, amount, f.key()))
                    .await
                    .map(drop),
            ),
            (
                "top_up_pending",
                f.ledger
                    .top_up_pending(
                        &alice,
                        DepositRequest::new(wa.id, amount, f.key()),
                        &f.key(),
                    )
                    .await
                    .map(drop),
            ),
            (
                "hold",
                f.ledger
                    .hold(
                        &alice,
                        HoldRequest {
                            wallet: wa.id.into(),
                            target: HoldTarget::Wallet(wb.id.into()),
                            details: m(f.key()),
                            ttl_micros: None,
                        },
                    )
                    .await
                    .map(drop),
            ),
            (
                "capture",
                f.ledger
                    .capture(&alice, hold.transaction.reference, Some(amount))
                    .await
                    .map(drop),
            ),
            (
                "refund",
                f.ledger
                    .refund(
                        &bob,
                        RefundRequest {
                            transaction: paid.transaction.reference,
                            amount: Some(amount),
                            description: None,
                            idempotency_key: f.key(),
                        },
                    )
                    .await
                    .map(drop),
            ),
            (
                "pay_merchant",
                f.ledger
                    .pay_merchant(
                        &alice,
                        PaymentRequest {
                            from: wa.id.into(),
                            merchant: merchant.id,
                            order: f.key(),
                            details: m(f.key()),
                        },
                    )
                    .await
                    .map(drop),
            ),
            (
                "exchange",
                f.ledger
                    .exchange(
                        &alice,
                        ExchangeRequest {
                            from: wa.id.into(),
                            to: wj.id.into(),
                            rate: d("150"),
                            rounding: crate::fees::Rounding::Down,
                            details: m(f.key()),
                        },
                    )
                    .await
                    .map(drop),
            ),
            (
                "create_link",
                f.ledger
                    .create_link(
                        &alice,
                        LinkRequest {
                            wallet: wa.id.into(),
                            amount,
                            description: None,
                            ttl_micros: 3_600_000_000,
                            idempotency_key: f.key(),
                        },
                    )
                    .await
                    .map(drop),
            ),
            (
                "batch",
                f.ledger
                    .batch(
                        &alice,
                        vec![
                            BatchOp::Deposit(DepositRequest::new(wa.id, d("1"), f.key())),
                            BatchOp::Transfer(TransferRequest::new(wa.id, wb.id, amount, f.key())),
                        ],
                    )
                    .await
                    .map(drop),
            ),
        ];
        for (what, r) in results {
            assert_typed(what, &r);
            let e = r.err().unwrap_or_else(|| panic!("{what} took {amount}"));
            assert!(AMOUNT_CODES.contains(&e.code()), "{what} {amount}: {e:?}");
        }
        // Limits: a hostile value in any position. Zero is a limit like any other (nothing may
        // leave the wallet), so only the others must be refused.
        for position in (0..3).filter(|_| !amount.is_zero()) {
            let mut limits = (d("100"), d("200"), d("300"));
            match position {
                0 => limits.0 = amount,
                1 => limits.1 = amount,
                _ => limits.2 = amount,
            }
            let r = f.ledger.set_limits(&f.admin, wa.id, Some(limits)).await;
            assert_typed("set_limits", &r);
            let e = r.unwrap_err();
            assert!(
                ["invalid_limits"]
                    .iter()
                    .chain(&AMOUNT_CODES)
                    .any(|c| *c == e.code()),
                "limits {limits:?}: {e:?}"
            );
        }
        // Exchange rates: zero, negative, absurd.
        let r = f
            .ledger
            .exchange(
                &alice,
                ExchangeRequest {
                    from: wa.id.into(),
                    to: wj.id.into(),
                    rate: amount,
                    rounding: crate::fees::Rounding::HalfUp,
                    details: details("1", f.key()),
                },
            )
            .await;
        assert_typed("exchange rate", &r);
        let e = r.unwrap_err();
        assert!(
            ["invalid_rate"]
                .iter()
                .chain(&AMOUNT_CODES)
                .any(|c| *c == e.code()),
            "rate {amount}: {e:?}"
        );
        assert_eq!(
            world(&f, &wallets, &watched).await,
            before,
            "amount {amount}"
        );
    }
    // The hold and the transfer are untouched.
    let t = f
        .ledger
        .transaction(&alice, hold.transaction.reference)
        .await
        .unwrap();
    assert_eq!(t.status, crate::transaction::TransactionStatus::Pending);
    f.assert_verified().await;
}

/// A customer runs every operation against another customer's wallets, transactions, holds,
/// links, merchants, payment methods, notifications and account, and the staff-only ones:
/// each is refused (forbidden, or not found where existence itself is private) and nothing
/// changes.
pub async fn users_cannot_reach_other_users<T: Store + Clone>(store: T) {
    let config = Config::default()
        .with_reference_rate("USD", "JPY", d("150"))
        .unwrap();
    let f = Fixture::with_config(store, config).await;
    let alice = f.user().await;
    let mallory = f.user().await;
    let wa = f.funded(&alice, "USD", "100").await;
    let wj = f.wallet(&alice, "JPY").await;
    let biz = f.wallet_of_kind(&alice, WalletKind::Business, "USD").await;
    let wm = f.funded(&mallory, "USD", "100").await;
    let merchant = f
        .ledger
        .register_merchant(&alice, biz.id, "Alice's")
        .await
        .unwrap();
    let mallory_shop = f
        .wallet_of_kind(&mallory, WalletKind::Business, "USD")
        .await;
    let mallory_merchant = f
        .ledger
        .register_merchant(&mallory, mallory_shop.id, "Mallory's")
        .await
        .unwrap();
    let hold = f
        .ledger
        .hold(
            &alice,
            HoldRequest {
                wallet: wa.id.into(),
                target: HoldTarget::Outside,
                details: details("5", f.key()),
                ttl_micros: None,
            },
        )
        .await
        .unwrap();
    let carol = f.user().await;
    let wc = f.funded(&carol, "USD", "10").await;
    let to_alice = f
        .ledger
        .transfer(&carol, TransferRequest::new(wc.id, wa.id, d("3"), f.key()))
        .await
        .unwrap();
    let pending = f
        .ledger
        .top_up_pending(
            &alice,
            DepositRequest::new(wa.id, d("7"), f.key()),
            "gw-alice",
        )
        .await
        .unwrap();
    let link = f
        .ledger
        .create_link(
            &alice,
            LinkRequest {
                wallet: wa.id.into(),
                amount: d("2"),
                description: None,
                ttl_micros: 3_600_000_000,
                idempotency_key: f.key(),
            },
        )
        .await
        .unwrap();
    let code = link.code.to_string();
    let method = f
        .ledger
        .add_payment_method(&alice, alice.user, card("4242", 12, 2031, None))
        .await
        .unwrap();
    let notes = f
        .ledger
        .notifications(&alice, alice.user, false, None, 50)
        .await
        .unwrap();
    assert!(!notes.items.is_empty(), "Alice has notifications");
    let note: NotificationId = notes.items[0].id;

    let wallets = [&wa, &wj, &biz, &wm];
    let watched = [alice, mallory, carol];
    let before = world(&f, &wallets, &watched).await;
    let alice_before = f.ledger.user(&f.admin, alice.user).await.unwrap();
    let methods_before = f.ledger.payment_methods(&alice, alice.user).await.unwrap();
    let now = f.clock_now();
    let (since, until) = (crate::time::Timestamp::from_micros(0), now.plus_micros(1));
    let refused = |r: Result<(), Error>, what: &str| {
        assert_typed(what, &r);
        let e = r.err().unwrap_or_else(|| panic!("{what} was allowed"));
        assert!(
            e.code() == "forbidden" || e.kind() == ErrorKind::NotFound,
            "{what}: {e:?}"
        );
    };
    let l = &f.ledger;
    let m = &mallory;
    // Wallets and money.
    refused(l.wallet(m, wa.id).await.map(drop), "wallet");
    refused(l.wallet(m, wa.number).await.map(drop), "wallet by number");
    refused(l.wallets_of(m, alice.user).await.map(drop), "wallets_of");
    refused(
        l.open_wallet(
            m,
            OpenWalletRequest::new(alice.user, WalletKind::Savings, "USD"),
        )
        .await
        .map(drop),
        "open_wallet for another",
    );
    refused(
        l.set_wallet_status(m, wa.id, WalletStatus::Frozen)
            .await
            .map(drop),
        "set_wallet_status",
    );
    refused(
        l.deposit(m, DepositRequest::new(wa.id, d("1"), f.key()))
            .await
            .map(drop),
        "deposit into another's",
    );
    refused(
        l.withdraw(m, WithdrawRequest::new(wa.id, d("1"), f.key()))
            .await
            .map(drop),
        "withdraw",
    );
    refused(
        l.transfer(m, TransferRequest::new(wa.id, wm.id, d("1"), f.key()))
            .await
            .map(drop),
        "transfer out of another's",
    );
    refused(
        l.top_up_pending(m, DepositRequest::new(wa.id, d("1"), f.key()), "gw-m")
            .await
            .map(drop),
        "top_up_pending",
    );
    refused(
        l.gateway_callback(m, "gw-alice", true).await.map(drop),
        "gateway_callback",
    );
    refused(
        l.hold(
            m,
            HoldRequest {
                wallet: wa.id.into(),
                target: HoldTarget::Wallet(wm.id.into()),
                details: details("1", f.key()),
                ttl_micros: None,
            },
        )
        .await
        .map(drop),
        "hold on another's",
    );
    refused(
        l.capture(m, hold.transaction.reference, None)
            .await
            .map(drop),
        "capture another's hold",
    );
    refused(
        l.cancel(m, hold.transaction.reference).await.map(drop),
        "void another's hold",
    );
    refused(
        l.cancel(m, pending.transaction.reference).await.map(drop),
        "cancel another's top-up",
    );
    refused(
        l.refund(
            m,
            RefundRequest {
                transaction: to_alice.transaction.reference,
                amount: None,
                description: None,
                idempotency_key: f.key(),
            },
        )
        .await
        .map(drop),
        "refund what another received",
    );
    refused(
        l.refund(
            m,
            RefundRequest {
                transaction: hold.transaction.reference,
                amount: None,
                description: None,
                idempotency_key: f.key(),
            },
        )
        .await
        .map(drop),
        "refund another's hold",
    );
    refused(
        l.pay_merchant(
            m,
            PaymentRequest {
                from: wa.id.into(),
                merchant: mallory_merchant.id,
                order: "o-1".into(),
                details: details("1", f.key()),
            },
        )
        .await
        .map(drop),
        "pay a merchant from another's",
    );
    refused(
        l.exchange(
            m,
            ExchangeRequest {
                from: wa.id.into(),
                to: wj.id.into(),
                rate: d("150"),
                rounding: crate::fees::Rounding::Down,
                details: details("1", f.key()),
            },
        )
        .await
        .map(drop),
        "exchange another's",
    );
    refused(
        l.exchange(
            m,
            ExchangeRequest {
                from: wm.id.into(),
                to: wj.id.into(),
                rate: d("150"),
                rounding: crate::fees::Rounding::Down,
                details: details("1", f.key()),
            },
        )
        .await
        .map(drop),
        "exchange into another's",
    );
    refused(
        l.batch(
            m,
            vec![
                BatchOp::Deposit(DepositRequest::new(wm.id, d("1"), f.key())),
                BatchOp::Withdraw(WithdrawRequest::new(wa.id, d("1"), f.key())),
            ],
        )
        .await
        .map(drop),
        "batch touching another's",
    );
    refused(
        l.batch(m, vec![BatchOp::Capture(hold.transaction.reference, None)])
            .await
            .map(drop),
        "batch capture",
    );
    refused(
        l.transaction(m, hold.transaction.reference).await.map(drop),
        "transaction",
    );
    refused(
        l.history(m, HistoryQuery::new(wa.id)).await.map(drop),
        "history",
    );
    refused(
        l.statement(m, wa.id, since, until).await.map(drop),
        "statement",
    );
    refused(l.search(m, wa.id, "a", None, 10).await.map(drop), "search");
    refused(
        l.analytics(m, wa.id, since, until, Granularity::Day)
            .await
            .map(drop),
        "analytics",
    );
    refused(l.balance_at(m, wa.id, now).await.map(drop), "balance_at");
    refused(l.limits(m, wa.id).await.map(drop), "limits");
    refused(
        l.set_limits(m, wa.id, Some((d("1"), d("1"), d("1"))))
            .await
            .map(drop),
        "lower another's limits",
    );
    refused(
        l.set_limits(m, wm.id, Some((d("1000000"), d("1000000"), d("1000000"))))
            .await
            .map(drop),
        "raise own limits",
    );
    refused(
        l.set_limits(m, wa.id, None).await.map(drop),
        "reset another's limits",
    );
    // Merchants and links.
    refused(
        l.register_merchant(m, biz.id, "mine now").await.map(drop),
        "register another's wallet as merchant",
    );
    refused(
        l.create_link(
            m,
            LinkRequest {
                wallet: wa.id.into(),
                amount: d("1"),
                description: None,
                ttl_micros: 3_600_000_000,
                idempotency_key: f.key(),
            },
        )
        .await
        .map(drop),
        "link on another's wallet",
    );
    refused(
        l.cancel_link(m, &code).await.map(drop),
        "cancel another's link",
    );
    refused(l.links_of(m, wa.id, 10).await.map(drop), "links_of");
    refused(
        l.pay_link(m, wa.id, &code, &f.key()).await.map(drop),
        "pay a link from another's wallet",
    );
    // Notifications and events.
    refused(
        l.notifications(m, alice.user, false, None, 10)
            .await
            .map(drop),
        "notifications",
    );
    refused(
        l.unread_count(m, alice.user).await.map(drop),
        "unread_count",
    );
    refused(
        l.mark_read(m, alice.user, None).await.map(drop),
        "mark_read",
    );
    refused(
        l.mark_read(m, alice.user, Some(vec![note])).await.map(drop),
        "mark_read by id",
    );
    refused(
        l.mark_read(m, m.user, Some(vec![note]))
            .await
            .and_then(|n| {
                if n == 0 {
                    Err(Error::NotificationNotFound)
                } else {
                    Ok(())
                }
            }),
        "mark another's notification read as one's own",
    );
    refused(l.events(m, 0, 10).await.map(drop), "events");
    refused(l.expire_due(m, 10).await.map(drop), "expire_due");
    // Identity.
    refused(l.user(m, alice.user).await.map(drop), "user");
    refused(
        l.update_profile(
            m,
            alice.user,
            ProfileUpdate {
                email: Some("m@evil.example".into()),
                ..ProfileUpdate::default()
            },
        )
        .await
        .map(drop),
        "update another's profile",
    );
    refused(
        l.logout_everywhere(m, alice.user).await.map(drop),
        "logout another",
    );
    refused(
        l.set_role(m, m.user, Role::Superuser).await.map(drop),
        "promote oneself",
    );
    refused(
        l.set_role(m, alice.user, Role::Admin).await.map(drop),
        "set_role",
    );
    refused(
        l.set_active(m, alice.user, false).await.map(drop),
        "deactivate another",
    );
    refused(
        l.review_kyc(m, alice.user, KycStatus::Rejected, "no")
            .await
            .map(drop),
        "review_kyc",
    );
    refused(
        l.review_kyc(m, m.user, KycStatus::Verified, "me")
            .await
            .map(drop),
        "review own kyc",
    );
    refused(l.delete_user(m, alice.user).await.map(drop), "delete_user");
    // Payment methods.
    refused(
        l.payment_methods(m, alice.user).await.map(drop),
        "payment_methods",
    );
    refused(
        l.add_payment_method(m, alice.user, card("4343", 12, 2031, None))
            .await
            .map(drop),
        "add a method for another",
    );
    refused(
        l.set_default_payment_method(m, method.id).await.map(drop),
        "set_default",
    );
    refused(
        l.set_payment_method_status(m, method.id, PaymentMethodStatus::Inactive)
            .await
            .map(drop),
        "set_payment_method_status",
    );
    refused(
        l.verify_payment_method(m, method.id).await.map(drop),
        "verify_payment_method",
    );
    refused(
        l.delete_payment_method(m, method.id).await.map(drop),
        "delete_payment_method",
    );
    // Staff views.
    refused(l.verify(m).await.map(drop), "verify");
    refused(
        l.dashboard(m, Period::new(since, until).unwrap())
            .await
            .map(drop),
        "dashboard",
    );
    refused(
        l.list_users(
            m,
            UserQuery {
                role: None,
                kyc: None,
                active: None,
                include_deleted: false,
                before: None,
                limit: 10,
            },
        )
        .await
        .map(drop),
        "list_users",
    );
    refused(
        l.list_wallets(
            m,
            WalletQuery {
                status: None,
                kind: None,
                currency: None,
                before: None,
                limit: 10,
            },
        )
        .await
        .map(drop),
        "list_wallets",
    );
    refused(
        l.list_transactions(
            m,
            TransactionQuery {
                kind: None,
                status: None,
                currency: None,
                since: None,
                until: None,
                before: None,
                limit: 10,
            },
        )
        .await
        .map(drop),
        "list_transactions",
    );
    refused(
        l.audit_log(m, AuditQuery::default()).await.map(drop),
        "audit_log",
    );
    // What may be read by anyone signed in reveals nothing private: a merchant (name and
    // wallet number) and a link (to pay it).
    let seen = l.merchant(m, merchant.id).await.unwrap();
    assert_eq!(seen.id, merchant.id);
    assert_code(
        l.merchant(m, MerchantId::new(9_999).unwrap()).await,
        "merchant_not_found",
    );

    assert_eq!(
        world(&f, &wallets, &watched).await,
        before,
        "a refused call changed something"
    );
    assert_eq!(
        f.ledger.user(&f.admin, alice.user).await.unwrap(),
        alice_before
    );
    assert_eq!(
        f.ledger.payment_methods(&alice, alice.user).await.unwrap(),
        methods_before
    );
    let still = f.ledger.link(&alice, &code).await.unwrap();
    assert_eq!(still.status, link.status);
    let notes_after = f
        .ledger
        .notifications(&alice, alice.user, true, None, 50)
        .await
        .unwrap();
    assert!(
        notes_after.items.iter().any(|n| n.id == note),
        "Alice's notification still unread"
    );
    f.assert_verified().await;
}

/// Every way a session ends: tokens issued before a password change, logout-everywhere (by
/// oneself or by staff), a role change, deactivation (even after reactivation) or deletion
/// are refused; tokens expire; another user's sessions are untouched; guessing is throttled
/// whichever login name is typed, and so is guessing the current password through a session.
pub async fn sessions_end_for_good<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let login = |name: &'static str| f.ledger.login(name, Password::new(PASSWORD));
    let bob_token = login("user2").await.unwrap().token;

    // Staff logging a customer out everywhere.
    let t = login("user1").await.unwrap().token;
    f.ledger.authenticate(t.expose()).await.unwrap();
    f.ledger
        .logout_everywhere(&f.admin, alice.user)
        .await
        .unwrap();
    assert_code(f.ledger.authenticate(t.expose()).await, "invalid_token");
    // Bob was not logged out.
    assert_eq!(
        f.ledger
            .authenticate(bob_token.expose())
            .await
            .unwrap()
            .user,
        bob.user
    );

    // Deactivation, then reactivation: the old token stays dead.
    let t = login("user1").await.unwrap().token;
    f.ledger
        .set_active(&f.admin, alice.user, false)
        .await
        .unwrap();
    assert_code(f.ledger.authenticate(t.expose()).await, "invalid_token");
    f.ledger
        .set_active(&f.admin, alice.user, true)
        .await
        .unwrap();
    assert_code(f.ledger.authenticate(t.expose()).await, "invalid_token");
    let fresh = login("user1").await.unwrap().token;
    f.ledger.authenticate(fresh.expose()).await.unwrap();

    // Expiry: a day by default, with 30 s of leeway.
    f.clock.advance_micros(86_400_000_000 + 31_000_000);
    assert_code(f.ledger.authenticate(fresh.expose()).await, "invalid_token");
    assert_code(
        f.ledger.authenticate(bob_token.expose()).await,
        "invalid_token",
    );

    // Guessing is throttled per account, whichever name is typed.
    for name in ["user1", "user1@example.com", "USER1", " user1 "] {
        assert_code(
            f.ledger
                .login(name, Password::new("not the password"))
                .await,
            "invalid_credentials",
        );
    }
    let mut throttled = false;
    for name in ["user1@example.com", "user1", "User1@Example.com"] {
        let r = f.ledger.login(name, Password::new("still not it")).await;
        if let Err(e) = &r {
            throttled |= e.code() == "rate_limited";
        }
        assert!(r.is_err());
    }
    assert!(
        throttled,
        "guessing under three spellings of one account is throttled"
    );
    assert_code(login("user1").await, "rate_limited");
    // Another account is not throttled by it.
    login("user2").await.unwrap();
    f.clock.advance_micros(3_600_000_000);
    login("user1").await.unwrap();

    // Guessing the current password through a session is throttled too.
    let mut codes = Vec::new();
    for i in 0..8 {
        let r = f
            .ledger
            .change_password(
                &alice,
                Password::new(format!("guess number {i}")),
                Password::new("a new long passphrase"),
            )
            .await;
        codes.push(r.unwrap_err().code());
    }
    assert!(codes.contains(&"rate_limited"), "{codes:?}");
    assert_code(
        f.ledger
            .change_password(
                &alice,
                Password::new(PASSWORD),
                Password::new("a new long passphrase"),
            )
            .await,
        "rate_limited",
    );
    f.clock.advance_micros(3_600_000_000);

    // Deletion.
    let t = login("user1").await.unwrap().token;
    f.ledger.delete_user(&f.root, alice.user).await.unwrap();
    assert_code(f.ledger.authenticate(t.expose()).await, "invalid_token");
    assert_code(login("user1").await, "invalid_credentials");
    // A token for Bob still works after all of it.
    let t = login("user2").await.unwrap().token;
    assert_eq!(
        f.ledger.authenticate(t.expose()).await.unwrap().user,
        bob.user
    );
}

/// Expands to one test per adversarial case (see this module), like
/// [`conformance_suite!`](crate::conformance_suite). `$make` is a closure returning a future of
/// a fresh, empty store.
#[macro_export]
macro_rules! adversarial_suite {
    ($make:expr) => {
        $crate::adversarial_suite!(@cases $make;
            hostile_text_in_money_operations,
            hostile_text_in_identity_operations,
            hostile_amounts_write_nothing,
            users_cannot_reach_other_users,
            sessions_end_for_good,
        );
    };
    (@cases $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = ($make)().await;
                $crate::testkit::adversarial_cases::$case(store).await;
            }
        )+
    };
}
