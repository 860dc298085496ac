//! Rows as backends store them, and their conversion into domain records.
//!
//! Every backend stores the same columns with the same meaning (see `wallet-sqlite`'s schema),
//! so each row type here is a plain tuple of column values in `SELECT` order, and one function
//! turns it into the record the rest of the library uses. A backend reads the tuple with its
//! own driver and calls the function: the checks on the way in (ids positive, enumerations
//! known, text valid) are then the same on every backend.
//!
//! Anything out of range becomes [`Error::StorageCorrupt`], never a panic.

use crate::Role;
use crate::audit::{AuditAction, AuditEntry};
use crate::auth::PasswordHash;
use crate::command::Fingerprint;
use crate::currency::{Currency, CurrencyCode};
use crate::decide::{LinkRecord, MerchantRecord, PendingRecord, StoredTxn};
use crate::error::{Error, Result};
use crate::identity::{
    Email, FullName, KycReason, KycStatus, NationalId, PhoneNumber, Profile, UserRecord, Username,
};
use crate::ids::{
    MerchantId, NotificationId, TransactionId, TransactionRef, UserId, WalletId, WalletNumber,
};
use crate::links::{LINK_CODE_BYTES, LinkCode, LinkStatus};
use crate::money::Money;
use crate::notify::{Event, Notification, NotificationType, Priority, TxnEvent, TxnNote};
use crate::payment_method::{
    PaymentMethod, PaymentMethodId, PaymentMethodKind, PaymentMethodStatus, ProviderToken,
    ValidDisplay,
};
use crate::text::{Description, ExternalRef, IdempotencyKey, Metadata};
use crate::time::Timestamp;
use crate::transaction::{Leg, PendingDetails, Transaction, TransactionKind, TransactionStatus};
use crate::wallet::{AccountKind, Head, WalletRecord, WalletState, WalletStatus};

/// Turns an error about a value read back into [`Error::StorageCorrupt`] naming `what`.
pub fn corrupt(what: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| Error::corrupt(format!("{what}: {e}"))
}

/// A currency as stored (code and exponent columns).
pub fn currency(code: &str, exponent: i64) -> Result<Currency> {
    let code = CurrencyCode::new(code).map_err(corrupt("currency code"))?;
    let exponent = u8::try_from(exponent).map_err(|_| Error::corrupt("currency exponent"))?;
    Currency::new(code, exponent).map_err(corrupt("currency"))
}

/// A stored wallet id.
pub fn wallet_id(raw: i64) -> Result<WalletId> {
    WalletId::new(raw).map_err(corrupt("wallet id"))
}

/// A stored user id.
pub fn user_id(raw: i64) -> Result<UserId> {
    UserId::new(raw).map_err(corrupt("user id"))
}

/// A stored transaction id.
pub fn txn_id(raw: i64) -> Result<TransactionId> {
    TransactionId::new(raw).map_err(corrupt("transaction id"))
}

/// A stored request fingerprint (16 bytes).
pub fn fingerprint(raw: &[u8]) -> Result<Fingerprint> {
    <[u8; 16]>::try_from(raw)
        .map(Fingerprint)
        .map_err(|_| Error::corrupt("fingerprint"))
}

/// A stored count (never negative).
pub fn count(raw: i64) -> Result<u64> {
    u64::try_from(raw).map_err(|_| Error::corrupt("count"))
}

fn optional_text<T>(
    raw: Option<String>,
    what: &str,
    parse: impl Fn(String) -> Result<T>,
) -> Result<Option<T>> {
    raw.map(|s| parse(s).map_err(corrupt(what))).transpose()
}

