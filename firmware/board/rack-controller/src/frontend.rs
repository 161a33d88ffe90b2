//! The board's input front end, pure: one scan of raw converter readings in, the logic's
//! [`Inputs`] and the board diagnostics ([`BoardStatus`]) out. The board support module only
//! fills a [`RawScan`]; everything that decides what a reading means is here, host-tested.
//!
//! Per scan:
//! 1. the reference check ([`crate::analog::check_reference`]) and the supply detector: if
//!    either fails, no reading of the scan is used (temperatures are sensor faults, lines hold
//!    their confirmed state for one scan then fault, outputs cannot be verified);
//! 2. the converter self-test: each ADC converts the half-scale divider; a converter that reads
//!    it outside [`SELF_TEST_MIN`]..=[`SELF_TEST_MAX`] (stuck result, stuck multiplexer) has none
//!    of its readings used;
//! 3. the transmitters ([`crate::analog::transmitter_tenths`]), the line-monitored inputs
//!    ([`crate::line`]) with the power-up guard of the release inputs, and the output read-back
//!    ([`crate::outputs::OutputMonitor`]) against what was driven before the scan.

use fire_logic::{Analog, Digital, Inputs};
use rack_registers::map::{board_trouble as bt, line};
use rack_registers::snapshot::BoardStatus;

use crate::analog::{check_reference, transmitter_tenths};
use crate::boards::{LINES, OUTPUT_SENSE, TRANSMITTERS};
use crate::line::{Filtered, LineFilter, LineState, ReleaseGuard};
use crate::outputs::{CIRCUITS, Drive, OutputMonitor};

/// Number of line-monitored inputs.
pub const LINE_COUNT: usize = line::COUNT as usize;
/// Lowest accepted self-test reading (half scale, 0.1 % divider, converter error included).
pub const SELF_TEST_MIN: u16 = 2_008;
/// Highest accepted self-test reading.
pub const SELF_TEST_MAX: u16 = 2_088;
/// Nominal self-test reading.
pub const SELF_TEST_NOMINAL: u16 = 2_048;

/// One scan of raw 12-bit readings; `None` where a conversion did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawScan {
    /// VREFINT, converted first.
    pub vrefint_first: Option<u16>,
    /// The self-test divider as read by ADC1, ADC2 and ADC3.
    pub self_test: [Option<u16>; 3],
    /// Rack temperature transmitters 1 and 2.
    pub transmitters: [Option<u16>; 2],
    /// Line-monitored inputs, [`line`] order.
    pub lines: [Option<u16>; LINE_COUNT],
    /// Output read-back, [`rack_registers::map::output`] order.
    pub outputs: [Option<u16>; CIRCUITS],
    /// VREFINT, converted last.
    pub vrefint_last: Option<u16>,
    /// The supply voltage detector reports VDD below its threshold.
    pub supply_low: bool,
}

impl RawScan {
    /// A scan in which no conversion completed (a converter that never answers).
    pub const NONE: RawScan = RawScan {
        vrefint_first: None,
        self_test: [None; 3],
        transmitters: [None; 2],
        lines: [None; LINE_COUNT],
        outputs: [None; CIRCUITS],
        vrefint_last: None,
        supply_low: false,
    };
}

/// Debounce of each line, [`line`] order: switches and the smoke relay need two identical
/// readings (a spike never operates a release), feedbacks one (the logic has its own mismatch
/// tolerance of 100 ms).
const CONFIRM: [u8; LINE_COUNT] = [2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1];

/// The front end's state across scans.
#[derive(Debug, Clone)]
pub struct FrontEnd {
    filters: [LineFilter; LINE_COUNT],
    manual_release: ReleaseGuard,
    reset: ReleaseGuard,
    monitor: OutputMonitor,
    driven: Drive,
    open_code: i32,
    short_code: i32,
}

impl FrontEnd {
    /// A front end converting open/shorted transmitter loops to the logic's fault codes.
    pub fn new(open_code: i32, short_code: i32) -> Self {
        FrontEnd {
            filters: CONFIRM.map(LineFilter::new),
            manual_release: ReleaseGuard::new(),
            reset: ReleaseGuard::new(),
            monitor: OutputMonitor::new(),
            driven: Drive::SAFE,
            open_code,
            short_code,
        }
    }

