//! The `ssehub` binary as a user runs it: `serve` and `token` as child
//! processes on free loopback ports, configured by flags, environment
//! variables and TOML files, and stopped by SIGTERM.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::common::child::{command as ssehub, free_addr, Proc};
use crate::common::child_hub::ChildHub;
use crate::common::keys::{jwt_header, jwt_payload, key_pair, p256_jwk, RSA_2048};
use crate::common::redis::Redis;
use crate::common::remote::{client, hub_url, open_stream, post_form, READY};
use crate::common::{now_secs, sign};
use reqwest::StatusCode;

/// A secret used where the test configures the key itself.
const KEY: &str = "cli-test-secret-cli-test-secret-0123";

/// The topic the start-up banner's commands use.
const DEMO_TOPIC: &str = "https://example.com/demo";

/// `serve --listen ADDR ARGS…` in `dir` on a free port; returns once
/// `GET /readyz` answers 200.
async fn serve_args(dir: &Path, args: &[&str]) -> (ChildHub, SocketAddr) {
    serve_env(dir, args, &[]).await
}

/// [`serve_args`] with environment variables set.
async fn serve_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (ChildHub, SocketAddr) {
    let hub = ChildHub::start(dir, args, env).await;
    let addr = hub.addr;
    (hub, addr)
}

/// Runs a command that should end by itself, bounded by [`READY`].
fn run(cmd: Command) -> (ExitStatus, String, String) {
    let mut proc = Proc::spawn(cmd);
    let status = proc
        .wait_exit(READY)
        .unwrap_or_else(|| panic!("still running after {READY:?}:\n{}", proc.stderr()));
    (status, proc.stdout(), proc.stderr())
}

/// Runs a `serve` that must refuse to start; returns its stderr.
fn refused(cmd: Command) -> String {
    let (status, stdout, stderr) = run(cmd);
    assert!(
        !status.success(),
        "start-up should fail\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        !stdout.contains("listening"),
        "no banner on failure: {stdout}"
    );
    assert!(
        stderr.starts_with("ssehub: ") || stderr.contains("\nssehub: "),
        "{stderr}"
    );
    stderr
}

/// `serve --listen ADDR ARGS…` on a free port, which must refuse to start;
/// returns its stderr.
fn refused_args(dir: &Path, args: &[&str]) -> String {
    let listen = free_addr().to_string();
    refused(ssehub(
        dir,
        &[&["serve", "--listen", &listen][..], args].concat(),
    ))
}

/// Runs `token ARGS…`, which must succeed; returns its stdout.
fn token_cmd(dir: &Path, args: &[&str]) -> String {
    let (status, out, err) = run(ssehub(dir, &[&["token"][..], args].concat()));
    assert!(status.success(), "{err}");
    out
}

/// A publisher token for every topic signed with [`KEY`].
fn key_publisher() -> String {
    sign(KEY, &["*"], &[], None)
}

/// Whether `GET /healthz` on `addr` fails: nothing answers there.
async fn nothing_on(addr: SocketAddr) -> bool {
    client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .is_err()
}

/// POSTs a form to the hub, with a bearer token if given.
async fn publish(
    addr: SocketAddr,
    token: Option<&str>,
    form: &[(&str, &str)],
) -> (StatusCode, String) {
    post_form(&client(), &hub_url(addr), token, form)
        .await
        .unwrap()
}

/// The status a publish to [`DEMO_TOPIC`] with `token` is answered with.
async fn publish_status(addr: SocketAddr, token: &str) -> StatusCode {
    publish(addr, Some(token), &[("topic", DEMO_TOPIC)]).await.0
}

async fn publish_ok(addr: SocketAddr, token: &str, data: &str) -> String {
    let (status, body) = publish(addr, Some(token), &[("topic", DEMO_TOPIC), ("data", data)]).await;
    assert_eq!(status, StatusCode::OK, "publish refused: {body}");
    body
}

/// The line after `heading` in the banner, trimmed.
fn banner_line<'a>(banner: &'a str, heading: &str) -> &'a str {
    let mut lines = banner.lines();
    lines
        .by_ref()
        .find(|l| l.trim_end() == heading)
        .unwrap_or_else(|| panic!("no {heading:?} in the banner:\n{banner}"));
    lines
        .next()
        .unwrap_or_else(|| panic!("nothing after {heading:?}:\n{banner}"))
        .trim()
}

