//! The VM calls: one function per call, each applying docs/spec.md §3's check order once for
//! every door (the guest imports in [`crate::abi`], components in [`crate::component`], the
//! host API in [`crate::task`]).
//!
//! Every call locks the maps it needs for its whole duration (two maps in task-id order,
//! after the rules of [`crate::lock`]), checks, and only then changes anything: a failing
//! call changes nothing. Data moves with one `ptr::copy` from source pages to destination
//! pages.

use std::ptr;

use wasmtime::{AsContextMut, StoreContextMut};

use crate::kern::{KernResult, KernReturn, PAGE_SHIFT, VM_PAGE_SIZE, VmProt};
use crate::lock::RankedGuard;
use crate::port::PortName;
use crate::space::{AddressSpace, CopyCall, MapState, PAGE};
use crate::task_state::{TaskData, TaskShared};
use crate::vm_map::{PageRange, Region, VmMap};

/// Who makes a call.
pub(crate) struct Caller<'a> {
    /// The calling task, or `None` for the host itself.
    pub(crate) task: Option<&'a TaskShared>,
    /// The calling task's store, when the call comes from its running core-module guest.
    pub(crate) store: Option<StoreContextMut<'a, TaskData>>,
    /// Set when the call comes from a running component guest: its store is in use by
    /// this thread, and its memory grows through its address space (a component's memory
    /// has no wasmtime handle the host can grow).
    pub(crate) component: bool,
}

impl<'a> Caller<'a> {
    /// The host, acting on a task it holds.
    pub(crate) fn host() -> Caller<'static> {
        Caller {
            task: None,
            store: None,
            component: false,
        }
    }

    fn task(&self) -> &'a TaskShared {
        self.task
            .expect("a call with caller-side memory comes from a task")
    }

    fn is(&self, target: &TaskShared) -> bool {
        self.task.is_some_and(|t| t.id == target.id)
    }
}

/// A value the caller passes in place, or a pointer in the caller's memory to it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum InAddr {
    /// The value itself (host doors).
    Value(u32),
    /// A pointer to 4 bytes of the caller holding it, written back on success (guests).
    Ptr(u32),
}

/// The caller-side source of a `vm_write`.
pub(crate) enum Src<'b> {
    /// An address in the calling task's memory.
    Task(u32),
    /// Host memory (the host is the caller).
    Host(&'b [u8]),
}

/// The caller-side destination of a `vm_read_overwrite`.
pub(crate) enum Dst<'b> {
    /// An address in the calling task's memory.
    Task(u32),
    /// Host memory (the host is the caller).
    Host(&'b mut [u8]),
}

/// The maps a call holds, locked in task-id order.
pub(crate) struct Maps<'a> {
    target: RankedGuard<'a, MapState>,
    /// The caller's map when the caller is a task other than the target.
    caller: Option<RankedGuard<'a, MapState>>,
}

impl Maps<'_> {
    fn target(&self) -> &VmMap {
        &self.target.map
    }

    fn target_mut(&mut self) -> &mut MapState {
        &mut self.target
    }

    fn caller(&self) -> &VmMap {
        self.caller.as_ref().map_or(&self.target.map, |g| &g.map)
    }

    fn caller_mut(&mut self) -> &mut MapState {
        match &mut self.caller {
            Some(g) => g,
            None => &mut self.target,
        }
    }
}

/// Locks the target's map (and the caller's, if the caller is another task whose memory the
/// call touches: pass `None` for calls that act on the target alone) in task-id order.
/// Rule 1.1: a terminated target is `MACH_SEND_INVALID_DEST`.
fn lock<'a>(caller: Option<&'a TaskShared>, target: &'a TaskShared) -> KernResult<Maps<'a>> {
    let maps = match caller {
        Some(c) if c.id != target.id => {
            if c.space.key() < target.space.key() {
                let caller = c.space.lock();
                Maps {
                    target: target.space.lock(),
                    caller: Some(caller),
                }
            } else {
                let target = target.space.lock();
                Maps {
                    target,
                    caller: Some(c.space.lock()),
                }
            }
        }
        _ => Maps {
            target: target.space.lock(),
            caller: None,
        },
    };
    if target.space.is_dead() {
        return Err(KernReturn::SendInvalidDest);
    }
    Ok(maps)
}

