//! `UI_PATH/stats`: the hub's live figures as a `text/event-stream`, one
//! JSON event per second, for admin tokens only: a token in the
//! `Authorization` header (never a cookie, so no other page can read them
//! with a visitor's credentials), verified with the publisher key, in
//! either generation, carrying [`ADMIN_CLAIM`] `{"admin": true}`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{header, StatusCode};
use serde_json::{json, Map, Value};

use super::super::error::ApiError;
use super::super::identity::hub_url;
use super::super::token::{authenticate_header, Role};
use crate::history::Node;
use crate::hub::Hub;
use crate::metrics::Reading;
use crate::proto::claims::ADMIN_CLAIM;

/// Time between two events.
const PERIOD: Duration = Duration::from_secs(1);
/// Longest wait for the store's figures; past it they are `null`.
const STORE_TIMEOUT: Duration = Duration::from_millis(500);

/// `GET UI_PATH/stats`.
pub(super) async fn stream(
    State(hub): State<Arc<Hub>>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    let base = hub_url(&hub, &parts)?;
    let how = "the UI's live data needs an admin token, a JWT signed with the publisher key \
               carrying \"ssehub\": {\"admin\": true} (`ssehub token --admin`), in the \
               Authorization header";
    let claims = authenticate_header(&hub, &parts.headers, &base, Role::Publisher)
        .await?
        .ok_or_else(|| ApiError::MissingToken(format!("no token: {how}")))?;
    if !claims.admin {
        return Err(ApiError::InsufficientScope(format!(
            "not an admin token (no \"{ADMIN_CLAIM}\": {{\"admin\": true}}): {how}"
        )));
    }
    let first = hub.metrics.reading();
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let events = futures_util::stream::unfold(
        (hub, first, ticker),
        |(hub, previous, mut ticker)| async move {
            ticker.tick().await;
            if hub.is_draining() {
                return None;
            }
            let now = hub.metrics.reading();
            let frame = frame(&hub, &now, &previous).await;
            let event = Bytes::from(format!("event: stats\ndata: {frame}\n\n"));
            Some((Ok::<_, std::convert::Infallible>(event), (hub, now, ticker)))
        },
    );
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(events))
        .expect("a valid response"))
}

/// One event: the figures `now`, and rates and latencies since `previous`.
async fn frame(hub: &Hub, now: &Reading, previous: &Reading) -> Value {
    let ((holding, redis), nodes) =
        tokio::join!(hub.store_figures(STORE_TIMEOUT), hub.nodes(STORE_TIMEOUT));
    let by_label = |pairs: &[(&'static str, i64)]| -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::from(*v)))
            .collect()
    };
    let limits: Map<String, Value> = now
        .limits_hit
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::from(*v)))
        .collect();
    let mut frame = json!({
        "time": crate::clock::unix_ms(),
        "version": env!("CARGO_PKG_VERSION"),
        "connections": by_label(&now.connections),
        "subscriptions": by_label(&now.subscriptions),
        "updates_total": now.updates,
        "deliveries_total": now.deliveries,
        "history": { "events": holding.events, "bytes": holding.bytes },
        "slow_subscribers_dropped": now.slow_subscribers,
        "limits_hit_total": now.limits_hit.iter().map(|(_, n)| n).sum::<u64>(),
        "limits_hit": limits,
        "auth_failures": now.auth_failures,
        "redis": redis.map(|link| json!({
            "up": link.up,
            "lag_ms": crate::clock::millis(link.lag),
            "nodes": nodes.as_deref().map(nodes_json),
        })),
    });
    if let (Value::Object(frame), Ok(Value::Object(interval))) =
        (&mut frame, serde_json::to_value(now.since(previous)))
    {
        frame.extend(interval);
    }
    frame
}

/// The cluster's live nodes as the page shows them.
fn nodes_json(nodes: &[Node]) -> Value {
    nodes
        .iter()
        .map(|node| {
            json!({
                "id": node.id,
                "this": node.this,
                "renewed_ms_ago": crate::clock::millis(node.renewed),
                "expires_in_ms": crate::clock::millis(node.expires_in),
            })
        })
        .collect()
}
