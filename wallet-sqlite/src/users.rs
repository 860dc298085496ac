//! SQL for users and the audit log, and their row conversions.

use rusqlite::{Connection, OptionalExtension, Row, params};
use wallet_core::admin::Page;
use wallet_core::audit::{AuditAction, AuditNote, AuditQuery};
use wallet_core::auth::PasswordHash;
use wallet_core::identity::{Email, KycReason, NationalId, UserRecord, Username};
use wallet_core::ids::UserId;
use wallet_core::store::{AuditPage, Login};
use wallet_core::{Error, Result, Role, Timestamp};

use crate::error::map_sqlite;
use crate::queries::corrupt;

/// The SQL of every user and audit lookup, checked for index use by a test.
pub(crate) mod sql {
    macro_rules! user_select {
        () => {
            "SELECT id, username, email, full_name, phone, national_id, role, active, kyc,
                    kyc_reason, password, token_version, created_at, updated_at, deleted_at
             FROM users"
        };
    }
    pub(crate) const USER_BY_ID: &str = concat!(user_select!(), " WHERE id = ?1");
    pub(crate) const USER_BY_USERNAME: &str = concat!(user_select!(), " WHERE username = ?1");
    pub(crate) const USER_BY_EMAIL: &str = concat!(user_select!(), " WHERE email = ?1");
    pub(crate) const ID_BY_USERNAME: &str = "SELECT id FROM users WHERE username = ?1";
    pub(crate) const ID_BY_EMAIL: &str = "SELECT id FROM users WHERE email = ?1";
    pub(crate) const ACTIVE_SUPERUSERS: &str =
        "SELECT count(*) FROM users WHERE role = ?1 AND active = 1";
    pub(crate) const INSERT_USER: &str = "INSERT INTO users (username, email, full_name, phone,
            national_id, role, active, kyc, kyc_reason, password, token_version, created_at,
            updated_at, deleted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
    pub(crate) const UPDATE_USER: &str = "UPDATE users SET username = ?1, email = ?2,
            full_name = ?3, phone = ?4, national_id = ?5, role = ?6, active = ?7, kyc = ?8,
            kyc_reason = ?9, password = ?10, token_version = ?11, created_at = ?12,
            updated_at = ?13, deleted_at = ?14
         WHERE id = ?15";
    pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_log
            (at, actor_id, action, target, detail, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    /// The audit log, newest first, below an id bound (`i64::MAX` for the first page); each
    /// other filter is off when its parameter is NULL. Three variants lead with the indexed
    /// condition that makes the scan short: the actor, the target, or just the id range.
    macro_rules! audit_page {
        ($lead:literal) => {
            concat!(
                "SELECT id, at, actor_id, action, target, detail, outcome FROM audit_log WHERE ",
                $lead,
                " id < ?6 AND (?1 IS NULL OR actor_id = ?1) AND (?2 IS NULL OR action = ?2)
                  AND (?3 IS NULL OR target = ?3) AND (?4 IS NULL OR at >= ?4)
                  AND (?5 IS NULL OR at < ?5)
                 ORDER BY id DESC LIMIT ?7"
            )
        };
    }
    pub(crate) const AUDIT_PAGE: &str = audit_page!("");
    pub(crate) const AUDIT_BY_ACTOR: &str = audit_page!("actor_id = ?1 AND");
    pub(crate) const AUDIT_BY_TARGET: &str = audit_page!("target = ?3 AND");

    /// Every lookup above that must be served by an index.
    #[cfg(test)]
    pub(crate) const INDEXED: &[&str] = &[
        USER_BY_ID,
        USER_BY_USERNAME,
        USER_BY_EMAIL,
        ID_BY_USERNAME,
        ID_BY_EMAIL,
        ACTIVE_SUPERUSERS,
        AUDIT_PAGE,
        AUDIT_BY_ACTOR,
        AUDIT_BY_TARGET,
    ];
}

fn read_user(r: &Row<'_>) -> rusqlite::Result<Result<UserRecord>> {
    let cols: wallet_core::stored::UserCols = (
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
        r.get(14)?,
    );
    Ok(wallet_core::stored::user_record(cols))
}

fn one_user(
    conn: &Connection,
    sql: &str,
    param: impl rusqlite::ToSql,
) -> Result<Option<UserRecord>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_sqlite)?;
    stmt.query_row([param], read_user)
        .optional()
        .map_err(map_sqlite)?
        .transpose()
}

/// A user by id.
pub(crate) fn user(conn: &Connection, id: UserId) -> Result<Option<UserRecord>> {
    one_user(conn, sql::USER_BY_ID, id.get())
}

/// An undeleted user by username or e-mail.
pub(crate) fn user_by_login(conn: &Connection, login: &Login) -> Result<Option<UserRecord>> {
    match login {
        Login::Username(u) => one_user(conn, sql::USER_BY_USERNAME, u.as_str()),
        Login::Email(e) => one_user(conn, sql::USER_BY_EMAIL, e.as_str()),
    }
}

