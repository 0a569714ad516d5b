//! A task's address space: its [`Mapping`], its [`VmMap`] behind the lock that orders every
//! change to either, and the primitives the kernel uses to touch its bytes.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::kern::{KernResult, KernReturn, PAGE_SHIFT, VM_PAGE_SIZE};
use crate::memory::Mapping;
use crate::vm_map::{PageRange, VmMap};

/// What the map lock guards: the page table, and whether the task has terminated.
pub(crate) struct MapState {
    /// The page/protection table.
    pub(crate) map: VmMap,
    /// Set once, when the task terminates: every later call through a name for it is
    /// `MACH_SEND_INVALID_DEST`, and no host path touches its memory again.
    pub(crate) dead: bool,
}

/// Freed pages are handed back to the kernel once at least this many (4 MiB) wait: a large
/// free is released at once, small ones in batches, so that a loop of small `vm_read` +
/// `vm_deallocate` reuses resident pages instead of faulting fresh ones in on every call.
pub(crate) const RELEASE_BATCH_PAGES: u32 = 64;

/// One task's address space.
pub(crate) struct AddressSpace {
    mapping: Mapping,
    /// Bytes committed (the wasm memory's current size). Only grows, and only while the
    /// task's store is held.
    committed: AtomicU64,
    state: Mutex<MapState>,
    /// Set by the kernel while it grows the memory under the map lock, so that
    /// [`AddressSpace::grow_to`] neither takes the lock again nor marks the pages.
    kernel_growing: AtomicBool,
    /// The memory quota in pages, if the host set one.
    quota_pages: Option<u32>,
    /// Whether the mapping's protections follow the table, so that the task's own loads
    /// and stores are bound by it (see [`AddressSpace::change`]).
    guest_protection: bool,
}

impl AddressSpace {
    /// Reserves a space of `limit` pages with `initial` pages committed and allocated.
    pub(crate) fn new(
        initial: u32,
        limit: u32,
        quota_pages: Option<u32>,
        guest_protection: bool,
    ) -> io::Result<AddressSpace> {
        let mapping = Mapping::reserve()?;
        let bytes = u64::from(initial) << PAGE_SHIFT;
        mapping.commit(0, bytes)?;
        Ok(AddressSpace {
            mapping,
            committed: AtomicU64::new(bytes),
            state: Mutex::new(MapState {
                map: VmMap::new(limit, initial),
                dead: false,
            }),
            kernel_growing: AtomicBool::new(false),
            quota_pages,
            guest_protection,
        })
    }

    /// Whether the table binds the task's own loads and stores.
    pub(crate) fn guest_protection(&self) -> bool {
        self.guest_protection
    }

    /// Applies `op` to the pages `range` of `map` (this space's map, locked by the caller)
    /// and, with guest protection on, brings the mapping's protections over `range` in
    /// step with it. If the mapping cannot follow (mprotect fails: the process is out of
    /// mappings), the map's entries are put back and the call fails with
    /// `KERN_RESOURCE_SHORTAGE`, having changed nothing.
    ///
    /// Host paths never touch a page the table forbids, and the table and the mapping
    /// change together under the map lock, so no host access can ever fault. Between the
    /// two steps only the task's own running code can see the mapping disagree with the
    /// table, as a program sees a page change protection while it runs.
    pub(crate) fn change<R>(
        &self,
        map: &mut VmMap,
        range: PageRange,
        op: impl FnOnce(&mut VmMap) -> R,
    ) -> KernResult<R> {
        if !self.guest_protection {
            return Ok(op(map));
        }
        let saved = map.save(range);
        let result = op(map);
        if let Err(e) = self.sync_access(map, range) {
            tracing::warn!(error = %e, "mprotect failed; the call is undone");
            map.restore(range, &saved);
            let _ = self.sync_access(map, range);
            return Err(KernReturn::ResourceShortage);
        }
        Ok(result)
    }

    /// Sets the mapping's protections over the committed part of `range` to what the
    /// table allows the guest.
    fn sync_access(&self, map: &VmMap, range: PageRange) -> io::Result<()> {
        let committed = PageRange {
            first: range.first,
            end: range.end.min(self.pages()),
        };
        if committed.is_empty() {
            return Ok(());
        }
        for (run, access) in map.guest_access_runs(committed) {
            self.mapping
                .protect(run.address(), run.address() + run.bytes(), access)?;
        }
        Ok(())
    }

