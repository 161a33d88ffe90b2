#!/usr/bin/env python3
"""Generates the synthetic fire-logic traces in this folder (deterministic: fixed seeds).

Every sensor is sampled every 500 ms, like the default configuration expects. The physics is
simplified but plausible: a lithium-ion thermal runaway heats the hottest cell first (BMS),
the rack air sensors follow with a lag, the thermal camera sees the hot spot, smoke appears
late. Run `python3 tests/traces/generate.py` and then regenerate the expected outputs with
`FIRE_TRACES_BLESS=1 cargo test -p fire-replay --test it -- traces::` (review the diff!).
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


def write(name, comment, columns, rows, directives=()):
    path = os.path.join(HERE, name)
    with open(path, "w", newline="\n") as f:
        for line in comment.strip().splitlines():
            f.write(f"# {line}\n")
        for d in directives:
            f.write(f"#! {d}\n")
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
          "its trouble report for 60 s from the network, an inhibit of the healthy camera is\n"
          "refused, the partner sensor then reports a fault and the BMS link goes silent:\n"
          "troubles only, never an alarm.",
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
          "spike moves the reading the logic uses by 15 C at most (rate limit) and is gone before\n"
          "it can be confirmed; it shows as a one-sample partner disagreement naming the noisy\n"
          "sensor; no stage starts.",
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
          "and pre-alarm at 10 % LFL; power cut and blanket as soon as it is at or above 10 % LFL\n"
          "and rising 5 % LFL within 60 s (long before the 25 % level). A reset while gas is\n"
          "present is refused; after ventilation a local reset is accepted.",
          cols, rows)


def manual_only_agent():
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
          "operates the rack's manual release (the agent only, never the room gas).",
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


# ---------------------------------------------------------------------------------------------
# One trace per hazard of firmware/HAZARDS.md (h1 .. h9). Rows every 500 ms while sensors
# report; once every sensor is dead, rows every second (the timers do not need more), which
# keeps the traces small enough for the emulated controller's flash.


def h1_burnt_sensors_after_agent():
    rng = random.Random(11)
    cols = TEMPS + ["smoke"]
    rows = []
    cell = 55.0
    t = 0
    while t <= 90_000:
        cell = min(96.0, cell + 0.25)
        air = 25.0 + (cell - 25.0) * 0.9
        rows.append((t, {
            "bms_max_c": cell + rng.uniform(-0.2, 0.2),
            "rack_temp1_c": air + rng.uniform(-0.3, 0.3),
            "rack_temp2_c": air - 1.0 + rng.uniform(-0.3, 0.3),
            "camera_max_c": cell + 1.5 + rng.uniform(-0.4, 0.4),
            "smoke": 1 if cell > 64 else 0,
        }))
        t += 500
    # The fire burns the cables: every transmitter reads the open-circuit code, the camera and
    # the smoke detector report faults.
    while t <= 560_000:
        rows.append((t, {"bms_max_c": 3276.7, "rack_temp1_c": 3276.7, "rack_temp2_c": 3276.7,
                         "camera_max_c": "fault", "smoke": "fault"}))
        t += 1000
    write("h1-burnt-sensors-after-agent.csv",
          "Hazard 1: after the agent the fire burns every sensor (open-circuit codes, faults).\\n"
          "The stage timers keep running without valid temperatures: coolant 120 s after the\\n"
          "agent, the room gas request 300 s later, the gas after the 30 s warning.",
          cols, rows)


def h1_peak_sensor_lost_while_hot():
    rng = random.Random(12)
    cols = TEMPS + ["smoke"]
    rows = []
    rack, cam = 55.0, 60.0
    t = 0
    while t <= 280_000:
        rack = min(150.0, rack + 0.75)
        cam = min(200.0, cam + 1.0)
        cells = {
            "bms_max_c": rack - 5.0 + rng.uniform(-0.2, 0.2),
            "rack_temp1_c": rack + rng.uniform(-0.3, 0.3),
            "rack_temp2_c": rack - 1.0 + rng.uniform(-0.3, 0.3),
            "camera_max_c": cam + rng.uniform(-0.4, 0.4),
            "smoke": 1,
        }
        if t >= 100_000:
            cells["camera_max_c"] = "fault"  # the camera that set the peak is destroyed
        rows.append((t, cells))
        t += 500
    write("h1-peak-sensor-lost-while-hot.csv",
          "Hazard 1: the camera sets the peak at 200 C and is destroyed; the rack sensors still\\n"
          "read 150 C with smoke. Peaks are per source and a source lost while hot counts as\\n"
          "not fallen: coolant 120 s after the agent.",
          cols, rows)


def h2_stuck_partner_hides_fire():
    rng = random.Random(13)
    cols = TEMPS + ["smoke"]
    rows = []
    hot = 30.0
    for i in range(0, 2 * 150):
        t = i * 500
        hot = min(110.0, hot + 0.4)
        rows.append((t, {
            "bms_max_c": 31.0 + rng.uniform(-0.2, 0.2),
            "rack_temp1_c": 28.0,  # stuck at a plausible value
            "rack_temp2_c": hot + rng.uniform(-0.3, 0.3),
            "camera_max_c": 33.0 + rng.uniform(-0.4, 0.4),
            "smoke": 1 if hot > 58 else 0,
        }))
    write("h2-stuck-partner-hides-fire.csv",
          "Hazard 2: rack_temp1 is stuck at a plausible 28 C while rack_temp2, nearest the fire,\\n"
          "rises to 110 C with smoke (the BMS and the camera see little of it). The hotter reading\\n"
          "wins because smoke agrees; the trouble names the stuck sensor. Agent.",
          cols, rows)


def h3_flickering_flame():
    rng = random.Random(14)
    cols = TEMPS + ["smoke"]
    rows = []
    cam = 30.0
    for i in range(0, 2 * 120):
        t = i * 500
        if cam < 160.0:
            cam = min(160.0, cam + 2.5)
            reading = cam
        else:
            reading = 160.0 + (12.0 if i % 2 else -12.0)  # the flame flickers +-12 C
        rows.append((t, {
            "bms_max_c": 33.0 + rng.uniform(-0.2, 0.2),
            "rack_temp1_c": 35.0 + rng.uniform(-0.3, 0.3),
            "rack_temp2_c": 34.0 + rng.uniform(-0.3, 0.3),
            "camera_max_c": reading + rng.uniform(-0.3, 0.3),
            "smoke": 1 if cam > 70 else 0,
        }))
    write("h3-flickering-flame.csv",
          "Hazard 3: the camera watches a flame that flickers +-12 C around 160 C from sample to\\n"
          "sample. The reading is rate-limited, never rejected: with smoke, agent.",
          cols, rows)


def h4_common_mode_drift():
    rng = random.Random(15)
    cols = TEMPS + ["smoke"]
    rows = []
    for i in range(0, 2 * 360):
        t = i * 500
        drift = 25.0 + min(62.0, i * 0.1)  # the ADC reference sags: both read up to 87 C
        rows.append((t, {
            "bms_max_c": 25.0 + rng.uniform(-0.2, 0.2),
            "rack_temp1_c": drift + rng.uniform(-0.2, 0.2),
            "rack_temp2_c": drift - 0.5 + rng.uniform(-0.2, 0.2),
            "camera_max_c": 25.5 + rng.uniform(-0.4, 0.4),
            "smoke": 0,
        }))
    write("h4-common-mode-drift.csv",
          "Hazard 4: both rack transmitters sit on one ADC and one supply (declared below as a\\n"
          "common-cause group); the reference sags and both read 87 C at a true 25 C. They never\\n"
          "corroborate each other: power cut and blanket on the single cause, no patch, no agent.",
          cols, rows, directives=["common_cause: rack_temp1_c rack_temp2_c"])


def h5_room_gas_manual_only():
    rng = random.Random(16)
    cols = TEMPS + ["smoke", "hold", "manual_release", "room_gas_release", "manual_only"]
    rows = []
    for i in range(0, 2 * 130):
        t = i * 500
        s = t / 1000.0
        rows.append((t, {
            "bms_max_c": 30.0 + rng.uniform(-0.2, 0.2),
            "rack_temp1_c": 31.0 + rng.uniform(-0.3, 0.3),
            "rack_temp2_c": 30.5 + rng.uniform(-0.3, 0.3),
            "camera_max_c": 32.0 + rng.uniform(-0.4, 0.4),
            "smoke": 0,
            "manual_only": 1,
            "manual_release": 1 if 20 <= s < 21 else 0,
            "room_gas_release": 1 if 40 <= s < 41 else 0,
            "hold": 1 if 50 <= s < 65 else 0,
        }))
    write("h5-room-gas-manual-only.csv",
          "Hazard 5: the room is occupied (manual-only). A person operates the rack's manual\\n"
          "release: agent only. Then the room's gas release: stage 5 and the full 30 s\\n"
          "pre-discharge warning; someone holds the abort switch for 15 s, the warning restarts\\n"
          "in full when it is let go; the gas follows 30 s later.",
          cols, rows)


def h6_inhibit_then_recovery():
    rng = random.Random(17)
    cols = TEMPS + ["smoke", "command"]
    rows = []
    hot = 30.0
    for i in range(0, 2 * 130):
        t = i * 500
        s = t / 1000.0
        if s >= 60:
            hot = min(95.0, hot + 1.0)
        cells = {
            "bms_max_c": 31.0 + rng.uniform(-0.2, 0.2),
            "rack_temp1_c": hot + rng.uniform(-0.3, 0.3),
            "rack_temp2_c": 30.0 + rng.uniform(-0.3, 0.3),
            "camera_max_c": 33.0 + rng.uniform(-0.4, 0.4),
            "smoke": 1 if hot > 70 else 0,
        }
        if 10 <= s < 30:
            cells["rack_temp1_c"] = "fault"
        if t == 15_000:
            cells["command"] = "inhibit:rack_temp1:28800000"
        rows.append((t, cells))
    write("h6-inhibit-then-recovery.csv",
          "Hazard 6: rack_temp1 reports a fault and its trouble is inhibited from the network for\\n"
          "8 h. The sensor recovers: the inhibit ends at once. It then heats to 95 C with smoke:\\n"
          "agent, exactly as without the command.",
          cols, rows)


def h7_reset_with_dead_hot_sensor():
    rng = random.Random(18)
    cols = TEMPS + ["smoke", "reset"]
    rows = []
    for i in range(0, 2 * 150):
        t = i * 500
        s = t / 1000.0
        if s < 40:
            base, cam = 62.0, 66.0
        else:
            base, cam = max(40.0, 62.0 - (s - 40) * 0.5), 66.0
        cells = {
            "bms_max_c": base + rng.uniform(-0.2, 0.2),
            "rack_temp1_c": base + rng.uniform(-0.3, 0.3),
            "rack_temp2_c": base - 0.5 + rng.uniform(-0.3, 0.3),
            "camera_max_c": cam + rng.uniform(-0.4, 0.4),
            "smoke": 0,
            "reset": 1 if (90 <= s < 91) or (100 <= s < 112) else 0,
        }
        if s >= 80:
            cells["camera_max_c"] = 3276.7  # the hottest sensor fails open
        rows.append((t, cells))
    write("h7-reset-with-dead-hot-sensor.csv",
          "Hazard 7: after a power cut the rack cools to 40 C but the camera, the hottest source,\\n"
          "fails open. A reset is refused (the fire cannot be shown out there). Holding the reset\\n"
          "key for 10 s resets with the camera out of service, logged as such.",
          cols, rows)


def h8_offgas_sustained():
    rng = random.Random(19)
    cols = TEMPS + ["smoke", "offgas_lfl_pct"]
    rows = []
    for i in range(0, 2 * 260):
        t = i * 500
        s = t / 1000.0
        lfl = min(24.0, s * 4.0 / 60.0)  # creeping 4 % LFL a minute, up to 24 %
        rows.append((t, {
            "bms_max_c": 30.0 + rng.uniform(-0.2, 0.2),
            "rack_temp1_c": 29.0 + rng.uniform(-0.3, 0.3),
            "rack_temp2_c": 29.5 + rng.uniform(-0.3, 0.3),
            "camera_max_c": 31.0 + rng.uniform(-0.4, 0.4),
            "smoke": 0,
            "offgas_lfl_pct": lfl + rng.uniform(0, 0.1),
        }))
    write("h8-offgas-sustained.csv",
          "Hazard 8: a venting cell without any temperature rise: off-gas creeps to 24 % LFL, below\\n"
          "the 25 % stage 1 level. Sustained at or above 10 % LFL for 60 s: power cut and blanket\\n"
          "(an alarm, not only a trouble).",
          cols, rows)


def h8_smoke_offgas_no_temperature():
    cols = TEMPS + ["smoke", "offgas_lfl_pct"]
    rows = []
    for i in range(0, 2 * 40):
        t = i * 500
        s = t / 1000.0
        rows.append((t, {
            "bms_max_c": "fault", "rack_temp1_c": 3276.7, "rack_temp2_c": -3276.8,
            "camera_max_c": "fault",
            "smoke": 1 if s >= 10 else 0,
            "offgas_lfl_pct": 12.0 if s >= 10 else 0.5,
        }))
    write("h8-smoke-offgas-no-temperature.csv",
          "Hazard 8: every temperature source has failed; then smoke and off-gas at 12 % LFL.\\n"
          "Power cut and blanket at once (they used to leave the rack at pre-alarm).",
          cols, rows)


def h9_reboot_loop_time_wrap():
    rng = random.Random(20)
    cols = TEMPS + ["smoke", "manual_release", "restart"]
    rows = []
    start = 4_294_900_000  # 67 s before a 32-bit millisecond counter would wrap
    cell = 70.0
    for i in range(0, 2 * 260):
        t = start + i * 500
        s = i / 2.0
        cell = min(90.0, cell + 0.5)
        cells = {
            "bms_max_c": cell + rng.uniform(-0.2, 0.2),
            "rack_temp1_c": cell - 3.0 + rng.uniform(-0.3, 0.3),
            "rack_temp2_c": cell - 3.5 + rng.uniform(-0.3, 0.3),
            "camera_max_c": cell + 1.0 + rng.uniform(-0.4, 0.4),
            "smoke": 1,
            # A stuck manual release key: on from 50 s, held through the restarts.
            "manual_release": 1 if s >= 50 else 0,
            "restart": 1 if (s > 30 and i % 60 == 0) else 0,
        }
        rows.append((t, cells))
    write("h9-reboot-loop-time-wrap.csv",
          "Hazard 9: 64-bit time across the 32-bit millisecond wrap, and a controller rebooting\\n"
          "every 30 s (shorter than the 120 s coolant delay) after the agent: the stage timer is\\n"
          "kept in the latch record and the coolant still comes. A manual release key held\\n"
          "through the restarts is not a new press.",
          cols, rows)


if __name__ == "__main__":
    slow_thermal_runaway()
    sensor_fails_open()
    noisy_sensor()
    offgas_early_warning()
    manual_only_agent()
    authority_key()
    h1_burnt_sensors_after_agent()
    h1_peak_sensor_lost_while_hot()
    h2_stuck_partner_hides_fire()
    h3_flickering_flame()
    h4_common_mode_drift()
    h5_room_gas_manual_only()
    h6_inhibit_then_recovery()
    h7_reset_with_dead_hot_sensor()
    h8_offgas_sustained()
    h8_smoke_offgas_no_temperature()
    h9_reboot_loop_time_wrap()
