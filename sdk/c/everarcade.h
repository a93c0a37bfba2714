/*
 * everarcade.h - C SDK for EverArcade world modules (ABI "ea-world/1").
 *
 * One header, no library. It builds a game two ways from the same source:
 *
 *   1. WebAssembly (the real thing), e.g.
 *        clang --target=wasm32 -mcpu=mvp -O2 -nostdlib -ffreestanding \
 *              -I sdk/c -Wl,--no-entry -Wl,--strip-all \
 *              -Wl,--initial-memory=131072 -Wl,--max-memory=131072 \
 *              -Wl,-z,stack-size=65536 -o world.wasm game.c
 *      The host functions are imports of module "ea"; EA_EXPORT(name) marks a
 *      function as a module export.
 *
 *   2. Native (gcc/clang on the build machine), for tests and benchmark floors.
 *      Every host function is then a plain extern C function named
 *      ea_host_<name> (ea_host_state_get, ...) that the native harness
 *      provides, EA_EXPORT is a no-op, and pointers are real pointers.
 *
 * In both builds the game calls the SAME C names: ea_host_state_get(...),
 * or the small typed helpers below (ea_get, ea_set, ea_get_exact, ...).
 *
 * ---------------------------------------------------------------------------
 * The ABI in short
 * ---------------------------------------------------------------------------
 * State lives only in the host's key-value store (keys 1..=256 bytes, values
 * 0..=65536 bytes; the world manifest may lower both). Guest memory is
 * scratch: a fresh instance serves each tick, so nothing in globals or linear
 * memory survives from one tick to the next. Within one tick one instance
 * receives every input and then ea_tick, except that after a trap the host
 * continues with a fresh instance. So: never rely on memory contents you did
 * not write during the current call, and never read bytes of a buffer beyond
 * the length state_get reported.
 *
 * Guest exports (declare with EA_EXPORT):
 *   memory                                  required (the linker exports it;
 *                                           it MUST have a declared maximum)
 *   ea_alloc(len i32) -> i32                required: buffer for the next input
 *   ea_input(ptr i32, len i32) -> i32       required: 0 = applied, > 0 = rejected
 *                                           with that code (the host rolls back the
 *                                           input's writes), < 0 = a host error
 *   ea_genesis()                            optional, once at tick 0
 *   ea_tick(tick i64)                       optional, after the tick's inputs
 *   ea_bot(player i32, tick i64, out i32, cap i32) -> i32
 *                                           optional deterministic bot; on entry
 *                                           out[0..32] holds the bot's public key;
 *                                           returns the payload length or -1;
 *                                           state is read-only there.
 *
 * An input as ea_input sees it:  sender public key (32) || nonce u64 LE (8) ||
 * payload. See EA_INPUT_* below.
 *
 * Host imports (module "ea", every parameter and result is i32):
 *   state_get(kptr, klen, vptr, vcap) -> i32   full value length, or -1 if absent;
 *                                              copies min(length, vcap) bytes
 *   state_set(kptr, klen, vptr, vlen)
 *   state_del(kptr, klen)
 *   emit(ptr, len)                             an event, hashed into the receipt
 *   random_seed(ptr)                           32 deterministic bytes
 *   log(ptr, len)                              debug text, never consensus
 *
 * Determinism rules for game code: integers only (no floats), no reads of
 * uninitialised memory, no dependence on memory left by an earlier call,
 * no undefined behaviour (signed overflow, out-of-range shifts).
 */
#ifndef EVERARCADE_H
#define EVERARCADE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Constants of the ABI
 * ------------------------------------------------------------------------- */

/** ABI name a manifest's `abi` field must carry. */
#define EA_ABI_NAME "ea-world/1"

/** Bytes of an ed25519 public key. */
#define EA_PUBKEY_BYTES 32
/** Bytes before the payload in an ea_input buffer: public key + nonce. */
#define EA_INPUT_HEADER_BYTES 40
/** Bytes random_seed writes. */
#define EA_SEED_BYTES 32
/** Absolute key size limit of the ABI (a manifest may lower it). */
#define EA_KEY_MAX 256
/** Absolute value size limit of the ABI (a manifest may lower it). */
#define EA_VALUE_MAX 65536

/* ---------------------------------------------------------------------------
 * Result conventions
 *
 * ea_input returns EA_OK (0) when the input was applied. Any positive value
 * rejects it: the host rolls back every state write the input made, discards
 * its events, and records the code in the receipt. Games should number their
 * own codes from 1 and document them; the SDK suggests this common prefix so
 * that tools can print something sensible for any game:
 *
 *   EA_REJECT_MALFORMED     1  input shorter than the header or empty payload
 *   EA_REJECT_UNKNOWN_OP    2  payload opcode not known to the game
 *   EA_REJECT_BAD_LENGTH    3  payload length wrong for its opcode
 *   EA_REJECT_GAME_FIRST    4  first code free for game-specific reasons
 *
 * Check stateless things (length, opcode, argument ranges) before reading
 * state, and do every check before the first state_set/state_del: a rejected
 * input is then a pure read, which is cheap for the host to roll back.
 *
 * Negative returns are reserved: the host treats them as a trap (BadReturn).
 * ------------------------------------------------------------------------- */