/// Splits a shell command line of plain words and single-quoted words.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(!quoted, "unbalanced quote in {line:?}");
    if in_word {
        words.push(word);
    }
    words
}

/// What the banner's curl publish line does: header, form fields, URL.
struct CurlPublish {
    authorization: String,
    form: Vec<(String, String)>,
    url: String,
}

fn parse_curl_publish(line: &str) -> CurlPublish {
    let words = shell_words(line);
    assert_eq!(words[0], "curl", "{line}");
    let mut authorization = None;
    let mut form = Vec::new();
    let mut url = None;
    let mut i = 1;
    while i < words.len() {
        match words[i].as_str() {
            "-H" => {
                let (name, value) = words[i + 1].split_once(": ").expect("Name: value");
                assert!(name.eq_ignore_ascii_case("authorization"), "{line}");
                authorization = Some(value.to_string());
                i += 2;
            }
            "-d" => {
                let (k, v) = words[i + 1].split_once('=').expect("key=value");
                form.push((k.to_string(), v.to_string()));
                i += 2;
            }
            w if w.starts_with("http://") => {
                url = Some(w.to_string());
                i += 1;
            }
            w => panic!("unexpected curl argument {w:?} in {line}"),
        }
    }
    CurlPublish {
        authorization: authorization.expect("an Authorization header"),
        form,
        url: url.expect("a URL"),
    }
}

/// The banner's subscribe URL (the quoted argument of `curl -N`).
fn parse_curl_subscribe(line: &str) -> String {
    let words = shell_words(line);
    assert_eq!(&words[..2], ["curl", "-N"], "{line}");
    assert_eq!(words.len(), 3, "{line}");
    words[2].clone()
}

#[tokio::test]
async fn serve_without_key_generates_a_secret_and_prints_working_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, addr) = serve_args(dir.path(), &[]).await;
    // The subscribe line comes last and is the only one with `authorization=`.
    let banner = hub.wait_stdout("authorization=", READY);

    assert!(
        banner.contains(&format!("listening on http://{addr}")),
        "{banner}"
    );
    let secret_path = dir.path().join("ssehub-data").join("jwt-secret");
    assert!(
        banner.contains("no JWT key configured") && banner.contains("jwt-secret"),
        "{banner}"
    );
    let meta = std::fs::metadata(&secret_path).expect("ssehub-data/jwt-secret exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "secret mode");
    let secret = std::fs::read_to_string(&secret_path).unwrap();
    assert!(secret.trim().len() >= 32, "secret {secret:?} too short");

    let token = banner_line(&banner, "publisher token (all topics, no expiry):").to_string();
    let claims = jwt_payload(&token);
    assert_eq!(claims["mercure"]["publish"], serde_json::json!(["*"]));
    assert!(claims.get("exp").is_none(), "no expiry: {claims}");

    let curl = parse_curl_publish(banner_line(&banner, "publish:"));
    assert_eq!(curl.authorization, format!("Bearer {token}"));
    assert_eq!(curl.url, hub_url(addr));
    assert!(curl.form.contains(&("topic".into(), DEMO_TOPIC.into())));

    let subscribe_url = parse_curl_subscribe(banner_line(&banner, "subscribe (Mercure 0.x):"));
    assert!(
        subscribe_url.starts_with(&format!("{}?", hub_url(addr))),
        "{subscribe_url}"
    );
    let query: Vec<(String, String)> =
        form_urlencoded::parse(subscribe_url.split_once('?').unwrap().1.as_bytes())
            .into_owned()
            .collect();
    assert!(
        query.contains(&("topic".into(), DEMO_TOPIC.into())),
        "{subscribe_url}"
    );
    let sub_token = &query
        .iter()
        .find(|(k, _)| k == "authorization")
        .expect("authorization= in the subscribe URL")
        .1;
    assert_eq!(
        jwt_payload(sub_token)["mercure"]["subscribe"],
        serde_json::json!(["*"])
    );

    // The printed subscribe URL receives what the printed curl line publishes.
    let mut stream = open_stream(&subscribe_url, &[], None, None).await;
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&curl.form)
        .finish();
    let res = client()
        .post(&curl.url)
        .header("authorization", &curl.authorization)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let id = res.text().await.unwrap();
    let event = stream.next().await;
    let data = &curl.form.iter().find(|(k, _)| k == "data").unwrap().1;
    assert_eq!(
        (event.data.as_str(), event.last_event_id.as_str()),
        (data.as_str(), id.as_str())
    );

    // The printed token works on its own, and nothing works without one.
    let id = publish_ok(addr, &token, "second").await;
    let event = stream.next().await;
    assert_eq!(
        (event.data.as_str(), event.last_event_id.as_str()),
        ("second", id.as_str())
    );
    let (status, body) = publish(addr, None, &[("topic", DEMO_TOPIC), ("data", "x")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("token"), "401 says why: {body}");
    let forged = sign("not-the-secret", &["*"], &[], None);
    assert_eq!(
        publish_status(addr, &forged).await,
        StatusCode::UNAUTHORIZED
    );

    // A restart in the same directory reuses the secret: the old token still works.
    drop(stream);
    assert!(hub.stop(READY).success());
    let (_hub, addr) = serve_args(dir.path(), &[]).await;
    assert_eq!(std::fs::read_to_string(&secret_path).unwrap(), secret);
    publish_ok(addr, &token, "after restart").await;
}

