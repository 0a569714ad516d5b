//! docs/spec.md §3–4 through the Rust host API, both doors: the host as the caller (`task.vm_*`)
//! and a task as the caller acting on another task through a port name (`a.mach().vm_*`).

use std::error::Error;
use std::time::{Duration, Instant};

use wasmach::{KernReturn, Region, Runtime, Task, TaskOptions, VmProt};

use crate::common::*;

const P: u32 = PAGE;
const P64: u64 = PAGE as u64;
/// The first byte of the last page of a 4 GiB address space.
const LAST_PAGE: u32 = u32::MAX - PAGE + 1;

const NONE: VmProt = VmProt::NONE;
const R: VmProt = VmProt::READ;
const W: VmProt = VmProt::WRITE;
const X: VmProt = VmProt::EXECUTE;
const RW: VmProt = VmProt::DEFAULT;
const ALL: VmProt = VmProt::ALL;

use KernReturn::{
    InvalidAddress as IA, InvalidArgument as IARG, NoSpace, ProtectionFailure as PF,
    ResourceShortage, SendInvalidMemory,
};

/// A task whose module is only the memory declaration `memory`, e.g. `(memory 1 4)`.
fn spawn(rt: &Runtime, memory: &str) -> Task {
    rt.spawn_bytes(format!("(module {memory})")).expect("spawn")
}

/// A task with a memory quota of `quota_pages` pages.
fn spawn_quota(rt: &Runtime, memory: &str, quota_pages: u64) -> Task {
    let module = rt.compile(format!("(module {memory})")).expect("compile");
    rt.spawn_with(
        &module,
        &TaskOptions::default().max_memory(quota_pages * P64),
    )
    .expect("spawn with quota")
}

/// The region of `pages` pages from page `first` with `cur` and `max`.
fn region(first: u32, pages: u32, cur: VmProt, max: VmProt) -> Region {
    Region {
        address: first * P,
        size: u64::from(pages) * P64,
        protection: cur,
        max_protection: max,
    }
}

/// A freshly allocated run: `cur = DEFAULT`, `max = ALL`.
fn rw(first: u32, pages: u32) -> Region {
    region(first, pages, RW, ALL)
}

/// Writes a page of `pattern(seed)` at page `page` through the host and returns it.
fn fill(task: &Task, page: u32, seed: u8) -> Vec<u8> {
    let data = pattern(seed, P as usize);
    task.vm_write(page * P, &data).expect("fill");
    data
}

fn zeros(pages: u32) -> Vec<u8> {
    vec![0; (pages * P) as usize]
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ---------------------------------------------------------------------------------------
// vm_allocate, the host as the caller
// ---------------------------------------------------------------------------------------

/// Anywhere allocation is first-fit from page 0, sizes round up to pages, the address
/// argument is ignored, and holes too small are skipped.
#[test]
fn host_allocate_anywhere_is_first_fit_from_page_zero() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 1)");
    assert_eq!(t.vm_allocate(0, P, true), Ok(P));
    assert_eq!(t.vm_allocate(4 * P, P, false), Ok(4 * P));
    // pages 2 and 3 fit exactly between page 1 and page 4
    assert_eq!(t.vm_allocate(0, 2 * P, true), Ok(2 * P));
    // one byte takes a whole page: the next free one is 5
    assert_eq!(t.vm_allocate(0, 1, true), Ok(5 * P));
    t.vm_deallocate(P, P).unwrap();
    // a one-page hole at page 1 is too small for two pages
    assert_eq!(t.vm_allocate(0, 2 * P, true), Ok(6 * P));
    // the address is ignored when anywhere is set: the hole at page 1 is found
    assert_eq!(t.vm_allocate(9 * P + 123, P, true), Ok(P));
    assert_eq!(t.regions(), vec![rw(0, 8)]);
    assert_eq!(t.memory_pages(), 8);
}

/// Fixed allocation rounds the address down and the size up, each on its own: at A+1 with
/// one page, the range is [A, A+page), not two pages.
#[test]
fn host_allocate_fixed_rounds_address_down_and_size_up_separately() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 1)");
    assert_eq!(t.vm_allocate(3 * P + 1, P, false), Ok(3 * P));
    assert_eq!(t.vm_allocate(6 * P - 1, 2, false), Ok(5 * P));
    assert_eq!(t.vm_allocate(7 * P, P + 1, false), Ok(7 * P));
    assert_eq!(
        t.regions(),
        vec![rw(0, 1), rw(3, 1), rw(5, 1), rw(7, 2)],
        "page 4 and page 6 must stay unallocated"
    );
    assert_eq!(t.vm_read(4 * P, P), Err(IA));
    assert_eq!(t.vm_read(6 * P, P), Err(IA));
}

/// The raw snapshot the "changes nothing" checks compare sees what the host doors cannot:
/// the bytes of a no-access page (`PROT_NONE` in the mapping, with guest protection on),
/// every page's protections, and a byte a guest stored into a page no door may read.
#[test]
fn the_raw_snapshot_sees_unreadable_pages_and_every_protection() {
    use wasmach::testing::PageState;
    let rt = runtime();
    let t = spawn(&rt, "(memory 3 4)");
    assert!(t.guest_protection());
    let secret = fill(&t, 1, 42);
    t.vm_protect(P, P, false, NONE).unwrap();
    t.vm_deallocate(2 * P, P).unwrap();
    assert_eq!(t.vm_read(P, P), Err(PF), "no host door reads page 1");
    let raw = raw_snapshot(&t);
    assert_eq!((raw.pages, raw.limit, raw.dead), (3, 4, false));
    let state = |protection, max_protection| {
        Some(PageState {
            protection,
            max_protection,
        })
    };
    assert_eq!(
        raw.entries,
        vec![state(RW, ALL), state(NONE, ALL), None, None]
    );
    assert_eq!(raw.bytes.len(), 3);
    assert_eq!(raw.bytes[1].as_deref(), Some(&secret[..]));
    // A protection change alone shows (the bytes stay).
    t.vm_protect(P, P, true, NONE).unwrap();
    let sealed = raw_snapshot(&t);
    assert_ne!(sealed, raw);
    assert_eq!(sealed.entries[1], state(NONE, NONE));
    assert_eq!(sealed.bytes, raw.bytes);

    // With guest protection off, a guest's store into the no-access page changes no
    // region and nothing a host door can read, but it shows in the raw snapshot.
    let rt =
        Runtime::with_options(wasmach::RuntimeOptions::default().guest_protection(false)).unwrap();
    let t = rt
        .spawn_bytes(
            r#"(module (memory 2)
                 (func (export "store") (param i32 i32) (i32.store (local.get 0) (local.get 1))))"#,
        )
        .unwrap();
    t.vm_protect(P, P, false, NONE).unwrap();
    let before = raw_snapshot(&t);
    let readable_before = snapshot(&t);
    t.call::<(u32, u32), ()>("store", (P + 8, 0x5EC2E7))
        .unwrap();
    assert_eq!(
        snapshot(&t),
        readable_before,
        "the readable pages did not change"
    );
    let after = raw_snapshot(&t);
    assert_ne!(after, before);
    assert_eq!(
        after.bytes[1].as_ref().map(|page| page[8..12].to_vec()),
        Some(0x5EC2E7u32.to_le_bytes().to_vec())
    );
}

/// A fixed range holding any allocated page is KERN_NO_SPACE, and the free pages of that
/// range stay unallocated.
#[test]
fn host_allocate_fixed_over_allocated_page_is_no_space_and_changes_nothing() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 1)");
    assert_eq!(t.vm_allocate(3 * P, P, false), Ok(3 * P));
    fill(&t, 0, 1);
    fill(&t, 3, 9);
    let before = raw_snapshot(&t);
    assert_eq!(t.vm_allocate(P, 3 * P, false), Err(NoSpace)); // last page taken
    assert_eq!(t.vm_allocate(0, P, false), Err(NoSpace)); // the initial page
    assert_eq!(t.vm_allocate(3 * P + 5, 1, false), Err(NoSpace)); // rounds onto page 3
    assert_eq!(t.vm_allocate(2 * P, 10 * P, false), Err(NoSpace)); // grows nothing
    assert_eq!(raw_snapshot(&t), before);
}

/// size 0 succeeds right away with address 0, whatever the address, alignment or map.
#[test]
fn host_allocate_size_zero_succeeds_and_changes_nothing() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 1 4)");
    fill(&t, 0, 3);
    let before = raw_snapshot(&t);
    for (address, anywhere) in [
        (0, true),
        (0, false), // page 0 is allocated
        (P + 3, false),
        (8 * P, false), // past the declared maximum
        (u32::MAX, false),
        (u32::MAX, true),
    ] {
        assert_eq!(
            t.vm_allocate(address, 0, anywhere),
            Ok(0),
            "vm_allocate({address:#x}, 0, {anywhere})"
        );
    }
    assert_eq!(raw_snapshot(&t), before);
}

