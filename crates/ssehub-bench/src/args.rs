//! `ssehub-bench run`'s command-line options, and the checks and
//! normalisation of its URLs before a scenario starts.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::publisher::Format;

/// Which scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Name {
    /// N idle subscriptions: server memory and CPU.
    Idle,
    /// N subscribers on one topic, rising publish rates.
    Fanout,
    /// Each subscription on a private topic plus one of N/10 group topics.
    Rooms,
    /// Everyone drops and reconnects with Last-Event-ID while publishing goes on.
    Storm,
    /// Healthy readers next to readers that stop reading.
    Slow,
    /// Held subscriptions on many topics, a churn of short-lived ones and
    /// steady publishing for a long time: the server's memory and files,
    /// sampled, and every held subscription's deliveries checked.
    Soak,
    /// N subscriptions holding `--selectors`, and publishes matching none:
    /// the server's CPU time per publish.
    Selectors,
}

/// What each subscription selects (selectors scenario).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Selectors {
    /// A distinct exact topic each, `https://example.com/users/{i}`.
    Exact,
    /// A distinct URI template each, `https://example.com/users/{i}/{+rest}`.
    Templates,
    /// One template for all, `https://example.com/users/{id}/{+rest}`.
    OneTemplate,
}

/// How a connection's HTTP/2 streams are opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
pub(crate) enum H2Open {
    /// All at once, as soon as the connection is up: the server receives
    /// and answers them in one burst (a page opening them in one script).
    #[default]
    Together,
    /// Each once the one before it was answered, as streams opened over
    /// time (a page's widgets, a user's navigation) arrive.
    OneByOne,
}

