//! Component tasks: the host side of the `wasmach:mach` WIT package (`wit/mach.wit`), whose
//! bindings are generated from the package itself. Each WIT function is the task's
//! [`Mach`] call of the same name, so a component guest gets SPEC's semantics, codes and
//! check order through the same kernel functions as a core guest; only the shapes differ:
//! out-values are results, `vm-read` returns the bytes as a `list<u8>` (which the canonical
//! ABI copies into the guest), and a failure is a `kern-error`.
//!
//! Growth: a component's memory has no wasmtime handle the host can grow, so the kernel
//! grows it through the task's address space. Loads and stores see the new pages at once;
//! wasmtime's own copy of the size (read by `memory.size` and the bulk-memory bounds
//! checks) catches up at the guest's next `memory.grow`, so a guest that allocates past
//! its memory's end and then uses `memory.copy` there runs `memory.grow(0)` first.

use wasmtime::component::{HasSelf, Linker};

use crate::kern::{KernResult, KernReturn};
use crate::port::PortName;
use crate::task::{Mach, TaskData};
use crate::vm_map;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "program",
    });
}

use bindings::wasmach::mach::types::{self, KernError, VmProt};
use bindings::wasmach::mach::vm;

/// Defines the `wasmach:mach` interfaces in `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<TaskData>) -> anyhow::Result<()> {
    types::add_to_linker::<TaskData, HasSelf<TaskData>>(linker, |data| data)?;
    vm::add_to_linker::<TaskData, HasSelf<TaskData>>(linker, |data| data)?;
    Ok(())
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
            // The full 4 GiB cannot be told in a u32: as for core guests (SPEC §4).
            size: region.size.min(crate::kernel::MAX_GUEST_REGION) as u32,
            protection: to_wit(region.protection),
            max_protection: to_wit(region.max_protection),
        })
    }

    fn mach_task_self(&mut self) -> u32 {
        self.mach().task_self().raw()
    }

    fn bootstrap_look_up(&mut self, name: String) -> Result<u32, KernError> {
        wit(self.mach().bootstrap_look_up(&name)).map(PortName::raw)
    }
}
