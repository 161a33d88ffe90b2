//! Modbus: the rack controller's slave frame handling (RTU and TCP) and the register decoders
//! of the device profiles.

use dcim_points::Value;
use dcim_profiles::{Order, Profile, Protocol, WireType, decode_registers, encode_registers};
use rack_registers::slave::{MAX_FRAME, crc16};
use rack_registers::{COIL_COUNT, Commands, INPUT_COUNT, Proto, Response, Slave};
use std::sync::OnceLock;

/// `data[0]`: bit 0 = TCP (else RTU), bit 1 = fix up the RTU CRC / MBAP length so that the
/// frame passes the integrity check; `data[1]`: seed of the register image; rest: the frame.
pub fn rack_slave(data: &[u8]) {
    let [flags, seed, rest @ ..] = data else {
        return;
    };
    if crate::skip_known_bugs() && request_function(*flags, rest).is_some_and(|f| f >= 0x80) {
        // Known: rmodbus computes the exception code `function + 0x80` in u8, which overflows
        // (panics with overflow checks) for request function codes >= 0x80 that
        // `Slave::process` passes through. Reproducers: tests/fuzz/regressions/modbus_rack_slave.
        return;
    }
    let proto = if flags & 1 == 1 {
        Proto::Tcp
    } else {
        Proto::Rtu
    };
    let mut request = rest.to_vec();
    if flags & 2 == 2 {
        match proto {
            Proto::Rtu => {
                let crc = crc16(&request);
                request.extend_from_slice(&crc.to_le_bytes());
            }
            Proto::Tcp if request.len() >= 6 => {
                let len = (request.len() - 6) as u16;
                request[4..6].copy_from_slice(&len.to_be_bytes());
            }
            Proto::Tcp => {}
        }
    }
    let mut inputs = [0u16; INPUT_COUNT];
    let mut state = u32::from(*seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    for r in inputs.iter_mut() {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *r = (state >> 16) as u16;
    }
    let mut coils = [false; COIL_COUNT];
    for (i, c) in coils.iter_mut().enumerate() {
        *c = (u32::from(*seed) >> (i % 8)) & 1 == 1;
    }
    let slave = Slave::new(1);
    let mut response = Response::new();
    let mut commands = Commands::new();
    match slave.process(
        proto,
        &request,
        &inputs,
        &coils,
        &mut response,
        &mut commands,
    ) {
        Ok(true) => {
            assert!(!response.is_empty(), "a response to send is empty");
            assert!(response.len() <= MAX_FRAME);
            match proto {
                Proto::Rtu => {
                    let n = response.len();
                    assert!(n >= 4, "RTU response shorter than address+function+CRC");
                    let crc = u16::from_le_bytes([response[n - 2], response[n - 1]]);
                    assert_eq!(crc, crc16(&response[..n - 2]), "RTU response CRC");
                    assert_eq!(response[0], 1, "RTU response from another unit id");
                }
                Proto::Tcp => {
                    assert!(response.len() >= 8);
                    let len = u16::from_be_bytes([response[4], response[5]]) as usize;
                    assert_eq!(len, response.len() - 6, "MBAP length of the response");
                    assert_eq!(
                        response[..4],
                        request[..4],
                        "transaction/protocol id echoed"
                    );
                }
            }
            // Commands come only from a coil write (function 5 or 15) that was answered
            // normally (no exception bit).
            if !commands.is_empty() {
                let at = if proto == Proto::Tcp { 7 } else { 1 };
                let func = response[at];
                assert!(
                    func == 5 || func == 15,
                    "commands decoded from function {func}"
                );
            }
        }
        Ok(false) => {}
        Err(_) => assert!(commands.is_empty(), "commands from a dropped frame"),
    }
}

/// The function code of the request in `rest` (after the MBAP header for TCP).
fn request_function(flags: u8, rest: &[u8]) -> Option<u8> {
    rest.get(if flags & 1 == 1 { 7 } else { 1 }).copied()
}

const PROFILES: &[(&str, &str)] = &[
    (
        "buffer-tank.toml",
        include_str!("../../../device-profiles/buffer-tank.toml"),
    ),
    (
        "chiller-water-cooled.toml",
        include_str!("../../../device-profiles/chiller-water-cooled.toml"),
    ),
    (
        "crah-chilled-water.toml",
        include_str!("../../../device-profiles/crah-chilled-water.toml"),
    ),
    (
        "power-meter-dual-feed-ats.toml",
        include_str!("../../../device-profiles/power-meter-dual-feed-ats.toml"),
    ),
    (
        "rack-bms-li-ion.toml",
        include_str!("../../../device-profiles/rack-bms-li-ion.toml"),
    ),
    (
        "rack-controller.toml",
        include_str!("../../../device-profiles/rack-controller.toml"),
    ),
    (
        "thermal-camera-battery-room.toml",
        include_str!("../../../device-profiles/thermal-camera-battery-room.toml"),
    ),
    (
        "ups-modular-3ph.toml",
        include_str!("../../../device-profiles/ups-modular-3ph.toml"),
    ),
];

/// The shipped device profiles, loaded once.
pub fn shipped_profiles() -> &'static [Profile] {
    static P: OnceLock<Vec<Profile>> = OnceLock::new();
    P.get_or_init(|| {
        PROFILES
            .iter()
            .map(|(file, text)| {
                dcim_profiles::load_str(file, text)
                    .unwrap_or_else(|e| panic!("shipped profile {file} does not load: {e:?}"))
            })
            .collect()
    })
}

