//! The identity half of the service: registration, bootstrap, login, sessions, profiles, roles,
//! activation, KYC, deletion, and the admin views.

use std::sync::Arc;

use crate::actor::{Action, Actor, Role, authorize};
use crate::admin::{
    Dashboard, Period, TransactionPage, TransactionQuery, UserPage, UserQuery, WalletPage,
    WalletQuery, check_page,
};
use crate::audit::{AuditAction, AuditNote, AuditQuery, OUTCOME_OK};
use crate::auth::{
    BackoffConfig, HashParams, JwtSecret, LoginBackoff, Password, PasswordHasher, PasswordPolicy,
    SessionToken, TokenConfig, TokenIssuer,
};
use crate::command::{
    AuditRecord, Op, PaymentMethodOp, ProfileChange, Register, UpdateUser, UserChange,
};
use crate::error::{Error, Result};
use crate::hashing::HashPool;
use crate::identity::{
    Email, FullName, KycReason, KycStatus, NationalId, PhoneNumber, Profile, User, UserRecord,
    Username,
};
use crate::ids::UserId;
use crate::ledger::Ledger;
use crate::observe::observed;
use crate::payment_method::{
    NewPaymentMethod, PaymentMethod, PaymentMethodId, PaymentMethodStatus,
};
use crate::store::{AuditPage, Login, Outcome, Store};
use crate::time::Timestamp;

/// Longest login name accepted before any lookup, in bytes.
pub const LOGIN_LEN_MAX: usize = 254;

/// How users authenticate: password rules, hashing cost, session tokens, login backoff.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Password rules.
    pub password: PasswordPolicy,
    /// Argon2id cost (OWASP's by default).
    pub hashing: HashParams,
    /// Threads that hash passwords (0: one per available CPU).
    pub hash_workers: usize,
    /// Session token claims and lifetime.
    pub tokens: TokenConfig,
    /// Backoff after failed logins, per account.
    pub login_backoff: BackoffConfig,
}

/// The authentication machinery a ledger holds.
pub(crate) struct AuthState {
    policy: PasswordPolicy,
    pool: Arc<HashPool>,
    tokens: Option<TokenIssuer>,
    backoff: LoginBackoff,
}

impl AuthState {
    pub(crate) fn new(config: AuthConfig, secret: Option<JwtSecret>) -> Result<Self> {
        let workers = match config.hash_workers {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n,
        };
        Ok(AuthState {
            policy: config.password,
            pool: HashPool::start(PasswordHasher::new(config.hashing)?, workers)?,
            tokens: secret
                .map(|s| TokenIssuer::new(s, config.tokens))
                .transpose()?,
            backoff: LoginBackoff::new(config.login_backoff)?,
        })
    }
}

/// A new user's details, as a host receives them.
#[derive(Debug)]
pub struct RegisterRequest {
    /// 3 to 32 characters: `a-z`, `0-9`, `.`, `_`, `-` (case-insensitive).
    pub username: String,
    /// E-mail address (case-insensitive).
    pub email: String,
    /// The password (checked against the password policy).
    pub password: Password,
    /// Full name.
    pub full_name: String,
    /// Phone number in E.164 form (`+14155550100`).
    pub phone: String,
    /// National id, optional.
    pub national_id: Option<String>,
}

impl RegisterRequest {
    fn validate(self, policy: &PasswordPolicy) -> Result<(Profile, Password)> {
        let username = Username::new(&self.username)?;
        let email = Email::new(&self.email)?;
        let profile = Profile {
            full_name: FullName::new(&self.full_name)?,
            phone: PhoneNumber::new(&self.phone)?,
            national_id: self
                .national_id
                .filter(|s| !s.trim().is_empty())
                .map(|s| NationalId::new(&s))
                .transpose()?,
            username,
            email,
        };
        policy.check(
            &self.password,
            profile.username.as_str(),
            profile.email.as_str(),
        )?;
        Ok((profile, self.password))
    }
}

/// Profile fields to change; `None` keeps the current value. The username never changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileUpdate {
    /// New e-mail address.
    pub email: Option<String>,
    /// New full name.
    pub full_name: Option<String>,
    /// New phone number.
    pub phone: Option<String>,
    /// New national id; `Some(None)` removes it.
    pub national_id: Option<Option<String>>,
}

