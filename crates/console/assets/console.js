// The operator console: reads /version, the world's status (every second),
// its tick stream and /metrics (every 5 s), all documented API; admin
// actions send the bearer token, which lives in a variable of this module
// and nowhere else (no storage, no cookie, no URL).

import { ApiError, TickStream, request, requestText } from './everarcade.js';
import { LineChart } from './charts.js';

const $ = (id) => document.getElementById(id);
const STATUS_POLL_MS = 1000;
const METRICS_POLL_MS = 5000;
const TICKS_SHOWN = 20;
const TICKS_REDRAW_MS = 500;
let ticksRedraw = null;
const BACK_NOTICE_MS = 60000;
let backNotice = null;

let token = null;
let base = null;
let targetRate = null;
const recent = [];
let tickCount = 0;
let inputCount = 0;
let previousLatency = null;

function text(id, value, className) {
  const element = $(id);
  element.textContent = value;
  if (className !== undefined) element.className = className;
}

function duration(ms) {
  if (ms < 10000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.floor(ms / 1000);
  const [h, m, s] = [Math.floor(seconds / 3600), Math.floor(seconds / 60) % 60, seconds % 60];
  return h ? `${h} h ${m} min` : m ? `${m} min ${s} s` : `${s} s`;
}

function showStatus(status) {
  targetRate = status.tick_rate_hz;
  text('role', `${status.role || 'world node'}${status.amnesia ? ' (amnesia: memory only)' : ''}`);
  text('admission', status.admission, status.admission === 'open' ? 'good' : 'bad');
  text('ready', status.ready ? 'ready' : `not ready: ${status.not_ready_reason}`, status.ready ? 'good' : 'bad');
  text('head', String(status.head_tick), 'mono');
  text('rate', `${status.achieved_tick_rate_hz} of ${status.tick_rate_hz} ticks/s`);
  text('pending', String(status.pending_inputs));
  text('uptime', duration(status.uptime_ms));
  text('process', `pid ${status.pid} on ${status.address}`);
  for (const root of ['state_root', 'input_root', 'receipt_root', 'continuity_root', 'genesis_root', 'package_root']) {
    text(root, status[root], 'mono');
  }
  text('operator', status.operator_public_key, 'mono');
  text('checkpoint', status.checkpoint_tick === null ? 'none yet' : `tick ${status.checkpoint_tick}`);
  const banner = $('incident');
  if (status.incident) {
    const i = status.incident;
    banner.textContent = `Incident: ${i.kind} at tick ${i.tick}. ${i.message} Record: ${i.record}. Admission is closed, ticks stopped and the lineage is not published until it is resolved (docs/OPERATIONS.md).`;
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
}

async function pollStatus() {
  try {
    showStatus(await request(`${base}/status`));
  } catch (error) {
    text('ready', `status unavailable: ${error.message}`, 'bad');
  }
}

// Prometheus text: value of every sample of `name`, by its labels text.
function samples(metrics, name) {
  const out = [];
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(name)) continue;
    // Label values may hold braces (route templates): skip quoted strings.
    const match = line.match(/^([a-z_]+)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+([0-9.eE+-]+|NaN|\+Inf)$/);
    if (match && match[1] === name) out.push({ labels: match[2] || '', value: Number(match[3]) });
  }
  return out;
}

function label(labels, name) {
  const match = labels.match(new RegExp(`${name}="([^"]*)"`));
  return match ? match[1] : null;
}

// Cumulative buckets (le → count) of the accepted single inputs' latency.
function ackBuckets(metrics) {
  const buckets = new Map();
  for (const { labels, value } of samples(metrics, 'everarcade_http_request_duration_seconds_bucket')) {
    if (label(labels, 'route') !== '/v1/worlds/{world}/inputs' || label(labels, 'status') !== '202') continue;
    const le = label(labels, 'le');
    buckets.set(le, (buckets.get(le) || 0) + value);
  }
  return buckets;
}

function quantile(buckets, q) {
  const sorted = [...buckets.entries()]
    .map(([le, count]) => [le === '+Inf' ? Infinity : Number(le), count])
    .sort((a, b) => a[0] - b[0]);
  const total = sorted.length ? sorted[sorted.length - 1][1] : 0;
  if (!total) return null;
  const wanted = q * total;
  for (const [le, count] of sorted) if (count >= wanted) return le;
  return Infinity;
}

