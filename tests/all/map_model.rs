//! Model-based property tests: random sequences of VM calls against a plain page model that
//! implements docs/spec.md's rules itself (check order of §3 rule 1, first fit, rounding,
//! zero-fill, quota, memmove, out-pointers). The model never calls the runtime's `vm_map`.
//!
//! - `host_cross_task_and_guest_calls_match_the_page_model` drives three tasks (a small
//!   declared maximum, a small maximum with a quota, and no maximum so that 4 GiB is
//!   reachable) through three doors: the host API, `Task::mach()` (one task calling on
//!   another, on itself, and through null, unknown and dead names), and the guest's own
//!   `"mach"` imports (each task's module has a small interpreter export, `call`, that makes
//!   the generated call with its out-pointers in the task's own memory, anywhere: writable,
//!   read-only or unallocated pages, straddling two pages, past the memory). After every
//!   step it compares the returned code and out-values, every task's whole map
//!   (`regions()`), every task's memory size and the bytes of the pages the step touched
//!   (out-pointers included; read by the guest itself, so that pages without `READ` are
//!   compared too). At the end it compares every allocated page of the small tasks and, in
//!   the 4 GiB task, every page holding data and both ends of every region. Each sequence
//!   starts with a fixed prelude (regions of several protections, with data) so that random
//!   steps meet a varied map; a step the model predicts to move more than 1 MiB
//!   successfully (only possible in the 4 GiB task) is skipped.
//! - `vm_map_matches_the_page_model` does the same directly on the page table (`wasmach::testing::VmMap`).
//!
//! One generator feeds both this file's properties and the fuzz target
//! (`fuzz/fuzz_targets/vm_calls.rs`): the spec types implement [`Arbitrary`], so the fuzzer
//! decodes its input into a sequence with `arbitrary::Unstructured` (keeping libFuzzer's
//! coverage guidance), and proptest draws and shrinks a byte string that the same
//! implementations decode ([`decoded`]). Proptest failures are kept in
//! `tests/all/map_model.proptest-regressions` (replayed first on every run), and a failure
//! prints the run seed that repeats it (`PROPTEST_RNG_SEED`).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed, TestCaseError, TestRunner};
use wasmach::testing::{PageRange, VmMap};
use wasmach::{
    CopyMode, KernResult, KernReturn, PortName, Region, Runtime, RuntimeOptions, Task, TaskModule,
    TaskOptions,
};
use wasmach::{MAX_PAGES, VmProt};

use crate::common::*;

const P: u64 = PAGE as u64;
const SPACE_END: u64 = 1 << 32;
const DEFAULT: u8 = 3;
const ALL: u8 = 7;

// ---------------------------------------------------------------------------------------
// The page model (docs/spec.md §1, §3, §4), shared by both properties.
// ---------------------------------------------------------------------------------------

/// One entry per page of the address space: `None` = unallocated, `Some((cur, max))`.
#[derive(Clone, Debug)]
struct PageModel {
    pages: Vec<Option<(u8, u8)>>,
}

impl PageModel {
    /// docs/spec.md §3 rule 6: the initial pages are allocated `DEFAULT`/`ALL`.
    fn new(limit: u32, initial: u32) -> PageModel {
        let mut pages = vec![None; limit as usize];
        for p in &mut pages[..initial as usize] {
            *p = Some((DEFAULT, ALL));
        }
        PageModel { pages }
    }

    fn limit(&self) -> u64 {
        self.pages.len() as u64
    }

    /// The state of `page`; pages past the address space are unallocated.
    fn get(&self, page: u64) -> Option<(u8, u8)> {
        self.pages.get(page as usize).copied().flatten()
    }

    fn allocated(&self) -> u64 {
        self.pages.iter().filter(|p| p.is_some()).count() as u64
    }

    /// The pages `[floor(addr), ceil(addr + size))`, `None` if the end lies beyond 4 GiB.
    fn covering(addr: u32, size: u32) -> Option<(u64, u64)> {
        let end = u64::from(addr) + u64::from(size);
        (end <= SPACE_END).then(|| (u64::from(addr) / P, end.div_ceil(P)))
    }

    /// docs/spec.md §3 rule 1.4 and rule 4: one pass in address order; the first unallocated page
    /// (or past the address space) is `INVALID_ADDRESS`, the first lacking `need` is
    /// `PROTECTION_FAILURE`.
    fn check_access(&self, addr: u32, size: u32, need: u8) -> KernResult<()> {
        let (first, end) = Self::covering(addr, size).ok_or(KernReturn::InvalidAddress)?;
        self.check_pages(first, end, need)
    }

    fn check_pages(&self, first: u64, end: u64, need: u8) -> KernResult<()> {
        for page in first..end {
            match self.get(page) {
                None => return Err(KernReturn::InvalidAddress),
                Some((cur, _)) if cur & need != need => {
                    return Err(KernReturn::ProtectionFailure);
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// `vm_protect`'s checks (docs/spec.md §4): the whole range for unallocated pages first, then
    /// the whole range against `max`.
    fn check_protect(&self, first: u64, end: u64, prot: u8) -> KernResult<()> {
        if (first..end).any(|p| self.get(p).is_none()) {
            return Err(KernReturn::InvalidAddress);
        }
        if (first..end).any(|p| self.get(p).is_some_and(|(_, max)| max & prot != prot)) {
            return Err(KernReturn::ProtectionFailure);
        }
        Ok(())
    }

    fn protect(&mut self, first: u64, end: u64, set_max: bool, prot: u8) {
        for p in first..end {
            let e = self.pages[p as usize].as_mut().expect("checked allocated");
            *e = if set_max {
                (e.0 & prot, prot)
            } else {
                (prot, e.1)
            };
        }
    }

    /// First fit from page 0.
    fn find_free(&self, count: u64) -> Option<u64> {
        if count == 0 {
            return None;
        }
        let mut run = 0;
        for p in 0..self.limit() {
            if self.get(p).is_some() {
                run = 0;
            } else {
                run += 1;
                if run == count {
                    return Some(p + 1 - count);
                }
            }
        }
        None
    }

    fn any_allocated(&self, first: u64, end: u64) -> bool {
        (first..end).any(|p| self.get(p).is_some())
    }

    fn allocate(&mut self, first: u64, end: u64) {
        for p in first..end {
            assert!(self.pages[p as usize].is_none());
            self.pages[p as usize] = Some((DEFAULT, ALL));
        }
    }

    /// Returns how many pages were allocated.
    fn deallocate(&mut self, first: u64, end: u64) -> u64 {
        let mut freed = 0;
        for p in first..end.min(self.limit()) {
            if self.pages[p as usize].take().is_some() {
                freed += 1;
            }
        }
        freed
    }

    /// Every region: maximal runs of allocated pages with equal `(cur, max)`.
    fn regions(&self) -> Vec<Region> {
        let mut out = Vec::new();
        let mut p = 0;
        while p < self.limit() {
            let Some(state) = self.get(p) else {
                p += 1;
                continue;
            };
            let start = p;
            while p < self.limit() && self.get(p) == Some(state) {
                p += 1;
            }
            out.push(region(start, p, state));
        }
        out
    }

    /// The region containing `addr`'s page, or else the first one above it.
    fn region(&self, addr: u32) -> Option<Region> {
        let page = u64::from(addr) / P;
        self.regions()
            .into_iter()
            .find(|r| u64::from(r.address) + r.size > page * P)
    }
}

fn prot(bits: u8) -> VmProt {
    VmProt::from_bits(u32::from(bits)).expect("model protections are valid")
}

fn region(first: u64, end: u64, (cur, max): (u8, u8)) -> Region {
    Region {
        address: (first * P) as u32,
        size: (end - first) * P,
        protection: prot(cur),
        max_protection: prot(max),
    }
}

// ---------------------------------------------------------------------------------------
// The task model: a page model, the bytes of the pages, the wasm memory size, the quota.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct TaskModel {
    map: PageModel,
    /// Pages the task may have allocated (docs/spec.md §1 memory quota).
    quota: Option<u64>,
    /// The wasm memory size in pages.
    mem_pages: u64,
    /// Page contents; a page absent here reads as zero.
    data: BTreeMap<u64, Vec<u8>>,
}

impl TaskModel {
    fn new(limit: u32, initial: u32, quota: Option<u64>) -> TaskModel {
        TaskModel {
            map: PageModel::new(limit, initial),
            quota,
            mem_pages: u64::from(initial),
            data: BTreeMap::new(),
        }
    }

    fn page(&self, page: u64) -> Vec<u8> {
        self.data
            .get(&page)
            .cloned()
            .unwrap_or_else(|| vec![0; P as usize])
    }

    /// The bytes of `[addr, addr + len)`, both page-aligned.
    fn read(&self, addr: u32, len: u32) -> Vec<u8> {
        let first = u64::from(addr) / P;
        let mut out = Vec::with_capacity(len as usize);
        for p in first..first + u64::from(len) / P {
            out.extend_from_slice(&self.page(p));
        }
        out
    }

    fn write(&mut self, addr: u32, bytes: &[u8]) {
        let first = u64::from(addr) / P;
        for (i, chunk) in bytes.chunks(P as usize).enumerate() {
            let page = first + i as u64;
            if chunk.iter().all(|&b| b == 0) {
                self.data.remove(&page);
            } else {
                self.data.insert(page, chunk.to_vec());
            }
        }
    }

    /// The pages holding data in `[addr, addr + len)` (both page-aligned), by offset in
    /// pages: a transfer's source, kept sparse so that a large copy of mostly untouched
    /// pages costs memory for the touched ones only.
    fn snapshot(&self, addr: u32, len: u32) -> Vec<(u64, Vec<u8>)> {
        let first = u64::from(addr) / P;
        let end = first + u64::from(len) / P;
        self.data
            .range(first..end)
            .map(|(&p, bytes)| (p - first, bytes.clone()))
            .collect()
    }

    /// Writes a [`TaskModel::snapshot`] at `addr`: pages it has no data for become zero.
    fn put(&mut self, addr: u32, len: u32, pages: Vec<(u64, Vec<u8>)>) {
        let first = u64::from(addr) / P;
        self.forget(first, first + u64::from(len) / P);
        for (offset, bytes) in pages {
            self.data.insert(first + offset, bytes);
        }
    }

    fn forget(&mut self, first: u64, end: u64) {
        self.data.retain(|p, _| !(first..end).contains(p));
    }

    /// Stores the little-endian `value` at `addr` (any alignment, may straddle two pages):
    /// an out-value, or the guest's own store of an in-value.
    fn store_u32(&mut self, addr: u32, value: u32) {
        for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
            let a = u64::from(addr) + i as u64;
            let page = self
                .data
                .entry(a / P)
                .or_insert_with(|| vec![0; P as usize]);
            page[(a % P) as usize] = byte;
        }
    }

    /// The little-endian `u32` at `addr` (any alignment, below 4 GiB - 4).
    fn load_u32(&self, addr: u32) -> u32 {
        let mut bytes = [0u8; 4];
        for (i, b) in bytes.iter_mut().enumerate() {
            let a = u64::from(addr) + i as u64;
            *b = self
                .data
                .get(&(a / P))
                .map_or(0, |page| page[(a % P) as usize]);
        }
        u32::from_le_bytes(bytes)
    }

    fn quota_allows(&self, extra: u64) -> bool {
        self.quota.is_none_or(|q| self.map.allocated() + extra <= q)
    }

    /// New pages: `DEFAULT`/`ALL`, zero-filled (rule 7); the memory grows to cover them.
    fn allocate(&mut self, first: u64, end: u64) {
        self.map.allocate(first, end);
        self.forget(first, end);
        self.mem_pages = self.mem_pages.max(end);
    }
}

fn aligned(v: u32) -> bool {
    u64::from(v) % P == 0
}

/// A guest call's pointers into its caller's memory (in the order of the call's
/// parameters, an in-out pointer first); none for the host API and `Task::mach()`, which
/// take and return values.
#[derive(Clone, Copy)]
struct Ptrs<'a> {
    caller: usize,
    at: &'a [u32],
}

impl Ptrs<'_> {
    /// docs/spec.md §3 rule 1.3 / 1.5: each of the pointers `which` (none without pointers) must be
    /// 4 bytes of the caller's memory with `need` (`WRITE` for an out-pointer; an in-out
    /// pointer is also read, which §5 allows only with `READ`), else
    /// `KERN_INVALID_ARGUMENT`.
    fn check(&self, m: &[TaskModel], which: Range<usize>, need: u8) -> KernResult<()> {
        if self.at.is_empty() {
            return Ok(());
        }
        for &p in &self.at[which] {
            m[self.caller]
                .map
                .check_access(p, 4, need)
                .map_err(|_| KernReturn::InvalidArgument)?;
        }
        Ok(())
    }

