/*
 * test_arena.c - native tests and benchmark floor for the 2d-arena world.
 *
 * Links runtime/games/2d-arena/src/arena.c (compiled natively against
 * sdk/c/everarcade.h) with host.c and drives it the way the real host does:
 *
 *   genesis (tick 0), then for every tick t >= 1:
 *     1. every bot p calls ea_bot(p, t, out, 256) in read-only mode, with
 *        out[0..32] = its public key and random_seed = bot_seed(p, t),
 *        against the state as of the start of the tick;
 *     2. each bot payload becomes an input  pubkey || nonce u64 LE || payload
 *        passed through ea_alloc/ea_input, in bot order; a non-zero result is
 *        rolled back (host.c journal);
 *     3. ea_tick(t) with random_seed = world_seed(t).
 *
 * Usage:
 *   test_arena                      rule checks + simulations + benchmark
 *   test_arena rules                rule checks only
 *   test_arena sim BOTS TICKS [SEED] [nocheck]
 *                                   one simulation; prints a summary and the
 *                                   state digest (compare with wasm_run.mjs)
 *
 * Exit status is non-zero on any failed check.
 *
 * The layout constants below are written from the world's documentation
 * (README.md / arena.c header), on purpose not shared with arena.c.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"

/* The world's exports (native symbols). */
uint8_t *ea_alloc(int32_t len);
int32_t ea_input(const uint8_t *buf, int32_t len);
void ea_genesis(void);
void ea_tick(int64_t tick);
int32_t ea_bot(int32_t player, int64_t tick, uint8_t *out, int32_t cap);

/* ---- the documented layout -------------------------------------------- */
#define MAX_PLAYERS 256
#define ARENA 1000
#define REC 18
#define PREC 8
#define META 40
#define MAX_PROJ 1024
#define HP_MAX 100
#define RESPAWN_TICKS 40
#define FIRE_COOLDOWN 8
#define PROJ_TTL 50
#define QUEUE_MAX 1024

/* Manifest limits (world.toml) the host enforces. */
#define PAYLOAD_BYTES 256
#define EVENT_BYTES 256
#define EVENTS_PER_CALL 16
#define KEY_BYTES 64

enum {
    OK = 0, MALFORMED, UNKNOWN_OP, BAD_LENGTH, NOT_JOINED, ALREADY_JOINED, ARENA_FULL, DEAD,
    OVERSPEED, COOLDOWN, ZERO_DIRECTION, PROJECTILES_FULL, QUEUE_FULL, CORRUPT_STATE, NCODES
};
static const char *code_name[NCODES] = {
    "applied", "MALFORMED", "UNKNOWN_OP", "BAD_LENGTH", "NOT_JOINED", "ALREADY_JOINED",
    "ARENA_FULL", "DEAD", "OVERSPEED", "COOLDOWN", "ZERO_DIRECTION", "PROJECTILES_FULL",
    "QUEUE_FULL", "CORRUPT_STATE"};

/* ---- deterministic keys and seeds (mirrored by wasm_run.mjs) ----------- */
static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static void wr64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | (rd16(p + 2) << 16); }
static void wr16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* Public key of bot p (or any test identity): word i = mix64(0xB07 << 32 | p * 4 + i). */
static void pubkey(uint32_t p, uint8_t out[32]) {
    for (int i = 0; i < 4; i++) wr64(out + 8 * i, mix64((0xB07ull << 32) | ((uint64_t)p * 4 + (uint64_t)i)));
}
/* random_seed of the world at tick t: word i = mix64(mix64(seed ^ mix64(t)) + i). */
static void world_seed(uint64_t seed, uint64_t t, uint8_t out[32]) {
    uint64_t base = mix64(seed ^ mix64(t));
    for (int i = 0; i < 4; i++) wr64(out + 8 * i, mix64(base + (uint64_t)i));
}
/* random_seed of bot p at tick t. */
static void bot_seed(uint64_t seed, uint32_t p, uint64_t t, uint8_t out[32]) {
    uint64_t base = mix64(seed ^ 0xB0B0B0B0B0B0ull ^ mix64(t) ^ mix64(((uint64_t)p + 1) << 32));
    for (int i = 0; i < 4; i++) wr64(out + 8 * i, mix64(base + (uint64_t)i));
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- bookkeeping from events ------------------------------------------- */
typedef struct {
    uint64_t seed;
    uint64_t codes[NCODES];
    uint64_t inputs, bot_calls, bot_idle;
    uint64_t joins, leaves, kills;
    uint8_t occ[MAX_PLAYERS];
    uint32_t exp_score[MAX_PLAYERS], exp_deaths[MAX_PLAYERS];
    uint64_t nonce[MAX_PLAYERS];
    double t_bot, t_input, t_tick;
    int failures;
    int32_t last_kill_killer, last_kill_victim;
} sim_t;

static int g_failures;
#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            if (g_failures < 30) {                                                        \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                     \
                fprintf(stderr, __VA_ARGS__);                                             \
                fprintf(stderr, "\n");                                                    \
            }                                                                             \
            g_failures++;                                                                 \
        }                                                                                 \
    } while (0)

