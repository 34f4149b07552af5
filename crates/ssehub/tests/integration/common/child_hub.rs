//! `ssehub serve` as a child process on a loopback port: started once it
//! listens (on a free port, tried again if another process took it first),
//! its `/readyz` polled, and publishing to it with a token.

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::time::Instant;

use super::child::{command, free_addr, tail, Proc};
use super::remote::{client, client_with, hub_url, post_form, READY};

/// The readiness probe: 200 when the hub should be sent clients.
const READYZ: &str = "/readyz";

/// A `serve` child listening on `addr`; killed (SIGKILL) on drop. Its
/// [`Proc`] methods (output, signals, exit) are reached through it.
pub(crate) struct ChildHub {
    proc: Proc,
    /// Where it listens for plain HTTP.
    pub(crate) addr: SocketAddr,
}

impl Deref for ChildHub {
    type Target = Proc;

    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl DerefMut for ChildHub {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

impl ChildHub {
    /// `serve --listen ADDR ARGS…` in `cwd` on a free port with `env` set,
    /// once `GET /readyz` answers 200 `ok` (see [`ChildHub::listening`]).
    pub(crate) async fn start(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> ChildHub {
        let mut hub = Self::listening(cwd, args, env).await;
        hub.assert_ready().await;
        hub
    }

    /// `serve --listen ADDR ARGS…` in `cwd` on a free port with `env` set,
    /// once it printed its banner (so the port is its own), whatever its
    /// readiness. The port comes from [`free_addr`], so another process may
    /// take it first: then the hub says it cannot listen, and a new port is
    /// tried.
    pub(crate) async fn listening(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> ChildHub {
        let mut attempt = 1;
        loop {
            let addr = free_addr();
            let listen = addr.to_string();
            let mut cmd = command(cwd, &[&["serve", "--listen", &listen][..], args].concat());
            cmd.envs(env.iter().copied());
            match Self::spawn(cmd, addr).await {
                Ok(hub) => return hub,
                Err(output) if output.contains("cannot listen") && attempt < 3 => attempt += 1,
                Err(output) => panic!("ssehub did not start on {addr}:\n{output}"),
            }
        }
    }

    /// Runs `cmd`, configured (by flags, environment or file) to listen on
    /// `addr`, once `GET /readyz` answers 200 `ok`.
    pub(crate) async fn serve(cmd: Command, addr: SocketAddr) -> ChildHub {
        let mut hub = Self::spawn(cmd, addr)
            .await
            .unwrap_or_else(|output| panic!("ssehub did not start on {addr}:\n{output}"));
        hub.assert_ready().await;
        hub
    }

    /// Runs `cmd`, configured to listen on `addr`, once it printed its
    /// banner; `Err(output)` if it exits first.
    pub(crate) async fn spawn(cmd: Command, addr: SocketAddr) -> Result<ChildHub, String> {
        let mut hub = ChildHub {
            proc: Proc::spawn(cmd),
            addr,
        };
        let banner = format!("listening on http://{addr}");
        let deadline = Instant::now() + READY;
        loop {
            let exited = hub.try_exit();
            let out = hub.stdout();
            if let Some(status) = exited {
                return Err(format!(
                    "exited ({status})\nstdout:\n{out}\nstderr:\n{}",
                    hub.stderr()
                ));
            }
            if out.contains(&banner) {
                return Ok(hub);
            }
            assert!(
                Instant::now() < deadline,
                "no {banner:?} within {READY:?}\nstdout:\n{out}\nstderr:\n{}",
                hub.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Where it listens for HTTPS (TCP, and UDP for HTTP/3), as its banner
    /// says (started without `--tls-listen`, it takes a free port).
    pub(crate) fn tls_addr(&mut self) -> SocketAddr {
        let out = self.wait_stdout("listening on https://", READY);
        out.split("listening on https://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no HTTPS address in {out:?}"))
    }

    /// `http://ADDR`.
    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The hub URL.
    pub(crate) fn url(&self) -> String {
        hub_url(self.addr)
    }

    /// Asserts `/readyz` answers 200 `ok` as soon as it answers.
    async fn assert_ready(&mut self) {
        let (status, body) = self.readiness().await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "ok\n"),
            "/readyz on {}\nstderr:\n{}",
            self.addr,
            self.stderr()
        );
    }

    /// `GET /readyz` once it answers at all: status and body; panics if
    /// the child exits, or after [`READY`].
    pub(crate) async fn readiness(&mut self) -> (StatusCode, String) {
        let deadline = Instant::now() + READY;
        loop {
            if let Some(status) = self.try_exit() {
                panic!(
                    "ssehub exited ({status}) instead of serving on {}\nstderr:\n{}",
                    self.addr,
                    self.stderr()
                );
            }
            if let Some(answer) = self.get(READYZ).await {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "{READYZ} on {} did not answer within {READY:?}\nstderr:\n{}",
                self.addr,
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One `GET path`: status and body, or `None` if it did not answer.
    pub(crate) async fn get(&self, path: &str) -> Option<(StatusCode, String)> {
        let res = client_with(Duration::from_secs(2))
            .get(format!("{}{path}", self.base()))
            .send()
            .await
            .ok()?;
        let status = res.status();
        Some((status, res.text().await.ok()?))
    }

    /// Polls `/readyz` until it answers `want`; its body then; panics
    /// after `wait`.
    pub(crate) async fn wait_ready(&self, want: StatusCode, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        let mut last = None;
        loop {
            let got = self.get(READYZ).await;
            if let Some((status, body)) = &got {
                if *status == want {
                    return body.clone();
                }
            }
            last = got.or(last);
            assert!(
                Instant::now() < deadline,
                "{}: {READYZ} not {want} within {wait:?} (last answer {last:?})\nstderr:\n{}",
                self.addr,
                tail(&self.stderr(), 4000)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Publishes `form` with `token`; asserts 200 and returns the id.
    pub(crate) async fn publish_ok(&self, token: &str, form: &[(&str, &str)]) -> String {
        match post_form(&client(), &self.url(), Some(token), form).await {
            Ok((StatusCode::OK, id)) => {
                assert!(!id.is_empty(), "empty id for {form:?}");
                id
            }
            Ok((status, body)) => panic!(
                "publish of {form:?} on {} refused: {status} {body}\nstderr:\n{}",
                self.addr,
                tail(&self.stderr(), 3000)
            ),
            Err(e) => panic!(
                "publish of {form:?} on {}: {e}\nstderr:\n{}",
                self.addr,
                tail(&self.stderr(), 3000)
            ),
        }
    }
}
