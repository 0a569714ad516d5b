//! What the demo guests (`producer`, `consumer`, `snapshotter`, `guard`, `component`) agree
//! on: where things live in the mailbox task (`guests/wat/mailbox.wat`), the record format,
//! the page patterns, the checksum and the result codes.
//!
//! # The mailbox
//!
//! After its own `_start` the mailbox has pages 0 and 1 allocated (memory 2 pages).
//!
//! - Page 1 ([`MAILBOX_PAGE`], 0x10000): the page `snapshotter` and `guard` (and
//!   `component`) work on.
//! - Pages 16..21: allocated by `producer` in the mailbox (fixed, at [`HEADER_ADDRESS`]):
//!   page 16 is the [`Header`], pages 17..21 ([`RECORDS_ADDRESS`]) the [`RECORD_COUNT`]
//!   records of [`RECORD_SIZE`] bytes, [`RECORDS_PER_PAGE`] a page. The producer writes the
//!   records first and the header last, so a header with the right magic means the records
//!   are complete.
//!
//! # Results
//!
//! Every program's `_start` returns a non-negative value on success, `-(code)` when a Mach
//! call fails with `code`, and one of the negative constants below when a check fails.
#![no_std]

use wasmach_guest::KernReturn;
pub use wasmach_guest::PAGE_SIZE;

/// The name the mailbox task is registered under.
pub const MAILBOX: &str = "mailbox";
/// The mailbox's page 1, which it allocates itself.
pub const MAILBOX_PAGE: u32 = 0x1_0000;
/// Where the producer allocates the header page in the mailbox (page 16).
pub const HEADER_ADDRESS: u32 = 0x10_0000;
/// Where the records start in the mailbox (page 17).
pub const RECORDS_ADDRESS: u32 = HEADER_ADDRESS + PAGE_SIZE;
/// The header's magic: 0x57414d43, `"WAMC"` in ASCII read as a big-endian number (stored as a
/// little-endian `u32`, so the page's first bytes are `"CMAW"`).
pub const MAGIC: u32 = 0x5741_4d43;
/// Pages of records.
pub const RECORD_PAGES: u32 = 4;
/// Bytes per record.
pub const RECORD_SIZE: u32 = 64;
/// Records per page.
pub const RECORDS_PER_PAGE: u32 = PAGE_SIZE / RECORD_SIZE;
/// Records in all.
pub const RECORD_COUNT: u32 = RECORD_PAGES * RECORDS_PER_PAGE;
/// Bytes of records.
pub const RECORDS_SIZE: u32 = RECORD_PAGES * PAGE_SIZE;
/// Payload bytes a record has room for (after its index and length).
pub const PAYLOAD_SIZE: usize = RECORD_SIZE as usize - 8;

/// consumer: the header's magic (or its counts) is not the producer's.
pub const BAD_HEADER: i64 = -1000;
/// consumer: record `i`'s index field is not `i`.
pub const BAD_RECORD_INDEX: i64 = -1001;
/// consumer: the records' checksum differs from the header's.
pub const BAD_CHECKSUM: i64 = -1002;
/// snapshotter: the mailbox page does not hold pattern B after the second write.
pub const PEER_NOT_CHANGED: i64 = -1010;
/// snapshotter: the snapshot changed along with the mailbox page.
pub const SNAPSHOT_CHANGED: i64 = -1011;
/// guard: `vm_region` does not report `r--`/`r--` for the sealed page.
pub const NOT_SEALED: i64 = -1020;
/// guard: the write into the sealed page succeeded.
pub const WRITE_ALLOWED: i64 = -1021;
/// guard: raising the current protection above the lowered maximum succeeded.
pub const PROTECT_ALLOWED: i64 = -1022;
/// component: the page read back differs from the one written.
pub const READ_BACK_DIFFERS: i64 = -1030;

/// A failed run: the negative value `_start` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fail(pub i64);

/// A failed Mach call: `-(code)`.
impl From<KernReturn> for Fail {
    fn from(k: KernReturn) -> Fail {
        Fail(-i64::from(k.code()))
    }
}

/// The value `_start` returns for a run's outcome.
pub fn exit_value(outcome: Result<i64, Fail>) -> i64 {
    outcome.unwrap_or_else(|Fail(v)| v)
}

/// A 64-bit checksum as a non-negative `_start` result: its low 63 bits.
pub const fn checksum_value(checksum: u64) -> i64 {
    (checksum & i64::MAX as u64) as i64
}

/// FNV-1a, 64-bit.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a64(u64);

impl Fnv1a64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// The empty hash.
    pub const fn new() -> Fnv1a64 {
        Fnv1a64(Self::OFFSET)
    }

    /// Hashes `bytes` in.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
    }

    /// The hash so far.
    pub const fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a64 {
    fn default() -> Self {
        Fnv1a64::new()
    }
}

