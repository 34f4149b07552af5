//! Probes for process managers and load balancers: `/healthz` says the
//! process serves HTTP, `/readyz` whether it should be sent new clients.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};

use crate::hub::Hub;

/// `GET /healthz`: `200 ok` whenever the process answers HTTP (liveness:
/// restart it only when this fails).
pub(super) async fn alive() -> Response {
    answer(StatusCode::OK, "ok\n".into())
}

/// `GET /readyz`: `200 ok` when the store can take writes and the hub is
/// not shutting down; else `503` with one `not ready: ...` line per
/// failing check, so a load balancer sends clients to another node. A
/// `warning: ...` line follows `ok` when the ACME certificate is missing,
/// expired, or failing to renew: the node still serves (a certificate
/// problem is the same on every node, and HTTP-01 validation comes through
/// the load balancer), but the operator should know.
pub(super) async fn ready(State(hub): State<Arc<Hub>>) -> Response {
    let failing = not_ready(&hub);
    if failing.is_empty() {
        let warning = hub
            .acme
            .as_ref()
            .and_then(|acme| acme.status.warning(SystemTime::now()));
        let body = match warning {
            Some(warning) => format!("ok\nwarning: {warning}\n"),
            None => "ok\n".into(),
        };
        return answer(StatusCode::OK, body);
    }
    let body = failing.iter().map(|why| format!("not ready: {why}\n"));
    answer(StatusCode::SERVICE_UNAVAILABLE, body.collect())
}

/// Why the hub should not be sent new clients, one reason per check.
fn not_ready(hub: &Hub) -> Vec<String> {
    let mut failing = Vec::new();
    if hub.is_draining() {
        failing.push("draining: the hub is shutting down".to_string());
    }
    if let Err(why) = hub.log.readiness() {
        failing.push(why.to_string());
    }
    failing
}

/// A plain-text probe answer that no cache keeps.
fn answer(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
