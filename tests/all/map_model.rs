//! Model-based property tests: random sequences of VM calls against a plain page model that
//! implements SPEC.md's rules itself (check order of §3 rule 1, first fit, rounding,
//! zero-fill, quota, memmove). The model never calls the runtime's `vm_map`.
//!
//! - `host_and_cross_task_calls_match_the_page_model` drives three tasks (a small declared
//!   maximum, a small maximum with a quota, and no maximum so that 4 GiB is reachable)
//!   through the host API and through `Task::mach()` (one task calling on another, on
//!   itself, and through null, unknown and dead names). After every step it compares the
//!   returned code or value, every task's whole map (`regions()`), every task's memory size
//!   and the bytes of the pages the step touched (read by the guest itself, so that pages
//!   without `READ` are compared too). At the end it compares every allocated page of the
//!   small tasks and, in the 4 GiB task, every page holding data and both ends of every
//!   region. Each sequence starts with a fixed prelude (regions of several protections,
//!   with data) so that random steps meet a varied map; a step the model predicts to move
//!   more than 1 MiB successfully (only possible in the 4 GiB task) is skipped.
//! - `vm_map_matches_the_page_model` does the same directly on `wasmach::vm_map::VmMap`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use wasmach::vm_map::{PageRange, VmMap};
use wasmach::{KernResult, KernReturn, PortName, Region, Runtime, Task, TaskModule, TaskOptions};
use wasmach::{MAX_PAGES, VmProt};

use crate::common::*;

const P: u64 = PAGE as u64;
const SPACE_END: u64 = 1 << 32;
const DEFAULT: u8 = 3;
const ALL: u8 = 7;

// ---------------------------------------------------------------------------------------
// The page model (SPEC §1, §3, §4), shared by both properties.
// ---------------------------------------------------------------------------------------

/// One entry per page of the address space: `None` = unallocated, `Some((cur, max))`.
#[derive(Clone, Debug)]
struct PageModel {
    pages: Vec<Option<(u8, u8)>>,
}

impl PageModel {
    /// SPEC §3 rule 6: the initial pages are allocated `DEFAULT`/`ALL`.
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

    /// SPEC §3 rule 1.4 and rule 4: one pass in address order; the first unallocated page
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

