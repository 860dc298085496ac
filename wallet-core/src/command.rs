//! Write commands, as the service hands them to a store.
//!
//! A command is validated input: every string in it already passed its checks. What cannot be
//! checked without the store's state (amounts against the wallet's currency, statuses, funds)
//! is checked by [`crate::decide::decide`].

use std::sync::Arc;

use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use crate::actor::{Actor, Role};
use crate::audit::{AuditAction, AuditNote};
use crate::auth::PasswordHash;
use crate::config::Config;
use crate::currency::{Currency, CurrencyCode};
use crate::fees::Rounding;
use crate::identity::{Email, FullName, KycReason, KycStatus, NationalId, PhoneNumber, Profile};
use crate::ids::{MerchantId, TransactionId, UserId, WalletId, WalletNumber};
use crate::payment_method::{PaymentMethodId, PaymentMethodStatus, ValidPaymentMethod};
use crate::text::{Description, ExternalRef, IdempotencyKey, Metadata};
use crate::time::Timestamp;
use crate::wallet::{SystemAccount, WalletKind, WalletStatus};

/// One write command: who, when, under which rules, and what.
#[derive(Debug, Clone)]
pub struct Command {
    /// Who is acting: `None` for an anonymous caller (registration, bootstrap, the audit
    /// record of a failed login). The store loads the actor's user record, and the decision
    /// uses its current role and refuses an inactive or deleted actor.
    pub actor: Option<Actor>,
    /// When the command was issued (the store may move it forward, never back).
    pub now: Timestamp,
    /// The rules in force.
    pub config: Arc<Config>,
    /// What to do.
    pub op: Op,
    /// The fingerprint of `op`'s request (money movements, refunds, payment links), worked out
    /// by [`Command::new`] on the caller's task so that a store's single writer does not
    /// spend its time hashing; `None`: the decision works it out itself. Private, so that only
    /// `op`'s own can be carried: a decision trusts it.
    fingerprint: Option<Fingerprint>,
}

/// The operation of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Open a wallet.
    OpenWallet(OpenWallet),
    /// Change a wallet's status.
    SetWalletStatus(SetWalletStatus),
    /// Move money.
    Move(Move),
    /// Create a user.
    Register(Register),
    /// Change a user.
    UpdateUser(UpdateUser),
    /// Record a security event in the audit log (nothing else changes).
    Audit(AuditRecord),
    /// Add or change a payment method.
    PaymentMethod(PaymentMethodOp),
    /// Capture or cancel a PENDING transaction (a hold, a pending top-up).
    Settle(Settle),
    /// A payment gateway's verdict on a pending top-up.
    Gateway(GatewayCallback),
    /// Return money from a completed transaction.
    Refund(Refund),
    /// Set a wallet's spending limits.
    SetLimits(SetLimits),
    /// Register a BUSINESS wallet as a merchant.
    RegisterMerchant(RegisterMerchant),
    /// Create a payment link.
    CreateLink(CreateLink),
    /// Cancel a payment link.
    CancelLink(crate::links::LinkCode),
    /// Mark a user's notifications read.
    MarkRead(MarkRead),
    /// Expire holds and pending top-ups past their expiry (at most this many).
    ExpireDue(u32),
    /// Several operations, all or nothing.
    Batch(Vec<Op>),
}

/// Most operations in one batch.
pub const BATCH_OPS_MAX: usize = 100;
/// Most overdue holds and pending top-ups one [`Op::ExpireDue`] resolves.
pub const EXPIRE_DUE_MAX: u32 = 1000;
/// Most notifications one [`Op::MarkRead`] names.
pub const MARK_READ_MAX: usize = 200;

/// Capture or cancel a PENDING transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settle {
    /// The PENDING transaction.
    pub transaction: TransactionId,
    /// What to do.
    pub action: SettleAction,
}

/// What to do with a PENDING transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleAction {
    /// Post a hold: all of it (`None`) or part; the rest is released.
    Capture {
        /// The amount to capture, at most the amount held.
        amount: Option<Decimal>,
    },
    /// Release a hold, or withdraw a pending top-up (void).
    Cancel,
}

