//! The cluster's directory of subscriptions, kept in Redis so that the
//! subscriptions API of any node lists every node's subscribers.
//!
//! Each node writes the documents of its own subscriptions to a hash
//! `{NAME}:subscriptions:NODE` (field: subscription id) and announces itself
//! in the sorted set `{NAME}:nodes`, scored by the time its announcement
//! lapses (every time on Redis's clock, so the nodes' clocks need not agree).
//! A node that stops refreshing drops out of listings once that time passes;
//! the first live node to notice claims it (`claim.lua`: one step, so one
//! node does, and only while the lease is still lapsed), publishes
//! "inactive" events for its subscriptions and deletes its hash. A node
//! that was only paused finds itself gone from the set when it renews,
//! rewrites its hash and announces its subscriptions active again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use redis::Script;
use serde_json::Value;
use tokio::sync::mpsc;

use super::link::{now_ms, Link};
use crate::history::{Announcements, Directory, LogError};

/// How long a node stays listed without refreshing.
const LEASE: Duration = Duration::from_secs(15);
/// How often a node refreshes its lease and looks for dead nodes.
const REFRESH: Duration = Duration::from_secs(5);
/// A dead node's hash outlives its lease by this much, so that another node
/// can still read it to announce its subscriptions as inactive.
const GRACE: Duration = Duration::from_secs(60);

/// A change to this node's entries: a subscription document, added when
/// its `active` is true, removed when it is false.
type Change = Value;

/// This node's view of the directory.
pub(super) struct Presence {
    link: Arc<Link>,
    nodes: String,
    prefix: String,
    changes: mpsc::UnboundedSender<Change>,
}

/// Everything the background writer needs.
struct Writer {
    link: Arc<Link>,
    node: String,
    nodes: String,
    prefix: String,
    /// This node's subscriptions by id, kept from the changes, so the hash
    /// can be rewritten whole after Redis comes back.
    local: HashMap<String, Value>,
    announce: mpsc::UnboundedSender<Vec<Value>>,
    claim: Script,
}

impl Presence {
    /// Starts the directory of stream `name` for this node; the documents
    /// of subscriptions to announce (those of a node that died, marked
    /// inactive, or this node's own after its lease lapsed) come out of the
    /// returned receiver. The background writer ends when this is dropped.
    pub(super) fn start(link: Arc<Link>, name: &str) -> (Presence, Announcements) {
        let nodes = format!("{{{name}}}:nodes");
        let prefix = format!("{{{name}}}:subscriptions:");
        let (changes, rx) = mpsc::unbounded_channel();
        let (announce, announcements) = mpsc::unbounded_channel();
        let writer = Writer {
            link: link.clone(),
            node: hex::encode(rand::random::<[u8; 8]>()),
            nodes: nodes.clone(),
            prefix: prefix.clone(),
            local: HashMap::new(),
            announce,
            claim: Script::new(include_str!("claim.lua")),
        };
        tokio::spawn(writer.run(rx));
        let presence = Presence {
            link,
            nodes,
            prefix,
            changes,
        };
        (presence, announcements)
    }
}

impl Directory for Presence {
    fn record(&self, documents: Vec<Value>) {
        for document in documents {
            let _ = self.changes.send(document);
        }
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Value>, LogError>> {
        async move {
            let docs: Vec<Vec<String>> = self
                .link
                .run("list subscriptions", |mut conn| async move {
                    let now = now_ms(&mut conn).await? as i64;
                    let nodes: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                        .arg(&self.nodes)
                        .arg(now)
                        .arg("+inf")
                        .query_async(&mut conn)
                        .await?;
                    let mut pipe = redis::pipe();
                    for node in &nodes {
                        pipe.cmd("HVALS").arg(format!("{}{node}", self.prefix));
                    }
                    pipe.query_async(&mut conn).await
                })
                .await?;
            Ok(docs
                .into_iter()
                .flatten()
                .filter_map(|d| serde_json::from_str(&d).ok())
                .collect())
        }
        .boxed()
    }
}

impl Writer {
    fn key(&self) -> String {
        format!("{}{}", self.prefix, self.node)
    }

    /// Applies changes as they come and refreshes the lease; after any
    /// failure, rewrites the whole hash from the fan-out once Redis answers.
    async fn run(mut self, mut changes: mpsc::UnboundedReceiver<Change>) {
        let mut tick = tokio::time::interval(REFRESH);
        let mut batch = Vec::new();
        let mut stale = true;
        let mut registered = false;
        loop {
            tokio::select! {
                n = changes.recv_many(&mut batch, 1024) => {
                    if n == 0 {
                        return;
                    }
                    self.remember(&batch);
                    // A stale hash is rewritten whole: the changes are in it.
                    if !stale {
                        stale = self.apply(&mut batch).await.is_err();
                    }
                    batch.clear();
                    if !stale {
                        continue;
                    }
                }
                _ = tick.tick() => {}
            }
            stale = match self.renew(stale, &mut registered).await {
                Ok(()) => false,
                Err(e) => {
                    tracing::debug!("could not refresh the subscription directory: {e}");
                    true
                }
            };
        }
    }