    /// The address of byte 0.
    pub(crate) fn base(&self) -> *mut u8 {
        self.mapping.base()
    }

    /// The committed size in bytes (the wasm memory size).
    pub(crate) fn byte_size(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// The committed size in pages.
    pub(crate) fn pages(&self) -> u32 {
        (self.byte_size() >> PAGE_SHIFT) as u32
    }

    /// Locks the map. A poisoned lock is taken over: the map is only changed by
    /// non-panicking code, so its state is consistent.
    pub(crate) fn lock(&self) -> MutexGuard<'_, MapState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the quota lets `map` gain `extra` allocated pages.
    pub(crate) fn quota_allows(&self, map: &VmMap, extra: u32) -> bool {
        self.quota_pages
            .is_none_or(|q| u64::from(map.allocated_pages()) + u64::from(extra) <= u64::from(q))
    }

    /// wasmtime's growth hook (the guest's `memory.grow`, or the kernel's growth). The
    /// guest's new pages become allocated with `cur = DEFAULT`, `max = ALL`, within the
    /// quota; the kernel marks its own pages itself.
    pub(crate) fn grow_to(&self, new_size: u64) -> anyhow::Result<()> {
        let old = self.byte_size();
        if new_size <= old {
            return Ok(());
        }
        if self.kernel_growing.load(Ordering::Relaxed) {
            self.mapping.commit(old, new_size)?;
            self.committed.store(new_size, Ordering::Release);
            return Ok(());
        }
        let mut state = self.lock();
        anyhow::ensure!(!state.dead, "the task has terminated");
        let range = PageRange {
            first: (old >> PAGE_SHIFT) as u32,
            end: (new_size >> PAGE_SHIFT) as u32,
        };
        anyhow::ensure!(
            self.quota_allows(&state.map, range.len()),
            "memory.grow past the task's memory quota"
        );
        self.mapping.commit(old, new_size)?;
        state.map.allocate(range);
        self.committed.store(new_size, Ordering::Release);
        Ok(())
    }

    /// Runs `grow` (which calls wasmtime's `Memory::grow`) in kernel-growth mode. The
    /// caller holds the map lock and the task's store, so nobody else grows meanwhile.
    pub(crate) fn kernel_grow<R>(&self, grow: impl FnOnce() -> R) -> R {
        self.kernel_growing.store(true, Ordering::Relaxed);
        let result = grow();
        self.kernel_growing.store(false, Ordering::Relaxed);
        result
    }

    /// Hands the physical memory of freed pages back to the kernel once at least
    /// [`RELEASE_BATCH_PAGES`] of them wait (the map marks freed pages as unreleased until
    /// then; pages allocated again meanwhile leave the count: `vm_allocate` zero-fills what
    /// it hands out and `vm_read` overwrites it). The caller holds the map lock.
    pub(crate) fn release_freed(&self, map: &mut VmMap) {
        if map.unreleased_pages() >= RELEASE_BATCH_PAGES {
            for run in map.take_unreleased() {
                self.discard(run);
            }
        }
    }

    /// Gives back the physical memory of the committed part of `range`; its bytes read as
    /// zero afterwards. The caller holds the map lock.
    pub(crate) fn discard(&self, range: PageRange) {
        let end = range.end.min(self.pages());
        if end > range.first {
            self.mapping.discard(
                u64::from(range.first) << PAGE_SHIFT,
                u64::from(end) << PAGE_SHIFT,
            );
        }
    }

    /// A raw pointer to byte `address`.
    ///
    /// # Safety
    /// Dereferencing it is allowed only for bytes that are allocated in this space's map
    /// (hence committed) and permitted for the access, checked under the map lock that is
    /// still held.
    pub(crate) unsafe fn at(&self, address: u32) -> *mut u8 {
        // SAFETY: `address < 4 GiB` lies inside the reservation of 4 GiB + guard.
        unsafe { self.base().add(address as usize) }
    }

    /// Writes `value` little-endian at `address`.
    ///
    /// # Safety
    /// `[address, address + 4)` is allocated and writable in the map, checked under the
    /// map lock that is still held.
    pub(crate) unsafe fn write_u32(&self, address: u32, value: u32) {
        // SAFETY: the caller checked the four bytes (see the contract above).
        unsafe {
            self.at(address)
                .cast::<[u8; 4]>()
                .write_unaligned(value.to_le_bytes())
        }
    }

    /// Reads a little-endian `u32` at `address`.
    ///
    /// # Safety
    /// `[address, address + 4)` is allocated and readable in the map, checked under the
    /// map lock that is still held.
    pub(crate) unsafe fn read_u32(&self, address: u32) -> u32 {
        // SAFETY: the caller checked the four bytes (see the contract above).
        u32::from_le_bytes(unsafe { self.at(address).cast::<[u8; 4]>().read_unaligned() })
    }
}

/// The page size as a `u64`, for byte arithmetic.
pub(crate) const PAGE: u64 = VM_PAGE_SIZE as u64;

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether every 4 KiB page of `[from, to)` (wasm pages) is resident, per mincore(2).
    fn resident(space: &AddressSpace, from: u32, to: u32) -> Vec<bool> {
        let len = ((to - from) as usize) << PAGE_SHIFT;
        let mut vec = vec![0u8; len / 4096];
        // SAFETY: the range lies inside the space's reservation (committed); `vec` has one
        // byte per 4 KiB page of it.
        let rc = unsafe {
            libc::mincore(
                space.base().add((from as usize) << PAGE_SHIFT).cast(),
                len,
                vec.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "mincore");
        vec.chunks(16)
            .map(|wasm_page| wasm_page.iter().all(|b| b & 1 == 1))
            .collect()
    }

    /// The permissions `/proc/self/maps` shows for the mapping holding `address`.
    fn perms(address: *const u8) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let a = address as usize;
        maps.lines()
            .find_map(|line| {
                let (range, rest) = line.split_once(' ')?;
                let (lo, hi) = range.split_once('-')?;
                let (lo, hi) = (
                    usize::from_str_radix(lo, 16).ok()?,
                    usize::from_str_radix(hi, 16).ok()?,
                );
                (lo <= a && a < hi).then(|| rest[..4].to_owned())
            })
            .unwrap()
    }