fn aligned(value: u32) -> bool {
    value.is_multiple_of(VM_PAGE_SIZE)
}

/// Rule 1.3/1.5: a caller pointer must be 4 bytes of the caller's memory with `need`.
fn check_ptr(map: &VmMap, ptr: u32, need: VmProt) -> KernResult<()> {
    map.check_access(ptr, 4, need)
        .map_err(|_| KernReturn::InvalidArgument)
}

fn check_ptrs(map: &VmMap, ptrs: &[u32]) -> KernResult<()> {
    ptrs.iter()
        .try_for_each(|&p| check_ptr(map, p, VmProt::WRITE))
}

/// Rule 1.1 and rule 3, for a call of size 0: a terminated target is
/// `MACH_SEND_INVALID_DEST`; otherwise the call succeeds right away, changing no memory and
/// no map entry, but its out-values are still written, so the caller's out-pointers `outs`
/// must be valid (`KERN_INVALID_ARGUMENT`); they get `values`. Such a call touches nothing
/// of the target, so only the caller's map is locked (for the out-pointers; host doors
/// pass none) and the target's termination is read from its flag.
fn size_zero(
    caller: Option<&TaskShared>,
    target: &TaskShared,
    outs: &[u32],
    values: &[u32],
) -> KernResult<()> {
    if target.space.is_dead() {
        return Err(KernReturn::SendInvalidDest);
    }
    if let Some(caller) = caller
        && !outs.is_empty()
    {
        let state = caller.space.lock();
        check_ptrs(&state.map, outs)?;
        write_outs(&caller.space, outs, values);
    }
    Ok(())
}

/// The source checks of every form of `vm_read` and of `vm_copy`: rule 1.3, `address`,
/// `size` and the form's other page-aligned arguments (`others_aligned`), then rule 1.4
/// over the target's range, which needs `READ`.
fn check_source(maps: &Maps<'_>, address: u32, size: u32, others_aligned: bool) -> KernResult<()> {
    if !aligned(address) || !aligned(size) || !others_aligned {
        return Err(KernReturn::InvalidArgument);
    }
    maps.target().check_access(address, size, VmProt::READ)
}

/// Writes out-values to pointers that passed [`check_ptrs`] under the lock still held.
fn write_outs(space: &AddressSpace, ptrs: &[u32], values: &[u32]) {
    for (&p, &v) in ptrs.iter().zip(values) {
        // SAFETY: `p` passed `check_ptrs` (4 allocated, writable bytes of the caller) under
        // the caller's map lock, which the caller of this function still holds.
        unsafe { space.write_u32(p, v) };
    }
}

/// Copies `len` bytes between two address spaces (or within one; overlap is `memmove`).
///
/// # Safety
/// Both ranges were checked under the locks still held: the source allocated with `READ`,
/// the destination allocated with `WRITE`. Both are committed, and the mapping, which
/// follows the table under those locks (see [`AddressSpace::change`]), maps a page with
/// `READ` readable and one with `WRITE` read-write.
unsafe fn copy(src: &AddressSpace, src_addr: u32, dst: &AddressSpace, dst_addr: u32, len: u32) {
    // SAFETY: see the function's contract; `ptr::copy` allows overlap.
    unsafe { ptr::copy(src.at(src_addr), dst.at(dst_addr), len as usize) }
}

/// Which of a call's two tasks holds the source of a copy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum From {
    /// The target (`vm_read`, `vm_read_overwrite`, `vm_copy`).
    Target,
    /// The caller (`vm_write`).
    Caller,
}

