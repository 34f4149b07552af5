//! The inputs each target's corpus starts from, meaningful for its check:
//! the WPT EventSource streams, real selectors and URL patterns, publish
//! bodies as clients send them, tokens signed with the targets' key, claims
//! of both generations, intact and damaged segments. `cargo run --example
//! seeds` writes them into `corpus/`; the replay test checks them too.

use base64::Engine as _;
use serde_json::{json, Value};
use ssehub::auth::{parse_algorithm, Signer};
use ssehub::history::disk::encode_record;
use ssehub::proto::claims::{AccessToken, DETAIL_TYPE};
use ssehub::proto::selector::{MatchType, Matcher};

/// One seed input of a target.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The target's name.
    pub target: &'static str,
    /// A file name for it, unique within the target.
    pub name: String,
    /// The input.
    pub bytes: Vec<u8>,
}

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |target, name: &str, bytes: Vec<u8>| {
        seeds.push(Seed {
            target,
            name: format!("seed-{name}"),
            bytes,
        });
    };
    for (i, stream) in wpt_streams().into_iter().enumerate() {
        let chunk = u8::try_from(i % 64).expect("below 64");
        add("sse", &format!("wpt-{i}"), [vec![chunk], stream].concat());
    }
    let fields: &[&[u8]] = &[
        b"\x01\x88\x13\0\0\0\0\0\0id-1\xfftype\xffline one\r\nline two\rthree\n",
        b"\x00\xff\xff",
        b"\x00 spaced id\xff \xff data with a leading space",
    ];
    for (i, fields) in fields.iter().enumerate() {
        add(
            "sse",
            &format!("encode-{i}"),
            [&[0x83][..], fields].concat(),
        );
    }
    for (i, text) in SELECTORS.iter().enumerate() {
        add("selector", &format!("{i}"), text.as_bytes().to_vec());
    }
    for (i, text) in URL_PATTERNS.iter().enumerate() {
        add("urlpattern", &format!("{i}"), text.as_bytes().to_vec());
    }
    for (i, (content_type, body)) in PUBLISH_BODIES.iter().enumerate() {
        add(
            "publish",
            &format!("{i}"),
            [&[*content_type][..], body.as_bytes()].concat(),
        );
    }
    for (i, (typ, payload)) in claims().iter().enumerate() {
        let payload = payload.to_string().into_bytes();
        add(
            "claims",
            &format!("{i}"),
            [vec![*typ], payload.clone()].concat(),
        );
        // Signed, one character of the token then changed.
        let signed = [
            vec![1, *typ, u8::try_from(i * 7).unwrap_or(0), 0, 3],
            payload,
        ]
        .concat();
        add("token", &format!("signed-{i}"), signed);
    }
    for (i, token) in tokens().into_iter().enumerate() {
        add(
            "token",
            &format!("raw-{i}"),
            [vec![0], token.into_bytes()].concat(),
        );
    }
    for (i, segment) in segments().into_iter().enumerate() {
        add("disk", &format!("{i}"), segment);
    }
    seeds
}

/// The streams of the WPT EventSource vectors.
fn wpt_streams() -> Vec<Vec<u8>> {
    let vectors: Vec<Value> = serde_json::from_str(include_str!(
        "../../tests/data/wpt-eventsource-vectors.json"
    ))
    .expect("the vectors are JSON");
    vectors
        .iter()
        .filter_map(|v| v.get("stream_b64")?.as_str())
        .map(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("the vectors' base64")
        })
        .collect()
}

