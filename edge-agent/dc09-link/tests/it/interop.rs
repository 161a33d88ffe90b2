//! Interop tests against pysiaalarm as the receiver (see `tests/interop/dc09/receiver.py`).
//! Skipped with a message when pysiaalarm is missing, unless `DCIM_REQUIRE_PEERS=1`.

use crate::common;

use common::*;
use dc09_link::{
    Handle, LinkConfig, LinkEvent, PathConfig, Queued, Submission, Transmitter, Transport,
};
use serde_json::Value;
use sia_dc09::{Account, CodeTable, Event, EventKind, Format, Key};
use std::time::Duration;
use tokio::sync::broadcast;

fn path(name: &str, port: u16, transport: Transport) -> PathConfig {
    PathConfig {
        name: name.into(),
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        transport,
        supervision_ms: 0,
    }
}

fn config(paths: Vec<PathConfig>, key: Option<Key>) -> LinkConfig {
    let mut c = LinkConfig::new(Account::new("1234").unwrap(), paths);
    c.header.receiver = Some(1);
    c.key = key;
    c.ack_timeout_ms = 2000;
    c.attempts_per_path = 2;
    c.test_interval_ms = 0;
    c.all_paths_down_backoff_ms = 200;
    c.down_probe_ms = 200;
    c
}

/// Every kind, its restore where it has one, and one drill (test) message.
fn all_events() -> Vec<Event> {
    let mut v = Vec::new();
    for (i, k) in EventKind::ALL.into_iter().enumerate() {
        let e = Event::new(k, 1 + i as u16 % 3, 100 + i as u16);
        v.push(e);
        if k.has_restore() {
            v.push(e.restored());
        }
    }
    v.push(Event::new(EventKind::FireStage3Agent, 2, 42).as_test());
    v
}

/// Waits for `n` Delivered/Rejected events.
async fn outcomes(rx: &mut broadcast::Receiver<LinkEvent>, n: usize, secs: u64) -> Vec<LinkEvent> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while got.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e @ (LinkEvent::Delivered { .. } | LinkEvent::Rejected { .. }))) => got.push(e),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("event stream: {e}"),
            Err(_) => panic!("timed out with {} of {n} outcomes: {got:?}", got.len()),
        }
    }
    got
}

fn rows_for_seq(rows: &[Value], seq: sia_dc09::Seq) -> Vec<&Value> {
    let s = seq.to_string();
    rows.iter()
        .filter(|r| r["sequence"] == s.as_str())
        .collect()
}

/// Submits `event` under `event_id`.
async fn submit(h: &Handle, event_id: &str, event: Event) -> Queued {
    h.submit(Submission {
        event_id: event_id.into(),
        event,
    })
    .await
    .unwrap()
}

/// The transmitter with `cfg` and its outbox in `outbox`, and a subscription to its outcomes.
async fn start(
    cfg: LinkConfig,
    outbox: impl AsRef<std::path::Path>,
) -> (Handle, broadcast::Receiver<LinkEvent>) {
    let h = Transmitter::start(cfg, outbox.as_ref()).await.unwrap();
    let rx = h.subscribe();
    (h, rx)
}

