#!/usr/bin/env bash
# Builds src/arena.c into world.wasm (ABI ea-world/1).
#
#   ./build.sh            writes world.wasm next to this script
#   ./build.sh OUT.wasm   writes OUT.wasm instead (CI: build to a temp file and
#                         `cmp` it with the committed world.wasm)
#
# Needs clang (tested with 14) with the wasm32 target and wasm-ld. The build is
# reproducible: it compiles from relative paths inside this directory, maps
# the directory prefix away, strips everything and embeds no time stamps.
# Temporary files go to a mktemp directory that is removed on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/world.wasm}"
case "$out" in
/*) ;;
*) out="$PWD/$out" ;;
esac

CLANG="${CLANG:-clang}"

# Memory: 64 KiB stack at the bottom (--stack-first, so an overflow traps
# instead of overwriting data), then ~34 KiB of static scratch buffers.
# Initial = maximum = 128 KiB, well under the manifest's memory_bytes.
MEMORY_BYTES=131072

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$here"
"$CLANG" --target=wasm32 -mcpu=mvp -O2 -std=c11 \
    -nostdlib -ffreestanding -fno-exceptions -fno-ident \
    -ffile-prefix-map="$here"=. \
    -Wall -Wextra -Werror \
    -I ../../../sdk/c \
    -Wl,--no-entry \
    -Wl,--strip-all \
    -Wl,--gc-sections \
    -Wl,--stack-first \
    -Wl,-z,stack-size=65536 \
    -Wl,--initial-memory=$MEMORY_BYTES \
    -Wl,--max-memory=$MEMORY_BYTES \
    -o "$tmp/world.wasm" \
    src/arena.c

# Check the module's interface without external tools: walk the sections of
# the binary and list imports, exports and the memory limits.
# Allowed imports: the six host functions of module "ea". Allowed exports:
# memory and the ea_* entry points. Memory must declare a maximum.
bytes=($(od -An -v -tu1 "$tmp/world.wasm"))
pos=8
leb() {
    val=0
    local shift=0 b
    while :; do
        b=${bytes[pos]}
        pos=$((pos + 1))
        val=$((val | ((b & 127) << shift)))
        shift=$((shift + 7))
        ((b < 128)) && break
    done
}
name() {
    leb
    local n=$val i
    str=""
    for ((i = 0; i < n; i++)); do str+=$(printf "\\$(printf %03o "${bytes[pos + i]}")"); done
    pos=$((pos + n))
}
fail() { echo "build.sh: $*" >&2; exit 1; }
has_max=0
while ((pos < ${#bytes[@]})); do
    id=${bytes[pos]}
    pos=$((pos + 1))
    leb
    end=$((pos + val))
    case $id in
    2)
        leb
        count=$val
        for ((k = 0; k < count; k++)); do
            name; mod=$str
            name; field=$str
            kind=${bytes[pos]}
            pos=$((pos + 1))
            [[ $kind == 0 ]] || fail "import $mod.$field is not a function"
            leb
            case "$mod.$field" in
            ea.state_get | ea.state_set | ea.state_del | ea.emit | ea.random_seed | ea.log) ;;
            *) fail "unexpected import $mod.$field" ;;
            esac
        done
        ;;
    5)
        leb
        [[ $val == 1 ]] || fail "expected exactly one memory"
        flags=${bytes[pos]}
        pos=$((pos + 1))
        leb
        if ((flags & 1)); then
            leb
            has_max=1
            ((val * 65536 <= MEMORY_BYTES)) || fail "memory maximum too large"
        fi
        ;;
    7)
        leb
        count=$val
        for ((k = 0; k < count; k++)); do
            name
            kind=${bytes[pos]}
            pos=$((pos + 1))
            leb
            case "$kind:$str" in
            2:memory | 0:ea_alloc | 0:ea_input | 0:ea_genesis | 0:ea_tick | 0:ea_bot) ;;
            *) fail "unexpected export $str (kind $kind)" ;;
            esac
        done
        ;;
    esac
    pos=$end
done
((has_max)) || fail "memory has no declared maximum"

chmod 644 "$tmp/world.wasm"
mv "$tmp/world.wasm" "$out"
