//! A rack with its own controller (the firmware's controller core and Modbus slave, served over
//! Modbus TCP in this process) heats through the stages; the agent polls it and forwards its
//! fire events over SIA DC-09 to a pysiaalarm receiver (`tests/interop/dc09/receiver.py`).
//! The agent is stopped gracefully and then aborted (a crash) while the controller goes on:
//! every stage alarm reaches the receiver exactly once, with the controller's zone and rack.

use crate::common;
use dcim_test_support::sia as dc09_common;

use common::signal;
use dc09_common::{Receiver, ReceiverOpts, python, repo_root};
use fire_logic::{Analog, Config, Digital, Inputs};
use rack_registers::controller::Controller;
use rack_registers::nvstore::{Flash, FlashError};
use rack_registers::{COIL_COUNT, Commands, INPUT_COUNT, Proto, Response, Slave};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A flash region in memory (survives nothing; the controller is not restarted here).
struct RamFlash(Vec<u8>);

impl Flash for RamFlash {
    fn page_size(&self) -> usize {
        1024
    }
    fn pages(&self) -> usize {
        4
    }
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), FlashError> {
        let src = self
            .0
            .get(offset..offset + buf.len())
            .ok_or(FlashError::OutOfBounds)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn erase(&mut self, page: usize) -> Result<(), FlashError> {
        self.0
            .get_mut(page * 1024..(page + 1) * 1024)
            .ok_or(FlashError::OutOfBounds)?
            .fill(0xFF);
        Ok(())
    }
    fn program(&mut self, offset: usize, data: &[u8]) -> Result<(), FlashError> {
        let dst = self
            .0
            .get_mut(offset..offset + data.len())
            .ok_or(FlashError::OutOfBounds)?;
        for (d, s) in dst.iter_mut().zip(data) {
            *d &= *s;
        }
        Ok(())
    }
}

struct Ctl {
    ctrl: Controller<RamFlash>,
    slave: Slave,
    regs: [u16; INPUT_COUNT],
    coils: [bool; COIL_COUNT],
    t_ms: u64,
    /// Current and target temperature, tenths of C (moves 1 C per 100 ms cycle, well under
    /// the logic's implausible-jump limit).
    temp: i32,
    target: i32,
}

impl Ctl {
    fn cycle(&mut self) {
        self.t_ms += 100;
        self.temp += (self.target - self.temp).clamp(-10, 10);
        let a = Analog::Value(self.temp);
        let inputs = Inputs {
            bms_max: a,
            rack_temp1: a,
            rack_temp2: a,
            camera_max: Analog::NoSample,
            smoke: Digital::NoSample,
            offgas: Analog::NoSample,
            ..Inputs::default()
        };
        self.ctrl.cycle(self.t_ms, &inputs);
        let snap = self.ctrl.snapshot(self.t_ms);
        snap.encode_inputs(&mut self.regs);
        self.coils = snap.coil_states();
    }
}

