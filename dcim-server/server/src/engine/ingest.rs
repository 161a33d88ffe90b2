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
//!
//! Telemetry may also arrive in two parts (the shell's priority lane): the samples of a batch
//! that feed an alarm rule first ([`Ingest::apply_priority`], which does not move the
//! high-water), then the whole batch ([`Ingest::apply`]). A sample equal to the latest value of
//! its point (same time, value and quality) is not a change, so the second pass does not feed
//! the alarm engine twice.
//!
//! Sample timestamps are checked against the server's clock ([`clock`]) where the latest values
//! are updated, so both passes apply it: a sample from the future beyond the tolerance is
//! refused (counted in the bulk pass's outcome), one ahead by less is taken as received at
//! `now_ms`. The shell passes both passes of a batch the same `now_ms` (the batch's arrival),
//! so a clamped sample gets the same timestamp in both and is not a change the second time.
//!
//! Each agent may add at most `new_point_limit` new points (device and point never seen) per
//! minute; samples of further new points are refused and counted (`refused_new`), so that one
//! agent publishing endless new names cannot grow the tables without bound.
//!
//! # Limits and layout
//!
//! Each agent may add `broker.new_points_per_agent_per_min` new points per minute (default
//! 100,000); further samples of new points are refused and counted
//! (`dcim_ingest_new_points_refused_total`). A sample stamped more than `[ingest]
//! max_clock_skew_ms` ahead (default 60 s, `clock`) is refused and counted; one ahead by less is
//! taken as received now, so no timestamp outranks a later arrival. A point is compact: value,
//! quality and times in place; role, unit, labels and agent as ids into shared tables
//! (`Interned`); device and point names only as map keys. `PriorityRoles` finds the alarm-rule
//! roles in a raw payload with one SIMD multi-pattern scan, then `fast::select` decodes only
//! those samples; `fast` decodes telemetry equivalently to `dcim_wire::decode`: a one-pass
//! scanner for the compact batches agents send (each string copied once into its sample),
//! serde for anything the scanner is not sure of, and the wire decoder on any refusal, so
//! errors are unchanged. The handled batch's sample vector goes back to the decoder
//! (`recycle`). `history` is the bounded in-memory ring behind
//! `GET /api/points/{device}/{point}/history` (`[history]`, default one-minute buckets for an
//! hour), empty after a restart.

use crate::config::AgentConfig;
use dcim_points::{Quality, Sample};
use dcim_wire::{AgentState, Channel, CommandResult, Event, EventBatch, TelemetryBatch, Topic};
use serde::Serialize;
use std::collections::HashMap;

pub mod clock;
mod fast;
mod history;
pub use clock::{Admit, DEFAULT_MAX_CLOCK_SKEW_MS, admit};
pub use fast::recycle;
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
        /// Samples in the batch (taken in, changed or not).
        taken: u64,
        /// Samples of new points refused: the agent's budget of new points is spent.
        refused_new: u64,
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
    /// borrows the sample's strings instead of allocating a key). The rest of a sample is kept
    /// compact: role, unit, labels and agent as ids into the tables below (shared by every
    /// point), value, quality and times in place.
    latest: HashMap<String, HashMap<String, HashMap<String, Point>>>,
    roles: Interned<dcim_points::Role>,
    units: Interned<String>,
    label_sets: Interned<std::collections::BTreeMap<String, String>>,
    agent_names: Interned<String>,
    history: HistoryConfig,
    /// Number of points in `latest`.
    points: usize,
    /// Whether any agent may publish (no agents configured: accept everything; used by tests
    /// and the quick start only, logged loudly at start).
    open: bool,
    /// New points one agent may add per minute (0: no limit).
    new_point_limit: usize,
    /// Per agent: `(start of the current minute, new points added, samples refused)`.
    new_points: HashMap<String, (i64, usize, u64)>,
}

/// Length of the window of the new-points budget.
pub const NEW_POINT_WINDOW_MS: i64 = 60_000;

