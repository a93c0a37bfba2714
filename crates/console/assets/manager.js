// The manager console: the runtime manager's documented REST API
// (docs/MANAGER.md): worlds, one world's record and operation log, the
// health event stream, and lifecycle actions with the bearer token, which
// lives in a variable of this module only.

import { TickStream, request } from './everarcade.js';

const $ = (id) => document.getElementById(id);
const API = '/api/v1/internal';
const LIST_POLL_MS = 2000;
const EVENTS_SHOWN = 50;
let token = null;
let selected = null;

const list = (body, ...names) => Array.isArray(body) ? body : names.map((n) => body?.[n]).find(Array.isArray) ?? [];
const pick = (record, ...names) => names.map((n) => n.split('.').reduce((v, k) => v?.[k], record)).find((v) => v !== undefined && v !== null);

function cells(row, values) {
  for (const [value, className] of values) {
    const cell = row.insertCell();
    cell.textContent = value === undefined || value === null ? '–' : String(value);
    if (className) cell.className = className;
  }
}

async function refreshList() {
  const body = $('worlds');
  try {
    const worlds = list(await request(`${API}/runtimes`), 'runtimes', 'worlds', 'records');
    body.replaceChildren();
    if (!worlds.length) cells(body.insertRow(), [['no worlds yet', 'muted']]);
    for (const world of worlds) {
      const row = body.insertRow();
      row.className = 'pick';
      row.tabIndex = 0;
      row.dataset.world = world.world;
      const status = world.status;
      const ready = pick(world, 'health.ready', 'ready', 'health.readiness');
      cells(row, [
        [world.world, 'mono'],
        [status, status === 'running' ? 'good' : status === 'failed' ? 'bad' : ''],
        [pick(world, 'health.head_tick', 'head_tick', 'health.tick', 'tick'), 'num'],
        [pick(world, 'health.achieved_tick_rate_hz', 'achieved_tick_rate_hz'), 'num'],
        [ready === undefined ? undefined : ready === true || ready === 'ready' ? 'ready' : `not ready${typeof ready === 'string' ? `: ${ready}` : ''}`, ready === true || ready === 'ready' ? 'good' : 'bad'],
        [world.pid, 'num'],
        [world.engine_endpoint, 'mono'],
        [`${world.package_version ?? ''} ${(world.package_root ?? '').slice(0, 12)}`, 'mono'],
        [world.updated_at, ''],
      ]);
    }
    $('connection').textContent = 'connected';
    $('connection').className = 'connection good';
  } catch (error) {
    $('connection').textContent = `the manager does not answer the list (${error.code}: ${error.message})`;
    $('connection').className = 'connection bad';
  }
}

async function showWorld(world) {
  selected = world;
  $('selected').textContent = world;
  $('action-world').value = world;
  try {
    const record = await request(`${API}/runtimes/${encodeURIComponent(world)}`);
    $('record').textContent = JSON.stringify(record, null, 2);
    const log = await request(`${API}/runtimes/${encodeURIComponent(world)}/operations`);
    const operations = list(log, 'operations');
    const body = $('operations');
    body.replaceChildren();
    for (const op of operations) {
      cells(body.insertRow(), [[op.op_kind], [op.op_source], [op.outcome, op.outcome === 'succeeded' || op.outcome === 'ok' ? 'good' : ''], [op.error_code], [op.started_at], [op.finished_at]]);
    }
  } catch (error) {
    $('record').textContent = `${error.code}: ${error.message}`;
  }
}

function onEvent(type, data) {
  const events = $('events');
  const item = document.createElement('li');
  item.textContent = `${data.at ?? data.created_at ?? ''} ${data.world ?? ''} ${data.kind ?? data.event ?? type}: ${data.message ?? data.detail ?? JSON.stringify(data)}`;
  events.prepend(item);
  while (events.children.length > EVENTS_SHOWN) events.lastChild.remove();
  if (data.world && data.world === selected) showWorld(selected);
}

function onState(state) {
  const events = $('events');
  if (state.state === 'back' || state.state === 'away') {
    const item = document.createElement('li');
    item.className = state.state === 'away' ? 'bad' : 'warn';
    item.textContent = state.state === 'away'
      ? `event stream away (${state.error?.code ?? 'error'}); reconnecting…`
      : `event stream back after ${Math.round(state.awayMs / 1000)} s away; resumed after event ${state.lastId ?? 'none'}`;
    events.prepend(item);
  }
}

function setToken(value) {
  token = value || null;
  $('token').value = '';
  $('token-state').textContent = token ? 'Token held in memory; it is sent only with actions.' : 'No token: actions are off.';
  for (const button of document.querySelectorAll('[data-op]')) button.disabled = !token;
}

async function runOp(button) {
  const op = button.dataset.op;
  const world = $('action-world').value.trim();
  const result = $('result');
  if (!world) { result.textContent = 'Name a world first.'; return; }
  const path = `${API}/runtimes/${encodeURIComponent(world)}`;
  const options = { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' } };
  let url = `${path}/${op}`;
  if (op === 'start' || op === 'patch') options.body = JSON.stringify({ package: $('action-package').value.trim() });
  if (op === 'stop') options.body = JSON.stringify({ reason: $('action-reason').value.trim() || 'manager console' });
  if (op === 'cleanup') { url = `${path}/container`; options.method = 'DELETE'; delete options.headers['Content-Type']; }
  result.textContent = `${op} ${world}: running…`;
  try {
    const body = await request(url, options);
    result.textContent = `${op} ${world}: ${JSON.stringify(body, null, 2)}`;
    result.className = 'result good';
  } catch (error) {
    if (error.code === 'unauthorized') setToken(null);
    result.textContent = `${op} ${world}: ${error.code}: ${error.message}${error.code === 'unauthorized' ? ' (the token was forgotten)' : ''}`;
    result.className = 'result bad';
  }
  refreshList();
  if (selected) showWorld(selected);
}

function main() {
  setToken(null);
  $('token-form').addEventListener('submit', (event) => { event.preventDefault(); setToken($('token').value.trim()); });
  $('token-forget').addEventListener('click', () => setToken(null));
  for (const button of document.querySelectorAll('[data-op]')) button.addEventListener('click', () => runOp(button));
  const choose = (event) => { const row = event.target.closest('tr[data-world]'); if (row) showWorld(row.dataset.world); };
  $('worlds').addEventListener('click', choose);
  $('worlds').addEventListener('keydown', (event) => { if (event.key === 'Enter') choose(event); });
  refreshList();
  setInterval(refreshList, LIST_POLL_MS);
  new TickStream(`${API}/events`, { onEvent, onState });
}

main();
