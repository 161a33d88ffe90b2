//! The Modbus slave: one request frame in, one response frame and the decoded network commands
//! out. The framing (RTU CRC, TCP MBAP header) is rmodbus's; the table access is ours, served from
//! the register image of [`crate::Snapshot`]:
//!
//! - function 4 reads the input registers; function 1 reads the coils;
//! - functions 5 and 15 write coils, and each written coil becomes a [`Command`];
//! - holding registers and discrete inputs do not exist (illegal data address), register writes
//!   (functions 6 and 16) are refused with "illegal function": nothing safety-related is
//!   writable.
//!
//! The same code serves the RTU link on the controller and the TCP server of the simulator.

use rmodbus::consts::ModbusFunction;
use rmodbus::server::{ModbusFrame, Read, Write};
use rmodbus::{ErrorKind, ModbusProto};

use crate::map::{coil, sensor};
use crate::snapshot::{COIL_COUNT, INPUT_COUNT};

/// Largest frame (request or response) handled, in bytes.
pub const MAX_FRAME: usize = 256;

/// A response frame buffer.
pub type Response = heapless::Vec<u8, MAX_FRAME>;

/// An allowed network command, decoded from a coil write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Acknowledge and silence the buzzer.
    SilenceBuzzer,
    /// Enter (`true`) or leave (`false`) test mode.
    TestMode(bool),
    /// Timed inhibit of one faulted sensor ([`sensor`] index) for
    /// [`crate::map::INHIBIT_DURATION_MS`].
    Inhibit {
        /// Sensor index.
        sensor: u16,
    },
}

/// Commands decoded from one frame (a bulk write can carry one per coil).
pub type Commands = heapless::Vec<Command, COIL_COUNT>;

/// Wire protocol of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// Modbus RTU (serial, CRC-16).
    Rtu,
    /// Modbus TCP (MBAP header).
    Tcp,
}

/// Why a frame was dropped without a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Frame too short, too long or inconsistent.
    Broken,
    /// RTU CRC mismatch.
    Crc,
    /// Internal encoding error (response would not fit).
    Encode,
}

impl From<ErrorKind> for FrameError {
    fn from(e: ErrorKind) -> Self {
        match e {
            ErrorKind::FrameCRCError => FrameError::Crc,
            ErrorKind::FrameBroken => FrameError::Broken,
            _ => FrameError::Encode,
        }
    }
}

/// Decodes a coil write into a command (`Ok(None)`: accepted, nothing to do). Errors are the
/// Modbus exception to answer: no such coil, or a value the coil does not accept.
pub fn command_for_coil(address: u16, value: bool) -> Result<Option<Command>, ErrorKind> {
    match address {
        coil::SILENCE_BUZZER => Ok(value.then_some(Command::SilenceBuzzer)),
        coil::TEST_MODE => Ok(Some(Command::TestMode(value))),
        a if (coil::INHIBIT_BASE..coil::INHIBIT_BASE + sensor::COUNT).contains(&a) => {
            if value {
                Ok(Some(Command::Inhibit {
                    sensor: a - coil::INHIBIT_BASE,
                }))
            } else {
                // An inhibit runs out by itself; it cannot be ended or shortened remotely.
                Err(ErrorKind::IllegalDataValue)
            }
        }
        _ => Err(ErrorKind::IllegalDataAddress),
    }
}

/// A Modbus slave answering for one unit id.
#[derive(Debug, Clone, Copy)]
pub struct Slave {
    unit_id: u8,
}

impl Slave {
    /// A slave for `unit_id` (1..=247).
    pub const fn new(unit_id: u8) -> Self {
        Slave { unit_id }
    }

    /// Unit id.
    pub const fn unit_id(&self) -> u8 {
        self.unit_id
    }

