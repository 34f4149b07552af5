//! What a browser sees: the page at `/`, the UI's embedded files under
//! `/.well-known/mercure/ui/` (on, off, and `auto` by the listeners), its
//! stats stream for admin tokens only, and the UI's URL in the banner.

use reqwest::StatusCode;
use serde_json::{json, Value};
use ssehub::auth::{parse_algorithm, Signer};

use crate::common::child::free_addr;
use crate::common::child_hub::ChildHub;
use crate::common::keys::jwt_payload;
use crate::common::remote::{client, READY};
use crate::common::{admin_token, next_stats, publisher_token, SseClient, TestHub, SECRET};

const UI: &str = "/.well-known/mercure/ui";

/// `GET base/path` with these headers.
async fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().get(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// The header `name` of `res` as text.
fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_home_page_names_the_hub_its_version_and_url() {
    let hub = TestHub::default().await;
    let res = get(&hub.base, "/", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");
    assert_eq!(
        header(&res, "link"),
        format!("<{}>; rel=\"mercure\"", hub.url())
    );
    let csp = header(&res, "content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    let body = res.text().await.unwrap();
    assert!(body.contains(env!("CARGO_PKG_VERSION")), "{body}");
    assert!(body.contains(&hub.url()), "{body}");
    assert!(body.contains(&format!("href=\"{UI}/\"")), "{body}");

    // Anything else: a 404 that says where to go, never an empty body.
    let res = get(&hub.base, "/nothing/here", &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("/nothing/here") && body.contains("/.well-known/mercure"),
        "{body}"
    );
}

#[tokio::test]
async fn a_body_sent_where_none_is_read_is_still_bounded_and_checked() {
    let hub = TestHub::start(|o| o.limits.max_body = Some(1024)).await;
    // Read and dropped before routing: within --max-body the answer is the
    // route's own, beyond it 413, whether declared or streamed.
    let post = |body: reqwest::Body| client().post(format!("{}/", hub.base)).body(body);
    let res = post("x".repeat(100).into()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let res = post("x".repeat(2048).into()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let chunks: Vec<Result<String, std::io::Error>> = vec![Ok("x".repeat(2048))];
    let res = client()
        .post(format!("{}/nothing/here", hub.base))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let res = get(&hub.base, "/", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_pinned_hub_url_is_the_one_shown() {
    let pinned = "https://hub.example/.well-known/mercure";
    let hub = TestHub::start(|o| o.protocol.hub_url = Some(pinned.into())).await;
    let res = get(&hub.base, "/", &[]).await;
    assert_eq!(header(&res, "link"), format!("<{pinned}>; rel=\"mercure\""));
    assert!(res.text().await.unwrap().contains(pinned));
}

#[tokio::test]
async fn the_ui_files_are_served_with_their_types_a_strict_policy_and_etags() {
    let hub = TestHub::default().await;
    let res = get(&hub.base, &format!("{UI}/"), &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");
    let csp = header(&res, "content-security-policy");
    assert!(
        csp.contains("script-src 'self';") && csp.contains("connect-src 'self';"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    assert_eq!(header(&res, "cache-control"), "no-cache");
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("<script src=\"app.js\" defer></script>"));

    for (file, kind) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
    ] {
        let res = get(&hub.base, &format!("{UI}/{file}"), &[]).await;
        assert_eq!(res.status(), StatusCode::OK, "{file}");
        assert_eq!(header(&res, "content-type"), kind);
        let etag = header(&res, "etag");
        let again = get(
            &hub.base,
            &format!("{UI}/{file}"),
            &[("if-none-match", &etag)],
        )
        .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{file}");
    }
    assert_eq!(
        get(&hub.base, &format!("{UI}/secret.txt"), &[])
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let no_slash = client()
        .get(format!("{}{UI}", hub.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        no_slash.url().path(),
        format!("{UI}/"),
        "redirected to the page"
    );
}

#[tokio::test]
async fn the_stats_refuse_a_missing_or_non_admin_token() {
    let hub = TestHub::default().await;
    let stats = format!("{UI}/stats");
    let res = get(&hub.base, &stats, &[]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&res, "www-authenticate").starts_with("Bearer"));
    let body = res.text().await.unwrap();
    assert!(
        body.contains("admin token") && body.contains("ssehub token --admin"),
        "{body}"
    );

    let publisher = format!("Bearer {}", publisher_token());
    let res = get(&hub.base, &stats, &[("authorization", &publisher)]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("not an admin token"));

    let forged = Signer::new(
        "another-secret-another-secret-0000",
        parse_algorithm("HS256").unwrap(),
    )
    .unwrap()
    .sign_expiring(json!({"ssehub": {"admin": true}}), None);
    let res = get(
        &hub.base,
        &stats,
        &[("authorization", &format!("Bearer {forged}"))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Only the Authorization header carries it: not the query, not a cookie.
    let admin = admin_token();
    let res = get(&hub.base, &format!("{stats}?authorization={admin}"), &[]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let cookie = format!("mercureAuthorization={admin}");
    let res = get(&hub.base, &stats, &[("cookie", &cookie)]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_stats_stream_json_every_second_to_an_admin() {
    let hub = TestHub::default().await;
    let res = get(
        &hub.base,
        &format!("{UI}/stats"),
        &[("authorization", &format!("Bearer {}", admin_token()))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "content-type"), "text/event-stream");
    let mut stream = SseClient::new(res).waiting(READY);
    let first = next_stats(&mut stream).await;
    assert_eq!(first["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(first["updates_total"], 0);
    assert!(first["connections"]["h1"].as_i64().unwrap() >= 1, "{first}");
    assert_eq!(first["redis"], Value::Null);

    for i in 0..3 {
        hub.publish_ok(&[("topic", "https://example.com/t"), ("data", &i.to_string())])
            .await;
    }
    // Bounded: the counter moves within a few events.
    let mut seen = first;
    for _ in 0..10 {
        if seen["updates_total"] == 3 && seen["history"]["events"] == 3 {
            break;
        }
        seen = next_stats(&mut stream).await;
    }
    assert_eq!(seen["updates_total"], 3, "{seen}");
    assert_eq!(seen["history"]["events"], 3, "{seen}");
    for key in [
        "publishes_per_s",
        "deliveries_per_s",
        "publish_p50_ms",
        "delivery_p99_ms",
        "slow_subscribers_dropped",
        "limits_hit_total",
        "subscriptions",
    ] {
        assert!(seen.get(key).is_some(), "{key} in {seen}");
    }
}

#[tokio::test]
async fn a_1_0_admin_access_token_is_accepted() {
    let hub = TestHub::start(|o| o.protocol.jwt_issuer = Some("https://app.example".into())).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = Signer::new(SECRET, parse_algorithm("HS256").unwrap())
        .unwrap()
        .sign_json(
            "at+jwt",
            &json!({"iss": "https://app.example", "aud": hub.url(), "sub": "admin", "exp": now + 600,
                    "authorization_details": [], "ssehub": {"admin": true}}),
        );
    let res = get(
        &hub.base,
        &format!("{UI}/stats"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn ui_off_serves_no_ui_and_the_home_page_says_so() {
    let hub = TestHub::start(|o| o.server.ui = Some("off".into())).await;
    for path in [
        format!("{UI}/"),
        format!("{UI}/app.js"),
        format!("{UI}/stats"),
    ] {
        assert_eq!(
            get(&hub.base, &path, &[]).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let home = get(&hub.base, "/", &[]).await;
    assert_eq!(home.status(), StatusCode::OK);
    assert!(home.text().await.unwrap().contains("--ui on"));
}

#[tokio::test]
async fn ui_auto_is_off_on_a_listener_that_is_not_loopback() {
    let hub = TestHub::start(|o| o.server.listen = Some("0.0.0.0:0".into())).await;
    let port = hub.running.as_ref().unwrap().addr.port();
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(
        get(&base, &format!("{UI}/"), &[]).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&base, "/", &[]).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn serve_prints_the_ui_url_with_an_admin_token_only_for_a_generated_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = ChildHub::start(
        dir.path(),
        &["--tls-listen", "none", "--metrics-listen", "none"],
        &[],
    )
    .await;
    let banner = hub.wait_stdout("#token=", READY);
    let line = banner
        .lines()
        .find(|l| l.contains("#token="))
        .unwrap()
        .trim();
    let (url, token) = line.split_once("#token=").unwrap();
    assert_eq!(url, format!("http://{}{UI}/", hub.addr));
    let claims = jwt_payload(token);
    assert_eq!(claims["ssehub"]["admin"], true, "{claims}");
    assert!(claims["exp"].as_u64().is_some(), "{claims}");
    let res = get(
        &format!("http://{}", hub.addr),
        &format!("{UI}/stats"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    drop(res);
    hub.stop(READY);

    // With a configured key, the URL only, without a token.
    let addr = free_addr();
    let cmd = crate::common::child::command(
        dir.path(),
        &[
            "serve",
            "--listen",
            &addr.to_string(),
            "--tls-listen",
            "none",
            "--metrics-listen",
            "none",
            "--publisher-jwt-key",
            SECRET,
        ],
    );
    let mut keyed = ChildHub::serve(cmd, addr).await;
    let banner = keyed.wait_stdout("browser UI", READY);
    assert!(
        banner.contains("ssehub token --admin") && !banner.contains("#token="),
        "{banner}"
    );
    keyed.stop(READY);
}
