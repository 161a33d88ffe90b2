//! Helpers shared by the `it` and `soak` test binaries: the server process that a test
//! re-executes its own binary as, stopping child processes, and tmpfs mounts for full-disk
//! tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The body of a test binary's `server_process` entry: when the environment variable `env`
/// names a configuration file, runs `dcim-server` with it until SIGTERM (logs to stderr);
/// otherwise does nothing (an ordinary test run).
pub fn serve_config_from_env(env: &str) {
    let Ok(path) = std::env::var(env) else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,dcim_server=info".into()),
        ))
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let config = dcim_server::config::Config::load(Path::new(&path)).expect("server config");
        let term = async {
            let mut s = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
            s.recv().await;
        };
        dcim_server::run(config, term).await.expect("server run");
    });
}

/// Sends `signal` (e.g. `-TERM`) to the child and waits up to `grace` for it to exit, polling
/// every `poll`; then SIGKILL. Nothing when there is no child.
pub fn stop_child(child: Option<Child>, signal: &str, grace: Duration, poll: Duration) {
    let Some(mut c) = child else {
        return;
    };
    let _ = Command::new("kill")
        .args([signal, &c.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(poll);
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// SIGKILL to the child and reap it: no shutdown code runs.
pub fn kill_child(child: Option<Child>) {
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
}

pub use dcim_test_support::peers::is_root;

/// A TCP proxy on loopback to `127.0.0.1:upstream` that the test can cut: while cut, new
/// connections are refused and open ones are closed on both sides.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    pub port: u16,
    up: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts the proxy (up) on a port no other test of this process claimed.
    pub async fn start(upstream: u16) -> anyhow::Result<Proxy> {
        let (listener, addr) = loop {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = l.local_addr()?;
            if dcim_test_support::claim_port(addr.port()) {
                break (l, addr);
            }
        };
        let (up, up_rx) = tokio::sync::watch::channel(true);
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !*up_rx.borrow() {
                    drop(inbound); // cut: refused
                    continue;
                }
                let mut up_rx = up_rx.clone();
                tokio::spawn(async move {
                    let Ok(outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (mut a, mut b) = (inbound, outbound);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                        _ = up_rx.wait_for(|u| !*u) => {} // cut: both sides closed
                    }
                });
            }
        });
        Ok(Proxy {
            addr,
            port: addr.port(),
            up,
            task,
        })
    }

    /// Restores (`true`) or cuts (`false`) the link.
    pub fn set_up(&self, up: bool) {
        let _ = self.up.send(up);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls the harness's active alarms until one matches `pred` (or fails after `timeout`
/// naming `what`), and returns it.
pub async fn wait_active_alarm(
    h: &dcim_e2e::Harness,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    dcim_e2e::wait_for(what, timeout, || async {
        Ok(h.active_alarms().await?.into_iter().find(|a| pred(a)))
    })
    .await
}
