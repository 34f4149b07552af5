//! The worker processes behind a run: spawning `ssehub-bench worker`
//! children, sending them commands as lines on stdin, reading their JSON
//! reports from stdout, and summing the reports and latency histograms.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::args::Args;
use crate::output::bar;
use crate::wire::{decode_hist, ChurnSpec, H2Spec, Report, Spec};

/// Largest number of subscriptions one worker process holds (file limit).
const PER_WORKER: usize = 15_000;

/// One worker process and its pipes.
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
    h2: Option<H2Spec>,
}

impl Node {
    /// Resolves one subscribe URL and how to speak to it.
    async fn resolve(args: &Args, sub_url: &str) -> anyhow::Result<Node> {
        let url = reqwest::Url::parse(&sub_url.replace("{topic}", "x"))
            .with_context(|| format!("--sub-url {sub_url}"))?;
        let host = url.host_str().context("--sub-url host")?.to_string();
        let h2 = match (url.scheme(), args.h2_streams) {
            ("http", _) => None,
            ("https", Some(streams)) => {
                let ca = args
                    .ca_cert
                    .as_ref()
                    .context("--h2-streams needs --ca-cert")?;
                let ca_pem = std::fs::read_to_string(ca)
                    .with_context(|| format!("reading {}", ca.display()))?;
                Some(H2Spec {
                    streams,
                    open: args.h2_open,
                    server_name: host.clone(),
                    ca_pem,
                })
            }
            _ => bail!(
                "--sub-url {sub_url}: use http:// for HTTP/1.1, or https:// with --h2-streams N for HTTP/2"
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

/// The worker processes of a run, asked together.
pub(crate) struct Workers(Vec<Worker>);

impl Workers {
    /// Spawns the workers for `paths` (one subscription each; the first
    /// `stalled` never read), spread over the subscribe URLs.
    pub(crate) async fn spawn(
        args: &Args,
        paths: Vec<String>,
        stalled: usize,
    ) -> anyhow::Result<Workers> {
        Workers::launch(args, paths, stalled, None).await
    }

    /// Spawns the workers for `paths`, each also ready to open its share of
    /// `churn` (whose rate is for all workers together) when told `churn`.
    pub(crate) async fn spawn_churning(
        args: &Args,
        paths: Vec<String>,
        churn: &ChurnSpec,
    ) -> anyhow::Result<Workers> {
        Workers::launch(args, paths, 0, Some(churn)).await
    }

    /// Spawns the workers, each with its share of the churn if any.
    async fn launch(
        args: &Args,
        paths: Vec<String>,
        stalled: usize,
        churn: Option<&ChurnSpec>,
    ) -> anyhow::Result<Workers> {
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
                headers: args
                    .sub_headers
                    .iter()
                    .cloned()
                    .chain(
                        args.accept_encoding
                            .iter()
                            .map(|c| format!("Accept-Encoding: {c}")),
                    )
                    .collect(),
                sources: args.sources.0.clone(),
                connect_rate: u32::try_from(count).map_or(1, |n| (args.connect_rate / n).max(1)),
                stalled: if w == 0 { stalled } else { 0 },
                h2: node.h2.clone(),
                churn: churn.map(|c| ChurnSpec {
                    rate: c.rate / count as f64,
                    ..c.clone()
                }),
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
    pub(crate) async fn ask(&mut self, command: &str) -> anyhow::Result<Vec<Report>> {
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

    /// Totals over every worker.
    pub(crate) async fn total(&mut self) -> anyhow::Result<Report> {
        Ok(sum(&self.ask("report").await?))
    }

    /// Totals and the merged latency histogram since the last snapshot.
    pub(crate) async fn snapshot(&mut self) -> anyhow::Result<(Report, Histogram<u64>)> {
        let reports = self.ask("snapshot").await?;
        let mut hist = decode_hist("");
        for r in &reports {
            hist.add(decode_hist(&r.hist)).expect("same bounds");
        }
        Ok((sum(&reports), hist))
    }

    /// This process and its workers: the load tool's own processes, whose
    /// CPU time says whether it kept up or was the bottleneck.
    pub(crate) fn pids(&self) -> Vec<u32> {
        std::iter::once(std::process::id())
            .chain(self.0.iter().filter_map(|w| w.child.id()))
            .collect()
    }

    /// Tells every worker to quit and waits (bounded) for it to exit.
    pub(crate) async fn quit(mut self) {
        let _ = self.ask("quit").await;
        for w in &mut self.0 {
            let _ = tokio::time::timeout(Duration::from_secs(2), w.child.wait()).await;
        }
    }
}

/// Sums reports (without their histograms).
fn sum(reports: &[Report]) -> Report {
    reports.iter().fold(Report::default(), |a, r| Report {
        connected: a.connected + r.connected,
        failed: a.failed + r.failed,
        received: a.received + r.received,
        gaps: a.gaps + r.gaps,
        dups: a.dups + r.dups,
        caught_up: a.caught_up + r.caught_up,
        body_bytes: a.body_bytes + r.body_bytes,
        decoded_bytes: a.decoded_bytes + r.decoded_bytes,
        churn: a.churn + r.churn,
        hist: String::new(),
    })
}

/// Waits until `want` subscriptions are connected, with a progress bar.
pub(crate) async fn connect_all(workers: &mut Workers, want: usize) -> anyhow::Result<f64> {
    let pb = bar(want as u64, "connecting");
    let started = Instant::now();
    let mut last_progress = (0, Instant::now());
    loop {
        let t = workers.total().await?;
        pb.set_position(t.connected);
        pb.set_message(format!("{} failed", t.failed));
        if usize::try_from(t.connected).is_ok_and(|n| n >= want) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
