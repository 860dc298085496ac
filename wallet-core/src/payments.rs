//! The money half of the service beyond plain movements: pending top-ups and gateway
//! callbacks, holds, refunds, merchants, exchange, batches, limits, payment links,
//! notifications, the event feed, statements and reports.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::actor::{Action, Actor, authorize};
use crate::calendar::Granularity;
use crate::command::{
    CreateLink, Flow, GatewayCallback, MarkRead, Op, Refund, RegisterMerchant, SetLimits, Settle,
    SettleAction, Timing,
};
use crate::decide::{LinkRecord, MerchantRecord};
use crate::error::{Error, Result};
use crate::fees::Rounding;
use crate::history::{HISTORY_PAGE_MAX, HistoryCursor, HistoryPage};
use crate::ids::{MerchantId, NotificationId, TransactionRef, UserId, WalletRef};
use crate::ledger::{DepositRequest, Ledger, MoveDetails, TransferRequest, WithdrawRequest};
use crate::limits::WalletLimits;
use crate::links::{LinkCode, PaymentLink};
use crate::money::Money;
use crate::notify::{EVENTS_PAGE_MAX, Event, Notification};
use crate::observe::observed;
use crate::reports::{
    ANALYTICS_ENTRIES_MAX, STATEMENT_LINES_MAX, SearchText, SpendingBucket, Statement,
};
use crate::store::{Outcome, Store};
use crate::text::{Description, ExternalRef, IdempotencyKey};
use crate::time::Timestamp;
use crate::transaction::Receipt;

/// Where a hold's money goes when it is captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldTarget {
    /// Out of the ledger (a withdrawal).
    Outside,
    /// Another wallet of the same currency.
    Wallet(WalletRef),
    /// A merchant, for an order.
    Merchant {
        /// The merchant.
        merchant: MerchantId,
        /// The merchant's order id.
        order: String,
    },
}

/// Reserve money in a wallet now, to capture or void later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    /// The wallet whose money is held.
    pub wallet: WalletRef,
    /// Where the money goes when captured.
    pub target: HoldTarget,
    /// Amount, description, metadata and idempotency key.
    pub details: MoveDetails,
    /// How long the hold lasts, in microseconds (`None`: the configured default).
    pub ttl_micros: Option<i64>,
}

/// Pay a merchant for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    /// The wallet debited.
    pub from: WalletRef,
    /// The merchant.
    pub merchant: MerchantId,
    /// The merchant's order id (1 to 128 visible ASCII characters; paid at most once).
    pub order: String,
    /// Amount, description, metadata and idempotency key.
    pub details: MoveDetails,
}

/// Convert money between two wallets of one owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeRequest {
    /// The wallet debited, in its currency.
    pub from: WalletRef,
    /// The wallet credited, in its currency.
    pub to: WalletRef,
    /// Units of `to`'s currency per unit of `from`'s.
    pub rate: Decimal,
    /// How the converted amount is rounded.
    pub rounding: Rounding,
    /// Amount (in `from`'s currency), description, metadata and idempotency key.
    pub details: MoveDetails,
}

/// Return money from a completed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The transaction refunded.
    pub transaction: TransactionRef,
    /// How much (`None`: all that is left).
    pub amount: Option<Decimal>,
    /// Why.
    pub description: Option<String>,
    /// Makes the call safe to retry.
    pub idempotency_key: String,
}

/// One operation of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// A top-up.
    Deposit(DepositRequest),
    /// A withdrawal.
    Withdraw(WithdrawRequest),
    /// A transfer.
    Transfer(TransferRequest),
    /// A merchant payment.
    Payment(PaymentRequest),
    /// An exchange.
    Exchange(ExchangeRequest),
    /// A capture of a hold (`None`: all of it).
    Capture(TransactionRef, Option<Decimal>),
    /// A void of a hold or cancellation of a pending top-up.
    Cancel(TransactionRef),
    /// A refund.
    Refund(RefundRequest),
}

/// Create a payment link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRequest {
    /// The wallet paid.
    pub wallet: WalletRef,
    /// The amount asked.
    pub amount: Decimal,
    /// What it is for.
    pub description: Option<String>,
    /// How long it stays payable, in microseconds (at most 90 days).
    pub ttl_micros: i64,
    /// Makes the call safe to retry.
    pub idempotency_key: String,
}

