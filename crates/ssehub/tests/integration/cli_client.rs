//! `ssehub publish`, `ssehub subscribe` and `ssehub completions` as a user
//! runs them: the binary as child processes against a real hub (itself a
//! child process) on loopback, over HTTP and HTTPS.

use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::common::child::{command as ssehub, free_addr, Proc};
use crate::common::child_hub::ChildHub;
use crate::common::remote::{client as http, READY};
use crate::common::{token, SECRET};

/// The topic the tests publish to.
const TOPIC: &str = "https://example.com/books/1";

/// A hub with the test secret, in `dir`.
async fn hub(dir: &Path) -> ChildHub {
    ChildHub::start(dir, &["--publisher-jwt-key", SECRET], &[]).await
}

/// A token that may publish and receive everything.
fn everything() -> String {
    token(&["*"], &["*"], None)
}

/// `ssehub ARGS…` in `dir` with `--token` set to [`everything`] through
/// `SSEHUB_TOKEN`.
fn client(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = ssehub(dir, args);
    cmd.env("SSEHUB_TOKEN", everything());
    cmd
}

/// Waits for `proc` to end by itself: its status and outputs.
fn finish(mut proc: Proc) -> (ExitStatus, String, String) {
    let status = proc.wait_exit(READY).unwrap_or_else(|| {
        panic!(
            "still running after {READY:?}\nstdout:\n{}\nstderr:\n{}",
            proc.stdout(),
            proc.stderr()
        )
    });
    (status, proc.stdout(), proc.stderr())
}

/// Runs `cmd`, which must succeed; its stdout.
fn ok(cmd: Command) -> String {
    let (status, out, err) = finish(Proc::spawn(cmd));
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    out
}

/// Runs `cmd`, which must fail with exit status 1; its stderr.
fn fails(cmd: Command) -> String {
    let (status, out, err) = finish(Proc::spawn(cmd));
    assert_eq!(status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.starts_with("ssehub: "), "{err}");
    err
}

/// A `subscribe ARGS…` child, once it is subscribed.
fn subscriber(cmd: Command) -> Proc {
    let proc = Proc::spawn(cmd);
    proc.wait_stderr("ssehub: connected to", READY);
    proc
}

/// The events a `--format json` subscriber printed: (id, type, data).
fn json_events(out: &str) -> Vec<(String, String, String)> {
    out.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let field = |name: &str| v[name].as_str().unwrap().to_string();
            (field("id"), field("type"), field("data"))
        })
        .collect()
}

#[tokio::test]
async fn publish_then_subscribe_pretty() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path()).await;
    // The hub from the environment, given as its origin alone.
    let mut cmd = client(dir.path(), &["subscribe", "--topic", TOPIC, "--count", "1"]);
    cmd.env("SSEHUB_HUB_URL", hub.base());
    let sub = subscriber(cmd);
    let url = hub.url();
    let id = ok(client(
        dir.path(),
        &[
            "publish",
            "--hub",
            &url,
            "--topic",
            TOPIC,
            "--data",
            "hello\nworld",
            "--type",
            "greeting",
            "--id",
            "book-1",
        ],
    ));
    assert_eq!(id, "book-1\n");
    let (status, out, err) = finish(sub);
    assert!(status.success(), "{err}");
    assert_eq!(
        out,
        "id:   book-1\ntype: greeting\ndata: hello\n      world\n\n"
    );
}

