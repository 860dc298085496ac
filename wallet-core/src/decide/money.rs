//! Money movements: immediate, pending a gateway, held; captures, cancellations, callbacks,
//! refunds and expiry. Every amount is checked against the currency, the configured bounds,
//! the wallets' statuses, available funds and limits before anything is written.

use rust_decimal::Decimal;

use crate::actor::{Action, authorize};
use crate::command::{Command, Flow, GatewayCallback, Move, Refund, Settle, SettleAction, Timing};
use crate::currency::Currency;
use crate::error::{Error, Result};
use crate::fees::refund_fee_minor;
use crate::identity::KycStatus;
use crate::ids::{WalletId, WalletNumber};
use crate::money::{Money, to_minor};
use crate::time::Timestamp;
use crate::transaction::{TransactionKind, TransactionStatus};
use crate::wallet::{AccountKind, SystemAccount, WalletState};

use super::rules::{
    LedgerWrites, NewPending, PendingRecord, Shown, StoredTxn, TxnUpdate, limits_of,
};
use super::{
    Decision, Effects, Fingerprint, PostedLeg, Posting, State, acting, customer_wallet, post,
};

/// Checks `amount_minor` against the configured bounds for `currency`.
pub(super) fn check_bounds(cmd: &Command, currency: Currency, amount_minor: i64) -> Result<()> {
    let (minimum, maximum) = cmd.config.bounds_for(currency);
    if amount_minor < minimum.minor() {
        return Err(Error::AmountBelowMinimum { minimum });
    }
    if amount_minor > maximum.minor() {
        return Err(Error::AmountAboveMaximum { maximum });
    }
    Ok(())
}

/// The error for moving money through a customer wallet that is not ACTIVE.
pub(super) fn usable(w: &WalletState) -> Result<()> {
    if let AccountKind::Wallet(_) = w.record.kind
        && let Some(e) = w.record.status.money_error(WalletNumber::of(w.record.id))
    {
        return Err(e);
    }
    Ok(())
}

/// Working copies of the accounts a decision touches, and the entries it posts.
struct Book<'a> {
    state: &'a State,
    work: Vec<WalletState>,
    held_changed: Vec<WalletId>,
    entries: Vec<(WalletId, i64)>,
}

impl<'a> Book<'a> {
    fn new(state: &'a State) -> Self {
        Book {
            state,
            work: Vec::new(),
            held_changed: Vec::new(),
            entries: Vec::new(),
        }
    }

