//! The producer: allocates a header page and [`RECORD_PAGES`] record pages in the mailbox
//! (fixed, at [`HEADER_ADDRESS`], page 16), builds the [`RECORD_COUNT`] records and their
//! header in a page-aligned buffer of its own laid out the same way, then `vm_write`s the
//! records (pages 17..21) and, last, the header page. The pages stay the mailbox's.
//!
//! Returns the records' FNV-1a-64 masked to 63 bits (the consumer returns the same), or
//! `-(code)` when a Mach call fails (run twice against one mailbox: the fixed allocation
//! fails with `KERN_NO_SPACE`, -3).
#![cfg_attr(target_arch = "wasm32", no_std)]

use mailbox_protocol::{
    Fail, HEADER_ADDRESS, HEADER_SIZE, Header, MAILBOX, RECORD_PAGES, RECORD_SIZE, RECORDS_ADDRESS,
    checksum_value, exit_value, fnv1a64, record,
};
use wasmach_guest::{PAGE_SIZE, PageBuf, bootstrap_look_up, vm_allocate_fixed};

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

    // The pages in the mailbox. Until they are filled they are ours: on an error below,
    // dropping the region gives them back.
    let mut pages = vm_allocate_fixed(mailbox, HEADER_ADDRESS, (1 + RECORD_PAGES) * PAGE_SIZE)?;

    // The staging copy, laid out as the mailbox's pages: the header page, then the records.
    let mut stage = PageBuf::with_pages(1 + RECORD_PAGES)?;
    let (header, records) = stage.split_at_mut(PAGE_SIZE as usize);
    for (i, r) in (0..).zip(records.chunks_exact_mut(RECORD_SIZE as usize)) {
        r.copy_from_slice(&record(i));
    }
    let checksum = fnv1a64(records);
    header[..HEADER_SIZE].copy_from_slice(&Header::new(checksum).to_bytes());

    // Records first, the header last: a valid header means complete records. (Writes into
    // the region we own in the mailbox: offsets inside it, checked before the call.)
    pages.vm_write(RECORDS_ADDRESS - HEADER_ADDRESS, records)?;
    pages.vm_write(0, header)?;
    pages.leak();
    Ok(checksum_value(checksum))
}
