"""Write the Node-RED flow and settings files for tests/bench/run.sh.

usage: python nodered_flows.py modbus USERDIR HTTP_PORT --addrs 127.0.0.1:P1,... --regs 125
       python nodered_flows.py mqtt   USERDIR HTTP_PORT --mqtt-port P

modbus: one modbus-client (node-red-contrib-modbus) and one modbus-getter per device, in a closed
        loop (inject once -> getter -> count -> getter), i.e. one read in flight per device, as
        fast as the answers come back, the same shape as the other pollers.
mqtt:   mqtt in (dcim/v1/+/+/telemetry) -> json -> function: a threshold check on every sample
        (rack.temp > 35 °C, fire.stage >= 3), counting samples and, for fire.stage >= 3, the
        latency from the sample's ts_ms to the alarm decision.
Both:   GET /bench/stats returns the counters as JSON, GET /bench/reset clears them.
"""

import json
import os
import sys

mode, userdir, http_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
opts = dict(zip(sys.argv[4::2], sys.argv[5::2]))
tab = "benchtab"
nodes = [{"id": tab, "type": "tab", "label": "bench"}]

STATS = """
const st = global.get('st') || {};
const lat = (st.lat || []).slice().sort((a, b) => a - b);
const pct = p => lat.length ? lat[Math.round((lat.length - 1) * p)] : null;
msg.payload = { reads: st.reads || 0, points: st.points || 0, alarms: lat.length,
                temp_alarms: st.temp_alarms || 0, p50: pct(0.5), p99: pct(0.99) };
return msg;
"""
RESET = "global.set('st', { reads: 0, points: 0, lat: [], temp_alarms: 0 }); msg.payload = {ok: true}; return msg;"


def http(path, code, n):
    nodes.extend([
        {"id": f"in{n}", "type": "http in", "z": tab, "url": path, "method": "get", "wires": [[f"fn{n}"]]},
        {"id": f"fn{n}", "type": "function", "z": tab, "func": code, "outputs": 1, "wires": [[f"out{n}"]]},
        {"id": f"out{n}", "type": "http response", "z": tab, "statusCode": "200", "headers": {}, "wires": []},
    ])


http("/bench/stats", STATS, "s")
http("/bench/reset", RESET, "r")

if mode == "modbus":
    regs = opts.get("--regs", "125")
    count = (
        "const st = global.get('st') || {reads: 0, points: 0, lat: []};"
        "if (Array.isArray(msg.payload)) { st.reads += 1; st.points += msg.payload.length; }"
        "global.set('st', st); return msg;"
    )
    for i, addr in enumerate(opts["--addrs"].split(",")):
        host, port = addr.rsplit(":", 1)
        nodes.extend([
            {"id": f"cl{i}", "type": "modbus-client", "name": f"dev{i}", "clienttype": "tcp",
             "bufferCommands": True, "stateLogEnabled": False, "queueLogEnabled": False,
             "tcpHost": host, "tcpPort": port, "tcpType": "DEFAULT", "serialPort": "/dev/ttyUSB",
             "serialType": "RTU-BUFFERD", "serialBaudrate": "9600", "serialDatabits": "8",
             "serialStopbits": "1", "serialParity": "none", "serialConnectionDelay": "100",
             "unit_id": "1", "commandDelay": "1", "clientTimeout": "1000",
             "reconnectOnTimeout": True, "reconnectTimeout": "2000", "parallelUnitIdsAllowed": True},
            {"id": f"go{i}", "type": "inject", "z": tab, "once": True, "onceDelay": "1",
             "repeat": "", "payload": "", "payloadType": "date", "wires": [[f"get{i}"]]},
            {"id": f"get{i}", "type": "modbus-getter", "z": tab, "name": "", "showStatusActivities": False,
             "showErrors": False, "logIOActivities": False, "unitid": "", "dataType": "InputRegister",
             "adr": "0", "quantity": regs, "server": f"cl{i}", "useIOFile": False, "ioFile": "",
             "useIOForPayload": False, "emptyMsgOnFail": True, "keepMsgProperties": False,
             "wires": [[f"cnt{i}"], []]},
            {"id": f"cnt{i}", "type": "function", "z": tab, "func": count, "outputs": 1,
             "wires": [[f"get{i}"]]},
        ])
elif mode == "mqtt":
    check = """
const st = global.get('st') || {reads: 0, points: 0, lat: [], temp_alarms: 0};
const now = Date.now();
const samples = (msg.payload && msg.payload.samples) || [];
for (const s of samples) {
    st.points += 1;
    if (s.role === 'rack.temp' && typeof s.value === 'number' && s.value > 35) st.temp_alarms += 1;
    else if (s.role === 'fire.stage' && typeof s.value === 'number' && s.value >= 3) st.lat.push(now - s.ts_ms);
}
global.set('st', st);
return null;
"""
    nodes.extend([
        {"id": "cfgbroker1", "type": "mqtt-broker", "name": "bench", "broker": "127.0.0.1",
         "port": opts["--mqtt-port"], "clientid": "nodered-bench", "autoConnect": True,
         "usetls": False, "protocolVersion": "4", "keepalive": "60", "cleansession": True},
        {"id": "mqttin1", "type": "mqtt in", "z": tab, "topic": "dcim/v1/+/+/telemetry", "qos": "0",
         "datatype": "utf8", "broker": "cfgbroker1", "nl": False, "rap": True, "inputs": 0,
         "wires": [["jsonnode1"]]},
        {"id": "jsonnode1", "type": "json", "z": tab, "property": "payload", "action": "obj",
         "pretty": False, "wires": [["checkfn1"]]},
        {"id": "checkfn1", "type": "function", "z": tab, "func": check, "outputs": 1, "wires": [[]]},
    ])
else:
    sys.exit(f"unknown mode {mode!r}: expected modbus or mqtt")

os.makedirs(userdir, exist_ok=True)
with open(os.path.join(userdir, "flows.json"), "w") as f:
    json.dump(nodes, f, indent=1)
with open(os.path.join(userdir, "settings.js"), "w") as f:
    f.write(
        "module.exports = {\n"
        f"  uiHost: '127.0.0.1', uiPort: {http_port},\n"
        f"  userDir: {json.dumps(userdir)}, flowFile: 'flows.json',\n"
        "  httpAdminRoot: false, credentialSecret: false, editorTheme: { tours: false },\n"
        "  logging: { console: { level: 'warn', metrics: false, audit: false } },\n"
        "  functionGlobalContext: {},\n"
        "};\n"
    )
