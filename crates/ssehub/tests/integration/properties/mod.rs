//! Properties of the hub checked on generated cases (issue #15,
//! "Properties"), with proptest: privacy of private updates for both
//! protocol generations on one node and on two nodes sharing Redis
//! (`privacy`), no gap and no duplicate across reconnects (`resume`), and
//! recovery of a damaged disk log (`recovery`).
//!
//! Each property runs a bounded number of cases, stated where it is
//! defined; `PROPTEST_CASES=N` runs `N` instead (say 1000 for a long
//! search). A failing case is shrunk (a bounded number of steps) and
//! printed with the run's seed (`PROPTEST_RNG_SEED=SEED` replays it);
//! nothing is written to the source tree.

mod privacy;
mod recovery;
mod resume;

use std::time::Duration;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use reqwest::StatusCode;
use ssehub::proto::sse::ParsedEvent;

use super::common::remote::post_form;
use super::common::{seed, SseClient};

/// Bound on one expected event, and on a request.
const WAIT: Duration = Duration::from_secs(10);

/// Runs `test` on `default_cases` cases of `strategy` (or
/// `$PROPTEST_CASES`), shrinking a failure for a bounded number of steps.
/// The random seed is printed, and `$PROPTEST_RNG_SEED` replays it.
fn check<S: Strategy>(
    name: &str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .map(|n| n.trim().parse().expect("PROPTEST_CASES is a number"))
        .unwrap_or(default_cases);
    let config = Config {
        cases,
        max_shrink_iters: 64,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed("PROPTEST_RNG_SEED", name)),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(failure) = runner.run(&strategy, test) {
        panic!("{failure}");
    }
}

/// A multi-threaded runtime for the hubs of one property.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// POSTs `form` to the hub at `url` with `token`; asserts 200 and returns
/// the id.
async fn publish(http: &reqwest::Client, url: &str, token: &str, form: &[(&str, &str)]) -> String {
    let (status, body) = post_form(http, url, Some(token), form).await.unwrap();
    assert_eq!(status, StatusCode::OK, "publishing {form:?}: {body}");
    body
}

/// The ids of the events `sub` receives before the event with id `fence`,
/// each within [`WAIT`]; panics if the stream ends or stalls first.
async fn ids_until(sub: &mut SseClient, fence: &str, what: &str) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let event: ParsedEvent = match sub.next_event(WAIT).await {
            Ok(event) => event,
            Err(why) => panic!("{what}: no fence {fence} after {ids:?}: {why:?}"),
        };
        if event.last_event_id == fence {
            return ids;
        }
        ids.push(event.last_event_id);
    }
}
