//! The controller core on the host: boot, restore, record store troubles, reset in every stage,
//! snapshot encoding, network commands and the watchdog policy.

use fire_logic::{Action, Actions, Config, Outputs, Stage, Supervisory, Trouble};
use rack_registers::controller::{BootState, Controller, CycleMonitor, parse_version};
use rack_registers::map::{self, action, input, status, trouble};
use rack_registers::nvstore::{Flash, RamFlash, slot_size};
use rack_registers::scenario::{PERIOD_MS, RESET_STAGES, ThermalRunaway, reset_in_stage};
use rack_registers::{Command, INPUT_COUNT};

type Fake = RamFlash<{ 2 * 1024 }>;

fn flash() -> Fake {
    Fake::new(1024)
}

fn boot(f: Fake) -> Controller<Fake> {
    Controller::boot(Config::default(), f, 0, (1, 2, 3)).unwrap()
}

/// Runs the runaway until `stage` is reached; returns the controller and the logic time.
fn run_to(c: &mut Controller<Fake>, stage: Stage) -> u64 {
    let s = ThermalRunaway::default();
    let mut actions = Actions::NONE;
    let mut now = 0;
    for _ in 0..10_000 {
        let out = c.cycle(now, &s.inputs(now, actions));
        actions = out.actions;
        if out.stage == stage {
            return now;
        }
        now += PERIOD_MS;
    }
    panic!("stage {stage} not reached");
}

#[test]
fn a_reset_in_the_middle_of_each_stage_changes_no_output() {
    for stage in RESET_STAGES {
        for cycles_in in [1, 17] {
            let check = reset_in_stage(
                Config::default(),
                flash(),
                &ThermalRunaway::default(),
                stage,
                cycles_in,
                20,
            )
            .unwrap_or_else(|e| panic!("reset {cycles_in} cycles into {stage}: {e:?}"));
            assert_eq!(check.after.stage, stage);
            assert_eq!(check.after.actions, check.before.actions);
            assert_eq!(check.at_boot, Outputs::default());
        }
    }
}

#[test]
fn a_reset_after_the_gas_release_keeps_the_release_commanded() {
    // 35 s into stage 5: past the 30 s pre-discharge warning.
    let check = reset_in_stage(
        Config::default(),
        flash(),
        &ThermalRunaway::default(),
        Stage::Stage5,
        350,
        20,
    )
    .unwrap();
    assert!(
        check.before.actions.contains(Action::GasRelease),
        "{check:?}"
    );
    assert!(check.after.actions.contains(Action::GasRelease));
}

#[test]
fn outputs_are_safe_until_the_logic_has_run_once() {
    let mut c = boot(flash());
    run_to(&mut c, Stage::Stage3);
    let f = c.into_flash();
    let c = boot(f);
    assert_eq!(c.boot_state(), BootState::Restored);
    assert!(!c.running());
    assert_eq!(c.drive(), Outputs::default());
    let snap = c.snapshot(0);
    assert_eq!(snap.actions, 0);
    assert_eq!(snap.status & status::RUNNING, 0);
    assert_ne!(snap.status & status::RESTORED, 0);
}

#[test]
fn fresh_flash_boots_normal_without_trouble() {
    let mut c = boot(flash());
    assert_eq!(c.boot_state(), BootState::Fresh);
    let s = ThermalRunaway::default();
    c.cycle(0, &s.inputs(0, Actions::NONE));
    let snap = c.snapshot(0);
    assert_eq!(snap.stage, 0);
    assert_eq!(snap.troubles & (trouble::NV_RECORD | trouble::NV_WRITE), 0);
}

#[test]
fn corrupt_record_is_not_trusted_and_raises_a_trouble() {
    let mut c = boot(flash());
    run_to(&mut c, Stage::Stage2);
    let mut f = c.into_flash();
    // Flip a bit in every written slot: no record can be trusted.
    for page in 0..f.pages() {
        for b in f.data[page * 1024..page * 1024 + 1024]
            .chunks_mut(slot_size(fire_logic::LatchRecord::LEN))
        {
            if b.iter().any(|&x| x != 0xFF) {
                b[20] ^= 0x04;
            }
        }
    }
    let mut c = boot(f);
    assert_eq!(c.boot_state(), BootState::Untrusted);
    assert!(c.scan_report().corrupt > 0);
    let s = ThermalRunaway::default();
    c.cycle(0, &s.inputs(0, Actions::NONE));
    let snap = c.snapshot(0);
    assert_ne!(snap.troubles & trouble::NV_RECORD, 0);
    // The trouble never starts a stage by itself.
    assert_eq!(snap.stage, 0);
}