/// Selectors (first line) and topics (next lines).
const SELECTORS: &[&str] = &[
    "https://example.com/books/{id}\nhttps://example.com/books/1\nhttps://example.com/books/",
    "/search{?q,lang}\n/search\n/search?q=1&lang=en\n/search?lang=en&q=1",
    "{+path}/here\n/foo/bar/here\nhere",
    "X{#var}\nX#value\nX",
    "https://example.com{/list*,path:4}\nhttps://example.com/red/green/fooo",
    "map{?keys*}\nmap?semi=%3B&dot=.",
    "{;x,y,empty}\n;x=1024;y=768;empty",
    "?fixed=yes{&x}\n?fixed=yes&x=1024",
    "www{.dom*}\nwww.example.com",
    "https://example.com/{name:3}\nhttps://example.com/val\nhttps://example.com/%C3%A9t",
    "https://example.com/{x:9999}{y:300}\nhttps://example.com/a",
    "urn:uuid:{id}\nurn:uuid:0190a3f0-0000-7000-8000-000000000000",
    "*\nanything at all",
    "{=reserved}\n{=reserved}",
    "unterminated{brace\nunterminated{brace",
    "stray}brace",
    "{x:0}",
    "{va%41r,a.b,_9}\nA,B",
    "https://example.com/books/1\nhttps://example.com/books/1",
];

/// URL patterns (first line) and topics (next lines).
const URL_PATTERNS: &[&str] = &[
    "https://example.com/books/:id\nhttps://example.com/books/1\nhttps://example.com/books/1?page=2\nhttps://EXAMPLE.com/books/1",
    "/books/:id(\\d+)\n/books/12\n/books/x\nhttps://hub.example/books/12",
    "books/:id?\n/.well-known/books\n/.well-known/books/1\nbooks/1",
    "urn:*\nurn:uuid:0190a3f0-0000-7000-8000-000000000000",
    "urn:{uuid}\\:*\nurn:uuid:1",
    "https://example.com/books/:id#*\nhttps://example.com/books/1#x\nhttps://example.com/books/1?q#x",
    "https://example.com/search?page=:n\nhttps://example.com/search?page=2&size=10",
    "https://{*.}?example.com/*\nhttps://a.example.com/x\nhttps://example.com/",
    "*\nanything",
    "((?:\\w{100}){100})",
    "/a/(?=look)ahead",
    "https://example.com/é/:x\nhttps://example.com/%C3%A9/1\nhttps://example.com/é/1",
    "//host/path\n//host/path",
    "?q=:v\n?q=1",
    "/a/../books/:id\n/books/1\n/a/../books/1\n\\books\\1",
    "https://user:pass@example.com:8080/:p+\nhttps://user:pass@example.com:8080/a/b",
    "",
];

