"""A pymodbus TCP server behaving like a UPS that refuses reads across unimplemented registers,
for the Modbus interop test of the agent's read splitting.

Usage: python ups_refusing.py PORT LOG

The map, as the UPS manual prints it (1-based register numbers, wire address = number - 1;
profile tests/interop/modbus/ups-refusing-1based.toml):

  holding 1-2   f32  CDAB  230.5      output voltage
  holding 3-4   f32  CDAB  42.25      load %
  holding 5     u16        (missing)  input frequency: listed in the manual, not implemented by
                                      this firmware -> exception 2 to any read that covers it
  holding 6-7   u32  ABCD  123456789  transfer counter (big-endian, unlike the floats)
  holding 8     bits       0b1010     status: bit 0 on battery, bit 1 on bypass, bit 3 alarm
  holding 9-10  f32  CDAB  27.5       battery temperature
  holding 11    u16        12         runtime (minutes)
  holding 12    (hole, not implemented, not in the profile) -> exception 2 too
  holding 13    u16        3          fan status

Every request the server receives is appended to LOG as "<function> <address> <count>" (wire
addresses) before it is checked, so the test sees the refused ones too. Standard input takes
"fix", which implements holding 5 (value 500, 50.0 Hz), answered "OK".

Values are packed with Python's struct module, independently of the Rust decoders.
"""

import asyncio
import logging
import struct
import sys

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator import simruntime


def words_be(fmt, value):
    raw = struct.pack(">" + fmt, value)
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


def cdab(fmt, value):
    return list(reversed(words_be(fmt, value)))


RUNTIMES = []


def main():
    port = int(sys.argv[1])
    log = open(sys.argv[2], "a", encoding="utf-8")
    logging.basicConfig(level=logging.ERROR)

    original = simruntime.SimRuntime._SimRuntime__check_block

    async def logged_check(self, func_code, block_id, address, count, offset, values):
        if self not in RUNTIMES:
            RUNTIMES.append(self)
        log.write(f"{func_code} {address} {count}\n")
        log.flush()
        return await original(self, func_code, block_id, address, count, offset, values)

    simruntime.SimRuntime._SimRuntime__check_block = logged_check

    def regs(address, words):
        return SimData(address, values=words, datatype=DataType.REGISTERS)

    holding = [
        regs(0, cdab("f", 230.5)),
        regs(2, cdab("f", 42.25)),
        SimData(4, count=1, datatype=DataType.INVALID),
        regs(5, words_be("I", 123456789)),
        regs(7, [0b1010]),
        regs(8, cdab("f", 27.5)),
        regs(10, [12]),
        SimData(11, count=1, datatype=DataType.INVALID),
        regs(12, [3]),
    ]
    # Shared registers: the holding registers are the device's only table.
    device = SimDevice(id=1, simdata=holding)

    async def serve():
        server = ModbusTcpServer(device, address=("127.0.0.1", port))
        loop = asyncio.get_running_loop()

        async def commands():
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    return
                if line.strip() == "fix":
                    for rt in RUNTIMES:
                        for start, _, registers, flags in rt.block.values():
                            registers[4 - start] = 500
                            flags[4 - start] = DataType.REGISTERS
                    print("OK", flush=True)

        asyncio.ensure_future(commands())
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