#[test]
fn torn_write_of_the_newest_record_restores_the_previous_one_with_a_trouble() {
    let mut c = boot(flash());
    let s = ThermalRunaway::default();
    let mut actions = Actions::NONE;
    let mut now = 0;
    // Run until stage 1, then cut the flash write that records stage 2.
    loop {
        let out = c.cycle(now, &s.inputs(now, actions));
        actions = out.actions;
        now += PERIOD_MS;
        if out.stage == Stage::Stage1 {
            break;
        }
    }
    c.store_mut().flash_mut().cut_after = Some(30);
    loop {
        let out = c.cycle(now, &s.inputs(now, actions));
        actions = out.actions;
        now += PERIOD_MS;
        if out.stage == Stage::Stage2 {
            break;
        }
    }
    assert_ne!(
        c.snapshot(now).troubles & trouble::NV_WRITE,
        0,
        "a failed write is a trouble"
    );
    let mut f = c.into_flash();
    f.cut_after = None;
    let mut c = boot(f);
    assert_eq!(c.boot_state(), BootState::Restored);
    assert!(c.scan_report().newest_lost);
    let out = c.cycle(PERIOD_MS, &s.inputs(now, actions));
    assert!(out.stage >= Stage::Stage1);
    assert!(out.actions.contains(Action::ContactorOpen));
    assert_ne!(c.snapshot(PERIOD_MS).troubles & trouble::NV_RECORD, 0);
}

#[test]
fn steady_state_does_not_write_the_flash() {
    let mut c = boot(flash());
    let s = ThermalRunaway {
        ramp_start_ms: u64::MAX,
        ..ThermalRunaway::default()
    };
    for i in 0..50 {
        c.cycle(i * PERIOD_MS, &s.inputs(i * PERIOD_MS, Actions::NONE));
    }
    let used = |c: &mut Controller<Fake>| {
        c.store_mut()
            .flash_mut()
            .data
            .chunks(slot_size(fire_logic::LatchRecord::LEN))
            .filter(|b| b[0] != 0xFF)
            .count()
    };
    let before = used(&mut c);
    assert!(before <= 1, "{before}");
    for i in 50..600 {
        c.cycle(i * PERIOD_MS, &s.inputs(i * PERIOD_MS, Actions::NONE));
    }
    assert_eq!(used(&mut c), before);
}

#[test]
fn snapshot_publishes_stage_actions_temperatures_and_events() {
    let mut c = boot(flash());
    let now = run_to(&mut c, Stage::Stage1);
    let snap = c.snapshot(now);
    assert_eq!(snap.fw_version, (1, 2, 3));
    assert_eq!(snap.stage, u16::from(Stage::Stage1.code()));
    assert_ne!(snap.actions & action::CONTACTOR_OPEN, 0);
    assert_ne!(snap.actions & action::BLANKET_DROP, 0);
    assert_eq!(snap.actions & action::AGENT_RELEASE, 0);
    let t = ThermalRunaway::default().temperature(now);
    assert_eq!(snap.rack_temp1_dc, Some(t as i16));
    assert_eq!(snap.uptime_s, (now / 1000) as u32);
    assert!(snap.event_seq > 0);
    assert!(!snap.events.is_empty());
    let newest = snap.events[0];
    assert_eq!(newest.seq, snap.event_seq);
    assert!(
        snap.events.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first"
    );
    assert!(
        snap.events
            .iter()
            .any(|e| e.kind == map::event_kind::STAGE_ENTERED && e.detail == 2)
    );
    let mut regs = [0u16; INPUT_COUNT];
    snap.encode_inputs(&mut regs);
    assert_eq!(regs[input::STAGE as usize], 2);
    assert_eq!(regs[input::FW_VERSION_MINOR as usize], 2);
}

#[test]
fn network_commands_cannot_change_stage_or_actions() {
    let mut c = boot(flash());
    let now = run_to(&mut c, Stage::Stage2);
    let before = c.drive();
    for cmd in [
        Command::SilenceBuzzer,
        Command::TestMode(true),
        Command::TestMode(false),
        Command::Inhibit { sensor: 1 },
    ] {
        let _ = c.command(now, cmd);
        assert_eq!(c.drive().stage, before.stage);
        assert!(c.drive().actions.is_superset_of(before.actions));
    }
    // Test mode is refused while a stage is active.
    assert!(c.command(now, Command::TestMode(true)).is_err());
    // Silence is reported.
    assert_ne!(c.snapshot(now).status & status::SILENCED, 0);
    assert!(c.command(now, Command::Inhibit { sensor: 99 }).is_err());
}

