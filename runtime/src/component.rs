//! Component tasks: the host side of the `wasmach:mach` WIT package (`wit/mach.wit`), whose
//! bindings are generated from the package itself. Each WIT function is the task's
//! [`Mach`] call of the same name, so a component guest gets docs/spec.md's semantics, codes and
//! check order through the same kernel functions as a core guest; only the shapes differ:
//! out-values are results, `vm-read` returns the bytes as a `list<u8>` (which the canonical
//! ABI copies into the guest), `bootstrap-look-up` takes the name as a `list<u8>`, and a
//! failure is a `kern-error`.
//!
//! Bounded host work: the host holds no more of a component's data than docs/spec.md lets the
//! component hold.
//! - `bootstrap-look-up` reads its name in place in the guest's memory, after checking its
//!   length: a name longer than [`MAX_NAME_LEN`] bytes is `KERN_INVALID_ARGUMENT` before
//!   any byte is read or copied, and so is a name that is not UTF-8 (the runtime answers;
//!   a WIT `string` would have trapped in the canonical ABI instead).
//! - `vm-read` of `size` bytes needs room for them in the caller, counted as a core
//!   guest's `vm_read` counts its new region: if the caller's allocated pages plus
//!   `size / page` would exceed its memory quota ([`TaskOptions::max_memory`]) or, without
//!   one, its address space (the memory's declared maximum, else 4 GiB), the call is
//!   `KERN_NO_SPACE`, decided after the port, argument and target checks (docs/spec.md §3 rule 1.6)
//!   and before the host allocates or copies anything. The room is counted in pages, not
//!   where the guest's allocator puts the list.
//!
//! Growth: a component's memory has no wasmtime handle the host can grow, so the kernel
//! grows it through the task's address space. Loads and stores see the new pages at once;
//! wasmtime's own copy of the size (read by `memory.size` and the bulk-memory bounds
//! checks) catches up at the guest's next `memory.grow`, so a guest that allocates past
//! its memory's end and then uses `memory.copy` there runs `memory.grow(0)` first.
//!
//! [`TaskOptions::max_memory`]: crate::TaskOptions::max_memory

use wasmtime::AsContext;
use wasmtime::component::{HasSelf, Linker, WasmList};

use crate::kern::{KernResult, KernReturn};
use crate::port::PortName;
use crate::task::Mach;
use crate::task_state::TaskData;
use crate::vm_map;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "program",
    });
}

use bindings::wasmach::mach::types::{self, KernError, VmProt};
use bindings::wasmach::mach::vm;

/// The longest service name `bootstrap-look-up` accepts, in bytes (Mach's `name_t`,
/// docs/spec.md §4).
pub(crate) const MAX_NAME_LEN: usize = crate::kernel::MAX_SERVICE_NAME as usize;

/// The instance `wit/mach.wit`'s interface `vm` is imported as.
const VM_INSTANCE: &str = "wasmach:mach/vm@0.1.0";

/// Defines the `wasmach:mach` interfaces in `linker`.
///
/// `bootstrap-look-up` is defined twice: by the generated bindings, whose lifted
/// `Vec<u8>` would copy the whole list (as long as the guest's memory) before the runtime
/// sees its length, and then over it by [`look_up_in_place`], which reads the name in
/// place after checking its length.
pub(crate) fn add_to_linker(linker: &mut Linker<TaskData>) -> anyhow::Result<()> {
    types::add_to_linker::<TaskData, HasSelf<TaskData>>(linker, |data| data)?;
    vm::add_to_linker::<TaskData, HasSelf<TaskData>>(linker, |data| data)?;
    linker.allow_shadowing(true);
    let defined = linker
        .instance(VM_INSTANCE)
        .and_then(|mut vm| vm.func_wrap("bootstrap-look-up", look_up_in_place));
    linker.allow_shadowing(false);
    defined?;
    Ok(())
}

/// `bootstrap-look-up` as the linker defines it: the name stays in the guest's memory
/// (wasmtime checked that the list lies inside it) until its length has passed; at most
/// [`MAX_NAME_LEN`] bytes are copied.
fn look_up_in_place(
    store: wasmtime::StoreContextMut<'_, TaskData>,
    (name,): (WasmList<u8>,),
) -> wasmtime::Result<(Result<u32, KernError>,)> {
    let mut buf = [0u8; MAX_NAME_LEN];
    let result = match buf.get_mut(..name.len()) {
        Some(bytes) => {
            bytes.copy_from_slice(name.as_le_slice(store.as_context()));
            look_up(store.data(), bytes)
        }
        None => refuse_name(store.data()),
    };
    Ok((result,))
}

/// docs/spec.md §4 `bootstrap_look_up` for a name of at most [`MAX_NAME_LEN`] bytes: not UTF-8 →
/// `KERN_INVALID_ARGUMENT`, else the kernel's look-up.
fn look_up(data: &TaskData, name: &[u8]) -> Result<u32, KernError> {
    match std::str::from_utf8(name) {
        Ok(name) => wit(data.mach().bootstrap_look_up(name)).map(PortName::raw),
        Err(_) => refuse_name(data),
    }
}

