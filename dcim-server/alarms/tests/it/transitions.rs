//! One test per ISA-18.2 transition and per engine feature.

use crate::common;
use dcim_alarms::*;
use dcim_points::{Quality, Role, Sample, Value};
use dcim_site::Redundancy;

const T0: i64 = 1_800_000_000_000;

fn s(device: &str, role: &str, v: Value, ts: i64) -> Sample {
    Sample::of_role(device, Role::new(role).unwrap(), v, ts)
}

fn binary_rule() -> Rule {
    common::binary_rule("ups-on-battery")
}

fn engine() -> Engine {
    Engine::new(vec![binary_rule()], EngineConfig::default()).unwrap()
}

const ID: &str = "ups-on-battery:ups-z1";

fn set(e: &mut Engine, on: bool, t: i64) -> Vec<Record> {
    e.on_sample(&s("ups-z1", "ups.on_battery", Value::Bool(on), t), t)
}

fn state(e: &Engine) -> AlarmState {
    e.get(ID).unwrap().state()
}

/// Asserts that the first record is the transition `from` -> `to`.
#[track_caller]
fn assert_moved(r: &[Record], from: AlarmState, to: AlarmState) {
    assert_eq!((r[0].from, r[0].to), (from, to), "{r:?}");
}

/// Shelving until `until_ms` (reason `test`).
fn shelve(until_ms: i64) -> Action {
    Action::Shelve {
        until_ms,
        reason: "test".into(),
    }
}

fn check(recs: &[Record]) {
    for r in recs {
        if r.is_transition() {
            assert!(valid_transition(r.from, r.to), "{r:?}");
        }
    }
}

#[test]
fn normal_to_unacknowledged_on_activation() {
    let mut e = engine();
    let r = set(&mut e, false, T0);
    assert!(r.is_empty());
    assert_eq!(state(&e), AlarmState::Normal);
    let r = set(&mut e, true, T0 + 1);
    assert_eq!(r.len(), 1);
    assert_moved(&r, AlarmState::Normal, AlarmState::Unacknowledged);
    assert_eq!(r[0].event, Event::Activated);
    assert_eq!(r[0].grade, 2);
    assert_eq!(r[0].ts_ms, T0 + 1);
    assert_eq!(e.active().count(), 1);
}

#[test]
fn unacknowledged_to_acknowledged_on_ack_records_the_user() {
    let mut e = engine();
    set(&mut e, true, T0);
    let r = e.act(ID, Action::Ack, "alice", T0 + 5).unwrap();
    assert_moved(&r, AlarmState::Unacknowledged, AlarmState::Acknowledged);
    assert_eq!(r[0].user.as_deref(), Some("alice"));
    assert_eq!(e.get(ID).unwrap().acked_by.as_deref(), Some("alice"));
    assert_eq!(e.act(ID, Action::Ack, "", T0), Err(ActionError::NoUser));
}

#[test]
fn unacknowledged_to_rtn_unacknowledged_on_clear() {
    let mut e = engine();
    set(&mut e, true, T0);
    let r = set(&mut e, false, T0 + 1);
    assert_moved(
        &r,
        AlarmState::Unacknowledged,
        AlarmState::RtnUnacknowledged,
    );
    // Still in the active list: it needs an acknowledgement.
    assert_eq!(e.active().count(), 1);
}

#[test]
fn acknowledged_to_normal_on_clear() {
    let mut e = engine();
    set(&mut e, true, T0);
    e.act(ID, Action::Ack, "alice", T0 + 1).unwrap();
    let r = set(&mut e, false, T0 + 2);
    assert_moved(&r, AlarmState::Acknowledged, AlarmState::Normal);
    assert_eq!(e.active().count(), 0);
}

#[test]
fn rtn_unacknowledged_to_normal_on_ack() {
    let mut e = engine();
    set(&mut e, true, T0);
    set(&mut e, false, T0 + 1);
    let r = e.act(ID, Action::Ack, "bob", T0 + 2).unwrap();
    assert_moved(&r, AlarmState::RtnUnacknowledged, AlarmState::Normal);
}

#[test]
fn rtn_unacknowledged_to_unacknowledged_on_reactivation() {
    let mut e = engine();
    set(&mut e, true, T0);
    set(&mut e, false, T0 + 1);
    let r = set(&mut e, true, T0 + 2);
    assert_moved(
        &r,
        AlarmState::RtnUnacknowledged,
        AlarmState::Unacknowledged,
    );
}

#[test]
fn ack_in_normal_or_acknowledged_is_refused() {
    let mut e = engine();
    set(&mut e, false, T0);
    assert!(matches!(
        e.act(ID, Action::Ack, "a", T0),
        Err(ActionError::NotAllowed { .. })
    ));
    set(&mut e, true, T0 + 1);
    e.act(ID, Action::Ack, "a", T0 + 2).unwrap();
    assert!(e.act(ID, Action::Ack, "a", T0 + 3).is_err());
    assert!(matches!(
        e.act("nope", Action::Ack, "a", T0),
        Err(ActionError::UnknownAlarm(_))
    ));
}

