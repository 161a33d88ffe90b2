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

struct Args {
    words: Vec<String>,
    opts: Vec<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        words: Vec::new(),
        opts: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--http" | "--broker" | "--data" | "--dc09" | "--influx" => {
                let v = it.next().ok_or(format!("{a} needs a value"))?;
                args.opts.push((a.trim_start_matches('-').to_string(), v));
            }
            "--help" | "-h" | "--version" | "-V" => args.words.insert(0, a),
            s if s.starts_with('-') => return Err(format!("unknown option `{s}`")),
            _ => args.words.push(a),
        }
    }
    Ok(args)
}

async fn real_main(args: Args) -> anyhow::Result<()> {
    match args.words.first().map(String::as_str) {
        None => dcim_demo::demo::run_cli(&args.opts, dcim_server::clock::shutdown_signal()).await,
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
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("dcim-demo: {e}\n\n{usage}");
            std::process::exit(2);
        }
    };
    match args.words.first().map(String::as_str) {
        Some("--help") | Some("-h") => {
            print!("{usage}");
            return;
        }
        Some("--version") | Some("-V") => {
            println!("dcim-demo {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        _ => {}
    }
    let log = dcim_server::config::LogConfig::default();
    let format = std::env::var("DCIM_LOG_FORMAT")
        .ok()
        .and_then(|f| dcim_service::LogFormat::parse(&f))
        .or_else(|| dcim_service::LogFormat::parse(&log.format))
        .unwrap_or_default();
    dcim_service::init_logging(format, &log.level);
    let rt = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
    if let Err(e) = rt.block_on(real_main(args)) {
        eprintln!("dcim-demo: {e:#}");
        std::process::exit(1);
    }
}
