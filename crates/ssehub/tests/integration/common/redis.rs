//! A real `redis-server` (the Debian package) as a child process on a free
//! loopback port, with its own directory and persistence on (append-only
//! file, fsync at every write), killed on drop. It can be stopped (SIGTERM
//! or SIGKILL) and started again on the same port and directory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::child::{free_addr, Proc};

/// Bound on a start (including loading the append-only file) and a stop.
const WAIT: Duration = Duration::from_secs(10);

/// The `redis-server` executable: `$REDIS_SERVER`, else the first one on
/// `PATH`, else `/usr/bin/redis-server`. Panics (the tests need it, they
/// never skip) when there is none.
pub(crate) fn redis_server_path() -> PathBuf {
    if let Some(path) = std::env::var_os("REDIS_SERVER") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "REDIS_SERVER={} is not a file",
            path.display()
        );
        return path;
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path_var)
        .map(|dir| dir.join("redis-server"))
        .chain([PathBuf::from("/usr/bin/redis-server")])
        .find(|p| p.is_file());
    match found {
        Some(path) => path,
        None => panic!(
            "redis-server not found (on PATH or /usr/bin): the cluster tests need a real Redis; \
             install the Debian package (`apt-get install redis-server`, or scripts/install-deps.sh)"
        ),
    }
}

/// A `redis-server` child; killed on drop.
pub(crate) struct Redis {
    proc: Option<Proc>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl Redis {
    /// Starts a server on a free loopback port with a fresh directory and
    /// waits until it answers `PING`. The port comes from [`free_addr`], so
    /// another process may take it first: then another port is tried.
    pub(crate) fn start() -> Redis {
        Self::start_with(&[])
    }

    /// [`Redis::start`] with more `redis-server` arguments (TLS, cluster
    /// mode), which a restart keeps.
    pub(crate) fn start_with(extra: &[&str]) -> Redis {
        let mut dir = tempfile::tempdir().unwrap();
        let mut attempt = 1;
        loop {
            let addr = free_addr();
            let mut redis = Redis {
                proc: None,
                addr,
                dir,
                extra: extra.iter().map(|a| a.to_string()).collect(),
            };
            match redis.spawn_and_wait() {
                Ok(()) => return redis,
                Err(output) if output.contains("in use") && attempt < 3 => {
                    attempt += 1;
                    dir = redis.take_dir();
                }
                Err(output) => panic!("redis-server did not start on {addr}:\n{output}"),
            }
        }
    }

    fn take_dir(self) -> tempfile::TempDir {
        let Redis { proc, dir, .. } = self;
        drop(proc);
        dir
    }

    /// Starts the server again on the same port and directory (after
    /// [`Redis::stop`] or [`Redis::kill_9`]); it loads its append-only file.
    pub(crate) fn restart(&mut self) {
        assert!(!self.is_running(), "redis-server is still running");
        if let Err(output) = self.spawn_and_wait() {
            panic!(
                "redis-server did not start again on {}:\n{output}",
                self.addr
            );
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let port = self.addr.port().to_string();
        let mut cmd = Command::new(redis_server_path());
        cmd.args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--dir",
            self.dir.path().to_str().unwrap(),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            "",
        ])
        .args(&self.extra)
        .current_dir(self.dir.path());
        let mut proc = Proc::spawn(cmd);
        let deadline = Instant::now() + WAIT;
        loop {
            if proc.try_exit().is_some() {
                return Err(format!(
                    "stdout:\n{}\nstderr:\n{}",
                    proc.stdout(),
                    proc.stderr()
                ));
            }
            if ping(self.addr) {
                self.proc = Some(proc);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no PONG within {WAIT:?}\nstdout:\n{}\nstderr:\n{}",
                    proc.stdout(),
                    proc.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// A client connection, for looking at what the hub stored.
    pub(crate) async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether a started server has not exited.
    pub(crate) fn is_running(&mut self) -> bool {
        match &mut self.proc {
            Some(proc) => proc.try_exit().is_none(),
            None => false,
        }
    }

    /// SIGTERM (Redis flushes and exits), then waits for the exit.
    pub(crate) fn stop(&mut self) {
        let mut proc = self.proc.take().expect("redis-server is not running");
        proc.stop(WAIT);
    }

    /// SIGKILL, then reaps the process.
    pub(crate) fn kill_9(&mut self) {
        let mut proc = self.proc.take().expect("redis-server is not running");
        proc.kill_9();
    }

    /// What the server printed (it logs to stdout).
    pub(crate) fn log(&self) -> String {
        self.proc.as_ref().map(|p| p.stdout()).unwrap_or_default()
    }
}

/// Whether a Redis server on `addr` answers `PING` with `+PONG` (not
/// `-LOADING` while it reads its append-only file).
pub(crate) fn ping(addr: SocketAddr) -> bool {
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
    if conn.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got == b"+PONG\r\n"
}