/// What the ingest keeps of one point (its device and point names are the keys above it).
#[derive(Debug, Clone)]
struct Point {
    value: Option<dcim_points::Value>,
    ts_ms: i64,
    received_ms: i64,
    role: u32,
    unit: u32,
    labels: u32,
    agent: u32,
    quality: Quality,
    history: History,
}

/// Values shared by many points, each kept once, by id.
#[derive(Debug)]
struct Interned<T> {
    values: Vec<T>,
    ids: HashMap<T, u32>,
}

impl<T> Default for Interned<T> {
    fn default() -> Self {
        Interned {
            values: Vec::new(),
            ids: HashMap::new(),
        }
    }
}

impl<T: Clone + Eq + std::hash::Hash> Interned<T> {
    fn get(&self, id: u32) -> &T {
        &self.values[id as usize]
    }

    /// The id of `v` (added when new).
    fn id<Q>(&mut self, v: &Q) -> u32
    where
        T: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ToOwned<Owned = T> + ?Sized,
    {
        if let Some(&id) = self.ids.get(v) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(v.to_owned());
        self.ids.insert(v.to_owned(), id);
        id
    }

    /// Keeps `*id` when it already names `v` (the common case: no hashing), else looks it up.
    fn update<Q>(&mut self, id: &mut u32, v: &Q)
    where
        T: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ToOwned<Owned = T> + ?Sized,
    {
        if self.get(*id).borrow() != v {
            *id = self.id(v);
        }
    }
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

    /// At most `limit` new points per agent and minute (0: no limit).
    pub fn set_new_point_limit(&mut self, limit: usize) {
        self.new_point_limit = limit;
    }

    /// The agent's new-points window: `(start, new points added, samples refused)`.
    pub fn new_point_window(&self, agent: &str) -> Option<(i64, usize, u64)> {
        self.new_points.get(agent).copied()
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
        // The common case, a stream already seen: one lookup instead of a scan of every
        // stream of every agent.
        if self.high_water(agent, epoch, stream).is_some() {
            return None;
        }
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

    fn to_latest(&self, site: &str, device: &str, point: &str, p: &Point) -> Latest {
        Latest {
            site: site.to_owned(),
            agent: self.agent_names.get(p.agent).clone(),
            sample: Sample {
                device: device.to_owned(),
                point: point.to_owned(),
                role: self.roles.get(p.role).clone(),
                labels: self.label_sets.get(p.labels).clone(),
                value: p.value.clone(),
                unit: self.units.get(p.unit).clone(),
                quality: p.quality,
                ts_ms: p.ts_ms,
            },
            received_ms: p.received_ms,
        }
    }

    /// The latest value of every point (of one device when `device` is given: only its
    /// points are read).
    pub fn latest_of<'a>(&'a self, device: Option<&'a str>) -> impl Iterator<Item = Latest> + 'a {
        self.latest.iter().flat_map(move |(site, devices)| {
            let one = device.map(|d| devices.get_key_value(d).into_iter());
            let all = device.is_none().then(|| devices.iter());
            one.into_iter()
                .flatten()
                .chain(all.into_iter().flatten())
                .flat_map(move |(d, points)| {
                    points
                        .iter()
                        .map(move |(name, p)| self.to_latest(site, d, name, p))
                })
        })
    }

    /// The latest value of every point.
    pub fn latest(&self) -> impl Iterator<Item = Latest> + '_ {
        self.latest_of(None)
    }

    /// The latest value of one point.
    pub fn get(&self, site: &str, device: &str, point: &str) -> Option<Latest> {
        let p = self.latest.get(site)?.get(device)?.get(point)?;
        Some(self.to_latest(site, device, point, p))
    }

    /// Every device with a point, over all sites.
    pub fn devices(&self) -> impl Iterator<Item = &str> {
        self.latest
            .values()
            .flat_map(|d| d.keys().map(String::as_str))
    }

