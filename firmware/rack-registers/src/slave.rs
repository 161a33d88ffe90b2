//! The Modbus slave: one request frame in, one response frame and the decoded network commands
//! out, served from the register image of [`crate::Snapshot`]:
//!
//! - function 4 reads the input registers; function 1 reads the coils;
//! - functions 5 and 15 write coils, and each written coil becomes a [`Command`];
//! - holding registers and discrete inputs do not exist (illegal data address), register writes
//!   (functions 6 and 16) are refused with "illegal function": nothing safety-related is
//!   writable.
//!
//! The same code serves the RTU link on the controller and the TCP server of the simulator.
//!
//! The framing (RTU CRC, TCP MBAP header) and the function decoding are written here rather than
//! taken from a general-purpose Modbus crate: the controller image must contain no panic path
//! (`tests/firmware/panic-check.sh` checks the linked image), so every byte is read with a
//! checked access and every length is validated before use. Any malformed frame is dropped
//! without an answer ([`FrameError`]), as the serial line specification asks.
#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]

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

/// Modbus exception codes the slave answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exception {
    /// 1: the function is not supported (or not allowed: register writes).
    IllegalFunction = 1,
    /// 2: the address range does not exist.
    IllegalDataAddress = 2,
    /// 3: a quantity or value the function does not accept.
    IllegalDataValue = 3,
}

/// Function codes handled.
mod function {
    pub const READ_COILS: u8 = 1;
    pub const READ_DISCRETES: u8 = 2;
    pub const READ_HOLDINGS: u8 = 3;
    pub const READ_INPUTS: u8 = 4;
    pub const WRITE_COIL: u8 = 5;
    pub const WRITE_REGISTER: u8 = 6;
    pub const WRITE_COILS: u8 = 15;
    pub const WRITE_REGISTERS: u8 = 16;
}

/// Most registers one read may ask for (Modbus application protocol, 6.4).
const MAX_READ_REGISTERS: u16 = 125;
/// Most coils one read may ask for (6.1).
const MAX_READ_COILS: u16 = 2000;
/// Most coils one write may carry (6.11).
const MAX_WRITE_COILS: u16 = 1968;

/// Decodes a coil write into a command (`Ok(None)`: accepted, nothing to do). Errors are the
/// Modbus exception to answer: no such coil, or a value the coil does not accept.
pub fn command_for_coil(address: u16, value: bool) -> Result<Option<Command>, Exception> {
    match address {
        coil::SILENCE_BUZZER => Ok(value.then_some(Command::SilenceBuzzer)),
        coil::TEST_MODE => Ok(Some(Command::TestMode(value))),
        a if (coil::INHIBIT_BASE..coil::INHIBIT_BASE + sensor::COUNT).contains(&a) => {
            if value {
                Ok(Some(Command::Inhibit {
                    sensor: a.wrapping_sub(coil::INHIBIT_BASE),
                }))
            } else {
                // An inhibit runs out by itself; it cannot be ended or shortened remotely.
                Err(Exception::IllegalDataValue)
            }
        }
        _ => Err(Exception::IllegalDataAddress),
    }
}

/// A Modbus slave answering for one unit id.
#[derive(Debug, Clone, Copy)]
pub struct Slave {
    unit_id: u8,
}

/// Big-endian u16 at `i` of `b`.
fn be16(b: &[u8], i: usize) -> Option<u16> {
    match (b.get(i), b.get(i.wrapping_add(1))) {
        (Some(&hi), Some(&lo)) => Some(u16::from_be_bytes([hi, lo])),
        _ => None,
    }
}

/// What a request asks for, once its PDU length is known to be right.
enum Request<'a> {
    Read {
        function: u8,
        address: u16,
        count: u16,
    },
    WriteCoil {
        address: u16,
        value: u16,
    },
    WriteCoils {
        address: u16,
        count: u16,
        data: &'a [u8],
    },
    /// A function that is answered with an exception whatever its content.
    Refused(Exception),
}

