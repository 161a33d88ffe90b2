//! Pure ingest core: topic/payload in, decision out. No sockets, no clock (`now_ms` is passed).
//!
//! It checks what an agent may publish (its own agent id in the topic and payload, its own site,
//! only its own devices), de-duplicates on `(agent, epoch, stream, seq)` and keeps the latest
//! value of every point. Events are de-duplicated against a high-water mark that the shell
//! advances only after the events are committed ([`Ingest::events_committed`]), so a failed
//! commit does not swallow events.
//!
//! A spool epoch the server has not seen for an agent that it knows under another epoch is a new
//! stream (the agent's spool was wiped or replaced): accepted from its first sequence number and
//! reported once in the outcome ([`NewEpoch`]), never dropped as duplicates of the old stream.
//! Sample timestamps are checked against the server's clock ([`clock`]): a sample from the
//! future beyond the tolerance is refused and counted, one ahead by less is taken as received
//! now.

use crate::config::AgentConfig;
use dcim_points::{Quality, Sample};
use dcim_wire::{AgentState, Channel, CommandResult, Event, EventBatch, TelemetryBatch, Topic};
use serde::Serialize;
use std::collections::HashMap;

pub mod clock;
mod fast;
mod history;
pub use clock::{Admit, DEFAULT_MAX_CLOCK_SKEW_MS, admit};
pub use history::{Bucket, History, HistoryConfig};

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Rejection {
    /// Not a dcim/v1 topic or not a payload of this version.
    Malformed { detail: String },
    /// The topic names an agent that is not configured.
    UnknownAgent { agent: String },
    /// The topic's site is not the agent's site.
    WrongSite { agent: String, site: String },
    /// The payload's `agent` differs from the topic's.
    AgentMismatch {
        topic_agent: String,
        payload_agent: String,
    },
    /// The authenticated publisher is not the agent of the topic.
    Impersonation {
        publisher: String,
        topic_agent: String,
    },
    /// A sample or event for a device the agent does not own.
    ForeignDevice { agent: String, device: String },
    /// Agents do not publish on command topics.
    CommandTopic,
}

impl Rejection {
    /// Whether the rejection is an access-control violation (as opposed to a malformed message).
    pub fn is_acl(&self) -> bool {
        !matches!(self, Rejection::Malformed { .. } | Rejection::CommandTopic)
    }
}

/// The first batch of a spool epoch the server had not seen for an agent it knows under other
/// epochs: the agent's spool was wiped or replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewEpoch {
    /// The new epoch (empty: an agent that stopped sending epochs).
    pub epoch: String,
    /// The epochs known before, sorted (empty string: the agent's stream before epochs).
    pub previous: Vec<String>,
    pub stream: &'static str,
    pub first_seq: u64,
    /// The new stream's first sequence number is not above the old stream's high-water: the
    /// spool started over, and what the old one had not delivered is lost.
    pub restarted: bool,
}

/// Samples of one batch stamped too far in the future (see [`clock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Future {
    /// Refused samples.
    pub refused: u64,
    /// The latest refused timestamp.
    pub latest_ts_ms: i64,
    /// Samples a little ahead, taken as received now.
    pub clamped: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// New telemetry; `samples` are the ones that changed the latest value of their point.
    Telemetry {
        site: String,
        agent: String,
        epoch: String,
        seq: u64,
        samples: Vec<Sample>,
        /// Set on the first batch of an epoch new for a known agent.
        new_epoch: Option<NewEpoch>,
        /// Samples of the batch stamped in the future.
        future: Future,
    },
    /// Events not seen before (in sequence order); commit, then call `events_committed`.
    Events {
        site: String,
        agent: String,
        epoch: String,
        events: Vec<Event>,
        /// Events whose sequence skipped numbers (should never happen).
        gap: u64,
        /// Set on the first batch of an epoch new for a known agent.
        new_epoch: Option<NewEpoch>,
    },
    State {
        site: String,
        state: AgentState,
    },
    CommandResult {
        site: String,
        agent: String,
        result: CommandResult,
    },
    /// Already seen: `(agent, stream, seq)`.
    Duplicate {
        agent: String,
        stream: &'static str,
        count: u64,
    },
    Rejected(Rejection),
}

