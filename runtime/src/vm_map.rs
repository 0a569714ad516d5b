//! The VM map: one protection entry per 64 KiB page of a task's address space, and every
//! range rule of docs/spec.md §3–4 that depends only on the map. Pure data: no memory, no locks.

use crate::kern::{
    ADDRESS_SPACE_END, KernResult, KernReturn, MAX_PAGES, PAGE_SHIFT, VM_PAGE_SIZE, VmProt,
};

/// Entry bit: the page is allocated.
const ALLOCATED: u8 = 0x80;
/// Entry bit of an unallocated page: freed, its physical memory not yet handed back.
const UNRELEASED: u8 = 0x40;
/// Entry bit of an unallocated page: a guard region in the host mapping (see
/// [`PageKind::Guarded`]).
const GUARDED: u8 = 0x01;
/// Entry bits 0..3: the current protection.
const CUR_MASK: u8 = 0x07;
/// Entry bits 3..6: the maximum protection.
const MAX_SHIFT: u8 = 3;

/// The entry of a freshly allocated page: `cur = DEFAULT`, `max = ALL`.
const FRESH: u8 =
    ALLOCATED | VmProt::DEFAULT.bits() as u8 | ((VmProt::ALL.bits() as u8) << MAX_SHIFT);

/// What a task's own loads and stores may do on a page when the table binds them (the
/// hardware view of an entry; one rule for the host mapping and the checked bulk
/// instructions): nothing on an unallocated page or one whose current protection has
/// neither `READ` nor `WRITE`; read with `READ` alone; read and write with `WRITE` (an MMU
/// cannot map a page write-only, so a `WRITE` page is readable too, as on Mach's x86 pmap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestAccess {
    /// Loads and stores trap.
    None,
    /// Loads work, stores trap.
    Read,
    /// Loads and stores work.
    ReadWrite,
}

impl GuestAccess {
    fn of(entry: u8) -> GuestAccess {
        if entry & ALLOCATED == 0 {
            GuestAccess::None
        } else if entry & VmProt::WRITE.bits() as u8 != 0 {
            GuestAccess::ReadWrite
        } else if entry & VmProt::READ.bits() as u8 != 0 {
            GuestAccess::Read
        } else {
            GuestAccess::None
        }
    }

    /// Whether the access allows a load (`write == false`) or a store.
    pub fn allows(self, write: bool) -> bool {
        match self {
            GuestAccess::None => false,
            GuestAccess::Read => !write,
            GuestAccess::ReadWrite => true,
        }
    }
}

/// What a page is to the host mapping: allocated (with what its guest may do), freed but
/// still holding its physical memory (waiting to be released in a batch), an unallocated
/// hole with nothing behind it, or an unallocated guard region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageKind {
    /// Allocated.
    Allocated(GuestAccess),
    /// Freed, its memory not yet handed back.
    Freed,
    /// Unallocated, its memory handed back (or never used): `PROT_NONE`, one mapping per
    /// run of such pages, nothing per page.
    Hole,
    /// Unallocated, a guard region: faults like `PROT_NONE` without a mapping of its own,
    /// but its marker costs a page-table entry per 4 KiB. Used where the mapping budget
    /// would not allow a hole.
    Guarded,
}

/// A half-open run of pages `[first, end)` with `first <= end <= MAX_PAGES`: made only by
/// the checked constructors, so every range the table sees holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRange {
    first: u32,
    end: u32,
}

impl PageRange {
    /// Every page of a 4 GiB address space.
    pub const ALL: PageRange = PageRange {
        first: 0,
        end: MAX_PAGES,
    };

    /// `[first, end)`, or `None` unless `first <= end <= MAX_PAGES`.
    pub fn new(first: u32, end: u32) -> Option<PageRange> {
        (first <= end && end <= MAX_PAGES).then_some(PageRange { first, end })
    }

    /// The `count` pages from `first`, or `None` past `MAX_PAGES`.
    pub fn from_count(first: u32, count: u32) -> Option<PageRange> {
        PageRange::new(first, first.checked_add(count)?)
    }

