//! # wasmach: Mach's VM calls between WebAssembly sandboxes
//!
//! Each *task* is a wasmtime instance whose linear memory is its address space, cut into
//! 64 KiB pages with a protection table. Tasks — and the Rust host — move memory between
//! each other with Mach's `vm_read`, `vm_write` and `vm_copy`, and manage it with
//! `vm_allocate`, `vm_deallocate`, `vm_protect`, `vm_region` and `vm_read_overwrite`.
//! A task can only act on a task it holds a port name for. The contract is the project's
//! `docs/spec.md`. A task runs a core module, which imports the calls from `"mach"` (listed in
//! [`MACH_IMPORTS`]), or a component, which imports them as the `wasmach:mach` WIT
//! interfaces of `wit/mach.wit` ([`Task::call_component`] calls its exports).
//!
//! ```
//! use wasmach::{KernReturn, Runtime, VmProt, VM_PAGE_SIZE};
//!
//! # fn main() -> anyhow::Result<()> {
//! let runtime = Runtime::new()?;
//! // A guest that copies page 0 of the task "peer" over its own page 1.
//! let writer = runtime.spawn_bytes(r#"
//!     (module
//!       (import "mach" "bootstrap_look_up" (func $look_up (param i32 i32 i32) (result i32)))
//!       (import "mach" "vm_read_overwrite"
//!         (func $read_overwrite (param i32 i32 i32 i32 i32) (result i32)))
//!       (memory 2)
//!       (data (i32.const 16) "peer")
//!       (func (export "fetch") (result i32)
//!         (drop (call $look_up (i32.const 16) (i32.const 4) (i32.const 0)))
//!         ;; copy the peer's page 0 over our page 1; the size goes to address 4
//!         (call $read_overwrite (i32.load (i32.const 0)) (i32.const 0)
//!               (i32.const 65536) (i32.const 65536) (i32.const 4))))
//! "#)?;
//! let peer = runtime.spawn_bytes("(module (memory 1))")?;
//! runtime.register("peer", &peer);
//!
//! // The host writes into the peer as the caller...
//! peer.vm_write(0, &vec![7u8; VM_PAGE_SIZE as usize])?;
//! // ...the guest copies it into itself...
//! assert_eq!(writer.call::<(), i32>("fetch", ())?, 0); // KERN_SUCCESS
//! assert_eq!(writer.vm_read(VM_PAGE_SIZE, VM_PAGE_SIZE)?, vec![7u8; VM_PAGE_SIZE as usize]);
//!
//! // ...and once the peer's page is read-only, writing it is refused with Mach's code.
//! peer.vm_protect(0, VM_PAGE_SIZE, false, VmProt::READ)?;
//! let err = peer.vm_write(0, &vec![0u8; VM_PAGE_SIZE as usize]).unwrap_err();
//! assert_eq!(err, KernReturn::ProtectionFailure);
//!
//! // The cross-task form: the writer task, as the caller, reads the peer into a new region.
//! let port = writer.insert_port(&peer);
//! let (address, size) = writer.mach().vm_read(port, 0, VM_PAGE_SIZE)?;
//! assert_eq!((address, size), (2 * VM_PAGE_SIZE, VM_PAGE_SIZE));
//! # Ok(())
//! # }
//! ```
//!
//! ## What is protected
//!
//! The protection table binds every host path: no import, host API call or runtime
//! internal reads a page without `READ`, writes a page without `WRITE`, or touches an
//! unallocated page.
//!
//! With [`RuntimeOptions::guest_protection`] (on by default) it binds a core-module task's
//! **own** accesses too, as an MMU binds a Mach task: the task's mapping follows its table
//! (changed with it, under the map lock, by `vm_allocate`, `vm_deallocate`, `vm_protect`,
//! `vm_read`'s new region and `memory.grow`), so a load from an unallocated page or one
//! without `READ` or `WRITE`, or a store to a page without `WRITE`, traps with
//! [`wasmtime::Trap::MemoryOutOfBounds`] and a message naming the address. The
//! bulk-memory instructions (`memory.copy`, `memory.fill`, `memory.init`), which wasmtime
//! runs in host code where a fault would kill the process, are rewritten at load time into
//! calls that check the table under the same lock and trap likewise, with a
//! [`GuestFault`]. A page with `WRITE` but not `READ` is readable by the guest (no MMU maps
//! a page write-only). Component tasks are not bound (wasmtime's canonical ABI reads and
//! writes their memory from host code); with the option off, guests are checked by
//! WebAssembly's bounds only.
//!
//! ```
//! use wasmach::{Runtime, VmProt, VM_PAGE_SIZE};
//! use wasmtime::Trap;
//!
//! # fn main() -> anyhow::Result<()> {
//! let runtime = Runtime::new()?;
//! let task = runtime.spawn_bytes(r#"(module (memory 2)
//!     (func (export "store") (param i32) (i32.store (local.get 0) (i32.const 1))))"#)?;
//! task.vm_protect(VM_PAGE_SIZE, VM_PAGE_SIZE, false, VmProt::READ)?;
//! let err = task.call::<u32, ()>("store", VM_PAGE_SIZE + 8).unwrap_err();
//! assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::MemoryOutOfBounds));
//! assert!(format!("{err:#}").contains("wasm address 0x10008"));
//! task.call::<u32, ()>("store", 8)?; // page 0 is still read-write
//! # Ok(())
//! # }
//! ```
//!
//! ## Concurrency
//!
//! Tasks run in parallel on different threads. Each call holds the maps it touches for its
//! whole duration, so a task's map changes atomically per call. Bytes copied out of a task
//! that is *running* at the same moment may mix old and new values (as `process_vm_readv`
//! does on Linux); for a consistent snapshot, read a task that is not running. Every lock
//! has a rank (a task's store, maps, the bootstrap registry, port namespaces, in that
//! order) and no host-API method can deadlock with a running guest.
//!
//! ## Resources
//!
//! What tasks share through the process is budgeted per task (docs/spec.md §7): the kernel
//! mappings a task's memory is cut into by its protections
//! ([`RuntimeOptions::map_budget`], [`Task::map_usage`]), its memory
//! ([`TaskOptions::max_memory`]), and every host allocation a guest can cause (a service
//! name is at most 128 bytes). A call past a budget gets `KERN_RESOURCE_SHORTAGE` or
//! `KERN_NO_SPACE` and changes nothing; no other task notices.
//!
//! A component's `vm-read` returns its bytes as a `list<u8>`, which the host holds before
//! the canonical ABI copies it into the guest; it is bounded as a core guest's `vm_read`
//! region is: if the caller's allocated pages plus `size / VM_PAGE_SIZE` would exceed its
//! memory quota or, without one, its address space (its memory's declared maximum, else
//! 4 GiB), the call is `KERN_NO_SPACE`, after the port, argument and target checks and
//! before the host allocates anything. A component's `bootstrap-look-up` takes the name as
//! bytes (`list<u8>`; a `string` would trap in the canonical ABI), so the runtime answers
//! `KERN_INVALID_ARGUMENT` for a name over 128 bytes, before reading any byte of it, and
//! for a name that is not UTF-8, as it does for core guests.
//!
//! ## Virtual copies
//!
//! As Mach's, a large `vm_read` or `vm_copy` between task memories is a *virtual* copy by
//! default: the pages are shared copy-on-write, and whoever writes one first gets its own
//! 4 KiB copy in the kernel's page fault. Nothing observable differs from a physical copy.
//! [`RuntimeOptions::copy`] chooses ([`CopyMode::Auto`]: 256 pages or more;
//! [`CopyMode::Virtual`]: every size; [`CopyMode::Physical`]: never), and
//! [`Runtime::virtual_copies`] tells whether this kernel can (docs/spec.md §8).
//!
//! ```
//! use wasmach::{CopyMode, Runtime, RuntimeOptions, VM_PAGE_SIZE};
//!
//! # fn main() -> anyhow::Result<()> {
//! let rt = Runtime::with_options(RuntimeOptions::default().copy(CopyMode::Virtual))?;
//! let (a, b) = (rt.spawn_bytes("(module (memory 1))")?, rt.spawn_bytes("(module (memory 4))")?);
//! b.vm_write(0, &[7; 4 * VM_PAGE_SIZE as usize]).unwrap();
//! let port = a.insert_port(&b);
//! let (copy, size) = a.mach().vm_read(port, 0, 4 * VM_PAGE_SIZE).unwrap();
//! b.vm_write(0, &[9; VM_PAGE_SIZE as usize]).unwrap(); // the source changes...
//! assert_eq!(a.vm_read(copy, size).unwrap(), vec![7; size as usize]); // ...the copy does not
//! # Ok(())
//! # }
//! ```

