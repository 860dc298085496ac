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
}

/// Decides whether `actor` may perform `action`. Every service operation goes through here.
///
/// - A USER acts only on their own wallets and transactions.
/// - ADMIN and SUPERUSER read everything (wallets, history, transactions, verification).
/// - Only SUPERUSER changes a wallet's status or opens wallets for other users.
/// - Nobody moves money out of a wallet they do not own.
pub fn authorize(actor: &Actor, action: Action) -> Result<()> {
    let allowed = match action {
        Action::OpenWallet { owner } => owner == actor.user || actor.is_superuser(),
        Action::ReadWallet { owner } => actor.owns(owner) || actor.is_admin(),
        Action::ListWallets { owner } => owner == actor.user || actor.is_admin(),
        Action::SetWalletStatus => actor.is_superuser(),
        Action::MoveMoney { owner } => actor.owns(owner),
        Action::ReadTransaction { party } => party || actor.is_admin(),
        Action::Verify => actor.is_admin(),
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
        ];
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
