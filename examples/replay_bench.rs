//! Measures a reconnecting client's replay: the time to the response headers,
//! to the first replayed event, and to the last of N events.
//!
//! `cargo run --release --example replay_bench -- URL TOPIC LAST_EVENT_ID N TOKEN`

use std::time::Instant;

use ssehub::proto::sse::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, topic, last_id, n, token] = args.as_slice() else {
        eprintln!("usage: replay_bench URL TOPIC LAST_EVENT_ID N TOKEN");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N is a number");
    let started = Instant::now();
    let mut res = reqwest::Client::new()
        .get(url)
        .query(&[("topic", topic)])
        .bearer_auth(token)
        .header("last-event-id", last_id)
        .send()
        .await
        .expect("subscribe");
    let headers = started.elapsed();
    assert!(res.status().is_success(), "status {}", res.status());
    let mut parser = Parser::new();
    let (mut received, mut first) = (0usize, None);
    while received < n {
        let chunk = res
            .chunk()
            .await
            .expect("read")
            .expect("stream ended early");
        received += parser.feed(&chunk).len();
        if received > 0 && first.is_none() {
            first = Some(started.elapsed());
        }
    }
    let all = started.elapsed();
    println!(
        "headers {:.2} ms, first event {:.2} ms, {n} events {:.1} ms ({:.0} events/s)",
        headers.as_secs_f64() * 1e3,
        first.unwrap_or_default().as_secs_f64() * 1e3,
        all.as_secs_f64() * 1e3,
        n as f64 / all.as_secs_f64()
    );
}
