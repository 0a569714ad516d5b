//! The Rust guest programs of `guests/` (built for wasm32 by the `wasmach-guests` crate's
//! build script), run through the runtime: the SDK's calls as a guest author uses them,
//! checked from the host. (`tests/cli/guests.rs` runs them through `wasmach run`.)

use wasmach::{KernReturn, Runtime, Task, VM_PAGE_SIZE, VmProt};
use wasmach_guests::{
    C_CONSUMER, C_ERRORS, C_EXAMPLE, C_PRODUCER, COMPONENT, COMPONENT_CORE, CONSUMER, GUARD,
    PRODUCER, SNAPSHOTTER,
};

use crate::common::runtime;
use crate::oracle::{expected_records, fnv1a64, pattern_a, pattern_b, shown};

const PAGE: u32 = VM_PAGE_SIZE;
const MAILBOX_WAT: &str = "../guests/wat/mailbox.wat";
/// The mailbox page the snapshotter, guard and component use.
const MAILBOX_PAGE: u32 = 0x1_0000;
/// Where the producer puts the header page, then the four record pages.
const HEADER: u32 = 0x10_0000;
const RECORDS: u32 = HEADER + PAGE;
const RECORD_PAGES: u32 = 4;

/// A runtime with the WAT mailbox running its `_start` (pages 0 and 1 allocated), and the
/// programs `names` spawned and registered under their names.
struct World {
    runtime: Runtime,
    mailbox: Task,
}

impl World {
    fn new() -> World {
        let runtime = runtime();
        let mailbox = runtime
            .spawn_file(format!("{}/{MAILBOX_WAT}", env!("CARGO_MANIFEST_DIR")))
            .expect("mailbox");
        runtime.register("mailbox", &mailbox);
        assert_eq!(
            mailbox.call::<(), (i32, i32)>("_start", ()).unwrap(),
            (0, PAGE as i32)
        );
        World { runtime, mailbox }
    }

    fn spawn(&self, path: &str) -> Task {
        self.runtime.spawn_file(path).expect(path)
    }

    /// Spawns the program at `path` and runs its `_start`.
    fn run(&self, path: &str) -> i64 {
        self.spawn(path).call::<(), i64>("_start", ()).expect(path)
    }
}

#[test]
fn producer_and_consumer_move_4096_records_through_the_mailbox() {
    let w = World::new();
    let produced = w.run(PRODUCER);
    // The host reads what landed in the mailbox: a header, then the records whose
    // checksum the producer returned.
    let header = w.mailbox.vm_read(HEADER, PAGE).unwrap();
    assert_eq!(&header[0..4], b"CMAW", "magic 0x57414d43, little-endian");
    assert_eq!(u32::from_le_bytes(header[4..8].try_into().unwrap()), 4096);
    assert_eq!(u32::from_le_bytes(header[8..12].try_into().unwrap()), 64);
    let records = w.mailbox.vm_read(RECORDS, RECORD_PAGES * PAGE).unwrap();
    assert!(records == expected_records(), "the records differ");
    assert_eq!(
        u64::from_le_bytes(header[16..24].try_into().unwrap()),
        fnv1a64(&records)
    );
    assert_eq!(produced, shown(&records));
    // Record 4095's index field.
    assert_eq!(&records[4095 * 64..4095 * 64 + 4], &4095u32.to_le_bytes());
    // The consumer verifies and agrees.
    assert_eq!(w.run(CONSUMER), produced);
    // The producer's fixed allocation cannot be made twice: KERN_NO_SPACE.
    assert_eq!(w.run(PRODUCER), -(KernReturn::NoSpace.code() as i64));
}