/// Moves `len` bytes (page-aligned, checked) from `src` to `dst`, two task memories, under
/// the maps still held: by sharing the pages copy-on-write when the destination's copy
/// policy asks for it for `call` and both memories can ([`AddressSpace::freeze`],
/// [`AddressSpace::map_frozen`]), else with one [`copy`]. Either way the destination then
/// holds what the source held when the call began.
///
/// # Safety
/// As for [`copy`]; `from` says which of `maps` is the source's, and `src_task` is the
/// task whose memory `src` is.
#[allow(clippy::too_many_arguments)]
unsafe fn transfer(
    cx: &Caller<'_>,
    maps: &mut Maps<'_>,
    from: From,
    call: CopyCall,
    src_task: &TaskShared,
    src_addr: u32,
    dst: &AddressSpace,
    dst_addr: u32,
    len: u32,
) -> KernResult<()> {
    let src = &*src_task.space;
    let pages = len >> PAGE_SHIFT;
    // Overlapping ranges of one task are copied (`memmove`): sharing them would remap
    // source pages while later parts of the copy still need what they held.
    let overlapping = std::ptr::eq(src, dst)
        && u64::from(src_addr) < u64::from(dst_addr) + u64::from(len)
        && u64::from(dst_addr) < u64::from(src_addr) + u64::from(len);
    let shared = if !overlapping
        && dst.copy_policy().virtual_for(call, pages)
        && src.shareable()
        && dst.shareable()
        && let Some(range) = PageRange::from_count(src_addr >> PAGE_SHIFT, pages)
    {
        // No guest code of the source runs during the call if it is the calling guest
        // (blocked in this call) or if its store is free (held here until the end).
        let running_caller = cx.is(src_task) && (cx.store.is_some() || cx.component);
        let store = (!running_caller)
            .then(|| src_task.store.try_lock())
            .flatten();
        let quiescent = running_caller || store.is_some();
        let (src_state, dst_state) = match (&mut maps.caller, from) {
            (None, _) => (None, &mut *maps.target),
            (Some(caller), From::Target) => (Some(&mut *maps.target), &mut **caller),
            (Some(caller), From::Caller) => (Some(&mut **caller), &mut *maps.target),
        };
        let frozen = match src_state {
            Some(state) => src.freeze(state, range, quiescent)?,
            None => src.freeze(dst_state, range, quiescent)?,
        };
        match frozen {
            Some(frozen) => dst.map_frozen(dst_state, dst_addr >> PAGE_SHIFT, &frozen)?,
            None => false,
        }
    } else {
        false
    };
    if !shared {
        // SAFETY: the caller's contract.
        unsafe { copy(src, src_addr, dst, dst_addr, len) };
    }
    Ok(())
}

/// Makes `target`'s memory at least `end` pages long. Growing needs the task's store: a
/// guest's own store comes with its call; another task's store is taken only if that task
/// is not running right now, else the call gives `KERN_RESOURCE_SHORTAGE`.
fn ensure_committed(cx: &mut Caller<'_>, target: &TaskShared, end: u32) -> KernResult<()> {
    let have = target.space.pages();
    if end <= have {
        return Ok(());
    }
    let delta = u64::from(end - have);
    let grow = |mut store: StoreContextMut<'_, TaskData>| -> KernResult<()> {
        match store.data().memory {
            Some(memory) => target
                .space
                .kernel_grow(|| memory.grow(&mut store, delta))
                .map(drop)
                .map_err(|_| KernReturn::ResourceShortage),
            // A component: nobody runs it (its store is held here), so nothing else
            // grows it meanwhile.
            None => grow_component(target, end),
        }
    };
    if cx.is(target) {
        if cx.component {
            return grow_component(target, end);
        }
        if let Some(store) = cx.store.as_mut() {
            return grow(store.as_context_mut());
        }
    }
    // `try_lock`: never waits, so taking a store (rank 1) under the maps cannot deadlock.
    match target.store.try_lock() {
        Some(mut guard) => match guard.as_mut() {
            Some(store) => grow(store.as_context_mut()),
            None => Err(KernReturn::SendInvalidDest),
        },
        None => Err(KernReturn::ResourceShortage),
    }
}