/// A name refused before the kernel sees it: `KERN_INVALID_ARGUMENT`, logged as the
/// kernel's calls are.
fn refuse_name(data: &TaskData) -> Result<u32, KernError> {
    let code = KernReturn::InvalidArgument;
    crate::trace::trace_call(
        "bootstrap_look_up",
        Some(data.task.id),
        None,
        code.code() as i32,
    );
    Err(code.into())
}

impl From<KernReturn> for KernError {
    fn from(code: KernReturn) -> KernError {
        match code {
            KernReturn::InvalidAddress => KernError::InvalidAddress,
            KernReturn::ProtectionFailure => KernError::ProtectionFailure,
            KernReturn::NoSpace => KernError::NoSpace,
            KernReturn::InvalidArgument => KernError::InvalidArgument,
            KernReturn::Failure => KernError::Failure,
            KernReturn::ResourceShortage => KernError::ResourceShortage,
            KernReturn::InvalidName => KernError::InvalidName,
            KernReturn::InvalidTask => KernError::InvalidTask,
            KernReturn::InvalidValue => KernError::InvalidValue,
            KernReturn::SendInvalidDest => KernError::SendInvalidDest,
            KernReturn::SendInvalidMemory => KernError::SendInvalidMemory,
        }
    }
}

/// The three protection bits, in both types.
const PROT_BITS: [(crate::VmProt, VmProt); 3] = [
    (crate::VmProt::READ, VmProt::READ),
    (crate::VmProt::WRITE, VmProt::WRITE),
    (crate::VmProt::EXECUTE, VmProt::EXECUTE),
];

fn to_wit(prot: crate::VmProt) -> VmProt {
    PROT_BITS
        .iter()
        .filter(|(ours, _)| prot.contains(*ours))
        .fold(VmProt::empty(), |acc, (_, wit)| acc | *wit)
}

fn from_wit(prot: VmProt) -> u32 {
    PROT_BITS
        .iter()
        .filter(|(_, wit)| prot.contains(*wit))
        .fold(0, |acc, (ours, _)| acc | ours.bits())
}

/// A kernel result as the WIT result type.
fn wit<T>(result: KernResult<T>) -> Result<T, KernError> {
    result.map_err(KernError::from)
}

impl TaskData {
    /// The running component's calls.
    fn mach(&self) -> Mach<'_> {
        Mach::new(&self.task, true)
    }
}

impl types::Host for TaskData {}

impl vm::Host for TaskData {
    fn vm_allocate(
        &mut self,
        target: u32,
        address: u32,
        size: u32,
        anywhere: bool,
    ) -> Result<u32, KernError> {
        wit(self
            .mach()
            .vm_allocate(PortName(target), address, size, anywhere))
    }

    fn vm_deallocate(&mut self, target: u32, address: u32, size: u32) -> Result<(), KernError> {
        wit(self.mach().vm_deallocate(PortName(target), address, size))
    }

    fn vm_protect(
        &mut self,
        target: u32,
        address: u32,
        size: u32,
        set_maximum: bool,
        new_protection: VmProt,
    ) -> Result<(), KernError> {
        wit(self.mach().vm_protect(
            PortName(target),
            address,
            size,
            set_maximum,
            from_wit(new_protection),
        ))
    }

    fn vm_read(&mut self, target: u32, address: u32, size: u32) -> Result<Vec<u8>, KernError> {
        wit(self.mach().vm_read_bytes(PortName(target), address, size))
    }

    fn vm_read_overwrite(
        &mut self,
        target: u32,
        address: u32,
        size: u32,
        data: u32,
    ) -> Result<u32, KernError> {
        wit(self
            .mach()
            .vm_read_overwrite(PortName(target), address, size, data))
    }

    fn vm_write(
        &mut self,
        target: u32,
        address: u32,
        data: u32,
        count: u32,
    ) -> Result<(), KernError> {
        wit(self.mach().vm_write(PortName(target), address, data, count))
    }

    fn vm_copy(
        &mut self,
        target: u32,
        source_address: u32,
        count: u32,
        dest_address: u32,
    ) -> Result<(), KernError> {
        wit(self
            .mach()
            .vm_copy(PortName(target), source_address, count, dest_address))
    }

    fn vm_region(&mut self, target: u32, address: u32) -> Result<types::Region, KernError> {
        let region: vm_map::Region = wit(self.mach().vm_region(PortName(target), address))?;
        Ok(types::Region {
            address: region.address,
            // The full 4 GiB cannot be told in a u32: as for core guests (docs/spec.md §4).
            size: region.size.min(crate::kernel::MAX_GUEST_REGION) as u32,
            protection: to_wit(region.protection),
            max_protection: to_wit(region.max_protection),
        })
    }

    fn mach_task_self(&mut self) -> u32 {
        self.mach().task_self().raw()
    }

    /// Never called: [`add_to_linker`] defines `bootstrap-look-up` over this with
    /// [`look_up_in_place`], which does not copy the list first. Should that definition
    /// ever be missing, every look-up fails with `KERN_FAILURE`, which the tests see.
    fn bootstrap_look_up(&mut self, _name: Vec<u8>) -> Result<u32, KernError> {
        Err(KernError::Failure)
    }
}
