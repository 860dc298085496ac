//! Conformance cases for users, sessions, KYC, payment methods, admin views and the audit log.

use super::{Fixture, PASSWORD, assert_code, d, registration};
use crate::actor::{Actor, Role};
use crate::admin::{Period, TransactionQuery, UserQuery, WalletQuery};
use crate::audit::{AuditAction, AuditQuery};
use crate::auth::Password;
use crate::identity::KycStatus;
use crate::ids::UserId;
use crate::ledger::{DepositRequest, OpenWalletRequest, TransferRequest, WithdrawRequest};
use crate::payment_method::{
    CardBrand, CardExpiry, MethodDisplay, NewPaymentMethod, PaymentMethodKind, PaymentMethodStatus,
};
use crate::store::Store;
use crate::transaction::TransactionKind;
use crate::users::ProfileUpdate;
use crate::wallet::{WalletKind, WalletStatus};

fn page(limit: u32) -> UserQuery {
    UserQuery {
        limit,
        ..UserQuery::default()
    }
}

async fn user_count<T: Store + Clone>(f: &Fixture<T>) -> usize {
    let q = UserQuery {
        include_deleted: true,
        ..page(200)
    };
    f.ledger.list_users(&f.root, q).await.unwrap().items.len()
}

async fn audit<T: Store + Clone>(f: &Fixture<T>, q: AuditQuery) -> Vec<(AuditAction, String)> {
    let q = AuditQuery { limit: 200, ..q };
    let page = f.ledger.audit_log(&f.admin, q).await.unwrap();
    page.items
        .into_iter()
        .map(|e| (e.action, e.outcome))
        .collect()
}

pub async fn bootstrap_works_once<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let root = f.ledger.user(&f.root, f.root.user).await.unwrap();
    assert_eq!(
        (root.role, root.kyc, root.active),
        (Role::Superuser, KycStatus::Verified, true)
    );
    let before = user_count(&f).await;
    assert_code(
        f.ledger.bootstrap(registration("second")).await,
        "already_bootstrapped",
    );
    assert_eq!(user_count(&f).await, before, "nothing written");
    let q = AuditQuery {
        action: Some(AuditAction::Bootstrap),
        ..AuditQuery::default()
    };
    assert_eq!(
        audit(&f, q).await,
        vec![
            (AuditAction::Bootstrap, "already_bootstrapped".into()),
            (AuditAction::Bootstrap, "ok".into())
        ]
    );
}

pub async fn registration_validates_and_normalizes<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let mut req = registration("Alice");
    req.email = " Alice@Example.COM ".into();
    req.phone = "+1 (415) 555-0199".into();
    let alice = f.ledger.register(req).await.unwrap();
    let p = alice.profile.clone().unwrap();
    assert_eq!(p.username.as_str(), "alice");
    assert_eq!(p.email.as_str(), "alice@example.com");
    assert_eq!(p.phone.as_str(), "+14155550199");
    assert_eq!(
        (alice.role, alice.kyc, alice.active),
        (Role::User, KycStatus::Pending, true)
    );

    let before = user_count(&f).await;
    let mut dup_name = registration("ALICE");
    dup_name.email = "other@example.com".into();
    assert_code(f.ledger.register(dup_name).await, "user_exists");
    let mut dup_mail = registration("alice2");
    dup_mail.email = "ALICE@example.com".into();
    assert_code(f.ledger.register(dup_mail).await, "user_exists");
    type Change = Box<dyn Fn(&mut crate::users::RegisterRequest)>;
    let bad: Vec<(Change, &str)> = vec![
        (Box::new(|r| r.username = "a b".into()), "invalid_username"),
        (Box::new(|r| r.email = "nope".into()), "invalid_email"),
        (Box::new(|r| r.phone = "555-0100".into()), "invalid_phone"),
        (
            Box::new(|r| r.full_name = "\u{0}".into()),
            "invalid_personal_data",
        ),
        (
            Box::new(|r| r.national_id = Some("x'; DROP TABLE users; --".into())),
            "invalid_personal_data",
        ),
        (
            Box::new(|r| r.password = Password::new("short")),
            "weak_password",
        ),
        (
            Box::new(|r| r.password = Password::new("xx-bobby-table-xx")),
            "weak_password",
        ),
    ];
    for (change, code) in bad {
        let mut req = registration("bobby-table");
        change(&mut req);
        assert_code(f.ledger.register(req).await, code);
    }
    assert_eq!(
        user_count(&f).await,
        before,
        "rejected registrations write nothing"
    );
}

