// Feeds a running dcim-server like an edge agent would: healthy samples for every binding of
// the site model (read from /api/site), published as wire-format telemetry batches over MQTT
// 3.1.1 (a minimal client on a plain TCP socket: CONNECT, PUBLISH QoS 1, PUBACK, PINGREQ).
import net from 'node:net';

function encLen(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}
function str(s) {
  const b = Buffer.from(s, 'utf8');
  const l = Buffer.alloc(2);
  l.writeUInt16BE(b.length);
  return Buffer.concat([l, b]);
}
function packet(type, flags, body) {
  return Buffer.concat([Buffer.from([(type << 4) | flags]), encLen(body.length), body]);
}

export class Mqtt {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.nextId = 1;
    this.waiting = new Map();
    this.connack = null;
    sock.on('data', (d) => this.onData(d));
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(new Error('broker closed the connection')));
    this.ping = setInterval(() => sock.write(Buffer.from([0xc0, 0])), 10000);
  }
  fail(e) {
    clearInterval(this.ping);
    for (const [, w] of this.waiting) w.reject(e);
    this.waiting.clear();
    if (this.connack) this.connack.reject(e);
  }
  static connect(host, port, id, user, password) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, host);
      const c = new Mqtt(sock);
      c.connack = { resolve: () => resolve(c), reject };
      sock.on('connect', () => {
        const vh = Buffer.concat([str('MQTT'), Buffer.from([4, 0xc2, 0, 30])]);
        sock.write(packet(1, 0, Buffer.concat([vh, str(id), str(user), str(password)])));
      });
      setTimeout(() => reject(new Error('CONNACK timeout')), 5000);
    });
  }
  onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) return;
      let mult = 1, len = 0, i = 1, b;
      do {
        if (i >= this.buf.length) return;
        b = this.buf[i++];
        len += (b & 127) * mult;
        mult *= 128;
      } while (b & 128);
      if (this.buf.length < i + len) return;
      const type = this.buf[0] >> 4;
      const body = this.buf.subarray(i, i + len);
      this.buf = this.buf.subarray(i + len);
      if (type === 2 && this.connack) {
        const c = this.connack;
        this.connack = null;
        if (body[1] === 0) c.resolve();
        else c.reject(new Error(`CONNACK refused, code ${body[1]}`));
      } else if (type === 4) {
        const id = body.readUInt16BE(0);
        const w = this.waiting.get(id);
        this.waiting.delete(id);
        if (w) w.resolve();
      }
    }
  }
  publish(topic, payload) {
    const id = this.nextId;
    this.nextId = (this.nextId % 65535) + 1;
    const idb = Buffer.alloc(2);
    idb.writeUInt16BE(id);
    const p = packet(3, 2, Buffer.concat([str(topic), idb, Buffer.from(payload)]));
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.sock.write(p);
      setTimeout(() => {
        if (this.waiting.delete(id)) reject(new Error('PUBACK timeout'));
      }, 5000);
    });
  }
  close() {
    clearInterval(this.ping);
    this.sock.end(Buffer.from([0xe0, 0]));
  }
}

// Port of dcim_site::fixture::healthy_value (values are untagged JSON: bool, number, text).
export function healthyValue(kind, role, nominalV) {
  switch (role) {
    case 'feed.breaker_closed': case 'pdu.breaker_closed': case 'chiller.running':
    case 'crah.running': case 'link.up': case 'device.online': case 'battery.contactor_closed':
      return true;
    case 'chiller.fault': case 'crah.fault': case 'ups.on_battery': case 'ups.alarm':
      return false;
    case 'feed.voltage': case 'ups.output_voltage': return nominalV ?? 400;
    case 'ats.source': return 'A';
    case 'fire.stage': return 0;
    case 'it.power_kw': return 5;
    case 'pdu.power_kw': return 25;
    case 'ups.output_kw': return 375;
    case 'feed.power_kw': return kind === 'utility_feed' ? 900 : 0;
    case 'chiller.load_kw': return 750;
    case 'crah.cooling_kw': return 125;
    case 'loop.flow': return 180;
    case 'buffer_tank.temp': return 8;
    case 'buffer_tank.level_pct': return 100;
    case 'link.throughput_gbps': return 10;
    default: return 20;
  }
}

export class Feeder {
  constructor(mqtt, agent, site) {
    this.mqtt = mqtt;
    this.agent = agent;
    this.site = site;
    this.seq = 0;
  }
  sample(device, role, value, labels) {
    return {
      device, point: role.replaceAll('.', '_'), role, labels: labels ?? {}, value,
      unit: '', quality: 'good', ts_ms: Date.now(),
    };
  }
  async send(samples) {
    for (let i = 0; i < samples.length; i += 500) {
      this.seq += 1;
      const batch = { v: 1, agent: this.agent, seq: this.seq, samples: samples.slice(i, i + 500) };
      await this.mqtt.publish(`dcim/v1/${this.site}/${this.agent}/telemetry`, JSON.stringify(batch));
    }
  }
}

/// Publishes agent events (fire-logic actions and the like); `seq` continues per feeder.
export async function sendEvents(feeder, events) {
  feeder.eventSeq = feeder.eventSeq ?? 0;
  const batch = {
    v: 1,
    agent: feeder.agent,
    events: events.map((e) => {
      feeder.eventSeq += 1;
      return { id: `${feeder.agent}:${feeder.eventSeq}`, seq: feeder.eventSeq, ts_ms: Date.now(), severity: 'info', data: null, ...e };
    }),
  };
  await feeder.mqtt.publish(`dcim/v1/${feeder.site}/${feeder.agent}/events`, JSON.stringify(batch));
}

export function healthySamples(feeder, siteModel) {
  const out = [];
  for (const c of siteModel.components) {
    for (const b of c.bindings ?? []) {
      out.push(feeder.sample(b.device, b.role, healthyValue(c.kind, b.role, c.nominal_v), b.labels));
    }
  }
  return out;
}
