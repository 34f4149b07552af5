//! The rules of RFC 9113 any HTTP/2 server of the hub must keep, at the
//! frame level, over TLS (ALPN `h2`) and h2c: the connection preface and
//! SETTINGS, PING, flow control both ways, frame sizes, malformed requests
//! (a body other than its `content-length` among them), stream
//! identifiers and states, the concurrent stream limit, frames to ignore,
//! header blocks over CONTINUATION frames and trailers, HPACK's dynamic
//! table and its errors, the header list limit (431), a client's GOAWAY, a
//! PING flood, and a graceful shutdown. Where the RFC lets a server choose
//! between a stream error and a connection error, either passes, unless
//! the test says why not; the comments say which one hyper (h2), which
//! served HTTP/2 before the hub's own engine, chose.

use std::time::Duration;

use ssehub::metrics::Limit;
use ssehub::proto::sse::Parser;

use super::TlsChild;
use crate::common::h2_frames::{
    connect, field_block, frame, goaway, header_frames, indexed, indexed_literal, opening, ping,
    request_block, reset, send, settings, window_update, Answer, Flood, Flooding, Frame, Frames,
    ACK, CANCEL, COMPRESSION_ERROR, CONTINUATION, DATA, DEFAULT_MAX_FRAME, DEFAULT_WINDOW,
    END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, H2, HEADERS,
    INITIAL_WINDOW_SIZE, MAX_CONCURRENT_STREAMS, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE, MAX_WINDOW,
    NO_ERROR, PING, PREFACE, PRIORITY, PRIORITY_FLAG, PROTOCOL_ERROR, REFUSED_STREAM, SETTINGS,
    STREAM_CLOSED,
};
use crate::common::https::{cert_pem, tls_addr, tls_hub_with};
use crate::common::{publisher_token, topic_query, TestHub};

/// The topic of the updates these tests publish.
const TOPIC: &str = "urn:h2-rules";

/// The hub's HTTP/2 receive window of a stream (`docs/architecture.md`,
/// Serving).
const HUB_STREAM_WINDOW: u32 = 256 << 10;

/// The hub's default `--max-header-bytes`: its SETTINGS_MAX_HEADER_LIST_SIZE.
const HUB_HEADER_LIST: u32 = 64 << 10;

/// The server's first frame is a SETTINGS frame, not an ACK (RFC 9113,
/// 3.4), carrying the hub's documented choices (`--max-concurrent-streams`,
/// a stream window of 256 KiB, `--max-header-bytes` as the header list
/// size); the hub acknowledges the client's SETTINGS (6.5.3) and answers a
/// PING with a PING ACK carrying the same 8 bytes (6.7).
#[tokio::test]
async fn the_hub_opens_with_settings_acks_ours_and_answers_pings() {
    let hub = hub(Some(7)).await;
    let tls = connect(tls_addr(&hub), &cert_pem(&hub)).await;
    let (read, mut write) = tokio::io::split(tls);
    let mut frames = Frames::new(read);
    assert!(send(&mut write, &opening()).await);
    let first = frames.next().await.expect("a first frame");
    assert_eq!(
        (
            first.kind,
            first.flags & ACK,
            first.stream,
            first.payload.len() % 6
        ),
        (SETTINGS, 0, 0, 0),
        "the first frame is SETTINGS, not an ACK: {first:?}"
    );
    let hub_settings = first.settings();
    for expected in [
        (MAX_CONCURRENT_STREAMS, 7),
        (INITIAL_WINDOW_SIZE, HUB_STREAM_WINDOW),
        (MAX_HEADER_LIST_SIZE, HUB_HEADER_LIST),
    ] {
        assert!(hub_settings.contains(&expected), "{hub_settings:?}");
    }
    let payload = *b"h2-rules";
    let ours = [frame(SETTINGS, ACK, 0, &[]), frame(PING, 0, 0, &payload)].concat();
    assert!(send(&mut write, &ours).await);
    let (mut settings_acked, mut pong) = (false, None);
    while !settings_acked || pong.is_none() {
        let f = frames.next().await.expect("the connection stays open");
        match f.kind {
            SETTINGS if f.flags & ACK != 0 => {
                assert!(f.payload.is_empty(), "an empty SETTINGS ACK: {f:?}");
                settings_acked = true;
            }
            PING if f.flags & ACK != 0 => pong = Some(f.payload),
            _ => {}
        }
    }
    assert_eq!(
        pong.unwrap(),
        payload,
        "the PING ACK carries the PING's bytes"
    );
}

/// Flow control of a response (RFC 9113, 5.2 and 6.9): a client whose
/// SETTINGS_INITIAL_WINDOW_SIZE is 16 bytes subscribes and an update of
/// 1 KiB is published: the hub sends no more DATA on the stream than the
/// 16 bytes and each WINDOW_UPDATE since allow, stopping (a PING answered,
/// nothing more sent) whenever they are used up, and the whole event
/// arrives intact.
#[tokio::test]
async fn a_response_stays_within_a_small_stream_window() {
    let hub = hub(None).await;
    let mut h2 = open(&hub, &[(INITIAL_WINDOW_SIZE, 16)]).await;
    subscribe(&mut h2, 1).await;
    let data = payload(1 << 10);
    publish(&hub, &data).await;
    let grants = receive_event(&mut h2, 1, &data, 128).await;
    assert!(grants.stream > 0, "the stream's window held the event back");
    assert_eq!(grants.connection, 0);
}

/// Flow control of a response on the connection (RFC 9113, 6.9.1): with a
/// stream window of 2^31-1 but the connection's left at its initial
/// 65,535 bytes, an update of 100 KiB comes no faster than the
/// connection's WINDOW_UPDATEs (16 KiB at a time, each sent once the
/// window is used up) allow, and intact.
#[tokio::test]
async fn a_response_stays_within_the_connection_window() {
    let hub = hub(None).await;
    let mut h2 = open(&hub, &[(INITIAL_WINDOW_SIZE, MAX_WINDOW)]).await;
    subscribe(&mut h2, 1).await;
    let data = payload(100 << 10);
    publish(&hub, &data).await;
    let grants = receive_event(&mut h2, 1, &data, 16 << 10).await;
    assert!(
        grants.connection > 0,
        "the connection's window held it back"
    );
    assert_eq!(grants.stream, 0);
}