pub async fn login_and_authenticate<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let by_name = f
        .ledger
        .login("USER1", Password::new(PASSWORD))
        .await
        .unwrap();
    assert_eq!(by_name.user.id, alice.user);
    let by_mail = f
        .ledger
        .login("user1@example.com", Password::new(PASSWORD))
        .await
        .unwrap();
    let actor = f.ledger.authenticate(by_mail.token.expose()).await.unwrap();
    assert_eq!(actor, alice);
    assert!(
        !format!("{by_mail:?}").contains(by_mail.token.expose()),
        "token printed"
    );

    // Unknown user and wrong password: one error.
    let wrong = f
        .ledger
        .login("user1", Password::new("wrong password!"))
        .await;
    let unknown = f.ledger.login("nobody", Password::new(PASSWORD)).await;
    assert_code(wrong, "invalid_credentials");
    assert_code(unknown, "invalid_credentials");
    assert_code(f.ledger.authenticate("not a token").await, "invalid_token");

    let q = AuditQuery {
        action: Some(AuditAction::Login),
        ..AuditQuery::default()
    };
    let outcomes: Vec<String> = audit(&f, q).await.into_iter().map(|(_, o)| o).collect();
    assert_eq!(
        outcomes,
        vec!["invalid_credentials", "invalid_credentials", "ok", "ok"]
    );
}

pub async fn failed_logins_back_off<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    f.user().await;
    for _ in 0..5 {
        assert_code(
            f.ledger
                .login("user1", Password::new("wrong password!"))
                .await,
            "invalid_credentials",
        );
    }
    assert_code(
        f.ledger
            .login("user1", Password::new("wrong password!"))
            .await,
        "invalid_credentials",
    );
    // Now even the right password waits.
    assert_code(
        f.ledger.login("user1", Password::new(PASSWORD)).await,
        "rate_limited",
    );
    // Other accounts are not affected.
    f.ledger
        .login("admin", Password::new(PASSWORD))
        .await
        .unwrap();
    f.clock.advance_micros(60_000_000);
    f.ledger
        .login("user1", Password::new(PASSWORD))
        .await
        .unwrap();
}

pub async fn sessions_are_revoked<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let login = || f.ledger.login("user1", Password::new(PASSWORD));

    let token = login().await.unwrap().token;
    f.ledger
        .change_password(
            &alice,
            Password::new(PASSWORD),
            Password::new("a new long passphrase"),
        )
        .await
        .unwrap();
    assert_code(f.ledger.authenticate(token.expose()).await, "invalid_token");
    assert_code(login().await, "invalid_credentials");
    let relogin = || {
        f.ledger
            .login("user1", Password::new("a new long passphrase"))
    };
    assert_code(
        f.ledger
            .change_password(
                &alice,
                Password::new("not it at all"),
                Password::new("whatever long 1"),
            )
            .await,
        "invalid_credentials",
    );

    let token = relogin().await.unwrap().token;
    f.ledger
        .logout_everywhere(&alice, alice.user)
        .await
        .unwrap();
    assert_code(f.ledger.authenticate(token.expose()).await, "invalid_token");

    let token = relogin().await.unwrap().token;
    f.ledger
        .set_role(&f.root, alice.user, Role::Admin)
        .await
        .unwrap();
    assert_code(f.ledger.authenticate(token.expose()).await, "invalid_token");
    let token = relogin().await.unwrap().token;
    assert_eq!(
        f.ledger.authenticate(token.expose()).await.unwrap().role,
        Role::Admin
    );
    f.ledger
        .set_active(&f.root, alice.user, false)
        .await
        .unwrap();
    assert_code(f.ledger.authenticate(token.expose()).await, "invalid_token");
    assert_code(relogin().await, "user_inactive");
}

