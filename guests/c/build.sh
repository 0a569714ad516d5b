#!/bin/sh
# Builds the C guests: guests/c/NAME.c + support.c -> guests/c/target/NAME.wasm.
# Needs clang and wasm-ld (Debian: apt-get install -y clang lld). Run from anywhere.
#
# Usage: guests/c/build.sh [NAME...]   (default: producer consumer errors example)
# The output directory is guests/c/target, or $WASMACH_C_OUT (the tests' build script).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-clang}
missing=
command -v "$CC" >/dev/null 2>&1 || missing="$missing clang"
command -v wasm-ld >/dev/null 2>&1 || missing="$missing lld"
if [ -z "$missing" ] && ! "$CC" --target=wasm32 -print-targets >/dev/null 2>&1; then
    missing="$missing clang"
fi
if [ -n "$missing" ]; then
    echo "guests/c/build.sh: missing${missing}: install the Debian packages with" >&2
    echo "    apt-get install -y clang lld" >&2
    exit 1
fi

# -nostdlib: no libc; support.c has the few helpers clang may emit calls to.
# The module defines its one memory (wasm-ld's default, exported as "memory"),
# which the runtime accepts (docs/spec.md section 10); its only imports are
# the "mach" calls. 64 KiB of stack, below the data (--stack-first), so a
# stack overflow traps at address 0 instead of running into the statics.
CFLAGS="--target=wasm32 -nostdlib -O2 -std=c11 -Wall -Wextra -Werror -I$here/include"
LDFLAGS="-Wl,--no-entry -Wl,--export=_start -Wl,--stack-first -Wl,-z,stack-size=65536"

out=${WASMACH_C_OUT:-$here/target}
mkdir -p "$out"
[ $# -gt 0 ] || set -- producer consumer errors example
for name in "$@"; do
    extra=
    # errors.c runs out of room on purpose (KERN_NO_SPACE): a 32-page address space.
    [ "$name" = errors ] && extra="-Wl,--max-memory=2097152"
    # shellcheck disable=SC2086
    "$CC" $CFLAGS $LDFLAGS $extra -o "$out/$name.wasm" "$here/$name.c" "$here/support.c"
    echo "built $out/$name.wasm"
done
