//! Payment methods: kinds, statuses, masked display data and the validation that keeps card
//! numbers out of the store.
//!
//! The wallet never handles card numbers (PANs). A host tokenizes the card with its payment
//! provider and sends the provider's opaque token plus what a person needs to recognise the
//! method in a list: brand, last four digits, expiry, bank name, a UPI handle or a mobile-wallet
//! account. [`NewPaymentMethod::validate`] turns that input into a [`ValidPaymentMethod`], which
//! holds only masked display data, and rejects any input in which a full card number appears,
//! whatever the field ([`contains_card_number`]).
//!
//! Everything here is pure: the current time is passed in as `now`.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::time::Timestamp;
use crate::wallet::code_enum;

/// Longest provider name, in characters.
pub const PROVIDER_NAME_CHARS_MAX: usize = 64;
/// Longest provider token, in bytes (the token is ASCII).
pub const PROVIDER_TOKEN_LEN_MAX: usize = 512;
/// Longest free-text field (holder, nickname, bank name, UPI handle, account, routing code),
/// in characters.
pub const TEXT_CHARS_MAX: usize = 100;
/// Shortest mobile-wallet account: anything shorter would be shown almost in full after
/// masking all but its last four characters.
pub const MOBILE_ACCOUNT_CHARS_MIN: usize = 5;
/// Fewest digits [`contains_card_number`] treats as a card number (the shortest PANs in use).
pub const CARD_NUMBER_DIGITS_MIN: usize = 13;
/// Most digits [`contains_card_number`] treats as a card number (ISO/IEC 7812 maximum).
pub const CARD_NUMBER_DIGITS_MAX: usize = 19;

fn invalid<T>(reason: &'static str) -> Result<T> {
    Err(Error::InvalidPaymentMethod { reason })
}

// ----- identifiers and codes ---------------------------------------------------------------------

/// Identifies a stored payment method. Positive, assigned by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct PaymentMethodId(i64);

impl PaymentMethodId {
    /// Wraps a raw id; it must be positive.
    pub fn new(raw: i64) -> Result<Self> {
        if raw > 0 {
            Ok(PaymentMethodId(raw))
        } else {
            Err(Error::InvalidId)
        }
    }

    /// The raw integer, as stored.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for PaymentMethodId {
    type Error = Error;
    fn try_from(raw: i64) -> Result<Self> {
        PaymentMethodId::new(raw)
    }
}

impl From<PaymentMethodId> for i64 {
    fn from(id: PaymentMethodId) -> i64 {
        id.0
    }
}

impl fmt::Display for PaymentMethodId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

code_enum!(
    /// What kind of instrument a payment method is. It decides which display data it carries.
    PaymentMethodKind {
        /// A credit card ([`MethodDisplay::Card`]).
        CreditCard = ("CREDIT_CARD", 1),
        /// A debit card ([`MethodDisplay::Card`]).
        DebitCard = ("DEBIT_CARD", 2),
        /// A bank account ([`MethodDisplay::BankAccount`]).
        BankAccount = ("BANK_ACCOUNT", 3),
        /// A UPI virtual payment address ([`MethodDisplay::Upi`]).
        Upi = ("UPI", 4),
        /// A mobile wallet account ([`MethodDisplay::MobileWallet`]).
        MobileWallet = ("MOBILE_WALLET", 5),
    }
);

impl PaymentMethodKind {
    /// Whether this kind is a card.
    pub fn is_card(self) -> bool {
        matches!(
            self,
            PaymentMethodKind::CreditCard | PaymentMethodKind::DebitCard
        )
    }
}

code_enum!(
    /// Lifecycle status of a payment method. Only ACTIVE methods can be charged; see
    /// [`PaymentMethodStatus::can_become`] for the allowed changes.
    PaymentMethodStatus {
        /// Usable.
        Active = ("ACTIVE", 1),
        /// Switched off by its owner; the owner can switch it back on.
        Inactive = ("INACTIVE", 2),
        /// The card's expiry date has passed. Only a new expiry date makes it usable again.
        Expired = ("EXPIRED", 3),
        /// Stopped by an administrator (fraud, compliance). Only an administrator lifts it.
        Blocked = ("BLOCKED", 4),
    }
);

impl PaymentMethodStatus {
    /// Whether the lifecycle allows going from `self` to `to`. Staying put is allowed (a no-op).
    ///
    /// | from \ to | ACTIVE      | INACTIVE    | EXPIRED | BLOCKED     |
    /// |-----------|-------------|-------------|---------|-------------|
    /// | ACTIVE    | =           | yes         | yes     | yes (admin) |
    /// | INACTIVE  | yes         | =           | yes     | yes (admin) |
    /// | EXPIRED   | **no**      | yes         | =       | yes (admin) |
    /// | BLOCKED   | yes (admin) | yes (admin) | **no**  | =           |
    ///
    /// * ACTIVE and INACTIVE are the owner's switch.
    /// * EXPIRED never becomes ACTIVE through a status change: the card's expiry must be
    ///   replaced by a future one, and the operation that does so sets the status itself. An
    ///   owner may still switch an expired card off.
    /// * BLOCKED is entered and left only by an administrator ([`Self::needs_admin`]); this
    ///   function answers for the lifecycle, the caller checks who asks. Leaving BLOCKED for
    ///   EXPIRED is refused: unblocking goes to ACTIVE or INACTIVE, and an unblocked card
    ///   past its expiry still shows as expired through [`PaymentMethod::effective_status`].
    pub fn can_become(self, to: PaymentMethodStatus) -> bool {
        use PaymentMethodStatus::{Active, Blocked, Expired};
        match (self, to) {
            _ if self == to => true,
            (Expired, Active) | (Blocked, Expired) => false,
            _ => true,
        }
    }

    /// Whether the change from `self` to `to` is reserved to administrators: every change
    /// into or out of BLOCKED.
    pub fn needs_admin(self, to: PaymentMethodStatus) -> bool {
        self != to && (self == PaymentMethodStatus::Blocked || to == PaymentMethodStatus::Blocked)
    }
}

code_enum!(
    /// The card network, as shown to the owner.
    CardBrand {
        /// Visa.
        Visa = ("VISA", 1),
        /// Mastercard.
        Mastercard = ("MASTERCARD", 2),
        /// American Express.
        Amex = ("AMEX", 3),
        /// Discover.
        Discover = ("DISCOVER", 4),
        /// RuPay.
        Rupay = ("RUPAY", 5),
        /// Any other network.
        Other = ("OTHER", 6),
    }
);

// ----- secrets -----------------------------------------------------------------------------------

/// The payment provider's opaque token for the instrument: 1 to 512 visible ASCII characters,
/// never containing a card number.
///
/// It is a secret: `Debug` prints `ProviderToken(***)`, `Display` prints `***`, it does not
/// implement `Serialize`, and its memory is zeroed when dropped. [`ProviderToken::expose`] is
/// the one way to read it (to store it, or to charge through the provider).
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderToken(String);

impl ProviderToken {
    /// Validates a token. A token containing a card number is refused with
    /// [`Error::CardNumberRejected`].
    pub fn new(token: impl Into<String>) -> Result<Self> {
        // Wrapped first, so that a refused token is zeroed on drop as well.
        let token = ProviderToken(token.into());
        if contains_card_number(&token.0) {
            return Err(Error::CardNumberRejected);
        }
        if token.0.is_empty() {
            return invalid("provider token is empty");
        }
        if token.0.len() > PROVIDER_TOKEN_LEN_MAX {
            return invalid("provider token is longer than 512 characters");
        }
        if !token.0.bytes().all(|b| b.is_ascii_graphic()) {
            return invalid("provider token allows only visible ASCII characters");
        }
        Ok(token)
    }

    /// The token itself. Keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for ProviderToken {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for ProviderToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProviderToken(***)")
    }
}

impl fmt::Display for ProviderToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for ProviderToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        ProviderToken::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Debug-prints text unless it contains a card number, which is replaced by a marker. Used by
/// the `Debug` of raw input, so logging a rejected request cannot write the number to a log.
struct SafeText<'a>(&'a str);

impl fmt::Debug for SafeText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if contains_card_number(self.0) {
            f.write_str("<redacted: card number>")
        } else {
            fmt::Debug::fmt(self.0, f)
        }
    }
}

// ----- card numbers ------------------------------------------------------------------------------

