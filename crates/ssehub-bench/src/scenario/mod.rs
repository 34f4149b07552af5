//! Scenarios: `idle`, `fanout`, `rooms`, `storm`, `slow`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::proc_stats::{sample, Sample};
use crate::publisher::{self, Format, Sequences, Target};
use crate::worker::{decode_hist, Report, Spec};

/// Characters escaped in a query value: all but RFC 3986's unreserved ones,
/// which some servers (Nchan's `$arg_*`) take without decoding.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Largest number of subscriptions one worker process holds (file limit).
const PER_WORKER: usize = 15_000;

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
}

/// `ssehub-bench run` options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The scenario.
    #[arg(long)]
    scenario: Name,
    /// Subscriptions to open.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Subscribe URL; `{topic}` is replaced. Several (repeated or
    /// comma-separated) spread the subscriptions over nodes: worker w
    /// connects to URL w % n; every URL must have the same path and query.
    #[arg(long, required = true)]
    sub_url: Vec<String>,
    /// Extra subscribe request header (repeatable), e.g. `Authorization: Bearer ...`.
    #[arg(long = "sub-header")]
    sub_headers: Vec<String>,
    /// Publish URL; `{topic}` is replaced for the raw format. Several
    /// (repeated or comma-separated) take publishes in turn.
    #[arg(long, required = true)]
    pub_url: Vec<String>,
    /// How to publish.
    #[arg(long, value_enum, default_value = "mercure")]
    pub_format: Format,
    /// Extra publish request header (repeatable).
    #[arg(long = "pub-header")]
    pub_headers: Vec<String>,
    /// Payload sizes in bytes (fanout runs each).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    payload: Vec<usize>,
    /// Publish rates per second, in order (fanout: rising until p99 > --p99-limit-ms).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,20,50,100,200,500,1000"
    )]
    rates: Vec<f64>,
    /// Seconds per rate step (and of publishing in rooms, storm, slow).
    #[arg(long, default_value_t = 5.0)]
    step_seconds: f64,
    /// Fan-out stops raising the rate once p99 passes this.
    #[arg(long, default_value_t = 100.0)]
    p99_limit_ms: f64,
    /// Seconds to hold idle connections (idle).
    #[arg(long, default_value_t = 20.0)]
    idle_seconds: f64,
    /// Query parameter naming a subscription's group topic (rooms).
    #[arg(long, default_value = "topic")]
    group_param: String,
    /// Stalled readers added (slow).
    #[arg(long, default_value_t = 50)]
    stalled: usize,
    /// Worker processes [default: one per 15,000 subscriptions, rounded up
    /// to a multiple of the number of subscribe URLs].
    #[arg(long)]
    workers: Option<usize>,
    /// Source addresses, e.g. `127.0.0.2-127.0.0.250`.
    #[arg(long, default_value = "127.0.0.2-127.0.0.250")]
    sources: crate::Sources,
    /// New connections per second, all workers together.
    #[arg(long, default_value_t = 5000)]
    connect_rate: u32,
    /// Subscribe over HTTP/2 on TLS with this many streams per connection
    /// (`--sub-url` must then be https://).
    #[arg(long)]
    h2_streams: Option<usize>,
    /// Certificate to trust for HTTP/2 on TLS (ssehub's is DATA_DIR/tls/cert.pem).
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// PID of the server, for its RSS and CPU time (repeatable: the nodes'
    /// RSS and CPU time are summed).
    #[arg(long)]
    server_pid: Vec<u32>,
    /// Label for the server in the results.
    #[arg(long, default_value = "server")]
    label: String,
    /// Write the JSON result here [default: stdout].
    #[arg(long)]
    json: Option<PathBuf>,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// Where one subscribe URL's workers connect.
struct Node {
    addr: SocketAddr,
    /// Host header, `host:port`.
    host: String,
    h2: Option<crate::h2_client::H2Spec>,
}

