"""A DC-09 receiver for interop tests, built on pysiaalarm's own server classes.

Usage: receiver.py --account 1234 [--key KEY] [--udp] [--port N] [--clock-offset SECONDS]
                   [--log FILE] [--strict-cid]

Binds 127.0.0.1 (port 0 = ephemeral), prints "PORT <n>" on stdout once listening, and appends
one JSON line per message it parsed to --log: the time it answered (ack_unix_ms, Unix ms), the
response it sent (ACK/NAK/DUH/null), message
type, sequence, account, code, zone (ri), unit, ADM-CID fields, encrypted flag and timestamp.
--clock-offset shifts the receiver's clock (to make the transmitter's clock look skewed).
--strict-cid answers DUH to an ADM-CID event code missing from pysiaalarm's own ADM-CID table
(115, 116, 118, 200-206, 383-389 among them), as a receiving centre does whose code table lacks
it; plain pysiaalarm maps such a code to "YN" (invalid data) and ACKs it.
Exit code 3 when pysiaalarm cannot be imported.
"""
import argparse
import asyncio
import datetime as _dt
import json
import sys
import time

try:
    import pysiaalarm.event as sia_event
    from pysiaalarm import SIAAccount
    from pysiaalarm.aio.server import SIAServerTCP, SIAServerUDP
    from pysiaalarm.utils import Counter
except ImportError as exc:  # pragma: no cover
    print(f"pysiaalarm not importable: {exc}", file=sys.stderr)
    sys.exit(3)


def skew_clock(seconds: float) -> None:
    """Make pysiaalarm's event module see a clock shifted by `seconds`."""

    class SkewedDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return _dt.datetime.now(tz) + _dt.timedelta(seconds=seconds)

    sia_event.datetime = SkewedDatetime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--account", default="1234")
    ap.add_argument("--key", default=None)
    ap.add_argument("--udp", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--clock-offset", type=float, default=0.0)
    ap.add_argument("--log", default=None)
    ap.add_argument("--strict-cid", action="store_true")
    args = ap.parse_args()
    if args.strict_cid:
        from pysiaalarm.data.data import ADM_MAPPING

        original_parse_adm = sia_event.SIAEvent.parse_adm

        def strict_parse_adm(self):
            original_parse_adm(self)
            if self.event_type not in ADM_MAPPING:
                self.code = None  # no code: pysiaalarm answers DUH

        sia_event.SIAEvent.parse_adm = strict_parse_adm
    if args.clock_offset:
        skew_clock(args.clock_offset)

    log = open(args.log, "a", encoding="utf-8") if args.log else None

    def record(event) -> None:
        if log is None or event is None:
            return
        resp = None
        try:
            resp = event.response.value if event.response else None
        except Exception:  # noqa: BLE001
            resp = None
        row = {
            # when the response was decided (it is sent right after), Unix ms
            "ack_unix_ms": int(time.time() * 1000),
            "response": resp,
            "type": getattr(event.message_type, "value", None),
            "sequence": getattr(event, "sequence", None),
            "account": getattr(event, "account", None),
            "code": getattr(event, "code", None),
            "ri": getattr(event, "ri", None),
            "unit": getattr(event, "message", None),
            "qualifier": getattr(event, "event_qualifier", None),
            "event_type": getattr(event, "event_type", None),
            "partition": getattr(event, "partition", None),
            "encrypted": getattr(event, "encrypted", None),
            "timestamp": str(getattr(event, "timestamp", None)),
        }
        log.write(json.dumps(row) + "\n")
        log.flush()

    accounts = {args.account.upper(): SIAAccount(args.account, args.key)}

    async def on_event(_event) -> None:
        return None

    class LoggingTCP(SIAServerTCP):
        def parse_and_check_event(self, data):
            ev = super().parse_and_check_event(data)
            record(ev)
            return ev

    class LoggingUDP(SIAServerUDP):
        def connection_made(self, transport):
            # pysiaalarm 3.2.2 asserts isinstance(transport, asyncio.DatagramTransport), which
            # the selector datagram transport of CPython 3.11 is not, and then never replies.
            self.transport = transport

        def parse_and_check_event(self, data):
            ev = super().parse_and_check_event(data)
            record(ev)
            return ev

    async def run() -> None:
        loop = asyncio.get_running_loop()
        if args.udp:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: LoggingUDP(accounts, on_event, Counter()),
                local_addr=("127.0.0.1", args.port),
            )
            port = transport.get_extra_info("sockname")[1]
        else:
            server = LoggingTCP(accounts, on_event, Counter())
            srv = await asyncio.start_server(server.handle_line, "127.0.0.1", args.port)
            port = srv.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