/// A page of notifications, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationPage {
    /// The notifications.
    pub items: Vec<Notification>,
    /// Pass as `before` for the next page; `None` on the last.
    pub next: Option<NotificationId>,
}

fn page_limit(limit: u32, max: u32) -> Result<u32> {
    if limit == 0 || limit > max {
        return Err(Error::InvalidQuery {
            reason: "page size out of range",
        });
    }
    Ok(limit)
}

fn order(text: String) -> Result<ExternalRef> {
    ExternalRef::new(text)
}

impl<S: Store> Ledger<S> {
    fn batch_op(op: BatchOp) -> Result<Op> {
        Ok(match op {
            BatchOp::Deposit(r) => Self::move_op(
                Flow::Deposit {
                    wallet: r.wallet.id(),
                },
                r.details,
                Timing::Now,
            )?,
            BatchOp::Withdraw(r) => Self::move_op(
                Flow::Withdraw {
                    wallet: r.wallet.id(),
                },
                r.details,
                Timing::Now,
            )?,
            BatchOp::Transfer(r) => Self::move_op(
                Flow::Transfer {
                    from: r.from.id(),
                    to: r.to.id(),
                },
                r.details,
                Timing::Now,
            )?,
            BatchOp::Payment(r) => Self::move_op(
                Flow::Payment {
                    from: r.from.id(),
                    merchant: r.merchant,
                    order: order(r.order)?,
                },
                r.details,
                Timing::Now,
            )?,
            BatchOp::Exchange(r) => Self::move_op(
                Flow::Exchange {
                    from: r.from.id(),
                    to: r.to.id(),
                    rate: r.rate,
                    rounding: r.rounding,
                },
                r.details,
                Timing::Now,
            )?,
            BatchOp::Capture(t, amount) => Op::Settle(Settle {
                transaction: t.id(),
                action: SettleAction::Capture { amount },
            }),
            BatchOp::Cancel(t) => Op::Settle(Settle {
                transaction: t.id(),
                action: SettleAction::Cancel,
            }),
            BatchOp::Refund(r) => Self::refund_op(r)?,
        })
    }

    fn refund_op(r: RefundRequest) -> Result<Op> {
        Ok(Op::Refund(Refund {
            original: r.transaction.id(),
            amount: r.amount,
            description: Description::optional(r.description)?,
            idempotency_key: IdempotencyKey::new(r.idempotency_key)?,
        }))
    }

    /// Starts a top-up that stays PENDING until the payment gateway's callback (see
    /// [`Ledger::gateway_callback`]) or its timeout.
    ///
    /// The gateway reference must come from the host's own exchange with its gateway, never
    /// from the customer: the callback credits whichever wallet claimed the reference first.
    /// Only staff (the gateway's account) complete, fail or cancel a pending top-up.
    pub async fn top_up_pending(
        &self,
        actor: &Actor,
        req: DepositRequest,
        gateway_reference: &str,
    ) -> Result<Receipt> {
        let wallet = req.wallet.id();
        let amount = req.details.amount;
        observed!("top_up_pending", (actor = %actor.user, %wallet, %amount) => {
            let reference = ExternalRef::new(gateway_reference)?;
            self.execute_timed(
                actor,
                Flow::Deposit { wallet },
                req.details,
                Timing::AwaitGateway { reference },
            )
            .await
        })
    }

    /// The gateway's verdict on a pending top-up: `true` credits the wallet, `false` fails it.
    /// Repeating the same verdict returns the same transaction. ADMIN+ (a gateway service
    /// account).
    pub async fn gateway_callback(
        &self,
        actor: &Actor,
        gateway_reference: &str,
        success: bool,
    ) -> Result<Receipt> {
        observed!("gateway_callback", (actor = %actor.user, success) => {
            let reference = ExternalRef::new(gateway_reference)
                .map_err(|_| Error::GatewayReferenceNotFound)?;
            self.execute_receipt(actor, Op::Gateway(GatewayCallback { reference, success }))
                .await
        })
    }

