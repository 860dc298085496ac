//! SQL for users, the audit log's inserts, and payment methods.

use sqlx::mysql::{MySqlArguments, MySqlRow};
use sqlx::query::Query;
use sqlx::{FromRow, MySqlConnection, Row};
use wallet_core::audit::AuditNote;
use wallet_core::auth::PasswordHash;
use wallet_core::decide::Existing;
use wallet_core::identity::{Email, KycReason, NationalId, UserRecord, Username};
use wallet_core::ids::UserId;
use wallet_core::payment_method::{PaymentMethod, PaymentMethodId};
use wallet_core::store::Login;
use wallet_core::stored::{self, MethodCols, UserCols};
use wallet_core::text::IdempotencyKey;
use wallet_core::{Error, Result, Role, Timestamp};

use crate::error::map_sqlx;
use crate::queries::last_id;

/// A user's columns (`stored::UserCols`), each name after `$p` (a table alias and a dot, or
/// nothing).
macro_rules! user_columns {
    ($p:literal) => {
        concat!(
            $p,
            "id, ",
            $p,
            "username, ",
            $p,
            "email, ",
            $p,
            "full_name, ",
            $p,
            "phone, ",
            $p,
            "national_id, ",
            $p,
            "role, ",
            $p,
            "active, ",
            $p,
            "kyc, ",
            $p,
            "kyc_reason, ",
            $p,
            "password, ",
            $p,
            "token_version, ",
            $p,
            "created_at, ",
            $p,
            "updated_at, ",
            $p,
            "deleted_at"
        )
    };
}

macro_rules! user_select {
    () => {
        concat!("SELECT ", user_columns!(""), " FROM users")
    };
}

async fn one_user<'a, T>(
    conn: &mut MySqlConnection,
    sql: &'a str,
    value: T,
) -> Result<Option<UserRecord>>
where
    T: 'a + Send + sqlx::Encode<'a, sqlx::MySql> + sqlx::Type<sqlx::MySql>,
{
    let row: Option<UserCols> = sqlx::query_as(sql)
        .bind(value)
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx)?;
    row.map(stored::user_record).transpose()
}

/// A user by id (`?`).
pub(crate) const USER_BY_ID: &str = concat!(user_select!(), " WHERE id = ?");

/// A user by id.
pub(crate) async fn user(conn: &mut MySqlConnection, id: UserId) -> Result<Option<UserRecord>> {
    one_user(conn, USER_BY_ID, id.get()).await
}

/// `n` users by id (`?` for each), in no particular order.
pub(crate) fn users_sql(n: usize) -> String {
    format!(
        concat!(user_select!(), " WHERE id IN ({})"),
        crate::queries::placeholders(n)
    )
}

/// The user of a row read by [`USER_BY_ID`] or [`users_sql`], if any.
pub(crate) fn user_of(row: Option<&MySqlRow>) -> Result<Option<UserRecord>> {
    row.map(|row| stored::user_record(UserCols::from_row(row).map_err(map_sqlx)?))
        .transpose()
}

/// A user by id and the transaction they submitted under a key (the two reads every money
/// movement starts with): `?` the key, then `?` the user's id.
pub(crate) const USER_AND_EXISTING: &str = concat!(
    "SELECT ",
    user_columns!("u."),
    ", t.id, t.fingerprint FROM users u
     LEFT JOIN transactions t ON t.initiated_by = u.id AND t.idempotency_key = ?
     WHERE u.id = ?"
);

/// A user by id and, in the same round trip, the transaction they submitted under `key`.
pub(crate) async fn user_and_existing(
    conn: &mut MySqlConnection,
    id: UserId,
    key: &IdempotencyKey,
) -> Result<(Option<UserRecord>, Option<Existing>)> {
    let row = sqlx::query(USER_AND_EXISTING)
        .bind(key.as_str())
        .bind(id.get())
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx)?;
    user_and_existing_of(row.as_ref())
}

/// The user and transaction of a row read by [`USER_AND_EXISTING`] (none if no row).
pub(crate) fn user_and_existing_of(
    row: Option<&MySqlRow>,
) -> Result<(Option<UserRecord>, Option<Existing>)> {
    let Some(row) = row else {
        return Ok((None, None));
    };
    let user = stored::user_record(UserCols::from_row(row).map_err(map_sqlx)?)?;
    let txn: Option<i64> = row.try_get(15).map_err(map_sqlx)?;
    let fingerprint: Option<Vec<u8>> = row.try_get(16).map_err(map_sqlx)?;
    let existing = match (txn, fingerprint) {
        (Some(txn), Some(fp)) => Some(Existing {
            id: stored::txn_id(txn)?,
            fingerprint: stored::fingerprint(&fp)?,
        }),
        (None, None) => None,
        _ => return Err(Error::corrupt("a transaction without its fingerprint")),
    };
    Ok((Some(user), existing))
}

