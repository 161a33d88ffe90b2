"""Poll simulated Modbus TCP devices with pymodbus' asyncio client as fast as they answer.

usage: python pymodbus_poller.py --addrs 127.0.0.1:P1,127.0.0.1:P2 --regs 125 --seconds 5

One client per device, one read of `regs` input registers (function 4) from address 0 at a
time per client, all on one asyncio loop (one core). Prints one `key=value` line with the
reads/s, points/s and the CPU seconds this process used while measuring.
"""

import argparse
import asyncio
import inspect
import os
import time

from pymodbus.client import AsyncModbusTcpClient


def cpu_s():
    t = os.times()
    return t.user + t.system


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addrs", required=True)
    ap.add_argument("--regs", type=int, default=125)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    addrs = [x.rsplit(":", 1) for x in a.addrs.split(",") if x]
    clients = []
    for host, port in addrs:
        c = AsyncModbusTcpClient(host, port=int(port), timeout=3, retries=0)
        if not await c.connect():
            raise SystemExit(f"pymodbus: cannot connect to {host}:{port}")
        clients.append(c)
    params = inspect.signature(clients[0].read_input_registers).parameters
    unit_kw = "device_id" if "device_id" in params else "slave"
    state = {"measure": False, "reads": 0, "stop": False, "errors": 0}

    async def poll(c):
        while not state["stop"]:
            rr = await c.read_input_registers(0, count=a.regs, **{unit_kw: 1})
            if rr.isError() or len(rr.registers) != a.regs:
                state["errors"] += 1
            elif state["measure"]:
                state["reads"] += 1

    tasks = [asyncio.create_task(poll(c)) for c in clients]
    await asyncio.sleep(0.5)
    state["measure"] = True
    c0, t0 = cpu_s(), time.monotonic()
    await asyncio.sleep(a.seconds)
    reads, c1, el = state["reads"], cpu_s(), time.monotonic() - t0
    state["stop"] = True
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in clients:
        c.close()
    cpu = max(c1 - c0, 0.01)
    print(
        f"pymodbus devices={len(clients)} regs_per_read={a.regs} seconds={el:.1f} "
        f"reads_per_s={reads / el:.0f} points_per_s={reads * a.regs / el:.0f} "
        f"cpu_s={cpu:.2f} points_per_cpu_s={reads * a.regs / cpu:.0f} errors={state['errors']}"
    )


asyncio.run(main())
