//! Drill mode: a scripted scenario run against the (simulated) facility with the site flagged
//! as in a drill, and a report of what was detected, acknowledged and transmitted when.
//!
//! While a drill runs ([`App::drill`](crate::app::App) is set and persisted as a `drill` document):
//! - every alarm-journal record carries `"drill": "<id>"` and every incident opened gets an
//!   `incident.drill` document (see `App::commit_changes`);
//! - every DC-09 message the server sends is flagged as test (`sia_dc09::Event::as_test`, the
//!   authority's test code) and recorded with the drill id;
//! - every configured agent was sent `CommandKind::TestMode { on: true }` on
//!   `dcim/v1/{site}/{agent}/cmd/{agent}` (the agent itself is the device), and `on: false` at the
//!   end, so that what the agents send over their own DC-09 links is marked as test too.
//!
//! The scenario format is documented in `tests/drills/README.md`. [`Scenario::parse`] and
//! [`build_report`] / [`Report::markdown`] are pure; [`run`] is the shell. The facility a
//! scenario's `sim` steps act on is not part of the server: the runner passes it as a
//! [`SimDriver`] (and the grammar of its commands to [`Scenario::parse`]). The demo crate
//! (`dcim-demo`, `cargo run -p dcim-demo -- drill FILE`) drives its facility simulator this way.
//!
//! `ActiveDrill` (the `drill` document, restored at start) ends by itself at `until_ms`; while it
//! runs, `App::commit_changes` adds `"drill"` to journal records and tags incidents, DC-09
//! messages are test-flagged, and every agent gets `TestMode { on }`. `run` executes a scenario's
//! steps against the facility it is given and writes `<data>/drills/<id>.{md,json}`
//! (`GET /api/drills/{id}/report`). A drill cannot start under authority control.

use crate::app::App;
use crate::storage::store::DocRecord;
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;

pub use crate::storage::drill_plan::*;

/// The drill left running by a previous process (a drill flag survives restarts).
pub async fn load_active(
    store: &dyn crate::storage::store::Store,
    now_ms: i64,
) -> anyhow::Result<Option<ActiveDrill>> {
    let mut running: Vec<ActiveDrill> = store
        .list_docs(DRILL_DOC)
        .await?
        .into_iter()
        .filter_map(|d| serde_json::from_value::<ActiveDrill>(d.body).ok())
        .filter(|d| d.is_active_at(now_ms))
        .collect();
    running.sort_by_key(|d| d.started_ms);
    Ok(running.pop())
}

// ---------------------------------------------------------------------------------------------
// Shell
// ---------------------------------------------------------------------------------------------