/// Latest value of a point, as served by the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latest {
    pub site: String,
    pub agent: String,
    #[serde(flatten)]
    pub sample: Sample,
    pub received_ms: i64,
}

#[derive(Default)]
pub struct Ingest {
    agents: HashMap<String, AgentConfig>,
    /// `(agent, epoch, stream) -> highest seq accepted`.
    high_water: HashMap<(String, String, &'static str), u64>,
    /// `(agent, epoch)` pairs reported as new (once each).
    reported_epochs: std::collections::HashSet<(String, String)>,
    /// Samples stamped further ahead than this are refused (see [`clock`]).
    max_skew_ms: i64,
    /// `site -> device -> point -> latest value and recent history` (nested so that a lookup
    /// borrows the sample's strings instead of allocating a key).
    latest: HashMap<String, HashMap<String, HashMap<String, Point>>>,
    history: HistoryConfig,
    /// Number of points in `latest`.
    points: usize,
    /// Whether any agent may publish (no agents configured: accept everything; used by tests
    /// and the quick start only, logged loudly at start).
    open: bool,
}

/// What the ingest keeps of one point.
#[derive(Debug, Clone)]
struct Point {
    latest: Latest,
    history: History,
}

pub const TELEMETRY: &str = "telemetry";
pub const EVENTS: &str = "events";

impl Ingest {
    pub fn new(agents: &[AgentConfig]) -> Ingest {
        Ingest {
            agents: agents.iter().map(|a| (a.id.clone(), a.clone())).collect(),
            open: agents.is_empty(),
            max_skew_ms: DEFAULT_MAX_CLOCK_SKEW_MS,
            ..Default::default()
        }
    }

    /// How far ahead of the server's clock a sample may be stamped (`[ingest]
    /// max_clock_skew_ms`).
    pub fn set_max_clock_skew(&mut self, ms: i64) {
        self.max_skew_ms = ms;
    }

    pub fn set_high_water(&mut self, agent: &str, epoch: &str, stream: &'static str, seq: u64) {
        let e = self
            .high_water
            .entry((agent.to_owned(), epoch.to_owned(), stream))
            .or_insert(0);
        *e = (*e).max(seq);
    }

    pub fn high_water(&self, agent: &str, epoch: &str, stream: &'static str) -> Option<u64> {
        self.high_water
            .get(&(agent.to_owned(), epoch.to_owned(), stream))
            .copied()
    }

    /// `(agent, epoch, stream, seq)` of every stream seen.
    pub fn high_waters(&self) -> impl Iterator<Item = (&str, &str, &'static str, u64)> {
        self.high_water
            .iter()
            .map(|((a, e, s), q)| (a.as_str(), e.as_str(), *s, *q))
    }

    /// Advance the events high-water mark after the events were committed.
    pub fn events_committed(&mut self, agent: &str, epoch: &str, last_seq: u64) {
        self.set_high_water(agent, epoch, EVENTS, last_seq);
    }

    /// Whether `(agent, epoch)` is a new stream of a known agent (reported once): the first
    /// batch of a spool that was wiped or replaced.
    fn new_epoch(
        &mut self,
        agent: &str,
        epoch: &str,
        stream: &'static str,
        first_seq: u64,
    ) -> Option<NewEpoch> {
        let mut previous: Vec<String> = Vec::new();
        let mut old_high = 0;
        for ((a, e, s), q) in &self.high_water {
            if a != agent {
                continue;
            }
            if e == epoch {
                return None;
            }
            if !previous.contains(e) {
                previous.push(e.clone());
            }
            if *s == stream {
                old_high = old_high.max(*q);
            }
        }
        if previous.is_empty()
            || !self
                .reported_epochs
                .insert((agent.to_owned(), epoch.to_owned()))
        {
            return None;
        }
        previous.sort();
        Some(NewEpoch {
            epoch: epoch.to_owned(),
            previous,
            stream,
            first_seq,
            restarted: first_seq <= old_high,
        })
    }

    pub fn latest(&self) -> impl Iterator<Item = &Latest> {
        self.latest
            .values()
            .flat_map(|d| d.values())
            .flat_map(|p| p.values())
            .map(|p| &p.latest)
    }

