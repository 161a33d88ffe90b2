"""SMTP sink for the dcim-server notification tests: aiosmtpd (a third-party SMTP server)
on 127.0.0.1 and an ephemeral port.

Prints {"port": N} once listening, then one JSON line per message received:
{"from": ..., "to": [...], "helo": ..., "tls": bool, "data": "<the message as received>"}.
Exits when stdin closes. With `--starttls CERT KEY` the server offers STARTTLS with that
certificate and refuses mail before it.

    $DCIM_PYTHON tests/interop/smtp/sink.py [--starttls CERT KEY]
"""

import asyncio
import json
import ssl
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    async def handle_DATA(self, server, session, envelope):
        print(
            json.dumps(
                {
                    "from": envelope.mail_from,
                    "to": envelope.rcpt_tos,
                    "helo": session.host_name,
                    "tls": session.ssl is not None,
                    "data": envelope.content.decode("utf-8", "replace"),
                }
            ),
            flush=True,
        )
        return "250 OK"


async def main():
    loop = asyncio.get_running_loop()
    tls = None
    if len(sys.argv) == 4 and sys.argv[1] == "--starttls":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(sys.argv[2], sys.argv[3])
    server = await loop.create_server(
        lambda: SMTP(
            Sink(), hostname="sink.test", tls_context=tls, require_starttls=tls is not None
        ),
        "127.0.0.1",
        0,
    )
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
