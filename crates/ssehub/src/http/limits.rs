//! The limits on requests, checked by the handlers: the publish rate per
//! sender, streams per token subject and topics per subscription. Each
//! refusal is counted in the hub's metrics.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use http_body::{Frame, SizeHint};

use super::client::ClientAddr;
use super::error::ApiError;
use crate::hub::Hub;
use crate::limits::{seconds_up, Held, Sender, RETRY_AFTER_HELD};
use crate::metrics::Limit;
use crate::proto::claims::Claims;

/// Takes one publish request from the sender's rate: its token's subject,
/// else its address.
pub(super) fn check_publish_rate(
    hub: &Hub,
    claims: &Claims,
    extensions: &http::Extensions,
) -> Result<(), ApiError> {
    let (Some(limiter), Some(rate)) = (&hub.limits.publish, hub.config.limits.publish_rate) else {
        return Ok(());
    };
    let (sender, who) = match (&claims.subject, ClientAddr::of(extensions)) {
        (Some(subject), _) => (Sender::Subject(Arc::from(subject.as_str())), "subject"),
        (None, Some(ip)) => (Sender::Client(ip.into()), "address"),
        // Not received by the server (a request built in a test).
        (None, None) => return Ok(()),
    };
    limiter.check(sender, Instant::now()).map_err(|limited| {
        hub.metrics.limits_hit.get(Limit::PublishRate).inc();
        ApiError::TooManyRequests {
            message: format!(
                "publishing too fast: one token {who} may make {} publish requests per second, {} at once (--max-publish-rate, --publish-burst)",
                rate.per_second, rate.burst
            ),
            retry_after: seconds_up(limited.retry_after),
        }
    })
}

/// One of the streams the token's subject may hold, if they are counted
/// and it has one; held until the stream's body is dropped.
pub(super) fn hold_subscription(
    hub: &Hub,
    claims: &Claims,
) -> Result<Option<Held<Arc<str>>>, ApiError> {
    let (Some(max), Some(subject)) = (
        hub.config.limits.max_subscriptions_per_subject,
        &claims.subject,
    ) else {
        return Ok(None);
    };
    match hub
        .limits
        .subscriptions
        .acquire(Arc::from(subject.as_str()), max)
    {
        Some(held) => Ok(Some(held)),
        None => {
            hub.metrics
                .limits_hit
                .get(Limit::SubscriptionsPerSubject)
                .inc();
            Err(ApiError::TooManyRequests {
                message: format!(
                    "this token's subject already holds {max} open streams (--max-subscriptions-per-subject): close one first"
                ),
                retry_after: RETRY_AFTER_HELD,
            })
        }
    }
}

/// Refuses a subscription with more than `--max-topics` matchers.
pub(super) fn check_topics(hub: &Hub, matchers: usize) -> Result<(), ApiError> {
    let max = hub.config.limits.max_topics;
    if matchers > max {
        hub.metrics
            .limits_hit
            .get(Limit::TopicsPerSubscription)
            .inc();
        return Err(ApiError::BadRequest(format!(
            "too many topics: at most {max} topic matchers per subscription (--max-topics)"
        )));
    }
    Ok(())
}

/// The response body of a stream, holding its place until it is dropped.
pub(super) fn holding<B>(body: B, held: Option<Held<Arc<str>>>) -> Body
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    match held {
        Some(held) => Body::new(Holding { body, _held: held }),
        None => Body::new(body),
    }
}

/// A body and a place held for as long as it lives.
struct Holding<B> {
    body: B,
    _held: Held<Arc<str>>,
}

impl<B: http_body::Body + Unpin> http_body::Body for Holding<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
