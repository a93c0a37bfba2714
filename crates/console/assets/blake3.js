// BLAKE3 (hash and keyed_hash, 32-byte output), written from the BLAKE3
// specification for the pages' proof checks. Small and not fast: the pages
// hash a few values of at most a few KiB per second. Tested against the Rust
// `blake3` crate (crates/console/tests/js.rs).

const IV = new Uint32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);
const PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
const CHUNK_START = 1;
const CHUNK_END = 2;
const PARENT = 4;
const ROOT = 8;
const KEYED_HASH = 16;
const BLOCK_BYTES = 64;
const CHUNK_BYTES = 1024;

function g(s, a, b, c, d, x, y) {
  s[a] = (s[a] + s[b] + x) | 0;
  s[d] ^= s[a]; s[d] = (s[d] >>> 16) | (s[d] << 16);
  s[c] = (s[c] + s[d]) | 0;
  s[b] ^= s[c]; s[b] = (s[b] >>> 12) | (s[b] << 20);
  s[a] = (s[a] + s[b] + y) | 0;
  s[d] ^= s[a]; s[d] = (s[d] >>> 8) | (s[d] << 24);
  s[c] = (s[c] + s[d]) | 0;
  s[b] ^= s[c]; s[b] = (s[b] >>> 7) | (s[b] << 25);
}

// The compression function; returns the first 8 words (a chaining value,
// or the first 32 bytes of output for a ROOT compression).
function compress(cv, block, counter, blockLength, flags) {
  const s = new Uint32Array(16);
  s.set(cv, 0);
  s.set(IV.subarray(0, 4), 8);
  s[12] = counter >>> 0;
  s[13] = Math.floor(counter / 0x100000000) >>> 0;
  s[14] = blockLength;
  s[15] = flags;
  let m = Uint32Array.from(block);
  for (let round = 0; round < 7; round++) {
    g(s, 0, 4, 8, 12, m[0], m[1]);
    g(s, 1, 5, 9, 13, m[2], m[3]);
    g(s, 2, 6, 10, 14, m[4], m[5]);
    g(s, 3, 7, 11, 15, m[6], m[7]);
    g(s, 0, 5, 10, 15, m[8], m[9]);
    g(s, 1, 6, 11, 12, m[10], m[11]);
    g(s, 2, 7, 8, 13, m[12], m[13]);
    g(s, 3, 4, 9, 14, m[14], m[15]);
    if (round < 6) m = Uint32Array.from(PERMUTATION, (i) => m[i]);
  }
  const out = new Uint32Array(8);
  for (let i = 0; i < 8; i++) out[i] = s[i] ^ s[i + 8];
  return out;
}

// Little-endian words of a block of at most 64 bytes, zero-padded.
function blockWords(bytes, offset, length) {
  const words = new Uint32Array(16);
  for (let i = 0; i < length; i++) {
    words[i >> 2] |= bytes[offset + i] << (8 * (i & 3));
  }
  return words;
}

function chunkOutput(key, input, chunk, flags, root) {
  const start = chunk * CHUNK_BYTES;
  const end = Math.min(start + CHUNK_BYTES, input.length);
  const blocks = Math.max(1, Math.ceil((end - start) / BLOCK_BYTES));
  let cv = key;
  for (let b = 0; b < blocks; b++) {
    const offset = start + b * BLOCK_BYTES;
    const length = Math.min(BLOCK_BYTES, end - offset);
    let blockFlags = flags;
    if (b === 0) blockFlags |= CHUNK_START;
    if (b === blocks - 1) blockFlags |= CHUNK_END | (root ? ROOT : 0);
    cv = compress(cv, blockWords(input, offset, length), chunk, length, blockFlags);
  }
  return cv;
}

// The chaining value of chunks [first, first + count), or the root output.
function subtree(key, input, first, count, flags, root) {
  if (count === 1) return chunkOutput(key, input, first, flags, root);
  let left = 1;
  while (left * 2 < count) left *= 2;
  const block = new Uint32Array(16);
  block.set(subtree(key, input, first, left, flags, false), 0);
  block.set(subtree(key, input, first + left, count - left, flags, false), 8);
  return compress(key, block, 0, BLOCK_BYTES, flags | PARENT | (root ? ROOT : 0));
}

function digest(key, input, flags) {
  const chunks = Math.max(1, Math.ceil(input.length / CHUNK_BYTES));
  const words = subtree(key, input, 0, chunks, flags, true);
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = (words[i >> 2] >>> (8 * (i & 3))) & 0xff;
  return out;
}

/** BLAKE3 of `input` (a Uint8Array): 32 bytes. */
export function hash(input) {
  return digest(IV, input, 0);
}

/** BLAKE3 in keyed mode with a 32-byte `key`: 32 bytes. */
export function keyedHash(key, input) {
  if (key.length !== 32) throw new RangeError('a BLAKE3 key is 32 bytes');
  return digest(blockWords(key, 0, 32).subarray(0, 8), input, KEYED_HASH);
}
