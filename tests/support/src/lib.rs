//! Helpers shared by the integration tests of every crate (a dev-dependency only; it depends on
//! no workspace crate, so that any crate can use it).
//!
//! - [`free_port`], [`free_udp_port`]: ephemeral loopback ports (other test runs share the
//!   machine), never the same port twice in one process.
//! - [`wait`]: polling with a deadline; a timeout names what was awaited.
//! - [`peers`]: third-party peers (Python packages in `DCIM_PYTHON`, installed binaries): a missing
//!   peer skips the test with a message, or fails it under `DCIM_REQUIRE_PEERS=1` (CI), so that a
//!   missing peer never passes as a green test.
//! - [`slow`]: the `DCIM_SLOW_TESTS=1` switch for tests that take minutes (soak, full disk).
//! - [`sia`]: the pysiaalarm DC-09 receiver; [`snmp`]: snmpsim, snmpd and net-snmp's tools.
//! - [`tmpfs`]: a small tmpfs (needs root) and filling it, for the full-disk tests.

pub mod peers;
pub mod sia;
pub mod slow;
pub mod snmp;
pub mod tmpfs;
pub mod wait;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// Ports handed out in this process: a port probed free and released for a process to bind must
/// not be handed out again (to another test of the same binary) before that process binds it.
static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn remember(probe: impl Fn() -> std::io::Result<u16>) -> u16 {
    loop {
        let port = probe().expect("a free loopback port");
        if TAKEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released), not handed out before in this process.
pub fn free_port() -> u16 {
    remember(|| {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    })
}

/// A free UDP port on 127.0.0.1 (bound, then released), not handed out before in this process.
pub fn free_udp_port() -> u16 {
    remember(|| {
        Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    })
}

/// Records `port`, bound by the caller some other way (e.g. a listener that stays open), as
/// handed out; `false` when [`free_port`] or [`free_udp_port`] handed it out already (a process
/// may be about to bind it: bind another one).
pub fn claim_port(port: u16) -> bool {
    TAKEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port)
}
