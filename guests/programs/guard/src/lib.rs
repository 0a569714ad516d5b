//! The guard: seals the mailbox's page 1 ([`MAILBOX_PAGE`]) by lowering its maximum
//! protection to `READ` (`vm_protect` with `set_maximum`), then checks the seal holds:
//!
//! 1. a `vm_write` of one of its own pages there is refused with `KERN_PROTECTION_FAILURE`
//!    (if it succeeds: [`WRITE_ALLOWED`], -1021);
//! 2. raising the current protection back to `READ | WRITE` is refused with
//!    `KERN_PROTECTION_FAILURE` too, a maximum only goes down (if it succeeds:
//!    [`PROTECT_ALLOWED`], -1022);
//! 3. `vm_region` reports current and maximum protection `READ` (else [`NOT_SEALED`], -1020).
//!
//! Returns the refused write's code, 2, or `-(code)` when a Mach call fails otherwise.
//! The seal stays (a later `snapshotter` gets -2).
#![cfg_attr(target_arch = "wasm32", no_std)]

use mailbox_protocol::{
    Fail, MAILBOX, MAILBOX_PAGE, NOT_SEALED, PROTECT_ALLOWED, WRITE_ALLOWED, exit_value,
};
use wasmach_guest::{
    KernReturn, PAGE_SIZE, PageBuf, VmProt, bootstrap_look_up, vm_protect, vm_region, vm_write,
};

#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// The task's entry point, called by `wasmach run`.
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> i64 {
    exit_value(run())
}

/// `Ok` if `result` is the expected `KERN_PROTECTION_FAILURE`; `unexpected` if the call
/// succeeded; the code of any other failure.
fn refused(result: wasmach_guest::Result<()>, unexpected: i64) -> Result<KernReturn, Fail> {
    match result {
        Err(KernReturn::ProtectionFailure) => Ok(KernReturn::ProtectionFailure),
        Err(other) => Err(other.into()),
        Ok(()) => Err(Fail(unexpected)),
    }
}

fn run() -> Result<i64, Fail> {
    let mailbox = bootstrap_look_up(MAILBOX)?;

    // The seal: the maximum goes down to READ (and the current protection with it).
    vm_protect(mailbox, MAILBOX_PAGE, PAGE_SIZE, true, VmProt::READ)?;

    let page = PageBuf::new(PAGE_SIZE)?;
    let write = refused(vm_write(mailbox, MAILBOX_PAGE, &page), WRITE_ALLOWED)?;
    refused(
        vm_protect(mailbox, MAILBOX_PAGE, PAGE_SIZE, false, VmProt::DEFAULT),
        PROTECT_ALLOWED,
    )?;

    let region = vm_region(mailbox, MAILBOX_PAGE)?;
    if region.address > MAILBOX_PAGE
        || region.protection != VmProt::READ
        || region.max_protection != VmProt::READ
    {
        return Err(Fail(NOT_SEALED));
    }
    Ok(i64::from(write.code()))
}