/// A user by id, locking the row until the transaction ends.
pub(crate) async fn lock_user(conn: &mut MySqlConnection, id: UserId) -> Result<()> {
    sqlx::query("SELECT id FROM users WHERE id = ? FOR UPDATE")
        .bind(id.get())
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx)?;
    Ok(())
}

/// Locks every active SUPERUSER's row (so two demotions cannot both see another one left).
///
/// With no active SUPERUSER there is no row to lock, and READ COMMITTED takes no gap locks:
/// two bootstraps would both count zero and both create a SUPERUSER. So when none is found,
/// the schema's version row is locked instead: it serializes the (rare) commands that ran
/// while no SUPERUSER existed, and the count each loads afterwards sees the winner's.
pub(crate) async fn lock_superusers(conn: &mut MySqlConnection) -> Result<()> {
    let locked: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM users WHERE role = ? AND active = 1 ORDER BY id FOR UPDATE",
    )
    .bind(Role::Superuser.to_db())
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    if locked.is_empty() {
        sqlx::query("SELECT version FROM wallet_schema WHERE id = 1 FOR UPDATE")
            .fetch_optional(conn)
            .await
            .map_err(map_sqlx)?;
    }
    Ok(())
}

/// An undeleted user by username or e-mail.
pub(crate) async fn user_by_login(
    conn: &mut MySqlConnection,
    login: &Login,
) -> Result<Option<UserRecord>> {
    match login {
        Login::Username(u) => {
            one_user(
                conn,
                concat!(user_select!(), " WHERE username = ?"),
                u.as_str(),
            )
            .await
        }
        Login::Email(e) => {
            one_user(
                conn,
                concat!(user_select!(), " WHERE email = ?"),
                e.as_str(),
            )
            .await
        }
    }
}

async fn id_where(conn: &mut MySqlConnection, sql: &str, value: &str) -> Result<Option<UserId>> {
    let id: Option<i64> = sqlx::query_scalar(sql)
        .bind(value)
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx)?;
    id.map(stored::user_id).transpose()
}

/// Which users hold this username and this e-mail address.
pub(crate) async fn login_owners(
    conn: &mut MySqlConnection,
    username: Option<&Username>,
    email: Option<&Email>,
) -> Result<(Option<UserId>, Option<UserId>)> {
    let by_name = match username {
        Some(u) => id_where(conn, "SELECT id FROM users WHERE username = ?", u.as_str()).await?,
        None => None,
    };
    let by_email = match email {
        Some(e) => id_where(conn, "SELECT id FROM users WHERE email = ?", e.as_str()).await?,
        None => None,
    };
    Ok((by_name, by_email))
}

/// How many active SUPERUSERs exist.
pub(crate) async fn active_superusers(conn: &mut MySqlConnection) -> Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE role = ? AND active = 1")
        .bind(Role::Superuser.to_db())
        .fetch_one(conn)
        .await
        .map_err(map_sqlx)?;
    stored::count(n)
}

/// Binds every column of a user but the id, in the order of the INSERT and UPDATE below.
fn bind_user<'q>(
    q: Query<'q, sqlx::MySql, MySqlArguments>,
    u: &'q UserRecord,
) -> Query<'q, sqlx::MySql, MySqlArguments> {
    let p = u.profile.as_ref();
    q.bind(p.map(|p| p.username.as_str()))
        .bind(p.map(|p| p.email.as_str()))
        .bind(p.map(|p| p.full_name.as_str()))
        .bind(p.map(|p| p.phone.as_str()))
        .bind(
            p.and_then(|p| p.national_id.as_ref())
                .map(NationalId::as_str),
        )
        .bind(u.role.to_db())
        .bind(i64::from(u.active))
        .bind(u.kyc.to_db())
        .bind(u.kyc_reason.as_ref().map(KycReason::as_str))
        .bind(u.password.as_ref().map(PasswordHash::as_phc))
        .bind(i64::from(u.token_version))
        .bind(u.created_at.as_micros())
        .bind(u.updated_at.as_micros())
        .bind(u.deleted_at.map(Timestamp::as_micros))
}

/// Inserts a user; returns its id.
pub(crate) async fn insert_user(conn: &mut MySqlConnection, u: &UserRecord) -> Result<UserId> {
    let q = sqlx::query(
        "INSERT INTO users (username, email, full_name, phone, national_id, role, active, kyc,
             kyc_reason, password, token_version, created_at, updated_at, deleted_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    let done = bind_user(q, u).execute(conn).await.map_err(map_sqlx)?;
    stored::user_id(last_id(done.last_insert_id())?)
}

/// Stores every column of a user record.
pub(crate) async fn update_user(conn: &mut MySqlConnection, u: &UserRecord) -> Result<()> {
    let q = sqlx::query(
        "UPDATE users SET username = ?, email = ?, full_name = ?, phone = ?, national_id = ?,
             role = ?, active = ?, kyc = ?, kyc_reason = ?, password = ?, token_version = ?,
             created_at = ?, updated_at = ?, deleted_at = ?
         WHERE id = ?",
    );
    bind_user(q, u)
        .bind(u.id.get())
        .execute(conn)
        .await
        .map_err(map_sqlx)?;
    Ok(())
}

/// Appends an audit record.
pub(crate) async fn insert_audit(
    conn: &mut MySqlConnection,
    at: Timestamp,
    actor: Option<UserId>,
    note: &AuditNote,
    outcome: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_id, action, target, detail, outcome)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(at.as_micros())
    .bind(actor.map(UserId::get))
    .bind(note.action.to_db())
    .bind(note.target.as_deref())
    .bind(note.detail.as_deref())
    .bind(outcome)
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    Ok(())
}