/// A wallet with its head: id, owner, kind, currency code, exponent, status, held,
/// created_at, updated_at, then the latest entry's seq, balance_after, debits_after and
/// posting time (all NULL for a wallet without entries).
pub type WalletCols = (
    i64,
    Option<i64>,
    i64,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// A wallet state from its columns.
pub fn wallet_state(c: WalletCols) -> Result<WalletState> {
    let (id, owner, kind, code, exponent, status, held, created, updated, seq, bal, deb, at) = c;
    let record = WalletRecord {
        id: wallet_id(id)?,
        owner: owner.map(user_id).transpose()?,
        kind: AccountKind::from_db(kind)?,
        currency: currency(&code, exponent)?,
        status: WalletStatus::from_db(status)?,
        held_minor: held,
        created_at: Timestamp::from_micros(created),
        updated_at: Timestamp::from_micros(updated),
    };
    match (seq, bal, deb, at) {
        (None, ..) => Ok(WalletState::new_empty(record)),
        (Some(seq), Some(balance), Some(debits), Some(last_at)) => Ok(WalletState {
            record,
            head: Head {
                seq,
                balance_minor: balance,
                debits_minor: debits,
                last_at: Timestamp::from_micros(last_at),
            },
        }),
        _ => Err(Error::corrupt("entry without its transaction")),
    }
}

/// A user: id, username, email, full_name, phone, national_id, role, active, kyc, kyc_reason,
/// password, token_version, created_at, updated_at, deleted_at.
pub type UserCols = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    i64,
    i64,
    i64,
    Option<i64>,
);

/// A user record from its columns.
pub fn user_record(c: UserCols) -> Result<UserRecord> {
    let (id, username, email, full_name, phone, national_id, role, active, kyc, reason) =
        (c.0, c.1, c.2, c.3, c.4, c.5, c.6, c.7, c.8, c.9);
    let (password, token_version, created_at, updated_at, deleted_at) =
        (c.10, c.11, c.12, c.13, c.14);
    let profile = match (username, email, full_name, phone) {
        (Some(u), Some(e), Some(n), Some(p)) => Some(Profile {
            username: Username::new(&u).map_err(corrupt("username"))?,
            email: Email::new(&e).map_err(corrupt("email"))?,
            full_name: FullName::new(&n).map_err(corrupt("full name"))?,
            phone: PhoneNumber::new(&p).map_err(corrupt("phone"))?,
            national_id: national_id
                .map(|s| NationalId::new(&s).map_err(corrupt("national id")))
                .transpose()?,
        }),
        (None, None, None, None) => None,
        _ => return Err(Error::corrupt("partially erased user")),
    };
    Ok(UserRecord {
        id: user_id(id)?,
        profile,
        role: Role::from_db(role)?,
        active: active != 0,
        kyc: KycStatus::from_db(kyc)?,
        kyc_reason: reason
            .map(|s| KycReason::new(&s).map_err(corrupt("KYC reason")))
            .transpose()?,
        password: password
            .map(|s| PasswordHash::from_phc(s).map_err(corrupt("password hash")))
            .transpose()?,
        token_version: u32::try_from(token_version).map_err(|_| Error::corrupt("token version"))?,
        created_at: Timestamp::from_micros(created_at),
        updated_at: Timestamp::from_micros(updated_at),
        deleted_at: deleted_at.map(Timestamp::from_micros),
    })
}

/// An audit record: id, at, actor_id, action, target, detail, outcome.
pub type AuditCols = (
    i64,
    i64,
    Option<i64>,
    i64,
    Option<String>,
    Option<String>,
    String,
);

/// An audit entry from its columns.
pub fn audit_entry(c: AuditCols) -> Result<AuditEntry> {
    let (id, at, actor, action, target, detail, outcome) = c;
    Ok(AuditEntry {
        id,
        at: Timestamp::from_micros(at),
        actor: actor
            .map(|a| UserId::new(a).map_err(corrupt("actor id")))
            .transpose()?,
        action: AuditAction::from_db(action)?,
        target,
        detail,
        outcome,
    })
}

/// A payment method: id, owner_id, kind, provider, token, display (JSON), nickname,
/// is_default, verified, status, created_at, updated_at.
pub type MethodCols = (
    i64,
    i64,
    i64,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    i64,
    i64,
);

