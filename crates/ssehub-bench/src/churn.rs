//! A worker's churn (soak): short-lived subscriptions opened at a steady
//! rate, each on a connection of its own, on a random path, held for a
//! random time, then dropped. Each checks that what it receives after its
//! first event of a topic comes once and in order.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use crate::tracking::Shared;
use crate::wire::ChurnSpec;
use crate::{h1_client, h2_client};

/// Opens the spec's short-lived subscriptions until the worker quits; does
/// nothing without a churn in the spec.
pub(crate) async fn run(shared: Arc<Shared>) {
    let Some(churn) = shared.spec.churn.clone() else {
        return;
    };
    if churn.paths.is_empty() || churn.rate <= 0.0 {
        return;
    }
    let tls = shared
        .spec
        .h2
        .as_ref()
        .map(|h2| Arc::new(h2_client::client_config(&h2.ca_pem)));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / churn.rate));
    let sources = &shared.spec.sources;
    let mut n = 0usize;
    while !shared.quitting() {
        tick.tick().await;
        let (path, hold) = draw(&churn, &mut rand::thread_rng());
        let source = sources[n % sources.len()];
        n = n.wrapping_add(1);
        let (shared, tls) = (shared.clone(), tls.clone());
        tokio::spawn(async move {
            let result = match tls {
                Some(tls) => h2_client::visit(&shared, tls, source, &path, hold).await,
                None => h1_client::visit(&shared, source, &path, hold)
                    .await
                    .map_err(anyhow::Error::from),
            };
            let counters = &shared.churn;
            match result {
                Ok(()) => {
                    counters.closed.fetch_add(1, Ordering::Relaxed);
                }
                // The first few say why; the count says how many.
                Err(e) if counters.failed.fetch_add(1, Ordering::Relaxed) < 10 => {
                    eprintln!("worker: a short-lived subscription failed: {e:#}");
                }
                Err(_) => {}
            }
        });
    }
}

/// The path and holding time of the next short-lived subscription.
fn draw(churn: &ChurnSpec, rng: &mut impl Rng) -> (String, Duration) {
    let path = churn.paths[rng.gen_range(0..churn.paths.len())].clone();
    let (shortest, longest) = churn.hold_ms;
    let hold = rng.gen_range(shortest..=longest.max(shortest));
    (path, Duration::from_millis(hold))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn draws_paths_and_holding_times_within_the_spec() {
        let churn = ChurnSpec {
            rate: 10.0,
            hold_ms: (1000, 3000),
            paths: vec!["/a".into(), "/b".into()],
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let draws: Vec<_> = (0..200).map(|_| draw(&churn, &mut rng)).collect();
        assert!(draws.iter().all(|(p, h)| churn.paths.contains(p)
            && (Duration::from_millis(1000)..=Duration::from_millis(3000)).contains(h)));
        for p in &churn.paths {
            assert!(draws.iter().any(|(q, _)| q == p), "{p} is drawn too");
        }
        let fixed = ChurnSpec {
            hold_ms: (500, 500),
            ..churn
        };
        assert_eq!(draw(&fixed, &mut rng).1, Duration::from_millis(500));
    }
}
