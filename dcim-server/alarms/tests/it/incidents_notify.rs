//! Incidents and the notification policy.

use dcim_alarms::*;
use dcim_site::Redundancy;

const T0: i64 = 1_800_000_000_000;

fn engine() -> Engine {
    Engine::new(Rule::defaults(), EngineConfig::default()).unwrap()
}

#[test]
fn grade_2_alarm_opens_an_incident_and_related_alarms_join_it() {
    let mut e = engine();
    let mut inc = Incidents::new(IncidentConfig::default());
    let r = e.on_redundancy("power", Redundancy::TwoN, Redundancy::N, "feed-a lost", T0);
    let ev = inc.on_records(&r);
    assert_eq!(ev[0], IncidentEvent::Opened { id: 1, grade: 2 });
    // A grade-3 alarm a few seconds later is part of the same event.
    e.on_comm("meter-a", true, T0 + 1);
    let r = e.tick(T0 + 31_000, &NoSuppression);
    let ev = inc.on_records(&r);
    assert!(ev.contains(&IncidentEvent::AlarmJoined {
        id: 1,
        alarm: "comm-lost:meter-a".into()
    }));
    // Acknowledgements of attached alarms go to the journal with the user.
    let r = e
        .act("redundancy:power", Action::Ack, "alice", T0 + 40_000)
        .unwrap();
    inc.on_records(&r);
    let i = inc.get(1).unwrap();
    assert_eq!(i.alarms.len(), 2);
    assert!(
        i.journal
            .iter()
            .any(|j| j.user == "alice" && j.text.contains("acknowledged"))
    );
    assert_eq!(inc.list.len(), 1);
}

#[test]
fn grade_3_alarm_alone_opens_no_incident() {
    let mut e = engine();
    let mut inc = Incidents::new(IncidentConfig::default());
    e.on_comm("meter-a", true, T0);
    let r = e.tick(T0 + 30_000, &NoSuppression);
    assert!(!r.is_empty());
    assert!(inc.on_records(&r).is_empty());
}

#[test]
fn unrelated_alarm_after_the_burst_window_opens_a_second_incident() {
    let mut e = engine();
    let mut inc = Incidents::new(IncidentConfig::default());
    inc.on_records(&e.on_redundancy("power", Redundancy::TwoN, Redundancy::N, "", T0));
    let r = e.on_redundancy(
        "cooling",
        Redundancy::NPlus1,
        Redundancy::N,
        "",
        T0 + 120_000,
    );
    let ev = inc.on_records(&r);
    assert_eq!(ev[0], IncidentEvent::Opened { id: 2, grade: 2 });
}

#[test]
fn lifecycle_roles_fields_and_export() {
    let mut inc = Incidents::new(IncidentConfig::default());
    let id = inc.open("Chiller 1 trip", 2, "alice", T0).unwrap();
    assert!(
        inc.advance(id, Phase::Closed, "alice", T0).is_err(),
        "cannot close before handling"
    );
    inc.advance(id, Phase::Declared, "alice", T0 + 1).unwrap();
    inc.assign(id, RoleKind::ControlTower, "alice", "alice", T0 + 2)
        .unwrap();
    inc.assign(id, RoleKind::Operator, "bob", "alice", T0 + 2)
        .unwrap();
    inc.assign(id, RoleKind::Communicator, "carol", "alice", T0 + 2)
        .unwrap();
    inc.assign(id, RoleKind::ResponsibleManager, "dave", "alice", T0 + 2)
        .unwrap();
    inc.advance(id, Phase::Handling, "alice", T0 + 3).unwrap();
    // Hazard: an incident closed by mistake (or to make it go away) with nothing said about
    // why it happened; and a journal cluttered with "grade 2 -> 2".
    assert_eq!(
        inc.advance(id, Phase::Closed, "alice", T0 + 3),
        Err(IncidentError::NoCause { id }),
        "no closing without a cause"
    );
    let journal_len = inc.get(id).unwrap().journal.len();
    assert_eq!(
        inc.set_grade(id, 2, "alice", T0 + 3),
        Err(IncidentError::SameGrade { id, grade: 2 })
    );
    assert_eq!(inc.get(id).unwrap().journal.len(), journal_len);
    inc.note(id, "chiller 2 carries the load", "bob", T0 + 4)
        .unwrap();
    inc.set_field(id, Field::Cause, "compressor trip", "alice", T0 + 5)
        .unwrap();
    inc.set_field(
        id,
        Field::Impact,
        "cooling at N for 40 min",
        "alice",
        T0 + 5,
    )
    .unwrap();
    inc.set_field(id, Field::Recovery, "reset and restarted", "alice", T0 + 5)
        .unwrap();
    inc.set_field(
        id,
        Field::Retrospective,
        "trip threshold too tight",
        "alice",
        T0 + 5,
    )
    .unwrap();
    inc.add_follow_up(id, "review trip settings", Some("bob"), "alice", T0 + 6)
        .unwrap();
    inc.advance(id, Phase::Closed, "alice", T0 + 7).unwrap();
    inc.complete_follow_up(id, 0, "bob", T0 + 8).unwrap();
    inc.advance(id, Phase::FollowUp, "alice", T0 + 9).unwrap();
    let i = inc.get(id).unwrap();
    assert_eq!(i.phase, Phase::FollowUp);
    assert_eq!(i.closed_ms, Some(T0 + 7));
    let md = i.to_markdown();
    assert!(md.starts_with("# Incident 1: Chiller 1 trip"));
    assert!(md.contains("- Control tower: alice"));
    assert!(md.contains("## Cause\n\ncompressor trip"));
    assert!(md.contains("- [x] review trip settings (bob)"));
    assert!(
        md.contains("| bob | chiller 2 carries the load |")
            || md.contains("chiller 2 carries the load")
    );
    assert!(md.contains("2027-01-15"), "dates are rendered in UTC: {md}");
    let json: serde_json::Value = serde_json::from_str(&i.to_json()).unwrap();
    assert_eq!(json["phase"], "follow_up");
    assert_eq!(json["roles"]["communicator"], "carol");
    assert!(inc.open("x", 4, "alice", T0).is_err());
    assert!(inc.note(id, "x", "", T0).is_err());
}

