//! Notifications kept in two places (`src/notes.rs`): a money movement's on the entry it is
//! about, anything else as a row. These tests drive the public API with random transfers (some
//! with transaction notifications turned off, some between one user's own wallets), security
//! notices, marks and pages, and check every page, count and mark against a model of what the
//! users were told, and the stored invariants against the rows themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use proptest::prelude::*;
use rusqlite::Connection;
use wallet_core::ids::NotificationId;
use wallet_core::notify::Notification;
use wallet_core::testkit::portable_cases::{export_bytes, import_bytes};
use wallet_core::testkit::{Fixture, d};
use wallet_core::{Actor, Config, Ledger, Store, TransferRequest, Wallet, WalletKind};
use wallet_sqlite::{Options, SqliteStore};

#[derive(Debug, Clone)]
enum Step {
    /// A transfer of 0.01 between two of the four wallets (skipped when they are the same),
    /// with transaction notifications on or off.
    Transfer(usize, usize, bool),
    /// A security notice for a user (they sign out everywhere): a notification kept as a row.
    SignOut(usize),
    /// Mark these read: picks among every user's notifications, and ids that are nobody's.
    MarkSome(usize, Vec<usize>),
    MarkAll(usize),
    /// A page: user, unread only, before (a pick among the user's, or none), limit.
    Page(usize, bool, Option<usize>, u32),
    Count(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => (0..4usize, 0..4usize).prop_map(|(a, b)| Step::Transfer(a, b, true)),
        3 => (0..4usize, 0..4usize).prop_map(|(a, b)| Step::Transfer(a, b, false)),
        1 => (0..3usize).prop_map(Step::SignOut),
        2 => (0..3usize, proptest::collection::vec(0..10_000usize, 1..6))
            .prop_map(|(u, picks)| Step::MarkSome(u, picks)),
        1 => (0..3usize).prop_map(Step::MarkAll),
        3 => (0..3usize, any::<bool>(), proptest::option::of(0..10_000usize), 1..12u32)
            .prop_map(|(u, unread, before, limit)| Step::Page(u, unread, before, limit)),
        1 => (0..3usize).prop_map(Step::Count),
    ]
}

/// What a user was told (the title says it: money sent, money received, a security notice)
/// and whether it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Told {
    title: String,
    read: bool,
}

impl Told {
    fn new(title: &str) -> Told {
        Told {
            title: title.to_owned(),
            read: false,
        }
    }
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The invariants `src/notes.rs` states, checked on the stored rows.
fn assert_invariants(conn: &Connection) {
    let half = count(
        conn,
        "SELECT count(*) FROM entries WHERE (note_id IS NULL) <> (note IS NULL)",
    );
    assert_eq!(half, 0, "an entry with half a notification");
    let unowned = count(
        conn,
        "SELECT count(*) FROM entries e JOIN wallets w ON w.id = e.wallet_id
         WHERE e.note_id IS NOT NULL AND w.owner_id IS NULL",
    );
    assert_eq!(unowned, 0, "a system account carries a notification");
    let unordered = count(
        conn,
        "SELECT count(*) FROM entries a JOIN entries b
             ON b.wallet_id = a.wallet_id AND b.seq > a.seq
         WHERE a.note_id IS NOT NULL AND b.note_id IS NOT NULL AND b.note_id <= a.note_id",
    );
    assert_eq!(
        unordered, 0,
        "ids that do not increase with seq in a wallet"
    );
    let next = count(
        conn,
        "SELECT next FROM sequences WHERE name = 'notification'",
    );
    let highest = count(
        conn,
        "SELECT max(coalesce((SELECT max(id) FROM notifications), 0),
                    coalesce((SELECT max(note_id) FROM entries), 0))",
    );
    assert!(
        highest < next,
        "id {highest} given out past the sequence ({next})"
    );
    let reused = count(
        conn,
        "SELECT count(*) FROM (SELECT id FROM (SELECT id FROM notifications UNION ALL
                                             SELECT note_id FROM entries
                                             WHERE note_id IS NOT NULL)
                               GROUP BY id HAVING count(*) > 1)",
    );
    assert_eq!(reused, 0, "an id used twice");
    let wrong_last = count(
        conn,
        "SELECT count(*) FROM entries e JOIN wallets w ON w.id = e.wallet_id
         WHERE w.owner_id IS NOT NULL AND e.note_id IS NULL
           AND e.note_last IS NOT (SELECT max(seq) FROM entries p
                                   WHERE p.wallet_id = e.wallet_id AND p.seq < e.seq
                                     AND p.note_id IS NOT NULL)",
    );
    assert_eq!(
        wrong_last, 0,
        "note_last does not name the latest earlier carrier"
    );
}