    /// Processes one request. Returns `Ok(true)` when `response` holds a frame to send,
    /// `Ok(false)` when nothing must be sent (another unit, or a broadcast), and an error for a
    /// frame to drop silently. Decoded commands are appended to `commands`; they are only
    /// produced for a request that is valid as a whole.
    pub fn process(
        &self,
        proto: Proto,
        request: &[u8],
        inputs: &[u16; INPUT_COUNT],
        coils: &[bool; COIL_COUNT],
        response: &mut Response,
        commands: &mut Commands,
    ) -> Result<bool, FrameError> {
        if request.len() > MAX_FRAME {
            return Err(FrameError::Broken);
        }
        let rm_proto = match proto {
            Proto::Rtu => ModbusProto::Rtu,
            Proto::Tcp => ModbusProto::TcpUdp,
        };
        if proto == Proto::Tcp && !tcp_length_consistent(request) {
            return Err(FrameError::Broken);
        }
        // rmodbus adds the bulk byte count to a u8 before checking it (overflow on counts above
        // 248), so bulk writes are checked here first.
        let start = if proto == Proto::Tcp { 6 } else { 0 };
        // A request never carries the exception bit (0x80): rmodbus would compute its exception
        // reply as `function + 0x80` in a u8 and overflow. Such a frame is not a request at all,
        // so it is dropped like any other broken frame.
        if request.get(start + 1).is_some_and(|&code| code >= 0x80) {
            return Err(FrameError::Broken);
        }
        if let Some(&code) = request.get(start + 1)
            && let Ok(func) = ModbusFunction::try_from(code)
            && !bulk_length_consistent(request, start, func)
        {
            return Err(FrameError::Broken);
        }
        let mut frame = ModbusFrame::new(self.unit_id, request, rm_proto, response);
        frame.parse()?;
        if frame.processing_required {
            if frame.readonly {
                let func = frame.func;
                let result = match frame.get_external_read()? {
                    Read::Words(w) if func == ModbusFunction::GetInputs => {
                        read_words(inputs, w.address, w.count, w.buf)
                    }
                    Read::Bits(b) if func == ModbusFunction::GetCoils => {
                        read_bits(coils, b.address, b.count, b.buf)
                    }
                    _ => Err(ErrorKind::IllegalDataAddress),
                };
                frame.process_external_read(result)?;
            } else {
                let mut decoded = Commands::new();
                let result = match frame.get_external_write()? {
                    Write::Bits(b) => write_bits(b.address, b.count, b.data, &mut decoded),
                    Write::Words(_) => Err(ErrorKind::IllegalFunction),
                };
                let ok = result.is_ok();
                frame.process_external_write(result)?;
                if ok {
                    for c in decoded {
                        // Capacity equals the coil count, and one command per coil at most.
                        let _ = commands.push(c);
                    }
                }
            }
        }
        if !frame.response_required {
            return Ok(false);
        }
        frame.finalize_response()?;
        Ok(true)
    }
}

/// The MBAP length field must match the bytes received.
fn tcp_length_consistent(request: &[u8]) -> bool {
    match request {
        [_, _, _, _, hi, lo, rest @ ..] => {
            usize::from(u16::from_be_bytes([*hi, *lo])) == rest.len()
        }
        _ => false,
    }
}

/// For functions 15/16, the byte count must be covered by the frame and match the quantity.
fn bulk_length_consistent(request: &[u8], start: usize, func: ModbusFunction) -> bool {
    let bits = match func {
        ModbusFunction::SetCoilsBulk => true,
        ModbusFunction::SetHoldingsBulk => false,
        ModbusFunction::SetCoil | ModbusFunction::SetHolding => return request.len() >= start + 6,
        _ => return true,
    };
    let Some(hdr) = request.get(start..start + 7) else {
        return false;
    };
    let count = usize::from(u16::from_be_bytes([hdr[4], hdr[5]]));
    let bytes = usize::from(hdr[6]);
    let expected = if bits { count.div_ceil(8) } else { count * 2 };
    count > 0 && bytes <= 246 && bytes == expected && request.len() >= start + 7 + bytes
}

fn read_words(table: &[u16], address: u16, count: u16, buf: &mut [u8]) -> Result<(), ErrorKind> {
    let start = usize::from(address);
    let end = start + usize::from(count);
    if count == 0 {
        return Err(ErrorKind::IllegalDataValue);
    }
    let words = table.get(start..end).ok_or(ErrorKind::IllegalDataAddress)?;
    for (chunk, w) in buf.chunks_exact_mut(2).zip(words) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
    Ok(())
}

fn read_bits(table: &[bool], address: u16, count: u16, buf: &mut [u8]) -> Result<(), ErrorKind> {
    let start = usize::from(address);
    let end = start + usize::from(count);
    if count == 0 {
        return Err(ErrorKind::IllegalDataValue);
    }
    let bits = table.get(start..end).ok_or(ErrorKind::IllegalDataAddress)?;
    buf.fill(0);
    for (i, &b) in bits.iter().enumerate() {
        if b && let Some(byte) = buf.get_mut(i / 8) {
            *byte |= 1 << (i % 8);
        }
    }
    Ok(())
}

