//! Mach's return codes, protections and page constants (docs/spec.md §1–2).

use std::fmt;

/// The size of a page of a task's address space: 64 KiB, the WebAssembly page.
pub const VM_PAGE_SIZE: u32 = 65536;

/// `log2(VM_PAGE_SIZE)`.
pub(crate) const PAGE_SHIFT: u32 = 16;

/// The number of pages in a full 4 GiB wasm32 address space.
pub const MAX_PAGES: u32 = 65536;

/// One past the last byte of a wasm32 address space (4 GiB), as a `u64`.
pub(crate) const ADDRESS_SPACE_END: u64 = 1 << 32;

/// A failed Mach call: GNU Mach's `kern_return_t` values, and the two message-level codes
/// Mach returns when a call cannot even be delivered.
///
/// `KERN_SUCCESS` is not a variant: success is the `Ok` side of a [`KernResult`].
///
/// ```
/// use wasmach::KernReturn;
/// assert_eq!(KernReturn::InvalidAddress.code(), 1);
/// assert_eq!(KernReturn::from_code(0x1000_0003), Some(KernReturn::SendInvalidDest));
/// assert_eq!(KernReturn::ProtectionFailure.to_string(), "KERN_PROTECTION_FAILURE (2)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum KernReturn {
    /// `KERN_INVALID_ADDRESS` (1): a page of the range is not allocated or lies past the
    /// address space.
    InvalidAddress = 1,
    /// `KERN_PROTECTION_FAILURE` (2): a page of the range lacks the needed protection, or
    /// `vm_protect` asks for more than a page's maximum.
    ProtectionFailure = 2,
    /// `KERN_NO_SPACE` (3): no room for the allocation, a fixed allocation over allocated
    /// pages, over the task's memory quota, or no region at or above the address
    /// (`vm_region`).
    NoSpace = 3,
    /// `KERN_INVALID_ARGUMENT` (4): a misaligned value, bad protection bits, a wrapping
    /// range, a bad pointer of the caller or a bad service name.
    InvalidArgument = 4,
    /// `KERN_FAILURE` (5).
    Failure = 5,
    /// `KERN_RESOURCE_SHORTAGE` (6): the runtime could not get the resources for the call:
    /// a change past the task's mapping budget, a failed `mprotect`, or growing a task that
    /// is running on another thread.
    ResourceShortage = 6,
    /// `KERN_INVALID_NAME` (15): `bootstrap_look_up` of a name nobody registered.
    InvalidName = 15,
    /// `KERN_INVALID_TASK` (16).
    InvalidTask = 16,
    /// `KERN_INVALID_VALUE` (18).
    InvalidValue = 18,
    /// `MACH_SEND_INVALID_DEST` (0x10000003): the target port name is null, unknown in the
    /// caller's namespace, or names a terminated task.
    SendInvalidDest = 0x1000_0003,
    /// `MACH_SEND_INVALID_MEMORY` (0x1000000c): the caller's own data buffer for
    /// `vm_write` is not allocated and readable.
    SendInvalidMemory = 0x1000_000c,
}

/// The result of a Mach call: `Ok` is `KERN_SUCCESS`.
pub type KernResult<T> = Result<T, KernReturn>;

/// `KERN_SUCCESS`, as the guest sees it.
pub const KERN_SUCCESS: u32 = 0;

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

    /// The code with this value, or `None` for `KERN_SUCCESS` and unknown values.
    pub fn from_code(code: u32) -> Option<KernReturn> {
        KernReturn::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Mach's name for the code, such as `"KERN_INVALID_ADDRESS"`.
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

    /// The value a guest receives for `result`: 0 for success, else the code.
    pub fn to_guest<T>(result: &KernResult<T>) -> i32 {
        match result {
            Ok(_) => KERN_SUCCESS as i32,
            Err(k) => k.code() as i32,
        }
    }

    /// The result a guest's `i32` return value stands for: `Ok(())` for 0, `Err` with the
    /// code for a known code, and `Err(value)` back for anything else (a guest's own
    /// negative error, say).
    ///
    /// ```
    /// use wasmach::KernReturn;
    /// assert_eq!(KernReturn::from_guest(0), Ok(Ok(())));
    /// assert_eq!(KernReturn::from_guest(2), Ok(Err(KernReturn::ProtectionFailure)));
    /// assert_eq!(KernReturn::from_guest(0x1000_0003), Ok(Err(KernReturn::SendInvalidDest)));
    /// assert_eq!(KernReturn::from_guest(-1), Err(-1));
    /// ```
    pub fn from_guest(value: i32) -> Result<KernResult<()>, i32> {
        match value {
            0 => Ok(Ok(())),
            _ => KernReturn::try_from(value).map(Err),
        }
    }
}

