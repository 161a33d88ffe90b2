//! Loopback submit-to-ACK latency of the DC-09 transmitter.
//!
//! `cargo bench -p dc09-link --bench submit_to_ack` — sends N fire alarms one after the other
//! (each submitted only after the previous one was ACKed) and reports percentiles of
//! (a) submit() until the message is fsynced in the outbox and (b) submit() until the ACK.
//! Receiver: pysiaalarm over TCP when importable with $DCIM_PYTHON (the realistic peer), else
//! an in-process receiver built on the codec; force one with DC09_BENCH_RECEIVER=rust|pysiaalarm.
//! N: DC09_BENCH_N (default 500). Encryption: DC09_BENCH_AES=1 (AES-128).

use dc09_link::{LinkConfig, LinkEvent, PathConfig, Submission, Transmitter, Transport};
use sia_dc09::{
    Account, Event, EventKind, Key, ResponseKind, Seq, decode_message, encode_response,
};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "AAAAAAAAAAAAAAAA";

async fn rust_receiver(key: Option<Key>) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let key = key.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while let Ok(n) = s.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.iter().position(|&b| b == b'\r') {
                        let f: Vec<u8> = buf.drain(..=end).collect();
                        let Ok(m) = decode_message(&f, key.as_ref()) else {
                            continue;
                        };
                        let r = encode_response(
                            ResponseKind::Ack,
                            Seq::new(m.seq),
                            &m.header,
                            key.as_ref(),
                            Some(dcim_clock::now_ms()),
                            &[1; 16],
                        );
                        if s.write_all(&r).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn main() {
    let n: usize = std::env::var("DC09_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let aes = std::env::var("DC09_BENCH_AES").as_deref() == Ok("1");
    let py = std::env::var("DCIM_PYTHON").unwrap_or_else(|_| "python3".into());
    let want = std::env::var("DC09_BENCH_RECEIVER").unwrap_or_default();
    let py_ok = want != "rust"
        && Command::new(&py)
            .args(["-c", "import pysiaalarm"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut child = None;
    let (port, which) = if py_ok {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/interop/dc09/receiver.py"
        );
        let mut cmd = Command::new(&py);
        cmd.arg(script).args(["--account", "1234"]);
        if aes {
            cmd.args(["--key", KEY]);
        }
        let mut c = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(c.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        child = Some(c);
        (
            line.trim()
                .strip_prefix("PORT ")
                .unwrap()
                .parse::<u16>()
                .unwrap(),
            "pysiaalarm 3.2.2 (Python)",
        )
    } else {
        let key = aes.then(|| Key::from_ascii(KEY).unwrap());
        (rt.block_on(rust_receiver(key)), "in-process Rust")
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut queued, mut acked) = rt.block_on(async {
        let path = PathConfig {
            name: "main".into(),
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            transport: Transport::Tcp,
            supervision_ms: 0,
        };
        let mut cfg = LinkConfig::new(Account::new("1234").unwrap(), vec![path]);
        cfg.test_interval_ms = 0;
        if aes {
            cfg.key = Some(Key::from_ascii(KEY).unwrap());
        }
        let h = Transmitter::start(cfg, dir.path()).await.unwrap();
        let mut rx = h.subscribe();
        let (mut q, mut a) = (Vec::new(), Vec::new());
        for i in 0..n + 20 {
            let t0 = Instant::now();
            let ev = Event::new(EventKind::FireStage3Agent, 1, (i % 1000) as u16);
            h.submit(Submission {
                event_id: format!("b{i}"),
                event: ev,
            })
            .await
            .unwrap();
            let t1 = t0.elapsed();
            loop {
                let next = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
                let Ok(next) = next else {
                    panic!(
                        "no ACK within 10 s for message {i}: {:?}",
                        *h.stats().borrow()
                    );
                };
                match next.unwrap() {
                    LinkEvent::Delivered { .. } => break,
                    LinkEvent::Rejected { .. } => panic!("rejected"),
                    other => eprintln!("{other:?}"),
                }
            }
            let t2 = t0.elapsed();
            if i >= 20 {
                // the first 20 warm up the connection and caches
                q.push(t1.as_secs_f64() * 1e3);
                a.push(t2.as_secs_f64() * 1e3);
            }
        }
        h.shutdown().await;
        (q, a)
    });
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
    println!(
        "dc09 submit-to-ACK over loopback TCP, {} receiver, {}, n={n}",
        which,
        if aes { "AES-128" } else { "plain" }
    );
    println!(
        "  submit (fsynced in outbox): p50 {:.2} ms  p99 {:.2} ms",
        pct(&mut queued, 0.5),
        pct(&mut queued, 0.99)
    );
    println!(
        "  submit -> ACK:              p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        pct(&mut acked, 0.5),
        pct(&mut acked, 0.99),
        pct(&mut acked, 1.0)
    );
}