static void take_events(sim_t *s) {
    int32_t n = ea_host_event_count();
    CHECK(n <= EVENTS_PER_CALL, "too many events in one call: %d", n);
    for (int32_t i = 0; i < n; i++) {
        int32_t len;
        const uint8_t *e = ea_host_event(i, &len);
        CHECK(len >= 1 && len <= EVENT_BYTES, "event length %d", len);
        if (len < 1) continue;
        switch (e[0]) {
        case 'J': {
            CHECK(len == 7, "J event length %d", len);
            uint32_t slot = rd16(e + 1);
            CHECK(slot < MAX_PLAYERS && !s->occ[slot], "J event for slot %u", slot);
            if (slot >= MAX_PLAYERS) break;
            s->occ[slot] = 1;
            s->exp_score[slot] = s->exp_deaths[slot] = 0;
            s->joins++;
            break;
        }
        case 'L': {
            CHECK(len == 3, "L event length %d", len);
            uint32_t slot = rd16(e + 1);
            CHECK(slot < MAX_PLAYERS && s->occ[slot], "L event for slot %u", slot);
            if (slot >= MAX_PLAYERS) break;
            s->occ[slot] = 0;
            s->leaves++;
            break;
        }
        case 'K': {
            int c = len >= 2 ? e[1] : 0;
            CHECK(len == 2 + 4 * c && c >= 1 && c <= 63, "K event length %d count %d", len, c);
            for (int k = 0; k < c && 2 + 4 * k + 4 <= len; k++) {
                uint32_t killer = rd16(e + 2 + 4 * k), victim = rd16(e + 4 + 4 * k);
                CHECK(killer < MAX_PLAYERS && victim < MAX_PLAYERS && killer != victim,
                      "kill %u -> %u", killer, victim);
                if (killer >= MAX_PLAYERS || victim >= MAX_PLAYERS) continue;
                s->exp_score[killer]++;
                s->exp_deaths[victim]++;
                s->kills++;
                s->last_kill_killer = (int32_t)killer;
                s->last_kill_victim = (int32_t)victim;
            }
            break;
        }
        default: CHECK(0, "unknown event tag %d", e[0]);
        }
    }
}

/* One input through ea_alloc/ea_input with host semantics. */
static int32_t send_input(sim_t *s, const uint8_t pub[32], uint64_t nonce, const uint8_t *payload,
                          int32_t plen) {
    int32_t len = 40 + plen;
    uint8_t *buf = ea_alloc(len);
    CHECK(buf != NULL, "ea_alloc(%d) returned null", len);
    if (!buf) return -1;
    memcpy(buf, pub, 32);
    wr64(buf + 32, nonce);
    if (plen) memcpy(buf + 40, payload, (size_t)plen);
    ea_host_begin_call();
    int32_t r = ea_input(buf, len);
    uint64_t ctr[7];
    ea_host_get_counters(ctr);
    CHECK(r >= 0 && r < NCODES, "ea_input returned %d", r);
    if (r == 0) {
        ea_host_commit();
        take_events(s);
    } else {
        CHECK(ctr[6] == 0, "rejected input (code %d) wrote state %llu times", r,
              (unsigned long long)ctr[6]);
        ea_host_rollback();
    }
    s->inputs++;
    if (r >= 0 && r < NCODES) s->codes[r]++;
    return r;
}