#[test]
fn test_mode_is_reported_in_status_and_coils() {
    let mut c = boot(flash());
    let s = ThermalRunaway {
        ramp_start_ms: u64::MAX,
        ..ThermalRunaway::default()
    };
    c.cycle(0, &s.inputs(0, Actions::NONE));
    c.command(0, Command::TestMode(true)).unwrap();
    c.cycle(PERIOD_MS, &s.inputs(PERIOD_MS, Actions::NONE));
    let snap = c.snapshot(PERIOD_MS);
    assert_ne!(snap.status & status::TEST_MODE, 0);
    assert!(snap.coil_states()[map::coil::TEST_MODE as usize]);
}

#[test]
fn watchdog_is_fed_only_for_cycles_in_time() {
    let mut m = CycleMonitor::new(100);
    assert!(m.completed(1000, 1000));
    assert!(m.completed(1000, 1100));
    assert!(!m.completed(1000, 1101));
    assert!(
        !m.completed(1000, 999),
        "clock going backwards is an overrun"
    );
    assert_eq!(m.overruns(), 2);
    let mut c = boot(flash());
    c.note_overrun();
    assert_ne!(c.snapshot(0).troubles & trouble::CYCLE_OVERRUN, 0);
}

#[test]
fn version_string_parses() {
    assert_eq!(parse_version("0.1.0"), (0, 1, 0));
    assert_eq!(parse_version("12.34.56-rc1"), (12, 34, 56));
    assert_eq!(parse_version("3"), (3, 0, 0));
}

/// The register map reuses the logic's bit numbering; a change there must show up here.
#[test]
fn register_bits_match_the_logic_bits() {
    let mut a = Actions::NONE;
    for (act, bit) in [
        (Action::ContactorOpen, action::CONTACTOR_OPEN),
        (Action::BlanketDrop, action::BLANKET_DROP),
        (Action::PatchFire, action::PATCH_FIRE),
        (Action::AgentRelease, action::AGENT_RELEASE),
        (Action::CoolantOn, action::COOLANT_ON),
        (Action::GasRelease, action::GAS_RELEASE),
        (Action::GasWarning, action::GAS_WARNING),
    ] {
        let mut one = Actions::NONE;
        one.insert(act);
        assert_eq!(one.bits(), bit, "{}", act.name());
        a.insert(act);
    }
    assert_eq!(a.bits() & action::BUZZER, 0);
    let troubles = [
        (Trouble::BmsInvalid, trouble::BMS_INVALID),
        (Trouble::RackTemp1Invalid, trouble::RACK_TEMP1_INVALID),
        (Trouble::RackTemp2Invalid, trouble::RACK_TEMP2_INVALID),
        (Trouble::CameraInvalid, trouble::CAMERA_INVALID),
        (Trouble::SmokeInvalid, trouble::SMOKE_INVALID),
        (Trouble::OffGasInvalid, trouble::OFFGAS_INVALID),
        (Trouble::NoValidTemperature, trouble::NO_VALID_TEMPERATURE),
        (Trouble::SensorInhibited, trouble::SENSOR_INHIBITED),
        (Trouble::ContactorMismatch, trouble::CONTACTOR_MISMATCH),
        (Trouble::BlanketMismatch, trouble::BLANKET_MISMATCH),
        (Trouble::PatchMismatch, trouble::PATCH_MISMATCH),
        (Trouble::AgentMismatch, trouble::AGENT_MISMATCH),
        (Trouble::CoolantMismatch, trouble::COOLANT_MISMATCH),
        (Trouble::GasMismatch, trouble::GAS_MISMATCH),
        (Trouble::FeedbackFault, trouble::FEEDBACK_FAULT),
        (Trouble::SwitchFault, trouble::SWITCH_FAULT),
        (Trouble::EventLogOverflow, trouble::EVENT_LOG_OVERFLOW),
        (Trouble::ConfigChanged, trouble::CONFIG_CHANGED),
    ];
    assert_eq!(
        troubles.len(),
        Trouble::ALL.len(),
        "a new logic trouble needs a register bit"
    );
    for (t, bit) in troubles {
        let mut set = fire_logic::Troubles::NONE;
        set.insert(t);
        assert_eq!(set.bits(), bit, "{}", t.name());
        assert!(
            bit < trouble::NV_RECORD,
            "logic bits stay below the controller's"
        );
    }
    for (s, bit) in [
        (Supervisory::RateOfRise, status::RATE_OF_RISE),
        (Supervisory::OffGas, status::OFFGAS_WARNING),
        (Supervisory::ManualOnlyBypass, status::MANUAL_ONLY),
        (Supervisory::Authority, status::AUTHORITY),
        (Supervisory::TestMode, status::TEST_MODE),
        (
            Supervisory::IsolatedNoTemperature,
            status::ISOLATED_NO_TEMPERATURE,
        ),
    ] {
        let mut set = fire_logic::SupervisoryFlags::NONE;
        set.insert(s);
        assert_eq!(set.bits(), bit, "{}", s.name());
    }
    assert_eq!(
        Supervisory::ALL.len(),
        6,
        "a new supervisory signal needs a status bit"
    );
}