    /// `vm_protect`'s checks (SPEC §4): the whole range for unallocated pages first, then
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
    /// Pages the task may have allocated (SPEC §1 memory quota).
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

/// `vm_allocate` (SPEC §4).
fn model_allocate(t: &mut TaskModel, addr: u32, size: u32, anywhere: bool) -> KernResult<u32> {
    if size == 0 {
        return Ok(0);
    }
    let count = u64::from(size).div_ceil(P);
    let fixed = if anywhere {
        None
    } else {
        let first = u64::from(addr) / P;
        if first + count > t.map.limit() {
            return Err(KernReturn::InvalidAddress);
        }
        if t.map.any_allocated(first, first + count) {
            return Err(KernReturn::NoSpace);
        }
        Some(first)
    };
    if !t.quota_allows(count) {
        return Err(KernReturn::NoSpace);
    }
    let first = match fixed {
        Some(f) => f,
        None => t.map.find_free(count).ok_or(KernReturn::NoSpace)?,
    };
    t.allocate(first, first + count);
    Ok((first * P) as u32)
}

/// `vm_deallocate` (SPEC §4).
fn model_deallocate(t: &mut TaskModel, addr: u32, size: u32) -> KernResult<()> {
    if size == 0 {
        return Ok(());
    }
    let (first, end) = PageModel::covering(addr, size).ok_or(KernReturn::InvalidArgument)?;
    t.map.deallocate(first, end);
    t.forget(first, end);
    Ok(())
}

/// `vm_protect` (SPEC §4).
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

/// `vm_copy` (SPEC §4).
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

fn addr_spec() -> impl Strategy<Value = AddrSpec> {
    (
        prop_oneof![8 => Just(0u8), 2 => Just(1), 1 => Just(2), 1 => Just(3)],
        any::<u32>(),
        prop_oneof![8 => Just(0u8), 1 => Just(1), 1 => Just(2), 1 => Just(3)],
    )
        .prop_map(|(kind, n, off)| AddrSpec { kind, n, off })
}

fn size_spec() -> impl Strategy<Value = SizeSpec> {
    (
        prop_oneof![12 => Just(0u8), 2 => Just(1), 1 => Just(2), 1 => Just(3)],
        any::<u32>(),
        prop_oneof![10 => Just(0u8), 1 => Just(1), 1 => Just(2)],
    )
        .prop_map(|(kind, n, off)| SizeSpec { kind, n, off })
}

fn prot_bits() -> impl Strategy<Value = u32> {
    prop_oneof![12 => 0u32..8, 1 => Just(8u32), 1 => Just(0x13), 1 => Just(u32::MAX)]
}

fn door() -> impl Strategy<Value = Door> {
    let port = prop_oneof![
        8 => (0usize..3).prop_map(PortSel::Peer),
        1 => Just(PortSel::Null),
        1 => prop_oneof![Just(0x104u32), Just(0x7703), Just(u32::MAX)].prop_map(PortSel::Bogus),
        1 => Just(PortSel::Dead),
    ];
    prop_oneof![
        3 => (0usize..3).prop_map(Door::Host),
        2 => (0usize..2, port).prop_map(|(c, p)| Door::Mach(c, p)),
    ]
}

fn op_spec() -> impl Strategy<Value = OpSpec> {
    prop_oneof![
        3 => (addr_spec(), size_spec(), any::<bool>()).prop_map(|(a, s, w)| OpSpec::Allocate(a, s, w)),
        2 => (addr_spec(), size_spec()).prop_map(|(a, s)| OpSpec::Deallocate(a, s)),
        2 => (addr_spec(), size_spec(), any::<bool>(), prot_bits())
            .prop_map(|(a, s, m, p)| OpSpec::Protect(a, s, m, p)),
        2 => (addr_spec(), size_spec()).prop_map(|(a, s)| OpSpec::Read(a, s)),
        2 => (addr_spec(), size_spec(), addr_spec()).prop_map(|(a, s, d)| OpSpec::ReadOverwrite(a, s, d)),
        2 => (addr_spec(), size_spec(), addr_spec(), any::<u8>())
            .prop_map(|(a, s, d, seed)| OpSpec::Write(a, s, d, seed)),
        2 => (addr_spec(), size_spec(), addr_spec()).prop_map(|(a, s, d)| OpSpec::Copy(a, s, d)),
        2 => (addr_spec(), size_spec(), -2i8..=2).prop_map(|(a, s, k)| OpSpec::CopyNear(a, s, k)),
        1 => addr_spec().prop_map(OpSpec::Region),
    ]
}

/// The task a door acts on (`None`: the port names nothing), and the calling task.
fn parties(door: Door) -> (Option<usize>, Option<usize>) {
    match door {
        Door::Host(t) => (Some(t), None),
        Door::Mach(c, PortSel::Peer(t)) => (Some(t), Some(c)),
        Door::Mach(c, _) => (None, Some(c)),
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

/// Runs `op` through `door` on the model. Changes the model only on success.
fn model_step(m: &mut [TaskModel], door: Door, op: &Op) -> Outcome {
    let (target, caller) = parties(door);
    let Some(t) = target else {
        let e = KernReturn::SendInvalidDest;
        return match op {
            Op::Allocate { .. } => Outcome::Addr(Err(e)),
            Op::Read { .. } => Outcome::Pair(Err(e)),
            Op::ReadOverwrite { .. } => Outcome::Addr(Err(e)),
            Op::Region { .. } => Outcome::Region(Err(e)),
            _ => Outcome::Unit(Err(e)),
        };
    };
    match *op {
        Op::Allocate {
            addr,
            size,
            anywhere,
        } => Outcome::Addr(model_allocate(&mut m[t], addr, size, anywhere)),
        Op::Deallocate { addr, size } => Outcome::Unit(model_deallocate(&mut m[t], addr, size)),
        Op::Protect {
            addr,
            size,
            set_max,
            prot,
        } => Outcome::Unit(model_protect(&mut m[t], addr, size, set_max, prot)),
        Op::Copy { src, count, dst } => Outcome::Unit(model_copy(&mut m[t], src, count, dst)),
        Op::Region { addr } => Outcome::Region(m[t].map.region(addr).ok_or(KernReturn::NoSpace)),
        Op::Read { addr, size } => match caller {
            None => Outcome::Bytes(if size == 0 {
                Ok(Blob(Vec::new()))
            } else {
                model_read_checks(&m[t], addr, size).map(|()| Blob(m[t].read(addr, size)))
            }),
            Some(c) => Outcome::Pair((|| {
                if size == 0 {
                    return Ok((0, 0));
                }
                model_read_checks(&m[t], addr, size)?;
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
                Ok((data, size))
            })()),
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
                Outcome::Overwrite(r, Blob(buf))
            }
            Some(c) => Outcome::Addr((|| {
                if size == 0 {
                    return Ok(0);
                }
                if !aligned(data) {
                    return Err(KernReturn::InvalidArgument);
                }
                model_read_checks(&m[t], addr, size)?;
                m[c].map.check_access(data, size, 2)?;
                let pages = m[t].snapshot(addr, size);
                m[c].put(data, size, pages);
                Ok(size)
            })()),
        },
        Op::Write {
            addr,
            count,
            data,
            seed,
        } => Outcome::Unit((|| {
            if count == 0 {
                return Ok(());
            }
            let bytes = match caller {
                None => bytes_for(seed, count),
                Some(c) => {
                    m[c].map
                        .check_access(data, count, 1)
                        .map_err(|_| KernReturn::SendInvalidMemory)?;
                    if !aligned(data) {
                        return Err(KernReturn::InvalidArgument);
                    }
                    Vec::new()
                }
            };
            if !aligned(addr) || !aligned(count) {
                return Err(KernReturn::InvalidArgument);
            }
            m[t].map.check_access(addr, count, 2)?;
            match caller {
                None => m[t].write(addr, &bytes),
                Some(c) => {
                    let pages = m[c].snapshot(data, count);
                    m[t].put(addr, count, pages);
                }
            }
            Ok(())
        })()),
    }
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
        }
    }
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

/// Every task of the model property runs this module: the guest reads its own page (its
/// loads are bound by wasm bounds only, SPEC §5), so pages without `READ` can be compared.
fn model_guest(memory: &str) -> String {
    format!(
        r#"(module {memory}
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
            (local.get $h)))"#
    )
}

