//! `ssehub-bench`: an honest load tool for SSE hubs (ssehub, Nchan, or the
//! floor writer), measuring connections, memory, fan-out and latency.
//!
//! It opens N subscriptions spread over worker processes (one process may
//! hold at most ~18,000 sockets here) and source addresses in 127.0.0.0/8,
//! publishes numbered, timestamped payloads, checks every subscription
//! receives each message exactly once and in order, and reports latency
//! percentiles, deliveries per second, and the server's memory and CPU.

mod floor;
mod h2_client;
mod http1;
mod payload;
mod proc_stats;
mod publisher;
mod replay;
mod scenario;
mod worker;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Load tool for SSE hubs.
#[derive(Debug, Parser)]
#[command(name = "ssehub-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario against a hub.
    Run(Box<scenario::Args>),
    /// Run the floor: a bare SSE writer to compare hubs against.
    Floor {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: SocketAddr,
        /// Frames a slow subscriber may fall behind before it is dropped.
        #[arg(long, default_value_t = 1024)]
        queue: usize,
    },
    /// Measure one reconnecting client's replay: time to the response
    /// headers, to the first replayed event, and to the last of N events.
    Replay(replay::Args),
    /// Internal: a worker process (spawned by `run`; its spec is the first line on stdin).
    #[command(hide = true)]
    Worker,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    };
    match cli.command {
        Command::Run(args) => match runtime().block_on(scenario::run(*args)) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ssehub-bench: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Replay(args) => match runtime().block_on(replay::run(args)) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ssehub-bench: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Floor { listen, queue } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            if let Err(e) = rt.block_on(floor::run(listen, queue)) {
                eprintln!("floor: {e}");
                return std::process::ExitCode::FAILURE;
            }
            std::process::ExitCode::SUCCESS
        }
        Command::Worker => {
            runtime().block_on(worker::run());
            std::process::ExitCode::SUCCESS
        }
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

/// Where results go.
fn write_json(path: Option<&PathBuf>, value: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    match path {
        Some(p) => std::fs::write(p, text)?,
        None => println!("{text}"),
    }
    Ok(())
}
