#!/usr/bin/env python3
"""Generates the synthetic fire-logic traces in this folder (deterministic: fixed seeds).

Every sensor is sampled every 500 ms, like the default configuration expects. The physics is
simplified but plausible: a lithium-ion thermal runaway heats the hottest cell first (BMS),
the rack air sensors follow with a lag, the thermal camera sees the hot spot, smoke appears
late. Run `python3 tests/traces/generate.py` and then regenerate the expected outputs with
`FIRE_TRACES_BLESS=1 cargo test -p fire-replay --test traces` (review the diff!).
"""

import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPS = ["bms_max_c", "rack_temp1_c", "rack_temp2_c", "camera_max_c"]


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    return f"{v:.1f}"


def write(name, comment, columns, rows):
    path = os.path.join(HERE, name)
    with open(path, "w", newline="\n") as f:
        for line in comment.strip().splitlines():
            f.write(f"# {line}\n")
        f.write(",".join(["t_ms"] + columns) + "\n")
        for t, cells in rows:
            f.write(",".join([str(t)] + [fmt(cells.get(c)) for c in columns]) + "\n")


def slow_thermal_runaway():
    rng = random.Random(1)
    cols = TEMPS + ["smoke", "offgas_lfl_pct", "reset", "hold", "manual_release",
                    "manual_only", "authority"]
    rows = []
    cell = 31.0
    for i in range(0, 2 * 1260):
        t = i * 500
        s = t / 1000.0
        # Slow self-heating, accelerating: ~3 C/min at first, ~12 C/min above 60 C, and the
        # suppression does not stop it (a runaway that needs every stage).
        if cell < 45:
            rate = 3.0
        elif cell < 60:
            rate = 6.0
        elif cell < 95:
            rate = 12.0
        else:
            rate = 1.5
        cell += rate / 120.0
        air = 25.0 + (cell - 25.0) * 0.82
        cells = {
            "bms_max_c": cell + rng.uniform(-0.2, 0.2),
            "rack_temp1_c": air + rng.uniform(-0.3, 0.3),
            "rack_temp2_c": air - 1.5 + rng.uniform(-0.3, 0.3),
            "camera_max_c": cell + 2.0 + rng.uniform(-0.4, 0.4),
            "smoke": 1 if cell > 64 else 0,
            "offgas_lfl_pct": max(0.0, (cell - 40.0) * 0.15) + rng.uniform(0, 0.2),
            "reset": 0,
            "manual_release": 0,
            "manual_only": 0,
            "authority": 0,
        }
        # Someone still in the room holds the gas for 20 s during the pre-discharge warning.
        cells["hold"] = 1 if 950.0 <= s < 970.0 else 0
        rows.append((t, cells))
    write("slow-thermal-runaway.csv",
          "Slow lithium-ion thermal runaway through every stage: pre-alarm, power cut and\n"
          "blanket, patch, agent, coolant, room gas. During the gas pre-discharge warning the\n"
          "hold switch is held for 20 s, which restarts the warning in full.",
          cols, rows)


def sensor_fails_open():
    rng = random.Random(2)
    cols = TEMPS + ["smoke", "command"]
    rows = []
    for i in range(0, 2 * 300):
        t = i * 500
        s = t / 1000.0
        cells = {c: 26.0 + rng.uniform(-0.3, 0.3) for c in TEMPS}
        cells["camera_max_c"] = 27.5 + rng.uniform(-0.5, 0.5)
        cells["smoke"] = 0
        if s >= 60:
            cells["rack_temp1_c"] = 3276.7  # the open-circuit code (0x7FFF)
        if s >= 180:
            cells["rack_temp2_c"] = "fault"
        if s >= 240:
            cells["bms_max_c"] = None  # the BMS link goes silent
        if t == 120_000:
            cells["command"] = "inhibit:rack_temp1:60000"
        if t == 200_000:
            cells["command"] = "inhibit:camera_max:60000"  # refused: camera is healthy
        rows.append((t, cells))
    write("sensor-fails-open.csv",
          "A rack sensor fails open (reads the 0x7FFF open-circuit code), the operator inhibits\n"
          "it for 60 s from the network, the partner sensor then reports a fault and the BMS\n"
          "link goes silent: troubles only, never an alarm.",
          cols, rows)


