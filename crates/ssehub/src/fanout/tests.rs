//! The registry's routing, privacy and removals, and the index against
//! matching every subscriber one by one.

use proptest::prelude::*;

use super::*;
use crate::proto::selector::{MatchType, SelectorCache};
use crate::proto::update::UpdateRequest;

fn base() -> url::Url {
    url::Url::parse("https://hub.example/.well-known/mercure").unwrap()
}

/// A registration for 0.x selectors `topics` and token grants `allowed`.
fn reg(cache: &SelectorCache, topics: &[&str], allowed: &[&str]) -> Registration {
    let selectors = |list: &[&str]| list.iter().map(|t| Matcher::selector(*t)).collect();
    reg_matchers(cache, selectors(topics), &selectors(allowed))
}

/// A registration for matchers of any type.
fn reg_matchers(cache: &SelectorCache, topics: Vec<Matcher>, allowed: &[Matcher]) -> Registration {
    let compile = |list: &[Matcher]| SelectorSet::compile(cache, list, &base()).unwrap();
    Registration {
        subscribed: compile(&topics),
        allowed: compile(allowed),
        subscriptions: topics
            .into_iter()
            .map(|matcher| Subscription {
                matcher,
                payload: None,
            })
            .collect(),
    }
}

fn event(seq: u64, topics: &[&str], private: bool) -> Arc<Event> {
    let update = UpdateRequest {
        topics: topics.iter().map(|t| t.to_string()).collect(),
        private,
        ..Default::default()
    }
    .validate(String::new)
    .unwrap();
    Arc::new(Event::new(seq, update))
}

fn seqs(rx: &mut queue::Receiver<Delivery>) -> Vec<u64> {
    std::iter::from_fn(|| match rx.try_recv().ok()? {
        Delivery::Event(e) => Some(e.seq),
        Delivery::Heartbeat => Some(0),
    })
    .collect()
}

#[test]
fn routes_by_exact_topic_template_and_privacy() {
    let cache = SelectorCache::new(64);
    let f = Fanout::new(8);
    let (_, mut exact) = f.register(reg(&cache, &["a", "b"], &[]), None).unwrap();
    let (_, mut tpl) = f
        .register(reg(&cache, &["https://x/{id}"], &["https://x/1"]), None)
        .unwrap();
    f.dispatch(&event(1, &["a", "b"], false));
    f.dispatch(&event(2, &["c", "https://x/1"], false));
    f.dispatch(&event(3, &["https://x/2", "a"], true));
    f.dispatch(&event(4, &["https://x/2", "https://x/1"], true));
    assert_eq!(seqs(&mut exact), [1], "once for two topics; no private");
    assert_eq!(
        seqs(&mut tpl),
        [2, 4],
        "alternate topic authorizes the private one"
    );
}

#[test]
fn names_each_receiving_matcher_once_and_never_an_unauthorized_one() {
    let cache = SelectorCache::new(64);
    let f = Fanout::new(8);
    let (sub, _rx) = f
        .register(
            reg(
                &cache,
                &["https://x/{id}", "https://x/2", "https://x/{id}", "*"],
                &["https://x/1"],
            ),
            None,
        )
        .unwrap();
    let public = event(1, &["https://x/2"], false);
    assert_eq!(
        sub.receiving(&public),
        ["https://x/{id}", "https://x/2", "*"]
    );
    let private = event(2, &["https://x/2", "https://x/1"], true);
    assert!(sub.wants(&private));
    assert_eq!(
        sub.receiving(&private),
        ["https://x/{id}", "*"],
        "https://x/2 matches only a topic the token does not grant"
    );
    assert!(sub.receiving(&event(3, &["https://y"], true)).is_empty());
}

#[test]
fn drops_lagging_subscribers_only() {
    let cache = SelectorCache::new(64);
    let f = Fanout::new(2);
    let (slow, _slow_rx) = f.register(reg(&cache, &["a"], &[]), None).unwrap();
    let (_, mut fast) = f.register(reg(&cache, &["a"], &[]), None).unwrap();
    let dropped: Vec<usize> = (1..=3)
        .map(|seq| {
            let dropped = f.dispatch(&event(seq, &["a"], false));
            seqs(&mut fast);
            dropped
        })
        .collect();
    assert_eq!(dropped, [0, 0, 1], "dropped when its queue of 2 overflows");
    assert_eq!(slow.removal(), Some(Removal::Slow));
    assert!(!f.remove(&slow), "slow subscriber was already dropped");
    assert_eq!(f.len(), 1);
}

