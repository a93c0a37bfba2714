// The generic view of a world without a viewer: its recent ticks, and the
// keys the spectator watches (from `?keys=57,50` or typed in), each read
// with its proof checked, with a log of the changes seen. The HTTP API has
// no key listing, so the key space shown is the keys asked for.

import { toHex } from './everarcade.js';

const WATCH_POLL_MS = 1000;
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

  const changesSection = element('section', { class: 'panel wide', 'aria-labelledby': 'g-changes' });
  changesSection.append(element('h2', { id: 'g-changes' }, 'Recent changes of watched keys'));
  const changes = element('ol', { reversed: '', id: 'generic-changes' });
  changesSection.append(changes);
  root.replaceChildren(ticksSection, keysSection, changesSection);

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
          changes.prepend(element('li', {}, `tick ${read.tick}: key ${hex} → ${preview(read.value)}`));
          while (changes.children.length > CHANGES_SHOWN) changes.lastChild.remove();
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

  api.onTick((tick) => {
    ticksList.prepend(element('li', {}, `tick ${tick.tick}: ${tick.inputs} inputs (${tick.applied} applied, ${tick.rejected} rejected), state root ${tick.state_root.slice(0, 16)}…`));
    while (ticksList.children.length > TICKS_SHOWN) ticksList.lastChild.remove();
  });
  refresh();
  setInterval(refresh, WATCH_POLL_MS);
}
