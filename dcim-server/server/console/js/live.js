// The tab's side of the live stream: the browser-wide connection of `live-worker.js` (a
// SharedWorker), or, where SharedWorker is missing, an EventSource of the tab's own with the
// same messages. `onEvent(name, parsedData, atMs)`; `onStatus({state, lastMsgMs, opened})`.

const HEARTBEAT_MS = 1500;
const SILENT_MS = 3500;

export function openLive(onEvent, onStatus) {
  const deliver = (name, raw, at) => {
    let d = null;
    try {
      d = JSON.parse(raw);
    } catch {
      d = raw;
    }
    onEvent(name, d, at);
  };
  if (typeof SharedWorker === 'function') {
    try {
      const w = new SharedWorker('/console/js/live-worker.js', { name: 'dcim-live' });
      w.port.onmessage = (m) => {
        const msg = m.data;
        if (msg?.type === 'event') deliver(msg.name, msg.data, msg.at);
        else if (msg?.type === 'state') onStatus({ state: msg.state, lastMsgMs: msg.lastMsgMs, opened: msg.opened, shared: true });
      };
      w.port.start();
      const bye = () => w.port.postMessage({ type: 'bye' });
      window.addEventListener('pagehide', bye);
      return {
        shared: true,
        restart: () => w.port.postMessage({ type: 'restart' }),
        close: () => {
          window.removeEventListener('pagehide', bye);
          bye();
          w.port.close();
        },
      };
    } catch (e) {
      console.warn('shared live connection unavailable, using one per tab:', e?.message ?? e);
    }
  }
  return ownStream(deliver, onStatus);
}

const EVENTS = ['points', 'event', 'agent', 'alarm', 'incident', 'audit', 'authority', 'maintenance', 'redundancy', 'lagged', 'heartbeat'];

function ownStream(deliver, onStatus) {
  let es = null;
  let retry = null;
  let backoff = 1000;
  const st = { state: 'connecting', lastMsgMs: 0, opened: 0, shared: false };
  const set = (s) => {
    st.state = s;
    onStatus({ ...st });
  };
  const connect = () => {
    clearTimeout(retry);
    if (es) es.close();
    const src = new EventSource(`/api/stream?heartbeat_ms=${HEARTBEAT_MS}`);
    es = src;
    for (const name of EVENTS) {
      src.addEventListener(name, (e) => {
        if (es !== src) return;
        st.lastMsgMs = Date.now();
        if (st.state !== 'open') set('open');
        deliver(name, e.data, st.lastMsgMs);
      });
    }
    src.onopen = () => {
      backoff = 1000;
      st.opened += 1;
      st.lastMsgMs = Date.now();
      set('open');
    };
    src.onerror = () => {
      set('error');
      if (src.readyState === EventSource.CLOSED) {
        src.close();
        es = null;
        retry = setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, 10000);
      }
    };
  };
  const watchdog = setInterval(() => {
    if (st.state === 'open' && Date.now() - st.lastMsgMs > SILENT_MS) {
      set('silent');
      connect();
    }
  }, 500);
  connect();
  return {
    shared: false,
    restart: connect,
    close: () => {
      clearInterval(watchdog);
      clearTimeout(retry);
      if (es) es.close();
      es = null;
    },
  };
}
