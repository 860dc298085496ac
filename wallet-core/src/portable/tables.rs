//! The canonical list of tables a ledger file carries, in dependency order.
//!
//! Names, columns and column order are exactly those of the stored schema (version
//! [`SCHEMA_VERSION`](super::SCHEMA_VERSION)); every backend uses the same names, so a backend
//! builds its statements from this list. Each backend's tests compare this list with its live
//! schema, so a schema change that forgets the format fails there.

/// How a column's values are written in a ledger file. Every column may also be null.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// A signed 64-bit integer (ids, amounts in minor units, enumerations, flags, microsecond
    /// timestamps): a JSON integer.
    Int,
    /// UTF-8 text: a JSON string.
    Text,
    /// Bytes: a JSON string of lower-case hexadecimal digits, two per byte.
    Blob,
}

impl ColumnType {
    /// How the type reads in messages.
    pub fn describe(self) -> &'static str {
        match self {
            ColumnType::Int => "an integer",
            ColumnType::Text => "text",
            ColumnType::Blob => "hexadecimal bytes",
        }
    }
}

/// One column of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Column {
    /// Its name in every backend's schema.
    pub name: &'static str,
    /// How its values are written.
    pub ty: ColumnType,
}

/// One table: its name, its columns in schema order, and its primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Table {
    /// Its name in every backend's schema.
    pub name: &'static str,
    /// Its columns, in the schema's order.
    pub columns: &'static [Column],
    /// How many leading columns form the primary key. Rows are written in ascending order of
    /// the key (integers by value, text and bytes bytewise), each key once.
    pub key_len: usize,
}

impl Table {
    /// The primary key's columns.
    pub fn key(&self) -> &'static [Column] {
        self.columns.get(..self.key_len).unwrap_or(self.columns)
    }

    /// The table of this name, if the format has one.
    pub fn named(name: &str) -> Option<&'static Table> {
        TABLES.iter().find(|t| t.name == name)
    }

    /// Its position in [`TABLES`] (the order tables appear in a file).
    pub fn position(&self) -> Option<usize> {
        TABLES.iter().position(|t| t.name == self.name)
    }
}

/// How many tables a ledger file carries.
pub const TABLE_COUNT: usize = 14;

const fn int(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Int,
    }
}

const fn text(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Text,
    }
}

const fn blob(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Blob,
    }
}

/// Every table of the schema, in the order a file carries them: each table after the tables
/// it refers to, so rows can be inserted in file order with foreign keys checked as they go.
/// (`transactions.original_id` refers to an earlier transaction, which has a smaller id.)
pub static TABLES: [Table; TABLE_COUNT] = [
    Table {
        name: "currencies",
        columns: &[text("code"), int("exponent")],
        key_len: 1,
    },
    Table {
        name: "users",
        columns: &[
            int("id"),
            text("username"),
            text("email"),
            text("full_name"),
            text("phone"),
            text("national_id"),
            int("role"),
            int("active"),
            int("kyc"),
            text("kyc_reason"),
            text("password"),
            int("token_version"),
            int("created_at"),
            int("updated_at"),
            int("deleted_at"),
        ],
        key_len: 1,
    },
    Table {
        name: "wallets",
        columns: &[
            int("id"),
            int("owner_id"),
            int("kind"),
            text("currency"),
            int("status"),
            int("held"),
            int("created_at"),
            int("updated_at"),
        ],
        key_len: 1,
    },
    Table {
        name: "transactions",
        columns: &[
            int("id"),
            int("kind"),
            int("status"),
            int("amount"),
            text("currency"),
            text("description"),
            text("metadata"),
            int("initiated_by"),
            text("idempotency_key"),
            blob("fingerprint"),
            int("created_at"),
            int("completed_at"),
            int("refunded"),
            int("original_id"),
        ],
        key_len: 1,
    },
    Table {
        name: "entries",
        columns: &[
            int("wallet_id"),
            int("seq"),
            int("txn_id"),
            int("amount"),
            int("balance_after"),
            int("debits_after"),
        ],
        key_len: 2,
    },
    Table {
        name: "pending",
        columns: &[
            int("txn_id"),
            int("wallet_id"),
            int("counter_id"),
            int("amount"),
            int("held"),
            text("gateway_ref"),
            int("expires_at"),
            int("open"),
        ],
        key_len: 1,
    },
    Table {
        name: "wallet_limits",
        columns: &[
            int("wallet_id"),
            int("per_transaction"),
            int("daily"),
            int("monthly"),
        ],
        key_len: 1,
    },
    Table {
        name: "merchants",
        columns: &[int("id"), int("wallet_id"), text("name"), int("created_at")],
        key_len: 1,
    },
    Table {
        name: "merchant_orders",
        columns: &[int("merchant_id"), text("order_id"), int("txn_id")],
        key_len: 2,
    },
    Table {
        name: "payment_links",
        columns: &[
            int("id"),
            blob("code"),
            int("wallet_id"),
            int("amount"),
            text("description"),
            int("status"),
            int("expires_at"),
            int("paid_txn"),
            int("created_by"),
            text("idempotency_key"),
            blob("fingerprint"),
            int("created_at"),
        ],
        key_len: 1,
    },
    Table {
        name: "payment_methods",
        columns: &[
            int("id"),
            int("owner_id"),
            int("kind"),
            text("provider"),
            text("token"),
            text("display"),
            text("nickname"),
            int("is_default"),
            int("verified"),
            int("status"),
            int("created_at"),
            int("updated_at"),
        ],
        key_len: 1,
    },
    Table {
        name: "notifications",
        columns: &[
            int("id"),
            int("user_id"),
            int("kind"),
            int("priority"),
            text("title"),
            text("message"),
            int("read"),
            int("created_at"),
        ],
        key_len: 1,
    },
    Table {
        name: "events",
        columns: &[
            int("id"),
            int("at"),
            text("kind"),
            text("subject"),
            text("payload"),
        ],
        key_len: 1,
    },
    Table {
        name: "audit_log",
        columns: &[
            int("id"),
            int("at"),
            int("actor_id"),
            int("action"),
            text("target"),
            text("detail"),
            text("outcome"),
        ],
        key_len: 1,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_keys_are_leading_columns() {
        let mut tables = HashSet::new();
        for (i, t) in TABLES.iter().enumerate() {
            assert!(tables.insert(t.name), "{}", t.name);
            assert_eq!(t.position(), Some(i));
            assert_eq!(Table::named(t.name), Some(t));
            assert!(t.key_len >= 1 && t.key_len <= t.columns.len(), "{}", t.name);
            assert_eq!(t.key().len(), t.key_len);
            let mut columns = HashSet::new();
            for c in t.columns {
                assert!(columns.insert(c.name), "{}.{}", t.name, c.name);
                // Names go into statements unquoted by some tools: keep them plain.
                assert!(
                    c.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{}",
                    c.name
                );
            }
        }
        assert_eq!(Table::named("sqlite_schema"), None);
    }
}
