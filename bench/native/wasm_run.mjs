// wasm_run.mjs - runs world.wasm under node with a JS stand-in host, on the
// same scenario as `test_arena sim BOTS TICKS SEED` (same bot keys, seeds,
// nonces and call order), and prints the same state digest. Equal digests
// mean the wasm build and the native build computed the same world.
//
//   node wasm_run.mjs WORLD.wasm BOTS TICKS [SEED] [--fuel] [--stress]
//        [--poison] [--manifest=world.toml]
//
// Like the real host it uses a FRESH instance for every tick's world calls
// (genesis, inputs, ea_tick) and for every single ea_bot call, rolls back
// the writes of a rejected input, and traps on writes from a bot.
//
// --fuel instruments the module (a counter incremented before every operator
// that wasmtime charges fuel for: all but nop, drop, block, loop, end, else,
// unreachable, return) and reports the fuel each kind of call used.
// --stress also measures a worst case for ea_tick: every player in one spot
// and a full projectile array (1024) aimed through them.
//
// --poison fills all of linear memory except the data segments with pseudo-
// random bytes before every call (each input, each bot call, ea_tick), so a
// world that reads memory it did not write in the current call (stale
// scratch from an earlier input, an uninitialised local) ends with another
// digest than the native build.
//
// --manifest=PATH (with --fuel) exits 1 if a call used more fuel than the
// manifest's fuel_per_input (ea_input, ea_bot) or fuel_per_tick (ea_tick,
// ea_genesis) allow.
//
// It also checks that the module uses only MVP opcodes and prints its
// imports, exports and memory limits.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const flags = new Set(args.filter((a) => a.startsWith('--') && !a.includes('=')));
const opts = Object.fromEntries(args.filter((a) => a.startsWith('--') && a.includes('=')).map((a) => a.slice(2).split('=')));
const pos = args.filter((a) => !a.startsWith('--'));
if (pos.length < 3) {
  console.error('usage: node wasm_run.mjs WORLD.wasm BOTS TICKS [SEED] [--fuel] [--stress]');
  process.exit(2);
}
const [file, botsArg, ticksArg, seedArg] = pos;
const BOTS = Number(botsArg);
const TICKS = Number(ticksArg);
const SEED = BigInt(seedArg ?? 1);
const FUEL = flags.has('--fuel');
const POISON = flags.has('--poison');

// Manifest limits (world.toml).
const PAYLOAD_BYTES = 256;
const EVENT_BYTES = 256;
const EVENTS_PER_CALL = 16;
const KEY_BYTES = 64;
const VALUE_BYTES = 65536;

// ---------------------------------------------------------------------------
// Binary reading / instrumentation
// ---------------------------------------------------------------------------
class Reader {
  constructor(buf, pos = 0) { this.buf = buf; this.pos = pos; }
  byte() { return this.buf[this.pos++]; }
  u32() {
    let result = 0, shift = 0, b;
    do { b = this.byte(); result += (b & 0x7f) * 2 ** shift; shift += 7; } while (b & 0x80);
    return result;
  }
  sleb() { let b; do { b = this.byte(); } while (b & 0x80); } // skip only
  name() { const n = this.u32(); const s = Buffer.from(this.buf.subarray(this.pos, this.pos + n)).toString('utf8'); this.pos += n; return s; }
}
function uleb(n) {
  const out = [];
  do { let b = n & 0x7f; n = Math.floor(n / 128); if (n) b |= 0x80; out.push(b); } while (n);
  return out;
}

const FREE_OPS = new Set([0x00, 0x01, 0x02, 0x03, 0x05, 0x0b, 0x0f, 0x1a]);
const VALTYPES = new Set([0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f]);
let nonMvp = new Set();