pub async fn roles_are_changed_by_superusers_only<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    assert_code(
        f.ledger.set_role(&f.admin, alice.user, Role::Admin).await,
        "forbidden",
    );
    assert_code(
        f.ledger.set_role(&alice, alice.user, Role::Superuser).await,
        "forbidden",
    );
    assert_code(
        f.ledger.set_role(&f.root, f.root.user, Role::User).await,
        "forbidden",
    );
    // A token's stale role gives nothing: the stored role decides writes.
    let fake_root = Actor::new(bob.user, Role::Superuser);
    assert_code(
        f.ledger.set_role(&fake_root, alice.user, Role::Admin).await,
        "forbidden",
    );
    let promoted = f
        .ledger
        .set_role(&f.root, alice.user, Role::Superuser)
        .await
        .unwrap();
    assert_eq!(promoted.role, Role::Superuser);
    // Two superusers: one may demote the other.
    let alice_root = Actor::new(alice.user, Role::Superuser);
    f.ledger
        .set_role(&alice_root, f.root.user, Role::Admin)
        .await
        .unwrap();
    assert_code(
        f.ledger.set_role(&f.root, alice.user, Role::User).await,
        "forbidden",
    );
    let q = AuditQuery {
        action: Some(AuditAction::SetRole),
        ..AuditQuery::default()
    };
    let outcomes: Vec<String> = audit(&f, q).await.into_iter().map(|(_, o)| o).collect();
    assert_eq!(
        outcomes,
        vec![
            "forbidden",
            "ok",
            "ok",
            "forbidden",
            "forbidden",
            "forbidden",
            "forbidden",
            "ok"
        ],
        "every attempt recorded, newest first (the fixture's own promotion last)"
    );
}

pub async fn kyc_review_and_policy<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.unverified_user().await;
    let bob = f.user().await;
    let wa = f.wallet(&alice, "USD").await;
    let wb = f.wallet(&bob, "USD").await;
    f.ledger
        .deposit(&alice, DepositRequest::new(wa.id, d("50"), f.key()))
        .await
        .unwrap();
    assert_code(
        f.ledger
            .withdraw(&alice, WithdrawRequest::new(wa.id, d("5"), f.key()))
            .await,
        "kyc_required",
    );
    assert_code(
        f.ledger
            .transfer(&alice, TransferRequest::new(wa.id, wb.id, d("5"), f.key()))
            .await,
        "kyc_required",
    );
    assert_code(
        f.ledger
            .review_kyc(&alice, alice.user, KycStatus::Verified, "me")
            .await,
        "forbidden",
    );
    assert_code(
        f.ledger
            .review_kyc(&bob, alice.user, KycStatus::Verified, "ok")
            .await,
        "forbidden",
    );
    assert_code(
        f.ledger
            .review_kyc(&f.admin, alice.user, KycStatus::Verified, "")
            .await,
        "invalid_personal_data",
    );
    let reviewed = f
        .ledger
        .review_kyc(&f.admin, alice.user, KycStatus::Rejected, "blurry passport")
        .await
        .unwrap();
    assert_eq!(reviewed.kyc, KycStatus::Rejected);
    assert_eq!(reviewed.kyc_reason.unwrap().as_str(), "blurry passport");
    assert_code(
        f.ledger
            .review_kyc(&f.admin, alice.user, KycStatus::Verified, "x")
            .await,
        "kyc_already_decided",
    );
    f.ledger
        .review_kyc(&f.admin, alice.user, KycStatus::Pending, "new documents")
        .await
        .unwrap();
    f.ledger
        .review_kyc(&f.admin, alice.user, KycStatus::Verified, "clear scan")
        .await
        .unwrap();
    f.ledger
        .withdraw(&alice, WithdrawRequest::new(wa.id, d("5"), f.key()))
        .await
        .unwrap();
    assert_eq!(f.balance(&wa).await, d("45"));
    f.assert_verified().await;
}