function showMetrics(metrics) {
  const now = ackBuckets(metrics);
  let window = now;
  if (previousLatency) {
    window = new Map([...now].map(([le, count]) => [le, count - (previousLatency.get(le) || 0)]));
  }
  previousLatency = now;
  let p99 = quantile(window, 0.99);
  let scope = 'last 5 s';
  if (p99 === null) { p99 = quantile(now, 0.99); scope = 'since start'; }
  text('p99', p99 === null ? 'no input acknowledged yet'
    : p99 === Infinity ? `over 5 s (${scope})` : `≤ ${p99 * 1000} ms (${scope}, histogram bucket)`);
  const refusals = new Map();
  for (const name of ['everarcade_inputs_rejected_total', 'everarcade_rejected_total']) {
    for (const { labels, value } of samples(metrics, name)) {
      const reason = label(labels, 'reason');
      if (reason && value > 0) refusals.set(reason, Math.max(refusals.get(reason) || 0, value));
    }
  }
  const body = $('refusals');
  body.replaceChildren();
  if (!refusals.size) {
    const row = body.insertRow();
    const cell = row.insertCell();
    cell.colSpan = 2; cell.className = 'muted'; cell.textContent = 'none';
  }
  for (const [reason, count] of [...refusals].sort((a, b) => b[1] - a[1])) {
    const row = body.insertRow();
    row.insertCell().textContent = reason;
    const cell = row.insertCell();
    cell.className = 'num'; cell.textContent = String(count);
  }
}

async function pollMetrics() {
  try {
    showMetrics(await requestText('/metrics'));
  } catch (error) {
    text('p99', `metrics unavailable: ${error.message}`, 'bad');
  }
}

function cell(row, value, className = 'num') {
  const td = row.insertCell();
  td.textContent = String(value);
  td.className = className;
}

function showTicks() {
  const body = $('ticks');
  body.replaceChildren();
  for (const tick of recent) {
    const row = body.insertRow();
    row.className = 'pick';
    row.tabIndex = 0;
    row.dataset.tick = tick.tick;
    row.setAttribute('aria-label', `tick ${tick.tick}: show receipts`);
    for (const value of [tick.tick, tick.inputs, tick.applied, tick.rejected, tick.trapped, tick.out_of_fuel]) cell(row, value);
    cell(row, `${tick.state_root.slice(0, 16)}…`, 'mono');
  }
}

async function showReceipts(number) {
  const out = $('receipts');
  out.textContent = `Reading tick ${number}…`;
  try {
    const tick = await request(`${base}/ticks/${number}`);
    const heading = document.createElement('h2');
    heading.textContent = `Tick ${tick.tick}: ${tick.receipts.length} receipt${tick.receipts.length === 1 ? '' : 's'}`;
    const wrap = document.createElement('div');
    wrap.className = 'scroll';
    const table = document.createElement('table');
    table.innerHTML = '<thead><tr><th scope="col">kind</th><th scope="col">subject</th><th scope="col">outcome</th><th scope="col" class="num">code</th><th scope="col" class="num">fuel</th><th scope="col" class="num">events</th><th scope="col">events hash</th></tr></thead>';
    const body = table.createTBody();
    for (const r of tick.receipts) {
      const row = body.insertRow();
      cell(row, r.kind, '');
      cell(row, `${r.subject.slice(0, 16)}…`, 'mono');
      cell(row, r.outcome, r.outcome === 'applied' ? 'good' : 'bad');
      cell(row, r.code);
      cell(row, r.fuel_used);
      cell(row, r.event_count);
      cell(row, r.events_hash, 'mono');
    }
    wrap.append(table);
    const roots = document.createElement('p');
    roots.className = 'mono';
    roots.textContent = `input ${tick.input_root} · receipt ${tick.receipt_root} · state ${tick.state_root} · continuity ${tick.continuity_root}`;
    out.replaceChildren(heading, roots, wrap);
  } catch (error) {
    out.textContent = `Tick ${number}: ${error.code}: ${error.message}`;
  }
}