#[tokio::test]
async fn token_command_signs_what_the_hub_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let (_hub, addr) = serve_args(dir.path(), &["--data-dir", data]).await;
    let token_in_data =
        |args: &[&str]| token_cmd(dir.path(), &[args, &["--data-dir", data]].concat());

    // Same data dir: the token is signed with the generated secret.
    let out = token_in_data(&["--publish", "*"]);
    let token = out.trim();
    assert_eq!(out.lines().count(), 1, "only the token on stdout: {out:?}");
    let claims = jwt_payload(token);
    assert_eq!(claims["mercure"]["publish"], serde_json::json!(["*"]));
    assert!(
        claims.get("exp").is_none(),
        "no expiry by default: {claims}"
    );
    publish_ok(addr, token, "from token command").await;

    // A publish selector limits the topics.
    let out = token_in_data(&["--publish", "https://example.com/other"]);
    assert_eq!(
        publish_status(addr, out.trim()).await,
        StatusCode::FORBIDDEN
    );

    // --exp 1h sets exp one hour out.
    let before = now_secs();
    let out = token_in_data(&["--publish", "*", "--subscribe", "*", "--exp", "1h"]);
    let claims = jwt_payload(out.trim());
    let exp = claims["exp"].as_u64().expect("numeric exp");
    assert!(
        (before + 3600..=now_secs() + 3600).contains(&exp),
        "exp {exp} not one hour after {before}"
    );
    assert_eq!(claims["mercure"]["subscribe"], serde_json::json!(["*"]));
    publish_ok(addr, out.trim(), "with exp").await;

    // A subscribe-only token opens a stream.
    let out = token_in_data(&["--subscribe", DEMO_TOPIC]);
    let url = format!(
        "{}?topic={}&authorization={}",
        hub_url(addr),
        DEMO_TOPIC,
        out.trim()
    );
    let mut stream = open_stream(&url, &[], None, None).await;
    let id = publish_ok(addr, token, "to the subscriber").await;
    assert_eq!(stream.next().await.last_event_id, id);

    // A wrong --exp is refused.
    let (status, _, err) = run(ssehub(
        dir.path(),
        &[
            "token",
            "--publish",
            "*",
            "--exp",
            "soon",
            "--data-dir",
            data,
        ],
    ));
    assert!(!status.success());
    assert!(err.contains("soon"), "{err}");
}

#[tokio::test]
async fn token_command_with_a_configured_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_hub, addr) = serve_args(dir.path(), &["--publisher-jwt-key", KEY]).await;
    let out = token_cmd(dir.path(), &["--publish", "*", "--publisher-jwt-key", KEY]);
    publish_ok(addr, out.trim(), "configured key").await;
    let out = token_cmd(
        dir.path(),
        &["--publish", "*", "--publisher-jwt-key", "another-key"],
    );
    assert_eq!(
        publish_status(addr, out.trim()).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        !dir.path().join("ssehub-data/jwt-secret").exists(),
        "no secret is generated when a key is configured"
    );
}

#[test]
fn token_command_with_an_asymmetric_algorithm_needs_the_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let (status, out, err) = run(ssehub(
        dir.path(),
        &["token", "--publish", "*", "--publisher-jwt-alg", "RS256"],
    ));
    assert!(!status.success(), "{out}");
    assert!(out.is_empty(), "no token on stdout: {out:?}");
    assert!(
        err.contains("RS256") && err.contains("--signing-key"),
        "{err}"
    );
}

