//! History queries, cursors and description search, run against a small ledger.

use std::sync::OnceLock;

use tokio::runtime::Runtime;
use wallet_core::history::HISTORY_PAGE_MAX;
use wallet_core::ids::TransactionRef;
use wallet_core::payments::{HoldRequest, HoldTarget, RefundRequest};
use wallet_core::reports::SearchText;
use wallet_core::testkit::{Fixture, START, d, unlimited};
use wallet_core::{
    Actor, Config, DepositRequest, HistoryCursor, HistoryLine, HistoryQuery, Money, Timestamp,
    TransactionKind, TransactionStatus, TransferRequest, Wallet, WalletId, WithdrawRequest,
};
use wallet_sqlite::{Options, SqliteStore};

use crate::assert_typed;
use crate::input::Input;

/// Descriptions of the fixture's lines: SQL and LIKE metacharacters, case that only Unicode
/// folds, text that is not there at all.
const DESCRIPTIONS: [Option<&str>; 12] = [
    None,
    Some("Rent"),
    Some("rent 100% paid"),
    Some("under_score"),
    Some("back\\slash"),
    Some("ÄÖÜ Straße"),
    Some("İstanbul trip"),
    Some("party 🎉"),
    Some("' OR 1=1 --"),
    Some("%"),
    Some("_"),
    Some("zero\u{200b}width"),
];

struct Ledger {
    runtime: Runtime,
    fixture: Fixture<SqliteStore>,
    alice: Actor,
    /// Alice's wallet, Bob's wallet.
    wallets: [Wallet; 2],
    /// Every line of each wallet, newest first.
    lines: [Vec<HistoryLine>; 2],
}

fn ledger() -> &'static Ledger {
    static LEDGER: OnceLock<Ledger> = OnceLock::new();
    LEDGER.get_or_init(build)
}

fn build() -> Ledger {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let (fixture, alice, wallets) = runtime.block_on(async {
        let store = SqliteStore::open_in_memory(Options::default())
            .unwrap_or_else(|e| panic!("store: {e:?}"));
        let config = Config::default()
            .with_default_limits(unlimited())
            .unwrap_or_else(|e| panic!("config: {e:?}"));
        let f = Fixture::with_config(store, config).await;
        let alice = f.user().await;
        let bob = f.user().await;
        let a = f.wallet(&alice, "USD").await;
        let b = f.wallet(&bob, "USD").await;
        let l = &f.ledger;
        let ok = |r: wallet_core::Result<wallet_core::Receipt>| {
            r.unwrap_or_else(|e| panic!("fixture step: {e:?}"))
        };
        for i in 0..24usize {
            let text = DESCRIPTIONS[i % DESCRIPTIONS.len()];
            let with = |mut details: wallet_core::MoveDetails| {
                details.description = text.map(str::to_owned);
                details
            };
            let amount = d(&format!("{}.{:02}", 10 + i, i));
            let mut deposit = DepositRequest::new(a.id, amount, f.key());
            deposit.details = with(deposit.details);
            ok(l.deposit(&alice, deposit).await);
            let mut to_bob = TransferRequest::new(a.id, b.number, d("1.25"), f.key());
            to_bob.details = with(to_bob.details);
            let paid = ok(l.transfer(&alice, to_bob).await);
            match i % 4 {
                0 => {
                    let mut back = TransferRequest::new(b.id, a.id, d("0.50"), f.key());
                    back.details = with(back.details);
                    let back = ok(l.transfer(&bob, back).await);
                    // Alice refunds part of what Bob sent her.
                    ok(l.refund(
                        &alice,
                        RefundRequest {
                            transaction: back.transaction.reference,
                            amount: Some(d("0.10")),
                            description: text.map(str::to_owned),
                            idempotency_key: f.key(),
                        },
                    )
                    .await);
                }
                1 => {
                    let mut w = WithdrawRequest::new(a.id, d("2"), f.key());
                    w.details = with(w.details);
                    ok(l.withdraw(&alice, w).await);
                }
                2 => {
                    let hold = ok(l
                        .hold(
                            &alice,
                            HoldRequest {
                                wallet: a.id.into(),
                                target: HoldTarget::Outside,
                                details: with(DepositRequest::new(a.id, d("3"), f.key()).details),
                                ttl_micros: None,
                            },
                        )
                        .await);
                    let reference: TransactionRef = hold.transaction.reference;
                    if i % 8 == 2 {
                        ok(l.capture(&alice, reference, Some(d("1"))).await);
                    } else {
                        ok(l.cancel(&alice, reference).await);
                    }
                }
                _ => {
                    ok(l.refund(
                        &bob,
                        RefundRequest {
                            transaction: paid.transaction.reference,
                            amount: None,
                            description: None,
                            idempotency_key: f.key(),
                        },
                    )
                    .await);
                }
            }
            f.clock
                .advance_micros(3_600_000_000 * i64::try_from(i % 5).unwrap_or(1));
        }
        f.assert_verified().await;
        (f, alice, [a, b])
    });
    let lines = [0, 1].map(|i| runtime.block_on(all_lines(&fixture, &wallets[i])));
    assert!(lines[0].len() > 60, "fixture too small: {}", lines[0].len());
    Ledger {
        runtime,
        fixture,
        alice,
        wallets,
        lines,
    }
}

