//! Simulated facility hardware served over the real protocols.

use facility_sim::{
    Command, Connection, Preset, SimConfig, default_profiles_dir, demo, parse_scenario, start,
};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

const USAGE: &str = "facility-sim {version}
Simulated facility hardware served over the real protocols: Modbus TCP rack BMSs, UPS zones and
dual-feed meters/ATSs (registers as in device-profiles/), an MQTT thermal camera, scripted faults.

USAGE:
    facility-sim [OPTIONS]

OPTIONS:
    --preset NAME         basic (default: the devices below) or demo (the demo data center of
                          dcim-server/site/sites/demo.toml, ~420 devices, see the README)
                          or large[:HALLS] (the demo plus IT halls 4..=HALLS of 100 racks
                          each, default 20 = 2,000 racks)
    --agent-config FILE   write the dcim-edge-agent configuration polling this run's devices
    --agent-spool DIR     spool folder written into that configuration (default /tmp/dcim-demo-spool)
    --racks N             battery racks (BMS devices bms-r01..), default 8
    --ups N               UPS zones (ups-z1..), default 4
    --meters N            dual-feed meters with ATS (meter-1..), default 2
    --no-camera           no thermal camera
    --mqtt URL            publish the MQTT devices (thermal cameras, network probes) to this
                          broker, e.g. mqtt://127.0.0.1:1883
    --camera-period-ms N  camera publish period, default 1000
    --base-port P         first Modbus TCP port (one port per device, counting up);
                          default 0 = an ephemeral port per device
    --profiles DIR        device profiles folder, default device-profiles/
    --scenario FILE       run the timed commands of FILE (see below)
    --duration S          exit after S seconds (default: run until stdin closes or Ctrl-C)
    -h, --help            this text
    -V, --version         version

On start it prints one line per device:
    device=bms-r01 kind=rack-bms profile=rack-bms-li-ion modbus=127.0.0.1:40123 unit=1
    device=bms-r001 kind=it-rack profile=it-rack rtu_tcp=127.0.0.1:40200 unit=1
    device=chiller-1 kind=bacnet profile=chiller-water-cooled bacnet=127.0.0.1:47001 instance=3001
    device=cam-z1 kind=thermal-camera profile=thermal-camera-battery-room mqtt

CONTROL: commands are read from stdin, one per line (and from the scenario file, each preceded
by its time in seconds, e.g. `30 feed-loss A`):
    feed-loss A|B, feed-restore A|B        utility feed lost / back (ATS transfers)
    breaker <meter> A|B open|close         a meter's feed breaker
    heat <bms> [C_per_min]                 a battery rack heats up through the fire stages
    cool <bms>                             stop heating
    sensor-fail <device> <point>           a point reads its fault code
    sensor-ok <device> <point>
    silent <device>, revive <device>       the device stops / resumes answering
    slow <device> <ms>                     the device answers late
    fire-reset <bms>                       local reset of a latched fire stage (demo racks)
    link-down <probe>, link-up <probe>     a network link/device down / back (demo)
    chiller-trip <id>, chiller-restore <id> a BACnet chiller trips / is reset
    status                                 list the devices
";

fn usage() -> String {
    USAGE.replace("{version}", env!("CARGO_PKG_VERSION"))
}

