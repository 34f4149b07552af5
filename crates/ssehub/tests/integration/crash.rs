//! Durability of the on-disk history (the default `disk` store) when the hub
//! process dies: the real `ssehub` binary runs as a child process, is killed
//! with SIGKILL in the middle of concurrent publishing (or stopped with
//! SIGTERM), and is restarted on the same `--data-dir`. An update answered
//! with `200` must survive, exactly once and in order, and generated ids
//! keep sorting after the ids of earlier processes.
//!
//! `CRASH_SEED=N cargo test --test integration crash::` replays the kill
//! delays of a printed seed.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::child_hub::ChildHub;
use crate::common::remote::{client, open_stream, post_form, READY};
use crate::common::{heavy, publisher_token, seed, SseClient, SECRET};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use ssehub::proto::sse::ParsedEvent;

/// The topic the crash test publishes to.
const TOPIC: &str = "urn:crash";

/// The topic of the marker published after each restart.
const MARKER_TOPIC: &str = "urn:crash-marker";

/// A `--history-size` no test here reaches: nothing is dropped.
const LARGE_HISTORY: usize = 10_000_000;

/// A `serve` child over `data_dir` keeping `history_size` updates, plain
/// HTTP only, anonymous subscribers allowed; once healthy.
async fn start_hub(data_dir: &Path, history_size: usize) -> ChildHub {
    ChildHub::start(
        data_dir,
        &[
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--publisher-jwt-key",
            SECRET,
            "--anonymous",
            "--history-size",
            &history_size.to_string(),
            "--tls-listen",
            "none",
        ],
        &[],
    )
    .await
}

/// Publishes `data` to `topic` on a live hub; returns the id.
async fn publish_ok(hub: &ChildHub, token: &str, topic: &str, data: &str) -> String {
    hub.publish_ok(token, &[("topic", topic), ("data", data)])
        .await
}

/// Every event up to and including the one with id `last`.
async fn events_until(stream: &mut SseClient, last: &str) -> Vec<ParsedEvent> {
    let mut events = Vec::new();
    loop {
        let event = stream.next().await;
        let done = event.last_event_id == last;
        events.push(event);
        if done {
            return events;
        }
    }
}

/// Which publisher sent an update of the crash test, from its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Origin {
    round: usize,
    publisher: usize,
    n: usize,
}

impl Origin {
    fn data(self) -> String {
        format!("{}-{}-{}", self.round, self.publisher, self.n)
    }

    fn parse(data: &str) -> Option<Origin> {
        let mut parts = data.split('-').map(|p| p.parse::<usize>().ok());
        let origin = Origin {
            round: parts.next()??,
            publisher: parts.next()??,
            n: parts.next()??,
        };
        parts.next().is_none().then_some(origin)
    }
}

/// What one publisher saw in one round.
#[derive(Debug, Default)]
struct Published {
    /// Ids answered with 200, in the order they were acknowledged.
    acked: Vec<String>,
    /// Statuses other than 200 (there should be none: a killed hub answers nothing).
    refused: Vec<(StatusCode, String)>,
    /// The transport error that ended the loop (expected after the kill).
    error: Option<String>,
}

/// Publishes `round-publisher-n` sequentially over one keep-alive
/// connection until a request fails (the hub was killed).
async fn publisher_loop(url: String, token: String, round: usize, publisher: usize) -> Published {
    let http = client();
    let mut out = Published::default();
    for n in 0..1_000_000 {
        let data = Origin {
            round,
            publisher,
            n,
        }
        .data();
        match post_form(
            &http,
            &url,
            Some(&token),
            &[("topic", TOPIC), ("data", &data)],
        )
        .await
        {
            Ok((StatusCode::OK, id)) => out.acked.push(id),
            Ok((status, body)) => {
                out.refused.push((status, body));
                break;
            }
            Err(e) => {
                out.error = Some(e.to_string());
                break;
            }
        }
    }
    out
}

const ROUNDS: usize = 20;
const PUBLISHERS: usize = 8;

/// 20 rounds on one data dir: 8 concurrent publishers, SIGKILL after a
/// seeded random delay, restart, marker, full replay; checks (a) to (e).
/// Nothing is old enough for retention: the log stays one segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_acknowledged_update() {
    let _heavy = heavy().await;
    crash_rounds("kill_9_loses_no_acknowledged_update", LARGE_HISTORY).await;
}