/// Every line of `w`, newest first, read page by page.
async fn all_lines(f: &Fixture<SqliteStore>, w: &Wallet) -> Vec<HistoryLine> {
    let mut all = Vec::new();
    let mut query = HistoryQuery::new(w.id);
    query.limit = HISTORY_PAGE_MAX;
    loop {
        let page = f
            .ledger
            .history(&f.admin, query.clone())
            .await
            .unwrap_or_else(|e| panic!("history: {e:?}"));
        all.extend(page.lines);
        match page.next {
            Some(next) => query.after = Some(next),
            None => return all,
        }
    }
}

fn timestamp(input: &mut Input<'_>) -> Timestamp {
    match input.u8() % 4 {
        0 => Timestamp::from_micros(input.i64()),
        // Within the fixture's few days, to the second.
        _ => Timestamp::from_micros(
            START
                .as_micros()
                .saturating_add(i64::from(input.u32() % 400_000) * 1_000_000),
        ),
    }
}

/// Builds a history query (wallet, kinds, statuses, time range, cursor, page size) or a
/// description search from the fuzzer's bytes, runs it through the service on a fixed ledger
/// of about a hundred lines, and compares the answer with a brute-force filter of the wallet's
/// whole history.
///
/// Checks: a query is refused exactly when `HistoryQuery::to_filter` refuses it (or the
/// wallet is not the caller's, or does not exist), with a typed error; an accepted one
/// returns exactly the matching lines below the cursor, newest first, at most `limit` of
/// them, a `next` cursor exactly when more remain, and totals over every matching line; a
/// search returns exactly the lines whose description contains the text, ignoring case;
/// cursor text reads back.
pub fn history(data: &[u8]) {
    let fx = ledger();
    let mut input = Input::new(data);
    let who = input.u8();
    let actor = if who & 0x80 == 0 {
        fx.alice
    } else {
        fx.fixture.admin
    };
    let w = usize::from(who & 0x03);
    let wallet = match w {
        0 | 1 => fx.wallets[w].id,
        2 => WalletId::new(i64::from(input.u16()) + 1).unwrap_or(fx.wallets[0].id),
        _ => fx.wallets[0].id,
    };
    let which = fx.wallets.iter().position(|x| x.id == wallet);
    let readable = which == Some(0) || (which == Some(1) && actor == fx.fixture.admin);
    let lines: &[HistoryLine] = match which {
        Some(i) => &fx.lines[i],
        None => &[],
    };
    let after = match input.u8() % 4 {
        0 => None,
        1 => Some(HistoryCursor::new(wallet, i64::from(input.u8()))),
        2 => Some(HistoryCursor::new(fx.wallets[1 - w % 2].id, input.i64())),
        _ => {
            let text = input.text(40);
            match text.parse::<HistoryCursor>() {
                Ok(c) => {
                    assert_eq!(c.to_string().parse::<HistoryCursor>(), Ok(c), "{text:?}");
                    Some(c)
                }
                Err(e) => {
                    assert_eq!(e.code(), "invalid_cursor", "{text:?}");
                    None
                }
            }
        }
    };
    let limit = u32::from(input.u8());
    if input.u8().is_multiple_of(4) {
        search(fx, &mut input, actor, wallet, readable, lines, after, limit);
        return;
    }
    let mask_kinds = input.u8();
    let mask_statuses = input.u8();
    let kinds: Vec<TransactionKind> = TransactionKind::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| mask_kinds & (1 << i) != 0)
        .map(|(_, k)| *k)
        .chain((mask_kinds & 0x80 != 0).then_some(TransactionKind::Transfer))
        .collect();
    let statuses: Vec<TransactionStatus> = TransactionStatus::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| mask_statuses & (1 << i) != 0)
        .map(|(_, s)| *s)
        .collect();
    let since = input.bool().then(|| timestamp(&mut input));
    let until = input.bool().then(|| timestamp(&mut input));
    let query = HistoryQuery {
        wallet: wallet.into(),
        kinds,
        statuses,
        since,
        until,
        after,
        limit,
    };
    let checked = query.to_filter();
    let answer = fx
        .runtime
        .block_on(fx.fixture.ledger.history(&actor, query.clone()));
    let filter = match (checked, answer) {
        (Err(e), Err(got)) => {
            assert_typed("history", &got);
            assert_eq!(e.code(), got.code(), "{query:?}");
            return;
        }
        (Err(e), Ok(_)) => panic!("accepted {query:?}, which to_filter refuses: {e:?}"),
        (Ok(_), Err(got)) => {
            assert_typed("history", &got);
            assert!(!readable, "refused {query:?}: {got:?}");
            return;
        }
        (Ok(filter), Ok(page)) => {
            assert!(readable, "read another's wallet: {query:?}");
            (filter, page)
        }
    };
    let (filter, page) = filter;
    let matching: Vec<&HistoryLine> = lines
        .iter()
        .filter(|l| filter.matches(l.kind, l.status, l.created_at))
        .collect();
    let below: Vec<&HistoryLine> = matching
        .iter()
        .copied()
        .filter(|l| filter.before_seq.is_none_or(|b| l.seq < b))
        .collect();
    let want = usize::try_from(limit).unwrap_or(usize::MAX);
    let expected: Vec<&HistoryLine> = below.iter().copied().take(want).collect();
    let got: Vec<&HistoryLine> = page.lines.iter().collect();
    assert_eq!(got, expected, "{query:?}");
    assert_eq!(
        page.next.is_some(),
        below.len() > want,
        "next cursor of {query:?}"
    );
    if let (Some(next), Some(last)) = (page.next, page.lines.last()) {
        assert_eq!(next, HistoryCursor::new(wallet, last.seq));
    }
    let currency = fx.wallets[0].currency;
    let sum = |credit: bool| {
        let minor: i64 = matching
            .iter()
            .map(|l| l.amount.minor())
            .filter(|m| (*m > 0) == credit && *m != 0)
            .map(i64::abs)
            .sum();
        Money::from_minor(minor, currency)
    };
    assert_eq!(page.totals.credits, sum(true), "credits of {query:?}");
    assert_eq!(page.totals.debits, sum(false), "debits of {query:?}");
}

