//! Owned page ranges: [`Region`] (pages of any task, which other tasks may write: its bytes
//! are copied in and out, never borrowed) and [`PageBuf`] (pages of the caller's own that
//! Rust uses as a `[u8]`).

use core::fmt;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use crate::types::{KernReturn, Port, Result, VmProt};
use crate::{PAGE_SIZE, sys, volatile};

/// A slice's length, as the calls take it.
pub(crate) fn len_of(data: &[u8]) -> Result<u32> {
    u32::try_from(data.len()).map_err(|_| KernReturn::InvalidArgument)
}

/// A page-aligned range of some task's address space, owned by the caller: dropping it
/// `vm_deallocate`s it. [`vm_allocate`](crate::vm_allocate) and
/// [`vm_allocate_fixed`](crate::vm_allocate_fixed) return one.
///
/// A region hands out no reference to its bytes, so other tasks may write its pages at any
/// time (a region of the caller's own is the place for data that peers holding the caller's
/// port `vm_write` into, and a region of another task is that task's memory) and the
/// caller's own calls may write, copy into, reprotect and free them (the `vm_*` methods).
/// The bytes of a region of the caller's own are copied in and out with volatile accesses:
/// [`Region::read_into`], [`Region::read_array`], [`Region::write_from`], [`Region::fill`].
/// [`Region::into_page_buf`] makes the pages a [`PageBuf`], a `[u8]` of Rust's, when no other
/// task writes them any more. See the crate's *Soundness* section.
///
/// Keep the pages past the region's life with [`Region::leak`] or [`Region::into_raw`].
///
/// ```
/// use wasmach_guest::{PAGE_SIZE, Port, Result, VmProt, vm_allocate};
///
/// /// A page that peers (who got our port from the host) write a counter into.
/// fn inbox() -> Result<u32> {
///     let mut inbox = vm_allocate(Port::task_self(), PAGE_SIZE)?;
///     inbox.write_from(0, &7u32.to_le_bytes())?;
///     // ... peers vm_write the page; each read loads the bytes afresh ...
///     let counter = u32::from_le_bytes(inbox.read_array(0)?);
///     // Our own calls may change the pages too: no reference to them can be alive.
///     inbox.vm_protect(0, PAGE_SIZE, false, VmProt::READ)?;
///     Ok(counter)
/// }
/// # assert_eq!(inbox(), Err(wasmach_guest::KernReturn::Failure)); // the host stubs
/// ```
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
    /// The range must be page-aligned (address and size multiples of [`PAGE_SIZE`]),
    /// allocated in that task, and owned by nobody else: the region deallocates it when
    /// dropped, and lets safe code write, copy into, reprotect and free it. When `port` names
    /// the caller, Rust must not use the range for anything else (its stack, statics, heap,
    /// memory a reference points into, another region or [`PageBuf`]).
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

    /// The address of `[offset, offset + len)` of the region, if that lies inside it, else
    /// [`KernReturn::InvalidAddress`]. (Wraps to 0 only for an empty range at 4 GiB.)
    fn inside(&self, offset: u32, len: u64) -> Result<u32> {
        if u64::from(offset) + len > u64::from(self.size) {
            return Err(KernReturn::InvalidAddress);
        }
        Ok(self.address.wrapping_add(offset))
    }

    /// A pointer to `[offset, offset + len)` of the region, for the volatile copies: the
    /// region must be local ([`KernReturn::InvalidTask`]) and the range inside it
    /// ([`KernReturn::InvalidAddress`]). Dangling for `len == 0`. On the host there is no
    /// such memory: [`KernReturn::Failure`].
    fn local_range(&self, offset: u32, len: usize) -> Result<*mut u8> {
        if !self.is_local() {
            return Err(KernReturn::InvalidTask);
        }
        let address = self.inside(offset, len as u64)?;
        if !cfg!(target_arch = "wasm32") {
            return Err(KernReturn::Failure);
        }
        if len == 0 {
            return Ok(NonNull::dangling().as_ptr());
        }
        if address == 0 {
            // Byte 0 of the caller's memory has no non-null pointer in Rust (possible only
            // for a region allocated after the caller's page 0 was deallocated).
            return Err(KernReturn::InvalidAddress);
        }
        Ok(core::ptr::with_exposed_provenance_mut(address as usize))
    }

    /// Copies `buf.len()` bytes from `offset` of the region into `buf`, with volatile loads
    /// (another task may be writing the pages meanwhile: each 8-byte word, or byte at an
    /// unaligned end, is one load, and the copy may mix old and new words).
    ///
    /// A region of another task: [`KernReturn::InvalidTask`] (copy its pages with
    /// [`vm_read_overwrite`](crate::vm_read_overwrite)); a range reaching past the region:
    /// [`KernReturn::InvalidAddress`]. With guest protection on, a page the caller lowered to
    /// no access ([`Region::vm_protect`]) traps, as any load from it would.
    pub fn read_into(&self, offset: u32, buf: &mut [u8]) -> Result<()> {
        let src = self.local_range(offset, buf.len())?;
        // SAFETY: `local_range` checked that the range lies in this region's pages of our
        // own memory (non-null when not empty). They are owned by the region, which hands
        // out no reference to them (the invariant of `Region`), so no Rust reference covers
        // them and `buf` is elsewhere; the volatile loads expect other writers.
        unsafe { volatile::copy_from(src, buf) };
        Ok(())
    }

    /// `N` bytes from `offset` of the region, as [`Region::read_into`] copies them.
    pub fn read_array<const N: usize>(&self, offset: u32) -> Result<[u8; N]> {
        let mut bytes = [0; N];
        self.read_into(offset, &mut bytes)?;
        Ok(bytes)
    }

    /// Copies `data` to `offset` of the region, with volatile stores. Errors as for
    /// [`Region::read_into`] (use [`Region::vm_write`] for a region of another task); a page
    /// without `WRITE` traps (guest protection on).
    pub fn write_from(&mut self, offset: u32, data: &[u8]) -> Result<()> {
        let dst = self.local_range(offset, data.len())?;
        // SAFETY: as in `read_into`: the range is in this region's pages, which no Rust
        // reference covers, so `data` is elsewhere too.
        unsafe { volatile::copy_to(dst, data) };
        Ok(())
    }

    /// Sets every byte of the region to `byte`, with volatile stores. Errors as for
    /// [`Region::write_from`].
    pub fn fill(&mut self, byte: u8) -> Result<()> {
        let len = self.size as usize;
        let dst = self.local_range(0, len)?;
        // SAFETY: as in `write_from`, for the whole region.
        unsafe { volatile::fill(dst, len, byte) };
        Ok(())
    }

    /// `vm_write` into the region: copies `data` to `offset` of it, in whichever task it is.
    /// `offset`, `data`'s address and length must be page-aligned (else
    /// [`KernReturn::InvalidArgument`]); a range reaching past the region:
    /// [`KernReturn::InvalidAddress`], before any call.
    pub fn vm_write(&mut self, offset: u32, data: &[u8]) -> Result<()> {
        let address = self.inside(offset, data.len() as u64)?;
        let count = len_of(data)?;
        // SAFETY: `data` is readable for its length. The destination is inside this
        // region's pages, which no Rust reference covers (a region hands none out), so the
        // kernel's stores into them cannot change anything Rust holds.
        KernReturn::check(unsafe { sys::vm_write(self.port.raw(), address, data.as_ptr(), count) })
    }

    /// `vm_copy` inside the region: `count` bytes from `source_offset` to `dest_offset` (as
    /// `memmove`), all three page-aligned. A range reaching past the region:
    /// [`KernReturn::InvalidAddress`], before any call.
    pub fn vm_copy(&mut self, source_offset: u32, count: u32, dest_offset: u32) -> Result<()> {
        self.copy_pages(source_offset, count, dest_offset)
    }

    /// `vm_copy` inside the region, through a shared borrow: for [`PageBuf::vm_copy`],
    /// which holds the region and takes `&mut self` itself.
    fn copy_pages(&self, source_offset: u32, count: u32, dest_offset: u32) -> Result<()> {
        let source = self.inside(source_offset, count.into())?;
        let dest = self.inside(dest_offset, count.into())?;
        // SAFETY: no pointer is passed; both ranges are inside this region. A `Region` has
        // no reference to its pages; a `PageBuf` calls this from `&mut self`, so no
        // reference to its pages is alive either.
        KernReturn::check(unsafe { sys::vm_copy(self.port.raw(), source, count, dest) })
    }

    /// `vm_protect` of `[offset, offset + size)` of the region (rounded out to pages, which
    /// stay inside it): sets the current protection (`set_maximum == false`) or lowers the
    /// maximum (`true`, which also masks the current one). A range reaching past the region:
    /// [`KernReturn::InvalidAddress`], before any call.
    ///
    /// The pages stay the region's; [`Region::into_page_buf`] takes them back as a
    /// [`PageBuf`] only while they are all readable and writable.
    pub fn vm_protect(
        &mut self,
        offset: u32,
        size: u32,
        set_maximum: bool,
        new_protection: VmProt,
    ) -> Result<()> {
        let address = self.inside(offset, size.into())?;
        // SAFETY: no pointer is passed; the range (rounded out to pages, which are this
        // region's own as it is page-aligned) holds nothing Rust refers to.
        KernReturn::check(unsafe {
            sys::vm_protect(
                self.port.raw(),
                address,
                size,
                u32::from(set_maximum),
                new_protection.bits(),
            )
        })
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

    /// Whether every page of the region has a current protection with `READ` and `WRITE`
    /// (asked of the kernel with `vm_region`; `false` if a call fails).
    fn is_read_write(&self) -> bool {
        let mut at = u64::from(self.address);
        while at < self.end() {
            match crate::vm_region(self.port, at as u32) {
                Ok(info)
                    if u64::from(info.address) <= at
                        && info.end() > at
                        && info.protection.contains(VmProt::DEFAULT) =>
                {
                    at = info.end();
                }
                _ => return false,
            }
        }
        true
    }

    /// The region as a [`PageBuf`], a `[u8]` of Rust's, if it is in the caller's own task
    /// and every page is readable and writable (else the region back).
    ///
    /// This is where the program declares the pages private: from here on no other task may
    /// write them (the crate's *Soundness* section), so call it only when the protocol with
    /// the tasks that hold the caller's port says they are done with these pages.
    pub fn into_page_buf(self) -> core::result::Result<PageBuf, Region> {
        if !self.is_read_write() {
            return Err(self);
        }
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
        // SAFETY: the region owned the range, with no reference into it, and gives it up
        // here.
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
            // SAFETY: the region owns the range, with no reference into it. A failure (the
            // task is gone) leaves nothing to do.
            let _ = unsafe { sys::vm_deallocate(self.port.raw(), self.address, self.size) };
        }
    }
}