/// A logged-in session.
#[derive(Debug)]
pub struct Session {
    /// The bearer token (a JWT) to present on later calls.
    pub token: SessionToken,
    /// The user.
    pub user: User,
    /// When the token expires.
    pub expires_at: Timestamp,
}

/// The login-backoff key of an account (login names are keys of their own).
fn account_key(user: UserId) -> String {
    format!("user:{user}")
}

fn expect_user(outcome: Outcome) -> Result<UserRecord> {
    match outcome {
        Outcome::User(u) => Ok(u),
        _ => Err(Error::internal("expected a user outcome")),
    }
}

impl<S: Store> Ledger<S> {
    /// Replaces the authentication settings, and enables sessions (login, authenticate) with
    /// `secret`. Without a secret, login and authentication fail with
    /// [`Error::InvalidConfig`].
    pub fn with_auth(mut self, config: AuthConfig, secret: Option<JwtSecret>) -> Result<Self> {
        self.auth = Arc::new(AuthState::new(config, secret)?);
        Ok(self)
    }

    fn tokens(&self) -> Result<&TokenIssuer> {
        self.auth
            .tokens
            .as_ref()
            .ok_or_else(|| Error::InvalidConfig {
                reason: "sessions need a JWT secret (Ledger::with_auth)".into(),
            })
    }

    async fn create_user(&self, req: RegisterRequest, bootstrap: bool) -> Result<User> {
        let (profile, password) = req.validate(&self.auth.policy)?;
        let password = self.auth.pool.hash(password).await?;
        let op = Op::Register(Register {
            profile,
            password,
            bootstrap,
        });
        Ok(expect_user(self.execute(None, op).await?)?.to_user())
    }

    /// Creates the first SUPERUSER. Works only while no active SUPERUSER exists
    /// ([`Error::AlreadyBootstrapped`] afterwards): there are no default accounts.
    pub async fn bootstrap(&self, req: RegisterRequest) -> Result<User> {
        observed!("bootstrap" => self.create_user(req, true).await)
    }

    /// Registers a customer: role USER, KYC PENDING, active.
    pub async fn register(&self, req: RegisterRequest) -> Result<User> {
        observed!("register" => self.create_user(req, false).await)
    }

    async fn audit_login(
        &self,
        actor: Option<&Actor>,
        target: Option<UserId>,
        outcome: &'static str,
    ) {
        let note = AuditNote::new(AuditAction::Login, target.and_then(AuditNote::user_target));
        let op = Op::Audit(AuditRecord { note, outcome });
        // The login's answer does not depend on its audit record being stored; a storage
        // failure here is logged, not returned.
        if let Err(e) = self.execute(actor, op).await {
            tracing::warn!(code = e.code(), "could not record a login in the audit log");
        }
    }

    /// Logs in by username or e-mail address.
    ///
    /// An unknown user and a wrong password give the same [`Error::InvalidCredentials`] after
    /// the same work (a hash verification), so accounts cannot be discovered by message or
    /// timing. Repeated failures for one account are throttled ([`Error::RateLimited`]). A
    /// password hash made with older parameters is upgraded here.
    pub async fn login(&self, login: &str, password: Password) -> Result<Session> {
        observed!("login" => {
            let tokens = self.tokens()?;
            let now = self.clock.now();
            let login = login.trim();
            let key = if login.len() > LOGIN_LEN_MAX {
                String::new()
            } else {
                login.to_ascii_lowercase()
            };
            // Each attempt counts as a failure from before its verification starts until it
            // succeeds, so concurrent guesses cannot all slip through one open window.
            self.auth.backoff.check(&key, now)?;
            self.auth.backoff.record_failure(&key, now);
            let parsed = if key.is_empty() {
                None
            } else if key.contains('@') {
                Email::new(&key).ok().map(Login::Email)
            } else {
                Username::new(&key).ok().map(Login::Username)
            };
            let record = match parsed {
                Some(l) => self.store.user_by_login(l).await?,
                None => None,
            };
            // The account has its own counter too, whichever name was typed.
            let account_key = record.as_ref().map(|r| account_key(r.id));
            if let Some(k) = &account_key {
                self.auth.backoff.check(k, now)?;
                self.auth.backoff.record_failure(k, now);
            }
            let hash = record.as_ref().and_then(|r| r.password.clone());
            let verified = self.auth.pool.verify(password, hash).await?;
            let record = match record {
                Some(r) if verified.ok => r,
                other => {
                    let target = other.map(|r| r.id);
                    self.audit_login(None, target, Error::InvalidCredentials.code())
                        .await;
                    return Err(Error::InvalidCredentials);
                }
            };
            let actor = Actor::new(record.id, record.role);
            if !record.active {
                self.audit_login(None, Some(record.id), Error::UserInactive.code())
                    .await;
                return Err(Error::UserInactive);
            }
            self.auth.backoff.record_success(&key);
            if let Some(k) = &account_key {
                self.auth.backoff.record_success(k);
            }
            if let (Some(hash), Some(replaces)) = (verified.upgraded, record.password.clone()) {
                let op = Op::UpdateUser(UpdateUser {
                    user: record.id,
                    change: UserChange::UpgradeHash { replaces, hash },
                });
                if let Err(e) = self.execute(Some(&actor), op).await {
                    tracing::warn!(code = e.code(), "could not upgrade a password hash");
                }
            }
            self.audit_login(Some(&actor), Some(record.id), OUTCOME_OK)
                .await;
            let (token, claims) =
                tokens.issue(record.id, record.role, record.token_version, now)?;
            Ok(Session {
                token,
                user: record.to_user(),
                expires_at: claims.expires_at,
            })
        })
    }

