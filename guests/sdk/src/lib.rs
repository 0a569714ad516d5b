//! Guest-side SDK for wasmach tasks: the Mach VM calls
//! (`vm_allocate`, `vm_read`, `vm_write`, `vm_copy`, ...) that a WebAssembly task imports from
//! the module `"mach"`, as safe Rust.
//!
//! - The raw imports, exactly as the runtime's docs/spec.md §4 declares them, are in [`sys`].
//! - A failed call's code is a [`KernReturn`] (success is `Ok`, see [`Result`]).
//! - A task is named by a [`Port`] in the caller's namespace ([`Port::task_self`],
//!   [`bootstrap_look_up`]); protections are [`VmProt`]s.
//! - The calls: [`vm_allocate`], [`vm_allocate_fixed`], [`vm_deallocate`], [`vm_protect`],
//!   [`vm_read`], [`vm_read_overwrite`], [`vm_write`], [`vm_copy`], [`vm_region`],
//!   [`mach_task_self`], [`bootstrap_look_up`]. Those that write, free or reprotect memory at
//!   a bare address act on other tasks only; on the caller's own memory they go through the
//!   type that owns it (see *Soundness*), or through their `unsafe` `*_unchecked` forms.
//! - A [`PageBuf`] is a page-aligned buffer of the caller's own, a `[u8]` of Rust's, as
//!   `vm_write` and `vm_read_overwrite` want; a [`Region`] is an owned page range in any task,
//!   which other tasks may write, so its bytes are copied in and out
//!   ([`Region::read_into`], [`Region::write_from`]) rather than borrowed. Both deallocate
//!   their pages when dropped.
//!
//! The crate is `no_std` and allocates nothing. On targets other than wasm32 every call is a
//! stub failing with [`KernReturn::Failure`] (and [`Port::task_self`] is
//! [`sys::HOST_SELF_NAME`]), so code using it builds and tests on the host.
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
//! Safe code using this crate cannot cause undefined behaviour by itself: no safe function
//! makes the kernel write, free or reprotect memory that Rust uses (its stack, statics or
//! heap, or memory a live reference points into), except through a `&mut` or an owned value
//! it was handed, as `read(2)` writes the `&mut [u8]` it is given. What that rests on, and
//! where it stops:
//!
//! **Rust's memory and shared pages.** The caller's memory is of two kinds here.
//!
//! - *Rust's memory*: its stack, statics and heap, and every [`PageBuf`]. Rust makes
//!   references to it (a `PageBuf` is a `[u8]`), and the compiler assumes that what a
//!   reference points to changes only through the program itself.
//! - *Shared pages*: the pages of a [`Region`]. No reference to them is ever made: their
//!   bytes are copied in and out with volatile accesses ([`Region::read_into`],
//!   [`Region::read_array`], [`Region::write_from`], [`Region::fill`]), which is how Rust
//!   accesses memory an agent outside the program changes (memory-mapped I/O): every
//!   access is made, none is merged with or reused from another. So other tasks may write
//!   them at any moment (a copy racing with a writer may mix old and new 8-byte words), and
//!   the caller's own calls may write, copy into, reprotect and free them (the region's
//!   `vm_*` methods, dropping it). A region of another task is that task's memory, reached
//!   only through calls.
//!
//! **The caller's own calls.** The calls that write the caller's memory are made safe by
//! what they can reach:
//!
//! - [`vm_allocate`], [`vm_allocate_fixed`] and [`vm_read`] write only pages that were
//!   unallocated, which Rust never uses; [`vm_read_overwrite`] writes only the `&mut [u8]` it
//!   is given (no slice of that buffer can be alive across the call); [`PageBuf::vm_copy`]
//!   takes `&mut self`, and a region's methods act only on its own pages.
//! - [`vm_write`], [`vm_copy`], [`vm_deallocate`] and [`vm_protect`] take a bare address,
//!   which could be the stack or a buffer that is borrowed. On another task they cannot
//!   reach the caller's memory; with the caller itself as the target they return
//!   [`KernReturn::InvalidTask`] without calling the kernel. (A task has one name in its
//!   namespace, so [`Port::is_task_self`] recognises every port for the caller.) Their
//!   `unsafe` forms ([`vm_write_unchecked`], ...) state in `# Safety` what the caller must
//!   then guarantee.
//! - Reading the caller's own memory through the kernel ([`vm_read`], [`vm_read_overwrite`]
//!   or [`vm_write`]'s source on any of it) copies bytes without making a reference: the
//!   copy holds whatever bytes were there.
//!
//! A program moves pages between the two kinds with [`PageBuf::into_region`] (by value: no
//! slice of the buffer outlives it) and [`Region::into_page_buf`] (which checks that every
//! page is readable and writable, and is the program's statement that no other task writes
//! them any more).
//!
//! **What this crate cannot promise: writers outside the task.** The host, and every task
//! that holds a port to the caller, can write, copy into, reprotect or free *any* page of
//! the caller at any time: its stack, its statics and its `PageBuf`s included. A task gets
//! such a port from the host (`Task::insert_port`), or from the bootstrap when the host
//! registered the caller under a name (then every task of the runtime can
//! `bootstrap_look_up` it). That is outside Rust's model, as a debugger, or writing
//! `/proc/self/mem` on Linux, is for a native program, and no library can prevent it: the
//! guarantee above holds as long as nobody outside the task writes, reprotects or frees
//! Rust's memory. Between tasks this is a matter of protocol: a task that gives its port
//! out says which of its pages others may write, and keeps those as [`Region`]s (the demo's
//! WAT mailbox offers its page 1 and the pages the producer allocates there; a Rust mailbox
//! would hold them as regions and read them with [`Region::read_into`]). A peer that writes
//! elsewhere breaks the task as a stray pointer would; with guest protection on (the
//! runtime's default), a peer that takes away the protection of, or frees, a page Rust uses
//! makes the task trap at its next access to that page.
//!
//! Traps are not undefined behaviour: a volatile access to a region page that the caller
//! itself made inaccessible ([`Region::vm_protect`]) traps, as a panic does with
//! `panic = "abort"`.
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
mod volatile;

