//! The pure DC-09 planner of the server: which site-level events to send to the fire
//! authority, from the alarm engine's and the agents' views (inputs in, messages out, `now_ms`
//! passed in), and the record of a sent message. The shell that runs it is `crate::io::dc09`.

use crate::config::dc09::{AlarmMap, Dc09Config, STAGE_KIND, ZoneConfig};
use serde::{Deserialize, Serialize};
use sia_dc09::{Event as SiaEvent, EventKind};
use std::collections::{BTreeMap, BTreeSet};
// ---------------------------------------------------------------------------------------------
// The pure planner
// ---------------------------------------------------------------------------------------------

/// What the receiver sees as one alarm: zone, rack and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    pub zone: u16,
    pub rack: u16,
    pub kind: EventKind,
}

impl Identity {
    fn key(&self) -> String {
        format!("z{}:r{}:{}", self.zone, self.rack, self.kind.name())
    }
}

/// One alarm of the server's alarm engine, as the planner needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmView {
    pub id: String,
    pub rule: String,
    pub subject: String,
    /// Debounced process condition (independent of acknowledgement and shelving: the fire
    /// authority is told what the plant does, not what operators chose to hide).
    pub active: bool,
    pub active_since_ms: Option<i64>,
    pub value: Option<f64>,
}

impl AlarmView {
    pub fn of(a: &dcim_alarms::Alarm) -> AlarmView {
        AlarmView {
            id: a.id.clone(),
            rule: a.rule.clone(),
            subject: a.subject.clone(),
            active: a.active,
            active_since_ms: a.active_since_ms,
            value: a.value,
        }
    }
}

/// An agent's last known state.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentView {
    pub id: String,
    pub online: bool,
    /// Time of the state (when it went offline, for an offline agent).
    pub since_ms: i64,
}

/// The planner's inputs at one instant.
#[derive(Debug, Clone, Default)]
pub struct Inputs<'a> {
    pub now_ms: i64,
    pub alarms: &'a [AlarmView],
    pub agents: &'a [AgentView],
    /// The drill in progress: messages are flagged as test and carry its id.
    pub drill: Option<&'a str>,
    /// Authority control entered by a user: since when, and who/why (for the record).
    pub authority: Option<(i64, String)>,
}

/// A message to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub event_id: String,
    pub event: SiaEvent,
    pub identity: Identity,
    /// Why (alarm id or lost agent), for the record.
    pub source: String,
    pub drill: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Sent {
    identity: Identity,
    event_id: String,
    test: bool,
    drill: Option<String>,
    source: String,
}

/// The planner's persistent state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlannerState {
    /// Alarms the server sent and has not restored yet, by identity key.
    pub(crate) sent: BTreeMap<String, Sent>,
    /// Identities agents reported active over MQTT (they sent them themselves), by key.
    pub(crate) agent_reported: BTreeMap<String, String>,
    /// Highest agent event sequence looked at, per agent.
    pub cursors: BTreeMap<String, i64>,
}

impl PlannerState {
    /// Whether an event of `kind` was sent and not restored yet.
    pub fn has_open(&self, kind: EventKind) -> bool {
        self.sent.values().any(|s| s.identity.kind == kind)
    }
}

#[derive(Debug, Clone)]
struct Candidate {
    since_ms: i64,
    source: String,
    /// Site-level only: no agent ever sends it (loss of contact with an agent).
    site_only: bool,
}

/// The decision: which site-level events go to the fire authority from the server.
#[derive(Debug, Clone)]
pub struct Planner {
    zones: Vec<ZoneConfig>,
    alarms: Vec<AlarmMap>,
    loss_after_ms: i64,
    /// Identities sent by a previous process: not restored before `hold_until_ms`.
    loaded: BTreeSet<String>,
    hold_until_ms: i64,
    pub state: PlannerState,
}

/// The DC-09 kind of each stage of the fire logic's stage table (`fire_logic::STAGE_TABLE`):
/// the agent sends every stage as its own event. Normal has none.
pub fn stage_kind(stage: fire_logic::Stage) -> Option<EventKind> {
    use fire_logic::Stage;
    Some(match stage {
        Stage::Normal => return None,
        Stage::PreAlarm => EventKind::FirePreAlarm,
        Stage::Stage1 => EventKind::FireStage1,
        Stage::Stage2 => EventKind::FireStage2Patch,
        Stage::Stage3 => EventKind::FireStage3Agent,
        Stage::Stage4 => EventKind::FireStage4Coolant,
        Stage::Stage5 => EventKind::FireStage5Gas,
    })
}

/// Every stage's DC-09 kind, in stage order.
pub fn stage_alarms() -> impl Iterator<Item = EventKind> {
    fire_logic::STAGE_TABLE
        .iter()
        .filter_map(|r| stage_kind(r.stage))
}