    /// Reserves money now (a PENDING hold): available falls, the balance does not.
    pub async fn hold(&self, actor: &Actor, req: HoldRequest) -> Result<Receipt> {
        let wallet = req.wallet.id();
        let amount = req.details.amount;
        observed!("hold", (actor = %actor.user, %wallet, %amount) => {
            let flow = match req.target {
                HoldTarget::Outside => Flow::Withdraw { wallet },
                HoldTarget::Wallet(to) => Flow::Transfer {
                    from: wallet,
                    to: to.id(),
                },
                HoldTarget::Merchant { merchant, order: o } => Flow::Payment {
                    from: wallet,
                    merchant,
                    order: order(o)?,
                },
            };
            self.execute_timed(
                actor,
                flow,
                req.details,
                Timing::Hold {
                    ttl_micros: req.ttl_micros,
                },
            )
            .await
        })
    }

    /// Captures a hold: all of it (`None`) or part; the rest is released. Either party may
    /// capture (the payer, or the payee such as a merchant), and staff.
    pub async fn capture(
        &self,
        actor: &Actor,
        transaction: TransactionRef,
        amount: Option<Decimal>,
    ) -> Result<Receipt> {
        observed!("capture", (actor = %actor.user, %transaction, amount = ?amount) => {
            self.execute_receipt(
                actor,
                Op::Settle(Settle {
                    transaction: transaction.id(),
                    action: SettleAction::Capture { amount },
                }),
            )
            .await
        })
    }

    /// Voids a hold or cancels a pending top-up (the money held is released).
    pub async fn cancel(&self, actor: &Actor, transaction: TransactionRef) -> Result<Receipt> {
        observed!("cancel", (actor = %actor.user, %transaction) => {
            self.execute_receipt(
                actor,
                Op::Settle(Settle {
                    transaction: transaction.id(),
                    action: SettleAction::Cancel,
                }),
            )
            .await
        })
    }

    /// Refunds a completed transaction, wholly or partly, reversing its legs. The recipient
    /// may refund what they received (a transfer or payment); SUPERUSER may refund anything.
    pub async fn refund(&self, actor: &Actor, req: RefundRequest) -> Result<Receipt> {
        let (transaction, amount) = (req.transaction, req.amount);
        observed!("refund", (actor = %actor.user, %transaction, amount = ?amount) => {
            self.execute_receipt(actor, Self::refund_op(req)?).await
        })
    }

    /// Pays a merchant for an order (each order is paid at most once).
    pub async fn pay_merchant(&self, actor: &Actor, req: PaymentRequest) -> Result<Receipt> {
        let (wallet, merchant, amount) = (req.from.id(), req.merchant, req.details.amount);
        observed!("pay_merchant", (actor = %actor.user, %wallet, %merchant, %amount) => {
            let op = Self::batch_op(BatchOp::Payment(req))?;
            self.execute_receipt(actor, op).await
        })
    }

    /// Converts money between two wallets of the actor in different currencies.
    pub async fn exchange(&self, actor: &Actor, req: ExchangeRequest) -> Result<Receipt> {
        let (from, to, amount, rate) = (req.from.id(), req.to.id(), req.details.amount, req.rate);
        observed!("exchange", (actor = %actor.user, %from, %to, %amount, %rate) => {
            let op = Self::batch_op(BatchOp::Exchange(req))?;
            self.execute_receipt(actor, op).await
        })
    }

    /// Applies up to 100 operations atomically: all of them, or none.
    pub async fn batch(&self, actor: &Actor, ops: Vec<BatchOp>) -> Result<Vec<Receipt>> {
        observed!("batch", (actor = %actor.user, ops = ops.len()) => {
            let ops = ops
                .into_iter()
                .map(Self::batch_op)
                .collect::<Result<Vec<_>>>()?;
            crate::decide::check_batch(&ops)?;
            match self.execute(Some(actor), Op::Batch(ops)).await? {
                Outcome::Batch(outcomes) => outcomes
                    .into_iter()
                    .map(|o| match o {
                        Outcome::Receipt(r) => Ok(r.redacted_for(actor)),
                        _ => Err(Error::internal("expected receipts from a batch")),
                    })
                    .collect(),
                _ => Err(Error::internal("expected a batch outcome")),
            }
        })
    }