#[test]
fn the_consumer_notices_a_missing_header_a_bad_record_and_a_bad_checksum() {
    // Nothing produced: the header page is not even allocated (KERN_INVALID_ADDRESS).
    let w = World::new();
    assert_eq!(w.run(CONSUMER), -(KernReturn::InvalidAddress.code() as i64));
    // Allocated but blank: a bad header.
    w.mailbox
        .vm_allocate(HEADER, (1 + RECORD_PAGES) * PAGE, false)
        .unwrap();
    assert_eq!(w.run(CONSUMER), -1000);

    // A record whose index field was changed after the producer wrote it.
    let w = World::new();
    w.run(PRODUCER);
    let mut page = w.mailbox.vm_read(RECORDS, PAGE).unwrap();
    page[64] ^= 1;
    w.mailbox.vm_write(RECORDS, &page).unwrap();
    assert_eq!(w.run(CONSUMER), -1001);

    // A payload byte changed: only the checksum can tell.
    let w = World::new();
    w.run(PRODUCER);
    let mut page = w.mailbox.vm_read(RECORDS + PAGE, PAGE).unwrap();
    page[10] ^= 0x80;
    w.mailbox.vm_write(RECORDS + PAGE, &page).unwrap();
    assert_eq!(w.run(CONSUMER), -1002);
}

#[test]
fn the_snapshotter_keeps_its_copy_while_the_peer_changes() {
    let w = World::new();
    let snapshotter = w.spawn(SNAPSHOTTER);
    let regions_before = snapshotter.regions();
    assert_eq!(
        snapshotter.call::<(), i64>("_start", ()).unwrap(),
        shown(&pattern_a())
    );
    // The peer's page moved on to pattern B...
    assert_eq!(w.mailbox.vm_read(MAILBOX_PAGE, PAGE).unwrap(), pattern_b());
    // ...and the snapshot region (a vm_read) was given back when it was dropped: every
    // page above the program's own memory is unallocated again.
    let initial_end = regions_before
        .iter()
        .map(|r| u64::from(r.address) + r.size)
        .max();
    let after: Vec<_> = snapshotter
        .regions()
        .into_iter()
        .filter(|r| Some(u64::from(r.address)) >= initial_end)
        .collect();
    assert!(after.is_empty(), "regions left behind: {after:?}");
}

#[test]
fn the_guard_seals_a_peer_page_and_gets_the_refusal_code() {
    let w = World::new();
    assert_eq!(w.run(GUARD), KernReturn::ProtectionFailure.code() as i64);
    let region = w.mailbox.vm_region(MAILBOX_PAGE).unwrap();
    assert_eq!(
        (region.address, region.size),
        (MAILBOX_PAGE, u64::from(PAGE))
    );
    assert_eq!(region.protection, VmProt::READ);
    assert_eq!(region.max_protection, VmProt::READ);
    // The host is refused too, and a snapshotter run after it fails with the same code.
    assert_eq!(
        w.mailbox.vm_write(MAILBOX_PAGE, &vec![0; PAGE as usize]),
        Err(KernReturn::ProtectionFailure)
    );
    assert_eq!(
        w.run(SNAPSHOTTER),
        -(KernReturn::ProtectionFailure.code() as i64)
    );
}

#[test]
fn a_rust_guest_under_guest_protection_traps_on_a_page_the_host_sealed() {
    let w = World::new();
    let producer = w.spawn(PRODUCER);
    assert!(producer.guest_protection());
    // Rust's stack lives in the module's first 16 pages: sealed read-only, the guest's
    // first store to its stack traps, naming the address, before it reaches the mailbox.
    producer
        .vm_protect(0, 16 * PAGE, false, VmProt::READ)
        .unwrap();
    let err = producer.call::<(), i64>("_start", ()).unwrap_err();
    assert_eq!(
        err.downcast_ref::<wasmtime::Trap>(),
        Some(&wasmtime::Trap::MemoryOutOfBounds),
        "{err:#}"
    );
    assert!(
        format!("{err:#}").contains("memory fault at wasm address 0x"),
        "{err:#}"
    );
    // The mailbox was not touched: it has no region at or above the header.
    assert_eq!(w.mailbox.vm_region(HEADER), Err(KernReturn::NoSpace));
    // Unsealed, the same task runs to the end (its copies and fills, `memory.copy` and
    // `memory.fill` in the module, go through the checked path).
    producer
        .vm_protect(0, 16 * PAGE, false, VmProt::DEFAULT)
        .unwrap();
    assert_eq!(
        producer.call::<(), i64>("_start", ()).unwrap(),
        shown(&expected_records())
    );
}