/// `ssehub-bench run` options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The scenario.
    #[arg(long)]
    pub(crate) scenario: Name,
    /// Subscriptions to open.
    #[arg(long, default_value_t = 1000)]
    pub(crate) subscribers: usize,
    /// Subscribe URL; `{topic}` is replaced. Several (repeated or
    /// comma-separated) spread the subscriptions over nodes, or over
    /// protocols (http:// for HTTP/1.1, https:// for HTTP/2 on TLS): worker
    /// w connects to URL w % n; every URL must have the same path and query.
    #[arg(long, required = true)]
    pub(crate) sub_url: Vec<String>,
    /// Extra subscribe request header (repeatable), e.g. `Authorization: Bearer ...`.
    #[arg(long = "sub-header")]
    pub(crate) sub_headers: Vec<String>,
    /// Publish URL; `{topic}` is replaced for the raw format. Several
    /// (repeated or comma-separated) take publishes in turn.
    #[arg(long, required = true)]
    pub(crate) pub_url: Vec<String>,
    /// How to publish.
    #[arg(long, value_enum, default_value = "mercure")]
    pub(crate) pub_format: Format,
    /// Extra publish request header (repeatable).
    #[arg(long = "pub-header")]
    pub(crate) pub_headers: Vec<String>,
    /// What payloads look like: `padded` (sequence number and send time,
    /// then filler) or `json` (a realistic JSON document, for compressed
    /// streams).
    #[arg(long, value_enum, default_value = "padded")]
    pub(crate) payload_shape: crate::payload::Shape,
    /// Ask for compressed streams: sent as the subscriptions'
    /// `Accept-Encoding` (e.g. `zstd` or `gzip`); every client decodes what
    /// the `Content-Encoding` of its response says.
    #[arg(long)]
    pub(crate) accept_encoding: Option<String>,
    /// Payload sizes in bytes (fanout runs each).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    pub(crate) payload: Vec<usize>,
    /// Publish rates per second, in order (fanout: rising until p99 > --p99-limit-ms).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,20,50,100,200,500,1000"
    )]
    pub(crate) rates: Vec<f64>,
    /// Seconds per rate step (and of publishing in rooms, storm, slow).
    #[arg(long, default_value_t = 5.0)]
    pub(crate) step_seconds: f64,
    /// Fan-out stops raising the rate once p99 passes this.
    #[arg(long, default_value_t = 100.0)]
    pub(crate) p99_limit_ms: f64,
    /// Seconds to hold idle connections (idle).
    #[arg(long, default_value_t = 20.0)]
    pub(crate) idle_seconds: f64,
    /// Query parameter naming a subscription's group topic (rooms).
    #[arg(long, default_value = "topic")]
    pub(crate) group_param: String,
    /// Stalled readers added (slow).
    #[arg(long, default_value_t = 50)]
    pub(crate) stalled: usize,
    /// Seconds of publishing and churn (soak).
    #[arg(long, default_value_t = 1800.0)]
    pub(crate) soak_seconds: f64,
    /// Topics the subscriptions spread over, each selecting two (soak).
    #[arg(long, default_value_t = 100)]
    pub(crate) topics: usize,
    /// Short-lived subscriptions opened per second, all workers together (soak).
    #[arg(long, default_value_t = 100.0)]
    pub(crate) churn_rate: f64,
    /// Seconds a short-lived subscription is held, drawn uniformly from
    /// this range, e.g. `1-19` (soak).
    #[arg(long, default_value = "1-19")]
    pub(crate) churn_hold: Hold,
    /// Seconds between two samples of the server and the counts (soak).
    #[arg(long, default_value_t = 5.0)]
    pub(crate) sample_seconds: f64,
    /// Write the samples here as CSV (soak).
    #[arg(long)]
    pub(crate) samples: Option<PathBuf>,
    /// What each subscription selects (selectors).
    #[arg(long, value_enum, default_value = "exact")]
    pub(crate) selectors: Selectors,
    /// Worker processes [default: one per 15,000 subscriptions, rounded up
    /// to a multiple of the number of subscribe URLs].
    #[arg(long)]
    pub(crate) workers: Option<usize>,
    /// Source addresses, e.g. `127.0.0.2-127.0.0.250`.
    #[arg(long, default_value = "127.0.0.2-127.0.0.250")]
    pub(crate) sources: Sources,
    /// New connections per second, all workers together.
    #[arg(long, default_value_t = 5000)]
    pub(crate) connect_rate: u32,
    /// Subscribe to the https:// `--sub-url`s over HTTP/2 on TLS with this
    /// many streams per connection.
    #[arg(long)]
    pub(crate) h2_streams: Option<usize>,
    /// How a connection opens its HTTP/2 streams.
    #[arg(long, value_enum, default_value = "together")]
    pub(crate) h2_open: H2Open,
    /// Certificate to trust for HTTP/2 on TLS (ssehub's is DATA_DIR/tls/cert.pem).
    #[arg(long)]
    pub(crate) ca_cert: Option<PathBuf>,
    /// PID of the server, for its RSS and CPU time (repeatable: the nodes'
    /// RSS and CPU time are summed).
    #[arg(long)]
    pub(crate) server_pid: Vec<u32>,
    /// Label for the server in the results.
    #[arg(long, default_value = "server")]
    pub(crate) label: String,
    /// Write the JSON result here [default: stdout].
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

impl Args {
    /// Splits comma-separated `--sub-url` and `--pub-url` values and checks
    /// that the subscribe URLs differ only in their node and that there is
    /// a publish URL.
    pub(crate) fn check_urls(&mut self) -> anyhow::Result<()> {
        self.sub_url = split_urls(&self.sub_url);
        self.pub_url = split_urls(&self.pub_url);
        check_sub_urls(&self.sub_url)?;
        if self.pub_url.is_empty() {
            bail!("no --pub-url");
        }
        let tls = |u: &String| u.to_ascii_lowercase().starts_with("https://");
        if self.h2_streams.is_some() && !self.sub_url.iter().any(tls) {
            bail!("--h2-streams is for https:// subscribe URLs, and none is given");
        }
        Ok(())
    }
}

/// Source addresses to connect from.
#[derive(Debug, Clone)]
pub(crate) struct Sources(pub(crate) Vec<Ipv4Addr>);

impl std::str::FromStr for Sources {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_sources(s).map(Sources)
    }
}

/// A range of seconds, `MIN-MAX` (or one number).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Hold {
    /// Shortest, in seconds.
    pub(crate) min: f64,
    /// Longest, in seconds.
    pub(crate) max: f64,
}

