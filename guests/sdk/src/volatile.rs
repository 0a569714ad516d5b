//! Copies between Rust slices and memory that Rust does not own (the bytes of a
//! [`Region`](crate::Region)), with volatile accesses: the compiler performs every access,
//! never reuses a value loaded before and never assumes the bytes keep their value, which is
//! how Rust accesses memory that an agent outside the program changes (`read_volatile`'s
//! docs: "memory that is outside of any Rust allocation", as memory-mapped I/O is).
//!
//! The pages are accessed a `u64` at a time where the address is aligned (a whole page in
//! 8192 accesses), a byte at a time at unaligned ends. A writer racing with a copy may leave
//! it with a mix of old and new words; each word is one access. Addresses are computed with
//! `wrapping_add`: the pages are no Rust allocation, so `add`'s in-bounds rule does not
//! describe them.

/// The widest access.
type Word = u64;
/// Its size.
const WORD: usize = size_of::<Word>();

/// How many bytes from `address` to the next word boundary, at most `len`.
fn head_len(address: usize, len: usize) -> usize {
    (address.wrapping_neg() % WORD).min(len)
}

/// Copies `dest.len()` bytes from `src` into `dest`.
///
/// # Safety
/// `[src, src + dest.len())` must be memory of the caller's address space that no Rust
/// reference covers (outside any Rust allocation), readable or trapping, and `src` must not
/// be null. `dest` is an ordinary slice, so it does not overlap that range.
pub(crate) unsafe fn copy_from(src: *const u8, dest: &mut [u8]) {
    let (head, rest) = dest.split_at_mut(head_len(src.addr(), dest.len()));
    let (words, tail) = rest.as_chunks_mut::<WORD>();
    for (i, b) in head.iter_mut().enumerate() {
        // SAFETY: `src + i` is inside the range the caller vouched for.
        *b = unsafe { src.wrapping_add(i).read_volatile() };
    }
    let src = src.wrapping_add(head.len());
    for (i, w) in words.iter_mut().enumerate() {
        // SAFETY: inside the range, and `src` is now word-aligned (`head_len`), so each
        // `src + i * WORD` is an aligned `u64`.
        let word = unsafe { src.wrapping_add(i * WORD).cast::<Word>().read_volatile() };
        *w = word.to_ne_bytes();
    }
    let src = src.wrapping_add(words.len() * WORD);
    for (i, b) in tail.iter_mut().enumerate() {
        // SAFETY: inside the range.
        *b = unsafe { src.wrapping_add(i).read_volatile() };
    }
}

/// Copies `data` to `[dst, dst + data.len())`.
///
/// # Safety
/// `[dst, dst + data.len())` must be memory of the caller's address space that no Rust
/// reference covers (outside any Rust allocation), writable or trapping, and `dst` must not
/// be null. `data` is an ordinary slice, so it does not overlap that range.
pub(crate) unsafe fn copy_to(dst: *mut u8, data: &[u8]) {
    let (head, rest) = data.split_at(head_len(dst.addr(), data.len()));
    let (words, tail) = rest.as_chunks::<WORD>();
    for (i, &b) in head.iter().enumerate() {
        // SAFETY: `dst + i` is inside the range the caller vouched for.
        unsafe { dst.wrapping_add(i).write_volatile(b) };
    }
    let dst = dst.wrapping_add(head.len());
    for (i, w) in words.iter().enumerate() {
        // SAFETY: inside the range; `dst` is now word-aligned (`head_len`).
        unsafe {
            dst.wrapping_add(i * WORD)
                .cast::<Word>()
                .write_volatile(Word::from_ne_bytes(*w))
        };
    }
    let dst = dst.wrapping_add(words.len() * WORD);
    for (i, &b) in tail.iter().enumerate() {
        // SAFETY: inside the range.
        unsafe { dst.wrapping_add(i).write_volatile(b) };
    }
}

/// Sets `[dst, dst + len)` to `byte`.
///
/// # Safety
/// As for [`copy_to`], with `len` bytes.
pub(crate) unsafe fn fill(dst: *mut u8, len: usize, byte: u8) {
    let head = head_len(dst.addr(), len);
    let words = (len - head) / WORD;
    let tail = len - head - words * WORD;
    for i in 0..head {
        // SAFETY: `dst + i` is inside the range the caller vouched for.
        unsafe { dst.wrapping_add(i).write_volatile(byte) };
    }
    let dst = dst.wrapping_add(head);
    let word = Word::from_ne_bytes([byte; WORD]);
    for i in 0..words {
        // SAFETY: inside the range; `dst` is now word-aligned (`head_len`).
        unsafe {
            dst.wrapping_add(i * WORD)
                .cast::<Word>()
                .write_volatile(word)
        };
    }
    let dst = dst.wrapping_add(words * WORD);
    for i in 0..tail {
        // SAFETY: inside the range.
        unsafe { dst.wrapping_add(i).write_volatile(byte) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A word-aligned test buffer.
    #[repr(C, align(8))]
    struct Buf([u8; 48]);

    impl Buf {
        fn counting() -> Buf {
            Buf(core::array::from_fn(|i| i as u8 + 1))
        }
    }

    #[test]
    fn head_lengths() {
        assert_eq!(head_len(0x1000, 100), 0);
        assert_eq!(head_len(0x1001, 100), 7);
        assert_eq!(head_len(0x1007, 100), 1);
        assert_eq!(head_len(0x1003, 2), 2);
        assert_eq!(head_len(usize::MAX, 100), 1);
    }

    #[test]
    fn copies_from_every_offset_and_length() {
        let mut src = Buf::counting();
        let base = src.0.as_mut_ptr();
        for offset in 0..=WORD + 1 {
            for len in 0..=src.0.len() - offset {
                let mut out = [0u8; 48];
                // SAFETY: inside `src`, which no reference covers while `base` is used.
                unsafe { copy_from(base.wrapping_add(offset), &mut out[..len]) };
                let expected: [u8; 48] =
                    core::array::from_fn(|i| if i < len { (offset + i) as u8 + 1 } else { 0 });
                assert_eq!(out, expected, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn copies_to_every_offset_and_length() {
        let data: [u8; 48] = core::array::from_fn(|i| 200 - i as u8);
        for offset in 0..=WORD + 1 {
            for len in 0..=data.len() - offset {
                let mut dst = Buf([0; 48]);
                let base = dst.0.as_mut_ptr();
                // SAFETY: inside `dst`, which no reference covers while `base` is used.
                unsafe { copy_to(base.wrapping_add(offset), &data[..len]) };
                let expected: [u8; 48] = core::array::from_fn(|i| {
                    if (offset..offset + len).contains(&i) {
                        data[i - offset]
                    } else {
                        0
                    }
                });
                assert_eq!(dst.0, expected, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn fills_every_offset_and_length() {
        for offset in 0..=WORD + 1 {
            for len in 0..=48 - offset {
                let mut dst = Buf::counting();
                let base = dst.0.as_mut_ptr();
                // SAFETY: inside `dst`, which no reference covers while `base` is used.
                unsafe { fill(base.wrapping_add(offset), len, 0xa5) };
                let expected: [u8; 48] = core::array::from_fn(|i| {
                    if (offset..offset + len).contains(&i) {
                        0xa5
                    } else {
                        i as u8 + 1
                    }
                });
                assert_eq!(dst.0, expected, "offset {offset} len {len}");
            }
        }
    }
}