/// Whether `digits` (values 0 to 9, most significant first) pass the Luhn check (ISO/IEC
/// 7812-1 annex B), the check digit scheme of card numbers. An empty slice, or one holding a
/// value above 9, is not valid.
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum: u8 = 0;
    for (i, &d) in digits.iter().rev().enumerate() {
        if d > 9 {
            return false;
        }
        sum = (sum + if i % 2 == 1 { luhn_double(d) } else { d }) % 10;
    }
    sum == 0
}

/// A digit doubled, with the digits of the product added (0→0, 5→1, 9→9).
fn luhn_double(d: u8) -> u8 {
    let twice = d * 2;
    if twice > 9 { twice - 9 } else { twice }
}

/// Whether `text` contains what looks like a card number: a run of 13 to 19 ASCII digits that
/// passes the Luhn check.
///
/// * Digits of a run may be separated by a single space or a single dash, as people write
///   card numbers (`4242 4242 4242 4242`, `4242-4242-4242-4242`, `3782 822463 10005`); two
///   separators in a row, or any other character, end the run.
/// * A run of 13 to 19 digits is checked as a whole, so a 16-digit number failing the Luhn
///   check is not reported. A run longer than 19 digits is checked at every window of 13 to
///   19 digits, to find a card number embedded in a longer number. Such runs are reported
///   most of the time (each of their dozens of windows passes with probability 1/10), which
///   is acceptable for the fields this module scans: none of them needs 20-digit numbers.
/// * Only ASCII digits count. A number written with other decimal digits (full-width `４`,
///   Devanagari `४`, …) is not detected.
///
/// Time is linear: at most 19 steps per digit. It never panics.
pub fn contains_card_number(text: &str) -> bool {
    let mut run: Vec<u8> = Vec::new();
    // Whether a single separator follows the last digit of the run.
    let mut separated = false;
    for b in text.bytes() {
        if b.is_ascii_digit() {
            run.push(b - b'0');
            separated = false;
        } else if (b == b' ' || b == b'-') && !run.is_empty() && !separated {
            separated = true;
        } else {
            if run_has_card_number(&run) {
                return true;
            }
            run.clear();
            separated = false;
        }
    }
    run_has_card_number(&run)
}

/// Whether a maximal run of digits holds a card number (see [`contains_card_number`]).
fn run_has_card_number(run: &[u8]) -> bool {
    match run.len() {
        n if n < CARD_NUMBER_DIGITS_MIN => false,
        n if n <= CARD_NUMBER_DIGITS_MAX => luhn_valid(run),
        _ => any_window_luhn_valid(run),
    }
}

/// Whether any window of 13 to 19 digits of `run` passes the Luhn check, in O(19·n).
///
/// In a window ending at index `end`, the digits doubled are those whose index has the other
/// parity than `end`. So for each start, two running sums are kept while the window grows to
/// the right, one doubling the even indices and one doubling the odd ones, and each window
/// length is checked in constant time.
fn any_window_luhn_valid(run: &[u8]) -> bool {
    for start in 0..run.len() {
        // Mod-10 sums with the digits at even (resp. odd) indices doubled.
        let (mut even_doubled, mut odd_doubled) = (0u8, 0u8);
        for (end, &d) in run
            .iter()
            .enumerate()
            .skip(start)
            .take(CARD_NUMBER_DIGITS_MAX)
        {
            let (plain, doubled) = (d % 10, luhn_double(d % 10));
            if end % 2 == 0 {
                even_doubled = (even_doubled + doubled) % 10;
                odd_doubled = (odd_doubled + plain) % 10;
            } else {
                even_doubled = (even_doubled + plain) % 10;
                odd_doubled = (odd_doubled + doubled) % 10;
            }
            let sum = if end % 2 == 0 {
                odd_doubled
            } else {
                even_doubled
            };
            if end + 1 - start >= CARD_NUMBER_DIGITS_MIN && sum == 0 {
                return true;
            }
        }
    }
    false
}

// ----- expiry ------------------------------------------------------------------------------------

/// A card's expiry month, as printed on the card (`12/30` is December 2030).
///
/// The card is valid through the last day of that month in UTC and expired from the first
/// instant of the following month ([`CardExpiry::expires_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawExpiry")]
pub struct CardExpiry {
    // Field order makes the derived ordering chronological.
    year: u16,
    month: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpiry {
    month: u8,
    year: u16,
}

impl TryFrom<RawExpiry> for CardExpiry {
    type Error = Error;
    fn try_from(raw: RawExpiry) -> Result<Self> {
        CardExpiry::new(raw.month, raw.year)
    }
}

impl CardExpiry {
    /// Validates an expiry: month 1 to 12, four-digit year 2000 to 2099.
    pub fn new(month: u8, year: u16) -> Result<Self> {
        if !(1..=12).contains(&month) {
            return invalid("expiry month must be 1 to 12");
        }
        if !(2000..=2099).contains(&year) {
            return invalid("expiry year must be 2000 to 2099");
        }
        Ok(CardExpiry { year, month })
    }

    /// The month, 1 to 12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// The four-digit year.
    pub fn year(self) -> u16 {
        self.year
    }

    /// The first instant at which the card counts as expired: midnight UTC starting the month
    /// after the expiry month.
    pub fn expires_at(self) -> Timestamp {
        let (year, month) = if self.month == 12 {
            (i64::from(self.year) + 1, 1)
        } else {
            (i64::from(self.year), i64::from(self.month) + 1)
        };
        const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;
        Timestamp::from_micros(days_from_epoch(year, month) * MICROS_PER_DAY)
    }

    /// Whether the card has expired at `now`.
    pub fn is_expired(self, now: Timestamp) -> bool {
        now >= self.expires_at()
    }
}

impl fmt::Display for CardExpiry {
    /// `MM/YYYY`, e.g. `03/2030`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}/{}", self.month, self.year)
    }
}

/// Days from 1970-01-01 to the first day of `month` (1 to 12) of `year` (0 or later), in the
/// proleptic Gregorian calendar.
fn days_from_epoch(year: i64, month: i64) -> i64 {
    // Count years from March, so that February (and its leap day) ends the year: then the
    // month lengths from March on repeat 31, 30, 31, 30, 31 and a closed formula fits them.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    // Days from 1 March of year 0 to 1 March of year y, then to the 1st of month m.
    let days_to_march = 365 * y + y / 4 - y / 100 + y / 400;
    let days_into_year = (153 * m + 2) / 5;
    // 719 468 days separate 0000-03-01 from 1970-01-01.
    days_to_march + days_into_year - 719_468
}

// ----- text rules --------------------------------------------------------------------------------

/// The error reasons of one free-text field.
struct TextField {
    empty: &'static str,
    too_long: &'static str,
    control: &'static str,
}

macro_rules! text_field {
    ($name:literal) => {
        TextField {
            empty: concat!($name, " is empty"),
            too_long: concat!($name, " is longer than 100 characters"),
            control: concat!(
                $name,
                " contains control or bidirectional control characters"
            ),
        }
    };
}

const HOLDER: TextField = text_field!("card holder name");
const NICKNAME: TextField = text_field!("nickname");
const BANK_NAME: TextField = text_field!("bank name");
const ROUTING: TextField = text_field!("IFSC or routing code");
const UPI_HANDLE: TextField = text_field!("UPI handle");
const MOBILE_ACCOUNT: TextField = text_field!("mobile wallet account");

/// Characters that make text display differently from its logical order ("Trojan Source").
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Validates free text: 1 to 100 characters, no control or bidirectional control characters.
fn check_text(text: &str, field: &TextField) -> Result<()> {
    if text.is_empty() {
        return invalid(field.empty);
    }
    // Byte length bounds the character count from above: cheap rejection of huge input.
    if text.len() > TEXT_CHARS_MAX * 4 || text.chars().count() > TEXT_CHARS_MAX {
        return invalid(field.too_long);
    }
    if text.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return invalid(field.control);
    }
    Ok(())
}

/// Validates optional free text; an empty string counts as none.
fn optional_text(text: Option<String>, field: &TextField) -> Result<Option<String>> {
    match text {
        None => Ok(None),
        Some(t) if t.is_empty() => Ok(None),
        Some(t) => check_text(&t, field).map(|()| Some(t)),
    }
}

/// Validates a provider name: 1 to 64 ASCII letters, digits, spaces, `-`, `.` and `_`, not
/// starting or ending with a space.
fn check_provider(name: &str) -> Result<()> {
    if name.is_empty() {
        return invalid("provider name is empty");
    }
    if name.len() > PROVIDER_NAME_CHARS_MAX {
        return invalid("provider name is longer than 64 characters");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'-' | b'.' | b'_');
    if !name.bytes().all(allowed) {
        return invalid("provider name allows only letters, digits, spaces and - . _");
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return invalid("provider name starts or ends with a space");
    }
    Ok(())
}