macro_rules! method_select {
    () => {
        "SELECT id, owner_id, kind, provider, token, display, nickname, is_default, verified,
                status, created_at, updated_at
         FROM payment_methods"
    };
}

/// A payment method by id.
pub(crate) async fn method(
    conn: &mut MySqlConnection,
    id: PaymentMethodId,
) -> Result<Option<PaymentMethod>> {
    let row: Option<MethodCols> = sqlx::query_as(concat!(method_select!(), " WHERE id = ?"))
        .bind(id.get())
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx)?;
    row.map(stored::payment_method).transpose()
}

/// An owner's methods (at most the per-user maximum), ordered by id.
pub(crate) async fn methods_of(
    conn: &mut MySqlConnection,
    owner: UserId,
) -> Result<Vec<PaymentMethod>> {
    let limit = i64::try_from(wallet_core::command::PAYMENT_METHODS_PER_USER_MAX).unwrap_or(20);
    let rows: Vec<MethodCols> = sqlx::query_as(concat!(
        method_select!(),
        " WHERE owner_id = ? ORDER BY id LIMIT ?"
    ))
    .bind(owner.get())
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(map_sqlx)?;
    rows.into_iter().map(stored::payment_method).collect()
}

/// Clears the default flag of the owner's methods other than `keep` (0: all of them).
async fn clear_other_defaults(conn: &mut MySqlConnection, owner: UserId, keep: i64) -> Result<()> {
    sqlx::query(
        "UPDATE payment_methods SET is_default = 0
         WHERE owner_id = ? AND is_default = 1 AND id <> ?",
    )
    .bind(owner.get())
    .bind(keep)
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    Ok(())
}

/// Inserts a method; returns it with its id.
pub(crate) async fn insert_method(
    conn: &mut MySqlConnection,
    m: &PaymentMethod,
) -> Result<PaymentMethod> {
    let display = serde_json::to_string(&m.display)
        .map_err(|e| Error::corrupt(format!("payment method display: {e}")))?;
    if m.is_default {
        clear_other_defaults(conn, m.owner, 0).await?;
    }
    let done = sqlx::query(
        "INSERT INTO payment_methods (owner_id, kind, provider, token, display, nickname,
             is_default, verified, status, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(m.owner.get())
    .bind(m.kind.to_db())
    .bind(m.provider.as_str())
    .bind(m.token.expose())
    .bind(display)
    .bind(m.nickname.as_deref())
    .bind(i64::from(m.is_default))
    .bind(i64::from(m.verified))
    .bind(m.status.to_db())
    .bind(m.created_at.as_micros())
    .bind(m.updated_at.as_micros())
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    let id = PaymentMethodId::new(last_id(done.last_insert_id())?)
        .map_err(stored::corrupt("payment method id"))?;
    Ok(PaymentMethod { id, ..m.clone() })
}

/// Stores a method's mutable columns.
pub(crate) async fn update_method(conn: &mut MySqlConnection, m: &PaymentMethod) -> Result<()> {
    if m.is_default {
        clear_other_defaults(conn, m.owner, m.id.get()).await?;
    }
    sqlx::query(
        "UPDATE payment_methods SET is_default = ?, verified = ?, status = ?, nickname = ?,
             updated_at = ? WHERE id = ?",
    )
    .bind(i64::from(m.is_default))
    .bind(i64::from(m.verified))
    .bind(m.status.to_db())
    .bind(m.nickname.as_deref())
    .bind(m.updated_at.as_micros())
    .bind(m.id.get())
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    Ok(())
}

/// Deletes a method.
pub(crate) async fn delete_method(conn: &mut MySqlConnection, id: PaymentMethodId) -> Result<()> {
    sqlx::query("DELETE FROM payment_methods WHERE id = ?")
        .bind(id.get())
        .execute(conn)
        .await
        .map_err(map_sqlx)?;
    Ok(())
}

/// Deletes every method of an owner.
pub(crate) async fn delete_methods_of(conn: &mut MySqlConnection, owner: UserId) -> Result<()> {
    sqlx::query("DELETE FROM payment_methods WHERE owner_id = ?")
        .bind(owner.get())
        .execute(conn)
        .await
        .map_err(map_sqlx)?;
    Ok(())
}
