//! `dcim-demo` command line: the demo (default) and the drill runner.

use anyhow::Context;

const USAGE: &str = "dcim-demo {version}
The DCIM product in one process on a simulated facility: server, embedded broker, facility
simulator, edge agent. Not for production: the server alone is `dcim-server`.

USAGE:
    dcim-demo [--http ADDR] [--broker ADDR] [--data DIR] [--dc09 LINK.toml] [--influx URL]
                                                run the demo facility in one process
                                                (defaults 127.0.0.1:8080, 127.0.0.1:1883, ./.data/demo)
                                                --dc09 LINK.toml: site-level events of the demo's
                                                battery rooms to a DC-09 receiver
                                                --influx URL: time series to a VictoriaMetrics
                                                (e.g. http://127.0.0.1:8428) for the dashboards
    dcim-demo drill SCENARIO.toml [--dc09 LINK.toml] [--http ADDR] [--broker ADDR] [--data DIR]
                                                run a scripted drill on the demo facility (format in
                                                tests/drills/README.md); writes the report to
                                                DIR/drills/<id>.md and .json, then stops
    dcim-demo --help | --version

ENV:   DCIM_ADMIN_PASSWORD (password of the demo users), RUST_LOG (log filter),
       DCIM_LOG_FORMAT (text or json)
SIGNALS: SIGTERM/SIGINT stop the demo
";

use dcim_service::cli::Args;

fn parse_args() -> Result<Args, String> {
    Args::parse(
        std::env::args().skip(1),
        &["--http", "--broker", "--data", "--dc09", "--influx"],
        |_, _, _| Ok(false),
    )
}

async fn real_main(args: Args) -> anyhow::Result<()> {
    match args.command() {
        None => {
            dcim_demo::demo::run_cli(&args.opts, dcim_server::base::stop::shutdown_signal()).await
        }
        Some("drill") => {
            let scenario = args
                .words
                .get(1)
                .context("`drill` needs a scenario file: dcim-demo drill SCENARIO.toml")?;
            dcim_demo::drill::run_cli(std::path::Path::new(scenario), &args.opts).await
        }
        Some(other) => {
            anyhow::bail!("unknown command `{other}` (commands: none for the demo, `drill`)")
        }
    }
}

fn main() {
    let usage = USAGE.replace("{version}", env!("CARGO_PKG_VERSION"));
    let args = dcim_service::cli::or_exit("dcim-demo", &usage, parse_args());
    let version = env!("CARGO_PKG_VERSION");
    if dcim_service::cli::help_or_version("dcim-demo", version, &usage, args.command()) {
        return;
    }
    let log = dcim_server::config::LogConfig::default();
    let format = dcim_service::log::format_from_env_or(&log.format);
    dcim_service::init_logging(format, &log.level);
    let rt = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
    if let Err(e) = rt.block_on(real_main(args)) {
        eprintln!("dcim-demo: {e:#}");
        std::process::exit(1);
    }
}