fn regs(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// `data[0]` selects the decoder: even = a point of a shipped Modbus profile (`data[1]` picks
/// the point) through its full scaling/health path; odd = `decode_registers` with a wire type
/// and order the loader accepts (`data[1]`, `data[2]`). The rest is the register words.
pub fn profile_registers(data: &[u8]) {
    let [mode, sel, sel2, rest @ ..] = data else {
        return;
    };
    let words = regs(rest);
    if mode & 1 == 0 {
        let points: Vec<_> = shipped_profiles()
            .iter()
            .filter(|p| p.protocol == Protocol::Modbus)
            .flat_map(|p| p.points.iter())
            .collect();
        let point = points[usize::from(*sel) % points.len()];
        let reading = if point.modbus().is_some_and(|a| a.table.is_bits()) {
            point.reading_from_bit(sel2 & 1 == 1)
        } else {
            point.reading_from_registers(&words)
        };
        if let Some(Value::Number(x)) = reading.value {
            assert!(x.is_finite(), "non-finite reading {x} of {}", point.id);
        }
        return;
    }
    let wire = match sel % 11 {
        0 => WireType::U16,
        1 => WireType::I16,
        2 => WireType::U32,
        3 => WireType::I32,
        4 => WireType::U64,
        5 => WireType::I64,
        6 => WireType::F32,
        7 => WireType::F64,
        8 => WireType::Bool,
        // The loader accepts `bit = 0..15`.
        9 => WireType::Bit(sel2 % 16),
        _ => WireType::String(u16::from(*sel2) + 1),
    };
    let order = Order {
        byte_swap: sel2 & 0x40 != 0,
        word_swap: sel2 & 0x80 != 0,
    };
    let Ok(raw) = decode_registers(&words, wire, order) else {
        assert!(words.len() < usize::from(wire.registers()));
        return;
    };
    // Integers of up to 32 bits survive a round trip through encode_registers.
    use dcim_profiles::Raw;
    let value = match (&raw, wire) {
        (Raw::Unsigned(u), WireType::U16 | WireType::U32) => *u as f64,
        (Raw::Signed(i), WireType::I16 | WireType::I32) => *i as f64,
        _ => return,
    };
    let back = encode_registers(value, wire, order);
    assert_eq!(
        decode_registers(&back, wire, order).ok(),
        Some(raw),
        "round trip of {wire:?} {order:?}"
    );
}
