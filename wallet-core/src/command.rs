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
use crate::identity::{Email, FullName, KycReason, KycStatus, NationalId, PhoneNumber, Profile};
use crate::ids::{UserId, WalletId, WalletNumber};
use crate::payment_method::{PaymentMethodId, PaymentMethodStatus, ValidPaymentMethod};
use crate::text::{Description, IdempotencyKey, Metadata};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
        let (tag, ids): (u8, [i64; 2]) = match self.flow {
            Flow::Deposit { wallet } => (1, [wallet.get(), 0]),
            Flow::Withdraw { wallet } => (2, [wallet.get(), 0]),
            Flow::Transfer { from, to } => (3, [from.get(), to.get()]),
        };
        h.update([tag]);
        for id in ids {
            h.update(id.to_be_bytes());
        }
        let field = |h: &mut Sha256, bytes: Option<&[u8]>| match bytes {
            None => h.update(u64::MAX.to_be_bytes()),
            Some(b) => {
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
        };
        field(&mut h, Some(self.amount.normalize().to_string().as_bytes()));
        field(
            &mut h,
            self.description.as_ref().map(|d| d.as_str().as_bytes()),
        );
        let metadata = self.metadata.as_ref().map(Metadata::to_json);
        field(&mut h, metadata.as_deref().map(str::as_bytes));
        let digest = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        Fingerprint(out)
    }
}

/// Most wallets one command touches (besides system accounts).
pub const WALLETS_PER_COMMAND_MAX: usize = 2;

/// The state a store must load before it can decide a command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Needs {
    /// Wallets to load, by id (missing ones are reported as `None`).
    pub wallets: Vec<WalletId>,
    /// A system account to load: this kind, in the currency of `wallets[index]`.
    pub system: Option<(SystemAccount, usize)>,
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
            Op::Move(m) => {
                let (wallets, system) = match m.flow {
                    Flow::Deposit { wallet } | Flow::Withdraw { wallet } => {
                        (vec![wallet], Some((SystemAccount::External, 0)))
                    }
                    Flow::Transfer { from, to } => (vec![from, to], None),
                };
                Needs {
                    wallets,
                    system,
                    idempotency: actor.map(|a| (a, m.idempotency_key.clone())),
                    ..needs
                }
            }
        }
    }

    /// The audit record this command leaves, whatever its outcome (`None`: not an admin or
    /// security action). Backends write it in the same transaction as the command's effects,
    /// or alone, with the error code as outcome, when the command is refused.
    pub fn audit(&self) -> Option<AuditNote> {
        let user_note = |action, user| AuditNote::new(action, AuditNote::user_target(user));
        match &self.op {
            Op::OpenWallet(_) | Op::Move(_) => None,
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