// Walks one function body's instructions, calling visit(opStart, opcode).
function walkExpr(r, end, visit) {
  while (r.pos < end) {
    const start = r.pos;
    const op = r.byte();
    visit(start, op);
    switch (op) {
      case 0x02: case 0x03: case 0x04: {
        const b = r.buf[r.pos];
        if (VALTYPES.has(b)) r.pos++; else r.sleb();
        break;
      }
      case 0x0c: case 0x0d: case 0x10: case 0x20: case 0x21: case 0x22: case 0x23: case 0x24:
      case 0x25: case 0x26: case 0xd2:
        r.u32(); break;
      case 0x0e: { const n = r.u32(); for (let i = 0; i <= n; i++) r.u32(); break; }
      case 0x11: r.u32(); r.u32(); break;
      case 0x1c: { nonMvp.add('select t'); const n = r.u32(); r.pos += n; break; }
      case 0x3f: case 0x40: r.pos++; break;
      case 0x41: case 0x42: r.sleb(); break;
      case 0x43: r.pos += 4; break;
      case 0x44: r.pos += 8; break;
      case 0xd0: r.pos++; break;
      case 0xfc: {
        const sub = r.u32();
        nonMvp.add(`0xfc ${sub}`);
        if (sub === 8) { r.u32(); r.pos++; } else if (sub === 9 || sub === 13 || sub >= 15) r.u32();
        else if (sub === 10) r.pos += 2; else if (sub === 11) r.pos++;
        else if (sub === 12 || sub === 14) { r.u32(); r.u32(); }
        break;
      }
      case 0xfd: case 0xfe: throw new Error(`SIMD/threads opcode 0x${op.toString(16)} not supported`);
      default:
        if (op >= 0x28 && op <= 0x3e) { r.u32(); r.u32(); }
        else if (op >= 0xc0 && op <= 0xc4) nonMvp.add('sign-ext');
    }
  }
}

function analyse(bytes, instrument) {
  const r = new Reader(bytes, 8);
  const sections = [];
  const info = { imports: [], exports: [], memory: null, globals: 0, importedGlobals: 0, data: [] };
  while (r.pos < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    const start = r.pos;
    sections.push({ id, start, end: start + size });
    const s = new Reader(bytes, start);
    if (id === 2) {
      const n = s.u32();
      for (let i = 0; i < n; i++) {
        const mod = s.name(), field = s.name(), kind = s.byte();
        if (kind === 0) s.u32(); else if (kind === 3) { s.pos += 2; info.importedGlobals++; } else throw new Error('non-function import');
        info.imports.push(`${mod}.${field}`);
      }
    } else if (id === 5) {
      s.u32();
      const fl = s.byte(); const min = s.u32(); const max = fl & 1 ? s.u32() : null;
      info.memory = { min, max };
    } else if (id === 6) {
      info.globals = s.u32();
    } else if (id === 7) {
      const n = s.u32();
      for (let i = 0; i < n; i++) { const nm = s.name(); const k = s.byte(); s.u32(); info.exports.push(`${nm}(${['func', 'table', 'memory', 'global'][k]})`); }
    } else if (id === 11) {
      const n = s.u32();
      for (let i = 0; i < n; i++) {
        const fl = s.u32();
        if (fl !== 0) throw new Error('only active data segments are expected');
        if (s.byte() !== 0x41) throw new Error('data offset is not i32.const');
        let off = 0, shift = 0, b;
        do { b = s.byte(); off |= (b & 0x7f) << shift; shift += 7; } while (b & 0x80);
        if (shift < 32 && (b & 0x40)) off |= -1 << shift;
        s.byte(); // end
        const len = s.u32();
        info.data.push([off, off + len]);
        s.pos += len;
      }
    } else if (id === 10) {
      const n = s.u32();
      for (let i = 0; i < n; i++) {
        const sz = s.u32(); const end = s.pos + sz;
        const nl = s.u32(); for (let j = 0; j < nl; j++) { s.u32(); s.pos++; }
        walkExpr(s, end, () => {});
        s.pos = end;
      }
    }
    r.pos = start + size;
  }
  if (!instrument) return { info, bytes };

  // Instrumented copy: a new mutable i32 global "fuel", exported.
  const g = info.importedGlobals + info.globals;
  const inc = [0x23, ...uleb(g), 0x41, 0x01, 0x6a, 0x24, ...uleb(g)];
  const out = [...bytes.subarray(0, 8)];
  const emit = (id, body) => { out.push(id, ...uleb(body.length), ...body); };
  let sawGlobal = false;
  for (const sec of sections) {
    const body = bytes.subarray(sec.start, sec.end);
    if (sec.id === 10) {
      const s = new Reader(bytes, sec.start);
      const n = s.u32();
      const nb = [...uleb(n)];
      for (let i = 0; i < n; i++) {
        const sz = s.u32(); const end = s.pos + sz; const fstart = s.pos;
        const nl = s.u32(); for (let j = 0; j < nl; j++) { s.u32(); s.pos++; }
        const fb = [...bytes.subarray(fstart, s.pos)];
        let last = s.pos;
        const ops = [];
        walkExpr(s, end, (p, op) => ops.push([p, op]));
        for (let k = 0; k < ops.length; k++) {
          const [p, op] = ops[k];
          const next = k + 1 < ops.length ? ops[k + 1][0] : end;
          if (!FREE_OPS.has(op)) fb.push(...inc);
          fb.push(...bytes.subarray(p, next));
          last = next;
        }
        nb.push(...uleb(fb.length), ...fb);
        s.pos = end;
      }
      emit(10, nb);
    } else if (sec.id === 6) {
      const s = new Reader(bytes, sec.start);
      const n = s.u32();
      emit(6, [...uleb(n + 1), ...bytes.subarray(s.pos, sec.end), 0x7f, 0x01, 0x41, 0x00, 0x0b]);
      sawGlobal = true;
    } else if (sec.id === 7) {
      if (!sawGlobal) throw new Error('module has no global section');
      const s = new Reader(bytes, sec.start);
      const n = s.u32();
      const nm = [...Buffer.from('__fuel')];
      emit(7, [...uleb(n + 1), ...bytes.subarray(s.pos, sec.end), ...uleb(nm.length), ...nm, 0x03, ...uleb(g)]);
    } else {
      emit(sec.id, [...body]);
    }
  }
  return { info, bytes: new Uint8Array(out) };
}

