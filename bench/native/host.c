/*
 * host.c - native stand-in for the EverArcade host (see host.h).
 *
 * State: open-addressing hash map (FNV-1a, linear probing, backward-shift
 * deletion), each value in its own growable buffer. No roots are hashed;
 * this is the floor the real host (state trie, receipts, wasm) is compared
 * against.
 *
 * Rollback: with the journal on (default) every state_set/state_del made
 * after ea_host_begin_call() saves the previous value, and ea_host_rollback()
 * restores them newest-first, like the real host does for a rejected or
 * trapped input. With the journal off (ea_host_set_journal(0)) writes are not
 * saved and rollback is impossible (it traps): a benchmark may do that only
 * for worlds whose rejected inputs never write (2d-arena checks everything
 * before its first write, and test_arena.c verifies it).
 */
#include "host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hash;
    uint8_t *key; /* NULL = empty slot */
    int32_t klen;
    uint8_t *val;
    int32_t vlen;
    int32_t vcap;
} entry_t;

typedef struct {
    uint8_t *key;
    int32_t klen;
    int32_t had; /* key existed before the write */
    uint8_t *old;
    int32_t oldlen;
} undo_t;

static entry_t *g_tab;
static uint32_t g_cap; /* power of two */
static uint32_t g_count;

static undo_t *g_undo;
static int32_t g_undo_len, g_undo_cap;
static int32_t g_journal = 1;
static int32_t g_in_call;

static int32_t g_key_max = 256, g_value_max = 65536, g_event_bytes = 1024, g_events_per_call = 64;
static int32_t g_read_only;
static int32_t g_verbose_log;
static uint8_t g_seed[32];

#define MAX_EVENTS_KEPT 1024
static uint8_t *g_ev_buf;
static int32_t g_ev_buf_len, g_ev_buf_cap;
static int32_t g_ev_off[MAX_EVENTS_KEPT], g_ev_len[MAX_EVENTS_KEPT];
static int32_t g_ev_count;

static uint64_t g_ctr[7];

static void default_trap(const char *why) {
    fprintf(stderr, "native host: trap: %s\n", why);
    abort();
}
static void (*g_trap)(const char *) = default_trap;

static void trap(const char *why) {
    g_trap(why);
    abort(); /* a handler must not return */
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "native host: out of memory\n");
        abort();
    }
    return p;
}

static uint64_t fnv(const uint8_t *p, int32_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int32_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h | 1; /* never 0 */
}

static void check_key(int32_t klen) {
    if (klen < 1 || klen > g_key_max) trap("KeyLength");
}

static entry_t *find(const uint8_t *key, int32_t klen, uint64_t h) {
    if (!g_cap) return NULL;
    uint32_t mask = g_cap - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        entry_t *e = &g_tab[i];
        if (!e->key) return NULL;
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, (size_t)klen) == 0) return e;
    }
}

static void grow(void) {
    uint32_t ncap = g_cap ? g_cap * 2 : 1024;
    entry_t *nt = xmalloc(sizeof(entry_t) * ncap);
    memset(nt, 0, sizeof(entry_t) * ncap);
    for (uint32_t i = 0; i < g_cap; i++) {
        entry_t *e = &g_tab[i];
        if (!e->key) continue;
        uint32_t j = (uint32_t)e->hash & (ncap - 1);
        while (nt[j].key) j = (j + 1) & (ncap - 1);
        nt[j] = *e;
    }
    free(g_tab);
    g_tab = nt;
    g_cap = ncap;
}

static entry_t *insert_slot(const uint8_t *key, int32_t klen, uint64_t h) {
    if ((g_count + 1) * 2 > g_cap) grow();
    uint32_t mask = g_cap - 1;
    uint32_t i = (uint32_t)h & mask;
    while (g_tab[i].key) i = (i + 1) & mask;
    entry_t *e = &g_tab[i];
    e->hash = h;
    e->key = xmalloc((size_t)klen);
    memcpy(e->key, key, (size_t)klen);
    e->klen = klen;
    e->val = NULL;
    e->vlen = 0;
    e->vcap = 0;
    g_count++;
    return e;
}

static void remove_entry(entry_t *e) {
    free(e->key);
    free(e->val);
    uint32_t mask = g_cap - 1;
    uint32_t i = (uint32_t)(e - g_tab);
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!g_tab[j].key) break;
        uint32_t k = (uint32_t)g_tab[j].hash & mask;
        /* move j back to i unless its home k lies cyclically in (i, j] */
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j)) continue;
        g_tab[i] = g_tab[j];
        i = j;
    }
    memset(&g_tab[i], 0, sizeof(entry_t));
    g_count--;
}

