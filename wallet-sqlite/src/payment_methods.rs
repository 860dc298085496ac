//! SQL for payment methods.

use rusqlite::{Connection, OptionalExtension, Row, params};
use wallet_core::ids::UserId;
use wallet_core::payment_method::{PaymentMethod, PaymentMethodId};
use wallet_core::{Error, Result};

use crate::error::map_sqlite;
use crate::queries::corrupt;

pub(crate) mod sql {
    macro_rules! method_select {
        () => {
            "SELECT id, owner_id, kind, provider, token, display, nickname, is_default, verified,
                    status, created_at, updated_at
             FROM payment_methods"
        };
    }
    pub(crate) const BY_ID: &str = concat!(method_select!(), " WHERE id = ?1");
    pub(crate) const OF_OWNER: &str = concat!(
        method_select!(),
        " WHERE owner_id = ?1 ORDER BY id LIMIT ?2"
    );
    pub(crate) const CLEAR_DEFAULT: &str =
        "UPDATE payment_methods SET is_default = 0 WHERE owner_id = ?1 AND is_default = 1
           AND id <> ?2";
    pub(crate) const INSERT: &str = "INSERT INTO payment_methods (owner_id, kind, provider,
            token, display, nickname, is_default, verified, status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
    pub(crate) const UPDATE: &str = "UPDATE payment_methods SET is_default = ?2, verified = ?3,
            status = ?4, nickname = ?5, updated_at = ?6 WHERE id = ?1";
    pub(crate) const DELETE: &str = "DELETE FROM payment_methods WHERE id = ?1";
    pub(crate) const DELETE_OF_OWNER: &str = "DELETE FROM payment_methods WHERE owner_id = ?1";

    #[cfg(test)]
    pub(crate) const INDEXED: &[&str] = &[BY_ID, OF_OWNER, CLEAR_DEFAULT, DELETE_OF_OWNER];
}

use wallet_core::stored::MethodCols as Cols;

fn read(r: &Row<'_>) -> rusqlite::Result<Cols> {
    Ok((
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
    ))
}

/// A payment method by id.
pub(crate) fn method(conn: &Connection, id: PaymentMethodId) -> Result<Option<PaymentMethod>> {
    let mut stmt = conn.prepare_cached(sql::BY_ID).map_err(map_sqlite)?;
    stmt.query_row([id.get()], read)
        .optional()
        .map_err(map_sqlite)?
        .map(wallet_core::stored::payment_method)
        .transpose()
}

/// An owner's methods (at most the per-user maximum).
pub(crate) fn methods_of(conn: &Connection, owner: UserId) -> Result<Vec<PaymentMethod>> {
    let mut stmt = conn.prepare_cached(sql::OF_OWNER).map_err(map_sqlite)?;
    let limit = i64::try_from(wallet_core::command::PAYMENT_METHODS_PER_USER_MAX).unwrap_or(20);
    let rows = stmt
        .query_map(params![owner.get(), limit], read)
        .map_err(map_sqlite)?;
    rows.map(|r| {
        r.map_err(map_sqlite)
            .and_then(wallet_core::stored::payment_method)
    })
    .collect()
}

fn clear_other_defaults(conn: &Connection, m: &PaymentMethod) -> Result<()> {
    if m.is_default {
        conn.prepare_cached(sql::CLEAR_DEFAULT)
            .map_err(map_sqlite)?
            .execute(params![m.owner.get(), m.id.get()])
            .map_err(map_sqlite)?;
    }
    Ok(())
}

/// Inserts a method; returns it with its id.
pub(crate) fn insert(conn: &Connection, m: &PaymentMethod) -> Result<PaymentMethod> {
    let display = serde_json::to_string(&m.display)
        .map_err(|e| Error::corrupt(format!("payment method display: {e}")))?;
    // The new row's id is not known yet: clear every other default first (id bound 0).
    if m.is_default {
        conn.prepare_cached(sql::CLEAR_DEFAULT)
            .map_err(map_sqlite)?
            .execute(params![m.owner.get(), 0])
            .map_err(map_sqlite)?;
    }
    conn.prepare_cached(sql::INSERT)
        .map_err(map_sqlite)?
        .execute(params![
            m.owner.get(),
            m.kind.to_db(),
            m.provider,
            m.token.expose(),
            display,
            m.nickname,
            i64::from(m.is_default),
            i64::from(m.verified),
            m.status.to_db(),
            m.created_at.as_micros(),
            m.updated_at.as_micros()
        ])
        .map_err(map_sqlite)?;
    let id =
        PaymentMethodId::new(conn.last_insert_rowid()).map_err(corrupt("payment method id"))?;
    Ok(PaymentMethod { id, ..m.clone() })
}

/// Stores a method's mutable columns.
pub(crate) fn update(conn: &Connection, m: &PaymentMethod) -> Result<()> {
    clear_other_defaults(conn, m)?;
    conn.prepare_cached(sql::UPDATE)
        .map_err(map_sqlite)?
        .execute(params![
            m.id.get(),
            i64::from(m.is_default),
            i64::from(m.verified),
            m.status.to_db(),
            m.nickname,
            m.updated_at.as_micros()
        ])
        .map_err(map_sqlite)?;
    Ok(())
}

/// Deletes a method.
pub(crate) fn delete(conn: &Connection, id: PaymentMethodId) -> Result<()> {
    conn.prepare_cached(sql::DELETE)
        .map_err(map_sqlite)?
        .execute([id.get()])
        .map_err(map_sqlite)?;
    Ok(())
}

/// Deletes every method of an owner (when the owner is deleted: tokens are personal data).
pub(crate) fn delete_of_owner(conn: &Connection, owner: UserId) -> Result<()> {
    conn.prepare_cached(sql::DELETE_OF_OWNER)
        .map_err(map_sqlite)?
        .execute([owner.get()])
        .map_err(map_sqlite)?;
    Ok(())
}