async fn put_drill(app: &App, d: &ActiveDrill) -> anyhow::Result<()> {
    let doc = DocRecord {
        id: d.id.clone(),
        updated_ms: app.now_ms(),
        body: serde_json::to_value(d)?,
    };
    let action = if d.ended_ms.is_some() {
        "drill.end"
    } else {
        "drill.start"
    };
    let detail = serde_json::json!({"name": d.name});
    // Multi-site: drills are the leader's; its write carries the term's fence.
    let fence = app
        .leader_fence()
        .map_err(|_| anyhow::anyhow!("this replica is not the leader: drills run on the leader"))?;
    let target = format!("{DRILL_DOC}/{}", doc.id);
    app.store
        .commit_batch(&crate::storage::store::Batch {
            docs: vec![(DRILL_DOC.into(), doc)],
            audit: vec![("drill".into(), action.into(), target, detail)],
            fence,
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// Puts the site in drill mode (persisted, audited) for at most `max_ms` (then it ends by
/// itself). Refused while another drill runs.
pub async fn begin(app: &App, name: &str, max_ms: i64) -> anyhow::Result<ActiveDrill> {
    if !app.leads() {
        anyhow::bail!("this replica is not the leader: drills run on the leader");
    }
    if let Some(id) = app.active_drill_id() {
        anyhow::bail!("drill {id} is still running");
    }
    // A drill marks real alarms as test: never while the fire authority is in command.
    if let Err(r) = app
        .control
        .authority
        .lock()
        .await
        .check(crate::engine::authority::ActionKind::DrillStart)
    {
        app.audit(
            "system:drill",
            "authority.refused",
            name,
            serde_json::json!({"action": "drill_start", "reason": r.message}),
        )
        .await?;
        anyhow::bail!("{}", r.message);
    }
    let now = app.now_ms();
    let audit_from = app
        .store
        .list_audit(0, i64::MAX)
        .await?
        .last()
        .map_or(0, |a| a.id);
    let d = ActiveDrill {
        id: format!("drill-{now}"),
        name: name.to_string(),
        started_ms: now,
        ended_ms: None,
        audit_from,
        until_ms: Some(now.saturating_add(max_ms.clamp(1, MAX_DRILL_MS))),
    };
    put_drill(app, &d).await?;
    *app.control.drill.write().expect("drill lock") = Some(d.clone());
    tracing::warn!(drill = %d.id, name, "DRILL STARTED: alarms, incidents and DC-09 messages are tagged as test");
    Ok(d)
}

/// Ends drill mode (persisted, audited).
pub async fn end(app: &App) -> anyhow::Result<Option<ActiveDrill>> {
    let current = app.control.drill.read().expect("drill lock").clone();
    let Some(mut d) = current else {
        return Ok(None);
    };
    d.ended_ms = Some(app.now_ms());
    put_drill(app, &d).await?;
    *app.control.drill.write().expect("drill lock") = None;
    tracing::warn!(drill = %d.id, "drill ended");
    Ok(Some(d))
}

/// Sends `TestMode { on }` to every configured agent; returns what was sent.
async fn test_mode(app: &App, drill: &ActiveDrill, on: bool) -> Vec<AgentCommand> {
    let mut out = Vec::new();
    let Some(client) = app.intake.mqtt.get() else {
        tracing::warn!("drill: no broker client, agents not told about the drill");
        return out;
    };
    for a in &app.config.agents {
        let cmd = dcim_wire::Command {
            v: dcim_wire::VERSION,
            id: format!(
                "{}-test-{}-{}",
                drill.id,
                if on { "on" } else { "off" },
                a.id
            ),
            device: a.id.clone(),
            user: format!("drill:{}", drill.id),
            kind: dcim_wire::CommandKind::TestMode { on },
        };
        let Ok(topic) = dcim_wire::Topic::new(
            &a.site,
            &a.id,
            dcim_wire::Channel::Command {
                device: a.id.clone(),
            },
        ) else {
            continue;
        };
        let _ = app
            .audit(
                "drill",
                "command.send",
                &topic.to_string(),
                serde_json::to_value(&cmd).unwrap_or_default(),
            )
            .await;
        let r = client
            .publish(
                topic.to_string(),
                rumqttc::QoS::AtLeastOnce,
                false,
                dcim_wire::encode(&cmd),
            )
            .await;
        out.push(AgentCommand {
            agent: a.id.clone(),
            command_id: cmd.id.clone(),
            on,
            sent_ms: app.now_ms(),
            accepted: None,
            reason: match r {
                Ok(()) => String::new(),
                Err(e) => format!("not published: {e}"),
            },
        });
    }
    out
}

/// The facility a drill's `sim` steps act on (the demo's facility simulator, driven by
/// `dcim-demo`). The server has no facility of its own to act on.
pub trait SimDriver: Sync {
    /// Runs one `sim` step's command: what it did, or why it failed (reported as a failed step).
    fn command(&self, line: &str) -> Result<String, String>;
}

async fn do_step(app: &App, sim: Option<&dyn SimDriver>, a: &Action) -> (bool, String) {
    match a {
        Action::Sim(line) => {
            let Some(sim) = sim else {
                return (false, "no simulator in this run".into());
            };
            match sim.command(line) {
                Ok(m) => (true, m),
                Err(e) => (false, e),
            }
        }
        Action::Note(n) => (true, n.clone()),
        Action::Ack { alarm, user } => {
            let now = app.now_ms();
            let mut f = app.plant.facility.lock().await;
            let ids: Vec<String> = f
                .engine
                .alarms()
                .filter(|x| id_matches(&x.id, alarm) && x.state().needs_ack())
                .map(|x| x.id.clone())
                .collect();
            if ids.is_empty() {
                return (
                    false,
                    format!("no alarm {alarm} waiting for acknowledgement"),
                );
            }
            let mut done = Vec::new();
            for id in ids {
                match f.act(&id, dcim_alarms::Action::Ack, user, now) {
                    Ok(changes) => {
                        let audit = (
                            user.as_str(),
                            "alarm.ack",
                            format!("alarm/{id}"),
                            serde_json::json!({"drill": app.active_drill_id()}),
                        );
                        if let Err(e) = app
                            .commit_changes(
                                &f,
                                &changes,
                                Some((audit.0, audit.1, &audit.2, audit.3)),
                            )
                            .await
                        {
                            return (false, format!("committing the acknowledgement: {e:#}"));
                        }
                        done.push(id);
                    }
                    Err(e) => return (false, e.to_string()),
                }
            }
            (true, format!("{user} acknowledged {}", done.join(", ")))
        }
    }
}

/// Runs a scenario: drill mode on, agents to test mode, the steps at their times, the end,
/// the DC-09 outbox drained (bounded), then the report (written as `drills/<id>.md` and
/// `.json` under the data directory and stored for `GET /api/drills/{id}/report`).
pub async fn run(
    app: &Arc<App>,
    sim: Option<&dyn SimDriver>,
    scenario: &Scenario,
) -> anyhow::Result<Report> {
    // The drill ends by itself a minute after its planned end if this runner dies.
    let max_ms = ((scenario.duration_s + scenario.drain_s + 60.0) * 1000.0) as i64;
    let drill = begin(app, &scenario.name, max_ms).await?;
    let mut agents = test_mode(app, &drill, true).await;
    let t0 = tokio::time::Instant::now();
    let mut steps = Vec::new();
    for s in &scenario.steps {
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(s.at_s)).await;
        let (ok, result) = do_step(app, sim, &s.action).await;
        let action = match &s.action {
            Action::Sim(c) => format!("simulator: {c}"),
            Action::Ack { alarm, user } => format!("{user} acknowledges {alarm}"),
            Action::Note(_) => "note".into(),
        };
        tracing::info!(drill = %drill.id, at_s = s.at_s, %action, ok, %result, "drill step");
        steps.push(StepResult {
            at_s: s.at_s,
            done_ms: app.now_ms(),
            action,
            ok,
            result,
        });
    }
    tokio::time::sleep_until(t0 + Duration::from_secs_f64(scenario.duration_s)).await;
    // Let the planner see the last alarms before drill mode ends, and the receiver ACK them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(scenario.drain_s);
    if let Some(d) = app.control.dc09.get() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        while d.pending() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    agents.extend(test_mode(app, &drill, false).await);
    let ended = end(app).await?.unwrap_or(drill);
    // The end of the drill bracket goes out once the planner sees the drill ended.
    if let Some(d) = app.control.dc09.get() {
        let deadline = deadline.max(tokio::time::Instant::now() + Duration::from_secs(2));
        while (d.drill_bracket_open().await || d.pending() > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Give the agents a moment to answer the test-mode commands.
    let answer_deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        fill_answers(app, &ended, &mut agents).await?;
        if agents.iter().all(|a| a.accepted.is_some())
            || tokio::time::Instant::now() >= answer_deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = report_for(app, &ended, scenario, steps, agents).await?;
    save_report(app, &report).await?;
    Ok(report)
}

async fn fill_answers(
    app: &App,
    d: &ActiveDrill,
    agents: &mut [AgentCommand],
) -> anyhow::Result<()> {
    let audit = app.store.list_audit(d.audit_from, 100_000).await?;
    for a in agents.iter_mut().filter(|a| a.accepted.is_none()) {
        if let Some(r) = audit
            .iter()
            .find(|r| r.action == "command.result" && r.detail["id"] == a.command_id.as_str())
        {
            a.accepted = r.detail["accepted"].as_bool();
            a.reason = r.detail["reason"].as_str().unwrap_or_default().to_string();
        }
    }
    Ok(())
}

async fn report_for(
    app: &App,
    d: &ActiveDrill,
    scenario: &Scenario,
    steps: Vec<StepResult>,
    agents: Vec<AgentCommand>,
) -> anyhow::Result<Report> {
    let journal: Vec<serde_json::Value> = app
        .store
        .list_journal(None, 0, 1_000_000)
        .await?
        .into_iter()
        .filter(|j| j.ts_ms >= d.started_ms)
        .map(|j| j.record)
        .collect();
    let tagged: Vec<u64> = app
        .store
        .list_docs(INCIDENT_DOC)
        .await?
        .into_iter()
        .filter(|doc| doc.body["drill"].as_str() == Some(d.id.as_str()))
        .filter_map(|doc| doc.id.parse().ok())
        .collect();
    let incidents = {
        let f = app.plant.facility.lock().await;
        tagged
            .iter()
            .filter_map(|id| f.incidents.get(*id))
            .map(|i| (i.id, i.title.clone(), i.grade, i.opened_ms))
            .collect()
    };
    let dc09 = crate::io::dc09::messages(app).await?;
    let edge_events = app
        .store
        .list_events(&crate::storage::store::EventQuery {
            since_ms: Some(d.started_ms - 60_000),
            limit: 10_000,
            ..Default::default()
        })
        .await?;
    Ok(build_report(Facts {
        drill: d,
        scenario,
        steps,
        journal,
        incidents,
        dc09,
        agents,
        edge_events,
    }))
}

async fn save_report(app: &App, r: &Report) -> anyhow::Result<()> {
    let dir = app.config.data_dir.join("drills");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(r)?;
    std::fs::write(dir.join(format!("{}.json", r.drill.id)), &json)?;
    std::fs::write(dir.join(format!("{}.md", r.drill.id)), r.markdown())?;
    let doc = DocRecord {
        id: r.drill.id.clone(),
        updated_ms: app.now_ms(),
        body: serde_json::to_value(r)?,
    };
    app.store.put_doc(REPORT_DOC, &doc, None).await?;
    tracing::info!(drill = %r.drill.id, dir = %dir.display(), "drill report written");
    Ok(())
}

/// A stored report.
pub async fn stored_report(app: &App, id: &str) -> anyhow::Result<Option<Report>> {
    Ok(app
        .store
        .list_docs(REPORT_DOC)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .and_then(|d| serde_json::from_value(d.body).ok()))
}

/// Stored drills, newest first.
pub async fn list(app: &App) -> anyhow::Result<Vec<ActiveDrill>> {
    let mut v: Vec<ActiveDrill> = app
        .store
        .list_docs(DRILL_DOC)
        .await?
        .into_iter()
        .filter_map(|d| serde_json::from_value(d.body).ok())
        .collect();
    v.sort_by_key(|d| std::cmp::Reverse(d.started_ms));
    Ok(v)
}

/// Waits until every configured agent reported itself online (bounded), so that the drill
/// starts with the agents connected and able to receive the test-mode command.
pub async fn wait_agents_online(app: &App, timeout: Duration) -> anyhow::Result<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let online: Vec<String> = app
            .store
            .list_agents()
            .await?
            .into_iter()
            .filter(|a| a.online)
            .map(|a| a.agent)
            .collect();
        if app.config.agents.iter().all(|a| online.contains(&a.id)) {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands in for the facility simulator's grammar (in `dcim-demo`): `heat ...` only.
    fn grammar(c: &str) -> Result<(), String> {
        if c.starts_with("heat ") {
            Ok(())
        } else {
            Err("unknown command".into())
        }
    }

    const SCENARIO: &str = r#"
name = "t"
duration_s = 10
[[step]]
at_s = 5
ack = "fire-stage:"
[[step]]
at_s = 1
sim = "heat bms-z2 1200"
[[expect]]
alarm = "fire-stage:bms-z2"
within_s = 4
[[expect]]
dc09 = "fire.stage1"
within_s = 4
[[expect]]
ack = "fire-stage"
within_s = 6
"#;

    #[test]
    fn a_drill_ends_by_itself() {
        let mut d = ActiveDrill {
            id: "d".into(),
            name: "n".into(),
            started_ms: 1000,
            ended_ms: None,
            audit_from: 0,
            until_ms: Some(5000),
        };
        assert!(d.is_active_at(4999));
        assert!(!d.is_active_at(5000));
        d.until_ms = None;
        assert!(d.is_active_at(1000 + MAX_DRILL_MS - 1));
        assert!(!d.is_active_at(1000 + MAX_DRILL_MS));
        d.ended_ms = Some(2000);
        assert!(!d.is_active_at(1500));
    }

    #[test]
    fn parses_and_orders_steps() {
        let s = Scenario::parse(SCENARIO, "s.toml", &grammar).unwrap();
        assert_eq!(s.steps[0].action, Action::Sim("heat bms-z2 1200".into()));
        assert_eq!(
            s.steps[1].action,
            Action::Ack {
                alarm: "fire-stage:".into(),
                user: "operator".into()
            }
        );
        assert_eq!(s.expect.len(), 3);
        assert_eq!(s.drain_s, 10.0);
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = Scenario::parse(
            "name='x'\nduration_s=5\n[[step]]\nat_s=1\nsim='boil it'\n",
            "d.toml",
            &grammar,
        )
        .unwrap_err();
        assert!(e.starts_with("d.toml:3: step[0].sim"), "{e}");
        let e = Scenario::parse(
            "name='x'\nduration_s=5\n[[step]]\nat_s=9\nnote='n'\n",
            "d.toml",
            &grammar,
        )
        .unwrap_err();
        assert!(e.contains("step[0].at_s"), "{e}");
        let e = Scenario::parse(
            "name='x'\nduration_s=5\n[[step]]\nat_s=1\n",
            "d.toml",
            &grammar,
        )
        .unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
        let e = Scenario::parse("name='x'\nduration_s=5\nfoo=1\n", "d.toml", &grammar).unwrap_err();
        assert!(e.starts_with("d.toml:3:") && e.contains("foo"), "{e}");
        let e = Scenario::parse(
            "name='x'\nduration_s=5\n[[expect]]\ndc09='fire.big'\nwithin_s=1\n",
            "d.toml",
            &grammar,
        )
        .unwrap_err();
        assert!(e.contains("expect[0].dc09"), "{e}");
    }

    #[test]
    fn report_takes_only_this_drills_records() {
        let s = Scenario::parse(SCENARIO, "s.toml", &grammar).unwrap();
        let d = ActiveDrill {
            id: "drill-1".into(),
            name: "t".into(),
            started_ms: 10_000,
            ended_ms: Some(20_000),
            audit_from: 0,
            until_ms: None,
        };
        let rec = |alarm: &str, ty: &str, ts: i64, drill: Option<&str>, user: Option<&str>| {
            serde_json::json!({"alarm": alarm, "event": {"type": ty}, "ts_ms": ts, "grade": 1,
                "message": "m", "user": user, "drill": drill})
        };
        let msg = |kind: &str, drill: Option<&str>, acked: Option<i64>| {
            crate::engine::dc09_plan::MessageRecord {
                event_id: format!("srv:{kind}"),
                kind: kind.into(),
                zone: 2,
                rack: 1,
                restore: false,
                test: drill.is_some(),
                drill: drill.map(Into::into),
                source: "fire-stage:bms-z2".into(),
                seq: 3,
                queued_ms: 12_000,
                acked_ms: acked,
                path: Some("p".into()),
                status: "delivered".into(),
            }
        };
        let r = build_report(Facts {
            drill: &d,
            scenario: &s,
            steps: vec![],
            journal: vec![
                rec(
                    "fire-stage:bms-z2",
                    "activated",
                    12_500,
                    Some("drill-1"),
                    None,
                ),
                rec(
                    "fire-stage:bms-z2",
                    "activated",
                    13_000,
                    Some("drill-1"),
                    None,
                ),
                rec("other:x", "activated", 12_000, None, None),
                rec(
                    "fire-stage:bms-z2",
                    "acknowledged",
                    15_000,
                    Some("drill-1"),
                    Some("op"),
                ),
            ],
            incidents: vec![(4, "fire".into(), 1, 12_600)],
            dc09: vec![
                msg("fire.stage1", Some("drill-1"), Some(12_900)),
                msg("fire.stage2_patch", None, Some(12_900)),
            ],
            agents: vec![],
            edge_events: vec![],
        });
        assert_eq!(r.detected.len(), 1);
        assert_eq!(r.detected[0].after_s, 2.5);
        assert_eq!(r.acknowledged[0].user, "op");
        assert_eq!(r.acknowledged[0].after_s, 5.0);
        assert_eq!(r.dc09.len(), 1);
        assert_eq!(r.dc09[0].acked_after_s, Some(2.9));
        assert_eq!(r.incidents[0].after_s, 2.6);
        assert!(r.expectations.iter().all(|e| e.met), "{:?}", r.expectations);
        let md = r.markdown();
        assert!(
            md.contains("| 2.500 s | `fire-stage:bms-z2` | 1 | m |"),
            "{md}"
        );
        assert!(
            md.contains("| 5.000 s | `fire-stage:bms-z2` | op |"),
            "{md}"
        );
        assert!(md.contains("fire.stage1 | 2 | 1 | no | 0003"), "{md}");
        // an expectation missed is reported as such
        let mut s2 = s.clone();
        s2.expect = vec![Expect::Alarm {
            alarm: "fire-stage".into(),
            within_s: 1.0,
        }];
        let r = build_report(Facts {
            drill: &d,
            scenario: &s2,
            steps: vec![],
            journal: vec![rec(
                "fire-stage:bms-z2",
                "activated",
                12_500,
                Some("drill-1"),
                None,
            )],
            incidents: vec![],
            dc09: vec![],
            agents: vec![],
            edge_events: vec![],
        });
        assert!(!r.expectations[0].met);
        assert!(r.markdown().contains("| NO |"));
    }
}