    #[test]
    fn a_failed_mprotect_undoes_the_change_and_reports_resource_shortage() {
        let space = AddressSpace::new(4, 8, None, true).unwrap();
        // SAFETY: page 1 is committed; only its address is formed.
        let page1 = unsafe { space.at(PAGE as u32) };
        let mut state = space.lock();
        let map = &mut state.map;
        let before = map.clone();
        let range = PageRange { first: 1, end: 2 };
        crate::memory::tests::FAIL_PROTECT.with(|n| n.set(1));
        let result = space.change(map, range, |map| map.deallocate(range));
        assert_eq!(result, Err(KernReturn::ResourceShortage));
        assert_eq!(map.entry(1), before.entry(1), "the page is allocated again");
        assert_eq!(map.allocated_pages(), 4);
        assert_eq!(map.unreleased_pages(), 0);
        assert_eq!(perms(page1), "rw-p", "the mapping is back in step");
        // Without the failure, the same change lands in both.
        assert_eq!(space.change(map, range, |map| map.deallocate(range)), Ok(1));
        assert_eq!(map.entry(1), None);
        assert_eq!(perms(page1), "---p");
        assert_eq!(space.change(map, range, |map| map.allocate(range)), Ok(()));
        assert_eq!(perms(page1), "rw-p");
    }

    #[test]
    fn freed_pages_are_handed_back_in_batches_and_reused_pages_are_not() {
        let space = AddressSpace::new(128, 128, None, false).unwrap();
        // SAFETY: all 128 pages are committed and nothing else uses them.
        unsafe { std::ptr::write_bytes(space.base(), 1, 128 << PAGE_SHIFT) };
        assert!(resident(&space, 0, 128).iter().all(|&r| r));
        let mut state = space.lock();
        let map = &mut state.map;
        // a small free waits...
        map.deallocate(PageRange { first: 0, end: 1 });
        space.release_freed(map);
        assert!(resident(&space, 0, 1)[0]);
        // ...a page allocated again leaves the batch...
        map.allocate(PageRange { first: 0, end: 1 });
        map.deallocate(PageRange { first: 1, end: 2 });
        space.release_freed(map);
        // ...and a large free releases itself and whatever waited, not the reused page
        map.deallocate(PageRange { first: 2, end: 66 });
        space.release_freed(map);
        let after = resident(&space, 0, 128);
        assert!(after[0], "page 0 is allocated again");
        assert!(
            after[1..66].iter().all(|&r| !r),
            "freed pages are handed back"
        );
        assert!(after[66..].iter().all(|&r| r), "allocated pages stay");
        assert_eq!(map.unreleased_pages(), 0);
    }
}