#[test]
fn unacknowledged_to_shelved_and_back_to_unacknowledged_when_the_shelf_expires() {
    let mut e = engine();
    set(&mut e, true, T0);
    let r = e.act(ID, shelve(T0 + 60_000), "alice", T0 + 1).unwrap();
    assert_moved(&r, AlarmState::Unacknowledged, AlarmState::Shelved);
    assert!(e.tick(T0 + 59_999, &NoSuppression).is_empty());
    let r = e.tick(T0 + 60_000, &NoSuppression);
    assert_eq!(r[0].event, Event::ShelfExpired);
    assert_moved(&r, AlarmState::Shelved, AlarmState::Unacknowledged);
}

#[test]
fn acknowledged_to_shelved_and_back_to_acknowledged_when_the_shelf_expires() {
    let mut e = engine();
    set(&mut e, true, T0);
    e.act(ID, Action::Ack, "a", T0 + 1).unwrap();
    e.act(ID, shelve(T0 + 10), "a", T0 + 2).unwrap();
    let r = e.tick(T0 + 10, &NoSuppression);
    assert_eq!(r[0].to, AlarmState::Acknowledged);
}

#[test]
fn shelved_to_normal_when_the_condition_cleared_while_shelved() {
    let mut e = engine();
    set(&mut e, true, T0);
    e.act(ID, Action::Ack, "a", T0 + 1).unwrap();
    e.act(ID, shelve(T0 + 100), "a", T0 + 2).unwrap();
    let r = set(&mut e, false, T0 + 3);
    assert_eq!(r[0].event, Event::ConditionWhileHidden { active: false });
    assert_eq!(state(&e), AlarmState::Shelved);
    let r = e.act(ID, Action::Unshelve, "a", T0 + 4).unwrap();
    assert_moved(&r, AlarmState::Shelved, AlarmState::Normal);
}

#[test]
fn normal_to_shelved_then_unacknowledged_when_it_activated_while_shelved() {
    let mut e = engine();
    set(&mut e, false, T0);
    e.act(ID, shelve(T0 + 100), "a", T0 + 1).unwrap();
    set(&mut e, true, T0 + 2);
    assert_eq!(state(&e), AlarmState::Shelved);
    let r = e.tick(T0 + 100, &NoSuppression);
    assert_eq!(r[0].to, AlarmState::Unacknowledged);
}

#[test]
fn shelving_is_bounded_and_needs_a_future_end() {
    let mut e = engine();
    set(&mut e, true, T0);
    assert_eq!(
        e.act(ID, shelve(T0), "a", T0),
        Err(ActionError::BadShelveTime)
    );
    let too_long = T0 + e.config.max_shelve_ms + 1;
    assert_eq!(
        e.act(ID, shelve(too_long), "a", T0),
        Err(ActionError::BadShelveTime)
    );
    assert!(e.act(ID, Action::Unshelve, "a", T0).is_err());
}

#[test]
fn unacknowledged_to_suppressed_by_design_and_back() {
    let mut e = engine();
    set(&mut e, true, T0);
    let sup = |a: &Alarm| (a.subject == "ups-z1").then(|| "upstream lost: tx-1".to_string());
    let r = e.tick(T0 + 1, &sup);
    assert_moved(
        &r,
        AlarmState::Unacknowledged,
        AlarmState::SuppressedByDesign,
    );
    assert_eq!(
        r[0].event,
        Event::SuppressedByDesign {
            cause: "upstream lost: tx-1".into()
        }
    );
    assert!(e.tick(T0 + 2, &sup).is_empty());
    let r = e.tick(T0 + 3, &NoSuppression);
    assert_moved(
        &r,
        AlarmState::SuppressedByDesign,
        AlarmState::Unacknowledged,
    );
}

#[test]
fn acknowledged_to_suppressed_by_maintenance_and_back() {
    let mut e = engine();
    set(&mut e, true, T0);
    e.act(ID, Action::Ack, "a", T0 + 1).unwrap();
    let r = e.set_maintenance("ups-z1", true, "alice", T0 + 2);
    assert_moved(
        &r,
        AlarmState::Acknowledged,
        AlarmState::SuppressedByMaintenance,
    );
    assert_eq!(r[0].user.as_deref(), Some("alice"));
    let r = e.set_maintenance("ups-z1", false, "alice", T0 + 3);
    assert_moved(
        &r,
        AlarmState::SuppressedByMaintenance,
        AlarmState::Acknowledged,
    );
}