pub async fn inactive_users_cannot_act<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let w = f.funded(&alice, "USD", "10").await;
    assert_code(
        f.ledger.set_active(&f.admin, f.root.user, false).await,
        "forbidden",
    );
    assert_code(
        f.ledger.set_active(&alice, alice.user, false).await,
        "forbidden",
    );
    let off = f
        .ledger
        .set_active(&f.admin, alice.user, false)
        .await
        .unwrap();
    assert!(!off.active);
    assert_code(
        f.ledger
            .withdraw(&alice, WithdrawRequest::new(w.id, d("1"), f.key()))
            .await,
        "user_inactive",
    );
    assert_code(
        f.ledger.login("user1", Password::new(PASSWORD)).await,
        "user_inactive",
    );
    f.ledger
        .set_active(&f.admin, alice.user, true)
        .await
        .unwrap();
    f.ledger
        .withdraw(&alice, WithdrawRequest::new(w.id, d("1"), f.key()))
        .await
        .unwrap();
    f.ledger
        .login("user1", Password::new(PASSWORD))
        .await
        .unwrap();
}

pub async fn profiles_are_updated_by_their_owner<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let update = ProfileUpdate {
        email: Some("New@Example.org".into()),
        phone: Some("+44 20 7946 0958".into()),
        national_id: Some(Some("ab-123".into())),
        ..ProfileUpdate::default()
    };
    let u = f
        .ledger
        .update_profile(&alice, alice.user, update)
        .await
        .unwrap();
    let p = u.profile.unwrap();
    assert_eq!(p.email.as_str(), "new@example.org");
    assert_eq!(p.phone.as_str(), "+442079460958");
    assert_eq!(p.national_id.unwrap().as_str(), "AB-123");
    assert_code(
        f.ledger
            .update_profile(&bob, alice.user, ProfileUpdate::default())
            .await,
        "forbidden",
    );
    let taken = ProfileUpdate {
        email: Some("new@example.org".into()),
        ..ProfileUpdate::default()
    };
    assert_code(
        f.ledger.update_profile(&bob, bob.user, taken).await,
        "user_exists",
    );
    assert_code(f.ledger.user(&bob, alice.user).await, "forbidden");
    assert_eq!(
        f.ledger.user(&f.admin, alice.user).await.unwrap().id,
        alice.user
    );
    f.ledger
        .login("new@example.org", Password::new(PASSWORD))
        .await
        .unwrap();
}

pub async fn deleting_a_user_erases_them_and_keeps_the_ledger<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let wa = f.funded(&alice, "USD", "10").await;
    let wb = f.wallet(&bob, "USD").await;
    let sent = f
        .ledger
        .transfer(&alice, TransferRequest::new(wa.id, wb.id, d("4"), f.key()))
        .await
        .unwrap();
    f.ledger
        .add_payment_method(&alice, alice.user, card("4242", 12, 2030, None))
        .await
        .unwrap();
    assert_code(
        f.ledger.delete_user(&f.admin, alice.user).await,
        "forbidden",
    );
    assert_code(
        f.ledger.delete_user(&f.root, alice.user).await,
        "wallet_not_empty",
    );
    f.ledger
        .withdraw(&alice, WithdrawRequest::new(wa.id, d("6"), f.key()))
        .await
        .unwrap();
    let gone = f.ledger.delete_user(&f.root, alice.user).await.unwrap();
    assert!(gone.profile.is_none() && gone.deleted_at.is_some() && !gone.active);
    assert_eq!(f.reload(&wa).await.status, WalletStatus::Closed);
    assert!(
        f.ledger
            .payment_methods(&f.root, alice.user)
            .await
            .unwrap()
            .is_empty(),
        "provider tokens are erased with the user"
    );
    assert_code(
        f.ledger.login("user1", Password::new(PASSWORD)).await,
        "invalid_credentials",
    );
    assert_code(
        f.ledger.delete_user(&f.root, alice.user).await,
        "user_not_found",
    );
    // The ledger keeps the history; the username is free again.
    let t = f
        .ledger
        .transaction(&f.admin, sent.transaction.reference)
        .await
        .unwrap();
    assert_eq!(t.amount.amount(), d("4"));
    f.ledger.register(registration("user1")).await.unwrap();
    f.assert_verified().await;
}

