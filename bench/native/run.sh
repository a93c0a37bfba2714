#!/usr/bin/env bash
# Native tests + benchmark floor of the 2d-arena world.
#
#   bench/native/run.sh          rule checks, simulations (64 bots x 2000 ticks,
#                                256 x 500, with invariants checked every tick),
#                                determinism check, benchmark 256 x 2000
#   bench/native/run.sh sim BOTS TICKS [SEED] [nocheck]
#
# If node is installed it also builds world.wasm into a temp dir (and fails if
# it differs from the committed one), runs it through wasm_run.mjs on the same
# scenarios and compares the final state digests with the native build's, and
# measures fuel against world.toml's limits.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/../.."
game="$root/runtime/games/2d-arena"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

CC="${CC:-gcc}"
"$CC" -O2 -std=c11 -Wall -Wextra -Werror \
    -I "$root/sdk/c" -I "$here" \
    -o "$tmp/test_arena" \
    "$here/test_arena.c" "$here/host.c" "$game/src/arena.c"

if [[ $# -gt 0 ]]; then
    exec "$tmp/test_arena" "$@"
fi

"$tmp/test_arena"

if command -v node >/dev/null 2>&1; then
    echo "--- wasm build vs native build (node) ---"
    "$game/build.sh" "$tmp/world.wasm"
    if cmp -s "$tmp/world.wasm" "$game/world.wasm"; then
        echo "world.wasm is up to date with src/arena.c"
    else
        echo "FAIL: world.wasm differs from a fresh build (run build.sh)"
        exit 1
    fi
    # The wasm runs poison all scratch memory before every call, so equal
    # digests also show the world never reads memory it did not write.
    for spec in "64 300 1" "256 200 3"; do
        set -- $spec
        native="$("$tmp/test_arena" sim "$1" "$2" "$3" nocheck | awk '/state digest/{print $3}')"
        wasm="$(node "$here/wasm_run.mjs" "$tmp/world.wasm" "$1" "$2" "$3" --poison | awk '/state digest/{print $3}')"
        if [[ -n "$native" && "$native" == "$wasm" ]]; then
            echo "bots=$1 ticks=$2 seed=$3: digests match ($native)"
        else
            echo "FAIL bots=$1 ticks=$2 seed=$3: native $native, wasm $wasm"
            exit 1
        fi
    done
    echo "--- fuel (instrumented wasm) against world.toml ---"
    node "$here/wasm_run.mjs" "$tmp/world.wasm" 256 200 3 --fuel --stress --manifest="$game/world.toml" |
        sed -n '/^fuel/,$p'
    test "${PIPESTATUS[0]}" -eq 0
else
    echo "(node not found: skipped the wasm cross-check and the fuel measurement)"
fi