/// `(memory 1 4)`: the address space is 4 pages; page 4 is an address error and an
/// anywhere allocation that cannot fit is a space error.
#[test]
fn host_allocate_respects_the_declared_memory_maximum() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 1 4)");
    let before = raw_snapshot(&t);
    assert_eq!(t.vm_allocate(4 * P, P, false), Err(IA));
    assert_eq!(t.vm_allocate(3 * P, 2 * P, false), Err(IA));
    assert_eq!(t.vm_allocate(100 * P, P, false), Err(IA));
    assert_eq!(t.vm_allocate(0, 4 * P, true), Err(NoSpace));
    assert_eq!(t.vm_allocate(0, 5 * P, true), Err(NoSpace));
    assert_eq!(raw_snapshot(&t), before);

    assert_eq!(t.vm_allocate(3 * P, P, false), Ok(3 * P));
    assert_eq!(t.vm_allocate(0, 3 * P, true), Err(NoSpace)); // pages 1, 2 only
    assert_eq!(t.vm_allocate(0, 2 * P, true), Ok(P));
    assert_eq!(t.memory_pages(), 4);
    assert_eq!(t.vm_allocate(0, 1, true), Err(NoSpace));
    assert_eq!(t.regions(), vec![rw(0, 4)]);
}

/// A fixed range ending beyond 4 GiB is KERN_INVALID_ADDRESS and changes nothing; an
/// anywhere request larger than the free space is KERN_NO_SPACE.
#[test]
fn host_allocate_past_4gib_is_invalid_address() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 1)");
    let before = raw_snapshot(&t);
    assert_eq!(t.vm_allocate(LAST_PAGE, 2 * P, false), Err(IA));
    assert_eq!(t.vm_allocate(LAST_PAGE + 1, 2 * P, false), Err(IA));
    assert_eq!(t.vm_allocate(u32::MAX, u32::MAX, false), Err(IA));
    // 65536 pages cannot fit beside page 0
    assert_eq!(t.vm_allocate(0, u32::MAX, true), Err(NoSpace));
    assert_eq!(raw_snapshot(&t), before);
}

/// The very last page of a 4 GiB space can be allocated (also at LAST_PAGE + 1 with one
/// page: the address rounds down, the size up, each on its own), used and reported.
#[test]
fn host_allocate_the_last_page_of_4gib() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 1)");
    assert_eq!(t.vm_allocate(LAST_PAGE + 1, P, false), Ok(LAST_PAGE));
    assert_eq!(t.memory_pages(), 65536);
    assert_eq!(t.regions(), vec![rw(0, 1), rw(65535, 1)]);
    let data = fill(&t, 65535, 7);
    assert_eq!(t.vm_read(LAST_PAGE, P), Ok(data));
    assert_eq!(t.vm_read(LAST_PAGE, 2 * P), Err(IA));
    assert_eq!(t.vm_region(P), Ok(rw(65535, 1)));
    t.vm_deallocate(LAST_PAGE, P).unwrap();
    assert_eq!(t.regions(), vec![rw(0, 1)]);
}

/// Allocating beyond the current memory size grows the memory; the pages skipped over stay
/// unallocated.
#[test]
fn host_allocate_beyond_memory_size_grows_and_skipped_pages_stay_unallocated() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 1)");
    assert_eq!(t.memory_pages(), 1);
    assert_eq!(t.vm_allocate(5 * P, P, false), Ok(5 * P));
    assert_eq!(t.memory_pages(), 6);
    assert_eq!(t.regions(), vec![rw(0, 1), rw(5, 1)]);
    assert_eq!(t.vm_read(5 * P, P), Ok(zeros(1)));
    assert_eq!(t.vm_read(2 * P, P), Err(IA));
    assert_eq!(t.vm_write(3 * P, &zeros(1)), Err(IA));
    assert_eq!(t.vm_region(P), Ok(rw(5, 1)));
    // first fit then uses the skipped pages, without growing
    assert_eq!(t.vm_allocate(0, 4 * P, true), Ok(P));
    assert_eq!(t.memory_pages(), 6);
    assert_eq!(t.vm_read(P, 4 * P), Ok(zeros(4)));
}

/// Newly allocated pages read as zero, also when they were written and deallocated before,
/// through either door and either form of allocation.
#[test]
fn host_allocate_after_deallocate_reads_zero() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 3)");
    let p0 = fill(&t, 0, 1);
    fill(&t, 1, 2);
    let p2 = fill(&t, 2, 3);
    t.vm_deallocate(P, P).unwrap();
    assert_eq!(t.regions(), vec![rw(0, 1), rw(2, 1)]);
    assert_eq!(t.vm_read(P, P), Err(IA));
    assert_eq!(t.vm_allocate(P, P, false), Ok(P));
    assert_eq!(t.vm_read(0, 3 * P), Ok(cat(&[&p0, &zeros(1), &p2])));

    fill(&t, 2, 4);
    t.vm_deallocate(2 * P, P).unwrap();
    assert_eq!(t.vm_allocate(0, P, true), Ok(2 * P));
    assert_eq!(t.vm_read(2 * P, P), Ok(zeros(1)));

    // the cross-task door
    let a = spawn(&rt, "(memory 1)");
    let pt = a.insert_port(&t);
    fill(&t, 1, 5);
    a.mach().vm_deallocate(pt, P, P).unwrap();
    assert_eq!(a.mach().vm_allocate(pt, 0, P, true), Ok(P));
    assert_eq!(t.vm_read(P, P), Ok(zeros(1)));
}

/// A guest's own store into an unallocated page (only wasm bounds check it, docs/spec.md §5) does
/// not survive into a later allocation of that page.
#[test]
fn host_allocate_zero_fills_over_guest_stores_into_unallocated_pages() {
    // Without guest protection a guest can store into a page it freed (docs/spec.md §5 as
    // written); allocating the page again still hands it out zeroed. (With protection, the
    // store traps: `protection.rs`.)
    let rt =
        wasmach::Runtime::with_options(wasmach::RuntimeOptions::default().guest_protection(false))
            .unwrap();
    let t = rt
        .spawn_bytes(
            "(module (memory 2)
               (func (export \"poke\") (param i32 i32) (i32.store (local.get 0) (local.get 1))))",
        )
        .unwrap();
    assert!(!t.guest_protection());
    t.vm_deallocate(P, P).unwrap();
    t.call::<(i32, i32), ()>("poke", ((P + 8) as i32, -1))
        .unwrap();
    assert_eq!(t.vm_allocate(P, P, false), Ok(P));
    assert_eq!(t.vm_read(P, P), Ok(zeros(1)));
}

// ---------------------------------------------------------------------------------------
// vm_deallocate
// ---------------------------------------------------------------------------------------

/// The address rounds down and the end up; unallocated pages in the range are skipped.
#[test]
fn host_deallocate_rounds_out_and_skips_unallocated_pages() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 4)");
    let p0 = fill(&t, 0, 1);
    fill(&t, 1, 2);
    fill(&t, 2, 3);
    let p3 = fill(&t, 3, 4);
    assert_eq!(t.vm_deallocate(P + 1, 1), Ok(()));
    assert_eq!(t.regions(), vec![rw(0, 1), rw(2, 2)]);
    // [2P-1, 2P+1) covers pages 1 (already free) and 2
    assert_eq!(t.vm_deallocate(2 * P - 1, 2), Ok(()));
    assert_eq!(t.regions(), vec![rw(0, 1), rw(3, 1)]);
    assert_eq!(t.vm_read(0, P), Ok(p0));
    assert_eq!(t.vm_read(3 * P, P), Ok(p3));
    assert_eq!(
        t.memory_pages(),
        4,
        "deallocation does not shrink the memory"
    );
}

/// Deallocating where nothing is allocated succeeds, also past the declared maximum and up
/// to exactly 4 GiB.
#[test]
fn host_deallocate_of_nothing_succeeds() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 1 4)");
    fill(&t, 0, 1);
    let before = raw_snapshot(&t);
    assert_eq!(t.vm_deallocate(2 * P, 100 * P), Ok(()));
    assert_eq!(t.vm_deallocate(LAST_PAGE, P), Ok(()));
    assert_eq!(t.vm_deallocate(5 * P + 3, 7), Ok(()));
    assert_eq!(raw_snapshot(&t), before);
}

/// A range wrapping past 4 GiB is KERN_INVALID_ARGUMENT (not INVALID_ADDRESS) and frees
/// nothing, even its allocated pages; size 0 succeeds for any address.
#[test]
fn host_deallocate_past_4gib_is_invalid_argument_and_size_zero_succeeds() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 2)");
    fill(&t, 0, 1);
    fill(&t, 1, 2);
    let before = raw_snapshot(&t);
    assert_eq!(t.vm_deallocate(LAST_PAGE, 2 * P), Err(IARG));
    assert_eq!(t.vm_deallocate(u32::MAX, 2), Err(IARG));
    assert_eq!(t.vm_deallocate(P, u32::MAX), Err(IARG)); // covers the allocated page 1
    assert_eq!(raw_snapshot(&t), before);
    for address in [0, P + 1, u32::MAX] {
        assert_eq!(t.vm_deallocate(address, 0), Ok(()), "{address:#x}");
    }
    assert_eq!(raw_snapshot(&t), before);
}

// ---------------------------------------------------------------------------------------
// vm_protect
// ---------------------------------------------------------------------------------------

