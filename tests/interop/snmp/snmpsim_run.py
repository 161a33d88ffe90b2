"""Runs snmpsim's command responder (snmpsim 1.2.2 from PyPI) with the given arguments.

snmpsim refuses to run as root unless it can drop privileges to another user, and the test
machines (CI included) run everything as root with the Python environment under /root, which
another user cannot read. As root this launcher turns the privilege drop into a no-op; nothing
else of snmpsim is changed. It serves on 127.0.0.1 ports chosen by the tests only.

Usage: python snmpsim_run.py <snmpsim-command-responder arguments>
"""

import os
import sys

from snmpsim import daemon
from snmpsim.commands import responder

if hasattr(os, "geteuid") and os.geteuid() == 0:

    class _Stay:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    daemon.PrivilegesOf = _Stay

if __name__ == "__main__":
    sys.argv[0] = "snmpsim-command-responder"
    sys.exit(responder.main())
