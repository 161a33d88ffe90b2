//! Loopback load tools for `tests/bench/run.sh` (std only, no dependencies).
//!
//! ```text
//! dcim-bench-load modbus --addrs 127.0.0.1:P1,127.0.0.1:P2 --regs 125 --seconds 5
//!     Minimal Modbus TCP client: one blocking connection per address, one thread each,
//!     back-to-back "read input registers 0..regs" (function 4). Reports reads/s, registers/s
//!     and the CPU seconds this process used: the request/response ceiling of the simulated
//!     devices on loopback.
//!
//! dcim-bench-load mqtt --port P [--user U --pass W] --agents a0,a1 --site S --rate PPS
//!     --batch N --seconds S [--probe-ms 50] [--sse HOST:PORT --token T]
//!     Publishes dcim-wire TelemetryBatch JSON (QoS 0) to dcim/v1/{site}/{agent}/telemetry at a
//!     fixed rate of PPS samples per second, split over the agents (one connection and thread
//!     each). Every --probe-ms one batch carries a `fire.stage = 3` sample for a new device
//!     `rack-t{publish_ms}`; with --sse the tool follows the server's `/api/stream?events=alarm`
//!     and reports two latencies per probe: sample time to the alarm decision (the record's
//!     `ts_ms`, when the server's engine took the sample: like for like with the Node-RED flow,
//!     which measures sample time to its threshold function) and sample time to the
//!     `activated` record on the stream (committed to SQLite first).
//! ```

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// CPU seconds (user + system) used so far by this process.
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

struct Args(Vec<String>);

