//! The `ssehub` binary as a child process: its stdout and stderr collected
//! by two threads, waits for text and for the exit, signals, and a kill on
//! drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The compiled binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_ssehub");

/// Ports handed out by [`free_addr`]: below the ephemeral range
/// (32768-60999), so no outgoing connection or `:0` listener of any test
/// can take one between its release and its use (a hub restarted on the
/// same ports included).
const FREE_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A free port on 127.0.0.1 for TCP and UDP (HTTP/3 shares the TLS port),
/// never handed out twice by this process.
pub(crate) fn free_addr() -> SocketAddr {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let span = u32::from(FREE_PORTS.end - FREE_PORTS.start);
    // Each test process starts at its own place in the range.
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let step = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = FREE_PORTS.start + u16::try_from((start + step) % span).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if TcpListener::bind(addr).is_ok() && std::net::UdpSocket::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free port in {FREE_PORTS:?}");
}

/// A command for the binary in `cwd` with no `SSEHUB_*`/`MERCURE_*`
/// variable inherited, and its HTTPS and metrics listeners (if it serves)
/// on free ports: tests running at once must not all take the default
/// ports 8443 and 9464.
pub(crate) fn command(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(cwd);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("SSEHUB_") || name.starts_with("MERCURE_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("SSEHUB_TLS_LISTEN", "127.0.0.1:0");
    cmd.env("SSEHUB_METRICS_LISTEN", "127.0.0.1:0");
    cmd
}

/// The last `n` characters of `s` (a child's output, for a failure message).
pub(crate) fn tail(s: &str, n: usize) -> &str {
    let count = s.chars().count();
    match s.char_indices().nth(count.saturating_sub(n)) {
        Some((i, _)) => &s[i..],
        None => s,
    }
}

/// A running child whose output is collected by two threads; killed on drop.
pub(crate) struct Proc {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    /// Spawns `cmd` with no stdin and both outputs collected.
    pub(crate) fn spawn(cmd: Command) -> Proc {
        Self::spawn_with(cmd, Stdio::null())
    }

    /// Spawns `cmd` with `input` on its stdin (then closed) and both
    /// outputs collected.
    pub(crate) fn spawn_fed(cmd: Command, input: &[u8]) -> Proc {
        let mut proc = Self::spawn_with(cmd, Stdio::piped());
        let mut stdin = proc.child.stdin.take().unwrap();
        stdin
            .write_all(input)
            .expect("writing to the child's stdin");
        proc
    }

    fn spawn_with(mut cmd: Command, stdin: Stdio) -> Proc {
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning ssehub");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Proc {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory, in KiB (`VmRSS` of `/proc/PID/status`).
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Everything printed on stdout so far.
    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything printed on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The exit status if the child has ended (then all its output is
    /// collected), without waiting.
    pub(crate) fn try_exit(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().unwrap()?;
        // The pipes close with the process: let the readers finish.
        self.join_readers();
        Some(status)
    }

    /// The exit status if the child ended within `wait`.
    pub(crate) fn wait_exit(&mut self, wait: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM.
    pub(crate) fn terminate(&self) {
        self.signal("-TERM");
    }

    /// SIGTERM, then the exit status; panics with the output if the child
    /// still runs after `wait`.
    pub(crate) fn stop(&mut self, wait: Duration) -> ExitStatus {
        self.terminate();
        self.wait_exit(wait).unwrap_or_else(|| {
            panic!(
                "still running {wait:?} after SIGTERM\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            )
        })
    }

    /// Sends a signal, e.g. `-HUP`.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal} {} failed", self.pid());
    }

    /// SIGKILL, then reaps the process and collects the rest of its output.
    pub(crate) fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping ssehub");
        self.join_readers();
    }

    /// Waits until `text` appears on stderr; panics with the output after `wait`.
    pub(crate) fn wait_stderr(&self, text: &str, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        loop {
            let err = self.stderr();
            if err.contains(text) {
                return err;
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} on stderr within {wait:?}:\n{err}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `text` appears on stdout; panics with the output if the
    /// child exits first or after `wait`.
    pub(crate) fn wait_stdout(&mut self, text: &str, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        loop {
            let out = self.stdout();
            if out.contains(text) {
                return out;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "ssehub exited ({status}) before printing {text:?}\nstdout:\n{out}\nstderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} on stdout within {wait:?}\nstdout:\n{out}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Appends what `pipe` yields to `into` until it closes.
fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    })
}
