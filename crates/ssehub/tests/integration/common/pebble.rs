//! Pebble, Let's Encrypt's ACME test server (the Debian package `pebble`),
//! as child processes on free loopback ports: `pebble` itself, serving its
//! directory over HTTPS with a certificate from a private CA made here,
//! and `pebble-challtestsrv` as its DNS server, answering 127.0.0.1 for
//! every name. Pebble validates challenges on the ports it is given: the
//! hub's plain port (HTTP-01) and TLS port (TLS-ALPN-01). Killed on drop.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::child::{free_addr, Proc};
use super::keys::private_ca;

/// Bound on a start.
const WAIT: Duration = Duration::from_secs(20);

/// A running Pebble and its DNS server.
pub(crate) struct Pebble {
    /// The ACME directory URL.
    pub(crate) directory: String,
    /// The CA of Pebble's own HTTPS certificate (`--acme-ca-cert`).
    pub(crate) ca_cert: PathBuf,
    listen: SocketAddr,
    management: SocketAddr,
    dns: SocketAddr,
    config: PathBuf,
    pebble: Option<Proc>,
    _dns: Proc,
    _dir: tempfile::TempDir,
}

/// The hub's ports Pebble validates challenges on, and how long the
/// certificates it issues are valid.
pub(crate) struct Validation {
    pub(crate) http_port: u16,
    pub(crate) tls_port: u16,
    pub(crate) certificate_lifetime: Option<Duration>,
}

impl Pebble {
    /// Starts the DNS server and Pebble and waits until both listen.
    pub(crate) fn start(validation: &Validation) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let [ca_cert, cert, key] = private_ca(dir.path());
        let dns = free_addr();
        let dns_management = free_addr();
        let mut challtestsrv = Command::new(executable("pebble-challtestsrv"));
        challtestsrv.args([
            "-dns01",
            &dns.to_string(),
            "-management",
            &dns_management.to_string(),
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
        ]);
        let dns_proc = Proc::spawn(challtestsrv);
        wait_listening(dns_management, &dns_proc);
        let listen = free_addr();
        let management = free_addr();
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": listen.to_string(),
                "managementListenAddress": management.to_string(),
                "certificate": cert,
                "privateKey": key,
                "httpPort": validation.http_port,
                "tlsPort": validation.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        if let Some(lifetime) = validation.certificate_lifetime {
            config["pebble"]["certificateValidityPeriod"] = lifetime.as_secs().into();
        }
        let config_path = dir.path().join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut pebble = Pebble {
            directory: format!("https://{listen}/dir"),
            ca_cert: PathBuf::from(ca_cert),
            listen,
            management,
            dns,
            config: config_path,
            pebble: None,
            _dns: dns_proc,
            _dir: dir,
        };
        pebble.restart();
        pebble
    }

    /// Starts Pebble (again, after [`Pebble::kill`]) on the same addresses,
    /// and waits until it listens. It forgets everything between runs:
    /// accounts, orders, and its root, which is new.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let mut pebble = Command::new(executable("pebble"));
        pebble
            .args(["-config", self.config.to_str().unwrap()])
            .args(["-dnsserver", &self.dns.to_string()])
            // No random sleep before validating, no nonce rejected at
            // random, no authorization reused: every order is validated.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0");
        let pebble = Proc::spawn(pebble);
        wait_listening(self.listen, &pebble);
        wait_listening(self.management, &pebble);
        self.pebble = Some(pebble);
    }

    /// The root Pebble signs its chains with, as PEM (new at each start).
    pub(crate) async fn root(&self) -> Vec<u8> {
        let ca = std::fs::read(&self.ca_cert).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .tls_built_in_root_certs(false)
            .build()
            .unwrap();
        let url = format!("https://{}/roots/0", self.management);
        let response = client.get(url).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.bytes().await.unwrap().to_vec()
    }

    /// Kills Pebble (its DNS server stays): orders fail from now on.
    pub(crate) fn kill(&mut self) {
        if let Some(mut pebble) = self.pebble.take() {
            pebble.kill_9();
        }
    }

    /// Pebble's output so far, for a failure message.
    pub(crate) fn output(&self) -> String {
        self.pebble
            .as_ref()
            .map(|p| format!("{}{}", p.stdout(), p.stderr()))
            .unwrap_or_default()
    }
}

/// `name` in /usr/bin (the Debian package), which the tests need.
fn executable(name: &str) -> PathBuf {
    let path = Path::new("/usr/bin").join(name);
    assert!(
        path.is_file(),
        "{} not found: the ACME tests need Pebble; install the Debian package \
         (`apt-get install pebble`, or scripts/install-deps.sh)",
        path.display()
    );
    path
}

/// Waits until `addr` accepts TCP connections.
fn wait_listening(addr: SocketAddr, proc: &Proc) {
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {addr} after {WAIT:?}: {}{}",
            proc.stdout(),
            proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