/// A gateway's verdict on a pending top-up, by its reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayCallback {
    /// The gateway's reference given when the top-up was created.
    pub reference: ExternalRef,
    /// True: the money arrived (credit the wallet); false: it did not (FAILED).
    pub success: bool,
}

/// Return money from a completed transaction, reversing exactly its legs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The transaction refunded.
    pub original: TransactionId,
    /// How much (`None`: everything not yet refunded).
    pub amount: Option<Decimal>,
    /// Why.
    pub description: Option<Description>,
    /// Makes the command safe to retry.
    pub idempotency_key: IdempotencyKey,
}

impl Refund {
    /// The fingerprint of this refund (see [`Move::fingerprint`]).
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = Sha256::new();
        h.update(b"wallet-refund-v1\0");
        h.update(self.original.get().to_be_bytes());
        let amount = self.amount.map(|a| a.normalize().to_string());
        field(&mut h, amount.as_deref().map(str::as_bytes));
        field(
            &mut h,
            self.description.as_ref().map(|d| d.as_str().as_bytes()),
        );
        finish(h)
    }
}

/// Set a wallet's limits. The owner may lower them; raising any of them needs ADMIN+.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetLimits {
    /// The wallet.
    pub wallet: WalletId,
    /// The new limits, in the wallet's currency (`None`: back to the defaults).
    pub limits: Option<(Decimal, Decimal, Decimal)>,
}

/// Register a BUSINESS wallet as a merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterMerchant {
    /// The wallet payments go to.
    pub wallet: WalletId,
    /// The merchant's display name.
    pub name: Description,
}

/// Create a payment link on a wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateLink {
    /// The wallet paid.
    pub wallet: WalletId,
    /// The code (generated by the service: 128 random bits).
    pub code: crate::links::LinkCode,
    /// The amount asked.
    pub amount: Decimal,
    /// What it is for.
    pub description: Option<Description>,
    /// How long it stays payable, in microseconds from creation.
    pub ttl_micros: i64,
    /// Makes the command safe to retry.
    pub idempotency_key: IdempotencyKey,
}

impl CreateLink {
    /// The fingerprint of this request (the code is not part of it: a retry carries a new
    /// code and must still find the first link).
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = Sha256::new();
        h.update(b"wallet-link-v1\0");
        h.update(self.wallet.get().to_be_bytes());
        h.update(self.ttl_micros.to_be_bytes());
        field(&mut h, Some(self.amount.normalize().to_string().as_bytes()));
        field(
            &mut h,
            self.description.as_ref().map(|d| d.as_str().as_bytes()),
        );
        finish(h)
    }
}

/// Mark notifications of `user` read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRead {
    /// Whose notifications.
    pub user: UserId,
    /// Which (`None`: all of them).
    pub ids: Option<Vec<crate::ids::NotificationId>>,
}

/// Most payment methods one user may hold.
pub const PAYMENT_METHODS_PER_USER_MAX: usize = 20;

/// Operations on payment methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentMethodOp {
    /// Add a method for `owner` (their first one becomes the default).
    Add {
        /// The owner.
        owner: UserId,
        /// The validated method.
        method: ValidPaymentMethod,
    },
    /// Make a method its owner's default.
    SetDefault(PaymentMethodId),
    /// Change a method's status (into or out of BLOCKED: ADMIN+).
    SetStatus(PaymentMethodId, PaymentMethodStatus),
    /// Mark a method verified (ADMIN+).
    Verify(PaymentMethodId),
    /// Delete a method (SUPERUSER).
    Delete(PaymentMethodId),
}

impl PaymentMethodOp {
    /// The method an operation changes, if it names one.
    pub fn target(&self) -> Option<PaymentMethodId> {
        match self {
            PaymentMethodOp::Add { .. } => None,
            PaymentMethodOp::SetDefault(id)
            | PaymentMethodOp::SetStatus(id, _)
            | PaymentMethodOp::Verify(id)
            | PaymentMethodOp::Delete(id) => Some(*id),
        }
    }
}

