//! The shareable memory under a task's address space: a `memfd` of 4 GiB (sparse) whose
//! pages the task maps shared while they are its own, and which other tasks (and the task
//! itself, at other addresses) map *privately* once a virtual copy has frozen them: the
//! kernel then copies a page only when one side writes it (copy-on-write).
//!
//! A frozen file page is a snapshot: nobody writes it again (every mapping of it is
//! private), and it lives as long as one mapping refers to it. The file keeps that count
//! per page; the last reference punches the page out of the file, giving its memory back.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use rustix::fs::{FallocateFlags, MemfdFlags};

use crate::kern::{ADDRESS_SPACE_END, PAGE_SHIFT};
use crate::lock::{Rank, RankedMutex};

/// A task's memory file, and how many private mappings refer to each of its pages.
pub(crate) struct TaskFile {
    fd: OwnedFd,
    /// Per file page (64 KiB): the private mappings that refer to it. Grown on demand.
    refs: RankedMutex<Vec<u32>>,
}

impl TaskFile {
    /// A fresh file of 4 GiB of holes (no memory until written).
    pub(crate) fn create() -> io::Result<TaskFile> {
        #[cfg(test)]
        if tests::FAIL_CREATE.with(|f| f.replace(false)) {
            return Err(io::Error::from_raw_os_error(24)); // EMFILE: no descriptor left
        }
        let fd = rustix::fs::memfd_create("wasmach-task", MemfdFlags::CLOEXEC)?;
        rustix::fs::ftruncate(&fd, ADDRESS_SPACE_END)?;
        Ok(TaskFile {
            fd,
            refs: RankedMutex::new(Rank::Shares, Vec::new()),
        })
    }

    /// The file, for `mmap`.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Punches the pages `first..end` out of the file: their memory goes back to the
    /// kernel, every shared mapping of them (and every private one that has not written
    /// them) reads zero from now on.
    fn punch(&self, first: u32, end: u32) -> io::Result<()> {
        if end <= first {
            return Ok(());
        }
        rustix::fs::fallocate(
            &self.fd,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            u64::from(first) << PAGE_SHIFT,
            u64::from(end - first) << PAGE_SHIFT,
        )?;
        Ok(())
    }

    /// One more private mapping refers to each page of `first..end`.
    pub(crate) fn add_refs(&self, first: u32, end: u32) {
        let mut refs = self.refs.lock();
        if refs.len() < end as usize {
            refs.resize(end as usize, 0);
        }
        for r in &mut refs[first as usize..end as usize] {
            *r += 1;
        }
    }

    /// One private mapping fewer refers to each page of `first..end`; the pages nobody
    /// refers to any more are punched out (under the lock, so that the owner cannot take
    /// a page back meanwhile). A failed punch keeps the memory of a page no one maps.
    pub(crate) fn drop_refs(&self, first: u32, end: u32) {
        let mut refs = self.refs.lock();
        let mut run: Option<u32> = None;
        for page in first..end {
            let r = &mut refs[page as usize];
            debug_assert!(*r > 0, "a reference dropped twice");
            *r = r.saturating_sub(1);
            match (*r == 0, run) {
                (true, None) => run = Some(page),
                (false, Some(start)) => {
                    let _ = self.punch(start, page);
                    run = None;
                }
                _ => {}
            }
        }
        if let Some(start) = run {
            let _ = self.punch(start, end);
        }
    }

    /// Runs `f` with the pages of `first..end` that no private mapping refers to (as
    /// maximal runs, in order), while no reference can be added or dropped: the owner
    /// punches them and takes them back as its own under this lock.
    pub(crate) fn with_unreferenced(
        &self,
        first: u32,
        end: u32,
        mut f: impl FnMut(u32, u32, bool),
    ) {
        let refs = self.refs.lock();
        let free = |page: u32| refs.get(page as usize).is_none_or(|&r| r == 0);
        // Past the counted pages every page is free: one run, found at once.
        let counted = end.min(refs.len() as u32);
        let mut page = first;
        let mut last_free = None;
        while page < counted {
            let start = page;
            let kind = free(page);
            while page < counted && free(page) == kind {
                page += 1;
            }
            if kind && page == counted && counted < end {
                last_free = Some(start); // joins the uncounted rest below
            } else {
                f(start, page, kind);
            }
        }
        if page < end {
            f(last_free.unwrap_or(page), end, true);
        }
    }