struct Args {
    cfg: SimConfig,
    mqtt: Option<String>,
    camera_period: Duration,
    scenario: Option<PathBuf>,
    duration: Option<Duration>,
    agent_config: Option<PathBuf>,
    agent_spool: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut cfg = SimConfig {
        profiles_dir: default_profiles_dir(),
        ..SimConfig::default()
    };
    let mut a = Args {
        cfg: SimConfig::default(),
        mqtt: None,
        camera_period: Duration::from_millis(1000),
        scenario: None,
        duration: None,
        agent_config: None,
        agent_spool: PathBuf::from("/tmp/dcim-demo-spool"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let num = |name: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: `{v}` is not a number"))
        };
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{}", usage());
                std::process::exit(0);
            }
            "-V" | "--version" => {
                println!("facility-sim {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "--preset" => {
                cfg.preset = match val("--preset")?.as_str() {
                    "basic" => Preset::Basic,
                    "demo" => Preset::Demo,
                    v if v.starts_with("large") => {
                        let halls = v.strip_prefix("large:").map_or(Ok(20), |n| {
                            n.parse::<usize>()
                                .map_err(|_| format!("--preset: `{v}`: expected large:HALLS"))
                        })?;
                        Preset::Large { halls }
                    }
                    other => {
                        return Err(format!(
                            "--preset: `{other}`: expected basic, demo or large[:HALLS]"
                        ));
                    }
                }
            }
            "--agent-config" => a.agent_config = Some(PathBuf::from(val("--agent-config")?)),
            "--agent-spool" => a.agent_spool = PathBuf::from(val("--agent-spool")?),
            "--racks" => cfg.racks = num("--racks", val("--racks")?)? as usize,
            "--ups" => cfg.ups = num("--ups", val("--ups")?)? as usize,
            "--meters" => cfg.meters = num("--meters", val("--meters")?)? as usize,
            "--no-camera" => cfg.camera = false,
            "--mqtt" => a.mqtt = Some(val("--mqtt")?),
            "--camera-period-ms" => {
                a.camera_period = Duration::from_millis(
                    num("--camera-period-ms", val("--camera-period-ms")?)?.max(50),
                )
            }
            "--base-port" => {
                let p = num("--base-port", val("--base-port")?)?;
                cfg.base_port = u16::try_from(p).map_err(|_| "--base-port: too large")?;
            }
            "--profiles" => cfg.profiles_dir = PathBuf::from(val("--profiles")?),
            "--scenario" => a.scenario = Some(PathBuf::from(val("--scenario")?)),
            "--duration" => {
                a.duration = Some(Duration::from_secs(num("--duration", val("--duration")?)?))
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    a.cfg = cfg;
    Ok(a)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("facility-sim: {e}\n\n{}", usage());
            std::process::exit(2);
        }
    };
    let steps = match &args.scenario {
        None => Vec::new(),
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| parse_scenario(&t).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("facility-sim: scenario {}: {e}", path.display());
                std::process::exit(2);
            }
        },
    };
    let mut sim = match start(args.cfg.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("facility-sim: {e}");
            std::process::exit(1);
        }
    };
    for e in &sim.endpoints {
        let head = format!("device={} kind={} profile={}", e.device, e.kind, e.profile);
        match e.connection {
            Connection::ModbusTcp { addr, unit } => println!("{head} modbus={addr} unit={unit}"),
            Connection::ModbusRtuOverTcp { addr, unit } => {
                println!("{head} rtu_tcp={addr} unit={unit}")
            }
            Connection::Bacnet { addr, instance } => {
                println!("{head} bacnet={addr} instance={instance}")
            }
            Connection::Mqtt => println!("{head} mqtt"),
            Connection::None => println!("device={} kind={}", e.device, e.kind),
        }
    }
    if let Some(path) = &args.agent_config {
        let broker = args
            .mqtt
            .clone()
            .unwrap_or_else(|| "mqtt://127.0.0.1:1883".into());
        let text = demo::agent_config(
            &sim.endpoints,
            &demo::AgentOptions::new(&broker, args.agent_spool.clone()),
        );
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("facility-sim: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        println!("agent configuration written to {}", path.display());
    }
    if let Some(url) = &args.mqtt {
        if let Err(e) = sim.publish_mqtt(url, args.camera_period) {
            eprintln!("facility-sim: {e}");
            std::process::exit(2);
        }
        println!("MQTT devices publishing to {url}");
    }
    sim.run_scenario(steps, true);

    let stdin = async {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match Command::parse(line)
                .map_err(|e| e.to_string())
                .and_then(|c| sim.command(&c))
            {
                Ok(m) => println!("{m}"),
                Err(e) => println!("error: {e}"),
            }
        }
        // stdin closed: keep running unless a duration was given (then that ends it).
        std::future::pending::<()>().await;
    };
    let until = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = stdin => {}
        _ = until => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
