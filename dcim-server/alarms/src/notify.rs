//! Notification policy (pure decisions; the server does the I/O): channels behind circuit
//! breakers with fallbacks, and escalation of alarms not acknowledged in time.
//!
//! Use: for each record worth notifying, [`Notifier::plan`] returns deliveries (channel +
//! message). Before sending, ask [`Notifier::route`] which channel to use now (the planned one,
//! or its fallback chain when breakers are open); after sending, [`Notifier::report`] the
//! outcome. Call [`Notifier::escalations`] on a tick with the unacknowledged alarms.

use crate::engine::{Event, Record};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Webhook,
    Email,
    Mqtt,
    /// The fire authority link (DC-09), for fire alarms.
    FireAuthority,
}

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerConfig {
    /// Open after this many consecutive failures.
    pub consecutive_failures: u32,
    /// Open when the failure rate over the last `window` outcomes reaches this (0..1), once at
    /// least `min_samples` outcomes are known.
    pub error_rate: f64,
    pub window: usize,
    pub min_samples: usize,
    /// A success slower than this counts as a failure.
    pub slow_ms: i64,
    /// Stay open this long, then let one probe through (half-open).
    pub cool_down_ms: i64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 3,
            error_rate: 0.5,
            window: 20,
            min_samples: 10,
            slow_ms: 5_000,
            cool_down_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open {
        since_ms: i64,
    },
    /// One probe is allowed; `probing` once it has been handed out.
    HalfOpen {
        probing: bool,
    },
}

/// A circuit breaker (pure: time is passed in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breaker {
    pub config: BreakerConfig,
    pub state: BreakerState,
    consecutive: u32,
    outcomes: VecDeque<bool>,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            config,
            state: BreakerState::Closed,
            consecutive: 0,
            outcomes: VecDeque::new(),
        }
    }

    /// Whether a call may go through now (a half-open breaker lets exactly one probe out).
    pub fn allow(&mut self, now_ms: i64) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open { since_ms } => {
                if now_ms - since_ms >= self.config.cool_down_ms {
                    self.state = BreakerState::HalfOpen { probing: true };
                    true
                } else {
                    false
                }
            }
            BreakerState::HalfOpen { probing } => {
                if probing {
                    false
                } else {
                    self.state = BreakerState::HalfOpen { probing: true };
                    true
                }
            }
        }
    }

    /// Whether [`Breaker::allow`] would say yes, without taking the probe.
    pub fn would_allow(&self, now_ms: i64) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open { since_ms } => now_ms - since_ms >= self.config.cool_down_ms,
            BreakerState::HalfOpen { probing } => !probing,
        }
    }

    /// The outcome of a call.
    pub fn record(&mut self, ok: bool, latency_ms: i64, now_ms: i64) {
        let ok = ok && latency_ms <= self.config.slow_ms;
        self.outcomes.push_back(ok);
        while self.outcomes.len() > self.config.window {
            self.outcomes.pop_front();
        }
        if ok {
            self.consecutive = 0;
        } else {
            self.consecutive += 1;
        }
        match self.state {
            BreakerState::HalfOpen { .. } => {
                if ok {
                    self.state = BreakerState::Closed;
                    self.outcomes.clear();
                } else {
                    self.state = BreakerState::Open { since_ms: now_ms };
                }
            }
            BreakerState::Closed => {
                let fails = self.outcomes.iter().filter(|o| !**o).count();
                let rate_trip = self.outcomes.len() >= self.config.min_samples
                    && fails as f64 / self.outcomes.len() as f64 >= self.config.error_rate;
                if self.consecutive >= self.config.consecutive_failures || rate_trip {
                    self.state = BreakerState::Open { since_ms: now_ms };
                }
            }
            BreakerState::Open { .. } => {}
        }
    }
}

/// A notification channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    /// Channel to use when this one's breaker is open.
    pub fallback: Option<String>,
    pub breaker: Breaker,
}

/// One step of escalation: after `after_ms` unacknowledged, notify `channel` (e.g. the shift
/// lead's e-mail, then the manager).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationStep {
    pub after_ms: i64,
    pub channel: String,
    pub to: String,
}

/// Where alarms go by grade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Channels for annunciations of grade 1, 2, 3 (index 0 = grade 1).
    pub by_grade: [Vec<String>; 3],
    /// Channel for fire alarms (rules `fire-stage`), in addition.
    pub fire_channel: Option<String>,
    pub escalation: Vec<EscalationStep>,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub channel: String,
    pub alarm: String,
    pub grade: u8,
    pub subject: String,
    pub body: String,
    /// Escalation step index, when it is one.
    pub escalation: Option<usize>,
}

/// What a [`Notifier`] has learnt at run time, to persist across restarts: the escalation
/// steps already sent per alarm and the breakers' states.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NotifierState {
    pub escalated: BTreeMap<String, usize>,
    pub breakers: BTreeMap<String, Breaker>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notifier {
    pub channels: BTreeMap<String, Channel>,
    pub policy: Policy,
    /// Alarm -> escalation steps already sent.
    escalated: BTreeMap<String, usize>,
}

