//! The command line: `ssehub serve`, `ssehub token`, `ssehub publish`,
//! `ssehub subscribe` and `ssehub completions`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod client;
mod completions;
mod help;
mod logging;
mod notify;
mod publish;
mod signals;
mod subscribe;
mod token;
mod ui;

use crate::auth::{parse_algorithm, Signer};
use crate::config::{defaults, Config, LogFormat, Options, Store};
use crate::keys::GENERATED_SECRET_FILE;
use crate::proto::claims::MercureClaim;
use crate::proto::selector::{MatchType, Matcher};
use crate::server::RunningHub;
use signals::Signals;
use token::{AccessTokenFields, Grant, TokenArgs};

/// A Server-Sent Events push hub speaking the Mercure protocol.
#[derive(Debug, Parser)]
#[command(name = "ssehub", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub.
    #[command(after_help = help::SERVE)]
    Serve {
        /// TOML file with settings (keys are the option names in snake_case).
        #[arg(long, env = "SSEHUB_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        options: Box<Options>,
    },
    /// Print a JWT signed with the configured key.
    #[command(after_help = help::TOKEN)]
    Token(Box<TokenArgs>),
    /// Publish an update to a hub and print its id.
    #[command(after_help = help::PUBLISH)]
    Publish(Box<publish::PublishArgs>),
    /// Follow a hub's updates and print them, reconnecting after drops.
    #[command(after_help = help::SUBSCRIBE)]
    Subscribe(Box<subscribe::SubscribeArgs>),
    /// Print a shell completion script.
    #[command(after_help = help::COMPLETIONS)]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The command line as parsed: [`Cli`], with every setting's default shown
/// in its help.
fn command() -> clap::Command {
    Cli::command().mut_subcommands(|sub| sub.mut_args(defaults::show))
}