/// Validates a last-four field: exactly four ASCII digits.
fn check_last4(last4: &str, reason: &'static str) -> Result<()> {
    if last4.len() == 4 && last4.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        invalid(reason)
    }
}

/// Validates a UPI handle (`name@bank`) and masks it: the first two characters of the name
/// (fewer for a name of one or two characters, so that at least one is hidden), `***`, then
/// `@bank` in full.
fn mask_upi_handle(handle: &str) -> Result<String> {
    check_text(handle, &UPI_HANDLE)?;
    let Some((name, bank)) = handle.split_once('@') else {
        return invalid("UPI handle must look like name@bank");
    };
    if name.is_empty() || bank.is_empty() || bank.contains('@') {
        return invalid("UPI handle must look like name@bank");
    }
    let name_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    let bank_ok = bank
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    if !name_ok || !bank_ok {
        return invalid("UPI handle allows only letters, digits and . - _");
    }
    let shown = name.len().saturating_sub(1).min(2);
    let prefix: String = name.chars().take(shown).collect();
    Ok(format!("{prefix}***@{bank}"))
}

/// Validates a mobile-wallet account (a phone number or an e-mail address) and masks every
/// character but the last four with `*`.
fn mask_mobile_account(account: &str) -> Result<String> {
    check_text(account, &MOBILE_ACCOUNT)?;
    let chars = account.chars().count();
    if chars < MOBILE_ACCOUNT_CHARS_MIN {
        return invalid("mobile wallet account is shorter than 5 characters");
    }
    let hidden = chars - 4;
    Ok(account
        .chars()
        .enumerate()
        .map(|(i, c)| if i < hidden { '*' } else { c })
        .collect())
}

// ----- input -------------------------------------------------------------------------------------

/// What the owner sees of a new payment method, as the host sends it (unvalidated).
///
/// In JSON the variant is the `type` field: `CARD`, `BANK_ACCOUNT`, `UPI` or `MOBILE_WALLET`.
/// `Debug` replaces any field holding a card number with a marker.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum MethodDisplay {
    /// A credit or debit card.
    Card {
        /// The card network.
        brand: CardBrand,
        /// The last four digits of the card number.
        last4: String,
        /// The expiry month printed on the card.
        expiry: CardExpiry,
        /// The name printed on the card, if the owner gave it.
        #[serde(default)]
        holder: Option<String>,
    },
    /// A bank account.
    BankAccount {
        /// The bank's name, e.g. `HDFC Bank`.
        bank_name: String,
        /// The last four digits of the account number.
        account_last4: String,
        /// The branch's IFSC code or the bank's routing number, if any.
        #[serde(default)]
        ifsc_or_routing: Option<String>,
    },
    /// A UPI virtual payment address.
    Upi {
        /// The handle, `name@bank`; stored masked.
        handle: String,
    },
    /// A mobile wallet.
    MobileWallet {
        /// The account at the wallet provider, a phone number or an e-mail address; stored
        /// masked.
        provider_account: String,
    },
}

impl fmt::Debug for MethodDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MethodDisplay::Card {
                brand,
                last4,
                expiry,
                holder,
            } => f
                .debug_struct("Card")
                .field("brand", brand)
                .field("last4", &SafeText(last4))
                .field("expiry", expiry)
                .field("holder", &holder.as_deref().map(SafeText))
                .finish(),
            MethodDisplay::BankAccount {
                bank_name,
                account_last4,
                ifsc_or_routing,
            } => f
                .debug_struct("BankAccount")
                .field("bank_name", &SafeText(bank_name))
                .field("account_last4", &SafeText(account_last4))
                .field("ifsc_or_routing", &ifsc_or_routing.as_deref().map(SafeText))
                .finish(),
            MethodDisplay::Upi { handle } => f
                .debug_struct("Upi")
                .field("handle", &SafeText(handle))
                .finish(),
            MethodDisplay::MobileWallet { provider_account } => f
                .debug_struct("MobileWallet")
                .field("provider_account", &SafeText(provider_account))
                .finish(),
        }
    }
}

impl MethodDisplay {
    /// Every string the owner typed, for the card-number scan.
    fn texts(&self) -> Vec<&str> {
        match self {
            MethodDisplay::Card { last4, holder, .. } => {
                let mut texts = vec![last4.as_str()];
                texts.extend(holder.as_deref());
                texts
            }
            MethodDisplay::BankAccount {
                bank_name,
                account_last4,
                ifsc_or_routing,
            } => {
                let mut texts = vec![bank_name.as_str(), account_last4.as_str()];
                texts.extend(ifsc_or_routing.as_deref());
                texts
            }
            MethodDisplay::Upi { handle } => vec![handle.as_str()],
            MethodDisplay::MobileWallet { provider_account } => vec![provider_account.as_str()],
        }
    }

    /// Whether this display data belongs to a method of `kind`.
    fn matches(&self, kind: PaymentMethodKind) -> bool {
        match self {
            MethodDisplay::Card { .. } => kind.is_card(),
            MethodDisplay::BankAccount { .. } => kind == PaymentMethodKind::BankAccount,
            MethodDisplay::Upi { .. } => kind == PaymentMethodKind::Upi,
            MethodDisplay::MobileWallet { .. } => kind == PaymentMethodKind::MobileWallet,
        }
    }

    /// Validates the shape of every field and masks what must not be stored in full.
    fn into_valid(self) -> Result<ValidDisplay> {
        Ok(match self {
            MethodDisplay::Card {
                brand,
                last4,
                expiry,
                holder,
            } => {
                check_last4(&last4, "last4 must be exactly 4 digits")?;
                ValidDisplay::Card {
                    brand,
                    last4,
                    expiry,
                    holder: optional_text(holder, &HOLDER)?,
                }
            }
            MethodDisplay::BankAccount {
                bank_name,
                account_last4,
                ifsc_or_routing,
            } => {
                check_text(&bank_name, &BANK_NAME)?;
                check_last4(&account_last4, "account_last4 must be exactly 4 digits")?;
                ValidDisplay::BankAccount {
                    bank_name,
                    account_last4,
                    ifsc_or_routing: optional_text(ifsc_or_routing, &ROUTING)?,
                }
            }
            MethodDisplay::Upi { handle } => ValidDisplay::Upi {
                masked_handle: mask_upi_handle(&handle)?,
            },
            MethodDisplay::MobileWallet { provider_account } => ValidDisplay::MobileWallet {
                masked_account: mask_mobile_account(&provider_account)?,
            },
        })
    }
}

/// A payment method as a host sends it to be saved (unvalidated). See
/// [`NewPaymentMethod::validate`].
///
/// `Debug` never shows the provider token, and replaces any field holding a card number with a
/// marker. Unknown JSON fields are refused, so a stray `card_number` field is an error rather
/// than silently ignored.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPaymentMethod {
    /// The kind of instrument; must agree with `display`.
    pub kind: PaymentMethodKind,
    /// The payment provider's name, e.g. `Stripe`: 1 to 64 ASCII letters, digits, spaces,
    /// `-`, `.` and `_`.
    pub provider: String,
    /// The provider's token for the instrument (see [`ProviderToken`]). Never a card number.
    pub provider_token: String,
    /// What the owner sees of the method.
    pub display: MethodDisplay,
    /// A name the owner chose, e.g. `Travel card`.
    #[serde(default)]
    pub nickname: Option<String>,
    /// Whether to make this the owner's default method.
    #[serde(default)]
    pub make_default: bool,
}

impl fmt::Debug for NewPaymentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewPaymentMethod")
            .field("kind", &self.kind)
            .field("provider", &SafeText(&self.provider))
            .field("provider_token", &format_args!("***"))
            .field("display", &self.display)
            .field("nickname", &self.nickname.as_deref().map(SafeText))
            .field("make_default", &self.make_default)
            .finish()
    }
}

