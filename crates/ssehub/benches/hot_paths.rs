//! Criterion benchmarks of ssehub's hot paths: topic selector matching and
//! compilation, SSE framing (encoding and parsing), fan-out dispatch, and
//! the metrics recorded per delivery.
//!
//! Run with `cargo bench --bench hot_paths`; `cargo test --benches` runs each
//! benchmark once as a smoke test.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Bencher, Criterion, Throughput};

use ssehub::fanout::{Delivery, Fanout, Registration, Subscription};
use ssehub::metrics::Metrics;
use ssehub::proto::claims::SelectorSet;
use ssehub::proto::event::Event;
use ssehub::proto::selector::{MatchType, Matcher, Selector, SelectorCache};
use ssehub::proto::sse::{encode_event, EventFields, Parser};
use ssehub::proto::update::{Update, UpdateRequest};

const EVENT_ID: &str = "urn:uuid:01920d6e-7c3a-7b4e-8f2a-5d9c1e0b3a47";
const EVENT_TYPE: &str = "book.updated";

const SIMPLE_TEMPLATE: &str = "https://example.com/books/{id}";
const MULTI_TEMPLATE: &str = "https://example.com/{category}/{id}{?lang}";
const PATH_TEMPLATE: &str = "https://example.com{/path*}";
const URL_PATTERN: &str = "https://example.com/books/:id";

/// The hub URL relative URL patterns resolve against.
fn base() -> url::Url {
    url::Url::parse("https://hub.example/.well-known/mercure").expect("a URL")
}

/// A 0.x selector through `cache`.
fn cached(cache: &SelectorCache, selector: &str) -> Arc<Selector> {
    cache
        .get(&Matcher::selector(selector), &base())
        .expect("selectors compile")
}

fn selector(c: &mut Criterion) {
    let mut group = c.benchmark_group("selector");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);

    // Per-subscribe cost: every topic of a subscription goes through the
    // shared cache, which normally already holds it.
    let cache = SelectorCache::new(1024);
    cached(&cache, SIMPLE_TEMPLATE);
    group.bench_function("cache_get_hit", |b| {
        b.iter(|| cached(&cache, black_box(SIMPLE_TEMPLATE)))
    });

    // Cache miss: compiling the template into a regex and inserting it. A
    // fresh cache per iteration, dropped outside the timed part.
    for (name, template) in [
        ("cache_miss_compile/simple_template", SIMPLE_TEMPLATE),
        ("cache_miss_compile/multi_var_template", MULTI_TEMPLATE),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || SelectorCache::new(16),
                |cache| cached(cache, black_box(template)),
                BatchSize::SmallInput,
            )
        });
    }

    let exact = Selector::parse("https://example.com/books/1");
    let any = Selector::parse("*");
    let simple = Selector::parse(SIMPLE_TEMPLATE);
    let multi = Selector::parse(MULTI_TEMPLATE);
    let path = Selector::parse(PATH_TEMPLATE);
    let pattern = Selector::compile(&Matcher::new(MatchType::UrlPattern, URL_PATTERN), &base())
        .expect("the pattern compiles");
    assert!(exact.as_exact().is_some());
    for template in [&simple, &multi, &path] {
        assert!(matches!(template, Selector::Template(_)));
    }

    let cases: [(&str, &Selector, &str, bool); 10] = [
        (
            "urlpattern_hit",
            &pattern,
            "https://example.com/books/42",
            true,
        ),
        (
            "urlpattern_miss",
            &pattern,
            "https://example.com/authors/42",
            false,
        ),
        ("exact_hit", &exact, "https://example.com/books/1", true),
        // Same length, differs in the last byte: the worst exact miss.
        ("exact_miss", &exact, "https://example.com/books/2", false),
        ("any", &any, "https://example.com/books/1", true),
        (
            "template_hit",
            &simple,
            "https://example.com/books/42",
            true,
        ),
        (
            "template_miss",
            &simple,
            "https://example.com/authors/42",
            false,
        ),
        (
            "multi_var_template_hit",
            &multi,
            "https://example.com/books/42?lang=en",
            true,
        ),
        (
            "multi_var_template_miss",
            &multi,
            "https://example.com/books/42?lang=en&x=1",
            false,
        ),
        (
            "path_explode_5_segments",
            &path,
            "https://example.com/a/bb/ccc/dddd/eeeee",
            true,
        ),
    ];
    for (name, selector, topic, expected) in cases {
        assert_eq!(selector.matches(topic), expected, "{name}");
        group.throughput(Throughput::Bytes(topic.len() as u64));
        group.bench_function(format!("match/{name}"), |b| {
            b.iter(|| black_box(selector).matches(black_box(topic)))
        });
    }
    group.finish();
}