    /// The first page.
    pub fn first(self) -> u32 {
        self.first
    }

    /// One past the last page.
    pub fn end(self) -> u32 {
        self.end
    }

    /// The part of the range below page `end` (empty if it starts at or above it).
    pub fn below(self, end: u32) -> PageRange {
        let end = self.end.min(end).max(self.first);
        PageRange {
            first: self.first,
            end,
        }
    }

    /// The smallest range holding both.
    pub fn union(self, other: PageRange) -> PageRange {
        PageRange {
            first: self.first.min(other.first),
            end: self.end.max(other.end),
        }
    }

    /// The pages that cover the bytes `[address, address + size)`: the start is rounded
    /// down and the end rounded up to a page. `None` if the end lies beyond 4 GiB.
    pub fn covering(address: u32, size: u32) -> Option<PageRange> {
        let end = u64::from(address) + u64::from(size);
        if end > ADDRESS_SPACE_END {
            return None;
        }
        Some(PageRange {
            first: address >> PAGE_SHIFT,
            end: end.div_ceil(u64::from(VM_PAGE_SIZE)) as u32,
        })
    }

    /// The number of pages.
    pub fn len(self) -> u32 {
        self.end - self.first
    }

    /// Whether the run holds no page.
    pub fn is_empty(self) -> bool {
        self.end == self.first
    }

    /// The first byte address of the run.
    pub fn address(self) -> u64 {
        u64::from(self.first) << PAGE_SHIFT
    }

    /// The size of the run in bytes.
    pub fn bytes(self) -> u64 {
        u64::from(self.len()) << PAGE_SHIFT
    }
}

/// One allocated page's state in a task's page table: its current and maximum protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageState {
    /// The current protection.
    pub protection: VmProt,
    /// The maximum protection.
    pub max_protection: VmProt,
}

/// A maximal run of allocated pages with equal protections, as `vm_region` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// The region's first byte.
    pub address: u32,
    /// The region's size in bytes (a multiple of the page; up to 4 GiB, hence `u64`).
    pub size: u64,
    /// The current protection.
    pub protection: VmProt,
    /// The maximum protection.
    pub max_protection: VmProt,
}

impl Region {
    /// One past the region's last byte (`address + size`, which can be 4 GiB).
    pub fn end(&self) -> u64 {
        u64::from(self.address) + self.size
    }

    /// Whether `address` lies inside the region.
    pub fn contains(&self, address: u32) -> bool {
        self.address <= address && u64::from(address) < self.end()
    }
}

/// The page/protection table of one address space.
///
/// The table holds one entry per page up to the highest page ever allocated; every page
/// past it, up to [`VmMap::limit`], is unallocated, and pages at or past the limit do not
/// exist. (A task's table thus costs bytes in proportion to the memory it uses, not 64 KiB.)
#[derive(Clone, Debug)]
pub struct VmMap {
    pages: Vec<u8>,
    limit: u32,
    allocated: u32,
    /// Unallocated pages marked [`UNRELEASED`].
    unreleased: u32,
}

impl VmMap {
    /// A map of `limit` pages whose first `initial` pages are allocated with `cur = DEFAULT`
    /// and `max = ALL` (a task's initial memory, docs/spec.md §3 rule 6).
    ///
    /// # Panics
    /// If `initial > limit` or `limit > MAX_PAGES`: the callers derive both from a
    /// validated memory type.
    pub fn new(limit: u32, initial: u32) -> VmMap {
        assert!(initial <= limit && limit <= crate::kern::MAX_PAGES);
        VmMap {
            pages: vec![FRESH; initial as usize],
            limit,
            allocated: initial,
            unreleased: 0,
        }
    }

    /// The number of pages of the address space.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The number of table entries (pages past it are unallocated).
    fn len(&self) -> u32 {
        self.pages.len() as u32
    }

    /// The number of allocated pages.
    pub fn allocated_pages(&self) -> u32 {
        self.allocated
    }