struct World {
    f: Fixture<SqliteStore>,
    /// The same store with transaction notifications off.
    quiet: Ledger<SqliteStore>,
    users: Vec<Actor>,
    /// Four wallets: the first user owns two (transfers between them are their own).
    wallets: Vec<(Wallet, usize)>,
    /// What each user was told, oldest first.
    told: Vec<Vec<Told>>,
    oracle: Connection,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.db");
        let store = SqliteStore::open(&path, Options::default()).unwrap();
        let f = Fixture::new(store.clone()).await;
        let quiet = Ledger::with_clock(
            store,
            Config::default().with_transaction_notifications(false),
            f.clock.clone(),
        )
        .await
        .unwrap();
        let mut users = Vec::new();
        for _ in 0..3 {
            users.push(f.user().await);
        }
        let mut wallets = Vec::new();
        for owner in [0, 1, 2] {
            wallets.push((f.funded(&users[owner], "USD", "1000").await, owner));
        }
        let savings = f
            .wallet_of_kind(&users[0], WalletKind::Savings, "USD")
            .await;
        f.ledger
            .transfer(
                &users[0],
                TransferRequest::new(wallets[0].0.id, savings.id, d("500"), f.key()),
            )
            .await
            .unwrap();
        wallets.insert(1, (savings, 0));
        let oracle = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap();
        let mut w = World {
            f,
            quiet,
            users,
            wallets,
            told: vec![Vec::new(); 3],
            oracle,
            _dir: dir,
        };
        // Registration and funding told each user things the model did not see: start the
        // model from what the store says now, all of it checked by later steps' reads.
        for u in 0..3 {
            w.told[u] = w
                .all(u)
                .await
                .iter()
                .rev()
                .map(|n| Told {
                    title: n.title.clone(),
                    read: n.read,
                })
                .collect();
        }
        w
    }

    /// Every notification of user `u`, newest first, straight from the store.
    async fn all(&self, u: usize) -> Vec<Notification> {
        self.f
            .store
            .notifications(self.users[u].user, false, i64::MAX, 100_000)
            .await
            .unwrap()
    }

    /// Every notification of user `u`, checked against the model: same number, order, titles
    /// and read states, ids decreasing.
    async fn checked_all(&self, u: usize) -> Vec<Notification> {
        let all = self.all(u).await;
        let got: Vec<(&str, bool)> = all.iter().map(|n| (n.title.as_str(), n.read)).collect();
        let expected: Vec<(&str, bool)> = self.told[u]
            .iter()
            .rev()
            .map(|t| (t.title.as_str(), t.read))
            .collect();
        assert_eq!(got, expected, "user {u}'s notifications");
        assert!(
            all.windows(2).all(|p| p[0].id > p[1].id),
            "ids out of order"
        );
        assert!(all.iter().all(|n| n.user == self.users[u].user));
        all
    }

    async fn run(&mut self, step: &Step) {
        match step {
            Step::Transfer(a, b, loud) => {
                if a == b {
                    return;
                }
                let ((from, sender), (to, receiver)) = (&self.wallets[*a], &self.wallets[*b]);
                let (sender, receiver) = (*sender, *receiver);
                let ledger = if *loud { &self.f.ledger } else { &self.quiet };
                ledger
                    .transfer(
                        &self.users[sender],
                        TransferRequest::new(from.id, to.id, d("0.01"), self.f.key()),
                    )
                    .await
                    .unwrap();
                if *loud {
                    if sender == receiver {
                        self.told[sender].push(Told::new("Money received"));
                    } else {
                        self.told[sender].push(Told::new("Money sent"));
                        self.told[receiver].push(Told::new("Money received"));
                    }
                }
            }
            Step::SignOut(u) => {
                let user = &self.users[*u];
                self.f
                    .ledger
                    .logout_everywhere(user, user.user)
                    .await
                    .unwrap();
                self.told[*u].push(Told::new("Signed out everywhere"));
            }
            Step::MarkSome(u, picks) => {
                // Picks run over every user's notifications and past them (ids nobody has).
                let mut everyone = Vec::new();
                for v in 0..3 {
                    everyone.extend(self.all(v).await.into_iter().map(|n| n.id.get()));
                }
                everyone.sort_unstable();
                let top = everyone.last().copied().unwrap_or(0);
                let ids: Vec<i64> = picks
                    .iter()
                    .map(|&i| {
                        everyone
                            .get(i % (everyone.len() + 3))
                            .copied()
                            .unwrap_or(top + 7)
                    })
                    .collect();
                let mine = self.checked_all(*u).await;
                let mut expected = 0;
                for (k, n) in mine.iter().enumerate() {
                    if !n.read && ids.contains(&n.id.get()) {
                        expected += 1;
                        let at = self.told[*u].len() - 1 - k;
                        self.told[*u][at].read = true;
                    }
                }
                let user = &self.users[*u];
                let changed = self
                    .f
                    .ledger
                    .mark_read(
                        user,
                        user.user,
                        Some(
                            ids.into_iter()
                                .map(|i| NotificationId::new(i).unwrap())
                                .collect(),
                        ),
                    )
                    .await
                    .unwrap();
                assert_eq!(changed, expected, "{step:?}");
            }
            Step::MarkAll(u) => {
                let expected = self.told[*u].iter().filter(|t| !t.read).count() as u64;
                let user = &self.users[*u];
                let changed = self
                    .f
                    .ledger
                    .mark_read(user, user.user, None)
                    .await
                    .unwrap();
                assert_eq!(changed, expected, "{step:?}");
                for t in &mut self.told[*u] {
                    t.read = true;
                }
            }
            Step::Page(u, unread_only, before, limit) => {
                let all = self.checked_all(*u).await;
                let before = before.and_then(|i| all.get(i % (all.len() + 1)).map(|n| n.id));
                let user = &self.users[*u];
                let page = self
                    .f
                    .ledger
                    .notifications(user, user.user, *unread_only, before, *limit)
                    .await
                    .unwrap();
                let mut expected: Vec<&Notification> = all
                    .iter()
                    .filter(|n| !(*unread_only && n.read))
                    .filter(|n| before.is_none_or(|b| n.id < b))
                    .collect();
                let more = expected.len() > *limit as usize;
                expected.truncate(*limit as usize);
                let expected: Vec<Notification> = expected.into_iter().cloned().collect();
                assert_eq!(page.items, expected, "{step:?}");
                assert_eq!(page.next.is_some(), more, "{step:?}");
            }
            Step::Count(u) => {
                let expected = self.told[*u].iter().filter(|t| !t.read).count() as u64;
                let user = &self.users[*u];
                let got = self.f.ledger.unread_count(user, user.user).await.unwrap();
                assert_eq!(got, expected, "{step:?}");
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Exports `w`'s store, imports the file into a fresh store, and checks every user's
/// notifications read the same there (where all are rows) as here.
async fn assert_round_trip(w: &World) {
    let (file, _) = export_bytes(&w.f.store).await;
    let dir = tempfile::tempdir().unwrap();
    let copy = SqliteStore::open(dir.path().join("copy.db"), Options::default()).unwrap();
    import_bytes(&copy, file.clone()).await.unwrap();
    for u in &w.users {
        let here =
            w.f.store
                .notifications(u.user, false, i64::MAX, 100_000)
                .await;
        let there = copy.notifications(u.user, false, i64::MAX, 100_000).await;
        assert_eq!(here.unwrap(), there.unwrap());
        assert_eq!(
            w.f.store.unread_count(u.user).await.unwrap(),
            copy.unread_count(u.user).await.unwrap()
        );
    }
    let (again, _) = export_bytes(&copy).await;
    assert!(
        file == again,
        "an export of the import is not the same file"
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 10,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Whatever transfers, notices, marks and pages come, every page, count and mark is what
    /// the model says, the stored rows keep their invariants, and an export carries the same
    /// notifications.
    #[test]
    fn pages_counts_and_marks_match_what_users_were_told(
        steps in proptest::collection::vec(step(), 120..220)
    ) {
        runtime().block_on(async {
            let mut w = World::new().await;
            for (i, s) in steps.iter().enumerate() {
                w.run(s).await;
                if i % 40 == 0 {
                    assert_invariants(&w.oracle);
                }
            }
            assert_invariants(&w.oracle);
            for u in 0..3 {
                w.run(&Step::Page(u, false, None, 11)).await;
                w.run(&Step::Page(u, true, None, 7)).await;
                w.run(&Step::Count(u)).await;
            }
            assert_round_trip(&w).await;
            w.f.assert_verified().await;
        });
    }
}

/// Long runs with notifications off put many entries between two notifications: pages jump
/// over them, and pages deep in a wallet's history find their place by id.
#[test]
fn pages_jump_over_entries_that_carry_nothing() {
    runtime().block_on(async {
        let mut w = World::new().await;
        for round in 0..4 {
            for _ in 0..60 {
                w.run(&Step::Transfer(3, 2, false)).await;
            }
            for _ in 0..(5 + round) {
                w.run(&Step::Transfer(3, 2, true)).await;
                w.run(&Step::Transfer(2, 3, false)).await;
            }
            w.run(&Step::SignOut(1)).await;
        }
        assert_invariants(&w.oracle);
        for limit in [1, 2, 5, 9, 30] {
            for before in [None, Some(3), Some(11), Some(20)] {
                w.run(&Step::Page(1, false, before, limit)).await;
                w.run(&Step::Page(1, true, before, limit)).await;
                w.run(&Step::Page(2, false, before, limit)).await;
            }
        }
        w.run(&Step::MarkSome(1, vec![2, 6, 13])).await;
        w.run(&Step::Count(1)).await;
        w.run(&Step::Page(1, true, None, 50)).await;
        w.run(&Step::MarkAll(2)).await;
        w.run(&Step::Count(2)).await;
        for _ in 0..3 {
            w.run(&Step::Transfer(3, 2, true)).await;
        }
        w.run(&Step::Page(1, true, None, 50)).await;
        w.run(&Step::Count(1)).await;
        assert_invariants(&w.oracle);
        assert_round_trip(&w).await;
    });
}

/// Reading while money moves and notices arrive: a listing reads rows and entries with several
/// statements, all in one snapshot, so its first page is exactly the newest notifications of
/// some moment. (Ids increase in commit order: once a page shows an id, every smaller one is
/// committed, so the same page asked again below that id must read the same.) Read without one
/// snapshot, a commit between the rows and the entries can show a new notification without an
/// older one of the same commit.
#[test]
fn pages_read_while_writes_go_on_are_snapshots() {
    runtime().block_on(async {
        let w = World::new().await;
        // Two writers, so a notice and a transfer often share a commit.
        let transfers = {
            let ledger = w.f.ledger.clone();
            let sender = w.users[w.wallets[3].1];
            let (from, to) = (w.wallets[3].0.id, w.wallets[2].0.id);
            tokio::spawn(async move {
                for i in 0..2000 {
                    // Wallet 2 is user 1's: each transfer tells them of money received (on
                    // an entry).
                    let req = TransferRequest::new(from, to, d("0.01"), format!("busy-{i}"));
                    ledger.transfer(&sender, req).await.unwrap();
                }
            })
        };
        let notices = {
            let ledger = w.f.ledger.clone();
            let user = w.users[1];
            tokio::spawn(async move {
                for _ in 0..2000 {
                    // A notice for user 1 (a row).
                    ledger.logout_everywhere(&user, user.user).await.unwrap();
                }
            })
        };
        let user = w.users[1].user;
        let mut checks = 0;
        while !(transfers.is_finished() && notices.is_finished()) {
            checks += 1;
            let page =
                w.f.store
                    .notifications(user, false, i64::MAX, 4)
                    .await
                    .unwrap();
            let Some(top) = page.first().map(|n| n.id.get()) else {
                continue;
            };
            let again = w.f.store.notifications(user, false, top + 1, 4).await;
            assert_eq!(page, again.unwrap(), "read {checks} was not one snapshot");
        }
        transfers.await.unwrap();
        notices.await.unwrap();
        assert!(checks > 100, "only {checks} reads while writes went on");
    });
}
