//! The subscriptions API's events: a private update per topic at each
//! subscribe and unsubscribe, on `/.well-known/mercure/subscriptions/{topic}/{subscriber}`.

use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use crate::fanout::{Fanout, Subscriber};
use crate::history::{Directory, Log, LogError};
use crate::proto::update::Update;

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

/// Publishes subscription events through the log, like any update, and
/// answers the subscriptions API.
pub struct SubscriptionEvents {
    log: Arc<dyn Log>,
    fanout: Arc<Fanout>,
    directory: Option<Arc<dyn Directory>>,
}

impl SubscriptionEvents {
    /// Events appended to `log` for the subscribers of `fanout`; `directory`
    /// is the cluster's, if the store is shared by several nodes.
    pub fn new(
        log: Arc<dyn Log>,
        fanout: Arc<Fanout>,
        directory: Option<Arc<dyn Directory>>,
    ) -> SubscriptionEvents {
        SubscriptionEvents {
            log,
            fanout,
            directory,
        }
    }

    /// Announces that `sub` became active or inactive, in the background.
    pub fn announce(&self, sub: &Subscriber, active: bool) {
        let documents: Vec<Value> = sub
            .topics
            .iter()
            .map(|topic| document(sub, topic, active))
            .collect();
        if let Some(directory) = &self.directory {
            directory.record(documents.clone());
        }
        publish(&self.log, documents);
    }

    /// Every active subscription's document: the cluster's, or this node's.
    pub async fn documents(&self) -> Result<Vec<Value>, LogError> {
        if let Some(directory) = &self.directory {
            return directory.list().await;
        }
        Ok(self
            .fanout
            .subscribers()
            .iter()
            .flat_map(|s| s.topics.iter().map(|t| document(s, t, true)))
            .collect())
    }
}

/// Publishes one subscription event per document, in the background (also
/// for the subscriptions of a node that died, marked inactive).
pub fn publish(log: &Arc<dyn Log>, documents: Vec<Value>) {
    let updates: Vec<Update> = documents
        .into_iter()
        .map(|doc| Update {
            id: log.new_id(),
            topics: vec![doc["id"].as_str().unwrap_or_default().to_string()],
            data: doc.to_string(),
            private: true,
            event_type: None,
            retry: None,
        })
        .collect();
    let log = log.clone();
    tokio::spawn(async move {
        if let Err(e) = log.append(updates).await {
            tracing::warn!("could not publish a subscription event: {e}");
        }
    });
}
