//! Notifications for users and the event feed (outbox) for hosts.
//!
//! Both are derived here, once, from a command and its outcome, and a backend writes them in
//! the same database transaction as the change itself: a host that reads the feed after a
//! cursor sees every change exactly as committed, in commit order, and delivers it at least
//! once (it keeps its own cursor and may re-read a page after a crash).
//!
//! Nothing secret goes into either: no password, hash, token or provider token.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::command::{Command, Op, UserChange};
use crate::error::Result;
use crate::ids::{NotificationId, TransactionId, TransactionRef, UserId};
use crate::money::Money;
use crate::store::Outcome;
use crate::time::Timestamp;
use crate::transaction::{Transaction, TransactionKind, TransactionStatus};
use crate::wallet::code_enum;

code_enum!(
    /// What a notification is about.
    NotificationType {
        /// A money movement.
        Transaction = ("TRANSACTION", 1),
        /// Something about the account or the service.
        System = ("SYSTEM", 2),
        /// Something that needs the user's attention (a wallet stopped, an account deactivated).
        Alert = ("ALERT", 3),
        /// Marketing (hosts create these; the library never does).
        Promotion = ("PROMOTION", 4),
        /// A KYC decision.
        Kyc = ("KYC", 5),
        /// A security event (password, sessions, role, payment methods).
        Security = ("SECURITY", 6),
    }
);

code_enum!(
    /// How urgent a notification is.
    Priority {
        /// Informational.
        Low = ("LOW", 1),
        /// The usual.
        Normal = ("NORMAL", 2),
        /// Should be seen soon.
        High = ("HIGH", 3),
        /// Should be seen now.
        Urgent = ("URGENT", 4),
    }
);

/// What a transaction notification says, kept as facts rather than text.
///
/// Every money movement leaves one of these for each user it touched, so a backend may store
/// just the transaction's id and [`TxnNote::state`] and render the text when it is read: the
/// transaction's kind never changes, nor its amount once it is no longer pending (a partial
/// capture changes a hold's), and the reference follows from the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnNote {
    /// The transaction.
    pub txn: TransactionId,
    /// Its kind.
    pub kind: TransactionKind,
    /// Its amount.
    pub amount: Money,
    /// Its status when the notification was made.
    pub status: TransactionStatus,
    /// Whether the user's wallets received money from it (rather than sent it, or neither).
    pub received: bool,
}

impl TxnNote {
    /// The status and direction as one stored integer: the status code times two, plus one
    /// when the user received money.
    pub fn state(&self) -> i64 {
        self.status.to_db() * 2 + i64::from(self.received)
    }

    /// The note for transaction `txn` (its kind and amount as stored) in stored `state`.
    pub fn from_state(
        txn: TransactionId,
        kind: TransactionKind,
        amount: Money,
        state: i64,
    ) -> Result<Self> {
        Ok(TxnNote {
            txn,
            kind,
            amount,
            status: TransactionStatus::from_db(state.div_euclid(2))?,
            received: state.rem_euclid(2) == 1,
        })
    }

    /// The title and priority it is shown with.
    pub fn headline(&self) -> (&'static str, Priority) {
        headline(self.status, self.received)
    }

    /// The priority of a note stored as [`TxnNote::state`] (it depends on the state alone), for
    /// a backend that keeps only the state and renders the rest when read.
    pub fn priority_of_state(state: i64) -> Result<Priority> {
        let status = TransactionStatus::from_db(state.div_euclid(2))?;
        Ok(headline(status, state.rem_euclid(2) == 1).1)
    }

    /// The message, such as `TXN-… transfer of 12.50 USD is completed`.
    pub fn message(&self) -> String {
        format!(
            "{} {} of {} is {}",
            TransactionRef::of(self.txn),
            self.kind.as_str().to_ascii_lowercase().replace('_', "-"),
            self.amount,
            status_word(self.status)
        )
    }
}