    fn loaded(&self) -> impl Iterator<Item = &'a WalletState> {
        self.state
            .wallets
            .iter()
            .chain(self.state.systems.iter())
            .flatten()
    }

    /// The account as this decision has left it so far.
    fn get(&self, id: WalletId) -> Result<WalletState> {
        if let Some(w) = self.work.iter().find(|w| w.record.id == id) {
            return Ok(w.clone());
        }
        self.loaded()
            .find(|w| w.record.id == id)
            .cloned()
            .ok_or_else(|| Error::internal(format!("account {id} was not loaded")))
    }

    fn system(&self, kind: SystemAccount, currency: Currency) -> Result<WalletId> {
        self.loaded()
            .find(|w| w.record.kind == AccountKind::System(kind) && w.record.currency == currency)
            .map(|w| w.record.id)
            .ok_or_else(|| Error::internal(format!("{kind} account for {currency} missing")))
    }

    fn put(&mut self, state: WalletState) {
        match self
            .work
            .iter_mut()
            .find(|w| w.record.id == state.record.id)
        {
            Some(w) => *w = state,
            None => self.work.push(state),
        }
    }

    /// Changes what `id` holds by `delta` (never below zero).
    fn hold(&mut self, id: WalletId, delta: i64, now: Timestamp) -> Result<()> {
        let mut w = self.get(id)?;
        let held = w
            .record
            .held_minor
            .checked_add(delta)
            .filter(|h| *h >= 0)
            .ok_or_else(|| Error::internal("held money out of range"))?;
        w.record.held_minor = held;
        w.record.updated_at = now.max(w.record.updated_at);
        self.put(w);
        if !self.held_changed.contains(&id) {
            self.held_changed.push(id);
        }
        Ok(())
    }

    fn add(&mut self, id: WalletId, amount: i64) {
        if amount != 0 {
            self.entries.push((id, amount));
        }
    }

    /// What `id` can spend now: balance minus held.
    fn available(&self, id: WalletId) -> Result<i64> {
        let w = self.get(id)?;
        Ok(w.head.balance_minor.saturating_sub(w.record.held_minor))
    }

    /// The posting time: `now`, or later if an account's latest entry is later (entries of an
    /// account are in time order even when callers' clocks disagree).
    fn at(&self, now: Timestamp) -> Result<Timestamp> {
        let mut at = now;
        for (id, _) in &self.entries {
            at = at.max(self.get(*id)?.head.last_at);
        }
        Ok(at)
    }

    /// Nets the entries per account (first-seen order), posts them, and returns the legs.
    fn post(&mut self, at: Timestamp) -> Result<Vec<PostedLeg>> {
        let mut net: Vec<(WalletId, i64)> = Vec::new();
        for (id, amount) in std::mem::take(&mut self.entries) {
            match net.iter_mut().find(|(w, _)| *w == id) {
                Some((_, sum)) => *sum = sum.checked_add(amount).ok_or(Error::AmountOverflow)?,
                None => net.push((id, amount)),
            }
        }
        let mut legs = Vec::with_capacity(net.len());
        for (id, amount) in net.into_iter().filter(|(_, a)| *a != 0) {
            let account = self.get(id)?;
            let leg = post(&account, amount, at)?;
            self.put(WalletState {
                record: account.record.clone(),
                head: leg.head,
            });
            legs.push(leg);
        }
        Ok(legs)
    }

    fn finish(self, mut writes: LedgerWrites) -> Effects {
        writes.records = self
            .work
            .iter()
            .filter(|w| self.held_changed.contains(&w.record.id))
            .map(|w| w.record.clone())
            .collect();
        writes.touched = self.work;
        Effects::Ledger(Box::new(writes))
    }

    /// The decision to apply `writes` and the account changes made so far.
    fn apply(self, writes: LedgerWrites) -> Result<Decision> {
        Ok(Decision::Apply(self.finish(writes)))
    }
}

/// An earlier request under the same key: the same request is a replay, another a conflict.
fn repeat(state: &State, fingerprint: Fingerprint) -> Option<Result<Decision>> {
    state.existing.map(|existing| {
        if existing.fingerprint == fingerprint {
            Ok(Decision::Replay(existing.id))
        } else {
            Err(Error::IdempotencyConflict)
        }
    })
}

fn insufficient(available: i64, requested: i64, currency: Currency) -> Error {
    Error::InsufficientFunds {
        available: Money::from_minor(available, currency),
        requested: Money::from_minor(requested, currency),
    }
}

/// Ends a pending transaction in `status` without posting it: releases what it holds and
/// frees its order id.
fn release(
    book: &mut Book<'_>,
    p: &PendingRecord,
    status: TransactionStatus,
    now: Timestamp,
) -> Result<TxnUpdate> {
    if p.held_minor > 0 {
        book.hold(p.wallet, -p.held_minor, now)?;
    }
    Ok(TxnUpdate {
        id: p.transaction,
        status,
        amount_minor: p.amount_minor,
        refunded_minor: 0,
        completed_at: None,
        legs: Vec::new(),
        close_pending: true,
        release_order: true,
    })
}

/// Releases the lapsed holds and top-ups in `expired`.
fn release_lapsed(
    book: &mut Book<'_>,
    expired: &[PendingRecord],
    now: Timestamp,
    writes: &mut LedgerWrites,
) -> Result<()> {
    for p in expired.iter().filter(|p| p.open && p.expires_at <= now) {
        writes
            .updates
            .push(release(book, p, lapsed_status(p), now)?);
    }
    Ok(())
}