impl Notifier {
    /// Checks that every channel named by the policy and every fallback exists, and that
    /// fallback chains have no cycle.
    pub fn new(channels: Vec<Channel>, policy: Policy) -> Result<Notifier, String> {
        let map: BTreeMap<String, Channel> =
            channels.into_iter().map(|c| (c.name.clone(), c)).collect();
        let known = |n: &str| map.contains_key(n);
        for n in policy
            .by_grade
            .iter()
            .flatten()
            .chain(policy.fire_channel.iter())
            .chain(policy.escalation.iter().map(|e| &e.channel))
        {
            if !known(n) {
                return Err(format!("policy names unknown channel `{n}`"));
            }
        }
        for c in map.values() {
            let mut seen = vec![c.name.clone()];
            let mut cur = c.fallback.clone();
            while let Some(f) = cur {
                if !known(&f) {
                    return Err(format!("channel `{}`: fallback `{f}` is unknown", c.name));
                }
                if seen.contains(&f) {
                    return Err(format!("channel `{}`: fallback chain loops", c.name));
                }
                seen.push(f.clone());
                cur = map[&f].fallback.clone();
            }
        }
        Ok(Notifier {
            channels: map,
            policy,
            escalated: BTreeMap::new(),
        })
    }

    /// The run-time state (see [`NotifierState`]).
    pub fn state(&self) -> NotifierState {
        NotifierState {
            escalated: self.escalated.clone(),
            breakers: self
                .channels
                .iter()
                .map(|(n, c)| (n.clone(), c.breaker.clone()))
                .collect(),
        }
    }

    /// Resumes from a stored state: escalation progress, and the breakers of channels that
    /// still exist (their tuning stays the configured one).
    pub fn restore_state(&mut self, state: NotifierState) {
        self.escalated = state.escalated;
        for (name, b) in state.breakers {
            if let Some(c) = self.channels.get_mut(&name) {
                c.breaker = Breaker {
                    config: c.breaker.config.clone(),
                    ..b
                };
            }
        }
    }

    /// Deliveries for alarm records: annunciations (activation to unacknowledged, shelf or
    /// suppression ending into unacknowledged) and grade raises; flood starts instead of the
    /// individual alarms of a flood. Fire-stage alarms also go to the fire channel.
    pub fn plan(&mut self, records: &[Record]) -> Vec<Delivery> {
        let mut out = Vec::new();
        for r in records {
            let notify = match &r.event {
                Event::FloodStarted { .. } => true,
                _ if r.in_flood => false,
                Event::GradeRaised { .. } => true,
                _ => r.is_transition() && r.to == crate::alarm::AlarmState::Unacknowledged,
            };
            if r.to != crate::alarm::AlarmState::Unacknowledged {
                // Acknowledged or cleared: no further escalation.
                if r.is_transition() {
                    self.escalated.remove(&r.alarm);
                }
            }
            if !notify {
                continue;
            }
            let g = (r.grade.clamp(1, 3) - 1) as usize;
            let mut chans = self.policy.by_grade[g].clone();
            if r.alarm.starts_with("fire-stage:")
                && let Some(f) = &self.policy.fire_channel
            {
                chans.push(f.clone());
            }
            for ch in chans {
                out.push(Delivery {
                    channel: ch,
                    alarm: r.alarm.clone(),
                    grade: r.grade,
                    subject: format!("[grade {}] {}", r.grade, r.message),
                    body: format!(
                        "{}\nalarm: {}\nstate: {}\nat: {} ms",
                        r.message,
                        r.alarm,
                        r.to.as_str(),
                        r.ts_ms
                    ),
                    escalation: None,
                });
            }
        }
        out
    }

    /// The channel to use for a delivery planned on `channel` now: itself if its breaker
    /// allows, else the first fallback whose breaker allows; `None` when all are open. Takes
    /// the half-open probe of the channel it returns.
    pub fn route(&mut self, channel: &str, now_ms: i64) -> Option<String> {
        let mut cur = Some(channel.to_owned());
        let mut hops = 0;
        while let Some(name) = cur {
            let c = self.channels.get_mut(&name)?;
            if c.breaker.allow(now_ms) {
                return Some(name);
            }
            cur = c.fallback.clone();
            hops += 1;
            if hops > self.channels.len() {
                return None;
            }
        }
        None
    }

    /// The outcome of a send on `channel`.
    pub fn report(&mut self, channel: &str, ok: bool, latency_ms: i64, now_ms: i64) {
        if let Some(c) = self.channels.get_mut(channel) {
            c.breaker.record(ok, latency_ms, now_ms);
        }
    }

    /// Escalations due now for alarms still unacknowledged: `(alarm id, unacknowledged since
    /// ms, grade, message)`. Each step is sent once per alarm.
    pub fn escalations<'a>(
        &mut self,
        unacked: impl IntoIterator<Item = (&'a str, i64, u8, &'a str)>,
        now_ms: i64,
    ) -> Vec<Delivery> {
        let mut out = Vec::new();
        for (alarm, since, grade, msg) in unacked {
            let done = self.escalated.get(alarm).copied().unwrap_or(0);
            let mut sent = done;
            for (i, step) in self.policy.escalation.iter().enumerate().skip(done) {
                if now_ms - since < step.after_ms {
                    break;
                }
                out.push(Delivery {
                    channel: step.channel.clone(),
                    alarm: alarm.to_owned(),
                    grade,
                    subject: format!("[escalation {}] [grade {grade}] {msg}", i + 1),
                    body: format!(
                        "Not acknowledged for {} s: {msg}\nto: {}",
                        (now_ms - since) / 1000,
                        step.to
                    ),
                    escalation: Some(i),
                });
                sent = i + 1;
            }
            if sent > done {
                self.escalated.insert(alarm.to_owned(), sent);
            }
        }
        out
    }
}