/// A SETTINGS_INITIAL_WINDOW_SIZE lowered after a stream opened applies
/// to that stream (RFC 9113, 6.9.2): its window shrinks by the difference,
/// and an update published then comes within the new window and the
/// WINDOW_UPDATEs that follow.
#[tokio::test]
async fn a_lowered_initial_window_applies_to_open_streams() {
    let hub = hub(None).await;
    let mut h2 = open(&hub, &[]).await;
    subscribe(&mut h2, 1).await;
    // Whatever the stream starts with is in before the window shrinks.
    assert!(h2.ping_round_trip().await);
    h2.settle(&[(INITIAL_WINDOW_SIZE, 16)]).await;
    let data = payload(1 << 10);
    publish(&hub, &data).await;
    let grants = receive_event(&mut h2, 1, &data, 128).await;
    assert!(grants.stream > 0, "the lowered window held the event back");
}

/// A request body over HTTP/2 (RFC 9113, 6.9): a publish of 300 KiB, more
/// than the hub's stream window, sent in DATA frames that never exceed
/// the credit the hub granted (its SETTINGS_INITIAL_WINDOW_SIZE and
/// WINDOW_UPDATEs, the stream's and the connection's), is accepted (200)
/// and a subscriber receives the whole data.
#[tokio::test]
async fn a_large_publish_body_is_read_within_the_hubs_windows() {
    let hub = hub(None).await;
    let mut watcher = hub.subscribe(&topic_query(&[TOPIC]), &[]).await;
    let mut h2 = open(&hub, &[]).await;
    assert_eq!(
        h2.hub_settings.get(&INITIAL_WINDOW_SIZE),
        Some(&HUB_STREAM_WINDOW)
    );
    let data = payload(300 << 10);
    let block = [publish_head(), field_block(&[("authorization", &bearer())])].concat();
    let waits = h2.request(1, &block, Some(form(&data).as_bytes())).await;
    assert!(waits > 0, "the body was larger than the hub's first credit");
    assert_eq!(h2.answer(1).await, Answer::Status(200));
    let id = String::from_utf8(h2.body(1).await).unwrap();
    let event = watcher.next().await;
    assert_eq!(event.last_event_id, id);
    assert!(event.data == data, "the subscriber receives the whole data");
}

/// Malformed requests (RFC 9113, 8.1.1, 8.2.1, 8.2.2, 8.3.1) are stream
/// errors of type PROTOCOL_ERROR, which a server may make connection
/// errors (5.4), or 400 responses; the connection, if still open, serves
/// the next stream, and the hub goes on serving.
#[tokio::test]
async fn malformed_requests_are_protocol_errors() {
    let hub = hub(None).await;
    let cases = [
        // hyper: GOAWAY PROTOCOL_ERROR (h2's HPACK decoder refuses the name).
        (
            "an uppercase field name",
            request_block("GET", "/healthz", &[("X-Rules", "1")]),
        ),
        // hyper: RST_STREAM PROTOCOL_ERROR (no URI without a path).
        (
            "no :path",
            field_block(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":authority", "localhost"),
            ]),
        ),
        // hyper: RST_STREAM PROTOCOL_ERROR.
        (
            "a connection-specific field",
            request_block("GET", "/healthz", &[("connection", "keep-alive")]),
        ),
        // hyper: RST_STREAM PROTOCOL_ERROR.
        (
            "a pseudo-header field after a regular one",
            field_block(&[
                (":method", "GET"),
                (":scheme", "https"),
                ("x-rules", "1"),
                (":authority", "localhost"),
                (":path", "/healthz"),
            ]),
        ),
        // hyper: RST_STREAM PROTOCOL_ERROR.
        (
            "te other than trailers",
            request_block("GET", "/healthz", &[("te", "gzip")]),
        ),
    ];
    for (case, block) in cases {
        let mut h2 = open(&hub, &[]).await;
        h2.request(1, &block, None).await;
        let answer = h2.answer(1).await;
        assert!(
            matches!(
                answer,
                Answer::Reset(PROTOCOL_ERROR)
                    | Answer::GoAway(PROTOCOL_ERROR)
                    | Answer::Status(400)
            ),
            "{case}: {answer:?}"
        );
        assert_still_served(&hub, h2, 3).await;
    }
}

/// Stream identifiers (RFC 9113, 5.1.1): a client opening an even stream,
/// or a stream numbered lower than one it opened, gets a connection error
/// (GOAWAY) of type PROTOCOL_ERROR (or STREAM_CLOSED, for the lower one);
/// the hub goes on serving other connections.
#[tokio::test]
async fn even_and_decreasing_stream_ids_are_connection_errors() {
    let hub = hub(None).await;
    // hyper: GOAWAY PROTOCOL_ERROR.
    let mut h2 = open(&hub, &[]).await;
    h2.request(2, &healthz(), None).await;
    assert_eq!(h2.answer(2).await, Answer::GoAway(PROTOCOL_ERROR));
    assert_still_served(&hub, h2, 4).await;
    // hyper: GOAWAY PROTOCOL_ERROR, its last stream 5.
    let mut h2 = open(&hub, &[]).await;
    assert_served(&mut h2, 5).await;
    h2.request(3, &healthz(), None).await;
    let answer = h2.answer(3).await;
    assert!(
        matches!(answer, Answer::GoAway(PROTOCOL_ERROR | STREAM_CLOSED)),
        "{answer:?}"
    );
    let (last_stream, _) = h2.goaways[0];
    assert!(last_stream >= 5, "stream 5 was processed: {last_stream}");
    assert_still_served(&hub, h2, 7).await;
}