/// The stage events active at a `fire.stage` code: every stage of the table up to the current
/// one (stages are latched until a local reset, which restores them all).
pub fn stage_kinds(value: f64) -> Vec<EventKind> {
    fire_logic::STAGE_TABLE
        .iter()
        .filter(|r| f64::from(r.code) <= value)
        .filter_map(|r| stage_kind(r.stage))
        .collect()
}

/// The site-wide brackets: a drill test while a drill runs, and authority control while the
/// fire authority holds it.
fn site_candidates(inp: &Inputs<'_>, out: &mut BTreeMap<Identity, Candidate>) {
    if let Some(d) = inp.drill {
        // the drill bracket: begins with the drill, restored when it ends
        out.insert(
            Identity {
                zone: 0,
                rack: 0,
                kind: EventKind::DrillTest,
            },
            Candidate {
                since_ms: inp.now_ms,
                source: format!("drill {d}"),
                site_only: true,
            },
        );
    }
    if let Some((since_ms, who)) = &inp.authority {
        out.insert(
            Identity {
                zone: 0,
                rack: 0,
                kind: EventKind::FireAuthority,
            },
            Candidate {
                since_ms: *since_ms,
                source: format!("authority control entered by {who}"),
                site_only: true,
            },
        );
    }
}

impl Planner {
    pub fn new(cfg: &Dc09Config, state: PlannerState) -> Planner {
        Planner {
            zones: cfg.zone.clone(),
            alarms: cfg.alarm.clone(),
            loss_after_ms: (cfg.agent_loss_after_s as i64).saturating_mul(1000),
            loaded: state.sent.keys().cloned().collect(),
            hold_until_ms: i64::MIN,
            state,
        }
    }

    /// Alarms sent before a restart (in the state given to [`Planner::new`]) are not restored
    /// before `until_ms`, so that a condition the alarm engine has not rebuilt yet is not
    /// reported as gone.
    pub fn hold_restores_until(&mut self, until_ms: i64) {
        self.hold_until_ms = until_ms;
    }

    fn zone_of(&self, device: &str) -> Option<(u16, u16)> {
        self.zones
            .iter()
            .find(|z| z.has_device(device))
            .map(|z| (z.number, z.racks.get(device).copied().unwrap_or(0)))
    }

    /// An event an agent published (`dcim/v1/{site}/{agent}/events`). A fire stage reported
    /// by an agent that sends its zone's fire events over DC-09 marks those identities as
    /// sent by the agent; a return to normal (stage 0, after a local reset) clears them.
    /// Returns the identities now covered by the agent.
    pub fn on_agent_event(
        &mut self,
        agent: &str,
        device: &str,
        kind: &str,
        data: &serde_json::Value,
    ) -> Vec<Identity> {
        if kind != "fire.stage" {
            return Vec::new();
        }
        let Some(zone) = self.zones.iter().find(|z| z.has_device(device)) else {
            return Vec::new();
        };
        if !zone.dc09_agents.iter().any(|a| a == agent) {
            return Vec::new();
        }
        let rack = zone.racks.get(device).copied().unwrap_or_else(|| {
            data.get("rack_number")
                .and_then(|n| n.as_u64())
                .map_or(0, |n| n.min(9999) as u16)
        });
        let zone = zone.number;
        let Some(code) = data.get("stage_code").and_then(|c| c.as_f64()) else {
            return Vec::new();
        };
        let active = stage_kinds(code);
        for kind in stage_alarms() {
            let id = Identity { zone, rack, kind };
            if active.contains(&kind) {
                self.state
                    .agent_reported
                    .insert(id.key(), agent.to_string());
            } else if code < 1.0 {
                // a local reset: the agent restored every stage itself
                self.state.agent_reported.remove(&id.key());
            }
        }
        active
            .into_iter()
            .map(|kind| Identity { zone, rack, kind })
            .collect()
    }

    /// The agent that covers an identity, if any (then the server does not send it).
    pub fn covered_by(&self, id: &Identity, agents: &[AgentView]) -> Option<String> {
        if let Some(a) = self.state.agent_reported.get(&id.key()) {
            return Some(a.clone());
        }
        let zone = self.zones.iter().find(|z| z.number == id.zone)?;
        zone.dc09_agents
            .iter()
            .find(|a| agents.iter().any(|v| &v.id == *a && v.online))
            .cloned()
    }

    /// What should be reported now, before coverage and what was sent: the active alarms'
    /// events, the site-wide drill and authority brackets, and the zones' lost agents.
    fn candidates(&self, inp: &Inputs<'_>) -> BTreeMap<Identity, Candidate> {
        let mut out: BTreeMap<Identity, Candidate> = BTreeMap::new();
        self.alarm_candidates(inp, &mut out);
        site_candidates(inp, &mut out);
        self.agent_loss_candidates(inp, &mut out);
        out
    }

