//! Export and import on SQLite: the shared portable-format suite on memory and file stores,
//! the format's table list against the live schema, and real files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod memory {
    wallet_core::portable_suite!(|| async {
        wallet_sqlite::SqliteStore::open_in_memory(wallet_sqlite::Options::default()).unwrap()
    });
}

mod file {
    use std::sync::atomic::{AtomicU64, Ordering};

    static NEXT: AtomicU64 = AtomicU64::new(0);

    /// A store on a fresh file; the directory is removed when the process exits.
    fn fresh() -> wallet_sqlite::SqliteStore {
        let dir = std::env::temp_dir().join(format!("wallet-portable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.db", NEXT.fetch_add(1, Ordering::Relaxed)));
        wallet_sqlite::SqliteStore::open(path, wallet_sqlite::Options::default()).unwrap()
    }

    wallet_core::portable_suite!(|| async { fresh() });
}

mod sqlite {
    use std::path::Path;

    use rusqlite::Connection;
    use wallet_core::portable::{ColumnType, Portable, SCHEMA_VERSION, TABLES, Table};
    use wallet_core::testkit::portable_cases::{populated, populated_config};
    use wallet_core::testkit::{assert_code, d};
    use wallet_core::{DepositRequest, Ledger, TransferRequest};
    use wallet_sqlite::{Options, SqliteStore};

    /// Rows of every table of the file at `path`, read without the library.
    fn rows_per_table(path: &Path) -> Vec<(&'static str, i64)> {
        let conn = Connection::open(path).unwrap();
        TABLES
            .iter()
            .map(|t| {
                let n = conn
                    .query_row(&format!("SELECT count(*) FROM `{}`", t.name), [], |r| {
                        r.get(0)
                    })
                    .unwrap();
                (t.name, n)
            })
            .collect()
    }

    fn position(name: &str) -> usize {
        Table::named(name).and_then(Table::position).unwrap()
    }

    /// Columns this schema stores that the format does not carry: money movements'
    /// notifications and events are stored by reference (schema 4) and carried rendered, and
    /// most movements' notifications are kept on their entries (schema 5) and carried as
    /// notifications.
    const STORED_ONLY: &[(&str, &[&str])] = &[
        ("notifications", &["txn_id", "txn_state"]),
        ("events", &["txn_id", "txn_status"]),
        ("entries", &["note_id", "note", "note_delay", "note_last"]),
        ("wallets", &["notes_read_upto"]),
    ];
    /// Tables this schema keeps that the format does not carry: the writer's counters (schema
    /// 5), set again on import.
    const STORED_ONLY_TABLES: &[&str] = &["sequences"];