/// Create a user: a customer (USER, KYC PENDING), or with `bootstrap` the first SUPERUSER,
/// which only works while no active SUPERUSER exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// Personal data.
    pub profile: Profile,
    /// The password hash (the service hashes outside the store).
    pub password: PasswordHash,
    /// Create the first SUPERUSER.
    pub bootstrap: bool,
}

/// Change one thing about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateUser {
    /// The user changed.
    pub user: UserId,
    /// The change.
    pub change: UserChange,
}

/// The changes a user record can undergo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserChange {
    /// New profile values (each `Some` field replaces the old one).
    Profile(ProfileChange),
    /// A new password: ends every session.
    Password {
        /// The new hash.
        hash: PasswordHash,
    },
    /// The same password re-hashed with the current parameters after a login. Applied only if
    /// the stored hash is still `replaces` (compare and swap): a password changed meanwhile
    /// must not be overwritten by a hash of the old one.
    UpgradeHash {
        /// The hash the login verified.
        replaces: PasswordHash,
        /// Its replacement.
        hash: PasswordHash,
    },
    /// End every outstanding session (logout everywhere).
    RevokeSessions,
    /// A new role (ends the user's sessions).
    Role(Role),
    /// Deactivate (ends the user's sessions) or reactivate.
    Active(bool),
    /// A KYC decision.
    Kyc {
        /// VERIFIED, REJECTED, or PENDING to reopen a rejected review.
        status: KycStatus,
        /// Why.
        reason: KycReason,
    },
    /// Delete: close the (empty) wallets, erase personal data, keep the ledger.
    Delete,
}

/// Profile fields to replace. The username never changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChange {
    /// New e-mail address (must be free).
    pub email: Option<Email>,
    /// New full name.
    pub full_name: Option<FullName>,
    /// New phone number.
    pub phone: Option<PhoneNumber>,
    /// New national id: `Some(None)` removes it.
    pub national_id: Option<Option<NationalId>>,
}

/// An audit record to append, with the outcome of what it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// What happened.
    pub note: AuditNote,
    /// `ok` or an error code.
    pub outcome: &'static str,
}

/// Open a wallet for `owner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenWallet {
    /// The owner.
    pub owner: UserId,
    /// Kind of wallet.
    pub kind: WalletKind,
    /// Its currency (resolved against the configuration).
    pub currency: Currency,
}

/// Change the status of a wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetWalletStatus {
    /// The wallet.
    pub wallet: WalletId,
    /// The new status.
    pub status: WalletStatus,
}

/// Which way money moves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Flow {
    /// From outside into `wallet` (top-up).
    Deposit {
        /// The wallet credited.
        wallet: WalletId,
    },
    /// From `wallet` to outside.
    Withdraw {
        /// The wallet debited.
        wallet: WalletId,
    },
    /// From one wallet to another of the same currency.
    Transfer {
        /// The wallet debited.
        from: WalletId,
        /// The wallet credited.
        to: WalletId,
    },
    /// From `from` to a merchant, for an order (paid at most once).
    Payment {
        /// The wallet debited.
        from: WalletId,
        /// The merchant paid.
        merchant: MerchantId,
        /// The merchant's order id.
        order: ExternalRef,
    },
    /// From `from` to the wallet of a payment link (paid at most once).
    LinkPayment {
        /// The wallet debited.
        from: WalletId,
        /// The link.
        code: crate::links::LinkCode,
    },
    /// Between two wallets of one owner in different currencies.
    Exchange {
        /// The wallet debited, in its currency.
        from: WalletId,
        /// The wallet credited, in its currency.
        to: WalletId,
        /// Units of `to`'s currency per unit of `from`'s.
        rate: Decimal,
        /// How the converted amount is rounded to `to`'s minor unit.
        rounding: Rounding,
    },
}

