#!/usr/bin/env python3
"""Generates the Grafana dashboards in json/ from one description, so that every panel uses the
same query shape over what dcim-server writes to InfluxDB v2 (see dcim-server/server/src/influx.rs):
measurement `dcim` (the `influx.measurement` setting), tags site, agent, device, point, role,
quality and the sample's labels, field `value` (numbers; booleans as 0/1) or `text` (strings).

Run `python3 dashboards/generate.py` after editing; the dashboards test in dcim-server checks
every query against the server's encoder.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "influxdb", "uid": "${datasource}"}


def flux(role, agg="mean", group_by="device", extra=""):
    q = (
        'from(bucket: "${bucket}")\n'
        "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n"
        f'  |> filter(fn: (r) => r._measurement == "${{measurement}}" and r.role == "{role}" and r._field == "value")\n'
        '  |> filter(fn: (r) => r.site =~ /^${site}$/)\n'
    )
    q += f"  |> aggregateWindow(every: v.windowPeriod, fn: {agg}, createEmpty: false)\n"
    if group_by:
        q += f'  |> group(columns: ["{group_by}"])\n'
    q += extra
    q += f'  |> keep(columns: ["_time", "_value", "{group_by}"])' if group_by else '  |> keep(columns: ["_time", "_value"])'
    return q


def flux_sum(role, label):
    """Sum over devices per window (e.g. how many breakers are closed)."""
    return (
        'from(bucket: "${bucket}")\n'
        "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n"
        f'  |> filter(fn: (r) => r._measurement == "${{measurement}}" and r.role == "{role}" and r._field == "value")\n'
        '  |> filter(fn: (r) => r.site =~ /^${site}$/)\n'
        "  |> aggregateWindow(every: v.windowPeriod, fn: last, createEmpty: false)\n"
        '  |> group(columns: ["_time"])\n'
        "  |> sum()\n"
        "  |> group()\n"
        f'  |> map(fn: (r) => ({{_time: r._time, _value: r._value, series: "{label}"}}))'
    )


def panel(pid, title, queries, unit, x, y, w=12, h=8, kind="timeseries", desc="", thresholds=None, minv=None, maxv=None, step=False):
    defaults = {"unit": unit, "custom": {"lineWidth": 2, "fillOpacity": 10, "showPoints": "never"}}
    if step:
        defaults["custom"]["lineInterpolation"] = "stepAfter"
    if minv is not None:
        defaults["min"] = minv
    if maxv is not None:
        defaults["max"] = maxv
    if thresholds:
        defaults["thresholds"] = {"mode": "absolute", "steps": thresholds}
        defaults["color"] = {"mode": "thresholds"} if kind != "timeseries" else {"mode": "palette-classic"}
    if kind != "timeseries":
        defaults.pop("custom")
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]}, "tooltip": {"mode": "multi"}}
        if kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"], "values": False}, "colorMode": "background"},
        "targets": [{"refId": chr(65 + i), "datasource": DS, "query": q} for i, q in enumerate(queries)],
    }


def dashboard(uid, title, desc, panels):
    return {
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": ["dcim"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "label": "InfluxDB", "type": "datasource", "query": "influxdb", "current": {"text": "DCIM InfluxDB", "value": "dcim-influx"}},
                {"name": "bucket", "label": "Bucket", "type": "textbox", "query": "dcim", "current": {"text": "dcim", "value": "dcim"}},
                {"name": "measurement", "label": "Measurement", "type": "constant", "query": "dcim", "hide": 2},
                {"name": "site", "label": "Site", "type": "textbox", "query": ".*", "current": {"text": ".*", "value": ".*"}},
            ]
        },
        "annotations": {"list": []},
        "links": [{"title": "DCIM dashboards", "type": "dashboards", "tags": ["dcim"], "asDropdown": True}],
        "panels": panels,
    }


STAGE = [{"color": "green", "value": None}, {"color": "yellow", "value": 1}, {"color": "orange", "value": 2}, {"color": "red", "value": 3}]

DASHBOARDS = {
    "dcim-power.json": dashboard(
        "dcim-power",
        "DCIM — Power",
        "Utility feeds, UPS load and runtime.",
        [
            panel(1, "Power per utility feed", [flux("feed.power_kw")], "kwatt", 0, 0, desc="feed.power_kw per metering device"),
            panel(2, "Feed voltage", [flux("feed.voltage")], "volt", 12, 0),
            panel(3, "UPS load", [flux("ups.load_pct")], "percent", 0, 8, minv=0, maxv=100),
            panel(4, "UPS runtime on battery", [flux("ups.runtime_s")], "s", 12, 8, minv=0),
            panel(5, "UPS output power", [flux("ups.output_kw")], "kwatt", 0, 16),
            panel(6, "PDU power", [flux("pdu.power_kw")], "kwatt", 12, 16),
            panel(7, "IT power (sum of racks)", [flux_sum("it.power_kw", "IT kW")], "kwatt", 0, 24, w=24),
        ],
    ),
    "dcim-cooling.json": dashboard(
        "dcim-cooling",
        "DCIM — Cooling",
        "Chillers, chilled-water loops and the buffer tank.",
        [
            panel(1, "Chiller supply temperature", [flux("chiller.supply_temp")], "celsius", 0, 0),
            panel(2, "Chiller load", [flux("chiller.load_kw")], "kwatt", 12, 0),
            panel(3, "Buffer tank temperature", [flux("buffer_tank.temp")], "celsius", 0, 8),
            panel(4, "Buffer tank level", [flux("buffer_tank.level_pct")], "percent", 12, 8, minv=0, maxv=100),
            panel(5, "Loop supply temperature", [flux("loop.supply_temp")], "celsius", 0, 16),
            panel(6, "Loop flow", [flux("loop.flow")], "none", 12, 16),
            panel(7, "CRAH cooling output", [flux("crah.cooling_kw")], "kwatt", 0, 24),
            panel(8, "Room temperature", [flux("room.temp")], "celsius", 12, 24),
        ],
    ),
    "dcim-batteries.json": dashboard(
        "dcim-batteries",
        "DCIM — Batteries and fire stages",
        "Battery rooms and racks: temperatures and fire stages.",
        [
            panel(1, "Battery cell temperature (max per room)", [flux("battery.cell_temp.max", agg="max")], "celsius", 0, 0),
            panel(2, "Rack temperature", [flux("rack.temp", agg="max")], "celsius", 12, 0),
            panel(3, "Fire stage", [flux("fire.stage", agg="max")], "none", 0, 8, w=24, thresholds=STAGE, step=True, minv=0, maxv=4),
            panel(4, "Battery contactors closed", [flux_sum("battery.contactor_closed", "contactors closed")], "none", 0, 16, step=True, minv=0),
        ],
    ),
    "dcim-redundancy.json": dashboard(
        "dcim-redundancy",
        "DCIM — Redundancy inputs over time",
        "Live paths per subsystem over time, from the points the redundancy engine evaluates: closed utility breakers, "
        "UPS on battery, running chillers and CRAH units, carrier links up. (The server does not yet write the engine's "
        "designed/current redundancy to the time-series store.)",
        [
            panel(1, "Utility feed breakers closed", [flux_sum("feed.breaker_closed", "feeds live")], "none", 0, 0, step=True, minv=0,
                  desc="2 = both feeds live (2N); 1 = N"),
            panel(2, "UPS on battery", [flux("ups.on_battery", agg="max")], "none", 12, 0, step=True, minv=0, maxv=1),
            panel(3, "Chillers running", [flux_sum("chiller.running", "chillers running")], "none", 0, 8, step=True, minv=0),
            panel(4, "CRAH units running", [flux_sum("crah.running", "CRAH running")], "none", 12, 8, step=True, minv=0),
            panel(5, "Carrier links up", [flux_sum("link.up", "links up")], "none", 0, 16, step=True, minv=0),
            panel(6, "PDU breakers closed", [flux_sum("pdu.breaker_closed", "PDU breakers closed")], "none", 12, 16, step=True, minv=0),
        ],
    ),
}

if __name__ == "__main__":
    for name, d in DASHBOARDS.items():
        with open(os.path.join(HERE, "json", name), "w") as f:
            json.dump(d, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print("wrote", name)
