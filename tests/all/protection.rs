//! Guest protection: the table binds a task's own loads, stores and bulk-memory
//! instructions (`RuntimeOptions::guest_protection`, on by default). A forbidden access
//! traps with `Trap::MemoryOutOfBounds` and a message naming the address, and nothing else
//! happens: no byte changes, the task can be called again, the host and other tasks go on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmach::{GuestFault, KernReturn, Runtime, RuntimeOptions, Task, VmProt};
use wasmtime::Trap;

use crate::common::{PAGE, pattern, raw_snapshot, runtime, wait_until, word_at};

const P: u32 = PAGE;

/// The guest: its own accesses, one export per instruction form.
const GUEST: &str = r#"
(module
  (memory 8)
  (data $passive "passive bytes!")
  (data $active (i32.const 16) "active")
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "load8") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "store") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
  (func (export "store8") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
  (func (export "copy") (param i32 i32 i32)
    (memory.copy (local.get 0) (local.get 1) (local.get 2)))
  ;; a constant small length: the form wasmtime would inline
  (func (export "copy8") (param i32 i32)
    (memory.copy (local.get 0) (local.get 1) (i32.const 8)))
  (func (export "fill") (param i32 i32 i32)
    (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "fill4") (param i32 i32)
    (memory.fill (local.get 0) (local.get 1) (i32.const 4)))
  (func (export "init") (param i32 i32 i32)
    (memory.init $passive (local.get 0) (local.get 1) (local.get 2)))
  (func (export "init_active") (param i32 i32 i32)
    (memory.init $active (local.get 0) (local.get 1) (local.get 2)))
  (func (export "drop") (data.drop $passive))
  ;; stores, copies and loads in the page at $addr until something stops it; after each
  ;; round it counts the rounds done at CHURN_ROUNDS (in page 0), so the host can tell
  ;; that it is inside its loop
  (func (export "churn") (param $addr i32)
    (local $i i32)
    (loop $forever
      (i32.store (i32.const 0x40) (i32.shr_u (local.get $i) (i32.const 2)))
      (i32.store (i32.add (local.get $addr) (i32.and (local.get $i) (i32.const 0xfffc)))
                 (local.get $i))
      (memory.copy (i32.add (local.get $addr) (i32.const 0x8000)) (local.get $addr)
                   (i32.const 0x100))
      (drop (i32.load (i32.add (local.get $addr) (i32.const 0x8000))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $forever))))
"#;

/// Where `churn` counts its rounds (page 0, which the test never protects).
const CHURN_ROUNDS: u32 = 0x40;

/// Page layout of the test task: 0 and 1 read-write, 2 unallocated, 3 read-only, 4 no
/// access, 5 write-only, 6 execute-only, 7 read-write.
const FREED: u32 = 2 * P;
const READ_ONLY: u32 = 3 * P;
const NO_ACCESS: u32 = 4 * P;
const WRITE_ONLY: u32 = 5 * P;
const EXECUTE_ONLY: u32 = 6 * P;

fn layout(rt: &Runtime) -> Task {
    let t = rt.spawn_bytes(GUEST).expect("spawn");
    for page in 0..8 {
        t.vm_write(page * P, &pattern(page as u8, P as usize))
            .unwrap();
    }
    t.vm_deallocate(FREED, P).unwrap();
    for (address, prot) in [
        (READ_ONLY, VmProt::READ),
        (NO_ACCESS, VmProt::NONE),
        (WRITE_ONLY, VmProt::WRITE),
        (EXECUTE_ONLY, VmProt::EXECUTE),
    ] {
        t.vm_protect(address, P, false, prot).unwrap();
    }
    t
}

/// Asserts that `result` is a `MemoryOutOfBounds` trap whose message names `address`.
fn assert_fault<T: std::fmt::Debug>(result: anyhow::Result<T>, address: u32, what: &str) {
    let err = result.expect_err(what);
    assert_eq!(
        err.downcast_ref::<Trap>(),
        Some(&Trap::MemoryOutOfBounds),
        "{what}: {err:#}"
    );
    let message = format!("{err:#}");
    assert!(
        message.contains(&format!("wasm address {address:#x}")),
        "{what}: the message does not name {address:#x}: {message}"
    );
}

/// Asserts that a bulk instruction's trap carries the [`GuestFault`] `fault`.
fn assert_guest_fault<T: std::fmt::Debug>(result: anyhow::Result<T>, fault: GuestFault) {
    let what = format!("{fault:?}");
    let err = result.expect_err(&what);
    assert_eq!(err.downcast_ref::<GuestFault>(), Some(&fault), "{err:#}");
    assert_fault(Err::<T, _>(err), fault.address, &what);
}

/// The little-endian `u32` at `at` of `bytes`.
fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn copy_fault(address: u32, write: bool) -> GuestFault {
    GuestFault {
        instruction: "memory.copy",
        address,
        write,
    }
}

#[test]
fn loads_and_stores_follow_the_table() {
    let rt = runtime();
    let t = layout(&rt);
    assert!(t.guest_protection());
    let before = raw_snapshot(&t);
    // Allowed: read-write pages both ways, a read-only page for loads, a write-only page
    // both ways (an MMU cannot map a page write-only; see `GuestAccess`).
    assert_eq!(
        t.call::<u32, u32>("load8", P + 1).unwrap(),
        u32::from(pattern(1, 2)[1])
    );
    assert_eq!(
        t.call::<u32, u32>("load", READ_ONLY + 8).unwrap(),
        word(&pattern(3, 12), 8)
    );
    assert_eq!(
        t.call::<u32, u32>("load", WRITE_ONLY).unwrap(),
        word(&pattern(5, 4), 0)
    );
    // Forbidden loads: unallocated, no access, execute-only; each names its address.
    for address in [FREED + 4, NO_ACCESS + 0x1234, EXECUTE_ONLY + P - 4] {
        assert_fault(t.call::<u32, u32>("load", address), address, "load");
    }
    // A load straddling into a forbidden page names the first byte it may not read.
    assert_fault(
        t.call::<u32, u32>("load", FREED - 2),
        FREED,
        "straddling load",
    );
    // Forbidden stores: read-only, unallocated, no access.
    for address in [READ_ONLY + 8, FREED, NO_ACCESS + 4] {
        assert_fault(
            t.call::<(u32, u32), ()>("store", (address, 7)),
            address,
            "store",
        );
    }
    assert_eq!(
        raw_snapshot(&t),
        before,
        "a trapping access changed something"
    );
    // The task lives on, and allowed stores work.
    t.call::<(u32, u32), ()>("store8", (WRITE_ONLY + 3, 0xAB))
        .unwrap();
    t.call::<(u32, u32), ()>("store", (P, 0x01020304)).unwrap();
    assert_eq!(t.vm_read(P, P).unwrap()[..4], [4, 3, 2, 1]);
}

#[test]
fn memory_copy_is_checked_page_by_page_whatever_its_length() {
    let rt = runtime();
    let t = layout(&rt);
    let before = raw_snapshot(&t);
    // Dynamic lengths: an unreadable source, an unwritable destination, a range that
    // crosses into a forbidden page (the first forbidden address is named).
    assert_guest_fault(
        t.call::<(u32, u32, u32), ()>("copy", (0, FREED + 16, 100)),
        copy_fault(FREED + 16, false),
    );
    assert_guest_fault(
        t.call::<(u32, u32, u32), ()>("copy", (READ_ONLY + 10, 0, 100)),
        copy_fault(READ_ONLY + 10, true),
    );
    assert_guest_fault(
        t.call::<(u32, u32, u32), ()>("copy", (0, FREED - 8, 16)),
        copy_fault(FREED, false),
    );
    assert_guest_fault(
        t.call::<(u32, u32, u32), ()>("copy", (FREED - 4, 0, 8)),
        copy_fault(FREED, true),
    );
    assert_guest_fault(
        t.call::<(u32, u32, u32), ()>("copy", (0, EXECUTE_ONLY, P)),
        copy_fault(EXECUTE_ONLY, false),
    );
    // The constant small form.
    assert_guest_fault(
        t.call::<(u32, u32), ()>("copy8", (READ_ONLY, 0)),
        copy_fault(READ_ONLY, true),
    );
    assert_guest_fault(
        t.call::<(u32, u32), ()>("copy8", (0, NO_ACCESS + 8)),
        copy_fault(NO_ACCESS + 8, false),
    );
    // Past the memory's end: WebAssembly's own trap, which names no table page.
    let err = t
        .call::<(u32, u32, u32), ()>("copy", (8 * P - 4, 0, 8))
        .unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::MemoryOutOfBounds));
    assert!(err.downcast_ref::<GuestFault>().is_none(), "{err:#}");
    assert_eq!(
        raw_snapshot(&t),
        before,
        "a trapping copy changed something"
    );

    // Allowed: read-only to read-write, and an overlapping copy is a memmove.
    t.call::<(u32, u32, u32), ()>("copy", (0, READ_ONLY, 64))
        .unwrap();
    assert_eq!(t.vm_read(0, P).unwrap()[..64], pattern(3, 64)[..]);
    t.call::<(u32, u32, u32), ()>("copy", (P + 3, P, 1000))
        .unwrap();
    t.call::<(u32, u32), ()>("copy8", (7 * P + 1, 7 * P))
        .unwrap();
    let page1 = t.vm_read(P, P).unwrap();
    let original = pattern(1, P as usize);
    assert_eq!(page1[3..1003], original[..1000]);
    assert_eq!(t.vm_read(7 * P, P).unwrap()[1..9], pattern(7, 8)[..]);
    // A zero-length copy touches nothing, even naming forbidden pages.
    t.call::<(u32, u32, u32), ()>("copy", (NO_ACCESS, FREED, 0))
        .unwrap();
}