/// Beyond SETTINGS_MAX_CONCURRENT_STREAMS (`--max-concurrent-streams`),
/// a new stream is refused with a stream error of type REFUSED_STREAM or
/// PROTOCOL_ERROR (RFC 9113, 5.1.2; hyper: REFUSED_STREAM), and the
/// streams open before it go on: each receives the next update.
#[tokio::test]
async fn a_stream_beyond_the_concurrent_limit_is_refused() {
    let hub = hub(Some(3)).await;
    let mut h2 = open(&hub, &[]).await;
    assert_eq!(h2.hub_settings.get(&MAX_CONCURRENT_STREAMS), Some(&3));
    for stream in [1, 3, 5] {
        subscribe(&mut h2, stream).await;
    }
    h2.request(7, &subscribe_block(), None).await;
    let answer = h2.answer(7).await;
    assert!(
        matches!(answer, Answer::Reset(REFUSED_STREAM | PROTOCOL_ERROR)),
        "{answer:?}"
    );
    let data = payload(64);
    publish(&hub, &data).await;
    let received = h2
        .until(|h2| [1, 3, 5].iter().all(|s| has_event(h2, *s, &data)))
        .await;
    assert!(received, "every open stream receives the update");
    assert!(h2.goaways.is_empty(), "{:?}", h2.goaways);
}

/// Frames of unknown types and unknown settings are ignored (RFC 9113,
/// 4.1, 5.5, 6.5.2): a PING after them is answered, the SETTINGS
/// acknowledged; PRIORITY frames, on an open stream or an idle one, and a
/// HEADERS frame with priority fields are accepted (5.3.2, 6.3).
#[tokio::test]
async fn unknown_frames_and_settings_are_ignored_and_priority_accepted() {
    let hub = hub(None).await;
    let mut h2 = open(&hub, &[]).await;
    subscribe(&mut h2, 1).await;
    let unknown = [
        frame(0xfa, 0xff, 0, b"ignored"),
        frame(0xfb, 0, 1, b"ignored on an open stream"),
    ]
    .concat();
    assert!(h2.send(&unknown).await);
    assert!(h2.ping_round_trip().await, "a PING after unknown frames");
    h2.settle(&[(0x00ff, 1), (0xfafa, 0xdead_beef)]).await;
    assert!(h2.ping_round_trip().await, "a PING after unknown settings");
    // Exclusive flag clear, depending on stream 0, weight 16.
    let priority = [0, 0, 0, 0, 15];
    let priorities = [
        frame(PRIORITY, 0, 1, &priority),
        frame(PRIORITY, 0, 3, &priority),
    ];
    assert!(h2.send(&priorities.concat()).await);
    let headers = [&priority[..], &healthz()].concat();
    let flags = END_HEADERS | END_STREAM | PRIORITY_FLAG;
    assert!(h2.send(&frame(HEADERS, flags, 5, &headers)).await);
    assert_eq!(h2.answer(5).await, Answer::Status(200));
    assert_eq!(h2.body(5).await, b"ok\n");
    assert!(h2.ping_round_trip().await);
    assert!(h2.goaways.is_empty(), "{:?}", h2.goaways);
    let subscription = h2.response(1).unwrap();
    assert!(!subscription.ended && subscription.reset.is_none());
}

/// WINDOW_UPDATE errors (RFC 9113, 6.9 and 6.9.1): an increment of 0 on a
/// stream is a stream error of type PROTOCOL_ERROR (hyper: GOAWAY
/// PROTOCOL_ERROR, as it makes it a connection error); one that takes a
/// stream's window past 2^31-1 a stream error of type FLOW_CONTROL_ERROR
/// (hyper: RST_STREAM); one that takes the connection's window past it a
/// connection error of type FLOW_CONTROL_ERROR.
#[tokio::test]
async fn bad_window_updates_are_errors() {
    let hub = hub(None).await;
    let cases = [
        (
            "zero increment on a stream",
            window_update(1, 0),
            PROTOCOL_ERROR,
        ),
        (
            "stream window overflow",
            window_update(1, MAX_WINDOW),
            FLOW_CONTROL_ERROR,
        ),
    ];
    for (case, update, code) in cases {
        let (h2, answer) = error_on_subscription(&hub, &update).await;
        assert!(
            answer == Answer::Reset(code) || answer == Answer::GoAway(code),
            "{case}: {answer:?}"
        );
        assert_still_served(&hub, h2, 3).await;
    }
    let (_, answer) = error_on_subscription(&hub, &window_update(0, MAX_WINDOW)).await;
    assert_eq!(
        answer,
        Answer::GoAway(FLOW_CONTROL_ERROR),
        "connection window overflow"
    );
}

/// HPACK's dynamic table (RFC 7541, 2.3.2 and 6.2.1) lasts across a
/// connection's header blocks: a request adds `authorization` to it
/// (literal with incremental indexing), the next refers to it by index 62
/// alone, and both publish (200), where a request without it is refused
/// (401).
#[tokio::test]
async fn a_field_indexed_by_one_request_serves_the_next() {
    let hub = hub(None).await;
    let mut h2 = open(&hub, &[]).await;
    let body = form("dynamic table");
    let cases = [
        (indexed_literal("authorization", &bearer()), 200),
        (indexed(62), 200),
        (vec![], 401),
    ];
    for (stream, (authorization, status)) in (1..).step_by(2).zip(cases) {
        let block = [publish_head(), authorization].concat();
        h2.request(stream, &block, Some(body.as_bytes())).await;
        assert_eq!(h2.answer(stream).await, Answer::Status(status), "{stream}");
        h2.body(stream).await;
    }
}

/// A graceful shutdown (RFC 9113, 6.8): with a subscription open on an
/// HTTP/2 connection, the hub sends GOAWAY NO_ERROR (its last stream
/// covering the subscription) and ends the stream with END_STREAM, never a
/// RST_STREAM, before closing the connection.
#[tokio::test]
async fn a_shutdown_sends_goaway_and_ends_streams() {
    let mut hub = hub(None).await;
    let mut h2 = open(&hub, &[]).await;
    subscribe(&mut h2, 1).await;
    let (_, closed) = tokio::join!(hub.shutdown(), h2.until(H2::is_closed));
    assert!(closed);
    let subscription = h2.response(1).unwrap();
    assert!(
        subscription.ended && subscription.reset.is_none(),
        "{subscription:?}"
    );
    assert!(!h2.goaways.is_empty(), "a GOAWAY before the end");
    for (last_stream, code) in &h2.goaways {
        assert_eq!(
            (*code, *last_stream >= 1),
            (NO_ERROR, true),
            "{:?}",
            h2.goaways
        );
    }
}

