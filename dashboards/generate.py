#!/usr/bin/env python3
"""Generates the Grafana dashboards from one description, in two query languages:

- json/  PromQL (MetricsQL-compatible) for a Prometheus datasource on VictoriaMetrics, the
         tested store (the default; every query is run against VictoriaMetrics with the demo's
         data by tests/e2e/tests/it/dashboards.rs);
- flux/  Flux for an InfluxDB v2 datasource (optional; checked against the server's encoder by
         dcim-server/server/tests/it/dashboards.rs, not run against a store).

What dcim-server writes (dcim-server/server/src/influx.rs): InfluxDB line protocol, measurement
`dcim` (the `influx.measurement` setting), tags site, agent, device, point, role, quality and the
sample's labels, field `value` (numbers; booleans as 0/1) or `text` (strings). VictoriaMetrics
stores the field `value` of measurement `dcim` as the series `dcim_value{site, agent, device,
point, role, quality, ...}` (the measurement name is kept as written, so the queries select it
with `{__name__="${measurement}_value"}`, which works for any measurement name).

Every value panel draws good readings only (`quality="good"`); a reading that is stale, bad or
from a device that stopped answering is not drawn as a value but counted in the dashboard's
"readings not good" panel, and the panels that add readings up (feeds live, chillers running)
also draw how many readings they add, so a missing reading is seen as missing and not as a
smaller number.

Run `python3 dashboards/generate.py` after editing.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------------------------------------
# The description: panels by what they show, independent of the query language.
#
# ("series", role, fn):  one line per point (site, device, point); fn aggregates the samples of
#                        each interval: avg, max (temperatures, stages: the hot peak is kept)
#                        or min (runtime, level, flow: the low dip is kept).
# ("sum", role, label):  per site, the sum of each point's last good reading in the interval
#                        (breakers closed, units running), and the number of points summed.
# ("not_good", roles):   per point, the samples of the interval whose quality is not good.
# ---------------------------------------------------------------------------------------------


def series(role, fn="avg"):
    return ("series", role, fn)


def total(role, label):
    return ("sum", role, label)


MIN_INTERVAL = "30s"

STAGE = [{"color": "green", "value": None}, {"color": "yellow", "value": 1}, {"color": "orange", "value": 2}, {"color": "red", "value": 3}]

# (file, uid, title, description, [(title, what, unit, options)])
DASHBOARDS = [
    (
        "dcim-power.json",
        "dcim-power",
        "DCIM — Power",
        "Utility feeds, UPS load and runtime, PDUs and IT load.",
        [
            ("Power per utility feed", series("feed.power_kw"), "kwatt", {"desc": "feed.power_kw per metering point"}),
            ("Feed voltage", series("feed.voltage"), "volt", {}),
            ("UPS load", series("ups.load_pct", "max"), "percent", {"min": 0, "max": 100}),
            ("UPS runtime on battery (lowest in the interval)", series("ups.runtime_s", "min"), "s", {"min": 0}),
            ("UPS output power", series("ups.output_kw"), "kwatt", {}),
            ("PDU power", series("pdu.power_kw"), "kwatt", {}),
            ("IT power (sum of racks)", total("it.power_kw", "IT kW"), "kwatt", {"w": 12,
             "desc": "Sum of the racks' it.power_kw; `racks reporting` is how many racks the sum has: a rack without a good reading is missing from the sum, not zero."}),
        ],
    ),
    (
        "dcim-cooling.json",
        "dcim-cooling",
        "DCIM — Cooling",
        "Chillers, chilled-water loops, the buffer tank, CRAH units and rooms.",
        [
            ("Chiller supply temperature", series("chiller.supply_temp", "max"), "celsius", {}),
            ("Chiller load", series("chiller.load_kw"), "kwatt", {}),
            ("Buffer tank temperature", series("buffer_tank.temp", "max"), "celsius", {}),
            ("Buffer tank level (lowest in the interval)", series("buffer_tank.level_pct", "min"), "percent", {"min": 0, "max": 100}),
            ("Loop supply temperature", series("loop.supply_temp", "max"), "celsius", {}),
            ("Loop flow (lowest in the interval)", series("loop.flow", "min"), "none", {}),
            ("CRAH cooling output", series("crah.cooling_kw"), "kwatt", {}),
            ("Room temperature", series("room.temp", "max"), "celsius", {}),
        ],
    ),
    (
        "dcim-batteries.json",
        "dcim-batteries",
        "DCIM — Batteries and fire stages",
        "Battery rooms and racks: temperatures and fire stages.",
        [
            ("Battery cell temperature (hottest cell)", series("battery.cell_temp.max", "max"), "celsius", {}),
            ("Rack temperature", series("rack.temp", "max"), "celsius", {}),
            ("Fire stage", series("fire.stage", "max"), "none", {"w": 24, "thresholds": STAGE, "step": True, "min": 0, "max": 6,
             "desc": "Highest stage in the interval per rack controller and battery room. A controller without a good stage reading is listed under `readings not good`, never drawn as stage 0."}),
            ("Battery contactors closed", total("battery.contactor_closed", "contactors closed"), "none", {"step": True, "min": 0}),
        ],
    ),
    (
        "dcim-redundancy.json",
        "dcim-redundancy",
        "DCIM — Redundancy inputs over time",
        "Live paths per subsystem over time, from the points the redundancy engine evaluates: closed utility breakers, "
        "UPS on battery, running chillers and CRAH units, carrier links up. Each sum is drawn with the number of "
        "readings it adds up, so a lost reading shows as missing rather than as a path down or up. (The server does "
        "not write the engine's designed/current redundancy to the time-series store.)",
        [
            ("Utility feed breakers closed", total("feed.breaker_closed", "feeds live"), "none", {"step": True, "min": 0,
             "desc": "2 of 2 = both feeds live (2N); 1 = N"}),
            ("UPS on battery", series("ups.on_battery", "max"), "none", {"step": True, "min": 0, "max": 1}),
            ("Chillers running", total("chiller.running", "chillers running"), "none", {"step": True, "min": 0}),
            ("CRAH units running", total("crah.running", "CRAH running"), "none", {"step": True, "min": 0}),
            ("Carrier links up", total("link.up", "links up"), "none", {"step": True, "min": 0}),
            ("PDU breakers closed", total("pdu.breaker_closed", "PDU breakers closed"), "none", {"step": True, "min": 0}),
        ],
    ),
]

# ---------------------------------------------------------------------------------------------
# PromQL (VictoriaMetrics' Prometheus API; also valid MetricsQL)
# ---------------------------------------------------------------------------------------------

PROM_DS = {"type": "prometheus", "uid": "${datasource}"}
# The identity of a point's series, whatever other labels it carries.
POINT = "site, device, point"


def prom_selector(role=None, roles=None, good=True):
    parts = ['__name__="${measurement}_value"']
    if role is not None:
        parts.append(f'role="{role}"')
    if roles is not None:
        alternatives = "|".join(r.replace(".", "\\\\.") for r in roles)
        parts.append(f'role=~"{alternatives}"')
    parts.append('quality="good"' if good else 'quality!="good"')
    parts.append('site=~"${site}"')
    return "{" + ", ".join(parts) + "}"


def prom_targets(what):
    kind = what[0]
    if kind == "series":
        _, role, fn = what
        sel = prom_selector(role)
        return [(f"{fn} by ({POINT}) ({fn}_over_time({sel}[$__interval]))", "{{device}} {{point}}")]
    if kind == "sum":
        _, role, label = what
        sel = prom_selector(role)
        return [
            (f"sum by (site) (last_over_time({sel}[$__interval]))", f"{label} ({{{{site}}}})"),
            (f"count by (site) (last_over_time({sel}[$__interval]))", "readings summed ({{site}})"),
        ]
    if kind == "not_good":
        _, roles = what
        sel = prom_selector(roles=roles, good=False)
        return [(f"sum by ({POINT}, quality) (count_over_time({sel}[$__interval]))", "{{device}} {{point}}: {{quality}}")]
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------------
# Flux (InfluxDB v2)
# ---------------------------------------------------------------------------------------------

FLUX_DS = {"type": "influxdb", "uid": "${datasource}"}
FLUX_FN = {"avg": "mean", "max": "max", "min": "min"}


def flux_head(role_filter, good=True):
    quality = 'r.quality == "good"' if good else 'r.quality != "good"'
    return (
        'from(bucket: "${bucket}")\n'
        "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n"
        f'  |> filter(fn: (r) => r._measurement == "${{measurement}}" and {role_filter} and r._field == "value")\n'
        f"  |> filter(fn: (r) => {quality} and r.site =~ /^${{site}}$/)\n"
    )


def flux_targets(what):
    kind = what[0]
    if kind == "series":
        _, role, fn = what
        return [
            flux_head(f'r.role == "{role}"')
            + f"  |> aggregateWindow(every: v.windowPeriod, fn: {FLUX_FN[fn]}, createEmpty: false)\n"
            + '  |> group(columns: ["site", "device", "point"])\n'
            + '  |> keep(columns: ["_time", "_value", "site", "device", "point"])'
        ]
    if kind == "sum":
        _, role, label = what
        out = []
        for agg, name in (("sum", label), ("count", "readings summed")):
            out.append(
                flux_head(f'r.role == "{role}"')
                + "  |> aggregateWindow(every: v.windowPeriod, fn: last, createEmpty: false)\n"
                + '  |> group(columns: ["_time", "site"])\n'
                + f"  |> {agg}()\n"
                + '  |> group(columns: ["site"])\n'
                + f'  |> map(fn: (r) => ({{_time: r._time, _value: float(v: r._value), site: r.site, series: "{name}"}}))'
            )
        return out
    if kind == "not_good":
        _, roles = what
        alternatives = "|".join(r.replace(".", "\\.") for r in roles)
        return [
            flux_head(f"r.role =~ /^({alternatives})$/", good=False)
            + "  |> aggregateWindow(every: v.windowPeriod, fn: count, createEmpty: false)\n"
            + '  |> group(columns: ["site", "device", "point", "quality"])\n'
            + '  |> keep(columns: ["_time", "_value", "site", "device", "point", "quality"])'
        ]
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------------
# Grafana JSON
# ---------------------------------------------------------------------------------------------


def panel(lang, pid, title, what, unit, x, y, opts):
    w, h = opts.get("w", 12), opts.get("h", 8)
    kind = "timeseries"
    defaults = {"unit": unit, "custom": {"lineWidth": 2, "fillOpacity": 10, "showPoints": "never", "spanNulls": False}}
    if opts.get("step"):
        defaults["custom"]["lineInterpolation"] = "stepAfter"
    for k in ("min", "max"):
        if k in opts:
            defaults[k] = opts[k]
    if "thresholds" in opts:
        defaults["thresholds"] = {"mode": "absolute", "steps": opts["thresholds"]}
        defaults["color"] = {"mode": "thresholds"}
        defaults["custom"]["thresholdsStyle"] = {"mode": "area"}
    if lang == "promql":
        ds = PROM_DS
        targets = [
            {"refId": chr(65 + i), "datasource": ds, "expr": expr, "legendFormat": legend, "range": True, "instant": False, "editorMode": "code"}
            for i, (expr, legend) in enumerate(prom_targets(what))
        ]
    else:
        ds = FLUX_DS
        targets = [{"refId": chr(65 + i), "datasource": ds, "query": q} for i, q in enumerate(flux_targets(what))]
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "description": opts.get("desc", ""),
        "datasource": ds,
        # The shortest interval a panel aggregates over: the server's staleness window. A point
        # is reported at least every 10 s (a profile's `report_every_ms`), so an interval of
        # 30 s has a sample of every healthy point, and an interval without one is a point the
        # server, too, calls stale.
        "interval": MIN_INTERVAL,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]}, "tooltip": {"mode": "multi"}},
        "targets": targets,
    }


def roles_of(panels):
    out = []
    for _, what, _, _ in panels:
        if what[1] not in out:
            out.append(what[1])
    return out


def dashboard(lang, uid, title, desc, panels):
    # The dashboard's own panels, then the readings of its roles that are not good.
    items = list(panels) + [
        (
            "Readings not good",
            ("not_good", roles_of(panels)),
            "none",
            {"w": 24, "desc": "Samples per interval of this dashboard's points whose quality is stale, bad or comm_lost "
             "(the device stopped answering). These readings are not drawn in the panels above."},
        )
    ]
    out, x, y = [], 0, 0
    for i, (ptitle, what, unit, opts) in enumerate(items):
        w = opts.get("w", 12)
        if x + w > 24:
            x, y = 0, y + 8
        out.append(panel(lang, i + 1, ptitle, what, unit, x, y, opts))
        x += w
    if lang == "promql":
        variables = [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {"text": "DCIM VictoriaMetrics", "value": "dcim-vm"}},
            {"name": "measurement", "label": "Measurement", "type": "constant", "query": "dcim", "hide": 2},
            {"name": "site", "label": "Site", "type": "query", "datasource": PROM_DS,
             "definition": 'label_values({__name__="${measurement}_value"}, site)',
             "query": {"query": 'label_values({__name__="${measurement}_value"}, site)', "refId": "site"},
             "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*",
             "current": {"text": "All", "value": "$__all"}},
        ]
        uid_out, title_out = uid, title
    else:
        variables = [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "influxdb",
             "current": {"text": "DCIM InfluxDB", "value": "dcim-influx"}},
            {"name": "bucket", "label": "Bucket", "type": "textbox", "query": "dcim", "current": {"text": "dcim", "value": "dcim"}},
            {"name": "measurement", "label": "Measurement", "type": "constant", "query": "dcim", "hide": 2},
            {"name": "site", "label": "Site", "type": "textbox", "query": ".*", "current": {"text": ".*", "value": ".*"}},
        ]
        uid_out, title_out = uid + "-flux", title + " (Flux)"
    return {
        "uid": uid_out,
        "title": title_out,
        "description": desc,
        "tags": ["dcim"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [{"title": "DCIM dashboards", "type": "dashboards", "tags": ["dcim"], "asDropdown": True}],
        "panels": out,
    }


def main():
    for lang, sub in (("promql", "json"), ("flux", "flux")):
        os.makedirs(os.path.join(HERE, sub), exist_ok=True)
        for name, uid, title, desc, panels in DASHBOARDS:
            d = dashboard(lang, uid, title, desc, panels)
            with open(os.path.join(HERE, sub, name), "w") as f:
                json.dump(d, f, indent=2, ensure_ascii=False)
                f.write("\n")
            print("wrote", os.path.join(sub, name))


if __name__ == "__main__":
    main()
