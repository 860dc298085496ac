//! Who is acting, and the one policy function that decides what they may do.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::wallet::code_enum;

code_enum!(
    /// A user's role.
    Role {
        /// A customer: acts only on their own wallets and data.
        User = ("USER", 1),
        /// Staff: admin reads, KYC review, user activation.
        Admin = ("ADMIN", 2),
        /// Full control: roles, wallet status, refunds, deletions.
        Superuser = ("SUPERUSER", 3),
    }
);

/// The authenticated caller of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The user acting.
    pub user: UserId,
    /// Their role at the time they authenticated.
    pub role: Role,
}

impl Actor {
    /// An actor with `role`. Hosts obtain actors from authentication; building one by hand is
    /// for hosts that authenticate users themselves, and for tests.
    pub fn new(user: UserId, role: Role) -> Self {
        Actor { user, role }
    }

    /// A customer.
    pub fn user(user: UserId) -> Self {
        Actor::new(user, Role::User)
    }

    /// Whether the actor is ADMIN or SUPERUSER.
    pub fn is_admin(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Superuser)
    }

    /// Whether the actor is SUPERUSER.
    pub fn is_superuser(&self) -> bool {
        self.role == Role::Superuser
    }

    fn owns(&self, owner: Option<UserId>) -> bool {
        owner == Some(self.user)
    }
}

/// An operation, with the ownership facts the policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Open a wallet for `owner`.
    OpenWallet {
        /// The future owner.
        owner: UserId,
    },
    /// Read a wallet (its balance, its history).
    ReadWallet {
        /// Its owner (`None`: a system account).
        owner: Option<UserId>,
    },
    /// List a user's wallets.
    ListWallets {
        /// Whose wallets.
        owner: UserId,
    },
    /// Change a wallet's status.
    SetWalletStatus,
    /// Move money out of or into a wallet on its owner's behalf (top-up, withdrawal, transfer
    /// from it).
    MoveMoney {
        /// The owner of the wallet the money is taken from (or, for a top-up, added to).
        owner: Option<UserId>,
    },
    /// Read a transaction.
    ReadTransaction {
        /// Whether the actor owns an account the transaction touched.
        party: bool,
    },
    /// Check the whole ledger.
    Verify,
    /// Read a user's profile.
    ReadUser {
        /// The user read.
        target: UserId,
    },
    /// Change a user's profile (name, e-mail, phone, national id).
    UpdateProfile {
        /// The user changed.
        target: UserId,
        /// Their current role.
        target_role: Role,
    },
    /// Change a user's password (the current password is checked by the service).
    ChangePassword {
        /// Whose password.
        target: UserId,
    },
    /// End every session of a user (logout everywhere).
    RevokeSessions {
        /// Whose sessions.
        target: UserId,
        /// Their current role.
        target_role: Role,
    },
    /// Change a user's role.
    SetRole {
        /// The user changed.
        target: UserId,
    },
    /// Deactivate or reactivate a user.
    SetUserActive {
        /// The user changed.
        target: UserId,
        /// Their current role.
        target_role: Role,
    },
    /// Record a KYC decision.
    ReviewKyc {
        /// The user reviewed.
        target: UserId,
        /// Their current role.
        target_role: Role,
    },
    /// Delete a user (erase personal data, close wallets).
    DeleteUser {
        /// The user deleted.
        target: UserId,
    },
    /// Admin views: dashboard, lists of users, wallets and transactions, the audit log.
    AdminRead,
    /// Add, change the default of, or (de)activate one's payment methods.
    ManagePaymentMethod {
        /// The method's owner.
        owner: UserId,
    },
    /// Read a user's payment methods.
    ReadPaymentMethods {
        /// The methods' owner.
        owner: UserId,
    },
    /// Mark a payment method verified, or block it.
    ReviewPaymentMethod,
    /// Delete a payment method.
    DeletePaymentMethod,
    /// Capture or void a hold, or cancel a pending top-up.
    Settle {
        /// Whether the actor owns a wallet the transaction touches.
        party: bool,
    },
    /// Report a payment gateway's verdict on a pending top-up (a host's gateway service
    /// account, ADMIN or above).
    GatewayCallback,
    /// Refund a transaction, debiting the wallet of `payee` (the one who received the money).
    Refund {
        /// Owner of the wallet the refund debits; `None` when it is a system account (a
        /// top-up or withdrawal refund, SUPERUSER only).
        payee: Option<UserId>,
    },
    /// Change a wallet's limits.
    SetLimits {
        /// The wallet's owner.
        owner: Option<UserId>,
        /// Whether any limit goes up.
        raise: bool,
    },
    /// Register a wallet as a merchant.
    RegisterMerchant {
        /// The wallet's owner.
        owner: Option<UserId>,
    },
    /// Create or cancel a payment link on a wallet.
    ManageLink {
        /// The wallet's owner.
        owner: Option<UserId>,
    },
    /// Read or mark read a user's notifications.
    Notifications {
        /// Whose.
        user: UserId,
    },
    /// Read the event feed (the host's delivery worker: ADMIN or above).
    ReadEvents,
}

