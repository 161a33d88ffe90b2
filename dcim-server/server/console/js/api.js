// HTTP access to the dcim-server API (the live stream is in live.js). Cookie sessions: every state-changing
// request carries the CSRF token (double-submitted from the `dcim_csrf` cookie, or the one the
// login response returned) in `X-CSRF-Token`.

let csrfToken = null;

function cookie(name) {
  for (const kv of document.cookie.split(';')) {
    const [k, ...v] = kv.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return null;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') {
    const t = csrfToken || cookie('dcim_csrf');
    if (t) headers['X-CSRF-Token'] = t;
  }
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!r.ok) {
    const msg = data && data.error ? data.error : `${r.status} ${r.statusText}`;
    throw new ApiError(r.status, msg);
  }
  return data;
}

export const get = (p) => api('GET', p);
export const post = (p, b) => api('POST', p, b ?? {});

export async function login(username, password) {
  const r = await api('POST', '/api/login', { username, password });
  csrfToken = r.csrf_token;
  return r;
}

export async function logout() {
  try {
    await api('POST', '/api/logout', {});
  } finally {
    csrfToken = null;
  }
}
