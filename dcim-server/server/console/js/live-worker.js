// The one live connection of this browser (a SharedWorker): every console tab of the origin
// shares this EventSource on /api/stream instead of opening its own, so that ten tabs hold one
// long-lived connection and leave the browser's other connections to the server (six per host
// over HTTP/1.1) for API calls.
//
// Messages to tabs: {type: 'state', state: 'connecting'|'open'|'error'|'silent', lastMsgMs,
// opened} and {type: 'event', name, data, at}. From tabs: {type: 'restart'} (a new session
// signed in: reconnect with its cookie), {type: 'bye'} (the tab goes away).
//
// The server sends a `heartbeat` event after HEARTBEAT_MS without another one; a stream silent
// for SILENT_MS is treated as lost (a hung server or a cut network path can keep a TCP
// connection open without anything arriving) and reconnected.

const EVENTS = ['points', 'event', 'agent', 'alarm', 'incident', 'audit', 'authority', 'maintenance', 'redundancy', 'lagged', 'heartbeat'];
const HEARTBEAT_MS = 1500;
const SILENT_MS = 3500;

const ports = new Set();
let es = null;
let retry = null;
let backoff = 1000;
const status = { state: 'connecting', lastMsgMs: 0, opened: 0 };

function post(msg) {
  for (const p of ports) {
    try {
      p.postMessage(msg);
    } catch {
      ports.delete(p);
    }
  }
}

function setState(st) {
  status.state = st;
  post({ type: 'state', ...status });
}

function connect() {
  clearTimeout(retry);
  retry = null;
  if (es) es.close();
  const src = new EventSource(`/api/stream?heartbeat_ms=${HEARTBEAT_MS}`);
  es = src;
  for (const name of EVENTS) {
    src.addEventListener(name, (e) => {
      if (es !== src) return;
      status.lastMsgMs = Date.now();
      if (status.state !== 'open') setState('open');
      post({ type: 'event', name, data: e.data, at: status.lastMsgMs });
    });
  }
  src.onopen = () => {
    if (es !== src) return;
    backoff = 1000;
    status.opened += 1;
    status.lastMsgMs = Date.now();
    setState('open');
  };
  src.onerror = () => {
    if (es !== src) return;
    setState('error');
    // A network error reconnects by itself; an HTTP error (401 after a sign-out, 502 from a
    // proxy) closes the EventSource for good: try again with a growing delay.
    if (src.readyState === EventSource.CLOSED) {
      src.close();
      es = null;
      retry = setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    }
  };
}

setInterval(() => {
  if (status.state === 'open' && Date.now() - status.lastMsgMs > SILENT_MS) {
    setState('silent');
    connect();
  }
}, 500);

self.onconnect = (e) => {
  const port = e.ports[0];
  ports.add(port);
  port.onmessage = (m) => {
    const t = m.data?.type;
    if (t === 'restart') connect();
    else if (t === 'bye') ports.delete(port);
  };
  port.start();
  port.postMessage({ type: 'state', ...status });
  // A tab that connects while the stream is down (a new sign-in after a 401) does not wait for
  // the next retry.
  if (!es || retry) connect();
};