    /// Registers a BUSINESS wallet as a merchant (its owner or ADMIN+).
    pub async fn register_merchant(
        &self,
        actor: &Actor,
        wallet: impl Into<WalletRef>,
        name: &str,
    ) -> Result<MerchantRecord> {
        let wallet = wallet.into().id();
        observed!("register_merchant", (actor = %actor.user, %wallet) => {
            let op = Op::RegisterMerchant(RegisterMerchant {
                wallet,
                name: Description::new(name)?,
            });
            match self.execute(Some(actor), op).await? {
                Outcome::Merchant(m) => Ok(m),
                _ => Err(Error::internal("expected a merchant")),
            }
        })
    }

    /// A merchant by id (any signed-in user: payers need it).
    pub async fn merchant(&self, actor: &Actor, id: MerchantId) -> Result<MerchantRecord> {
        observed!("merchant", (actor = %actor.user, merchant = %id) => {
            self.store.merchant(id).await?.ok_or(Error::MerchantNotFound)
        })
    }

    /// A wallet's limits and what has been spent under them (holds included).
    pub async fn limits(
        &self,
        actor: &Actor,
        wallet: impl Into<WalletRef>,
    ) -> Result<WalletLimits> {
        let wallet = wallet.into();
        observed!("limits", (actor = %actor.user, wallet = %wallet.id()) => {
            self.wallet_limits(actor, wallet).await
        })
    }

    async fn wallet_limits(&self, actor: &Actor, wallet: WalletRef) -> Result<WalletLimits> {
        let w = self.readable_wallet(actor, wallet).await?;
        let limits = self
            .store
            .limits(w.record.id)
            .await?
            .unwrap_or_else(|| self.config.default_limits().for_currency(w.record.currency));
        let now = self.clock.now();
        let zone = self.config.time_zone();
        let spend = self
            .store
            .spent(
                w.record.id,
                zone.period_start(now, Granularity::Day)?,
                zone.period_start(now, Granularity::Month)?,
            )
            .await?;
        let c = w.record.currency;
        let held = w.record.held_minor;
        Ok(WalletLimits {
            per_transaction: Money::from_minor(limits.per_transaction, c),
            daily: Money::from_minor(limits.daily, c),
            monthly: Money::from_minor(limits.monthly, c),
            spent_today: Money::from_minor(spend.today.saturating_add(held), c),
            spent_this_month: Money::from_minor(spend.month.saturating_add(held), c),
        })
    }

    /// Sets a wallet's limits (`None`: back to the defaults). The owner may lower them;
    /// raising needs ADMIN+.
    pub async fn set_limits(
        &self,
        actor: &Actor,
        wallet: impl Into<WalletRef>,
        limits: Option<(Decimal, Decimal, Decimal)>,
    ) -> Result<WalletLimits> {
        let wallet = wallet.into();
        observed!("set_limits", (actor = %actor.user, wallet = %wallet.id()) => {
            self.execute(
                Some(actor),
                Op::SetLimits(SetLimits {
                    wallet: wallet.id(),
                    limits,
                }),
            )
            .await?;
            self.wallet_limits(actor, wallet).await
        })
    }

    /// Creates a payment link on one of the actor's wallets, with an unguessable code.
    pub async fn create_link(&self, actor: &Actor, req: LinkRequest) -> Result<PaymentLink> {
        let (wallet, amount) = (req.wallet.id(), req.amount);
        observed!("create_link", (actor = %actor.user, %wallet, %amount) => {
            let op = Op::CreateLink(CreateLink {
                wallet,
                code: LinkCode::random()?,
                amount: req.amount,
                description: Description::optional(req.description)?,
                ttl_micros: req.ttl_micros,
                idempotency_key: IdempotencyKey::new(req.idempotency_key)?,
            });
            match self.execute(Some(actor), op).await? {
                Outcome::Link(l) => Ok(l),
                _ => Err(Error::internal("expected a link")),
            }
        })
    }

    fn link_view(&self, l: &LinkRecord) -> PaymentLink {
        let mut view = l.to_link();
        view.status = l.status_at(self.clock.now());
        view
    }