impl Node {
    async fn resolve(args: &Args, sub_url: &str) -> anyhow::Result<Node> {
        let url = reqwest::Url::parse(&sub_url.replace("{topic}", "x"))
            .with_context(|| format!("--sub-url {sub_url}"))?;
        let host = url.host_str().context("--sub-url host")?.to_string();
        let h2 = match (url.scheme(), args.h2_streams) {
            ("http", None) => None,
            ("https", Some(streams)) => {
                let ca = args
                    .ca_cert
                    .as_ref()
                    .context("--h2-streams needs --ca-cert")?;
                let ca_pem = std::fs::read_to_string(ca)
                    .with_context(|| format!("reading {}", ca.display()))?;
                Some(crate::h2_client::H2Spec {
                    streams,
                    server_name: host.clone(),
                    ca_pem,
                })
            }
            _ => bail!(
                "use an http:// --sub-url for HTTP/1.1, or https:// with --h2-streams N for HTTP/2"
            ),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .next()
            .context("resolving --sub-url")?;
        Ok(Node {
            addr,
            host: format!("{host}:{port}"),
            h2,
        })
    }
}

/// Worker processes for `subscriptions` spread over `nodes` subscribe URLs:
/// worker w serves URL w % nodes, so each URL needs at least one.
fn worker_count(given: Option<usize>, subscriptions: usize, nodes: usize) -> anyhow::Result<usize> {
    match given.map(|w| w.max(1)) {
        Some(w) if w < nodes => {
            bail!("--workers {w} leaves some of the {nodes} subscribe URLs without subscriptions")
        }
        Some(w) => Ok(w),
        None => Ok(subscriptions.div_ceil(PER_WORKER).max(1).div_ceil(nodes) * nodes),
    }
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
/// the node differs), since subscriptions are built from the first.
fn check_sub_urls(urls: &[String]) -> anyhow::Result<()> {
    let shape = |u: &str| -> anyhow::Result<(String, String, Option<String>)> {
        let url = reqwest::Url::parse(&u.replace("{topic}", "x"))
            .with_context(|| format!("--sub-url {u}"))?;
        Ok((
            url.scheme().to_string(),
            url.path().to_string(),
            url.query().map(String::from),
        ))
    };
    let first = shape(urls.first().context("no --sub-url")?)?;
    for u in &urls[1..] {
        if shape(u)? != first {
            bail!(
                "--sub-url {u}: every subscribe URL must have the scheme, path and query of {}",
                urls[0]
            );
        }
    }
    Ok(())
}

struct Workers(Vec<Worker>);

impl Workers {
    async fn spawn(args: &Args, paths: Vec<String>, stalled: usize) -> anyhow::Result<Workers> {
        let mut nodes = Vec::new();
        for url in &args.sub_url {
            nodes.push(Node::resolve(args, url).await?);
        }
        let n = paths.len();
        let count = worker_count(args.workers, n, nodes.len())?;
        let mut per_node = vec![0; nodes.len()];
        let exe = std::env::current_exe()?;
        let mut workers = Vec::new();
        let mut paths = paths.into_iter();
        for w in 0..count {
            let first = w * n / count;
            let mine: Vec<String> = paths.by_ref().take((w + 1) * n / count - first).collect();
            let node = &nodes[w % nodes.len()];
            per_node[w % nodes.len()] += mine.len();
            let spec = Spec {
                first,
                count: mine.len(),
                addr: node.addr,
                host: node.host.clone(),
                paths: mine,
                headers: args.sub_headers.clone(),
                sources: args.sources.0.clone(),
                connect_rate: (args.connect_rate as usize / count).max(1) as u32,
                stalled: if w == 0 { stalled } else { 0 },
                h2: node.h2.clone(),
            };
            let mut child = tokio::process::Command::new(&exe)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let mut stdin = child.stdin.take().expect("piped");
            stdin
                .write_all(format!("{}\n", serde_json::to_string(&spec)?).as_bytes())
                .await?;
            let stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
            workers.push(Worker {
                child,
                stdin,
                stdout,
            });
        }
        if nodes.len() > 1 {
            eprintln!(
                "ssehub-bench: {n} subscriptions over {count} workers and {} subscribe URLs: {per_node:?}",
                nodes.len()
            );
        }
        Ok(Workers(workers))
    }

    /// Sends a command to every worker; collects one report each when asked.
    async fn ask(&mut self, command: &str) -> anyhow::Result<Vec<Report>> {
        for w in &mut self.0 {
            w.stdin.write_all(format!("{command}\n").as_bytes()).await?;
        }
        let mut out = Vec::new();
        if command.starts_with("report") || command.starts_with("snapshot") {
            for w in &mut self.0 {
                let line = w.stdout.next_line().await?.context("a worker exited")?;
                out.push(serde_json::from_str(&line)?);
            }
        }
        Ok(out)
    }

    async fn total(&mut self) -> anyhow::Result<Report> {
        Ok(sum(&self.ask("report").await?))
    }

    /// Totals and the merged latency histogram since the last snapshot.
    async fn snapshot(&mut self) -> anyhow::Result<(Report, Histogram<u64>)> {
        let reports = self.ask("snapshot").await?;
        let mut hist = decode_hist("");
        for r in &reports {
            hist.add(decode_hist(&r.hist)).expect("same bounds");
        }
        Ok((sum(&reports), hist))
    }

    async fn quit(mut self) {
        let _ = self.ask("quit").await;
        for w in &mut self.0 {
            let _ = tokio::time::timeout(Duration::from_secs(2), w.child.wait()).await;
        }
    }
}

fn sum(reports: &[Report]) -> Report {
    reports.iter().fold(Report::default(), |a, r| Report {
        connected: a.connected + r.connected,
        failed: a.failed + r.failed,
        received: a.received + r.received,
        gaps: a.gaps + r.gaps,
        dups: a.dups + r.dups,
        caught_up: a.caught_up + r.caught_up,
        hist: String::new(),
    })
}

fn latency(hist: &Histogram<u64>) -> serde_json::Value {
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    json!({ "count": hist.len(), "p50_ms": ms(0.5), "p99_ms": ms(0.99), "p999_ms": ms(0.999), "max_ms": hist.max() as f64 / 1000.0 })
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}} {{msg}}"
        ))
        .expect("a valid template"),
    );
    pb
}

