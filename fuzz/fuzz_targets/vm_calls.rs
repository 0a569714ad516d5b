//! Model-based fuzzing of the VM calls, with the test suite's generator
//! (`tests/all/map_model.rs`): the fuzzer's input is decoded by the spec types' `Arbitrary`
//! implementations (so libFuzzer's mutations stay close to the sequences they change and its
//! coverage guidance works) into random steps through three doors (the host API, one task
//! calling on another through `Task::mach()`, and a task's guest calling its `"mach"`
//! imports with out-pointers anywhere in its own memory), port classes (own, peer, null,
//! unknown, dead), addresses near page and 4 GiB edges, sizes and protections. Each step runs
//! through the runtime and through a plain model of docs/spec.md, comparing codes, out-values, maps
//! and memory contents after every step. A divergence panics, which libFuzzer reports with
//! the input that caused it (`cargo fuzz fmt vm_calls <input>` prints its steps).
//!
//! `cargo fuzz run vm_calls --sanitizer none` (from `fuzz/` or the repository root).

#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;

// The test modules, shared as they are; the parts only the test suite uses are dead here.
#[allow(dead_code)]
#[path = "../../tests/all/common.rs"]
mod common;
#[allow(dead_code)]
#[path = "../../tests/all/map_model.rs"]
mod map_model;

/// Sequences run and calls made so far in this process (printed every 1000 sequences, for
/// a campaign's figures).
static SEQUENCES: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|steps: map_model::Steps| {
    match steps.run() {
        Ok(calls) => {
            let calls = CALLS.fetch_add(calls as u64, Ordering::Relaxed) + calls as u64;
            let sequences = SEQUENCES.fetch_add(1, Ordering::Relaxed) + 1;
            if sequences.is_multiple_of(1000) {
                eprintln!("vm_calls: {sequences} sequences, {calls} calls");
            }
        }
        Err(divergence) => panic!("the runtime and the model diverge: {divergence}"),
    }
});