    /// A payment link by code, with its status now (any signed-in user: the payer needs it).
    pub async fn link(&self, actor: &Actor, code: &str) -> Result<PaymentLink> {
        // The code is a bearer secret (whoever has it may pay): never in a span.
        observed!("link", (actor = %actor.user) => {
            let code: LinkCode = code.parse()?;
            let l = self.store.link(code).await?.ok_or(Error::LinkNotFound)?;
            Ok(self.link_view(&l))
        })
    }

    /// The payment links of a wallet, newest first.
    pub async fn links_of(
        &self,
        actor: &Actor,
        wallet: impl Into<WalletRef>,
        limit: u32,
    ) -> Result<Vec<PaymentLink>> {
        let wallet = wallet.into();
        observed!("links_of", (actor = %actor.user, wallet = %wallet.id()) => {
            let w = self.readable_wallet(actor, wallet).await?;
            let limit = page_limit(limit, HISTORY_PAGE_MAX)?;
            let links = self.store.links_of(w.record.id, i64::MAX, limit).await?;
            Ok(links.iter().map(|l| self.link_view(l)).collect())
        })
    }

    /// Pays a payment link from one of the actor's wallets: exactly once, whoever races.
    pub async fn pay_link(
        &self,
        actor: &Actor,
        from: impl Into<WalletRef>,
        code: &str,
        idempotency_key: &str,
    ) -> Result<Receipt> {
        let from = from.into().id();
        observed!("pay_link", (actor = %actor.user, wallet = %from) => {
            let code: LinkCode = code.parse()?;
            let link = self.store.link(code).await?.ok_or(Error::LinkNotFound)?;
            let details = MoveDetails {
                amount: Money::from_minor(link.amount_minor, link.currency).amount(),
                description: link.description.as_ref().map(|d| d.as_str().to_owned()),
                metadata: None,
                idempotency_key: idempotency_key.to_owned(),
            };
            self.execute_timed(actor, Flow::LinkPayment { from, code }, details, Timing::Now)
                .await
        })
    }

    /// Cancels an unpaid payment link (its owner).
    pub async fn cancel_link(&self, actor: &Actor, code: &str) -> Result<PaymentLink> {
        observed!("cancel_link", (actor = %actor.user) => {
            let code: LinkCode = code.parse()?;
            match self.execute(Some(actor), Op::CancelLink(code)).await? {
                Outcome::Link(l) => Ok(l),
                _ => Err(Error::internal("expected a link")),
            }
        })
    }

    /// A user's notifications, newest first (`before`: the previous page's `next`).
    pub async fn notifications(
        &self,
        actor: &Actor,
        user: UserId,
        unread_only: bool,
        before: Option<NotificationId>,
        limit: u32,
    ) -> Result<NotificationPage> {
        observed!("notifications", (actor = %actor.user, %user, unread_only) => {
            authorize(actor, Action::Notifications { user })?;
            let limit = page_limit(limit, HISTORY_PAGE_MAX)?;
            let before = before.map_or(i64::MAX, NotificationId::get);
            let mut items = self
                .store
                .notifications(user, unread_only, before, limit + 1)
                .await?;
            let more = items.len() > usize::try_from(limit).unwrap_or(usize::MAX);
            items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            let next = if more {
                items.last().map(|n| n.id)
            } else {
                None
            };
            Ok(NotificationPage { items, next })
        })
    }

    /// How many unread notifications a user has.
    pub async fn unread_count(&self, actor: &Actor, user: UserId) -> Result<u64> {
        observed!("unread_count", (actor = %actor.user, %user) => {
            authorize(actor, Action::Notifications { user })?;
            self.store.unread_count(user).await
        })
    }

    /// Marks notifications read (`None`: all of them); returns how many changed.
    pub async fn mark_read(
        &self,
        actor: &Actor,
        user: UserId,
        ids: Option<Vec<NotificationId>>,
    ) -> Result<u64> {
        observed!("mark_read", (actor = %actor.user, %user) => {
            match self
                .execute(Some(actor), Op::MarkRead(MarkRead { user, ids }))
                .await?
            {
                Outcome::Count(n) => Ok(n),
                _ => Err(Error::internal("expected a count")),
            }
        })
    }