impl Args {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .map(String::as_str)
    }
    fn str(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_string()
    }
    fn num(&self, name: &str, default: u64) -> u64 {
        match self.get(name) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("{name}: expected a whole number, got {v:?}");
                std::process::exit(2)
            }),
        }
    }
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = all.first().cloned() else {
        eprintln!("usage: dcim-bench-load modbus|mqtt [options] (see the source header)");
        std::process::exit(2)
    };
    let args = Args(all[1..].to_vec());
    let r = match cmd.as_str() {
        "modbus" => modbus(&args),
        "mqtt" => mqtt(&args),
        _ => Err(format!("unknown command {cmd:?}: expected modbus or mqtt")),
    };
    if let Err(e) = r {
        eprintln!("dcim-bench-load {cmd}: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Modbus TCP ceiling

/// A "read input registers" request (function 4) with the given transaction id.
fn read_request(tid: u16, unit: u8, addr: u16, count: u16) -> [u8; 12] {
    let t = tid.to_be_bytes();
    let a = addr.to_be_bytes();
    let c = count.to_be_bytes();
    [t[0], t[1], 0, 0, 0, 6, unit, 4, a[0], a[1], c[0], c[1]]
}

/// Reads one response; returns the number of registers it carried.
fn read_response(s: &mut TcpStream, tid: u16) -> Result<usize, String> {
    let mut head = [0u8; 7];
    s.read_exact(&mut head).map_err(|e| e.to_string())?;
    let len = u16::from_be_bytes([head[4], head[5]]) as usize;
    if u16::from_be_bytes([head[0], head[1]]) != tid || len < 2 {
        return Err(format!("bad response header {head:?}"));
    }
    let mut pdu = vec![0u8; len - 1];
    s.read_exact(&mut pdu).map_err(|e| e.to_string())?;
    if pdu[0] != 4 {
        return Err(format!("exception response {:02x} {:02x}", pdu[0], pdu[1]));
    }
    Ok(pdu[1] as usize / 2)
}

fn modbus(a: &Args) -> Result<(), String> {
    let addrs: Vec<String> = a
        .str("--addrs", "")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if addrs.is_empty() {
        return Err("--addrs HOST:PORT[,HOST:PORT...] is required".into());
    }
    let regs = a.num("--regs", 125).clamp(1, 125) as u16;
    let seconds = a.num("--seconds", 5);
    let warm = Duration::from_millis(a.num("--warmup-ms", 500));
    let reads = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for addr in &addrs {
        let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_nodelay(true).ok();
        let (reads, stop) = (reads.clone(), stop.clone());
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let mut tid = 0u16;
            while !stop.load(Ordering::Relaxed) {
                tid = tid.wrapping_add(1);
                s.write_all(&read_request(tid, 1, 0, regs))
                    .map_err(|e| e.to_string())?;
                let n = read_response(&mut s, tid)?;
                if n != regs as usize {
                    return Err(format!("asked {regs} registers, got {n}"));
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    std::thread::sleep(warm);
    let (r0, c0, t0) = (
        reads.load(Ordering::Relaxed),
        process_cpu_s(),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(seconds));
    let (r1, c1, el) = (
        reads.load(Ordering::Relaxed),
        process_cpu_s(),
        t0.elapsed().as_secs_f64(),
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| "client thread panicked")??;
    }
    let n = (r1 - r0) as f64;
    let cpu = (c1 - c0).max(0.01);
    println!(
        "modbus_ceiling devices={} regs_per_read={regs} seconds={el:.1} reads_per_s={:.0} points_per_s={:.0} client_cpu_s={cpu:.2} points_per_cpu_s={:.0}",
        addrs.len(),
        n / el,
        n * regs as f64 / el,
        n * regs as f64 / cpu
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// MQTT publisher

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

/// MQTT 3.1.1 CONNECT (clean session, keep-alive 120 s, optional username/password).
fn connect_packet(client_id: &str, user: Option<&str>, pass: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, "MQTT");
    body.push(4);
    let mut flags = 0x02;
    if user.is_some() {
        flags |= 0x80;
    }
    if pass.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    body.extend_from_slice(&120u16.to_be_bytes());
    put_str(&mut body, client_id);
    if let Some(u) = user {
        put_str(&mut body, u);
    }
    if let Some(p) = pass {
        put_str(&mut body, p);
    }
    let mut out = vec![0x10];
    put_len(&mut out, body.len());
    out.extend(body);
    out
}

/// MQTT PUBLISH at QoS 0 into `out`.
fn publish_packet(out: &mut Vec<u8>, topic: &str, payload: &[u8]) {
    out.clear();
    out.push(0x30);
    put_len(out, 2 + topic.len() + payload.len());
    put_str(out, topic);
    out.extend_from_slice(payload);
}

fn mqtt_connect(
    port: u16,
    id: &str,
    user: Option<&str>,
    pass: Option<&str>,
) -> Result<TcpStream, String> {
    let mut s =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect :{port}: {e}"))?;
    s.set_nodelay(true).ok();
    s.write_all(&connect_packet(id, user, pass))
        .map_err(|e| e.to_string())?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack)
        .map_err(|e| format!("CONNACK for {id}: {e}"))?;
    if ack[0] != 0x20 || ack[3] != 0 {
        return Err(format!("{id}: connection refused, CONNACK {ack:?}"));
    }
    Ok(s)
}

/// One telemetry batch: `n` rack temperatures (devices dev{agent}-{k}) plus an optional probe.
fn batch_json(agent: &str, seq: u64, n: usize, ts: u64, probe: Option<&str>) -> String {
    let mut s = String::with_capacity(n * 140 + 200);
    s.push_str(&format!(
        "{{\"v\":1,\"agent\":\"{agent}\",\"seq\":{seq},\"samples\":["
    ));
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"device\":\"dev{agent}-{}\",\"point\":\"t{}\",\"role\":\"rack.temp\",\"value\":{}.5,\"unit\":\"°C\",\"quality\":\"good\",\"ts_ms\":{ts}}}",
            i / 25,
            i % 25,
            20 + (seq as usize + i) % 5
        ));
    }
    if let Some(dev) = probe {
        s.push_str(&format!(
            ",{{\"device\":\"{dev}\",\"point\":\"stage\",\"role\":\"fire.stage\",\"value\":3,\"unit\":\"\",\"quality\":\"good\",\"ts_ms\":{ts}}}"
        ));
    }
    s.push_str("]}");
    s
}

fn mqtt(a: &Args) -> Result<(), String> {
    let port = a.num("--port", 1883) as u16;
    let user_pass = a.get("--user").is_some();
    let agents: Vec<String> = a
        .str("--agents", "load0")
        .split(',')
        .map(String::from)
        .collect();
    let site = a.str("--site", "bench");
    let rate = a.num("--rate", 100_000) as f64;
    let batch = a.num("--batch", 500).max(1) as usize;
    let seconds = a.num("--seconds", 5);
    let probe_ms = a.num("--probe-ms", 50).max(1);
    let pass_suffix = a.str("--pass-suffix", "-secret");

    // Alarm stream watcher (dcim-server only). Only probes sent by this run count, each once
    // (its first `activated` record).
    let sent_probes: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (lat_tx, lat_rx) = mpsc::channel::<(f64, f64)>();
    if let Some(http) = a.get("--sse") {
        let token = a.str("--token", "");
        let mut s = TcpStream::connect(http).map_err(|e| format!("connect {http}: {e}"))?;
        write!(
            s,
            "GET /api/stream?events=alarm HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status).map_err(|e| e.to_string())?;
        if !status.contains(" 200") {
            return Err(format!("/api/stream: {}", status.trim()));
        }
        let sent_probes = sent_probes.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                let at = now_ms();
                if line.starts_with("data:")
                    && line.contains("activated")
                    && let Some(i) = line.find("rack-t")
                {
                    let name: String = line[i..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect();
                    let digits: String =
                        name[6..].chars().take_while(char::is_ascii_digit).collect();
                    let ours = sent_probes.lock().map(|mut s| s.remove(&name));
                    // The record's own time: when the engine decided.
                    let decided = line.find("\"ts_ms\":").and_then(|i| {
                        line[i + 8..]
                            .chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                            .parse::<u64>()
                            .ok()
                    });
                    if let (Ok(true), Ok(sent)) = (ours, digits.parse::<u64>()) {
                        let decision = decided.map_or(f64::NAN, |d| d.saturating_sub(sent) as f64);
                        let _ = lat_tx.send((decision, at.saturating_sub(sent) as f64));
                    }
                }
                line.clear();
            }
        });
    } else {
        drop(lat_tx);
    }

    let published = Arc::new(AtomicU64::new(0));
    let probes = Arc::new(AtomicU64::new(0));
    let per_agent = rate / agents.len() as f64;
    let interval = Duration::from_secs_f64(batch as f64 / per_agent);
    let mut threads = Vec::new();
    let t_start = Instant::now();
    for (ai, agent) in agents.iter().enumerate() {
        let pass = format!("{agent}{pass_suffix}");
        let mut s = mqtt_connect(
            port,
            &format!("{agent}-bench"),
            user_pass.then_some(agent.as_str()),
            user_pass.then_some(pass.as_str()),
        )?;
        let topic = format!("dcim/v1/{site}/{agent}/telemetry");
        let (agent, published, probes) = (agent.clone(), published.clone(), probes.clone());
        let sent_probes = sent_probes.clone();
        let probe_here = ai == 0;
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            // Strictly increasing across runs too, at up to 1,000 batches per ms and agent: a run
            // that started below the previous run's last seq would have its batches dropped as
            // replays (the server keeps each agent's high-water), which reads as loss.
            let mut seq = now_ms() * 1000;
            let mut pkt = Vec::new();
            let mut next_probe = Instant::now();
            let end = t_start + Duration::from_secs(seconds);
            let mut next = Instant::now();
            while next < end {
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
                let ts = now_ms();
                let probe = (probe_here && Instant::now() >= next_probe).then(|| {
                    next_probe += Duration::from_millis(probe_ms);
                    probes.fetch_add(1, Ordering::Relaxed);
                    let name = format!("rack-t{ts}-{seq}");
                    if let Ok(mut s) = sent_probes.lock() {
                        s.insert(name.clone());
                    }
                    name
                });
                seq += 1;
                let json = batch_json(&agent, seq, batch, ts, probe.as_deref());
                publish_packet(&mut pkt, &topic, json.as_bytes());
                s.write_all(&pkt).map_err(|e| format!("publish: {e}"))?;
                published.fetch_add(batch as u64, Ordering::Relaxed);
                next += interval;
            }
            let _ = s.write_all(&[0xe0, 0]);
            Ok(())
        }));
    }
    for t in threads {
        t.join().map_err(|_| "publisher panicked")??;
    }
    let el = t_start.elapsed().as_secs_f64();
    let sent = published.load(Ordering::Relaxed);
    // Give the last alarms a moment to arrive.
    std::thread::sleep(Duration::from_millis(a.num("--drain-ms", 1500)));
    let (mut decided, mut lat): (Vec<f64>, Vec<f64>) = lat_rx.try_iter().unzip();
    lat.sort_by(f64::total_cmp);
    decided.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| {
        if v.is_empty() {
            f64::NAN
        } else {
            v[((v.len() as f64 - 1.0) * p).round() as usize]
        }
    };
    println!(
        "mqtt_publish offered_pps={rate:.0} published={sent} seconds={el:.2} achieved_pps={:.0} probes={} alarms_seen={} alarm_decision_p50_ms={:.0} alarm_decision_p99_ms={:.0} alarm_p50_ms={:.0} alarm_p99_ms={:.0} cpu_s={:.2}",
        sent as f64 / el,
        probes.load(Ordering::Relaxed),
        lat.len(),
        pct(&decided, 0.5),
        pct(&decided, 0.99),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        process_cpu_s()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_length_varint() {
        let mut v = Vec::new();
        put_len(&mut v, 321);
        assert_eq!(v, [0xc1, 0x02]);
    }

    #[test]
    fn modbus_request_frame() {
        assert_eq!(
            read_request(7, 1, 0, 125),
            [0, 7, 0, 0, 0, 6, 1, 4, 0, 0, 0, 125]
        );
    }

    #[test]
    fn batch_is_wire_shaped() {
        let j = batch_json("a", 3, 2, 1000, Some("rack-t1000-3"));
        assert!(j.starts_with("{\"v\":1,\"agent\":\"a\",\"seq\":3,\"samples\":[{"));
        assert_eq!(j.matches("\"ts_ms\":1000").count(), 3);
        assert!(j.contains("\"role\":\"fire.stage\",\"value\":3"));
    }
}