#[test]
fn incident_grade_is_raised_when_recovery_is_late() {
    let mut inc = Incidents::new(IncidentConfig::default());
    let id = inc.open("Feed A lost", 3, "alice", T0).unwrap();
    let late = T0 + IncidentConfig::default().expected_recovery_ms[2] + 1;
    assert_eq!(
        inc.tick(late),
        vec![IncidentEvent::GradeRaised { id, from: 3, to: 2 }]
    );
    assert!(inc.tick(late + 1).is_empty(), "once");
    assert_eq!(inc.get(id).unwrap().grade, 2);
}

fn chan(name: &str, kind: ChannelKind, fallback: Option<&str>) -> Channel {
    Channel {
        name: name.into(),
        kind,
        fallback: fallback.map(Into::into),
        breaker: Breaker::new(BreakerConfig::default()),
    }
}

fn notifier() -> Notifier {
    Notifier::new(
        vec![
            chan("webhook", ChannelKind::Webhook, Some("email")),
            chan("email", ChannelKind::Email, Some("mqtt")),
            chan("mqtt", ChannelKind::Mqtt, None),
            chan("fire", ChannelKind::FireAuthority, None),
        ],
        Policy {
            by_grade: [
                vec!["webhook".into(), "email".into()],
                vec!["webhook".into()],
                vec![],
            ],
            fire_channel: Some("fire".into()),
            escalation: vec![
                EscalationStep {
                    after_ms: 300_000,
                    channel: "email".into(),
                    to: "shift lead".into(),
                },
                EscalationStep {
                    after_ms: 900_000,
                    channel: "email".into(),
                    to: "manager".into(),
                },
            ],
        },
    )
    .unwrap()
}

#[test]
fn breaker_opens_on_consecutive_failures_and_probes_after_cool_down() {
    let mut b = Breaker::new(BreakerConfig::default());
    for i in 0..3 {
        assert!(b.allow(T0 + i));
        b.record(false, 10, T0 + i);
    }
    assert_eq!(b.state, BreakerState::Open { since_ms: T0 + 2 });
    assert!(!b.allow(T0 + 1000));
    assert!(b.allow(T0 + 30_002), "half-open probe");
    assert!(!b.allow(T0 + 30_003), "only one probe");
    b.record(false, 10, T0 + 30_004);
    assert_eq!(
        b.state,
        BreakerState::Open {
            since_ms: T0 + 30_004
        }
    );
    assert!(b.allow(T0 + 60_004));
    b.record(true, 10, T0 + 60_005);
    assert_eq!(b.state, BreakerState::Closed);
}

#[test]
fn breaker_opens_on_error_rate_and_on_latency() {
    let cfg = BreakerConfig {
        consecutive_failures: 100,
        ..BreakerConfig::default()
    };
    let mut b = Breaker::new(cfg.clone());
    for i in 0..10 {
        b.record(i % 2 == 0, 10, T0 + i);
    }
    assert!(
        matches!(b.state, BreakerState::Open { .. }),
        "50 % errors over 10 calls"
    );
    let mut b = Breaker::new(BreakerConfig::default());
    for i in 0..3 {
        b.record(true, 6_000, T0 + i);
    }
    assert!(
        matches!(b.state, BreakerState::Open { .. }),
        "slow successes count as failures"
    );
}