/// h2c with prior knowledge on the plain port (RFC 9113, 3.3): the preface
/// and frames without TLS, and a request is answered.
#[tokio::test]
async fn h2c_with_prior_knowledge_serves_a_request() {
    let hub = hub(None).await;
    let addr = hub.running.as_ref().unwrap().addr;
    let mut h2 = H2::plain(addr, &[]).await;
    let block = field_block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", &addr.to_string()),
        (":path", "/healthz"),
    ]);
    h2.request(1, &block, None).await;
    assert_eq!(h2.answer(1).await, Answer::Status(200));
    assert_eq!(h2.body(1).await, b"ok\n");
}

/// DATA on a stream the client ended: after a subscription's HEADERS with
/// END_STREAM (the stream half-closed, remote: RFC 9113, 5.1) and after a
/// request answered whole (the stream closed: 5.1, 6.1), a DATA frame is
/// an error of type STREAM_CLOSED, a stream error (RST_STREAM) or, as 5.1
/// and 5.4.1 allow, a connection error (GOAWAY); the hub goes on serving.
#[tokio::test]
async fn data_after_the_clients_end_stream_is_stream_closed() {
    let hub = hub(None).await;
    let late = frame(DATA, END_STREAM, 1, b"late");
    let (h2, answer) = error_on_subscription(&hub, &late).await;
    assert!(
        matches!(
            answer,
            Answer::Reset(STREAM_CLOSED) | Answer::GoAway(STREAM_CLOSED)
        ),
        "half-closed: {answer:?}"
    );
    assert_still_served(&hub, h2, 3).await;
    let mut h2 = open(&hub, &[]).await;
    assert_served(&mut h2, 1).await;
    assert!(h2.send(&late).await);
    let answer = h2.error(1).await;
    assert!(
        matches!(
            answer,
            Answer::Reset(STREAM_CLOSED) | Answer::GoAway(STREAM_CLOSED)
        ),
        "closed: {answer:?}"
    );
    assert_still_served(&hub, h2, 3).await;
}

/// A field block that refers to an entry of the dynamic table that does
/// not exist (RFC 7541, 2.3.3 and 6.1: an index past both tables, or 0) is
/// a decoding error, which RFC 9113 (4.3) makes a connection error of type
/// COMPRESSION_ERROR, never a stream error: index 62 on a new connection
/// (its dynamic table empty), 63 when one entry was added, and 0. The hub
/// goes on serving other connections.
#[tokio::test]
async fn an_index_past_the_dynamic_table_is_a_compression_error() {
    let hub = hub(None).await;
    let cases = [
        ("62, the table empty", None, 62),
        ("63, one entry", Some(indexed_literal("x-rules", "1")), 63),
        ("0", None, 0),
    ];
    for (case, entry, index) in cases {
        let mut h2 = open(&hub, &[]).await;
        let mut stream = 1;
        if let Some(entry) = entry {
            h2.request(stream, &[healthz(), entry].concat(), None).await;
            assert_eq!(h2.answer(stream).await, Answer::Status(200), "{case}");
            h2.body(stream).await;
            stream += 2;
        }
        let block = [healthz(), indexed(index)].concat();
        h2.request(stream, &block, None).await;
        let answer = h2.answer(stream).await;
        assert_eq!(answer, Answer::GoAway(COMPRESSION_ERROR), "{case}");
        assert_still_served(&hub, h2, stream + 2).await;
    }
}

/// A small `--max-header-bytes`: the smallest the hub takes.
const SMALL_HEADER_LIST: u32 = 8 << 10;

/// A header list larger than `--max-header-bytes`, the hub's
/// SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113, 6.5.2), its block over a
/// HEADERS and three CONTINUATION frames (one field value of 12 KiB), is
/// answered 431 (10.5.1, RFC 6585) ending the stream, and counted
/// (`ssehub_limits_hit_total{limit="headers"}`). The block is still
/// processed, so that HPACK stays in step (10.5.1): the `authorization` it
/// added to the dynamic table (incremental indexing, RFC 7541 6.2.1)
/// publishes the next request by index 62 alone (200).
#[tokio::test]
async fn a_header_list_past_the_limit_is_431_and_hpack_stays_in_step() {
    let hub = tls_hub_with(|o| {
        o.access.anonymous = Some(true);
        o.limits.max_header_bytes = Some(SMALL_HEADER_LIST as usize);
    })
    .await;
    let hits = header_limit_hits(&hub);
    let mut h2 = open(&hub, &[]).await;
    let limit = h2.hub_settings.get(&MAX_HEADER_LIST_SIZE);
    assert_eq!(limit, Some(&SMALL_HEADER_LIST));
    let large = payload(12 << 10);
    let block = [
        healthz(),
        indexed_literal("authorization", &bearer()),
        field_block(&[("x-large", &large)]),
    ]
    .concat();
    assert!(
        h2.send(&header_frames(1, END_STREAM, &block, 4 << 10))
            .await
    );
    assert_eq!(h2.answer(1).await, Answer::Status(431));
    h2.body(1).await;
    assert_eq!(header_limit_hits(&hub), hits + 1, "the 431 was counted");
    let block = [publish_head(), indexed(62)].concat();
    h2.request(3, &block, Some(form("after a 431").as_bytes()))
        .await;
    assert_eq!(h2.answer(3).await, Answer::Status(200));
    h2.body(3).await;
    assert!(h2.goaways.is_empty(), "{:?}", h2.goaways);
}