    /// What the status rule needs of each point of a device (over all sites).
    pub fn device_points<'a>(
        &'a self,
        device: &'a str,
    ) -> impl Iterator<Item = dcim_site::status::PointObs<'a>> + 'a {
        self.latest
            .values()
            .filter_map(move |d| d.get(device))
            .flat_map(|points| points.values())
            .map(|p| dcim_site::status::PointObs {
                ts_ms: p.ts_ms,
                quality: p.quality,
                role: self.roles.get(p.role).as_str(),
                value: p.value.as_ref(),
            })
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
        // A device's points come one after another: each run of one device is checked once.
        let mut last = None;
        match devices.find(|d| {
            if last == Some(*d) {
                return false;
            }
            last = Some(*d);
            !cfg.may_publish_for(d)
        }) {
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
        let taken = batch.samples.len() as u64;
        let (samples, refused_new, future) =
            self.update_latest(&topic.site, &batch.agent, batch.samples, now_ms);
        Outcome::Telemetry {
            site: topic.site,
            agent: batch.agent,
            epoch: batch.epoch,
            seq: batch.seq,
            samples,
            taken,
            refused_new,
            new_epoch,
            future,
        }
    }

    /// The priority lane's part of a telemetry batch (see the module documentation): the
    /// same checks as [`Ingest::apply`] (a refused batch gives nothing; the bulk pass reports
    /// it), the same latest-value rule, but the high-water does not move. Returns the samples
    /// that changed their point. Samples from the future are refused or clamped as in the bulk
    /// pass (which counts them): give both passes of a batch the same `now_ms`.
    pub fn apply_priority(
        &mut self,
        topic: &str,
        batch: TelemetryBatch,
        publisher: Option<&str>,
        now_ms: i64,
    ) -> Vec<Sample> {
        let Ok(topic) = Topic::parse(topic) else {
            return Vec::new();
        };
        if topic.channel != Channel::Telemetry {
            return Vec::new();
        }
        let Ok(cfg) = self.check_agent(&topic, &batch.agent, publisher) else {
            return Vec::new();
        };
        if Self::check_devices(cfg, batch.samples.iter().map(|s| s.device.as_str())).is_err()
            || self
                .high_water(&batch.agent, &batch.epoch, TELEMETRY)
                .is_some_and(|hw| batch.seq <= hw)
        {
            return Vec::new();
        }
        self.update_latest(&topic.site, &batch.agent, batch.samples, now_ms)
            .0
    }

    /// Takes samples into the latest values: returns those that changed their point, how many
    /// samples of new points were refused (the agent's budget), and the samples stamped in the
    /// future (refused beyond the clock-skew tolerance, else taken as received at `now_ms`).
    fn update_latest(
        &mut self,
        site_id: &str,
        agent: &str,
        mut samples: Vec<Sample>,
        now_ms: i64,
    ) -> (Vec<Sample>, u64, Future) {
        let mut refused = 0;
        let mut future = Future::default();
        let max_skew = self.max_skew_ms;
        let Ingest {
            latest,
            roles,
            units,
            label_sets,
            agent_names,
            history,
            points: count,
            new_point_limit,
            new_points,
            ..
        } = self;
        let history = *history;
        let mut tables = Tables {
            roles,
            units,
            label_sets,
        };
        let site = match latest.get_mut(site_id) {
            Some(m) => m,
            None => latest.entry(site_id.to_owned()).or_default(),
        };
        let agent_id = agent_names.id(agent);
        // In place: the samples that changed their point stay, in order (no second vector,
        // nothing moved while every sample is a change, the steady case under load).
        samples.retain_mut(|s| {
            // A timestamp from the future never outranks a later arrival (see `clock`).
            if !admit_sample(s, now_ms, max_skew, &mut future) {
                return false;
            }
            let numeric = good_number(s);
            match site.get_mut(&s.device).and_then(|p| p.get_mut(&s.point)) {
                Some(p) => {
                    // The same reading again (the priority lane took it first): nothing new.
                    let same = p.ts_ms == s.ts_ms && p.quality == s.quality && p.value == s.value;
                    if !same && let Some(x) = numeric {
                        p.history.add(&history, s.ts_ms, x);
                    }
                    // An older reading (replayed after a newer one) never overwrites the
                    // latest value; the history took it in its time bucket.
                    let newer = !same && p.ts_ms <= s.ts_ms;
                    if newer {
                        tables.update(p, s, now_ms, agent_id);
                    }
                    newer
                }
                None => {
                    if *new_point_limit > 0
                        && !take_new_point(new_points, *new_point_limit, agent, now_ms)
                    {
                        refused += 1;
                        return false;
                    }
                    let mut h = History::default();
                    if let Some(x) = numeric {
                        h.add(&history, s.ts_ms, x);
                    }
                    let p = tables.point(s, h, now_ms, agent_id);
                    insert_point(site, s, p);
                    *count += 1;
                    true
                }
            }
        });
        (samples, refused, future)
    }
}

