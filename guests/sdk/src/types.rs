//! Codes, protections and port names.

use core::fmt;
use core::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign};

use crate::sys;

/// A failed call's `kern_return_t` (docs/spec.md §2): GNU Mach's values, with the same variant names
/// as the runtime's `wasmach::KernReturn`. Success (`KERN_SUCCESS`, 0) is `Ok`.
///
/// The runtime returns no other values. Should a call ever return an unknown nonzero code,
/// the wrappers report it as [`KernReturn::Failure`] (see [`KernReturn::check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum KernReturn {
    /// `KERN_INVALID_ADDRESS` (1): a page of the range is not allocated or lies past the
    /// address space.
    InvalidAddress = 1,
    /// `KERN_PROTECTION_FAILURE` (2): a page of the range lacks the needed protection, or a
    /// protection above the maximum was asked for.
    ProtectionFailure = 2,
    /// `KERN_NO_SPACE` (3): no room for the allocation, a fixed allocation over allocated
    /// pages, or over the task's memory quota.
    NoSpace = 3,
    /// `KERN_INVALID_ARGUMENT` (4): a misaligned value, bad protection bits, a wrapping range
    /// or a bad pointer of the caller.
    InvalidArgument = 4,
    /// `KERN_FAILURE` (5). Also what the host stubs return, and what an unknown code becomes.
    Failure = 5,
    /// `KERN_RESOURCE_SHORTAGE` (6): the runtime could not get the resources for the call.
    ResourceShortage = 6,
    /// `KERN_INVALID_NAME` (15): `bootstrap_look_up` of a name nobody registered.
    InvalidName = 15,
    /// `KERN_INVALID_TASK` (16). The runtime does not return it from the VM calls; this SDK
    /// does, before calling the kernel, when the call does not apply to its target task: a
    /// free function that writes, frees or reprotects memory at a bare address
    /// ([`vm_write`](crate::vm_write), [`vm_copy`](crate::vm_copy),
    /// [`vm_deallocate`](crate::vm_deallocate), [`vm_protect`](crate::vm_protect)) called on
    /// the caller itself, or a byte copy ([`Region::read_into`](crate::Region::read_into), ...)
    /// of a region in another task.
    InvalidTask = 16,
    /// `KERN_INVALID_VALUE` (18).
    InvalidValue = 18,
    /// `MACH_SEND_INVALID_DEST` (0x10000003): the target port name is null, unknown in the
    /// caller's namespace, or names a terminated task.
    SendInvalidDest = 0x1000_0003,
    /// `MACH_SEND_INVALID_MEMORY` (0x1000000c): the caller's own data buffer for `vm_write`
    /// is not allocated and readable.
    SendInvalidMemory = 0x1000_000c,
}

/// The result of a Mach call: `Ok` is `KERN_SUCCESS`.
pub type Result<T> = core::result::Result<T, KernReturn>;

impl KernReturn {
    /// Every code, in value order.
    pub const ALL: [KernReturn; 11] = [
        KernReturn::InvalidAddress,
        KernReturn::ProtectionFailure,
        KernReturn::NoSpace,
        KernReturn::InvalidArgument,
        KernReturn::Failure,
        KernReturn::ResourceShortage,
        KernReturn::InvalidName,
        KernReturn::InvalidTask,
        KernReturn::InvalidValue,
        KernReturn::SendInvalidDest,
        KernReturn::SendInvalidMemory,
    ];

    /// The numeric `kern_return_t` value.
    pub const fn code(self) -> u32 {
        self as u32
    }

    /// The code with this value, or `None` for `KERN_SUCCESS` (0) and unknown values.
    pub const fn from_code(code: u32) -> Option<KernReturn> {
        let mut i = 0;
        while i < Self::ALL.len() {
            if Self::ALL[i] as u32 == code {
                return Some(Self::ALL[i]);
            }
            i += 1;
        }
        None
    }

    /// A raw call's return value as a `Result`: `0` is `Ok(())`, a known code is that code,
    /// and an unknown nonzero value is [`KernReturn::Failure`].
    pub const fn check(code: u32) -> Result<()> {
        if code == sys::KERN_SUCCESS {
            Ok(())
        } else {
            match Self::from_code(code) {
                Some(k) => Err(k),
                None => Err(KernReturn::Failure),
            }
        }
    }