    /// Records what the output pins now drive (the next scan's read-back is checked
    /// against it).
    pub fn driven(&mut self, d: Drive) {
        self.driven = d;
    }

    /// What was last driven.
    pub fn drive(&self) -> Drive {
        self.driven
    }

    /// Processes one scan.
    pub fn process(&mut self, scan: &RawScan) -> (Inputs, BoardStatus) {
        let mut st = BoardStatus::default();
        let reference = check_reference(scan.vrefint_first, scan.vrefint_last);
        st.vrefint_raw = reference.raw;
        if reference.reference_fault {
            st.troubles |= bt::REFERENCE;
        }
        if reference.adc_fault {
            st.troubles |= bt::ADC;
        }
        if scan.supply_low {
            st.troubles |= bt::SUPPLY_LOW;
        }
        let usable = reference.ok && !scan.supply_low;
        let mut adc_ok = [usable; 3];
        for (ok, t) in adc_ok.iter_mut().zip(scan.self_test) {
            if !t.is_some_and(|v| (SELF_TEST_MIN..=SELF_TEST_MAX).contains(&v)) {
                *ok = false;
                st.troubles |= bt::ADC;
            }
        }
        let from = |adc: u8, raw: Option<u16>| -> Option<u16> {
            if adc_ok.get(usize::from(adc).wrapping_sub(1)).copied() == Some(true) {
                raw
            } else {
                None
            }
        };

        // Transmitters: a reading the reference cannot vouch for is a fault, never a value.
        let mut temps = [Analog::Fault; 2];
        for ((t, raw), ch) in temps.iter_mut().zip(scan.transmitters).zip(TRANSMITTERS) {
            if usable && raw.is_none() {
                st.troubles |= bt::ADC;
            }
            if let Some(r) = from(ch.adc, raw) {
                *t = Analog::Value(transmitter_tenths(r, self.open_code, self.short_code));
            }
        }

        // Line-monitored inputs.
        let mut digital = [Digital::NoSample; LINE_COUNT];
        for (i, ((f, raw), ch)) in self
            .filters
            .iter_mut()
            .zip(scan.lines)
            .zip(LINES)
            .enumerate()
        {
            if usable && raw.is_none() {
                st.troubles |= bt::ADC;
            }
            let filtered = f.update(from(ch.adc, raw));
            let bit = 1u16 << i;
            match filtered {
                Filtered::State(LineState::Active) => st.line_active |= bit,
                Filtered::State(LineState::Open) => st.line_open |= bit,
                Filtered::State(LineState::Short) => st.line_short |= bit,
                _ => {}
            }
            if matches!(filtered, Filtered::Lost)
                || filtered.state().is_some_and(LineState::is_fault)
            {
                st.line_fault |= bit;
            }
            let guard = match i as u16 {
                line::MANUAL_RELEASE => Some(&mut self.manual_release),
                line::RESET => Some(&mut self.reset),
                _ => None,
            };
            let d = match guard {
                Some(g) => {
                    let (d, blocked) = g.apply(filtered);
                    if blocked {
                        st.inputs_blocked |= bit;
                    }
                    d
                }
                None => filtered.digital(),
            };
            if let Some(slot) = digital.get_mut(i) {
                *slot = d;
            }
        }
        if st.line_fault != 0 {
            st.troubles |= bt::LINE;
        }
        if st.inputs_blocked != 0 {
            st.troubles |= bt::RELEASE_INPUT_AT_POWER_UP;
        }

        // Output read-back.
        let mut sense = [None; CIRCUITS];
        for ((s, raw), ch) in sense.iter_mut().zip(scan.outputs).zip(OUTPUT_SENSE) {
            if usable && raw.is_none() {
                st.troubles |= bt::ADC;
            }
            *s = from(ch.adc, raw);
        }
        let out = self.monitor.check(self.driven, &sense);
        st.output_mismatch = out.mismatch;
        st.output_line_fault = out.line_fault;
        st.output_energised = out.energised;
        if out.mismatch != 0 {
            st.troubles |= bt::OUTPUT_MISMATCH;
        }
        if out.line_fault != 0 {
            st.troubles |= bt::OUTPUT_LINE;
        }

        let d = |i: u16| {
            digital
                .get(usize::from(i))
                .copied()
                .unwrap_or(Digital::Fault)
        };
        let mut feedback = [Digital::NoSample; 6];
        for (k, f) in feedback.iter_mut().enumerate() {
            *f = d(line::FEEDBACK_BASE + k as u16);
        }
        let inputs = Inputs {
            bms_max: Analog::NoSample,
            rack_temp1: temps[0],
            rack_temp2: temps[1],
            camera_max: Analog::NoSample,
            smoke: d(line::SMOKE),
            offgas: Analog::NoSample,
            feedback,
            reset: d(line::RESET),
            hold: d(line::HOLD),
            manual_release: d(line::MANUAL_RELEASE),
            // The room's gas release is a room panel input, not wired to the rack board.
            room_gas_release: Digital::NoSample,
            manual_only: d(line::MANUAL_ONLY),
            authority: d(line::AUTHORITY),
        };
        (inputs, st)
    }
}

