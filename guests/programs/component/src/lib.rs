//! A component guest: implements the `program` world of `wit/mach.wit`, importing the VM
//! calls from `wasmach:mach/vm@0.1.0`. Cargo builds the core module; the host turns it into a
//! component (with `wit-component`).
//!
//! `run` looks up the mailbox, `vm-allocate`s a page of its own, fills it with
//! [pattern A](mailbox_protocol::pattern_a), `vm-write`s it into the mailbox's page 1
//! ([`MAILBOX_PAGE`]), `vm-read`s that page back as a `list<u8>` and compares (else
//! [`READ_BACK_DIFFERS`], -1030), calls `vm-region` on the mailbox page, and returns the
//! FNV-1a-64 of the list masked to 63 bits (the `snapshotter`'s result too, since both
//! hash a page of pattern A). A failed call returns `-(code)`.

use mailbox_protocol::{
    Fail, MAILBOX, MAILBOX_PAGE, PAGE_SIZE, READ_BACK_DIFFERS, checksum_value, exit_value, fill,
    fnv1a64, holds, pattern_a,
};

wit_bindgen::generate!({
    world: "program",
    path: "../../../wit",
});

use wasmach::mach::types::KernError;
use wasmach::mach::vm;

/// The `kern_return_t` value of a `kern-error` (docs/spec.md §2).
fn code(e: KernError) -> u32 {
    match e {
        KernError::InvalidAddress => 1,
        KernError::ProtectionFailure => 2,
        KernError::NoSpace => 3,
        KernError::InvalidArgument => 4,
        KernError::Failure => 5,
        KernError::ResourceShortage => 6,
        KernError::InvalidName => 15,
        KernError::InvalidTask => 16,
        KernError::InvalidValue => 18,
        KernError::SendInvalidDest => 0x1000_0003,
        KernError::SendInvalidMemory => 0x1000_000c,
    }
}

/// A failed call: `-(code)`.
fn kern(e: KernError) -> Fail {
    Fail(-i64::from(code(e)))
}

struct Component;

impl Guest for Component {
    fn run() -> i64 {
        exit_value(run())
    }
}

export!(Component);

fn run() -> Result<i64, Fail> {
    let mailbox = vm::bootstrap_look_up(MAILBOX.as_bytes()).map_err(kern)?;
    let me = vm::mach_task_self();

    let address = vm::vm_allocate(me, 0, PAGE_SIZE, true).map_err(kern)?;
    // The page lies past the memory Rust had: the runtime grew our memory from the host;
    // memory.grow(0) makes the engine reload the size.
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::memory_grow(0, 0);
    let result = fill_and_check(mailbox, address);
    // Best effort: a failure to free our own page changes nothing about the result.
    let _ = vm::vm_deallocate(me, address, PAGE_SIZE);
    result
}

fn fill_and_check(mailbox: u32, address: u32) -> Result<i64, Fail> {
    {
        // SAFETY: the kernel just allocated this page in our own memory for us, zero-filled;
        // nothing else in the program refers to it, and the slice ends before the page is
        // used by any call.
        let page = unsafe {
            std::slice::from_raw_parts_mut(
                std::ptr::with_exposed_provenance_mut::<u8>(address as usize),
                PAGE_SIZE as usize,
            )
        };
        fill(page, pattern_a);
    }
    vm::vm_write(mailbox, MAILBOX_PAGE, address, PAGE_SIZE).map_err(kern)?;

    let data = vm::vm_read(mailbox, MAILBOX_PAGE, PAGE_SIZE).map_err(kern)?;
    if data.len() != PAGE_SIZE as usize || !holds(&data, pattern_a) {
        return Err(Fail(READ_BACK_DIFFERS));
    }

    vm::vm_region(mailbox, MAILBOX_PAGE).map_err(kern)?;
    Ok(checksum_value(fnv1a64(&data)))
}
