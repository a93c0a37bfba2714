/*
 * 2d-arena - the EverArcade sample world (ABI ea-world/1), in C.
 *
 * Up to 256 players move in a bounded 1000 x 1000 arena, fire projectiles at
 * each other, die, respawn and score. Everything is integer arithmetic and a
 * pure function of the state store, the inputs and random_seed.
 *
 * Build: ../build.sh (wasm32). The same file also compiles natively with gcc
 * against a harness that provides ea_host_* (see bench/native/).
 *
 * ===========================================================================
 * Payloads (byte 0 is the opcode; i8 = two's-complement byte)
 * ===========================================================================
 *   JOIN   01                 enter the arena at a random position
 *   MOVE   02 vx:i8 vy:i8     set velocity (units/tick), vx*vx+vy*vy <= 64
 *   FIRE   03 dx:i8 dy:i8     fire a projectile in direction (dx,dy) != (0,0)
 *   LEAVE  04                 leave the arena (score is forgotten)
 *
 * ===========================================================================
 * Rejection codes (ea_input return values; 0 = applied)
 * ===========================================================================
 *   code name              when
 *   ---- ----------------  ---------------------------------------------------
 *    1   MALFORMED         input shorter than 41 bytes (header + opcode)
 *    2   UNKNOWN_OP        opcode is not 1..4
 *    3   BAD_LENGTH        payload length wrong for the opcode (JOIN/LEAVE 1,
 *                          MOVE/FIRE 3)
 *    4   NOT_JOINED        MOVE/FIRE/LEAVE from a key that has not joined
 *    5   ALREADY_JOINED    JOIN from a key that is in the arena
 *    6   ARENA_FULL        JOIN while 256 players are in the arena
 *    7   DEAD              MOVE/FIRE while dead (waiting to respawn)
 *    8   OVERSPEED         MOVE with vx*vx + vy*vy > 64
 *    9   COOLDOWN          FIRE while the fire cooldown runs, or a second FIRE
 *                          by the same player in the same tick
 *   10   ZERO_DIRECTION    FIRE with dx = dy = 0
 *   11   PROJECTILES_FULL  FIRE when 1024 projectiles (live + queued) exist
 *   12   QUEUE_FULL        more than 1024 MOVE/FIRE commands in one tick
 *   13   CORRUPT_STATE     a stored value has an impossible size/content
 *                          (never happens with state written by this module)
 * Checks run in this order: length/opcode, argument ranges (OVERSPEED,
 * ZERO_DIRECTION), membership (NOT_JOINED / ALREADY_JOINED / ARENA_FULL),
 * DEAD, COOLDOWN, PROJECTILES_FULL, QUEUE_FULL. Every check happens before
 * the first state write, so a rejected input only ever reads state.
 *
 * ===========================================================================
 * State layout (all integers little-endian unless noted)
 * ===========================================================================
 *   "W"           world meta, 40 bytes:
 *                   0 version u8 (=1)   1 reserved u8 (=0)
 *                   2 players u16       4 occupancy bitmap [32] (bit s = slot s)
 *                  36 joins u32 (JOINs ever; salts spawn positions)
 *   "K" + pubkey  slot u16 (33-byte key, 2-byte value): who is where
 *   "P"           all player records, 18 bytes each, record s at s*18;
 *                 length = 18 * (highest occupied slot + 1); absent if empty
 *                   0 x u16 (0..999)    2 y u16 (0..999)
 *                   4 vx i8             5 vy i8
 *                   6 hp u8 (0..100)    7 flags u8 (1 = occupied, 2 = alive)
 *                   8 respawn u8 (ticks left while dead, >= 1 then)
 *                   9 cooldown u8 (ticks until FIRE is allowed again)
 *                  10 score u32 (kills)  14 deaths u32
 *                 A vacant slot is 18 zero bytes.
 *   "B"           live projectiles, 8 bytes each; absent if none:
 *                   0 x u16  2 y u16  (1/8 units, 0..7999)
 *                   4 vx i8  5 vy i8  (1/8 units per tick)
 *                   6 owner slot u8   7 ttl u8 (ticks left)
 *   "Q"           this tick's MOVE/FIRE commands, written by inputs, consumed
 *                 and deleted by ea_tick (so it never reaches a tick's final
 *                 state): 32-byte bitmap of slots that fired this tick, then
 *                 4-byte entries  op u8, slot u8, a i8, b i8  in input order.
 *
 * Why this layout: a tick touches 3 values (P, B, Q) instead of 256 player
 * keys, and an input writes one small value (Q) instead of a player record:
 * few host calls, few state writes, and the per-tick state diff is two keys.
 * Inputs read a player record with a prefix read of "P" (vcap = (slot+1)*18).
 *
 * ===========================================================================
 * Events (emit)
 * ===========================================================================
 *   'J' slot u16 x u16 y u16                     a player joined (ea_input)
 *   'L' slot u16                                 a player left   (ea_input)
 *   'K' n u8 then n x (killer u16, victim u16)   kills of a tick (ea_tick),
 *                                                at most 63 per event
 *
 * ===========================================================================
 * A tick (ea_tick), in order
 * ===========================================================================
 *   1. cooldowns count down; dead players' respawn timers count down and at
 *      0 they respawn at a random position with full hp and zero velocity
 *   2. queued commands apply in input order (MOVE sets velocity, FIRE spawns
 *      a projectile at the shooter, speed just under 12 units/tick, ttl 50,
 *      and sets the cooldown to 8)
 *   3. living players move by their velocity, clamped to 0..999
 *   4. projectiles advance; they expire at ttl 0 or outside the arena, or hit
 *      the closest living non-owner player within 12 units (ties: lowest
 *      slot): 25 damage; at hp <= 0 the victim dies (deaths+1, respawn in 40
 *      ticks) and the owner scores
 *   5. only values that changed are written back; "Q" is deleted
 */