fn id_where(conn: &Connection, sql: &str, value: &str) -> Result<Option<UserId>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_sqlite)?;
    let id: Option<i64> = stmt
        .query_row([value], |r| r.get(0))
        .optional()
        .map_err(map_sqlite)?;
    id.map(|i| UserId::new(i).map_err(corrupt("user id")))
        .transpose()
}

/// Which users hold this username and this e-mail address.
pub(crate) fn login_owners(
    conn: &Connection,
    username: Option<&Username>,
    email: Option<&Email>,
) -> Result<(Option<UserId>, Option<UserId>)> {
    let by_name = match username {
        Some(u) => id_where(conn, sql::ID_BY_USERNAME, u.as_str())?,
        None => None,
    };
    let by_email = match email {
        Some(e) => id_where(conn, sql::ID_BY_EMAIL, e.as_str())?,
        None => None,
    };
    Ok((by_name, by_email))
}

/// How many active SUPERUSERs exist.
pub(crate) fn active_superusers(conn: &Connection) -> Result<u64> {
    let mut stmt = conn
        .prepare_cached(sql::ACTIVE_SUPERUSERS)
        .map_err(map_sqlite)?;
    let n: i64 = stmt
        .query_row([Role::Superuser.to_db()], |r| r.get(0))
        .map_err(map_sqlite)?;
    u64::try_from(n).map_err(|_| Error::corrupt("negative count"))
}

/// The values of every column but the id, in the order of INSERT_USER / UPDATE_USER.
fn user_values(u: &UserRecord) -> [rusqlite::types::Value; 14] {
    use rusqlite::types::Value;
    let text = |s: Option<&str>| s.map_or(Value::Null, |s| Value::Text(s.to_owned()));
    let p = u.profile.as_ref();
    [
        text(p.map(|p| p.username.as_str())),
        text(p.map(|p| p.email.as_str())),
        text(p.map(|p| p.full_name.as_str())),
        text(p.map(|p| p.phone.as_str())),
        text(
            p.and_then(|p| p.national_id.as_ref())
                .map(NationalId::as_str),
        ),
        Value::Integer(u.role.to_db()),
        Value::Integer(i64::from(u.active)),
        Value::Integer(u.kyc.to_db()),
        text(u.kyc_reason.as_ref().map(KycReason::as_str)),
        text(u.password.as_ref().map(PasswordHash::as_phc)),
        Value::Integer(i64::from(u.token_version)),
        Value::Integer(u.created_at.as_micros()),
        Value::Integer(u.updated_at.as_micros()),
        u.deleted_at
            .map_or(Value::Null, |t| Value::Integer(t.as_micros())),
    ]
}

/// Inserts a user; returns its id.
pub(crate) fn insert_user(conn: &Connection, u: &UserRecord) -> Result<UserId> {
    let mut stmt = conn.prepare_cached(sql::INSERT_USER).map_err(map_sqlite)?;
    stmt.execute(rusqlite::params_from_iter(user_values(u)))
        .map_err(map_sqlite)?;
    UserId::new(conn.last_insert_rowid()).map_err(corrupt("user id"))
}

/// Stores every column of a user record.
pub(crate) fn update_user(conn: &Connection, u: &UserRecord) -> Result<()> {
    let mut stmt = conn.prepare_cached(sql::UPDATE_USER).map_err(map_sqlite)?;
    let mut values = user_values(u).to_vec();
    values.push(rusqlite::types::Value::Integer(u.id.get()));
    let n = stmt
        .execute(rusqlite::params_from_iter(values))
        .map_err(map_sqlite)?;
    if n != 1 {
        return Err(Error::corrupt("user to update not found"));
    }
    Ok(())
}

/// Appends an audit record.
pub(crate) fn insert_audit(
    conn: &Connection,
    at: Timestamp,
    actor: Option<UserId>,
    note: &AuditNote,
    outcome: &str,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(sql::INSERT_AUDIT).map_err(map_sqlite)?;
    stmt.execute(params![
        at.as_micros(),
        actor.map(UserId::get),
        note.action.to_db(),
        note.target,
        note.detail,
        outcome
    ])
    .map_err(map_sqlite)?;
    Ok(())
}

/// A page of the audit log.
pub(crate) fn audit_log(conn: &Connection, q: &AuditQuery) -> Result<AuditPage> {
    let statement = if q.actor.is_some() {
        sql::AUDIT_BY_ACTOR
    } else if q.target.is_some() {
        sql::AUDIT_BY_TARGET
    } else {
        sql::AUDIT_PAGE
    };
    let mut stmt = conn.prepare_cached(statement).map_err(map_sqlite)?;
    let rows = stmt
        .query_map(
            params![
                q.actor.map(UserId::get),
                q.action.map(AuditAction::to_db),
                q.target,
                q.since.map(Timestamp::as_micros),
                q.until.map(Timestamp::as_micros),
                q.before.unwrap_or(i64::MAX),
                i64::from(q.limit) + 1
            ],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, String>(6)?,
                ))
            },
        )
        .map_err(map_sqlite)?;
    let mut items = Vec::new();
    for row in rows {
        items.push(wallet_core::stored::audit_entry(row.map_err(map_sqlite)?)?);
    }
    Ok(Page::from_overfetch(items, q.limit, |e| e.id))
}