#[tokio::test]
async fn publish_then_subscribe_json_from_stdin_and_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path()).await;
    let url = hub.url();
    let sub = subscriber(client(
        dir.path(),
        &[
            "subscribe",
            "--hub",
            &url,
            "--match",
            TOPIC,
            "--format",
            "json",
            "--count",
            "3",
        ],
    ));
    let publish = |extra: &[&str]| {
        client(
            dir.path(),
            &[&["publish", "--hub", &url, "--topic", TOPIC][..], extra].concat(),
        )
    };
    let first = ok(publish(&["--data", "-1", "--json"]));
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["topics"], serde_json::json!([TOPIC]));
    let first = first["id"].as_str().unwrap().to_string();
    let (status, second, err) = finish(Proc::spawn_fed(publish(&[]), "from stdin\n".as_bytes()));
    assert!(status.success(), "{err}");
    let file = dir.path().join("update.json");
    std::fs::write(&file, r#"{"stock": 3}"#).unwrap();
    let third = ok(publish(&["--data-file", file.to_str().unwrap()]));
    let (status, out, err) = finish(sub);
    assert!(status.success(), "{err}");
    let message = |id: &str, data: &str| (id.trim().to_string(), "message".into(), data.into());
    assert_eq!(
        json_events(&out),
        [
            message(&first, "-1"),
            message(&second, "from stdin\n"),
            message(&third, r#"{"stock": 3}"#),
        ]
    );
}

#[tokio::test]
async fn bytes_are_refused_as_text_and_published_with_base64() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path()).await;
    let url = hub.url();
    let sub = subscriber(client(
        dir.path(),
        &[
            "subscribe",
            "--hub",
            &url,
            "--topic",
            TOPIC,
            "--format",
            "json",
            "--count",
            "1",
        ],
    ));
    // Every byte value, so the data is not UTF-8.
    let bytes: Vec<u8> = (0..=255u8).rev().chain(0..=255u8).collect();
    let file = dir.path().join("update.bin");
    std::fs::write(&file, &bytes).unwrap();
    let file = file.to_str().unwrap();
    let publish = |extra: &[&str]| {
        client(
            dir.path(),
            &[
                &[
                    "publish",
                    "--hub",
                    &url,
                    "--topic",
                    TOPIC,
                    "--data-file",
                    file,
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    let err = fails(publish(&[]));
    assert!(
        err.contains("not UTF-8") && err.contains("--base64"),
        "{err}"
    );
    let id = ok(publish(&["--base64"]));
    let (status, out, err) = finish(sub);
    assert!(status.success(), "{err}");
    let events = json_events(&out);
    assert_eq!(events.len(), 1, "{out}");
    assert_eq!(events[0].0, id.trim());
    let encoded = events[0]
        .2
        .strip_prefix("data:application/octet-stream;base64,")
        .unwrap_or_else(|| panic!("no binary marker: {}", events[0].2));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(decoded, bytes);
}

#[tokio::test]
async fn a_subscriber_resumes_across_a_hub_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = hub(dir.path()).await;
    let (addr, url) = (hub.addr, hub.url());
    let mut sub = subscriber(client(
        dir.path(),
        &[
            "subscribe",
            "--hub",
            &url,
            "--topic",
            TOPIC,
            "--format",
            "json",
        ],
    ));
    let publish = |data: &str, extra: &[&str]| {
        let args = ["publish", "--hub", &url, "--topic", TOPIC, "--data", data];
        let id = ok(client(dir.path(), &[&args[..], extra].concat()));
        id.trim().to_string()
    };
    let one = publish("one", &[]);
    sub.wait_stdout("\"one\"", READY);
    assert!(hub.stop(READY).success());
    sub.wait_stderr("reconnecting in", READY);
    // Held still, the subscriber cannot come back before "two" is
    // published: it must get it from the history, after "one".
    sub.signal("-STOP");
    let listen = addr.to_string();
    let again = ssehub(
        dir.path(),
        &["serve", "--listen", &listen, "--publisher-jwt-key", SECRET],
    );
    let _hub = ChildHub::serve(again, addr).await;
    let two = publish("two", &[]);
    sub.signal("-CONT");
    sub.wait_stdout("\"two\"", READY);
    let three = publish("three", &[]);
    sub.wait_stdout("\"three\"", READY);
    sub.signal("-INT");
    let (status, out, err) = finish(sub);
    assert!(status.success(), "{err}");
    assert!(err.contains(&format!("with Last-Event-ID {one}")), "{err}");
    let ids: Vec<String> = json_events(&out).into_iter().map(|(id, ..)| id).collect();
    assert_eq!(ids, [one, two, three], "each once, in order");
}

#[tokio::test]
async fn a_subscriber_starts_at_a_time_or_at_its_last_updates() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path()).await;
    let url = hub.url();
    let publish = |data: &str| {
        let args = ["publish", "--hub", &url, "--topic", TOPIC, "--data", data];
        ok(client(dir.path(), &args)).trim().to_string()
    };
    let now_ms = || {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        since_epoch.as_millis().to_string()
    };
    let _one = publish("one");
    // "one" was appended before this millisecond, "two" after it.
    std::thread::sleep(Duration::from_millis(5));
    let between = now_ms();
    std::thread::sleep(Duration::from_millis(5));
    let two = publish("two");
    let three = publish("three");
    // `ssehub subscribe` to TOPIC, starting as `start` says.
    let subscribe = |start: &[&str], rest: &[&str]| {
        let args = [
            &["subscribe", "--hub", &url, "--topic", TOPIC][..],
            start,
            rest,
        ]
        .concat();
        client(dir.path(), &args)
    };
    let events = |start: &[&str], count: &str| {
        let out = ok(subscribe(start, &["--format", "json", "--count", count]));
        json_events(&out)
            .into_iter()
            .map(|(id, _, data)| (id, data))
            .collect::<Vec<_>>()
    };
    let two_three = [
        (two.clone(), "two".to_string()),
        (three.clone(), "three".into()),
    ];
    assert_eq!(events(&["--since", &between], "2"), two_three);
    assert_eq!(events(&["--rewind", "2"], "2"), two_three);
    assert_eq!(events(&["--rewind", "1"], "1"), [(three, "three".into())]);

    // Refused before anything is sent: one start at a time.
    let (status, _, err) = finish(Proc::spawn(subscribe(
        &["--since", "0", "--rewind", "1"],
        &[],
    )));
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
    // A time the hub cannot read: its 400 says what to give.
    let err = fails(subscribe(&["--since", "yesterday"], &[]));
    assert!(err.contains("RFC 3339"), "{err}");
}

