// One message catalogue per language (i18n/en.js, i18n/ko.js) and the locale's formats.
// Every text the console shows goes through t(key, params); the language is the user's choice
// (kept in localStorage), else the browser's (navigator.language), else English. Dates, times
// and numbers are formatted with Intl in the language's locale; a time that matters carries
// its UTC offset ("UTC+09:00"), so a reader in another zone is never misled.
//
// A key missing from the catalogue is shown as ⟦key⟧ and logged as an error, so that a test
// can find it; the English catalogue is the reference and the Korean one must have every key.

import en from './i18n/en.js';
import ko from './i18n/ko.js';

export const CATALOGUES = { en, ko };
export const LANGS = [['en', 'English'], ['ko', '한국어']];
const STORE_KEY = 'dcim.lang';

function initial() {
  try {
    const saved = localStorage.getItem(STORE_KEY);
    if (saved && CATALOGUES[saved]) return saved;
  } catch {
    /* no storage: the browser's language */
  }
  const nav = (navigator.languages && navigator.languages[0]) || navigator.language || 'en';
  return nav.toLowerCase().startsWith('ko') ? 'ko' : 'en';
}

let lang = initial();
const listeners = new Set();

export function getLang() {
  return lang;
}

/// Chooses the language (kept for the next visit) and tells the listeners.
export function setLang(l) {
  if (!CATALOGUES[l] || l === lang) return;
  lang = l;
  try {
    localStorage.setItem(STORE_KEY, l);
  } catch {
    /* not kept: this page only */
  }
  document.documentElement.lang = l;
  for (const fn of listeners) fn(l);
}

export function onLang(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/// The Intl locale of the language: the browser's own English variant for English (else
/// en-GB), ko-KR for Korean.
export function locale() {
  if (lang === 'ko') return 'ko-KR';
  const nav = navigator.language || 'en-GB';
  return nav.toLowerCase().startsWith('en') ? nav : 'en-GB';
}

const reported = new Set();

/// Whether the catalogue has a key (for texts built from server data: stage keys, roles).
export function has(key) {
  return Object.prototype.hasOwnProperty.call(CATALOGUES[lang], key);
}

/// The text of a key, with `{name}` replaced by params.name. A value that is an object holds
/// plural forms ({one, other}) chosen by params.n.
export function t(key, params) {
  let v = CATALOGUES[lang][key];
  if (v === undefined) {
    if (!reported.has(`${lang}:${key}`)) {
      reported.add(`${lang}:${key}`);
      console.error(`i18n: no text for "${key}" in ${lang}`);
    }
    return `⟦${key}⟧`;
  }
  if (typeof v === 'object') {
    const n = Number(params?.n ?? 0);
    const form = new Intl.PluralRules(locale()).select(n);
    v = v[form] ?? v.other;
  }
  if (params) v = v.replace(/\{(\w+)\}/g, (m, k) => (params[k] === undefined ? m : String(params[k])));
  return v;
}

/// A text from the catalogue when it has the key, else the fallback (the server's own text).
export function tOr(key, fallback, params) {
  return has(key) ? t(key, params) : fallback;
}

// ------------------------------------------------------------------ formats

const pad = (n) => String(n).padStart(2, '0');

/// "UTC+09:00" at `ms` (the browser's zone).
export function utcOffset(ms = Date.now()) {
  const off = -new Date(ms).getTimezoneOffset();
  const a = Math.abs(off);
  return `UTC${off < 0 ? '−' : '+'}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

/// The browser's time zone as people read it: its name and its offset from UTC.
export function zoneLabel(ms = Date.now()) {
  let name = '';
  try {
    name = Intl.DateTimeFormat().resolvedOptions().timeZone ?? '';
  } catch {
    /* no Intl: the offset alone */
  }
  const utc = utcOffset(ms);
  return name && name !== 'UTC' ? `${name}, ${utc}` : utc;
}

const fmtCache = new Map();
function dtf(opts) {
  const k = `${locale()}|${JSON.stringify(opts)}`;
  if (!fmtCache.has(k)) fmtCache.set(k, new Intl.DateTimeFormat(locale(), { hourCycle: 'h23', ...opts }));
  return fmtCache.get(k);
}

/// A time in the locale: date and time of day (seconds); `opts.short`: time of day only;
/// `opts.minutes`: without seconds; `opts.tz`: followed by the UTC offset.
export function fmtTime(ms, opts = {}) {
  if (!ms) return '—';
  const time = { hour: '2-digit', minute: '2-digit', ...(opts.minutes ? {} : { second: '2-digit' }) };
  const f = opts.short ? dtf(time) : dtf({ year: 'numeric', month: '2-digit', day: '2-digit', ...time });
  let out = f.format(new Date(ms));
  if (opts.tz) out += ` ${utcOffset(ms)}`;
  return out;
}

/// A date in the locale (`opts.month`: the month and year only).
export function fmtDate(ms, opts = {}) {
  if (!ms) return '—';
  return (opts.month ? dtf({ year: 'numeric', month: 'long' }) : dtf({ year: 'numeric', month: '2-digit', day: '2-digit', weekday: opts.weekday ? 'short' : undefined })).format(new Date(ms));
}

/// A number in the locale with `digits` decimals (default: integers as they are, 2 decimals
/// under 10, else 1).
export function fmtNumber(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (typeof v !== 'number') return String(v);
  const d = digits ?? (Number.isInteger(v) ? 0 : Math.abs(v) < 10 ? 2 : 1);
  const k = `${locale()}|n${d}`;
  if (!fmtCache.has(k)) fmtCache.set(k, new Intl.NumberFormat(locale(), { minimumFractionDigits: d, maximumFractionDigits: d }));
  return fmtCache.get(k).format(v);
}

/// How long ago, in words of the language ("2 min 5 s ago").
export function fmtAgo(ms, now = Date.now()) {
  if (!ms) return '—';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return t('ago.s', { s });
  if (s < 3600) return s % 60 ? t('ago.ms', { m: Math.floor(s / 60), s: s % 60 }) : t('ago.m', { m: Math.floor(s / 60) });
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return m ? t('ago.hm', { h: Math.floor(s / 3600), m }) : t('ago.h', { h: Math.floor(s / 3600) });
  }
  return t('ago.d', { d: Math.floor(s / 86400) });
}

/// A duration in words ("1 h", "30 d", "45 min").
export function fmtDuration(ms) {
  const m = Math.round(ms / 60000);
  if (m < 60) return t('dur.min', { n: m });
  const h = Math.round(m / 60);
  if (h < 48) return t('dur.h', { n: h });
  return t('dur.d', { n: Math.round(h / 24) });
}