/// An RSA key pair made with openssl (installed by scripts/install-deps.sh):
/// `@` and the path of the private key, and of the public key.
fn rsa_key_pair(dir: &Path) -> (String, String) {
    let (private, public) = key_pair(dir, "rsa", &RSA_2048);
    (
        format!("@{}", private.display()),
        format!("@{}", public.display()),
    )
}

#[tokio::test]
async fn rs256_token_signed_with_the_private_key_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = rsa_key_pair(dir.path());
    let rs256 = [
        "--publisher-jwt-alg",
        "RS256",
        "--publisher-jwt-key",
        &public,
    ];
    let (_hub, addr) = serve_args(dir.path(), &rs256).await;
    let out = token_cmd(
        dir.path(),
        &[&["--publish", "*", "--signing-key", &private][..], &rs256].concat(),
    );
    let header = jwt_header(out.trim());
    assert_eq!(header["alg"], "RS256");
    publish_ok(addr, out.trim(), "rs256").await;
    // An HS256 token is not accepted by an RS256 hub.
    assert_eq!(
        publish_status(addr, &key_publisher()).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_token_names_its_key_for_a_hub_verifying_with_a_jwk_set() {
    let dir = tempfile::tempdir().unwrap();
    // Two keys of one algorithm: a token must name the one it was signed with.
    let (_, a) = p256_jwk("a");
    let (b_private, b) = p256_jwk("b");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, serde_json::json!({ "keys": [a, b] }).to_string()).unwrap();
    let b_pem = dir.path().join("b.pem");
    std::fs::write(&b_pem, b_private).unwrap();
    let jwks_url = url::Url::from_file_path(&jwks).unwrap().to_string();
    let (_hub, addr) = serve_args(dir.path(), &["--publisher-jwks-url", &jwks_url]).await;
    let signed_with_b = |kid: &[&str]| {
        let signing = format!("@{}", b_pem.display());
        let args = [
            "--publish",
            "*",
            "--publisher-jwt-alg",
            "ES256",
            "--signing-key",
            &signing,
        ];
        token_cmd(dir.path(), &[&args[..], kid].concat())
            .trim()
            .to_string()
    };
    let named = signed_with_b(&["--kid", "b"]);
    assert_eq!(jwt_header(&named)["kid"], "b");
    publish_ok(addr, &named, "kid b").await;
    let misnamed = signed_with_b(&["--kid", "a"]);
    assert_eq!(
        publish_status(addr, &misnamed).await,
        StatusCode::UNAUTHORIZED
    );
    let unnamed = signed_with_b(&[]);
    assert!(jwt_header(&unnamed).get("kid").is_none(), "{unnamed}");
    assert_eq!(
        publish_status(addr, &unnamed).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn listen_address_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut cmd = ssehub(dir.path(), &["serve", "--publisher-jwt-key", KEY]);
    cmd.env("SSEHUB_LISTEN", addr.to_string());
    let mut hub = ChildHub::serve(cmd, addr).await;
    let banner = hub.wait_stdout("hub URL:", READY);
    assert!(
        banner.contains(&format!("listening on http://{addr}")),
        "{banner}"
    );
    assert!(!banner.contains("publisher token"), "{banner}");
}

#[tokio::test]
async fn toml_file_and_a_flag_overriding_it() {
    let dir = tempfile::tempdir().unwrap();
    let from_file = free_addr();
    let data = dir.path().join("toml-data");
    let config = dir.path().join("ssehub.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{from_file}\"\ndata_dir = {data:?}\npublisher_jwt_key = \"{KEY}\"\nanonymous = true\nheartbeat = \"1s\"\ncors_origins = [\"https://app.example\"]\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    // Everything from the file.
    let hub = ChildHub::serve(
        ssehub(dir.path(), &["serve", "--config", config]),
        from_file,
    )
    .await;
    // anonymous = true: no token needed to subscribe.
    let url = format!("{}?topic={DEMO_TOPIC}", hub_url(from_file));
    let mut stream = open_stream(&url, &[], None, None).await;
    let id = publish_ok(from_file, &key_publisher(), "toml").await;
    assert_eq!(stream.next().await.last_event_id, id);
    // cors_origins from the file.
    let res = client()
        .get(&url)
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    drop(res);
    drop(stream);
    drop(hub);

    // A flag beats the file; the rest of the file still applies.
    let (_hub, from_flag) = serve_args(dir.path(), &["--config", config]).await;
    assert!(
        nothing_on(from_file).await,
        "the file's address is not used"
    );
    publish_ok(from_flag, &key_publisher(), "flag").await;
    let res = client()
        .head(format!("{}?topic={DEMO_TOPIC}", hub_url(from_flag)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "anonymous still from the file"
    );
    assert!(
        !dir.path().join("ssehub-data/jwt-secret").exists(),
        "data_dir from the file"
    );
}

#[tokio::test]
async fn environment_variable_beats_the_toml_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{}\"\npublisher_jwt_key = \"{KEY}\"\n",
            free_addr()
        ),
    )
    .unwrap();
    let addr = free_addr();
    let mut cmd = ssehub(dir.path(), &["serve"]);
    cmd.env("SSEHUB_CONFIG", &config)
        .env("SSEHUB_LISTEN", addr.to_string());
    let _hub = ChildHub::serve(cmd, addr).await;
    publish_ok(addr, &key_publisher(), "env over toml").await;
}