impl std::str::FromStr for Hold {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (min, max) = s.split_once('-').unwrap_or((s, s));
        let seconds = |v: &str| match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
            _ => Err(format!("{v:?} is not a number of seconds above 0")),
        };
        let (min, max) = (seconds(min)?, seconds(max)?);
        if min > max {
            return Err(format!("{s}: the shortest is longer than the longest"));
        }
        Ok(Hold { min, max })
    }
}

/// Parses `127.0.0.2-127.0.0.250` or a comma-separated list.
fn parse_sources(s: &str) -> Result<Vec<Ipv4Addr>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (Ipv4Addr, Ipv4Addr) = (
                    a.parse().map_err(|_| format!("bad address {a}"))?,
                    b.parse().map_err(|_| format!("bad address {b}"))?,
                );
                out.extend((u32::from(a)..=u32::from(b)).map(Ipv4Addr::from));
            }
            None => out.push(part.parse().map_err(|_| format!("bad address {part}"))?),
        }
    }
    if out.is_empty() {
        return Err("no source address".into());
    }
    Ok(out)
}

/// Splits comma-separated URLs; a comma inside a URL stays when what
/// follows it does not start with a scheme.
fn split_urls(values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in values {
        let mut fresh = true;
        for piece in value.split(',') {
            if piece.trim().is_empty() {
                continue;
            }
            let lower = piece.trim_start().to_ascii_lowercase();
            let starts_url = lower.starts_with("http://") || lower.starts_with("https://");
            match out.last_mut() {
                Some(last) if !fresh && !starts_url => {
                    last.push(',');
                    last.push_str(piece);
                }
                _ => out.push(piece.trim().to_string()),
            }
            fresh = false;
        }
    }
    for url in &mut out {
        *url = url.trim().to_string();
    }
    out
}

/// Checks that every subscribe URL asks for the same path and query (only
/// the node and the protocol differ), since subscriptions are built from
/// the first.
fn check_sub_urls(urls: &[String]) -> anyhow::Result<()> {
    let shape = |u: &str| -> anyhow::Result<(String, Option<String>)> {
        let url = reqwest::Url::parse(&u.replace("{topic}", "x"))
            .with_context(|| format!("--sub-url {u}"))?;
        Ok((url.path().to_string(), url.query().map(String::from)))
    };
    let first = shape(urls.first().context("no --sub-url")?)?;
    for u in &urls[1..] {
        if shape(u)? != first {
            bail!(
                "--sub-url {u}: every subscribe URL must have the path and query of {}",
                urls[0]
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holding_times_parse_as_ranges_of_seconds() {
        assert_eq!(
            "1-19".parse(),
            Ok(Hold {
                min: 1.0,
                max: 19.0
            })
        );
        assert_eq!("0.5".parse(), Ok(Hold { min: 0.5, max: 0.5 }));
        for bad in ["", "x", "0-3", "5-2", "1-", "-1", "inf"] {
            assert!(bad.parse::<Hold>().is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_split_on_commas_that_start_a_url() {
        let given = vec![
            "http://a:1/sub?topic={topic},http://b:2/sub?topic={topic}".to_string(),
            " https://c:3/x?t=a,b ".to_string(),
            "http://d:4/p,".to_string(),
        ];
        assert_eq!(
            split_urls(&given),
            [
                "http://a:1/sub?topic={topic}",
                "http://b:2/sub?topic={topic}",
                "https://c:3/x?t=a,b",
                "http://d:4/p",
            ]
        );
        assert_eq!(split_urls(&["http://a/".to_string()]), ["http://a/"]);
    }

    #[test]
    fn subscribe_urls_differ_only_in_node_and_protocol() {
        let ok = [
            "http://127.0.0.1:1/m?topic={topic}",
            "http://127.0.0.1:2/m?topic={topic}",
            "https://127.0.0.1:3/m?topic={topic}",
        ];
        assert!(check_sub_urls(&ok.map(String::from)).is_ok());
        let bad = [
            "http://127.0.0.1:1/m?topic={topic}",
            "http://127.0.0.1:2/n?topic={topic}",
        ];
        assert!(check_sub_urls(&bad.map(String::from)).is_err());
    }
}