impl NewPaymentMethod {
    /// Validates the input at time `now`.
    ///
    /// In order:
    /// 1. every string (provider, token, last four digits, holder, nickname, bank name,
    ///    routing code, UPI handle, account) is scanned with [`contains_card_number`]; a hit
    ///    is [`Error::CardNumberRejected`], which does not repeat the number;
    /// 2. `kind` must agree with the display variant (cards for CREDIT_CARD and DEBIT_CARD,
    ///    and so on), else [`Error::InvalidPaymentMethod`];
    /// 3. the provider, token and display fields must be well-formed
    ///    ([`Error::InvalidPaymentMethod`]); optional text given as an empty string counts as
    ///    absent;
    /// 4. a card must not have expired at `now` ([`Error::CardExpired`]).
    pub fn validate(self, now: Timestamp) -> Result<ValidPaymentMethod> {
        let scanned = [self.provider.as_str(), self.provider_token.as_str()]
            .into_iter()
            .chain(self.display.texts())
            .chain(self.nickname.as_deref());
        for text in scanned {
            if contains_card_number(text) {
                return Err(Error::CardNumberRejected);
            }
        }
        if !self.display.matches(self.kind) {
            return invalid("kind does not match the display data");
        }
        check_provider(&self.provider)?;
        let token = ProviderToken::new(self.provider_token)?;
        let display = self.display.into_valid()?;
        let nickname = optional_text(self.nickname, &NICKNAME)?;
        if let ValidDisplay::Card { expiry, .. } = &display
            && expiry.is_expired(now)
        {
            return Err(Error::CardExpired);
        }
        Ok(ValidPaymentMethod {
            kind: self.kind,
            provider: self.provider,
            token,
            display,
            nickname,
            make_default: self.make_default,
        })
    }
}

// ----- validated and stored ----------------------------------------------------------------------

/// What the owner sees of a payment method, as stored: only masked data.
///
/// Values come from [`NewPaymentMethod::validate`] or from the store. In JSON the variant is
/// the `type` field, as for [`MethodDisplay`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ValidDisplay {
    /// A credit or debit card.
    Card {
        /// The card network.
        brand: CardBrand,
        /// The last four digits of the card number.
        last4: String,
        /// The expiry month.
        expiry: CardExpiry,
        /// The name on the card, if given.
        holder: Option<String>,
    },
    /// A bank account.
    BankAccount {
        /// The bank's name.
        bank_name: String,
        /// The last four digits of the account number.
        account_last4: String,
        /// The IFSC or routing code, if given.
        ifsc_or_routing: Option<String>,
    },
    /// A UPI address.
    Upi {
        /// The handle masked as `ra***@bank`.
        masked_handle: String,
    },
    /// A mobile wallet.
    MobileWallet {
        /// The account with all but its last four characters replaced by `*`.
        masked_account: String,
    },
}

impl ValidDisplay {
    /// A one-line description for a list of methods, e.g. `VISA •••• 4242 exp 12/2030`,
    /// `HDFC Bank ****1234`, `ra***@okhdfcbank` or `*********3210`.
    pub fn masked(&self) -> String {
        match self {
            ValidDisplay::Card {
                brand,
                last4,
                expiry,
                ..
            } => format!("{brand} •••• {last4} exp {expiry}"),
            ValidDisplay::BankAccount {
                bank_name,
                account_last4,
                ..
            } => format!("{bank_name} ****{account_last4}"),
            ValidDisplay::Upi { masked_handle } => masked_handle.clone(),
            ValidDisplay::MobileWallet { masked_account } => masked_account.clone(),
        }
    }

    /// The card's expiry, for cards.
    pub fn card_expiry(&self) -> Option<CardExpiry> {
        match self {
            ValidDisplay::Card { expiry, .. } => Some(*expiry),
            _ => None,
        }
    }
}

/// A validated new payment method, ready to be stored: nothing in it is a card number, and its
/// display data is masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPaymentMethod {
    kind: PaymentMethodKind,
    provider: String,
    token: ProviderToken,
    display: ValidDisplay,
    nickname: Option<String>,
    make_default: bool,
}

impl ValidPaymentMethod {
    /// The kind of instrument.
    pub fn kind(&self) -> PaymentMethodKind {
        self.kind
    }

    /// The payment provider's name.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The provider's token.
    pub fn token(&self) -> &ProviderToken {
        &self.token
    }

    /// The masked display data.
    pub fn display(&self) -> &ValidDisplay {
        &self.display
    }

    /// The owner's name for the method, if any.
    pub fn nickname(&self) -> Option<&str> {
        self.nickname.as_deref()
    }

    /// Whether the owner asked for it to become their default method.
    pub fn make_default(&self) -> bool {
        self.make_default
    }
}