    /// Writes `values` through the pointers from index `from` on (none without pointers).
    fn write(&self, m: &mut [TaskModel], from: usize, values: &[u32]) {
        for (&p, &v) in self.at.iter().skip(from).zip(values) {
            m[self.caller].store_u32(p, v);
        }
    }

    /// The in-value behind pointer `i`, or `value` without pointers.
    fn read(&self, m: &[TaskModel], i: usize, value: u32) -> u32 {
        self.at
            .get(i)
            .map_or(value, |&p| m[self.caller].load_u32(p))
    }
}

/// `vm_allocate` (docs/spec.md §4) on task `t`; with pointers, the address comes from and goes to
/// `*ptrs[0]`.
fn model_allocate(
    m: &mut [TaskModel],
    t: usize,
    ptrs: Ptrs,
    addr: u32,
    size: u32,
    anywhere: bool,
) -> KernResult<u32> {
    if size == 0 {
        // Rule 3: the out-value is still written.
        ptrs.check(m, 0..1, 2)?;
        ptrs.write(m, 0, &[0]);
        return Ok(0);
    }
    let count = u64::from(size).div_ceil(P);
    let fixed = if anywhere {
        None
    } else {
        // Rule 1.3: the in-pointer, then the range.
        ptrs.check(m, 0..1, 3)?;
        let addr = ptrs.read(m, 0, addr);
        let first = u64::from(addr) / P;
        if first + count > m[t].map.limit() {
            return Err(KernReturn::InvalidAddress);
        }
        if m[t].map.any_allocated(first, first + count) {
            return Err(KernReturn::NoSpace);
        }
        Some(first)
    };
    if anywhere {
        ptrs.check(m, 0..1, 2)?; // rule 1.5
    }
    if !m[t].quota_allows(count) {
        return Err(KernReturn::NoSpace);
    }
    let first = match fixed {
        Some(f) => f,
        None => m[t].map.find_free(count).ok_or(KernReturn::NoSpace)?,
    };
    m[t].allocate(first, first + count);
    let start = (first * P) as u32;
    ptrs.write(m, 0, &[start]);
    Ok(start)
}

/// `vm_deallocate` (docs/spec.md §4).
fn model_deallocate(t: &mut TaskModel, addr: u32, size: u32) -> KernResult<()> {
    if size == 0 {
        return Ok(());
    }
    let (first, end) = PageModel::covering(addr, size).ok_or(KernReturn::InvalidArgument)?;
    t.map.deallocate(first, end);
    t.forget(first, end);
    Ok(())
}

/// `vm_protect` (docs/spec.md §4).
fn model_protect(
    t: &mut TaskModel,
    addr: u32,
    size: u32,
    set_max: bool,
    bits: u32,
) -> KernResult<()> {
    if bits & !7 != 0 {
        return Err(KernReturn::InvalidArgument);
    }
    if size == 0 {
        return Ok(());
    }
    let (first, end) = PageModel::covering(addr, size).ok_or(KernReturn::InvalidArgument)?;
    t.map.check_protect(first, end, bits as u8)?;
    t.map.protect(first, end, set_max, bits as u8);
    Ok(())
}

/// The target-side checks of `vm_read` / `vm_read_overwrite` after the size-0 rule.
fn model_read_checks(t: &TaskModel, addr: u32, size: u32) -> KernResult<()> {
    if !aligned(addr) || !aligned(size) {
        return Err(KernReturn::InvalidArgument);
    }
    t.map.check_access(addr, size, 1)
}

