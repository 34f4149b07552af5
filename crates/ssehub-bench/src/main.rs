//! `ssehub-bench`: an honest load tool for SSE hubs (ssehub, Nchan, or the
//! floor writer), measuring connections, memory, fan-out and latency.
//!
//! It opens N subscriptions spread over worker processes (one process may
//! hold at most ~18,000 sockets here) and source addresses in 127.0.0.0/8,
//! publishes numbered, timestamped payloads, checks every subscription
//! receives each message exactly once and in order, and reports latency
//! percentiles, deliveries per second, and the server's memory and CPU.

mod args;
mod churn;
mod decode;
mod floor;
mod h1_client;
mod h2_client;
mod http1;
mod orchestrator;
mod output;
mod payload;
mod proc_stats;
mod publisher;
mod replay;
mod scenario;
mod tracking;
mod wire;
mod worker;

use std::net::SocketAddr;

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
    Run(Box<args::Args>),
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
