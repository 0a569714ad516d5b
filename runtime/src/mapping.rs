//! The raw mapping under a task's linear memory: a 4 GiB (+ guard) reservation whose base
//! never moves, committed as the memory grows, its pages protected, guarded and handed
//! back to the kernel as the address space above ([`crate::space`]) says.

use std::ffi::c_void;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::mm::{self, Advice, MapFlags, MprotectFlags, ProtFlags};

use crate::backing::TaskFile;
use crate::kern::ADDRESS_SPACE_END;
use crate::vm_map::GuestAccess;

/// The guard region after the 4 GiB reservation. With a full 4 GiB reservation the JIT
/// elides every bounds check of a 32-bit memory; the guard catches static offsets.
pub(crate) const GUARD_BYTES: u64 = 32 << 20;

/// The bytes reserved for one task: the whole wasm32 address space plus the guard.
const RESERVATION_BYTES: usize = (ADDRESS_SPACE_END + GUARD_BYTES) as usize;

/// The base is aligned to a transparent huge page, so that wasm addresses and huge pages
/// line up: large regions then fault in 2 MiB at a time, not 4 KiB.
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// The bytes actually mapped: the reservation plus the slack needed to align its base.
const MAPPED_BYTES: usize = RESERVATION_BYTES + HUGE_PAGE;

/// A warm prefix ([`Mapping::reset_warm`]) this small is zeroed whole: a `memset` of
/// 64 KiB costs less than asking the file where its data lies (three `lseek`s).
const ZERO_WHOLE_BYTES: u64 = 64 << 10;

/// An owned anonymous mapping: [`RESERVATION_BYTES`] from a 2 MiB-aligned base,
/// `PROT_NONE` past the committed prefix (whose pages the caller protects), unmapped on drop.
pub(crate) struct Mapping {
    /// What `mmap` returned (for `munmap`).
    mapped: NonNull<u8>,
    /// Byte 0 of the address space, `HUGE_PAGE`-aligned, inside the mapping.
    base: NonNull<u8>,
    /// Whether guard regions may have been installed since the reservation was made or
    /// reset (a reset then removes them; otherwise it skips that system call).
    guarded: AtomicBool,
}

