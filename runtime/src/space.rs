//! A task's address space: its [`Mapping`], its [`VmMap`] behind the lock that orders every
//! change to either, the budget of kernel mappings it may use, and the primitives the kernel
//! uses to touch its bytes.

use std::io;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::backing::{TaskFile, any_written, files_supported};
use crate::kern::{KernResult, KernReturn, MAX_PAGES, PAGE_SHIFT, VM_PAGE_SIZE};
use crate::lock::{Rank, RankedGuard, RankedMutex};
use crate::mapping::{Mapping, guard_regions_supported};
use crate::pool::{Reserved, SpacePool};
use crate::views::{Backing, Views};
use crate::vm_map::{GuestAccess, PageKind, PageRange, VmMap};

/// What the map lock guards: the page table, and what the task's mapping costs.
pub(crate) struct MapState {
    /// The page/protection table.
    pub(crate) map: VmMap,
    /// The kernel mappings (VMAs) the task's reservation is cut into: one per run of
    /// equal host protection and backing (see [`AddressSpace::change`]).
    runs: u32,
    /// What backs each page (with a task file: see [`crate::views`]).
    pub(crate) views: Views,
    /// Whether parts of the mapping were mapped anew (private mappings of virtual copies,
    /// pages given back from them): a reservation put back in the pool is then remapped.
    remapped: bool,
}

/// Freed pages are handed back to the kernel once at least this many (4 MiB) wait: a large
/// free is released at once, small ones in batches, so that a loop of small `vm_read` +
/// `vm_deallocate` reuses resident pages instead of faulting fresh ones in on every call.
pub(crate) const RELEASE_BATCH_PAGES: u32 = 64;

/// A reservation going back to the spawn pool keeps its old task's read-write prefix
/// mapped, zeroed in place, when the prefix is at most this many pages (2 MiB) and every
/// later page is `PROT_NONE`: a task of the same initial size then spawns, and drops,
/// without a system call for its protections and without faulting its pages in again.
/// With a memory file only the file's data (what the task wrote) is zeroed; anonymous
/// memory is zeroed whole, so there the prefix is at most [`WARM_ANONYMOUS_PAGES`].
pub(crate) const WARM_PAGES: u32 = 32;

/// [`WARM_PAGES`] for anonymous memory (256 KiB): with no file to ask where the task wrote,
/// the prefix is zeroed whole, so it is kept small (a choice, not a measured optimum).
pub(crate) const WARM_ANONYMOUS_PAGES: u32 = 4;

/// [`AddressSpace::warm`] before the task terminates, or when its layout has no warm prefix.
const NOT_WARM: u32 = u32::MAX;

/// The most pages one change may turn into guard regions (64 MiB, whose markers take at
/// most 128 KiB of page tables): the budget's fallback is for many small holes; a larger
/// range is one run anyway, and guarding it would cost the process page tables without
/// bound (8 MiB for 4 GiB).
const MAX_GUARD_PAGES: u32 = 1024;

/// How an address space is set up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpaceOptions {
    /// The memory quota in pages, if the host set one.
    pub(crate) quota_pages: Option<u32>,
    /// Whether the mapping's protections follow the table (guest protection).
    pub(crate) guest_protection: bool,
    /// The most kernel mappings the task's reservation may be cut into.
    pub(crate) map_budget: u32,
    /// When copies between tasks share pages instead of copying bytes.
    pub(crate) copy: CopyPolicy,
}

/// How `vm_read`, `vm_copy`, `vm_read_overwrite` and `vm_write` between tasks move bytes.
///
/// A *virtual* copy maps the source's pages into the destination copy-on-write, as Mach
/// does: the call costs a few `mmap`s whatever its size, the copy takes no memory until
/// one side writes a page, and the first write to a shared 4 KiB page copies it (a few
/// microseconds). Every value any task or host call can observe is that of a physical
/// copy; only time and memory differ. See `docs/spec.md` §9.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CopyMode {
    /// Always copy bytes (task memory is anonymous, as before virtual copies).
    Physical,
    /// Share pages for every copy between task memories (`vm_read` into the caller's new
    /// region, `vm_copy`, `vm_read_overwrite` and `vm_write` between tasks), however small,
    /// wherever the kernel allows it: to compare a program's results both ways.
    Virtual,
    /// Share pages for `vm_read` and `vm_copy` of at least the threshold
    /// ([`RuntimeOptions::virtual_copy_pages`](crate::RuntimeOptions::virtual_copy_pages)),
    /// copy bytes otherwise (the default).
    #[default]
    Auto,
}

/// Which copies share pages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CopyPolicy {
    /// The mode.
    pub(crate) mode: CopyMode,
    /// In [`CopyMode::Auto`], the fewest pages a shared `vm_read` or `vm_copy` moves.
    pub(crate) threshold_pages: u32,
}

/// The calls that move bytes between task memories, for [`CopyPolicy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CopyCall {
    /// `vm_read` into the caller's new region, or `vm_copy`: whole new contents.
    ReadOrCopy,
    /// `vm_read_overwrite` or `vm_write`: over memory the destination is using.
    Overwrite,
}

impl CopyPolicy {
    /// Whether a `call` moving `pages` pages should share them.
    pub(crate) fn virtual_for(self, call: CopyCall, pages: u32) -> bool {
        match self.mode {
            CopyMode::Physical => false,
            CopyMode::Virtual => true,
            CopyMode::Auto => call == CopyCall::ReadOrCopy && pages >= self.threshold_pages,
        }
    }
}

/// A source range of a virtual copy, frozen: in order, runs of frozen file pages
/// `(file, first file page, end)` holding its bytes.
pub(crate) struct Frozen(Vec<(Arc<TaskFile>, u32, u32)>);

/// Why the mapping could not be brought in step with the table.
enum SyncError {
    /// Nothing irreversible happened: putting the table back and syncing again undoes it.
    Undoable,
    /// Contents were dropped or the undo failed: the task cannot go on.
    Fatal,
}

/// One task's address space.
pub(crate) struct AddressSpace {
    /// The reservation; taken out only when the space drops (see its `Drop`).
    mapping: ManuallyDrop<Mapping>,
    /// Where the reservation goes back, reset, when the space drops.
    pool: Option<Arc<SpacePool>>,
    /// Bytes committed (the wasm memory's current size). Only grows, and only while the
    /// task's store is held.
    committed: AtomicU64,
    state: RankedMutex<MapState>,
    /// The lock key of the map (the task's id): two maps are locked in key order.
    key: u64,
    /// Set once, under the map lock, when the task terminates: every later call through a
    /// name for it is `MACH_SEND_INVALID_DEST`, and no host path touches its memory again.
    dead: AtomicBool,
    /// Set by the kernel while it grows the memory under the map lock, so that
    /// [`AddressSpace::grow_to`] neither takes the lock again nor marks the pages.
    kernel_growing: AtomicBool,
    options: SpaceOptions,
    /// Whether a change past the mapping budget may make unallocated pages guard regions
    /// (otherwise they stay `PROT_NONE`): with guest protection, where the kernel has them.
    guards: bool,
    /// The memory file under the mapping, if the task's pages can be shared (virtual
    /// copies); `None`: anonymous memory.
    file: Option<Arc<TaskFile>>,
    /// The warm prefix ([`AddressSpace::warm_prefix`]) found when the task terminated
    /// (its mapping changes no more), or [`NOT_WARM`].
    warm: AtomicU32,
    /// The program the task runs (see `ModuleInner::program`), kept with the reservation.
    program: u64,
}