/// `vm_copy` (docs/spec.md §4).
fn model_copy(t: &mut TaskModel, src: u32, count: u32, dst: u32) -> KernResult<()> {
    if count == 0 {
        return Ok(());
    }
    if !aligned(src) || !aligned(count) || !aligned(dst) {
        return Err(KernReturn::InvalidArgument);
    }
    t.map.check_access(src, count, 1)?;
    t.map.check_access(dst, count, 2)?;
    let pages = t.snapshot(src, count);
    t.put(dst, count, pages);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Steps: generated as specs, resolved against the tasks' limits.
// ---------------------------------------------------------------------------------------

/// An address near a page boundary, near the task's limit, near 4 GiB or near 0.
#[derive(Clone, Copy, Debug)]
struct AddrSpec {
    kind: u8,
    n: u32,
    off: u8,
}

impl AddrSpec {
    fn resolve(self, limit: u64) -> u32 {
        let n = u64::from(self.n);
        let page = match self.kind {
            0 => n % (limit.min(16) + 2),
            1 => (limit + n % 4).saturating_sub(2),
            2 => 65535 - n % 2,
            _ => n % (limit + 2),
        }
        .min(65535);
        let base = page * P;
        let a = match self.off {
            0 => base,
            1 => base + 1,
            2 => base.wrapping_sub(1) & 0xFFFF_FFFF,
            _ => base + P / 2,
        };
        a as u32
    }
}

/// A size of a few pages, reaching the limit, reaching (or passing) 4 GiB, or huge.
#[derive(Clone, Copy, Debug)]
struct SizeSpec {
    kind: u8,
    n: u32,
    off: u8,
}

impl SizeSpec {
    fn resolve(self, limit: u64, addr: u32) -> u32 {
        let n = u64::from(self.n);
        let bytes = match self.kind {
            0 => (n % 5) * P,
            1 => (limit.saturating_sub(u64::from(addr) / P) + n % 3).saturating_sub(1) * P,
            2 => SPACE_END - u64::from(addr) + (n % 2) * P,
            _ => [u64::from(u32::MAX), 0xFFFF_0000, 0x8000_0000][(n % 3) as usize],
        };
        let b = match self.off {
            0 => bytes,
            1 => bytes + 1,
            _ => bytes.saturating_sub(1),
        };
        b.min(u64::from(u32::MAX)) as u32
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortSel {
    /// The caller's name for task `t` (its own name when `t` is the caller).
    Peer(usize),
    Null,
    /// A value that names nothing in the caller's namespace.
    Bogus(u32),
    /// The name of a task terminated before the sequence started.
    Dead,
}

#[derive(Clone, Copy, Debug)]
enum Door {
    /// The host API on task `t`.
    Host(usize),
    /// `tasks[caller].mach()` on a port.
    Mach(usize, PortSel),
    /// Task `caller`'s guest calls the `"mach"` import on a port, with its pointers at
    /// `out`, `out + 4`, `out + 8`, ... in its own memory (see [`guest_ptrs`]).
    Guest {
        caller: usize,
        port: PortSel,
        out: u32,
    },
}

#[derive(Clone, Debug)]
enum OpSpec {
    Allocate(AddrSpec, SizeSpec, bool),
    Deallocate(AddrSpec, SizeSpec),
    Protect(AddrSpec, SizeSpec, bool, u32),
    Read(AddrSpec, SizeSpec),
    ReadOverwrite(AddrSpec, SizeSpec, AddrSpec),
    Write(AddrSpec, SizeSpec, AddrSpec, u8),
    Copy(AddrSpec, SizeSpec, AddrSpec),
    /// A `vm_copy` whose destination is the source moved by a few pages (overlap: memmove).
    CopyNear(AddrSpec, SizeSpec, i8),
    Region(AddrSpec),
}

/// A concrete call.
#[derive(Clone, Debug)]
enum Op {
    Allocate {
        addr: u32,
        size: u32,
        anywhere: bool,
    },
    Deallocate {
        addr: u32,
        size: u32,
    },
    Protect {
        addr: u32,
        size: u32,
        set_max: bool,
        prot: u32,
    },
    Read {
        addr: u32,
        size: u32,
    },
    ReadOverwrite {
        addr: u32,
        size: u32,
        data: u32,
    },
    Write {
        addr: u32,
        count: u32,
        data: u32,
        seed: u8,
    },
    Copy {
        src: u32,
        count: u32,
        dst: u32,
    },
    Region {
        addr: u32,
    },
}

/// The largest host buffer a step uses (host `vm_write` / `vm_read_overwrite` take slices).
const HOST_BUF_MAX: u64 = 32 * P;
/// A step the model predicts to succeed while moving more than this is skipped (only
/// possible in the 4 GiB task), to keep transfers small.
const TRANSFER_MAX: u64 = 16 * P;

/// The declared maximum of each task of the sequence, in pages (see [`setup`]).
const LIMITS: [u32; 3] = [24, 16, MAX_PAGES];

/// The most random steps in one sequence.
const MAX_STEPS: usize = 40;

/// The longest byte string proptest decodes into a sequence: about 25 bytes a step, so a
/// sequence has 20 steps on average and at most [`MAX_STEPS`].
const STEPS_BYTES_MAX: usize = 1024;

// Generation: the spec types implement `Arbitrary`, so that one generator serves the fuzz
// target (which decodes libFuzzer's input) and the proptests (through [`decoded`]).

/// An index into `weights`, chosen with those weights (the first one when the input is
/// exhausted, so that short inputs give simple cases).
fn pick(u: &mut Unstructured<'_>, weights: &[u32]) -> arbitrary::Result<usize> {
    let total: u32 = weights.iter().sum();
    let mut x = u.int_in_range(0..=total - 1)?;
    for (i, &w) in weights.iter().enumerate() {
        if x < w {
            return Ok(i);
        }
        x -= w;
    }
    unreachable!("x < total")
}

impl<'a> Arbitrary<'a> for AddrSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(AddrSpec {
            kind: pick(u, &[8, 2, 1, 1])? as u8,
            n: u.arbitrary()?,
            off: pick(u, &[8, 1, 1, 1])? as u8,
        })
    }
}

impl<'a> Arbitrary<'a> for SizeSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(SizeSpec {
            kind: pick(u, &[12, 2, 1, 1])? as u8,
            n: u.arbitrary()?,
            off: pick(u, &[10, 1, 1])? as u8,
        })
    }
}

/// Protection bits: mostly valid, sometimes with bits outside `ALL`.
fn prot_bits(u: &mut Unstructured<'_>) -> arbitrary::Result<u32> {
    Ok(match pick(u, &[12, 1, 1, 1])? {
        0 => u.int_in_range(0..=7)?,
        1 => 8,
        2 => 0x13,
        _ => u32::MAX,
    })
}

impl<'a> Arbitrary<'a> for PortSel {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match pick(u, &[8, 1, 1, 1])? {
            0 => PortSel::Peer(u.int_in_range(0..=2)?),
            1 => PortSel::Null,
            2 => PortSel::Bogus([0x104, 0x7703, u32::MAX][u.int_in_range(0..=2)?]),
            _ => PortSel::Dead,
        })
    }
}

impl<'a> Arbitrary<'a> for Door {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match pick(u, &[3, 2, 3])? {
            0 => Door::Host(u.int_in_range(0..=2)?),
            1 => Door::Mach(u.int_in_range(0..=1)?, u.arbitrary()?),
            _ => {
                let caller = u.int_in_range(0..=2)?;
                let port = u.arbitrary()?;
                // Mostly a word of page 0 (allocated and writable at the start); else
                // anywhere an address can be (other pages, unaligned, straddling two
                // pages, past the memory, near 4 GiB); or 1 to 4 words below a page
                // boundary, so that the first pointers and the last ones are on
                // different pages.
                let limit = u64::from(LIMITS[caller]);
                let out = match pick(u, &[3, 2, 2])? {
                    0 => u32::from(u.arbitrary::<u16>()?) & !3,
                    1 => AddrSpec::arbitrary(u)?.resolve(limit),
                    _ => {
                        let boundary = AddrSpec::arbitrary(u)?.resolve(limit) & !(PAGE - 1);
                        boundary.wrapping_sub(4 * u.int_in_range(1..=4)?)
                    }
                };
                Door::Guest { caller, port, out }
            }
        })
    }
}

impl<'a> Arbitrary<'a> for OpSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match pick(u, &[3, 2, 2, 2, 2, 2, 2, 2, 2])? {
            0 => OpSpec::Allocate(u.arbitrary()?, u.arbitrary()?, u.arbitrary()?),
            1 => OpSpec::Deallocate(u.arbitrary()?, u.arbitrary()?),
            2 => OpSpec::Protect(
                u.arbitrary()?,
                u.arbitrary()?,
                u.arbitrary()?,
                prot_bits(u)?,
            ),
            3 => OpSpec::Read(u.arbitrary()?, u.arbitrary()?),
            4 => OpSpec::ReadOverwrite(u.arbitrary()?, u.arbitrary()?, u.arbitrary()?),
            5 => OpSpec::Write(
                u.arbitrary()?,
                u.arbitrary()?,
                u.arbitrary()?,
                u.arbitrary()?,
            ),
            6 => OpSpec::Copy(u.arbitrary()?, u.arbitrary()?, u.arbitrary()?),
            7 => OpSpec::CopyNear(u.arbitrary()?, u.arbitrary()?, u.int_in_range(-2..=2)?),
            _ => OpSpec::Region(u.arbitrary()?),
        })
    }
}

/// The random part of a sequence: 1 to [`MAX_STEPS`] steps, each a door (host API on a
/// task, a task acting through a port name of any class, or a task's guest calling through
/// a port name of any class) and a call with its arguments. Decoding takes steps while
/// input is left.
#[derive(Clone, Debug)]
pub(crate) struct Steps(Vec<(Door, OpSpec)>);

impl<'a> Arbitrary<'a> for Steps {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut steps = vec![(u.arbitrary()?, u.arbitrary()?)];
        while !u.is_empty() && steps.len() < MAX_STEPS {
            steps.push((u.arbitrary()?, u.arbitrary()?));
        }
        Ok(Steps(steps))
    }
}

/// A proptest strategy for `T`, decoded by its [`Arbitrary`] implementation from a byte
/// string of fewer than `max_len` bytes that proptest draws and shrinks.
fn decoded<T>(max_len: usize) -> impl Strategy<Value = T>
where
    T: for<'a> Arbitrary<'a> + fmt::Debug,
{
    prop::collection::vec(any::<u8>(), 0..max_len).prop_map(|bytes| {
        T::arbitrary_take_rest(Unstructured::new(&bytes)).expect("the spec types decode any bytes")
    })
}