/// The same with `--history-size 2000`: a new segment every 250 updates and
/// whole segments deleted by retention, so kills land around rotations and
/// deletions, and recovery reads several segments. Retention must keep
/// exactly the newest 2000 updates; an acknowledged update may only be
/// missing once it is older than those.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_acknowledged_update_across_segments() {
    let _heavy = heavy().await;
    crash_rounds("kill_9_loses_no_acknowledged_update_across_segments", 2000).await;
}

async fn crash_rounds(name: &str, history_size: usize) {
    let seed = seed("CRASH_SEED", name);
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let token = publisher_token();

    // Acknowledged ids of every round so far, per (round, publisher), in
    // acknowledgement order.
    let mut acked: HashMap<(usize, usize), Vec<String>> = HashMap::new();
    // Every id acknowledged so far, and the update it was acknowledged for.
    let mut acked_origin: HashMap<String, Origin> = HashMap::new();
    // The full replay of the previous round: (id, data) in log order.
    let mut previous: Vec<(String, String)> = Vec::new();
    // Ids retention dropped from the front of the log (never to come back).
    let mut dropped: HashSet<String> = HashSet::new();
    // Updates ever logged (as observed by the replays).
    let mut logged_total = 0;
    // The greatest id of every replay so far.
    let mut max_before: Option<String> = None;
    let mut total_in_flight_kept = 0;
    let mut torn_tails = 0;

    for round in 0..ROUNDS {
        let delay = Duration::from_millis(rng.gen_range(40..=400));
        let mut hub = start_hub(dir.path(), history_size).await;
        let tasks: Vec<_> = (0..PUBLISHERS)
            .map(|p| tokio::spawn(publisher_loop(hub.url(), token.clone(), round, p)))
            .collect();
        tokio::time::sleep(delay).await;
        hub.kill_9();
        let load_stderr = hub.stderr();

        // Every publisher stops at its first failure; wait for all of them
        // before restarting, so no request of this round reaches the new hub.
        let mut in_flight: HashMap<usize, usize> = HashMap::new();
        let mut round_acked = 0;
        for (p, task) in tasks.into_iter().enumerate() {
            let published = tokio::time::timeout(READY * 2, task)
                .await
                .unwrap_or_else(|_| {
                    panic!("round {round}: publisher {p} still running after the kill")
                })
                .expect("publisher task panicked");
            assert!(
                published.refused.is_empty(),
                "round {round}: publisher {p} was refused: {:?}\nstderr:\n{load_stderr}",
                published.refused
            );
            assert!(
                published.error.is_some(),
                "round {round}: publisher {p} ended without an error"
            );
            for (n, id) in published.acked.iter().enumerate() {
                let origin = Origin {
                    round,
                    publisher: p,
                    n,
                };
                assert!(
                    acked_origin.insert(id.clone(), origin).is_none(),
                    "round {round}: id {id} acknowledged twice"
                );
            }
            round_acked += published.acked.len();
            in_flight.insert(p, published.acked.len());
            acked.insert((round, p), published.acked);
        }

        let mut hub = start_hub(dir.path(), history_size).await;
        let marker = publish_ok(&hub, &token, MARKER_TOPIC, &format!("marker-{round}")).await;
        let mut stream =
            open_stream(&hub.url(), &[TOPIC, MARKER_TOPIC], None, Some("earliest")).await;
        assert_eq!(stream.headers["last-event-id"], "earliest");
        let events = events_until(&mut stream, &marker).await;
        drop(stream);
        hub.kill_9();
        let recovered_stderr = hub.stderr();
        let replay: Vec<(String, String)> = events
            .into_iter()
            .map(|e| (e.last_event_id, e.data))
            .collect();
        let context = || {
            format!(
                "round {round} (seed {seed}, kill after {delay:?})\nstderr of the killed hub:\n{load_stderr}\nstderr of the restarted hub:\n{recovered_stderr}"
            )
        };

        // (b) No id twice, and no update (by its data) twice.
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut datas: HashSet<&str> = HashSet::new();
        for (i, (id, data)) in replay.iter().enumerate() {
            assert!(!id.is_empty(), "an event without id at {i}\n{}", context());
            if let Some(first) = index.insert(id, i) {
                panic!("id {id} replayed twice, at {first} and {i}\n{}", context());
            }
            assert!(
                datas.insert(data),
                "update {data:?} replayed twice (under two ids)\n{}",
                context()
            );
        }

        // (d) What is left of the previous replay comes first, in the same
        // order: order survives restarts. Retention may only have dropped
        // its oldest updates (never, with a large --history-size).
        let k = previous
            .iter()
            .position(|e| Some(e) == replay.first())
            .unwrap_or(previous.len());
        // A round that published more than --history-size updates leaves
        // nothing of the previous replay, and may have lost its own oldest.
        let overflowed = k == previous.len() && replay.len() == history_size;
        let kept = &previous[k..];
        assert!(
            replay.len() > kept.len(),
            "replay shrank from {} to {}\n{}",
            kept.len(),
            replay.len(),
            context()
        );
        if let Some(i) = (0..kept.len()).find(|&i| replay[i] != kept[i]) {
            panic!(
                "replay differs from the previous round's at {i}: {:?} then, {:?} now\n{}",
                kept[i],
                replay[i],
                context()
            );
        }
        let new = &replay[kept.len()..];
        dropped.extend(previous[..k].iter().map(|(id, _)| id.clone()));
        logged_total += new.len();
        assert_eq!(
            replay.len(),
            logged_total.min(history_size),
            "retention keeps exactly the newest --history-size updates ({} dropped before this round)\n{}",
            k,
            context()
        );

        // (a) Every acknowledged id of every round, with its data, unless
        // retention dropped it; a dropped id never comes back.
        for (id, origin) in &acked_origin {
            match index.get(id.as_str()) {
                Some(&i) => {
                    assert!(!dropped.contains(id), "dropped {id} is back\n{}", context());
                    assert_eq!(replay[i].1, origin.data(), "data of {id}\n{}", context());
                }
                None => assert!(
                    dropped.contains(id) || (overflowed && origin.round == round),
                    "acknowledged update {} (id {id}) lost\n{}",
                    origin.data(),
                    context()
                ),
            }
        }

        if overflowed {
            dropped.extend(
                acked_origin
                    .iter()
                    .filter(|(id, o)| o.round == round && !index.contains_key(id.as_str()))
                    .map(|(id, _)| id.clone()),
            );
        }

        // (c) Each publisher's acknowledged ids in acknowledgement order
        // (those retention dropped are its oldest).
        for ((r, p), ids) in &acked {
            let positions: Vec<Option<usize>> = ids
                .iter()
                .map(|id| index.get(id.as_str()).copied())
                .collect();
            let present = positions.iter().skip_while(|p| p.is_none());
            assert!(
                present.clone().all(Option::is_some)
                    && present
                        .flatten()
                        .collect::<Vec<_>>()
                        .windows(2)
                        .all(|w| w[0] < w[1]),
                "round {r} publisher {p}: acknowledged updates replayed out of order at {positions:?}\n{}",
                context()
            );
        }

        // What this round added: its updates (acknowledged, or the one
        // in flight per publisher at the kill), then the marker.
        let (last, added) = new.split_last().unwrap();
        assert_eq!(last, &(marker.clone(), format!("marker-{round}")));
        let mut kept_in_flight = 0;
        for (id, data) in added {
            let origin = Origin::parse(data)
                .unwrap_or_else(|| panic!("unexpected update {data:?} ({id})\n{}", context()));
            assert_eq!(
                origin.round,
                round,
                "{data:?} is from another round\n{}",
                context()
            );
            if acked_origin.get(id) == Some(&origin) {
                continue;
            }
            assert_eq!(
                Some(&origin.n),
                in_flight.get(&origin.publisher),
                "{data:?} ({id}) was neither acknowledged nor in flight at the kill\n{}",
                context()
            );
            kept_in_flight += 1;
        }
        total_in_flight_kept += kept_in_flight;

        // (e) Ids generated after a restart sort after every earlier id:
        // this round's ids after all of the previous rounds' (including the
        // previous marker), and the marker after all of this round's.
        if let Some(max_before) = &max_before {
            for (id, data) in new {
                assert!(
                    id > max_before,
                    "id {id} ({data}) generated after a restart sorts before {max_before}\n{}",
                    context()
                );
            }
        }
        for (id, data) in added {
            assert!(
                *id < marker,
                "marker {marker} generated after the restart sorts before {id} ({data})\n{}",
                context()
            );
        }
        let this_round_acked = acked_origin
            .iter()
            .filter(|(_, o)| o.round == round)
            .map(|(id, _)| id);
        for id in this_round_acked {
            assert!(*id < marker, "marker sorts before acknowledged {id}");
        }

        // Recovery says when it cut a torn or damaged tail.
        let repaired = recovered_stderr.contains("bytes after position");
        torn_tails += usize::from(repaired);
        let segments = std::fs::read_dir(dir.path().join("log"))
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".seg")
            })
            .count();
        println!(
            "round {round:2}: kill after {:3} ms, {round_acked:4} acknowledged, {kept_in_flight} in-flight kept, replay {} events ({k} dropped), {segments} segment(s){}",
            delay.as_millis(),
            replay.len(),
            if repaired { ", torn tail cut" } else { "" }
        );
        max_before = replay
            .iter()
            .map(|(id, _)| id)
            .max()
            .cloned()
            .max(max_before);
        previous = replay;
    }

    assert!(
        !acked_origin.is_empty(),
        "no publish was ever acknowledged: the test proved nothing"
    );
    println!(
        "{name}: {} acknowledged updates over {ROUNDS} kills, all replayed once and in order; {total_in_flight_kept} unacknowledged in-flight updates kept; {torn_tails} torn tail(s) cut; {:.1} s",
        acked_origin.len(),
        started.elapsed().as_secs_f64()
    );
}

