//! The backend conformance suite: every operation, every rule, every error, run unchanged by
//! each backend.
//!
//! A backend's test crate runs it with one line:
//!
//! ```ignore
//! wallet_core::conformance_suite!(|| async {
//!     wallet_sqlite::SqliteStore::open_in_memory(Default::default()).unwrap()
//! });
//! ```
//!
//! The macro expands to one `#[tokio::test]` per case (the test crate needs `tokio` with the
//! `macros` and `rt-multi-thread` features). The model-based property test lives in [`model`].

// A test kit: a failed expectation must fail the test, so unwrapping and panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

pub mod adversarial_cases;
pub mod cases;
pub mod child;
pub mod identity_cases;
pub mod model;
pub mod payment_cases;
pub mod portable_cases;
pub mod storage;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::actor::{Actor, Role};
use crate::auth::{HashParams, JwtSecret, Password};
use crate::config::Config;
use crate::error::Error;
use crate::identity::KycStatus;
use crate::ledger::{DepositRequest, Ledger, OpenWalletRequest};
use crate::money::parse_amount;
use crate::store::Store;
use crate::time::{ManualClock, Timestamp};
use crate::users::{AuthConfig, RegisterRequest};
use crate::wallet::{Wallet, WalletKind};
use rust_decimal::Decimal;

/// Default limits too high to matter: for tests about something else.
pub fn unlimited() -> crate::limits::DefaultLimits {
    let big = Decimal::from(1_000_000_000_000i64);
    crate::limits::DefaultLimits {
        per_transaction: big,
        daily: big,
        monthly: big,
    }
}

/// A decimal from text: `d("12.34")`.
pub fn d(text: &str) -> Decimal {
    parse_amount(text).unwrap()
}

/// 2026-01-01T00:00:00Z, where every fixture's clock starts.
pub const START: Timestamp = Timestamp::from_micros(1_767_225_600_000_000);

/// A ledger over a fresh store, a manual clock, and helpers to make users, keys and wallets.
pub struct Fixture<S> {
    pub ledger: Ledger<S>,
    pub store: S,
    pub clock: ManualClock,
    /// An ADMIN.
    pub admin: Actor,
    /// A SUPERUSER (the bootstrapped one).
    pub root: Actor,
    next_user: AtomicI64,
    next_key: AtomicU64,
}

/// The password every fixture user gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// Cheap hashing parameters: the conformance suite registers many users and is not about the
/// cost of Argon2id.
pub fn fast_auth() -> AuthConfig {
    AuthConfig {
        hashing: HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        hash_workers: 2,
        ..AuthConfig::default()
    }
}

/// A fixed, valid JWT secret for tests.
pub fn test_secret() -> JwtSecret {
    JwtSecret::new(
        (0u8..64)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect(),
    )
    .unwrap()
}

/// A registration request for `name` with the fixture password.
pub fn registration(name: &str) -> RegisterRequest {
    RegisterRequest {
        username: name.to_owned(),
        email: format!("{name}@example.com"),
        password: Password::new(PASSWORD),
        full_name: format!("Test {name}"),
        phone: "+14155550100".to_owned(),
        national_id: None,
    }
}

impl<S: Store + Clone> Fixture<S> {
    /// A fixture with the default configuration.
    pub async fn new(store: S) -> Self {
        Self::with_config(store, Config::default()).await
    }

    /// A fixture with `config`: a bootstrapped SUPERUSER (`root`) and a KYC-verified ADMIN.
    pub async fn with_config(store: S, config: Config) -> Self {
        let clock = ManualClock::new(START);
        let ledger = Ledger::with_clock(store.clone(), config, clock.clone())
            .await
            .unwrap()
            .with_auth(fast_auth(), Some(test_secret()))
            .unwrap();
        let root = ledger.bootstrap(registration("root")).await.unwrap();
        let root = Actor::new(root.id, root.role);
        let admin = ledger.register(registration("admin")).await.unwrap();
        ledger.set_role(&root, admin.id, Role::Admin).await.unwrap();
        ledger
            .review_kyc(&root, admin.id, KycStatus::Verified, "staff")
            .await
            .unwrap();
        Fixture {
            ledger,
            store,
            clock,
            admin: Actor::new(admin.id, Role::Admin),
            root,
            next_user: AtomicI64::new(1),
            next_key: AtomicU64::new(1),
        }
    }

    /// A new customer, registered and KYC-verified.
    pub async fn user(&self) -> Actor {
        let who = self.unverified_user().await;
        self.ledger
            .review_kyc(
                &self.admin,
                who.user,
                KycStatus::Verified,
                "documents checked",
            )
            .await
            .unwrap();
        who
    }

    /// A new customer whose KYC review is still PENDING.
    pub async fn unverified_user(&self) -> Actor {
        let n = self.next_user.fetch_add(1, Ordering::Relaxed);
        let user = self
            .ledger
            .register(registration(&format!("user{n}")))
            .await
            .unwrap();
        Actor::user(user.id)
    }

    /// The fixture clock's time now.
    pub fn clock_now(&self) -> Timestamp {
        crate::time::Clock::now(&self.clock)
    }

    /// A new idempotency key.
    pub fn key(&self) -> String {
        format!("key-{}", self.next_key.fetch_add(1, Ordering::Relaxed))
    }

    /// Opens a PERSONAL wallet in `currency` for `who`.
    pub async fn wallet(&self, who: &Actor, currency: &str) -> Wallet {
        self.wallet_of_kind(who, WalletKind::Personal, currency)
            .await
    }

