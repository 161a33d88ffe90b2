//! The shell of test (drill) mode ([`crate::test_mode`]): applies its changes to the DC-09 link
//! (test flag, begin/end bracket) and the state file, and ends an expired drill, or a drill
//! during which the fire authority takes command (checked every second). A drill found in
//! the state file at start was interrupted by a restart: it is closed (end bracket, logged with
//! reason `agent_restart`), never resumed.
//!
//! The center sees test mode in the retained `AgentState` (`test`, `test_until_ms`) and in the
//! command results; no wire event is published for it, because the center rejects a whole event
//! batch that names a device outside the agent's list, and fire events share those batches.

use crate::ingest::Ingest;
use crate::test_mode::{self, Active, Change, EndReason};
use sia_dc09::{Event, EventKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

fn write_state(path: &Path, active: Option<&Active>) {
    let r = (|| -> std::io::Result<()> {
        use std::io::Write;
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&test_mode::encode_state(active))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = r {
        error!(path = %path.display(), error = %e, "test-mode state file not written: a restart during this drill would not close it at the receiver");
    }
}

async fn bracket(link: &Option<dc09_link::Handle>, id: String, end: bool) {
    let Some(link) = link else { return };
    let mut ev = Event::new(EventKind::DrillTest, 0, 0);
    ev.restore = end;
    ev.test = true;
    if let Err(e) = link
        .submit(dc09_link::Submission {
            event_id: id.clone(),
            event: ev,
        })
        .await
    {
        error!(id = %id, error = %e, "drill bracket not queued for the fire authority link");
    }
}

async fn end(
    ingest: &Ingest,
    link: &Option<dc09_link::Handle>,
    state_file: &Path,
    drill: &Active,
    reason: EndReason,
) {
    let agent = ingest.shared().agent.clone();
    if let Some(l) = link {
        l.set_test_mode(false);
    }
    let (_, end_id) = test_mode::bracket_ids(&agent, drill);
    bracket(link, end_id, true).await;
    if let Err(e) = std::fs::remove_file(state_file)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        error!(path = %state_file.display(), error = %e, "test-mode state file not removed");
    }
    warn!(
        since_ms = drill.since_ms,
        reason = reason.as_str(),
        "test mode ended"
    );
    ingest
        .shared()
        .state_changed
        .send_modify(|g| *g = g.wrapping_add(1));
}

async fn apply(
    ingest: &Ingest,
    link: &Option<dc09_link::Handle>,
    state_file: &Path,
    change: Change,
) {
    let agent = ingest.shared().agent.clone();
    match change {
        Change::Started(a) => {
            write_state(state_file, Some(&a));
            let (begin_id, _) = test_mode::bracket_ids(&agent, &a);
            bracket(link, begin_id, false).await;
            if let Some(l) = link {
                l.set_test_mode(true);
            }
            warn!(until_ms = a.until_ms, user = %a.user, "test mode on: DC-09 messages and events are marked as test");
        }
        Change::Extended(a) => {
            write_state(state_file, Some(&a));
            info!(until_ms = a.until_ms, user = %a.user, "test mode extended");
        }
        Change::Ended { drill, reason } => end(ingest, link, state_file, &drill, reason).await,
    }
}

pub async fn run(
    ingest: Arc<Ingest>,
    state_file: PathBuf,
    link: Option<dc09_link::Handle>,
    mut changes: mpsc::UnboundedReceiver<Change>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Ok(bytes) = std::fs::read(&state_file)
        && let Some(drill) = test_mode::decode_state(&bytes)
    {
        warn!(
            since_ms = drill.since_ms,
            "a drill was in progress when the agent stopped: closing it (drills never resume after a restart)"
        );
        end(&ingest, &link, &state_file, &drill, EndReason::Restart).await;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            c = changes.recv() => match c {
                Some(c) => apply(&ingest, &link, &state_file, c).await,
                None => return,
            },
            _ = tick.tick() => {
                // ends an expired drill, or any drill once the fire authority is in command
                // (the change arrives on `changes`)
                let shared = ingest.shared();
                if shared.test_mode_at(shared.clock.now_ms()).is_some() && !shared.authority_keys.on().is_empty() {
                    shared.end_test_mode(EndReason::Authority);
                }
            }
            _ = shutdown.changed() => if *shutdown.borrow() { return },
        }
    }
}
