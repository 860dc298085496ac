//! `health()` when the server cannot be reached or the store is closed: a typed answer with
//! `reachable: false`, never a panic or a hang.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use wallet_core::Store;
use wallet_mysql::{ConnectOptions, MySqlStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_reports_itself_unreachable() {
    let store = common::fresh_store().await;
    let open = store.health().await;
    assert!(open.is_healthy(), "{open:?}");
    store.close().await;
    let closed = store.health().await;
    assert!(!closed.reachable, "{closed:?}");
    assert_eq!(closed.problem, Some("store_closed"));
    assert_eq!(closed.schema_version, None);
}

/// A TCP relay to the database server that can be cut, as a network partition would.
async fn relay_to(server: String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut links = tokio::task::JoinSet::new();
        while let Ok((mut client, _)) = listener.accept().await {
            let server = server.clone();
            links.spawn(async move {
                if let Ok(mut upstream) = TcpStream::connect(server).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_reported_not_reachable() {
    let db = common::fresh_database().await;
    let _drop = common::DropDatabase(db.clone());
    let server = common::admin_url()
        .rsplit('@')
        .next()
        .unwrap_or("127.0.0.1:3306")
        .to_owned();
    let (relay, task) = relay_to(server).await;
    let url = common::app_url(&db).replace(
        common::admin_url().rsplit('@').next().unwrap(),
        relay.as_str(),
    );
    let store = MySqlStore::connect(
        &url,
        ConnectOptions {
            acquire_timeout: Duration::from_secs(1),
            ..common::test_options()
        },
    )
    .await
    .unwrap();
    let up = store.health().await;
    assert!(up.is_healthy(), "{up:?}");

    // Cut the relay: the listener closes and every relayed connection with it.
    task.abort();
    let _ = task.await;
    let started = std::time::Instant::now();
    let down = store.health().await;
    assert!(!down.reachable, "{down:?}");
    assert!(!down.is_healthy());
    let code = down.problem.expect("a reason");
    assert!(
        ["storage_busy", "storage_error"].contains(&code),
        "unexpected code {code}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "health took {:?}",
        started.elapsed()
    );
}