/// Books the entries of `kind` moving `amount` (plus `fee`, into the fee revenue account of
/// `currency`) from `from` to `to`.
fn book_move(
    book: &mut Book<'_>,
    kind: TransactionKind,
    from: WalletId,
    to: WalletId,
    amount: i64,
    fee: i64,
    currency: Currency,
) -> Result<()> {
    let total = amount.checked_add(fee).ok_or(Error::AmountOverflow)?;
    if kind == TransactionKind::TopUp {
        // The top-up's fee comes out of what arrives.
        book.add(from, -amount);
        book.add(to, amount - fee);
    } else {
        book.add(from, -total);
        book.add(to, amount);
    }
    if fee > 0 {
        let account = book.system(SystemAccount::FeeRevenue, currency)?;
        book.add(account, fee);
    }
    Ok(())
}

/// Posts a pending transaction: `amount` (plus `fee`) from `from` to `to`, now.
fn complete(
    mut book: Book<'_>,
    txn: &StoredTxn,
    from: WalletId,
    to: WalletId,
    amount: i64,
    fee: i64,
    now: Timestamp,
) -> Result<Decision> {
    book_move(&mut book, txn.kind, from, to, amount, fee, txn.currency)?;
    let at = book.at(now)?;
    let legs = book.post(at)?;
    let mut writes = LedgerWrites::new(Shown::Existing(txn.id));
    writes.updates.push(TxnUpdate {
        id: txn.id,
        status: TransactionStatus::Completed,
        amount_minor: amount,
        refunded_minor: 0,
        completed_at: Some(at),
        legs,
        close_pending: true,
        release_order: false,
    });
    book.apply(writes)
}

fn fee_for(cmd: &Command, kind: TransactionKind, amount: i64, currency: Currency) -> Result<i64> {
    let fee = cmd.config.fees().fee_minor(kind, amount, currency)?;
    if kind == TransactionKind::TopUp && fee >= amount {
        return Err(Error::FeeExceedsAmount {
            fee: Money::from_minor(fee, currency),
        });
    }
    Ok(fee)
}

/// The wallet a merchant payment or link payment goes to (loaded into slot 1).
fn payee<'a>(state: &'a State, payer: &WalletState, wallet: WalletId) -> Result<&'a WalletState> {
    if wallet == payer.record.id {
        return Err(Error::SameWallet);
    }
    let to = customer_wallet(state, 1)?;
    if to.record.id != wallet {
        return Err(Error::internal("the payee's wallet was not loaded"));
    }
    Ok(to)
}