static void store(entry_t *e, const uint8_t *val, int32_t vlen) {
    if (vlen > e->vcap) {
        int32_t nc = vlen < 64 ? 64 : vlen;
        free(e->val);
        e->val = xmalloc((size_t)nc);
        e->vcap = nc;
    }
    if (vlen) memcpy(e->val, val, (size_t)vlen);
    e->vlen = vlen;
}

static void journal(const uint8_t *key, int32_t klen, entry_t *old) {
    if (!g_in_call || !g_journal) return;
    if (g_undo_len == g_undo_cap) {
        g_undo_cap = g_undo_cap ? g_undo_cap * 2 : 64;
        undo_t *nu = realloc(g_undo, sizeof(undo_t) * (size_t)g_undo_cap);
        if (!nu) abort();
        g_undo = nu;
    }
    undo_t *u = &g_undo[g_undo_len++];
    u->key = xmalloc((size_t)klen);
    memcpy(u->key, key, (size_t)klen);
    u->klen = klen;
    u->had = old != NULL;
    u->old = NULL;
    u->oldlen = 0;
    if (old) {
        u->old = xmalloc((size_t)old->vlen);
        if (old->vlen) memcpy(u->old, old->val, (size_t)old->vlen);
        u->oldlen = old->vlen;
    }
}

static void journal_clear(void) {
    for (int32_t i = 0; i < g_undo_len; i++) {
        free(g_undo[i].key);
        free(g_undo[i].old);
    }
    g_undo_len = 0;
}

/* ---- imports ----------------------------------------------------------- */

int32_t ea_host_state_get(const void *key, int32_t klen, void *value, int32_t vcap) {
    check_key(klen);
    if (vcap < 0) trap("HostPointer");
    g_ctr[0]++;
    entry_t *e = find(key, klen, fnv(key, klen));
    if (!e) return -1;
    int32_t n = e->vlen < vcap ? e->vlen : vcap;
    if (n) memcpy(value, e->val, (size_t)n);
    g_ctr[4] += (uint64_t)n;
    return e->vlen;
}

void ea_host_state_set(const void *key, int32_t klen, const void *value, int32_t vlen) {
    if (g_read_only) trap("ReadOnlyState");
    check_key(klen);
    if (vlen < 0 || vlen > g_value_max) trap("ValueLength");
    g_ctr[1]++;
    g_ctr[5] += (uint64_t)vlen;
    g_ctr[6]++;
    uint64_t h = fnv(key, klen);
    entry_t *e = find(key, klen, h);
    journal(key, klen, e);
    if (!e) e = insert_slot(key, klen, h);
    store(e, value, vlen);
}

void ea_host_state_del(const void *key, int32_t klen) {
    if (g_read_only) trap("ReadOnlyState");
    check_key(klen);
    g_ctr[2]++;
    g_ctr[6]++;
    entry_t *e = find(key, klen, fnv(key, klen));
    journal(key, klen, e);
    if (e) remove_entry(e);
}

void ea_host_emit(const void *data, int32_t len) {
    if (len < 0 || len > g_event_bytes) trap("EventLength");
    if (g_ev_count >= g_events_per_call || g_ev_count >= MAX_EVENTS_KEPT) trap("EventCount");
    g_ctr[3]++;
    if (g_ev_buf_len + len > g_ev_buf_cap) {
        g_ev_buf_cap = (g_ev_buf_len + len) * 2 + 1024;
        uint8_t *nb = realloc(g_ev_buf, (size_t)g_ev_buf_cap);
        if (!nb) abort();
        g_ev_buf = nb;
    }
    memcpy(g_ev_buf + g_ev_buf_len, data, (size_t)len);
    g_ev_off[g_ev_count] = g_ev_buf_len;
    g_ev_len[g_ev_count] = len;
    g_ev_count++;
    g_ev_buf_len += len;
}

void ea_host_random_seed(void *out32) { memcpy(out32, g_seed, 32); }

void ea_host_log(const void *text, int32_t len) {
    if (len < 0) trap("HostPointer");
    if (g_verbose_log) fprintf(stderr, "[guest] %.*s\n", (int)len, (const char *)text);
}

/* ---- driver API -------------------------------------------------------- */