#[test]
fn memory_fill_and_init_are_checked_and_init_keeps_webassembly_s_segment_rules() {
    let rt = runtime();
    let t = layout(&rt);
    let before = raw_snapshot(&t);
    let fill = |address, write| GuestFault {
        instruction: "memory.fill",
        address,
        write,
    };
    assert_guest_fault(
        t.call::<(u32, u32, u32), ()>("fill", (READ_ONLY + 5, 9, 10)),
        fill(READ_ONLY + 5, true),
    );
    assert_guest_fault(
        t.call::<(u32, u32, u32), ()>("fill", (FREED - 2, 9, 10)),
        fill(FREED, true),
    );
    assert_guest_fault(
        t.call::<(u32, u32), ()>("fill4", (NO_ACCESS, 9)),
        fill(NO_ACCESS, true),
    );
    let init = |address| GuestFault {
        instruction: "memory.init",
        address,
        write: true,
    };
    assert_guest_fault(
        t.call::<(u32, u32, u32), ()>("init", (READ_ONLY, 0, 7)),
        init(READ_ONLY),
    );
    assert_guest_fault(
        t.call::<(u32, u32, u32), ()>("init", (FREED + 100, 2, 3)),
        init(FREED + 100),
    );
    assert_eq!(
        raw_snapshot(&t),
        before,
        "a trapping fill or init changed something"
    );

    t.call::<(u32, u32, u32), ()>("fill", (P + 10, 0x77, 5))
        .unwrap();
    t.call::<(u32, u32), ()>("fill4", (WRITE_ONLY, 0x66))
        .unwrap();
    t.call::<(u32, u32, u32), ()>("init", (7 * P, 8, 6))
        .unwrap();
    assert_eq!(t.vm_read(P, P).unwrap()[10..15], [0x77; 5]);
    assert_eq!(&t.vm_read(7 * P, P).unwrap()[..6], b"bytes!");
    // Segment rules: an active segment is dropped once instantiated, a passive one after
    // data.drop; only a zero-length init of a dropped segment is allowed.
    let oob = |r: anyhow::Result<()>| {
        let err = r.unwrap_err();
        assert_eq!(
            err.downcast_ref::<Trap>(),
            Some(&Trap::MemoryOutOfBounds),
            "{err:#}"
        );
        assert!(err.downcast_ref::<GuestFault>().is_none(), "{err:#}");
    };
    oob(t.call::<(u32, u32, u32), ()>("init_active", (7 * P, 0, 1)));
    t.call::<(u32, u32, u32), ()>("init_active", (7 * P, 0, 0))
        .unwrap();
    oob(t.call::<(u32, u32, u32), ()>("init", (7 * P, 10, 5)));
    t.call::<(), ()>("drop", ()).unwrap();
    oob(t.call::<(u32, u32, u32), ()>("init", (7 * P, 0, 1)));
    t.call::<(u32, u32, u32), ()>("init", (7 * P, 0, 0))
        .unwrap();
    // Each task has its own segments: a new task of the same module can still init.
    let other = rt.spawn_bytes(GUEST).unwrap();
    other
        .call::<(u32, u32, u32), ()>("init", (P, 0, 7))
        .unwrap();
    assert_eq!(&other.vm_read(P, P).unwrap()[..7], b"passive");
}

