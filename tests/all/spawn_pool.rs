//! The spawn pool (`RuntimeOptions::spawn_pool`): reservations of dropped tasks are reused,
//! reset, by new ones, which see nothing of the old task.

use wasmach::{CopyMode, KernReturn, Runtime, RuntimeOptions, VmProt};

use crate::common::*;

const BODY: &str = r#"
  (func (export "store") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (data (i32.const 16) "seed")
"#;

fn runtime(copy: CopyMode, pool: usize) -> Runtime {
    let options = RuntimeOptions::default()
        .copy(copy)
        .spawn_pool(pool)
        .virtual_copy_pages(1);
    Runtime::with_options(options).expect("runtime")
}

#[test]
fn a_reused_reservation_shows_nothing_of_the_task_before() {
    for copy in [CopyMode::Auto, CopyMode::Physical] {
        let rt = runtime(copy, 1);
        let module = rt.compile(guest("(memory 4 64)", BODY)).unwrap();
        let other = rt.spawn(&module).unwrap();
        let old = rt.spawn(&module).unwrap();
        let base = old.debug_base();
        // Everything a task can leave behind: bytes, protections, regions, growth, guard
        // and private mappings (a virtual copy inside it), a port name.
        old.vm_write(0, &pattern(1, (4 * PAGE) as usize)).unwrap();
        old.vm_protect(PAGE, PAGE, false, VmProt::READ).unwrap();
        let region = old.vm_allocate(0, 8 * PAGE, true).unwrap();
        old.vm_write(region, &pattern(2, (8 * PAGE) as usize))
            .unwrap();
        old.vm_copy(region, 4 * PAGE, region + 4 * PAGE).unwrap();
        old.vm_deallocate(region + PAGE, PAGE).unwrap();
        let name = old.insert_port(&other);
        drop(old);
        assert_eq!(rt.debug_pooled(), 1, "{copy:?}: the reservation is kept");

        let new = rt.spawn(&module).unwrap();
        assert_eq!(
            new.debug_base(),
            base,
            "{copy:?}: the reservation is reused"
        );
        assert_eq!(rt.debug_pooled(), 0);
        assert_eq!(new.memory_pages(), 4);
        assert_eq!(new.regions().len(), 1, "{copy:?}: {:?}", new.regions());
        let mut want = vec![0u8; (4 * PAGE) as usize];
        want[16..20].copy_from_slice(b"seed");
        assert_eq!(new.vm_read(0, 4 * PAGE).unwrap(), want, "{copy:?}");
        // its own protections: the page the old task made read-only is writable
        new.call::<(u32, u32), ()>("store", (PAGE, 7)).unwrap();
        // the old task's region is not there, and reads zero once the memory grows over it
        assert_eq!(new.vm_read(region, PAGE), Err(KernReturn::InvalidAddress));
        assert_eq!(new.call::<u32, i32>("grow", 12).unwrap(), 4);
        let grown = new.vm_read(4 * PAGE, 12 * PAGE).unwrap();
        assert!(
            grown.iter().all(|&b| b == 0),
            "{copy:?}: grown memory reads zero"
        );
        // the old task's port name means nothing here
        assert_eq!(
            new.mach().vm_read(name, 0, PAGE),
            Err(KernReturn::SendInvalidDest)
        );
    }
}

#[test]
fn a_reservation_another_task_holds_a_snapshot_of_is_not_reused() {
    let rt = runtime(CopyMode::Virtual, 4);
    let module = rt.compile(guest("(memory 4 64)", BODY)).unwrap();
    let (reader, source) = (rt.spawn(&module).unwrap(), rt.spawn(&module).unwrap());
    let bytes = pattern(3, (4 * PAGE) as usize);
    source.vm_write(0, &bytes).unwrap();
    let (copy, size) = reader
        .mach()
        .vm_read(reader.insert_port(&source), 0, 4 * PAGE)
        .unwrap();
    assert_eq!(reader.debug_backing(copy), "shared");
    drop(source);
    assert_eq!(rt.debug_pooled(), 0, "its pages live on in the snapshot");
    // (a fresh reservation: the pool is empty)
    let next = rt.spawn(&module).unwrap();
    next.vm_write(0, &vec![9u8; (4 * PAGE) as usize]).unwrap();
    assert_eq!(reader.vm_read(copy, size).unwrap(), bytes);
    // Once the snapshot goes, the reader's own reservation is reusable when it drops.
    reader.vm_deallocate(copy, size).unwrap();
    drop(reader);
    assert_eq!(rt.debug_pooled(), 1);
}

#[test]
fn the_pool_keeps_at_most_its_size() {
    for (size, kept) in [(2, 2), (0, 0)] {
        let rt = runtime(CopyMode::Auto, size);
        let module = rt.compile(guest("(memory 1)", BODY)).unwrap();
        let tasks: Vec<_> = (0..5).map(|_| rt.spawn(&module).unwrap()).collect();
        drop(tasks);
        assert_eq!(rt.debug_pooled(), kept);
        // and spawning takes them back
        let again: Vec<_> = (0..3).map(|_| rt.spawn(&module).unwrap()).collect();
        assert_eq!(rt.debug_pooled(), 0);
        drop(again);
    }
}

/// A task that leaves its initial pages as they were (read-write, nothing unallocated or
/// mapped anew) hands its reservation back warm: the prefix stays mapped and is zeroed in
/// place. Tasks of the same, a smaller and a larger initial size reuse it and see zeros,
/// and exactly their own pages are accessible.
#[test]
fn a_warm_reservation_reads_zero_for_tasks_of_every_size() {
    for copy in [CopyMode::Auto, CopyMode::Physical] {
        for (old_pages, new_pages) in [(1, 1), (4, 4), (4, 2), (1, 3), (17, 17), (17, 5)] {
            let case = format!("{copy:?}, {old_pages} then {new_pages} pages");
            let rt = runtime(copy, 1);
            let old_module = rt
                .compile(guest(&format!("(memory {old_pages} 64)"), BODY))
                .unwrap();
            let new_module = rt
                .compile(guest(&format!("(memory {new_pages} 64)"), BODY))
                .unwrap();
            let old = rt.spawn(&old_module).unwrap();
            let base = old.debug_base();
            scribble(&old, old_pages);
            drop(old);
            assert_eq!(rt.debug_pooled(), 1, "{case}: the reservation is kept");

            let new = rt.spawn(&new_module).unwrap();
            assert_eq!(new.debug_base(), base, "{case}: the reservation is reused");
            sees_only_itself(&new, new_pages, &case);
        }
    }
}

/// A task that grew its memory hands its reservation back warm with its grown size; the
/// next task of the same program (which keeps the file's pages resident) starts at the
/// program's initial size and sees nothing of it.
#[test]
fn a_warm_reservation_reads_zero_for_the_next_task_of_a_program_that_grew() {
    for copy in [CopyMode::Auto, CopyMode::Physical] {
        for (initial, grown) in [(1, 1), (4, 2), (3, 14)] {
            let case = format!("{copy:?}, {initial} pages grown by {grown}");
            let rt = runtime(copy, 1);
            let module = rt
                .compile(guest(&format!("(memory {initial} 64)"), BODY))
                .unwrap();
            let old = rt.spawn(&module).unwrap();
            let base = old.debug_base();
            assert_eq!(old.call::<u32, i32>("grow", grown).unwrap(), initial as i32);
            scribble(&old, initial + grown);
            drop(old);
            assert_eq!(rt.debug_pooled(), 1, "{case}: the reservation is kept");

            let new = rt.spawn(&module).unwrap();
            assert_eq!(new.debug_base(), base, "{case}: the reservation is reused");
            sees_only_itself(&new, initial, &case);
        }
    }
}

/// The host's writes and the guest's own stores, on every one of the `pages` pages of `old`.
fn scribble(old: &wasmach::Task, pages: u32) {
    old.vm_write(0, &pattern(5, (pages * PAGE) as usize))
        .unwrap();
    for page in 0..pages {
        old.call::<(u32, u32), ()>("store", (page * PAGE + 4096, 0xdead_beef))
            .unwrap();
    }
}

/// Checks that `new`, a task of `pages` pages spawned on a reused reservation, reads zero
/// but its data segment, can store to its last page and not past it, and grows into zeros.
fn sees_only_itself(new: &wasmach::Task, pages: u32, case: &str) {
    let mut want = vec![0u8; (pages * PAGE) as usize];
    want[16..20].copy_from_slice(b"seed");
    let seen = new.vm_read(0, pages * PAGE).unwrap();
    let differ = seen.iter().zip(&want).filter(|(a, b)| a != b).count();
    assert_eq!(differ, 0, "{case}: bytes of the old task are visible");
    assert_eq!(new.regions().len(), 1, "{case}: {:?}", new.regions());
    // its last page is writable by the guest, the page after it is not there
    new.call::<(u32, u32), ()>("store", (pages * PAGE - 4, 1))
        .unwrap();
    assert!(
        new.call::<u32, i32>("load", pages * PAGE).is_err(),
        "{case}: a load past the memory traps"
    );
    assert_eq!(
        new.vm_read(pages * PAGE, PAGE),
        Err(KernReturn::InvalidAddress),
        "{case}"
    );
    // growing over the old task's pages finds zeros
    assert_eq!(
        new.call::<u32, i32>("grow", 20).unwrap(),
        pages as i32,
        "{case}"
    );
    let grown = new.vm_read(pages * PAGE, 20 * PAGE).unwrap();
    assert!(
        grown.iter().all(|&b| b == 0),
        "{case}: grown memory reads zero"
    );
}