impl AddressSpace {
    /// Reserves a space of `limit` pages with `initial` pages committed and allocated, for
    /// the task `key` running `program` (see `ModuleInner::program`).
    pub(crate) fn new(
        key: u64,
        program: u64,
        initial: u32,
        limit: u32,
        options: SpaceOptions,
        pool: Option<Arc<SpacePool>>,
    ) -> io::Result<AddressSpace> {
        let want_file = options.copy.mode != CopyMode::Physical && files_supported();
        let reused = pool
            .as_ref()
            .and_then(|pool| pool.take(want_file, initial, program));
        let (mapping, file, warm, last_program) = match reused {
            Some(Reserved {
                mapping,
                file,
                warm,
                program,
            }) => (mapping, file, warm, program),
            None => {
                let (mapping, file) = Self::reserve(key, want_file)?;
                (mapping, file, 0, program)
            }
        };
        // The initial pages read-write, every later one `PROT_NONE`: from a warm prefix of
        // the same size, nothing to do.
        let bytes = u64::from(initial) << PAGE_SHIFT;
        let warm_bytes = u64::from(warm) << PAGE_SHIFT;
        if last_program != program
            && warm > 0
            && let Some(file) = &file
        {
            // A reservation changing program starts from an empty file. Its old prefix was
            // zeroed in place, so it is still the file's data: kept, it would be zeroed
            // again at every reset (and cost two `lseek`s more) whether or not the new
            // program ever touches it. The same program keeps it (another task of it
            // touches the same pages, which stay resident: no fault). A failure leaves
            // zero pages, which is only memory.
            let _ = file.punch_all(warm_bytes);
        }
        mapping.commit(warm_bytes, bytes)?;
        mapping.protect(bytes, warm_bytes, GuestAccess::None)?;
        Ok(AddressSpace {
            mapping: ManuallyDrop::new(mapping),
            pool,
            committed: AtomicU64::new(bytes),
            state: RankedMutex::new(
                Rank::Map,
                MapState {
                    map: VmMap::new(limit, initial),
                    // the committed prefix, then the rest of the reservation
                    runs: if initial > 0 { 2 } else { 1 },
                    views: Views::default(),
                    remapped: false,
                },
            ),
            key,
            dead: AtomicBool::new(false),
            kernel_growing: AtomicBool::new(false),
            options,
            guards: options.guest_protection && guard_regions_supported(),
            file,
            warm: AtomicU32::new(NOT_WARM),
            program,
        })
    }

    /// A fresh reservation, with a memory file if `want_file` and one can be made.
    fn reserve(key: u64, want_file: bool) -> io::Result<(Mapping, Option<Arc<TaskFile>>)> {
        // A task file takes a file descriptor: where the process has none left (or the
        // kernel cannot share), the task gets anonymous memory, and its copies are physical.
        let file = if want_file {
            match TaskFile::create() {
                Ok(file) => Some(Arc::new(file)),
                Err(e) => {
                    tracing::warn!("no memory file for task {key} ({e}): its copies are physical");
                    None
                }
            }
        } else {
            None
        };
        let mapping = Mapping::reserve(file.as_deref())?;
        Ok((mapping, file))
    }

    /// Whether the table binds the task's own loads and stores.
    pub(crate) fn guest_protection(&self) -> bool {
        self.options.guest_protection
    }

    /// Whether the task has terminated.
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Whether the task's pages can be shared (its memory is a file).
    pub(crate) fn shareable(&self) -> bool {
        self.file.is_some()
    }

    /// When copies into this space share pages.
    pub(crate) fn copy_policy(&self) -> CopyPolicy {
        self.options.copy
    }

    /// The kernel mappings the task's reservation is cut into now, and its budget.
    pub(crate) fn map_usage(&self) -> (u32, u32) {
        (self.lock().runs, self.options.map_budget)
    }

    /// Terminates the space: marks it dead, empties its table and gives its memory back.
    pub(crate) fn terminate(&self) {
        let mut state = self.lock();
        self.terminate_locked(&mut state, true);
    }

    /// [`AddressSpace::terminate`] under the map lock the caller holds.
    /// `in_step`: whether the mapping is known to follow the table (not so after a failed
    /// system call: the reservation then goes back to the pool only remapped).
    fn terminate_locked(&self, state: &mut MapState, in_step: bool) {
        // Once is enough (the map is empty after): the warm prefix found the first time
        // must not be recomputed from the empty map.
        if self.dead.swap(true, Ordering::AcqRel) {
            return;
        }
        // The mapping changes no more from here on (every change checks `dead` under the
        // map lock): a warm prefix found now stays one until the space drops.
        let warm = if in_step {
            self.warm_prefix(state)
        } else {
            state.remapped = true;
            None
        };
        self.warm.store(warm.unwrap_or(NOT_WARM), Ordering::Relaxed);
        state.map.clear();
        // Its snapshots are let go of, and the pages that mapped them mapped anew, before
        // the references go: guest code of the task still running (until its call returns
        // and its store is dropped) must not see a file page that another task may reuse.
        self.release_snapshots(state, PageRange::ALL);
        // Its own pages die (the warm prefix is zeroed in place when the space drops); the
        // snapshots others took of them stay.
        self.release_memory(warm.unwrap_or(0));
    }

    /// Gives back the memory of the pages from `first` on that no snapshot elsewhere
    /// needs. A failure keeps the memory until the mapping is unmapped with the space.
    fn release_memory(&self, first: u32) {
        match &self.file {
            Some(file) => file.punch_unreferenced(first, self.pages()),
            None => {
                let _ = self
                    .mapping
                    .discard(u64::from(first) << PAGE_SHIFT, self.byte_size());
            }
        }
    }

    /// The pages a reservation put back in the pool may keep read-write, zeroed in place:
    /// `Some(k)` if the mapping is the read-write prefix `0..k` (at most [`WARM_PAGES`], or
    /// [`WARM_ANONYMOUS_PAGES`] without a memory file), then `PROT_NONE` up to the end, the
    /// file mapped shared (no page mapped anew) and no guard region; otherwise `None`.
    /// `state` is the space's map, locked or owned.
    fn warm_prefix(&self, state: &MapState) -> Option<u32> {
        Self::warm_prefix_of(
            self.options.guest_protection,
            self.pages(),
            self.file.is_some(),
            state,
        )
    }

    /// [`AddressSpace::warm_prefix`] of a space with or without `guest_protection` and a
    /// memory file (`file`), `committed` pages.
    fn warm_prefix_of(
        guest_protection: bool,
        committed: u32,
        file: bool,
        state: &MapState,
    ) -> Option<u32> {
        if state.remapped {
            return None;
        }
        let level = |p: u32| {
            (state.map.kind(p) != PageKind::Guarded)
                .then(|| Self::host_level_of(guest_protection, &state.map, p, committed))
        };
        let limit = if file {
            WARM_PAGES
        } else {
            WARM_ANONYMOUS_PAGES
        };
        let warm = (0..committed.min(limit + 1))
            .take_while(|&p| level(p) == Some(GuestAccess::ReadWrite))
            .count() as u32;
        (warm <= limit && (warm..committed).all(|p| level(p) == Some(GuestAccess::None)))
            .then_some(warm)
    }

    /// The host protection a committed page gets: what its guest may do if it is
    /// allocated; `PROT_NONE` if it is unallocated, whether freed and still holding its
    /// memory (so that it can be reused without faulting fresh pages in) or a hole; and
    /// read-write under a guard if it is a guard region (which costs no mapping of its own).
    /// An uncommitted page is `PROT_NONE`.
    fn level(kind: PageKind, page: u32, committed: u32) -> GuestAccess {
        match kind {
            _ if page >= committed => GuestAccess::None,
            PageKind::Allocated(access) => access,
            PageKind::Freed | PageKind::Hole => GuestAccess::None,
            PageKind::Guarded => GuestAccess::ReadWrite,
        }
    }

    /// Whether a committed page of `kind` is a guard region.
    fn guarded(&self, kind: PageKind) -> bool {
        kind == PageKind::Guarded
    }

    /// The change in the number of mapping runs when the pages `touched` go from `saved`
    /// (with `old_pages` committed) to what `map` holds (with `new_pages` committed). Only
    /// boundaries inside `touched` or at its edges can change.
    fn runs_delta(
        &self,
        map: &VmMap,
        views: &Views,
        saved: &[u8],
        touched: PageRange,
        old_pages: u32,
        new_pages: u32,
    ) -> i64 {
        let before = |p: u32| {
            let kind = if p >= touched.first() && p < touched.end() {
                VmMap::kind_of(saved[(p - touched.first()) as usize])
            } else {
                map.kind(p)
            };
            (Self::level(kind, p, old_pages), views.id(p))
        };
        let after = |p: u32| (Self::level(map.kind(p), p, new_pages), views.id(p));
        // Page MAX_PAGES stands for the guard after the 4 GiB, always PROT_NONE.
        let window = touched.first().saturating_sub(1)..(touched.end() + 1).min(MAX_PAGES + 1);
        let boundaries = |level: &dyn Fn(u32) -> (GuestAccess, u32)| {
            let mut previous = None;
            let mut count = 0i64;
            for p in window.clone() {
                let l = level(p);
                count += i64::from(previous.is_some_and(|q| q != l));
                previous = Some(l);
            }
            count
        };
        boundaries(&after) - boundaries(&before)
    }

