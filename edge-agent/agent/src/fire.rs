//! Local fire logic for racks declared without a controller (`[[rack]]` in the configuration):
//! the firmware's `fire_logic::RackLogic`, fed every control cycle with the latest values of
//! the configured device points, driving the relay module's coils through the Modbus write
//! handle of the line that polls it.
//!
//! [`RackRunner`] is the pure part: inputs from the latest-value table (unknown or stale
//! values -> `Analog::NoSample`, so the logic's own staleness supervision applies; `bad` or
//! `comm_lost` -> `Fault`), one logic step, and its results as wire event drafts, a
//! `fire.stage` sample, the coils to assert and the latch record to persist. [`run`] is the
//! shell: the cycle timer, coil writes (active outputs re-asserted every cycle and never
//! cleared by the agent: only the logic's local reset clears a latched stage), and the latch
//! file (temp file + fsync + rename on every change, restored at start).
//!
//! Fire events go to the DC-09 link with the wire event id as `event_id`, so the outbox never sends
//! one product event twice.

use crate::config::RackConfig;
use crate::ingest::{Ingest, Latest};
use crate::payload::EventDraft;
use dcim_points::{Quality, Role, Sample, Value};
use dcim_wire::Severity;
use fire_logic::{
    Action, Analog, Digital, EventClass, EventKind, Inputs, LatchRecord, Outputs, RackLogic, Stage,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// `device` / `point` of a value in the latest-value table.
pub type PointRef = (String, String);

/// The wire event kind of a logic event.
pub fn event_kind(k: &EventKind) -> &'static str {
    match k {
        EventKind::StageEntered { .. } | EventKind::Restored { .. } => "fire.stage",
        EventKind::ResetAccepted | EventKind::ResetOverride { .. } => "fire.reset",
        _ => match k.class() {
            EventClass::Alarm => "fire.action",
            EventClass::Supervisory => "fire.supervisory",
            EventClass::Trouble => "fire.trouble",
        },
    }
}

fn severity(c: EventClass) -> Severity {
    match c {
        EventClass::Alarm => Severity::Alarm,
        EventClass::Supervisory => Severity::Supervisory,
        EventClass::Trouble => Severity::Trouble,
    }
}

/// Tenths of a degree from a value.
fn tenths(v: &Value) -> Option<i32> {
    match v {
        Value::Number(x) if x.is_finite() => Some((x * 10.0).round() as i32),
        Value::Bool(b) => Some(i32::from(*b)),
        _ => None,
    }
}

/// An analogue input from the latest value of a point.
pub fn analog(latest: Option<&(Option<Value>, Quality)>) -> Analog {
    match latest {
        None | Some((_, Quality::Stale)) => Analog::NoSample,
        Some((_, Quality::Bad | Quality::CommLost)) => Analog::Fault,
        Some((v, Quality::Good)) => match v.as_ref().and_then(tenths) {
            Some(t) => Analog::Value(t),
            None => Analog::Fault,
        },
    }
}

/// A digital input (smoke) from the latest value of a point.
pub fn digital(latest: Option<&(Option<Value>, Quality)>) -> Digital {
    match latest {
        Some((Some(Value::Bool(true)), Quality::Good)) => Digital::On,
        Some((Some(Value::Number(x)), Quality::Good)) if *x != 0.0 => Digital::On,
        Some((Some(_), Quality::Good)) => Digital::Off,
        _ => Digital::NoSample,
    }
}

/// A local panel switch from the latest value of its point: like [`digital`], but a point that
/// is `bad` or whose device is lost is a line fault, never "not operated": the logic then
/// raises `switch_fault`, counts a faulted hold switch as held and a faulted manual-only switch
/// as occupied, and a release or reset switch as not pressed (never a press). The authority
/// key is not read this way: a lost key keeps its last level (a fault would count as off and
/// end a forced isolation).
pub fn switch(latest: Option<&(Option<Value>, Quality)>) -> Digital {
    match latest {
        Some((_, Quality::Bad | Quality::CommLost)) => Digital::Fault,
        Some((Some(_), Quality::Good)) => digital(latest),
        Some((None, Quality::Good)) => Digital::Fault,
        None | Some((_, Quality::Stale)) => Digital::NoSample,
    }
}

/// The DC-09 event kind of a latched stage (none for `Normal`).
pub fn stage_kind(stage: Stage) -> Option<sia_dc09::EventKind> {
    use sia_dc09::EventKind as K;
    Some(match stage {
        Stage::Normal => return None,
        Stage::PreAlarm => K::FirePreAlarm,
        Stage::Stage1 => K::FireStage1,
        Stage::Stage2 => K::FireStage2Patch,
        Stage::Stage3 => K::FireStage3Agent,
        Stage::Stage4 => K::FireStage4Coolant,
        Stage::Stage5 => K::FireStage5Gas,
    })
}