impl Flow {
    /// The wallet the money leaves (or, for a top-up, enters): whose owner acts.
    pub fn primary(&self) -> WalletId {
        match self {
            Flow::Deposit { wallet } | Flow::Withdraw { wallet } => *wallet,
            Flow::Transfer { from, .. }
            | Flow::Payment { from, .. }
            | Flow::LinkPayment { from, .. }
            | Flow::Exchange { from, .. } => *from,
        }
    }
}

/// When a movement's money moves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Timing {
    /// Now: the transaction is COMPLETED at once.
    #[default]
    Now,
    /// A top-up that stays PENDING until the gateway's callback (or its timeout).
    AwaitGateway {
        /// The gateway's reference (unique).
        reference: ExternalRef,
    },
    /// Reserve the money now (a PENDING hold); capture, void, or let it expire.
    Hold {
        /// How long the hold lasts, in microseconds (`None`: the configured default).
        ttl_micros: Option<i64>,
    },
}

/// A money movement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// Direction and wallets.
    pub flow: Flow,
    /// Amount in whole units of the wallets' currency (positive).
    pub amount: Decimal,
    /// Caller's description.
    pub description: Option<Description>,
    /// Caller's metadata.
    pub metadata: Option<Metadata>,
    /// Makes the command safe to retry.
    pub idempotency_key: IdempotencyKey,
    /// Now, pending a gateway, or as a hold.
    pub timing: Timing,
}

fn field(h: &mut Sha256, bytes: Option<&[u8]>) {
    match bytes {
        None => h.update(u64::MAX.to_be_bytes()),
        Some(b) => {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        }
    }
}

fn finish(h: Sha256) -> Fingerprint {
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    Fingerprint(out)
}

/// The first 48 bytes of an ASCII reference (audit targets are bounded).
fn truncate_ref(r: &str) -> &str {
    r.get(..48).unwrap_or(r)
}

impl Move {
    /// The kind of transaction this movement creates.
    pub fn kind(&self) -> crate::transaction::TransactionKind {
        use crate::transaction::TransactionKind as K;
        match self.flow {
            Flow::Deposit { .. } => K::TopUp,
            Flow::Withdraw { .. } => K::Withdrawal,
            Flow::Transfer { .. } => K::Transfer,
            Flow::Payment { .. } | Flow::LinkPayment { .. } => K::Payment,
            Flow::Exchange { .. } => K::Exchange,
        }
    }
}

/// A digest of a request's parameters: two requests with the same idempotency key are the same
/// request exactly when their fingerprints are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 16]);

impl Move {
    /// The fingerprint of this movement. The encoding is fixed forever (stored fingerprints are
    /// compared with new ones): a version tag, then length-prefixed fields.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = Sha256::new();
        h.update(b"wallet-move-v1\0");
        // Tags 1 to 3 with `Timing::Now` keep the version-1 encoding exactly; later flows and
        // timings append their own fields after it.
        let (tag, ids): (u8, [i64; 2]) = match &self.flow {
            Flow::Deposit { wallet } => (1, [wallet.get(), 0]),
            Flow::Withdraw { wallet } => (2, [wallet.get(), 0]),
            Flow::Transfer { from, to } => (3, [from.get(), to.get()]),
            Flow::Payment { from, merchant, .. } => (4, [from.get(), merchant.get()]),
            Flow::LinkPayment { from, .. } => (5, [from.get(), 0]),
            Flow::Exchange { from, to, .. } => (6, [from.get(), to.get()]),
        };
        h.update([tag]);
        for id in ids {
            h.update(id.to_be_bytes());
        }
        field(&mut h, Some(self.amount.normalize().to_string().as_bytes()));
        field(
            &mut h,
            self.description.as_ref().map(|d| d.as_str().as_bytes()),
        );
        let metadata = self.metadata.as_ref().map(Metadata::to_json);
        field(&mut h, metadata.as_deref().map(str::as_bytes));
        match &self.flow {
            Flow::Deposit { .. } | Flow::Withdraw { .. } | Flow::Transfer { .. } => {}
            Flow::Payment { order, .. } => field(&mut h, Some(order.as_str().as_bytes())),
            Flow::LinkPayment { code, .. } => field(&mut h, Some(code.to_string().as_bytes())),
            Flow::Exchange { rate, rounding, .. } => {
                field(&mut h, Some(rate.normalize().to_string().as_bytes()));
                let name: &[u8] = match rounding {
                    Rounding::HalfUp => b"HALF_UP",
                    Rounding::HalfEven => b"HALF_EVEN",
                    Rounding::Down => b"DOWN",
                    Rounding::Up => b"UP",
                };
                field(&mut h, Some(name));
            }
        }
        match &self.timing {
            Timing::Now => {}
            Timing::AwaitGateway { reference } => {
                h.update(b"g");
                field(&mut h, Some(reference.as_str().as_bytes()));
            }
            Timing::Hold { ttl_micros } => {
                h.update(b"h");
                h.update(ttl_micros.unwrap_or(-1).to_be_bytes());
            }
        }
        finish(h)
    }
}

