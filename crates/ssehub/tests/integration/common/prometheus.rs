//! A real Prometheus (Debian's `prometheus` binary) as a child process,
//! scraping one target every second, with its storage in a temporary
//! directory; asked with PromQL over its HTTP API.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::child::{free_addr, Proc};

/// Where Debian installs it (`scripts/install-deps.sh`).
const BIN: &str = "/usr/bin/prometheus";
/// How long Prometheus may take to open its storage and start serving.
const READY: Duration = Duration::from_secs(30);

/// A running Prometheus; killed on drop.
pub(crate) struct Prometheus {
    proc: Proc,
    api: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target`'s `/metrics` every second, once
    /// it answers ready. Fails (never skips) when the binary is missing.
    pub(crate) async fn scraping(target: SocketAddr) -> Prometheus {
        assert!(
            std::path::Path::new(BIN).exists(),
            "{BIN} is missing: install Debian's prometheus package (scripts/install-deps.sh)"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: ssehub\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut attempt = 1;
        loop {
            // A free port may be taken by another process before Prometheus
            // binds it: it then exits, and another port is tried.
            let listen = free_addr();
            let mut cmd = Command::new(BIN);
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={listen}"))
                .current_dir(dir.path());
            let mut proc = Proc::spawn(cmd);
            let api = format!("http://{listen}");
            let deadline = tokio::time::Instant::now() + READY;
            loop {
                let ready = http.get(format!("{api}/-/ready")).send().await;
                if ready.is_ok_and(|r| r.status().is_success()) {
                    return Prometheus {
                        proc,
                        api,
                        http,
                        _dir: dir,
                    };
                }
                if let Some(status) = proc.try_exit() {
                    let stderr = proc.stderr();
                    assert!(
                        stderr.contains("address already in use") && attempt < 3,
                        "prometheus exited ({status}):\n{stderr}"
                    );
                    attempt += 1;
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "prometheus not ready within {READY:?}:\n{}",
                    proc.stderr()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The samples of an instant PromQL query: each series' labels and value.
    pub(crate) async fn query(&self, promql: &str) -> Vec<(Value, f64)> {
        let res: Value = self
            .http
            .get(format!("{}/api/v1/query", self.api))
            .query(&[("query", promql)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(res["status"], "success", "{promql}: {res}");
        res["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{promql}: not a vector: {res}"))
            .iter()
            .map(|sample| {
                let value = sample["value"][1].as_str().unwrap().parse().unwrap();
                (sample["metric"].clone(), value)
            })
            .collect()
    }

    /// The value of a query that yields exactly one sample.
    pub(crate) async fn value(&self, promql: &str) -> f64 {
        let samples = self.query(promql).await;
        assert_eq!(samples.len(), 1, "{promql}: {samples:?}");
        samples[0].1
    }

    /// Waits (bounded) until Prometheus holds a sample of `metric` scraped
    /// after Unix time `after` (seconds).
    pub(crate) async fn wait_scrape_after(&self, metric: &str, after: f64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let samples = self.query(&format!("timestamp({metric})")).await;
            if samples.iter().any(|(_, t)| *t > after) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no scrape of {metric} after {after} within 30 s: {samples:?}\n{}",
                self.proc.stderr()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