#[test]
fn the_mapping_follows_every_change_of_the_table() {
    let rt = runtime();
    let t = rt.spawn_bytes(GUEST).unwrap();
    let load = |a: u32| t.call::<u32, u32>("load", a).map(drop);
    let store = |a: u32| t.call::<(u32, u32), ()>("store", (a, 1));
    // vm_protect down and back up (cur only: max stays ALL).
    t.vm_protect(P, P, false, VmProt::READ).unwrap();
    assert_fault(store(P), P, "store after vm_protect(READ)");
    load(P).unwrap();
    t.vm_protect(P, P, false, VmProt::NONE).unwrap();
    assert_fault(load(P), P, "load after vm_protect(NONE)");
    t.vm_protect(P, P, false, VmProt::DEFAULT).unwrap();
    store(P).unwrap();
    // vm_deallocate, then vm_allocate of the same page: zeroed and writable again.
    t.vm_deallocate(P, P).unwrap();
    assert_fault(load(P + 8), P + 8, "load after vm_deallocate");
    assert_eq!(t.vm_allocate(P, P, false), Ok(P));
    store(P + 8).unwrap();
    // An allocation past the memory's end grows it; the pages skipped over stay
    // unallocated, so the guest cannot touch them either.
    assert_eq!(t.vm_allocate(12 * P, P, false), Ok(12 * P));
    assert_eq!(t.memory_pages(), 13);
    store(12 * P).unwrap();
    assert_fault(
        load(10 * P),
        10 * P,
        "load of a page skipped over by growth",
    );
    // A peer's vm_read into the task: the new region is writable at once.
    let peer = rt.spawn_bytes("(module (memory 1))").unwrap();
    let port = t.insert_port(&peer);
    let (address, _) = t.mach().vm_read(port, 0, P).unwrap();
    store(address).unwrap();
    // The guest's own memory.grow: new pages are allocated and writable.
    let grower = rt
        .spawn_bytes(
            r#"(module (memory 1)
                 (func (export "grow") (result i32) (memory.grow (i32.const 2)))
                 (func (export "store") (param i32) (i32.store (local.get 0) (i32.const 5))))"#,
        )
        .unwrap();
    assert_eq!(grower.call::<(), i32>("grow", ()).unwrap(), 1);
    grower.call::<u32, ()>("store", 2 * P + 8).unwrap();
}

