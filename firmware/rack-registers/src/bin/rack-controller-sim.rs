//! Host simulator of the battery-rack controller: the same controller core as the firmware
//! (fire logic, latch store, register map, Modbus slave) behind a Modbus TCP server, driven by
//! a built-in scenario or a fire trace, in real time or faster.
//!
//! ```sh
//! cargo run -p rack-registers --bin rack-controller-sim -- --listen 127.0.0.1:5020 \
//!     --scenario thermal-runaway --speed 10
//! ```
//!
//! The first line on stdout is `listening <addr> unit <id>` (with the real port when `:0` was
//! given); then one JSON line per stage change. `--state FILE` keeps the latch record in a file
//! (a simulated flash region), so a restarted simulator comes back in its stage, like the
//! controller after a reset.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fire_logic::{Actions, Config, Inputs, Outputs};
use fire_trace::{Header, Row};
use rack_registers::controller::{Controller, parse_version};
use rack_registers::nvstore::{Flash, FlashError};
use rack_registers::scenario::ThermalRunaway;
use rack_registers::{COIL_COUNT, Commands, INPUT_COUNT, Proto, Response, Slave};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "rack-controller-sim: the battery-rack controller behind a Modbus TCP server

USAGE:
    rack-controller-sim [OPTIONS]

OPTIONS:
    --listen ADDR        address to listen on (default 127.0.0.1:5020; port 0 picks one)
    --unit ID            Modbus unit id (default 1)
    --scenario NAME      normal | thermal-runaway | PATH to a fire trace CSV (default normal)
    --speed N            run logic time N times faster than the wall clock (default 1)
    --period-ms MS       control period (default 100)
    --state FILE         keep the latch record in FILE (survives restarts of the simulator)
    --duration-s S       exit after S seconds of wall-clock time (default: run until killed)
    -h, --help           this text
    -V, --version        version
";

/// A flash region kept in a file (4 pages of 1 KiB, like the board's backup SRAM).
struct FileFlash {
    path: Option<PathBuf>,
    data: Vec<u8>,
}

const PAGE: usize = 1024;
const PAGES: usize = 4;

impl FileFlash {
    fn open(path: Option<&Path>) -> Result<Self, String> {
        let mut data = vec![0xFF; PAGE * PAGES];
        if let Some(p) = path {
            match std::fs::read(p) {
                Ok(bytes) if bytes.len() == data.len() => data = bytes,
                Ok(bytes) => {
                    return Err(format!(
                        "{}: {} bytes, expected {} (not a state file of this simulator)",
                        p.display(),
                        bytes.len(),
                        data.len()
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", p.display())),
            }
        }
        Ok(FileFlash {
            path: path.map(Path::to_path_buf),
            data,
        })
    }

    fn persist(&self) -> Result<(), FlashError> {
        if let Some(p) = &self.path {
            let tmp = p.with_extension("tmp");
            std::fs::write(&tmp, &self.data).map_err(|_| FlashError::Hardware)?;
            std::fs::rename(&tmp, p).map_err(|_| FlashError::Hardware)?;
        }
        Ok(())
    }
}

impl Flash for FileFlash {
    fn page_size(&self) -> usize {
        PAGE
    }
    fn pages(&self) -> usize {
        PAGES
    }
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), FlashError> {
        let src = self
            .data
            .get(offset..offset + buf.len())
            .ok_or(FlashError::OutOfBounds)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn erase(&mut self, page: usize) -> Result<(), FlashError> {
        self.data
            .get_mut(page * PAGE..(page + 1) * PAGE)
            .ok_or(FlashError::OutOfBounds)?
            .fill(0xFF);
        self.persist()
    }
    fn program(&mut self, offset: usize, data: &[u8]) -> Result<(), FlashError> {
        let dst = self
            .data
            .get_mut(offset..offset + data.len())
            .ok_or(FlashError::OutOfBounds)?;
        for (d, s) in dst.iter_mut().zip(data) {
            *d &= *s;
        }
        self.persist()
    }
}

/// Where the inputs come from.
enum Scenario {
    Synthetic(ThermalRunaway),
    Trace { rows: Vec<Row>, next: usize },
}

impl Scenario {
    fn load(spec: &str, base: &mut Config) -> Result<(Self, String), String> {
        match spec {
            "normal" => Ok((
                Scenario::Synthetic(ThermalRunaway {
                    ramp_start_ms: u64::MAX,
                    ..ThermalRunaway::default()
                }),
                spec.into(),
            )),
            "thermal-runaway" => Ok((Scenario::Synthetic(ThermalRunaway::default()), spec.into())),
            path => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "--scenario {path}: {e} (expected normal, thermal-runaway or a trace file)"
                    )
                })?;
                let mut lines = text
                    .lines()
                    .enumerate()
                    .map(|(i, l)| (i + 1, l))
                    .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
                let (hline, htext) = lines.next().ok_or_else(|| format!("{path}: empty trace"))?;
                let header = Header::parse(htext, hline).map_err(|e| format!("{path}: {e}"))?;
                base.fitted = header.fitted(base.fitted);
                let mut rows = Vec::new();
                for (n, l) in lines {
                    rows.push(header.parse_row(l, n).map_err(|e| format!("{path}: {e}"))?);
                }
                Ok((Scenario::Trace { rows, next: 0 }, format!("trace {path}")))
            }
        }
    }
}

