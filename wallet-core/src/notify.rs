//! Notifications for users and the event feed (outbox) for hosts.
//!
//! Both are derived here, once, from a command and its outcome, and a backend writes them in
//! the same database transaction as the change itself: a host that reads the feed after a
//! cursor sees every change exactly as committed, in commit order, and delivers it at least
//! once (it keeps its own cursor and may re-read a page after a crash).
//!
//! Nothing secret goes into either: no password, hash, token or provider token.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::command::{Command, Op, UserChange};
use crate::ids::{NotificationId, UserId};
use crate::store::Outcome;
use crate::time::Timestamp;
use crate::transaction::{Transaction, TransactionStatus};
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

/// A notification to store for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
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

/// An event to append to the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Its type, such as `transaction.completed` or `user.password_changed`.
    pub kind: String,
    /// What it is about (`transaction:TXN-…`, `user:42`, `wallet:WLT-…`).
    pub subject: String,
    /// Details, as a JSON object.
    pub payload: serde_json::Value,
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
        title: title.to_owned(),
        message,
    }
}

fn status_word(status: TransactionStatus) -> String {
    status.as_str().to_ascii_lowercase()
}

fn transaction_trail(cmd: &Command, t: &Transaction, trail: &mut Trail) {
    // The event says what happened; the transaction itself (legs, balances) is one read away
    // by its reference, so the feed stays small on every transfer.
    let mut payload = json!({
        "kind": t.kind.as_str(),
        "amount": t.amount.amount().to_string(),
        "currency": t.amount.currency().code().as_str(),
    });
    if let Some(object) = payload.as_object_mut() {
        if !t.refunded.is_zero() {
            object.insert("refunded".into(), json!(t.refunded.amount().to_string()));
        }
        if let Some(original) = t.original {
            object.insert("original".into(), json!(original.to_string()));
        }
    }
    trail.events.push(NewEvent {
        kind: format!("transaction.{}", status_word(t.status)),
        subject: format!("transaction:{}", t.reference),
        payload,
    });
    if !cmd.config.transaction_notifications() {
        return;
    }
    // Everyone whose wallet the transaction touched, and whoever started it if it has not
    // touched a wallet yet (a hold, a pending top-up).
    let mut users: Vec<(UserId, Option<bool>)> = Vec::new();
    for leg in &t.legs {
        if let Some(owner) = leg.owner {
            let credit = leg.amount.minor() > 0;
            match users.iter_mut().find(|(u, _)| *u == owner) {
                Some((_, c)) => *c = Some(c.unwrap_or(credit) || credit),
                None => users.push((owner, Some(credit))),
            }
        }
    }
    if users.is_empty() {
        users.push((t.initiated_by, None));
    }
    let kind = t.kind.as_str().to_ascii_lowercase().replace('_', "-");
    for (user, credit) in users {
        let (title, priority) = match (t.status, credit) {
            (TransactionStatus::Completed, Some(true)) => ("Money received", Priority::Normal),
            (TransactionStatus::Completed, _) => ("Money sent", Priority::Normal),
            (TransactionStatus::Pending, _) => ("Pending", Priority::Low),
            (TransactionStatus::Failed | TransactionStatus::Expired, _) => {
                ("Did not complete", Priority::High)
            }
            (TransactionStatus::Cancelled, _) => ("Cancelled", Priority::Normal),
            (TransactionStatus::Refunded | TransactionStatus::PartiallyRefunded, _) => {
                ("Refunded", Priority::Normal)
            }
        };
        trail.notifications.push(note(
            user,
            NotificationType::Transaction,
            priority,
            title,
            format!(
                "{} {} of {} is {}",
                t.reference,
                kind,
                t.amount,
                status_word(t.status)
            ),
        ));
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
            trail.events.push(NewEvent {
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
            trail.events.push(NewEvent {
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
            trail.events.push(NewEvent {
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
            trail.events.push(NewEvent {
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
            trail.events.push(NewEvent {
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
        (_, Outcome::Merchant(m)) => trail.events.push(NewEvent {
            kind: "merchant.registered".into(),
            subject: format!("merchant:{}", m.id),
            payload: json!({ "wallet": crate::ids::WalletNumber::of(m.wallet).to_string() }),
        }),
        (_, Outcome::Link(l)) => trail.events.push(NewEvent {
            kind: format!("link.{}", l.status.as_str().to_ascii_lowercase()),
            // The code lets anyone pay the link: it stays with its owner.
            subject: format!("wallet:{}", l.wallet),
            payload: json!({ "amount": l.amount.amount().to_string(), "currency": l.amount.currency().code().as_str() }),
        }),
        _ => {}
    }
    trail
}