#[test]
fn an_unexpected_reset_is_a_trouble_until_acknowledged_and_a_power_up_is_not() {
    // Hazard: a controller that resets itself (watchdog, fault) and comes back looking healthy
    // hides the fault that made it reset.
    use rack_registers::map::{board_trouble, reset_cause};
    use rack_registers::snapshot::ResetInfo;
    let mut c = boot(flash());
    c.set_reset_info(ResetInfo {
        cause: reset_cause::IWDG | reset_cause::PIN,
        boot_count: 7,
        fault_pc: 0,
    });
    let snap = c.snapshot(0);
    assert_ne!(snap.board.troubles & board_trouble::UNEXPECTED_RESET, 0);
    assert_ne!(snap.troubles & trouble::BOARD, 0);
    assert_eq!(snap.reset.boot_count, 7);
    let mut regs = [0u16; INPUT_COUNT];
    snap.encode_inputs(&mut regs);
    assert_eq!(
        regs[input::RESET_CAUSE as usize],
        reset_cause::IWDG | reset_cause::PIN
    );
    c.command(0, Command::SilenceBuzzer).unwrap();
    let snap = c.snapshot(0);
    assert_eq!(snap.board.troubles & board_trouble::UNEXPECTED_RESET, 0);
    assert_eq!(snap.troubles & trouble::BOARD, 0);
    assert_eq!(
        snap.reset.cause,
        reset_cause::IWDG | reset_cause::PIN,
        "the cause stays readable after the acknowledge"
    );

    let mut c = boot(flash());
    c.set_reset_info(ResetInfo {
        cause: reset_cause::POWER_ON,
        boot_count: 1,
        fault_pc: 0,
    });
    assert_eq!(c.snapshot(0).troubles & trouble::BOARD, 0);
    // Unknown is never good news.
    c.set_reset_info(ResetInfo {
        cause: reset_cause::UNKNOWN,
        boot_count: 2,
        fault_pc: 0,
    });
    assert_ne!(c.snapshot(0).troubles & trouble::BOARD, 0);
}

#[test]
fn any_board_trouble_sets_the_board_bit_of_the_main_trouble_word() {
    // The edge agent alarms on the main trouble word: a board fault only in its own register
    // would reach nobody.
    use rack_registers::map::board_trouble;
    use rack_registers::snapshot::BoardStatus;
    let mut c = boot(flash());
    assert_eq!(c.snapshot(0).troubles & trouble::BOARD, 0);
    for bit in 0..11 {
        c.set_board_status(BoardStatus {
            troubles: 1 << bit,
            ..BoardStatus::default()
        });
        assert_ne!(c.snapshot(0).troubles & trouble::BOARD, 0, "bit {bit}");
    }
    c.set_board_status(BoardStatus {
        troubles: board_trouble::LINE,
        line_fault: 1 << map::line::SMOKE,
        ..BoardStatus::default()
    });
    assert_eq!(c.snapshot(0).board.line_fault, 1 << map::line::SMOKE);
}

#[test]
fn observed_events_are_the_events_of_the_register_window() {
    let mut c = boot(flash());
    let mut seen = Vec::new();
    let s = ThermalRunaway::default();
    let mut actions = Actions::NONE;
    let mut now = 0;
    while c.logic().stage() < Stage::Stage1 {
        let out = c.cycle_observed(now, &s.inputs(now, actions), &mut |e| seen.push(*e));
        actions = out.actions;
        now += PERIOD_MS;
    }
    let snap = c.snapshot(now);
    assert!(!seen.is_empty());
    assert_eq!(
        snap.event_seq,
        seen.last().unwrap().seq + 1,
        "the newest window entry is the last observed event"
    );
    assert_eq!(
        snap.events.len(),
        seen.len().min(map::EVENT_WINDOW_ENTRIES as usize)
    );
}

