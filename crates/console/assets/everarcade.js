// The pages' client of the node's documented HTTP API (docs/HTTP.md), and
// the JavaScript API a package's viewer gets (docs/HTTP.md, "The viewer
// API"): the tick stream over server-sent events with Last-Event-ID
// resumption, and state reads whose proofs are checked here against the
// state root the node published for that tick.

import { hash, keyedHash } from './blake3.js';

/** Lowercase hex of a Uint8Array. */
export function toHex(bytes) {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

/** Bytes of a hex string; throws on anything else. */
export function fromHex(text) {
  if (typeof text !== 'string' || text.length % 2 !== 0 || /[^0-9a-fA-F]/.test(text)) {
    throw new TypeError(`not hex: ${String(text).slice(0, 40)}`);
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const encoder = new TextEncoder();
const domainKeys = new Map();

/** `H(domain, bytes)`: BLAKE3 keyed with BLAKE3(domain) (docs/PROTOCOL.md). */
export function domainHash(domain, bytes) {
  let key = domainKeys.get(domain);
  if (!key) {
    key = hash(encoder.encode(domain));
    domainKeys.set(domain, key);
  }
  return keyedHash(key, bytes);
}

function pair(domain, left, right) {
  const block = new Uint8Array(64);
  block.set(left, 0);
  block.set(right, 32);
  return domainHash(domain, block);
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** A proof that did not verify; `code` is a stable snake_case word. */
export class ProofError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ProofError';
    this.code = code;
  }
}

/** Decodes a state proof (docs/PROTOCOL.md, state proofs). */
export function decodeProof(bytes) {
  if (bytes.length < 3) throw new ProofError('proof_truncated', 'a proof is at least 3 bytes');
  const depth = bytes[0] | (bytes[1] << 8);
  if (depth > 256) throw new ProofError('proof_too_deep', `depth ${depth} is over 256`);
  let offset = 2;
  const take = (n) => {
    if (offset + n > bytes.length) throw new ProofError('proof_truncated', `the proof ends at byte ${bytes.length}, ${n} more needed at ${offset}`);
    const field = bytes.subarray(offset, offset + n);
    offset += n;
    return field;
  };
  const siblings = [];
  for (let i = 0; i < depth; i++) siblings.push(take(32));
  const tag = take(1)[0];
  let terminal;
  if (tag === 0) terminal = null;
  else if (tag === 1) terminal = { keyHash: take(32), valueHash: take(32) };
  else throw new ProofError('proof_unknown_tag', `terminal tag ${tag}`);
  if (offset !== bytes.length) throw new ProofError('proof_trailing_bytes', `${bytes.length - offset} bytes after the proof`);
  return { siblings, terminal };
}

function bit(hashBytes, index) {
  return (hashBytes[index >> 3] >> (7 - (index & 7))) & 1;
}

/**
 * Checks that under `root` the key holds `value` (a Uint8Array), or is
 * absent (`value === null`). Throws a ProofError, else returns the depth.
 */
export function verifyStateProof(root, key, value, proofBytes) {
  const proof = decodeProof(proofBytes);
  const keyHash = domainHash('ea/state/key/v1', key);
  let node = proof.terminal
    ? pair('ea/state/leaf/v1', proof.terminal.keyHash, proof.terminal.valueHash)
    : domainHash('ea/state/empty/v1', new Uint8Array(0));
  for (let depth = proof.siblings.length - 1; depth >= 0; depth--) {
    const sibling = proof.siblings[depth];
    node = bit(keyHash, depth)
      ? pair('ea/state/node/v1', sibling, node)
      : pair('ea/state/node/v1', node, sibling);
  }
  if (!equal(node, root)) throw new ProofError('root_mismatch', `the proof folds to ${toHex(node)}, not the state root ${toHex(root)}`);
  const depth = proof.siblings.length;
  if (!proof.terminal) {
    if (value !== null) throw new ProofError('key_absent', 'the proof shows the key absent, the node sent a value');
    return depth;
  }
  const found = proof.terminal.keyHash;
  for (let i = 0; i < depth; i++) {
    if (bit(found, i) !== bit(keyHash, i)) throw new ProofError('off_path', 'the proof\'s leaf is not on the key\'s path');
  }
  const same = equal(found, keyHash);
  if (value === null) {
    if (same) throw new ProofError('key_present', 'the proof shows the key present, the node sent no value');
    return depth;
  }
  if (!same) throw new ProofError('key_absent', 'the proof shows the key absent, the node sent a value');
  if (!equal(domainHash('ea/state/value/v1', value), proof.terminal.valueHash)) {
    throw new ProofError('wrong_value', 'the value does not hash to the proof\'s value hash');
  }
  return depth;
}

/** A non-2xx answer of the node: `status`, the stable `code`, the message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** fetch + the error envelope: resolves to the JSON body or throws ApiError. */
export async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { cache: 'no-store', ...options });
  } catch (error) {
    throw new ApiError(0, 'unreachable', `the node did not answer: ${error.message}`);
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) {
    const envelope = body && body.error;
    throw new ApiError(
      response.status,
      envelope ? envelope.code : `http_${response.status}`,
      envelope ? envelope.message : `HTTP ${response.status}`,
    );
  }
  return body;
}