/// Decodes a PDU (function code first). `None`: the PDU is malformed (dropped, no answer).
fn decode(pdu: &[u8]) -> Option<Request<'_>> {
    let (&function, body) = pdu.split_first()?;
    match function {
        function::READ_COILS
        | function::READ_DISCRETES
        | function::READ_HOLDINGS
        | function::READ_INPUTS => (body.len() == 4).then(|| Request::Read {
            function,
            address: be16(body, 0).unwrap_or(0),
            count: be16(body, 2).unwrap_or(0),
        }),
        function::WRITE_COIL => (body.len() == 4).then(|| Request::WriteCoil {
            address: be16(body, 0).unwrap_or(0),
            value: be16(body, 2).unwrap_or(0),
        }),
        function::WRITE_REGISTER => {
            (body.len() == 4).then_some(Request::Refused(Exception::IllegalFunction))
        }
        function::WRITE_COILS | function::WRITE_REGISTERS => {
            let address = be16(body, 0)?;
            let count = be16(body, 2)?;
            let bytes = usize::from(*body.get(4)?);
            let data = body.get(5..)?;
            let expected = if function == function::WRITE_COILS {
                usize::from(count).div_ceil(8)
            } else {
                usize::from(count).saturating_mul(2)
            };
            // The byte count must match the quantity and the bytes received.
            if count == 0 || bytes != expected || data.len() != bytes {
                return None;
            }
            Some(if function == function::WRITE_COILS {
                Request::WriteCoils {
                    address,
                    count,
                    data,
                }
            } else {
                Request::Refused(Exception::IllegalFunction)
            })
        }
        _ => Some(Request::Refused(Exception::IllegalFunction)),
    }
}