struct Sim {
    ctrl: Controller<FileFlash>,
    slave: Slave,
    regs: [u16; INPUT_COUNT],
    coils: [bool; COIL_COUNT],
    logic_ms: u64,
    last: Outputs,
}

impl Sim {
    fn publish(&mut self) {
        let snap = self.ctrl.snapshot(self.logic_ms);
        snap.encode_inputs(&mut self.regs);
        self.coils = snap.coil_states();
    }

    /// Steps the controller up to logic time `until_ms`; returns the outputs after each step
    /// whose stage changed.
    fn advance(
        &mut self,
        scenario: &mut Scenario,
        until_ms: u64,
        period: u64,
    ) -> Vec<(u64, Outputs)> {
        let mut changes = Vec::new();
        let mut step = |sim: &mut Sim, t: u64, inputs: &Inputs| {
            let out = sim.ctrl.cycle(t, inputs);
            if out.stage != sim.last.stage {
                changes.push((t, out));
            }
            sim.last = out;
        };
        match scenario {
            Scenario::Synthetic(s) => {
                while self.logic_ms + period <= until_ms {
                    self.logic_ms += period;
                    let inputs = s.inputs(self.logic_ms, self.last.actions);
                    step(self, self.logic_ms, &inputs);
                }
            }
            Scenario::Trace { rows, next } => {
                while let Some(row) = rows.get(*next).copied() {
                    if row.t_ms > until_ms {
                        break;
                    }
                    *next += 1;
                    if let Some(c) = row.command {
                        let _ = self.ctrl.network_command(row.t_ms, c);
                    }
                    self.logic_ms = row.t_ms;
                    step(self, row.t_ms, &row.inputs);
                }
                // After the last row, hold its inputs so the sensors stay fresh.
                if *next >= rows.len()
                    && let Some(last) = rows.last().copied()
                {
                    let held = Inputs {
                        reset: fire_logic::Digital::Off,
                        manual_release: fire_logic::Digital::Off,
                        ..last.inputs
                    };
                    while self.logic_ms + period <= until_ms {
                        self.logic_ms += period;
                        step(self, self.logic_ms, &held);
                    }
                }
            }
        }
        self.publish();
        changes
    }
}