/// `set_maximum == false` sets `cur` to anything within `max`; regions split and merge
/// with it, and the new protection governs reads and writes.
#[test]
fn host_protect_sets_current_protection() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 3)");
    fill(&t, 0, 1);
    let p1 = fill(&t, 1, 2);
    fill(&t, 2, 3);
    assert_eq!(t.vm_protect(P, P, false, R), Ok(()));
    assert_eq!(t.regions(), vec![rw(0, 1), region(1, 1, R, ALL), rw(2, 1)]);
    assert_eq!(t.vm_read(P, P), Ok(p1.clone()));
    assert_eq!(t.vm_write(P, &zeros(1)), Err(PF));

    assert_eq!(t.vm_protect(P, P, false, RW), Ok(()));
    assert_eq!(t.regions(), vec![rw(0, 3)], "equal pages merge again");

    assert_eq!(t.vm_protect(P, P, false, ALL), Ok(()));
    assert_eq!(t.vm_region(P), Ok(region(1, 1, ALL, ALL)));

    assert_eq!(t.vm_protect(P, P, false, W), Ok(()));
    assert_eq!(t.vm_read(P, P), Err(PF));
    assert_eq!(t.vm_write(P, &zeros(1)), Ok(()));

    assert_eq!(t.vm_protect(P, P, false, NONE), Ok(()));
    assert_eq!(t.vm_region(P), Ok(region(1, 1, NONE, ALL)));
    assert_eq!(t.vm_read(P, P), Err(PF));
    assert_eq!(t.vm_write(P, &zeros(1)), Err(PF));
    assert_eq!(t.vm_protect(P, P, false, R), Ok(()));
    assert_eq!(t.vm_read(P, P), Ok(zeros(1)));
}

/// The address rounds down and the end up.
#[test]
fn host_protect_rounds_address_down_and_end_up() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 4)");
    assert_eq!(t.vm_protect(P + 1, 1, false, R), Ok(()));
    assert_eq!(t.regions(), vec![rw(0, 1), region(1, 1, R, ALL), rw(2, 2)]);
    // [3P-1, 3P+1) covers pages 2 and 3
    assert_eq!(t.vm_protect(3 * P - 1, 2, false, NONE), Ok(()));
    assert_eq!(
        t.regions(),
        vec![rw(0, 1), region(1, 1, R, ALL), region(2, 2, NONE, ALL)]
    );
}

/// `set_maximum == true` sets `max` and masks `cur` with it; a maximum can only be lowered
/// and `cur` never raised above it (KERN_PROTECTION_FAILURE, nothing changed).
#[test]
fn host_protect_set_maximum_lowers_max_and_masks_cur() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 2)");
    assert_eq!(t.vm_protect(0, P, true, R), Ok(()));
    assert_eq!(t.vm_region(0), Ok(region(0, 1, R, R)));
    for (set_max, prot) in [
        (false, RW),
        (false, W),
        (false, ALL),
        (true, RW),
        (true, ALL),
    ] {
        assert_eq!(
            t.vm_protect(0, P, set_max, prot),
            Err(PF),
            "set_max {set_max} {prot}"
        );
        assert_eq!(t.vm_region(0), Ok(region(0, 1, R, R)));
    }
    assert_eq!(t.vm_protect(0, P, false, NONE), Ok(()));
    assert_eq!(t.vm_region(0), Ok(region(0, 1, NONE, R)));
    assert_eq!(t.vm_protect(0, P, false, R), Ok(()));
    assert_eq!(t.vm_region(0), Ok(region(0, 1, R, R)));

    // page 1: cur ALL, then lower the maximum step by step
    assert_eq!(t.vm_protect(P, P, false, ALL), Ok(()));
    assert_eq!(t.vm_protect(P, P, true, R | X), Ok(()));
    assert_eq!(t.vm_region(P), Ok(region(1, 1, R | X, R | X)));
    assert_eq!(t.vm_protect(P, P, true, X), Ok(()));
    assert_eq!(t.vm_region(P), Ok(region(1, 1, X, X)));
    assert_eq!(t.vm_protect(P, P, true, NONE), Ok(()));
    assert_eq!(t.vm_region(P), Ok(region(1, 1, NONE, NONE)));
    assert_eq!(t.vm_protect(P, P, false, R), Err(PF));
    assert_eq!(t.vm_protect(P, P, false, NONE), Ok(()));
    assert_eq!(t.vm_protect(P, P, true, NONE), Ok(()));
    assert_eq!(t.vm_region(P), Ok(region(1, 1, NONE, NONE)));
}

/// A masked `cur` stays masked: `cur = DEFAULT`, max lowered to EXECUTE leaves cur NONE.
#[test]
fn host_protect_set_maximum_disjoint_from_cur_leaves_cur_none() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 1)");
    assert_eq!(t.vm_protect(0, P, true, X), Ok(()));
    assert_eq!(t.vm_region(0), Ok(region(0, 1, NONE, X)));
    assert_eq!(t.vm_protect(0, P, false, X), Ok(()));
    assert_eq!(t.vm_region(0), Ok(region(0, 1, X, X)));
    assert_eq!(t.vm_read(0, P), Err(PF));
}

/// vm_protect checks the whole range for unallocated pages before any `max`: a maximum
/// failure at page 0 loses to an unallocated page 1.
#[test]
fn host_protect_checks_unallocated_pages_before_maximum() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 1)");
    assert_eq!(t.vm_allocate(2 * P, P, false), Ok(2 * P));
    assert_eq!(t.vm_protect(0, P, true, R), Ok(()));
    let before = raw_snapshot(&t);
    assert_eq!(t.vm_protect(0, 3 * P, false, RW), Err(IA));
    assert_eq!(t.vm_protect(0, 3 * P, true, R), Err(IA));
    assert_eq!(t.vm_protect(0, 3 * P, false, NONE), Err(IA));
    assert_eq!(raw_snapshot(&t), before);
}

/// A maximum failure on the last page of a range changes none of the earlier pages.
#[test]
fn host_protect_failure_changes_no_page_of_the_range() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 3)");
    assert_eq!(t.vm_protect(2 * P, P, true, R), Ok(()));
    let before = raw_snapshot(&t);
    assert_eq!(t.regions(), vec![rw(0, 2), region(2, 1, R, R)]);
    assert_eq!(t.vm_protect(0, 3 * P, false, ALL), Err(PF));
    assert_eq!(t.vm_protect(0, 3 * P, true, W), Err(PF));
    assert_eq!(t.vm_protect(0, 3 * P, false, W), Err(PF));
    assert_eq!(raw_snapshot(&t), before);
}

/// Wrap past 4 GiB is KERN_INVALID_ARGUMENT; a range past the declared maximum (inside
/// 4 GiB) is KERN_INVALID_ADDRESS; size 0 succeeds anywhere.
#[test]
fn host_protect_range_errors_and_size_zero() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 4 4)");
    let before = raw_snapshot(&t);
    assert_eq!(t.vm_protect(LAST_PAGE, 2 * P, false, R), Err(IARG));
    assert_eq!(t.vm_protect(u32::MAX, 2, true, NONE), Err(IARG));
    assert_eq!(t.vm_protect(P, u32::MAX, false, R), Err(IARG));
    // pages 3 and 4: page 4 lies past the address space
    assert_eq!(t.vm_protect(3 * P, 2 * P, false, R), Err(IA));
    assert_eq!(t.vm_protect(0, u32::MAX, true, R), Err(IA));
    assert_eq!(raw_snapshot(&t), before);
    for address in [0, 5 * P + 1, u32::MAX] {
        assert_eq!(t.vm_protect(address, 0, true, NONE), Ok(()), "{address:#x}");
    }
    assert_eq!(raw_snapshot(&t), before);
}

/// Raw protection bits outside ALL are KERN_INVALID_ARGUMENT, checked right after the port
/// and before size 0, alignment, wrap and the range; bits 0..=7 are all accepted.
#[test]
fn mach_protect_bits_outside_all_are_invalid_argument() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 1)");
    let b = spawn(&rt, "(memory 2)");
    let pb = a.insert_port(&b);
    let before_a = raw_snapshot(&a);
    let before_b = raw_snapshot(&b);
    for bits in [8, 0x10, 7 | 8, 0x8000_0000, u32::MAX] {
        for set_max in [false, true] {
            let m = a.mach();
            assert_eq!(
                m.vm_protect(pb, 0, P, set_max, bits),
                Err(IARG),
                "{bits:#x}"
            );
            assert_eq!(m.vm_protect(pb, 0, 0, set_max, bits), Err(IARG), "size 0");
            assert_eq!(m.vm_protect(pb, 5 * P, P, set_max, bits), Err(IARG));
            assert_eq!(m.vm_protect(pb, LAST_PAGE, 2 * P, set_max, bits), Err(IARG));
        }
    }
    assert_eq!(
        a.mach().vm_protect(wasmach::PortName::NULL, 0, P, false, 8),
        Err(KernReturn::SendInvalidDest),
        "the port is checked before the bits"
    );
    assert_eq!(raw_snapshot(&a), before_a);
    assert_eq!(raw_snapshot(&b), before_b);
    for bits in 0..=7 {
        assert_eq!(a.mach().vm_protect(pb, P, P, false, bits), Ok(()));
        let prot = VmProt::from_bits(bits).unwrap();
        let r = b.vm_region(P).unwrap();
        assert_eq!((r.protection, r.max_protection), (prot, ALL), "{bits}");
    }
    assert_eq!(a.mach().vm_protect(pb, P, 0, true, 5), Ok(()));
    assert_eq!(b.vm_region(P), Ok(region(1, 1, ALL, ALL)));
}

// ---------------------------------------------------------------------------------------
// vm_region and regions()
// ---------------------------------------------------------------------------------------

