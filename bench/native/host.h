/*
 * host.h - native stand-in for the EverArcade host, for tests and the native
 * benchmark floor of C worlds built against sdk/c/everarcade.h.
 *
 * It implements the ea_host_* functions the SDK declares for native builds,
 * over an in-memory hash map (no state trie, no root hashing, no signatures,
 * no fuel). It is a plain C API so that Rust (through the `cc` crate and
 * `extern "C"`) can drive it exactly as the C test does.
 *
 * Host semantics reproduced:
 *   - state_get/set/del with the ABI's limits (key 1..=key_max bytes, value
 *     <= value_max); a violation "traps" = calls the trap handler (default:
 *     print and abort()).
 *   - read-only mode for bot calls (state_set/state_del trap).
 *   - events: size/count limits per call, collected per call and readable
 *     until the next ea_host_begin_call().
 *   - transactional inputs: ea_host_begin_call() starts a journal of every
 *     write, ea_host_rollback() undoes them (what the real host does for a
 *     rejected or trapped input), ea_host_commit() keeps them. Calling
 *     neither leaves the writes in place. The journal costs one copy of each
 *     overwritten value; ea_host_set_journal(0) turns it off for a pure
 *     speed floor (rollback then aborts).
 *   - random_seed returns whatever the driver set with ea_host_set_random().
 */
#ifndef EA_NATIVE_HOST_H
#define EA_NATIVE_HOST_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The imports (declared by everarcade.h too). */
int32_t ea_host_state_get(const void *key, int32_t klen, void *value, int32_t vcap);
void ea_host_state_set(const void *key, int32_t klen, const void *value, int32_t vlen);
void ea_host_state_del(const void *key, int32_t klen);
void ea_host_emit(const void *data, int32_t len);
void ea_host_random_seed(void *out32);
void ea_host_log(const void *text, int32_t len);

/* Driver API. */
void ea_host_reset(void);                      /* empty state, default limits, counters 0 */
void ea_host_set_limits(int32_t key_max, int32_t value_max, int32_t event_bytes,
                        int32_t events_per_call);
void ea_host_set_random(const uint8_t seed[32]);
void ea_host_set_read_only(int32_t on);
void ea_host_set_journal(int32_t on);          /* default on */
void ea_host_set_verbose_log(int32_t on);      /* print log() to stderr; default off */
void ea_host_begin_call(void);                 /* clears events, starts a journal */
void ea_host_commit(void);
void ea_host_rollback(void);

int32_t ea_host_event_count(void);
const uint8_t *ea_host_event(int32_t index, int32_t *len);

/* Counters since reset: [0] gets [1] sets [2] dels [3] emits [4] bytes read
 * (copied to the guest) [5] bytes written [6] writes in the current call. */
void ea_host_get_counters(uint64_t out[7]);

int32_t ea_host_key_count(void);
/* Calls fn for every key in unspecified order. */
void ea_host_foreach(void (*fn)(void *ctx, const uint8_t *key, int32_t klen,
                                const uint8_t *val, int32_t vlen),
                     void *ctx);
/* FNV-1a 64 over the entries sorted by key (bytewise, shorter first on a tie):
 * for each: klen u32 LE, key, vlen u32 LE, value. Same as wasm_run.mjs. */
uint64_t ea_host_digest(void);

/* A trap: the default prints and aborts. Tests may install their own (it must
 * not return, e.g. longjmp). */
void ea_host_set_trap_handler(void (*fn)(const char *why));

#ifdef __cplusplus
}
#endif

#endif
