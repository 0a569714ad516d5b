#!/bin/sh
# What the guests and the tests need beyond the Rust toolchain: the wasm32 target (the Rust
# guests) and clang with lld (the C guests, guests/c). Installs what is missing where it can
# (rustup; apt-get as root), else stops with the command to run. README's test command and
# .ci/run start with it.
set -eu
rustup target add wasm32-unknown-unknown
if command -v clang >/dev/null 2>&1 && command -v wasm-ld >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y clang lld || { apt-get update && apt-get install -y clang lld; }
else
    echo "guests/setup.sh: the C guests need clang and lld; install them with" >&2
    echo "    sudo apt-get install -y clang lld" >&2
    exit 1
fi