    /// Checks a session token and returns who it belongs to, with their current role.
    ///
    /// Refused ([`Error::InvalidToken`]): a forged, tampered, expired or not-yet-valid token,
    /// one for another issuer or audience, and one issued before the user's sessions were
    /// revoked (password change, role change, deactivation, deletion, logout everywhere).
    pub async fn authenticate(&self, token: &str) -> Result<Actor> {
        observed!("authenticate" => {
            let claims = self.tokens()?.verify(token, self.clock.now())?;
            let revoked = Error::InvalidToken { reason: "revoked" };
            let record = self.store.user(claims.user).await?.ok_or(revoked.clone())?;
            if record.is_deleted() || !record.active || record.token_version != claims.version {
                return Err(revoked);
            }
            Ok(Actor::new(record.id, record.role))
        })
    }

    async fn update_user(&self, actor: &Actor, user: UserId, change: UserChange) -> Result<User> {
        let op = Op::UpdateUser(UpdateUser { user, change });
        Ok(expect_user(self.execute(Some(actor), op).await?)?.to_user())
    }

    /// A user's profile (their own, or any for ADMIN+).
    pub async fn user(&self, actor: &Actor, id: UserId) -> Result<User> {
        observed!("user", (actor = %actor.user, user = %id) => {
            authorize(actor, Action::ReadUser { target: id })?;
            let record = self.store.user(id).await?.ok_or(Error::UserNotFound)?;
            Ok(record.to_user())
        })
    }

    /// Changes profile fields. Role, KYC status and the active flag are not profile fields:
    /// they change only through the admin operations.
    pub async fn update_profile(
        &self,
        actor: &Actor,
        id: UserId,
        update: ProfileUpdate,
    ) -> Result<User> {
        observed!("update_profile", (actor = %actor.user, user = %id) => {
            let change = ProfileChange {
                email: update.email.as_deref().map(Email::new).transpose()?,
                full_name: update.full_name.as_deref().map(FullName::new).transpose()?,
                phone: update.phone.as_deref().map(PhoneNumber::new).transpose()?,
                national_id: match update.national_id {
                    None => None,
                    Some(None) => Some(None),
                    Some(Some(s)) if s.trim().is_empty() => Some(None),
                    Some(Some(s)) => Some(Some(NationalId::new(&s)?)),
                },
            };
            self.update_user(actor, id, UserChange::Profile(change)).await
        })
    }