    /// The events of the active alarms mapped to DC-09, per zone and rack (a fire stage's
    /// events from its value).
    fn alarm_candidates(&self, inp: &Inputs<'_>, out: &mut BTreeMap<Identity, Candidate>) {
        for a in inp.alarms.iter().filter(|a| a.active) {
            let Some(map) = self.alarms.iter().find(|m| m.rule == a.rule) else {
                continue;
            };
            let Some((zone, rack)) = self.zone_of(&a.subject) else {
                continue;
            };
            let kinds = if map.kind == STAGE_KIND {
                stage_kinds(a.value.unwrap_or(2.0))
            } else {
                EventKind::from_name(&map.kind).into_iter().collect()
            };
            for kind in kinds {
                out.entry(Identity { zone, rack, kind })
                    .or_insert_with(|| Candidate {
                        since_ms: a.active_since_ms.unwrap_or(inp.now_ms),
                        source: a.id.clone(),
                        site_only: false,
                    });
            }
        }
    }

    /// A trouble for each zone whose fire agent is offline, once it has been away for
    /// `loss_after_ms` or at once while a fire alarm is active in that zone.
    fn agent_loss_candidates(&self, inp: &Inputs<'_>, out: &mut BTreeMap<Identity, Candidate>) {
        for z in &self.zones {
            let fire_in_zone = out
                .keys()
                .any(|i| i.zone == z.number && i.kind.is_fire_alarm())
                || self.state.agent_reported.keys().any(|k| {
                    k.starts_with(&format!("z{}:", z.number))
                        && stage_alarms().any(|s| k.ends_with(s.name()))
                });
            for agent in &z.agents {
                let Some(v) = inp.agents.iter().find(|v| &v.id == agent) else {
                    continue; // never seen: nothing to lose yet
                };
                if v.online {
                    continue;
                }
                let away = inp.now_ms.saturating_sub(v.since_ms);
                if !(fire_in_zone || away >= self.loss_after_ms) {
                    continue;
                }
                let id = Identity {
                    zone: z.number,
                    rack: 0,
                    kind: EventKind::FireTrouble,
                };
                let c = out.entry(id).or_insert_with(|| Candidate {
                    since_ms: v.since_ms,
                    source: format!("agent {agent} lost"),
                    site_only: true,
                });
                c.since_ms = c.since_ms.min(v.since_ms);
            }
        }
    }

    /// One decision step: new alarms to send, and restores of what the server sent whose
    /// condition is gone.
    pub fn step(&mut self, inp: &Inputs<'_>) -> Vec<Outgoing> {
        let cands = self.candidates(inp);
        let mut out = Vec::new();
        for (id, c) in &cands {
            if self.state.sent.contains_key(&id.key()) {
                continue;
            }
            if !c.site_only && self.covered_by(id, inp.agents).is_some() {
                continue;
            }
            let event_id = match (id.kind, inp.drill) {
                (EventKind::DrillTest, Some(d)) => format!("srv:{}:{d}", id.key()),
                _ => format!("srv:{}:{}", id.key(), c.since_ms),
            };
            let mut event = SiaEvent::new(id.kind, id.zone, id.rack);
            if inp.drill.is_some() {
                event = event.as_test();
            }
            self.state.sent.insert(
                id.key(),
                Sent {
                    identity: *id,
                    event_id: event_id.clone(),
                    test: event.test,
                    drill: inp.drill.map(str::to_owned),
                    source: c.source.clone(),
                },
            );
            out.push(Outgoing {
                event_id,
                event,
                identity: *id,
                source: c.source.clone(),
                drill: inp.drill.map(str::to_owned),
            });
        }
        let gone: Vec<String> = self
            .state
            .sent
            .iter()
            .filter(|(_, s)| !cands.contains_key(&s.identity))
            .filter(|(k, _)| inp.now_ms >= self.hold_until_ms || !self.loaded.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            let Some(s) = self.state.sent.remove(&k) else {
                continue;
            };
            let mut event = SiaEvent::new(s.identity.kind, s.identity.zone, s.identity.rack);
            event = event.restored();
            if s.test {
                event = event.as_test();
            }
            out.push(Outgoing {
                event_id: format!("{}:restore", s.event_id),
                event,
                identity: s.identity,
                source: s.source,
                drill: s.drill,
            });
        }
        out
    }
}

/// A server-sent message as recorded in the `dc09.msg` documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub event_id: String,
    pub kind: String,
    pub zone: u16,
    pub rack: u16,
    pub restore: bool,
    pub test: bool,
    #[serde(default)]
    pub drill: Option<String>,
    pub source: String,
    pub seq: u16,
    pub queued_ms: i64,
    #[serde(default)]
    pub acked_ms: Option<i64>,
    #[serde(default)]
    pub path: Option<String>,
    /// `queued`, `delivered` or `rejected`.
    pub status: String,
}
