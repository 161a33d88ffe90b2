"""bacpypes3 reads a simulated chiller of facility-sim (third-party check of the BACnet plant).

Usage: python read_chiller.py --port PORT --device-port DPORT --instance N

Binds 127.0.0.1:PORT, sends Who-Is to the chiller at 127.0.0.1:DPORT, then reads with
ReadPropertyMultiple the objects of device-profiles/chiller-water-cooled.toml that the simulator
hosts. Prints one line: running=<0|1> fault=<0|1> supply=<degC> load_kw=<kW> i_am=<instance>.
"""

import argparse
import asyncio

from bacpypes3.ipv4.app import NormalApplication
from bacpypes3.local.device import DeviceObject
from bacpypes3.pdu import Address, IPv4Address


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--device-port", type=int, required=True)
    parser.add_argument("--instance", type=int, required=True)
    args = parser.parse_args()
    me = DeviceObject(
        objectIdentifier=("device", 4194001),
        objectName="facility-sim-probe",
        vendorIdentifier=999,
    )
    app = NormalApplication(me, IPv4Address(f"127.0.0.1:{args.port}"))
    await asyncio.sleep(0.3)
    target = Address(f"127.0.0.1:{args.device_port}")
    i_ams = await app.who_is(args.instance, args.instance, target, timeout=3)
    i_am = i_ams[0].iAmDeviceIdentifier[1] if i_ams else -1
    results = await app.read_property_multiple(
        target,
        [
            "binary-value,1", ["present-value"],
            "binary-input,2", ["present-value"],
            "analog-input,1", ["present-value"],
            "analog-input,4", ["present-value"],
        ],
    )
    v = {str(o): val for (o, _p, _i, val) in results}
    print(
        f"running={int(v['binary-value,1'])} fault={int(v['binary-input,2'])} "
        f"supply={float(v['analog-input,1']):.1f} load_kw={float(v['analog-input,4']):.0f} "
        f"i_am={i_am}",
        flush=True,
    )
    app.close()


if __name__ == "__main__":
    asyncio.run(main())
