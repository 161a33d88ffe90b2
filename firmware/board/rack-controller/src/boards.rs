//! Each board revision as data: which sources the hardware has (the logic configuration),
//! which ADC channel reads what, and which sources share a common cause. The register-level
//! bindings are in the board support module of the binary (`src/stm32f407.rs`).

use fire_logic::{Config, SourceId};
use rack_registers::map::{line, output};

use crate::analog::{CauseKind, CommonCause};

/// STM32F407ZG board, revision B: two rack temperature transmitters (4-20 mA), the smoke
/// detector relay and every switch and feedback on line-monitored inputs, every output circuit
/// read back. The BMS and the thermal camera reach the edge agent directly, and there is no
/// off-gas detector input, so those sources are not fitted here.
pub fn stm32f407_rev_b() -> Config {
    let mut c = Config::default();
    c.fitted.bms = false;
    c.fitted.camera = false;
    c.fitted.offgas = false;
    c.fitted.feedback = [true; 6];
    // Group k+1 for the k-th entry of the common-cause table: members never corroborate each
    // other (the fire logic's rule).
    for (k, group) in STM32F407_REV_B_COMMON_CAUSE.iter().enumerate() {
        for member in group.members {
            if let Some(slot) = c.common_cause.get_mut(*member as usize) {
                *slot = u8::try_from(k + 1).unwrap_or(u8::MAX);
            }
        }
    }
    c
}

/// The common-cause groups of rev B. The two rack transmitters are converted by ADC1 against one
/// VREF+, are powered by one 24 V loop supply and run in one multicore cable to the rack: one
/// fault there (a reference sagging, a supply or cable fault) moves both readings the same way
/// at once, so they must never corroborate each other. The smoke relay is read by ADC3 on a
/// ratiometric line (insensitive to the reference) from its own detector: it is independent of
/// them. (The BMS, camera and off-gas detector are not fitted on this revision.)
///
/// [`stm32f407_rev_b`] puts each entry's members in one `Config::common_cause` group; the
/// same table is available as bit masks over `SourceId` indexes with
/// [`crate::analog::group_masks`].
pub const STM32F407_REV_B_COMMON_CAUSE: &[CommonCause] = &[CommonCause {
    name: "rack transmitters: ADC1, VREF+ reference, 24 V loop supply, one field cable",
    causes: &[CauseKind::Adc, CauseKind::Supply, CauseKind::Cable],
    members: &[SourceId::RackTemp1, SourceId::RackTemp2],
}];

/// One ADC input: converter (1..=3), channel and pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    /// ADC1, ADC2 or ADC3.
    pub adc: u8,
    /// Channel number.
    pub channel: u8,
    /// Pin (for the documentation).
    pub pin: &'static str,
}

const fn ch(adc: u8, channel: u8, pin: &'static str) -> Channel {
    Channel { adc, channel, pin }
}

/// Internal reference, converted first and last in every scan (ADC1).
pub const VREFINT: Channel = ch(1, 17, "internal");
/// Self-test divider (two 10 kΩ 0.1 % from VREF+, half scale), converted by each of the three
/// converters in every scan.
pub const SELF_TEST: u8 = 10;
/// Pin of the self-test divider.
pub const SELF_TEST_PIN: &str = "PC0";
/// Rack temperature transmitters 1 and 2 (ADC1).
pub const TRANSMITTERS: [Channel; 2] = [ch(1, 0, "PA0"), ch(1, 1, "PA1")];
/// Line-monitored inputs, in [`line`] index order (ADC3, the last one on ADC2).
pub const LINES: [Channel; line::COUNT as usize] = [
    ch(3, 4, "PF6"),  // smoke
    ch(3, 5, "PF7"),  // manual release
    ch(3, 6, "PF8"),  // reset key
    ch(3, 7, "PF9"),  // hold
    ch(3, 8, "PF10"), // manual-only
    ch(3, 9, "PF3"),  // authority key
    ch(3, 14, "PF4"), // contactor open feedback
    ch(3, 15, "PF5"), // blanket down feedback
    ch(3, 11, "PC1"), // patch fired feedback
    ch(3, 12, "PC2"), // agent pressure feedback
    ch(3, 13, "PC3"), // coolant flow feedback
    ch(2, 15, "PC5"), // gas released feedback
];
/// Output read-back channels, in [`output`] index order (ADC2).
pub const OUTPUT_SENSE: [Channel; output::COUNT as usize] = [
    ch(2, 4, "PA4"),
    ch(2, 5, "PA5"),
    ch(2, 6, "PA6"),
    ch(2, 7, "PA7"),
    ch(2, 8, "PB0"),
    ch(2, 9, "PB1"),
    ch(2, 14, "PC4"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analog::share_a_cause;

    #[test]
    fn board_configs_are_valid() {
        stm32f407_rev_b().validate().unwrap();
    }

    #[test]
    fn the_two_transmitters_never_corroborate_each_other_and_smoke_is_independent() {
        // Hazard: a sagging reference or a loop-supply fault reads both transmitters high at
        // once, and the second "confirms" the first.
        let g = STM32F407_REV_B_COMMON_CAUSE;
        assert!(share_a_cause(g, SourceId::RackTemp1, SourceId::RackTemp2));
        assert!(!share_a_cause(g, SourceId::RackTemp1, SourceId::Smoke));
        assert!(!share_a_cause(g, SourceId::RackTemp2, SourceId::Smoke));
        // ...and the logic's configuration says the same.
        let cfg = stm32f407_rev_b();
        assert_ne!(cfg.common_cause[SourceId::RackTemp1 as usize], 0);
        assert_eq!(
            cfg.common_cause[SourceId::RackTemp1 as usize],
            cfg.common_cause[SourceId::RackTemp2 as usize]
        );
        assert_eq!(cfg.common_cause[SourceId::Smoke as usize], 0);
        // Nothing left undeclared that the deployment checks would warn about or refuse.
        assert_eq!(cfg.undeclared_pairs().count(), 0);
        // Every member of every group is a source this board has.
        let c = stm32f407_rev_b();
        for grp in g {
            for m in grp.members {
                let fitted = match m {
                    SourceId::Bms => c.fitted.bms,
                    SourceId::RackTemp1 => c.fitted.rack_temp1,
                    SourceId::RackTemp2 => c.fitted.rack_temp2,
                    SourceId::Camera => c.fitted.camera,
                    SourceId::Smoke => c.fitted.smoke,
                    SourceId::OffGas => c.fitted.offgas,
                };
                assert!(fitted, "{} in {}", m.name(), grp.name);
            }
        }
    }

    #[test]
    fn no_two_inputs_share_a_converter_channel() {
        // Hazard: two inputs on one channel read each other's line.
        let mut all: Vec<(u8, u8)> = TRANSMITTERS
            .iter()
            .chain(LINES.iter())
            .chain(OUTPUT_SENSE.iter())
            .chain([VREFINT].iter())
            .map(|c| (c.adc, c.channel))
            .collect();
        for adc in 1..=3 {
            all.push((adc, SELF_TEST));
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        // And no two pins either (a pin may be converted by several ADCs, but is one signal).
        let mut pins: Vec<&str> = TRANSMITTERS
            .iter()
            .chain(LINES.iter())
            .chain(OUTPUT_SENSE.iter())
            .map(|c| c.pin)
            .chain([SELF_TEST_PIN])
            .collect();
        let n = pins.len();
        pins.sort_unstable();
        pins.dedup();
        assert_eq!(pins.len(), n);
    }
}
