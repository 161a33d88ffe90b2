"""Reads the simulated dual-feed meter with pymodbus's client, as a third-party check of the
simulator's Modbus TCP server. Usage: python read_meter.py PORT

Prints one line: `feed_a_voltage=<V> ats_source=<n>` (the float is word-swapped, CDAB, at wire
address 0; the ATS source is the u16 at wire address 41).
"""

import struct
import sys

from pymodbus.client import ModbusTcpClient


def main():
    port = int(sys.argv[1])
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=3)
    if not client.connect():
        print("connect failed")
        sys.exit(1)
    rr = client.read_holding_registers(0, count=2, device_id=1)
    if rr.isError():
        print(f"error {rr}")
        sys.exit(1)
    low, high = rr.registers
    voltage = struct.unpack(">f", struct.pack(">HH", high, low))[0]
    rr = client.read_holding_registers(41, count=1, device_id=1)
    if rr.isError():
        print(f"error {rr}")
        sys.exit(1)
    print(f"feed_a_voltage={voltage:.3f} ats_source={rr.registers[0]}")
    client.close()


if __name__ == "__main__":
    main()