    /// Applies `op` to the pages `range` of the table (this space's, locked by the caller)
    /// and, with guest protection on, brings the mapping in step with it.
    ///
    /// A change that would cut the mapping into more runs than the task's budget fails with
    /// `KERN_RESOURCE_SHORTAGE` before anything is touched, unless making the range's
    /// unallocated pages guard regions (where the kernel has them, and for a range of at
    /// most [`MAX_GUARD_PAGES`]) keeps it within the budget: a guard costs no mapping, but
    /// a page-table entry per 4 KiB, so holes are `PROT_NONE` runs while the budget has
    /// room. If the mapping cannot follow (`mprotect` fails: the process is out of mappings
    /// or memory), the table is put back and the mapping with it, and the call fails with
    /// `KERN_RESOURCE_SHORTAGE`, having changed nothing. If even that fails, the mapping
    /// could be stricter than the table, where a host copy would fault: the task is
    /// terminated instead (every name for it dies, as docs/spec.md's lifecycle says), and
    /// the call gets `MACH_SEND_INVALID_DEST`.
    ///
    /// Host paths never touch a page the table forbids, and the table and the mapping
    /// change together under the map lock, so no host access can ever fault. Between the
    /// two steps only the task's own running code can see the mapping disagree with the
    /// table, as a program sees a page change protection while it runs.
    pub(crate) fn change<R>(
        &self,
        state: &mut MapState,
        range: PageRange,
        op: impl FnOnce(&mut VmMap) -> R,
    ) -> KernResult<R> {
        self.apply(state, range, None, || Ok(()), op)
    }

    /// Allocates `range` (growing the memory to `range.end()` pages with `grow` first if it
    /// is shorter), as [`AddressSpace::change`] does. Pages that were freed may still hold
    /// their old bytes: the caller zeroes ([`AddressSpace::discard`]) or overwrites them.
    pub(crate) fn allocate(
        &self,
        state: &mut MapState,
        range: PageRange,
        grow: impl FnOnce() -> KernResult<()>,
    ) -> KernResult<()> {
        let end = (range.end() > self.pages()).then_some(range.end());
        self.apply(state, range, end, grow, |map| map.allocate(range))
    }

    fn apply<R>(
        &self,
        state: &mut MapState,
        range: PageRange,
        grow_to: Option<u32>,
        grow: impl FnOnce() -> KernResult<()>,
        op: impl FnOnce(&mut VmMap) -> R,
    ) -> KernResult<R> {
        let old_pages = self.pages();
        let new_pages = grow_to.map_or(old_pages, |end| end.max(old_pages));
        // Growth commits the pages between the old and the new end: they change too.
        let touched = if new_pages > old_pages {
            PageRange::new(old_pages, new_pages).map_or(range, |grown| range.union(grown))
        } else {
            range
        };
        let protect = self.options.guest_protection;
        // The undo record (one byte per page): needed to bring the mapping in step, or to
        // take back an allocation whose growth fails.
        let saved = if protect || grow_to.is_some() {
            state.map.save(touched)
        } else {
            Vec::new()
        };
        let result = op(&mut state.map);
        let runs = if protect {
            let runs_after = |map: &VmMap| {
                let delta =
                    self.runs_delta(map, &state.views, &saved, touched, old_pages, new_pages);
                ((i64::from(state.runs) + delta) as u32, delta)
            };
            let (mut runs, mut delta) = runs_after(&state.map);
            if delta > 0
                && runs > self.options.map_budget
                && self.guards
                && touched.len() <= MAX_GUARD_PAGES
            {
                state.map.guard(touched);
                (runs, delta) = runs_after(&state.map);
            }
            if delta > 0 && runs > self.options.map_budget {
                state.map.restore(touched, &saved);
                return Err(KernReturn::ResourceShortage);
            }
            runs
        } else {
            state.runs
        };
        if grow_to.is_some()
            && let Err(e) = grow()
        {
            state.map.restore(touched, &saved);
            return Err(e);
        }
        if !protect {
            return Ok(result);
        }
        match self.sync(&state.map, &state.views, &saved, touched, old_pages) {
            Ok(()) => {
                state.runs = runs;
                Ok(result)
            }
            Err(SyncError::Undoable) => {
                tracing::warn!("mprotect failed; the call is undone");
                state.map.restore(touched, &saved);
                if self.resync(&state.map, &state.views, touched).is_ok() {
                    state.runs = (i64::from(state.runs)
                        + self.runs_delta(
                            &state.map,
                            &state.views,
                            &saved,
                            touched,
                            old_pages,
                            self.pages(),
                        )) as u32;
                    return Err(KernReturn::ResourceShortage);
                }
                tracing::error!("the mapping cannot be put back in step; the task is terminated");
                self.terminate_locked(state, false);
                Err(KernReturn::SendInvalidDest)
            }
            Err(SyncError::Fatal) => {
                tracing::error!("the mapping cannot follow the table; the task is terminated");
                self.terminate_locked(state, false);
                Err(KernReturn::SendInvalidDest)
            }
        }
    }

    /// Brings the mapping over `touched` from what `saved` describes (with `old_pages`
    /// committed; pages committed since are read-write and unguarded) to what `map` holds.
    /// In an order that keeps every failure but the last undoable: guards go first onto
    /// pages that were not allocated before either (their bytes mean nothing, whatever the
    /// table is put back to); then the protections change; then guards come off pages now
    /// allocated (they read as zero); last, guards go onto pages that were allocated (which
    /// drops their bytes: past this point there is no undo).
    fn sync(
        &self,
        map: &VmMap,
        views: &Views,
        saved: &[u8],
        touched: PageRange,
        old_pages: u32,
    ) -> Result<(), SyncError> {
        let committed = self.pages();
        let end = touched.end().min(committed);
        let was = |p: u32| VmMap::kind_of(saved[(p - touched.first()) as usize]);
        let was_guarded = |p: u32| p < old_pages && self.guarded(was(p));
        let current = |p: u32| {
            if p < old_pages {
                Self::level(was(p), p, old_pages)
            } else {
                GuestAccess::ReadWrite // committed just now
            }
        };
        let to_guard = |p: u32, was_allocated: bool| {
            (self.guarded(map.kind(p))
                && !was_guarded(p)
                && matches!(was(p), PageKind::Allocated(_)) == was_allocated)
                .then_some(())
        };
        for_runs(touched.first(), end, |p| to_guard(p, false))
            .try_for_each(|(run, ())| self.guard(views, run, true))
            .map_err(|_| SyncError::Undoable)?;
        for_runs(touched.first(), end, |p| {
            let want = Self::level(map.kind(p), p, committed);
            (want != current(p)).then_some(want)
        })
        .try_for_each(|(run, access)| self.protect(run, access))
        .map_err(|_| SyncError::Undoable)?;
        for_runs(touched.first(), end, |p| {
            (was_guarded(p) && !self.guarded(map.kind(p))).then_some(())
        })
        .try_for_each(|(run, ())| self.guard(views, run, false))
        .map_err(|_| SyncError::Undoable)?;
        for_runs(touched.first(), end, |p| to_guard(p, true))
            .try_for_each(|(run, ())| self.guard(views, run, true))
            .map_err(|_| SyncError::Fatal)
    }

    /// Sets the mapping over the committed part of `touched` to what `map` holds, whatever
    /// it was: the undo of a failed [`AddressSpace::sync`].
    fn resync(&self, map: &VmMap, views: &Views, touched: PageRange) -> io::Result<()> {
        let committed = self.pages();
        let end = touched.end().min(committed);
        for_runs(touched.first(), end, |p| {
            Some(Self::level(map.kind(p), p, committed))
        })
        .try_for_each(|(run, access)| self.protect(run, access))?;
        if self.guards {
            for_runs(touched.first(), end, |p| Some(self.guarded(map.kind(p))))
                .try_for_each(|(run, install)| self.guard(views, run, install))?;
        }
        Ok(())
    }