    /// Renews the lease (rewriting the hash if `rewrite`). A node that finds
    /// itself gone from the set after it `registered` was taken for dead
    /// (paused, or cut from Redis longer than its lease): its hash is
    /// rewritten and its subscriptions announced active again, since another
    /// node announced them inactive.
    async fn renew(&self, rewrite: bool, registered: &mut bool) -> Result<(), LogError> {
        let absent = self.refresh(rewrite).await?;
        if absent && !rewrite {
            self.refresh(true).await?;
        }
        if absent && *registered {
            tracing::warn!(
                "this node's directory lease had lapsed; its subscriptions are listed and announced again"
            );
            let _ = self.announce.send(self.local.values().cloned().collect());
        }
        *registered = true;
        Ok(())
    }

    /// Applies `batch` to this node's own copy of its entries.
    fn remember(&mut self, batch: &[Change]) {
        for doc in batch {
            let id = id_of(doc);
            if doc["active"].as_bool().unwrap_or(false) {
                self.local.insert(id.to_string(), doc.clone());
            } else {
                self.local.remove(id);
            }
        }
    }

    async fn apply(&self, batch: &mut [Change]) -> Result<(), LogError> {
        let key = self.key();
        let mut pipe = redis::pipe();
        for doc in batch.iter() {
            match doc["active"].as_bool().unwrap_or(false) {
                true => pipe.hset(&key, id_of(doc), doc.to_string()).ignore(),
                false => pipe.hdel(&key, id_of(doc)).ignore(),
            };
        }
        pipe.pexpire(&key, lease_ms(LEASE + GRACE)).ignore();
        self.link
            .run("record subscriptions", |mut conn| async move {
                pipe.query_async::<()>(&mut conn).await
            })
            .await
    }

    /// Renews this node's lease (rewriting its hash if `rewrite`) and claims
    /// nodes whose lease lapsed; true if this node was missing from the set.
    async fn refresh(&self, rewrite: bool) -> Result<bool, LogError> {
        let key = self.key();
        let docs: Vec<(String, String)> = if rewrite {
            self.local
                .iter()
                .map(|(id, doc)| (id.clone(), doc.to_string()))
                .collect()
        } else {
            Vec::new()
        };
        let (added, dead): (i64, Vec<String>) = self
            .link
            .run("renew this node's lease", |mut conn| async move {
                let now = now_ms(&mut conn).await? as i64;
                let mut pipe = redis::pipe();
                pipe.atomic();
                if rewrite {
                    pipe.del(&key).ignore();
                    for chunk in docs.chunks(1000) {
                        pipe.hset_multiple(&key, chunk).ignore();
                    }
                }
                pipe.pexpire(&key, lease_ms(LEASE + GRACE)).ignore();
                pipe.zadd(&self.nodes, &self.node, now + lease_ms(LEASE));
                let (added,): (i64,) = pipe.query_async(&mut conn).await?;
                let dead = redis::cmd("ZRANGEBYSCORE")
                    .arg(&self.nodes)
                    .arg("-inf")
                    .arg(format!("({now}"))
                    .query_async(&mut conn)
                    .await?;
                Ok((added, dead))
            })
            .await?;
        for node in dead {
            self.claim(node).await?;
        }
        Ok(added == 1)
    }

    /// Takes over a dead node: if this node wins the removal, its
    /// subscriptions are announced inactive and its hash deleted.
    async fn claim(&self, node: String) -> Result<(), LogError> {
        let key = format!("{}{node}", self.prefix);
        let docs: Vec<String> = self
            .link
            .run("claim a dead node", |mut conn| async move {
                self.claim
                    .key(&self.nodes)
                    .key(&key)
                    .arg(&node)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        let docs: Vec<Value> = docs
            .iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect();
        if !docs.is_empty() {
            tracing::info!(
                "a node left without closing its {} subscriptions; announcing them inactive",
                docs.len()
            );
            let inactive = docs
                .into_iter()
                .map(|mut doc| {
                    doc["active"] = Value::Bool(false);
                    doc
                })
                .collect();
            let _ = self.announce.send(inactive);
        }
        Ok(())
    }
}

/// The subscription id a document describes.
fn id_of(doc: &Value) -> &str {
    doc["id"].as_str().unwrap_or_default()
}

fn lease_ms(d: Duration) -> i64 {
    d.as_millis() as i64
}