static void run_tick(sim_t *s, int64_t t) {
    uint8_t seed[32];
    world_seed(s->seed, (uint64_t)t, seed);
    ea_host_set_random(seed);
    ea_host_begin_call();
    ea_tick(t);
    ea_host_commit();
    take_events(s);
}

static void sim_init(sim_t *s, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->last_kill_killer = s->last_kill_victim = -1;
    ea_host_reset();
    ea_host_set_limits(KEY_BYTES, 65536, EVENT_BYTES, EVENTS_PER_CALL);
    uint8_t s0[32];
    world_seed(seed, 0, s0);
    ea_host_set_random(s0);
    ea_host_begin_call();
    ea_genesis();
    ea_host_commit();
    take_events(s);
}

/* ---- invariants --------------------------------------------------------- */
typedef struct {
    int keys_k, bad_keys;
    int slot_seen[MAX_PLAYERS];
} scan_t;

static uint8_t g_p[MAX_PLAYERS * REC + 1];
static uint8_t g_b[MAX_PROJ * PREC + 1];

static void scan_key(void *ctx, const uint8_t *key, int32_t klen, const uint8_t *val, int32_t vlen) {
    scan_t *sc = ctx;
    if (klen == 1 && (key[0] == 'W' || key[0] == 'P' || key[0] == 'B')) return;
    if (klen == 33 && key[0] == 'K') {
        sc->keys_k++;
        CHECK(vlen == 2, "K value length %d", vlen);
        if (vlen == 2) {
            uint32_t slot = rd16(val);
            CHECK(slot < MAX_PLAYERS, "K slot %u", slot);
            if (slot < MAX_PLAYERS) sc->slot_seen[slot]++;
        }
        return;
    }
    sc->bad_keys++;
    CHECK(0, "unexpected key (len %d, first byte %d) at a tick boundary", klen, key[0]);
}

static void check_invariants(sim_t *s) {
    uint8_t w[META];
    int32_t wl = ea_host_state_get("W", 1, w, META);
    CHECK(wl == META, "W length %d", wl);
    if (wl != META) return;
    CHECK(w[0] == 1 && w[1] == 0, "W version");
    int players = (int)rd16(w + 2);

    int32_t pl = ea_host_state_get("P", 1, g_p, (int32_t)sizeof g_p);
    if (pl < 0) pl = 0;
    CHECK(pl % REC == 0 && pl <= MAX_PLAYERS * REC, "P length %d", pl);
    int n = pl / REC;
    if (n > MAX_PLAYERS) n = MAX_PLAYERS;
    CHECK(n == 0 || (g_p[(n - 1) * REC + 7] & 1), "P not trimmed (n=%d)", n);

    scan_t sc;
    memset(&sc, 0, sizeof sc);
    ea_host_foreach(scan_key, &sc);
    CHECK(sc.keys_k == players, "K keys %d != players %d", sc.keys_k, players);

    int occ_count = 0, bitmap_count = 0;
    for (int slot = 0; slot < MAX_PLAYERS; slot++) {
        int bit = (w[4 + slot / 8] >> (slot % 8)) & 1;
        bitmap_count += bit;
        const uint8_t *r = slot < n ? g_p + slot * REC : NULL;
        int occ = r && (r[7] & 1);
        occ_count += occ;
        CHECK(occ == bit, "slot %d: occupied %d but bitmap %d", slot, occ, bit);
        CHECK(occ == s->occ[slot], "slot %d: occupied %d but events say %d", slot, occ, s->occ[slot]);
        CHECK(sc.slot_seen[slot] == occ, "slot %d: %d K keys, occupied %d", slot, sc.slot_seen[slot], occ);
        if (!r) continue;
        if (!occ) {
            static const uint8_t zero[REC];
            CHECK(memcmp(r, zero, REC) == 0, "vacant slot %d not zero", slot);
            continue;
        }
        uint32_t x = rd16(r), y = rd16(r + 2);
        int vx = (int8_t)r[4], vy = (int8_t)r[5];
        int hp = r[6], flags = r[7], respawn = r[8], cd = r[9];
        CHECK(x < ARENA && y < ARENA, "slot %d out of bounds (%u,%u)", slot, x, y);
        CHECK(hp <= HP_MAX, "slot %d hp %d", slot, hp);
        CHECK(flags == 1 || flags == 3, "slot %d flags %d", slot, flags);
        CHECK(vx * vx + vy * vy <= 64, "slot %d speed (%d,%d)", slot, vx, vy);
        CHECK(cd <= FIRE_COOLDOWN, "slot %d cooldown %d", slot, cd);
        if (flags & 2) {
            CHECK(hp > 0 && respawn == 0, "slot %d alive with hp %d respawn %d", slot, hp, respawn);
        } else {
            CHECK(hp == 0 && respawn >= 1 && respawn <= RESPAWN_TICKS && vx == 0 && vy == 0,
                  "slot %d dead with hp %d respawn %d v (%d,%d)", slot, hp, respawn, vx, vy);
        }
        CHECK(rd32(r + 10) == s->exp_score[slot], "slot %d score %u, kills seen %u", slot,
              rd32(r + 10), s->exp_score[slot]);
        CHECK(rd32(r + 14) == s->exp_deaths[slot], "slot %d deaths %u, deaths seen %u", slot,
              rd32(r + 14), s->exp_deaths[slot]);
    }
    CHECK(occ_count == players && bitmap_count == players, "players %d, occupied %d, bitmap %d",
          players, occ_count, bitmap_count);

    int32_t bl = ea_host_state_get("B", 1, g_b, (int32_t)sizeof g_b);
    if (bl >= 0) {
        CHECK(bl > 0 && bl % PREC == 0 && bl <= MAX_PROJ * PREC, "B length %d", bl);
        for (int i = 0; i < bl / PREC && i < MAX_PROJ; i++) {
            const uint8_t *b = g_b + i * PREC;
            int vx = (int8_t)b[4], vy = (int8_t)b[5];
            CHECK(rd16(b) < ARENA * 8 && rd16(b + 2) < ARENA * 8, "projectile %d out of bounds", i);
            CHECK(b[6] < n && (g_p[b[6] * REC + 7] & 1), "projectile %d owner %d vacant", i, b[6]);
            CHECK(b[7] >= 1 && b[7] < PROJ_TTL, "projectile %d ttl %d", i, b[7]);
            CHECK(vx * vx + vy * vy <= 96 * 96 && vx * vx + vy * vy > 0, "projectile %d speed", i);
        }
    }
    CHECK(ea_host_state_get("Q", 1, g_b, 0) < 0, "Q survived the tick");
}

