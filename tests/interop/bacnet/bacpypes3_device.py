"""A bacpypes3 BACnet/IP device for the dcim-bacnet interop tests.

Usage: python bacpypes3_device.py --port PORT [--instance N]

Binds 127.0.0.1:PORT and hosts a device object plus analog-input,1 (temperature),
analog-value,1, binary-input,1 and binary-value,1. Prints "READY" on stdout once serving.
Reads commands from stdin, one per line:
    set <object-type>,<instance> <value>     e.g. "set analog-input,1 42.5"
    quit
and answers each with "OK" or "ERR <reason>".
"""

import argparse
import asyncio
import sys

from bacpypes3.ipv4.app import NormalApplication
from bacpypes3.local.analog import AnalogInputObject, AnalogValueObject
from bacpypes3.local.binary import BinaryInputObject, BinaryValueObject
from bacpypes3.local.device import DeviceObject
from bacpypes3.pdu import IPv4Address


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--instance", type=int, default=599)
    args = parser.parse_args()

    device = DeviceObject(
        objectIdentifier=("device", args.instance),
        objectName="bacpypes3-peer",
        vendorIdentifier=999,
        maxApduLengthAccepted=1476,
        segmentationSupported="no-segmentation",
    )
    app = NormalApplication(device, IPv4Address(f"127.0.0.1:{args.port}"))
    ai = AnalogInputObject(
        objectIdentifier=("analog-input", 1),
        objectName="supply-temp",
        presentValue=7.5,
        statusFlags=[0, 0, 0, 0],
        eventState="normal",
        outOfService=False,
        units="degrees-celsius",
        covIncrement=0.5,
    )
    av = AnalogValueObject(
        objectIdentifier=("analog-value", 1),
        objectName="setpoint",
        presentValue=6.0,
        statusFlags=[0, 0, 0, 0],
        eventState="normal",
        outOfService=False,
        units="degrees-celsius",
        covIncrement=0.1,
    )
    bi = BinaryInputObject(
        objectIdentifier=("binary-input", 1),
        objectName="chiller-running",
        presentValue="active",
        statusFlags=[0, 0, 0, 0],
        eventState="normal",
        outOfService=False,
        polarity="normal",
    )
    bv = BinaryValueObject(
        objectIdentifier=("binary-value", 1),
        objectName="enable",
        presentValue="inactive",
        statusFlags=[0, 0, 0, 0],
        eventState="normal",
        outOfService=False,
    )
    objects = {}
    for obj in (ai, av, bi, bv):
        app.add_object(obj)
        objects[str(obj.objectIdentifier[0]) + "," + str(obj.objectIdentifier[1])] = obj

    # the application binds its socket in a task: let it run before announcing readiness
    await asyncio.sleep(0.3)
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "quit":
            break
        parts = line.split()
        if len(parts) != 3 or parts[0] != "set":
            print("ERR bad command", flush=True)
            continue
        obj = objects.get(parts[1])
        if obj is None:
            print("ERR unknown object " + parts[1], flush=True)
            continue
        if parts[1].startswith("binary"):
            obj.presentValue = parts[2]
        else:
            obj.presentValue = float(parts[2])
        print("OK", flush=True)
    app.close()


if __name__ == "__main__":
    asyncio.run(main())
