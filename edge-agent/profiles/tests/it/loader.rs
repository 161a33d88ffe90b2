//! The loader: every shipped profile loads, and each kind of mistake is reported with file, line,
//! field and what was expected.

use dcim_profiles::*;
use std::path::Path;

fn profiles_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../device-profiles")
}

#[test]
fn every_shipped_profile_loads() {
    let profiles = load_dir(&profiles_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert!(profiles.len() >= 7, "found {} profiles", profiles.len());
    for name in [
        "rack-bms-li-ion",
        "ups-modular-3ph",
        "power-meter-dual-feed-ats",
        "thermal-camera-battery-room",
        "chiller-water-cooled",
        "buffer-tank",
        "crah-chilled-water",
    ] {
        assert!(profiles.iter().any(|p| p.name == name), "{name} missing");
    }
}

/// Hazard: a driver handed another protocol's profile would read its points as garbage; it
/// refuses it, naming the profile and both protocols.
#[test]
fn a_profile_for_another_protocol_is_refused_by_name() {
    let p = load_file(&profiles_dir().join("power-meter-dual-feed-ats.toml")).unwrap();
    assert_eq!(p.require_protocol(Protocol::Modbus), Ok(()));
    assert_eq!(
        p.require_protocol(Protocol::Snmp),
        Err(format!("profile `{}` is for modbus, not snmp", p.name))
    );
}

#[test]
fn shipped_meter_profile_has_word_swapped_floats_on_wire_addresses() {
    let p = load_file(&profiles_dir().join("power-meter-dual-feed-ats.toml")).unwrap();
    let v = p.point("feed_b_voltage").unwrap();
    let a = v.modbus().unwrap();
    assert_eq!(a.address, 20);
    assert_eq!(a.order, Order::CDAB);
    assert_eq!(a.wire, WireType::F32);
    assert_eq!(v.labels.get("feed").map(String::as_str), Some("B"));
    // 1-based BMS: register 1 is wire address 0.
    let bms = load_file(&profiles_dir().join("rack-bms-li-ion.toml")).unwrap();
    assert_eq!(
        bms.point("cell_temp_max")
            .unwrap()
            .modbus()
            .unwrap()
            .address,
        0
    );
}

const GOOD: &str = r#"[profile]
name = "x"
protocol = "modbus"

[modbus]
address_base = 1

[[point]]
id = "v"
role = "feed.voltage"
labels = { feed = "A" }
table = "holding"
register = 101
type = "f32"
order = "CDAB"
"#;

/// Loads GOOD with one line replaced (or appended) and returns the single error.
fn err_with(find: &str, replace: &str) -> ProfileError {
    let text = if find.is_empty() {
        format!("{GOOD}{replace}\n")
    } else {
        assert!(GOOD.contains(find), "{find}");
        GOOD.replacen(find, replace, 1)
    };
    let errs = load_str("dev.toml", &text).expect_err("should fail").0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = errs.into_iter().next().unwrap();
    assert_eq!(e.file, "dev.toml");
    e
}

#[test]
fn good_profile_loads_with_base_applied() {
    let p = load_str("dev.toml", GOOD).unwrap();
    let a = p.points[0].modbus().unwrap();
    assert_eq!(a.address, 100);
    assert_eq!(p.points[0].unit, "V", "unit defaults to the role's");
    assert_eq!(p.comm, Comm::default());
}

#[test]
fn toml_syntax_error_has_line() {
    let e = err_with("type = \"f32\"", "type = \"f32");
    assert_eq!(e.line, 14);
    assert!(!e.message.is_empty());
}

#[test]
fn wrong_value_type_names_field_and_line() {
    let e = err_with("register = 101", "register = \"one hundred\"");
    assert_eq!(e.line, 13);
    assert_eq!(e.field, "register");
    assert!(
        e.message.contains("integer") || e.message.contains("i64"),
        "{e}"
    );
}

#[test]
fn unknown_field_is_rejected_with_line() {
    let e = err_with("order = \"CDAB\"", "ordr = \"CDAB\"");
    assert_eq!(e.line, 15);
    assert!(e.message.contains("unknown field `ordr`"), "{e}");
}

#[test]
fn missing_required_field() {
    let e = err_with("id = \"v\"\n", "");
    assert!(e.message.contains("missing field `id`"), "{e}");
    assert!(e.line >= 8, "{e}");
}

#[test]
fn unknown_protocol() {
    let e = err_with("protocol = \"modbus\"", "protocol = \"profibus\"");
    assert_eq!((e.line, e.field.as_str()), (3, "profile.protocol"));
    assert!(e.message.contains("modbus, bacnet, mqtt"), "{e}");
}

#[test]
fn missing_address_base() {
    let e = err_with("address_base = 1", "max_gap = 4");
    assert_eq!(e.field, "modbus.address_base");
    assert_eq!(e.line, 5);
    assert!(e.message.contains("address_base = 1"), "{e}");
}

#[test]
fn bad_address_base() {
    let e = err_with("address_base = 1", "address_base = 40001");
    assert_eq!((e.line, e.field.as_str()), (6, "modbus.address_base"));
    assert!(e.message.contains("expected 0 or 1"), "{e}");
}

#[test]
fn unknown_role() {
    let e = err_with("role = \"feed.voltage\"", "role = \"feed.volts\"");
    assert_eq!((e.line, e.field.as_str()), (10, "point[0].role"));
    assert!(e.message.contains("unknown role `feed.volts`"), "{e}");
}

#[test]
fn role_label_missing() {
    let e = err_with("labels = { feed = \"A\" }\n", "");
    assert_eq!(e.field, "point[0].labels");
    assert!(e.message.contains("needs the label `feed`"), "{e}");
}

#[test]
fn unit_must_match_role() {
    let e = err_with("", "unit = \"kV\"");
    assert_eq!((e.line, e.field.as_str()), (16, "point[0].unit"));
    assert!(e.message.contains("expected `V`"), "{e}");
}

#[test]
fn unknown_wire_type() {
    let e = err_with("type = \"f32\"", "type = \"float\"");
    assert_eq!((e.line, e.field.as_str()), (14, "point[0].type"));
    assert!(e.message.contains("u16, i16, u32"), "{e}");
}

#[test]
fn unknown_order() {
    let e = err_with("order = \"CDAB\"", "order = \"BACD\"");
    assert_eq!((e.line, e.field.as_str()), (15, "point[0].order"));
    assert!(e.message.contains("ABCD, CDAB, BADC, DCBA"), "{e}");
}

#[test]
fn unknown_table() {
    let e = err_with("table = \"holding\"", "table = \"holdings\"");
    assert_eq!((e.line, e.field.as_str()), (12, "point[0].table"));
    assert!(e.message.contains("holding, input, coil, discrete"), "{e}");
}

#[test]
fn register_zero_with_base_one() {
    let e = err_with("register = 101", "register = 0");
    assert_eq!((e.line, e.field.as_str()), (13, "point[0].register"));
    assert!(
        e.message.contains("out of range with address_base = 1"),
        "{e}"
    );
}

#[test]
fn register_past_the_end() {
    let e = err_with("register = 101", "register = 65536");
    assert_eq!(e.field, "point[0].register");
    assert!(e.message.contains("expected 1 to 65535"), "{e}");
}

#[test]
fn bit_type_needs_bit_index_in_range() {
    let e = err_with("type = \"f32\"", "type = \"bit\"");
    assert_eq!((e.line, e.field.as_str()), (14, "point[0].bit"));
    let e = err_with("type = \"f32\"", "type = \"bit\"\nbit = 16");
    assert_eq!((e.line, e.field.as_str()), (15, "point[0].bit"));
    assert!(e.message.contains("0 to 15"), "{e}");
}

#[test]
fn string_type_needs_length() {
    let e = err_with("type = \"f32\"", "type = \"string\"");
    assert_eq!(e.field, "point[0].length");
}

#[test]
fn coil_table_only_holds_bools() {
    let e = err_with("table = \"holding\"", "table = \"coil\"");
    assert_eq!((e.line, e.field.as_str()), (14, "point[0].type"));
    assert!(e.message.contains("expected bool"), "{e}");
}

#[test]
fn bad_poll_class() {
    let e = err_with("", "poll = \"sometimes\"");
    assert_eq!((e.line, e.field.as_str()), (16, "point[0].poll"));
    assert!(e.message.contains("fast, normal or slow"), "{e}");
}

#[test]
fn bad_enum_key() {
    let e = err_with("", "enum = { off = \"x\" }");
    assert_eq!((e.line, e.field.as_str()), (16, "point[0].enum"));
    assert!(e.message.contains("not an integer"), "{e}");
}

#[test]
fn bad_health_range_and_negative_deadband() {
    let e = err_with("", "health = { min = 10, max = 0 }");
    assert_eq!((e.line, e.field.as_str()), (16, "point[0].health"));
    let e = err_with("", "deadband = -1");
    assert_eq!((e.line, e.field.as_str()), (16, "point[0].deadband"));
}

#[test]
fn bad_alarm_priority() {
    let e = err_with("", "alarm = { high = 250, priority = 4 }");
    assert_eq!((e.line, e.field.as_str()), (16, "point[0].alarm"));
}

#[test]
fn comm_out_of_range() {
    let e = err_with("[modbus]", "[comm]\ntimeout_ms = 5\n\n[modbus]");
    assert_eq!((e.line, e.field.as_str()), (6, "comm.timeout_ms"));
    assert!(e.message.contains("100 to 60000"), "{e}");
}

#[test]
fn duplicate_point_id() {
    let dup = "\n[[point]]\nid = \"v\"\nrole = \"feed.current\"\nlabels = { feed = \"A\" }\ntable = \"holding\"\nregister = 103\n";
    let e = err_with("", dup);
    assert_eq!((e.line, e.field.as_str()), (18, "point[1].id"));
    assert!(e.message.contains("unique"), "{e}");
}

#[test]
fn field_of_another_protocol() {
    let e = err_with("", "topic = \"a/b\"");
    assert_eq!((e.line, e.field.as_str()), (16, "point[0].topic"));
    assert!(e.message.contains("mqtt field"), "{e}");
}

#[test]
fn several_errors_are_all_reported() {
    let text = GOOD
        .replace("type = \"f32\"", "type = \"float\"")
        .replace("role = \"feed.voltage\"", "role = \"nope\"");
    let errs = load_str("dev.toml", &text).unwrap_err();
    assert_eq!(errs.0.len(), 2);
    let shown = errs.to_string();
    assert!(
        shown.contains("dev.toml:10: field `point[0].role`"),
        "{shown}"
    );
    assert!(
        shown.contains("dev.toml:14: field `point[0].type`"),
        "{shown}"
    );
}

#[test]
fn bacnet_and_mqtt_points() {
    let bacnet = r#"[profile]
name = "c"
protocol = "bacnet"
[[point]]
id = "t"
role = "chiller.supply_temp"
object = "analog-inputs"
instance = 1
"#;
    let e = load_str("c.toml", bacnet).unwrap_err().0.remove(0);
    assert_eq!((e.line, e.field.as_str()), (7, "point[0].object"));
    let mqtt = r#"[profile]
name = "m"
protocol = "mqtt"
[[point]]
id = "t"
role = "camera.region_max_temp"
labels = { region = "r1" }
topic = "thermal/+/x"
pointer = "max"
"#;
    let errs = load_str("m.toml", mqtt).unwrap_err().0;
    assert_eq!(errs.len(), 2);
    assert_eq!(
        (errs[0].line, errs[0].field.as_str()),
        (8, "point[0].topic")
    );
    assert_eq!(
        (errs[1].line, errs[1].field.as_str()),
        (9, "point[0].pointer")
    );
    let with_modbus =
        "[profile]\nname = \"m\"\nprotocol = \"bacnet\"\n[modbus]\naddress_base = 0\n";
    let errs = load_str("m.toml", with_modbus).unwrap_err().0;
    assert!(errs.iter().any(|e| e.field == "modbus"), "{errs:?}");
}

#[test]
fn point_readings_apply_scale_enum_health_and_invert() {
    let p = load_str(
        "dev.toml",
        r#"[profile]
name = "x"
protocol = "modbus"
[modbus]
address_base = 0
[[point]]
id = "t"
role = "battery.cell_temp.max"
table = "input"
register = 0
type = "i16"
scale = 0.1
health = { min = -40, max = 200, invalid = [32767] }
[[point]]
id = "src"
role = "ats.source"
table = "holding"
register = 1
enum = { 0 = "none", 1 = "A", 2 = "B" }
[[point]]
id = "open"
role = "feed.breaker_closed"
labels = { feed = "A" }
table = "holding"
register = 2
invert = true
"#,
    )
    .unwrap();
    use dcim_points::{Quality, Value};
    let t = &p.points[0];
    assert_eq!(
        t.reading_from_registers(&[0xFF38]).value,
        Some(Value::Number(-20.0))
    );
    let r = t.reading_from_registers(&[32767]);
    assert_eq!((r.value, r.quality), (None, Quality::Bad));
    let r = t.reading_from_registers(&[2500]);
    assert_eq!(
        (r.value, r.quality),
        (Some(Value::Number(250.0)), Quality::Bad)
    );
    let s = &p.points[1];
    assert_eq!(
        s.reading_from_registers(&[2]).value,
        Some(Value::Text("B".into()))
    );
    assert_eq!(s.reading_from_registers(&[7]).quality, Quality::Bad);
    let o = &p.points[2];
    assert_eq!(
        o.reading_from_registers(&[1]).value,
        Some(Value::Bool(false))
    );
    assert_eq!(
        o.reading_from_registers(&[0]).value,
        Some(Value::Bool(true))
    );
}

#[test]
fn readme_example_loads_and_its_error_example_is_real() {
    let readme = std::fs::read_to_string(profiles_dir().join("README.md"))
        .expect("device-profiles/README.md");
    let start = readme.find("```toml\n").expect("a toml example") + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let example = &readme[start..end];
    let p = load_str("README.md example", example).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.points.len(), 2);
    assert_eq!(p.points[1].modbus().unwrap().address, 100);
    // The error quoted at the top of the README is what the loader prints.
    let bad = example.replace("type = \"u16\"", "type = \"float\"");
    let e = load_str("device-profiles/ups-modular-3ph.toml", &bad)
        .unwrap_err()
        .to_string();
    assert!(readme.contains(&e), "README should quote:\n{e}");
}

