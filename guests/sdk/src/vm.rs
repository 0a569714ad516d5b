//! The safe wrappers over [`sys`](crate::sys).

use crate::region::{PageBuf, Region, len_of};
use crate::types::{KernReturn, Port, Result, VmProt};
use crate::{PAGE_SIZE, sys};

/// What [`vm_region`] reports: a maximal run of allocated pages with equal protections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegionInfo {
    /// The first address.
    pub address: u32,
    /// The size in bytes.
    pub size: u32,
    /// The current protection.
    pub protection: VmProt,
    /// The maximum protection.
    pub max_protection: VmProt,
}

impl RegionInfo {
    /// The end address (exclusive), as a `u64`.
    pub const fn end(&self) -> u64 {
        self.address as u64 + self.size as u64
    }
}

/// `size` rounded up to whole pages, as the kernel does (unchanged if that overflows: the
/// kernel refuses such a size anyway, and deallocation rounds the end up itself).
fn round_up(size: u32) -> u32 {
    size.checked_next_multiple_of(PAGE_SIZE).unwrap_or(size)
}

/// `mach_task_self`: the caller's own name for itself (same as [`Port::task_self`]).
pub fn mach_task_self() -> Port {
    Port::task_self()
}

/// `bootstrap_look_up`: the caller's name for the task registered as `name`.
/// Unknown name: [`KernReturn::InvalidName`].
pub fn bootstrap_look_up(name: &str) -> Result<Port> {
    let mut port = 0;
    // SAFETY: `name` is readable for its length; `port` is a writable u32.
    KernReturn::check(unsafe {
        sys::bootstrap_look_up(name.as_ptr(), len_of(name.as_bytes())?, &mut port)
    })?;
    Ok(Port::from_raw(port))
}

fn allocate(target: Port, address: u32, size: u32, anywhere: bool) -> Result<Region> {
    let mut address = address;
    // SAFETY: `address` is a readable and writable u32.
    KernReturn::check(unsafe {
        sys::vm_allocate(target.raw(), &mut address, size, u32::from(anywhere))
    })?;
    // SAFETY: the kernel just allocated the page-aligned range in `target` for us. It was
    // unallocated, so nothing used it (Rust never uses unallocated pages of its own).
    Ok(unsafe { Region::from_raw(target, address, round_up(size)) })
}

/// `vm_allocate` anywhere: `size` bytes (rounded up to pages) first-fit in `target`,
/// zero-filled, protection `DEFAULT`, maximum `ALL`. The returned [`Region`] deallocates
/// them when dropped. No room: [`KernReturn::NoSpace`].
///
/// Use [`PageBuf::new`] for a buffer in the caller's own memory.
pub fn vm_allocate(target: Port, size: u32) -> Result<Region> {
    allocate(target, 0, size, true)
}

/// `vm_allocate` at a fixed place: `[address, address + size)`, the address rounded down
/// to a page and the size rounded up (each on its own, as GNU Mach does). Any page already
/// allocated: [`KernReturn::NoSpace`]; past the address space: [`KernReturn::InvalidAddress`].
pub fn vm_allocate_fixed(target: Port, address: u32, size: u32) -> Result<Region> {
    allocate(target, address, size, false)
}

/// Refuses a call that writes, frees or reprotects memory at a bare address when its target
/// is the caller itself: such an address may be Rust's stack, statics, heap or a borrowed
/// buffer. [`KernReturn::InvalidTask`], before any call.
fn not_self(target: Port) -> Result<()> {
    if target.is_task_self() {
        Err(KernReturn::InvalidTask)
    } else {
        Ok(())
    }
}

/// `vm_deallocate` in another task: frees every allocated page of `[address, address +
/// size)` (address rounded down, end rounded up) in `target`; unallocated pages are skipped.
///
/// The caller itself: [`KernReturn::InvalidTask`], nothing is called (the range could hold
/// memory Rust uses). Free pages of your own by dropping (or
/// [`Region::deallocate`](crate::Region::deallocate)) the [`Region`] or [`PageBuf`] that owns
/// them, or see [`vm_deallocate_unchecked`].
pub fn vm_deallocate(target: Port, address: u32, size: u32) -> Result<()> {
    not_self(target)?;
    // SAFETY: `target` is not the caller, so the call cannot free memory of ours.
    unsafe { vm_deallocate_unchecked(target, address, size) }
}