/// How the hub is stopped while the subscriber is away.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Term,
    Kill,
}

/// The topic of the resume tests' subscriber.
const RESUME: &str = "urn:resume";

/// A topic the resume tests' subscriber does not ask for.
const OTHER: &str = "urn:other";

/// Publishes `missed-{when}-1` to [`RESUME`], `other-{when}` to [`OTHER`]
/// and `missed-{when}-2` to [`RESUME`]; appends the missed ones' data and
/// ids to `missed`.
async fn publish_while_away(
    hub: &ChildHub,
    token: &str,
    when: &str,
    missed: &mut Vec<(String, String)>,
) {
    for (topic, data) in [
        (RESUME, format!("missed-{when}-1")),
        (OTHER, format!("other-{when}")),
        (RESUME, format!("missed-{when}-2")),
    ] {
        let id = publish_ok(hub, token, topic, &data).await;
        if topic == RESUME {
            missed.push((data, id));
        }
    }
}

/// A subscriber reads some updates and leaves; updates are published while
/// it is away, before the stop and after the restart; it comes back with
/// its last id and receives exactly what it missed, in order, then live.
async fn resume_across_restart(stop: Stop) {
    let dir = tempfile::tempdir().unwrap();
    let token = publisher_token();

    let mut hub = start_hub(dir.path(), LARGE_HISTORY).await;
    let mut stream = open_stream(&hub.url(), &[RESUME], None, None).await;
    // What an `EventSource` remembers: the id of the last event it received.
    let mut remembered = String::new();
    for data in ["seen-1", "seen-2", "seen-3"] {
        let id = publish_ok(&hub, &token, RESUME, data).await;
        let event = stream.next().await;
        assert_eq!(
            (event.last_event_id.as_str(), event.data.as_str()),
            (id.as_str(), data)
        );
        remembered = event.last_event_id;
    }
    drop(stream);

    let mut missed = Vec::new();
    publish_while_away(&hub, &token, "before", &mut missed).await;

    match stop {
        Stop::Term => {
            let status = hub.stop(READY);
            assert_eq!(status.code(), Some(0), "stderr:\n{}", hub.stderr());
        }
        Stop::Kill => hub.kill_9(),
    }
    drop(hub);

    let hub = start_hub(dir.path(), LARGE_HISTORY).await;
    publish_while_away(&hub, &token, "after", &mut missed).await;

    let mut stream = open_stream(&hub.url(), &[RESUME], None, Some(&remembered)).await;
    assert_eq!(stream.headers["last-event-id"], remembered.as_str());
    assert_eq!(stream.headers["mercure-last-event-id"], remembered.as_str());
    for (data, id) in &missed {
        let event = stream.next().await;
        assert_eq!(
            (event.last_event_id.as_str(), event.data.as_str()),
            (id.as_str(), data.as_str()),
            "stderr:\n{}",
            hub.stderr()
        );
    }
    let live = publish_ok(&hub, &token, RESUME, "live").await;
    let event = stream.next().await;
    assert_eq!(
        (event.last_event_id.as_str(), event.data.as_str()),
        (live.as_str(), "live"),
        "the first event after the missed ones is the live one"
    );
}

#[tokio::test]
async fn subscriber_resumes_across_restart() {
    resume_across_restart(Stop::Term).await;
}

#[tokio::test]
async fn subscriber_resumes_across_restart_after_kill_9() {
    resume_across_restart(Stop::Kill).await;
}