#define EA_OK 0
#define EA_REJECT_MALFORMED 1
#define EA_REJECT_UNKNOWN_OP 2
#define EA_REJECT_BAD_LENGTH 3
#define EA_REJECT_GAME_FIRST 4

/** ea_bot's return value for "this bot sends nothing this tick". */
#define EA_BOT_IDLE (-1)

/* ---------------------------------------------------------------------------
 * Imports / host functions
 * ------------------------------------------------------------------------- */
#if defined(__wasm__)

#define EA_IMPORT(name) __attribute__((import_module("ea"), import_name(#name)))
/** Export a function from the module under `name` (e.g. EA_EXPORT(ea_input)). */
#define EA_EXPORT(name) __attribute__((export_name(#name), used))

#else /* native build: the harness provides ea_host_* */

#define EA_IMPORT(name)
#define EA_EXPORT(name)

#endif

/** Value length (possibly > vcap; only min(len, vcap) bytes are copied), or -1. */
EA_IMPORT(state_get)
int32_t ea_host_state_get(const void *key, int32_t klen, void *value, int32_t vcap);
/** Create or replace a value. Traps in a bot instance. */
EA_IMPORT(state_set)
void ea_host_state_set(const void *key, int32_t klen, const void *value, int32_t vlen);
/** Delete a key (no-op if absent). Traps in a bot instance. */
EA_IMPORT(state_del)
void ea_host_state_del(const void *key, int32_t klen);
/** Emit an event (size and count limited by the manifest). */
EA_IMPORT(emit)
void ea_host_emit(const void *data, int32_t len);
/** Write EA_SEED_BYTES deterministic bytes. The same bytes for every call in a
 *  tick's world instance (derived from the previous continuity root and the
 *  tick): mix in something call-specific (slot, key) when you need variety. */
EA_IMPORT(random_seed)
void ea_host_random_seed(void *out32);
/** Debug log; not part of consensus. */
EA_IMPORT(log)
void ea_host_log(const void *text, int32_t len);

/* ---------------------------------------------------------------------------
 * Freestanding memory helpers
 *
 * clang may emit calls to memcpy/memset/memmove/memcmp even in -nostdlib code
 * (struct copies, large zero-initialisers). Define EA_IMPLEMENT_LIBC in
 * exactly ONE translation unit of a wasm build before including this header
 * to get small definitions of them. Native builds use the C library's.
 * ------------------------------------------------------------------------- */
#if defined(__wasm__)
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
#define ea_memcpy(d, s, n) __builtin_memcpy((d), (s), (n))
#define ea_memmove(d, s, n) __builtin_memmove((d), (s), (n))
#define ea_memset(d, c, n) __builtin_memset((d), (c), (n))
#define ea_memcmp(a, b, n) __builtin_memcmp((a), (b), (n))

#if defined(EA_IMPLEMENT_LIBC)
/* -ffreestanding implies -fno-builtin, so these loops are not turned back
 * into calls to themselves. Byte loops are enough for a game's small copies. */
void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    while (n--) *d++ = *s++;
    return dst;
}
void *memmove(void *dst, const void *src, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    if (d < s) {
        while (n--) *d++ = *s++;
    } else {
        while (n--) d[n] = s[n];
    }
    return dst;
}
void *memset(void *dst, int c, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}
int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = (const unsigned char *)a;
    const unsigned char *y = (const unsigned char *)b;
    for (; n; n--, x++, y++)
        if (*x != *y) return (int)*x - (int)*y;
    return 0;
}
#endif /* EA_IMPLEMENT_LIBC */

#else /* native */
#include <string.h>
#define ea_memcpy(d, s, n) memcpy((d), (s), (n))
#define ea_memmove(d, s, n) memmove((d), (s), (n))
#define ea_memset(d, c, n) memset((d), (c), (n))
#define ea_memcmp(a, b, n) memcmp((a), (b), (n))
#endif

/* ---------------------------------------------------------------------------
 * Little-endian field access (byte-wise, so it is alignment- and
 * host-endianness-independent; compilers fold it into single loads on LE).
 * ------------------------------------------------------------------------- */
static inline uint16_t ea_rd_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | ((uint16_t)p[1] << 8));
}
static inline uint32_t ea_rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static inline uint64_t ea_rd_u64(const uint8_t *p) {
    return (uint64_t)ea_rd_u32(p) | ((uint64_t)ea_rd_u32(p + 4) << 32);
}
static inline int8_t ea_rd_i8(const uint8_t *p) { return (int8_t)p[0]; }
static inline int16_t ea_rd_i16(const uint8_t *p) { return (int16_t)ea_rd_u16(p); }
static inline int32_t ea_rd_i32(const uint8_t *p) { return (int32_t)ea_rd_u32(p); }

