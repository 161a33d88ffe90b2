"""Reads the rack controller simulator with pymodbus (a third-party Modbus TCP master).

Usage: read_controller.py HOST PORT [COUNT]
Reads the whole input-register table (COUNT registers, default 91: register map v2) in one request, writes the silence coil, tries a register
write (must be refused), and prints one JSON object with what it saw.
"""
import json
import sys

from pymodbus.client import ModbusTcpClient


def main() -> int:
    host, port = sys.argv[1], int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 91
    client = ModbusTcpClient(host, port=port, timeout=3)
    if not client.connect():
        print(json.dumps({"error": "connect failed"}))
        return 1
    try:
        regs = client.read_input_registers(0, count=count, device_id=1)
        if regs.isError():
            print(json.dumps({"error": f"read inputs: {regs}"}))
            return 1
        coil = client.write_coil(0, True, device_id=1)
        refused = client.write_register(6, 0, device_id=1)
        coils = client.read_coils(0, count=8, device_id=1)
        status = client.read_input_registers(8, count=1, device_id=1)
        holding = client.read_holding_registers(0, count=1, device_id=1)
        print(json.dumps({
            "registers": list(regs.registers),
            "coil_write_ok": not coil.isError(),
            "register_write_exception": getattr(refused, "exception_code", None),
            "coils": [bool(b) for b in coils.bits[:8]] if not coils.isError() else None,
            "status_after": status.registers[0] if not status.isError() else None,
            "holding_exception": getattr(holding, "exception_code", None),
        }))
        return 0
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