/// Starts the controller (cycling every 100 ms) behind a Modbus TCP server on 127.0.0.1.
async fn start_controller() -> (Arc<Mutex<Ctl>>, std::net::SocketAddr) {
    let mut cfg = Config::default();
    cfg.fitted.camera = false;
    cfg.fitted.smoke = false;
    cfg.fitted.offgas = false;
    cfg.fitted.feedback = [false; 6];
    let ctrl = Controller::boot(cfg, RamFlash(vec![0xFF; 4096]), 0, (1, 0, 0)).unwrap();
    let ctl = Arc::new(Mutex::new(Ctl {
        ctrl,
        slave: Slave::new(1),
        regs: [0; INPUT_COUNT],
        coils: [false; COIL_COUNT],
        t_ms: 0,
        temp: 250,
        target: 250,
    }));
    ctl.lock().unwrap().cycle();
    let c = ctl.clone();
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(Duration::from_millis(100));
        loop {
            iv.tick().await;
            c.lock().unwrap().cycle();
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let c = ctl.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let c = c.clone();
            tokio::spawn(async move {
                loop {
                    let mut head = [0u8; 6];
                    if s.read_exact(&mut head).await.is_err() {
                        return;
                    }
                    let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
                    if !(2..=250).contains(&len) {
                        return;
                    }
                    let mut frame = head.to_vec();
                    frame.resize(6 + len, 0);
                    if s.read_exact(&mut frame[6..]).await.is_err() {
                        return;
                    }
                    let reply = {
                        let g = c.lock().unwrap();
                        let mut resp = Response::new();
                        let mut cmds = Commands::new();
                        match g.slave.process(
                            Proto::Tcp,
                            &frame,
                            &g.regs,
                            &g.coils,
                            &mut resp,
                            &mut cmds,
                        ) {
                            Ok(true) => Some(resp.to_vec()),
                            _ => None,
                        }
                    };
                    if let Some(r) = reply
                        && s.write_all(&r).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (ctl, addr)
}

fn acked(rcv: &Receiver, code: &str) -> Vec<serde_json::Value> {
    rcv.rows()
        .into_iter()
        .filter(|r| r["code"] == code && r["response"] == "ACK")
        .collect()
}

async fn wait_acked(rcv: &Receiver, code: &str, timeout: Duration) {
    let t0 = Instant::now();
    while acked(rcv, code).is_empty() {
        assert!(
            t0.elapsed() < timeout,
            "{code} not ACKed within {timeout:?}: {:?}",
            rcv.rows()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The agent binary on `dir/agent.toml`, logging to `dir/agent.log`.
fn start_agent(dir: &std::path::Path) -> Child {
    common::spawn_agent(&dir.join("agent.toml"), &dir.join("agent.log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controller_fire_events_reach_the_receiver_exactly_once_across_agent_restarts() {
    let Some(py) = python("controller_fire_events_reach_the_receiver") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rcv = Receiver::start(&py, &dir.path().join("rcv.log"), ReceiverOpts::default());
    common::write_link_toml(dir.path(), rcv.port, false);
    let (ctl, addr) = start_controller().await;
    let profile = repo_root().join("device-profiles/rack-controller.toml");
    // The broker is never started: forwarding must not depend on the center.
    let head = common::dc09_agent_head(dc09_common::free_port(false));
    let text = format!(
        r#"{head}[[device]]
id = "rc-08"
profile = "{}"
modbus = {{ tcp = "{addr}", unit = 1 }}
[[controller]]
device = "rc-08"
number = 8
dc09_zone = 2
poll_ms = 100
"#,
        profile.display()
    );
    std::fs::write(dir.path().join("agent.toml"), text).unwrap();
    let set = |t: i32| ctl.lock().unwrap().target = t;

    // 1. pre-alarm and stage 1 while the agent runs
    let mut agent = start_agent(dir.path());
    tokio::time::sleep(Duration::from_millis(500)).await;
    set(620);
    wait_acked(&rcv, "KS", Duration::from_secs(10)).await;
    wait_acked(&rcv, "KA", Duration::from_secs(10)).await;

    // 2. stage 2 while the agent is stopped (SIGTERM)
    signal(&agent, "-TERM");
    assert!(agent.wait().unwrap().success());
    set(700);
    let t0 = Instant::now();
    while ctl.lock().unwrap().ctrl.logic().stage() < fire_logic::Stage::Stage2 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "controller did not reach stage 2"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut agent = start_agent(dir.path());
    wait_acked(&rcv, "FA", Duration::from_secs(10)).await;

    // 3. the agent is killed (SIGKILL) about when stage 3 is entered; after the restart the
    //    stage 3 alarm arrives and nothing before it is sent again
    set(820);
    let t0 = Instant::now();
    while ctl.lock().unwrap().ctrl.logic().stage() < fire_logic::Stage::Stage3 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "controller did not reach stage 3"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&agent, "-KILL");
    let _ = agent.wait();
    let mut agent = start_agent(dir.path());
    wait_acked(&rcv, "SA", Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&agent, "-TERM");
    assert!(agent.wait().unwrap().success());

    for code in ["KS", "KA", "FA", "SA"] {
        let rows = acked(&rcv, code);
        assert_eq!(rows.len(), 1, "{code} ACKed exactly once: {:?}", rcv.rows());
        assert_eq!(rows[0]["ri"], "2", "{:?}", rows[0]);
        assert_eq!(rows[0]["unit"], "0008", "{:?}", rows[0]);
    }
    // nothing was refused, and no trouble was invented on the way
    let rows = rcv.rows();
    assert!(rows.iter().all(|r| r["response"] == "ACK"), "{rows:?}");
    assert!(
        !rows.iter().any(|r| r["code"] == "FT" || r["code"] == "KT"),
        "{rows:?}"
    );
}