#[tokio::test]
async fn mercure_publisher_jwt_key_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, addr) = serve_env(dir.path(), &[], &[("MERCURE_PUBLISHER_JWT_KEY", KEY)]).await;
    let banner = hub.wait_stdout("hub URL:", READY);
    assert!(!banner.contains("no JWT key configured"), "{banner}");
    publish_ok(addr, &key_publisher(), "mercure key").await;
    assert_eq!(
        publish_status(addr, &sign("some-other-key", &["*"], &[], None)).await,
        StatusCode::UNAUTHORIZED
    );
    // The subscriber key defaults to the same key.
    let url = format!(
        "{}?topic={DEMO_TOPIC}&authorization={}",
        hub_url(addr),
        sign(KEY, &[], &["*"], None)
    );
    let mut stream = open_stream(&url, &[], None, None).await;
    let id = publish_ok(addr, &key_publisher(), "to sub").await;
    assert_eq!(stream.next().await.last_event_id, id);
    assert!(!dir.path().join("ssehub-data/jwt-secret").exists());
}

#[tokio::test]
async fn ssehub_variable_beats_the_mercure_alias() {
    let dir = tempfile::tempdir().unwrap();
    let (_hub, addr) = serve_env(
        dir.path(),
        &[],
        &[
            ("MERCURE_PUBLISHER_JWT_KEY", "mercure-key"),
            ("SSEHUB_PUBLISHER_JWT_KEY", KEY),
        ],
    )
    .await;
    publish_ok(addr, &key_publisher(), "ssehub key").await;
    assert_eq!(
        publish_status(addr, &sign("mercure-key", &["*"], &[], None)).await,
        StatusCode::UNAUTHORIZED
    );
}

/// An RS256 hub whose public key file does not exist.
const MISSING_KEY_FILE: [&str; 4] = [
    "--publisher-jwt-alg",
    "RS256",
    "--publisher-jwt-key",
    "@/nonexistent/key.pem",
];

#[test]
fn unreadable_key_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused_args(dir.path(), &MISSING_KEY_FILE);
    assert!(err.contains("/nonexistent/key.pem"), "{err}");
    assert!(err.contains("cannot read key file"), "{err}");
}

#[test]
fn invalid_pem_key_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("garbage.pem");
    std::fs::write(&key, "not a PEM file\n").unwrap();
    let key = format!("@{}", key.display());
    let err = refused_args(
        dir.path(),
        &["--publisher-jwt-alg", "RS256", "--publisher-jwt-key", &key],
    );
    assert!(err.contains("invalid RS256 key"), "{err}");
}

#[test]
fn bad_listen_address_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(ssehub(dir.path(), &["serve", "--listen", "nope"]));
    assert!(err.contains("invalid listen address \"nope\""), "{err}");
}

#[test]
fn unknown_toml_key_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        format!("listen = \"{}\"\nlisen = \"127.0.0.1:1\"\n", free_addr()),
    )
    .unwrap();
    let err = refused(ssehub(
        dir.path(),
        &["serve", "--config", config.to_str().unwrap()],
    ));
    assert!(err.contains("lisen"), "{err}");
    assert!(err.contains("bad.toml"), "names the file: {err}");
}