#[test]
fn errors_after_multibyte_text_do_not_panic() {
    let text = "# Kühlung – °C\n[profile]\nname = \"é\"\nprotocol = \"modbus\"\n[modbus]\naddress_base = 1\n[[point]]\nid = \"ü\"\nrole = \"x\"\nregister = \"é\"\n";
    let e = load_str("u.toml", text).unwrap_err();
    assert_eq!(e.0[0].line, 10);
    assert_eq!(e.0[0].field, "register");
}

/// Hazard: IF-MIB reports a down link as 2 (and "lower layer down" as 7); read as "non-zero is
/// true" such a link would count as up and hide a lost network path.
#[test]
fn true_values_decide_a_binary_role_from_an_enumerated_raw_value() {
    let text = r#"
[profile]
name = "t"
protocol = "modbus"
[modbus]
address_base = 0
[[point]]
id = "up"
role = "link.up"
labels = { link = "a" }
table = "holding"
register = 0
true_values = [1]
"#;
    let p = dcim_profiles::load_str("t.toml", text).unwrap();
    let pt = &p.points[0];
    for (raw, up) in [(1, true), (2, false), (7, false), (0, false)] {
        let r = pt.reading(&dcim_profiles::Raw::Unsigned(raw));
        assert_eq!(r.value, Some(dcim_points::Value::Bool(up)), "raw {raw}");
    }
    let bad = text.replace("role = \"link.up\"", "role = \"link.speed_gbps\"");
    let e = dcim_profiles::load_str("t.toml", &bad).unwrap_err();
    assert!(e.to_string().contains("true_values"), "{e}");
}