#[tokio::test]
async fn a_subscriber_waits_the_time_the_hub_asks_before_reconnecting() {
    let dir = tempfile::tempdir().unwrap();
    // Streams end after about a second, with no `retry:` of the hub's own.
    let args = ["--publisher-jwt-key", SECRET, "--max-stream-duration", "1s"];
    let hub = ChildHub::start(dir.path(), &args, &[]).await;
    let url = hub.url();
    let sub = subscriber(client(
        dir.path(),
        &["subscribe", "--hub", &url, "--topic", TOPIC],
    ));
    ok(client(
        dir.path(),
        &[
            "publish", "--hub", &url, "--topic", TOPIC, "--data", "x", "--retry", "250",
        ],
    ));
    let err = sub.wait_stderr("reconnecting in", READY);
    let wait = err
        .split("reconnecting in ")
        .nth(1)
        .and_then(|rest| rest.split(" with").next())
        .unwrap();
    let wait = humantime::parse_duration(wait).unwrap();
    assert!(
        (Duration::from_millis(250)..=Duration::from_millis(375)).contains(&wait),
        "the hub's retry, plus at most half: {err}"
    );
    // Then it connects again.
    let deadline = Instant::now() + READY;
    while sub.stderr().matches("connected to").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "no reconnection:\n{}",
            sub.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn refusals_and_an_unreachable_hub_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path()).await;
    let url = hub.url();
    let mut bad = ssehub(
        dir.path(),
        &["publish", "--hub", &url, "--topic", TOPIC, "--data", "x"],
    );
    bad.env("SSEHUB_TOKEN", "not-a-jwt");
    let err = fails(bad);
    assert!(err.contains("401"), "{err}");
    assert!(err.contains("ssehub token --publish"), "{err}");
    // A subscriber refused does not retry.
    let err = fails(ssehub(
        dir.path(),
        &[
            "subscribe",
            "--hub",
            &url,
            "--topic",
            TOPIC,
            "--token",
            "not-a-jwt",
        ],
    ));
    assert!(err.contains("ssehub token --subscribe"), "{err}");
    let nowhere = format!("http://{}", free_addr());
    let err = fails(client(
        dir.path(),
        &[
            "publish", "--hub", &nowhere, "--topic", TOPIC, "--data", "x",
        ],
    ));
    assert!(err.contains("cannot reach the hub"), "{err}");
    assert!(err.contains("check --hub"), "{err}");
}