/// Most wallets one command touches (besides system accounts).
pub const WALLETS_PER_COMMAND_MAX: usize = 2;

/// Where the store finds the transaction a command is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnLookup {
    /// By id.
    Id(TransactionId),
    /// By the gateway reference of a pending top-up.
    Gateway(ExternalRef),
}

/// The state a store must load before it can decide a command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Needs {
    /// Wallets to load, by id (missing ones are reported as `None`).
    pub wallets: Vec<WalletId>,
    /// System accounts to load: this kind, in the currency of `wallets[index]`.
    pub systems: Vec<(SystemAccount, usize)>,
    /// A merchant whose wallet is appended to `wallets`, and whether the order was paid.
    pub merchant: Option<(MerchantId, Option<ExternalRef>)>,
    /// A payment link; for a payment, its wallet is appended to `wallets`.
    pub link: Option<crate::links::LinkCode>,
    /// An existing transaction (with its pending details), whose accounts are all loaded
    /// into `wallets`, in ascending id order, with every system account of its currencies.
    pub transaction: Option<TxnLookup>,
    /// Open holds of `wallets[index]` that are past their expiry at `now`.
    pub expired_holds: Option<usize>,
    /// Spend and limits of `wallets[index]` over the day and month containing `now`.
    pub spend: Option<usize>,
    /// The stored limits of `wallets[index]`.
    pub limits: Option<usize>,
    /// Open holds and pending top-ups past their expiry (at most this many), with their
    /// wallets loaded into `wallets`.
    pub due: Option<u32>,
    /// The merchant registered on this wallet, if any.
    pub merchant_of: Option<WalletId>,
    /// A payment link created earlier by (user, key).
    pub link_key: Option<(UserId, IdempotencyKey)>,
    /// An earlier transaction with this (actor, key), if any.
    pub idempotency: Option<(UserId, IdempotencyKey)>,
    /// For opening a wallet: the owner's existing wallet of this kind and currency, if any.
    pub slot: Option<(UserId, WalletKind, CurrencyCode)>,
    /// For opening a wallet: the exponent the store recorded for this currency, if any.
    pub currency: Option<CurrencyCode>,
    /// The acting user's record.
    pub actor: Option<UserId>,
    /// The record of the user a command is about (the owner of a new wallet, the user changed).
    pub user: Option<UserId>,
    /// Which users already hold this username and this e-mail address.
    pub logins: Option<(Option<crate::identity::Username>, Option<Email>)>,
    /// The number of active SUPERUSERs.
    pub superusers: bool,
    /// Every wallet of this owner (to delete the owner).
    pub owner_wallets: Option<UserId>,
    /// A payment method.
    pub payment_method: Option<PaymentMethodId>,
    /// Every payment method of this owner.
    pub methods_of: Option<UserId>,
}

impl Command {
    /// A command, with its request's fingerprint worked out now, on the caller's task, so that
    /// a store's single writer does not spend its time hashing.
    pub fn new(actor: Option<Actor>, now: Timestamp, config: Arc<Config>, op: Op) -> Self {
        let fingerprint = match &op {
            Op::Move(m) => Some(m.fingerprint()),
            Op::Refund(r) => Some(r.fingerprint()),
            Op::CreateLink(c) => Some(c.fingerprint()),
            _ => None,
        };
        Command {
            actor,
            now,
            config,
            op,
            fingerprint,
        }
    }