/// Decides whether `actor` may perform `action`. Every service operation goes through here.
///
/// - A USER acts only on their own user record, wallets, transactions and payment methods.
/// - ADMIN and SUPERUSER read everything (users, wallets, history, transactions, payment
///   methods, admin views, verification), review KYC and payment methods, and (de)activate
///   users; an ADMIN may (de)activate only USERs.
/// - Only SUPERUSER changes roles, changes a wallet's status, opens wallets for other users,
///   deletes payment methods and deletes users.
/// - Nobody changes their own role, active flag or KYC status, or deletes themselves.
/// - Nobody moves money out of a wallet they do not own; nobody changes another's password.
pub fn authorize(actor: &Actor, action: Action) -> Result<()> {
    let not_self = |target: UserId| target != actor.user;
    // Whether the actor is staff above a user of `role`: a SUPERUSER over anyone, an ADMIN
    // over customers.
    let over = |role: Role| actor.is_superuser() || (actor.is_admin() && role == Role::User);
    let allowed = match action {
        Action::OpenWallet { owner } => owner == actor.user || actor.is_superuser(),
        Action::ReadWallet { owner } => actor.owns(owner) || actor.is_admin(),
        Action::ListWallets { owner } => owner == actor.user || actor.is_admin(),
        Action::SetWalletStatus => actor.is_superuser(),
        Action::MoveMoney { owner } => actor.owns(owner),
        Action::ReadTransaction { party } => party || actor.is_admin(),
        Action::Verify | Action::AdminRead | Action::ReviewPaymentMethod => actor.is_admin(),
        Action::ReadUser { target } => target == actor.user || actor.is_admin(),
        // Staff act on customers; only a SUPERUSER acts on staff.
        Action::RevokeSessions {
            target,
            target_role,
        } => target == actor.user || over(target_role),
        // Staff may correct a customer's profile; a staff member's profile (whose e-mail could
        // let its new holder take the account over) is changed by its owner or a SUPERUSER.
        Action::UpdateProfile {
            target,
            target_role,
        } => target == actor.user || over(target_role),
        Action::ChangePassword { target } => target == actor.user,
        Action::SetRole { target } | Action::DeleteUser { target } => {
            actor.is_superuser() && not_self(target)
        }
        Action::SetUserActive {
            target,
            target_role,
        }
        | Action::ReviewKyc {
            target,
            target_role,
        } => not_self(target) && over(target_role),
        Action::ManagePaymentMethod { owner } => owner == actor.user,
        Action::ReadPaymentMethods { owner } => owner == actor.user || actor.is_admin(),
        Action::DeletePaymentMethod => actor.is_superuser(),
        Action::Settle { party } => party || actor.is_admin(),
        Action::GatewayCallback | Action::ReadEvents => actor.is_admin(),
        Action::Refund { payee } => actor.owns(payee) || actor.is_superuser(),
        Action::SetLimits { owner, raise } => (actor.owns(owner) && !raise) || actor.is_admin(),
        Action::RegisterMerchant { owner } => actor.owns(owner) || actor.is_admin(),
        Action::ManageLink { owner } => actor.owns(owner),
        Action::Notifications { user } => user == actor.user,
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(n: i64) -> UserId {
        UserId::new(n).unwrap()
    }

    /// Every name [`variant`] returns.
    const ALL_VARIANTS: [&str; 28] = [
        "OpenWallet",
        "ReadWallet",
        "ListWallets",
        "SetWalletStatus",
        "MoveMoney",
        "ReadTransaction",
        "Verify",
        "ReadUser",
        "UpdateProfile",
        "ChangePassword",
        "RevokeSessions",
        "SetRole",
        "SetUserActive",
        "ReviewKyc",
        "DeleteUser",
        "AdminRead",
        "ManagePaymentMethod",
        "ReadPaymentMethods",
        "ReviewPaymentMethod",
        "DeletePaymentMethod",
        "Settle",
        "GatewayCallback",
        "Refund",
        "SetLimits",
        "RegisterMerchant",
        "ManageLink",
        "Notifications",
        "ReadEvents",
    ];

    /// The variant's name. The match has no wildcard, so a new action does not compile until
    /// it is named here, next to [`ALL_VARIANTS`] where its name belongs too; the matrix test
    /// fails while the table lacks an action of any listed name (Rust cannot enumerate enum
    /// variants, so the list itself is kept by hand).
    fn variant(action: &Action) -> &'static str {
        match action {
            Action::OpenWallet { .. } => "OpenWallet",
            Action::ReadWallet { .. } => "ReadWallet",
            Action::ListWallets { .. } => "ListWallets",
            Action::SetWalletStatus => "SetWalletStatus",
            Action::MoveMoney { .. } => "MoveMoney",
            Action::ReadTransaction { .. } => "ReadTransaction",
            Action::Verify => "Verify",
            Action::ReadUser { .. } => "ReadUser",
            Action::UpdateProfile { .. } => "UpdateProfile",
            Action::ChangePassword { .. } => "ChangePassword",
            Action::RevokeSessions { .. } => "RevokeSessions",
            Action::SetRole { .. } => "SetRole",
            Action::SetUserActive { .. } => "SetUserActive",
            Action::ReviewKyc { .. } => "ReviewKyc",
            Action::DeleteUser { .. } => "DeleteUser",
            Action::AdminRead => "AdminRead",
            Action::ManagePaymentMethod { .. } => "ManagePaymentMethod",
            Action::ReadPaymentMethods { .. } => "ReadPaymentMethods",
            Action::ReviewPaymentMethod => "ReviewPaymentMethod",
            Action::DeletePaymentMethod => "DeletePaymentMethod",
            Action::Settle { .. } => "Settle",
            Action::GatewayCallback => "GatewayCallback",
            Action::Refund { .. } => "Refund",
            Action::SetLimits { .. } => "SetLimits",
            Action::RegisterMerchant { .. } => "RegisterMerchant",
            Action::ManageLink { .. } => "ManageLink",
            Action::Notifications { .. } => "Notifications",
            Action::ReadEvents => "ReadEvents",
        }
    }

    /// Every role against every action, as owner and as stranger.
    #[test]
    fn authorization_matrix() {
        let me = uid(1);
        let other = uid(2);
        // (action, allowed for USER, ADMIN, SUPERUSER) where the actor is `me`.
        let table: &[(Action, [bool; 3])] = &[
            (Action::OpenWallet { owner: me }, [true, true, true]),
            (Action::OpenWallet { owner: other }, [false, false, true]),
            (Action::ReadWallet { owner: Some(me) }, [true, true, true]),
            (
                Action::ReadWallet { owner: Some(other) },
                [false, true, true],
            ),
            (Action::ReadWallet { owner: None }, [false, true, true]),
            (Action::ListWallets { owner: me }, [true, true, true]),
            (Action::ListWallets { owner: other }, [false, true, true]),
            (Action::SetWalletStatus, [false, false, true]),
            (Action::MoveMoney { owner: Some(me) }, [true, true, true]),
            (
                Action::MoveMoney { owner: Some(other) },
                [false, false, false],
            ),
            (Action::MoveMoney { owner: None }, [false, false, false]),
            (Action::ReadTransaction { party: true }, [true, true, true]),
            (
                Action::ReadTransaction { party: false },
                [false, true, true],
            ),
            (Action::Verify, [false, true, true]),
            (Action::AdminRead, [false, true, true]),
            (Action::ReadUser { target: me }, [true, true, true]),
            (Action::ReadUser { target: other }, [false, true, true]),
            (
                Action::UpdateProfile {
                    target: me,
                    target_role: Role::User,
                },
                [true, true, true],
            ),
            (
                Action::UpdateProfile {
                    target: other,
                    target_role: Role::User,
                },
                [false, true, true],
            ),
            (
                Action::UpdateProfile {
                    target: other,
                    target_role: Role::Admin,
                },
                [false, false, true],
            ),
            (Action::ChangePassword { target: me }, [true, true, true]),
            (
                Action::ChangePassword { target: other },
                [false, false, false],
            ),
            (
                Action::RevokeSessions {
                    target: me,
                    target_role: Role::User,
                },
                [true, true, true],
            ),
            (
                Action::RevokeSessions {
                    target: other,
                    target_role: Role::User,
                },
                [false, true, true],
            ),
            (
                Action::RevokeSessions {
                    target: other,
                    target_role: Role::Superuser,
                },
                [false, false, true],
            ),
            (Action::SetRole { target: me }, [false, false, false]),
            (Action::SetRole { target: other }, [false, false, true]),
            (
                Action::SetUserActive {
                    target: me,
                    target_role: Role::User,
                },
                [false, false, false],
            ),
            (
                Action::SetUserActive {
                    target: other,
                    target_role: Role::User,
                },
                [false, true, true],
            ),
            (
                Action::SetUserActive {
                    target: other,
                    target_role: Role::Admin,
                },
                [false, false, true],
            ),
            (
                Action::SetUserActive {
                    target: other,
                    target_role: Role::Superuser,
                },
                [false, false, true],
            ),
            (
                Action::ReviewKyc {
                    target: me,
                    target_role: Role::User,
                },
                [false, false, false],
            ),
            (
                Action::ReviewKyc {
                    target: other,
                    target_role: Role::User,
                },
                [false, true, true],
            ),
            (
                Action::ReviewKyc {
                    target: other,
                    target_role: Role::Admin,
                },
                [false, false, true],
            ),
            (Action::DeleteUser { target: me }, [false, false, false]),
            (Action::DeleteUser { target: other }, [false, false, true]),
            (
                Action::ManagePaymentMethod { owner: me },
                [true, true, true],
            ),
            (
                Action::ManagePaymentMethod { owner: other },
                [false, false, false],
            ),
            (Action::ReadPaymentMethods { owner: me }, [true, true, true]),
            (
                Action::ReadPaymentMethods { owner: other },
                [false, true, true],
            ),
            (Action::ReviewPaymentMethod, [false, true, true]),
            (Action::DeletePaymentMethod, [false, false, true]),
            (Action::Settle { party: true }, [true, true, true]),
            (Action::Settle { party: false }, [false, true, true]),
            (Action::GatewayCallback, [false, true, true]),
            (Action::ReadEvents, [false, true, true]),
            (Action::Refund { payee: Some(me) }, [true, true, true]),
            (Action::Refund { payee: Some(other) }, [false, false, true]),
            (Action::Refund { payee: None }, [false, false, true]),
            (
                Action::SetLimits {
                    owner: Some(me),
                    raise: false,
                },
                [true, true, true],
            ),
            (
                Action::SetLimits {
                    owner: Some(me),
                    raise: true,
                },
                [false, true, true],
            ),
            (
                Action::SetLimits {
                    owner: Some(other),
                    raise: false,
                },
                [false, true, true],
            ),
            (
                Action::RegisterMerchant { owner: Some(me) },
                [true, true, true],
            ),
            (
                Action::RegisterMerchant { owner: Some(other) },
                [false, true, true],
            ),
            (Action::ManageLink { owner: Some(me) }, [true, true, true]),
            (
                Action::ManageLink { owner: Some(other) },
                [false, false, false],
            ),
            (Action::Notifications { user: me }, [true, true, true]),
            (Action::Notifications { user: other }, [false, false, false]),
        ];
        let covered: std::collections::HashSet<_> = table.iter().map(|(a, _)| variant(a)).collect();
        let all: std::collections::HashSet<_> = ALL_VARIANTS.iter().copied().collect();
        assert_eq!(covered, all, "every action is in the matrix");
        for (action, expected) in table {
            for (role, allowed) in Role::ALL.iter().zip(expected) {
                let got = authorize(&Actor::new(me, *role), *action);
                assert_eq!(got.is_ok(), *allowed, "{role:?} {action:?}");
                if !allowed {
                    assert_eq!(got, Err(Error::Forbidden));
                }
            }
        }
    }
}