/// A payment method from its columns.
pub fn payment_method(c: MethodCols) -> Result<PaymentMethod> {
    let (id, owner, kind, provider, token, display, nickname, default, verified, status, ca, ua) =
        c;
    Ok(PaymentMethod {
        id: PaymentMethodId::new(id).map_err(corrupt("payment method id"))?,
        owner: UserId::new(owner).map_err(corrupt("owner id"))?,
        kind: PaymentMethodKind::from_db(kind)?,
        provider,
        token: ProviderToken::new(token).map_err(corrupt("provider token"))?,
        display: serde_json::from_str::<ValidDisplay>(&display)
            .map_err(|e| Error::corrupt(format!("payment method display: {e}")))?,
        nickname,
        is_default: default != 0,
        verified: verified != 0,
        status: PaymentMethodStatus::from_db(status)?,
        created_at: Timestamp::from_micros(ca),
        updated_at: Timestamp::from_micros(ua),
    })
}

/// A hold or pending top-up: txn_id, wallet_id, counter_id, amount, held, gateway_ref,
/// expires_at, open.
pub type PendingCols = (i64, i64, Option<i64>, i64, i64, Option<String>, i64, i64);

/// A pending record from its columns.
pub fn pending(c: PendingCols) -> Result<PendingRecord> {
    let (txn, wallet, counter, amount, held, gateway, expires, open) = c;
    Ok(PendingRecord {
        transaction: txn_id(txn)?,
        wallet: wallet_id(wallet)?,
        counter: counter.map(wallet_id).transpose()?,
        amount_minor: amount,
        held_minor: held,
        gateway_ref: gateway
            .map(|g| ExternalRef::new(g).map_err(corrupt("gateway reference")))
            .transpose()?,
        expires_at: Timestamp::from_micros(expires),
        open: open == 1,
    })
}

/// A merchant: id, wallet_id, name, created_at.
pub type MerchantCols = (i64, i64, String, i64);

/// A merchant record from its columns.
pub fn merchant(c: MerchantCols) -> Result<MerchantRecord> {
    let (id, wallet, name, at) = c;
    Ok(MerchantRecord {
        id: MerchantId::new(id).map_err(corrupt("merchant id"))?,
        wallet: wallet_id(wallet)?,
        name: Description::new(name).map_err(corrupt("merchant name"))?,
        created_at: Timestamp::from_micros(at),
    })
}

/// A payment link: id, code, wallet_id, amount, currency code, exponent, description, status,
/// expires_at, paid_txn, created_by, idempotency_key, fingerprint, created_at.
pub type LinkCols = (
    i64,
    Vec<u8>,
    i64,
    i64,
    String,
    i64,
    Option<String>,
    i64,
    i64,
    Option<i64>,
    i64,
    String,
    Vec<u8>,
    i64,
);

/// A link record from its columns.
pub fn link(c: LinkCols) -> Result<LinkRecord> {
    let (id, code, wallet, amount, cur, exp, description, status, expires, paid, by, key, fp, at) =
        c;
    let code = <[u8; LINK_CODE_BYTES]>::try_from(code.as_slice())
        .map_err(|_| Error::corrupt("link code"))?;
    Ok(LinkRecord {
        id,
        code: LinkCode::from_bytes(code),
        wallet: wallet_id(wallet)?,
        amount_minor: amount,
        currency: currency(&cur, exp)?,
        description: optional_text(description, "description", Description::new)?,
        status: LinkStatus::from_db(status)?,
        expires_at: Timestamp::from_micros(expires),
        paid_by: paid.map(txn_id).transpose()?,
        created_by: UserId::new(by).map_err(corrupt("link creator"))?,
        idempotency_key: IdempotencyKey::new(key).map_err(corrupt("idempotency key"))?,
        fingerprint: fingerprint(&fp)?,
        created_at: Timestamp::from_micros(at),
    })
}

/// A notification: id, user_id, kind, priority, title, message, read, created_at.
pub type NotificationCols = (i64, i64, i64, i64, String, String, i64, i64);