#[test]
fn without_a_mailbox_every_program_reports_kern_invalid_name() {
    let runtime = runtime();
    for path in [PRODUCER, CONSUMER, SNAPSHOTTER, GUARD] {
        let task = runtime.spawn_file(path).unwrap();
        assert_eq!(
            task.call::<(), i64>("_start", ()).unwrap(),
            -(KernReturn::InvalidName.code() as i64),
            "{path}"
        );
    }
    let component = runtime.spawn_file(COMPONENT).unwrap();
    assert_eq!(
        component.call_component::<(), (i64,)>("run", ()).unwrap().0,
        -(KernReturn::InvalidName.code() as i64)
    );
}

#[test]
fn rust_guests_obey_the_memory_quota() {
    let w = World::new();
    // 17 pages of stack and data, and room for one more: the producer's staging buffer
    // (5 pages) does not fit, and it says so with KERN_NO_SPACE.
    let module = w.runtime.compile_file(PRODUCER).unwrap();
    let task = w
        .runtime
        .spawn_with(
            &module,
            &wasmach::TaskOptions::default().max_memory(18 * u64::from(PAGE)),
        )
        .unwrap();
    assert_eq!(
        task.call::<(), i64>("_start", ()).unwrap(),
        -(KernReturn::NoSpace.code() as i64)
    );
}

#[test]
fn the_component_guest_writes_reads_back_and_hashes_a_page() {
    let w = World::new();
    let component = w.spawn(COMPONENT);
    assert!(component.is_component());
    let before = component.memory_pages();
    assert_eq!(
        component.call_component::<(), (i64,)>("run", ()).unwrap().0,
        shown(&pattern_a())
    );
    assert_eq!(w.mailbox.vm_read(MAILBOX_PAGE, PAGE).unwrap(), pattern_a());
    // Its vm-allocate took the first page past its memory (growing it), and gave it back
    // (the list vm-read returned lives in pages its allocator grew after that one).
    // How far its allocator grew the memory is the allocator's business; that it grew past
    // the hole is not.
    assert!(component.memory_pages() > before + 1);
    let hole = before * PAGE;
    assert_eq!(
        crate::common::raw_snapshot(&component).entries[before as usize],
        None
    );
    assert_eq!(component.vm_region(hole).unwrap().address, hole + PAGE);
    // Its core module alone is not a task: it imports the WIT interface by name.
    let err = w.runtime.compile_file(COMPONENT_CORE).unwrap_err();
    assert!(
        format!("{err:#}").contains("wasmach:mach/vm@0.1.0"),
        "{err:#}"
    );
}

#[test]
fn the_c_programs_check_every_code_of_the_data_transfer_calls() {
    let runtime = Runtime::new().unwrap();
    let errors = runtime.spawn_file(C_ERRORS).expect("errors.wasm");
    // 0, or the number of the first check whose code or bytes differ from the manual's.
    assert_eq!(errors.call::<(), i32>("_start", ()).unwrap(), 0);
}

#[test]
fn the_readme_c_example_reads_and_copies_the_mailbox_page() {
    let w = World::new();
    // The WAT mailbox keeps the address of its page (65536) in its word 0.
    assert_eq!(w.run(C_EXAMPLE), 65536);
}

#[test]
fn c_and_rust_producers_and_consumers_interoperate_through_the_mailbox() {
    for (producer, consumer) in [
        (C_PRODUCER, CONSUMER),
        (PRODUCER, C_CONSUMER),
        (C_PRODUCER, C_CONSUMER),
    ] {
        let w = World::new();
        let produced = w.run(producer);
        assert_eq!(produced, shown(&expected_records()), "{producer}");
        assert_eq!(w.run(consumer), produced, "{consumer} after {producer}");
    }
    // Without a producer, the C consumer reports the missing header as the Rust one does.
    let w = World::new();
    assert_eq!(
        w.run(C_CONSUMER),
        -(KernReturn::InvalidAddress.code() as i64)
    );
}
