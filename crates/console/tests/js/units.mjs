// Checks the pages' hand-written BLAKE3 and state-proof verifier against
// vectors the Rust crates computed (crates/console/tests/js.rs writes them).
// Usage: node units.mjs <vectors.json>. Prints "N passed, M failed".
import { readFileSync } from 'node:fs';
import { hash, keyedHash } from '../../assets/blake3.js';
import { domainHash, fromHex, toHex, verifyStateProof, ProofError, decodeProof } from '../../assets/everarcade.js';

const vectors = JSON.parse(readFileSync(process.argv[2], 'utf8'));
let passed = 0;
let failed = 0;
const check = (name, ok, detail = '') => {
  if (ok) passed += 1; else { failed += 1; console.log(`FAIL ${name} ${detail}`); }
};
const input = (length) => Uint8Array.from({ length }, (_, i) => i % 251);

for (const v of vectors.hash) {
  const got = toHex(hash(input(v.length)));
  check(`hash(${v.length})`, got === v.hash, `${got} != ${v.hash}`);
}
for (const v of vectors.keyed) {
  const got = toHex(keyedHash(fromHex(v.key), input(v.length)));
  check(`keyed(${v.length})`, got === v.hash, `${got} != ${v.hash}`);
}
for (const v of vectors.domain) {
  const got = toHex(domainHash(v.domain, fromHex(v.input)));
  check(`domain(${v.domain})`, got === v.hash, `${got} != ${v.hash}`);
}
for (const v of vectors.proofs) {
  const value = v.value === null ? null : fromHex(v.value);
  let outcome = 'ok';
  try {
    verifyStateProof(fromHex(v.root), fromHex(v.key), value, fromHex(v.proof));
  } catch (error) {
    outcome = error instanceof ProofError ? error.code : `threw ${error}`;
  }
  check(`proof ${v.name}`, outcome === v.expect, `got ${outcome}, expected ${v.expect}`);
}
for (const bad of vectors.bad_encodings) {
  let outcome = 'ok';
  try { decodeProof(fromHex(bad.proof)); } catch (error) { outcome = error.code; }
  check(`decode ${bad.name}`, outcome === bad.expect, `got ${outcome}`);
}
console.log(`js: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
