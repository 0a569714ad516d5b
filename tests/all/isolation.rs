//! Isolation under concurrency and hostility (docs/spec.md §6-7): no pair of a host-API method and
//! a guest call deadlocks, one task cannot use up the process's kernel mappings, and a
//! guest cannot make the host allocate without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wasmach::{KernReturn, PortName, Runtime, Task, TaskOptions, VmProt};

use crate::common::{PAGE, guest, runtime};

/// A guest that runs every `"mach"` call `n` times per `spin(n)`: on itself, on the task
/// registered as "peer" and on the one registered as "victim" (which the host keeps
/// spawning and dropping). Pages 0-3 are its own; the host works on pages 4-7.
const SPINNER: &str = r#"
  (data (i32.const 64) "peer")
  (data (i32.const 80) "victim")
  (func (export "spin") (param $n i32) (result i32)
    (local $self i32) (local $peer i32) (local $victim i32)
    (local.set $self (call $mach_task_self))
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $n)))
      (drop (call $bootstrap_look_up (i32.const 64) (i32.const 4) (i32.const 0)))
      (local.set $peer (i32.load (i32.const 0)))
      (drop (call $bootstrap_look_up (i32.const 80) (i32.const 6) (i32.const 4)))
      (local.set $victim (i32.load (i32.const 4)))
      (drop (call $vm_allocate (local.get $self) (i32.const 8) (i32.const 65536) (i32.const 1)))
      (drop (call $vm_write (local.get $peer) (i32.const 0) (i32.const 65536) (i32.const 65536)))
      (if (i32.eqz (call $vm_read (local.get $peer) (i32.const 0) (i32.const 65536)
                         (i32.const 12) (i32.const 16)))
        (then (drop (call $vm_deallocate (local.get $self) (i32.load (i32.const 12))
                          (i32.const 65536)))))
      (drop (call $vm_read_overwrite (local.get $peer) (i32.const 0) (i32.const 65536)
                  (i32.const 131072) (i32.const 20)))
      (drop (call $vm_read_overwrite (local.get $victim) (i32.const 0) (i32.const 65536)
                  (i32.const 131072) (i32.const 20)))
      (drop (call $vm_copy (local.get $self) (i32.const 65536) (i32.const 65536)
                  (i32.const 196608)))
      (drop (call $vm_protect (local.get $self) (i32.const 196608) (i32.const 65536)
                  (i32.const 0) (i32.const 1)))
      (drop (call $vm_protect (local.get $self) (i32.const 196608) (i32.const 65536)
                  (i32.const 0) (i32.const 3)))
      (drop (call $vm_protect (local.get $peer) (i32.const 65536) (i32.const 65536)
                  (i32.const 0) (i32.const 3)))
      (i32.store (i32.const 24) (i32.const 0))
      (drop (call $vm_region (local.get $self) (i32.const 24) (i32.const 28) (i32.const 32)
                  (i32.const 36)))
      (drop (call $vm_deallocate (local.get $self) (i32.load (i32.const 8)) (i32.const 65536)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $next)))
    (i32.const 0))
"#;

/// A host-API method, run on task `a` (whose guest spins) with the peer task at hand.
type HostOp = fn(&Runtime, &Task, &Task);