    /// Changes the actor's own password after checking the current one, and ends every
    /// session (including the one in use: the host should log in again).
    pub async fn change_password(
        &self,
        actor: &Actor,
        current: Password,
        new: Password,
    ) -> Result<User> {
        observed!("change_password", (actor = %actor.user) => {
            authorize(actor, Action::ChangePassword { target: actor.user })?;
            let record = self
                .store
                .user(actor.user)
                .await?
                .filter(|r| !r.is_deleted())
                .ok_or(Error::UserNotFound)?;
            let Some(profile) = record.profile.as_ref() else {
                return Err(Error::UserNotFound);
            };
            self.auth
                .policy
                .check(&new, profile.username.as_str(), profile.email.as_str())?;
            // Guessing the current password through a stolen session is throttled like a
            // login, on the account's counter.
            let key = account_key(record.id);
            let now = self.clock.now();
            self.auth.backoff.check(&key, now)?;
            self.auth.backoff.record_failure(&key, now);
            let verified = self
                .auth
                .pool
                .verify(current, record.password.clone())
                .await?;
            if !verified.ok {
                return Err(Error::InvalidCredentials);
            }
            self.auth.backoff.record_success(&key);
            let hash = self.auth.pool.hash(new).await?;
            self.update_user(actor, actor.user, UserChange::Password { hash })
                .await
        })
    }

    /// Ends every session of `user` (their own, or any for ADMIN+).
    pub async fn logout_everywhere(&self, actor: &Actor, user: UserId) -> Result<User> {
        observed!("logout_everywhere", (actor = %actor.user, %user) => {
            self.update_user(actor, user, UserChange::RevokeSessions).await
        })
    }

    /// Changes a user's role (SUPERUSER; not one's own). Ends the user's sessions. The last
    /// active SUPERUSER cannot be demoted.
    pub async fn set_role(&self, actor: &Actor, user: UserId, role: Role) -> Result<User> {
        observed!("set_role", (actor = %actor.user, %user, %role) => {
            self.update_user(actor, user, UserChange::Role(role)).await
        })
    }

    /// Deactivates or reactivates a user (ADMIN+ for USERs, SUPERUSER for staff; not
    /// oneself). Deactivation ends the user's sessions. The last active SUPERUSER cannot be
    /// deactivated.
    pub async fn set_active(&self, actor: &Actor, user: UserId, active: bool) -> Result<User> {
        observed!("set_active", (actor = %actor.user, %user, active) => {
            self.update_user(actor, user, UserChange::Active(active)).await
        })
    }

    /// Records a KYC decision (ADMIN+, not for oneself): PENDING to VERIFIED or REJECTED, or
    /// REJECTED back to PENDING for a new review.
    pub async fn review_kyc(
        &self,
        actor: &Actor,
        user: UserId,
        status: KycStatus,
        reason: &str,
    ) -> Result<User> {
        observed!("review_kyc", (actor = %actor.user, %user, %status) => {
            let reason = KycReason::new(reason)?;
            self.update_user(actor, user, UserChange::Kyc { status, reason }).await
        })
    }

    /// Deletes a user (SUPERUSER): every wallet must be empty; the wallets are closed, the
    /// personal data and password erased, the ledger kept.
    pub async fn delete_user(&self, actor: &Actor, user: UserId) -> Result<User> {
        observed!("delete_user", (actor = %actor.user, %user) => {
            self.update_user(actor, user, UserChange::Delete).await
        })
    }

    /// The admin dashboard (ADMIN+), with volume over `period`.
    pub async fn dashboard(&self, actor: &Actor, period: Period) -> Result<Dashboard> {
        observed!("dashboard", (actor = %actor.user) => {
            authorize(actor, Action::AdminRead)?;
            self.store.dashboard(period).await
        })
    }

    /// Users matching `query`, newest first (ADMIN+).
    pub async fn list_users(&self, actor: &Actor, query: UserQuery) -> Result<UserPage> {
        observed!("list_users", (actor = %actor.user) => {
            authorize(actor, Action::AdminRead)?;
            check_page(query.limit, None, None)?;
            self.store.users(query).await
        })
    }

    /// Customer wallets matching `query`, newest first (ADMIN+).
    pub async fn list_wallets(&self, actor: &Actor, query: WalletQuery) -> Result<WalletPage> {
        observed!("list_wallets", (actor = %actor.user) => {
            authorize(actor, Action::AdminRead)?;
            check_page(query.limit, None, None)?;
            self.store.list_wallets(query).await
        })
    }

