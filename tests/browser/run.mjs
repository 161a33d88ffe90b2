// Browser tests of the dcim-server console in headless Chromium (Debian's chromium driven by
// playwright-core). Starts dcim-server on ephemeral ports with the demo site model, feeds it over
// MQTT like an edge agent, and checks: every page loads without console errors; an alarm
// acknowledged in the browser is acknowledged on the server; a feed loss recolours the power
// view within 2 s; the fire-authority role sees no controls and the API refuses its writes; an
// operator enters authority control (the fire-authority view becomes the default page, commands
// are refused) and leaves it with a reason; a component's trend starts with the server's history
// from before the page loaded.
// Screenshots go to docs/screenshots/.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { Mqtt, Feeder, healthySamples, sendEvents } from './feeder.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const bin = process.env.DCIM_SERVER_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target'), 'debug/dcim-server');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const shots = process.env.SCREENSHOT_DIR ?? path.join(repo, 'docs/screenshots');
const PW = { op: 'operator-password-1', fire: 'fire-authority-pw-1', view: 'viewer-password-12' };

const results = [];
let failures = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push(`ok    ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures += 1;
    results.push(`FAIL  ${name}: ${e.stack ?? e}`);
  }
  console.log(results[results.length - 1]);
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
/// Screenshot without transient notifications covering the view.
async function shot(page, file, opts = {}) {
  await page.evaluate(() => document.querySelectorAll('#toasts .toast').forEach((t) => t.remove()));
  await page.screenshot({ path: path.join(shots, file), ...opts });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startServer(dir) {
  const cfg = path.join(dir, 'dcim.toml');
  fs.writeFileSync(cfg, `data_dir = ${JSON.stringify(path.join(dir, 'data'))}
site_model = ${JSON.stringify(path.join(repo, 'dcim-server/site/sites/demo.toml'))}
[http]
listen = "127.0.0.1:0"
[broker]
listen = "127.0.0.1:0"
[auth]
argon2_memory_kib = 256
argon2_iterations = 1
[[agents]]
id = "sim"
site = "demo"
password = "sim-agent-secret"
devices = ["*"]
[[users]]
name = "op"
role = "operator"
password_env = "PW_OP"
[[users]]
name = "fire"
role = "fire_authority"
password_env = "PW_FIRE"
[[users]]
name = "view"
role = "viewer"
password_env = "PW_VIEW"
`);
  const child = spawn(bin, ['--config', cfg], {
    env: { ...process.env, PW_OP: PW.op, PW_FIRE: PW.fire, PW_VIEW: PW.view, NO_COLOR: '1', RUST_LOG: 'info,rumqttd=off' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const addrs = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dcim-server did not start:\n${log}`)), 20000);
    child.stderr.on('data', (d) => {
      log += d.toString().replace(/\x1b\[[0-9;]*m/g, '');
      const m = log.match(/http_addr=(127\.0\.0\.1:\d+).*?mqtt=Some\((127\.0\.0\.1:\d+)\)/);
      if (m) {
        clearTimeout(timer);
        resolve({ http: m[1], mqtt: m[2] });
      }
    });
    child.on('exit', (code) => reject(new Error(`dcim-server exited with ${code}:\n${log}`)));
  });
  child.stderr.on('data', (d) => {
    log += d.toString();
  });
  return { child, ...addrs, log: () => log };
}