/// A sample's value for the history: numeric and of good quality.
#[inline]
fn good_number(s: &Sample) -> Option<f64> {
    s.value
        .as_ref()
        .and_then(|v| v.as_f64())
        .filter(|_| s.quality == Quality::Good)
}

/// Inserts a new point under its device (borrowing the device name when the device is known).
#[inline]
fn insert_point(site: &mut HashMap<String, HashMap<String, Point>>, s: &Sample, p: Point) {
    let points = match site.get_mut(&s.device) {
        Some(m) => m,
        None => site.entry(s.device.clone()).or_default(),
    };
    points.insert(s.point.clone(), p);
}

/// Admits a sample's timestamp (see [`clock`]): kept, clamped to `now_ms` (counted), or
/// refused (false; counted, with the latest such timestamp).
#[inline]
fn admit_sample(s: &mut Sample, now_ms: i64, max_skew: i64, future: &mut Future) -> bool {
    match admit(s.ts_ms, now_ms, max_skew) {
        Admit::Keep => true,
        Admit::Clamp => {
            s.ts_ms = now_ms;
            future.clamped += 1;
            true
        }
        Admit::Refuse => {
            future.refused += 1;
            future.latest_ts_ms = future.latest_ts_ms.max(s.ts_ms);
            false
        }
    }
}

/// The agent's budget of new points per minute: true when one more point may be added (and
/// counts it), false when the budget is spent (and counts the refused sample).
#[inline]
fn take_new_point(
    new_points: &mut HashMap<String, (i64, usize, u64)>,
    limit: usize,
    agent: &str,
    now_ms: i64,
) -> bool {
    let w = match new_points.get_mut(agent) {
        Some(w) => w,
        None => new_points.entry(agent.to_owned()).or_insert((now_ms, 0, 0)),
    };
    if now_ms - w.0 >= NEW_POINT_WINDOW_MS {
        *w = (now_ms, 0, 0);
    }
    if w.1 >= limit {
        w.2 += 1;
        return false;
    }
    w.1 += 1;
    true
}

/// The shared tables a point's role, unit and labels are ids into, borrowed for one batch.
struct Tables<'a> {
    roles: &'a mut Interned<dcim_points::Role>,
    units: &'a mut Interned<String>,
    label_sets: &'a mut Interned<std::collections::BTreeMap<String, String>>,
}

impl Tables<'_> {
    /// A newer sample of a known point, in place: device and point are the keys, the rest
    /// rarely changes (each shared value is compared before it is looked up), so the common
    /// case allocates nothing.
    #[inline]
    fn update(&mut self, p: &mut Point, s: &Sample, now_ms: i64, agent_id: u32) {
        p.value.clone_from(&s.value);
        p.quality = s.quality;
        p.ts_ms = s.ts_ms;
        p.received_ms = now_ms;
        p.agent = agent_id;
        self.roles.update(&mut p.role, &s.role);
        self.units.update(&mut p.unit, s.unit.as_str());
        self.label_sets.update(&mut p.labels, &s.labels);
    }

    /// A new point from its first sample.
    #[inline]
    fn point(&mut self, s: &Sample, history: History, now_ms: i64, agent_id: u32) -> Point {
        Point {
            value: s.value.clone(),
            ts_ms: s.ts_ms,
            received_ms: now_ms,
            role: self.roles.id(&s.role),
            unit: self.units.id(s.unit.as_str()),
            labels: self.label_sets.id(&s.labels),
            agent: agent_id,
            quality: s.quality,
            history,
        }
    }
}