pub(super) fn decide_move(cmd: &Command, m: &Move, state: &State) -> Result<Decision> {
    let fingerprint = cmd.fingerprint_or(|| m.fingerprint());
    if let Some(decision) = repeat(state, fingerprint) {
        return decision;
    }
    if m.amount <= Decimal::ZERO {
        return Err(Error::AmountNotPositive);
    }
    let kind = m.kind();
    match (&m.timing, kind) {
        (Timing::Now, _)
        | (Timing::AwaitGateway { .. }, TransactionKind::TopUp)
        | (Timing::Hold { .. }, TransactionKind::Withdrawal | TransactionKind::Transfer) => {}
        (Timing::Hold { .. }, TransactionKind::Payment)
            if matches!(m.flow, Flow::Payment { .. }) => {}
        (Timing::AwaitGateway { .. }, _) => {
            return Err(Error::InvalidQuery {
                reason: "only a top-up can wait for a payment gateway",
            });
        }
        (Timing::Hold { .. }, _) => {
            return Err(Error::InvalidQuery {
                reason: "only withdrawals, transfers and merchant payments can be held",
            });
        }
    }
    if let Flow::Transfer { from, to } | Flow::Exchange { from, to, .. } = m.flow
        && from == to
    {
        return Err(Error::SameWallet);
    }

    // The wallet the money comes from (or, for a top-up, goes to) decides who may act.
    let (actor, record) = acting(cmd, state)?;
    let primary = customer_wallet(state, 0)?;
    authorize(
        &actor,
        Action::MoveMoney {
            owner: primary.record.owner,
        },
    )?;
    if record.kyc != KycStatus::Verified {
        let policy = cmd.config.kyc_policy();
        let allowed = match kind {
            TransactionKind::TopUp => policy.top_up,
            TransactionKind::Withdrawal => policy.withdraw,
            _ => policy.send,
        };
        if !allowed {
            return Err(Error::KycRequired);
        }
    }
    if let Timing::AwaitGateway { .. } = m.timing
        && state.transaction.is_some()
    {
        return Err(Error::GatewayReferenceExists);
    }
    let currency = primary.record.currency;
    let mut book = Book::new(state);
    let mut writes = LedgerWrites::new(Shown::New);

    // The other side, and what the flow adds to the writes.
    let same_currency = |w: &WalletState| -> Result<()> {
        if w.record.currency == currency {
            Ok(())
        } else {
            Err(Error::CurrencyMismatch {
                expected: currency.code(),
                found: w.record.currency.code(),
            })
        }
    };
    let counter: WalletId = match &m.flow {
        Flow::Deposit { .. } | Flow::Withdraw { .. } => {
            book.system(SystemAccount::External, currency)?
        }
        Flow::Transfer { .. } => {
            let to = customer_wallet(state, 1)?;
            same_currency(to)?;
            to.record.id
        }
        Flow::Payment {
            merchant, order, ..
        } => {
            let found = state
                .merchant
                .as_ref()
                .filter(|r| r.id == *merchant)
                .ok_or(Error::MerchantNotFound)?;
            if let Some(paid) = state.order_paid {
                return Err(Error::OrderAlreadyPaid {
                    transaction: crate::ids::TransactionRef::of(paid),
                });
            }
            let to = payee(state, primary, found.wallet)?;
            same_currency(to)?;
            writes.new_order = Some((*merchant, order.clone()));
            to.record.id
        }
        Flow::LinkPayment { code, .. } => {
            let link = state
                .link
                .as_ref()
                .filter(|l| l.code == *code)
                .ok_or(Error::LinkNotFound)?;
            let status = link.status_at(cmd.now);
            if status != crate::links::LinkStatus::Active {
                return Err(Error::LinkNotPayable { status });
            }
            let to = payee(state, primary, link.wallet)?;
            same_currency(to)?;
            if to_minor(m.amount, currency)? != link.amount_minor {
                return Err(Error::InvalidQuery {
                    reason: "a payment link is paid exactly its amount",
                });
            }
            writes.link_paid = Some(link.id);
            to.record.id
        }
        Flow::Exchange { rate, .. } => {
            let to = customer_wallet(state, 1)?;
            if to.record.owner != primary.record.owner {
                return Err(Error::Forbidden);
            }
            if to.record.currency == currency {
                return Err(Error::InvalidRate {
                    reason: "both wallets hold the same currency",
                });
            }
            cmd.config
                .check_rate(currency.code(), to.record.currency.code(), *rate)?;
            to.record.id
        }
    };

    let amount = to_minor(m.amount, currency)?;
    check_bounds(cmd, currency, amount)?;
    usable(primary)?;
    usable(&book.get(counter)?)?;
    let fee = fee_for(cmd, kind, amount, currency)?;

    let outgoing = kind != TransactionKind::TopUp;
    if outgoing {
        release_lapsed(&mut book, &state.expired, cmd.now, &mut writes)?;
        let total = amount.checked_add(fee).ok_or(Error::AmountOverflow)?;
        let available = book.available(primary.record.id)?;
        if available < total {
            return Err(insufficient(available, total, currency));
        }
        let limits = limits_of(cmd, primary, state.limits);
        let spend = state.spend.unwrap_or_default();
        let held = book.get(primary.record.id)?.record.held_minor;
        limits.check(
            currency,
            amount,
            spend.today.saturating_add(held),
            spend.month.saturating_add(held),
        )?;
    }

    let mut posting = Posting {
        kind,
        status: TransactionStatus::Completed,
        amount_minor: amount,
        currency,
        description: m.description.clone(),
        metadata: m.metadata.clone(),
        initiated_by: actor.user,
        idempotency_key: m.idempotency_key.clone(),
        fingerprint,
        created_at: cmd.now,
        completed_at: None,
        legs: Vec::new(),
    };
    match &m.timing {
        Timing::Now => {
            if let Flow::Exchange { rate, rounding, .. } = &m.flow {
                let to = book.get(counter)?;
                let to_currency = to.record.currency;
                let converted =
                    crate::fees::convert_minor(amount, currency, to_currency, *rate, *rounding)?;
                if converted <= 0 {
                    return Err(Error::InvalidRate {
                        reason: "the amount converts to nothing",
                    });
                }
                let out = book.system(SystemAccount::Exchange, currency)?;
                let into = book.system(SystemAccount::Exchange, to_currency)?;
                book_move(
                    &mut book,
                    kind,
                    primary.record.id,
                    out,
                    amount,
                    fee,
                    currency,
                )?;
                book.add(into, -converted);
                book.add(counter, converted);
            } else if kind == TransactionKind::TopUp {
                book_move(
                    &mut book,
                    kind,
                    counter,
                    primary.record.id,
                    amount,
                    fee,
                    currency,
                )?;
            } else {
                book_move(
                    &mut book,
                    kind,
                    primary.record.id,
                    counter,
                    amount,
                    fee,
                    currency,
                )?;
            }
            let at = book.at(cmd.now)?;
            posting.legs = book.post(at)?;
            posting.created_at = at;
            posting.completed_at = Some(at);
        }
        Timing::AwaitGateway { reference } => {
            posting.status = TransactionStatus::Pending;
            writes.new_pending = Some(NewPending {
                wallet: primary.record.id,
                counter: None,
                amount_minor: amount,
                held_minor: 0,
                gateway_ref: Some(reference.clone()),
                expires_at: cmd.now.plus_micros(cmd.config.pending_timeout_micros()),
            });
        }
        Timing::Hold { ttl_micros } => {
            let ttl = ttl_micros.unwrap_or(cmd.config.hold_ttl_default_micros());
            if ttl <= 0 || ttl > cmd.config.hold_ttl_max_micros() {
                return Err(Error::InvalidQuery {
                    reason: "a hold lasts from 1 microsecond to the configured maximum",
                });
            }
            let total = amount.checked_add(fee).ok_or(Error::AmountOverflow)?;
            book.hold(primary.record.id, total, cmd.now)?;
            posting.status = TransactionStatus::Pending;
            writes.new_pending = Some(NewPending {
                wallet: primary.record.id,
                counter: (kind != TransactionKind::Withdrawal).then_some(counter),
                amount_minor: amount,
                held_minor: total,
                gateway_ref: None,
                expires_at: cmd.now.plus_micros(ttl),
            });
        }
    }
    writes.new = Some(posting);
    book.apply(writes)
}

