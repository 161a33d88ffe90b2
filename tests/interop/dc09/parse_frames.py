"""Parse DC-09 frames with pysiaalarm's own parser and print what it understood.

Input (stdin): one JSON object per line: {"frame": "<frame text>", "key": "<ascii key>"|null}.
Output (stdout): one JSON object per line with pysiaalarm's view of the frame: whether its CRC
check passed, the message type, sequence, account, code, zone (ri), unit (message), ADM-CID
qualifier/type/partition, timestamp and the response it would send.
Exit code 3 when pysiaalarm cannot be imported.
"""
import json
import sys

try:
    from pysiaalarm import SIAAccount
    from pysiaalarm.event import SIAEvent
except ImportError as exc:  # pragma: no cover
    print(f"pysiaalarm not importable: {exc}", file=sys.stderr)
    sys.exit(3)

for raw in sys.stdin:
    if not raw.strip():
        continue
    req = json.loads(raw)
    key = req.get("key")
    acc = SIAAccount("1234", key, allowed_timeband=None)
    line = req["frame"].strip()
    out = {}
    try:
        ev = SIAEvent.from_line(line, {"1234": acc})
        out = {
            "crc_ok": ev.valid_message,
            "msg_crc": ev.msg_crc,
            "calc_crc": ev.calc_crc,
            "length": ev.length,
            "body_len_hex": "%04X" % len(ev.full_message),
            "type": ev.message_type.value if ev.message_type else None,
            "encrypted": ev.encrypted,
            "sequence": ev.sequence,
            "receiver": ev.receiver,
            "line": ev.line,
            "account": ev.account,
            "code": ev.code,
            "ri": ev.ri,
            "message": ev.message,
            "qualifier": ev.event_qualifier,
            "event_type": ev.event_type,
            "partition": ev.partition,
            "timestamp": ev.timestamp.strftime("%H:%M:%S,%m-%d-%Y") if ev.timestamp else None,
            "known_code": ev.sia_code is not None,
            "response": ev.response.value if ev.response else None,
        }
    except Exception as exc:  # noqa: BLE001 - report any parser failure to the caller
        out = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out), flush=True)