/// The title and priority of a money movement's notification in `status`, for a user who
/// received money from it or not.
fn headline(status: TransactionStatus, received: bool) -> (&'static str, Priority) {
    match (status, received) {
        (TransactionStatus::Completed, true) => ("Money received", Priority::Normal),
        (TransactionStatus::Completed, false) => ("Money sent", Priority::Normal),
        (TransactionStatus::Pending, _) => ("Pending", Priority::Low),
        (TransactionStatus::Failed | TransactionStatus::Expired, _) => {
            ("Did not complete", Priority::High)
        }
        (TransactionStatus::Cancelled, _) => ("Cancelled", Priority::Normal),
        (TransactionStatus::Refunded | TransactionStatus::PartiallyRefunded, _) => {
            ("Refunded", Priority::Normal)
        }
    }
}

/// What a notification says: its text, or the facts of a transaction to render it from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteBody {
    /// Text as given.
    Text {
        /// A short title.
        title: String,
        /// The message.
        message: String,
    },
    /// A money movement, rendered by [`TxnNote::headline`] and [`TxnNote::message`].
    Transaction(TxnNote),
}

/// A notification to store for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    /// Who it is for.
    pub user: UserId,
    /// What it is about.
    pub kind: NotificationType,
    /// How urgent.
    pub priority: Priority,
    /// What it says.
    pub body: NoteBody,
}

impl NewNotification {
    /// Its title.
    pub fn title(&self) -> &str {
        match &self.body {
            NoteBody::Text { title, .. } => title,
            NoteBody::Transaction(t) => t.headline().0,
        }
    }

    /// Its message.
    pub fn message(&self) -> Cow<'_, str> {
        match &self.body {
            NoteBody::Text { message, .. } => Cow::Borrowed(message),
            NoteBody::Transaction(t) => Cow::Owned(t.message()),
        }
    }
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Id (increasing).
    pub id: NotificationId,
    /// Who it is for.
    pub user: UserId,
    /// What it is about.
    pub kind: NotificationType,
    /// How urgent.
    pub priority: Priority,
    /// A short title.
    pub title: String,
    /// The message.
    pub message: String,
    /// Whether the user has read it.
    pub read: bool,
    /// When it was created.
    pub created_at: Timestamp,
}

/// What a transaction event says, kept as facts rather than text.
///
/// Every money movement appends one; a backend may store the transaction's id and status and
/// render the event when the feed is read, since the kind, amount and original transaction
/// never change. `refunded` does, and so does a pending hold's amount (a partial capture):
/// such events are stored as text (see [`NewEvent::compact`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnEvent {
    /// The transaction.
    pub txn: TransactionId,
    /// Its kind.
    pub kind: TransactionKind,
    /// Its amount.
    pub amount: Money,
    /// Its status when the event was made.
    pub status: TransactionStatus,
    /// How much of it had been refunded then.
    pub refunded: Money,
    /// For a refund: the transaction it reverses.
    pub original: Option<TransactionId>,
}

impl TxnEvent {
    /// Its type: `transaction.` and the status in lower case.
    pub fn kind_name(&self) -> String {
        format!("transaction.{}", status_word(self.status))
    }

    /// What it is about: `transaction:TXN-…`.
    pub fn subject(&self) -> String {
        format!("transaction:{}", TransactionRef::of(self.txn))
    }

    /// Its details: kind, amount and currency, and the refunded amount and the original
    /// transaction where there are any. The transaction itself (legs, balances) is one read
    /// away by its reference, so the feed stays small.
    pub fn payload(&self) -> serde_json::Value {
        let mut payload = json!({
            "kind": self.kind.as_str(),
            "amount": self.amount.amount().to_string(),
            "currency": self.amount.currency().code().as_str(),
        });
        if let Some(object) = payload.as_object_mut() {
            if !self.refunded.is_zero() {
                object.insert("refunded".into(), json!(self.refunded.amount().to_string()));
            }
            if let Some(original) = self.original {
                object.insert(
                    "original".into(),
                    json!(TransactionRef::of(original).to_string()),
                );
            }
        }
        payload
    }
}

/// An event to append to the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewEvent {
    /// An event given as text.
    Text {
        /// Its type, such as `user.password_changed`.
        kind: String,
        /// What it is about (`user:42`, `wallet:WLT-…`).
        subject: String,
        /// Details, as a JSON object.
        payload: serde_json::Value,
    },
    /// A money movement's event, rendered by [`TxnEvent`].
    Transaction(TxnEvent),
}