    /// The state of `page`, or `None` if it is unallocated.
    pub fn entry(&self, page: u32) -> Option<PageState> {
        let e = *self.pages.get(page as usize)?;
        (e & ALLOCATED != 0).then(|| PageState {
            protection: VmProt::from_bits_truncate(u32::from(e & CUR_MASK)),
            max_protection: VmProt::from_bits_truncate(u32::from(e >> MAX_SHIFT)),
        })
    }

    /// docs/spec.md §3 rule 1.4 for the bytes `[address, address + size)`: `Ok` if every page is
    /// allocated with `need` in its current protection; else the code of the first page
    /// (in address order) that is unallocated or past the address space
    /// (`KERN_INVALID_ADDRESS`) or lacks `need` (`KERN_PROTECTION_FAILURE`). A range
    /// ending beyond 4 GiB is `KERN_INVALID_ADDRESS` as a whole (rule 4).
    pub fn check_access(&self, address: u32, size: u32, need: VmProt) -> KernResult<()> {
        let range = PageRange::covering(address, size).ok_or(KernReturn::InvalidAddress)?;
        self.check_pages(range, need)
    }

    /// [`VmMap::check_access`] on whole pages.
    pub fn check_pages(&self, range: PageRange, need: VmProt) -> KernResult<()> {
        let in_map = range.end.min(self.len());
        let entries = self
            .pages
            .get(range.first as usize..in_map as usize)
            .unwrap_or(&[]);
        let want = ALLOCATED | need.bits() as u8;
        // Fast path: the AND of a uniform, permitted run keeps every wanted bit. This loop
        // has no early exit, so it vectorises; only a failing range takes the slow walk.
        let all = entries.iter().fold(0xff, |acc, &e| acc & e);
        if all & want != want || in_map < range.end {
            for &e in entries {
                if e & ALLOCATED == 0 {
                    return Err(KernReturn::InvalidAddress);
                }
                if e & want != want {
                    return Err(KernReturn::ProtectionFailure);
                }
            }
            return Err(KernReturn::InvalidAddress);
        }
        Ok(())
    }

    /// What the task's own loads and stores may do on `page`.
    pub fn guest_access(&self, page: u32) -> GuestAccess {
        self.pages
            .get(page as usize)
            .map_or(GuestAccess::None, |&e| GuestAccess::of(e))
    }

    /// What `page` is, as the host mapping treats it.
    pub(crate) fn kind(&self, page: u32) -> PageKind {
        Self::kind_of(self.pages.get(page as usize).copied().unwrap_or(0))
    }

    /// [`VmMap::kind`] of an entry [`VmMap::save`] took.
    pub(crate) fn kind_of(entry: u8) -> PageKind {
        if entry & ALLOCATED != 0 {
            PageKind::Allocated(GuestAccess::of(entry))
        } else if entry & UNRELEASED != 0 {
            PageKind::Freed
        } else if entry & GUARDED != 0 {
            PageKind::Guarded
        } else {
            PageKind::Hole
        }
    }

    /// Marks every unallocated page of `range` (inside the table's limit) a guard region:
    /// freed pages count as released (the guard drops their memory).
    pub(crate) fn guard(&mut self, range: PageRange) {
        let end = range.end.min(self.limit);
        if end > self.len() {
            self.pages.resize(end as usize, 0);
        }
        let Some(entries) = self.pages.get_mut(range.first as usize..end as usize) else {
            return;
        };
        for e in entries.iter_mut().filter(|e| **e & ALLOCATED == 0) {
            if *e & UNRELEASED != 0 {
                self.unreleased -= 1;
            }
            *e = GUARDED;
        }
    }

    /// The first address of `[address, address + len)` that the task's own loads
    /// (`write == false`) or stores may not touch, or `None` if they may touch all of it.
    /// The range must lie inside 4 GiB.
    pub fn guest_denies(&self, address: u32, len: u32, write: bool) -> Option<u32> {
        let Some(range) = PageRange::covering(address, len) else {
            return Some(address);
        };
        let in_map = range.end.min(self.len());
        let entries = self
            .pages
            .get(range.first as usize..in_map as usize)
            .unwrap_or(&[]);
        // Fast path, as in `check_pages`: the AND of the entries keeps a bit only if every
        // page has it, so if it allows the access, every page does.
        let all = entries.iter().fold(0xff, |acc, &e| acc & e);
        if in_map == range.end && GuestAccess::of(all).allows(write) {
            return None;
        }
        (range.first..range.end)
            .find(|&page| !self.guest_access(page).allows(write))
            .map(|page| (page << PAGE_SHIFT).max(address))
    }