/// The task a door acts on (`None`: the port names nothing), and the calling task.
fn parties(door: Door) -> (Option<usize>, Option<usize>) {
    match door {
        Door::Host(t) => (Some(t), None),
        Door::Mach(c, PortSel::Peer(t))
        | Door::Guest {
            caller: c,
            port: PortSel::Peer(t),
            ..
        } => (Some(t), Some(c)),
        Door::Mach(c, _) | Door::Guest { caller: c, .. } => (None, Some(c)),
    }
}

fn resolve(spec: &OpSpec, door: Door, limits: &[u64]) -> Op {
    let (target, caller) = parties(door);
    let tl = limits[target.unwrap_or(0)];
    let cl = limits[caller.unwrap_or(0)];
    let host = matches!(door, Door::Host(_));
    let host_buf = |s: u32| {
        if host && u64::from(s) > HOST_BUF_MAX {
            (u64::from(s) % HOST_BUF_MAX) as u32
        } else {
            s
        }
    };
    match *spec {
        OpSpec::Allocate(a, s, anywhere) => {
            let addr = a.resolve(tl);
            Op::Allocate {
                addr,
                size: s.resolve(tl, addr),
                anywhere,
            }
        }
        OpSpec::Deallocate(a, s) => {
            let addr = a.resolve(tl);
            Op::Deallocate {
                addr,
                size: s.resolve(tl, addr),
            }
        }
        OpSpec::Protect(a, s, set_max, prot) => {
            let addr = a.resolve(tl);
            // The host API takes a `VmProt`, which cannot carry other bits.
            let prot = if host { prot & 7 } else { prot };
            Op::Protect {
                addr,
                size: s.resolve(tl, addr),
                set_max,
                prot,
            }
        }
        OpSpec::Read(a, s) => {
            let addr = a.resolve(tl);
            Op::Read {
                addr,
                // the host door returns a host buffer: capped like the others
                size: host_buf(s.resolve(tl, addr)),
            }
        }
        OpSpec::ReadOverwrite(a, s, d) => {
            let addr = a.resolve(tl);
            let size = host_buf(s.resolve(tl, addr));
            Op::ReadOverwrite {
                addr,
                size,
                data: d.resolve(cl),
            }
        }
        OpSpec::Write(a, s, d, seed) => {
            let addr = a.resolve(tl);
            let count = host_buf(s.resolve(tl, addr));
            Op::Write {
                addr,
                count,
                data: d.resolve(cl),
                seed,
            }
        }
        OpSpec::Copy(a, s, d) => {
            let src = a.resolve(tl);
            Op::Copy {
                src,
                count: s.resolve(tl, src),
                dst: d.resolve(tl),
            }
        }
        OpSpec::CopyNear(a, s, k) => {
            let src = a.resolve(tl);
            let dst = (i64::from(src) + i64::from(k) * i64::from(PAGE)).rem_euclid(1 << 32) as u32;
            Op::Copy {
                src,
                count: s.resolve(tl, src),
                dst,
            }
        }
        OpSpec::Region(a) => Op::Region {
            addr: a.resolve(tl),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Outcomes.
// ---------------------------------------------------------------------------------------

/// Bytes, printed short.
#[derive(Clone, PartialEq, Eq)]
struct Blob(Vec<u8>);

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nonzero = self.0.iter().filter(|&&b| b != 0).count();
        write!(
            f,
            "Blob(len {}, {nonzero} nonzero, hash {:#x})",
            self.0.len(),
            hash_bytes(&self.0)
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Unit(KernResult<()>),
    Addr(KernResult<u32>),
    /// Host `vm_read`.
    Bytes(KernResult<Blob>),
    /// Host `vm_read_overwrite`: the result and the whole buffer afterwards.
    Overwrite(KernResult<u32>, Blob),
    /// `mach().vm_read`.
    Pair(KernResult<(u32, u32)>),
    Region(KernResult<Region>),
    /// A guest call: whether the guest's own store of the in-value went through (for a
    /// fixed `vm_allocate` and `vm_region`), and the code with the out-values read back
    /// from the guest's pointers after a success.
    Guest {
        stored: Option<bool>,
        result: KernResult<Vec<u32>>,
    },
    /// The runtime did something no model outcome describes (a trap out of a call, an
    /// unknown code); never equal to a model outcome.
    Broken(String),
}

/// The data of a host `vm_write`: no two pages alike (unlike `pattern`, whose period
/// divides the page), so that misplaced pages show.
fn bytes_for(seed: u8, len: u32) -> Vec<u8> {
    (0..u64::from(len))
        .map(|i| ((i ^ u64::from(seed) << 40).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect()
}

/// The sentinel the host buffers of `vm_read_overwrite` start filled with.
const SENTINEL: u8 = 0xA5;

/// What a successful call gives its caller.
#[derive(Clone, Debug)]
enum Reply {
    Done,
    /// An address (`vm_allocate`) or a size (`vm_read_overwrite`).
    Value(u32),
    /// `vm_read`'s data address and count.
    Pair(u32, u32),
    Region(Region),
}

/// The largest region size a guest's 32-bit out-value carries. Mach does not say what
/// `vm_region` writes for a 4 GiB region (all 65536 pages alike); the runtime documents
/// that it reports one page short (docs/spec.md §4), and the model follows it.
const MAX_GUEST_REGION: u64 = (u32::MAX - (PAGE - 1)) as u64;

impl Reply {
    /// The out-values a guest finds behind its pointers, in parameter order.
    fn guest_values(&self) -> Vec<u32> {
        match *self {
            Reply::Done => Vec::new(),
            Reply::Value(v) => vec![v],
            Reply::Pair(a, b) => vec![a, b],
            Reply::Region(r) => vec![
                r.address,
                r.size.min(MAX_GUEST_REGION) as u32,
                r.protection.bits(),
                r.max_protection.bits(),
            ],
        }
    }
}

/// The outcome of `op` through `door` when the call gives `r`: the guest door sees codes
/// and out-values, the host API and `Task::mach()` see Rust values.
fn outcome(door: Door, op: &Op, stored: Option<bool>, r: KernResult<Reply>) -> Outcome {
    if let Door::Guest { .. } = door {
        return Outcome::Guest {
            stored,
            result: r.map(|reply| reply.guest_values()),
        };
    }
    let value = |reply| match reply {
        Reply::Value(v) => v,
        other => unreachable!("{other:?} is not a value"),
    };
    match op {
        Op::Allocate { .. } | Op::ReadOverwrite { .. } => Outcome::Addr(r.map(value)),
        Op::Read { .. } => Outcome::Pair(r.map(|reply| match reply {
            Reply::Pair(a, b) => (a, b),
            other => unreachable!("{other:?} is not a pair"),
        })),
        Op::Region { .. } => Outcome::Region(r.map(|reply| match reply {
            Reply::Region(region) => region,
            other => unreachable!("{other:?} is not a region"),
        })),
        _ => Outcome::Unit(r.map(drop)),
    }
}

/// A guest call as the interpreter export `call` of [`model_guest`] takes it: the number
/// it dispatches on, the import's parameters after the port (docs/spec.md §4's order), how many
/// pointers into the caller's memory it passes (an in-out pointer first), and the in-value
/// the guest stores behind the first pointer before the call.
struct GuestCall {
    num: u32,
    args: [u32; 4],
    ptrs: usize,
    in_value: Option<u32>,
}

fn guest_call(op: &Op, out: u32) -> GuestCall {
    let p = |i: u32| out.wrapping_add(4 * i);
    let call = |num, args, ptrs, in_value| GuestCall {
        num,
        args,
        ptrs,
        in_value,
    };
    match *op {
        Op::Allocate {
            addr,
            size,
            anywhere,
        } => call(
            0,
            [p(0), size, u32::from(anywhere), 0],
            1,
            (!anywhere).then_some(addr),
        ),
        Op::Deallocate { addr, size } => call(1, [addr, size, 0, 0], 0, None),
        Op::Protect {
            addr,
            size,
            set_max,
            prot,
        } => call(2, [addr, size, u32::from(set_max), prot], 0, None),
        Op::Read { addr, size } => call(3, [addr, size, p(0), p(1)], 2, None),
        Op::ReadOverwrite { addr, size, data } => call(4, [addr, size, data, p(0)], 1, None),
        Op::Write {
            addr, count, data, ..
        } => call(5, [addr, data, count, 0], 0, None),
        Op::Copy { src, count, dst } => call(6, [src, count, dst, 0], 0, None),
        Op::Region { addr } => call(7, [p(0), p(1), p(2), p(3)], 4, Some(addr)),
    }
}

/// The pointers a guest call passes: `out`, `out + 4`, ... (never overlapping each other).
fn guest_ptrs(op: &Op, out: u32) -> Vec<u32> {
    (0..guest_call(op, out).ptrs as u32)
        .map(|i| out.wrapping_add(4 * i))
        .collect()
}

/// Runs `op` through `door` on the model. Changes the model only on success (and by the
/// guest's own store of an in-value, which is not part of the call).
fn model_step(m: &mut [TaskModel], door: Door, op: &Op) -> Outcome {
    let (target, caller) = parties(door);
    let (ptrs, stored) = match door {
        Door::Guest { caller, out, .. } => {
            let ptrs = guest_ptrs(op, out);
            // docs/spec.md §5: the guest's store traps unless its 4 bytes are allocated with WRITE.
            let stored = guest_call(op, out).in_value.map(|v| {
                let ok = m[caller].map.check_access(ptrs[0], 4, 2).is_ok();
                if ok {
                    m[caller].store_u32(ptrs[0], v);
                }
                ok
            });
            (ptrs, stored)
        }
        _ => (Vec::new(), None),
    };
    let ptrs = Ptrs {
        caller: caller.unwrap_or(0),
        at: &ptrs,
    };
    let Some(t) = target else {
        return outcome(door, op, stored, Err(KernReturn::SendInvalidDest));
    };
    let r = match *op {
        Op::Allocate {
            addr,
            size,
            anywhere,
        } => model_allocate(m, t, ptrs, addr, size, anywhere).map(Reply::Value),
        Op::Deallocate { addr, size } => {
            model_deallocate(&mut m[t], addr, size).map(|()| Reply::Done)
        }
        Op::Protect {
            addr,
            size,
            set_max,
            prot,
        } => model_protect(&mut m[t], addr, size, set_max, prot).map(|()| Reply::Done),
        Op::Copy { src, count, dst } => {
            model_copy(&mut m[t], src, count, dst).map(|()| Reply::Done)
        }
        Op::Region { addr } => model_region(m, t, ptrs, addr).map(Reply::Region),
        Op::Read { addr, size } => match caller {
            None => {
                return Outcome::Bytes(if size == 0 {
                    Ok(Blob(Vec::new()))
                } else {
                    model_read_checks(&m[t], addr, size).map(|()| Blob(m[t].read(addr, size)))
                });
            }
            Some(c) => model_read(m, t, c, ptrs, addr, size).map(|(a, s)| Reply::Pair(a, s)),
        },
        Op::ReadOverwrite { addr, size, data } => match caller {
            None => {
                let r = if size == 0 {
                    Ok(0)
                } else {
                    model_read_checks(&m[t], addr, size).map(|()| size)
                };
                let buf = match r {
                    Ok(_) => m[t].read(addr, size),
                    Err(_) => vec![SENTINEL; size as usize],
                };
                return Outcome::Overwrite(r, Blob(buf));
            }
            Some(c) => model_read_overwrite(m, t, c, ptrs, addr, size, data).map(Reply::Value),
        },
        Op::Write {
            addr,
            count,
            data,
            seed,
        } => model_write(m, t, caller, addr, count, data, seed).map(|()| Reply::Done),
    };
    outcome(door, op, stored, r)
}

/// `vm_region` (docs/spec.md §4); with pointers, the address comes from `*ptrs[0]` and the region
/// goes to `ptrs[0..4]`. The in-pointer is checked first (rule 1.3, as for a fixed
/// `vm_allocate`), then the target's map (no region: `KERN_NO_SPACE`), then the
/// out-pointers (rule 1.5).
fn model_region(m: &mut [TaskModel], t: usize, ptrs: Ptrs, addr: u32) -> KernResult<Region> {
    ptrs.check(m, 0..1, 3)?;
    let addr = ptrs.read(m, 0, addr);
    let region = m[t].map.region(addr).ok_or(KernReturn::NoSpace)?;
    ptrs.check(m, 1..4, 2)?;
    ptrs.write(m, 0, &Reply::Region(region).guest_values());
    Ok(region)
}

/// `vm_read` by task `c` (docs/spec.md §4): the data lands in a new region of the caller.
fn model_read(
    m: &mut [TaskModel],
    t: usize,
    c: usize,
    ptrs: Ptrs,
    addr: u32,
    size: u32,
) -> KernResult<(u32, u32)> {
    if size == 0 {
        ptrs.check(m, 0..2, 2)?;
        ptrs.write(m, 0, &[0, 0]);
        return Ok((0, 0));
    }
    model_read_checks(&m[t], addr, size)?;
    ptrs.check(m, 0..2, 2)?;
    let count = u64::from(size) / P;
    if !m[c].quota_allows(count) {
        return Err(KernReturn::NoSpace);
    }
    let first = m[c].map.find_free(count).ok_or(KernReturn::NoSpace)?;
    // The snapshot is taken before the caller's map changes.
    let pages = m[t].snapshot(addr, size);
    m[c].allocate(first, first + count);
    let data = (first * P) as u32;
    m[c].put(data, size, pages);
    ptrs.write(m, 0, &[data, size]);
    Ok((data, size))
}

/// `vm_read_overwrite` by task `c` into its own `[data, data + size)` (docs/spec.md §4): the
/// bytes are copied, then the size is written.
fn model_read_overwrite(
    m: &mut [TaskModel],
    t: usize,
    c: usize,
    ptrs: Ptrs,
    addr: u32,
    size: u32,
    data: u32,
) -> KernResult<u32> {
    if size == 0 {
        ptrs.check(m, 0..1, 2)?;
        ptrs.write(m, 0, &[0]);
        return Ok(0);
    }
    if !aligned(data) {
        return Err(KernReturn::InvalidArgument);
    }
    model_read_checks(&m[t], addr, size)?;
    m[c].map.check_access(data, size, 2)?;
    ptrs.check(m, 0..1, 2)?;
    let pages = m[t].snapshot(addr, size);
    m[c].put(data, size, pages);
    ptrs.write(m, 0, &[size]);
    Ok(size)
}

/// `vm_write` (docs/spec.md §4) of `[data, data + count)` of task `c`, or of the host's
/// [`bytes_for`]`(seed, count)` when there is no calling task.
fn model_write(
    m: &mut [TaskModel],
    t: usize,
    caller: Option<usize>,
    addr: u32,
    count: u32,
    data: u32,
    seed: u8,
) -> KernResult<()> {
    if count == 0 {
        return Ok(());
    }
    if let Some(c) = caller {
        m[c].map
            .check_access(data, count, 1)
            .map_err(|_| KernReturn::SendInvalidMemory)?;
        if !aligned(data) {
            return Err(KernReturn::InvalidArgument);
        }
    }
    if !aligned(addr) || !aligned(count) {
        return Err(KernReturn::InvalidArgument);
    }
    m[t].map.check_access(addr, count, 2)?;
    match caller {
        None => m[t].write(addr, &bytes_for(seed, count)),
        Some(c) => {
            let pages = m[c].snapshot(data, count);
            m[t].put(addr, count, pages);
        }
    }
    Ok(())
}

/// The bytes a successful `op` would move.
fn transfer_bytes(op: &Op) -> u64 {
    match *op {
        Op::Read { size, .. } | Op::ReadOverwrite { size, .. } => u64::from(size),
        Op::Write { count, .. } | Op::Copy { count, .. } => u64::from(count),
        _ => 0,
    }
}

fn is_ok(o: &Outcome) -> bool {
    match o {
        Outcome::Unit(r) => r.is_ok(),
        Outcome::Addr(r) => r.is_ok(),
        Outcome::Bytes(r) => r.is_ok(),
        Outcome::Overwrite(r, _) => r.is_ok(),
        Outcome::Pair(r) => r.is_ok(),
        Outcome::Region(r) => r.is_ok(),
        Outcome::Guest { result, .. } => result.is_ok(),
        Outcome::Broken(_) => false,
    }
}

struct World {
    tasks: Vec<Task>,
    /// `ports[c][t]`: task `c`'s name for task `t`.
    ports: Vec<Vec<PortName>>,
    /// `dead[c]`: task `c`'s name for a terminated task.
    dead: Vec<PortName>,
}

impl World {
    fn port(&self, c: usize, sel: PortSel) -> PortName {
        match sel {
            PortSel::Peer(t) => self.ports[c][t],
            PortSel::Null => PortName::NULL,
            PortSel::Bogus(raw) => PortName(raw),
            PortSel::Dead => self.dead[c],
        }
    }

    /// Runs `op` through `door` on the runtime.
    fn step(&self, door: Door, op: &Op) -> Outcome {
        match door {
            Door::Host(t) => {
                let task = &self.tasks[t];
                match *op {
                    Op::Allocate {
                        addr,
                        size,
                        anywhere,
                    } => Outcome::Addr(task.vm_allocate(addr, size, anywhere)),
                    Op::Deallocate { addr, size } => Outcome::Unit(task.vm_deallocate(addr, size)),
                    Op::Protect {
                        addr,
                        size,
                        set_max,
                        prot,
                    } => Outcome::Unit(task.vm_protect(
                        addr,
                        size,
                        set_max,
                        VmProt::from_bits(prot).expect("host protections are valid"),
                    )),
                    Op::Read { addr, size } => Outcome::Bytes(task.vm_read(addr, size).map(Blob)),
                    Op::ReadOverwrite { addr, size, .. } => {
                        let mut buf = vec![SENTINEL; size as usize];
                        let r = task.vm_read_overwrite(addr, &mut buf);
                        Outcome::Overwrite(r, Blob(buf))
                    }
                    Op::Write {
                        addr, count, seed, ..
                    } => Outcome::Unit(task.vm_write(addr, &bytes_for(seed, count))),
                    Op::Copy { src, count, dst } => Outcome::Unit(task.vm_copy(src, count, dst)),
                    Op::Region { addr } => Outcome::Region(task.vm_region(addr)),
                }
            }
            Door::Mach(c, sel) => {
                let mach = self.tasks[c].mach();
                let port = self.port(c, sel);
                match *op {
                    Op::Allocate {
                        addr,
                        size,
                        anywhere,
                    } => Outcome::Addr(mach.vm_allocate(port, addr, size, anywhere)),
                    Op::Deallocate { addr, size } => {
                        Outcome::Unit(mach.vm_deallocate(port, addr, size))
                    }
                    Op::Protect {
                        addr,
                        size,
                        set_max,
                        prot,
                    } => Outcome::Unit(mach.vm_protect(port, addr, size, set_max, prot)),
                    Op::Read { addr, size } => Outcome::Pair(mach.vm_read(port, addr, size)),
                    Op::ReadOverwrite { addr, size, data } => {
                        Outcome::Addr(mach.vm_read_overwrite(port, addr, size, data))
                    }
                    Op::Write {
                        addr, count, data, ..
                    } => Outcome::Unit(mach.vm_write(port, addr, data, count)),
                    Op::Copy { src, count, dst } => {
                        Outcome::Unit(mach.vm_copy(port, src, count, dst))
                    }
                    Op::Region { addr } => Outcome::Region(mach.vm_region(port, addr)),
                }
            }
            Door::Guest { caller, port, out } => {
                guest_step(&self.tasks[caller], self.port(caller, port), op, out)
            }
        }
    }
}

/// Runs `op` as task's guest does (through [`model_guest`]'s exports): stores the in-value,
/// calls the import through `call`, and after a success loads the out-values back.
fn guest_step(task: &Task, port: PortName, op: &Op, out: u32) -> Outcome {
    let call = guest_call(op, out);
    let ptrs = guest_ptrs(op, out);
    use wasmach::wasmtime::Trap;
    let stored = match call.in_value {
        None => None,
        Some(v) => match task.call::<(u32, u32), ()>("poke", (ptrs[0], v)) {
            Ok(()) => Some(true),
            Err(e) if e.downcast_ref::<Trap>() == Some(&Trap::MemoryOutOfBounds) => Some(false),
            Err(e) => return Outcome::Broken(format!("the guest's store failed: {e:#}")),
        },
    };
    let [a, b, c, d] = call.args;
    let code = match task
        .call::<(u32, u32, u32, u32, u32, u32), u32>("call", (call.num, port.0, a, b, c, d))
    {
        Ok(code) => code,
        Err(e) => return Outcome::Broken(format!("the guest's call failed: {e:#}")),
    };
    let result = if code == wasmach::KERN_SUCCESS {
        let mut values = Vec::new();
        for &p in &ptrs {
            match task.call::<u32, u32>("peek", p) {
                Ok(v) => values.push(v),
                Err(e) => {
                    return Outcome::Broken(format!(
                        "the guest's load of its out-value at {p:#x} failed: {e:#}"
                    ));
                }
            }
        }
        Ok(values)
    } else {
        match KernReturn::from_code(code) {
            Some(k) => Err(k),
            None => return Outcome::Broken(format!("unknown code {code:#x}")),
        }
    };
    Outcome::Guest { stored, result }
}

/// `(task, first page, end page)` runs whose bytes a step may have changed (or must not
/// have changed, when it failed).
fn touched(door: Door, op: &Op, outcome: &Outcome) -> Vec<(usize, u64, u64)> {
    let (target, caller) = parties(door);
    let mut runs = Vec::new();
    let mut add = |task: Option<usize>, addr: u32, size: u32| {
        if let Some(task) = task {
            let end = (u64::from(addr) + u64::from(size).max(1)).min(SPACE_END);
            runs.push((task, u64::from(addr) / P, end.div_ceil(P)));
        }
    };
    match *op {
        Op::Allocate { addr, size, .. } => {
            add(target, addr, size);
            if let Outcome::Addr(Ok(a)) = outcome {
                add(target, *a, size);
            }
        }
        Op::Deallocate { addr, size } | Op::Protect { addr, size, .. } => add(target, addr, size),
        Op::Read { addr, size } => {
            add(target, addr, size);
            if let Outcome::Pair(Ok((a, s))) = outcome {
                add(caller, *a, *s);
            }
        }
        Op::ReadOverwrite { addr, size, data } => {
            add(target, addr, size);
            add(caller, data, size);
        }
        Op::Write {
            addr, count, data, ..
        } => {
            add(target, addr, count);
            add(caller, data, count);
        }
        Op::Copy { src, count, dst } => {
            add(target, src, count);
            add(target, dst, count);
        }
        Op::Region { .. } => {}
    }
    if let Door::Guest { out, .. } = door {
        for p in guest_ptrs(op, out) {
            add(caller, p, 4);
        }
    }
    runs
}

/// The FNV-1a-like hash over little-endian `u64` words that the guest's `hash` computes.
fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..w.len()].copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Every task of the model property runs this module. `hash` reads a page with the
/// guest's own loads (so the table binds them, docs/spec.md §5, and pages without `READ` can be
/// compared); `poke` and `peek` are the guest's own 4-byte store and load; `call` is the
/// guest door: it calls the `"mach"` import numbered `n` (see [`guest_call`]) on `port`
/// with the parameters that follow.
fn model_guest(memory: &str) -> String {
    guest(
        memory,
        r#"
          (func (export "hash") (param $addr i32) (result i64)
            (local $i i32) (local $h i64)
            (local.set $h (i64.const 0xcbf29ce484222325))
            (block $done (loop $next
              (br_if $done (i32.ge_u (local.get $i) (i32.const 65536)))
              (local.set $h (i64.mul
                (i64.xor (local.get $h) (i64.load (i32.add (local.get $addr) (local.get $i))))
                (i64.const 0x100000001b3)))
              (local.set $i (i32.add (local.get $i) (i32.const 8)))
              (br $next)))
            (local.get $h))
          (func (export "poke") (param $addr i32) (param $v i32)
            (i32.store (local.get $addr) (local.get $v)))
          (func (export "peek") (param $addr i32) (result i32)
            (i32.load (local.get $addr)))
          (func (export "call") (param $n i32) (param $port i32)
                (param $a i32) (param $b i32) (param $c i32) (param $d i32) (result i32)
            (block $region (block $copy (block $write (block $overwrite
            (block $read (block $protect (block $deallocate (block $allocate
              (br_table $allocate $deallocate $protect $read $overwrite $write $copy $region
                (local.get $n)))
              (return (call $vm_allocate
                (local.get $port) (local.get $a) (local.get $b) (local.get $c))))
              (return (call $vm_deallocate (local.get $port) (local.get $a) (local.get $b))))
              (return (call $vm_protect (local.get $port)
                (local.get $a) (local.get $b) (local.get $c) (local.get $d))))
              (return (call $vm_read (local.get $port)
                (local.get $a) (local.get $b) (local.get $c) (local.get $d))))
              (return (call $vm_read_overwrite (local.get $port)
                (local.get $a) (local.get $b) (local.get $c) (local.get $d))))
              (return (call $vm_write
                (local.get $port) (local.get $a) (local.get $b) (local.get $c))))
              (return (call $vm_copy
                (local.get $port) (local.get $a) (local.get $b) (local.get $c))))
            (call $vm_region (local.get $port)
              (local.get $a) (local.get $b) (local.get $c) (local.get $d)))"#,
    )
}

/// The three task images: (declared maximum 24 pages), (maximum 16 with a quota of 8),
/// (no maximum: 65536 pages, up to 4 GiB), and a module for the task that dies.
/// The runtime (copying bytes, or sharing pages copy-on-write for every copy between task
/// memories, however small) and the model's modules compiled in it.
fn images(copy: CopyMode) -> &'static (Runtime, Vec<TaskModule>) {
    static PHYSICAL: OnceLock<(Runtime, Vec<TaskModule>)> = OnceLock::new();
    static VIRTUAL: OnceLock<(Runtime, Vec<TaskModule>)> = OnceLock::new();
    let cell = match copy {
        CopyMode::Physical => &PHYSICAL,
        _ => &VIRTUAL,
    };
    cell.get_or_init(|| {
        let options = RuntimeOptions::default().copy(copy);
        let rt = Runtime::with_options(options).expect("runtime");
        // The declared maxima are `LIMITS`.
        let modules = ["(memory 2 24)", "(memory 1 16)", "(memory 1)", "(memory 1)"]
            .iter()
            .map(|m| rt.compile(model_guest(m)).expect("compile"))
            .collect();
        (rt, modules)
    })
}

const QUOTA_PAGES: u64 = 8;

fn setup(copy: CopyMode) -> (World, Vec<TaskModel>) {
    let (rt, modules) = images(copy);
    let tasks = vec![
        rt.spawn(&modules[0]).expect("spawn"),
        rt.spawn_with(
            &modules[1],
            &TaskOptions::default().max_memory(QUOTA_PAGES * P),
        )
        .expect("spawn"),
        rt.spawn(&modules[2]).expect("spawn"),
    ];
    let models = vec![
        TaskModel::new(LIMITS[0], 2, None),
        TaskModel::new(LIMITS[1], 1, Some(QUOTA_PAGES)),
        TaskModel::new(LIMITS[2], 1, None),
    ];
    let ports = (0..3)
        .map(|c| {
            (0..3)
                .map(|t| {
                    if c == t {
                        tasks[c].self_port()
                    } else {
                        tasks[c].insert_port(&tasks[t])
                    }
                })
                .collect()
        })
        .collect();
    let doomed = rt.spawn(&modules[3]).expect("spawn");
    let dead = tasks.iter().map(|t| t.insert_port(&doomed)).collect();
    doomed.terminate();
    (World { tasks, ports, dead }, models)
}

/// The guest's own hash of `page` (its loads), or the trap that stopped it.
fn guest_hash(task: &Task, page: u64) -> Result<u64, wasmach::wasmtime::Trap> {
    task.call::<u32, u64>("hash", (page * P) as u32)
        .map_err(|e| *e.downcast_ref::<wasmach::wasmtime::Trap>().expect("a trap"))
}

/// Whether the table lets the guest's own loads read a page (docs/spec.md's guest protection: an
/// allocated page whose current protection has READ or WRITE).
fn guest_may_load(state: Option<(u8, u8)>) -> bool {
    state.is_some_and(|(cur, _)| cur & 3 != 0)
}

/// Compares the pages of `runs` (at most 16 of each run: its first and last 8) with the
/// model, through the guest's own loads: an allocated page it may load holds the model's
/// bytes; any other page of its memory traps (the table binds the guest's loads).
fn compare_pages(
    world: &World,
    models: &[TaskModel],
    runs: &[(usize, u64, u64)],
    what: &dyn Fn() -> String,
) -> Result<(), TestCaseError> {
    for &(t, first, end) in runs {
        let end = end.min(models[t].map.limit());
        let pages: Vec<u64> = if end.saturating_sub(first) <= 16 {
            (first..end).collect()
        } else {
            (first..first + 8).chain(end - 8..end).collect()
        };
        for page in pages {
            if page >= models[t].mem_pages {
                continue;
            }
            let state = models[t].map.get(page);
            let got = guest_hash(&world.tasks[t], page);
            if guest_may_load(state) {
                let want = hash_bytes(&models[t].page(page));
                prop_assert_eq!(
                    got,
                    Ok(want),
                    "bytes of task {} page {} after {}",
                    t,
                    page,
                    what()
                );
            } else {
                prop_assert_eq!(
                    got,
                    Err(wasmach::wasmtime::Trap::MemoryOutOfBounds),
                    "guest load of task {} page {} ({:?}) after {}",
                    t,
                    page,
                    state,
                    what()
                );
            }
        }
    }
    Ok(())
}

fn compare_maps(
    world: &World,
    models: &[TaskModel],
    what: &dyn Fn() -> String,
) -> Result<(), TestCaseError> {
    for (t, (task, model)) in world.tasks.iter().zip(models).enumerate() {
        prop_assert_eq!(
            task.regions(),
            model.map.regions(),
            "map of task {} after {}",
            t,
            what()
        );
        prop_assert_eq!(
            u64::from(task.memory_pages()),
            model.mem_pages,
            "memory size of task {} after {}",
            t,
            what()
        );
    }
    Ok(())
}

/// Fixed first steps, so that every sequence starts on maps with several regions of
/// different protections and data (run and checked like the random steps).
fn prelude() -> Vec<(Door, Op)> {
    let p = PAGE;
    let alloc = |addr, size| Op::Allocate {
        addr,
        size,
        anywhere: false,
    };
    let protect = |addr, size, set_max, prot| Op::Protect {
        addr,
        size,
        set_max,
        prot,
    };
    let write = |addr, count, seed| Op::Write {
        addr,
        count,
        data: 0,
        seed,
    };
    let (t0, t1, t2) = (Door::Host(0), Door::Host(1), Door::Host(2));
    vec![
        (t0, alloc(2 * p, 14 * p)),
        (t0, write(2 * p, 3 * p, 1)),
        (t0, write(8 * p, 6 * p, 4)),
        (t0, protect(4 * p, 2 * p, false, 1)),
        (t0, protect(6 * p, p, true, 1)),
        (t0, protect(7 * p, p, false, 0)),
        (t1, alloc(2 * p, 3 * p)),
        (t1, write(2 * p, p, 2)),
        (t2, alloc(p, 4 * p)),
        (t2, alloc(0xFFFA_0000, 6 * p)),
        (t2, protect(0xFFFC_0000, p, false, 2)),
        (t2, write(0xFFFF_0000, p, 3)),
    ]
}

impl Steps {
    /// Runs the fixed prelude and then these steps through the runtime and through the
    /// model, comparing outcomes, maps and page bytes after every step, once with every
    /// copy between task memories virtual (pages shared copy-on-write, however few) and
    /// once physical (the fuzz target runs this on every input). Returns how many calls it
    /// made (skipped steps left out).
    pub(crate) fn run(&self) -> Result<usize, TestCaseError> {
        let shared = run_sequence(&self.0, CopyMode::Virtual)?;
        Ok(shared + run_sequence(&self.0, CopyMode::Physical)?)
    }
}

/// Runs the fixed prelude and then `steps` through the runtime and through the model,
/// comparing outcomes, maps and page bytes after every step. Returns the calls made.
fn run_sequence(steps: &[(Door, OpSpec)], copy: CopyMode) -> Result<usize, TestCaseError> {
    let (world, mut models) = setup(copy);
    let mut done = Vec::new();
    let prelude = prelude().into_iter().map(|(d, op)| (d, Ok(op)));
    let random = steps.iter().map(|(d, spec)| (*d, Err(spec)));
    for (i, (door, op)) in prelude.chain(random).enumerate() {
        let limits: Vec<u64> = models.iter().map(|m| m.map.limit()).collect();
        let op = op.unwrap_or_else(|spec| resolve(spec, door, &limits));
        if transfer_bytes(&op) > TRANSFER_MAX {
            let mut trial = models.clone();
            if is_ok(&model_step(&mut trial, door, &op)) {
                continue; // a big transfer in the 4 GiB task: skipped, see TRANSFER_MAX
            }
        }
        let want = model_step(&mut models, door, &op);
        let got = world.step(door, &op);
        let what = || format!("{copy:?} copies, step {i}: {door:?} {op:?} (earlier: {done:?})");
        prop_assert_eq!(&got, &want, "outcome of {}", what());
        compare_maps(&world, &models, &what)?;
        compare_pages(&world, &models, &touched(door, &op, &want), &what)?;
        done.push((door, op));
    }
    // Every allocated page of the small tasks; in the 4 GiB task every page with data and
    // the first and last page of every region.
    let what = || "the whole sequence".to_string();
    for (t, model) in models.iter().enumerate() {
        let runs: Vec<(usize, u64, u64)> = if model.map.limit() <= 64 {
            (0..model.map.limit()).map(|p| (t, p, p + 1)).collect()
        } else {
            let data = model.data.keys().map(|&p| (t, p, p + 1));
            let ends = model.map.regions().into_iter().flat_map(|r| {
                let first = u64::from(r.address) / P;
                let end = first + r.size / P;
                [(t, first, first + 1), (t, end - 1, end)]
            });
            data.chain(ends).collect()
        };
        compare_pages(&world, &models, &runs, &what)?;
    }
    Ok(done.len())
}

/// 64 cases; a failing case's seed is appended to the committed regression file, whose
/// seeds every run replays first.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/all/map_model.proptest-regressions"
        )))),
        ..ProptestConfig::default()
    }
}