    /// Mach's name for the code, such as `"KERN_PROTECTION_FAILURE"`.
    pub const fn name(self) -> &'static str {
        match self {
            KernReturn::InvalidAddress => "KERN_INVALID_ADDRESS",
            KernReturn::ProtectionFailure => "KERN_PROTECTION_FAILURE",
            KernReturn::NoSpace => "KERN_NO_SPACE",
            KernReturn::InvalidArgument => "KERN_INVALID_ARGUMENT",
            KernReturn::Failure => "KERN_FAILURE",
            KernReturn::ResourceShortage => "KERN_RESOURCE_SHORTAGE",
            KernReturn::InvalidName => "KERN_INVALID_NAME",
            KernReturn::InvalidTask => "KERN_INVALID_TASK",
            KernReturn::InvalidValue => "KERN_INVALID_VALUE",
            KernReturn::SendInvalidDest => "MACH_SEND_INVALID_DEST",
            KernReturn::SendInvalidMemory => "MACH_SEND_INVALID_MEMORY",
        }
    }
}

/// `NAME (code)`, the code in hex for the message-level ones: `KERN_PROTECTION_FAILURE (2)`,
/// `MACH_SEND_INVALID_DEST (0x10000003)`; as the runtime prints them.
impl fmt::Display for KernReturn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code() >= 0x1000_0000 {
            write!(f, "{} ({:#x})", self.name(), self.code())
        } else {
            write!(f, "{} ({})", self.name(), self.code())
        }
    }
}

impl core::error::Error for KernReturn {}

/// A `vm_prot_t`: a set of `READ`, `WRITE` and `EXECUTE` bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VmProt(u32);

impl VmProt {
    /// `VM_PROT_NONE` (0).
    pub const NONE: VmProt = VmProt(0);
    /// `VM_PROT_READ` (1).
    pub const READ: VmProt = VmProt(1);
    /// `VM_PROT_WRITE` (2).
    pub const WRITE: VmProt = VmProt(2);
    /// `VM_PROT_EXECUTE` (4).
    pub const EXECUTE: VmProt = VmProt(4);
    /// `VM_PROT_DEFAULT` (3): read and write.
    pub const DEFAULT: VmProt = VmProt(3);
    /// `VM_PROT_ALL` (7).
    pub const ALL: VmProt = VmProt(7);

    /// The protection with these bits, or `None` if a bit outside [`VmProt::ALL`] is set.
    pub const fn from_bits(bits: u32) -> Option<VmProt> {
        if bits & !Self::ALL.0 == 0 {
            Some(VmProt(bits))
        } else {
            None
        }
    }

    /// The protection with these bits; bits outside [`VmProt::ALL`] are dropped.
    pub const fn from_bits_truncate(bits: u32) -> VmProt {
        VmProt(bits & Self::ALL.0)
    }

    /// The bits, as a `vm_prot_t`.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: VmProt) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for VmProt {
    type Output = VmProt;
    fn bitor(self, rhs: VmProt) -> VmProt {
        VmProt(self.0 | rhs.0)
    }
}

impl BitOrAssign for VmProt {
    fn bitor_assign(&mut self, rhs: VmProt) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for VmProt {
    type Output = VmProt;
    fn bitand(self, rhs: VmProt) -> VmProt {
        VmProt(self.0 & rhs.0)
    }
}

impl BitAndAssign for VmProt {
    fn bitand_assign(&mut self, rhs: VmProt) {
        self.0 &= rhs.0;
    }
}

/// `rwx` style: `r--`, `rw-`, `---`.
impl fmt::Display for VmProt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bit = |b: VmProt, c: char| if self.contains(b) { c } else { '-' };
        write!(
            f,
            "{}{}{}",
            bit(VmProt::READ, 'r'),
            bit(VmProt::WRITE, 'w'),
            bit(VmProt::EXECUTE, 'x')
        )
    }
}

impl fmt::Debug for VmProt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VmProt({self})")
    }
}

/// A port name: names a task inside the caller's port namespace (a capability). The runtime
/// chooses the values; get them from [`Port::task_self`] and
/// [`bootstrap_look_up`](crate::bootstrap_look_up). Any other value is an unknown name, and a
/// call through it fails with [`KernReturn::SendInvalidDest`], so making one from a number
/// is safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Port(u32);

impl Port {
    /// `MACH_PORT_NULL` (0): names nothing.
    pub const NULL: Port = Port(0);

    /// `mach_task_self()`: the caller's own name for itself.
    pub fn task_self() -> Port {
        Port(sys::mach_task_self())
    }

    /// The port with this name.
    pub const fn from_raw(name: u32) -> Port {
        Port(name)
    }

    /// The name, as the raw calls take it.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// Whether this is [`Port::NULL`].
    pub const fn is_null(self) -> bool {
        self.0 == 0
    }

    /// Whether this names the caller itself. One task has one name in a namespace (docs/spec.md §4,
    /// `bootstrap_look_up`), so no other value names the caller, whatever call it came from.
    pub fn is_task_self(self) -> bool {
        !self.is_null() && self == Port::task_self()
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {}", self.0)
    }
}
