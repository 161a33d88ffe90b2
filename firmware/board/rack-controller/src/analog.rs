//! Analogue front end integrity (board rev B): the converter reference, the 4-20 mA rack
//! temperature transmitters, and which sources share a common cause.
//!
//! The ADC reference VREF+ is a 3.000 V precision reference (0.5 %), which also feeds the
//! pull-ups of the line-monitored inputs ([`crate::line`]). Every scan converts the internal
//! reference VREFINT (1.18..1.24 V, typically 1.21 V) first and last: both readings must lie in
//! [`VREFINT_MIN`]..=[`VREFINT_MAX`] and within [`VREFINT_SPREAD`] of each other. Otherwise the
//! reference, the converter or its multiplexer is not trustworthy and every reading of that scan
//! is discarded ([`ReferenceCheck`]): a temperature taken with the reference out of range would
//! be wrong in proportion (a reference 10 % low reads every transmitter 10 % high, on both
//! transmitters at once).

use fire_logic::SourceId;

/// Lowest accepted VREFINT reading: 1.18 V against VREF+ 3.015 V (counts).
pub const VREFINT_MIN: u16 = 1_600;
/// Highest accepted VREFINT reading: 1.24 V against VREF+ 2.985 V (counts).
pub const VREFINT_MAX: u16 = 1_705;
/// Largest difference between the first and the last VREFINT reading of one scan (a stuck
/// multiplexer or a reference moving during the scan).
pub const VREFINT_SPREAD: u16 = 20;
/// Nominal VREFINT reading (1.21 V / 3.000 V × 4095).
pub const VREFINT_NOMINAL: u16 = 1_652;

/// The verdict on one scan's reference readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferenceCheck {
    /// The readings of this scan may be used.
    pub ok: bool,
    /// The reference read out of range (or moved during the scan).
    pub reference_fault: bool,
    /// A reference conversion did not complete.
    pub adc_fault: bool,
    /// The reading to publish (the first one), if there was one.
    pub raw: Option<u16>,
}

/// Checks the VREFINT readings taken first and last in a scan (pure).
pub fn check_reference(first: Option<u16>, last: Option<u16>) -> ReferenceCheck {
    let (Some(a), Some(b)) = (first, last) else {
        return ReferenceCheck {
            ok: false,
            reference_fault: false,
            adc_fault: true,
            raw: first.or(last),
        };
    };
    let in_range = |v: u16| (VREFINT_MIN..=VREFINT_MAX).contains(&v);
    let ok = in_range(a) && in_range(b) && a.abs_diff(b) <= VREFINT_SPREAD;
    ReferenceCheck {
        ok,
        reference_fault: !ok,
        adc_fault: false,
        raw: Some(a),
    }
}

/// Transmitter shunt, ohms: 4 mA = 480 mV, 20 mA = 2400 mV against the 3.000 V VREF+.
pub const SHUNT_OHMS: u32 = 120;
/// Reading at 4 mA (-50.0 C).
pub const RAW_4MA: i32 = 655;
/// Reading at 20 mA (+150.0 C).
pub const RAW_20MA: i32 = 3_276;
/// Below this (3.6 mA) the loop is open (NAMUR NE 43).
pub const RAW_OPEN: i32 = 590;
/// Above this (21 mA) the loop is shorted (NAMUR NE 43).
pub const RAW_SHORT: i32 = 3_440;

/// A 4-20 mA temperature transmitter reading (-50.0..150.0 C over 4..20 mA) in tenths of C.
/// Below 3.6 mA the loop is open, above 21 mA it is shorted: those readings become the
/// configured open/short codes, which the logic reports as sensor faults (never a temperature).
pub fn transmitter_tenths(raw: u16, open_code: i32, short_code: i32) -> i32 {
    let raw = i32::from(raw);
    if raw < RAW_OPEN {
        open_code
    } else if raw > RAW_SHORT {
        short_code
    } else {
        -500 + (raw - RAW_4MA) * 2000 / (RAW_20MA - RAW_4MA)
    }
}

/// The lowest raw reading that converts to `tenths` (for the emulated board and the tests);
/// `None` outside the transmitter's span.
pub fn transmitter_raw(tenths: i32) -> Option<u16> {
    (RAW_OPEN..=RAW_SHORT)
        .find(|&r| -500 + (r - RAW_4MA) * 2000 / (RAW_20MA - RAW_4MA) == tenths)
        .and_then(|r| u16::try_from(r).ok())
}

/// What sources of one group have in common.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseKind {
    /// One analogue-to-digital converter (and its multiplexer).
    Adc,
    /// One reference or supply (VREF+, loop supply).
    Supply,
    /// One module or device.
    Module,
    /// One field cable or connector.
    Cable,
}

