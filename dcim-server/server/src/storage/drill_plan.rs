//! The pure part of drill mode: the drill in progress ([`ActiveDrill`]), the scenario format
//! ([`Scenario::parse`], documented in `tests/drills/README.md`) and the report
//! ([`build_report`], [`Report::markdown`]), data in and data out. `crate::io::drill` runs them.

use anyhow::Context;
use serde::{Deserialize, Serialize};
/// Document kind of a drill's state (`id` = drill id).
pub const DRILL_DOC: &str = "drill";
/// Document kind of a drill's report.
pub const REPORT_DOC: &str = "drill.report";
/// Document kind tagging an incident opened during a drill (`id` = incident id).
pub const INCIDENT_DOC: &str = "incident.drill";

/// The drill in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveDrill {
    pub id: String,
    pub name: String,
    pub started_ms: i64,
    #[serde(default)]
    pub ended_ms: Option<i64>,
    /// Audit id at the start (the report reads the audit log from there).
    #[serde(default)]
    pub audit_from: i64,
    /// Drill mode ends by itself at this time even if nobody ends it (a crashed drill runner
    /// must never leave real alarms marked as test); `None`: [`MAX_DRILL_MS`] after the start.
    #[serde(default)]
    pub until_ms: Option<i64>,
}

/// Longest drill when the drill does not say.
pub const MAX_DRILL_MS: i64 = 2 * 3600 * 1000;

impl ActiveDrill {
    /// Whether the drill still marks things as test at `now_ms`.
    pub fn is_active_at(&self, now_ms: i64) -> bool {
        self.ended_ms.is_none()
            && now_ms
                < self
                    .until_ms
                    .unwrap_or(self.started_ms.saturating_add(MAX_DRILL_MS))
    }
}

// ---------------------------------------------------------------------------------------------
// Scenario
// ---------------------------------------------------------------------------------------------

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A facility-simulator command (`heat bms-z2 1200`, `feed-loss A`, `chiller-trip
    /// chiller-1`, ...; the grammar of `facility_sim::Command`, checked by the grammar passed to
    /// [`Scenario::parse`] and run by the `drill::SimDriver` passed to `drill::run`).
    Sim(String),
    /// An operator acknowledges the alarms whose id equals or starts with this.
    Ack { alarm: String, user: String },
    /// A line in the report's timeline.
    Note(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub at_s: f64,
    pub action: Action,
}

/// What the drill is expected to show, checked in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Expect {
    /// An alarm whose id equals or starts with this activates within `within_s`.
    Alarm { alarm: String, within_s: f64 },
    /// A server DC-09 message of this kind (e.g. `fire.stage1`) is ACKed within `within_s`.
    Dc09 { kind: String, within_s: f64 },
    /// An alarm is acknowledged within `within_s`.
    Ack { alarm: String, within_s: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub duration_s: f64,
    /// After the end, wait at most this long for the DC-09 outbox to drain.
    pub drain_s: f64,
    pub steps: Vec<Step>,
    pub expect: Vec<Expect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: String,
    duration_s: toml::Spanned<f64>,
    #[serde(default)]
    drain_s: Option<f64>,
    #[serde(default)]
    step: Vec<toml::Spanned<RawStep>>,
    #[serde(default)]
    expect: Vec<toml::Spanned<RawExpect>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at_s: f64,
    sim: Option<String>,
    ack: Option<String>,
    user: Option<String>,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    alarm: Option<String>,
    dc09: Option<String>,
    ack: Option<String>,
    within_s: f64,
}

impl Scenario {
    /// Parses a scenario; errors are `origin:line: field: message`.
    /// `sim_grammar` checks each `sim` step's command (the facility simulator's grammar; its
    /// error is reported with the file, line and field).
    pub fn parse(
        text: &str,
        origin: &str,
        sim_grammar: &dyn Fn(&str) -> Result<(), String>,
    ) -> Result<Scenario, String> {
        let lines = dcim_source_lines::LineIndex::new(text);
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| lines.line(s.start));
            format!("{origin}:{line}: {}", e.message())
        })?;
        let err = |span: std::ops::Range<usize>, field: &str, msg: String| {
            format!("{origin}:{}: {field}: {msg}", lines.line(span.start))
        };
        let duration = *raw.duration_s.get_ref();
        if !(duration.is_finite() && duration > 0.0) {
            return Err(err(
                raw.duration_s.span(),
                "duration_s",
                "expected seconds > 0".into(),
            ));
        }
        let mut steps = Vec::new();
        for (i, s) in raw.step.iter().enumerate() {
            steps.push(parse_step(i, s, duration, &err, sim_grammar)?);
        }
        steps.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        let mut expect = Vec::new();
        for (i, e) in raw.expect.iter().enumerate() {
            expect.push(parse_expect(i, e, &err)?);
        }
        Ok(Scenario {
            name: raw.name,
            description: raw.description,
            duration_s: duration,
            drain_s: raw.drain_s.unwrap_or(10.0).max(0.0),
            steps,
            expect,
        })
    }

    pub fn load(
        path: &std::path::Path,
        sim_grammar: &dyn Fn(&str) -> Result<(), String>,
    ) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading drill scenario {}", path.display()))?;
        Scenario::parse(&text, &path.display().to_string(), sim_grammar)
            .map_err(|e| anyhow::anyhow!(e))
    }
}