/// A payment method as stored and read back.
///
/// `Serialize` leaves out the provider token; `Debug` shows it as `***`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentMethod {
    /// Internal id.
    pub id: PaymentMethodId,
    /// The user it belongs to.
    pub owner: UserId,
    /// The kind of instrument.
    pub kind: PaymentMethodKind,
    /// The payment provider's name.
    pub provider: String,
    /// The provider's token.
    #[serde(skip_serializing)]
    pub token: ProviderToken,
    /// The masked display data.
    pub display: ValidDisplay,
    /// The owner's name for the method, if any.
    pub nickname: Option<String>,
    /// Whether it is the owner's default method.
    pub is_default: bool,
    /// Whether the provider has verified it (e.g. by a test charge).
    pub verified: bool,
    /// The stored lifecycle status; see [`PaymentMethod::effective_status`].
    pub status: PaymentMethodStatus,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl PaymentMethod {
    /// The status at `now`: EXPIRED for an ACTIVE card past its expiry, otherwise the stored
    /// status. A card's expiry passes without anything being written, so callers deciding
    /// whether a method can be charged use this rather than [`PaymentMethod::status`].
    pub fn effective_status(&self, now: Timestamp) -> PaymentMethodStatus {
        match self.display.card_expiry() {
            Some(expiry)
                if self.status == PaymentMethodStatus::Active && expiry.is_expired(now) =>
            {
                PaymentMethodStatus::Expired
            }
            _ => self.status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// 2026-11-24T12:00:00Z.
    fn now() -> Timestamp {
        ts("2026-11-24T12:00:00Z")
    }

    fn ts(rfc3339: &str) -> Timestamp {
        Timestamp::from_jiff(rfc3339.parse().unwrap())
    }

    fn digits(s: &str) -> Vec<u8> {
        s.bytes().map(|b| b - b'0').collect()
    }

    fn card(kind: PaymentMethodKind) -> NewPaymentMethod {
        NewPaymentMethod {
            kind,
            provider: "Stripe".into(),
            provider_token: "pm_1Nx7Yz2eZvKYlo2C".into(),
            display: MethodDisplay::Card {
                brand: CardBrand::Visa,
                last4: "4242".into(),
                expiry: CardExpiry::new(12, 2030).unwrap(),
                holder: Some("Asha Rao".into()),
            },
            nickname: Some("Travel card".into()),
            make_default: true,
        }
    }

    fn bank() -> NewPaymentMethod {
        NewPaymentMethod {
            kind: PaymentMethodKind::BankAccount,
            provider: "Razorpay".into(),
            provider_token: "token_Hh3kx9".into(),
            display: MethodDisplay::BankAccount {
                bank_name: "HDFC Bank".into(),
                account_last4: "1234".into(),
                ifsc_or_routing: Some("HDFC0001234".into()),
            },
            nickname: None,
            make_default: false,
        }
    }

    fn upi(handle: &str) -> NewPaymentMethod {
        NewPaymentMethod {
            kind: PaymentMethodKind::Upi,
            provider: "NPCI".into(),
            provider_token: "vpa_tok_81".into(),
            display: MethodDisplay::Upi {
                handle: handle.into(),
            },
            nickname: None,
            make_default: false,
        }
    }

    fn mobile(account: &str) -> NewPaymentMethod {
        NewPaymentMethod {
            kind: PaymentMethodKind::MobileWallet,
            provider: "Paytm".into(),
            provider_token: "mw.tok-77".into(),
            display: MethodDisplay::MobileWallet {
                provider_account: account.into(),
            },
            nickname: Some("Paytm".into()),
            make_default: false,
        }
    }

    fn reason(err: Error) -> &'static str {
        match err {
            Error::InvalidPaymentMethod { reason } => reason,
            other => panic!("expected InvalidPaymentMethod, got {other:?}"),
        }
    }

    fn stored(display: ValidDisplay, status: PaymentMethodStatus) -> PaymentMethod {
        PaymentMethod {
            id: PaymentMethodId::new(7).unwrap(),
            owner: UserId::new(3).unwrap(),
            kind: PaymentMethodKind::CreditCard,
            provider: "Stripe".into(),
            token: ProviderToken::new("pm_secret_123").unwrap(),
            display,
            nickname: None,
            is_default: true,
            verified: false,
            status,
            created_at: now(),
            updated_at: now(),
        }
    }

    // ----- Luhn and card-number detection ------------------------------------------------------

    const VALID_PANS: [&str; 11] = [
        "4111111111111111",
        "4242424242424242",
        "378282246310005",
        "371449635398431",
        "6011111111111117",
        "5555555555554444",
        "5105105105105100",
        "4012888888881881",
        "3530111333300000",
        "30569309025904",
        "4222222222222",
    ];

    const INVALID_PANS: [&str; 6] = [
        "4111111111111112",
        "1234567812345678",
        "378282246310006",
        "1234567890123456",
        "6011111111111118",
        "6521111111111117",
    ];

    #[test]
    fn luhn_table() {
        for pan in VALID_PANS {
            assert!(luhn_valid(&digits(pan)), "{pan}");
        }
        for pan in INVALID_PANS {
            assert!(!luhn_valid(&digits(pan)), "{pan}");
        }
        assert!(luhn_valid(&[0]));
        assert!(luhn_valid(&[1, 8]));
        assert!(luhn_valid(&[5, 9]), "9 doubled is 18 → 1 + 8");
        assert!(!luhn_valid(&[]), "empty");
        assert!(!luhn_valid(&[1, 0]));
        assert!(!luhn_valid(&[10, 0]), "values above 9 are not digits");
        assert!(!luhn_valid(&[255; 16]));
    }

    #[test]
    fn card_numbers_are_found_as_people_write_them() {
        for pan in VALID_PANS {
            assert!(contains_card_number(pan), "{pan}");
            let grouped = |sep: &str| {
                pan.as_bytes()
                    .chunks(4)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect::<Vec<_>>()
                    .join(sep)
            };
            assert!(contains_card_number(&grouped(" ")), "{}", grouped(" "));
            assert!(contains_card_number(&grouped("-")), "{}", grouped("-"));
        }
        for text in [
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "4111 1111-1111 1111",
            "3782 822463 10005",
            "pay with 4111111111111111 please",
            "x4111111111111111x",
            "card#6011-1111-1111-1117!",
            "ünïcödé 4242424242424242 ✓",
            "4111111111111111\n",
            "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
            "12 then 4111111111111111",
        ] {
            assert!(contains_card_number(text), "{text:?}");
        }
    }

    #[test]
    fn what_is_not_a_card_number() {
        for pan in INVALID_PANS {
            assert!(!contains_card_number(pan), "{pan}");
        }
        for text in [
            "",
            "no digits here",
            "4242",
            "+91 98765 43210",
            "123456789012",
            // Two separators in a row end the run: 4 + 12 digits.
            "4111  1111 1111 1111",
            "4111--1111-1111-1111",
            "4111 -1111-1111-1111",
            // Other separators do not join digits.
            "4111_1111_1111_1111",
            "4111.1111.1111.1111",
            "4111/1111/1111/1111",
            "4111\t1111\t1111\t1111",
            "4111\u{a0}1111\u{a0}1111\u{a0}1111",
            // Documented gap: only ASCII digits count.
            "４１１１１１１１１１１１１１１１",
            "४१११११११११११११११",
            // A 16-digit run is checked as a whole: its 13-digit prefix passes Luhn, the run does not.
            "4222222222222000",
        ] {
            assert!(!contains_card_number(text), "{text:?}");
        }
        assert!(luhn_valid(&digits("4222222222222")));
        assert!(!luhn_valid(&digits("4222222222222000")));
    }

    #[test]
    fn card_numbers_inside_longer_numbers_are_found() {
        assert!(contains_card_number("99994111111111111111"));
        assert!(contains_card_number("4111111111111111 0000"));
        assert!(contains_card_number(&format!(
            "{}378282246310005{}",
            "1".repeat(1000),
            "1".repeat(1000)
        )));
        // "1" repeated: no window of 13 to 19 digits passes Luhn, so every window is checked.
        for len in 13..=60 {
            assert!(!contains_card_number(&"1".repeat(len)), "{len}");
        }
    }

    #[test]
    fn scanning_is_linear() {
        // A megabyte of digits in which no window passes: every window is examined. At 19
        // steps a digit this finishes in well under a second even unoptimised; a quadratic
        // scan would not finish.
        let long = "1".repeat(1_000_000);
        assert!(!contains_card_number(&long));
        let grouped = "1111 ".repeat(200_000);
        assert!(!contains_card_number(&grouped));
        assert!(contains_card_number(&format!("{long}4111111111111111")));
    }

    #[test]
    fn known_false_positive_long_phone_numbers() {
        // Documented in the report: a 13-digit E.164 number that happens to pass Luhn (about
        // one in ten do) reads as a card number.
        assert!(contains_card_number("+86 138 1234 5678"));
    }

    /// The reference the windowed scan is checked against: Luhn on every window.
    fn naive_any_window(run: &[u8]) -> bool {
        (0..run.len()).any(|start| {
            (CARD_NUMBER_DIGITS_MIN..=CARD_NUMBER_DIGITS_MAX)
                .any(|len| start + len <= run.len() && luhn_valid(&run[start..start + len]))
        })
    }

    fn luhn_check_digit(payload: &[u8]) -> u8 {
        (0..10)
            .find(|&c| luhn_valid(&[payload, &[c]].concat()))
            .unwrap()
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(s in "\\PC{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = contains_card_number(&s);
            let _ = contains_card_number(&String::from_utf8_lossy(&bytes));
            let _ = luhn_valid(&bytes);
        }

        #[test]
        fn never_panics_on_digit_heavy_text(s in "[0-9 \\-a]{0,300}") {
            let _ = contains_card_number(&s);
        }

        #[test]
        fn windowed_scan_agrees_with_naive(run in proptest::collection::vec(0u8..10, 20..80)) {
            prop_assert_eq!(any_window_luhn_valid(&run), naive_any_window(&run));
        }

        #[test]
        fn valid_pans_hidden_in_letters_are_found(
            payload in proptest::collection::vec(0u8..10, 15),
            before in "[a-zA-Z]{0,20}",
            after in "[a-zA-Z]{0,20}",
            sep in prop_oneof![Just(""), Just(" "), Just("-")],
        ) {
            let check = luhn_check_digit(&payload);
            let pan: String = payload.iter().chain([&check]).map(|d| char::from(b'0' + d)).collect();
            let grouped = pan.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(sep);
            let text = format!("{before}{grouped}{after}");
            prop_assert!(contains_card_number(&text), "{}", text);
        }

        #[test]
        fn isolated_16_digit_numbers_failing_luhn_are_not_flagged(
            number in proptest::collection::vec(0u8..10, 16),
            before in "[a-zA-Z]{0,20}",
            after in "[a-zA-Z]{0,20}",
        ) {
            prop_assume!(!luhn_valid(&number));
            let text: String = number.iter().map(|d| char::from(b'0' + d)).collect();
            let text = format!("{before}{text}{after}");
            prop_assert!(!contains_card_number(&text), "{}", text);
        }
    }

    // ----- expiry ------------------------------------------------------------------------------

    #[test]
    fn expiry_bounds() {
        assert!(CardExpiry::new(1, 2000).is_ok());
        assert!(CardExpiry::new(12, 2099).is_ok());
        for (month, year) in [
            (0, 2030),
            (13, 2030),
            (255, 2030),
            (6, 1999),
            (6, 2100),
            (6, 30),
        ] {
            assert_eq!(
                CardExpiry::new(month, year).unwrap_err().code(),
                "invalid_payment_method",
                "{month}/{year}"
            );
        }
        let e = CardExpiry::new(3, 2030).unwrap();
        assert_eq!((e.month(), e.year()), (3, 2030));
        assert_eq!(e.to_string(), "03/2030");
        assert!(CardExpiry::new(12, 2029).unwrap() < CardExpiry::new(1, 2030).unwrap());
    }

    #[test]
    fn expiry_boundaries() {
        let dec = CardExpiry::new(12, 2030).unwrap();
        assert_eq!(
            dec.expires_at(),
            ts("2031-01-01T00:00:00Z"),
            "December → January"
        );
        assert!(
            !dec.is_expired(ts("2030-12-31T23:59:59.999999Z")),
            "last microsecond"
        );
        assert!(
            dec.is_expired(ts("2031-01-01T00:00:00Z")),
            "first instant of next month"
        );
        assert!(!dec.is_expired(ts("2030-12-01T00:00:00Z")));
        assert!(!dec.is_expired(Timestamp::EPOCH));

        let feb_leap = CardExpiry::new(2, 2028).unwrap();
        assert_eq!(feb_leap.expires_at(), ts("2028-03-01T00:00:00Z"));
        assert!(!feb_leap.is_expired(ts("2028-02-29T23:59:59.999999Z")));

        let last = CardExpiry::new(12, 2099).unwrap();
        assert_eq!(last.expires_at(), ts("2100-01-01T00:00:00Z"));
        assert!(last.is_expired(Timestamp::from_micros(i64::MAX)));
        assert!(!last.is_expired(Timestamp::from_micros(i64::MIN)));
    }

    #[test]
    fn expiry_agrees_with_jiff_for_every_month() {
        for year in 2000..=2099u16 {
            for month in 1..=12u8 {
                let e = CardExpiry::new(month, year).unwrap();
                let first = jiff::civil::date(
                    i16::try_from(year).unwrap(),
                    i8::try_from(month).unwrap(),
                    1,
                );
                let next = first.checked_add(jiff::Span::new().months(1)).unwrap();
                let expected = next
                    .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                    .unwrap()
                    .timestamp();
                assert_eq!(e.expires_at(), Timestamp::from_jiff(expected), "{e}");
            }
        }
    }

    #[test]
    fn expiry_serde() {
        let e = CardExpiry::new(7, 2031).unwrap();
        let v = serde_json::to_value(e).unwrap();
        assert_eq!(v, json!({"month": 7, "year": 2031}));
        assert_eq!(serde_json::from_value::<CardExpiry>(v).unwrap(), e);
        assert!(serde_json::from_value::<CardExpiry>(json!({"month": 13, "year": 2031})).is_err());
        assert!(serde_json::from_value::<CardExpiry>(json!({"month": 1, "year": 31})).is_err());
    }

    // ----- provider token ----------------------------------------------------------------------

    #[test]
    fn provider_token_is_secret() {
        let t = ProviderToken::new("tok_SECRET_abc123").unwrap();
        assert_eq!(t.expose(), "tok_SECRET_abc123");
        assert_eq!(format!("{t:?}"), "ProviderToken(***)");
        assert_eq!(format!("{t:#?}"), "ProviderToken(***)");
        assert_eq!(t.to_string(), "***");
        let parsed: ProviderToken = serde_json::from_value(json!("tok_SECRET_abc123")).unwrap();
        assert_eq!(parsed, t);
    }

    #[test]
    fn provider_token_rules() {
        assert!(ProviderToken::new("t".repeat(512)).is_ok());
        assert!(ProviderToken::new("~!@#$%^&*()_+{}|:<>?").is_ok());
        for bad in [
            String::new(),
            "t".repeat(513),
            "has space".into(),
            "tab\t".into(),
            "ünï".into(),
            "nul\0".into(),
        ] {
            assert_eq!(
                ProviderToken::new(bad.clone()).unwrap_err().code(),
                "invalid_payment_method",
                "{bad:?}"
            );
        }
        assert_eq!(
            ProviderToken::new("4111111111111111"),
            Err(Error::CardNumberRejected)
        );
        assert_eq!(
            ProviderToken::new("tok_4111-1111-1111-1111"),
            Err(Error::CardNumberRejected)
        );
        assert!(serde_json::from_value::<ProviderToken>(json!("")).is_err());
    }

    // ----- validation --------------------------------------------------------------------------

    #[test]
    fn valid_card() {
        let v = card(PaymentMethodKind::CreditCard).validate(now()).unwrap();
        assert_eq!(v.kind(), PaymentMethodKind::CreditCard);
        assert_eq!(v.provider(), "Stripe");
        assert_eq!(v.token().expose(), "pm_1Nx7Yz2eZvKYlo2C");
        assert_eq!(v.nickname(), Some("Travel card"));
        assert!(v.make_default());
        assert_eq!(
            v.display(),
            &ValidDisplay::Card {
                brand: CardBrand::Visa,
                last4: "4242".into(),
                expiry: CardExpiry::new(12, 2030).unwrap(),
                holder: Some("Asha Rao".into()),
            }
        );
        assert_eq!(v.display().masked(), "VISA •••• 4242 exp 12/2030");
        assert!(card(PaymentMethodKind::DebitCard).validate(now()).is_ok());
    }

    #[test]
    fn masking() {
        let bank = bank().validate(now()).unwrap();
        assert_eq!(bank.display().masked(), "HDFC Bank ****1234");

        for (handle, masked) in [
            ("rahul.sharma@okhdfcbank", "ra***@okhdfcbank"),
            ("9876543210@ybl", "98***@ybl"),
            ("abc@ybl", "ab***@ybl"),
            ("ab@ybl", "a***@ybl"),
            ("a@ybl", "***@ybl"),
        ] {
            let v = upi(handle).validate(now()).unwrap();
            assert_eq!(
                v.display(),
                &ValidDisplay::Upi {
                    masked_handle: masked.into()
                }
            );
            assert_eq!(v.display().masked(), masked);
            assert!(!format!("{v:?}").contains(handle), "{handle}");
        }

        for (account, masked) in [
            ("+919876543210", "*********3210"),
            ("alice@example.com", "*************.com"),
            ("98765", "*8765"),
            ("ÅsaÖst@mail.se", "**********l.se"),
        ] {
            let v = mobile(account).validate(now()).unwrap();
            assert_eq!(
                v.display(),
                &ValidDisplay::MobileWallet {
                    masked_account: masked.into()
                }
            );
            assert_eq!(v.display().masked(), masked);
        }

        let amex = NewPaymentMethod {
            display: MethodDisplay::Card {
                brand: CardBrand::Amex,
                last4: "0005".into(),
                expiry: CardExpiry::new(3, 2029).unwrap(),
                holder: None,
            },
            ..card(PaymentMethodKind::CreditCard)
        };
        assert_eq!(
            amex.validate(now()).unwrap().display().masked(),
            "AMEX •••• 0005 exp 03/2029"
        );
    }

    #[test]
    fn card_numbers_in_any_field_are_rejected() {
        let pans = [
            "4111111111111111",
            "4111 1111 1111 1111",
            "3782-822463-10005",
        ];
        type Base = fn() -> NewPaymentMethod;
        type Inject = fn(&mut NewPaymentMethod, String);
        let cases: Vec<(&str, Base, Inject)> = vec![
            (
                "provider",
                || card(PaymentMethodKind::CreditCard),
                |m, p| m.provider = p,
            ),
            (
                "token",
                || card(PaymentMethodKind::CreditCard),
                |m, p| m.provider_token = format!("tok_{p}"),
            ),
            (
                "nickname",
                || card(PaymentMethodKind::CreditCard),
                |m, p| m.nickname = Some(format!("my card {p}")),
            ),
            (
                "last4",
                || card(PaymentMethodKind::CreditCard),
                |m, p| {
                    if let MethodDisplay::Card { last4, .. } = &mut m.display {
                        *last4 = p
                    }
                },
            ),
            (
                "holder",
                || card(PaymentMethodKind::CreditCard),
                |m, p| {
                    if let MethodDisplay::Card { holder, .. } = &mut m.display {
                        *holder = Some(format!("Asha {p}"))
                    }
                },
            ),
            ("bank name", bank, |m, p| {
                if let MethodDisplay::BankAccount { bank_name, .. } = &mut m.display {
                    *bank_name = format!("Bank {p}")
                }
            }),
            ("account last4", bank, |m, p| {
                if let MethodDisplay::BankAccount { account_last4, .. } = &mut m.display {
                    *account_last4 = p
                }
            }),
            ("routing", bank, |m, p| {
                if let MethodDisplay::BankAccount {
                    ifsc_or_routing, ..
                } = &mut m.display
                {
                    *ifsc_or_routing = Some(p)
                }
            }),
            (
                "upi handle",
                || upi("asha@ybl"),
                |m, p| {
                    if let MethodDisplay::Upi { handle } = &mut m.display {
                        *handle = format!("{p}@ybl")
                    }
                },
            ),
            (
                "mobile account",
                || mobile("+919876543210"),
                |m, p| {
                    if let MethodDisplay::MobileWallet { provider_account } = &mut m.display {
                        *provider_account = p
                    }
                },
            ),
        ];
        for (field, base, inject) in cases {
            assert!(
                base().validate(now()).is_ok(),
                "{field}: base input is valid"
            );
            for pan in pans {
                let mut input = base();
                inject(&mut input, pan.to_string());
                let debug = format!("{input:?} {input:#?}");
                let err = input.validate(now()).unwrap_err();
                assert_eq!(err, Error::CardNumberRejected, "{field}: {pan}");
                let shown = format!("{debug} {err} {err:?}");
                for needle in [
                    pan,
                    "4111111111111111",
                    "378282246310005",
                    "1111 1111",
                    "822463",
                ] {
                    assert!(!shown.contains(needle), "{field}: {pan} echoed in {shown}");
                }
            }
        }
    }

    #[test]
    fn card_number_check_comes_first() {
        // Even where another rule would also fail (wrong kind, malformed last4), the answer is
        // that card numbers are not accepted.
        let mut m = card(PaymentMethodKind::Upi);
        if let MethodDisplay::Card { last4, .. } = &mut m.display {
            *last4 = "4111111111111111".into();
        }
        assert_eq!(m.validate(now()), Err(Error::CardNumberRejected));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let input = card(PaymentMethodKind::CreditCard);
        let debug = format!("{input:?} {input:#?}");
        assert!(!debug.contains("pm_1Nx7Yz2eZvKYlo2C"), "{debug}");
        assert!(debug.contains("***"));
        assert!(
            debug.contains("Asha Rao"),
            "ordinary fields stay visible: {debug}"
        );
        let valid = input.validate(now()).unwrap();
        assert!(!format!("{valid:?} {valid:#?}").contains("pm_1Nx7Yz2eZvKYlo2C"));
        let record = stored(valid.display().clone(), PaymentMethodStatus::Active);
        assert!(!format!("{record:?}").contains("pm_secret_123"));
        let json = serde_json::to_string(&record).unwrap();
        assert!(!json.contains("pm_secret_123"), "{json}");
        assert!(!json.contains("token"), "{json}");
    }

    #[test]
    fn kind_must_match_display() {
        let displays = [
            card(PaymentMethodKind::CreditCard).display,
            bank().display,
            upi("asha@ybl").display,
            mobile("+919876543210").display,
        ];
        for &kind in PaymentMethodKind::ALL {
            for display in &displays {
                let expected = match display {
                    MethodDisplay::Card { .. } => kind.is_card(),
                    MethodDisplay::BankAccount { .. } => kind == PaymentMethodKind::BankAccount,
                    MethodDisplay::Upi { .. } => kind == PaymentMethodKind::Upi,
                    MethodDisplay::MobileWallet { .. } => kind == PaymentMethodKind::MobileWallet,
                };
                let input = NewPaymentMethod {
                    kind,
                    display: display.clone(),
                    ..card(kind)
                };
                match input.validate(now()) {
                    Ok(_) => assert!(expected, "{kind} accepted {display:?}"),
                    Err(e) => {
                        assert!(!expected, "{kind} refused {display:?}: {e}");
                        assert_eq!(reason(e), "kind does not match the display data");
                    }
                }
            }
        }
    }

    #[test]
    fn last_four_digits() {
        for bad in ["", "424", "42424", "42a4", "４２４２", " 4242", "-424"] {
            let mut m = card(PaymentMethodKind::CreditCard);
            if let MethodDisplay::Card { last4, .. } = &mut m.display {
                *last4 = bad.into();
            }
            assert_eq!(
                reason(m.validate(now()).unwrap_err()),
                "last4 must be exactly 4 digits",
                "{bad:?}"
            );
            let mut m = bank();
            if let MethodDisplay::BankAccount { account_last4, .. } = &mut m.display {
                *account_last4 = bad.into();
            }
            assert_eq!(
                reason(m.validate(now()).unwrap_err()),
                "account_last4 must be exactly 4 digits",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn provider_names() {
        for good in ["Stripe", "PayU", "Pay-U_2.0 India", &"p".repeat(64)] {
            let m = NewPaymentMethod {
                provider: good.into(),
                ..bank()
            };
            assert!(m.validate(now()).is_ok(), "{good:?}");
        }
        for bad in [
            String::new(),
            "p".repeat(65),
            "Stripe!".into(),
            "Ström".into(),
            " Stripe".into(),
            "Stripe ".into(),
            "a\tb".into(),
        ] {
            let m = NewPaymentMethod {
                provider: bad.clone(),
                ..bank()
            };
            assert_eq!(
                m.validate(now()).unwrap_err().code(),
                "invalid_payment_method",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn text_fields() {
        let long = "é".repeat(101);
        let fine = "é".repeat(100);
        for (text, ok) in [
            (fine.as_str(), true),
            ("Asha Rao-Ñúñez 李", true),
            (long.as_str(), false),
            ("a\nb", false),
            ("nul\0", false),
            ("evil\u{202E}txt", false),
            ("iso\u{2066}late", false),
        ] {
            let nick = NewPaymentMethod {
                nickname: Some(text.into()),
                ..bank()
            };
            assert_eq!(nick.validate(now()).is_ok(), ok, "nickname {text:?}");
            let mut holder = card(PaymentMethodKind::CreditCard);
            if let MethodDisplay::Card { holder: h, .. } = &mut holder.display {
                *h = Some(text.into());
            }
            assert_eq!(holder.validate(now()).is_ok(), ok, "holder {text:?}");
            let mut bank_name = bank();
            if let MethodDisplay::BankAccount { bank_name: b, .. } = &mut bank_name.display {
                *b = text.into();
            }
            assert_eq!(bank_name.validate(now()).is_ok(), ok, "bank {text:?}");
        }
        assert_eq!(
            reason(
                NewPaymentMethod {
                    nickname: Some(long.clone()),
                    ..bank()
                }
                .validate(now())
                .unwrap_err()
            ),
            "nickname is longer than 100 characters"
        );

        // Optional text given empty counts as absent; required text must not be empty.
        let v = NewPaymentMethod {
            nickname: Some(String::new()),
            ..bank()
        }
        .validate(now())
        .unwrap();
        assert_eq!(v.nickname(), None);
        let mut m = bank();
        if let MethodDisplay::BankAccount {
            ifsc_or_routing, ..
        } = &mut m.display
        {
            *ifsc_or_routing = Some(String::new());
        }
        assert!(matches!(
            m.validate(now()).unwrap().display(),
            ValidDisplay::BankAccount {
                ifsc_or_routing: None,
                ..
            }
        ));
        let mut m = bank();
        if let MethodDisplay::BankAccount { bank_name, .. } = &mut m.display {
            bank_name.clear();
        }
        assert_eq!(reason(m.validate(now()).unwrap_err()), "bank name is empty");
    }

    #[test]
    fn upi_handles_and_mobile_accounts() {
        for bad in [
            "",
            "nobank",
            "@ybl",
            "asha@",
            "a@b@c",
            "as ha@ybl",
            "asha@y_bl",
            "äsha@ybl",
            &format!("{}@ybl", "a".repeat(100)),
        ] {
            assert_eq!(
                upi(bad).validate(now()).unwrap_err().code(),
                "invalid_payment_method",
                "{bad:?}"
            );
        }
        for bad in ["", "1234", "+9\n1234567", &"9".repeat(101)] {
            assert_eq!(
                mobile(bad).validate(now()).unwrap_err().code(),
                "invalid_payment_method",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn expired_cards_are_refused() {
        let with_expiry = |month, year| NewPaymentMethod {
            display: MethodDisplay::Card {
                brand: CardBrand::Mastercard,
                last4: "4444".into(),
                expiry: CardExpiry::new(month, year).unwrap(),
                holder: None,
            },
            ..card(PaymentMethodKind::DebitCard)
        };
        assert_eq!(
            with_expiry(10, 2026).validate(now()),
            Err(Error::CardExpired)
        );
        assert_eq!(
            with_expiry(12, 2025).validate(now()),
            Err(Error::CardExpired)
        );
        assert!(
            with_expiry(11, 2026).validate(now()).is_ok(),
            "expires this month: still valid"
        );
        let last_instant = ts("2026-11-30T23:59:59.999999Z");
        assert!(with_expiry(11, 2026).validate(last_instant).is_ok());
        assert_eq!(
            with_expiry(11, 2026).validate(last_instant.plus_micros(1)),
            Err(Error::CardExpired)
        );
    }

    // ----- stored records and statuses ---------------------------------------------------------

    #[test]
    fn effective_status() {
        let display = card(PaymentMethodKind::CreditCard)
            .validate(now())
            .unwrap()
            .display()
            .clone();
        let after = ts("2031-01-01T00:00:00Z");
        let before = after.plus_micros(-1);
        for &status in PaymentMethodStatus::ALL {
            let m = stored(display.clone(), status);
            assert_eq!(m.effective_status(before), status);
            let expected = if status == PaymentMethodStatus::Active {
                PaymentMethodStatus::Expired
            } else {
                status
            };
            assert_eq!(m.effective_status(after), expected, "{status}");
        }
        // Methods without an expiry never expire by time.
        let bank_display = bank().validate(now()).unwrap().display().clone();
        let m = stored(bank_display, PaymentMethodStatus::Active);
        assert_eq!(
            m.effective_status(Timestamp::from_micros(i64::MAX)),
            PaymentMethodStatus::Active
        );
    }

    #[test]
    fn status_transitions() {
        use PaymentMethodStatus::{Active, Blocked, Expired, Inactive};
        let allowed = [
            (Active, Inactive),
            (Active, Expired),
            (Active, Blocked),
            (Inactive, Active),
            (Inactive, Expired),
            (Inactive, Blocked),
            (Expired, Inactive),
            (Expired, Blocked),
            (Blocked, Active),
            (Blocked, Inactive),
        ];
        for &from in PaymentMethodStatus::ALL {
            for &to in PaymentMethodStatus::ALL {
                let expected = from == to || allowed.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from} → {to}");
                let admin = from != to && (from == Blocked || to == Blocked);
                assert_eq!(from.needs_admin(to), admin, "{from} → {to}");
            }
        }
        assert!(!Expired.can_become(Active));
        assert!(!Blocked.can_become(Expired));
    }

    #[test]
    fn payment_method_ids() {
        assert_eq!(PaymentMethodId::new(0), Err(Error::InvalidId));
        assert_eq!(PaymentMethodId::new(-1), Err(Error::InvalidId));
        let id = PaymentMethodId::new(i64::MAX).unwrap();
        assert_eq!(id.get(), i64::MAX);
        assert_eq!(PaymentMethodId::new(42).unwrap().to_string(), "42");
        assert_eq!(
            serde_json::to_value(PaymentMethodId::new(42).unwrap()).unwrap(),
            json!(42)
        );
        assert_eq!(
            serde_json::from_value::<PaymentMethodId>(json!(42))
                .unwrap()
                .get(),
            42
        );
        assert!(serde_json::from_value::<PaymentMethodId>(json!(0)).is_err());
        assert_eq!(i64::from(id), i64::MAX);
        assert_eq!(PaymentMethodId::try_from(-3), Err(Error::InvalidId));
    }

    // ----- serde and codes ---------------------------------------------------------------------

    #[test]
    fn enum_codes_and_serde_names() {
        let kinds = [
            (PaymentMethodKind::CreditCard, "CREDIT_CARD", 1),
            (PaymentMethodKind::DebitCard, "DEBIT_CARD", 2),
            (PaymentMethodKind::BankAccount, "BANK_ACCOUNT", 3),
            (PaymentMethodKind::Upi, "UPI", 4),
            (PaymentMethodKind::MobileWallet, "MOBILE_WALLET", 5),
        ];
        for (k, code, db) in kinds {
            assert_eq!(k.as_str(), code);
            assert_eq!(serde_json::to_value(k).unwrap(), json!(code));
            assert_eq!(
                serde_json::from_value::<PaymentMethodKind>(json!(code)).unwrap(),
                k
            );
            assert_eq!(code.to_lowercase().parse::<PaymentMethodKind>().unwrap(), k);
            assert_eq!(
                (k.to_db(), PaymentMethodKind::from_db(db).unwrap()),
                (db, k)
            );
        }
        let statuses = [
            (PaymentMethodStatus::Active, "ACTIVE", 1),
            (PaymentMethodStatus::Inactive, "INACTIVE", 2),
            (PaymentMethodStatus::Expired, "EXPIRED", 3),
            (PaymentMethodStatus::Blocked, "BLOCKED", 4),
        ];
        for (s, code, db) in statuses {
            assert_eq!(s.to_string(), code);
            assert_eq!(serde_json::to_value(s).unwrap(), json!(code));
            assert_eq!(
                (s.to_db(), PaymentMethodStatus::from_db(db).unwrap()),
                (db, s)
            );
        }
        let brands = [
            (CardBrand::Visa, "VISA", 1),
            (CardBrand::Mastercard, "MASTERCARD", 2),
            (CardBrand::Amex, "AMEX", 3),
            (CardBrand::Discover, "DISCOVER", 4),
            (CardBrand::Rupay, "RUPAY", 5),
            (CardBrand::Other, "OTHER", 6),
        ];
        for (b, code, db) in brands {
            assert_eq!(b.to_string(), code);
            assert_eq!(serde_json::to_value(b).unwrap(), json!(code));
            assert_eq!(serde_json::from_value::<CardBrand>(json!(code)).unwrap(), b);
            assert_eq!((b.to_db(), CardBrand::from_db(db).unwrap()), (db, b));
        }
        assert_eq!(PaymentMethodKind::ALL.len(), 5);
        assert_eq!(PaymentMethodStatus::ALL.len(), 4);
        assert_eq!(CardBrand::ALL.len(), 6);
        assert_eq!(
            PaymentMethodKind::from_db(99).unwrap_err().code(),
            "storage_corrupt"
        );
        assert!("PAYPAL".parse::<PaymentMethodKind>().is_err());
        assert!(serde_json::from_value::<CardBrand>(json!("Visa")).is_err());
    }

    #[test]
    fn new_payment_method_from_json() {
        let m: NewPaymentMethod = serde_json::from_value(json!({
            "kind": "CREDIT_CARD",
            "provider": "Stripe",
            "provider_token": "pm_abc",
            "display": {"type": "CARD", "brand": "VISA", "last4": "4242", "expiry": {"month": 12, "year": 2030}},
        }))
        .unwrap();
        assert_eq!(m.nickname, None);
        assert!(!m.make_default);
        assert_eq!(
            m.validate(now()).unwrap().display().masked(),
            "VISA •••• 4242 exp 12/2030"
        );

        for (display, kind) in [
            (
                json!({"type": "BANK_ACCOUNT", "bank_name": "SBI", "account_last4": "9876"}),
                "BANK_ACCOUNT",
            ),
            (json!({"type": "UPI", "handle": "asha@oksbi"}), "UPI"),
            (
                json!({"type": "MOBILE_WALLET", "provider_account": "+919876543210"}),
                "MOBILE_WALLET",
            ),
        ] {
            let m: NewPaymentMethod = serde_json::from_value(json!({
                "kind": kind, "provider": "P", "provider_token": "t", "display": display,
                "nickname": "n", "make_default": true,
            }))
            .unwrap();
            assert!(m.validate(now()).is_ok(), "{kind}");
        }

        // Unknown fields are refused, so a stray card number field cannot pass unnoticed.
        let stray = serde_json::from_value::<NewPaymentMethod>(json!({
            "kind": "CREDIT_CARD", "provider": "Stripe", "provider_token": "pm_abc",
            "card_number": "4111111111111111",
            "display": {"type": "CARD", "brand": "VISA", "last4": "1111", "expiry": {"month": 12, "year": 2030}},
        }));
        let err = stray.unwrap_err().to_string();
        assert!(!err.contains("4111111111111111"), "{err}");
        let stray_in_display = serde_json::from_value::<MethodDisplay>(json!({
            "type": "CARD", "brand": "VISA", "last4": "1111", "expiry": {"month": 12, "year": 2030},
            "pan": "4111111111111111",
        }));
        assert!(stray_in_display.is_err());
        assert!(serde_json::from_value::<MethodDisplay>(json!({"type": "CARD", "brand": "VISA", "last4": "1", "expiry": {"month": 0, "year": 2030}})).is_err());
    }

    #[test]
    fn valid_display_round_trips() {
        let displays = [
            card(PaymentMethodKind::CreditCard),
            bank(),
            upi("rahul@ybl"),
            mobile("+919876543210"),
        ]
        .map(|m| m.validate(now()).unwrap().display().clone());
        for d in displays {
            let json = serde_json::to_value(&d).unwrap();
            assert_eq!(
                serde_json::from_value::<ValidDisplay>(json.clone()).unwrap(),
                d,
                "{json}"
            );
        }
        let json =
            serde_json::to_value(upi("rahul@ybl").validate(now()).unwrap().display()).unwrap();
        assert_eq!(json, json!({"type": "UPI", "masked_handle": "ra***@ybl"}));
    }
}
