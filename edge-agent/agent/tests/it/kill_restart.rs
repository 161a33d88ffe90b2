//! The agent is killed with SIGKILL while the center is unreachable and its spool holds events
//! and telemetry; after a restart with the broker up, everything it had reported as spooled
//! arrives, events without gaps and in order.

use crate::common;

use common::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Sequence numbers the agent logged as spooled, per stream.
fn spooled(log: &str) -> (BTreeSet<u64>, BTreeSet<u64>) {
    let mut events = BTreeSet::new();
    let mut batches = BTreeSet::new();
    for line in log.lines().filter(|l| l.contains("spooled")) {
        let Some(seq) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("seq="))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if line.contains("stream=\"event\"") {
            events.insert(seq);
        } else if line.contains("stream=\"telemetry\"") {
            batches.insert(seq);
        }
    }
    (events, batches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_a_full_spool_loses_nothing_spooled() {
    if !mosquitto_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("agent.toml");
    let center = broker_toml("center", port, "keep_alive_s = 5\n");
    let device = synthetic_toml(20, 5, 2);
    std::fs::write(
        &config,
        format!(
            r#"
site = "test-site"
agent = "agent-k"
log_level = "info,dcim_edge_agent::spooled=debug"
[spool]
dir = "spool"
max_mb = 64
[batch]
max_samples = 20
max_delay_ms = 20
{center}{device}"#
        ),
    )
    .unwrap();
    let log = dir.path().join("agent.log");

    // Phase 1: no broker; the agent spools, then dies without any chance to flush.
    let mut agent = spawn_agent(&config, &log);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ev, tel) = spooled(&std::fs::read_to_string(&log).unwrap_or_default());
        if ev.len() >= 50 && tel.len() >= 20 {
            break;
        }
        assert!(Instant::now() < deadline, "agent did not spool in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&agent, "-KILL");
    agent.wait().unwrap();
    let (ev_before, tel_before) = spooled(&std::fs::read_to_string(&log).unwrap());
    let max_event = *ev_before.last().unwrap();
    assert_eq!(
        ev_before,
        (1..=max_event).collect::<BTreeSet<_>>(),
        "event numbering has no gaps"
    );

    // Phase 2: broker up, subscriber listening, agent restarted.
    let broker = Mosquitto::start(&dir.path().join("broker"), port);
    let (got, sub) = subscribe(port, "kill-test-sub").await;
    let mut agent = spawn_agent(&config, &log);
    let all_there = wait_until(Duration::from_secs(20), || {
        let (ev, tel) = sequences(&got);
        let ev: BTreeSet<u64> = ev.into_iter().collect();
        let tel: BTreeSet<u64> = tel.into_iter().collect();
        ev_before.is_subset(&ev) && tel_before.is_subset(&tel)
    })
    .await;
    signal(&agent, "-TERM");
    let status = agent.wait().unwrap();
    sub.abort();
    let (events, batches) = sequences(&got);
    let received_ev: BTreeSet<u64> = events.iter().copied().collect();
    let received_tel: BTreeSet<u64> = batches.iter().copied().collect();
    assert!(
        all_there,
        "missing events {:?}, missing batches {:?}",
        ev_before.difference(&received_ev).collect::<Vec<_>>(),
        tel_before.difference(&received_tel).collect::<Vec<_>>()
    );
    // Events after the restart continue the numbering: one contiguous run from 1.
    let last = *received_ev.last().unwrap();
    assert!(last > max_event, "new events after the restart");
    assert_eq!(received_ev, (1..=last).collect::<BTreeSet<_>>());
    // In order: the first occurrence of each seq comes after the first occurrence of the one
    // before it.
    let mut seen = BTreeSet::new();
    let firsts: Vec<u64> = events.iter().copied().filter(|s| seen.insert(*s)).collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "events in order");
    assert!(status.success(), "graceful stop after SIGTERM: {status:?}");
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap();
    assert!(log.contains("SIGTERM received") && log.contains("stopped"));
    let last = states(&got).pop().expect("state published");
    assert!(!last.online, "graceful stop publishes the offline state");
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_is_reported_offline_by_its_will() {
    if !mosquitto_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = Mosquitto::start(&dir.path().join("broker"), port);
    let (got, sub) = subscribe(port, "will-test-sub").await;
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "site = \"test-site\"\nagent = \"agent-w\"\n[spool]\ndir = \"spool\"\n\
             [[broker]]\nname = \"center\"\nurl = \"mqtt://127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    let mut agent = spawn_agent(&config, &dir.path().join("agent.log"));
    let online = wait_until(Duration::from_secs(10), || {
        states(&got).last().is_some_and(|s| s.online)
    })
    .await;
    assert!(online, "online state published on connect");
    signal(&agent, "-KILL");
    agent.wait().unwrap();
    let offline = wait_until(Duration::from_secs(10), || {
        states(&got).last().is_some_and(|s| !s.online)
    })
    .await;
    sub.abort();
    drop(broker);
    assert!(offline, "the broker published the will (online: false)");
    let will = states(&got).pop().unwrap();
    assert_eq!(will.agent, "agent-w");
}
