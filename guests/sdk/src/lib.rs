//! Guest-side SDK for wasmach tasks: the Mach VM calls
//! (`vm_allocate`, `vm_read`, `vm_write`, `vm_copy`, ...) that a WebAssembly task imports from
//! the module `"mach"`, as safe Rust.
//!
//! - The raw imports, exactly as the runtime's SPEC §4 declares them, are in [`sys`].
//! - A failed call's code is a [`KernReturn`] (success is `Ok`, see [`Result`]).
//! - A task is named by a [`Port`] in the caller's namespace ([`Port::task_self`],
//!   [`bootstrap_look_up`]); protections are [`VmProt`]s.
//! - The calls: [`vm_allocate`], [`vm_allocate_fixed`], [`vm_deallocate`], [`vm_protect`],
//!   [`vm_read`], [`vm_read_overwrite`], [`vm_write`], [`vm_copy`], [`vm_region`],
//!   [`mach_task_self`], [`bootstrap_look_up`].
//! - A [`Region`] is an owned page range in some task, deallocated on drop; a [`PageBuf`] is
//!   one in the caller's own memory, usable as a `[u8]` and page-aligned, as `vm_write` and
//!   `vm_read_overwrite` need.
//!
//! The crate is `no_std` and allocates nothing. On targets other than wasm32 every call is a
//! stub failing with [`KernReturn::Failure`], so code using it builds and tests on the host.
//!
//! # Example
//!
//! A task that fills a page of its own and copies it into the task registered as
//! `"mailbox"`, then reads it back:
//!
//! ```no_run
//! use wasmach_guest::{PAGE_SIZE, PageBuf, Result, bootstrap_look_up, vm_read, vm_write};
//!
//! fn send() -> Result<bool> {
//!     let mailbox = bootstrap_look_up("mailbox")?;
//!     // One zero-filled, page-aligned page in our own memory, freed when dropped.
//!     let mut page = PageBuf::new(PAGE_SIZE)?;
//!     page.fill(0x2a);
//!     // Into the mailbox's page 1 (which it allocated itself).
//!     vm_write(mailbox, 0x10000, &page)?;
//!     // A snapshot of that page, in a new buffer of ours.
//!     let copy = vm_read(mailbox, 0x10000, PAGE_SIZE)?;
//!     Ok(copy[..] == page[..])
//! }
//!
//! #[unsafe(no_mangle)]
//! pub extern "C" fn _start() -> i64 {
//!     match send() {
//!         Ok(same) => same as i64,
//!         Err(e) => -(e.code() as i64),
//!     }
//! }
//! ```
//!
//! # Soundness
//!
//! Nothing here needs `unsafe` from the caller, but the kernel is an agent outside Rust's
//! model, as `/proc/self/mem` is on Linux:
//!
//! - The bytes of a [`Region`] or [`PageBuf`] of the caller belong to it, yet another task
//!   may `vm_write` or `vm_copy` into those pages at any time (and in a `--parallel` run,
//!   while the caller reads them), as with a shared-memory mapping. Treat the slice's
//!   contents as data someone else may change.
//! - [`vm_write`], [`vm_copy`] and [`vm_deallocate`] with the caller itself as the target
//!   act on whatever address they are given, including memory Rust uses (its stack, its
//!   statics, a live buffer). Target only ranges you own (a [`Region`] you hold), or other
//!   tasks.
//!
//! # Memory size
//!
//! [`vm_allocate`] on the caller itself and [`vm_read`] may grow the caller's memory (the
//! pages skipped over stay unallocated). The runtime grows a core module's memory through
//! wasmtime, so `memory.size` and the bulk-memory instructions see the new size at once.
//! (Component guests, which use the WIT bindings instead of this crate, run `memory.grow(0)`
//! after such a call: see the `component` program.)
#![no_std]
#![warn(missing_docs)]

mod region;
pub mod sys;
mod types;
mod vm;

pub use region::{PageBuf, Region};
pub use types::{KernReturn, Port, Result, VmProt};
pub use vm::{
    RegionInfo, bootstrap_look_up, mach_task_self, vm_allocate, vm_allocate_fixed, vm_copy,
    vm_deallocate, vm_protect, vm_read, vm_read_overwrite, vm_region, vm_write,
};

/// The page size: 64 KiB, the wasm page (`VM_PAGE_SIZE`).
pub const PAGE_SIZE: u32 = 65536;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for k in KernReturn::ALL {
            assert_eq!(KernReturn::from_code(k.code()), Some(k));
            assert_eq!(KernReturn::check(k.code()), Err(k));
        }
        assert_eq!(KernReturn::from_code(0), None);
        assert_eq!(KernReturn::check(0), Ok(()));
        assert_eq!(KernReturn::check(7), Err(KernReturn::Failure));
        assert_eq!(KernReturn::ProtectionFailure.code(), 2);
        assert_eq!(KernReturn::SendInvalidMemory.code(), 0x1000_000c);
        assert_eq!(
            KernReturn::ProtectionFailure.name(),
            "KERN_PROTECTION_FAILURE"
        );
    }

    #[test]
    fn prot_bits() {
        assert_eq!(VmProt::DEFAULT, VmProt::READ | VmProt::WRITE);
        assert_eq!(VmProt::ALL, VmProt::DEFAULT | VmProt::EXECUTE);
        assert!(VmProt::ALL.contains(VmProt::EXECUTE));
        assert!(!VmProt::READ.contains(VmProt::WRITE));
        assert_eq!(VmProt::ALL & VmProt::WRITE, VmProt::WRITE);
        assert_eq!(VmProt::from_bits(8), None);
        assert_eq!(VmProt::from_bits(5).map(VmProt::bits), Some(5));
        assert_eq!(VmProt::from_bits_truncate(9), VmProt::READ);
    }

    #[test]
    fn host_stubs_fail() {
        assert_eq!(Port::task_self(), Port::NULL);
        assert_eq!(bootstrap_look_up("mailbox"), Err(KernReturn::Failure));
        assert_eq!(PageBuf::new(PAGE_SIZE).err(), Some(KernReturn::Failure));
        assert_eq!(vm_region(Port::NULL, 0), Err(KernReturn::Failure));
    }
}