/// Runs `test` on cases drawn from `strategy` with [`config`], from a run seed taken from
/// `PROPTEST_RNG_SEED` or else drawn at random. A failure panics with proptest's report (the
/// shrunk case), the run seed, with which the same run is repeated, and the failing case's
/// own seed, as the regression file keeps it.
fn check<S>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: fmt::Debug,
{
    use std::hash::{BuildHasher, Hasher};
    let mut config = config();
    let seed = match config.rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random => std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish(),
    };
    config.rng_seed = RngSeed::Fixed(seed);
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!(
            "{e}\nrun seed: {seed} (PROPTEST_RNG_SEED={seed} repeats this run; the failing \
             case's seed is the last `cc` line of tests/all/map_model.proptest-regressions \
             unless it was replayed from there)"
        );
    }
}

/// docs/spec.md §3–5 as a whole: every call's code and out-values, every task's map and memory
/// size, and the bytes of the pages involved (out-pointers included), after every step of a
/// random sequence of host, cross-task and guest calls, equal the page model's.
#[test]
fn host_cross_task_and_guest_calls_match_the_page_model() {
    check(decoded::<Steps>(STEPS_BYTES_MAX), |steps| {
        steps.run().map(drop)
    });
}

// ---------------------------------------------------------------------------------------
// The same page model against `VmMap` directly.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum MapOp {
    Allocate(u32, u32),
    Deallocate(u32, u32),
    Protect(u32, u32, bool, u8),
    CheckAccess(AddrSpec, SizeSpec, u8),
    FindFree(u32),
    Region(AddrSpec),
    AnyAllocated(u32, u32),
}