/// vm_region reports the region containing the address, else the first above it, else
/// KERN_NO_SPACE.
#[test]
fn host_region_containing_next_or_no_space() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 2)");
    assert_eq!(t.vm_allocate(4 * P, 2 * P, false), Ok(4 * P));
    assert_eq!(t.vm_protect(5 * P, P, false, R), Ok(()));
    assert_eq!(t.vm_region(0), Ok(rw(0, 2)));
    assert_eq!(t.vm_region(P + 5), Ok(rw(0, 2)));
    assert_eq!(t.vm_region(2 * P), Ok(rw(4, 1)));
    assert_eq!(t.vm_region(4 * P - 1), Ok(rw(4, 1)));
    assert_eq!(t.vm_region(5 * P + 77), Ok(region(5, 1, R, ALL)));
    assert_eq!(t.vm_region(6 * P), Err(NoSpace));
    assert_eq!(t.vm_region(u32::MAX), Err(NoSpace));

    let empty = spawn(&rt, "(memory 2)");
    empty.vm_deallocate(0, 2 * P).unwrap();
    assert_eq!(empty.vm_region(0), Err(NoSpace));
    assert_eq!(empty.regions(), vec![]);
    let zero = spawn(&rt, "(memory 0)");
    assert_eq!(zero.vm_region(0), Err(NoSpace));
}

/// A fully allocated 4 GiB space is one region of exactly 4 GiB (why `Region::size` is a
/// `u64`), through both doors; nothing is left for an anywhere allocation.
#[test]
fn a_full_4gib_space_is_one_4gib_region() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 1)");
    let a = spawn(&rt, "(memory 1)");
    let pt = a.insert_port(&t);
    assert_eq!(t.vm_allocate(P, LAST_PAGE, false), Ok(P));
    assert_eq!(t.memory_pages(), 65536);
    let whole = rw(0, 65536);
    assert_eq!(whole.size, 1 << 32);
    assert_eq!(t.regions(), vec![whole]);
    assert_eq!(t.vm_region(LAST_PAGE + 17), Ok(whole));
    assert_eq!(a.mach().vm_region(pt, 0), Ok(whole));
    assert_eq!(t.vm_allocate(0, 1, true), Err(NoSpace));
    assert_eq!(t.vm_allocate(LAST_PAGE, P, false), Err(NoSpace));
    t.vm_protect(LAST_PAGE, P, false, R).unwrap();
    assert_eq!(t.regions(), vec![rw(0, 65535), region(65535, 1, R, ALL)]);
    t.vm_deallocate(P, u32::MAX - P).unwrap();
    assert_eq!(t.regions(), vec![rw(0, 1)]);
}

/// `regions()` lists exactly the regions a vm_region walk finds, through both doors.
#[test]
fn regions_agree_with_a_vm_region_walk() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 4)");
    let a = spawn(&rt, "(memory 1)");
    let pt = a.insert_port(&t);
    t.vm_protect(P, P, false, R).unwrap();
    t.vm_protect(2 * P, P, true, R).unwrap();
    t.vm_allocate(6 * P, 3 * P, false).unwrap();
    t.vm_protect(7 * P, P, false, NONE).unwrap();
    t.vm_allocate(12 * P, P, false).unwrap();
    let expected = vec![
        rw(0, 1),
        region(1, 1, R, ALL),
        region(2, 1, R, R),
        rw(3, 1),
        rw(6, 1),
        region(7, 1, NONE, ALL),
        rw(8, 1),
        rw(12, 1),
    ];
    assert_eq!(t.regions(), expected);

    let walk = |region: &dyn Fn(u32) -> Result<Region, KernReturn>| {
        let mut found = Vec::new();
        let mut at = 0u32;
        loop {
            match region(at) {
                Ok(r) => {
                    found.push(r);
                    at = r.address + r.size as u32;
                }
                Err(e) => {
                    assert_eq!(e, NoSpace);
                    return found;
                }
            }
        }
    };
    assert_eq!(walk(&|at| t.vm_region(at)), expected);
    assert_eq!(walk(&|at| a.mach().vm_region(pt, at)), expected);
}

// ---------------------------------------------------------------------------------------
// vm_read, the host as the caller
// ---------------------------------------------------------------------------------------

/// vm_read returns exactly the bytes of the range; READ in `cur` suffices.
#[test]
fn host_read_returns_exact_bytes() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 3)");
    let p0 = fill(&t, 0, 1);
    let p1 = fill(&t, 1, 2);
    let p2 = fill(&t, 2, 3);
    assert_eq!(t.vm_read(0, 3 * P), Ok(cat(&[&p0, &p1, &p2])));
    assert_eq!(t.vm_read(P, P), Ok(p1.clone()));
    t.vm_protect(P, 2 * P, true, R).unwrap();
    assert_eq!(t.vm_read(P, 2 * P), Ok(cat(&[&p1, &p2])));
}

/// Misalignment is KERN_INVALID_ARGUMENT, found before any range problem.
#[test]
fn host_read_misalignment_is_invalid_argument_before_the_range() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 1 4)");
    for (address, size) in [
        (1, P),
        (0, P + 1),
        (0, 1),
        (5 * P + 1, P), // past the limit as well
        (u32::MAX, P),  // past 4 GiB as well
        (2 * P, P - 1), // unallocated as well
    ] {
        assert_eq!(
            t.vm_read(address, size),
            Err(IARG),
            "{address:#x} {size:#x}"
        );
    }
}

/// The first offending page in address order decides between INVALID_ADDRESS and
/// PROTECTION_FAILURE.
#[test]
fn host_read_first_offending_page_decides() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 4)");
    t.vm_protect(P, P, false, W).unwrap();
    t.vm_deallocate(2 * P, P).unwrap();
    assert_eq!(t.vm_read(0, 4 * P), Err(PF));
    assert_eq!(t.vm_read(2 * P, 2 * P), Err(IA));
    t.vm_protect(P, P, false, RW).unwrap();
    t.vm_protect(3 * P, P, false, NONE).unwrap();
    assert_eq!(t.vm_read(0, 4 * P), Err(IA));
    assert_eq!(t.vm_read(3 * P, P), Err(PF));
    assert_eq!(t.vm_read(0, 2 * P), Ok(zeros(2)));
}

/// A range past the declared maximum or past 4 GiB is KERN_INVALID_ADDRESS; size 0 gives
/// no bytes for any address.
#[test]
fn host_read_past_the_space_and_size_zero() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 4 4)");
    assert_eq!(t.vm_read(3 * P, 2 * P), Err(IA));
    assert_eq!(t.vm_read(4 * P, P), Err(IA));
    assert_eq!(t.vm_read(LAST_PAGE, 2 * P), Err(IA));
    assert_eq!(t.vm_read(LAST_PAGE, P), Err(IA));
    for address in [0, 1, 5 * P, u32::MAX] {
        assert_eq!(t.vm_read(address, 0), Ok(vec![]), "{address:#x}");
    }
}

// ---------------------------------------------------------------------------------------
// vm_read_overwrite, the host as the caller
// ---------------------------------------------------------------------------------------

/// The bytes land in the buffer and the size is returned.
#[test]
fn host_read_overwrite_fills_the_buffer() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 2)");
    let p0 = fill(&t, 0, 1);
    let p1 = fill(&t, 1, 2);
    let mut buf = vec![0xaa; 2 * P as usize];
    assert_eq!(t.vm_read_overwrite(0, &mut buf), Ok(2 * P));
    assert_eq!(buf, cat(&[&p0, &p1]));
    let mut one = vec![0xaa; P as usize];
    assert_eq!(t.vm_read_overwrite(P, &mut one), Ok(P));
    assert_eq!(one, p1);
    assert_eq!(t.vm_read_overwrite(7, &mut []), Ok(0));
}

/// Every error leaves the buffer as it was; a buffer that is not a page multiple is
/// KERN_INVALID_ARGUMENT.
#[test]
fn host_read_overwrite_errors_leave_the_buffer_unchanged() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 2 4)");
    fill(&t, 0, 1);
    t.vm_protect(P, P, false, W).unwrap();
    let cases: [(u32, usize, KernReturn); 9] = [
        (0, P as usize + 1, IARG),
        (0, 100, IARG),
        (1, P as usize, IARG),
        (5 * P + 1, P as usize, IARG),
        (P, P as usize, PF),
        (0, 2 * P as usize, PF),
        (2 * P, P as usize, IA),
        (P * 3, 2 * P as usize, IA), // page 4 is past the declared maximum
        (LAST_PAGE, 2 * P as usize, IA),
    ];
    for (address, len, code) in cases {
        let mut buf = vec![0xaa; len];
        assert_eq!(
            t.vm_read_overwrite(address, &mut buf),
            Err(code),
            "{address:#x} {len:#x}"
        );
        assert!(buf.iter().all(|&b| b == 0xaa), "buffer changed");
    }
}

// ---------------------------------------------------------------------------------------
// vm_write, the host as the caller
// ---------------------------------------------------------------------------------------

