// The generic view of a world without a viewer: its recent ticks, its key
// space (the node's listing, a page at a time, refreshed), and the keys the
// spectator watches (from `?keys=57,50`, typed in, or picked from the key
// space), each read with its proof checked, with a log of the changes seen.

import { toHex } from './everarcade.js';

const WATCH_POLL_MS = 1000;
const SPACE_POLL_MS = 2000;
const SPACE_PAGE = 50;
const KEYS_MAX = 16;
const CHANGES_SHOWN = 30;
const TICKS_SHOWN = 10;
const encoder = new TextEncoder();

function element(tag, attributes = {}, text = '') {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

// "57" (hex) or "text:W" (UTF-8 text) → hex.
function parseKey(input) {
  const trimmed = input.trim();
  if (trimmed.startsWith('text:')) return toHex(encoder.encode(trimmed.slice(5)));
  if (/^([0-9a-fA-F]{2})+$/.test(trimmed)) return trimmed.toLowerCase();
  throw new Error(`${trimmed || 'an empty key'} is neither hex nor text:…`);
}

// A key as text when it is printable ASCII, else nothing.
function asText(hex) {
  const bytes = hex.match(/../g).map((pair) => parseInt(pair, 16));
  return bytes.every((byte) => byte >= 0x20 && byte < 0x7f) ? String.fromCharCode(...bytes) : '';
}

function preview(value) {
  if (value === null) return 'absent';
  const hex = toHex(value.subarray(0, 24));
  return `${value.length} bytes: ${hex}${value.length > 24 ? '…' : ''}`;
}

/** Starts the generic view in `root`. */
export async function start(api, root) {
  const ticksSection = element('section', { class: 'panel', 'aria-labelledby': 'g-ticks' });
  ticksSection.append(element('h2', { id: 'g-ticks' }, 'Recent ticks'));
  const ticksList = element('ol', { reversed: '', id: 'generic-ticks' });
  ticksSection.append(ticksList);

  const keysSection = element('section', { class: 'panel', 'aria-labelledby': 'g-keys' });
  keysSection.append(element('h2', { id: 'g-keys' }, 'Watched keys'));
  const form = element('form', { class: 'row', autocomplete: 'off' });
  const field = element('div');
  field.append(element('label', { for: 'key-input' }, 'Key (hex such as 57, or text:W)'), element('input', { id: 'key-input', type: 'text', spellcheck: 'false' }));
  form.append(field, element('button', { type: 'submit' }, 'Watch'));
  const problem = element('p', { class: 'bad', role: 'status', 'aria-live': 'polite' });
  const table = element('table');
  table.innerHTML = '<thead><tr><th scope="col">key</th><th scope="col">value</th><th scope="col" class="num">tick</th><th scope="col">proof</th></tr></thead>';
  const body = table.createTBody();
  body.id = 'generic-keys';
  const wrap = element('div', { class: 'scroll' });
  wrap.append(table);
  keysSection.append(form, problem, wrap);

  const spaceSection = element('section', { class: 'panel wide', 'aria-labelledby': 'g-space' });
  spaceSection.append(element('h2', { id: 'g-space' }, 'Key space'));
  const spaceSummary = element('p', { id: 'generic-space-summary', role: 'status' });
  const spaceTable = element('table');
  spaceTable.innerHTML = '<thead><tr><th scope="col">key</th><th scope="col">as text</th><th scope="col" class="num">bytes</th><th scope="col">value hash</th><th scope="col"><span class="visually-hidden">action</span></th></tr></thead>';
  const spaceBody = spaceTable.createTBody();
  spaceBody.id = 'generic-space';
  const spaceWrap = element('div', { class: 'scroll' });
  spaceWrap.append(spaceTable);
  const pager = element('div', { class: 'row' });
  const firstPage = element('button', { type: 'button', id: 'space-first' }, 'First page');
  const nextPage = element('button', { type: 'button', id: 'space-next' }, 'Next page');
  pager.append(firstPage, nextPage);
  spaceSection.append(spaceSummary, spaceWrap, pager);

  const changesSection = element('section', { class: 'panel wide', 'aria-labelledby': 'g-changes' });
  changesSection.append(element('h2', { id: 'g-changes' }, 'Recent changes'));
  const changes = element('ol', { reversed: '', id: 'generic-changes' });
  changesSection.append(changes);
  root.replaceChildren(ticksSection, keysSection, spaceSection, changesSection);
  const logChange = (text) => {
    changes.prepend(element('li', {}, text));
    while (changes.children.length > CHANGES_SHOWN) changes.lastChild.remove();
  };

  const watched = new Map();
  const watch = (hex) => {
    if (watched.has(hex)) return;
    if (watched.size >= KEYS_MAX) throw new Error(`at most ${KEYS_MAX} keys are watched`);
    watched.set(hex, { value: undefined, row: body.insertRow() });
  };
  const fromUrl = new URLSearchParams(location.search).get('keys');
  for (const key of (fromUrl ? fromUrl.split(',') : [])) {
    try { watch(parseKey(key)); } catch (error) { problem.textContent = error.message; }
  }
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const input = form.querySelector('input');
    try { watch(parseKey(input.value)); input.value = ''; problem.textContent = ''; refresh(); } catch (error) { problem.textContent = error.message; }
  });

  async function refresh() {
    for (const [hex, entry] of watched) {
      const cells = [hex, '…', '', ''];
      try {
        const read = await api.read(hex);
        const before = entry.value;
        const now = read.value === null ? null : toHex(read.value);
        if (before !== undefined && before !== now) {
          logChange(`tick ${read.tick}: key ${hex} → ${preview(read.value)} (verified)`);
        }
        entry.value = now;
        cells[1] = preview(read.value);
        cells[2] = String(read.tick);
        cells[3] = `verified (depth ${read.depth}, root from the ${read.rootSource === 'stream' ? 'tick stream' : 'tick record'})`;
      } catch (error) {
        cells[1] = `${error.code}: ${error.message}`;
        cells[3] = error.name === 'ProofError' ? 'FAILED' : 'not read';
      }
      entry.row.replaceChildren();
      cells.forEach((value, index) => {
        const cell = entry.row.insertCell();
        cell.textContent = value;
        if (index === 0) cell.className = 'mono';
        if (index === 2) cell.className = 'num';
        if (index === 3) cell.className = value.startsWith('verified') ? 'good' : 'bad';
      });
    }
  }

  // The key space, a page at a time: the node's listing (not a proof; a
  // key picked from it is read with its proof), diffed by value hash.
  let pageAfter = null;
  let pageNext = null;
  let seen = new Map();
  async function refreshSpace() {
    let page;
    try {
      page = await api.keys({ after: pageAfter, limit: SPACE_PAGE });
    } catch (error) {
      spaceSummary.textContent = `key space not read: ${error.code || ''} ${error.message}`;
      return;
    }
    pageNext = page.next;
    nextPage.disabled = !pageNext;
    firstPage.disabled = !pageAfter;
    const now = new Map(page.keys.map((entry) => [entry.key, entry]));
    if (seen.size > 0) {
      for (const [key, entry] of now) {
        const before = seen.get(key);
        if (!before) logChange(`tick ${page.tick}: key ${key} appeared (${entry.value_bytes} bytes, listed)`);
        else if (before.value_hash !== entry.value_hash) logChange(`tick ${page.tick}: key ${key} changed (${entry.value_bytes} bytes, listed)`);
      }
      for (const key of seen.keys()) {
        if (!now.has(key) && (!pageNext || key < pageNext)) logChange(`tick ${page.tick}: key ${key} is gone (listed)`);
      }
    }
    seen = now;
    const shown = page.keys.length;
    spaceSummary.textContent = `tick ${page.tick}: ${page.total} keys in the state; showing ${shown}${pageAfter ? ` after ${pageAfter}` : ''}${pageNext ? ', more follow' : ''}`;
    spaceBody.replaceChildren();
    for (const entry of page.keys) {
      const row = spaceBody.insertRow();
      const cells = [entry.key, asText(entry.key), String(entry.value_bytes), `${entry.value_hash.slice(0, 16)}…`];
      cells.forEach((value, index) => {
        const cell = row.insertCell();
        cell.textContent = value;
        if (index === 0 || index === 3) cell.className = 'mono';
        if (index === 2) cell.className = 'num';
      });
      const button = element('button', { type: 'button', 'aria-label': `watch key ${entry.key}` }, 'Watch');
      button.disabled = watched.has(entry.key);
      button.addEventListener('click', () => {
        try { watch(entry.key); button.disabled = true; problem.textContent = ''; refresh(); } catch (error) { problem.textContent = error.message; }
      });
      row.insertCell().append(button);
    }
  }
  nextPage.addEventListener('click', () => { if (pageNext) { pageAfter = pageNext; seen = new Map(); refreshSpace(); } });
  firstPage.addEventListener('click', () => { pageAfter = null; seen = new Map(); refreshSpace(); });

  api.onTick((tick) => {
    ticksList.prepend(element('li', {}, `tick ${tick.tick}: ${tick.inputs} inputs (${tick.applied} applied, ${tick.rejected} rejected), state root ${tick.state_root.slice(0, 16)}…`));
    while (ticksList.children.length > TICKS_SHOWN) ticksList.lastChild.remove();
  });
  refresh();
  setInterval(refresh, WATCH_POLL_MS);
  refreshSpace();
  setInterval(refreshSpace, SPACE_POLL_MS);
}