    fn protect(&self, run: PageRange, access: GuestAccess) -> io::Result<()> {
        self.mapping
            .protect(run.address(), run.address() + run.bytes(), access)
    }

    /// Installs or removes guard regions over `run`. A guard drops the contents of
    /// anonymous memory, not of a file: with a task file, the task's own pages under a new
    /// guard are punched out of it, so that they read as zero once it comes off.
    fn guard(&self, views: &Views, run: PageRange, install: bool) -> io::Result<()> {
        self.mapping
            .guard(run.address(), run.address() + run.bytes(), install)?;
        if install && let Some(file) = &self.file {
            for (own, _) in views.runs(run).into_iter().filter(|&(_, id)| id == 0) {
                file.punch_own(own.first(), own.end())?;
            }
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

    /// Locks the map (rank [`Rank::Map`], keyed by the task id).
    pub(crate) fn lock(&self) -> RankedGuard<'_, MapState> {
        self.state.lock_keyed(self.key)
    }

    /// The key [`AddressSpace::lock`] orders this map by among maps.
    pub(crate) fn key(&self) -> u64 {
        self.key
    }

    /// Whether the quota lets `map` gain `extra` allocated pages.
    pub(crate) fn quota_allows(&self, map: &VmMap, extra: u32) -> bool {
        self.options
            .quota_pages
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
        anyhow::ensure!(!self.is_dead(), "the task has terminated");
        let (old_pages, new_pages) = ((old >> PAGE_SHIFT) as u32, (new_size >> PAGE_SHIFT) as u32);
        let range = PageRange::new(old_pages, new_pages)
            .ok_or_else(|| anyhow::anyhow!("memory.grow past 4 GiB"))?;
        anyhow::ensure!(
            self.quota_allows(&state.map, range.len()),
            "memory.grow past the task's memory quota"
        );
        let saved = state.map.save(range);
        state.map.allocate(range);
        let mut runs = state.runs;
        if self.options.guest_protection {
            let delta = self.runs_delta(
                &state.map,
                &state.views,
                &saved,
                range,
                old_pages,
                new_pages,
            );
            runs = (i64::from(runs) + delta) as u32;
            if delta > 0 && runs > self.options.map_budget {
                state.map.restore(range, &saved);
                anyhow::bail!("memory.grow past the task's mapping budget");
            }
        }
        if let Err(e) = self.mapping.commit(old, new_size) {
            state.map.restore(range, &saved);
            return Err(e.into());
        }
        state.runs = runs;
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
    /// it hands out and `vm_read` overwrites it). They become holes: their protection stays
    /// `PROT_NONE`. The caller holds the map lock.
    pub(crate) fn release_freed(&self, state: &mut MapState) {
        if state.map.unreleased_pages() >= RELEASE_BATCH_PAGES {
            for run in state.map.take_unreleased() {
                // A failure keeps the memory of pages no one can reach (see `discard`).
                let _ = self.discard(state, run);
            }
        }
    }

    /// Gives back the physical memory of the committed part of `range`; its bytes read as
    /// zero afterwards. The caller holds the map lock (`state`).
    ///
    /// Anonymous memory: `MADV_DONTNEED`. A task file: its own pages are punched out of the
    /// file; pages mapping a snapshot drop their reference (the last one punches the
    /// snapshot) and become the task's own again, punched, or fresh anonymous memory while
    /// others still hold a snapshot of the task's own file page. The calls cannot fail on
    /// our own mapping short of a kernel bug or memory exhaustion; if one does, the memory
    /// is kept: harmless for pages no one may reach (freed, or of a terminated task), and
    /// [`AddressSpace::zero`] zeroes pages it hands out by hand then.
    pub(crate) fn discard(&self, state: &mut MapState, range: PageRange) -> io::Result<()> {
        let range = range.below(self.pages());
        if range.is_empty() {
            return Ok(());
        }
        let Some(file) = &self.file else {
            return self
                .mapping
                .discard(range.address(), range.address() + range.bytes());
        };
        if state.views.all_own() {
            return file.punch_own(range.first(), range.end());
        }
        self.unshare_range(state, file, range, true)
    }

    /// Lets go of the snapshots the pages of `range` (just freed) map, at once rather than
    /// with their release batch: a snapshot keeps another task's memory (and makes its
    /// writes cost a copy), and a region freed and reused must not keep the old one.
    pub(crate) fn release_snapshots(&self, state: &mut MapState, range: PageRange) {
        let range = range.below(self.pages());
        let (Some(file), false) = (&self.file, state.views.all_own() || range.is_empty()) else {
            return;
        };
        // A failure keeps the memory of pages no one can reach (see `discard`).
        let _ = self.unshare_range(state, file, range, false);
    }

    /// Takes every page of `range` backed by a private mapping back from it (see
    /// [`AddressSpace::unshare`]), and punches the task's own pages too if `own_too`,
    /// keeping the count of kernel mappings in step.
    fn unshare_range(
        &self,
        state: &mut MapState,
        file: &Arc<TaskFile>,
        range: PageRange,
        own_too: bool,
    ) -> io::Result<()> {
        let window = self.window(range);
        let before = self.count_runs(state, window.clone(), None);
        let mut result = Ok(());
        for (run, id) in state.views.runs(range) {
            let step = match id {
                0 if own_too => file.punch_own(run.first(), run.end()),
                0 => Ok(()),
                _ => self.unshare(state, file, run),
            };
            result = result.and(step);
        }
        let after = self.count_runs(state, window, None);
        state.runs = (i64::from(state.runs) + after - before) as u32;
        result
    }

    /// Takes the pages `run`, all backed by one private mapping, back from it (reading
    /// zero): see [`AddressSpace::discard`].
    fn unshare(
        &self,
        state: &mut MapState,
        file: &Arc<TaskFile>,
        run: PageRange,
    ) -> io::Result<()> {
        state.remapped = true;
        for (other, first, end) in state.views.file_refs(run) {
            other.drop_refs(first, end);
        }
        let mut parts = Vec::new();
        file.with_unreferenced(run.first(), run.end(), |first, end, free| {
            parts.extend(PageRange::new(first, end).map(|part| (part, free)));
        });
        let committed = self.pages();
        let mut result = Ok(());
        for (part, own) in parts {
            if own {
                result = result.and(file.punch_own(part.first(), part.end()));
                state.views.set_own(part);
            } else {
                state.views.set_private(part, None, 0);
            }
            for (level_run, access) in for_runs(part.first(), part.end(), |p| {
                Some(self.host_level(&state.map, p, committed))
            }) {
                let (from, to) = (level_run.address(), level_run.address() + level_run.bytes());
                let mapped = if own {
                    self.mapping
                        .map_file(from, to, access, file, level_run.address(), true)
                } else {
                    self.mapping.map_anonymous(from, to, access)
                };
                result = result.and(mapped);
            }
            // A new mapping has no guards: put back those of guard-region pages.
            let guarded = |p: u32| (state.map.kind(p) == PageKind::Guarded).then_some(());
            for (run, ()) in for_runs(part.first(), part.end(), guarded) {
                result = result.and(self.guard(&state.views, run, true));
            }
        }
        result
    }

    /// Makes the allocated, writable pages `range` read as zero: their memory is given
    /// back, or, should that fail, overwritten. The caller holds the map lock (`state`).
    pub(crate) fn zero(&self, state: &mut MapState, range: PageRange) {
        let range = range.below(self.pages());
        if self.discard(state, range).is_err() {
            // SAFETY: the caller allocated `range` with `cur = DEFAULT` under the map lock it
            // holds, so it is committed and the mapping, in step with the table, maps it
            // read-write; no Rust reference points into task memory.
            unsafe {
                std::ptr::write_bytes(self.at(range.address() as u32), 0, range.bytes() as usize)
            };
        }
    }

    /// The host protection of `page` now: what the table gives it with guest protection,
    /// read-write if committed without.
    fn host_level(&self, map: &VmMap, page: u32, committed: u32) -> GuestAccess {
        Self::host_level_of(self.options.guest_protection, map, page, committed)
    }

    /// [`AddressSpace::host_level`] of a space with or without `guest_protection`.
    fn host_level_of(
        guest_protection: bool,
        map: &VmMap,
        page: u32,
        committed: u32,
    ) -> GuestAccess {
        if guest_protection {
            Self::level(map.kind(page), page, committed)
        } else if page < committed {
            GuestAccess::ReadWrite
        } else {
            GuestAccess::None
        }
    }

    /// The pages whose boundaries a change of `range` can move: one more on each side
    /// (page [`MAX_PAGES`] stands for the guard after the 4 GiB).
    fn window(&self, range: PageRange) -> std::ops::Range<u32> {
        range.first().saturating_sub(1)..(range.end() + 1).min(MAX_PAGES + 1)
    }

    /// The boundaries between kernel mappings among the pages `window`, with the pages of
    /// `renamed.0` given the new mapping identity `renamed.1` (none: as they are).
    fn count_runs(
        &self,
        state: &MapState,
        window: std::ops::Range<u32>,
        renamed: Option<(PageRange, u32)>,
    ) -> i64 {
        let committed = self.pages();
        let key = |p: u32| {
            let id = match renamed {
                Some((range, id)) if p >= range.first() && p < range.end() => id,
                _ => state.views.id(p),
            };
            (self.host_level(&state.map, p, committed), id)
        };
        let mut previous = None;
        let mut count = 0i64;
        for p in window {
            let k = key(p);
            count += i64::from(previous.is_some_and(|q| q != k));
            previous = Some(k);
        }
        count
    }

    /// Whether giving `range` a new private mapping keeps the task within its budget, and
    /// the number of kernel mappings it then has.
    fn runs_with_new_mapping(&self, state: &MapState, range: PageRange) -> Option<u32> {
        let window = self.window(range);
        let before = self.count_runs(state, window.clone(), None);
        let after = self.count_runs(state, window, Some((range, state.views.next_id())));
        let runs = (i64::from(state.runs) + after - before) as u32;
        (after <= before || runs <= self.options.map_budget).then_some(runs)
    }

    /// Maps `range` (committed) privately to the file pages from `file_first` with the
    /// protections the table gives, as one new private mapping; the caller counted it.
    fn map_private(
        &self,
        state: &mut MapState,
        range: PageRange,
        file: &Arc<TaskFile>,
        file_first: u32,
    ) -> io::Result<()> {
        let committed = self.pages();
        let levels: Vec<_> = for_runs(range.first(), range.end(), |p| {
            Some(self.host_level(&state.map, p, committed))
        })
        .collect();
        for (run, access) in levels {
            let offset = u64::from(file_first + (run.first() - range.first())) << PAGE_SHIFT;
            self.mapping.map_file(
                run.address(),
                run.address() + run.bytes(),
                access,
                file,
                offset,
                false,
            )?;
        }
        state
            .views
            .set_private(range, Some(file.clone()), file_first);
        state.remapped = true;
        Ok(())
    }

    /// The first half of a virtual copy: freezes the allocated, readable pages `range`
    /// (its own pages become private mappings of themselves: the file pages are a
    /// snapshot from now on) and returns where their bytes are. `Ok(None)`: the pages
    /// cannot be shared (anonymous memory, no task file, pages written since an earlier
    /// copy froze them, or the mapping budget), and nothing changed: copy the bytes.
    ///
    /// Pages frozen by an earlier copy and written since hold their bytes in private
    /// memory, not in the file: if no other snapshot refers to their file pages and the
    /// task is `quiescent` (no guest code of it can run meanwhile: the caller holds its
    /// store), their bytes are written back into the file and the private copies dropped,
    /// which makes them shareable again (at the cost of copying the written pages once);
    /// otherwise the call copies physically.
    ///
    /// If the mapping cannot follow (out of memory), the task is terminated as
    /// [`AddressSpace::change`] does, and the call gets `MACH_SEND_INVALID_DEST`.
    pub(crate) fn freeze(
        &self,
        state: &mut MapState,
        range: PageRange,
        quiescent: bool,
    ) -> KernResult<Option<Frozen>> {
        let Some(own_file) = &self.file else {
            return Ok(None);
        };
        let file = own_file;
        let mut pieces: Vec<(Arc<TaskFile>, u32, u32)> = Vec::new();
        let mut own = Vec::new();
        for (run, _) in state.views.runs(range) {
            let piece = match state.views.backing(run.first()) {
                Backing::Own => {
                    own.push(run);
                    (file.clone(), run.first(), run.end())
                }
                Backing::Anonymous => return Ok(None),
                Backing::Frozen { file, page } => {
                    // SAFETY: only the addresses of the committed run are formed.
                    let (start, end) = unsafe {
                        (
                            self.at(run.address() as u32),
                            self.base().add((run.address() + run.bytes()) as usize),
                        )
                    };
                    match any_written(start, end) {
                        Some(false) => {}
                        Some(true)
                            if quiescent
                                && Arc::ptr_eq(file, own_file)
                                && page == run.first()
                                && file.referenced_once(run.first(), run.end()) =>
                        {
                            // SAFETY: the run is allocated and readable (the caller
                            // checked the range under the map lock still held), and no
                            // guest code of the task runs (`quiescent`): nothing writes
                            // these bytes while they are read.
                            let bytes =
                                unsafe { std::slice::from_raw_parts(start, run.bytes() as usize) };
                            if file.write_at(page, bytes).is_err()
                                || self
                                    .mapping
                                    .discard(run.address(), run.address() + run.bytes())
                                    .is_err()
                            {
                                return Ok(None);
                            }
                        }
                        _ => return Ok(None),
                    }
                    (file.clone(), page, page + run.len())
                }
            };
            match pieces.last_mut() {
                Some((f, _, end)) if Arc::ptr_eq(f, &piece.0) && *end == piece.1 => *end = piece.2,
                _ => pieces.push(piece),
            }
        }
        for run in own {
            let Some(runs) = self.runs_with_new_mapping(state, run) else {
                return Ok(None);
            };
            file.add_refs(run.first(), run.end());
            if self.map_private(state, run, file, run.first()).is_err() {
                file.drop_refs(run.first(), run.end());
                return Err(self.fail(state));
            }
            state.runs = runs;
        }
        Ok(Some(Frozen(pieces)))
    }

    /// The second half of a virtual copy: maps the frozen pages at `first..` of this space
    /// (allocated and writable), replacing their contents. `Ok(false)`: this space cannot
    /// share (no task file, or the mapping budget), and nothing changed: copy the bytes.
    pub(crate) fn map_frozen(
        &self,
        state: &mut MapState,
        first: u32,
        frozen: &Frozen,
    ) -> KernResult<bool> {
        let Some(own_file) = &self.file else {
            return Ok(false);
        };
        let mut at = first;
        let mut plan = Vec::new();
        for (file, file_first, file_end) in &frozen.0 {
            let Some(range) = PageRange::new(at, at + (file_end - file_first)) else {
                return Ok(false);
            };
            plan.push((range, file, *file_first));
            at = range.end();
        }
        for (range, file, file_first) in plan {
            let Some(runs) = self.runs_with_new_mapping(state, range) else {
                // Pages already shared are the copy's; the rest is copied by the caller.
                return Ok(false);
            };
            file.add_refs(file_first, file_first + range.len());
            let old = state.views.file_refs(range);
            let own_runs: Vec<_> = state
                .views
                .runs(range)
                .into_iter()
                .filter(|&(_, id)| id == 0)
                .map(|(run, _)| run)
                .collect();
            if self.map_private(state, range, file, file_first).is_err() {
                file.drop_refs(file_first, file_first + range.len());
                return Err(self.fail(state));
            }
            state.runs = runs;
            for (file, first, end) in old {
                file.drop_refs(first, end);
            }
            for run in own_runs {
                // The task's own pages there are replaced: their memory goes back.
                let _ = own_file.punch_own(run.first(), run.end());
            }
        }
        Ok(true)
    }

    /// What backs `page` (see `Task::debug_backing`).
    pub(crate) fn backing_name(&self, page: u32) -> &'static str {
        let state = self.lock();
        match state.views.backing(page) {
            Backing::Own => "own",
            Backing::Anonymous => "anonymous",
            Backing::Frozen { .. } => {
                // SAFETY: only addresses of one page inside the reservation are formed.
                let (start, end) = unsafe {
                    let start = self.base().add((page as usize) << PAGE_SHIFT);
                    (start, start.add(VM_PAGE_SIZE as usize))
                };
                match any_written(start, end) {
                    Some(false) => "shared",
                    _ => "written",
                }
            }
        }
    }

    /// The memory the task file holds, in bytes (see `Task::debug_file_bytes`).
    pub(crate) fn file_bytes(&self) -> Option<u64> {
        self.file.as_ref().map(|file| file.allocated_bytes())
    }

    /// The mapping could not follow a virtual copy: the task is terminated (see
    /// [`AddressSpace::change`]).
    fn fail(&self, state: &mut MapState) -> KernReturn {
        tracing::error!("the mapping cannot follow a virtual copy; the task is terminated");
        self.terminate_locked(state, false);
        KernReturn::SendInvalidDest
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

impl Drop for AddressSpace {
    /// Releases the snapshots the space's pages still hold (a terminated task's already
    /// were), then puts the reservation back in the pool, reset (warm if it can be: its
    /// read-write prefix zeroed in place), if there is room and no other task holds a
    /// snapshot of its file; otherwise unmaps it. Nobody else can reach
    /// the space any more, so nothing is locked but the pool.
    fn drop(&mut self) {
        let (protection, committed, file) = (
            self.options.guest_protection,
            self.pages(),
            self.file.is_some(),
        );
        let dead = self.is_dead();
        let state = self.state.get_mut();
        let warm = if dead {
            Some(self.warm.load(Ordering::Relaxed)).filter(|&w| w != NOT_WARM)
        } else {
            // A task that never terminated (a failed spawn) still has its table.
            Self::warm_prefix_of(protection, committed, file, state)
        };
        for (file, first, end) in state.views.clear() {
            file.drop_refs(first, end);
        }
        let remapped = state.remapped;
        let shared_elsewhere = self.file.as_ref().is_some_and(|f| !f.unreferenced());
        if shared_elsewhere {
            // The file lives on with the snapshots: its pages that none of them needs go
            // now (terminating kept the warm prefix for the pool).
            self.release_memory(0);
        } else if !dead && let Some(w) = warm {
            // What terminating would have given back.
            self.release_memory(w);
        }
        // SAFETY: the mapping is taken out once, here, as the space drops; nothing uses it
        // afterwards.
        let mapping = unsafe { ManuallyDrop::take(&mut self.mapping) };
        let Some(pool) = self.pool.take() else {
            return;
        };
        if shared_elsewhere || !pool.has_room() {
            return;
        }
        let reset = match warm {
            // SAFETY: the pages `0..warm` are committed and mapped read-write, shared (see
            // `warm_prefix`), every later one `PROT_NONE` with its memory given back, and
            // so they have stayed since the task terminated (or, never terminated, the
            // task's store is gone); the space is being dropped: nothing else reaches it.
            Some(warm) => {
                unsafe { mapping.reset_warm(self.file.as_deref(), u64::from(warm) << PAGE_SHIFT) }
                    .map(|()| warm)
            }
            None => {
                let committed = self.committed.load(Ordering::Acquire);
                (mapping.reset(self.file.as_deref(), committed, remapped)).map(|()| 0)
            }
        };
        if let Ok(warm) = reset {
            pool.put(Reserved {
                mapping,
                file: self.file.take(),
                warm,
                program: self.program,
            });
        }
    }
}

/// The maximal runs of equal `Some(key(page))` among the pages `first..end`, in address
/// order (pages whose key is `None` belong to no run).
fn for_runs<K: PartialEq>(
    first: u32,
    end: u32,
    key: impl Fn(u32) -> Option<K>,
) -> impl Iterator<Item = (PageRange, K)> {
    let mut page = first;
    std::iter::from_fn(move || {
        while page < end {
            let start = page;
            page += 1;
            let Some(k) = key(start) else { continue };
            while page < end && key(page).as_ref() == Some(&k) {
                page += 1;
            }
            return Some((PageRange::new(start, page)?, k));
        }
        None
    })
}

/// The page size as a `u64`, for byte arithmetic.
pub(crate) const PAGE: u64 = VM_PAGE_SIZE as u64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kern::VmProt;
    use crate::vm_map::GuestAccess;

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

    /// The permissions `/proc/self/maps` shows for the mapping holding `address` (without
    /// its private or shared flag).
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
                (lo <= a && a < hi).then(|| rest[..3].to_owned())
            })
            .unwrap()
    }

    fn space(initial: u32, limit: u32, guest_protection: bool, map_budget: u32) -> AddressSpace {
        space_with(initial, limit, guest_protection, map_budget, CopyMode::Auto)
    }

    fn space_with(
        initial: u32,
        limit: u32,
        guest_protection: bool,
        map_budget: u32,
        mode: CopyMode,
    ) -> AddressSpace {
        let options = options(guest_protection, map_budget, mode);
        AddressSpace::new(1, 1, initial, limit, options, None).unwrap()
    }

    /// Options with no quota and every copy of `mode` virtual if it can be.
    fn options(guest_protection: bool, map_budget: u32, mode: CopyMode) -> SpaceOptions {
        SpaceOptions {
            quota_pages: None,
            guest_protection,
            map_budget,
            copy: CopyPolicy {
                mode,
                threshold_pages: 0,
            },
        }
    }

    /// The number of lines of `/proc/self/maps` that overlap the space's reservation.
    fn kernel_mappings(space: &AddressSpace) -> u32 {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let (lo, hi) = (space.base() as usize, space.base() as usize + (1 << 32));
        maps.lines()
            .filter_map(|line| {
                let (a, b) = line.split_once(' ')?.0.split_once('-')?;
                let (a, b) = (
                    usize::from_str_radix(a, 16).ok()?,
                    usize::from_str_radix(b, 16).ok()?,
                );
                (a < hi && b > lo).then_some(())
            })
            .count() as u32
    }

    #[test]
    fn a_task_without_a_memory_file_gets_anonymous_memory_and_copies_physically() {
        crate::backing::tests::FAIL_CREATE.with(|f| f.set(true));
        let plain = space(4, 8, true, 64);
        assert!(
            space(4, 8, true, 64).shareable(),
            "the next task has its file"
        );
        let space = plain;
        assert!(!space.shareable(), "no descriptor: anonymous memory");
        let mut state = space.lock();
        let range = PageRange::new(1, 2).unwrap();
        assert!(matches!(space.freeze(&mut state, range, true), Ok(None)));
        // SAFETY: page 1 is allocated and read-write.
        unsafe { space.at(PAGE as u32).write(5) };
        assert_eq!(
            space.change(&mut state, range, |map| map.deallocate(range)),
            Ok(1)
        );
        assert_eq!(space.allocate(&mut state, range, || Ok(())), Ok(()));
        space.zero(&mut state, range);
        // SAFETY: page 1 is allocated again and readable.
        assert_eq!(unsafe { space.at(PAGE as u32).read() }, 0);
    }

    #[test]
    fn a_terminated_task_no_longer_maps_the_pages_it_shared() {
        // Terminated by a failure, a task's own guest code may still run until its call
        // returns: its pages must not map another task's file, which may be reused.
        let (source, reader) = (space(4, 8, false, 64), space(4, 8, false, 64));
        // SAFETY: page 1 of the source is allocated and read-write.
        unsafe { std::ptr::write_bytes(source.at(PAGE as u32), 7, PAGE as usize) };
        let range = PageRange::new(1, 2).unwrap();
        let frozen = source
            .freeze(&mut source.lock(), range, true)
            .unwrap()
            .expect("shareable");
        assert_eq!(reader.map_frozen(&mut reader.lock(), 1, &frozen), Ok(true));
        drop(frozen);
        let file = source.file.clone().unwrap();
        assert_eq!(file.refs(1), 2, "the source and the reader");
        // SAFETY: page 1 of the reader is committed and mapped readable (no protection).
        assert_eq!(unsafe { reader.at(PAGE as u32).read() }, 7);
        reader.terminate();
        assert_eq!(file.refs(1), 1, "the reader let go");
        // SAFETY: as above; the reader is dead, but its page is still mapped (no protection).
        assert_eq!(
            unsafe { reader.at(PAGE as u32).read() },
            0,
            "the reader's page maps its own memory now"
        );
    }

    #[test]
    fn a_failed_mprotect_undoes_the_change_and_reports_resource_shortage() {
        let space = space(4, 8, true, 64);
        // SAFETY: page 1 is committed; only its address is formed.
        let page1 = unsafe { space.at(PAGE as u32) };
        let mut state = space.lock();
        let before = state.map.clone();
        let range = PageRange::new(1, 2).unwrap();
        let protect = |state: &mut MapState, prot| {
            space.change(state, range, |map| map.protect(range, false, prot))
        };
        crate::mapping::tests::FAIL_PROTECT.with(|n| n.set(1));
        assert_eq!(
            protect(&mut state, VmProt::READ),
            Err(KernReturn::ResourceShortage)
        );
        assert_eq!(state.map.entry(1), before.entry(1), "the entry is put back");
        assert_eq!(state.map.allocated_pages(), 4);
        assert_eq!(perms(page1), "rw-", "the mapping is back in step");
        assert_eq!(state.runs, 2, "the mapping count is unchanged");
        // Without the failure, the same change lands in both.
        assert_eq!(protect(&mut state, VmProt::READ), Ok(()));
        assert_eq!(perms(page1), "r--");
        assert_eq!(protect(&mut state, VmProt::DEFAULT), Ok(()));
        assert_eq!(perms(page1), "rw-");
        assert!(!space.is_dead());
    }

    /// Makes `range` `PROT_NONE` with the `mprotect` failing, and the one that would put the
    /// mapping back failing too.
    fn fail_a_change_and_its_undo(
        space: &AddressSpace,
        state: &mut MapState,
        range: PageRange,
    ) -> KernResult<()> {
        crate::mapping::tests::FAIL_PROTECT.with(|n| n.set(2));
        space.change(state, range, |map| map.protect(range, false, VmProt::NONE))
    }

    #[test]
    fn when_the_undo_fails_too_the_task_is_terminated_rather_than_left_stricter_than_its_table() {
        let space = space(4, 8, true, 64);
        let mut state = space.lock();
        let result = fail_a_change_and_its_undo(&space, &mut state, PageRange::new(1, 3).unwrap());
        assert_eq!(result, Err(KernReturn::SendInvalidDest));
        assert!(space.is_dead(), "the task is terminated");
        assert_eq!(
            state.map.allocated_pages(),
            0,
            "no host path may touch any page"
        );
        assert_eq!(state.map.entry(0), None);
        assert_eq!(crate::mapping::tests::FAIL_PROTECT.with(|n| n.get()), 0);
    }

    /// A space goes back to the pool warm (its read-write prefix kept, zeroed in place)
    /// when its task terminated with its mapping following its table, however many times
    /// it was terminated; after a failed system call it goes back remapped, all of it.
    #[test]
    fn a_space_goes_back_warm_only_while_its_mapping_follows_its_table() {
        let pool = Arc::new(SpacePool::new(4));
        let options = options(true, 64, CopyMode::Auto);
        let spawn = |key| AddressSpace::new(key, 1, 2, 8, options, Some(pool.clone())).unwrap();
        let space = spawn(1);
        // SAFETY: page 1 is committed and read-write; nothing else uses it.
        unsafe { space.at(PAGE as u32 + 8).write(7) };
        space.terminate();
        space.terminate();
        drop(space);
        let kept = pool.take(true, 2, 1).expect("kept");
        assert_eq!(kept.warm, 2, "the prefix is kept");
        pool.put(kept);

        let space = spawn(2);
        // SAFETY: as above.
        assert_eq!(unsafe { space.at(PAGE as u32 + 8).read() }, 0, "zeroed");
        let result =
            fail_a_change_and_its_undo(&space, &mut space.lock(), PageRange::new(0, 1).unwrap());
        assert_eq!(result, Err(KernReturn::SendInvalidDest));
        space.terminate();
        drop(space);
        let kept = pool.take(true, 2, 1).expect("kept");
        assert_eq!(kept.warm, 0, "remapped, not warm");
    }

    /// A reservation taken by another program keeps nothing of the old prefix in its file
    /// (only what the new task writes is zeroed at the next reset); taken by the same
    /// program, whatever its size, it keeps its pages resident.
    #[test]
    fn a_reservation_taken_by_another_program_starts_from_an_empty_file() {
        if !files_supported() {
            eprintln!("skipped: no memory files here");
            return;
        }
        let pool = Arc::new(SpacePool::new(1));
        let options = options(true, 64, CopyMode::Auto);
        let spawn = |program, initial| {
            AddressSpace::new(1, program, initial, 8, options, Some(pool.clone())).unwrap()
        };
        let space = spawn(1, 1);
        // SAFETY: page 0 is committed and read-write; nothing else uses it.
        unsafe { space.at(8).write(7) };
        drop(space);
        let space = spawn(2, 3);
        let file = space.file.clone().expect("a memory file");
        assert_eq!(file.allocated_bytes(), 0, "the old prefix is punched out");
        // SAFETY: page 2 is committed and read-write; nothing else uses it.
        unsafe { space.at(2 * PAGE as u32 + 8).write(7) };
        drop(space);
        let only_page_2 = vec![(2 * PAGE, 2 * PAGE + 4096)];
        assert_eq!(
            file.data_below(3 * PAGE).unwrap(),
            only_page_2,
            "only the page the task wrote, zeroed in place"
        );

        // The same program with one page more, then one page less: the page stays.
        drop(spawn(2, 4));
        assert_eq!(file.data_below(4 * PAGE).unwrap(), only_page_2);
        let space = spawn(2, 3);
        assert!(Arc::ptr_eq(space.file.as_ref().unwrap(), &file));
        assert_eq!(file.data_below(4 * PAGE).unwrap(), only_page_2);
        // SAFETY: page 2 is committed and read-write; nothing else uses it.
        assert_eq!(unsafe { space.at(2 * PAGE as u32 + 8).read() }, 0, "zeroed");
    }

    /// The pool gives a task the reservation its program used last, then one of its size.
    #[test]
    fn the_pool_prefers_the_same_program_then_the_same_size() {
        let pool = SpacePool::new(4);
        let reserved = |warm, program| Reserved {
            mapping: Mapping::reserve(None).unwrap(),
            file: None,
            warm,
            program,
        };
        for (warm, program) in [(1, 7), (2, 8), (1, 8), (2, 9)] {
            pool.put(reserved(warm, program));
        }
        let take = |initial, program| {
            let r = pool.take(false, initial, program).expect("kept");
            (r.warm, r.program)
        };
        assert_eq!(take(2, 8), (2, 8), "same program, same size");
        assert_eq!(take(2, 7), (1, 7), "same program");
        assert_eq!(take(2, 5), (2, 9), "same size");
        assert_eq!(take(2, 5), (1, 8), "any");
        assert!(pool.take(false, 2, 5).is_none());
    }

    #[test]
    fn unallocated_pages_cost_no_mapping_where_the_kernel_has_guards() {
        if !guard_regions_supported() {
            eprintln!("skipped: this kernel has no MADV_GUARD_INSTALL (Linux 6.13)");
            return;
        }
        // A budget with no room: every freed page is handed back at once, as a guard.
        let space = space(16, 16, true, 2);
        let baseline = kernel_mappings(&space);
        let mut state = space.lock();
        // Free every other page: eight holes.
        for page in (1..16).step_by(2) {
            let range = PageRange::new(page, page + 1).unwrap();
            assert_eq!(
                space.change(&mut state, range, |map| map.deallocate(range)),
                Ok(1)
            );
        }
        assert_eq!(
            kernel_mappings(&space),
            baseline,
            "holes do not split the mapping"
        );
        assert_eq!(state.runs, 2);
        // SAFETY: page 1 is committed; only its address is formed.
        assert_eq!(
            perms(unsafe { space.at(PAGE as u32) }),
            "rw-",
            "a guard, not PROT_NONE"
        );
        // A hole allocated again reads as zero (the guard dropped its contents).
        let range = PageRange::new(2, 3).unwrap();
        // SAFETY: page 2 is allocated and read-write.
        unsafe { space.at(2 * PAGE as u32).write(9) };
        assert_eq!(
            space.change(&mut state, range, |map| map.deallocate(range)),
            Ok(1)
        );
        assert_eq!(space.allocate(&mut state, range, || Ok(())), Ok(()));
        // SAFETY: page 2 is allocated again and readable.
        assert_eq!(unsafe { space.at(2 * PAGE as u32).read() }, 0);
    }

    #[test]
    fn protection_runs_are_counted_and_a_change_past_the_budget_changes_nothing() {
        let space = space(16, 16, true, 6);
        let mut state = space.lock();
        let read_only = |state: &mut MapState, page: u32| {
            let range = PageRange::new(page, page + 1).unwrap();
            space.change(state, range, |map| map.protect(range, false, VmProt::READ))
        };
        assert_eq!(state.runs, 2); // the committed prefix and the rest
        assert_eq!(read_only(&mut state, 2), Ok(())); // rw | r | rw | none
        assert_eq!(state.runs, 4);
        assert_eq!(read_only(&mut state, 3), Ok(())); // the run grows: no new mapping
        assert_eq!(state.runs, 4);
        assert_eq!(read_only(&mut state, 6), Ok(()));
        assert_eq!(state.runs, 6);
        assert_eq!(kernel_mappings(&space), 6, "the count is the kernel's");
        let before = state.map.clone();
        assert_eq!(read_only(&mut state, 9), Err(KernReturn::ResourceShortage));
        assert_eq!(state.map.entry(9), before.entry(9), "nothing changed");
        assert_eq!(state.runs, 6);
        // Joining two runs gives one back.
        assert_eq!(read_only(&mut state, 4), Ok(()));
        assert_eq!(read_only(&mut state, 5), Ok(()));
        assert_eq!(state.runs, 4);
        assert_eq!(kernel_mappings(&space), 4);
    }

    #[test]
    fn freed_pages_are_handed_back_in_batches_and_reused_pages_are_not() {
        for (protection, mode) in [
            (false, CopyMode::Auto),
            (true, CopyMode::Auto),
            (true, CopyMode::Physical),
        ] {
            let space = space_with(128, 128, protection, 512, mode);
            assert_eq!(space.shareable(), mode != CopyMode::Physical);
            // SAFETY: all 128 pages are committed and nothing else uses them.
            unsafe { std::ptr::write_bytes(space.base(), 1, 128 << PAGE_SHIFT) };
            assert!(resident(&space, 0, 128).iter().all(|&r| r));
            let mut state = space.lock();
            let free = |state: &mut MapState, first, end| {
                let range = PageRange::new(first, end).unwrap();
                space
                    .change(state, range, |map| map.deallocate(range))
                    .unwrap();
                space.release_freed(state);
            };
            // a small free waits...
            free(&mut state, 0, 1);
            assert!(resident(&space, 0, 1)[0]);
            // ...a page allocated again leaves the batch...
            let page0 = PageRange::new(0, 1).unwrap();
            assert_eq!(space.allocate(&mut state, page0, || Ok(())), Ok(()));
            free(&mut state, 1, 2);
            // ...and a large free releases itself and whatever waited, not the reused page
            free(&mut state, 2, 66);
            let after = resident(&space, 0, 128);
            assert!(after[0], "page 0 is allocated again");
            assert!(
                after[1..66].iter().all(|&r| !r),
                "freed pages are handed back"
            );
            assert!(after[66..].iter().all(|&r| r), "allocated pages stay");
            assert_eq!(state.map.unreleased_pages(), 0);
        }
    }

    #[test]
    fn freed_pages_and_holes_are_prot_none_runs_until_the_budget_needs_guards() {
        if !guard_regions_supported() {
            eprintln!("skipped: this kernel has no MADV_GUARD_INSTALL (Linux 6.13)");
            return;
        }
        let space = space(128, 128, true, 8);
        // SAFETY: all 128 pages are committed, allocated and read-write; nothing else uses them.
        unsafe { std::ptr::write_bytes(space.base(), 1, 128 << PAGE_SHIFT) };
        let mut state = space.lock();
        let free = |state: &mut MapState, page: u32| {
            let range = PageRange::new(page, page + 1).unwrap();
            let result = space.change(state, range, |map| map.deallocate(range));
            space.release_freed(state);
            result
        };
        // SAFETY: page 3 is committed; only its address is formed.
        let page3 = unsafe { space.at(3 * PAGE as u32) };
        assert_eq!(free(&mut state, 3), Ok(1));
        assert_eq!(
            perms(page3),
            "---",
            "a freed page keeps its memory, unreachable"
        );
        assert!(resident(&space, 3, 4)[0]);
        assert_eq!(state.runs, 4);
        assert_eq!(free(&mut state, 5), Ok(1));
        assert_eq!(state.runs, 6);
        // A batch of 64 freed pages gives the memory of every waiting one back; they stay
        // PROT_NONE holes (no page-table entries), so the mapping does not change.
        let range = PageRange::new(7, 71).unwrap();
        assert_eq!(
            space.change(&mut state, range, |map| map.deallocate(range)),
            Ok(64)
        );
        space.release_freed(&mut state);
        assert_eq!(state.runs, 8);
        assert_eq!(kernel_mappings(&space), 8);
        assert_eq!(perms(page3), "---");
        let after = resident(&space, 3, 71);
        assert_eq!(
            after[..4],
            [false, true, false, true],
            "pages 4 and 6 are allocated"
        );
        assert!(after[4..].iter().all(|&r| !r));
        assert_eq!(state.map.kind(3), PageKind::Hole);
        // The budget is full: the next free makes the page a guard region at once.
        assert_eq!(free(&mut state, 100), Ok(1));
        assert_eq!(state.runs, 8);
        assert_eq!(state.map.kind(100), PageKind::Guarded);
        // SAFETY: page 100 is committed; only its address is formed.
        assert_eq!(
            perms(unsafe { space.at(100 * PAGE as u32) }),
            "rw-",
            "a guard"
        );
        assert!(!resident(&space, 100, 101)[0]);
        assert_eq!(kernel_mappings(&space), 8);
        // Allocated again, a hole and a guard read as zero.
        for page in [3, 100] {
            let range = PageRange::new(page, page + 1).unwrap();
            assert_eq!(space.allocate(&mut state, range, || Ok(())), Ok(()));
            // SAFETY: the page is allocated and readable.
            assert_eq!(unsafe { space.at(page * PAGE as u32).read() }, 0);
        }
        assert_eq!(
            state.map.kind(100),
            PageKind::Allocated(GuestAccess::ReadWrite)
        );
    }

    #[test]
    fn growth_past_a_hole_costs_a_mapping_and_no_page_table() {
        /// The process's page tables, in KiB (`VmPTE` of /proc/self/status).
        fn page_tables_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmPTE:")).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        }
        let before = page_tables_kib();
        let space = space(1, 65536, true, 64);
        let mut state = space.lock();
        // Allocate the last 16 pages of 4 GiB: the memory grows past a 4 GiB hole.
        let range = PageRange::new(65520, 65536).unwrap();
        let grow = || {
            space
                .kernel_grow(|| space.grow_to(1 << 32))
                .map_err(|_| KernReturn::ResourceShortage)
        };
        assert_eq!(space.allocate(&mut state, range, grow), Ok(()));
        assert_eq!(state.map.kind(1000), PageKind::Hole);
        assert_eq!(
            state.runs, 4,
            "page 0, the hole, the last 16 pages, the guard"
        );
        assert_eq!(
            kernel_mappings(&space),
            3,
            "inside the 4 GiB: all but the guard"
        );
        // SAFETY: page 1000 is committed; only its address is formed.
        assert_eq!(perms(unsafe { space.at(1000 * PAGE as u32) }), "---");
        // Guarding the hole would take 8 MiB of page tables (8 bytes per 4 KiB); other
        // tests of this process may add a little meanwhile.
        let grown = page_tables_kib().saturating_sub(before);
        assert!(grown < 1024, "{grown} KiB of page tables for a hole");
    }
}