/// A page range `[first, first + len)` near the start, near the limit or anywhere (see
/// [`pages_of`]).
fn page_run(u: &mut Unstructured<'_>) -> arbitrary::Result<(u32, u32)> {
    let first = u.arbitrary()?;
    let len = match pick(u, &[4, 1, 1])? {
        0 => u.int_in_range(0..=6)?,
        1 => u32::MAX,
        _ => u.arbitrary()?,
    };
    Ok((first, len))
}

impl<'a> Arbitrary<'a> for MapOp {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match pick(u, &[3, 2, 3, 3, 1, 1, 1])? {
            0 => {
                let (f, l) = page_run(u)?;
                MapOp::Allocate(f, l)
            }
            1 => {
                let (f, l) = page_run(u)?;
                MapOp::Deallocate(f, l)
            }
            2 => {
                let (f, l) = page_run(u)?;
                MapOp::Protect(f, l, u.arbitrary()?, u.int_in_range(0..=7)?)
            }
            3 => MapOp::CheckAccess(u.arbitrary()?, u.arbitrary()?, u.int_in_range(0..=7)?),
            4 => MapOp::FindFree(match pick(u, &[1, 1])? {
                0 => u.int_in_range(0..=7)?,
                _ => u.arbitrary()?,
            }),
            5 => MapOp::Region(u.arbitrary()?),
            _ => {
                let (f, l) = page_run(u)?;
                MapOp::AnyAllocated(f, l)
            }
        })
    }
}