fn write_bits(address: u16, count: u16, data: &[u8], out: &mut Commands) -> Result<(), ErrorKind> {
    if count == 0 || usize::from(address) + usize::from(count) > COIL_COUNT {
        return Err(ErrorKind::IllegalDataAddress);
    }
    for i in 0..count {
        let byte = data
            .get(usize::from(i / 8))
            .ok_or(ErrorKind::IllegalDataValue)?;
        let value = byte & (1 << (i % 8)) != 0;
        if let Some(c) = command_for_coil(address + i, value)? {
            out.push(c).map_err(|_| ErrorKind::IllegalDataValue)?;
        }
    }
    Ok(())
}

/// Modbus CRC-16 (poly 0xA001, init 0xFFFF), as appended little-endian to RTU frames.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::input;

    fn rtu(body: &[u8]) -> heapless::Vec<u8, MAX_FRAME> {
        let mut v: heapless::Vec<u8, MAX_FRAME> = heapless::Vec::from_slice(body).unwrap();
        v.extend_from_slice(&crc16(body).to_le_bytes()).unwrap();
        v
    }

    fn image() -> ([u16; INPUT_COUNT], [bool; COIL_COUNT]) {
        let mut regs = [0u16; INPUT_COUNT];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = 0x100 + i as u16;
        }
        let mut coils = [false; COIL_COUNT];
        coils[1] = true;
        (regs, coils)
    }

    fn run(proto: Proto, req: &[u8]) -> (Result<bool, FrameError>, Response, Commands) {
        let (regs, coils) = image();
        let mut resp = Response::new();
        let mut cmds = Commands::new();
        let r = Slave::new(1).process(proto, req, &regs, &coils, &mut resp, &mut cmds);
        (r, resp, cmds)
    }

    #[test]
    fn crc16_matches_the_modbus_check_value() {
        // "123456789" -> 0x4B37 (CRC-16/MODBUS check value).
        assert_eq!(crc16(b"123456789"), 0x4B37);
    }

    #[test]
    fn reads_input_registers_over_rtu() {
        let (r, resp, cmds) = run(Proto::Rtu, &rtu(&[1, 4, 0, input::STAGE as u8, 0, 2]));
        assert_eq!(r, Ok(true));
        assert!(cmds.is_empty());
        let stage = 0x100 + input::STAGE;
        let expected = rtu(&[
            1,
            4,
            4,
            (stage >> 8) as u8,
            stage as u8,
            (stage >> 8) as u8,
            stage as u8 + 1,
        ]);
        assert_eq!(resp, expected);
    }

    #[test]
    fn reads_the_whole_input_table_in_one_request_over_tcp() {
        let n = input::COUNT;
        let req = [0, 7, 0, 0, 0, 6, 1, 4, 0, 0, (n >> 8) as u8, n as u8];
        let (r, resp, _) = run(Proto::Tcp, &req);
        assert_eq!(r, Ok(true));
        assert_eq!(&resp[..2], &[0, 7]);
        assert_eq!(resp[7], 4);
        assert_eq!(usize::from(resp[8]), 2 * INPUT_COUNT);
        assert_eq!(resp.len(), 9 + 2 * INPUT_COUNT);
    }

    #[test]
    fn reading_past_the_table_is_illegal_data_address() {
        let (r, resp, _) = run(Proto::Rtu, &rtu(&[1, 4, 0, input::COUNT as u8 - 1, 0, 2]));
        assert_eq!(r, Ok(true));
        assert_eq!(&resp[..3], &[1, 0x84, 2]);
    }

    #[test]
    fn function_codes_with_the_exception_bit_are_dropped_not_answered() {
        // Found by fuzzing: rmodbus overflows computing `0x80 + 0x80` for its exception reply.
        for code in [0x80u8, 0x83, 0xff] {
            let (r, resp, cmds) = run(Proto::Rtu, &rtu(&[1, code]));
            assert_eq!(r, Err(FrameError::Broken));
            assert!(resp.is_empty() && cmds.is_empty());
            let (r, resp, _) = run(Proto::Tcp, &[0, 1, 0, 0, 0, 6, 1, code, 0, 0, 0, 1]);
            assert_eq!(r, Err(FrameError::Broken));
            assert!(resp.is_empty());
        }
    }

    #[test]
    fn holding_registers_and_discretes_do_not_exist() {
        let (_, resp, _) = run(Proto::Rtu, &rtu(&[1, 3, 0, 0, 0, 1]));
        assert_eq!(&resp[..3], &[1, 0x83, 2]);
        let (_, resp, _) = run(Proto::Rtu, &rtu(&[1, 2, 0, 0, 0, 1]));
        assert_eq!(&resp[..3], &[1, 0x82, 2]);
    }

    #[test]
    fn register_writes_are_refused_and_produce_no_command() {
        let (r, resp, cmds) = run(Proto::Rtu, &rtu(&[1, 6, 0, input::STAGE as u8, 0, 0]));
        assert_eq!(r, Ok(true));
        assert_eq!(&resp[..3], &[1, 0x86, 1]);
        assert!(cmds.is_empty());
        let (_, resp, cmds) = run(Proto::Rtu, &rtu(&[1, 16, 0, 6, 0, 1, 2, 0, 0]));
        assert_eq!(&resp[..3], &[1, 0x90, 1]);
        assert!(cmds.is_empty());
    }

    #[test]
    fn coil_writes_become_commands() {
        let (r, resp, cmds) = run(
            Proto::Rtu,
            &rtu(&[1, 5, 0, coil::SILENCE_BUZZER as u8, 0xFF, 0]),
        );
        assert_eq!(r, Ok(true));
        assert_eq!(&resp[..6], &[1, 5, 0, 0, 0xFF, 0]);
        assert_eq!(cmds.as_slice(), &[Command::SilenceBuzzer]);
        // Bulk: test mode off, inhibit bms, inhibit rack_temp1.
        let (_, resp, cmds) = run(Proto::Rtu, &rtu(&[1, 15, 0, 1, 0, 3, 1, 0b110]));
        assert_eq!(&resp[..6], &[1, 15, 0, 1, 0, 3]);
        let expected = [
            Command::TestMode(false),
            Command::Inhibit {
                sensor: sensor::BMS,
            },
            Command::Inhibit {
                sensor: sensor::RACK_TEMP1,
            },
        ];
        assert_eq!(cmds.as_slice(), &expected);
        // An inhibit cannot be ended remotely: the whole write is refused.
        let (_, resp, cmds) = run(Proto::Rtu, &rtu(&[1, 15, 0, 1, 0, 3, 1, 0b010]));
        assert_eq!(&resp[..3], &[1, 0x8F, 3]);
        assert!(cmds.is_empty());
    }

    #[test]
    fn a_write_that_runs_past_the_coils_changes_nothing() {
        let (_, resp, cmds) = run(Proto::Rtu, &rtu(&[1, 15, 0, 6, 0, 3, 1, 0b111]));
        assert_eq!(&resp[..3], &[1, 0x8F, 2]);
        assert!(cmds.is_empty());
        let (_, resp, cmds) = run(Proto::Rtu, &rtu(&[1, 5, 0, coil::COUNT as u8, 0xFF, 0]));
        assert_eq!(&resp[..3], &[1, 0x85, 2]);
        assert!(cmds.is_empty());
    }

    #[test]
    fn reads_coil_states() {
        let (_, resp, _) = run(Proto::Rtu, &rtu(&[1, 1, 0, 0, 0, coil::COUNT as u8]));
        assert_eq!(&resp[..4], &[1, 1, 1, 0b10]);
    }

    #[test]
    fn bad_crc_other_unit_and_truncated_frames_get_no_answer() {
        let mut f = rtu(&[1, 4, 0, 0, 0, 1]);
        f[7] ^= 1;
        assert_eq!(run(Proto::Rtu, &f).0, Err(FrameError::Crc));
        assert_eq!(run(Proto::Rtu, &rtu(&[2, 4, 0, 0, 0, 1])).0, Ok(false));
        assert!(run(Proto::Rtu, &[1]).0.is_err());
        assert!(
            run(Proto::Tcp, &[0, 1, 0, 0, 0, 9, 1, 4, 0, 0, 0, 1])
                .0
                .is_err()
        );
        // Bulk write whose byte count exceeds the frame (TCP has no CRC to catch it).
        assert!(
            run(Proto::Tcp, &[0, 1, 0, 0, 0, 8, 1, 15, 0, 0, 0, 8, 200, 1])
                .0
                .is_err()
        );
    }

    #[test]
    fn never_panics_on_arbitrary_frames() {
        // Deterministic pseudo-random frames, both protocols, all lengths up to 40 bytes.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let len = (x % 40) as usize;
            let mut buf = [0u8; 40];
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (x.rotate_left(i as u32 * 7) & 0xFF) as u8;
            }
            buf[0] = 1;
            buf[1] = [1, 2, 3, 4, 5, 6, 15, 16][(x >> 3) as usize % 8];
            let _ = run(Proto::Rtu, &rtu(&buf[..len.min(30)]));
            let mut t = [0u8; 40];
            t[5] = len.saturating_sub(6) as u8;
            t[6..].copy_from_slice(&buf[..34]);
            let _ = run(Proto::Tcp, &t[..len.max(6)]);
        }
    }
}