// SAFETY: `Mapping` owns its reservation; the pointer is never aliased by another owner and
// the mapping is valid on any thread. Reads and writes through it go through `unsafe`
// methods whose callers synchronise (the task's map lock).
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only hands out the base address and performs syscalls.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Reserves the address space, all of it inaccessible: anonymous memory, or, with
    /// `file`, the file mapped shared (so that its pages can be shared copy-on-write; see
    /// [`crate::backing`]).
    pub(crate) fn reserve(file: Option<&TaskFile>) -> io::Result<Mapping> {
        // SAFETY: a fresh private anonymous mapping at an address the kernel chooses
        // (null hint, no MAP_FIXED) replaces nothing; see mmap(2).
        let ptr = unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                MAPPED_BYTES,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )?
        };
        let mapped =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        let offset = mapped.as_ptr().align_offset(HUGE_PAGE);
        // SAFETY: `offset < HUGE_PAGE`, so `base .. base + RESERVATION_BYTES` lies inside the
        // `MAPPED_BYTES` just mapped.
        let base = unsafe { mapped.add(offset) };
        let mapping = Mapping {
            mapped,
            base,
            guarded: AtomicBool::new(false),
        };
        if let Some(file) = file {
            mapping.map_file(0, ADDRESS_SPACE_END, GuestAccess::None, file, 0, true)?;
        }
        // SAFETY: advice on our own fresh mapping; MADV_HUGEPAGE changes no contents
        // (madvise(2)). Where transparent huge pages are off (or, for a file, where shared
        // memory has none) it fails or does nothing, harmlessly.
        let _ = unsafe {
            mm::madvise(
                base.as_ptr().cast::<c_void>(),
                RESERVATION_BYTES,
                Advice::LinuxHugepage,
            )
        };
        Ok(mapping)
    }

    /// Maps `[from, to)` (page-aligned, inside 4 GiB) to the file's bytes from
    /// `file_offset`, shared (its writes reach the file) or private (copy-on-write: a write
    /// gives the mapping its own copy of the 4 KiB page), with the protection `access`.
    /// Replaces whatever mapped the range: its private pages and guards are gone.
    pub(crate) fn map_file(
        &self,
        from: u64,
        to: u64,
        access: GuestAccess,
        file: &TaskFile,
        file_offset: u64,
        shared: bool,
    ) -> io::Result<()> {
        if to <= from {
            return Ok(());
        }
        debug_assert!(to <= ADDRESS_SPACE_END && file_offset + (to - from) <= ADDRESS_SPACE_END);
        let flags = MapFlags::FIXED
            | if shared {
                MapFlags::SHARED
            } else {
                MapFlags::PRIVATE | MapFlags::NORESERVE
            };
        // SAFETY: `[from, to)` lies inside our own reservation, which MAP_FIXED replaces in
        // place (mmap(2)); no Rust object lives in task memory (the host reaches it only
        // through raw pointers, after checking the table, and the callers, holding the map
        // lock, map with the protection the table gives the pages and the bytes the pages
        // must hold).
        unsafe {
            mm::mmap(
                self.base().add(from as usize).cast::<c_void>(),
                (to - from) as usize,
                prot(access),
                flags,
                file.fd(),
                file_offset,
            )?
        };
        Ok(())
    }

    /// Maps `[from, to)` (page-aligned, inside 4 GiB) to fresh private anonymous memory
    /// (reading zero) with the protection `access`, replacing whatever mapped it.
    pub(crate) fn map_anonymous(&self, from: u64, to: u64, access: GuestAccess) -> io::Result<()> {
        if to <= from {
            return Ok(());
        }
        debug_assert!(to <= ADDRESS_SPACE_END);
        // SAFETY: as in `map_file`: the range is ours, replaced in place, and holds no Rust
        // object.
        unsafe {
            mm::mmap_anonymous(
                self.base().add(from as usize).cast::<c_void>(),
                (to - from) as usize,
                prot(access),
                MapFlags::FIXED | MapFlags::PRIVATE | MapFlags::NORESERVE,
            )?
        };
        Ok(())
    }

    /// Resets the reservation for a new task, after its old task's memory below `committed`
    /// (bytes) was used: every page reads zero (the file's pages below `committed` are
    /// punched out; anonymous memory is replaced) and is `PROT_NONE`, with no guard and no
    /// private mapping. `remapped`: the old task mapped parts of the range anew (private
    /// mappings of virtual copies), so the whole used range is mapped afresh; otherwise its
    /// protections and guards (if any were installed) are taken back in place.
    pub(crate) fn reset(
        &self,
        file: Option<&TaskFile>,
        committed: u64,
        remapped: bool,
    ) -> io::Result<()> {
        if committed == 0 {
            return Ok(());
        }
        match file {
            Some(file) => {
                if remapped {
                    self.map_file(0, committed, GuestAccess::None, file, 0, true)?;
                } else {
                    self.protect(0, committed, GuestAccess::None)?;
                    if self.guarded.load(Ordering::Relaxed) {
                        self.guard(0, committed, false)?;
                    }
                }
                self.guarded.store(false, Ordering::Relaxed);
                file.punch_all(committed)
            }
            None => {
                self.map_anonymous(0, committed, GuestAccess::None)?;
                self.guarded.store(false, Ordering::Relaxed);
                // SAFETY: advice on our own range just mapped; it changes no contents.
                let _ = unsafe {
                    mm::madvise(
                        self.base().cast::<c_void>(),
                        committed as usize,
                        Advice::LinuxHugepage,
                    )
                };
                Ok(())
            }
        }
    }

    /// Resets the reservation for a new task that keeps its first `warm` bytes mapped
    /// read-write: they are zeroed in place, where the file holds data (what the old task
    /// wrote), or all of them for anonymous memory and prefixes of at most
    /// [`ZERO_WHOLE_BYTES`]. No system call changes the mapping and the pages stay resident.
    ///
    /// # Safety
    /// The old task's mapping is `[0, warm)` read-write (the file mapped shared, no
    /// private mapping, no guard), then `PROT_NONE` holding no memory (its file pages
    /// punched out, its anonymous pages discarded), and nothing else reaches the
    /// reservation any more.
    pub(crate) unsafe fn reset_warm(&self, file: Option<&TaskFile>, warm: u64) -> io::Result<()> {
        let zero = |from: u64, to: u64| {
            // SAFETY: `[from, to)` lies inside `[0, warm)`, mapped read-write (the contract
            // above); no Rust reference points into task memory.
            unsafe {
                std::ptr::write_bytes(self.base().add(from as usize), 0, (to - from) as usize)
            }
        };
        match file {
            Some(file) if warm > ZERO_WHOLE_BYTES => {
                for (from, to) in file.data_below(warm)? {
                    zero(from, to);
                }
            }
            _ => zero(0, warm),
        }
        Ok(())
    }

    /// The address of byte 0 of the address space.
    pub(crate) fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Makes `[from, to)` readable and writable (the memory grows).
    pub(crate) fn commit(&self, from: u64, to: u64) -> io::Result<()> {
        self.protect(from, to, GuestAccess::ReadWrite)
    }

    /// Sets the host protection of `[from, to)` (page-aligned, inside 4 GiB) to what
    /// `access` allows the guest's own loads and stores. See mprotect(2).
    pub(crate) fn protect(&self, from: u64, to: u64, access: GuestAccess) -> io::Result<()> {
        if to <= from {
            return Ok(());
        }
        debug_assert!(to <= ADDRESS_SPACE_END);
        #[cfg(test)]
        if tests::FAIL_PROTECT.with(|n| n.replace(n.get().saturating_sub(1))) > 0 {
            return Err(io::Error::from_raw_os_error(12)); // ENOMEM, as past vm.max_map_count
        }
        let flags = MprotectFlags::from_bits_retain(prot(access).bits());
        // SAFETY: `[from, to)` lies inside our own reservation (`to <= 4 GiB`). Changing its
        // protection affects no Rust object: the host touches task memory only through raw
        // pointers, after checking the table, which the callers keep in step with these
        // protections under the map lock (a host access never needs more than they allow).
        unsafe {
            mm::mprotect(
                self.base().add(from as usize).cast::<c_void>(),
                (to - from) as usize,
                flags,
            )?
        };
        Ok(())
    }

    /// Installs (`install`) or removes guard regions over `[from, to)` (page-aligned,
    /// inside 4 GiB, where the guards are [`supported`](guard_regions_supported)). A guarded
    /// page faults on any access, like `PROT_NONE`, but without splitting the mapping (no
    /// new entry in `/proc/self/maps`, nothing of `vm.max_map_count`); installing drops the
    /// page's contents, and after removal it reads as zero. Removing where no guard is
    /// leaves the page as it is. Guards survive `mprotect` and `MADV_DONTNEED`. See
    /// madvise(2), `MADV_GUARD_INSTALL` (Linux 6.13).
    pub(crate) fn guard(&self, from: u64, to: u64, install: bool) -> io::Result<()> {
        if to <= from {
            return Ok(());
        }
        debug_assert!(to <= ADDRESS_SPACE_END);
        let advice = if install {
            self.guarded.store(true, Ordering::Relaxed);
            MADV_GUARD_INSTALL
        } else {
            MADV_GUARD_REMOVE
        };
        // SAFETY: `[from, to)` lies inside our own private anonymous reservation. A guard
        // drops the contents of the pages and makes them fault; no Rust object lives there
        // (the host reaches task memory only through raw pointers, after checking the
        // table, which the callers keep in step with the guards under the map lock: a
        // guarded page is always an unallocated one, which no host path touches).
        let rc = unsafe {
            libc::madvise(
                self.base().add(from as usize).cast::<c_void>(),
                (to - from) as usize,
                advice,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `MADV_DONTNEED` over `[from, to)` (committed bytes only): anonymous pages are given
    /// back to the kernel and read as zero afterwards; the pages a private mapping of a file
    /// made its own by writing are dropped, and it reads the file's pages again.
    pub(crate) fn discard(&self, from: u64, to: u64) -> io::Result<()> {
        if to <= from {
            return Ok(());
        }
        // SAFETY: `[from, to)` lies inside our reservation; MADV_DONTNEED on a private
        // mapping drops its own pages (zero-fill-on-demand for anonymous memory, the file's
        // pages for a file) and touches no other mapping (madvise(2)). Nobody holds a Rust
        // reference into task memory; the callers choose it where those contents are due.
        unsafe {
            mm::madvise(
                self.base().add(from as usize).cast::<c_void>(),
                (to - from) as usize,
                Advice::LinuxDontNeed,
            )?
        };
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we unmap exactly the mapping we made; nothing can use it any more since
        // `Mapping` is being dropped (every user holds an `Arc` to its space).
        let _ = unsafe { mm::munmap(self.mapped.as_ptr().cast::<c_void>(), MAPPED_BYTES) };
    }
}

/// The host protection of pages whose guest may do `access`.
fn prot(access: GuestAccess) -> ProtFlags {
    match access {
        GuestAccess::None => ProtFlags::empty(),
        GuestAccess::Read => ProtFlags::READ,
        GuestAccess::ReadWrite => ProtFlags::READ | ProtFlags::WRITE,
    }
}

/// `MADV_GUARD_INSTALL` and `MADV_GUARD_REMOVE` (Linux 6.13, `include/uapi/asm-generic/
/// mman-common.h`), which neither `libc` nor `rustix` names yet.
const MADV_GUARD_INSTALL: libc::c_int = 102;
const MADV_GUARD_REMOVE: libc::c_int = 103;

/// Whether this kernel has guard regions (`MADV_GUARD_INSTALL`, Linux 6.13): probed once
/// per process on a scratch page. Unallocated pages are `PROT_NONE` runs either way; guards
/// are only the fallback of a change that would pass the task's mapping budget, and without
/// them such a change is refused (see [`crate::space`]).
pub(crate) fn guard_regions_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let len = rustix::param::page_size();
        // SAFETY: a fresh private anonymous mapping at an address the kernel chooses,
        // replacing nothing; see mmap(2).
        let Ok(ptr) = (unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }) else {
            return false;
        };
        // SAFETY: advice on the scratch page just mapped, which nothing else uses.
        let ok = unsafe { libc::madvise(ptr, len, MADV_GUARD_INSTALL) } == 0;
        // SAFETY: unmaps exactly the scratch page mapped above.
        let _ = unsafe { mm::munmap(ptr, len) };
        ok
    })
}

/// Asks for transparent huge pages on the 2 MiB-aligned interior of a fresh host buffer
/// (one that `vm_read` is about to fill), so that it faults in 2 MiB at a time.
pub(crate) fn advise_huge_pages(buf: &mut [std::mem::MaybeUninit<u8>]) {
    let start = buf.as_mut_ptr().cast::<u8>();
    let offset = start.align_offset(HUGE_PAGE);
    let Some(len) = buf.len().checked_sub(offset) else {
        return;
    };
    let len = len / HUGE_PAGE * HUGE_PAGE;
    if len == 0 {
        return;
    }
    // SAFETY: `[start + offset, + len)` lies inside `buf`, memory the caller owns;
    // MADV_HUGEPAGE changes no contents (madvise(2)); failure only means no huge pages.
    let _ = unsafe {
        mm::madvise(
            start.add(offset).cast::<c_void>(),
            len,
            Advice::LinuxHugepage,
        )
    };
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    thread_local! {
        /// Makes the next this-many `Mapping::protect` calls of this thread fail (as the
        /// kernel does once the process is out of mappings), to test the undo path.
        pub(crate) static FAIL_PROTECT: Cell<u32> = const { Cell::new(0) };
    }
}
