//! The rules of a file's body, shared by the writer (which must never produce a file the
//! reader refuses) and the reader: tables in order, rows in key order with each key once,
//! arity and types, and exactly the announced number of rows per table.

use super::{Column, Counts, TABLE_COUNT, TABLES, Table, Value};

/// Where a writer or reader is in the body of a file.
pub(crate) struct Progress {
    counts: Counts,
    /// Position in [`TABLES`] of the table being written or read.
    table: usize,
    /// Rows of that table so far.
    seen: u64,
    /// Rows of all tables so far.
    total: u64,
    /// Key of the previous row of the current table.
    last_key: Vec<Value>,
}

impl Progress {
    pub(crate) fn new(counts: Counts) -> Self {
        Progress {
            counts,
            table: 0,
            seen: 0,
            total: 0,
            last_key: Vec::new(),
        }
    }

    /// The table being written or read.
    pub(crate) fn current(&self) -> usize {
        self.table
    }

    pub(crate) fn counts(&self) -> &Counts {
        &self.counts
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Accepts the next row, a row of the table at `index` of [`TABLES`], or says what is
    /// wrong with it.
    pub(crate) fn row(&mut self, index: usize, values: &[Value]) -> Result<(), String> {
        let table = TABLES
            .get(index)
            .ok_or_else(|| "no such table".to_owned())?;
        check_row(table, values)?;
        if index < self.table {
            return Err(format!(
                "a row of {} after rows of {}: tables out of order",
                table.name,
                self.table_name()
            ));
        }
        while self.table < index {
            self.close_table()?;
        }
        if self.seen >= self.counts.at(index) {
            return Err(format!(
                "more rows of {} than the {} the header announces",
                table.name,
                self.counts.at(index)
            ));
        }
        let key = values.get(..table.key_len).unwrap_or(values);
        if self.seen > 0 && key <= self.last_key.as_slice() {
            return Err(format!(
                "a row of {} whose key does not follow the previous row's: rows out of key \
                 order or a key repeated",
                table.name
            ));
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.seen += 1;
        self.total += 1;
        Ok(())
    }

    /// Checks that every table has had exactly its announced rows (at the end of the body).
    pub(crate) fn finish(&mut self) -> Result<(), String> {
        while self.table < TABLE_COUNT {
            self.close_table()?;
        }
        Ok(())
    }

    fn table_name(&self) -> &'static str {
        TABLES.get(self.table).map_or("(end)", |t| t.name)
    }

    /// Leaves the current table, which must have had all its rows.
    fn close_table(&mut self) -> Result<(), String> {
        let expected = self.counts.at(self.table);
        if self.seen != expected {
            return Err(format!(
                "{} has {} rows where the header announces {expected}",
                self.table_name(),
                self.seen
            ));
        }
        self.table += 1;
        self.seen = 0;
        self.last_key.clear();
        Ok(())
    }
}

/// Checks a row's arity and the type of each value.
fn check_row(table: &Table, values: &[Value]) -> Result<(), String> {
    check_arity(table, values.len())?;
    for (value, column) in values.iter().zip(table.columns) {
        if !value.fits(column.ty) {
            return Err(type_error(table, column));
        }
    }
    Ok(())
}

/// Checks a row of `table` has one value per column.
pub(crate) fn check_arity(table: &Table, values: usize) -> Result<(), String> {
    if values == table.columns.len() {
        return Ok(());
    }
    Err(format!(
        "a row of {} with {values} values where the table has {} columns",
        table.name,
        table.columns.len()
    ))
}

/// What is wrong with a value that does not fit `column`.
pub(crate) fn type_error(table: &Table, column: &Column) -> String {
    format!(
        "{}.{} must be {} or null",
        table.name,
        column.name,
        column.ty.describe()
    )
}