/// A request whose DATA frames carry more than its `content-length`, or
/// that ends (END_STREAM, on DATA or trailers) short of it, is malformed
/// (RFC 9113, 8.1.1): a stream error of type PROTOCOL_ERROR, which leaves
/// the connection serving the next stream. None of these publishes
/// reaches a subscriber.
#[tokio::test]
async fn a_body_other_than_its_content_length_is_a_protocol_error() {
    let hub = hub(None).await;
    let mut watcher = hub.subscribe(&topic_query(&[TOPIC]), &[]).await;
    let body = form("a body other than its length");
    let (n, body) = (body.len(), body.as_bytes());
    let (half, rest) = body.split_at(n / 2);
    let trailers = field_block(&[("x-trailer", "1")]);
    let cases = [
        (
            "more, in the last DATA",
            n - 1,
            vec![(DATA, END_STREAM, body)],
        ),
        (
            "more, before the last DATA",
            n / 2 - 1,
            vec![(DATA, 0, half), (DATA, END_STREAM, rest)],
        ),
        ("short at END_STREAM", n + 1, vec![(DATA, END_STREAM, body)]),
        (
            "short at the trailers",
            n + 1,
            vec![
                (DATA, 0, body),
                (HEADERS, END_HEADERS | END_STREAM, &trailers),
            ],
        ),
    ];
    let mut h2 = open(&hub, &[]).await;
    for ((case, length, frames), stream) in cases.into_iter().zip((1..).step_by(2)) {
        publish_with_length(&mut h2, stream, length, &frames).await;
        let answer = h2.error(stream).await;
        assert_eq!(answer, Answer::Reset(PROTOCOL_ERROR), "{case}");
    }
    assert_served(&mut h2, 9).await;
    assert!(h2.goaways.is_empty(), "{:?}", h2.goaways);
    publish(&hub, "fence").await;
    assert_eq!(watcher.next().await.data, "fence", "nothing else published");
}

/// Frames a client sent on a stream before it saw the hub's RST_STREAM
/// are ignored (RFC 9113, 5.1, "closed": an endpoint MUST ignore frames
/// it receives on closed streams after it has sent a RST_STREAM): a
/// publish whose first DATA frame exceeds its `content-length` is reset
/// (PROTOCOL_ERROR, 8.1.1), and the DATA frame written right behind it
/// draws no second RST_STREAM (a PING after it answered, the stream's
/// last reset still PROTOCOL_ERROR, the connection serving).
#[tokio::test]
async fn frames_in_flight_after_a_reset_are_ignored() {
    let hub = hub(None).await;
    let mut h2 = open(&hub, &[]).await;
    let body = form("in flight");
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let frames = [(DATA, 0, first), (DATA, END_STREAM, rest)];
    publish_with_length(&mut h2, 1, first.len() - 1, &frames).await;
    assert_eq!(h2.error(1).await, Answer::Reset(PROTOCOL_ERROR));
    assert!(h2.ping_round_trip().await);
    let reset = h2.response(1).and_then(|r| r.reset);
    assert_eq!(reset, Some(PROTOCOL_ERROR), "one RST_STREAM");
    assert_served(&mut h2, 3).await;
}

/// A field block over a HEADERS frame and CONTINUATION frames of a few
/// bytes each (RFC 9113, 4.3 and 6.10) is decoded and answered like one in
/// a single frame. A header block is one unit: any other frame between its
/// frames, a CONTINUATION of another stream among them, is a connection
/// error of type PROTOCOL_ERROR (4.3, 6.10). The hub goes on serving.
#[tokio::test]
async fn header_blocks_over_continuations_are_one_unit() {
    let hub = hub(None).await;
    let mut h2 = open(&hub, &[]).await;
    assert!(
        h2.send(&header_frames(1, END_STREAM, &subscribe_block(), 5))
            .await
    );
    assert_eq!(h2.answer(1).await, Answer::Status(200));
    let block = [healthz(), indexed_literal("x-rules", "1")].concat();
    assert!(h2.send(&header_frames(3, END_STREAM, &block, 3)).await);
    assert_eq!(h2.answer(3).await, Answer::Status(200));
    assert_eq!(h2.body(3).await, b"ok\n");
    // HPACK in step: the entry the split block added serves the next one.
    let block = [healthz(), indexed(62)].concat();
    assert!(h2.send(&header_frames(5, END_STREAM, &block, 2)).await);
    assert_eq!(h2.answer(5).await, Answer::Status(200));
    assert!(h2.goaways.is_empty(), "{:?}", h2.goaways);
    let priority = [0, 0, 0, 0, 15];
    let interruptions = [
        (
            "a CONTINUATION of another stream",
            frame(CONTINUATION, 0, 3, b""),
        ),
        (
            "HEADERS of another stream",
            frame(HEADERS, END_HEADERS | END_STREAM, 3, &healthz()),
        ),
        ("DATA of the stream", frame(DATA, 0, 1, b"x")),
        ("PRIORITY of the stream", frame(PRIORITY, 0, 1, &priority)),
        ("a PING", ping(1)),
        ("SETTINGS", settings(&[])),
        ("an unknown frame", frame(0xfa, 0, 0, b"x")),
    ];
    let block = healthz();
    let (start, end) = block.split_at(10);
    for (case, interruption) in interruptions {
        let mut h2 = open(&hub, &[]).await;
        let sent = [
            frame(HEADERS, END_STREAM, 1, start),
            interruption,
            frame(CONTINUATION, END_HEADERS, 1, end),
        ];
        assert!(h2.send(&sent.concat()).await);
        assert_eq!(h2.answer(1).await, Answer::GoAway(PROTOCOL_ERROR), "{case}");
        assert_still_served(&hub, h2, 3).await;
    }
}

/// Request trailers (RFC 9113, 8.1): a publish whose body is followed by a
/// HEADERS frame with END_STREAM carrying a trailer field is accepted
/// (200) and delivered. A HEADERS frame without END_STREAM after those
/// that opened a request makes it malformed (8.1, 8.1.1): a stream error
/// of type PROTOCOL_ERROR, which leaves the connection serving.
#[tokio::test]
async fn trailers_end_a_request_and_headers_without_end_stream_are_malformed() {
    let hub = hub(None).await;
    let mut watcher = hub.subscribe(&topic_query(&[TOPIC]), &[]).await;
    let mut h2 = open(&hub, &[]).await;
    let trailers = field_block(&[("x-trailer", "1")]);
    open_publish(&mut h2, 1, &[]).await;
    let body = form("with trailers");
    let sent = [
        frame(DATA, 0, 1, body.as_bytes()),
        frame(HEADERS, END_HEADERS | END_STREAM, 1, &trailers),
    ];
    assert!(h2.send(&sent.concat()).await);
    assert_eq!(h2.answer(1).await, Answer::Status(200));
    let id = String::from_utf8(h2.body(1).await).unwrap();
    let event = watcher.next().await;
    assert_eq!(
        (&event.last_event_id[..], &event.data[..]),
        (&id[..], "with trailers")
    );
    open_publish(&mut h2, 3, &[]).await;
    let sent = [
        frame(DATA, 0, 3, body.as_bytes()),
        frame(HEADERS, END_HEADERS, 3, &trailers),
    ];
    assert!(h2.send(&sent.concat()).await);
    assert_eq!(h2.error(3).await, Answer::Reset(PROTOCOL_ERROR));
    assert_served(&mut h2, 5).await;
    assert!(h2.goaways.is_empty(), "{:?}", h2.goaways);
}

