#!/usr/bin/env bash
# The demo: builds the Rust guest programs for wasm32, then runs them as tasks with
# `wasmach run` next to the WAT mailbox, and shows every task's regions.
#
#   producer     vm_allocates pages in the mailbox and vm_writes 4096 records + a header
#   consumer     vm_read_overwrites them back and verifies the checksum (same number)
#   snapshotter  vm_reads a mailbox page, lets it change, shows its copy unchanged
#   guard        lowers the page's maximum protection to READ: the write is refused (2)
# Then virtual copies, with physical ones to compare (--stats: time and peak memory):
#   archive      fills 64 MiB (1024 pages) with records
#   snapshot     vm_reads all of it, both sides write, checks its copy (0 mismatches)
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-unknown-unknown
cargo build --release --target wasm32-unknown-unknown --manifest-path guests/Cargo.toml
out=guests/target/wasm32-unknown-unknown/release
cargo run -p wasmach-cli -- run --vmmap guests/wat/mailbox.wat \
    "$out/producer.wasm" "$out/consumer.wasm" "$out/snapshotter.wasm" "$out/guard.wasm" "$@"
echo
echo "# a 64 MiB snapshot, copied physically and then virtually (shared copy-on-write):"
for mode in physical virtual; do
    cargo run -q -p wasmach-cli -- run --copy "$mode" --stats \
        guests/wat/archive.wat guests/wat/snapshot.wat
done