impl NewEvent {
    /// Its type, such as `transaction.completed` or `user.password_changed`.
    pub fn kind(&self) -> Cow<'_, str> {
        match self {
            NewEvent::Text { kind, .. } => Cow::Borrowed(kind),
            NewEvent::Transaction(t) => Cow::Owned(t.kind_name()),
        }
    }

    /// What it is about (`transaction:TXN-…`, `user:42`, `wallet:WLT-…`).
    pub fn subject(&self) -> Cow<'_, str> {
        match self {
            NewEvent::Text { subject, .. } => Cow::Borrowed(subject),
            NewEvent::Transaction(t) => Cow::Owned(t.subject()),
        }
    }

    /// Its details, a JSON object as text.
    pub fn payload(&self) -> String {
        match self {
            NewEvent::Text { payload, .. } => payload.to_string(),
            NewEvent::Transaction(t) => t.payload().to_string(),
        }
    }

    /// The transaction and status a backend may store instead of the text, when the event
    /// renders from facts that never change (no refund recorded yet, and not pending: a
    /// partial capture changes a pending hold's amount).
    pub fn compact(&self) -> Option<(TransactionId, TransactionStatus)> {
        match self {
            NewEvent::Transaction(t)
                if t.refunded.is_zero() && t.status != TransactionStatus::Pending =>
            {
                Some((t.txn, t.status))
            }
            _ => None,
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the feed: strictly increasing in commit order. Pass the last one seen as
    /// the cursor of the next read.
    pub id: i64,
    /// When it happened.
    pub at: Timestamp,
    /// Its type.
    pub kind: String,
    /// What it is about.
    pub subject: String,
    /// Details (a JSON object, as text).
    pub payload: String,
}

/// Most events one feed read returns.
pub const EVENTS_PAGE_MAX: u32 = 1000;

/// What a command leaves behind for users and hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trail {
    /// Notifications to store.
    pub notifications: Vec<NewNotification>,
    /// Events to append.
    pub events: Vec<NewEvent>,
}

fn note(
    user: UserId,
    kind: NotificationType,
    priority: Priority,
    title: &str,
    message: String,
) -> NewNotification {
    NewNotification {
        user,
        kind,
        priority,
        body: NoteBody::Text {
            title: title.to_owned(),
            message,
        },
    }
}

fn status_word(status: TransactionStatus) -> String {
    status.as_str().to_ascii_lowercase()
}

fn transaction_trail(cmd: &Command, t: &Transaction, trail: &mut Trail) {
    trail.events.push(NewEvent::Transaction(TxnEvent {
        txn: t.id,
        kind: t.kind,
        amount: t.amount,
        status: t.status,
        refunded: t.refunded,
        original: t.original.map(TransactionRef::id),
    }));
    if !cmd.config.transaction_notifications() {
        return;
    }
    // Everyone whose wallet the transaction touched (received: any of their legs is a credit),
    // and whoever started it if it has not touched a wallet yet (a hold, a pending top-up).
    let mut users: Vec<(UserId, bool)> = Vec::new();
    for leg in &t.legs {
        if let Some(owner) = leg.owner {
            let credit = leg.amount.minor() > 0;
            match users.iter_mut().find(|(u, _)| *u == owner) {
                Some((_, received)) => *received |= credit,
                None => users.push((owner, credit)),
            }
        }
    }
    if users.is_empty() {
        users.push((t.initiated_by, false));
    }
    for (user, received) in users {
        let note = TxnNote {
            txn: t.id,
            kind: t.kind,
            amount: t.amount,
            status: t.status,
            received,
        };
        // A pending transaction's amount may still change (a partial capture of a hold), so
        // what its notification says now is kept as text.
        let body = if note.status == TransactionStatus::Pending {
            NoteBody::Text {
                title: note.headline().0.to_owned(),
                message: note.message(),
            }
        } else {
            NoteBody::Transaction(note)
        };
        trail.notifications.push(NewNotification {
            user,
            kind: NotificationType::Transaction,
            priority: note.headline().1,
            body,
        });
    }
}