/// A group of sources that one fault can push the same way at the same time: they must never
/// corroborate each other (a stage that needs a second, independent source must find it outside
/// the group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommonCause {
    /// What the group is, for the hazard log and the configuration.
    pub name: &'static str,
    /// The shared parts.
    pub causes: &'static [CauseKind],
    /// The member sources.
    pub members: &'static [SourceId],
}

impl CommonCause {
    /// The members as a bit mask over [`SourceId`] indexes (`1 << id as u8`).
    pub const fn mask(&self) -> u8 {
        let mut m = 0u8;
        let mut i = 0;
        while i < self.members.len() {
            m |= 1 << (self.members[i] as u8);
            i += 1;
        }
        m
    }
}

/// Masks of every group, one per group (for a configuration that takes bit masks).
pub fn group_masks(groups: &[CommonCause]) -> impl Iterator<Item = u8> + '_ {
    groups.iter().map(CommonCause::mask)
}

/// True when `a` and `b` share a group (so neither may corroborate the other).
pub fn share_a_cause(groups: &[CommonCause], a: SourceId, b: SourceId) -> bool {
    a != b
        && groups
            .iter()
            .any(|g| g.members.contains(&a) && g.members.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_in_range_and_stable_is_usable() {
        let c = check_reference(Some(VREFINT_NOMINAL), Some(VREFINT_NOMINAL + 3));
        assert!(c.ok && !c.reference_fault && !c.adc_fault);
        assert_eq!(c.raw, Some(VREFINT_NOMINAL));
    }

    #[test]
    fn reference_out_of_range_discards_the_scan() {
        // Hazard: VREF+ sagging 10 % makes both transmitters read 10 % high together.
        for bad in [0, 1_500, VREFINT_MIN - 1, VREFINT_MAX + 1, 1_840, 4_095] {
            let c = check_reference(Some(bad), Some(bad));
            assert!(!c.ok && c.reference_fault, "{bad}");
            assert_eq!(c.raw, Some(bad), "the bad value is still published");
        }
        assert!(check_reference(Some(VREFINT_MIN), Some(VREFINT_MIN)).ok);
        assert!(check_reference(Some(VREFINT_MAX), Some(VREFINT_MAX)).ok);
    }

    #[test]
    fn a_reference_that_moves_during_the_scan_or_a_missing_conversion_is_a_fault() {
        // Hazard: a stuck multiplexer returning one channel for all (both ends in range but
        // different), or a converter that never finishes.
        let c = check_reference(Some(VREFINT_MIN), Some(VREFINT_MIN + VREFINT_SPREAD + 1));
        assert!(!c.ok && c.reference_fault);
        let c = check_reference(None, Some(VREFINT_NOMINAL));
        assert!(!c.ok && c.adc_fault);
        let c = check_reference(Some(VREFINT_NOMINAL), None);
        assert!(!c.ok && c.adc_fault);
    }

    #[test]
    fn transmitter_scale_and_loop_faults() {
        let (open, short) = (32_767, -32_768);
        assert_eq!(transmitter_tenths(655, open, short), -500);
        assert_eq!(transmitter_tenths(3276, open, short), 1500);
        assert_eq!(transmitter_tenths(1965, open, short), 499);
        // NAMUR NE 43: an open loop and a shorted loop are faults, never temperatures.
        assert_eq!(transmitter_tenths(0, open, short), open);
        assert_eq!(transmitter_tenths(589, open, short), open);
        assert_eq!(transmitter_tenths(3441, open, short), short);
        assert_eq!(transmitter_tenths(4095, open, short), short);
    }

    #[test]
    fn every_tenth_of_the_span_is_reachable_and_round_trips() {
        // The emulated board drives temperatures through the real conversion.
        for t in -500..=1500 {
            let raw = transmitter_raw(t).unwrap_or_else(|| panic!("{t} unreachable"));
            assert_eq!(transmitter_tenths(raw, 0, 0), t);
        }
        // Above 21 mA the loop is shorted: no temperature.
        assert_eq!(transmitter_raw(1700), None);
    }

    #[test]
    fn groups_are_symmetric_and_masks_match_members() {
        const G: &[CommonCause] = &[CommonCause {
            name: "test",
            causes: &[CauseKind::Adc],
            members: &[SourceId::RackTemp1, SourceId::RackTemp2],
        }];
        assert!(share_a_cause(G, SourceId::RackTemp1, SourceId::RackTemp2));
        assert!(share_a_cause(G, SourceId::RackTemp2, SourceId::RackTemp1));
        assert!(!share_a_cause(G, SourceId::RackTemp1, SourceId::Smoke));
        assert!(!share_a_cause(G, SourceId::RackTemp1, SourceId::RackTemp1));
        assert_eq!(group_masks(G).collect::<Vec<_>>(), [0b110]);
    }
}