/// Grows a component task's memory to `end` pages through its address space. wasmtime
/// learns the new size at the guest's next `memory.grow` (the engine keeps a copy of the
/// size for `memory.size` and the bulk-memory bounds checks; see `crate::component`).
fn grow_component(target: &TaskShared, end: u32) -> KernResult<()> {
    target
        .space
        .kernel_grow(|| target.space.grow_to(u64::from(end) << PAGE_SHIFT))
        .map_err(|_| KernReturn::ResourceShortage)
}

/// Allocates `range` in `target` (growing it if needed), zero-filled if `zero`.
fn allocate_range(
    cx: &mut Caller<'_>,
    target: &TaskShared,
    state: &mut MapState,
    range: PageRange,
    zero: bool,
) -> KernResult<()> {
    let old_pages = target.space.pages();
    target
        .space
        .allocate(state, range, || ensure_committed(cx, target, range.end()))?;
    if zero {
        // Pages above the old size are fresh; pages below may hold old bytes: a freed
        // page keeps its memory until a batch releases it, and without guest protection
        // the guest may have stored into unallocated pages (docs/spec.md §5, §7).
        target.space.zero(state, range.below(old_pages));
    }
    Ok(())
}

/// `vm_allocate`.
pub(crate) fn vm_allocate(
    cx: &mut Caller<'_>,
    target: &TaskShared,
    address: InAddr,
    size: u32,
    anywhere: bool,
) -> KernResult<u32> {
    if size == 0 {
        let out = match address {
            InAddr::Ptr(p) => Some(p),
            InAddr::Value(_) => None,
        };
        return size_zero(cx.task, target, out.as_slice(), &[0]).map(|()| 0);
    }
    let mut maps = lock(cx.task, target)?;
    let count = u64::from(size).div_ceil(PAGE) as u32;
    let fixed_first = if anywhere {
        None
    } else {
        let value = match address {
            InAddr::Value(v) => v,
            InAddr::Ptr(p) => {
                check_ptr(maps.caller(), p, VmProt::READ | VmProt::WRITE)?;
                // SAFETY: `p` was checked readable (4 allocated bytes) under the lock held.
                unsafe { cx.task().space.read_u32(p) }
            }
        };
        let first = value >> PAGE_SHIFT;
        if u64::from(first) + u64::from(count) > u64::from(maps.target().limit()) {
            return Err(KernReturn::InvalidAddress);
        }
        let range = PageRange::from_count(first, count).ok_or(KernReturn::InvalidAddress)?;
        if maps.target().any_allocated(range) {
            return Err(KernReturn::NoSpace);
        }
        Some(first)
    };
    if anywhere && let InAddr::Ptr(p) = address {
        check_ptr(maps.caller(), p, VmProt::WRITE)?;
    }
    if !target.space.quota_allows(maps.target(), count) {
        return Err(KernReturn::NoSpace);
    }
    let first = match fixed_first {
        Some(first) => first,
        None => maps.target().find_free(count).ok_or(KernReturn::NoSpace)?,
    };
    let range = PageRange::from_count(first, count).ok_or(KernReturn::NoSpace)?;
    allocate_range(cx, target, maps.target_mut(), range, true)?;
    let start = first << PAGE_SHIFT;
    if let InAddr::Ptr(p) = address {
        write_outs(&cx.task().space, &[p], &[start]);
    }
    Ok(start)
}

/// `vm_deallocate`.
pub(crate) fn vm_deallocate(target: &TaskShared, address: u32, size: u32) -> KernResult<()> {
    if size == 0 {
        return size_zero(None, target, &[], &[]);
    }
    let mut maps = lock(None, target)?;
    let range = PageRange::covering(address, size).ok_or(KernReturn::InvalidArgument)?;
    let state = maps.target_mut();
    if target
        .space
        .change(state, range, |map| map.deallocate(range))?
        > 0
    {
        target.space.release_snapshots(state, range);
        target.space.release_freed(state);
    }
    Ok(())
}