/// `len` bytes of printable ASCII split into `lines` lines joined by LF
/// (the LFs count towards `len`).
fn payload(len: usize, lines: usize) -> String {
    let line_len = (len - (lines - 1)) / lines;
    let mut data = String::with_capacity(len);
    for i in 0..lines {
        if i > 0 {
            data.push('\n');
        }
        let this_len = if i == lines - 1 {
            len - data.len()
        } else {
            line_len
        };
        data.extend((0..this_len).map(|j| char::from(b"abcdefghijklmnopqrstuvwxyz"[(i + j) % 26])));
    }
    assert_eq!(data.len(), len);
    data
}

fn framing(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);

    let payloads = [
        ("100B_1_line", payload(100, 1)),
        ("1KiB_1_line", payload(1024, 1)),
        ("1KiB_16_lines", payload(1024, 16)),
    ];
    for (name, data) in &payloads {
        let fields = EventFields {
            id: EVENT_ID,
            event_type: Some(EVENT_TYPE),
            retry: None,
            data,
        };
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(format!("encode_event/{name}"), |b| {
            b.iter(|| encode_event(black_box(&fields)))
        });
    }

    // 64 KiB of whole frames, cycling through the three payload shapes.
    let frames: Vec<_> = payloads
        .iter()
        .map(|(_, data)| {
            encode_event(&EventFields {
                id: EVENT_ID,
                event_type: Some(EVENT_TYPE),
                retry: None,
                data,
            })
        })
        .collect();
    let mut stream = Vec::with_capacity(64 * 1024);
    let mut frame_count = 0;
    for frame in frames.iter().cycle() {
        if stream.len() + frame.len() > 64 * 1024 {
            break;
        }
        stream.extend_from_slice(frame);
        frame_count += 1;
    }
    assert_eq!(Parser::new().feed(&stream).len(), frame_count);
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("parser_feed/64KiB_one_chunk", |b| {
        b.iter(|| Parser::new().feed(black_box(&stream)))
    });
    // The same stream as 4 KiB reads, so lines straddle chunk boundaries.
    group.bench_function("parser_feed/64KiB_4KiB_chunks", |b| {
        b.iter(|| {
            let mut parser = Parser::new();
            let mut events = 0;
            for chunk in black_box(&stream).chunks(4096) {
                events += parser.feed(chunk).len();
            }
            events
        })
    });
    group.finish();
}

/// Queue capacity of each subscriber.
const QUEUE_SIZE: usize = 64;
/// Events dispatched between two drains: at most one per queue slot, so no
/// queue fills up and no subscriber is dropped for lagging.
const DISPATCH_BATCH: usize = QUEUE_SIZE / 2;

/// A fan-out registry with its subscribers' receivers.
struct Fixture {
    fanout: Fanout,
    receivers: Vec<ssehub::fanout::queue::Receiver<Delivery>>,
    /// Indices of the receivers that the benchmarked event reaches (the only
    /// ones that need draining).
    reached: Vec<usize>,
    /// The update dispatched, re-wrapped with a fresh sequence per event (the
    /// fan-out queues an event only once per sequence number).
    update: Update,
    next_seq: u64,
}

