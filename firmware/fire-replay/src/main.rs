//! Replays a fire-logic trace and prints every transition as JSON lines.

mod config_file;

use std::io::Write as _;
use std::process::ExitCode;

const USAGE: &str = "fire-replay {version}
Replays a recorded or synthetic trace through the rack fire logic and prints one JSON object
per line for every transition or trouble, then a summary line.

USAGE:
    fire-replay --trace FILE [--config FILE]
    fire-replay --help | --version

OPTIONS:
    --trace FILE    trace CSV: header `t_ms,<columns>`; see firmware/fire-logic/README.md
    --config FILE   fire-logic configuration (TOML); defaults to the built-in thresholds
    -h, --help      this text
    -V, --version   the version

EXIT STATUS:
    0 replayed; 1 malformed trace, invalid configuration or unreadable file; 2 bad arguments
";

struct Args {
    trace: String,
    config: Option<String>,
}

enum Parsed {
    Run(Args),
    Help,
    Version,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let mut trace = None;
    let mut config = None;
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            "--trace" => trace = Some(it.next().ok_or("--trace needs a FILE")?),
            "--config" => config = Some(it.next().ok_or("--config needs a FILE")?),
            other => {
                if let Some(v) = other.strip_prefix("--trace=") {
                    trace = Some(v.to_string());
                } else if let Some(v) = other.strip_prefix("--config=") {
                    config = Some(v.to_string());
                } else {
                    return Err(format!("unknown argument `{other}`"));
                }
            }
        }
    }
    let trace = trace.ok_or("--trace FILE is required")?;
    Ok(Parsed::Run(Args { trace, config }))
}

/// `fmt::Write` over buffered stdout, remembering the I/O error.
struct Out<W: std::io::Write> {
    inner: W,
    error: Option<std::io::Error>,
}

impl<W: std::io::Write> std::fmt::Write for Out<W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.inner.write_all(s.as_bytes()).map_err(|e| {
            self.error = Some(e);
            std::fmt::Error
        })
    }
}

fn run(args: Args) -> Result<(), String> {
    let config = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
            config_file::parse(&text, path)?
        }
        None => fire_logic::Config::default(),
    };
    let trace = std::fs::read_to_string(&args.trace)
        .map_err(|e| format!("cannot read {}: {e}", args.trace))?;
    if let Ok(effective) = fire_trace::trace_config(&trace, &config) {
        for w in corroboration_warnings(&effective) {
            eprintln!("fire-replay: WARNING: {w}");
        }
    }
    let stdout = std::io::stdout().lock();
    let mut out = Out {
        inner: std::io::BufWriter::new(stdout),
        error: None,
    };
    let result = fire_trace::replay(&trace, &config, &mut out);
    let flushed = out.inner.flush();
    match result {
        Ok(_) => flushed.map_err(|e| format!("cannot write the output: {e}")),
        Err(fire_trace::ReplayError::Output) => Err(format!(
            "cannot write the output: {}",
            out.error
                .map(|e| e.to_string())
                .unwrap_or_else(|| "unknown error".into())
        )),
        Err(e) => Err(format!("{}: {e}", args.trace)),
    }
}

/// Column name of a temperature source in a trace.
fn column(id: fire_logic::SourceId) -> String {
    format!("{}_c", id.name())
}

/// Warnings for temperature sources that may corroborate each other with no declaration
/// saying they are independent (hazard #11.4, `firmware/HAZARDS.md` F6): the rack transmitter
/// pair always, any other pair when it is the only corroboration one of them has.
fn corroboration_warnings(cfg: &fire_logic::Config) -> Vec<String> {
    cfg.undeclared_pairs()
        .filter(|p| {
            p.only_corroboration
                || (p.a == fire_logic::SourceId::RackTemp1
                    && p.b == fire_logic::SourceId::RackTemp2)
        })
        .map(|p| {
            let (a, b) = (column(p.a), column(p.b));
            format!(
                "{a} and {b} may corroborate each other, and no common-cause declaration says \
                 they are independent{only}: two transmitters on one ADC, supply or cable drift \
                 together and would release agent with no fire. Declare the wiring: \
                 `#! common_cause: {a} {b}` in the trace when they share a cause, or \
                 `common_cause = {{ {an} = 1, {bn} = 2 }}` in --config when they are independent",
                only = if p.only_corroboration {
                    " (for one of them the other is the ONLY possible corroboration)"
                } else {
                    ""
                },
                an = config_file::SOURCES[p.a as usize],
                bn = config_file::SOURCES[p.b as usize],
            )
        })
        .collect()
}

fn main() -> ExitCode {
    let usage = USAGE.replace("{version}", env!("CARGO_PKG_VERSION"));
    match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Help) => {
            print!("{usage}");
            ExitCode::SUCCESS
        }
        Ok(Parsed::Version) => {
            println!("fire-replay {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Parsed::Run(args)) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fire-replay: {e}");
                ExitCode::from(1)
            }
        },
        Err(e) => {
            eprintln!("fire-replay: {e}\n\n{usage}");
            ExitCode::from(2)
        }
    }
}