/// `vm_protect`.
pub(crate) fn vm_protect(
    target: &TaskShared,
    address: u32,
    size: u32,
    set_maximum: bool,
    prot: u32,
) -> KernResult<()> {
    if target.space.is_dead() {
        return Err(KernReturn::SendInvalidDest);
    }
    let prot = VmProt::from_bits(prot).ok_or(KernReturn::InvalidArgument)?;
    if size == 0 {
        return size_zero(None, target, &[], &[]);
    }
    let mut maps = lock(None, target)?;
    let range = PageRange::covering(address, size).ok_or(KernReturn::InvalidArgument)?;
    maps.target().check_protect(range, prot)?;
    target.space.change(maps.target_mut(), range, |map| {
        map.protect(range, set_maximum, prot)
    })
}

/// `vm_read` by a task: the data lands in a new region of the caller. Returns the region's
/// address and size.
pub(crate) fn vm_read(
    cx: &mut Caller<'_>,
    target: &TaskShared,
    address: u32,
    size: u32,
    outs: Option<[u32; 2]>,
) -> KernResult<(u32, u32)> {
    let caller = cx.task();
    let outs = outs.as_ref().map_or(&[][..], |o| &o[..]);
    if size == 0 {
        return size_zero(Some(caller), target, outs, &[0, 0]).map(|()| (0, 0));
    }
    let mut maps = lock(Some(caller), target)?;
    check_source(&maps, address, size, true)?;
    check_ptrs(maps.caller(), outs)?;
    let count = size >> PAGE_SHIFT;
    if !caller.space.quota_allows(maps.caller(), count) {
        return Err(KernReturn::NoSpace);
    }
    let first = maps.caller().find_free(count).ok_or(KernReturn::NoSpace)?;
    let range = PageRange::from_count(first, count).ok_or(KernReturn::NoSpace)?;
    // Not zeroed: every byte is overwritten below.
    allocate_range(cx, caller, maps.caller_mut(), range, false)?;
    let data = first << PAGE_SHIFT;
    // SAFETY: the source passed `check_access(READ)` and the new region was just allocated
    // (DEFAULT includes WRITE) under the locks still held; the region was unallocated, so
    // it does not overlap the source even when caller and target are one task.
    unsafe {
        transfer(
            cx,
            &mut maps,
            From::Target,
            CopyCall::ReadOrCopy,
            target,
            address,
            &caller.space,
            data,
            size,
        )
    }?;
    write_outs(&caller.space, outs, &[data, size]);
    Ok((data, size))
}

/// `vm_read` into a new `Vec`: for the host (`room_in: None`), or for a component task
/// (`room_in: Some(caller)`), whose bytes the canonical ABI then copies into its memory.
///
/// A component's read is bounded as a core guest's new region is: after the checks of
/// `vm_read`, if the caller's allocated pages plus the range's would pass its memory quota
/// or, without one, its address space, the call is `KERN_NO_SPACE` (rule 1.6), before
/// anything is allocated or copied.
pub(crate) fn vm_read_bytes(
    room_in: Option<&TaskShared>,
    target: &TaskShared,
    address: u32,
    size: u32,
) -> KernResult<Vec<u8>> {
    if size == 0 {
        return size_zero(None, target, &[], &[]).map(|()| Vec::new());
    }
    let maps = lock(room_in, target)?;
    check_source(&maps, address, size, true)?;
    if let Some(caller) = room_in {
        let (map, pages) = (maps.caller(), size >> PAGE_SHIFT);
        if u64::from(map.allocated_pages()) + u64::from(pages) > u64::from(map.limit())
            || !caller.space.quota_allows(map, pages)
        {
            return Err(KernReturn::NoSpace);
        }
    }
    let mut data = Vec::with_capacity(size as usize);
    if size >= 2 * crate::mapping::HUGE_PAGE as u32 {
        crate::mapping::advise_huge_pages(data.spare_capacity_mut());
    }
    // SAFETY: the source passed `check_access(READ)` under the lock still held; the
    // destination is the fresh capacity of `data`, `size` bytes, not overlapping task
    // memory; after the copy all `size` bytes are initialised, so `set_len` is sound.
    unsafe {
        ptr::copy_nonoverlapping(target.space.at(address), data.as_mut_ptr(), size as usize);
        data.set_len(size as usize);
    }
    drop(maps);
    Ok(data)
}