// A signed-in API client (cookie session + CSRF, like the browser).
async function session(base, user, password) {
  const r = await fetch(`${base}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: user, password }) });
  assert(r.ok, `login ${user}: ${r.status}`);
  const body = await r.json();
  const cookies = r.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const call = async (method, p, b) => {
    const res = await fetch(`${base}${p}`, {
      method,
      headers: { cookie: cookies, 'x-csrf-token': body.csrf_token, 'content-type': 'application/json', origin: base },
      body: b === undefined ? undefined : JSON.stringify(b),
    });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, json };
  };
  return { get: (p) => call('GET', p), post: (p, b) => call('POST', p, b ?? {}) };
}

async function waitFor(what, fn, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function main() {
  assert(fs.existsSync(bin), `no dcim-server binary at ${bin} (cargo build -p dcim-server)`);
  assert(fs.existsSync(chromiumPath), `no chromium at ${chromiumPath} (apt-get install chromium)`);
  fs.mkdirSync(shots, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dcim-browser-'));
  const server = await startServer(dir);
  const base = `http://${server.http}`;
  let browser = null;
  let userDir = null;
  let mqtt = null;
  let heartbeat = null;
  try {
    const op = await session(base, 'op', PW.op);
    const site = (await op.get('/api/site')).json.site;
    const [mh, mp] = server.mqtt.split(':');
    mqtt = await Mqtt.connect(mh, Number(mp), 'sim', 'sim', 'sim-agent-secret');
    const feeder = new Feeder(mqtt, 'sim', 'demo');
    const overrides = new Map(); // `${device}|${role}` -> value
    const publishAll = async () => {
      const samples = healthySamples(feeder, site);
      for (const smp of samples) {
        const k = `${smp.device}|${smp.role}`;
        if (overrides.has(k)) smp.value = overrides.get(k);
      }
      await feeder.send(samples);
    };
    const set = async (device, role, value) => {
      overrides.set(`${device}|${role}`, value);
      await feeder.send([feeder.sample(device, role, value)]);
    };
    // Readings of one point from before the page loads (an agent's replayed spool): the trend
    // of ups-z2 must start with them, from the server's history of the point.
    const before = Date.now();
    await feeder.send([20, 10, 5].map((min, i) => ({ ...feeder.sample('ups-z2', 'ups.output_voltage', 398 + i), ts_ms: before - min * 60000 })));
    await publishAll();
    // Extra points the fire-authority view shows (not bound in the site model).
    await feeder.send([
      feeder.sample('fire-z2', 'fire.gas_released', false),
      feeder.sample('fire-z2', 'fire.coolant_flow', 42),
      feeder.sample('drain-1', 'drain_tank.level_pct', 12),
    ]);
    heartbeat = setInterval(() => publishAll().catch(() => {}), 5000);
    await waitFor('power redundancy evaluated', async () => {
      const r = await op.get('/api/site/redundancy');
      return r.json.subsystems?.find((s) => s.subsystem === 'power')?.current === '2N';
    });

    await check('console assets: content types, cache headers, history fallback', async () => {
      const expect = [
        ['/console/', 200, 'text/html', 'no-cache'],
        ['/console/alarms', 200, 'text/html', 'no-cache'],
        ['/console/racks/r017', 200, 'text/html', 'no-cache'],
        ['/console/js/app.js', 200, 'text/javascript', 'max-age'],
        ['/console/css/console.css', 200, 'text/css', 'max-age'],
        ['/console/js/missing.js', 404, null, null],
        ['/console/../Cargo.toml', 404, null, null],
      ];
      for (const [p, status, type, cache] of expect) {
        const r = await fetch(`${base}${p}`);
        assert(r.status === status, `${p}: status ${r.status}, expected ${status}`);
        if (type) assert((r.headers.get('content-type') ?? '').startsWith(type), `${p}: content-type ${r.headers.get('content-type')}`);
        if (cache) assert((r.headers.get('cache-control') ?? '').includes(cache), `${p}: cache-control ${r.headers.get('cache-control')}`);
      }
      const root = await fetch(`${base}/`, { redirect: 'manual' });
      assert(root.status >= 300 && root.status < 400 && root.headers.get('location') === '/console/', `/ answered ${root.status}`);
      const api = await fetch(`${base}/api/no-such-route`);
      assert(api.status === 404 && !(api.headers.get('content-type') ?? '').includes('html'), 'unknown API routes must not fall back to the console');
      const anon = await fetch(`${base}/api/alarms`);
      assert(anon.status === 401, `anonymous /api/alarms answered ${anon.status}`);
    });

    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dcim-chromium-'));
    browser = await chromium.launchPersistentContext(userDir, {
      executablePath: chromiumPath,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1920, height: 1080 },
      timeout: 30000,
    });
    const page = browser.pages()[0] ?? (await browser.newPage());
    const errors = [];
    const watch = (p, who) => {
      p.on('console', (m) => {
        if (m.type() === 'error') errors.push(`${who}: ${m.text()}`);
      });
      p.on('pageerror', (e) => errors.push(`${who}: ${e.message}`));
    };
    watch(page, 'operator');
    const noErrors = (where) => {
      assert(errors.length === 0, `console errors on ${where}:\n${errors.join('\n')}`);
    };

    await check('login page renders and signs in with the CSRF scheme', async () => {
      await page.goto(`${base}/console/`);
      await page.waitForSelector('form.login #username');
      await shot(page, 'login.png');
      await page.fill('#username', 'op');
      await page.fill('#password', 'wrong password');
      await page.click('#login-submit');
      await page.waitForFunction(() => document.querySelector('#login-error')?.textContent.includes('Wrong'));
      errors.length = 0; // the refused sign-in logs its 401 as a resource error
      await page.fill('#password', PW.op);
      await page.click('#login-submit');
      await page.waitForSelector('section.card.sub[data-subsystem="power"]');
      noErrors('login');
    });

    await check('overview shows redundancy designed vs current and PUE', async () => {
      await page.waitForFunction(() => document.querySelector('section.card.sub[data-subsystem="power"] .big')?.textContent.includes('2N'));
      const pue = await page.textContent('#pue .big');
      assert(Math.abs(parseFloat(pue) - 1.2) < 0.01, `PUE shown ${pue}, expected 1.20 (1800 kW / 1500 kW)`);
      await shot(page, 'overview-healthy.png');
      noErrors('overview');
    });

    await check('a feed loss recolours the power view within 2 seconds', async () => {
      await page.click('nav a[data-view="power"]');
      await page.waitForSelector('svg.diagram g.node[data-id="feed-a"][data-state="up"]');
      const t0 = Date.now();
      await set('meter-a', 'feed.breaker_closed', false);
      await page.waitForSelector('svg.diagram g.node[data-id="feed-a"][data-state="down"]', { timeout: 2000 });
      const dt = Date.now() - t0;
      await page.waitForSelector('svg.diagram g.node[data-id="ats-1"][data-state="degraded"]', { timeout: 2000 });
      console.log(`      feed-a recoloured ${dt} ms after the breaker-open sample was published`);
      await page.click('svg.diagram g.node[data-id="ups-z1"]');
      await page.waitForSelector('#component-panel table.points');
      await page.click('#component-panel button.link >> nth=1');
      await page.waitForSelector('#component-panel svg.chart');
      await shot(page, 'power.png');
      noErrors('power');
    });

    await check('a component trend is seeded with the history from before the page loaded', async () => {
      const asked = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/points/ups-z2/ups_output_voltage/history', { timeout: 3000 });
      await page.click('svg.diagram g.node[data-id="ups-z2"]');
      await page.waitForSelector('#component-panel table.points');
      const res = await asked;
      assert(res.status() === 200, `history request answered ${res.status()}`);
      // The chart (ups.output_voltage is the first numeric point) starts at the bucket of the
      // reading published 20 minutes before the page loaded.
      const from = await page.waitForFunction((t) => {
        const v = Number(document.querySelector('#component-panel svg.chart')?.getAttribute('data-from'));
        return v && v <= t ? v : null;
      }, before - 19 * 60000, { timeout: 3000 }).then((h) => h.jsonValue()).catch(() => null);
      const got = await page.getAttribute('#component-panel svg.chart', 'data-from');
      assert(from, `trend starts at ${got ? new Date(Number(got)).toISOString() : 'nothing'}, expected about ${new Date(before - 20 * 60000).toISOString()}`);
      const n = Number(await page.getAttribute('#component-panel svg.chart', 'data-n'));
      assert(n >= 4, `trend draws ${n} samples, expected the 3 earlier readings and the live one`);
      noErrors('trend history');
    });

    await check('an alarm acknowledged in the browser is acknowledged on the server', async () => {
      await page.click('nav a[data-view="alarms"]');
      const row = 'tr.alarm[data-id="redundancy:power"]';
      await page.waitForSelector(`${row}[data-state="unacknowledged"] button.ack`);
      await shot(page, 'alarms.png');
      await page.click(`${row} button.ack`);
      await waitFor('server-side acknowledgement', async () => {
        const r = await op.get('/api/alarms');
        const a = r.json.alarms.find((x) => x.id === 'redundancy:power');
        return a && a.base === 'acknowledged' && a.acked_by === 'op';
      }, 5000);
      await page.waitForSelector(`${row}[data-state="acknowledged"]`, { timeout: 3000 });
      // Shelve another alarm with an expiry and comment on it, through the UI.
      const other = 'tr.alarm[data-id="feed-breaker-open:meter-a"]';
      await page.waitForSelector(other);
      await page.selectOption(`${other} select.shelve-min`, '60');
      // Shelving asks for a reason (the server refuses it without one).
      page.once('dialog', (d) => d.accept('Utility crew on site'));
      await page.click(`${other} button.shelve-btn`);
      const shelved = await waitFor('shelved on the server', async () => {
        const r = await op.get('/api/alarms');
        const a = r.json.alarms.find((x) => x.id === 'feed-breaker-open:meter-a');
        return a?.overlays?.shelved_until ? a : null;
      }, 5000);
      const mins = (shelved.overlays.shelved_until - Date.now()) / 60000;
      assert(mins > 55 && mins <= 60.5, `shelved for ${mins} min, expected 60`);
      await page.waitForSelector(`${other}[data-state="shelved"]`);
      await page.click(`${row} >> text=Comment`);
      await page.fill('#comment-text', 'Utility informed, crew on the way');
      await page.press('#comment-text', 'Enter');
      await waitFor('comment in the alarm journal', async () => {
        const r = await op.get('/api/alarms/redundancy:power/journal');
        return JSON.stringify(r.json).includes('crew on the way');
      }, 5000);
      await page.waitForSelector('#alarm-journal li >> text=crew on the way');
      await shot(page, 'alarms-acknowledged.png');
      noErrors('alarms');
    });

    await check('battery rooms: a heating rack shows its stage on the floor map', async () => {
      await set('bms-r017', 'fire.stage', 3);
      await set('bms-r017', 'rack.temp', 68);
      await set('bms-r018', 'fire.stage', 1);
      await set('bms-r018', 'rack.temp', 41);
      const batt = site.components.find((c) => c.id === 'batt-z2');
      const dev = batt.bindings[0].device;
      await set(dev, 'fire.stage', 2);
      await sendEvents(feeder, [
        { device: 'bms-r017', kind: 'fire.stage', severity: 'alarm', message: 'Stage 3: off-gas and temperature rising; rack contactor opened automatically', data: { stage: 3 } },
        { device: 'bms-r017', kind: 'fire.contactor_open', severity: 'alarm', message: 'Battery string contactor opened by fire logic' },
      ]);
      await page.click('nav a[data-view="racks"]');
      await page.waitForSelector('button.rack[data-id="r017"][data-stage="3"]', { timeout: 3000 });
      await page.waitForSelector('.battroom[data-id="batt-z2"][data-stage="2"]', { timeout: 3000 });
      await page.click('button.rack[data-id="r017"]');
      await page.waitForSelector('#rack-panel ul.log >> text=contactor opened', { timeout: 3000 });
      await shot(page, 'battery-rooms.png');
      await page.click('#mode-temp');
      await page.waitForSelector('button.rack.t-hot[data-id="r017"]');
      await shot(page, 'battery-rooms-temperature.png');
      noErrors('battery rooms');
    });

    for (const [view, file, ready] of [
      ['cooling', 'cooling.png', 'svg.diagram g.node[data-id="chiller-1"][data-state="up"]'],
      ['network', 'network.png', 'svg.diagram g.node[data-id="carrier-a"][data-state="up"]'],
      ['overview', 'overview.png', '#alarms-by-grade .grade.g2'],
    ]) {
      await check(`${view} view loads`, async () => {
        await page.click(`nav a[data-view="${view}"]`);
        await page.waitForSelector(ready);
        if (view === 'cooling') {
          await page.focus('svg.diagram g.node[data-id="tank-1"]');
          await page.keyboard.press('Enter');
          await page.waitForSelector('#component-panel');
        }
        await shot(page, file);
        noErrors(view);
      });
    }

    await check('incidents: journal, note, follow-up and export', async () => {
      await page.click('nav a[data-view="incidents"]');
      await page.waitForSelector('#incident-detail');
      await page.fill('#incident-note', 'Switched to feed B, utility investigating');
      await page.press('#incident-note', 'Enter');
      await page.waitForSelector('#incident-detail ol.timeline >> text=Switched to feed B');
      const id = await page.getAttribute('#incident-detail', 'data-id');
      const md = await page.evaluate(async (i) => (await fetch(`/api/incidents/${i}/export?format=markdown`)).text(), id);
      assert(md.includes('Switched to feed B'), 'markdown export lacks the note');
      await shot(page, 'incidents.png');
      noErrors('incidents');
    });

    await check('what-if shows the impact of failing components on the diagrams', async () => {
      await page.click('nav a[data-view="whatif"]');
      await page.check('.picker input[value="feed-b"]');
      await page.waitForSelector('#whatif-result');
      await page.waitForSelector('svg.diagram[data-subsystem="power"] g.node.failed[data-id="feed-b"]');
      await page.waitForSelector('svg.diagram[data-subsystem="power"] g.node.loses');
      await shot(page, 'whatif.png', { fullPage: true });
      noErrors('what-if');
    });

    await check('keyboard shortcuts navigate', async () => {
      await page.keyboard.press('g');
      await page.keyboard.press('a');
      await page.waitForSelector('#alarm-table');
      await page.keyboard.press('?');
      await page.waitForSelector('dialog#help[open]');
      await page.keyboard.press('Escape');
      noErrors('shortcuts');
    });

    await check('fire authority: read-only view, no controls, and the API refuses writes', async () => {
      const ctx2Dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dcim-chromium-'));
      const fb = await chromium.launchPersistentContext(ctx2Dir, {
        executablePath: chromiumPath, headless: true, viewport: { width: 1920, height: 1080 },
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
      try {
        const fp = fb.pages()[0] ?? (await fb.newPage());
        watch(fp, 'fire');
        await fp.goto(`${base}/console/`);
        await fp.fill('#username', 'fire');
        await fp.fill('#password', PW.fire);
        await fp.click('#login-submit');
        await fp.waitForSelector('#fire-stages');
        await fp.waitForSelector('#fire-stages tr[data-stage="3"] >> text=r017');
        const liveFeeds = await fp.textContent('#fire-power tr[data-kind="utility_feed"] td.live');
        assert(liveFeeds.includes('feed-b') && !liveFeeds.includes('feed-a'), `live feeds shown: ${liveFeeds}`);
        await fp.waitForSelector('#fire-coolant >> text=drain_tank.level_pct');
        await fp.waitForSelector('#fire-log >> text=Battery string contactor opened');
        await shot(fp, 'fire-authority.png', { fullPage: true });
        await fp.emulateMedia({ media: 'print' });
        await shot(fp, 'fire-authority-print.png', { fullPage: true });
        await fp.emulateMedia({ media: 'screen' });
        for (const view of ['alarms', 'incidents']) {
          await fp.goto(`${base}/console/${view}`);
          await fp.waitForSelector(view === 'alarms' ? '#alarm-table' : '.inclist');
          const buttons = await fp.$$eval('main button, main form, main select', (els) => els.filter((e) => !e.closest('.panel-head') && !e.classList.contains('incident')).map((e) => e.outerHTML.slice(0, 80)));
          assert(buttons.length === 0, `fire authority sees controls on ${view}: ${buttons.join(' | ')}`);
        }
        const r = await fp.evaluate(async () => {
          const csrf = document.cookie.split('; ').find((c) => c.startsWith('dcim_csrf='))?.split('=')[1];
          const out = [];
          for (const [p, b] of [['/api/alarms/redundancy:power/comment', { text: 'x' }], ['/api/incidents', { title: 'x', grade: 3 }], ['/api/alarms/feed-breaker-open:meter-a/unshelve', {}]]) {
            const res = await fetch(p, { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: JSON.stringify(b) });
            out.push(res.status);
          }
          return out;
        });
        assert(r.every((s) => s === 403), `fire-authority writes answered ${r}`);
        const viewer = await session(base, 'view', PW.view);
        const vAck = await viewer.post('/api/alarms/redundancy:power/ack');
        assert(vAck.status === 403, `viewer ack answered ${vAck.status}`);
        const fs2 = await session(base, 'fire', PW.fire);
        const ack = await fs2.post('/api/alarms/redundancy:power/ack');
        assert(ack.status === 403, `fire-authority ack answered ${ack.status}`);
        await fp.goto(`${base}/console/power`);
        await fp.waitForSelector('svg.diagram g.node[data-id="feed-a"][data-state="down"]');
        // The page-level 403s above are expected resource errors; nothing else may be logged.
        const unexpected = errors.filter((e) => !/status of 403/.test(e));
        assert(unexpected.length === 0, `console errors:\n${unexpected.join('\n')}`);
        errors.length = 0;
      } finally {
        await fb.close();
        fs.rmSync(ctx2Dir, { recursive: true, force: true });
      }
    });

    await check('authority control: operator enters, the fire view is the default, commands are refused, operator leaves', async () => {
      await page.click('nav a[data-view="overview"]');
      await page.waitForSelector('section.card.sub[data-subsystem="power"]');
      await page.waitForSelector('#authority-banner', { state: 'hidden' });
      await page.click('#authority-toggle');
      await page.waitForSelector('dialog#authority-dialog[open]');
      await page.fill('#authority-reason', 'Fire brigade in command of battery room 2');
      await page.click('#authority-submit');
      // Every console switches to the fire-authority view, under a red banner naming who and why.
      await page.waitForSelector('#fire-stages');
      const banner = await page.textContent('#authority-banner');
      assert(banner.includes('AUTHORITY CONTROL') && banner.includes('op (operator)') && banner.includes('battery room 2'), `banner: ${banner}`);
      const st = await op.get('/api/authority');
      assert(st.json.authority.active === true && st.json.authority.cause.user === 'op', `server state: ${JSON.stringify(st.json)}`);
      await page.goto(`${base}/console/`);
      await page.waitForSelector('#fire-stages');
      assert(new URL(page.url()).pathname === '/console/fire', `default page is ${page.url()}`);
      await page.waitForSelector('#authority-banner:not([hidden])');
      // A device command is refused: disabled with the reason in the UI, 423 from the server.
      await page.goto(`${base}/console/racks/r017`);
      await page.waitForSelector('#rack-panel #cmd-ack');
      const btn = await page.$eval('#cmd-ack', (b) => ({ disabled: b.disabled, title: b.title }));
      assert(btn.disabled && btn.title.includes('authority control'), `command button: ${JSON.stringify(btn)}`);
      const refused = await page.evaluate(async () => {
        const csrf = document.cookie.split('; ').find((c) => c.startsWith('dcim_csrf='))?.split('=')[1];
        const res = await fetch('/api/devices/bms-r017/commands', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: JSON.stringify({ kind: 'acknowledge' }) });
        return { status: res.status, body: await res.json() };
      });
      assert(refused.status === 423 && refused.body.error.includes('authority control'), `command answered ${JSON.stringify(refused)}`);
      await shot(page, 'authority-control.png');
      await page.click('nav a[data-view="alarms"]');
      await page.waitForSelector('#alarm-table button.shelve-btn[disabled]');
      // Leaving needs a reason; then the banner goes and commands are possible again.
      await page.click('#authority-toggle');
      await page.waitForSelector('dialog#authority-dialog[open]');
      await page.fill('#authority-reason', 'Brigade handed the site back');
      await page.click('#authority-submit');
      await page.waitForSelector('#authority-banner', { state: 'hidden' });
      const after = await op.get('/api/authority');
      assert(after.json.authority.active === false, `server state after leaving: ${JSON.stringify(after.json)}`);
      await page.waitForSelector('#alarm-table button.shelve-btn:not([disabled])');
      const unexpected = errors.filter((e) => !/status of 423/.test(e));
      assert(unexpected.length === 0, `console errors:\n${unexpected.join('\n')}`);
      errors.length = 0;
    });
  } finally {
    if (heartbeat) clearInterval(heartbeat);
    if (mqtt) mqtt.close();
    if (browser) await browser.close().catch(() => {});
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
    server.child.kill('SIGTERM');
    await sleep(300);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (failures) {
    console.log(`\n${failures} browser check(s) failed`);
    console.log('--- server log (tail) ---');
    console.log(server.log().split('\n').slice(-30).join('\n'));
  }
}

const deadline = setTimeout(() => {
  console.log('browser tests: overall time limit (180 s) exceeded');
  process.exit(2);
}, 180000);
main()
  .then(() => {
    clearTimeout(deadline);
    console.log(`\n${results.length - failures} passed, ${failures} failed`);
    process.exit(failures ? 1 : 0);
  })
  .catch((e) => {
    console.log(`browser tests: ${e.stack ?? e}`);
    process.exit(1);
  });