#[test]
fn maintenance_of_equipment_with_no_alarm_raises_no_phantom_alarm() {
    // Hazard: putting a UPS in maintenance while it is on mains listed "UPS on battery
    // (suppressed)": operators learn to ignore the list, or think the UPS is on battery.
    let mut e = engine();
    set(&mut e, false, T0);
    e.set_maintenance("ups-z1", true, "alice", T0 + 1);
    assert_eq!(state(&e), AlarmState::SuppressedByMaintenance);
    assert!(!e.get(ID).unwrap().active);
    assert_eq!(
        e.active().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        Vec::<&str>::new(),
        "a quiet alarm under maintenance is not an active alarm"
    );
    // The same for an alarm first seen while the equipment is in maintenance.
    e.set_maintenance("ups-z2", true, "alice", T0 + 2);
    e.on_sample(
        &s("ups-z2", "ups.on_battery", Value::Bool(false), T0 + 3),
        T0 + 3,
    );
    assert_eq!(e.active().count(), 0);
    // When the UPS does go on battery during maintenance, it is listed (suppressed).
    set(&mut e, true, T0 + 4);
    let listed: Vec<_> = e.active().map(|a| (a.id.as_str(), a.state())).collect();
    assert_eq!(listed, [(ID, AlarmState::SuppressedByMaintenance)]);
    // Back on mains during the maintenance: quiet again, off the list.
    set(&mut e, false, T0 + 5);
    assert_eq!(e.active().count(), 0);
    // An alarm waiting for an acknowledgement stays listed when maintenance starts.
    e.set_maintenance("ups-z1", false, "alice", T0 + 6);
    set(&mut e, true, T0 + 7);
    set(&mut e, false, T0 + 8);
    assert_eq!(state(&e), AlarmState::RtnUnacknowledged);
    e.set_maintenance("ups-z1", true, "alice", T0 + 9);
    assert_eq!(
        e.active().count(),
        1,
        "returned unacknowledged: still listed"
    );
}

#[test]
fn alarms_created_during_maintenance_start_suppressed() {
    let mut e = engine();
    e.set_maintenance("ups-z1", true, "alice", T0);
    set(&mut e, true, T0 + 1);
    assert_eq!(state(&e), AlarmState::SuppressedByMaintenance);
}

#[test]
fn unacknowledged_to_out_of_service_and_return_to_service() {
    let mut e = engine();
    set(&mut e, true, T0);
    let r = e.act(ID, Action::OutOfService, "tech", T0 + 1).unwrap();
    assert_moved(&r, AlarmState::Unacknowledged, AlarmState::OutOfService);
    assert!(e.act(ID, Action::OutOfService, "tech", T0 + 1).is_err());
    // Out of service beats maintenance; maintenance shows when it returns to service.
    e.set_maintenance("ups-z1", true, "tech", T0 + 2);
    assert_eq!(state(&e), AlarmState::OutOfService);
    let r = e.act(ID, Action::ReturnToService, "tech", T0 + 3).unwrap();
    assert_moved(
        &r,
        AlarmState::OutOfService,
        AlarmState::SuppressedByMaintenance,
    );
    let r = e.set_maintenance("ups-z1", false, "tech", T0 + 4);
    assert_eq!(r[0].to, AlarmState::Unacknowledged);
}

#[test]
fn comments_carry_the_user_and_change_nothing() {
    let mut e = engine();
    set(&mut e, true, T0);
    let r = e
        .act(
            ID,
            Action::Comment {
                text: "crew on site".into(),
            },
            "carol",
            T0 + 1,
        )
        .unwrap();
    assert!(!r[0].is_transition());
    assert_eq!(r[0].user.as_deref(), Some("carol"));
    assert_eq!(state(&e), AlarmState::Unacknowledged);
}

#[test]
fn threshold_with_deadband() {
    let rule = Rule {
        id: "hot".into(),
        name: "Hot".into(),
        condition: Condition::Threshold {
            role: "room.temp".into(),
            high: Some(30.0),
            low: None,
            deadband: 2.0,
        },
        grade: 3,
        device_prefix: String::new(),
        labels: Default::default(),
        on_delay_ms: 0,
        off_delay_ms: 0,
        expected_recovery_ms: 0,
    };
    let mut e = Engine::new(vec![rule], EngineConfig::default()).unwrap();
    let t = |e: &mut Engine, v: f64, ts: i64| {
        e.on_sample(&s("env-h1", "room.temp", Value::Number(v), ts), ts)
    };
    assert!(t(&mut e, 30.0, T0).is_empty());
    assert_eq!(t(&mut e, 30.5, T0 + 1)[0].event, Event::Activated);
    assert!(
        t(&mut e, 29.0, T0 + 2).is_empty(),
        "inside the deadband it stays active"
    );
    assert_eq!(t(&mut e, 27.9, T0 + 3)[0].event, Event::Cleared);
}

#[test]
fn on_delay_and_off_delay() {
    let mut rule = binary_rule();
    rule.on_delay_ms = 10_000;
    rule.off_delay_ms = 5_000;
    let mut e = Engine::new(vec![rule], EngineConfig::default()).unwrap();
    assert!(set(&mut e, true, T0).is_empty());
    assert!(e.tick(T0 + 9_999, &NoSuppression).is_empty());
    let r = e.tick(T0 + 10_000, &NoSuppression);
    assert_eq!(r[0].event, Event::Activated);
    assert!(set(&mut e, false, T0 + 11_000).is_empty());
    assert!(
        set(&mut e, true, T0 + 12_000).is_empty(),
        "a blip back to active cancels the off delay"
    );
    assert!(e.tick(T0 + 20_000, &NoSuppression).is_empty());
    set(&mut e, false, T0 + 21_000);
    let r = e.tick(T0 + 26_000, &NoSuppression);
    assert_eq!(r[0].event, Event::Cleared);
}