/// The three task images: (declared maximum 24 pages), (maximum 16 with a quota of 8),
/// (no maximum: 65536 pages, up to 4 GiB), and a module for the task that dies.
fn images() -> &'static (Runtime, Vec<TaskModule>) {
    static IMAGES: OnceLock<(Runtime, Vec<TaskModule>)> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let rt = runtime();
        let modules = ["(memory 2 24)", "(memory 1 16)", "(memory 1)", "(memory 1)"]
            .iter()
            .map(|m| rt.compile(model_guest(m)).expect("compile"))
            .collect();
        (rt, modules)
    })
}

const QUOTA_PAGES: u64 = 8;

fn setup() -> (World, Vec<TaskModel>) {
    let (rt, modules) = images();
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
        TaskModel::new(24, 2, None),
        TaskModel::new(16, 1, Some(QUOTA_PAGES)),
        TaskModel::new(MAX_PAGES, 1, None),
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

/// Whether the table lets the guest's own loads read a page (SPEC's guest protection: an
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

/// The random part of a sequence: up to 40 steps, each a door (host API on a task, or a
/// task acting through a port name of any class) and a call with its arguments.
fn steps_strategy() -> impl Strategy<Value = Vec<(Door, OpSpec)>> {
    prop::collection::vec((door(), op_spec()), 1..40)
}

/// Draws one sequence from `runner`'s random source and runs it: the fuzz target
/// (`fuzz/fuzz_targets/vm_calls.rs`) seeds that source from the fuzzer's bytes, so the
/// fuzzer and the proptest below share one generator.
#[allow(dead_code)] // used by the fuzz target, which includes this file
pub(crate) fn run_drawn_sequence(
    runner: &mut proptest::test_runner::TestRunner,
) -> Result<(), TestCaseError> {
    use proptest::strategy::ValueTree;
    let tree = steps_strategy()
        .new_tree(runner)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    run_sequence(&tree.current())
}

/// Runs the fixed prelude and then `steps` through the runtime and through the model,
/// comparing outcomes, maps and page bytes after every step.
fn run_sequence(steps: &[(Door, OpSpec)]) -> Result<(), TestCaseError> {
    let (world, mut models) = setup();
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
        let what = || format!("step {i}: {door:?} {op:?} (earlier: {done:?})");
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
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// SPEC §3–4 as a whole: every call's code or value, every task's map and memory size,
    /// and the bytes of the pages involved, after every step of a random sequence of host
    /// and cross-task calls, equal the page model's.
    #[test]
    fn host_and_cross_task_calls_match_the_page_model(steps in steps_strategy()) {
        run_sequence(&steps)?;
    }
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

/// A page range `[first, first + len)` near the start, near the limit or anywhere.
fn page_run() -> impl Strategy<Value = (u32, u32)> {
    (
        any::<u32>(),
        prop_oneof![4 => 0u32..7, 1 => Just(u32::MAX), 1 => any::<u32>()],
    )
}

fn map_op() -> impl Strategy<Value = MapOp> {
    prop_oneof![
        3 => page_run().prop_map(|(f, l)| MapOp::Allocate(f, l)),
        2 => page_run().prop_map(|(f, l)| MapOp::Deallocate(f, l)),
        3 => (page_run(), any::<bool>(), 0u8..8).prop_map(|((f, l), m, p)| MapOp::Protect(f, l, m, p)),
        3 => (addr_spec(), size_spec(), 0u8..8).prop_map(|(a, s, n)| MapOp::CheckAccess(a, s, n)),
        1 => prop_oneof![0u32..8, any::<u32>()].prop_map(MapOp::FindFree),
        1 => addr_spec().prop_map(MapOp::Region),
        1 => page_run().prop_map(|(f, l)| MapOp::AnyAllocated(f, l)),
    ]
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
    PageRange {
        first: first as u32,
        end: end as u32,
    }
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
                let (first, end) = (u64::from(r.first), u64::from(r.end));
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
                let freed = model.deallocate(u64::from(r.first), u64::from(r.end));
                prop_assert_eq!(u64::from(map.deallocate(r)), freed, "freed by {}", what());
            }
            MapOp::Protect(f, n, set_max, bits) => {
                let r = pages_of(l, (f, n));
                let (first, end) = (u64::from(r.first), u64::from(r.end));
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
                let want_range = PageModel::covering(addr, size).map(|(f, e)| PageRange {
                    first: f as u32,
                    end: e as u32,
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
                    model.any_allocated(u64::from(r.first), u64::from(r.end)),
                    "{}",
                    what()
                );
            }
        }
        compare_map(&map, &model, &what)?;
    }
    Ok(())
}

fn map_shape() -> impl Strategy<Value = (u32, u32)> {
    prop_oneof![
        4 => (1u32..=40).prop_flat_map(|l| (Just(l), 0..=l)),
        1 => (Just(MAX_PAGES), 0u32..=4),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// `VmMap` follows the page model: allocate/deallocate (freed counts), check_access
    /// (first offending page in address order, rule 4 past 4 GiB, `PageRange::covering`'s
    /// rounding), check_protect (unallocated before max), protect (set_maximum masks cur),
    /// find_free (first fit), region (containing or next above), regions and entry.
    #[test]
    fn vm_map_matches_the_page_model(
        (limit, initial) in map_shape(),
        ops in prop::collection::vec(map_op(), 1..40)
    ) {
        run_map(limit, initial, &ops)?;
    }
}