#define EA_IMPLEMENT_LIBC
#include "everarcade.h"

/* ---- rules ------------------------------------------------------------- */
#define OP_JOIN 1
#define OP_MOVE 2
#define OP_FIRE 3
#define OP_LEAVE 4

enum {
    R_MALFORMED = 1,
    R_UNKNOWN_OP = 2,
    R_BAD_LENGTH = 3,
    R_NOT_JOINED = 4,
    R_ALREADY_JOINED = 5,
    R_ARENA_FULL = 6,
    R_DEAD = 7,
    R_OVERSPEED = 8,
    R_COOLDOWN = 9,
    R_ZERO_DIRECTION = 10,
    R_PROJECTILES_FULL = 11,
    R_QUEUE_FULL = 12,
    R_CORRUPT = 13,
};

#define MAX_PLAYERS 256
#define ARENA 1000            /* positions 0..ARENA-1 */
#define SUB 8                 /* projectile sub-units per unit */
#define ARENA_SUB (ARENA * SUB)
#define MAX_SPEED 8           /* |v| <= 8 units/tick (Euclidean) */
#define HP_MAX 100
#define DAMAGE 25
#define HIT_RADIUS 12         /* units; must be <= CELL/2 */
#define PROJ_SPEED (12 * SUB) /* sub-units per tick */
#define PROJ_TTL 50
#define MAX_PROJ 1024
#define FIRE_COOLDOWN 8
#define RESPAWN_TICKS 40
#define SPAWN_MARGIN 20
#define QUEUE_MAX 1024        /* commands per tick (= the manifest's inputs_per_tick) */

/* ---- layout ------------------------------------------------------------ */
#define META_SIZE 40
#define M_VERSION 0
#define M_PLAYERS 2
#define M_BITMAP 4
#define M_JOINS 36

#define REC 18
#define F_X 0
#define F_Y 2
#define F_VX 4
#define F_VY 5
#define F_HP 6
#define F_FLAGS 7
#define F_RESPAWN 8
#define F_COOLDOWN 9
#define F_SCORE 10
#define F_DEATHS 14
#define FL_OCC 1
#define FL_ALIVE 2

#define PREC 8
#define Q_HEAD 32
#define Q_ENT 4

#define PLAYERS_BYTES (MAX_PLAYERS * REC)
#define PROJ_BYTES (MAX_PROJ * PREC)
#define QUEUE_BYTES (Q_HEAD + QUEUE_MAX * Q_ENT)

/* Spatial grid for hit tests: 32 x 32 cells of 32 units. */
#define CELL_SHIFT 5
#define GRID 32
#define NO_SLOT 0xFFFF

_Static_assert(HIT_RADIUS <= (1 << CELL_SHIFT) / 2, "a hit must lie in the 2x2 cells searched");
_Static_assert((GRID << CELL_SHIFT) >= ARENA, "the grid must cover the arena");
_Static_assert(ARENA_SUB <= 65535 && (ARENA - 1) * SUB <= 65535, "positions fit u16");
_Static_assert(MAX_PLAYERS <= 256, "slots are stored as u8 in B and Q");

static const uint8_t KEY_W[1] = {'W'};
static const uint8_t KEY_P[1] = {'P'};
static const uint8_t KEY_B[1] = {'B'};
static const uint8_t KEY_Q[1] = {'Q'};

