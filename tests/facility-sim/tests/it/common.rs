//! Helpers shared by the modules.

use dcim_points::{Quality, Value};
use facility_sim::Facility;

/// Reads a point from a device's register bank with the agent's decoder.
pub fn read(f: &Facility, device: &str, point: &str) -> (Option<Value>, Quality) {
    let d = f.devices().find(|d| d.id() == device).unwrap();
    let (shared, profile) = d.modbus().unwrap();
    let p = profile.point(point).unwrap();
    let a = p.modbus().unwrap();
    let bank = shared.bank.lock().unwrap();
    let r = if a.table.is_bits() {
        p.reading_from_bit(bank.bits(a.table, a.address, 1)[0])
    } else {
        p.reading_from_registers(&bank.registers(a.table, a.address, a.wire.registers()))
    };
    (r.value, r.quality)
}

/// A point's number, asserting that its quality is good.
pub fn num(f: &Facility, device: &str, point: &str) -> f64 {
    let (v, q) = read(f, device, point);
    assert_eq!(q, Quality::Good, "{device}/{point}");
    v.unwrap().as_f64().unwrap()
}