/// Builds the error `origin:line: field: message` of the byte at a span's start.
type ErrAt<'a> = dyn Fn(std::ops::Range<usize>, &str, String) -> String + 'a;

/// `[[step]]` number `i`: `at_s` within the drill, exactly one of sim (checked against the
/// simulator's grammar), ack (with its optional user) or note.
fn parse_step(
    i: usize,
    s: &toml::Spanned<RawStep>,
    duration: f64,
    err: &ErrAt<'_>,
    sim_grammar: &dyn Fn(&str) -> Result<(), String>,
) -> Result<Step, String> {
    let span = s.span();
    let s = s.get_ref();
    let f = |x: &str| format!("step[{i}].{x}");
    if !(s.at_s.is_finite() && s.at_s >= 0.0 && s.at_s <= duration) {
        return Err(err(
            span,
            &f("at_s"),
            format!("{}: expected 0..=duration_s ({duration})", s.at_s),
        ));
    }
    let action = match (&s.sim, &s.ack, &s.note) {
        (Some(c), None, None) => {
            sim_grammar(c).map_err(|e| err(span.clone(), &f("sim"), format!("`{c}`: {e}")))?;
            Action::Sim(c.clone())
        }
        (None, Some(a), None) => Action::Ack {
            alarm: a.clone(),
            user: s.user.clone().unwrap_or_else(|| "operator".into()),
        },
        (None, None, Some(n)) => Action::Note(n.clone()),
        _ => {
            return Err(err(
                span,
                &format!("step[{i}]"),
                "give exactly one of sim, ack or note".into(),
            ));
        }
    };
    if s.user.is_some() && s.ack.is_none() {
        return Err(err(span, &f("user"), "only used with ack".into()));
    }
    Ok(Step {
        at_s: s.at_s,
        action,
    })
}

