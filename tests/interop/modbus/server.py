"""A pymodbus TCP server holding a small meter-like register map, for the Modbus interop test.

Usage: python server.py PORT

The map (documented with 1-based register numbers, as in device-profiles/ with address_base = 1;
wire address = number - 1) uses word-swapped (CDAB) 32/64-bit values:

  holding 1-2   f32  CDAB  230.5        (feed voltage)
  holding 3-4   f32  CDAB  -12.25
  holding 5-6   u32  CDAB  123456789
  holding 7     i16        -405         (scale 0.1 -> -40.5)
  holding 8     bits       0b101        (bit 0 and bit 2 set)
  holding 10-13 u64  CDAB  0x0102030405060708
  holding 20-23 string "PYMODBUS"
  holding 30-33 f64  ABCD  1234.5678
  input   1     u16        2215         (scale 0.1 -> 221.5)
  coil    1     true, coil 2 false
  discrete 3    true

Values are packed here with Python's struct module, independently of the Rust encoders.
"""

import asyncio
import logging
import struct
import sys

from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import StartAsyncTcpServer


def words_be(fmt, value):
    raw = struct.pack(">" + fmt, value)
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


def cdab(fmt, value):
    return list(reversed(words_be(fmt, value)))


def build_holding():
    regs = [0] * 64  # index = wire address
    def put(number, words):
        for i, w in enumerate(words):
            regs[number - 1 + i] = w
    put(1, cdab("f", 230.5))
    put(3, cdab("f", -12.25))
    put(5, cdab("I", 123456789))
    put(7, words_be("h", -405))
    put(8, [0b101])
    put(10, cdab("Q", 0x0102030405060708))
    put(20, [int.from_bytes(b"PYMODBUS"[i : i + 2], "big") for i in range(0, 8, 2)])
    put(30, words_be("d", 1234.5678))
    return regs


def main():
    port = int(sys.argv[1])
    logging.basicConfig(level=logging.ERROR)
    holding = build_holding()
    inputs = [0] * 8
    inputs[0] = 2215
    coils = [False] * 8
    coils[0] = True
    discrete = [False] * 8
    discrete[2] = True
    # pymodbus data blocks are addressed from 1 for wire address 0 (its historical offset).
    device = ModbusDeviceContext(
        hr=ModbusSequentialDataBlock(1, holding),
        ir=ModbusSequentialDataBlock(1, inputs),
        co=ModbusSequentialDataBlock(1, coils),
        di=ModbusSequentialDataBlock(1, discrete),
    )
    context = ModbusServerContext(devices=device, single=True)
    asyncio.run(StartAsyncTcpServer(context=context, address=("127.0.0.1", port)))


if __name__ == "__main__":
    main()