#[allow(clippy::too_many_arguments)]
fn search(
    fx: &Ledger,
    input: &mut Input<'_>,
    actor: Actor,
    wallet: WalletId,
    readable: bool,
    lines: &[HistoryLine],
    after: Option<HistoryCursor>,
    limit: u32,
) {
    let text = match input.u8() % 3 {
        0 => input
            .pick(&DESCRIPTIONS)
            .map(|t| {
                t.chars()
                    .skip(usize::from(input.u8() % 4))
                    .take(4)
                    .collect()
            })
            .unwrap_or_default(),
        _ => input.text(120),
    };
    let answer = fx.runtime.block_on(
        fx.fixture
            .ledger
            .search(&actor, wallet, &text, after, limit),
    );
    let needle = SearchText::new(&text);
    let page = match answer {
        Ok(page) => page,
        Err(e) => {
            assert_typed("search", &e);
            let explained = needle.is_err()
                || limit == 0
                || limit > HISTORY_PAGE_MAX
                || !readable
                || after.is_some_and(|c| c.wallet() != wallet);
            assert!(explained, "refused search {text:?}: {e:?}");
            return;
        }
    };
    assert!(readable, "searched another's wallet");
    let Ok(needle) = needle else {
        panic!("accepted search text {text:?}");
    };
    let below: Vec<&HistoryLine> = lines
        .iter()
        .filter(|l| {
            l.description
                .as_ref()
                .is_some_and(|d| needle.matches(d.as_str()))
        })
        .filter(|l| after.is_none_or(|c| l.seq < c.seq()))
        .collect();
    let want = usize::try_from(limit).unwrap_or(usize::MAX);
    let expected: Vec<&HistoryLine> = below.iter().copied().take(want).collect();
    let got: Vec<&HistoryLine> = page.lines.iter().collect();
    assert_eq!(
        got, expected,
        "search {text:?} after {after:?} limit {limit}"
    );
    assert_eq!(
        page.next.is_some(),
        below.len() > want,
        "next of search {text:?}"
    );
}
