//! The simulator binary over real sockets: a Modbus TCP master (written here from the
//! specification, independent of the slave code) reads the map and writes the command coils.
#![cfg(feature = "sim")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rack_registers::map::{coil, input, status};

struct Sim {
    child: Child,
    addr: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Sim {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rack-controller-sim"))
        .args(["--listen", "127.0.0.1:0", "--duration-s", "60"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rack-controller-sim");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    // Keep draining stdout so the simulator never blocks on a full pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    Sim { child, addr }
}

struct Master {
    s: TcpStream,
    tid: u16,
}

impl Master {
    fn connect(addr: &str) -> Master {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Master { s, tid: 0 }
    }

    fn request(&mut self, pdu: &[u8]) -> Vec<u8> {
        self.tid = self.tid.wrapping_add(1);
        let mut f = Vec::new();
        f.extend_from_slice(&self.tid.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
        f.push(1);
        f.extend_from_slice(pdu);
        self.s.write_all(&f).unwrap();
        let mut h = [0u8; 7];
        self.s.read_exact(&mut h).unwrap();
        assert_eq!(
            u16::from_be_bytes([h[0], h[1]]),
            self.tid,
            "transaction id echoed"
        );
        let len = u16::from_be_bytes([h[4], h[5]]) as usize;
        let mut body = vec![0; len - 1];
        self.s.read_exact(&mut body).unwrap();
        body
    }

    fn inputs(&mut self, start: u16, count: u16) -> Vec<u16> {
        let mut pdu = vec![4];
        pdu.extend_from_slice(&start.to_be_bytes());
        pdu.extend_from_slice(&count.to_be_bytes());
        let r = self.request(&pdu);
        assert_eq!(r[0], 4, "exception {:?}", r);
        assert_eq!(r[1] as usize, 2 * count as usize);
        r[2..]
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect()
    }
}

fn wait_stage(m: &mut Master, at_least: u16) -> Vec<u16> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let regs = m.inputs(0, input::COUNT);
        if regs[input::STAGE as usize] >= at_least {
            return regs;
        }
        assert!(
            Instant::now() < deadline,
            "stage {at_least} not reached: {}",
            regs[input::STAGE as usize]
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serves_the_register_map_and_only_command_coils_over_modbus_tcp() {
    let sim = start(&["--scenario", "thermal-runaway", "--speed", "200"]);
    let mut m = Master::connect(&sim.addr);
    let regs = m.inputs(0, input::COUNT);
    assert_eq!(
        regs[input::MAP_VERSION as usize],
        rack_registers::map::MAP_VERSION
    );
    let regs = wait_stage(&mut m, 2);
    assert_ne!(
        regs[input::ACTIONS as usize] & rack_registers::map::action::CONTACTOR_OPEN,
        0
    );
    assert!(
        regs[input::RACK_TEMP1 as usize] as i16 >= 400,
        "rack temp {}",
        regs[input::RACK_TEMP1 as usize] as i16
    );
    assert!(regs[input::EVENT_WINDOW_LEN as usize] > 0);
    // Silence through the coil; the status shows it.
    let r = m.request(&[5, 0, coil::SILENCE_BUZZER as u8, 0xFF, 0]);
    assert_eq!(r, [5, 0, 0, 0xFF, 0]);
    let st = m.inputs(input::STATUS, 1)[0];
    assert_ne!(st & status::SILENCED, 0);
    // Test mode is refused in a stage: the coil reads back 0.
    m.request(&[5, 0, coil::TEST_MODE as u8, 0xFF, 0]);
    let r = m.request(&[1, 0, 0, 0, coil::COUNT as u8]);
    assert_eq!(r[0], 1);
    assert_eq!(r[2] & (1 << coil::TEST_MODE), 0);
    assert_ne!(r[2] & (1 << coil::SILENCE_BUZZER), 0);
    // Writing a register is an illegal function; the stage stays.
    let r = m.request(&[6, 0, input::STAGE as u8, 0, 0]);
    assert_eq!(r, [0x86, 1]);
    assert!(m.inputs(input::STAGE, 1)[0] >= 2);
}

#[test]
fn a_restarted_simulator_comes_back_in_its_stage_from_the_state_file() {
    let dir = std::env::temp_dir().join(format!("rack-sim-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("latch.bin");
    let _ = std::fs::remove_file(&state);
    let stage = {
        let sim = start(&[
            "--scenario",
            "thermal-runaway",
            "--speed",
            "200",
            "--state",
            state.to_str().unwrap(),
        ]);
        let mut m = Master::connect(&sim.addr);
        wait_stage(&mut m, 4)[input::STAGE as usize]
    };
    let sim = start(&["--scenario", "normal", "--state", state.to_str().unwrap()]);
    let mut m = Master::connect(&sim.addr);
    std::thread::sleep(Duration::from_millis(300));
    let regs = m.inputs(0, input::COUNT);
    assert!(
        regs[input::STAGE as usize] >= stage,
        "restored stage {} < {stage}",
        regs[input::STAGE as usize]
    );
    assert_ne!(regs[input::STATUS as usize] & status::RESTORED, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_are_reported() {
    let out = Command::new(env!("CARGO_BIN_EXE_rack-controller-sim"))
        .args(["--scenario", "/nonexistent.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.csv"));
    let out = Command::new(env!("CARGO_BIN_EXE_rack-controller-sim"))
        .args(["--unit", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn python() -> String {
    std::env::var("DCIM_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// True if pymodbus is importable; otherwise skips (or fails under DCIM_REQUIRE_PEERS=1).
fn pymodbus_available() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import pymodbus"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return true;
    }
    let msg = format!(
        "pymodbus is not importable with {} (run `bash tests/setup.sh` and set DCIM_PYTHON)",
        python()
    );
    if std::env::var("DCIM_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("skipped: {msg}");
    false
}

/// A third-party master (pymodbus) reads the whole map, silences the buzzer through the coil
/// and is refused a register write.
#[test]
fn pymodbus_master_reads_the_map_and_is_refused_register_writes() {
    if !pymodbus_available() {
        return;
    }
    let sim = start(&["--scenario", "thermal-runaway", "--speed", "200"]);
    let mut m = Master::connect(&sim.addr);
    wait_stage(&mut m, 2);
    drop(m);
    let (host, port) = sim.addr.rsplit_once(':').unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/interop/rack-controller/read_controller.py"
    );
    // The whole table, as long as the map says it is (a reader of an older map length would
    // miss the board diagnostics block).
    let count = input::COUNT.to_string();
    let out = Command::new(python())
        .args([script, host, port, &count])
        .output()
        .expect("run pymodbus master");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pymodbus master failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let get = |key: &str| -> String {
        let i = stdout
            .find(&format!("\"{key}\": "))
            .unwrap_or_else(|| panic!("{key} missing in {stdout}"));
        stdout[i + key.len() + 4..]
            .split([',', '}'])
            .next()
            .unwrap()
            .trim()
            .to_string()
    };
    let regs_start = stdout.find("[").unwrap();
    let regs: Vec<u16> = stdout[regs_start + 1..stdout.find(']').unwrap()]
        .split(',')
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert_eq!(regs.len(), input::COUNT as usize);
    assert_eq!(
        regs[input::MAP_VERSION as usize],
        rack_registers::map::MAP_VERSION
    );
    assert!(regs[input::STAGE as usize] >= 2);
    assert_eq!(get("coil_write_ok"), "true");
    assert_eq!(get("register_write_exception"), "1", "illegal function");
    assert_eq!(get("holding_exception"), "2", "illegal data address");
    let status_after: u16 = get("status_after").parse().unwrap();
    assert_ne!(status_after & status::SILENCED, 0);
}