/// Resolves a page run against `limit`: the first page near 0 or near the limit, the
/// length a few pages, to the limit, or (clamped to 65536) huge.
fn pages_of(limit: u64, (f, l): (u32, u32)) -> PageRange {
    let first = match f % 3 {
        0 => u64::from(f / 3) % (limit + 2),
        1 => (limit + u64::from(f / 3) % 4).saturating_sub(2),
        _ => u64::from(f / 3) % 4,
    }
    .min(u64::from(MAX_PAGES));
    let len = if l < 7 {
        u64::from(l)
    } else if l == u32::MAX {
        limit.saturating_sub(first)
    } else {
        u64::from(l)
    };
    let end = (first + len).min(u64::from(MAX_PAGES));
    PageRange::new(first as u32, end as u32).expect("first <= end <= MAX_PAGES")
}

fn compare_map(
    map: &VmMap,
    model: &PageModel,
    what: &dyn Fn() -> String,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(map.limit() as u64, model.limit(), "limit after {}", what());
    prop_assert_eq!(
        u64::from(map.allocated_pages()),
        model.allocated(),
        "allocated after {}",
        what()
    );
    prop_assert_eq!(
        map.regions().collect::<Vec<_>>(),
        model.regions(),
        "regions after {}",
        what()
    );
    if model.limit() <= 64 {
        for page in 0..model.limit() + 2 {
            let got = map
                .entry(page as u32)
                .map(|s| (s.protection.bits() as u8, s.max_protection.bits() as u8));
            prop_assert_eq!(got, model.get(page), "entry {} after {}", page, what());
        }
    }
    Ok(())
}

