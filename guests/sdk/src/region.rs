//! Owned page ranges: [`Region`] (in any task) and [`PageBuf`] (in the caller's own task).

use core::fmt;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use crate::types::{KernReturn, Port, Result};
use crate::{PAGE_SIZE, sys};

/// A page-aligned range of some task's address space, owned by the caller: dropping it
/// `vm_deallocate`s it. [`vm_allocate`](crate::vm_allocate) and
/// [`vm_allocate_fixed`](crate::vm_allocate_fixed) return one (and
/// [`vm_read`](crate::vm_read) one inside a [`PageBuf`]).
///
/// Keep the pages past the region's life with [`Region::leak`] or [`Region::into_raw`]. The
/// bytes of a region in the caller's own task are reachable with [`Region::as_slice`] and
/// [`Region::as_mut_slice`], or with a [`PageBuf`] ([`Region::into_page_buf`]); a region in
/// another task is moved with the calls ([`vm_write`](crate::vm_write),
/// [`vm_read_overwrite`](crate::vm_read_overwrite), ...).
#[derive(Debug)]
pub struct Region {
    port: Port,
    address: u32,
    size: u32,
}

impl Region {
    /// Takes ownership of `[address, address + size)` in the task named `port`.
    ///
    /// # Safety
    /// The range must be allocated in that task and owned by nobody else: the region
    /// deallocates it when dropped, and when `port` names the caller, [`Region::as_slice`]
    /// and [`Region::as_mut_slice`] hand out references to it, so Rust must not be using
    /// the range for anything else (its stack, statics, another region).
    pub const unsafe fn from_raw(port: Port, address: u32, size: u32) -> Region {
        Region {
            port,
            address,
            size,
        }
    }

    /// The task the pages belong to.
    pub const fn port(&self) -> Port {
        self.port
    }

    /// The first address.
    pub const fn address(&self) -> u32 {
        self.address
    }

    /// The size in bytes (a multiple of [`PAGE_SIZE`]).
    pub const fn size(&self) -> u32 {
        self.size
    }

    /// The end address (exclusive), as a `u64`: a region may end at 4 GiB.
    pub const fn end(&self) -> u64 {
        self.address as u64 + self.size as u64
    }

    /// The size in pages.
    pub const fn pages(&self) -> u32 {
        self.size / PAGE_SIZE
    }

    /// Whether the region holds no page.
    pub const fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Whether the pages belong to the caller's own task.
    pub fn is_local(&self) -> bool {
        self.port.is_task_self()
    }

    /// The bytes, if the region is in the caller's own task (else `None`).
    ///
    /// The memory belongs to the region, but the kernel does not know about Rust borrows:
    /// another task may `vm_write` into these pages while the slice lives (the caller's own
    /// `vm_write`/`vm_copy` on its own task too), as with a shared-memory mapping. The bytes
    /// may then change under the slice; treat them as data another party may change.
    pub fn as_slice(&self) -> Option<&[u8]> {
        let ptr = self.local_ptr()?;
        // SAFETY: the range is allocated in our own memory and owned by this region (the
        // invariant of `Region`), so nothing else in Rust refers to it; `&self` keeps it
        // allocated for the borrow.
        Some(unsafe { core::slice::from_raw_parts(ptr.as_ptr(), self.size as usize) })
    }