/// The DC-09 event (SIA code) of a logic event for the fire authority link, if it has one.
/// Every stage has its own code; a local reset is [`dc09_reset`].
pub fn dc09_event(k: &EventKind, zone: u16, rack: u16) -> Option<sia_dc09::Event> {
    use fire_logic::Supervisory;
    use sia_dc09::EventKind as K;
    let ev = |kind| sia_dc09::Event::new(kind, zone, rack);
    Some(match k {
        EventKind::StageEntered { stage, .. } => ev(stage_kind(*stage)?),
        EventKind::GasReleased => ev(K::FireGasReleased),
        EventKind::BatteryIsolated => ev(K::BatteryIsolated),
        EventKind::AgentInhibitedManualOnly | EventKind::GasWaitingManualOnly => {
            ev(K::FireManualOnly)
        }
        EventKind::SourceInvalid { .. } => ev(K::FireTroubleSensor),
        EventKind::SourceValid { .. } => ev(K::FireTroubleSensor).restored(),
        EventKind::TroubleRaised(_) => ev(K::FireTrouble),
        EventKind::TroubleCleared(_) => ev(K::FireTrouble).restored(),
        EventKind::SupervisoryRaised(Supervisory::OffGas) => ev(K::FireSupervisoryOffgas),
        EventKind::SupervisoryCleared(Supervisory::OffGas) => {
            ev(K::FireSupervisoryOffgas).restored()
        }
        EventKind::SupervisoryRaised(Supervisory::ManualOnlyBypass) => ev(K::FireManualOnly),
        EventKind::SupervisoryCleared(Supervisory::ManualOnlyBypass) => {
            ev(K::FireManualOnly).restored()
        }
        EventKind::SupervisoryRaised(Supervisory::Authority) => ev(K::FireAuthority),
        EventKind::SupervisoryCleared(Supervisory::Authority) => ev(K::FireAuthority).restored(),
        _ => return None,
    })
}

/// The restores a local reset sends: the alarm of every stage up to the one latched before the
/// reset returns to normal (and the gas release, when stage 5 was reached), highest first.
pub fn dc09_reset(latched: Stage, zone: u16, rack: u16) -> Vec<sia_dc09::Event> {
    let mut out: Vec<sia_dc09::Event> = Stage::ALL
        .iter()
        .rev()
        .filter(|s| **s <= latched)
        .filter_map(|s| stage_kind(*s))
        .map(|k| sia_dc09::Event::new(k, zone, rack).restored())
        .collect();
    if latched >= Stage::Stage5 {
        out.insert(
            0,
            sia_dc09::Event::new(sia_dc09::EventKind::FireGasReleased, zone, rack).restored(),
        );
    }
    out
}

/// The structured trigger of a stage entry, for the center's fire view and the fire authority:
/// the governing source (`SourceId::name`, or `governing`, `manual`) and its temperature in °C,
/// or what else caused the stage in `detail`. The `cause` text of the event stays as it was.
pub fn cause_trigger(cause: &fire_logic::Cause) -> serde_json::Value {
    use fire_logic::{Cause, NotFallen, SourceId};
    let c = |t: i32| f64::from(t) / 10.0;
    match *cause {
        Cause::Temperature { source, value, .. } => {
            serde_json::json!({"source": source.name(), "value_c": c(value)})
        }
        Cause::SmokeAndHotSpot { camera } => serde_json::json!({
            "source": SourceId::Camera.name(), "value_c": c(camera),
            "detail": "smoke with a camera hot spot"
        }),
        Cause::NotFallen(NotFallen::Hot { source, peak, now }) => serde_json::json!({
            "source": source.name(), "value_c": c(now),
            "detail": format!("temperature not falling after the previous stage (peak {} °C)", c(peak))
        }),
        Cause::NotFallen(NotFallen::LostWhileHot { source, last }) => serde_json::json!({
            "source": source.name(), "value_c": c(last),
            "detail": format!("sensor lost while hot (last {} °C): counted as not fallen", c(last))
        }),
        Cause::NotFallen(NotFallen::NoValidTemperature) => serde_json::json!({
            "source": "governing",
            "detail": "no valid temperature after the previous stage: the fire cannot be shown out"
        }),
        Cause::EvidenceLost { source, last } => serde_json::json!({
            "source": source.name(), "value_c": c(last),
            "detail": format!("every temperature sensor lost, {} last at {} °C", source.name(), c(last))
        }),
        Cause::RateOfRise { rise } => serde_json::json!({
            "source": "governing",
            "detail": format!("temperature rose {} °C within the rate-of-rise window", c(rise))
        }),
        Cause::OffGas { value } => serde_json::json!({
            "source": SourceId::OffGas.name(), "detail": format!("off-gas at {} % LFL", c(value))
        }),
        Cause::OffGasSustained { value } => serde_json::json!({
            "source": SourceId::OffGas.name(),
            "detail": match value {
                Some(v) => format!("off-gas held above the supervisory level (now {} % LFL)", c(v)),
                None => "off-gas held above the supervisory level".to_string(),
            }
        }),
        Cause::OffGasRising { value, rise } => serde_json::json!({
            "source": SourceId::OffGas.name(),
            "detail": format!("off-gas at {} % LFL, rising {} % LFL", c(value), c(rise))
        }),
        Cause::SmokeAndOffGas { value } => serde_json::json!({
            "source": SourceId::Smoke.name(),
            "detail": format!("smoke with off-gas at {} % LFL", c(value))
        }),
        Cause::SmokeNoTemperature => serde_json::json!({
            "source": SourceId::Smoke.name(), "detail": "smoke with no valid temperature"
        }),
        Cause::Smoke => serde_json::json!({"source": SourceId::Smoke.name(), "detail": "smoke"}),
        Cause::ManualRelease => {
            serde_json::json!({"source": "manual", "detail": "manual release at the rack"})
        }
        Cause::RoomGasRelease => {
            serde_json::json!({"source": "manual", "detail": "room gas release at the room panel"})
        }
    }
}