    /// Opens a wallet of `kind` in `currency` for `who`.
    pub async fn wallet_of_kind(&self, who: &Actor, kind: WalletKind, currency: &str) -> Wallet {
        self.ledger
            .open_wallet(who, OpenWalletRequest::new(who.user, kind, currency))
            .await
            .unwrap()
    }

    /// Opens a PERSONAL wallet for `who` and tops it up with `amount`.
    pub async fn funded(&self, who: &Actor, currency: &str, amount: &str) -> Wallet {
        let w = self.wallet(who, currency).await;
        self.ledger
            .deposit(who, DepositRequest::new(w.id, d(amount), self.key()))
            .await
            .unwrap();
        self.reload(&w).await
    }

    /// The wallet as it is now (read as admin).
    pub async fn reload(&self, w: &Wallet) -> Wallet {
        self.ledger.wallet(&self.admin, w.id).await.unwrap()
    }

    /// The wallet's balance now.
    pub async fn balance(&self, w: &Wallet) -> Decimal {
        self.reload(w).await.balance.amount()
    }

    /// Counts of everything stored plus the balances of `wallets`: equal snapshots before and
    /// after a rejected call prove it wrote nothing.
    pub async fn snapshot(&self, wallets: &[&Wallet]) -> Snapshot {
        let report = self.ledger.verify(&self.admin).await.unwrap();
        assert!(report.is_ok(), "ledger inconsistent: {report:?}");
        let mut balances = Vec::new();
        for w in wallets {
            let now = self.reload(w).await;
            balances.push((now.balance, now.held, now.status));
        }
        Snapshot {
            counts: (report.accounts, report.transactions, report.entries),
            balances: format!("{balances:?}"),
        }
    }

    /// Asserts the ledger verifies.
    pub async fn assert_verified(&self) {
        let report = self.ledger.verify(&self.admin).await.unwrap();
        assert!(report.is_ok(), "ledger inconsistent: {report:#?}");
    }
}

/// See [`Fixture::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    counts: (u64, u64, u64),
    balances: String,
}

/// Asserts `result` failed with the error code `code`.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Error>, code: &str) {
    match result {
        Err(e) => assert_eq!(e.code(), code, "wrong error: {e:?}"),
        Ok(v) => panic!("expected error {code}, got {v:?}"),
    }
}

/// Expands to one test per conformance case. `$make` is a closure returning a future of a
/// fresh, empty store: `|| async { … }`.
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@cases $make;
            open_wallet_starts_active_and_empty,
            one_wallet_per_owner_kind_and_currency,
            open_wallet_validates_currency_and_owner,
            custom_assets_have_their_own_precision,
            stored_currencies_must_match_configuration,
            wallet_lookup_by_id_and_number,
            system_accounts_are_not_addressable,
            wallets_of_lists_a_users_wallets,
            only_superusers_change_status,
            only_active_wallets_move_money,
            closing_requires_an_empty_wallet_and_is_final,
            deposit_credits_wallet_from_external_account,
            amount_rules_reject_and_write_nothing,
            text_inputs_are_validated_and_write_nothing,
            money_moves_only_from_own_wallets,
            withdraw_needs_available_funds,
            transfer_moves_money_by_id_or_number,
            transfer_rules_reject_and_write_nothing,
            receipts_hide_other_peoples_balances,
            replay_returns_the_first_receipt,
            idempotency_conflicts_are_detected,
            rejected_commands_do_not_consume_keys,
            idempotency_keys_are_scoped_per_user,
            transaction_lookup_is_authorized,
            history_is_newest_first_and_paginates,
            history_filters_and_totals,
            history_rejects_bad_queries,
            clock_stepping_back_keeps_entries_ordered,
            amount_bounds_are_configurable,
            verify_requires_admin_and_passes,
            health_reports_reachability_schema_and_commits,
            concurrent_transfers_conserve_money,
            bootstrap_works_once,
            registration_validates_and_normalizes,
            login_and_authenticate,
            failed_logins_back_off,
            sessions_are_revoked,
            roles_are_changed_by_superusers_only,
            kyc_review_and_policy,
            inactive_users_cannot_act,
            profiles_are_updated_by_their_owner,
            deleting_a_user_erases_them_and_keeps_the_ledger,
            wallets_need_a_registered_owner,
            payment_methods_lifecycle,
            admin_views_filter_and_paginate,
            audit_log_filters_and_paginates,
            old_password_hashes_are_upgraded_at_login,
            unknown_users_cost_a_hash,
            other_peoples_payment_methods_are_invisible,
            staff_are_managed_by_superusers_only,
            pending_top_ups_follow_the_gateway,
            holds_reserve_then_capture_void_or_expire,
            refunds_reverse_exactly_the_original,
            fees_are_collected_in_the_same_transaction,
            merchants_are_paid_once_per_order,
            exchange_keeps_every_currency_balanced,
            batches_apply_all_or_nothing,
            limits_follow_the_local_calendar,
            payment_links_are_paid_once,
            notifications_and_events_record_every_change,
            every_movement_tells_each_user_once,
            a_partial_capture_keeps_what_the_hold_said,
            statements_search_and_analytics,
            races_between_refunds_and_settlements,
            reference_defects_cannot_happen,
        );
    };
    (@cases $make:expr; $($case:ident),+ $(,)?) => {
        /// Random command sequences against the reference model (see `testkit::model`).
        #[test]
        fn model_based_sequences() {
            let (cases, steps) = $crate::testkit::model::budget();
            $crate::testkit::model::run($make, cases, steps);
        }

        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = ($make)().await;
                $crate::testkit::cases::$case(store).await;
            }
        )+
    };
}