#[test]
fn chattering_alarm_is_shelved_automatically_and_the_shelf_expires() {
    let mut e = engine();
    let mut recs = Vec::new();
    for i in 0..5 {
        recs.extend(set(&mut e, true, T0 + i * 1000));
        recs.extend(set(&mut e, false, T0 + i * 1000 + 500));
    }
    check(&recs);
    assert!(
        recs.iter()
            .any(|r| matches!(r.event, Event::ChatterShelved { activations: 5 }))
    );
    assert_eq!(state(&e), AlarmState::Shelved);
    assert_eq!(
        e.get(ID).unwrap().overlays.shelved_by.as_deref(),
        Some("system:chatter")
    );
    let until = e.get(ID).unwrap().overlays.shelved_until.unwrap();
    let r = e.tick(until, &NoSuppression);
    assert_eq!(r[0].event, Event::ShelfExpired);
    assert_eq!(state(&e), AlarmState::RtnUnacknowledged);
}

#[test]
fn flood_gives_one_summary_and_ends() {
    let cfg = EngineConfig {
        flood_count: 3,
        flood_window_ms: 10_000,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(vec![binary_rule()], cfg).unwrap();
    let mut recs = Vec::new();
    for i in 0..6 {
        let d = format!("ups-x{i}");
        recs.extend(e.on_sample(&s(&d, "ups.on_battery", Value::Bool(true), T0 + i), T0 + i));
    }
    let floods: Vec<_> = recs
        .iter()
        .filter(|r| matches!(r.event, Event::FloodStarted { .. }))
        .collect();
    assert_eq!(floods.len(), 1);
    assert_eq!(floods[0].event, Event::FloodStarted { count: 4 });
    // The annunciation that started the flood and those after it are covered by the summary.
    assert_eq!(recs.iter().filter(|r| r.in_flood).count(), 3);
    let r = e.tick(T0 + 20_000, &NoSuppression);
    assert_eq!(r.last().unwrap().event, Event::FloodEnded { count: 6 });
    assert!(!e.is_flooding());
}

#[test]
fn redundancy_loss_of_2n_is_grade_2_and_below_n_is_grade_1() {
    let mut e = Engine::new(Rule::defaults(), EngineConfig::default()).unwrap();
    assert!(
        e.on_redundancy("power", Redundancy::TwoN, Redundancy::TwoN, "", T0)
            .is_empty()
    );
    let r = e.on_redundancy(
        "power",
        Redundancy::TwoN,
        Redundancy::N,
        "feed-a lost",
        T0 + 1,
    );
    assert_eq!(r[0].event, Event::Activated);
    assert_eq!(r[0].grade, 2);
    assert!(r[0].message.contains("designed 2N, now N"));
    let r = e.on_redundancy("power", Redundancy::TwoN, Redundancy::BelowN, "", T0 + 2);
    assert_eq!(r[0].event, Event::GradeRaised { from: 2, to: 1 });
    assert_eq!(e.get("redundancy:power").unwrap().grade, 1);
    let r = e.on_redundancy("power", Redundancy::TwoN, Redundancy::TwoN, "", T0 + 3);
    assert_eq!(r[0].event, Event::Cleared);
    // A direct loss below N starts at grade 1.
    let r = e.on_redundancy(
        "cooling",
        Redundancy::NPlus1,
        Redundancy::BelowN,
        "",
        T0 + 4,
    );
    assert_eq!(r[0].grade, 1);
}

#[test]
fn fire_stage_at_or_above_stage_1_is_grade_1() {
    let mut e = Engine::new(Rule::defaults(), EngineConfig::default()).unwrap();
    let r = e.on_sample(&s("bms-r001", "fire.stage", Value::Number(1.0), T0), T0);
    assert_eq!(r.len(), 1, "pre-alarm only");
    assert_eq!(
        (r[0].alarm.as_str(), r[0].grade),
        ("fire-prealarm:bms-r001", 2)
    );
    let r = e.on_sample(
        &s("bms-r001", "fire.stage", Value::Number(4.0), T0 + 1),
        T0 + 1,
    );
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].alarm.as_str(), r[0].grade),
        ("fire-stage:bms-r001", 1)
    );
}

#[test]
fn comm_lost_alarm_after_its_on_delay() {
    let mut e = Engine::new(Rule::defaults(), EngineConfig::default()).unwrap();
    assert!(e.on_comm("meter-a", false, T0).is_empty());
    assert!(e.on_comm("meter-a", true, T0).is_empty());
    let r = e.tick(T0 + 30_000, &NoSuppression);
    assert_eq!(r[0].alarm, "comm-lost:meter-a");
    assert_eq!(r[0].to, AlarmState::Unacknowledged);
}

#[test]
fn grade_is_raised_once_when_recovery_takes_longer_than_expected() {
    let mut rule = binary_rule();
    rule.expected_recovery_ms = 60_000;
    let mut e = Engine::new(vec![rule], EngineConfig::default()).unwrap();
    set(&mut e, true, T0);
    assert!(e.tick(T0 + 60_000, &NoSuppression).is_empty());
    let r = e.tick(T0 + 60_001, &NoSuppression);
    assert_eq!(r[0].event, Event::GradeRaised { from: 2, to: 1 });
    assert!(
        e.tick(T0 + 600_000, &NoSuppression).is_empty(),
        "raised once"
    );
    set(&mut e, false, T0 + 600_001);
    assert_eq!(
        e.get(ID).unwrap().grade,
        2,
        "back to the rule's grade after recovery"
    );
}

