//! Transmitter behaviour against a small in-process receiver built on the codec (no Python):
//! queue jumping, de-duplication, drill flag, supervision and periodic test, bad replies.

use dc09_link::{LinkConfig, LinkEvent, PathConfig, Submission, Transmitter, Transport};
use sia_dc09::{
    Account, DecodedMessage, Event, EventKind, Key, ResponseKind, Seq, Token, decode_message,
    encode_response,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Copy)]
enum Mode {
    Ack {
        delay_ms: u64,
    },
    /// Replies with bytes that are not a DC-09 frame.
    Garbage,
}

#[derive(Clone)]
struct RustReceiver {
    port: u16,
    got: Arc<Mutex<Vec<DecodedMessage>>>,
}

impl RustReceiver {
    async fn start(mode: Mode, key: Option<Key>) -> RustReceiver {
        RustReceiver::start_on(0, mode, key).await
    }

    async fn start_on(port: u16, mode: Mode, key: Option<Key>) -> RustReceiver {
        let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = l.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let g = g.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.iter().position(|&b| b == b'\r') {
                            let frame: Vec<u8> = buf.drain(..=end).collect();
                            let m = decode_message(&frame, key.as_ref())
                                .expect("transmitter frame decodes");
                            g.lock().unwrap().push(m.clone());
                            let reply = match mode {
                                Mode::Ack { delay_ms } => {
                                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                                    encode_response(
                                        ResponseKind::Ack,
                                        Seq::new(m.seq),
                                        &m.header,
                                        key.as_ref(),
                                        Some(dcim_clock::now_ms()),
                                        &[3; 16],
                                    )
                                }
                                Mode::Garbage => b"\nnot a reply\r".to_vec(),
                            };
                            if s.write_all(&reply).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        RustReceiver { port, got }
    }

    fn events(&self) -> Vec<DecodedMessage> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.token != Token::Null)
            .cloned()
            .collect()
    }
}

fn cfg(ports: &[u16]) -> LinkConfig {
    let paths = ports
        .iter()
        .enumerate()
        .map(|(i, p)| PathConfig {
            name: format!("p{i}"),
            addr: format!("127.0.0.1:{p}").parse().unwrap(),
            transport: Transport::Tcp,
            supervision_ms: 0,
        })
        .collect();
    let mut c = LinkConfig::new(Account::new("1234").unwrap(), paths);
    c.ack_timeout_ms = 500;
    c.attempts_per_path = 1;
    c.test_interval_ms = 0;
    c.all_paths_down_backoff_ms = 100;
    c.down_probe_ms = 100;
    c
}

fn sub(id: &str, e: Event) -> Submission {
    Submission {
        event_id: id.into(),
        event: e,
    }
}