//! ## Architecture
//!
//! The crate is built in layers (the repository's `ARCHITECTURE.md` draws them): codes and
//! constants; the page table and the raw mapping; the address space; task state, port
//! namespaces and the bootstrap registry; the kernel (one function per call); the doors
//! (guest imports, bulk imports, components, the host API [`Task`]/[`Mach`]); loading; the
//! [`Runtime`]. Each uses only the layers below it.

#![deny(missing_docs)]

// Layers, from the bottom; a module uses only modules of its own layer or below (checked
// by tests/all/layers.rs).
// 0. codes, constants and names: kern, names, lock, trace
mod kern;
mod lock;
mod names;
mod trace;
// 1. the page table and the raw mapping
mod backing;
mod mapping;
mod pool;
mod views;
mod vm_map;
// 2. the address space
mod space;
// 3. task state, port namespaces, the bootstrap registry, data segments
mod bootstrap;
mod port;
mod segments;
mod task_state;
// 4. the kernel: one function per call
mod kernel;
// 5. the doors: guest imports, bulk-instruction imports, components, the host API
mod abi;
mod bulk;
mod component;
mod task;
// 6. loading: module checks, the bulk rewrite, the memory creator
mod creator;
mod module;
mod rewrite;
// 7. the runtime
mod runtime;

/// The wasmtime this crate is built on (its `Trap`, `Val`, component types...), re-exported so
/// that embedders use the same version.
pub use wasmtime;

pub use bulk::GuestFault;
pub use kern::{KERN_SUCCESS, KernResult, KernReturn, MAX_PAGES, VM_PAGE_SIZE, VmProt};
pub use module::{ModuleError, TaskModule};
pub use names::{BULK_MODULE, MACH_IMPORTS, MEMORY_EXPORT};
pub use port::PortName;
pub use runtime::{Runtime, RuntimeOptions, TaskInfo, TaskOptions};
pub use space::CopyMode;
#[doc(hidden)]
pub use task::DebugSnapshot;
pub use task::{Mach, Task, TaskFunc};
pub use vm_map::Region;

/// The page table itself, for the project's own property tests and fuzz target (which
/// compare it with a model of the spec): not part of the API, which shows a task's map
/// through [`Task::regions`], [`Task::vm_region`] and [`Region`].
#[doc(hidden)]
pub mod testing {
    pub use crate::vm_map::{GuestAccess, PageRange, PageState, VmMap};
}

#[cfg(test)]
mod tests {
    #[test]
    fn tasks_and_runtimes_can_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<crate::Task>();
        send_sync::<crate::Runtime>();
        send_sync::<crate::TaskModule>();
    }
}