pub async fn wallets_need_a_registered_owner<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let ghost = UserId::new(9_999_999).unwrap();
    assert_code(
        f.ledger
            .open_wallet(
                &f.root,
                OpenWalletRequest::new(ghost, WalletKind::Personal, "USD"),
            )
            .await,
        "user_not_found",
    );
    let stranger = Actor::user(ghost);
    assert_code(
        f.ledger
            .open_wallet(
                &stranger,
                OpenWalletRequest::new(ghost, WalletKind::Personal, "USD"),
            )
            .await,
        "forbidden",
    );
}

pub(crate) fn card(last4: &str, month: u8, year: u16, nickname: Option<&str>) -> NewPaymentMethod {
    NewPaymentMethod {
        kind: PaymentMethodKind::CreditCard,
        provider: "stripe".into(),
        provider_token: format!("pm_{last4}_token"),
        display: MethodDisplay::Card {
            brand: CardBrand::Visa,
            last4: last4.into(),
            expiry: CardExpiry::new(month, year).unwrap(),
            holder: None,
        },
        nickname: nickname.map(str::to_owned),
        make_default: false,
    }
}

pub async fn payment_methods_lifecycle<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let first = f
        .ledger
        .add_payment_method(&alice, alice.user, card("4242", 12, 2026, None))
        .await
        .unwrap();
    assert!(first.is_default && !first.verified);
    assert_eq!(first.status, PaymentMethodStatus::Active);
    let mut second = card("1111", 6, 2030, Some("travel"));
    second.make_default = true;
    let second = f
        .ledger
        .add_payment_method(&alice, alice.user, second)
        .await
        .unwrap();
    let listed = f.ledger.payment_methods(&alice, alice.user).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|m| (m.id, m.is_default))
            .collect::<Vec<_>>(),
        vec![(first.id, false), (second.id, true)]
    );
    // A card number anywhere is refused and nothing is stored.
    let leaky = card("4242", 12, 2030, Some("my card 4111 1111 1111 1111"));
    assert_code(
        f.ledger.add_payment_method(&alice, alice.user, leaky).await,
        "card_number_rejected",
    );
    assert_code(
        f.ledger
            .add_payment_method(&alice, alice.user, card("4242", 1, 2025, None))
            .await,
        "card_expired",
    );
    assert_code(
        f.ledger
            .add_payment_method(&bob, alice.user, card("4242", 1, 2030, None))
            .await,
        "forbidden",
    );
    assert_code(
        f.ledger.payment_methods(&bob, alice.user).await,
        "forbidden",
    );
    assert_eq!(
        f.ledger
            .payment_methods(&alice, alice.user)
            .await
            .unwrap()
            .len(),
        2
    );

    // Time passes the first card's expiry.
    f.clock
        .set(crate::time::Timestamp::from_micros(1_798_761_600_000_000)); // 2027-01-01
    let listed = f.ledger.payment_methods(&alice, alice.user).await.unwrap();
    assert_eq!(listed[0].status, PaymentMethodStatus::Expired);
    assert_code(
        f.ledger.set_default_payment_method(&alice, first.id).await,
        "card_expired",
    );
    // The owner switches methods off and on; blocking is for admins.
    let off = f
        .ledger
        .set_payment_method_status(&alice, second.id, PaymentMethodStatus::Inactive)
        .await
        .unwrap();
    assert!(!off.is_default);
    f.ledger
        .set_payment_method_status(&alice, second.id, PaymentMethodStatus::Active)
        .await
        .unwrap();
    assert_code(
        f.ledger
            .set_payment_method_status(&alice, second.id, PaymentMethodStatus::Blocked)
            .await,
        "forbidden",
    );
    f.ledger
        .set_payment_method_status(&f.admin, second.id, PaymentMethodStatus::Blocked)
        .await
        .unwrap();
    assert_code(
        f.ledger
            .set_payment_method_status(&alice, second.id, PaymentMethodStatus::Active)
            .await,
        "forbidden",
    );
    assert_code(
        f.ledger.verify_payment_method(&alice, second.id).await,
        "forbidden",
    );
    assert!(
        f.ledger
            .verify_payment_method(&f.admin, second.id)
            .await
            .unwrap()
            .verified
    );
    // Only a SUPERUSER deletes.
    assert_code(
        f.ledger.delete_payment_method(&alice, second.id).await,
        "forbidden",
    );
    assert_code(
        f.ledger.delete_payment_method(&f.admin, second.id).await,
        "forbidden",
    );
    f.ledger
        .delete_payment_method(&f.root, second.id)
        .await
        .unwrap();
    assert_code(
        f.ledger.delete_payment_method(&f.root, second.id).await,
        "payment_method_not_found",
    );
    assert_eq!(
        f.ledger
            .payment_methods(&alice, alice.user)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn admin_views_filter_and_paginate<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let mut users = Vec::new();
    for _ in 0..3 {
        users.push(f.user().await);
    }
    let pending = f.unverified_user().await;
    let mut wallets = Vec::new();
    for u in &users {
        wallets.push(f.funded(u, "USD", "100").await);
    }
    f.funded(&users[0], "EUR", "7").await;
    f.ledger
        .transfer(
            &users[0],
            TransferRequest::new(wallets[0].id, wallets[1].id, d("30"), f.key()),
        )
        .await
        .unwrap();

    // Users: filters and keyset pages.
    assert_code(f.ledger.list_users(&users[0], page(10)).await, "forbidden");
    assert_code(
        f.ledger.list_users(&f.admin, page(0)).await,
        "invalid_query",
    );
    assert_code(
        f.ledger.list_users(&f.admin, page(201)).await,
        "invalid_query",
    );
    let first = f.ledger.list_users(&f.admin, page(2)).await.unwrap();
    assert_eq!(
        first.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![pending.user, users[2].user]
    );
    let rest = UserQuery {
        before: first.next,
        ..page(200)
    };
    let rest = f.ledger.list_users(&f.admin, rest).await.unwrap();
    assert_eq!(rest.items.len(), 4, "two customers, the admin and root");
    assert!(rest.next.is_none());
    let q = UserQuery {
        kyc: Some(KycStatus::Pending),
        ..page(50)
    };
    let found = f.ledger.list_users(&f.admin, q).await.unwrap();
    assert_eq!(
        found.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![pending.user]
    );
    let q = UserQuery {
        role: Some(Role::Admin),
        ..page(50)
    };
    assert_eq!(
        f.ledger.list_users(&f.admin, q).await.unwrap().items.len(),
        1
    );

    // Wallets and transactions.
    let q = WalletQuery {
        currency: Some(crate::currency::Currency::iso("EUR").unwrap().code()),
        limit: 50,
        ..WalletQuery::default()
    };
    let eur = f.ledger.list_wallets(&f.admin, q).await.unwrap();
    assert_eq!(eur.items.len(), 1);
    let q = TransactionQuery {
        kind: Some(TransactionKind::Transfer),
        limit: 50,
        ..TransactionQuery::default()
    };
    let transfers = f.ledger.list_transactions(&f.admin, q).await.unwrap();
    assert_eq!(transfers.items.len(), 1);
    assert_eq!(transfers.items[0].amount.amount(), d("30"));
    let q = TransactionQuery {
        limit: 2,
        ..TransactionQuery::default()
    };
    let p1 = f
        .ledger
        .list_transactions(&f.admin, q.clone())
        .await
        .unwrap();
    let p2 = TransactionQuery {
        before: p1.next,
        limit: 50,
        ..q
    };
    let p2 = f.ledger.list_transactions(&f.admin, p2).await.unwrap();
    assert_eq!(
        p1.items.len() + p2.items.len(),
        5,
        "four top-ups and a transfer"
    );
    assert!(p1.items[1].id > p2.items[0].id, "newest first, no overlap");
    let future = TransactionQuery {
        since: Some(crate::time::Timestamp::from_micros(i64::MAX - 1)),
        limit: 50,
        ..TransactionQuery::default()
    };
    assert!(
        f.ledger
            .list_transactions(&f.admin, future)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Dashboard.
    let period = Period::new(super::START, super::START.plus_micros(86_400_000_000)).unwrap();
    assert_code(f.ledger.dashboard(&users[0], period).await, "forbidden");
    let dash = f.ledger.dashboard(&f.admin, period).await.unwrap();
    assert!(dash.users_by_role.contains(&(Role::User, 4)));
    assert!(dash.users_by_role.contains(&(Role::Superuser, 1)));
    assert!(dash.users_by_kyc.contains(&(KycStatus::Pending, 1)));
    assert!(dash.wallets_by_status.contains(&(WalletStatus::Active, 4)));
    let totals: Vec<String> = dash
        .total_balances
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(totals, vec!["7.00 EUR", "300.00 USD"]);
    let usd_topups = dash
        .volume
        .iter()
        .find(|v| v.kind == TransactionKind::TopUp && v.amount.currency().code().as_str() == "USD")
        .unwrap();
    assert_eq!(
        (usd_topups.count, usd_topups.amount.amount()),
        (3, d("300"))
    );
}

pub async fn audit_log_filters_and_paginates<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let w = f.wallet(&alice, "USD").await;
    f.ledger
        .set_wallet_status(&f.root, w.id, WalletStatus::Frozen)
        .await
        .unwrap();
    assert_code(
        f.ledger
            .set_wallet_status(&f.admin, w.id, WalletStatus::Active)
            .await,
        "forbidden",
    );
    assert_code(
        f.ledger
            .audit_log(
                &alice,
                AuditQuery {
                    limit: 10,
                    ..AuditQuery::default()
                },
            )
            .await,
        "forbidden",
    );
    let target = Some(format!("wallet:{}", w.number));
    let q = AuditQuery {
        target: target.clone(),
        ..AuditQuery::default()
    };
    let entries = f
        .ledger
        .audit_log(&f.admin, AuditQuery { limit: 50, ..q })
        .await
        .unwrap()
        .items;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].actor, Some(f.admin.user));
    assert_eq!(entries[0].outcome, "forbidden");
    assert_eq!(
        (entries[1].actor, entries[1].outcome.as_str()),
        (Some(f.root.user), "ok")
    );
    assert_eq!(entries[1].detail.as_deref(), Some("FROZEN"));
    let by_root = AuditQuery {
        actor: Some(f.root.user),
        limit: 1,
        ..AuditQuery::default()
    };
    let p1 = f.ledger.audit_log(&f.admin, by_root.clone()).await.unwrap();
    assert_eq!(p1.items.len(), 1);
    let p2 = AuditQuery {
        before: p1.next,
        limit: 200,
        ..by_root
    };
    let p2 = f.ledger.audit_log(&f.admin, p2).await.unwrap();
    assert!(
        p2.items
            .iter()
            .all(|e| e.actor == Some(f.root.user) && e.id < p1.items[0].id)
    );
    assert!(!p2.items.is_empty());
    assert_code(
        f.ledger
            .audit_log(
                &f.admin,
                AuditQuery {
                    limit: 0,
                    ..AuditQuery::default()
                },
            )
            .await,
        "invalid_query",
    );
}