/// Waits until `want` subscriptions are connected, with a progress bar.
async fn connect_all(workers: &mut Workers, want: usize) -> anyhow::Result<f64> {
    let pb = bar(want as u64, "connecting");
    let started = Instant::now();
    let mut last_progress = (0, Instant::now());
    loop {
        let t = workers.total().await?;
        pb.set_position(t.connected);
        pb.set_message(format!("{} failed", t.failed));
        if t.connected as usize >= want {
            pb.finish();
            return Ok(want as f64 / started.elapsed().as_secs_f64());
        }
        if t.connected > last_progress.0 {
            last_progress = (t.connected, Instant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(30) {
            bail!(
                "stuck at {} of {want} connections ({} failures)",
                t.connected,
                t.failed
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn target(args: &Args) -> anyhow::Result<Target> {
    let mut headers = reqwest::header::HeaderMap::new();
    for h in &args.pub_headers {
        let (k, v) = h
            .split_once(':')
            .context("--pub-header needs Name: value")?;
        headers.insert(
            reqwest::header::HeaderName::from_bytes(k.trim().as_bytes())?,
            v.trim().parse()?,
        );
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    Ok(Target {
        urls: args.pub_url.clone(),
        next: Default::default(),
        format: args.pub_format,
        headers,
        client,
    })
}

fn path_for(args: &Args, topic: &str) -> String {
    let url = args.sub_url[0].replace(
        "{topic}",
        &percent_encoding::utf8_percent_encode(topic, QUERY_VALUE).to_string(),
    );
    let url = reqwest::Url::parse(&url).expect("checked --sub-url");
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Runs the chosen scenario and prints a summary and the JSON result.
pub(crate) async fn run(mut args: Args) -> anyhow::Result<()> {
    args.sub_url = split_urls(&args.sub_url);
    args.pub_url = split_urls(&args.pub_url);
    check_sub_urls(&args.sub_url)?;
    if args.pub_url.is_empty() {
        bail!("no --pub-url");
    }
    let result = match args.scenario {
        Name::Idle => idle(&args).await?,
        Name::Fanout => fanout(&args).await?,
        Name::Rooms => rooms(&args).await?,
        Name::Storm => storm(&args).await?,
        Name::Slow => slow(&args).await?,
    };
    let result = json!({ "scenario": format!("{:?}", args.scenario).to_lowercase(), "server": args.label, "subscribers": args.subscribers,
        "sub_urls": args.sub_url, "pub_urls": args.pub_url, "result": result });
    crate::write_json(args.json.as_ref(), &result)
}

async fn idle(args: &Args) -> anyhow::Result<serde_json::Value> {
    let before = sample(&args.server_pid);
    let paths = (0..args.subscribers)
        .map(|_| path_for(args, "idle"))
        .collect();
    let mut workers = Workers::spawn(args, paths, 0).await?;
    let connects_per_s = connect_all(&mut workers, args.subscribers).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connected = sample(&args.server_pid);
    tokio::time::sleep(Duration::from_secs_f64(args.idle_seconds)).await;
    let after = sample(&args.server_pid);
    workers.quit().await;
    let per_conn =
        (connected.rss_kib.saturating_sub(before.rss_kib)) as f64 / args.subscribers as f64;
    let cpu = after.cpu_s - connected.cpu_s;
    eprintln!(
        "{}: {} idle subscriptions, {connects_per_s:.0} connects/s, RSS {} -> {} KiB ({per_conn:.2} KiB per subscription), CPU {cpu:.2} s over {:.0} s idle, kernel TCP memory {} KiB",
        args.label, args.subscribers, before.rss_kib, connected.rss_kib, args.idle_seconds, after.tcp_mem_kib
    );
    Ok(
        json!({ "connects_per_s": connects_per_s, "rss_before_kib": before.rss_kib, "rss_connected_kib": connected.rss_kib,
        "rss_per_subscription_kib": per_conn, "idle_cpu_s": cpu, "idle_seconds": args.idle_seconds, "tcp_mem_kib": after.tcp_mem_kib }),
    )
}

/// What a publishing step sends, and to how many subscribers.
struct Load<'a> {
    target: &'a Target,
    seqs: &'a Arc<Sequences>,
    topics: &'a [String],
    size: usize,
    /// How many subscribers receive a publish to each of `topics` (same order).
    audience: Vec<u64>,
}

impl<'a> Load<'a> {
    /// Publishing to one topic that every subscriber receives.
    fn one_topic(
        target: &'a Target,
        seqs: &'a Arc<Sequences>,
        topic: &'a String,
        size: usize,
        subscribers: usize,
    ) -> Load<'a> {
        Load {
            target,
            seqs,
            topics: std::slice::from_ref(topic),
            size,
            audience: vec![subscribers as u64],
        }
    }

    /// Deliveries an average publish makes (for the progress bar).
    fn mean_audience(&self) -> f64 {
        self.audience.iter().sum::<u64>() as f64 / self.audience.len().max(1) as f64
    }
}

/// One publishing step: publishes, waits for deliveries to settle, measures.
async fn step(
    args: &Args,
    workers: &mut Workers,
    load: &Load<'_>,
    rate: f64,
) -> anyhow::Result<serde_json::Value> {
    let Load {
        target,
        seqs,
        topics,
        size,
        ref audience,
    } = *load;
    let (start, _) = workers.snapshot().await?;
    let s0 = sample(&args.server_pid);
    let t0 = Instant::now();
    let pb = bar(
        (rate * args.step_seconds) as u64,
        &format!("{rate}/s x {size} B"),
    );
    let publishing = publisher::run(
        target,
        seqs,
        topics,
        rate,
        Duration::from_secs_f64(args.step_seconds),
        size,
    );
    tokio::pin!(publishing);
    let sent = loop {
        tokio::select! {
            sent = &mut publishing => break sent,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                let t = workers.total().await?;
                pb.set_position(((t.received - start.received) as f64 / load.mean_audience().max(1.0)) as u64);
            }
        }
    };
    // Exactly what the acknowledged publishes owe the subscribers; let
    // deliveries drain (bounded).
    let owed: u64 = sent
        .per_topic
        .iter()
        .zip(audience)
        .map(|(n, a)| n * a)
        .sum();
    let want = start.received + owed;
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = workers.total().await?;
        if t.received >= want || Instant::now() > drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let s1 = sample(&args.server_pid);
    let (end, hist) = workers.snapshot().await?;
    pb.finish_and_clear();
    let delivered = end.received - start.received;
    let cpu = s1.cpu_s - s0.cpu_s;
    let lat = latency(&hist);
    let line = json!({ "rate": rate, "payload": size, "published": sent.published(), "publish_errors": sent.errors,
        "delivered": delivered, "expected": want - start.received, "missing": want.saturating_sub(end.received), "deliveries_per_s": delivered as f64 / elapsed,
        "gaps": end.gaps - start.gaps, "dups": end.dups - start.dups, "latency": lat,
        "server_cpu_s": cpu, "server_cpu_us_per_delivery": if delivered > 0 { cpu * 1e6 / delivered as f64 } else { 0.0 },
        "server_rss_kib": s1.rss_kib });
    eprintln!(
        "{}: {rate:>7}/s x {size:>5} B: {delivered} deliveries of {owed} owed ({:.0}/s), p50 {} ms p99 {} ms p99.9 {} ms max {} ms, gaps {} dups {}, server CPU {cpu:.2} s, RSS {} KiB",
        args.label, line["deliveries_per_s"].as_f64().unwrap_or(0.0), lat["p50_ms"], lat["p99_ms"], lat["p999_ms"], lat["max_ms"], line["gaps"], line["dups"], s1.rss_kib
    );
    Ok(line)
}

/// Publishes once and discards what it measured: the first publish pays for
/// connection set-up and cold caches on every side.
async fn warm_up(
    workers: &mut Workers,
    target: &Target,
    seqs: &Arc<Sequences>,
    topic: &str,
) -> anyhow::Result<()> {
    publisher::run(
        target,
        seqs,
        &[topic.to_string()],
        1.0,
        Duration::from_millis(500),
        100,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    workers.snapshot().await?;
    Ok(())
}

/// `count` subscriptions to `topic` (the first `stalled` never read), all connected.
async fn crowd(args: &Args, topic: &str, count: usize, stalled: usize) -> anyhow::Result<Workers> {
    let paths = (0..count).map(|_| path_for(args, topic)).collect();
    let mut workers = Workers::spawn(args, paths, stalled).await?;
    connect_all(&mut workers, count).await?;
    Ok(workers)
}

async fn fanout(args: &Args) -> anyhow::Result<serde_json::Value> {
    let topic = "fanout".to_string();
    let mut workers = crowd(args, &topic, args.subscribers, 0).await?;
    let (target, seqs) = (target(args)?, Arc::new(Sequences::default()));
    warm_up(&mut workers, &target, &seqs, &topic).await?;
    let mut steps = Vec::new();
    for &size in &args.payload {
        for &rate in &args.rates {
            let line = step(
                args,
                &mut workers,
                &Load::one_topic(&target, &seqs, &topic, size, args.subscribers),
                rate,
            )
            .await?;
            let p99 = line["latency"]["p99_ms"].as_f64().unwrap_or(f64::MAX);
            let complete = line["delivered"].as_u64() >= line["expected"].as_u64();
            steps.push(line);
            if p99 > args.p99_limit_ms || !complete {
                break;
            }
        }
    }
    workers.quit().await;
    let best = steps
        .iter()
        .filter_map(|s| s["deliveries_per_s"].as_f64())
        .fold(0.0, f64::max);
    eprintln!("{}: saturated fan-out {best:.0} deliveries/s", args.label);
    Ok(json!({ "steps": steps, "max_deliveries_per_s": best }))
}

async fn rooms(args: &Args) -> anyhow::Result<serde_json::Value> {
    let groups = (args.subscribers / 10).max(1);
    // Topics and how many subscriptions select each: groups first, then one
    // private topic per subscription.
    let mut topics: Vec<String> = (0..groups).map(|g| format!("group-{g}")).collect();
    let mut audience = vec![0u64; groups];
    let paths = (0..args.subscribers)
        .map(|i| {
            let user = format!("user-{i}");
            let path = path_for(args, &user);
            topics.push(user);
            audience.push(1);
            audience[i % groups] += 1;
            // The group as a second query parameter (a second `topic` for a
            // Mercure hub; Nchan multiplexes channels from distinct names).
            let group = format!("group-{}", i % groups);
            let sep = if path.contains('?') { '&' } else { '?' };
            format!(
                "{path}{sep}{}={}",
                args.group_param,
                percent_encoding::utf8_percent_encode(&group, QUERY_VALUE)
            )
        })
        .collect();
    let mut workers = Workers::spawn(args, paths, 0).await?;
    connect_all(&mut workers, args.subscribers).await?;
    let (target, seqs) = (target(args)?, Arc::new(Sequences::default()));
    let rate = *args.rates.first().unwrap_or(&100.0);
    let size = *args.payload.first().unwrap_or(&100);
    let line = step(
        args,
        &mut workers,
        &Load {
            target: &target,
            seqs: &seqs,
            topics: &topics,
            size,
            audience,
        },
        rate,
    )
    .await?;
    workers.quit().await;
    Ok(line)
}

async fn storm(args: &Args) -> anyhow::Result<serde_json::Value> {
    /// Longest wait for everyone to be back.
    const LIMIT: Duration = Duration::from_secs(60);
    let topic = "storm".to_string();
    let mut workers = crowd(args, &topic, args.subscribers, 0).await?;
    let (target, seqs) = (target(args)?, Arc::new(Sequences::default()));
    let rate = *args.rates.first().unwrap_or(&10.0);
    let size = *args.payload.first().unwrap_or(&100);
    // Publishing goes on until everyone is back (or the limit).
    let publishing = {
        let (target, seqs, topic) = (target.clone(), seqs.clone(), topic.clone());
        tokio::spawn(async move {
            publisher::run(
                &target,
                &seqs,
                &[topic],
                rate,
                LIMIT + Duration::from_secs(4),
                size,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (before, _) = workers.snapshot().await?;
    // Everyone drops at once and comes back with Last-Event-ID; recovered
    // means each has received the update published right after the drop.
    let goal = seqs.last(&topic) + 1;
    let t0 = Instant::now();
    workers.ask(&format!("reconnect {goal}")).await?;
    let pb = bar(args.subscribers as u64, "recovering");
    let recovered = loop {
        let t = workers.total().await?;
        pb.set_position(t.caught_up);
        if t.caught_up as usize >= args.subscribers || t0.elapsed() > LIMIT {
            break t.caught_up;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let recovery = (recovered as usize >= args.subscribers).then(|| t0.elapsed().as_secs_f64());
    pb.finish_and_clear();
    // A little more publishing after recovery, then stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    publishing.abort();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after, hist) = workers.snapshot().await?;
    workers.quit().await;
    let (gaps, dups) = (after.gaps - before.gaps, after.dups - before.dups);
    let published = seqs.last(&topic);
    match recovery {
        Some(s) => eprintln!("{}: storm of {}: all recovered in {s:.3} s, gaps {gaps}, dups {dups}, {published} publishes", args.label, args.subscribers),
        None => eprintln!("{}: storm of {}: only {recovered} recovered within {LIMIT:?}, gaps {gaps}, dups {dups}, {published} publishes", args.label, args.subscribers),
    }
    Ok(
        json!({ "recovery_s": recovery, "recovered": recovered, "gaps": gaps, "dups": dups, "published": published, "latency": latency(&hist) }),
    )
}

async fn slow(args: &Args) -> anyhow::Result<serde_json::Value> {
    let topic = "slow".to_string();
    let rate = *args.rates.first().unwrap_or(&100.0);
    let size = *args.payload.first().unwrap_or(&1024);
    let mut phases = serde_json::Map::new();
    for (name, stalled) in [("without_stalled", 0), ("with_stalled", args.stalled)] {
        let total = args.subscribers + stalled;
        let mut workers = crowd(args, &topic, total, stalled).await?;
        let (target, seqs) = (target(args)?, Arc::new(Sequences::default()));
        let rss_before: Sample = sample(&args.server_pid);
        let line = step(
            args,
            &mut workers,
            &Load::one_topic(&target, &seqs, &topic, size, args.subscribers),
            rate,
        )
        .await?;
        workers.quit().await;
        phases.insert(
            name.into(),
            json!({ "healthy": line, "rss_before_kib": rss_before.rss_kib }),
        );
    }
    Ok(serde_json::Value::Object(phases))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn every_subscribe_url_gets_workers() {
        // One URL: one worker per 15,000 subscriptions, as before.
        assert_eq!(worker_count(None, 6000, 1).unwrap(), 1);
        assert_eq!(worker_count(None, 20_000, 1).unwrap(), 2);
        assert_eq!(worker_count(Some(0), 6000, 1).unwrap(), 1);
        // Several: a multiple of the URLs, so each gets an equal share.
        assert_eq!(worker_count(None, 6000, 3).unwrap(), 3);
        assert_eq!(worker_count(None, 40_000, 3).unwrap(), 3);
        assert_eq!(worker_count(None, 50_000, 3).unwrap(), 6);
        assert_eq!(worker_count(Some(4), 6000, 3).unwrap(), 4);
        assert!(worker_count(Some(2), 6000, 3).is_err());
    }

    #[test]
    fn subscribe_urls_differ_only_in_node() {
        let ok = [
            "http://127.0.0.1:1/m?topic={topic}",
            "http://127.0.0.1:2/m?topic={topic}",
        ];
        assert!(check_sub_urls(&ok.map(String::from)).is_ok());
        let bad = [
            "http://127.0.0.1:1/m?topic={topic}",
            "http://127.0.0.1:2/n?topic={topic}",
        ];
        assert!(check_sub_urls(&bad.map(String::from)).is_err());
    }
}