async fn wait_pending_zero(h: &dc09_link::Handle) {
    let mut st = h.stats();
    tokio::time::timeout(Duration::from_secs(10), st.wait_for(|s| s.pending == 0))
        .await
        .expect("all delivered")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_alarm_jumps_the_queue() {
    let rcv = RustReceiver::start(Mode::Ack { delay_ms: 100 }, None).await;
    let dir = tempfile::tempdir().unwrap();
    let h = Transmitter::start(cfg(&[rcv.port]), dir.path())
        .await
        .unwrap();
    for i in 0..4 {
        h.submit(sub(
            &format!("t{i}"),
            Event::new(EventKind::FireTrouble, 1, i),
        ))
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(30)).await; // t0 is in flight
    h.submit(sub("alarm", Event::new(EventKind::FireStage3Agent, 1, 9)))
        .await
        .unwrap();
    wait_pending_zero(&h).await;
    let codes: Vec<String> = rcv.events().iter().map(|m| m.data.clone()).collect();
    assert_eq!(codes.len(), 5);
    // at most the one trouble already in flight goes before the alarm
    let pos = codes.iter().position(|c| c == "#1234|Nri1/SA0009").unwrap();
    assert!(pos <= 1, "alarm at position {pos}: {codes:?}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_event_id_raises_one_alarm() {
    let rcv = RustReceiver::start(Mode::Ack { delay_ms: 0 }, None).await;
    let dir = tempfile::tempdir().unwrap();
    let h = Transmitter::start(cfg(&[rcv.port]), dir.path())
        .await
        .unwrap();
    let e = Event::new(EventKind::FireSmoke, 3, 4);
    let a = h.submit(sub("evt-1", e)).await.unwrap();
    let b = h.submit(sub("evt-1", e)).await.unwrap();
    wait_pending_zero(&h).await;
    let c = h.submit(sub("evt-1", e)).await.unwrap();
    assert!(!a.duplicate && b.duplicate && c.duplicate);
    assert_eq!((a.seq, b.seq, c.seq), (a.seq, a.seq, a.seq));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rcv.events().len(), 1);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_mode_flags_messages_as_test() {
    let key =
        Key::from_hex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F").unwrap();
    let rcv = RustReceiver::start(Mode::Ack { delay_ms: 0 }, Some(key.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(&[rcv.port]);
    c.key = Some(key);
    let h = Transmitter::start(c, dir.path()).await.unwrap();
    h.set_test_mode(true);
    h.submit(sub("d1", Event::new(EventKind::FireStage1, 2, 17)))
        .await
        .unwrap();
    h.set_test_mode(false);
    h.submit(sub(
        "d2",
        Event::new(EventKind::FireStage1, 2, 17).restored(),
    ))
    .await
    .unwrap();
    wait_pending_zero(&h).await;
    let ev = rcv.events();
    assert!(ev.iter().all(|m| m.encrypted));
    let data: Vec<_> = ev.iter().map(|m| m.data.as_str()).collect();
    assert_eq!(data, ["#1234|Nri2/FX0017", "#1234|Nri2/KH0017"]);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervision_per_path_and_periodic_test() {
    let a = RustReceiver::start(Mode::Ack { delay_ms: 0 }, None).await;
    let b = RustReceiver::start(Mode::Ack { delay_ms: 0 }, None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(&[a.port, b.port]);
    c.paths[0].supervision_ms = 100;
    c.paths[1].supervision_ms = 150;
    c.test_interval_ms = 250;
    let h = Transmitter::start(c, dir.path()).await.unwrap();
    let nulls = |r: &RustReceiver| {
        r.got
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.token == Token::Null)
            .count()
    };
    let tests = |r: &RustReceiver| {
        r.events()
            .iter()
            .filter(|m| m.data.ends_with("/RP0000"))
            .count()
    };
    let t0 = std::time::Instant::now();
    while !(nulls(&a) >= 3 && nulls(&b) >= 2 && tests(&a) >= 2) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "NULLs a={} b={}, periodic tests {}",
            nulls(&a),
            nulls(&b),
            tests(&a)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.shutdown().await;
    assert!(b.events().is_empty(), "events go over the preferred path");
    // sequence numbers are distinct across NULLs and events
    let mut seqs: Vec<u16> = a
        .got
        .lock()
        .unwrap()
        .iter()
        .chain(b.got.lock().unwrap().iter())
        .map(|m| m.seq)
        .collect();
    let n = seqs.len();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_replies_count_as_failures_and_fail_over() {
    let bad = RustReceiver::start(Mode::Garbage, None).await;
    let good = RustReceiver::start(Mode::Ack { delay_ms: 0 }, None).await;
    let dir = tempfile::tempdir().unwrap();
    let h = Transmitter::start(cfg(&[bad.port, good.port]), dir.path())
        .await
        .unwrap();
    let mut rx = h.subscribe();
    let q = h
        .submit(sub("x", Event::new(EventKind::FireGasReleased, 1, 1)))
        .await
        .unwrap();
    let mut delivered = Vec::new();
    while delivered.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("delivery")
            .unwrap();
        if let LinkEvent::Delivered {
            seq, path, event, ..
        } = e
        {
            delivered.push((seq, path, event.kind));
        }
    }
    assert_eq!(
        delivered[0],
        (q.seq, "p1".to_string(), EventKind::FireGasReleased)
    );
    assert_eq!(delivered[1].2, EventKind::PathFail);
    // the same sequence number went to both receivers
    assert_eq!(bad.events()[0].seq, q.seq.get());
    assert_eq!(good.events()[0].seq, q.seq.get());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_waits_out_a_total_outage_and_goes_when_a_path_returns() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(&[port]);
    c.paths[0].supervision_ms = 50;
    c.all_paths_down_backoff_ms = 300;
    let h = Transmitter::start(c, dir.path()).await.unwrap();
    let mut rx = h.subscribe();
    let q = h
        .submit(sub("a", Event::new(EventKind::FireStage2Patch, 3, 33)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!h.stats().borrow().paths[0].1, "path reported down");
    let rcv = RustReceiver::start_on(port, Mode::Ack { delay_ms: 0 }, None).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        match tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("deliveries")
            .unwrap()
        {
            LinkEvent::Delivered { seq, event, .. } => {
                if kinds.is_empty() {
                    assert_eq!(seq, q.seq, "the alarm goes first");
                }
                kinds.push((event.kind, event.restore));
            }
            _ => continue,
        }
    }
    assert_eq!(
        kinds,
        [
            (EventKind::FireStage2Patch, false),
            (EventKind::PathFail, false),
            (EventKind::PathFail, true)
        ]
    );
    assert_eq!(rcv.events()[0].data, "#1234|Nri3/FA0033");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_that_cannot_be_encoded_are_refused_at_submit() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(&[9]);
    c.codes.format = sia_dc09::Format::AdmCid;
    let h = Transmitter::start(c, dir.path()).await.unwrap();
    let e = h
        .submit(sub("z", Event::new(EventKind::FireSmoke, 100, 1)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("zone 100 out of range"), "{e}");
    assert!(
        h.submit(sub("", Event::new(EventKind::FireSmoke, 1, 1)))
            .await
            .is_err()
    );
    assert!(h.pending().is_empty());
    h.shutdown().await;
}

/// Hazard: scripts and operators drive `dc09-send` by its lines; an undocumented or changed
/// line silently breaks them. `--help` must document the input line and every output line the
/// tool can print.
#[test]
fn dc09_send_help_documents_its_input_and_output_lines() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dc09-send"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("<event-id> <kind> [zone] [rack] [restore] [test]"));
    let source = include_str!("../../src/bin/dc09-send.rs");
    // Every line the tool prints starts with `println!("WORD ...`: each WORD is in the help.
    let mut printed = 0;
    for (at, _) in source.match_indices("println!(\"") {
        if source[..at].ends_with('e') {
            continue; // eprintln!: messages on standard error
        }
        let part = &source[at + "println!(\"".len()..];
        let word: String = part
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '-')
            .collect();
        assert!(!word.is_empty(), "unexpected output line: {part:.40}");
        assert!(
            help.contains(&format!("\n    {word} ")),
            "`{word}` is printed but not documented in --help"
        );
        printed += 1;
    }
    assert!(printed >= 10, "found only {printed} output lines");
    for kind in sia_dc09::EventKind::ALL {
        assert!(
            help.contains(kind.name()),
            "kind {kind} missing from --help"
        );
    }
}

/// Hazard: a transmitter that read the system clock instead of the one it was started with
/// would stamp queue and delivery times and the message timestamps by real time: its
/// supervision, probes and back-off could not be tested on paused or hand-set time, and the
/// daemon's records and the receiver's would disagree with the daemon's own clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_delivery_and_message_times_come_from_the_transmitters_clock() {
    const T: i64 = 1_600_000_000_000;
    let key =
        Key::from_hex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F").unwrap();
    let rcv = RustReceiver::start(Mode::Ack { delay_ms: 0 }, Some(key.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(&[rcv.port]);
    c.key = Some(key);
    let clock = dcim_clock::Clock::manual(T);
    let h = Transmitter::start_with_clock(c, dir.path(), 0, clock.clone())
        .await
        .unwrap();
    let mut events = h.subscribe();
    h.submit(sub("clocked", Event::new(EventKind::FireSmoke, 1, 1)))
        .await
        .unwrap();
    let times = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(LinkEvent::Delivered {
                event_id,
                queued_ms,
                acked_ms,
                ..
            }) = events.recv().await
                && event_id == "clocked"
            {
                return (queued_ms, acked_ms);
            }
        }
    })
    .await
    .expect("delivered");
    assert_eq!(times, (T, T));
    let sent: Vec<Option<i64>> = rcv.events().iter().map(|m| m.timestamp_ms).collect();
    assert_eq!(sent, vec![Some(T)], "the message carries the clock's time");
    h.shutdown().await;
}