    /// Whether no private mapping refers to any page of the file (no snapshot of it lives).
    pub(crate) fn unreferenced(&self) -> bool {
        self.refs.lock().iter().all(|&r| r == 0)
    }

    /// Whether exactly one private mapping refers to each page of `first..end` (the task's
    /// own, frozen by an earlier copy: no snapshot elsewhere depends on them).
    pub(crate) fn referenced_once(&self, first: u32, end: u32) -> bool {
        let refs = self.refs.lock();
        (first..end).all(|p| refs.get(p as usize) == Some(&1))
    }

    /// Writes `bytes` into the file from page `first` (pages only the writer's own private
    /// mapping refers to: see [`TaskFile::referenced_once`]).
    pub(crate) fn write_at(&self, first: u32, bytes: &[u8]) -> io::Result<()> {
        let mut offset = u64::from(first) << PAGE_SHIFT;
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = rustix::io::pwrite(&self.fd, rest, offset)?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
            rest = &rest[n..];
            offset += n as u64;
        }
        Ok(())
    }

    /// Punches out the pages of `first..end` that no private mapping refers to (the task
    /// terminates: its own pages die, the snapshots others took of them stay; no page at
    /// or past the end of its committed memory was ever written).
    pub(crate) fn punch_unreferenced(&self, first: u32, end: u32) {
        self.with_unreferenced(first, end, |first, end, free| {
            if free {
                let _ = self.punch(first, end);
            }
        });
    }

    /// Punches the file's first `bytes` out, whatever refers to them (a reservation being
    /// reset: no private mapping refers to the file any more).
    pub(crate) fn punch_all(&self, bytes: u64) -> io::Result<()> {
        rustix::fs::fallocate(
            &self.fd,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            0,
            bytes,
        )?;
        Ok(())
    }

    /// Punches the pages `first..end`, which the task maps as its own (no private mapping
    /// refers to them).
    pub(crate) fn punch_own(&self, first: u32, end: u32) -> io::Result<()> {
        debug_assert!({
            let refs = self.refs.lock();
            (first..end).all(|p| refs.get(p as usize).is_none_or(|&r| r == 0))
        });
        self.punch(first, end)
    }

    /// The byte ranges of `[0, end)` that may hold something other than zero (the file's
    /// data, `SEEK_DATA`/`SEEK_HOLE`: pages written and not punched out, in memory or
    /// swapped out), in order; every other byte reads zero.
    pub(crate) fn data_below(&self, end: u64) -> io::Result<Vec<(u64, u64)>> {
        use rustix::fs::SeekFrom;
        let mut extents = Vec::new();
        let mut offset = 0;
        while offset < end {
            let start = match rustix::fs::seek(&self.fd, SeekFrom::Data(offset)) {
                Ok(start) => start,
                // no data at or after `offset`
                Err(rustix::io::Errno::NXIO) => break,
                Err(e) => return Err(e.into()),
            };
            if start >= end {
                break;
            }
            let stop = rustix::fs::seek(&self.fd, SeekFrom::Hole(start))?.min(end);
            extents.push((start, stop));
            offset = stop;
        }
        Ok(extents)
    }

    /// The memory the file holds, in bytes.
    pub(crate) fn allocated_bytes(&self) -> u64 {
        rustix::fs::fstat(&self.fd).map_or(0, |stat| stat.st_blocks as u64 * 512)
    }

    /// The private mappings that refer to `page` (for tests).
    #[cfg(test)]
    pub(crate) fn refs(&self, page: u32) -> u32 {
        self.refs.lock().get(page as usize).copied().unwrap_or(0)
    }
}

/// `PAGEMAP_SCAN` (Linux 6.7, `include/uapi/linux/fs.h`), which neither `libc` nor
/// `rustix` names yet: its argument, one result region, and the page categories used.
#[repr(C)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

