//! Helpers for tests against the pysiaalarm receiver (`tests/interop/dc09/receiver.py`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The Python interpreter with pysiaalarm, or `None` (test skipped) when it is not available
/// and `DCIM_REQUIRE_PEERS` is not `1`.
pub fn python(test: &str) -> Option<String> {
    let py = std::env::var("DCIM_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import pysiaalarm"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return Some(py);
    }
    if std::env::var("DCIM_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{test}: pysiaalarm cannot be imported with {py} and DCIM_REQUIRE_PEERS=1");
    }
    println!("skipped: {test}: pysiaalarm not importable with {py} (set DCIM_PYTHON)");
    None
}

/// A free loopback port (bound, then released).
pub fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

pub struct Receiver {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

#[derive(Default, Clone)]
pub struct ReceiverOpts<'a> {
    pub key: Option<&'a str>,
    pub udp: bool,
    pub port: u16,
    pub clock_offset_s: i64,
    /// DUH to ADM-CID codes missing from pysiaalarm's table (`--strict-cid`).
    pub strict_cid: bool,
}

impl Receiver {
    pub fn start(py: &str, log: &Path, o: ReceiverOpts<'_>) -> Receiver {
        let script = repo_root().join("tests/interop/dc09/receiver.py");
        let mut cmd = Command::new(py);
        cmd.arg(script)
            .args(["--account", "1234", "--port", &o.port.to_string()]);
        cmd.arg("--log").arg(log);
        if let Some(k) = o.key {
            cmd.args(["--key", k]);
        }
        if o.udp {
            cmd.arg("--udp");
        }
        if o.strict_cid {
            cmd.arg("--strict-cid");
        }
        if o.clock_offset_s != 0 {
            cmd.args(["--clock-offset", &o.clock_offset_s.to_string()]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("receiver did not start");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("receiver printed {line:?}")
            });
        Receiver {
            child,
            port,
            log: log.to_path_buf(),
        }
    }

    pub fn rows(&self) -> Vec<serde_json::Value> {
        rows(&self.log)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn rows(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}
