//! The integration tests of `ssehub`, in one test binary (one link of the
//! library): hubs started in this process, the `ssehub` binary and
//! `redis-server` as child processes, all spoken to over loopback sockets.

mod common;

mod auth;
mod cli;
mod cluster;
mod crash;
mod disk;
mod publish;
mod redis_store;
mod subscribe;
mod tls;