/// The stored transaction and its pending record, or the right error.
fn pending_of(state: &State) -> Result<(&StoredTxn, &PendingRecord)> {
    let txn = state
        .transaction
        .as_ref()
        .ok_or(Error::TransactionNotFound)?;
    let pending = txn
        .pending
        .as_ref()
        .ok_or(Error::NotPending { status: txn.status })?;
    Ok((txn, pending))
}

/// Ends a pending transaction in `status`; with `refusal`, the change is kept and the caller
/// gets the error.
fn close(
    mut book: Book<'_>,
    p: &PendingRecord,
    status: TransactionStatus,
    now: Timestamp,
    refusal: Option<Error>,
) -> Result<Decision> {
    let mut writes = LedgerWrites::new(Shown::Existing(p.transaction));
    writes.updates.push(release(&mut book, p, status, now)?);
    let effects = book.finish(writes);
    Ok(match refusal {
        None => Decision::Apply(effects),
        Some(e) => Decision::Refuse(effects, e),
    })
}

/// The status a lapsed pending transaction ends in: a top-up fails, a hold expires.
fn lapsed_status(p: &PendingRecord) -> TransactionStatus {
    if p.gateway_ref.is_some() {
        TransactionStatus::Failed
    } else {
        TransactionStatus::Expired
    }
}