/// The event message of a logic event: a stage by its name from the stage table.
fn event_message(rack: &str, k: &EventKind) -> String {
    match k {
        EventKind::StageEntered { stage, .. } => {
            format!("rack {rack}: fire stage entered: {}", stage.title())
        }
        other => format!("rack {rack}: {other:?}"),
    }
}

/// What one control cycle produced.
#[derive(Debug, Default)]
pub struct Cycle {
    /// Wire events, each with what goes to the fire authority link for it.
    pub events: Vec<(EventDraft, Vec<sia_dc09::Event>)>,
    pub samples: Vec<Sample>,
    /// Coils to assert on (point ids of the relay device).
    pub coils_on: Vec<String>,
    /// A changed latch record to persist.
    pub latch: Option<LatchRecord>,
}

pub struct RackRunner {
    pub cfg: RackConfig,
    pub logic: RackLogic,
    last_latch: LatchRecord,
    last_stage: Option<Stage>,
}

impl RackRunner {
    /// A runner; `restored` is the persisted latch record, if any.
    pub fn new(
        cfg: RackConfig,
        restored: Option<&LatchRecord>,
        now_ms: u64,
    ) -> Result<RackRunner, String> {
        let lc = crate::config::rack_logic(&cfg);
        let logic = match restored {
            Some(r) => RackLogic::restore(lc, r, now_ms),
            None => RackLogic::new(lc),
        }
        .map_err(|e| format!("rack `{}`: fire logic configuration: {e:?}", cfg.id))?;
        let last_latch = logic.latch_record();
        Ok(RackRunner {
            cfg,
            logic,
            last_latch,
            last_stage: None,
        })
    }

    pub fn inputs(&self, latest: &BTreeMap<PointRef, (Option<Value>, Quality)>) -> Inputs {
        let get = |r: &Option<PointRef>| r.as_ref().and_then(|k| latest.get(k));
        Inputs {
            bms_max: analog(get(&self.cfg.bms)),
            rack_temp1: analog(get(&self.cfg.temp1)),
            rack_temp2: analog(get(&self.cfg.temp2)),
            camera_max: analog(get(&self.cfg.camera)),
            smoke: digital(get(&self.cfg.smoke)),
            offgas: analog(get(&self.cfg.offgas)),
            feedback: self.cfg.feedback.each_ref().map(|r| digital(get(r))),
            reset: switch(get(&self.cfg.panel.reset_key)),
            hold: switch(get(&self.cfg.panel.hold)),
            manual_release: switch(get(&self.cfg.panel.manual_release)),
            room_gas_release: switch(get(&self.cfg.panel.room_gas_release)),
            manual_only: switch(get(&self.cfg.panel.manual_only)),
            authority: digital(get(&self.cfg.panel.authority_key)),
        }
    }