/// `[[expect]]` number `i`: `within_s` > 0 and exactly one of alarm, dc09 (a DC-09 event
/// kind) or ack.
fn parse_expect(i: usize, e: &toml::Spanned<RawExpect>, err: &ErrAt<'_>) -> Result<Expect, String> {
    let span = e.span();
    let e = e.get_ref();
    if !(e.within_s.is_finite() && e.within_s > 0.0) {
        return Err(err(
            span,
            &format!("expect[{i}].within_s"),
            "expected seconds > 0".into(),
        ));
    }
    let w = e.within_s;
    Ok(match (&e.alarm, &e.dc09, &e.ack) {
        (Some(a), None, None) => Expect::Alarm {
            alarm: a.clone(),
            within_s: w,
        },
        (None, Some(k), None) => {
            if sia_dc09::EventKind::from_name(k).is_none() {
                return Err(err(
                    span,
                    &format!("expect[{i}].dc09"),
                    format!("`{k}` is not a DC-09 event kind (fire.stage1, fire.trouble, ...)"),
                ));
            }
            Expect::Dc09 {
                kind: k.clone(),
                within_s: w,
            }
        }
        (None, None, Some(a)) => Expect::Ack {
            alarm: a.clone(),
            within_s: w,
        },
        _ => {
            return Err(err(
                span,
                &format!("expect[{i}]"),
                "give exactly one of alarm, dc09 or ack".into(),
            ));
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub at_s: f64,
    pub done_ms: i64,
    pub action: String,
    pub ok: bool,
    pub result: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub alarm: String,
    pub ts_ms: i64,
    pub after_s: f64,
    pub grade: u8,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub alarm: String,
    pub user: String,
    pub ts_ms: i64,
    pub after_s: f64,
}

/// An event an edge agent published during the drill (`test` is the agent's own flag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeEvent {
    pub agent: String,
    pub device: String,
    pub kind: String,
    pub message: String,
    pub ts_ms: i64,
    pub after_s: f64,
    pub test: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentLine {
    pub id: u64,
    pub title: String,
    pub grade: u8,
    pub opened_ms: i64,
    pub after_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transmission {
    pub event_id: String,
    pub kind: String,
    pub zone: u16,
    pub rack: u16,
    pub restore: bool,
    pub test: bool,
    pub seq: u16,
    pub queued_ms: i64,
    pub queued_after_s: f64,
    pub acked_ms: Option<i64>,
    pub acked_after_s: Option<f64>,
    pub path: Option<String>,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentCommand {
    pub agent: String,
    pub command_id: String,
    pub on: bool,
    pub sent_ms: i64,
    /// `None` while no answer came back.
    pub accepted: Option<bool>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectResult {
    pub what: String,
    pub within_s: f64,
    pub at_s: Option<f64>,
    pub met: bool,
}

/// Everything the report says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub drill: ActiveDrill,
    pub scenario: String,
    pub description: String,
    pub steps: Vec<StepResult>,
    pub detected: Vec<Detection>,
    /// Events the edge agents published during the drill (fire stages seen at the edge, ...).
    #[serde(default)]
    pub edge_events: Vec<EdgeEvent>,
    pub acknowledged: Vec<Acknowledgement>,
    pub incidents: Vec<IncidentLine>,
    pub dc09: Vec<Transmission>,
    pub agents: Vec<AgentCommand>,
    pub expectations: Vec<ExpectResult>,
}

/// The facts a report is built from (read from the store by `drill::run`).
pub struct Facts<'a> {
    pub drill: &'a ActiveDrill,
    pub scenario: &'a Scenario,
    pub steps: Vec<StepResult>,
    /// Alarm-journal records (as stored: engine records with a `drill` field).
    pub journal: Vec<serde_json::Value>,
    pub incidents: Vec<(u64, String, u8, i64)>,
    pub dc09: Vec<crate::engine::dc09_plan::MessageRecord>,
    pub agents: Vec<AgentCommand>,
    /// Agent events received during the drill.
    pub edge_events: Vec<crate::storage::store::EventRecord>,
}

fn after(start: i64, t: i64) -> f64 {
    ((t - start) as f64 / 1000.0 * 1000.0).round() / 1000.0
}

/// Whether an alarm id is a scenario's pattern or starts with it (a pattern names an alarm or
/// a prefix of alarm ids).
pub fn id_matches(id: &str, pattern: &str) -> bool {
    id == pattern || id.starts_with(pattern)
}

/// Builds the report (pure).
pub fn build_report(f: Facts<'_>) -> Report {
    let start = f.drill.started_ms;
    let (detected, acknowledged) = journal_lines(&f, start);
    let incidents: Vec<IncidentLine> = f
        .incidents
        .iter()
        .map(|(id, title, grade, opened)| IncidentLine {
            id: *id,
            title: title.clone(),
            grade: *grade,
            opened_ms: *opened,
            after_s: after(start, *opened),
        })
        .collect();
    let dc09 = transmissions(&f, start);
    let expectations = expectations(f.scenario, &detected, &acknowledged, &dc09);
    let edge_events = edge_events(&f, start);
    Report {
        drill: f.drill.clone(),
        scenario: f.scenario.name.clone(),
        description: f.scenario.description.clone(),
        steps: f.steps,
        detected,
        edge_events,
        acknowledged,
        incidents,
        dc09,
        agents: f.agents,
        expectations,
    }
}

/// The drill's alarm journal records: the first activation of each alarm, and every
/// acknowledgement.
fn journal_lines(f: &Facts<'_>, start: i64) -> (Vec<Detection>, Vec<Acknowledgement>) {
    let mine: Vec<&serde_json::Value> = f
        .journal
        .iter()
        .filter(|r| r["drill"].as_str() == Some(f.drill.id.as_str()))
        .collect();
    let mut detected: Vec<Detection> = Vec::new();
    let mut acknowledged = Vec::new();
    for r in &mine {
        let alarm = r["alarm"].as_str().unwrap_or_default().to_string();
        let ts = r["ts_ms"].as_i64().unwrap_or(0);
        match r["event"]["type"].as_str() {
            Some("activated") if !detected.iter().any(|d| d.alarm == alarm) => {
                detected.push(Detection {
                    alarm,
                    ts_ms: ts,
                    after_s: after(start, ts),
                    grade: r["grade"].as_u64().unwrap_or(0) as u8,
                    message: r["message"].as_str().unwrap_or_default().to_string(),
                })
            }
            Some("acknowledged") => acknowledged.push(Acknowledgement {
                alarm,
                user: r["user"].as_str().unwrap_or_default().to_string(),
                ts_ms: ts,
                after_s: after(start, ts),
            }),
            _ => {}
        }
    }
    (detected, acknowledged)
}

/// The server's DC-09 messages tagged with the drill.
fn transmissions(f: &Facts<'_>, start: i64) -> Vec<Transmission> {
    f.dc09
        .iter()
        .filter(|m| m.drill.as_deref() == Some(f.drill.id.as_str()))
        .map(|m| Transmission {
            event_id: m.event_id.clone(),
            kind: m.kind.clone(),
            zone: m.zone,
            rack: m.rack,
            restore: m.restore,
            test: m.test,
            seq: m.seq,
            queued_ms: m.queued_ms,
            queued_after_s: after(start, m.queued_ms),
            acked_ms: m.acked_ms,
            acked_after_s: m.acked_ms.map(|t| after(start, t)),
            path: m.path.clone(),
            status: m.status.clone(),
        })
        .collect()
}

/// Each expectation of the scenario against the earliest matching fact.
fn expectations(
    scenario: &Scenario,
    detected: &[Detection],
    acknowledged: &[Acknowledgement],
    dc09: &[Transmission],
) -> Vec<ExpectResult> {
    scenario
        .expect
        .iter()
        .map(|e| {
            let (what, within, at) = match e {
                Expect::Alarm { alarm, within_s } => (
                    format!("alarm {alarm} detected"),
                    *within_s,
                    detected
                        .iter()
                        .filter(|d| id_matches(&d.alarm, alarm))
                        .map(|d| d.after_s)
                        .reduce(f64::min),
                ),
                Expect::Ack { alarm, within_s } => (
                    format!("alarm {alarm} acknowledged"),
                    *within_s,
                    acknowledged
                        .iter()
                        .filter(|d| id_matches(&d.alarm, alarm))
                        .map(|d| d.after_s)
                        .reduce(f64::min),
                ),
                Expect::Dc09 { kind, within_s } => (
                    format!("DC-09 {kind} acknowledged by the receiver"),
                    *within_s,
                    dc09.iter()
                        .filter(|m| &m.kind == kind && !m.restore)
                        .filter_map(|m| m.acked_after_s)
                        .reduce(f64::min),
                ),
            };
            ExpectResult {
                what,
                within_s: within,
                at_s: at,
                met: at.is_some_and(|a| a <= within),
            }
        })
        .collect()
}

/// The edge agents' events received while the drill ran, by their own time.
fn edge_events(f: &Facts<'_>, start: i64) -> Vec<EdgeEvent> {
    let end = f.drill.ended_ms.unwrap_or(i64::MAX);
    let mut edge_events: Vec<EdgeEvent> = f
        .edge_events
        .iter()
        .filter(|e| e.received_ms >= start && e.received_ms <= end)
        .map(|e| EdgeEvent {
            agent: e.agent.clone(),
            device: e.device.clone(),
            kind: e.kind.clone(),
            message: e.message.clone(),
            ts_ms: e.ts_ms,
            after_s: after(start, e.ts_ms),
            test: e.test,
        })
        .collect();
    edge_events.sort_by_key(|e| e.ts_ms);
    edge_events
}

fn opt_s(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |s| format!("{s:.3} s"))
}

impl Report {
    /// The report as Markdown (times relative to the drill start), its sections in order.
    pub fn markdown(&self) -> String {
        let mut o = self.md_header();
        self.md_timeline(&mut o);
        self.md_detected(&mut o);
        self.md_edge_events(&mut o);
        self.md_acknowledged(&mut o);
        self.md_incidents(&mut o);
        self.md_dc09(&mut o);
        self.md_agents(&mut o);
        self.md_expectations(&mut o);
        o
    }

    fn md_header(&self) -> String {
        let d = &self.drill;
        let mut o = format!(
            "# Drill report: {}\n\n- Drill id: `{}`\n- Scenario: {}\n- Started: {} ms (Unix)\n- Ended: {}\n- Everything below was tagged as test (alarm journal `drill` field, incident tags, DC-09 test code).\n",
            d.name,
            d.id,
            self.scenario,
            d.started_ms,
            d.ended_ms.map_or("still running".into(), |e| format!(
                "{e} ms (after {:.3} s)",
                after(d.started_ms, e)
            ))
        );
        if !self.description.is_empty() {
            o.push_str(&format!("\n{}\n", self.description.trim()));
        }
        o
    }

    fn md_timeline(&self, o: &mut String) {
        o.push_str("\n## Timeline of the scenario\n\n| at | action | result |\n|---|---|---|\n");
        for s in &self.steps {
            o.push_str(&format!(
                "| {:.3} s | {} | {}{} |\n",
                after(self.drill.started_ms, s.done_ms),
                s.action,
                if s.ok { "" } else { "FAILED: " },
                s.result.replace('|', "/").replace('\n', " ")
            ));
        }
    }

    fn md_detected(&self, o: &mut String) {
        o.push_str("\n## Detected\n\n| after | alarm | grade | message |\n|---|---|---|---|\n");
        for x in &self.detected {
            o.push_str(&format!(
                "| {:.3} s | `{}` | {} | {} |\n",
                x.after_s, x.alarm, x.grade, x.message
            ));
        }
    }

    fn md_edge_events(&self, o: &mut String) {
        o.push_str(
            "\n## Edge events\n\n| after | agent | device | kind | test | message |\n|---|---|---|---|---|---|\n",
        );
        for x in &self.edge_events {
            o.push_str(&format!(
                "| {:.3} s | {} | {} | {} | {} | {} |\n",
                x.after_s,
                x.agent,
                x.device,
                x.kind,
                if x.test { "yes" } else { "no" },
                x.message.replace('|', "/")
            ));
        }
    }

    fn md_acknowledged(&self, o: &mut String) {
        o.push_str("\n## Acknowledged\n\n| after | alarm | by |\n|---|---|---|\n");
        for x in &self.acknowledged {
            o.push_str(&format!(
                "| {:.3} s | `{}` | {} |\n",
                x.after_s, x.alarm, x.user
            ));
        }
    }

    fn md_incidents(&self, o: &mut String) {
        o.push_str("\n## Incidents opened\n\n| after | id | grade | title |\n|---|---|---|---|\n");
        for x in &self.incidents {
            o.push_str(&format!(
                "| {:.3} s | {} | {} | {} |\n",
                x.after_s, x.id, x.grade, x.title
            ));
        }
    }

    fn md_dc09(&self, o: &mut String) {
        o.push_str(
            "\n## Reached the fire authority's receiver (server DC-09, test code)\n\n| queued | ACKed | kind | zone | rack | restore | seq | path | status |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        for x in &self.dc09 {
            o.push_str(&format!(
                "| {:.3} s | {} | {} | {} | {} | {} | {:04} | {} | {} |\n",
                x.queued_after_s,
                opt_s(x.acked_after_s),
                x.kind,
                x.zone,
                x.rack,
                if x.restore { "yes" } else { "no" },
                x.seq,
                x.path.as_deref().unwrap_or("-"),
                x.status
            ));
        }
    }

    fn md_agents(&self, o: &mut String) {
        o.push_str("\n## Agents (test mode)\n\n| agent | test mode | answer |\n|---|---|---|\n");
        for a in &self.agents {
            o.push_str(&format!(
                "| {} | {} | {} |\n",
                a.agent,
                if a.on { "on" } else { "off" },
                match a.accepted {
                    None => "no answer".to_string(),
                    Some(true) => "accepted".to_string(),
                    Some(false) => format!("refused: {}", a.reason),
                }
            ));
        }
    }

    fn md_expectations(&self, o: &mut String) {
        if self.expectations.is_empty() {
            return;
        }
        o.push_str("\n## Expectations\n\n| expected | within | at | met |\n|---|---|---|---|\n");
        for e in &self.expectations {
            o.push_str(&format!(
                "| {} | {:.0} s | {} | {} |\n",
                e.what,
                e.within_s,
                opt_s(e.at_s),
                if e.met { "yes" } else { "NO" }
            ));
        }
    }
}