/// vm_write copies exactly and the written pages keep their protections (WRITE alone is
/// enough).
#[test]
fn host_write_copies_exact_bytes_and_keeps_protections() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 3)");
    let data = pattern(42, 2 * P as usize);
    assert_eq!(t.vm_write(P, &data), Ok(()));
    assert_eq!(t.vm_read(0, 3 * P), Ok(cat(&[&zeros(1), &data])));

    t.vm_protect(2 * P, P, false, W).unwrap();
    let page = pattern(7, P as usize);
    assert_eq!(t.vm_write(2 * P, &page), Ok(()));
    assert_eq!(t.regions(), vec![rw(0, 2), region(2, 1, W, ALL)]);
    t.vm_protect(2 * P, P, false, R).unwrap();
    assert_eq!(t.vm_read(2 * P, P), Ok(page));
    assert_eq!(t.vm_write(7, &[]), Ok(()));
}

/// Misalignment is KERN_INVALID_ARGUMENT before the range; in the range the first
/// offending page decides; a failed write changes no byte, not even of earlier pages.
#[test]
fn host_write_errors_change_nothing() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 4 5)");
    for page in 0..4 {
        fill(&t, page, page as u8 + 1);
    }
    t.vm_protect(P, P, false, R).unwrap();
    t.vm_deallocate(2 * P, P).unwrap();
    let before = raw_snapshot(&t);
    let cases: [(u32, usize, KernReturn); 11] = [
        (0, P as usize + 1, IARG),
        (0, 1, IARG),
        (1, P as usize, IARG),
        (6 * P + 1, P as usize, IARG),
        (0, 2 * P as usize, PF), // page 0 is writable, page 1 is not
        (0, 3 * P as usize, PF), // page 1 before the unallocated page 2
        (2 * P, P as usize, IA),
        (2 * P, 2 * P as usize, IA),
        (3 * P, 3 * P as usize, IA), // page 5 is past the declared maximum
        (3 * P, 2 * P as usize, IA),
        (LAST_PAGE, 2 * P as usize, IA),
    ];
    for (address, len, code) in cases {
        let data = vec![0x55; len];
        assert_eq!(
            t.vm_write(address, &data),
            Err(code),
            "{address:#x} {len:#x}"
        );
        assert_eq!(raw_snapshot(&t), before);
    }
    // an unallocated page before a read-only one: INVALID_ADDRESS
    t.vm_protect(3 * P, P, false, R).unwrap();
    let before = raw_snapshot(&t);
    assert_eq!(t.vm_write(2 * P, &zeros(2)), Err(IA));
    assert_eq!(raw_snapshot(&t), before);
    for address in [0, 1, 2 * P, u32::MAX] {
        assert_eq!(t.vm_write(address, &[]), Ok(()), "{address:#x}");
    }
    assert_eq!(raw_snapshot(&t), before);
}

// ---------------------------------------------------------------------------------------
// vm_copy, the host as the caller
// ---------------------------------------------------------------------------------------

/// vm_copy moves exact bytes; source READ and destination WRITE are enough.
#[test]
fn host_copy_moves_exact_bytes() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 4)");
    let p0 = fill(&t, 0, 1);
    let p1 = fill(&t, 1, 2);
    let p2 = fill(&t, 2, 3);
    fill(&t, 3, 4);
    assert_eq!(t.vm_copy(0, P, 3 * P), Ok(()));
    assert_eq!(t.vm_read(0, 4 * P), Ok(cat(&[&p0, &p1, &p2, &p0])));
    t.vm_protect(P, P, false, R).unwrap();
    t.vm_protect(2 * P, P, false, W).unwrap();
    assert_eq!(t.vm_copy(P, P, 2 * P), Ok(()));
    assert_eq!(
        t.regions(),
        vec![
            rw(0, 1),
            region(1, 1, R, ALL),
            region(2, 1, W, ALL),
            rw(3, 1)
        ]
    );
    t.vm_protect(2 * P, P, false, R).unwrap();
    assert_eq!(t.vm_read(2 * P, P), Ok(p1));
}

/// Overlapping ranges give the result of memmove, in both directions.
#[test]
fn host_copy_overlapping_is_memmove() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 4)");
    let pages: Vec<Vec<u8>> = (0..4).map(|i| fill(&t, i, i as u8 * 10 + 1)).collect();
    assert_eq!(t.vm_copy(0, 3 * P, P), Ok(()));
    assert_eq!(
        t.vm_read(0, 4 * P),
        Ok(cat(&[&pages[0], &pages[0], &pages[1], &pages[2]]))
    );

    for (i, p) in pages.iter().enumerate() {
        t.vm_write(i as u32 * P, p).unwrap();
    }
    assert_eq!(t.vm_copy(P, 3 * P, 0), Ok(()));
    assert_eq!(
        t.vm_read(0, 4 * P),
        Ok(cat(&[&pages[1], &pages[2], &pages[3], &pages[3]]))
    );
    let before = raw_snapshot(&t);
    assert_eq!(t.vm_copy(P, 2 * P, P), Ok(()));
    assert_eq!(raw_snapshot(&t), before);
}

/// Alignment first; then the whole source range (READ) before the destination (WRITE);
/// a failed copy changes nothing; count 0 succeeds anywhere.
#[test]
fn host_copy_checks_source_before_destination() {
    let rt = runtime();
    let t = spawn(&rt, "(memory 4)");
    fill(&t, 0, 1);
    fill(&t, 2, 3);
    t.vm_deallocate(P, P).unwrap(); // page 1 unallocated
    t.vm_protect(2 * P, P, false, R).unwrap(); // page 2 read-only
    t.vm_protect(3 * P, P, false, NONE).unwrap(); // page 3 no access
    let before = raw_snapshot(&t);
    let cases: [(u32, u32, u32, KernReturn); 12] = [
        (1, P, 0, IARG),
        (0, 1, 0, IARG),
        (0, P, 1, IARG),
        (P + 1, P, 3 * P, IARG), // misaligned beats every range problem
        (P, P, 2 * P, IA),       // source unallocated beats a read-only destination
        (3 * P, P, P, PF),       // source unreadable beats an unallocated destination
        (0, 2 * P, 2 * P, IA),   // page 1 of the source
        (0, P, 2 * P, PF),
        (0, P, P, IA),
        (0, P, 3 * P, PF),
        (0, P, LAST_PAGE, IA),
        (LAST_PAGE, 2 * P, 0, IA),
    ];
    for (source, count, dest, code) in cases {
        assert_eq!(
            t.vm_copy(source, count, dest),
            Err(code),
            "vm_copy({source:#x}, {count:#x}, {dest:#x})"
        );
    }
    assert_eq!(raw_snapshot(&t), before);
    for (source, dest) in [(0, 0), (1, 3), (P, 3 * P), (u32::MAX, u32::MAX)] {
        assert_eq!(t.vm_copy(source, 0, dest), Ok(()));
    }
    assert_eq!(raw_snapshot(&t), before);
    let p2 = t.vm_read(2 * P, P).unwrap();
    assert_eq!(
        t.vm_copy(2 * P, P, 0),
        Ok(()),
        "a read-only source is enough"
    );
    assert_eq!(t.vm_read(0, P), Ok(p2));
}

// ---------------------------------------------------------------------------------------
// The cross-task door: task A, as the caller, acts on task B through a port
// ---------------------------------------------------------------------------------------

/// A's vm_read of B lands in a new first-fit region of A (DEFAULT/ALL, whatever B's
/// protections), grows A if needed, and leaves B untouched.
#[test]
fn cross_read_lands_in_a_new_first_fit_region_of_the_caller() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 1)");
    let b = spawn(&rt, "(memory 2)");
    let pb = a.insert_port(&b);
    a.vm_allocate(3 * P, P, false).unwrap();
    let a0 = fill(&a, 0, 9);
    let b0 = fill(&b, 0, 1);
    let b1 = fill(&b, 1, 2);
    b.vm_protect(P, P, true, R).unwrap();
    let before_b = raw_snapshot(&b);

    assert_eq!(a.mach().vm_read(pb, 0, 2 * P), Ok((P, 2 * P)));
    assert_eq!(a.regions(), vec![rw(0, 4)]);
    assert_eq!(a.vm_read(0, 3 * P), Ok(cat(&[&a0, &b0, &b1])));
    assert_eq!(raw_snapshot(&b), before_b);

    assert_eq!(a.mach().vm_read(pb, P, P), Ok((4 * P, P)));
    assert_eq!(a.memory_pages(), 5);
    assert_eq!(a.regions(), vec![rw(0, 5)]);
    assert_eq!(a.vm_read(4 * P, P), Ok(b1));
    assert_eq!(raw_snapshot(&b), before_b);
}

/// A's vm_read of itself through its self port copies into a new region of A.
#[test]
fn cross_read_of_self_copies_into_a_new_region() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 2)");
    let p0 = fill(&a, 0, 1);
    let p1 = fill(&a, 1, 2);
    assert_eq!(
        a.mach().vm_read(a.self_port(), 0, 2 * P),
        Ok((2 * P, 2 * P))
    );
    assert_eq!(a.vm_read(0, 4 * P), Ok(cat(&[&p0, &p1, &p0, &p1])));
}