/// The roles whose samples take the priority lane (those some alarm rule reads), and the
/// cheap test for them: one multi-pattern byte scan for the quoted role names (no match: the
/// batch has none, nothing is decoded), then a decode that copies only the selected samples
/// ([`fast::select`]). A role spelled with JSON escapes is missed by the scan; its sample then
/// only takes the bulk lane (later, never lost).
///
/// The scan is the packed (SIMD, "Teddy") searcher of `aho-corasick`: every pattern starts with
/// `"`, which JSON has every few bytes, so the automaton's start-byte prefilter finds a
/// candidate at almost every string and the scan cost about 140 ns per sample of a batch; the
/// packed searcher fingerprints the first bytes of each pattern and costs about 7 ns. It runs
/// twice per telemetry message (the broker's gate and the ingest's reader). Where it cannot be
/// built (no SIMD support, too many patterns), the automaton is used: same answers, slower.
pub struct PriorityRoles {
    scan: Option<Scan>,
    roles: std::collections::HashSet<String>,
}

/// The byte scan behind [`PriorityRoles::matches`].
enum Scan {
    Packed(aho_corasick::packed::Searcher),
    Automaton(aho_corasick::AhoCorasick),
}

impl Scan {
    fn new(patterns: &[String]) -> Option<Scan> {
        if patterns.is_empty() {
            return None;
        }
        let packed = aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(patterns)
            .build();
        match packed {
            Some(p) => Some(Scan::Packed(p)),
            None => aho_corasick::AhoCorasick::new(patterns)
                .ok()
                .map(Scan::Automaton),
        }
    }

    fn is_match(&self, bytes: &[u8]) -> bool {
        match self {
            Scan::Packed(p) => p.find(bytes).is_some(),
            Scan::Automaton(a) => a.is_match(bytes),
        }
    }
}

impl PriorityRoles {
    pub fn new(roles: &[String]) -> PriorityRoles {
        let quoted: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
        PriorityRoles {
            scan: Scan::new(&quoted),
            roles: roles.iter().cloned().collect(),
        }
    }

