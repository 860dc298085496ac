//! Tracing and metrics for every service operation, recorded in one place.
//!
//! Each public operation of [`Ledger`](crate::Ledger) runs inside a `tracing` span named after
//! it (fields: ids, kinds, amounts and flags; never a password, token, secret, hash or
//! personal data), ends with one event that carries its outcome, and records two metrics
//! through the [`metrics`] facade:
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | [`OPERATIONS_TOTAL`] (`wallet_operations_total`) | counter | `operation`, `outcome` |
//! | [`OPERATION_DURATION_SECONDS`] (`wallet_operation_duration_seconds`) | histogram | `operation`, `outcome` |
//!
//! `operation` is the method's name (`deposit`, `login`, ...); `outcome` is [`OUTCOME_OK`] or
//! the failure's stable [`Error::code`] (`insufficient_funds`, ...). Both label sets are
//! bounded: the library never puts an id or any caller text in a label.
//!
//! The library installs no exporter: without a recorder the macros do nothing. A host installs
//! one (for Prometheus, `metrics-exporter-prometheus`) at start-up.
//!
//! The outcome event's level follows the error's [`ErrorKind`]: `DEBUG` for success, `INFO`
//! for a refused request (bad input, not found, forbidden, a business rule, a conflict),
//! `WARN` when storage is unavailable, `ERROR` for a bug or corruption. The event carries the
//! code, never the message, which may quote what the caller sent.
//!
//! Latency is measured with [`std::time::Instant`], a monotonic clock that no business
//! decision reads, so the injected [`Clock`](crate::Clock) stays the only source of time for
//! the rules.

use std::future::Future;
use std::time::Instant;

use tracing::{Instrument, Span};

use crate::error::{Error, ErrorKind, Result};

/// Counter of finished operations, labelled `operation` and `outcome`.
pub const OPERATIONS_TOTAL: &str = "wallet_operations_total";
/// Histogram of operation latency in seconds, labelled `operation` and `outcome`.
pub const OPERATION_DURATION_SECONDS: &str = "wallet_operation_duration_seconds";
/// The `outcome` label of an operation that succeeded.
pub const OUTCOME_OK: &str = "ok";

/// Runs `work` inside `span`, then records its outcome event and metrics.
///
/// Use it through `observed!`, which builds the span from the operation's
/// name.
pub(crate) async fn run<T>(
    operation: &'static str,
    span: Span,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let started = Instant::now();
    let result = work.instrument(span.clone()).await;
    let seconds = started.elapsed().as_secs_f64();
    let outcome = match &result {
        Ok(_) => OUTCOME_OK,
        Err(e) => e.code(),
    };
    span.in_scope(|| log_outcome(result.as_ref().err(), seconds));
    metrics::counter!(OPERATIONS_TOTAL, "operation" => operation, "outcome" => outcome)
        .increment(1);
    metrics::histogram!(OPERATION_DURATION_SECONDS, "operation" => operation, "outcome" => outcome)
        .record(seconds);
    result
}

fn log_outcome(error: Option<&Error>, seconds: f64) {
    let Some(e) = error else {
        tracing::debug!(outcome = OUTCOME_OK, seconds, "operation succeeded");
        return;
    };
    let code = e.code();
    match e.kind() {
        ErrorKind::Internal => tracing::error!(outcome = code, seconds, "operation failed"),
        ErrorKind::Unavailable => tracing::warn!(outcome = code, seconds, "operation failed"),
        _ => tracing::info!(outcome = code, seconds, "operation refused"),
    }
}

/// Runs an operation's body (an expression of type `Result<T>`, which may use `?` and
/// `return`) in an `INFO` span named `$op` with the given fields, and records its outcome
/// (see [`crate::observe`]).
///
/// ```ignore
/// observed!("deposit", (actor = %actor.user, %wallet) => {
///     self.execute_move(actor, Flow::Deposit { wallet }, req.details).await
/// })
/// ```
macro_rules! observed {
    ($op:literal $(, ($($field:tt)+))? => $body:expr) => {
        // The body on the heap: an operation's state machine (its store calls inlined) is
        // large, and a host awaiting many operations in one async fn would otherwise carry the
        // largest of them inline in its own future, which overflowed a 2 MiB test thread's
        // stack in debug builds. One allocation per operation is nothing beside its database
        // work.
        $crate::observe::run(
            $op,
            ::tracing::info_span!($op $(, $($field)+)?),
            ::std::boxed::Box::pin(async { $body }),
        )
        .await
    };
}
pub(crate) use observed;

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::{CompositeKey, MetricKind};

    type Row = (
        CompositeKey,
        Option<metrics::Unit>,
        Option<metrics::SharedString>,
        DebugValue,
    );

    fn labels(key: &CompositeKey) -> Vec<(String, String)> {
        key.key()
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect()
    }

    fn find<'a>(rows: &'a [Row], kind: MetricKind, name: &str, op: &str) -> Vec<&'a Row> {
        rows.iter()
            .filter(|(k, ..)| {
                k.kind() == kind
                    && k.key().name() == name
                    && labels(k).contains(&("operation".into(), op.into()))
            })
            .collect()
    }

    async fn ok_op() -> Result<u32> {
        observed!("probe_ok", (answer = 42) => Ok(42))
    }

    async fn big_op() -> Result<u32> {
        observed!("probe_big" => {
            let buffer = [7u8; 16 * 1024];
            std::future::ready(()).await;
            Ok(u32::from(buffer[100]))
        })
    }

    /// An operation's body lives on the heap: the caller's future stays small however large
    /// the body's state is.
    #[test]
    fn an_operation_future_does_not_carry_its_body_inline() {
        let future = big_op();
        assert!(
            std::mem::size_of_val(&future) < 1024,
            "{} bytes",
            std::mem::size_of_val(&future)
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(future).unwrap(), 7);
    }

    async fn failing_op() -> Result<u32> {
        observed!("probe_fail" => {
            let n: u32 = Err(Error::SameWallet)?;
            Ok(n)
        })
    }

    #[test]
    fn records_a_count_and_a_latency_per_operation_and_outcome() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            rt.block_on(async {
                assert_eq!(ok_op().await.unwrap(), 42);
                assert_eq!(ok_op().await.unwrap(), 42);
                assert!(matches!(failing_op().await, Err(Error::SameWallet)));
            });
        });
        let rows = snapshotter.snapshot().into_vec();
        let ok = find(&rows, MetricKind::Counter, OPERATIONS_TOTAL, "probe_ok");
        assert_eq!(ok.len(), 1);
        assert!(labels(&ok[0].0).contains(&("outcome".into(), "ok".into())));
        assert_eq!(ok[0].3, DebugValue::Counter(2));
        let failed = find(&rows, MetricKind::Counter, OPERATIONS_TOTAL, "probe_fail");
        assert_eq!(failed.len(), 1);
        assert!(labels(&failed[0].0).contains(&("outcome".into(), "same_wallet".into())));
        assert_eq!(failed[0].3, DebugValue::Counter(1));
        let times = find(
            &rows,
            MetricKind::Histogram,
            OPERATION_DURATION_SECONDS,
            "probe_ok",
        );
        match &times[..] {
            [(.., DebugValue::Histogram(samples))] => {
                assert_eq!(samples.len(), 2);
                assert!(samples.iter().all(|s| s.0 >= 0.0 && s.0 < 60.0));
            }
            other => panic!("expected one latency histogram, got {other:?}"),
        }
    }
}