/// [`vm_deallocate`] without the refusal of the caller's own task.
///
/// # Safety
/// If `target` is the caller, no page of the range may be memory Rust uses: its stack,
/// statics or heap, memory a live reference points into, or pages owned by a [`Region`] or
/// [`PageBuf`] (which deallocate them again when dropped, maybe after the kernel gave them
/// to someone else).
pub unsafe fn vm_deallocate_unchecked(target: Port, address: u32, size: u32) -> Result<()> {
    // SAFETY: no pointer is passed; the caller vouches for the range of its own memory.
    KernReturn::check(unsafe { sys::vm_deallocate(target.raw(), address, size) })
}

/// `vm_protect` in another task: sets the current protection of the pages of `[address,
/// address + size)` (`set_maximum == false`), or their maximum (`true`, which also masks
/// the current one). A protection above a page's maximum:
/// [`KernReturn::ProtectionFailure`] (a maximum only goes down).
///
/// The caller itself: [`KernReturn::InvalidTask`], nothing is called (the range could hold
/// memory Rust uses). Protect pages of your own through the [`Region`] that owns them
/// ([`Region::vm_protect`](crate::Region::vm_protect)), or see [`vm_protect_unchecked`].
pub fn vm_protect(
    target: Port,
    address: u32,
    size: u32,
    set_maximum: bool,
    new_protection: VmProt,
) -> Result<()> {
    not_self(target)?;
    // SAFETY: `target` is not the caller, so the call cannot reprotect memory of ours.
    unsafe { vm_protect_unchecked(target, address, size, set_maximum, new_protection) }
}

/// [`vm_protect`] without the refusal of the caller's own task.
///
/// # Safety
/// If `target` is the caller, the call must not take `READ` or `WRITE` away from a page
/// Rust uses: its stack, statics or heap, memory a live reference points into, or a
/// [`PageBuf`]'s pages. (Rust may load from, or store to, such memory at any time, and with
/// guest protection on, the runtime's default, that access traps.) The pages of a
/// [`Region`] may have any protection.
pub unsafe fn vm_protect_unchecked(
    target: Port,
    address: u32,
    size: u32,
    set_maximum: bool,
    new_protection: VmProt,
) -> Result<()> {
    // SAFETY: no pointer is passed; the caller vouches for the range of its own memory.
    KernReturn::check(unsafe {
        sys::vm_protect(
            target.raw(),
            address,
            size,
            u32::from(set_maximum),
            new_protection.bits(),
        )
    })
}

/// `vm_read`: a copy of `target`'s page-aligned `[address, address + size)` in a new buffer
/// of the caller's own memory (a snapshot: later changes to the target do not show in it).
/// The buffer is deallocated when dropped ([`PageBuf::into_region`] / [`PageBuf::leak`] to
/// keep it). The call writes only the new pages, so any target is fine.
pub fn vm_read(target: Port, address: u32, size: u32) -> Result<PageBuf> {
    let (mut data, mut count) = (0, 0);
    // SAFETY: `data` and `count` are writable u32s.
    KernReturn::check(unsafe { sys::vm_read(target.raw(), address, size, &mut data, &mut count) })?;
    // SAFETY: the kernel just allocated the page-aligned range in our own task for us, in
    // pages that were unallocated, so nothing else uses them.
    let region = unsafe { Region::from_raw(Port::task_self(), data, count) };
    PageBuf::from_fresh(region)
}

/// `vm_read_overwrite`: copies `target`'s `[address, address + dest.len())` into `dest`
/// and returns the size copied. `address`, `dest`'s address and length must be page-aligned
/// (else [`KernReturn::InvalidArgument`]): use a [`PageBuf`] or page-offset slices of one.
///
/// The only memory of the caller the call writes is `dest`, so any target is fine, the
/// caller itself included (overlapping ranges then behave as `memmove`).
pub fn vm_read_overwrite(target: Port, address: u32, dest: &mut [u8]) -> Result<u32> {
    let size = len_of(dest)?;
    let mut out = 0;
    // SAFETY: `dest` is ours to overwrite for its length, and `&mut` means no other
    // reference to it is alive; the source is only read (the kernel copies bytes of our own
    // memory too, without a reference). `out` is a writable u32.
    KernReturn::check(unsafe {
        sys::vm_read_overwrite(target.raw(), address, size, dest.as_mut_ptr(), &mut out)
    })?;
    Ok(out)
}