fn owner_of(state: &State, id: Option<WalletId>) -> Option<crate::ids::UserId> {
    let id = id?;
    state
        .wallets
        .iter()
        .flatten()
        .find(|w| w.record.id == id)
        .and_then(|w| w.record.owner)
}

pub(super) fn settle(cmd: &Command, s: &Settle, state: &State) -> Result<Decision> {
    let (actor, _) = acting(cmd, state)?;
    let txn = state
        .transaction
        .as_ref()
        .ok_or(Error::TransactionNotFound)?;
    let party = [
        txn.pending.as_ref().map(|p| p.wallet),
        txn.pending.as_ref().and_then(|p| p.counter),
    ]
    .into_iter()
    .any(|w| owner_of(state, w) == Some(actor.user));
    authorize(&actor, Action::Settle { party })?;
    // A pending top-up is the gateway's to resolve: an owner who cancelled it could lose a
    // payment the gateway has already taken.
    if txn
        .pending
        .as_ref()
        .is_some_and(|p| p.gateway_ref.is_some())
    {
        authorize(&actor, Action::GatewayCallback)?;
    }
    let (txn, p) = pending_of(state)?;
    let currency = txn.currency;
    let capture = match &s.action {
        SettleAction::Capture { amount } => Some(match amount {
            Some(a) if *a <= Decimal::ZERO => return Err(Error::AmountNotPositive),
            Some(a) => to_minor(*a, currency)?,
            None => p.amount_minor,
        }),
        SettleAction::Cancel => None,
    };
    if txn.status != TransactionStatus::Pending {
        // Repeating a capture or a cancellation that already happened returns it again.
        let repeat = match capture {
            Some(c) => {
                // A captured hold stays a repeat after refunds changed its status.
                p.gateway_ref.is_none() && txn.status.is_posted() && c == txn.amount_minor
            }
            None => txn.status == TransactionStatus::Cancelled,
        };
        return if repeat {
            Ok(Decision::Replay(txn.id))
        } else {
            Err(Error::NotPending { status: txn.status })
        };
    }
    let mut book = Book::new(state);
    if cmd.now >= p.expires_at {
        return close(
            book,
            p,
            lapsed_status(p),
            cmd.now,
            Some(Error::PendingExpired),
        );
    }
    let Some(c) = capture else {
        return close(book, p, TransactionStatus::Cancelled, cmd.now, None);
    };
    if p.gateway_ref.is_some() {
        return Err(Error::InvalidQuery {
            reason: "a pending top-up completes by the gateway's callback",
        });
    }
    if c > p.amount_minor {
        return Err(Error::CaptureExceedsHold {
            held: Money::from_minor(p.amount_minor, currency),
        });
    }
    check_bounds(cmd, currency, c)?;
    let from = book.get(p.wallet)?;
    usable(&from)?;
    let to = match p.counter {
        Some(id) => id,
        None => book.system(SystemAccount::External, currency)?,
    };
    usable(&book.get(to)?)?;
    let fee = fee_for(cmd, txn.kind, c, currency)?;
    book.hold(p.wallet, -p.held_minor, cmd.now)?;
    let total = c.checked_add(fee).ok_or(Error::AmountOverflow)?;
    let available = book.available(p.wallet)?;
    if available < total {
        return Err(insufficient(available, total, currency));
    }
    complete(book, txn, p.wallet, to, c, fee, cmd.now)
}

