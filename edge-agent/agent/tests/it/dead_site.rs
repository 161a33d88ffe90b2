//! One site dead: its broker lags past its limit and is detached, the live site keeps
//! getting everything, the spool stays bounded; when the site returns, its broker gets what
//! is still in the spool (the rest is counted as missed) and is attached again.
//!
//! Hazard: a record leaves the spool only when every broker has it; without the lag limit a
//! dead site's broker makes the spool fill and then the surviving site's telemetry is thinned
//! or refused.

use crate::common;

use common::*;
use dcim_edge_agent::config;
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_sites_broker_is_detached_and_the_live_one_keeps_flowing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut sites) = TwoSites::start_if_available(dir.path()).await else {
        return;
    };
    let site_a = broker_toml("site-a", sites.port_a, "");
    let site_b = broker_toml(
        "site-b",
        sites.port_b,
        "max_lag_bytes = 262144\nmax_lag_s = 5\n",
    );
    let device = synthetic_toml(20, 10, 1);
    let cfg_text = dual_agent_toml(2, 20, &format!("{site_a}{site_b}{device}"));
    let cfg = config::parse("agent.toml", &cfg_text, dir.path()).unwrap();
    let limits = cfg.brokers[1].lag_limits;
    assert_eq!((limits.max_bytes, limits.max_stuck_ms), (262_144, 5000));
    let agent = RunningAgent::start_config(cfg);
    let shared = agent.shared.clone();
    assert!(
        wait_until(Duration::from_secs(10), || sequences(&sites.got_b).0.len()
            >= 20)
        .await,
        "both sites receive at first"
    );

    // Site B dies.
    sites.b.stop();
    let detached = wait_until(Duration::from_secs(20), || {
        shared.with_spool(|s| s.is_detached("site-b"))
    })
    .await;
    assert!(detached, "the dead site's broker is detached");
    assert_eq!(shared.with_spool(|s| s.detach_count("site-b")), 1);
    // The retained state at the live site says so (the center alarms it).
    assert!(
        wait_until(Duration::from_secs(5), || {
            states(&sites.got_a)
                .last()
                .is_some_and(|s| s.detached == ["site-b"])
        })
        .await,
        "AgentState.detached"
    );
    // Keep producing for a while: the spool stays bounded and nothing is thinned or refused.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let st = shared.with_spool(|s| s.stats());
    assert_eq!(
        (st.thinned_samples, st.refused_batches),
        (0, 0),
        "no telemetry lost for the live site: {st:?}"
    );
    assert!(
        st.bytes < 1 << 20,
        "the spool no longer keeps what only site B lacks: {st:?}"
    );

    // Site B returns: it gets what is still in the spool, the rest is missed; then it is
    // attached again.
    let missed_before = shared.with_spool(|s| s.lag("site-b", dcim_clock::now_ms()).missed[0]);
    assert!(
        missed_before > 0,
        "records removed while it was detached are counted"
    );
    sites.b.restart();
    // Generous: catching up replays the backlog while other tests share the cores; the wait
    // ends as soon as the broker is attached.
    let attached = wait_until(Duration::from_secs(60), || {
        shared.with_spool(|s| !s.is_detached("site-b"))
    })
    .await;
    assert!(attached, "attached again once it caught up");
    assert!(
        wait_until(Duration::from_secs(5), || {
            states(&sites.got_b)
                .last()
                .is_some_and(|s| s.detached.is_empty() && s.online)
        })
        .await,
        "the returning site sees the agent online and attached"
    );
    agent.stop_within(Duration::from_secs(15)).await;
    let last_event = shared.with_spool(|s| s.stats().next_seq[0] - 1);
    assert!(
        wait_until(Duration::from_secs(10), || {
            sequences(&sites.got_a).0.last().copied() == Some(last_event)
        })
        .await
    );
    // Site A: every event, in order, none missing.
    let mut seen = BTreeSet::new();
    let a: Vec<u64> = sequences(&sites.got_a)
        .0
        .into_iter()
        .filter(|s| seen.insert(*s))
        .collect();
    assert_eq!(
        a,
        (1..=last_event).collect::<Vec<_>>(),
        "site A got everything"
    );
    // Site B: a gap where it was detached, then every event to the end, in order.
    let mut seen = BTreeSet::new();
    let bseq: Vec<u64> = sequences(&sites.got_b)
        .0
        .into_iter()
        .filter(|s| seen.insert(*s))
        .collect();
    assert_eq!(bseq.last().copied(), Some(last_event));
    assert!(bseq.windows(2).all(|w| w[1] > w[0]), "in order");
    let gaps = bseq.windows(2).filter(|w| w[1] != w[0] + 1).count();
    assert!(gaps >= 1, "what went while it was detached is not resent");
    sites.sub_a.abort();
    sites.sub_b.abort();
}