/* ---- simulation --------------------------------------------------------- */
static int run_sim(int bots, int ticks, uint64_t seed, int check, int quiet, uint64_t *digest_out) {
    static sim_t s;
    int failures_before = g_failures;
    sim_init(&s, seed);
    if (check) check_invariants(&s);
    static uint8_t payloads[MAX_PLAYERS * 4][PAYLOAD_BYTES];
    static int32_t plens[MAX_PLAYERS * 4];
    static int32_t senders[MAX_PLAYERS * 4];
    uint8_t pubs[MAX_PLAYERS * 4][32];
    if (bots > MAX_PLAYERS * 4) bots = MAX_PLAYERS * 4;
    for (int p = 0; p < bots; p++) pubkey((uint32_t)p, pubs[p]);
    static uint64_t nonces[MAX_PLAYERS * 4];
    memset(nonces, 0, sizeof nonces);
    uint64_t ctr0[7];
    ea_host_get_counters(ctr0);

    for (int64_t t = 1; t <= ticks; t++) {
        /* 1. bots, read-only, state as of the start of the tick */
        double t0 = now();
        int nin = 0;
        ea_host_set_read_only(1);
        for (int p = 0; p < bots; p++) {
            uint8_t seedb[32];
            bot_seed(seed, (uint32_t)p, (uint64_t)t, seedb);
            ea_host_set_random(seedb);
            uint8_t *out = payloads[nin];
            memset(out, 0, PAYLOAD_BYTES);
            memcpy(out, pubs[p], 32);
            int32_t len = ea_bot(p, t, out, PAYLOAD_BYTES);
            s.bot_calls++;
            if (len < 0) {
                s.bot_idle++;
                continue;
            }
            CHECK(len <= PAYLOAD_BYTES, "bot payload length %d", len);
            plens[nin] = len;
            senders[nin] = p;
            nin++;
        }
        ea_host_set_read_only(0);
        double t1 = now();
        /* 2. inputs */
        uint8_t wseed[32];
        world_seed(seed, (uint64_t)t, wseed);
        ea_host_set_random(wseed);
        for (int i = 0; i < nin; i++) {
            int p = senders[i];
            send_input(&s, pubs[p], ++nonces[p], payloads[i], plens[i]);
        }
        double t2 = now();
        /* 3. tick */
        run_tick(&s, t);
        double t3 = now();
        s.t_bot += t1 - t0;
        s.t_input += t2 - t1;
        s.t_tick += t3 - t2;
        if (check) check_invariants(&s);
    }

    uint64_t ctr[7];
    ea_host_get_counters(ctr);
    uint64_t digest = ea_host_digest();
    if (digest_out) *digest_out = digest;
    uint8_t w[META];
    int players = ea_host_state_get("W", 1, w, META) == META ? (int)rd16(w + 2) : -1;
    int32_t bl = ea_host_state_get("B", 1, g_b, 0);
    double total = s.t_bot + s.t_input + s.t_tick;
    if (!quiet) {
        printf("sim bots=%d ticks=%d seed=%llu%s\n", bots, ticks, (unsigned long long)seed,
               check ? " (invariants checked every tick)" : "");
        printf("  players at end   %d, projectiles %d\n", players, bl > 0 ? bl / PREC : 0);
        printf("  joins %llu, leaves %llu, kills %llu\n", (unsigned long long)s.joins,
               (unsigned long long)s.leaves, (unsigned long long)s.kills);
        printf("  bot calls %llu (idle %llu), inputs %llu:", (unsigned long long)s.bot_calls,
               (unsigned long long)s.bot_idle, (unsigned long long)s.inputs);
        for (int c = 0; c < NCODES; c++)
            if (s.codes[c]) printf(" %s=%llu", code_name[c], (unsigned long long)s.codes[c]);
        printf("\n");
        printf("  host calls: get %llu, set %llu, del %llu, emit %llu (per tick: %.1f get, %.1f set)\n",
               (unsigned long long)(ctr[0] - ctr0[0]), (unsigned long long)(ctr[1] - ctr0[1]),
               (unsigned long long)(ctr[2] - ctr0[2]), (unsigned long long)(ctr[3] - ctr0[3]),
               (double)(ctr[0] - ctr0[0]) / ticks, (double)(ctr[1] - ctr0[1]) / ticks);
        printf("  time %.3f s = %.0f ticks/s (bots %.1f us, inputs %.1f us, ea_tick %.1f us per tick)\n",
               total, ticks / total, 1e6 * s.t_bot / ticks, 1e6 * s.t_input / ticks,
               1e6 * s.t_tick / ticks);
        printf("  state digest %016llx\n", (unsigned long long)digest);
    }
    return g_failures == failures_before ? 0 : 1;
}