    /// The same command for another operation (one operation of a batch): its fingerprint is
    /// worked out when the decision needs it.
    pub fn with_op(&self, op: Op) -> Self {
        Command {
            actor: self.actor,
            now: self.now,
            config: Arc::clone(&self.config),
            op,
            fingerprint: None,
        }
    }

    /// Test kit only: carries `fingerprint` as its request's, right or wrong. In debug builds a
    /// decision asserts it is right, which tests use to make a store's decision panic.
    #[cfg(feature = "testkit")]
    pub fn with_fingerprint(self, fingerprint: Fingerprint) -> Self {
        Command {
            fingerprint: Some(fingerprint),
            ..self
        }
    }

    /// The fingerprint of this command's request, `compute`d unless it was worked out ahead.
    pub(crate) fn fingerprint_or(&self, compute: impl FnOnce() -> Fingerprint) -> Fingerprint {
        match self.fingerprint {
            Some(f) => {
                debug_assert_eq!(
                    f,
                    compute(),
                    "a command carries another request's fingerprint"
                );
                f
            }
            None => compute(),
        }
    }

    /// What the store must load to decide this command.
    pub fn needs(&self) -> Needs {
        let actor = self.actor.map(|a| a.user);
        let needs = Needs {
            actor,
            ..Needs::default()
        };
        match &self.op {
            Op::OpenWallet(o) => Needs {
                slot: Some((o.owner, o.kind, o.currency.code())),
                currency: Some(o.currency.code()),
                user: Some(o.owner),
                ..needs
            },
            Op::SetWalletStatus(s) => Needs {
                wallets: vec![s.wallet],
                ..needs
            },
            Op::Register(r) => Needs {
                logins: Some((
                    Some(r.profile.username.clone()),
                    Some(r.profile.email.clone()),
                )),
                superusers: r.bootstrap,
                ..needs
            },
            Op::UpdateUser(u) => {
                let mut n = Needs {
                    user: Some(u.user),
                    ..needs
                };
                match &u.change {
                    UserChange::Profile(p) => n.logins = p.email.clone().map(|e| (None, Some(e))),
                    UserChange::Role(_) | UserChange::Active(_) => n.superusers = true,
                    UserChange::Delete => {
                        n.superusers = true;
                        n.owner_wallets = Some(u.user);
                    }
                    UserChange::Password { .. }
                    | UserChange::UpgradeHash { .. }
                    | UserChange::RevokeSessions
                    | UserChange::Kyc { .. } => {}
                }
                n
            }
            Op::Audit(_) => needs,
            Op::PaymentMethod(op) => Needs {
                payment_method: op.target(),
                methods_of: match op {
                    PaymentMethodOp::Add { owner, .. } => Some(*owner),
                    _ => None,
                },
                user: match op {
                    PaymentMethodOp::Add { owner, .. } => Some(*owner),
                    _ => None,
                },
                ..needs
            },
            Op::Move(m) => self.move_needs(m, needs),
            Op::Settle(s) => Needs {
                transaction: Some(TxnLookup::Id(s.transaction)),
                ..needs
            },
            Op::Gateway(g) => Needs {
                transaction: Some(TxnLookup::Gateway(g.reference.clone())),
                ..needs
            },
            Op::Refund(r) => Needs {
                transaction: Some(TxnLookup::Id(r.original)),
                idempotency: actor.map(|a| (a, r.idempotency_key.clone())),
                ..needs
            },
            Op::SetLimits(s) => Needs {
                wallets: vec![s.wallet],
                limits: Some(0),
                ..needs
            },
            Op::RegisterMerchant(r) => Needs {
                wallets: vec![r.wallet],
                merchant_of: Some(r.wallet),
                ..needs
            },
            Op::CreateLink(c) => Needs {
                wallets: vec![c.wallet],
                link_key: actor.map(|a| (a, c.idempotency_key.clone())),
                ..needs
            },
            Op::CancelLink(code) => Needs {
                link: Some(*code),
                ..needs
            },
            Op::MarkRead(_) => needs,
            Op::ExpireDue(max) => Needs {
                due: Some((*max).min(EXPIRE_DUE_MAX)),
                ..needs
            },
            // A batch loads per operation, as each one is applied.
            Op::Batch(_) => needs,
        }
    }