    /// Transactions matching `query`, newest first (ADMIN+).
    pub async fn list_transactions(
        &self,
        actor: &Actor,
        query: TransactionQuery,
    ) -> Result<TransactionPage> {
        observed!("list_transactions", (actor = %actor.user) => {
            authorize(actor, Action::AdminRead)?;
            check_page(query.limit, query.since, query.until)?;
            self.store.list_transactions(query).await
        })
    }

    async fn method_op(&self, actor: &Actor, op: PaymentMethodOp) -> Result<Option<PaymentMethod>> {
        match self.execute(Some(actor), Op::PaymentMethod(op)).await? {
            Outcome::PaymentMethod(mut m) => {
                m.status = m.effective_status(self.clock.now());
                Ok(Some(m))
            }
            Outcome::Done => Ok(None),
            _ => Err(Error::internal("expected a payment method outcome")),
        }
    }

    /// Adds a payment method for `owner` (the actor themselves). The input is checked for
    /// card numbers anywhere ([`Error::CardNumberRejected`]) and for expiry; only masked
    /// display data and the provider's token are stored. The first method becomes the default.
    pub async fn add_payment_method(
        &self,
        actor: &Actor,
        owner: UserId,
        method: NewPaymentMethod,
    ) -> Result<PaymentMethod> {
        observed!("add_payment_method", (actor = %actor.user, %owner) => {
            let method = method.validate(self.clock.now())?;
            self.method_op(actor, PaymentMethodOp::Add { owner, method })
                .await?
                .ok_or_else(|| Error::internal("no payment method returned"))
        })
    }

    /// A user's payment methods (their own, or any for ADMIN+), with expired cards shown as
    /// EXPIRED.
    pub async fn payment_methods(
        &self,
        actor: &Actor,
        owner: UserId,
    ) -> Result<Vec<PaymentMethod>> {
        observed!("payment_methods", (actor = %actor.user, %owner) => {
            authorize(actor, Action::ReadPaymentMethods { owner })?;
            let now = self.clock.now();
            let mut methods = self.store.payment_methods_of(owner).await?;
            for m in &mut methods {
                m.status = m.effective_status(now);
            }
            Ok(methods)
        })
    }

    async fn changed_method(&self, actor: &Actor, op: PaymentMethodOp) -> Result<PaymentMethod> {
        self.method_op(actor, op)
            .await?
            .ok_or_else(|| Error::internal("no payment method returned"))
    }

    /// Makes a method its owner's default (the owner; the method must be usable).
    pub async fn set_default_payment_method(
        &self,
        actor: &Actor,
        id: PaymentMethodId,
    ) -> Result<PaymentMethod> {
        observed!("set_default_payment_method", (actor = %actor.user, method = %id) => {
            self.changed_method(actor, PaymentMethodOp::SetDefault(id)).await
        })
    }

    /// Changes a method's status: ACTIVE and INACTIVE by the owner; into or out of BLOCKED by
    /// ADMIN+. An expired card cannot become ACTIVE.
    pub async fn set_payment_method_status(
        &self,
        actor: &Actor,
        id: PaymentMethodId,
        status: PaymentMethodStatus,
    ) -> Result<PaymentMethod> {
        observed!("set_payment_method_status", (actor = %actor.user, method = %id, ?status) => {
            self.changed_method(actor, PaymentMethodOp::SetStatus(id, status)).await
        })
    }

    /// Marks a method verified (ADMIN+).
    pub async fn verify_payment_method(
        &self,
        actor: &Actor,
        id: PaymentMethodId,
    ) -> Result<PaymentMethod> {
        observed!("verify_payment_method", (actor = %actor.user, method = %id) => {
            self.changed_method(actor, PaymentMethodOp::Verify(id)).await
        })
    }

    /// Deletes a method (SUPERUSER).
    pub async fn delete_payment_method(&self, actor: &Actor, id: PaymentMethodId) -> Result<()> {
        observed!("delete_payment_method", (actor = %actor.user, method = %id) => {
            self.method_op(actor, PaymentMethodOp::Delete(id)).await.map(|_| ())
        })
    }

    /// Audit log entries matching `query`, newest first (ADMIN+).
    pub async fn audit_log(&self, actor: &Actor, query: AuditQuery) -> Result<AuditPage> {
        observed!("audit_log", (actor = %actor.user) => {
            authorize(actor, Action::AdminRead)?;
            query.validate()?;
            self.store.audit_log(query).await
        })
    }
}
