//! Third-party SNMP peers for the tests: snmpsim (PyPI) replaying recorded devices, net-snmp's
//! snmpd (Debian) as a real agent, and net-snmp's command-line tools (snmpset, snmptrap,
//! snmpinform). Missing peers skip the test with a message, or fail it under
//! `DCIM_REQUIRE_PEERS=1` (CI).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::free_udp_port;
pub use crate::peers::python;

pub fn repo() -> PathBuf {
    crate::repo_root()
}

fn missing(what: &str) -> bool {
    let msg = format!("{what} is not available (run `bash tests/setup.sh`)");
    if crate::peers::required() {
        panic!("{msg} and DCIM_REQUIRE_PEERS=1");
    }
    println!("skipped: {msg}");
    false
}

pub fn snmpsim_available() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import snmpsim.commands.responder"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok || missing(&format!("snmpsim (with {})", python()))
}

pub fn netsnmp_available() -> bool {
    let ok = Path::new("/usr/sbin/snmpd").exists()
        && ["snmpset", "snmptrap", "snmpget"].iter().all(|t| {
            Command::new(t)
                .arg("-V")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        });
    ok || missing("net-snmp (snmpd, snmp)")
}

/// A child process killed when dropped.
pub struct Peer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `probe` (a net-snmp command line) succeeds.
fn wait_ready(args: &[&str], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = Command::new(args[0])
            .args(&args[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// snmpsim serving the recorded devices of `tests/interop/snmp/data` on 127.0.0.1: the
/// community selects the device (`switch`, `ups`, `pdu`).
pub fn snmpsim() -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for f in std::fs::read_dir(repo().join("tests/interop/snmp/data")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, data.join(f.file_name().unwrap())).unwrap();
    }
    let mut cmd = Command::new(python());
    cmd.arg(repo().join("tests/interop/snmp/snmpsim_run.py"))
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!(
            "--cache-dir={}",
            dir.path().join("cache").display()
        ))
        .arg(format!("--agent-udpv4-endpoint=127.0.0.1:{port}"))
        .arg("--logging-method=null");
    started(cmd, dir, port, "snmpsim", &["-v2c", "-c", "switch"])
}

pub const V3_USER: &str = "dcim";
pub const V3_AUTH: &str = "authpass123";
pub const V3_PRIV: &str = "privpass123";

/// net-snmp's snmpd on 127.0.0.1 with one SNMPv3 user (SHA-1 + AES-128, authPriv only), the
/// machine's real IF-MIB (ifIndex 1 is the loopback interface) and `sysName` `snmpd-lab`.
pub fn snmpd() -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let conf = dir.path().join("snmpd.conf");
    std::fs::write(
        &conf,
        format!(
            "createUser {V3_USER} SHA \"{V3_AUTH}\" AES \"{V3_PRIV}\"\nrouser {V3_USER} priv\nsysName snmpd-lab\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new("/usr/sbin/snmpd");
    cmd.args(["-f", "-Lf", "/dev/null", "-C", "-c"])
        .arg(&conf)
        .arg("-p")
        .arg(dir.path().join("pid"))
        .args(["-M", "/nonexistent"])
        .arg(format!("udp:127.0.0.1:{port}"))
        .env("SNMP_PERSISTENT_DIR", dir.path())
        .env("MIBS", "");
    let v3 = [
        "-v3", "-l", "authPriv", "-u", V3_USER, "-a", "SHA", "-A", V3_AUTH, "-x", "AES", "-X",
        V3_PRIV,
    ];
    started(cmd, dir, port, "snmpd", &v3)
}

/// Starts `cmd` (output discarded) as the peer on `port` and waits until an `snmpget` of
/// `sysName.0` with the `auth` options answers.
fn started(mut cmd: Command, dir: tempfile::TempDir, port: u16, what: &str, auth: &[&str]) -> Peer {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let peer = Peer {
        child,
        port,
        _dir: dir,
    };
    let addr = format!("127.0.0.1:{port}");
    let mut probe = vec!["snmpget"];
    probe.extend_from_slice(auth);
    probe.extend_from_slice(&["-t", "1", "-r", "0", &addr, "1.3.6.1.2.1.1.5.0"]);
    wait_ready(&probe, what);
    peer
}

/// Runs a net-snmp tool and asserts it succeeded.
pub fn netsnmp(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("MIBS", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