/// vm_read's errors (alignment, B's range) change neither task; size 0 gives (0, 0).
#[test]
fn cross_read_errors_change_neither_task() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 1)");
    let b = spawn(&rt, "(memory 3 4)");
    let pb = a.insert_port(&b);
    fill(&a, 0, 1);
    fill(&b, 0, 2);
    b.vm_protect(P, P, false, W).unwrap();
    b.vm_deallocate(2 * P, P).unwrap();
    let (before_a, before_b) = (raw_snapshot(&a), raw_snapshot(&b));
    let cases: [(u32, u32, KernReturn); 9] = [
        (1, P, IARG),
        (0, P + 1, IARG),
        (5 * P + 1, P, IARG),
        (0, 2 * P, PF),
        (0, 3 * P, PF),
        (2 * P, P, IA),
        (3 * P, 2 * P, IA), // page 4 is past B's declared maximum
        (4 * P, P, IA),
        (LAST_PAGE, 2 * P, IA),
    ];
    for (address, size, code) in cases {
        assert_eq!(
            a.mach().vm_read(pb, address, size),
            Err(code),
            "{address:#x} {size:#x}"
        );
    }
    for address in [0, 1, 2 * P, u32::MAX] {
        assert_eq!(a.mach().vm_read(pb, address, 0), Ok((0, 0)));
    }
    assert_eq!(raw_snapshot(&a), before_a);
    assert_eq!(raw_snapshot(&b), before_b);
}

/// No room in the caller is KERN_NO_SPACE, checked after B's range; first fit needs
/// consecutive pages.
#[test]
fn cross_read_without_room_in_the_caller_is_no_space() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 2 2)");
    let b = spawn(&rt, "(memory 2)");
    let pb = a.insert_port(&b);
    fill(&a, 0, 1);
    fill(&a, 1, 2);
    let b1 = fill(&b, 1, 3);
    let before = raw_snapshot(&a);
    assert_eq!(a.mach().vm_read(pb, 0, P), Err(NoSpace));
    assert_eq!(a.mach().vm_read(pb, 2 * P, P), Err(IA), "B's range first");
    assert_eq!(raw_snapshot(&a), before);
    a.vm_deallocate(P, P).unwrap();
    assert_eq!(a.mach().vm_read(pb, P, P), Ok((P, P)));
    assert_eq!(a.vm_read(P, P), Ok(b1));

    // one free page at 1 and another at 3 do not make room for two
    let c = spawn(&rt, "(memory 4 4)");
    let pb = c.insert_port(&b);
    c.vm_deallocate(P, P).unwrap();
    c.vm_deallocate(3 * P, P).unwrap();
    let before = raw_snapshot(&c);
    assert_eq!(c.mach().vm_read(pb, 0, 2 * P), Err(NoSpace));
    assert_eq!(raw_snapshot(&c), before);
}

/// vm_read_overwrite copies B's range over A's destination and returns the size.
#[test]
fn cross_read_overwrite_copies_into_the_caller() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 3)");
    let b = spawn(&rt, "(memory 2)");
    let pb = a.insert_port(&b);
    let a0 = fill(&a, 0, 1);
    let b0 = fill(&b, 0, 2);
    let b1 = fill(&b, 1, 3);
    let before_b = raw_snapshot(&b);
    assert_eq!(a.mach().vm_read_overwrite(pb, 0, 2 * P, P), Ok(2 * P));
    assert_eq!(a.vm_read(0, 3 * P), Ok(cat(&[&a0, &b0, &b1])));
    assert_eq!(a.regions(), vec![rw(0, 3)]);
    assert_eq!(raw_snapshot(&b), before_b);
    // a write-only destination is enough
    a.vm_protect(2 * P, P, false, W).unwrap();
    assert_eq!(a.mach().vm_read_overwrite(pb, 0, P, 2 * P), Ok(P));
    a.vm_protect(2 * P, P, false, R).unwrap();
    assert_eq!(a.vm_read(2 * P, P), Ok(b0));
    let before_a = raw_snapshot(&a);
    assert_eq!(a.mach().vm_read_overwrite(pb, 1, 0, 3), Ok(0));
    assert_eq!(raw_snapshot(&a), before_a);
}

/// Order: alignment of all three, then B's range, then A's destination range; failures
/// change neither task.
#[test]
fn cross_read_overwrite_checks_target_then_caller_destination() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 4)");
    let b = spawn(&rt, "(memory 2)");
    let pb = a.insert_port(&b);
    fill(&a, 0, 1);
    fill(&b, 0, 2);
    a.vm_protect(P, P, false, R).unwrap(); // A page 1 read-only
    a.vm_deallocate(2 * P, P).unwrap(); // A page 2 unallocated
    b.vm_protect(P, P, false, W).unwrap(); // B page 1 unreadable
    let (before_a, before_b) = (raw_snapshot(&a), raw_snapshot(&b));
    let cases: [(u32, u32, u32, KernReturn); 12] = [
        (1, P, 0, IARG),
        (0, P + 1, 0, IARG),
        (0, P, 1, IARG),
        (0, P, 2 * P + 1, IARG), // misaligned beats an unallocated destination
        (P, P, 2 * P, PF),       // B's unreadable page beats A's unallocated one
        (2 * P, P, P, IA),       // B's unallocated page beats A's read-only one
        (0, P, P, PF),
        (0, P, 2 * P, IA),
        (0, 2 * P, 0, PF), // B page 1 first
        (LAST_PAGE, 2 * P, 0, IA),
        (0, P, LAST_PAGE, IA),
        (0, P, 4 * P, IA),
    ];
    for (address, size, data, code) in cases {
        assert_eq!(
            a.mach().vm_read_overwrite(pb, address, size, data),
            Err(code),
            "({address:#x}, {size:#x}, {data:#x})"
        );
    }
    assert_eq!(raw_snapshot(&a), before_a);
    assert_eq!(raw_snapshot(&b), before_b);
    // A's destination: page 0 fine, page 1 read-only
    b.vm_protect(P, P, false, RW).unwrap();
    let before_a = raw_snapshot(&a);
    assert_eq!(a.mach().vm_read_overwrite(pb, 0, 2 * P, 0), Err(PF));
    assert_eq!(raw_snapshot(&a), before_a);
}

/// vm_read_overwrite of the caller itself with overlapping ranges behaves as memmove.
#[test]
fn cross_read_overwrite_of_self_overlapping_is_memmove() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 3)");
    let p0 = fill(&a, 0, 1);
    let p1 = fill(&a, 1, 2);
    let p2 = fill(&a, 2, 3);
    assert_eq!(
        a.mach().vm_read_overwrite(a.self_port(), 0, 2 * P, P),
        Ok(2 * P)
    );
    assert_eq!(a.vm_read(0, 3 * P), Ok(cat(&[&p0, &p0, &p1])));
    for (i, p) in [&p0, &p1, &p2].into_iter().enumerate() {
        a.vm_write(i as u32 * P, p).unwrap();
    }
    assert_eq!(
        a.mach().vm_read_overwrite(a.self_port(), P, 2 * P, 0),
        Ok(2 * P)
    );
    assert_eq!(a.vm_read(0, 3 * P), Ok(cat(&[&p1, &p2, &p2])));
}

/// vm_write copies A's bytes into B exactly; B's pages keep their protections; a
/// read-only source in A is enough.
#[test]
fn cross_write_copies_the_callers_bytes_into_the_target() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 3)");
    let b = spawn(&rt, "(memory 3)");
    let pb = a.insert_port(&b);
    let a1 = fill(&a, 1, 1);
    let a2 = fill(&a, 2, 2);
    let b0 = fill(&b, 0, 3);
    let before_a = raw_snapshot(&a);
    assert_eq!(a.mach().vm_write(pb, P, P, 2 * P), Ok(()));
    assert_eq!(b.vm_read(0, 3 * P), Ok(cat(&[&b0, &a1, &a2])));
    assert_eq!(b.regions(), vec![rw(0, 3)]);
    assert_eq!(raw_snapshot(&a), before_a);

    a.vm_protect(P, P, true, R).unwrap();
    b.vm_protect(2 * P, P, false, W).unwrap();
    assert_eq!(a.mach().vm_write(pb, 2 * P, P, P), Ok(()));
    assert_eq!(b.regions(), vec![rw(0, 2), region(2, 1, W, ALL)]);
    b.vm_protect(2 * P, P, false, R).unwrap();
    assert_eq!(b.vm_read(2 * P, P), Ok(a1));
}

/// The caller's buffer is checked right after the port (MACH_SEND_INVALID_MEMORY, even
/// before alignment), then alignment, then B's range; failures change nothing; count 0
/// succeeds even with a bad buffer.
#[test]
fn cross_write_checks_the_callers_buffer_first() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 3 5)");
    let b = spawn(&rt, "(memory 2)");
    let pb = a.insert_port(&b);
    fill(&a, 0, 1);
    fill(&a, 1, 2);
    fill(&b, 0, 3);
    a.vm_protect(2 * P, P, false, W).unwrap(); // A page 2: write-only; pages 3, 4 unallocated
    b.vm_protect(P, P, false, R).unwrap(); // B page 1 read-only
    let (before_a, before_b) = (raw_snapshot(&a), raw_snapshot(&b));
    let cases: [(u32, u32, u32, KernReturn); 14] = [
        (1, 3 * P, P, SendInvalidMemory), // unallocated buffer beats misalignment
        (0, 2 * P, P, SendInvalidMemory), // buffer without READ
        (5 * P, 3 * P, P, SendInvalidMemory), // beats B's unallocated range
        (0, P, 2 * P, SendInvalidMemory), // page 2 of the buffer lacks READ
        (0, 4 * P, 2 * P, SendInvalidMemory), // past A's declared maximum
        (0, LAST_PAGE, 2 * P, SendInvalidMemory), // past 4 GiB
        (0, 3 * P + 1, P - 1, SendInvalidMemory),
        (1, 0, P, IARG),
        (0, 1, P, IARG), // a readable but misaligned buffer
        (0, 0, P + 1, IARG),
        (P, 0, P, PF),
        (0, 0, 2 * P, PF),
        (2 * P, 0, P, IA),
        (LAST_PAGE, 0, 2 * P, IA),
    ];
    for (address, data, count, code) in cases {
        assert_eq!(
            a.mach().vm_write(pb, address, data, count),
            Err(code),
            "vm_write(B, {address:#x}, {data:#x}, {count:#x})"
        );
    }
    assert_eq!(raw_snapshot(&a), before_a);
    assert_eq!(raw_snapshot(&b), before_b);
    assert_eq!(a.mach().vm_write(pb, 1, 3 * P, 0), Ok(()));
    assert_eq!(a.mach().vm_write(pb, 5 * P, u32::MAX, 0), Ok(()));
    assert_eq!(raw_snapshot(&b), before_b);
}

