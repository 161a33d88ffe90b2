"""One offered-load step of the server comparison: run the fixed-rate publisher and measure what
the consumer (dcim-server or the Node-RED flow) took in.

usage: python load_leg.py --kind server|nodered --stats URL [--token T] --pid PID [--broker-pid PID] -- PUBLISHER...

For `server`, the counter is `ingest_samples_total` of dcim-server's /metrics (bearer token) and
the alarm latency comes from the publisher's own SSE watcher (`alarm_p99_ms=` in its output).
For `nodered`, the flow's /bench/stats returns {"points": n, "p50": ms, "p99": ms, "alarms": k}
and /bench/reset clears it. The consumer's rate is the samples it took in divided by the time
from the first to the last increase of its counter (sampled every 100 ms; the step ends when the
counter has not moved for 1.5 s, at most 30 s after the publisher ends). Prints one line of
`key=value` fields.

CPU is counted for the consumer's process (`--pid`) and, with `--broker-pid`, for a separate
broker process too (mosquitto in the Node-RED legs: it is part of that pipeline as the embedded
broker and its gate are part of dcim-server's), so that both per-sample figures are given:
`cpu_us_per_sample` (the consumer alone) and `cpu_us_per_sample_with_broker`.
"""

import json
import re
import subprocess
import sys
import threading
import time
import urllib.request


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / 100.0


def main():
    argv = sys.argv[1:]
    sep = argv.index("--")
    opts = dict(zip(argv[:sep:2], argv[1:sep:2]))
    pub = argv[sep + 1 :]
    kind, url, pid = opts["--kind"], opts["--stats"], int(opts["--pid"])
    token = opts.get("--token", "")
    broker = int(opts["--broker-pid"]) if "--broker-pid" in opts else None

    def get(u):
        req = urllib.request.Request(u, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()

    def server_metric(name):
        m = re.search(rf"^{name}(?:\{{[^}}]*\}})? (\d+)", get(url), re.M)
        return int(m.group(1)) if m else 0

    def counter():
        if kind == "server":
            return server_metric("dcim_ingest_samples_total")
        return int(json.loads(get(url))["points"])

    # Samples the server dropped as replays of batches it already had (an agent's seq at or
    # below its high-water): reported, so that a publisher reusing seqs is not read as loss.
    def duplicates():
        return server_metric("dcim_ingest_duplicate_items_total") if kind == "server" else 0

    if kind == "nodered":
        get(url.replace("/stats", "/reset"))
    base = counter()
    dup0 = duplicates()
    samples = []  # (time, count)
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            try:
                samples.append((time.monotonic(), counter() - base))
            except Exception:
                pass
            time.sleep(0.1)

    th = threading.Thread(target=sampler, daemon=True)
    c0 = cpu_s(pid)
    b0 = cpu_s(broker) if broker else 0.0
    t0 = time.monotonic()
    th.start()
    out = subprocess.run(pub, capture_output=True, text=True, timeout=120)
    sys.stderr.write(out.stderr)
    pub_line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    pub_end = time.monotonic()
    last_val, last_change = None, pub_end
    while time.monotonic() < pub_end + 30:
        time.sleep(0.25)
        v = samples[-1][1] if samples else 0
        if v != last_val:
            last_val, last_change = v, time.monotonic()
        elif time.monotonic() - last_change > 1.5:
            break
    stop.set()
    th.join()
    c1 = cpu_s(pid)
    b1 = cpu_s(broker) if broker else 0.0
    took = samples[-1][1] if samples else 0
    first = next((t for t, v in samples if v > 0), t0)
    lastt = next((t for t, v in samples if v == took), pub_end)
    span = max(lastt - first, 0.1)
    fields = dict(f.split("=", 1) for f in pub_line.split() if "=" in f)
    if kind == "server":
        # Sample time -> the engine's decision (the record's ts_ms), like the Node-RED flow's;
        # and sample time -> the committed record on the live stream.
        p50, p99, alarms = fields.get("alarm_decision_p50_ms"), fields.get("alarm_decision_p99_ms"), fields.get("alarms_seen")
        s50, s99 = fields.get("alarm_p50_ms"), fields.get("alarm_p99_ms")
    else:
        st = json.loads(get(url))
        p50, p99, alarms = st.get("p50"), st.get("p99"), st.get("alarms")
        s50, s99 = "-", "-"
    published = int(fields.get("published", 0))
    dups = duplicates() - dup0
    print(
        f"{kind} offered_pps={fields.get('offered_pps')} achieved_pub_pps={fields.get('achieved_pps')} "
        f"published={published} taken_in={took} ({100.0 * took / max(published, 1):.1f}%) duplicates={dups} "
        f"ingest_pps={took / span:.0f} drain_s={max(lastt - pub_end, 0):.1f} "
        f"alarm_probes={fields.get('probes')} alarms_seen={alarms} alarm_p50_ms={p50} alarm_p99_ms={p99} "
        f"stream_p50_ms={s50} stream_p99_ms={s99} "
        f"consumer_cpu_s={c1 - c0:.2f} cpu_us_per_sample={(c1 - c0) * 1e6 / max(took, 1):.2f} "
        f"broker_cpu_s={b1 - b0:.2f} "
        f"cpu_us_per_sample_with_broker={(c1 - c0 + b1 - b0) * 1e6 / max(took, 1):.2f}"
    )


main()