/// Healthy inputs at 25 C (the default fitted sources, smoke clear), the reset key at `key`.
fn calm(key: fire_logic::Digital, t_dc: i32) -> fire_logic::Inputs {
    let s = ThermalRunaway {
        ambient_dc: t_dc,
        ..ThermalRunaway::default()
    };
    let mut i = s.inputs(0, Actions::NONE);
    for a in [
        &mut i.bms_max,
        &mut i.rack_temp1,
        &mut i.rack_temp2,
        &mut i.camera_max,
    ] {
        *a = fire_logic::Analog::Value(t_dc);
    }
    i.smoke = fire_logic::Digital::Off;
    i.reset = key;
    i
}

fn window_kinds(c: &Controller<Fake>, now: u64) -> Vec<(u8, u16, u8)> {
    c.snapshot(now)
        .events
        .iter()
        .rev()
        .map(|e| (e.kind, e.detail, e.priority))
        .collect()
}

#[test]
fn every_boot_logs_its_reset_cause_in_the_event_window_before_the_logic_events() {
    // Hazard: the reset cause only in registers that the next reset overwrites; a master
    // reading the window (the edge agent) never sees that the controller restarted.
    use rack_registers::map::{event_kind as ek, reset_cause};
    use rack_registers::snapshot::{ResetInfo, priority};
    let mut c = boot(flash());
    c.set_reset_info(ResetInfo {
        cause: reset_cause::IWDG | reset_cause::PIN,
        boot_count: 4,
        fault_pc: 0,
    });
    let snap = c.snapshot(0);
    assert_eq!(snap.events.len(), 1);
    let e = snap.events[0];
    assert_eq!(
        (e.kind, e.detail, e.priority),
        (
            ek::CONTROLLER_RESET,
            reset_cause::IWDG | reset_cause::PIN,
            priority::TROUBLE
        )
    );
    assert_eq!(snap.event_seq, e.seq);
    // The logic's events come after it, in one increasing sequence.
    run_to(&mut c, Stage::Stage1);
    let snap = c.snapshot(0);
    assert!(snap.events.windows(2).all(|w| w[0].seq > w[1].seq));
    assert!(snap.event_seq > e.seq);
    // A power-up is information, not a trouble.
    let mut c = boot(flash());
    c.set_reset_info(ResetInfo {
        cause: reset_cause::POWER_ON,
        boot_count: 1,
        fault_pc: 0,
    });
    assert_eq!(
        window_kinds(&c, 0),
        [(ek::CONTROLLER_RESET, reset_cause::POWER_ON, priority::INFO)]
    );
}

#[test]
fn a_reset_loop_lockout_holds_the_contactor_open_until_a_local_reset() {
    // Hazard: a controller resetting itself again and again (watchdog, fault, brown-out) keeps
    // the battery connected, the contactor's hold-up riding through every short reset.
    use fire_logic::Digital::{Off, On};
    use rack_registers::map::{board_trouble, event_kind as ek};
    let mut c = boot(flash());
    c.set_reset_loop(3);
    let mut now = 0;
    for _ in 0..20 {
        let out = c.cycle(now, &calm(Off, 250));
        assert_eq!(out.stage, Stage::Normal);
        assert!(
            out.actions.contains(Action::ContactorOpen),
            "battery isolated"
        );
        assert!(c.drive().actions.contains(Action::ContactorOpen));
        now += PERIOD_MS;
    }
    let snap = c.snapshot(now);
    assert_ne!(snap.status & status::RESET_LOOP, 0);
    assert_ne!(snap.board.troubles & board_trouble::RESET_LOOP, 0);
    assert_ne!(snap.troubles & trouble::BOARD, 0);
    assert_ne!(snap.actions & action::CONTACTOR_OPEN, 0);
    assert!(window_kinds(&c, now).contains(&(ek::RESET_LOOP, 3, 2)));
    // No network command ends it.
    c.command(now, Command::SilenceBuzzer).unwrap();
    let _ = c.command(now, Command::TestMode(true));
    assert!(
        c.cycle(now, &calm(Off, 250))
            .actions
            .contains(Action::ContactorOpen)
    );
    assert_ne!(
        c.snapshot(now).board.troubles & board_trouble::RESET_LOOP,
        0
    );
    // The local reset key, pressed while a sensor is still warm (46 C >= 45 C): refused, the
    // refusal is logged, the battery stays isolated.
    now += PERIOD_MS;
    c.cycle(now, &calm(On, 460));
    now += PERIOD_MS;
    let out = c.cycle(now, &calm(Off, 250));
    assert!(out.actions.contains(Action::ContactorOpen));
    assert!(
        window_kinds(&c, now)
            .iter()
            .any(|k| k.0 == ek::RESET_REFUSED)
    );
    assert!(!c.take_reset_loop_cleared());
    // Pressed with everything cool: the lockout ends, the contactor closes.
    now += PERIOD_MS;
    let out = c.cycle(now, &calm(On, 250));
    assert!(!out.actions.contains(Action::ContactorOpen), "{out:?}");
    assert_eq!(c.reset_loop(), None);
    assert!(c.take_reset_loop_cleared(), "the board clears its history");
    assert!(!c.take_reset_loop_cleared(), "once");
    assert!(window_kinds(&c, now).contains(&(ek::RESET_LOOP_CLEARED, 1, 2)));
    let snap = c.snapshot(now);
    assert_eq!(snap.status & status::RESET_LOOP, 0);
    assert_eq!(snap.board.troubles & board_trouble::RESET_LOOP, 0);
}

