//! What the Rust guest programs of `guests/` compute, written again from their definitions:
//! the oracle the programs are checked against, through the runtime (`tests/all/guests.rs`)
//! and through `wasmach run` (`tests/cli/guests.rs`, which includes this file).

#![allow(dead_code)]

/// The page size, as the patterns use it.
const PAGE: usize = wasmach::VM_PAGE_SIZE as usize;

/// FNV-1a-64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What the programs print for a checksum: FNV-1a-64 masked to 63 bits.
pub fn shown(bytes: &[u8]) -> i64 {
    (fnv1a64(bytes) & i64::MAX as u64) as i64
}

/// The producer's records 0..4096, as `guests/protocol` defines them: record `i` holds its
/// index (`u32` LE), its payload length `8 + i % 49` (`u32` LE), that many bytes of a
/// xorshift32 stream seeded with `(i + 1) * 0x9e3779b9`, then zeros up to 64 bytes.
pub fn expected_records() -> Vec<u8> {
    let mut all = Vec::with_capacity(4096 * 64);
    for i in 0..4096u32 {
        let mut r = [0u8; 64];
        let len = 8 + i % 49;
        r[0..4].copy_from_slice(&i.to_le_bytes());
        r[4..8].copy_from_slice(&len.to_le_bytes());
        let mut x = i.wrapping_add(1).wrapping_mul(0x9e37_79b9);
        for b in &mut r[8..8 + len as usize] {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        all.extend_from_slice(&r);
    }
    all
}

/// Pattern A (the snapshotter's and the component's page): byte i is i * 7 + 1.
pub fn pattern_a() -> Vec<u8> {
    (0..PAGE).map(|i| (i * 7 + 1) as u8).collect()
}

/// Pattern B (what the snapshotter leaves in the mailbox): byte i is i * 13 + 5.
pub fn pattern_b() -> Vec<u8> {
    (0..PAGE).map(|i| (i * 13 + 5) as u8).collect()
}
