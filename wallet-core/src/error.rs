//! The one public error type.
//!
//! Every variant is something a caller would handle differently, and each has a stable,
//! machine-readable [`Error::code`] that bindings map to exception classes and servers map to
//! HTTP statuses. Codes never change once released; messages may be improved.

use crate::currency::CurrencyCode;
use crate::ids::WalletNumber;
use crate::money::Money;
use crate::wallet::WalletStatus;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, as seen by a caller of the library.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ----- bad input -------------------------------------------------------------------------
    /// An amount that must be positive was zero or negative.
    #[error("amount must be greater than zero")]
    AmountNotPositive,
    /// An amount has more decimal places than its currency allows.
    #[error("{currency} allows at most {max_decimals} decimal places")]
    AmountPrecision {
        /// The currency of the amount.
        currency: CurrencyCode,
        /// The currency's minor-unit exponent.
        max_decimals: u8,
    },
    /// An amount is below the configured minimum for the operation.
    #[error("amount is below the minimum of {minimum}")]
    AmountBelowMinimum {
        /// The smallest amount allowed.
        minimum: Money,
    },
    /// An amount is above the configured maximum for the operation.
    #[error("amount is above the maximum of {maximum}")]
    AmountAboveMaximum {
        /// The largest amount allowed.
        maximum: Money,
    },
    /// An amount or a balance does not fit in the ledger's 64-bit minor units.
    #[error("amount is too large to be represented")]
    AmountOverflow,
    /// Text could not be read as a decimal amount.
    #[error("not a valid amount: {reason}")]
    InvalidAmount {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A currency code that is neither an ISO 4217 code nor a registered custom asset.
    #[error("unknown currency {code:?}")]
    UnknownCurrency {
        /// The code as given (truncated if very long).
        code: String,
    },
    /// A malformed currency code or custom asset definition.
    #[error("invalid currency: {reason}")]
    InvalidCurrency {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The wallets involved hold different currencies.
    #[error("currency mismatch: expected {expected}, found {found}")]
    CurrencyMismatch {
        /// The currency the operation requires.
        expected: CurrencyCode,
        /// The currency it found.
        found: CurrencyCode,
    },
    /// A currency's exponent in the store differs from the configured one.
    #[error(
        "currency {code} is stored with {stored} decimal places but configured with {configured}"
    )]
    CurrencyExponentMismatch {
        /// The currency.
        code: CurrencyCode,
        /// The exponent recorded in the store.
        stored: u8,
        /// The exponent in the configuration.
        configured: u8,
    },
    /// A description that is too long or contains forbidden characters.
    #[error("invalid description: {reason}")]
    InvalidDescription {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// Metadata that is not a JSON object, or is too large or too deep.
    #[error("invalid metadata: {reason}")]
    InvalidMetadata {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// An idempotency key that is empty, too long, or has characters outside visible ASCII.
    #[error("invalid idempotency key: {reason}")]
    InvalidIdempotencyKey {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A string that is not a well-formed wallet number (`WLT-…`), or whose check digits fail.
    #[error("invalid wallet number")]
    InvalidWalletNumber,
    /// A string that is not a well-formed transaction reference (`TXN-…`), or whose check digits fail.
    #[error("invalid transaction reference")]
    InvalidReference,
    /// An identifier that is not a positive integer.
    #[error("invalid identifier")]
    InvalidId,
    /// A history cursor that is malformed or belongs to another wallet.
    #[error("invalid cursor")]
    InvalidCursor,
    /// A query with an out-of-range page size or an empty date range.
    #[error("invalid query: {reason}")]
    InvalidQuery {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A configuration value outside its allowed range.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What was wrong with it.
        reason: String,
    },
    /// A username outside the allowed length or character set.
    #[error("invalid username: {reason}")]
    InvalidUsername {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A malformed e-mail address.
    #[error("invalid e-mail address: {reason}")]
    InvalidEmail {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A phone number that is not in E.164 form (`+` and up to 15 digits).
    #[error("invalid phone number: {reason}")]
    InvalidPhone {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A full name or national id that is empty, too long or has forbidden characters.
    #[error("invalid {field}: {reason}")]
    InvalidPersonalData {
        /// Which field.
        field: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A password that the password policy rejects.
    #[error("password rejected: {reason}")]
    WeakPassword {
        /// Which rule it broke.
        reason: &'static str,
    },
    /// Payment-method input that is malformed (provider, token, display data, expiry).
    #[error("invalid payment method: {reason}")]
    InvalidPaymentMethod {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The input contains what looks like a full card number. Card numbers are never accepted
    /// or stored: send the payment provider's token and the last four digits instead.
    #[error("a full card number is not accepted; send the provider's token instead")]
    CardNumberRejected,
    /// The card's expiry date has passed.
    #[error("the card has expired")]
    CardExpired,

    // ----- authentication --------------------------------------------------------------------
    /// Unknown user or wrong password (deliberately the same error for both).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// A session token that is malformed, forged, expired, not yet valid, for another audience
    /// or issuer, or revoked.
    #[error("invalid session token: {reason}")]
    InvalidToken {
        /// Why it was refused.
        reason: &'static str,
    },
    /// The user is deactivated: they cannot log in and their sessions are revoked.
    #[error("user is inactive")]
    UserInactive,
    /// Too many requests (or failed logins) for this key; try again later.
    #[error("too many attempts; retry in {retry_after_ms} ms")]
    RateLimited {
        /// How long to wait before the next attempt can succeed, in milliseconds.
        retry_after_ms: u64,
    },

    // ----- state and rules -------------------------------------------------------------------
    /// No user with that id, username or e-mail (or not visible to the caller).
    #[error("user not found")]
    UserNotFound,
    /// The username or e-mail is already registered.
    #[error("{field} is already taken")]
    UserExists {
        /// `"username"` or `"email"`.
        field: &'static str,
    },
    /// A SUPERUSER already exists, so bootstrapping is closed.
    #[error("the system is already bootstrapped")]
    AlreadyBootstrapped,
    /// The change would leave no active SUPERUSER.
    #[error("the last active superuser cannot be demoted, deactivated or deleted")]
    LastSuperuser,
    /// The user's KYC status does not allow this operation.
    #[error("identity verification (KYC) is required for this operation")]
    KycRequired,
    /// A KYC decision for a user whose status is not PENDING.
    #[error("KYC status can change only from PENDING")]
    KycAlreadyDecided,
    /// No payment method with that id (or not visible to the caller).
    #[error("payment method not found")]
    PaymentMethodNotFound,
    /// No wallet with that id or number (or not visible to the caller).
    #[error("wallet not found")]
    WalletNotFound,
    /// No transaction with that reference.
    #[error("transaction not found")]
    TransactionNotFound,
    /// The owner already has a wallet of this kind and currency.
    #[error("a wallet of this kind and currency already exists: {existing}")]
    WalletExists {
        /// The existing wallet's number.
        existing: WalletNumber,
    },
    /// The wallet is INACTIVE and cannot move money.
    #[error("wallet {wallet} is inactive")]
    WalletInactive {
        /// The wallet concerned.
        wallet: WalletNumber,
    },
    /// The wallet is FROZEN and cannot move money.
    #[error("wallet {wallet} is frozen")]
    WalletFrozen {
        /// The wallet concerned.
        wallet: WalletNumber,
    },
    /// The wallet is BLOCKED and cannot move money.
    #[error("wallet {wallet} is blocked")]
    WalletBlocked {
        /// The wallet concerned.
        wallet: WalletNumber,
    },
    /// The wallet is CLOSED.
    #[error("wallet {wallet} is closed")]
    WalletClosed {
        /// The wallet concerned.
        wallet: WalletNumber,
    },
    /// A status change that the wallet lifecycle does not allow.
    #[error("cannot change wallet status from {from} to {to}")]
    InvalidStatusTransition {
        /// The current status.
        from: WalletStatus,
        /// The requested status.
        to: WalletStatus,
    },
    /// A wallet cannot be closed while it holds money.
    #[error("wallet still holds {balance}")]
    WalletNotEmpty {
        /// What it still holds.
        balance: Money,
    },
    /// Source and destination are the same wallet.
    #[error("cannot transfer a wallet's money to itself")]
    SameWallet,
    /// Not enough available money.
    #[error("insufficient funds: {available} available, {requested} requested")]
    InsufficientFunds {
        /// The money available (balance minus holds).
        available: Money,
        /// The money the operation needs.
        requested: Money,
    },
    /// The idempotency key was already used for a different request.
    #[error("idempotency key already used for a different request")]
    IdempotencyConflict,
    /// The caller is not allowed to perform this operation on this object.
    #[error("not allowed")]
    Forbidden,

    // ----- payments and rules ----------------------------------------------------------------
    /// An exchange rate that is zero, negative or out of range.
    #[error("invalid exchange rate: {reason}")]
    InvalidRate {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A batch that is empty, too large, or holds an operation batches cannot hold.
    #[error("invalid batch: {reason}")]
    InvalidBatch {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A limit value that is negative, or a daily limit above the monthly one.
    #[error("invalid limits: {reason}")]
    InvalidLimits {
        /// What was wrong with them.
        reason: &'static str,
    },
    /// The operation would exceed one of the wallet's spending limits.
    #[error("{limit} limit exceeded: {remaining} remaining")]
    LimitExceeded {
        /// Which limit.
        limit: crate::limits::LimitKind,
        /// What may still be spent under it.
        remaining: Money,
    },
    /// The transaction is not PENDING, so it cannot be completed, captured, voided or cancelled.
    #[error("transaction is {status}, not PENDING")]
    NotPending {
        /// Its status.
        status: crate::transaction::TransactionStatus,
    },
    /// The hold or pending top-up passed its expiry; it has been released.
    #[error("the pending transaction expired")]
    PendingExpired,
    /// A capture larger than what the hold reserved.
    #[error("capture exceeds the {held} held")]
    CaptureExceedsHold {
        /// What the hold reserved.
        held: Money,
    },
    /// No pending top-up has this gateway reference.
    #[error("unknown gateway reference")]
    GatewayReferenceNotFound,
    /// Another top-up already uses this gateway reference.
    #[error("gateway reference already used")]
    GatewayReferenceExists,
    /// The transaction cannot be refunded (its kind or status).
    #[error("cannot refund: {reason}")]
    NotRefundable {
        /// Why.
        reason: &'static str,
    },
    /// A refund larger than what remains of the original.
    #[error("refund exceeds the {refundable} still refundable")]
    RefundExceedsOriginal {
        /// What may still be refunded.
        refundable: Money,
    },
    /// The fee would take all of a top-up.
    #[error("the fee of {fee} takes the whole amount")]
    FeeExceedsAmount {
        /// The fee.
        fee: Money,
    },
    /// No merchant with this id.
    #[error("merchant not found")]
    MerchantNotFound,
    /// The wallet is already registered as a merchant, or is not a BUSINESS wallet.
    #[error("cannot register merchant: {reason}")]
    MerchantRejected {
        /// Why.
        reason: &'static str,
    },
    /// The merchant was already paid for this order.
    #[error("order already paid by {transaction}")]
    OrderAlreadyPaid {
        /// The payment.
        transaction: crate::ids::TransactionRef,
    },
    /// No payment link with this code.
    #[error("payment link not found")]
    LinkNotFound,
    /// The payment link was paid, cancelled, or has expired.
    #[error("payment link is {status}")]
    LinkNotPayable {
        /// Its status.
        status: crate::links::LinkStatus,
    },
    /// No such notification for this user.
    #[error("notification not found")]
    NotificationNotFound,
    /// The date range holds more lines than one statement may.
    #[error("statement would hold more than {max} lines: narrow the date range")]
    StatementTooLarge {
        /// The most lines a statement holds.
        max: u32,
    },

    // ----- storage ---------------------------------------------------------------------------
    /// The disk or the database's size limit is full. Nothing of the operation was stored.
    #[error("storage is full")]
    StorageFull,
    /// The database cannot be written (read-only file or medium). Nothing was stored.
    #[error("storage is read-only")]
    StorageReadOnly,
    /// The database stayed locked by another process beyond the busy timeout.
    #[error("storage is busy")]
    StorageBusy,
    /// The database holds data the library cannot read: corruption or a foreign schema.
    #[error("storage is corrupt: {detail}")]
    StorageCorrupt {
        /// What was found.
        detail: String,
    },
    /// Any other storage failure (I/O error, lost connection). Nothing partial was stored.
    #[error("storage error: {detail}")]
    Storage {
        /// The underlying error's message.
        detail: String,
    },
    /// The database schema is newer or older than this code can use.
    #[error("database schema version {found} is not supported (this code uses {supported})")]
    SchemaVersion {
        /// The version found in the database.
        found: i64,
        /// The version this code expects.
        supported: i64,
    },
    /// The store was closed.
    #[error("store is closed")]
    Closed,

    // ----- export and import -----------------------------------------------------------------
    /// A ledger file (see [`crate::portable`]) that is malformed, truncated, altered, or whose
    /// ledger does not verify. The import stored nothing.
    #[error("invalid ledger file at line {line}: {reason}")]
    ImportInvalid {
        /// The 1-based line at fault, or 0 when the fault is in the file as a whole (the ledger
        /// it holds does not verify).
        line: u64,
        /// What was wrong.
        reason: String,
    },
    /// An import into a store that already holds data. Import only into an empty store.
    #[error("the store is not empty: import needs an empty store")]
    StoreNotEmpty,
    /// A broken internal invariant: a bug. Nothing partial was stored.
    #[error("internal error: {detail}")]
    Internal {
        /// What was broken.
        detail: String,
    },
}

impl Error {
    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::AmountNotPositive => "amount_not_positive",
            Error::AmountPrecision { .. } => "amount_precision",
            Error::AmountBelowMinimum { .. } => "amount_below_minimum",
            Error::AmountAboveMaximum { .. } => "amount_above_maximum",
            Error::AmountOverflow => "amount_overflow",
            Error::InvalidAmount { .. } => "invalid_amount",
            Error::UnknownCurrency { .. } => "unknown_currency",
            Error::InvalidCurrency { .. } => "invalid_currency",
            Error::CurrencyMismatch { .. } => "currency_mismatch",
            Error::CurrencyExponentMismatch { .. } => "currency_exponent_mismatch",
            Error::InvalidDescription { .. } => "invalid_description",
            Error::InvalidMetadata { .. } => "invalid_metadata",
            Error::InvalidIdempotencyKey { .. } => "invalid_idempotency_key",
            Error::InvalidWalletNumber => "invalid_wallet_number",
            Error::InvalidReference => "invalid_reference",
            Error::InvalidId => "invalid_id",
            Error::InvalidCursor => "invalid_cursor",
            Error::InvalidQuery { .. } => "invalid_query",
            Error::InvalidConfig { .. } => "invalid_config",
            Error::InvalidUsername { .. } => "invalid_username",
            Error::InvalidEmail { .. } => "invalid_email",
            Error::InvalidPhone { .. } => "invalid_phone",
            Error::InvalidPersonalData { .. } => "invalid_personal_data",
            Error::WeakPassword { .. } => "weak_password",
            Error::InvalidPaymentMethod { .. } => "invalid_payment_method",
            Error::CardNumberRejected => "card_number_rejected",
            Error::CardExpired => "card_expired",
            Error::InvalidCredentials => "invalid_credentials",
            Error::InvalidToken { .. } => "invalid_token",
            Error::UserInactive => "user_inactive",
            Error::RateLimited { .. } => "rate_limited",
            Error::UserNotFound => "user_not_found",
            Error::UserExists { .. } => "user_exists",
            Error::AlreadyBootstrapped => "already_bootstrapped",
            Error::LastSuperuser => "last_superuser",
            Error::KycRequired => "kyc_required",
            Error::KycAlreadyDecided => "kyc_already_decided",
            Error::PaymentMethodNotFound => "payment_method_not_found",
            Error::WalletNotFound => "wallet_not_found",
            Error::TransactionNotFound => "transaction_not_found",
            Error::WalletExists { .. } => "wallet_exists",
            Error::WalletInactive { .. } => "wallet_inactive",
            Error::WalletFrozen { .. } => "wallet_frozen",
            Error::WalletBlocked { .. } => "wallet_blocked",
            Error::WalletClosed { .. } => "wallet_closed",
            Error::InvalidStatusTransition { .. } => "invalid_status_transition",
            Error::WalletNotEmpty { .. } => "wallet_not_empty",
            Error::SameWallet => "same_wallet",
            Error::InsufficientFunds { .. } => "insufficient_funds",
            Error::IdempotencyConflict => "idempotency_conflict",
            Error::Forbidden => "forbidden",
            Error::InvalidRate { .. } => "invalid_rate",
            Error::InvalidBatch { .. } => "invalid_batch",
            Error::InvalidLimits { .. } => "invalid_limits",
            Error::LimitExceeded { .. } => "limit_exceeded",
            Error::NotPending { .. } => "not_pending",
            Error::PendingExpired => "pending_expired",
            Error::CaptureExceedsHold { .. } => "capture_exceeds_hold",
            Error::GatewayReferenceNotFound => "gateway_reference_not_found",
            Error::GatewayReferenceExists => "gateway_reference_exists",
            Error::NotRefundable { .. } => "not_refundable",
            Error::RefundExceedsOriginal { .. } => "refund_exceeds_original",
            Error::FeeExceedsAmount { .. } => "fee_exceeds_amount",
            Error::MerchantNotFound => "merchant_not_found",
            Error::MerchantRejected { .. } => "merchant_rejected",
            Error::OrderAlreadyPaid { .. } => "order_already_paid",
            Error::LinkNotFound => "link_not_found",
            Error::LinkNotPayable { .. } => "link_not_payable",
            Error::NotificationNotFound => "notification_not_found",
            Error::StatementTooLarge { .. } => "statement_too_large",
            Error::StorageFull => "storage_full",
            Error::StorageReadOnly => "storage_read_only",
            Error::StorageBusy => "storage_busy",
            Error::StorageCorrupt { .. } => "storage_corrupt",
            Error::Storage { .. } => "storage_error",
            Error::SchemaVersion { .. } => "schema_version",
            Error::Closed => "store_closed",
            Error::ImportInvalid { .. } => "import_invalid",
            Error::StoreNotEmpty => "store_not_empty",
            Error::Internal { .. } => "internal",
        }
    }

    /// The broad class of the error, for hosts that map errors to responses.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::AmountNotPositive
            | Error::AmountPrecision { .. }
            | Error::AmountBelowMinimum { .. }
            | Error::AmountAboveMaximum { .. }
            | Error::AmountOverflow
            | Error::InvalidAmount { .. }
            | Error::UnknownCurrency { .. }
            | Error::InvalidCurrency { .. }
            | Error::InvalidDescription { .. }
            | Error::InvalidMetadata { .. }
            | Error::InvalidIdempotencyKey { .. }
            | Error::InvalidWalletNumber
            | Error::InvalidReference
            | Error::InvalidId
            | Error::InvalidCursor
            | Error::InvalidQuery { .. }
            | Error::InvalidConfig { .. }
            | Error::InvalidUsername { .. }
            | Error::InvalidEmail { .. }
            | Error::InvalidPhone { .. }
            | Error::InvalidPersonalData { .. }
            | Error::WeakPassword { .. }
            | Error::InvalidPaymentMethod { .. }
            | Error::CardNumberRejected
            | Error::InvalidRate { .. }
            | Error::InvalidBatch { .. }
            | Error::InvalidLimits { .. }
            | Error::StatementTooLarge { .. }
            | Error::ImportInvalid { .. } => ErrorKind::InvalidInput,
            Error::InvalidCredentials | Error::InvalidToken { .. } | Error::UserInactive => {
                ErrorKind::Unauthenticated
            }
            Error::RateLimited { .. } => ErrorKind::Throttled,
            Error::WalletNotFound
            | Error::TransactionNotFound
            | Error::UserNotFound
            | Error::PaymentMethodNotFound
            | Error::GatewayReferenceNotFound
            | Error::MerchantNotFound
            | Error::LinkNotFound
            | Error::NotificationNotFound => ErrorKind::NotFound,
            Error::Forbidden | Error::KycRequired => ErrorKind::Forbidden,
            Error::WalletExists { .. }
            | Error::IdempotencyConflict
            | Error::UserExists { .. }
            | Error::AlreadyBootstrapped
            | Error::KycAlreadyDecided
            | Error::GatewayReferenceExists
            | Error::OrderAlreadyPaid { .. }
            | Error::StoreNotEmpty => ErrorKind::Conflict,
            Error::CardExpired | Error::LastSuperuser => ErrorKind::Rejected,
            Error::CurrencyMismatch { .. }
            | Error::WalletInactive { .. }
            | Error::WalletFrozen { .. }
            | Error::WalletBlocked { .. }
            | Error::WalletClosed { .. }
            | Error::InvalidStatusTransition { .. }
            | Error::WalletNotEmpty { .. }
            | Error::SameWallet
            | Error::InsufficientFunds { .. }
            | Error::LimitExceeded { .. }
            | Error::NotPending { .. }
            | Error::PendingExpired
            | Error::CaptureExceedsHold { .. }
            | Error::NotRefundable { .. }
            | Error::RefundExceedsOriginal { .. }
            | Error::FeeExceedsAmount { .. }
            | Error::MerchantRejected { .. }
            | Error::LinkNotPayable { .. } => ErrorKind::Rejected,
            Error::StorageFull
            | Error::StorageReadOnly
            | Error::StorageBusy
            | Error::Storage { .. }
            | Error::Closed => ErrorKind::Unavailable,
            Error::CurrencyExponentMismatch { .. }
            | Error::StorageCorrupt { .. }
            | Error::SchemaVersion { .. }
            | Error::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// Whether retrying the same call (with the same idempotency key) may succeed.
    ///
    /// True for transient storage conditions; a retry of a money movement with the same key
    /// never applies it twice.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::StorageFull | Error::StorageBusy | Error::Storage { .. }
        )
    }

    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        Error::Internal {
            detail: detail.into(),
        }
    }

    /// Builds a [`Error::StorageCorrupt`] for data read from a store that the library cannot
    /// interpret. Backends use it when a row breaks the schema's rules.
    pub fn corrupt(detail: impl Into<String>) -> Self {
        Error::StorageCorrupt {
            detail: detail.into(),
        }
    }
}

/// Broad classes of [`Error`], for mapping to transport-level statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request itself is malformed (HTTP 400/422).
    InvalidInput,
    /// The object does not exist (HTTP 404).
    NotFound,
    /// The caller could not be authenticated (HTTP 401).
    Unauthenticated,
    /// The caller may not do this (HTTP 403).
    Forbidden,
    /// Too many requests; retry later (HTTP 429).
    Throttled,
    /// The request conflicts with existing state (HTTP 409).
    Conflict,
    /// A business rule rejected the request (HTTP 422).
    Rejected,
    /// Storage is temporarily unable to serve (HTTP 503).
    Unavailable,
    /// A bug or corruption (HTTP 500).
    Internal,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::currency::Currency;
    use crate::ids::WalletId;
    use std::collections::HashSet;

    /// Every variant: its stable code, its class and its message. Codes are an API: a change
    /// here breaks hosts and bindings.
    #[test]
    fn codes_and_messages() {
        let usd = Currency::iso("USD").unwrap();
        let eur = Currency::iso("EUR").unwrap();
        let wallet = WalletNumber::of(WalletId::new(42).unwrap());
        let m = |minor| Money::from_minor(minor, usd);
        let table: Vec<(Error, &str, ErrorKind, &str)> = vec![
            (
                Error::AmountNotPositive,
                "amount_not_positive",
                ErrorKind::InvalidInput,
                "amount must be greater than zero",
            ),
            (
                Error::AmountPrecision {
                    currency: usd.code(),
                    max_decimals: 2,
                },
                "amount_precision",
                ErrorKind::InvalidInput,
                "USD allows at most 2 decimal places",
            ),
            (
                Error::AmountBelowMinimum { minimum: m(1) },
                "amount_below_minimum",
                ErrorKind::InvalidInput,
                "amount is below the minimum of 0.01 USD",
            ),
            (
                Error::AmountAboveMaximum {
                    maximum: m(100_000_000),
                },
                "amount_above_maximum",
                ErrorKind::InvalidInput,
                "amount is above the maximum of 1000000.00 USD",
            ),
            (
                Error::AmountOverflow,
                "amount_overflow",
                ErrorKind::InvalidInput,
                "amount is too large to be represented",
            ),
            (
                Error::InvalidAmount { reason: "empty" },
                "invalid_amount",
                ErrorKind::InvalidInput,
                "not a valid amount: empty",
            ),
            (
                Error::UnknownCurrency { code: "XYZ".into() },
                "unknown_currency",
                ErrorKind::InvalidInput,
                "unknown currency \"XYZ\"",
            ),
            (
                Error::InvalidCurrency { reason: "bad" },
                "invalid_currency",
                ErrorKind::InvalidInput,
                "invalid currency: bad",
            ),
            (
                Error::CurrencyMismatch {
                    expected: usd.code(),
                    found: eur.code(),
                },
                "currency_mismatch",
                ErrorKind::Rejected,
                "currency mismatch: expected USD, found EUR",
            ),
            (
                Error::CurrencyExponentMismatch {
                    code: usd.code(),
                    stored: 2,
                    configured: 3,
                },
                "currency_exponent_mismatch",
                ErrorKind::Internal,
                "currency USD is stored with 2 decimal places but configured with 3",
            ),
            (
                Error::InvalidDescription { reason: "empty" },
                "invalid_description",
                ErrorKind::InvalidInput,
                "invalid description: empty",
            ),
            (
                Error::InvalidMetadata {
                    reason: "must be a JSON object",
                },
                "invalid_metadata",
                ErrorKind::InvalidInput,
                "invalid metadata: must be a JSON object",
            ),
            (
                Error::InvalidIdempotencyKey { reason: "empty" },
                "invalid_idempotency_key",
                ErrorKind::InvalidInput,
                "invalid idempotency key: empty",
            ),
            (
                Error::InvalidWalletNumber,
                "invalid_wallet_number",
                ErrorKind::InvalidInput,
                "invalid wallet number",
            ),
            (
                Error::InvalidReference,
                "invalid_reference",
                ErrorKind::InvalidInput,
                "invalid transaction reference",
            ),
            (
                Error::InvalidId,
                "invalid_id",
                ErrorKind::InvalidInput,
                "invalid identifier",
            ),
            (
                Error::InvalidCursor,
                "invalid_cursor",
                ErrorKind::InvalidInput,
                "invalid cursor",
            ),
            (
                Error::InvalidQuery {
                    reason: "the date range is empty",
                },
                "invalid_query",
                ErrorKind::InvalidInput,
                "invalid query: the date range is empty",
            ),
            (
                Error::InvalidConfig { reason: "x".into() },
                "invalid_config",
                ErrorKind::InvalidInput,
                "invalid configuration: x",
            ),
            (
                Error::InvalidUsername { reason: "r" },
                "invalid_username",
                ErrorKind::InvalidInput,
                "invalid username: r",
            ),
            (
                Error::InvalidEmail { reason: "r" },
                "invalid_email",
                ErrorKind::InvalidInput,
                "invalid e-mail address: r",
            ),
            (
                Error::InvalidPhone { reason: "r" },
                "invalid_phone",
                ErrorKind::InvalidInput,
                "invalid phone number: r",
            ),
            (
                Error::InvalidPersonalData {
                    field: "full name",
                    reason: "r",
                },
                "invalid_personal_data",
                ErrorKind::InvalidInput,
                "invalid full name: r",
            ),
            (
                Error::WeakPassword { reason: "r" },
                "weak_password",
                ErrorKind::InvalidInput,
                "password rejected: r",
            ),
            (
                Error::InvalidPaymentMethod { reason: "r" },
                "invalid_payment_method",
                ErrorKind::InvalidInput,
                "invalid payment method: r",
            ),
            (
                Error::CardNumberRejected,
                "card_number_rejected",
                ErrorKind::InvalidInput,
                "a full card number is not accepted; send the provider's token instead",
            ),
            (
                Error::CardExpired,
                "card_expired",
                ErrorKind::Rejected,
                "the card has expired",
            ),
            (
                Error::InvalidCredentials,
                "invalid_credentials",
                ErrorKind::Unauthenticated,
                "invalid username or password",
            ),
            (
                Error::InvalidToken { reason: "expired" },
                "invalid_token",
                ErrorKind::Unauthenticated,
                "invalid session token: expired",
            ),
            (
                Error::UserInactive,
                "user_inactive",
                ErrorKind::Unauthenticated,
                "user is inactive",
            ),
            (
                Error::RateLimited {
                    retry_after_ms: 1500,
                },
                "rate_limited",
                ErrorKind::Throttled,
                "too many attempts; retry in 1500 ms",
            ),
            (
                Error::UserNotFound,
                "user_not_found",
                ErrorKind::NotFound,
                "user not found",
            ),
            (
                Error::UserExists { field: "email" },
                "user_exists",
                ErrorKind::Conflict,
                "email is already taken",
            ),
            (
                Error::AlreadyBootstrapped,
                "already_bootstrapped",
                ErrorKind::Conflict,
                "the system is already bootstrapped",
            ),
            (
                Error::LastSuperuser,
                "last_superuser",
                ErrorKind::Rejected,
                "the last active superuser cannot be demoted, deactivated or deleted",
            ),
            (
                Error::KycRequired,
                "kyc_required",
                ErrorKind::Forbidden,
                "identity verification (KYC) is required for this operation",
            ),
            (
                Error::KycAlreadyDecided,
                "kyc_already_decided",
                ErrorKind::Conflict,
                "KYC status can change only from PENDING",
            ),
            (
                Error::PaymentMethodNotFound,
                "payment_method_not_found",
                ErrorKind::NotFound,
                "payment method not found",
            ),
            (
                Error::WalletNotFound,
                "wallet_not_found",
                ErrorKind::NotFound,
                "wallet not found",
            ),
            (
                Error::TransactionNotFound,
                "transaction_not_found",
                ErrorKind::NotFound,
                "transaction not found",
            ),
            (
                Error::WalletExists { existing: wallet },
                "wallet_exists",
                ErrorKind::Conflict,
                "a wallet of this kind and currency already exists: WLT-000000004269",
            ),
            (
                Error::WalletInactive { wallet },
                "wallet_inactive",
                ErrorKind::Rejected,
                "wallet WLT-000000004269 is inactive",
            ),
            (
                Error::WalletFrozen { wallet },
                "wallet_frozen",
                ErrorKind::Rejected,
                "wallet WLT-000000004269 is frozen",
            ),
            (
                Error::WalletBlocked { wallet },
                "wallet_blocked",
                ErrorKind::Rejected,
                "wallet WLT-000000004269 is blocked",
            ),
            (
                Error::WalletClosed { wallet },
                "wallet_closed",
                ErrorKind::Rejected,
                "wallet WLT-000000004269 is closed",
            ),
            (
                Error::InvalidStatusTransition {
                    from: WalletStatus::Closed,
                    to: WalletStatus::Active,
                },
                "invalid_status_transition",
                ErrorKind::Rejected,
                "cannot change wallet status from CLOSED to ACTIVE",
            ),
            (
                Error::WalletNotEmpty { balance: m(1250) },
                "wallet_not_empty",
                ErrorKind::Rejected,
                "wallet still holds 12.50 USD",
            ),
            (
                Error::SameWallet,
                "same_wallet",
                ErrorKind::Rejected,
                "cannot transfer a wallet's money to itself",
            ),
            (
                Error::InsufficientFunds {
                    available: m(500),
                    requested: m(1000),
                },
                "insufficient_funds",
                ErrorKind::Rejected,
                "insufficient funds: 5.00 USD available, 10.00 USD requested",
            ),
            (
                Error::IdempotencyConflict,
                "idempotency_conflict",
                ErrorKind::Conflict,
                "idempotency key already used for a different request",
            ),
            (
                Error::Forbidden,
                "forbidden",
                ErrorKind::Forbidden,
                "not allowed",
            ),
            (
                Error::StorageFull,
                "storage_full",
                ErrorKind::Unavailable,
                "storage is full",
            ),
            (
                Error::StorageReadOnly,
                "storage_read_only",
                ErrorKind::Unavailable,
                "storage is read-only",
            ),
            (
                Error::StorageBusy,
                "storage_busy",
                ErrorKind::Unavailable,
                "storage is busy",
            ),
            (
                Error::StorageCorrupt { detail: "d".into() },
                "storage_corrupt",
                ErrorKind::Internal,
                "storage is corrupt: d",
            ),
            (
                Error::Storage {
                    detail: "disk I/O error".into(),
                },
                "storage_error",
                ErrorKind::Unavailable,
                "storage error: disk I/O error",
            ),
            (
                Error::SchemaVersion {
                    found: 9,
                    supported: 1,
                },
                "schema_version",
                ErrorKind::Internal,
                "database schema version 9 is not supported (this code uses 1)",
            ),
            (
                Error::Closed,
                "store_closed",
                ErrorKind::Unavailable,
                "store is closed",
            ),
            (
                Error::ImportInvalid {
                    line: 7,
                    reason: "checksum mismatch".into(),
                },
                "import_invalid",
                ErrorKind::InvalidInput,
                "invalid ledger file at line 7: checksum mismatch",
            ),
            (
                Error::StoreNotEmpty,
                "store_not_empty",
                ErrorKind::Conflict,
                "the store is not empty: import needs an empty store",
            ),
            (
                Error::Internal {
                    detail: "bug".into(),
                },
                "internal",
                ErrorKind::Internal,
                "internal error: bug",
            ),
        ];
        let mut codes = HashSet::new();
        for (error, code, kind, message) in &table {
            assert_eq!(error.code(), *code);
            assert_eq!(error.kind(), *kind, "{code}");
            assert_eq!(error.to_string(), *message, "{code}");
            assert!(codes.insert(*code), "duplicate code {code}");
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
        }
        assert!(
            Error::StorageBusy.is_retryable()
                && !Error::InsufficientFunds {
                    available: m(0),
                    requested: m(1)
                }
                .is_retryable()
        );
    }
}