/* ---- rule checks -------------------------------------------------------- */
static sim_t R;
static uint64_t g_nonce;

static int32_t in(uint32_t who, const uint8_t *payload, int32_t plen) {
    uint8_t pub[32];
    pubkey(0x10000 + who, pub);
    return send_input(&R, pub, ++g_nonce, payload, plen);
}
static int32_t in1(uint32_t who, int op) {
    uint8_t p[1] = {(uint8_t)op};
    return in(who, p, 1);
}
static int32_t in3(uint32_t who, int op, int a, int b) {
    uint8_t p[3] = {(uint8_t)op, (uint8_t)(int8_t)a, (uint8_t)(int8_t)b};
    return in(who, p, 3);
}
static void rec_get(int slot, uint8_t rec[REC]) {
    int32_t pl = ea_host_state_get("P", 1, g_p, (int32_t)sizeof g_p);
    memset(rec, 0, REC);
    if (pl >= (slot + 1) * REC) memcpy(rec, g_p + slot * REC, REC);
}
static void rec_put(int slot, const uint8_t rec[REC]) {
    int32_t pl = ea_host_state_get("P", 1, g_p, (int32_t)sizeof g_p);
    if (pl < (slot + 1) * REC) abort();
    memcpy(g_p + slot * REC, rec, REC);
    ea_host_state_set("P", 1, g_p, pl);
}
static int tick_no;
static void tick(void) { run_tick(&R, ++tick_no); }