fn run_map(limit: u32, initial: u32, ops: &[MapOp]) -> Result<(), TestCaseError> {
    let mut map = VmMap::new(limit, initial);
    let mut model = PageModel::new(limit, initial);
    let l = u64::from(limit);
    compare_map(&map, &model, &|| "new".to_string())?;
    for (i, op) in ops.iter().enumerate() {
        let what = || format!("op {i}: {op:?} on a map of {limit} pages, {initial} initial");
        match *op {
            MapOp::Allocate(f, n) => {
                let r = pages_of(l, (f, n));
                let (first, end) = (u64::from(r.first()), u64::from(r.end()));
                let any = model.any_allocated(first, end);
                prop_assert_eq!(
                    map.any_allocated(r),
                    any,
                    "any_allocated of {:?}: {}",
                    r,
                    what()
                );
                // `allocate` requires a free range inside the limit (the kernel checks first).
                if end <= l && !any {
                    map.allocate(r);
                    model.allocate(first, end);
                }
            }
            MapOp::Deallocate(f, n) => {
                let r = pages_of(l, (f, n));
                let freed = model.deallocate(u64::from(r.first()), u64::from(r.end()));
                prop_assert_eq!(u64::from(map.deallocate(r)), freed, "freed by {}", what());
            }
            MapOp::Protect(f, n, set_max, bits) => {
                let r = pages_of(l, (f, n));
                let (first, end) = (u64::from(r.first()), u64::from(r.end()));
                if first < end {
                    let want = model.check_protect(first, end, bits);
                    let got = map.check_protect(r, prot(bits));
                    prop_assert_eq!(got, want, "check_protect of {}", what());
                    if want.is_ok() {
                        map.protect(r, set_max, prot(bits));
                        model.protect(first, end, set_max, bits);
                    }
                }
            }
            MapOp::CheckAccess(a, s, need) => {
                let addr = a.resolve(l);
                let size = s.resolve(l, addr).max(1);
                let want_range = PageModel::covering(addr, size).map(|(f, e)| {
                    PageRange::new(f as u32, e as u32).expect("the model covers inside 4 GiB")
                });
                prop_assert_eq!(
                    PageRange::covering(addr, size),
                    want_range,
                    "covering({:#x}, {:#x})",
                    addr,
                    size
                );
                prop_assert_eq!(
                    map.check_access(addr, size, prot(need)),
                    model.check_access(addr, size, need),
                    "check_access({:#x}, {:#x}, {}) in {}",
                    addr,
                    size,
                    need,
                    what()
                );
            }
            MapOp::FindFree(count) => {
                let want = if u64::from(count) > l {
                    None
                } else {
                    model.find_free(u64::from(count))
                };
                prop_assert_eq!(
                    map.find_free(count).map(u64::from),
                    want,
                    "find_free({}) in {}",
                    count,
                    what()
                );
            }
            MapOp::Region(a) => {
                let addr = a.resolve(l);
                prop_assert_eq!(
                    map.region(addr),
                    model.region(addr),
                    "region({:#x}) in {}",
                    addr,
                    what()
                );
            }
            MapOp::AnyAllocated(f, n) => {
                let r = pages_of(l, (f, n));
                prop_assert_eq!(
                    map.any_allocated(r),
                    model.any_allocated(u64::from(r.first()), u64::from(r.end())),
                    "{}",
                    what()
                );
            }
        }
        compare_map(&map, &model, &what)?;
    }
    Ok(())
}

/// The longest byte string proptest decodes into a [`MapCase`]: about 12 bytes an
/// operation, so a case has 20 operations on average.
const MAP_BYTES_MAX: usize = 512;

/// A map (mostly small, sometimes the whole 4 GiB with a few initial pages) and 1 to
/// [`MAX_STEPS`] operations on it. Decoding takes operations while input is left.
#[derive(Clone, Debug)]
struct MapCase {
    limit: u32,
    initial: u32,
    ops: Vec<MapOp>,
}

impl<'a> Arbitrary<'a> for MapCase {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let (limit, initial) = match pick(u, &[4, 1])? {
            0 => {
                let limit = u.int_in_range(1..=40)?;
                (limit, u.int_in_range(0..=limit)?)
            }
            _ => (MAX_PAGES, u.int_in_range(0..=4)?),
        };
        let mut ops = vec![u.arbitrary()?];
        while !u.is_empty() && ops.len() < MAX_STEPS {
            ops.push(u.arbitrary()?);
        }
        Ok(MapCase {
            limit,
            initial,
            ops,
        })
    }
}

/// `VmMap` follows the page model: allocate/deallocate (freed counts), check_access
/// (first offending page in address order, rule 4 past 4 GiB, `PageRange::covering`'s
/// rounding), check_protect (unallocated before max), protect (set_maximum masks cur),
/// find_free (first fit), region (containing or next above), regions and entry.
#[test]
fn vm_map_matches_the_page_model() {
    check(decoded::<MapCase>(MAP_BYTES_MAX), |case| {
        run_map(case.limit, case.initial, &case.ops)
    });
}