    /// Whether the bytes name a priority role (the scan alone: may be a false positive).
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.scan.as_ref().is_some_and(|s| s.is_match(bytes))
    }

    /// The priority samples of a telemetry payload, fire stages first; None when it has none.
    pub fn extract(&self, payload: &[u8]) -> Option<TelemetryBatch> {
        if !self.matches(payload) {
            return None;
        }
        let mut b = fast::select(payload, |r| self.roles.contains(r))?;
        b.samples.sort_by_key(|s| s.role.as_str() != "fire.stage");
        Some(b)
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

    #[test]
    fn priority_samples_first_then_the_batch_without_counting_them_twice() {
        // Hazards: the priority lane moving the high-water (the batch would be dropped as a
        // duplicate), feeding the alarm engine twice, or re-raising from a replayed batch.
        let mut ing = Ingest::new(&agents());
        let t = "dcim/v1/s1/a1/telemetry";
        let mut fire = sample("rack-1", 3.0, 100);
        fire.point = "stage".into();
        fire.role = Role::new("fire.stage").unwrap();
        let batch = |seq, fire: &Sample| TelemetryBatch {
            v: VERSION,
            agent: "a1".into(),
            epoch: String::new(),
            seq,
            samples: vec![sample("ups-1", 10.0, 100), fire.clone()],
        };
        // The priority lane gets the batch's alarm samples only (`PriorityRoles::extract`).
        let only = |seq, fire: &Sample| TelemetryBatch {
            samples: vec![fire.clone()],
            ..batch(seq, fire)
        };
        let pre = ing.apply_priority(t, only(1, &fire), None, 101);
        assert_eq!(pre, vec![fire.clone()]);
        assert_eq!(
            ing.high_water("a1", "", TELEMETRY),
            None,
            "the high-water did not move"
        );
        let Outcome::Telemetry { samples, taken, .. } =
            ing.handle(t, &tele("a1", 1, batch(1, &fire).samples), None, 102)
        else {
            panic!()
        };
        assert_eq!(taken, 2);
        assert_eq!(
            samples,
            vec![sample("ups-1", 10.0, 100)],
            "the fire stage was not new"
        );
        // A replay of the batch gives the priority lane nothing.
        assert!(ing.apply_priority(t, only(1, &fire), None, 103).is_empty());
        // Nor does a refused one (a device the agent does not own).
        let mut foreign = fire.clone();
        foreign.device = "crah-1".into();
        foreign.ts_ms = 200;
        assert!(
            ing.apply_priority(t, only(2, &foreign), None, 204)
                .is_empty()
        );
        assert!(ing.get("s1", "crah-1", "stage").is_none());
        // A stage stamped a little ahead of the server's clock (within the tolerance) is taken
        // as received at the batch's arrival by both passes: the bulk pass finds it already
        // there, not a second change; and one stamped far ahead is refused by both, counted
        // once (by the bulk pass).
        let mut ahead = fire.clone();
        ahead.value = Some(Value::Number(4.0));
        ahead.ts_ms = 30_300;
        let arrival = 300;
        let pre = ing.apply_priority(t, only(2, &ahead), None, arrival);
        assert_eq!(pre.len(), 1);
        assert_eq!(pre[0].ts_ms, arrival, "clamped to the arrival");
        let Outcome::Telemetry {
            samples, future, ..
        } = ing.handle(t, &tele("a1", 2, vec![ahead.clone()]), None, arrival)
        else {
            panic!()
        };
        assert!(
            samples.is_empty(),
            "not a change the second time: {samples:?}"
        );
        assert_eq!((future.clamped, future.refused), (1, 0));
        let mut far = ahead.clone();
        far.value = Some(Value::Number(6.0));
        far.ts_ms = 4_102_444_800_000;
        assert!(ing.apply_priority(t, only(3, &far), None, 400).is_empty());
        let Outcome::Telemetry { future, .. } =
            ing.handle(t, &tele("a1", 3, vec![far.clone()]), None, 400)
        else {
            panic!()
        };
        assert_eq!(future.refused, 1);
        let l = ing.get("s1", "rack-1", "stage").unwrap();
        assert_eq!(
            (l.sample.value, l.sample.ts_ms),
            (Some(Value::Number(4.0)), arrival)
        );
    }

    #[test]
    fn an_agent_adding_too_many_new_points_is_refused_and_counted() {
        // Hazard: one agent publishing endless new point names grows the tables without bound
        // and stalls every other agent.
        let mut ing = Ingest::new(&agents());
        ing.set_new_point_limit(3);
        let t = "dcim/v1/s1/a1/telemetry";
        let batch = |seq: u64, n: usize, ts| {
            let s = (0..n)
                .map(|i| {
                    let mut s = sample("rack-1", i as f64, ts);
                    s.point = format!("p{i}");
                    s
                })
                .collect();
            tele("a1", seq, s)
        };
        let Outcome::Telemetry {
            samples,
            refused_new,
            ..
        } = ing.handle(t, &batch(1, 5, 10), None, 1_000)
        else {
            panic!()
        };
        assert_eq!((samples.len(), refused_new), (3, 2));
        assert_eq!(ing.point_count(), 3);
        assert_eq!(ing.new_point_window("a1"), Some((1_000, 3, 2)));
        // Known points are still taken in; new ones wait for the next minute.
        let Outcome::Telemetry {
            samples,
            refused_new,
            ..
        } = ing.handle(t, &batch(2, 5, 20), None, 30_000)
        else {
            panic!()
        };
        assert_eq!((samples.len(), refused_new), (3, 2));
        let Outcome::Telemetry { refused_new, .. } = ing.handle(t, &batch(3, 5, 30), None, 61_000)
        else {
            panic!()
        };
        assert_eq!(refused_new, 0);
        assert_eq!(ing.point_count(), 5);
    }

    #[test]
    fn the_packed_priority_scan_answers_as_the_automaton_does() {
        // Hazard: the fast scan missing a fire stage the automaton would find, so the stage
        // waits behind the telemetry backlog instead of taking the priority lane.
        let roles = crate::engine::facility::alarm_roles();
        let pr = PriorityRoles::new(&roles);
        assert!(matches!(pr.scan, Some(Scan::Packed(_))), "SIMD scan in use");
        let quoted: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
        let auto = aho_corasick::AhoCorasick::new(&quoted).unwrap();
        let mut payloads: Vec<Vec<u8>> = Vec::new();
        let rack = |i: usize, role: &str| {
            format!(
                r#"{{"device":"dev-{i}","point":"t{i}","role":"{role}","value":{i}.5,"unit":"degC","quality":"good","ts_ms":5}}"#
            )
        };
        for role in roles
            .iter()
            .map(String::as_str)
            .chain(["rack.temp", "custom.fire.stage"])
        {
            for at in [0, 7, 499] {
                let samples: Vec<String> = (0..500)
                    .map(|i| rack(i, if i == at { role } else { "rack.temp" }))
                    .collect();
                let body = format!(
                    r#"{{"v":1,"agent":"a","seq":1,"samples":[{}]}}"#,
                    samples.join(",")
                );
                payloads.push(body.into_bytes());
            }
            // Short haystacks (below the SIMD block) and the pattern cut at either end.
            let q = format!("\"{role}\"");
            payloads.push(q.clone().into_bytes());
            payloads.push(q.as_bytes()[1..].to_vec());
            payloads.push(q.as_bytes()[..q.len() - 1].to_vec());
            payloads.push(format!("x{q}").into_bytes());
        }
        payloads.push(Vec::new());
        payloads.push(br#""fire.st\u0061ge""#.to_vec());
        let mut found = 0;
        for p in &payloads {
            assert_eq!(
                pr.matches(p),
                auto.is_match(p),
                "{}",
                String::from_utf8_lossy(&p[..p.len().min(120)])
            );
            found += usize::from(pr.matches(p));
        }
        // Each alarm role is found at the start, inside and at the end of a batch, and alone.
        assert_eq!(found, roles.len() * 5);
    }

    #[test]
    fn latest_values_are_served_as_received() {
        // Hazard: the compact table answering with another point's role, unit or labels.
        let mut ing = Ingest::new(&agents());
        let t = "dcim/v1/s1/a1/telemetry";
        let mut a = sample("ups-1", 1.0, 10);
        a.labels.insert("feed".into(), "A".into());
        let mut b = sample("rack-2", 2.0, 10);
        b.point = "t".into();
        b.role = Role::new("rack.temp").unwrap();
        b.unit = "degC".into();
        b.quality = Quality::Bad;
        ing.handle(t, &tele("a1", 1, vec![a.clone(), b.clone()]), None, 15);
        assert_eq!(ing.get("s1", "ups-1", "load").unwrap().sample, a);
        let l = ing.get("s1", "rack-2", "t").unwrap();
        assert_eq!(
            (l.sample.clone(), l.agent.as_str(), l.received_ms),
            (b.clone(), "a1", 15)
        );
        // Role, unit and labels that change are followed.
        b.unit = "K".into();
        b.role = Role::new("room.temp").unwrap();
        b.ts_ms = 11;
        a.labels.clear();
        a.ts_ms = 11;
        ing.handle(t, &tele("a1", 2, vec![a.clone(), b.clone()]), None, 16);
        let mut all: Vec<Latest> = ing.latest().collect();
        all.sort_by(|x, y| x.sample.device.cmp(&y.sample.device));
        assert_eq!(all.iter().map(|l| &l.sample).collect::<Vec<_>>(), [&b, &a]);
        assert_eq!(ing.latest_of(Some("ups-1")).count(), 1);
        let obs: Vec<_> = ing.device_points("rack-2").collect();
        assert_eq!((obs.len(), obs[0].role, obs[0].ts_ms), (1, "room.temp", 11));
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
