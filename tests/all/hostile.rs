//! Hostile guests that the other test modules do not cover: memory bombs under a quota.
//! (Loops stopped by fuel and epochs, traps, stack overflow, bad pointers and dead ports are
//! in `threads.rs`; malformed modules in `modules.rs`.)

use wasmach::{KernReturn, TaskOptions, VM_PAGE_SIZE};

use crate::common::*;

/// Grows its memory page by page until `memory.grow` fails, then allocates pages in itself
/// until `vm_allocate` fails; returns (pages grown, pages allocated, the last code).
const BOMB: &str = r#"
  (func (export "bomb") (result i32 i32 i32)
    (local $grown i32) (local $allocated i32) (local $kr i32)
    (block $full
      (loop $grow
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (local.set $grown (i32.add (local.get $grown) (i32.const 1)))
        (br $grow)))
    (block $refused
      (loop $alloc
        (local.set $kr (call $vm_allocate (call $mach_task_self) (i32.const 0) (i32.const 65536) (i32.const 1)))
        (br_if $refused (local.get $kr))
        (local.set $allocated (i32.add (local.get $allocated) (i32.const 1)))
        (br $alloc)))
    (local.get $grown) (local.get $allocated) (local.get $kr))
"#;

#[test]
fn a_memory_bomb_stops_at_the_quota_and_the_host_and_peers_carry_on() {
    let rt = runtime();
    let module = rt.compile(guest("(memory 1)", BOMB)).unwrap();
    let quota_pages = 64u32;
    let bomb = rt
        .spawn_with(
            &module,
            &TaskOptions::default().max_memory(u64::from(quota_pages * PAGE)),
        )
        .unwrap();
    let peer = rt.spawn_bytes("(module (memory 1))").unwrap();
    peer.vm_write(0, &pattern(9, PAGE as usize)).unwrap();

    let (grown, allocated, kr): (i32, i32, i32) = bomb.call("bomb", ()).unwrap();
    assert_eq!(
        grown as u32,
        quota_pages - 1,
        "memory.grow stops at the quota with -1"
    );
    assert_eq!(allocated, 0, "no page is left for vm_allocate");
    assert_eq!(kr as u32, KernReturn::NoSpace.code());
    assert_eq!(bomb.memory_pages(), quota_pages);

    // freeing 8 pages makes room for 8 more (the quota counts allocated pages, so the
    // guest's memory.grow takes them); the bomb is refused again at the limit
    bomb.vm_deallocate(VM_PAGE_SIZE, 8 * VM_PAGE_SIZE).unwrap();
    let (grown, allocated, kr): (i32, i32, i32) = bomb.call("bomb", ()).unwrap();
    assert_eq!(
        (grown, allocated, kr as u32),
        (8, 0, KernReturn::NoSpace.code())
    );
    assert_eq!(bomb.memory_pages(), quota_pages + 8);

    // the peer and a new task are untouched
    assert_eq!(peer.vm_read(0, PAGE).unwrap(), pattern(9, PAGE as usize));
    let fresh = rt.spawn_bytes("(module (memory 1))").unwrap();
    assert_eq!(fresh.vm_allocate(0, 4 * PAGE, true), Ok(PAGE));
}

#[test]
fn a_memory_bomb_without_a_quota_stops_at_the_declared_maximum() {
    let rt = runtime();
    let bomb = rt.spawn_bytes(guest("(memory 1 32)", BOMB)).unwrap();
    let (grown, allocated, kr): (i32, i32, i32) = bomb.call("bomb", ()).unwrap();
    assert_eq!((grown, allocated), (31, 0));
    assert_eq!(kr as u32, KernReturn::NoSpace.code());
}