/// The notifications and events a command leaves after it succeeded with `outcome`.
/// Replayed receipts leave nothing: nothing happened.
pub fn trail(cmd: &Command, outcome: &Outcome) -> Trail {
    let mut trail = Trail::default();
    match (&cmd.op, outcome) {
        (_, Outcome::Receipt(r)) if r.replayed => {}
        (_, Outcome::Receipt(r)) => transaction_trail(cmd, &r.transaction, &mut trail),
        (Op::Register(r), Outcome::User(u)) => {
            trail.events.push(NewEvent::Text {
                kind: if r.bootstrap {
                    "user.bootstrapped".into()
                } else {
                    "user.registered".into()
                },
                subject: format!("user:{}", u.id),
                payload: json!({ "user": u.id.get(), "role": u.role.as_str() }),
            });
            trail.notifications.push(note(
                u.id,
                NotificationType::System,
                Priority::Low,
                "Welcome",
                "Your account is ready.".into(),
            ));
        }
        (Op::UpdateUser(change), Outcome::User(u)) => {
            let (event, notice) = match &change.change {
                UserChange::Profile(_) => (
                    "user.profile_changed",
                    Some((NotificationType::Security, Priority::Normal, "Profile changed", "Your profile was changed.".to_owned())),
                ),
                UserChange::Password { .. } => (
                    "user.password_changed",
                    Some((NotificationType::Security, Priority::High, "Password changed", "Your password was changed and every session was ended.".to_owned())),
                ),
                UserChange::UpgradeHash { .. } => return trail,
                UserChange::RevokeSessions => (
                    "user.sessions_revoked",
                    Some((NotificationType::Security, Priority::High, "Signed out everywhere", "Every session of your account was ended.".to_owned())),
                ),
                UserChange::Role(role) => (
                    "user.role_changed",
                    Some((NotificationType::Security, Priority::High, "Role changed", format!("Your role is now {role}."))),
                ),
                UserChange::Active(active) => (
                    if *active { "user.activated" } else { "user.deactivated" },
                    Some((NotificationType::Alert, Priority::Urgent, if *active { "Account reactivated" } else { "Account deactivated" }, if *active { "Your account is active again.".to_owned() } else { "Your account was deactivated.".to_owned() })),
                ),
                UserChange::Kyc { status, .. } => (
                    "user.kyc_reviewed",
                    Some((NotificationType::Kyc, Priority::High, "Identity review", format!("Your identity review is {}.", status.as_str().to_ascii_lowercase()))),
                ),
                UserChange::Delete => ("user.deleted", None),
            };
            trail.events.push(NewEvent::Text {
                kind: event.into(),
                subject: format!("user:{}", u.id),
                payload: json!({ "user": u.id.get() }),
            });
            if let Some((kind, priority, title, message)) = notice {
                trail.notifications.push(note(u.id, kind, priority, title, message));
            }
        }
        (Op::OpenWallet(_) | Op::SetWalletStatus(_), Outcome::Wallet(w)) => {
            let opened = matches!(cmd.op, Op::OpenWallet(_));
            trail.events.push(NewEvent::Text {
                kind: if opened { "wallet.opened" } else { "wallet.status_changed" }.into(),
                subject: format!("wallet:{}", w.to_wallet().number),
                payload: json!({ "status": w.record.status.as_str(), "currency": w.record.currency.code().as_str() }),
            });
            if let (false, Some(owner)) = (opened, w.record.owner) {
                trail.notifications.push(note(
                    owner,
                    NotificationType::Alert,
                    Priority::High,
                    "Wallet status changed",
                    format!("Wallet {} is now {}.", w.to_wallet().number, w.record.status),
                ));
            }
        }
        (Op::PaymentMethod(_), Outcome::PaymentMethod(m)) => {
            trail.events.push(NewEvent::Text {
                kind: "payment_method.changed".into(),
                subject: format!("payment_method:{}", m.id),
                payload: json!({ "status": m.status.as_str(), "owner": m.owner.get() }),
            });
            trail.notifications.push(note(
                m.owner,
                NotificationType::Security,
                Priority::Normal,
                "Payment method changed",
                format!("A payment method of yours is {}.", m.status.as_str().to_ascii_lowercase()),
            ));
        }
        // A login's target may be whatever was typed as a name (even a mistyped password):
        // only a user id leaves the library. The owner of an account hears of a failed login.
        (Op::Audit(a), _) => {
            let user = a
                .note
                .target
                .as_deref()
                .and_then(|t| t.strip_prefix("user:"))
                .and_then(|id| id.parse::<i64>().ok())
                .and_then(|id| UserId::new(id).ok());
            if let Some(user) = user
                && a.outcome != crate::audit::OUTCOME_OK
            {
                trail.notifications.push(note(
                    user,
                    NotificationType::Security,
                    Priority::High,
                    "Failed sign-in",
                    format!("A sign-in to your account failed ({}).", a.outcome),
                ));
            }
            trail.events.push(NewEvent::Text {
            kind: format!("security.{}", a.note.action.as_str().to_ascii_lowercase()),
            subject: a
                .note
                .target
                .clone()
                .filter(|t| t.starts_with("user:"))
                .unwrap_or_default(),
            payload: json!({ "outcome": a.outcome }),
            });
        }
        (_, Outcome::Merchant(m)) => trail.events.push(NewEvent::Text {
            kind: "merchant.registered".into(),
            subject: format!("merchant:{}", m.id),
            payload: json!({ "wallet": crate::ids::WalletNumber::of(m.wallet).to_string() }),
        }),
        (_, Outcome::Link(l)) => trail.events.push(NewEvent::Text {
            kind: format!("link.{}", l.status.as_str().to_ascii_lowercase()),
            // The code lets anyone pay the link: it stays with its owner.
            subject: format!("wallet:{}", l.wallet),
            payload: json!({ "amount": l.amount.amount().to_string(), "currency": l.amount.currency().code().as_str() }),
        }),
        _ => {}
    }
    trail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::currency::{Currency, CurrencyCode};

    fn usd(minor: i64) -> Money {
        let code = CurrencyCode::new("USD").unwrap();
        Money::from_minor(minor, Currency::new(code, 2).unwrap())
    }

    #[test]
    fn a_stored_state_gives_back_the_note() {
        let txn = TransactionId::new(742).unwrap();
        for &status in TransactionStatus::ALL {
            for received in [false, true] {
                let note = TxnNote {
                    txn,
                    kind: TransactionKind::Transfer,
                    amount: usd(1250),
                    status,
                    received,
                };
                let back = TxnNote::from_state(txn, note.kind, note.amount, note.state()).unwrap();
                assert_eq!(back, note);
            }
        }
        assert!(TxnNote::from_state(txn, TransactionKind::Transfer, usd(1), 0).is_err());
        assert!(TxnNote::from_state(txn, TransactionKind::Transfer, usd(1), -3).is_err());
    }

    #[test]
    fn notes_and_events_render_as_text() {
        let txn = TransactionId::new(742).unwrap();
        let reference = TransactionRef::of(txn).to_string();
        let note = TxnNote {
            txn,
            kind: TransactionKind::Transfer,
            amount: usd(1250),
            status: TransactionStatus::Completed,
            received: true,
        };
        assert_eq!(note.headline(), ("Money received", Priority::Normal));
        assert_eq!(
            note.message(),
            format!("{reference} transfer of 12.50 USD is completed")
        );
        let sent = TxnNote {
            received: false,
            ..note
        };
        assert_eq!(sent.headline().0, "Money sent");

        let event = TxnEvent {
            txn,
            kind: TransactionKind::Transfer,
            amount: usd(1250),
            status: TransactionStatus::Completed,
            refunded: usd(0),
            original: None,
        };
        let new = NewEvent::Transaction(event);
        assert_eq!(new.kind(), "transaction.completed");
        assert_eq!(new.subject(), format!("transaction:{reference}"));
        assert_eq!(
            new.payload(),
            r#"{"amount":"12.50","currency":"USD","kind":"TRANSFER"}"#
        );
        assert_eq!(new.compact(), Some((txn, TransactionStatus::Completed)));
        // A refunded amount is a snapshot the transaction does not keep: stored as text.
        let refunded = NewEvent::Transaction(TxnEvent {
            refunded: usd(50),
            original: Some(TransactionId::new(7).unwrap()),
            ..event
        });
        assert_eq!(refunded.compact(), None);
        // A pending hold's amount changes on a partial capture: stored as text too.
        let pending = NewEvent::Transaction(TxnEvent {
            status: TransactionStatus::Pending,
            ..event
        });
        assert_eq!(pending.compact(), None);
        assert!(refunded.payload().contains(r#""refunded":"0.50""#));
    }
}
