//! Memory footprint: the controller image holds one `RackLogic` per rack in static RAM.

#[test]
fn rack_logic_fits_the_controller_ram_budget() {
    let logic = std::mem::size_of::<fire_logic::RackLogic>();
    let event = std::mem::size_of::<fire_logic::Event>();
    eprintln!(
        "RackLogic: {logic} bytes (event: {event} bytes x {})",
        fire_logic::EVENT_LOG_CAPACITY
    );
    assert!(logic <= 8 * 1024, "RackLogic grew to {logic} bytes");
    // The record fits the smallest non-volatile slot in use (QEMU models 1 KiB of backup SRAM).
    assert_eq!(fire_logic::LatchRecord::LEN, 40);
}