/// The HTTPS port, certificate file and SPKI hash a hub's banner shows.
fn tls_of(hub: &ChildHub) -> (String, String, String) {
    let out = hub.stdout();
    let after = |prefix: &str| {
        let start = out
            .find(prefix)
            .unwrap_or_else(|| panic!("{prefix:?} in\n{out}"))
            + prefix.len();
        out[start..].split_whitespace().next().unwrap().to_string()
    };
    (
        after("listening on https://"),
        after("\ncertificate "),
        after("SPKI SHA-256 (base64) "),
    )
}

#[tokio::test]
async fn https_with_the_hubs_certificate_or_its_pinned_key() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path()).await;
    let (addr, cert, spki) = tls_of(&hub);
    let url = format!("https://{addr}/.well-known/mercure");
    let sub = subscriber(client(
        dir.path(),
        &[
            "subscribe",
            "--hub",
            &url,
            "--ca-cert",
            &cert,
            "--topic",
            TOPIC,
            "--count",
            "2",
            "--format",
            "json",
        ],
    ));
    // Over TLS, the stream is an HTTP/2 one.
    let out = hub.stdout();
    let metrics = out
        .split("metrics on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the metrics URL in\n{out}"));
    let scraped = http().get(metrics).send().await.unwrap();
    let scraped = scraped.text().await.unwrap();
    assert!(
        scraped.contains("ssehub_subscriptions{protocol=\"h2\"} 1\n"),
        "{scraped}"
    );
    let pinned = format!("sha256/{spki}");
    for pin in [&pinned, &spki] {
        ok(client(
            dir.path(),
            &[
                "publish",
                "--hub",
                &url,
                "--pin-spki",
                pin,
                "--topic",
                TOPIC,
                "--data",
                pin,
            ],
        ));
    }
    let (status, out, err) = finish(sub);
    assert!(status.success(), "{err}");
    let data: Vec<String> = json_events(&out).into_iter().map(|(.., d)| d).collect();
    assert_eq!(data, [pinned, spki]);
    // Another key's hash is refused, and so is a hub no root vouches for.
    let other = format!("sha256/{}", "A".repeat(43) + "=");
    let err = fails(client(
        dir.path(),
        &[
            "publish",
            "--hub",
            &url,
            "--pin-spki",
            &other,
            "--topic",
            TOPIC,
            "--data",
            "x",
        ],
    ));
    assert!(err.contains("not the pinned"), "{err}");
    assert!(err.contains("check --pin-spki"), "{err}");
    let err = fails(client(
        dir.path(),
        &["publish", "--hub", &url, "--topic", TOPIC, "--data", "x"],
    ));
    assert!(err.contains("--ca-cert"), "{err}");
}

#[tokio::test]
async fn a_subscriber_exits_0_on_sigint_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path()).await;
    let url = hub.url();
    for signal in ["-INT", "-TERM"] {
        let mut sub = subscriber(client(
            dir.path(),
            &["subscribe", "--hub", &url, "--topic", TOPIC],
        ));
        sub.signal(signal);
        let status = sub.wait_exit(READY).expect("exits after the signal");
        assert!(status.success(), "{signal}: {status}\n{}", sub.stderr());
    }
}

#[test]
fn completions_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(ssehub(dir.path(), &["completions", shell]));
        assert!(script.contains("subscribe"), "{shell}: {script}");
    }
    for command in ["serve", "token", "publish", "subscribe", "completions"] {
        let help = ok(ssehub(dir.path(), &[command, "--help"]));
        let examples = help.split_once("\nExamples:\n").map(|(_, e)| e);
        assert!(
            examples.is_some_and(|e| e.contains(&format!("  ssehub {command} "))),
            "{command}: {help}"
        );
    }
}