    /// The latest value of one point.
    pub fn get(&self, site: &str, device: &str, point: &str) -> Option<&Latest> {
        Some(&self.latest.get(site)?.get(device)?.get(point)?.latest)
    }

    /// How much history is kept per point (default: one-minute buckets for an hour).
    pub fn set_history(&mut self, cfg: HistoryConfig) {
        self.history = cfg;
    }

    pub fn history_config(&self) -> HistoryConfig {
        self.history
    }

    /// The recent history of one point in `[from_ms, to_ms]` merged into `step_ms` windows:
    /// `(site, buckets)`, or `None` for a point never seen. Without `site`, the first site
    /// (in name order) that has the point.
    pub fn history(
        &self,
        site: Option<&str>,
        device: &str,
        point: &str,
        from_ms: i64,
        to_ms: i64,
        step_ms: i64,
    ) -> Option<(String, Vec<Bucket>)> {
        let mut sites: Vec<&String> = self.latest.keys().collect();
        sites.sort();
        let (site, p) = sites
            .into_iter()
            .filter(|s| site.is_none_or(|x| x == s.as_str()))
            .find_map(|s| Some((s, self.latest.get(s)?.get(device)?.get(point)?)))?;
        Some((
            site.clone(),
            p.history.query(&self.history, from_ms, to_ms, step_ms),
        ))
    }

    pub fn point_count(&self) -> usize {
        self.points
    }

    fn check_agent(
        &self,
        topic: &Topic,
        payload_agent: &str,
        publisher: Option<&str>,
    ) -> Result<Option<&AgentConfig>, Rejection> {
        if let Some(p) = publisher
            && p != topic.agent
        {
            return Err(Rejection::Impersonation {
                publisher: p.to_owned(),
                topic_agent: topic.agent.clone(),
            });
        }
        if payload_agent != topic.agent {
            return Err(Rejection::AgentMismatch {
                topic_agent: topic.agent.clone(),
                payload_agent: payload_agent.to_owned(),
            });
        }
        if self.open {
            return Ok(None);
        }
        let Some(cfg) = self.agents.get(&topic.agent) else {
            return Err(Rejection::UnknownAgent {
                agent: topic.agent.clone(),
            });
        };
        if cfg.site != topic.site {
            return Err(Rejection::WrongSite {
                agent: topic.agent.clone(),
                site: topic.site.clone(),
            });
        }
        Ok(Some(cfg))
    }