/// A notification from its columns.
pub fn notification(c: NotificationCols) -> Result<Notification> {
    let (id, user, kind, priority, title, message, read, at) = c;
    Ok(Notification {
        id: NotificationId::new(id).map_err(corrupt("notification id"))?,
        user: user_id(user)?,
        kind: NotificationType::from_db(kind)?,
        priority: Priority::from_db(priority)?,
        title,
        message,
        read: read == 1,
        created_at: Timestamp::from_micros(at),
    })
}

/// The facts of a transaction that its notifications and events render from: id, kind,
/// amount, currency code, exponent, original_id.
pub type TxnFactCols = (i64, i64, i64, String, i64, Option<i64>);

/// [`TxnFactCols`] as a `LEFT JOIN` reads them: every column nullable.
pub type NullableTxnFactCols = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// The facts of a joined transaction from nullable columns (a `LEFT JOIN`): none when the row
/// refers to no transaction, all of them when it does.
pub fn txn_fact_cols(c: NullableTxnFactCols) -> Result<Option<TxnFactCols>> {
    let (id, kind, amount, code, exponent, original) = c;
    match (id, kind, amount, code, exponent) {
        (None, None, None, None, None) if original.is_none() => Ok(None),
        (Some(id), Some(kind), Some(amount), Some(code), Some(exponent)) => {
            Ok(Some((id, kind, amount, code, exponent, original)))
        }
        _ => Err(Error::corrupt(
            "a referenced transaction's columns are incomplete",
        )),
    }
}

fn txn_facts(
    c: TxnFactCols,
) -> Result<(TransactionId, TransactionKind, Money, Option<TransactionId>)> {
    let (id, kind, amount, code, exponent, original) = c;
    Ok((
        txn_id(id)?,
        TransactionKind::from_db(kind)?,
        Money::from_minor(amount, currency(&code, exponent)?),
        original.map(txn_id).transpose()?,
    ))
}

/// A notification stored as text or by reference: id, user_id, kind, priority, title, message,
/// read, created_at, txn_state, and (when it refers to a transaction) that transaction's facts.
/// A row refers to a transaction exactly when its title and message are absent.
pub type StoredNotificationCols = (
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<i64>,
    Option<TxnFactCols>,
);

/// A notification from its stored columns, rendering one stored by reference.
pub fn stored_notification(c: StoredNotificationCols) -> Result<Notification> {
    let (id, user, kind, priority, title, message, read, at, state, facts) = c;
    let (title, message) = match (title, message, state, facts) {
        (Some(title), Some(message), None, None) => (title, message),
        (None, None, Some(state), Some(facts)) => {
            let (txn, kind, amount, _) = txn_facts(facts)?;
            let note = TxnNote::from_state(txn, kind, amount, state)?;
            (note.headline().0.to_owned(), note.message())
        }
        _ => {
            return Err(Error::corrupt(
                "a notification is neither text nor a reference",
            ));
        }
    };
    notification((id, user, kind, priority, title, message, read, at))
}

/// An event stored as text or by reference: id, at, kind, subject, payload, txn_status, and
/// (when it refers to a transaction) that transaction's facts. A row refers to a transaction
/// exactly when its kind, subject and payload are absent.
pub type StoredEventCols = (
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<TxnFactCols>,
);

/// An event from its stored columns, rendering one stored by reference.
pub fn stored_event(c: StoredEventCols) -> Result<Event> {
    let (id, at, kind, subject, payload, status, facts) = c;
    let (kind, subject, payload) = match (kind, subject, payload, status, facts) {
        (Some(kind), Some(subject), Some(payload), None, None) => (kind, subject, payload),
        (None, None, None, Some(status), Some(facts)) => {
            let (txn, kind, amount, original) = txn_facts(facts)?;
            let event = TxnEvent {
                txn,
                kind,
                amount,
                status: TransactionStatus::from_db(status)?,
                refunded: Money::zero(amount.currency()),
                original,
            };
            (
                event.kind_name(),
                event.subject(),
                event.payload().to_string(),
            )
        }
        _ => return Err(Error::corrupt("an event is neither text nor a reference")),
    };
    Ok(Event {
        id,
        at: Timestamp::from_micros(at),
        kind,
        subject,
        payload,
    })
}

