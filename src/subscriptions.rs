//! The subscriptions API's events: a private update per topic at each
//! subscribe and unsubscribe, on `/.well-known/mercure/subscriptions/{topic}/{subscriber}`.

use std::sync::{Arc, Weak};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use crate::fanout::Subscriber;
use crate::hub::Hub;
use crate::proto::update::{generate_id, Update};

/// Path of the subscriptions API and prefix of its topics.
pub const SUBSCRIPTIONS_PATH: &str = "/.well-known/mercure/subscriptions";

/// Everything but RFC 3986 unreserved characters is encoded, so a topic (a
/// URL itself) fits in one path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The id (and topic) of the subscription of `subscriber` to `topic`.
pub fn subscription_id(topic: &str, subscriber: &str) -> String {
    format!(
        "{SUBSCRIPTIONS_PATH}/{}/{}",
        utf8_percent_encode(topic, SEGMENT),
        utf8_percent_encode(subscriber, SEGMENT)
    )
}

/// The JSON-LD document describing one subscription.
pub fn document(sub: &Subscriber, topic: &str, active: bool) -> Value {
    json!({
        "@context": "https://mercure.rocks/",
        "id": subscription_id(topic, &sub.id),
        "type": "Subscription",
        "topic": topic,
        "subscriber": sub.id,
        "active": active,
        "payload": sub.payload.clone().unwrap_or(Value::Null),
    })
}

/// Publishes subscription events through the log, like any update.
pub struct SubscriptionEvents {
    hub: Weak<Hub>,
}

impl SubscriptionEvents {
    /// Events for the hub behind `hub`.
    pub fn new(hub: Weak<Hub>) -> SubscriptionEvents {
        SubscriptionEvents { hub }
    }

    /// Announces that `sub` became active or inactive, in the background.
    pub fn announce(&self, sub: &Arc<Subscriber>, active: bool) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let updates: Vec<Update> = sub
            .topics
            .iter()
            .map(|topic| {
                let doc = document(sub, topic, active);
                Update {
                    id: generate_id(),
                    topics: vec![subscription_id(topic, &sub.id)],
                    data: doc.to_string(),
                    private: true,
                    event_type: None,
                    retry: None,
                }
            })
            .collect();
        tokio::spawn(async move {
            if let Err(e) = hub.publish(updates).await {
                tracing::warn!("could not publish a subscription event: {e}");
            }
        });
    }
}
