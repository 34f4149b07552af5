//! The subscriptions API's events: a private update per subscription at
//! each subscribe and unsubscribe. A 0.x subscription (`topic=`) is
//! described in 0.x's JSON-LD shape on
//! `/.well-known/mercure/subscriptions/{topic}/{subscriber}`; a 1.0 one
//! (`match=`, `match_urlpattern=`) in 1.0's plain JSON on
//! `/.well-known/mercure/subscriptions/{match_type}/{match}/{subscriber}`,
//! sent with the reserved event type `mercure`.

use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use crate::fanout::{Fanout, Subscriber, Subscription};
use crate::history::{Directory, Log, LogError};
use crate::proto::update::{Update, HUB_EVENT_TYPE};

/// Path of the subscriptions API and prefix of its topics.
pub const SUBSCRIPTIONS_PATH: &str = "/.well-known/mercure/subscriptions";

/// Everything but RFC 3986 unreserved characters is encoded, so a topic (a
/// URL itself) fits in one path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The `type` of a 1.0 subscription document.
const V1_DOCUMENT: &str = "subscription";

/// `path` under the subscriptions API: each segment percent-encoded once,
/// whole (RFC 6570 simple expansion).
pub fn subscription_path(segments: &[&str]) -> String {
    segments
        .iter()
        .fold(SUBSCRIPTIONS_PATH.to_string(), |path, s| {
            format!("{path}/{}", utf8_percent_encode(s, SEGMENT))
        })
}

/// The document describing one subscription of `sub`, in its generation's
/// shape.
pub fn document(sub: &Subscriber, subscription: &Subscription, active: bool) -> Value {
    let text = &subscription.matcher.text;
    let subscriber = sub.id.to_string();
    let Some(match_type) = subscription.matcher.kind.name() else {
        return json!({
            "@context": "https://mercure.rocks/",
            "id": subscription_path(&[text, &subscriber]),
            "type": "Subscription",
            "topic": text,
            "subscriber": subscriber,
            "active": active,
            "payload": subscription.payload.clone().unwrap_or(Value::Null),
        });
    };
    let mut doc = json!({
        "id": subscription_path(&[match_type, text, &subscriber]),
        "type": V1_DOCUMENT,
        "match_type": match_type,
        "match": text,
        "subscriber": subscriber,
        "active": active,
    });
    if let Some(payload) = &subscription.payload {
        doc["payload"] = payload.clone();
    }
    doc
}

/// Whether `doc` is in 1.0's shape.
pub fn is_v1(doc: &Value) -> bool {
    doc["type"] == V1_DOCUMENT
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
            .subscriptions
            .iter()
            .map(|subscription| document(sub, subscription, active))
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
            .flat_map(|s| s.subscriptions.iter().map(|x| document(s, x, true)))
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
            event_type: is_v1(&doc).then(|| HUB_EVENT_TYPE.to_string()),
            retry: None,
            received: None,
        })
        .collect();
    let log = log.clone();
    tokio::spawn(async move {
        if let Err(e) = log.append(updates).await {
            tracing::warn!("could not publish a subscription event: {e}");
        }
    });
}