    /// The event feed after `after` (0 for the beginning), oldest first, for a host's
    /// delivery worker (ADMIN+). Deliver, then remember the last id: at least once.
    pub async fn events(&self, actor: &Actor, after: i64, limit: u32) -> Result<Vec<Event>> {
        observed!("events", (actor = %actor.user, after, limit) => {
            authorize(actor, Action::ReadEvents)?;
            let limit = page_limit(limit, EVENTS_PAGE_MAX)?;
            self.store.events(after.max(0), limit).await
        })
    }

    /// Fails pending top-ups and expires holds past their time (at most `max`, up to 1,000),
    /// returning how many. Hosts call this periodically (ADMIN+); lapsed holds of a wallet are
    /// also released whenever money next leaves it.
    pub async fn expire_due(&self, actor: &Actor, max: u32) -> Result<u64> {
        observed!("expire_due", (actor = %actor.user, max) => {
            match self.execute(Some(actor), Op::ExpireDue(max)).await? {
                Outcome::Count(n) => Ok(n),
                _ => Err(Error::internal("expected a count")),
            }
        })
    }

    fn check_range(since: Timestamp, until: Timestamp) -> Result<()> {
        if since >= until {
            return Err(Error::InvalidQuery {
                reason: "the date range is empty",
            });
        }
        Ok(())
    }

    /// A statement of a wallet for `[since, until)`: opening balance, every line with its
    /// running balance, closing balance. At most 10,000 lines.
    pub async fn statement(
        &self,
        actor: &Actor,
        wallet: impl Into<WalletRef>,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<Statement> {
        let wallet = wallet.into();
        observed!("statement", (actor = %actor.user, wallet = %wallet.id()) => {
            Self::check_range(since, until)?;
            let w = self.readable_wallet(actor, wallet).await?;
            let range = self
                .store
                .entries_between(w.record.id, since, until, STATEMENT_LINES_MAX)
                .await?;
            Statement::from_range(
                crate::ids::WalletNumber::of(w.record.id),
                since,
                until,
                w.record.currency,
                range,
            )
        })
    }

    /// Lines of a wallet whose description contains `text` (case-insensitive), newest first.
    pub async fn search(
        &self,
        actor: &Actor,
        wallet: impl Into<WalletRef>,
        text: &str,
        after: Option<HistoryCursor>,
        limit: u32,
    ) -> Result<HistoryPage> {
        let wallet = wallet.into();
        // The search text is the caller's own words: not in the span.
        observed!("search", (actor = %actor.user, wallet = %wallet.id()) => {
            let needle = SearchText::new(text)?;
            let limit = page_limit(limit, HISTORY_PAGE_MAX)?;
            let w = self.readable_wallet(actor, wallet).await?;
            if after.is_some_and(|c| c.wallet() != w.record.id) {
                return Err(Error::InvalidCursor);
            }
            self.store
                .search(w.record.id, needle, after.map(|c| c.seq()), limit)
                .await
        })
    }

    /// Totals per kind per day or month of a wallet over `[since, until)`, in the configured
    /// time zone.
    pub async fn analytics(
        &self,
        actor: &Actor,
        wallet: impl Into<WalletRef>,
        since: Timestamp,
        until: Timestamp,
        granularity: Granularity,
    ) -> Result<Vec<SpendingBucket>> {
        let wallet = wallet.into();
        observed!("analytics", (actor = %actor.user, wallet = %wallet.id()) => {
            Self::check_range(since, until)?;
            let w = self.readable_wallet(actor, wallet).await?;
            let range = self
                .store
                .entries_between(w.record.id, since, until, ANALYTICS_ENTRIES_MAX)
                .await?;
            crate::reports::analytics(
                &range,
                self.config.time_zone(),
                granularity,
                w.record.currency,
            )
        })
    }

    /// A wallet's balance at a point in time (after every entry posted before `at`).
    pub async fn balance_at(
        &self,
        actor: &Actor,
        wallet: impl Into<WalletRef>,
        at: Timestamp,
    ) -> Result<Money> {
        let wallet = wallet.into();
        observed!("balance_at", (actor = %actor.user, wallet = %wallet.id()) => {
            let w = self.readable_wallet(actor, wallet).await?;
            let range = self
                .store
                .entries_between(w.record.id, at, at.plus_micros(1), 0)
                .await?;
            Ok(Money::from_minor(range.opening_minor, w.record.currency))
        })
    }
}