#[test]
fn bad_quality_samples_do_not_move_alarms() {
    let mut e = engine();
    let mut x = s("ups-z1", "ups.on_battery", Value::Bool(true), T0);
    x.quality = Quality::CommLost;
    assert!(e.on_sample(&x, T0).is_empty());
}

#[test]
fn invalid_rules_are_rejected() {
    let mut r = binary_rule();
    r.grade = 4;
    assert!(Engine::new(vec![r], EngineConfig::default()).is_err());
    let r = Rule {
        condition: Condition::Threshold {
            role: "nope.role".into(),
            high: Some(1.0),
            low: None,
            deadband: 0.0,
        },
        ..binary_rule()
    };
    assert!(
        Engine::new(vec![r], EngineConfig::default())
            .unwrap_err()
            .contains("role")
    );
}

#[test]
fn snapshot_and_restore_resume_where_the_engine_stopped() {
    let mut e = engine();
    set(&mut e, true, T0);
    e.act(ID, shelve(T0 + 1_000), "a", T0 + 1).unwrap();
    e.set_maintenance("ups-z9", true, "a", T0 + 2);
    let json = serde_json::to_string(&e.snapshot()).unwrap();
    let mut e2 = engine();
    e2.restore(serde_json::from_str(&json).unwrap());
    assert_eq!(e2.get(ID).unwrap().state(), AlarmState::Shelved);
    let r = e2.tick(T0 + 1_000, &NoSuppression);
    assert_eq!(r[0].to, AlarmState::Unacknowledged);
    assert!(r[0].seq > 2, "sequence continues");
    let r = e2.on_sample(
        &s("ups-z9", "ups.on_battery", Value::Bool(true), T0 + 3),
        T0 + 3,
    );
    assert_eq!(r[0].to, AlarmState::SuppressedByMaintenance);
}

#[test]
fn labelled_samples_make_one_alarm_per_label_set_bound_to_the_device() {
    let rule = Rule {
        id: "feed-open".into(),
        name: "Feed breaker open".into(),
        condition: Condition::Binary {
            role: "feed.breaker_closed".into(),
            alarm_when: false,
        },
        ..binary_rule()
    };
    let mut e = Engine::new(vec![rule], EngineConfig::default()).unwrap();
    e.set_device_components([("meter-1".to_string(), "feed-a".to_string())].into());
    let mut x = s("meter-1", "feed.breaker_closed", Value::Bool(false), T0);
    x.labels.insert("feed".into(), "A".into());
    let r = e.on_sample(&x, T0);
    assert_eq!(r[0].alarm, "feed-open:meter-1[feed=A]");
    assert_eq!(r[0].component.as_deref(), Some("feed-a"));
    let r = e.set_maintenance("meter-1", true, "tech", T0 + 1);
    assert_eq!(r[0].to, AlarmState::SuppressedByMaintenance);
}

/// Through JSON, as the server stores it.
fn round_trip(e: &Engine, rules: Vec<Rule>, cfg: EngineConfig) -> Engine {
    let json = serde_json::to_string(&e.snapshot()).unwrap();
    let mut e2 = Engine::new(rules, cfg).unwrap();
    e2.restore(serde_json::from_str(&json).unwrap());
    e2
}

#[test]
fn chattering_count_carries_over_a_restore() {
    let mut e = engine();
    for i in 0..4 {
        set(&mut e, true, T0 + i * 1000);
        set(&mut e, false, T0 + i * 1000 + 500);
    }
    assert_eq!(state(&e), AlarmState::RtnUnacknowledged);
    let mut e2 = round_trip(&e, vec![binary_rule()], EngineConfig::default());
    // The fifth activation within the window shelves it, as it would have without the restart.
    let r = set(&mut e2, true, T0 + 4_000);
    check(&r);
    assert!(
        r.iter()
            .any(|r| matches!(r.event, Event::ChatterShelved { activations: 5 })),
        "{r:?}"
    );
    // The alarm's own serialised form (the API's) does not carry the counters.
    let json = serde_json::to_value(e.get(ID).unwrap()).unwrap();
    assert!(json.get("recent_activations").is_none(), "{json}");
}

