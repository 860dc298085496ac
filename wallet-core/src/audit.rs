//! The audit log: every admin and security action, who did it, to what, when, and how it ended.
//!
//! Backends write an audit row in the same database transaction as the action it records; a
//! refused action (forbidden, invalid, conflicting) is recorded too, with its error code as
//! the outcome, while none of the action's own effects are kept.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::time::Timestamp;
use crate::wallet::code_enum;

code_enum!(
    /// What was done.
    AuditAction {
        /// The first SUPERUSER was created.
        Bootstrap = ("BOOTSTRAP", 1),
        /// A user registered.
        Register = ("REGISTER", 2),
        /// A login attempt.
        Login = ("LOGIN", 3),
        /// A password change.
        ChangePassword = ("CHANGE_PASSWORD", 4),
        /// Every session of a user was ended.
        RevokeSessions = ("REVOKE_SESSIONS", 5),
        /// A role change.
        SetRole = ("SET_ROLE", 6),
        /// A deactivation or reactivation.
        SetUserActive = ("SET_USER_ACTIVE", 7),
        /// A KYC decision.
        ReviewKyc = ("REVIEW_KYC", 8),
        /// A user deletion.
        DeleteUser = ("DELETE_USER", 9),
        /// A wallet status change.
        SetWalletStatus = ("SET_WALLET_STATUS", 10),
        /// A payment method was verified, blocked or unblocked.
        ReviewPaymentMethod = ("REVIEW_PAYMENT_METHOD", 11),
        /// A payment method was deleted.
        DeletePaymentMethod = ("DELETE_PAYMENT_METHOD", 12),
        /// A profile change (e-mail, phone, name, national id).
        UpdateProfile = ("UPDATE_PROFILE", 13),
        /// A refund.
        Refund = ("REFUND", 14),
        /// A wallet's limits were changed.
        SetLimits = ("SET_LIMITS", 15),
        /// A wallet was registered as a merchant.
        RegisterMerchant = ("REGISTER_MERCHANT", 16),
        /// A payment gateway's verdict on a pending top-up.
        GatewayCallback = ("GATEWAY_CALLBACK", 17),
    }
);

/// The outcome recorded for an action that succeeded.
pub const OUTCOME_OK: &str = "ok";

/// Longest audit target, in bytes.
pub const AUDIT_TARGET_LEN_MAX: usize = 64;

/// An audit record before the store assigns its id and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditNote {
    /// What was done.
    pub action: AuditAction,
    /// What it was done to (`user:42`, `wallet:WLT-…`, `payment_method:7`), if anything.
    pub target: Option<String>,
    /// A short detail that is safe to keep (a new role or status, a KYC decision); never a
    /// secret or personal data.
    pub detail: Option<String>,
}

impl AuditNote {
    /// A note about `action` on `target`.
    pub fn new(action: AuditAction, target: Option<String>) -> Self {
        AuditNote {
            action,
            target,
            detail: None,
        }
    }

    /// Adds a detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The target naming a user.
    pub fn user_target(user: UserId) -> Option<String> {
        Some(format!("user:{user}"))
    }
}

/// A stored audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log (increasing).
    pub id: i64,
    /// When it happened.
    pub at: Timestamp,
    /// Who acted (`None`: an anonymous caller, such as a login attempt for an unknown user).
    pub actor: Option<UserId>,
    /// What was done.
    pub action: AuditAction,
    /// What it was done to.
    pub target: Option<String>,
    /// A safe detail.
    pub detail: Option<String>,
    /// [`OUTCOME_OK`] or the error code the action ended with.
    pub outcome: String,
}

/// Filters of an audit log query; every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this actor's actions.
    pub actor: Option<UserId>,
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only actions on this target.
    pub target: Option<String>,
    /// At or after this time.
    pub since: Option<Timestamp>,
    /// Before this time.
    pub until: Option<Timestamp>,
    /// Only entries older than this id (the previous page's `next`).
    pub before: Option<i64>,
    /// Page size, 1 to [`crate::admin::PAGE_MAX`].
    pub limit: u32,
}

impl AuditQuery {
    /// Checks bounds.
    pub fn validate(&self) -> Result<()> {
        crate::admin::check_page(self.limit, self.since, self.until)?;
        if self
            .target
            .as_ref()
            .is_some_and(|t| t.len() > AUDIT_TARGET_LEN_MAX)
        {
            return Err(Error::InvalidQuery {
                reason: "target too long",
            });
        }
        Ok(())
    }
}
