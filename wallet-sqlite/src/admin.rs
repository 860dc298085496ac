//! SQL of the admin views: the dashboard and the user list. (The wallet and transaction lists
//! live with the other wallet queries.)

use rusqlite::{Connection, params};
use wallet_core::admin::{Dashboard, Page, Period, UserPage, UserQuery, Volume};
use wallet_core::identity::KycStatus;
use wallet_core::ids::UserId;
use wallet_core::money::Money;
use wallet_core::transaction::{TransactionKind, TransactionStatus};
use wallet_core::wallet::WalletStatus;
use wallet_core::{Error, Result, Role};

use crate::error::map_sqlite;
use crate::queries::currency;

pub(crate) mod sql {
    pub(crate) const USERS_BY_ROLE: &str =
        "SELECT role, count(*) FROM users WHERE deleted_at IS NULL GROUP BY role ORDER BY role";
    pub(crate) const USERS_BY_KYC: &str =
        "SELECT kyc, count(*) FROM users WHERE deleted_at IS NULL GROUP BY kyc ORDER BY kyc";
    pub(crate) const WALLETS_BY_STATUS: &str = "SELECT status, count(*) FROM wallets
         WHERE owner_id IS NOT NULL GROUP BY status ORDER BY status";
    /// The balance of every system account (its latest entry), per currency.
    pub(crate) const SYSTEM_BALANCES: &str = "SELECT w.currency, c.exponent, sum(e.balance_after)
         FROM wallets w
         JOIN currencies c ON c.code = w.currency
         JOIN entries e ON e.wallet_id = w.id
             AND e.seq = (SELECT max(seq) FROM entries WHERE wallet_id = w.id)
         WHERE w.owner_id IS NULL
         GROUP BY w.currency ORDER BY w.currency";
    pub(crate) const VOLUME: &str = "SELECT t.currency, c.exponent, t.kind, count(*), sum(t.amount)
         FROM transactions t JOIN currencies c ON c.code = t.currency
         WHERE t.created_at >= ?1 AND t.created_at < ?2 AND t.status = ?3
         GROUP BY t.currency, t.kind ORDER BY t.currency, t.kind";
    /// Users, newest first from a bound (`i64::MAX` for the first page), with optional
    /// filters (NULL: off).
    pub(crate) const LIST_USERS: &str = "SELECT id FROM users
         WHERE id < ?1 AND (?2 IS NULL OR role = ?2) AND (?3 IS NULL OR kyc = ?3)
           AND (?4 IS NULL OR active = ?4) AND (?5 = 1 OR deleted_at IS NULL)
         ORDER BY id DESC LIMIT ?6";

    /// The statements that must not scan a table without an index. The dashboard's counts
    /// over users and wallets are small-table aggregates; volume uses the time index.
    #[cfg(test)]
    pub(crate) const INDEXED: &[&str] = &[WALLETS_BY_STATUS, SYSTEM_BALANCES, VOLUME, LIST_USERS];
}

fn count(raw: i64) -> Result<u64> {
    u64::try_from(raw).map_err(|_| Error::corrupt("negative count"))
}

fn counts<T>(
    conn: &Connection,
    sql: &str,
    decode: impl Fn(i64) -> Result<T>,
) -> Result<Vec<(T, u64)>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_sqlite)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .map_err(map_sqlite)?;
    let mut out = Vec::new();
    for row in rows {
        let (value, n) = row.map_err(map_sqlite)?;
        out.push((decode(value)?, count(n)?));
    }
    Ok(out)
}

/// The dashboard, on one snapshot.
pub(crate) fn dashboard(conn: &Connection, period: Period) -> Result<Dashboard> {
    let users_by_role = counts(conn, sql::USERS_BY_ROLE, Role::from_db)?;
    let users_by_kyc = counts(conn, sql::USERS_BY_KYC, KycStatus::from_db)?;
    let wallets_by_status = counts(conn, sql::WALLETS_BY_STATUS, WalletStatus::from_db)?;

    let mut total_balances = Vec::new();
    let mut stmt = conn
        .prepare_cached(sql::SYSTEM_BALANCES)
        .map_err(map_sqlite)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(map_sqlite)?;
    for row in rows {
        let (code, exponent, system_sum) = row.map_err(map_sqlite)?;
        // Every currency's balances sum to zero, so customers hold what the system accounts
        // are short of.
        let held = system_sum.checked_neg().ok_or(Error::AmountOverflow)?;
        total_balances.push(Money::from_minor(held, currency(&code, exponent)?));
    }

    let mut volume = Vec::new();
    let mut stmt = conn.prepare_cached(sql::VOLUME).map_err(map_sqlite)?;
    let rows = stmt
        .query_map(
            params![
                period.since.as_micros(),
                period.until.as_micros(),
                TransactionStatus::Completed.to_db()
            ],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            },
        )
        .map_err(map_sqlite)?;
    for row in rows {
        let (code, exponent, kind, n, amount) = row.map_err(map_sqlite)?;
        volume.push(Volume {
            kind: TransactionKind::from_db(kind)?,
            count: count(n)?,
            amount: Money::from_minor(amount, currency(&code, exponent)?),
        });
    }
    Ok(Dashboard {
        users_by_role,
        users_by_kyc,
        wallets_by_status,
        total_balances,
        volume,
        fee_revenue: Vec::new(),
    })
}

/// A page of users.
pub(crate) fn list_users(conn: &Connection, q: &UserQuery) -> Result<UserPage> {
    let mut stmt = conn.prepare_cached(sql::LIST_USERS).map_err(map_sqlite)?;
    let ids = stmt
        .query_map(
            params![
                q.before.map_or(i64::MAX, UserId::get),
                q.role.map(Role::to_db),
                q.kyc.map(KycStatus::to_db),
                q.active.map(i64::from),
                i64::from(q.include_deleted),
                i64::from(q.limit) + 1
            ],
            |r| r.get::<_, i64>(0),
        )
        .map_err(map_sqlite)?
        .collect::<rusqlite::Result<Vec<i64>>>()
        .map_err(map_sqlite)?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        let id = UserId::new(id).map_err(crate::queries::corrupt("user id"))?;
        let user = crate::users::user(conn, id)?
            .ok_or_else(|| Error::corrupt("user vanished inside a snapshot"))?;
        items.push(user.to_user());
    }
    Ok(Page::from_overfetch(items, q.limit, |u| u.id))
}
