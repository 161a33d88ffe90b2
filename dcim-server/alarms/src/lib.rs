//! Alarm engine (ISA-18.2), incidents and notification policy, as pure state machines: no I/O,
//! no clocks (`now_ms` is passed in). Every change comes out as a record for the journal.
//!
//! ```text
//! Engine::new(Rule::defaults(), EngineConfig::default())?
//! engine.set_device_components(suppression::device_components(&site))
//! engine.on_sample(&sample, now)                      -> Vec<Record>
//! engine.on_comm("meter-a", comm_lost, now)           -> Vec<Record>
//! engine.set_places(fire_text::device_places(&site))   (where devices are, for fire texts)
//! engine.on_redundancy("power", designed, current, detail, now) -> Vec<Record>
//! engine.on_unverified("power", unverified, detail, now)       -> Vec<Record>
//! engine.on_trouble("disk_full", "database", None, active, text, now) -> Vec<Record>
//! engine.tick(now, &SiteSuppression::new(&site, &evaluation))  -> Vec<Record>
//!     (on/off delays, shelf expiry, suppression by design, late-recovery grade raise, flood end)
//! engine.act("feed-breaker-open:meter-a", Action::Ack, "alice", now) -> Result<Vec<Record>, _>
//! engine.set_maintenance("ups-z1", true, "alice", now) -> Vec<Record>
//! engine.active()  (every alarm not normal)
//! engine.snapshot() / engine.restore(snapshot)   (persist across restarts; serde)
//!
//! Incidents::new(IncidentConfig::default())
//! incidents.on_records(&records) -> Vec<IncidentEvent>   (auto-open from grade 1/2, grouping)
//! incidents.open / advance / set_grade / assign / note / set_field / add_follow_up / tick
//! incident.to_markdown() / incident.to_json()
//!
//! Notifier::new(channels, policy)?
//! notifier.plan(&records) -> Vec<Delivery>; notifier.route(channel, now) -> Option<channel>
//! notifier.report(channel, ok, latency_ms, now); notifier.escalations(unacked, now)
//! notifier.state() / notifier.restore_state(state)   (escalation progress, breakers)
//! ```
//!
//! Invariants: every record with `from != to` satisfies [`alarm::valid_transition`]; an alarm
//! that needs acknowledgement is always in [`Engine::active`]; shelving always ends (operator
//! shelving is bounded by `max_shelve_ms`, chatter shelving by `chatter_shelve_ms`); fire-stage
//! and battery-temperature alarms are never shelved ([`Rule::shelvable`]), and an operator's
//! shelving carries a reason.

pub mod alarm;
pub mod engine;
pub mod fire_text;
pub mod incident;
pub mod notify;
pub mod rules;
pub mod suppression;

pub use alarm::{Alarm, AlarmState, valid_transition};
pub use engine::{
    Action, ActionError, Engine, EngineConfig, Event, NoSuppression, Record, Snapshot, Suppression,
};
pub use fire_text::device_places;
pub use incident::{
    Field, Incident, IncidentConfig, IncidentError, IncidentEvent, Incidents, IncidentsMeta, Phase,
    RoleKind,
};
pub use notify::{
    Breaker, BreakerConfig, BreakerState, Channel, ChannelKind, Delivery, EscalationStep, Notifier,
    NotifierState, Policy,
};
pub use rules::{Condition, Rule, rules_from_toml};
pub use suppression::{SiteSuppression, device_components};
