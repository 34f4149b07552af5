//! `ssehub subscribe`: follows a hub's event stream, parsed as a browser
//! would (`proto::sse::Parser`), printing each event; reconnects after a
//! drop with the last id seen and a jittered exponential backoff, and ends
//! cleanly on SIGINT or SIGTERM.

use std::io::Write;
use std::num::NonZeroU64;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method};
use http_body_util::BodyExt;
use rand::Rng;
use tokio::signal::unix::{signal, SignalKind};

use super::client::{Action, Hub, HubArgs, HubError};
use crate::proto::sse::{ParsedEvent, Parser};

/// Longest wait for the answer's head.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait before reconnecting when the hub sent no `retry:`.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between attempts (unless `retry:` asks for more).
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    /// `id:`, `type:` and `data:` lines, then a blank line.
    Pretty,
    /// One JSON object per line: {"id":…,"type":…,"data":…}.
    Json,
}

/// The options of `ssehub subscribe`.
#[derive(Debug, clap::Args)]
pub(super) struct SubscribeArgs {
    #[command(flatten)]
    hub: HubArgs,
    /// Mercure 0.x: a topic selector, exact or a URI template, `*` for all (`topic=`; repeatable).
    #[arg(long, value_name = "SEL")]
    topic: Vec<String>,
    /// Mercure 1.0: an exact topic (`match=`; repeatable).
    #[arg(long = "match", value_name = "TOPIC")]
    match_exact: Vec<String>,
    /// Mercure 1.0: a URL pattern (`match_urlpattern=`; repeatable).
    #[arg(long, value_name = "PATTERN")]
    match_urlpattern: Vec<String>,
    /// Start after this event (`earliest`: the whole history).
    #[arg(long, value_name = "ID")]
    last_event_id: Option<String>,
    /// Start with the updates retained since this time: RFC 3339 or Unix milliseconds (`since=`).
    #[arg(long, value_name = "TIME", conflicts_with_all = ["rewind", "last_event_id"])]
    since: Option<String>,
    /// Start with the last N updates the stream receives (`rewind=`, at most 10000).
    #[arg(long, value_name = "N", conflicts_with = "last_event_id")]
    rewind: Option<u64>,
    /// How to print events.
    #[arg(long, value_enum, default_value = "pretty")]
    format: Format,
    /// Exit after this many events.
    #[arg(long, value_name = "N")]
    count: Option<NonZeroU64>,
}

/// Why the stream stopped being followed.
enum Stop {
    /// `--count` events were printed, or stdout was closed.
    Done,
    /// The stream ended or broke: reconnect.
    Dropped(String),
}

impl SubscribeArgs {
    /// Follows the stream until SIGINT, SIGTERM or `--count` events
    /// (`Ok`), or a refusal that retrying cannot change (`Err`).
    pub(super) fn run(self) -> anyhow::Result<()> {
        if self.topic.is_empty() && self.match_exact.is_empty() && self.match_urlpattern.is_empty()
        {
            anyhow::bail!("nothing to subscribe to: add --topic SELECTOR (Mercure 0.x, `*` for all) or --match TOPIC / --match-urlpattern PATTERN (Mercure 1.0)");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let mut interrupt = signal(SignalKind::interrupt())?;
            let mut terminate = signal(SignalKind::terminate())?;
            let mut follower = Follower::new(self)?;
            tokio::select! {
                result = follower.follow() => result,
                _ = interrupt.recv() => Ok(()),
                _ = terminate.recv() => Ok(()),
            }
        })
    }

    /// The query: each selector under its parameter.
    fn query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, values) in [
            ("topic", &self.topic),
            ("match", &self.match_exact),
            ("match_urlpattern", &self.match_urlpattern),
        ] {
            for value in values {
                query.append_pair(name, value);
            }
        }
        // Kept on reconnection: the hub lets the Last-Event-ID sent then win.
        if let Some(since) = &self.since {
            query.append_pair("since", since);
        }
        if let Some(rewind) = self.rewind {
            query.append_pair("rewind", &rewind.to_string());
        }
        query.finish()
    }
}

/// The state kept across connections.
struct Follower {
    hub: Hub,
    query: String,
    format: Format,
    /// Events still to print before exiting, if counted.
    left: Option<u64>,
    /// The id to resume after.
    last_id: Option<String>,
    /// The reconnection time the hub asked for.
    retry: Option<Duration>,
}

impl Follower {
    fn new(args: SubscribeArgs) -> anyhow::Result<Follower> {
        let query = args.query();
        Ok(Follower {
            hub: args.hub.hub()?,
            query,
            format: args.format,
            left: args.count.map(NonZeroU64::get),
            last_id: args.last_event_id,
            retry: None,
        })
    }