    /// The raw entries of `range` (pages past the table read as unallocated), to undo a
    /// change with [`VmMap::restore`].
    pub(crate) fn save(&self, range: PageRange) -> Vec<u8> {
        (range.first..range.end)
            .map(|p| self.pages.get(p as usize).copied().unwrap_or(0))
            .collect()
    }

    /// Puts back the entries [`VmMap::save`] took of `range`, with the counts.
    pub(crate) fn restore(&mut self, range: PageRange, saved: &[u8]) {
        if range.end > self.len() {
            self.pages.resize(range.end as usize, 0);
        }
        let entries = &mut self.pages[range.first as usize..range.end as usize];
        let count = |v: &[u8], bit: u8| v.iter().filter(|&&e| e & bit != 0).count() as u32;
        self.allocated = self.allocated - count(entries, ALLOCATED) + count(saved, ALLOCATED);
        self.unreleased = self.unreleased - count(entries, UNRELEASED) + count(saved, UNRELEASED);
        entries.copy_from_slice(saved);
    }

    /// Whether any page of `range` is allocated.
    pub fn any_allocated(&self, range: PageRange) -> bool {
        let end = range.end.min(self.len()) as usize;
        self.pages
            .get(range.first as usize..end)
            .is_some_and(|s| s.iter().any(|&e| e & ALLOCATED != 0))
    }

    /// First fit: the lowest page starting `count` consecutive unallocated pages inside the
    /// address space, or `None`.
    pub fn find_free(&self, count: u32) -> Option<u32> {
        if count == 0 || count > self.limit() {
            return None;
        }
        let mut run_start = 0u32;
        let mut run = 0u32;
        for (page, &e) in self.pages.iter().enumerate() {
            if e & ALLOCATED != 0 {
                run = 0;
                run_start = page as u32 + 1;
            } else {
                run += 1;
                if run == count {
                    return Some(run_start);
                }
            }
        }
        // the free run at the end of the table goes on up to the limit
        (u64::from(run_start) + u64::from(count) <= u64::from(self.limit)).then_some(run_start)
    }

    /// Marks every page of `range` allocated with `cur = DEFAULT`, `max = ALL`.
    ///
    /// # Panics
    /// If the range reaches past the limit or holds an allocated page: callers check with
    /// [`VmMap::any_allocated`] and the limit first.
    pub fn allocate(&mut self, range: PageRange) {
        assert!(range.end <= self.limit, "allocating past the limit");
        if range.end > self.len() {
            self.pages.resize(range.end as usize, 0);
        }
        let entries = &mut self.pages[range.first as usize..range.end as usize];
        assert!(
            entries.iter().all(|&e| e & ALLOCATED == 0),
            "allocating an allocated page"
        );
        let reused = entries.iter().filter(|&&e| e & UNRELEASED != 0).count() as u32;
        entries.fill(FRESH);
        self.unreleased -= reused;
        self.allocated += range.len();
    }

    /// Marks every allocated page of `range` unallocated (pages past the limit are ignored)
    /// and unreleased, and returns how many there were.
    pub fn deallocate(&mut self, range: PageRange) -> u32 {
        let end = range.end.min(self.len());
        let Some(entries) = self.pages.get_mut(range.first as usize..end as usize) else {
            return 0;
        };
        let mut freed = 0;
        for e in entries.iter_mut().filter(|e| **e & ALLOCATED != 0) {
            *e = UNRELEASED;
            freed += 1;
        }
        self.allocated -= freed;
        self.unreleased += freed;
        freed
    }

    /// The number of freed pages whose physical memory has not been handed back.
    pub fn unreleased_pages(&self) -> u32 {
        self.unreleased
    }