    fn move_needs(&self, m: &Move, needs: Needs) -> Needs {
        let actor = needs.actor;
        let kind = m.kind();
        let fee = self.config.fees().rule(kind).is_some();
        let mut n = Needs {
            idempotency: actor.map(|a| (a, m.idempotency_key.clone())),
            ..needs
        };
        match &m.flow {
            Flow::Deposit { wallet } => {
                n.wallets = vec![*wallet];
                n.systems.push((SystemAccount::External, 0));
            }
            Flow::Withdraw { wallet } => {
                n.wallets = vec![*wallet];
                n.systems.push((SystemAccount::External, 0));
            }
            Flow::Transfer { from, to } => n.wallets = vec![*from, *to],
            Flow::Payment {
                from,
                merchant,
                order,
            } => {
                n.wallets = vec![*from];
                n.merchant = Some((*merchant, Some(order.clone())));
            }
            Flow::LinkPayment { from, code } => {
                n.wallets = vec![*from];
                n.link = Some(*code);
            }
            Flow::Exchange { from, to, .. } => {
                n.wallets = vec![*from, *to];
                n.systems.push((SystemAccount::Exchange, 0));
                n.systems.push((SystemAccount::Exchange, 1));
            }
        }
        if fee {
            n.systems.push((SystemAccount::FeeRevenue, 0));
        }
        if !matches!(m.flow, Flow::Deposit { .. }) {
            // Money leaves wallets[0]: release its lapsed holds first, and check its limits.
            n.expired_holds = Some(0);
            n.spend = Some(0);
            n.limits = Some(0);
        }
        if let Timing::AwaitGateway { reference } = &m.timing {
            // A gateway reference names one top-up.
            n.transaction = Some(TxnLookup::Gateway(reference.clone()));
        }
        n
    }