/// FNV-1a-64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a64::new();
    h.update(bytes);
    h.finish()
}

/// The header page's fields (all little-endian): magic `u32` at 0, record count `u32` at 4,
/// record size `u32` at 8, record pages `u32` at 12, checksum `u64` at 16 (FNV-1a-64 of all
/// record bytes). The rest of the page is zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: u32,
    /// [`RECORD_COUNT`].
    pub record_count: u32,
    /// [`RECORD_SIZE`].
    pub record_size: u32,
    /// [`RECORD_PAGES`].
    pub pages: u32,
    /// FNV-1a-64 of the record bytes.
    pub checksum: u64,
}

/// Bytes of the header's fields.
pub const HEADER_SIZE: usize = 24;

impl Header {
    /// The header for records with this checksum.
    pub const fn new(checksum: u64) -> Header {
        Header {
            magic: MAGIC,
            record_count: RECORD_COUNT,
            record_size: RECORD_SIZE,
            pages: RECORD_PAGES,
            checksum,
        }
    }

    /// Whether the magic and the counts are the ones this protocol writes.
    pub fn is_valid(&self) -> bool {
        *self == Header::new(self.checksum)
    }

    /// The encoded fields.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0; HEADER_SIZE];
        b[0..4].copy_from_slice(&self.magic.to_le_bytes());
        b[4..8].copy_from_slice(&self.record_count.to_le_bytes());
        b[8..12].copy_from_slice(&self.record_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.pages.to_le_bytes());
        b[16..24].copy_from_slice(&self.checksum.to_le_bytes());
        b
    }

    /// Decodes the fields from the start of `bytes` (`None` if shorter than
    /// [`HEADER_SIZE`]).
    pub fn from_bytes(bytes: &[u8]) -> Option<Header> {
        let b = bytes.first_chunk::<HEADER_SIZE>()?;
        Some(Header {
            magic: u32_at(b, 0),
            record_count: u32_at(b, 4),
            record_size: u32_at(b, 8),
            pages: u32_at(b, 12),
            checksum: u64::from_le_bytes([b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23]]),
        })
    }
}

/// The little-endian `u32` at `offset` of `bytes`.
pub fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes([
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ])
}

/// Record `i`: its index `i` (`u32` LE at 0), its payload length `8 + i % 49` (`u32` LE at 4,
/// so 8..=56), then that many payload bytes from a xorshift32 stream seeded with
/// `(i + 1) * 0x9e3779b9`, then zeros up to [`RECORD_SIZE`].
pub fn record(i: u32) -> [u8; RECORD_SIZE as usize] {
    let mut r = [0; RECORD_SIZE as usize];
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
    r
}

/// Page pattern A: byte `i` is `i * 7 + 1` (mod 256).
pub const fn pattern_a(i: usize) -> u8 {
    (i.wrapping_mul(7).wrapping_add(1)) as u8
}

/// Page pattern B: byte `i` is `i * 13 + 5` (mod 256).
pub const fn pattern_b(i: usize) -> u8 {
    (i.wrapping_mul(13).wrapping_add(5)) as u8
}

/// Fills `buf` with `pattern`.
pub fn fill(buf: &mut [u8], pattern: fn(usize) -> u8) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern(i);
    }
}

/// Whether `buf` holds `pattern`.
pub fn holds(buf: &[u8], pattern: fn(usize) -> u8) -> bool {
    buf.iter().enumerate().all(|(i, &b)| b == pattern(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn header_round_trips() {
        let h = Header::new(0x0123_4567_89ab_cdef);
        assert!(h.is_valid());
        assert_eq!(Header::from_bytes(&h.to_bytes()), Some(h));
        assert_eq!(Header::from_bytes(&[0; 8]), None);
        assert_eq!(&h.to_bytes()[0..4], b"CMAW");
    }

    #[test]
    fn records() {
        assert_eq!(RECORD_COUNT, 4096);
        for i in [0, 1, 48, 49, 4095] {
            let r = record(i);
            assert_eq!(u32_at(&r, 0), i);
            let len = u32_at(&r, 4) as usize;
            assert!((8..=PAYLOAD_SIZE).contains(&len));
            assert!(r[8 + len..].iter().all(|&b| b == 0));
        }
        assert_ne!(record(1)[8..], record(2)[8..]);
    }

    #[test]
    fn values() {
        assert_eq!(checksum_value(u64::MAX), i64::MAX);
        assert_eq!(exit_value(Err(KernReturn::ProtectionFailure.into())), -2);
        assert_eq!(exit_value(Ok(7)), 7);
    }
}
