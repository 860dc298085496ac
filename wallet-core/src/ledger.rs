//! The service facade hosts call: authenticate upstream, then call these with an [`Actor`].

use std::sync::Arc;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::actor::{Action, Actor, authorize};
use crate::command::{Command, Flow, Move, Op, OpenWallet, SetWalletStatus};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::health::Health;
use crate::history::{HistoryPage, HistoryQuery};
use crate::ids::{TransactionRef, UserId, WalletRef};
use crate::observe::observed;
use crate::store::{Outcome, Store};
use crate::text::{Description, IdempotencyKey, Metadata};
use crate::time::{Clock, SystemClock};
use crate::transaction::{Receipt, Transaction};
use crate::verify::VerifyReport;
use crate::wallet::{AccountKind, Wallet, WalletKind, WalletState, WalletStatus};

/// Open a wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenWalletRequest {
    /// Its owner.
    pub owner: UserId,
    /// Its kind.
    pub kind: WalletKind,
    /// Currency code (ISO 4217 or a registered custom asset), case-insensitive.
    pub currency: String,
}

impl OpenWalletRequest {
    /// A wallet of `kind` in `currency` for `owner`.
    pub fn new(owner: UserId, kind: WalletKind, currency: impl Into<String>) -> Self {
        OpenWalletRequest {
            owner,
            kind,
            currency: currency.into(),
        }
    }
}

/// Fields common to every money movement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveDetails {
    /// Amount in whole units of the wallet's currency, e.g. `12.34`.
    pub amount: Decimal,
    /// Up to 500 characters, no control characters.
    pub description: Option<String>,
    /// A JSON object of up to 4 KiB.
    pub metadata: Option<Value>,
    /// Makes the call safe to retry: the same key with the same parameters returns the first
    /// result; with other parameters it is [`Error::IdempotencyConflict`].
    pub idempotency_key: String,
}

macro_rules! move_request {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident),+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: WalletRef,)+
            /// Amount, description, metadata and idempotency key.
            pub details: MoveDetails,
        }

        impl $name {
            /// A request without description or metadata.
            pub fn new(
                $($field: impl Into<WalletRef>,)+
                amount: Decimal,
                idempotency_key: impl Into<String>,
            ) -> Self {
                $name {
                    $($field: $field.into(),)+
                    details: MoveDetails {
                        amount,
                        description: None,
                        metadata: None,
                        idempotency_key: idempotency_key.into(),
                    },
                }
            }

            /// Adds a description.
            pub fn description(mut self, text: impl Into<String>) -> Self {
                self.details.description = Some(text.into());
                self
            }

            /// Adds metadata (a JSON object).
            pub fn metadata(mut self, value: Value) -> Self {
                self.details.metadata = Some(value);
                self
            }
        }
    };
}

move_request!(
    /// Add money to a wallet from outside (a top-up).
    DepositRequest {
        /// The wallet credited.
        wallet
    }
);
move_request!(
    /// Take money out of a wallet to outside.
    WithdrawRequest {
        /// The wallet debited.
        wallet
    }
);
move_request!(
    /// Move money between two wallets of the same currency.
    TransferRequest {
        /// The wallet debited (the caller's).
        from,
        /// The wallet credited (anyone's, addressed by id or number).
        to
    }
);

/// The ledger service: every operation a host exposes, authorized and validated.
///
/// Cheap to clone; share one per store.
pub struct Ledger<S> {
    pub(crate) store: S,
    pub(crate) config: Arc<Config>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) auth: Arc<crate::users::AuthState>,
}

impl<S> std::fmt::Debug for Ledger<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: Clone> Clone for Ledger<S> {
    fn clone(&self) -> Self {
        Ledger {
            store: self.store.clone(),
            config: Arc::clone(&self.config),
            clock: Arc::clone(&self.clock),
            auth: Arc::clone(&self.auth),
        }
    }
}

impl<S: Store> Ledger<S> {
    /// A ledger over `store` with the system clock. Fails if the store recorded a currency
    /// the configuration does not know, or with another exponent.
    pub async fn new(store: S, config: Config) -> Result<Self> {
        Self::with_clock(store, config, SystemClock).await
    }

