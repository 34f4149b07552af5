//! The systemd unit (`deploy/systemd/ssehub.service`): accepted by
//! `systemd-analyze verify` with no warning, sandboxed enough for
//! `systemd-analyze security`, stopping later than the hub's own shutdown
//! bound; and the hub's `Type=notify` messages, received on a socket as
//! systemd would.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;

use ssehub::config::{defaults, HumanDuration};

use crate::common::child::BIN;
use crate::common::child_hub::ChildHub;
use crate::common::remote::READY;
use crate::common::tool::{printed, repo_path, run};
use crate::common::SECRET;

/// Where the unit expects the binary.
const INSTALLED_BIN: &str = "/usr/local/bin/ssehub";

/// The unit file as shipped.
fn unit() -> String {
    std::fs::read_to_string(repo_path("deploy/systemd/ssehub.service")).unwrap()
}

/// The unit in `dir` with its binary replaced by the one under test:
/// `verify` checks that `ExecStart`'s program exists.
fn unit_here(dir: &Path) -> String {
    let unit = unit();
    assert!(
        unit.contains(&format!("ExecStart={INSTALLED_BIN} serve ")),
        "ExecStart runs {INSTALLED_BIN} serve"
    );
    let path = dir.join("ssehub.service");
    std::fs::write(&path, unit.replace(INSTALLED_BIN, BIN)).unwrap();
    path.to_str().unwrap().to_string()
}

/// `systemd-analyze ARGS…`.
fn systemd_analyze(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(args);
    run(cmd, "systemd")
}

#[test]
fn the_unit_passes_systemd_analyze_verify_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_here(dir.path());
    let output = systemd_analyze(&["verify", &unit]);
    let text = printed(&output);
    assert!(output.status.success(), "systemd-analyze verify:\n{text}");
    assert_eq!(text, "", "systemd-analyze verify warned");
}

#[test]
fn the_unit_is_sandboxed() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_here(dir.path());
    // Exposure is rated 0.0 to 10.0; the threshold is ten times it. 2.0 is
    // "OK" (the unit rates 1.2): dropping a major directive goes above.
    let output = systemd_analyze(&["security", "--offline=yes", "--threshold=20", &unit]);
    assert!(
        output.status.success(),
        "systemd-analyze security:\n{}",
        printed(&output)
    );
}

#[test]
fn systemd_waits_longer_than_the_hub_drains_and_shuts_down() {
    let unit = unit();
    let value = |key: &str| -> String {
        let prefix = format!("{key}=");
        let found: Vec<&str> = unit
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .collect();
        assert_eq!(found.len(), 1, "one {key} line");
        found[0].to_string()
    };
    assert_eq!(value("KillSignal"), "SIGTERM");
    assert_eq!(value("Type"), "notify");
    let stop: HumanDuration = value("TimeoutStopSec").parse().unwrap();
    let bound: HumanDuration = defaults::SHUTDOWN_TIMEOUT.default.parse().unwrap();
    let drain: HumanDuration = defaults::DRAIN_DELAY.default.parse().unwrap();
    assert!(
        stop.0 > bound.0 + drain.0,
        "TimeoutStopSec {stop:?} leaves the hub its drain and shutdown ({drain:?} + {bound:?})"
    );
}

#[tokio::test]
async fn the_hub_notifies_systemd_when_ready_and_when_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(READY)).unwrap();
    let receive = || {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).expect("a notification within READY");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut hub = ChildHub::start(
        dir.path(),
        &["--publisher-jwt-key", SECRET, "--tls-listen", "none"],
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    )
    .await;
    assert_eq!(receive(), "READY=1", "once serving");
    let status = hub.stop(READY);
    assert!(status.success(), "{status}\n{}", hub.stderr());
    assert_eq!(receive(), "STOPPING=1", "at SIGTERM");
    // The hub has exited: whatever it sent is queued already.
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 256];
    let after = socket.recv(&mut buf).map(|n| buf[..n].to_vec());
    assert_eq!(
        after.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "nothing else"
    );
}