// ---------------------------------------------------------------------------
// Deterministic keys and seeds (mirror of test_arena.c)
// ---------------------------------------------------------------------------
const M64 = (1n << 64n) - 1n;
function mix64(z) {
  z = (z + 0x9E3779B97F4A7C15n) & M64;
  z = ((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94D049BB133111EBn) & M64;
  return z ^ (z >> 31n);
}
function wr64(buf, off, v) { for (let i = 0; i < 8; i++) buf[off + i] = Number((v >> BigInt(8 * i)) & 0xffn); }
function pubkey(p) { const o = new Uint8Array(32); for (let i = 0; i < 4; i++) wr64(o, 8 * i, mix64((0xB07n << 32n) | (BigInt(p) * 4n + BigInt(i)))); return o; }
function worldSeed(seed, t) { const base = mix64(seed ^ mix64(BigInt(t))); const o = new Uint8Array(32); for (let i = 0; i < 4; i++) wr64(o, 8 * i, mix64((base + BigInt(i)) & M64)); return o; }
function botSeed(seed, p, t) { const base = mix64(seed ^ 0xB0B0B0B0B0B0n ^ mix64(BigInt(t)) ^ mix64((BigInt(p) + 1n) << 32n)); const o = new Uint8Array(32); for (let i = 0; i < 4; i++) wr64(o, 8 * i, mix64((base + BigInt(i)) & M64)); return o; }

// ---------------------------------------------------------------------------
// The host
// ---------------------------------------------------------------------------
const state = new Map(); // latin1 key string -> Uint8Array
let journal = null;       // array of [key, oldValue|undefined] while an input runs
let readOnly = false;
let seedBytes = new Uint8Array(32);
let events = [];
let inst = null;
let mem = () => new Uint8Array(inst.exports.memory.buffer);
class Trap extends Error {}

const keyStr = (p, n) => {
  if (n < 1 || n > KEY_BYTES) throw new Trap('KeyLength');
  return Buffer.from(mem().subarray(p, p + n)).toString('latin1');
};
const imports = {
  ea: {
    state_get(kp, kl, vp, vc) {
      const v = state.get(keyStr(kp, kl));
      if (v === undefined) return -1;
      mem().set(v.subarray(0, Math.min(v.length, vc)), vp);
      return v.length;
    },
    state_set(kp, kl, vp, vl) {
      if (readOnly) throw new Trap('ReadOnlyState');
      if (vl < 0 || vl > VALUE_BYTES) throw new Trap('ValueLength');
      const k = keyStr(kp, kl);
      if (journal) journal.push([k, state.get(k)]);
      state.set(k, mem().slice(vp, vp + vl));
    },
    state_del(kp, kl) {
      if (readOnly) throw new Trap('ReadOnlyState');
      const k = keyStr(kp, kl);
      if (journal) journal.push([k, state.get(k)]);
      state.delete(k);
    },
    emit(p, n) {
      if (n > EVENT_BYTES) throw new Trap('EventLength');
      if (events.length >= EVENTS_PER_CALL) throw new Trap('EventCount');
      events.push(mem().slice(p, p + n));
    },
    random_seed(p) { mem().set(seedBytes, p); },
    log(p, n) { if (process.env.EA_LOG) console.error('[guest]', Buffer.from(mem().subarray(p, p + n)).toString()); },
  },
};

function digest() {
  const keys = [...state.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
  let h = 0xcbf29ce484222325n;
  const feed = (bytes) => { for (const b of bytes) { h ^= BigInt(b); h = (h * 0x100000001b3n) & M64; } };
  const len = (n) => [n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255];
  for (const k of keys) {
    const kb = Buffer.from(k, 'latin1'); const v = state.get(k);
    feed(len(kb.length)); feed(kb); feed(len(v.length)); feed(v);
  }
  return h.toString(16).padStart(16, '0');
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------
const original = new Uint8Array(readFileSync(file));
const { info, bytes } = analyse(original, FUEL);
console.log(`module: ${original.length} bytes; imports ${info.imports.join(', ')}`);
console.log(`exports ${info.exports.join(', ')}; memory pages min ${info.memory?.min} max ${info.memory?.max}`);
console.log(`non-MVP features: ${nonMvp.size ? [...nonMvp].join(', ') : 'none'}`);
const module = new WebAssembly.Module(bytes);

const fuel = {};
function fresh() { inst = new WebAssembly.Instance(module, imports); }
let poisonBuf = null, poisonData = null, poisonCall = 0;
function poison() {
  if (!POISON) return;
  const m = mem();
  if (!poisonBuf) {
    poisonBuf = new Uint8Array(2 * m.length);
    let x = 0x1234567;
    for (let i = 0; i < poisonBuf.length; i++) { x = (x * 1103515245 + 12345) >>> 0; poisonBuf[i] = x >>> 24; }
    poisonData = info.data.map(([a, b]) => [a, m.slice(a, b)]); // fresh instance: pristine data
  }
  const off = (poisonCall++ * 7919) % m.length;
  m.set(poisonBuf.subarray(off, off + m.length));
  for (const [a, bytes] of poisonData) m.set(bytes, a);
}
function call(kind, fn, ...a) {
  if (FUEL) inst.exports.__fuel.value = 0;
  const r = fn(...a);
  if (FUEL) {
    const f = inst.exports.__fuel.value >>> 0;
    const s = (fuel[kind] ??= { n: 0, sum: 0, max: 0 });
    s.n++; s.sum += f; s.max = Math.max(s.max, f);
  }
  return r;
}

const codes = new Map();
let kills = 0, applied = 0;
function takeEvents() { for (const e of events) if (e[0] === 0x4b) kills += e[1]; events = []; }
const OPNAME = { 1: 'join', 2: 'move', 3: 'fire', 4: 'leave' };

function sendInput(pub, nonce, payload) {
  const len = 40 + payload.length;
  poison();
  const p = inst.exports.ea_alloc(len);
  const m = mem();
  m.set(pub, p); wr64(m, p + 32, BigInt(nonce)); m.set(payload, p + 40);
  journal = []; events = [];
  let r;
  try {
    r = call(`ea_input ${OPNAME[payload[0]] ?? '?'}`, inst.exports.ea_input, p, len);
  } catch (e) {
    if (!(e instanceof Trap) && !(e instanceof WebAssembly.RuntimeError)) throw e;
    console.log(`input trapped: ${e.message}`);
    r = -1;
  }
  if (r === 0) { applied++; takeEvents(); }
  else {
    for (let i = journal.length - 1; i >= 0; i--) { const [k, v] = journal[i]; if (v === undefined) state.delete(k); else state.set(k, v); }
    events = [];
    if (r === -1) fresh();
  }
  journal = null;
  codes.set(r, (codes.get(r) ?? 0) + 1);
  return r;
}

const t0 = performance.now();
fresh();
seedBytes = worldSeed(SEED, 0);
if (inst.exports.ea_genesis) call('ea_genesis', inst.exports.ea_genesis);
takeEvents();
const pubs = Array.from({ length: BOTS }, (_, p) => pubkey(p));
const nonces = new Array(BOTS).fill(0);
for (let t = 1; t <= TICKS; t++) {
  const inputs = [];
  readOnly = true;
  for (let p = 0; p < BOTS; p++) {
    fresh();
    seedBytes = botSeed(SEED, p, t);
    poison();
    const out = inst.exports.ea_alloc(PAYLOAD_BYTES);
    const m = mem();
    m.fill(0, out, out + PAYLOAD_BYTES);
    m.set(pubs[p], out);
    const len = call('ea_bot', inst.exports.ea_bot, p, BigInt(t), out, PAYLOAD_BYTES);
    if (len >= 0) inputs.push([p, mem().slice(out, out + len)]);
  }
  readOnly = false;
  fresh();
  seedBytes = worldSeed(SEED, t);
  for (const [p, payload] of inputs) sendInput(pubs[p], ++nonces[p], payload);
  events = [];
  poison();
  call('ea_tick', inst.exports.ea_tick, BigInt(t));
  takeEvents();
}
const secs = (performance.now() - t0) / 1000;
const w = state.get('W');
console.log(`wasm sim bots=${BOTS} ticks=${TICKS} seed=${SEED}: players ${w ? w[2] | (w[3] << 8) : 0}, kills ${kills}, inputs ${[...codes].map(([c, n]) => `${c}:${n}`).join(' ')}`);
console.log(`  ${secs.toFixed(2)} s under node (fresh instance per tick and per bot call${FUEL ? ', instrumented' : ''}${POISON ? ', memory poisoned before every call' : ''})`);
console.log(`  state digest ${digest()}`);

if (flags.has('--stress')) {
  // Worst case for one input: LEAVE with a full projectile array and a full
  // command queue, the leaver's entries first so that everything is moved.
  {
    const k = 'K' + Buffer.from(pubs[0]).toString('latin1');
    const sv = state.get(k);
    if (sv) {
      const slot = sv[0] | (sv[1] << 8);
      const B = new Uint8Array(1024 * 8);
      for (let i = 0; i < 1024; i++) { B[i * 8 + 1] = 1; B[i * 8 + 3] = 1; B[i * 8 + 4] = 96; B[i * 8 + 6] = i === 0 ? slot : (slot + 1) % BOTS; B[i * 8 + 7] = 9; }
      const Q = new Uint8Array(32 + 1024 * 4);
      for (let i = 0; i < 1024; i++) { Q[32 + i * 4] = 2; Q[33 + i * 4] = i === 0 ? slot : (slot + 1) % BOTS; }
      const saved = [state.get('B'), state.get('Q')];
      state.set('B', B); state.set('Q', Q);
      fresh();
      const r = sendInput(pubs[0], ++nonces[0], new Uint8Array([4]));
      console.log(`stress LEAVE: result ${r}`);
      if (saved[0]) state.set('B', saved[0]); else state.delete('B');
      if (saved[1]) state.set('Q', saved[1]); else state.delete('Q');
      fuel['ea_input leave (+1 stress)'] = fuel['ea_input leave'];
      delete fuel['ea_input leave'];
    }
  }
  // Worst case for one ea_tick: all players stacked in one spot (the 4 grid
  // cells around it), 1024 projectiles converging on it from the owners' side.
  const P = state.get('P');
  if (P) {
    const n = P.length / 18;
    const np = new Uint8Array(P);
    for (let s = 0; s < n; s++) {
      const r = np.subarray(s * 18, s * 18 + 18);
      if (!(r[7] & 1)) continue;
      r[7] = 3; r[6] = 100; r[8] = 0; r[9] = 0; r[4] = 0; r[5] = 0;
      const x = 500 + (s % 5) - 2, y = 500 + ((s >> 3) % 5) - 2;
      r[0] = x & 255; r[1] = x >> 8; r[2] = y & 255; r[3] = y >> 8;
    }
    state.set('P', np);
    // Projectiles sitting right next to the crowd, each with an owner outside
    // it... every owner is in the crowd, so they scan every candidate.
    const B = new Uint8Array(1024 * 8);
    for (let i = 0; i < 1024; i++) {
      const b = B.subarray(i * 8, i * 8 + 8);
      const x = 8 * 500 - 96, y = 8 * 500;
      b[0] = x & 255; b[1] = x >> 8; b[2] = y & 255; b[3] = y >> 8; b[4] = 96; b[5] = 0; b[6] = i % n; b[7] = 40;
    }
    state.set('B', B);
    fresh();
    seedBytes = worldSeed(SEED, TICKS + 1);
    call('ea_tick stress', inst.exports.ea_tick, BigInt(TICKS + 1));
    takeEvents();
  }
}

if (FUEL) {
  console.log('fuel (wasm operators, wasmtime cost model):');
  for (const [k, s] of Object.entries(fuel).sort()) {
    console.log(`  ${k.padEnd(22)} calls ${String(s.n).padStart(7)}  mean ${(s.sum / s.n).toFixed(0).padStart(7)}  max ${String(s.max).padStart(8)}`);
  }
}

if (FUEL && opts.manifest) {
  const text = readFileSync(opts.manifest, 'utf8');
  const limit = (name) => Number(text.match(new RegExp(`^\\s*${name}\\s*=\\s*(\\d+)`, 'm'))?.[1]);
  const perInput = limit('fuel_per_input'), perTick = limit('fuel_per_tick');
  let bad = 0;
  for (const [k, s] of Object.entries(fuel)) {
    const lim = k.startsWith('ea_tick') || k === 'ea_genesis' ? perTick : perInput;
    const headroom = lim / s.max;
    if (!(s.max <= lim)) { console.log(`FAIL ${k}: max fuel ${s.max} > limit ${lim}`); bad++; }
    else console.log(`  ${k.padEnd(22)} within its limit ${lim} (${headroom.toFixed(1)}x headroom)`);
  }
  if (bad) process.exit(1);
}