#[test]
fn missing_config_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(ssehub(
        dir.path(),
        &["serve", "--config", "/nonexistent/ssehub.toml"],
    ));
    assert!(
        err.contains("cannot read config file /nonexistent/ssehub.toml"),
        "{err}"
    );
}

#[test]
fn unknown_algorithm_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    for (option, alg) in [
        ("--publisher-jwt-alg", "XS999"),
        ("--subscriber-jwt-alg", "none"),
    ] {
        let err = refused_args(dir.path(), &["--publisher-jwt-key", KEY, option, alg]);
        assert!(
            err.contains(&format!("unsupported JWT algorithm \"{alg}\"")),
            "{err}"
        );
    }
}

#[test]
fn port_in_use_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let err = refused(ssehub(
        dir.path(),
        &["serve", "--listen", &listen, "--publisher-jwt-key", KEY],
    ));
    assert!(err.contains(&format!("cannot listen on {listen}")), "{err}");
    assert!(err.to_lowercase().contains("in use"), "says why: {err}");
}

#[test]
fn zero_history_size_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused_args(
        dir.path(),
        &["--publisher-jwt-key", KEY, "--history-size", "0"],
    );
    assert!(err.contains("history-size"), "{err}");
}

#[tokio::test]
async fn sigterm_ends_open_streams_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown_timeout = Duration::from_secs(2);
    let (mut hub, addr) = serve_args(
        dir.path(),
        &[
            "--publisher-jwt-key",
            KEY,
            "--anonymous",
            "--shutdown-timeout",
            "2s",
        ],
    )
    .await;
    let mut stream = open_stream(
        &format!("{}?topic={DEMO_TOPIC}", hub_url(addr)),
        &[],
        None,
        None,
    )
    .await;
    let id = publish_ok(addr, &key_publisher(), "before shutdown").await;
    assert_eq!(stream.next().await.last_event_id, id);

    let sent = Instant::now();
    hub.terminate();
    let margin = Duration::from_secs(3);
    let ended = stream.end_within(shutdown_timeout + margin).await;
    let status = hub.wait_exit(shutdown_timeout + margin);
    let took = sent.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running {:?} after SIGTERM\nstderr:\n{}",
            took,
            hub.stderr()
        )
    });
    assert_eq!(status.code(), Some(0), "stderr:\n{}", hub.stderr());
    ended.unwrap();
    assert!(took < shutdown_timeout + margin, "shutdown took {took:?}");
    assert!(hub.stderr().contains("shutting down"), "{}", hub.stderr());
    assert!(nothing_on(addr).await, "nothing listens after exit");
}

#[tokio::test]
async fn sigterm_with_an_idle_hub_exits_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, _) = serve_args(dir.path(), &["--publisher-jwt-key", KEY]).await;
    let sent = Instant::now();
    hub.terminate();
    let status = hub.wait_exit(READY).expect("exits on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", hub.stderr());
    // Nothing to drain: well under the default 5 s shutdown timeout.
    assert!(
        sent.elapsed() < Duration::from_secs(4),
        "{:?}",
        sent.elapsed()
    );
}

#[tokio::test]
async fn subscribe_only_token_uses_the_subscriber_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        "--publisher-jwt-key",
        KEY,
        "--subscriber-jwt-key",
        "subscriber-secret-subscriber-secret",
    ];
    let (_hub, addr) = serve_args(dir.path(), &keys).await;
    let token = |args: &[&str]| {
        token_cmd(dir.path(), &[args, &keys].concat())
            .trim()
            .to_string()
    };
    let subscriber = token(&["--subscribe", "*"]);
    let publisher = token(&["--publish", "*"]);
    let url = |t: &str| format!("{}?topic={DEMO_TOPIC}&authorization={t}", hub_url(addr));
    let mut stream = open_stream(&url(&subscriber), &[], None, None).await;
    let id = publish_ok(addr, &publisher, "two keys").await;
    assert_eq!(stream.next().await.last_event_id, id);
    // Each key verifies only its own side.
    let res = client().head(url(&publisher)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        publish_status(addr, &subscriber).await,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn file_errors_name_the_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused_args(dir.path(), &MISSING_KEY_FILE);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    let err = refused(ssehub(
        dir.path(),
        &["serve", "--config", "/nonexistent/ssehub.toml"],
    ));
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

#[test]
fn asymmetric_algorithm_without_a_key_says_which_key_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused_args(dir.path(), &["--publisher-jwt-alg", "RS256"]);
    assert!(
        err.contains("--publisher-jwt-key"),
        "names the option: {err}"
    );
    if let Ok(secret) = std::fs::read_to_string(dir.path().join("ssehub-data/jwt-secret")) {
        assert!(!err.contains(secret.trim()), "leaks the secret: {err}");
    }
    assert!(
        !dir.path().join("ssehub-data/jwt-secret").exists(),
        "no HMAC secret is generated for an RS256 hub"
    );
}