/// `vm_read_overwrite`: into `dst`, the caller's memory or a host buffer. Returns the size.
pub(crate) fn vm_read_overwrite(
    cx: &Caller<'_>,
    target: &TaskShared,
    address: u32,
    size: u32,
    dst: Dst<'_>,
    out_size: Option<u32>,
) -> KernResult<u32> {
    let outs = out_size.as_slice();
    if size == 0 {
        return size_zero(cx.task, target, outs, &[0]).map(|()| 0);
    }
    let mut maps = lock(cx.task, target)?;
    let dst_ok = match &dst {
        Dst::Task(data) => aligned(*data),
        Dst::Host(buf) => buf.len() == size as usize,
    };
    check_source(&maps, address, size, dst_ok)?;
    match dst {
        Dst::Task(data) => {
            maps.caller().check_access(data, size, VmProt::WRITE)?;
            check_ptrs(maps.caller(), outs)?;
            let caller = cx.task();
            // SAFETY: source checked READ in the target, destination checked WRITE in the
            // caller, both under the locks still held; overlapping ranges of a caller that
            // reads its own memory are `memmove`d.
            unsafe {
                transfer(
                    cx,
                    &mut maps,
                    From::Target,
                    CopyCall::Overwrite,
                    target,
                    address,
                    &caller.space,
                    data,
                    size,
                )
            }?;
            write_outs(&caller.space, outs, &[size]);
        }
        Dst::Host(buf) => {
            // SAFETY: the source passed `check_access(READ)` under the lock still held;
            // `buf` is exactly `size` bytes of host memory, disjoint from task memory.
            unsafe {
                ptr::copy_nonoverlapping(target.space.at(address), buf.as_mut_ptr(), size as usize)
            };
        }
    }
    Ok(size)
}

/// `vm_write`: from `src`, the caller's memory or a host buffer.
pub(crate) fn vm_write(
    cx: &Caller<'_>,
    target: &TaskShared,
    address: u32,
    src: Src<'_>,
    count: u32,
) -> KernResult<()> {
    if count == 0 {
        return size_zero(None, target, &[], &[]);
    }
    let mut maps = lock(cx.task, target)?;
    let src_ok = match &src {
        Src::Task(data) => {
            maps.caller()
                .check_access(*data, count, VmProt::READ)
                .map_err(|_| KernReturn::SendInvalidMemory)?;
            aligned(*data)
        }
        Src::Host(buf) => buf.len() == count as usize,
    };
    if !aligned(address) || !aligned(count) || !src_ok {
        return Err(KernReturn::InvalidArgument);
    }
    maps.target().check_access(address, count, VmProt::WRITE)?;
    match src {
        // SAFETY: source checked READ in the caller, destination checked WRITE in the
        // target, under the locks still held; a self-write may overlap (`memmove`).
        Src::Task(data) => unsafe {
            transfer(
                cx,
                &mut maps,
                From::Caller,
                CopyCall::Overwrite,
                cx.task(),
                data,
                &target.space,
                address,
                count,
            )
        }?,
        // SAFETY: the destination passed `check_access(WRITE)` under the lock still held;
        // `buf` is `count` bytes of host memory, disjoint from task memory.
        Src::Host(buf) => unsafe {
            ptr::copy_nonoverlapping(buf.as_ptr(), target.space.at(address), count as usize)
        },
    }
    drop(maps);
    Ok(())
}

/// `vm_copy`, inside `target`, for the caller `cx` (which only tells whether the target's
/// own guest is the one calling: see `transfer`).
pub(crate) fn vm_copy(
    cx: &Caller<'_>,
    target: &TaskShared,
    source: u32,
    count: u32,
    dest: u32,
) -> KernResult<()> {
    if count == 0 {
        return size_zero(None, target, &[], &[]);
    }
    let mut maps = lock(None, target)?;
    check_source(&maps, source, count, aligned(dest))?;
    maps.target().check_access(dest, count, VmProt::WRITE)?;
    let space = &target.space;
    // SAFETY: source checked READ and destination checked WRITE in the target under the
    // lock still held; overlapping ranges are `memmove`d.
    unsafe {
        transfer(
            cx,
            &mut maps,
            From::Target,
            CopyCall::ReadOrCopy,
            target,
            source,
            space,
            dest,
            count,
        )
    }?;
    drop(maps);
    Ok(())
}

