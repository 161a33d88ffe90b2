// Checks of the console's message catalogues (js/i18n/en.js and ko.js), without a browser:
// every key in both languages with the same placeholders, and every key the code names
// literally (t('...'), title: 'view....', data-i18n="...") present in both. And, in a page, that
// no raw key or missing-key marker is shown.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/// Keys of the server-data namespace, which only Korean needs (English shows the server's text).
const SERVER_NAMESPACE = 'srv.';

function placeholders(v) {
  const texts = typeof v === 'object' ? Object.values(v) : [v];
  return [...new Set(texts.flatMap((x) => String(x).match(/\{\w+\}/g) ?? []))].sort().join(',');
}

export async function catalogues(consoleDir) {
  const load = async (l) => (await import(pathToFileURL(path.join(consoleDir, `js/i18n/${l}.js`)).href)).default;
  return { en: await load('en'), ko: await load('ko') };
}

/// What is wrong with the catalogues, one line each (empty when all is well).
export async function catalogueProblems(consoleDir) {
  const { en, ko } = await catalogues(consoleDir);
  const out = [];
  for (const k of Object.keys(en)) {
    if (k.startsWith(SERVER_NAMESPACE)) out.push(`en: ${k}: the server-data namespace is Korean only`);
    if (!(k in ko)) out.push(`ko: missing ${k}`);
    else if (placeholders(en[k]) !== placeholders(ko[k])) out.push(`${k}: placeholders differ: en {${placeholders(en[k])}} ko {${placeholders(ko[k])}}`);
    if (typeof en[k] === 'string' && !en[k].trim()) out.push(`en: ${k} is empty`);
  }
  for (const k of Object.keys(ko)) {
    if (!k.startsWith(SERVER_NAMESPACE) && !(k in en)) out.push(`en: missing ${k} (only in ko)`);
    if (typeof ko[k] === 'string' && !ko[k].trim()) out.push(`ko: ${k} is empty`);
  }
  // Every key the code names literally.
  const used = new Set();
  const js = path.join(consoleDir, 'js');
  for (const f of fs.readdirSync(js).filter((x) => x.endsWith('.js'))) {
    const src = fs.readFileSync(path.join(js, f), 'utf8');
    for (const m of src.matchAll(/\bt\('([^']+)'/g)) used.add(m[1]);
    for (const m of src.matchAll(/\btitle: '(view\.[a-z]+)'/g)) used.add(m[1]);
    for (const m of src.matchAll(/subsystemView\('\w+', '([^']+)'\)/g)) used.add(m[1]);
  }
  const html = fs.readFileSync(path.join(consoleDir, 'index.html'), 'utf8');
  for (const m of html.matchAll(/data-i18n="([^"]+)"/g)) used.add(m[1]);
  for (const k of used) {
    if (!(k in en)) out.push(`en: ${k} is used by the console but missing`);
    if (!(k in ko)) out.push(`ko: ${k} is used by the console but missing`);
  }
  if (used.size < 300) out.push(`only ${used.size} keys found in the code: the scan is broken`);
  return out;
}

/// Raw keys or missing-key markers on the page as it is now (text and accessible names).
export async function rawKeysOnPage(page, keys) {
  return page.evaluate((ks) => {
    const texts = [document.body.innerText];
    for (const el of document.querySelectorAll('[aria-label], [title], [placeholder]')) {
      for (const a of ['aria-label', 'title', 'placeholder']) if (el.getAttribute(a)) texts.push(el.getAttribute(a));
    }
    const all = texts.join('\n');
    const found = [];
    if (all.includes('⟦')) found.push(all.slice(all.indexOf('⟦'), all.indexOf('⟦') + 60));
    for (const k of ks) {
      const re = new RegExp(`(^|[^\\w.])${k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|[^\\w.])`);
      if (re.test(all)) found.push(k);
    }
    return found;
  }, keys);
}
