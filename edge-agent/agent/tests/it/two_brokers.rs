//! Two brokers in different sites: each gets every event in order, and a record stays in the
//! spool until both have acknowledged it.

use crate::common;

use common::*;
use dcim_edge_agent::config;
use dcim_spool::Class;
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_leaves_the_spool_only_when_both_brokers_acknowledged_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut sites) = TwoSites::start_if_available(dir.path()).await else {
        return;
    };
    sites.b.stop(); // site B is down when the agent starts

    let site_a = broker_toml("site-a", sites.port_a, "");
    let site_b = broker_toml("site-b", sites.port_b, "");
    let device = synthetic_toml(10, 10, 2);
    let cfg_text = dual_agent_toml(16, 10, &format!("{site_a}{site_b}{device}"));
    let cfg = config::parse("agent.toml", &cfg_text, dir.path()).unwrap();
    let agent = RunningAgent::start_config(cfg);
    let shared = agent.shared.clone();

    // A acknowledges everything; B none of it: nothing may leave the spool.
    let a_caught_up = wait_until(Duration::from_secs(10), || {
        sequences(&sites.got_a).0.len() >= 50
    })
    .await;
    assert!(a_caught_up, "site A receives while site B is down");
    // A subscriber can see a message before the agent has processed the broker's PUBACK for it.
    let a_acked = wait_until(Duration::from_secs(10), || {
        shared.with_spool(|s| s.acked("site-a", Class::Event)) >= 50
    })
    .await;
    assert!(a_acked, "site A's acknowledgements reach the spool");
    let (acked_a, acked_b, pending_b, stats) = shared.with_spool(|s| {
        (
            s.acked("site-a", Class::Event),
            s.acked("site-b", Class::Event),
            s.pending_for("site-b", Class::Event),
            s.stats(),
        )
    });
    assert!(acked_a >= 50);
    assert_eq!(acked_b, 0);
    assert!(
        pending_b >= acked_a,
        "B's backlog is kept: {pending_b} < {acked_a}"
    );
    assert!(
        stats.pending[0] >= acked_a,
        "records acked by A alone stay: {stats:?}"
    );

    // B comes back and catches up; then everything can go.
    sites.b.restart();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    agent.stop_within(Duration::from_secs(15)).await;
    let (last_event, pending) =
        shared.with_spool(|s| (s.stats().next_seq[0] - 1, s.stats().pending));
    assert_eq!(pending, [0, 0], "both brokers acknowledged everything");
    for (name, got) in [("A", &sites.got_a), ("B", &sites.got_b)] {
        let ok = wait_until(Duration::from_secs(10), || {
            sequences(got).0.last().copied() == Some(last_event)
        })
        .await;
        assert!(ok, "site {name} did not get event {last_event}");
        let (events, _) = sequences(got);
        let mut seen = BTreeSet::new();
        let firsts: Vec<u64> = events.iter().copied().filter(|s| seen.insert(*s)).collect();
        assert_eq!(firsts, (1..=last_event).collect::<Vec<_>>(), "site {name}");
    }
    sites.sub_a.abort();
    sites.sub_b.abort();
}
