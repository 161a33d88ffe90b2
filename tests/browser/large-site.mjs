// A large site model for the console's layout checks: `halls` halls of `rows` rows of ten
// racks (4 x 50 x 10 = 2,000 racks), an A and a B PDU per row (400 PDUs), a row switch per row,
// four UPS zones with their battery rooms, two feeds, N+1 CRAHs per hall, two chillers.

export function largeSiteToml({ halls = 4, rows = 50 } = {}) {
  const out = [`[site]\nname = "large"\nstale_after_ms = 30000\n`];
  const c = (o) => {
    out.push('[[component]]');
    for (const [k, v] of Object.entries(o)) out.push(`${k} = ${JSON.stringify(v)}`);
    out.push('');
  };
  for (const f of ['a', 'b']) c({ id: `feed-${f}`, kind: 'utility_feed', rating_kw: 30000, nominal_v: 22900, device: `meter-${f}`, points: ['feed.breaker_closed', 'feed.voltage', 'feed.power_kw'] });
  for (const n of [1, 2]) c({ id: `ats-${n}`, kind: 'ats', rating_kw: 15000, upstream: ['feed-a', 'feed-b'], need: 1, device: `ats-${n}`, points: ['ats.source'] });
  for (const z of [1, 2, 3, 4]) {
    c({ id: `ups-z${z}`, kind: 'ups', zone: `z${z}`, rating_kw: 6000, nominal_v: 400, upstream: [`ats-${z <= 2 ? 1 : 2}`], device: `ups-z${z}`, points: ['ups.output_voltage', 'ups.output_kw', 'ups.on_battery'] });
    c({ id: `batt-z${z}`, kind: 'battery_room', zone: `z${z}`, device: `bms-z${z}`, points: ['fire.stage', 'battery.contactor_closed'] });
  }
  for (const n of [1, 2]) c({ id: `chiller-${n}`, kind: 'chiller', rating_kw: 12000, device: `chiller-${n}`, points: ['chiller.running'] });
  c({ id: 'loop-a', kind: 'chilled_water_loop', rating_kw: 12000, upstream: ['chiller-1', 'chiller-2'], need: 1, device: 'loop-a', points: ['loop.flow'] });
  for (const n of [1, 2]) c({ id: `carrier-${n}`, kind: 'carrier', rating_gbps: 400, device: `link-carrier-${n}`, points: ['link.up'] });
  c({ id: 'core-1', kind: 'core', rating_gbps: 800, upstream: ['carrier-1', 'carrier-2'], need: 1, device: 'core-1', points: ['device.online'] });
  for (let hIdx = 1; hIdx <= halls; hIdx += 1) {
    const za = ((hIdx - 1) % 2) + 1;
    const zb = za + 2;
    for (let k = 1; k <= 5; k += 1) c({ id: `crah-h${hIdx}-${k}`, kind: 'crah', room: `hall-${hIdx}`, rating_kw: 1200, upstream: ['loop-a'], device: `crah-h${hIdx}-${k}`, points: ['crah.running'] });
    c({ id: `hall-${hIdx}`, kind: 'room', name: `Data hall ${hIdx}`, upstream: [1, 2, 3, 4, 5].map((k) => `crah-h${hIdx}-${k}`), need: 4, device: `env-h${hIdx}`, points: ['room.temp'] });
    for (const [side, z] of [['a', za], ['b', zb]]) {
      out.push(`[[generate]]\ncount = ${rows}\ndigits = 2\n[generate.template]\nid = "pdu-h${hIdx}-{n}${side}"\nkind = "pdu"\nroom = "hall-${hIdx}"\nrating_kw = 150\nupstream = ["ups-z${z}"]\ndevice = "pdu-h${hIdx}-{n}${side}"\npoints = ["pdu.breaker_closed", "pdu.power_kw"]\n`);
    }
    out.push(`[[generate]]\ncount = ${rows}\ndigits = 2\n[generate.template]\nid = "row-h${hIdx}-{n}"\nkind = "row"\nroom = "hall-${hIdx}"\nrating_gbps = 100\nupstream = ["core-1"]\ndevice = "sw-h${hIdx}-{n}"\npoints = ["link.up"]\n`);
    out.push(`[[generate]]\ncount = ${rows * 10}\nstart = ${(hIdx - 1) * rows * 10 + 1}\ndigits = 4\nper_group = 10\n[generate.template]\nid = "r{n}"\nkind = "rack"\nroom = "hall-${hIdx}"\nrating_kw = 8\ndevice = "bms-r{n}"\npoints = ["it.power_kw", "fire.stage", "rack.temp"]\nupstream = [{ of = ["pdu-h${hIdx}-{g}a", "pdu-h${hIdx}-{g}b"], need = 1 }, { of = ["hall-${hIdx}"] }, { of = ["row-h${hIdx}-{g}"] }]\n`);
  }
  return out.join('\n');
}
