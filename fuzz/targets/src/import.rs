//! The portable-ledger reader and import.

use std::sync::{Arc, Mutex, OnceLock};

use tokio::runtime::Runtime;
use wallet_core::portable::{Portable, Reader, Value, reseal};
use wallet_sqlite::{Options, SqliteStore};

use crate::assert_typed;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    })
}

/// A writer whose bytes the caller keeps: an export writes on a thread of its own.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut v) => {
                v.extend_from_slice(buf);
                Ok(buf.len())
            }
            Err(_) => Err(std::io::Error::other("poisoned")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The store's export.
async fn export(store: &SqliteStore) -> Vec<u8> {
    let out = Shared::default();
    store
        .export(out.clone())
        .await
        .unwrap_or_else(|e| panic!("export: {e:?}"));
    match out.0.lock() {
        Ok(v) => v.clone(),
        Err(_) => panic!("export buffer poisoned"),
    }
}

/// Every row of a file, by table name; or the reader's refusal.
fn rows(file: &[u8]) -> wallet_core::Result<Vec<(&'static str, Vec<Value>)>> {
    let mut rows = Vec::new();
    Reader::new(file)?.for_each_row(|row| {
        rows.push((row.table.name, row.values));
        Ok(())
    })?;
    Ok(rows)
}

/// Reads the input as a ledger file: as it is when the first byte is even, or resealed (its
/// trailer recomputed, so that damage behind the checksum is reached) when odd. A file the
/// reader accepts is imported into an empty in-memory SQLite store.
///
/// Checks: the reader and the import refuse only with typed errors; a refused import leaves
/// the store empty; an accepted import verifies, and its export holds exactly the rows of the
/// input.
pub fn import(data: &[u8]) {
    let Some((flags, body)) = data.split_first() else {
        return;
    };
    let file = if flags & 1 == 1 {
        reseal(body)
    } else {
        body.to_vec()
    };
    let read = match rows(&file) {
        Ok(rows) => rows,
        Err(e) => {
            assert_typed("reader", &e);
            assert_eq!(e.code(), "import_invalid", "{e:?}");
            return;
        }
    };
    runtime().block_on(async {
        let store = SqliteStore::open_in_memory(Options::default())
            .unwrap_or_else(|e| panic!("store: {e:?}"));
        match store.import(std::io::Cursor::new(file)).await {
            Ok(imported) => {
                assert!(imported.report.is_ok(), "{:?}", imported.report);
                let out = export(&store).await;
                let again = rows(&out).unwrap_or_else(|e| panic!("re-read export: {e:?}"));
                assert_eq!(again, read, "an import changed the rows");
            }
            Err(e) => {
                assert_typed("import", &e);
                let out = export(&store).await;
                let left = rows(&out).unwrap_or_else(|e| panic!("re-read export: {e:?}"));
                assert!(left.is_empty(), "a refused import left rows: {left:?}");
            }
        }
    });
}