/// Appends `bytes` to the response.
fn push(r: &mut Response, bytes: &[u8]) -> Result<(), FrameError> {
    r.extend_from_slice(bytes).map_err(|_| FrameError::Encode)
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
        response.clear();
        if request.len() > MAX_FRAME {
            return Err(FrameError::Broken);
        }
        // `adu` is the unit id and the PDU; `mbap` the TCP transaction and protocol ids.
        let (mbap, adu) = match proto {
            Proto::Rtu => {
                let split = request.len().checked_sub(2).ok_or(FrameError::Broken)?;
                let (adu, crc) = request.split_at_checked(split).ok_or(FrameError::Broken)?;
                if adu.len() < 2 {
                    return Err(FrameError::Broken);
                }
                if be16(crc, 0).map(u16::swap_bytes) != Some(crc16(adu)) {
                    return Err(FrameError::Crc);
                }
                (None, adu)
            }
            Proto::Tcp => {
                let (head, adu) = request.split_at_checked(6).ok_or(FrameError::Broken)?;
                let protocol = be16(head, 2).ok_or(FrameError::Broken)?;
                let length = be16(head, 4).ok_or(FrameError::Broken)?;
                if protocol != 0 || usize::from(length) != adu.len() || adu.len() < 2 {
                    return Err(FrameError::Broken);
                }
                (head.get(..4), adu)
            }
        };
        let (&unit, pdu) = adu.split_first().ok_or(FrameError::Broken)?;
        let broadcast = unit == 0;
        if !broadcast && unit != self.unit_id {
            return Ok(false);
        }
        // A request never carries the exception bit (0x80): such a frame is not a request.
        let function = *pdu.first().ok_or(FrameError::Broken)?;
        if function >= 0x80 {
            return Err(FrameError::Broken);
        }
        let request = decode(pdu).ok_or(FrameError::Broken)?;
        // The PDU of the answer, built after the header.
        let mut body = Response::new();
        let outcome = self.execute(&request, broadcast, inputs, coils, &mut body, commands)?;
        if broadcast {
            // Broadcast writes are applied and never answered; broadcast reads are ignored.
            return Ok(false);
        }
        let mut pdu_out = Response::new();
        match outcome {
            Ok(()) => push(&mut pdu_out, &body)?,
            Err(e) => push(&mut pdu_out, &[function | 0x80, e as u8])?,
        }
        match mbap {
            Some(ids) => {
                let len = u16::try_from(pdu_out.len().saturating_add(1))
                    .map_err(|_| FrameError::Encode)?;
                push(response, ids)?;
                push(response, &len.to_be_bytes())?;
                push(response, &[self.unit_id])?;
                push(response, &pdu_out)?;
            }
            None => {
                push(response, &[self.unit_id])?;
                push(response, &pdu_out)?;
                let crc = crc16(response);
                push(response, &crc.to_le_bytes())?;
            }
        }
        Ok(true)
    }

    /// Runs a decoded request: the answer PDU goes to `out`, or the exception to answer.
    fn execute(
        &self,
        request: &Request<'_>,
        broadcast: bool,
        inputs: &[u16; INPUT_COUNT],
        coils: &[bool; COIL_COUNT],
        out: &mut Response,
        commands: &mut Commands,
    ) -> Result<Result<(), Exception>, FrameError> {
        match *request {
            Request::Refused(e) => Ok(Err(e)),
            Request::Read { .. } if broadcast => Ok(Ok(())),
            Request::Read {
                function,
                address,
                count,
            } => {
                let limit = if function <= function::READ_DISCRETES {
                    MAX_READ_COILS
                } else {
                    MAX_READ_REGISTERS
                };
                if count == 0 || count > limit {
                    return Ok(Err(Exception::IllegalDataValue));
                }
                let start = usize::from(address);
                let end = start.saturating_add(usize::from(count));
                match function {
                    function::READ_INPUTS => {
                        let Some(words) = inputs.get(start..end) else {
                            return Ok(Err(Exception::IllegalDataAddress));
                        };
                        let bytes = u8::try_from(words.len().saturating_mul(2))
                            .map_err(|_| FrameError::Encode)?;
                        push(out, &[function, bytes])?;
                        for w in words {
                            push(out, &w.to_be_bytes())?;
                        }
                        Ok(Ok(()))
                    }
                    function::READ_COILS => {
                        let Some(bits) = coils.get(start..end) else {
                            return Ok(Err(Exception::IllegalDataAddress));
                        };
                        let mut packed = [0u8; COIL_COUNT.div_ceil(8)];
                        for (i, &b) in bits.iter().enumerate() {
                            if b && let Some(byte) = packed.get_mut(i / 8) {
                                *byte |= 1 << (i % 8);
                            }
                        }
                        let n = bits.len().div_ceil(8);
                        let used = packed.get(..n).ok_or(FrameError::Encode)?;
                        let bytes = u8::try_from(n).map_err(|_| FrameError::Encode)?;
                        push(out, &[function, bytes])?;
                        push(out, used)?;
                        Ok(Ok(()))
                    }
                    // Holding registers and discrete inputs do not exist.
                    _ => Ok(Err(Exception::IllegalDataAddress)),
                }
            }
            Request::WriteCoil { address, value } => {
                let on = match value {
                    0xFF00 => true,
                    0x0000 => false,
                    _ => return Ok(Err(Exception::IllegalDataValue)),
                };
                match command_for_coil(address, on) {
                    Err(e) => Ok(Err(e)),
                    Ok(c) => {
                        if let Some(c) = c {
                            commands.push(c).map_err(|_| FrameError::Encode)?;
                        }
                        push(out, &[function::WRITE_COIL])?;
                        push(out, &address.to_be_bytes())?;
                        push(out, &value.to_be_bytes())?;
                        Ok(Ok(()))
                    }
                }
            }
            Request::WriteCoils {
                address,
                count,
                data,
            } => {
                if count > MAX_WRITE_COILS {
                    return Ok(Err(Exception::IllegalDataValue));
                }
                if usize::from(address).saturating_add(usize::from(count)) > COIL_COUNT {
                    return Ok(Err(Exception::IllegalDataAddress));
                }
                // Decode every coil first: the write is applied only if all are accepted.
                let mut decoded = Commands::new();
                for i in 0..count {
                    let bit = data
                        .get(usize::from(i / 8))
                        .is_some_and(|byte| byte & (1 << (i % 8)) != 0);
                    match command_for_coil(address.saturating_add(i), bit) {
                        Err(e) => return Ok(Err(e)),
                        Ok(Some(c)) => {
                            if decoded.push(c).is_err() {
                                return Ok(Err(Exception::IllegalDataValue));
                            }
                        }
                        Ok(None) => {}
                    }
                }
                // Capacity equals the coil count, and one command per coil at most.
                commands
                    .extend_from_slice(&decoded)
                    .map_err(|_| FrameError::Encode)?;
                push(out, &[function::WRITE_COILS])?;
                push(out, &address.to_be_bytes())?;
                push(out, &count.to_be_bytes())?;
                Ok(Ok(()))
            }
        }
    }
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
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::arithmetic_side_effects
)]
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
        // Found by fuzzing (with the earlier third-party parser): `0x80 + 0x80` overflowed while
        // computing the exception reply.
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
    fn broadcast_writes_are_applied_without_an_answer_and_broadcast_reads_ignored() {
        // Hazard: answering a broadcast makes every unit on the RS-485 line talk at once.
        let (r, resp, cmds) = run(
            Proto::Rtu,
            &rtu(&[0, 5, 0, coil::SILENCE_BUZZER as u8, 0xFF, 0]),
        );
        assert_eq!(r, Ok(false));
        assert!(resp.is_empty());
        assert_eq!(cmds.as_slice(), &[Command::SilenceBuzzer]);
        let (r, resp, cmds) = run(Proto::Rtu, &rtu(&[0, 4, 0, 0, 0, 1]));
        assert_eq!(r, Ok(false));
        assert!(resp.is_empty() && cmds.is_empty());
    }

    #[test]
    fn quantities_and_values_outside_the_specification_are_illegal_data_values() {
        // Count 0 and count 126 registers; coil value neither 0xFF00 nor 0x0000.
        let (_, resp, _) = run(Proto::Rtu, &rtu(&[1, 4, 0, 0, 0, 0]));
        assert_eq!(&resp[..3], &[1, 0x84, 3]);
        let (_, resp, _) = run(Proto::Rtu, &rtu(&[1, 4, 0, 0, 0, 126]));
        assert_eq!(&resp[..3], &[1, 0x84, 3]);
        let (_, resp, cmds) = run(Proto::Rtu, &rtu(&[1, 5, 0, 0, 0x12, 0x34]));
        assert_eq!(&resp[..3], &[1, 0x85, 3]);
        assert!(cmds.is_empty(), "a malformed value never becomes a command");
    }

    #[test]
    fn unknown_functions_get_illegal_function_over_both_protocols() {
        let (r, resp, _) = run(Proto::Rtu, &rtu(&[1, 0x2B, 0x0E, 1, 0]));
        assert_eq!(r, Ok(true));
        let expected = rtu(&[1, 0xAB, 1]);
        assert_eq!(resp, expected);
        let (r, resp, _) = run(Proto::Tcp, &[0, 9, 0, 0, 0, 2, 1, 0x07]);
        assert_eq!(r, Ok(true));
        assert_eq!(resp.as_slice(), &[0, 9, 0, 0, 0, 3, 1, 0x87, 1]);
    }

    #[test]
    fn frames_with_extra_or_missing_bytes_are_dropped() {
        // A read with one byte too many (CRC valid over all of it), one too few, and a TCP
        // frame with a non-zero protocol id.
        assert_eq!(
            run(Proto::Rtu, &rtu(&[1, 4, 0, 0, 0, 1, 0])).0,
            Err(FrameError::Broken)
        );
        assert_eq!(
            run(Proto::Rtu, &rtu(&[1, 4, 0, 0, 0])).0,
            Err(FrameError::Broken)
        );
        assert_eq!(
            run(Proto::Tcp, &[0, 1, 0, 1, 0, 6, 1, 4, 0, 0, 0, 1]).0,
            Err(FrameError::Broken)
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