    fn check_devices<'a>(
        cfg: Option<&AgentConfig>,
        mut devices: impl Iterator<Item = &'a str>,
    ) -> Result<(), Rejection> {
        let Some(cfg) = cfg else { return Ok(()) };
        match devices.find(|d| !cfg.may_publish_for(d)) {
            Some(d) => Err(Rejection::ForeignDevice {
                agent: cfg.id.clone(),
                device: d.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Decide what to do with one MQTT message. `publisher` is the authenticated client when
    /// the transport knows it (the embedded broker's gate does; an external broker does not,
    /// and enforces it with its own ACL).
    pub fn handle(
        &mut self,
        topic: &str,
        payload: &[u8],
        publisher: Option<&str>,
        now_ms: i64,
    ) -> Outcome {
        self.apply(decode(topic, payload), publisher, now_ms)
    }

    /// Applies a message decoded by [`decode`] (which needs no state, so the shell decodes
    /// on another task while this runs).
    pub fn apply(&mut self, msg: Decoded, publisher: Option<&str>, now_ms: i64) -> Outcome {
        match msg {
            Decoded::Rejected(r) => Outcome::Rejected(r),
            Decoded::Telemetry(topic, batch) => self.telemetry(topic, batch, publisher, now_ms),
            Decoded::Events(topic, batch) => {
                let cfg = match self.check_agent(&topic, &batch.agent, publisher) {
                    Ok(c) => c,
                    Err(r) => return Outcome::Rejected(r),
                };
                if let Err(r) =
                    Self::check_devices(cfg, batch.events.iter().map(|e| e.device.as_str()))
                {
                    return Outcome::Rejected(r);
                }
                let first = batch.events.iter().map(|e| e.seq).min().unwrap_or(0);
                let new_epoch = if batch.events.is_empty() {
                    None
                } else {
                    self.new_epoch(&batch.agent, &batch.epoch, EVENTS, first)
                };
                let hw = self.high_water(&batch.agent, &batch.epoch, EVENTS);
                let total = batch.events.len() as u64;
                let mut events: Vec<Event> = batch
                    .events
                    .into_iter()
                    .filter(|e| hw.is_none_or(|hw| e.seq > hw))
                    .collect();
                events.sort_by_key(|e| e.seq);
                events.dedup_by_key(|e| e.seq);
                if events.is_empty() {
                    return Outcome::Duplicate {
                        agent: batch.agent,
                        stream: EVENTS,
                        count: total,
                    };
                }
                let mut gap = 0;
                let mut prev = hw;
                for e in &events {
                    if let Some(p) = prev {
                        gap += e.seq.saturating_sub(p + 1);
                    }
                    prev = Some(e.seq);
                }
                Outcome::Events {
                    site: topic.site,
                    agent: batch.agent,
                    epoch: batch.epoch,
                    events,
                    gap,
                    new_epoch,
                }
            }
            Decoded::State(topic, state) => {
                match self.check_agent(&topic, &state.agent, publisher) {
                    Ok(_) => Outcome::State {
                        site: topic.site,
                        state,
                    },
                    Err(r) => Outcome::Rejected(r),
                }
            }
            Decoded::CommandResult(topic, result) => {
                match self.check_agent(&topic, &topic.agent.clone(), publisher) {
                    Ok(_) => Outcome::CommandResult {
                        site: topic.site,
                        agent: topic.agent,
                        result,
                    },
                    Err(r) => Outcome::Rejected(r),
                }
            }
        }
    }

    fn telemetry(
        &mut self,
        topic: Topic,
        batch: TelemetryBatch,
        publisher: Option<&str>,
        now_ms: i64,
    ) -> Outcome {
        let cfg = match self.check_agent(&topic, &batch.agent, publisher) {
            Ok(c) => c,
            Err(r) => return Outcome::Rejected(r),
        };
        if let Err(r) = Self::check_devices(cfg, batch.samples.iter().map(|s| s.device.as_str())) {
            return Outcome::Rejected(r);
        }
        if self
            .high_water(&batch.agent, &batch.epoch, TELEMETRY)
            .is_some_and(|hw| batch.seq <= hw)
        {
            return Outcome::Duplicate {
                agent: batch.agent,
                stream: TELEMETRY,
                count: batch.samples.len() as u64,
            };
        }
        let new_epoch = self.new_epoch(&batch.agent, &batch.epoch, TELEMETRY, batch.seq);
        self.set_high_water(&batch.agent, &batch.epoch, TELEMETRY, batch.seq);
        let mut future = Future::default();
        let max_skew = self.max_skew_ms;
        let mut changed = Vec::with_capacity(batch.samples.len());
        let site = match self.latest.get_mut(&topic.site) {
            Some(m) => m,
            None => self.latest.entry(topic.site.clone()).or_default(),
        };
        let history = self.history;
        for mut s in batch.samples {
            // A timestamp from the future never outranks a later arrival (see `clock`).
            match admit(s.ts_ms, now_ms, max_skew) {
                Admit::Keep => {}
                Admit::Clamp => {
                    s.ts_ms = now_ms;
                    future.clamped += 1;
                }
                Admit::Refuse => {
                    future.refused += 1;
                    future.latest_ts_ms = future.latest_ts_ms.max(s.ts_ms);
                    continue;
                }
            }
            let points = match site.get_mut(&s.device) {
                Some(m) => m,
                None => site.entry(s.device.clone()).or_default(),
            };
            let numeric = s
                .value
                .as_ref()
                .and_then(|v| v.as_f64())
                .filter(|_| s.quality == Quality::Good);
            match points.get_mut(&s.point) {
                // An older reading (replayed after a newer one) never overwrites the latest
                // value; the history takes it in its time bucket.
                Some(p) if p.latest.sample.ts_ms > s.ts_ms => {
                    if let Some(x) = numeric {
                        p.history.add(&history, s.ts_ms, x);
                    }
                    continue;
                }
                Some(p) => {
                    if let Some(x) = numeric {
                        p.history.add(&history, s.ts_ms, x);
                    }
                    let l = &mut p.latest;
                    // In place: device and point are the key; the rest rarely changes, so
                    // the common case allocates nothing.
                    let old = &mut l.sample;
                    old.value.clone_from(&s.value);
                    old.quality = s.quality;
                    old.ts_ms = s.ts_ms;
                    if old.role != s.role {
                        old.role = s.role.clone();
                    }
                    if old.unit != s.unit {
                        old.unit.clone_from(&s.unit);
                    }
                    if old.labels != s.labels {
                        old.labels.clone_from(&s.labels);
                    }
                    if l.agent != batch.agent {
                        l.agent.clone_from(&batch.agent);
                    }
                    l.received_ms = now_ms;
                }
                None => {
                    let mut h = History::default();
                    if let Some(x) = numeric {
                        h.add(&history, s.ts_ms, x);
                    }
                    points.insert(
                        s.point.clone(),
                        Point {
                            latest: Latest {
                                site: topic.site.clone(),
                                agent: batch.agent.clone(),
                                sample: s.clone(),
                                received_ms: now_ms,
                            },
                            history: h,
                        },
                    );
                    self.points += 1;
                }
            }
            changed.push(s);
        }
        Outcome::Telemetry {
            site: topic.site,
            agent: batch.agent,
            epoch: batch.epoch,
            seq: batch.seq,
            samples: changed,
            new_epoch,
            future,
        }
    }
}

/// A message decoded and checked for form, not yet for permission or duplicates.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Telemetry(Topic, TelemetryBatch),
    Events(Topic, EventBatch),
    State(Topic, AgentState),
    CommandResult(Topic, CommandResult),
    Rejected(Rejection),
}

/// Parses the topic and decodes the payload (no state: may run on any task).
pub fn decode(topic: &str, payload: &[u8]) -> Decoded {
    let malformed = |e: dcim_wire::WireError| {
        Decoded::Rejected(Rejection::Malformed {
            detail: e.to_string(),
        })
    };
    let topic = match Topic::parse(topic) {
        Ok(t) => t,
        Err(e) => return malformed(e),
    };
    match topic.channel {
        Channel::Command { .. } => Decoded::Rejected(Rejection::CommandTopic),
        Channel::Telemetry => match fast::telemetry(payload) {
            Ok(b) => Decoded::Telemetry(topic, b),
            Err(e) => malformed(e),
        },
        Channel::Events => match dcim_wire::decode(payload) {
            Ok(b) => Decoded::Events(topic, b),
            Err(e) => malformed(e),
        },
        Channel::State => match dcim_wire::decode(payload) {
            Ok(b) => Decoded::State(topic, b),
            Err(e) => malformed(e),
        },
        Channel::CommandResult => match dcim_wire::decode(payload) {
            Ok(b) => Decoded::CommandResult(topic, b),
            Err(e) => malformed(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcim_points::{Quality, Role, Value};
    use dcim_wire::{Severity, VERSION};

    fn agents() -> Vec<AgentConfig> {
        vec![AgentConfig {
            id: "a1".into(),
            site: "s1".into(),
            password: Some("x".into()),
            password_env: None,
            devices: vec!["ups-1".into(), "rack-*".into()],
        }]
    }

    fn sample(device: &str, v: f64, ts: i64) -> Sample {
        Sample {
            device: device.into(),
            point: "load".into(),
            role: Role::new("ups.load_pct").unwrap(),
            labels: Default::default(),
            value: Some(Value::Number(v)),
            unit: "%".into(),
            quality: Quality::Good,
            ts_ms: ts,
        }
    }

    fn tele(agent: &str, seq: u64, samples: Vec<Sample>) -> Vec<u8> {
        dcim_wire::encode(&TelemetryBatch {
            v: VERSION,
            agent: agent.into(),
            epoch: String::new(),
            seq,
            samples,
        })
    }

    fn events(agent: &str, seqs: &[u64]) -> Vec<u8> {
        dcim_wire::encode(&EventBatch {
            v: VERSION,
            agent: agent.into(),
            epoch: String::new(),
            events: seqs
                .iter()
                .map(|&seq| Event {
                    id: format!("{agent}:{seq}"),
                    seq,
                    ts_ms: seq as i64,
                    device: "rack-1".into(),
                    kind: "fire.stage".into(),
                    severity: Severity::Alarm,
                    message: "stage".into(),
                    data: serde_json::Value::Null,
                    test: false,
                })
                .collect(),
        })
    }

    #[test]
    fn replayed_telemetry_is_a_duplicate_and_latest_keeps_newest() {
        let mut ing = Ingest::new(&agents());
        let t = "dcim/v1/s1/a1/telemetry";
        let o = ing.handle(
            t,
            &tele("a1", 1, vec![sample("ups-1", 10.0, 100)]),
            None,
            1001,
        );
        assert!(matches!(o, Outcome::Telemetry { ref samples, .. } if samples.len() == 1));
        let o = ing.handle(
            t,
            &tele("a1", 1, vec![sample("ups-1", 10.0, 100)]),
            None,
            1002,
        );
        assert_eq!(
            o,
            Outcome::Duplicate {
                agent: "a1".into(),
                stream: TELEMETRY,
                count: 1
            }
        );
        // Newer batch with an older sample timestamp does not overwrite.
        ing.handle(
            t,
            &tele("a1", 2, vec![sample("ups-1", 5.0, 50)]),
            None,
            1003,
        );
        let l: Vec<_> = ing.latest().collect();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].sample.value, Some(Value::Number(10.0)));
    }

    #[test]
    fn history_keeps_good_numeric_samples_per_point_in_bounded_buckets() {
        let mut ing = Ingest::new(&agents());
        ing.set_history(HistoryConfig {
            resolution_ms: 1000,
            buckets: 2,
        });
        let t = "dcim/v1/s1/a1/telemetry";
        let mut bad = sample("ups-1", 99.0, 1500);
        bad.quality = Quality::CommLost;
        let batches = [
            vec![sample("ups-1", 10.0, 1000), sample("rack-1", 1.0, 1000)],
            vec![sample("ups-1", 30.0, 1900), bad],
            vec![sample("ups-1", 20.0, 2100)],
            vec![sample("ups-1", 5.0, 1200)], // replayed: history only
            vec![sample("ups-1", 40.0, 3000)],
        ];
        for (i, b) in batches.into_iter().enumerate() {
            ing.handle(t, &tele("a1", i as u64 + 1, b), None, 10_000);
        }
        let (site, h) = ing.history(None, "ups-1", "load", 0, 10_000, 0).unwrap();
        assert_eq!(site, "s1");
        // Two buckets kept (2 s and 3 s); the 1 s bucket fell out of the ring.
        let got: Vec<_> = h
            .iter()
            .map(|b| (b.t_ms, b.n, b.min, b.max, b.last))
            .collect();
        assert_eq!(
            got,
            [(2000, 1, 20.0, 20.0, 20.0), (3000, 1, 40.0, 40.0, 40.0)]
        );
        assert_eq!(ing.get("s1", "ups-1", "load").unwrap().sample.ts_ms, 3000);
        assert!(
            ing.history(Some("s2"), "ups-1", "load", 0, 10_000, 0)
                .is_none()
        );
        assert!(ing.history(None, "ups-1", "nope", 0, 10_000, 0).is_none());
        assert_eq!(
            ing.history(None, "rack-1", "load", 0, 10_000, 0)
                .unwrap()
                .1
                .len(),
            1
        );
    }

    #[test]
    fn events_dedup_only_after_commit() {
        let mut ing = Ingest::new(&agents());
        let t = "dcim/v1/s1/a1/events";
        let Outcome::Events {
            events: ev, gap, ..
        } = ing.handle(t, &events("a1", &[1, 2]), None, 0)
        else {
            panic!()
        };
        assert_eq!((ev.len(), gap), (2, 0));
        // Not committed yet: a replay is still offered.
        assert!(matches!(
            ing.handle(t, &events("a1", &[1, 2]), None, 0),
            Outcome::Events { .. }
        ));
        ing.events_committed("a1", "", 2);
        assert!(matches!(
            ing.handle(t, &events("a1", &[1, 2]), None, 0),
            Outcome::Duplicate { count: 2, .. }
        ));
        let Outcome::Events {
            events: ev, gap, ..
        } = ing.handle(t, &events("a1", &[2, 3, 5]), None, 0)
        else {
            panic!()
        };
        assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 5]);
        assert_eq!(gap, 1);
    }

    #[test]
    fn acl_violations_are_rejected() {
        let mut ing = Ingest::new(&agents());
        let r = |o| match o {
            Outcome::Rejected(r) => r,
            other => panic!("{other:?}"),
        };
        assert!(matches!(
            r(ing.handle("dcim/v1/s1/a2/telemetry", &tele("a2", 1, vec![]), None, 0)),
            Rejection::UnknownAgent { .. }
        ));
        assert!(matches!(
            r(ing.handle("dcim/v1/s2/a1/telemetry", &tele("a1", 1, vec![]), None, 0)),
            Rejection::WrongSite { .. }
        ));
        assert!(matches!(
            r(ing.handle("dcim/v1/s1/a1/telemetry", &tele("a9", 1, vec![]), None, 0)),
            Rejection::AgentMismatch { .. }
        ));
        assert!(matches!(
            r(ing.handle(
                "dcim/v1/s1/a1/telemetry",
                &tele("a1", 1, vec![sample("ups-2", 1.0, 1)]),
                None,
                0
            )),
            Rejection::ForeignDevice { .. }
        ));
        assert!(matches!(
            r(ing.handle(
                "dcim/v1/s1/a1/telemetry",
                &tele("a1", 1, vec![]),
                Some("a2"),
                0
            )),
            Rejection::Impersonation { .. }
        ));
        assert!(matches!(
            r(ing.handle("dcim/v1/s1/a1/cmd/rack-1", b"{}", Some("a1"), 0)),
            Rejection::CommandTopic
        ));
        assert!(matches!(
            r(ing.handle("dcim/v1/s1/a1/telemetry", b"not json", None, 0)),
            Rejection::Malformed { .. }
        ));
        // Nothing of the rejected messages reached the latest values.
        assert_eq!(ing.point_count(), 0);
    }

    fn tele_in(agent: &str, epoch: &str, seq: u64, samples: Vec<Sample>) -> Vec<u8> {
        dcim_wire::encode(&TelemetryBatch {
            v: VERSION,
            agent: agent.into(),
            epoch: epoch.into(),
            seq,
            samples,
        })
    }

    #[test]
    fn a_sample_from_the_future_never_freezes_a_point() {
        // Hazard: one sample stamped in 2100 became the latest value and every later, correct
        // reading of a battery rack at 95 °C went to history only: alarms ran on a stale value.
        let mut ing = Ingest::new(&agents());
        let t = "dcim/v1/s1/a1/telemetry";
        let now = 1_800_000_000_000;
        ing.handle(
            t,
            &tele("a1", 1, vec![sample("ups-1", 10.0, now - 1000)]),
            None,
            now,
        );
        let Outcome::Telemetry {
            samples, future, ..
        } = ing.handle(
            t,
            &tele("a1", 2, vec![sample("ups-1", 99.0, 4_102_444_800_000)]),
            None,
            now,
        )
        else {
            panic!()
        };
        assert!(samples.is_empty(), "refused, not forwarded to the alarms");
        assert_eq!(
            (future.refused, future.latest_ts_ms),
            (1, 4_102_444_800_000)
        );
        assert_eq!(
            ing.get("s1", "ups-1", "load").unwrap().sample.value,
            Some(Value::Number(10.0))
        );
        // The next correct reading is the latest value.
        ing.handle(
            t,
            &tele("a1", 3, vec![sample("ups-1", 95.0, now + 500)]),
            None,
            now + 1000,
        );
        let l = ing.get("s1", "ups-1", "load").unwrap();
        assert_eq!(l.sample.value, Some(Value::Number(95.0)));
        // A little ahead (clock skew within the tolerance): taken as received now, so a later
        // arrival still replaces it.
        let Outcome::Telemetry { future, .. } = ing.handle(
            t,
            &tele("a1", 4, vec![sample("ups-1", 96.0, now + 30_000)]),
            None,
            now + 2000,
        ) else {
            panic!()
        };
        assert_eq!((future.refused, future.clamped), (0, 1));
        assert_eq!(
            ing.get("s1", "ups-1", "load").unwrap().sample.ts_ms,
            now + 2000
        );
        ing.handle(
            t,
            &tele("a1", 5, vec![sample("ups-1", 97.0, now + 3000)]),
            None,
            now + 3000,
        );
        assert_eq!(
            ing.get("s1", "ups-1", "load").unwrap().sample.value,
            Some(Value::Number(97.0))
        );
    }

    #[test]
    fn a_wiped_spool_is_a_new_stream_reported_once_never_duplicates() {
        // Hazard: an agent's spool wiped (disk replaced); its sequence numbers restart at 1 and
        // the server acknowledged and dropped 38 batches and 616 items as duplicates, silently.
        let mut ing = Ingest::new(&agents());
        let t = "dcim/v1/s1/a1/telemetry";
        for seq in 1..=38 {
            let o = ing.handle(
                t,
                &tele_in("a1", "e1", seq, vec![sample("ups-1", 1.0, seq as i64)]),
                None,
                100,
            );
            assert!(
                matches!(
                    o,
                    Outcome::Telemetry {
                        new_epoch: None,
                        ..
                    }
                ),
                "first epoch: {o:?}"
            );
        }
        let o = ing.handle(
            t,
            &tele_in("a1", "e2", 1, vec![sample("ups-1", 2.0, 200)]),
            None,
            300,
        );
        let Outcome::Telemetry {
            new_epoch: Some(n),
            samples,
            ..
        } = o
        else {
            panic!("{o:?}")
        };
        assert_eq!(samples.len(), 1, "accepted");
        assert_eq!(
            n,
            NewEpoch {
                epoch: "e2".into(),
                previous: vec!["e1".into()],
                stream: TELEMETRY,
                first_seq: 1,
                restarted: true
            }
        );
        // Reported once; within the new stream duplicates are duplicates again.
        assert!(matches!(
            ing.handle(t, &tele_in("a1", "e2", 2, vec![]), None, 300),
            Outcome::Telemetry {
                new_epoch: None,
                ..
            }
        ));
        assert!(matches!(
            ing.handle(t, &tele_in("a1", "e2", 2, vec![]), None, 300),
            Outcome::Duplicate { .. }
        ));
        // A late replay of the old stream is still a duplicate of it.
        assert!(matches!(
            ing.handle(t, &tele_in("a1", "e1", 30, vec![]), None, 300),
            Outcome::Duplicate { .. }
        ));
        // Events: the same seq in a new epoch is new.
        let ev = |epoch: &str, seqs: &[u64]| {
            let mut b: EventBatch = dcim_wire::decode(&events("a1", seqs)).unwrap();
            b.epoch = epoch.into();
            dcim_wire::encode(&b)
        };
        let e = "dcim/v1/s1/a1/events";
        ing.handle(e, &ev("e1", &[1, 2, 3]), None, 0);
        ing.events_committed("a1", "e1", 3);
        let Outcome::Events {
            events,
            epoch,
            new_epoch,
            ..
        } = ing.handle(e, &ev("e2", &[1, 2]), None, 0)
        else {
            panic!()
        };
        assert_eq!((events.len(), epoch.as_str()), (2, "e2"));
        assert!(
            new_epoch.is_none(),
            "e2 was already reported by the telemetry stream"
        );
        assert!(matches!(
            ing.handle(e, &ev("e1", &[2]), None, 0),
            Outcome::Duplicate { .. }
        ));
        // An agent upgraded to epochs: its numbers continue, so nothing restarted.
        let mut ing = Ingest::new(&agents());
        ing.handle(t, &tele_in("a1", "", 7, vec![]), None, 0);
        let Outcome::Telemetry {
            new_epoch: Some(n), ..
        } = ing.handle(t, &tele_in("a1", "e9", 8, vec![]), None, 0)
        else {
            panic!()
        };
        assert_eq!((n.previous, n.restarted), (vec![String::new()], false));
    }
}
