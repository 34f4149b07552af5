//! The hub: the log, the fan-out fed by the log's tail, and the keys.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::acme::Acme;
use crate::auth::Verifier;
use crate::config::Config;
use crate::fanout::Fanout;
use crate::history::{Announcements, Holding, Log, LogError, Node, Nodes, Store, Tail, Tailed};
use crate::limits::Limits;
use crate::metrics::{DeliverySampler, Metrics, RedisLink, Stage};
use crate::proto::event::Event;
use crate::proto::selector::SelectorCache;
use crate::proto::update::Update;
use crate::subscriptions::{self, SubscriptionEvents};

/// Compiled selectors kept; each is compiled once and shared.
const SELECTOR_CACHE_SIZE: usize = 10_000;

/// Shared state of a running hub.
pub struct Hub {
    /// The resolved configuration.
    pub config: Config,
    /// The update log.
    pub log: Arc<dyn Log>,
    /// Live subscribers.
    pub fanout: Arc<Fanout>,
    /// Compiled selector cache.
    pub selectors: SelectorCache,
    /// Verifies publisher tokens.
    pub publisher: Verifier,
    /// Verifies subscriber tokens.
    pub subscriber: Verifier,
    /// Publishes subscription events when the subscriptions API is on.
    pub subscription_events: Option<SubscriptionEvents>,
    /// What the hub counts (shared with its dispatch task).
    pub metrics: Arc<Metrics>,
    /// Set when shutdown begins ([`Hub::drain`]).
    draining: AtomicBool,
    /// Publish rates and streams per subject, counted against the limits.
    pub limits: Limits,
    /// The certificate obtained from an ACME CA, when configured: its
    /// challenge responses and status.
    pub acme: Option<Arc<Acme>>,
    /// The cluster's live nodes, for a store shared by several nodes; this
    /// node is announced among them while the hub is held.
    nodes: Option<Arc<dyn Nodes>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Hub {
    /// Starts a hub on `store` verifying tokens with `publisher` and
    /// `subscriber` (and whose certificate `acme` obtains, if given): its tail feeds the fan-out, and one shared ticker
    /// writes heartbeats to every idle stream.
    pub fn start(
        config: Config,
        publisher: Verifier,
        subscriber: Verifier,
        store: Store,
        acme: Option<Arc<Acme>>,
    ) -> Arc<Hub> {
        let Store {
            log,
            tail,
            nodes,
            cluster,
        } = store;
        let fanout = Arc::new(Fanout::new(config.limits.queue_size));
        let metrics = Arc::new(Metrics::default());
        let mut tasks = vec![
            tokio::spawn(dispatch(tail, fanout.clone(), metrics.clone())),
            tokio::spawn(expire(fanout.clone())),
        ];
        if !config.stream.heartbeat.is_zero() {
            tasks.push(tokio::spawn(heartbeat(
                fanout.clone(),
                config.stream.heartbeat,
            )));
        }
        let subscription_events = config.stream.subscriptions.then(|| {
            let directory = cluster.map(|cluster| {
                // Ends when the directory is dropped with the hub.
                drop(tokio::spawn(announce(log.clone(), cluster.announcements)));
                cluster.directory
            });
            SubscriptionEvents::new(log.clone(), fanout.clone(), directory)
        });
        Arc::new(Hub {
            subscription_events,
            limits: Limits::new(config.limits.publish_rate),
            config,
            log,
            fanout,
            selectors: SelectorCache::new(SELECTOR_CACHE_SIZE),
            publisher,
            subscriber,
            metrics,
            draining: AtomicBool::new(false),
            acme,
            nodes,
            tasks,
        })
    }

    /// Appends updates to the log; fan-out follows from the tail.
    pub async fn publish(&self, updates: Vec<Update>) -> Result<Vec<Arc<Event>>, LogError> {
        let events = self.log.append(updates).await?;
        self.metrics.updates_total.add(events.len() as u64);
        Ok(events)
    }

    /// Marks the hub as shutting down: `/readyz` answers 503 from now on,
    /// so load balancers send new clients elsewhere; everything else is
    /// served as before.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// What the store holds now (unknown past `timeout`: Redis's `XLEN`
    /// may be slow) and, for a Redis store, the state of the link.
    pub async fn store_figures(&self, timeout: Duration) -> (Holding, Option<RedisLink>) {
        let holding = tokio::time::timeout(timeout, self.log.holding())
            .await
            .unwrap_or_default();
        let redis =
            matches!(self.config.history.store, crate::config::Store::Redis(_)).then(|| {
                RedisLink {
                    up: self.log.readiness().is_ok(),
                    lag: self.log.lag().unwrap_or_default(),
                }
            });
        (holding, redis)
    }

    /// The cluster's live nodes, ordered by id: `None` for a store of this
    /// node alone, or when the store did not say within `timeout`.
    pub async fn nodes(&self, timeout: Duration) -> Option<Vec<Node>> {
        let nodes = self.nodes.as_ref()?;
        match tokio::time::timeout(timeout, nodes.live()).await {
            Ok(Ok(nodes)) => Some(nodes),
            Ok(Err(e)) => {
                tracing::debug!("could not list the cluster's nodes: {e}");
                None
            }
            Err(_) => None,
        }
    }

    /// Drains, ends every stream and stops background tasks.
    pub fn shutdown(&self) {
        self.drain();
        self.fanout.close();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Feeds the tail to the fan-out, in order. When the log reports events lost
/// to this node, every subscriber is disconnected once the events before the
/// loss are queued: each reconnects with its `Last-Event-ID`, and resumes
/// from the history (all of it, when that id is no longer retained).
/// The events the sampler picks are stamped with the time of their dispatch
/// (the start of their deliveries' latency), and a publish request's last
/// event ends its publish latency.
async fn dispatch(mut tail: Tail, fanout: Arc<Fanout>, metrics: Arc<Metrics>) {
    let mut batch = Vec::with_capacity(64);
    let mut sampler = DeliverySampler::default();
    while tail.recv_many(&mut batch, 64).await > 0 {
        for item in batch.drain(..) {
            match item {
                Tailed::Event(event) => {
                    let now = Instant::now();
                    if sampler.pick(now) {
                        let _ = event.dispatched.set(now);
                    }
                    let slow = fanout.dispatch(&event);
                    if slow > 0 {
                        metrics.slow_subscribers.add(slow as u64);
                    }
                    if let Some(received) = event.update.received {
                        let stage = metrics.publish_duration.get(Stage::Dispatched);
                        stage.observe(received.elapsed());
                    }
                }
                Tailed::Lost => {
                    let n = fanout.disconnect_all();
                    tracing::warn!("disconnected {n} subscribers so they resume from the history");
                }
            }
        }
    }
}

/// Publishes the subscription events the cluster's directory asks for (the
/// subscriptions of nodes that died, or of this node after its lease lapsed).
async fn announce(log: Arc<dyn Log>, mut announcements: Announcements) {
    while let Some(documents) = announcements.recv().await {
        subscriptions::publish(&log, documents);
    }
}

/// Removes subscribers at their deadlines (see [`Fanout::expire_due`]),
/// sleeping until the earliest or until an earlier one is registered.
async fn expire(fanout: Arc<Fanout>) {
    loop {
        match fanout.expire_due(tokio::time::Instant::now()) {
            Some(at) => tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = fanout.earliest_changed() => {}
            },
            None => fanout.earliest_changed().await,
        }
    }
}

async fn heartbeat(fanout: Arc<Fanout>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        fanout.heartbeat();
    }
}