    /// Connects, prints, and reconnects until done or refused for good.
    async fn follow(&mut self) -> anyhow::Result<()> {
        // Failed attempts since the last stream opened.
        let mut failures = 0u32;
        loop {
            let why = match self.stream().await {
                Ok(Stop::Done) => return Ok(()),
                Ok(Stop::Dropped(why)) => {
                    failures = 0;
                    why
                }
                Err(e) if e.is_permanent() => return Err(e.into()),
                Err(e) => {
                    failures = failures.saturating_add(1);
                    e.to_string()
                }
            };
            let wait = backoff(self.retry, failures, &mut rand::thread_rng());
            let resume = match &self.last_id {
                Some(id) => format!(" with Last-Event-ID {id}"),
                None => String::new(),
            };
            eprintln!(
                "ssehub: {why}; reconnecting in {}{resume}",
                humantime::format_duration(Duration::from_millis(
                    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
                ))
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One connection: opens the stream and prints its events until it
    /// ends.
    async fn stream(&mut self) -> Result<Stop, HubError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Some(id) = self
            .last_id
            .as_deref()
            .and_then(|id| HeaderValue::from_str(id).ok())
        {
            headers.insert("last-event-id", id);
        }
        let (_connection, response) = self
            .hub
            .send(
                Method::GET,
                Some(&self.query),
                headers,
                Bytes::new(),
                Action::Subscribe,
                CONNECT_TIMEOUT,
            )
            .await?;
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("text/event-stream") {
            return Err(HubError::NotAStream {
                url: self.hub.url().clone(),
                content_type: content_type.to_string(),
            });
        }
        eprintln!("ssehub: connected to {}", self.hub.url());
        let mut body = response.into_body();
        let mut parser = Parser::new();
        loop {
            let chunk = match body.frame().await {
                None => return Ok(Stop::Dropped("the hub ended the stream".into())),
                Some(Err(e)) => return Ok(Stop::Dropped(format!("the stream broke: {e}"))),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
            };
            let events = parser.feed(&chunk);
            if let Some(ms) = parser.retry() {
                self.retry = Some(Duration::from_millis(ms));
            }
            for event in events {
                if !event.last_event_id.is_empty() {
                    self.last_id = Some(event.last_event_id.clone());
                }
                if !self.print(&event) {
                    return Ok(Stop::Done);
                }
                if let Some(left) = &mut self.left {
                    *left -= 1;
                    if *left == 0 {
                        return Ok(Stop::Done);
                    }
                }
            }
        }
    }

    /// Prints `event` and flushes; `false` once stdout is closed.
    fn print(&self, event: &ParsedEvent) -> bool {
        let text = match self.format {
            Format::Json => {
                let json = serde_json::json!({
                    "id": event.last_event_id,
                    "type": event.event_type,
                    "data": event.data,
                });
                format!("{json}\n")
            }
            Format::Pretty => pretty(event),
        };
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_ok()
    }
}

/// `id:`, `type:` and `data:` (each further line of data indented under
/// the first), then a blank line.
fn pretty(event: &ParsedEvent) -> String {
    let mut text = format!(
        "id:   {}\ntype: {}\n",
        event.last_event_id, event.event_type
    );
    for (i, line) in event.data.split('\n').enumerate() {
        text.push_str(if i == 0 { "data: " } else { "      " });
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    text
}

/// The wait before the next attempt after `failures` failed ones: the
/// hub's reconnection time (or [`DEFAULT_RETRY`]) doubled per failure up to
/// [`MAX_BACKOFF`] (or the hub's time if longer), plus up to half again at
/// random, so that many clients dropped at once do not return at once.
fn backoff(retry: Option<Duration>, failures: u32, rng: &mut impl Rng) -> Duration {
    let base = retry.unwrap_or(DEFAULT_RETRY);
    let cap = MAX_BACKOFF.max(base);
    let delay = base
        .checked_mul(1 << failures.min(16))
        .map_or(cap, |d| d.min(cap));
    let jitter = delay.mul_f64(rng.gen_range(0.0..=0.5));
    delay + jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_retry_doubles_and_is_capped() {
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let first = backoff(None, 0, &mut rng);
            assert!(first >= DEFAULT_RETRY && first <= DEFAULT_RETRY.mul_f64(1.5));
            let hub = Duration::from_millis(200);
            let third = backoff(Some(hub), 2, &mut rng);
            assert!(third >= hub * 4 && third <= (hub * 4).mul_f64(1.5));
            let many = backoff(None, 40, &mut rng);
            assert!(many >= MAX_BACKOFF && many <= MAX_BACKOFF.mul_f64(1.5));
            let long = Duration::from_secs(60);
            assert!(backoff(Some(long), 3, &mut rng) >= long);
        }
    }

    #[test]
    fn pretty_indents_further_data_lines() {
        let event = ParsedEvent {
            event_type: "message".into(),
            data: "a\nb".into(),
            last_event_id: "urn:x".into(),
        };
        assert_eq!(
            pretty(&event),
            "id:   urn:x\ntype: message\ndata: a\n      b\n\n"
        );
    }
}