#[test]
fn disconnect_all_ends_queues_after_their_events_and_keeps_accepting() {
    let cache = SelectorCache::new(64);
    let f = Fanout::new(4);
    let (sub, mut rx) = f.register(reg(&cache, &["a"], &[]), None).unwrap();
    f.dispatch(&event(1, &["a"], false));
    assert_eq!(sub.removal(), None);
    assert_eq!(f.disconnect_all(), 1);
    assert_eq!(sub.removal(), Some(Removal::Resync));
    assert_eq!(seqs(&mut rx), [1], "what was queued is still delivered");
    assert!(matches!(rx.try_recv(), Err(queue::TryRecvError::Closed)));
    let (_, mut again) = f.register(reg(&cache, &["a"], &[]), None).unwrap();
    f.dispatch(&event(2, &["a"], false));
    assert_eq!(seqs(&mut again), [2]);
}

#[tokio::test]
async fn deadlines_remove_subscribers_in_order_and_leave_with_them() {
    let cache = SelectorCache::new(64);
    let f = Fanout::new(4);
    let t0 = Instant::now();
    let at = |secs, why| {
        Some(Deadline {
            at: t0 + std::time::Duration::from_secs(secs),
            why,
        })
    };
    let (expiring, mut expiring_rx) = f
        .register(reg(&cache, &["a"], &[]), at(10, Removal::TokenExpired))
        .unwrap();
    let (recycled, _recycled_rx) = f
        .register(reg(&cache, &["a"], &[]), at(20, Removal::MaxDuration))
        .unwrap();
    let (gone, _gone_rx) = f
        .register(reg(&cache, &["a"], &[]), at(5, Removal::MaxDuration))
        .unwrap();
    let (_forever, mut forever_rx) = f.register(reg(&cache, &["a"], &[]), None).unwrap();
    // A subscriber that left takes its deadline with it.
    assert!(f.remove(&gone));
    assert_eq!(f.registry.read().deadlines.len(), 2);

    let secs = std::time::Duration::from_secs;
    assert_eq!(
        f.expire_due(t0 + secs(9)),
        Some(t0 + secs(10)),
        "none due yet"
    );
    assert_eq!(f.len(), 3);
    f.dispatch(&event(1, &["a"], false));
    assert_eq!(f.expire_due(t0 + secs(10)), Some(t0 + secs(20)));
    assert_eq!(expiring.removal(), Some(Removal::TokenExpired));
    assert_eq!(recycled.removal(), None);
    assert_eq!(seqs(&mut expiring_rx), [1]);
    assert!(matches!(
        expiring_rx.try_recv(),
        Err(queue::TryRecvError::Closed)
    ));
    assert_eq!(f.expire_due(t0 + secs(60)), None, "no deadline left");
    assert_eq!(recycled.removal(), Some(Removal::MaxDuration));
    assert_eq!(f.len(), 1);
    f.dispatch(&event(2, &["a"], false));
    assert_eq!(seqs(&mut forever_rx), [1, 2]);
}

#[tokio::test]
async fn an_earlier_deadline_is_told_and_a_later_one_is_not() {
    let cache = SelectorCache::new(64);
    let f = Fanout::new(4);
    let soon = Instant::now() + std::time::Duration::from_secs(60);
    let register = |at| {
        let deadline = Some(Deadline {
            at,
            why: Removal::MaxDuration,
        });
        f.register(reg(&cache, &["a"], &[]), deadline).unwrap()
    };
    let _first = register(soon);
    let told = |f: &Fanout| {
        let mut changed = std::pin::pin!(f.earliest_changed());
        let waker = futures_util::task::noop_waker_ref();
        std::future::Future::poll(changed.as_mut(), &mut std::task::Context::from_waker(waker))
            .is_ready()
    };
    assert!(told(&f), "the first deadline is the earliest");
    let _later = register(soon + std::time::Duration::from_secs(1));
    assert!(!told(&f), "a later deadline changes nothing");
    let _earlier = register(soon - std::time::Duration::from_secs(1));
    assert!(told(&f));
}

#[test]
fn close_ends_queues_and_refuses_new() {
    let cache = SelectorCache::new(64);
    let f = Fanout::new(2);
    let (sub, mut rx) = f.register(reg(&cache, &["*"], &[]), None).unwrap();
    f.close();
    assert_eq!(sub.removal(), Some(Removal::Shutdown));
    assert!(matches!(rx.try_recv(), Err(queue::TryRecvError::Closed)));
    assert!(f.register(reg(&cache, &["*"], &[]), None).is_err());
}

#[test]
fn identical_selectors_are_held_once_and_leave_with_their_last_subscriber() {
    let cache = SelectorCache::new(64);
    let f = Fanout::new(8);
    let one = |f: &Fanout| {
        f.register(reg(&cache, &["https://x/{id}", "*", "a"], &[]), None)
            .unwrap()
    };
    let (first, mut rx1) = one(&f);
    let (second, mut rx2) = one(&f);
    let (_third, _rx3) = f
        .register(reg(&cache, &["https://y/{id}"], &[]), None)
        .unwrap();
    assert_eq!(
        f.registry.read().patterns.len(),
        3,
        "x/{{id}}, * and y/{{id}}"
    );
    f.dispatch(&event(1, &["https://x/1", "a"], false));
    assert_eq!((seqs(&mut rx1), seqs(&mut rx2)), (vec![1], vec![1]));
    assert!(f.remove(&first));
    assert_eq!(
        f.registry.read().patterns.len(),
        3,
        "still held by the second"
    );
    assert!(f.remove(&second));
    assert_eq!(f.registry.read().patterns.len(), 1);
    assert!(f.registry.read().by_topic.is_empty());
}

