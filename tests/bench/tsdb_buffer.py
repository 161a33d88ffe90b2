#!/usr/bin/env python3
"""How fast the on-disk time-series buffer fills at demo load while the store is down.

Runs `dcim-demo` (simulator, edge agent, server; the demo scenario included) with
`--influx` pointing at a port where nothing listens, so every line the server writes stays in
the buffer (`<data>/tsdb-buffer`). After a warm-up it reads the server's /metrics twice, SECONDS
apart: `dcim_tsdb_buffer_appended_lines_total` (lines appended to the buffer) and
`dcim_tsdb_buffer_bytes` (its size on disk: gzip bodies plus the spool's framing), and prints lines per second, bytes per line,
MiB per hour and how many hours the default budget (`influx.buffer_max_mb` = 2048) holds.

    cargo build --release -p dcim-demo
    python3 tests/bench/tsdb_buffer.py --seconds 600 [--warmup 60] [--bin target/release/dcim-demo]
"""
import argparse
import http.cookiejar
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def metrics(opener, base):
    text = opener.open(base + "/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--bin", default="target/release/dcim-demo")
    ap.add_argument("--budget-mb", type=int, default=2048)
    a = ap.parse_args()
    data = tempfile.mkdtemp(prefix="dcim-tsdb-bench-")
    http_port, broker_port, dead_port = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    env = dict(os.environ, DCIM_ADMIN_PASSWORD="tsdb-buffer-bench", RUST_LOG="warn")
    proc = subprocess.Popen(
        [a.bin, "--http", f"127.0.0.1:{http_port}", "--broker", f"127.0.0.1:{broker_port}",
         "--data", data, "--influx", f"http://127.0.0.1:{dead_port}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        deadline = time.time() + 60
        while True:
            try:
                req = urllib.request.Request(
                    base + "/api/login",
                    data=json.dumps({"username": "admin", "password": "tsdb-buffer-bench"}).encode(),
                    headers={"content-type": "application/json"})
                opener.open(req, timeout=5)
                break
            except Exception:
                if time.time() > deadline or proc.poll() is not None:
                    sys.exit("the demo did not start")
                time.sleep(0.5)
        time.sleep(a.warmup)
        t0, m0 = time.time(), metrics(opener, base)
        time.sleep(a.seconds)
        t1, m1 = time.time(), metrics(opener, base)
        dt = t1 - t0
        lines = m1["dcim_tsdb_buffer_appended_lines_total"] - m0["dcim_tsdb_buffer_appended_lines_total"]
        size = m1["dcim_tsdb_buffer_bytes"] - m0["dcim_tsdb_buffer_bytes"]
        dropped = m1.get("dcim_tsdb_buffer_dropped_lines_total", 0)
        written = m1.get("dcim_influx_lines_written_total", 0)
        if lines <= 0 or size <= 0 or written != 0:
            sys.exit(f"nothing buffered or something written: {lines} lines, {size} bytes, {written} written")
        per_hour = size / dt * 3600
        hours = a.budget_mb * 2**20 / per_hour
        print(f"measured over {dt:.0f} s after a {a.warmup} s warm-up")
        print(f"lines buffered: {lines:.0f} ({lines / dt:.1f} lines/s, {lines / dt * 3600:,.0f} lines/h)")
        print(f"buffer growth: {size:,.0f} bytes = {size / lines:.1f} bytes/line, {per_hour / 2**20:.1f} MiB/h")
        print(f"the default budget of {a.budget_mb} MiB holds {hours:.0f} h ({hours / 24:.1f} days) of demo load")
        taken = m1["dcim_ingest_samples_total"] - m0["dcim_ingest_samples_total"]
        print(f"samples taken in by the ingest meanwhile: {taken:.0f} ({taken / dt:.1f}/s; the store gets each new reading)")
        print(f"lines dropped by the full buffer: {dropped:.0f}; total in the buffer {m1['dcim_tsdb_buffer_lines']:.0f} lines, {m1['dcim_tsdb_buffer_bytes']:,.0f} bytes")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
