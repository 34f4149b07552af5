//! The cluster's nodes and its directory of subscriptions, kept in Redis so
//! that any node lists the live nodes and, with the subscriptions API, every
//! node's subscribers.
//!
//! Each node announces itself in the sorted set `{NAME}:nodes`, scored by
//! the time its announcement lapses (every time on Redis's clock, so the
//! nodes' clocks need not agree), and, with the subscriptions API, writes
//! the documents of its own subscriptions to a hash
//! `{NAME}:subscriptions:NODE` (field: subscription id). A node that stops
//! refreshing drops out of listings once that time passes; the first live
//! node to notice claims it (`claim.lua`: one step, so one node does, and
//! only while the lease is still lapsed), publishes "inactive" events for
//! its subscriptions and deletes its hash. A node without the subscriptions
//! API claims only nodes that left no documents (it could not announce
//! them; the hash expires a while after the lease). A node that was only
//! paused finds itself gone from the set when it renews, rewrites its hash
//! and announces its subscriptions active again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use parking_lot::Mutex;
use redis::Script;
use serde_json::Value;
use tokio::sync::{mpsc, Notify};

use super::link::{now_ms, Link};
use crate::history::log::{Announcements, Directory, LogError, Node, Nodes};

/// How long a node stays listed without refreshing.
const LEASE: Duration = Duration::from_secs(15);
/// How often a node refreshes its lease and looks for dead nodes.
const REFRESH: Duration = Duration::from_secs(5);
/// A dead node's hash outlives its lease by this much, so that another node
/// can still read it to announce its subscriptions as inactive.
const GRACE: Duration = Duration::from_secs(60);

/// Lists of subscription documents waiting to be announced. Each comes from
/// a dead node claimed or a lapsed lease (at most a few per refresh); when
/// they are this many behind, the writer waits for the hub to publish them.
const ANNOUNCE_QUEUE: usize = 16;

/// This node's subscriptions, as the background writer must reflect them in
/// Redis. Both maps hold at most one entry per subscription id, so they are
/// bounded by this node's subscriptions (and those that just ended).
#[derive(Default)]
struct Entries {
    /// Every active subscription of this node, by id: the hash is rewritten
    /// from it, whole, after Redis comes back.
    all: HashMap<String, Value>,
    /// What changed since the writer last wrote: a document to set, or
    /// `None` to remove.
    changed: HashMap<String, Option<Value>>,
    /// The directory was dropped: the writer stops.
    closed: bool,
}

/// What the directory and its writer share.
#[derive(Default)]
struct Shared {
    entries: Mutex<Entries>,
    /// Wakes the writer after a change.
    wake: Notify,
}

/// This node's view of the cluster.
pub(super) struct Presence {
    link: Arc<Link>,
    /// This node's id in the set of nodes.
    node: String,
    nodes: String,
    prefix: String,
    shared: Arc<Shared>,
}

/// Everything the background writer needs.
struct Writer {
    link: Arc<Link>,
    node: String,
    nodes: String,
    prefix: String,
    shared: Arc<Shared>,
    /// Where documents to announce go; `None` without the subscriptions
    /// API: this node then keeps no documents and announces nothing.
    announce: Option<mpsc::Sender<Vec<Value>>>,
    claim: Script,
}

