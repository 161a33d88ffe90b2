"""The board image, byte for byte as built for the STM32F407, on QEMU's netduinoplus2
(STM32F405), talked to over its RS-485 USART by pymodbus' RTU framer.

QEMU models this MCU's core, SysTick, NVIC and USARTs, but not its GPIO, backup SRAM, reset
flags, PWR or watchdogs, and its ADC never completes a conversion. So the image meets a board
whose converters never answer, whose backup regulator never becomes ready and whose reset
cause cannot be read: every one of those must show up as a trouble, never as healthy values,
and the fire logic must push toward safety (battery isolated after losing every temperature).

Usage: python modbus_rtu_qemu.py IMAGE.elf  (exit status 0 when every check passed)
"""

import socket
import subprocess
import sys
import time

from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.pdu.bit_message import ReadCoilsRequest, WriteSingleCoilRequest
from pymodbus.pdu.register_message import (
    ReadInputRegistersRequest,
    WriteSingleRegisterRequest,
)

# Register map v3 (firmware/rack-registers/src/map.rs), as wire addresses.
MAP_VERSION = 3
MAP_VERSION_VALUE = 3
ACTIONS = 7
STATUS = 8
TROUBLES = 9
RACK_TEMP1 = 14
RACK_TEMP2 = 15
SMOKE = 19
BOARD_TROUBLES = 24
LINE_FAULT = 26
INPUTS_BLOCKED = 30
OUTPUT_MISMATCH = 31
VREFINT_RAW = 34
RESET_CAUSE = 35
BOOT_COUNT = 36
CYCLE_MAX_US = 40
STACK_PEAK = 42
ROOM_GAS_RELEASE = 43
EVENT_WINDOW_LEN = 23
EVENT_WINDOW = 44
EVENT_ENTRY_REGS = 6
COUNT = 92
KIND_CONTROLLER_RESET = 29
STATE_NOT_FITTED = 3

TROUBLE_BOARD = 1 << 27
BT_ADC = 1 << 2
BT_LINE = 1 << 3
BT_OUTPUT_MISMATCH = 1 << 5
BT_NV_RETENTION = 1 << 7
BT_UNEXPECTED_RESET = 1 << 8
RC_UNKNOWN = 1 << 11
RC_NV_LOST = 1 << 12
ACTION_CONTACTOR_OPEN = 1 << 0
STATUS_ISOLATED = 1 << 5
NO_VALUE = 0x8000
SMOKE_FAULT = 2
STACK_BYTES = 48 * 1024
# The published stack peak must leave a quarter of the stack free.
STACK_BOUND = STACK_BYTES * 3 // 4

failures = 0


def check(ok, what):
    global failures
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures += 1


class Link:
    """Modbus RTU over the emulated USART2 (QEMU connects its serial port to us)."""

    def __init__(self, conn):
        self.conn = conn
        self.framer = FramerRTU(DecodePDU(is_server=False))

    def drain(self):
        """Drops a late answer to an earlier request (an answer belongs to its request only)."""
        self.conn.settimeout(0.05)
        try:
            while self.conn.recv(4096):
                pass
        except socket.timeout:
            pass

    def ask(self, request, attempts=5):
        """Sends `request` until it is answered. The image's clock assumes the board's 16 MHz,
        but QEMU runs SysTick at 168 MHz: its 2 ms inter-frame silence is 0.19 ms of wall
        time, and a request that QEMU delivers with a longer pause between two bytes is (by
        the RTU rules) two broken frames, dropped without an answer. Every request here is
        idempotent, so it is simply repeated."""
        for _ in range(attempts):
            pdu = self.ask_once(request)
            if pdu is not None:
                return pdu
        return None

    def ask_once(self, request, timeout=1.0):
        request.dev_id = 1
        self.drain()
        self.conn.sendall(self.framer.buildFrame(request))
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.conn.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.conn.recv(512)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
            used, pdu = self.framer.handleFrame(data, 1, 0)
            if pdu is not None:
                if pdu.function_code & 0x7F != request.function_code:
                    return None
                return pdu
        return None

    def registers(self):
        pdu = self.ask(ReadInputRegistersRequest(address=0, count=COUNT))
        if pdu is None or isinstance(pdu, ExceptionResponse):
            return None
        return list(pdu.registers)


def u32(regs, a):
    return (regs[a] << 16) | regs[a + 1]