/// Literal pieces of the generated selectors and topics: percent-encoding
/// of either case, non-ASCII, another case, separators.
const LITERALS: &[&str] = &[
    "https://a",
    "https://A",
    "/",
    "b",
    "é",
    "%41",
    "%2f",
    "%2F",
    "?",
    "#",
    ",",
    ".",
    "=",
    "&",
];
/// Expressions of the generated templates (and, in topics, text that is a
/// template string itself).
const EXPRESSIONS: &[&str] = &[
    "{x}", "{+r}", "{/p}", "{?q,l}", "{#f}", "{x:2}", "{.e*}", "{&k}",
];
/// What an expansion may put in a topic.
const VALUES: &[&str] = &["1", "q=1", "x,y", "é", "%C3%A9", "k=v&l=w"];
/// URL patterns, including relative ones resolved against the hub.
const PATTERNS: &[&str] = &[
    "https://a/:id",
    "https://a/b/*",
    "/b/:id",
    "https://a{/:x}?",
];

fn pieces(pool: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    proptest::sample::select(pool)
}

/// A 0.x selector: a template, an exact string, or `*`.
fn selector_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![3 => pieces(LITERALS), 2 => pieces(EXPRESSIONS)];
    prop_oneof![
        8 => proptest::collection::vec(piece, 0..5).prop_map(|p| p.concat()),
        1 => Just("*".to_string()),
    ]
}

fn matcher() -> impl Strategy<Value = Matcher> {
    prop_oneof![
        6 => selector_text().prop_map(Matcher::selector),
        1 => selector_text().prop_map(|t| Matcher::new(MatchType::Exact, t)),
        1 => pieces(PATTERNS).prop_map(|t| Matcher::new(MatchType::UrlPattern, t)),
    ]
}

fn topic() -> impl Strategy<Value = String> {
    let piece = prop_oneof![4 => pieces(LITERALS), 3 => pieces(VALUES), 1 => pieces(EXPRESSIONS)];
    proptest::collection::vec(piece, 1..6).prop_map(|p| p.concat())
}

/// Subscribers (matchers, grants), events (topics, private) and which
/// subscribers leave before the events.
type Case = (
    Vec<(Vec<Matcher>, Vec<Matcher>)>,
    Vec<(Vec<String>, bool)>,
    Vec<bool>,
);

fn case() -> impl Strategy<Value = Case> {
    let subscriber = (
        proptest::collection::vec(matcher(), 1..4),
        proptest::collection::vec(selector_text().prop_map(Matcher::selector), 0..3),
    );
    (
        proptest::collection::vec(subscriber, 1..12),
        proptest::collection::vec(
            (proptest::collection::vec(topic(), 1..4), any::<bool>()),
            1..8,
        ),
        proptest::collection::vec(any::<bool>(), 12),
    )
}

proptest! {
    // Each case compiles its templates afresh (the cache is tiny): fewer
    // cases than elsewhere keep the test short.
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every registered subscriber's queue holds exactly the events
    /// `Subscriber::wants` accepts (its selectors and grants matched one
    /// by one), each once and in order, whatever the index does; also
    /// after some subscribers left, and with a cache so small that
    /// identical matchers are compiled again.
    #[test]
    fn the_index_routes_exactly_as_matching_each_subscriber((subs, events, leaves) in case()) {
        let cache = SelectorCache::new(3);
        let f = Fanout::new(64);
        let mut registered: Vec<_> = subs
            .into_iter()
            .filter_map(|(topics, allowed)| {
                let compile = |list: &[Matcher]| SelectorSet::compile(&cache, list, &base()).ok();
                compile(&topics)?;
                compile(&allowed)?;
                Some(f.register(reg_matchers(&cache, topics, &allowed), None).unwrap())
            })
            .collect();
        for (i, (sub, _)) in registered.iter().enumerate() {
            if leaves[i] {
                prop_assert!(f.remove(sub));
            }
        }
        registered.retain(|(sub, _)| f.subscribers().iter().any(|s| Arc::ptr_eq(s, sub)));
        let events: Vec<_> = events
            .iter()
            .enumerate()
            .map(|(i, (topics, private))| {
                let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
                event(i as u64 + 1, &topics, *private)
            })
            .collect();
        for e in &events {
            prop_assert_eq!(f.dispatch(e), 0);
        }
        for (sub, rx) in &mut registered {
            let want: Vec<u64> = events.iter().filter(|e| sub.wants(e)).map(|e| e.seq).collect();
            prop_assert_eq!(seqs(rx), want, "{:?}", sub.subscriptions);
        }
    }
}
