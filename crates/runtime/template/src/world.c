/*
 * A starter world (ABI ea-world/1), written by `everarcade-runtime new`.
 *
 * Players join, then add 1..9 points at a time to their score. It is small on
 * purpose: every part of the ABI appears once, so you can replace the rules
 * with your own. Build it with ../build.sh (clang + wasm-ld).
 *
 * Rules of every world: state lives only in the host's key-value store (a
 * fresh instance serves each tick, so globals do not survive); integers only;
 * no reads of memory you did not write in this call.
 *
 * Payloads (byte 0 is the opcode):
 *   JOIN   01            enter the game with score 0
 *   SCORE  02 n:u8       add n (1..9) to your score
 *
 * Rejection codes (ea_input return values; 0 = applied):
 *   1 MALFORMED       input shorter than the header plus an opcode
 *   2 UNKNOWN_OP      opcode is not JOIN or SCORE
 *   3 BAD_LENGTH      payload length wrong for its opcode (JOIN 1, SCORE 2)
 *   4 NOT_JOINED      SCORE from a key that has not joined
 *   5 ALREADY_JOINED  JOIN from a key that has joined
 *   6 BAD_POINTS      SCORE with n outside 1..9
 *
 * State:
 *   "T"           totals, 8 bytes: players u32, points u32
 *   "P" + pubkey  a player's score, u32 (33-byte key, 4-byte value)
 *
 * Events: 'J' (a player joined), 'S' score u32 (a player's new score).
 * Log: one line per JOIN and one every 10 ticks (see `simulate --trace`).
 */

#define EA_IMPLEMENT_LIBC
#include "everarcade.h"

#define OP_JOIN 1
#define OP_SCORE 2

enum {
    R_MALFORMED = EA_REJECT_MALFORMED,
    R_UNKNOWN_OP = EA_REJECT_UNKNOWN_OP,
    R_BAD_LENGTH = EA_REJECT_BAD_LENGTH,
    R_NOT_JOINED = EA_REJECT_GAME_FIRST,
    R_ALREADY_JOINED,
    R_BAD_POINTS,
};

#define POINTS_MAX 9
#define LOG_EVERY_TICKS 10

static const uint8_t KEY_T[1] = {'T'};

/* The buffer ea_alloc hands out, for ea_input (header + payload) and for
 * ea_bot (max(payload_bytes, 32) bytes). PAYLOAD_BYTES_MAX must be at least
 * world.toml's payload_bytes, or a bot gets no buffer and sends nothing. */
#define PAYLOAD_BYTES_MAX 64
#define INPUT_CAP (EA_INPUT_HEADER_BYTES + PAYLOAD_BYTES_MAX)
static uint8_t g_input[INPUT_CAP];

static void player_key(uint8_t key[1 + EA_PUBKEY_BYTES], const uint8_t *pub) {
    key[0] = 'P';
    ea_memcpy(key + 1, pub, EA_PUBKEY_BYTES);
}

/* Totals: players u32, points u32 (zeros if absent). */
static void totals_load(uint8_t totals[8]) {
    if (ea_get_exact(KEY_T, 1, totals, 8) != EA_REC_OK) ea_memset(totals, 0, 8);
}

/* Writes "<text><number>" to the debug log. */
static void log_number(const char *text, uint32_t number) {
    char line[48];
    int32_t n = 0;
    while (text[n] && n < 32) {
        line[n] = text[n];
        n++;
    }
    char digits[10];
    int32_t d = 0;
    do {
        digits[d++] = (char)('0' + number % 10);
        number /= 10;
    } while (number);
    while (d) line[n++] = digits[--d];
    ea_host_log(line, n);
}

EA_EXPORT(ea_alloc)
uint8_t *ea_alloc(int32_t len) {
    if (len < 0 || len > INPUT_CAP) return 0;
    return g_input;
}

EA_EXPORT(ea_genesis)
void ea_genesis(void) {
    uint8_t totals[8] = {0};
    ea_set(KEY_T, 1, totals, 8);
    ea_log_str("genesis: the game is open");
}

static int32_t join(const uint8_t *pub, int32_t plen) {
    if (plen != 1) return R_BAD_LENGTH;
    uint8_t key[1 + EA_PUBKEY_BYTES];
    player_key(key, pub);
    if (ea_has(key, sizeof key)) return R_ALREADY_JOINED;
    uint8_t totals[8];
    totals_load(totals);
    uint32_t players = ea_rd_u32(totals) + 1;
    ea_wr_u32(totals, players);
    uint8_t score[4] = {0};
    ea_set(key, sizeof key, score, 4);
    ea_set(KEY_T, 1, totals, 8);
    uint8_t event = 'J';
    ea_emit(&event, 1);
    log_number("joined: players ", players);
    return EA_OK;
}

static int32_t score(const uint8_t *pub, const uint8_t *payload, int32_t plen) {
    if (plen != 2) return R_BAD_LENGTH;
    uint32_t points = payload[1];
    if (points < 1 || points > POINTS_MAX) return R_BAD_POINTS;
    uint8_t key[1 + EA_PUBKEY_BYTES];
    player_key(key, pub);
    uint8_t value[4];
    if (ea_get_exact(key, sizeof key, value, 4) != EA_REC_OK) return R_NOT_JOINED;
    uint8_t totals[8];
    totals_load(totals);
    ea_wr_u32(value, ea_rd_u32(value) + points);
    ea_wr_u32(totals + 4, ea_rd_u32(totals + 4) + points);
    ea_set(key, sizeof key, value, 4);
    ea_set(KEY_T, 1, totals, 8);
    uint8_t event[5] = {'S'};
    ea_memcpy(event + 1, value, 4);
    ea_emit(event, sizeof event);
    return EA_OK;
}

EA_EXPORT(ea_input)
int32_t ea_input(const uint8_t *buf, int32_t len) {
    int32_t plen = EA_INPUT_PAYLOAD_LEN(len);
    if (plen < 1) return R_MALFORMED;
    const uint8_t *pub = EA_INPUT_SENDER(buf);
    const uint8_t *payload = EA_INPUT_PAYLOAD(buf);
    switch (payload[0]) {
    case OP_JOIN: return join(pub, plen);
    case OP_SCORE: return score(pub, payload, plen);
    default: return R_UNKNOWN_OP;
    }
}

EA_EXPORT(ea_tick)
void ea_tick(int64_t tick) {
    if (tick % LOG_EVERY_TICKS != 0) return;
    uint8_t totals[8];
    totals_load(totals);
    log_number("points so far: ", ea_rd_u32(totals + 4));
}

/* A bot: joins first, then scores now and then. State is read-only here. */
EA_EXPORT(ea_bot)
int32_t ea_bot(int32_t player, int64_t tick, uint8_t *out, int32_t cap) {
    if (cap < EA_PUBKEY_BYTES) return EA_BOT_IDLE;
    uint8_t key[1 + EA_PUBKEY_BYTES];
    player_key(key, out); /* out[0..32] holds this bot's public key */
    uint64_t h = ea_seed64(((uint64_t)(uint32_t)player << 32) ^ (uint64_t)tick);
    if (!ea_has(key, sizeof key)) {
        out[0] = OP_JOIN;
        return 1;
    }
    if (ea_below(&h, 2) != 0) return EA_BOT_IDLE;
    out[0] = OP_SCORE;
    out[1] = (uint8_t)(1 + ea_below(&h, POINTS_MAX));
    return 2;
}