static void place(int slot, int x, int y) {
    uint8_t r[REC];
    rec_get(slot, r);
    wr16(r, (uint32_t)x);
    wr16(r + 2, (uint32_t)y);
    r[4] = r[5] = 0;
    rec_put(slot, r);
}

enum { JOIN = 1, MOVE = 2, FIRE = 3, LEAVE = 4 };

static int rules(void) {
    int before = g_failures;
    sim_init(&R, 7);
    tick_no = 0;

    /* malformed / opcode / length */
    CHECK(in(1, NULL, 0) == MALFORMED, "empty payload");
    uint8_t junk[4] = {0, 9, 0, 0};
    CHECK(in(1, junk, 1) == UNKNOWN_OP, "opcode 0");
    CHECK(in(1, junk + 1, 1) == UNKNOWN_OP, "opcode 9");
    uint8_t two[2] = {JOIN, 0};
    CHECK(in(1, two, 2) == BAD_LENGTH, "JOIN with 2 bytes");
    uint8_t mv2[2] = {MOVE, 1};
    CHECK(in(1, mv2, 2) == BAD_LENGTH, "MOVE with 2 bytes");
    uint8_t fire4[4] = {FIRE, 1, 0, 0};
    CHECK(in(1, fire4, 4) == BAD_LENGTH, "FIRE with 4 bytes");
    uint8_t leave2[2] = {LEAVE, 0};
    CHECK(in(1, leave2, 2) == BAD_LENGTH, "LEAVE with 2 bytes");

    /* not joined */
    CHECK(in3(1, MOVE, 1, 1) == NOT_JOINED, "MOVE before JOIN");
    CHECK(in3(1, FIRE, 1, 1) == NOT_JOINED, "FIRE before JOIN");
    CHECK(in1(1, LEAVE) == NOT_JOINED, "LEAVE before JOIN");

    /* join */
    CHECK(in1(1, JOIN) == OK, "JOIN");
    CHECK(in1(1, JOIN) == ALREADY_JOINED, "second JOIN");
    CHECK(in1(2, JOIN) == OK, "JOIN of a second player");
    CHECK(R.occ[0] && R.occ[1], "slots 0 and 1 taken");

    /* velocity */
    CHECK(in3(1, MOVE, 8, 1) == OVERSPEED, "MOVE 8,1");
    CHECK(in3(1, MOVE, -6, -6) == OVERSPEED, "MOVE -6,-6");
    CHECK(in3(1, MOVE, -128, 0) == OVERSPEED, "MOVE -128,0");
    CHECK(in3(1, MOVE, 0, 8) == OK, "MOVE 0,8");
    CHECK(in3(1, MOVE, -4, 4) == OK, "MOVE -4,4 (a second MOVE in the tick overrides)");
    CHECK(in3(1, FIRE, 0, 0) == ZERO_DIRECTION, "FIRE 0,0");
    place(0, 500, 500);
    place(1, 100, 900);
    tick();
    uint8_t r[REC];
    rec_get(0, r);
    CHECK(rd16(r) == 496 && rd16(r + 2) == 504 && (int8_t)r[4] == -4 && (int8_t)r[5] == 4,
          "player moved by the last MOVE: (%u,%u) v(%d,%d)", rd16(r), rd16(r + 2), (int8_t)r[4],
          (int8_t)r[5]);
    check_invariants(&R);

    /* walls clamp */
    place(0, 2, 997);
    CHECK(in3(1, MOVE, -5, 5) == OK, "MOVE toward the corner");
    tick();
    rec_get(0, r);
    CHECK(rd16(r) == 0 && rd16(r + 2) == ARENA - 1, "clamped to (0,999): (%u,%u)", rd16(r), rd16(r + 2));

    /* cooldown and kill */
    CHECK(in3(1, MOVE, 0, 0) == OK, "stop");
    tick();
    place(0, 500, 500);
    place(1, 500, 560);
    CHECK(in3(1, FIRE, 0, 1) == OK, "FIRE");
    CHECK(in3(1, FIRE, 0, 1) == COOLDOWN, "second FIRE in the same tick");
    tick();
    CHECK(in3(1, FIRE, 0, 1) == COOLDOWN, "FIRE during the cooldown");
    int fired = 1, guard = 0;
    while (R.kills == 0 && guard++ < 200) {
        rec_get(0, r);
        if (r[9] == 0) {
            CHECK(in3(1, FIRE, 0, 100) == OK, "FIRE when the cooldown is over");
            fired++;
        }
        tick();
    }
    CHECK(R.kills == 1 && R.last_kill_killer == 0 && R.last_kill_victim == 1,
          "one kill 0 -> 1 (kills %llu)", (unsigned long long)R.kills);
    CHECK(fired == 4, "4 shots of 25 damage kill (fired %d)", fired);
    rec_get(0, r);
    CHECK(rd32(r + 10) == 1, "shooter scored");
    rec_get(1, r);
    CHECK(rd32(r + 14) == 1 && !(r[7] & 2) && r[6] == 0, "victim dead with one death");
    check_invariants(&R);
    CHECK(in3(2, MOVE, 1, 0) == DEAD, "MOVE while dead");
    CHECK(in3(2, FIRE, 1, 0) == DEAD, "FIRE while dead");
    for (int i = 0; i < RESPAWN_TICKS; i++) tick();
    rec_get(1, r);
    CHECK((r[7] & 2) && r[6] == HP_MAX, "respawned with full hp after %d ticks", RESPAWN_TICKS);
    CHECK(in3(2, MOVE, 1, 0) == OK, "MOVE after respawn");
    tick();
    check_invariants(&R);

    /* projectile cap: 1023 live + one queued fills it */
    {
        static uint8_t b[MAX_PROJ * PREC];
        for (int i = 0; i < MAX_PROJ; i++) {
            uint8_t *p = b + i * PREC;
            wr16(p, 8 * 10);
            wr16(p + 2, 8 * 10);
            p[4] = 0;
            p[5] = 96;
            p[6] = 1;
            p[7] = 30;
        }
        ea_host_state_set("B", 1, b, (MAX_PROJ - 1) * PREC);
        place(0, 900, 100);
        place(1, 900, 900);
        rec_get(0, r);
        r[9] = 0;
        rec_put(0, r);
        rec_get(1, r);
        r[9] = 0;
        rec_put(1, r);
        CHECK(in3(1, FIRE, 1, 0) == OK, "FIRE with 1023 live projectiles");
        CHECK(in3(2, FIRE, 1, 0) == PROJECTILES_FULL, "FIRE with 1023 live + 1 queued");
        ea_host_state_set("B", 1, b, MAX_PROJ * PREC);
        ea_host_state_del("Q", 1);
        CHECK(in3(2, FIRE, 1, 0) == PROJECTILES_FULL, "FIRE with 1024 live");
        ea_host_state_del("B", 1);
    }

    /* queue full */
    {
        static uint8_t q[32 + QUEUE_MAX * 4];
        memset(q, 0, sizeof q);
        for (int i = 0; i < QUEUE_MAX; i++) q[32 + 4 * i] = MOVE;
        ea_host_state_set("Q", 1, q, (int32_t)sizeof q);
        CHECK(in3(2, MOVE, 1, 1) == QUEUE_FULL, "MOVE with a full queue");
        CHECK(in3(2, FIRE, 1, 1) == QUEUE_FULL, "FIRE with a full queue");
        ea_host_state_del("Q", 1);
    }

    /* corrupt state */
    {
        uint8_t key[33], v[3] = {0, 0, 0}, old[2];
        key[0] = 'K';
        pubkey(0x10000 + 2, key + 1);
        CHECK(ea_host_state_get(key, 33, old, 2) == 2, "K of player 2");
        ea_host_state_set(key, 33, v, 3);
        CHECK(in3(2, MOVE, 1, 1) == CORRUPT_STATE, "MOVE with a 3-byte K value");
        ea_host_state_set(key, 33, old, 2);
    }
    tick();
    check_invariants(&R);

    /* leave: projectiles and queued commands of the leaver vanish */
    {
        place(0, 500, 500);
        place(1, 100, 100);
        tick_no += 0;
        for (int i = 0; i < FIRE_COOLDOWN + 1; i++) tick();
        CHECK(in3(2, FIRE, 1, 0) == OK, "player 2 fires");
        tick();
        CHECK(ea_host_state_get("B", 1, g_b, 0) == PREC, "one projectile");
        CHECK(in3(2, MOVE, 3, 0) == OK, "player 2 queues a MOVE");
        CHECK(in1(2, LEAVE) == OK, "player 2 leaves");
        CHECK(ea_host_state_get("B", 1, g_b, 0) < 0, "its projectile vanished");
        uint8_t q[64];
        CHECK(ea_host_state_get("Q", 1, q, 64) == 32, "its queued MOVE vanished");
        CHECK(in3(2, MOVE, 1, 0) == NOT_JOINED, "MOVE after LEAVE");
        CHECK(ea_host_state_get("P", 1, g_p, 0) == REC, "P trimmed to slot 0");
        tick();
        check_invariants(&R);
        CHECK(in1(2, JOIN) == OK, "rejoin");
        rec_get(1, r);
        CHECK((r[7] & 3) == 3 && rd32(r + 10) == 0 && rd32(r + 14) == 0, "fresh record in slot 1");
    }

    /* arena full */
    {
        int joined = 2;
        for (uint32_t who = 100; joined < MAX_PLAYERS; who++, joined++)
            CHECK(in1(who, JOIN) == OK, "JOIN #%d", joined);
        CHECK(in1(99, JOIN) == ARENA_FULL, "JOIN into a full arena");
        tick();
        check_invariants(&R);
        CHECK(in1(1, LEAVE) == OK, "slot 0 leaves");
        CHECK(in1(99, JOIN) == OK, "JOIN after a LEAVE");
        CHECK(in1(98, JOIN) == ARENA_FULL, "full again");
        CHECK(R.occ[0], "slot 0 reused");
        tick();
        check_invariants(&R);
    }

    /* rollback: the host undoes an input's writes (journal check) */
    {
        uint64_t d0 = ea_host_digest();
        ea_host_begin_call();
        ea_host_state_set("W", 1, "xx", 2);
        ea_host_state_set("Z", 1, "y", 1);
        ea_host_state_del("P", 1);
        ea_host_rollback();
        CHECK(ea_host_digest() == d0, "rollback restores the state");
    }

    /* every rejection code was produced at least once */
    for (int c = 1; c < NCODES; c++) CHECK(R.codes[c] > 0, "code %d (%s) never produced", c, code_name[c]);

    int fails = g_failures - before;
    printf("rules: %s (%d failed checks; inputs:", fails ? "FAILED" : "ok", fails);
    for (int c = 0; c < NCODES; c++) printf(" %s=%llu", code_name[c], (unsigned long long)R.codes[c]);
    printf(")\n");
    return fails ? 1 : 0;
}