    /// The runs of freed, unreleased pages, which are from now on counted as released.
    pub fn take_unreleased(&mut self) -> Vec<PageRange> {
        let mut runs: Vec<PageRange> = Vec::new();
        for (page, e) in self.pages.iter_mut().enumerate() {
            if *e & UNRELEASED == 0 {
                continue;
            }
            *e = 0;
            let page = page as u32;
            match runs.last_mut() {
                Some(run) if run.end == page => run.end += 1,
                _ => runs.push(PageRange {
                    first: page,
                    end: page + 1,
                }),
            }
        }
        self.unreleased = 0;
        runs
    }

    /// Marks every page unallocated (a terminated task).
    pub fn clear(&mut self) {
        self.pages = Vec::new();
        self.allocated = 0;
        self.unreleased = 0;
    }

    /// The `vm_protect` checks over `range`: first any unallocated page (or one past the
    /// address space) gives `KERN_INVALID_ADDRESS`, then any page whose maximum lacks
    /// `prot` gives `KERN_PROTECTION_FAILURE`.
    pub fn check_protect(&self, range: PageRange, prot: VmProt) -> KernResult<()> {
        if range.end > self.len() {
            return Err(KernReturn::InvalidAddress); // past the table: unallocated
        }
        let entries = &self.pages[range.first as usize..range.end as usize];
        if entries.iter().any(|&e| e & ALLOCATED == 0) {
            return Err(KernReturn::InvalidAddress);
        }
        let bits = prot.bits() as u8;
        if entries.iter().any(|&e| (e >> MAX_SHIFT) & bits != bits) {
            return Err(KernReturn::ProtectionFailure);
        }
        Ok(())
    }

    /// Applies `vm_protect` to a range that passed [`VmMap::check_protect`]:
    /// `set_maximum` sets `max = prot` and `cur &= prot`, else `cur = prot`.
    pub fn protect(&mut self, range: PageRange, set_maximum: bool, prot: VmProt) {
        let bits = prot.bits() as u8;
        for e in &mut self.pages[range.first as usize..range.end as usize] {
            debug_assert!(*e & ALLOCATED != 0);
            *e = if set_maximum {
                ALLOCATED | (*e & CUR_MASK & bits) | (bits << MAX_SHIFT)
            } else {
                (*e & !CUR_MASK) | bits
            };
        }
    }

    /// The region containing the page of `address`, or else the first region above it.
    pub fn region(&self, address: u32) -> Option<Region> {
        let page = (address >> PAGE_SHIFT) as usize;
        let tail = self.pages.get(page..)?;
        let first = page + tail.iter().position(|&e| e & ALLOCATED != 0)?;
        let entry = self.pages[first];
        let start = self.pages[..first]
            .iter()
            .rposition(|&e| e != entry)
            .map_or(0, |p| p + 1);
        let end = self.pages[first..]
            .iter()
            .position(|&e| e != entry)
            .map_or(self.pages.len(), |n| first + n);
        let state = self.entry(first as u32)?;
        Some(Region {
            address: (start as u32) << PAGE_SHIFT,
            size: ((end - start) as u64) << PAGE_SHIFT,
            protection: state.protection,
            max_protection: state.max_protection,
        })
    }

