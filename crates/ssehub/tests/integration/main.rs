//! The integration tests of `ssehub`, in one test binary (one link of the
//! library): hubs started in this process, the `ssehub` binary and
//! `redis-server` as child processes, all spoken to over loopback sockets,
//! and the deployment files checked by `systemd-analyze` and `promtool`.
//!
//! Every test runs in a thread of this one process, in parallel with the
//! others: each takes free ports (bound to port 0, or found free just
//! before a child binds them), its own temporary directories and its
//! own tokio runtime, and sets no environment variable of the process
//! (children get theirs on their command). The heavy ones (cluster, crash)
//! wait for [`common::heavy`], so that a few at most run at once whatever
//! `--test-threads` says.

mod common;

mod acme;
mod alert_rules;
mod auth;
mod cli;
mod cli_client;
mod cluster;
mod compression;
mod crash;
mod disk;
mod fuzz_corpus;
mod health;
mod jwks;
mod limits;
mod logs;
mod matched;
mod mercure_v1;
mod metrics;
mod mixed;
mod properties;
mod publish;
mod redis_store;
mod resume_by_time;
mod subscribe;
mod systemd;
mod tls;
mod ui;
mod wire;
