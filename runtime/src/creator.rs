//! Loading: the engine's `MemoryCreator`, through which wasmtime gets each task's memory
//! from the runtime: the [`AddressSpace`] the spawn in progress prepared, so that the
//! runtime owns every task's mapping.

use std::cell::RefCell;
use std::sync::Arc;

use wasmtime::{LinearMemory, MemoryCreator, MemoryType};

use crate::kern::ADDRESS_SPACE_END;
use crate::mapping::GUARD_BYTES;
use crate::space::AddressSpace;

thread_local! {
    /// The address space of the task being spawned on this thread, handed from
    /// `Runtime::spawn_with` to [`SpaceCreator::new_memory`].
    static PENDING: RefCell<Option<Arc<AddressSpace>>> = const { RefCell::new(None) };
}

/// Runs `f` (which creates the task's wasmtime memory) with `space` as the space the
/// engine's memory creator hands out.
pub(crate) fn with_pending_space<R>(space: Arc<AddressSpace>, f: impl FnOnce() -> R) -> R {
    PENDING.with(|p| *p.borrow_mut() = Some(space));
    let result = f();
    PENDING.with(|p| p.borrow_mut().take());
    result
}

/// The engine's `MemoryCreator`: adopts the address space prepared by the spawn in
/// progress on this thread, so that the runtime owns every task's mapping.
pub(crate) struct SpaceCreator;

// SAFETY: the memories returned honour the contract of `new_memory`: the reservation is
// `reserved_size_in_bytes` (4 GiB) plus at least `guard_size_in_bytes` of `PROT_NONE`
// guard, the base never moves, the memory is zero-filled, and `byte_size` bytes are
// accessible.
unsafe impl MemoryCreator for SpaceCreator {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        _maximum: Option<usize>,
        reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        let space = PENDING
            .with(|p| p.borrow_mut().take())
            .ok_or("wasmach: a memory can only be created by spawning a task")?;
        if reserved_size_in_bytes.is_some_and(|r| r as u64 > ADDRESS_SPACE_END)
            || guard_size_in_bytes as u64 > GUARD_BYTES
        {
            return Err(
                "wasmach: the engine asked for a larger reservation than a task has".into(),
            );
        }
        if space.byte_size() != minimum as u64 {
            return Err(format!(
                "wasmach: memory of {minimum} bytes requested, {} prepared",
                space.byte_size()
            ));
        }
        Ok(Box::new(TaskMemory { space }))
    }
}

/// The `LinearMemory` wasmtime sees: a view of the task's [`AddressSpace`].
struct TaskMemory {
    space: Arc<AddressSpace>,
}

// SAFETY: `as_ptr` is the fixed base of a reservation of 4 GiB + guard, of which
// `byte_size` bytes are committed; `grow_to` commits more without moving it. With guest
// protection, committed pages carry the protections of the task's table (a forbidden one
// faults, and JIT code's faults are traps); wasmtime's own host code never reads or writes
// them: the bulk instructions are rewritten into the runtime's checked calls, and the host
// reaches the memory only through the kernel's checked paths. (Component tasks, whose
// memory the canonical ABI reads and writes from host code, are never protected.)
unsafe impl LinearMemory for TaskMemory {
    fn byte_size(&self) -> usize {
        self.space.byte_size() as usize
    }

    fn byte_capacity(&self) -> usize {
        ADDRESS_SPACE_END as usize
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        self.space
            .grow_to(new_size as u64)
            .map_err(wasmtime::Error::from_anyhow)
    }

    fn as_ptr(&self) -> *mut u8 {
        self.space.base()
    }
}