/// Hazard: a technician lowering `max_registers_per_read` to work around a fussy device gets a
/// refusal that does not say why or what to do instead; or, with a text point, cannot lower it
/// at all and the whole device goes unread.
#[test]
fn a_number_longer_than_the_read_limit_is_refused_with_the_rule_text_is_read_in_parts() {
    let text = r#"
[profile]
name = "t"
protocol = "modbus"
[modbus]
address_base = 1
max_registers_per_read = 2
[[point]]
id = "model"
role = "device.firmware"
table = "holding"
register = 20
type = "string"
length = 16
[[point]]
id = "energy"
role = "custom.energy"
table = "holding"
register = 40
type = "u64"
"#;
    let e = dcim_profiles::load_str("t.toml", text).unwrap_err();
    assert_eq!(e.0.len(), 1, "the text point is accepted: {e}");
    let s = &e.0[0];
    assert_eq!((s.line, s.field.as_str()), (19, "point[1].type"));
    assert!(s.message.contains("takes 4 registers"), "{}", s.message);
    assert!(s.message.contains("at least 4"), "{}", s.message);
    assert!(s.message.contains("splits a refused read"), "{}", s.message);
    let only_text = text.split("[[point]]\nid = \"energy\"").next().unwrap();
    assert!(dcim_profiles::load_str("t.toml", only_text).is_ok());
}