/// A transaction: kind, status, amount, currency code, exponent, description, metadata,
/// initiated_by, idempotency_key, created_at, completed_at, refunded, original_id.
pub type TxnCols = (
    i64,
    i64,
    i64,
    String,
    i64,
    Option<String>,
    Option<String>,
    i64,
    String,
    i64,
    Option<i64>,
    i64,
    Option<i64>,
);

/// One leg of a transaction: wallet_id, seq, amount, balance_after, and the wallet's owner_id,
/// kind, currency code and exponent.
pub type LegCols = (i64, i64, i64, i64, Option<i64>, i64, String, i64);

/// A leg from its columns.
pub fn leg(c: LegCols) -> Result<Leg> {
    let (wallet, seq, amount, balance, owner, kind, code, exponent) = c;
    let cur = currency(&code, exponent)?;
    let wallet = wallet_id(wallet)?;
    let before = balance
        .checked_sub(amount)
        .ok_or_else(|| Error::corrupt("balance"))?;
    Ok(Leg {
        wallet,
        wallet_number: WalletNumber::of(wallet),
        system: match AccountKind::from_db(kind)? {
            AccountKind::System(s) => Some(s),
            AccountKind::Wallet(_) => None,
        },
        owner: owner.map(user_id).transpose()?,
        amount: Money::from_minor(amount, cur),
        seq,
        balance_before: Some(Money::from_minor(before, cur)),
        balance_after: Some(Money::from_minor(balance, cur)),
    })
}

/// A transaction from its columns, its legs (debits first) and its pending record.
pub fn transaction(
    id: TransactionId,
    c: TxnCols,
    legs: Vec<Leg>,
    pending: Option<&PendingRecord>,
) -> Result<Transaction> {
    let (kind, status, amount, code, exponent, description, metadata, by, key) =
        (c.0, c.1, c.2, c.3, c.4, c.5, c.6, c.7, c.8);
    let (created, completed, refunded, original) = (c.9, c.10, c.11, c.12);
    let cur = currency(&code, exponent)?;
    Ok(Transaction {
        id,
        reference: TransactionRef::of(id),
        kind: TransactionKind::from_db(kind)?,
        status: TransactionStatus::from_db(status)?,
        amount: Money::from_minor(amount, cur),
        description: optional_text(description, "description", Description::new)?,
        metadata: optional_text(metadata, "metadata", |s| Metadata::parse(&s))?,
        initiated_by: UserId::new(by).map_err(corrupt("initiator"))?,
        idempotency_key: IdempotencyKey::new(key).map_err(corrupt("idempotency key"))?,
        created_at: Timestamp::from_micros(created),
        completed_at: completed.map(Timestamp::from_micros),
        refunded: Money::from_minor(refunded, cur),
        original: original.map(txn_id).transpose()?.map(TransactionRef::of),
        pending: pending.map(|p| PendingDetails {
            wallet: WalletNumber::of(p.wallet),
            held: Money::from_minor(p.held_minor, cur),
            expires_at: p.expires_at,
            gateway_ref: p.gateway_ref.clone(),
        }),
        legs,
    })
}

/// A transaction as decisions see it.
pub fn stored_txn(t: &Transaction, pending: Option<PendingRecord>) -> StoredTxn {
    StoredTxn {
        id: t.id,
        kind: t.kind,
        status: t.status,
        amount_minor: t.amount.minor(),
        refunded_minor: t.refunded.minor(),
        currency: t.amount.currency(),
        legs: t
            .legs
            .iter()
            .map(|l| (l.wallet, l.amount.minor()))
            .collect(),
        pending,
    }
}