impl Fixture {
    /// Registers one subscriber per selector; `topic` is the published topic.
    fn new(selectors: impl IntoIterator<Item = String>, topic: &str) -> Fixture {
        let cache = SelectorCache::new(16 * 1024);
        let fanout = Fanout::new(QUEUE_SIZE);
        let mut receivers = Vec::new();
        let mut reached = Vec::new();
        for (i, selector) in selectors.into_iter().enumerate() {
            let matchers = vec![Matcher::selector(selector)];
            let subscribed =
                SelectorSet::compile(&cache, &matchers, &base()).expect("selectors compile");
            if subscribed.matches(topic) {
                reached.push(i);
            }
            let subscriptions = matchers
                .into_iter()
                .map(|matcher| Subscription {
                    matcher,
                    payload: None,
                })
                .collect();
            let (_, rx) = fanout
                .register(
                    Registration {
                        subscriptions,
                        subscribed,
                        allowed: SelectorSet::default(),
                    },
                    None,
                )
                .expect("fan-out is open");
            receivers.push(rx);
        }
        let update = UpdateRequest {
            topics: vec![topic.to_owned()],
            data: payload(100, 1),
            id: Some(EVENT_ID.to_owned()),
            event_type: Some(EVENT_TYPE.to_owned()),
            ..UpdateRequest::default()
        }
        .validate(String::new)
        .expect("valid update");
        Fixture {
            fanout,
            receivers,
            reached,
            update,
            next_seq: 1,
        }
    }

    fn next_event(&mut self) -> Arc<Event> {
        let seq = self.next_seq;
        self.next_seq += 1;
        Arc::new(Event::new(seq, self.update.clone()))
    }

    /// Empties the queues of the reached subscribers; returns how many
    /// events were taken.
    fn drain(&mut self) -> usize {
        let mut drained = 0;
        for &i in &self.reached {
            while let Ok(delivery) = self.receivers[i].try_recv() {
                assert!(matches!(delivery, Delivery::Event(_)));
                drained += 1;
            }
        }
        drained
    }

    /// Times `Fanout::dispatch` only: events are built before and queues are
    /// drained after each batch, outside the timed part.
    fn bench(&mut self, b: &mut Bencher<'_>) {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut remaining = iters;
            while remaining > 0 {
                let n = remaining.min(DISPATCH_BATCH as u64);
                remaining -= n;
                let events: Vec<_> = (0..n).map(|_| self.next_event()).collect();
                let start = Instant::now();
                for event in &events {
                    self.fanout.dispatch(black_box(event));
                }
                elapsed += start.elapsed();
                drop(events);
                let drained = self.drain();
                assert_eq!(drained, usize::try_from(n).unwrap() * self.reached.len());
            }
            elapsed
        });
        assert_eq!(
            self.fanout.len(),
            self.receivers.len(),
            "a subscriber was dropped for lagging"
        );
    }
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);

    let topic = "https://example.com/books/1";

    let mut fixture = Fixture::new((0..10_000).map(|_| topic.to_owned()), topic);
    assert_eq!(fixture.reached.len(), 10_000);
    group.throughput(Throughput::Elements(fixture.reached.len() as u64));
    group.bench_function("dispatch/10k_subs_same_exact_topic", |b| fixture.bench(b));
    drop(fixture);

    let mut fixture = Fixture::new(
        (0..10_000).map(|i| format!("https://example.com/books/{}", i + 1)),
        topic,
    );
    assert_eq!(fixture.reached.len(), 1);
    group.throughput(Throughput::Elements(fixture.reached.len() as u64));
    group.bench_function("dispatch/10k_subs_own_exact_topic_1_match", |b| {
        fixture.bench(b)
    });
    drop(fixture);

    let mut fixture = Fixture::new((0..1_000).map(|_| SIMPLE_TEMPLATE.to_owned()), topic);
    assert_eq!(fixture.reached.len(), 1_000);
    group.throughput(Throughput::Elements(fixture.reached.len() as u64));
    group.bench_function("dispatch/1k_subs_template", |b| fixture.bench(b));
    drop(fixture);

    group.finish();
}

/// What a stream records per live delivery: its tally flushed to the
/// shared counters (when each wake-up carries one event, the fan-out case),
/// and, for the deliveries of one event in 16, the latency (a clock read
/// and a sharded histogram).
fn metrics(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics");
    let m = Metrics::default();
    let dispatched = Instant::now();
    group.bench_function("delivery_counts", |b| {
        b.iter(|| {
            m.events_written.add(black_box(1));
            m.bytes_written.add(black_box(120));
        });
    });
    group.bench_function("delivery_timed", |b| {
        b.iter(|| m.delivery_duration.observe(black_box(dispatched).elapsed()));
    });
    group.finish();
}

// Written out rather than `criterion_group!`/`criterion_main!`, whose
// generated `pub fn` trips the crate's `missing_docs` lint.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    selector(&mut c);
    framing(&mut c);
    fanout(&mut c);
    metrics(&mut c);
    c.final_summary();
}