#[test]
fn flood_under_way_carries_over_a_restore() {
    let cfg = EngineConfig {
        flood_count: 3,
        flood_window_ms: 10_000,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(vec![binary_rule()], cfg.clone()).unwrap();
    for i in 0..5 {
        let d = format!("ups-x{i}");
        e.on_sample(&s(&d, "ups.on_battery", Value::Bool(true), T0 + i), T0 + i);
    }
    assert!(e.is_flooding());
    let mut e2 = round_trip(&e, vec![binary_rule()], cfg);
    assert!(e2.is_flooding());
    // A new annunciation is still part of the flood (no second summary).
    let r = e2.on_sample(
        &s("ups-x9", "ups.on_battery", Value::Bool(true), T0 + 10),
        T0 + 10,
    );
    assert!(r.iter().all(|r| r.in_flood), "{r:?}");
    let r = e2.tick(T0 + 20_000, &NoSuppression);
    assert!(
        r.iter().any(|r| r.event == Event::FloodEnded { count: 6 }),
        "the flood ends with every annunciation counted: {r:?}"
    );
}

#[test]
fn pending_on_delay_and_grade_raise_carry_over_a_restore() {
    let rule = Rule {
        on_delay_ms: 5_000,
        expected_recovery_ms: 60_000,
        ..binary_rule()
    };
    let mut e = Engine::new(vec![rule.clone()], EngineConfig::default()).unwrap();
    assert!(
        set(&mut e, true, T0).is_empty(),
        "still within the on-delay"
    );
    let mut e2 = round_trip(&e, vec![rule.clone()], EngineConfig::default());
    assert!(e2.tick(T0 + 4_999, &NoSuppression).is_empty());
    let r = e2.tick(T0 + 5_000, &NoSuppression);
    assert_eq!(r[0].event, Event::Activated, "{r:?}");
    // Recovery later than expected raises the grade once, also across another restore.
    let r = e2.tick(T0 + 5_000 + 60_001, &NoSuppression);
    assert_eq!(r[0].event, Event::GradeRaised { from: 2, to: 1 });
    let mut e3 = round_trip(&e2, vec![rule], EngineConfig::default());
    assert!(e3.tick(T0 + 200_000, &NoSuppression).is_empty());
    assert_eq!(e3.get(ID).unwrap().grade, 1);
}

#[test]
fn snapshot_meta_with_alarms_equals_the_snapshot() {
    let mut e = engine();
    set(&mut e, true, T0);
    set(&mut e, false, T0 + 1);
    let alarms: Vec<Alarm> = e.alarms().cloned().collect();
    assert!(e.snapshot_meta().alarms.is_empty());
    // As stored: each alarm's row (its serialised form) and the rest.
    let rows: Vec<Alarm> = alarms
        .iter()
        .map(|a| serde_json::from_value(serde_json::to_value(a).unwrap()).unwrap())
        .collect();
    assert_eq!(e.snapshot_meta().with_alarms(rows), e.snapshot());
    // Snapshots written before the counters existed still load.
    let old = r#"{"alarms":[],"maintenance":["x"],"seq":7}"#;
    let snap: Snapshot = serde_json::from_str(old).unwrap();
    assert_eq!(snap.seq, 7);
    assert!(snap.chatter.is_empty() && snap.flooding.is_none());
}

#[test]
fn rack_redundancy_is_grouped_under_the_subsystem_alarm() {
    let mut e = Engine::new(Rule::defaults(), EngineConfig::default()).unwrap();
    let racks: Vec<String> = (0..400).map(|i| format!("rack-{i:03}")).collect();
    let step = |e: &mut Engine, current: Redundancy, t: i64| {
        let mut r = e.on_redundancy("power", Redundancy::TwoN, current, "feed-a lost", t);
        for rack in &racks {
            r.extend(e.on_rack_redundancy("power", rack, Redundancy::TwoN, current, "", t));
        }
        r.extend(e.tick(t, &NoSuppression));
        r
    };
    // A feed loss: 400 racks from 2N to N.
    let r = step(&mut e, Redundancy::N, T0);
    let activated: Vec<&Record> = r.iter().filter(|r| r.event == Event::Activated).collect();
    assert_eq!(activated.len(), 1, "one annunciated alarm: {activated:?}");
    assert_eq!(activated[0].alarm, "redundancy:power");
    assert_eq!(activated[0].grade, 2);
    assert!(!e.is_flooding(), "grouped racks are not a flood");
    assert!(
        r.iter()
            .all(|r| !matches!(r.event, Event::FloodStarted { .. }))
    );
    // Every rack has its own record, suppressed by design under the subsystem's alarm.
    let rack = e.get("redundancy:power/rack-007").expect("per-rack alarm");
    assert_eq!(rack.state(), AlarmState::SuppressedByDesign);
    assert!(rack.active);
    assert_eq!(rack.component.as_deref(), Some("rack-007"));
    assert_eq!(
        rack.overlays.suppressed_by.as_deref(),
        Some("grouped under redundancy:power")
    );
    assert!(e.is_grouped_out(rack));
    assert_eq!(
        r.iter()
            .filter(|r| matches!(r.event, Event::SuppressedByDesign { .. }))
            .count(),
        400
    );
    let visible: Vec<&Alarm> = e.active().filter(|a| !e.is_grouped_out(a)).collect();
    assert_eq!(visible.len(), 1);
    // Steady: nothing more is recorded while it lasts.
    assert!(step(&mut e, Redundancy::N, T0 + 1000).is_empty());
    // Restored: the subsystem's alarm clears, the racks' clear hidden and leave suppression
    // without annunciating.
    let r = step(&mut e, Redundancy::TwoN, T0 + 2000);
    assert!(r.iter().all(|r| r.event != Event::Activated), "{r:?}");
    let rack = e.get("redundancy:power/rack-007").unwrap();
    assert!(!rack.active);
    assert_eq!(rack.state(), AlarmState::Normal);
    assert_eq!(e.active().filter(|a| a.rule == "redundancy").count(), 1);
    assert_eq!(
        e.get("redundancy:power").unwrap().state(),
        AlarmState::RtnUnacknowledged
    );
}

#[test]
fn a_rack_losing_redundancy_on_its_own_is_annunciated() {
    let mut e = Engine::new(Rule::defaults(), EngineConfig::default()).unwrap();
    // The subsystem stays at its design (e.g. the rack's own PDU failed and the site engine
    // counts the subsystem by its sources); the rack's alarm is not hidden.
    let r = e.on_rack_redundancy("power", "rack-001", Redundancy::TwoN, Redundancy::N, "", T0);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].event, Event::Activated);
    assert_eq!(r[0].grade, 2);
    // Below N is grade 1 per rack too.
    let r = e.on_rack_redundancy(
        "power",
        "rack-001",
        Redundancy::TwoN,
        Redundancy::BelowN,
        "",
        T0 + 1,
    );
    assert_eq!(r[0].event, Event::GradeRaised { from: 2, to: 1 });
    // A subsystem alarm of a lower grade does not hide a worse rack.
    e.on_redundancy("power", Redundancy::TwoN, Redundancy::N, "", T0 + 2);
    e.tick(T0 + 2, &NoSuppression);
    let rack = e.get("redundancy:power/rack-001").unwrap();
    assert_eq!(rack.overlays.suppressed_by, None);
    assert_eq!(rack.state(), AlarmState::Unacknowledged);
    assert_eq!(e.group_parent(rack).as_deref(), Some("redundancy:power"));
}