/** Plain text (for /metrics). */
export async function requestText(path) {
  let response;
  try {
    response = await fetch(path, { cache: 'no-store' });
  } catch (error) {
    throw new ApiError(0, 'unreachable', `the node did not answer: ${error.message}`);
  }
  if (!response.ok) throw new ApiError(response.status, `http_${response.status}`, `HTTP ${response.status}`);
  return response.text();
}

const RETRY_MS = [500, 1000, 2000, 4000, 8000];

/**
 * The tick stream: server-sent events read with fetch, so that a
 * reconnect sends `Last-Event-ID` itself (after a node restart too, where
 * EventSource gives up) and a refusal (503 `incident`) is seen with its code.
 * Listeners: onEvent(type, data, id) and onState({state, ...}) where state
 * is `connecting`, `live`, `away` (with `since`, `error`) or `back` (with
 * `awayMs`).
 */
export class TickStream {
  constructor(url, { onEvent, onState }) {
    this.url = url;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastId = null;
    this.awaySince = null;
    this.attempt = 0;
    this.closed = false;
    this.controller = null;
    this.run();
  }

  close() {
    this.closed = true;
    if (this.controller) this.controller.abort();
  }

  async run() {
    while (!this.closed) {
      let failure = null;
      try {
        await this.once();
        failure = new ApiError(0, 'stream_ended', 'the node ended the stream');
      } catch (error) {
        failure = error;
      }
      if (this.closed) return;
      if (this.awaySince === null) this.awaySince = Date.now();
      this.onState({ state: 'away', since: this.awaySince, error: failure });
      const wait = RETRY_MS[Math.min(this.attempt, RETRY_MS.length - 1)];
      this.attempt += 1;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  async once() {
    this.controller = new AbortController();
    const headers = { Accept: 'text/event-stream' };
    if (this.lastId !== null) headers['Last-Event-ID'] = String(this.lastId);
    this.onState({ state: 'connecting' });
    let response;
    try {
      response = await fetch(this.url, { headers, cache: 'no-store', signal: this.controller.signal });
    } catch (error) {
      throw new ApiError(0, 'unreachable', `the node did not answer: ${error.message}`);
    }
    if (!response.ok) {
      let code = `http_${response.status}`;
      let message = `HTTP ${response.status}`;
      try {
        const body = await response.json();
        code = body.error.code;
        message = body.error.message;
      } catch { /* not the envelope */ }
      throw new ApiError(response.status, code, message);
    }
    if (this.awaySince !== null) {
      this.onState({ state: 'back', awayMs: Date.now() - this.awaySince, lastId: this.lastId });
      this.awaySince = null;
    } else {
      this.onState({ state: 'live' });
    }
    this.attempt = 0;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let event = { type: 'message', data: [], id: null };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.search(/\r\n|\n|\r/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
        if (line === '') {
          if (event.data.length) this.dispatch(event);
          event = { type: 'message', data: [], id: null };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event.type = text;
        else if (field === 'data') event.data.push(text);
        else if (field === 'id') event.id = text;
      }
    }
  }

  dispatch(event) {
    let data;
    try { data = JSON.parse(event.data.join('\n')); } catch { return; }
    if (event.id !== null && /^\d+$/.test(event.id)) this.lastId = Number(event.id);
    this.onEvent(event.type, data, this.lastId);
  }
}

/** Ticks whose state roots are remembered for proof checks. */
const ROOTS_KEPT = 512;

/**
 * Connects to the world this node runs; resolves to the viewer API:
 * `world`, `status()`, `onTick(fn)`, `onStream(fn)`, `read(key)`,
 * `keys({after, limit})`, `tick(t)`, `rootOf(tick)`, `close()` (docs/HTTP.md).
 */
export async function connect({ onListenerError = (error) => console.error(error) } = {}) {
  const version = await request('/version');
  const world = version.world;
  const base = `/v1/worlds/${encodeURIComponent(world)}`;
  const tickListeners = new Set();
  const streamListeners = new Set();
  const roots = new Map();
  const waiting = new Map();
  let head = 0;
  // A listener that throws (a broken viewer) is reported, never allowed to
  // stop the stream or the page.
  const safely = (listener, value) => {
    try { listener(value); } catch (error) { onListenerError(error); }
  };
  const stream = new TickStream(`${base}/events`, {
    onEvent(type, data) {
      if (type === 'tick') {
        head = Math.max(head, data.tick);
        roots.set(data.tick, data.state_root);
        if (roots.size > ROOTS_KEPT) roots.delete(roots.keys().next().value);
        for (const [tick, resolvers] of waiting) {
          if (tick > data.tick) continue;
          waiting.delete(tick);
          for (const resolve of resolvers) resolve(roots.get(tick) || null);
        }
        for (const listener of tickListeners) safely(listener, data);
      } else {
        for (const listener of streamListeners) safely(listener, { state: type, ...data });
      }
    },
    onState(state) {
      for (const listener of streamListeners) safely(listener, state);
    },
  });

  // The state root the node published for `tick`: from the stream, else
  // waited for briefly, else read from the tick's record.
  async function publishedRoot(tick) {
    if (roots.has(tick)) return { root: roots.get(tick), source: 'stream' };
    if (tick > head) {
      // Several reads may wait for one tick; each is answered once.
      const root = await new Promise((resolve) => {
        let answered = false;
        const once = (value) => { if (!answered) { answered = true; resolve(value); } };
        if (!waiting.has(tick)) waiting.set(tick, []);
        waiting.get(tick).push(once);
        setTimeout(() => once(null), 2000);
      });
      if (root) return { root, source: 'stream' };
    }
    const record = await request(`${base}/ticks/${tick}`);
    return { root: record.state_root, source: 'tick' };
  }

  return {
    world,
    version,
    base,
    status: () => request(`${base}/status`),
    tick: (number) => request(`${base}/ticks/${number}`),
    // A page of the key space (`GET …/keys`): the node's listing, not a
    // proof; read a key to check its value.
    keys: ({ after = null, limit = null } = {}) => {
      const query = new URLSearchParams();
      if (after) query.set('after', after);
      if (limit) query.set('limit', String(limit));
      const text = query.toString();
      return request(`${base}/keys${text ? `?${text}` : ''}`);
    },
    rootOf: (tick) => roots.get(tick) || null,
    onTick(listener) { tickListeners.add(listener); return () => tickListeners.delete(listener); },
    onStream(listener) { streamListeners.add(listener); return () => streamListeners.delete(listener); },
    close() { stream.close(); },
    /**
     * Reads a key (hex string or Uint8Array) with its proof, checks the
     * proof against the state root in the answer and that root against the
     * one the node published for the same tick. Resolves to
     * `{tick, key, value (Uint8Array or null), stateRoot, depth, rootSource}`;
     * rejects with ApiError or ProofError.
     */
    async read(key) {
      const keyHex = typeof key === 'string' ? key.toLowerCase() : toHex(key);
      const keyBytes = fromHex(keyHex);
      const answer = await request(`${base}/state/${keyHex}`);
      const value = answer.value === null ? null : fromHex(answer.value);
      const depth = verifyStateProof(fromHex(answer.state_root), keyBytes, value, fromHex(answer.proof));
      const published = await publishedRoot(answer.tick);
      if (published.root !== answer.state_root) {
        throw new ProofError('root_not_published', `tick ${answer.tick}: the node published state root ${published.root}, the read claims ${answer.state_root}`);
      }
      return { tick: answer.tick, key: keyHex, value, stateRoot: answer.state_root, depth, rootSource: published.source };
    },
  };
}