static inline void ea_wr_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void ea_wr_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void ea_wr_u64(uint8_t *p, uint64_t v) {
    ea_wr_u32(p, (uint32_t)v);
    ea_wr_u32(p + 4, (uint32_t)(v >> 32));
}
static inline void ea_wr_i8(uint8_t *p, int8_t v) { p[0] = (uint8_t)v; }
static inline void ea_wr_i16(uint8_t *p, int16_t v) { ea_wr_u16(p, (uint16_t)v); }
static inline void ea_wr_i32(uint8_t *p, int32_t v) { ea_wr_u32(p, (uint32_t)v); }

/** Big-endian u16, handy for ordered key suffixes ("P" + slot BE sorts by slot). */
static inline void ea_wr_u16be(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline uint16_t ea_rd_u16be(const uint8_t *p) {
    return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}

/* ---------------------------------------------------------------------------
 * Input accessors (buffer as passed to ea_input)
 * ------------------------------------------------------------------------- */
/** Sender public key (32 bytes). Only valid when len >= EA_INPUT_HEADER_BYTES. */
#define EA_INPUT_SENDER(buf) ((const uint8_t *)(buf))
/** Sender nonce. */
#define EA_INPUT_NONCE(buf) ea_rd_u64((const uint8_t *)(buf) + EA_PUBKEY_BYTES)
/** Payload pointer and length. */
#define EA_INPUT_PAYLOAD(buf) ((const uint8_t *)(buf) + EA_INPUT_HEADER_BYTES)
#define EA_INPUT_PAYLOAD_LEN(len) ((int32_t)(len) - EA_INPUT_HEADER_BYTES)

/* ---------------------------------------------------------------------------
 * Typed state helpers
 * ------------------------------------------------------------------------- */
/** Read a value into buf (at most cap bytes). Returns its full length or -1. */
static inline int32_t ea_get(const void *key, int32_t klen, void *buf, int32_t cap) {
    return ea_host_state_get(key, klen, buf, cap);
}
/** Length of a value without copying it, or -1 if absent. */
static inline int32_t ea_len(const void *key, int32_t klen) {
    uint8_t dummy;
    return ea_host_state_get(key, klen, &dummy, 0);
}
/** 1 if the key exists. */
static inline int ea_has(const void *key, int32_t klen) { return ea_len(key, klen) >= 0; }

/** Status of ea_get_exact. */
#define EA_REC_OK 1      /* present with exactly the expected size; buf filled */
#define EA_REC_ABSENT 0  /* key absent; buf untouched */
#define EA_REC_BADSIZE (-1) /* present with another size; buf contents undefined */

/** Fixed-size record read: EA_REC_OK / EA_REC_ABSENT / EA_REC_BADSIZE. */
static inline int ea_get_exact(const void *key, int32_t klen, void *rec, int32_t size) {
    int32_t n = ea_host_state_get(key, klen, rec, size);
    if (n < 0) return EA_REC_ABSENT;
    return n == size ? EA_REC_OK : EA_REC_BADSIZE;
}
/** Write a value. */
static inline void ea_set(const void *key, int32_t klen, const void *val, int32_t vlen) {
    ea_host_state_set(key, klen, val, vlen);
}
/** Delete a key. */
static inline void ea_del(const void *key, int32_t klen) { ea_host_state_del(key, klen); }
/** Emit an event. */
static inline void ea_emit(const void *data, int32_t len) { ea_host_emit(data, len); }
/** Debug-log a NUL-terminated string. */
static inline void ea_log_str(const char *s) {
    int32_t n = 0;
    while (s[n]) n++;
    ea_host_log(s, n);
}

/* ---------------------------------------------------------------------------
 * Deterministic integer randomness
 * ------------------------------------------------------------------------- */
/** SplitMix64 finaliser: a good 64-bit mixer. */
static inline uint64_t ea_mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/** Fold the host's 32 seed bytes with a call-specific salt into one u64. */
static inline uint64_t ea_seed64(uint64_t salt) {
    uint8_t s[EA_SEED_BYTES];
    ea_host_random_seed(s);
    uint64_t h = ea_mix64(ea_rd_u64(s) ^ salt);
    h = ea_mix64(h ^ ea_rd_u64(s + 8));
    h = ea_mix64(h ^ ea_rd_u64(s + 16));
    return ea_mix64(h ^ ea_rd_u64(s + 24));
}
/** Unbiased enough for games: value in [0, n) (n > 0). */
static inline uint32_t ea_below(uint64_t *state, uint32_t n) {
    *state = ea_mix64(*state);
    return (uint32_t)(((*state >> 32) * (uint64_t)n) >> 32);
}

/** Integer square root (floor), deterministic. */
static inline uint32_t ea_isqrt(uint32_t x) {
    uint32_t r = 0, bit = 1u << 30;
    while (bit > x) bit >>= 2;
    while (bit) {
        if (x >= r + bit) {
            x -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    return r;
}

#ifdef __cplusplus
}
#endif

#endif /* EVERARCADE_H */
