//! The consumer: `vm_read_overwrite`s the mailbox's header page (at [`HEADER_ADDRESS`]) into
//! a page-aligned buffer of its own and checks it (else [`BAD_HEADER`], -1000), then the
//! record pages, checks each record's index field (else [`BAD_RECORD_INDEX`], -1001) and
//! recomputes the FNV-1a-64 of the records against the header's (else [`BAD_CHECKSUM`],
//! -1002).
//!
//! Returns the checksum masked to 63 bits (the producer's result), or `-(code)` when a Mach
//! call fails (without a producer before it the header page is not allocated in the
//! mailbox: `KERN_INVALID_ADDRESS`, -1).
#![cfg_attr(target_arch = "wasm32", no_std)]

use mailbox_protocol::{
    BAD_CHECKSUM, BAD_HEADER, BAD_RECORD_INDEX, Fail, HEADER_ADDRESS, Header, MAILBOX,
    RECORD_PAGES, RECORD_SIZE, RECORDS_ADDRESS, checksum_value, exit_value, fnv1a64, u32_at,
};
use wasmach_guest::{PAGE_SIZE, PageBuf, bootstrap_look_up, vm_read_overwrite};

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

    // Laid out as the mailbox's pages: the header page, then the records.
    let mut buf = PageBuf::with_pages(1 + RECORD_PAGES)?;
    let (header_page, records) = buf.split_at_mut(PAGE_SIZE as usize);

    vm_read_overwrite(mailbox, HEADER_ADDRESS, header_page)?;
    let header = Header::from_bytes(header_page)
        .filter(Header::is_valid)
        .ok_or(Fail(BAD_HEADER))?;

    vm_read_overwrite(mailbox, RECORDS_ADDRESS, records)?;
    for (i, r) in (0..).zip(records.chunks_exact(RECORD_SIZE as usize)) {
        if u32_at(r, 0) != i {
            return Err(Fail(BAD_RECORD_INDEX));
        }
    }
    let checksum = fnv1a64(records);
    if checksum != header.checksum {
        return Err(Fail(BAD_CHECKSUM));
    }
    Ok(checksum_value(checksum))
}