pub(super) fn gateway(cmd: &Command, g: &GatewayCallback, state: &State) -> Result<Decision> {
    let (actor, _) = acting(cmd, state)?;
    authorize(&actor, Action::GatewayCallback)?;
    let txn = state
        .transaction
        .as_ref()
        .ok_or(Error::GatewayReferenceNotFound)?;
    let p = txn
        .pending
        .as_ref()
        .filter(|p| p.gateway_ref.as_ref() == Some(&g.reference))
        .ok_or(Error::GatewayReferenceNotFound)?;
    if txn.status != TransactionStatus::Pending {
        let same = if g.success {
            txn.status == TransactionStatus::Completed
        } else {
            txn.status == TransactionStatus::Failed
        };
        return if same {
            Ok(Decision::Replay(txn.id))
        } else {
            Err(Error::NotPending { status: txn.status })
        };
    }
    let book = Book::new(state);
    if cmd.now >= p.expires_at {
        return close(
            book,
            p,
            TransactionStatus::Failed,
            cmd.now,
            Some(Error::PendingExpired),
        );
    }
    if !g.success {
        return close(book, p, TransactionStatus::Failed, cmd.now, None);
    }
    let currency = txn.currency;
    usable(&book.get(p.wallet)?)?;
    let external = book.system(SystemAccount::External, currency)?;
    let fee = fee_for(cmd, TransactionKind::TopUp, p.amount_minor, currency)?;
    complete(book, txn, external, p.wallet, p.amount_minor, fee, cmd.now)
}