    /// A ledger with an injected clock (tests, simulations).
    pub async fn with_clock(store: S, config: Config, clock: impl Clock) -> Result<Self> {
        for (code, stored) in store.currencies().await? {
            let configured =
                config
                    .currencies()
                    .resolve(code)
                    .ok_or_else(|| Error::UnknownCurrency {
                        code: code.to_string(),
                    })?;
            if configured.exponent() != stored {
                return Err(Error::CurrencyExponentMismatch {
                    code,
                    stored,
                    configured: configured.exponent(),
                });
            }
        }
        Ok(Ledger {
            store,
            config: Arc::new(config),
            clock: Arc::new(clock),
            auth: Arc::new(crate::users::AuthState::new(
                crate::users::AuthConfig::default(),
                None,
            )?),
        })
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store's health, for a host's health endpoint: reachable, schema version,
    /// backend state, time of the last commit (see [`crate::health`]).
    ///
    /// Takes no [`Actor`]: health endpoints are called by load balancers and orchestrators
    /// that hold no session, and the answer holds no business data (no ids, balances or
    /// personal data), only the store's own state. A host that considers queue depths or
    /// pool sizes sensitive puts the endpoint behind its own access rule.
    pub async fn health(&self) -> Health {
        self.store.health().await
    }

    pub(crate) async fn execute(&self, actor: Option<&Actor>, op: Op) -> Result<Outcome> {
        let command = Command::new(
            actor.copied(),
            self.clock.now(),
            Arc::clone(&self.config),
            op,
        );
        self.store.execute(command).await
    }

    async fn execute_wallet(&self, actor: &Actor, op: Op) -> Result<Wallet> {
        match self.execute(Some(actor), op).await? {
            Outcome::Wallet(w) => Ok(w.to_wallet()),
            _ => Err(Error::internal("expected a wallet outcome")),
        }
    }

    async fn execute_move(&self, actor: &Actor, flow: Flow, d: MoveDetails) -> Result<Receipt> {
        self.execute_timed(actor, flow, d, crate::command::Timing::Now)
            .await
    }

    /// Validates a movement's details into a command operation.
    pub(crate) fn move_op(
        flow: Flow,
        d: MoveDetails,
        timing: crate::command::Timing,
    ) -> Result<Op> {
        Ok(Op::Move(Move {
            flow,
            amount: d.amount,
            description: Description::optional(d.description)?,
            metadata: d.metadata.map(Metadata::new).transpose()?,
            idempotency_key: IdempotencyKey::new(d.idempotency_key)?,
            timing,
        }))
    }

    pub(crate) async fn execute_timed(
        &self,
        actor: &Actor,
        flow: Flow,
        d: MoveDetails,
        timing: crate::command::Timing,
    ) -> Result<Receipt> {
        let op = Self::move_op(flow, d, timing)?;
        self.execute_receipt(actor, op).await
    }

    /// Runs a command that answers with a receipt, redacted for the actor.
    pub(crate) async fn execute_receipt(&self, actor: &Actor, op: Op) -> Result<Receipt> {
        match self.execute(Some(actor), op).await? {
            Outcome::Receipt(r) => Ok(r.redacted_for(actor)),
            _ => Err(Error::internal("expected a receipt outcome")),
        }
    }

    /// Opens a wallet (ACTIVE, empty). One per owner, kind and currency.
    pub async fn open_wallet(&self, actor: &Actor, req: OpenWalletRequest) -> Result<Wallet> {
        observed!("open_wallet", (actor = %actor.user, owner = %req.owner, kind = ?req.kind) => {
            let currency = self.config.currencies().get(&req.currency)?;
            let op = Op::OpenWallet(OpenWallet {
                owner: req.owner,
                kind: req.kind,
                currency,
            });
            self.execute_wallet(actor, op).await
        })
    }

    /// Loads a customer wallet the actor may read.
    pub(crate) async fn readable_wallet(
        &self,
        actor: &Actor,
        wallet: WalletRef,
    ) -> Result<WalletState> {
        let state = self
            .store
            .wallet(wallet.id())
            .await?
            .filter(|w| matches!(w.record.kind, AccountKind::Wallet(_)))
            .ok_or(Error::WalletNotFound)?;
        authorize(
            actor,
            Action::ReadWallet {
                owner: state.record.owner,
            },
        )?;
        Ok(state)
    }

    /// A wallet by id or number, with its balances.
    pub async fn wallet(&self, actor: &Actor, wallet: impl Into<WalletRef>) -> Result<Wallet> {
        let wallet = wallet.into();
        observed!("wallet", (actor = %actor.user, wallet = %wallet.id()) => {
            Ok(self.readable_wallet(actor, wallet).await?.to_wallet())
        })
    }

    /// All wallets of `owner`, ordered by id.
    pub async fn wallets_of(&self, actor: &Actor, owner: UserId) -> Result<Vec<Wallet>> {
        observed!("wallets_of", (actor = %actor.user, %owner) => {
            authorize(actor, Action::ListWallets { owner })?;
            let wallets = self.store.wallets_of(owner).await?;
            Ok(wallets.iter().map(WalletState::to_wallet).collect())
        })
    }

    /// Changes a wallet's status (SUPERUSER). Closing requires an empty wallet; CLOSED is final.
    pub async fn set_wallet_status(
        &self,
        actor: &Actor,
        wallet: impl Into<WalletRef>,
        status: WalletStatus,
    ) -> Result<Wallet> {
        let wallet = wallet.into().id();
        observed!("set_wallet_status", (actor = %actor.user, %wallet, %status) => {
            self.execute_wallet(
                actor,
                Op::SetWalletStatus(SetWalletStatus { wallet, status }),
            )
            .await
        })
    }

    /// Adds money to the actor's wallet from outside.
    pub async fn deposit(&self, actor: &Actor, req: DepositRequest) -> Result<Receipt> {
        let wallet = req.wallet.id();
        let amount = req.details.amount;
        observed!("deposit", (actor = %actor.user, %wallet, %amount) => {
            self.execute_move(actor, Flow::Deposit { wallet }, req.details).await
        })
    }

    /// Takes money out of the actor's wallet.
    pub async fn withdraw(&self, actor: &Actor, req: WithdrawRequest) -> Result<Receipt> {
        let wallet = req.wallet.id();
        let amount = req.details.amount;
        observed!("withdraw", (actor = %actor.user, %wallet, %amount) => {
            self.execute_move(actor, Flow::Withdraw { wallet }, req.details).await
        })
    }

    /// Moves money from the actor's wallet to another wallet of the same currency.
    pub async fn transfer(&self, actor: &Actor, req: TransferRequest) -> Result<Receipt> {
        let (from, to) = (req.from.id(), req.to.id());
        let amount = req.details.amount;
        observed!("transfer", (actor = %actor.user, %from, %to, %amount) => {
            self.execute_move(actor, Flow::Transfer { from, to }, req.details).await
        })
    }

    /// A transaction by reference, if the actor took part in it (or is an admin). Balances of
    /// other people's wallets are hidden.
    pub async fn transaction(
        &self,
        actor: &Actor,
        reference: TransactionRef,
    ) -> Result<Transaction> {
        observed!("transaction", (actor = %actor.user, transaction = %reference) => {
            let txn = self
                .store
                .transaction(reference.id())
                .await?
                .ok_or(Error::TransactionNotFound)?;
            authorize(
                actor,
                Action::ReadTransaction {
                    party: txn.involves(actor.user),
                },
            )?;
            Ok(txn.redacted_for(actor))
        })
    }

    /// One page of a wallet's history, newest first, with totals over the filtered range.
    pub async fn history(&self, actor: &Actor, query: HistoryQuery) -> Result<HistoryPage> {
        observed!("history", (actor = %actor.user, wallet = %query.wallet.id()) => {
            let filter = query.to_filter()?;
            self.readable_wallet(actor, query.wallet).await?;
            self.store.history(filter).await
        })
    }

    /// Recomputes every balance from the entries and checks every transaction (ADMIN+).
    pub async fn verify(&self, actor: &Actor) -> Result<VerifyReport> {
        observed!("verify", (actor = %actor.user) => {
            authorize(actor, Action::Verify)?;
            self.store.verify().await
        })
    }
}