impl TryFrom<u32> for KernReturn {
    type Error = u32;

    /// The code with this value; `KERN_SUCCESS` and unknown values are given back.
    fn try_from(code: u32) -> Result<KernReturn, u32> {
        KernReturn::from_code(code).ok_or(code)
    }
}

impl TryFrom<i32> for KernReturn {
    type Error = i32;

    /// The code a guest's `i32` holds (a message-level code such as
    /// `MACH_SEND_INVALID_DEST` is positive too); `KERN_SUCCESS` and unknown values are
    /// given back.
    fn try_from(value: i32) -> Result<KernReturn, i32> {
        KernReturn::from_code(value as u32).ok_or(value)
    }
}

impl fmt::Display for KernReturn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code() >= 0x1000_0000 {
            write!(f, "{} ({:#x})", self.name(), self.code())
        } else {
            write!(f, "{} ({})", self.name(), self.code())
        }
    }
}

impl std::error::Error for KernReturn {}

/// A `vm_prot_t`: a set of `READ`, `WRITE` and `EXECUTE` bits.
///
/// ```
/// use wasmach::VmProt;
/// assert_eq!(VmProt::DEFAULT, VmProt::READ | VmProt::WRITE);
/// assert!(VmProt::ALL.contains(VmProt::EXECUTE));
/// assert_eq!(VmProt::from_bits(8), None); // not a protection
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VmProt(u8);

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
        if bits & !7 == 0 {
            Some(VmProt(bits as u8))
        } else {
            None
        }
    }

    /// The protection with these bits; bits outside [`VmProt::ALL`] are dropped.
    pub const fn from_bits_truncate(bits: u32) -> VmProt {
        VmProt((bits & 7) as u8)
    }

    /// The bits, as a `vm_prot_t`.
    pub const fn bits(self) -> u32 {
        self.0 as u32
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: VmProt) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for VmProt {
    type Output = VmProt;
    fn bitor(self, rhs: VmProt) -> VmProt {
        VmProt(self.0 | rhs.0)
    }
}

impl std::ops::BitAnd for VmProt {
    type Output = VmProt;
    fn bitand(self, rhs: VmProt) -> VmProt {
        VmProt(self.0 & rhs.0)
    }
}

impl fmt::Debug for VmProt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `rwx` style: `r--`, `rw-`, `---`.
impl fmt::Display for VmProt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bit = |p: VmProt, c: char| if self.contains(p) { c } else { '-' };
        write!(
            f,
            "{}{}{}",
            bit(VmProt::READ, 'r'),
            bit(VmProt::WRITE, 'w'),
            bit(VmProt::EXECUTE, 'x')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_gnu_mach_values() {
        let expected = [
            (KernReturn::InvalidAddress, 1),
            (KernReturn::ProtectionFailure, 2),
            (KernReturn::NoSpace, 3),
            (KernReturn::InvalidArgument, 4),
            (KernReturn::Failure, 5),
            (KernReturn::ResourceShortage, 6),
            (KernReturn::InvalidName, 15),
            (KernReturn::InvalidTask, 16),
            (KernReturn::InvalidValue, 18),
            (KernReturn::SendInvalidDest, 0x1000_0003),
            (KernReturn::SendInvalidMemory, 0x1000_000c),
        ];
        for (k, v) in expected {
            assert_eq!(k.code(), v, "{k:?}");
            assert_eq!(KernReturn::from_code(v), Some(k));
        }
        assert_eq!(KernReturn::from_code(0), None);
    }

    #[test]
    fn protection_bits_outside_all_are_refused() {
        for bits in 0..8 {
            assert_eq!(VmProt::from_bits(bits).map(VmProt::bits), Some(bits));
        }
        assert_eq!(VmProt::from_bits(8), None);
        assert_eq!(VmProt::from_bits(u32::MAX), None);
        assert_eq!(VmProt::DEFAULT.to_string(), "rw-");
    }
}
