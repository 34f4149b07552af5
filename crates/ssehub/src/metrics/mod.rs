//! What the hub counts, for Prometheus.
//!
//! Every metric is a field of [`Metrics`], made of lock-free primitives
//! ([`Counter`], [`Gauge`], [`Histogram`]) and of [`Family`]s of them indexed
//! by a small, fixed label set (an enum): no label ever carries a
//! connection, a topic or a token, so the number of series is bounded.

mod primitives;

pub use primitives::{Counter, Family, Gauge, Histogram, Label};

/// The transport a connection or a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1.
    H1,
    /// HTTP/2.
    H2,
    /// HTTP/3.
    H3,
}

impl Label for Protocol {
    const NAME: &'static str = "protocol";
    const ALL: &'static [Protocol] = &[Protocol::H1, Protocol::H2, Protocol::H3];

    fn value(self) -> &'static str {
        match self {
            Protocol::H1 => "h1",
            Protocol::H2 => "h2",
            Protocol::H3 => "h3",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No token where one is needed.
    Missing,
    /// A token that fails verification or whose claims are unusable.
    InvalidToken,
    /// A valid token that does not grant the operation.
    InsufficientScope,
    /// A token presented in a way that is not accepted.
    InvalidRequest,
}

impl Label for AuthFailure {
    const NAME: &'static str = "reason";
    const ALL: &'static [AuthFailure] = &[
        AuthFailure::Missing,
        AuthFailure::InvalidToken,
        AuthFailure::InsufficientScope,
        AuthFailure::InvalidRequest,
    ];

    fn value(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing_token",
            AuthFailure::InvalidToken => "invalid_token",
            AuthFailure::InsufficientScope => "insufficient_scope",
            AuthFailure::InvalidRequest => "invalid_request",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A limit that refused or ended something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `--max-connections`.
    Connections,
    /// `--max-connections-per-ip`.
    ConnectionsPerIp,
    /// The publish rate of one token subject (or IP).
    PublishRate,
    /// Topics of one subscription.
    TopicsPerSubscription,
    /// Subscriptions of one token subject.
    SubscriptionsPerSubject,
    /// Request header size or count.
    Headers,
    /// Request headers not received in time (slowloris).
    HeaderTimeout,
    /// Request body size (`--max-body`).
    Body,
    /// A stream reached `--max-stream-duration`.
    StreamDuration,
    /// No file descriptor left to accept a connection.
    FileDescriptors,
}

impl Label for Limit {
    const NAME: &'static str = "limit";
    const ALL: &'static [Limit] = &[
        Limit::Connections,
        Limit::ConnectionsPerIp,
        Limit::PublishRate,
        Limit::TopicsPerSubscription,
        Limit::SubscriptionsPerSubject,
        Limit::Headers,
        Limit::HeaderTimeout,
        Limit::Body,
        Limit::StreamDuration,
        Limit::FileDescriptors,
    ];

    fn value(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::ConnectionsPerIp => "connections_per_ip",
            Limit::PublishRate => "publish_rate",
            Limit::TopicsPerSubscription => "topics_per_subscription",
            Limit::SubscriptionsPerSubject => "subscriptions_per_subject",
            Limit::Headers => "headers",
            Limit::HeaderTimeout => "header_timeout",
            Limit::Body => "body",
            Limit::StreamDuration => "stream_duration",
            Limit::FileDescriptors => "file_descriptors",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Every metric of a hub. Shared by reference (the hub holds one); each
/// update is one or two relaxed atomic operations.
#[derive(Debug, Default)]
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
    pub replayed_events: Counter,
    /// Subscribers disconnected because their queue was full.
    pub slow_subscribers: Counter,
    /// Bytes of SSE written to subscribers.
    pub bytes_written: Counter,
}