    /// The bytes, mutably, if the region is in the caller's own task (else `None`). Same
    /// caveat as [`Region::as_slice`].
    pub fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        let ptr = self.local_ptr()?;
        // SAFETY: as in `as_slice`; `&mut self` makes the borrow unique in Rust.
        Some(unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr(), self.size as usize) })
    }

    /// A pointer to the first byte, if the region is in the caller's own task; dangling for
    /// an empty region. `None` as well for a non-empty region at address 0, which Rust
    /// cannot refer to (only possible after the caller deallocated its own page 0).
    fn local_ptr(&self) -> Option<NonNull<u8>> {
        if !self.is_local() {
            return None;
        }
        if self.size == 0 {
            return Some(NonNull::dangling());
        }
        NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(
            self.address as usize,
        ))
    }

    /// The region as a [`PageBuf`], if it is in the caller's own task (else the region back).
    pub fn into_page_buf(self) -> core::result::Result<PageBuf, Region> {
        match self.local_ptr() {
            Some(ptr) => Ok(PageBuf { region: self, ptr }),
            None => Err(self),
        }
    }

    /// Deallocates the pages now, reporting the result (dropping the region does the same
    /// and ignores it).
    pub fn deallocate(self) -> Result<()> {
        let (port, address, size) = self.into_raw();
        if size == 0 {
            return Ok(());
        }
        // SAFETY: the region owned the range and gives it up here.
        KernReturn::check(unsafe { sys::vm_deallocate(port.raw(), address, size) })
    }

    /// Keeps the pages allocated for good (for the target task to use, say) and forgets
    /// them.
    pub fn leak(self) {
        let _ = self.into_raw();
    }

    /// Gives up ownership without deallocating: the parts, for [`Region::from_raw`].
    pub const fn into_raw(self) -> (Port, u32, u32) {
        let parts = (self.port, self.address, self.size);
        core::mem::forget(self);
        parts
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.size != 0 {
            // SAFETY: the region owns the range. A failure (the task is gone) leaves
            // nothing to do.
            let _ = unsafe { sys::vm_deallocate(self.port.raw(), self.address, self.size) };
        }
    }
}

/// A zero-filled, page-aligned buffer in the caller's own memory: a [`Region`] of the
/// caller's task, with its bytes as a slice (`Deref<Target = [u8]>`). It is what
/// [`vm_write`](crate::vm_write) and [`vm_read_overwrite`](crate::vm_read_overwrite) want (the
/// kernel requires page-aligned data and page-multiple sizes; slicing a `PageBuf` at page
/// offsets keeps that), and what [`vm_read`](crate::vm_read) returns.
///
/// The caveat of [`Region::as_slice`] applies: another task may `vm_write` into the pages
/// while they are borrowed.
pub struct PageBuf {
    region: Region,
    /// The first byte; dangling when empty. Invariant: `region` is local.
    ptr: NonNull<u8>,
}

impl PageBuf {
    /// Allocates `size` bytes (rounded up to whole pages) anywhere in the caller's task.
    pub fn new(size: u32) -> Result<PageBuf> {
        let region = crate::vm_allocate(Port::task_self(), size)?;
        PageBuf::from_region(region)
    }

    /// Allocates `pages` pages anywhere in the caller's task.
    pub fn with_pages(pages: u32) -> Result<PageBuf> {
        PageBuf::new(pages.checked_mul(PAGE_SIZE).ok_or(KernReturn::NoSpace)?)
    }

    /// A region the kernel just allocated in the caller's task, as a buffer. A region the
    /// caller cannot use as one (see [`Region::into_page_buf`]) is given back and reported
    /// as [`KernReturn::NoSpace`].
    pub(crate) fn from_region(region: Region) -> Result<PageBuf> {
        region.into_page_buf().map_err(|_| KernReturn::NoSpace)
    }

    /// The first address (in the caller's memory).
    pub fn address(&self) -> u32 {
        self.region.address()
    }

    /// The underlying region.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The underlying region.
    pub fn into_region(self) -> Region {
        self.region
    }

    /// Keeps the pages allocated for good and returns them, as `Box::leak` does.
    pub fn leak(self) -> &'static mut [u8] {
        let len = self.region.size() as usize;
        let ptr = self.ptr;
        self.region.leak();
        // SAFETY: the pages stay allocated forever and nothing else owns them.
        unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr(), len) }
    }
}

impl Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is the start of the region's pages in our memory (or dangling when
        // empty), owned by `self`.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.region.size() as usize) }
    }
}

impl DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes the borrow unique.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.region.size() as usize) }
    }
}

impl AsRef<[u8]> for PageBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for PageBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl fmt::Debug for PageBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageBuf")
            .field("address", &self.region.address())
            .field("size", &self.region.size())
            .finish()
    }
}