/* ---- scratch memory (valid only within one call) ----------------------- */
#define INPUT_CAP (EA_INPUT_HEADER_BYTES + 1024)
static uint8_t g_input[INPUT_CAP];
static uint8_t g_players[PLAYERS_BYTES];
static uint8_t g_proj[PROJ_BYTES];
static uint8_t g_queue[QUEUE_BYTES];
static uint16_t g_cell_head[GRID * GRID];
static uint16_t g_cell_next[MAX_PLAYERS];
static int32_t g_px[MAX_PLAYERS], g_py[MAX_PLAYERS]; /* living players, sub-units */
static uint8_t g_live[MAX_PLAYERS];
static uint8_t g_event[256];

#if defined(__wasm__)
#define TRAP() __builtin_trap()
#else
#include <stdlib.h>
#define TRAP() abort()
#endif

/* ---- small helpers ----------------------------------------------------- */
static inline int iabs(int v) { return v < 0 ? -v : v; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

static void kkey_make(uint8_t key[33], const uint8_t *pub) {
    key[0] = 'K';
    ea_memcpy(key + 1, pub, 32);
}

static uint64_t pub_hash(const uint8_t *pub) {
    uint64_t h = ea_mix64(ea_rd_u64(pub));
    h = ea_mix64(h ^ ea_rd_u64(pub + 8));
    h = ea_mix64(h ^ ea_rd_u64(pub + 16));
    return ea_mix64(h ^ ea_rd_u64(pub + 24));
}

/* Slot of a public key: >= 0, -1 if not joined, -2 if the stored value is bad. */
static int slot_of(const uint8_t *pub) {
    uint8_t key[33], v[2];
    kkey_make(key, pub);
    int32_t n = ea_get(key, 33, v, 2);
    if (n < 0) return -1;
    if (n != 2) return -2;
    int s = ea_rd_u16(v);
    return s < MAX_PLAYERS ? s : -2;
}

/* "W" into meta; absent means a world without genesis: default meta. */
static int meta_load(uint8_t meta[META_SIZE]) {
    int r = ea_get_exact(KEY_W, 1, meta, META_SIZE);
    if (r == EA_REC_ABSENT) {
        ea_memset(meta, 0, META_SIZE);
        meta[M_VERSION] = 1;
        return 1;
    }
    return r == EA_REC_OK;
}

/* All of "P" into g_players: number of records, or -1 if corrupt. */
static int players_load_all(void) {
    int32_t n = ea_get(KEY_P, 1, g_players, PLAYERS_BYTES);
    if (n < 0) return 0;
    if (n > PLAYERS_BYTES || n % REC) return -1;
    return n / REC;
}

/* Record `slot` via a prefix read of "P": pointer into g_players or 0. */
static uint8_t *player_load_one(int slot) {
    int32_t need = (slot + 1) * REC;
    int32_t n = ea_get(KEY_P, 1, g_players, need);
    if (n < need) return 0;
    return g_players + slot * REC;
}

/* "B" into g_proj: number of projectiles, 0 if absent, -1 if corrupt. */
static int proj_load(void) {
    int32_t n = ea_get(KEY_B, 1, g_proj, PROJ_BYTES);
    if (n < 0) return 0;
    if (n > PROJ_BYTES || n % PREC) return -1;
    return n / PREC;
}

/* "Q" into g_queue: number of entries, -1 if absent, -2 if corrupt. */
static int queue_load(void) {
    int32_t n = ea_get(KEY_Q, 1, g_queue, QUEUE_BYTES);
    if (n < 0) return -1;
    if (n > QUEUE_BYTES || n < Q_HEAD || (n - Q_HEAD) % Q_ENT) return -2;
    return (n - Q_HEAD) / Q_ENT;
}

static void spawn(uint8_t *rec, uint64_t h) {
    uint64_t st = h;
    int span = ARENA - 2 * SPAWN_MARGIN;
    ea_wr_u16(rec + F_X, (uint16_t)(SPAWN_MARGIN + ea_below(&st, (uint32_t)span)));
    ea_wr_u16(rec + F_Y, (uint16_t)(SPAWN_MARGIN + ea_below(&st, (uint32_t)span)));
    rec[F_VX] = 0;
    rec[F_VY] = 0;
    rec[F_HP] = HP_MAX;
    rec[F_FLAGS] = FL_OCC | FL_ALIVE;
    rec[F_RESPAWN] = 0;
    rec[F_COOLDOWN] = 0;
}

/* ---- inputs ------------------------------------------------------------ */

EA_EXPORT(ea_alloc)
uint8_t *ea_alloc(int32_t len) {
    if (len < 0 || len > INPUT_CAP) return 0;
    return g_input;
}

static int32_t op_join(const uint8_t *pub, int32_t plen) {
    if (plen != 1) return R_BAD_LENGTH;
    uint8_t key[33];
    kkey_make(key, pub);
    int32_t klen = ea_len(key, 33);
    if (klen >= 0) return klen == 2 ? R_ALREADY_JOINED : R_CORRUPT;

    uint8_t meta[META_SIZE];
    if (!meta_load(meta)) return R_CORRUPT;
    int count = ea_rd_u16(meta + M_PLAYERS);
    if (count >= MAX_PLAYERS) return R_ARENA_FULL;
    int slot = -1;
    for (int i = 0; i < 32 && slot < 0; i++) {
        uint8_t b = meta[M_BITMAP + i];
        if (b != 0xFF)
            for (int j = 0; j < 8; j++)
                if (!(b & (1u << j))) {
                    slot = i * 8 + j;
                    break;
                }
    }
    if (slot < 0) return R_CORRUPT;
    int n = players_load_all();
    if (n < 0) return R_CORRUPT;
    if (slot < n && (g_players[slot * REC + F_FLAGS] & FL_OCC)) return R_CORRUPT;

    /* all checks passed: write */
    if (slot >= n) {
        ea_memset(g_players + n * REC, 0, (size_t)(slot + 1 - n) * REC);
        n = slot + 1;
    }
    uint32_t joins = ea_rd_u32(meta + M_JOINS);
    uint8_t *rec = g_players + slot * REC;
    ea_memset(rec, 0, REC);
    spawn(rec, ea_seed64(pub_hash(pub) ^ ((uint64_t)joins << 16) ^ (uint64_t)slot));
    ea_set(KEY_P, 1, g_players, n * REC);

    uint8_t v[2];
    ea_wr_u16(v, (uint16_t)slot);
    ea_set(key, 33, v, 2);

    meta[M_BITMAP + (slot >> 3)] |= (uint8_t)(1u << (slot & 7));
    ea_wr_u16(meta + M_PLAYERS, (uint16_t)(count + 1));
    ea_wr_u32(meta + M_JOINS, joins + 1);
    ea_set(KEY_W, 1, meta, META_SIZE);

    uint8_t ev[7];
    ev[0] = 'J';
    ea_wr_u16(ev + 1, (uint16_t)slot);
    ea_memcpy(ev + 3, rec + F_X, 4);
    ea_emit(ev, 7);
    return EA_OK;
}

/* Common part of MOVE and FIRE: the sender's living record, or a code. */
static int32_t living_player(const uint8_t *pub, int *slot_out, uint8_t **rec_out) {
    int slot = slot_of(pub);
    if (slot == -1) return R_NOT_JOINED;
    if (slot < 0) return R_CORRUPT;
    uint8_t *rec = player_load_one(slot);
    if (!rec || !(rec[F_FLAGS] & FL_OCC)) return R_CORRUPT;
    if (!(rec[F_FLAGS] & FL_ALIVE)) return R_DEAD;
    *slot_out = slot;
    *rec_out = rec;
    return EA_OK;
}

/* Append a command to "Q" (entries = its current length, -1 if absent). */
static void queue_append(int entries, int op, int slot, int a, int b) {
    if (entries < 0) {
        ea_memset(g_queue, 0, Q_HEAD);
        entries = 0;
    }
    uint8_t *e = g_queue + Q_HEAD + entries * Q_ENT;
    e[0] = (uint8_t)op;
    e[1] = (uint8_t)slot;
    e[2] = (uint8_t)(int8_t)a;
    e[3] = (uint8_t)(int8_t)b;
    ea_set(KEY_Q, 1, g_queue, Q_HEAD + (entries + 1) * Q_ENT);
}

static int32_t op_move(const uint8_t *pub, const uint8_t *p, int32_t plen) {
    if (plen != 3) return R_BAD_LENGTH;
    int vx = (int8_t)p[1], vy = (int8_t)p[2];
    if (vx * vx + vy * vy > MAX_SPEED * MAX_SPEED) return R_OVERSPEED;
    int slot;
    uint8_t *rec;
    int32_t r = living_player(pub, &slot, &rec);
    if (r) return r;
    int q = queue_load();
    if (q == -2) return R_CORRUPT;
    if (q >= QUEUE_MAX) return R_QUEUE_FULL;
    queue_append(q, OP_MOVE, slot, vx, vy);
    return EA_OK;
}

static int32_t op_fire(const uint8_t *pub, const uint8_t *p, int32_t plen) {
    if (plen != 3) return R_BAD_LENGTH;
    int dx = (int8_t)p[1], dy = (int8_t)p[2];
    if (dx == 0 && dy == 0) return R_ZERO_DIRECTION;
    int slot;
    uint8_t *rec;
    int32_t r = living_player(pub, &slot, &rec);
    if (r) return r;
    if (rec[F_COOLDOWN]) return R_COOLDOWN;
    int q = queue_load();
    if (q == -2) return R_CORRUPT;
    int fired = 0;
    if (q >= 0) {
        if (g_queue[slot >> 3] & (1u << (slot & 7))) return R_COOLDOWN;
        for (int i = 0; i < Q_HEAD; i++) fired += __builtin_popcount(g_queue[i]);
    }
    int32_t blen = ea_len(KEY_B, 1);
    int live = blen > 0 ? blen / PREC : 0;
    if (live + fired >= MAX_PROJ) return R_PROJECTILES_FULL;
    if (q >= QUEUE_MAX) return R_QUEUE_FULL;
    if (q < 0) {
        ea_memset(g_queue, 0, Q_HEAD);
        q = 0;
    }
    g_queue[slot >> 3] |= (uint8_t)(1u << (slot & 7));
    queue_append(q, OP_FIRE, slot, dx, dy);
    return EA_OK;
}

static int32_t op_leave(const uint8_t *pub, int32_t plen) {
    if (plen != 1) return R_BAD_LENGTH;
    int slot = slot_of(pub);
    if (slot == -1) return R_NOT_JOINED;
    if (slot < 0) return R_CORRUPT;
    uint8_t meta[META_SIZE];
    if (!meta_load(meta)) return R_CORRUPT;
    int count = ea_rd_u16(meta + M_PLAYERS);
    uint8_t bit = (uint8_t)(1u << (slot & 7));
    if (count == 0 || !(meta[M_BITMAP + (slot >> 3)] & bit)) return R_CORRUPT;
    int n = players_load_all();
    if (n <= slot || !(g_players[slot * REC + F_FLAGS] & FL_OCC)) return R_CORRUPT;
    int np = proj_load();
    if (np < 0) return R_CORRUPT;
    int q = queue_load();
    if (q == -2) return R_CORRUPT;

    /* all checks passed: write */
    ea_memset(g_players + slot * REC, 0, REC);
    while (n > 0 && !(g_players[(n - 1) * REC + F_FLAGS] & FL_OCC)) n--;
    if (n) ea_set(KEY_P, 1, g_players, n * REC);
    else ea_del(KEY_P, 1);

    meta[M_BITMAP + (slot >> 3)] &= (uint8_t)~bit;
    ea_wr_u16(meta + M_PLAYERS, (uint16_t)(count - 1));
    ea_set(KEY_W, 1, meta, META_SIZE);

    uint8_t key[33];
    kkey_make(key, pub);
    ea_del(key, 33);

    /* The leaver's projectiles vanish (so a later owner of the slot never
     * gets credit for them), and so do its queued commands. */
    if (np > 0) {
        int j = 0;
        for (int i = 0; i < np; i++) {
            if (g_proj[i * PREC + 6] == slot) continue;
            if (j != i) ea_memcpy(g_proj + j * PREC, g_proj + i * PREC, PREC);
            j++;
        }
        if (j != np) {
            if (j) ea_set(KEY_B, 1, g_proj, j * PREC);
            else ea_del(KEY_B, 1);
        }
    }
    if (q >= 0) {
        int j = 0;
        for (int i = 0; i < q; i++) {
            uint8_t *e = g_queue + Q_HEAD + i * Q_ENT;
            if (e[1] == slot) continue;
            if (j != i) ea_memcpy(g_queue + Q_HEAD + j * Q_ENT, e, Q_ENT);
            j++;
        }
        int had_bit = (g_queue[slot >> 3] & bit) != 0;
        g_queue[slot >> 3] &= (uint8_t)~bit;
        if (j != q || had_bit) ea_set(KEY_Q, 1, g_queue, Q_HEAD + j * Q_ENT);
    }

    uint8_t ev[3];
    ev[0] = 'L';
    ea_wr_u16(ev + 1, (uint16_t)slot);
    ea_emit(ev, 3);
    return EA_OK;
}

EA_EXPORT(ea_input)
int32_t ea_input(const uint8_t *buf, int32_t len) {
    if (!buf || len <= EA_INPUT_HEADER_BYTES || len > INPUT_CAP) return R_MALFORMED;
    const uint8_t *pub = EA_INPUT_SENDER(buf);
    const uint8_t *p = EA_INPUT_PAYLOAD(buf);
    int32_t plen = EA_INPUT_PAYLOAD_LEN(len);
    switch (p[0]) {
    case OP_JOIN: return op_join(pub, plen);
    case OP_MOVE: return op_move(pub, p, plen);
    case OP_FIRE: return op_fire(pub, p, plen);
    case OP_LEAVE: return op_leave(pub, plen);
    default: return R_UNKNOWN_OP;
    }
}

/* ---- genesis and tick -------------------------------------------------- */

EA_EXPORT(ea_genesis)
void ea_genesis(void) {
    uint8_t meta[META_SIZE];
    ea_memset(meta, 0, META_SIZE);
    meta[M_VERSION] = 1;
    ea_set(KEY_W, 1, meta, META_SIZE);
}

static void emit_kills(const uint8_t *kills, int nk) {
    while (nk > 0) {
        int c = nk > 63 ? 63 : nk;
        g_event[0] = 'K';
        g_event[1] = (uint8_t)c;
        ea_memcpy(g_event + 2, kills, (size_t)c * 4);
        ea_emit(g_event, 2 + c * 4);
        kills += c * 4;
        nk -= c;
    }
}

EA_EXPORT(ea_tick)
void ea_tick(int64_t tick) {
    int n = players_load_all();
    int np = proj_load();
    int q = queue_load();
    if (n < 0 || np < 0 || q == -2) TRAP();
    if (n == 0 && np == 0 && q < 0) return; /* empty arena: nothing to do */

    int dirty = 0;
    uint64_t seed = 0;
    int have_seed = 0;

    /* 1. cooldowns and respawns */
    for (int s = 0; s < n; s++) {
        uint8_t *r = g_players + s * REC;
        uint8_t fl = r[F_FLAGS];
        if (!(fl & FL_OCC)) continue;
        if (fl & FL_ALIVE) {
            if (r[F_COOLDOWN]) {
                r[F_COOLDOWN]--;
                dirty = 1;
            }
        } else {
            if (r[F_RESPAWN] > 1) {
                r[F_RESPAWN]--;
            } else {
                if (!have_seed) {
                    seed = ea_seed64((uint64_t)tick);
                    have_seed = 1;
                }
                spawn(r, ea_mix64(seed ^ ((uint64_t)s << 40) ^ ea_rd_u32(r + F_DEATHS)));
            }
            dirty = 1;
        }
    }

    /* 2. queued commands, in input order */
    for (int i = 0; i < (q > 0 ? q : 0); i++) {
        const uint8_t *e = g_queue + Q_HEAD + i * Q_ENT;
        int s = e[1];
        if (s >= n) continue;
        uint8_t *r = g_players + s * REC;
        if ((r[F_FLAGS] & (FL_OCC | FL_ALIVE)) != (FL_OCC | FL_ALIVE)) continue;
        if (e[0] == OP_MOVE) {
            if (r[F_VX] != e[2] || r[F_VY] != e[3]) {
                r[F_VX] = e[2];
                r[F_VY] = e[3];
                dirty = 1;
            }
        } else if (e[0] == OP_FIRE) {
            if (np >= MAX_PROJ) continue;
            /* direction scaled by 128 so the integer length is precise; +1
             * keeps the speed at or just under PROJ_SPEED (95.3..96) */
            int dx = (int8_t)e[2] * 128, dy = (int8_t)e[3] * 128;
            if (dx == 0 && dy == 0) continue;
            int len = (int)ea_isqrt((uint32_t)(dx * dx) + (uint32_t)(dy * dy)) + 1;
            uint8_t *b = g_proj + np * PREC;
            ea_wr_u16(b + 0, (uint16_t)(ea_rd_u16(r + F_X) * SUB));
            ea_wr_u16(b + 2, (uint16_t)(ea_rd_u16(r + F_Y) * SUB));
            b[4] = (uint8_t)(int8_t)(dx * PROJ_SPEED / len);
            b[5] = (uint8_t)(int8_t)(dy * PROJ_SPEED / len);
            b[6] = (uint8_t)s;
            b[7] = PROJ_TTL;
            np++;
            r[F_COOLDOWN] = FIRE_COOLDOWN;
            dirty = 1;
        }
    }

    /* 3. movement, and the grid of living players */
    for (int c = 0; c < GRID * GRID; c++) g_cell_head[c] = NO_SLOT;
    for (int s = 0; s < n; s++) {
        uint8_t *r = g_players + s * REC;
        if ((r[F_FLAGS] & (FL_OCC | FL_ALIVE)) != (FL_OCC | FL_ALIVE)) continue;
        int x = ea_rd_u16(r + F_X), y = ea_rd_u16(r + F_Y);
        int vx = (int8_t)r[F_VX], vy = (int8_t)r[F_VY];
        if (vx | vy) {
            int nx = clampi(x + vx, 0, ARENA - 1), ny = clampi(y + vy, 0, ARENA - 1);
            if (nx != x || ny != y) {
                x = nx;
                y = ny;
                ea_wr_u16(r + F_X, (uint16_t)x);
                ea_wr_u16(r + F_Y, (uint16_t)y);
                dirty = 1;
            }
        }
        int c = ((y >> CELL_SHIFT) * GRID) + (x >> CELL_SHIFT);
        g_cell_next[s] = g_cell_head[c];
        g_cell_head[c] = (uint16_t)s;
        g_px[s] = x * SUB;
        g_py[s] = y * SUB;
        g_live[s] = 1;
    }

    /* 4. projectiles */
    uint8_t kills[MAX_PLAYERS * 4];
    int nk = 0;
    int out = 0;
    for (int i = 0; i < np; i++) {
        uint8_t *b = g_proj + i * PREC;
        int ttl = b[7];
        int x = ea_rd_u16(b) + (int8_t)b[4];
        int y = ea_rd_u16(b + 2) + (int8_t)b[5];
        int owner = b[6];
        if (ttl <= 1 || x < 0 || y < 0 || x >= ARENA_SUB || y >= ARENA_SUB) continue;
        /* candidate cells: own cell and the neighbour on the near side */
        int ux = x / SUB, uy = y / SUB;
        int cx0 = ux >> CELL_SHIFT, cy0 = uy >> CELL_SHIFT;
        int cx1 = (ux & 31) < 16 ? cx0 - 1 : cx0 + 1;
        int cy1 = (uy & 31) < 16 ? cy0 - 1 : cy0 + 1;
        /* (the lists only hold slots inserted in step 3 of this call, so
         * g_px/g_py/g_live are never read stale) */
        const int rad = HIT_RADIUS * SUB;
        int best = -1, best_d = rad * rad + 1;
        for (int k = 0; k < 4; k++) {
            int cx = (k & 1) ? cx1 : cx0, cy = (k & 2) ? cy1 : cy0;
            if (cx < 0 || cy < 0 || cx >= GRID || cy >= GRID) continue;
            for (int s = g_cell_head[cy * GRID + cx]; s != NO_SLOT; s = g_cell_next[s]) {
                int dx = g_px[s] - x, dy = g_py[s] - y;
                if (dx > rad || dx < -rad || dy > rad || dy < -rad) continue;
                if (s == owner || !g_live[s]) continue;
                int d = dx * dx + dy * dy;
                if (d < best_d || (d == best_d && s < best)) {
                    best_d = d;
                    best = s;
                }
            }
        }
        if (best >= 0) {
            uint8_t *v = g_players + best * REC;
            int hp = v[F_HP] - DAMAGE;
            if (hp > 0) {
                v[F_HP] = (uint8_t)hp;
            } else {
                v[F_HP] = 0;
                v[F_FLAGS] = FL_OCC;
                v[F_VX] = 0;
                v[F_VY] = 0;
                v[F_COOLDOWN] = 0;
                v[F_RESPAWN] = RESPAWN_TICKS;
                g_live[best] = 0;
                ea_wr_u32(v + F_DEATHS, ea_rd_u32(v + F_DEATHS) + 1);
                if (owner < n && (g_players[owner * REC + F_FLAGS] & FL_OCC)) {
                    uint8_t *k = g_players + owner * REC + F_SCORE;
                    ea_wr_u32(k, ea_rd_u32(k) + 1);
                }
                ea_wr_u16(kills + nk * 4, (uint16_t)owner);
                ea_wr_u16(kills + nk * 4 + 2, (uint16_t)best);
                nk++;
            }
            dirty = 1;
            continue;
        }
        uint8_t *o = g_proj + out * PREC;
        ea_wr_u16(o, (uint16_t)x);
        ea_wr_u16(o + 2, (uint16_t)y);
        o[4] = b[4];
        o[5] = b[5];
        o[6] = (uint8_t)owner;
        o[7] = (uint8_t)(ttl - 1);
        out++;
    }

    /* 5. write back what changed */
    if (dirty) ea_set(KEY_P, 1, g_players, n * REC);
    if (out) ea_set(KEY_B, 1, g_proj, out * PREC);
    else if (np) ea_del(KEY_B, 1);
    if (q >= 0) ea_del(KEY_Q, 1);
    if (nk) emit_kills(kills, nk);
}

/* ---- bot --------------------------------------------------------------- */

/* Wander: a random velocity within the speed limit, steering away from walls. */
static void bot_wander(uint64_t *h, int x, int y, int *vx, int *vy) {
    int a = (int)ea_below(h, 17) - 8, b = (int)ea_below(h, 17) - 8;
    while (a * a + b * b > MAX_SPEED * MAX_SPEED) {
        if (iabs(a) >= iabs(b)) a -= a > 0 ? 1 : -1;
        else b -= b > 0 ? 1 : -1;
    }
    if (x < 80) a = iabs(a) + 1;
    if (x > ARENA - 81) a = -iabs(a) - 1;
    if (y < 80) b = iabs(b) + 1;
    if (y > ARENA - 81) b = -iabs(b) - 1;
    while (a * a + b * b > MAX_SPEED * MAX_SPEED) {
        if (iabs(a) >= iabs(b)) a -= a > 0 ? 1 : -1;
        else b -= b > 0 ? 1 : -1;
    }
    *vx = a;
    *vy = b;
}

EA_EXPORT(ea_bot)
int32_t ea_bot(int32_t player, int64_t tick, uint8_t *out, int32_t cap) {
    if (!out || cap < 32) return EA_BOT_IDLE;
    uint8_t pub[32];
    ea_memcpy(pub, out, 32);
    uint64_t h = ea_seed64(((uint64_t)(uint32_t)player << 32) ^ (uint64_t)tick);
    /* Act about one tick in three (joining included: a bot "reacts" within a
     * few ticks). Deciding first keeps an idle bot at zero state reads. */
    if (ea_below(&h, 3) != 0) return EA_BOT_IDLE;

    int slot = slot_of(pub);
    if (slot == -1) { /* not in the arena: join if there is room */
        uint8_t meta[META_SIZE];
        if (!meta_load(meta) || ea_rd_u16(meta + M_PLAYERS) >= MAX_PLAYERS) return EA_BOT_IDLE;
        out[0] = OP_JOIN;
        return 1;
    }
    if (slot < 0) return EA_BOT_IDLE;

    int32_t have = (slot + 1) * REC;
    int32_t total = ea_get(KEY_P, 1, g_players, have);
    if (total < have) return EA_BOT_IDLE;
    const uint8_t *me = g_players + slot * REC;
    if ((me[F_FLAGS] & (FL_OCC | FL_ALIVE)) != (FL_OCC | FL_ALIVE)) return EA_BOT_IDLE;

    if (ea_below(&h, 4096) == 0) { /* now and then a bot leaves (and rejoins later) */
        out[0] = OP_LEAVE;
        return 1;
    }

    int x = ea_rd_u16(me + F_X), y = ea_rd_u16(me + F_Y);
    int cvx = (int8_t)me[F_VX], cvy = (int8_t)me[F_VY];
    int mode = (int)ea_below(&h, 100);

    /* Look at up to 4 consecutive slots from a random one: one more prefix
     * read at most, never a scan of the arena. */
    int nslots = total / REC;
    int t0 = (int)ea_below(&h, (uint32_t)nslots);
    int t1 = t0 + 4 < nslots ? t0 + 4 : nslots;
    if (t1 * REC > have) {
        have = t1 * REC;
        if (ea_get(KEY_P, 1, g_players, have) < have) return EA_BOT_IDLE;
    }
    const uint8_t *tg = 0;
    for (int t = t0; t < t1 && !tg; t++) {
        const uint8_t *r = g_players + t * REC;
        if (t != slot && (r[F_FLAGS] & FL_ALIVE)) tg = r;
    }
    me = g_players + slot * REC;

    int vx, vy;
    if (tg) {
        int tx = ea_rd_u16(tg + F_X), ty = ea_rd_u16(tg + F_Y);
        int dx = tx - x, dy = ty - y;
        int dist = imax(iabs(dx), iabs(dy));
        if (me[F_COOLDOWN] == 0 && dist > 0 && dist <= 560 && mode < 55 && cap >= 3) {
            /* lead the target by its velocity over the flight time, then jitter */
            int flight = dist / 12;
            dx += (int8_t)tg[F_VX] * flight;
            dy += (int8_t)tg[F_VY] * flight;
            int m = imax(iabs(dx), iabs(dy));
            if (m == 0) m = 1;
            int ax = dx * 100 / m + (int)ea_below(&h, 17) - 8;
            int ay = dy * 100 / m + (int)ea_below(&h, 17) - 8;
            ax = clampi(ax, -127, 127);
            ay = clampi(ay, -127, 127);
            if (ax == 0 && ay == 0) ax = 1;
            out[0] = OP_FIRE;
            out[1] = (uint8_t)(int8_t)ax;
            out[2] = (uint8_t)(int8_t)ay;
            return 3;
        }
        if (mode < 80 && dist > 120) { /* hunt: close in on the target */
            vx = dx * 5 / dist;
            vy = dy * 5 / dist;
        } else {
            bot_wander(&h, x, y, &vx, &vy);
        }
    } else {
        bot_wander(&h, x, y, &vx, &vy);
    }
    if ((vx == cvx && vy == cvy) || cap < 3) return EA_BOT_IDLE;
    out[0] = OP_MOVE;
    out[1] = (uint8_t)(int8_t)vx;
    out[2] = (uint8_t)(int8_t)vy;
    return 3;
}