/// A ledger over `store` whose passwords are hashed with `memory_kib` of memory.
async fn ledger_hashing<T: Store + Clone>(store: T, memory_kib: u32) -> crate::ledger::Ledger<T> {
    let auth = crate::users::AuthConfig {
        hashing: crate::auth::HashParams {
            memory_kib,
            iterations: 1,
            parallelism: 1,
        },
        hash_workers: 1,
        ..crate::users::AuthConfig::default()
    };
    crate::ledger::Ledger::new(store, crate::config::Config::default())
        .await
        .unwrap()
        .with_auth(auth, Some(super::test_secret()))
        .unwrap()
}

pub async fn old_password_hashes_are_upgraded_at_login<T: Store + Clone>(store: T) {
    let old = ledger_hashing(store.clone(), 64).await;
    let alice = old.register(registration("alice")).await.unwrap();
    let phc = |r: crate::identity::UserRecord| r.password.unwrap().as_phc().to_owned();
    let before = phc(store.user(alice.id).await.unwrap().unwrap());
    assert!(before.contains("m=64,"), "{before}");
    let new = ledger_hashing(store.clone(), 128).await;
    assert_code(
        new.login("alice", Password::new("wrong password!")).await,
        "invalid_credentials",
    );
    assert_eq!(
        phc(store.user(alice.id).await.unwrap().unwrap()),
        before,
        "no upgrade on failure"
    );
    new.login("alice", Password::new(PASSWORD)).await.unwrap();
    let after = phc(store.user(alice.id).await.unwrap().unwrap());
    assert!(after.contains("m=128,"), "{after}");
    // The upgraded hash still verifies, under either configuration, and a node with the
    // cheaper settings never downgrades it.
    new.login("alice", Password::new(PASSWORD)).await.unwrap();
    old.login("alice", Password::new(PASSWORD)).await.unwrap();
    let kept = phc(store.user(alice.id).await.unwrap().unwrap());
    assert!(kept.contains("m=128,"), "{kept}");
}