impl Presence {
    /// Starts this node's presence in the cluster of stream `name`. With
    /// `subscriptions`, it is also the directory of subscriptions, and the
    /// documents of subscriptions to announce (those of a node that died,
    /// marked inactive, or this node's own after its lease lapsed) come out
    /// of the returned receiver, which the caller must drain. The
    /// background writer ends when this is dropped.
    pub(super) fn start(
        link: Arc<Link>,
        name: &str,
        subscriptions: bool,
    ) -> (Presence, Option<Announcements>) {
        let nodes = format!("{{{name}}}:nodes");
        let prefix = format!("{{{name}}}:subscriptions:");
        let shared = Arc::new(Shared::default());
        let (announce, announcements) = if subscriptions {
            let (tx, rx) = mpsc::channel(ANNOUNCE_QUEUE);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let node = hex::encode(rand::random::<[u8; 8]>());
        let writer = Writer {
            link: link.clone(),
            node: node.clone(),
            nodes: nodes.clone(),
            prefix: prefix.clone(),
            shared: shared.clone(),
            announce,
            claim: Script::new(include_str!("claim.lua")),
        };
        tokio::spawn(writer.run());
        let presence = Presence {
            link,
            node,
            nodes,
            prefix,
            shared,
        };
        (presence, announcements)
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.shared.entries.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

impl Directory for Presence {
    fn record(&self, documents: Vec<Value>) {
        {
            let mut entries = self.shared.entries.lock();
            for doc in documents {
                let id = id_of(&doc).to_string();
                if doc["active"].as_bool().unwrap_or(false) {
                    entries.all.insert(id.clone(), doc.clone());
                    entries.changed.insert(id, Some(doc));
                } else {
                    entries.all.remove(&id);
                    entries.changed.insert(id, None);
                }
            }
        }
        self.shared.wake.notify_one();
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Value>, LogError>> {
        async move {
            let docs: Vec<Vec<String>> = self
                .link
                .run("list subscriptions", |mut conn| async move {
                    let now = now_ms(&mut conn).await?;
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

impl Nodes for Presence {
    fn live(&self) -> BoxFuture<'_, Result<Vec<Node>, LogError>> {
        async move {
            let (now, leases): (u64, Vec<(String, u64)>) = self
                .link
                .run("list the nodes", |mut conn| async move {
                    let now = now_ms(&mut conn).await?;
                    let leases = redis::cmd("ZRANGEBYSCORE")
                        .arg(&self.nodes)
                        .arg(now)
                        .arg("+inf")
                        .arg("WITHSCORES")
                        .query_async(&mut conn)
                        .await?;
                    Ok((now, leases))
                })
                .await?;
            let mut nodes: Vec<Node> = leases
                .into_iter()
                .map(|(id, lease_end)| {
                    let expires_in = Duration::from_millis(lease_end.saturating_sub(now));
                    Node {
                        this: id == self.node,
                        id,
                        renewed: LEASE.saturating_sub(expires_in),
                        expires_in,
                    }
                })
                .collect();
            nodes.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(nodes)
        }
        .boxed()
    }
}

impl Writer {
    fn key(&self) -> String {
        format!("{}{}", self.prefix, self.node)
    }

    /// Applies changes as they come and refreshes the lease; after any
    /// failure, rewrites the whole hash from this node's entries once Redis
    /// answers. Ends when the directory is dropped.
    async fn run(self) {
        let mut tick = tokio::time::interval(REFRESH);
        let mut stale = true;
        let mut registered = false;
        loop {
            tokio::select! {
                () = self.shared.wake.notified() => {
                    let (changed, closed) = {
                        let mut entries = self.shared.entries.lock();
                        (std::mem::take(&mut entries.changed), entries.closed)
                    };
                    if closed {
                        return;
                    }
                    // A stale hash is rewritten whole: the changes are in it.
                    if !stale {
                        stale = self.apply(changed).await.is_err();
                    }
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
            if let Some(announce) = &self.announce {
                tracing::warn!(
                    "this node's directory lease had lapsed; its subscriptions are listed and announced again"
                );
                let documents = self.shared.entries.lock().all.values().cloned().collect();
                let _ = announce.send(documents).await;
            } else {
                tracing::warn!("this node's lease in the cluster had lapsed; it is listed again");
            }
        }
        *registered = true;
        Ok(())
    }

    async fn apply(&self, changed: HashMap<String, Option<Value>>) -> Result<(), LogError> {
        let key = self.key();
        let mut pipe = redis::pipe();
        for (id, doc) in changed {
            match doc {
                Some(doc) => pipe.hset(&key, id, doc.to_string()).ignore(),
                None => pipe.hdel(&key, id).ignore(),
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
        let documents = self.announce.is_some();
        let docs: Vec<(String, String)> = if rewrite && documents {
            self.shared
                .entries
                .lock()
                .all
                .iter()
                .map(|(id, doc)| (id.clone(), doc.to_string()))
                .collect()
        } else {
            Vec::new()
        };
        let (added, dead): (i64, Vec<String>) = self
            .link
            .run("renew this node's lease", |mut conn| async move {
                let now = now_ms(&mut conn).await?;
                let mut pipe = redis::pipe();
                pipe.atomic();
                if rewrite && documents {
                    pipe.del(&key).ignore();
                    for chunk in docs.chunks(1000) {
                        pipe.hset_multiple(&key, chunk).ignore();
                    }
                }
                if documents {
                    pipe.pexpire(&key, lease_ms(LEASE + GRACE)).ignore();
                }
                pipe.zadd(&self.nodes, &self.node, now + crate::clock::millis(LEASE));
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
    /// subscriptions are announced inactive and its hash deleted. Without
    /// the subscriptions API, only a node that left no documents is taken
    /// (a node that can announce them does, or they expire first), so
    /// nothing is ever announced and the set does not keep dead nodes.
    async fn claim(&self, node: String) -> Result<(), LogError> {
        let key = format!("{}{node}", self.prefix);
        let documents = u8::from(self.announce.is_some());
        let docs: Vec<String> = self
            .link
            .run("claim a dead node", |mut conn| async move {
                self.claim
                    .key(&self.nodes)
                    .key(&key)
                    .arg(&node)
                    .arg(documents)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        let docs: Vec<Value> = docs
            .iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect();
        let Some(announce) = self.announce.as_ref().filter(|_| !docs.is_empty()) else {
            return Ok(());
        };
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
        let _ = announce.send(inactive).await;
        Ok(())
    }
}

/// The subscription id a document describes.
fn id_of(doc: &Value) -> &str {
    doc["id"].as_str().unwrap_or_default()
}

/// `d` in milliseconds, as `PEXPIRE` takes them.
fn lease_ms(d: Duration) -> i64 {
    i64::try_from(crate::clock::millis(d)).unwrap_or(i64::MAX)
}