#[test]
fn a_reset_key_held_through_the_boot_is_not_a_press_that_ends_the_lockout() {
    // Hazard: a stuck or shorted reset key (or one held through the reboot) ending the
    // lockout by itself at every boot.
    use fire_logic::Digital::{Off, On};
    let mut c = boot(flash());
    c.set_reset_loop(5);
    let mut now = 0;
    for _ in 0..10 {
        assert!(
            c.cycle(now, &calm(On, 250))
                .actions
                .contains(Action::ContactorOpen)
        );
        now += PERIOD_MS;
    }
    assert_eq!(c.reset_loop(), Some(5));
    c.cycle(now, &calm(Off, 250));
    now += PERIOD_MS;
    assert!(
        !c.cycle(now, &calm(On, 250))
            .actions
            .contains(Action::ContactorOpen)
    );
}

#[test]
fn in_a_latched_stage_the_logics_accepted_reset_also_ends_the_lockout() {
    use fire_logic::Digital::{Off, On};
    use rack_registers::map::event_kind as ek;
    let mut c = boot(flash());
    let mut now = run_to(&mut c, Stage::Stage1);
    c.set_reset_loop(3);
    // Cool down, release the key, press it: the logic accepts its reset.
    for _ in 0..20 {
        now += PERIOD_MS;
        c.cycle(now, &calm(Off, 250));
    }
    now += PERIOD_MS;
    let out = c.cycle(now, &calm(On, 250));
    assert_eq!(out.stage, Stage::Normal);
    assert!(!out.actions.contains(Action::ContactorOpen));
    let kinds = window_kinds(&c, now);
    assert!(kinds.iter().any(|k| k.0 == ek::RESET_ACCEPTED));
    assert!(kinds.contains(&(ek::RESET_LOOP_CLEARED, 0, 2)));
}

#[test]
fn the_room_gas_release_is_published_not_wired_unless_declared_and_never_as_normal_unseen() {
    // Hazard: board rev B does not wire the room's gas release; publishing "not operated" (0)
    // tells a reader the release path is supervised and idle.
    use fire_logic::Digital::{Fault, NoSample, Off, On};
    use map::input_state as st;
    let state = |c: &Controller<Fake>| {
        let mut regs = [0u16; INPUT_COUNT];
        c.snapshot(0).encode_inputs(&mut regs);
        regs[usize::from(input::ROOM_GAS_RELEASE)]
    };
    let mut c = boot(flash());
    let mut i = calm(Off, 250);
    i.room_gas_release = NoSample;
    c.cycle(0, &i);
    assert_eq!(state(&c), st::NOT_FITTED);
    c.set_room_gas_release_wired(true);
    assert_eq!(
        state(&c),
        st::FAULT,
        "wired, never sampled: not 'not operated'"
    );
    for (d, want) in [
        (Off, st::NORMAL),
        (On, st::ALARM),
        (NoSample, st::ALARM),
        (Fault, st::FAULT),
    ] {
        i.room_gas_release = d;
        c.cycle(PERIOD_MS, &i);
        assert_eq!(state(&c), want, "{d:?}");
    }
}
