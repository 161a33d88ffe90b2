//! The trace format: parsing, errors naming line and column, JSON output.

use fire_logic::{Analog, Config, Digital, NetworkCommand, SourceId, Stage};
use fire_trace::{Column, Header, ReplayError, TraceErrorKind, parse_tenths, replay};

#[test]
fn numbers_are_parsed_to_tenths_with_rounding() {
    assert_eq!(parse_tenths("61.5"), Some(615));
    assert_eq!(parse_tenths("61"), Some(610));
    assert_eq!(parse_tenths("-0.5"), Some(-5));
    assert_eq!(parse_tenths("+3.25"), Some(33));
    assert_eq!(parse_tenths("3.24"), Some(32));
    assert_eq!(parse_tenths("-3.25"), Some(-33));
    assert_eq!(parse_tenths(".5"), Some(5));
    assert_eq!(parse_tenths("3276.7"), Some(32_767));
    for bad in [
        "", "-", ".", "1.", "1e3", "12a", "1.2.3", "9999999", " 1", "nan",
    ] {
        assert_eq!(parse_tenths(bad), None, "{bad:?}");
    }
}

#[test]
fn header_columns_in_any_order_missing_means_not_fitted() {
    let h = Header::parse("t_ms,smoke,rack_temp2_c,bms_max_c,contactor_open_fb", 1).unwrap();
    let cols: Vec<Column> = h.columns().collect();
    assert_eq!(
        cols,
        [
            Column::TMs,
            Column::Smoke,
            Column::RackTemp2,
            Column::Bms,
            Column::Feedback(0)
        ]
    );
    let f = h.fitted(Config::default().fitted);
    assert!(f.bms && f.rack_temp2 && f.smoke && f.feedback[0]);
    assert!(!f.rack_temp1 && !f.camera && !f.offgas && !f.feedback[1]);
}

#[test]
fn header_errors_name_the_column() {
    let e = Header::parse("time,bms_max_c", 3).unwrap_err();
    assert_eq!((e.line, e.column), (3, 1));
    assert_eq!(e.kind, TraceErrorKind::FirstColumnNotTime);
    let e = Header::parse("t_ms,bms_max_c,bms_max_c", 1).unwrap_err();
    assert_eq!(
        (e.column, e.kind.clone()),
        (3, TraceErrorKind::DuplicateColumn)
    );
    let e = Header::parse("t_ms,bms_max_c,t_ms", 1).unwrap_err();
    assert_eq!(e.kind, TraceErrorKind::DuplicateColumn);
    let e = Header::parse("t_ms,bms", 1).unwrap_err();
    assert_eq!(e.kind, TraceErrorKind::UnknownColumn);
    let msg = e.to_string();
    assert!(
        msg.starts_with("line 1, column 2: unknown column `bms`"),
        "{msg}"
    );
    assert!(msg.contains("bms_max_c"), "lists the known columns: {msg}");
}

#[test]
fn cells_empty_fault_values_and_commands() {
    let h = Header::parse(
        "t_ms,bms_max_c,rack_temp1_c,smoke,hold,gas_released_fb,command",
        1,
    )
    .unwrap();
    let r = h
        .parse_row("1500, 61.25 ,fault,1,,0,inhibit:rack_temp1:60000", 2)
        .unwrap();
    assert_eq!(r.t_ms, 1500);
    assert_eq!(r.inputs.bms_max, Analog::Value(613));
    assert_eq!(r.inputs.rack_temp1, Analog::Fault);
    assert_eq!(r.inputs.rack_temp2, Analog::NoSample, "not in the trace");
    assert_eq!(r.inputs.smoke, Digital::On);
    assert_eq!(r.inputs.hold, Digital::NoSample);
    assert_eq!(r.inputs.feedback[5], Digital::Off);
    assert_eq!(
        r.command,
        Some(NetworkCommand::InhibitSensor {
            sensor: SourceId::RackTemp1,
            duration_ms: 60_000
        })
    );
    for (cmd, want) in [
        ("ack", NetworkCommand::Acknowledge),
        ("test_on", NetworkCommand::TestMode { on: true }),
        ("test_off", NetworkCommand::TestMode { on: false }),
        (
            "time:1700000000000",
            NetworkCommand::TimeSync {
                unix_ms: 1_700_000_000_000,
            },
        ),
    ] {
        let r = h.parse_row(&format!("0,,,,,,{cmd}"), 2).unwrap();
        assert_eq!(r.command, Some(want));
    }
    for (line, col) in [
        ("x,1,1,1,1,1,", 1),
        ("0,hot,1,1,1,1,", 2),
        ("0,1,1,2,1,1,", 4),
        ("0,1,1,1,yes,1,", 5),
        ("0,1,1,1,1,1,reset", 7),
        ("0,1,1,1,1,1,inhibit:nosuch:5", 7),
    ] {
        let e = h.parse_row(line, 9).unwrap_err();
        assert_eq!((e.line, e.column), (9, col), "{line}: {e}");
        assert!(matches!(e.kind, TraceErrorKind::BadCell { .. }));
    }
    let e = h.parse_row("0,1", 4).unwrap_err();
    assert_eq!(
        e.kind,
        TraceErrorKind::WrongCellCount {
            expected: 7,
            found: 2
        }
    );
}