    /// Every region, in address order.
    pub fn regions(&self) -> impl Iterator<Item = Region> + '_ {
        let mut next: Option<u64> = Some(0);
        std::iter::from_fn(move || {
            let from = u32::try_from(next?).ok()?;
            let region = self.region(from)?;
            next = Some(u64::from(region.address) + region.size);
            Some(region)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u32 = VM_PAGE_SIZE;

    fn pages(first: u32, end: u32) -> PageRange {
        PageRange { first, end }
    }

    #[test]
    fn covering_rounds_out_and_refuses_past_4gib() {
        assert_eq!(PageRange::covering(P + 1, 1), Some(pages(1, 2)));
        assert_eq!(PageRange::covering(P - 1, 2), Some(pages(0, 2)));
        assert_eq!(
            PageRange::covering(u32::MAX - P + 1, P),
            Some(pages(65535, 65536))
        );
        assert_eq!(PageRange::covering(u32::MAX, 2), None);
    }

    #[test]
    fn check_reports_first_offending_page_in_address_order() {
        let mut map = VmMap::new(8, 4);
        map.protect(pages(1, 2), false, VmProt::NONE);
        // page 1 lacks READ and comes before the unallocated page 4
        assert_eq!(
            map.check_access(0, 5 * P, VmProt::READ),
            Err(KernReturn::ProtectionFailure)
        );
        assert_eq!(
            map.check_access(2 * P, 3 * P, VmProt::READ),
            Err(KernReturn::InvalidAddress)
        );
        assert_eq!(map.check_access(2 * P, 2 * P, VmProt::READ), Ok(()));
        // past the limit is an address error
        assert_eq!(map.check_access(0, 4 * P, VmProt::NONE), Ok(()));
        assert_eq!(
            map.check_access(0, 9 * P, VmProt::NONE),
            Err(KernReturn::InvalidAddress)
        );
        assert_eq!(
            map.check_access(2 * P, 7 * P, VmProt::NONE),
            Err(KernReturn::InvalidAddress)
        );
        assert_eq!(
            map.check_access(u32::MAX - 3, 8, VmProt::NONE),
            Err(KernReturn::InvalidAddress)
        );
    }

    #[test]
    fn freed_pages_wait_as_unreleased_until_taken_or_allocated() {
        let mut map = VmMap::new(12, 8);
        assert_eq!(map.deallocate(pages(1, 4)), 3);
        assert_eq!(map.deallocate(pages(0, 12)), 5); // pages 0, 4..8; 1..4 are free already
        assert_eq!(map.unreleased_pages(), 8);
        map.allocate(pages(2, 3));
        assert_eq!(map.unreleased_pages(), 7);
        assert_eq!(map.take_unreleased(), [pages(0, 2), pages(3, 8)]);
        assert_eq!(map.unreleased_pages(), 0);
        assert_eq!(map.take_unreleased(), []);
        // unreleased pages are unallocated in every respect
        assert_eq!(map.entry(0), None);
        assert_eq!(map.find_free(2), Some(0));
        assert_eq!(map.region(0).map(|r| r.address), Some(2 * P));
    }

    #[test]
    fn first_fit_skips_allocated_runs() {
        let mut map = VmMap::new(10, 2);
        map.allocate(pages(3, 4));
        assert_eq!(map.find_free(1), Some(2));
        assert_eq!(map.find_free(2), Some(4));
        assert_eq!(map.find_free(6), Some(4));
        assert_eq!(map.find_free(7), None);
        assert_eq!(map.find_free(0), None);
    }

    #[test]
    fn protect_lowers_max_and_masks_cur() {
        let mut map = VmMap::new(4, 4);
        map.protect(pages(1, 3), true, VmProt::READ);
        let s = map.entry(1).unwrap();
        assert_eq!(
            (s.protection, s.max_protection),
            (VmProt::READ, VmProt::READ)
        );
        assert_eq!(
            map.check_protect(pages(1, 2), VmProt::WRITE),
            Err(KernReturn::ProtectionFailure)
        );
        assert_eq!(
            map.check_protect(pages(3, 5), VmProt::READ),
            Err(KernReturn::InvalidAddress)
        );
    }

    #[test]
    fn regions_are_maximal_runs_of_equal_entries() {
        let mut map = VmMap::new(16, 4);
        map.protect(pages(2, 3), false, VmProt::READ);
        map.allocate(pages(8, 10));
        let got: Vec<_> = map
            .regions()
            .map(|r| (r.address / P, r.size / u64::from(P)))
            .collect();
        assert_eq!(got, [(0, 2), (2, 1), (3, 1), (8, 2)]);
        assert_eq!(map.region(P + 5).unwrap().address, 0);
        assert_eq!(map.region(5 * P).unwrap().address, 8 * P);
        assert_eq!(map.region(10 * P), None);
        assert_eq!(map.region(u32::MAX), None);
    }
}