/// The largest region size a guest's 32-bit out-value can carry (a 4 GiB region is
/// reported one page short).
pub(crate) const MAX_GUEST_REGION: u64 = (u32::MAX - (VM_PAGE_SIZE - 1)) as u64;

/// `vm_region`. `outs` are the size, protection and maximum-protection pointers.
pub(crate) fn vm_region(
    cx: &Caller<'_>,
    target: &TaskShared,
    address: InAddr,
    outs: Option<[u32; 3]>,
) -> KernResult<Region> {
    let maps = lock(cx.task, target)?;
    let from = match address {
        InAddr::Value(v) => v,
        InAddr::Ptr(p) => {
            check_ptr(maps.caller(), p, VmProt::READ | VmProt::WRITE)?;
            // SAFETY: `p` was checked readable under the lock held.
            unsafe { cx.task().space.read_u32(p) }
        }
    };
    let region = maps.target().region(from).ok_or(KernReturn::NoSpace)?;
    if let (InAddr::Ptr(p), Some(outs)) = (address, outs) {
        check_ptrs(maps.caller(), &outs)?;
        write_outs(
            &cx.task().space,
            &[p, outs[0], outs[1], outs[2]],
            &[
                region.address,
                region.size.min(MAX_GUEST_REGION) as u32,
                region.protection.bits(),
                region.max_protection.bits(),
            ],
        );
    }
    Ok(region)
}

/// Where `bootstrap_look_up` takes the service name from.
pub(crate) enum NameArg<'s> {
    /// `[ptr, ptr + len)` in the caller's memory.
    Guest { ptr: u32, len: u32 },
    /// A host string.
    Host(&'s str),
}

/// The longest service name `bootstrap_look_up` takes, in bytes (Mach's `name_t`).
pub(crate) const MAX_SERVICE_NAME: u32 = 128;

/// `bootstrap_look_up`: inserts a name for the registered task into the caller's namespace.
///
/// Locks: the caller's map (for the name and the out-pointer) for the whole call; under
/// it, the bootstrap registry for the look-up, then the caller's port namespace for the
/// insertion, each released before the next is taken (see [`crate::lock`]).
pub(crate) fn bootstrap_look_up(
    caller: &TaskShared,
    name: NameArg<'_>,
    port_ptr: Option<u32>,
) -> KernResult<PortName> {
    let len = match name {
        NameArg::Host(s) => s.len(),
        NameArg::Guest { len, .. } => len as usize,
    };
    // Decided from the length alone, before any byte is read (docs/spec.md §4).
    if len > MAX_SERVICE_NAME as usize {
        return Err(KernReturn::InvalidArgument);
    }
    let state = caller.space.lock();
    let mut buf = [0u8; MAX_SERVICE_NAME as usize];
    let service = match name {
        NameArg::Host(s) => s,
        NameArg::Guest { ptr, len } => {
            state
                .map
                .check_access(ptr, len, VmProt::READ)
                .map_err(|_| KernReturn::InvalidArgument)?;
            let bytes = &mut buf[..len as usize];
            // SAFETY: `[ptr, ptr + len)` passed `check_access(READ)` under the lock held;
            // `bytes` is `len` bytes of host stack, disjoint from task memory.
            unsafe {
                ptr::copy_nonoverlapping(caller.space.at(ptr), bytes.as_mut_ptr(), bytes.len())
            };
            std::str::from_utf8(bytes).map_err(|_| KernReturn::InvalidArgument)?
        }
    };
    let task = caller
        .bootstrap
        .look_up(service)
        .ok_or(KernReturn::InvalidName)?;
    if let Some(p) = port_ptr {
        check_ptr(&state.map, p, VmProt::WRITE)?;
    }
    let port = caller.ports().insert(&task);
    if let Some(p) = port_ptr {
        write_outs(&caller.space, &[p], &[port.raw()]);
    }
    Ok(port)
}