/// Every host-API method on a task: the `Task` methods, its `Mach` calls (the task as the
/// caller, on itself and on the peer), `insert_port`, the bootstrap, and dropping another
/// task that the guest is using.
const HOST_OPS: &[(&str, HostOp)] = &[
    ("Mach::bootstrap_look_up", |_, a, _| {
        let _ = a.mach().bootstrap_look_up("peer");
    }),
    ("Mach::vm_read + vm_deallocate", |_, a, _| {
        let peer = a.mach().bootstrap_look_up("peer").unwrap();
        if let Ok((address, size)) = a.mach().vm_read(peer, 0, PAGE) {
            let _ = a.mach().vm_deallocate(a.self_port(), address, size);
        }
    }),
    ("Mach::vm_read_overwrite", |_, a, _| {
        let peer = a.mach().bootstrap_look_up("peer").unwrap();
        let _ = a.mach().vm_read_overwrite(peer, 0, PAGE, 6 * PAGE);
    }),
    ("Mach::vm_write", |_, a, _| {
        let peer = a.mach().bootstrap_look_up("peer").unwrap();
        let _ = a.mach().vm_write(peer, 2 * PAGE, 5 * PAGE, PAGE);
    }),
    ("Mach::vm_copy", |_, a, _| {
        let peer = a.mach().bootstrap_look_up("peer").unwrap();
        let _ = a.mach().vm_copy(peer, 0, PAGE, 3 * PAGE);
    }),
    ("Mach::vm_allocate + vm_deallocate", |_, a, _| {
        let peer = a.mach().bootstrap_look_up("peer").unwrap();
        if let Ok(address) = a.mach().vm_allocate(peer, 0, PAGE, true) {
            let _ = a.mach().vm_deallocate(peer, address, PAGE);
        }
    }),
    ("Mach::vm_protect", |_, a, _| {
        let peer = a.mach().bootstrap_look_up("peer").unwrap();
        let _ = a.mach().vm_protect(peer, 3 * PAGE, PAGE, false, 1);
        let _ = a.mach().vm_protect(peer, 3 * PAGE, PAGE, false, 3);
    }),
    ("Mach::vm_region", |_, a, _| {
        let _ = a.mach().vm_region(a.self_port(), 0);
    }),
    ("Task::vm_allocate + vm_deallocate", |_, a, _| {
        let _ = a.vm_deallocate(7 * PAGE, PAGE);
        let _ = a.vm_allocate(7 * PAGE, PAGE, false);
    }),
    ("Task::vm_protect", |_, a, _| {
        let _ = a.vm_protect(4 * PAGE, PAGE, false, VmProt::READ);
        let _ = a.vm_protect(4 * PAGE, PAGE, false, VmProt::DEFAULT);
    }),
    ("Task::vm_write", |_, a, _| {
        let _ = a.vm_write(5 * PAGE, &[7; PAGE as usize]);
    }),
    ("Task::vm_read", |_, a, _| {
        let _ = a.vm_read(5 * PAGE, PAGE);
    }),
    ("Task::vm_read_overwrite", |_, a, _| {
        let _ = a.vm_read_overwrite(5 * PAGE, &mut [0; PAGE as usize]);
    }),
    ("Task::vm_copy", |_, a, _| {
        let _ = a.vm_copy(5 * PAGE, PAGE, 6 * PAGE);
    }),
    (
        "Task::vm_region, regions, memory_pages, map_usage",
        |_, a, _| {
            let _ = a.vm_region(0);
            let _ = a.regions();
            let _ = a.memory_pages();
            let _ = a.map_usage();
        },
    ),
    (
        "Task::call, func_type (wait for the guest's store)",
        |_, a, _| {
            let _ = a.func_type("spin");
            let _ = a.call::<i32, i32>("spin", 1);
        },
    ),
    (
        "Task::call_dynamic, set_fuel, set_epoch_deadline, call_component_dynamic",
        |_, a, _| {
            let _ = a.call_dynamic("spin", &[wasmach::wasmtime::Val::I32(1)]);
            let _ = a.set_fuel(u64::MAX);
            let _ = a.set_epoch_deadline(u64::MAX);
            let _ = a.call_component_dynamic("run", &[]);
            let _ = a.component_func_type("run");
        },
    ),
    (
        "Task::id, self_port, is_component, guest_protection, Mach::task_self",
        |_, a, _| {
            let _ = (
                a.id(),
                a.self_port(),
                a.is_component(),
                a.guest_protection(),
            );
            let _ = a.mach().task_self();
        },
    ),
    ("Task::insert_port", |_, a, peer| {
        let _ = a.insert_port(peer);
        let _ = peer.insert_port(a);
    }),
    (
        "Runtime::register, unregister, look_up, registrations, tasks",
        |runtime, a, _| {
            runtime.register("a", a);
            let _ = (
                runtime.look_up("a"),
                runtime.registrations(),
                runtime.tasks(),
            );
            runtime.unregister("a");
        },
    ),
    ("spawn, register and drop another task", |runtime, _, _| {
        let victim = runtime.spawn_bytes("(module (memory 1))").unwrap();
        runtime.register("victim", &victim);
        drop(victim);
    }),
];

/// How long a pair may go without progress before the test calls it a deadlock.
const STALL: Duration = Duration::from_secs(20);