/// A zero-filled, page-aligned buffer in the caller's own memory, which Rust uses as a
/// `[u8]` (`Deref<Target = [u8]>`): a [`Region`] of the caller's task that no other task
/// writes. It is what [`vm_write`](crate::vm_write) and
/// [`vm_read_overwrite`](crate::vm_read_overwrite) want (the kernel requires page-aligned
/// data and page-multiple sizes; slicing a `PageBuf` at page offsets keeps that), and what
/// [`vm_read`](crate::vm_read) returns.
///
/// Rust's borrow rules cover the buffer: the calls that write it take it as `&mut`
/// ([`vm_read_overwrite`](crate::vm_read_overwrite), [`PageBuf::vm_copy`]) or by value
/// ([`PageBuf::into_region`], then the region's `vm_*` methods), so no slice of it is alive
/// while the kernel writes it. Other tasks must not write it (see the crate's *Soundness*
/// section): pages that peers write belong in a [`Region`].
///
/// A copy inside the buffer sees the bytes it made:
///
/// ```
/// use wasmach_guest::{PAGE_SIZE, PageBuf, Result};
///
/// fn copied() -> Result<u8> {
///     let mut buf = PageBuf::with_pages(2)?;
///     buf[PAGE_SIZE as usize] = 122;
///     buf.vm_copy(PAGE_SIZE, PAGE_SIZE, 0)?; // page 1 onto page 0
///     Ok(buf[0]) // 122
/// }
/// # assert_eq!(copied(), Err(wasmach_guest::KernReturn::Failure)); // the host stubs
/// ```
///
/// and a slice of the buffer cannot live across that copy (the value loaded before it would
/// be stale, and the compiler may assume it is not):
///
/// ```compile_fail
/// use wasmach_guest::{PAGE_SIZE, PageBuf, Result};
///
/// fn copied() -> Result<u8> {
///     let mut buf = PageBuf::with_pages(2)?;
///     buf[PAGE_SIZE as usize] = 122;
///     let page0 = &buf[..PAGE_SIZE as usize];
///     buf.vm_copy(PAGE_SIZE, PAGE_SIZE, 0)?; // error: `buf` is borrowed by `page0`
///     Ok(page0[0])
/// }
/// ```
///
/// nor across any call on its pages as a region:
///
/// ```compile_fail
/// use wasmach_guest::{PAGE_SIZE, PageBuf, Result, VmProt};
///
/// fn sealed() -> Result<u8> {
///     let buf = PageBuf::new(PAGE_SIZE)?;
///     let bytes = &buf[..];
///     let mut region = buf.into_region(); // error: `buf` is borrowed by `bytes`
///     region.vm_protect(0, PAGE_SIZE, false, VmProt::NONE)?;
///     Ok(bytes[0])
/// }
/// ```
///
/// nor across a [`vm_read_overwrite`](crate::vm_read_overwrite) into it:
///
/// ```compile_fail
/// use wasmach_guest::{PAGE_SIZE, PageBuf, Port, Result, vm_read_overwrite};
///
/// fn reread(peer: Port) -> Result<u8> {
///     let mut buf = PageBuf::new(PAGE_SIZE)?;
///     let before = &buf[..];
///     vm_read_overwrite(peer, 0, &mut buf)?; // error: `buf` is borrowed by `before`
///     Ok(before[0])
/// }
/// ```
pub struct PageBuf {
    region: Region,
    /// The first byte; dangling when empty. Invariant: `region` is local, its pages are
    /// readable and writable, and no other task writes them.
    ptr: NonNull<u8>,
}