/// An unknown login name costs a full hash verification, like a wrong password: the time
/// of the two failures is the same within noise (medians of several tries, a generous band).
pub async fn unknown_users_cost_a_hash<T: Store + Clone>(store: T) {
    let ledger = ledger_hashing(store, 8192).await;
    ledger.register(registration("alice")).await.unwrap();
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..7 {
        // Distinct names keep the per-account backoff out of the measurement.
        let mut req = registration(&format!("timed{i}"));
        req.email = format!("timed{i}@example.com");
        ledger.register(req).await.unwrap();
        let t = std::time::Instant::now();
        let r = ledger
            .login(&format!("timed{i}"), Password::new("wrong password!"))
            .await;
        known.push(t.elapsed());
        assert_code(r, "invalid_credentials");
        let t = std::time::Instant::now();
        let r = ledger
            .login(&format!("ghost{i}"), Password::new("wrong password!"))
            .await;
        unknown.push(t.elapsed());
        assert_code(r, "invalid_credentials");
    }
    known.sort();
    unknown.sort();
    let ratio = unknown[3].as_secs_f64() / known[3].as_secs_f64();
    assert!(
        (0.33..3.0).contains(&ratio),
        "unknown {:?} vs wrong password {:?}",
        unknown[3],
        known[3]
    );
}

