//! Write commands, as the service hands them to a store.
//!
//! A command is validated input: every string in it already passed its checks. What cannot be
//! checked without the store's state (amounts against the wallet's currency, statuses, funds)
//! is checked by [`crate::decide::decide`].

use std::sync::Arc;

use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use crate::actor::Actor;
use crate::config::Config;
use crate::currency::{Currency, CurrencyCode};
use crate::ids::{UserId, WalletId};
use crate::text::{Description, IdempotencyKey, Metadata};
use crate::time::Timestamp;
use crate::wallet::{SystemAccount, WalletKind, WalletStatus};

/// One write command: who, when, under which rules, and what.
#[derive(Debug, Clone)]
pub struct Command {
    /// Who is acting.
    pub actor: Actor,
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
}

impl Command {
    /// What the store must load to decide this command.
    pub fn needs(&self) -> Needs {
        match &self.op {
            Op::OpenWallet(o) => Needs {
                slot: Some((o.owner, o.kind, o.currency.code())),
                currency: Some(o.currency.code()),
                ..Needs::default()
            },
            Op::SetWalletStatus(s) => Needs {
                wallets: vec![s.wallet],
                ..Needs::default()
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
                    idempotency: Some((self.actor.user, m.idempotency_key.clone())),
                    ..Needs::default()
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