    /// The audit record this command leaves, whatever its outcome (`None`: not an admin or
    /// security action). Backends write it in the same transaction as the command's effects,
    /// or alone, with the error code as outcome, when the command is refused.
    pub fn audit(&self) -> Option<AuditNote> {
        let user_note = |action, user| AuditNote::new(action, AuditNote::user_target(user));
        match &self.op {
            Op::OpenWallet(_)
            | Op::Move(_)
            | Op::Settle(_)
            | Op::CreateLink(_)
            | Op::CancelLink(_)
            | Op::MarkRead(_)
            | Op::ExpireDue(_)
            | Op::Batch(_) => None,
            Op::Refund(r) => Some(
                AuditNote::new(
                    AuditAction::Refund,
                    Some(format!(
                        "transaction:{}",
                        crate::ids::TransactionRef::of(r.original)
                    )),
                )
                .with_detail(
                    r.amount
                        .map_or_else(|| "full".to_owned(), |a| a.normalize().to_string()),
                ),
            ),
            Op::SetLimits(s) => Some(AuditNote::new(
                AuditAction::SetLimits,
                Some(format!("wallet:{}", WalletNumber::of(s.wallet))),
            )),
            Op::RegisterMerchant(r) => Some(AuditNote::new(
                AuditAction::RegisterMerchant,
                Some(format!("wallet:{}", WalletNumber::of(r.wallet))),
            )),
            Op::Gateway(g) => Some(
                AuditNote::new(
                    AuditAction::GatewayCallback,
                    Some(format!("gateway:{}", truncate_ref(g.reference.as_str()))),
                )
                .with_detail(if g.success { "completed" } else { "failed" }),
            ),
            Op::SetWalletStatus(s) => Some(
                AuditNote::new(
                    AuditAction::SetWalletStatus,
                    Some(format!("wallet:{}", WalletNumber::of(s.wallet))),
                )
                .with_detail(s.status.as_str()),
            ),
            Op::Register(r) => Some(AuditNote::new(
                if r.bootstrap {
                    AuditAction::Bootstrap
                } else {
                    AuditAction::Register
                },
                Some(format!("username:{}", r.profile.username)),
            )),
            Op::UpdateUser(u) => Some(match &u.change {
                UserChange::Profile(_) => user_note(AuditAction::UpdateProfile, u.user),
                UserChange::Password { .. } => user_note(AuditAction::ChangePassword, u.user),
                // A hash upgrade after a login is bookkeeping, recorded by the login itself.
                UserChange::UpgradeHash { .. } => return None,
                UserChange::RevokeSessions => user_note(AuditAction::RevokeSessions, u.user),
                UserChange::Role(role) => {
                    user_note(AuditAction::SetRole, u.user).with_detail(role.as_str())
                }
                UserChange::Active(active) => user_note(AuditAction::SetUserActive, u.user)
                    .with_detail(if *active { "active" } else { "inactive" }),
                UserChange::Kyc { status, .. } => {
                    user_note(AuditAction::ReviewKyc, u.user).with_detail(status.as_str())
                }
                UserChange::Delete => user_note(AuditAction::DeleteUser, u.user),
            }),
            Op::Audit(a) => Some(a.note.clone()),
            Op::PaymentMethod(op) => {
                let target = op.target().map(|id| format!("payment_method:{id}"));
                match op {
                    PaymentMethodOp::Verify(_) => Some(
                        AuditNote::new(AuditAction::ReviewPaymentMethod, target)
                            .with_detail("verified"),
                    ),
                    PaymentMethodOp::SetStatus(_, status) => Some(
                        AuditNote::new(AuditAction::ReviewPaymentMethod, target)
                            .with_detail(status.as_str()),
                    ),
                    PaymentMethodOp::Delete(_) => {
                        Some(AuditNote::new(AuditAction::DeletePaymentMethod, target))
                    }
                    PaymentMethodOp::Add { .. } | PaymentMethodOp::SetDefault(_) => None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn wid(n: i64) -> WalletId {
        WalletId::new(n).unwrap()
    }

    fn transfer(amount: Decimal) -> Move {
        Move {
            flow: Flow::Transfer {
                from: wid(1),
                to: wid(2),
            },
            amount,
            description: Some(Description::new("rent").unwrap()),
            metadata: None,
            idempotency_key: IdempotencyKey::new("k1").unwrap(),
            timing: Timing::Now,
        }
    }

    #[test]
    fn fingerprint_is_stable() {
        // Golden value: stored fingerprints must keep matching across releases.
        let fp = transfer(dec!(10.50)).fingerprint();
        assert_eq!(
            fp.0.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "7cdd1c7c35ed371a15c6ad3e895a82c7",
            "fingerprint encoding changed"
        );
    }

    #[test]
    fn fingerprint_ignores_trailing_zeros_but_not_parameters() {
        let base = transfer(dec!(10.50));
        assert_eq!(base.fingerprint(), transfer(dec!(10.5)).fingerprint());
        assert_ne!(base.fingerprint(), transfer(dec!(10.51)).fingerprint());
        let mut other = base.clone();
        other.flow = Flow::Transfer {
            from: wid(2),
            to: wid(1),
        };
        assert_ne!(base.fingerprint(), other.fingerprint());
        let mut other = base.clone();
        other.description = None;
        assert_ne!(base.fingerprint(), other.fingerprint());
        let mut other = base.clone();
        other.metadata = Some(Metadata::parse("{}").unwrap());
        assert_ne!(base.fingerprint(), other.fingerprint());
        let mut other = base.clone();
        other.flow = Flow::Deposit { wallet: wid(1) };
        assert_ne!(base.fingerprint(), other.fingerprint());
        // The key itself is not part of the fingerprint: it is what selects the earlier request.
        let mut other = base.clone();
        other.idempotency_key = IdempotencyKey::new("k2").unwrap();
        assert_eq!(base.fingerprint(), other.fingerprint());
    }
}
