//! The fire-logic configuration file (TOML). Every key is optional and defaults to
//! `Config::default()`; unknown keys and wrong types are errors; the result is validated by
//! `Config::validate` (rejected with the reason, never clamped). Temperatures are in degrees
//! Celsius, off-gas in % LFL, times in milliseconds. Fitted sensors come from the trace header.

use fire_logic::Config;
use toml::{Table, Value};

/// Parses and validates a configuration file's text. `file` is only used in messages.
pub fn parse(text: &str, file: &str) -> Result<Config, String> {
    let table: Table = toml::from_str(text).map_err(|e| format!("{file}: {e}"))?;
    let mut c = Config::default();
    for (key, value) in &table {
        apply(&mut c, key, value).map_err(|e| format!("{file}: `{key}`: {e}"))?;
    }
    c.validate().map_err(|e| format!("{file}: {e}"))?;
    Ok(c)
}

fn tenths(v: &Value, what: &str) -> Result<i32, String> {
    let x = match v {
        Value::Integer(i) => *i as f64,
        Value::Float(f) => *f,
        other => return Err(format!("expected {what}, found {}", other.type_str())),
    };
    let t = (x * 10.0).round();
    if !t.is_finite() || t.abs() > 1.0e8 {
        return Err(format!("expected {what}, found {x} (out of range)"));
    }
    Ok(t as i32)
}

fn uint<T: TryFrom<i64>>(v: &Value, what: &str) -> Result<T, String> {
    match v {
        Value::Integer(i) => {
            T::try_from(*i).map_err(|_| format!("expected {what}, found {i} (out of range)"))
        }
        other => Err(format!("expected {what}, found {}", other.type_str())),
    }
}

fn boolean(v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("expected true or false, found {}", v.type_str()))
}

pub(crate) const SOURCES: [&str; 6] = [
    "bms",
    "rack_temp1",
    "rack_temp2",
    "camera",
    "smoke",
    "offgas",
];