/// vm_copy through a port works inside B, memmove for overlap, source checked before
/// destination, A untouched.
#[test]
fn cross_copy_operates_inside_the_target() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 1)");
    let b = spawn(&rt, "(memory 4)");
    let pb = a.insert_port(&b);
    fill(&a, 0, 9);
    let before_a = raw_snapshot(&a);
    let pages: Vec<Vec<u8>> = (0..4).map(|i| fill(&b, i, i as u8 + 1)).collect();
    assert_eq!(a.mach().vm_copy(pb, 0, P, 3 * P), Ok(()));
    assert_eq!(b.vm_read(3 * P, P), Ok(pages[0].clone()));
    assert_eq!(a.mach().vm_copy(pb, 0, 2 * P, P), Ok(()));
    assert_eq!(
        b.vm_read(0, 4 * P),
        Ok(cat(&[&pages[0], &pages[0], &pages[1], &pages[0]]))
    );
    assert_eq!(raw_snapshot(&a), before_a);

    b.vm_protect(P, P, false, W).unwrap();
    let before_b = raw_snapshot(&b);
    assert_eq!(a.mach().vm_copy(pb, P, P, 5 * P), Err(PF), "source first");
    assert_eq!(a.mach().vm_copy(pb, 5 * P, P, P), Err(IA));
    assert_eq!(a.mach().vm_copy(pb, 0, P, 4 * P), Err(IA));
    assert_eq!(a.mach().vm_copy(pb, 0, P, P + 1), Err(IARG));
    assert_eq!(a.mach().vm_copy(pb, 5 * P, 0, 7), Ok(()));
    assert_eq!(raw_snapshot(&b), before_b);
    assert_eq!(raw_snapshot(&a), before_a);
}

/// vm_allocate, vm_deallocate, vm_protect and vm_region through a port act on B's map and
/// memory, never on A's.
#[test]
fn cross_map_calls_act_on_the_target() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 1)");
    let b = spawn(&rt, "(memory 1)");
    let pb = a.insert_port(&b);
    let before_a = raw_snapshot(&a);
    let m = a.mach();
    assert_eq!(m.vm_allocate(pb, 0, P, true), Ok(P));
    assert_eq!(b.regions(), vec![rw(0, 2)]);
    assert_eq!(b.memory_pages(), 2);
    assert_eq!(m.vm_allocate(pb, 3 * P + 1, P, false), Ok(3 * P));
    assert_eq!(m.vm_allocate(pb, 3 * P, P, false), Err(NoSpace));
    assert_eq!(m.vm_allocate(pb, LAST_PAGE, 2 * P, false), Err(IA));
    assert_eq!(m.vm_allocate(pb, 9 * P, 0, false), Ok(0));
    assert_eq!(m.vm_region(pb, 2 * P), Ok(rw(3, 1)));
    assert_eq!(m.vm_region(pb, 4 * P), Err(NoSpace));
    assert_eq!(m.vm_protect(pb, 3 * P, P, true, R.bits()), Ok(()));
    assert_eq!(m.vm_region(pb, 3 * P), Ok(region(3, 1, R, R)));
    assert_eq!(m.vm_protect(pb, 3 * P, P, false, RW.bits()), Err(PF));
    assert_eq!(m.vm_protect(pb, 2 * P, 2 * P, false, R.bits()), Err(IA));
    assert_eq!(m.vm_deallocate(pb, P, P), Ok(()));
    assert_eq!(m.vm_deallocate(pb, LAST_PAGE, 2 * P), Err(IARG));
    assert_eq!(m.vm_protect(pb, LAST_PAGE, 2 * P, false, 0), Err(IARG));
    assert_eq!(b.regions(), vec![rw(0, 1), region(3, 1, R, R)]);
    assert_eq!(raw_snapshot(&a), before_a);

    let limited = spawn(&rt, "(memory 1 4)");
    let pl = a.insert_port(&limited);
    assert_eq!(a.mach().vm_allocate(pl, 4 * P, P, false), Err(IA));
    assert_eq!(a.mach().vm_allocate(pl, 0, 4 * P, true), Err(NoSpace));
    assert_eq!(a.mach().vm_allocate(pl, 0, 3 * P, true), Ok(P));
    assert_eq!(limited.memory_pages(), 4);
    assert_eq!(raw_snapshot(&a), before_a);
}

