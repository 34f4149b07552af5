//! The browser UI's line of the start-up banner.

use std::time::Duration;

use super::token::Grant;
use crate::auth::{parse_algorithm, Signer};
use crate::proto::selector::Matcher;
use crate::proto::UI_PATH;
use crate::server::RunningHub;

/// Lifetime of the admin token printed in the UI's URL.
const ADMIN_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Prints the UI's URL when it is served. When the hub generated its own
/// secret (the default start), the URL carries a fresh admin token, which
/// also publishes and subscribes to every topic, in its fragment: a
/// fragment is never sent to a server, and the page moves it to its
/// session storage at once.
pub(super) fn print_url(running: &RunningHub) {
    if !running.hub.config.server.ui {
        return;
    }
    let url = format!("http://{}{UI_PATH}/", running.addr);
    let Some(secret) = running.keys.generated_secret() else {
        println!("browser UI: {url} (it asks for an admin token: ssehub token --admin)");
        return;
    };
    let signer = Signer::new(
        secret,
        parse_algorithm("HS256").expect("HS256 is supported"),
    )
    .expect("a generated secret is a valid HMAC key");
    let everything = || vec![Matcher::selector("*")];
    let token = Grant {
        publish: everything(),
        subscribe: everything(),
        v1: None,
        ttl: Some(ADMIN_TOKEN_TTL),
        admin: true,
    }
    .sign(&signer);
    println!("browser UI (dashboard and debugger; admin token valid 24h):\n  {url}#token={token}");
}