#[test]
fn no_host_method_deadlocks_with_a_guest_looping_on_every_call() {
    let runtime = runtime();
    let a = Arc::new(
        runtime
            .spawn_bytes(guest("(memory 8 64)", SPINNER))
            .unwrap(),
    );
    let peer = Arc::new(runtime.spawn_bytes("(module (memory 4))").unwrap());
    runtime.register("peer", &peer);
    assert_eq!(a.call::<i32, i32>("spin", 1).unwrap(), 0);

    let stop = Arc::new(AtomicBool::new(false));
    let guest_rounds = Arc::new(AtomicU64::new(0));
    let host_rounds = Arc::new(AtomicU64::new(0));
    let current = Arc::new(AtomicUsize::new(0));
    let guest_thread = {
        let (a, stop, rounds) = (a.clone(), stop.clone(), guest_rounds.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(a.call::<i32, i32>("spin", 4).unwrap(), 0);
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let host_thread = {
        let (runtime, a, peer) = (runtime.clone(), a.clone(), peer.clone());
        let (stop, rounds, current) = (stop.clone(), host_rounds.clone(), current.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (i, (_, op)) in HOST_OPS.iter().enumerate() {
                    current.store(i, Ordering::Relaxed);
                    for _ in 0..4 {
                        op(&runtime, &a, &peer);
                    }
                }
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // The watchdog: both threads must keep going; each host round overlaps every host
    // method with the guest's loop of every call.
    let mut last = (0, 0, Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = (
            guest_rounds.load(Ordering::Relaxed),
            host_rounds.load(Ordering::Relaxed),
        );
        if guest_thread.is_finished() || host_thread.is_finished() {
            break; // a panic (an assertion, or a lock taken out of rank order)
        }
        if now.0 >= 30 && now.1 >= 30 {
            break;
        }
        if now != (last.0, last.1) {
            last = (now.0, now.1, Instant::now());
        } else if last.2.elapsed() > STALL {
            panic!(
                "no progress for {STALL:?}: guest rounds {}, host rounds {}, the host was in {}",
                now.0,
                now.1,
                HOST_OPS[current.load(Ordering::Relaxed)].0
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    guest_thread.join().expect("the guest thread");
    host_thread.join().expect("the host thread");
    // Both doors still work afterwards, and the host's pages hold what it wrote.
    assert_eq!(a.call::<i32, i32>("spin", 1).unwrap(), 0);
    assert_eq!(a.vm_read(5 * PAGE, PAGE).unwrap(), vec![7; PAGE as usize]);
    assert_eq!(a.vm_read(6 * PAGE, PAGE).unwrap(), vec![7; PAGE as usize]);
}

/// A guest with an almost full 4 GiB memory that `vm_protect`s every other page of itself
/// read-only, which would cut its mapping in 65 534 pieces; it returns how many calls
/// succeeded and stores the first failure's code at address 0.
const FRAGMENTER: &str = r#"
  (func (export "fragment") (result i32)
    (local $i i32) (local $ok i32) (local $kr i32)
    (i32.store (i32.const 0) (i32.const 0))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.const 32767)))
      (local.set $kr (call $vm_protect (call $mach_task_self)
        (i32.shl (i32.add (i32.shl (local.get $i) (i32.const 1)) (i32.const 1)) (i32.const 16))
        (i32.const 65536) (i32.const 0) (i32.const 1)))
      (if (local.get $kr)
        (then (if (i32.eqz (i32.load (i32.const 0)))
                (then (i32.store (i32.const 0) (local.get $kr)))))
        (else (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $ok))
"#;

#[test]
fn a_guest_fragmenting_its_protections_stops_at_its_budget_and_other_tasks_carry_on() {
    let runtime = runtime();
    let hog = runtime
        .spawn_bytes(guest("(memory 65535)", FRAGMENTER))
        .unwrap();
    let (used, budget) = hog.map_usage();
    assert_eq!(
        used, 2,
        "the committed memory and the rest of the reservation"
    );
    // Each read-only page between read-write ones costs two mappings.
    let fits = (budget - 2) / 2;
    assert_eq!(hog.call::<(), i32>("fragment", ()).unwrap(), fits as i32);
    assert_eq!(
        hog.vm_read(0, PAGE).unwrap()[..4],
        KernReturn::ResourceShortage.code().to_le_bytes()
    );
    assert_eq!(hog.map_usage(), (2 + 2 * fits, budget));
    // The refused calls changed nothing: after the last protected page, everything is
    // one read-write region.
    let rest = hog.vm_region((2 * fits + 1) * PAGE).unwrap();
    assert_eq!(rest.address, 2 * fits * PAGE);
    assert_eq!(rest.size, u64::from(65535 - 2 * fits) * u64::from(PAGE));
    assert_eq!(rest.protection, VmProt::DEFAULT);

    // Everything else the process does still works.
    let other = runtime
        .spawn_bytes(guest(
            "(memory 4 16)",
            r#"(func (export "grow") (result i32) (memory.grow (i32.const 1)))"#,
        ))
        .unwrap();
    assert_eq!(other.vm_protect(PAGE, PAGE, false, VmProt::READ), Ok(()));
    assert_eq!(other.vm_allocate(0, PAGE, true), Ok(4 * PAGE));
    assert_eq!(other.call::<(), i32>("grow", ()).unwrap(), 5);
    let spawned: Vec<Task> = (0..8)
        .map(|_| runtime.spawn_bytes("(module (memory 1))").unwrap())
        .collect();
    assert_eq!(spawned.len(), 8);
    let from_thread = std::thread::spawn(move || other.vm_protect(0, PAGE, false, VmProt::NONE))
        .join()
        .unwrap();
    assert_eq!(from_thread, Ok(()));
    // A budget of the task's own, and the hog can undo its fragmentation.
    assert_eq!(
        hog.vm_protect(0, 65535 * PAGE, false, VmProt::DEFAULT),
        Ok(())
    );
    assert_eq!(hog.map_usage().0, 2);
    let small = runtime
        .spawn_with(
            &runtime.compile(guest("(memory 8)", FRAGMENTER)).unwrap(),
            &TaskOptions::default().map_budget(4),
        )
        .unwrap();
    assert_eq!(small.map_usage(), (2, 4));
    assert_eq!(small.vm_protect(PAGE, PAGE, false, VmProt::READ), Ok(()));
    assert_eq!(
        small.vm_protect(3 * PAGE, PAGE, false, VmProt::READ),
        Err(KernReturn::ResourceShortage)
    );
}

#[test]
fn holes_past_the_budget_become_guard_regions_that_cost_no_mapping() {
    let runtime = runtime();
    // A budget of 4 mappings: room for one freed page kept resident, none for 2047 holes.
    let module = runtime.compile("(module (memory 4096))").unwrap();
    let task = runtime
        .spawn_with(&module, &TaskOptions::default().map_budget(4))
        .unwrap();
    task.vm_write(2 * PAGE, &[9; PAGE as usize]).unwrap();
    let freed: Vec<_> = (1..4096)
        .step_by(2)
        .map(|page| task.vm_deallocate(page * PAGE, PAGE))
        .collect();
    if freed.contains(&Err(KernReturn::ResourceShortage)) {
        // Before Linux 6.13 a hole is PROT_NONE: a mapping of its own.
        eprintln!("skipped: this kernel has no guard regions (MADV_GUARD_INSTALL)");
        return;
    }
    assert_eq!(freed, vec![Ok(()); 2048]);
    // Page 1 waits, freed and resident, in the budget's room (two mappings); every later
    // hole became a guard region at once and left the mapping whole.
    assert_eq!(task.map_usage(), (4, 4));
    assert_eq!(task.regions().len(), 2048);
    // The holes read as zero when allocated again.
    task.vm_deallocate(2 * PAGE, PAGE).unwrap();
    assert_eq!(task.vm_allocate(2 * PAGE, PAGE, false), Ok(2 * PAGE));
    assert_eq!(
        task.vm_read(2 * PAGE, PAGE).unwrap(),
        vec![0; PAGE as usize]
    );
}

/// A guest that calls `bootstrap_look_up(ptr, len, 0)`.
fn looker(memory: &str) -> String {
    guest(
        memory,
        r#"(func (export "look") (param i32 i32) (result i32)
             (call $bootstrap_look_up (local.get 0) (local.get 1) (i32.const 0)))"#,
    )
}

#[test]
fn a_4_gib_service_name_is_refused_before_the_host_reads_a_byte() {
    let runtime = runtime();
    let task = runtime.spawn_bytes(looker("(memory 65535)")).unwrap();
    // Every byte of [0, 0xFFF00000) is allocated and readable: only the length decides.
    let len = 0xFFF0_0000u32 as i32;
    assert_eq!(
        task.call::<(i32, i32), i32>("look", (0, len)).unwrap(),
        KernReturn::InvalidArgument.code() as i32
    );
}

#[test]
fn service_names_of_up_to_128_bytes_are_looked_up_and_longer_ones_refused() {
    let runtime = runtime();
    let task = runtime.spawn_bytes(looker("(memory 1)")).unwrap();
    let peer = runtime.spawn_bytes("(module (memory 1))").unwrap();
    let n128 = "n".repeat(128);
    let n129 = "n".repeat(129);
    runtime.register(&n128, &peer);
    runtime.register(&n129, &peer);
    let mut page = vec![0u8; PAGE as usize];
    page[..129].copy_from_slice(n129.as_bytes());
    task.vm_write(0, &page).unwrap();
    assert_eq!(task.call::<(i32, i32), i32>("look", (0, 128)).unwrap(), 0);
    let port = u32::from_le_bytes(task.vm_read(0, PAGE).unwrap()[..4].try_into().unwrap());
    assert_eq!(task.mach().bootstrap_look_up(&n128), Ok(PortName(port)));
    // Registered or not, a longer name is an invalid argument (from its length alone).
    assert_eq!(
        task.call::<(i32, i32), i32>("look", (0, 129)).unwrap(),
        KernReturn::InvalidArgument.code() as i32
    );
    assert_eq!(
        task.mach().bootstrap_look_up(&n129),
        Err(KernReturn::InvalidArgument)
    );
}