#[test]
fn protection_off_leaves_guests_to_webassembly_s_bounds() {
    let rt = Runtime::with_options(RuntimeOptions::default().guest_protection(false)).unwrap();
    let t = layout(&rt);
    assert!(!t.guest_protection());
    // Every page of the memory is reachable by the guest's own accesses...
    for address in [FREED, READ_ONLY, NO_ACCESS, EXECUTE_ONLY] {
        t.call::<(u32, u32), ()>("store", (address, 1)).unwrap();
        t.call::<(u32, u32, u32), ()>("copy", (address + 8, 0, 8))
            .unwrap();
    }
    // ...while every host path still checks the table.
    assert_eq!(t.vm_read(NO_ACCESS, P), Err(KernReturn::ProtectionFailure));
}

#[test]
fn component_tasks_are_not_bound() {
    let rt = runtime();
    let component = rt
        .spawn_bytes(include_str!("components/doors.wat"))
        .unwrap();
    assert!(!component.guest_protection());
}

/// A change of a task's table, made by the host.
type TableChange = dyn Fn(&Task);

/// A task running on one thread while another thread changes its table: every change
/// lands, the guest's next access to the page traps, the process never crashes.
#[test]
fn protection_changes_from_another_thread_stop_a_running_guest_with_a_trap() {
    let rt = Runtime::with_options(RuntimeOptions::default().epoch_interruption(true)).unwrap();
    let t = rt.spawn_bytes(GUEST).unwrap();
    let done = AtomicBool::new(false);
    /// Stops the epoch thread when the test ends, also by a failed assertion.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        // A safety net: if a change did not bind the guest, the epoch stops it and the
        // assertion below fails instead of the test hanging. When the test ends it moves the
        // epoch far enough to stop any guest still running, so that the scope can end.
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
                rt.increment_epoch();
            }
            for _ in 0..1000 {
                rt.increment_epoch();
            }
        });
        let _stop = Stop(&done);
        let changes: [(&str, &TableChange); 4] = [
            ("vm_protect(READ)", &|t| {
                t.vm_protect(P, P, false, VmProt::READ).unwrap()
            }),
            ("vm_protect(NONE)", &|t| {
                t.vm_protect(P, P, false, VmProt::NONE).unwrap()
            }),
            ("vm_protect(max READ)", &|t| {
                t.vm_protect(P, P, true, VmProt::READ).unwrap()
            }),
            ("vm_deallocate", &|t| t.vm_deallocate(P, P).unwrap()),
        ];
        for round in 0..40 {
            let (what, change) = changes[round % changes.len()];
            // Fresh page 1, read-write, and the round counter at 0.
            let _ = t.vm_deallocate(P, P);
            assert_eq!(t.vm_allocate(P, P, false), Ok(P));
            let mut page0 = t.vm_read(0, P).unwrap();
            page0[CHURN_ROUNDS as usize..][..4].fill(0);
            t.vm_write(0, &page0).unwrap();
            t.set_epoch_deadline(500).unwrap();
            let runner = s.spawn(|| t.call::<u32, ()>("churn", P));
            // The change must land while the guest is inside its loop: wait until it has
            // done two rounds of it (or stopped, which the assertions below report).
            wait_until(Duration::from_secs(30), || {
                runner.is_finished() || word_at(&t, CHURN_ROUNDS) >= 2
            });
            let rounds_before = word_at(&t, CHURN_ROUNDS);
            let running = !runner.is_finished();
            change(&t);
            let result = runner.join().expect("no panic");
            assert!(
                running && rounds_before >= 2,
                "round {round}, {what}: the guest was not inside its loop when the table \
                 changed ({rounds_before} rounds done, still running: {running})"
            );
            let err = result.expect_err("the guest stops");
            assert_eq!(
                err.downcast_ref::<Trap>(),
                Some(&Trap::MemoryOutOfBounds),
                "round {round}, {what}: {err:#}"
            );
        }
    });
}
