//! A worker process: holds its share of the subscriptions, checks that each
//! receives every message once and in order, and records latencies.
//!
//! The orchestrator talks to workers over stdin (commands, one per line:
//! `report`, `snapshot`, `reconnect [SEQ]`, `churn`, `quit`) and stdout
//! (JSON reports, one per line).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;

use crate::output::whole;
use crate::tracking::Shared;
use crate::wire::Spec;
use crate::{h1_client, h2_client};

/// Runs a worker: reads its spec (one JSON line) from stdin, then commands
/// until stdin closes or says `quit`.
pub(crate) async fn run() {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let first = lines.next_line().await.ok().flatten().unwrap_or_default();
    let spec: Spec =
        serde_json::from_str(&first).expect("a worker spec on the first line of stdin");
    let shared = Arc::new(Shared::new(spec));
    let pace = Arc::new(Semaphore::new(0));
    tokio::spawn(pacer(pace.clone(), shared.spec.connect_rate));
    match shared.spec.h2.clone() {
        Some(h2) => h2_client::spawn_all(&shared, &h2, &pace),
        None => h1_client::spawn_all(&shared, &pace),
    }
    while let Ok(Some(line)) = lines.next_line().await {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("report") => println!("{}", serde_json::to_string(&shared.report(false)).unwrap()),
            Some("snapshot") => {
                println!("{}", serde_json::to_string(&shared.report(true)).unwrap())
            }
            Some("reconnect") => {
                let target = words
                    .next()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(u64::MAX);
                shared.reconnect(target);
            }
            Some("churn") => {
                tokio::spawn(crate::churn::run(shared.clone()));
            }
            Some("quit") | None => break,
            Some(other) => eprintln!("worker: unknown command {other:?}"),
        }
    }
    shared.quit();
}

/// Releases `rate` connection permits per second.
async fn pacer(pace: Arc<Semaphore>, rate: u32) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (f64::from(rate) / 100.0).max(0.01);
    let mut owed = 0.0;
    loop {
        tick.tick().await;
        owed += per_tick;
        let n = whole(owed);
        owed -= n as f64;
        pace.add_permits(usize::try_from(n).unwrap_or(usize::MAX));
    }
}
