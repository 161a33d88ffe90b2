//! `dcim-edge-agent --config FILE`: the edge agent daemon.

use dcim_edge_agent::{Agent, config};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::sync::watch;

const USAGE: &str = "dcim-edge-agent {version}
Edge agent daemon: reads facility devices, spools every event and sample to disk and forwards
them to the center over MQTT.

USAGE:
    dcim-edge-agent --config FILE        run the agent
    dcim-edge-agent --check-config FILE  validate the configuration and the device profiles
    dcim-edge-agent --help | --version

Logs go to stderr; the level comes from `log_level` in the file, RUST_LOG overrides it; the
format from `log_format` (text or json), DCIM_LOG_FORMAT overrides it.
SIGTERM or SIGINT stop the agent gracefully (the spool is flushed first).
Under systemd (Type=notify) it sends READY=1 once running and WATCHDOG=1 from its main loop.
";

enum Mode {
    Run(PathBuf),
    Check(PathBuf),
}

fn parse_args() -> Result<Option<Mode>, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--version" | "-V"] => {
            println!("dcim-edge-agent {}", env!("CARGO_PKG_VERSION"));
            Ok(None)
        }
        [] | ["--help" | "-h"] => {
            print!("{}", USAGE.replace("{version}", env!("CARGO_PKG_VERSION")));
            Ok(None)
        }
        ["--config", f] => Ok(Some(Mode::Run(PathBuf::from(f)))),
        ["--check-config", f] => Ok(Some(Mode::Check(PathBuf::from(f)))),
        other => Err(format!("unexpected arguments {other:?}")),
    }
}

fn main() -> ExitCode {
    let mode = match parse_args() {
        Ok(Some(m)) => m,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "dcim-edge-agent: {e}\n\n{}",
                USAGE.replace("{version}", env!("CARGO_PKG_VERSION"))
            );
            return ExitCode::from(2);
        }
    };
    let (path, check_only) = match mode {
        Mode::Run(p) => (p, false),
        Mode::Check(p) => (p, true),
    };
    let cfg = match config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dcim-edge-agent: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let format = std::env::var("DCIM_LOG_FORMAT")
        .ok()
        .and_then(|f| dcim_service::LogFormat::parse(&f))
        .unwrap_or(cfg.log_format);
    dcim_service::init_logging(format, &cfg.log_level);
    for w in config::warnings(&cfg) {
        if check_only {
            eprintln!("dcim-edge-agent: WARNING: {w}");
        } else {
            tracing::warn!("CONFIGURATION WARNING: {w}");
        }
    }
    if check_only {
        return check_devices(&cfg, &path);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dcim-edge-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(cfg, path))
}

/// `--check-config`: every device's profile loads and fits its device.
fn check_devices(cfg: &config::Config, path: &std::path::Path) -> ExitCode {
    for d in &cfg.devices {
        // Wall time genuinely meant: a one-off check of the configuration, no timer runs.
        if let Err(e) = dcim_edge_agent::devices::prepare(d, dcim_clock::now_ms()) {
            eprintln!("dcim-edge-agent: device `{}`: {e}", d.id);
            return ExitCode::from(2);
        }
    }
    println!("{}: configuration is valid", path.display());
    ExitCode::SUCCESS
}

/// Starts the agent and runs it until SIGTERM or SIGINT, or until an essential task ends.
async fn run(cfg: config::Config, path: PathBuf) -> ExitCode {
    tracing::info!(
        site = %cfg.site,
        agent = %cfg.agent,
        brokers = cfg.brokers.len(),
        devices = cfg.devices.len(),
        config = %path.display(),
        "dcim-edge-agent {} starting",
        env!("CARGO_PKG_VERSION")
    );
    let agent = match Agent::start(cfg) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("dcim-edge-agent: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        let _ = tx.send(true);
    });
    match agent.run(rx).await {
        dcim_edge_agent::Stopped::Asked => ExitCode::SUCCESS,
        dcim_edge_agent::Stopped::TaskEnded(t) => {
            eprintln!("dcim-edge-agent: stopped because a task ended: {t}");
            ExitCode::FAILURE
        }
    }
}