void ea_host_reset(void) {
    for (uint32_t i = 0; i < g_cap; i++)
        if (g_tab[i].key) {
            free(g_tab[i].key);
            free(g_tab[i].val);
        }
    free(g_tab);
    g_tab = NULL;
    g_cap = 0;
    g_count = 0;
    journal_clear();
    g_in_call = 0;
    g_journal = 1;
    g_read_only = 0;
    g_key_max = 256;
    g_value_max = 65536;
    g_event_bytes = 1024;
    g_events_per_call = 64;
    g_ev_count = 0;
    g_ev_buf_len = 0;
    memset(g_seed, 0, sizeof g_seed);
    memset(g_ctr, 0, sizeof g_ctr);
}

void ea_host_set_limits(int32_t key_max, int32_t value_max, int32_t event_bytes,
                        int32_t events_per_call) {
    g_key_max = key_max;
    g_value_max = value_max;
    g_event_bytes = event_bytes;
    g_events_per_call = events_per_call;
}

void ea_host_set_random(const uint8_t seed[32]) { memcpy(g_seed, seed, 32); }
void ea_host_set_read_only(int32_t on) { g_read_only = on; }
void ea_host_set_journal(int32_t on) { g_journal = on; }
void ea_host_set_verbose_log(int32_t on) { g_verbose_log = on; }
void ea_host_set_trap_handler(void (*fn)(const char *why)) { g_trap = fn ? fn : default_trap; }

void ea_host_begin_call(void) {
    journal_clear();
    g_in_call = 1;
    g_ev_count = 0;
    g_ev_buf_len = 0;
    g_ctr[6] = 0;
}

void ea_host_commit(void) {
    journal_clear();
    g_in_call = 0;
}

void ea_host_rollback(void) {
    if (!g_journal && g_ctr[6]) trap("rollback without journal");
    for (int32_t i = g_undo_len - 1; i >= 0; i--) {
        undo_t *u = &g_undo[i];
        uint64_t h = fnv(u->key, u->klen);
        entry_t *e = find(u->key, u->klen, h);
        if (u->had) {
            if (!e) e = insert_slot(u->key, u->klen, h);
            store(e, u->old, u->oldlen);
        } else if (e) {
            remove_entry(e);
        }
    }
    journal_clear();
    g_in_call = 0;
    g_ev_count = 0; /* events of a rejected call are discarded */
    g_ev_buf_len = 0;
}

int32_t ea_host_event_count(void) { return g_ev_count; }

const uint8_t *ea_host_event(int32_t index, int32_t *len) {
    if (index < 0 || index >= g_ev_count) return NULL;
    *len = g_ev_len[index];
    return g_ev_buf + g_ev_off[index];
}

void ea_host_get_counters(uint64_t out[7]) { memcpy(out, g_ctr, sizeof g_ctr); }

int32_t ea_host_key_count(void) { return (int32_t)g_count; }

void ea_host_foreach(void (*fn)(void *ctx, const uint8_t *key, int32_t klen,
                                const uint8_t *val, int32_t vlen),
                     void *ctx) {
    for (uint32_t i = 0; i < g_cap; i++)
        if (g_tab[i].key) fn(ctx, g_tab[i].key, g_tab[i].klen, g_tab[i].val, g_tab[i].vlen);
}

static int cmp_entry(const void *a, const void *b) {
    const entry_t *x = *(entry_t *const *)a, *y = *(entry_t *const *)b;
    int32_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, (size_t)n);
    if (c) return c;
    return (x->klen > y->klen) - (x->klen < y->klen);
}

static uint64_t fnv_feed(uint64_t h, const uint8_t *p, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t ea_host_digest(void) {
    entry_t **list = xmalloc(sizeof(entry_t *) * (g_count + 1));
    uint32_t n = 0;
    for (uint32_t i = 0; i < g_cap; i++)
        if (g_tab[i].key) list[n++] = &g_tab[i];
    qsort(list, n, sizeof(entry_t *), cmp_entry);
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t len[4];
        for (int k = 0; k < 4; k++) len[k] = (uint8_t)((uint32_t)list[i]->klen >> (8 * k));
        h = fnv_feed(h, len, 4);
        h = fnv_feed(h, list[i]->key, list[i]->klen);
        for (int k = 0; k < 4; k++) len[k] = (uint8_t)((uint32_t)list[i]->vlen >> (8 * k));
        h = fnv_feed(h, len, 4);
        h = fnv_feed(h, list[i]->val, list[i]->vlen);
    }
    free(list);
    return h;
}