function onStreamState(state) {
  const connection = $('connection');
  if (state.state === 'live') {
    connection.textContent = 'live';
    connection.className = 'connection good';
  } else if (state.state === 'back') {
    connection.textContent = `live again: the node was away for ${duration(state.awayMs)}; resumed after tick ${state.lastId ?? 'none'}`;
    connection.className = 'connection warn';
    // The notice stays a minute, then the line says live again.
    clearTimeout(backNotice);
    backNotice = setTimeout(() => { if (connection.className === 'connection warn') { connection.textContent = 'live'; connection.className = 'connection good'; } }, BACK_NOTICE_MS);
  } else if (state.state === 'away') {
    const why = state.error instanceof ApiError ? `${state.error.code}: ${state.error.message}` : String(state.error);
    connection.textContent = `away since ${new Date(state.since).toLocaleTimeString()} (${why}); reconnecting…`;
    connection.className = 'connection bad';
  }
}

function onStreamEvent(type, data) {
  const connection = $('connection');
  if (type === 'tick') {
    tickCount += 1;
    inputCount += data.inputs;
    recent.unshift(data);
    if (recent.length > TICKS_SHOWN) recent.pop();
    // Redrawn at most twice a second: rows that change 20 times a second
    // cannot be read or selected.
    if (!ticksRedraw) ticksRedraw = setTimeout(() => { ticksRedraw = null; showTicks(); }, TICKS_REDRAW_MS);
    text('head', String(data.tick), 'mono');
  } else if (type === 'gap') {
    connection.textContent += ` · ticks ${data.from} to ${data.to} were missed (read them with replay-report)`;
  } else if (type === 'lagged') {
    connection.textContent = `this page fell behind: ${data.skipped} ticks skipped`;
    connection.className = 'connection warn';
  }
}

function setToken(value) {
  token = value || null;
  $('token').value = '';
  text('token-state', token ? 'Token held in memory; it is sent only with admin actions.' : 'No token: admin actions are off.', token ? 'good' : 'muted');
  for (const button of document.querySelectorAll('[data-action]')) button.disabled = !token;
}

async function runAction(button) {
  const action = button.dataset.action;
  const result = $('result');
  result.textContent = `${button.textContent}: running…`;
  result.className = 'result';
  try {
    const body = await request(`/admin/${action}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
    });
    result.textContent = `${button.textContent}: ${JSON.stringify(body, null, 2)}`;
    result.className = body && body.result === 'incident' ? 'result bad' : 'result good';
    if (action === 'backup') text('backup', `tick ${body.tick} at ${body.path} (${body.data_bytes} bytes, ${body.seconds} s)`);
    if (action === 'checkpoint') text('checkpoint', `tick ${body.tick} (${body.bytes} bytes)`);
  } catch (error) {
    if (error.code === 'unauthorized') {
      setToken(null);
      result.textContent = `${button.textContent}: the node refused the token (unauthorized: ${error.message}). The token was forgotten; enter the right one.`;
    } else {
      result.textContent = `${button.textContent}: ${error.code}: ${error.message}`;
    }
    result.className = 'result bad';
  }
  pollStatus();
}

async function main() {
  setToken(null);
  $('token-form').addEventListener('submit', (event) => { event.preventDefault(); setToken($('token').value.trim()); });
  $('token-forget').addEventListener('click', () => setToken(null));
  for (const button of document.querySelectorAll('[data-action]')) {
    button.addEventListener('click', () => runAction(button));
  }
  const pick = (event) => {
    const row = event.target.closest('tr[data-tick]');
    if (row) showReceipts(Number(row.dataset.tick));
  };
  $('ticks').addEventListener('click', pick);
  $('ticks').addEventListener('keydown', (event) => { if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); pick(event); } });
  let version;
  for (;;) {
    try { version = await request('/version'); break; } catch (error) {
      text('connection', `the node does not answer (${error.message}); retrying…`, 'connection bad');
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
  text('world', version.world);
  document.title = `${version.world} · EverArcade console`;
  base = `/v1/worlds/${encodeURIComponent(version.world)}`;
  await pollStatus();
  const ticks = new LineChart($('tick-chart'), { target: targetRate });
  const inputs = new LineChart($('input-chart'));
  new TickStream(`${base}/events`, { onEvent: onStreamEvent, onState: onStreamState });
  setInterval(() => {
    ticks.push(tickCount); inputs.push(inputCount);
    tickCount = 0; inputCount = 0;
  }, 1000);
  setInterval(pollStatus, STATUS_POLL_MS);
  pollMetrics();
  setInterval(pollMetrics, METRICS_POLL_MS);
}

main();