pub use region::{PageBuf, Region};
pub use types::{KernReturn, Port, Result, VmProt};
pub use vm::{
    RegionInfo, bootstrap_look_up, mach_task_self, vm_allocate, vm_allocate_fixed, vm_copy,
    vm_copy_unchecked, vm_deallocate, vm_deallocate_unchecked, vm_protect, vm_protect_unchecked,
    vm_read, vm_read_overwrite, vm_region, vm_write, vm_write_unchecked,
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
        assert_eq!(Port::task_self(), Port::from_raw(sys::HOST_SELF_NAME));
        assert!(Port::task_self().is_task_self());
        assert!(!Port::NULL.is_task_self());
        assert_eq!(bootstrap_look_up("mailbox"), Err(KernReturn::Failure));
        assert_eq!(PageBuf::new(PAGE_SIZE).err(), Some(KernReturn::Failure));
        assert_eq!(vm_region(Port::NULL, 0), Err(KernReturn::Failure));
    }

    /// Another task's name (the runtime's second name in a namespace).
    const PEER: Port = Port::from_raw(0x203);

    #[test]
    fn destructive_calls_refuse_the_caller_itself_before_calling() {
        let me = Port::task_self();
        let page = [0u8; 16];
        assert_eq!(vm_write(me, 0, &page), Err(KernReturn::InvalidTask));
        assert_eq!(
            vm_copy(me, PAGE_SIZE, PAGE_SIZE, 0),
            Err(KernReturn::InvalidTask)
        );
        assert_eq!(
            vm_deallocate(me, 0, PAGE_SIZE),
            Err(KernReturn::InvalidTask)
        );
        assert_eq!(
            vm_protect(me, 0, PAGE_SIZE, false, VmProt::NONE),
            Err(KernReturn::InvalidTask)
        );
        // Even with nothing to do: the refusal depends on the target alone.
        assert_eq!(vm_deallocate(me, 0, 0), Err(KernReturn::InvalidTask));
    }

    #[test]
    fn destructive_calls_on_other_tasks_reach_the_kernel() {
        // The host stubs answer KERN_FAILURE: the call was made.
        let page = [0u8; 16];
        for target in [PEER, Port::NULL] {
            assert_eq!(vm_write(target, 0, &page), Err(KernReturn::Failure));
            assert_eq!(
                vm_copy(target, PAGE_SIZE, PAGE_SIZE, 0),
                Err(KernReturn::Failure)
            );
            assert_eq!(
                vm_deallocate(target, 0, PAGE_SIZE),
                Err(KernReturn::Failure)
            );
            assert_eq!(
                vm_protect(target, 0, PAGE_SIZE, false, VmProt::NONE),
                Err(KernReturn::Failure)
            );
        }
    }

    #[test]
    fn unchecked_forms_call_the_kernel_for_the_caller_too() {
        let me = Port::task_self();
        // SAFETY: on the host the calls are stubs that touch no memory.
        unsafe {
            assert_eq!(
                vm_write_unchecked(me, 0, &[0; 16]),
                Err(KernReturn::Failure)
            );
            assert_eq!(
                vm_copy_unchecked(me, PAGE_SIZE, PAGE_SIZE, 0),
                Err(KernReturn::Failure)
            );
            assert_eq!(
                vm_deallocate_unchecked(me, 0, PAGE_SIZE),
                Err(KernReturn::Failure)
            );
            assert_eq!(
                vm_protect_unchecked(me, 0, PAGE_SIZE, false, VmProt::NONE),
                Err(KernReturn::Failure)
            );
        }
    }

    #[test]
    fn non_destructive_calls_take_any_target() {
        let me = Port::task_self();
        let mut page = [0u8; 16];
        for target in [me, PEER] {
            assert_eq!(
                vm_read_overwrite(target, 0, &mut page),
                Err(KernReturn::Failure)
            );
            assert_eq!(
                vm_read(target, 0, PAGE_SIZE).err(),
                Some(KernReturn::Failure)
            );
            assert_eq!(
                vm_allocate(target, PAGE_SIZE).err(),
                Some(KernReturn::Failure)
            );
            assert_eq!(
                vm_allocate_fixed(target, PAGE_SIZE, PAGE_SIZE).err(),
                Some(KernReturn::Failure)
            );
            assert_eq!(vm_region(target, 0), Err(KernReturn::Failure));
        }
    }
}