#[test]
fn fire_and_battery_temperature_alarms_cannot_be_shelved_and_others_need_a_reason() {
    // Hazard: a grade-1 battery-fire alarm hidden for 8 hours with one click and no reason.
    let mut e = Engine::new(Rule::defaults(), EngineConfig::default()).unwrap();
    e.on_sample(&s("bms-z2", "fire.stage", Value::Number(2.0), T0), T0);
    e.on_sample(
        &s("bms-z2", "battery.cell_temp.max", Value::Number(70.0), T0),
        T0,
    );
    e.tick(T0 + 20_000, &NoSuppression);
    for id in [
        "fire-stage:bms-z2",
        "fire-prealarm:bms-z2",
        "battery-hot:bms-z2",
    ] {
        let a = e.get(id).unwrap_or_else(|| panic!("{id}"));
        assert!(a.active, "{id}");
        let err = e
            .act(
                id,
                Action::Shelve {
                    until_ms: T0 + 60_000,
                    reason: "noisy".into(),
                },
                "op",
                T0 + 20_001,
            )
            .unwrap_err();
        assert!(
            matches!(err, ActionError::NotShelvable { .. }),
            "{id}: {err}"
        );
        assert!(err.to_string().contains("never shelved"), "{err}");
        assert_eq!(e.get(id).unwrap().state(), AlarmState::Unacknowledged);
    }
    // Any other alarm needs a reason, which the journal keeps.
    let mut e = engine();
    set(&mut e, true, T0);
    let blank = Action::Shelve {
        until_ms: T0 + 60_000,
        reason: "  ".into(),
    };
    assert_eq!(
        e.act(ID, blank, "op", T0 + 1),
        Err(ActionError::ReasonRequired { action: "shelving" })
    );
    let r = e
        .act(
            ID,
            Action::Shelve {
                until_ms: T0 + 60_000,
                reason: "UPS vendor on site, bypass test".into(),
            },
            "op",
            T0 + 1,
        )
        .unwrap();
    assert_eq!(
        r[0].event,
        Event::Shelved {
            until_ms: T0 + 60_000,
            reason: "UPS vendor on site, bypass test".into()
        }
    );
}

#[test]
fn a_chattering_battery_temperature_alarm_is_not_shelved_automatically() {
    // Hazard: a battery hovering at the threshold auto-shelved for 15 minutes as "chatter".
    let mut rule = Rule::defaults()
        .into_iter()
        .find(|r| r.id == "battery-hot")
        .unwrap();
    rule.on_delay_ms = 0;
    rule.off_delay_ms = 0;
    let mut e = Engine::new(vec![rule], EngineConfig::default()).unwrap();
    let mut t = T0;
    for _ in 0..10 {
        e.on_sample(
            &s("bms-z1", "battery.cell_temp.max", Value::Number(50.0), t),
            t,
        );
        e.on_sample(
            &s(
                "bms-z1",
                "battery.cell_temp.max",
                Value::Number(30.0),
                t + 1,
            ),
            t + 1,
        );
        t += 2;
    }
    e.on_sample(
        &s("bms-z1", "battery.cell_temp.max", Value::Number(50.0), t),
        t,
    );
    let a = e.get("battery-hot:bms-z1").unwrap();
    assert_eq!(a.overlays.shelved_until, None);
    assert!(a.state().needs_ack());
}