async fn submit_all(h: &Handle, events: &[Event], prefix: &str) -> Vec<(Event, sia_dc09::Seq)> {
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let q = submit(h, &format!("{prefix}-{i}"), *e).await;
        assert!(!q.duplicate);
        out.push((*e, q.seq));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_code_is_acked_plain_and_encrypted_all_key_sizes_and_encodings() {
    let Some(py) = python("every_code_is_acked") else {
        return;
    };
    let table = CodeTable::default();
    let acct = Account::new("1234").unwrap();
    // (receiver key as pysiaalarm takes it, our key, transport)
    let cases: Vec<(Option<&str>, Option<Key>, Transport)> = vec![
        (None, None, Transport::Tcp),
        (None, None, Transport::Udp),
        (
            Some("AAAAAAAAAAAAAAAA"),
            Some(Key::from_ascii("AAAAAAAAAAAAAAAA").unwrap()),
            Transport::Tcp,
        ),
        // the same 16 ASCII characters given to us as a hex key
        (
            Some("0123456789ABCDEF"),
            Some(Key::from_hex("30313233343536373839414243444546").unwrap()),
            Transport::Tcp,
        ),
        (
            Some("0123456789ABCDEF01234567"),
            Some(Key::from_ascii("0123456789ABCDEF01234567").unwrap()),
            Transport::Udp,
        ),
        (
            Some("0123456789ABCDEF0123456789ABCDEF"),
            Some(Key::from_ascii("0123456789ABCDEF0123456789ABCDEF").unwrap()),
            Transport::Tcp,
        ),
    ];
    for (ci, (rkey, key, transport)) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let udp = transport == Transport::Udp;
        let rx_log = dir.path().join("rx.jsonl");
        let rcv = Receiver::start(
            &py,
            &rx_log,
            ReceiverOpts {
                key: rkey,
                udp,
                ..Default::default()
            },
        );
        let h = Transmitter::start(
            config(vec![path("p", rcv.port, transport)], key.clone()),
            dir.path().join("ob"),
        )
        .await
        .unwrap();
        let mut rx = h.subscribe();
        let events = all_events();
        let sent = submit_all(&h, &events, &format!("c{ci}")).await;
        let out = outcomes(&mut rx, sent.len(), 60).await;
        assert!(
            out.iter().all(|o| matches!(o, LinkEvent::Delivered { .. })),
            "case {ci}: not all delivered: {out:?}"
        );
        let rows = rcv.rows();
        for (ev, seq) in &sent {
            let p = table.payload(&acct, ev).unwrap();
            let r = rows_for_seq(&rows, *seq);
            assert_eq!(r.len(), 1, "case {ci} {ev:?}: rows {r:?}");
            assert_eq!(r[0]["response"], "ACK", "case {ci} {ev:?}");
            assert_eq!(r[0]["code"], p.code.as_str(), "case {ci} {ev:?}");
            assert_eq!(r[0]["ri"], ev.zone.to_string().as_str());
            assert_eq!(r[0]["unit"], format!("{:04}", ev.rack).as_str());
            assert_eq!(r[0]["encrypted"], rkey.is_some());
        }
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adm_cid_codes_are_acked() {
    let Some(py) = python("adm_cid_codes_are_acked") else {
        return;
    };
    for rkey in [None, Some("AAAAAAAAAAAAAAAA")] {
        let dir = tempfile::tempdir().unwrap();
        let rcv = Receiver::start(
            &py,
            &dir.path().join("rx.jsonl"),
            ReceiverOpts {
                key: rkey,
                ..Default::default()
            },
        );
        let mut cfg = config(
            vec![path("p", rcv.port, Transport::Tcp)],
            rkey.map(|k| Key::from_ascii(k).unwrap()),
        );
        cfg.codes.format = Format::AdmCid;
        let table = cfg.codes.clone();
        let (h, mut rx) = start(cfg, dir.path().join("ob")).await;
        let sent = submit_all(&h, &all_events(), "cid").await;
        let out = outcomes(&mut rx, sent.len(), 60).await;
        assert!(
            out.iter().all(|o| matches!(o, LinkEvent::Delivered { .. })),
            "{out:?}"
        );
        let rows = rcv.rows();
        for (ev, seq) in &sent {
            let r = rows_for_seq(&rows, *seq);
            assert_eq!(r.len(), 1, "{ev:?}");
            assert_eq!(r[0]["response"], "ACK");
            assert_eq!(r[0]["type"], "ADM-CID");
            let p = table.payload(&Account::new("1234").unwrap(), ev).unwrap();
            assert_eq!(r[0]["qualifier"], &p.code[..1]);
            assert_eq!(r[0]["event_type"], &p.code[1..]);
            assert_eq!(r[0]["partition"], format!("{:02}", ev.zone).as_str());
            assert_eq!(r[0]["ri"], format!("{:03}", ev.rack).as_str());
        }
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duh_is_a_local_trouble_without_retry_loop() {
    let Some(py) = python("duh_is_a_local_trouble") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rcv = Receiver::start(&py, &dir.path().join("rx.jsonl"), ReceiverOpts::default());
    let mut cfg = config(vec![path("p", rcv.port, Transport::Tcp)], None);
    // a code this receiver does not know
    cfg.codes = CodeTable::from_toml("[codes.\"fire.trouble\"]\nsia = \"ZX\"\n", "test").unwrap();
    let (h, mut rx) = start(cfg, dir.path().join("ob")).await;
    let bad = submit(&h, "bad", Event::new(EventKind::FireTrouble, 1, 1)).await;
    let good = submit(&h, "good", Event::new(EventKind::FireSmoke, 1, 1)).await;
    let out = outcomes(&mut rx, 2, 20).await;
    assert!(
        out.iter()
            .any(|o| matches!(o, LinkEvent::Delivered { event_id, .. } if event_id == "good")),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, LinkEvent::Rejected { event_id, .. } if event_id == "bad")),
        "{out:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rows = rcv.rows();
    let duh = rows_for_seq(&rows, bad.seq);
    assert_eq!(duh.len(), 1, "DUH must not be retried: {duh:?}");
    assert_eq!(duh[0]["response"], "DUH");
    assert_eq!(rows_for_seq(&rows, good.seq)[0]["response"], "ACK");
    assert!(h.pending().is_empty());
    h.shutdown().await;
}

/// Hazard: a receiving centre whose code table lacks a stage code answers DUH and, without a
/// fallback, never learns of that fire stage. The message must go out again with the generic
/// fire alarm code of its format (a new sequence number), be ACKed, and the outbox must say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_alarm_refused_with_duh_is_delivered_with_the_generic_fire_code() {
    let Some(py) = python("fire_alarm_duh_fallback") else {
        return;
    };
    // (format, code table, receiver options, refused code, generic code as pysiaalarm logs it)
    let cases = [
        // ADM-CID: stage 4 uses Contact ID 205, which pysiaalarm's table lacks (strict receiver).
        ("adm-cid", "format = \"adm-cid\"\n", true, "1205", "FA"),
        // SIA-DCS: a receiver that does not know the stage's letters.
        (
            "sia-dcs",
            "[codes.\"fire.stage4_coolant\"]\nsia = \"WZ\"\n",
            false,
            "WZ",
            "FA",
        ),
    ];
    for (name, table, strict_cid, refused, generic_logged) in cases {
        let dir = tempfile::tempdir().unwrap();
        let rcv = Receiver::start(
            &py,
            &dir.path().join("rx.jsonl"),
            ReceiverOpts {
                strict_cid,
                ..Default::default()
            },
        );
        let mut cfg = config(vec![path("p", rcv.port, Transport::Tcp)], None);
        cfg.codes = CodeTable::from_toml(table, "test").unwrap();
        let ob_dir = dir.path().join("ob");
        let (h, mut rx) = start(cfg, &ob_dir).await;
        let q = submit(&h, "stage4", Event::new(EventKind::FireStage4Coolant, 1, 7)).await;
        let mut fell_back = None;
        let mut delivered = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while delivered.is_none() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(LinkEvent::FallingBack { seq, fallback, .. })) => {
                    fell_back = Some((seq, fallback))
                }
                Ok(Ok(LinkEvent::Delivered { seq, fallback, .. })) => {
                    delivered = Some((seq, fallback))
                }
                Ok(Ok(LinkEvent::Rejected { .. })) => panic!("{name}: the fire alarm was dropped"),
                Ok(Ok(_)) => {}
                other => panic!("{name}: no delivery: {other:?}"),
            }
        }
        let (fb_seq, fb) = fell_back.expect("a FallingBack report before the delivery");
        assert_eq!(fb.refused, refused, "{name}");
        let (d_seq, d_fb) = delivered.unwrap();
        assert_eq!(d_seq, fb_seq, "{name}: delivered under the new number");
        assert_ne!(
            d_seq, q.seq,
            "{name}: a new message, not a resend of the refused one"
        );
        assert_eq!(d_fb.as_ref(), Some(&fb), "{name}");
        let rows = rcv.rows();
        let first = rows_for_seq(&rows, q.seq);
        assert_eq!(first.len(), 1, "{name}: {rows:?}");
        assert_eq!(first[0]["response"], "DUH", "{name}");
        let second = rows_for_seq(&rows, d_seq);
        assert_eq!(second.len(), 1, "{name}: {rows:?}");
        assert_eq!(second[0]["response"], "ACK", "{name}");
        assert_eq!(second[0]["code"], generic_logged, "{name}");
        if name == "adm-cid" {
            assert_eq!(second[0]["event_type"], "110");
            assert_eq!(second[0]["qualifier"], "1");
        }
        assert!(h.pending().is_empty());
        h.shutdown().await;
        // The outbox log records the substitution (read as text: it is JSON records).
        let log = std::fs::read(ob_dir.join("outbox.log")).unwrap();
        let log = String::from_utf8_lossy(&log);
        assert!(
            log.contains("\"r\":\"fallback\"")
                && log.contains(&format!("\"refused\":\"{refused}\"")),
            "{name}: the outbox does not record the fallback: {log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nak_on_skewed_clock_is_recovered() {
    let Some(py) = python("nak_on_skewed_clock") else {
        return;
    };
    for (rkey, skew) in [(None, 300), (Some("AAAAAAAAAAAAAAAA"), -600)] {
        let dir = tempfile::tempdir().unwrap();
        let rcv = Receiver::start(
            &py,
            &dir.path().join("rx.jsonl"),
            ReceiverOpts {
                key: rkey,
                clock_offset_s: skew,
                ..Default::default()
            },
        );
        let mut cfg = config(
            vec![path("p", rcv.port, Transport::Tcp)],
            rkey.map(|k| Key::from_ascii(k).unwrap()),
        );
        // one attempt per path: the resend after the NAK must not need a second one
        cfg.attempts_per_path = 1;
        let (h, mut rx) = start(cfg, dir.path().join("ob")).await;
        let q = submit(&h, "a", Event::new(EventKind::FireStage1, 1, 5)).await;
        let mut nak_offset = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline, rx.recv())
                .await
                .expect("timed out")
                .unwrap()
            {
                LinkEvent::Nak { offset_ms, .. } => nak_offset = Some(offset_ms),
                LinkEvent::Delivered { seq, .. } => {
                    assert_eq!(seq, q.seq);
                    break;
                }
                other => assert!(!matches!(other, LinkEvent::Rejected { .. }), "{other:?}"),
            }
        }
        let off = nak_offset.expect("a NAK first");
        assert!(
            (off - skew * 1000).abs() < 2500,
            "offset {off} for skew {skew}s"
        );
        let rows = rcv.rows();
        let r = rows_for_seq(&rows, q.seq);
        let resp: Vec<_> = r
            .iter()
            .map(|r| r["response"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            resp,
            ["NAK", "ACK"],
            "same sequence number resent after the NAK"
        );
        // the next message goes straight through with the learnt offset
        let q2 = h
            .submit(Submission {
                event_id: "b".into(),
                event: Event::new(EventKind::FireStage1, 1, 5).restored(),
            })
            .await
            .unwrap();
        outcomes(&mut rx, 1, 10).await;
        let rows = rcv.rows();
        let resp: Vec<_> = rows_for_seq(&rows, q2.seq)
            .iter()
            .map(|r| r["response"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(resp, ["ACK"]);
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_fails_over_to_backup_and_restore_is_reported() {
    let Some(py) = python("fail_over") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let primary_port = free_port(false);
    let backup = Receiver::start(
        &py,
        &dir.path().join("backup.jsonl"),
        ReceiverOpts {
            udp: true,
            ..Default::default()
        },
    );
    let mut main = path("primary-main", primary_port, Transport::Tcp);
    main.supervision_ms = 200;
    let mut cfg = config(
        vec![main, path("primary-backup", backup.port, Transport::Udp)],
        None,
    );
    cfg.ack_timeout_ms = 500;
    let (h, mut rx) = start(cfg, dir.path().join("ob")).await;
    let q = submit(&h, "fire", Event::new(EventKind::FireStage3Agent, 1, 7)).await;
    // alarm first, then the path failure, both over the backup
    let out = outcomes(&mut rx, 2, 20).await;
    match &out[0] {
        LinkEvent::Delivered { seq, path, .. } => {
            assert_eq!((seq, path.as_str()), (&q.seq, "primary-backup"))
        }
        o => panic!("{o:?}"),
    }
    match &out[1] {
        LinkEvent::Delivered { event, path, .. } => {
            assert_eq!(path, "primary-backup");
            assert_eq!(
                (event.kind, event.restore, event.rack),
                (EventKind::PathFail, false, 1)
            );
        }
        o => panic!("{o:?}"),
    }
    let rows = backup.rows();
    assert!(
        rows.iter()
            .any(|r| r["code"] == "SA" && r["response"] == "ACK")
    );
    assert!(
        rows.iter()
            .any(|r| r["code"] == "YS" && r["unit"] == "0001" && r["response"] == "ACK")
    );
    assert_eq!(
        h.stats().borrow().paths[0],
        ("primary-main".to_string(), false)
    );

    // the primary receiver comes back: the probe sees it, the restore goes out over it
    let primary = Receiver::start(
        &py,
        &dir.path().join("primary.jsonl"),
        ReceiverOpts {
            port: primary_port,
            ..Default::default()
        },
    );
    let out = outcomes(&mut rx, 1, 20).await;
    match &out[0] {
        LinkEvent::Delivered { event, path, .. } => {
            assert_eq!(path, "primary-main");
            assert_eq!(
                (event.kind, event.restore, event.rack),
                (EventKind::PathFail, true, 1)
            );
        }
        o => panic!("{o:?}"),
    }
    assert!(
        primary
            .rows()
            .iter()
            .any(|r| r["code"] == "YK" && r["unit"] == "0001" && r["response"] == "ACK")
    );
    assert!(
        primary
            .rows()
            .iter()
            .any(|r| r["type"] == "NULL" && r["response"] == "ACK"),
        "NULL supervision ACKed"
    );
    assert_eq!(
        h.stats().borrow().paths[0],
        ("primary-main".to_string(), true)
    );
    h.shutdown().await;
}

#[test]
fn undelivered_messages_survive_a_dropped_runtime_and_are_delivered_exactly_once() {
    let Some(py) = python("outbox_restart") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port(false);
    let ob = dir.path().join("ob");
    let cfg = || {
        let mut c = config(vec![path("p", port, Transport::Tcp)], None);
        c.ack_timeout_ms = 300;
        c.attempts_per_path = 1;
        // no R prefix: pysiaalarm then echoes "None" in its place in the ACK
        c.header.receiver = None;
        c
    };
    let events: Vec<Event> = (0..5)
        .map(|i| Event::new(EventKind::FireTrouble, 1, i))
        .collect();
    // receiver down: everything stays queued; then the runtime is dropped mid-retry
    let seqs = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let seqs = rt.block_on(async {
            let h = Transmitter::start(cfg(), &ob).await.unwrap();
            let s = submit_all(&h, &events, "r").await;
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert_eq!(h.pending().len(), 5 + 1, "5 events + the path failure");
            s
        });
        drop(rt);
        seqs
    };
    let rcv = Receiver::start(
        &py,
        &dir.path().join("rx.jsonl"),
        ReceiverOpts {
            port,
            ..Default::default()
        },
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let h = Transmitter::start(cfg(), &ob).await.unwrap();
        assert_eq!(h.stats().borrow().recovered.pending, 6);
        // the same event ids are refused as duplicates with their original numbers
        let d = h
            .submit(Submission {
                event_id: "r-0".into(),
                event: events[0],
            })
            .await
            .unwrap();
        assert!(d.duplicate);
        assert_eq!(d.seq, seqs[0].1);
        let mut st = h.stats();
        tokio::time::timeout(Duration::from_secs(20), st.wait_for(|s| s.pending == 0))
            .await
            .unwrap()
            .unwrap();
        h.shutdown().await;
    });
    // a third start must send nothing
    rt.block_on(async {
        let h = Transmitter::start(cfg(), &ob).await.unwrap();
        assert!(h.pending().is_empty());
        tokio::time::sleep(Duration::from_millis(500)).await;
        h.shutdown().await;
    });
    let rows = rcv.rows();
    for (_, seq) in &seqs {
        let r = rows_for_seq(&rows, *seq);
        assert_eq!(r.len(), 1, "seq {seq} received {} times", r.len());
        assert_eq!(r[0]["response"], "ACK");
        assert_eq!(r[0]["code"], "FT");
    }
    assert_eq!(rows.iter().filter(|r| r["code"] == "FT").count(), 5);
}

#[test]
fn killed_transmitter_process_resends_after_restart_exactly_once() {
    let Some(py) = python("killed_process") else {
        return;
    };
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port(false);
    let conf = dir.path().join("link.toml");
    std::fs::write(
        &conf,
        format!(
            "account = \"1234\"\nreceiver = 1\nack_timeout_ms = 300\nattempts_per_path = 1\n\
             all_paths_down_backoff_ms = 200\ntest_interval_ms = 0\n\
             [[path]]\nname = \"main\"\naddr = \"127.0.0.1:{port}\"\nsupervision_ms = 0\n"
        ),
    )
    .unwrap();
    let ob = dir.path().join("ob");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_dc09-send"))
            .arg("--config")
            .arg(&conf)
            .arg("--outbox")
            .arg(&ob)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = spawn();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seqs = Vec::new();
    for i in 0..3 {
        writeln!(stdin, "k{i} fire.stage2_patch 2 {i}").unwrap();
        loop {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            if let Some(rest) = line.strip_prefix("QUEUED ") {
                seqs.push(rest.split_whitespace().next().unwrap().to_string());
                break;
            }
            assert!(!line.is_empty(), "dc09-send exited");
        }
    }
    child.kill().unwrap(); // SIGKILL: no shutdown path runs
    child.wait().unwrap();

    let rcv = Receiver::start(
        &py,
        &dir.path().join("rx.jsonl"),
        ReceiverOpts {
            port,
            ..Default::default()
        },
    );
    let mut child = spawn();
    let fa = |rows: &[Value]| {
        rows.iter()
            .filter(|r| r["code"] == "FA" && r["response"] == "ACK")
            .count()
    };
    let ok = wait_until(Duration::from_secs(20), || fa(&rcv.rows()) >= 3);
    // give a wrongly repeated send the chance to show up before counting
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ok, "not delivered after restart: {:?}", rcv.rows());
    let rows = rcv.rows();
    assert_eq!(fa(&rows), 3);
    for s in &seqs {
        assert_eq!(
            rows.iter()
                .filter(|r| r["code"] == "FA" && r["sequence"] == s.as_str())
                .count(),
            1,
            "seq {s}"
        );
    }
}
