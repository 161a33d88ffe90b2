"""Runs the installed dcim-server and dcim-edge-agent as their service users, the way
systemd's Type=notify with WatchdogSec= would: NOTIFY_SOCKET and WATCHDOG_USEC are set, and
READY=1 and then WATCHDOG=1 must arrive on the socket. The server must keep pinging (a second
WATCHDOG=1 one period later: a server that pings once and then finds a part failing would be
killed by systemd after WatchdogSec) and its /health must answer 200 and not `failing`; both must
stop cleanly (exit 0) on SIGTERM. Run inside `unshare --net` (the installed configuration
listens on fixed ports)."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
tmp = tempfile.mkdtemp()
os.chmod(tmp, 0o755)


def run(name, user, argv, check_health):
    path = os.path.join(tmp, f"{name}.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o777)
    sock.settimeout(1.0)
    env = {"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"}
    cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"] + argv
    proc = subprocess.Popen(cmd, env=env, cwd="/", stderr=subprocess.PIPE, text=True)
    got = []
    deadline = time.time() + 60
    while time.time() < deadline and not ("READY=1" in got and "WATCHDOG=1" in got):
        try:
            got += sock.recv(4096).decode().splitlines()
        except socket.timeout:
            if proc.poll() is not None:
                break
    ok = "READY=1" in got and "WATCHDOG=1" in got
    health = None
    if ok and check_health:
        # WATCHDOG_USEC 4 s: pinged every 2 s while nothing fails. Wait for the next ping.
        pings = got.count("WATCHDOG=1")
        deadline = time.time() + 6
        while time.time() < deadline and got.count("WATCHDOG=1") <= pings:
            try:
                got += sock.recv(4096).decode().splitlines()
            except socket.timeout:
                pass
        if got.count("WATCHDOG=1") <= pings:
            ok = False
            print(f"[packaging] {name}: the watchdog ping stopped after the first", file=sys.stderr)
        try:
            with urllib.request.urlopen("http://127.0.0.1:8080/health", timeout=5) as r:
                health = json.load(r)
        except urllib.error.HTTPError as e:
            health = json.load(e)
            ok = False
            print(f"[packaging] {name}: /health answered {e.code}: {health}", file=sys.stderr)
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = "killed"
    err = proc.stderr.read()
    print(f"[packaging] {name}: notifications {sorted(set(got))}, exit {code}")
    if health is not None:
        print(f"[packaging] {name}: /health status {health['status']}: {sorted(health['checks'])}")
    if not ok or code != 0:
        print(err[-4000:], file=sys.stderr)
        sys.exit(f"{name}: READY/WATCHDOG missing or unclean exit ({code})")


run("dcim-server", "dcim", ["/usr/bin/dcim-server", "--config", "/etc/dcim/server.toml"], True)
run("dcim-edge-agent", "dcim-agent", ["/usr/bin/dcim-edge-agent", "--config", "/etc/dcim/agent.toml"], False)