def main():
    image = sys.argv[1]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    qemu = subprocess.Popen(
        [
            "qemu-system-arm", "-machine", "netduinoplus2", "-nographic",
            "-monitor", "none", "-serial", "null",
            "-serial", f"tcp:127.0.0.1:{port}", "-kernel", image,
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        server.settimeout(20)
        conn, _ = server.accept()
        link = Link(conn)
        regs = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            regs = link.registers()
            # The image needs a few cycles to confirm its line states.
            if regs is not None and regs[MAP_VERSION] == MAP_VERSION_VALUE and regs[LINE_FAULT] != 0:
                break
            time.sleep(0.1)
        check(regs is not None and regs[MAP_VERSION] == MAP_VERSION_VALUE,
              "the board image answers a Modbus RTU read of all %d input registers "
              "(map version %s)" % (COUNT, regs and regs[MAP_VERSION]))
        if regs is None:
            return
        time.sleep(1.0)  # about 100 cycles: the stack watch has scanned
        regs = link.registers()
        board = u32(regs, BOARD_TROUBLES)
        check(board & BT_ADC != 0 and u32(regs, TROUBLES) & TROUBLE_BOARD != 0,
              "converters that never answer are a board trouble (board troubles %#x)" % board)
        check(regs[RACK_TEMP1] == NO_VALUE and regs[RACK_TEMP2] == NO_VALUE
              and regs[VREFINT_RAW] == 0,
              "no conversion is never a temperature: rack temps %#06x %#06x"
              % (regs[RACK_TEMP1], regs[RACK_TEMP2]))
        check(regs[LINE_FAULT] == 0x0FFF and board & BT_LINE != 0
              and regs[SMOKE] == SMOKE_FAULT,
              "every line-monitored input unreadable is a line fault naming it "
              "(line_fault %#06x, smoke state %d)" % (regs[LINE_FAULT], regs[SMOKE]))
        check(regs[INPUTS_BLOCKED] & 0b110 == 0b110,
              "manual release and reset key are held off: never seen normal since power-up "
              "(inputs_blocked %#06x)" % regs[INPUTS_BLOCKED])
        check(regs[OUTPUT_MISMATCH] == 0x7F and board & BT_OUTPUT_MISMATCH != 0,
              "outputs without read-back are reported unverified (output_mismatch %#06x)"
              % regs[OUTPUT_MISMATCH])
        check(board & BT_NV_RETENTION != 0,
              "a backup regulator that never gets ready is a trouble (NV retention)")
        cause = regs[RESET_CAUSE]
        check(cause & RC_UNKNOWN != 0 and board & BT_UNEXPECTED_RESET != 0,
              "a reset without readable flags is unknown and unexpected (cause %#06x, "
              "boot count %d)" % (cause, u32(regs, BOOT_COUNT)))
        n = regs[EVENT_WINDOW_LEN]
        oldest = EVENT_WINDOW + (n - 1) * EVENT_ENTRY_REGS if n else None
        check(oldest is not None and regs[oldest + 4] & 0xFF == KIND_CONTROLLER_RESET
              and regs[oldest + 5] == cause and regs[oldest + 4] >> 8 == 3,
              "the boot's reset cause is the first event of the window, as a trouble "
              "(code %s, detail %s)" % (oldest and hex(regs[oldest + 4]),
                                        oldest and hex(regs[oldest + 5])))
        check(regs[ROOM_GAS_RELEASE] == STATE_NOT_FITTED,
              "the room's gas release, not wired to board rev B, reads not wired, never "
              "'not operated' (state %d)" % regs[ROOM_GAS_RELEASE])
        peak = regs[STACK_PEAK]
        check(0 < peak <= STACK_BOUND,
              "stack peak %d bytes of %d, bound %d" % (peak, STACK_BYTES, STACK_BOUND))
        print("MEASURE board_image_stack_peak_bytes=%d" % peak)
        print("MEASURE board_image_cycle_max_us=%d (QEMU wall clock, not a timing)"
              % u32(regs, CYCLE_MAX_US))
        ack = link.ask(WriteSingleCoilRequest(address=0, bits=[True]))
        regs = link.registers() or regs
        check(ack is not None and not isinstance(ack, ExceptionResponse)
              and u32(regs, BOARD_TROUBLES) & BT_UNEXPECTED_RESET == 0
              and regs[RESET_CAUSE] == cause,
              "the acknowledge coil clears the unexpected-reset trouble, the cause stays")
        coils = link.ask(ReadCoilsRequest(address=0, count=8))
        check(coils is not None and not isinstance(coils, ExceptionResponse)
              and coils.bits[0],
              "coils read back (silenced %s)" % (coils and getattr(coils, "bits", [None])[0]))
        refused = link.ask(WriteSingleRegisterRequest(address=6, registers=[0]))
        check(isinstance(refused, ExceptionResponse) and refused.exception_code == 1,
              "a register write is refused with illegal function (exception %s)"
              % getattr(refused, "exception_code", None))
        # Every temperature lost: the logic isolates the battery after 60 s of firmware time
        # (SysTick runs 10.5 times fast on the emulated 168 MHz clock: under 6 s here).
        deadline = time.monotonic() + 30
        isolated = False
        while time.monotonic() < deadline and not isolated:
            regs = link.registers() or regs
            isolated = (regs[ACTIONS] & ACTION_CONTACTOR_OPEN != 0
                        and regs[STATUS] & STATUS_ISOLATED != 0)
            time.sleep(0.2)
        check(isolated,
              "with every temperature source lost the battery is isolated (actions %#06x, "
              "status %#06x)" % (regs[ACTIONS], regs[STATUS]))
    finally:
        qemu.kill()
        out, _ = qemu.communicate(timeout=10)
        server.close()
        if failures and out:
            print(out.decode(errors="replace")[-2000:])
    print("board image on QEMU: %s" % ("all checks passed" if failures == 0
                                       else "%d check(s) failed" % failures))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report any harness error as a failure
        print("FAIL harness error: %r" % e)
        failures += 1
    sys.exit(1 if failures else 0)
