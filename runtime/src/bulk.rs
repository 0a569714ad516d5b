//! The bulk-memory instructions under guest protection.
//!
//! With guest protection on, a task's mapping follows its protection table, so its own
//! loads and stores fault on a forbidden page, and wasmtime turns the fault into a trap:
//! they run in JIT code, whose memory accesses wasmtime knows may fault. `memory.copy`,
//! `memory.fill` and `memory.init` are different: wasmtime runs them in host code (a
//! libcall) or inlines small constant ones as accesses it has already bounds-checked, and a
//! fault there kills the process. So the loader ([`crate::rewrite`]) rewrites every one of
//! them (and `data.drop`, which `memory.init` depends on) into a call to an import of
//! [`BULK_MODULE`], defined here: each checks the wasm bounds (a `MemoryOutOfBounds` trap,
//! as the instruction would), then the table under the task's map lock, and only then moves
//! the bytes, still under the lock. A forbidden page is a `MemoryOutOfBounds` trap too,
//! whose message names the address. Holding the lock for the whole instruction is what
//! makes a concurrent `vm_protect` or `vm_deallocate` from another thread safe: it waits
//! for the copy, and the next instruction sees its result.

use wasmtime::{Caller, Linker, Trap};

use crate::names::{BULK_IMPORTS as IMPORTS, BULK_MODULE};
use crate::segments::TaskSegments;
use crate::space::AddressSpace;
use crate::task_state::TaskData;

/// A `memory.copy`, `memory.fill` or `memory.init` of a task that its protection table
/// forbids. It is the context of a [`Trap::MemoryOutOfBounds`], so the error downcasts to
/// both. (A plain load or store that the table forbids is wasmtime's own
/// `MemoryOutOfBounds`, whose message names the address too.)
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{instruction}: memory fault at wasm address {address:#x}: the page is not {} (protection table)",
    if *.write { "writable" } else { "readable" }
)]
pub struct GuestFault {
    /// The instruction.
    pub instruction: &'static str,
    /// The first address it may not touch.
    pub address: u32,
    /// Whether the denied access is a write.
    pub write: bool,
}

/// A trap for an access the wasm bounds forbid, as the instruction itself would trap.
fn out_of_bounds() -> wasmtime::Error {
    wasmtime::Error::new(Trap::MemoryOutOfBounds)
}

/// A trap for an access the protection table forbids.
fn fault(instruction: &'static str, address: u32, write: bool) -> wasmtime::Error {
    wasmtime::Error::new(Trap::MemoryOutOfBounds).context(GuestFault {
        instruction,
        address,
        write,
    })
}

/// Whether `[start, start + len)` lies inside `size` bytes.
fn in_bounds(start: u32, len: u32, size: u64) -> bool {
    u64::from(start) + u64::from(len) <= size
}

/// `memory.copy`: checks, then `memmove`s under the map lock.
fn memory_copy(space: &AddressSpace, dst: u32, src: u32, len: u32) -> wasmtime::Result<()> {
    let state = space.lock();
    let size = space.byte_size();
    if !in_bounds(src, len, size) || !in_bounds(dst, len, size) {
        return Err(out_of_bounds());
    }
    if let Some(a) = state.map.guest_denies(src, len, false) {
        return Err(fault("memory.copy", a, false));
    }
    if let Some(a) = state.map.guest_denies(dst, len, true) {
        return Err(fault("memory.copy", a, true));
    }
    // SAFETY: both ranges lie inside the committed memory (bounds checked against its
    // size), the source's pages are readable and the destination's writable in the table,
    // hence in the mapping, which changes only under the map lock held until the copy is
    // done. `ptr::copy` allows the overlap `memory.copy` allows.
    unsafe { std::ptr::copy(space.at(src), space.at(dst), len as usize) };
    Ok(())
}

/// `memory.fill`.
fn memory_fill(space: &AddressSpace, dst: u32, value: u32, len: u32) -> wasmtime::Result<()> {
    let state = space.lock();
    if !in_bounds(dst, len, space.byte_size()) {
        return Err(out_of_bounds());
    }
    if let Some(a) = state.map.guest_denies(dst, len, true) {
        return Err(fault("memory.fill", a, true));
    }
    // SAFETY: the range lies inside the committed memory and its pages are writable in the
    // table, hence in the mapping, which changes only under the map lock still held.
    unsafe { std::ptr::write_bytes(space.at(dst), value as u8, len as usize) };
    Ok(())
}

/// `memory.init` from segment `index` of the task's module.
fn memory_init(
    space: &AddressSpace,
    segments: Option<&TaskSegments>,
    dst: u32,
    src: u32,
    len: u32,
    index: u32,
) -> wasmtime::Result<()> {
    let bytes = segments.map_or(&[][..], |s| s.bytes(index));
    let state = space.lock();
    if !in_bounds(src, len, bytes.len() as u64) || !in_bounds(dst, len, space.byte_size()) {
        return Err(out_of_bounds());
    }
    if let Some(a) = state.map.guest_denies(dst, len, true) {
        return Err(fault("memory.init", a, true));
    }
    // SAFETY: the destination lies inside the committed memory and its pages are writable
    // in the table, hence in the mapping (which changes only under the map lock still
    // held); the source is `len` bytes of the segment, host memory disjoint from it.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr().add(src as usize),
            space.at(dst),
            len as usize,
        )
    };
    Ok(())
}

/// Defines the [`BULK_MODULE`] imports in `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<TaskData>) -> anyhow::Result<()> {
    linker.func_wrap(
        BULK_MODULE,
        IMPORTS[0].0,
        |c: Caller<'_, TaskData>, dst: u32, src: u32, len: u32| {
            memory_copy(&c.data().task.space, dst, src, len)
        },
    )?;
    linker.func_wrap(
        BULK_MODULE,
        IMPORTS[1].0,
        |c: Caller<'_, TaskData>, dst: u32, value: u32, len: u32| {
            memory_fill(&c.data().task.space, dst, value, len)
        },
    )?;
    linker.func_wrap(
        BULK_MODULE,
        IMPORTS[2].0,
        |c: Caller<'_, TaskData>, dst: u32, src: u32, len: u32, index: u32| {
            let data = c.data();
            memory_init(
                &data.task.space,
                data.segments.as_ref(),
                dst,
                src,
                len,
                index,
            )
        },
    )?;
    linker.func_wrap(
        BULK_MODULE,
        IMPORTS[3].0,
        |mut c: Caller<'_, TaskData>, index: u32| {
            if let Some(segments) = c.data_mut().segments.as_mut() {
                segments.drop_segment(index);
            }
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_faults_name_the_address() {
        let e = fault("memory.copy", 0x20000, true);
        assert_eq!(e.downcast_ref::<Trap>(), Some(&Trap::MemoryOutOfBounds));
        assert!(format!("{e:#}").contains("0x20000"), "{e:#}");
    }
}
