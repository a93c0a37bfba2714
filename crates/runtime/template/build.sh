#!/usr/bin/env bash
# Builds src/world.c into world.wasm (ABI ea-world/1).
#
#   ./build.sh            writes world.wasm next to this script
#   ./build.sh OUT.wasm   writes OUT.wasm instead
#
# Needs clang with the wasm32 target and wasm-ld (Debian/Ubuntu:
# apt-get install -y clang lld). The build is reproducible: relative paths,
# the directory prefix mapped away, everything stripped, no time stamps.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/world.wasm}"
case "$out" in
/*) ;;
*) out="$PWD/$out" ;;
esac

CLANG="${CLANG:-clang}"
if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "build.sh: $CLANG not found; install clang and lld (apt-get install -y clang lld)" >&2
    exit 1
fi

# Memory: a 16 KiB stack at the bottom (--stack-first, so an overflow traps
# instead of overwriting data), then the static data. Initial = maximum =
# one 64 KiB page; world.toml's memory_bytes must be at least this.
MEMORY_BYTES=65536
STACK_BYTES=16384

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$here"
"$CLANG" --target=wasm32 -mcpu=mvp -O2 -std=c11 \
    -nostdlib -ffreestanding -fno-exceptions -fno-ident \
    -ffile-prefix-map="$here"=. \
    -Wall -Wextra -Werror \
    -I include \
    -Wl,--no-entry \
    -Wl,--strip-all \
    -Wl,--gc-sections \
    -Wl,--stack-first \
    -Wl,-z,stack-size=$STACK_BYTES \
    -Wl,--initial-memory=$MEMORY_BYTES \
    -Wl,--max-memory=$MEMORY_BYTES \
    -o "$tmp/world.wasm" \
    src/world.c

chmod 644 "$tmp/world.wasm"
mv "$tmp/world.wasm" "$out"
echo "build.sh: wrote $out"