#[test]
fn route_falls_back_when_a_breaker_is_open() {
    let mut n = notifier();
    assert_eq!(n.route("webhook", T0).as_deref(), Some("webhook"));
    for i in 0..3 {
        n.report("webhook", false, 10, T0 + i);
    }
    assert_eq!(n.route("webhook", T0 + 10).as_deref(), Some("email"));
    for i in 0..3 {
        n.report("email", false, 10, T0 + i);
    }
    assert_eq!(n.route("webhook", T0 + 10).as_deref(), Some("mqtt"));
    for i in 0..3 {
        n.report("mqtt", false, 10, T0 + i);
    }
    assert_eq!(n.route("webhook", T0 + 10), None);
    assert_eq!(
        n.route("webhook", T0 + 40_000).as_deref(),
        Some("webhook"),
        "probe after cool-down"
    );
}

#[test]
fn bad_policies_are_rejected() {
    assert!(
        Notifier::new(
            vec![chan("a", ChannelKind::Email, Some("b"))],
            Policy {
                by_grade: [vec![], vec![], vec![]],
                fire_channel: None,
                escalation: vec![]
            }
        )
        .is_err()
    );
    assert!(
        Notifier::new(
            vec![
                chan("a", ChannelKind::Email, Some("b")),
                chan("b", ChannelKind::Email, Some("a"))
            ],
            Policy {
                by_grade: [vec![], vec![], vec![]],
                fire_channel: None,
                escalation: vec![]
            }
        )
        .unwrap_err()
        .contains("loops")
    );
}

#[test]
fn plan_notifies_annunciations_by_grade_fire_to_the_authority_and_floods_once() {
    let mut n = notifier();
    let mut e = engine();
    let r = e.on_redundancy("power", Redundancy::TwoN, Redundancy::N, "", T0);
    let d = n.plan(&r);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].channel, "webhook");
    let r = e.on_sample(&fire_sample(4.0), T0 + 1);
    let d = n.plan(&r);
    // Stage 3 (value 4) is a grade-1 fire alarm (to the fire authority too); the pre-alarm
    // (grade 2) activates with it.
    let chans: Vec<_> = d
        .iter()
        .map(|d| (d.alarm.as_str(), d.channel.as_str()))
        .collect();
    assert_eq!(
        chans,
        [
            ("fire-stage:bms-r001", "webhook"),
            ("fire-stage:bms-r001", "email"),
            ("fire-stage:bms-r001", "fire"),
            ("fire-prealarm:bms-r001", "webhook"),
        ]
    );
    // Acks are not notified.
    let r = e.act("redundancy:power", Action::Ack, "a", T0 + 2).unwrap();
    assert!(n.plan(&r).is_empty());
}

fn fire_sample(v: f64) -> dcim_points::Sample {
    let role = dcim_points::Role::new("fire.stage").unwrap();
    dcim_points::Sample::of_role("bms-r001", role, dcim_points::Value::Number(v), T0)
}

#[test]
fn escalation_when_not_acknowledged_in_time() {
    let mut n = notifier();
    let un = [("redundancy:power", T0, 2u8, "power at N")];
    assert!(n.escalations(un, T0 + 299_999).is_empty());
    let d = n.escalations(un, T0 + 300_000);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].escalation, Some(0));
    assert!(d[0].body.contains("shift lead"));
    assert!(n.escalations(un, T0 + 300_001).is_empty(), "each step once");
    let d = n.escalations(un, T0 + 900_000);
    assert_eq!(d[0].escalation, Some(1));
}

#[test]
fn notifier_state_survives_a_restart() {
    let mut n = notifier();
    let un = [("redundancy:power", T0, 2u8, "power at N")];
    assert_eq!(n.escalations(un, T0 + 300_000).len(), 1);
    for i in 0..3 {
        n.report("webhook", false, 10, T0 + i);
    }
    let json = serde_json::to_string(&n.state()).unwrap();
    // A new process with the same configuration.
    let mut n2 = notifier();
    n2.restore_state(serde_json::from_str(&json).unwrap());
    assert_eq!(n2.state(), n.state());
    assert!(
        n2.escalations(un, T0 + 300_001).is_empty(),
        "a step sent before the restart is not sent again"
    );
    assert_eq!(
        n2.route("webhook", T0 + 10).as_deref(),
        Some("email"),
        "the open breaker stays open"
    );
    assert_eq!(n2.escalations(un, T0 + 900_000)[0].escalation, Some(1));
    // Breakers of channels that are gone are ignored; tuning stays the configured one.
    let mut state: NotifierState = serde_json::from_str(&json).unwrap();
    state.breakers.insert(
        "gone".into(),
        Breaker::new(BreakerConfig {
            consecutive_failures: 1,
            ..BreakerConfig::default()
        }),
    );
    let mut n3 = notifier();
    n3.restore_state(state);
    assert!(!n3.channels.contains_key("gone"));
    assert_eq!(
        n3.channels["webhook"].breaker.config,
        BreakerConfig::default()
    );
}