pub async fn other_peoples_payment_methods_are_invisible<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let alice = f.user().await;
    let mallory = f.user().await;
    let m = f
        .ledger
        .add_payment_method(&alice, alice.user, card("4242", 12, 2030, None))
        .await
        .unwrap();
    let missing = crate::payment_method::PaymentMethodId::new(m.id.get() + 1000).unwrap();
    for id in [m.id, missing] {
        assert_code(
            f.ledger.set_default_payment_method(&mallory, id).await,
            "payment_method_not_found",
        );
        assert_code(
            f.ledger
                .set_payment_method_status(&mallory, id, PaymentMethodStatus::Inactive)
                .await,
            "payment_method_not_found",
        );
    }
    assert_eq!(
        f.ledger.payment_methods(&alice, alice.user).await.unwrap()[0].status,
        PaymentMethodStatus::Active
    );
}

/// An ADMIN manages customers; staff are managed by a SUPERUSER.
pub async fn staff_are_managed_by_superusers_only<T: Store + Clone>(store: T) {
    let f = Fixture::new(store).await;
    let other_admin = f.user().await;
    f.ledger
        .set_role(&f.root, other_admin.user, Role::Admin)
        .await
        .unwrap();
    let root = f.root.user;
    assert_code(
        f.ledger.logout_everywhere(&f.admin, root).await,
        "forbidden",
    );
    assert_code(
        f.ledger
            .review_kyc(&f.admin, other_admin.user, KycStatus::Rejected, "no")
            .await,
        "forbidden",
    );
    assert_code(
        f.ledger
            .update_profile(
                &f.admin,
                root,
                ProfileUpdate {
                    email: Some("mine@example.com".into()),
                    ..ProfileUpdate::default()
                },
            )
            .await,
        "forbidden",
    );
    assert_code(
        f.ledger.set_active(&f.admin, other_admin.user, false).await,
        "forbidden",
    );
    f.ledger
        .logout_everywhere(&f.root, other_admin.user)
        .await
        .unwrap();
}