struct Args {
    listen: SocketAddr,
    unit: u8,
    scenario: String,
    speed: u64,
    period_ms: u64,
    state: Option<PathBuf>,
    duration_s: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        listen: "127.0.0.1:5020".parse().map_err(|e| format!("{e}"))?,
        unit: rack_registers::map::DEFAULT_UNIT_ID,
        scenario: "normal".into(),
        speed: 1,
        period_ms: 100,
        state: None,
        duration_s: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "-V" | "--version" => {
                println!("rack-controller-sim {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "--listen" => {
                a.listen = value("--listen")?
                    .parse()
                    .map_err(|e| format!("--listen: {e} (expected IP:PORT)"))?
            }
            "--unit" => {
                a.unit = value("--unit")?
                    .parse()
                    .ok()
                    .filter(|u| (1..=247).contains(u))
                    .ok_or("--unit: expected 1..=247")?;
            }
            "--scenario" => a.scenario = value("--scenario")?,
            "--speed" => {
                a.speed = value("--speed")?
                    .parse()
                    .ok()
                    .filter(|s| (1..=1000).contains(s))
                    .ok_or("--speed: expected 1..=1000")?
            }
            "--period-ms" => {
                a.period_ms = value("--period-ms")?
                    .parse()
                    .ok()
                    .filter(|p| (10..=1000).contains(p))
                    .ok_or("--period-ms: expected 10..=1000")?;
            }
            "--state" => a.state = Some(PathBuf::from(value("--state")?)),
            "--duration-s" => {
                a.duration_s = Some(
                    value("--duration-s")?
                        .parse()
                        .map_err(|_| "--duration-s: expected seconds")?,
                )
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(a)
}

async fn serve(mut stream: TcpStream, sim: Arc<Mutex<Sim>>) -> std::io::Result<()> {
    loop {
        let mut header = [0u8; 6];
        match stream.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        if !(2..=250).contains(&len) {
            // Not Modbus TCP: drop the connection rather than guess where the next frame starts.
            return Ok(());
        }
        let mut frame = header.to_vec();
        frame.resize(6 + len, 0);
        stream.read_exact(&mut frame[6..]).await?;
        let reply = {
            let mut s = sim
                .lock()
                .map_err(|_| std::io::Error::other("simulator state poisoned"))?;
            let mut response = Response::new();
            let mut commands = Commands::new();
            let s = &mut *s;
            let r = s.slave.process(
                Proto::Tcp,
                &frame,
                &s.regs,
                &s.coils,
                &mut response,
                &mut commands,
            );
            let now = s.logic_ms;
            for c in commands {
                if let Err(refused) = s.ctrl.command(now, c) {
                    eprintln!("command {c:?} refused: {refused}");
                }
            }
            s.publish();
            match r {
                Ok(true) => Some(response.to_vec()),
                _ => None,
            }
        };
        if let Some(bytes) = reply {
            stream.write_all(&bytes).await?;
        }
    }
}

fn stage_line(t_ms: u64, o: &Outputs) -> String {
    let actions: Vec<String> = o
        .actions
        .iter()
        .map(|a| format!("\"{}\"", a.name()))
        .collect();
    format!(
        "{{\"t_ms\":{t_ms},\"stage\":\"{}\",\"actions\":[{}]}}",
        o.stage.name(),
        actions.join(",")
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rack-controller-sim: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("rack-controller-sim: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut config = Config::default();
    let (mut scenario, scenario_name) = Scenario::load(&args.scenario, &mut config)?;
    let flash = FileFlash::open(args.state.as_deref())?;
    let mut ctrl = Controller::boot(config, flash, 0, parse_version(env!("CARGO_PKG_VERSION")))
        .map_err(|e| format!("boot: {e:?}"))?;
    // The simulated rack has the room's gas release wired (its scenarios drive it).
    ctrl.set_room_gas_release_wired(true);
    let boot_state = ctrl.boot_state();
    let sim = Arc::new(Mutex::new(Sim {
        ctrl,
        slave: Slave::new(args.unit),
        regs: [0; INPUT_COUNT],
        coils: [false; COIL_COUNT],
        logic_ms: 0,
        last: Outputs {
            actions: Actions::NONE,
            ..Outputs::default()
        },
    }));
    sim.lock().map_err(|_| "poisoned")?.publish();
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening {local} unit {}", args.unit);
    eprintln!(
        "rack-controller-sim: scenario {scenario_name}, speed x{}, boot {boot_state:?}",
        args.speed
    );

    let server_sim = sim.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let s = server_sim.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                if let Err(e) = serve(stream, s).await {
                    eprintln!("connection: {e}");
                }
            });
        }
    });

    let period = args.period_ms;
    let wall_period = Duration::from_millis((period / args.speed).max(1));
    let mut ticker = tokio::time::interval(wall_period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = tokio::time::Instant::now();
    let mut logic_target = 0u64;
    loop {
        ticker.tick().await;
        if let Some(d) = args.duration_s
            && started.elapsed() >= Duration::from_secs(d)
        {
            return Ok(());
        }
        logic_target += period;
        let changes = {
            let mut s = sim.lock().map_err(|_| "poisoned")?;
            s.advance(&mut scenario, logic_target, period)
        };
        for (t, o) in changes {
            println!("{}", stage_line(t, &o));
        }
    }
}