const SMALL: &str = "# a comment\n\
t_ms,bms_max_c,rack_temp1_c,rack_temp2_c,camera_max_c,smoke\n\
\n\
0,25,25,25,25,0\n\
500,35,35,35,35,0\n\
1000,45,45,45,45,0\n\
1500,55,55,55,55,\n\
2000,62,61,61,62,0\n\
2500,62,61,61,62,0\n";

#[test]
fn replay_writes_one_line_per_transition_and_a_summary() {
    let mut out = String::new();
    let s = replay(SMALL, &Config::default(), &mut out).unwrap();
    assert_eq!(s.rows, 6);
    assert_eq!(s.max_stage, Stage::Stage1);
    assert_eq!(s.end_t_ms, 2500);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines.last().unwrap().starts_with("{\"summary\":true,"));
    for l in &lines {
        assert!(l.starts_with('{') && l.ends_with('}'), "{l}");
        assert!(l.contains("\"stage\":"), "{l}");
    }
    assert_eq!(
        lines[0],
        "{\"t_ms\":2000,\"stage\":\"pre_alarm\",\"actions\":[],\"troubles\":[],\
         \"supervisory\":[],\"reason\":\"pre_alarm: bms_max at 55.0 C confirmed\"}"
    );
    assert!(lines[1].starts_with(
        "{\"t_ms\":2500,\"stage\":\"stage1\",\"actions\":[\"contactor_open\",\"blanket_drop\"]"
    ));
    // Deterministic: same bytes every time.
    let mut again = String::new();
    replay(SMALL, &Config::default(), &mut again).unwrap();
    assert_eq!(out, again);
}

#[test]
fn replay_rejects_time_going_back_and_empty_traces() {
    let t = "t_ms,bms_max_c,camera_max_c\n1000,25,25\n999,25,25\n";
    let mut out = String::new();
    match replay(t, &Config::default(), &mut out) {
        Err(ReplayError::Trace(e)) => {
            assert_eq!((e.line, e.column), (3, 1));
            assert_eq!(e.kind, TraceErrorKind::TimeWentBack { previous: 1000 });
        }
        other => panic!("{other:?}"),
    }
    match replay("# only a comment\n\n", &Config::default(), &mut out) {
        Err(ReplayError::Trace(e)) => assert_eq!(e.kind, TraceErrorKind::Empty),
        other => panic!("{other:?}"),
    }
}

#[test]
fn replay_rejects_an_invalid_configuration_before_any_output() {
    let cfg = Config {
        gas_warning_ms: 90_000,
        ..Config::default()
    };
    let mut out = String::new();
    match replay(SMALL, &cfg, &mut out) {
        Err(ReplayError::Config(e)) => assert_eq!(e.field, "gas_warning_ms"),
        other => panic!("{other:?}"),
    }
    assert!(out.is_empty());
}