/// A vm_allocate by A on B that needs B's memory to grow succeeds while B is idle and is
/// KERN_RESOURCE_SHORTAGE (changing nothing) while B runs on another thread, through either
/// door; so is a vm_read by B (as the caller) that needs B to grow. Calls that need no
/// growth succeed meanwhile.
#[test]
fn growing_a_running_task_is_resource_shortage() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 1)");
    let a0 = fill(&a, 0, 3);
    // B marks address 4 when it starts, then spins until the i32 at address 0 is nonzero
    // (returning 1), or gives up after very many iterations (returning -1).
    let b = rt
        .spawn_bytes(
            r#"(module (memory 4)
                 (func (export "spin") (result i32) (local $i i64)
                   (i32.store (i32.const 4) (i32.const 1))
                   (loop $wait
                     (if (i32.ne (i32.load (i32.const 0)) (i32.const 0))
                       (then (return (i32.const 1))))
                     (local.set $i (i64.add (local.get $i) (i64.const 1)))
                     (br_if $wait (i64.lt_u (local.get $i) (i64.const 20000000000))))
                   (i32.const -1)))"#,
        )
        .unwrap();
    let pb = a.insert_port(&b);
    let pa = b.insert_port(&a);
    b.vm_deallocate(2 * P, 2 * P).unwrap();

    struct During {
        started: bool,
        read_no_growth: Result<(u32, u32), KernReturn>,
        fixed_no_growth: Result<u32, KernReturn>,
        cross_growth: Result<u32, KernReturn>,
        host_growth: Result<u32, KernReturn>,
        caller_growth: Result<(u32, u32), KernReturn>,
        regions: Vec<Region>,
        pages: u32,
    }
    let (spin, during) = std::thread::scope(|s| {
        let runner = s.spawn(|| b.call::<(), i32>("spin", ()));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut started = false;
        while !runner.is_finished() && Instant::now() < deadline {
            if b.vm_read(0, P).unwrap()[4] == 1 {
                started = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let during = During {
            started,
            // B's page 2 is free and committed: no growth
            read_no_growth: b.mach().vm_read(pa, 0, P),
            fixed_no_growth: a.mach().vm_allocate(pb, 3 * P, P, false),
            // B is full now: each of these needs page 4
            cross_growth: a.mach().vm_allocate(pb, 0, P, true),
            host_growth: b.vm_allocate(5 * P, P, false),
            caller_growth: b.mach().vm_read(pa, 0, P),
            regions: b.regions(),
            pages: b.memory_pages(),
        };
        // release the guest whatever happened above
        let mut flag = vec![0u8; P as usize];
        flag[0] = 1;
        let released = b.vm_write(0, &flag);
        let spin = runner.join().expect("runner thread");
        released.expect("write the flag page");
        (spin, during)
    });
    assert!(during.started, "B never started running");
    assert_eq!(spin.unwrap(), 1, "B gave up waiting");
    assert_eq!(during.read_no_growth, Ok((2 * P, P)));
    assert_eq!(during.fixed_no_growth, Ok(3 * P));
    assert_eq!(during.cross_growth, Err(ResourceShortage));
    assert_eq!(during.host_growth, Err(ResourceShortage));
    assert_eq!(during.caller_growth, Err(ResourceShortage));
    assert_eq!(during.regions, vec![rw(0, 4)]);
    assert_eq!(during.pages, 4);
    assert_eq!(b.vm_read(2 * P, 2 * P), Ok(cat(&[&a0, &zeros(1)])));
    // B is idle again: the same calls grow it
    assert_eq!(a.mach().vm_allocate(pb, 0, P, true), Ok(4 * P));
    assert_eq!(b.memory_pages(), 5);
    assert_eq!(b.mach().vm_read(pa, 0, P), Ok((5 * P, P)));
    assert_eq!(b.memory_pages(), 6);
    assert_eq!(b.regions(), vec![rw(0, 6)]);
    assert_eq!(b.vm_read(4 * P, 2 * P), Ok(cat(&[&zeros(1), &a0])));
}

// ---------------------------------------------------------------------------------------
// Memory quota
// ---------------------------------------------------------------------------------------

/// vm_allocate past the quota (counted in allocated pages) is KERN_NO_SPACE and changes
/// nothing; freeing pages makes room again.
#[test]
fn quota_caps_vm_allocate() {
    let rt = runtime();
    let t = spawn_quota(&rt, "(memory 1)", 3);
    assert_eq!(t.vm_allocate(0, 2 * P, true), Ok(P));
    let before = raw_snapshot(&t);
    assert_eq!(t.vm_allocate(0, P, true), Err(NoSpace));
    assert_eq!(t.vm_allocate(5 * P, P, false), Err(NoSpace));
    assert_eq!(raw_snapshot(&t), before);
    assert_eq!(t.memory_pages(), 3);
    t.vm_deallocate(P, P).unwrap();
    assert_eq!(t.vm_allocate(5 * P, P, false), Ok(5 * P));
    assert_eq!(t.vm_allocate(0, P, true), Err(NoSpace));
    assert_eq!(t.vm_allocate(0, 0, true), Ok(0));

    // the cross-task door on a task with a quota
    let a = spawn(&rt, "(memory 1)");
    let pt = a.insert_port(&t);
    assert_eq!(a.mach().vm_allocate(pt, 0, P, true), Err(NoSpace));
    assert_eq!(t.regions(), vec![rw(0, 1), rw(2, 1), rw(5, 1)]);
}

/// The quota is rounded down to whole pages.
#[test]
fn quota_rounds_down_to_pages() {
    let rt = runtime();
    let module = rt.compile("(module (memory 1))").unwrap();
    let t = rt
        .spawn_with(&module, &TaskOptions::default().max_memory(3 * P64 - 1))
        .unwrap();
    assert_eq!(t.vm_allocate(0, P, true), Ok(P));
    assert_eq!(t.vm_allocate(0, P, true), Err(NoSpace));
}

/// A's vm_read needs room in A's quota (KERN_NO_SPACE otherwise); the quota belongs to the
/// task that gains pages, not to the caller.
#[test]
fn quota_caps_cross_read_into_the_caller() {
    let rt = runtime();
    let a = spawn_quota(&rt, "(memory 1)", 2);
    let b = spawn(&rt, "(memory 3)");
    let pb = a.insert_port(&b);
    let b0 = fill(&b, 0, 1);
    let before_a = raw_snapshot(&a);
    assert_eq!(a.mach().vm_read(pb, 0, 2 * P), Err(NoSpace));
    assert_eq!(raw_snapshot(&a), before_a);
    assert_eq!(a.mach().vm_read(pb, 0, P), Ok((P, P)));
    assert_eq!(a.vm_read(P, P), Ok(b0));
    assert_eq!(a.mach().vm_read(pb, 0, P), Err(NoSpace));
    assert_eq!(a.memory_pages(), 2);
    // A is at its quota, B has none: A can still allocate in B
    assert_eq!(a.mach().vm_allocate(pb, 0, P, true), Ok(3 * P));
    // and vm_read_overwrite allocates nothing, so it still works
    assert_eq!(a.mach().vm_read_overwrite(pb, P, P, P), Ok(P));
}

/// A guest's memory.grow past the quota returns -1 and changes nothing; the quota counts
/// allocated pages, so deallocating makes room for growth.
#[test]
fn quota_makes_guest_memory_grow_fail() {
    let rt = runtime();
    let module = rt
        .compile(
            "(module (memory 1)
               (func (export \"grow\") (param i32) (result i32) (memory.grow (local.get 0))))",
        )
        .unwrap();
    let t = rt
        .spawn_with(&module, &TaskOptions::default().max_memory(3 * P64))
        .unwrap();
    assert_eq!(t.call::<i32, i32>("grow", 1).unwrap(), 1);
    assert_eq!(t.call::<i32, i32>("grow", 2).unwrap(), -1);
    assert_eq!(t.memory_pages(), 2);
    assert_eq!(t.regions(), vec![rw(0, 2)]);
    assert_eq!(t.call::<i32, i32>("grow", 1).unwrap(), 2);
    assert_eq!(t.call::<i32, i32>("grow", 1).unwrap(), -1);
    assert_eq!(t.regions(), vec![rw(0, 3)]);
    t.vm_deallocate(P, P).unwrap();
    assert_eq!(t.call::<i32, i32>("grow", 1).unwrap(), 3);
    assert_eq!(t.regions(), vec![rw(0, 1), rw(2, 2)]);
    assert_eq!(t.call::<i32, i32>("grow", 0).unwrap(), 4);
}

/// Spawning a module whose initial memory is above the quota is an error.
#[test]
fn spawning_with_initial_memory_above_the_quota_fails() {
    let rt = runtime();
    let four = rt.compile("(module (memory 4))").unwrap();
    let opts = |pages: u64| TaskOptions::default().max_memory(pages * P64);
    let refused = |module: &wasmach::TaskModule, options: &TaskOptions| {
        format!("{:#}", rt.spawn_with(module, options).unwrap_err())
    };
    let message = |initial: u32, quota: u32| {
        format!(
            "the module's initial memory ({initial} pages) exceeds the task's memory limit ({quota} pages)"
        )
    };
    assert_eq!(refused(&four, &opts(3)), message(4, 3));
    // A quota is counted in whole pages, rounded down.
    assert_eq!(
        refused(&four, &TaskOptions::default().max_memory(4 * P64 - 1)),
        message(4, 3)
    );
    let t = rt.spawn_with(&four, &opts(4)).expect("exactly the quota");
    assert_eq!(t.regions(), vec![rw(0, 4)]);
    assert_eq!(t.vm_allocate(0, P, true), Err(NoSpace));
    let zero = rt.compile("(module (memory 0))").unwrap();
    let t = rt
        .spawn_with(&zero, &opts(0))
        .expect("empty memory, zero quota");
    assert_eq!(t.vm_allocate(0, P, true), Err(NoSpace));
    let one = rt.compile("(module (memory 1))").unwrap();
    assert_eq!(refused(&one, &opts(0)), message(1, 0));
}

// ---------------------------------------------------------------------------------------
// KernReturn
// ---------------------------------------------------------------------------------------

/// Every code has GNU Mach's value, its Mach name in Display, and is a std error.
#[test]
fn kern_return_values_display_and_error() {
    let expected: [(KernReturn, u32, &str); 11] = [
        (IA, 1, "KERN_INVALID_ADDRESS (1)"),
        (PF, 2, "KERN_PROTECTION_FAILURE (2)"),
        (NoSpace, 3, "KERN_NO_SPACE (3)"),
        (IARG, 4, "KERN_INVALID_ARGUMENT (4)"),
        (KernReturn::Failure, 5, "KERN_FAILURE (5)"),
        (ResourceShortage, 6, "KERN_RESOURCE_SHORTAGE (6)"),
        (KernReturn::InvalidName, 15, "KERN_INVALID_NAME (15)"),
        (KernReturn::InvalidTask, 16, "KERN_INVALID_TASK (16)"),
        (KernReturn::InvalidValue, 18, "KERN_INVALID_VALUE (18)"),
        (
            KernReturn::SendInvalidDest,
            0x1000_0003,
            "MACH_SEND_INVALID_DEST (0x10000003)",
        ),
        (
            SendInvalidMemory,
            0x1000_000c,
            "MACH_SEND_INVALID_MEMORY (0x1000000c)",
        ),
    ];
    for (k, code, text) in expected {
        assert_eq!(k.code(), code);
        assert_eq!(k as u32, code);
        assert_eq!(KernReturn::from_code(code), Some(k));
        assert_eq!(k.to_string(), text);
        assert!(text.starts_with(k.name()));
        let boxed: Box<dyn Error + Send + Sync> = Box::new(k);
        assert_eq!(boxed.to_string(), text);
        assert!(boxed.source().is_none());
        let any = anyhow::Error::from(k);
        assert_eq!(any.downcast_ref::<KernReturn>(), Some(&k));
    }
    assert_eq!(KernReturn::from_code(0), None);
    assert_eq!(KernReturn::from_code(7), None);
    assert_eq!(KernReturn::ALL.len(), 11);
    assert_eq!(wasmach::KERN_SUCCESS, 0);
    assert_eq!(KernReturn::to_guest(&Ok::<(), KernReturn>(())), 0);
    assert_eq!(
        KernReturn::to_guest(&Err::<(), _>(KernReturn::SendInvalidDest)),
        0x1000_0003
    );

    fn fails() -> Result<(), Box<dyn Error>> {
        let rt = runtime();
        let t = spawn(&rt, "(memory 1)");
        t.vm_read(P, P)?;
        Ok(())
    }
    assert_eq!(fails().unwrap_err().to_string(), "KERN_INVALID_ADDRESS (1)");
}

/// VM_PROT values are Mach's, and bits outside ALL are not a protection.
#[test]
fn vm_prot_values() {
    assert_eq!(
        [NONE, R, W, X, RW, ALL].map(VmProt::bits),
        [0, 1, 2, 4, 3, 7]
    );
    assert_eq!(R | W, RW);
    assert_eq!(ALL & R, R);
    for bits in 0..8 {
        assert_eq!(VmProt::from_bits(bits).map(VmProt::bits), Some(bits));
    }
    for bits in [8, 9, 0xff, u32::MAX] {
        assert_eq!(VmProt::from_bits(bits), None);
    }
}