impl PageBuf {
    /// Allocates `size` bytes (rounded up to whole pages) anywhere in the caller's task.
    pub fn new(size: u32) -> Result<PageBuf> {
        let region = crate::vm_allocate(Port::task_self(), size)?;
        PageBuf::from_fresh(region)
    }

    /// Allocates `pages` pages anywhere in the caller's task.
    pub fn with_pages(pages: u32) -> Result<PageBuf> {
        PageBuf::new(pages.checked_mul(PAGE_SIZE).ok_or(KernReturn::NoSpace)?)
    }

    /// A region the kernel just allocated in the caller's task (protection `DEFAULT`, no
    /// other task knows of it), as a buffer. A region the caller cannot use as one (not
    /// local, or at address 0) is deallocated and reported as [`KernReturn::NoSpace`].
    pub(crate) fn from_fresh(region: Region) -> Result<PageBuf> {
        match region.local_ptr() {
            Some(ptr) => Ok(PageBuf { region, ptr }),
            None => Err(KernReturn::NoSpace),
        }
    }

    /// The first address (in the caller's memory).
    pub fn address(&self) -> u32 {
        self.region.address()
    }

    /// The underlying region (its `&self` methods only read).
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The underlying region: the pages are no longer Rust's `[u8]`, and the region's
    /// methods may write, copy into and reprotect them (back with
    /// [`Region::into_page_buf`]).
    pub fn into_region(self) -> Region {
        self.region
    }

