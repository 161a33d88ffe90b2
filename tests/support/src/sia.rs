//! The pysiaalarm DC-09 receiver (`tests/interop/dc09/receiver.py`) as a test peer.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub use crate::repo_root;
/// Polls `f` (on this thread) until it returns true or `timeout` passes.
pub use crate::wait::poll_until_blocking as wait_until;

/// The Python interpreter with pysiaalarm, or `None` (test skipped) when it is not available
/// and `DCIM_REQUIRE_PEERS` is not `1`.
pub fn python(test: &str) -> Option<String> {
    let py = crate::peers::python();
    if crate::peers::python_imports(&py, "pysiaalarm") {
        return Some(py);
    }
    if crate::peers::required() {
        panic!("{test}: pysiaalarm cannot be imported with {py} and DCIM_REQUIRE_PEERS=1");
    }
    println!("skipped: {test}: pysiaalarm not importable with {py} (set DCIM_PYTHON)");
    None
}

/// A free loopback port (bound, then released), UDP or TCP.
pub fn free_port(udp: bool) -> u16 {
    if udp {
        crate::free_udp_port()
    } else {
        crate::free_port()
    }
}

/// The DC-09 link configuration (the TOML of `dc09_link::LinkConfig::from_toml`) of a
/// transmitter sending to the [`Receiver`] on `port`: account 1234, one TCP path named `path`
/// without supervision, a 2 s ACK timeout and no periodic test message.
pub fn link_toml(port: u16, path: &str) -> String {
    format!(
        "account = \"1234\"\nack_timeout_ms = 2000\ntest_interval_ms = 0\n\
         [[path]]\nname = \"{path}\"\naddr = \"127.0.0.1:{port}\"\ntransport = \"tcp\"\n\
         supervision_ms = 0\n"
    )
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