/// `vm_write` to another task: copies `data` to `target`'s `[address, address +
/// data.len())`. `address`, `data`'s address and length must be page-aligned (else
/// [`KernReturn::InvalidArgument`]): use a [`PageBuf`] or page-offset slices of one. A target
/// page without `WRITE`: [`KernReturn::ProtectionFailure`].
///
/// The caller itself: [`KernReturn::InvalidTask`], nothing is called (the destination could
/// be memory Rust uses). Write pages of your own through their owner:
/// [`Region::vm_write`](crate::Region::vm_write) or [`Region::write_from`](crate::Region::write_from),
/// a [`PageBuf`] as the slice it is; or see [`vm_write_unchecked`].
pub fn vm_write(target: Port, address: u32, data: &[u8]) -> Result<()> {
    not_self(target)?;
    // SAFETY: `target` is not the caller, so the call cannot write memory of ours.
    unsafe { vm_write_unchecked(target, address, data) }
}

/// [`vm_write`] without the refusal of the caller's own task.
///
/// # Safety
/// If `target` is the caller, no byte of the destination range may be memory Rust uses:
/// its stack, statics or heap, memory a live reference points into (`data` itself
/// included), or a [`PageBuf`]'s pages. The pages of a [`Region`] are fine (it copies
/// their bytes with volatile accesses).
pub unsafe fn vm_write_unchecked(target: Port, address: u32, data: &[u8]) -> Result<()> {
    let count = len_of(data)?;
    // SAFETY: `data` is readable for its length; the caller vouches for the destination
    // when it is its own memory.
    KernReturn::check(unsafe { sys::vm_write(target.raw(), address, data.as_ptr(), count) })
}

/// `vm_copy` inside another task: copies `[source, source + count)` to `[dest, dest +
/// count)` inside `target`, as `memmove`. All three must be page-aligned.
///
/// The caller itself: [`KernReturn::InvalidTask`], nothing is called (the destination could
/// be memory Rust uses). Copy inside pages of your own through their owner:
/// [`PageBuf::vm_copy`], [`Region::vm_copy`](crate::Region::vm_copy); or see
/// [`vm_copy_unchecked`].
///
/// ```
/// use wasmach_guest::{KernReturn, PAGE_SIZE, Port, vm_copy};
///
/// // Pages 0 and 1 of the caller hold its stack: the SDK does not let safe code copy
/// // over them.
/// assert_eq!(
///     vm_copy(Port::task_self(), PAGE_SIZE, PAGE_SIZE, 0),
///     Err(KernReturn::InvalidTask)
/// );
/// ```
pub fn vm_copy(target: Port, source: u32, count: u32, dest: u32) -> Result<()> {
    not_self(target)?;
    // SAFETY: `target` is not the caller, so the call cannot write memory of ours.
    unsafe { vm_copy_unchecked(target, source, count, dest) }
}

/// [`vm_copy`] without the refusal of the caller's own task.
///
/// # Safety
/// If `target` is the caller, no byte of the destination range may be memory Rust uses:
/// its stack, statics or heap, memory a live reference points into, or a [`PageBuf`]'s
/// pages. The pages of a [`Region`] are fine.
pub unsafe fn vm_copy_unchecked(target: Port, source: u32, count: u32, dest: u32) -> Result<()> {
    // SAFETY: no pointer is passed; the caller vouches for the destination when it is its
    // own memory.
    KernReturn::check(unsafe { sys::vm_copy(target.raw(), source, count, dest) })
}

/// `vm_region`: the region of `target` containing `address`, or else the first one above it.
/// None at or above: [`KernReturn::NoSpace`].
pub fn vm_region(target: Port, address: u32) -> Result<RegionInfo> {
    let (mut address, mut size, mut prot, mut max) = (address, 0, 0, 0);
    // SAFETY: all four are readable and writable u32s.
    KernReturn::check(unsafe {
        sys::vm_region(target.raw(), &mut address, &mut size, &mut prot, &mut max)
    })?;
    Ok(RegionInfo {
        address,
        size,
        protection: VmProt::from_bits_truncate(prot),
        max_protection: VmProt::from_bits_truncate(max),
    })
}