/// PINGs in each write of a flood.
const PINGS_PER_WRITE: u64 = 1_000;
/// Writes of PINGs a flood makes at most: 85 MB, far more than the
/// kernel's socket buffers hold (on Linux some 8 MB on loopback), so that
/// a hub that read on while its answers went unread could not hide it.
const PING_WRITES: usize = 5_000;
/// A write of the flood that waits this long is taken as blocked.
const STALL: Duration = Duration::from_secs(2);
/// The PING that closes a flood.
const LAST_PING: u64 = u64::MAX;

/// A flood of PINGs (RFC 9113, 6.7 and 10.5: each asks for an answer)
/// from a client that does not read their answers, in writes of 1,000:
/// the hub stops reading once its answers go unread, or closes the
/// connection, so the client's writes block (or fail) long before 5,000
/// are written; meanwhile another client is served and the hub's memory
/// stays bounded. Once the client reads, the hub reads on: it answers
/// every PING (6.7: it must) and takes the rest of the flood, or ends the
/// connection (a GOAWAY, if any, of ENHANCE_YOUR_CALM).
#[tokio::test]
async fn a_ping_flood_unread_is_held_back_then_answered() {
    let child = TlsChild::start(&[]).await;
    let mut watcher = child.watch().await;
    let rss_before = child.hub.rss_kib();
    let (read, mut write) = tokio::io::split(connect(child.tls, &child.pem).await);
    assert!(send(&mut write, &opening()).await);
    let mut flood = Flood::start(write, PING_WRITES, |i| {
        let first = u64::try_from(i).unwrap() * PINGS_PER_WRITE;
        (first..first + PINGS_PER_WRITE).flat_map(ping).collect()
    });
    let held = flood.until_stalled(STALL).await;
    child
        .assert_unharmed(&mut watcher, rss_before, "PING flood")
        .await;
    flood.stop();
    let answers = tokio::spawn(async move { Frames::new(read).until_pong(LAST_PING).await });
    let (end, mut write) = flood.finish().await;
    let Flooding::Written(writes) = end else {
        return assert_calm(&answers.await.unwrap());
    };
    assert!(
        held.is_some(),
        "the hub read the whole flood ({writes} writes) while its answers went unread"
    );
    let last = send(&mut write, &ping(LAST_PING)).await;
    match answers.await.unwrap() {
        Ok(pongs) if last => {
            let pings = u64::try_from(writes).unwrap() * PINGS_PER_WRITE + 1;
            assert_eq!(pongs, pings, "every PING answered");
        }
        answered => assert_calm(&answered),
    }
}

/// Asserts that the connection read by `answered` (see
/// [`Frames::until_pong`]) ended without a GOAWAY or with one of
/// ENHANCE_YOUR_CALM.
fn assert_calm(answered: &Result<u64, Option<Frame>>) {
    let Err(goaway) = answered else {
        panic!("the connection was to have ended: {answered:?}");
    };
    let code = goaway.as_ref().and_then(Frame::goaway).map(|(_, c)| c);
    assert!(matches!(code, None | Some(ENHANCE_YOUR_CALM)), "{goaway:?}");
}

/// A client's GOAWAY (RFC 9113, 6.8) says it takes no streams the hub
/// would open; it ends nothing the client opened: a subscription open
/// before it receives an update published after it, the connection stays
/// open (PINGs answered), and the hub sends no GOAWAY but one of NO_ERROR.
#[tokio::test]
async fn a_clients_goaway_leaves_its_streams_served() {
    let hub = hub(None).await;
    let mut h2 = open(&hub, &[]).await;
    subscribe(&mut h2, 1).await;
    assert!(h2.send(&goaway(0, NO_ERROR)).await);
    assert!(h2.ping_round_trip().await, "the hub read the GOAWAY");
    let data = payload(64);
    publish(&hub, &data).await;
    assert!(h2.until(|h2| has_event(h2, 1, &data)).await);
    assert!(h2.ping_round_trip().await);
    let subscription = h2.response(1).unwrap();
    assert!(
        !subscription.ended && subscription.reset.is_none(),
        "{subscription:?}"
    );
    assert!(
        h2.goaways.iter().all(|(_, code)| *code == NO_ERROR),
        "{:?}",
        h2.goaways
    );
}

/// A frame larger than the hub's SETTINGS_MAX_FRAME_SIZE (16,384, the
/// default: RFC 9113, 4.2 and 6.5.2) is an error of type FRAME_SIZE_ERROR:
/// a connection error for a frame on stream 0 or carrying a field block
/// (HEADERS), a stream or connection error for DATA on a stream (4.2).
/// The hub goes on serving.
#[tokio::test]
async fn a_frame_past_the_max_frame_size_is_a_frame_size_error() {
    let hub = hub(None).await;
    let oversized = vec![b'a'; DEFAULT_MAX_FRAME as usize + 1];
    let mut h2 = open(&hub, &[]).await;
    open_publish(&mut h2, 1, &[]).await;
    h2.send(&frame(DATA, END_STREAM, 1, &oversized)).await;
    let answer = h2.error(1).await;
    assert!(
        matches!(
            answer,
            Answer::Reset(FRAME_SIZE_ERROR) | Answer::GoAway(FRAME_SIZE_ERROR)
        ),
        "DATA: {answer:?}"
    );
    assert_still_served(&hub, h2, 3).await;
    let large = payload(DEFAULT_MAX_FRAME as usize + 1 - healthz().len());
    let mut block = [healthz(), field_block(&[("x-large", &large)])].concat();
    block.truncate(DEFAULT_MAX_FRAME as usize + 1);
    let cases = [
        (
            "an unknown frame on stream 0",
            frame(0xfa, 0, 0, &oversized),
        ),
        ("PING", frame(PING, 0, 0, &oversized)),
        (
            "HEADERS",
            frame(HEADERS, END_HEADERS | END_STREAM, 1, &block),
        ),
    ];
    for (case, sent) in cases {
        let mut h2 = open(&hub, &[]).await;
        h2.send(&sent).await;
        let answer = h2.until_goaway().await;
        assert_eq!(answer, Answer::GoAway(FRAME_SIZE_ERROR), "{case}");
        assert_still_served(&hub, h2, 3).await;
    }
}

