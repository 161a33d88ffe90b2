"""bacpypes3 as a BACnet/IP client of the dcim-bacnet device server (interop test peer).

Usage: python bacpypes3_client.py --port PORT --device-port DPORT --instance N

Binds 127.0.0.1:PORT, then against the device at 127.0.0.1:DPORT: Who-Is, ReadProperty,
ReadPropertyMultiple, and a COV subscription to analog-input,11. Prints one JSON object per
line: {"step": ..., ...}. After the initial COV notification it prints the step "subscribed"
and waits (up to 10 s) for one more notification, printed as step "cov".
"""

import argparse
import asyncio
import json

from bacpypes3.apdu import ErrorRejectAbortNack
from bacpypes3.basetypes import ErrorType
from bacpypes3.ipv4.app import NormalApplication
from bacpypes3.local.device import DeviceObject
from bacpypes3.pdu import Address, IPv4Address
from bacpypes3.primitivedata import ObjectIdentifier


def out(**kw) -> None:
    print(json.dumps(kw), flush=True)


def plain(v):
    if isinstance(v, ErrorRejectAbortNack):
        return "error:" + str(v)
    if isinstance(v, ErrorType):
        return "error:" + str(v.errorClass) + ":" + str(v.errorCode)
    if isinstance(v, (int, float, str)):
        return v
    if isinstance(v, list):
        return [plain(x) for x in v]
    return str(v)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--device-port", type=int, required=True)
    parser.add_argument("--instance", type=int, required=True)
    args = parser.parse_args()

    me = DeviceObject(
        objectIdentifier=("device", 4194000),
        objectName="bacpypes3-probe",
        vendorIdentifier=999,
    )
    app = NormalApplication(me, IPv4Address(f"127.0.0.1:{args.port}"))
    await asyncio.sleep(0.3)
    target = Address(f"127.0.0.1:{args.device_port}")
    dev = f"device,{args.instance}"

    i_ams = await app.who_is(args.instance, args.instance, target, timeout=3)
    out(
        step="who_is",
        i_ams=[
            {
                "device": str(i.iAmDeviceIdentifier),
                "max_apdu": int(i.maxAPDULengthAccepted),
                "segmentation": str(i.segmentationSupported),
                "vendor": int(i.vendorID),
            }
            for i in i_ams
        ],
    )

    for prop in ("object-name", "vendor-identifier", "object-list", "protocol-version"):
        v = await app.read_property(target, dev, prop)
        out(step="read_property", object=dev, property=prop, value=plain(v))
    v = await app.read_property(target, dev, "object-list", 0)
    out(step="read_property", object=dev, property="object-list[0]", value=plain(v))
    v = await app.read_property(target, "analog-input,11", "present-value")
    out(step="read_property", object="analog-input,11", property="present-value", value=plain(v))
    try:
        v = await app.read_property(target, "analog-input,4000", "present-value")
    except ErrorRejectAbortNack as e:  # bacpypes3 raises the BACnet error
        v = "error:" + str(e)
    out(step="read_property", object="analog-input,4000", property="present-value", value=plain(v))

    results = await app.read_property_multiple(
        target,
        [
            "analog-input,101", ["present-value", "units", "status-flags", "object-name"],
            "binary-input,101", ["present-value"],
            "analog-input,4000", ["present-value"],
        ],
    )
    out(
        step="rpm",
        results=[
            {"object": str(o), "property": str(p), "index": i, "value": plain(v)}
            for (o, p, i, v) in results
        ],
    )

    # the monitored object must be an ObjectIdentifier: bacpypes3 compares it with the one in
    # each notification
    monitored = ObjectIdentifier("analog-input,11")
    async with app.change_of_value(target, monitored, None, False, 60) as scm:
        prop, value = await asyncio.wait_for(scm.get_value(), 5)
        out(step="subscribed", property=str(prop), value=plain(value))
        while True:
            prop, value = await asyncio.wait_for(scm.get_value(), 10)
            if str(prop) == "present-value":
                out(step="cov", property=str(prop), value=plain(value))
                break
    out(step="done")
    app.close()


if __name__ == "__main__":
    asyncio.run(main())