    /// One control cycle at `now_ms` (monotonic) with the wall clock `wall_ms`.
    pub fn step(
        &mut self,
        now_ms: u64,
        wall_ms: i64,
        latest: &BTreeMap<PointRef, (Option<Value>, Quality)>,
    ) -> Cycle {
        let inputs = self.inputs(latest);
        let out = self.logic.step(now_ms, &inputs);
        let mut c = Cycle::default();
        let summary = OutputSummary::of(&out);
        while let Some(ev) = self.logic.take_event() {
            c.events
                .push(self.event_record(&ev, &out, &summary, wall_ms));
        }
        if self.last_stage != Some(out.stage) {
            self.last_stage = Some(out.stage);
            c.samples.push(Sample {
                device: self.cfg.id.clone(),
                point: "fire_stage".into(),
                role: Role::new("fire.stage").expect("fire.stage is in the vocabulary"),
                labels: Default::default(),
                value: Some(Value::Number(f64::from(out.stage.code()))),
                unit: String::new(),
                quality: Quality::Good,
                ts_ms: wall_ms,
            });
        }
        for a in Action::ALL {
            if out.actions.contains(a)
                && let Some(coil) = self.cfg.coils.get(a.name())
            {
                c.coils_on.push(coil.clone());
            }
        }
        let latch = self.logic.latch_record();
        if latch != self.last_latch {
            self.last_latch = latch;
            c.latch = Some(latch);
        }
        c
    }

    /// A logic event as a wire event draft and its DC-09 events (marked as tests in test mode).
    fn event_record(
        &self,
        ev: &fire_logic::Event,
        out: &Outputs,
        summary: &OutputSummary,
        wall_ms: i64,
    ) -> (EventDraft, Vec<sia_dc09::Event>) {
        let mut data = serde_json::json!({
            "rack": self.cfg.id,
            "rack_number": self.cfg.number,
            "zone": self.cfg.zone,
            "stage": out.stage.name(),
            "stage_code": out.stage.code(),
            "actions": summary.actions,
            "troubles": summary.troubles,
            "supervisory": summary.supervisory,
            "logic_seq": ev.seq,
            "detail": format!("{:?}", ev.kind),
        });
        data["stage_name"] = out.stage.title().into();
        if let EventKind::StageEntered { stage, cause } = &ev.kind {
            data["entered"] = stage.name().into();
            data["cause"] = format!("{cause:?}").into();
            data["trigger"] = cause_trigger(cause);
        }
        let zone = self.cfg.dc09_zone;
        let rack = self.cfg.number.min(9999) as u16;
        let mut dc09: Vec<sia_dc09::Event> = match ev.kind {
            // A reset with dead sensors taken out of service ends the alarms like any reset.
            EventKind::ResetAccepted | EventKind::ResetOverride { .. } => {
                dc09_reset(self.last_stage.unwrap_or(Stage::Stage5), zone, rack)
            }
            k => dc09_event(&k, zone, rack).into_iter().collect(),
        };
        if self.logic.test_mode() {
            dc09 = dc09.into_iter().map(sia_dc09::Event::as_test).collect();
        }
        let draft = EventDraft {
            ts_ms: wall_ms,
            device: self.cfg.id.clone(),
            kind: event_kind(&ev.kind).into(),
            severity: severity(ev.class()),
            message: event_message(&self.cfg.id, &ev.kind),
            data,
            test: self.logic.test_mode(),
        };
        (draft, dc09)
    }
}

/// The state of one step's outputs as every event of that step reports it.
struct OutputSummary {
    actions: Vec<&'static str>,
    troubles: String,
    supervisory: String,
}

impl OutputSummary {
    fn of(out: &Outputs) -> Self {
        OutputSummary {
            actions: Action::ALL
                .iter()
                .filter(|a| out.actions.contains(**a))
                .map(|a| a.name())
                .collect(),
            troubles: format!("{:?}", out.troubles),
            supervisory: format!("{:?}", out.supervisory),
        }
    }
}

/// Writes the latch record durably (see [`write_durably`]).
pub fn persist_latch(path: &Path, record: &LatchRecord) -> std::io::Result<()> {
    write_durably(path, &record.to_bytes())
}

/// Writes `bytes` to `path` durably: temp file, fsync, rename, fsync of the directory (a crash
/// leaves the old file or the new one, never a torn one).
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a persisted latch record (`None` when there is none or it is damaged, logged).
pub fn load_latch(path: &Path) -> Option<LatchRecord> {
    let bytes = std::fs::read(path).ok()?;
    match LatchRecord::from_bytes(&bytes) {
        Ok(r) => Some(r),
        Err(e) => {
            error!(path = %path.display(), error = ?e, "damaged fire latch record ignored");
            None
        }
    }
}

