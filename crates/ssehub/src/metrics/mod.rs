//! What the hub counts, for Prometheus.
//!
//! Every metric is a field of [`Metrics`], made of lock-free primitives
//! ([`Counter`], [`HotCounter`], [`Gauge`], [`Histogram`]) and of
//! [`Family`]s of them indexed by a small, fixed label set (an enum): no
//! label ever carries a connection, a topic or a token, so the number of
//! series is bounded. [`expose`] writes them in Prometheus's text format,
//! with the process's own figures ([`process`]) and what is read from the
//! store at each scrape ([`Scraped`]).

use std::sync::Arc;

mod expose;
mod primitives;
pub mod process;
mod reading;
mod sample;

pub use expose::{expose, RedisLink, Scraped, CONTENT_TYPE};
pub use primitives::{Counter, Family, Gauge, Histogram, HotCounter, Label};
pub use reading::{quantile, Interval, Reading};
pub use sample::{DeliverySampler, SAMPLE_EVERY};

/// Declares a label: an enum whose variants are its values, in index order.
macro_rules! label {
    (
        $(#[$meta:meta])*
        $name:ident = $label:literal {
            $($(#[$vmeta:meta])* $variant:ident => $value:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl Label for $name {
            const NAME: &'static str = $label;
            const ALL: &'static [$name] = &[$($name::$variant,)+];

            fn value(self) -> &'static str {
                match self {
                    $($name::$variant => $value,)+
                }
            }

            fn index(self) -> usize {
                self as usize
            }
        }
    };
}

label! {
    /// The transport a connection or a stream uses.
    Protocol = "protocol" {
        /// HTTP/1.1.
        H1 => "h1",
        /// HTTP/2.
        H2 => "h2",
        /// HTTP/3.
        H3 => "h3",
    }
}

label! {
    /// Why a token was refused.
    AuthFailure = "reason" {
        /// No token where one is needed.
        Missing => "missing_token",
        /// A token that fails verification or whose claims are unusable.
        InvalidToken => "invalid_token",
        /// A valid token that does not grant the operation.
        InsufficientScope => "insufficient_scope",
        /// A token presented in a way that is not accepted.
        InvalidRequest => "invalid_request",
    }
}

label! {
    /// A limit that refused or ended something.
    Limit = "limit" {
        /// `--max-connections`.
        Connections => "connections",
        /// `--max-connections-per-ip`.
        ConnectionsPerIp => "connections_per_ip",
        /// The publish rate of one token subject (or IP).
        PublishRate => "publish_rate",
        /// Topics of one subscription.
        TopicsPerSubscription => "topics_per_subscription",
        /// Subscriptions of one token subject.
        SubscriptionsPerSubject => "subscriptions_per_subject",
        /// Request header size or count.
        Headers => "headers",
        /// Request headers not received in time (slowloris).
        HeaderTimeout => "header_timeout",
        /// Request body not received in time (`--body-timeout`).
        BodyTimeout => "body_timeout",
        /// Request body size (`--max-body`).
        Body => "body",
        /// A stream reached `--max-stream-duration`.
        StreamDuration => "stream_duration",
        /// No file descriptor left to accept a connection.
        FileDescriptors => "file_descriptors",
    }
}

label! {
    /// The answer to a publish request, by HTTP status.
    PublishStatus = "status" {
        /// 200: stored.
        Ok => "200",
        /// 400: malformed.
        BadRequest => "400",
        /// 401: no valid token.
        Unauthorized => "401",
        /// 403: not allowed.
        Forbidden => "403",
        /// 413: body or topic list too large.
        TooLarge => "413",
        /// 415: neither form nor JSON.
        UnsupportedMediaType => "415",
        /// 429: over the publish rate.
        TooManyRequests => "429",
        /// 503: the store is unavailable.
        Unavailable => "503",
        /// Any other status.
        Other => "other",
    }
}

impl PublishStatus {
    /// The label value of an HTTP status.
    pub fn of(status: u16) -> PublishStatus {
        match status {
            200 => PublishStatus::Ok,
            400 => PublishStatus::BadRequest,
            401 => PublishStatus::Unauthorized,
            403 => PublishStatus::Forbidden,
            413 => PublishStatus::TooLarge,
            415 => PublishStatus::UnsupportedMediaType,
            429 => PublishStatus::TooManyRequests,
            503 => PublishStatus::Unavailable,
            _ => PublishStatus::Other,
        }
    }
}

label! {
    /// How far a publish got, for its latency.
    Stage = "stage" {
        /// The request was answered: its updates are stored (durably, for
        /// the disk and Redis stores).
        Durable => "durable",
        /// Its updates were offered to every matching subscriber's queue.
        Dispatched => "dispatched",
    }
}

label! {
    /// Why a subscription stream ended.
    StreamEnd = "reason" {
        /// The client went away (or its connection broke).
        ClientClosed => "client_closed",
        /// The subscriber's token expired.
        TokenExpired => "token_expired",
        /// The stream reached `--max-stream-duration`.
        MaxDuration => "max_duration",
        /// The subscriber's queue was full: it read too slowly.
        Slow => "slow",
        /// The hub is shutting down.
        Shutdown => "shutdown",
        /// Events were lost to this node: every stream ended so that each
        /// resumes from the history.
        Resync => "resync",
        /// Reading the history for the replay failed.
        ReplayFailed => "replay_failed",
    }
}

/// Bucket upper bounds of every latency histogram, in seconds: from 100 µs
/// (a memory store's publish, a delivery to a waiting reader) to 10 s (a
/// reader that is about to be dropped as slow), about three per decade.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Every metric of a hub. Shared by reference (the hub holds one); each
/// update is one or two relaxed atomic operations.
#[derive(Debug)]
pub struct Metrics {
    /// Open connections, by transport (an HTTP/2 or HTTP/3 connection
    /// counts once whatever its streams).
    pub connections: Family<Protocol, Gauge>,
    /// Open subscription streams, by transport; their sum is Mercure's
    /// `mercure_subscribers_connected`.
    pub subscriptions: Family<Protocol, Gauge>,
    /// Subscription streams ever opened (`mercure_subscribers_total`).
    pub subscriptions_total: Counter,
    /// Updates appended to the log (`mercure_updates_total`).
    pub updates_total: Counter,
    /// Token refusals, by reason.
    pub auth_failures: Family<AuthFailure, Counter>,
    /// Refusals and disconnections by a limit.
    pub limits_hit: Family<Limit, Counter>,
    /// Events replayed from history to reconnecting subscribers.
    pub replayed_events: HotCounter,
    /// Subscribers disconnected because their queue was full.
    pub slow_subscribers: Counter,
    /// Bytes of SSE written to subscribers.
    pub bytes_written: HotCounter,
    /// Events written to subscribers, live and replayed.
    pub events_written: HotCounter,
    /// Publish requests answered, by status.
    pub publishes: Family<PublishStatus, Counter>,
    /// Time from a publish request's arrival to each stage, per request.
    pub publish_duration: Family<Stage, Histogram>,
    /// Time from an event's dispatch to its write to a subscriber's
    /// connection, for every delivery of the events a [`DeliverySampler`]
    /// picks.
    pub delivery_duration: Histogram,
    /// Subscription streams ended, by why.
    pub subscription_ends: Family<StreamEnd, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections: Family::default(),
            subscriptions: Family::default(),
            subscriptions_total: Counter::default(),
            updates_total: Counter::default(),
            auth_failures: Family::default(),
            limits_hit: Family::default(),
            replayed_events: HotCounter::default(),
            slow_subscribers: Counter::default(),
            bytes_written: HotCounter::default(),
            events_written: HotCounter::default(),
            publishes: Family::default(),
            publish_duration: Family::new(|_| Histogram::new(&LATENCY_BUCKETS)),
            delivery_duration: Histogram::new(&LATENCY_BUCKETS),
            subscription_ends: Family::default(),
        }
    }
}

/// Counts one open connection in [`Metrics::connections`] until dropped.
#[derive(Debug)]
pub struct OpenConnection {
    metrics: Arc<Metrics>,
    protocol: Protocol,
}

impl OpenConnection {
    /// Counts a connection over `protocol` as open.
    pub fn new(metrics: &Arc<Metrics>, protocol: Protocol) -> OpenConnection {
        metrics.connections.get(protocol).inc();
        OpenConnection {
            metrics: metrics.clone(),
            protocol,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.connections.get(self.protocol).dec();
    }
}