fn apply(c: &mut Config, key: &str, v: &Value) -> Result<(), String> {
    const DEG: &str = "a temperature in C";
    const PCT: &str = "a percentage of LFL";
    const MS: &str = "milliseconds (non-negative integer)";
    match key {
        "prealarm_c" => c.prealarm = tenths(v, DEG)?,
        "stage1_c" => c.stage1 = tenths(v, DEG)?,
        "stage2_c" => c.stage2 = tenths(v, DEG)?,
        "stage3_c" => c.stage3 = tenths(v, DEG)?,
        "reset_max_c" => c.reset_max = tenths(v, DEG)?,
        "ror_rise_c" => c.ror_rise = tenths(v, DEG)?,
        "ror_window_ms" => c.ror_window_ms = uint(v, MS)?,
        "offgas_supervisory_pct" => c.offgas_supervisory = tenths(v, PCT)?,
        "offgas_stage1_pct" => c.offgas_stage1 = tenths(v, PCT)?,
        "offgas_sustained_ms" => c.offgas_sustained_ms = uint(v, MS)?,
        "offgas_ror_rise_pct" => c.offgas_ror_rise = tenths(v, PCT)?,
        "offgas_ror_window_ms" => c.offgas_ror_window_ms = uint(v, MS)?,
        "camera_hotspot_c" => c.camera_hotspot = tenths(v, DEG)?,
        "confirm_samples" => c.confirm_samples = uint(v, "an integer 1..=8")?,
        "period_ms" => match v {
            Value::Table(t) => {
                for (k, pv) in t {
                    let i = SOURCES
                        .iter()
                        .position(|s| s == k)
                        .ok_or_else(|| format!("unknown sensor `{k}` (known: {SOURCES:?})"))?;
                    c.period_ms[i] = uint(pv, MS).map_err(|e| format!("{k}: {e}"))?;
                }
            }
            other => c.period_ms = [uint(other, MS)?; 6],
        },
        "valid_min_c" => c.valid_min = tenths(v, DEG)?,
        "valid_max_c" => c.valid_max = tenths(v, DEG)?,
        "open_code_c" => c.open_code = tenths(v, DEG)?,
        "short_code_c" => c.short_code = tenths(v, DEG)?,
        "max_jump_c" => c.max_jump = tenths(v, DEG)?,
        "partner_band_c" => c.partner_band = tenths(v, DEG)?,
        "coolant_min_fall_c" => c.coolant_min_fall = tenths(v, DEG)?,
        "coolant_after_ms" => c.coolant_after_ms = uint(v, MS)?,
        "gas_min_fall_c" => c.gas_min_fall = tenths(v, DEG)?,
        "gas_after_ms" => c.gas_after_ms = uint(v, MS)?,
        "gas_warning_ms" => c.gas_warning_ms = uint(v, MS)?,
        "isolate_after_ms" => c.isolate_after_ms = uint(v, MS)?,
        "feedback_mismatch_ms" => c.feedback_mismatch_ms = uint(v, MS)?,
        "test_mode_max_ms" => c.test_mode_max_ms = uint(v, MS)?,
        "inhibit_max_ms" => c.inhibit_max_ms = uint(v, MS)?,
        "reset_override_ms" => c.reset_override_ms = uint(v, MS)?,
        "common_cause" => {
            let t = v.as_table().ok_or_else(|| {
                format!("expected a table of sensor = group, found {}", v.type_str())
            })?;
            c.common_cause = [0; 6];
            for (k, gv) in t {
                let i = SOURCES
                    .iter()
                    .position(|s| s == k)
                    .ok_or_else(|| format!("unknown sensor `{k}` (known: {SOURCES:?})"))?;
                c.common_cause[i] =
                    uint(gv, "a group id 0..=15").map_err(|e| format!("{k}: {e}"))?;
            }
        }
        "corroboration" => {
            let t = v
                .as_table()
                .ok_or_else(|| format!("expected a table, found {}", v.type_str()))?;
            for (k, bv) in t {
                let b = boolean(bv).map_err(|e| format!("{k}: {e}"))?;
                match k.as_str() {
                    "second_temperature" => c.corroboration.second_temperature = b,
                    "smoke" => c.corroboration.smoke = b,
                    "offgas" => c.corroboration.offgas = b,
                    _ => {
                        return Err(format!(
                            "unknown rule `{k}` (known: second_temperature, smoke, offgas)"
                        ));
                    }
                }
            }
        }
        _ => return Err("unknown key (see firmware/fire-logic/README.md)".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_defaults() {
        assert_eq!(parse("", "x.toml").unwrap(), Config::default());
    }

    #[test]
    fn keys_are_read_in_their_units() {
        let c = parse(
            "stage1_c = 58.5\ngas_warning_ms = 45000\nperiod_ms = { bms = 250 }\n\
             [corroboration]\nsmoke = false\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.stage1, 585);
        assert_eq!(c.gas_warning_ms, 45_000);
        assert_eq!(c.period_ms[0], 250);
        assert_eq!(c.period_ms[1], 500);
        assert!(!c.corroboration.smoke);
    }

    #[test]
    fn common_cause_groups_are_read_and_validated() {
        let c = parse(
            "common_cause = { rack_temp1 = 1, rack_temp2 = 1 }\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.common_cause, [0, 1, 1, 0, 0, 0]);
        let e = parse("common_cause = { rack_temp1 = 16 }\n", "x.toml").unwrap_err();
        assert!(e.contains("common_cause") && e.contains("15"), "{e}");
        let e = parse("common_cause = { adc = 1 }\n", "x.toml").unwrap_err();
        assert!(e.contains("unknown sensor `adc`"), "{e}");
        let c = parse(
            "offgas_sustained_ms = 120000\noffgas_ror_rise_pct = 3.5\nreset_override_ms = 5000\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(
            (
                c.offgas_sustained_ms,
                c.offgas_ror_rise,
                c.reset_override_ms
            ),
            (120_000, 35, 5_000)
        );
    }

    #[test]
    fn invalid_values_are_rejected_with_the_reason() {
        let e = parse("gas_warning_ms = 90000\n", "x.toml").unwrap_err();
        assert!(e.contains("gas_warning_ms") && e.contains("60"), "{e}");
        let e = parse("stage2_c = 59\n", "x.toml").unwrap_err();
        assert!(e.contains("stage1_c"), "{e}");
        let e = parse("stage9_c = 1\n", "x.toml").unwrap_err();
        assert!(e.contains("stage9_c") && e.contains("unknown"), "{e}");
        let e = parse("stage1_c = \"hot\"\n", "x.toml").unwrap_err();
        assert!(e.contains("expected a temperature"), "{e}");
        let e = parse("gas_warning_ms = -1\n", "x.toml").unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = parse("stage1_c = \n", "x.toml").unwrap_err();
        assert!(e.contains("x.toml"), "{e}");
    }
}