/// Runs the fire logic of one rack: restores its latch, then every cycle steps the logic on
/// the latest values, persists the latch, spools and forwards the events and asserts the coils.
pub async fn run(
    ingest: Arc<Ingest>,
    latest: Arc<Latest>,
    cfg: RackConfig,
    dc09_link: Option<dc09_link::Handle>,
    mut shutdown: watch::Receiver<bool>,
) {
    let started = ingest.clock().instant();
    if let Some(dir) = cfg.latch_file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let restored = load_latch(&cfg.latch_file);
    if let Some(r) = &restored {
        info!(rack = %cfg.id, stage = r.stage.name(), "fire latch restored");
    }
    let mut runner = match RackRunner::new(cfg, restored.as_ref(), 0) {
        Ok(r) => r,
        Err(e) => {
            error!("{e}");
            return;
        }
    };
    let mut iv = tokio::time::interval(runner.cfg.cycle);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = iv.tick() => {}
            _ = shutdown.changed() => if *shutdown.borrow() { return },
        }
        let snapshot = latest.snapshot();
        let now = (ingest.clock().instant() - started).as_millis() as u64;
        let c = runner.step(now, ingest.clock().now_ms(), &snapshot);
        if let Some(l) = &c.latch
            && let Err(e) = persist_latch(&runner.cfg.latch_file, l)
        {
            error!(rack = %runner.cfg.id, error = %e, "FIRE LATCH NOT PERSISTED");
        }
        for (e, dc09) in c.events {
            forward_event(&ingest, &runner.cfg, dc09_link.as_ref(), e, dc09).await;
        }
        ingest.samples(c.samples);
        if let Some(relay) = &runner.cfg.relay {
            assert_coils(&latest, &runner.cfg, relay, c.coils_on).await;
        }
    }
}

/// Spools one fire event and queues its DC-09 events under the wire event id (`id/1`, `id/2`
/// for the second and later), so the outbox never sends one product event twice.
async fn forward_event(
    ingest: &Ingest,
    cfg: &RackConfig,
    dc09_link: Option<&dc09_link::Handle>,
    e: EventDraft,
    dc09: Vec<sia_dc09::Event>,
) {
    let logic_seq = e.data["logic_seq"].clone();
    let wire_id = match ingest.event(e) {
        Ok(seq) => ingest.shared().event_id(seq),
        // Not spooled yet (disk full): still a stable, unique id for this event.
        Err(_) => format!("{}:{}:logic-{logic_seq}", ingest.shared().agent, cfg.id),
    };
    let Some(link) = dc09_link else {
        return;
    };
    for (i, ev) in dc09.into_iter().enumerate() {
        let event_id = if i == 0 {
            wire_id.clone()
        } else {
            format!("{wire_id}/{i}")
        };
        match link
            .submit(dc09_link::Submission {
                event_id,
                event: ev,
            })
            .await
        {
            Ok(_) => {}
            Err(err) => {
                error!(rack = %cfg.id, error = %err, "FIRE EVENT NOT QUEUED FOR THE FIRE AUTHORITY LINK")
            }
        }
    }
}

