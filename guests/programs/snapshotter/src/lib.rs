//! The snapshotter: shows that `vm_read` is a snapshot. It `vm_write`s
//! [pattern A](mailbox_protocol::pattern_a) (byte `i` = `i * 7 + 1`) from a page of its own
//! into the mailbox's page 1 ([`MAILBOX_PAGE`]), `vm_read`s that page (a new region of its
//! own: the snapshot), then `vm_write`s [pattern B](mailbox_protocol::pattern_b) (byte `i` =
//! `i * 13 + 5`) there, as if the peer changed it. The mailbox page must now hold B (else
//! [`PEER_NOT_CHANGED`], -1010, checked with `vm_read_overwrite`) and the snapshot still A
//! (else [`SNAPSHOT_CHANGED`], -1011). Pattern B stays in the mailbox.
//!
//! Returns the snapshot's FNV-1a-64 masked to 63 bits, or `-(code)` when a Mach call fails
//! (after `guard` sealed the page: `KERN_PROTECTION_FAILURE`, -2).
#![cfg_attr(target_arch = "wasm32", no_std)]

use mailbox_protocol::{
    Fail, MAILBOX, MAILBOX_PAGE, PEER_NOT_CHANGED, SNAPSHOT_CHANGED, checksum_value, exit_value,
    fill, fnv1a64, holds, pattern_a, pattern_b,
};
use wasmach_guest::{PAGE_SIZE, PageBuf, bootstrap_look_up, vm_read, vm_read_overwrite, vm_write};

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

fn run() -> Result<i64, Fail> {
    let mailbox = bootstrap_look_up(MAILBOX)?;
    let mut page = PageBuf::new(PAGE_SIZE)?;

    fill(&mut page, pattern_a);
    vm_write(mailbox, MAILBOX_PAGE, &page)?;
    let snapshot = vm_read(mailbox, MAILBOX_PAGE, PAGE_SIZE)?;

    // The peer's page changes after the snapshot was taken.
    fill(&mut page, pattern_b);
    vm_write(mailbox, MAILBOX_PAGE, &page)?;

    page.fill(0);
    vm_read_overwrite(mailbox, MAILBOX_PAGE, &mut page)?;
    if !holds(&page, pattern_b) {
        return Err(Fail(PEER_NOT_CHANGED));
    }
    if !holds(&snapshot, pattern_a) {
        return Err(Fail(SNAPSHOT_CHANGED));
    }
    Ok(checksum_value(fnv1a64(&snapshot)))
}