/// The connection preface (RFC 9113, 3.4) is the 24 octets and then a
/// SETTINGS frame: a first frame of another kind, or a SETTINGS ACK, is a
/// connection error of type PROTOCOL_ERROR. The preface and the SETTINGS
/// frame written one byte per write are read across reads, and the
/// connection serves a request.
#[tokio::test]
async fn the_preface_is_followed_by_settings_and_may_come_in_pieces() {
    let hub = hub(None).await;
    let (addr, pem) = (tls_addr(&hub), cert_pem(&hub));
    let firsts = [
        ("a PING", ping(1)),
        ("a SETTINGS ACK", frame(SETTINGS, ACK, 0, &[])),
        ("a WINDOW_UPDATE", window_update(0, 1 << 10)),
        (
            "HEADERS",
            frame(HEADERS, END_HEADERS | END_STREAM, 1, &healthz()),
        ),
    ];
    for (case, first) in firsts {
        let (read, mut write) = tokio::io::split(connect(addr, &pem).await);
        assert!(send(&mut write, &[PREFACE, &first].concat()).await);
        let goaway = Frames::new(read).until_goaway().await;
        let code = goaway.as_ref().and_then(Frame::goaway).map(|(_, c)| c);
        assert_eq!(code, Some(PROTOCOL_ERROR), "{case}: {goaway:?}");
    }
    let mut h2 = H2::tls_trickled(addr, &pem, &[]).await;
    assert_served(&mut h2, 1).await;
}

/// Frames on streams not open (RFC 9113, 5.1): on a closed stream a
/// WINDOW_UPDATE or a RST_STREAM is ignored (a PING after them answered,
/// no error, the next stream served); a RST_STREAM (6.4) or a
/// WINDOW_UPDATE on an idle stream (numbered above any opened) is a
/// connection error of type PROTOCOL_ERROR.
#[tokio::test]
async fn frames_on_closed_streams_are_ignored_and_on_idle_ones_errors() {
    let hub = hub(None).await;
    let mut h2 = open(&hub, &[]).await;
    assert_served(&mut h2, 1).await;
    assert!(
        h2.send(&[window_update(1, 1 << 10), reset(1, CANCEL)].concat())
            .await
    );
    assert!(h2.ping_round_trip().await);
    assert_served(&mut h2, 3).await;
    assert!(h2.goaways.is_empty(), "{:?}", h2.goaways);
    assert!(h2.response(1).is_none(), "{:?}", h2.response(1));
    for (case, sent) in [
        ("RST_STREAM", reset(7, CANCEL)),
        ("WINDOW_UPDATE", window_update(7, 1 << 10)),
    ] {
        let mut h2 = open(&hub, &[]).await;
        assert_served(&mut h2, 1).await;
        assert_served(&mut h2, 3).await;
        assert!(h2.send(&sent).await);
        let answer = h2.until_goaway().await;
        assert_eq!(answer, Answer::GoAway(PROTOCOL_ERROR), "{case}");
        assert_still_served(&hub, h2, 5).await;
    }
}

/// Frames after the client's own RST_STREAM (RFC 9113, 5.1, "closed": any
/// frame but PRIORITY received after a RST_STREAM is a stream error of
/// type STREAM_CLOSED), as h2spec's 5.1/8 and 5.1/9 send them: a DATA and
/// a HEADERS frame on a subscription the client reset are STREAM_CLOSED
/// errors, the hub serving on. A PRIORITY frame that depends on its own
/// stream, not yet opened (h2spec's 5.3.1/2), is a connection error: no
/// RST_STREAM may name an idle stream (5.1).
#[tokio::test]
async fn frames_after_the_clients_reset_are_stream_closed() {
    let hub = hub(None).await;
    for (case, late) in [
        ("DATA", frame(DATA, END_STREAM, 1, b"late")),
        (
            "HEADERS",
            frame(HEADERS, END_HEADERS | END_STREAM, 1, &healthz()),
        ),
    ] {
        let sent = [reset(1, CANCEL), late].concat();
        let (h2, answer) = error_on_subscription(&hub, &sent).await;
        assert!(
            matches!(
                answer,
                Answer::Reset(STREAM_CLOSED) | Answer::GoAway(STREAM_CLOSED)
            ),
            "{case}: {answer:?}"
        );
        assert_still_served(&hub, h2, 3).await;
    }
    let mut h2 = open(&hub, &[]).await;
    assert!(h2.send(&frame(PRIORITY, 0, 5, &[0, 0, 0, 5, 15])).await);
    assert_eq!(h2.until_goaway().await, Answer::GoAway(PROTOCOL_ERROR));
}

/// The client's SETTINGS_MAX_FRAME_SIZE (RFC 9113, 4.2 and 6.5.2) bounds
/// the hub's frames: raised to 65,536, the windows wide open, an update
/// of 200 KiB comes in DATA frames none larger than 65,536 (the books of
/// [`H2`] check every frame against it, as they check 16,384 elsewhere),
/// and intact.
#[tokio::test]
async fn a_raised_max_frame_size_bounds_the_hubs_frames() {
    const RAISED: u32 = 64 << 10;
    let hub = hub(None).await;
    let ours = [(MAX_FRAME_SIZE, RAISED), (INITIAL_WINDOW_SIZE, MAX_WINDOW)];
    let mut h2 = open(&hub, &ours).await;
    h2.grant(0, MAX_WINDOW - DEFAULT_WINDOW).await;
    subscribe(&mut h2, 1).await;
    let data = payload(200 << 10);
    publish(&hub, &data).await;
    assert!(h2.until(|h2| has_event(h2, 1, &data)).await);
    assert!(h2.largest_frame() <= RAISED as usize);
}