    /// `vm_copy` inside the buffer: `count` bytes from `source_offset` to `dest_offset` (as
    /// `memmove`, possibly as a virtual copy), all three page-aligned (else
    /// [`KernReturn::InvalidArgument`]). A range reaching past the buffer:
    /// [`KernReturn::InvalidAddress`], before any call.
    pub fn vm_copy(&mut self, source_offset: u32, count: u32, dest_offset: u32) -> Result<()> {
        self.region.copy_pages(source_offset, count, dest_offset)
    }

    /// Keeps the pages allocated for good and returns them, as `Box::leak` does.
    pub fn leak(self) -> &'static mut [u8] {
        let len = self.region.size() as usize;
        let ptr = self.ptr;
        self.region.leak();
        // SAFETY: the pages stay allocated, readable and writable forever (the region was
        // forgotten, so nothing deallocates them) and nothing else owns them.
        unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr(), len) }
    }
}

impl Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is the start of the region's pages in our memory (or dangling when
        // empty), allocated, readable and writable, owned by `self` (the invariant of
        // `PageBuf`). The SDK's calls that write them take `&mut self` or `self`, so none
        // runs while this borrow lives; other tasks do not write them (the crate's model).
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

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: Port = Port::from_raw(0x203);
    const PAGE: u32 = PAGE_SIZE;

    /// A two-page region at 0x10000 of `port`. On the host nothing is allocated: every call
    /// is a stub failing with `KERN_FAILURE` (the region's drop included), so the region
    /// only exercises the checks the SDK makes before calling.
    fn region(port: Port) -> Region {
        // SAFETY: on the host no call touches memory, and no byte access reaches memory:
        // `local_range` answers `KERN_FAILURE` there.
        unsafe { Region::from_raw(port, 0x1_0000, 2 * PAGE) }
    }

    #[test]
    fn ranges_are_checked_against_the_region() {
        let r = region(PEER);
        assert_eq!(r.inside(0, 2 * u64::from(PAGE)), Ok(0x1_0000));
        assert_eq!(r.inside(PAGE, u64::from(PAGE)), Ok(0x2_0000));
        assert_eq!(r.inside(2 * PAGE, 0), Ok(0x3_0000));
        assert_eq!(r.inside(2 * PAGE, 1), Err(KernReturn::InvalidAddress));
        assert_eq!(
            r.inside(1, 2 * u64::from(PAGE)),
            Err(KernReturn::InvalidAddress)
        );
        assert_eq!(
            r.inside(u32::MAX, u64::from(u32::MAX)),
            Err(KernReturn::InvalidAddress)
        );
        // A region ending at 4 GiB: its end is addressable as an empty range only.
        // SAFETY: as in `region`.
        let top = unsafe { Region::from_raw(PEER, 0xffff_0000, PAGE) };
        assert_eq!(top.end(), 1 << 32);
        assert_eq!(top.inside(PAGE - 1, 1), Ok(0xffff_ffff));
        assert_eq!(top.inside(PAGE, 0), Ok(0));
        assert_eq!(top.inside(PAGE, 1), Err(KernReturn::InvalidAddress));
    }

    #[test]
    fn byte_access_is_for_regions_of_the_caller() {
        let mut r = region(PEER);
        let mut buf = [0u8; 8];
        assert_eq!(r.read_into(0, &mut buf), Err(KernReturn::InvalidTask));
        assert_eq!(r.read_array::<4>(0), Err(KernReturn::InvalidTask));
        assert_eq!(r.write_from(0, &buf), Err(KernReturn::InvalidTask));
        assert_eq!(r.fill(1), Err(KernReturn::InvalidTask));
        // Past the end is still the other task's business first.
        assert_eq!(
            r.read_into(2 * PAGE, &mut buf),
            Err(KernReturn::InvalidTask)
        );
    }

    #[test]
    fn byte_access_checks_the_range_then_needs_memory() {
        let mut r = region(Port::task_self());
        assert!(r.is_local());
        let mut two = [0u8; 2];
        assert_eq!(
            r.read_into(2 * PAGE - 1, &mut two),
            Err(KernReturn::InvalidAddress)
        );
        assert_eq!(
            r.write_from(2 * PAGE - 1, &two),
            Err(KernReturn::InvalidAddress)
        );
        assert_eq!(
            r.read_array::<4>(2 * PAGE - 3),
            Err(KernReturn::InvalidAddress)
        );
        // Inside: on the host there is no memory to copy.
        assert_eq!(
            r.read_into(2 * PAGE - 2, &mut two),
            Err(KernReturn::Failure)
        );
        assert_eq!(r.write_from(0, &two), Err(KernReturn::Failure));
        assert_eq!(r.read_array::<4>(2 * PAGE - 4), Err(KernReturn::Failure));
        assert_eq!(r.fill(0), Err(KernReturn::Failure));
    }

    #[test]
    fn region_calls_stay_inside_the_region() {
        for port in [PEER, Port::task_self()] {
            let mut r = region(port);
            let none: &[u8] = &[];
            // Outside: refused before any call.
            assert_eq!(r.vm_write(2 * PAGE, &[0]), Err(KernReturn::InvalidAddress));
            assert_eq!(
                r.vm_copy(PAGE, 2 * PAGE, 0),
                Err(KernReturn::InvalidAddress)
            );
            assert_eq!(
                r.vm_copy(0, PAGE, 2 * PAGE),
                Err(KernReturn::InvalidAddress)
            );
            assert_eq!(r.vm_copy(u32::MAX, 1, 0), Err(KernReturn::InvalidAddress));
            assert_eq!(
                r.vm_protect(0, 3 * PAGE, false, VmProt::READ),
                Err(KernReturn::InvalidAddress)
            );
            // Inside: the call is made (the host stubs fail it), for the caller's own region
            // as for another task's.
            assert_eq!(r.vm_write(2 * PAGE, none), Err(KernReturn::Failure));
            assert_eq!(r.vm_copy(PAGE, PAGE, 0), Err(KernReturn::Failure));
            assert_eq!(
                r.vm_protect(PAGE, PAGE, true, VmProt::NONE),
                Err(KernReturn::Failure)
            );
        }
    }

    #[test]
    fn only_readable_writable_pages_of_the_caller_become_a_page_buf() {
        // Another task's pages never do.
        let r = region(PEER).into_page_buf().unwrap_err();
        assert_eq!(r.port(), PEER);
        // The caller's own: `vm_region` must vouch for every page (the host stub fails).
        let r = region(Port::task_self()).into_page_buf().unwrap_err();
        assert_eq!((r.address(), r.size()), (0x1_0000, 2 * PAGE));
        // An empty region has no page to check.
        // SAFETY: an empty range owns nothing.
        let empty = unsafe { Region::from_raw(Port::task_self(), 0x1_0000, 0) };
        let mut buf = empty.into_page_buf().unwrap();
        assert!(buf.is_empty());
        assert_eq!(buf.vm_copy(0, 0, 0), Err(KernReturn::Failure));
        assert_eq!(buf.vm_copy(0, PAGE, 0), Err(KernReturn::InvalidAddress));
        let r = buf.into_region();
        assert!(r.is_local() && r.is_empty());
        assert_eq!(r.deallocate(), Ok(()));
    }
}
