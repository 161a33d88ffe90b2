//! Logic configuration of each board revision: which sources the hardware has. The pin map
//! itself is in the board support module of the binary (`src/stm32f407.rs`).

use fire_logic::Config;

/// STM32F407 board, revision A: two rack temperature transmitters (4-20 mA on ADC1 IN0/IN1),
/// smoke detector relay, contactor and blanket feedbacks, local switches on digital inputs.
/// The BMS and the thermal camera reach the edge agent directly on this revision, and there is
/// no off-gas detector input, so those sources are not fitted here.
pub fn stm32f407_rev_a() -> Config {
    let mut c = Config::default();
    c.fitted.bms = false;
    c.fitted.camera = false;
    c.fitted.offgas = false;
    c.fitted.feedback = [true, true, false, false, false, false];
    c
}

/// 4-20 mA temperature transmitter on a 150 ohm shunt, 12-bit ADC at 3.3 V: 4 mA = -50.0 C,
/// 20 mA = +150.0 C. Below 3.6 mA the loop is open, above 21 mA it is shorted (NAMUR NE 43);
/// those readings become the configured open/short codes, which the logic reports as faults.
pub fn transmitter_tenths(raw: u16, open_code: i32, short_code: i32) -> i32 {
    const RAW_4MA: i32 = 745; // 0.6 V
    const RAW_20MA: i32 = 3723; // 3.0 V
    const RAW_OPEN: i32 = 670; // 3.6 mA
    const RAW_SHORT: i32 = 3909; // 21 mA
    let raw = i32::from(raw);
    if raw < RAW_OPEN {
        open_code
    } else if raw > RAW_SHORT {
        short_code
    } else {
        -500 + (raw - RAW_4MA) * 2000 / (RAW_20MA - RAW_4MA)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_configs_are_valid() {
        stm32f407_rev_a().validate().unwrap();
    }

    #[test]
    fn transmitter_scale_and_loop_faults() {
        let c = stm32f407_rev_a();
        assert_eq!(transmitter_tenths(745, c.open_code, c.short_code), -500);
        assert_eq!(transmitter_tenths(3723, c.open_code, c.short_code), 1500);
        assert_eq!(transmitter_tenths(2234, c.open_code, c.short_code), 500);
        assert_eq!(
            transmitter_tenths(0, c.open_code, c.short_code),
            c.open_code
        );
        assert_eq!(
            transmitter_tenths(4095, c.open_code, c.short_code),
            c.short_code
        );
    }
}