/// A hub with its TLS port, letting anyone subscribe, with `streams`
/// concurrent streams per connection if given.
async fn hub(streams: Option<u32>) -> TestHub {
    tls_hub_with(|o| {
        o.access.anonymous = Some(true);
        o.limits.max_concurrent_streams = streams;
    })
    .await
}

/// How many requests `hub` answered 431 for their header list
/// (`ssehub_limits_hit_total{limit="headers"}`).
fn header_limit_hits(hub: &TestHub) -> u64 {
    let running = hub.running.as_ref().unwrap();
    running.hub.metrics.limits_hit.get(Limit::Headers).get()
}

/// An HTTP/2 connection to the TLS port of `hub`, with SETTINGS `ours`.
async fn open(hub: &TestHub, ours: &[(u16, u32)]) -> H2 {
    H2::tls(tls_addr(hub), &cert_pem(hub), ours).await
}

/// The header block of `GET /healthz`.
fn healthz() -> Vec<u8> {
    request_block("GET", "/healthz", &[])
}

/// The header block of a subscription to [`TOPIC`].
fn subscribe_block() -> Vec<u8> {
    let path = format!("/.well-known/mercure?{}", topic_query(&[TOPIC]));
    request_block("GET", &path, &[])
}

/// The header block of a publish, without its authorization.
fn publish_head() -> Vec<u8> {
    let content_type = ("content-type", "application/x-www-form-urlencoded");
    request_block("POST", "/.well-known/mercure", &[content_type])
}

/// The header block of a publish by a publisher, with the `extra` fields.
fn publish_block(extra: &[(&str, &str)]) -> Vec<u8> {
    let authorization = ("authorization", bearer());
    let fields = [&[(authorization.0, &authorization.1[..])][..], extra].concat();
    [publish_head(), field_block(&fields)].concat()
}

/// Opens `stream` with a publish that declares a `content-length` of
/// `length`, then sends `frames` (type, flags, payload) on it in one write.
async fn publish_with_length(h2: &mut H2, stream: u32, length: usize, frames: &[(u8, u8, &[u8])]) {
    open_publish(h2, stream, &[("content-length", &length.to_string())]).await;
    let frames: Vec<u8> = frames
        .iter()
        .flat_map(|(kind, flags, payload)| frame(*kind, *flags, stream, payload))
        .collect();
    assert!(h2.send(&frames).await);
}

/// Opens `stream` with a publish by a publisher (with the `extra`
/// fields), its body to follow.
async fn open_publish(h2: &mut H2, stream: u32, extra: &[(&str, &str)]) {
    let block = publish_block(extra);
    assert!(h2.send(&frame(HEADERS, END_HEADERS, stream, &block)).await);
}

/// The `authorization` value of a publisher.
fn bearer() -> String {
    format!("Bearer {}", publisher_token())
}

/// The form of an update of `data` to [`TOPIC`].
fn form(data: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("topic", TOPIC), ("data", data)])
        .finish()
}

/// `len` letters, a through z over and over.
fn payload(len: usize) -> String {
    (b'a'..=b'z').cycle().take(len).map(char::from).collect()
}

/// Publishes `data` to [`TOPIC`] over HTTP/1.1.
async fn publish(hub: &TestHub, data: &str) {
    hub.publish_ok(&[("topic", TOPIC), ("data", data)]).await;
}

/// Subscribes to [`TOPIC`] on `stream`; asserts 200.
async fn subscribe(h2: &mut H2, stream: u32) {
    h2.request(stream, &subscribe_block(), None).await;
    assert_eq!(h2.answer(stream).await, Answer::Status(200), "{stream}");
}

/// Asserts that `GET /healthz` on `stream` is answered `200 ok`.
async fn assert_served(h2: &mut H2, stream: u32) {
    h2.request(stream, &healthz(), None).await;
    assert_eq!(h2.answer(stream).await, Answer::Status(200), "{stream}");
    assert_eq!(h2.body(stream).await, b"ok\n");
}

/// Asserts that `h2`, unless the hub sent it a GOAWAY or closed it,
/// serves `GET /healthz` on `next`, and that a new connection to `hub`
/// does.
async fn assert_still_served(hub: &TestHub, mut h2: H2, next: u32) {
    if h2.goaways.is_empty() && !h2.is_closed() {
        assert_served(&mut h2, next).await;
    }
    assert_served(&mut open(hub, &[]).await, 1).await;
}

/// A new connection with a subscription on stream 1 that is then sent
/// `bytes`: the connection, and how the hub treated them (a RST_STREAM of
/// the subscription, a GOAWAY or the end of the connection).
async fn error_on_subscription(hub: &TestHub, bytes: &[u8]) -> (H2, Answer) {
    let mut h2 = open(hub, &[]).await;
    subscribe(&mut h2, 1).await;
    assert!(h2.send(bytes).await);
    let answer = h2.error(1).await;
    (h2, answer)
}

/// Whether `stream` carried an event whose data is `expected`.
fn has_event(h2: &H2, stream: u32, expected: &str) -> bool {
    let data = h2.response(stream).map_or(&[][..], |r| &r.data[..]);
    Parser::new().feed(data).iter().any(|e| e.data == expected)
}

/// The WINDOW_UPDATEs [`receive_event`] sent, by window.
struct Grants {
    stream: u32,
    connection: u32,
}

/// Reads `stream` until it carries an event whose data is `expected`.
/// Whenever the hub used up a window (the stream's or the connection's),
/// a PING round trip shows that it sent nothing beyond it (the books of
/// [`H2`] fail on any DATA beyond the credit), then `step` more bytes are
/// granted on that window.
async fn receive_event(h2: &mut H2, stream: u32, expected: &str, step: u32) -> Grants {
    let mut grants = Grants {
        stream: 0,
        connection: 0,
    };
    while !has_event(h2, stream, expected) {
        let used_up: Vec<u32> = [stream, 0]
            .into_iter()
            .filter(|w| h2.recv_window(*w) <= 0)
            .collect();
        if used_up.is_empty() {
            assert!(h2.next().await.is_ok(), "the connection stays open");
            continue;
        }
        assert!(h2.ping_round_trip().await, "the connection stays open");
        for window in used_up {
            h2.grant(window, step).await;
            if window == 0 {
                grants.connection += 1;
            } else {
                grants.stream += 1;
            }
        }
    }
    grants
}