#[repr(C)]
#[derive(Default)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

const PAGE_IS_FILE: u64 = 1 << 2;
const PAGE_IS_PRESENT: u64 = 1 << 3;
const PAGE_IS_SWAPPED: u64 = 1 << 4;
/// `_IOWR('f', 16, struct pm_scan_arg)`: 96 bytes of argument.
const PAGEMAP_SCAN: libc::c_ulong = 0xc060_6610;

/// `/proc/self/pagemap`, opened once, if `PAGEMAP_SCAN` works on this kernel.
fn pagemap() -> Option<&'static std::fs::File> {
    static PAGEMAP: OnceLock<Option<std::fs::File>> = OnceLock::new();
    PAGEMAP
        .get_or_init(|| {
            let file = std::fs::File::open("/proc/self/pagemap").ok()?;
            let probe = [0u8; 1];
            let start = probe.as_ptr() as u64 & !4095;
            scan(&file, start, start + 4096).ok()?;
            Some(file)
        })
        .as_ref()
}

/// Whether some 4 KiB page of `[start, end)` (page-aligned host addresses) holds memory of
/// its own rather than a file's: a private mapping's copy made by a write.
fn scan(pagemap: &std::fs::File, start: u64, end: u64) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut region = PageRegion::default();
    let mut arg = PmScanArg {
        size: std::mem::size_of::<PmScanArg>() as u64,
        flags: 0,
        start,
        end,
        walk_end: 0,
        vec: (&raw mut region) as u64,
        vec_len: 1,
        max_pages: 1,
        // present or swapped out, and not a file's page
        category_inverted: PAGE_IS_FILE,
        category_mask: PAGE_IS_FILE,
        category_anyof_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
        return_mask: PAGE_IS_FILE | PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
    };
    // SAFETY: PAGEMAP_SCAN reads `arg` and writes at most `vec_len` (1) regions to `vec`,
    // which points at `region`, alive for the call; it only reads page tables.
    let found = unsafe { libc::ioctl(pagemap.as_raw_fd(), PAGEMAP_SCAN, &raw mut arg) };
    if found < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(found > 0)
}

/// Whether the kernel can tell written pages of a private mapping (`PAGEMAP_SCAN`), which
/// virtual copies need: without it every copy is physical.
pub(crate) fn written_pages_visible() -> bool {
    pagemap().is_some()
}

/// Whether a task's private mapping of `[start, end)` (host addresses, 4 KiB-aligned) has a
/// page written since it was mapped. `None` where the kernel cannot tell.
pub(crate) fn any_written(start: *const u8, end: *const u8) -> Option<bool> {
    scan(pagemap()?, start as u64, end as u64).ok()
}

/// Whether this process can create task files (`memfd_create`), probed once.
pub(crate) fn files_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| TaskFile::create().is_ok() && written_pages_visible())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Makes this thread's next `TaskFile::create` fail, as when the process has no
        /// file descriptor left.
        pub(crate) static FAIL_CREATE: Cell<bool> = const { Cell::new(false) };
    }

    #[test]
    fn a_snapshot_page_lives_until_its_last_reference_goes() {
        let file = TaskFile::create().unwrap();
        let page = 1u64 << PAGE_SHIFT;
        rustix::io::pwrite(&file.fd, &vec![1u8; page as usize], 3 * page).unwrap();
        assert_eq!(file.allocated_bytes(), page);
        file.add_refs(3, 4);
        file.add_refs(2, 4);
        assert_eq!((file.refs(2), file.refs(3)), (1, 2));
        file.drop_refs(3, 4);
        assert_eq!(file.allocated_bytes(), page, "one reference is left");
        file.drop_refs(2, 4);
        assert_eq!((file.refs(2), file.refs(3)), (0, 0));
        assert_eq!(file.allocated_bytes(), 0, "punched with its last reference");
        let mut runs = Vec::new();
        file.add_refs(5, 6);
        file.with_unreferenced(4, 8, |a, b, free| runs.push((a, b, free)));
        assert_eq!(runs, [(4, 5, true), (5, 6, false), (6, 8, true)]);
    }
}