/// The value printed after `label` on a line of `out`.
fn printed(out: &str, label: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{out}"));
    let rest = &line[line.find(label).unwrap() + label.len()..];
    rest.split_whitespace().next().unwrap().to_string()
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_keeps_streams() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, addr) =
        serve_args(dir.path(), &["--publisher-jwt-key", KEY, "--anonymous"]).await;
    let banner = hub.wait_stdout("SPKI SHA-256", READY);
    let first = printed(&banner, "SHA-256 fingerprint ");
    let mut stream = open_stream(
        &format!("http://{addr}/.well-known/mercure?topic=https%3A%2F%2Fexample.com%2Fdemo"),
        &[],
        None,
        None,
    )
    .await;

    // A broken file is refused and the current certificate stays.
    let tls_dir = dir.path().join("ssehub-data/tls");
    let good_cert = std::fs::read(tls_dir.join("cert.pem")).unwrap();
    std::fs::write(tls_dir.join("cert.pem"), "not a certificate").unwrap();
    hub.signal("-HUP");
    hub.wait_stderr("certificate not reloaded", READY);
    std::fs::write(tls_dir.join("cert.pem"), good_cert).unwrap();

    // A new pair is picked up.
    std::fs::remove_file(tls_dir.join("cert.pem")).unwrap();
    std::fs::remove_file(tls_dir.join("key.pem")).unwrap();
    ssehub::server::tls::CertFiles::resolve(None, None, &dir.path().join("ssehub-data")).unwrap();
    hub.signal("-HUP");
    let log = hub.wait_stderr("certificate reloaded", READY);
    assert_ne!(printed(&log, "certificate reloaded: SHA-256 "), first);

    let token = key_publisher();
    let id = publish_ok(addr, &token, "after reload").await;
    let event = stream.next().await;
    assert_eq!(
        event.last_event_id, id,
        "the stream opened before the reloads still delivers"
    );
}

#[tokio::test]
async fn redis_store_from_the_environment_starts_before_redis() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start();
    redis.stop();
    let addr = free_addr();
    let mut cmd = ssehub(dir.path(), &["serve", "--publisher-jwt-key", KEY]);
    cmd.env("SSEHUB_LISTEN", addr.to_string())
        .env("SSEHUB_STORE", redis.url())
        .env("SSEHUB_REDIS_STREAM", "from-env");
    let mut hub = ChildHub::spawn(cmd, addr)
        .await
        .unwrap_or_else(|output| panic!("{output}"));
    // Redis is down: the hub serves, says why it is not ready, and refuses
    // publishes with the same reason.
    let (status, body) = hub.readiness().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let unreachable = format!("Redis at {} is unreachable", redis.url());
    assert!(body.contains(&unreachable), "{body}");
    let (status, body) = publish(
        addr,
        Some(&key_publisher()),
        &[("topic", DEMO_TOPIC), ("data", "x")],
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body.contains(&format!("Redis at {}", redis.url())),
        "{body}"
    );
    // Each refusal is answered, but a run of them is logged once.
    for _ in 0..5 {
        let (status, _) = publish(
            addr,
            Some(&key_publisher()),
            &[("topic", DEMO_TOPIC), ("data", "x")],
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    // Redis comes up: the hub follows it and appends to the stream the
    // environment named.
    redis.restart();
    let deadline = Instant::now() + READY;
    while hub.readiness().await.0 != StatusCode::OK {
        assert!(Instant::now() < deadline, "not ready after Redis came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    publish_ok(addr, &key_publisher(), "after redis").await;
    let mut conn = redis.connection().await;
    let len: u64 = redis::cmd("XLEN")
        .arg("{from-env}")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        len, 1,
        "the one acknowledged publish, in stream {{from-env}}"
    );
    let log = hub.stderr();
    let refusals = log.lines().filter(|l| l.contains("http::error")).count();
    assert_eq!(refusals, 1, "six refusals within seconds, one line:\n{log}");
}
