//! Model-based fuzzing of the VM calls: the fuzzer's bytes seed the same generator as the
//! test suite's proptest (`tests/all/map_model.rs`):
//! random tasks, port classes (own, peer, null, unknown, dead), addresses near page and
//! 4 GiB edges, sizes and protections, run through the runtime and through a plain model of
//! SPEC, comparing codes, out-values, maps and memory contents after every step. A
//! divergence panics, which libFuzzer reports with the input that caused it.
//!
//! `cargo fuzz run vm_calls --sanitizer none` (from `fuzz/` or the repository root).

#![no_main]

use libfuzzer_sys::fuzz_target;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

// The test modules, shared as they are; the parts only the test suite uses are dead here.
#[allow(dead_code)]
#[path = "../../tests/all/common.rs"]
mod common;
#[allow(dead_code)]
#[path = "../../tests/all/map_model.rs"]
mod map_model;

/// A 32-byte ChaCha seed from the fuzzer's bytes (FNV-1a, four lanes). A pass-through
/// source that runs dry yields zeros for ever, on which rand's rejection sampling never
/// terminates; a seeded stream never runs dry, and each input still maps to one sequence.
fn seed(data: &[u8]) -> [u8; 32] {
    let mut seed = [0u8; 32];
    for (lane, chunk) in seed.chunks_mut(8).enumerate() {
        let h = data
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64 ^ lane as u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        chunk.copy_from_slice(&h.to_le_bytes());
    }
    seed
}

fuzz_target!(|data: &[u8]| {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed(data));
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    if let Err(divergence) = map_model::run_drawn_sequence(&mut runner) {
        panic!("the runtime and the model diverge: {divergence}");
    }
});