/// Runs the command line; the exit code says whether it succeeded.
pub fn main() -> ExitCode {
    let cli = Cli::from_arg_matches(&command().get_matches())
        .unwrap_or_else(|e| e.format(&mut command()).exit());
    // Once JSON logging is set up, a fatal error is a JSON line too.
    let mut json_log = false;
    let result = match cli.command {
        Command::Serve { config, options } => (*options)
            .layered(config.as_deref())
            .and_then(Options::resolve)
            .map_err(anyhow::Error::from)
            .and_then(|config| {
                json_log = config.log.format == LogFormat::Json;
                logging::init(config.log.format);
                serve(config)
            }),
        Command::Token(args) => args.run().map(|t| println!("{t}")),
        Command::Publish(args) => args.run(),
        Command::Subscribe(args) => args.run(),
        Command::Completions { shell } => {
            completions::print(shell, &mut command());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json_log {
                tracing::error!("{e:#}");
            } else {
                eprintln!("ssehub: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs the hub until SIGTERM or SIGINT, then drains and shuts it down.
fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let running = crate::server::start(config).await?;
        let mut signals = Signals::install()?;
        print_banner(&running);
        ui::print_url(&running);
        notify::notify(notify::READY);
        signals.stop(running.tls.as_deref()).await;
        notify::notify(notify::STOPPING);
        drain(&running, &mut signals).await;
        tracing::info!(
            "shutting down: streams end, connections get {} to finish",
            humantime::format_duration(running.hub.config.server.shutdown_timeout)
        );
        running.shutdown().await;
        Ok(())
    })
}

/// Marks the hub as draining (`/readyz` answers 503) and, for
/// `--drain-delay`, keeps serving everything as before, so that load
/// balancers move new clients away before the listeners close. A second
/// SIGTERM or SIGINT ends the delay.
async fn drain(running: &RunningHub, signals: &mut Signals) {
    running.hub.drain();
    let delay = running.hub.config.server.drain_delay;
    if delay.is_zero() {
        return;
    }
    tracing::info!(
        "draining: /readyz answers 503, shutdown in {} or at the next SIGTERM",
        humantime::format_duration(delay)
    );
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = signals.stop(running.tls.as_deref()) => tracing::info!("second signal: draining cut short"),
    }
}

fn print_banner(running: &RunningHub) {
    let config = &running.hub.config;
    let url = format!("http://{}/.well-known/mercure", running.addr);
    println!(
        "ssehub {} listening on http://{}",
        env!("CARGO_PKG_VERSION"),
        running.addr
    );
    if let (Some(addr), Some(tls)) = (running.tls_addr, &running.tls) {
        let http3 = if config.server.http3 {
            ", HTTP/3 on UDP"
        } else {
            ""
        };
        println!("listening on https://{addr} (HTTP/2, HTTP/1.1{http3})");
        let origin = match &config.acme {
            Some(acme) => format!(
                "from {} for {}, renewed automatically",
                acme.directory,
                acme.domains.join(", ")
            ),
            None if tls.files().generated => {
                "self-signed for localhost, 127.0.0.1, ::1; reloaded on SIGHUP".into()
            }
            None => "configured; reloaded on SIGHUP".into(),
        };
        println!("certificate {} ({origin})", tls.files().cert.display());
        match tls.fingerprints() {
            Some(f) => {
                println!("  SHA-256 fingerprint {}", f.sha256);
                println!(
                    "  SPKI SHA-256 (base64) {}  (Chromium: --ignore-certificate-errors-spki-list=...)",
                    f.spki_sha256
                );
            }
            None => println!("  not obtained yet: HTTPS handshakes fail until it is"),
        }
    }
    if let Some(addr) = running.metrics_addr {
        println!("metrics on http://{addr}/metrics (Prometheus)");
    }
    match &config.history.store {
        Store::Redis(redis) => println!(
            "history: Redis stream {{{}}} at {}, last ~{} updates (shared by every node)",
            redis.stream,
            redis.redacted_url(),
            config.history.size
        ),
        Store::Memory => println!(
            "history: in memory (lost at restart), last {} updates",
            config.history.size
        ),
        Store::Disk => println!(
            "history: on disk in {}, last {} updates",
            config.data_dir.join("log").display(),
            config.history.size
        ),
    }
    let Some(secret) = running.keys.generated_secret() else {
        println!("hub URL: {url}");
        return;
    };
    let everything = Some(vec!["*".to_string()]);
    let signer = Signer::new(
        secret,
        parse_algorithm("HS256").expect("HS256 is supported"),
    )
    .expect("a generated secret is a valid HMAC key");
    let sign = |claim: MercureClaim| signer.sign(&claim, None);
    let publisher = sign(MercureClaim {
        publish: everything.clone(),
        subscribe: everything.clone(),
        payload: None,
    });
    let subscriber = sign(MercureClaim {
        subscribe: everything,
        ..MercureClaim::default()
    });
    let access_token = Grant {
        publish: Vec::new(),
        subscribe: vec![Matcher::new(MatchType::Exact, "*")],
        v1: Some(AccessTokenFields {
            issuer: config.protocol.issuer.clone(),
            audience: url.clone(),
            subject: "quick-start".into(),
        }),
        ttl: Some(Duration::from_secs(24 * 3600)),
        admin: false,
    };
    let secret = config.data_dir.join(GENERATED_SECRET_FILE);
    println!(
        "no JWT key configured: using the secret generated in {}",
        secret.display()
    );
    println!("publisher token (all topics, no expiry):\n  {publisher}");
    println!("publish:\n  curl -H 'Authorization: Bearer {publisher}' -d 'topic=https://example.com/demo' -d 'data=hello' {url}");
    println!(
        "subscribe (Mercure 0.x):\n  curl -N '{url}?topic=https://example.com/demo&authorization={subscriber}'"
    );
    if config
        .protocol
        .protocol
        .allows(crate::proto::generation::Generation::V1)
    {
        let subscriber = access_token.sign(&signer);
        println!(
            "subscribe (Mercure 1.0, token valid 24h):\n  curl -N -H 'Authorization: Bearer {subscriber}' '{url}?match=https://example.com/demo'"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flags whose `[default: ...]` describes what happens rather than
    /// giving a value.
    const DESCRIBED: [&str; 9] = [
        "tls-cert",
        "publisher-jwt-key",
        "subscriber-jwt-key",
        "subscriber-jwt-alg",
        "subscriber-jwks-url",
        "cors-origins",
        "publish-origins",
        "redis-ca-cert",
        "hub-url",
    ];

    /// The options of `ssehub serve ARGS…`.
    fn serve_options(args: &[&str]) -> Options {
        let line = [&["ssehub", "serve"][..], args].concat();
        let matches = command().try_get_matches_from(line).unwrap();
        match Cli::from_arg_matches(&matches).unwrap().command {
            Command::Serve { options, .. } => *options,
            _ => unreachable!("parsed serve"),
        }
    }

    #[test]
    fn a_pem_key_may_follow_its_flag() {
        let pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        let options = serve_options(&["--publisher-jwt-key", pem, "--subscriber-jwt-key", pem]);
        assert_eq!(options.keys.publisher_jwt_key.as_deref(), Some(pem));
        assert_eq!(options.keys.subscriber_jwt_key.as_deref(), Some(pem));
    }

    #[test]
    fn acme_domain_repeats_and_takes_lists() {
        let options = serve_options(&[
            "--acme-domain",
            "a.example",
            "--acme-domain",
            "b.example,c.example",
        ]);
        assert_eq!(
            options.acme.acme_domain.unwrap(),
            ["a.example", "b.example", "c.example"]
        );
    }

    #[test]
    fn every_default_in_help_is_what_config_resolves() {
        let defaults = format!("{:?}", Options::default().resolve().unwrap());
        let serve = command().find_subcommand("serve").unwrap().clone();
        let mut values = Vec::new();
        for arg in serve.get_arguments() {
            let flag = arg.get_long().unwrap();
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            let Some((_, shown)) = help.split_once("[default: ") else {
                continue;
            };
            let value = shown.strip_suffix(']').unwrap();
            if DESCRIBED.contains(&flag) {
                continue;
            }
            let given = serve_options(&[&format!("--{flag}"), value]).resolve();
            assert_eq!(
                format!("{:?}", given.unwrap()),
                defaults,
                "--{flag} {value}"
            );
            values.push(flag);
        }
        let all: Vec<&str> = defaults::ALL.iter().map(|s| s.flag).collect();
        assert_eq!(values, all, "every default is shown, once");
    }

    #[test]
    fn token_takes_only_the_key_settings() {
        let token = command().find_subcommand("token").unwrap().clone();
        let flags: Vec<&str> = token
            .get_arguments()
            .filter_map(|arg| arg.get_long())
            .collect();
        assert_eq!(
            flags,
            [
                "publish",
                "subscribe",
                "publish-pattern",
                "subscribe-pattern",
                "protocol",
                "issuer",
                "audience",
                "subject",
                "admin",
                "exp",
                "signing-key",
                "kid",
                "config",
                "data-dir",
                "publisher-jwt-key",
                "publisher-jwt-alg",
                "subscriber-jwt-key",
                "subscriber-jwt-alg",
            ]
        );
    }
}