def noisy_sensor():
    rng = random.Random(3)
    cols = TEMPS + ["smoke"]
    rows = []
    for i in range(0, 2 * 300):
        t = i * 500
        cells = {c: 29.0 + rng.uniform(-0.3, 0.3) for c in TEMPS}
        cells["rack_temp2_c"] = 29.0 + rng.uniform(-2.5, 2.5)
        if i % 40 == 17:
            cells["rack_temp2_c"] = 29.0 + rng.uniform(30, 45)  # single-sample spike
        if i % 97 == 50:
            cells["rack_temp2_c"] = None  # a dropped sample
        cells["smoke"] = 0
        rows.append((t, cells))
    write("noisy-sensor.csv",
          "A noisy rack sensor with single-sample spikes of +30..45 C and dropped samples: each\n"
          "spike is an implausible jump that excludes the sensor briefly; no stage starts.",
          cols, rows)


def offgas_early_warning():
    rng = random.Random(4)
    cols = TEMPS + ["smoke", "offgas_lfl_pct", "reset"]
    rows = []
    for i in range(0, 2 * 420):
        t = i * 500
        s = t / 1000.0
        cells = {c: 33.0 + rng.uniform(-0.3, 0.3) for c in TEMPS}
        if s < 30:
            lfl = 0.5
        elif s < 150:
            lfl = 0.5 + (s - 30) * 0.11  # venting cell: 13.7 % LFL at 150 s
        elif s < 210:
            lfl = 13.7 + (s - 150) * 0.25  # 28.7 % LFL at 210 s
        elif s < 300:
            lfl = max(0.3, 28.7 - (s - 210) * 0.4)  # ventilation clears it
        else:
            lfl = 0.3
        cells["offgas_lfl_pct"] = lfl + rng.uniform(0, 0.1)
        cells["smoke"] = 0
        cells["reset"] = 1 if (200 <= s < 201) or (400 <= s < 401) else 0
        rows.append((t, cells))
    write("offgas-early-warning.csv",
          "A venting cell seen by the off-gas detector before any temperature rise: supervisory\n"
          "and pre-alarm at 10 % LFL, power cut and blanket at 25 % LFL. A reset while gas is\n"
          "present is refused; after ventilation a local reset is accepted.",
          cols, rows)


def manual_only():
    rng = random.Random(5)
    cols = TEMPS + ["smoke", "manual_release", "manual_only"]
    rows = []
    cell = 40.0
    for i in range(0, 2 * 240):
        t = i * 500
        s = t / 1000.0
        cell = min(96.0, cell + 0.12)
        air = 25.0 + (cell - 25.0) * 0.85
        cells = {
            "bms_max_c": cell + rng.uniform(-0.2, 0.2),
            "rack_temp1_c": air + rng.uniform(-0.3, 0.3),
            "rack_temp2_c": air - 1.0 + rng.uniform(-0.3, 0.3),
            "camera_max_c": cell + 1.5 + rng.uniform(-0.4, 0.4),
            "smoke": 1 if cell > 70 else 0,
            "manual_only": 1,
            "manual_release": 1 if 200 <= s < 202 else 0,
        }
        rows.append((t, cells))
    write("manual-only.csv",
          "Manual-only mode (the room is occupied) during a fast rise: the power cut, blanket\n"
          "and patch act, the agent is held back and the bypass is reported until a person\n"
          "operates the manual release.",
          cols, rows)


def authority_key():
    rng = random.Random(6)
    cols = TEMPS + ["smoke", "reset", "authority", "contactor_open_fb"]
    rows = []
    fb = 0
    for i in range(0, 2 * 180):
        t = i * 500
        s = t / 1000.0
        cells = {c: 27.0 + rng.uniform(-0.3, 0.3) for c in TEMPS}
        cells["smoke"] = 0
        key = 1 if 30 <= s < 120 else 0
        cells["authority"] = key
        cells["reset"] = 1 if 60 <= s < 61 else 0
        if 90 <= s < 100:
            fb = 0  # the contactor auxiliary contact chatters closed: mismatch
        cells["contactor_open_fb"] = fb
        rows.append((t, cells))
        # The contactor follows the command 50 ms after the key turns.
        if s in (30.0, 120.0, 100.0):
            fb = key if s != 100.0 else 1
            rows.append((t + 50, {"contactor_open_fb": fb}))
    write("authority-key.csv",
          "The fire authority turns its key: battery power is forced off at once (highest\n"
          "priority, a local reset cannot close it). For 10 s the contactor feedback disagrees\n"
          "with the command: reported as a fault, the command is kept.",
          cols, rows)


if __name__ == "__main__":
    slow_thermal_runaway()
    sensor_fails_open()
    noisy_sensor()
    offgas_early_warning()
    manual_only()
    authority_key()