#[test]
fn replay_output_is_valid_json_lines() {
    let trace = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/traces/slow-thermal-runaway.csv"
    ))
    .unwrap();
    let mut out = String::new();
    replay(&trace, &Config::default(), &mut out).unwrap();
    for line in out.lines() {
        // A minimal structural check without a JSON dependency: balanced quotes outside
        // escapes, and balanced brackets and braces outside strings.
        let (mut in_str, mut esc, mut depth) = (false, false, 0i32);
        for ch in line.chars() {
            if in_str {
                match (esc, ch) {
                    (true, _) => esc = false,
                    (false, '\\') => esc = true,
                    (false, '"') => in_str = false,
                    _ => {}
                }
            } else {
                match ch {
                    '"' => in_str = true,
                    '{' | '[' => depth += 1,
                    '}' | ']' => depth -= 1,
                    _ => {}
                }
            }
        }
        assert!(!in_str && depth == 0, "{line}");
    }
}

#[test]
fn room_gas_release_and_restart_columns() {
    let h = Header::parse("t_ms,bms_max_c,room_gas_release,restart", 1).unwrap();
    let r = h.parse_row("500,30,1,1", 2).unwrap();
    assert_eq!(r.inputs.room_gas_release, Digital::On);
    assert!(r.restart);
    let r = h.parse_row("500,30,,", 2).unwrap();
    assert_eq!(r.inputs.room_gas_release, Digital::NoSample);
    assert!(!r.restart);
    let e = h.parse_row("500,30,0,fault", 2).unwrap_err();
    assert_eq!(e.column, 4, "{e}");
}

/// Both rack sensors drift to 87 C together; BMS and camera stay at 25 C; no smoke.
fn drift_trace(directive: &str) -> String {
    let mut t = format!("{directive}t_ms,bms_max_c,rack_temp1_c,rack_temp2_c,camera_max_c,smoke\n");
    for i in 0..=700u64 {
        let v = 25.0 + (i.min(620) as f64) * 0.1;
        t.push_str(&format!("{},25,{v:.1},{v:.1},25,0\n", i * 500));
    }
    t
}

#[test]
fn common_cause_directive_sets_the_groups_of_the_wiring() {
    // Hazard: a trace recorded on two transmitters sharing one ADC replayed as if they were
    // independent, "corroborating" each other up to the agent.
    let mut out = String::new();
    let s = replay(&drift_trace(""), &Config::default(), &mut out).unwrap();
    assert_eq!(s.max_stage, Stage::Stage3, "undeclared: they corroborate");
    let mut out = String::new();
    let s = replay(
        &drift_trace("#! common_cause: rack_temp1_c rack_temp2_c\n"),
        &Config::default(),
        &mut out,
    )
    .unwrap();
    assert_eq!(s.max_stage, Stage::Stage1, "one ADC: power cut only");
}

#[test]
fn bad_directives_are_rejected_with_the_line() {
    for (text, line) in [
        ("#! groups: rack_temp1_c rack_temp2_c\nt_ms,bms_max_c\n", 1),
        ("#! common_cause: rack_temp1_c reset\nt_ms,bms_max_c\n", 1),
        ("#! common_cause: rack_temp1_c\nt_ms,bms_max_c\n", 1),
        (
            "#! common_cause: rack_temp1_c bms_max_c\n#! common_cause: bms_max_c smoke\nt_ms,bms_max_c\n",
            2,
        ),
        (
            "t_ms,bms_max_c,camera_max_c\n0,25,25\n#! common_cause: bms_max_c smoke\n",
            3,
        ),
    ] {
        let mut out = String::new();
        match replay(text, &Config::default(), &mut out) {
            Err(ReplayError::Trace(e)) => {
                assert_eq!(e.line, line, "{text}: {e}");
                assert!(matches!(e.kind, TraceErrorKind::BadDirective { .. }), "{e}");
                assert!(e.to_string().contains("directive"), "{e}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn a_restart_row_keeps_only_the_latch_record() {
    // A restart mid-incident: the stage comes back from the record, a key held through it is
    // not a new press.
    let t = "t_ms,bms_max_c,camera_max_c,smoke,manual_release,restart\n\
             0,25,25,0,0,\n500,25,25,0,1,\n1000,25,25,0,1,\n1500,25,25,0,1,1\n2000,25,25,0,1,\n";
    let mut out = String::new();
    let s = replay(t, &Config::default(), &mut out).unwrap();
    assert_eq!(s.final_stage, Stage::Stage3);
    assert!(out.contains("restored after restart in stage3"), "{out}");
    assert_eq!(out.matches("manual release operated").count(), 1, "{out}");
}