/// A healthy scan (for the emulated board and the tests): the reference and the self-test at
/// nominal, both transmitters at `tenths`, every line at `lines`, and each output read back as
/// `drive` energises it.
pub fn healthy_scan(tenths: i32, lines: [LineState; LINE_COUNT], drive: Drive) -> RawScan {
    use crate::analog::{VREFINT_NOMINAL, transmitter_raw};
    use crate::line::nominal;
    use crate::outputs::{Sense, nominal_sense};
    let t = transmitter_raw(tenths);
    let mut outputs = [None; CIRCUITS];
    for (i, o) in outputs.iter_mut().enumerate() {
        *o = Some(nominal_sense(if drive.energised(i as u16) {
            Sense::Energised
        } else {
            Sense::Idle
        }));
    }
    RawScan {
        vrefint_first: Some(VREFINT_NOMINAL),
        self_test: [Some(SELF_TEST_NOMINAL); 3],
        transmitters: [t, t],
        lines: lines.map(|s| Some(nominal(s))),
        outputs,
        vrefint_last: Some(VREFINT_NOMINAL),
        supply_low: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analog::{VREFINT_MAX, VREFINT_MIN};
    use crate::line::nominal;
    use rack_registers::map::output;

    const OPEN: i32 = 32_767;
    const SHORT: i32 = -32_768;

    fn normal() -> [LineState; LINE_COUNT] {
        [LineState::Normal; LINE_COUNT]
    }

    fn fe() -> FrontEnd {
        FrontEnd::new(OPEN, SHORT)
    }

    /// Runs `n` identical scans, returns the last result.
    fn settle(f: &mut FrontEnd, scan: &RawScan, n: usize) -> (Inputs, BoardStatus) {
        let mut r = f.process(scan);
        for _ in 1..n {
            r = f.process(scan);
        }
        r
    }

    #[test]
    fn a_healthy_scan_gives_values_and_no_trouble() {
        let mut f = fe();
        let (i, st) = settle(&mut f, &healthy_scan(253, normal(), Drive::SAFE), 2);
        assert_eq!(i.rack_temp1, Analog::Value(253));
        assert_eq!(i.rack_temp2, Analog::Value(253));
        assert_eq!(i.smoke, Digital::Off);
        assert_eq!(i.manual_release, Digital::Off);
        assert_eq!(i.feedback, [Digital::Off; 6]);
        assert_eq!(i.bms_max, Analog::NoSample, "not fitted on this board");
        assert_eq!(st.troubles, 0, "{st:?}");
        assert_eq!(st.vrefint_raw, Some(crate::analog::VREFINT_NOMINAL));
    }

    #[test]
    fn every_input_in_every_line_state_reaches_the_logic_and_names_the_input() {
        // Hazard: an open smoke line read as "no smoke", a shorted switch read as operated,
        // and a line fault that does not say which line.
        for input in 0..LINE_COUNT {
            for (state, want, fault) in [
                (LineState::Normal, Digital::Off, false),
                (LineState::Active, Digital::On, false),
                (LineState::Open, Digital::Fault, true),
                (LineState::Short, Digital::Fault, true),
            ] {
                let mut f = fe();
                // Power-up with every line normal, then this line changes.
                settle(&mut f, &healthy_scan(250, normal(), Drive::SAFE), 2);
                let mut lines = normal();
                lines[input] = state;
                let (inputs, st) = settle(&mut f, &healthy_scan(250, lines, Drive::SAFE), 2);
                let got = match input as u16 {
                    line::SMOKE => inputs.smoke,
                    line::MANUAL_RELEASE => inputs.manual_release,
                    line::RESET => inputs.reset,
                    line::HOLD => inputs.hold,
                    line::MANUAL_ONLY => inputs.manual_only,
                    line::AUTHORITY => inputs.authority,
                    k => inputs.feedback[usize::from(k - line::FEEDBACK_BASE)],
                };
                let name = line::NAMES[input];
                assert_eq!(got, want, "{name} {state:?}");
                assert_eq!(st.line_fault, if fault { 1 << input } else { 0 }, "{name}");
                assert_eq!(st.troubles & bt::LINE != 0, fault, "{name}");
                assert_eq!(
                    st.line_open,
                    if state == LineState::Open {
                        1 << input
                    } else {
                        0
                    }
                );
                assert_eq!(
                    st.line_short,
                    if state == LineState::Short {
                        1 << input
                    } else {
                        0
                    }
                );
                assert_eq!(
                    st.line_active,
                    if state == LineState::Active {
                        1 << input
                    } else {
                        0
                    }
                );
            }
        }
    }

    #[test]
    fn a_release_input_active_or_shorted_at_power_up_is_a_trouble_not_a_release() {
        // Hazard: a stuck manual-release button discharging agent at every power-up; a stuck
        // reset key resetting the latch restored from non-volatile memory.
        for input in [line::MANUAL_RELEASE, line::RESET] {
            for state in [LineState::Active, LineState::Short] {
                let mut f = fe();
                let mut lines = normal();
                lines[usize::from(input)] = state;
                for _ in 0..5 {
                    let (i, st) = f.process(&healthy_scan(250, lines, Drive::SAFE));
                    let d = if input == line::RESET {
                        i.reset
                    } else {
                        i.manual_release
                    };
                    assert_ne!(d, Digital::On, "never operated at power-up");
                    assert_eq!(st.inputs_blocked & !(1 << input), 0);
                }
                let (i, st) = f.process(&healthy_scan(250, lines, Drive::SAFE));
                assert_eq!(st.inputs_blocked, 1 << input);
                assert_ne!(st.troubles & bt::RELEASE_INPUT_AT_POWER_UP, 0);
                assert_eq!(
                    if input == line::RESET {
                        i.reset
                    } else {
                        i.manual_release
                    },
                    Digital::Fault
                );
                // Released and seen normal: armed, the trouble clears, the next operation acts.
                let (_, st) = settle(&mut f, &healthy_scan(250, normal(), Drive::SAFE), 2);
                assert_eq!(st.inputs_blocked, 0);
                assert_eq!(st.troubles & bt::RELEASE_INPUT_AT_POWER_UP, 0);
                lines[usize::from(input)] = LineState::Active;
                let (i, _) = settle(&mut f, &healthy_scan(250, lines, Drive::SAFE), 2);
                let d = if input == line::RESET {
                    i.reset
                } else {
                    i.manual_release
                };
                assert_eq!(d, Digital::On);
            }
        }
    }

    #[test]
    fn a_reference_out_of_range_discards_the_scan_and_is_a_trouble() {
        // Hazard: a reference 10 % low reads both transmitters 10 % high at once.
        for bad in [VREFINT_MIN - 1, VREFINT_MAX + 1, 1_400, 1_900] {
            let mut f = fe();
            settle(&mut f, &healthy_scan(300, normal(), Drive::SAFE), 2);
            let mut scan = healthy_scan(700, normal(), Drive::SAFE);
            scan.vrefint_first = Some(bad);
            scan.vrefint_last = Some(bad);
            let (i, st) = f.process(&scan);
            assert_eq!(i.rack_temp1, Analog::Fault, "never a value");
            assert_eq!(i.rack_temp2, Analog::Fault);
            assert_ne!(st.troubles & bt::REFERENCE, 0);
            assert_eq!(st.vrefint_raw, Some(bad));
            // Lines hold their confirmed state for one scan, then fault.
            assert_eq!(i.smoke, Digital::Off);
            let (i, st) = f.process(&scan);
            assert_eq!(i.smoke, Digital::Fault);
            assert_eq!(st.line_fault, (1 << LINE_COUNT) - 1);
            // Back in range: values again.
            let (i, st) = settle(&mut f, &healthy_scan(301, normal(), Drive::SAFE), 2);
            assert_eq!(i.rack_temp1, Analog::Value(301));
            assert_eq!(st.troubles & bt::REFERENCE, 0);
        }
        // The supply detector has the same effect.
        let mut f = fe();
        let mut scan = healthy_scan(300, normal(), Drive::SAFE);
        scan.supply_low = true;
        let (i, st) = f.process(&scan);
        assert_eq!(i.rack_temp1, Analog::Fault);
        assert_ne!(st.troubles & bt::SUPPLY_LOW, 0);
    }

    #[test]
    fn a_converter_failing_its_self_test_has_none_of_its_readings_used() {
        // Hazard: a stuck ADC3 returning a "normal" level on every line: smoke never alarms.
        let mut f = fe();
        settle(&mut f, &healthy_scan(300, normal(), Drive::SAFE), 2);
        let mut lines = normal();
        lines[usize::from(line::SMOKE)] = LineState::Active;
        let mut scan = healthy_scan(300, lines, Drive::SAFE);
        scan.self_test[2] = Some(nominal(LineState::Normal) + 100);
        let (i, st) = settle(&mut f, &scan, 2);
        assert_ne!(st.troubles & bt::ADC, 0);
        assert_eq!(i.smoke, Digital::Fault, "ADC3 lines unusable");
        assert_eq!(i.rack_temp1, Analog::Value(300), "ADC1 still trusted");
        // The gas feedback is on ADC2: still read.
        assert_eq!(i.feedback[5], Digital::Off);
        // A converter that never finishes.
        let mut f = fe();
        let (i, st) = f.process(&RawScan::NONE);
        assert_ne!(st.troubles & bt::ADC, 0);
        assert_eq!(i.rack_temp1, Analog::Fault);
        assert_eq!(st.output_mismatch, 0, "not yet confirmed");
        let (i, st) = f.process(&RawScan::NONE);
        assert_eq!(i.smoke, Digital::Fault);
        assert_eq!(st.output_mismatch, (1 << CIRCUITS) - 1, "nothing verified");
    }

    #[test]
    fn transmitter_loop_faults_reach_the_logic_as_fault_codes() {
        let mut f = fe();
        let mut scan = healthy_scan(300, normal(), Drive::SAFE);
        scan.transmitters = [Some(0), Some(4095)];
        let (i, _) = f.process(&scan);
        assert_eq!(i.rack_temp1, Analog::Value(OPEN));
        assert_eq!(i.rack_temp2, Analog::Value(SHORT));
    }

    #[test]
    fn an_output_read_back_mismatch_names_the_circuit() {
        // Hazard: agent commanded and nothing happens, unseen.
        let mut f = fe();
        let drive = Drive((1 << output::CONTACTOR_HOLD) | (1 << output::AGENT));
        f.driven(drive);
        let mut scan = healthy_scan(300, normal(), drive);
        scan.outputs[usize::from(output::AGENT)] =
            Some(crate::outputs::nominal_sense(crate::outputs::Sense::Idle));
        let (_, st) = settle(&mut f, &scan, 2);
        assert_eq!(st.output_mismatch, 1 << output::AGENT);
        assert_ne!(st.troubles & bt::OUTPUT_MISMATCH, 0);
        assert_eq!(st.output_energised, 1 << output::CONTACTOR_HOLD);
    }
}
