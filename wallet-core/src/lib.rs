#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod actor;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod calendar;
pub mod command;
pub mod config;
pub mod csv;
pub mod currency;
pub mod decide;
pub mod error;
pub mod fees;
mod hashing;
pub mod health;
pub mod history;
pub mod identity;
pub mod ids;
mod iso4217;
pub mod ledger;
pub mod limits;
pub mod links;
pub mod money;
pub mod notify;
pub mod observe;
pub mod payment_method;
pub mod payments;
pub mod portable;
pub mod reports;
pub mod store;
pub mod stored;
pub mod text;
pub mod time;
pub mod transaction;
pub mod users;
pub mod verify;
pub mod wallet;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use actor::{Actor, Role};
pub use auth::{JwtSecret, LoginBackoff, Password, RateLimiter, SessionToken};
pub use config::{AmountBounds, Config};
pub use currency::{Currency, CurrencyCode, CurrencyRegistry};
pub use error::{Error, ErrorKind, Result};
pub use health::{BackendHealth, Health};
pub use history::{HistoryCursor, HistoryLine, HistoryPage, HistoryQuery, HistoryTotals};
pub use identity::{KycPolicy, KycStatus, User};
pub use ids::{TransactionId, TransactionRef, UserId, WalletId, WalletNumber, WalletRef};
pub use ledger::{
    DepositRequest, Ledger, MoveDetails, OpenWalletRequest, TransferRequest, WithdrawRequest,
};
pub use money::{Money, parse_amount};
pub use payment_method::{NewPaymentMethod, PaymentMethod, PaymentMethodId};
pub use store::Store;
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use transaction::{Leg, Receipt, Transaction, TransactionKind, TransactionStatus};
pub use users::{AuthConfig, ProfileUpdate, RegisterRequest, Session};
pub use verify::VerifyReport;
pub use wallet::{Wallet, WalletKind, WalletStatus};

/// Re-exported so hosts use the same `Decimal` type as the library.
pub use rust_decimal::Decimal;