int main(int argc, char **argv) {
    int rc = 0;
    if (argc >= 2 && strcmp(argv[1], "rules") == 0) return rules();
    if (argc >= 4 && strcmp(argv[1], "sim") == 0) {
        int bots = atoi(argv[2]), ticks = atoi(argv[3]);
        uint64_t seed = argc >= 5 ? strtoull(argv[4], NULL, 0) : 1;
        int check = !(argc >= 6 && strcmp(argv[5], "nocheck") == 0);
        rc = run_sim(bots, ticks, seed, check, 0, NULL);
        if (g_failures) fprintf(stderr, "%d failed checks\n", g_failures);
        return rc || g_failures ? 1 : 0;
    }

    rc |= rules();
    uint64_t d1, d2, d3;
    rc |= run_sim(64, 2000, 1, 1, 0, &d1);
    rc |= run_sim(64, 2000, 1, 0, 1, &d2);
    rc |= run_sim(64, 2000, 2, 0, 1, &d3);
    CHECK(d1 == d2, "same seed, same digest");
    CHECK(d1 != d3, "another seed, another digest");
    printf("determinism: %s\n", d1 == d2 && d1 != d3 ? "ok (same seed -> same digest)" : "FAILED");
    rc |= run_sim(256, 500, 1, 1, 0, NULL);
    printf("benchmark (no invariant checks):\n");
    rc |= run_sim(256, 2000, 1, 0, 0, NULL);
    if (g_failures) fprintf(stderr, "%d failed checks\n", g_failures);
    printf("%s\n", rc || g_failures ? "FAILED" : "all checks passed");
    return rc || g_failures ? 1 : 0;
}