#[test]
fn fire_text_names_the_stage_its_temperature_actions_and_place_and_stays_current() {
    // Hazard: "Battery fire stage: bms-z2 = 2" while the rack was already at stage 3 and 90 °C:
    // operators and firefighters read the value at activation, not the present one.
    let mut e = Engine::new(Rule::defaults(), EngineConfig::default()).unwrap();
    e.set_places(
        [(
            "bms-z2".to_string(),
            "battery room batt-z2, zone z2".to_string(),
        )]
        .into(),
    );
    let t = |x: f64, at: i64| s("bms-z2", "battery.cell_temp.max", Value::Number(x), at);
    e.on_sample(&t(61.0, T0), T0);
    // A controller with an `enum` profile reports the table's key.
    let r = e.on_sample(
        &s("bms-z2", "fire.stage", Value::Text("stage1".into()), T0),
        T0,
    );
    let act = r
        .iter()
        .find(|r| r.alarm == "fire-stage:bms-z2")
        .expect("the stage key activates the fire-stage alarm");
    assert_eq!(act.grade, 1);
    assert!(
        act.message
            .starts_with("Battery fire stage: Power cut and fire blanket (stage1) at bms-z2, battery room batt-z2, zone z2. Entered at 60 °C or above; now 61.0 °C (battery.cell_temp.max)."),
        "{}",
        act.message
    );
    assert!(act.message.contains("fire blanket dropped"));
    assert!(!act.message.contains("agent"), "{}", act.message);
    // The stage advances and the battery heats: the alarm shows the present values.
    e.on_sample(
        &s("bms-z2", "fire.stage", Value::Number(4.0), T0 + 1),
        T0 + 1,
    );
    e.on_sample(&t(83.25, T0 + 2), T0 + 2);
    let a = e.get("fire-stage:bms-z2").unwrap();
    assert_eq!(a.value, Some(4.0));
    assert!(
        a.message.contains("Extinguishing agent (stage3)")
            && a.message.contains("Entered at 80 °C or above; now 83.2 °C")
            && a.message.contains("extinguishing agent released"),
        "{}",
        a.message
    );
    assert!(
        !a.message.contains("= 4"),
        "never the bare code: {}",
        a.message
    );
}

#[test]
fn troubles_and_unverified_redundancy_come_and_go_with_their_condition() {
    let mut e = Engine::new(Rule::defaults(), EngineConfig::default()).unwrap();
    let r = e.on_trouble(
        "disk_full",
        "database",
        None,
        true,
        "/data/dcim.sqlite3: no space left",
        T0,
    );
    assert_eq!(r[0].alarm, "store-disk-full:database");
    assert_eq!((r[0].event.clone(), r[0].grade), (Event::Activated, 2));
    assert!(r[0].message.contains("no space left"));
    let r = e.on_trouble("disk_full", "database", None, false, "", T0 + 1);
    assert_eq!(r[0].event, Event::Cleared);
    assert!(
        e.on_trouble("clock_ahead", "a1", None, false, "", T0)
            .is_empty(),
        "nothing to clear"
    );
    // Unverified redundancy: after its on-delay (a minute without proof).
    assert!(
        e.on_unverified("power", true, "N proven, 2N if 4 unknown are up", T0)
            .is_empty()
    );
    let r = e.tick(T0 + 60_000, &NoSuppression);
    let a = r
        .iter()
        .find(|r| r.alarm == "redundancy-unverified:power")
        .unwrap();
    assert_eq!(a.event, Event::Activated);
    assert!(a.message.contains("2N if 4 unknown"), "{}", a.message);
    let r = e.on_unverified("power", false, "", T0 + 61_000);
    assert_eq!(r[0].event, Event::Cleared);
}

#[test]
fn every_rule_on_a_samples_role_is_evaluated_and_no_other() {
    // Hazard: rules are looked up by the sample's role; a rule missed by that index would
    // never raise. Three rules on one role (two device prefixes, interleaved with a rule on
    // another role) each raise for the sample they match, in rule order.
    let mut ups_a = common::binary_rule("on-battery-a");
    ups_a.device_prefix = "ups-a".into();
    let mut other = common::binary_rule("breaker-open");
    other.condition = Condition::Binary {
        role: "feed.breaker_closed".into(),
        alarm_when: false,
    };
    let mut ups_b = common::binary_rule("on-battery-b");
    ups_b.device_prefix = "ups-b".into();
    let any = common::binary_rule("on-battery-any");
    let mut e = Engine::new(vec![ups_a, other, ups_b, any], EngineConfig::default()).unwrap();
    let raised = |r: Vec<Record>| -> Vec<String> {
        r.iter()
            .filter(|r| r.to == AlarmState::Unacknowledged)
            .map(|r| r.alarm.clone())
            .collect()
    };
    let r = e.on_sample(&s("ups-a1", "ups.on_battery", Value::Bool(true), T0), T0);
    assert_eq!(raised(r), ["on-battery-a:ups-a1", "on-battery-any:ups-a1"]);
    let r = e.on_sample(&s("ups-b1", "ups.on_battery", Value::Bool(true), T0), T0);
    assert_eq!(raised(r), ["on-battery-b:ups-b1", "on-battery-any:ups-b1"]);
    let r = e.on_sample(
        &s("pdu-1", "feed.breaker_closed", Value::Bool(false), T0),
        T0,
    );
    assert_eq!(raised(r), ["breaker-open:pdu-1"]);
    let r = e.on_sample(&s("ups-a1", "ups.load_pct", Value::Number(99.0), T0), T0);
    assert!(r.is_empty(), "no rule on ups.load_pct: {r:?}");
}