    /// The format's table list is this schema: same tables, columns in the same order with the
    /// same types (besides the stored-only columns above), the same primary keys, and every
    /// table after those it refers to.
    #[test]
    fn the_format_carries_exactly_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schema.db");
        SqliteStore::open(&path, Options::default())
            .unwrap()
            .close();
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        // Schemas 4 and 5 changed how rows are stored, not which rows the format carries.
        assert_eq!((version, SCHEMA_VERSION), (5, 3));
        let mut stored: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .filter(|name: &String| !STORED_ONLY_TABLES.contains(&name.as_str()))
            .collect();
        stored.sort();
        let mut carried: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        carried.sort_unstable();
        assert_eq!(stored, carried);
        for table in &TABLES {
            let mut info = conn
                .prepare(&format!("PRAGMA table_info(`{}`)", table.name))
                .unwrap();
            let columns: Vec<(String, String, i64)> = info
                .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(5)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let expected: Vec<(String, String)> = table
                .columns
                .iter()
                .map(|c| {
                    let ty = match c.ty {
                        ColumnType::Int => "INTEGER",
                        ColumnType::Text => "TEXT",
                        ColumnType::Blob => "BLOB",
                    };
                    (c.name.to_owned(), ty.to_owned())
                })
                .collect();
            let stored_only = STORED_ONLY
                .iter()
                .find(|(name, _)| *name == table.name)
                .map_or(&[][..], |(_, columns)| *columns);
            let found: Vec<(String, String)> = columns
                .iter()
                .filter(|(n, _, _)| !stored_only.contains(&n.as_str()))
                .map(|(n, t, _)| (n.clone(), t.clone()))
                .collect();
            assert_eq!(found, expected, "{}", table.name);
            let mut key: Vec<(i64, String)> = columns
                .iter()
                .filter(|(_, _, pk)| *pk > 0)
                .map(|(n, _, pk)| (*pk, n.clone()))
                .collect();
            key.sort();
            let key: Vec<String> = key.into_iter().map(|(_, n)| n).collect();
            let expected_key: Vec<&str> = table.key().iter().map(|c| c.name).collect();
            assert_eq!(key, expected_key, "{}", table.name);
            let mut fks = conn
                .prepare(&format!("PRAGMA foreign_key_list(`{}`)", table.name))
                .unwrap();
            let parents: Vec<String> = fks
                .query_map([], |r| r.get(2))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            for parent in parents {
                assert!(
                    parent == table.name || position(&parent) < position(table.name),
                    "{} comes before {parent}, which it refers to",
                    table.name
                );
            }
        }
    }

    /// A file written to disk, read back into another database file, and written again is the
    /// same file; the copy survives closing and reopening.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_round_trip_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let source =
            populated(SqliteStore::open(dir.path().join("a.db"), Options::default()).unwrap())
                .await;
        let exported = dir.path().join("a.jsonl");
        let written = source
            .store
            .export(std::fs::File::create(&exported).unwrap())
            .await
            .unwrap();
        let target_path = dir.path().join("b.db");
        let target = SqliteStore::open(&target_path, Options::default()).unwrap();
        let imported = target
            .import(std::fs::File::open(&exported).unwrap())
            .await
            .unwrap();
        assert_eq!(imported.summary, written);
        target.close();
        let reopened = SqliteStore::open(&target_path, Options::default()).unwrap();
        let again = dir.path().join("b.jsonl");
        reopened
            .export(std::fs::File::create(&again).unwrap())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(&exported).unwrap(),
            std::fs::read(&again).unwrap()
        );
        for (table, rows) in rows_per_table(&target_path) {
            assert_eq!(
                u64::try_from(rows).unwrap(),
                written.counts.get(table).unwrap()
            );
        }
    }

    /// A damaged file leaves the database file without a single row, as SQLite itself counts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_file_leaves_the_database_file_empty() {
        let dir = tempfile::tempdir().unwrap();
        let source = populated(SqliteStore::open_in_memory(Options::default()).unwrap()).await;
        let file = dir.path().join("ledger.jsonl");
        source
            .store
            .export(std::fs::File::create(&file).unwrap())
            .await
            .unwrap();
        let bytes = std::fs::read(&file).unwrap();
        let target_path = dir.path().join("target.db");
        let target = SqliteStore::open(&target_path, Options::default()).unwrap();
        for cut in [bytes.len() - 1, bytes.len() / 2, 10] {
            let truncated = dir.path().join(format!("cut-{cut}.jsonl"));
            std::fs::write(&truncated, &bytes[..cut]).unwrap();
            assert_code(
                target
                    .import(std::fs::File::open(&truncated).unwrap())
                    .await,
                "import_invalid",
            );
            assert!(
                rows_per_table(&target_path).iter().all(|(_, n)| *n == 0),
                "cut at {cut}"
            );
        }
    }

    /// An input that, at its first read, says it started and waits to be let go: an import
    /// reading it holds the writer for as long as the test wants.
    struct Gated {
        started: Option<std::sync::mpsc::Sender<()>>,
        gate: std::sync::mpsc::Receiver<()>,
        bytes: std::io::Cursor<Vec<u8>>,
    }

    impl std::io::Read for Gated {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if let Some(started) = self.started.take() {
                started.send(()).unwrap();
                self.gate.recv().unwrap();
            }
            self.bytes.read(buf)
        }
    }

    /// Writes sent while an import runs wait for it, then apply to the imported ledger.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_queue_behind_an_import_and_see_its_ledger() {
        let source = populated(SqliteStore::open_in_memory(Options::default()).unwrap()).await;
        let alice = source.user().await;
        let bob = source.user().await;
        let a = source.funded(&alice, "USD", "100").await;
        let b = source.wallet(&bob, "USD").await;
        let (file, _) = wallet_core::testkit::portable_cases::export_bytes(&source.store).await;

        let dir = tempfile::tempdir().unwrap();
        let target = SqliteStore::open(dir.path().join("t.db"), Options::default()).unwrap();
        let ledger = Ledger::with_clock(target.clone(), populated_config(), source.clock.clone())
            .await
            .unwrap();
        // Before the import the users do not exist here.
        assert_code(
            ledger
                .transfer(&alice, TransferRequest::new(a.id, b.id, d("1"), "early"))
                .await,
            "forbidden",
        );
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, gate) = std::sync::mpsc::channel();
        let input = Gated {
            started: Some(started_tx),
            gate,
            bytes: std::io::Cursor::new(file),
        };
        let import = {
            let target = target.clone();
            tokio::spawn(async move { target.import(input).await })
        };
        tokio::task::spawn_blocking(move || started.recv().unwrap())
            .await
            .unwrap();
        // The writer is inside the import: these writes queue behind it.
        let mut transfers = Vec::new();
        for i in 0..20 {
            let ledger = ledger.clone();
            transfers.push(tokio::spawn(async move {
                ledger
                    .transfer(
                        &alice,
                        TransferRequest::new(a.id, b.id, d("1"), format!("t-{i}")),
                    )
                    .await
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        release.send(()).unwrap();
        import.await.unwrap().unwrap();
        for t in transfers {
            t.await.unwrap().unwrap();
        }
        ledger
            .deposit(&alice, DepositRequest::new(a.id, d("1"), "after"))
            .await
            .unwrap();
        let admin = source.admin;
        assert_eq!(
            ledger.wallet(&admin, b.id).await.unwrap().balance.amount(),
            d("20")
        );
        assert!(ledger.verify(&admin).await.unwrap().is_ok());
    }
}
