"""Captures BACnet/IP datagrams produced by bacpypes3, for the golden-byte tests of the
dcim-bacnet codec (edge-agent/bacnet/tests/it/golden.rs).

Part A: a bacpypes3 device answers requests sent from a raw UDP socket; its responses are
printed. Part B: a bacpypes3 client sends requests to a raw UDP socket; the requests are
printed. Output: one "name hex" line per datagram. Loopback only.

Usage: python capture_golden.py
"""

import asyncio
import socket

from bacpypes3.ipv4.app import NormalApplication
from bacpypes3.local.analog import AnalogInputObject
from bacpypes3.local.binary import BinaryValueObject
from bacpypes3.local.device import DeviceObject
from bacpypes3.pdu import Address, IPv4Address
from bacpypes3.vendor import get_vendor_info


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def recv(sock, timeout=2.0):
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.sock_recv(sock, 2048), timeout)


async def part_a() -> None:
    port = free_port()
    device = DeviceObject(
        objectIdentifier=("device", 1234),
        objectName="golden",
        vendorIdentifier=999,
        maxApduLengthAccepted=1476,
        segmentationSupported="no-segmentation",
    )
    app = NormalApplication(device, IPv4Address(f"127.0.0.1:{port}"))
    ai = AnalogInputObject(
        objectIdentifier=("analog-input", 5),
        objectName="ai5",
        presentValue=72.3,
        statusFlags=[0, 0, 0, 0],
        eventState="normal",
        outOfService=False,
        units="degrees-celsius",
        covIncrement=1.0,
    )
    app.add_object(ai)
    app.add_object(
        BinaryValueObject(
            objectIdentifier=("binary-value", 2),
            objectName="bv2",
            presentValue="active",
            statusFlags=[0, 0, 0, 0],
            eventState="normal",
            outOfService=False,
        )
    )
    # the application binds its socket in a task: let it run
    await asyncio.sleep(0.5)
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    raw.setblocking(False)
    dest = ("127.0.0.1", port)
    requests = [
        # Who-Is 1234..1234
        ("i_am", "0100" "1008" "0a04d2" "1a04d2"),
        # Who-Is without range (the answer is an I-Am)
        ("i_am_any", "0100" "1008"),
        # ReadProperty analog-input,5 present-value, invoke id 1
        ("rp_ack", "0104" "0005010c" "0c00000005" "1955"),
        # ReadProperty of an unknown object analog-input,99 -> Error
        ("rp_error", "0104" "0005020c" "0c00000063" "1955"),
        # RPM analog-input,5 {present-value, units[9999], property 9999}
        #     binary-value,2 {present-value}
        ("rpm_ack", "0104" "0005030e" "0c00000005" "1e" "0955" "0975" "1a270f" "0a270f" "1f"
                    "0c01400002" "1e" "0955" "1f"),
        # SubscribeCOV pid 18, analog-input,5, unconfirmed, lifetime 60
        ("cov_ack", "0104" "00050405" "0912" "1c00000005" "2900" "393c"),
    ]
    for name, hx in requests:
        body = bytes.fromhex(hx)
        raw.sendto(bytes([0x81, 0x0A]) + (len(body) + 4).to_bytes(2, "big") + body, dest)
        data = await recv(raw)
        print(name, data.hex(), flush=True)
        if name == "cov_ack":
            data = await recv(raw)
            print("cov_initial", data.hex(), flush=True)
    ai.presentValue = 80.0
    data = await recv(raw)
    print("cov_change", data.hex(), flush=True)
    raw.close()
    app.close()


async def part_b() -> None:
    port = free_port()
    device = DeviceObject(
        objectIdentifier=("device", 4321),
        objectName="golden-client",
        vendorIdentifier=999,
    )
    app = NormalApplication(device, IPv4Address(f"127.0.0.1:{port}"))
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    raw.setblocking(False)
    target = Address(f"127.0.0.1:{raw.getsockname()[1]}")
    vendor = get_vendor_info(999)
    await asyncio.sleep(0.5)

    app.who_is(1000, 2000, target, timeout=0.2)
    print("who_is", (await recv(raw)).hex(), flush=True)

    task = asyncio.ensure_future(app.read_property(target, "analog-input,5", "present-value"))
    print("rp_request", (await recv(raw)).hex(), flush=True)
    task.cancel()

    task = asyncio.ensure_future(
        app.read_property_multiple(
            target,
            ["analog-input,5", ["present-value", "status-flags"], "binary-value,2", ["present-value"]],
            vendor_info=vendor,
        )
    )
    print("rpm_request", (await recv(raw)).hex(), flush=True)
    task.cancel()

    async def subscribe():
        async with app.change_of_value(target, "analog-input,5", 7, True, 300):
            await asyncio.sleep(5)

    task = asyncio.ensure_future(subscribe())
    print("subscribe_cov_request", (await recv(raw)).hex(), flush=True)
    task.cancel()
    await asyncio.sleep(0.1)
    raw.close()
    app.close()


async def main() -> None:
    await part_a()
    await part_b()


if __name__ == "__main__":
    asyncio.run(main())
