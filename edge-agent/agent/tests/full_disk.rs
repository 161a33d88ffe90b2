//! The agent on a full disk (security suite): its spool on a small tmpfs, filled to the last
//! byte while the agent is stopped. Before: the agent refused to start, old telemetry was not
//! thinned to make room for events (613 waited in memory, 13 were lost at shutdown), and it
//! logged about 50 errors a second. Bound: it starts; every event produced on the full disk
//! is in the spool after shutdown, in order, none waiting or lost; telemetry is thinned and
//! counted; the failure is logged at most once (no reminder within the run).
//!
//! Needs root for `mount -t tmpfs` (CI runs as root); skipped otherwise unless
//! `DCIM_REQUIRE_PEERS=1`.

use dcim_edge_agent::Agent;
use dcim_test_support::tmpfs::{Tmpfs, fill};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Log lines, captured.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

fn config(root: &Path, spool: &Path) -> dcim_edge_agent::config::Config {
    // No broker listens: everything stays in the spool.
    let text = format!(
        r#"site = "s1"
agent = "a1"
[spool]
dir = "{}"
max_mb = 4
segment_kb = 64
[batch]
max_samples = 100
max_delay_ms = 100
[[broker]]
name = "center"
url = "mqtt://127.0.0.1:9"
backoff_initial_ms = 1000
backoff_max_ms = 5000
[[device]]
id = "gen"
synthetic = {{ points = 100, period_ms = 50, event_every = 2 }}
"#,
        spool.display()
    );
    dcim_edge_agent::config::parse("a1.toml", &text, root).unwrap()
}

async fn run_for(cfg: dcim_edge_agent::config::Config, d: Duration) {
    let agent = Agent::start(cfg).expect("the agent starts");
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(agent.run(rx));
    tokio::time::sleep(d).await;
    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the agent stops")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_starts_on_a_full_disk_and_keeps_every_event() {
    if !dcim_test_support::slow::run("the agent's full-disk test") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let mnt = root.join("mnt");
    let Some(_tmpfs) = Tmpfs::mount_or_skip(&mnt, "2m", "the spool") else {
        return;
    };
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .init();
    let spool = mnt.join("spool");
    // The spool holds telemetry; then the disk is filled to the last byte.
    run_for(config(&root, &spool), Duration::from_millis(1500)).await;
    let open = |s: &Path| {
        let mut c = dcim_spool::SpoolConfig::new(s);
        c.consumers = vec!["center".into()];
        c.reserve_bytes = 0;
        let (sp, rec) = dcim_spool::Spool::open(c).unwrap();
        assert!(rec.truncated.is_empty(), "{rec:?}");
        sp.stats()
    };
    let before = open(&spool);
    let filler = fill(&mnt);
    log.clear();

    // Start on the full disk and run: events every 100 ms, telemetry every 50 ms.
    run_for(config(&root, &spool), Duration::from_secs(3)).await;
    let text = log.text();
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let after = open(&spool);
    let mut c = dcim_spool::SpoolConfig::new(&spool);
    c.consumers = vec!["center".into()];
    let (sp, _) = dcim_spool::Spool::open(c).unwrap();
    let events = sp
        .read_after(dcim_spool::Class::Event, 0, 100_000, usize::MAX)
        .unwrap();
    let seqs: Vec<u64> = events.iter().map(|r| r.seq).collect();
    let produced = after.next_seq[0] - before.next_seq[0];
    let said = text.matches("SPOOL CANNOT WRITE").count();
    println!(
        "agent on a full disk: {filler} bytes of filler; started; {produced} events produced on the full disk, \
         all {} events in the spool in order; telemetry thinned {} -> {} batches ({} -> {} samples); \
         {said} 'cannot write' log line(s), {} warning/error lines in all",
        seqs.len(),
        before.thinned_batches,
        after.thinned_batches,
        before.thinned_samples,
        after.thinned_samples,
        text.lines().count()
    );
    assert!(produced >= 10, "only {produced} events on the full disk");
    assert_eq!(
        seqs,
        (1..after.next_seq[0]).collect::<Vec<_>>(),
        "every event, in order"
    );
    assert!(
        after.thinned_batches > before.thinned_batches,
        "telemetry was thinned for the events"
    );
    assert!(!text.contains("EVENTS LOST AT SHUTDOWN"), "{text}");
    assert!(said <= 1, "the full disk was logged {said} times:\n{text}");
    assert!(
        text.lines().count() < 40,
        "{} log lines in 3 s:\n{text}",
        text.lines().count()
    );
}