pub(super) fn refund(cmd: &Command, r: &Refund, state: &State) -> Result<Decision> {
    let fingerprint = cmd.fingerprint_or(|| r.fingerprint());
    if let Some(decision) = repeat(state, fingerprint) {
        return decision;
    }
    let (actor, _) = acting(cmd, state)?;
    let original = state
        .transaction
        .as_ref()
        .ok_or(Error::TransactionNotFound)?;
    // Someone who took no part in a transaction learns nothing about it (whether it is
    // pending, a hold, an exchange or a refund) from the reason a refund is refused: only a
    // SUPERUSER may refund what is not theirs.
    // The parties: the owners of its legs, and of a hold's or pending top-up's wallets (which
    // have no legs yet).
    let pending = original
        .pending
        .iter()
        .flat_map(|p| std::iter::once(p.wallet).chain(p.counter));
    let party = original
        .legs
        .iter()
        .map(|(w, _)| *w)
        .chain(pending)
        .any(|w| owner_of(state, Some(w)) == Some(actor.user));
    if !party {
        authorize(&actor, Action::Refund { payee: None })?;
    }
    let book = Book::new(state);
    // The fee leg, and the two principal legs: where the money came from and went to.
    let fee_revenue = original
        .legs
        .iter()
        .find(|(w, _)| {
            book.get(*w)
                .is_ok_and(|s| s.record.kind == AccountKind::System(SystemAccount::FeeRevenue))
        })
        .copied();
    let principal: Vec<(WalletId, i64)> = original
        .legs
        .iter()
        .filter(|l| Some(**l) != fee_revenue)
        .copied()
        .collect();
    let (from, to) = match principal.as_slice() {
        [(a, x), (b, _)] if *x < 0 => (*a, *b),
        [(a, _), (b, _)] => (*b, *a),
        _ => {
            return Err(Error::NotRefundable {
                reason: "only a completed transaction can be refunded",
            });
        }
    };
    // Recipients give back what they were sent or paid; money that came from or went to the
    // outside (top-ups, withdrawals) is refunded by a SUPERUSER only.
    let payee = match original.kind {
        TransactionKind::Transfer | TransactionKind::Payment => owner_of(state, Some(to)),
        _ => None,
    };
    authorize(&actor, Action::Refund { payee })?;
    match original.kind {
        TransactionKind::Exchange => {
            return Err(Error::NotRefundable {
                reason: "an exchange is reversed by another exchange",
            });
        }
        TransactionKind::Refund => {
            return Err(Error::NotRefundable {
                reason: "a refund cannot be refunded",
            });
        }
        _ => {}
    }
    if !matches!(
        original.status,
        TransactionStatus::Completed | TransactionStatus::PartiallyRefunded
    ) {
        return Err(Error::NotRefundable {
            reason: "only a completed transaction can be refunded",
        });
    }
    let currency = original.currency;
    let refundable = original.amount_minor - original.refunded_minor;
    let amount = match r.amount {
        Some(a) if a <= Decimal::ZERO => return Err(Error::AmountNotPositive),
        Some(a) => to_minor(a, currency)?,
        None => refundable,
    };
    if amount <= 0 || amount > refundable {
        return Err(Error::RefundExceedsOriginal {
            refundable: Money::from_minor(refundable.max(0), currency),
        });
    }
    let fee = fee_revenue.map_or(0, |(_, f)| f);
    let fee_back = refund_fee_minor(
        original.amount_minor,
        fee,
        original.refunded_minor,
        amount,
        cmd.config.refund_fee_policy(),
    )?;
    let mut book = book;
    for id in [from, to] {
        usable(&book.get(id)?)?;
    }
    // The fee was paid by the customer side: the sender, or the wallet topped up.
    let payer = if matches!(book.get(from)?.record.kind, AccountKind::Wallet(_)) {
        from
    } else {
        to
    };
    book.add(to, -amount);
    book.add(from, amount);
    if fee_back > 0 {
        let (account, _) = fee_revenue.ok_or_else(|| Error::internal("fee leg missing"))?;
        book.add(account, -fee_back);
        book.add(payer, fee_back);
    }
    if matches!(book.get(to)?.record.kind, AccountKind::Wallet(_)) {
        let debit = if payer == to {
            amount - fee_back
        } else {
            amount
        };
        let available = book.available(to)?;
        if available < debit {
            return Err(insufficient(available, debit, currency));
        }
    }
    let at = book.at(cmd.now)?;
    let legs = book.post(at)?;
    let refunded = original.refunded_minor + amount;
    let mut writes = LedgerWrites::new(Shown::New);
    writes.new = Some(Posting {
        kind: TransactionKind::Refund,
        status: TransactionStatus::Completed,
        amount_minor: amount,
        currency,
        description: r.description.clone(),
        metadata: None,
        initiated_by: actor.user,
        idempotency_key: r.idempotency_key.clone(),
        fingerprint,
        created_at: at,
        completed_at: Some(at),
        legs,
    });
    writes.refund_of = Some(original.id);
    writes.updates.push(TxnUpdate {
        id: original.id,
        status: if refunded == original.amount_minor {
            TransactionStatus::Refunded
        } else {
            TransactionStatus::PartiallyRefunded
        },
        amount_minor: original.amount_minor,
        refunded_minor: refunded,
        completed_at: None,
        legs: Vec::new(),
        close_pending: false,
        release_order: false,
    });
    book.apply(writes)
}

pub(super) fn expire_due(cmd: &Command, state: &State) -> Result<Decision> {
    let (actor, _) = acting(cmd, state)?;
    authorize(&actor, Action::Settle { party: false })?;
    let mut book = Book::new(state);
    let mut writes = LedgerWrites::new(Shown::Count(0));
    release_lapsed(&mut book, &state.due, cmd.now, &mut writes)?;
    writes.shown = Shown::Count(u64::try_from(writes.updates.len()).unwrap_or(u64::MAX));
    book.apply(writes)
}