/// Writes every active output coil of the relay module (re-asserted each cycle, never cleared
/// here).
async fn assert_coils(latest: &Latest, cfg: &RackConfig, relay: &str, coils_on: Vec<String>) {
    for coil in coils_on {
        match latest.writer(relay) {
            Some(w) => {
                let r = tokio::time::timeout(
                    Duration::from_secs(2),
                    w.write(relay, &coil, Value::Bool(true)),
                )
                .await;
                if !matches!(r, Ok(Ok(()))) {
                    warn!(rack = %cfg.id, relay = %relay, coil = %coil, result = ?r, "fire output not confirmed; re-asserted next cycle");
                }
            }
            None => {
                warn!(rack = %cfg.id, relay = %relay, "relay module has no Modbus write handle (yet)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_entry_carries_its_trigger_and_its_name() {
        // Hazard: the fire authority reading "stage stage3" or a debug dump instead of which
        // sensor saw how hot, and the stage's name.
        let cause = fire_logic::Cause::Temperature {
            source: fire_logic::SourceId::Bms,
            value: 684,
            corroborated_by: None,
        };
        let t = cause_trigger(&cause);
        assert_eq!(t["source"], "bms_max");
        assert_eq!(t["value_c"], 68.4);
        let m = event_message(
            "rack-07",
            &EventKind::StageEntered {
                stage: Stage::Stage2,
                cause,
            },
        );
        assert_eq!(m, "rack rack-07: fire stage entered: Extinguishing patch");
        let nf = cause_trigger(&fire_logic::Cause::NotFallen(fire_logic::NotFallen::Hot {
            source: fire_logic::SourceId::RackTemp1,
            peak: 850,
            now: 842,
        }));
        assert_eq!(nf["source"], "rack_temp1");
        assert_eq!(nf["value_c"], 84.2);
        assert!(nf["detail"].as_str().unwrap().contains("85 °C"));
        // A sensor the fire destroyed is named with its last reading, never dropped.
        let lost = cause_trigger(&fire_logic::Cause::NotFallen(
            fire_logic::NotFallen::LostWhileHot {
                source: fire_logic::SourceId::Camera,
                last: 2100,
            },
        ));
        assert_eq!(lost["source"], "camera_max");
        assert!(lost["detail"].as_str().unwrap().contains("lost while hot"));
    }

    fn rack(dir: &Path) -> RackConfig {
        let p = |d: &str, pt: &str| Some((d.to_owned(), pt.to_owned()));
        RackConfig {
            id: "rack-07".into(),
            number: 7,
            zone: "room-1".into(),
            bms: p("bms", "max_cell"),
            temp1: p("rio", "t1"),
            temp2: p("rio", "t2"),
            camera: None,
            smoke: None,
            offgas: None,
            relay: Some("relay".into()),
            coils: [("contactor_open", "do1"), ("blanket_drop", "do2")]
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
            cycle: Duration::from_millis(100),
            latch_file: dir.join("fire-rack-07.latch"),
            dc09_zone: 3,
            logic: fire_logic::Config::default(),
            feedback: Default::default(),
            panel: Default::default(),
        }
    }

    fn values(t: f64, q: Quality) -> BTreeMap<PointRef, (Option<Value>, Quality)> {
        [("bms", "max_cell"), ("rio", "t1"), ("rio", "t2")]
            .into_iter()
            .map(|(d, p)| ((d.to_owned(), p.to_owned()), (Some(Value::Number(t)), q)))
            .collect()
    }

    fn run_for(
        r: &mut RackRunner,
        from: u64,
        ms: u64,
        v: &BTreeMap<PointRef, (Option<Value>, Quality)>,
        all: &mut Vec<Cycle>,
    ) -> u64 {
        let mut t = from;
        while t < from + ms {
            all.push(r.step(t, t as i64, v));
            t += 100;
        }
        t
    }

    #[test]
    fn every_stage_has_its_code_and_a_reset_restores_what_was_reached() {
        use sia_dc09::EventKind as K;
        let kinds: Vec<Option<K>> = Stage::ALL.iter().map(|s| stage_kind(*s)).collect();
        assert_eq!(
            kinds,
            vec![
                None,
                Some(K::FirePreAlarm),
                Some(K::FireStage1),
                Some(K::FireStage2Patch),
                Some(K::FireStage3Agent),
                Some(K::FireStage4Coolant),
                Some(K::FireStage5Gas),
            ]
        );
        let r: Vec<K> = dc09_reset(Stage::Stage1, 3, 9)
            .iter()
            .map(|e| {
                assert!(e.restore && e.zone == 3 && e.rack == 9);
                e.kind
            })
            .collect();
        assert_eq!(r, vec![K::FireStage1, K::FirePreAlarm]);
        let r: Vec<K> = dc09_reset(Stage::Stage5, 0, 0)
            .iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(r.len(), 7);
        assert_eq!(r[0], K::FireGasReleased);
        assert!(dc09_reset(Stage::Normal, 0, 0).is_empty());
    }

    #[test]
    fn a_lost_room_gas_release_or_hold_switch_is_a_fault_never_not_operated() {
        // Hazard: the room panel's I/O module goes silent; its gas release and hold switch
        // read as "not operated" and nobody is told that the room's release path is cut.
        let lost = (Some(Value::Bool(false)), Quality::CommLost);
        let bad = (None, Quality::Bad);
        assert_eq!(switch(Some(&lost)), Digital::Fault);
        assert_eq!(switch(Some(&bad)), Digital::Fault);
        assert_eq!(switch(Some(&(None, Quality::Good))), Digital::Fault);
        assert_eq!(
            switch(Some(&(Some(Value::Bool(true)), Quality::Good))),
            Digital::On
        );
        assert_eq!(switch(None), Digital::NoSample);
        assert_eq!(
            switch(Some(&(Some(Value::Bool(true)), Quality::Stale))),
            Digital::NoSample
        );
        // Through a runner: the switch fault is a trouble, and a faulted hold counts as held.
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = rack(dir.path());
        cfg.panel.room_gas_release = Some(("panel".into(), "gas".into()));
        cfg.panel.authority_key = Some(("panel".into(), "auth".into()));
        let mut r = RackRunner::new(cfg, None, 0).unwrap();
        let mut v = values(25.0, Quality::Good);
        v.insert(("panel".into(), "gas".into()), lost.clone());
        v.insert(("panel".into(), "auth".into()), lost);
        let i = r.inputs(&v);
        assert_eq!(i.room_gas_release, Digital::Fault);
        assert_eq!(
            i.authority,
            Digital::NoSample,
            "a lost authority key keeps its level: a fault would count as off"
        );
        let mut t = 0;
        for _ in 0..10 {
            r.step(t, 0, &v);
            t += 100;
        }
        assert!(
            r.logic
                .outputs()
                .troubles
                .contains(fire_logic::Trouble::SwitchFault)
        );
    }

    #[test]
    fn quality_maps_to_logic_inputs() {
        assert_eq!(analog(None), Analog::NoSample);
        let good = (Some(Value::Number(61.54)), Quality::Good);
        assert_eq!(analog(Some(&good)), Analog::Value(615));
        assert_eq!(
            analog(Some(&(Some(Value::Number(1.0)), Quality::Stale))),
            Analog::NoSample
        );
        assert_eq!(analog(Some(&(None, Quality::Bad))), Analog::Fault);
        assert_eq!(
            analog(Some(&(Some(Value::Number(1.0)), Quality::CommLost))),
            Analog::Fault
        );
        assert_eq!(
            digital(Some(&(Some(Value::Bool(true)), Quality::Good))),
            Digital::On
        );
        assert_eq!(
            digital(Some(&(Some(Value::Bool(true)), Quality::CommLost))),
            Digital::NoSample
        );
    }

    #[test]
    fn crossing_thresholds_latches_stages_outputs_and_the_latch_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = rack(dir.path());
        let mut r = RackRunner::new(cfg.clone(), None, 0).unwrap();
        let mut all = Vec::new();
        let t = run_for(&mut r, 0, 2000, &values(25.0, Quality::Good), &mut all);
        assert_eq!(r.logic.stage(), Stage::Normal);
        assert!(all.iter().all(|c| c.coils_on.is_empty()));
        let t = run_for(&mut r, t, 2000, &values(61.0, Quality::Good), &mut all);
        assert_eq!(r.logic.stage(), Stage::Stage1);
        let t = run_for(&mut r, t, 2000, &values(85.0, Quality::Good), &mut all);
        assert!(r.logic.stage() >= Stage::Stage3, "{:?}", r.logic.stage());
        let events: Vec<&EventDraft> = all.iter().flat_map(|c| &c.events).map(|(e, _)| e).collect();
        let dc09: Vec<sia_dc09::EventKind> = all
            .iter()
            .flat_map(|c| &c.events)
            .flat_map(|(_, d)| d)
            .map(|d| d.kind)
            .filter(|k| k.is_fire_alarm())
            .collect();
        // (The step changes here are implausible jumps, so sensor troubles come and go too.)
        assert!(
            dc09.starts_with(&[
                sia_dc09::EventKind::FireStage1,
                sia_dc09::EventKind::FireStage2Patch,
                sia_dc09::EventKind::FireStage3Agent
            ]),
            "{dc09:?}"
        );
        let stages: Vec<&str> = events
            .iter()
            .filter(|e| e.kind == "fire.stage")
            .map(|e| e.data["entered"].as_str().unwrap())
            .collect();
        assert!(
            stages.starts_with(&["pre_alarm", "stage1", "stage2", "stage3"]),
            "{stages:?}"
        );
        let stage1 = events
            .iter()
            .find(|e| e.data["entered"] == "stage1")
            .unwrap();
        assert_eq!(stage1.severity, Severity::Alarm);
        assert_eq!(stage1.data["rack"], "rack-07");
        // Outputs are asserted every cycle once active and never released by the agent,
        // even when the temperature falls back.
        run_for(&mut r, t, 1000, &values(20.0, Quality::Good), &mut all);
        let last = all.last().unwrap();
        assert_eq!(last.coils_on, vec!["do1".to_string(), "do2".to_string()]);
        // Stage samples on each change.
        let codes: Vec<f64> = all
            .iter()
            .flat_map(|c| &c.samples)
            .filter_map(|s| match s.value {
                Some(Value::Number(x)) => Some(x),
                _ => None,
            })
            .collect();
        assert_eq!(codes[0], 0.0);
        assert!(codes.contains(&2.0));
        // The latch record changes were produced; persisted and restored it brings the stage back.
        let latch = all.iter().rev().find_map(|c| c.latch).unwrap();
        persist_latch(&cfg.latch_file, &latch).unwrap();
        let back = load_latch(&cfg.latch_file).unwrap();
        assert_eq!(back, latch);
        let mut r2 = RackRunner::new(cfg, Some(&back), 0).unwrap();
        let c = r2.step(0, 0, &BTreeMap::new());
        assert_eq!(r2.logic.stage(), r.logic.stage());
        assert_eq!(c.coils_on, vec!["do1".to_string(), "do2".to_string()]);
    }

    #[test]
    fn lost_sensors_raise_troubles_not_alarms() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = RackRunner::new(rack(dir.path()), None, 0).unwrap();
        let mut all = Vec::new();
        let t = run_for(&mut r, 0, 1000, &values(25.0, Quality::Good), &mut all);
        run_for(&mut r, t, 3000, &values(25.0, Quality::CommLost), &mut all);
        let events: Vec<&EventDraft> = all.iter().flat_map(|c| &c.events).map(|(e, _)| e).collect();
        let dc09: Vec<&sia_dc09::Event> = all
            .iter()
            .flat_map(|c| &c.events)
            .flat_map(|(_, d)| d)
            .collect();
        assert!(
            dc09.iter()
                .any(|d| d.kind == sia_dc09::EventKind::FireTroubleSensor),
            "{dc09:?}"
        );
        assert!(
            events.iter().any(|e| e.kind == "fire.trouble"),
            "{events:?}"
        );
        assert!(events.iter().all(|e| e.severity != Severity::Alarm));
    }

    #[test]
    fn a_reset_with_a_dead_sensor_out_of_service_sends_the_restores() {
        // Hazard: after a local reset with the key held (a dead sensor taken out of service)
        // the fire authority would keep seeing the alarms.
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = rack(dir.path());
        cfg.panel.reset_key = Some(("rio".to_owned(), "reset".to_owned()));
        let mut r = RackRunner::new(cfg, None, 0).unwrap();
        let with = |t: f64, reset: bool| {
            let mut v = values(t, Quality::Good);
            v.insert(
                ("rio".to_owned(), "reset".to_owned()),
                (Some(Value::Bool(reset)), Quality::Good),
            );
            v
        };
        let mut all = Vec::new();
        let t = run_for(&mut r, 0, 3000, &with(61.0, false), &mut all);
        assert_eq!(r.logic.stage(), Stage::Stage1);
        let mut cool = with(30.0, false);
        cool.insert(("rio".to_owned(), "t1".to_owned()), (None, Quality::Bad));
        let t = run_for(&mut r, t, 3000, &cool, &mut all);
        cool.insert(
            ("rio".to_owned(), "reset".to_owned()),
            (Some(Value::Bool(true)), Quality::Good),
        );
        all.clear();
        run_for(&mut r, t, 11_000, &cool, &mut all);
        assert_eq!(r.logic.stage(), Stage::Normal);
        let reset: Vec<_> = all
            .iter()
            .flat_map(|c| &c.events)
            .filter(|(e, _)| e.kind == "fire.reset")
            .collect();
        assert_eq!(reset.len(), 1, "one reset event");
        assert!(reset[0].1.iter().all(|e| e.restore) && !reset[0].1.is_empty());
    }

    #[test]
    fn panel_keys_and_feedbacks_reach_the_logic() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = rack(dir.path());
        let p = |pt: &str| Some(("rio".to_owned(), pt.to_owned()));
        cfg.panel.reset_key = p("reset");
        cfg.panel.authority_key = p("authority");
        cfg.feedback[0] = p("contactor_fb");
        let mut r = RackRunner::new(cfg, None, 0).unwrap();
        let with = |t: f64, reset: bool, authority: bool, fb: bool| {
            let mut v = values(t, Quality::Good);
            for (pt, on) in [
                ("reset", reset),
                ("authority", authority),
                ("contactor_fb", fb),
            ] {
                v.insert(
                    ("rio".to_owned(), pt.to_owned()),
                    (Some(Value::Bool(on)), Quality::Good),
                );
            }
            v
        };
        let mut all = Vec::new();
        // The fire authority's key switch forces battery power off at normal temperatures.
        let t = run_for(&mut r, 0, 1000, &with(25.0, false, false, false), &mut all);
        assert!(all.iter().all(|c| c.coils_on.is_empty()));
        let t = run_for(&mut r, t, 1000, &with(25.0, false, true, false), &mut all);
        assert_eq!(all.last().unwrap().coils_on, vec!["do1".to_string()]);
        // The contactor's feedback never confirmed the command: a trouble, never an alarm.
        let troubles: Vec<String> = all
            .iter()
            .flat_map(|c| &c.events)
            .filter(|(e, _)| e.kind == "fire.trouble")
            .map(|(e, _)| e.message.clone())
            .collect();
        assert!(!troubles.is_empty(), "no feedback trouble");
        // Stage 1 latches; the local reset key clears it once cooled and the key is off.
        let t = run_for(&mut r, t, 3000, &with(61.0, false, false, true), &mut all);
        assert_eq!(r.logic.stage(), Stage::Stage1);
        let t = run_for(&mut r, t, 3000, &with(30.0, false, false, true), &mut all);
        assert_eq!(
            r.logic.stage(),
            Stage::Stage1,
            "latched until a local reset"
        );
        all.clear();
        run_for(&mut r, t, 1000, &with(30.0, true, false, true), &mut all);
        assert_eq!(r.logic.stage(), Stage::Normal);
        assert!(
            all.iter()
                .flat_map(|c| &c.events)
                .any(|(e, _)| e.kind == "fire.reset"),
            "reset event"
        );
    }
}
