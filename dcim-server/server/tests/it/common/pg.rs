//! A throwaway PostgreSQL server for tests: `initdb` into a temporary directory, `postgres` on
//! an ephemeral loopback port, stopped (and the directory removed) on drop.
//!
//! PostgreSQL refuses to run as root: when the tests run as root, the cluster is created and
//! run as the `postgres` user (Debian's packages create it), and the directory is handed to it.
//! Binaries: `DCIM_PG_BIN` if set, else Debian's `/usr/lib/postgresql/<newest>/bin`, else the
//! `PATH`. When they are missing, [`PgServer::start`] returns `Err` with the reason; tests then
//! skip with that message unless `DCIM_REQUIRE_PEERS=1` ([`skip_or_fail`]).
#![allow(dead_code, unused_imports)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The directory of `initdb` and `postgres`.
pub fn bin_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("DCIM_PG_BIN") {
        return Some(PathBuf::from(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, b)) = versions.pop() {
        return Some(b);
    }
    let which = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()?;
    let p = String::from_utf8_lossy(&which.stdout).trim().to_string();
    (!p.is_empty()).then(|| PathBuf::from(p).parent().map(Path::to_path_buf))?
}

pub use dcim_test_support::peers::is_root;

/// `(uid, gid)` of a user from /etc/passwd.
pub fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name) && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// The user PostgreSQL runs as: `postgres` when the tests run as root, else the current one.
pub fn run_as() -> Result<Option<(u32, u32)>, String> {
    if !is_root() {
        return Ok(None);
    }
    user_ids("postgres").map(Some).ok_or_else(|| {
        "running as root and there is no `postgres` user to run PostgreSQL as".to_string()
    })
}

/// A command run as the PostgreSQL user.
pub fn command(program: impl AsRef<std::ffi::OsStr>, ids: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(program);
    if let Some((uid, gid)) = ids {
        c.uid(uid).gid(gid);
    }
    c.env_remove("PGDATA").env("LC_ALL", "C");
    c
}

/// Gives `path` (and what is in it) to the PostgreSQL user.
pub fn hand_over(path: &Path, ids: Option<(u32, u32)>) -> std::io::Result<()> {
    if let Some((uid, gid)) = ids {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(path)
            .status()?;
        if !status.success() {
            return Err(std::io::Error::other("chown failed"));
        }
    }
    Ok(())
}

pub use dcim_test_support::free_port;

pub struct PgServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PgServer {
    /// A new cluster with the superuser `dcim` (trust authentication on loopback) and the
    /// given `postgres -c` settings; returns once it accepts connections.
    pub fn start(settings: &[(&str, &str)]) -> Result<PgServer, String> {
        let bin = bin_dir().ok_or("PostgreSQL's initdb was not found (install postgresql)")?;
        let ids = run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("dcim-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        hand_over(dir.path(), ids).map_err(|e| e.to_string())?;
        let out = command(bin.join("initdb"), ids)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "dcim",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let port = free_port();
        let mut c = command(bin.join("postgres"), ids);
        c.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"]);
        for (k, v) in settings {
            c.args(["-c", &format!("{k}={v}")]);
        }
        let log =
            std::fs::File::create(dir.path().join("postgres.log")).map_err(|e| e.to_string())?;
        let child = c
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("postgres: {e}"))?;
        let mut pg = PgServer {
            port,
            dir,
            child: Some(child),
        };
        pg.wait_ready(0, Duration::from_secs(30))?;
        Ok(pg)
    }

    /// Takes over a `postgres` process started on this server's directory and port (after
    /// [`PgServer::stop`]) and waits until it accepts connections.
    pub fn adopt(&mut self, child: Child) {
        let before = self.log().matches("ready to accept").count();
        self.child = Some(child);
        self.wait_ready(before, Duration::from_secs(30))
            .expect("restarted postgres");
    }

    fn wait_ready(&mut self, before: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().matches("ready to accept").count() > before {
                return Ok(());
            }
            if let Some(c) = &mut self.child
                && let Ok(Some(st)) = c.try_wait()
            {
                return Err(format!("postgres exited ({st}): {}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("postgres did not start: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// `postgres://dcim@127.0.0.1:port/{db}`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://dcim@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a database (retrying while the server finishes starting).
    pub async fn create_db(&self, name: &str) -> String {
        use sqlx::Connection;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match sqlx::PgConnection::connect(&self.url("postgres")).await {
                Ok(mut c) => {
                    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                        .execute(&mut c)
                        .await
                        .unwrap();
                    let _ = c.close().await;
                    return self.url(name);
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("connecting to the test PostgreSQL: {e}\n{}", self.log()),
            }
        }
    }

    /// Fast shutdown (SIGINT) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub use dcim_test_support::peers::skip_or_fail;