/// Publish bodies: a `Content-Type` index (see the publish target), a body.
const PUBLISH_BODIES: &[(u8, &str)] = &[
    (0, "topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=hello+world&id=1&type=t&retry=100&private=on"),
    (0, "topic=a&topic=b&data=multi%0Aline%0D%0Adata&private"),
    (0, "topic=a&data=%FF"),
    (0, "topic=a&id=%23reserved"),
    (0, "topic=*&data=x"),
    (0, "topic=a&type=mercure"),
    (0, "topic=a&retry=-1"),
    (0, "topic=&id=earliest&&=&x"),
    (2, "topic=a&id=%E2%80%8B"),
    (4, "topic=a&data=%0D"),
    (1, r#"{"topic":"https://example.com/books/1","data":{"x":1},"retry":5,"id":"id-1","type":"t"}"#),
    (1, r#"[{"topic":["a","b"]},{"topic":"c","private":true,"data":"two\r\nlines"}]"#),
    (1, "[]"),
    (1, r#"{"topik":"a"}"#),
    (3, r#"{"topic":"a","retry":"12345678901234567890123"}"#),
    (3, r#"{"topic":"a","data":null,"retry":1.5,"private":false}"#),
    (1, r#"[{"topic":"a","id":"x\nid: injected"}]"#),
    (5, "topic=a"),
];

/// Claim payloads of both generations, each with a `typ` index (see
/// [`super::claims::TYPES`]).
fn claims() -> Vec<(u8, Value)> {
    let far = 4_102_444_800_u64;
    let exact = [Matcher::new(
        MatchType::Exact,
        "https://example.com/books/1",
    )];
    let patterns = [Matcher::new(
        MatchType::UrlPattern,
        "https://example.com/books/:id",
    )];
    let access = AccessToken {
        issuer: super::claims::ISSUER,
        audience: super::HUB_URL,
        subject: "fuzz",
        issued_at: 1,
        expires_at: far,
        publish: &exact,
        subscribe: &patterns,
    }
    .claims();
    vec![
        (
            1,
            json!({"mercure": {"publish": ["*"], "subscribe": ["https://example.com/books/{id}"]}}),
        ),
        (
            0,
            json!({"https://mercure.rocks/": {"subscribe": ["x"], "payload": {"user": 1}}, "sub": "s"}),
        ),
        (1, json!({"mercure": {"publish": "not a list"}})),
        (
            1,
            json!({"mercure": null, "exp": 1.5, "ssehub": {"admin": true}}),
        ),
        (1, json!({"exp": -1})),
        (2, access.clone()),
        (3, access),
        (
            4,
            json!({
                "iss": super::claims::ISSUER, "aud": [super::HUB_URL], "exp": far,
                "authorization_details": [
                    {"type": DETAIL_TYPE, "actions": ["subscribe"],
                     "topics": [{"match": "/books/:id(\\d+)", "match_type": "urlpattern"},
                                {"match": "*"}],
                     "payload": {"x": 1}},
                    {"type": "https://other.example/detail"},
                ],
            }),
        ),
        (
            2,
            json!({
                "iss": super::claims::ISSUER, "aud": super::HUB_URL, "exp": far,
                "authorization_details": [{"type": DETAIL_TYPE, "actions": ["publish"],
                    "topics": [{"match": "((?:\\w{100}){100})", "match_type": "urlpattern"}]}],
            }),
        ),
        (
            2,
            json!({"iss": "someone else", "aud": super::HUB_URL, "exp": far}),
        ),
        (
            2,
            json!({"iss": super::claims::ISSUER, "aud": "elsewhere", "exp": far}),
        ),
        (5, json!({"nbf": far, "mercure": {}})),
        (0, json!([1, 2])),
    ]
}

/// Raw tokens: signed with the targets' key, with another, or malformed.
fn tokens() -> Vec<String> {
    let alg = parse_algorithm("HS256").expect("HS256");
    let ours = Signer::new(super::token::SECRET, alg).expect("a key");
    let theirs = Signer::new("another secret", alg).expect("a key");
    let mut tokens: Vec<String> = claims()
        .into_iter()
        .map(|(typ, payload)| {
            let typ = super::claims::TYPES[usize::from(typ)].unwrap_or("JWT");
            ours.sign_json(typ, &payload)
        })
        .collect();
    tokens.push(theirs.sign_json("JWT", &json!({"mercure": {"publish": ["*"]}})));
    tokens.push("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJtZXJjdXJlIjp7fX0.".to_owned());
    tokens.push("not.a.token".to_owned());
    tokens.push(String::new());
    tokens
}

/// Disk inputs: damage mode with each kind of change, raw mode with valid
/// segments under each retention.
fn segments() -> Vec<Vec<u8>> {
    let mut inputs = vec![
        vec![5, 0],
        vec![5, 0, 0, 40, 0, 1],
        vec![5, 0, 1, 200, 0, 0],
        vec![5, 0, 2, 100, 0, 0],
        vec![5, 0, 3, 60, 0, 4],
        vec![2, 1, 2, 0, 0, 0],
        vec![0, 3],
        vec![1, 4],
        vec![2, 5],
        vec![0, 6],
        vec![0, 7],
        vec![0, 8],
    ];
    let mut valid = Vec::new();
    for (seq, update) in (1..).zip(super::disk::updates()) {
        encode_record(seq, super::disk::WRITTEN_MS, &update, &mut valid);
    }
    for retention in 0..3 {
        inputs.push([vec![0x80, 0, retention], valid.clone()].concat());
    }
    inputs.push([&[0x80, 1, 0][..], b"garbage that is not a record"].concat());
    inputs
}
